"""minidl's compiled core: Cython modules over the C kernels in csrc/ (see _backend.pyx)."""
import os

# OpenMP threads that finish a parallel region spin for GOMP_SPINCOUNT iterations, then
# sleep; waking a sleeping team costs 30-80 us on a virtual machine (measured on the 2-core
# Xeon here), as long as a whole training step of a small MLP. The spin has to outlast the
# Python between two kernels of a step, so that the next region finds its team awake, yet
# stay short: when another busy process holds a core, a spinning thread keeps the thread
# its team waits for off the CPU. libgomp's default, about 300,000 iterations (~4 ms here),
# made 2-thread training beside another such process take 25-35 s instead of 0.2 s; 1,000
# (~15 us) avoided that but let the team fall asleep within most steps, which made the
# reference MLP train 1.8x slower on 2 threads than on 1. 3,000 (~45 us) keeps the team
# awake through a step. Measured against 1,000 on 2 threads: on an idle machine the
# reference MLP trains 2.0x faster and the CNNs 1.15-1.2x; two 2-thread trainings sharing
# the 2 cores run 1.5-1.8x slower (libgomp's default: 2-20x slower).
# libgomp reads these variables once, when it is loaded, which is below; a user's own
# setting of either is kept (OMP_WAIT_POLICY=passive: no spinning, for shared machines).
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "3000"
