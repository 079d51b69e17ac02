# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A convolution with few taps fused with the max pooling after it (channels_last images).

A model's first layer (one or three channels, a small kernel, a ReLU) followed by a max
pooling skips im2col, the GEMM and the full-size output altogether:
``conv_max_pool_forward`` computes the convolution directly and pools it at once, and
``conv_max_pool_backward`` the weight gradients from the pooled gradient, both in
csrc/conv_pool.c. This module checks the arguments, fills the C kernels' geometry and runs
their rows or images on the threads.

The pooled values and indices are the bits of the unfused path (im2col + GEMM +
``max_pool_forward``, then the bias and the ReLU); the kernel gradient sums in another order
than the GEMM's, but images are summed on their own and added in image order, so the bits
never depend on the thread count.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport (MDL_CP_TAPS, conv_max_pool_grad_image_f32,
                                    conv_max_pool_grad_image_f64, conv_max_pool_row_f32,
                                    conv_max_pool_row_f64, mdl_conv_pool, mdl_window,
                                    num_threads, scratch)
from minidl._core._window cimport PARALLEL_MIN_ELEMENTS, SHARED_SCRATCH, window_geometry

cnp.import_array()


cdef inline Py_ssize_t _round_up(Py_ssize_t value, Py_ssize_t multiple) noexcept nogil:
    return (value + multiple - 1) // multiple * multiple


cdef int _conv_pool_geometry(mdl_conv_pool *g, object x, object kernel, str kernel_name,
                             object pooled, str pooled_name, kernel_size, strides, dilation,
                             pads, out_hw, pool_size, Py_ssize_t itemsize) except -1:
    """Fills ``g`` for the input ``x``, a (k, filters) kernel (or its gradient) and the
    pooled array (y or dy), checked arrays of 4, 2 and 4 dimensions; ValueError when they
    disagree."""
    cdef Py_ssize_t k = dim(kernel, 0), filters = dim(kernel, 1)
    cdef const mdl_window *conv = &g.geo   # filled by window_geometry below
    window_geometry(&g.geo, dim(x, 1), dim(x, 2), dim(x, 3), kernel_size, strides, dilation,
                    pads, out_hw)
    g.ph, g.pw = pool_size
    if g.ph < 1 or g.pw < 1:
        raise ValueError(f"pool_size must be positive; received {pool_size}")
    g.pooled_h, g.pooled_w = conv.out_h // g.ph, conv.out_w // g.pw
    g.filters = filters
    cdef Py_ssize_t patch = conv.kh * conv.kw * conv.c
    if k != patch:
        raise ValueError(f"{kernel_name} must have shape {(patch, filters)}; received "
                         f"{kernel.shape}")
    expected = (dim(x, 0), g.pooled_h, g.pooled_w, filters)
    if pooled.shape != expected:
        raise ValueError(f"the pooled output must have shape {expected}; received "
                         f"{pooled_name} of shape {pooled.shape}")
    if conv.out_h * conv.out_w * filters >= 2 ** 31:
        raise ValueError(f"outputs of {(conv.out_h, conv.out_w, filters)} per image hold "
                         f"more than 2**31 values")
    g.filters_padded = _round_up(filters, 64 // itemsize)
    g.patch_stride = _round_up(k, MDL_CP_TAPS)
    return 0


cdef int _same_shape(object a, object ref, str name, str ref_name) except -1:
    if a.shape != ref.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {ref.shape}; received "
                         f"{a.shape}")
    return 0


# ---- forward ----

