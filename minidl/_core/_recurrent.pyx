# cython: language_level=3
"""Recurrent kernels: SimpleRNN, LSTM and GRU (reset_after) over whole sequences.

Layering: ``minidl.layers.recurrent`` owns every array (weights, the sequence buffers kept
for backpropagation through time, the state buffers) and calls :func:`forward` and
:func:`backward` once per batch; the time loop runs here, without the GIL. Every check lives
in the two wrappers, at the boundary; the loops then read raw pointers.

One forward pass (x: (N, T, F), k gates of U units, kU = k * U):
    G = x @ kernel                   one GEMM over all N * T steps, (N*T, F) x (F, kU)
    per step t:  G[:, t] += h @ recurrent_kernel        (GRU: into R, kept apart)
                 one fused pass per sample: bias, gate activations, state update, output
and backward (through time, last step first):
    per step t:  one fused pass per sample: gate gradients dG[:, t] from the state and
                 output gradients; dh = dG[:, t] @ recurrent_kernel^T
    d kernel = x^T @ dG, d recurrent = H^T @ dG, d x = dG @ kernel^T   (one GEMM each)
    d bias = column sums of dG, in row order

Layouts: G, dG and every (N, T, U) buffer are indexed by the *input* position t, so the
input projection and its gradients are single GEMMs whatever the direction; outputs of
``return_sequences`` are indexed by the step s (go_backwards: t = T - 1 - s), as Keras
returns them. Stored per t: G (activated gates: derivatives are taken from the outputs),
Hprev (the state read by the step), and for LSTM Cprev and AC = activation(c_new), for GRU
RH = h @ U_h + b_h (what the reset gate multiplied).

Gate orders are Keras': LSTM i, f, c, o (c = f * c + i * g; h = o * act(c)); GRU z, r, h
with reset_after=True: hh = act(x_h + b_xh + r * (h @ U_h + b_hh)), h = z * h + (1 - z) * hh.

Masks (uint8 (N, T)): a masked step leaves the states unchanged and outputs the previous
output (zeros before the first unmasked step), or zeros with ``zero_output_for_mask``.
Recurrent dropout multiplies the state by ``rmask`` (N, U) before the recurrent GEMM; the
multiplied states are kept in Hin for the recurrent kernel's gradient.

Activations fused here (derivative from the output alone): linear, relu, sigmoid, tanh,
hard_sigmoid (KINDS); float32 tanh/sigmoid are minidl's branch-free versions, the same bits
as the activation kernels. The layers run any other activation through the numpy reference
(minidl._ref.recurrent). In float32 with tanh and sigmoid (the default, and the training
case) the per-sample passes run in C, compiled per instruction set (csrc/recurrent.c, chosen
by the active kernel table like every per-ISA kernel), with the same operations as the loops
here, so the same bits under every architecture. Otherwise the loops here run, in two
compiled copies (fused tag types): one with tanh/sigmoid as constants, which vectorises, and
one for any kinds.

Gradients that fade through the steps are flushed to zero below 2^-100 (float32; 2^-900
for float64) before they reach the subnormal range, where arithmetic is ~100 times slower
(see _flush); the reference keeps them, a difference far below any tolerance.

Threads: the per-step passes split the batch rows over threads above PARALLEL_MIN elements
(rows are independent); the GEMMs give the same bits for any thread count; column sums run
serially in row order. So every result has the same bits for any thread count.
"""
from cython.parallel cimport prange
from libc.math cimport exp, fabs, fabsf, tanh
from libc.string cimport memcpy, memset

cimport numpy as cnp
import numpy as np

from minidl._core._arrays cimport data
from minidl._core._backend cimport dgemm, num_threads, sgemm
from minidl._core._exact_math cimport mdl_blend, mdl_blendf, mdl_sigmoidf, mdl_tanhf

cnp.import_array()

# The float32 gate passes with the default activations, compiled per instruction set
# (csrc/recurrent.c): the same operations as the loops below, so the same bits.
cdef extern from "minidl.h" nogil:
    void mdl_lstm_forward_row_f32(Py_ssize_t units, float *gates, const float *bias,
                                  float *c, float *ac, float *h)
    void mdl_lstm_backward_row_f32(Py_ssize_t units, const float *gates, const float *c_prev,
                                   const float *ac, const float *gy, const float *carry,
                                   float *dgates, float *dh, float *dc)
    void mdl_gru_forward_row_f32(Py_ssize_t units, float *gates, const float *bias,
                                 const float *rproj, const float *rbias, float *rh, float *h)
    void mdl_gru_backward_row_f32(Py_ssize_t units, const float *gates, const float *h_prev,
                                  const float *rh, const float *gy, const float *carry,
                                  float *dgates, float *drproj, float *dh)
    void mdl_simple_rnn_forward_row_f32(Py_ssize_t units, float *gates, const float *bias,
                                        float *h)
    void mdl_simple_rnn_backward_row_f32(Py_ssize_t units, const float *gates,
                                         const float *gy, const float *carry, float *dgates,
                                         float *dh)

ctypedef fused floating:
    float
    double

KINDS = ("linear", "relu", "sigmoid", "tanh", "hard_sigmoid")
CELLS = ("simple_rnn", "lstm", "gru")

cdef enum:
    A_LINEAR, A_RELU, A_SIGMOID, A_TANH, A_HARD_SIGMOID
    C_SIMPLE, C_LSTM, C_GRU
    PARALLEL_MIN_ELEMS = 32768

