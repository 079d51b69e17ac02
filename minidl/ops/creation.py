"""Creating and converting tensors: convert_to_tensor, convert_to_numpy, cast, zeros, ones,
full, arange, one_hot, ..."""
import numpy as np

from minidl.autodiff.gradient import convert_to_tensor
from minidl.autodiff.tensor import record, to_array, value_of

__all__ = ["cast", "convert_to_numpy", "convert_to_tensor"]


def convert_to_numpy(x):
    """``x`` as a numpy array."""
    return np.array(to_array(x))


def cast(x, dtype):
    """``x`` converted to ``dtype``; casts to integer or bool types have no gradient."""
    a = np.asarray(value_of(x))
    dtype = np.dtype(dtype)
    out = a.astype(dtype)
    if dtype.kind != "f" or a.dtype.kind != "f":
        return record("cast", out, (x,), None)
    return record("cast", out, (x,), lambda g, needs: (g.astype(a.dtype),))
