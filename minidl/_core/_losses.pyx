# cython: language_level=3
"""Loss kernels: value and gradient of every loss in one fused pass over (y_true, y_pred).

Layering: ``minidl.losses`` turns targets, sample weights and the reduction into what these
kernels take: 2-D C-contiguous (rows, classes) arrays (or 1-D int labels), an optional
per-row weight ``w[r]`` and one scalar ``scale``. Each kernel returns ``sum_r w[r] * L[r]``
(``L[r]`` the per-sample loss, a mean or sum over the last axis as in Keras) and, when
``grad`` is given, writes ``grad[r] = scale * w[r] * dL[r]/dy_pred[r]``; the Python layer
multiplies the sum by the same ``scale``. ``row_loss``, when given, receives ``L[r]``.
Every check (dtypes, shapes, contiguity, writeable outputs) reads numpy's C API and costs
nanoseconds. The training step takes a shorter road: a :class:`LossKernel` per loss object
holds the kind, its parameters and the reduction, accepts the step's arrays as they are and
computes the scale itself; inputs it cannot take as they are (weights, targets to convert)
go back to the general path in ``minidl.losses``.

One driver serves every loss: it cuts the rows into fixed chunks (their size depends on the
shape only), runs chunks in parallel above ``PARALLEL_MIN`` elements, keeps one partial sum per
chunk and adds the partials in chunk order, so the result has the same bits for any thread
count. A per-row function, switched on the loss kind once per row, does the math. Sparse labels
are checked in the kernel: an out-of-range label zeroes its row and is reported back as the
first bad row, never used as an index.

The hinge losses read every target once before the chunks: Keras turns 0/1 targets into
-1/1 only when all of a call's targets are 0 or 1, which no single row can decide.

Probabilities are clipped to [epsilon, 1 - epsilon] as Keras does (and, for categorical
crossentropy, first normalised by their row sum); where the clip is active the gradient is
zero. The from_logits paths use log-sum-exp and log1p forms that stay finite for any finite
logits. The fused softmax/sigmoid kernels take the probabilities an output layer computed and
report Keras' clipped loss, but return the exact gradient with respect to the logits.
"""
from cython.parallel cimport prange
from libc.math cimport (exp, expf, fabs, log, log1p, log1pf, logf, pow, powf, sqrt, tanh,
                        tanhf)
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from minidl._core._arrays cimport (aligned, float_array, float_array_like, is_float_carray,
                                   same_shape, writeable)
from minidl._core._backend cimport num_threads

cnp.import_array()

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
    STACK_CHUNKS = 64         # partial sums of up to this many chunks live on the stack

PARALLEL_MIN = PARALLEL_MIN_ELEMS

cdef enum:
    L_MSE, L_MAE, L_HUBER, L_BCE, L_BCE_LOGITS, L_CCE, L_CCE_LOGITS, L_SCCE, L_SCCE_LOGITS,
    L_SOFTMAX_CCE, L_SOFTMAX_SCCE, L_SIGMOID_BCE,
    # one loss per element, averaged (summed for KL divergence) over the row: L_KLD..L_MAPE
    L_KLD, L_POISSON, L_LOG_COSH, L_HINGE, L_SQUARED_HINGE, L_MSLE, L_MAPE,
    L_CATEGORICAL_HINGE, L_COSINE, L_BFCE, L_BFCE_LOGITS, L_CFCE, L_CFCE_LOGITS

# Kernel kinds for LossKernel, in the order of the enum above.
KINDS = ("mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy",
         "binary_crossentropy_logits", "categorical_crossentropy",
         "categorical_crossentropy_logits", "sparse_categorical_crossentropy",
         "sparse_categorical_crossentropy_logits", "softmax_categorical_crossentropy",
         "softmax_sparse_categorical_crossentropy", "sigmoid_binary_crossentropy",
         "kl_divergence", "poisson", "log_cosh", "hinge", "squared_hinge",
         "mean_squared_logarithmic_error", "mean_absolute_percentage_error",
         "categorical_hinge", "cosine_similarity", "binary_focal_crossentropy",
         "binary_focal_crossentropy_logits", "categorical_focal_crossentropy",
         "categorical_focal_crossentropy_logits")

cdef double LOG2 = 0.69314718055994530942

# (Args, LossCall and LossKernel's attributes are declared in _losses.pxd.)


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

cdef inline floating _pow(floating x, floating y) noexcept nogil:
    if floating is float:
        return powf(x, y)
    else:
        return pow(x, y)

cdef inline floating _focal_pow(floating u, floating gamma) noexcept nogil:
    # u ** gamma; the usual gamma = 2 costs one multiplication instead of a powf call.
    if gamma == 2:
        return u * u
    if gamma == 0:
        return 1
    if gamma == 1:
        return u
    return _pow(u, gamma)

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)

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


