# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Image kernels of the preprocessing layers (channels_last batches ``(n, h, w, c)``).

Layering: ``minidl.layers.preprocessing`` draws the random parameters (numpy, one draw per
batch) and computes the sampling tables; the functions here check every array at the
boundary (_arrays.pxd), then run one ``nogil`` loop over the images.

- ``resample`` / ``resample_backward``: separable resampling through per-row and per-column
  tables (source index pair and weight), which the layers fill with Keras' rules: half-pixel
  bilinear or nearest resizing, a crop box folded into the indices.
- ``affine`` / ``affine_backward``: per-image projective transforms with bilinear or nearest
  sampling and Keras' four fill modes (``keras.ops.image.affine_transform`` with
  ``map_coordinates``' index rules).
- ``flip``: per-image horizontal and/or vertical flips (its own backward).
- ``contrast`` and ``brightness``: per-image adjustments clipped to a value range.

Coordinates and weights are computed in double and each output of a resampling or
contrast is rounded once to the image's type, so float32 and float64 share one formula;
brightness adds in the image's type, as Keras does; the backward passes accumulate in it.

Threads: every output image depends only on its input image and its parameters, and every
backward image only on its own output gradient; the images split over threads (above
PARALLEL_MIN_ELEMENTS elements), each computed in a fixed order, so the bits never depend on
the thread count.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport rint
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray, overlap
from minidl._core._backend cimport num_threads

cnp.import_array()

cdef enum:
    PARALLEL_MIN_ELEMENTS = 1 << 15
    # Fill modes, in the order of FILL_MODES.
    FILL_REFLECT = 0
    FILL_WRAP = 1
    FILL_CONSTANT = 2
    FILL_NEAREST = 3

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")
PARALLEL_MIN = PARALLEL_MIN_ELEMENTS

# Source coordinates are clamped to +-COORD_LIMIT before they become integers: a transform
# can send a point arbitrarily far (or to NaN, which lands on the lower limit), and the
# conversion of an out-of-range double is undefined. Such a point is far outside any image;
# 'wrap' and 'reflect' then read the pixel of the limit rather than of the exact point (no
# float32 computation, Keras' included, resolves a period there either).
cdef double COORD_LIMIT = 1073741824.0


cdef inline int _threads(Py_ssize_t elements) noexcept nogil:
    return num_threads() if elements >= PARALLEL_MIN_ELEMENTS else 1


cdef int _check_images(object src, object dst, str src_name, str dst_name, bint same_shape,
                       bint apart) except -1:
    """Checks a kernel's input batch ``src`` (after aligned()) and its output batch ``dst``,
    of src's dtype and of src's shape (``same_shape``) or of src's batch size and channels
    (a resampling); returns their numpy type number. ``apart``: the kernel reads other
    pixels than the one it writes, so the arrays must not overlap."""
    cdef int t = float_carray(src, 4, None, src_name)
    carray(dst, t, 4, None, dst_name, True)
    if same_shape:
        if dst.shape != src.shape:
            raise ValueError(f"{dst_name} must have shape {src.shape} like {src_name}; "
                             f"received {dst.shape}.")
    elif dim(dst, 0) != dim(src, 0) or dim(dst, 3) != dim(src, 3):
        raise ValueError(f"{dst_name} must have shape "
                         f"{(dim(src, 0), dim(dst, 1), dim(dst, 2), dim(src, 3))}; "
                         f"received {dst.shape}.")
    if apart and overlap(dst, src):
        raise ValueError(f"{dst_name} must not overlap {src_name}; pass a separate array.")
    return t


cdef int _check_table(object a, int t, Py_ssize_t n, str name) except -1:
    carray(a, t, 1, None, name, False)
    if dim(a, 0) != n:
        raise ValueError(f"{name} must have {n} entries; received {dim(a, 0)}.")
    return 0


cdef int _check_params(object a, Py_ssize_t n, Py_ssize_t k, str name) except -1:
    carray(a, cnp.NPY_DOUBLE, 2, None, name, False)
    if dim(a, 0) != n or dim(a, 1) != k:
        raise ValueError(f"{name} must have shape {(n, k)}; received {a.shape}.")
    return 0


cdef int _mode(object value, tuple names, str name) except -1:
    if value not in names:
        raise ValueError(f"{name} must be one of {names}; received {name}={value!r:.100}.")
    return names.index(value)


# ---- separable resampling ----

