"""Depthwise convolutions: DepthwiseConv2D and DepthwiseConv1D (channels_last).

Each input channel is convolved with its own ``depth_multiplier`` filters, and channels are
never mixed: with a ``(kh, kw, channels, depth_multiplier)`` kernel K, output channel
``c * depth_multiplier + m`` (Keras' order) is ``conv2d(x[..., c], K[:, :, c, m])``.
    forward:  z = depthwise(x, K)             (csrc/depthwise.c, straight from the image)
              y = f(z + b)                    (one fused pass, as in Dense and Conv2D)
    backward: dz = dy * f'(z), db = sum(dz)   (one fused pass)
              dK, dx = depthwise gradients    (csrc/depthwise.c)
There is no patch matrix: a GEMM per channel would be (pixels x taps) @ (taps x 1), far too
small to pay for packing, so the kernels run along the channels, which are contiguous in
channels_last images. DepthwiseConv1D is DepthwiseConv2D on images one row high.
"""
import collections

import numpy as np

from minidl import activations, constraints, initializers, regularizers
from minidl._core import _depthwise
from minidl.layers.base import LAYERS, Layer
from minidl.layers.conv_utils import (check_data_format, check_input_rank, known_channels,
                                      normalize_padding, normalize_tuple, window_geometry)
from minidl.layers.core import AffineLayer, _serialize_init
from minidl.layers.data_format import ChannelsFirstMixin
from minidl.utils.checks import check_bool

# Geometries kept per layer for inputs of unknown size (one per size seen).
_GEOMETRY_CACHE = 64

# Where the windows fall for one input size, on 2-D images: the sample as an image (rows,
# columns, channels), the output's (rows, columns), the kernels' window arguments (strides,
# dilation, pads before the input) and the output sample shape.
_Geometry = collections.namedtuple("_Geometry", ["image", "out_image", "window",
                                                 "output_sample"])


def check_depth_multiplier(depth_multiplier, owner):
    """``depth_multiplier`` as an int; ValueError (TypeError for a non-int) naming it unless it
    is a positive int, as Keras refuses."""
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, (int, np.integer)):
        raise TypeError(f"{owner} depth_multiplier must be a positive int; received "
                        f"depth_multiplier={depth_multiplier!r}.")
    if depth_multiplier <= 0:
        raise ValueError(f"{owner}: invalid value for argument depth_multiplier: expected a "
                         f"strictly positive value; received "
                         f"depth_multiplier={depth_multiplier!r}.")
    return int(depth_multiplier)