cdef double _elementwise_row(int kind, const Args *a, const floating *t, const floating *p,
                             floating *g, double gs, Py_ssize_t n) noexcept nogil:
    # One loss per element, in the data's precision as Keras computes it; the row's loss is
    # their sum (KL divergence) or mean (the others).
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating c = <floating>(gs if kind == L_KLD else gs / n)
    cdef floating eps = <floating>a.epsilon, one = 1, x, tt, m, d, ad
    for j in range(n):
        x = p[j]
        if kind == L_KLD:
            # Keras clips both to [eps, 1]: sum t log(t / p).
            tt = _clip(t[j], eps, one)
            m = _clip(x, eps, one)
            s += tt * _log(tt / m)
            if g != NULL:
                g[j] = -c * tt / m if (x >= eps and x <= one) else 0
        elif kind == L_POISSON:
            s += x - t[j] * _log(x + eps)
            if g != NULL:
                g[j] = c * (1 - t[j] / (x + eps))
        elif kind == L_LOG_COSH:
            # log cosh d = |d| + log1p(exp(-2|d|)) - log 2: finite for any d.
            d = x - t[j]
            ad = d if d >= 0 else -d
            s += ad + _log1p(_exp(-2 * ad)) - <floating>LOG2
            if g != NULL:
                g[j] = c * _tanh(d)
        elif kind == L_HINGE or kind == L_SQUARED_HINGE:
            # a.flag: every target of the call is 0 or 1, so they stand for -1 and 1.
            tt = 2 * t[j] - 1 if a.flag else t[j]
            m = 1 - tt * x
            if m < 0:
                m = 0
            if kind == L_HINGE:
                s += m
                if g != NULL:
                    g[j] = -c * tt if m > 0 else 0
            else:
                s += m * m
                if g != NULL:
                    g[j] = -2 * c * m * tt
        elif kind == L_MSLE:
            d = _log1p(x if x > eps else eps) - _log1p(t[j] if t[j] > eps else eps)
            s += d * d
            if g != NULL:
                g[j] = 2 * c * d / (1 + x) if x >= eps else 0
        else:
            # MAPE: 100 |t - p| / max(|t|, eps).
            m = t[j] if t[j] >= 0 else -t[j]
            if m < eps:
                m = eps
            d = x - t[j]
            s += 100 * (d if d >= 0 else -d) / m
            if g != NULL:
                g[j] = (100 * c / m) if d > 0 else ((-100 * c / m) if d < 0 else 0)
    return s if kind == L_KLD else s / n


cdef double _cosine_row(const Args *a, const floating *t, const floating *p, floating *g,
                        double gs, Py_ssize_t n) noexcept nogil:
    # Keras' -sum(l2_normalize(t) * l2_normalize(p)), each norm at least epsilon; the sums
    # run in double.
    cdef Py_ssize_t j
    cdef double tt = 0, pp = 0, tp = 0, nt, npred, cos
    cdef bint clipped
    for j in range(n):
        tt += <double>t[j] * t[j]
        pp += <double>p[j] * p[j]
        tp += <double>t[j] * p[j]
    nt = sqrt(tt)
    npred = sqrt(pp)
    if nt < a.epsilon:
        nt = a.epsilon
    clipped = npred < a.epsilon
    if clipped:
        npred = a.epsilon
    cos = tp / (nt * npred)
    if g != NULL:
        for j in range(n):
            if clipped:
                g[j] = <floating>(-gs * t[j] / (nt * npred))
            else:
                g[j] = <floating>(-gs * (t[j] / nt - cos * p[j] / npred) / npred)
    return -cos


cdef double _categorical_hinge_row(const floating *t, const floating *p, floating *g,
                                   double gs, Py_ssize_t n) noexcept nogil:
    # max(neg - pos + 1, 0): pos = sum t p, neg = max (1 - t) p (its first maximum takes the
    # gradient).
    cdef Py_ssize_t j, top = 0
    cdef double pos = 0, neg = (1 - <double>t[0]) * p[0], v, loss
    for j in range(n):
        pos += <double>t[j] * p[j]
        v = (1 - <double>t[j]) * p[j]
        if v > neg:
            neg = v
            top = j
    loss = neg - pos + 1
    if loss < 0:
        loss = 0
    if g != NULL:
        for j in range(n):
            g[j] = <floating>(-gs * t[j]) if loss > 0 else 0
        if loss > 0:
            g[top] += <floating>(gs * (1 - <double>t[top]))
    return loss