cdef struct _Resampling:
    # Images of (h, w) pixels resampled to (oh, ow), c channels each: output row i blends
    # input rows r0[i] and r1[i] (weight rw[i] on the second), output column j input columns
    # c0[j] and c1[j] (weight cw[j]); nearest (not linear) reads r0 and c0 only.
    Py_ssize_t h, w, oh, ow, c
    const Py_ssize_t *r0
    const Py_ssize_t *r1
    const double *rw
    const Py_ssize_t *c0
    const Py_ssize_t *c1
    const double *cw
    bint linear


cdef void _resample_image(const floating *src, floating *dst,
                          const _Resampling *rs) noexcept nogil:
    cdef Py_ssize_t oy, ox, ch
    cdef Py_ssize_t w = rs.w, ow = rs.ow, c = rs.c
    cdef const Py_ssize_t *r0 = rs.r0, *r1 = rs.r1, *c0 = rs.c0, *c1 = rs.c1
    cdef const double *rw = rs.rw, *cw = rs.cw
    cdef bint linear = rs.linear
    cdef const floating *row0
    cdef const floating *row1
    cdef const floating *p00
    cdef const floating *p01
    cdef const floating *p10
    cdef const floating *p11
    cdef floating *out
    cdef double wy, wx, top, bottom
    for oy in range(rs.oh):
        row0 = src + r0[oy] * w * c
        row1 = src + r1[oy] * w * c
        wy = rw[oy]
        for ox in range(ow):
            out = dst + (oy * ow + ox) * c
            p00 = row0 + c0[ox] * c
            if not linear:
                for ch in range(c):
                    out[ch] = p00[ch]
                continue
            p01 = row0 + c1[ox] * c
            p10 = row1 + c0[ox] * c
            p11 = row1 + c1[ox] * c
            wx = cw[ox]
            # TF's lerp order: across the columns of both rows, then between the rows.
            for ch in range(c):
                top = <double>p00[ch] + (<double>p01[ch] - <double>p00[ch]) * wx
                bottom = <double>p10[ch] + (<double>p11[ch] - <double>p10[ch]) * wx
                out[ch] = <floating>(top + (bottom - top) * wy)


cdef void _resample_image_backward(const floating *dy, floating *dx,
                                   const _Resampling *rs) noexcept nogil:
    cdef Py_ssize_t i, oy, ox, ch
    cdef Py_ssize_t w = rs.w, ow = rs.ow, c = rs.c
    cdef const Py_ssize_t *r0 = rs.r0, *r1 = rs.r1, *c0 = rs.c0, *c1 = rs.c1
    cdef const double *rw = rs.rw, *cw = rs.cw
    cdef bint linear = rs.linear
    cdef const floating *g
    cdef floating *d00
    cdef floating *d01
    cdef floating *d10
    cdef floating *d11
    cdef double wy, wx
    for i in range(rs.h * w * c):
        dx[i] = 0
    for oy in range(rs.oh):
        wy = rw[oy]
        for ox in range(ow):
            g = dy + (oy * ow + ox) * c
            d00 = dx + (r0[oy] * w + c0[ox]) * c
            if not linear:
                for ch in range(c):
                    d00[ch] += g[ch]
                continue
            wx = cw[ox]
            d01 = dx + (r0[oy] * w + c1[ox]) * c
            d10 = dx + (r1[oy] * w + c0[ox]) * c
            d11 = dx + (r1[oy] * w + c1[ox]) * c
            for ch in range(c):
                d00[ch] += <floating>(g[ch] * (1.0 - wy) * (1.0 - wx))
                d01[ch] += <floating>(g[ch] * (1.0 - wy) * wx)
                d10[ch] += <floating>(g[ch] * wy * (1.0 - wx))
                d11[ch] += <floating>(g[ch] * wy * wx)


cdef void _resample_batch(const floating *src, floating *dst, Py_ssize_t n,
                          const _Resampling *rs, bint backward, int nt) noexcept nogil:
    cdef Py_ssize_t img, per_in = rs.h * rs.w * rs.c, per_out = rs.oh * rs.ow * rs.c
    for img in prange(n, num_threads=nt, schedule="static"):
        if backward:
            _resample_image_backward(src + img * per_out, dst + img * per_in, rs)
        else:
            _resample_image(src + img * per_in, dst + img * per_out, rs)


