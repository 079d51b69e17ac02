"""Prints each rank's thread count after init, from rank 0 (tests/test_distributed.py).
argv[1]: a thread count rank 0 sets with minidl.set_num_threads before init, or 0 for
none."""
import os
import sys

from mpi4py import MPI

import minidl
from minidl import distributed

if int(sys.argv[1]) and MPI.COMM_WORLD.Get_rank() == 0:
    minidl.set_num_threads(int(sys.argv[1]))
distributed.init()
found = MPI.COMM_WORLD.gather((distributed.rank(), minidl.get_num_threads(),
                               len(os.sched_getaffinity(0))), root=0)
if distributed.rank() == 0:   # one writer: lines of several ranks may interleave
    for rank, threads, cpus in found:
        print(f"rank {rank} threads {threads} cpus {cpus}")
