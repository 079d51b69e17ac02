"""Neural-network ops (``keras.ops`` names and defaults): activations, crossentropies,
convolution and pooling, each with its backward pass.

The ops run on the compiled kernels the layers train with (an activation op gives the
bits of the activation function of the same name):

    activations       ``_core._activations`` forward / backward (softmax: per row of the
                      last axis; another axis works on a moved copy)
    crossentropies    ``_core._losses`` (Keras' clipping of probabilities to
                      [1e-7, 1 - 1e-7], log-sum-exp forms for logits); the gradient of the
                      output is the kernel's, called with the incoming gradient as row weights
    conv              ``_core._convolution`` conv_train_forward / conv_train_backward
    max_pool,         ``_core._pooling`` max_pool_* / avg_pool_*
    average_pool

The kernels take C-contiguous float32 / float64 arrays. Other layouts are copied to one
(the copy costs less than a second code path and keeps the results identical for every
layout); float16 computes in float32 and integers and bools in float32 (Keras' floatx), the
result in the input's float type. ``log_softmax`` has no kernel and runs on numpy.

Convolution and pooling take channels-last inputs (``data_format`` 'channels_last', or None
as Keras' default); 'channels_first' inputs are moved to channels-last and back. 1-D inputs
run the 2-D kernels on images one row high.
"""
import functools
import math
import numbers

import numpy as np

from minidl._core import _activations, _convolution, _losses, _pooling
from minidl.autodiff.tensor import Tensor, record, to_array
from minidl.utils.checks import check_bool

__all__ = ["average_pool", "binary_crossentropy", "categorical_crossentropy", "conv", "elu",
           "gelu", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "log_sigmoid",
           "log_softmax", "max_pool", "relu", "relu6", "selu", "sigmoid", "silu", "softmax",
           "softplus", "softsign", "sparse_categorical_crossentropy", "swish", "tanh"]

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32, _FLOAT64 = _KERNEL_DTYPES

# Keras' backend.epsilon() (minidl.losses.EPSILON): probabilities are clipped to
# [EPSILON, 1 - EPSILON] before their logarithm.
EPSILON = 1e-7

# Images per patch-matrix chunk in conv: a chunk's patches fit in this many bytes, as in the
# Conv layers' training step (minidl/layers/convolutional.py, _TRAIN_CHUNK_BYTES).
_CHUNK_BYTES = 1 << 19


# ---- operands as the kernels take them ----

def _work_dtype(op, dtype):
    """(dtype the kernels compute in, dtype of the result) for an input of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype in _KERNEL_DTYPES:
        return dtype, dtype
    if dtype.kind == "f":
        work = np.dtype(np.float64) if dtype.itemsize > 8 else np.dtype(np.float32)
        return work, dtype
    if dtype.kind in "iub":
        return np.dtype(np.float32), np.dtype(np.float32)
    raise TypeError(f"ops.{op}: expected a real-valued tensor; received dtype {dtype}.")


def _c(a, dtype=None):
    """``a`` as a C-contiguous array (of ``dtype``), copied only when it is not one; unlike
    np.ascontiguousarray, a 0-d array stays 0-d."""
    return np.asarray(a, dtype=dtype, order="C")


def _operand(op, x):
    """``x``'s value as a C-contiguous array in the kernels' dtype, and the result dtype
    (Python numbers convert as Keras converts them: floats to float32)."""
    a = to_array(x)
    work, dtype = _work_dtype(op, a.dtype)
    return _c(a, work), dtype


def _as_result(a, dtype):
    return a if a.dtype == dtype else a.astype(dtype)


def _real(op, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"ops.{op}: `{name}` must be a real number. Received: "
                        f"{name}={value!r:.100}")
    return float(value)


def _axis(op, axis, ndim, name="axis"):
    """``axis`` as a non-negative int < ndim; ValueError naming it otherwise."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"ops.{op}: `{name}` must be an int. Received: {name}={axis!r:.100}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"ops.{op}: `{name}`={axis} is out of range for a tensor of rank "
                         f"{ndim}; expected an int in [{-ndim}, {ndim}).")
    return int(axis) % ndim


# ---- activations on the compiled kernels ----

@functools.lru_cache(maxsize=None)
def _kernel(kind, params, owner):
    return _activations.Kernel(kind, params, owner)


