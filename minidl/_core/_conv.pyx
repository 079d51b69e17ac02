# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Patch packing and pooling for the convolution layers (channels_last images).

A convolution is one GEMM on our core: ``im2col`` copies every receptive field of the
input into one row of a ``(n * out_h * out_w, kh * kw * c)`` matrix (column order ky, kx, c,
the order of a Keras kernel reshaped to ``(kh * kw * c, filters)``), so that

    forward:  z = cols @ kernel                  (then bias + activation, fused)
    backward: d_kernel = cols^T @ dz,  d_cols = dz @ kernel^T,  dx = col2im(d_cols)

``conv_train_forward`` / ``conv_train_backward`` run a training step's passes a few images
at a time, so that each chunk's patches stay in cache between packing and GEMM; or, for most
convolutions (``direct_plan``), without any patches: csrc/conv_direct.c computes the same
bits from the image itself (a zero-padded copy of the batch, which the backward pass reuses
when the layer keeps it). A first
layer with few taps followed by a max pooling skips im2col and the GEMM altogether:
``conv_max_pool_forward`` / ``conv_max_pool_backward`` (csrc/conv_pool.c) compute the
convolution directly and pool it at once.

Geometry: ``pads`` are the rows/columns of zeros before the input (top, left); the padding
after it is implied by ``out_hw``. Every index is bounds-checked against the input, so any
geometry is memory-safe; the layers compute it with Keras' rules.

Alignment: each public function copies a misaligned input and refuses a misaligned output
(_arrays.pxd), then runs its ``_<name>_kernel`` on typed memoryviews, which check dtype,
rank and contiguity but not alignment.

