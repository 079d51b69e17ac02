"""Reductions: sum, prod, mean, max, min, var, std, logsumexp, argmax, argmin.

Each takes ``axis`` (None for all axes, an int, or a tuple / list of ints; negative ones count
from the end) and ``keepdims``, as Keras 3; an axis out of range or given twice is a
ValueError naming the op. The backward closure expands the output's gradient over the
reduced axes (``_expand``) and broadcasts it back to the input's shape.

Dtypes follow Keras: ``sum`` and ``prod`` of bool, int8 and int16 give int32, of uint8 and
uint16 uint32, and int32 stays int32 (numpy widens all of them to 64 bits); ``mean``,
``var``, ``std`` and ``logsumexp`` of integers or bools give floatx (float32), and of
float16 compute in float32 and return float16; ``argmax`` and ``argmin`` give int32.

Gradients:

- ``max`` / ``min``: shared evenly among the elements equal to the extremum (as
  ``torch.amax``; TensorFlow does the same);
- ``var`` / ``std``: the population statistics (``ddof=0``, as Keras). ``std`` is not
  differentiable where it is 0 (all values along the axes equal): there its gradient is 0,
  the subgradient of that minimum (as ``abs`` at 0), where torch and TensorFlow give NaN. A
  std that rounding leaves tiny but non-zero keeps the formula ``(x - mean) / (n * std)``,
  which stays within ``1 / sqrt(n)`` of 0 and is never NaN;
- ``logsumexp``: the softmax over the axes, computed from the shifted exponentials of the
  forward pass (no overflow); where every element is -inf the result is -inf and the
  gradient 0;
- ``prod``: the product of the other elements, from exclusive cumulative products (exact
  with zeros, no division);
- ``argmax`` / ``argmin``: none (indices): a gradient asked for only through them is an
  error naming the op.
"""
import operator

import numpy as np

from minidl.autodiff.tensor import FLOATX, record
from minidl.ops.elementwise import _operand

__all__ = ["argmax", "argmin", "logsumexp", "max", "mean", "min", "prod", "std", "sum",
           "var"]

_INT32 = np.dtype(np.int32)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
# Accumulator dtypes of sum / prod for integer inputs (Keras; numpy would use int64).
_ACCUMULATOR = {np.dtype(t): np.dtype(a) for t, a in [
    (np.bool_, np.int32), (np.int8, np.int32), (np.int16, np.int32), (np.int32, np.int32),
    (np.uint8, np.uint32), (np.uint16, np.uint32), (np.uint32, np.uint32),
    (np.int64, np.int64), (np.uint64, np.uint64)]}


def _axes(name, axis, ndim):
    """``axis`` as None (all axes) or a sorted tuple of distinct non-negative axes."""
    if axis is None:
        return None
    if type(axis) is int and 0 <= axis < ndim:
        return (axis,)
    try:
        axes = (operator.index(axis),)
    except TypeError:
        try:
            axes = tuple(operator.index(i) for i in axis)
        except TypeError:
            raise TypeError(f"ops.{name}: axis must be None, an int or a tuple of ints; "
                            f"received axis={axis!r}.") from None
    normalized = []
    for i in axes:
        if not -ndim <= i < ndim:
            raise ValueError(f"ops.{name}: axis {i} is out of range for a tensor of rank "
                             f"{ndim} (expected {-ndim} <= axis < {ndim}); received "
                             f"axis={axis!r}.")
        normalized.append(i + ndim if i < 0 else i)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"ops.{name}: axis={axis!r} names an axis twice.")
    return tuple(sorted(normalized))


def _kept_shape(shape, axes):
    """``shape`` with the reduced axes kept as 1 (the keepdims shape)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _reduced_shape(shape, axes):
    """``shape`` without the reduced axes (the shape of a reduction without keepdims)."""
    if axes is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _count(shape, axes):
    """How many elements each output element reduces (a Python int, so that dividing a
    float32 array by it stays float32)."""
    n = 1
    for i, size in enumerate(shape):
        if axes is None or i in axes:
            n *= size
    return n


def _expand(g, shape, axes, keepdims):
    """The gradient of a reduction's output, shaped to broadcast over its input."""
    if keepdims or (axes is None and g.ndim == 0):
        return g
    return g.reshape(_kept_shape(shape, axes))