def _activation(op, kind, params, x):
    """``kind`` applied elementwise to ``x`` by the compiled kernel, recorded with the
    kernel's backward (which reads z = x and y = f(x))."""
    z = x.value if isinstance(x, Tensor) else None
    if z is not None and (z.dtype is _FLOAT32 or z.dtype is _FLOAT64) and \
            z.flags.c_contiguous:
        dtype = z.dtype   # what the kernels take already (timeit, relu 32x64: 1.6 -> 1.2 us)
    else:
        z, dtype = _operand(op, x)
    kernel = _kernel(kind, params, f"ops.{op}")
    y = np.empty(z.shape, z.dtype)   # (z is C-contiguous: empty_like's answer, minus a call)
    kernel.forward(z, y)

    def backward(g, needs):
        dz = np.empty(z.shape, z.dtype)
        kernel.backward(z, y, np.asarray(g, dtype=z.dtype, order="C"), dz)   # (_c, inlined)
        return (dz,)
    return record(op, y if dtype is y.dtype else _as_result(y, dtype), (x,), backward)


def relu(x):
    """Rectified linear unit: ``max(x, 0)``.

    Args:
        x: input tensor.

    Returns:
        A tensor of the same shape; the gradient is 1 where ``x > 0``, else 0.
    """
    return _activation("relu", "relu", (), x)


def _activation_op(name, summary):
    """The op ``name(x)``: the compiled kernel of the activation of that name, which takes no
    parameter (``_activation``)."""
    def op(x):
        return _activation(name, name, (), x)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{summary}\n\n    Args:\n        x: input tensor.\n    "
    return op


relu6 = _activation_op("relu6", "Rectified linear unit capped at 6: ``min(max(x, 0), 6)``.")

sigmoid = _activation_op("sigmoid",
                         "Logistic sigmoid ``1 / (1 + exp(-x))``, finite at either tail.")

tanh = _activation_op("tanh", "Hyperbolic tangent.")

softplus = _activation_op(
    "softplus", "``log(1 + exp(x))``, computed as ``max(x, 0) + log1p(exp(-|x|))`` (no "
                "overflow).")

softsign = _activation_op("softsign", "``x / (1 + |x|)``.")

silu = _activation_op("silu", "Sigmoid linear unit (swish): ``x * sigmoid(x)``.")

swish = silu

hard_silu = _activation_op("hard_silu", "Hard SiLU (hard swish): ``x * hard_sigmoid(x)``.")

hard_swish = hard_silu

hard_sigmoid = _activation_op("hard_sigmoid", """\
Piecewise-linear sigmoid: ``clip(x / 6 + 0.5, 0, 1)`` (Keras 3's definition,
    ``relu6(x + 3) / 6``).""")


def log_sigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``, finite for any finite ``x``.

    Args:
        x: input tensor.
    """
    # softplus(-x) on the kernel; the gradient of log sigmoid is sigmoid(-x) = 1 - sigmoid(x).
    z, dtype = _operand("log_sigmoid", x)
    kernel = _kernel("softplus", (), "ops.log_sigmoid")
    minus = np.negative(z)
    y = np.empty_like(z)
    kernel.forward(minus, y)
    np.negative(y, out=y)

    def backward(g, needs):
        dz = np.empty_like(z)
        # d softplus(-x) / d(-x) applied to g is g * sigmoid(-x): exactly d log_sigmoid / dx.
        kernel.backward(minus, None, _c(g, dtype=z.dtype), dz)
        return (dz,)
    return record("log_sigmoid", _as_result(y, dtype), (x,), backward)


def elu(x, alpha=1.0):
    """Exponential linear unit: ``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        x: input tensor.
        alpha: scale of the negative part. Defaults to 1.0.
    """
    return _activation("elu", "elu", (_real("elu", "alpha", alpha),), x)


selu = _activation_op("selu", """\
Scaled exponential linear unit: ``scale * elu(x, alpha)`` with Keras' constants
    (alpha 1.67326..., scale 1.05070...).""")


def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU: ``x`` for ``x >= 0``, else ``negative_slope * x``.

    Args:
        x: input tensor.
        negative_slope: slope for ``x < 0``. Defaults to 0.2.
    """
    slope = _real("leaky_relu", "negative_slope", negative_slope)
    if 0.0 <= slope <= 1.0:
        # The kernel's max(x, slope * x): the same function for a slope in [0, 1], branch-free.
        return _activation("leaky_relu", "leaky_relu", (slope,), x)
    # Any other slope: the general ReLU kernel gives the documented x / slope * x form
    # (max(x, slope * x) would pick slope * x for x > 0 when slope > 1).
    return _activation("leaky_relu", "relu_general", (slope, math.inf, 0.0), x)


