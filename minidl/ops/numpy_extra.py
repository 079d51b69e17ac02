"""The rest of ``keras.ops``' numpy-style ops that user code reaches for: sorting (``sort``,
``argsort``), scans (``cumsum``, ``cumprod``), rearrangements (``flip``, ``roll``), diagonals
and triangles (``diag``, ``diagonal``, ``trace``, ``triu``, ``tril``), floating-point tests
and repair (``isnan``, ``isinf``, ``isfinite``, ``nan_to_num``), logical and counting
reductions (``any``, ``all``, ``count_nonzero``), ``average``, ``linspace``, ``meshgrid``,
``size`` and ``ndim``.

Each op follows numpy's semantics and Keras 3's signatures, defaults and dtypes:

- ``argsort`` and ``count_nonzero`` give int32; ``sort`` and ``argsort`` are stable;
- ``cumsum`` / ``cumprod`` keep the input's dtype (bool gives int32), or take ``dtype``;
- ``trace`` accumulates bool, int8 and int16 in int32 and uint8 / uint16 in uint32;
- ``average`` and ``linspace`` give floats: floatx (float32) for integers and Python
  numbers, else the widest float operand;
- ``isnan``, ``isinf``, ``isfinite``, ``any`` and ``all`` give bool.

Gradients: ``sort`` routes the gradient back through the sorting permutation; scans,
flips, rolls, diagonals and triangles pass it through the same rearrangement; ``cumprod``
is exact where inputs are 0; ``nan_to_num`` passes it where the input is finite;
``average`` reaches the weights too, ``linspace`` its ``start`` and ``stop``. ``argsort``,
the tests, ``any``, ``all`` and ``count_nonzero`` have none (a gradient asked for only
through them is an error naming the op).
"""
import numbers

import numpy as np

from minidl.autodiff.tensor import (FLOATX, Tensor, _UFUNC_OPS, record, to_array, unbroadcast,
                                    value_of)
from minidl.ops.elementwise import _operand
from minidl.ops.reduction import _axes, _expand
from minidl.ops.shape import _axis

__all__ = ["all", "any", "argsort", "average", "count_nonzero", "cumprod", "cumsum", "diag",
           "diagonal", "flip", "isfinite", "isinf", "isnan", "linspace", "meshgrid",
           "nan_to_num", "ndim", "roll", "size", "sort", "trace", "tril", "triu"]

_BOOL = np.dtype(np.bool_)
_INT32 = np.dtype(np.int32)
# trace's accumulator for small integer types (Keras; numpy would use the platform int).
_TRACE_ACCUMULATOR = {np.dtype(t): np.dtype(a) for t, a in [
    (np.bool_, np.int32), (np.int8, np.int32), (np.int16, np.int32),
    (np.uint8, np.uint32), (np.uint16, np.uint32)]}


def _along(name, a, axis):
    """(array to work on, axis) for an op with numpy's ``axis=None`` meaning "flattened"."""
    if axis is None:
        return a.reshape(-1), 0
    if a.ndim == 0:
        raise ValueError(f"ops.{name}: a 0-d tensor has no axis {axis}; use axis=None.")
    return a, _axis(axis, a.ndim, name)


def _int_arg(name, arg, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"ops.{name}: {arg} must be an int; received {arg}={value!r:.80}.")
    return int(value)


def _float_result(*dtypes):
    """Keras' float result of ``dtypes`` combined with a weak Python float: the widest float
    among them, or floatx when none is a float."""
    floats = [d for d in dtypes if d.kind == "f"]
    return np.result_type(*floats) if floats else FLOATX


# ---- sorting ----

def sort(x, axis=-1):
    """Sorts the elements of ``x`` along a given axis in ascending order.

    Args:
        x: Input tensor.
        axis: Axis along which to sort. If None, the tensor is flattened before sorting.
            Defaults to -1; the last axis.

    Returns:
        Sorted tensor (stable: equal elements keep their order; NaNs sort last). Its
        gradient goes back to the position each element came from.
    """
    a = _operand(x)
    src, ax = _along("sort", a, axis)
    order = np.argsort(src, axis=ax, kind="stable")
    out = np.take_along_axis(src, order, axis=ax)

    def backward(g, needs):
        full = np.empty(src.shape, g.dtype)
        np.put_along_axis(full, order, g, axis=ax)
        return (full.reshape(a.shape),)
    return record("sort", out, (x,), backward)


