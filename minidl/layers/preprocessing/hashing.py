"""Hashing: strings or integers to hash bins, as ``keras.layers.Hashing``."""
import numbers

import numpy as np

from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.category_encoding import (check_not_sparse,
                                                           check_output_mode, encoded_shape)
from minidl.layers.preprocessing.index_lookup import encode_tokens
from minidl.layers.preprocessing.string_hash import hash_buckets
from minidl.layers.preprocessing.text_base import TextLayer, string_array

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")
_UINT64 = (1 << 64) - 1


@LAYERS.register()
class Hashing(TextLayer):
    """A preprocessing layer which hashes and bins categorical features.

    Each value becomes ``hash(value) % num_bins``, the hash of TensorFlow's
    ``to_hash_bucket_fast`` (FarmHash Fingerprint64 of the UTF-8 bytes) or, with a
    ``salt``, of ``to_hash_bucket_strong`` (SipHash-2-4 keyed by the salt), so that minidl
    puts every value in the bin Keras puts it in. Integers are hashed as their decimal
    strings, floats after truncation to integers (as Keras does).

    Args:
        num_bins: number of hash bins, the mask bin included when ``mask_value`` is set
            (then values go to bins 1 to ``num_bins - 1``).
        mask_value: optional value (a string or an int) mapped to bin 0.
        salt: optional int, or a pair of ints, in [0, 2**64): the SipHash key (an int
            ``s`` is the key ``[s, s]``).
        output_mode: 'int' (default: int64 bin indices), 'one_hot', 'multi_hot' or
            'count' (floats of the layer's dtype, as ``CategoryEncoding`` shapes them,
            with ``num_bins`` entries).
        sparse: must be False (minidl has no sparse tensors).

    Input: strings (an object or unicode array, a nested list of str) or integers.

    Examples:
        >>> Hashing(num_bins=3)([["A"], ["B"], ["C"], ["D"], ["E"]])   # [[1], [0], [1], [1], [2]]
        >>> Hashing(num_bins=3, mask_value="")([["A"], ["B"], [""], ["C"], ["D"]])
        ... # [[1], [1], [0], [2], [2]]
        >>> Hashing(num_bins=3, salt=133)([["A"], ["B"], ["C"], ["D"], ["E"]])
        ... # [[0], [0], [2], [1], [0]]
    """

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False,
                 **kwargs):
        if kwargs.get("dtype") in ("int32", "int64"):
            kwargs.pop("dtype")   # Keras' dtype of 'int' outputs: minidl's are int64
        super().__init__(**kwargs)
        if num_bins is None or isinstance(num_bins, bool) or \
                not isinstance(num_bins, numbers.Integral) or num_bins <= 0:
            raise ValueError(f"The `num_bins` for `Hashing` cannot be `None` or non-positive "
                             f"values. Received: num_bins={num_bins!r}.")
        self.num_bins = int(num_bins)
        self.output_mode = check_output_mode("Hashing", output_mode, OUTPUT_MODES)
        self.sparse = check_not_sparse("Hashing", sparse)
        if mask_value is not None and not isinstance(mask_value, (str, numbers.Integral)) \
                or isinstance(mask_value, bool):
            raise ValueError(f"Hashing: `mask_value` must be a string, an int or None. "
                             f"Received: mask_value={mask_value!r:.100}")
        self.mask_value = mask_value
        self.salt = None
        if salt is not None:
            if isinstance(salt, (tuple, list)) and len(salt) == 2:
                pair = list(salt)
            elif isinstance(salt, numbers.Integral) and not isinstance(salt, bool):
                pair = [salt, salt]
            else:
                raise ValueError(f"The `salt` argument for `Hashing` can only be a tuple of "
                                 f"size 2 integers, or a single integer. Received: "
                                 f"salt={salt!r:.100}.")
            if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or
                   not 0 <= s <= _UINT64 for s in pair):
                raise ValueError(f"Hashing: `salt` values must be ints in [0, 2**64). "
                                 f"Received: salt={salt!r:.100}.")
            self.salt = [int(s) for s in pair]

    @property
    def strong_hash(self):
        return self.salt is not None

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        shape = tuple(input_shape)
        if self.output_mode == "one_hot":
            return encoded_shape(shape, self.num_bins, "one_hot")
        return shape[:-1] + (self.num_bins,)

    def _output_dtype(self):
        return "int64" if self.output_mode == "int" else self.dtype

    def _output_spec(self, leaves, multi):
        self._check_symbolic_dtype(leaves[0].dtype, ("string", "int64", "int32"))
        return super()._output_spec(leaves, multi)

    def _convert(self, x, name="inputs"):
        array = x.value if hasattr(x, "value") and not isinstance(x, np.ndarray) else x
        if not isinstance(array, np.ndarray):
            try:
                array = np.asarray(array)
            except (ValueError, TypeError):
                raise ValueError(f"{self._owner}: `{name}` must be an array or a nested list "
                                 f"of a regular shape. Received: {name}={x!r:.100}") from None
        if array.dtype.kind in "biu":
            return array.astype(np.int64)
        if array.dtype.kind == "f":
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{self._owner} cannot hash NaN or infinite values.")
            return np.trunc(array).astype(np.int64)   # Keras casts floats to int64
        return string_array(array, self._owner, name)

    def _compute(self, x):
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            mask = x == (self.mask_value if x.dtype == object else _as_number(self.mask_value))
            mask = np.asarray(mask, dtype=bool)
        strings = x if x.dtype == object else x.astype(str).astype(object)
        values = hash_buckets(strings, bins, self.salt)
        if mask is not None:
            values = np.where(mask, 0, values + 1)
        if self.output_mode == "int":
            return values.astype(np.int64)
        if self.output_mode == "one_hot" and values.ndim > 1 and values.shape[-1] == 1:
            values = values[..., 0]
        return encode_tokens(values, None, self.num_bins, self.output_mode, self.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_bins=self.num_bins, salt=self.salt, mask_value=self.mask_value,
                      output_mode=self.output_mode, sparse=self.sparse)
        return config


def _as_number(value):
    """The mask value compared with integer inputs: a string mask never matches them."""
    return value if isinstance(value, numbers.Integral) else object()
