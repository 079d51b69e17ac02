"""Creating and converting tensors: convert_to_tensor, convert_to_numpy, cast, zeros, ones,
zeros_like, ones_like, full, full_like, arange, eye, identity, one_hot.

Keras' dtype defaults: a dtype of None gives float32 (Keras' floatx) for zeros, ones, full,
eye, identity and one_hot; the input's dtype for the ``*_like`` ops; int32 for an ``arange``
of Python ints. Created tensors do not depend on any input's values, so they carry no
history (a gradient through them is None, as in TensorFlow); ``full``'s fill value gets the
sum of the output's gradient.
"""
import numpy as np

from minidl.autodiff import gradient
from minidl.autodiff.tensor import (FLOATX, Tensor, Variable, record, to_array, unbroadcast,
                                    value_of, wrap)

__all__ = ["arange", "cast", "convert_to_numpy", "convert_to_tensor", "eye", "full",
           "full_like", "identity", "one_hot", "ones", "ones_like", "zeros", "zeros_like"]


def _dtype(dtype, default):
    return default if dtype is None else np.dtype(dtype)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """Converts a numpy array, Python data or a tensor to a tensor.

    Args:
        x: the data. Python floats become float32, Python ints int32 (Keras' rules); numpy
            arrays keep their dtype (and their memory: no copy).
        dtype: optional dtype. A tensor of another dtype is cast with :func:`cast`, so a
            float-to-float conversion keeps its gradient.
        sparse: must be None or False (minidl has no sparse tensors).
        ragged: must be None or False (minidl has no ragged tensors).

    Returns:
        A tensor (``x`` itself when it is a tensor of that dtype).
    """
    if sparse or ragged:
        raise ValueError(f"ops.convert_to_tensor: minidl has no sparse or ragged tensors; "
                         f"received sparse={sparse}, ragged={ragged}.")
    if isinstance(x, Tensor) and dtype is not None and np.dtype(dtype) != x.dtype:
        return cast(x, dtype)
    return gradient.convert_to_tensor(x, dtype)


def convert_to_numpy(x):
    """Converts a tensor (or array-like) to a numpy array.

    Args:
        x: the tensor.

    Returns:
        A numpy array of its own (a copy: later changes to a variable do not reach it).
    """
    return np.array(to_array(x))


def cast(x, dtype):
    """Casts a tensor to a dtype.

    Float-to-float casts pass the gradient through (converted back to the input's dtype);
    casts to or from integer and bool types have none: a gradient that must flow through
    one is an error naming 'cast'.

    Args:
        x: the tensor.
        dtype: the target dtype ('float32', 'int32', 'bool', a numpy dtype, ...).

    Returns:
        The cast tensor.
    """
    a = np.asarray(value_of(x))
    dtype = np.dtype(dtype)
    # A variable's array changes in place when the optimizer steps: the cast must not alias
    # it. Other arrays are never written to, so a same-dtype cast is free.
    out = a.astype(dtype, copy=isinstance(x, Variable))
    if dtype.kind != "f" or a.dtype.kind != "f":
        return record("cast", out, (x,), None)
    return record("cast", out, (x,), lambda g, needs: (g.astype(a.dtype, copy=False),))


def _fill_ops(word, fill):
    """(``word``, ``word``_like): the tensors that ``fill`` (np.zeros / np.ones) makes, of a
    shape or of another tensor's shape."""
    def op(shape, dtype=None):
        return wrap(fill(_shape(shape, word), _dtype(dtype, FLOATX)))

    def like(x, dtype=None):
        a = np.asarray(value_of(x))
        return wrap(fill(a.shape, _dtype(dtype, a.dtype)))
    op.__name__ = op.__qualname__ = word
    op.__doc__ = f"""A tensor filled with {word}.

    Args:
        shape: an int or a tuple of ints.
        dtype: defaults to float32.

    Returns:
        The tensor.
    """
    like.__name__ = like.__qualname__ = f"{word}_like"
    like.__doc__ = f"""A tensor of {word} with the shape of ``x``.

    Args:
        x: the tensor whose shape to take.
        dtype: defaults to the dtype of ``x``.

    Returns:
        The tensor (no gradient reaches ``x``: the values do not depend on it).
    """
    return op, like


zeros, zeros_like = _fill_ops("zeros", np.zeros)
ones, ones_like = _fill_ops("ones", np.ones)


def full(shape, fill_value, dtype=None):
    """A tensor filled with ``fill_value``.

    Args:
        shape: an int or a tuple of ints.
        fill_value: a scalar, or a tensor broadcast to ``shape``; it receives the summed
            gradient of the output.
        dtype: defaults to float32.

    Returns:
        The tensor.
    """
    return _full("full", _shape(shape, "full"), fill_value, _dtype(dtype, FLOATX))