def argsort(x, axis=-1):
    """Returns the indices that would sort a tensor.

    Args:
        x: Input tensor.
        axis: Axis along which to sort. Defaults to -1 (the last axis). If None, the
            flattened tensor is used.

    Returns:
        int32 tensor of indices that sort ``x`` along the specified axis (stable: equal
        elements keep their order). It has no gradient.
    """
    a = _operand(x)
    src, ax = _along("argsort", a, axis)
    out = np.argsort(src, axis=ax, kind="stable").astype(_INT32)
    return record("argsort", out, (x,), None)


# ---- scans ----

def _scan_dtype(a, dtype):
    dt = a.dtype if dtype is None else np.dtype(dtype)
    return _INT32 if dt == _BOOL else dt


def _reverse_cumsum(g, ax):
    return np.flip(np.cumsum(np.flip(g, ax), axis=ax), ax)


def cumsum(x, axis=None, dtype=None):
    """Returns the cumulative sum of elements along a given axis.

    Args:
        x: Input tensor.
        axis: Axis along which the cumulative sum is computed. By default the input is
            flattened.
        dtype: dtype of returned tensor. Defaults to ``x.dtype`` (bool gives int32).

    Returns:
        Output tensor. Its gradient is the reversed cumulative sum of the output's.
    """
    a = _operand(x)
    src, ax = _along("cumsum", a, axis)
    out = np.cumsum(src, axis=ax, dtype=_scan_dtype(a, dtype))
    if out.dtype.kind != "f":
        return record("cumsum", out, (x,), None)
    return record("cumsum", out, (x,),
                  lambda g, needs: (_reverse_cumsum(g, ax).reshape(a.shape),))


def cumprod(x, axis=None, dtype=None):
    """Return the cumulative product of elements along a given axis.

    Args:
        x: Input tensor.
        axis: Axis along which the cumulative product is computed. By default the input
            is flattened.
        dtype: dtype of returned tensor. Defaults to ``x.dtype`` (bool gives int32).

    Returns:
        Output tensor. Its gradient is exact where elements of ``x`` are 0 (no division
        by them).
    """
    a = _operand(x)
    src, ax = _along("cumprod", a, axis)
    out = np.cumprod(src, axis=ax, dtype=_scan_dtype(a, dtype))
    if out.dtype.kind != "f":
        return record("cumprod", out, (x,), None)

    def backward(g, needs):
        c = src.astype(out.dtype, copy=False)
        if np.all(c != 0):
            # d out_i / d x_j = out_i / x_j for i >= j.
            return ((_reverse_cumsum(g * out, ax) / c).reshape(a.shape),)
        # With zeros: grad_j = prod(x[:j]) * s_j, where s_j = g_j + x_{j+1} * s_{j+1} sums
        # g_i * prod(x[j+1 : i+1]) over i >= j without dividing by x_j.
        cm = np.moveaxis(c, ax, -1)
        gm = np.moveaxis(g, ax, -1)
        n = cm.shape[-1]
        before = np.ones_like(gm)
        np.cumprod(cm[..., :-1], axis=-1, out=before[..., 1:])
        s = np.empty_like(gm)
        s[..., n - 1] = gm[..., n - 1]
        for j in range(n - 2, -1, -1):
            s[..., j] = gm[..., j] + cm[..., j + 1] * s[..., j + 1]
        return (np.moveaxis(before * s, -1, ax).reshape(a.shape),)
    return record("cumprod", out, (x,), backward)


# ---- rearrangements ----

def flip(x, axis=None):
    """Reverse the order of elements in the tensor along the given axis.

    The shape of the tensor is preserved, but the elements are reordered.

    Args:
        x: Input tensor.
        axis: Axis or axes along which to flip the tensor. The default, ``axis=None``,
            will flip over all of the axes of the input tensor.

    Returns:
        Output tensor with entries of ``axis`` reversed (a view).
    """
    a = _operand(x)
    axes = _axes("flip", axis, a.ndim)
    return record("flip", np.flip(a, axes), (x,), lambda g, needs: (np.flip(g, axes),))