cdef int _resample_tables(_Resampling *rs, object rows0, object rows1, object row_weights,
                          object cols0, object cols1, object col_weights) except -1:
    """Checks the tables against the sizes in ``rs`` and points ``rs`` at them."""
    import numpy as np
    _check_table(rows0, cnp.NPY_INTP, rs.oh, "rows0")
    _check_table(rows1, cnp.NPY_INTP, rs.oh, "rows1")
    _check_table(row_weights, cnp.NPY_DOUBLE, rs.oh, "row_weights")
    _check_table(cols0, cnp.NPY_INTP, rs.ow, "cols0")
    _check_table(cols1, cnp.NPY_INTP, rs.ow, "cols1")
    _check_table(col_weights, cnp.NPY_DOUBLE, rs.ow, "col_weights")
    for table, size, name in ((rows0, rs.h, "rows0"), (rows1, rs.h, "rows1"),
                              (cols0, rs.w, "cols0"), (cols1, rs.w, "cols1")):
        if len(table) and (np.min(table) < 0 or np.max(table) >= size):
            raise ValueError(f"{name} must hold indices in [0, {size}); received values in "
                             f"[{np.min(table)}, {np.max(table)}].")
    rs.r0 = <const Py_ssize_t *>data(rows0)
    rs.r1 = <const Py_ssize_t *>data(rows1)
    rs.rw = <const double *>data(row_weights)
    rs.c0 = <const Py_ssize_t *>data(cols0)
    rs.c1 = <const Py_ssize_t *>data(cols1)
    rs.cw = <const double *>data(col_weights)
    return 0


cdef int _resample_run(object src, object dst, str src_name, str dst_name, object rows0,
                       object rows1, object row_weights, object cols0, object cols1,
                       object col_weights, bint linear, bint backward) except -1:
    """:func:`resample` (``src`` the images, ``dst`` the resampled ones) or, ``backward``,
    :func:`resample_backward` (``src`` their gradient, ``dst`` the images' gradient)."""
    src = aligned(src)
    cdef int t = _check_images(src, dst, src_name, dst_name, False, True)
    images, resampled = (dst, src) if backward else (src, dst)
    cdef _Resampling rs
    rs.h, rs.w, rs.c = dim(images, 1), dim(images, 2), dim(images, 3)
    rs.oh, rs.ow = dim(resampled, 1), dim(resampled, 2)
    rs.linear = linear
    _resample_tables(&rs, rows0, rows1, row_weights, cols0, cols1, col_weights)
    cdef Py_ssize_t n = dim(src, 0)
    cdef int nt = _threads(n * (rs.h * rs.w + rs.oh * rs.ow) * rs.c)
    if t == cnp.NPY_FLOAT:
        _resample_batch(<const float *>data(src), <float *>data(dst), n, &rs, backward, nt)
    else:
        _resample_batch(<const double *>data(src), <double *>data(dst), n, &rs, backward, nt)
    return 0


def resample(x, y, rows0, rows1, row_weights, cols0, cols1, col_weights, bint linear):
    """Resample every image of ``x`` into ``y`` through row and column tables.

    Output pixel ``(i, j)`` blends input rows ``rows0[i]``, ``rows1[i]`` (weight
    ``row_weights[i]`` on the second) and columns ``cols0[j]``, ``cols1[j]`` (weight
    ``col_weights[j]``), as TF's bilinear resize does; with ``linear`` False it copies pixel
    ``(rows0[i], cols0[j])`` (nearest) and the other tables are not read.

    Args:
        x: IN ``(n, h, w, c)`` float32 or float64, C-contiguous.
        y: OUT ``(n, oh, ow, c)``, x's dtype.
        rows0, rows1: ``(oh,)`` intp indices in ``[0, h)``; row_weights ``(oh,)`` float64.
        cols0, cols1: ``(ow,)`` intp indices in ``[0, w)``; col_weights ``(ow,)`` float64.
        linear: bilinear (True) or nearest (False).
    """
    _resample_run(x, y, "x", "y", rows0, rows1, row_weights, cols0, cols1, col_weights,
                  linear, False)


def resample_backward(dy, dx, rows0, rows1, row_weights, cols0, cols1, col_weights,
                      bint linear):
    """The input gradient of :func:`resample`: ``dx`` (overwritten) receives each output
    gradient spread over the input pixels the output blended, with the same weights.

    Args:
        dy: IN ``(n, oh, ow, c)``; dx: OUT ``(n, h, w, c)``, dy's dtype; tables as
            :func:`resample`.
    """
    _resample_run(dy, dx, "dy", "dx", rows0, rows1, row_weights, cols0, cols1, col_weights,
                  linear, True)


# ---- projective transforms ----

