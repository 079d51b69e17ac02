"""Label encoding helpers."""
import numbers

import numpy as np


def to_categorical(x, num_classes=None):
    """Converts a class vector (integers) to a one-hot class matrix.

    A trailing axis of size 1 is dropped first, so labels of shape ``(n,)`` and ``(n, 1)``
    both give ``(n, num_classes)``; in general the result has shape
    ``x.shape (without a trailing 1) + (num_classes,)``.

    Args:
        x: array-like of class indices: ints, or floats with integral values.
        num_classes: total number of classes. ``None`` means ``max(x) + 1``.

    Returns:
        A float32 numpy array with a single 1 in each row.

    Raises:
        TypeError: ``x`` is not numeric, or ``num_classes`` is not an int.
        ValueError: a label is negative, not integral, or ``>= num_classes``;
            ``num_classes < 1``; or ``x`` is empty and ``num_classes`` is None.

    Example:
        >>> to_categorical([0, 2, 1], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]], dtype=float32)
    """
    labels = np.asarray(x)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"to_categorical expects integer class labels. Received: "
                        f"x with dtype {labels.dtype}")
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)

    if flat.dtype.kind == "f":
        bad = ~np.isfinite(flat) | (flat != np.floor(flat))
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(f"to_categorical expects integer class labels. Received: "
                             f"label={flat[at].item()!r} at index {at}")
    if flat.size and flat.min() < 0:
        at = int(np.argmax(flat < 0))
        raise ValueError(f"Class labels must be >= 0. Received: label={flat[at].item()!r} at "
                         f"index {at}")

    if num_classes is None:
        if flat.size == 0:
            raise ValueError("Cannot infer `num_classes` from an empty label array; pass "
                             "num_classes. Received: x with shape "
                             f"{labels.shape}, num_classes=None")
        num_classes = int(flat.max()) + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"`num_classes` must be an int or None. Received: "
                        f"num_classes={num_classes!r}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1. Received: num_classes={num_classes}")
    if flat.size and flat.max() >= num_classes:
        at = int(np.argmax(flat >= num_classes))
        raise ValueError(f"Class labels must be < num_classes={num_classes}. Received: "
                         f"label={flat[at].item()!r} at index {at}")

    out = np.zeros((flat.size, num_classes), dtype=np.float32)
    out[np.arange(flat.size), flat.astype(np.intp)] = 1.0
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """Normalizes an array to unit L-``order`` norm along ``axis``.

    Slices whose norm is 0 are left as they are (divided by 1) instead of becoming NaN.

    Args:
        x: array-like to normalize.
        axis: the axis along which the norm is taken (an int).
        order: the norm's order, as ``numpy.linalg.norm``'s ``ord`` for vectors
            (e.g. 2 for L2, 1 for L1, ``np.inf`` for the max norm).

    Returns:
        A normalized copy of ``x``: float32 stays float32; integers become float64.

    Example:
        >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
        array([[0.6, 0.8],
               [0. , 0. ]])
    """
    array = np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"normalize expects a numeric array. Received: x with dtype "
                        f"{array.dtype}")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an int. Received: axis={axis!r}")
    if array.ndim == 0 or not -array.ndim <= axis < array.ndim:
        raise ValueError(f"`axis` is out of range for x with shape {array.shape}. Received: "
                         f"axis={axis}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    norm = np.linalg.norm(array, ord=order, axis=int(axis), keepdims=True)
    norm[norm == 0] = 1
    return array / norm