Determinism: im2col and pooling forward only copy or compare; col2im and the pooling
backward passes accumulate, and run one image per thread, each image in a fixed order, so
the bits never depend on the thread count.
"""
import numpy as np

cimport numpy as cnp
from libc.string cimport memcpy, memset
from cython.parallel cimport prange

from minidl._core._arrays cimport aligned, aligned_output
from minidl._core._backend cimport (MDL_CP_TAPS, add_runs_f32, add_runs_f64, dgemm, sgemm,
                                    conv_direct_backward_f32, conv_direct_backward_f64,
                                    conv_direct_forward_f32, conv_direct_forward_f64,
                                    mdl_conv_direct, conv_max_pool_grad_image_f32,
                                    conv_max_pool_grad_image_f64, conv_max_pool_row_f32,
                                    conv_max_pool_row_f64, copy_runs_f32, copy_runs_f64,
                                    max_pool_2x2_row_f32,
                                    max_pool_2x2_row_f64, mdl_conv_pool, num_threads, scratch,
                                    unpool_tiled_f32, unpool_tiled_f64)

cnp.import_array()

ctypedef fused real:
    float
    double

# Below this many elements a parallel region costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 1 << 15
# The scratch slot of a kernel's buffers shared with its parallel region (kept from call
# to call, so that a training step allocates nothing; see csrc/minidl.h).
cdef enum:
    SHARED_SCRATCH = 2


cdef struct Geometry:
    Py_ssize_t n, h, w, c            # input
    Py_ssize_t out_h, out_w          # output
    Py_ssize_t kh, kw, sh, sw, dh, dw, pad_top, pad_left


cdef object _out(object a, str name):
    """``a``, an output (or None), after refusing it when it is misaligned (_arrays.pxd)."""
    aligned_output(a, None, name)
    return a


cdef Geometry _geometry(tuple shape, kernel_size, strides, dilation, pads, out_hw) except *:
    cdef Geometry g
    g.n, g.h, g.w, g.c = shape
    g.kh, g.kw = kernel_size
    g.sh, g.sw = strides
    g.dh, g.dw = dilation
    g.pad_top, g.pad_left = pads
    g.out_h, g.out_w = out_hw
    if min(g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) < 1 or min(g.out_h, g.out_w, g.pad_top,
                                                          g.pad_left) < 0:
        raise ValueError(f"invalid geometry: kernel {kernel_size}, strides {strides}, "
                         f"dilation {dilation}, pads {pads}, output {out_hw}")
    if g.h * g.w * g.c >= 2 ** 31:
        raise ValueError(f"images of shape {shape[1:]} hold more than 2**31 values")
    return g


cdef inline void _copy(real *dst, const real *src, Py_ssize_t count) noexcept nogil:
    # Receptive-field rows are short (kw * c values); a plain loop beats a memcpy call there.
    cdef Py_ssize_t i
    if count >= 64:
        memcpy(dst, src, count * sizeof(real))
    else:
        for i in range(count):
            dst[i] = src[i]


cdef inline void _add(real *dst, const real *src, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        dst[i] += src[i]


cdef inline void _copy_runs(real *dst, Py_ssize_t dst_stride, const real *src,
                            Py_ssize_t src_stride, Py_ssize_t runs,
                            Py_ssize_t width) noexcept nogil:
    # Runs of a kernel row along an output row, in C for the machine's vector width.
    if real is float:
        copy_runs_f32(dst, dst_stride, src, src_stride, runs, width)
    else:
        copy_runs_f64(dst, dst_stride, src, src_stride, runs, width)


cdef inline void _add_runs(real *dst, Py_ssize_t dst_stride, const real *src,
                           Py_ssize_t src_stride, Py_ssize_t runs, Py_ssize_t width) noexcept nogil:
    # dst runs may overlap each other when strides are below the kernel width (sw * c <
    # width): the C loop adds run after run in order, as the loop it replaces did.
    if real is float:
        add_runs_f32(dst, dst_stride, src, src_stride, runs, width)
    else:
        add_runs_f64(dst, dst_stride, src, src_stride, runs, width)


cdef inline void _interior(const Geometry *g, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """[lo, hi): the output columns whose window lies inside the input horizontally."""
    # (C division truncates toward zero, so a negative numerator is handled apart.)
    cdef Py_ssize_t last = g.w - 1 - (g.kw - 1) * g.dw + g.pad_left
    lo[0] = min((g.pad_left + g.sw - 1) // g.sw, g.out_w)
    hi[0] = max(min(last // g.sw + 1, g.out_w), lo[0]) if last >= 0 else lo[0]


cdef inline void _im2col_edges(const Geometry *g, const real *src, real *dst, Py_ssize_t ky,
                               Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    # Output columns whose window crosses the left or right edge: tap by tap.
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c, ox, kx, ix
    for ox in range(start, stop):
        for kx in range(g.kw):
            ix = ox * g.sw - g.pad_left + kx * g.dw
            if ix < 0 or ix >= g.w:
                memset(dst + ox * K + ky * width + kx * c, 0, c * sizeof(real))
            else:
                _copy(dst + ox * K + ky * width + kx * c, src + ix * c, c)


cdef void _im2col_row(const Geometry *g, const real *x, real *cols, Py_ssize_t row) noexcept nogil:
    """Rows ``row * out_w ...`` of cols: output row ``oy`` of image ``img``."""
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t ox, ky, kx, iy, ix, ix0, lo, hi, j
    cdef const real *image = x + img * g.h * g.w * c
    cdef const real *src
    cdef real *dst = cols + row * g.out_w * K
    # Output columns [lo, hi) have their whole window inside the input horizontally; with
    # dilation 1 their kw * c values per kernel row are contiguous in the input.
    _interior(g, &lo, &hi)
    for ky in range(g.kh):
        iy = oy * g.sh - g.pad_top + ky * g.dh
        if iy < 0 or iy >= g.h:
            for ox in range(g.out_w):
                memset(dst + ox * K + ky * width, 0, width * sizeof(real))
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
                    _copy(dst + ox * K + ky * width + kx * c, src + (ix0 + kx * g.dw) * c, c)
        _im2col_edges(g, src, dst, ky, 0, lo)
        _im2col_edges(g, src, dst, ky, hi, g.out_w)


def im2col(x, cols, kernel_size, strides, dilation, pads, out_hw):
    """Pack the receptive fields of ``x`` into the rows of ``cols``.

    Args:
        x: (n, h, w, c) C-contiguous input.
        cols: (n * out_h * out_w, kh * kw * c) C-contiguous output, fully overwritten.
        kernel_size, strides, dilation, pads, out_hw: pairs of ints (pads: zeros before
            the input, top and left).
    """
    _im2col_kernel(aligned(x), _out(cols, "cols"), kernel_size, strides, dilation, pads, out_hw)


def _im2col_kernel(const real[:, :, :, ::1] x, real[:, ::1] cols, kernel_size, strides, dilation,
                   pads, out_hw):
    # The work of im2col(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]), kernel_size, strides, dilation, pads, out_hw)
    if cols.shape[0] != g.n * g.out_h * g.out_w or cols.shape[1] != g.kh * g.kw * g.c:
        raise ValueError(f"cols must have shape {(g.n * g.out_h * g.out_w, g.kh * g.kw * g.c)}; "
                         f"received {(cols.shape[0], cols.shape[1])}")
    if cols.shape[0] == 0 or cols.shape[1] == 0:
        return
    with nogil:
        _im2col(&g, &x[0, 0, 0, 0], &cols[0, 0])


cdef void _im2col(const Geometry *g, const real *x, real *cols) noexcept nogil:
    """im2col of the g.n images at x (cols: their g.n * out_h * out_w rows)."""
    cdef Py_ssize_t rows = g.n * g.out_h, row
    cdef int nt = (num_threads() if rows * g.out_w * g.kh * g.kw * g.c >= PARALLEL_MIN_ELEMENTS
                   else 1)
    if nt == 1:
        for row in range(rows):
            _im2col_row(g, x, cols, row)
    else:
        for row in prange(rows, num_threads=nt, schedule="static"):
            _im2col_row(g, x, cols, row)


cdef void _col2im_image(const Geometry *g, const real *cols, real *dx, Py_ssize_t img) noexcept nogil:
    # The loops of _im2col_row, adding instead of copying; one image, in a fixed order.
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c
    cdef Py_ssize_t oy, ox, ky, kx, iy, ix, lo, hi, j
    cdef real *image = dx + img * g.h * g.w * c
    cdef real *dst
    cdef const real *src
    memset(image, 0, g.h * g.w * c * sizeof(real))
    _interior(g, &lo, &hi)
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
                        _add(dst + (ox * g.sw - g.pad_left + kx * g.dw) * c,
                             src + ox * K + ky * width + kx * c, c)
            _col2im_edges(g, src, dst, ky, 0, lo)
            _col2im_edges(g, src, dst, ky, hi, g.out_w)


cdef inline void _col2im_edges(const Geometry *g, const real *src, real *dst, Py_ssize_t ky,
                               Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t c = g.c, width = g.kw * g.c, K = g.kh * g.kw * g.c, ox, kx, ix
    for ox in range(start, stop):
        for kx in range(g.kw):
            ix = ox * g.sw - g.pad_left + kx * g.dw
            if 0 <= ix < g.w:
                _add(dst + ix * c, src + ox * K + ky * width + kx * c, c)


def col2im(cols, dx, kernel_size, strides, dilation, pads, out_hw):
    """The adjoint of :func:`im2col`: ``dx`` = the sum of every row of ``cols`` scattered
    back to the input positions it was copied from (padding positions are dropped).

    Args:
        cols: (n * out_h * out_w, kh * kw * c) gradient of the packed patches.
        dx: (n, h, w, c) C-contiguous output, fully overwritten.
    """
    _col2im_kernel(aligned(cols), _out(dx, "dx"), kernel_size, strides, dilation, pads, out_hw)


def _col2im_kernel(const real[:, ::1] cols, real[:, :, :, ::1] dx, kernel_size, strides, dilation,
                   pads, out_hw):
    # The work of col2im(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]), kernel_size, strides, dilation, pads, out_hw)
    if cols.shape[0] != g.n * g.out_h * g.out_w or cols.shape[1] != g.kh * g.kw * g.c:
        raise ValueError(f"cols must have shape {(g.n * g.out_h * g.out_w, g.kh * g.kw * g.c)}; "
                         f"received {(cols.shape[0], cols.shape[1])}")
    if g.n * g.h * g.w * g.c == 0:
        return
    if cols.shape[0] * cols.shape[1] == 0:
        memset(&dx[0, 0, 0, 0], 0, g.n * g.h * g.w * g.c * sizeof(real))
        return
    with nogil:
        _col2im(&g, &cols[0, 0], &dx[0, 0, 0, 0])


cdef void _col2im(const Geometry *g, const real *cols, real *dx) noexcept nogil:
    """col2im into the g.n images at dx from their rows of cols; one image per thread."""
    cdef Py_ssize_t img
    cdef int nt = (num_threads() if g.n * g.out_h * g.out_w * g.kh * g.kw * g.c
                   >= PARALLEL_MIN_ELEMENTS else 1)
    if nt == 1:
        for img in range(g.n):
            _col2im_image(g, cols, dx, img)
    else:
        for img in prange(g.n, num_threads=nt, schedule="static"):
            _col2im_image(g, cols, dx, img)


# ---- a training step's convolution, chunk by chunk ----

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


cdef bint _use_direct_input_grad(const Geometry *g, Py_ssize_t itemsize, object direct):
    # The direct input gradient broadcasts one dz value per FMA into vectors of channels: it
    # wins when the channels fill one or two 64-byte vectors (no idle lanes, no value
    # broadcast again per vector) and rows are wide enough that the edge columns, which
    # have taps of their own and so tiles of one or two pixels, are few. Otherwise the
    # patch path's product dz @ kernel^T (vectors over all the patch values) and col2im do
    # it. Measured, input gradient alone, batch 32, 3x3 'same' unless said, patch path ->
    # direct: 28x28, 16 -> 16 filters 1.6 -> 1.0 ms; 20x20, 16 -> 16 0.76 -> 0.61;
    # 28x28, 32 -> 32 5.3 -> 4.4; but 28x28, 3 -> 32 0.62 -> 2.4; 13x13 'valid', 32 -> 64
    # 1.1 -> 1.8; 16x16, 64 -> 64 5.4 -> 8.0.
    if direct is not None:
        return bool(direct)
    return g.c * itemsize in (64, 128) and g.out_w >= 20
cdef tuple _padded_sample(const Geometry *g):
    """(src_h, src_w, c) of the zero-padded copy the direct kernels read, or None when the
    windows lie inside x (no padding), which they then read in place."""
    cdef Py_ssize_t src_h = (g.out_h - 1) * g.sh + (g.kh - 1) * g.dh + 1
    cdef Py_ssize_t src_w = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    if g.pad_top == 0 and g.pad_left == 0 and src_h <= g.h and src_w <= g.w:
        return None
    return (src_h, src_w, g.c)


def direct_plan(image_shape, Py_ssize_t filters, Py_ssize_t itemsize, bint pointwise,
                kernel_size, strides, dilation, pads, out_hw):
    """How :func:`conv_train_forward` and :func:`conv_train_backward` run a convolution of
    images of ``image_shape`` (h, w, c) and ``filters`` filters of ``itemsize`` bytes:
    ``(direct, direct_input_grad, padded)``. ``direct``: the forward pass and the kernel
    gradient through the direct kernels (no ``cols`` then); ``direct_input_grad``: the
    input gradient too (no ``dcols``); ``padded``: the sample shape (src_h, src_w, c) of the
    zero-padded copy they read, or None (the patch path, or windows inside x)."""
    cdef Geometry g = _geometry((1,) + tuple(image_shape), kernel_size, strides, dilation, pads,
                                out_hw)
    if not _use_direct(g.kh * g.kw * g.c, filters, itemsize, pointwise, None):
        return False, False, None
    return True, _use_direct_input_grad(&g, itemsize, None), _padded_sample(&g)


cdef object _padded_buffer(const Geometry *g, object padded, object dtype):
    """The padded copy's buffer: ``padded`` after checking it, a new one when it is None;
    None when the direct kernels read x in place."""
    cdef tuple sample = _padded_sample(g)
    if sample is None:
        return None
    shape = (g.n,) + sample
    if padded is None:
        return np.empty(shape, dtype)
    if tuple(padded.shape) != shape or padded.dtype != dtype or not padded.flags.c_contiguous:
        raise ValueError(f"padded must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{shape}; received {padded.dtype} {tuple(padded.shape)}")
    return _out(padded, "padded")


cdef mdl_conv_direct _direct_geometry(const Geometry *g, Py_ssize_t filters,
                                      Py_ssize_t chunk) noexcept nogil:
    cdef mdl_conv_direct d
    cdef Py_ssize_t lo, hi
    d.n, d.h, d.w, d.c = g.n, g.h, g.w, g.c
    d.kh, d.kw, d.sh, d.sw, d.dh, d.dw = g.kh, g.kw, g.sh, g.sw, g.dh, g.dw
    d.pad_top, d.pad_left, d.out_h, d.out_w = g.pad_top, g.pad_left, g.out_h, g.out_w
    d.filters, d.chunk = filters, chunk
    d.src_h = (g.out_h - 1) * g.sh + (g.kh - 1) * g.dh + 1
    d.src_w = (g.out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1
    _interior(g, &lo, &hi)
    d.interior_lo, d.interior_hi = lo, hi
    # the order in which _col2im_image adds the interior columns: its first branch goes tap
    # by tap, the others column by column
    d.interior_by_tap = g.dw == 1 and g.kw * g.c < 16
    return d


cdef int _direct_forward(const mdl_conv_direct *d, const real *x, real *padded,
                         const real *kernel, real *z) noexcept nogil:
    if real is float:
        return conv_direct_forward_f32(d, x, padded, kernel, z)
    else:
        return conv_direct_forward_f64(d, x, padded, kernel, z)


cdef int _direct_backward(const mdl_conv_direct *d, const real *x, real *padded,
                          bint padded_ready, const real *dz, const real *kernel, real *d_kernel,
                          real *dx) noexcept nogil:
    if real is float:
        return conv_direct_backward_f32(d, x, padded, padded_ready, dz, kernel, d_kernel, dx)
    else:
        return conv_direct_backward_f64(d, x, padded, padded_ready, dz, kernel, d_kernel, dx)


cdef int _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const real *a, Py_ssize_t rs_a,
               Py_ssize_t cs_a, const real *b, Py_ssize_t rs_b, real beta, real *c) noexcept nogil:
    # c (m x n, rows of n) = a @ b + beta * c, with b's rows contiguous (cs_b = 1).
    if real is float:
        return sgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)
    else:
        return dgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)


cdef Geometry _chunk_geometry(tuple x_shape, tuple kernel_shape, Py_ssize_t rows,
                              Py_ssize_t chunk, kernel_size, strides, dilation, pads,
                              out_hw) except *:
    cdef Geometry g = _geometry(x_shape, kernel_size, strides, dilation, pads, out_hw)
    if kernel_shape[0] != g.kh * g.kw * g.c:
        raise ValueError(f"kernel must have {g.kh * g.kw * g.c} rows; received {kernel_shape}")
    if rows != g.n * g.out_h * g.out_w:
        raise ValueError(f"the output must have {g.n * g.out_h * g.out_w} rows; received {rows}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of images; received {chunk}")
    return g


cdef int _check_cols(cols, Py_ssize_t rows, Py_ssize_t width, str name) except -1:
    if cols is None or cols.shape[0] < rows or cols.shape[1] != width:
        raise ValueError(f"{name} must have at least {rows} rows of {width}; received "
                         f"{None if cols is None else tuple(cols.shape[:2])}")
    return 0


def conv_train_forward(x, kernel, z, cols, Py_ssize_t chunk, bint pointwise, kernel_size,
                       strides, dilation, pads, out_hw, padded=None, direct=None):
    """The convolution's linear part ``z = im2col(x) @ kernel`` for training, ``chunk``
    images at a time, each chunk's patches packed into the first rows of ``cols`` and
    multiplied while they are in cache. With ``pointwise`` (a 1x1 kernel, stride 1, no
    padding) the patches are x's own rows and ``cols`` is not used (may be None). Where
    :func:`direct_plan` says so, the direct kernels compute the same bits without patches
    (``cols`` is not used): from ``padded``, which they fill with x and zeros around it
    (allocated when None), or from x itself when no padding is needed.

    Args:
        x: (n, h, w, c). kernel: (kh * kw * c, filters). z: (n * out_h * out_w, filters),
            fully overwritten. cols: at least chunk * out_h * out_w rows of kh * kw * c.
        padded: None, or (n,) + the padded sample shape of :func:`direct_plan`.
        direct: None (the rule of :func:`direct_plan`), or True / False to force the
            direct kernels or the patch path (tests compare them).
    """
    _conv_train_forward_kernel(aligned(x), aligned(kernel), _out(z, "z"), _out(cols, "cols"),
                               chunk, pointwise, kernel_size, strides, dilation, pads, out_hw,
                               padded, direct)


def _conv_train_forward_kernel(const real[:, :, :, ::1] x, const real[:, ::1] kernel, real[:, ::1] z,
                               real[:, ::1] cols, Py_ssize_t chunk, bint pointwise, kernel_size,
                               strides, dilation, pads, out_hw, padded, direct):
    # The work of conv_train_forward(), which has checked the arrays' alignment.
    cdef Geometry g = _chunk_geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
                                      (kernel.shape[0], kernel.shape[1]), z.shape[0], chunk,
                                      kernel_size, strides, dilation, pads, out_hw)
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = kernel.shape[0], f = kernel.shape[1]
    if z.shape[1] != f:
        raise ValueError(f"z must have {f} columns; received {z.shape[1]}")
    if z.shape[0] == 0 or f == 0:
        return
    if k == 0:
        z[:, :] = 0
        return
    cdef real[:, :, :, ::1] pad_view
    cdef real *pad_p = NULL
    cdef mdl_conv_direct d
    cdef int status
    if _use_direct(k, f, sizeof(real), pointwise, direct):
        padded = _padded_buffer(&g, padded, np.asarray(z).dtype)
        if padded is not None:
            pad_view = padded
            pad_p = &pad_view[0, 0, 0, 0]
        d = _direct_geometry(&g, f, chunk)
        with nogil:
            status = _direct_forward(&d, &x[0, 0, 0, 0], pad_p, &kernel[0, 0], &z[0, 0])
        if status:
            raise MemoryError("conv_train_forward: no memory for the direct kernels' tables")
        return
    if not pointwise:
        _check_cols(cols, min(chunk, g.n) * per_image, k, "cols")
    cdef Geometry part = g
    cdef Py_ssize_t i0, images, rows
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *cp = NULL if pointwise else &cols[0, 0]
    cdef const real *a
    cdef int failed = 0
    with nogil:
        i0 = 0
        while i0 < g.n:   # (a C loop: range() with a variable step is not)
            images = min(chunk, g.n - i0)
            rows = images * per_image
            if pointwise:
                a = xp + i0 * per_image * k
            else:
                part.n = images
                _im2col(&part, xp + i0 * g.h * g.w * g.c, cp)
                a = cp
            failed |= _gemm(rows, f, k, a, k, 1, &kernel[0, 0], f, 0, &z[i0 * per_image, 0])
            i0 += chunk
    if failed:
        raise MemoryError("conv_train_forward: no memory for the GEMM's packing buffers")


def conv_train_backward(x, dz, kernel, d_kernel, dx_out, cols, dcols, Py_ssize_t chunk,
                        bint pointwise, kernel_size, strides, dilation, pads, out_hw,
                        padded=None, bint padded_ready=False, direct=None):
    """Gradients of :func:`conv_train_forward` from ``dz`` (n * out_h * out_w, filters):
    ``d_kernel = im2col(x)^T @ dz`` (overwritten), and when ``dx_out`` is given (an
    (n, h, w, c) array, overwritten) the input gradient ``col2im(dz @ kernel^T)``. Chunk by
    chunk as the forward pass: each chunk's patches are packed again into ``cols`` (cheaper
    than keeping the whole batch's, which would leave the cache), the kernel gradient
    accumulates over the chunks in their order (so the bits do not depend on the thread
    count), and each chunk's patch gradient (in ``dcols``) goes back to its images while it
    is in cache. ``cols`` and ``dcols`` are unused with ``pointwise``. The direct kernels
    (``padded`` and ``direct`` as for :func:`conv_train_forward`) give the same bits without
    ``cols``, and without ``dcols`` where :func:`direct_plan` runs the input gradient
    through them too; ``padded_ready`` says that ``padded`` holds the forward pass's copy of
    this ``x``, which is then not written again.
    """
    _conv_train_backward_kernel(aligned(x), aligned(dz), aligned(kernel),
                                _out(d_kernel, "d_kernel"), _out(dx_out, "dx"),
                                _out(cols, "cols"), _out(dcols, "dcols"), chunk, pointwise,
                                kernel_size, strides, dilation, pads, out_hw, padded,
                                padded_ready, direct)


def _conv_train_backward_kernel(const real[:, :, :, ::1] x, const real[:, ::1] dz,
                                const real[:, ::1] kernel, real[:, ::1] d_kernel, dx_out, cols,
                                dcols, Py_ssize_t chunk, bint pointwise, kernel_size, strides,
                                dilation, pads, out_hw, padded, bint padded_ready, direct):
    # The work of conv_train_backward(), which has checked the arrays' alignment.
    cdef Geometry g = _chunk_geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
                                      (kernel.shape[0], kernel.shape[1]), dz.shape[0], chunk,
                                      kernel_size, strides, dilation, pads, out_hw)
    cdef Py_ssize_t per_image = g.out_h * g.out_w, k = kernel.shape[0], f = kernel.shape[1]
    if dz.shape[1] != f or (d_kernel.shape[0], d_kernel.shape[1]) != (k, f):
        raise ValueError(f"dz must have {f} columns and d_kernel shape {(k, f)}; received "
                         f"{dz.shape[1]} and {(d_kernel.shape[0], d_kernel.shape[1])}")
    cdef real[:, :, :, ::1] dx = dx_out
    if dx_out is not None and (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]) != (
            g.n, g.h, g.w, g.c):
        raise ValueError(f"dx must have shape {(g.n, g.h, g.w, g.c)}; received "
                         f"{(dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3])}")
    if g.n * per_image == 0 or k * f == 0:   # otherwise every value is written below
        if k * f > 0:
            d_kernel[:, :] = 0
        if dx_out is not None and g.n * g.h * g.w * g.c > 0:
            dx[:, :, :, :] = 0
        return
    cdef real[:, :, :, ::1] pad_view
    cdef real *pad_p = NULL
    cdef mdl_conv_direct d
    cdef int status
    cdef real *dx_p = NULL
    cdef bint ready = padded_ready and padded is not None
    cdef bint kernel_grad = True   # on the patch path below
    if _use_direct(k, f, sizeof(real), pointwise, direct):
        padded = _padded_buffer(&g, padded, np.asarray(dz).dtype)
        if padded is not None:
            pad_view = padded
            pad_p = &pad_view[0, 0, 0, 0]
        if dx_out is not None and _use_direct_input_grad(&g, sizeof(real), direct):
            dx_p = &dx[0, 0, 0, 0]
        d = _direct_geometry(&g, f, chunk)
        with nogil:
            status = _direct_backward(&d, &x[0, 0, 0, 0], pad_p, ready, &dz[0, 0],
                                      &kernel[0, 0], &d_kernel[0, 0], dx_p)
        if status:
            raise MemoryError("conv_train_backward: no memory for the direct kernels' tables")
        if dx_out is None or dx_p != NULL:
            return
        kernel_grad = False   # the input gradient alone, through the patch gradient
    cdef Py_ssize_t chunk_rows = min(chunk, g.n) * per_image
    cdef real[:, ::1] cols_view, dcols_view
    if not pointwise:
        if kernel_grad:
            _check_cols(cols, chunk_rows, k, "cols")
            cols_view = cols
        if dx_out is not None:
            _check_cols(dcols, chunk_rows, k, "dcols")
            dcols_view = dcols
    # kernel^T, contiguous: the input-gradient product packs it without a transposing gather.
    cdef real *kernel_t = (<real *>scratch(SHARED_SCRATCH, k * f * sizeof(real))
                           if dx_out is not None else NULL)
    if dx_out is not None and kernel_t == NULL:
        raise MemoryError()
    cdef Py_ssize_t q, ch, i0, images, rows
    cdef Geometry part = g
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef const real *dzp = &dz[0, 0]
    cdef const real *a
    cdef real *cp = NULL if pointwise or not kernel_grad else &cols_view[0, 0]
    cdef real *dcp = NULL if pointwise or dx_out is None else &dcols_view[0, 0]
    cdef real *dxp = NULL if dx_out is None else &dx[0, 0, 0, 0]
    cdef int failed = 0
    with nogil:
        if kernel_t != NULL:
            for q in range(k):
                for ch in range(f):
                    kernel_t[ch * k + q] = kernel[q, ch]
        i0 = 0
        while i0 < g.n:
            images = min(chunk, g.n - i0)
            rows = images * per_image
            part.n = images
            if kernel_grad:
                if pointwise:
                    a = xp + i0 * per_image * k
                else:
                    _im2col(&part, xp + i0 * g.h * g.w * g.c, cp)
                    a = cp
                # d_kernel (+)= patches^T @ dz: patches read transposed through their strides
                failed |= _gemm(k, f, rows, a, 1, k, dzp + i0 * per_image * f, f,
                                0 if i0 == 0 else 1, &d_kernel[0, 0])
            if dxp != NULL and pointwise:
                failed |= _gemm(rows, k, f, dzp + i0 * per_image * f, f, 1, kernel_t, k, 0,
                                dxp + i0 * per_image * k)
            elif dxp != NULL:
                failed |= _gemm(rows, k, f, dzp + i0 * per_image * f, f, 1, kernel_t, k, 0,
                                dcp)
                _col2im(&part, dcp, dxp + i0 * g.h * g.w * g.c)
            i0 += chunk
    if failed:
        raise MemoryError("conv_train_backward: no memory for the GEMM's packing buffers")


# ---- pooling ----

cdef inline void _max_update(real *out, int *idx, const real *src, Py_ssize_t pos,
                             Py_ssize_t c) noexcept nogil:
    # out = max(out, src) per channel, idx following the winner. The first maximum wins
    # ties (row-major window order, as TF and PyTorch route the gradient); a NaN wins over
    # any number. Written without branches so that the compiler vectorizes it.
    cdef Py_ssize_t ch
    cdef real v, cur
    cdef bint take
    for ch in range(c):
        v = src[ch]
        cur = out[ch]
        take = (v > cur) | ((v != v) & (cur == cur))
        out[ch] = v if take else cur
        idx[ch] = <int>(pos + ch) if take else idx[ch]


cdef void _max_pool_row(const Geometry *g, const real *x, real *y, int *argmax,
                        Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h, c = g.c
    cdef Py_ssize_t ox, ky, kx, iy, ix, ch, pos, lo = 0, hi = 0
    cdef const real *image = x + img * g.h * g.w * c
    cdef real *out
    cdef int *idx
    cdef bint first
    cdef Py_ssize_t y0 = oy * g.sh - g.pad_top
    if g.kh == 2 and g.kw == 2 and y0 >= 0 and y0 + 1 < g.h:
        # 2x2 windows (MaxPooling2D()'s default) inside the image: columns [lo, hi) in C,
        # built for the machine's vector width (csrc/pooling.c); the loop below does the rest.
        _interior(g, &lo, &hi)
        if real is float:
            max_pool_2x2_row_f32(image, g.w, c, y0, g.sw, g.pad_left, lo, hi,
                                 y + row * g.out_w * c, argmax + row * g.out_w * c)
        else:
            max_pool_2x2_row_f64(image, g.w, c, y0, g.sw, g.pad_left, lo, hi,
                                 y + row * g.out_w * c, argmax + row * g.out_w * c)
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
                    _copy(out, image + pos, c)
                    for ch in range(c):
                        idx[ch] = <int>(pos + ch)
                else:
                    _max_update(out, idx, image + pos, pos, c)
        if first:   # a window entirely in the padding (not produced by Keras' rules)
            for ch in range(c):
                out[ch] = 0
                idx[ch] = -1


def max_pool_forward(x, y, argmax, pool_size, strides, pads):
    """``y`` = the maximum of each window of ``x``; ``argmax`` = its index within the image
    (``(iy * w + ix) * c + ch``), which the backward pass routes the gradient to.

    Args:
        x: (n, h, w, c) input. y, argmax: (n, out_h, out_w, c), fully overwritten.
        pool_size, strides, pads: pairs of ints (pads: before the input, top and left).
    """
    _max_pool_forward_kernel(aligned(x), _out(y, "y"), _out(argmax, "argmax"), pool_size,
                             strides, pads)


def _max_pool_forward_kernel(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int[:, :, :, ::1] argmax,
                             pool_size, strides, pads):
    # The work of max_pool_forward(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]), pool_size, strides, (1, 1), pads,
                                (y.shape[1], y.shape[2]))
    _check_pooled(&g, (y.shape[0], y.shape[1], y.shape[2], y.shape[3]), "y")
    _check_pooled(&g, (argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3]), "argmax")
    if g.n * g.out_h * g.out_w * g.c == 0:
        return
    cdef Py_ssize_t rows = g.n * g.out_h, row
    cdef int nt = num_threads() if g.n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    cdef int *ap = &argmax[0, 0, 0, 0]
    with nogil:
        if nt == 1:
            for row in range(rows):
                _max_pool_row(&g, xp, yp, ap, row)
        else:
            for row in prange(rows, num_threads=nt, schedule="static"):
                _max_pool_row(&g, xp, yp, ap, row)


cdef int _check_pooled(const Geometry *g, tuple shape, str name) except -1:
    if shape != (g.n, g.out_h, g.out_w, g.c):
        raise ValueError(f"{name} must have shape {(g.n, g.out_h, g.out_w, g.c)}; "
                         f"received {shape}")
    return 0


cdef int _scatter_image(const real *dy, const int *argmax, const real *gate, real *dx,
                        Py_ssize_t per_out, Py_ssize_t per_in, Py_ssize_t img) noexcept nogil:
    # Returns the number of indices outside [-1, per_in) (skipped): they come from our
    # forward pass, but a caller could pass anything, so none is trusted.
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef real *image = dx + img * per_in
    cdef const real *grad = dy + img * per_out
    cdef const int *idx = argmax + img * per_out
    cdef const real *g = gate + img * per_out if gate != NULL else NULL
    memset(image, 0, per_in * sizeof(real))
    for i in range(per_out):
        if idx[i] < 0 or idx[i] >= per_in:
            bad += idx[i] != -1
        elif g == NULL or g[i] > 0:
            image[idx[i]] += grad[i]
    return bad


cdef void _unpool_tiled_image(const Geometry *g, const real *dy, const int *argmax,
                              const real *gate, real *dx, Py_ssize_t img) noexcept nogil:
    # Windows that tile the image: one in-order pass writing dx (csrc/pooling.c).
    cdef Py_ssize_t per_out = g.out_h * g.out_w * g.c, per_in = g.h * g.w * g.c
    cdef const real *image_gate = gate + img * per_out if gate != NULL else NULL
    if real is float:
        unpool_tiled_f32(g.h, g.w, g.c, g.kh, g.kw, g.out_h, g.out_w, dy + img * per_out,
                         argmax + img * per_out, image_gate, dx + img * per_in)
    else:
        unpool_tiled_f64(g.h, g.w, g.c, g.kh, g.kw, g.out_h, g.out_w, dy + img * per_out,
                         argmax + img * per_out, image_gate, dx + img * per_in)


def max_pool_backward(dy, argmax, dx, pool_size, strides, pads, gate=None):
    """Backward of :func:`max_pool_forward`: dx (n, h, w, c), fully overwritten, gets each
    window's gradient at its argmax (only where ``gate`` > 0 when given; see
    :func:`scatter_argmax`). Windows that tile the input take a single in-order pass;
    others zero dx and scatter."""
    _max_pool_backward_kernel(aligned(dy), aligned(argmax), _out(dx, "dx"), pool_size, strides,
                              pads, aligned(gate))


def _max_pool_backward_kernel(const real[:, :, :, ::1] dy, const int[:, :, :, ::1] argmax,
                              real[:, :, :, ::1] dx, pool_size, strides, pads, const real[:, :, :, ::1] gate=None):
    # The work of max_pool_backward(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]), pool_size,
                                strides, (1, 1), pads, (dy.shape[1], dy.shape[2]))
    _check_pooled(&g, (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]), "dy")
    _check_pooled(&g, (argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3]),
                  "argmax")
    if gate is not None:
        _check_pooled(&g, (gate.shape[0], gate.shape[1], gate.shape[2], gate.shape[3]), "gate")
    cdef bint tiled = (g.sh == g.kh and g.sw == g.kw and g.pad_top == 0 and g.pad_left == 0
                       and g.out_h * g.kh <= g.h and g.out_w * g.kw <= g.w)
    cdef Py_ssize_t per_out = g.out_h * g.out_w * g.c, per_in = g.h * g.w * g.c, img
    if not tiled or per_out == 0 or per_in == 0:
        _scatter_argmax_kernel(_rows(dy, per_out), _rows(argmax, per_out), _rows(dx, per_in),
                               None if gate is None else _rows(gate, per_out))
        return
    cdef int nt = num_threads() if g.n * per_in >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *gp = &dy[0, 0, 0, 0]
    cdef const int *ap = &argmax[0, 0, 0, 0]
    cdef const real *gatep = &gate[0, 0, 0, 0] if gate is not None else NULL
    cdef real *dp = &dx[0, 0, 0, 0]
    with nogil:
        if nt == 1:
            for img in range(g.n):
                _unpool_tiled_image(&g, gp, ap, gatep, dp, img)
        else:
            for img in prange(g.n, num_threads=nt, schedule="static"):
                _unpool_tiled_image(&g, gp, ap, gatep, dp, img)


cdef object _rows(object a, Py_ssize_t per_image):
    return np.asarray(a).reshape(a.shape[0], per_image)


def scatter_argmax(dy, argmax, dx, gate=None):
    """Backward of a max over windows: ``dx[i, argmax[i, j]] += dy[i, j]`` per image ``i``
    (dx is zeroed first). Used by MaxPooling and GlobalMaxPooling.

    With ``gate`` (the pooled output), only entries with ``gate[i, j] > 0`` are scattered:
    when the pooled values went through a ReLU, that is the ReLU's backward too (the
    maximum of relu(z) is relu(z[argmax]), positive exactly where relu'(z[argmax]) = 1).

    Args:
        dy, argmax: (n, outputs per image), as the forward pass wrote them.
        dx: (n, inputs per image); indices of argmax must lie in [-1, inputs) (-1: none).
        gate: optional (n, outputs per image).
    """
    _scatter_argmax_kernel(aligned(dy), aligned(argmax), _out(dx, "dx"), aligned(gate))


def _scatter_argmax_kernel(const real[:, ::1] dy, const int[:, ::1] argmax, real[:, ::1] dx,
                           const real[:, ::1] gate=None):
    # The work of scatter_argmax(), which has checked the arrays' alignment.
    cdef Py_ssize_t n = dx.shape[0], per_in = dx.shape[1], per_out = dy.shape[1], img, i
    if dy.shape[0] != n or argmax.shape[0] != n or argmax.shape[1] != per_out:
        raise ValueError(f"dy {(dy.shape[0], dy.shape[1])}, argmax "
                         f"{(argmax.shape[0], argmax.shape[1])} and dx "
                         f"{(dx.shape[0], dx.shape[1])} disagree")
    if gate is not None and (gate.shape[0] != n or gate.shape[1] != per_out):
        raise ValueError(f"gate must have the shape of dy {(n, per_out)}; received "
                         f"{(gate.shape[0], gate.shape[1])}")
    if n * per_in == 0:
        return
    if per_out == 0:
        memset(&dx[0, 0], 0, n * per_in * sizeof(real))
        return
    cdef const int *ap = &argmax[0, 0]
    cdef Py_ssize_t bad = 0
    cdef int nt = num_threads() if n * per_in >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *gp = &dy[0, 0]
    cdef const real *gatep = &gate[0, 0] if gate is not None else NULL
    cdef real *dp = &dx[0, 0]
    with nogil:
        if nt == 1:
            for img in range(n):
                bad += _scatter_image(gp, ap, gatep, dp, per_out, per_in, img)
        else:
            for img in prange(n, num_threads=nt, schedule="static"):
                bad += _scatter_image(gp, ap, gatep, dp, per_out, per_in, img)
    if bad:
        raise ValueError(f"argmax holds {bad} indices outside [-1, {per_in})")


cdef inline Py_ssize_t _window_count(const Geometry *g, Py_ssize_t oy, Py_ssize_t ox) noexcept nogil:
    """Number of window positions inside the input (padding does not count, as in Keras)."""
    cdef Py_ssize_t y0 = oy * g.sh - g.pad_top, x0 = ox * g.sw - g.pad_left
    cdef Py_ssize_t rows = min(y0 + g.kh, g.h) - max(y0, 0)
    cdef Py_ssize_t cols = min(x0 + g.kw, g.w) - max(x0, 0)
    return max(rows, 0) * max(cols, 0)


cdef void _avg_pool_row(const Geometry *g, const real *x, real *y, Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t img = row // g.out_h, oy = row % g.out_h, c = g.c
    cdef Py_ssize_t ox, iy, ix, ch, count
    cdef const real *image = x + img * g.h * g.w * c
    cdef real *out
    cdef real scale
    for ox in range(g.out_w):
        out = y + (row * g.out_w + ox) * c
        memset(out, 0, c * sizeof(real))
        count = _window_count(g, oy, ox)
        for iy in range(max(oy * g.sh - g.pad_top, 0), min(oy * g.sh - g.pad_top + g.kh, g.h)):
            for ix in range(max(ox * g.sw - g.pad_left, 0), min(ox * g.sw - g.pad_left + g.kw, g.w)):
                _add(out, image + (iy * g.w + ix) * c, c)
        scale = <real>1 / <real>count if count else 0
        for ch in range(c):
            out[ch] *= scale


def avg_pool_forward(x, y, pool_size, strides, pads):
    """``y`` = the mean of each window of ``x`` over its positions inside the input.

    Args:
        x: (n, h, w, c) input. y: (n, out_h, out_w, c), fully overwritten.
    """
    _avg_pool_forward_kernel(aligned(x), _out(y, "y"), pool_size, strides, pads)


def _avg_pool_forward_kernel(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, pool_size, strides, pads):
    # The work of avg_pool_forward(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]), pool_size, strides, (1, 1), pads,
                                (y.shape[1], y.shape[2]))
    _check_pooled(&g, (y.shape[0], y.shape[1], y.shape[2], y.shape[3]), "y")
    if g.n * g.out_h * g.out_w * g.c == 0:
        return
    cdef Py_ssize_t rows = g.n * g.out_h, row
    cdef int nt = num_threads() if g.n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    with nogil:
        if nt == 1:
            for row in range(rows):
                _avg_pool_row(&g, xp, yp, row)
        else:
            for row in prange(rows, num_threads=nt, schedule="static"):
                _avg_pool_row(&g, xp, yp, row)


cdef void _avg_pool_backward_image(const Geometry *g, const real *dy, real *dx,
                                   Py_ssize_t img) noexcept nogil:
    cdef Py_ssize_t c = g.c, oy, ox, iy, ix, ch, count
    cdef real *image = dx + img * g.h * g.w * c
    cdef const real *grad
    cdef real scale
    memset(image, 0, g.h * g.w * c * sizeof(real))
    for oy in range(g.out_h):
        for ox in range(g.out_w):
            grad = dy + ((img * g.out_h + oy) * g.out_w + ox) * c
            count = _window_count(g, oy, ox)
            if count == 0:
                continue
            scale = <real>1 / <real>count
            for iy in range(max(oy * g.sh - g.pad_top, 0), min(oy * g.sh - g.pad_top + g.kh, g.h)):
                for ix in range(max(ox * g.sw - g.pad_left, 0),
                                min(ox * g.sw - g.pad_left + g.kw, g.w)):
                    for ch in range(c):
                        image[(iy * g.w + ix) * c + ch] += grad[ch] * scale


def avg_pool_backward(dy, dx, pool_size, strides, pads):
    """Backward of :func:`avg_pool_forward`: each output gradient spread evenly over the
    window's positions inside the input. dx (n, h, w, c) is fully overwritten."""
    _avg_pool_backward_kernel(aligned(dy), _out(dx, "dx"), pool_size, strides, pads)