def roll(x, shift, axis=None):
    """Roll tensor elements along a given axis.

    Elements that roll beyond the last position are re-introduced at the first.

    Args:
        x: Input tensor.
        shift: The number of places by which elements are shifted (an int, or a tuple of
            ints paired with a tuple ``axis``).
        axis: The axis along which elements are shifted. By default, the tensor is
            flattened before shifting, after which the original shape is restored.

    Returns:
        Output tensor. Its gradient is the output's rolled back.
    """
    a = _operand(x)
    shifts = np.asarray(value_of(shift))
    if shifts.dtype.kind not in "iu" or shifts.ndim > 1:
        raise TypeError(f"ops.roll: shift must be an int or a sequence of ints; received "
                        f"shift={shift!r:.80}.")
    shifts = shifts.astype(np.intp)   # (a uint shift would wrap when negated for backward)
    if axis is not None:
        axes = np.asarray(axis)
        if axes.dtype.kind not in "iu" or axes.ndim > 1 or \
                np.any((axes < -a.ndim) | (axes >= a.ndim)):
            raise ValueError(f"ops.roll: axis={axis!r} must be an int or a sequence of ints "
                             f"in range for a tensor of rank {a.ndim}.")
        try:
            np.broadcast(shifts, axes)
        except ValueError:
            raise ValueError(f"ops.roll: shift={shift!r} and axis={axis!r} must pair up "
                             f"(as many shifts as axes, or one of them a single value)."
                             ) from None
        axis = int(axes) if axes.ndim == 0 else tuple(int(i) for i in axes)
    out = np.roll(a, shifts, axis)
    return record("roll", out, (x,), lambda g, needs: (np.roll(g, -shifts, axis),))


# ---- diagonals and triangles ----

def _diagonal_axes(name, a, axis1, axis2):
    if a.ndim < 2:
        raise ValueError(f"ops.{name}: x must have at least 2 axes; received shape "
                         f"{a.shape}.")
    ax1 = _axis(axis1, a.ndim, name, "axis1")
    ax2 = _axis(axis2, a.ndim, name, "axis2")
    if ax1 == ax2:
        raise ValueError(f"ops.{name}: axis1 and axis2 must be different axes; received "
                         f"axis1={axis1}, axis2={axis2} for a tensor of rank {a.ndim}.")
    return ax1, ax2


def _diagonal_positions(shape, ax1, ax2, offset):
    """Row and column indices of the ``offset`` diagonal of the (ax1, ax2) planes."""
    n = max(0, min(shape[ax1] - max(-offset, 0), shape[ax2] - max(offset, 0)))
    rows = np.arange(n) + max(-offset, 0)
    return rows, rows + offset


def diag(x, k=0):
    """Extract a diagonal or construct a diagonal array.

    Args:
        x: Input tensor. If ``x`` is 2-D, returns the k-th diagonal of ``x``. If ``x`` is
            1-D, return a 2-D tensor with ``x`` on the k-th diagonal.
        k: The diagonal to consider. Defaults to 0. Use ``k > 0`` for diagonals above the
            main diagonal, and ``k < 0`` for diagonals below the main diagonal.

    Returns:
        The extracted diagonal or constructed diagonal tensor.
    """
    a = _operand(x)
    k = _int_arg("diag", "k", k)
    if a.ndim == 1:
        out = np.diag(a, k)
        return record("diag", out, (x,), lambda g, needs: (np.diagonal(g, k).copy(),))
    if a.ndim != 2:
        raise ValueError(f"ops.diag: x must be 1-D or 2-D; received shape {a.shape}.")
    out = np.diag(a, k)
    rows, cols = _diagonal_positions(a.shape, 0, 1, k)

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        full[rows, cols] = g
        return (full,)
    return record("diag", out, (x,), backward)