cdef double _binary_focal_row(int kind, const Args *a, const floating *t, const floating *p,
                              floating *g, double gs, Py_ssize_t n) noexcept nogil:
    # Keras: mean over the row of w (1 - p_t)^gamma bce(t, clip(q)), q = p or sigmoid(logits),
    # 1 - p_t = t + q - 2 t q (unclipped q), w = t alpha + (1 - t)(1 - alpha) with class
    # balancing (a.flag), else 1. From logits, log q and log(1 - q) come from one exp and one
    # log1p (log-sigmoid) wherever the clip is inactive.
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating c = <floating>(gs / n)
    cdef floating keep = <floating>(1 - a.smoothing), half = <floating>(0.5 * a.smoothing)
    cdef floating lo = <floating>a.epsilon, hi = <floating>(1 - a.epsilon)
    cdef floating gam = <floating>a.gamma, alpha = <floating>a.alpha
    cdef floating tt, z, e, soft, x, q, u, f, bce, w, dfu, d
    cdef bint inside
    for j in range(n):
        tt = t[j] * keep + half
        if kind == L_BFCE_LOGITS:
            z = p[j]
            e = _exp(-z if z >= 0 else z)
            x = 1 / (1 + e) if z >= 0 else e / (1 + e)
            inside = x >= lo and x <= hi
            if inside:
                soft = _log1p(e)
                bce = tt * ((-z if z < 0 else 0) + soft) + (1 - tt) * ((z if z > 0 else 0) + soft)
        else:
            x = p[j]
            inside = x >= lo and x <= hi
        if kind != L_BFCE_LOGITS or not inside:
            # Labels of exactly 0 or 1 need one of the two logarithms.
            q = _clip(x, lo, hi)
            bce = 0
            if tt != 0:
                bce -= tt * _log(q)
            if tt != 1:
                bce -= (1 - tt) * _log(1 - q)
        u = tt + x - 2 * tt * x
        f = _focal_pow(u, gam)
        w = tt * alpha + (1 - tt) * (1 - alpha) if a.flag else 1
        s += w * f * bce
        if g == NULL:
            continue
        # d/dq of w f bce: w (gamma u^(gamma-1) (1 - 2t) bce + f (q - t) / (q (1 - q)));
        # the bce term vanishes where the clip is active, the focal one where u = 0.
        dfu = gam * f / u * (1 - 2 * tt) * bce if (gam != 0 and u > 0) else 0
        if kind == L_BFCE_LOGITS:
            d = dfu * x * (1 - x) + (f * (x - tt) if inside else 0)
        else:
            d = dfu + (f * (x - tt) / (x * (1 - x)) if inside else 0)
        g[j] = c * w * d
    return s / n


cdef double _categorical_focal_row(int kind, const Args *a, const floating *t,
                                   const floating *p, floating *g, double gs,
                                   Py_ssize_t n) noexcept nogil:
    # Keras: sum_j alpha (1 - o_j)^gamma (-t_j log o_j), o = clip(q / sum q), q = p or
    # softmax(logits). With c_j = dL/do_j (0 where the clip is active) and e = q / sum q:
    # dL/dp_k = (c_k - sum_j c_j e_j) / sum p, or for logits e_k (c_k - sum_j c_j e_j).
    cdef Py_ssize_t j
    cdef bint logits = kind == L_CFCE_LOGITS
    cdef floating keep = <floating>(1 - a.smoothing), add = <floating>(a.smoothing / n)
    cdef floating lo = <floating>a.epsilon, hi = <floating>(1 - a.epsilon)
    cdef floating gam = <floating>a.gamma, alpha = <floating>a.alpha
    cdef floating m = 0, sf, e, o, tt, f, lg, cj
    cdef double s = 0, loss = 0, ce = 0
    if logits:
        m = p[0]
        for j in range(1, n):
            if p[j] > m:
                m = p[j]
        for j in range(n):
            s += _exp(p[j] - m)
    else:
        for j in range(n):
            s += p[j]
    sf = <floating>s
    for j in range(n):
        e = _exp(p[j] - m) / sf if logits else p[j] / sf
        o = _clip(e, lo, hi)
        tt = t[j] * keep + add
        if tt == 0:
            # No loss and no gradient from this class (one-hot targets: all but one).
            if g != NULL:
                g[j] = 0
            continue
        f = _focal_pow(1 - o, gam)
        lg = _log(o)
        loss -= alpha * f * tt * lg
        if g != NULL:
            cj = 0
            if e >= lo and e <= hi:
                # gamma (1 - o)^(gamma - 1) = gamma f / (1 - o); 1 - o >= epsilon.
                cj = alpha * tt * ((gam * f / (1 - o) * lg if gam != 0 else 0) - f / o)
            g[j] = cj
            ce += <double>cj * e
    if g != NULL:
        for j in range(n):
            if logits:
                g[j] = <floating>(gs * (_exp(p[j] - m) / sf) * (g[j] - ce))
            else:
                g[j] = <floating>(gs * (g[j] - ce) / s)
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
        elif a.kind >= L_KLD and a.kind <= L_MAPE:
            loss = _elementwise_row(a.kind, a, tr, p + r * n, gr, scale * wr, n)
        elif a.kind == L_COSINE:
            loss = _cosine_row(a, tr, p + r * n, gr, scale * wr, n)
        elif a.kind == L_CATEGORICAL_HINGE:
            loss = _categorical_hinge_row(tr, p + r * n, gr, scale * wr, n)
        elif a.kind == L_BFCE or a.kind == L_BFCE_LOGITS:
            loss = _binary_focal_row(a.kind, a, tr, p + r * n, gr, scale * wr, n)
        elif a.kind == L_CFCE or a.kind == L_CFCE_LOGITS:
            loss = _categorical_focal_row(a.kind, a, tr, p + r * n, gr, scale * wr, n)
        else:
            loss = _categorical_row(a.kind, a, tr, label, p + r * n, gr, scale * wr, n)
        if row_loss != NULL:
            row_loss[r] = <floating>loss
        s += wr * loss
    return s


