"""Keras 3's core ops: control flow (``cond``, ``fori_loop``, ``while_loop``,
``vectorized_map``), ``stop_gradient``, windows and scatters (``slice``, ``slice_update``,
``scatter``, ``scatter_update``), ``unstack`` and ``is_tensor``.

Control flow runs eagerly, as on Keras' numpy backend: the functions are plain Python called
on tensors, so the ops they run record as any other and gradients flow through what was
actually computed (the branch taken, the iterations run). Nothing records the loop itself,
and a loop over ``n`` iterations costs the ops of its ``n`` bodies.

``stop_gradient`` returns a tensor without history: a gradient asked for through it is None
(or zeros with ``unconnected_gradients='zero'``), never an error.

Windows and scatters take static integer positions (Python ints, numpy or tensor integers).
Positions outside the tensor are an error naming the op (TensorFlow's rule; JAX would clamp
or drop them silently). ``scatter`` adds values that share an index; ``scatter_update`` keeps
the last update written to an index, and only that update receives its gradient.
"""
import builtins
import numbers

import numpy as np

from minidl.autodiff.tensor import Tensor, Variable, record, to_array, wrap
from minidl.ops.shape import _axis, get_item, stack

__all__ = ["cond", "fori_loop", "is_tensor", "scatter", "scatter_update", "slice",
           "slice_update", "stop_gradient", "unstack", "vectorized_map", "while_loop"]


# ---- argument checks ----

def _check_callable(op, name, fn):
    if not callable(fn):
        raise TypeError(f"ops.{op}: {name} must be a callable; received "
                        f"{name}={fn!r:.80} of type {type(fn).__name__}.")


def _truth(op, what, value):
    """``value`` (a Python bool or number, or a tensor of one element) as a bool."""
    if isinstance(value, (bool, np.bool_, numbers.Number)):
        return bool(value)
    try:
        a = to_array(value)
    except TypeError:
        a = None
    if a is None or a.dtype == object or a.size != 1:
        shape = f"a tensor of shape {a.shape}" if a is not None and a.dtype != object else \
            f"{type(value).__name__}"
        raise ValueError(f"ops.{op}: {what} must be a scalar boolean; received {shape}.")
    return bool(a.reshape(()))


