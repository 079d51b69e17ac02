"""Checking and batching the arrays a user passes to fit / evaluate / predict.

Everything is checked once per call, on the whole arrays, before the first step: a shape
mistake, a label out of range or a NaN is reported in one sentence that names the argument,
instead of failing deep inside a kernel halfway through an epoch.
"""
import numpy as np

from minidl._core import _data

# Integer and float types the batch gatherer reads directly; others are converted once.
_GATHER_DTYPES = {np.dtype(t) for t in
                  (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64)}


def prepare_x(x, input_shape, name="x"):
    """Validate ``x`` against the model's sample shape; return a C-contiguous 2-D view.

    Integer inputs (e.g. uint8 images) and float64 inputs are accepted and converted to the
    model's float type batch by batch while gathering, so the data set is never copied whole.

    Args:
        x: array-like of shape ``(n,) + input_shape``.
        input_shape: the model's sample shape, or None when the model is not built yet.
    Returns:
        ``(x2d, sample_shape)``: an ``(n, prod(sample_shape))`` array and the sample shape.
    """
    if x is None:
        raise ValueError(f"{name} is required; received None.")
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        arr = arr.view(np.uint8)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold numbers (int or float); received dtype {arr.dtype}.")
    if arr.ndim < 2:
        raise ValueError(f"{name} must have a batch dimension and at least one feature "
                         f"dimension; received shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample.")
    sample_shape = tuple(arr.shape[1:])
    if input_shape is not None and sample_shape != tuple(input_shape):
        raise ValueError(_shape_mismatch_message(name, arr.shape, tuple(input_shape)))
    if arr.dtype not in _GATHER_DTYPES:
        arr = arr.astype(np.float32)
    bad, first = _data.count_nonfinite(arr)
    if bad:
        where = np.unravel_index(first, arr.shape)
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s), the first at index "
                         f"{tuple(int(i) for i in where)}; clean or impute the data first.")
    arr = np.ascontiguousarray(arr)
    return arr.reshape(arr.shape[0], -1), sample_shape


def _shape_mismatch_message(name, shape, expected):
    msg = (f"{name} has shape {shape}, but the model expects samples of shape {expected} "
           f"(input shape {(None,) + expected}).")
    if len(expected) == 1 and len(shape) > 2 and int(np.prod(shape[1:])) == expected[0]:
        msg = (f"The model's first layer expects a last dimension of {expected[0]}, but {name} "
               f"has shape {shape}; add Flatten() as the first layer or reshape {name} to "
               f"{(shape[0], expected[0])}.")
    return msg


def prepare_y(y, n, loss, output_shape, name="y", dtype=np.float32):
    """Validate targets against the loss and the model output; return a compact array.

    Sparse labels become int32 of shape (n,); dense targets ``dtype`` (the model's output
    type, so a float64 model trains on unrounded targets) of shape ``(n,) + output_shape``.
    """
    from minidl import losses
    if y is None:
        raise ValueError(f"{name} is required for training and evaluation; received None.")
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n:
        got = arr.shape[0] if arr.ndim else "a scalar"
        raise ValueError(f"x and {name} must have the same number of samples; x has {n}, "
                         f"{name} has {got} (shape {arr.shape}).")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; received dtype {arr.dtype}.")
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        classes = output_shape[-1]
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"sparse_categorical_crossentropy expects integer labels of shape "
                             f"({n},) or ({n}, 1); received {name} of shape {arr.shape}. For "
                             f"one-hot targets use categorical_crossentropy.")
        if arr.dtype.kind == "f":
            fractional = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
            if fractional.size:
                i = int(fractional[0])
                raise ValueError(f"{name} holds non-integer class labels ({name}[{i}] = "
                                 f"{arr[i].item()!r}); sparse labels must be whole numbers in "
                                 f"[0, {classes}).")
        bad = np.flatnonzero((arr < 0) | (arr >= classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name}[{i}] = {arr[i].item()!r} is not a valid class label: the "
                             f"model has {classes} outputs, so labels must lie in [0, {classes}) "
                             f"({bad.size} invalid label(s) in all).")
        return np.ascontiguousarray(arr, dtype=np.int32)
    target = (n,) + tuple(output_shape)
    if arr.shape != target:
        if arr.ndim == 1 and tuple(output_shape) == (1,):
            arr = arr.reshape(n, 1)
        else:
            raise ValueError(f"{name} must have shape {target} to match the model output; "
                             f"received {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    bad, _ = _data.count_nonfinite(arr)
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s).")
    return arr


class Batcher:
    """Gathers batches of (x, y) into buffers reused for the whole call.

    Args:
        x2d: ``(n, features)`` C-contiguous array from :func:`prepare_x`.
        sample_shape: shape of one sample, restored on each batch (a view).
        y: targets from :func:`prepare_y` or None.
        batch_size: rows per batch; the last batch may be smaller.
        dtype: the model's float type.
    """

    def __init__(self, x2d, sample_shape, y, batch_size, dtype):
        self.x, self.y, self.batch_size = x2d, y, batch_size
        self.sample_shape = tuple(sample_shape)
        self.n = x2d.shape[0]
        self.steps = -(-self.n // batch_size)
        self.x_buf = np.empty((min(batch_size, self.n), x2d.shape[1]), dtype)
        self.y_buf = None if y is None else np.empty((self.x_buf.shape[0],) + y.shape[1:], y.dtype)

    def order(self, shuffle, rng):
        """Sample order for one epoch: a fresh permutation, or None for the natural order."""
        return rng.permutation(self.n) if shuffle else None

    def batch(self, step, order=None):
        start = step * self.batch_size
        stop = min(start + self.batch_size, self.n)
        b = stop - start
        xb = self.x_buf[:b]
        if order is None:
            _data.copy_rows(self.x, start, xb)
            yb = None if self.y is None else self.y[start:stop]
        else:
            rows = order[start:stop]
            _data.gather_rows(self.x, rows, xb)
            yb = None if self.y is None else np.take(self.y, rows, axis=0, out=self.y_buf[:b])
        return xb.reshape((b,) + self.sample_shape), yb
