# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Pooling kernels for the pooling layers (channels_last images).

Max pooling (``max_pool_forward`` / ``max_pool_backward``, and ``scatter_argmax``, the
backward of any maximum over windows), average pooling (``avg_pool_forward`` /
``avg_pool_backward``) and global pooling over all positions of an image
(``global_max_pool`` / ``global_avg_pool``).

A max pooling keeps, with each maximum, its index within the image (``argmax``), to which
the backward pass routes the gradient. Its rule, the same in every kernel of minidl (the
fused convolution and pooling of csrc/conv_pool.c included): the first maximum in the
window's row-major order wins ties, and a NaN wins over any number (mdl_max_update_* in
csrc/exact_math.h). The common 2x2 window and the backward of windows that tile the image
run in C, built for the machine's vector width (csrc/pooling.c).

Geometry: see _window.pxd (pooling has no dilation). Arguments: each function copies a
misaligned input and refuses a misaligned output, and checks every array's dtype, rank,
contiguity and shape (_arrays.pxd) before it reads through raw pointers.

Determinism: the forward passes only compare or add in a fixed order per output; the
backward passes accumulate one image per thread, each image in a fixed order, so the bits
never depend on the thread count.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport (max_pool_2x2_row_f32, max_pool_2x2_row_f64, mdl_window,
                                    num_threads, unpool_tiled_f32, unpool_tiled_f64)
from minidl._core._exact_math cimport mdl_max_update_f32, mdl_max_update_f64
from minidl._core._window cimport (PARALLEL_MIN_ELEMENTS, add_values, copy_values, interior,
                                   window_geometry)

cnp.import_array()


cdef int _check_pooled(const mdl_window *g, Py_ssize_t n, object a, str name) except -1:
    """``a`` (a checked 4-D array) has the pooled shape (n, out_h, out_w, c)."""
    if (dim(a, 0) != n or dim(a, 1) != g.out_h or dim(a, 2) != g.out_w
            or dim(a, 3) != g.c):
        raise ValueError(f"{name} must have shape {(n, g.out_h, g.out_w, g.c)}; "
                         f"received {a.shape}")
    return 0


# ---- max pooling ----

cdef inline void _max_update(floating *out, int *idx, const floating *src, Py_ssize_t pos,
                             Py_ssize_t c) noexcept nogil:
    # out = max(out, src) per channel, idx following the winner: MaxPooling's rule, the one
    # of csrc/exact_math.h that the C loops follow too (pos < 2**31: window_geometry checks).
    if floating is float:
        mdl_max_update_f32(out, idx, src, <int>pos, c)
    else:
        mdl_max_update_f64(out, idx, src, <int>pos, c)