def diagonal(x, offset=0, axis1=0, axis2=1):
    """Return specified diagonals.

    If ``x`` is 2-D, returns the diagonal of ``x`` with the given offset, i.e., the
    collection of elements of the form ``x[i, i+offset]``. If ``x`` has more than two
    dimensions, the axes specified by ``axis1`` and ``axis2`` are used to determine the 2-D
    sub-array whose diagonal is returned. The shape of the resulting array can be
    determined by removing ``axis1`` and ``axis2`` and appending an index to the right
    equal to the size of the resulting diagonals.

    Args:
        x: Input tensor.
        offset: Offset of the diagonal from the main diagonal. Can be positive or
            negative. Defaults to 0 (main diagonal).
        axis1: Axis to be used as the first axis of the 2-D sub-arrays. Defaults to 0.
        axis2: Axis to be used as the second axis of the 2-D sub-arrays. Defaults to 1.

    Returns:
        Tensor of diagonals (a read-only view).
    """
    a = _operand(x)
    offset = _int_arg("diagonal", "offset", offset)
    ax1, ax2 = _diagonal_axes("diagonal", a, axis1, axis2)
    out = np.diagonal(a, offset, ax1, ax2)
    rows, cols = _diagonal_positions(a.shape, ax1, ax2, offset)

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        np.moveaxis(full, (ax1, ax2), (-2, -1))[..., rows, cols] = g
        return (full,)
    return record("diagonal", out, (x,), backward)


def trace(x, offset=0, axis1=0, axis2=1):
    """Return the sum along diagonals of the tensor.

    If ``x`` is 2-D, the sum along its diagonal with the given offset is returned, i.e.,
    the sum of elements ``x[i, i+offset]`` for all ``i``. If ``x`` has more than two
    dimensions, then the axes specified by ``axis1`` and ``axis2`` are used to determine
    the 2-D sub-arrays whose traces are returned.

    Args:
        x: Input tensor.
        offset: Offset of the diagonal from the main diagonal. Can be both positive and
            negative. Defaults to 0.
        axis1: Axis to be used as the first axis of the 2-D sub-arrays. Defaults to 0.
        axis2: Axis to be used as the second axis of the 2-D sub-arrays. Defaults to 1.

    Returns:
        If ``x`` is 2-D, the sum of the diagonal is returned. If ``x`` has larger
        dimensions, then a tensor of sums along diagonals is returned (bool and small
        integers accumulate in int32 / uint32, as Keras).
    """
    a = _operand(x)
    offset = _int_arg("trace", "offset", offset)
    ax1, ax2 = _diagonal_axes("trace", a, axis1, axis2)
    out = np.asarray(np.trace(a, offset, ax1, ax2, dtype=_TRACE_ACCUMULATOR.get(a.dtype)))
    rows, cols = _diagonal_positions(a.shape, ax1, ax2, offset)

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        np.moveaxis(full, (ax1, ax2), (-2, -1))[..., rows, cols] = g[..., None]
        return (full,)
    return record("trace", out, (x,), backward)


def _triangle_op(name, fn, which, zeroed):
    """tril / triu: ``fn`` (np.tril / np.triu) over the last two axes; the gradient is the
    same triangle of the incoming one."""
    def op(x, k=0):
        a = _operand(x)
        k = _int_arg(name, "k", k)
        if a.ndim < 2:
            raise ValueError(f"ops.{name}: x must have at least 2 axes (the triangle is taken "
                             f"in the last two); received shape {a.shape}.")
        return record(name, fn(a, k), (x,), lambda g, needs: (fn(g, k),))
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"""Return {which} triangle of a tensor.

    For tensors with ``ndim`` exceeding 2, ``{name}`` will apply to the final two axes.

    Args:
        x: Input tensor.
        k: Diagonal {zeroed} which to zero elements. Defaults to 0, the main diagonal.
            ``k < 0`` is below it, and ``k > 0`` is above it.

    Returns:
        {which.capitalize()} triangle of ``x``, of same shape and data type as ``x``.
    """
    return op


tril = _triangle_op("tril", np.tril, "lower", "above")
triu = _triangle_op("triu", np.triu, "upper", "below")


