"""Transposed convolutions: Conv1DTranspose, Conv2DTranspose, Conv3DTranspose (channels_last).

A transposed convolution is the convolution run backwards. Its kernel, of Keras' shape
(k..., filters, channels), is the kernel of a convolution from the transposed layer's output
(filters channels) to its input (channels); viewed as a (k... * filters, channels) matrix K,
one training step is
    forward:  y = col2im(x @ K^T)        the convolution's input gradient: a GEMM, then
                                         each row's patch added to the output windows
              y = f(y + b)               (one fused pass, as in Dense)
    backward: dz = dy * f'(z), db        (one fused pass)
              dx = im2col(dz) @ K        the convolution's forward pass
              dK = im2col(dz)^T @ x      its kernel gradient, from the same patches
so every pass runs on the convolution kernels of minidl._core: _convolution.pyx for 1-D and
2-D (the backward pass through the direct kernels where ``direct_plan`` picks them, sharing
one padded copy of dz), _conv3d.pyx for 3-D. Each pass works a few images at a time, so that
a chunk's patches stay in cache (``_TRAIN_CHUNK_BYTES``, as Conv2D).

Output length along one axis (Keras' rule, the one of TensorFlow and JAX): with ``k`` the
dilated kernel extent ``(kernel - 1) * dilation + 1`` and ``s`` the stride,
    'valid': (n - 1) * s + k + output_padding,   output_padding defaulting to max(s - k, 0)
    'same':  n * s without output_padding, else (n - 1) * s + k % 2 + output_padding
and the windows start ``k - 1 - left`` positions before the output, ``left`` being the
left padding of JAX's conv_transpose for the same arguments.
"""
import collections

import numpy as np

from minidl._core import _conv3d, _convolution
from minidl.layers.base import LAYERS
from minidl.layers.conv_utils import (check_data_format, check_filters, check_input_rank,
                                      check_strides_with_dilation, known_channels,
                                      normalize_padding, normalize_tuple)
from minidl.layers.convolutional import _PatchConvolution
from minidl.layers.data_format import ChannelsFirstMixin

# Geometries kept per layer for inputs of unknown length (one per length seen).
_GEOMETRY_CACHE = 64

# Where the windows of the convolution that a transposed convolution reverses fall, for one
# input size: the input's and output's spatial shapes (2-D images for ranks 1 and 2, volumes
# for rank 3), the kernels' window arguments (the convolution's "image" is this layer's
# output, its window positions this layer's input pixels), whether the patch matrix is the
# output itself, the output sample shape, and (ranks 1 and 2) whether the backward pass runs
# through the direct kernels, and the sample shape of their padded copy (None: none).
_Geometry = collections.namedtuple("_Geometry", ["in_spatial", "out_spatial", "window",
                                                 "pointwise", "output_sample", "direct",
                                                 "padded"])


