"""What the preprocessing layers share: their base class and the reading of ``adapt`` data.

Preprocessing layers (Keras' ``DataLayer``) take data as it comes: a batch of scalars (a
1-D array, whose samples have shape ``()``), integer inputs, and, for the layers whose
computation does not depend on the shape they were built for, inputs of any shape after the
first. Their outputs are floats of the layer's dtype whatever the input type (or int64 for
integer indices).

``adapt`` reads data the way Keras does: an array (or a nested list of numbers), or any
iterable of batches (a list of arrays, a generator, a dataset), where a batch may be a tuple
``(x, y, ...)`` of which ``x`` is taken.
"""
import numbers

import numpy as np

from minidl.autodiff import Tensor
from minidl.layers.base import Layer, _as_shape, _compatible
from minidl.layers.node import is_symbolic

# Rows of an array given to adapt without batch_size are read in chunks of at most this many
# values, so that adapt's float64 temporaries stay small whatever the data's size.
_ADAPT_CHUNK_VALUES = 1 << 20


class PreprocessingLayer(Layer):
    """Base class of the preprocessing layers.

    A subclass sets ``_any_shape = False`` when its computation depends on the shape it was
    built for (Normalization's per-feature statistics); the others take inputs of any shape
    once built, as Keras' preprocessing layers do.
    """

    _any_shape = True

    def __call__(self, *args, **kwargs):
        # One input, which Keras lets be a (nested) list of numbers: `layer([3, 2, 0, 1])`.
        if args and isinstance(args[0], (list, tuple)) and not is_symbolic(args[0]):
            args = (_as_input(args[0], self),) + args[1:]
        elif isinstance(kwargs.get("inputs"), (list, tuple)) and \
                not is_symbolic(kwargs["inputs"]):
            kwargs["inputs"] = _as_input(kwargs["inputs"], self)
        return super().__call__(*args, **kwargs)

    def ensure_built(self, input_shape):
        shape = tuple(input_shape)
        if shape:   # () is a batch of scalars, which preprocessing layers take
            shape = _as_shape(shape, f"Layer '{self.name}' input shape", allow_none=True)
        if not self.built:
            self.build(shape)
        elif not self._any_shape and not _compatible(shape, self.built_input_shape):
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}) was built for inputs of shape "
                f"{(None,) + self.built_input_shape}; received {(None,) + shape}.")

    def _output_dtype(self):
        """The dtype of the layer's outputs: floats of the layer's dtype, even for integer
        inputs (a subclass returning indices says 'int64')."""
        return self.dtype

    def _output_spec(self, leaves, sample):
        sample = leaves[0].shape[1:]
        return (leaves[0].shape[0],) + tuple(self.output_shape_for(sample)), self._output_dtype()

    def _output_buffer(self, ctx, shape):
        """A training call's reused output buffer, or a fresh array for inference (so that
        concurrent predict calls never share one), of the layer's dtype."""
        if ctx.record:
            return ctx.buffers.get("y", shape[0], shape[1:])
        return np.empty(shape, self.dtype)



class EncodingLayer(PreprocessingLayer):
    """Base of the layers whose output is piecewise constant in their input: indices or
    codes of the values (CategoryEncoding, Discretization). A subclass writes
    ``encode(x)``; the input gradient is zero (where it exists), in the input's float type
    (the layer's dtype for integer inputs)."""

    def forward(self, ctx, x, training=False):
        y = self.encode(x)
        if ctx.record:
            ctx.input_shape, ctx.input_dtype = x.shape, x.dtype
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return np.zeros(ctx.input_shape, ctx.input_dtype if ctx.input_dtype.kind == "f"
                        else self.dtype)

def _as_input(value, layer):
    try:
        return np.asarray([v.value if isinstance(v, Tensor) else v for v in value])
    except (ValueError, TypeError):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) takes one input: an "
                         f"array, or a nested list of numbers of a regular shape.") from None


def check_positive_int(owner, name, value, allow_none=True):
    """``value`` as an int >= 1 (or None where allowed); TypeError / ValueError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: `{name}` must be a positive int"
                        f"{' or None' if allow_none else ''}. Received: {name}={value!r:.100}")
    if value < 1:
        raise ValueError(f"{owner}: `{name}` must be >= 1. Received: {name}={value!r}")
    return int(value)


def check_number(owner, name, value):
    """``value`` as a float; ValueError naming ``name`` unless it is a finite real number
    (``fill_value``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value):
        raise ValueError(f"{owner}: `{name}` must be a finite number. Received: "
                         f"{name}={value!r:.100}")
    return float(value)


def check_choice(owner, name, value, choices, unsupported=()):
    """``value`` if it is one of the strings ``choices``; ValueError naming ``name``
    otherwise (``unsupported``: Keras' other options, which minidl does not implement,
    named as such)."""
    if value in choices:
        return value
    if value in unsupported:
        raise ValueError(f"{owner}: {name}={value!r} is a Keras option that minidl does "
                         f"not implement; use one of {choices}.")
    raise ValueError(f"{owner}: `{name}` must be one of {choices}. Received: "
                     f"{name}={value!r:.100}")


