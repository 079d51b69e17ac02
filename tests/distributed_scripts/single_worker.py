"""Without mpirun: one rank of size 1 (tests/test_distributed.py)."""
import numpy as np

from minidl import distributed

distributed.init()
assert distributed.is_initialized()
assert (distributed.rank(), distributed.size(), distributed.local_rank(),
        distributed.local_size()) == (0, 1, 0, 1)
data = np.arange(5, dtype=np.float32)
assert distributed.allreduce_(data.copy(), average=True).tobytes() == data.tobytes()
print("single ok")
reducer = distributed.ReproducibleAllreduce()
staged = reducer.staging_buffer(4, "float64")
assert staged.shape == (4,) and staged.dtype == np.float64 and not staged.any()
staged[...] = 2.5
assert reducer(staged, average=True) is staged and (staged == 2.5).all()
print("staging ok")
