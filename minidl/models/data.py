"""Checking and batching the arrays a user passes to fit / evaluate / predict.

Everything is checked once per call, on the whole arrays, before the first step: a shape
mistake, a label out of range or a NaN is reported in one sentence that names the argument,
instead of failing deep inside a kernel halfway through an epoch.
"""
import math
import numbers

import numpy as np

from minidl._core import _data
from minidl.layers.node import numpy_dtype

# Integer and float types the batch gatherer reads directly; others are converted once.
_GATHER_DTYPES = {np.dtype(t) for t in
                  (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64)}


def prepare_x(x, input_shape, name="x", check_finite=True, dtype=None):
    """Validate ``x`` against the model's sample shape; return a C-contiguous 2-D view.

    Integer inputs (e.g. uint8 images) and float64 inputs are accepted and converted to the
    model's float type batch by batch while gathering, so the data set is never copied whole.
    For an input of an integer type (``Input(dtype="int64")``, token ids), ``x`` is gathered
    into that type: integers must lie in its range, floats must be whole numbers in its
    range (Keras converts x to the input's dtype; a fraction would be silently truncated),
    and there is no NaN to look for.

    Args:
        x: array-like of shape ``(n,) + input_shape``.
        input_shape: the model's sample shape, or None when the model is not built yet.
        check_finite: scan for NaN and infinities here; False when the caller has them
            found another way (see :func:`check_finite`).
        dtype: the dtype of the model's input, or None when the model is not built yet.
    Returns:
        ``(x2d, sample_shape)``: an ``(n, prod(sample_shape))`` array and the sample shape.
    """
    if x is None:
        raise ValueError(f"{name} is required; received None.")
    if dtype == "string":
        arr = string_input(x, name)
    else:
        arr = np.asarray(x)
        if arr.dtype.kind == "b":
            arr = arr.view(np.uint8)
        if arr.dtype.kind not in "iuf":
            if dtype is None and arr.dtype.kind in "OUS" and arr.size:
                arr = string_input(arr, name)   # an unbuilt model: its data say strings
            else:
                raise TypeError(f"{name} must hold numbers (int or float); received dtype "
                                f"{arr.dtype}." + (" Strings feed an Input(dtype='string') "
                                                   "followed by a text layer (StringLookup, "
                                                   "TextVectorization, Hashing)."
                                                   if arr.dtype.kind in "OUS" else ""))
    if input_shape is not None:
        arr = _adjust_rank(arr, tuple(input_shape))
    if arr.ndim < 2 and not (arr.ndim == 1 and input_shape is not None and
                             not tuple(input_shape)):
        raise ValueError(f"{name} must have a batch dimension and at least one feature "
                         f"dimension; received shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample.")
    sample_shape = tuple(arr.shape[1:])
    if 0 in sample_shape:
        raise ValueError(f"{name} has shape {arr.shape}: a sample of shape {sample_shape} "
                         f"holds no values. Every dimension after the batch dimension must "
                         f"be at least 1.")
    if input_shape is not None and (len(sample_shape) != len(input_shape) or any(
            want is not None and got != want for got, want in zip(sample_shape, input_shape))):
        raise ValueError(_shape_mismatch_message(name, arr.shape, tuple(input_shape)))
    if arr.dtype == object:
        pass   # strings: nothing to convert or scan
    elif dtype is not None and np.dtype(dtype).kind in "iu":
        arr = _integer_source(arr, np.dtype(dtype), name)
    else:
        if arr.dtype not in _GATHER_DTYPES:
            arr = arr.astype(np.float32)
        if check_finite:
            check_finite_values(arr, name)
    arr = np.ascontiguousarray(arr)
    return arr.reshape(arr.shape[0], -1), sample_shape