PARALLEL_MIN = PARALLEL_MIN_ELEMS

# The flush thresholds of _flush, as C constants (a module variable would be reloaded at
# every iteration of a loop that writes through a pointer, which blocks vectorisation).
cdef extern from *:
    """
    #define MDL_RNN_FLUSH_F32 0x1p-100f
    #define MDL_RNN_FLUSH_F64 0x1p-900
    """
    float FLUSH_F32 "MDL_RNN_FLUSH_F32"
    double FLUSH_F64 "MDL_RNN_FLUSH_F64"


# Tags that specialise the cell loops at compile time (fused types): with the default
# activations (tanh, sigmoid) the kinds are constants in their copy of each loop, so the
# compiler drops the kind tests and vectorises; any other kinds take the generic copy.
ctypedef struct TanhSigmoid:
    char unused

ctypedef struct AnyKinds:
    char unused

ctypedef fused kinds_t:
    TanhSigmoid
    AnyKinds


ctypedef struct Dims:
    Py_ssize_t n, t, f, u, ku
    int cell, act, ract, threads
    bint backwards, zero_out, seqs


cdef extern from *:
    """
    #define mdl_rnn_prefetch(p) __builtin_prefetch((p), 0, 3)
    """
    void prefetch "mdl_rnn_prefetch"(const void *p) noexcept nogil


cdef inline void _prefetch_rows(const void *base, Py_ssize_t rows, Py_ssize_t stride,
                                Py_ssize_t length) noexcept nogil:
    """Ask for the cache lines of `rows` rows of `length` bytes, `stride` bytes apart."""
    cdef const char *p = <const char *>base
    cdef Py_ssize_t r, o
    for r in range(rows):
        for o in range(0, length, 64):
            prefetch(p + r * stride + o)


cdef inline void _prefetch_step(const Dims *d, Py_ssize_t t, const floating *G,
                                const floating *Hprev, const floating *Cprev,
                                const floating *AC, const floating *RH) noexcept nogil:
    """Fetch the rows of position t that the next backward step's passes read, while this
    step's recurrent GEMM runs. A step's N rows lie T rows apart, each in another page,
    which the hardware prefetchers do not follow: without this the LSTM's backward passes
    spent most of their time waiting on memory. (Prefetching the rows the passes write,
    or the forward's, measured no faster: the prefetches then queue behind each other.)"""
    cdef Py_ssize_t T = d.t, U = d.u, KU = d.ku, N = d.n
    cdef Py_ssize_t gate_row = KU * sizeof(floating), state_row = U * sizeof(floating)
    _prefetch_rows(G + t * KU, N, T * gate_row, gate_row)
    if d.cell == C_LSTM:
        _prefetch_rows(Cprev + t * U, N, T * state_row, state_row)
        _prefetch_rows(AC + t * U, N, T * state_row, state_row)
    elif d.cell == C_GRU:
        _prefetch_rows(RH + t * U, N, T * state_row, state_row)
        _prefetch_rows(Hprev + t * U, N, T * state_row, state_row)


# ---- scalar math ----

cdef inline floating _sel(bint c, floating a, floating b) noexcept nogil:
    if floating is float:
        return mdl_blendf(c, a, b)
    else:
        return mdl_blend(c, a, b)


cdef inline floating _act(int kind, floating z) noexcept nogil:
    cdef floating e, h
    if kind == A_TANH:
        if floating is float:
            return mdl_tanhf(z)
        else:
            return tanh(z)
    if kind == A_SIGMOID:
        if floating is float:
            return mdl_sigmoidf(z)
        else:
            # As minidl's sigmoid kernel: only e^-|z| is evaluated.
            e = exp(-fabs(z))
            return (1 if z >= 0 else e) / (1 + e)
    if kind == A_RELU:
        return _sel(z > 0, z, <floating>0)
    if kind == A_HARD_SIGMOID:
        h = z / 6 + <floating>0.5
        h = _sel(h <= 0, <floating>0, h)
        return _sel(h >= 1, <floating>1, h)
    return z


cdef inline floating _dact(int kind, floating y) noexcept nogil:
    """f'(z) from y = f(z)."""
    if kind == A_TANH:
        return 1 - y * y
    if kind == A_SIGMOID:
        return y * (1 - y)
    if kind == A_RELU:
        return _sel(y > 0, <floating>1, <floating>0)
    if kind == A_HARD_SIGMOID:
        return _sel(y > 0 and y < 1, <floating>(1.0 / 6.0), <floating>0)
    return 1


cdef inline int _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                      Py_ssize_t rs_a, Py_ssize_t cs_a, const floating *b, Py_ssize_t rs_b,
                      Py_ssize_t cs_b, floating beta, floating *c, Py_ssize_t rs_c) noexcept nogil:
    if floating is float:
        return sgemm(m, n, k, 1, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, 1)
    else:
        return dgemm(m, n, k, 1, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, 1)


# ---- forward: one sample's step ----

# The cell loops below are split into passes that each write one array and read few others:
# a loop touching many pointers (which may alias, as far as the compiler knows) is left
# scalar, while these vectorise (checked with -fopt-info-vec). A row holds a few hundred
# values, so the extra passes stay in L1.