def _int(op, name, value):
    """An integer argument (a Python or numpy int, or a 0-d integer tensor) as an int."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"ops.{op}: {name} must be an integer; received {name}={value!r}.")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (Tensor, np.ndarray)):
        a = to_array(value)
        if a.ndim == 0 and a.dtype.kind in "iu":
            return int(a)
    raise TypeError(f"ops.{op}: {name} must be an integer; received {name}={value!r:.80}.")


def _int_list(op, name, value):
    """A sequence of integers (a list, a tuple, a 1-D integer array or tensor) as a list."""
    if isinstance(value, (Tensor, np.ndarray)):
        a = to_array(value)
        if a.ndim != 1 or (a.dtype.kind not in "iu" and a.size):
            raise TypeError(f"ops.{op}: {name} must be a 1-D sequence of integers; received "
                            f"a tensor of shape {a.shape} and dtype {a.dtype}.")
        return [int(i) for i in a]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"ops.{op}: {name} must be a list or tuple of integers; received "
                        f"{name}={value!r:.80}.")
    return [_int(op, f"{name}[{i}]", v) for i, v in enumerate(value)]


def _indices(op, indices):
    """Scatter indices as an integer array of shape ``(..., k)``, ``k >= 1``."""
    idx = to_array(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"ops.{op}: indices must be integers; received dtype {idx.dtype}.")
    if idx.ndim == 0 or idx.shape[-1] == 0:
        raise ValueError(f"ops.{op}: indices must have shape (..., k) with k >= 1 (each row "
                         f"one position); received shape {idx.shape}.")
    return idx.astype(np.intp, copy=False)


def _check_positions(op, idx, shape):
    """IndexError unless every index row of ``idx`` (shape ``(..., k)``) is inside the first
    ``k`` axes of ``shape``."""
    k = idx.shape[-1]
    if k > len(shape):
        raise ValueError(f"ops.{op}: indices have {k} components per position, more than "
                         f"the {len(shape)} axes of shape {tuple(shape)}.")
    if not idx.size:
        return
    bound = np.asarray(shape[:k])
    bad = (idx < 0) | (idx >= bound)
    if bad.any():
        row = tuple(int(i) for i in idx.reshape(-1, k)[bad.reshape(-1, k).any(axis=1)][0])
        raise IndexError(f"ops.{op}: index {row} is out of bounds for shape {tuple(shape)} "
                         f"(expected 0 <= index < size along each axis).")


def _check_window(op, starts, sizes, shape, sizes_name):
    if len(starts) != len(shape) or len(sizes) != len(shape):
        raise ValueError(f"ops.{op}: start_indices and {sizes_name} must have one entry per "
                         f"axis of inputs (rank {len(shape)}); received start_indices={starts} "
                         f"and {sizes_name}={sizes}.")
    for axis, (s, n, d) in enumerate(zip(starts, sizes, shape)):
        if s < 0 or n < 0 or s + n > d:
            raise ValueError(f"ops.{op}: the window [{s}, {s + n}) along axis {axis} does not "
                             f"fit in inputs of shape {tuple(shape)}; received "
                             f"start_indices={starts} and {sizes_name}={sizes}.")


def _window_backward(shape, key):
    """Backward of ``x[key]`` for slices: the gradient written into zeros."""
    def backward(g, needs):
        full = np.zeros(shape, g.dtype)
        full[key] = g
        return (full,)
    return backward


def _as_tensor(x):
    return x if isinstance(x, Tensor) else wrap(to_array(x))


def _tensors(structure):
    """The leaves of a nested list / tuple / dict as tensors (tensors kept as they are, so
    their history goes on)."""
    if isinstance(structure, Tensor):
        return structure
    if isinstance(structure, (list, tuple)):
        return type(structure)(_tensors(v) for v in structure)
    if isinstance(structure, dict):
        return {k: _tensors(v) for k, v in structure.items()}
    return wrap(to_array(structure))


# ---- gradient control ----

def stop_gradient(variable):
    """Stops gradient computation.

    Args:
        variable: A tensor (or variable, or array-like) for which the gradient computation
            is to be disabled.

    Returns:
        A tensor with the same value and no history: no gradient flows back through it (a
        source reached only through it gets None, not an error). A variable's value is
        copied, so the optimizer's later in-place updates do not change the result.
    """
    a = to_array(variable)
    return wrap(a.copy() if isinstance(variable, Variable) else a)


def is_tensor(x):
    """Check whether the given object is a tensor.

    Args:
        x: Any object.

    Returns:
        True if ``x`` is a minidl tensor (a :class:`~minidl.autodiff.Tensor`, variables
        included); numpy arrays and Python data are not.
    """
    return isinstance(x, Tensor)


# ---- control flow ----

def cond(pred, true_fn, false_fn):
    """Conditionally applies ``true_fn`` or ``false_fn``.

    Args:
        pred: Boolean scalar (a Python bool or a tensor of one element).
        true_fn: Callable returning the output for the ``pred == True`` case.
        false_fn: Callable returning the output for the ``pred == False`` case.

    Returns:
        The output of either ``true_fn`` or ``false_fn`` depending on ``pred``. Only the
        branch taken runs, so gradients flow through it alone.
    """
    _check_callable("cond", "true_fn", true_fn)
    _check_callable("cond", "false_fn", false_fn)
    return true_fn() if _truth("cond", "pred", pred) else false_fn()


def fori_loop(lower, upper, body_fun, init_val):
    """For loop implementation.

    Args:
        lower: The initial value of the loop variable (an integer).
        upper: The upper bound of the loop variable (an integer, excluded).
        body_fun: A callable that represents the loop body. Must take two arguments: the
            loop variable (a Python int) and the loop state. The loop state should be
            updated and returned by this function.
        init_val: The initial value of the loop state.

    Returns:
        The final state after the loop (``init_val`` itself when ``upper <= lower``).
    """
    lo = _int("fori_loop", "lower", lower)
    hi = _int("fori_loop", "upper", upper)
    _check_callable("fori_loop", "body_fun", body_fun)
    val = init_val
    for i in range(lo, hi):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """While loop implementation.

    Args:
        cond: A callable that represents the termination condition of the loop. Must
            accept a ``loop_vars`` like structure as an argument. If ``loop_vars`` is a
            tuple or list, each element of ``loop_vars`` will be passed positionally to
            the callable.
        body: A callable that represents the loop body. Must accept a ``loop_vars`` like
            structure as an argument, and return update value with the same structure.
            If ``loop_vars`` is a tuple or list, each element of ``loop_vars`` will be
            passed positionally to the callable.
        loop_vars: An arbitrary nested structure of tensor state to persist across loop
            iterations (Python numbers and arrays are converted to tensors).
        maximum_iterations: Optional maximum number of iterations of the while loop to
            run. If provided, the ``cond`` output is AND-ed with an additional condition
            ensuring the number of iterations executed is no greater than
            ``maximum_iterations``.

    Returns:
        A tuple of tensors when ``loop_vars`` is a tuple or list, else the single final
        loop variable.
    """
    _check_callable("while_loop", "cond", cond)
    _check_callable("while_loop", "body", body)
    if maximum_iterations is not None:
        maximum_iterations = _int("while_loop", "maximum_iterations", maximum_iterations)
        if maximum_iterations < 0:
            raise ValueError(f"ops.while_loop: maximum_iterations must be >= 0 or None; "
                             f"received maximum_iterations={maximum_iterations}.")
    sequence = isinstance(loop_vars, (tuple, list))
    state = tuple(_tensors(v) for v in loop_vars) if sequence else (_tensors(loop_vars),)
    count = 0
    while (maximum_iterations is None or count < maximum_iterations) and \
            _truth("while_loop", "the value cond returned", cond(*state)):
        new = body(*state)
        new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
        if len(new) != len(state):
            raise ValueError(f"ops.while_loop: body must return as many loop variables as "
                             f"it takes ({len(state)}); it returned {len(new)}.")
        state = tuple(_tensors(v) for v in new)
        count += 1
    return state if sequence else state[0]


def _stacked(outputs):
    """Per-element outputs of a function, stacked along a new first axis (each leaf of a
    tuple / list / dict output on its own)."""
    first = outputs[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_stacked([o[i] for o in outputs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stacked([o[k] for o in outputs]) for k in first}
    return stack([_as_tensor(o) for o in outputs], axis=0)


def vectorized_map(function, elements):
    """Parallel map of ``function`` on axis 0 of tensor(s) ``elements``.

    Schematically, ``vectorized_map`` implements the following, in the case of a single
    tensor input ``elements``::

        def vectorized_map(function, elements):
            outputs = []
            for e in elements:
                outputs.append(function(e))
            return stack(outputs)

    In the case of a list or tuple (or dict) of tensors ``elements``, ``function`` takes
    one argument of the same kind, holding the ``i``-th slice of each tensor.

    minidl runs the loop eagerly; the slices and the stacking record, so gradients flow to
    ``elements`` and to whatever ``function`` reads.

    Args:
        function: Callable applied to each slice.
        elements: A tensor, or a list / tuple / dict of tensors sharing their first axis.

    Returns:
        The outputs of ``function`` stacked along a new first axis (a structure of them when
        ``function`` returns a tuple, list or dict).
    """
    _check_callable("vectorized_map", "function", function)
    if isinstance(elements, dict):
        keys = list(elements)
        tensors = [_as_tensor(elements[k]) for k in keys]
    elif isinstance(elements, (list, tuple)):
        keys = None
        tensors = [_as_tensor(e) for e in elements]
    else:
        keys = None
        tensors = [_as_tensor(elements)]
    if not tensors:
        raise ValueError("ops.vectorized_map: elements must not be empty.")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"ops.vectorized_map: every element must have a first axis to "
                             f"map over; element {i} is 0-d.")
    batch = tensors[0].shape[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.shape[0] != batch:
            raise ValueError(f"ops.vectorized_map: all elements must have the same size along "
                             f"axis 0; element 0 has {batch}, element {i} has {t.shape[0]}.")
    if batch == 0:
        raise ValueError("ops.vectorized_map: elements have size 0 along axis 0; there is "
                         "nothing to map over (the output's shape is unknown).")
    outputs = []
    for i in range(batch):
        slices = [get_item(t, i) for t in tensors]
        if keys is not None:
            arg = dict(zip(keys, slices))
        elif isinstance(elements, (list, tuple)):
            arg = type(elements)(slices)
        else:
            arg = slices[0]
        outputs.append(function(arg))
    return _stacked(outputs)


# ---- windows ----

def slice(inputs, start_indices, shape):
    """Return a slice of an input tensor.

    At a high level, this operation is an explicit replacement for array slicing, e.g.
    ``inputs[start_indices: start_indices + shape]``, with positions that may be tensors.

    Args:
        inputs: A tensor.
        start_indices: A list/tuple (or 1-D integer tensor) of shape ``(inputs.ndim,)``,
            specifying the starting indices of the slice.
        shape: The full shape of the returned slice, one size per axis.

    Returns:
        A tensor of shape ``shape`` and the dtype of ``inputs``. Its gradient is written
        into the window of a zero tensor.
    """
    a = to_array(inputs)
    starts = _int_list("slice", "start_indices", start_indices)
    sizes = _int_list("slice", "shape", shape)
    _check_window("slice", starts, sizes, a.shape, "shape")
    key = tuple(builtins.slice(s, s + n) for s, n in zip(starts, sizes))
    return record("slice", a[key], (inputs,), _window_backward(a.shape, key))


def slice_update(inputs, start_indices, updates):
    """Update an input by slicing in a tensor of updated values.

    At a high level, this operation does
    ``inputs[start_indices: start_indices + updates.shape] = updates``, on a copy.

    Args:
        inputs: A tensor, the tensor to be updated.
        start_indices: A list/tuple (or 1-D integer tensor) of shape ``(inputs.ndim,)``,
            specifying the starting indices for updating.
        updates: A tensor of the rank of ``inputs``, the new values to be put to ``inputs``
            at the window; each size must not exceed ``inputs.shape[i] - start_indices[i]``.

    Returns:
        A tensor with the shape and dtype of ``inputs``. Gradients: ``inputs`` gets the
        output's gradient outside the window, ``updates`` the part inside it.
    """
    a = to_array(inputs)
    u = to_array(updates)
    starts = _int_list("slice_update", "start_indices", start_indices)
    if u.ndim != a.ndim:
        raise ValueError(f"ops.slice_update: updates must have the rank of inputs; received "
                         f"updates of shape {u.shape} for inputs of shape {a.shape}.")
    _check_window("slice_update", starts, list(u.shape), a.shape, "updates.shape")
    key = tuple(builtins.slice(s, s + n) for s, n in zip(starts, u.shape))
    out = a.copy()
    out[key] = u

    def backward(g, needs):
        g_inputs = None
        if needs[0]:
            g_inputs = g.copy()
            g_inputs[key] = 0
        return g_inputs, (g[key] if needs[1] else None)
    return record("slice_update", out, (inputs, updates), backward)


# ---- scatters ----

def scatter(indices, values, shape):
    """Returns a tensor of shape ``shape`` where ``indices`` are set to ``values``.

    At a high level, this operation does ``zeros[indices] = values`` and returns the
    output; values whose indices repeat are summed (as TensorFlow's ``scatter_nd``).

    Args:
        indices: An integer tensor or list/tuple of shape ``(..., k)``: each row the first
            ``k`` coordinates of a position in the output.
        values: A tensor of shape ``indices.shape[:-1] + shape[k:]``, the values to be set
            at ``indices``.
        shape: Shape of the output tensor.

    Returns:
        A tensor of shape ``shape`` and the dtype of ``values``. ``values`` gets the
        output's gradient at its positions.

    Example:

    >>> indices = [[0, 1], [1, 1]]
    >>> values = np.array([1., 1.])
    >>> minidl.ops.scatter(indices, values, shape=(2, 2))
    [[0., 1.],
     [0., 1.]]
    """
    idx = _indices("scatter", indices)
    v = to_array(values)
    out_shape = tuple(_int_list("scatter", "shape", shape)) if not isinstance(
        shape, numbers.Integral) else (_int("scatter", "shape", shape),)
    if any(n < 0 for n in out_shape):
        raise ValueError(f"ops.scatter: shape must not have negative sizes; received "
                         f"shape={out_shape}.")
    _check_positions("scatter", idx, out_shape)
    k = idx.shape[-1]
    expected = idx.shape[:-1] + out_shape[k:]
    if v.shape != expected:
        raise ValueError(f"ops.scatter: values must have shape indices.shape[:-1] + "
                         f"shape[{k}:] = {expected}; received values of shape {v.shape}.")
    key = tuple(idx[..., j] for j in range(k))
    out = np.zeros(out_shape, v.dtype)
    np.add.at(out, key, v)
    return record("scatter", out, (indices, values),
                  lambda g, needs: (None, g[key] if needs[1] else None))


def scatter_update(inputs, indices, updates):
    """Update inputs via updates at scattered (sparse) indices.

    At a high level, this operation does ``inputs[indices] = updates``, on a copy. With
    ``inputs`` of shape ``(D0, D1, ..., Dn)`` and ``indices`` of shape ``(N, k)``,
    ``updates`` has shape ``(N,) + inputs.shape[k:]``: each row of ``indices`` names an
    element (``k == n + 1``) or a slice (``k < n + 1``) of ``inputs``.

    Args:
        inputs: A tensor, the tensor to be updated.
        indices: An integer tensor or list/tuple of shape ``(N, k)`` (more leading axes are
            allowed, as in ``scatter``), specifying indices to update.
        updates: A tensor, the new values to be put to ``inputs`` at ``indices``.

    Returns:
        A tensor with the shape and dtype of ``inputs``. Where an index repeats, the last
        update is kept, and only it receives a gradient; ``inputs`` gets the gradient
        everywhere it was not overwritten.
    """
    a = to_array(inputs)
    idx = _indices("scatter_update", indices)
    u = to_array(updates)
    _check_positions("scatter_update", idx, a.shape)
    k = idx.shape[-1]
    expected = idx.shape[:-1] + a.shape[k:]
    if u.shape != expected:
        raise ValueError(f"ops.scatter_update: updates must have shape indices.shape[:-1] + "
                         f"inputs.shape[{k}:] = {expected}; received updates of shape "
                         f"{u.shape}.")
    rows = idx.reshape(-1, k)
    flat_updates = u.reshape((-1,) + a.shape[k:])
    # The last write to each position wins: numpy leaves the order of a fancy assignment
    # with repeated indices unspecified, so the repeats are removed first.
    linear = np.ravel_multi_index(tuple(rows.T), a.shape[:k])
    last = len(linear) - 1 - np.unique(linear[::-1], return_index=True)[1]
    keep = np.sort(last)
    key = tuple(rows[keep, j] for j in range(k))
    out = a.copy()
    out[key] = flat_updates[keep]

    def backward(g, needs):
        g_inputs = g_updates = None
        if needs[0]:
            g_inputs = g.copy()
            g_inputs[key] = 0
        if needs[2]:
            g_updates = np.zeros(flat_updates.shape, g.dtype)
            g_updates[keep] = g[key]
            g_updates = g_updates.reshape(u.shape)
        return g_inputs, None, g_updates
    return record("scatter_update", out, (inputs, indices, updates), backward)


# ---- unstack ----

def unstack(x, num=None, axis=0):
    """Unpacks the given dimension of a rank-R tensor into rank-(R-1) tensors.

    Args:
        x: The input tensor.
        num: The length of the dimension axis. Automatically inferred if None; when
            given, it must equal that length.
        axis: The axis along which to unpack.

    Returns:
        A list of tensors unpacked along the given axis (views of ``x``).
    """
    a = to_array(x)
    if a.ndim == 0:
        raise ValueError("ops.unstack: a 0-d tensor has no axis to unstack.")
    ax = _axis(axis, a.ndim, "unstack")
    n = a.shape[ax]
    if num is not None and _int("unstack", "num", num) != n:
        raise ValueError(f"ops.unstack: num={num} does not match the length {n} of axis "
                         f"{axis} of a tensor of shape {a.shape}.")
    pieces = []
    for i in range(n):
        key = (builtins.slice(None),) * ax + (i,)
        pieces.append(record("unstack", a[key], (x,), _window_backward(a.shape, key)))
    return pieces