cdef inline Py_ssize_t _fix_index(Py_ssize_t i, Py_ssize_t size, int mode,
                                  bint *valid) noexcept nogil:
    # Keras' map_coordinates index rules. reflect: (d c b a | a b c d | d c b a), period 2 *
    # size; wrap: (a b c d | a b c d); nearest: (a a | a b c d | d d); constant: the index
    # as it is, valid only inside the image (an invalid corner reads fill_value).
    cdef Py_ssize_t m
    if mode == FILL_CONSTANT:
        if i < 0 or i >= size:
            valid[0] = False
            return 0
        return i
    if mode == FILL_NEAREST:
        return 0 if i < 0 else (size - 1 if i >= size else i)
    if mode == FILL_WRAP:
        m = i % size
        return m + size if m < 0 else m
    m = i % (2 * size)
    if m < 0:
        m += 2 * size
    return 2 * size - 1 - m if m >= size else m


cdef inline double _clamp_coordinate(double v) noexcept nogil:
    if not (v > -COORD_LIMIT):   # (NaN too)
        return -COORD_LIMIT
    return COORD_LIMIT if v > COORD_LIMIT else v


cdef inline Py_ssize_t _floor(double v) noexcept nogil:
    # floor() of a clamped coordinate without a libm call (the build has no SSE4.1 baseline,
    # where floor would be one instruction): exact for |v| < 2**52.
    cdef Py_ssize_t i = <Py_ssize_t>v
    return i - 1 if v < <double>i else i


cdef struct _Row:
    # The terms of a transform that depend on the output row y only: a1 y + a2, b1 y + b2
    # and c1 y + 1.
    double x, y, k


cdef inline void _row_terms(const double *m, Py_ssize_t oy, _Row *r) noexcept nogil:
    cdef double y = <double>oy
    r.x = m[1] * y + m[2]
    r.y = m[4] * y + m[5]
    r.k = m[7] * y + 1.0


cdef inline void _source_point(const double *m, bint projective, const _Row *r,
                               Py_ssize_t ox, double *sx, double *sy) noexcept nogil:
    # Output point (x, y) -> input point ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k),
    # k = c0 x + c1 y + 1 (an affine transform, c0 = c1 = 0, skips the division by 1).
    cdef double x = <double>ox
    cdef double k
    if projective:
        k = m[6] * x + r.k
        sx[0] = _clamp_coordinate((m[0] * x + r.x) / k)
        sy[0] = _clamp_coordinate((m[3] * x + r.y) / k)
    else:
        sx[0] = _clamp_coordinate(m[0] * x + r.x)
        sy[0] = _clamp_coordinate(m[3] * x + r.y)


cdef struct _Taps:
    # The four neighbours of a bilinear sample in map_coordinates' order (y0, x0), (y0, x1),
    # (y1, x0), (y1, x1): offsets into the image, weights, and whether each is inside the
    # image (an invalid one reads fill_value; only 'constant' has them).
    Py_ssize_t offset[4]
    double weight[4]
    bint valid[4]


cdef inline void _bilinear_taps(double sx, double sy, Py_ssize_t h, Py_ssize_t w,
                                Py_ssize_t c, int mode, _Taps *t) noexcept nogil:
    cdef Py_ssize_t iy = _floor(sy), ix = _floor(sx), y0, y1, x0, x1
    cdef double fy = sy - <double>iy, fx = sx - <double>ix
    cdef bint vy0 = True, vy1 = True, vx0 = True, vx1 = True
    # Each weight is (y weight) * (x weight), as map_coordinates multiplies them.
    t.weight[0] = (1.0 - fy) * (1.0 - fx)
    t.weight[1] = (1.0 - fy) * fx
    t.weight[2] = fy * (1.0 - fx)
    t.weight[3] = fy * fx
    if 0 <= iy < h - 1 and 0 <= ix < w - 1:
        # Inside: no index rule (most points of a small rotation or zoom).
        t.offset[0] = (iy * w + ix) * c
        t.offset[1] = t.offset[0] + c
        t.offset[2] = t.offset[0] + w * c
        t.offset[3] = t.offset[2] + c
        t.valid[0] = t.valid[1] = t.valid[2] = t.valid[3] = True
        return
    y0 = _fix_index(iy, h, mode, &vy0)
    y1 = _fix_index(iy + 1, h, mode, &vy1)
    x0 = _fix_index(ix, w, mode, &vx0)
    x1 = _fix_index(ix + 1, w, mode, &vx1)
    t.offset[0] = (y0 * w + x0) * c
    t.offset[1] = (y0 * w + x1) * c
    t.offset[2] = (y1 * w + x0) * c
    t.offset[3] = (y1 * w + x1) * c
    t.valid[0] = vy0 and vx0
    t.valid[1] = vy0 and vx1
    t.valid[2] = vy1 and vx0
    t.valid[3] = vy1 and vx1