cdef inline void _lstm_forward(kinds_t *tag, int act, int ract, Py_ssize_t U, floating *g,
                               const floating *b, floating *cn, floating *ac,
                               floating *hn) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating *gi = g
    cdef floating *gf = g + U
    cdef floating *gc = g + 2 * U
    cdef floating *go = g + 3 * U
    if kinds_t is TanhSigmoid:
        act, ract = A_TANH, A_SIGMOID
    for j in range(U):
        gi[j] = _act(ract, gi[j] + b[j])
    for j in range(U):
        gf[j] = _act(ract, gf[j] + b[U + j])
    for j in range(U):
        gc[j] = _act(act, gc[j] + b[2 * U + j])
    for j in range(U):
        go[j] = _act(ract, go[j] + b[3 * U + j])
    for j in range(U):
        cn[j] = gf[j] * cn[j] + gi[j] * gc[j]
    for j in range(U):
        ac[j] = _act(act, cn[j])
    for j in range(U):
        hn[j] = go[j] * ac[j]


cdef inline void _gru_forward(kinds_t *tag, int act, int ract, Py_ssize_t U, floating *g,
                              const floating *b, const floating *r, const floating *b_rec,
                              floating *rh, floating *hn) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating *gz = g
    cdef floating *gr = g + U
    cdef floating *gh = g + 2 * U
    cdef const floating *rz = r
    cdef const floating *rr = r + U
    cdef const floating *bz = b_rec
    cdef const floating *br = b_rec + U
    if kinds_t is TanhSigmoid:
        act, ract = A_TANH, A_SIGMOID
    for j in range(U):
        rh[j] = r[2 * U + j] + b_rec[2 * U + j]
    for j in range(U):
        gz[j] = _act(ract, (gz[j] + b[j]) + (rz[j] + bz[j]))
    for j in range(U):
        gr[j] = _act(ract, (gr[j] + b[U + j]) + (rr[j] + br[j]))
    for j in range(U):
        gh[j] = _act(act, (gh[j] + b[2 * U + j]) + gr[j] * rh[j])
    for j in range(U):
        hn[j] = gz[j] * hn[j] + (1 - gz[j]) * gh[j]


cdef inline void _simple_forward(kinds_t *tag, int act, Py_ssize_t U, floating *g,
                                 const floating *b, floating *hn) noexcept nogil:
    cdef Py_ssize_t j
    if kinds_t is TanhSigmoid:
        act = A_TANH
    for j in range(U):
        g[j] = _act(act, g[j] + b[j])
    memcpy(hn, g, U * sizeof(floating))


cdef inline void _forward_row(const Dims *d, Py_ssize_t n, Py_ssize_t s, Py_ssize_t t,
                              const floating *b, const floating *b_rec,
                              const unsigned char *mask, floating *G, const floating *R,
                              floating *AC, floating *RH, floating *h, floating *c,
                              floating *out) noexcept nogil:
    cdef Py_ssize_t U = d.u, T = d.t
    cdef Py_ssize_t row = n * T + t
    cdef floating *g = G + row * d.ku
    cdef floating *hn = h + n * U
    cdef floating *y
    cdef bint on = mask == NULL or mask[row] != 0
    cdef TanhSigmoid usual_tag
    cdef AnyKinds any_tag
    cdef bint usual = d.act == A_TANH and d.ract == A_SIGMOID
    cdef bint compiled = False
    if floating is float:
        # float32 with tanh and sigmoid: the per-architecture C versions (csrc/recurrent.c).
        if on and (usual or (d.cell == C_SIMPLE and d.act == A_TANH)):
            compiled = True
            if d.cell == C_LSTM:
                mdl_lstm_forward_row_f32(U, g, b, c + n * U, AC + row * U, hn)
            elif d.cell == C_GRU:
                mdl_gru_forward_row_f32(U, g, b, R + n * d.ku, b_rec, RH + row * U, hn)
            else:
                mdl_simple_rnn_forward_row_f32(U, g, b, hn)
    if on and not compiled:
        if d.cell == C_LSTM:
            if usual:
                _lstm_forward(&usual_tag, d.act, d.ract, U, g, b, c + n * U, AC + row * U, hn)
            else:
                _lstm_forward(&any_tag, d.act, d.ract, U, g, b, c + n * U, AC + row * U, hn)
        elif d.cell == C_GRU:
            if usual:
                _gru_forward(&usual_tag, d.act, d.ract, U, g, b, R + n * d.ku, b_rec,
                             RH + row * U, hn)
            else:
                _gru_forward(&any_tag, d.act, d.ract, U, g, b, R + n * d.ku, b_rec,
                             RH + row * U, hn)
        elif d.act == A_TANH:
            _simple_forward(&usual_tag, d.act, U, g, b, hn)
        else:
            _simple_forward(&any_tag, d.act, U, g, b, hn)
    # The output: the new state, or for a masked step the previous output (or zeros).
    if d.seqs:
        y = out + (n * T + s) * U
        if on:
            memcpy(y, hn, U * sizeof(floating))
        elif d.zero_out or s == 0:
            memset(y, 0, U * sizeof(floating))
        else:
            memcpy(y, y - U, U * sizeof(floating))
    else:
        y = out + n * U
        if on:
            memcpy(y, hn, U * sizeof(floating))
        elif d.zero_out:
            memset(y, 0, U * sizeof(floating))


