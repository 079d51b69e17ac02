"""Conv3D: 3-D convolution over volumes (channels_last), on the core's GEMM.

One training step with a (kd, kh, kw, c, filters) kernel K, viewed as a (kd * kh * kw * c,
filters) matrix (the scheme of Conv2D, with vol2col for im2col; minidl/_core/_conv3d.pyx):
    forward:  z = vol2col(x) @ K,  y = f(z + b)
    backward: dz = dy * f'(z), db = sum(dz),  dK = vol2col(x)^T @ dz,
              dx = col2vol(dz @ K^T)   (skipped for the model's first layer)
a few volumes at a time, so that a chunk's patches stay in cache (``_TRAIN_CHUNK_BYTES``).
"""
import collections

import numpy as np

from minidl._core import _conv3d
from minidl.layers.base import LAYERS
from minidl.layers.conv_utils import (check_data_format, check_filters, check_input_rank,
                                      check_strides_with_dilation, known_channels,
                                      normalize_padding, normalize_tuple, window_geometry)
from minidl.layers.convolutional import _PatchConvolution
from minidl.layers.data_format import ChannelsFirstMixin

# Geometries kept per layer for inputs of unknown size (one per size seen).
_GEOMETRY_CACHE = 64

# A volume size's window arguments (for _conv3d), its output positions (od, oh, ow),
# whether the patch matrix is the input itself, and the output sample shape.
_Geometry = collections.namedtuple("_Geometry", ["window", "out_spatial", "pointwise",
                                                 "output_sample"])


class _Conv3D(_PatchConvolution):
    """The 3-D convolution on channels_last volumes; see Conv3D for the arguments."""

    rank = 3
    _layout = "(batch, depth, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        owner = type(self).__name__
        self.filters = check_filters(filters, owner)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups != 1:
            raise ValueError(f"{owner} supports groups=1 only; received groups={groups!r}.")
        self.groups = 1
        self.kernel_size = normalize_tuple(kernel_size, 3, "kernel_size", owner)
        self.strides = normalize_tuple(strides, 3, "strides", owner)
        self.dilation_rate = normalize_tuple(dilation_rate, 3, "dilation_rate", owner)
        self.padding = normalize_padding(padding, ("valid", "same"), owner)
        check_strides_with_dilation(self.strides, self.dilation_rate, owner)
        self.data_format = check_data_format(data_format, self)

    # ---- shapes ----

    def _lengths(self, input_shape):
        check_input_rank(self, input_shape, 3, self._layout)
        return window_geometry(self, input_shape, input_shape[:-1], self.kernel_size,
                               self.strides, self.dilation_rate, self.padding, "kernel")

    def compute_output_shape(self, input_shape):
        out, _ = self._lengths(tuple(input_shape))
        return out + (self.filters,)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._lengths(input_shape)
        channels = known_channels(self, input_shape)
        self._add_kernel_and_bias(self.kernel_size + (channels, self.filters), self.filters)
        self._patch = int(np.prod(self.kernel_size)) * channels
        self._channels = channels
        self._geometries = {}
        super().build(input_shape)

    def _geo(self, spatial):
        geo = self._geometries.get(spatial)
        if geo is None:
            channels = self._channels
            out, pads = self._lengths(tuple(spatial) + (channels,))
            window = dict(kernel_size=self.kernel_size, strides=self.strides,
                          dilation=self.dilation_rate, pads=pads, out_shape=out)
            pointwise = (self._patch == channels and all(s == 1 for s in self.strides)
                         and out == tuple(spatial))
            geo = _Geometry(window, out, pointwise, out + (self.filters,))
            if len(self._geometries) >= _GEOMETRY_CACHE:
                self._geometries.clear()
            self._geometries[spatial] = geo
        return geo

    # ---- computation ----

    def _kernel_matrix(self, kernel):
        return kernel.reshape(self._patch, self.filters)

    def _patch_rows(self, geo):
        return int(np.prod(geo.out_spatial))

    def _cols(self, ctx, geo, name, n, record):
        return None if geo.pointwise else self._patch_buffer(ctx, geo, name, n, record)

    def _forward(self, ctx, x, activate):
        geo = self._geo(x.shape[1:-1])
        x = np.ascontiguousarray(x)
        n = x.shape[0]
        rows = n * int(np.prod(geo.out_spatial))
        activation = ctx.activation or self.activation
        record = ctx.record
        if record:
            z, y = self._activation_buffers(ctx, activation, rows, self.filters)
        else:
            z = y = np.empty((rows, self.filters), self.dtype)
        _conv3d.conv3d_forward(x, self._kernel_matrix(self._kernel_array), z,
                               self._cols(ctx, geo, "cols", n, record),
                               self._chunk_samples(geo, record), geo.pointwise, **geo.window)
        if activate:
            activation.forward_bias(z, self._bias_array, y)
        out = (y if activate else z).reshape((n,) + geo.output_sample)
        if record:
            ctx.x, ctx.z, ctx.y, ctx.y_out, ctx.geo = x, z, y, out, geo
        return out

    def _backward_linear(self, ctx, dz, need_input_grad):
        x, geo = ctx.x, ctx.geo
        n = x.shape[0]
        dx = ctx.buffers.get("dx", n, x.shape[1:]) if need_input_grad else None
        _conv3d.conv3d_backward(dz, self._kernel_matrix(self._kernel_array),
                                self._chunk_samples(geo, True), geo.pointwise, x=x,
                                d_kernel=self._kernel_matrix(ctx.grads[0]),
                                cols=self._cols(ctx, geo, "cols", n, True), dx=dx,
                                dcols=(self._cols(ctx, geo, "dcols", n, True)
                                       if need_input_grad else None),
                                **geo.window)
        return dx

    def get_config(self):
        config = super().get_config()
        return {**config, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "groups": self.groups}



@LAYERS.register("Convolution3D")
class Conv3D(ChannelsFirstMixin, _Conv3D):
    """3-D convolution over volumes (video frames, medical scans):
    ``output = activation(conv3d(input, kernel) + bias)``.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int or tuple of 3 ints (depth, height, width).
        strides: int or tuple of 3 ints (default 1).
        padding: 'valid' (default) or 'same' (output ``ceil(input / strides)`` long).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int or tuple of 3 ints (default 1); dilation > 1 needs strides 1,
            as in Keras.
        groups: must be 1.
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the (kd, kh, kw, channels, filters) kernel
            (default 'glorot_uniform').
        bias_initializer: initializer of the bias (default 'zeros').
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in :class:`Conv2D`.

    Input shape:
        5-D ``(batch, depth, height, width, channels)``.
    Output shape:
        5-D ``(batch, new_depth, new_height, new_width, filters)``, each axis by the rule
        of :class:`Conv2D`.

    Example:
        >>> Sequential([Input((8, 16, 16, 1)), Conv3D(8, 3, activation="relu")])
    """


# Keras' other name of this layer (the registry knows it too, for loading).
Convolution3D = Conv3D