def full_like(x, fill_value, dtype=None):
    """A tensor with the shape of ``x`` filled with ``fill_value``.

    Args:
        x: the tensor whose shape to take (no gradient reaches it).
        fill_value: a scalar, or a tensor broadcast to the shape of ``x``.
        dtype: defaults to the dtype of ``x``.

    Returns:
        The tensor.
    """
    a = np.asarray(value_of(x))
    return _full("full_like", a.shape, fill_value, _dtype(dtype, a.dtype))


def _full(name, shape, fill_value, dtype):
    v = value_of(fill_value)
    try:
        out = np.full(shape, v, dtype)
    except ValueError:
        raise ValueError(f"ops.{name}: a fill_value of shape {np.shape(v)} cannot be "
                         f"broadcast to shape {shape}.") from None
    if not isinstance(fill_value, Tensor):
        return wrap(out)
    if dtype.kind != "f":
        return record(name, out, (fill_value,), None)
    return record(name, out, (fill_value,),
                  lambda g, needs: (unbroadcast(g, np.shape(v)),))


def _shape(shape, name):
    if isinstance(shape, Tensor):
        shape = shape.value
    try:
        if np.ndim(shape) == 0:
            return (int(shape),)
        return tuple(int(n) for n in np.asarray(shape).reshape(-1))
    except (TypeError, ValueError):
        raise TypeError(f"ops.{name}: shape must be an int or a sequence of ints; received "
                        f"shape={shape!r}.") from None


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in ``[start, stop)``, as ``numpy.arange``.

    Args:
        start: the first value; with ``stop`` None, the end (and the start is 0).
        stop: the end (excluded).
        step: the spacing (not 0).
        dtype: defaults to int32 when ``start``, ``stop`` and ``step`` are ints, else
            float32 (float64 only when one of them is a float64 array).

    Returns:
        A 1-D tensor.
    """
    if stop is None:
        start, stop = 0, start
    values = [value_of(v) for v in (start, stop, step)]
    if dtype is None:
        kinds = [np.asarray(v).dtype for v in values]
        if all(k.kind in "iub" for k in kinds):
            dtype = np.int32
        elif any(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in values):
            dtype = np.float64
        else:
            dtype = FLOATX
    if values[2] == 0:
        raise ValueError("ops.arange: step must not be 0; received step=0.")
    return wrap(np.arange(*values, dtype=dtype))


def eye(N, M=None, k=0, dtype=None):
    """A 2-D tensor with ones on a diagonal and zeros elsewhere.

    Args:
        N: the number of rows.
        M: the number of columns; defaults to ``N``.
        k: the diagonal: 0 the main one, positive above, negative below.
        dtype: defaults to float32.

    Returns:
        The tensor, of shape ``(N, M)``.
    """
    return wrap(np.eye(int(N), None if M is None else int(M), int(k), _dtype(dtype, FLOATX)))


def identity(n, dtype=None):
    """The ``n`` by ``n`` identity matrix.

    Args:
        n: the number of rows and columns.
        dtype: defaults to float32.

    Returns:
        The tensor.
    """
    return wrap(np.eye(int(n), dtype=_dtype(dtype, FLOATX)))


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Converts integer class ids to one-hot vectors.

    Ids outside ``[0, num_classes)`` (such as -1 for padding) give all-zero vectors, as
    Keras' TensorFlow and JAX backends do.

    Args:
        x: integer tensor of class ids, any shape.
        num_classes: the length of the one-hot vectors.
        axis: where the new class axis goes in the result; -1 (last) by default.
        dtype: defaults to float32.
        sparse: must be False (minidl has no sparse tensors).

    Returns:
        A tensor of shape ``x.shape`` with an axis of ``num_classes`` inserted at ``axis``.
    """
    if sparse:
        raise ValueError("ops.one_hot: minidl has no sparse tensors; received sparse=True.")
    ids = np.asarray(value_of(x))
    if ids.dtype.kind not in "iu" and ids.size:
        raise TypeError(f"ops.one_hot: x must hold integer class ids; received dtype "
                        f"{ids.dtype}. Cast it first: ops.cast(x, 'int32').")
    n = int(num_classes)
    if n < 0:
        raise ValueError(f"ops.one_hot: num_classes must be >= 0; received {num_classes}.")
    ndim = ids.ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"ops.one_hot: axis={axis} is out of range for a result of rank "
                         f"{ndim}.")
    # One comparison against the class ids: out-of-range ids match no class.
    out = (ids[..., None] == np.arange(n)).astype(_dtype(dtype, FLOATX))
    if axis % ndim != ndim - 1:
        out = np.moveaxis(out, -1, axis)
    return wrap(out)