cdef int _forward(const Dims *d, const floating *x, const floating *W, const floating *Uw,
                  const floating *b, const floating *b_rec, const unsigned char *mask,
                  const floating *rmask, floating *G, floating *Hprev, floating *Cprev,
                  floating *AC, floating *RH, floating *Hin, floating *R, floating *h,
                  floating *c, floating *out) noexcept nogil:
    cdef Py_ssize_t N = d.n, T = d.t, U = d.u, KU = d.ku, s, t, n, j
    cdef const floating *src
    cdef floating *hin
    if _gemm(N * T, KU, d.f, x, d.f, 1, W, KU, 1, <floating>0, G, KU) != 0:
        return -1
    if not d.seqs:
        memset(out, 0, N * U * sizeof(floating))
    for s in range(T):
        t = T - 1 - s if d.backwards else s
        for n in range(N):
            memcpy(Hprev + (n * T + t) * U, h + n * U, U * sizeof(floating))
            if d.cell == C_LSTM:
                memcpy(Cprev + (n * T + t) * U, c + n * U, U * sizeof(floating))
            if rmask != NULL:
                hin = Hin + (n * T + t) * U
                for j in range(U):
                    hin[j] = h[n * U + j] * rmask[n * U + j]
        src = (Hin if rmask != NULL else Hprev) + t * U
        if d.cell == C_GRU:
            if _gemm(N, KU, U, src, T * U, 1, Uw, KU, 1, <floating>0, R, KU) != 0:
                return -1
        elif _gemm(N, KU, U, src, T * U, 1, Uw, KU, 1, <floating>1, G + t * KU, T * KU) != 0:
            return -1
        if d.threads > 1:
            for n in prange(N, num_threads=d.threads, schedule="static"):
                _forward_row(d, n, s, t, b, b_rec, mask, G, R, AC, RH, h, c, out)
        else:
            for n in range(N):
                _forward_row(d, n, s, t, b, b_rec, mask, G, R, AC, RH, h, c, out)
    return 0


# ---- backward: one sample's step ----

cdef inline floating _flush(floating x) noexcept nogil:
    """x, or 0 when |x| < 2^-100 (float32; 2^-900 for float64). Gradients that fade
    through many steps (a GRU's z * dh, an LSTM's f * dc) would otherwise reach the
    subnormal range, directly or in the products of the next GEMM, where each operation
    costs ~100 times more (a GRU's backward pass ran 3x slower). Such values are
    negligible next to any gradient they join."""
    if floating is float:
        return _sel(fabsf(x) < FLUSH_F32, <floating>0, x)
    else:
        return _sel(fabs(x) < FLUSH_F64, <floating>0, x)


cdef inline void _state_grad(Py_ssize_t U, floating *dhn, const floating *oc,
                             const floating *gy) noexcept nogil:
    """dhn = dhn + oc (+ gy): the gradient of the step's new state, from the next step,
    from the outputs of masked steps after it, and from its own output."""
    cdef Py_ssize_t j
    if gy != NULL:
        for j in range(U):
            dhn[j] = _flush((dhn[j] + oc[j]) + gy[j])
    else:
        for j in range(U):
            dhn[j] = _flush(dhn[j] + oc[j])


cdef inline void _lstm_backward(kinds_t *tag, int act, int ract, Py_ssize_t U,
                                const floating *g,
                                const floating *cp, const floating *ac, const floating *gy,
                                floating *dg, floating *dhn, floating *dcn,
                                const floating *oc) noexcept nogil:
    cdef Py_ssize_t j
    cdef const floating *gi = g
    cdef const floating *gf = g + U
    cdef const floating *gc = g + 2 * U
    cdef const floating *go = g + 3 * U
    cdef floating *dgi = dg
    cdef floating *dgf = dg + U
    cdef floating *dgc = dg + 2 * U
    cdef floating *dgo = dg + 3 * U
    if kinds_t is TanhSigmoid:
        act, ract = A_TANH, A_SIGMOID
    _state_grad(U, dhn, oc, gy)
    for j in range(U):
        dcn[j] = _flush(dcn[j] + dhn[j] * go[j] * _dact(act, ac[j]))
    for j in range(U):
        dgo[j] = _flush(dhn[j] * ac[j] * _dact(ract, go[j]))
    for j in range(U):
        dgi[j] = _flush(dcn[j] * gc[j] * _dact(ract, gi[j]))
    for j in range(U):
        dgf[j] = _flush(dcn[j] * cp[j] * _dact(ract, gf[j]))
    for j in range(U):
        dgc[j] = _flush(dcn[j] * gi[j] * _dact(act, gc[j]))
    for j in range(U):
        dcn[j] = _flush(dcn[j] * gf[j])
    memset(dhn, 0, U * sizeof(floating))