def _avg_pool_backward_kernel(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, pool_size, strides,
                              pads):
    # The work of avg_pool_backward(), which has checked the arrays' alignment.
    cdef Geometry g = _geometry((dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]), pool_size, strides, (1, 1), pads,
                                (dy.shape[1], dy.shape[2]))
    _check_pooled(&g, (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]), "dy")
    if g.n * g.h * g.w * g.c == 0:
        return
    cdef Py_ssize_t img
    cdef int nt = num_threads() if g.n * g.h * g.w * g.c >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *gp = &dy[0, 0, 0, 0] if g.out_h * g.out_w else NULL
    cdef real *dp = &dx[0, 0, 0, 0]
    if gp == NULL:
        memset(dp, 0, g.n * g.h * g.w * g.c * sizeof(real))
        return
    with nogil:
        if nt == 1:
            for img in range(g.n):
                _avg_pool_backward_image(&g, gp, dp, img)
        else:
            for img in prange(g.n, num_threads=nt, schedule="static"):
                _avg_pool_backward_image(&g, gp, dp, img)


# ---- a convolution with few taps fused with its max pooling (csrc/conv_pool.c) ----

cdef inline Py_ssize_t _round_up(Py_ssize_t value, Py_ssize_t multiple) noexcept nogil:
    return (value + multiple - 1) // multiple * multiple


