# cython: language_level=3
"""Loss kernels: value and gradient of every loss in one fused pass over (y_true, y_pred).

Layering: ``minidl.losses`` turns targets, sample weights and the reduction into what these
kernels take: 2-D C-contiguous (rows, classes) arrays (or 1-D int labels), an optional
per-row weight ``w[r]`` and one scalar ``scale``. Each kernel returns ``sum_r w[r] * L[r]``
(``L[r]`` the per-sample loss, a mean or sum over the last axis as in Keras) and, when
``grad`` is given, writes ``grad[r] = scale * w[r] * dL[r]/dy_pred[r]``; the Python layer
multiplies the sum by the same ``scale``. ``row_loss``, when given, receives ``L[r]``.

One driver serves every loss: it cuts the rows into fixed chunks (their size depends on the
shape only), runs chunks in parallel above ``PARALLEL_MIN`` elements, keeps one partial sum per
chunk and adds the partials in chunk order, so the result has the same bits for any thread
count. A per-row function, switched on the loss kind once per row, does the math. Sparse labels
are checked in the kernel: an out-of-range label zeroes its row and is reported back as the
first bad row, never used as an index.

Probabilities are clipped to [epsilon, 1 - epsilon] as Keras does (and, for categorical
crossentropy, first normalised by their row sum); where the clip is active the gradient is
zero. The from_logits paths use log-sum-exp and log1p forms that stay finite for any finite
logits. The fused softmax/sigmoid kernels take the probabilities an output layer computed and
report Keras' clipped loss, but return the exact gradient with respect to the logits.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf, fabs, log, log1p, log1pf, logf
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

from minidl._core._backend cimport num_threads

ctypedef fused floating:
    float
    double

ctypedef fused label_t:
    int32_t
    int64_t

# Below PARALLEL_MIN elements the kernels never open a parallel region. Chunks hold
# CHUNK_ELEMS elements in whole rows: fixed, so partial sums never depend on the thread count.
cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 4096

PARALLEL_MIN = PARALLEL_MIN_ELEMS

cdef enum:
    L_MSE, L_MAE, L_HUBER, L_BCE, L_BCE_LOGITS, L_CCE, L_CCE_LOGITS, L_SCCE, L_SCCE_LOGITS,
    L_SOFTMAX_CCE, L_SOFTMAX_SCCE, L_SIGMOID_BCE

ctypedef struct Args:
    int kind
    double delta          # Huber
    double smoothing      # label smoothing
    double epsilon        # probability clip
    int64_t ignore_class
    bint has_ignore


# ---- scalar helpers in the precision of the data ----

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)

cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)

cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline floating _sigmoid(floating x) noexcept nogil:
    cdef floating e
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)

cdef inline floating _clip(floating x, floating lo, floating hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


# ---- per-row losses: return L (double), write g = gs * dL/dp when g != NULL ----

cdef double _regression_row(int kind, double delta, const floating *t, const floating *p,
                            floating *g, double gs, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating e, ae, d = <floating>delta, c = <floating>(gs / n)
    for j in range(n):
        e = p[j] - t[j]
        if kind == L_MSE:
            s += e * e
            if g != NULL:
                g[j] = c * 2 * e
        elif kind == L_MAE:
            s += fabs(e)
            if g != NULL:
                g[j] = c if e > 0 else (-c if e < 0 else 0)
        else:
            ae = e if e >= 0 else -e
            if ae <= d:
                s += <floating>0.5 * e * e
                if g != NULL:
                    g[j] = c * e
            else:
                s += d * ae - <floating>0.5 * d * d
                if g != NULL:
                    g[j] = c * d if e > 0 else -c * d
    return s / n


cdef double _binary_row(int kind, const Args *a, const floating *t, const floating *p,
                        floating *g, double gs, Py_ssize_t n) noexcept nogil:
    # Keras: mean over the row of -(t log q + (1 - t) log(1 - q)), q = clip(p), labels
    # smoothed towards 0.5.
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating x, q, tt, c = <floating>(gs / n)
    cdef floating keep = <floating>(1 - a.smoothing), half = <floating>(0.5 * a.smoothing)
    cdef floating lo = <floating>a.epsilon, hi = <floating>(1 - a.epsilon)
    for j in range(n):
        tt = t[j] * keep + half
        x = p[j]
        if kind == L_BCE_LOGITS:
            s += (x if x > 0 else 0) - x * tt + _log1p(_exp(-(x if x >= 0 else -x)))
            if g != NULL:
                g[j] = c * (_sigmoid(x) - tt)
        else:
            q = _clip(x, lo, hi)
            s -= tt * _log(q) + (1 - tt) * _log(1 - q)
            if g == NULL:
                continue
            if kind == L_SIGMOID_BCE:
                g[j] = c * (x - tt)
            elif x >= lo and x <= hi:
                g[j] = c * (q - tt) / (q * (1 - q))
            else:
                g[j] = 0
    return s / n


cdef double _categorical_row(int kind, const Args *a, const floating *t, int64_t label,
                             const floating *p, floating *g, double gs,
                             Py_ssize_t n) noexcept nogil:
    # Dense targets t (smoothed towards 1/n) or, for the sparse kinds, the class ``label``.
    cdef Py_ssize_t j
    cdef bint sparse = kind == L_SCCE or kind == L_SCCE_LOGITS or kind == L_SOFTMAX_SCCE
    cdef floating keep = <floating>(1 - a.smoothing), add = <floating>(a.smoothing / n)
    cdef floating lo = <floating>a.epsilon, hi = <floating>(1 - a.epsilon)
    cdef floating tt, q, m, sf, e, gsf = <floating>gs
    cdef double s = 0, loss = 0, tsum = 0, inside = 0, lse
    if kind == L_CCE_LOGITS or kind == L_SCCE_LOGITS:
        # L = sum_k t_k (lse - z_k); dL/dz_j = softmax_j * sum(t) - t_j.
        m = p[0]
        for j in range(1, n):
            if p[j] > m:
                m = p[j]
        for j in range(n):
            e = _exp(p[j] - m)
            s += e
            if g != NULL:
                g[j] = e        # kept for the gradient below
        lse = m + log(s)
        if sparse:
            loss = lse - p[label]
            tsum = 1
        else:
            for j in range(n):
                tt = t[j] * keep + add
                loss += tt * (lse - p[j])
                tsum += tt
        if g != NULL:
            sf = <floating>(tsum / s)
            for j in range(n):
                if sparse:
                    g[j] = gsf * (g[j] * sf - (1 if j == label else 0))
                else:
                    g[j] = gsf * (g[j] * sf - (t[j] * keep + add))
        return loss
    # Probabilities: Keras divides by the row sum, clips, then takes the log.
    for j in range(n):
        s += p[j]
    sf = <floating>s
    if sparse:
        e = p[label] / sf
        q = _clip(e, lo, hi)
        loss = -_log(q)
        inside = 1 if (e >= lo and e <= hi) else 0
        tsum = 1
    else:
        for j in range(n):
            tt = t[j] * keep + add
            e = p[j] / sf
            q = _clip(e, lo, hi)
            loss -= tt * _log(q)
            tsum += tt
            if e >= lo and e <= hi:
                inside += tt
    if g == NULL:
        return loss
    if kind == L_SOFTMAX_SCCE:
        for j in range(n):
            g[j] = gsf * (p[j] - (1 if j == label else 0))
    elif kind == L_SOFTMAX_CCE:
        for j in range(n):
            g[j] = gsf * (p[j] * <floating>tsum - (t[j] * keep + add))
    elif sparse:
        # dL/dp_j = (u - [j == label] u / q) / S, u = 1 where the clip is inactive.
        for j in range(n):
            g[j] = 0
        if inside:
            for j in range(n):
                g[j] = gsf * <floating>(1 / s)
            g[label] = gsf * (1 - 1 / q) / sf
    else:
        # dL/dp_j = (sum_k t_k u_k - t_j u_j / q_j) / S.
        for j in range(n):
            e = p[j] / sf
            tt = t[j] * keep + add
            if e >= lo and e <= hi:
                g[j] = gsf * (<floating>inside - tt / e) / sf
            else:
                g[j] = gsf * <floating>inside / sf
    return loss


# ---- the driver ----

cdef double _chunk(const Args *a, const floating *t, const label_t *labels, const floating *p,
                   const floating *w, double scale, floating *g, floating *row_loss,
                   Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t n,
                   Py_ssize_t *bad) noexcept nogil:
    # Rows [r0, r1); records the first row with an out-of-range label in bad[0].
    cdef Py_ssize_t r, j
    cdef double s = 0, wr, loss
    cdef int64_t label = 0
    cdef bint ignored
    cdef const floating *tr
    cdef floating *gr
    for r in range(r0, r1):
        wr = w[r] if w != NULL else 1.0
        gr = (g + r * n) if g != NULL else NULL
        tr = (t + r * n) if t != NULL else NULL
        if labels != NULL:
            label = labels[r]
            ignored = a.has_ignore and label == a.ignore_class
            if ignored or label < 0 or label >= n:
                if not ignored and bad[0] < 0:
                    bad[0] = r
                if gr != NULL:
                    for j in range(n):
                        gr[j] = 0
                if row_loss != NULL:
                    row_loss[r] = 0
                continue
        if a.kind == L_MSE or a.kind == L_MAE or a.kind == L_HUBER:
            loss = _regression_row(a.kind, a.delta, tr, p + r * n, gr, scale * wr, n)
        elif a.kind == L_BCE or a.kind == L_BCE_LOGITS or a.kind == L_SIGMOID_BCE:
            loss = _binary_row(a.kind, a, tr, p + r * n, gr, scale * wr, n)
        else:
            loss = _categorical_row(a.kind, a, tr, label, p + r * n, gr, scale * wr, n)
        if row_loss != NULL:
            row_loss[r] = <floating>loss
        s += wr * loss
    return s


cdef object _drive(const Args *a, const floating *t, const label_t *labels, const floating *p,
                   const floating *w, double scale, floating *g, floating *row_loss,
                   Py_ssize_t rows, Py_ssize_t n):
    """(sum_r w[r] L[r], first bad row or -1) over fixed row chunks."""
    if rows == 0 or n == 0:
        return 0.0, -1
    cdef Py_ssize_t rpc = CHUNK_ELEMS // n if n < CHUNK_ELEMS else 1
    cdef Py_ssize_t nchunks = (rows + rpc - 1) // rpc, ch, first_bad = -1
    cdef double *partial = <double *>malloc(nchunks * sizeof(double))
    cdef Py_ssize_t *bad = <Py_ssize_t *>malloc(nchunks * sizeof(Py_ssize_t))
    cdef double total = 0
    if partial == NULL or bad == NULL:
        free(partial)
        free(bad)
        raise MemoryError(f"could not allocate {nchunks} partial loss sums.")
    try:
        with nogil:
            for ch in range(nchunks):
                bad[ch] = -1
            if rows * n >= PARALLEL_MIN_ELEMS and nchunks > 1:
                for ch in prange(nchunks, schedule="static", num_threads=num_threads()):
                    partial[ch] = _chunk(a, t, labels, p, w, scale, g, row_loss, ch * rpc,
                                         min(rows, (ch + 1) * rpc), n, bad + ch)
            else:
                for ch in range(nchunks):
                    partial[ch] = _chunk(a, t, labels, p, w, scale, g, row_loss, ch * rpc,
                                         min(rows, (ch + 1) * rpc), n, bad + ch)
            for ch in range(nchunks):
                total += partial[ch]
                if first_bad < 0 and bad[ch] >= 0:
                    first_bad = bad[ch]
    finally:
        free(partial)
        free(bad)
    return total, first_bad


# ---- argument handling ----

cdef Args _args(int kind, double delta, double smoothing, double epsilon,
                object ignore_class) except *:
    cdef Args a
    a.kind = kind
    a.delta = delta
    a.smoothing = smoothing
    a.epsilon = epsilon
    a.has_ignore = ignore_class is not None
    a.ignore_class = ignore_class if ignore_class is not None else 0
    return a


cdef int _check(str name, Py_ssize_t r, Py_ssize_t c, Py_ssize_t row_stride,
                Py_ssize_t itemsize, Py_ssize_t rows, Py_ssize_t cols) except -1:
    if r != rows or c != cols:
        raise ValueError(f"{name} must have shape ({rows}, {cols}); received ({r}, {c}).")
    if r > 1 and row_stride != cols * itemsize:
        raise ValueError(f"{name} must be C-contiguous; its row stride is {row_stride} bytes "
                         f"for {cols} elements of {itemsize} bytes.")
    return 0


cdef int _check_rows(str name, Py_ssize_t length, Py_ssize_t rows) except -1:
    if length != rows:
        raise ValueError(f"{name} must have {rows} entries, one per row; received {length}.")
    return 0


cdef object _dense(const Args *a, const floating[:, ::1] y_true, const floating[:, ::1] y_pred,
                   const floating[::1] weights, double scale, floating[:, ::1] grad,
                   floating[::1] row_loss):
    cdef Py_ssize_t rows = y_pred.shape[0], n = y_pred.shape[1], isz = sizeof(floating)
    _check("y_pred", rows, n, y_pred.strides[0], isz, rows, n)
    _check("y_true", y_true.shape[0], y_true.shape[1], y_true.strides[0], isz, rows, n)
    if grad is not None:
        _check("grad", grad.shape[0], grad.shape[1], grad.strides[0], isz, rows, n)
    if weights is not None:
        _check_rows("weights", weights.shape[0], rows)
    if row_loss is not None:
        _check_rows("row_loss", row_loss.shape[0], rows)
    if rows == 0 or n == 0:
        return 0.0
    return _drive(a, &y_true[0, 0], <int32_t *>NULL, &y_pred[0, 0],
                  &weights[0] if weights is not None else NULL, scale,
                  &grad[0, 0] if grad is not None else NULL,
                  &row_loss[0] if row_loss is not None else NULL, rows, n)[0]


cdef object _sparse(const Args *a, const label_t[::1] labels, const floating[:, ::1] y_pred,
                    const floating[::1] weights, double scale, floating[:, ::1] grad,
                    floating[::1] row_loss):
    cdef Py_ssize_t rows = y_pred.shape[0], n = y_pred.shape[1], isz = sizeof(floating)
    _check("y_pred", rows, n, y_pred.strides[0], isz, rows, n)
    _check_rows("labels", labels.shape[0], rows)
    if grad is not None:
        _check("grad", grad.shape[0], grad.shape[1], grad.strides[0], isz, rows, n)
    if weights is not None:
        _check_rows("weights", weights.shape[0], rows)
    if row_loss is not None:
        _check_rows("row_loss", row_loss.shape[0], rows)
    if rows == 0 or n == 0:
        return 0.0, -1
    return _drive(a, <floating *>NULL, &labels[0], &y_pred[0, 0],
                  &weights[0] if weights is not None else NULL, scale,
                  &grad[0, 0] if grad is not None else NULL,
                  &row_loss[0] if row_loss is not None else NULL, rows, n)


# ---- kernels ----
# Shared arguments:
#   y_true: (rows, n) targets of y_pred's dtype; labels: (rows,) int32/int64 class ids.
#   y_pred: (rows, n) predictions (probabilities or logits), C-contiguous float32/float64.
#   weights: (rows,) per-row weights or None (all 1). scale: multiplies every gradient.
#   grad: (rows, n) OUT, or None for the value only. row_loss: (rows,) OUT or None.
# Dense kernels return sum_r w[r] L[r]; sparse ones return (that sum, first bad row or -1).

def mean_squared_error(const floating[:, ::1] y_true not None,
                       const floating[:, ::1] y_pred not None, const floating[::1] weights,
                       double scale, floating[:, ::1] grad, floating[::1] row_loss):
    """L[r] = mean_j (y_pred - y_true)^2."""
    cdef Args a = _args(L_MSE, 0, 0, 0, None)
    return _dense(&a, y_true, y_pred, weights, scale, grad, row_loss)


def mean_absolute_error(const floating[:, ::1] y_true not None,
                        const floating[:, ::1] y_pred not None, const floating[::1] weights,
                        double scale, floating[:, ::1] grad, floating[::1] row_loss):
    """L[r] = mean_j |y_pred - y_true| (gradient 0 where they are equal)."""
    cdef Args a = _args(L_MAE, 0, 0, 0, None)
    return _dense(&a, y_true, y_pred, weights, scale, grad, row_loss)


def huber(const floating[:, ::1] y_true not None, const floating[:, ::1] y_pred not None,
          const floating[::1] weights, double scale, floating[:, ::1] grad,
          floating[::1] row_loss, double delta):
    """L[r] = mean_j of e^2 / 2 where |e| <= delta, else delta |e| - delta^2 / 2."""
    cdef Args a = _args(L_HUBER, delta, 0, 0, None)
    return _dense(&a, y_true, y_pred, weights, scale, grad, row_loss)


def binary_crossentropy(const floating[:, ::1] y_true not None,
                        const floating[:, ::1] y_pred not None, const floating[::1] weights,
                        double scale, floating[:, ::1] grad, floating[::1] row_loss,
                        bint from_logits, double label_smoothing, double epsilon):
    """L[r] = mean_j of -(t log q + (1 - t) log(1 - q)); q = clip(p) or sigmoid(logits)."""
    cdef Args a = _args(L_BCE_LOGITS if from_logits else L_BCE, 0, label_smoothing, epsilon,
                        None)
    return _dense(&a, y_true, y_pred, weights, scale, grad, row_loss)


def categorical_crossentropy(const floating[:, ::1] y_true not None,
                             const floating[:, ::1] y_pred not None,
                             const floating[::1] weights, double scale, floating[:, ::1] grad,
                             floating[::1] row_loss, bint from_logits, double label_smoothing,
                             double epsilon):
    """L[r] = -sum_j t_j log q_j; q = clip(p / sum p) or softmax(logits)."""
    cdef Args a = _args(L_CCE_LOGITS if from_logits else L_CCE, 0, label_smoothing, epsilon,
                        None)
    return _dense(&a, y_true, y_pred, weights, scale, grad, row_loss)


def sparse_categorical_crossentropy(const label_t[::1] labels not None,
                                    const floating[:, ::1] y_pred not None,
                                    const floating[::1] weights, double scale,
                                    floating[:, ::1] grad, floating[::1] row_loss,
                                    bint from_logits, object ignore_class, double epsilon):
    """L[r] = -log q[label]; rows whose label is ``ignore_class`` get L = 0 and no gradient."""
    cdef Args a = _args(L_SCCE_LOGITS if from_logits else L_SCCE, 0, 0, epsilon,
                        ignore_class)
    return _sparse(&a, labels, y_pred, weights, scale, grad, row_loss)


def softmax_categorical_crossentropy(const floating[:, ::1] y_true not None,
                                     const floating[:, ::1] probs not None,
                                     const floating[::1] weights, double scale,
                                     floating[:, ::1] dlogits, floating[::1] row_loss,
                                     double label_smoothing, double epsilon):
    """Keras' clipped CCE of softmax outputs ``probs``; dlogits = probs * sum(t) - t."""
    cdef Args a = _args(L_SOFTMAX_CCE, 0, label_smoothing, epsilon, None)
    return _dense(&a, y_true, probs, weights, scale, dlogits, row_loss)


def softmax_sparse_categorical_crossentropy(const label_t[::1] labels not None,
                                            const floating[:, ::1] probs not None,
                                            const floating[::1] weights, double scale,
                                            floating[:, ::1] dlogits, floating[::1] row_loss,
                                            object ignore_class, double epsilon):
    """Keras' clipped SCCE of softmax outputs ``probs``; dlogits = probs - onehot(label)."""
    cdef Args a = _args(L_SOFTMAX_SCCE, 0, 0, epsilon, ignore_class)
    return _sparse(&a, labels, probs, weights, scale, dlogits, row_loss)


def sigmoid_binary_crossentropy(const floating[:, ::1] y_true not None,
                                const floating[:, ::1] probs not None,
                                const floating[::1] weights, double scale,
                                floating[:, ::1] dlogits, floating[::1] row_loss,
                                double label_smoothing, double epsilon):
    """Keras' clipped BCE of sigmoid outputs ``probs``; dlogits = (probs - t) / n."""
    cdef Args a = _args(L_SIGMOID_BCE, 0, label_smoothing, epsilon, None)
    return _dense(&a, y_true, probs, weights, scale, dlogits, row_loss)
