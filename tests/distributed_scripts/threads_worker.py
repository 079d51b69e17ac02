"""Prints each rank's thread count after init (tests/test_distributed.py). argv[1]: a
thread count rank 0 sets with minidl.set_num_threads before init, or 0 for none."""
import os
import sys

import minidl
from minidl import distributed

if int(sys.argv[1]) and int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")) == 0:
    minidl.set_num_threads(int(sys.argv[1]))
distributed.init()
print(f"rank {distributed.rank()} threads {minidl.get_num_threads()} "
      f"cpus {len(os.sched_getaffinity(0))}", flush=True)
distributed.barrier()