def sum(x, axis=None, keepdims=False):
    """Sum of a tensor over the given axes.

    Args:
        x: input tensor.
        axis: axis or axes along which to sum; None (default) sums all of them.
        keepdims: keep the reduced axes, with size 1.

    Returns:
        The sum (bool and small integers accumulate in int32 / uint32, as Keras).
    """
    a = _operand(x)
    axes = _axes("sum", axis, a.ndim)
    out = np.add.reduce(a, axes, _ACCUMULATOR.get(a.dtype), None, keepdims)

    def backward(g, needs):
        return (np.broadcast_to(_expand(g, a.shape, axes, keepdims), a.shape),)
    return record("sum", out, (x,), backward)


def prod(x, axis=None, keepdims=False, dtype=None):
    """Product of a tensor's elements over the given axes.

    Args:
        x: input tensor.
        axis: axis or axes along which to multiply; None (default) for all of them.
        keepdims: keep the reduced axes, with size 1.
        dtype: optional dtype of the result and of the accumulation.

    Returns:
        The product. Its gradient at each element is the product of the others (exact where
        elements are 0).
    """
    a = _operand(x)
    axes = _axes("prod", axis, a.ndim)
    dtype = _ACCUMULATOR.get(a.dtype) if dtype is None else np.dtype(dtype)
    out = np.multiply.reduce(a, axes, dtype, None, keepdims)

    def backward(g, needs):
        reduced = tuple(range(a.ndim)) if axes is None else axes
        kept = [i for i in range(a.ndim) if i not in reduced]
        order = kept + list(reduced)
        moved = a.transpose(order)
        rows = moved.reshape(moved.shape[:len(kept)] + (_count(a.shape, axes),))
        # others[j] = prod(rows[:j]) * prod(rows[j+1:]): exclusive products from both ends.
        before = np.ones_like(rows)
        np.multiply.accumulate(rows[..., :-1], axis=-1, out=before[..., 1:])
        after = np.ones_like(rows)
        np.multiply.accumulate(rows[..., :0:-1], axis=-1, out=after[..., 1:])
        others = (before * after[..., ::-1]).reshape(moved.shape)
        others = others.transpose(np.argsort(order))
        return (_expand(g, a.shape, axes, keepdims) * others,)
    return record("prod", out, (x,), backward)


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean of a tensor over the given axes.

    Args:
        x: input tensor.
        axis: axis or axes along which to average; None (default) for all of them.
        keepdims: keep the reduced axes, with size 1.

    Returns:
        The mean (integers and bools give float32; float16 accumulates in float32).
    """
    a = _operand(x)
    axes = _axes("mean", axis, a.ndim)
    count = _count(a.shape, axes)
    kind = a.dtype.kind
    if kind == "f" and a.dtype.itemsize < 4:
        out = (np.add.reduce(a, axes, _FLOAT32, None, keepdims) / count).astype(a.dtype)
    elif kind in "fc":
        out = np.add.reduce(a, axes, None, None, keepdims) / count
    else:
        out = (np.add.reduce(a, axes, _FLOAT64, None, keepdims) / count).astype(FLOATX)

    def backward(g, needs):
        return (np.broadcast_to(_expand(g, a.shape, axes, keepdims) / count, a.shape),)
    return record("mean", out, (x,), backward)


def _extremum_op(name, ufunc, word, bound):
    """The reduction ``name`` (max or min) by ``ufunc`` (np.maximum or np.minimum)."""
    def op(x, axis=None, keepdims=False, initial=None):
        a = _operand(x)
        axes = _axes(name, axis, a.ndim)
        if initial is None:
            out = ufunc.reduce(a, axes, None, None, keepdims)
        else:
            out = ufunc.reduce(a, axes, None, None, keepdims, initial)

        def backward(g, needs):
            hit = np.equal(a, _expand(np.asarray(out), a.shape, axes, keepdims))
            ties = np.add.reduce(hit, axes, g.dtype, None, True)
            # No element equals the result where `initial` won: those gradients are 0.
            np.maximum(ties, 1, out=ties)
            return (hit * (_expand(g, a.shape, axes, keepdims) / ties),)
        return record(name, out, (x,), backward)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"""{word.capitalize()} of a tensor over the given axes.

    Args:
        x: input tensor.
        axis: axis or axes along which to take the {word}; None (default) for all.
        keepdims: keep the reduced axes, with size 1.
        initial: optional {bound} bound of the result (also what an empty reduction gives).

    Returns:
        The {word}. Its gradient is shared evenly among the elements equal to it.
    """
    return op


max = _extremum_op("max", np.maximum, "maximum", "lower")
min = _extremum_op("min", np.minimum, "minimum", "upper")


def _centered(name, x, axis):
    """(input array, axes, count, x - mean in the compute dtype, result dtype) for var/std:
    computed in float32 at least (Keras' compute dtype), returned in the input's float
    dtype, or float32 for integers and bools."""
    a = _operand(x)
    axes = _axes(name, axis, a.ndim)
    result = a.dtype if a.dtype.kind == "f" else FLOATX
    c = a if a.dtype is _FLOAT32 or a.dtype is _FLOAT64 else a.astype(
        np.promote_types(result, _FLOAT32))
    count = _count(a.shape, axes)
    centered = c - np.add.reduce(c, axes, None, None, True) / count
    return a, axes, count, centered, result


def var(x, axis=None, keepdims=False):
    """Variance of a tensor over the given axes (population: divided by n, as Keras).

    Args:
        x: input tensor.
        axis: axis or axes along which to compute it; None (default) for all.
        keepdims: keep the reduced axes, with size 1.

    Returns:
        The variance.
    """
    a, axes, count, d, result = _centered("var", x, axis)
    out = np.add.reduce(d * d, axes, None, None, keepdims) / count
    if out.dtype != result:
        out = out.astype(result)

    def backward(g, needs):
        return (_expand(g, a.shape, axes, keepdims) * (2 / count) * d,)
    return record("var", out, (x,), backward)


def std(x, axis=None, keepdims=False):
    """Standard deviation of a tensor over the given axes (population, as Keras).

    Args:
        x: input tensor.
        axis: axis or axes along which to compute it; None (default) for all.
        keepdims: keep the reduced axes, with size 1.

    Returns:
        The standard deviation. Where it is 0 its gradient is 0 (see the module docstring).
    """
    a, axes, count, d, result = _centered("std", x, axis)
    s = np.sqrt(np.add.reduce(d * d, axes, None, None, True) / count)
    out = s if keepdims else s.reshape(_reduced_shape(a.shape, axes))
    if out.dtype != result:
        out = out.astype(result)

    def backward(g, needs):
        # 1 / (n * std), with inf where std == 0 so that the gradient there is 0.
        scale = np.where(s > 0, s, np.inf) * count
        return (_expand(g, a.shape, axes, keepdims) * (d / scale),)
    return record("std", out, (x,), backward)


def logsumexp(x, axis=None, keepdims=False):
    """Logarithm of the sum of exponentials of a tensor over the given axes.

    Computed as ``m + log(sum(exp(x - m)))`` with ``m`` the maximum, so large inputs do not
    overflow.

    Args:
        x: input tensor.
        axis: axis or axes along which to reduce; None (default) for all.
        keepdims: keep the reduced axes, with size 1.

    Returns:
        ``log(sum(exp(x)))`` (integers give float32). Its gradient is the softmax of ``x``
        over the axes.
    """
    a = _operand(x)
    if a.dtype.kind not in "fc":
        a = a.astype(FLOATX)
    axes = _axes("logsumexp", axis, a.ndim)
    m = np.maximum.reduce(a, axes, None, None, True)
    finite = np.isfinite(m).all()
    if not finite:
        # All -inf (or an inf): shift by 0 so that exp gives 0 (or inf), not NaN.
        m = np.where(np.isfinite(m), m, 0)
    e = np.exp(a - m)
    total = np.add.reduce(e, axes, None, None, True)
    if finite:
        out = np.log(total) + m   # total >= 1: the maximum contributes exp(0)
    else:
        with np.errstate(divide="ignore"):   # log(0) = -inf is the right result
            out = np.log(total) + m
    if not keepdims:
        out = out.reshape(_reduced_shape(a.shape, axes))

    def backward(g, needs):
        softmax = e / np.where(total > 0, total, 1)
        return (_expand(g, a.shape, axes, keepdims) * softmax,)
    return record("logsumexp", out, (x,), backward)


def _arg_op(name, find, word):
    """The op ``name`` (argmax or argmin): ``find`` (the ndarray method) as int32 indices."""
    def op(x, axis=None, keepdims=False):
        a = _operand(x)
        if axis is not None:
            if isinstance(axis, (tuple, list)):
                raise TypeError(f"ops.{name}: axis must be None or an int; received "
                                f"axis={axis!r}.")
            axis = _axes(name, axis, a.ndim)[0]
        out = np.asarray(find(a, axis=axis, keepdims=bool(keepdims)), dtype=_INT32)
        return record(name, out, (x,), None)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"""Indices of the {word} values along an axis.

    Args:
        x: input tensor.
        axis: the axis to search; None (default) searches the flattened tensor.
        keepdims: keep the reduced axis, with size 1.

    Returns:
        An int32 tensor of indices (the first on ties). It has no gradient.
    """
    return op


argmax = _arg_op("argmax", np.ndarray.argmax, "maximum")
argmin = _arg_op("argmin", np.ndarray.argmin, "minimum")
