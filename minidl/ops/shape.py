"""Shape ops: reshape, expand_dims, squeeze, ravel, swapaxes, moveaxis, broadcast_to,
concatenate, stack, split, tile, repeat, take, take_along_axis, shape, and indexing
(``tensor[key]``).

Ops that only rearrange return numpy views (no copy) and their gradients are the inverse
rearrangement of the output gradient. Indexing with slices and integers scatters the
gradient by assignment into zeros; advanced indexing (integer or bool arrays) with
``np.add.at``, so that an element picked several times gets the sum of its gradients.
"""
import operator

import numpy as np

from minidl.autodiff.tensor import Tensor, record, unbroadcast, value_of

__all__ = ["broadcast_to", "concatenate", "expand_dims", "get_item", "moveaxis", "ravel",
           "repeat", "reshape", "shape", "split", "squeeze", "stack", "swapaxes", "take",
           "take_along_axis", "tile"]


def _array(x):
    return np.asarray(value_of(x))


def _axis(axis, ndim, name, arg="axis"):
    """``axis`` as a non-negative int below ``ndim``, or a ValueError naming the op."""
    try:
        i = operator.index(axis)
    except TypeError:
        raise TypeError(f"ops.{name}: {arg} must be an int; received {arg}={axis!r}.") \
            from None
    if not -ndim <= i < ndim:
        raise ValueError(f"ops.{name}: {arg}={axis} is out of range for a tensor of rank "
                         f"{ndim} (expected {-ndim} <= {arg} < {ndim}).")
    return i % ndim


def _shape_arg(shape):
    """A shape argument (an int, a sequence, a 1-D tensor) as a tuple of ints; None
    entries become -1."""
    if isinstance(shape, (Tensor, np.ndarray)):
        shape = shape.value if isinstance(shape, Tensor) else shape
        return tuple(int(n) for n in shape.reshape(-1))
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(-1 if n is None else operator.index(n) for n in shape)


def _promoted_dtype(arrays):
    """Keras' promotion over several inputs: integers with float32 stay float32."""
    dtype = np.result_type(*arrays)
    if dtype == np.float64 and not any(a.dtype == np.float64 for a in arrays):
        return np.dtype(np.float32)
    return dtype


def shape(x):
    """The shape of a tensor, as a tuple of ints.

    Args:
        x: a tensor (or array-like).

    Returns:
        A tuple of Python ints.
    """
    s = x.shape if isinstance(x, (Tensor, np.ndarray)) else np.shape(value_of(x))
    return tuple(int(n) for n in s)


def reshape(x, newshape):
    """Gives a tensor a new shape with the same elements, in row-major order.

    Args:
        x: the tensor.
        newshape: an int or a tuple of ints; one entry may be -1 (inferred).

    Returns:
        The reshaped tensor (a view when numpy can make one).
    """
    a = _array(x)
    newshape = _shape_arg(newshape)
    try:
        out = a.reshape(newshape)
    except ValueError:
        raise ValueError(f"ops.reshape: cannot reshape a tensor of shape {a.shape} "
                         f"({a.size} elements) into shape {newshape}.") from None
    return record("reshape", out, (x,), lambda g, needs: (g.reshape(a.shape),))


def ravel(x):
    """The tensor flattened to 1-D, in row-major order.

    Args:
        x: the tensor.

    Returns:
        A 1-D tensor (a view when numpy can make one).
    """
    a = _array(x)
    return record("ravel", a.reshape(-1), (x,), lambda g, needs: (g.reshape(a.shape),))


def expand_dims(x, axis):
    """Inserts axes of size 1.

    Args:
        x: the tensor.
        axis: where the new axis (or axes, a tuple) goes in the result's shape.

    Returns:
        The tensor with the new axes (a view).
    """
    a = _array(x)
    try:
        out = np.expand_dims(a, axis)
    except (ValueError, IndexError, TypeError):
        raise ValueError(f"ops.expand_dims: axis={axis!r} is out of range (or repeated) for "
                         f"a result of rank {a.ndim + np.size(axis)} from a tensor of shape "
                         f"{a.shape}.") from None
    return record("expand_dims", out, (x,), lambda g, needs: (g.reshape(a.shape),))


