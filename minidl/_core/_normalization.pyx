# cython: language_level=3
"""Normalization kernels: batch, layer, group and unit normalization, forward and backward.

Layering: ``minidl.layers.normalization`` owns every array (parameters, moving statistics,
reused buffers) and calls these functions once per step. Every check lives here, at the
boundary, read through numpy's C API so that a call costs well under a microsecond beyond its
work; the loops then run on raw pointers without the GIL. gamma and beta are always arrays:
a layer built with ``scale=False`` or ``center=False`` passes constant ones or zeros.

Layouts. Batch norm reads x as (outer, C, inner) around its channel axis: channels-last input
(axis = -1) is inner = 1, rows of C channels, where the per-channel loops vectorise across
channels; channels-first input has inner = H * W. Layer norm reads x as (rows, cols) and
normalises each row of ``cols`` trailing elements. Group norm reads x as (N, P, C, Q) around
its channel axis (channels-last: Q = 1) and normalises each (sample, group of C / G
channels). Unit norm reads x as (outer, K, inner) and scales each (outer, inner) line of K
values to unit L2 norm.

Precision: statistics are accumulated in double for both dtypes and in two passes (the mean,
then the squared deviations from it), so inputs with a large offset do not cancel. The
elementwise output passes run in the data's precision, from the rounded per-channel (or
per-row) mean and 1/sqrt(var + epsilon), which backward reads again: both directions see the
same x_hat.

Threads: reductions over the batch (batch-norm statistics and gradients, layer norm's gamma
and beta gradients, group norm's per-sample statistics) run over fixed chunks of whole outer
rows whose size depends only on the shape. Each chunk sums into its own ``partial[chunk, :]``
and the partials are added in chunk order afterwards, so results have the same bits for any
thread count. Arrays under ``PARALLEL_MIN`` elements run serially without opening a parallel
region. Unit norm's lines are independent outputs, split into fixed chunks of lines.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY, sqrt
from libc.stdlib cimport calloc, free
from libc.string cimport memset

cimport numpy as cnp

from minidl._core._arrays cimport (aligned, float_array, float_array_like, overlap, prefix,
                                     same_shape, writeable)
from minidl._core._backend cimport (bn_affine_f32, bn_affine_f64, bn_dx_f32, bn_dx_f64,
                                    bn_grad_sums_f32, bn_grad_sums_f64, bn_sums_f32,
                                    bn_sums_f64, num_threads)

cnp.import_array()

ctypedef fused floating:
    float
    double

# Below PARALLEL_MIN elements a call stays on the calling thread. Chunks hold about
# CHUNK_ELEMS elements in whole outer rows (at least one row), and there are at most
# MAX_CHUNKS of them, so the partial sums (chunks x channels doubles) stay small next to the
# data even for long rows. Scratch space (partial sums and per-channel constants) up to
# STACK_DOUBLES lives on the stack, beyond that on the heap.
cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 8192
    MAX_CHUNKS = 64
    STACK_DOUBLES = 2048

PARALLEL_MIN = PARALLEL_MIN_ELEMS
CHUNK = CHUNK_ELEMS


ctypedef struct Plan:
    Py_ssize_t outer, C, inner   # x read as (outer, C, inner)
    Py_ssize_t rows_per_chunk, nchunks
    int threads


cdef Plan _plan(Py_ssize_t outer, Py_ssize_t C, Py_ssize_t inner) noexcept:
    cdef Plan p
    cdef Py_ssize_t row = C * inner
    p.outer, p.C, p.inner = outer, C, inner
    p.rows_per_chunk = CHUNK_ELEMS // row if 0 < row < CHUNK_ELEMS else 1
    p.rows_per_chunk = max(p.rows_per_chunk, (outer + MAX_CHUNKS - 1) // MAX_CHUNKS)
    p.nchunks = (outer + p.rows_per_chunk - 1) // p.rows_per_chunk
    p.threads = num_threads() if outer * row >= PARALLEL_MIN_ELEMS and p.nchunks > 1 else 1
    return p


cdef double *_scratch(Py_ssize_t n, double *local, double **heap) except NULL:
    """Zeroed space for n doubles: ``local`` (STACK_DOUBLES long) when it fits, else the heap
    (the caller frees ``heap[0]``)."""
    if n <= STACK_DOUBLES:
        memset(local, 0, max(n, 1) * sizeof(double))
        return local
    heap[0] = <double *>calloc(n, sizeof(double))
    if heap[0] == NULL:
        raise MemoryError(f"could not allocate {n} doubles of normalization scratch space.")
    return heap[0]


# ---- batch normalization: chunk loops ----
# The loops over one chunk are C (csrc/batchnorm.c), compiled once per instruction set and
# chosen by the active kernel table; these pick the dtype's version.

cdef inline void _bn_sums(const floating *x, const double *center, const Plan *p,
                          Py_ssize_t ch, double *acc) noexcept nogil:
    """acc[c] += sum over chunk ch of x (center NULL) or of (x - center[c])^2."""
    cdef Py_ssize_t o0 = ch * p.rows_per_chunk, o1 = min(o0 + p.rows_per_chunk, p.outer)
    if floating is float:
        bn_sums_f32(x, center, o0, o1, p.C, p.inner, acc)
    else:
        bn_sums_f64(x, center, o0, o1, p.C, p.inner, acc)


cdef inline void _bn_grad_sums(const floating *x, const floating *dy, const floating *gate,
                               double top, const floating *mean, const Plan *p, Py_ssize_t ch,
                               double *acc_dy, double *acc_dyx) noexcept nogil:
    """acc_dy[c] += sum of dy, acc_dyx[c] += sum of dy * (x - mean[c]) over chunk ch (dy
    gated by the ReLU output ``gate`` when given: above 0, and below ``top`` when finite)."""
    cdef Py_ssize_t o0 = ch * p.rows_per_chunk, o1 = min(o0 + p.rows_per_chunk, p.outer)
    if floating is float:
        bn_grad_sums_f32(x, dy, gate, top, mean, o0, o1, p.C, p.inner, acc_dy, acc_dyx)
    else:
        bn_grad_sums_f64(x, dy, gate, top, mean, o0, o1, p.C, p.inner, acc_dy, acc_dyx)


cdef inline void _bn_affine(const floating *x, floating *y, const floating *m,
                            const floating *a, const floating *b, const Plan *p,
                            Py_ssize_t ch, bint relu, floating top) noexcept nogil:
    """y = (x - m[c]) * a[c] + b[c] over chunk ch; with ``relu``, then y = relu(y) capped at
    ``top`` (infinite for a ReLU, 6 for ReLU6), as the activation kernels compute it (0
    where y < 0 and top where y > top, so NaN stays visible)."""
    cdef Py_ssize_t o0 = ch * p.rows_per_chunk, o1 = min(o0 + p.rows_per_chunk, p.outer)
    if floating is float:
        bn_affine_f32(x, y, m, a, b, o0, o1, p.C, p.inner, relu, top)
    else:
        bn_affine_f64(x, y, m, a, b, o0, o1, p.C, p.inner, relu, top)


cdef inline void _bn_dx(const floating *x, const floating *dy, const floating *gate,
                        double top, floating *dx, const floating *m, const floating *k1,
                        const floating *k2, const floating *k3, const Plan *p,
                        Py_ssize_t ch) noexcept nogil:
    """dx = k1[c] * (dy - k2[c] - (x - m[c]) * k3[c]) over chunk ch (dx may be dy; dy gated
    by ``gate`` when given)."""
    cdef Py_ssize_t o0 = ch * p.rows_per_chunk, o1 = min(o0 + p.rows_per_chunk, p.outer)
    if floating is float:
        bn_dx_f32(x, dy, gate, top, dx, m, k1, k2, k3, o0, o1, p.C, p.inner)
    else:
        bn_dx_f64(x, dy, gate, top, dx, m, k1, k2, k3, o0, o1, p.C, p.inner)


# ---- batch normalization: drivers (nogil; chunks in parallel when the plan says so) ----

cdef void _bn_reduce(const floating *x, const double *center, const Plan *p, double *partial,
                     double *out) noexcept nogil:
    """out[c] = sum over the batch of x or of (x - center[c])^2, summed in chunk order."""
    cdef Py_ssize_t ch, c, C = p.C
    cdef double s
    memset(partial, 0, p.nchunks * C * sizeof(double))
    if p.threads > 1:
        for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
            _bn_sums(x, center, p, ch, partial + ch * C)
    else:
        for ch in range(p.nchunks):
            _bn_sums(x, center, p, ch, partial + ch * C)
    for c in range(C):
        s = 0
        for ch in range(p.nchunks):
            s += partial[ch * C + c]
        out[c] = s


cdef void _bn_apply(const floating *x, floating *y, const floating *m, const floating *a,
                    const floating *b, const Plan *p, bint relu, floating top) noexcept nogil:
    cdef Py_ssize_t ch
    if p.threads > 1:
        for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
            _bn_affine(x, y, m, a, b, p, ch, relu, top)
    else:
        for ch in range(p.nchunks):
            _bn_affine(x, y, m, a, b, p, ch, relu, top)


cdef int _bn_train(const floating *x, const floating *gamma, const floating *beta,
                   floating *moving_mean, floating *moving_var, floating *mean_out,
                   floating *invstd_out, floating *y, const Plan *p, double momentum,
                   double epsilon, bint relu, floating top) except -1:
    cdef Py_ssize_t C = p.C, c
    cdef double count = <double>(p.outer * p.inner)
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *partial = _scratch(p.nchunks * C + 5 * C, local, &heap)
    cdef double *mean = partial + p.nchunks * C
    cdef double *var = mean + C
    # per-channel constants of the output pass, in the data's precision
    cdef floating *m = <floating *>(var + C)
    cdef floating *a = <floating *>(var + 2 * C)
    cdef floating *b = <floating *>(var + 3 * C)
    cdef double inv
    try:
        with nogil:
            _bn_reduce(x, NULL, p, partial, mean)
            for c in range(C):
                mean[c] = mean[c] / count
            _bn_reduce(x, mean, p, partial, var)
            for c in range(C):
                var[c] = var[c] / count   # biased, as Keras normalises and tracks it
                inv = 1.0 / sqrt(var[c] + epsilon)
                m[c] = <floating>mean[c]
                a[c] = <floating>(inv * gamma[c])
                b[c] = beta[c]
                mean_out[c] = m[c]
                invstd_out[c] = <floating>inv
                moving_mean[c] = <floating>(moving_mean[c] * momentum + mean[c] * (1.0 - momentum))
                moving_var[c] = <floating>(moving_var[c] * momentum + var[c] * (1.0 - momentum))
            _bn_apply(x, y, m, a, b, p, relu, top)
    finally:
        free(heap)
    return 0


cdef int _bn_inference(const floating *x, const floating *gamma, const floating *beta,
                       const floating *moving_mean, const floating *moving_var, floating *y,
                       const Plan *p, double epsilon, bint relu, floating top) except -1:
    cdef Py_ssize_t C = p.C, c
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *space = _scratch(3 * C, local, &heap)
    cdef floating *a = <floating *>space
    cdef floating *m = <floating *>(space + C)
    cdef floating *b = <floating *>(space + 2 * C)
    try:
        with nogil:
            for c in range(C):
                a[c] = <floating>(gamma[c] / sqrt(<double>moving_var[c] + epsilon))
                m[c] = moving_mean[c]
                b[c] = beta[c]
            _bn_apply(x, y, m, a, b, p, relu, top)
    finally:
        free(heap)
    return 0


cdef int _bn_backward(const floating *x, const floating *dy, const floating *gate,
                      double top, const floating *gamma, const floating *mean, const floating *invstd,
                      floating *dx, floating *dgamma, floating *dbeta, const Plan *p) except -1:
    cdef Py_ssize_t C = p.C, c, ch
    cdef double count = <double>(p.outer * p.inner)
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *partial_dy = _scratch(2 * p.nchunks * C + 6 * C, local, &heap)
    cdef double *partial_dyx = partial_dy + p.nchunks * C
    cdef double *sum_dy = partial_dyx + p.nchunks * C
    cdef double *sum_dyx = sum_dy + C
    cdef floating *k1 = <floating *>(sum_dyx + C)
    cdef floating *k2 = <floating *>(sum_dyx + 2 * C)
    cdef floating *k3 = <floating *>(sum_dyx + 3 * C)
    # the caller's mean, copied: the C loops take per-channel arrays apart from the data
    cdef floating *m = <floating *>(sum_dyx + 4 * C)
    cdef double s_dy, s_dyx, dxhat
    try:
        with nogil:
            for c in range(C):
                m[c] = mean[c]
            if p.threads > 1:
                for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
                    _bn_grad_sums(x, dy, gate, top, m, p, ch, partial_dy + ch * C,
                                  partial_dyx + ch * C)
            else:
                for ch in range(p.nchunks):
                    _bn_grad_sums(x, dy, gate, top, m, p, ch, partial_dy + ch * C,
                                  partial_dyx + ch * C)
            for c in range(C):
                s_dy = 0
                s_dyx = 0
                for ch in range(p.nchunks):
                    s_dy += partial_dy[ch * C + c]
                    s_dyx += partial_dyx[ch * C + c]
                dxhat = s_dyx * invstd[c]          # sum of dy * x_hat
                if dgamma != NULL:
                    dgamma[c] = <floating>dxhat
                if dbeta != NULL:
                    dbeta[c] = <floating>s_dy
                # dx = gamma * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat))
                k1[c] = <floating>(gamma[c] * invstd[c])
                k2[c] = <floating>(s_dy / count)
                k3[c] = <floating>(dxhat * invstd[c] / count)
            if dx != NULL:
                if p.threads > 1:
                    for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
                        _bn_dx(x, dy, gate, top, dx, m, k1, k2, k3, p, ch)
                else:
                    for ch in range(p.nchunks):
                        _bn_dx(x, dy, gate, top, dx, m, k1, k2, k3, p, ch)
    finally:
        free(heap)
    return 0


# ---- layer normalization ----

cdef inline double _row_sum(const floating *x, Py_ssize_t n, double center,
                            bint squares) noexcept nogil:
    """Sum of x (or of (x - center)^2) over one row with four accumulators in a fixed order:
    four independent dependency chains instead of one, and the same bits on every call."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0, d1, d2, d3
    cdef Py_ssize_t j, n4 = n - n % 4
    if squares:
        for j in range(0, n4, 4):
            d0 = x[j] - center
            d1 = x[j + 1] - center
            d2 = x[j + 2] - center
            d3 = x[j + 3] - center
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
        for j in range(n4, n):
            d0 = x[j] - center
            s0 += d0 * d0
    else:
        for j in range(0, n4, 4):
            s0 += x[j]
            s1 += x[j + 1]
            s2 += x[j + 2]
            s3 += x[j + 3]
        for j in range(n4, n):
            s0 += x[j]
    return (s0 + s1) + (s2 + s3)