def gelu(x, approximate=True):
    """Gaussian error linear unit.

    Args:
        x: input tensor.
        approximate: True (the default of ``keras.ops.gelu``) for the tanh approximation
            ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``; False for the exact
            ``0.5 x (1 + erf(x / sqrt(2)))``.
    """
    approximate = check_bool("ops.gelu", "approximate", approximate)
    return _activation("gelu", "gelu_tanh" if approximate else "gelu", (), x)


def _axes_last(op, a, axis):
    """``a`` with the ``axis`` (an int or a tuple of ints) moved to the end and merged into
    one, C-contiguous, and a function that puts an array of that layout back."""
    if a.ndim == 0:
        return a, lambda b: b
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if not axes:
        raise ValueError(f"ops.{op}: `axis` must name at least one axis. Received: axis=()")
    axes = [_axis(op, ax, a.ndim) for ax in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"ops.{op}: `axis` has repeated axes. Received: axis={axis!r}")
    last = list(range(a.ndim - len(axes), a.ndim))
    if axes == last and len(axes) == 1:
        return _c(a), lambda b: b
    moved = np.moveaxis(a, axes, last)
    merged = _c(moved).reshape(moved.shape[:a.ndim - len(axes)] + (-1,))

    def restore(b):
        return np.moveaxis(b.reshape(moved.shape), last, axes)
    return merged, restore


def softmax(x, axis=-1):
    """Softmax: ``exp(x - max) / sum(exp(x - max))`` over ``axis``.

    Args:
        x: input tensor.
        axis: an int or a tuple of ints, the axes to normalise over. Defaults to -1.
    """
    a, dtype = _operand("softmax", x)
    z, restore = _axes_last("softmax", a, axis)
    kernel = _kernel("softmax", (), "ops.softmax")
    y = np.empty_like(z)
    kernel.forward(z, y)

    def backward(g, needs):
        dy, _ = _axes_last("softmax", np.asarray(g, dtype=z.dtype), axis)
        dz = np.empty_like(z)
        kernel.backward(y, y, dy, dz)   # softmax's backward reads y only
        return (restore(dz),)
    return record("softmax", _as_result(restore(y), dtype), (x,), backward)


def log_softmax(x, axis=-1):
    """``log(softmax(x))``, computed as ``x - max - log(sum(exp(x - max)))`` over ``axis``.

    Args:
        x: input tensor.
        axis: an int or a tuple of ints, the axes to normalise over. Defaults to -1.
    """
    a, dtype = _operand("log_softmax", x)
    axes = tuple(_axis("log_softmax", ax, a.ndim)
                 for ax in (axis if isinstance(axis, (tuple, list)) else (axis,))) \
        if a.ndim else None
    top = np.max(a, axis=axes, keepdims=True)
    # A row whose maximum is infinite is shifted by 0: -inf stays -inf rather than NaN.
    top = np.where(np.isfinite(top), top, 0)
    shifted = a - top
    out = shifted - np.log(np.sum(np.exp(shifted), axis=axes, keepdims=True))

    def backward(g, needs):
        g = np.asarray(g, dtype=out.dtype)
        return (g - np.exp(out) * np.sum(g, axis=axes, keepdims=True),)
    return record("log_softmax", _as_result(out, dtype), (x,), backward)


# ---- crossentropies on the loss kernels ----

def _crossentropy_operands(op, target, output):
    """(target, output) as C-contiguous arrays of one float dtype and of one shape, and the
    result dtype."""
    p, dtype = _operand(op, output)
    t = to_array(target)
    if t.shape != p.shape:
        raise ValueError(f"ops.{op}: `target` and `output` must have the same shape. "
                         f"Received: target.shape={t.shape}, output.shape={p.shape}")
    return _c(t, dtype=p.dtype), p, dtype


def _row_weights(g, dtype, size):
    """The incoming gradient as the loss kernels' per-row weights: their gradient is then
    the vector-Jacobian product."""
    return _c(g, dtype).reshape(size)