def transpose_output_length(length, kernel, stride, dilation, padding, output_padding):
    """Output length along one axis and where the windows start (before the output), by
    Keras' rule; None for an input of unknown length.

    Args:
        length: the input's length (or None). kernel, stride, dilation: ints.
        padding: 'valid' or 'same'. output_padding: None or an int below ``stride``.
    Returns:
        ``(output length, pad)``: the convolution that this layer reverses sees ``pad``
        zeros before the output.
    """
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(extent, stride) - extent if output_padding is None else output_padding
        left, right = extent - 1, extent - 1 + extra
    else:
        total = (stride + extent - 2 if output_padding is None
                 else extent + extent % 2 - 2 + output_padding)
        left = min(total // 2 + total % 2, extent - 1)
        right = total - left
    if length is None:
        return None, extent - 1 - left
    return (length - 1) * stride + left + right - extent + 2, extent - 1 - left


def _normalize_output_padding(value, strides, rank, owner):
    """None, or a tuple of ``rank`` ints, each >= 0 and below its stride (Keras' check)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * rank
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(f"{owner} output_padding must be None, an int or a tuple of {rank} "
                            f"ints; received output_padding={value!r}.") from None
        if len(values) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                      for v in values):
            raise ValueError(f"{owner} output_padding must be None, an int or a tuple of "
                             f"{rank} ints; received output_padding={value!r}.")
        values = tuple(int(v) for v in values)
    if any(v < 0 for v in values):
        raise ValueError(f"{owner} output_padding must be >= 0; received "
                         f"output_padding={value!r}.")
    for axis, (extra, stride) in enumerate(zip(values, strides)):
        if extra >= stride:
            raise ValueError(f"{owner}: `output_padding` must be strictly less than `strides` "
                             f"for all dimensions. At dimension {axis}, `output_padding` is "
                             f"{extra} but `strides` is {stride}. Received: "
                             f"output_padding={values}, strides={strides}")
    return values


class _ConvTranspose(_PatchConvolution):
    """The transposed convolution over ``rank`` spatial axes; see Conv2DTranspose for the
    arguments."""

    rank = None
    _layout = None   # for messages, e.g. "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        owner = type(self).__name__
        self.filters = check_filters(filters, owner)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = normalize_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        self.padding = normalize_padding(padding, ("valid", "same"), owner)
        self.output_padding = _normalize_output_padding(output_padding, self.strides,
                                                        self.rank, owner)
        check_strides_with_dilation(self.strides, self.dilation_rate, owner)
        self.data_format = check_data_format(data_format, self)

    # ---- shapes ----

    def _lengths(self, input_shape):
        """(output spatial shape, pads) for a sample shape, checking its rank."""
        check_input_rank(self, input_shape, self.rank, self._layout)
        extras = self.output_padding or (None,) * self.rank
        lengths = [transpose_output_length(n, k, s, d, self.padding, e) for n, k, s, d, e in
                   zip(input_shape[:-1], self.kernel_size, self.strides, self.dilation_rate,
                       extras)]
        out = tuple(o for o, _ in lengths)
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) would give an empty "
                             f"output of spatial shape {out} for inputs of shape "
                             f"{(None,) + tuple(input_shape)}; use larger inputs, "
                             f"padding='valid' or a larger output_padding.")
        return out, tuple(p for _, p in lengths)

    def compute_output_shape(self, input_shape):
        out, _ = self._lengths(tuple(input_shape))
        return out + (self.filters,)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._lengths(input_shape)
        channels = known_channels(self, input_shape)
        self._add_kernel_and_bias(self.kernel_size + (self.filters, channels), self.filters)
        self._patch = int(np.prod(self.kernel_size)) * self.filters   # k... * filters
        self._channels = channels
        self._geometries = {}
        super().build(input_shape)

    def _geo(self, spatial):
        """The geometry for inputs of ``spatial`` size, made once per size."""
        geo = self._geometries.get(spatial)
        if geo is not None:
            return geo
        channels = self._channels
        out, pads = self._lengths(tuple(spatial) + (channels,))
        pointwise = (self._patch == self.filters and all(s == 1 for s in self.strides)
                     and out == tuple(spatial))
        itemsize = np.dtype(self.dtype).itemsize
        if self.rank == 3:
            window = dict(kernel_size=self.kernel_size, strides=self.strides,
                          dilation=self.dilation_rate, pads=pads, out_shape=tuple(spatial))
            in_spatial, out_spatial = tuple(spatial), out
            direct, padded = False, None
        else:
            two_d = lambda t, fill: (fill,) * (2 - self.rank) + tuple(t)   # noqa: E731
            in_spatial, out_spatial = two_d(spatial, 1), two_d(out, 1)
            window = dict(kernel_size=two_d(self.kernel_size, 1),
                          strides=two_d(self.strides, 1), dilation=two_d(self.dilation_rate, 1),
                          pads=two_d(pads, 0), out_hw=in_spatial)
            direct, _, padded = _convolution.direct_plan(
                out_spatial + (self.filters,), channels, itemsize, pointwise, **window)
        geo = _Geometry(in_spatial, out_spatial, window, pointwise, out + (self.filters,),
                        direct, padded)
        if len(self._geometries) >= _GEOMETRY_CACHE:   # lengths vary batch to batch
            self._geometries.clear()
        self._geometries[spatial] = geo
        return geo

    # ---- computation ----

    def _kernel_matrix(self, kernel):
        return kernel.reshape(self._patch, kernel.shape[-1])

    def _patch_rows(self, geo):
        return int(np.prod(geo.in_spatial))   # one row per input pixel

    def _cols(self, ctx, geo, name, n, record):
        """A chunk's patch buffer; None for a pointwise kernel."""
        return None if geo.pointwise else self._patch_buffer(ctx, geo, name, n, record)

    def _forward(self, ctx, x, activate):
        geo = self._geo(x.shape[1:-1])
        n = x.shape[0]
        channels = self._channels
        x_rows = np.ascontiguousarray(x).reshape(n * int(np.prod(geo.in_spatial)), channels)
        rows = n * int(np.prod(geo.out_spatial))
        activation = ctx.activation or self.activation
        record = ctx.record
        if record:
            z, y = self._activation_buffers(ctx, activation, rows, self.filters)
        else:
            z = y = np.empty((rows, self.filters), self.dtype)
        kernel = self._kernel_matrix(self._kernel_array)
        out = z.reshape((n,) + geo.out_spatial + (self.filters,))
        chunk = self._chunk_samples(geo, record)
        dcols = self._cols(ctx, geo, "dcols", n, record)
        if self.rank == 3:
            _conv3d.conv3d_backward(x_rows, kernel, chunk, geo.pointwise, dx=out, dcols=dcols,
                                    **geo.window)
        else:
            _convolution.conv_input_grad(x_rows, kernel, out, dcols, chunk, geo.pointwise,
                                         **geo.window)
        if activate:
            activation.forward_bias(z, self._bias_array, y)
        result = (y if activate else z).reshape((n,) + geo.output_sample)
        if record:
            ctx.x, ctx.z, ctx.y, ctx.y_out, ctx.geo = x_rows, z, y, result, geo
        return result

    def _backward_linear(self, ctx, dz, need_input_grad):
        geo = ctx.geo
        x_rows = ctx.x
        n = x_rows.shape[0] // max(int(np.prod(geo.in_spatial)), 1)
        channels = x_rows.shape[1]
        dz_images = dz.reshape((n,) + geo.out_spatial + (self.filters,))
        kernel = self._kernel_matrix(self._kernel_array)
        d_kernel = self._kernel_matrix(ctx.grads[0])
        chunk = self._chunk_samples(geo, True)
        cols = self._cols(ctx, geo, "cols", n, True)
        dx = ctx.buffers.get("dx", x_rows.shape[0], (channels,)) if need_input_grad else None
        if self.rank == 3:
            if dx is not None:
                _conv3d.conv3d_forward(dz_images, kernel, dx, cols, chunk, geo.pointwise,
                                       rows=x_rows, d_kernel=d_kernel, **geo.window)
            else:
                _conv3d.conv3d_backward(x_rows, kernel, chunk, geo.pointwise, x=dz_images,
                                        d_kernel=d_kernel, cols=cols, **geo.window)
        else:
            # Both passes read dz's windows: the direct kernels' padded copy of dz, made by
            # the first, serves the second.
            padded = (ctx.buffers.get("padded", n, geo.padded)
                      if geo.direct and geo.padded is not None else None)
            direct = None if geo.direct else False
            if dx is not None:
                _convolution.conv_train_forward(dz_images, kernel, dx, cols, chunk,
                                                geo.pointwise, padded=padded, direct=direct,
                                                narrow=True, **geo.window)
            _convolution.conv_train_backward(
                dz_images, x_rows, kernel, d_kernel, None, cols, None, chunk, geo.pointwise,
                padded=padded, padded_ready=dx is not None and padded is not None,
                direct=direct, narrow=True, **geo.window)
        if dx is None:
            return None
        return dx.reshape((n,) + geo.in_spatial[len(geo.in_spatial) - self.rank:] +
                          (channels,))

    def get_config(self):
        config = super().get_config()
        return {**config, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "output_padding": (None if self.output_padding is None
                                   else list(self.output_padding)),
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate)}