def string_input(x, name="x"):
    """``x`` (an array of dtype object holding str, a unicode or bytes array, or a nested
    list of str) as an object array of str, for an ``Input(dtype="string")``; TypeError
    naming ``name`` when it holds numbers."""
    arr = x if isinstance(x, np.ndarray) else np.asarray(x, dtype=object)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind == "S":
        return np.asarray([b.decode("utf-8") for b in arr.reshape(-1).tolist()],
                          dtype=object).reshape(arr.shape)
    if arr.dtype.kind != "O":
        raise TypeError(f"{name} feeds a model input of dtype string, so it must hold "
                        f"strings; received an array of dtype {arr.dtype}. Pass texts (a "
                        f"list or array of str), or use a numeric Input for numbers.")
    flat = arr.reshape(-1)
    if all(type(item) is str for item in flat.tolist()):
        return arr
    converted = []
    for i, item in enumerate(flat.tolist()):
        if isinstance(item, (bytes, np.bytes_)):
            item = item.decode("utf-8")
        elif not isinstance(item, str):
            where = tuple(int(j) for j in np.unravel_index(i, arr.shape))
            raise TypeError(f"{name} feeds a model input of dtype string, so it must hold "
                            f"strings; {name}[{', '.join(map(str, where))}] is "
                            f"{type(item).__name__} {item!r:.50}.")
        converted.append(str(item))
    out = np.empty(flat.size, object)
    out[:] = converted
    return out.reshape(arr.shape)


def _integer_source(arr, target, name):
    """``arr`` checked for conversion to the integer type ``target`` (see
    :func:`prepare_x`), in a type the batch gatherer reads."""
    info = np.iinfo(target)
    if arr.dtype.kind == "f":
        if arr.dtype not in _GATHER_DTYPES:
            arr = arr.astype(np.float64)   # float16, longdouble: rare, converted
        # The bounds as doubles that convert exactly: int64's maximum rounds up to 2**63,
        # outside the type, so the largest double below it stands in.
        high = float(info.max)
        if high > info.max:
            high = float(np.nextafter(high, 0.0))
        bad, first = _data.count_nonintegral(arr, float(info.min), high)
        if bad:
            value = arr.reshape(-1)[first].item()
            reason = ("is NaN" if value != value else "is infinite" if math.isinf(value)
                      else "is not a whole number" if value != math.trunc(value)
                      else f"is outside the range [{info.min}, {info.max}] of {target}")
            raise ValueError(_integer_message(name, arr, first, value, reason, bad, target))
        return arr
    if not np.can_cast(arr.dtype, target):
        low, high = arr.min(), arr.max()
        if low < info.min or high > info.max:
            flat = arr.reshape(-1)
            outside = np.flatnonzero((flat < info.min) | (flat > info.max))
            first = int(outside[0])
            raise ValueError(_integer_message(
                name, arr, first, flat[first].item(),
                f"is outside the range [{info.min}, {info.max}] of {target}", outside.size,
                target))
    if arr.dtype not in _GATHER_DTYPES:
        arr = arr.astype(target)   # uint16, uint32, uint64: checked above, converted once
    return arr


def as_input_array(x, dtype, name="x"):
    """``x`` as an array of the model input's ``dtype``, for a call outside the batch
    gatherer (a model called on an array while a tape records); for an integer input,
    checked as :func:`prepare_x` checks it, instead of truncating fractions."""
    if dtype == "string":
        return string_input(x, name)
    arr = np.asarray(x)
    target = np.dtype(dtype)
    if target.kind in "iu" and arr.dtype.kind in "iuf" and arr.size:
        arr = _integer_source(arr, target, name)
    return np.asarray(arr, dtype=target)


def _integer_message(name, arr, first, value, reason, count, target):
    where = tuple(int(i) for i in np.unravel_index(first, arr.shape))
    return (f"{name} feeds a model input of dtype {target}, so it must hold whole numbers in "
            f"the range of {target}; {name}[{', '.join(map(str, where))}] = {value!r} "
            f"{reason} ({count} such value(s) in all). Pass integers in range, or round "
            f"{name} first.")


def _adjust_rank(arr, input_shape):
    """Keras' rank adjustment of an input (Functional._adjust_input_rank): a missing last
    axis of size 1 is added ((n,) for samples of shape (1,), (n, 28, 28) for (28, 28, 1)),
    an extra one removed."""
    if arr.ndim == len(input_shape) and input_shape[-1] == 1:
        return arr[..., None]
    if arr.ndim == len(input_shape) + 2 and arr.shape[-1] == 1:
        return arr[..., 0]
    return arr


