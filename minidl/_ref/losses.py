"""Reference for ``minidl._core._losses``: the same kernels in plain numpy.

Arguments and results follow the kernels: ``y_pred`` is (rows, n); each function returns
``sum_r w[r] * L[r]`` (sparse ones also the first bad row, or -1), writes
``scale * w[r] * dL[r]/dy_pred`` into ``grad`` and ``L[r]`` into ``row_loss`` when those are
given. The math runs in float64 whatever the dtype of the data.
"""
import numpy as np


def _finish(loss, dloss, weights, scale, grad, row_loss):
    """Store the per-row results and return the weighted sum."""
    w = np.ones(loss.shape[0]) if weights is None else np.asarray(weights, np.float64)
    if grad is not None:
        grad[...] = scale * w[:, None] * dloss
    if row_loss is not None:
        row_loss[...] = loss
    return float(np.sum(w * loss))


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _clip(p, epsilon, dtype):
    """Keras' clip, with bounds rounded to the data's dtype as Keras casts them."""
    lo, hi = np.asarray(epsilon, dtype), np.asarray(1 - epsilon, dtype)
    return np.clip(p, float(lo), float(hi)), (p >= float(lo)) & (p <= float(hi))


def mean_squared_error(y_true, y_pred, weights, scale, grad, row_loss):
    """L = mean((p - t)^2) per row."""
    t, p = _f64(y_true), _f64(y_pred)
    n = p.shape[1]
    return _finish(np.mean((p - t) ** 2, axis=1), 2 * (p - t) / n, weights, scale, grad, row_loss)


def mean_absolute_error(y_true, y_pred, weights, scale, grad, row_loss):
    """L = mean(|p - t|) per row."""
    t, p = _f64(y_true), _f64(y_pred)
    n = p.shape[1]
    return _finish(np.mean(np.abs(p - t), axis=1), np.sign(p - t) / n, weights, scale, grad,
                   row_loss)


def huber(y_true, y_pred, weights, scale, grad, row_loss, delta):
    """L = mean of 0.5 e^2 (|e| <= delta) or delta |e| - 0.5 delta^2, e = p - t."""
    t, p = _f64(y_true), _f64(y_pred)
    e = p - t
    small = np.abs(e) <= delta
    loss = np.where(small, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta)
    dloss = np.where(small, e, delta * np.sign(e))
    n = p.shape[1]
    return _finish(loss.mean(axis=1), dloss / n, weights, scale, grad, row_loss)


def _smoothed_binary(y_true, label_smoothing):
    return _f64(y_true) * (1 - label_smoothing) + 0.5 * label_smoothing


def binary_crossentropy(y_true, y_pred, weights, scale, grad, row_loss, from_logits,
                        label_smoothing, epsilon):
    """Keras BCE: mean over the row; clipped probabilities, or stable logistic loss."""
    t, p = _smoothed_binary(y_true, label_smoothing), _f64(y_pred)
    n = p.shape[1]
    if from_logits:
        loss = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        dloss = 1 / (1 + np.exp(-p)) - t
    else:
        q, inside = _clip(p, epsilon, np.asarray(y_pred).dtype)
        loss = -(t * np.log(q) + (1 - t) * np.log(1 - q))
        dloss = np.where(inside, (q - t) / (q * (1 - q)), 0.0)
    return _finish(loss.mean(axis=1), dloss / n, weights, scale, grad, row_loss)


def _smoothed_categorical(y_true, label_smoothing):
    t = _f64(y_true)
    return t * (1 - label_smoothing) + label_smoothing / t.shape[1]


def _log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))


def categorical_crossentropy(y_true, y_pred, weights, scale, grad, row_loss, from_logits,
                             label_smoothing, epsilon):
    """Keras CCE: -sum t log q with q = clip(p / sum p), or log_softmax of logits."""
    t, p = _smoothed_categorical(y_true, label_smoothing), _f64(y_pred)
    if from_logits:
        logq = _log_softmax(p)
        loss = -np.sum(t * logq, axis=1)
        dloss = np.exp(logq) * t.sum(axis=1, keepdims=True) - t
    else:
        s = p.sum(axis=1, keepdims=True)
        q, inside = _clip(p / s, epsilon, np.asarray(y_pred).dtype)
        loss = -np.sum(t * np.log(q), axis=1)
        tu = np.where(inside, t, 0.0)
        dloss = (tu.sum(axis=1, keepdims=True) - np.where(inside, t / q, 0.0)) / s
    return _finish(loss, dloss, weights, scale, grad, row_loss)


def _onehot_rows(labels, n, ignore_class):
    """(one-hot targets, rows kept, first bad row) for integer labels."""
    labels = np.asarray(labels).astype(np.int64)
    ignored = (labels == ignore_class) if ignore_class is not None else np.zeros(labels.shape, bool)
    bad = ~ignored & ((labels < 0) | (labels >= n))
    keep = ~ignored & ~bad
    t = np.zeros((labels.shape[0], n))
    t[np.flatnonzero(keep), labels[keep]] = 1.0
    first_bad = int(np.flatnonzero(bad)[0]) if bad.any() else -1
    return t, keep, first_bad


