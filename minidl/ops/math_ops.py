"""Keras 3's math, linear-algebra and statistics ops beyond the elementwise ones:
``top_k``, ``in_top_k``, ``segment_sum``, ``segment_max`` (``keras.ops.math``), ``norm``
(``keras.ops.linalg``), ``moments`` and ``normalize`` (``keras.ops.nn``).

Float16 inputs compute in float32 and return float16; integers and bools give floatx
(float32) where the result is a float (``norm``, ``normalize``, ``moments``).

Gradients at the edges:

- ``norm``: 0 at a zero vector or matrix (the subgradient of the minimum), never NaN;
  ``inf`` / ``-inf`` norms and the matrix 1 / inf norms share the gradient evenly among
  tied extrema (as ``max``); the matrix 2-norm, -2-norm and nuclear norm use the singular
  vectors (exact for distinct singular values); ``ord=0`` counts, with gradient 0;
- ``normalize``: ``x / max(norm(x), epsilon)``, so below ``epsilon`` the gradient is
  ``1 / epsilon``;
- ``top_k``: the values' gradient goes back to the positions they came from (ties broken
  towards the lower index, as TensorFlow and JAX); the indices have none;
- ``segment_max``: shared evenly among the elements equal to their segment's maximum.
"""
import math
import numbers

import numpy as np

from minidl.autodiff.tensor import FLOATX, record
from minidl.ops import reduction
from minidl.ops.elementwise import _operand
from minidl.ops.numpy_extra import _int_arg
from minidl.ops.reduction import _axes, _expand, _kept_shape, _reduced_shape

__all__ = ["in_top_k", "moments", "norm", "normalize", "segment_max", "segment_sum",
           "top_k"]

_INT32 = np.dtype(np.int32)
_FLOAT32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
# keras.backend.epsilon(): normalize's default lower bound of the norm.
EPSILON = 1e-7


def _float_dtypes(a):
    """(dtype to compute in, dtype of the result) for a float-valued op on ``a``."""
    if a.dtype.kind == "f":
        return (_FLOAT32 if a.dtype.itemsize < 4 else a.dtype), a.dtype
    return FLOATX, FLOATX


# ---- top_k, in_top_k ----

