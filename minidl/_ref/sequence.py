"""Plain-numpy references of the non-recurrent sequence layers (float64 arithmetic), what
tests/test_sequence_layers.py compares the layers with."""
import numpy as np


def embedding_lookup(ids, table):
    """The rows of ``table`` named by the integer array ``ids``: ``ids.shape + (dim,)``."""
    return table[np.asarray(ids, np.int64)]


def embedding_grad(ids, dy, input_dim):
    """The table's gradient: ``dy`` row by row added into the rows ``ids`` name."""
    dim = dy.shape[-1]
    grad = np.zeros((input_dim, dim), np.float64)
    np.add.at(grad, np.asarray(ids, np.int64).reshape(-1), dy.reshape(-1, dim))
    return grad


def masking(x, mask_value):
    """(output, mask) of Masking: steps whose features all equal ``mask_value`` zeroed."""
    mask = np.any(x != mask_value, axis=-1)
    return x * mask[..., None], mask


def masked_average(x, mask):
    """GlobalAveragePooling1D with a mask: the mean over the unmasked steps (zeros when
    none is)."""
    keep = mask[:, :, None].astype(bool)
    total = np.where(keep, x, 0.0).sum(axis=1)
    count = keep.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def masked_average_grad(dy, mask):
    keep = mask[:, :, None].astype(np.float64)
    count = np.maximum(keep.sum(axis=1, keepdims=True), 1)
    return dy[:, None, :] * keep / count


def repeat_vector(x, n):
    return np.repeat(x[:, None, :], n, axis=1)