def conv_max_pool_forward(x, kernel, y, argmax, kernel_size, strides, dilation, pads, out_hw,
                          pool_size, bias=None, bint relu=False):
    """Max pooling of a convolution without forming its output: ``y`` = the maximum of each
    (non-overlapping, 'valid') pooling window of ``z = conv(x, kernel)`` (no bias), and
    ``argmax`` its index within z's image, the values and indices
    ``max_pool_forward(z, ...)`` gives. Then, when given, ``bias`` is added to ``y`` and,
    with ``relu``, the ReLU applied, the bits of the ReLU kernel on ``y + bias`` (both
    commute with the maximum). Meant for kernels of few taps (csrc/conv_pool.c).

    Args:
        x: (n, h, w, c) float32 or float64 input.
        kernel: (kh * kw * c, filters) of x's dtype.
        y: (n, out_h // ph, out_w // pw, filters) of x's dtype, fully overwritten.
        argmax: int32 of y's shape, fully overwritten.
        kernel_size, strides, dilation, pads, out_hw: the convolution, as for
            ``_convolution.im2col``.
        pool_size: (ph, pw), also the pooling strides.
        bias: optional (filters,) of x's dtype.
        relu: whether to apply the ReLU after the bias.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
        MemoryError: no memory for the kernel's buffers.
    """
    x, kernel, bias = aligned(x), aligned(kernel), aligned(bias)
    cdef int t = float_carray(x, 4, None, "x")
    carray(kernel, t, 2, None, "kernel", False)
    carray(y, t, 4, None, "y", True)
    carray(argmax, cnp.NPY_INT, 4, None, "argmax", True)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    cdef mdl_conv_pool g
    _conv_pool_geometry(&g, x, kernel, "kernel", y, "y", kernel_size, strides, dilation, pads,
                        out_hw, pool_size, itemsize)
    _same_shape(argmax, y, "argmax", "y")
    if bias is not None:
        carray(bias, t, 1, None, "bias", False)
        if dim(bias, 0) != g.filters:
            raise ValueError(f"bias must have shape {(g.filters,)}; received {bias.shape}")
    cdef Py_ssize_t rows = dim(x, 0) * g.pooled_h
    if rows * g.pooled_w * g.filters == 0:
        return
    # The kernel with its rows padded to whole vectors of filters (zeros past the last).
    cdef void *padded = scratch(SHARED_SCRATCH, dim(kernel, 0) * g.filters_padded * itemsize)
    if padded == NULL:
        raise MemoryError()
    cdef const void *bp = data(bias) if bias is not None else NULL
    cdef int failed
    cdef char *x_p = data(x)
    cdef char *kernel_p = data(kernel)
    cdef char *y_p = data(y)
    cdef char *argmax_p = data(argmax)
    with nogil:
        if t == cnp.NPY_FLOAT:
            failed = _forward(&g, rows, <const float *>x_p, <const float *>kernel_p,
                              <float *>padded, <const float *>bp, relu, <float *>y_p,
                              <int *>argmax_p)
        else:
            failed = _forward(&g, rows, <const double *>x_p, <const double *>kernel_p,
                              <double *>padded, <const double *>bp, relu, <double *>y_p,
                              <int *>argmax_p)
    if failed:
        raise MemoryError("conv_max_pool_forward: no memory for the band buffers")


