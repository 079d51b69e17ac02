"""Each rank reduces its own seeded buffer and saves the result (tests/test_distributed.py)."""
import sys

import numpy as np

from minidl import distributed

distributed.init(timeout=30)
rank, size = distributed.rank(), distributed.size()
out = sys.argv[1]
for dtype, n in (("float32", 1001), ("float64", 1001), ("float32", 1000)):
    data = np.random.default_rng(100 + rank).normal(size=n).astype(dtype) * 10.0 ** rank
    distributed.allreduce_(data)
    np.save(f"{out}_{dtype}_{n}_{rank}.npy", data)
weights = np.full(3, float(rank + 1))
distributed.broadcast_(weights, root_rank=size - 1)
np.save(f"{out}_bcast_{rank}.npy", weights)
np.save(f"{out}_info_{rank}.npy", np.array([rank, size, distributed.local_rank(),
                                            distributed.local_size()]))