def squeeze(x, axis=None):
    """Removes axes of size 1.

    Args:
        x: the tensor.
        axis: None (every axis of size 1), an int or a tuple of ints; each must have size 1.

    Returns:
        The tensor without those axes (a view).
    """
    a = _array(x)
    if isinstance(axis, list):
        axis = tuple(axis)
    try:
        out = np.squeeze(a, axis)
    except (ValueError, IndexError, TypeError):
        raise ValueError(f"ops.squeeze: axis={axis!r} must name axes of size 1 of a tensor "
                         f"of shape {a.shape}.") from None
    return record("squeeze", out, (x,), lambda g, needs: (g.reshape(a.shape),))


def swapaxes(x, axis1, axis2):
    """Interchanges two axes of a tensor.

    Args:
        x: the tensor.
        axis1: first axis.
        axis2: second axis.

    Returns:
        The tensor with the two axes swapped (a view).
    """
    a = _array(x)
    i, j = _axis(axis1, a.ndim, "swapaxes", "axis1"), _axis(axis2, a.ndim, "swapaxes", "axis2")
    out = np.swapaxes(a, i, j)
    return record("swapaxes", out, (x,), lambda g, needs: (np.swapaxes(g, i, j),))


def moveaxis(x, source, destination):
    """Moves axes of a tensor to new positions; the other axes keep their order.

    Args:
        x: the tensor.
        source: the axis (or sequence of axes) to move.
        destination: the new position(s), as many as ``source``.

    Returns:
        The tensor with its axes moved (a view).
    """
    a = _array(x)
    try:
        out = np.moveaxis(a, source, destination)
    except (ValueError, IndexError, TypeError):
        raise ValueError(f"ops.moveaxis: source={source!r} and destination={destination!r} "
                         f"must be as many distinct axes in range for a tensor of shape "
                         f"{a.shape}.") from None
    return record("moveaxis", out, (x,),
                  lambda g, needs: (np.moveaxis(g, destination, source),))


def broadcast_to(x, shape):
    """Broadcasts a tensor to a shape, by numpy's rules.

    Args:
        x: the tensor.
        shape: the target shape, a tuple of ints.

    Returns:
        The broadcast tensor (a read-only view; the gradient sums over the broadcast axes).
    """
    a = _array(x)
    shape = _shape_arg(shape)
    try:
        out = np.broadcast_to(a, shape)
    except ValueError:
        raise ValueError(f"ops.broadcast_to: a tensor of shape {a.shape} cannot be broadcast "
                         f"to shape {shape} (numpy's broadcasting rules).") from None
    return record("broadcast_to", out, (x,), lambda g, needs: (unbroadcast(g, a.shape),))


# ---- joining and splitting ----------------------------------------------------------------

def concatenate(xs, axis=0):
    """Joins tensors along an existing axis.

    Args:
        xs: a list (or tuple) of tensors of the same rank, whose shapes agree except along
            ``axis``.
        axis: the axis to join along.

    Returns:
        The joined tensor.
    """
    if not isinstance(xs, (list, tuple)) or not xs:
        raise ValueError(f"ops.concatenate takes a non-empty list of tensors; received "
                         f"{xs!r:.80}.")
    arrays = [_array(x) for x in xs]
    first = arrays[0]
    if first.ndim == 0:
        raise ValueError("ops.concatenate: 0-d tensors have no axis to join along; use "
                         "ops.stack.")
    ax = _axis(axis, first.ndim, "concatenate")
    for i, a in enumerate(arrays[1:], 1):
        if a.ndim != first.ndim or a.shape[:ax] != first.shape[:ax] or \
                a.shape[ax + 1:] != first.shape[ax + 1:]:
            raise ValueError(f"ops.concatenate: shapes must agree except along axis {axis}; "
                             f"received shapes {first.shape} (xs[0]) and {a.shape} "
                             f"(xs[{i}]).")
    out = np.concatenate(arrays, axis=ax, dtype=_promoted_dtype(arrays))
    bounds = np.cumsum([a.shape[ax] for a in arrays])[:-1]

    def backward(g, needs):
        parts = np.split(g, bounds, axis=ax)   # views of g
        return tuple(p if need else None for p, need in zip(parts, needs))
    return record("concatenate", out, tuple(xs), backward)


