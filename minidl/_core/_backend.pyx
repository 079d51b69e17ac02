# cython: language_level=3
"""Kernel selection, thread count and the GEMM entry point of minidl's compiled core.

Layering: the C kernels of ``csrc/`` are one shared library (libminidl_core, linked by every
extension module), whose API ``_backend.pxd`` declares for Cython. This module is its Python
face: it validates arguments (shape, dtype, strides, overlap) and then calls C without the
GIL; the C code never validates.
"""
import os

import numpy as np

cimport numpy as cnp

from minidl._core._arrays cimport aligned_output

cnp.import_array()

# ---- architecture ----

ARCH_NAMES = tuple(mdl_arch_name(<mdl_arch>i).decode() for i in range(MDL_ARCH_COUNT))


def supported_archs():
    """Names of the kernel architectures this CPU and OS can run, best last."""
    cdef int bits = mdl_supported_archs()
    return tuple(name for i, name in enumerate(ARCH_NAMES) if bits & (1 << i))


def get_arch():
    """Name of the active kernel architecture ('generic', 'avx2' or 'avx512')."""
    return mdl_arch_name(mdl_get_arch()).decode()


def kernel_versions():
    """Which architecture's version of each family of kernels runs, as a dict
    ``{family: arch}`` over 'gemm' (with the direct convolution), 'conv_pool', 'optimizers',
    'pooling', 'patches', 'recurrent' and 'batchnorm'. One table per architecture holds them
    all, so every family follows :func:`set_arch` (and ``MINIDL_ARCH``)."""
    return {mdl_family_name(<mdl_family>f).decode():
            mdl_arch_name(mdl_kernel_version(<mdl_family>f)).decode()
            for f in range(MDL_FAMILY_COUNT)}


def set_arch(name):
    """Select the kernel architecture by name; ``None`` or 'auto' picks the best one. Every
    kernel with per-ISA versions follows it (see :func:`kernel_versions`).

    Raises:
        ValueError: unknown name, or an architecture this CPU (or OS) does not support.
    """
    if name is None or name == "auto":
        mdl_set_arch(mdl_best_arch())
        return get_arch()
    if not isinstance(name, str) or name.lower() not in ARCH_NAMES:
        raise ValueError(f"Unknown kernel architecture {name!r}; expected one of "
                         f"{', '.join(ARCH_NAMES)} or 'auto'.")
    index = ARCH_NAMES.index(name.lower())
    if mdl_set_arch(<mdl_arch>index) != 0:
        raise ValueError(f"This CPU cannot run the {name.lower()!r} kernels (supported here: "
                         f"{', '.join(supported_archs())}).")
    return get_arch()


def _select_arch_from_environment():
    requested = os.environ.get("MINIDL_ARCH", "").strip()
    try:
        set_arch(requested or None)
    except ValueError as e:
        raise ImportError(f"MINIDL_ARCH={requested!r}: {e}") from None


_select_arch_from_environment()


# ---- threads ----

def get_num_threads():
    """Number of threads minidl's parallel kernels use."""
    return num_threads()


def threads_for(work, items):
    """Threads a kernel call of ``work`` multiply-adds in ``items`` pieces runs on.

    The GEMM and the direct convolution size their parallel regions with this rule: at most
    ``get_num_threads()``, at most one thread per piece (register tile), and at least
    ``WORK_PER_THREAD`` multiply-adds per thread.
    """
    return mdl_threads_for(float(work), float(items))


WORK_PER_THREAD = int(MDL_WORK_PER_THREAD)


cdef str _threads_left_out(int n, int started):
    return (f"only {started} of {n} threads could be started (the process or user thread "
            f"limit, RLIMIT_NPROC, or memory for their stacks ran out)")


# Whether the thread count is the user's choice (OMP_NUM_THREADS, or set_num_threads) rather
# than the processor count: minidl.distributed shares a host's processors among its ranks
# only when it is not (comm.py, _share_processors).
_user_chose_threads = "OMP_NUM_THREADS" in os.environ


def user_chose_threads():
    """Whether the thread count comes from ``OMP_NUM_THREADS`` or ``set_num_threads``."""
    return _user_chose_threads


def share_default_threads(int n):
    """Lower the default thread count to ``n`` (at least 1) without making it the user's
    choice: for ranks of one host that run on the same processors (minidl.distributed)."""
    if not _user_chose_threads:
        mdl_set_num_threads(max(1, min(n, num_threads())))