def sparse_categorical_crossentropy(labels, y_pred, weights, scale, grad, row_loss, from_logits,
                                    ignore_class, epsilon):
    """SCCE: CCE of the one-hot labels; ignored and bad rows contribute nothing."""
    p = _f64(y_pred)
    t, keep, bad = _onehot_rows(labels, p.shape[1], ignore_class)
    safe = np.where(keep[:, None], p, 1.0)   # ignored/bad rows: any finite stand-in
    if from_logits:
        logq = _log_softmax(safe)
        loss = -np.sum(t * logq, axis=1)
        dloss = np.exp(logq) - t
    else:
        s = safe.sum(axis=1, keepdims=True)
        q, inside = _clip(safe / s, epsilon, np.asarray(y_pred).dtype)
        loss = -np.sum(t * np.log(q), axis=1)
        u = np.sum(t * inside, axis=1, keepdims=True)
        dloss = (u - np.where(inside, t / q, 0.0)) / s
    loss = np.where(keep, loss, 0.0)
    dloss = np.where(keep[:, None], dloss, 0.0)
    return _finish(loss, dloss, weights, scale, grad, row_loss), bad


def softmax_categorical_crossentropy(y_true, probs, weights, scale, dlogits, row_loss,
                                     label_smoothing, epsilon):
    """Clipped CCE of softmax probabilities; gradient with respect to the logits."""
    t, p = _smoothed_categorical(y_true, label_smoothing), _f64(probs)
    q, _ = _clip(p / p.sum(axis=1, keepdims=True), epsilon, np.asarray(probs).dtype)
    loss = -np.sum(t * np.log(q), axis=1)
    return _finish(loss, p * t.sum(axis=1, keepdims=True) - t, weights, scale, dlogits, row_loss)


def softmax_sparse_categorical_crossentropy(labels, probs, weights, scale, dlogits, row_loss,
                                            ignore_class, epsilon):
    """Clipped SCCE of softmax probabilities; gradient probs - onehot w.r.t. the logits."""
    p = _f64(probs)
    t, keep, bad = _onehot_rows(labels, p.shape[1], ignore_class)
    q, _ = _clip(p / p.sum(axis=1, keepdims=True), epsilon, np.asarray(probs).dtype)
    loss = np.where(keep, -np.sum(t * np.log(q), axis=1), 0.0)
    dloss = np.where(keep[:, None], p - t, 0.0)
    return _finish(loss, dloss, weights, scale, dlogits, row_loss), bad


def sigmoid_binary_crossentropy(y_true, probs, weights, scale, dlogits, row_loss,
                                label_smoothing, epsilon):
    """Clipped BCE of sigmoid probabilities; gradient (probs - t) / n w.r.t. the logits."""
    t, p = _smoothed_binary(y_true, label_smoothing), _f64(probs)
    q, _ = _clip(p, epsilon, np.asarray(probs).dtype)
    loss = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    return _finish(loss.mean(axis=1), (p - t) / p.shape[1], weights, scale, dlogits, row_loss)


def kl_divergence(y_true, y_pred, weights, scale, grad, row_loss, epsilon):
    """Keras KLD: sum t log(t / p) with both clipped to [epsilon, 1]."""
    p = _f64(y_pred)
    t = np.clip(_f64(y_true), epsilon, 1.0)
    q = np.clip(p, epsilon, 1.0)
    inside = (p >= epsilon) & (p <= 1.0)
    loss = np.sum(t * np.log(t / q), axis=1)
    return _finish(loss, np.where(inside, -t / q, 0.0), weights, scale, grad, row_loss)


def poisson(y_true, y_pred, weights, scale, grad, row_loss, epsilon):
    """Keras Poisson: mean(p - t log(p + epsilon))."""
    t, p = _f64(y_true), _f64(y_pred)
    n = p.shape[1]
    return _finish(np.mean(p - t * np.log(p + epsilon), axis=1), (1 - t / (p + epsilon)) / n,
                   weights, scale, grad, row_loss)


def log_cosh(y_true, y_pred, weights, scale, grad, row_loss):
    """Keras log-cosh: mean(log(cosh(p - t)))."""
    d = _f64(y_pred) - _f64(y_true)
    n = d.shape[1]
    loss = np.abs(d) + np.log1p(np.exp(-2 * np.abs(d))) - np.log(2.0)
    return _finish(loss.mean(axis=1), np.tanh(d) / n, weights, scale, grad, row_loss)


def _hinge_targets(y_true):
    t = _f64(y_true)
    return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t


def hinge(y_true, y_pred, weights, scale, grad, row_loss):
    """Keras hinge: mean(max(1 - t p, 0)), 0/1 targets (all of them) made -1/1."""
    t, p = _hinge_targets(y_true), _f64(y_pred)
    m = 1 - t * p
    n = p.shape[1]
    return _finish(np.maximum(m, 0).mean(axis=1), np.where(m > 0, -t, 0.0) / n, weights,
                   scale, grad, row_loss)


