"""One conversion per layer kind, from a minidl layer call to ONNX nodes.

``CONVERTERS`` maps a layer class (exactly: a user's subclass may compute something else,
so it has no conversion until one is registered for it) to a function

    convert(b, layer, inputs, outputs) -> [Value, ...]

where ``b`` is the :class:`~minidl.onnx.graph.GraphBuilder`, ``inputs`` the
:class:`~minidl.onnx.graph.Value` of each input tensor of the call, and ``outputs`` the
call's symbolic output tensors (their Keras shapes and dtypes). It returns one Value per
output, in whatever layout suits the next layers (see ``graph``). The recurrent layers'
conversions are in ``onnx/recurrent.py``.
"""
import numpy as np

from minidl import layers as L
from minidl.onnx.activations import apply_activation
from minidl.onnx.graph import Value, channels_first_perm

CONVERTERS = {}

# ONNX's TensorProto element types by numpy dtype name.
_TENSOR_TYPES = {"float32": 1, "float64": 11, "int32": 6, "int64": 7}


def converts(*classes):
    """Register the decorated function as the conversion of ``classes``."""
    def register(function):
        for cls in classes:
            CONVERTERS[cls] = function
        return function
    return register


def value(name, tensor, perm=None, order=None):
    """A Value for the output ``tensor`` of a call (its Keras shape and dtype)."""
    return Value(name, tensor.shape, tensor.dtype, perm, order)


def weight(b, layer, array, what, transform=None):
    """An initializer holding ``layer``'s weight ``array`` (after ``transform``), in the
    layer's dtype; shared by every call of the layer."""
    data = np.asarray(array)
    if transform is not None:
        data = transform(data)
    return b.constant(data.astype(layer.dtype, copy=False), f"{layer.name}/{what}",
                      key=(id(layer), what))


def refuse(layer, why):
    raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) cannot be exported to "
                     f"ONNX: {why}")


# ---- layers that compute nothing at inference ----

@converts(L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D,
          L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
          L.Identity)
def _identity(b, layer, inputs, outputs):
    # Training-time noise and penalties: the identity in inference, so no node at all.
    x = inputs[0]
    return [Value(x.name, outputs[0].shape, outputs[0].dtype, x.perm, x.order)]


# ---- core ----

@converts(L.Dense)
def _dense(b, layer, inputs, outputs):
    x = inputs[0]
    kernel = layer.kernel.value
    if x.order is not None:
        # Features arrive in the order of a channels-first Flatten: take the kernel's rows
        # in that order instead of reordering the features.
        order = x.order
        w = b.constant(np.asarray(kernel)[order].astype(layer.dtype),
                       f"{layer.name}/kernel_reordered")
        x = Value(x.name, x.shape, x.dtype)
    else:
        if x.perm is not None and x.perm[-1] != x.rank - 1:
            x = b.logical(x, layer.name)
        w = weight(b, layer, kernel, "kernel")
    y = b.op("MatMul", [x.name, w], layer.name)
    if layer.use_bias:
        y = b.op("Add", [y, weight(b, layer, layer.bias.value, "bias")], layer.name)
    out = Value(y, outputs[0].shape, outputs[0].dtype, x.perm)
    return [apply_activation(b, layer.activation, out, layer.name)]


@converts(L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax)
def _activation(b, layer, inputs, outputs):
    x = inputs[0]
    return [apply_activation(b, layer.activation, Value(x.name, outputs[0].shape, x.dtype,
                                                        x.perm, x.order), layer.name)]


