"""Each rank reduces its own seeded buffers and saves the results (tests/test_distributed.py).

Every case runs through both transports, the shared-memory window (``auto``: these ranks
share one machine) and the messages (``messages``), and from a staging buffer: the window's
slot, reduced with no copy in. One reducer per transport serves every case, so its window
is reused for a smaller buffer, and replaced for a larger one or another dtype.
"""
import sys

import numpy as np

from minidl import distributed

distributed.init(timeout=30)
rank, size = distributed.rank(), distributed.size()
out = sys.argv[1]
reducers = {"auto": distributed.ReproducibleAllreduce(),
            "messages": distributed.ReproducibleAllreduce(shared_memory=False)}
for dtype, n in (("float32", 1001), ("float64", 1001), ("float32", 1000), ("float32", 3),
                 ("float32", 5000)):
    data = np.random.default_rng(100 + rank).normal(size=n).astype(dtype) * 10.0 ** rank
    np.save(f"{out}_{dtype}_{n}_{rank}.npy", distributed.allreduce_(data.copy()))
    for transport, reducer in reducers.items():
        np.save(f"{out}_{dtype}_{n}_{transport}_{rank}.npy", reducer(data.copy()))
        staged = reducer.staging_buffer(n, dtype)
        staged[...] = data
        reducer(staged, average=True)
        np.save(f"{out}_{dtype}_{n}_{transport}_mean_{rank}.npy", staged)
np.save(f"{out}_gather_{rank}.npy", distributed.allgather(np.array([rank, 2.5 * rank])))
# Horovod's value-returning forms: a number, integers, a float32 array; the input untouched
values = np.arange(4, dtype=np.float32) * (rank + 1)
horovod = {"scalar_mean": distributed.allreduce(float(rank)),
           "int_sum": distributed.allreduce(np.array([rank, 1]), average=False),
           "f32_mean": distributed.allreduce(values, name="grads"),
           "bcast": distributed.broadcast(np.array([[rank, 2 * rank]]), root_rank=1),
           "bcast_scalar": distributed.broadcast(rank + 0.5, root_rank=size - 1)}
assert (values == np.arange(4, dtype=np.float32) * (rank + 1)).all()
np.savez(f"{out}_horovod_{rank}.npz", **horovod)
# DistributedOptimizer's op and gradient_predivide_factor: SGD(1) steps by minus the
# reduced gradient (rank r's gradient is r + 1 everywhere).
from minidl import optimizers  # noqa: E402
steps = {}
for label, options in (("average", {}), ("sum", {"op": distributed.Sum}),
                       ("predivide", {"gradient_predivide_factor": 2.0})):
    variable = np.zeros(3, np.float32)
    optimizer = distributed.DistributedOptimizer(optimizers.SGD(1.0), **options)
    optimizer.apply([np.full(3, rank + 1.0, np.float32)], [variable])
    steps[label] = variable
np.savez(f"{out}_ops_{rank}.npz", **steps)
weights = np.full(3, float(rank + 1))
distributed.broadcast_(weights, root_rank=size - 1)
np.save(f"{out}_bcast_{rank}.npy", weights)
np.save(f"{out}_info_{rank}.npy", np.array([rank, size, distributed.local_rank(),
                                            distributed.local_size()]))
