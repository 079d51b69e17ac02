"""Depthwise separable convolutions: SeparableConv2D and SeparableConv1D (channels_last).

A depthwise convolution (each channel filtered on its own, ``depth_multiplier`` filters per
channel; see depthwise.py) followed by a pointwise one (a 1x1 convolution mixing the
channels), with one bias and activation at the end:
    forward:  t = depthwise(x, D)             (csrc/depthwise.c; kept for the backward pass)
              z = t @ P                       (GEMM: P is the (1..., c * dm, filters) pointwise
                                               kernel as a matrix, t as (pixels, c * dm))
              y = f(z + b)                    (one fused pass, as in Conv2D)
    backward: dz = dy * f'(z), db = sum(dz)
              dP = t^T @ dz, dt = dz @ P^T    (GEMMs)
              dD, dx = depthwise gradients of dt
The weights are Keras': depthwise_kernel, pointwise_kernel, bias, in that order.
"""
import numpy as np

from minidl import activations, constraints, initializers, regularizers
from minidl._core import _depthwise
from minidl.layers.base import LAYERS, Layer
from minidl.layers.core import AffineLayer, _serialize_init
from minidl.layers.data_format import ChannelsFirstMixin
from minidl.layers.depthwise import _DepthwiseWindow
from minidl.ops import gemm
from minidl.utils.checks import check_bool


