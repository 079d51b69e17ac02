"""Reductions: sum, mean, max, min, var, std, logsumexp, argmax, argmin."""
import numpy as np

from minidl.autodiff.tensor import record, value_of

__all__ = ["mean", "sum"]


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(i) % ndim for i in axes) if ndim else ()


def _expand(g, shape, axis, keepdims):
    """The gradient of a reduction's output, reshaped to broadcast over the input."""
    if not keepdims:
        g = np.expand_dims(g, _axes(axis, len(shape)))
    return g


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (an int, a tuple, or None for all)."""
    a = np.asarray(value_of(x))
    out = np.sum(a, axis=axis, keepdims=keepdims)

    def backward(g, needs):
        return (np.broadcast_to(_expand(g, a.shape, axis, keepdims), a.shape),)
    return record("sum", out, (x,), backward)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (an int, a tuple, or None for all)."""
    a = np.asarray(value_of(x))
    out = np.mean(a, axis=axis, keepdims=keepdims)
    if a.dtype.kind in "iub":
        out = out.astype(np.float32)
    count = a.size // max(np.size(out), 1) if a.size else 1

    def backward(g, needs):
        return (np.broadcast_to(_expand(g, a.shape, axis, keepdims) / count, a.shape),)
    return record("mean", out, (x,), backward)