cdef inline Py_ssize_t _nearest_tap(double sx, double sy, Py_ssize_t h, Py_ssize_t w,
                                    Py_ssize_t c, int mode, bint *valid) noexcept nogil:
    # Round half to even, as jnp.round / tf.round / torch.round; -1 for a fill_value point.
    valid[0] = True
    cdef Py_ssize_t iy = _fix_index(<Py_ssize_t>rint(sy), h, mode, valid)
    cdef Py_ssize_t ix = _fix_index(<Py_ssize_t>rint(sx), w, mode, valid)
    return (iy * w + ix) * c


cdef struct _Axis:
    # One output column (row) of an axis-aligned bilinear transform: its two source columns
    # (rows) after the fill mode's index rule, whether each is inside the image, and the
    # weight of the second.
    Py_ssize_t i0, i1
    bint v0, v1
    double f


cdef inline void _axis_taps(double v, Py_ssize_t size, int mode, _Axis *a) noexcept nogil:
    cdef Py_ssize_t i = _floor(v)
    a.f = v - <double>i
    a.v0 = a.v1 = True
    a.i0 = _fix_index(i, size, mode, &a.v0)
    a.i1 = _fix_index(i + 1, size, mode, &a.v1)


cdef int _affine_separable(const floating *src, floating *dst, Py_ssize_t h, Py_ssize_t w,
                           Py_ssize_t c, const double *m, int mode,
                           double fill) noexcept nogil:
    """The forward pass of a bilinear transform without rotation or shear (``m[1] = m[3] =
    0``, not projective): the taps of every column are found once per image instead of once
    per pixel. The source points and weights are those of the general loop of
    :func:`_affine_image`, computed by the same expressions, so the bits are the same.
    Returns -1 (having written nothing) when the column table cannot be allocated."""
    cdef _Axis *cols = <_Axis *>malloc(w * sizeof(_Axis))
    if cols == NULL:
        return -1
    cdef _Row row
    cdef _Axis ry
    cdef _Axis *cx
    cdef Py_ssize_t oy, ox, ch
    cdef double fy, fx, w00, w01, w10, w11
    cdef const floating *row0
    cdef const floating *row1
    cdef const floating *p00
    cdef const floating *p01
    cdef const floating *p10
    cdef const floating *p11
    cdef floating *out = dst
    # Row terms do not depend on the row here (m[1] = 0): those of row 0 serve every row.
    _row_terms(m, 0, &row)
    for ox in range(w):
        _axis_taps(_clamp_coordinate(m[0] * <double>ox + row.x), w, mode, &cols[ox])
    for oy in range(h):
        _row_terms(m, oy, &row)
        _axis_taps(_clamp_coordinate(m[3] * 0.0 + row.y), h, mode, &ry)
        fy = ry.f
        row0 = src + ry.i0 * w * c
        row1 = src + ry.i1 * w * c
        for ox in range(w):
            cx = &cols[ox]
            fx = cx.f
            # Weights as map_coordinates multiplies them (see _bilinear_taps).
            w00 = (1.0 - fy) * (1.0 - fx)
            w01 = (1.0 - fy) * fx
            w10 = fy * (1.0 - fx)
            w11 = fy * fx
            p00 = row0 + cx.i0 * c
            p01 = row0 + cx.i1 * c
            p10 = row1 + cx.i0 * c
            p11 = row1 + cx.i1 * c
            if ry.v0 and ry.v1 and cx.v0 and cx.v1:
                for ch in range(c):
                    out[ch] = <floating>(w00 * <double>p00[ch] + w01 * <double>p01[ch]
                                         + w10 * <double>p10[ch] + w11 * <double>p11[ch])
            else:   # ('constant' only) a corner outside the image reads fill_value
                for ch in range(c):
                    out[ch] = <floating>(
                        w00 * (<double>p00[ch] if ry.v0 and cx.v0 else fill)
                        + w01 * (<double>p01[ch] if ry.v0 and cx.v1 else fill)
                        + w10 * (<double>p10[ch] if ry.v1 and cx.v0 else fill)
                        + w11 * (<double>p11[ch] if ry.v1 and cx.v1 else fill))
            out += c
    free(cols)
    return 0


# The direction of _affine_image, a type so that each direction is compiled as a kernel of
# its own, free of the other's branches (the same kernel with a run-time flag was up to 15%
# slower on some paths).
cdef struct _Forward:
    char unused
cdef struct _Backward:
    char unused
ctypedef fused direction:
    _Forward
    _Backward