class _SeparableConv(_DepthwiseWindow, AffineLayer):
    """The separable convolution over ``rank`` spatial axes; see SeparableConv2D."""

    _bias_index = 2   # params: depthwise_kernel, pointwise_kernel, bias

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        Layer.__init__(self, **kwargs)
        owner = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
            raise ValueError(f"{owner}: invalid value for argument filters: expected a strictly "
                             f"positive int; received filters={filters!r}.")
        self.filters = int(filters)
        self._init_window(kernel_size, strides, padding, depth_multiplier, data_format,
                          dilation_rate)
        self.activation = self._resolve("activation", activation, activations.get)
        self.use_bias = check_bool(owner, "use_bias", use_bias)
        # As given, for get_config; resolved once, here, for build.
        self.depthwise_initializer = depthwise_initializer
        self.pointwise_initializer = pointwise_initializer
        self.bias_initializer = bias_initializer
        resolve = self._resolve
        self._initializers = {
            "depthwise": resolve("depthwise_initializer", depthwise_initializer,
                                 initializers.get),
            "pointwise": resolve("pointwise_initializer", pointwise_initializer,
                                 initializers.get),
            "bias": resolve("bias_initializer", bias_initializer, initializers.get)}
        self.depthwise_regularizer = resolve("depthwise_regularizer", depthwise_regularizer,
                                             regularizers.get)
        self.pointwise_regularizer = resolve("pointwise_regularizer", pointwise_regularizer,
                                             regularizers.get)
        self.bias_regularizer = resolve("bias_regularizer", bias_regularizer, regularizers.get)
        self.activity_regularizer = resolve("activity_regularizer", activity_regularizer,
                                            regularizers.get)
        self.depthwise_constraint = resolve("depthwise_constraint", depthwise_constraint,
                                            constraints.get)
        self.pointwise_constraint = resolve("pointwise_constraint", pointwise_constraint,
                                            constraints.get)
        self.bias_constraint = resolve("bias_constraint", bias_constraint, constraints.get)

    def _output_channels(self, channels):
        return self.filters

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._geometry(input_shape)
        channels = self._in_channels = self._check_channels(input_shape)
        inner = channels * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(
            self.kernel_size + (channels, self.depth_multiplier), self._initializers["depthwise"],
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint,
            name="depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            (1,) * self.rank + (inner, self.filters), self._initializers["pointwise"],
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint,
            name="pointwise_kernel")
        self.bias = self.add_weight((self.filters,), self._initializers["bias"],
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None
        # The kernels take the arrays (the Variables' own, updated in place).
        self._depthwise_array = self.depthwise_kernel.value
        self._pointwise_array = self.pointwise_kernel.value
        self._bias_array = self.bias.value if self.use_bias else None
        self._geometries = {}
        super().build(input_shape)

    # ---- computation ----

    def forward(self, ctx, x, training=False):
        geo = self._geo(x.shape[1:-1])
        n = x.shape[0]
        x = np.ascontiguousarray(x).reshape((n,) + geo.image)
        inner = self._pointwise_array.shape[-2]
        rows = n * geo.out_image[0] * geo.out_image[1]
        activation = ctx.activation or self.activation
        if ctx.record:
            t = ctx.buffers.get("t", rows, (inner,))
            z, y = self._activation_buffers(ctx, activation, rows, self.filters)
        else:
            t = np.empty((rows, inner), self.dtype)
            z = y = np.empty((rows, self.filters), self.dtype)
        _depthwise.depthwise_forward(x, self._depthwise_kernel_4d(self._depthwise_array),
                                     t.reshape((n,) + geo.out_image + (inner,)), **geo.window)
        gemm(t, self._pointwise_array.reshape(inner, self.filters), z)
        if self._bias_array is not None or activation.name != "linear" or y is not z:
            activation.forward_bias(z, self._bias_array, y)
        out = y.reshape((n,) + geo.output_sample)
        if ctx.record:
            ctx.x, ctx.t, ctx.z, ctx.y, ctx.y_out, ctx.geo = x, t, z, y, out, geo
        return out

    def _backward_linear(self, ctx, dz, need_input_grad):
        n, geo, t = ctx.x.shape[0], ctx.geo, ctx.t
        inner = t.shape[1]
        pointwise = self._pointwise_array.reshape(inner, self.filters)
        gemm(t, dz, ctx.grads[1].reshape(inner, self.filters), trans_a=True)
        dt = gemm(dz, pointwise, ctx.buffers.get("dt", t.shape[0], (inner,)), trans_b=True)
        dx = ctx.buffers.get("dx", n, geo.image) if need_input_grad else None
        _depthwise.depthwise_backward(
            ctx.x, dt.reshape((n,) + geo.out_image + (inner,)),
            self._depthwise_kernel_4d(self._depthwise_array),
            self._depthwise_kernel_4d(ctx.grads[0]), dx, **geo.window)
        return None if dx is None else dx.reshape((n,) + geo.image[2 - self.rank:])

    def get_config(self):
        config = Layer.get_config(self)
        serialize_constraint = constraints._serialize_argument
        return {**config, "filters": self.filters, **self._window_config(),
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": _serialize_init(self.depthwise_initializer),
                "pointwise_initializer": _serialize_init(self.pointwise_initializer),
                "bias_initializer": _serialize_init(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": serialize_constraint(self, "depthwise_constraint",
                                                             self.depthwise_constraint),
                "pointwise_constraint": serialize_constraint(self, "pointwise_constraint",
                                                             self.pointwise_constraint),
                "bias_constraint": serialize_constraint(self, "bias_constraint",
                                                        self.bias_constraint)}


@LAYERS.register("SeparableConvolution2D")
class SeparableConv2D(ChannelsFirstMixin, _SeparableConv):
    """2-D depthwise separable convolution: a depthwise convolution, then a 1x1 one.

    Each input channel is first convolved with its own ``depth_multiplier`` filters (as in
    :class:`DepthwiseConv2D`); the ``channels * depth_multiplier`` results are then mixed
    into ``filters`` outputs by a pointwise (1x1) convolution, the bias is added and the
    activation applied. Far fewer weights than :class:`Conv2D` with the same window.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int or tuple of 2 ints, the depthwise window's height and width.
        strides: int or tuple of 2 ints (default 1).
        padding: 'valid' (no padding, the default) or 'same' (zeros around the input so
            that the output has ``ceil(input / strides)`` rows and columns).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int or tuple of 2 ints: the spacing between the depthwise kernel's
            taps (default 1).
        depth_multiplier: positive int, the depthwise outputs per input channel (default 1).
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias per filter.
        depthwise_initializer, pointwise_initializer: initializers of the
            (kh, kw, channels, depth_multiplier) depthwise kernel and the
            (1, 1, channels * depth_multiplier, filters) pointwise kernel (default
            'glorot_uniform').
        bias_initializer: initializer of the bias (default 'zeros').
        depthwise_regularizer, pointwise_regularizer, bias_regularizer: optional
            regularizers of the weights.
        activity_regularizer: optional regularizer of the output (penalty divided by the
            batch size, as in Keras).
        depthwise_constraint, pointwise_constraint, bias_constraint: optional constraints
            of the weights, applied after each optimizer update.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, new_height, new_width, filters)``, with the rows and columns of
        :class:`Conv2D`.

    Example:
        >>> Sequential([Input((32, 32, 3)), SeparableConv2D(32, 3, activation="relu"),
        ...             GlobalAveragePooling2D(), Dense(10, activation="softmax")])
    """

    rank = 2
    _layout = "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         depth_multiplier=depth_multiplier, activation=activation,
                         use_bias=use_bias, **kwargs)


@LAYERS.register("SeparableConvolution1D")
class SeparableConv1D(ChannelsFirstMixin, _SeparableConv):
    """1-D depthwise separable convolution: a depthwise convolution of each channel of a
    sequence, then a pointwise (size 1) one mixing the channels.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int (or tuple of one int), the depthwise window's length.
        strides: int (default 1).
        padding: 'valid' (default) or 'same'.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int (default 1).
        depth_multiplier, activation, use_bias, depthwise_initializer,
        pointwise_initializer, bias_initializer, depthwise_regularizer,
        pointwise_regularizer, bias_regularizer, activity_regularizer,
        depthwise_constraint, pointwise_constraint, bias_constraint: as in
            :class:`SeparableConv2D`; the kernels have shapes
            (kernel_size, channels, depth_multiplier) and
            (1, channels * depth_multiplier, filters).

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, new_steps, filters)``, with the rules of :class:`Conv1D` ('valid'
        and 'same').
    """

    rank = 1
    _layout = "(batch, steps, channels)"
