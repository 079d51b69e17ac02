"""Reference for ``minidl._core._normalization``: the same kernels in plain numpy.

Same names and signatures; results are written into the caller's arrays like the kernels.
The math runs in float64 whatever the dtype, so for float32 data the reference is the exact
result rounded once. ``owner`` only names the caller in the kernels' messages.
"""
import numpy as np


def _channels(x, axis):
    """x as float64 (outer, C, inner) around ``axis``."""
    outer = int(np.prod(x.shape[:axis]))
    inner = int(np.prod(x.shape[axis + 1:]))
    return x.astype(np.float64).reshape(outer, x.shape[axis], inner)


def _relu(out, relu_max):
    out = np.maximum(out, 0)
    return out if relu_max is None else np.minimum(out, relu_max)


def _per_channel(v):
    return np.asarray(v, np.float64).reshape(1, -1, 1)


def batch_norm_train(x, axis, gamma, beta, moving_mean, moving_variance, mean, invstd, y,
                     momentum, epsilon, owner=None, relu=False, relu_max=None):
    x3 = _channels(x, axis)
    m = x3.mean(axis=(0, 2))
    v = ((x3 - m.reshape(1, -1, 1)) ** 2).mean(axis=(0, 2))   # biased
    inv = 1.0 / np.sqrt(v + epsilon)
    out = (x3 - m.reshape(1, -1, 1)) * (inv * gamma).reshape(1, -1, 1) + _per_channel(beta)
    y[...] = _relu(out, relu_max).reshape(x.shape) if relu else out.reshape(x.shape)
    mean[...] = m
    invstd[...] = inv
    moving_mean[...] = moving_mean * momentum + m * (1.0 - momentum)
    moving_variance[...] = moving_variance * momentum + v * (1.0 - momentum)
    return y


def batch_norm_inference(x, axis, gamma, beta, moving_mean, moving_variance, y, epsilon,
                         owner=None, relu=False, relu_max=None):
    x3 = _channels(x, axis)
    a = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(moving_variance, np.float64) + epsilon)
    out = (x3 - _per_channel(moving_mean)) * a.reshape(1, -1, 1) + _per_channel(beta)
    y[...] = _relu(out, relu_max).reshape(x.shape) if relu else out.reshape(x.shape)
    return y


def batch_norm_backward(x, dy, axis, gamma, mean, invstd, dx, dgamma, dbeta, owner=None,
                        gate=None, relu_max=None):
    if gate is not None:
        gate = np.asarray(gate)
        passes = gate > 0 if relu_max is None else (gate > 0) & (gate < relu_max)
        dy = np.where(passes, dy, 0)
    x3, g3 = _channels(x, axis), _channels(dy, axis)
    count = x3.shape[0] * x3.shape[2]
    xhat = (x3 - _per_channel(mean)) * _per_channel(invstd)
    sum_dy = g3.sum(axis=(0, 2))
    sum_dy_xhat = (g3 * xhat).sum(axis=(0, 2))
    if dgamma is not None:
        dgamma[...] = sum_dy_xhat
    if dbeta is not None:
        dbeta[...] = sum_dy
    if dx is not None:
        k = _per_channel(np.asarray(gamma, np.float64) * np.asarray(invstd, np.float64))
        out = k * (g3 - _per_channel(sum_dy) / count - xhat * _per_channel(sum_dy_xhat) / count)
        dx[...] = out.reshape(x.shape)
    return dx


def layer_norm_forward(x, cols, gamma, beta, mean, invstd, y, epsilon, owner=None):
    x2 = x.astype(np.float64).reshape(-1, cols)
    m = x2.mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(((x2 - m) ** 2).mean(axis=1, keepdims=True) + epsilon)
    out = (x2 - m) * inv * np.ravel(gamma) + np.ravel(beta)
    y[...] = out.reshape(x.shape)
    if mean is not None:
        mean[...] = m.reshape(mean.shape)
        invstd[...] = inv.reshape(invstd.shape)
    return y