@converts(L.PReLU)
def _prelu(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None:
        x = b.logical(x, layer.name)
    alpha = np.asarray(layer.alpha.value)[None]
    if x.perm is not None:
        alpha = alpha.transpose(x.perm)
    slope = b.constant(alpha.astype(layer.dtype), f"{layer.name}/alpha")
    return [value(b.op("PRelu", [x.name, slope], layer.name), outputs[0], x.perm)]


@converts(L.Embedding)
def _embedding(b, layer, inputs, outputs):
    if layer.mask_zero:
        refuse(layer, "mask_zero=True makes a mask, which the exported graph cannot carry; "
                      "export a model built with mask_zero=False.")
    x = b.logical(inputs[0], layer.name)
    indices = x.name
    if x.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        indices = b.op("Cast", [indices], layer.name, to=b.onnx.TensorProto.INT64)
    table = weight(b, layer, layer.embeddings.value, "embeddings")
    return [value(b.op("Gather", [table, indices], layer.name, axis=0), outputs[0])]


# ---- shapes ----

@converts(L.Flatten)
def _flatten(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None or x.rank == 2:
        return [Value(x.name, outputs[0].shape, x.dtype, None, x.order)]
    if x.perm is not None and None not in x.shape[1:]:
        # Flatten the graph's layout as it is; the order of its features is recorded.
        sample = x.shape[1:]
        positions = np.arange(int(np.prod(sample))).reshape(sample)
        order = positions.transpose([p - 1 for p in x.perm[1:]]).ravel()
        name = b.op("Flatten", [x.name], layer.name, axis=1)
        return [value(name, outputs[0], order=order)]
    x = b.logical(x, layer.name)
    return [value(b.op("Flatten", [x.name], layer.name, axis=1), outputs[0])]


@converts(L.Reshape)
def _reshape(b, layer, inputs, outputs):
    x = b.logical(inputs[0], layer.name)
    # 0 copies the batch dimension of the input.
    shape = b.ints((0,) + tuple(layer.target_shape), f"{layer.name}/shape")
    return [value(b.op("Reshape", [x.name, shape], layer.name), outputs[0])]


@converts(L.Permute)
def _permute(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None:
        x = b.logical(x, layer.name)
    # The output is transpose(input, dims); the graph's tensor stays where it is, only its
    # relation to the Keras layout changes: no node.
    dims = (0,) + tuple(int(d) for d in layer.dims)
    back = tuple(int(i) for i in np.argsort(dims))
    current = x.perm or tuple(range(x.rank))
    return [value(x.name, outputs[0], perm=tuple(back[axis] for axis in current))]


# ---- convolutions and pooling ----

def _channels_first_input(b, layer, x):
    """``x`` channels-first, whatever ``layer.data_format``, and that layout's perm."""
    perm = None if layer.data_format == "channels_first" else channels_first_perm(x.rank)
    return b.with_perm(x, perm, layer.name), perm


def _spatial(layer, x):
    """The Keras spatial sizes of ``x`` for ``layer``."""
    return x.shape[2:] if layer.data_format == "channels_first" else x.shape[1:-1]


def _pads(layer, spatial, window, strides, dilation):
    """The ONNX ``pads`` (all befores, then all afters) of Keras' padding rules, or None
    where a strided axis has an unknown size (then ``auto_pad``)."""
    padding = layer.padding
    if padding == "valid":
        return [0] * (2 * len(window))
    if padding == "causal":
        return [(window[0] - 1) * dilation[0], 0]
    if None in spatial and any(s > 1 for s in strides):
        if any(d > 1 for d in dilation):
            refuse(layer, "padding='same' with strides > 1 and dilation_rate > 1 on inputs of "
                          "unknown size has no ONNX equivalent; give the Input a fixed size.")
        return None
    before, after = [], []
    for n, k, s, d in zip(spatial, window, strides, dilation):
        extent = (k - 1) * d + 1
        # (with stride 1 the output keeps the input's size, whatever it is: pad extent - 1)
        out = n if s == 1 else -(-n // s)
        total = extent - 1 if s == 1 else max((out - 1) * s + extent - n, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _window_attributes(layer, x, window, strides, dilation):
    pads = _pads(layer, _spatial(layer, x), window, strides, dilation)
    # Keras' 'same' puts the odd pixel after the input: ONNX's SAME_UPPER.
    return {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": pads}


@converts(L.Conv1D, L.Conv2D)
def _conv(b, layer, inputs, outputs):
    x, perm = _channels_first_input(b, layer, inputs[0])
    rank = layer.rank
    # Keras (k..., in / groups, filters) -> ONNX (filters, in / groups, k...)
    kernel = weight(b, layer, layer.kernel.value, "kernel",
                    lambda k: k.transpose((rank + 1, rank) + tuple(range(rank))))
    name = _windowed_conv(b, layer, inputs[0], x.name, kernel, layer.groups, layer.use_bias)
    return [apply_activation(b, layer.activation, value(name, outputs[0], perm), layer.name)]


def _windowed_conv(b, layer, keras_input, x_name, kernel, group, with_bias):
    """The ONNX Conv node of ``layer``'s window (kernel size, strides, dilation, Keras's
    padding), on ``x_name`` (channels-first) with the ONNX-ordered ``kernel``; the layer's
    bias added when ``with_bias``. Returns the node's output name."""
    args = [x_name, kernel] + ([weight(b, layer, layer.bias.value, "bias")] if with_bias
                               else [])
    return b.op("Conv", args, layer.name, kernel_shape=list(layer.kernel_size),
                strides=list(layer.strides), dilations=list(layer.dilation_rate),
                group=int(group),
                **_window_attributes(layer, keras_input, layer.kernel_size, layer.strides,
                                     layer.dilation_rate))


@converts(L.DepthwiseConv1D, L.DepthwiseConv2D)
def _depthwise(b, layer, inputs, outputs):
    x, perm = _channels_first_input(b, layer, inputs[0])
    rank = layer.rank
    channels = layer.kernel.shape[rank]

    def to_onnx(k):
        # (k..., channels, multiplier) -> (channels * multiplier, 1, k...): output channel
        # c * multiplier + m is channel c's filter m, as in Keras.
        k = k.reshape(k.shape[:rank] + (-1,))
        return k.transpose((rank,) + tuple(range(rank)))[:, None]
    # (Keras 3 names the depthwise layer's weight 'kernel'.)
    kernel = weight(b, layer, layer.kernel.value, "kernel", to_onnx)
    name = _windowed_conv(b, layer, inputs[0], x.name, kernel, channels, layer.use_bias)
    return [apply_activation(b, layer.activation, value(name, outputs[0], perm), layer.name)]


@converts(L.SeparableConv1D, L.SeparableConv2D)
def _separable(b, layer, inputs, outputs):
    x, perm = _channels_first_input(b, layer, inputs[0])
    rank = layer.rank
    channels = layer.depthwise_kernel.shape[rank]

    def depthwise(k):
        k = k.reshape(k.shape[:rank] + (-1,))
        return k.transpose((rank,) + tuple(range(rank)))[:, None]

    def pointwise(k):
        # (1..., in, filters) -> (filters, in, 1...)
        return k.transpose((rank + 1, rank) + tuple(range(rank)))
    middle = _windowed_conv(b, layer, inputs[0], x.name,
                            weight(b, layer, layer.depthwise_kernel.value, "depthwise_kernel",
                                   depthwise), channels, with_bias=False)
    args = [middle, weight(b, layer, layer.pointwise_kernel.value, "pointwise_kernel",
                           pointwise)]
    if layer.use_bias:
        args.append(weight(b, layer, layer.bias.value, "bias"))
    name = b.op("Conv", args, layer.name, kernel_shape=[1] * rank)
    return [apply_activation(b, layer.activation, value(name, outputs[0], perm), layer.name)]


@converts(L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D)
def _pooling(b, layer, inputs, outputs):
    x, perm = _channels_first_input(b, layer, inputs[0])
    ones = (1,) * layer.rank
    attributes = dict(kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                      **_window_attributes(layer, inputs[0], layer.pool_size, layer.strides,
                                           ones))
    if layer._max:
        name = b.op("MaxPool", [x.name], layer.name, **attributes)
    else:
        # Keras' 'same' average is over the window's positions inside the input.
        name = b.op("AveragePool", [x.name], layer.name, count_include_pad=0, **attributes)
    return [value(name, outputs[0], perm)]


@converts(L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
          L.GlobalMaxPooling2D)
def _global_pooling(b, layer, inputs, outputs):
    x, perm = _channels_first_input(b, layer, inputs[0])
    name = b.op("GlobalMaxPool" if layer._max else "GlobalAveragePool", [x.name], layer.name)
    if layer.keepdims:
        return [value(name, outputs[0], perm)]
    return [value(b.op("Flatten", [name], layer.name, axis=1), outputs[0])]


# ---- normalization ----

@converts(L.BatchNormalization)
def _batch_norm(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None and layer._axis != 1:
        x = b.logical(x, layer.name)
    channels = layer.moving_mean.shape[0]
    statistics = [layer.gamma.value if layer.scale else np.ones(channels),
                  layer.beta.value if layer.center else np.zeros(channels),
                  layer.moving_mean.value, layer.moving_variance.value]
    what = ["gamma", "beta", "moving_mean", "moving_variance"]
    if x.order is not None:
        # Features in the order of a channels-first Flatten: so are the statistics.
        statistics = [np.asarray(a)[x.order] for a in statistics]
        what = [f"{w}_reordered" for w in what]
    axis = x.physical_axis(layer._axis)
    if axis == 1:
        args = [x.name] + [b.constant(np.asarray(a).astype(layer.dtype), f"{layer.name}/{w}",
                                      key=(id(layer), w)) for a, w in zip(statistics, what)]
        name = b.op("BatchNormalization", args, layer.name, epsilon=float(layer.epsilon))
        return [value(name, outputs[0], x.perm, x.order)]
    # The channels are not on axis 1, where ONNX's operator wants them: the same affine
    # map, y = x * scale + shift, broadcast along the channel axis.
    gamma, beta, mean, variance = (np.asarray(a, np.float64) for a in statistics)
    scale = gamma / np.sqrt(variance + layer.epsilon)
    shift = beta - mean * scale
    shape = [1] * x.rank
    shape[axis] = channels
    scale = weight(b, layer, scale.reshape(shape), "scale")
    shift = weight(b, layer, shift.reshape(shape), "shift")
    name = b.op("Add", [b.op("Mul", [x.name, scale], layer.name), shift], layer.name)
    return [value(name, outputs[0], x.perm)]


@converts(L.LayerNormalization)
def _layer_norm(b, layer, inputs, outputs):
    x = inputs[0]
    shape = tuple(layer._param_shape)
    trailing = tuple(range(x.rank - len(shape), x.rank))
    if x.order is not None or x.perm is not None and x.perm[-len(shape):] != trailing:
        # (a layout that keeps the normalised axes last, as an LSTM's time-major
        # sequence does, serves as it is)
        x = b.logical(x, layer.name)
    gamma = layer.gamma.value if layer.scale else np.ones(shape)
    args = [x.name, weight(b, layer, gamma, "gamma")]
    if layer.center:
        args.append(weight(b, layer, layer.beta.value, "beta"))
    name = b.op("LayerNormalization", args, layer.name, axis=-len(shape),
                epsilon=float(layer.epsilon))
    return [value(name, outputs[0], x.perm)]


# ---- merging ----

def _chain(op_type):
    def convert(b, layer, inputs, outputs):
        xs = b.same_layout(inputs, layer.name)
        # Pairwise, left to right: the order minidl adds (or multiplies) in.
        name = xs[0].name
        for x in xs[1:]:
            name = b.op(op_type, [name, x.name], layer.name)
        return [value(name, outputs[0], xs[0].perm, xs[0].order)]
    return convert


converts(L.Add)(_chain("Add"))
converts(L.Multiply)(_chain("Mul"))
converts(L.Subtract)(_chain("Sub"))
converts(L.Maximum)(_chain("Max"))
converts(L.Minimum)(_chain("Min"))


@converts(L.Average)
def _average(b, layer, inputs, outputs):
    total = _chain("Add")(b, layer, inputs, outputs)[0]
    share = b.scalar(1.0 / len(inputs), total.dtype)
    return [value(b.op("Mul", [total.name, share], layer.name), outputs[0], total.perm,
                  total.order)]


@converts(L.Concatenate)
def _concatenate(b, layer, inputs, outputs):
    xs = b.same_layout(inputs, layer.name)
    if xs[0].order is not None:
        xs = [b.logical(x, layer.name) for x in xs]
    axis = xs[0].physical_axis(layer.axis)
    name = b.op("Concat", [x.name for x in xs], layer.name, axis=axis)
    return [value(name, outputs[0], xs[0].perm)]


# ---- padding, cropping, resampling ----

@converts(L.ZeroPadding1D, L.ZeroPadding2D)
def _zero_padding(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None:
        x = b.logical(x, layer.name)
    first = 2 if layer.data_format == "channels_first" else 1
    before, after = [0] * x.rank, [0] * x.rank
    for i, (low, high) in enumerate(layer._margins):
        axis = x.physical_axis(first + i)
        before[axis], after[axis] = low, high
    pads = b.ints(before + after, f"{layer.name}/pads")
    return [value(b.op("Pad", [x.name, pads], layer.name), outputs[0], x.perm)]


@converts(L.Cropping1D, L.Cropping2D)
def _cropping(b, layer, inputs, outputs):
    x = inputs[0]
    if x.order is not None:
        x = b.logical(x, layer.name)
    first = 2 if getattr(layer, "data_format", "channels_last") == "channels_first" else 1
    axes, starts, ends = [], [], []
    for i, (low, high) in enumerate(layer._margins):
        axes.append(x.physical_axis(first + i))
        starts.append(low)
        ends.append(-high if high else 2 ** 63 - 1)
    name = b.op("Slice", [x.name, b.ints(starts, "starts"), b.ints(ends, "ends"),
                          b.ints(axes, "axes")], layer.name)
    return [value(name, outputs[0], x.perm)]


@converts(L.Rescaling)
def _rescaling(b, layer, inputs, outputs):
    x = inputs[0]
    scale, offset = np.asarray(layer._scale), layer._offset
    if scale.ndim or offset is not None and np.ndim(offset):
        x = b.logical(x, layer.name)   # (the arrays broadcast over the Keras layout)
    name = x.name
    if x.dtype != np.dtype(layer.dtype):
        name = b.op("Cast", [name], layer.name, to=_TENSOR_TYPES[np.dtype(layer.dtype).name])
    name = b.op("Mul", [name, weight(b, layer, scale, "scale")], layer.name)
    if offset is not None:
        name = b.op("Add", [name, weight(b, layer, offset, "offset")], layer.name)
    return [value(name, outputs[0], x.perm, x.order)]


@converts(L.UpSampling1D, L.UpSampling2D)
def _upsampling(b, layer, inputs, outputs):
    if getattr(layer, "interpolation", "nearest") != "nearest":
        refuse(layer, f"interpolation={layer.interpolation!r} is exported for 'nearest' only.")
    x = inputs[0]
    if x.order is not None:
        x = b.logical(x, layer.name)
    first = 2 if getattr(layer, "data_format", "channels_last") == "channels_first" else 1
    sizes = layer._sizes()
    scales = [1.0] * x.rank
    for i, size in enumerate(sizes):
        scales[x.physical_axis(first + i)] = float(size)
    scales = b.constant(np.array(scales, np.float32), f"{layer.name}/scales")
    # Each output position i reads input floor(i / size): Keras' repetition.
    name = b.op("Resize", [x.name, "", scales], layer.name, mode="nearest",
                coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return [value(name, outputs[0], x.perm)]


# ---- wrappers ----

class _StepTensor:
    """The shape and dtype of one step's output, as a wrapped layer's converter reads them
    from a call's output tensors."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype


@converts(L.TimeDistributed)
def _time_distributed(b, layer, inputs, outputs):
    inner = layer.layer
    convert = CONVERTERS.get(type(inner))
    if convert is None:
        refuse(layer, f"the layer it wraps, '{inner.name}' ({type(inner).__name__}), has no "
                      f"ONNX conversion.")
    x = b.logical(inputs[0], layer.name)
    step, out_step = x.shape[2:], tuple(outputs[0].shape[2:])
    if None in step or None in out_step:
        refuse(layer, f"its steps must have known shapes to be made rows of one batch; "
                      f"received steps of shape {step} giving {out_step}.")
    # (batch, steps, ...) -> (batch * steps, ...) -> the wrapped layer -> back
    rows = b.op("Reshape", [x.name, b.ints((-1,) + step, f"{layer.name}/shape")], layer.name)
    result = convert(b, inner, [Value(rows, (None,) + step, x.dtype)],
                     [_StepTensor((None,) + out_step, outputs[0].dtype)])[0]
    result = b.logical(result, layer.name)
    leading = b.op("Shape", [x.name], layer.name, start=0, end=2)
    shape = b.op("Concat", [leading, b.ints(out_step, f"{layer.name}/step_shape")], layer.name,
                 axis=0)
    return [value(b.op("Reshape", [result.name, shape], layer.name), outputs[0])]