# ---- floating-point tests and repair ----

def _test_op(name, fn, integer_answer, summary):
    """isnan / isinf / isfinite: ``fn`` on floats; integers and bools are always finite (np.isnan
    has no loop for some of them), so they get ``integer_answer`` everywhere."""
    def op(x):
        a = _operand(x)
        out = fn(a) if a.dtype.kind in "fc" else np.full(a.shape, integer_answer)
        return record(name, out, (x,), None)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"""{summary}

    Args:
        x: Input tensor.

    Returns:
        Output boolean tensor. It has no gradient.
    """
    return op


isnan = _test_op("isnan", np.isnan, False,
                 "Test element-wise for NaN and return result as a boolean tensor.")

isinf = _test_op("isinf", np.isinf, False,
                 "Test element-wise for positive or negative infinity.")

isfinite = _test_op("isfinite", np.isfinite, True, """\
Return whether a tensor is finite, element-wise.

    Real values are finite when they are not NaN, not positive infinity, and not negative
    infinity.""")


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """Replace NaN with zero and infinity with large finite numbers.

    Args:
        x: Input data.
        nan: Optional float or int. Value to replace ``NaN`` entries with.
        posinf: Optional float or int. Value to replace positive infinity with
            (default: the largest finite value of the dtype).
        neginf: Optional float or int. Value to replace negative infinity with
            (default: the most negative finite value of the dtype).

    Returns:
        ``x``, with non-finite values replaced. The gradient passes where ``x`` is
        finite and is 0 at the replaced elements.
    """
    a = _operand(x)
    for name, value in (("nan", nan), ("posinf", posinf), ("neginf", neginf)):
        if value is not None and (isinstance(value, (bool, np.bool_)) or
                                  not isinstance(value, numbers.Real)):
            raise TypeError(f"ops.nan_to_num: {name} must be a number or None; received "
                            f"{name}={value!r:.80}.")
    out = np.nan_to_num(a, copy=True, nan=nan, posinf=posinf, neginf=neginf)
    if a.dtype.kind not in "fc":
        return record("nan_to_num", out, (x,), lambda g, needs: (g,))
    finite = np.isfinite(a)
    return record("nan_to_num", out, (x,), lambda g, needs: (np.where(finite, g, 0),))


# ---- logical and counting reductions ----

def _logical_reduction(name, fn, summary, word):
    """any / all: ``fn`` (np.any / np.all) over the axes, as a bool tensor with no gradient."""
    def op(x, axis=None, keepdims=False):
        a = _operand(x)
        axes = _axes(name, axis, a.ndim)
        return record(name, fn(a, axis=axes, keepdims=bool(keepdims)), (x,), None)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"""{summary}

    Args:
        x: Input tensor.
        axis: An integer or tuple of integers that represent the axis along which a
            logical {word} reduction is performed. The default (``axis=None``) is to perform
            a logical {word} over all the dimensions of the input array.
        keepdims: If True, axes which are reduced are left in the result as dimensions
            with size one.

    Returns:
        The bool tensor containing the logical {word} reduction over the ``axis``. It has no
        gradient.
    """
    return op


any = _logical_reduction("any", np.any,
                         "Test whether any array element along a given axis evaluates to True.",
                         "OR")
all = _logical_reduction("all", np.all,
                         "Test whether all array elements along a given axis evaluate to True.",
                         "AND")


def count_nonzero(x, axis=None):
    """Counts the number of non-zero values in ``x`` along the given ``axis``.

    If no axis is specified then all non-zeros in the tensor are counted.

    Args:
        x: Input tensor.
        axis: Axis or tuple of axes along which to count the number of non-zeros.
            Defaults to None.

    Returns:
        int32 tensor of the counts. It has no gradient.
    """
    a = _operand(x)
    axes = _axes("count_nonzero", axis, a.ndim)
    out = np.asarray(np.count_nonzero(a, axis=axes)).astype(_INT32)
    return record("count_nonzero", out, (x,), None)


# ---- average ----