cdef void _affine_image(const floating *src, floating *dst, Py_ssize_t h, Py_ssize_t w,
                        Py_ssize_t c, const double *m, bint linear, int mode, double fill,
                        const direction *tag) noexcept nogil:
    """One image of :func:`affine` (``src`` the image, ``dst`` the output) or, ``tag`` a
    (NULL) ``_Backward *``, of :func:`affine_backward` (``src`` the output gradient, ``dst``
    the image gradient): both walk the output pixels to the same source points and taps, the
    forward pass to read them, the backward one to add the gradient to them."""
    cdef Py_ssize_t i, oy, ox, ch, k, at, iy, ix
    cdef double sx, sy, fy, fx, w00, w01, w10, w11
    cdef bint valid
    cdef bint projective = m[6] != 0.0 or m[7] != 0.0
    cdef _Taps t
    cdef _Row row
    cdef const floating *p00
    cdef const floating *p01
    cdef const floating *p10
    cdef const floating *p11
    cdef const floating *g
    cdef floating *out
    if direction is _Backward:
        for i in range(h * w * c):
            dst[i] = 0
    elif linear and not projective and m[1] == 0.0 and m[3] == 0.0:
        # An axis-aligned transform (zoom, translation): the source column depends on the
        # output column only, the row on the row only.
        if _affine_separable(src, dst, h, w, c, m, mode, fill) == 0:
            return
    for oy in range(h):
        _row_terms(m, oy, &row)
        for ox in range(w):
            # The output pixel: written forward, its gradient read backward.
            out = dst + (oy * w + ox) * c
            g = src + (oy * w + ox) * c
            _source_point(m, projective, &row, ox, &sx, &sy)
            if not linear:
                at = _nearest_tap(sx, sy, h, w, c, mode, &valid)
                if direction is _Forward:
                    for ch in range(c):
                        out[ch] = src[at + ch] if valid else <floating>fill
                elif valid:
                    for ch in range(c):
                        dst[at + ch] += g[ch]
                continue
            if direction is _Backward:
                _bilinear_taps(sx, sy, h, w, c, mode, &t)
                for k in range(4):
                    if t.valid[k]:   # (a fill_value corner reads no pixel)
                        out = dst + t.offset[k]
                        for ch in range(c):
                            out[ch] += <floating>(t.weight[k] * g[ch])
                continue
            iy = _floor(sy)
            ix = _floor(sx)
            if 0 <= iy < h - 1 and 0 <= ix < w - 1:
                # Inside the image (most points of a small rotation or zoom): the taps of
                # _bilinear_taps without the index rules, the same arithmetic.
                fy = sy - <double>iy
                fx = sx - <double>ix
                w00 = (1.0 - fy) * (1.0 - fx)
                w01 = (1.0 - fy) * fx
                w10 = fy * (1.0 - fx)
                w11 = fy * fx
                p00 = src + (iy * w + ix) * c
                p10 = p00 + w * c
                for ch in range(c):
                    out[ch] = <floating>(w00 * <double>p00[ch] + w01 * <double>p00[c + ch]
                                         + w10 * <double>p10[ch] + w11 * <double>p10[c + ch])
                continue
            _bilinear_taps(sx, sy, h, w, c, mode, &t)
            p00 = src + t.offset[0]
            p01 = src + t.offset[1]
            p10 = src + t.offset[2]
            p11 = src + t.offset[3]
            for ch in range(c):
                out[ch] = <floating>(
                    t.weight[0] * (<double>p00[ch] if t.valid[0] else fill)
                    + t.weight[1] * (<double>p01[ch] if t.valid[1] else fill)
                    + t.weight[2] * (<double>p10[ch] if t.valid[2] else fill)
                    + t.weight[3] * (<double>p11[ch] if t.valid[3] else fill))


cdef void _affine_batch(const floating *src, floating *dst, Py_ssize_t n, Py_ssize_t h,
                        Py_ssize_t w, Py_ssize_t c, const double *transforms, bint linear,
                        int mode, double fill, bint backward, int nt) noexcept nogil:
    cdef Py_ssize_t img, per = h * w * c
    for img in prange(n, num_threads=nt, schedule="static"):
        if backward:
            _affine_image(src + img * per, dst + img * per, h, w, c, transforms + 8 * img,
                          linear, mode, fill, <const _Backward *>NULL)
        else:
            _affine_image(src + img * per, dst + img * per, h, w, c, transforms + 8 * img,
                          linear, mode, fill, <const _Forward *>NULL)