@LAYERS.register("Convolution2DTranspose")
class Conv2DTranspose(ChannelsFirstMixin, _ConvTranspose):
    """2-D transposed convolution (sometimes called deconvolution): the gradient of a
    convolution with respect to its input, used to upsample, as in the decoder of an
    autoencoder or the generator of a GAN.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window's height and width.
        strides: int or tuple of 2 ints (default 1): the upsampling factor.
        padding: 'valid' (default) or 'same' (output ``input * strides`` long).
        output_padding: None (default: the output length follows from ``padding``), or an
            int or tuple of 2 ints, each below its stride: the extra rows / columns of
            output, after the last window.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int or tuple of 2 ints (default 1); dilation > 1 needs strides 1,
            as in Keras.
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the (kh, kw, filters, channels) kernel (default
            'glorot_uniform').
        bias_initializer: initializer of the bias (default 'zeros').
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in :class:`Conv2D`.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, new_height, new_width, filters)``: see the module docstring
        (``minidl.layers.conv_transpose``); 'same' without output_padding gives ``height *
        strides``.

    Example:
        >>> Sequential([Input((7, 7, 32)),
        ...             Conv2DTranspose(32, 3, strides=2, padding="same",
        ...                             activation="relu")])   # -> (None, 14, 14, 32)
    """

    rank = 2
    _layout = "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)