def check_finite_values(arr, name="x"):
    """Raise ValueError naming the count and the first index of the NaN or infinite values
    in ``arr``, if it has any (strings have none)."""
    if arr.dtype == object:
        return
    bad, first = _data.count_nonfinite(arr)
    if bad:
        where = np.unravel_index(first, arr.shape)
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s), the first at index "
                         f"{tuple(int(i) for i in where)}; clean or impute the data first.")


def _shape_mismatch_message(name, shape, expected):
    msg = (f"{name} has shape {shape}, but the model expects samples of shape {expected} "
           f"(input shape {(None,) + expected}).")
    if len(expected) == 1 and len(shape) > 2 and int(np.prod(shape[1:])) == expected[0]:
        msg = (f"The model's first layer expects a last dimension of {expected[0]}, but {name} "
               f"has shape {shape}; add Flatten() as the first layer or reshape {name} to "
               f"{(shape[0], expected[0])}.")
    return msg


def target_as_given(y, n, name="y"):
    """``y`` as an array, checked for the sample count and for numbers only: what a step
    of the model's own reads when no compiled loss does (kept in its shape and type)."""
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n:
        got = arr.shape[0] if arr.ndim else "a scalar"
        raise ValueError(f"x and {name} must have the same number of samples; x has {n}, "
                         f"{name} has {got} (shape {arr.shape}).")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; received dtype {arr.dtype}.")
    return arr


def prepare_y(y, n, loss, output_shape, name="y", dtype=np.float32):
    """Validate targets against the loss and the model output; return a compact array.

    Sparse labels become int32 of shape (n,); dense targets ``dtype`` (the model's output
    type, so a float64 model trains on unrounded targets) of shape ``(n,) + output_shape``.
    """
    from minidl import losses
    if y is None:
        raise ValueError(f"{name} is required for training and evaluation; received None.")
    arr = target_as_given(y, n, name)
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        classes = output_shape[-1]
        # One label per row of class scores: (n,) for outputs (n, classes), (n, steps) for
        # sequence outputs (n, steps, classes); a trailing axis of 1 is squeezed.
        labels = tuple(output_shape[:-1])
        if arr.ndim == len(labels) + 2 and arr.shape[-1] == 1:
            arr = arr.reshape(arr.shape[:-1])
        if arr.ndim != len(labels) + 1 or any(
                want is not None and got != want for got, want in zip(arr.shape[1:], labels)):
            shown = ", ".join(str(d) for d in (n,) + labels)
            raise ValueError(f"sparse_categorical_crossentropy expects integer labels of shape "
                             f"({shown}) or ({shown}, 1); received {name} of shape "
                             f"{arr.shape}. For one-hot targets use categorical_crossentropy.")
        if arr.dtype.kind == "f":
            fractional = np.argwhere(~np.isfinite(arr) | (arr != np.round(arr)))
            if fractional.size:
                i = tuple(int(k) for k in fractional[0])
                where = i[0] if len(i) == 1 else list(i)
                raise ValueError(f"{name} holds non-integer class labels ({name}[{where}] = "
                                 f"{arr[i].item()!r}); sparse labels must be whole numbers in "
                                 f"[0, {classes}).")
        bad = np.argwhere((arr < 0) | (arr >= classes))
        if bad.size:
            i = tuple(int(k) for k in bad[0])
            where = i[0] if len(i) == 1 else list(i)
            raise ValueError(f"{name}[{where}] = {arr[i].item()!r} is not a valid class label: "
                             f"the model has {classes} outputs, so labels must lie in "
                             f"[0, {classes}) ({len(bad)} invalid label(s) in all).")
        return np.ascontiguousarray(arr, dtype=np.int32)
    if loss is not None and not getattr(loss, "_kernel_call", True):
        # A loss written by the user reads y as it is (sparse labels, extra columns): only
        # the sample count and the numbers were checked.
        check_finite_values(arr, name)
        return np.ascontiguousarray(arr, dtype=dtype if arr.dtype.kind == "f" else None)
    target = (n,) + tuple(output_shape)
    if not _fits(arr.shape, target):   # (None in the output shape: any size, e.g. steps)
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