cdef int _affine_run(object src, object transforms, object dst, str src_name, str dst_name,
                     object interpolation, object fill_mode, double fill_value,
                     bint backward) except -1:
    """:func:`affine` (``src`` the images, ``dst`` the transformed ones) or, ``backward``,
    :func:`affine_backward` (``src`` their gradient, ``dst`` the images' gradient)."""
    src = aligned(src)
    cdef int t = _check_images(src, dst, src_name, dst_name, True, True)
    cdef Py_ssize_t n = dim(src, 0), h = dim(src, 1), w = dim(src, 2), c = dim(src, 3)
    _check_params(transforms, n, 8, "transforms")
    cdef bint linear = _mode(interpolation, INTERPOLATIONS, "interpolation") == 0
    cdef int mode = _mode(fill_mode, FILL_MODES, "fill_mode")
    cdef const double *mp = <const double *>data(transforms)
    cdef int nt = _threads(n * h * w * c)
    if t == cnp.NPY_FLOAT:
        _affine_batch(<const float *>data(src), <float *>data(dst), n, h, w, c, mp, linear,
                      mode, fill_value, backward, nt)
    else:
        _affine_batch(<const double *>data(src), <double *>data(dst), n, h, w, c, mp, linear,
                      mode, fill_value, backward, nt)
    return 0


def affine(x, transforms, y, interpolation="bilinear", fill_mode="reflect",
           double fill_value=0.0):
    """Apply one projective transform per image: ``keras.ops.image.affine_transform``.

    Row ``[a0, a1, a2, b0, b1, b2, c0, c1]`` of ``transforms`` maps output point ``(x, y)``
    to input point ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``,
    ``k = c0 x + c1 y + 1``, which is sampled with ``interpolation`` and, outside the image,
    ``fill_mode`` (Keras' map_coordinates rules).

    Args:
        x: IN ``(n, h, w, c)`` float32 or float64, C-contiguous.
        transforms: IN ``(n, 8)`` float64.
        y: OUT like x (not overlapping it).
        interpolation: 'bilinear' or 'nearest'.
        fill_mode: 'reflect', 'wrap', 'constant' or 'nearest'.
        fill_value: the value of points outside the image in 'constant' mode.
    """
    _affine_run(x, transforms, y, "x", "y", interpolation, fill_mode, fill_value, False)


def affine_backward(dy, transforms, dx, interpolation="bilinear", fill_mode="reflect"):
    """The input gradient of :func:`affine`: ``dx`` (overwritten) receives each output
    gradient spread over the input pixels that output read, with their weights (points
    filled with fill_value pass no gradient).

    Args:
        dy: IN ``(n, h, w, c)``; transforms: IN ``(n, 8)`` float64; dx: OUT like dy.
    """
    _affine_run(dy, transforms, dx, "dy", "dx", interpolation, fill_mode, 0.0, True)


# ---- flips ----

cdef void _flip_image(const floating *src, floating *dst, Py_ssize_t h, Py_ssize_t w,
                      Py_ssize_t c, int flags) noexcept nogil:
    cdef Py_ssize_t oy, ox, ch, iy
    cdef Py_ssize_t row = w * c
    cdef const floating *p
    cdef floating *out
    for oy in range(h):
        iy = h - 1 - oy if flags & 2 else oy
        if not flags & 1:
            memcpy(dst + oy * row, src + iy * row, row * sizeof(floating))
            continue
        for ox in range(w):
            p = src + iy * row + (w - 1 - ox) * c
            out = dst + oy * row + ox * c
            for ch in range(c):
                out[ch] = p[ch]


cdef void _flip_batch(const floating *src, floating *dst, Py_ssize_t n, Py_ssize_t h,
                      Py_ssize_t w, Py_ssize_t c, const int *flags, int nt) noexcept nogil:
    cdef Py_ssize_t img, per = h * w * c
    for img in prange(n, num_threads=nt, schedule="static"):
        _flip_image(src + img * per, dst + img * per, h, w, c, flags[img])


def flip(x, flags, y):
    """Flip each image: ``flags[i]`` bit 0 reverses image i's columns (horizontal flip),
    bit 1 its rows (vertical flip). Its own backward pass (apply it to the gradient).

    Args:
        x: IN ``(n, h, w, c)`` float32 or float64; flags: IN ``(n,)`` int32;
        y: OUT like x (not overlapping it).
    """
    x = aligned(x)
    cdef int t = _check_images(x, y, "x", "y", True, True)
    cdef Py_ssize_t n = dim(x, 0), h = dim(x, 1), w = dim(x, 2), c = dim(x, 3)
    _check_table(flags, cnp.NPY_INT32, n, "flags")
    cdef const int *fp = <const int *>data(flags)
    cdef int nt = _threads(n * h * w * c)
    if t == cnp.NPY_FLOAT:
        _flip_batch(<const float *>data(x), <float *>data(y), n, h, w, c, fp, nt)
    else:
        _flip_batch(<const double *>data(x), <double *>data(y), n, h, w, c, fp, nt)