def average(x, axis=None, weights=None):
    """Compute the weighted average along the specified axis.

    Args:
        x: Input tensor.
        axis: Integer (or tuple of integers) along which to average ``x``. The default,
            ``axis=None``, will average over all of the elements of the input tensor.
        weights: Tensor of weights associated with the values in ``x``. Each value in
            ``x`` contributes to the average according to its associated weight. The
            weights array can either be 1-D (in which case its length must be the size
            of ``x`` along the given int ``axis``) or of the same shape as ``x``. If
            ``weights=None`` (default), then all data in ``x`` are assumed to have a
            weight equal to one.

    Returns:
        The average along the specified axis (float32 for integer inputs). Gradients
        reach ``x`` and ``weights``.
    """
    a = _operand(x)
    axes = _axes("average", axis, a.ndim)
    w = None if weights is None else _operand(weights)
    result = _float_result(a.dtype, *(() if w is None else (w.dtype,)))
    c = a.astype(result, copy=False)
    if w is None:
        count = int(np.prod([a.shape[i] for i in (range(a.ndim) if axes is None else axes)]))
        out = np.mean(c, axis=axes)

        def backward(g, needs):
            return (np.broadcast_to(_expand(g, a.shape, axes, False) / count, a.shape),)
        return record("average", out, (x,), backward)
    if w.shape == a.shape:
        wb = w
    elif w.ndim == 1 and axes is not None and len(axes) == 1 and w.shape[0] == a.shape[axes[0]]:
        wb = w.reshape([-1 if i == axes[0] else 1 for i in range(a.ndim)])
    else:
        raise ValueError(f"ops.average: weights must have the shape of x {a.shape}, or be "
                         f"1-D with the length of x along an int axis; received weights of "
                         f"shape {w.shape} and axis={axis!r}.")
    wb = wb.astype(result, copy=False)
    total = np.sum(np.broadcast_to(wb, a.shape), axis=axes, keepdims=True)
    if np.any(total == 0):
        raise ZeroDivisionError(f"ops.average: the weights sum to 0 along axis={axis!r}; the "
                                f"weighted average is undefined there.")
    mean = np.sum(c * wb, axis=axes, keepdims=True) / total
    out = mean.reshape([n for i, n in enumerate(a.shape) if axes is not None and i not in axes])

    def backward(g, needs):
        gk = _expand(g, a.shape, axes, False)
        g_x = np.broadcast_to(gk * wb / total, a.shape) if needs[0] else None
        g_w = None
        if needs[1]:
            g_w = unbroadcast(gk * (c - mean) / total, wb.shape).reshape(w.shape)
        return g_x, g_w
    return record("average", out, (x, weights), backward)


# ---- creation ----