cdef inline void _gru_backward(kinds_t *tag, int act, int ract, Py_ssize_t U,
                               const floating *g,
                               const floating *hp, const floating *rh, const floating *gy,
                               floating *dg, floating *dr, floating *dhn,
                               const floating *oc) noexcept nogil:
    cdef Py_ssize_t j
    cdef const floating *z = g
    cdef const floating *rr = g + U
    cdef const floating *hh = g + 2 * U
    cdef floating *dgz = dg
    cdef floating *dgr = dg + U
    cdef floating *dgh = dg + 2 * U
    cdef floating *drh = dr + 2 * U
    if kinds_t is TanhSigmoid:
        act, ract = A_TANH, A_SIGMOID
    _state_grad(U, dhn, oc, gy)
    for j in range(U):
        dgh[j] = _flush(dhn[j] * (1 - z[j]) * _dact(act, hh[j]))
    for j in range(U):
        dgz[j] = _flush(dhn[j] * (hp[j] - hh[j]) * _dact(ract, z[j]))
    for j in range(U):
        dgr[j] = _flush(dgh[j] * rh[j] * _dact(ract, rr[j]))
    memcpy(dr, dg, 2 * U * sizeof(floating))
    for j in range(U):
        drh[j] = _flush(dgh[j] * rr[j])
    for j in range(U):
        dhn[j] = _flush(dhn[j] * z[j])


cdef inline void _simple_backward(kinds_t *tag, int act, Py_ssize_t U, const floating *g,
                                  const floating *gy, floating *dg, floating *dhn,
                                  const floating *oc) noexcept nogil:
    cdef Py_ssize_t j
    if kinds_t is TanhSigmoid:
        act = A_TANH
    _state_grad(U, dhn, oc, gy)
    for j in range(U):
        dg[j] = _flush(dhn[j] * _dact(act, g[j]))
    memset(dhn, 0, U * sizeof(floating))


cdef inline void _backward_row(const Dims *d, Py_ssize_t n, Py_ssize_t s, Py_ssize_t t,
                               const unsigned char *mask, const floating *G,
                               const floating *Hprev, const floating *Cprev,
                               const floating *AC, const floating *RH, const floating *dY,
                               floating *dG, floating *dR, floating *dh, floating *dc,
                               floating *carry) noexcept nogil:
    cdef Py_ssize_t U = d.u, T = d.t, KU = d.ku, j
    cdef Py_ssize_t row = n * T + t
    cdef const floating *g = G + row * KU
    cdef const floating *gy = NULL
    cdef floating *dg = dG + row * KU
    cdef floating *dhn = dh + n * U
    cdef floating *oc = carry + n * U
    cdef TanhSigmoid usual_tag
    cdef AnyKinds any_tag
    cdef bint usual = d.act == A_TANH and d.ract == A_SIGMOID
    if d.seqs:
        gy = dY + (n * T + s) * U
    elif s == T - 1:
        gy = dY + n * U
    if mask != NULL and mask[row] == 0:
        # The states pass through; the output was the previous output (or zeros).
        if d.zero_out:
            memset(oc, 0, U * sizeof(floating))
        elif gy != NULL:
            for j in range(U):
                oc[j] = oc[j] + gy[j]
        memset(dg, 0, KU * sizeof(floating))
        if d.cell == C_GRU:
            memset(dR + row * KU, 0, KU * sizeof(floating))
        return
    if floating is float:
        # float32 with tanh and sigmoid: the per-architecture C versions (csrc/recurrent.c).
        if usual or (d.cell == C_SIMPLE and d.act == A_TANH):
            if d.cell == C_LSTM:
                mdl_lstm_backward_row_f32(U, g, Cprev + row * U, AC + row * U, gy, oc, dg,
                                          dhn, dc + n * U)
            elif d.cell == C_GRU:
                mdl_gru_backward_row_f32(U, g, Hprev + row * U, RH + row * U, gy, oc, dg,
                                         dR + row * KU, dhn)
            else:
                mdl_simple_rnn_backward_row_f32(U, g, gy, oc, dg, dhn)
            memset(oc, 0, U * sizeof(floating))
            return
    if d.cell == C_LSTM:
        if usual:
            _lstm_backward(&usual_tag, d.act, d.ract, U, g, Cprev + row * U, AC + row * U, gy, dg,
                           dhn, dc + n * U, oc)
        else:
            _lstm_backward(&any_tag, d.act, d.ract, U, g, Cprev + row * U, AC + row * U, gy, dg, dhn,
                           dc + n * U, oc)
    elif d.cell == C_GRU:
        if usual:
            _gru_backward(&usual_tag, d.act, d.ract, U, g, Hprev + row * U, RH + row * U, gy, dg,
                          dR + row * KU, dhn, oc)
        else:
            _gru_backward(&any_tag, d.act, d.ract, U, g, Hprev + row * U, RH + row * U, gy, dg,
                          dR + row * KU, dhn, oc)
    elif d.act == A_TANH:
        _simple_backward(&usual_tag, d.act, U, g, gy, dg, dhn, oc)
    else:
        _simple_backward(&any_tag, d.act, U, g, gy, dg, dhn, oc)
    memset(oc, 0, U * sizeof(floating))