cdef void _max_pool_row(const mdl_window *g, const floating *x, floating *y, int *argmax,
                        Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h, c = g.c
    cdef Py_ssize_t ox, ky, kx, iy, ix, ch, pos, lo = 0, hi = 0
    cdef const floating *image = x + img * g.h * g.w * c
    cdef floating *out
    cdef int *idx
    cdef bint first
    cdef Py_ssize_t y0 = oy * g.sh - g.pad_top
    if g.kh == 2 and g.kw == 2 and y0 >= 0 and y0 + 1 < g.h:
        # 2x2 windows (MaxPooling2D()'s default) inside the image: columns [lo, hi) in C,
        # built for the machine's vector width (csrc/pooling.c); the loop below does the rest.
        interior(g, &lo, &hi)
        if floating is float:
            max_pool_2x2_row_f32(g, image, oy, lo, hi, y + row * g.out_w * c,
                                 argmax + row * g.out_w * c)
        else:
            max_pool_2x2_row_f64(g, image, oy, lo, hi, y + row * g.out_w * c,
                                 argmax + row * g.out_w * c)
    for ox in range(g.out_w):
        if lo <= ox < hi:
            continue
        out = y + (row * g.out_w + ox) * c
        idx = argmax + (row * g.out_w + ox) * c
        first = True
        for ky in range(g.kh):
            iy = y0 + ky
            if iy < 0 or iy >= g.h:
                continue
            for kx in range(g.kw):
                ix = ox * g.sw - g.pad_left + kx
                if ix < 0 or ix >= g.w:
                    continue
                pos = (iy * g.w + ix) * c
                if first:
                    first = False
                    copy_values(out, image + pos, c)
                    for ch in range(c):
                        idx[ch] = <int>(pos + ch)
                else:
                    _max_update(out, idx, image + pos, pos, c)
        if first:   # a window entirely in the padding (not produced by Keras' rules)
            for ch in range(c):
                out[ch] = 0
                idx[ch] = -1


cdef void _max_pool(const mdl_window *g, Py_ssize_t n, const floating *x, floating *y,
                    int *argmax) noexcept nogil:
    cdef Py_ssize_t rows = n * g.out_h, row
    cdef int nt = num_threads() if n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    if nt == 1:
        for row in range(rows):
            _max_pool_row(g, x, y, argmax, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            _max_pool_row(g, x, y, argmax, row)


def max_pool_forward(x, y, argmax, pool_size, strides, pads):
    """``y`` = the maximum of each window of ``x``; ``argmax`` = its index within the image
    (``(iy * w + ix) * c + ch``), which the backward pass routes the gradient to.

    Args:
        x: (n, h, w, c) float32 or float64 input.
        y: (n, out_h, out_w, c) of x's dtype, fully overwritten.
        argmax: (n, out_h, out_w, c) int32 (C int), fully overwritten.
        pool_size, strides, pads: pairs of ints (pads: before the input, top and left).

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
    """
    x = aligned(x)
    cdef int t = float_carray(x, 4, None, "x")
    carray(y, t, 4, None, "y", True)
    carray(argmax, cnp.NPY_INT, 4, None, "argmax", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    window_geometry(&g, dim(x, 1), dim(x, 2), dim(x, 3), pool_size, strides, (1, 1), pads,
                    (dim(y, 1), dim(y, 2)))
    _check_pooled(&g, n, y, "y")
    _check_pooled(&g, n, argmax, "argmax")
    if n * g.out_h * g.out_w * g.c == 0:
        return
    cdef char *x_p = data(x)
    cdef char *y_p = data(y)
    cdef char *argmax_p = data(argmax)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _max_pool(&g, n, <const float *>x_p, <float *>y_p, <int *>argmax_p)
        else:
            _max_pool(&g, n, <const double *>x_p, <double *>y_p, <int *>argmax_p)


cdef int _scatter_image(const floating *dy, const int *argmax, const floating *gate,
                        floating *dx, Py_ssize_t per_out, Py_ssize_t per_in,
                        Py_ssize_t img) noexcept nogil:
    # Returns the number of indices outside [-1, per_in) (skipped): they come from our
    # forward pass, but a caller could pass anything, so none is trusted.
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef floating *image = dx + img * per_in
    cdef const floating *grad = dy + img * per_out
    cdef const int *idx = argmax + img * per_out
    cdef const floating *g = gate + img * per_out if gate != NULL else NULL
    memset(image, 0, per_in * sizeof(floating))
    for i in range(per_out):
        if idx[i] < 0 or idx[i] >= per_in:
            bad += idx[i] != -1
        elif g == NULL or g[i] > 0:
            image[idx[i]] += grad[i]
    return bad


cdef Py_ssize_t _scatter(const floating *dy, const int *argmax, const floating *gate,
                         floating *dx, Py_ssize_t n, Py_ssize_t per_out,
                         Py_ssize_t per_in) noexcept nogil:
    """dx (n, per_in) = the scatter of dy at argmax (n, per_out), one image per thread;
    returns the number of indices outside [-1, per_in), which were skipped."""
    cdef Py_ssize_t bad = 0, img
    cdef int nt = num_threads() if n * per_in >= PARALLEL_MIN_ELEMENTS else 1
    if n * per_in == 0:
        return 0
    if per_out == 0:
        memset(dx, 0, n * per_in * sizeof(floating))
        return 0
    if nt == 1:
        for img in range(n):
            bad += _scatter_image(dy, argmax, gate, dx, per_out, per_in, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            bad += _scatter_image(dy, argmax, gate, dx, per_out, per_in, img)
    return bad


cdef int _scatter_checked(int t, object dy, object argmax, object dx, object gate,
                          Py_ssize_t n, Py_ssize_t per_out, Py_ssize_t per_in) except -1:
    """:func:`_scatter` of checked arrays of type ``t``; ValueError for indices outside
    [-1, per_in)."""
    cdef Py_ssize_t bad
    cdef const void *gp = data(gate) if gate is not None else NULL
    cdef char *dy_p = data(dy)
    cdef char *argmax_p = data(argmax)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            bad = _scatter(<const float *>dy_p, <const int *>argmax_p,
                           <const float *>gp, <float *>dx_p, n, per_out, per_in)
        else:
            bad = _scatter(<const double *>dy_p, <const int *>argmax_p,
                           <const double *>gp, <double *>dx_p, n, per_out, per_in)
    if bad:
        raise ValueError(f"argmax holds {bad} indices outside [-1, {per_in})")
    return 0


cdef void _unpool_tiled(const mdl_window *g, Py_ssize_t n, const floating *dy, const int *argmax,
                        const floating *gate, floating *dx) noexcept nogil:
    # Windows that tile the image: one in-order pass writing dx per image (csrc/pooling.c).
    cdef Py_ssize_t per_out = g.out_h * g.out_w * g.c, per_in = g.h * g.w * g.c, img
    cdef int nt = num_threads() if n * per_in >= PARALLEL_MIN_ELEMENTS else 1
    if nt == 1:
        for img in range(n):
            _unpool_tiled_image(g, dy, argmax, gate, dx, per_out, per_in, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _unpool_tiled_image(g, dy, argmax, gate, dx, per_out, per_in, img)


cdef inline void _unpool_tiled_image(const mdl_window *g, const floating *dy, const int *argmax,
                                     const floating *gate, floating *dx, Py_ssize_t per_out,
                                     Py_ssize_t per_in, Py_ssize_t img) noexcept nogil:
    cdef const floating *image_gate = gate + img * per_out if gate != NULL else NULL
    if floating is float:
        unpool_tiled_f32(g, dy + img * per_out, argmax + img * per_out, image_gate,
                         dx + img * per_in)
    else:
        unpool_tiled_f64(g, dy + img * per_out, argmax + img * per_out, image_gate,
                         dx + img * per_in)


def max_pool_backward(dy, argmax, dx, pool_size, strides, pads, gate=None):
    """Backward of :func:`max_pool_forward`: ``dx`` gets each window's gradient at its
    argmax (only where ``gate`` > 0 when given; see :func:`scatter_argmax`). Windows that
    tile the input take a single in-order pass; others zero dx and scatter.

    Args:
        dy: (n, out_h, out_w, c) float32 or float64 gradient of the pooled output.
        argmax: (n, out_h, out_w, c) int32, as the forward pass wrote it.
        dx: (n, h, w, c) of dy's dtype, fully overwritten.
        pool_size, strides, pads: as for :func:`max_pool_forward`.
        gate: optional (n, out_h, out_w, c) of dy's dtype.

    Raises:
        TypeError, ValueError: as :func:`max_pool_forward`; ValueError also for argmax
            indices outside [-1, h * w * c) on the scatter path.
    """
    dy, argmax, gate = aligned(dy), aligned(argmax), aligned(gate)
    cdef int t = float_carray(dy, 4, None, "dy")
    carray(argmax, cnp.NPY_INT, 4, None, "argmax", False)
    carray(dx, t, 4, None, "dx", True)
    if gate is not None:
        carray(gate, t, 4, None, "gate", False)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(dx, 0)
    window_geometry(&g, dim(dx, 1), dim(dx, 2), dim(dx, 3), pool_size, strides, (1, 1), pads,
                    (dim(dy, 1), dim(dy, 2)))
    _check_pooled(&g, n, dy, "dy")
    _check_pooled(&g, n, argmax, "argmax")
    if gate is not None:
        _check_pooled(&g, n, gate, "gate")
    cdef bint tiled = (g.sh == g.kh and g.sw == g.kw and g.pad_top == 0 and g.pad_left == 0
                       and g.out_h * g.kh <= g.h and g.out_w * g.kw <= g.w)
    cdef Py_ssize_t per_out = g.out_h * g.out_w * g.c, per_in = g.h * g.w * g.c
    if not tiled or per_out == 0 or per_in == 0:
        _scatter_checked(t, dy, argmax, dx, gate, n, per_out, per_in)
        return
    cdef const void *gp = data(gate) if gate is not None else NULL
    cdef char *dy_p = data(dy)
    cdef char *argmax_p = data(argmax)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _unpool_tiled(&g, n, <const float *>dy_p, <const int *>argmax_p,
                          <const float *>gp, <float *>dx_p)
        else:
            _unpool_tiled(&g, n, <const double *>dy_p, <const int *>argmax_p,
                          <const double *>gp, <double *>dx_p)


def scatter_argmax(dy, argmax, dx, gate=None):
    """Backward of a max over windows: ``dx[i, argmax[i, j]] += dy[i, j]`` per image ``i``
    (dx is zeroed first). Used by MaxPooling and GlobalMaxPooling.

    With ``gate`` (the pooled output), only entries with ``gate[i, j] > 0`` are scattered:
    when the pooled values went through a ReLU, that is the ReLU's backward too (the
    maximum of relu(z) is relu(z[argmax]), positive exactly where relu'(z[argmax]) = 1).

    Args:
        dy: (n, outputs per image) float32 or float64, as the forward pass's output.
        argmax: (n, outputs per image) int32, as the forward pass wrote it.
        dx: (n, inputs per image) of dy's dtype, fully overwritten; indices of argmax must
            lie in [-1, inputs) (-1: none).
        gate: optional (n, outputs per image) of dy's dtype.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, or a
            misaligned output; ValueError also for indices outside [-1, inputs).
    """
    dy, argmax, gate = aligned(dy), aligned(argmax), aligned(gate)
    cdef int t = float_carray(dy, 2, None, "dy")
    carray(argmax, cnp.NPY_INT, 2, None, "argmax", False)
    carray(dx, t, 2, None, "dx", True)
    cdef Py_ssize_t n = dim(dx, 0), per_in = dim(dx, 1), per_out = dim(dy, 1)
    if dim(dy, 0) != n or dim(argmax, 0) != n or dim(argmax, 1) != per_out:
        raise ValueError(f"dy {dy.shape}, argmax {argmax.shape} and dx {dx.shape} disagree; "
                         f"expected dy and argmax of shape (n, outputs), dx of (n, inputs)")
    if gate is not None:
        carray(gate, t, 2, None, "gate", False)
        if dim(gate, 0) != n or dim(gate, 1) != per_out:
            raise ValueError(f"gate must have the shape of dy {(n, per_out)}; received "
                             f"{gate.shape}")
    _scatter_checked(t, dy, argmax, dx, gate, n, per_out, per_in)


# ---- average pooling ----

cdef inline Py_ssize_t _window_count(const mdl_window *g, Py_ssize_t oy,
                                     Py_ssize_t ox) noexcept nogil:
    """Number of window positions inside the input (padding does not count, as in Keras)."""
    cdef Py_ssize_t y0 = oy * g.sh - g.pad_top, x0 = ox * g.sw - g.pad_left
    cdef Py_ssize_t rows = min(y0 + g.kh, g.h) - max(y0, 0)
    cdef Py_ssize_t cols = min(x0 + g.kw, g.w) - max(x0, 0)
    return max(rows, 0) * max(cols, 0)


cdef void _avg_pool_row(const mdl_window *g, const floating *x, floating *y,
                        Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h, c = g.c
    cdef Py_ssize_t ox, iy, ix, ch, count
    cdef const floating *image = x + img * g.h * g.w * c
    cdef floating *out
    cdef floating scale
    for ox in range(g.out_w):
        out = y + (row * g.out_w + ox) * c
        memset(out, 0, c * sizeof(floating))
        count = _window_count(g, oy, ox)
        for iy in range(max(oy * g.sh - g.pad_top, 0), min(oy * g.sh - g.pad_top + g.kh, g.h)):
            for ix in range(max(ox * g.sw - g.pad_left, 0),
                            min(ox * g.sw - g.pad_left + g.kw, g.w)):
                add_values(out, image + (iy * g.w + ix) * c, c)
        scale = <floating>1 / <floating>count if count else 0
        for ch in range(c):
            out[ch] *= scale


cdef void _avg_pool(const mdl_window *g, Py_ssize_t n, const floating *x,
                    floating *y) noexcept nogil:
    cdef Py_ssize_t rows = n * g.out_h, row
    cdef int nt = num_threads() if n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    if nt == 1:
        for row in range(rows):
            _avg_pool_row(g, x, y, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            _avg_pool_row(g, x, y, row)


def avg_pool_forward(x, y, pool_size, strides, pads):
    """``y`` = the mean of each window of ``x`` over its positions inside the input.

    Args:
        x: (n, h, w, c) float32 or float64 input.
        y: (n, out_h, out_w, c) of x's dtype, fully overwritten.
        pool_size, strides, pads: as for :func:`max_pool_forward`.

    Raises:
        TypeError, ValueError: as :func:`max_pool_forward`.
    """
    x = aligned(x)
    cdef int t = float_carray(x, 4, None, "x")
    carray(y, t, 4, None, "y", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    window_geometry(&g, dim(x, 1), dim(x, 2), dim(x, 3), pool_size, strides, (1, 1), pads,
                    (dim(y, 1), dim(y, 2)))
    _check_pooled(&g, n, y, "y")
    if n * g.out_h * g.out_w * g.c == 0:
        return
    cdef char *x_p = data(x)
    cdef char *y_p = data(y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _avg_pool(&g, n, <const float *>x_p, <float *>y_p)
        else:
            _avg_pool(&g, n, <const double *>x_p, <double *>y_p)


cdef void _avg_pool_backward_image(const mdl_window *g, const floating *dy, floating *dx,
                                   Py_ssize_t img) noexcept nogil:
    cdef Py_ssize_t c = g.c, oy, ox, iy, ix, ch, count
    cdef floating *image = dx + img * g.h * g.w * c
    cdef const floating *grad
    cdef floating scale
    memset(image, 0, g.h * g.w * c * sizeof(floating))
    for oy in range(g.out_h):
        for ox in range(g.out_w):
            grad = dy + ((img * g.out_h + oy) * g.out_w + ox) * c
            count = _window_count(g, oy, ox)
            if count == 0:
                continue
            scale = <floating>1 / <floating>count
            for iy in range(max(oy * g.sh - g.pad_top, 0), min(oy * g.sh - g.pad_top + g.kh, g.h)):
                for ix in range(max(ox * g.sw - g.pad_left, 0),
                                min(ox * g.sw - g.pad_left + g.kw, g.w)):
                    for ch in range(c):
                        image[(iy * g.w + ix) * c + ch] += grad[ch] * scale


cdef void _avg_pool_backward(const mdl_window *g, Py_ssize_t n, const floating *dy,
                             floating *dx) noexcept nogil:
    cdef Py_ssize_t img
    cdef int nt = num_threads() if n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    if g.out_h * g.out_w == 0:
        memset(dx, 0, n * g.h * g.w * g.c * sizeof(floating))
    elif nt == 1:
        for img in range(n):
            _avg_pool_backward_image(g, dy, dx, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _avg_pool_backward_image(g, dy, dx, img)


def avg_pool_backward(dy, dx, pool_size, strides, pads):
    """Backward of :func:`avg_pool_forward`: each output gradient spread evenly over the
    window's positions inside the input.

    Args:
        dy: (n, out_h, out_w, c) float32 or float64 gradient of the pooled output.
        dx: (n, h, w, c) of dy's dtype, fully overwritten.
        pool_size, strides, pads: as for :func:`max_pool_forward`.

    Raises:
        TypeError, ValueError: as :func:`max_pool_forward`.
    """
    dy = aligned(dy)
    cdef int t = float_carray(dy, 4, None, "dy")
    carray(dx, t, 4, None, "dx", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(dx, 0)
    window_geometry(&g, dim(dx, 1), dim(dx, 2), dim(dx, 3), pool_size, strides, (1, 1), pads,
                    (dim(dy, 1), dim(dy, 2)))
    _check_pooled(&g, n, dy, "dy")
    if n * g.h * g.w * g.c == 0:
        return
    cdef char *dy_p = data(dy)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _avg_pool_backward(&g, n, <const float *>dy_p, <float *>dx_p)
        else:
            _avg_pool_backward(&g, n, <const double *>dy_p, <double *>dx_p)


# ---- global pooling: (n, positions, c) -> (n, c) ----

cdef void _global_pool_image(const floating *x, floating *y, int *argmax, Py_ssize_t positions,
                             Py_ssize_t c, Py_ssize_t img) noexcept nogil:
    cdef const floating *image = x + img * positions * c
    cdef floating *out = y + img * c
    cdef int *idx = argmax + img * c if argmax != NULL else NULL
    cdef Py_ssize_t p, ch
    for ch in range(c):
        out[ch] = image[ch]
        if idx != NULL:
            idx[ch] = <int>ch
    for p in range(1, positions):
        if idx == NULL:
            add_values(out, image + p * c, c)
        else:
            _max_update(out, idx, image + p * c, p * c, c)
    if idx == NULL:
        for ch in range(c):
            out[ch] /= <floating>positions


cdef void _global_pool(const floating *x, floating *y, int *argmax, Py_ssize_t n,
                       Py_ssize_t positions, Py_ssize_t c) noexcept nogil:
    """y (n, c) = the mean of x (n, positions, c) over the positions, or with argmax (not
    NULL) their maximum and its index ``p * c + ch``."""
    cdef Py_ssize_t img
    cdef int nt = num_threads() if n * positions * c >= PARALLEL_MIN_ELEMENTS else 1
    if nt == 1:
        for img in range(n):
            _global_pool_image(x, y, argmax, positions, c, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _global_pool_image(x, y, argmax, positions, c, img)


cdef int _global_pool_checked(object x, object y, object argmax) except -1:
    """:func:`_global_pool` after checking the arrays (argmax None for the mean)."""
    x = aligned(x)
    cdef int t = float_carray(x, 3, None, "x")
    carray(y, t, 2, None, "y", True)
    cdef Py_ssize_t n = dim(x, 0), positions = dim(x, 1), c = dim(x, 2)
    if argmax is not None:
        carray(argmax, cnp.NPY_INT, 2, None, "argmax", True)
        if dim(argmax, 0) != dim(y, 0) or dim(argmax, 1) != dim(y, 1):
            raise ValueError(f"argmax must have the shape of y {y.shape}; received "
                             f"{argmax.shape}")
    if dim(y, 0) != n or dim(y, 1) != c:
        raise ValueError(f"y must have shape {(n, c)}; received {y.shape}")
    if positions == 0 or positions * c >= 2 ** 31:
        raise ValueError(f"cannot pool {positions} positions of {c} channels; expected "
                         f"1 to 2**31 - 1 values per image")
    if n * c == 0:
        return 0
    cdef int *ap = <int *>data(argmax) if argmax is not None else NULL
    cdef char *x_p = data(x)
    cdef char *y_p = data(y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _global_pool(<const float *>x_p, <float *>y_p, ap, n, positions, c)
        else:
            _global_pool(<const double *>x_p, <double *>y_p, ap, n, positions, c)
    return 0


def global_avg_pool(x, y):
    """``y[i, ch]`` = the mean of ``x[i, :, ch]``.

    Args:
        x: (n, positions, c) float32 or float64, an image flattened over its spatial axes.
        y: (n, c) of x's dtype, fully overwritten.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or no positions.
    """
    _global_pool_checked(x, y, None)


def global_max_pool(x, y, argmax):
    """``y[i, ch]`` = the maximum of ``x[i, :, ch]``; ``argmax[i, ch]`` its index within
    the flattened sample (``p * c + ch``), for :func:`scatter_argmax`.

    Args:
        x: (n, positions, c) float32 or float64. y: (n, c) of x's dtype. argmax: (n, c)
            int32. Both outputs are fully overwritten.

    Raises:
        TypeError, ValueError: as :func:`global_avg_pool`.
    """
    _global_pool_checked(x, y, argmax)