def binary_crossentropy(target, output, from_logits=False):
    """Binary crossentropy between ``target`` and ``output``, elementwise.

    ``-(target * log(p) + (1 - target) * log(1 - p))`` with ``p`` the output clipped to
    [1e-7, 1 - 1e-7] (its gradient is 0 where the clip is active); with ``from_logits``,
    ``p = sigmoid(output)`` in the exact form ``max(x, 0) - x * target + log1p(exp(-|x|))``.

    Args:
        target: tensor of targets in [0, 1], of ``output``'s shape.
        output: probabilities, or logits when ``from_logits``.
        from_logits: whether ``output`` holds logits. Defaults to False.

    Returns:
        A tensor of ``output``'s shape (Keras' ``ops.binary_crossentropy`` does not average;
        the loss ``keras.losses.binary_crossentropy`` is its mean over the last axis).
    """
    op = "binary_crossentropy"
    from_logits = check_bool(f"ops.{op}", "from_logits", from_logits)
    t, p, dtype = _crossentropy_operands(op, target, output)
    # Rows of one element: the kernel's per-row loss (a mean over the row) is elementwise.
    t2, p2 = t.reshape(-1, 1), p.reshape(-1, 1)
    loss = np.empty(p2.shape[0], p.dtype)
    _losses.binary_crossentropy(t2, p2, None, 1.0, None, loss, from_logits, 0.0, EPSILON)

    def backward(g, needs):
        d_target = d_output = None
        if needs[1]:
            d_output = np.empty_like(p2)
            _losses.binary_crossentropy(t2, p2, _row_weights(g, p.dtype, p2.shape[0]), 1.0,
                                        d_output, None, from_logits, 0.0, EPSILON)
            d_output = d_output.reshape(p.shape)
        if needs[0]:
            if from_logits:
                d_target = -p * g
            else:
                q = np.clip(p, EPSILON, 1 - EPSILON)
                d_target = (np.log1p(-q) - np.log(q)) * g
        return d_target, d_output
    return record(op, _as_result(loss.reshape(p.shape), dtype), (target, output), backward)


def _log_probabilities(p, from_logits):
    """log q over the last axis, q as the crossentropies define it (softmax of logits, or
    probabilities divided by their sum, then clipped)."""
    if from_logits:
        top = np.max(p, axis=-1, keepdims=True)
        shifted = p - np.where(np.isfinite(top), top, 0)
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return np.log(np.clip(p / np.sum(p, axis=-1, keepdims=True), EPSILON, 1 - EPSILON))


