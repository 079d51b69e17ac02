# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernels of the 3-D convolutions (channels_last volumes): vol2col, col2vol, and a training
step's passes through the core's GEMM.

The 3-D twin of _convolution.pyx's patch path. ``vol2col`` copies every receptive field of a
``(n, d, h, w, c)`` batch into one row of a ``(n * out_d * out_h * out_w, kd * kh * kw * c)``
matrix (column order kz, ky, kx, c: a Keras kernel reshaped to ``(kd * kh * kw * c,
filters)``), so that

    conv3d_forward:   z = cols @ kernel              (Conv3D forward; the transposed
                                                      layer's input gradient)
                      [d_kernel = cols^T @ rows]     (the transposed layer's kernel gradient,
                                                      from the same packed chunk)
    conv3d_backward:  d_kernel = cols^T @ dz         (Conv3D's kernel gradient)
                      dx = col2vol(dz @ kernel^T)    (Conv3D's input gradient; the
                                                      transposed layer's forward pass)

Each pass runs a few volumes at a time (``chunk``), so that a chunk's patches stay in cache
between packing and GEMM. A pointwise kernel (1x1x1, stride 1, no padding) packs nothing:
the patches are the input's own rows.

Geometry: kernel_size, strides, dilation, pads (zeros before the volume along depth, rows
and columns) and out_shape, triples of ints that the layers compute with Keras' rules
(minidl/layers/conv_utils.py). Every index is bounds-checked against the volume, so any
geometry accepted here is memory-safe. Arguments: inputs are copied when misaligned, outputs
refused; every array's dtype, rank, contiguity and shape is checked (_arrays.pxd) before it
is read through raw pointers.

Determinism: vol2col only copies (rows in parallel); col2vol adds into one volume per thread
in a fixed order; the kernel gradient adds the chunks in order: the bits never depend on the
thread count.
"""

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport dgemm, num_threads, scratch, sgemm
from minidl._core._window cimport PARALLEL_MIN_ELEMENTS, SHARED_SCRATCH, add_values, copy_values

cnp.import_array()


cdef struct vol_window:
    # One volume (d, h, w, c); a (kd, kh, kw) window moved by strides (sd, sh, sw), its
    # taps dilation (dd, dh, dw) apart; pd / ph / pw zeros before the volume; od x oh x ow
    # window positions.
    Py_ssize_t d, h, w, c
    Py_ssize_t kd, kh, kw, sd, sh, sw, dd, dh, dw
    Py_ssize_t pd, ph, pw, od, oh, ow


cdef int _geometry(vol_window *g, object volume, object kernel_size, object strides,
                   object dilation, object pads, object out_shape) except -1:
    """Fills ``g`` for volumes of shape ``volume`` (d, h, w, c) from the window's triples;
    ValueError when one is out of range."""
    cdef Py_ssize_t v[15]
    cdef int i = 0
    for triple in (kernel_size, strides, dilation, pads, out_shape):
        if len(triple) != 3:
            raise ValueError(f"kernel_size, strides, dilation, pads and out_shape must be "
                             f"triples of ints; received {tuple(triple)!r}")
        v[i], v[i + 1], v[i + 2] = triple
        i += 3
    g.d, g.h, g.w, g.c = volume
    g.kd, g.kh, g.kw, g.sd, g.sh, g.sw = v[0], v[1], v[2], v[3], v[4], v[5]
    g.dd, g.dh, g.dw, g.pd, g.ph, g.pw = v[6], v[7], v[8], v[9], v[10], v[11]
    g.od, g.oh, g.ow = v[12], v[13], v[14]
    if (min(g.kd, g.kh, g.kw, g.sd, g.sh, g.sw, g.dd, g.dh, g.dw) < 1
            or min(g.pd, g.ph, g.pw, g.od, g.oh, g.ow) < 0):
        raise ValueError(f"invalid geometry: kernel {kernel_size}, strides {strides}, "
                         f"dilation {dilation}, pads {pads}, output {out_shape}; expected "
                         f"windows, strides and dilation of at least 1, pads and output sizes "
                         f"of at least 0")
    return 0


cdef inline Py_ssize_t _patch(const vol_window *g) noexcept nogil:
    return g.kd * g.kh * g.kw * g.c


cdef inline Py_ssize_t _positions(const vol_window *g) noexcept nogil:
    return g.od * g.oh * g.ow


cdef inline Py_ssize_t _volume(const vol_window *g) noexcept nogil:
    return g.d * g.h * g.w * g.c


# ---- vol2col / col2vol ----

cdef void _vol2col_row(const vol_window *g, const floating *x, floating *cols,
                       Py_ssize_t row) noexcept nogil:
    """The ``ow`` rows of cols of output line ``row`` (an image, an output depth and row)."""
    cdef Py_ssize_t per_image = g.od * g.oh, img = row // per_image
    cdef Py_ssize_t oz = (row % per_image) // g.oh, oy = row % g.oh
    cdef Py_ssize_t c = g.c, K = _patch(g), width = g.kw * g.c
    cdef Py_ssize_t kz, ky, kx, iz, iy, ix, ox, offset
    cdef const floating *src
    cdef floating *dst = cols + row * g.ow * K
    for kz in range(g.kd):
        iz = oz * g.sd - g.pd + kz * g.dd
        for ky in range(g.kh):
            iy = oy * g.sh - g.ph + ky * g.dh
            offset = (kz * g.kh + ky) * width
            if iz < 0 or iz >= g.d or iy < 0 or iy >= g.h:
                for ox in range(g.ow):
                    memset(dst + ox * K + offset, 0, width * sizeof(floating))
                continue
            src = x + ((img * g.d + iz) * g.h + iy) * g.w * c
            for ox in range(g.ow):
                for kx in range(g.kw):
                    ix = ox * g.sw - g.pw + kx * g.dw
                    if ix < 0 or ix >= g.w:
                        memset(dst + ox * K + offset + kx * c, 0, c * sizeof(floating))
                    else:
                        copy_values(dst + ox * K + offset + kx * c, src + ix * c, c)


cdef void _vol2col(const vol_window *g, Py_ssize_t n, const floating *x,
                   floating *cols) noexcept nogil:
    cdef Py_ssize_t lines = n * g.od * g.oh, row
    cdef int nt = (num_threads() if lines * g.ow * _patch(g) >= PARALLEL_MIN_ELEMENTS else 1)
    if nt == 1:
        for row in range(lines):
            _vol2col_row(g, x, cols, row)
    else:
        for row in prange(lines, num_threads=nt, schedule="static"):
            _vol2col_row(g, x, cols, row)


cdef void _col2vol_image(const vol_window *g, const floating *cols, floating *dx,
                         Py_ssize_t img) noexcept nogil:
    # The loops of _vol2col_row, adding instead of copying; one volume, in a fixed order.
    cdef Py_ssize_t c = g.c, K = _patch(g), width = g.kw * g.c
    cdef Py_ssize_t oz, oy, ox, kz, ky, kx, iz, iy, ix, offset
    cdef floating *volume = dx + img * _volume(g)
    cdef floating *dst
    cdef const floating *src
    memset(volume, 0, _volume(g) * sizeof(floating))
    for oz in range(g.od):
        for oy in range(g.oh):
            src = cols + ((img * g.od + oz) * g.oh + oy) * g.ow * K
            for kz in range(g.kd):
                iz = oz * g.sd - g.pd + kz * g.dd
                if iz < 0 or iz >= g.d:
                    continue
                for ky in range(g.kh):
                    iy = oy * g.sh - g.ph + ky * g.dh
                    if iy < 0 or iy >= g.h:
                        continue
                    offset = (kz * g.kh + ky) * width
                    dst = volume + (iz * g.h + iy) * g.w * c
                    for ox in range(g.ow):
                        for kx in range(g.kw):
                            ix = ox * g.sw - g.pw + kx * g.dw
                            if 0 <= ix < g.w:
                                add_values(dst + ix * c, src + ox * K + offset + kx * c, c)


cdef void _col2vol(const vol_window *g, Py_ssize_t n, const floating *cols,
                   floating *dx) noexcept nogil:
    cdef Py_ssize_t img
    cdef int nt = (num_threads() if n * _positions(g) * _patch(g) >= PARALLEL_MIN_ELEMENTS
                   else 1)
    if nt == 1:
        for img in range(n):
            _col2vol_image(g, cols, dx, img)
    else:
        for img in prange(n, num_threads=nt, schedule="static"):
            _col2vol_image(g, cols, dx, img)


cdef int _check_patches(const vol_window *g, Py_ssize_t n, object cols, Py_ssize_t rows,
                        str name) except -1:
    """``cols`` (checked as a 2-D array by the caller) has at least ``rows`` rows of
    kd * kh * kw * c."""
    if dim(cols, 0) < rows or dim(cols, 1) != _patch(g):
        raise ValueError(f"{name} must have at least {rows} rows of {_patch(g)}; received "
                         f"{cols.shape}")
    return 0


def vol2col(x, cols, kernel_size, strides, dilation, pads, out_shape):
    """Pack the receptive fields of the volumes ``x`` into the rows of ``cols``.

    Args:
        x: (n, d, h, w, c) float32 or float64.
        cols: (n * out_d * out_h * out_w, kd * kh * kw * c) of x's dtype, fully overwritten.
        kernel_size, strides, dilation, pads, out_shape: triples of ints (pads: zeros before
            the volume along each axis).

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
    """
    x = aligned(x)
    cdef int t = float_carray(x, 5, None, "x")
    carray(cols, t, 2, None, "cols", True)
    cdef vol_window g
    cdef Py_ssize_t n = dim(x, 0)
    _geometry(&g, x.shape[1:], kernel_size, strides, dilation, pads, out_shape)
    if dim(cols, 0) != n * _positions(&g) or dim(cols, 1) != _patch(&g):
        raise ValueError(f"cols must have shape {(n * _positions(&g), _patch(&g))}; received "
                         f"{cols.shape}")
    if dim(cols, 0) * dim(cols, 1) == 0:
        return
    cdef char *x_p = data(x)
    cdef char *cols_p = data(cols)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _vol2col(&g, n, <const float *>x_p, <float *>cols_p)
        else:
            _vol2col(&g, n, <const double *>x_p, <double *>cols_p)


def col2vol(cols, dx, kernel_size, strides, dilation, pads, out_shape):
    """The adjoint of :func:`vol2col`: ``dx`` = every row of ``cols`` added back to the
    input positions it was copied from (padding positions are dropped).

    Args:
        cols: (n * out_d * out_h * out_w, kd * kh * kw * c) float32 or float64.
        dx: (n, d, h, w, c) of cols' dtype, fully overwritten.
        kernel_size, strides, dilation, pads, out_shape: as for :func:`vol2col`.

    Raises:
        TypeError, ValueError: as :func:`vol2col`.
    """
    cols = aligned(cols)
    cdef int t = float_carray(cols, 2, None, "cols")
    carray(dx, t, 5, None, "dx", True)
    cdef vol_window g
    cdef Py_ssize_t n = dim(dx, 0)
    _geometry(&g, dx.shape[1:], kernel_size, strides, dilation, pads, out_shape)
    if dim(cols, 0) != n * _positions(&g) or dim(cols, 1) != _patch(&g):
        raise ValueError(f"cols must have shape {(n * _positions(&g), _patch(&g))}; received "
                         f"{cols.shape}")
    if n * _volume(&g) == 0:
        return
    cdef char *cols_p = data(cols)
    cdef char *dx_p = data(dx)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _col2vol(&g, n, <const float *>cols_p, <float *>dx_p)
        else:
            _col2vol(&g, n, <const double *>cols_p, <double *>dx_p)


# ---- a training step's passes ----

cdef int _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a, Py_ssize_t rs_a,
               Py_ssize_t cs_a, const floating *b, Py_ssize_t rs_b, floating beta,
               floating *c) noexcept nogil:
    # c (m x n, rows of n) = a @ b + beta * c, with b's rows contiguous.
    if floating is float:
        return sgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)
    else:
        return dgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, 1, beta, c, n, 1)


cdef int _forward(const vol_window *g, Py_ssize_t n, Py_ssize_t chunk, bint pointwise,
                  const floating *x, const floating *kernel, Py_ssize_t f, floating *z,
                  const floating *rows, Py_ssize_t f2, floating *d_kernel,
                  floating *cols) noexcept nogil:
    """z = patches(x) @ kernel and, when d_kernel is not NULL, d_kernel = patches(x)^T @
    rows, chunk by chunk from one packing. Returns 0, or -1 when the GEMM had no memory."""
    cdef Py_ssize_t per_image = _positions(g), k = _patch(g), i0 = 0, images, m
    cdef const floating *a
    cdef int failed = 0
    while i0 < n:
        images = min(chunk, n - i0)
        m = images * per_image
        if pointwise:
            a = x + i0 * per_image * k
        else:
            _vol2col(g, images, x + i0 * _volume(g), cols)
            a = cols
        failed |= _gemm(m, f, k, a, k, 1, kernel, f, 0, z + i0 * per_image * f)
        if d_kernel != NULL:
            failed |= _gemm(k, f2, m, a, 1, k, rows + i0 * per_image * f2, f2,
                            0 if i0 == 0 else 1, d_kernel)
        i0 += chunk
    return failed


cdef int _backward(const vol_window *g, Py_ssize_t n, Py_ssize_t chunk, bint pointwise,
                   const floating *x, const floating *dz, const floating *kernel,
                   Py_ssize_t f, floating *kernel_t, floating *d_kernel, floating *dx,
                   floating *cols, floating *dcols) noexcept nogil:
    """d_kernel = patches(x)^T @ dz (when not NULL) and dx = col2vol(dz @ kernel^T) (when
    not NULL; kernel_t: room for kernel^T), chunk by chunk. Returns 0, or -1 when the GEMM
    had no memory."""
    cdef Py_ssize_t per_image = _positions(g), k = _patch(g), i0 = 0, images, m, q, ch
    cdef const floating *a
    cdef int failed = 0
    if dx != NULL:
        for q in range(k):
            for ch in range(f):
                kernel_t[ch * k + q] = kernel[q * f + ch]
    while i0 < n:
        images = min(chunk, n - i0)
        m = images * per_image
        if d_kernel != NULL:
            if pointwise:
                a = x + i0 * per_image * k
            else:
                _vol2col(g, images, x + i0 * _volume(g), cols)
                a = cols
            failed |= _gemm(k, f, m, a, 1, k, dz + i0 * per_image * f, f,
                            0 if i0 == 0 else 1, d_kernel)
        if dx != NULL and pointwise:
            failed |= _gemm(m, k, f, dz + i0 * per_image * f, f, 1, kernel_t, k, 0,
                            dx + i0 * per_image * k)
        elif dx != NULL:
            failed |= _gemm(m, k, f, dz + i0 * per_image * f, f, 1, kernel_t, k, 0, dcols)
            _col2vol(g, images, dcols, dx + i0 * _volume(g))
        i0 += chunk
    return failed


cdef int _check_pointwise(const vol_window *g, bint pointwise) except -1:
    if pointwise and (g.kd != 1 or g.kh != 1 or g.kw != 1 or g.sd != 1 or g.sh != 1
                      or g.sw != 1 or g.pd != 0 or g.ph != 0 or g.pw != 0 or g.od != g.d
                      or g.oh != g.h or g.ow != g.w):
        raise ValueError("pointwise needs a 1x1x1 kernel, stride 1, no padding and an output "
                         "of the input's size")
    return 0


cdef int _check_kernel(const vol_window *g, object kernel, Py_ssize_t n, Py_ssize_t rows,
                       Py_ssize_t chunk) except -1:
    if dim(kernel, 0) != _patch(g):
        raise ValueError(f"kernel must have {_patch(g)} rows; received {kernel.shape}")
    if rows != n * _positions(g):
        raise ValueError(f"the output must have {n * _positions(g)} rows; received {rows}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of volumes; received {chunk}")
    return 0


def conv3d_forward(x, kernel, z, cols, Py_ssize_t chunk, bint pointwise, kernel_size,
                   strides, dilation, pads, out_shape, rows=None, d_kernel=None):
    """``z = vol2col(x) @ kernel``, ``chunk`` volumes at a time through the first rows of
    ``cols``; with ``rows`` and ``d_kernel`` also ``d_kernel = vol2col(x)^T @ rows`` from the
    same patches (a transposed convolution's backward pass: x is its output gradient).

    Args:
        x: (n, d, h, w, c) float32 or float64. kernel: (kd * kh * kw * c, filters).
        z: (n * out_d * out_h * out_w, filters), fully overwritten.
        cols: at least chunk * out_d * out_h * out_w rows of kd * kh * kw * c; None with
            ``pointwise`` (a 1x1x1 kernel, stride 1, no padding).
        chunk: volumes per GEMM.
        kernel_size, strides, dilation, pads, out_shape: as for :func:`vol2col`.
        rows: None, or (n * out_d * out_h * out_w, f2). d_kernel: None, or (kd * kh * kw *
            c, f2), overwritten; both or neither.

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
        MemoryError: no memory for the GEMM's buffers.
    """
    x, kernel = aligned(x), aligned(kernel)
    cdef int t = float_carray(x, 5, None, "x")
    carray(kernel, t, 2, None, "kernel", False)
    carray(z, t, 2, None, "z", True)
    cdef vol_window g
    cdef Py_ssize_t n = dim(x, 0)
    _geometry(&g, x.shape[1:], kernel_size, strides, dilation, pads, out_shape)
    _check_pointwise(&g, pointwise)
    _check_kernel(&g, kernel, n, dim(z, 0), chunk)
    cdef Py_ssize_t k = dim(kernel, 0), f = dim(kernel, 1), f2 = 0
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    if dim(z, 1) != f:
        raise ValueError(f"z must have {f} columns; received {z.shape}")
    if (rows is None) != (d_kernel is None):
        raise ValueError("rows and d_kernel go together: pass both or neither")
    if rows is not None:
        rows = aligned(rows)
        carray(rows, t, 2, None, "rows", False)
        carray(d_kernel, t, 2, None, "d_kernel", True)
        f2 = dim(rows, 1)
        if dim(rows, 0) != dim(z, 0) or dim(d_kernel, 0) != k or dim(d_kernel, 1) != f2:
            raise ValueError(f"rows must have {dim(z, 0)} rows and d_kernel shape {(k, f2)}; "
                             f"received {rows.shape} and {d_kernel.shape}")
    cdef char *x_p = data(x)
    cdef char *kernel_p = data(kernel)
    cdef char *z_p = data(z)
    cdef void *rows_p = NULL if rows is None else data(rows)
    cdef void *dk_p = NULL if d_kernel is None else data(d_kernel)
    if dim(z, 0) == 0 or k == 0:   # nothing to multiply: zeros
        memset(z_p, 0, dim(z, 0) * f * itemsize)
        if dk_p != NULL:
            memset(dk_p, 0, k * f2 * itemsize)
        return
    if not pointwise:
        carray(cols, t, 2, None, "cols", True)
        _check_patches(&g, n, cols, min(chunk, n) * _positions(&g), "cols")
    cdef void *cp = NULL if pointwise else data(cols)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = _forward(&g, n, chunk, pointwise, <const float *>x_p,
                              <const float *>kernel_p, f, <float *>z_p, <const float *>rows_p,
                              f2, <float *>dk_p, <float *>cp)
        else:
            status = _forward(&g, n, chunk, pointwise, <const double *>x_p,
                              <const double *>kernel_p, f, <double *>z_p,
                              <const double *>rows_p, f2, <double *>dk_p, <double *>cp)
    if status:
        raise MemoryError("conv3d_forward: no memory for the GEMM's packing buffers")


def conv3d_backward(dz, kernel, Py_ssize_t chunk, bint pointwise, kernel_size, strides,
                    dilation, pads, out_shape, x=None, d_kernel=None, cols=None, dx=None,
                    dcols=None):
    """Gradients of :func:`conv3d_forward` from ``dz``: with ``x`` and ``d_kernel``,
    ``d_kernel = vol2col(x)^T @ dz`` (through ``cols``); with ``dx``, the input gradient
    ``col2vol(dz @ kernel^T)`` (through ``dcols``), each chunk's patch gradient scattered
    back while it is in cache. The input gradient alone is a transposed convolution's
    forward pass.

    Args:
        dz: (n * out_d * out_h * out_w, filters) float32 or float64.
        kernel: (kd * kh * kw * c, filters) of dz's dtype.
        chunk, pointwise, kernel_size, strides, dilation, pads, out_shape: as for
            :func:`conv3d_forward`.
        x: None, or (n, d, h, w, c), the forward pass's input. d_kernel: None, or kernel's
            shape, overwritten; both or neither.
        cols, dcols: as ``cols`` of :func:`conv3d_forward` (for the kernel and the input
            gradient), or None where unused.
        dx: None, or (n, d, h, w, c), overwritten.

    Raises:
        TypeError, ValueError: as :func:`conv3d_forward`.
        MemoryError: no memory for the GEMM's buffers.
    """
    dz, kernel = aligned(dz), aligned(kernel)
    cdef int t = float_carray(dz, 2, None, "dz")
    carray(kernel, t, 2, None, "kernel", False)
    if (x is None) != (d_kernel is None):
        raise ValueError("x and d_kernel go together: pass both or neither")
    if x is None and dx is None:
        raise ValueError("nothing to compute: pass x and d_kernel, or dx")
    if x is not None:
        x = aligned(x)
        carray(x, t, 5, None, "x", False)
        carray(d_kernel, t, 2, None, "d_kernel", True)
    if dx is not None:
        carray(dx, t, 5, None, "dx", True)
        if x is not None and dx.shape != x.shape:
            raise ValueError(f"dx must have x's shape {x.shape}; received {dx.shape}")
    volumes = x if x is not None else dx
    cdef vol_window g
    cdef Py_ssize_t n = dim(volumes, 0)
    _geometry(&g, volumes.shape[1:], kernel_size, strides, dilation, pads, out_shape)
    _check_pointwise(&g, pointwise)
    _check_kernel(&g, kernel, n, dim(dz, 0), chunk)
    cdef Py_ssize_t k = dim(kernel, 0), f = dim(kernel, 1)
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT else 8
    if dim(dz, 1) != f:
        raise ValueError(f"dz must have {f} columns like kernel; received {dz.shape}")
    if d_kernel is not None and (dim(d_kernel, 0) != k or dim(d_kernel, 1) != f):
        raise ValueError(f"d_kernel must have shape {(k, f)}; received {d_kernel.shape}")
    cdef char *dz_p = data(dz)
    cdef char *kernel_p = data(kernel)
    cdef void *x_p = NULL if x is None else data(x)
    cdef void *dk_p = NULL if d_kernel is None else data(d_kernel)
    cdef void *dx_p = NULL if dx is None else data(dx)
    if n * _positions(&g) == 0 or k * f == 0:   # otherwise every value is written below
        if dk_p != NULL:
            memset(dk_p, 0, k * f * itemsize)
        if dx_p != NULL:
            memset(dx_p, 0, n * _volume(&g) * itemsize)
        return
    cdef Py_ssize_t chunk_rows = min(chunk, n) * _positions(&g)
    cdef void *cp = NULL
    cdef void *dcp = NULL
    if not pointwise:
        if dk_p != NULL:
            carray(cols, t, 2, None, "cols", True)
            _check_patches(&g, n, cols, chunk_rows, "cols")
            cp = data(cols)
        if dx_p != NULL:
            carray(dcols, t, 2, None, "dcols", True)
            _check_patches(&g, n, dcols, chunk_rows, "dcols")
            dcp = data(dcols)
    cdef void *kernel_t = scratch(SHARED_SCRATCH, k * f * itemsize) if dx_p != NULL else NULL
    if dx_p != NULL and kernel_t == NULL:
        raise MemoryError()
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = _backward(&g, n, chunk, pointwise, <const float *>x_p,
                               <const float *>dz_p, <const float *>kernel_p, f,
                               <float *>kernel_t, <float *>dk_p, <float *>dx_p, <float *>cp,
                               <float *>dcp)
        else:
            status = _backward(&g, n, chunk, pointwise, <const double *>x_p,
                               <const double *>dz_p, <const double *>kernel_p, f,
                               <double *>kernel_t, <double *>dk_p, <double *>dx_p,
                               <double *>cp, <double *>dcp)
    if status:
        raise MemoryError("conv3d_backward: no memory for the GEMM's packing buffers")