def stack(x, axis=0):
    """Joins tensors of the same shape along a new axis.

    Args:
        x: a list (or tuple) of tensors of one shape.
        axis: the position of the new axis in the result.

    Returns:
        The stacked tensor, of rank one more than the inputs.
    """
    if not isinstance(x, (list, tuple)) or not x:
        raise ValueError(f"ops.stack takes a non-empty list of tensors; received "
                         f"{x!r:.80}.")
    arrays = [_array(t) for t in x]
    for i, a in enumerate(arrays[1:], 1):
        if a.shape != arrays[0].shape:
            raise ValueError(f"ops.stack: all tensors must have one shape; received shapes "
                             f"{arrays[0].shape} (x[0]) and {a.shape} (x[{i}]).")
    ax = _axis(axis, arrays[0].ndim + 1, "stack")
    dtype = _promoted_dtype(arrays)
    # (np.stack's own dtype argument needs numpy >= 1.24.)
    out = np.stack([a.astype(dtype, copy=False) for a in arrays], axis=ax)

    def backward(g, needs):
        parts = np.moveaxis(g, ax, 0)   # parts[i]: a view of the i-th slice
        return tuple(parts[i] if need else None for i, need in enumerate(needs))
    return record("stack", out, tuple(x), backward)


def split(x, indices_or_sections, axis=0):
    """Splits a tensor into pieces along an axis.

    Args:
        x: the tensor.
        indices_or_sections: an int ``n``: ``n`` equal pieces (the axis length must divide
            by ``n``); or a sorted sequence of indices where the pieces start.
        axis: the axis to split along.

    Returns:
        A list of tensors (views of ``x``). In the backward pass each piece used gives a
        gradient of the full shape of ``x`` (zeros outside the piece).
    """
    a = _array(x)
    if a.ndim == 0:
        raise ValueError("ops.split: a 0-d tensor has no axis to split.")
    ax = _axis(axis, a.ndim, "split")
    length = a.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)) or \
            (isinstance(indices_or_sections, (Tensor, np.ndarray))
             and np.ndim(value_of(indices_or_sections)) == 0):
        n = int(value_of(indices_or_sections))
        if n <= 0 or length % n:
            raise ValueError(f"ops.split: axis {axis} of a tensor of shape {a.shape} (length "
                             f"{length}) does not split into {n} equal pieces.")
        starts = list(range(0, length, length // n)) if length else [0] * n
        stops = starts[1:] + [length]
    else:
        cuts = [int(i) for i in np.asarray(value_of(indices_or_sections)).reshape(-1)]
        # numpy's semantics: indices clip to the axis, a later smaller one gives an empty
        # piece.
        starts = [0] + cuts
        stops = cuts + [length]
    pieces = []
    for start, stop in zip(starts, stops):
        key = (slice(None),) * ax + (slice(start, stop),)
        pieces.append(record("split", a[key], (x,), _scatter_backward(a.shape, key)))
    return pieces


def _scatter_backward(shape, key):
    """Backward of ``x[key]`` for a basic index (slices, ints, None, Ellipsis): the
    gradient assigned into zeros (no element is picked twice)."""
    def backward(g, needs):
        full = np.zeros(shape, g.dtype)
        full[key] = g
        return (full,)
    return backward


# ---- tile and repeat ----------------------------------------------------------------------

def tile(x, repeats):
    """Repeats a whole tensor along each axis, as ``numpy.tile``.

    Args:
        x: the tensor.
        repeats: an int or a sequence of ints: how many copies along each axis (the shorter
            of ``repeats`` and ``x.shape`` is padded with leading 1s).

    Returns:
        The tiled tensor.
    """
    a = _array(x)
    reps = [int(value_of(repeats))] if np.ndim(value_of(repeats)) == 0 else \
        [int(r) for r in np.asarray(value_of(repeats)).reshape(-1)]
    if any(r < 0 for r in reps):
        raise ValueError(f"ops.tile: repeats must be non-negative; received repeats={reps}.")
    out = np.tile(a, reps)
    ndim = max(a.ndim, len(reps))
    reps = [1] * (ndim - len(reps)) + reps
    base = (1,) * (ndim - a.ndim) + a.shape

    def backward(g, needs):
        # The copies along an axis of length r * n are the outer index: (r, n) blocks.
        interleaved = [v for pair in zip(reps, base) for v in pair]
        g = g.reshape(interleaved).sum(axis=tuple(range(0, 2 * ndim, 2)))
        return (g.reshape(a.shape),)
    return record("tile", out, (x,), backward)


def repeat(x, repeats, axis=None):
    """Repeats each element of a tensor, as ``numpy.repeat``.

    Args:
        x: the tensor.
        repeats: an int, or one int per element along ``axis``.
        axis: the axis to repeat along; None repeats the flattened tensor.

    Returns:
        The tensor with repeated elements.
    """
    a = _array(x)
    reps = np.asarray(value_of(repeats))
    if reps.dtype.kind not in "iu" or reps.ndim > 1 or (reps < 0).any():
        raise ValueError(f"ops.repeat: repeats must be a non-negative int or a 1-D sequence "
                         f"of them; received repeats={repeats!r}.")
    src = a.reshape(-1) if axis is None else a
    ax = 0 if axis is None else _axis(axis, a.ndim, "repeat")
    length = src.shape[ax]
    if reps.ndim == 1 and reps.size not in (1, length):
        raise ValueError(f"ops.repeat: repeats has {reps.size} entries; axis {axis} of the "
                         f"tensor of shape {a.shape} has length {length}.")
    out = np.repeat(src, reps, axis=ax)

    def backward(g, needs):
        if reps.size == 1:
            r = int(reps.reshape(-1)[0])
            shaped = g.shape[:ax] + (length, r) + g.shape[ax + 1:]
            grad = g.reshape(shaped).sum(axis=ax + 1)
        else:
            # Sum each run of copies; runs of zero copies get 0 (reduceat would give
            # them the next element).
            counts = reps.reshape(-1).astype(np.intp)
            grad = np.zeros(src.shape, g.dtype)
            nonzero = counts > 0
            if nonzero.any():
                starts = (np.cumsum(counts) - counts)[nonzero]
                index = (slice(None),) * ax + (nonzero,)
                grad[index] = np.add.reduceat(g, starts, axis=ax)
        return (grad.reshape(a.shape),)
    return record("repeat", out, (x,), backward)


# ---- indexing -----------------------------------------------------------------------------

def _is_basic(k):
    return k is None or k is Ellipsis or isinstance(k, slice) or \
        (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)))


