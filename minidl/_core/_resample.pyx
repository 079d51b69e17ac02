# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Copy kernels of the padding, cropping and nearest-upsampling layers.

Layering: the layers (minidl/layers/resampling.py) view every sample as a volume
``(depth, height, width, channels)`` (1-D and 2-D samples with leading axes of length 1),
so one kernel serves the 1-D, 2-D and 3-D layers; the functions here check the arrays at
the boundary (_arrays.pxd), then run one ``nogil`` loop over the output rows.

- ``place``: copies a volume into another at an offset per spatial axis, which may be
  negative, and zeroes the rest of the destination. Zero padding is ``place`` at
  ``+padding``; its backward (and cropping) is ``place`` at ``-crop``; cropping's backward
  is ``place`` at ``+crop``.
- ``upsample_nearest`` / ``upsample_nearest_backward``: each value repeated ``size`` times
  along each spatial axis, and the adjoint: each input gradient is the sum of its
  replicated block's gradients, added in the block's row-major order.

Threads: every output row (``(image, depth, height)``, ``width * channels`` values) is
written by one thread from a fixed set of inputs in a fixed order, so the bits never depend
on the thread count. Below PARALLEL_MIN_ELEMENTS no parallel region is opened.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray, overlap
from minidl._core._backend cimport num_threads
from minidl._core._window cimport PARALLEL_MIN_ELEMENTS

cnp.import_array()


cdef struct _Volumes:
    # Source (d, h, w) and destination (od, oh, ow) volumes of c channels, n of each.
    Py_ssize_t n, c, d, h, w, od, oh, ow
    # place: where the source's origin lies in the destination, per axis.
    # upsample: the repeat factors.
    Py_ssize_t a0, a1, a2


cdef inline int _threads(Py_ssize_t elements) noexcept nogil:
    return num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


cdef int _volumes(_Volumes *v, object inp, object out, str in_name, str out_name,
                  object triple, str triple_name, bint out_is_source) except -1:
    """Checks an input and an output 5-D array of one float type, with the same batch size
    and channels, and fills ``v``: the source volume is ``inp`` (forward passes) or ``out``
    (``out_is_source``: the gradient of a source, in backward passes)."""
    cdef int t = float_carray(inp, 5, None, in_name)
    carray(out, t, 5, None, out_name, True)
    if dim(inp, 0) != dim(out, 0) or dim(inp, 4) != dim(out, 4):
        raise ValueError(f"{in_name} {inp.shape} and {out_name} {out.shape} must have the "
                         f"same batch size (axis 0) and channels (axis 4)")
    if overlap(inp, out):
        raise ValueError(f"{in_name} and {out_name} must not share memory")
    try:
        v.a0, v.a1, v.a2 = triple
    except (TypeError, ValueError):
        raise ValueError(f"{triple_name} must be 3 ints; received {triple!r}") from None
    src, dst = (out, inp) if out_is_source else (inp, out)
    v.n, v.c = dim(src, 0), dim(src, 4)
    v.d, v.h, v.w = dim(src, 1), dim(src, 2), dim(src, 3)
    v.od, v.oh, v.ow = dim(dst, 1), dim(dst, 2), dim(dst, 3)
    return t


# ---- place: padding and cropping ----

cdef void _place_row(const _Volumes *v, const floating *src, floating *dst,
                     Py_ssize_t row) noexcept nogil:
    # Destination row (img, z, y): the source row (img, z - a0, y - a1) shifted by a2 columns.
    cdef Py_ssize_t img = row // (v.od * v.oh), z = (row // v.oh) % v.od, y = row % v.oh
    cdef Py_ssize_t sz = z - v.a0, sy = y - v.a1, c = v.c
    cdef Py_ssize_t lo = max(v.a2, 0), hi = min(v.w + v.a2, v.ow)
    cdef floating *out = dst + row * v.ow * c
    if sz < 0 or sz >= v.d or sy < 0 or sy >= v.h or hi <= lo:
        memset(out, 0, v.ow * c * sizeof(floating))
        return
    memset(out, 0, lo * c * sizeof(floating))
    memcpy(out + lo * c, src + (((img * v.d + sz) * v.h + sy) * v.w + lo - v.a2) * c,
           (hi - lo) * c * sizeof(floating))
    memset(out + hi * c, 0, (v.ow - hi) * c * sizeof(floating))