def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """Return evenly spaced numbers over a specified interval.

    Returns ``num`` evenly spaced samples, calculated over the interval
    ``[start, stop]``. The endpoint of the interval can optionally be excluded.

    Args:
        start: The starting value of the sequence (a number or a tensor).
        stop: The end value of the sequence, unless ``endpoint`` is set to False. In that
            case, the sequence consists of all but the last of ``num + 1`` evenly spaced
            samples, so that ``stop`` is excluded.
        num: Number of samples to generate. Defaults to 50. Must be non-negative.
        endpoint: If True, ``stop`` is the last sample. Otherwise, it is not included.
            Defaults to True.
        retstep: If True, return ``(samples, step)``, where ``step`` is the spacing
            between samples.
        dtype: The type of the output tensor. Defaults to float32 (float64 when ``start``
            or ``stop`` is a float64 tensor); integer dtypes round down, as numpy.
        axis: The axis in the result to store the samples, for tensor ``start`` / ``stop``.
            Defaults to 0.

    Returns:
        A tensor of evenly spaced numbers; with ``retstep``, also the step. Float results
        pass gradients to tensor ``start`` and ``stop``.
    """
    s, e = value_of(start), value_of(stop)
    num = _int_arg("linspace", "num", num)
    if num < 0:
        raise ValueError(f"ops.linspace: num must be non-negative; received num={num}.")
    if dtype is None:
        dtype = _float_result(*(v.dtype for v in (s, e) if isinstance(v, np.ndarray)))
    dtype = np.dtype(dtype)
    s64, e64 = np.asarray(s, np.float64), np.asarray(e, np.float64)
    try:
        samples, step = np.linspace(s64, e64, num, endpoint=bool(endpoint), retstep=True,
                                    axis=axis)
    except (ValueError, np.exceptions.AxisError) as error:
        raise ValueError(f"ops.linspace: {error} (start of shape {s64.shape}, stop of shape "
                         f"{e64.shape}, axis={axis}).") from None
    if dtype.kind in "iu":
        samples = np.floor(samples)
    out = samples.astype(dtype)
    div = (num - 1) if endpoint else num
    # Sample i is start + t_i (stop - start); numpy puts the last one exactly at stop.
    t = np.arange(num, dtype=np.float64) / div if div > 0 else np.zeros(num)
    ax = axis % out.ndim if out.ndim else 0
    t = t.reshape([-1 if i == ax else 1 for i in range(out.ndim)])
    parents = (start, stop)

    def backward(g, needs):
        g_start = unbroadcast(np.sum(g * (1 - t), axis=ax), s64.shape) if needs[0] else None
        g_stop = unbroadcast(np.sum(g * t, axis=ax), e64.shape) if needs[1] else None
        return g_start, g_stop
    samples_t = record("linspace", out, parents, backward if dtype.kind == "f" else None)
    if not retstep:
        return samples_t
    step_dtype = dtype if dtype.kind == "f" else _float_result(s64.dtype)
    scale = 1.0 / div if div > 0 else np.nan

    def step_backward(g, needs):
        return (unbroadcast(-g * scale, s64.shape) if needs[0] else None,
                unbroadcast(g * scale, e64.shape) if needs[1] else None)
    step_t = record("linspace", np.asarray(step).astype(step_dtype), parents, step_backward)
    return samples_t, step_t


def meshgrid(*x, indexing="xy"):
    """Creates grids of coordinates from coordinate vectors.

    Args:
        x: 1-D tensors representing the coordinates of a grid (other shapes are
            flattened, as numpy does).
        indexing: ``"xy"`` or ``"ij"``. "xy" is cartesian; "ij" is matrix indexing of
            output. Defaults to ``"xy"``.

    Returns:
        Sequence of N tensors. For 1-D inputs of lengths ``N1, ..., Nn``: with ``"ij"``
        indexing, tensors of shape ``(N1, N2, ..., Nn)``; with ``"xy"``, of shape
        ``(N2, N1, N3, ..., Nn)``. Each passes its gradient, summed over the other axes,
        to its input.
    """
    if indexing not in ("xy", "ij"):
        raise ValueError(f"ops.meshgrid: indexing must be 'xy' or 'ij'; received "
                         f"indexing={indexing!r}.")
    arrays = [_operand(t) for t in x]
    grids = np.meshgrid(*arrays, indexing=indexing)
    outputs = []
    for k, (t, a, grid) in enumerate(zip(x, arrays, grids)):
        # The axis along which input k varies ('xy' swaps the first two).
        varying = {0: 1, 1: 0}.get(k, k) if indexing == "xy" and len(arrays) > 1 else k
        others = tuple(i for i in range(grid.ndim) if i != varying)
        outputs.append(record("meshgrid", grid, (t,),
                              lambda g, needs, others=others, shape=a.shape:
                              (np.sum(g, axis=others).reshape(shape),)))
    return outputs


# ---- size and rank ----

def size(x):
    """Return the number of elements in a tensor.

    Args:
        x: Input tensor.

    Returns:
        Number of elements in ``x``, a Python int.
    """
    return int(np.size(x.value if isinstance(x, Tensor) else to_array(x)))


def ndim(x):
    """Return the number of dimensions of a tensor.

    Args:
        x: Input tensor.

    Returns:
        The number of dimensions in ``x``, a Python int.
    """
    return int(np.ndim(x.value if isinstance(x, Tensor) else to_array(x)))


# numpy ufuncs called on tensors (``np.isnan(t)``) run these ops (Tensor.__array_ufunc__).
_UFUNC_OPS.update({np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite})
