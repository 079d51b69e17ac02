"""Shape ops: reshape, expand_dims, squeeze, concatenate, stack, split, tile, repeat,
broadcast_to, and indexing (``tensor[key]``)."""
import numpy as np

from minidl.autodiff.tensor import Tensor, record, value_of

__all__ = ["get_item", "reshape"]


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one entry may be -1)."""
    a = np.asarray(value_of(x))
    out = np.reshape(a, newshape)
    return record("reshape", out, (x,), lambda g, needs: (np.reshape(g, a.shape),))


def get_item(x, key):
    """``x[key]``: numpy's basic and advanced indexing."""
    a = np.asarray(value_of(x))
    key = _index_value(key) if not isinstance(key, tuple) else tuple(map(_index_value, key))
    out = a[key]

    def backward(g, needs):
        full = np.zeros(a.shape, g.dtype)
        np.add.at(full, key, g)
        return (full,)
    return record("get_item", np.array(out), (x,), backward)


def _index_value(k):
    return k.value if isinstance(k, Tensor) else k