cdef bint _all_binary(const floating *t, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if t[i] != 0 and t[i] != 1:
            return False
    return True


cdef int _drive(const Args *a, const floating *t, const label_t *labels, const floating *p,
                const floating *w, double scale, floating *g, floating *row_loss,
                Py_ssize_t rows, Py_ssize_t n, double *total,
                Py_ssize_t *first_bad) noexcept nogil:
    """total = sum_r w[r] L[r] over fixed row chunks; first_bad = first bad row or -1.
    Returns 0, or -1 (having computed nothing) when the partial sums could not be
    allocated."""
    total[0] = 0.0
    first_bad[0] = -1
    if rows == 0 or n == 0:
        return 0
    cdef Args hinge_args
    if (a.kind == L_HINGE or a.kind == L_SQUARED_HINGE) and t != NULL:
        # Keras turns 0/1 targets into -1/1 only when every target of the call is 0 or 1.
        hinge_args = a[0]
        hinge_args.flag = _all_binary(t, rows * n)
        a = &hinge_args
    cdef Py_ssize_t rpc = CHUNK_ELEMS // n if n < CHUNK_ELEMS else 1
    cdef Py_ssize_t nchunks = (rows + rpc - 1) // rpc, ch
    cdef double local_partial[STACK_CHUNKS]
    cdef Py_ssize_t local_bad[STACK_CHUNKS]
    cdef double *partial = local_partial
    cdef Py_ssize_t *bad = local_bad
    if nchunks > STACK_CHUNKS:
        partial = <double *>malloc(nchunks * sizeof(double))
        bad = <Py_ssize_t *>malloc(nchunks * sizeof(Py_ssize_t))
        if partial == NULL or bad == NULL:
            free(partial)
            free(bad)
            return -1
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
        total[0] += partial[ch]
        if first_bad[0] < 0 and bad[ch] >= 0:
            first_bad[0] = bad[ch]
    if partial != local_partial:
        free(partial)
        free(bad)
    return 0


# ---- argument handling ----
# y_pred is read as (rows, last axis): rows is the product of the leading axes.

cdef int _kind_id(str kind) except -1:
    try:
        return KINDS.index(kind)
    except ValueError:
        raise ValueError(f"Unknown loss kernel kind {kind!r}; expected one of "
                         f"{', '.join(KINDS)}.") from None


cdef inline bint _sparse_kind(int kind) noexcept:
    return kind == L_SCCE or kind == L_SCCE_LOGITS or kind == L_SOFTMAX_SCCE


cdef Args _args(int kind, double delta, double smoothing, double epsilon,
                object ignore_class, double alpha=0, double gamma=0, int flag=0) except *:
    cdef Args a
    a.kind = kind
    a.delta = delta
    a.smoothing = smoothing
    a.epsilon = epsilon
    a.alpha = alpha
    a.gamma = gamma
    a.flag = flag
    a.has_ignore = ignore_class is not None
    a.ignore_class = ignore_class if ignore_class is not None else 0
    return a


cdef int _label_type(object a) noexcept:
    """NPY_INT32 or NPY_INT64 for a C-contiguous aligned native signed 32/64-bit integer
    array (whatever numpy calls the type), else -1."""
    if not cnp.PyArray_Check(a) or not cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a):
        return -1
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if not (cnp.PyTypeNum_ISINTEGER(t) and cnp.PyTypeNum_ISSIGNED(t)):
        return -1
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(<cnp.ndarray>a)
    return cnp.NPY_INT32 if size == 4 else (cnp.NPY_INT64 if size == 8 else -1)


