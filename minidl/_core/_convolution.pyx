# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Convolution kernels for the convolution layers (channels_last images): patch packing and
the training convolution.

A convolution is one GEMM on our core: ``im2col`` copies every receptive field of the
input into one row of a ``(n * out_h * out_w, kh * kw * c)`` matrix (column order ky, kx, c,
the order of a Keras kernel reshaped to ``(kh * kw * c, filters)``), so that

    forward:  z = cols @ kernel                  (then bias + activation, fused)
    backward: d_kernel = cols^T @ dz,  d_cols = dz @ kernel^T,  dx = col2im(d_cols)

``conv_train_forward`` / ``conv_train_backward`` run a training step's passes a few images
at a time, so that each chunk's patches stay in cache between packing and GEMM (the patch
path); or, for most convolutions (``direct_plan``), without any patches: csrc/conv_direct.c
computes the same bits from the image itself (a zero-padded copy of the batch, which the
backward pass reuses when the layer keeps it). The fused convolution and max pooling of a
first layer is in _conv_pool.pyx.

A transposed convolution (layers/conv_transpose.py) runs these passes the other way round:
its forward pass is a convolution's input gradient (``conv_input_grad``: GEMM, then col2im
into its output), its backward pass a convolution's forward pass (the input gradient) and
kernel gradient, both over the output gradient's patches.

Geometry: see _window.pxd. Arguments: each function copies a misaligned input and refuses a
misaligned output, and checks every array's dtype, rank, contiguity and shape (_arrays.pxd)
before it reads through raw pointers.

Determinism: im2col only copies; col2im accumulates one image per thread, each image in a
fixed order, and the kernel gradient adds the chunks in order, so the bits never depend on
the thread count.
"""
import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport (add_runs_f32, add_runs_f64, conv_direct_backward_f32,
                                    conv_direct_backward_f64, conv_direct_forward_f32,
                                    conv_direct_forward_f64, copy_runs_f32, copy_runs_f64,
                                    dgemm, mdl_conv_direct, mdl_window, num_threads, scratch,
                                    sgemm)
from minidl._core._window cimport (PARALLEL_MIN_ELEMENTS, SHARED_SCRATCH, add_values,
                                   copy_values, interior, window_geometry)

cnp.import_array()


cdef inline void _copy_runs(floating *dst, Py_ssize_t dst_stride, const floating *src,
                            Py_ssize_t src_stride, Py_ssize_t runs,
                            Py_ssize_t width) noexcept nogil:
    # Runs of a kernel row along an output row, in C for the machine's vector width.
    if floating is float:
        copy_runs_f32(dst, dst_stride, src, src_stride, runs, width)
    else:
        copy_runs_f64(dst, dst_stride, src, src_stride, runs, width)


cdef inline void _add_runs(floating *dst, Py_ssize_t dst_stride, const floating *src,
                           Py_ssize_t src_stride, Py_ssize_t runs,
                           Py_ssize_t width) noexcept nogil:
    # dst runs may overlap each other when strides are below the kernel width (sw * c <
    # width): the C loop adds run after run in order, as the loop it replaces did.
    if floating is float:
        add_runs_f32(dst, dst_stride, src, src_stride, runs, width)
    else:
        add_runs_f64(dst, dst_stride, src, src_stride, runs, width)


# ---- im2col ----

cdef inline void _im2col_edges(const mdl_window *g, const floating *src, floating *dst,
                               Py_ssize_t ky, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    # Output columns whose window crosses the left or right edge: tap by tap.
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c, ox, kx, ix
    for ox in range(start, stop):
        for kx in range(g.kw):
            ix = ox * g.sw - g.pad_left + kx * g.dw
            if ix < 0 or ix >= g.w:
                memset(dst + ox * K + ky * width + kx * c, 0, c * sizeof(floating))
            else:
                copy_values(dst + ox * K + ky * width + kx * c, src + ix * c, c)


cdef void _im2col_row(const mdl_window *g, const floating *x, floating *cols,
                      Py_ssize_t row) noexcept nogil:
    """Rows ``row * out_w ...`` of cols: output row ``oy`` of image ``img``."""
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t ox, ky, kx, iy, ix0, lo, hi, j
    cdef const floating *image = x + img * g.h * g.w * c
    cdef const floating *src
    cdef floating *dst = cols + row * g.out_w * K
    # Output columns [lo, hi) have their whole window inside the input horizontally; with
    # dilation 1 their kw * c values per kernel row are contiguous in the input.
    interior(g, &lo, &hi)
    for ky in range(g.kh):
        iy = oy * g.sh - g.pad_top + ky * g.dh
        if iy < 0 or iy >= g.h:
            for ox in range(g.out_w):
                memset(dst + ox * K + ky * width, 0, width * sizeof(floating))
            continue
        src = image + iy * g.w * c
        if g.dw == 1 and width < 16:
            # Short runs (few input channels, e.g. the first layer on grey images): one
            # strided loop per value of the run beats a short copy per output column.
            for j in range(width):
                for ox in range(lo, hi):
                    dst[ox * K + ky * width + j] = src[(ox * g.sw - g.pad_left) * c + j]
        elif g.dw == 1 and hi > lo:
            _copy_runs(dst + lo * K + ky * width, K, src + (lo * g.sw - g.pad_left) * c,
                       g.sw * c, hi - lo, width)
        else:
            for ox in range(lo, hi):
                ix0 = ox * g.sw - g.pad_left
                for kx in range(g.kw):
                    copy_values(dst + ox * K + ky * width + kx * c,
                                src + (ix0 + kx * g.dw) * c, c)
        _im2col_edges(g, src, dst, ky, 0, lo)
        _im2col_edges(g, src, dst, ky, hi, g.out_w)


cdef void _im2col(const mdl_window *g, Py_ssize_t n, const floating *x,
                  floating *cols) noexcept nogil:
    """im2col of the n images at x (cols: their n * out_h * out_w rows)."""
    cdef Py_ssize_t rows = n * g.out_h, row
    cdef int nt = (num_threads() if rows * g.out_w * g.kh * g.kw * g.c >= PARALLEL_MIN_ELEMENTS
                   else 1)
    if nt == 1:
        for row in range(rows):
            _im2col_row(g, x, cols, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            _im2col_row(g, x, cols, row)


cdef int _check_patches(const mdl_window *g, Py_ssize_t n, object cols) except -1:
    """``cols`` (a checked 2-D array) holds the n images' patches."""
    cdef Py_ssize_t rows = n * g.out_h * g.out_w, K = g.kh * g.kw * g.c
    if dim(cols, 0) != rows or dim(cols, 1) != K:
        raise ValueError(f"cols must have shape {(rows, K)}; received {cols.shape}")
    return 0