def _fits(shape, target):
    """Whether ``shape`` matches ``target``, whose None entries allow any size."""
    return len(shape) == len(target) and all(
        want is None or got == want for got, want in zip(shape, target))


def prepare_sample_weight(sample_weight, n, dtype, name="sample_weight"):
    """Validate per-sample weights; return a contiguous ``(n,)`` array of ``dtype``.

    Args:
        sample_weight: array-like of shape ``(n,)`` or ``(n, 1)``.
        n: the number of samples in x.
        dtype: the model's output type (the loss reads the weights without a copy).
    """
    arr = np.asarray(sample_weight)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; received dtype {arr.dtype}.")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must hold one weight per sample, shape ({n},), as x has {n} "
                         f"samples; received {name} of shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} contains {bad.size} NaN or infinite value(s), the first at "
                         f"index {i} ({name}[{i}] = {arr[i]}).")
    return arr


def class_weight_to_sample_weight(class_weight, y, classes, dtype):
    """Per-sample weights ``class_weight[label]`` for the targets ``y``, as Keras computes them.

    The label of a sample is its integer class (sparse targets), the argmax of its row
    (one-hot or soft targets), or its 0/1 value (a single binary column).

    Args:
        class_weight: dict mapping every class present in y to a weight.
        y: targets from :func:`prepare_y`.
        classes: the number of model outputs per sample (the last output dimension).
        dtype: the type of the returned weights.
    Raises:
        ValueError: a class of y has no weight, a key is not a class the model can output,
            a weight is not a finite number, or y does not hold class labels.
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict mapping class indices to weights, e.g. "
                        f"{{0: 1.0, 1: 5.0}}; received {class_weight!r}.")
    if y.ndim == 1 and y.dtype.kind in "iu":
        labels = y
    elif y.ndim == 2 and y.shape[1] > 1:
        labels = np.argmax(y, axis=1)
    elif y.ndim <= 2:
        values = y.reshape(-1)
        fractional = np.flatnonzero(values != np.round(values))
        if fractional.size:
            i = int(fractional[0])
            raise ValueError(f"class_weight needs class labels as targets, but y holds "
                             f"non-integer values (y[{i}] = {values[i]}); use sample_weight "
                             f"for regression targets.")
        labels = values.astype(np.int64)
        classes = max(classes, 2)
    else:
        raise ValueError(f"class_weight supports one class per sample (targets of rank 1 or "
                         f"2); received y of shape {y.shape}. Use sample_weight instead.")
    for key, weight in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or \
                not 0 <= key < classes:
            raise ValueError(f"class_weight keys must be class indices in [0, {classes}); "
                             f"received key {key!r} in class_weight={class_weight!r}.")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or \
                not math.isfinite(weight):
            raise ValueError(f"class_weight[{key}] must be a finite number; received "
                             f"{weight!r}.")
    present = np.unique(labels)
    missing = [int(c) for c in present if int(c) not in class_weight]
    if missing:
        raise ValueError(f"class_weight has no weight for class(es) {missing}, which occur "
                         f"in y; give every class a weight. Received: "
                         f"class_weight={class_weight!r}")
    table = np.zeros(classes, dtype)
    for key, weight in class_weight.items():
        table[int(key)] = weight
    return table[labels]


def split_validation(validation_split, n):
    """The index where Keras' ``validation_split`` cuts n samples: the last fraction,
    taken before any shuffling, becomes the validation set."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be a float in [0, 1); received "
                         f"validation_split={validation_split!r}.")
    split_at = int(np.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"Training data contains {n} samples, which is not sufficient to "
                         f"split it into a validation and training set as specified by "
                         f"validation_split={validation_split}. Either provide more data, or "
                         f"a different value for the validation_split argument.")
    return split_at