cdef inline Py_ssize_t _leading(object a) noexcept:
    """Product of all axes but the last (the rows of an array of rank >= 1)."""
    cdef int d, nd = cnp.PyArray_NDIM(<cnp.ndarray>a)
    cdef Py_ssize_t rows = 1
    for d in range(nd - 1):
        rows *= cnp.PyArray_DIMS(<cnp.ndarray>a)[d]
    return rows


cdef inline char *_data(object a) noexcept:
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a) if a is not None else NULL


cdef int _run_nogil(const Args *a, bint f32, int label_type, char *t, char *labels, char *p,
                    char *w, double scale, char *g, char *row_loss, Py_ssize_t rows,
                    Py_ssize_t n, double *total, Py_ssize_t *bad) noexcept nogil:
    """Calls the driver specialised for the dtype and, for the sparse kinds, the label type;
    0, or -1 when it could not allocate its partial sums."""
    if f32:
        if label_type == cnp.NPY_INT32:
            return _drive(a, <const float *>t, <const int32_t *>labels, <const float *>p,
                          <const float *>w, scale, <float *>g, <float *>row_loss, rows, n,
                          total, bad)
        return _drive(a, <const float *>t, <const int64_t *>labels, <const float *>p,
                      <const float *>w, scale, <float *>g, <float *>row_loss, rows, n, total,
                      bad)
    if label_type == cnp.NPY_INT32:
        return _drive(a, <const double *>t, <const int32_t *>labels, <const double *>p,
                      <const double *>w, scale, <double *>g, <double *>row_loss, rows, n,
                      total, bad)
    return _drive(a, <const double *>t, <const int64_t *>labels, <const double *>p,
                  <const double *>w, scale, <double *>g, <double *>row_loss, rows, n, total,
                  bad)


cdef int _run(const Args *a, bint f32, int label_type, char *t, char *labels, char *p, char *w,
              double scale, char *g, char *row_loss, Py_ssize_t rows, Py_ssize_t n,
              double *total, Py_ssize_t *bad) except -1:
    """:func:`_run_nogil` without the GIL, raising MemoryError on its failure."""
    cdef int rc
    with nogil:
        rc = _run_nogil(a, f32, label_type, t, labels, p, w, scale, g, row_loss, rows, n, total,
                        bad)
    if rc != 0:
        raise MemoryError(f"could not allocate the partial loss sums of {rows} rows.")
    return 0


cdef int loss_call_run(const LossCall *c, double *total, Py_ssize_t *bad) noexcept nogil:
    return _run_nogil(&c.a, c.f32, c.label_type, c.t, c.labels, c.p, NULL, c.scale, c.g, NULL,
                      c.rows, c.n, total, bad)


cdef int _per_row(object a, int dtype, Py_ssize_t rows, str name, bint out) except -1:
    """``a`` (weights or row_loss) has one element of y_pred's dtype per row."""
    float_array_like(a, dtype, None, name)
    if cnp.PyArray_SIZE(<cnp.ndarray>a) != rows:
        raise ValueError(f"{name} must have {rows} entries, one per row; received "
                         f"{cnp.PyArray_SIZE(<cnp.ndarray>a)}.")
    if out:
        writeable(a, None, name)
    return 0


cdef object _call(int kind, double delta, double smoothing, double epsilon, object ignore_class,
                  object y_true, object y_pred, object weights, double scale, object grad,
                  object row_loss, double alpha=0, double gamma=0, int flag=0):
    """A module-level kernel call: checks every array, returns (total, first bad row)."""
    cdef Args a = _args(kind, delta, smoothing, epsilon, ignore_class, alpha, gamma, flag)
    y_true, y_pred, weights = aligned(y_true), aligned(y_pred), aligned(weights)
    cdef int t = float_array(y_pred, None, "y_pred")
    if cnp.PyArray_NDIM(<cnp.ndarray>y_pred) == 0:
        raise ValueError("y_pred must have rank >= 1; received a scalar.")
    cdef Py_ssize_t rows = _leading(y_pred)
    cdef Py_ssize_t n = cnp.PyArray_DIMS(<cnp.ndarray>y_pred)[cnp.PyArray_NDIM(<cnp.ndarray>y_pred) - 1]
    cdef int label_type = cnp.NPY_INT64
    if _sparse_kind(kind):
        label_type = _label_type(y_true)
        if label_type < 0:
            raise TypeError(f"labels must be a C-contiguous int32 or int64 array; received "
                            f"{type(y_true).__name__} {getattr(y_true, 'dtype', '')}.")
        if cnp.PyArray_SIZE(<cnp.ndarray>y_true) != rows:
            raise ValueError(f"labels must have {rows} entries, one per row; received "
                             f"{cnp.PyArray_SIZE(<cnp.ndarray>y_true)}.")
    else:
        float_array_like(y_true, t, None, "y_true")
        same_shape(y_true, y_pred, None, "y_true", "y_pred")
    if grad is not None:
        float_array_like(grad, t, None, "grad")
        same_shape(grad, y_pred, None, "grad", "y_pred")
        writeable(grad, None, "grad")
    if weights is not None:
        _per_row(weights, t, rows, "weights", False)
    if row_loss is not None:
        _per_row(row_loss, t, rows, "row_loss", True)
    cdef double total
    cdef Py_ssize_t bad
    _run(&a, t == cnp.NPY_FLOAT, label_type, NULL if _sparse_kind(kind) else _data(y_true),
         _data(y_true) if _sparse_kind(kind) else NULL, _data(y_pred), _data(weights), scale,
         _data(grad), _data(row_loss), rows, n, &total, &bad)
    return total, bad


