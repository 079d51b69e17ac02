"""minidl's compiled core: Cython modules over the C kernels in csrc/ (see _backend.pyx)."""
import os

# OpenMP threads that finish a parallel region early spin before they sleep: libgomp's
# default is about 300,000 iterations, a few hundred microseconds. When another process
# holds a core, a spinning thread keeps the one its team waits for off the CPU, and every
# region ends a time slice late: training a small CNN on 2 threads beside one busy process
# took 25-35 s instead of 0.2 s. A short spin (measured: no cost on an idle machine, 0.7 s in
# the same contended case) avoids that. libgomp reads these variables once, when it is
# loaded, which is below; a user's own setting of either is kept.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"