class Arrays:
    """The checked arrays of one fit / evaluate / predict call.

    Args:
        inputs: one ``(x2d, sample_shape)`` per model input, from :func:`prepare_x`.
        targets: one array per model output (from :func:`prepare_y`, None for an output
            no loss reads), or None (predict).
        weights: one ``(n,)`` array per output (None for unweighted outputs), or None.
    """

    def __init__(self, inputs, targets=None, weights=None):
        self.inputs = list(inputs)
        self.targets = None if targets is None else list(targets)
        self.weights = None if weights is None else list(weights)
        self.n = self.inputs[0][0].shape[0]

    def split(self, at):
        """``(first, rest)``: the samples before ``at`` and from ``at`` on (views)."""
        def cut(arrays, part):
            return None if arrays is None else [None if a is None else a[part] for a in arrays]
        head, tail = slice(None, at), slice(at, None)
        return (Arrays([(x[head], s) for x, s in self.inputs], cut(self.targets, head),
                       cut(self.weights, head)),
                Arrays([(x[tail], s) for x, s in self.inputs], cut(self.targets, tail),
                       cut(self.weights, tail)))


class Batcher:
    """Gathers batches of inputs, targets and sample weights into buffers reused for the
    whole call.

    Args:
        arrays: the call's :class:`Arrays`.
        batch_size: rows per batch; the last batch may be smaller.
        dtypes: the type of each input's batches (the model's input layers'): a float type,
            or an integer type for an input of ids.
        read_only: the batches are only read, in order (predict, evaluate): inputs already
            of their type are passed as read-only views of the caller's arrays, not copied.
    """

    def __init__(self, arrays, batch_size, dtypes, read_only=False):
        self.arrays, self.batch_size = arrays, batch_size
        self.n = arrays.n
        self.steps = -(-self.n // batch_size)
        rows = min(batch_size, self.n)
        # A batch taken in order from an input already of the model input's type needs no
        # copy when nothing will write to it (predict, evaluate): it is a read-only view.
        # For a data set larger than the caches, the copy cost as much as the first layer's
        # product (predict of 10,000 MNIST rows: 4.5 of 16 ms).
        dtypes = [numpy_dtype(d) if isinstance(d, str) else d for d in dtypes]
        self.x_bufs = [None if read_only and x.dtype == dtype else
                       np.empty((rows, x.shape[1]), dtype)
                       for (x, _), dtype in zip(arrays.inputs, dtypes)]
        self.y_bufs = [None if y is None else np.empty((rows,) + y.shape[1:], y.dtype)
                       for y in arrays.targets or []]
        self.w_bufs = [None if w is None else np.empty(rows, w.dtype)
                       for w in arrays.weights or []]

    def batch(self, step, order=None):
        """``(xs, ys, ws)`` of batch ``step``: lists over inputs, outputs and outputs
        (``ys`` and ``ws`` empty for predict; None entries where there is nothing)."""
        start = step * self.batch_size
        stop = min(start + self.batch_size, self.n)
        b = stop - start
        rows = None if order is None else order[start:stop]
        xs = []
        for (x, sample_shape), buf in zip(self.arrays.inputs, self.x_bufs):
            if buf is None:
                if rows is not None:
                    raise ValueError("A read-only Batcher takes its batches in order; "
                                     "received an order.")
                xb = x[start:stop]
                xb.flags.writeable = False   # the caller's data: a step writing to it fails
            else:
                xb = buf[:b]
                if x.dtype == object:   # strings: numpy's copies (the kernels read numbers)
                    if rows is None:
                        xb[...] = x[start:stop]
                    else:
                        np.take(x, rows, axis=0, out=xb)
                elif rows is None:
                    _data.copy_rows(x, start, xb)
                else:
                    _data.gather_rows(x, rows, xb)
            xs.append(xb.reshape((b,) + tuple(sample_shape)))
        ys = [self._rows(y, buf, start, stop, rows)
              for y, buf in zip(self.arrays.targets or [], self.y_bufs)]
        ws = [self._rows(w, buf, start, stop, rows)
              for w, buf in zip(self.arrays.weights or [], self.w_bufs)]
        return xs, ys, ws

    @staticmethod
    def _rows(a, buf, start, stop, rows):
        if a is None:
            return None
        if rows is None:
            return a[start:stop]
        return a.take(rows, axis=0, out=buf[:stop - start])