# ---- contrast and brightness ----

cdef inline double _clip(double v, double lo, double hi) noexcept nogil:
    # np.clip's order: the lower bound first, then the upper.
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


cdef void _contrast_image(const floating *src, floating *dst, Py_ssize_t pixels,
                          Py_ssize_t c, double factor, double lo, double hi,
                          double *means) noexcept nogil:
    cdef Py_ssize_t p, ch
    cdef double mean
    for ch in range(c):
        means[ch] = 0.0
    for p in range(pixels):
        for ch in range(c):
            means[ch] += <double>src[p * c + ch]
    for ch in range(c):
        means[ch] /= <double>pixels
    for p in range(pixels):
        for ch in range(c):
            mean = means[ch]
            dst[p * c + ch] = <floating>_clip((<double>src[p * c + ch] - mean) * factor + mean,
                                              lo, hi)


cdef void _contrast_batch(const floating *src, floating *dst, Py_ssize_t n, Py_ssize_t pixels,
                          Py_ssize_t c, const double *factors, double lo, double hi,
                          double *means, int nt) noexcept nogil:
    cdef Py_ssize_t img, per = pixels * c
    for img in prange(n, num_threads=nt, schedule="static"):
        _contrast_image(src + img * per, dst + img * per, pixels, c, factors[img], lo, hi,
                        means + img * c)


cdef void _brightness_image(const floating *src, floating *dst, Py_ssize_t size,
                            floating delta, floating lo, floating hi) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(size):
        # In the image's type, as Keras adds the delta cast to it.
        v = src[i] + delta
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        dst[i] = v


cdef void _brightness_batch(const floating *src, floating *dst, Py_ssize_t n, Py_ssize_t per,
                            const double *deltas, double lo, double hi, int nt) noexcept nogil:
    cdef Py_ssize_t img
    for img in prange(n, num_threads=nt, schedule="static"):
        _brightness_image(src + img * per, dst + img * per, per, <floating>deltas[img],
                          <floating>lo, <floating>hi)


def contrast(x, factors, y, double low, double high, means):
    """Per image and channel: ``clip((x - mean) * factor + mean, low, high)``, the mean over
    the image's pixels (RandomContrast).

    Args:
        x: IN ``(n, h, w, c)``; factors: IN ``(n,)`` float64; y: OUT like x (may be x);
        low, high: the value range; means: OUT ``(n, c)`` float64, each image's channel
            means (what the backward pass needs).
    """
    x = aligned(x)
    cdef int t = _check_images(x, y, "x", "y", True, False)
    cdef Py_ssize_t n = dim(x, 0), pixels = dim(x, 1) * dim(x, 2), c = dim(x, 3)
    _check_table(factors, cnp.NPY_DOUBLE, n, "factors")
    carray(means, cnp.NPY_DOUBLE, 2, None, "means", True)
    if dim(means, 0) != n or dim(means, 1) != c:
        raise ValueError(f"means must have shape {(n, c)}; received {means.shape}.")
    if pixels == 0:
        return
    cdef const double *fp = <const double *>data(factors)
    cdef double *mp = <double *>data(means)
    cdef int nt = _threads(n * pixels * c)
    if t == cnp.NPY_FLOAT:
        _contrast_batch(<const float *>data(x), <float *>data(y), n, pixels, c, fp, low, high,
                        mp, nt)
    else:
        _contrast_batch(<const double *>data(x), <double *>data(y), n, pixels, c, fp, low,
                        high, mp, nt)


def brightness(x, deltas, y, double low, double high):
    """Per image: ``clip(x + delta, low, high)``, computed in x's type (RandomBrightness).

    Args:
        x: IN ``(n, h, w, c)``; deltas: IN ``(n,)`` float64; y: OUT like x (may be x);
        low, high: the value range.
    """
    x = aligned(x)
    cdef int t = _check_images(x, y, "x", "y", True, False)
    cdef Py_ssize_t n = dim(x, 0), per = dim(x, 1) * dim(x, 2) * dim(x, 3)
    _check_table(deltas, cnp.NPY_DOUBLE, n, "deltas")
    cdef const double *dp = <const double *>data(deltas)
    cdef int nt = _threads(n * per)
    if t == cnp.NPY_FLOAT:
        _brightness_batch(<const float *>data(x), <float *>data(y), n, per, dp, low, high, nt)
    else:
        _brightness_batch(<const double *>data(x), <double *>data(y), n, per, dp, low, high, nt)
