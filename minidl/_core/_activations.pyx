# cython: language_level=3
"""Activation kernels: forward, backward, and the two bias fusions the Dense layer calls.

Layering: ``minidl.activations`` holds one :class:`Kernel` per activation object (kind and
params resolved once) and forwards the training step's calls to it unchanged. Every check lives
here, at the boundary, read through numpy's C API so that a call costs well under a
microsecond beyond its work: ndarray, float32/float64 of one dtype, C-contiguous, matching
shapes, writeable outputs; errors name the activation and the argument. The arrays are then
read as (rows, last axis) over raw pointers, without the GIL.

Each activation is a ``kind`` (a name in ``KINDS``) with up to three float parameters
``params = (a, b, c)``; see ``KINDS`` for their meaning. Loops switch on the kind once per span
(a row, or a whole chunk of the flattened array) and never per element, so each span is a tight
loop the compiler can vectorise where the math allows.

Math: float32 exp, tanh and sigmoid are branch-free versions written here (within 2.5 ulp), so
loops over them vectorise; everything else, and all float64 math, calls libm.

Threads: work is split into chunks of whole rows whose size depends only on the shape. Arrays
under ``PARALLEL_MIN`` elements run serially without opening a parallel region. The bias
gradient is summed per chunk into ``partial[chunk, :]`` and the partials are added in chunk
order afterwards, so every result has the same bits for any thread count.
"""
from cython.parallel cimport prange
from libc.math cimport (INFINITY, erfc, erfcf, exp, expm1, expm1f, fabs, fabsf, log1p, log1pf,
                        tanh)
from libc.stdlib cimport calloc, free
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from minidl._core._arrays cimport (aligned, float_array, float_array_like, prefix, same_shape,
                                   writeable)
from minidl._core._backend cimport num_threads
from minidl._core._exact_math cimport mdl_blend, mdl_blendf, mdl_expf, mdl_sigmoidf, mdl_tanhf

cnp.import_array()

ctypedef fused floating:
    float
    double

# Activation kinds. The params tuple (a, b, c) of each kind; unused entries are ignored.
KINDS = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",      # a = negative_slope; Keras' max(x, a * x)
    "relu_general",    # a = negative_slope, b = max_value (inf: none), c = threshold
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "elu",             # a = alpha
    "selu",
    "gelu",            # exact erf form
    "gelu_tanh",       # tanh approximation
    "softplus",
    "softsign",
    "silu",
    "hard_silu",
    "exponential",
    "mish",
    "softmax",         # row-wise over the last axis
)

cdef enum:
    K_LINEAR, K_RELU, K_RELU6, K_LEAKY_RELU, K_RELU_GENERAL, K_SIGMOID, K_HARD_SIGMOID, K_TANH,
    K_ELU, K_SELU, K_GELU, K_GELU_TANH, K_SOFTPLUS, K_SOFTSIGN, K_SILU, K_HARD_SILU,
    K_EXPONENTIAL, K_MISH, K_SOFTMAX

_KIND_IDS = {name: i for i, name in enumerate(KINDS)}

# Below PARALLEL_MIN elements a call stays on the calling thread: a parallel region costs
# more than the work. Work chunks hold CHUNK_ELEMS elements in whole rows (at least one); the
# size is fixed, so partial sums never depend on the thread count.
cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 8192
    STACK_PARTIALS = 1024     # dbias partial sums up to this many live on the stack

PARALLEL_MIN = PARALLEL_MIN_ELEMS

cdef double SELU_ALPHA = 1.6732632423543772848170429916717
cdef double SELU_SCALE = 1.0507009873554804934193349852946
cdef double INV_SQRT2 = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794
cdef double SQRT_2_OVER_PI = 0.79788456080286535588
cdef double GELU_CUBIC = 0.044715

# ---- scalar math in the precision of the data (float math for float32) ----
#
# glibc's expf/tanhf are scalar calls of ~10 ns; float32 is the training dtype, so it gets
# branch-free versions the compiler vectorises (mdl_expf, mdl_tanhf, mdl_sigmoidf of
# csrc/exact_math.h, the header of the bit-exact rules C and Cython share). Every loop below
# reads its inputs unconditionally and picks results with selects (a if c else b on computed
# values): a branch on the sign of random data mispredicts half the time and blocks
# vectorisation.