cdef void _ln_forward_chunk(const floating *x, const floating *gamma, const floating *beta,
                            floating *mean, floating *invstd, floating *y, Py_ssize_t r0,
                            Py_ssize_t r1, Py_ssize_t cols, double epsilon) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef const floating *xr
    cdef floating *yr
    cdef double mu
    cdef floating fm, fi
    for r in range(r0, r1):
        xr = x + r * cols
        yr = y + r * cols
        mu = _row_sum(xr, cols, 0.0, False) / cols
        fm = <floating>mu
        fi = <floating>(1.0 / sqrt(_row_sum(xr, cols, mu, True) / cols + epsilon))
        if mean != NULL:
            mean[r] = fm
            invstd[r] = fi
        for j in range(cols):
            yr[j] = (xr[j] - fm) * fi * gamma[j] + beta[j]


cdef void _ln_backward_chunk(const floating *x, const floating *dy, const floating *gamma,
                             const floating *mean, const floating *invstd, floating *dx,
                             double *acc_g, double *acc_b, Py_ssize_t r0, Py_ssize_t r1,
                             Py_ssize_t cols) noexcept nogil:
    # Per row: g = dy * gamma; dx = invstd * (g - mean(g) - x_hat * mean(g * x_hat)).
    # acc_g / acc_b (this chunk's partials, NULL when not wanted) gather dy * x_hat and dy.
    cdef Py_ssize_t r, j
    cdef const floating *xr
    cdef const floating *dyr
    cdef floating fm, fi, xh, c1 = 0, c2 = 0
    cdef floating *dxr = NULL
    cdef double s_g, s_gx, g
    for r in range(r0, r1):
        xr = x + r * cols
        dyr = dy + r * cols
        fm = mean[r]
        fi = invstd[r]
        if dx != NULL:
            s_g = 0
            s_gx = 0
            for j in range(cols):
                g = dyr[j] * gamma[j]
                s_g += g
                s_gx += g * ((xr[j] - fm) * fi)
            c1 = <floating>(s_g / cols)
            c2 = <floating>(s_gx / cols)
            dxr = dx + r * cols
        if acc_g != NULL:
            for j in range(cols):
                acc_g[j] += dyr[j] * ((xr[j] - fm) * fi)
        if acc_b != NULL:
            for j in range(cols):
                acc_b[j] += dyr[j]
        if dx != NULL:
            # after the sums above: dx may be dy
            for j in range(cols):
                xh = (xr[j] - fm) * fi
                dxr[j] = fi * (dyr[j] * gamma[j] - c1 - xh * c2)