def _classes_last(op, p, axis):
    """``axis`` (the classes' axis of the output ``p``) as a non-negative int, and ``p``
    with that axis last, C-contiguous."""
    if p.ndim == 0:
        raise ValueError(f"ops.{op}: `output` must have at least one axis (the classes). "
                         f"Received: output.shape={p.shape}")
    axis = _axis(op, axis, p.ndim)
    return axis, _c(np.moveaxis(p, axis, -1))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Categorical crossentropy per sample: ``-sum(target * log(q), axis)``.

    ``q`` is the output divided by its sum over ``axis`` and clipped to [1e-7, 1 - 1e-7]
    (no gradient where the clip is active), or ``softmax(output)`` (in log-sum-exp form)
    when ``from_logits``.

    Args:
        target: tensor of ``output``'s shape (one-hot or soft labels).
        output: probabilities, or logits when ``from_logits``.
        from_logits: whether ``output`` holds logits. Defaults to False.
        axis: the class axis. Defaults to -1.

    Returns:
        A tensor of ``output``'s shape without ``axis``.
    """
    op = "categorical_crossentropy"
    from_logits = check_bool(f"ops.{op}", "from_logits", from_logits)
    t, p, dtype = _crossentropy_operands(op, target, output)
    axis, pm = _classes_last(op, p, axis)
    tm = _c(np.moveaxis(t, axis, -1))
    loss = np.empty(pm.shape[:-1], p.dtype)
    _losses.categorical_crossentropy(tm, pm, None, 1.0, None, loss, from_logits, 0.0, EPSILON)

    def backward(g, needs):
        d_target = d_output = None
        if needs[1]:
            d = np.empty_like(pm)
            _losses.categorical_crossentropy(tm, pm, _row_weights(g, p.dtype, loss.size), 1.0,
                                             d, None, from_logits, 0.0, EPSILON)
            d_output = np.moveaxis(d, -1, axis)
        if needs[0]:
            d_target = np.moveaxis(-_log_probabilities(pm, from_logits)
                                   * np.asarray(g)[..., None], -1, axis)
        return d_target, d_output
    return record(op, _as_result(loss, dtype), (target, output), backward)


def _labels(op, target, shape):
    """Integer class labels of ``shape`` (or with a trailing axis of 1, which is dropped),
    as a C-contiguous int32 / int64 array."""
    labels = to_array(target)
    if labels.ndim == len(shape) + 1 and labels.shape[-1:] == (1,):
        labels = labels[..., 0]
    if labels.shape != tuple(shape):
        raise ValueError(f"ops.{op}: `target` must hold one class index per sample, of shape "
                         f"{tuple(shape)} (or {tuple(shape) + (1,)}) for this output. "
                         f"Received: target.shape={np.shape(to_array(target))}")
    if labels.dtype.kind == "f":
        # Keras casts float labels to integers; a fractional one is a mistake, not a class.
        if not np.all(np.floor(labels) == labels):
            raise ValueError(f"ops.{op}: `target` must hold integer class indices; received "
                             f"float values with a fractional part.")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"ops.{op}: `target` must hold integer class indices. Received: "
                        f"dtype {labels.dtype}")
    if labels.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        labels = labels.astype(np.int64)
    return _c(labels)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Categorical crossentropy per sample with integer class indices as targets:
    ``-log(q[target])``, ``q`` as in :func:`categorical_crossentropy`.

    Args:
        target: integer class indices, of ``output``'s shape without ``axis`` (a trailing
            axis of size 1 is accepted, as in Keras).
        output: probabilities, or logits when ``from_logits``.
        from_logits: whether ``output`` holds logits. Defaults to False.
        axis: the class axis. Defaults to -1.

    Returns:
        A tensor of ``output``'s shape without ``axis``. The targets get no gradient.

    Raises:
        ValueError: a class index outside ``[0, classes)``.
    """
    op = "sparse_categorical_crossentropy"
    from_logits = check_bool(f"ops.{op}", "from_logits", from_logits)
    p, dtype = _operand(op, output)
    axis, pm = _classes_last(op, p, axis)
    labels = _labels(op, target, pm.shape[:-1])
    loss = np.empty(pm.shape[:-1], p.dtype)
    _, bad = _losses.sparse_categorical_crossentropy(labels, pm, None, 1.0, None, loss,
                                                     from_logits, None, EPSILON)
    if bad >= 0:
        classes = pm.shape[-1]
        raise ValueError(f"ops.{op}: `target` holds the class index "
                         f"{labels.reshape(-1)[bad]} (at flat index {bad}), outside [0, "
                         f"{classes}) for {classes} classes.")

    def backward(g, needs):
        d_output = None
        if needs[1]:
            d = np.empty_like(pm)
            _losses.sparse_categorical_crossentropy(labels, pm,
                                                    _row_weights(g, p.dtype, loss.size), 1.0,
                                                    d, None, from_logits, None, EPSILON)
            d_output = np.moveaxis(d, -1, axis)
        return None, d_output
    return record(op, _as_result(loss, dtype), (target, output), backward)


# ---- convolution and pooling on the layers' kernels ----

def _same(a):
    return a


def _channels_to_last(a):
    return np.moveaxis(a, 1, -1)


def _channels_to_first(a):
    return np.moveaxis(a, -1, 1)


def _layout(op, data_format):
    """(into, back): functions that move an array's channels last (the kernels' layout) and
    back to ``data_format``'s place; identities for 'channels_last' (or None)."""
    if data_format in (None, "channels_last"):
        return _same, _same
    if data_format == "channels_first":
        return _channels_to_last, _channels_to_first
    raise ValueError(f"ops.{op}: `data_format` must be 'channels_last', 'channels_first' or "
                     f"None. Received: data_format={data_format!r}")


def _spatial_rank(op, a, name):
    rank = a.ndim - 2
    if rank not in (1, 2):
        raise ValueError(f"ops.{op}: `{name}` must be 3-D (batch, steps, channels) or 4-D "
                         f"(batch, height, width, channels): 1-D and 2-D windows are "
                         f"supported. Received: {name}.shape={a.shape}")
    return rank