cdef int _backward(const Dims *d, const floating *x, const floating *W, const floating *Uw,
                   const unsigned char *mask, const floating *rmask, const floating *G,
                   const floating *Hprev, const floating *Cprev, const floating *AC,
                   const floating *RH, const floating *Hin, const floating *dY, floating *dG,
                   floating *dR, floating *dh, floating *dc, floating *carry, floating *tmp,
                   floating *dx, floating *dW, floating *dU, floating *db) noexcept nogil:
    cdef Py_ssize_t N = d.n, T = d.t, U = d.u, KU = d.ku, s, t, n, j, i
    cdef const floating *rows
    cdef floating *acc
    memset(carry, 0, N * U * sizeof(floating))
    for s in range(T - 1, -1, -1):
        t = T - 1 - s if d.backwards else s
        if d.threads > 1:
            for n in prange(N, num_threads=d.threads, schedule="static"):
                _backward_row(d, n, s, t, mask, G, Hprev, Cprev, AC, RH, dY, dG, dR, dh, dc,
                              carry)
        else:
            for n in range(N):
                _backward_row(d, n, s, t, mask, G, Hprev, Cprev, AC, RH, dY, dG, dR, dh, dc,
                              carry)
        if s > 0:
            _prefetch_step(d, T - s if d.backwards else s - 1, G, Hprev, Cprev, AC, RH)
        # dh += dR[:, t] @ recurrent_kernel^T (masked rows of dR are zero), through the
        # recurrent dropout mask when there is one.
        if rmask == NULL:
            if _gemm(N, U, KU, dR + t * KU, T * KU, 1, Uw, 1, KU, <floating>1, dh, U) != 0:
                return -1
        else:
            if _gemm(N, U, KU, dR + t * KU, T * KU, 1, Uw, 1, KU, <floating>0, tmp, U) != 0:
                return -1
            for i in range(N * U):
                dh[i] = dh[i] + tmp[i] * rmask[i]
    # The weight gradients and the input gradient over all steps at once.
    if _gemm(d.f, KU, N * T, x, 1, d.f, dG, KU, 1, <floating>0, dW, KU) != 0:
        return -1
    rows = Hin if rmask != NULL else Hprev
    if _gemm(U, KU, N * T, rows, 1, U, dR, KU, 1, <floating>0, dU, KU) != 0:
        return -1
    memset(db, 0, (2 * KU if d.cell == C_GRU else KU) * sizeof(floating))
    for i in range(N * T):
        for j in range(KU):
            db[j] = db[j] + dG[i * KU + j]
    if d.cell == C_GRU:
        acc = db + KU
        for i in range(N * T):
            for j in range(KU):
                acc[j] = acc[j] + dR[i * KU + j]
    if dx != NULL:
        if _gemm(N * T, d.f, KU, dG, KU, 1, W, 1, KU, <floating>0, dx, d.f) != 0:
            return -1
    return 0


# ---- the Python boundary ----

cdef int _check(object a, object dtype, tuple shape, str name) except -1:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"recurrent kernel: {name} must be a numpy.ndarray; received "
                        f"{type(a).__name__}.")
    if a.dtype != dtype:
        raise TypeError(f"recurrent kernel: {name} must have dtype {dtype}; received "
                        f"{a.dtype}.")
    if a.shape != shape:
        raise ValueError(f"recurrent kernel: {name} must have shape {shape}; received "
                         f"{a.shape}.")
    if not (a.flags.c_contiguous and a.flags.aligned):
        raise ValueError(f"recurrent kernel: {name} must be C-contiguous and aligned.")
    return 0


cdef int _out(object a, object dtype, tuple shape, str name) except -1:
    _check(a, dtype, shape, name)
    if not a.flags.writeable:
        raise ValueError(f"recurrent kernel: {name} is read-only; pass a writeable array.")
    return 0


cdef char *_opt(object a, object dtype, tuple shape, str name, bint out) except? NULL:
    if a is None:
        return NULL
    if out:
        _out(a, dtype, shape, name)
    else:
        _check(a, dtype, shape, name)
    return data(a)


cdef int _dims(Dims *d, str cell, x, recurrent, str activation, str recurrent_activation,
               bint go_backwards, bint zero_output_for_mask, bint return_sequences) except -1:
    if cell not in CELLS:
        raise ValueError(f"recurrent kernel: cell must be one of {CELLS}; received {cell!r}.")
    for name, kind in (("activation", activation), ("recurrent_activation",
                                                    recurrent_activation)):
        if kind not in KINDS:
            raise ValueError(f"recurrent kernel: {name} must be one of {KINDS}; received "
                             f"{kind!r}.")
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"recurrent kernel: x must be a 3-D array (batch, timesteps, "
                         f"features); received {getattr(x, 'shape', type(x).__name__)}.")
    if not isinstance(recurrent, np.ndarray) or recurrent.ndim != 2:
        raise ValueError("recurrent kernel: recurrent_kernel must be a 2-D array.")
    d.cell = C_SIMPLE + CELLS.index(cell)
    d.act = KINDS.index(activation)
    d.ract = KINDS.index(recurrent_activation)
    d.n, d.t, d.f = x.shape[0], x.shape[1], x.shape[2]
    d.u = recurrent.shape[0]
    d.ku = d.u * (1 if cell == "simple_rnn" else 4 if cell == "lstm" else 3)
    if d.t < 1 or d.u < 1 or d.f < 1:
        raise ValueError(f"recurrent kernel: need at least one timestep, feature and unit; "
                         f"received x of shape {x.shape}, {d.u} units.")
    d.backwards = go_backwards
    d.zero_out = zero_output_for_mask
    d.seqs = return_sequences
    d.threads = num_threads() if d.n > 1 and d.n * d.ku >= PARALLEL_MIN_ELEMS else 1
    return 0