cdef int _ln_forward(const floating *x, const floating *gamma, const floating *beta,
                     floating *mean, floating *invstd, floating *y, Py_ssize_t rows,
                     Py_ssize_t cols, double epsilon) except -1:
    cdef Plan p = _plan(rows, cols, 1)
    cdef Py_ssize_t ch, rpc = p.rows_per_chunk
    with nogil:
        if p.threads > 1:
            for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
                _ln_forward_chunk(x, gamma, beta, mean, invstd, y, ch * rpc,
                                  min(ch * rpc + rpc, rows), cols, epsilon)
        else:
            _ln_forward_chunk(x, gamma, beta, mean, invstd, y, 0, rows, cols, epsilon)
    return 0


cdef int _ln_backward(const floating *x, const floating *dy, const floating *gamma,
                      const floating *mean, const floating *invstd, floating *dx,
                      floating *dgamma, floating *dbeta, Py_ssize_t rows,
                      Py_ssize_t cols) except -1:
    cdef Plan p = _plan(rows, cols, 1)
    cdef Py_ssize_t ch, j, rpc = p.rows_per_chunk, n = p.nchunks * cols
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *acc_g = NULL
    cdef double *acc_b = NULL
    cdef double s
    if dgamma != NULL or dbeta != NULL:
        acc_g = _scratch(2 * n, local, &heap)
        acc_b = acc_g + n
    try:
        with nogil:
            if p.threads > 1:
                for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
                    _ln_backward_chunk(x, dy, gamma, mean, invstd, dx,
                                       (acc_g + ch * cols) if dgamma != NULL else NULL,
                                       (acc_b + ch * cols) if dbeta != NULL else NULL,
                                       ch * rpc, min(ch * rpc + rpc, rows), cols)
            else:
                for ch in range(p.nchunks):
                    _ln_backward_chunk(x, dy, gamma, mean, invstd, dx,
                                       (acc_g + ch * cols) if dgamma != NULL else NULL,
                                       (acc_b + ch * cols) if dbeta != NULL else NULL,
                                       ch * rpc, min(ch * rpc + rpc, rows), cols)
            for j in range(cols):
                if dgamma != NULL:
                    s = 0
                    for ch in range(p.nchunks):
                        s += acc_g[ch * cols + j]
                    dgamma[j] = <floating>s
                if dbeta != NULL:
                    s = 0
                    for ch in range(p.nchunks):
                        s += acc_b[ch * cols + j]
                    dbeta[j] = <floating>s
    finally:
        free(heap)
    return 0


# ---- group normalization ----
#
# Work items are (sample, chunk of the sample's P rows), the chunk size fixed by the sample's
# shape alone (rows of about CHUNK_ELEMS elements), so that a small batch of large images
# still splits and a sample's result never depends on the rest of its batch. Each item sums
# per channel into its own ``partial[item, :]``; per (sample, group) the partials are added
# in (channel, chunk) order. Statistics are two-pass in double, as for batch norm. The batch
# runs in blocks of up to GROUP_BLOCK samples (and GROUP_BLOCK_ITEMS items), which bounds the
# scratch space (per-item partials and per-(sample, channel) constants) whatever the batch
# size; the gamma and beta gradients add the samples in order across blocks.

cdef enum:
    GROUP_BLOCK = 64
    GROUP_BLOCK_ITEMS = 256


ctypedef struct GroupPlan:
    Py_ssize_t N, P, C, Q, G, Cg   # x read as (N, P, C, Q); G groups of Cg channels
    Py_ssize_t rows_per_chunk, chunks, items
    Py_ssize_t block               # samples per block
    int threads