cdef inline floating _sel(bint c, floating a, floating b) noexcept nogil:
    """c ? a : b without a branch (see mdl_blendf)."""
    if floating is float:
        return mdl_blendf(c, a, b)
    else:
        return mdl_blend(c, a, b)


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return mdl_expf(x)
    else:
        return exp(x)

cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)

cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return mdl_tanhf(x)
    else:
        return tanh(x)

cdef inline floating _erfc(floating x) noexcept nogil:
    if floating is float:
        return erfcf(x)
    else:
        return erfc(x)

cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)

cdef inline floating _sigmoid(floating x) noexcept nogil:
    # Only e^-|x| is evaluated: no overflow at either tail.
    cdef floating e
    if floating is float:
        return mdl_sigmoidf(x)
    else:
        e = exp(-fabs(x))
        return (1 if x >= 0 else e) / (1 + e)

cdef inline floating _softplus(floating x) noexcept nogil:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows.
    return (x if x > 0 else 0) + _log1p(_exp(-_abs(x)))

cdef inline floating _hard_sigmoid(floating x) noexcept nogil:
    cdef floating h = x / 6 + <floating>0.5
    h = _sel(h <= 0, 0, h)
    return _sel(h >= 1, 1, h)

cdef inline floating _inside(floating x, floating lo, floating hi) noexcept nogil:
    """1 where lo < x < hi, else 0; & rather than ``and``, which would branch."""
    return <floating>((x > lo) & (x < hi))


# ---- spans: one kind over n contiguous elements ----

