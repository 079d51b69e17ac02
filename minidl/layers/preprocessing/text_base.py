"""What the text and lookup layers share: reading string or integer inputs as they are
(never cast to float), and the call plumbing of a layer whose input has no gradient.

These layers (``StringLookup``, ``IntegerLookup``, ``Hashing``, ``TextVectorization``) take
strings as numpy arrays of dtype object holding ``str`` (or ``bytes``, read as UTF-8), numpy
unicode arrays, or (nested) Python lists of str; integer layers take int arrays. A call on
arrays runs at once; a call on a symbolic ``Input(dtype="string")`` records a node, and the
layer then runs in the model's plan on the batches of strings the data path hands it.
"""
import numbers

import numpy as np

from minidl.autodiff import Tensor, wrap
from minidl.layers.node import is_symbolic
from minidl.layers.preprocessing.base import PreprocessingLayer


def string_array(value, owner, name="inputs", encoding="utf-8"):
    """``value`` as an object array of ``str`` (bytes decoded with ``encoding``);
    TypeError naming ``name`` when it holds numbers (or anything that is not a string)."""
    if isinstance(value, Tensor):
        value = value.value
    if isinstance(value, (str, bytes)):
        value = [value]
        scalar = True
    else:
        scalar = False
    try:
        array = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) \
            else value
    except (ValueError, TypeError):
        raise ValueError(f"{owner}: `{name}` must be strings in an array or a nested list "
                         f"of a regular shape. Received: {name}={value!r:.100}") from None
    if array.dtype.kind == "U":
        array = array.astype(object)
    elif array.dtype.kind == "S":
        array = np.vectorize(lambda b: b.decode(encoding), otypes=[object])(array) \
            if array.size else array.astype(object)
    elif array.dtype.kind != "O":
        raise TypeError(f"{owner} takes strings; received {name} of dtype {array.dtype}. "
                        f"Numbers go to IntegerLookup, Discretization or Normalization; "
                        f"convert them with .astype(str) to treat them as strings.")
    else:
        array = _checked_strings(array, owner, name, encoding)
    return array.reshape(()) if scalar else array


def _checked_strings(array, owner, name, encoding):
    flat = array.reshape(-1)
    kinds = {type(item) for item in flat}
    if kinds <= {str}:
        return array
    if kinds <= {str, bytes, np.str_, np.bytes_}:
        return np.asarray([item.decode(encoding) if isinstance(item, (bytes, np.bytes_))
                           else str(item) for item in flat], dtype=object).reshape(array.shape)
    bad = next(item for item in flat if not isinstance(item, (str, bytes, np.str_, np.bytes_)))
    raise TypeError(f"{owner} takes strings; received {name} holding "
                    f"{type(bad).__name__} {bad!r:.50}. Convert numbers with .astype(str), or "
                    f"use IntegerLookup for integer features.")


def integer_array(value, owner, name="inputs"):
    """``value`` as an int64 array; TypeError for strings, ValueError for fractions or
    non-finite floats."""
    if isinstance(value, Tensor):
        value = value.value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{owner} takes integers; received {name}={value!r:.50}.")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise ValueError(f"{owner}: `{name}` must be integers in an array or a nested list "
                         f"of a regular shape. Received: {name}={value!r:.100}") from None
    if array.dtype.kind in "OUS":
        if array.dtype.kind == "O" and all(isinstance(v, numbers.Integral) and
                                           not isinstance(v, bool) for v in array.flat):
            return array.astype(np.int64)
        raise TypeError(f"{owner} takes integers; received {name} of dtype {array.dtype}. "
                        f"Strings go to StringLookup, Hashing or TextVectorization.")
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.floor(array))
        if bad.any():
            raise ValueError(f"{owner} takes integers; received {name} holding "
                             f"{array[bad].flat[0].item()!r}.")
    elif array.dtype.kind not in "biu":
        raise TypeError(f"{owner} takes integers; received {name} of dtype {array.dtype}.")
    return array.astype(np.int64)


class TextLayer(PreprocessingLayer):
    """Base of the layers reading strings or integer ids as they are.

    A subclass writes ``_convert(x)`` (the input array, checked: strings or int64) and
    ``_compute(x)`` (the output array). Outputs are not differentiable in the inputs.
    """

    # The plan hands integer inputs over as they are (it never casts strings).
    _reads_integer_inputs = True

    @property
    def _owner(self):
        return f"Layer '{self.name}' ({type(self).__name__})"

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if is_symbolic(inputs):
            return super().__call__(*args, **kwargs)
        if args:
            args = args[1:]
        else:
            kwargs = dict(kwargs)
            kwargs.pop("inputs", None)
        kwargs.pop("training", None)
        if args or kwargs:
            raise TypeError(f"{self._owner} was called with unexpected arguments "
                            f"{sorted(kwargs) or len(args)}; it takes inputs only.")
        if inputs is None:
            raise TypeError(f"Layer '{self.name}' was called without inputs.")
        x = self._convert(inputs)
        if x.ndim >= 1:
            self.ensure_built(x.shape[1:])
        return wrap(self._compute(x))

    def forward(self, ctx, x, training=False):
        return self._compute(self._convert(x))

    def backward(self, ctx, dy, need_input_grad=True):
        return None   # strings and ids have no gradient

    def _check_symbolic_dtype(self, dtype, kinds):
        """Raise TypeError when a symbolic input of ``dtype`` cannot feed this layer."""
        if dtype not in kinds:
            raise TypeError(f"{self._owner} takes inputs of dtype "
                            f"{' or '.join(repr(k) for k in kinds)}; received a symbolic "
                            f"input of dtype {dtype!r}. Use Input(..., dtype="
                            f"{kinds[0]!r}).")