def im2col(x, cols, kernel_size, strides, dilation, pads, out_hw):
    """Pack the receptive fields of ``x`` into the rows of ``cols``.

    Args:
        x: (n, h, w, c) float32 or float64 input.
        cols: (n * out_h * out_w, kh * kw * c) of x's dtype, fully overwritten.
        kernel_size, strides, dilation, pads, out_hw: pairs of ints (pads: zeros before
            the input, top and left; see _window.pxd).

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
    """
    x = aligned(x)
    cdef int t = float_carray(x, 4, None, "x")
    carray(cols, t, 2, None, "cols", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    window_geometry(&g, dim(x, 1), dim(x, 2), dim(x, 3), kernel_size, strides, dilation, pads,
                    out_hw)
    _check_patches(&g, n, cols)
    if dim(cols, 0) == 0 or dim(cols, 1) == 0:
        return
    cdef char *x_p = data(x)
    cdef char *cols_p = data(cols)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _im2col(&g, n, <const float *>x_p, <float *>cols_p)
        else:
            _im2col(&g, n, <const double *>x_p, <double *>cols_p)


# ---- col2im ----

cdef inline void _col2im_edges(const mdl_window *g, const floating *src, floating *dst,
                               Py_ssize_t ky, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c, ox, kx, ix
    for ox in range(start, stop):
        for kx in range(g.kw):
            ix = ox * g.sw - g.pad_left + kx * g.dw
            if 0 <= ix < g.w:
                add_values(dst + ix * c, src + ox * K + ky * width + kx * c, c)


cdef void _col2im_image(const mdl_window *g, const floating *cols, floating *dx,
                        Py_ssize_t img) noexcept nogil:
    # The loops of _im2col_row, adding instead of copying; one image, in a fixed order.
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t oy, ox, ky, kx, iy, ix, lo, hi, j
    cdef floating *image = dx + img * g.h * g.w * c
    cdef floating *dst
    cdef const floating *src
    memset(image, 0, g.h * g.w * c * sizeof(floating))
    interior(g, &lo, &hi)
    for oy in range(g.out_h):
        src = cols + (img * g.out_h + oy) * g.out_w * K
        for ky in range(g.kh):
            iy = oy * g.sh - g.pad_top + ky * g.dh
            if iy < 0 or iy >= g.h:
                continue
            dst = image + iy * g.w * c
            if g.dw == 1 and width < 16:
                for j in range(width):
                    for ox in range(lo, hi):
                        dst[(ox * g.sw - g.pad_left) * c + j] += src[ox * K + ky * width + j]
            elif g.dw == 1 and hi > lo:
                _add_runs(dst + (lo * g.sw - g.pad_left) * c, g.sw * c, src + lo * K + ky * width,
                          K, hi - lo, width)
            else:
                for ox in range(lo, hi):
                    for kx in range(g.kw):
                        add_values(dst + (ox * g.sw - g.pad_left + kx * g.dw) * c,
                                   src + ox * K + ky * width + kx * c, c)
            _col2im_edges(g, src, dst, ky, 0, lo)
            _col2im_edges(g, src, dst, ky, hi, g.out_w)


cdef void _col2im(const mdl_window *g, Py_ssize_t n, const floating *cols,
                  floating *dx) noexcept nogil:
    """col2im into the n images at dx from their rows of cols; one image per thread."""
    cdef Py_ssize_t img
    cdef int nt = (num_threads() if n * g.out_h * g.out_w * g.kh * g.kw * g.c
                   >= PARALLEL_MIN_ELEMENTS else 1)
    if nt == 1:
        for img in range(n):
            _col2im_image(g, cols, dx, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _col2im_image(g, cols, dx, img)


def col2im(cols, dx, kernel_size, strides, dilation, pads, out_hw):
    """The adjoint of :func:`im2col`: ``dx`` = the sum of every row of ``cols`` scattered
    back to the input positions it was copied from (padding positions are dropped).

    Args:
        cols: (n * out_h * out_w, kh * kw * c) float32 or float64 gradient of the patches.
        dx: (n, h, w, c) of cols' dtype, fully overwritten.
        kernel_size, strides, dilation, pads, out_hw: as for :func:`im2col`.

    Raises:
        TypeError, ValueError: as :func:`im2col`.
    """
    cols = aligned(cols)
    cdef int t = float_carray(cols, 2, None, "cols")
    carray(dx, t, 4, None, "dx", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(dx, 0)
    window_geometry(&g, dim(dx, 1), dim(dx, 2), dim(dx, 3), kernel_size, strides, dilation,
                    pads, out_hw)
    _check_patches(&g, n, cols)
    cdef Py_ssize_t values = n * g.h * g.w * g.c
    if values == 0:
        return
    if dim(cols, 0) * dim(cols, 1) == 0:
        memset(data(dx), 0, values * (4 if t == cnp.NPY_FLOAT else 8))
        return
    cdef char *cols_p = data(cols)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _col2im(&g, n, <const float *>cols_p, <float *>dx_p)
        else:
            _col2im(&g, n, <const double *>cols_p, <double *>dx_p)


# ---- a training step's convolution: the direct kernels or the patch path ----

# The direct kernels (csrc/conv_direct.c) serve every convolution but a pointwise one (whose
# patches are x itself: no packing to save) and those whose kernel matrix exceeds this: the
# GEMM's cache blocking pays off there (3x3, 64 -> 128 filters on 14x14 images: forward 7.0
# ms on the patch path, 7.7 direct). Benchmark convolution (batch 32, 28x28x16, 3x3 'same',
# 16 filters, float32, one thread): forward 1.55 -> 1.1 ms, backward with the input
# gradient 3.05 -> 1.8 ms.
DIRECT_MAX_KERNEL_BYTES = 256 * 1024


cdef bint _use_direct(Py_ssize_t k, Py_ssize_t f, Py_ssize_t itemsize, bint pointwise,
                      object direct):
    if direct is not None:
        return bool(direct)
    return not pointwise and k * f * itemsize <= DIRECT_MAX_KERNEL_BYTES


cdef bint _use_direct_input_grad(const mdl_window *g, Py_ssize_t filters, Py_ssize_t itemsize,
                                 object direct):
    # The direct input gradient broadcasts one dz value per FMA into vectors of channels: it
    # wins when the channels fill one or two 64-byte vectors (no idle lanes, no value
    # broadcast again per vector) and rows are wide enough that the edge columns, which
    # have taps of their own and so tiles of one or two pixels, are few. Otherwise the
    # patch path's product dz @ kernel^T (vectors over all the patch values) and col2im do
    # it. Measured, input gradient alone, batch 32, 3x3 'same' unless said, patch path ->
    # direct: 28x28, 16 -> 16 filters 1.6 -> 1.0 ms; 20x20, 16 -> 16 0.76 -> 0.61;
    # 28x28, 32 -> 32 5.3 -> 4.4; but 28x28, 3 -> 32 0.62 -> 2.4; 13x13 'valid', 32 -> 64
    # 1.1 -> 1.8; 16x16, 64 -> 64 5.4 -> 8.0. Narrower rows still win with at most one
    # vector of filters (with kernel gradient, 3x3 'same', 32 -> 32: 14x14 2.10 -> 1.81 ms,
    # 12x12 1.40 -> 1.34; 14x14, 16 -> 32 0.92 -> 0.85), not with more (14x14, 32 -> 64
    # 4.50 -> 4.73).
    if direct is not None:
        return bool(direct)
    return g.c * itemsize in (64, 128) and (
        g.out_w >= 20 or (g.out_w >= 12 and filters * itemsize <= 128))


cdef tuple _padded_sample(const mdl_window *g):
    """(src_h, src_w, c) of the zero-padded copy the direct kernels read, or None when the
    windows lie inside x (no padding), which they then read in place."""
    cdef Py_ssize_t src_h = (g.out_h - 1) * g.sh + (g.kh - 1) * g.dh + 1
    cdef Py_ssize_t src_w = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    if g.pad_top == 0 and g.pad_left == 0 and src_h <= g.h and src_w <= g.w:
        return None
    return (src_h, src_w, g.c)


def direct_plan(image_shape, Py_ssize_t filters, Py_ssize_t itemsize, bint pointwise,
                kernel_size, strides, dilation, pads, out_hw):
    """How :func:`conv_train_forward` and :func:`conv_train_backward` run a convolution.

    Args:
        image_shape: (h, w, c), one input image.
        filters: the number of filters. itemsize: bytes per element (4 or 8).
        pointwise: a 1x1 kernel, stride 1, no padding (its patches are the input itself).
        kernel_size, strides, dilation, pads, out_hw: as for :func:`im2col`.

    Returns:
        ``(direct, direct_input_grad, padded)``. ``direct``: the forward pass and the kernel
        gradient through the direct kernels (no ``cols`` then); ``direct_input_grad``: the
        input gradient too (no ``dcols``); ``padded``: the sample shape (src_h, src_w, c)
        of the zero-padded copy they read, or None (the patch path, or windows inside x).
    """
    h, w, c = image_shape
    cdef mdl_window g
    window_geometry(&g, h, w, c, kernel_size, strides, dilation, pads, out_hw)
    if not _use_direct(g.kh * g.kw * g.c, filters, itemsize, pointwise, None):
        return False, False, None
    return True, _use_direct_input_grad(&g, filters, itemsize, None), _padded_sample(&g)


cdef object _padded_buffer(const mdl_window *g, Py_ssize_t n, object padded, int t):
    """The padded copy's buffer: ``padded`` after checking it, a new one when it is None;
    None when the direct kernels read x in place."""
    cdef tuple sample = _padded_sample(g)
    if sample is None:
        return None
    shape = (n,) + sample
    dtype = np.float32 if t == cnp.NPY_FLOAT else np.float64
    if padded is None:
        return np.empty(shape, dtype)
    if (not isinstance(padded, np.ndarray) or padded.shape != shape or padded.dtype != dtype
            or not padded.flags.c_contiguous):
        raise ValueError(f"padded must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{shape}; received {getattr(padded, 'dtype', type(padded).__name__)} "
                         f"{getattr(padded, 'shape', '')}")
    carray(padded, t, 4, None, "padded", True)   # aligned and writeable
    return padded


cdef mdl_conv_direct _direct_geometry(const mdl_window *g, Py_ssize_t n, Py_ssize_t filters,
                                      Py_ssize_t chunk) noexcept nogil:
    cdef mdl_conv_direct d
    cdef Py_ssize_t lo, hi
    d.geo = g[0]
    d.n, d.filters, d.chunk = n, filters, chunk
    d.src_h = (g.out_h - 1) * g.sh + (g.kh - 1) * g.dh + 1
    d.src_w = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    interior(g, &lo, &hi)
    d.interior_lo, d.interior_hi = lo, hi
    # the order in which _col2im_image adds the interior columns: its first branch goes tap
    # by tap, the others column by column
    d.interior_by_tap = g.dw == 1 and g.kw * g.c < 16
    return d


cdef int _direct_forward(const mdl_conv_direct *d, const floating *x, floating *padded,
                         const floating *kernel, floating *z) noexcept nogil:
    if floating is float:
        return conv_direct_forward_f32(d, x, padded, kernel, z)
    else:
        return conv_direct_forward_f64(d, x, padded, kernel, z)


cdef int _direct_backward(const mdl_conv_direct *d, const floating *x, floating *padded,
                          bint padded_ready, const floating *dz, const floating *kernel,
                          floating *d_kernel, floating *dx) noexcept nogil:
    if floating is float:
        return conv_direct_backward_f32(d, x, padded, padded_ready, dz, kernel, d_kernel, dx)
    else:
        return conv_direct_backward_f64(d, x, padded, padded_ready, dz, kernel, d_kernel, dx)


cdef int _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a, Py_ssize_t rs_a,
               Py_ssize_t cs_a, const floating *b, Py_ssize_t rs_b, floating beta,
               floating *c) noexcept nogil:
    # c (m x n, rows of n) = a @ b + beta * c, with b's rows contiguous (cs_b = 1).
    if floating is float:
        return sgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)
    else:
        return dgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)


cdef int _gemm_strided(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                       Py_ssize_t rs_a, Py_ssize_t cs_a, const floating *b, Py_ssize_t rs_b,
                       Py_ssize_t cs_b, floating *c, Py_ssize_t rs_c) noexcept nogil:
    # c (m x n, rows rs_c apart) = a @ b, any strides for a and b.
    if floating is float:
        return sgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, cs_b, 0, c, rs_c, 1)
    else:
        return dgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, cs_b, 0, c, rs_c, 1)