cdef class LossKernel:
    """The training-step path of one loss: ``fused(y_true, y_pred, grad_out)``.

    Built by ``minidl.losses`` once per loss object and mode (plain, or fused with the output
    layer's softmax/sigmoid), with the kernel kind, its parameters, the reduction and the
    loss name resolved, so that a call costs well under a microsecond beyond its work.

    Args:
        kind: a name from ``KINDS``. delta, smoothing, epsilon, ignore_class, alpha, gamma,
            flag (binary focal crossentropy's apply_class_balancing): its parameters.
        reduction: the Keras reduction; sums are divided by the number of counted rows for
            'sum_over_batch_size', 'mean' and (without weights) 'mean_with_sample_weight'.
        axis: None, or the loss's ``axis``: other than -1 it must be y_pred's last axis.
        name: the loss name, for error messages.
    """
    # (attributes in _losses.pxd, where minidl._core._chain calls prepare())

    def __init__(self, str kind, double delta, double smoothing, double epsilon,
                 object ignore_class, object reduction, object axis, str name,
                 double alpha=0, double gamma=0, int flag=0):
        self.a = _args(_kind_id(kind), delta, smoothing, epsilon, ignore_class, alpha, gamma,
                       flag)
        self.sparse = _sparse_kind(self.a.kind)
        self.by_count = reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight")
        self.axis = axis
        self.name = name
        self.config = (kind, delta, smoothing, epsilon, ignore_class, reduction, axis, name,
                       alpha, gamma, flag)

    def __reduce__(self):
        return LossKernel, self.config

    def fused(self, y_true, y_pred, grad_out):
        """The reduced loss, writing d(loss)/d(y_pred) into grad_out, for unweighted samples.

        Returns None, having written nothing, unless every argument is ready as is:
        y_pred a C-contiguous float32/float64 array of rank >= 1 reduced over its last axis;
        grad_out a writeable array like it; y_true of y_pred's dtype and shape (sparse kinds:
        C-contiguous int32/int64 labels of shape y_pred.shape[:-1], or with a trailing 1).
        The caller then takes the general path, which converts or reports the problem.

        Raises:
            ValueError: a label outside [0, classes) (other than ignore_class).
        """
        cdef LossCall c
        if not self.prepare(y_true, y_pred, grad_out, &c):
            return None
        cdef double total
        cdef Py_ssize_t bad
        cdef int rc
        with nogil:
            rc = loss_call_run(&c, &total, &bad)
        if rc != 0:
            raise MemoryError(f"{self.name}: could not allocate the partial loss sums.")
        if bad >= 0:
            raise self.bad_label(y_true, bad, c.n)
        return total * c.scale

    cdef bint prepare(self, object y_true, object y_pred, object grad_out,
                      LossCall *c) except -1:
        """Fill ``c`` for :func:`loss_call_run` and return True when every argument is ready
        as :meth:`fused` requires; False (``c`` unusable) otherwise."""
        if not cnp.PyArray_Check(y_pred):
            return False
        cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>y_pred)
        if ((t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE)
                or not cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>y_pred)
                or not is_float_carray(grad_out, t)
                or not cnp.PyArray_SAMESHAPE(<cnp.ndarray>grad_out, <cnp.ndarray>y_pred)
                or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>grad_out)):
            return False
        cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>y_pred)
        if nd == 0 or (self.axis is not None and self.axis != -1 and self.axis != nd - 1):
            return False
        cdef Py_ssize_t rows = _leading(y_pred), n = cnp.PyArray_DIMS(<cnp.ndarray>y_pred)[nd - 1]
        cdef Py_ssize_t counted = rows
        cdef int label_type = cnp.NPY_INT64, tnd, d
        if self.sparse:
            label_type = _label_type(y_true)
            if label_type < 0:
                return False
            tnd = cnp.PyArray_NDIM(<cnp.ndarray>y_true)
            if not (tnd == nd - 1 or (tnd == nd and cnp.PyArray_DIMS(<cnp.ndarray>y_true)[nd - 1] == 1)):
                return False
            for d in range(nd - 1):
                if cnp.PyArray_DIMS(<cnp.ndarray>y_true)[d] != cnp.PyArray_DIMS(<cnp.ndarray>y_pred)[d]:
                    return False
            if self.a.has_ignore and self.by_count:
                counted = _count_kept(_data(y_true), label_type == cnp.NPY_INT32, rows,
                                      self.a.ignore_class)
        elif not (is_float_carray(y_true, t)
                  and cnp.PyArray_SAMESHAPE(<cnp.ndarray>y_true, <cnp.ndarray>y_pred)):
            return False
        c.a = self.a
        c.f32 = t == cnp.NPY_FLOAT
        c.label_type = label_type
        c.t = NULL if self.sparse else _data(y_true)
        c.labels = _data(y_true) if self.sparse else NULL
        c.p = _data(y_pred)
        c.g = _data(grad_out)
        c.scale = (1.0 / counted if counted else 0.0) if self.by_count else 1.0
        c.rows, c.n = rows, n
        return True

    cdef object bad_label(self, object y_true, Py_ssize_t bad, Py_ssize_t n):
        """The ValueError for the out-of-range label at flat index ``bad``."""
        label = (<object>y_true).reshape(-1)[bad]
        return ValueError(f"{self.name}: received a label value of {label} (at flat index "
                          f"{bad}), which is outside the valid range [0, {n}) for {n} "
                          f"classes.")