def numeric_array(owner, name, value, allow_bool=False):
    """``value`` (a number, a nested list of numbers or an array) as a float64 array, all
    finite; TypeError / ValueError naming ``name`` otherwise. Booleans count as numbers
    only with ``allow_bool``."""
    if (isinstance(value, (bool, np.bool_)) and not allow_bool) or \
            (isinstance(value, (list, tuple)) and _holds_non_numbers(value, allow_bool)):
        raise TypeError(f"{owner}: `{name}` must be a number or a (nested) list of numbers. "
                        f"Received: {name}={value!r:.100}")
    array = _numbers(value, owner, name, "biuf" if allow_bool else "iuf").astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner}: `{name}` must hold finite numbers. Received: "
                         f"{name}={value!r:.100}")
    return array


def _numbers(value, owner, name, kinds):
    """``value`` (a Tensor, an array, a number or a nested list of them) as an array of a
    dtype of one of the ``kinds``; TypeError / ValueError naming ``name`` otherwise."""
    if isinstance(value, Tensor):
        value = value.value
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise TypeError(f"{owner}: `{name}` must be a number or a (nested) list of numbers. "
                        f"Received: {name}={value!r:.100}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{owner}: `{name}` must be a number or a nested list of numbers "
                         f"of a regular shape. Received: {name}={value!r:.100}") from None
    if array.dtype.kind not in kinds:
        raise TypeError(f"{owner}: `{name}` must hold numbers. Received: "
                        f"{name}={value!r:.100} (dtype {array.dtype})")
    return array


def _holds_non_numbers(items, allow_bool=False):
    for item in items:
        if isinstance(item, (list, tuple)):
            if _holds_non_numbers(item, allow_bool):
                return True
        elif (isinstance(item, (bool, np.bool_)) and not allow_bool) or \
                not isinstance(item, (numbers.Real, np.bool_)):
            return True
    return False


def adapt_batches(data, batch_size, steps, owner):
    """The batches of ``adapt`` data, as numeric arrays with a batch dimension.

    Args:
        data: an array (or Tensor, or nested list of numbers), split into batches of
            ``batch_size`` rows; or an iterable of batches (a list of arrays, a generator, a
            dataset; an object with ``__len__`` and ``__getitem__`` is read by index, as a
            ``PyDataset``). A batch given as a tuple ``(x, y, ...)`` yields ``x``.
        batch_size: None or an int >= 1, for array data only.
        steps: None or an int >= 1, the number of batches to read, for iterables only.
        owner: the layer, for messages.

    Yields:
        Arrays of rank >= 1, of a numeric dtype.
    """
    what = f"Layer '{owner.name}' ({type(owner).__name__}) adapt()"
    batch_size = check_positive_int(what, "batch_size", batch_size)
    steps = check_positive_int(what, "steps", steps)
    if isinstance(data, Tensor):
        data = data.value
    if isinstance(data, (list, tuple)) and not any(_is_batch_like(item) for item in data):
        data = _as_batch(data, what, "data")   # numbers: one array
    if isinstance(data, np.ndarray):
        if steps is not None:
            raise ValueError(f"{what}: `steps` counts the batches of an iterable; it is not "
                             f"used with array data (use batch_size). Received: steps={steps}")
        array = _as_batch(data, what, "data")
        rows = batch_size or max(1, _ADAPT_CHUNK_VALUES // max(1, array[:1].size))
        for start in range(0, array.shape[0], rows):
            yield array[start:start + rows]
        return
    if batch_size is not None:
        raise ValueError(f"{what}: `batch_size` splits array data; an iterable of batches is "
                         f"read as batched already. Received: batch_size={batch_size}")
    if hasattr(data, "__iter__"):
        items = iter(data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        items = (data[i] for i in range(len(data)))
    else:
        raise TypeError(f"{what} takes a numpy array, a list, or an iterable of batches "
                        f"(a list of arrays, a generator, a dataset). Received: "
                        f"data of type {type(data).__name__}")
    for count, batch in enumerate(items):
        if steps is not None and count >= steps:
            break
        if isinstance(batch, tuple):
            if not batch:
                raise ValueError(f"{what}: batch {count} is an empty tuple; a batch is an "
                                 f"array or a tuple (x, y, ...).")
            batch = batch[0]
        yield _as_batch(batch, what, f"batch {count}")


def _is_batch_like(item):
    # An element that is itself an array (or a tuple (x, y)) makes `data` a list of batches.
    return isinstance(item, (np.ndarray, Tensor)) or (
        isinstance(item, tuple) and bool(item) and isinstance(item[0], (np.ndarray, Tensor)))


def _as_batch(value, what, name):
    array = _numbers(value, what, name, "biuf")
    if array.ndim == 0:
        raise ValueError(f"{what}: {name} must have a batch dimension. Received: a scalar "
                         f"{array.item()!r:.50}")
    return array