cdef int _forward(const mdl_conv_pool *g, Py_ssize_t rows, const floating *x,
                  const floating *kernel, floating *padded, const floating *bias, bint relu,
                  floating *y, int *argmax) noexcept nogil:
    """The pooled rows (``rows`` = images * pooled_h), each on one thread; ``padded`` gets
    the kernel with rows of filters_padded. Returns the number of rows that ran out of
    memory."""
    cdef Py_ssize_t k = g.geo.kh * g.geo.kw * g.geo.c, q, f, row
    cdef Py_ssize_t per_row = g.pooled_w * g.filters, per_image = g.geo.h * g.geo.w * g.geo.c
    cdef int failed = 0
    cdef int nt = num_threads() if rows * per_row * 4 >= PARALLEL_MIN_ELEMENTS else 1
    for q in range(k):
        for f in range(g.filters_padded):
            padded[q * g.filters_padded + f] = kernel[q * g.filters + f] if f < g.filters else 0
    if nt == 1:
        for row in range(rows):
            failed += _row(g, x + (row // g.pooled_h) * per_image, padded, bias, relu,
                           y + row * per_row, argmax + row * per_row, row % g.pooled_h)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            failed += _row(g, x + (row // g.pooled_h) * per_image, padded, bias, relu,
                           y + row * per_row, argmax + row * per_row, row % g.pooled_h)
    return failed


cdef inline int _row(const mdl_conv_pool *g, const floating *image, const floating *kernel,
                     const floating *bias, bint relu, floating *y_row, int *argmax_row,
                     Py_ssize_t py) noexcept nogil:
    if floating is float:
        return conv_max_pool_row_f32(g, image, kernel, bias, relu, y_row, argmax_row, py) != 0
    else:
        return conv_max_pool_row_f64(g, image, kernel, bias, relu, y_row, argmax_row, py) != 0


# ---- backward ----

def conv_max_pool_backward(x, dy, argmax, gate, d_kernel, d_bias, kernel_size, strides, dilation,
                           pads, out_hw, pool_size):
    """Weight gradients through :func:`conv_max_pool_forward` followed by a bias and a
    ReLU: ``d_kernel`` and ``d_bias`` from the gradient ``dy`` of ``relu(y + bias)``, where
    ``gate`` is that output (the gradient passes where it is positive) and ``argmax`` the
    forward's. No input gradient: this serves a model's first layer. An argmax entry outside
    its window matches nothing (its gradient is dropped, as in ``max_pool_backward``).

    Args:
        x: (n, h, w, c) float32 or float64, the forward pass's input.
        dy: (n, pooled_h, pooled_w, filters) of x's dtype.
        argmax: int32 of dy's shape. gate: of dy's shape and x's dtype.
        d_kernel: (kh * kw * c, filters) of x's dtype, overwritten.
        d_bias: (filters,) of x's dtype, overwritten; or None.
        kernel_size, strides, dilation, pads, out_hw, pool_size: as for
            :func:`conv_max_pool_forward`.

    Raises:
        TypeError, ValueError: as :func:`conv_max_pool_forward`.
        MemoryError: no memory for the kernel's buffers.
    """
    x, dy, argmax, gate = aligned(x), aligned(dy), aligned(argmax), aligned(gate)
    cdef int t = float_carray(x, 4, None, "x")
    carray(dy, t, 4, None, "dy", False)
    carray(argmax, cnp.NPY_INT, 4, None, "argmax", False)
    carray(gate, t, 4, None, "gate", False)
    carray(d_kernel, t, 2, None, "d_kernel", True)
    if d_bias is not None:
        carray(d_bias, t, 1, None, "d_bias", True)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    cdef mdl_conv_pool g
    _conv_pool_geometry(&g, x, d_kernel, "d_kernel", dy, "dy", kernel_size, strides, dilation,
                        pads, out_hw, pool_size, itemsize)
    _same_shape(argmax, dy, "argmax", "dy")
    _same_shape(gate, dy, "gate", "dy")
    if d_bias is not None and dim(d_bias, 0) != g.filters:
        raise ValueError(f"d_bias must have shape {(g.filters,)}; received {d_bias.shape}")
    cdef Py_ssize_t n = dim(x, 0), k = dim(d_kernel, 0), f = g.filters
    cdef void *bp = data(d_bias) if d_bias is not None else NULL
    memset(data(d_kernel), 0, k * f * itemsize)
    if bp != NULL:
        memset(bp, 0, f * itemsize)
    if n == 0 or g.pooled_h * g.pooled_w * f == 0 or k * f == 0:
        return
    # Each image's kernel and bias gradients, added in image order after the threads.
    cdef void *partial = scratch(SHARED_SCRATCH, n * (k * f + f) * itemsize)
    if partial == NULL:
        raise MemoryError()
    cdef int failed
    cdef char *x_p = data(x)
    cdef char *dy_p = data(dy)
    cdef char *argmax_p = data(argmax)
    cdef char *gate_p = data(gate)
    cdef char *d_kernel_p = data(d_kernel)
    with nogil:
        if t == cnp.NPY_FLOAT:
            failed = _backward(&g, n, <const float *>x_p, <const float *>dy_p,
                               <const int *>argmax_p, <const float *>gate_p,
                               <float *>partial, <float *>d_kernel_p, <float *>bp)
        else:
            failed = _backward(&g, n, <const double *>x_p, <const double *>dy_p,
                               <const int *>argmax_p, <const double *>gate_p,
                               <double *>partial, <double *>d_kernel_p, <double *>bp)
    if failed:
        raise MemoryError("conv_max_pool_backward: no memory for the band buffers")


cdef int _backward(const mdl_conv_pool *g, Py_ssize_t n, const floating *x,
                   const floating *dy, const int *argmax, const floating *gate,
                   floating *partial, floating *d_kernel, floating *d_bias) noexcept nogil:
    """Each image's gradients into its part of ``partial`` (k * filters, then filters), one
    image per thread, then their sums in image order into d_kernel and d_bias (zeroed by
    the caller; d_bias may be NULL). Returns the number of images that ran out of memory
    (the sums are then not formed)."""
    cdef Py_ssize_t k = g.geo.kh * g.geo.kw * g.geo.c, f = g.filters, img, q
    cdef Py_ssize_t per_grad = k * f + f, per_image = g.geo.h * g.geo.w * g.geo.c
    cdef Py_ssize_t per_pooled = g.pooled_h * g.pooled_w * f
    cdef int failed = 0
    cdef int nt = (num_threads() if n > 1 and n * g.geo.out_h * g.geo.out_w * k * f
                   >= PARALLEL_MIN_ELEMENTS else 1)
    if nt == 1:
        for img in range(n):
            failed += _grad(g, x + img * per_image, dy + img * per_pooled,
                            argmax + img * per_pooled, gate + img * per_pooled,
                            partial + img * per_grad)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            failed += _grad(g, x + img * per_image, dy + img * per_pooled,
                            argmax + img * per_pooled, gate + img * per_pooled,
                            partial + img * per_grad)
    if failed:
        return failed
    for img in range(n):   # image order, whatever the thread count
        for q in range(k * f):
            d_kernel[q] += partial[img * per_grad + q]
    if d_bias != NULL:
        for img in range(n):
            for q in range(f):
                d_bias[q] += partial[img * per_grad + k * f + q]
    return 0


cdef inline int _grad(const mdl_conv_pool *g, const floating *image, const floating *dy,
                      const int *argmax, const floating *gate,
                      floating *partial) noexcept nogil:
    cdef Py_ssize_t k = g.geo.kh * g.geo.kw * g.geo.c
    if floating is float:
        return conv_max_pool_grad_image_f32(g, image, dy, argmax, gate, partial,
                                            partial + k * g.filters) != 0
    else:
        return conv_max_pool_grad_image_f64(g, image, dy, argmax, gate, partial,
                                            partial + k * g.filters) != 0