def layer_norm_backward(x, dy, cols, gamma, mean, invstd, dx, dgamma, dbeta, owner=None):
    x2 = x.astype(np.float64).reshape(-1, cols)
    g2 = dy.astype(np.float64).reshape(-1, cols)
    m = np.asarray(mean, np.float64).reshape(-1, 1)
    inv = np.asarray(invstd, np.float64).reshape(-1, 1)
    xhat = (x2 - m) * inv
    if dgamma is not None:
        dgamma[...] = (g2 * xhat).sum(axis=0).reshape(dgamma.shape)
    if dbeta is not None:
        dbeta[...] = g2.sum(axis=0).reshape(dbeta.shape)
    if dx is not None:
        g = g2 * np.ravel(gamma)
        out = inv * (g - g.mean(axis=1, keepdims=True)
                     - xhat * (g * xhat).mean(axis=1, keepdims=True))
        dx[...] = out.reshape(x.shape)
    return dx


def _groups(x, axis, groups):
    """x as float64 (N, P, G, Cg, Q) around the channel ``axis``."""
    n, c = x.shape[0], x.shape[axis]
    p = int(np.prod(x.shape[1:axis]))
    q = int(np.prod(x.shape[axis + 1:]))
    return x.astype(np.float64).reshape(n, p, groups, c // groups, q)


def _group_vector(v, groups):
    """A (C,) vector broadcast over (N, P, G, Cg, Q)."""
    return np.asarray(v, np.float64).reshape(1, 1, groups, -1, 1)


def group_norm_forward(x, axis, groups, gamma, beta, mean, invstd, y, epsilon, owner=None):
    x5 = _groups(x, axis, groups)
    m = x5.mean(axis=(1, 3, 4), keepdims=True)
    inv = 1.0 / np.sqrt(((x5 - m) ** 2).mean(axis=(1, 3, 4), keepdims=True) + epsilon)
    out = (x5 - m) * inv * _group_vector(gamma, groups) + _group_vector(beta, groups)
    y[...] = out.reshape(x.shape)
    if mean is not None:
        mean[...] = m.reshape(mean.shape)
        invstd[...] = inv.reshape(invstd.shape)
    return y


def group_norm_backward(x, dy, axis, groups, gamma, mean, invstd, dx, dgamma, dbeta,
                        owner=None):
    x5, g5 = _groups(x, axis, groups), _groups(dy, axis, groups)
    m = np.asarray(mean, np.float64).reshape(-1, 1, groups, 1, 1)
    inv = np.asarray(invstd, np.float64).reshape(-1, 1, groups, 1, 1)
    xhat = (x5 - m) * inv
    if dgamma is not None:
        dgamma[...] = (g5 * xhat).sum(axis=(0, 1, 4)).reshape(dgamma.shape)
    if dbeta is not None:
        dbeta[...] = g5.sum(axis=(0, 1, 4)).reshape(dbeta.shape)
    if dx is not None:
        h = g5 * _group_vector(gamma, groups)
        out = inv * (h - h.mean(axis=(1, 3, 4), keepdims=True)
                     - xhat * (h * xhat).mean(axis=(1, 3, 4), keepdims=True))
        dx[...] = out.reshape(x.shape)
    return dx


def _lines(x, first, last):
    """x as float64 (outer, K, inner) around the axes first..last."""
    outer = int(np.prod(x.shape[:first]))
    inner = int(np.prod(x.shape[last + 1:]))
    return x.astype(np.float64).reshape(outer, -1, inner)


def _unit_scale(x3, epsilon):
    with np.errstate(divide="ignore"):
        r = 1.0 / np.sqrt((x3 * x3).sum(axis=1, keepdims=True))
    clipped = r >= 1.0 / epsilon
    return np.where(clipped, 1.0 / epsilon, r), clipped


def unit_norm_forward(x, first, last, y, epsilon=1e-12, owner=None):
    x3 = _lines(x, first, last)
    r, _ = _unit_scale(x3, epsilon)
    y[...] = (x3 * r).reshape(x.shape)
    return y


def unit_norm_backward(x, dy, first, last, dx, epsilon=1e-12, owner=None):
    x3, g3 = _lines(x, first, last), _lines(dy, first, last)
    r, clipped = _unit_scale(x3, epsilon)
    slope = np.where(clipped, 0.0, r ** 3 * (g3 * x3).sum(axis=1, keepdims=True))
    dx[...] = (r * g3 - x3 * slope).reshape(x.shape)
    return dx