def top_k(x, k, sorted=True):
    """Finds the top-k values and their indices in a tensor.

    Args:
        x: Input tensor.
        k: An integer representing the number of top elements to retrieve.
        sorted: A boolean indicating whether to sort the output in descending order.
            Defaults to True. (minidl returns them sorted either way; with False the order
            is unspecified, as in Keras.)

    Returns:
        A tuple containing two tensors. The first tensor contains the top-k values (with
        gradient), and the second tensor contains the int32 indices of the top-k values in
        the input tensor, both along the last axis. Equal values come in index order.
    """
    a = _operand(x)
    if a.ndim == 0:
        raise ValueError("ops.top_k: x must have at least one axis (the last one is "
                         "searched); received a 0-d tensor.")
    k = _int_arg("top_k", "k", k)
    n = a.shape[-1]
    if not 0 <= k <= n:
        raise ValueError(f"ops.top_k: k must be between 0 and the size of the last axis of x "
                         f"({n}); received k={k}.")
    # Descending, ties to the lower index: a stable ascending sort of the reversed axis,
    # read backwards.
    order = np.argsort(a[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., :k]
    indices = (n - 1) - order
    values = np.take_along_axis(a, indices, axis=-1)

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        np.put_along_axis(full, indices, g, axis=-1)
        return (full,)
    return (record("top_k", values, (x,), backward),
            record("top_k", indices.astype(_INT32), (x,), None))


def in_top_k(targets, predictions, k):
    """Checks if the targets are in the top-k predictions.

    Args:
        targets: A tensor of true labels (integers), of shape ``predictions.shape[:-1]``.
        predictions: A tensor of predicted labels, classes along the last axis.
        k: An integer representing the number of predictions to consider.

    Returns:
        A boolean tensor of the same shape as ``targets``, where each element indicates
        whether the corresponding target is in the top-k predictions. A target whose score
        ties with the k-th highest counts as in the top k (TensorFlow's rule); a target
        outside ``[0, classes)`` or whose score is NaN does not. It has no gradient.
    """
    t = _operand(targets)
    p = _operand(predictions)
    k = _int_arg("in_top_k", "k", k)
    if t.dtype.kind not in "iu":
        raise TypeError(f"ops.in_top_k: targets must be integer class ids; received dtype "
                        f"{t.dtype}.")
    if p.ndim == 0 or t.shape != p.shape[:-1]:
        raise ValueError(f"ops.in_top_k: targets must have the shape of predictions without "
                         f"its last (class) axis; received targets of shape {t.shape} and "
                         f"predictions of shape {p.shape}.")
    n = p.shape[-1]
    valid = (t >= 0) & (t < n)
    safe = np.where(valid, t, 0).astype(np.intp)
    score = np.take_along_axis(p, safe[..., None], axis=-1)
    higher = np.sum(p > score, axis=-1)
    out = valid & (higher < k) & ~np.isnan(score[..., 0])
    return record("in_top_k", out, (targets, predictions), None)


# ---- segment reductions ----

def _segments(op, data, segment_ids, num_segments, sorted):
    d = _operand(data)
    ids = _operand(segment_ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ops.{op}: segment_ids must be integers; received dtype {ids.dtype}.")
    if d.ndim == 0:
        raise ValueError(f"ops.{op}: data must have at least one axis (the one segmented); "
                         f"received a 0-d tensor.")
    if ids.shape != d.shape[:1]:
        raise ValueError(f"ops.{op}: segment_ids must be 1-D with one id per entry of data's "
                         f"first axis ({d.shape[0]}); received segment_ids of shape "
                         f"{ids.shape}.")
    if num_segments is None:
        n = int(ids.max()) + 1 if ids.size else 0
        n = n if n > 0 else 0
    else:
        n = _int_arg(op, "num_segments", num_segments)
        if n < 0:
            raise ValueError(f"ops.{op}: num_segments must be >= 0; received "
                             f"num_segments={n}.")
    if sorted and ids.size and np.any(ids[1:] < ids[:-1]):
        raise ValueError(f"ops.{op}: sorted=True promises sorted segment_ids, but they are "
                         f"not sorted; pass sorted=False.")
    ids = ids.astype(np.intp)
    # Negative ids and ids >= num_segments are dropped (as JAX does).
    valid = (ids >= 0) & (ids < n)
    return d, ids, valid, n


def segment_sum(data, segment_ids, num_segments=None, sorted=False):
    """Computes the sum of segments in a tensor.

    Args:
        data: Input tensor.
        segment_ids: A 1-D integer tensor with one segment id per entry of ``data``'s first
            axis. Entries with an id that is negative or not below ``num_segments`` are
            dropped.
        num_segments: An integer representing the total number of segments. If not
            specified, it is inferred from the maximum value in ``segment_ids``.
        sorted: A boolean indicating whether ``segment_ids`` is sorted (checked).
            Defaults to False.

    Returns:
        A tensor of shape ``(num_segments,) + data.shape[1:]`` containing the sum of
        segments (bool data sums in int32); empty segments are 0. Each entry of ``data``
        gets its segment's gradient.
    """
    d, ids, valid, n = _segments("segment_sum", data, segment_ids, num_segments, sorted)
    out = np.zeros((n,) + d.shape[1:], _INT32 if d.dtype == _BOOL else d.dtype)
    np.add.at(out, ids[valid], d[valid])

    def backward(g, needs):
        full = np.zeros(d.shape, g.dtype)
        full[valid] = g[ids[valid]]
        return (full, None)
    return record("segment_sum", out, (data, segment_ids), backward)


def segment_max(data, segment_ids, num_segments=None, sorted=False):
    """Computes the max of segments in a tensor.

    Args:
        data: Input tensor.
        segment_ids: A 1-D integer tensor with one segment id per entry of ``data``'s first
            axis. Entries with an id that is negative or not below ``num_segments`` are
            dropped.
        num_segments: An integer representing the total number of segments. If not
            specified, it is inferred from the maximum value in ``segment_ids``.
        sorted: A boolean indicating whether ``segment_ids`` is sorted (checked).
            Defaults to False.

    Returns:
        A tensor of shape ``(num_segments,) + data.shape[1:]`` containing the max of
        segments; empty segments hold the lowest value of the dtype (-inf for floats, as
        JAX). The gradient is shared evenly among the entries equal to their segment's
        maximum.
    """
    d, ids, valid, n = _segments("segment_max", data, segment_ids, num_segments, sorted)
    if d.dtype.kind == "f":
        lowest = -np.inf
    elif d.dtype.kind in "iu":
        lowest = np.iinfo(d.dtype).min
    else:
        lowest = False
    out = np.full((n,) + d.shape[1:], lowest, d.dtype)
    np.maximum.at(out, ids[valid], d[valid])

    def backward(g, needs):
        picked = ids[valid]
        hit = d[valid] == out[picked]
        ties = np.zeros(out.shape, g.dtype)
        np.add.at(ties, picked, hit)
        full = np.zeros(d.shape, g.dtype)
        full[valid] = hit * (g[picked] / np.maximum(ties[picked], 1))
        return (full, None)
    return record("segment_max", out, (data, segment_ids), backward)


# ---- norms ----

def _vector_norm(c, p, axes):
    """The ``p``-norm of ``c`` over ``axes`` (None: all), with the reduced axes kept, and a
    function taking the norm's gradient (keepdims shape) to the gradient of ``c``."""
    if p == 2:
        n = np.sqrt(np.sum(c * c, axis=axes, keepdims=True))

        def grad(gk):
            # x / |x|, and 0 (not NaN) at a zero vector.
            return gk * c / np.where(n > 0, n, np.inf)
    elif p == 1:
        n = np.sum(np.abs(c), axis=axes, keepdims=True)

        def grad(gk):
            return gk * np.sign(c)
    elif p == math.inf or p == -math.inf:
        magnitude = np.abs(c)
        n = (np.max if p > 0 else np.min)(magnitude, axis=axes, keepdims=True)

        def grad(gk):
            hit = magnitude == n
            ties = np.sum(hit, axis=axes, keepdims=True)
            return gk * np.sign(c) * hit / ties
    elif p == 0:
        n = np.sum(c != 0, axis=axes, keepdims=True).astype(c.dtype)

        def grad(gk):
            return np.zeros(np.broadcast_shapes(gk.shape, c.shape), gk.dtype)
    else:
        magnitude = np.abs(c)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            n = np.sum(magnitude ** p, axis=axes, keepdims=True) ** (1.0 / p)

        def grad(gk):
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                slope = np.sign(c) * magnitude ** (p - 1) * n ** (1 - p)
            # Where the formula breaks down (a zero norm, a zero entry with p < 1) the
            # subgradient 0 is used.
            slope = np.where(np.isfinite(slope) & (n != 0), slope, 0)
            return gk * slope
    return n, grad


def _matrix_norm(m, ord):
    """The matrix norm ``ord`` of each matrix in the last two axes of ``m``, and a function
    taking its gradient (shape ``m.shape[:-2]``) to the gradient of ``m``."""
    if ord in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of |m|; inf: the largest row sum (-1, -inf: smallest).
        lines = -2 if ord in (1, -1) else -1
        sums = np.sum(np.abs(m), axis=lines)
        n = (np.max if ord > 0 else np.min)(sums, axis=-1)

        def grad(g):
            hit = sums == n[..., None]
            share = hit / np.sum(hit, axis=-1, keepdims=True)
            share = share[..., None, :] if lines == -2 else share[..., :, None]
            return g[..., None, None] * np.sign(m) * share
        return n, grad
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    if ord == "nuc":
        n = np.sum(s, axis=-1)

        def grad(g):
            return g[..., None, None] * (u @ vt)
        return n, grad
    pick = 0 if ord == 2 else -1   # singular values come in descending order
    n = s[..., pick]

    def grad(g):
        outer = u[..., :, pick, None] * vt[..., None, pick, :]
        return g[..., None, None] * outer
    return n, grad


_VECTOR_ORDS = "None, inf, -inf, 0 or another number"
_MATRIX_ORDS = (None, "fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)


def norm(x, ord=None, axis=None, keepdims=False):
    """Matrix or vector norm.

    This function is able to return one of eight different matrix norms, or one of an
    infinite number of vector norms (described below), depending on the value of the
    ``ord`` parameter.

    Args:
        x: Input tensor.
        ord: Order of the norm (see the table below). The default is None.
        axis: If ``axis`` is an integer, it specifies the axis of ``x`` along which to
            compute the vector norms. If ``axis`` is a 2-tuple, it specifies the axes that
            hold 2-D matrices, and the matrix norms of these matrices are computed. With
            None, ``x`` is a vector (1-D) or a matrix (2-D); with ``ord=None`` too, any
            ``x`` is flattened into a vector.
        keepdims: If this is set to True, the axes which are reduced are left in the
            result as dimensions with size one.

    Note:
        For matrices: ``ord=None`` or ``"fro"``: Frobenius norm; ``"nuc"``: nuclear norm;
        ``inf``: ``max(sum(abs(x), axis=1))``; ``-inf``: ``min(sum(abs(x), axis=1))``;
        ``1``: ``max(sum(abs(x), axis=0))``; ``-1``: ``min(sum(abs(x), axis=0))``;
        ``2``: largest singular value; ``-2``: smallest singular value.
        For vectors: ``ord=None``: 2-norm; ``inf``: ``max(abs(x))``; ``-inf``:
        ``min(abs(x))``; ``0``: ``sum(x != 0)``; other: ``sum(abs(x)**ord)**(1./ord)``.

    Returns:
        Norm of the matrix or vector(s): floatx (float32) for integer inputs, else the
        input's float dtype. Its gradient is 0 at a zero vector or matrix.
    """
    a = _operand(x)
    work, result = _float_dtypes(a)
    c = a.astype(work, copy=False)
    if axis is None:
        if ord is None:
            kind, axes = "vector", None
        elif a.ndim in (1, 2):
            kind, axes = ("vector", (0,)) if a.ndim == 1 else ("matrix", (0, 1))
        else:
            raise ValueError(f"ops.norm: with axis=None, ord={ord!r} needs a 1-D or 2-D x; "
                             f"received shape {a.shape}. Pass axis (an int for vector norms, "
                             f"a pair of axes for matrix norms).")
    else:
        axes = _axes("norm", axis, a.ndim)
        if isinstance(axis, (tuple, list)):
            given = [int(i) % a.ndim for i in axis]   # in the caller's order
        else:
            given = [axes[0]]
        if len(given) == 1:
            kind = "vector"
        elif len(given) == 2:
            kind, axes = "matrix", tuple(given)
        else:
            raise ValueError(f"ops.norm: axis must be an int or a pair of axes; received "
                             f"axis={axis!r}.")
    if kind == "vector":
        p = 2 if ord is None else ord
        if isinstance(p, (str, bool, np.bool_)) or not isinstance(p, numbers.Real):
            raise ValueError(f"ops.norm: ord={ord!r} is not a vector norm; vector norms take "
                             f"ord={_VECTOR_ORDS}.")
        reduce = None if axes is None else tuple(sorted(axes))
        n, grad = _vector_norm(c, p, reduce)
        out = n if keepdims else n.reshape(_reduced_shape(a.shape, reduce))

        def backward(g, needs):
            return (grad(_expand(g, a.shape, reduce, keepdims)),)
        return record("norm", out.astype(result, copy=False), (x,), backward)

    if ord not in _MATRIX_ORDS or isinstance(ord, (bool, np.bool_)):
        raise ValueError(f"ops.norm: ord={ord!r} is not a matrix norm; matrix norms take ord "
                         f"None, 'fro', 'nuc', 1, -1, 2, -2, inf or -inf.")
    row, col = axes
    if ord in (None, "fro"):
        n, grad_v = _vector_norm(c, 2, (row, col))
        batch = n.reshape(_reduced_shape(a.shape, (row, col)))

        def grad(g):
            return grad_v(g.reshape(n.shape))
    else:
        m = np.moveaxis(c, (row, col), (-2, -1))
        batch, grad_m = _matrix_norm(m, ord)

        def grad(g):
            return np.moveaxis(grad_m(g), (-2, -1), (row, col))
    kept = _kept_shape(a.shape, (row, col))
    out = batch.reshape(kept) if keepdims else batch

    def backward(g, needs):
        return (grad(g.reshape(batch.shape)),)
    return record("norm", np.asarray(out).astype(result, copy=False), (x,), backward)


def normalize(x, axis=-1, order=2, epsilon=None):
    """Normalizes ``x`` over the specified axis.

    It is defined as: ``normalize(x) = x / max(norm(x), epsilon)``.

    Args:
        x: Input tensor.
        axis: The axis or axes along which to perform normalization. Default to -1.
        order: The exponent value in the norm formulation (an int >= 1). Defaults to 2.
            Over several axes, the norm is taken over all their elements together.
        epsilon: A lower bound value for the norm. Defaults to ``backend.epsilon()``
            (1e-7).

    Returns:
        The normalized array (a 0-d ``x`` is treated as shape ``(1,)``, as Keras does).
        Where the norm is below ``epsilon`` the gradient is ``1 / epsilon``.

    Example:

    >>> x = minidl.ops.convert_to_tensor([[1, 2, 3], [4, 5, 6]])
    >>> minidl.ops.normalize(x)
    [[0.26726124 0.5345225  0.8017837 ]
     [0.45584232 0.5698029  0.68376344]]
    """
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, numbers.Integral) or \
            order < 1:
        raise ValueError(f"ops.normalize: order must be an int >= 1; received "
                         f"order={order!r}.")
    eps = EPSILON if epsilon is None else float(epsilon)
    if not eps >= 0:
        raise ValueError(f"ops.normalize: epsilon must be a non-negative number or None; "
                         f"received epsilon={epsilon!r}.")
    a = _operand(x)
    shape = a.shape
    if a.ndim == 0:
        a = a.reshape(1)
    work, result = _float_dtypes(a)
    c = a.astype(work, copy=False)
    axes = _axes("normalize", axis, a.ndim)
    n, grad_n = _vector_norm(c, int(order), axes)
    d = np.maximum(n, eps)
    out = (c / d).astype(result, copy=False)

    def backward(g, needs):
        # d(x / d)/dx = 1/d - x / d^2 * dn/dx, the second term only where the norm is above
        # epsilon (below, d is the constant epsilon).
        inner = np.sum(g * c, axis=axes, keepdims=True) / (d * d)
        grad = g / d - grad_n(np.where(n > eps, inner, 0))
        return (grad.reshape(shape),)
    return record("normalize", out, (x,), backward)


# ---- moments ----

def moments(x, axes, keepdims=False, synchronized=False):
    """Calculates the mean and variance of ``x``.

    The mean and variance are calculated by aggregating the contents of ``x`` across
    ``axes``. If ``x`` is 1-D and ``axes = [0]`` this is just the mean and variance of a
    vector.

    Args:
        x: Input tensor.
        axes: A list of axes which to compute mean and variance.
        keepdims: If this is set to True, the axes which are reduced are left in the
            result as dimensions with size one.
        synchronized: Only applicable with the TensorFlow backend: whether to synchronize
            the statistics across replicas. minidl runs in one process, where the statistics
            are already over all the data, so both values compute the same.

    Returns:
        A tuple containing two tensors - mean and variance (the population variance,
        computed from the centred values: no cancellation as with ``E[x^2] - E[x]^2``).
        Integers give float32; float16 computes in float32 and returns float16. Gradients
        flow through both.
    """
    if not isinstance(synchronized, (bool, np.bool_)):
        raise TypeError(f"ops.moments: synchronized must be True or False; received "
                        f"synchronized={synchronized!r}.")
    if axes is None:
        raise ValueError("ops.moments: axes must name the axes to reduce (an int or a list "
                         "of ints); received axes=None.")
    return reduction.mean(x, axes, keepdims), reduction.var(x, axes, keepdims)