cdef Py_ssize_t _count_kept(const char *labels, bint int32, Py_ssize_t rows,
                            int64_t ignore_class) noexcept:
    """Rows whose label is not ignore_class."""
    cdef Py_ssize_t r, kept = 0
    if int32:
        for r in range(rows):
            kept += (<const int32_t *>labels)[r] != ignore_class
    else:
        for r in range(rows):
            kept += (<const int64_t *>labels)[r] != ignore_class
    return kept


# ---- kernels ----
# Shared arguments:
#   y_true: (rows, n) targets of y_pred's dtype; labels: (rows,) int32/int64 class ids.
#   y_pred: (rows, n) predictions (probabilities or logits), C-contiguous float32/float64; any
#       rank >= 1 is read as (product of the leading axes, last axis).
#   weights: (rows,) per-row weights or None (all 1). scale: multiplies every gradient.
#   grad: (rows, n) OUT, or None for the value only. row_loss: (rows,) OUT or None.
#   A misaligned input is copied, a misaligned output refused (_arrays.pxd).
# Dense kernels return sum_r w[r] L[r]; sparse ones return (that sum, first bad row or -1).

def mean_squared_error(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = mean_j (y_pred - y_true)^2."""
    return _call(L_MSE, 0, 0, 0, None, y_true, y_pred, weights, scale, grad, row_loss)[0]


def mean_absolute_error(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = mean_j |y_pred - y_true| (gradient 0 where they are equal)."""
    return _call(L_MAE, 0, 0, 0, None, y_true, y_pred, weights, scale, grad, row_loss)[0]


def huber(y_true, y_pred, weights, double scale, grad, row_loss, double delta):
    """L[r] = mean_j of e^2 / 2 where |e| <= delta, else delta |e| - delta^2 / 2."""
    return _call(L_HUBER, delta, 0, 0, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def binary_crossentropy(y_true, y_pred, weights, double scale, grad, row_loss,
                        bint from_logits, double label_smoothing, double epsilon):
    """L[r] = mean_j of -(t log q + (1 - t) log(1 - q)); q = clip(p) or sigmoid(logits)."""
    return _call(L_BCE_LOGITS if from_logits else L_BCE, 0, label_smoothing, epsilon, None,
                 y_true, y_pred, weights, scale, grad, row_loss)[0]


def categorical_crossentropy(y_true, y_pred, weights, double scale, grad, row_loss,
                             bint from_logits, double label_smoothing, double epsilon):
    """L[r] = -sum_j t_j log q_j; q = clip(p / sum p) or softmax(logits)."""
    return _call(L_CCE_LOGITS if from_logits else L_CCE, 0, label_smoothing, epsilon, None,
                 y_true, y_pred, weights, scale, grad, row_loss)[0]


def sparse_categorical_crossentropy(labels, y_pred, weights, double scale, grad, row_loss,
                                    bint from_logits, object ignore_class, double epsilon):
    """L[r] = -log q[label]; rows whose label is ``ignore_class`` get L = 0 and no gradient."""
    return _call(L_SCCE_LOGITS if from_logits else L_SCCE, 0, 0, epsilon, ignore_class,
                 labels, y_pred, weights, scale, grad, row_loss)


def softmax_categorical_crossentropy(y_true, probs, weights, double scale, dlogits, row_loss,
                                     double label_smoothing, double epsilon):
    """Keras' clipped CCE of softmax outputs ``probs``; dlogits = probs * sum(t) - t."""
    return _call(L_SOFTMAX_CCE, 0, label_smoothing, epsilon, None, y_true, probs, weights,
                 scale, dlogits, row_loss)[0]


def softmax_sparse_categorical_crossentropy(labels, probs, weights, double scale, dlogits,
                                            row_loss, object ignore_class, double epsilon):
    """Keras' clipped SCCE of softmax outputs ``probs``; dlogits = probs - onehot(label)."""
    return _call(L_SOFTMAX_SCCE, 0, 0, epsilon, ignore_class, labels, probs, weights, scale,
                 dlogits, row_loss)


def sigmoid_binary_crossentropy(y_true, probs, weights, double scale, dlogits, row_loss,
                                double label_smoothing, double epsilon):
    """Keras' clipped BCE of sigmoid outputs ``probs``; dlogits = (probs - t) / n."""
    return _call(L_SIGMOID_BCE, 0, label_smoothing, epsilon, None, y_true, probs, weights,
                 scale, dlogits, row_loss)[0]


def kl_divergence(y_true, y_pred, weights, double scale, grad, row_loss, double epsilon):
    """L[r] = sum_j t log(t / p), both clipped to [epsilon, 1]."""
    return _call(L_KLD, 0, 0, epsilon, None, y_true, y_pred, weights, scale, grad, row_loss)[0]


def poisson(y_true, y_pred, weights, double scale, grad, row_loss, double epsilon):
    """L[r] = mean_j (p - t log(p + epsilon))."""
    return _call(L_POISSON, 0, 0, epsilon, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def log_cosh(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = mean_j log(cosh(p - t))."""
    return _call(L_LOG_COSH, 0, 0, 0, None, y_true, y_pred, weights, scale, grad, row_loss)[0]


def hinge(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = mean_j max(1 - t p, 0); targets all 0/1 count as -1/1."""
    return _call(L_HINGE, 0, 0, 0, None, y_true, y_pred, weights, scale, grad, row_loss)[0]


def squared_hinge(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = mean_j max(1 - t p, 0)^2; targets all 0/1 count as -1/1."""
    return _call(L_SQUARED_HINGE, 0, 0, 0, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def categorical_hinge(y_true, y_pred, weights, double scale, grad, row_loss):
    """L[r] = max(max_j (1 - t) p - sum_j t p + 1, 0)."""
    return _call(L_CATEGORICAL_HINGE, 0, 0, 0, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def cosine_similarity(y_true, y_pred, weights, double scale, grad, row_loss, double epsilon):
    """L[r] = -sum_j t p / (max(|t|, epsilon) max(|p|, epsilon))."""
    return _call(L_COSINE, 0, 0, epsilon, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def mean_squared_logarithmic_error(y_true, y_pred, weights, double scale, grad, row_loss,
                                   double epsilon):
    """L[r] = mean_j (log1p(max(p, epsilon)) - log1p(max(t, epsilon)))^2."""
    return _call(L_MSLE, 0, 0, epsilon, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def mean_absolute_percentage_error(y_true, y_pred, weights, double scale, grad, row_loss,
                                   double epsilon):
    """L[r] = 100 mean_j |t - p| / max(|t|, epsilon)."""
    return _call(L_MAPE, 0, 0, epsilon, None, y_true, y_pred, weights, scale, grad,
                 row_loss)[0]


def binary_focal_crossentropy(y_true, y_pred, weights, double scale, grad, row_loss,
                              bint apply_class_balancing, double alpha, double gamma,
                              bint from_logits, double label_smoothing, double epsilon):
    """L[r] = mean_j w (1 - p_t)^gamma bce; see _binary_focal_row."""
    return _call(L_BFCE_LOGITS if from_logits else L_BFCE, 0, label_smoothing, epsilon, None,
                 y_true, y_pred, weights, scale, grad, row_loss, alpha, gamma,
                 apply_class_balancing)[0]


def categorical_focal_crossentropy(y_true, y_pred, weights, double scale, grad, row_loss,
                                   double alpha, double gamma, bint from_logits,
                                   double label_smoothing, double epsilon):
    """L[r] = sum_j alpha (1 - o)^gamma (-t log o); see _categorical_focal_row."""
    return _call(L_CFCE_LOGITS if from_logits else L_CFCE, 0, label_smoothing, epsilon, None,
                 y_true, y_pred, weights, scale, grad, row_loss, alpha, gamma)[0]
