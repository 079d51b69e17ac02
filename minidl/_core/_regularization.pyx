# cython: language_level=3
"""Regularization kernels: the dropout mask and its scaling, the noise of GaussianNoise,
GaussianDropout and AlphaDropout, and L1/L2 penalties with their gradients.

Layering: ``minidl.layers.regularization`` and ``minidl.regularizers`` own the arrays and the
random numbers; checks live here (numpy's C API, well under a microsecond), then the loops run
on raw pointers without the GIL.

Dropout masks and Gaussian noise come from a counter-based hash of (key, element index), the
key drawn by the layer from its ``numpy.random.Generator`` once per step: no generator state
per thread, so a seed gives the same mask and noise for any thread count.

Threads: elementwise work splits into fixed chunks of CHUNK_ELEMS elements; the penalty sums
go into ``partial[chunk]`` and are added in chunk order, so every result has the same bits for
any thread count. Arrays under ``PARALLEL_MIN`` elements run serially.
"""
from cython.parallel cimport prange
from libc.math cimport fabs, log, sqrt
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free

cimport numpy as cnp

from minidl._core._arrays cimport (aligned, float_array, float_array_like, overlap, prefix,
                                     same_shape, writeable)
from minidl._core._backend cimport num_threads
from minidl._core._exact_math cimport mdl_blend, mdl_blendf

cnp.import_array()

ctypedef fused floating:
    float
    double

cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 8192
    STACK_PARTIALS = 512
    LANES = 8           # independent accumulators in a penalty sum, in a fixed order

PARALLEL_MIN = PARALLEL_MIN_ELEMS
CHUNK = CHUNK_ELEMS


cdef inline char *_data(object a) noexcept:
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _threads(Py_ssize_t n) noexcept nogil:
    return num_threads() if n >= PARALLEL_MIN_ELEMS else 1


cdef int _apart(object a, object b, object owner, str name, str b_name) except -1:
    """``a`` is ``b``'s memory exactly or does not overlap it."""
    if _data(a) != _data(b) and overlap(a, b):
        raise ValueError(f"{prefix(owner)}{name} partly overlaps {b_name}; pass the same "
                         f"array or a separate one.")
    return 0


cdef int _like(object a, int t, object ref, object owner, str name, str ref_name,
               bint out) except -1:
    float_array_like(a, t, owner, name)
    same_shape(a, ref, owner, name, ref_name)
    if out:
        writeable(a, owner, name)
    return 0


# ---- dropout ----
#
# The mask is a counter-based hash: element i of a call keeps its unit when a 32-bit value
# taken from splitmix64(key, i) is below keep * 2^32. Each mask bit depends only on the call's
# key and the element's index, so it is the same for any thread count and chunking, needs no
# generator state per thread and no buffer of random draws; the layer takes one 64-bit key
# per step from its numpy Generator. splitmix64 (Steele, Lea, Flood 2014) passes BigCrush;
# element pair (2j, 2j + 1) takes the low and high halves of output j of the stream whose
# state starts at the key.

cdef extern from *:
    """
    #include <stdint.h>
    static inline uint64_t mdl_splitmix64(uint64_t key, uint64_t counter) {
        uint64_t z = key + (counter + 1) * UINT64_C(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
    }
    """
    uint64_t mdl_splitmix64(uint64_t key, uint64_t counter) noexcept nogil


cdef inline floating _keep(bint keep, floating scale) noexcept nogil:
    # scale when keep is 1, +0 when 0, through the bits (csrc/exact_math.h): GCC turns both
    # c ? a : b and a * (float)c on random c back into a branch, which mispredicts.
    if floating is float:
        return mdl_blendf(keep, scale, 0)
    else:
        return mdl_blend(keep, scale, 0)