def _window(op, spatial, window, strides, dilation, padding):
    """Keras' output size and padding before the input along each spatial axis, as the
    kernels' 2-D window arguments (a 1-D input is one row high)."""
    from minidl.layers.conv_utils import output_length   # layers import ops: import late
    out, pads = [], []
    for length, k, s, d in zip(spatial, window, strides, dilation):
        o, pad = output_length(length, k, s, d, padding)
        if o <= 0:
            raise ValueError(f"ops.{op}: a window of {tuple(window)} (dilation "
                             f"{tuple(dilation)}) does not fit inputs of spatial shape "
                             f"{tuple(spatial)} with padding={padding!r}; use padding='same', a "
                             f"smaller window or larger inputs.")
        out.append(o)
        pads.append(pad)

    def two_d(values, fill):
        return (fill,) * (2 - len(spatial)) + tuple(values)
    return tuple(out), dict(strides=two_d(strides, 1), pads=two_d(pads, 0),
                            out_hw=two_d(out, 1)), two_d


def _window_args(op, rank, strides, padding, dilation_rate=1):
    from minidl.layers import conv_utils
    strides = conv_utils.normalize_tuple(strides, rank, "strides", f"ops.{op}:")
    dilation = conv_utils.normalize_tuple(dilation_rate, rank, "dilation_rate", f"ops.{op}:")
    padding = conv_utils.normalize_padding(padding, ("valid", "same"), f"ops.{op}:")
    return strides, padding, dilation