cdef mdl_conv_pool _conv_pool_geometry(tuple x_shape, tuple kernel_shape, tuple pooled_shape,
                                       kernel_size, strides, dilation, pads, out_hw,
                                       pool_size, Py_ssize_t itemsize) except *:
    cdef Geometry c = _geometry(x_shape, kernel_size, strides, dilation, pads, out_hw)
    cdef mdl_conv_pool g
    g.h, g.w, g.c, g.kh, g.kw = c.h, c.w, c.c, c.kh, c.kw
    g.sh, g.sw, g.dh, g.dw, g.pad_top, g.pad_left = c.sh, c.sw, c.dh, c.dw, c.pad_top, c.pad_left
    g.out_h, g.out_w = c.out_h, c.out_w
    g.ph, g.pw = pool_size
    if g.ph < 1 or g.pw < 1:
        raise ValueError(f"pool_size must be positive; received {pool_size}")
    g.pooled_h, g.pooled_w = g.out_h // g.ph, g.out_w // g.pw
    g.filters = kernel_shape[1]
    if kernel_shape[0] != c.kh * c.kw * c.c:
        raise ValueError(f"kernel must have shape {(c.kh * c.kw * c.c, g.filters)}; received "
                         f"{kernel_shape}")
    expected = (c.n, g.pooled_h, g.pooled_w, g.filters)
    if pooled_shape != expected:
        raise ValueError(f"the pooled output must have shape {expected}; received "
                         f"{pooled_shape}")
    if g.out_h * g.out_w * g.filters >= 2 ** 31:
        raise ValueError(f"outputs of {(g.out_h, g.out_w, g.filters)} per image hold more "
                         f"than 2**31 values")
    g.filters_padded = _round_up(g.filters, 64 // itemsize)
    g.patch_stride = _round_up(c.kh * c.kw * c.c, MDL_CP_TAPS)
    return g


def conv_max_pool_forward(x, kernel, y, argmax, kernel_size, strides, dilation, pads, out_hw,
                          pool_size, bias=None, bint relu=False):
    """Max pooling of a convolution without forming its output: ``y`` = the maximum of each
    (non-overlapping, 'valid') pooling window of ``z = conv(x, kernel)`` (no bias), and
    ``argmax`` its index within z's image, the values and indices
    ``max_pool_forward(z, ...)`` gives. Then, when given, ``bias`` is added to ``y`` and,
    with ``relu``, the ReLU applied, the bits of the ReLU kernel on ``y + bias`` (both
    commute with the maximum). Meant for kernels of few taps (csrc/conv_pool.c).

    Args:
        x: (n, h, w, c) input. kernel: (kh * kw * c, filters).
        y, argmax: (n, out_h // ph, out_w // pw, filters), fully overwritten.
        kernel_size, strides, dilation, pads, out_hw: the convolution, as for :func:`im2col`.
        pool_size: (ph, pw), also the pooling strides.
        bias: optional (filters,). relu: whether to apply the ReLU after the bias.
    """
    _conv_max_pool_forward_kernel(aligned(x), aligned(kernel), _out(y, "y"),
                                  _out(argmax, "argmax"), kernel_size, strides, dilation, pads,
                                  out_hw, pool_size, aligned(bias), relu)


def _conv_max_pool_forward_kernel(const real[:, :, :, ::1] x, const real[:, ::1] kernel,
                                  real[:, :, :, ::1] y, int[:, :, :, ::1] argmax, kernel_size,
                                  strides, dilation, pads, out_hw, pool_size,
                                  const real[::1] bias=None, bint relu=False):
    # The work of conv_max_pool_forward(), which has checked the arrays' alignment.
    cdef mdl_conv_pool g = _conv_pool_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), (kernel.shape[0], kernel.shape[1]),
        (y.shape[0], y.shape[1], y.shape[2], y.shape[3]), kernel_size, strides, dilation,
        pads, out_hw, pool_size, sizeof(real))
    if (argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3]) != (
            y.shape[0], y.shape[1], y.shape[2], y.shape[3]):
        raise ValueError(f"argmax must have the shape of y; received "
                         f"{(argmax.shape[0], argmax.shape[1], argmax.shape[2], argmax.shape[3])}")
    if bias is not None and bias.shape[0] != g.filters:
        raise ValueError(f"bias must have shape {(g.filters,)}; received {(bias.shape[0],)}")
    cdef Py_ssize_t n = x.shape[0], rows = n * g.pooled_h, per_row = g.pooled_w * g.filters
    if rows * per_row == 0:
        return
    cdef Py_ssize_t k = kernel.shape[0], q, f, row, per_image = g.h * g.w * g.c
    cdef const real *bp = &bias[0] if bias is not None else NULL
    # The kernel with its rows padded to whole vectors of filters (zeros past the last).
    cdef real *padded = <real *>scratch(SHARED_SCRATCH, k * g.filters_padded * sizeof(real))
    if padded == NULL:
        raise MemoryError()
    for q in range(k):
        for f in range(g.filters_padded):
            padded[q * g.filters_padded + f] = kernel[q, f] if f < g.filters else 0
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef real *yp = &y[0, 0, 0, 0]
    cdef int *ap = &argmax[0, 0, 0, 0]
    cdef int failed = 0
    cdef int nt = num_threads() if rows * per_row * 4 >= PARALLEL_MIN_ELEMENTS else 1
    with nogil:
        if nt == 1:
            for row in range(rows):
                failed += _conv_pool_row(&g, xp + (row // g.pooled_h) * per_image, padded,
                                         bp, relu, yp + row * per_row, ap + row * per_row,
                                         row % g.pooled_h)
        else:
            for row in prange(rows, num_threads=nt, schedule="static"):
                failed += _conv_pool_row(&g, xp + (row // g.pooled_h) * per_image, padded,
                                         bp, relu, yp + row * per_row, ap + row * per_row,
                                         row % g.pooled_h)
    if failed:
        raise MemoryError("conv_max_pool_forward: no memory for the band buffers")


cdef inline int _conv_pool_row(const mdl_conv_pool *g, const real *image, const real *kernel,
                               const real *bias, bint relu, real *y_row, int *argmax_row,
                               Py_ssize_t py) noexcept nogil:
    if real is float:
        return conv_max_pool_row_f32(g, image, kernel, bias, relu, y_row, argmax_row, py) != 0
    else:
        return conv_max_pool_row_f64(g, image, kernel, bias, relu, y_row, argmax_row, py) != 0


def conv_max_pool_backward(x, dy, argmax, gate, d_kernel, d_bias, kernel_size, strides, dilation,
                           pads, out_hw, pool_size):
    """Weight gradients through :func:`conv_max_pool_forward` followed by a bias and a
    ReLU: ``d_kernel`` (kh * kw * c, filters) and ``d_bias`` (filters, or None), both
    overwritten, from the gradient ``dy`` of ``relu(y + bias)``, where ``gate`` is that
    output (the gradient passes where it is positive) and ``argmax`` the forward's. No
    input gradient: this serves a model's first layer. An argmax entry outside its window
    matches nothing (its gradient is dropped, as in :func:`max_pool_backward`). Each image
    is summed on its own and the images are added in order, so the bits do not depend on the
    thread count.
    """
    _conv_max_pool_backward_kernel(aligned(x), aligned(dy), aligned(argmax), aligned(gate),
                                   _out(d_kernel, "d_kernel"), _out(d_bias, "d_bias"), kernel_size,
                                   strides, dilation, pads, out_hw, pool_size)


def _conv_max_pool_backward_kernel(const real[:, :, :, ::1] x, const real[:, :, :, ::1] dy,
                                   const int[:, :, :, ::1] argmax, const real[:, :, :, ::1] gate,
                                   real[:, ::1] d_kernel, real[::1] d_bias, kernel_size, strides,
                                   dilation, pads, out_hw, pool_size):
    # The work of conv_max_pool_backward(), which has checked the arrays' alignment.
    cdef mdl_conv_pool g = _conv_pool_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (d_kernel.shape[0], d_kernel.shape[1]),
        (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]), kernel_size, strides, dilation,
        pads, out_hw, pool_size, sizeof(real))
    cdef tuple pooled = (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3])
    for name, array in (("argmax", argmax), ("gate", gate)):
        if tuple(array.shape[:4]) != pooled:
            raise ValueError(f"{name} must have the shape of dy {pooled}; received "
                             f"{tuple(array.shape[:4])}")
    if d_bias is not None and d_bias.shape[0] != g.filters:
        raise ValueError(f"d_bias must have shape {(g.filters,)}; received {(d_bias.shape[0],)}")
    cdef Py_ssize_t n = x.shape[0], k = d_kernel.shape[0], f = g.filters, img, q
    cdef Py_ssize_t per_grad = k * f + f, per_image = g.h * g.w * g.c
    cdef Py_ssize_t per_pooled = g.pooled_h * g.pooled_w * f
    d_kernel[:, :] = 0
    if d_bias is not None:
        d_bias[:] = 0
    if n == 0 or per_pooled == 0 or k * f == 0:
        return
    cdef real *partial = <real *>scratch(SHARED_SCRATCH, n * per_grad * sizeof(real))
    if partial == NULL:
        raise MemoryError()
    cdef const real *xp = &x[0, 0, 0, 0]
    cdef const real *gp = &dy[0, 0, 0, 0]
    cdef const real *gatep = &gate[0, 0, 0, 0]
    cdef const int *ap = &argmax[0, 0, 0, 0]
    cdef int failed = 0
    cdef int nt = (num_threads() if n > 1 and n * g.out_h * g.out_w * k * f
                   >= PARALLEL_MIN_ELEMENTS else 1)
    with nogil:
        if nt == 1:
            for img in range(n):
                failed += _conv_pool_grad(&g, xp + img * per_image, gp + img * per_pooled,
                                          ap + img * per_pooled, gatep + img * per_pooled,
                                          partial + img * per_grad)
        else:
            for img in prange(n, num_threads=nt, schedule="static"):
                failed += _conv_pool_grad(&g, xp + img * per_image, gp + img * per_pooled,
                                          ap + img * per_pooled, gatep + img * per_pooled,
                                          partial + img * per_grad)
    cdef real *dk = &d_kernel[0, 0]
    if not failed:
        with nogil:
            for img in range(n):   # image order, whatever the thread count
                for q in range(k * f):
                    dk[q] += partial[img * per_grad + q]
        if d_bias is not None:
            for img in range(n):
                for q in range(f):
                    d_bias[q] += partial[img * per_grad + k * f + q]
    if failed:
        raise MemoryError("conv_max_pool_backward: no memory for the band buffers")