def forward(str cell, x, kernel, recurrent_kernel, bias, h, c, mask, rmask, G, Hprev, Cprev,
            AC, RH, Hin, R, out, *, str activation="tanh", str recurrent_activation="sigmoid",
            bint go_backwards=False, bint zero_output_for_mask=False,
            bint return_sequences=False):
    """Run a recurrent layer over whole sequences; see the module docstring.

    Args:
        cell: 'simple_rnn', 'lstm' or 'gru' (reset_after=True).
        x: (N, T, F) input, float32 or float64 (the dtype of every float array below).
        kernel: (F, kU). recurrent_kernel: (U, kU).
        bias: (kU,), or for 'gru' (2, kU) (input bias, recurrent bias); zeros for none.
        h: (N, U) the initial state IN, the final state OUT. c: (N, U) likewise for 'lstm'
            (None otherwise).
        mask: None or uint8 (N, T), 0 at masked steps. rmask: None or (N, U) recurrent
            dropout multipliers.
        G: (N, T, kU) OUT: activated gates. Hprev: (N, T, U) OUT: the state each step read.
        Cprev, AC: (N, T, U) OUT for 'lstm' (else None). RH: (N, T, U) OUT for 'gru'.
        Hin: (N, T, U) OUT with rmask (else None). R: (N, kU) scratch for 'gru'.
        out: OUT: (N, T, U) outputs in step order with return_sequences, else (N, U).
        activation, recurrent_activation: names in KINDS.
    """
    cdef Dims d
    cdef object N, T, F, U, KU
    _dims(&d, cell, x, recurrent_kernel, activation, recurrent_activation, go_backwards,
          zero_output_for_mask, return_sequences)
    dt = x.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"recurrent kernel: x must be float32 or float64; received {dt}.")
    N, T, F, U, KU = d.n, d.t, d.f, d.u, d.ku
    _check(x, dt, (N, T, F), "x")
    _check(kernel, dt, (F, KU), "kernel")
    _check(recurrent_kernel, dt, (U, KU), "recurrent_kernel")
    _check(bias, dt, (2, KU) if d.cell == C_GRU else (KU,), "bias")
    _out(h, dt, (N, U), "h")
    _out(G, dt, (N, T, KU), "G")
    _out(Hprev, dt, (N, T, U), "Hprev")
    _out(out, dt, (N, T, U) if return_sequences else (N, U), "out")
    cdef char *p_c = _opt(c, dt, (N, U), "c", True)
    cdef char *p_cprev = _opt(Cprev, dt, (N, T, U), "Cprev", True)
    cdef char *p_ac = _opt(AC, dt, (N, T, U), "AC", True)
    cdef char *p_rh = _opt(RH, dt, (N, T, U), "RH", True)
    cdef char *p_r = _opt(R, dt, (N, KU), "R", True)
    cdef char *p_hin = _opt(Hin, dt, (N, T, U), "Hin", True)
    cdef char *p_rmask = _opt(rmask, dt, (N, U), "rmask", False)
    cdef char *p_mask = _opt(mask, np.dtype(np.uint8), (N, T), "mask", False)
    if d.cell == C_LSTM and (p_c == NULL or p_cprev == NULL or p_ac == NULL):
        raise ValueError("recurrent kernel: 'lstm' needs c, Cprev and AC.")
    if d.cell == C_GRU and (p_rh == NULL or p_r == NULL):
        raise ValueError("recurrent kernel: 'gru' needs RH and R.")
    if (p_rmask == NULL) != (p_hin == NULL):
        raise ValueError("recurrent kernel: rmask and Hin go together.")
    cdef char *p_x = data(x)
    cdef char *p_w = data(kernel)
    cdef char *p_u = data(recurrent_kernel)
    cdef char *p_b = data(bias)
    cdef char *p_h = data(h)
    cdef char *p_g = data(G)
    cdef char *p_hprev = data(Hprev)
    cdef char *p_out = data(out)
    cdef Py_ssize_t rec_offset = KU if d.cell == C_GRU else 0
    cdef int status
    if dt == np.float32:
        with nogil:
            status = _forward[float](
                &d, <float *>p_x, <float *>p_w, <float *>p_u, <float *>p_b,
                <float *>p_b + rec_offset, <unsigned char *>p_mask, <float *>p_rmask,
                <float *>p_g, <float *>p_hprev, <float *>p_cprev, <float *>p_ac,
                <float *>p_rh, <float *>p_hin, <float *>p_r, <float *>p_h, <float *>p_c,
                <float *>p_out)
    else:
        with nogil:
            status = _forward[double](
                &d, <double *>p_x, <double *>p_w, <double *>p_u, <double *>p_b,
                <double *>p_b + rec_offset, <unsigned char *>p_mask, <double *>p_rmask,
                <double *>p_g, <double *>p_hprev, <double *>p_cprev, <double *>p_ac,
                <double *>p_rh, <double *>p_hin, <double *>p_r, <double *>p_h,
                <double *>p_c, <double *>p_out)
    if status != 0:
        raise MemoryError("recurrent kernel: out of memory for the GEMM packing buffers.")