cdef int _check_chunks(const mdl_window *g, Py_ssize_t n, object kernel, str kernel_name,
                       Py_ssize_t rows, Py_ssize_t chunk) except -1:
    if dim(kernel, 0) != g.kh * g.kw * g.c:
        raise ValueError(f"{kernel_name} must have {g.kh * g.kw * g.c} rows; received "
                         f"{kernel.shape}")
    if rows != n * g.out_h * g.out_w:
        raise ValueError(f"the output must have {n * g.out_h * g.out_w} rows; received {rows}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of images; received {chunk}")
    return 0


cdef int _check_cols(object cols, int t, Py_ssize_t rows, Py_ssize_t width,
                     str name) except -1:
    if cols is None:
        raise ValueError(f"{name} must have at least {rows} rows of {width}; received None")
    carray(cols, t, 2, None, name, True)
    if dim(cols, 0) < rows or dim(cols, 1) != width:
        raise ValueError(f"{name} must have at least {rows} rows of {width}; received "
                         f"{cols.shape}")
    return 0


def conv_train_forward(x, kernel, z, cols, Py_ssize_t chunk, bint pointwise, kernel_size,
                       strides, dilation, pads, out_hw, padded=None, direct=None,
                       bint narrow=False):
    """The convolution's linear part ``z = im2col(x) @ kernel`` for training, ``chunk``
    images at a time, each chunk's patches packed into the first rows of ``cols`` and
    multiplied while they are in cache. With ``pointwise`` (a 1x1 kernel, stride 1, no
    padding) the patches are x's own rows and ``cols`` is not used (may be None). Where
    :func:`direct_plan` says so, the direct kernels compute the same bits without patches
    (``cols`` is not used): from ``padded``, which they fill with x and zeros around it
    (allocated when None), or from x itself when no padding is needed.

    Args:
        x: (n, h, w, c) float32 or float64. kernel: (kh * kw * c, filters) of x's dtype.
        z: (n * out_h * out_w, filters) of x's dtype, fully overwritten.
        cols: at least chunk * out_h * out_w rows of kh * kw * c, of x's dtype; or None
            where it is not used.
        chunk: images per GEMM. pointwise: as for :func:`direct_plan`.
        kernel_size, strides, dilation, pads, out_hw: as for :func:`im2col`.
        padded: None, or (n,) + the padded sample shape of :func:`direct_plan`.
        direct: None (the rule of :func:`direct_plan`), or True / False to force the
            direct kernels or the patch path (tests compare them).
        narrow: with ``direct`` None, run a convolution with few filters and stride 1
            through one GEMM over its taps instead, with bits of its own (see "narrow
            convolutions" below; the layers opt in); ``cols`` and ``padded`` are then
            unused.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
        MemoryError: no memory for the kernels' buffers.
    """
    x, kernel = aligned(x), aligned(kernel)
    cdef int t = float_carray(x, 4, None, "x")
    carray(kernel, t, 2, None, "kernel", False)
    carray(z, t, 2, None, "z", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    window_geometry(&g, dim(x, 1), dim(x, 2), dim(x, 3), kernel_size, strides, dilation, pads,
                    out_hw)
    _check_chunks(&g, n, kernel, "kernel", dim(z, 0), chunk)
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = dim(kernel, 0), f = dim(kernel, 1)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    if dim(z, 1) != f:
        raise ValueError(f"z must have {f} columns; received {z.shape}")
    if dim(z, 0) == 0 or f == 0:
        return
    # the arrays' data, for the sections without the GIL
    cdef char *x_p = data(x)
    cdef char *kernel_p = data(kernel)
    cdef char *z_p = data(z)
    if k == 0:
        memset(z_p, 0, dim(z, 0) * f * itemsize)
        return
    cdef mdl_conv_direct d
    cdef void *pad_p = NULL
    cdef void *work
    cdef int status
    if _use_narrow(&g, f, pointwise, direct, narrow):
        work = scratch(SHARED_SCRATCH, _narrow_work(&g, n, f, itemsize) * itemsize)
        if work == NULL:
            raise MemoryError()
        with nogil:
            if t == cnp.NPY_FLOAT:
                status = _narrow_forward(&g, n, f, <const float *>x_p, <const float *>kernel_p,
                                         <float *>z_p, <float *>work)
            else:
                status = _narrow_forward(&g, n, f, <const double *>x_p,
                                         <const double *>kernel_p, <double *>z_p,
                                         <double *>work)
        if status:
            raise MemoryError("conv_train_forward: no memory for the GEMM's packing buffers")
        return
    if _use_direct(k, f, itemsize, pointwise, direct):
        padded = _padded_buffer(&g, n, padded, t)
        if padded is not None:
            pad_p = data(padded)
        d = _direct_geometry(&g, n, f, chunk)
        with nogil:
            if t == cnp.NPY_FLOAT:
                status = _direct_forward(&d, <const float *>x_p, <float *>pad_p,
                                         <const float *>kernel_p, <float *>z_p)
            else:
                status = _direct_forward(&d, <const double *>x_p, <double *>pad_p,
                                         <const double *>kernel_p, <double *>z_p)
        if status:
            raise MemoryError("conv_train_forward: no memory for the direct kernels' tables")
        return
    if not pointwise:
        _check_cols(cols, t, min(chunk, n) * per_image, k, "cols")
    cdef void *cp = NULL if pointwise else data(cols)
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = _patch_forward(&g, n, chunk, pointwise, <const float *>x_p,
                                    <const float *>kernel_p, f, <float *>z_p,
                                    <float *>cp)
        else:
            status = _patch_forward(&g, n, chunk, pointwise, <const double *>x_p,
                                    <const double *>kernel_p, f, <double *>z_p,
                                    <double *>cp)
    if status:
        raise MemoryError("conv_train_forward: no memory for the GEMM's packing buffers")


cdef int _patch_forward(const mdl_window *g, Py_ssize_t n, Py_ssize_t chunk, bint pointwise,
                        const floating *x, const floating *kernel, Py_ssize_t f, floating *z,
                        floating *cols) noexcept nogil:
    """z = the patches of x @ kernel, chunk by chunk, packed into cols (unused with
    ``pointwise``: the patches are x's rows). Returns 0, or -1 when the GEMM had no
    memory."""
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = g.kh * g.kw * g.c
    cdef Py_ssize_t i0 = 0, images, rows
    cdef const floating *a
    cdef int failed = 0
    while i0 < n:   # (a C loop: range() with a variable step is not)
        images = min(chunk, n - i0)
        rows = images * per_image
        if pointwise:
            a = x + i0 * per_image * k
        else:
            _im2col(g, images, x + i0 * g.h * g.w * g.c, cols)
            a = cols
        failed |= _gemm(rows, f, k, a, k, 1, kernel, f, 0, z + i0 * per_image * f)
        i0 += chunk
    return failed


def conv_train_backward(x, dz, kernel, d_kernel, dx_out, cols, dcols, Py_ssize_t chunk,
                        bint pointwise, kernel_size, strides, dilation, pads, out_hw,
                        padded=None, bint padded_ready=False, direct=None, bint narrow=False):
    """Gradients of :func:`conv_train_forward` from ``dz``: ``d_kernel = im2col(x)^T @ dz``
    and, when ``dx_out`` is given, the input gradient ``col2im(dz @ kernel^T)``.

    Chunk by chunk as the forward pass: each chunk's patches are packed again into ``cols``
    (cheaper than keeping the whole batch's, which would leave the cache), the kernel
    gradient accumulates over the chunks in their order (so the bits do not depend on the
    thread count), and each chunk's patch gradient (in ``dcols``) goes back to its images
    while it is in cache. ``cols`` and ``dcols`` are unused with ``pointwise``. The direct
    kernels give the same bits without ``cols``, and without ``dcols`` where
    :func:`direct_plan` runs the input gradient through them too.

    Args:
        x: (n, h, w, c) float32 or float64, the forward pass's input.
        dz: (n * out_h * out_w, filters) of x's dtype.
        kernel: (kh * kw * c, filters) of x's dtype.
        d_kernel: kernel's shape and dtype, overwritten.
        dx_out: None, or (n, h, w, c) of x's dtype, overwritten.
        cols, dcols: as ``cols`` of :func:`conv_train_forward`, or None where unused.
        chunk, pointwise, kernel_size, strides, dilation, pads, out_hw, padded, direct,
            narrow: as for :func:`conv_train_forward` (``narrow`` as in the forward pass).
        padded_ready: ``padded`` holds the forward pass's copy of this ``x``, which is then
            not written again.

    Raises:
        TypeError, ValueError: as :func:`conv_train_forward`.
        MemoryError: no memory for the kernels' buffers.
    """
    x, dz, kernel = aligned(x), aligned(dz), aligned(kernel)
    cdef int t = float_carray(x, 4, None, "x")
    carray(dz, t, 2, None, "dz", False)
    carray(kernel, t, 2, None, "kernel", False)
    carray(d_kernel, t, 2, None, "d_kernel", True)
    if dx_out is not None:
        carray(dx_out, t, 4, None, "dx", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    window_geometry(&g, dim(x, 1), dim(x, 2), dim(x, 3), kernel_size, strides, dilation, pads,
                    out_hw)
    _check_chunks(&g, n, kernel, "kernel", dim(dz, 0), chunk)
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = dim(kernel, 0), f = dim(kernel, 1)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    if dim(dz, 1) != f or dim(d_kernel, 0) != k or dim(d_kernel, 1) != f:
        raise ValueError(f"dz must have {f} columns and d_kernel shape {(k, f)}; received "
                         f"{dz.shape} and {d_kernel.shape}")
    if dx_out is not None and dx_out.shape != (n, g.h, g.w, g.c):
        raise ValueError(f"dx must have shape {(n, g.h, g.w, g.c)}; received {dx_out.shape}")
    # the arrays' data, for the sections without the GIL
    cdef char *x_p = data(x)
    cdef char *dz_p = data(dz)
    cdef char *kernel_p = data(kernel)
    cdef char *d_kernel_p = data(d_kernel)
    cdef void *dxp = NULL if dx_out is None else data(dx_out)
    if n * per_image == 0 or k * f == 0:   # otherwise every value is written below
        memset(d_kernel_p, 0, k * f * itemsize)
        if dxp != NULL:
            memset(dxp, 0, n * g.h * g.w * g.c * itemsize)
        return
    cdef mdl_conv_direct d
    cdef void *pad_p = NULL
    cdef void *dx_direct = NULL
    cdef bint ready = padded_ready and padded is not None
    cdef bint kernel_grad = True   # on the patch path below
    cdef void *work
    cdef int status
    if _use_narrow(&g, f, pointwise, direct, narrow):
        work = scratch(SHARED_SCRATCH, _narrow_work(&g, n, f, itemsize) * itemsize)
        if work == NULL:
            raise MemoryError()
        with nogil:
            if t == cnp.NPY_FLOAT:
                status = _narrow_backward(&g, n, f, <const float *>x_p, <const float *>dz_p,
                                          <const float *>kernel_p, <float *>d_kernel_p,
                                          <float *>dxp, <float *>work)
            else:
                status = _narrow_backward(&g, n, f, <const double *>x_p, <const double *>dz_p,
                                          <const double *>kernel_p, <double *>d_kernel_p,
                                          <double *>dxp, <double *>work)
        if status:
            raise MemoryError("conv_train_backward: no memory for the GEMM's packing buffers")
        return
    if _use_direct(k, f, itemsize, pointwise, direct):
        padded = _padded_buffer(&g, n, padded, t)
        if padded is not None:
            pad_p = data(padded)
        if dxp != NULL and _use_direct_input_grad(&g, f, itemsize, direct):
            dx_direct = dxp
        d = _direct_geometry(&g, n, f, chunk)
        with nogil:
            if t == cnp.NPY_FLOAT:
                status = _direct_backward(&d, <const float *>x_p, <float *>pad_p, ready,
                                          <const float *>dz_p, <const float *>kernel_p,
                                          <float *>d_kernel_p, <float *>dx_direct)
            else:
                status = _direct_backward(&d, <const double *>x_p, <double *>pad_p, ready,
                                          <const double *>dz_p, <const double *>kernel_p,
                                          <double *>d_kernel_p, <double *>dx_direct)
        if status:
            raise MemoryError("conv_train_backward: no memory for the direct kernels' tables")
        if dxp == NULL or dx_direct != NULL:
            return
        kernel_grad = False   # the input gradient alone, through the patch gradient
        # No sum runs across its chunks (each image's rows are its own), so the chunking
        # changes no bit: take as many images at once as dcols holds (the layer sizes it
        # for its threads), for fewer, larger products and col2im passes that split over
        # more images than threads.
        if not pointwise and dcols is not None and per_image:
            chunk = max(chunk, min(dim(dcols, 0) // per_image, n))
    cdef Py_ssize_t chunk_rows = min(chunk, n) * per_image
    cdef void *cp = NULL
    cdef void *dcp = NULL
    if not pointwise:
        if kernel_grad:
            _check_cols(cols, t, chunk_rows, k, "cols")
            cp = data(cols)
        if dxp != NULL:
            _check_cols(dcols, t, chunk_rows, k, "dcols")
            dcp = data(dcols)
    # kernel^T, contiguous: the input-gradient product packs it without a transposing gather.
    cdef void *kernel_t = scratch(SHARED_SCRATCH, k * f * itemsize) if dxp != NULL else NULL
    if dxp != NULL and kernel_t == NULL:
        raise MemoryError()
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = _patch_backward(&g, n, chunk, pointwise, kernel_grad, <const float *>x_p,
                                     <const float *>dz_p, <const float *>kernel_p, f,
                                     <float *>kernel_t, <float *>d_kernel_p, <float *>dxp,
                                     <float *>cp, <float *>dcp)
        else:
            status = _patch_backward(&g, n, chunk, pointwise, kernel_grad,
                                     <const double *>x_p,
                                     <const double *>dz_p, <const double *>kernel_p, f,
                                     <double *>kernel_t, <double *>d_kernel_p,
                                     <double *>dxp, <double *>cp, <double *>dcp)
    if status:
        raise MemoryError("conv_train_backward: no memory for the GEMM's packing buffers")


cdef int _patch_backward(const mdl_window *g, Py_ssize_t n, Py_ssize_t chunk, bint pointwise,
                         bint kernel_grad, const floating *x, const floating *dz,
                         const floating *kernel, Py_ssize_t f, floating *kernel_t,
                         floating *d_kernel, floating *dx, floating *cols,
                         floating *dcols) noexcept nogil:
    """The patch path's gradients, chunk by chunk: d_kernel (when ``kernel_grad``) and dx
    (when not NULL; kernel_t: room for kernel^T), through cols and dcols (unused with
    ``pointwise``). Returns 0, or -1 when the GEMM had no memory."""
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = g.kh * g.kw * g.c
    cdef Py_ssize_t q, ch, i0 = 0, images, rows
    cdef const floating *a
    cdef int failed = 0
    if dx != NULL:
        for q in range(k):
            for ch in range(f):
                kernel_t[ch * k + q] = kernel[q * f + ch]
    while i0 < n:
        images = min(chunk, n - i0)
        rows = images * per_image
        if kernel_grad:
            if pointwise:
                a = x + i0 * per_image * k
            else:
                _im2col(g, images, x + i0 * g.h * g.w * g.c, cols)
                a = cols
            # d_kernel (+)= patches^T @ dz: patches read transposed through their strides
            failed |= _gemm(k, f, rows, a, 1, k, dz + i0 * per_image * f, f,
                            0 if i0 == 0 else 1, d_kernel)
        if dx != NULL and pointwise:
            failed |= _gemm(rows, k, f, dz + i0 * per_image * f, f, 1, kernel_t, k, 0,
                            dx + i0 * per_image * k)
        elif dx != NULL:
            failed |= _gemm(rows, k, f, dz + i0 * per_image * f, f, 1, kernel_t, k, 0, dcols)
            _col2im(g, images, dcols, dx + i0 * g.h * g.w * g.c)
        i0 += chunk
    return failed


# ---- the transposed convolution's forward pass: a convolution's input gradient ----

def conv_input_grad(dz, kernel, dx, dcols, Py_ssize_t chunk, bint pointwise, kernel_size,
                    strides, dilation, pads, out_hw):
    """The input gradient of :func:`conv_train_forward` alone: ``dx = col2im(dz @
    kernel^T)``, ``chunk`` images at a time, each chunk's patch gradient formed in the first
    rows of ``dcols`` and scattered back while it is in cache. This is also the forward
    pass of a transposed convolution (``dz``: its input's pixels as rows; ``dx``: its
    output, whose windows the geometry describes), which is why it takes no ``x``.

    Args:
        dz: (n * out_h * out_w, filters) float32 or float64.
        kernel: (kh * kw * c, filters) of dz's dtype.
        dx: (n, h, w, c) of dz's dtype, fully overwritten.
        dcols: at least chunk * out_h * out_w rows of kh * kw * c, of dz's dtype; None with
            ``pointwise`` (a 1x1 kernel, stride 1, no padding: dx is ``dz @ kernel^T``).
        chunk, pointwise, kernel_size, strides, dilation, pads, out_hw: as for
            :func:`conv_train_forward`.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
        MemoryError: no memory for the GEMM's buffers.
    """
    dz, kernel = aligned(dz), aligned(kernel)
    cdef int t = float_carray(dz, 2, None, "dz")
    carray(kernel, t, 2, None, "kernel", False)
    carray(dx, t, 4, None, "dx", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(dx, 0)
    window_geometry(&g, dim(dx, 1), dim(dx, 2), dim(dx, 3), kernel_size, strides, dilation,
                    pads, out_hw)
    _check_chunks(&g, n, kernel, "kernel", dim(dz, 0), chunk)
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = dim(kernel, 0), f = dim(kernel, 1)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    if dim(dz, 1) != f:
        raise ValueError(f"dz must have {f} columns like kernel; received {dz.shape}")
    if pointwise and (g.kh != 1 or g.kw != 1 or g.sh != 1 or g.sw != 1 or g.pad_top != 0
                      or g.pad_left != 0 or g.out_h != g.h or g.out_w != g.w):
        raise ValueError(f"pointwise needs a 1x1 kernel, stride 1, no padding and an output "
                         f"of the input's size; received kernel {kernel_size}, strides "
                         f"{strides}, pads {pads}, output {out_hw} for images "
                         f"{(g.h, g.w, g.c)}")
    cdef char *dx_p = data(dx)
    if n * per_image == 0 or k * f == 0:
        memset(dx_p, 0, n * g.h * g.w * g.c * itemsize)
        return
    cdef void *dcp = NULL
    if not pointwise:
        _check_cols(dcols, t, min(chunk, n) * per_image, k, "dcols")
        dcp = data(dcols)
    cdef char *dz_p = data(dz)
    cdef char *kernel_p = data(kernel)
    cdef void *kernel_t = scratch(SHARED_SCRATCH, k * f * itemsize)
    if kernel_t == NULL:
        raise MemoryError()
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = _patch_backward(&g, n, chunk, pointwise, False, NULL, <const float *>dz_p,
                                     <const float *>kernel_p, f, <float *>kernel_t, NULL,
                                     <float *>dx_p, NULL, <float *>dcp)
        else:
            status = _patch_backward(&g, n, chunk, pointwise, False, NULL,
                                     <const double *>dz_p, <const double *>kernel_p, f,
                                     <double *>kernel_t, NULL, <double *>dx_p, NULL,
                                     <double *>dcp)
    if status:
        raise MemoryError("conv_input_grad: no memory for the GEMM's packing buffers")


# ---- narrow convolutions: few filters, stride 1, through one GEMM over the taps ----

# A convolution with few filters (an image-producing last layer such as the autoencoder's
# Conv2D(1, 3)) is a GEMM with a narrow output, which leaves most vector lanes of the patch
# path's GEMM and of the direct kernels idle. With stride 1 it runs instead, a chunk of images
# at a time, as one GEMM over the images' pixels against the kernel regrouped by tap,
#     P = pixels @ kernel_by_tap            (channels x taps * filters: every tap's product
#                                            at every pixel)
#     z = the sum over taps of P shifted by the tap's offset (taps in order; a shift past
#         the image's edge reads the padding's zeros: nothing is added)
# and backward, with Q the output gradient placed at each tap's offset (zero elsewhere),
#     d_kernel_by_tap = pixels^T @ Q,  dx = Q @ kernel_by_tap^T.
# Its bits are its own (a tap's channels are summed by the GEMM, then the taps in order),
# the same for any thread count, so callers opt in (``narrow=True``) where they do not need
# the patch path's bits. Measured (28x28x32 -> 1 filter, 3x3 'same', batch 32, float32,
# one thread), direct kernels -> this path: forward 2.3 -> 0.37 ms, backward with the input
# gradient 1.3 -> 0.83 ms. P and Q are formed transposed (P^T = kernel_by_tap^T @ pixels^T:
# the taps on the GEMM's 12-row side instead of 9 of its 32 columns, and the shifts then
# contiguous runs along a row): backward 0.78 -> 0.38 ms, forward unchanged in float32 (the
# GEMM reads the pixels transposed); in float64 forward 0.54 -> 0.60, backward 1.2 -> 0.9.
cdef enum:
    NARROW_MAX_COLUMNS = 32       # taps * filters at most
    # Patches of at most this many values (layers/convolutional.py's _DIRECT_MAX_PATCH) may
    # train fused with a max pooling through conv_pool.c, with the patch path's bits, which
    # the same layer's unfused passes must then give too: they keep the patch path.
    NARROW_MIN_PATCH = 129
    NARROW_CHUNK_BYTES = 1 << 19  # P (or Q) of a chunk of images


cdef bint _use_narrow(const mdl_window *g, Py_ssize_t f, bint pointwise, object direct,
                      bint narrow):
    return (narrow and direct is None and not pointwise and g.sh == 1 and g.sw == 1
            and g.kh * g.kw * g.c >= NARROW_MIN_PATCH
            and g.kh * g.kw * f <= NARROW_MAX_COLUMNS)


cdef Py_ssize_t _narrow_chunk(const mdl_window *g, Py_ssize_t n, Py_ssize_t f,
                              Py_ssize_t itemsize) noexcept nogil:
    """Images per chunk: their P (or Q) within NARROW_CHUNK_BYTES."""
    cdef Py_ssize_t per_image = g.h * g.w * g.kh * g.kw * f * itemsize
    return min(max(1, NARROW_CHUNK_BYTES // max(per_image, 1)), max(n, 1))


cdef Py_ssize_t _narrow_work(const mdl_window *g, Py_ssize_t n, Py_ssize_t f,
                             Py_ssize_t itemsize) noexcept nogil:
    """Values of scratch that _narrow_forward / _narrow_backward need."""
    cdef Py_ssize_t cols = g.kh * g.kw * f
    return 2 * g.c * cols + _narrow_chunk(g, n, f, itemsize) * g.h * g.w * cols


cdef int _narrow_forward(const mdl_window *g, Py_ssize_t n, Py_ssize_t f, const floating *x,
                         const floating *kernel, floating *z, floating *work) noexcept nogil:
    """z = the convolution of x, through P (see above), formed transposed: P^T =
    kernel_by_tap^T @ pixels^T has the few tap columns as rows on the GEMM's tall side, and
    each tap's shifted row is then added with contiguous, vectorised reads. ``work``: room
    for _narrow_work() values."""
    cdef Py_ssize_t c = g.c, taps = g.kh * g.kw, cols = taps * f
    cdef Py_ssize_t per_image = g.h * g.w, per_out = g.out_h * g.out_w
    cdef Py_ssize_t chunk = _narrow_chunk(g, n, f, sizeof(floating))
    cdef Py_ssize_t ld = chunk * per_image   # P^T's row stride
    cdef Py_ssize_t q, tap, j, i0 = 0, images, img, oy, ox, ky, kx, iy, lo, hi, shift
    cdef floating *by_tap_t = work          # (taps * f, c): kernel_by_tap^T
    cdef floating *pt = work + 2 * c * cols  # (taps * f, chunk * h * w)
    cdef const floating *prow
    cdef floating *zrow
    cdef int failed = 0
    cdef int nt
    for tap in range(taps):
        for q in range(c):
            for j in range(f):
                by_tap_t[(tap * f + j) * c + q] = kernel[(tap * c + q) * f + j]
    while i0 < n:
        images = min(chunk, n - i0)
        # P^T = kernel_by_tap^T @ pixels^T: the pixels read transposed through their strides
        failed |= _gemm_strided(cols, images * per_image, c, by_tap_t, c, 1,
                                x + i0 * per_image * c, 1, c, pt, ld)
        nt = num_threads() if images * per_out * cols >= PARALLEL_MIN_ELEMENTS else 1
        for img in prange(images, num_threads=nt, schedule="static"):
            for oy in range(g.out_h):
                zrow = z + ((i0 + img) * per_out + oy * g.out_w) * f
                memset(zrow, 0, g.out_w * f * sizeof(floating))
                for ky in range(g.kh):
                    iy = oy + ky * g.dh - g.pad_top
                    if iy < 0 or iy >= g.h:
                        continue
                    for kx in range(g.kw):
                        # the output columns whose tap reads a column of the image
                        # (assigned here: a prange's private variables)
                        shift = kx * g.dw - g.pad_left
                        lo = min(max(0, -shift), g.out_w)
                        hi = max(min(g.out_w, g.w - shift), lo)
                        prow = pt + (ky * g.kw + kx) * f * ld \
                            + (img * g.h + iy) * g.w + kx * g.dw - g.pad_left
                        if f == 1:
                            for ox in range(lo, hi):
                                zrow[ox] += prow[ox]
                        else:
                            for j in range(f):
                                for ox in range(lo, hi):
                                    zrow[ox * f + j] += prow[j * ld + ox]
        i0 += chunk
    return failed


cdef int _narrow_backward(const mdl_window *g, Py_ssize_t n, Py_ssize_t f, const floating *x,
                          const floating *dz, const floating *kernel, floating *d_kernel,
                          floating *dx, floating *work) noexcept nogil:
    """d_kernel and, when dx is not NULL, dx, through Q (see above), formed transposed as P
    in _narrow_forward: Q^T's rows (one per tap and filter) are shifted copies of dz's
    rows."""
    cdef Py_ssize_t c = g.c, taps = g.kh * g.kw, cols = taps * f
    cdef Py_ssize_t per_image = g.h * g.w, per_out = g.out_h * g.out_w
    cdef Py_ssize_t chunk = _narrow_chunk(g, n, f, sizeof(floating))
    cdef Py_ssize_t ld = chunk * per_image   # Q^T's row stride
    cdef Py_ssize_t q, tap, j, i0 = 0, images, img, oy, ox, ky, kx, iy, lo, hi, shift, row
    cdef floating *by_tap_t = work                # (taps * f, c): kernel_by_tap^T
    cdef floating *grad_t = work + c * cols       # (taps * f, c): d_kernel_by_tap^T
    cdef floating *qt = work + 2 * c * cols       # (taps * f, chunk * h * w)
    cdef const floating *dzrow
    cdef floating *qrow
    cdef int failed = 0
    cdef int nt
    for tap in range(taps):
        for q in range(c):
            for j in range(f):
                by_tap_t[(tap * f + j) * c + q] = kernel[(tap * c + q) * f + j]
    while i0 < n:
        images = min(chunk, n - i0)
        nt = num_threads() if images * per_image * cols >= PARALLEL_MIN_ELEMENTS else 1
        for img in prange(images, num_threads=nt, schedule="static"):
            for row in range(cols):
                memset(qt + row * ld + img * per_image, 0, per_image * sizeof(floating))
            for oy in range(g.out_h):
                dzrow = dz + ((i0 + img) * per_out + oy * g.out_w) * f
                for ky in range(g.kh):
                    iy = oy + ky * g.dh - g.pad_top
                    if iy < 0 or iy >= g.h:
                        continue
                    for kx in range(g.kw):
                        # the output columns whose tap reads a column of the image
                        # (assigned here: a prange's private variables)
                        shift = kx * g.dw - g.pad_left
                        lo = min(max(0, -shift), g.out_w)
                        hi = max(min(g.out_w, g.w - shift), lo)
                        qrow = qt + (ky * g.kw + kx) * f * ld \
                            + (img * g.h + iy) * g.w + kx * g.dw - g.pad_left
                        if f == 1:
                            for ox in range(lo, hi):
                                qrow[ox] = dzrow[ox]
                        else:
                            for j in range(f):
                                for ox in range(lo, hi):
                                    qrow[j * ld + ox] = dzrow[ox * f + j]
        # grad_t (+)= Q^T @ pixels, the chunks in order
        failed |= _gemm(cols, c, images * per_image, qt, ld, 1, x + i0 * per_image * c, c,
                        0 if i0 == 0 else 1, grad_t)
        if dx != NULL:
            # dx = Q @ kernel_by_tap^T: Q^T read transposed through its strides
            failed |= _gemm(images * per_image, c, cols, qt, 1, ld, by_tap_t, c, 0,
                            dx + i0 * per_image * c)
        i0 += chunk
    for tap in range(taps):
        for q in range(c):
            for j in range(f):
                d_kernel[(tap * c + q) * f + j] = grad_t[(tap * f + j) * c + q]
    return failed