def squared_hinge(y_true, y_pred, weights, scale, grad, row_loss):
    """Keras squared hinge: mean(max(1 - t p, 0)^2)."""
    t, p = _hinge_targets(y_true), _f64(y_pred)
    m = np.maximum(1 - t * p, 0)
    n = p.shape[1]
    return _finish((m * m).mean(axis=1), -2 * m * t / n, weights, scale, grad, row_loss)


def categorical_hinge(y_true, y_pred, weights, scale, grad, row_loss):
    """Keras categorical hinge: max(max((1 - t) p) - sum(t p) + 1, 0)."""
    t, p = _f64(y_true), _f64(y_pred)
    neg_all = (1 - t) * p
    top = np.argmax(neg_all, axis=1)
    loss = np.maximum(neg_all.max(axis=1) - np.sum(t * p, axis=1) + 1, 0)
    dloss = -t.copy()
    rows = np.arange(p.shape[0])
    dloss[rows, top] += 1 - t[rows, top]
    dloss[loss <= 0] = 0
    return _finish(loss, dloss, weights, scale, grad, row_loss)


def cosine_similarity(y_true, y_pred, weights, scale, grad, row_loss, epsilon):
    """Keras cosine loss: -sum(t p) / (max(|t|, eps) max(|p|, eps))."""
    t, p = _f64(y_true), _f64(y_pred)
    nt = np.maximum(np.linalg.norm(t, axis=1, keepdims=True), epsilon)
    raw = np.linalg.norm(p, axis=1, keepdims=True)
    npred = np.maximum(raw, epsilon)
    cos = np.sum(t * p, axis=1, keepdims=True) / (nt * npred)
    dloss = np.where(raw < epsilon, -t / (nt * npred), -(t / nt - cos * p / npred) / npred)
    return _finish(-cos[:, 0], dloss, weights, scale, grad, row_loss)


def mean_squared_logarithmic_error(y_true, y_pred, weights, scale, grad, row_loss, epsilon):
    """Keras MSLE: mean((log1p(max(p, eps)) - log1p(max(t, eps)))^2)."""
    t, p = _f64(y_true), _f64(y_pred)
    d = np.log1p(np.maximum(p, epsilon)) - np.log1p(np.maximum(t, epsilon))
    n = p.shape[1]
    dloss = np.where(p >= epsilon, 2 * d / (1 + p), 0.0) / n
    return _finish(np.mean(d * d, axis=1), dloss, weights, scale, grad, row_loss)


def mean_absolute_percentage_error(y_true, y_pred, weights, scale, grad, row_loss, epsilon):
    """Keras MAPE: 100 mean(|t - p| / max(|t|, eps))."""
    t, p = _f64(y_true), _f64(y_pred)
    m = np.maximum(np.abs(t), epsilon)
    n = p.shape[1]
    return _finish(100 * np.mean(np.abs(t - p) / m, axis=1), 100 * np.sign(p - t) / m / n,
                   weights, scale, grad, row_loss)


def binary_focal_crossentropy(y_true, y_pred, weights, scale, grad, row_loss,
                              apply_class_balancing, alpha, gamma, from_logits,
                              label_smoothing, epsilon):
    """Keras binary focal crossentropy: mean of w (1 - p_t)^gamma bce(t, clip(q))."""
    t, z = _smoothed_binary(y_true, label_smoothing), _f64(y_pred)
    x = 1 / (1 + np.exp(-z)) if from_logits else z
    q, inside = _clip(x, epsilon, np.asarray(y_pred).dtype)
    bce = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    u = t + x - 2 * t * x
    f = u ** gamma
    w = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else np.ones_like(t)
    n = x.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(u > 0, gamma * u ** (gamma - 1), 0.0) if gamma else np.zeros_like(u)
    dq = df * (1 - 2 * t) * bce
    if from_logits:
        d = dq * x * (1 - x) + np.where(inside, f * (x - t), 0.0)
    else:
        d = dq + np.where(inside, f * (q - t) / (q * (1 - q)), 0.0)
    return _finish((w * f * bce).mean(axis=1), w * d / n, weights, scale, grad, row_loss)


def categorical_focal_crossentropy(y_true, y_pred, weights, scale, grad, row_loss, alpha,
                                   gamma, from_logits, label_smoothing, epsilon):
    """Keras categorical focal crossentropy: sum alpha (1 - o)^gamma (-t log o)."""
    t, z = _smoothed_categorical(y_true, label_smoothing), _f64(y_pred)
    if from_logits:
        e = np.exp(_log_softmax(z))
        s = np.ones((z.shape[0], 1))
    else:
        s = z.sum(axis=1, keepdims=True)
        e = z / s
    o, inside = _clip(e, epsilon, np.asarray(y_pred).dtype)
    f = (1 - o) ** gamma
    loss = np.sum(alpha * f * -t * np.log(o), axis=1)
    c = alpha * t * (gamma * (1 - o) ** (gamma - 1) * np.log(o) - f / o)
    c = np.where(inside, c, 0.0)
    ce = np.sum(c * e, axis=1, keepdims=True)
    dloss = e * (c - ce) if from_logits else (c - ce) / s
    return _finish(loss, dloss, weights, scale, grad, row_loss)
