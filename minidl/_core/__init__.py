"""minidl's compiled core: Cython modules over the C kernels in csrc/ (see _backend.pyx)."""