def _common_float(op, a, b):
    """The dtype two operands compute in (float32 unless one is float64) and the result's."""
    return _work_dtype(op, np.result_type(a.dtype, b.dtype))


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """General N-D convolution for N = 1 or 2 (cross-correlation, as in every framework).

    Args:
        inputs: tensor of shape ``(batch, steps, channels)`` or ``(batch, height, width,
            channels)`` (channels first with ``data_format='channels_first'``).
        kernel: tensor of shape ``window + (channels, filters)``, e.g. ``(kh, kw, c, f)``.
        strides: int or tuple of N ints. Defaults to 1.
        padding: 'valid' (no padding) or 'same' (zeros so that the output has
            ``ceil(size / stride)`` positions; the smaller half before the input).
        data_format: 'channels_last' (or None, the default) or 'channels_first'.
        dilation_rate: int or tuple of N ints, the spacing of the kernel's taps.
            Defaults to 1.

    Returns:
        A tensor of shape ``(batch,) + output_spatial + (filters,)`` (channels first with
        'channels_first'), with gradients for both ``inputs`` and ``kernel``.
    """
    op = "conv"
    x = to_array(inputs)
    k = to_array(kernel)
    rank = _spatial_rank(op, x, "inputs")
    into, back = _layout(op, data_format)
    x = into(x)
    if k.ndim != rank + 2:
        raise ValueError(f"ops.{op}: `kernel` must have rank {rank + 2} (window, in channels, "
                         f"filters) for {rank}-D inputs. Received: kernel.shape={k.shape}")
    if k.shape[-2] != x.shape[-1]:
        raise ValueError(f"ops.{op}: `kernel` reads {k.shape[-2]} input channels but the "
                         f"inputs have {x.shape[-1]} (grouped convolutions are not "
                         f"supported). Received: inputs.shape={np.shape(to_array(inputs))}, "
                         f"kernel.shape={k.shape}")
    strides, padding, dilation = _window_args(op, rank, strides, padding, dilation_rate)
    window = tuple(k.shape[:rank])
    if min(window, default=1) < 1:
        raise ValueError(f"ops.{op}: `kernel` has an empty window. Received: "
                         f"kernel.shape={k.shape}")
    work, dtype = _common_float(op, x, k)
    out, args, two_d = _window(op, x.shape[1:-1], window, strides, dilation, padding)
    args.update(kernel_size=two_d(window, 1), dilation=two_d(dilation, 1))
    n, channels, filters = x.shape[0], x.shape[-1], k.shape[-1]
    image = two_d(x.shape[1:-1], 1) + (channels,)
    patch = int(np.prod(window)) * channels
    per_image = args["out_hw"][0] * args["out_hw"][1]
    x4 = _c(x, dtype=work).reshape((n,) + image)
    k2 = _c(k, dtype=work).reshape(patch, filters)
    # A 1x1 kernel with stride 1 and no padding: the patch matrix is the input itself.
    pointwise = patch == channels and all(s == 1 for s in strides) and out == x.shape[1:-1]
    direct, direct_dx, padded_sample = _convolution.direct_plan(
        image, filters, work.itemsize, pointwise, **args)
    chunk = max(1, _CHUNK_BYTES // work.itemsize // max(per_image * patch, 1))

    def patches(needed):
        return np.empty((min(chunk, max(n, 1)) * per_image, patch), work) if needed else None

    # The direct kernels' zero-padded copy of x, which the backward pass reads again.
    padded = None if not direct or padded_sample is None else \
        np.empty((n,) + tuple(padded_sample), work)
    z = np.empty((n * per_image, filters), work)
    _convolution.conv_train_forward(x4, k2, z, patches(not (pointwise or direct)), chunk,
                                    pointwise, padded=padded, **args)
    y = back(z.reshape((n,) + out + (filters,)))

    def backward(g, needs):
        dz = _c(into(np.asarray(g)), dtype=work).reshape(n * per_image, filters)
        # The kernels always write the kernel gradient: a scratch one when it is not needed.
        d_kernel = np.empty((patch, filters), work)
        dx = np.empty(x4.shape, work) if needs[0] else None
        _convolution.conv_train_backward(
            x4, dz, k2, d_kernel, dx, patches(not (pointwise or direct)),
            patches(needs[0] and not (pointwise or direct_dx)), chunk, pointwise,
            padded=padded, padded_ready=padded is not None, **args)
        if dx is not None:
            dx = back(dx.reshape(x.shape))
        return dx, d_kernel.reshape(k.shape) if needs[1] else None
    return record(op, _as_result(y, dtype), (inputs, kernel), backward)


def _pool(op, is_max, inputs, pool_size, strides, padding, data_format):
    x = to_array(inputs)
    rank = _spatial_rank(op, x, "inputs")
    into, back = _layout(op, data_format)
    x = into(x)
    from minidl.layers import conv_utils
    pool = conv_utils.normalize_tuple(pool_size, rank, "pool_size", f"ops.{op}:")
    strides, padding, _ = _window_args(op, rank, pool if strides is None else strides,
                                       padding)
    work, dtype = _work_dtype(op, x.dtype)
    out, args, two_d = _window(op, x.shape[1:-1], pool, strides, (1,) * rank, padding)
    del args["out_hw"]   # the pooling kernels read it from y's shape
    args["pool_size"] = two_d(pool, 1)
    n, channels = x.shape[0], x.shape[-1]
    x4 = _c(x, dtype=work).reshape((n,) + two_d(x.shape[1:-1], 1)
                                                     + (channels,))
    y4 = np.empty((n,) + two_d(out, 1) + (channels,), work)
    if is_max:
        argmax = np.empty(y4.shape, np.intc)
        _pooling.max_pool_forward(x4, y4, argmax, **args)
    else:
        _pooling.avg_pool_forward(x4, y4, **args)
    y = back(y4.reshape((n,) + out + (channels,)))

    def backward(g, needs):
        dy = _c(into(np.asarray(g)), dtype=work).reshape(y4.shape)
        dx = np.empty(x4.shape, work)
        if is_max:
            _pooling.max_pool_backward(dy, argmax, dx, **args)
        else:
            _pooling.avg_pool_backward(dy, dx, **args)
        return (back(dx.reshape(x.shape)),)
    return record(op, _as_result(y, dtype), (inputs,), backward)


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over 1-D or 2-D windows.

    Args:
        inputs: tensor of shape ``(batch, steps, channels)`` or ``(batch, height, width,
            channels)`` (channels first with ``data_format='channels_first'``).
        pool_size: int or tuple of N ints, the window.
        strides: int or tuple of N ints; None (the default) for ``pool_size``.
        padding: 'valid' or 'same' (windows over the edge take the maximum of their
            positions inside the input).
        data_format: 'channels_last' (or None, the default) or 'channels_first'.

    Returns:
        The pooled tensor. The gradient goes to each window's maximum (the first one in
        row-major order on ties).
    """
    return _pool("max_pool", True, inputs, pool_size, strides, padding, data_format)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over 1-D or 2-D windows.

    Args:
        inputs: tensor of shape ``(batch, steps, channels)`` or ``(batch, height, width,
            channels)`` (channels first with ``data_format='channels_first'``).
        pool_size: int or tuple of N ints, the window.
        strides: int or tuple of N ints; None (the default) for ``pool_size``.
        padding: 'valid' or 'same' (windows over the edge average their positions inside
            the input, as Keras does).
        data_format: 'channels_last' (or None, the default) or 'channels_first'.

    Returns:
        The pooled tensor.
    """
    return _pool("average_pool", False, inputs, pool_size, strides, padding, data_format)