@LAYERS.register("Convolution1DTranspose")
class Conv1DTranspose(ChannelsFirstMixin, _ConvTranspose):
    """1-D transposed convolution: the gradient of a Conv1D with respect to its input.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int (or tuple of one int), the window's length.
        strides: int (default 1). padding: 'valid' (default) or 'same'.
        output_padding: None or an int below ``strides``.
        data_format: None or 'channels_last'. dilation_rate: int (default 1).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
            :class:`Conv2DTranspose`; the kernel has shape (kernel_size, filters, channels).

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, new_steps, filters)``, with the rule of :class:`Conv2DTranspose`.
    """

    rank = 1
    _layout = "(batch, steps, channels)"


@LAYERS.register("Convolution3DTranspose")
class Conv3DTranspose(ChannelsFirstMixin, _ConvTranspose):
    """3-D transposed convolution: the gradient of a Conv3D with respect to its input.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int or tuple of 3 ints (depth, height, width).
        strides: int or tuple of 3 ints (default 1). padding: 'valid' (default) or 'same'.
        output_padding: None, or an int or tuple of 3 ints, each below its stride.
        data_format: None or 'channels_last'. dilation_rate: int or tuple of 3 ints.
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
            :class:`Conv2DTranspose`; the kernel has shape (kd, kh, kw, filters, channels).

    Input shape:
        5-D ``(batch, depth, height, width, channels)``.
    Output shape:
        5-D ``(batch, new_depth, new_height, new_width, filters)``, with the rule of
        :class:`Conv2DTranspose` along each axis.
    """

    rank = 3
    _layout = "(batch, depth, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid",
                 data_format=None, output_padding=None, dilation_rate=(1, 1, 1),
                 activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         output_padding=output_padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation,
                         use_bias=use_bias, **kwargs)


# Keras' other names of these layers (the registry knows them too, for loading).
Convolution1DTranspose = Conv1DTranspose
Convolution2DTranspose = Conv2DTranspose
Convolution3DTranspose = Conv3DTranspose