def _index_value(k):
    """An advanced key component as numpy takes it: Tensors as their arrays, lists as
    arrays (numpy reads slice bounds that are Tensors through ``__index__``)."""
    if _is_basic(k):
        return k
    k = k.value if isinstance(k, Tensor) else np.asarray(k)
    if not k.size and k.dtype.kind not in "iub":
        k = k.astype(np.intp)   # `x[[]]`: an empty list is an empty integer index
    return k


def get_item(x, key):
    """``x[key]``: numpy's basic indexing (ints, slices with any step, ``None``,
    ``...``) and advanced indexing (integer or bool arrays, lists, tensors).

    Args:
        x: the tensor.
        key: the index.

    Returns:
        The selected elements: a view for basic indexing, a new tensor for advanced
        indexing. The gradient accumulates over repeated integer indices.
    """
    a = _array(x)
    parts = key if isinstance(key, tuple) else (key,)
    basic = all(_is_basic(k) for k in parts)
    if not basic:
        parts = tuple(_index_value(k) for k in parts)
        for k in parts:
            if isinstance(k, np.ndarray) and k.dtype.kind not in "iub" and k.size:
                raise IndexError(f"ops.get_item: index arrays must hold integers or bools; "
                                 f"received dtype {k.dtype}.")
        key = parts
    try:
        out = a[key]
    except IndexError as error:
        raise IndexError(f"ops.get_item: {error} (tensor of shape {a.shape}).") from None
    if basic:
        return record("get_item", out, (x,), _scatter_backward(a.shape, key))
    # Bool masks select each element at most once: assignment does; integer arrays may
    # repeat an element, whose gradients must add up.
    repeats = any(isinstance(k, np.ndarray) and k.dtype.kind in "iu" for k in key)

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        if repeats:
            np.add.at(full, key, g)
        else:
            full[key] = g
        return (full,)
    return record("get_item", out, (x,), backward)