class _DepthwiseWindow:
    """The window arguments and geometry shared by the depthwise and separable layers (a
    mixin: it sets and reads ``kernel_size``, ``strides``, ``padding``, ``dilation_rate``,
    ``depth_multiplier``, ``data_format``)."""

    rank = None
    _layout = None   # for messages, e.g. "(batch, height, width, channels)"

    def _init_window(self, kernel_size, strides, padding, depth_multiplier, data_format,
                     dilation_rate):
        owner = type(self).__name__
        self.depth_multiplier = check_depth_multiplier(depth_multiplier, owner)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = normalize_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        self.padding = normalize_padding(padding, ("valid", "same"), owner)
        self.data_format = check_data_format(data_format, self)

    def _geometry(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return window_geometry(self, input_shape, input_shape[:-1], self.kernel_size,
                               self.strides, self.dilation_rate, self.padding, "kernel")

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        out, _ = self._geometry(input_shape)
        channels = input_shape[-1]
        return out + (None if channels is None else self._output_channels(channels),)

    def _check_channels(self, input_shape):
        return known_channels(self, input_shape)

    def _output_channels(self, channels):
        return channels * self.depth_multiplier

    def _two_d(self, values, fill):
        """A rank-1 tuple as the 2-D one of an image one row high."""
        return (fill,) * (2 - self.rank) + tuple(values)

    def _geo(self, spatial):
        """The geometry of samples of ``spatial`` size, made once per size."""
        geo = self._geometries.get(spatial)
        if geo is None:
            channels = self._in_channels
            out, pads = self._geometry(tuple(spatial) + (channels,))
            window = dict(strides=self._two_d(self.strides, 1),
                          dilation=self._two_d(self.dilation_rate, 1),
                          pads=self._two_d(pads, 0))
            geo = _Geometry(self._two_d(spatial, 1) + (channels,), self._two_d(out, 1), window,
                            out + (self._output_channels(channels),))
            if len(self._geometries) >= _GEOMETRY_CACHE:   # sizes vary batch to batch
                self._geometries.clear()
            self._geometries[spatial] = geo
        return geo

    def _depthwise_kernel_4d(self, kernel):
        """A (k..., channels, depth_multiplier) kernel as the kernels' (kh, kw, c, dm)."""
        return kernel.reshape(self._two_d(self.kernel_size, 1) + kernel.shape[-2:])

    def _window_config(self):
        return {"kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate),
                "depth_multiplier": self.depth_multiplier}


class _DepthwiseConv(_DepthwiseWindow, AffineLayer):
    """The depthwise convolution over ``rank`` spatial axes; see DepthwiseConv2D."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        # AffineLayer's arguments under Keras' names for this layer: the base's machinery
        # (kernel, bias, activation, regularizers, constraints) is the kernel's.
        Layer.__init__(self, **kwargs)
        self._init_window(kernel_size, strides, padding, depth_multiplier, data_format,
                          dilation_rate)
        self.activation = self._resolve("activation", activation, activations.get)
        self.use_bias = check_bool(type(self).__name__, "use_bias", use_bias)
        self.depthwise_initializer = depthwise_initializer
        self.bias_initializer = bias_initializer
        self._initializers = {
            "kernel": self._resolve("depthwise_initializer", depthwise_initializer,
                                    initializers.get),
            "bias": self._resolve("bias_initializer", bias_initializer, initializers.get)}
        self.kernel_regularizer = self._resolve("depthwise_regularizer", depthwise_regularizer,
                                                regularizers.get)
        self.bias_regularizer = self._resolve("bias_regularizer", bias_regularizer,
                                              regularizers.get)
        self.activity_regularizer = self._resolve("activity_regularizer", activity_regularizer,
                                                  regularizers.get)
        self.kernel_constraint = self._resolve("depthwise_constraint", depthwise_constraint,
                                               constraints.get)
        self.bias_constraint = self._resolve("bias_constraint", bias_constraint,
                                             constraints.get)

    @property
    def depthwise_regularizer(self):
        return self.kernel_regularizer

    @property
    def depthwise_constraint(self):
        return self.kernel_constraint

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._geometry(input_shape)
        channels = self._in_channels = self._check_channels(input_shape)
        # Keras 3 names this weight "kernel" (SeparableConv's is "depthwise_kernel").
        self._add_kernel_and_bias(self.kernel_size + (channels, self.depth_multiplier),
                                  channels * self.depth_multiplier)
        self._geometries = {}
        super().build(input_shape)

    # ---- computation ----

    def forward(self, ctx, x, training=False):
        geo = self._geo(x.shape[1:-1])
        n = x.shape[0]
        x = np.ascontiguousarray(x).reshape((n,) + geo.image)
        units = geo.output_sample[-1]
        rows = n * geo.out_image[0] * geo.out_image[1]
        activation = ctx.activation or self.activation
        if ctx.record:
            z, y = self._activation_buffers(ctx, activation, rows, units)
        else:
            # Inference allocates (concurrent predict calls share nothing) and applies the
            # activation in place.
            z = y = np.empty((rows, units), self.dtype)
        _depthwise.depthwise_forward(x, self._depthwise_kernel_4d(self._kernel_array),
                                     z.reshape((n,) + geo.out_image + (units,)), **geo.window)
        if self._bias_array is not None or activation.name != "linear" or y is not z:
            activation.forward_bias(z, self._bias_array, y)
        out = y.reshape((n,) + geo.output_sample)
        if ctx.record:
            ctx.x, ctx.z, ctx.y, ctx.y_out, ctx.geo = x, z, y, out, geo
        return out

    def _backward_linear(self, ctx, dz, need_input_grad):
        n, geo = ctx.x.shape[0], ctx.geo
        dx = ctx.buffers.get("dx", n, geo.image) if need_input_grad else None
        _depthwise.depthwise_backward(
            ctx.x, dz.reshape((n,) + geo.out_image + (geo.output_sample[-1],)),
            self._depthwise_kernel_4d(self._kernel_array),
            self._depthwise_kernel_4d(ctx.grads[0]), dx, **geo.window)
        return None if dx is None else dx.reshape((n,) + geo.image[2 - self.rank:])

    def get_config(self):
        config = Layer.get_config(self)
        return {**config, **self._window_config(),
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": _serialize_init(self.depthwise_initializer),
                "bias_initializer": _serialize_init(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints._serialize_argument(
                    self, "depthwise_constraint", self.kernel_constraint),
                "bias_constraint": constraints._serialize_argument(
                    self, "bias_constraint", self.bias_constraint)}


@LAYERS.register()
class DepthwiseConv2D(ChannelsFirstMixin, _DepthwiseConv):
    """2-D depthwise convolution: each input channel convolved with its own filters.

    With ``depth_multiplier`` d, input channel ``c`` gives output channels ``c * d`` to
    ``c * d + d - 1``, from ``kernel[:, :, c, 0..d-1]``; channels are never mixed (follow
    with a 1x1 :class:`Conv2D`, or use :class:`SeparableConv2D`, to mix them).
    ``output = activation(depthwise_conv2d(input, kernel) + bias)``.

    Args:
        kernel_size: int or tuple of 2 ints, the window's height and width.
        strides: int or tuple of 2 ints (default 1).
        padding: 'valid' (no padding, the default) or 'same' (zeros around the input so
            that the output has ``ceil(input / strides)`` rows and columns).
        depth_multiplier: positive int, the output channels per input channel (default 1).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int or tuple of 2 ints: the spacing between the kernel's taps
            (default 1).
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias per output channel.
        depthwise_initializer: initializer of the (kh, kw, channels, depth_multiplier)
            kernel (default 'glorot_uniform').
        bias_initializer: initializer of the bias (default 'zeros').
        depthwise_regularizer, bias_regularizer: optional regularizers of the weights.
        activity_regularizer: optional regularizer of the output (penalty divided by the
            batch size, as in Keras).
        depthwise_constraint, bias_constraint: optional constraints of the weights, applied
            after each optimizer update.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, new_height, new_width, channels * depth_multiplier)``, with the rows
        and columns of :class:`Conv2D`.

    Example:
        >>> Sequential([Input((32, 32, 16)), DepthwiseConv2D(3, padding="same"),
        ...             BatchNormalization(), ReLU(6.0), Conv2D(32, 1)])
    """

    rank = 2
    _layout = "(batch, height, width, channels)"

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding,
                         depth_multiplier=depth_multiplier, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)


@LAYERS.register()
class DepthwiseConv1D(ChannelsFirstMixin, _DepthwiseConv):
    """1-D depthwise convolution: each input channel of a sequence filtered on its own.

    Args:
        kernel_size: int (or tuple of one int), the window's length.
        strides: int (default 1).
        padding: 'valid' (default) or 'same'.
        depth_multiplier: positive int, the output channels per input channel (default 1).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int (default 1).
        activation, use_bias, depthwise_initializer, bias_initializer,
        depthwise_regularizer, bias_regularizer, activity_regularizer,
        depthwise_constraint, bias_constraint: as in :class:`DepthwiseConv2D`; the kernel
            has shape (kernel_size, channels, depth_multiplier).

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, new_steps, channels * depth_multiplier)``, with the rules of
        :class:`Conv1D` ('valid' and 'same').
    """

    rank = 1
    _layout = "(batch, steps, channels)"