cdef void _forward_span(int kind, const Params *p, const floating *z, floating *y,
                        Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating x, t, e, a = <floating>p.a, b = <floating>p.b, c = <floating>p.c
    if kind == K_LINEAR:
        if y != z:
            for i in range(n):
                y[i] = z[i]
    elif kind == K_RELU:
        for i in range(n):
            x = z[i]
            y[i] = 0 if x < 0 else x      # keeps NaN visible, like np.maximum
    elif kind == K_RELU6:
        for i in range(n):
            x = z[i]
            y[i] = 0 if x < 0 else (6 if x > 6 else x)
    elif kind == K_LEAKY_RELU:
        for i in range(n):
            x = z[i]
            t = a * x
            y[i] = t if t > x else x
    elif kind == K_RELU_GENERAL:
        # Keras ReLU with threshold / max_value / negative_slope, term by term.
        for i in range(n):
            x = z[i]
            t = x if x > c else 0
            if b < INFINITY:
                t = 0 if t < 0 else (b if t > b else t)
            if a != 0:
                e = c - x
                t = t - a * (e if e > 0 else 0)
            y[i] = t
    elif kind == K_SIGMOID:
        for i in range(n):
            y[i] = _sigmoid(z[i])
    elif kind == K_HARD_SIGMOID:
        for i in range(n):
            y[i] = _hard_sigmoid(z[i])
    elif kind == K_TANH:
        for i in range(n):
            y[i] = _tanh(z[i])
    elif kind == K_ELU or kind == K_SELU:
        if kind == K_SELU:
            a, b = <floating>SELU_ALPHA, <floating>SELU_SCALE
        else:
            b = 1
        for i in range(n):
            x = z[i]
            e = a * _expm1(x if x < 0 else 0)
            y[i] = b * _sel(x > 0, x, e)
    elif kind == K_GELU:
        # (1 + erf(x / sqrt 2)) / 2 as erfc(-x / sqrt 2) / 2: no cancellation for x << 0.
        for i in range(n):
            x = z[i]
            y[i] = x * _erfc(-x * <floating>INV_SQRT2) / 2
    elif kind == K_GELU_TANH:
        # (1 + tanh(u)) / 2 = sigmoid(2u): the same, cancellation-free.
        for i in range(n):
            x = z[i]
            t = <floating>(2 * SQRT_2_OVER_PI) * (x + <floating>GELU_CUBIC * x * x * x)
            y[i] = x * _sigmoid(t)
    elif kind == K_SOFTPLUS:
        for i in range(n):
            y[i] = _softplus(z[i])
    elif kind == K_SOFTSIGN:
        for i in range(n):
            x = z[i]
            y[i] = x / (1 + _abs(x))
    elif kind == K_SILU:
        for i in range(n):
            x = z[i]
            y[i] = x * _sigmoid(x)
    elif kind == K_HARD_SILU:
        for i in range(n):
            x = z[i]
            y[i] = x * _hard_sigmoid(x)
    elif kind == K_EXPONENTIAL:
        for i in range(n):
            y[i] = _exp(z[i])
    elif kind == K_MISH:
        for i in range(n):
            x = z[i]
            y[i] = x * _tanh(_softplus(x))


cdef void _backward_span(int kind, const Params *p, const floating *z, const floating *y,
                         const floating *dy, floating *out, Py_ssize_t n) noexcept nogil:
    # out = dy * f'(z). Each element reads z, y and dy before writing out, so out may alias
    # any of them. Where f' is cheapest from y = f(z) (sigmoid, tanh, exp, elu), y is used.
    cdef Py_ssize_t i
    cdef floating x, s, t, d, a = <floating>p.a, b = <floating>p.b, c = <floating>p.c
    cdef bint unbounded = p.b == INFINITY
    if kind == K_LINEAR:
        if out != dy:
            for i in range(n):
                out[i] = dy[i]
    elif kind == K_RELU:
        for i in range(n):
            out[i] = _sel(z[i] > 0, dy[i], 0)
    elif kind == K_RELU6:
        for i in range(n):
            out[i] = dy[i] * _inside(z[i], 0, 6)
    elif kind == K_LEAKY_RELU:
        for i in range(n):
            x = z[i]
            out[i] = dy[i] * _sel(x >= a * x, 1, a)
    elif kind == K_RELU_GENERAL:
        for i in range(n):
            x = z[i]
            d = <floating>((x > c) & (unbounded | ((x > 0) & (x < b))))
            out[i] = dy[i] * (d + a * <floating>(x < c))
    elif kind == K_SIGMOID:
        for i in range(n):
            s = y[i]
            out[i] = dy[i] * s * (1 - s)
    elif kind == K_HARD_SIGMOID:
        for i in range(n):
            out[i] = dy[i] * _inside(z[i], -3, 3) / 6
    elif kind == K_TANH:
        for i in range(n):
            t = y[i]
            out[i] = dy[i] * (1 - t * t)
    elif kind == K_ELU or kind == K_SELU:
        # f'(x) = scale for x > 0, else y + scale * alpha.
        if kind == K_SELU:
            a, b = <floating>SELU_ALPHA, <floating>SELU_SCALE
        else:
            b = 1
        for i in range(n):
            out[i] = dy[i] * _sel(z[i] > 0, b, y[i] + b * a)
    elif kind == K_GELU:
        for i in range(n):
            x = z[i]
            d = _erfc(-x * <floating>INV_SQRT2) / 2 + x * <floating>INV_SQRT_2PI * _exp(-x * x / 2)
            out[i] = dy[i] * d
    elif kind == K_GELU_TANH:
        # With s = sigmoid(2u): f = x s and f' = s + 2 x s (1 - s) u'.
        for i in range(n):
            x = z[i]
            s = _sigmoid(<floating>(2 * SQRT_2_OVER_PI) * (x + <floating>GELU_CUBIC * x * x * x))
            d = s + 2 * x * s * (1 - s) * <floating>SQRT_2_OVER_PI * (
                1 + 3 * <floating>GELU_CUBIC * x * x)
            out[i] = dy[i] * d
    elif kind == K_SOFTPLUS:
        for i in range(n):
            out[i] = dy[i] * _sigmoid(z[i])
    elif kind == K_SOFTSIGN:
        for i in range(n):
            t = 1 + _abs(z[i])
            out[i] = dy[i] / (t * t)
    elif kind == K_SILU:
        for i in range(n):
            x = z[i]
            s = _sigmoid(x)
            out[i] = dy[i] * s * (1 + x * (1 - s))
    elif kind == K_HARD_SILU:
        for i in range(n):
            x = z[i]
            out[i] = dy[i] * (_hard_sigmoid(x) + x * _inside(x, -3, 3) / 6)
    elif kind == K_EXPONENTIAL:
        for i in range(n):
            out[i] = dy[i] * y[i]
    elif kind == K_MISH:
        for i in range(n):
            x = z[i]
            t = _tanh(_softplus(x))
            out[i] = dy[i] * (t + x * (1 - t * t) * _sigmoid(x))


cdef void _softmax_row(const floating *z, floating *y, Py_ssize_t n) noexcept nogil:
    # Shifting by the row maximum keeps every exponent <= 0: finite at +-1e4 and beyond. The
    # exponentials and the (double) sum are separate loops so the first one vectorises.
    cdef Py_ssize_t j
    cdef floating m = z[0], e
    cdef double s = 0
    for j in range(1, n):
        e = z[j]
        m = e if e > m else m
    for j in range(n):
        y[j] = _exp(z[j] - m)
    for j in range(n):
        s += y[j]
    e = <floating>(1.0 / s)
    for j in range(n):
        y[j] = y[j] * e


cdef void _softmax_backward_row(const floating *y, const floating *dy, floating *out,
                                Py_ssize_t n) noexcept nogil:
    # Jacobian-vector product of softmax: y * (dy - <dy, y>).
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating sf
    for j in range(n):
        s += dy[j] * y[j]
    sf = <floating>s
    for j in range(n):
        out[j] = y[j] * (dy[j] - sf)


# ---- row blocks: what one chunk of whole rows does ----

cdef void _forward_rows(int kind, const Params *p, const floating *z, floating *y,
                        Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t r
    if kind == K_SOFTMAX:
        for r in range(rows):
            _softmax_row(z + r * cols, y + r * cols, cols)
    else:
        _forward_span(kind, p, z, y, rows * cols)


cdef void _backward_rows(int kind, const Params *p, const floating *z, const floating *y,
                         const floating *dy, floating *out, Py_ssize_t rows,
                         Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t r
    if kind == K_SOFTMAX:
        for r in range(rows):
            _softmax_backward_row(y + r * cols, dy + r * cols, out + r * cols, cols)
    else:
        _backward_span(kind, p, z, y, dy, out, rows * cols)


cdef void _forward_bias_rows(int kind, const Params *p, floating *z, const floating *bias,
                             floating *y, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    # The bias goes into the whole chunk first (at most CHUNK_ELEMS elements, so it is still
    # in L1 when the activation reads it back), then one span runs over the chunk: a call
    # per row would cost more than the work at 64 units.
    cdef Py_ssize_t r, j
    cdef floating *zr
    if bias != NULL:
        for r in range(rows):
            zr = z + r * cols
            for j in range(cols):
                zr[j] = zr[j] + bias[j]
    _forward_rows(kind, p, z, y, rows, cols)


cdef void _backward_bias_rows(int kind, const Params *p, const floating *z, const floating *y,
                              const floating *dy, floating *dz, double *acc, Py_ssize_t rows,
                              Py_ssize_t cols) noexcept nogil:
    # dz for this chunk, then its column sums into acc (this chunk's partial) in row order.
    cdef Py_ssize_t r, j
    cdef const floating *dzr
    _backward_rows(kind, p, z, y, dy, dz, rows, cols)
    if acc != NULL:
        for r in range(rows):
            dzr = dz + r * cols
            for j in range(cols):
                acc[j] += dzr[j]


cdef void _chunk(bint is_forward, int kind, const Params *p, floating *z, const floating *y,
                 const floating *dy, floating *out, const floating *bias, double *acc,
                 Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    # One chunk of rows [r0, r0 + rows). Forward reads z (and bias, may be NULL); backward
    # reads z, y, dy and adds its column sums to acc unless acc is NULL.
    cdef Py_ssize_t off = r0 * cols
    if is_forward:
        _forward_bias_rows(kind, p, z + off, bias, out + off, rows, cols)
    else:
        _backward_bias_rows(kind, p, z + off, y + off, dy + off, out + off, acc, rows, cols)


cdef int _drive_nogil(bint is_forward, int kind, const Params *p, floating *z,
                      const floating *y, const floating *dy, floating *out,
                      const floating *bias, floating *dbias, Py_ssize_t rows,
                      Py_ssize_t cols) noexcept nogil:
    """Runs ``_chunk`` over fixed row chunks, threaded when large; reduces dbias if given.
    Returns 0, or -1 (having written nothing) when the partial sums could not be allocated."""
    cdef Py_ssize_t rpc = CHUNK_ELEMS // cols if cols < CHUNK_ELEMS else 1
    cdef Py_ssize_t nchunks = (rows + rpc - 1) // rpc, ch, j
    cdef double local[STACK_PARTIALS]
    cdef double *partial = NULL
    cdef double *heap = NULL
    cdef double s
    if dbias != NULL:
        if nchunks * cols <= STACK_PARTIALS:
            partial = local
            memset(partial, 0, nchunks * cols * sizeof(double))
        else:
            partial = heap = <double *>calloc(nchunks * cols, sizeof(double))
            if partial == NULL:
                return -1
    if rows * cols >= PARALLEL_MIN_ELEMS and nchunks > 1:
        for ch in prange(nchunks, schedule="static", num_threads=num_threads()):
            _chunk(is_forward, kind, p, z, y, dy, out, bias,
                   (partial + ch * cols) if partial != NULL else NULL,
                   ch * rpc, min(rpc, rows - ch * rpc), cols)
    elif partial == NULL:
        _chunk(is_forward, kind, p, z, y, dy, out, bias, NULL, 0, rows, cols)
    else:
        for ch in range(nchunks):
            _chunk(is_forward, kind, p, z, y, dy, out, bias, partial + ch * cols,
                   ch * rpc, min(rpc, rows - ch * rpc), cols)
    if partial != NULL:
        for j in range(cols):
            s = 0
            for ch in range(nchunks):
                s += partial[ch * cols + j]
            dbias[j] = <floating>s
    free(heap)
    return 0


cdef int _drive(bint is_forward, int kind, const Params *p, floating *z, const floating *y,
                const floating *dy, floating *out, const floating *bias, floating *dbias,
                Py_ssize_t rows, Py_ssize_t cols) except -1:
    """:func:`_drive_nogil` without the GIL, raising MemoryError on its failure."""
    cdef int rc
    with nogil:
        rc = _drive_nogil(is_forward, kind, p, z, y, dy, out, bias, dbias, rows, cols)
    if rc != 0:
        raise MemoryError(f"could not allocate {rows}x{cols} partial sums for dbias.")
    return 0


# The typed entry points of _activations.pxd, for a compiled training step.

cdef int bias_activation_f32(bint is_forward, int kind, const Params *p, float *z,
                             const float *y, const float *dy, float *out, const float *bias,
                             float *dbias, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    return _drive_nogil(is_forward, kind, p, z, y, dy, out, bias, dbias, rows, cols)


cdef int bias_activation_f64(bint is_forward, int kind, const Params *p, double *z,
                             const double *y, const double *dy, double *out,
                             const double *bias, double *dbias, Py_ssize_t rows,
                             Py_ssize_t cols) noexcept nogil:
    return _drive_nogil(is_forward, kind, p, z, y, dy, out, bias, dbias, rows, cols)


# ---- argument handling ----
# Every array is C-contiguous and read as (rows, last axis): rows is the product of the
# leading axes, a 0-d array is one row of one element. ``owner`` prefixes error messages
# (None for the module-level functions).

cdef int _kind_id(str kind) except -1:
    try:
        return _KIND_IDS[kind]
    except KeyError:
        raise ValueError(f"Unknown activation kernel kind {kind!r}; expected one of "
                         f"{', '.join(KINDS)}.") from None


cdef Params _params(tuple params) except *:
    cdef Params p
    cdef Py_ssize_t n = len(params)
    if n > 3:
        raise ValueError(f"Activation kernels take at most 3 params; received {params!r}.")
    p.a = params[0] if n > 0 else 0.0
    p.b = params[1] if n > 1 else 0.0
    p.c = params[2] if n > 2 else 0.0
    return p


cdef inline void _rows_cols(object a, Py_ssize_t *rows, Py_ssize_t *cols) noexcept:
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>a)
    cdef Py_ssize_t c = cnp.PyArray_DIMS(<cnp.ndarray>a)[nd - 1] if nd else 1
    cols[0] = c
    rows[0] = cnp.PyArray_SIZE(<cnp.ndarray>a) // c if c else 0


cdef inline char *_data(object a) noexcept:
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _like(object a, int dtype, object z, object owner, str name, bint out) except -1:
    """``a`` is a float array of z's dtype and shape (writeable when ``out``)."""
    float_array_like(a, dtype, owner, name)
    same_shape(a, z, owner, name, "z")
    if out:
        writeable(a, owner, name)
    return 0


cdef int _vector(object a, int dtype, object z, object owner, str name, bint out) except -1:
    """``a`` (bias or dbias) is a float array of z's dtype with z's last-axis shape."""
    float_array_like(a, dtype, owner, name)
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>z)
    if (nd == 0 or cnp.PyArray_NDIM(<cnp.ndarray>a) != 1
            or cnp.PyArray_DIMS(<cnp.ndarray>a)[0] != cnp.PyArray_DIMS(<cnp.ndarray>z)[nd - 1]):
        raise ValueError(f"{prefix(owner)}{name} must have shape {(<object>z).shape[max(nd - 1, 0):]} for z "
                         f"of shape {(<object>z).shape}; received {(<object>a).shape}.")
    if out:
        writeable(a, owner, name)
    return 0


cdef int _forward(int kind, const Params *p, object z, object bias, object out, bint add_bias,
                  object owner) except -1:
    """out = f(z), after z += bias when ``add_bias`` and bias is not None."""
    if not add_bias:   # else z is written too: an output, which must be aligned
        z = aligned(z)
    bias = aligned(bias)
    cdef int t = float_array(z, owner, "z")
    _like(out, t, z, owner, "out", True)
    if add_bias:
        if bias is not None:
            _vector(bias, t, z, owner, "bias", False)
        if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>z):
            raise ValueError(f"{prefix(owner)}z is read-only; the bias is added in place.")
    cdef Py_ssize_t rows, cols
    _rows_cols(z, &rows, &cols)
    if rows == 0 or cols == 0:
        return 0
    cdef char *b = _data(bias) if add_bias and bias is not None else NULL
    if t == cnp.NPY_FLOAT:
        _drive(True, kind, p, <float *>_data(z), NULL, NULL, <float *>_data(out),
               <const float *>b, NULL, rows, cols)
    else:
        _drive(True, kind, p, <double *>_data(z), NULL, NULL, <double *>_data(out),
               <const double *>b, NULL, rows, cols)
    return 0


cdef int _backward(int kind, const Params *p, object z, object y, object dy, object out,
                   object dbias, bint reduce, object owner, str out_name) except -1:
    """out = dy * f'(z); with ``reduce``, dbias (may be None) = column sums of out. y None:
    f(z) is computed first, into a new array."""
    z, y, dy = aligned(z), aligned(y), aligned(dy)
    cdef int t = float_array(z, owner, "z")
    if y is None:
        y = np.empty_like(z)
        _forward(kind, p, z, None, y, False, owner)
    _like(y, t, z, owner, "y", False)
    _like(dy, t, z, owner, "dy", False)
    _like(out, t, z, owner, out_name, True)
    if reduce and dbias is not None:
        _vector(dbias, t, z, owner, "dbias", True)
    cdef Py_ssize_t rows, cols
    _rows_cols(z, &rows, &cols)
    cdef char *db = _data(dbias) if reduce and dbias is not None else NULL
    if db != NULL and rows == 0:
        memset(db, 0, cnp.PyArray_NBYTES(<cnp.ndarray>dbias))
    if rows == 0 or cols == 0:
        return 0
    if t == cnp.NPY_FLOAT:
        _drive(False, kind, p, <float *>_data(z), <const float *>_data(y),
               <const float *>_data(dy), <float *>_data(out), NULL, <float *>db, rows, cols)
    else:
        _drive(False, kind, p, <double *>_data(z), <const double *>_data(y),
               <const double *>_data(dy), <double *>_data(out), NULL, <double *>db, rows, cols)
    return 0


cdef class Kernel:
    """One activation's kernels with its kind and params resolved once, for the API layer.

    ``minidl.activations`` builds one per activation object and calls its methods every
    step; arrays may have any shape (the activation acts on the last axis) and every check
    of the module-level functions runs, with messages naming ``owner`` (the class name).
    """
    # (attributes in _activations.pxd, where minidl._core._chain reads kind and p)

    def __init__(self, str kind, tuple params, str owner):
        self.kind = _kind_id(kind)
        self.p = _params(params)
        self.kind_name, self.params, self.owner = kind, params, owner
        self.owner_forward = f"{owner}.forward"
        self.owner_backward = f"{owner}.backward"
        self.owner_forward_bias = f"{owner}.forward_bias"
        self.owner_backward_bias = f"{owner}.backward_bias"

    def __reduce__(self):
        return Kernel, (self.kind_name, self.params, self.owner)

    def forward(self, z, out):
        """out = f(z); see the module-level :func:`forward`."""
        _forward(self.kind, &self.p, z, None, out, False, self.owner_forward)

    def backward(self, z, y, dy, out):
        """out = dy * f'(z) (y = f(z), or None to compute it); see :func:`backward`."""
        _backward(self.kind, &self.p, z, y, dy, out, None, False, self.owner_backward, "out")

    def forward_bias(self, z, bias, out):
        """z += bias, out = f(z); see the module-level :func:`forward_bias`."""
        _forward(self.kind, &self.p, z, bias, out, True, self.owner_forward_bias)

    def backward_bias(self, z, y, dy, dz, dbias):
        """dz = dy * f'(z), dbias = column sums (y = f(z) or None); see :func:`backward_bias`."""
        _backward(self.kind, &self.p, z, y, dy, dz, dbias, True, self.owner_backward_bias, "dz")


# ---- kernels ----
# Arrays: C-contiguous float32 or float64 ndarrays of one dtype, all of z's shape (any rank;
# the activation acts along the last axis, softmax per row of it). A misaligned input is
# copied, a misaligned output refused (_arrays.pxd).

def forward(str kind, tuple params, z, out):
    """out = f(z) elementwise (softmax: per row). ``out`` may be ``z``.

    Args:
        kind: a name from ``KINDS``. params: its ``(a, b, c)`` floats (fewer is fine).
        z: (rows, cols) C-contiguous float32 or float64 input.
        out: (rows, cols) array of the same dtype (OUT).
    """
    cdef Params p = _params(params)
    _forward(_kind_id(kind), &p, z, None, out, False, None)


def backward(str kind, tuple params, z, y, dy, out):
    """out = dy * f'(z); softmax: out = y * (dy - sum(dy * y)) per row. out may alias any input.

    Args:
        kind, params: as in :func:`forward`.
        z: (rows, cols) pre-activation. y: f(z). dy: upstream gradient. out: OUT.
    """
    cdef Params p = _params(params)
    _backward(_kind_id(kind), &p, z, y, dy, out, None, False, None, "out")


def forward_bias(str kind, tuple params, z, bias, out):
    """z[i, j] += bias[j] in place, then out = f(z): one pass over the rows.

    Args:
        kind, params: as in :func:`forward`.
        z: (rows, units) pre-activation, IN/OUT.
        bias: (units,) or None (no bias: plain :func:`forward`).
        out: (rows, units) OUT; may be ``z``.
    """
    cdef Params p = _params(params)
    _forward(_kind_id(kind), &p, z, bias, out, True, None)


def backward_bias(str kind, tuple params, z, y, dy, dz, dbias):
    """dz = dy * f'(z) and dbias[j] = sum_i dz[i, j] in one pass, summed in fixed row chunks.

    Args:
        kind, params: as in :func:`forward`.
        z, y, dy: (rows, units) as in :func:`backward`.
        dz: (rows, units) OUT; may alias dy.
        dbias: (units,) OUT, or None to skip the column sums.
    """
    cdef Params p = _params(params)
    _backward(_kind_id(kind), &p, z, y, dy, dz, dbias, True, None, "dz")
