# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Pooling kernels of MaxPooling3D and AveragePooling3D (channels_last volumes).

The 3-D twins of _pooling.pyx's 2-D kernels, with the same rules: a max pooling keeps, with
each maximum, its index within the volume (``argmax``, ``((z * h + y) * w + x) * c + ch``),
the first maximum in the window's row-major (depth, row, column) order wins ties and a NaN
wins over any number (mdl_max_update_* in csrc/exact_math.h); its backward pass is
``_pooling.scatter_argmax``. An average pooling divides each window's sum by the number of
its positions inside the input (Keras' 'same' padding never counts).

Geometry: volumes ``(n, d, h, w, c)``; a ``(kd, kh, kw)`` window moved by strides ``(sd, sh,
sw)``; ``pads`` planes / rows / columns of padding before the input (front, top, left), the
padding after it implied by the output's size. The layer computes them with Keras' rules
(minidl/layers/conv_utils.py); any geometry that passes the checks here is memory-safe,
since every index is bounds-checked against the input.

Threads: the forward passes write one output row (image, depth, row) per iteration from a
fixed window order; the average backward accumulates one volume per thread, in a fixed
order. The bits never depend on the thread count.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport num_threads
from minidl._core._exact_math cimport mdl_max_update_f32, mdl_max_update_f64
from minidl._core._window cimport PARALLEL_MIN_ELEMENTS, add_values, copy_values

cnp.import_array()


cdef struct _Geometry3D:
    Py_ssize_t d, h, w, c               # input volume
    Py_ssize_t kd, kh, kw, sd, sh, sw   # window and strides
    Py_ssize_t pd, ph, pw               # padding before the input
    Py_ssize_t od, oh, ow               # window positions


cdef int _geometry(_Geometry3D *g, object volumes, object pooled, object pool_size,
                   object strides, object pads, Py_ssize_t n) except -1:
    """Fills ``g`` from the volumes' shape, the pooled array's shape and the window's
    arguments (triples of ints); ValueError for a bad argument or a mismatched shape."""
    try:
        g.kd, g.kh, g.kw = pool_size
        g.sd, g.sh, g.sw = strides
        g.pd, g.ph, g.pw = pads
    except (TypeError, ValueError):
        raise ValueError(f"pool_size, strides and pads must be 3 ints each; received "
                         f"{pool_size!r}, {strides!r}, {pads!r}") from None
    g.d, g.h, g.w, g.c = dim(volumes, 1), dim(volumes, 2), dim(volumes, 3), dim(volumes, 4)
    g.od, g.oh, g.ow = dim(pooled, 1), dim(pooled, 2), dim(pooled, 3)
    if min(g.kd, g.kh, g.kw, g.sd, g.sh, g.sw) < 1 or min(g.pd, g.ph, g.pw) < 0:
        raise ValueError(f"invalid geometry: pool_size {pool_size}, strides {strides}, pads "
                         f"{pads}; expected windows and strides of at least 1, pads of at "
                         f"least 0")
    if dim(volumes, 0) != n or dim(pooled, 0) != n or dim(pooled, 4) != g.c:
        raise ValueError(f"the volumes {volumes.shape} and their pooling {pooled.shape} must "
                         f"have the same batch size and channels")
    if g.d * g.h * g.w * g.c >= 2 ** 31:
        raise ValueError(f"volumes of shape {(g.d, g.h, g.w, g.c)} hold more than 2**31 "
                         f"values")
    return 0


cdef inline void _bounds(Py_ssize_t o, Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t k,
                         Py_ssize_t size, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """[lo, hi): the input positions of window ``o`` along one axis that lie in the input."""
    cdef Py_ssize_t start = o * stride - pad
    lo[0] = max(start, 0)
    hi[0] = max(min(start + k, size), lo[0])


# ---- max pooling ----

cdef inline void _max_update(floating *out, int *idx, const floating *src, Py_ssize_t pos,
                             Py_ssize_t c) noexcept nogil:
    if floating is float:
        mdl_max_update_f32(out, idx, src, <int>pos, c)
    else:
        mdl_max_update_f64(out, idx, src, <int>pos, c)


cdef void _max_pool_row(const _Geometry3D *g, const floating *x, floating *y, int *argmax,
                        Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // (g.od * g.oh), oz = (row // g.oh) % g.od, oy = row % g.oh
    cdef Py_ssize_t c = g.c, ox, iz, iy, ix, ch, pos
    cdef Py_ssize_t z0, z1, y0, y1, x0, x1
    cdef const floating *volume = x + img * g.d * g.h * g.w * c
    cdef floating *out
    cdef int *idx
    cdef bint first
    _bounds(oz, g.sd, g.pd, g.kd, g.d, &z0, &z1)
    _bounds(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1)
    for ox in range(g.ow):
        _bounds(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
        out = y + (row * g.ow + ox) * c
        idx = argmax + (row * g.ow + ox) * c
        first = True
        for iz in range(z0, z1):
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    pos = ((iz * g.h + iy) * g.w + ix) * c
                    if first:
                        first = False
                        copy_values(out, volume + pos, c)
                        for ch in range(c):
                            idx[ch] = <int>(pos + ch)
                    else:
                        _max_update(out, idx, volume + pos, pos, c)
        if first:   # a window entirely in the padding (not produced by Keras' rules)
            for ch in range(c):
                out[ch] = 0
                idx[ch] = -1


cdef void _avg_pool_row(const _Geometry3D *g, const floating *x, floating *y,
                        Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // (g.od * g.oh), oz = (row // g.oh) % g.od, oy = row % g.oh
    cdef Py_ssize_t c = g.c, ox, iz, iy, ix, ch, count
    cdef Py_ssize_t z0, z1, y0, y1, x0, x1
    cdef const floating *volume = x + img * g.d * g.h * g.w * c
    cdef floating *out
    cdef floating scale
    _bounds(oz, g.sd, g.pd, g.kd, g.d, &z0, &z1)
    _bounds(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1)
    for ox in range(g.ow):
        _bounds(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
        out = y + (row * g.ow + ox) * c
        memset(out, 0, c * sizeof(floating))
        for iz in range(z0, z1):
            for iy in range(y0, y1):
                for ix in range(x0, x1):
                    add_values(out, volume + ((iz * g.h + iy) * g.w + ix) * c, c)
        count = (z1 - z0) * (y1 - y0) * (x1 - x0)
        scale = <floating>1 / <floating>count if count else 0
        for ch in range(c):
            out[ch] *= scale


cdef void _pool(const _Geometry3D *g, Py_ssize_t n, const floating *x, floating *y,
                int *argmax, int nt) noexcept nogil:
    """Max pooling (argmax not NULL) or average pooling, one output row per iteration."""
    cdef Py_ssize_t rows = n * g.od * g.oh, row
    if nt == 1:
        for row in range(rows):
            if argmax != NULL:
                _max_pool_row(g, x, y, argmax, row)
            else:
                _avg_pool_row(g, x, y, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            if argmax != NULL:
                _max_pool_row(g, x, y, argmax, row)
            else:
                _avg_pool_row(g, x, y, row)


cdef int _pool_checked(object x, object y, object argmax, object pool_size, object strides,
                       object pads) except -1:
    x = aligned(x)
    cdef int t = float_carray(x, 5, None, "x")
    carray(y, t, 5, None, "y", True)
    cdef Py_ssize_t n = dim(x, 0)
    cdef _Geometry3D g
    _geometry(&g, x, y, pool_size, strides, pads, n)
    if argmax is not None:
        carray(argmax, cnp.NPY_INT, 5, None, "argmax", True)
        if (<object>argmax).shape != (<object>y).shape:
            raise ValueError(f"argmax must have the shape of y {y.shape}; received "
                             f"{argmax.shape}")
    if n * g.od * g.oh * g.ow * g.c == 0:
        return 0
    cdef int nt = num_threads() if n * g.d * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    cdef int *argmax_p = <int *>data(argmax) if argmax is not None else NULL
    cdef char *x_p = data(x)
    cdef char *y_p = data(y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _pool(&g, n, <const float *>x_p, <float *>y_p, argmax_p, nt)
        else:
            _pool(&g, n, <const double *>x_p, <double *>y_p, argmax_p, nt)
    return 0


def max_pool3d_forward(x, y, argmax, pool_size, strides, pads):
    """``y`` = the maximum of each window of ``x``; ``argmax`` = its index within the
    volume, for ``_pooling.scatter_argmax`` (the backward pass).

    Args:
        x: IN ``(n, d, h, w, c)`` float32 or float64, C-contiguous.
        y: OUT ``(n, od, oh, ow, c)``, x's dtype, fully overwritten.
        argmax: OUT ``(n, od, oh, ow, c)`` int32 (C int), fully overwritten.
        pool_size, strides, pads: 3 ints each (pads: before the input).

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
    """
    _pool_checked(x, y, argmax, pool_size, strides, pads)


def avg_pool3d_forward(x, y, pool_size, strides, pads):
    """``y`` = the mean of each window of ``x`` over its positions inside the input.

    Args:
        x: IN ``(n, d, h, w, c)`` float32 or float64. y: OUT ``(n, od, oh, ow, c)``.
        pool_size, strides, pads: as :func:`max_pool3d_forward`.

    Raises:
        TypeError, ValueError: as :func:`max_pool3d_forward`.
    """
    _pool_checked(x, y, None, pool_size, strides, pads)


# ---- average pooling, backward ----

cdef void _avg_pool_backward_volume(const _Geometry3D *g, const floating *dy, floating *dx,
                                    Py_ssize_t img) noexcept nogil:
    cdef Py_ssize_t c = g.c, oz, oy, ox, iz, iy, ix, ch, count
    cdef Py_ssize_t z0, z1, y0, y1, x0, x1
    cdef floating *volume = dx + img * g.d * g.h * g.w * c
    cdef floating *target
    cdef const floating *grad
    cdef floating scale
    memset(volume, 0, g.d * g.h * g.w * c * sizeof(floating))
    for oz in range(g.od):
        _bounds(oz, g.sd, g.pd, g.kd, g.d, &z0, &z1)
        for oy in range(g.oh):
            _bounds(oy, g.sh, g.ph, g.kh, g.h, &y0, &y1)
            for ox in range(g.ow):
                _bounds(ox, g.sw, g.pw, g.kw, g.w, &x0, &x1)
                count = (z1 - z0) * (y1 - y0) * (x1 - x0)
                if count == 0:
                    continue
                grad = dy + (((img * g.od + oz) * g.oh + oy) * g.ow + ox) * c
                scale = <floating>1 / <floating>count
                for iz in range(z0, z1):
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            target = volume + ((iz * g.h + iy) * g.w + ix) * c
                            for ch in range(c):
                                target[ch] += grad[ch] * scale


cdef void _avg_pool_backward(const _Geometry3D *g, Py_ssize_t n, const floating *dy,
                             floating *dx, int nt) noexcept nogil:
    cdef Py_ssize_t img
    if nt == 1:
        for img in range(n):
            _avg_pool_backward_volume(g, dy, dx, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _avg_pool_backward_volume(g, dy, dx, img)


def avg_pool3d_backward(dy, dx, pool_size, strides, pads):
    """Backward of :func:`avg_pool3d_forward`: each output gradient spread evenly over
    its window's positions inside the input.

    Args:
        dy: IN ``(n, od, oh, ow, c)`` float32 or float64. dx: OUT ``(n, d, h, w, c)``, dy's
            dtype, fully overwritten.
        pool_size, strides, pads: as :func:`max_pool3d_forward`.

    Raises:
        TypeError, ValueError: as :func:`max_pool3d_forward`.
    """
    dy = aligned(dy)
    cdef int t = float_carray(dy, 5, None, "dy")
    carray(dx, t, 5, None, "dx", True)
    cdef Py_ssize_t n = dim(dx, 0)
    cdef _Geometry3D g
    _geometry(&g, dx, dy, pool_size, strides, pads, n)
    if n * g.d * g.h * g.w * g.c == 0:
        return
    cdef int nt = num_threads() if n * g.d * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    cdef char *dy_p = data(dy)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _avg_pool_backward(&g, n, <const float *>dy_p, <float *>dx_p, nt)
        else:
            _avg_pool_backward(&g, n, <const double *>dy_p, <double *>dx_p, nt)