cdef inline int _conv_pool_grad(const mdl_conv_pool *g, const real *image, const real *dy,
                                const int *argmax, const real *gate,
                                real *partial) noexcept nogil:
    cdef Py_ssize_t k = g.kh * g.kw * g.c
    if real is float:
        return conv_max_pool_grad_image_f32(g, image, dy, argmax, gate, partial,
                                            partial + k * g.filters) != 0
    else:
        return conv_max_pool_grad_image_f64(g, image, dy, argmax, gate, partial,
                                            partial + k * g.filters) != 0


# ---- global pooling: (n, positions, c) -> (n, c) ----

cdef void _global_pool_image(const real *x, real *y, int *argmax, Py_ssize_t positions,
                             Py_ssize_t c, Py_ssize_t img) noexcept nogil:
    cdef const real *image = x + img * positions * c
    cdef real *out = y + img * c
    cdef int *idx = argmax + img * c if argmax != NULL else NULL
    cdef Py_ssize_t p, ch
    for ch in range(c):
        out[ch] = image[ch]
        if idx != NULL:
            idx[ch] = <int>ch
    for p in range(1, positions):
        if idx == NULL:
            _add(out, image + p * c, c)
        else:
            _max_update(out, idx, image + p * c, p * c, c)
    if idx == NULL:
        for ch in range(c):
            out[ch] /= <real>positions