def set_num_threads(n):
    """Set the number of threads for minidl's parallel kernels.

    Results do not depend on this number: kernels never split a summation across threads.
    The bound is 4 threads per processor (``minidl.backend_info()["max_threads"]``): more
    threads than processors only add waiting, and far more reach failures inside the OpenMP
    runtime (a stack overflow, or the process ending when it cannot create a thread). The
    threads are tried once here, so that a count the system cannot start fails here rather
    than in a kernel.

    Args:
        n: a positive int up to the bound, or a negative int counted back from the number
            of processors (-1 = all, -2 = all but one). The default comes from
            ``OMP_NUM_THREADS`` (clamped to the bound, with a warning) or, failing that,
            the processor count.
    Raises:
        TypeError: ``n`` is not an int.
        ValueError: ``n`` is 0, above the bound, or negative beyond the processor count.
        RuntimeError: the system could not start ``n`` threads at once (thread limit or
            memory); the setting is unchanged.

    Example:
        >>> minidl.set_num_threads(-1)   # one thread per processor
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads expects an int; received {n!r} of type "
                        f"{type(n).__name__}.")
    n = int(n)
    cdef int procs = mdl_num_procs(), bound = mdl_max_threads()
    if n == 0 or n < -procs:
        raise ValueError(f"set_num_threads expects n >= 1, or -{procs} <= n <= -1 to count "
                         f"back from the {procs} processors; received n={n}.")
    if n > bound:
        raise ValueError(f"set_num_threads expects n <= {bound} ({MDL_THREADS_PER_PROC} "
                         f"threads per processor, {procs} processors); received n={n}.")
    if n < 0:
        n = procs + 1 + n
    if n > 1 and not mdl_have_openmp():
        import warnings
        warnings.warn("minidl was built without OpenMP; kernels run on one thread.",
                      RuntimeWarning, stacklevel=2)
    cdef int started = mdl_startable_threads(n)
    if started < n:
        raise RuntimeError(f"set_num_threads: {_threads_left_out(n, started)}; the setting "
                           f"stays {num_threads()}. Received: n={n}.")
    mdl_set_num_threads(n)
    global _user_chose_threads
    _user_chose_threads = True


def _threads_from_environment():
    """The default thread count at import: OMP_NUM_THREADS or the processor count, clamped to
    the bound and to what the system can start, with a warning when either cuts it."""
    import warnings
    cdef int n = mdl_default_num_threads(), bound = mdl_max_threads(), started
    requested = os.environ.get("OMP_NUM_THREADS")
    source = (f"OMP_NUM_THREADS={requested!r}" if requested is not None
              else f"the processor count ({mdl_num_procs()})")
    if n > bound:
        warnings.warn(f"minidl: {source} asks for {n} threads, more than the bound of {bound} "
                      f"({MDL_THREADS_PER_PROC} per processor, {mdl_num_procs()} "
                      f"processors); using {bound}.", RuntimeWarning, stacklevel=2)
        n = bound
    started = mdl_startable_threads(n)
    if started < n:
        warnings.warn(f"minidl: {source}: {_threads_left_out(n, started)}; using {started}.",
                      RuntimeWarning, stacklevel=2)
        n = started
    mdl_set_num_threads(n)


_threads_from_environment()


def backend_info():
    """A dict describing the compiled core: architecture, kernels (the GEMM's tiles, and each
    family's version: :func:`kernel_versions`), OpenMP, threads, compiler."""
    return {
        "arch": get_arch(),
        "supported_archs": supported_archs(),
        "kernels": mdl_kernel_description().decode(),
        "kernel_versions": kernel_versions(),
        "openmp": bool(mdl_have_openmp()),
        "num_threads": num_threads(),
        "max_threads": mdl_max_threads(),
        "num_procs": mdl_num_procs(),
        "compiler": mdl_compiler().decode(),
    }


# ---- GEMM ----
# The checks below read the array structs through numpy's C API rather than Python
# attributes: a GEMM at batch size 32 takes tens of microseconds, so the boundary must cost
# well under one.

cdef str _describe(x):
    return f"shape {x.shape}, dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__


cdef object _operand(object x, str name, bint output):
    """``x`` after the checks of a GEMM operand. A misaligned one (address or a stride not a
    multiple of the element size, e.g. np.frombuffer(buf[1:], np.float32)) is copied when
    it is an input, since the kernels read whole elements, and refused when it is ``out``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(x).__name__}.")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if cnp.PyArray_NDIM(arr) != 2:
        raise ValueError(f"{name} must be 2-D; received shape {x.shape}.")
    cdef int t = cnp.PyArray_TYPE(arr)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"{name} must have dtype float32 or float64; received {x.dtype}.")
    if not cnp.PyArray_ISNOTSWAPPED(arr):
        raise TypeError(f"{name} must be in native byte order; received dtype {x.dtype!r} "
                        f"(use {name}.astype({name}.dtype.newbyteorder('=')).")
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(arr)
    if (cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_STRIDES(arr)[0] % size == 0
            and cnp.PyArray_STRIDES(arr)[1] % size == 0):
        return x
    if not output:
        return cnp.PyArray_NewCopy(arr, cnp.NPY_KEEPORDER)
    aligned_output(x, None, name)
    raise ValueError(f"{name} has strides {x.strides} that are not multiples of its "
                     f"itemsize {size}; pass an array numpy allocated.")


cdef void _extent(cnp.ndarray x, char **lo, char **hi) noexcept:
    """Lowest and one-past-highest byte an array touches (its memory bounds)."""
    cdef char *base = <char *>cnp.PyArray_DATA(x)
    cdef char *low = base
    cdef char *high = base + cnp.PyArray_ITEMSIZE(x)
    cdef int d
    cdef Py_ssize_t span
    for d in range(cnp.PyArray_NDIM(x)):
        if cnp.PyArray_DIMS(x)[d] == 0:
            lo[0] = base
            hi[0] = base
            return
        span = (cnp.PyArray_DIMS(x)[d] - 1) * cnp.PyArray_STRIDES(x)[d]
        if span < 0:
            low += span
        else:
            high += span
    lo[0] = low
    hi[0] = high


cdef bint _elements_overlap(cnp.ndarray x) noexcept:
    """True when two distinct elements of the 2-D array x start at the same byte.

    Offsets i*s0 + j*s1 collide for some (i, j) != (0, 0) with |i| < n0, |j| < n1 exactly
    when the smallest such step, (s1/g, s0/g) with g = gcd(|s0|, |s1|), fits in the shape.
    The stride of a length-1 axis never matters (x[None, :] has a zero one and is fine).
    """
    cdef Py_ssize_t n0 = cnp.PyArray_DIMS(x)[0], n1 = cnp.PyArray_DIMS(x)[1]
    cdef Py_ssize_t s0 = abs(cnp.PyArray_STRIDES(x)[0]), s1 = abs(cnp.PyArray_STRIDES(x)[1])
    if n0 == 0 or n1 == 0:
        return False
    if n0 == 1 or n1 == 1:
        return (n0 > 1 and s0 == 0) or (n1 > 1 and s1 == 0)
    cdef Py_ssize_t g = s0, r = s1, t
    while r:
        t = g % r
        g = r
        r = t
    return g == 0 or (s1 // g < n0 and s0 // g < n1)


cdef bint _overlaps(cnp.ndarray x, cnp.ndarray y):
    cdef char *xlo
    cdef char *xhi
    cdef char *ylo
    cdef char *yhi
    _extent(x, &xlo, &xhi)
    _extent(y, &ylo, &yhi)
    if xlo >= yhi or ylo >= xhi:
        return False
    # Bounds intersect (e.g. interleaved views of one buffer): ask numpy for the exact answer.
    return bool(np.shares_memory(x, y))


def gemm(a, b, out=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """General matrix multiply: ``out = alpha * op(a) @ op(b) + beta * out``.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. Any 2-D strides are
    accepted without copying the operands (only a misaligned ``a`` or ``b``, whose address
    or strides are not multiples of the element size, is copied first); the GIL is released
    while the kernel runs, and the result bits do not depend on the thread count.

    Args:
        a: float32 or float64 array, shape (M, K), or (K, M) with ``trans_a``.
        b: array of the same dtype, shape (K, N), or (N, K) with ``trans_b``.
        out: optional writeable array of the same dtype, shape (M, N), overlapping neither
            ``a`` nor ``b``. Required when ``beta`` is not 0.
        alpha, beta: scalars. With ``beta=0`` the old content of ``out`` is never read.
    Returns:
        ``out`` (a new C-contiguous array when ``out`` is None), shape (M, N).
    Raises:
        TypeError: an operand is not an ndarray, not float32/float64, or dtypes differ.
        ValueError: wrong rank, mismatched inner dimensions, wrong ``out`` shape,
            read-only, misaligned or overlapping ``out``, or ``beta != 0`` without ``out``.

    Example:
        >>> a = np.ones((32, 784), np.float32); w = np.ones((784, 64), np.float32)
        >>> minidl.ops.gemm(a, w).shape
        (32, 64)
    """
    a = _operand(a, "a", False)
    b = _operand(b, "b", False)
    cdef cnp.ndarray A = <cnp.ndarray>a
    cdef cnp.ndarray B = <cnp.ndarray>b
    cdef int dtype = cnp.PyArray_TYPE(A)
    if cnp.PyArray_TYPE(B) != dtype:
        raise TypeError(f"a and b must have the same dtype; received a.dtype={a.dtype}, "
                        f"b.dtype={b.dtype}.")
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(A)
    cdef cnp.npy_intp *da = cnp.PyArray_DIMS(A)
    cdef cnp.npy_intp *sa = cnp.PyArray_STRIDES(A)
    cdef cnp.npy_intp *db = cnp.PyArray_DIMS(B)
    cdef cnp.npy_intp *sb = cnp.PyArray_STRIDES(B)
    cdef bint ta = bool(trans_a), tb = bool(trans_b)
    # op(x) is the same memory with dimensions and strides swapped.
    cdef Py_ssize_t m = da[1] if ta else da[0], k = da[0] if ta else da[1]
    cdef Py_ssize_t rs_a = (sa[1] if ta else sa[0]) // itemsize
    cdef Py_ssize_t cs_a = (sa[0] if ta else sa[1]) // itemsize
    cdef Py_ssize_t kb = db[1] if tb else db[0], n = db[0] if tb else db[1]
    cdef Py_ssize_t rs_b = (sb[1] if tb else sb[0]) // itemsize
    cdef Py_ssize_t cs_b = (sb[0] if tb else sb[1]) // itemsize
    if kb != k:
        raise ValueError(f"Inner dimensions differ: op(a) has shape {(m, k)} and op(b) has "
                         f"shape {(kb, n)} (trans_a={ta}, trans_b={tb}).")
    cdef double alpha_, beta_
    try:
        alpha_ = alpha
    except TypeError:
        raise TypeError(f"alpha must be a real number; received alpha={alpha!r}.") from None
    try:
        beta_ = beta
    except TypeError:
        raise TypeError(f"beta must be a real number; received beta={beta!r}.") from None
    cdef cnp.ndarray C
    if out is None:
        if beta_ != 0:
            raise ValueError(f"beta={beta} needs an `out` array to accumulate into.")
        out = np.empty((m, n), dtype=a.dtype)
        C = <cnp.ndarray>out
    else:
        _operand(out, "out", True)
        C = <cnp.ndarray>out
        if cnp.PyArray_TYPE(C) != dtype:
            raise TypeError(f"out must have dtype {a.dtype} like a and b; received {out.dtype}.")
        if cnp.PyArray_DIMS(C)[0] != m or cnp.PyArray_DIMS(C)[1] != n:
            raise ValueError(f"out must have shape {(m, n)}; received {out.shape}.")
        if not cnp.PyArray_ISWRITEABLE(C):
            raise ValueError("out is read-only; pass a writeable array.")
        if _elements_overlap(C):
            raise ValueError(f"out has strides {out.strides} for shape {out.shape}: its "
                             f"elements overlap in memory.")
        if _overlaps(C, A) or _overlaps(C, B):
            raise ValueError("out overlaps a or b; pass a separate output array.")
    cdef Py_ssize_t rs_c = cnp.PyArray_STRIDES(C)[0] // itemsize
    cdef Py_ssize_t cs_c = cnp.PyArray_STRIDES(C)[1] // itemsize
    cdef void *pa = cnp.PyArray_DATA(A)
    cdef void *pb = cnp.PyArray_DATA(B)
    cdef void *pc = cnp.PyArray_DATA(C)
    cdef int rc
    if dtype == cnp.NPY_FLOAT32:
        with nogil:
            rc = sgemm(m, n, k, <float>alpha_, <const float *>pa, rs_a, cs_a,
                           <const float *>pb, rs_b, cs_b, <float>beta_, <float *>pc, rs_c, cs_c)
    else:
        with nogil:
            rc = dgemm(m, n, k, alpha_, <const double *>pa, rs_a, cs_a,
                           <const double *>pb, rs_b, cs_b, beta_, <double *>pc, rs_c, cs_c)
    if rc != 0:
        raise MemoryError(f"gemm could not allocate its packing buffers for shape "
                          f"{(m, k)} @ {(k, n)}.")
    return out


def matmul(a, b, out=None):
    """``a @ b`` for 2-D float32/float64 arrays on minidl's GEMM; see :func:`gemm`."""
    return gemm(a, b, out)