cdef void _mask_span(floating *mask, const floating *x, floating *y, Py_ssize_t i0,
                     Py_ssize_t n, uint64_t key, uint64_t threshold,
                     floating scale) noexcept nogil:
    # Elements [i0, i0 + n) of the call, i0 even: mask = scale where kept, else 0; with x,
    # also y = x * mask in the same pass, without a branch on the random bits (see _keep).
    cdef Py_ssize_t p, i
    cdef uint64_t h
    cdef floating m0, m1
    for p in range(n // 2):
        h = mdl_splitmix64(key, <uint64_t>(i0 // 2 + p))
        m0 = _keep((h & 0xFFFFFFFFu) < threshold, scale)
        m1 = _keep((h >> 32) < threshold, scale)
        i = 2 * p
        mask[i] = m0
        mask[i + 1] = m1
        if x != NULL:
            y[i] = x[i] * m0
            y[i + 1] = x[i + 1] * m1
    if n % 2:
        i = n - 1
        h = mdl_splitmix64(key, <uint64_t>((i0 + i) // 2))
        m0 = _keep((h & 0xFFFFFFFFu) < threshold, scale)
        mask[i] = m0
        if x != NULL:
            y[i] = x[i] * m0


cdef void _mask_drive(floating *mask, const floating *x, floating *y, Py_ssize_t n,
                      uint64_t key, double rate, double kept_value) noexcept nogil:
    # mask = kept_value where kept (dropout: 1 / (1 - rate)), else 0; y = x * mask with x.
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, off
    cdef int threads = _threads(n)
    # P(keep) = threshold / 2^32: keep rounded down to a multiple of 2^-32
    cdef uint64_t threshold = <uint64_t>((1.0 - rate) * 4294967296.0)
    cdef floating scale = <floating>kept_value
    if threads > 1 and nchunks > 1:
        for ch in prange(nchunks, num_threads=threads, schedule="static"):
            off = ch * CHUNK_ELEMS
            _mask_span(mask + off, (x + off) if x != NULL else NULL,
                       (y + off) if y != NULL else NULL, off,
                       min(<Py_ssize_t>CHUNK_ELEMS, n - off), key, threshold, scale)
    else:
        _mask_span(mask, x, y, 0, n, key, threshold, scale)


cdef void _mul_span(const floating *a, const floating *b, floating *out,
                    Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = a[i] * b[i]


cdef int _check_rate(double rate, object owner) except -1:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{prefix(owner)}rate must be in [0, 1); received rate={rate}.")
    return 0


def dropout_forward(x, mask, y, double rate, uint64_t key, owner=None):
    """Inverted dropout in one pass: draw the mask from ``key`` and apply it.

    ``mask[i] = 1 / (1 - rate)`` when unit i is kept (probability 1 - rate), else 0;
    ``y = x * mask``. Backward multiplies by the same mask.

    Args:
        x: C-contiguous float32 or float64 input.
        mask: x's shape and dtype, OUT.
        y: x's shape, OUT (may be x).
        rate: fraction dropped, in [0, 1).
        key: 64-bit key of this call (the same key gives the same mask).
    """
    x = aligned(x)
    cdef int t = float_array(x, owner, "x")
    _check_rate(rate, owner)
    _like(mask, t, x, owner, "mask", "x", True)
    _like(y, t, x, owner, "y", "x", True)
    _apart(y, x, owner, "y", "x")
    if overlap(mask, x) or overlap(mask, y):
        raise ValueError(f"{prefix(owner)}mask must not share memory with x or y.")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if t == cnp.NPY_FLOAT:
        _mask_drive(<float *>_data(mask), <const float *>_data(x), <float *>_data(y), n, key,
                    rate, 1.0 / (1.0 - rate))
    else:
        _mask_drive(<double *>_data(mask), <const double *>_data(x), <double *>_data(y), n,
                    key, rate, 1.0 / (1.0 - rate))
    return y


def dropout_mask(mask, double rate, uint64_t key, owner=None):
    """Write the mask of :func:`dropout_forward` alone (for a ``noise_shape`` that broadcasts
    over the input): ``mask[i] = 1 / (1 - rate)`` when kept, else 0."""
    cdef int t = float_array(mask, owner, "mask")
    writeable(mask, owner, "mask")
    _check_rate(rate, owner)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>mask)
    if t == cnp.NPY_FLOAT:
        _mask_drive(<float *>_data(mask), <const float *>NULL, <float *>NULL, n, key, rate,
                    1.0 / (1.0 - rate))
    else:
        _mask_drive(<double *>_data(mask), <const double *>NULL, <double *>NULL, n, key, rate,
                    1.0 / (1.0 - rate))
    return mask


def dropout_backward(dy, mask, dx, owner=None):
    """``dx = dy * mask`` (the mask written by :func:`dropout_forward`); dx may be dy."""
    dy, mask = aligned(dy), aligned(mask)
    cdef int t = float_array(dy, owner, "dy")
    _like(mask, t, dy, owner, "mask", "dy", False)
    _like(dx, t, dy, owner, "dx", "dy", True)
    _apart(dx, dy, owner, "dx", "dy")
    _apart(dx, mask, owner, "dx", "mask")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>dy), ch, off
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS
    cdef int threads = _threads(n)
    cdef char *a = _data(dy)
    cdef char *b = _data(mask)
    cdef char *o = _data(dx)
    with nogil:
        if threads > 1 and nchunks > 1:
            for ch in prange(nchunks, num_threads=threads, schedule="static"):
                off = ch * CHUNK_ELEMS
                if t == cnp.NPY_FLOAT:
                    _mul_span(<const float *>a + off, <const float *>b + off, <float *>o + off,
                              min(<Py_ssize_t>CHUNK_ELEMS, n - off))
                else:
                    _mul_span(<const double *>a + off, <const double *>b + off,
                              <double *>o + off, min(<Py_ssize_t>CHUNK_ELEMS, n - off))
        elif t == cnp.NPY_FLOAT:
            _mul_span(<const float *>a, <const float *>b, <float *>o, n)
        else:
            _mul_span(<const double *>a, <const double *>b, <double *>o, n)
    return dx


# ---- alpha dropout ----
#
# The keep decisions are dropout's (the same hash and threshold, so a key keeps the same
# units); a kept unit becomes a * x + b, a dropped one the constant a * alpha' + b that the
# layer passes as ``dropped``. The mask holds a where kept and 0 where dropped: the gradient.

cdef inline floating _select(bint c, floating a, floating b) noexcept nogil:
    # c ? a : b without a branch on the random bit (see _keep)
    if floating is float:
        return mdl_blendf(c, a, b)
    else:
        return mdl_blend(c, a, b)


cdef void _alpha_span(floating *mask, const floating *x, floating *y, Py_ssize_t i0,
                      Py_ssize_t n, uint64_t key, uint64_t threshold, floating a, floating b,
                      floating dropped) noexcept nogil:
    # Elements [i0, i0 + n) of the call, i0 even; y written when x is given.
    cdef Py_ssize_t i
    cdef uint64_t h
    cdef bint kept
    for i in range(n):
        h = mdl_splitmix64(key, <uint64_t>((i0 + i) // 2))
        kept = ((h & 0xFFFFFFFFu) if (i0 + i) % 2 == 0 else (h >> 32)) < threshold
        mask[i] = _select(kept, a, 0)
        if x != NULL:
            y[i] = x[i] * mask[i] + _select(kept, b, dropped)


cdef void _alpha_drive(floating *mask, const floating *x, floating *y, Py_ssize_t n,
                       uint64_t key, double rate, double a, double b,
                       double dropped) noexcept nogil:
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, off
    cdef int threads = _threads(n)
    cdef uint64_t threshold = <uint64_t>((1.0 - rate) * 4294967296.0)
    if threads > 1 and nchunks > 1:
        for ch in prange(nchunks, num_threads=threads, schedule="static"):
            off = ch * CHUNK_ELEMS
            _alpha_span(mask + off, (x + off) if x != NULL else NULL,
                        (y + off) if y != NULL else NULL, off,
                        min(<Py_ssize_t>CHUNK_ELEMS, n - off), key, threshold, <floating>a,
                        <floating>b, <floating>dropped)
    else:
        _alpha_span(mask, x, y, 0, n, key, threshold, <floating>a, <floating>b,
                    <floating>dropped)


def alpha_dropout_forward(x, mask, y, double rate, uint64_t key, double a, double b,
                          double dropped, owner=None):
    """Alpha dropout in one pass: keep each unit with probability ``1 - rate`` (the units
    :func:`dropout_forward` keeps for the same key), then ``y = a * x + b`` where kept and
    ``y = dropped`` elsewhere; ``mask = a`` where kept, else 0 (the gradient dy/dx).

    Args:
        x: C-contiguous float32 or float64 input.
        mask: x's shape and dtype, OUT.
        y: x's shape, OUT (may be x).
        rate: fraction dropped, in [0, 1).
        key: 64-bit key of this call.
        a, b, dropped: the affine map of kept units and the value of dropped ones.
    """
    x = aligned(x)
    cdef int t = float_array(x, owner, "x")
    _check_rate(rate, owner)
    _like(mask, t, x, owner, "mask", "x", True)
    _like(y, t, x, owner, "y", "x", True)
    _apart(y, x, owner, "y", "x")
    if overlap(mask, x) or overlap(mask, y):
        raise ValueError(f"{prefix(owner)}mask must not share memory with x or y.")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if t == cnp.NPY_FLOAT:
        _alpha_drive(<float *>_data(mask), <const float *>_data(x), <float *>_data(y), n, key,
                     rate, a, b, dropped)
    else:
        _alpha_drive(<double *>_data(mask), <const double *>_data(x), <double *>_data(y), n,
                     key, rate, a, b, dropped)
    return y


def alpha_dropout_mask(mask, double rate, uint64_t key, double a, owner=None):
    """The mask of :func:`alpha_dropout_forward` alone (for a ``noise_shape`` that broadcasts
    over the input): ``mask = a`` where kept, else 0."""
    cdef int t = float_array(mask, owner, "mask")
    writeable(mask, owner, "mask")
    _check_rate(rate, owner)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>mask)
    if t == cnp.NPY_FLOAT:
        _mask_drive(<float *>_data(mask), <const float *>NULL, <float *>NULL, n, key, rate, a)
    else:
        _mask_drive(<double *>_data(mask), <const double *>NULL, <double *>NULL, n, key, rate,
                    a)
    return mask


# ---- Gaussian noise ----
#
# Standard normal values by the Box-Muller transform of two uniforms, each taken from the top
# 53 bits of one splitmix64 output: pair j of a call (elements 2j and 2j + 1) uses outputs
# 2j and 2j + 1 of the key's stream, the first as u1 in (0, 1) (so log(u1) is finite, |z| is
# at most 8.6), the second as the angle. Each value depends only on the key and the element's
# index, like the dropout mask: the same noise for any thread count, and nothing stored.
#
# The angle's sine and cosine come from Taylor polynomials (to x^15 and x^16, truncation
# below 5e-17) on a quarter turn around 0, rotated by whole quarter turns through the bits:
# with libm's sin and cos a value took 21-27 ns, with these 13-15 ns (glibc, one thread, best
# of 15 runs on a shared machine). Only log(u1) calls libm.

cdef extern from *:
    """
    #include <math.h>
    #define MDL_TWO_M53 1.1102230246251565e-16
    /* (sin, cos) of 2 pi u for u in [0, 1): u in quarter turns is q + r with q an integer and
       r in [-1/2, 1/2] (both exact), so 2 pi u = q pi / 2 + theta, |theta| <= pi / 4. */
    static inline void mdl_sincos_turn(double u, double *s, double *c) {
        double t = 4.0 * u;
        int q = (int)(t + 0.5);
        double x = (t - (double)q) * 1.5707963267948966;
        double x2 = x * x;
        double sx = x + x * x2 * (-1.0 / 6 + x2 * (1.0 / 120 + x2 * (-1.0 / 5040
                    + x2 * (1.0 / 362880 + x2 * (-1.0 / 39916800 + x2 * (1.0 / 6227020800.0
                    + x2 * (-1.0 / 1307674368000.0)))))));
        double cx = 1.0 + x2 * (-0.5 + x2 * (1.0 / 24 + x2 * (-1.0 / 720 + x2 * (1.0 / 40320
                    + x2 * (-1.0 / 3628800 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0
                    + x2 * (1.0 / 20922789888000.0))))))));
        int odd = q & 1, half = (q >> 1) & 1;
        /* a quarter turn swaps sine and cosine; the signs follow the quadrant */
        *s = mdl_blend(odd, cx, sx) * (double)(1 - 2 * half);
        *c = mdl_blend(odd, sx, cx) * (double)(1 - 2 * (odd ^ half));
    }
    """
    double MDL_TWO_M53
    void mdl_sincos_turn(double u, double *s, double *c) noexcept nogil


cdef inline void _normal_pair(uint64_t key, uint64_t j, double *z) noexcept nogil:
    cdef double u1 = (<double>(mdl_splitmix64(key, 2 * j) >> 11) + 0.5) * MDL_TWO_M53
    cdef double u2 = <double>(mdl_splitmix64(key, 2 * j + 1) >> 11) * MDL_TWO_M53
    cdef double r = sqrt(-2.0 * log(u1))
    cdef double s, c
    mdl_sincos_turn(u2, &s, &c)
    z[0] = r * c
    z[1] = r * s


cdef void _gauss_span(const floating *x, floating *noise, floating *y, Py_ssize_t i0,
                      Py_ssize_t n, uint64_t key, double mean, double stddev) noexcept nogil:
    # Elements [i0, i0 + n), i0 even. v = mean + stddev * z rounded to the data's type; with
    # ``noise``: noise = v and y = x * v (multiplicative), else y = x + v (additive).
    cdef Py_ssize_t p, i, k
    cdef double z[2]
    cdef floating v
    for p in range((n + 1) // 2):
        _normal_pair(key, <uint64_t>(i0 // 2 + p), z)
        for k in range(2):
            i = 2 * p + k
            if i >= n:
                break
            v = <floating>(mean + stddev * z[k])
            if noise != NULL:
                noise[i] = v
                y[i] = x[i] * v
            else:
                y[i] = x[i] + v


cdef void _gauss_drive(const floating *x, floating *noise, floating *y, Py_ssize_t n,
                       uint64_t key, double mean, double stddev) noexcept nogil:
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, off
    cdef int threads = _threads(n)
    if threads > 1 and nchunks > 1:
        for ch in prange(nchunks, num_threads=threads, schedule="static"):
            off = ch * CHUNK_ELEMS
            _gauss_span(x + off, (noise + off) if noise != NULL else NULL, y + off, off,
                        min(<Py_ssize_t>CHUNK_ELEMS, n - off), key, mean, stddev)
    else:
        _gauss_span(x, noise, y, 0, n, key, mean, stddev)


def gaussian_noise_forward(x, y, double stddev, uint64_t key, owner=None):
    """Additive Gaussian noise: ``y = x + v`` with ``v = stddev * z`` (rounded to x's dtype)
    and z standard normal, drawn from ``key`` (the same key gives the same noise).

    Args:
        x: C-contiguous float32 or float64 input.
        y: x's shape, OUT (may be x).
        stddev: non-negative float.
        key: 64-bit key of this call.
    """
    x = aligned(x)
    cdef int t = float_array(x, owner, "x")
    if not stddev >= 0.0:
        raise ValueError(f"{prefix(owner)}stddev must be >= 0; received stddev={stddev}.")
    _like(y, t, x, owner, "y", "x", True)
    _apart(y, x, owner, "y", "x")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if t == cnp.NPY_FLOAT:
        _gauss_drive(<const float *>_data(x), <float *>NULL, <float *>_data(y), n, key, 0.0,
                     stddev)
    else:
        _gauss_drive(<const double *>_data(x), <double *>NULL, <double *>_data(y), n, key,
                     0.0, stddev)
    return y


def gaussian_dropout_forward(x, noise, y, double stddev, uint64_t key, owner=None):
    """Multiplicative Gaussian noise: ``noise = 1 + stddev * z`` (rounded to x's dtype), z
    standard normal drawn from ``key`` as in :func:`gaussian_noise_forward`, and
    ``y = x * noise``. Backward is :func:`dropout_backward` with ``noise`` as the mask.

    Args:
        x: C-contiguous float32 or float64 input.
        noise: x's shape and dtype, OUT.
        y: x's shape, OUT (may be x).
        stddev: non-negative float.
        key: 64-bit key of this call.
    """
    x = aligned(x)
    cdef int t = float_array(x, owner, "x")
    if not stddev >= 0.0:
        raise ValueError(f"{prefix(owner)}stddev must be >= 0; received stddev={stddev}.")
    _like(noise, t, x, owner, "noise", "x", True)
    _like(y, t, x, owner, "y", "x", True)
    _apart(y, x, owner, "y", "x")
    if overlap(noise, x) or overlap(noise, y):
        raise ValueError(f"{prefix(owner)}noise must not share memory with x or y.")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if t == cnp.NPY_FLOAT:
        _gauss_drive(<const float *>_data(x), <float *>_data(noise), <float *>_data(y), n, key,
                     1.0, stddev)
    else:
        _gauss_drive(<const double *>_data(x), <double *>_data(noise), <double *>_data(y), n,
                     key, 1.0, stddev)
    return y


# ---- L1 / L2 penalties ----

cdef void _l1l2_span(const floating *x, const floating *grad_in, floating *grad_out,
                     Py_ssize_t n, double l1, double l2, double scale,
                     double *sums) noexcept nogil:
    # sums[0], sums[1] = sum |x|, sum x^2 over the span, each over LANES accumulators in a
    # fixed order (LANES independent chains; the compiler keeps them in one vector register).
    # With grad_out: grad_out = grad_in (NULL: 0) + scale * (l1 * sign(x) + 2 * l2 * x).
    cdef double a1[LANES]
    cdef double a2[LANES]
    cdef Py_ssize_t i, k, b, nb = n - n % LANES
    cdef double v, s1 = 0, s2 = 0
    cdef floating c1 = <floating>(scale * l1), c2 = <floating>(2.0 * scale * l2), xv, sgn
    for k in range(LANES):
        a1[k] = 0
        a2[k] = 0
    for b in range(nb // LANES):
        i = b * LANES
        for k in range(LANES):
            v = x[i + k]
            a1[k] += fabs(v)
            a2[k] += v * v
    for i in range(nb, n):
        v = x[i]
        a1[0] += fabs(v)
        a2[0] += v * v
    for k in range(LANES):
        s1 += a1[k]
        s2 += a2[k]
    sums[0] = s1
    sums[1] = s2
    if grad_out == NULL:
        return
    for i in range(n):
        xv = x[i]
        sgn = (xv > 0) - (xv < 0)   # sign(0) = 0: the subgradient Keras' backends take
        if grad_in != NULL:
            grad_out[i] = grad_in[i] + c1 * sgn + c2 * xv
        else:
            grad_out[i] = c1 * sgn + c2 * xv


cdef double _l1l2_drive(const floating *x, const floating *grad_in, floating *grad_out,
                        Py_ssize_t n, double l1, double l2, double scale) except? -1:
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, off
    cdef double local[2 * STACK_PARTIALS]
    cdef double *partial = local
    cdef double s1 = 0, s2 = 0
    cdef int threads = _threads(n)
    if nchunks > STACK_PARTIALS:
        partial = <double *>malloc(2 * nchunks * sizeof(double))
        if partial == NULL:
            raise MemoryError(f"could not allocate {nchunks} partial sums.")
    try:
        with nogil:
            if threads > 1 and nchunks > 1:
                for ch in prange(nchunks, num_threads=threads, schedule="static"):
                    off = ch * CHUNK_ELEMS
                    _l1l2_span(x + off, (grad_in + off) if grad_in != NULL else NULL,
                               (grad_out + off) if grad_out != NULL else NULL,
                               min(<Py_ssize_t>CHUNK_ELEMS, n - off), l1, l2, scale,
                               partial + 2 * ch)
            else:
                for ch in range(nchunks):
                    off = ch * CHUNK_ELEMS
                    _l1l2_span(x + off, (grad_in + off) if grad_in != NULL else NULL,
                               (grad_out + off) if grad_out != NULL else NULL,
                               min(<Py_ssize_t>CHUNK_ELEMS, n - off), l1, l2, scale,
                               partial + 2 * ch)
            for ch in range(nchunks):
                s1 += partial[2 * ch]
                s2 += partial[2 * ch + 1]
    finally:
        if partial != local:
            free(partial)
    return scale * (l1 * s1 + l2 * s2)


def l1l2_penalty(x, double l1, double l2, double scale=1.0, grad_in=None, grad_out=None,
                 owner=None):
    """``scale * (l1 * sum(|x|) + l2 * sum(x^2))``, and optionally its gradient.

    Args:
        x: C-contiguous float32 or float64 array.
        l1, l2, scale: non-negative floats.
        grad_in: x's shape, or None (zeros).
        grad_out: x's shape, OUT, or None: ``grad_out = grad_in + scale * (l1 * sign(x) +
            2 * l2 * x)``. May be grad_in (accumulate in place).
    Returns:
        The penalty as a Python float, summed in double.
    """
    x, grad_in = aligned(x), aligned(grad_in)
    cdef int t = float_array(x, owner, "x")
    if grad_in is not None:
        _like(grad_in, t, x, owner, "grad_in", "x", False)
    if grad_out is not None:
        _like(grad_out, t, x, owner, "grad_out", "x", True)
        _apart(grad_out, x, owner, "grad_out", "x")
        if grad_in is not None:
            _apart(grad_out, grad_in, owner, "grad_out", "grad_in")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef char *gi = _data(grad_in) if grad_in is not None else NULL
    cdef char *go = _data(grad_out) if grad_out is not None else NULL
    if t == cnp.NPY_FLOAT:
        return _l1l2_drive(<const float *>_data(x), <const float *>gi, <float *>go, n, l1, l2,
                           scale)
    return _l1l2_drive(<const double *>_data(x), <const double *>gi, <double *>go, n, l1, l2,
                       scale)