cdef int _global_pool(const real[:, :, ::1] x, real[:, ::1] y, int *argmax) except -1:
    cdef Py_ssize_t n = x.shape[0], positions = x.shape[1], c = x.shape[2], img
    if y.shape[0] != n or y.shape[1] != c:
        raise ValueError(f"y must have shape {(n, c)}; received {(y.shape[0], y.shape[1])}")
    if positions == 0 or positions * c >= 2 ** 31:
        raise ValueError(f"cannot pool {positions} positions of {c} channels")
    if n * c == 0:
        return 0
    cdef int nt = num_threads() if n * positions * c >= PARALLEL_MIN_ELEMENTS else 1
    cdef const real *xp = &x[0, 0, 0]
    cdef real *yp = &y[0, 0]
    with nogil:
        if nt == 1:
            for img in range(n):
                _global_pool_image(xp, yp, argmax, positions, c, img)
        else:
            for img in prange(n, num_threads=nt, schedule="static"):
                _global_pool_image(xp, yp, argmax, positions, c, img)
    return 0


def global_avg_pool(x, y):
    """``y[i, ch]`` = the mean of ``x[i, :, ch]``.

    Args:
        x: (n, positions, c), an image flattened over its spatial axes. y: (n, c).
    """
    _global_avg_pool_kernel(aligned(x), _out(y, "y"))


def _global_avg_pool_kernel(const real[:, :, ::1] x, real[:, ::1] y):
    # The work of global_avg_pool(), which has checked the arrays' alignment.
    _global_pool(x, y, NULL)


def global_max_pool(x, y, argmax):
    """``y[i, ch]`` = the maximum of ``x[i, :, ch]``; ``argmax[i, ch]`` its index within
    the flattened sample (``p * c + ch``), for :func:`scatter_argmax`."""
    _global_max_pool_kernel(aligned(x), _out(y, "y"), _out(argmax, "argmax"))


def _global_max_pool_kernel(const real[:, :, ::1] x, real[:, ::1] y, int[:, ::1] argmax):
    # The work of global_max_pool(), which has checked the arrays' alignment.
    if argmax.shape[0] != y.shape[0] or argmax.shape[1] != y.shape[1]:
        raise ValueError(f"argmax must have the shape of y {(y.shape[0], y.shape[1])}; received "
                         f"{(argmax.shape[0], argmax.shape[1])}")
    _global_pool(x, y, &argmax[0, 0] if argmax.shape[0] * argmax.shape[1] else NULL)