cdef void _place(const _Volumes *v, const floating *src, floating *dst, int nt) noexcept nogil:
    cdef Py_ssize_t rows = v.n * v.od * v.oh, row
    if nt == 1:
        for row in range(rows):
            _place_row(v, src, dst, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            _place_row(v, src, dst, row)


def place(src, dst, offsets):
    """Copies ``src`` into ``dst`` with its origin at ``offsets``; the rest of ``dst`` is 0.

    ``dst[i, z, y, x, ch] = src[i, z - o0, y - o1, x - o2, ch]`` where that index lies in
    ``src``, else 0. Positive offsets pad, negative ones crop.

    Args:
        src: IN ``(n, d, h, w, c)`` float32 or float64, C-contiguous.
        dst: OUT ``(n, od, oh, ow, c)``, src's dtype, fully overwritten.
        offsets: 3 ints ``(o0, o1, o2)``, any sign.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, arrays
            that share memory, or offsets that are not 3 ints.
    """
    src = aligned(src)
    cdef _Volumes v
    cdef int t = _volumes(&v, src, dst, "src", "dst", offsets, "offsets", False)
    if v.n * v.od * v.oh * v.ow * v.c == 0:
        return
    cdef int nt = _threads(v.n * v.od * v.oh * v.ow * v.c)
    cdef char *src_p = data(src)
    cdef char *dst_p = data(dst)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _place(&v, <const float *>src_p, <float *>dst_p, nt)
        else:
            _place(&v, <const double *>src_p, <double *>dst_p, nt)


# ---- nearest upsampling ----

cdef void _upsample_row(const _Volumes *v, const floating *x, floating *y,
                        Py_ssize_t row) noexcept nogil:
    # Output row (img, z, oy) repeats input row (img, z // a0, oy // a1), each pixel a2 times.
    cdef Py_ssize_t img = row // (v.od * v.oh), z = (row // v.oh) % v.od, oy = row % v.oh
    cdef Py_ssize_t c = v.c, ix, r, ch
    cdef const floating *src = x + ((img * v.d + z // v.a0) * v.h + oy // v.a1) * v.w * c
    cdef floating *out = y + row * v.ow * c
    for ix in range(v.w):
        for r in range(v.a2):
            for ch in range(c):
                out[ch] = src[ch]
            out += c
        src += c


cdef void _upsample_backward_row(const _Volumes *v, const floating *dy, floating *dx,
                                 Py_ssize_t row) noexcept nogil:
    # Input row (img, z, iy) (v.d, v.h, v.w: the input's sizes): the sum of its block of
    # a0 x a1 x a2 output gradients per pixel, in the block's row-major order.
    cdef Py_ssize_t img = row // (v.d * v.h), z = (row // v.h) % v.d, iy = row % v.h
    cdef Py_ssize_t c = v.c, ix, p, q, r, ch
    cdef floating *out = dx + row * v.w * c
    cdef const floating *g
    cdef bint first = True
    for p in range(v.a0):
        for q in range(v.a1):
            g = dy + ((img * v.od + z * v.a0 + p) * v.oh + iy * v.a1 + q) * v.ow * c
            for ix in range(v.w):
                for r in range(v.a2):
                    if first and r == 0:
                        for ch in range(c):
                            out[ix * c + ch] = g[(ix * v.a2) * c + ch]
                    else:
                        for ch in range(c):
                            out[ix * c + ch] += g[(ix * v.a2 + r) * c + ch]
            first = False


cdef void _upsample(const _Volumes *v, const floating *src, floating *dst, bint backward,
                    int nt) noexcept nogil:
    cdef Py_ssize_t rows = v.n * (v.d * v.h if backward else v.od * v.oh), row
    if nt == 1:
        for row in range(rows):
            if backward:
                _upsample_backward_row(v, src, dst, row)
            else:
                _upsample_row(v, src, dst, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            if backward:
                _upsample_backward_row(v, src, dst, row)
            else:
                _upsample_row(v, src, dst, row)


cdef int _upsample_checked(object x, object y, object size, bint backward) except -1:
    """Checks (x the input volumes, y the upsampled ones, whichever is the source) and runs
    the forward (src x, dst y) or backward (src dy, dst dx) pass."""
    cdef _Volumes v
    cdef int t
    if backward:
        t = _volumes(&v, y, x, "dy", "dx", size, "size", True)
    else:
        t = _volumes(&v, x, y, "x", "y", size, "size", False)
    if min(v.a0, v.a1, v.a2) < 1:
        raise ValueError(f"size must hold 3 positive ints; received {size!r}")
    if v.od != v.d * v.a0 or v.oh != v.h * v.a1 or v.ow != v.w * v.a2:
        raise ValueError(f"{'dy' if backward else 'y'} must have shape "
                         f"{(v.n, v.d * v.a0, v.h * v.a1, v.w * v.a2, v.c)}; received "
                         f"{y.shape}")
    if v.n * v.d * v.h * v.w * v.c == 0:
        return 0
    cdef int nt = _threads(v.n * v.od * v.oh * v.ow * v.c)
    cdef char *x_p = data(x)
    cdef char *y_p = data(y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            if backward:
                _upsample(&v, <const float *>y_p, <float *>x_p, True, nt)
            else:
                _upsample(&v, <const float *>x_p, <float *>y_p, False, nt)
        else:
            if backward:
                _upsample(&v, <const double *>y_p, <double *>x_p, True, nt)
            else:
                _upsample(&v, <const double *>x_p, <double *>y_p, False, nt)
    return 0


def upsample_nearest(x, y, size):
    """``y`` = ``x`` with each value repeated ``size[k]`` times along spatial axis ``k``.

    Args:
        x: IN ``(n, d, h, w, c)`` float32 or float64, C-contiguous.
        y: OUT ``(n, d * s0, h * s1, w * s2, c)``, x's dtype, fully overwritten.
        size: 3 positive ints ``(s0, s1, s2)``.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, arrays
            that share memory, or a bad size.
    """
    _upsample_checked(aligned(x), y, size, False)


def upsample_nearest_backward(dy, dx, size):
    """The input gradient of :func:`upsample_nearest`: each ``dx`` value is the sum of the
    gradients of its ``s0 x s1 x s2`` copies, added in their row-major order.

    Args:
        dy: IN ``(n, d * s0, h * s1, w * s2, c)`` float32 or float64, C-contiguous.
        dx: OUT ``(n, d, h, w, c)``, dy's dtype, fully overwritten.
        size: 3 positive ints.

    Raises:
        TypeError, ValueError: as :func:`upsample_nearest`.
    """
    _upsample_checked(dx, aligned(dy), size, True)