cdef GroupPlan _group_plan(Py_ssize_t N, Py_ssize_t P, Py_ssize_t C, Py_ssize_t Q,
                           Py_ssize_t G) noexcept:
    cdef GroupPlan p
    cdef Py_ssize_t row = C * Q
    p.N, p.P, p.C, p.Q, p.G, p.Cg = N, P, C, Q, G, C // G
    p.rows_per_chunk = CHUNK_ELEMS // row if 0 < row < CHUNK_ELEMS else 1
    p.chunks = max((P + p.rows_per_chunk - 1) // p.rows_per_chunk, 1)
    p.block = max(min(<Py_ssize_t>GROUP_BLOCK, GROUP_BLOCK_ITEMS // p.chunks), 1)
    p.items = N * p.chunks
    p.threads = 1
    return p


cdef GroupPlan _group_block(const GroupPlan *p, Py_ssize_t n) noexcept:
    """The plan of n samples of p's layout (one block)."""
    cdef GroupPlan b = p[0]
    b.N = n
    b.items = n * p.chunks
    b.threads = num_threads() if n * p.P * p.C * p.Q >= PARALLEL_MIN_ELEMS and b.items > 1 \
        else 1
    return b


cdef void _gn_sums(const floating *x, const double *center, const GroupPlan *p,
                   Py_ssize_t item, double *acc) noexcept nogil:
    """acc[c] = sum over item's rows of x (center NULL) or of (x - center[n, c])^2."""
    cdef Py_ssize_t n = item // p.chunks, ch = item % p.chunks
    cdef Py_ssize_t C = p.C, Q = p.Q, r, c, q
    cdef Py_ssize_t r0 = ch * p.rows_per_chunk, r1 = min(r0 + p.rows_per_chunk, p.P)
    cdef const floating *xr
    cdef const double *cen = (center + n * C) if center != NULL else NULL
    cdef double d, s
    memset(acc, 0, C * sizeof(double))
    for r in range(r0, r1):
        xr = x + (n * p.P + r) * C * Q
        if Q == 1:
            if cen == NULL:
                for c in range(C):
                    acc[c] += xr[c]
            else:
                for c in range(C):
                    d = xr[c] - cen[c]
                    acc[c] += d * d
        else:
            for c in range(C):
                s = 0
                if cen == NULL:
                    for q in range(Q):
                        s += xr[c * Q + q]
                else:
                    for q in range(Q):
                        d = xr[c * Q + q] - cen[c]
                        s += d * d
                acc[c] += s


cdef void _gn_grad_sums(const floating *x, const floating *dy, const floating *m,
                        const GroupPlan *p, Py_ssize_t item, double *acc_dy,
                        double *acc_dyx) noexcept nogil:
    """acc_dy[c] = sum of dy, acc_dyx[c] = sum of dy * (x - m[n, c]) over item's rows."""
    cdef Py_ssize_t n = item // p.chunks, ch = item % p.chunks
    cdef Py_ssize_t C = p.C, Q = p.Q, r, c, q, off
    cdef Py_ssize_t r0 = ch * p.rows_per_chunk, r1 = min(r0 + p.rows_per_chunk, p.P)
    cdef const floating *mn = m + n * C
    cdef double g, s_dy, s_dyx
    memset(acc_dy, 0, C * sizeof(double))
    memset(acc_dyx, 0, C * sizeof(double))
    for r in range(r0, r1):
        off = (n * p.P + r) * C * Q
        if Q == 1:
            for c in range(C):
                g = dy[off + c]
                acc_dy[c] += g
                acc_dyx[c] += g * (x[off + c] - mn[c])
        else:
            for c in range(C):
                s_dy = 0
                s_dyx = 0
                for q in range(Q):
                    g = dy[off + c * Q + q]
                    s_dy += g
                    s_dyx += g * (x[off + c * Q + q] - mn[c])
                acc_dy[c] += s_dy
                acc_dyx[c] += s_dyx


cdef void _gn_affine(const floating *x, const floating *dy, floating *out, const floating *m,
                     const floating *k1, const floating *k2, const floating *k3,
                     const GroupPlan *p, Py_ssize_t item) noexcept nogil:
    """Per (n, c) constants over item's rows. Forward (dy NULL): out = (x - m) * k1 + k2.
    Backward: out = k1 * dy - k2 - (x - m) * k3 (out may be dy)."""
    cdef Py_ssize_t n = item // p.chunks, ch = item % p.chunks
    cdef Py_ssize_t C = p.C, Q = p.Q, r, c, q, off, i
    cdef Py_ssize_t r0 = ch * p.rows_per_chunk, r1 = min(r0 + p.rows_per_chunk, p.P)
    cdef const floating *mn = m + n * C
    cdef const floating *a = k1 + n * C
    cdef const floating *b = k2 + n * C
    cdef const floating *e = k3 + n * C
    for r in range(r0, r1):
        off = (n * p.P + r) * C * Q
        if Q == 1:
            if dy == NULL:
                for c in range(C):
                    out[off + c] = (x[off + c] - mn[c]) * a[c] + b[c]
            else:
                for c in range(C):
                    out[off + c] = a[c] * dy[off + c] - b[c] - (x[off + c] - mn[c]) * e[c]
        else:
            for c in range(C):
                i = off + c * Q
                if dy == NULL:
                    for q in range(Q):
                        out[i + q] = (x[i + q] - mn[c]) * a[c] + b[c]
                else:
                    for q in range(Q):
                        out[i + q] = a[c] * dy[i + q] - b[c] - (x[i + q] - mn[c]) * e[c]


cdef void _gn_partials(const floating *x, const double *center, const GroupPlan *p,
                       double *partial) noexcept nogil:
    cdef Py_ssize_t it
    if p.threads > 1:
        for it in prange(p.items, num_threads=p.threads, schedule="static"):
            _gn_sums(x, center, p, it, partial + it * p.C)
    else:
        for it in range(p.items):
            _gn_sums(x, center, p, it, partial + it * p.C)


cdef inline double _gn_group_sum(const double *partial, const GroupPlan *p, Py_ssize_t n,
                                 Py_ssize_t g) noexcept nogil:
    """Sum of the partials of sample n's group g, in (channel, chunk) order."""
    cdef Py_ssize_t c, ch
    cdef double s = 0
    for c in range(g * p.Cg, (g + 1) * p.Cg):
        for ch in range(p.chunks):
            s += partial[(n * p.chunks + ch) * p.C + c]
    return s


cdef void _gn_forward_block(const floating *x, const floating *gamma, const floating *beta,
                            floating *mean_out, floating *invstd_out, floating *y,
                            const GroupPlan *p, double epsilon, double *scratch) noexcept nogil:
    # scratch: p.items * C + 4 * N * C doubles
    cdef Py_ssize_t N = p.N, C = p.C, n, g, c, it
    cdef double count = <double>(p.P * p.Cg * p.Q)
    cdef double *partial = scratch
    cdef double *center = partial + p.items * C
    # per (n, c) constants of the output pass, in the data's precision
    cdef floating *m = <floating *>(center + N * C)
    cdef floating *a = <floating *>(center + 2 * N * C)
    cdef floating *b = <floating *>(center + 3 * N * C)
    cdef double mu, inv
    _gn_partials(x, NULL, p, partial)
    for n in range(N):
        for g in range(p.G):
            mu = _gn_group_sum(partial, p, n, g) / count
            for c in range(g * p.Cg, (g + 1) * p.Cg):
                center[n * C + c] = mu
    _gn_partials(x, center, p, partial)
    for n in range(N):
        for g in range(p.G):
            # biased variance, as Keras' moments and torch's GroupNorm
            inv = 1.0 / sqrt(_gn_group_sum(partial, p, n, g) / count + epsilon)
            mu = center[n * C + g * p.Cg]
            if mean_out != NULL:
                mean_out[n * p.G + g] = <floating>mu
                invstd_out[n * p.G + g] = <floating>inv
            for c in range(g * p.Cg, (g + 1) * p.Cg):
                m[n * C + c] = <floating>mu
                a[n * C + c] = <floating>(inv * gamma[c])
                b[n * C + c] = beta[c]
    if p.threads > 1:
        for it in prange(p.items, num_threads=p.threads, schedule="static"):
            _gn_affine(x, NULL, y, m, a, b, b, p, it)
    else:
        for it in range(p.items):
            _gn_affine(x, NULL, y, m, a, b, b, p, it)


cdef int _gn_forward(const floating *x, const floating *gamma, const floating *beta,
                     floating *mean_out, floating *invstd_out, floating *y, const GroupPlan *p,
                     double epsilon) except -1:
    cdef Py_ssize_t nb = min(p.block, p.N), n0, size = p.P * p.C * p.Q
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *scratch = _scratch(nb * p.chunks * p.C + 4 * nb * p.C, local, &heap)
    cdef GroupPlan b
    try:
        for n0 in range(0, p.N, nb):
            b = _group_block(p, min(nb, p.N - n0))
            with nogil:
                _gn_forward_block(x + n0 * size, gamma, beta,
                                  (mean_out + n0 * p.G) if mean_out != NULL else NULL,
                                  (invstd_out + n0 * p.G) if invstd_out != NULL else NULL,
                                  y + n0 * size, &b, epsilon, scratch)
    finally:
        free(heap)
    return 0


cdef void _gn_backward_block(const floating *x, const floating *dy, const floating *gamma,
                             const floating *mean, const floating *invstd, floating *dx,
                             double *acc_g, double *acc_b, const GroupPlan *p,
                             double *scratch) noexcept nogil:
    # With x_hat = (x - mean) * invstd per (n, g) and h = dy * gamma:
    # dx = invstd * (h - mean_group(h) - x_hat * mean_group(h * x_hat)); the group means come
    # from the per-(n, c) sums of dy and dy * (x - mean), which also give dgamma and dbeta,
    # added into acc_g / acc_b (NULL: not wanted) sample by sample.
    # scratch: 2 * p.items * C + 6 * N * C doubles
    cdef Py_ssize_t N = p.N, C = p.C, G = p.G, n, g, c, ch, it
    cdef double count = <double>(p.P * p.Cg * p.Q)
    cdef double *partial_dy = scratch
    cdef double *partial_dyx = partial_dy + p.items * C
    cdef double *s_dy = partial_dyx + p.items * C          # (N, C)
    cdef double *s_dyx = s_dy + N * C                      # (N, C)
    cdef floating *m = <floating *>(s_dyx + N * C)
    cdef floating *k1 = <floating *>(s_dyx + 2 * N * C)
    cdef floating *k2 = <floating *>(s_dyx + 3 * N * C)
    cdef floating *k3 = <floating *>(s_dyx + 4 * N * C)
    cdef double a, b, t, fi
    for n in range(N):
        for c in range(C):
            m[n * C + c] = mean[n * G + c // p.Cg]
    if p.threads > 1:
        for it in prange(p.items, num_threads=p.threads, schedule="static"):
            _gn_grad_sums(x, dy, m, p, it, partial_dy + it * C, partial_dyx + it * C)
    else:
        for it in range(p.items):
            _gn_grad_sums(x, dy, m, p, it, partial_dy + it * C, partial_dyx + it * C)
    for n in range(N):
        for c in range(C):
            a = 0
            b = 0
            for ch in range(p.chunks):
                a += partial_dy[(n * p.chunks + ch) * C + c]
                b += partial_dyx[(n * p.chunks + ch) * C + c]
            s_dy[n * C + c] = a
            s_dyx[n * C + c] = b
    for n in range(N):
        for c in range(C):
            if acc_b != NULL:
                acc_b[c] += s_dy[n * C + c]
            if acc_g != NULL:
                acc_g[c] += s_dyx[n * C + c] * invstd[n * G + c // p.Cg]
    if dx == NULL:
        return
    for n in range(N):
        for g in range(G):
            fi = invstd[n * G + g]
            a = 0   # sum of h over the group
            b = 0   # sum of h * (x - mean) over the group
            for c in range(g * p.Cg, (g + 1) * p.Cg):
                a += gamma[c] * s_dy[n * C + c]
                b += gamma[c] * s_dyx[n * C + c]
            t = fi * fi * fi * b / count   # invstd * mean(h * x_hat) * invstd
            for c in range(g * p.Cg, (g + 1) * p.Cg):
                k1[n * C + c] = <floating>(fi * gamma[c])
                k2[n * C + c] = <floating>(fi * a / count)
                k3[n * C + c] = <floating>t
    if p.threads > 1:
        for it in prange(p.items, num_threads=p.threads, schedule="static"):
            _gn_affine(x, dy, dx, m, k1, k2, k3, p, it)
    else:
        for it in range(p.items):
            _gn_affine(x, dy, dx, m, k1, k2, k3, p, it)


cdef int _gn_backward(const floating *x, const floating *dy, const floating *gamma,
                      const floating *mean, const floating *invstd, floating *dx,
                      floating *dgamma, floating *dbeta, const GroupPlan *p) except -1:
    cdef Py_ssize_t nb = min(p.block, p.N), n0, c, size = p.P * p.C * p.Q
    cdef double local[STACK_DOUBLES]
    cdef double *heap = NULL
    cdef double *scratch = _scratch(2 * nb * p.chunks * p.C + 6 * nb * p.C + 2 * p.C, local,
                                    &heap)
    cdef double *acc_g = scratch + 2 * nb * p.chunks * p.C + 6 * nb * p.C   # zeroed
    cdef double *acc_b = acc_g + p.C
    cdef GroupPlan b
    try:
        for n0 in range(0, p.N, nb):
            b = _group_block(p, min(nb, p.N - n0))
            with nogil:
                _gn_backward_block(x + n0 * size, dy + n0 * size, gamma, mean + n0 * p.G,
                                   invstd + n0 * p.G, (dx + n0 * size) if dx != NULL else NULL,
                                   acc_g if dgamma != NULL else NULL,
                                   acc_b if dbeta != NULL else NULL, &b, scratch)
        for c in range(p.C):
            if dgamma != NULL:
                dgamma[c] = <floating>acc_g[c]
            if dbeta != NULL:
                dbeta[c] = <floating>acc_b[c]
    finally:
        free(heap)
    return 0


# ---- unit normalization ----
#
# y = x * min(1 / ||x||, 1 / epsilon) along K, as Keras' normalize(order=2) with epsilon
# 1e-12; the sum of squares in double. Backward recomputes the norm from x (the same sums in
# the same order, so the same clipping decision) rather than keeping it:
# dx = r * dy - x * r^3 * sum(dy * x) where r = 1 / ||x|| is not clipped, else r_max * dy.
# Lines with inner = 1 are rows; otherwise items are (outer index, block of UNIT_BLOCK inner
# columns), each accumulating its columns over K on the stack.

cdef enum:
    UNIT_BLOCK = 64


cdef inline double _unit_scale(double sumsq, double max_scale, bint *clipped) noexcept nogil:
    cdef double r = 1.0 / sqrt(sumsq)
    clipped[0] = r >= max_scale   # also sumsq = 0 (r = inf); a NaN compares false and stays
    return max_scale if clipped[0] else r


cdef inline double _row_dot(const floating *a, const floating *b, Py_ssize_t n) noexcept nogil:
    """sum(a * b) with four accumulators in a fixed order (as _row_sum)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t j, n4 = n - n % 4
    for j in range(0, n4, 4):
        s0 += <double>a[j] * b[j]
        s1 += <double>a[j + 1] * b[j + 1]
        s2 += <double>a[j + 2] * b[j + 2]
        s3 += <double>a[j + 3] * b[j + 3]
    for j in range(n4, n):
        s0 += <double>a[j] * b[j]
    return (s0 + s1) + (s2 + s3)


cdef void _unit_rows(const floating *x, const floating *dy, floating *out, Py_ssize_t r0,
                     Py_ssize_t r1, Py_ssize_t K, double max_scale) noexcept nogil:
    # Rows [r0, r1) of K values. Forward (dy NULL): out = x * r. Backward: out = dx (may be
    # dy).
    cdef Py_ssize_t r, j
    cdef const floating *xr
    cdef const floating *dyr
    cdef floating *o
    cdef double scale
    cdef bint clipped
    cdef floating fr, fc
    for r in range(r0, r1):
        xr = x + r * K
        o = out + r * K
        scale = _unit_scale(_row_sum(xr, K, 0.0, True), max_scale, &clipped)
        fr = <floating>scale
        if dy == NULL:
            for j in range(K):
                o[j] = xr[j] * fr
        else:
            dyr = dy + r * K
            fc = 0 if clipped else <floating>(scale * scale * scale * _row_dot(dyr, xr, K))
            for j in range(K):
                o[j] = fr * dyr[j] - xr[j] * fc


cdef void _unit_block(const floating *x, const floating *dy, floating *out, Py_ssize_t item,
                      Py_ssize_t K, Py_ssize_t inner, double max_scale) noexcept nogil:
    # One (outer index, block of inner columns) item of a layout with inner > 1.
    cdef Py_ssize_t blocks = (inner + UNIT_BLOCK - 1) // UNIT_BLOCK
    cdef Py_ssize_t o = item // blocks, i0 = (item % blocks) * UNIT_BLOCK
    cdef Py_ssize_t w = min(<Py_ssize_t>UNIT_BLOCK, inner - i0), k, i, off
    cdef double sq[UNIT_BLOCK]
    cdef double dot[UNIT_BLOCK]
    cdef floating fr[UNIT_BLOCK]
    cdef floating fc[UNIT_BLOCK]
    cdef double v, scale
    cdef bint clipped
    for i in range(w):
        sq[i] = 0
        dot[i] = 0
    for k in range(K):
        off = (o * K + k) * inner + i0
        for i in range(w):
            v = x[off + i]
            sq[i] += v * v
        if dy != NULL:
            for i in range(w):
                dot[i] += <double>dy[off + i] * x[off + i]
    for i in range(w):
        scale = _unit_scale(sq[i], max_scale, &clipped)
        fr[i] = <floating>scale
        fc[i] = 0 if clipped else <floating>(scale * scale * scale * dot[i])
    for k in range(K):
        off = (o * K + k) * inner + i0
        if dy == NULL:
            for i in range(w):
                out[off + i] = x[off + i] * fr[i]
        else:
            for i in range(w):
                out[off + i] = fr[i] * dy[off + i] - x[off + i] * fc[i]


cdef int _unit_drive(const floating *x, const floating *dy, floating *out, Py_ssize_t outer,
                     Py_ssize_t K, Py_ssize_t inner, double max_scale) except -1:
    cdef Plan p = _plan(outer, K, 1)
    cdef Py_ssize_t ch, rpc = p.rows_per_chunk, it
    cdef Py_ssize_t items = outer * ((inner + UNIT_BLOCK - 1) // UNIT_BLOCK)
    cdef int threads = num_threads() \
        if outer * K * inner >= PARALLEL_MIN_ELEMS and items > 1 else 1
    with nogil:
        if inner == 1:
            if p.threads > 1:
                for ch in prange(p.nchunks, num_threads=p.threads, schedule="static"):
                    _unit_rows(x, dy, out, ch * rpc, min(ch * rpc + rpc, outer), K, max_scale)
            else:
                _unit_rows(x, dy, out, 0, outer, K, max_scale)
        elif threads > 1:
            for it in prange(items, num_threads=threads, schedule="static"):
                _unit_block(x, dy, out, it, K, inner, max_scale)
        else:
            for it in range(items):
                _unit_block(x, dy, out, it, K, inner, max_scale)
    return 0


# ---- argument handling ----
# ``owner`` prefixes error messages ("BatchNormalization 'bn'.forward"); None for direct calls.

cdef inline char *_data(object a) noexcept:
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _output(object a, int dtype, object ref, object owner, str name, str ref_name,
                 object src) except -1:
    """``a`` is a writeable float array of ref's dtype and shape that is ``src`` itself or
    does not overlap it (every kernel reads an element before writing the same element)."""
    float_array_like(a, dtype, owner, name)
    same_shape(a, ref, owner, name, ref_name)
    writeable(a, owner, name)
    _apart(a, src, owner, name, "its input")
    return 0


cdef int _apart(object a, object b, object owner, str name, str b_name) except -1:
    """``a`` is ``b``'s memory exactly or does not overlap it."""
    if _data(a) != _data(b) and overlap(a, b):
        raise ValueError(f"{prefix(owner)}{name} partly overlaps {b_name}; pass the same "
                         f"array or a separate one.")
    return 0


cdef int _vector(object a, int dtype, Py_ssize_t n, object owner, str name,
                 bint out) except -1:
    """``a`` is a float array of the given dtype holding n elements (any shape)."""
    float_array_like(a, dtype, owner, name)
    if cnp.PyArray_SIZE(<cnp.ndarray>a) != n:
        raise ValueError(f"{prefix(owner)}{name} must hold {n} values; received an array of "
                         f"shape {(<object>a).shape}.")
    if out:
        writeable(a, owner, name)
    return 0


cdef int _bn_plan(object x, int axis, object owner, Plan *p) except -1:
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>x), k
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    cdef Py_ssize_t outer = 1, inner = 1
    if axis < 0 or axis >= nd:
        raise ValueError(f"{prefix(owner)}axis must index a dimension of x (shape "
                         f"{(<object>x).shape}); received axis={axis}.")
    for k in range(axis):
        outer *= dims[k]
    for k in range(axis + 1, nd):
        inner *= dims[k]
    p[0] = _plan(outer, dims[axis], inner)
    return 0


cdef double _cap(relu_max) except? -1:
    """The fused ReLU's cap: infinite for a plain ReLU (None), else a finite value > 0."""
    if relu_max is None:
        return INFINITY
    cdef double top = relu_max
    if not top > 0 or top == INFINITY:
        raise ValueError(f"relu_max must be None or a finite float > 0; received "
                         f"relu_max={relu_max!r}.")
    return top


def batch_norm_train(x, int axis, gamma, beta, moving_mean, moving_variance, mean, invstd, y,
                     double momentum, double epsilon, owner=None, bint relu=False,
                     relu_max=None):
    """Batch statistics, moving-statistics update and normalisation in one call.

    With m, v the mean and biased variance of x over every axis but ``axis``:
    ``y = (x - m) / sqrt(v + epsilon) * gamma + beta``,
    ``moving_mean = moving_mean * momentum + m * (1 - momentum)`` (likewise the variance).

    Args:
        x: C-contiguous float32 or float64 array of any rank. axis: its channel axis (>= 0).
        gamma, beta: (C,) scale and offset (pass ones / zeros when the layer has none).
        moving_mean, moving_variance: (C,) IN/OUT.
        mean, invstd: (C,) OUT: m and 1/sqrt(v + epsilon), which backward needs.
        y: x's shape, OUT; may be x itself.
        momentum, epsilon: floats.
        owner: optional prefix of error messages.
        relu: then apply a ReLU to y in the same pass (a BatchNormalization followed by a
            ReLU layer, fused by the execution plan).
        relu_max: None, or the ReLU's cap (6: ReLU6).
    """
    x, gamma, beta = aligned(x), aligned(gamma), aligned(beta)
    cdef int t = float_array(x, owner, "x")
    cdef Plan p
    _bn_plan(x, axis, owner, &p)
    _vector(gamma, t, p.C, owner, "gamma", False)
    _vector(beta, t, p.C, owner, "beta", False)
    _vector(moving_mean, t, p.C, owner, "moving_mean", True)
    _vector(moving_variance, t, p.C, owner, "moving_variance", True)
    _vector(mean, t, p.C, owner, "mean", True)
    _vector(invstd, t, p.C, owner, "invstd", True)
    _output(y, t, x, owner, "y", "x", x)
    if p.outer * p.inner == 0 or p.C == 0:  # an empty batch has no statistics
        return y
    if t == cnp.NPY_FLOAT:
        _bn_train(<const float *>_data(x), <const float *>_data(gamma),
                  <const float *>_data(beta), <float *>_data(moving_mean),
                  <float *>_data(moving_variance), <float *>_data(mean),
                  <float *>_data(invstd), <float *>_data(y), &p, momentum, epsilon, relu,
                  _cap(relu_max))
    else:
        _bn_train(<const double *>_data(x), <const double *>_data(gamma),
                  <const double *>_data(beta), <double *>_data(moving_mean),
                  <double *>_data(moving_variance), <double *>_data(mean),
                  <double *>_data(invstd), <double *>_data(y), &p, momentum, epsilon, relu,
                  _cap(relu_max))
    return y


def batch_norm_inference(x, int axis, gamma, beta, moving_mean, moving_variance, y,
                         double epsilon, owner=None, bint relu=False, relu_max=None):
    """``y = (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta`` per channel.

    Args: as :func:`batch_norm_train`; nothing but y is written. y may be x itself.
    """
    x, gamma, beta = aligned(x), aligned(gamma), aligned(beta)
    moving_mean, moving_variance = aligned(moving_mean), aligned(moving_variance)
    cdef int t = float_array(x, owner, "x")
    cdef Plan p
    _bn_plan(x, axis, owner, &p)
    _vector(gamma, t, p.C, owner, "gamma", False)
    _vector(beta, t, p.C, owner, "beta", False)
    _vector(moving_mean, t, p.C, owner, "moving_mean", False)
    _vector(moving_variance, t, p.C, owner, "moving_variance", False)
    _output(y, t, x, owner, "y", "x", x)
    if p.outer * p.inner == 0 or p.C == 0:
        return y
    if t == cnp.NPY_FLOAT:
        _bn_inference(<const float *>_data(x), <const float *>_data(gamma),
                      <const float *>_data(beta), <const float *>_data(moving_mean),
                      <const float *>_data(moving_variance), <float *>_data(y), &p, epsilon,
                      relu, _cap(relu_max))
    else:
        _bn_inference(<const double *>_data(x), <const double *>_data(gamma),
                      <const double *>_data(beta), <const double *>_data(moving_mean),
                      <const double *>_data(moving_variance), <double *>_data(y), &p, epsilon,
                      relu, _cap(relu_max))
    return y


def batch_norm_backward(x, dy, int axis, gamma, mean, invstd, dx, dgamma, dbeta, owner=None,
                        gate=None, relu_max=None):
    """Gradients of batch normalisation with batch statistics, in two passes over x and dy.

    With x_hat = (x - mean) * invstd and N the number of values per channel:
    ``dbeta = sum(dy)``, ``dgamma = sum(dy * x_hat)``,
    ``dx = gamma * invstd * (dy - dbeta / N - x_hat * dgamma / N)``.

    Args:
        x: the forward input. dy: x's shape. axis: as in :func:`batch_norm_train`.
        gamma, mean, invstd: (C,), as passed to / written by :func:`batch_norm_train`.
        dx: x's shape OUT (may be dy), or None to skip it.
        dgamma, dbeta: (C,) OUT, or None to skip them.
        gate: None, or the output of a ReLU that followed in the forward pass (the fused
            ``relu`` of :func:`batch_norm_train`): dy then counts only where it is above 0
            (and below ``relu_max`` when given).
        relu_max: None, or the fused ReLU's cap (6: ReLU6).
    """
    x, dy, gamma = aligned(x), aligned(dy), aligned(gamma)
    if gate is not None:
        gate = aligned(gate)
    mean, invstd = aligned(mean), aligned(invstd)
    cdef int t = float_array(x, owner, "x")
    cdef Plan p
    _bn_plan(x, axis, owner, &p)
    float_array_like(dy, t, owner, "dy")
    same_shape(dy, x, owner, "dy", "x")
    _vector(gamma, t, p.C, owner, "gamma", False)
    _vector(mean, t, p.C, owner, "mean", False)
    _vector(invstd, t, p.C, owner, "invstd", False)
    if gate is not None:
        float_array_like(gate, t, owner, "gate")
        same_shape(gate, x, owner, "gate", "x")
    if dx is not None:
        _output(dx, t, x, owner, "dx", "x", dy)
        _apart(dx, x, owner, "dx", "x")
    if dgamma is not None:
        _vector(dgamma, t, p.C, owner, "dgamma", True)
    if dbeta is not None:
        _vector(dbeta, t, p.C, owner, "dbeta", True)
    if p.outer * p.inner == 0 or p.C == 0:
        for g in (dgamma, dbeta):
            if g is not None:
                g[...] = 0
        return dx
    if t == cnp.NPY_FLOAT:
        _bn_backward(<const float *>_data(x), <const float *>_data(dy),
                     <const float *>_data(gate) if gate is not None else NULL,
                     _cap(relu_max), <const float *>_data(gamma), <const float *>_data(mean),
                     <const float *>_data(invstd),
                     <float *>_data(dx) if dx is not None else NULL,
                     <float *>_data(dgamma) if dgamma is not None else NULL,
                     <float *>_data(dbeta) if dbeta is not None else NULL, &p)
    else:
        _bn_backward(<const double *>_data(x), <const double *>_data(dy),
                     <const double *>_data(gate) if gate is not None else NULL,
                     _cap(relu_max), <const double *>_data(gamma), <const double *>_data(mean),
                     <const double *>_data(invstd),
                     <double *>_data(dx) if dx is not None else NULL,
                     <double *>_data(dgamma) if dgamma is not None else NULL,
                     <double *>_data(dbeta) if dbeta is not None else NULL, &p)
    return dx


cdef int _ln_shape(object x, Py_ssize_t cols, object owner, Py_ssize_t *rows) except -1:
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>x)
    if cols <= 0 or size % cols:
        raise ValueError(f"{prefix(owner)}cols must be positive and divide x's size; received "
                         f"cols={cols} for x of shape {(<object>x).shape}.")
    rows[0] = size // cols
    return 0


def layer_norm_forward(x, Py_ssize_t cols, gamma, beta, mean, invstd, y, double epsilon,
                       owner=None):
    """Per-row normalisation: ``y = (x - m) / sqrt(v + epsilon) * gamma + beta``.

    Args:
        x: C-contiguous float array read as (rows, cols), m and v (biased) taken per row.
        cols: number of trailing elements normalised together.
        gamma, beta: cols values each (pass ones / zeros when the layer has none).
        mean, invstd: rows values each, OUT (m and 1/sqrt(v + epsilon), for backward), or
            both None (inference).
        y: x's shape, OUT; may be x itself.
    """
    x, gamma, beta = aligned(x), aligned(gamma), aligned(beta)
    cdef int t = float_array(x, owner, "x")
    cdef Py_ssize_t rows = 0
    _ln_shape(x, cols, owner, &rows)
    _vector(gamma, t, cols, owner, "gamma", False)
    _vector(beta, t, cols, owner, "beta", False)
    if (mean is None) != (invstd is None):
        raise ValueError(f"{prefix(owner)}pass both mean and invstd, or neither.")
    if mean is not None:
        _vector(mean, t, rows, owner, "mean", True)
        _vector(invstd, t, rows, owner, "invstd", True)
    _output(y, t, x, owner, "y", "x", x)
    if rows == 0:
        return y
    if t == cnp.NPY_FLOAT:
        _ln_forward(<const float *>_data(x), <const float *>_data(gamma),
                    <const float *>_data(beta),
                    <float *>_data(mean) if mean is not None else NULL,
                    <float *>_data(invstd) if invstd is not None else NULL,
                    <float *>_data(y), rows, cols, epsilon)
    else:
        _ln_forward(<const double *>_data(x), <const double *>_data(gamma),
                    <const double *>_data(beta),
                    <double *>_data(mean) if mean is not None else NULL,
                    <double *>_data(invstd) if invstd is not None else NULL,
                    <double *>_data(y), rows, cols, epsilon)
    return y


def layer_norm_backward(x, dy, Py_ssize_t cols, gamma, mean, invstd, dx, dgamma, dbeta,
                        owner=None):
    """Gradients of layer normalisation, one pass per row plus fixed-chunk column sums.

    With x_hat = (x - mean) * invstd per row and g = dy * gamma:
    ``dx = invstd * (g - mean_row(g) - x_hat * mean_row(g * x_hat))``,
    ``dgamma = sum over rows of dy * x_hat``, ``dbeta = sum over rows of dy``.

    Args:
        x, cols: as in :func:`layer_norm_forward`. dy: x's shape.
        gamma: cols values. mean, invstd: rows values from :func:`layer_norm_forward`.
        dx: x's shape OUT (may be dy), or None. dgamma, dbeta: cols values OUT, or None.
    """
    x, dy, gamma = aligned(x), aligned(dy), aligned(gamma)
    mean, invstd = aligned(mean), aligned(invstd)
    cdef int t = float_array(x, owner, "x")
    cdef Py_ssize_t rows = 0
    _ln_shape(x, cols, owner, &rows)
    float_array_like(dy, t, owner, "dy")
    same_shape(dy, x, owner, "dy", "x")
    _vector(gamma, t, cols, owner, "gamma", False)
    _vector(mean, t, rows, owner, "mean", False)
    _vector(invstd, t, rows, owner, "invstd", False)
    if dx is not None:
        _output(dx, t, x, owner, "dx", "x", dy)
        _apart(dx, x, owner, "dx", "x")
    if dgamma is not None:
        _vector(dgamma, t, cols, owner, "dgamma", True)
    if dbeta is not None:
        _vector(dbeta, t, cols, owner, "dbeta", True)
    if t == cnp.NPY_FLOAT:
        _ln_backward(<const float *>_data(x), <const float *>_data(dy),
                     <const float *>_data(gamma), <const float *>_data(mean),
                     <const float *>_data(invstd),
                     <float *>_data(dx) if dx is not None else NULL,
                     <float *>_data(dgamma) if dgamma is not None else NULL,
                     <float *>_data(dbeta) if dbeta is not None else NULL, rows, cols)
    else:
        _ln_backward(<const double *>_data(x), <const double *>_data(dy),
                     <const double *>_data(gamma), <const double *>_data(mean),
                     <const double *>_data(invstd),
                     <double *>_data(dx) if dx is not None else NULL,
                     <double *>_data(dgamma) if dgamma is not None else NULL,
                     <double *>_data(dbeta) if dbeta is not None else NULL, rows, cols)
    return dx


cdef int _group_plan_of(object x, int axis, Py_ssize_t groups, object owner,
                        GroupPlan *p) except -1:
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>x), k
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    cdef Py_ssize_t P = 1, Q = 1
    if axis < 1 or axis >= nd:
        raise ValueError(f"{prefix(owner)}axis must index a non-batch dimension of x (shape "
                         f"{(<object>x).shape}); received axis={axis}.")
    if groups <= 0 or dims[axis] % groups:
        raise ValueError(f"{prefix(owner)}groups must be positive and divide the "
                         f"{dims[axis]} channels; received groups={groups}.")
    for k in range(1, axis):
        P *= dims[k]
    for k in range(axis + 1, nd):
        Q *= dims[k]
    p[0] = _group_plan(dims[0], P, dims[axis], Q, groups)
    return 0


def group_norm_forward(x, int axis, Py_ssize_t groups, gamma, beta, mean, invstd, y,
                       double epsilon, owner=None):
    """Group normalisation: per sample, the C channels of ``axis`` split into ``groups``
    groups of consecutive channels, and with m, v the mean and biased variance of each
    (sample, group) over its channels and every other non-batch axis:
    ``y = (x - m) / sqrt(v + epsilon) * gamma + beta``.

    Args:
        x: C-contiguous float32 or float64 array, batch first. axis: its channel axis (>= 1).
        groups: number of groups; it divides C.
        gamma, beta: (C,) scale and offset (pass ones / zeros when the layer has none).
        mean, invstd: (N, groups) OUT (m and 1/sqrt(v + epsilon), for backward), or both None.
        y: x's shape, OUT; may be x itself.
    """
    x, gamma, beta = aligned(x), aligned(gamma), aligned(beta)
    cdef int t = float_array(x, owner, "x")
    cdef GroupPlan p
    _group_plan_of(x, axis, groups, owner, &p)
    _vector(gamma, t, p.C, owner, "gamma", False)
    _vector(beta, t, p.C, owner, "beta", False)
    if (mean is None) != (invstd is None):
        raise ValueError(f"{prefix(owner)}pass both mean and invstd, or neither.")
    if mean is not None:
        _vector(mean, t, p.N * p.G, owner, "mean", True)
        _vector(invstd, t, p.N * p.G, owner, "invstd", True)
    _output(y, t, x, owner, "y", "x", x)
    if p.N * p.P * p.Q == 0 or p.C == 0:   # nothing to normalise
        return y
    if t == cnp.NPY_FLOAT:
        _gn_forward(<const float *>_data(x), <const float *>_data(gamma),
                    <const float *>_data(beta),
                    <float *>_data(mean) if mean is not None else NULL,
                    <float *>_data(invstd) if invstd is not None else NULL,
                    <float *>_data(y), &p, epsilon)
    else:
        _gn_forward(<const double *>_data(x), <const double *>_data(gamma),
                    <const double *>_data(beta),
                    <double *>_data(mean) if mean is not None else NULL,
                    <double *>_data(invstd) if invstd is not None else NULL,
                    <double *>_data(y), &p, epsilon)
    return y


def group_norm_backward(x, dy, int axis, Py_ssize_t groups, gamma, mean, invstd, dx, dgamma,
                        dbeta, owner=None):
    """Gradients of group normalisation.

    With x_hat = (x - mean) * invstd per (sample, group) and h = dy * gamma:
    ``dx = invstd * (h - mean_group(h) - x_hat * mean_group(h * x_hat))``,
    ``dgamma = sum over samples and positions of dy * x_hat``, ``dbeta = sum of dy``.

    Args:
        x, axis, groups: as in :func:`group_norm_forward`. dy: x's shape.
        gamma: (C,). mean, invstd: (N, groups) from :func:`group_norm_forward`.
        dx: x's shape OUT (may be dy), or None. dgamma, dbeta: (C,) OUT, or None.
    """
    x, dy, gamma = aligned(x), aligned(dy), aligned(gamma)
    mean, invstd = aligned(mean), aligned(invstd)
    cdef int t = float_array(x, owner, "x")
    cdef GroupPlan p
    _group_plan_of(x, axis, groups, owner, &p)
    float_array_like(dy, t, owner, "dy")
    same_shape(dy, x, owner, "dy", "x")
    _vector(gamma, t, p.C, owner, "gamma", False)
    _vector(mean, t, p.N * p.G, owner, "mean", False)
    _vector(invstd, t, p.N * p.G, owner, "invstd", False)
    if dx is not None:
        _output(dx, t, x, owner, "dx", "x", dy)
        _apart(dx, x, owner, "dx", "x")
    if dgamma is not None:
        _vector(dgamma, t, p.C, owner, "dgamma", True)
    if dbeta is not None:
        _vector(dbeta, t, p.C, owner, "dbeta", True)
    if p.N * p.P * p.Q == 0 or p.C == 0:
        for g in (dgamma, dbeta):
            if g is not None:
                g[...] = 0
        return dx
    if t == cnp.NPY_FLOAT:
        _gn_backward(<const float *>_data(x), <const float *>_data(dy),
                     <const float *>_data(gamma), <const float *>_data(mean),
                     <const float *>_data(invstd),
                     <float *>_data(dx) if dx is not None else NULL,
                     <float *>_data(dgamma) if dgamma is not None else NULL,
                     <float *>_data(dbeta) if dbeta is not None else NULL, &p)
    else:
        _gn_backward(<const double *>_data(x), <const double *>_data(dy),
                     <const double *>_data(gamma), <const double *>_data(mean),
                     <const double *>_data(invstd),
                     <double *>_data(dx) if dx is not None else NULL,
                     <double *>_data(dgamma) if dgamma is not None else NULL,
                     <double *>_data(dbeta) if dbeta is not None else NULL, &p)
    return dx


cdef int _unit_layout(object x, int first, int last, object owner, Py_ssize_t *outer,
                      Py_ssize_t *K, Py_ssize_t *inner) except -1:
    cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>x), k
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(<cnp.ndarray>x)
    if not 0 <= first <= last < nd:
        raise ValueError(f"{prefix(owner)}first and last must give a range of axes of x "
                         f"(shape {(<object>x).shape}); received first={first}, "
                         f"last={last}.")
    outer[0], K[0], inner[0] = 1, 1, 1
    for k in range(first):
        outer[0] *= dims[k]
    for k in range(first, last + 1):
        K[0] *= dims[k]
    for k in range(last + 1, nd):
        inner[0] *= dims[k]
    return 0


def unit_norm_forward(x, int first, int last, y, double epsilon=1e-12, owner=None):
    """L2 normalisation along axes ``first..last`` of x (a contiguous range):
    ``y = x * min(1 / sqrt(sum(x^2)), 1 / epsilon)``, the sum in double.

    Args:
        x: C-contiguous float32 or float64 array.
        first, last: the first and last normalised axis (0 <= first <= last < x.ndim).
        y: x's shape, OUT; may be x itself.
        epsilon: positive float: norms below it are taken as epsilon.
    """
    x = aligned(x)
    cdef int t = float_array(x, owner, "x")
    cdef Py_ssize_t outer = 0, K = 0, inner = 0
    _unit_layout(x, first, last, owner, &outer, &K, &inner)
    if not epsilon > 0:
        raise ValueError(f"{prefix(owner)}epsilon must be positive; received "
                         f"epsilon={epsilon}.")
    _output(y, t, x, owner, "y", "x", x)
    if outer * K * inner == 0:
        return y
    if t == cnp.NPY_FLOAT:
        _unit_drive(<const float *>_data(x), <const float *>NULL, <float *>_data(y), outer, K,
                    inner, 1.0 / epsilon)
    else:
        _unit_drive(<const double *>_data(x), <const double *>NULL, <double *>_data(y), outer,
                    K, inner, 1.0 / epsilon)
    return y


def unit_norm_backward(x, dy, int first, int last, dx, double epsilon=1e-12, owner=None):
    """Gradient of :func:`unit_norm_forward`: with r = 1 / ||x|| along the axes,
    ``dx = r * dy - x * r^3 * sum(dy * x)`` where r is below 1 / epsilon, else
    ``dx = dy / epsilon`` (the clipped scale is a constant).

    Args:
        x, first, last, epsilon: as in :func:`unit_norm_forward`. dy: x's shape.
        dx: x's shape, OUT; may be dy.
    """
    x, dy = aligned(x), aligned(dy)
    cdef int t = float_array(x, owner, "x")
    cdef Py_ssize_t outer = 0, K = 0, inner = 0
    _unit_layout(x, first, last, owner, &outer, &K, &inner)
    if not epsilon > 0:
        raise ValueError(f"{prefix(owner)}epsilon must be positive; received "
                         f"epsilon={epsilon}.")
    float_array_like(dy, t, owner, "dy")
    same_shape(dy, x, owner, "dy", "x")
    _output(dx, t, x, owner, "dx", "x", dy)
    _apart(dx, x, owner, "dx", "x")
    if outer * K * inner == 0:
        return dx
    if t == cnp.NPY_FLOAT:
        _unit_drive(<const float *>_data(x), <const float *>_data(dy), <float *>_data(dx),
                    outer, K, inner, 1.0 / epsilon)
    else:
        _unit_drive(<const double *>_data(x), <const double *>_data(dy), <double *>_data(dx),
                    outer, K, inner, 1.0 / epsilon)
    return dx