def backward(str cell, x, kernel, recurrent_kernel, mask, rmask, G, Hprev, Cprev, AC, RH,
             Hin, dY, dG, dR, dh, dc, carry, tmp, dx, d_kernel, d_recurrent, d_bias, *,
             str activation="tanh", str recurrent_activation="sigmoid",
             bint go_backwards=False, bint zero_output_for_mask=False,
             bint return_sequences=False):
    """Backpropagation through time after :func:`forward` with the same arguments.

    Args:
        x, kernel, recurrent_kernel, mask, rmask, G, Hprev, Cprev, AC, RH, Hin: as given to
            (and filled by) forward.
        dY: the output gradient, shaped like forward's ``out``.
        dG: (N, T, kU) OUT: pre-activation gradients. dR: (N, T, kU) OUT for 'gru' (the
            gradient of h @ recurrent_kernel; for the other cells pass dG itself).
        dh: (N, U) IN: gradient of the final state; OUT: gradient of the initial state.
        dc: (N, U) likewise for 'lstm' (None otherwise).
        carry: (N, U) scratch. tmp: (N, U) scratch with rmask (else None).
        dx: (N, T, F) OUT, or None. d_kernel, d_recurrent: OUT, shaped as the weights.
        d_bias: OUT, shaped as the bias.
    """
    cdef Dims d
    cdef object N, T, F, U, KU
    _dims(&d, cell, x, recurrent_kernel, activation, recurrent_activation, go_backwards,
          zero_output_for_mask, return_sequences)
    dt = x.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"recurrent kernel: x must be float32 or float64; received {dt}.")
    N, T, F, U, KU = d.n, d.t, d.f, d.u, d.ku
    _check(x, dt, (N, T, F), "x")
    _check(kernel, dt, (F, KU), "kernel")
    _check(recurrent_kernel, dt, (U, KU), "recurrent_kernel")
    _check(G, dt, (N, T, KU), "G")
    _check(Hprev, dt, (N, T, U), "Hprev")
    _check(dY, dt, (N, T, U) if return_sequences else (N, U), "dY")
    _out(dG, dt, (N, T, KU), "dG")
    _out(dR, dt, (N, T, KU), "dR")
    if d.cell == C_GRU and dR is dG:
        raise ValueError("recurrent kernel: 'gru' needs a dR apart from dG.")
    _out(dh, dt, (N, U), "dh")
    _out(carry, dt, (N, U), "carry")
    _out(d_kernel, dt, (F, KU), "d_kernel")
    _out(d_recurrent, dt, (U, KU), "d_recurrent")
    _out(d_bias, dt, (2, KU) if d.cell == C_GRU else (KU,), "d_bias")
    cdef char *p_dc = _opt(dc, dt, (N, U), "dc", True)
    cdef char *p_cprev = _opt(Cprev, dt, (N, T, U), "Cprev", False)
    cdef char *p_ac = _opt(AC, dt, (N, T, U), "AC", False)
    cdef char *p_rh = _opt(RH, dt, (N, T, U), "RH", False)
    cdef char *p_hin = _opt(Hin, dt, (N, T, U), "Hin", False)
    cdef char *p_tmp = _opt(tmp, dt, (N, U), "tmp", True)
    cdef char *p_rmask = _opt(rmask, dt, (N, U), "rmask", False)
    cdef char *p_mask = _opt(mask, np.dtype(np.uint8), (N, T), "mask", False)
    cdef char *p_dx = _opt(dx, dt, (N, T, F), "dx", True)
    if d.cell == C_LSTM and (p_dc == NULL or p_cprev == NULL or p_ac == NULL):
        raise ValueError("recurrent kernel: 'lstm' needs dc, Cprev and AC.")
    if d.cell == C_GRU and p_rh == NULL:
        raise ValueError("recurrent kernel: 'gru' needs RH.")
    if p_rmask != NULL and (p_hin == NULL or p_tmp == NULL):
        raise ValueError("recurrent kernel: rmask needs Hin and tmp.")
    cdef char *p_x = data(x)
    cdef char *p_w = data(kernel)
    cdef char *p_u = data(recurrent_kernel)
    cdef char *p_g = data(G)
    cdef char *p_hprev = data(Hprev)
    cdef char *p_dy = data(dY)
    cdef char *p_dg = data(dG)
    cdef char *p_dr = data(dR)
    cdef char *p_dh = data(dh)
    cdef char *p_carry = data(carry)
    cdef char *p_dw = data(d_kernel)
    cdef char *p_du = data(d_recurrent)
    cdef char *p_db = data(d_bias)
    cdef int status
    if dt == np.float32:
        with nogil:
            status = _backward[float](
                &d, <float *>p_x, <float *>p_w, <float *>p_u, <unsigned char *>p_mask,
                <float *>p_rmask, <float *>p_g, <float *>p_hprev, <float *>p_cprev,
                <float *>p_ac, <float *>p_rh, <float *>p_hin, <float *>p_dy, <float *>p_dg,
                <float *>p_dr, <float *>p_dh, <float *>p_dc, <float *>p_carry,
                <float *>p_tmp, <float *>p_dx, <float *>p_dw, <float *>p_du, <float *>p_db)
    else:
        with nogil:
            status = _backward[double](
                &d, <double *>p_x, <double *>p_w, <double *>p_u, <unsigned char *>p_mask,
                <double *>p_rmask, <double *>p_g, <double *>p_hprev, <double *>p_cprev,
                <double *>p_ac, <double *>p_rh, <double *>p_hin, <double *>p_dy,
                <double *>p_dg, <double *>p_dr, <double *>p_dh, <double *>p_dc,
                <double *>p_carry, <double *>p_tmp, <double *>p_dx, <double *>p_dw,
                <double *>p_du, <double *>p_db)
    if status != 0:
        raise MemoryError("recurrent kernel: out of memory for the GEMM packing buffers.")