def take(x, indices, axis=None):
    """Elements of a tensor at the given indices along an axis, as ``numpy.take``.

    Args:
        x: the tensor.
        indices: integer indices (any shape; negative ones count from the end).
        axis: the axis to take along; None takes from the flattened tensor.

    Returns:
        A tensor of shape ``x.shape[:axis] + indices.shape + x.shape[axis + 1:]``.
    """
    a = _array(x)
    idx = np.asarray(value_of(indices))
    if idx.dtype.kind not in "iu" and idx.size:
        raise TypeError(f"ops.take: indices must be integers; received dtype {idx.dtype}.")
    idx = idx.astype(np.intp, copy=False)
    src = a.reshape(-1) if axis is None else a
    ax = 0 if axis is None else _axis(axis, a.ndim, "take")
    try:
        out = np.take(src, idx, axis=ax)
    except IndexError as error:
        raise IndexError(f"ops.take: {error} (tensor of shape {a.shape}, axis={axis}).") \
            from None
    key = (slice(None),) * ax + (idx,)

    def backward(g, needs):
        full = np.zeros(src.shape, g.dtype)
        np.add.at(full, key, g)
        return (full.reshape(a.shape),)
    return record("take", out, (x,), backward)


def take_along_axis(x, indices, axis=None):
    """Elements of a tensor picked by an index array along an axis, as
    ``numpy.take_along_axis`` (e.g. the values at ``argmax`` positions).

    Args:
        x: the tensor.
        indices: integer indices of the same rank as ``x`` (the flattened ``x`` when
            ``axis`` is None), broadcast against ``x`` on the other axes.
        axis: the axis to pick along; None picks from the flattened tensor.

    Returns:
        The picked elements, of the broadcast shape of ``x`` and ``indices``.
    """
    a = _array(x)
    idx = np.asarray(value_of(indices))
    if idx.dtype.kind not in "iu" and idx.size:
        raise TypeError(f"ops.take_along_axis: indices must be integers; received dtype "
                        f"{idx.dtype}.")
    idx = idx.astype(np.intp, copy=False)
    src = a.reshape(-1) if axis is None else a
    ax = 0 if axis is None else _axis(axis, a.ndim, "take_along_axis")
    if idx.ndim != src.ndim:
        raise ValueError(f"ops.take_along_axis: indices of shape {idx.shape} must have the "
                         f"rank of x (shape {src.shape}).")
    # numpy's take_along_axis as one fancy index: an open grid on the other axes.
    key = tuple(idx if d == ax else
                np.arange(src.shape[d]).reshape([-1 if e == d else 1 for e in range(src.ndim)])
                for d in range(src.ndim))
    try:
        out = src[key]
    except IndexError as error:
        raise IndexError(f"ops.take_along_axis: {error} (x of shape {a.shape}, indices of "
                         f"shape {idx.shape}, axis={axis}).") from None

    def backward(g, needs):
        full = np.zeros(src.shape, g.dtype)
        np.add.at(full, key, g)
        return (full.reshape(a.shape),)
    return record("take_along_axis", out, (x,), backward)
