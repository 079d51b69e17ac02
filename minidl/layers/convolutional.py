"""Convolution layers: Conv2D and Conv1D (channels_last; channels_first transposes at the
boundary, layers/data_format.py), on the core's GEMM.

One training step of a convolution with a (kh, kw, c, filters) kernel K, viewed as a
(kh * kw * c, filters) matrix:
    forward:  cols = im2col(x)              every receptive field as one row
              z = cols @ K                  (GEMM into a reused buffer)
              y = f(z + b)                  (one fused pass, as in Dense)
    backward: dz = dy * f'(z), db = sum(dz) (one fused pass)
              dK = cols^T @ dz              (GEMM reading cols transposed through strides)
              dx = col2im(dz @ K^T)         (GEMM, then a scatter-add; skipped for the
                                             model's first layer)
A 1x1 convolution with stride 1 and no padding needs no packing: cols is x itself. Most
others run without cols (``_convolution.direct_plan``; csrc/conv_direct.c): the same bits
computed from the image itself, read from a zero-padded copy of the batch that the forward
pass makes and the backward pass reuses; and without the patch gradient either where the
channels fill whole vectors and the rows are wide. In training, a model's first layer with
few taps and a ReLU, followed by a max pooling, runs fused with the pooling without im2col
or GEMM (``forward_max_pool``, ``_conv_pool``; see ``_DIRECT_MAX_PATCH`` and
csrc/conv_pool.c).
Conv1D is Conv2D on images one row high. Every buffer belongs to the layer and is reused
from step to step; inference packs at most ``_INFERENCE_COLS`` values at a time, so that
``predict`` on many images never builds a huge patch matrix.

Grouped convolutions (``groups > 1``, Keras' kernel (k..., channels / groups, filters)): group
g convolves its own channels with filters [g * f, (g + 1) * f) of the kernel, f = filters /
groups. Each group runs as a convolution of its own through the same kernels (its channels
copied out contiguous, its patches packed and multiplied by its GEMM, or the direct path where
``direct_plan`` picks it for the group's shapes), its output and gradients written into the
group's columns. A group's patch matrix is a group's size, so the per-group GEMMs do exactly
the useful work; the copies cost a pass over x and dx, small beside the GEMMs. (Depthwise
convolutions, one channel per group, have their own kernels: DepthwiseConv2D.)
"""
import collections

import numpy as np

from minidl._core import _conv_pool, _convolution
from minidl._core._backend import get_num_threads
from minidl.layers.base import LAYERS
from minidl.layers.conv_utils import (check_data_format, check_filters, check_input_rank,
                                      known_channels, normalize_padding, normalize_tuple,
                                      window_geometry)
from minidl.layers.core import AffineLayer
from minidl.layers.data_format import ChannelsFirstMixin

# Training works through a batch a few images at a time, so that a chunk's patch matrix stays
# in the L2 cache from its packing to the GEMM that reads it (and, backward, the patch
# gradient from its GEMM to col2im): measured on a batch of 32 in the reference CNN, this
# made the convolutions about 1.5x faster than one patch matrix for the whole batch, which
# lives in L3. The chunk depends on the shapes only, never on the thread count.
_TRAIN_CHUNK_BYTES = 1 << 19
# Inference packs at most this many patch values at a time (16 MiB in float32).
_INFERENCE_COLS = 1 << 22
# The input gradient alone (after the direct kernels' kernel gradient) takes a chunk per
# thread at a time, up to this many chunks: each layer keeps the buffer (4 MiB at most).
_DX_CHUNKS = 8
# A layer whose patches hold at most this many values (kh * kw * channels: a model's first
# layer on grey or RGB images, or a small one after it), with a ReLU and followed by a max
# pooling, trains through csrc/conv_pool.c, which computes the convolution directly and pools
# it at once: a GEMM over so short a patch is bound by writing its output (4x the pooled one)
# and reading it back, which that path never does. Forward plus weight gradients at batch 32
# with 2x2 pooling (forward_after_relu_layer + backward_to_relu_layer, one thread), GEMM path
# time / direct time: patch 9 (28x28x1, 32 filters) 2.4x, 25 (5x5) 2.1x, 27 (32x32x3) 2.2x,
# 72 (3x3x8) 1.4x, 144 (3x3x16) 1.0x, 288 (3x3x32, 64 filters) 0.8x.
_DIRECT_MAX_PATCH = 128
# Geometries kept per layer for inputs of unknown length (one per length seen).
_GEOMETRY_CACHE = 64

# Where a convolution's windows fall for one input size, on 2-D images: the sample as an
# image (rows, columns, channels), the output's (rows, columns), the kernel window's
# arguments, whether the patch matrix is the input itself, the output sample shape, whether
# the direct kernels run it (no patch matrix) and its input gradient (no patch gradient), and
# the sample shape of the padded copy they read (None: none needed).
_Geometry = collections.namedtuple("_Geometry", ["image", "out_image", "window", "pointwise",
                                                 "output_sample", "direct", "direct_dx",
                                                 "padded"])


class _PatchConvolution(AffineLayer):
    """What the GEMM-based convolutions share (Conv1D/2D, Conv3D, the transposed ones): the
    forward entry points, and patch buffers sized for a chunk of samples at a time. A
    subclass writes ``_forward(ctx, x, activate)`` and ``_patch_rows(geo)``, the rows of
    patch matrix one sample makes for the geometry ``geo``."""

    def _chunk_samples(self, geo, training):
        """Samples per chunk: a chunk's patches fit ``_TRAIN_CHUNK_BYTES`` in training
        (``_INFERENCE_COLS`` values in inference)."""
        budget = (_TRAIN_CHUNK_BYTES // np.dtype(self.dtype).itemsize if training
                  else _INFERENCE_COLS)
        return max(1, budget // max(self._patch_rows(geo) * self._patch, 1))

    def _patch_buffer(self, ctx, geo, name, n, record, chunks=1):
        """A buffer of ``chunks`` chunks' patches (or patch gradients) ``name``: the
        context's in training, reused batch to batch; a new one in inference."""
        rows = min(self._chunk_samples(geo, record) * chunks, max(n, 1)) * self._patch_rows(geo)
        if record:
            return ctx.buffers.get(name, rows, (self._patch,))
        return np.empty((rows, self._patch), self.dtype)

    def forward(self, ctx, x, training=False):
        return self._forward(ctx, x, activate=True)

    def forward_linear(self, ctx, x):
        """Training forward without the bias and the activation, which the max pooling
        after this layer applies to its maxima (``rewrites.relu_then_max_pool``); the
        backward pass is then :meth:`backward_preactivation`."""
        return self._forward(ctx, x, activate=False)


class _Conv(_PatchConvolution):
    """The convolution over ``rank`` spatial axes (1 or 2); see Conv2D for the arguments."""

    rank = None
    _paddings = ("valid", "same")
    _layout = None   # for messages, e.g. "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        owner = type(self).__name__
        filters = check_filters(filters, owner)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups <= 0:
            raise ValueError(f"{owner}: the number of groups must be a positive integer; "
                             f"received groups={groups!r}.")
        if filters % groups != 0:
            raise ValueError(f"{owner}: the number of filters must be evenly divisible by the "
                             f"number of groups; received groups={groups}, filters={filters}.")
        self.filters = int(filters)
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = normalize_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        self.padding = normalize_padding(padding, self._paddings, owner)
        self.data_format = check_data_format(data_format, self)
        self.groups = int(groups)

    # ---- shapes ----

    def _geometry(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return window_geometry(self, input_shape, input_shape[:-1], self.kernel_size,
                               self.strides, self.dilation_rate, self.padding, "kernel")

    def compute_output_shape(self, input_shape):
        out, _ = self._geometry(tuple(input_shape))
        return out + (self.filters,)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._geometry(input_shape)
        channels = known_channels(self, input_shape)
        if channels % self.groups != 0:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): the number of input "
                             f"channels must be evenly divisible by the number of groups; "
                             f"received groups={self.groups}, but the input has {channels} "
                             f"channels (full input shape is {(None,) + input_shape}).")
        self._channels = channels
        group_channels = channels // self.groups
        self._add_kernel_and_bias(self.kernel_size + (group_channels, self.filters),
                                  self.filters)
        # kh * kw * c of one group's patch (the whole patch with groups=1)
        self._patch = int(np.prod(self.kernel_size)) * group_channels
        self._geometries = {}
        super().build(input_shape)
        # With every size known, the geometry of the one input shape, as attributes.
        known = None if None in input_shape else self._geo(input_shape[:-1])
        self._image, self._out_image, self._window, self._pointwise = (
            (None,) * 4 if known is None else
            (known.image, known.out_image, known.window, known.pointwise))

    def _geo(self, spatial):
        """The geometry of samples of ``spatial`` size, on 2-D images (a 1-D sample of
        `steps` is one row high); made once per size (a None size in the input shape
        allows any)."""
        geo = self._geometries.get(spatial)
        if geo is None:
            channels = self._channels
            group_channels = channels // self.groups
            out, pads = self._geometry(tuple(spatial) + (channels,))
            two_d = lambda t, fill: (fill,) * (2 - self.rank) + tuple(t)   # noqa: E731
            out_image = two_d(out, 1)
            window = dict(kernel_size=two_d(self.kernel_size, 1), strides=two_d(self.strides, 1),
                          dilation=two_d(self.dilation_rate, 1), pads=two_d(pads, 0),
                          out_hw=out_image)
            # A 1x1 kernel with stride 1 and no padding: the patch matrix is the input itself.
            pointwise = (self._patch == group_channels and all(s == 1 for s in self.strides)
                         and out == tuple(spatial))
            image = two_d(spatial, 1) + (channels,)
            # The kernels see one group at a time: its channels, its filters.
            direct, direct_dx, padded = _convolution.direct_plan(
                image[:2] + (group_channels,), self.filters // self.groups,
                np.dtype(self.dtype).itemsize, pointwise, **window)
            geo = _Geometry(image, out_image, window, pointwise, out + (self.filters,), direct,
                            direct_dx, padded)
            if len(self._geometries) >= _GEOMETRY_CACHE:   # lengths vary batch to batch
                self._geometries.clear()
            self._geometries[spatial] = geo
        return geo

    # ---- computation ----

    def _kernel_matrix(self, kernel):
        return kernel.reshape(self._patch, self.filters)

    def _patch_rows(self, geo):
        return geo.out_image[0] * geo.out_image[1]

    def _cols(self, ctx, geo, name, n, record):
        """The patch buffer ("cols") or patch-gradient buffer ("dcols") of one chunk; None
        for a pointwise kernel, or where the direct kernels need none. The patch gradient
        of a layer whose kernel gradient the direct kernels compute holds a chunk per
        thread (up to ``_DX_CHUNKS``): conv_train_backward then takes that many images at a
        time for the input gradient alone (the same bits for any chunking), so that each
        product and col2im pass has work for every thread."""
        if geo.pointwise or (geo.direct_dx if name == "dcols" else geo.direct):
            return None
        chunks = (min(get_num_threads(), _DX_CHUNKS) if name == "dcols" and geo.direct
                  and record else 1)
        return self._patch_buffer(ctx, geo, name, n, record, chunks)

    def _forward(self, ctx, x, activate):
        geo = self._geo(x.shape[1:-1])
        x = np.ascontiguousarray(x).reshape((x.shape[0],) + geo.image)
        n = x.shape[0]
        rows = n * geo.out_image[0] * geo.out_image[1]
        activation = ctx.activation or self.activation
        record = ctx.record
        if record:
            z, y = self._activation_buffers(ctx, activation, rows, self.filters)
        else:
            # Inference allocates (concurrent predict calls share nothing) and applies
            # the activation in place.
            z = y = np.empty((rows, self.filters), self.dtype)
        if self.groups > 1:
            self._grouped_forward(ctx, x, z, geo, record)
        else:
            # The direct kernels' padded copy of x: kept for the backward pass in training
            # (inference lets the kernel allocate one per call).
            padded = (ctx.buffers.get("padded", n, geo.padded)
                      if record and geo.padded is not None else None)
            _convolution.conv_train_forward(x, self._kernel_matrix(self._kernel_array), z,
                                            self._cols(ctx, geo, "cols", n, record),
                                            self._chunk_samples(geo, record), geo.pointwise,
                                            padded=padded, direct=None if geo.direct else False,
                                            narrow=True, **geo.window)
            if record:
                ctx.padded = padded
        if activate:
            activation.forward_bias(z, self._bias_array, y)
        out = (y if activate else z).reshape((n,) + geo.output_sample)
        if record:
            ctx.x, ctx.z, ctx.y, ctx.y_out, ctx.geo = x, z, y, out, geo
        return out

    def _group_parts(self, kernel, group):
        """Group ``group``'s channel slice of the input and its (patch, filters / groups)
        kernel matrix (a contiguous copy of its filters' columns)."""
        per_group, group_filters = self._channels // self.groups, \
            self.filters // self.groups
        channels = slice(group * per_group, (group + 1) * per_group)
        filters = slice(group * group_filters, (group + 1) * group_filters)
        matrix = np.ascontiguousarray(kernel.reshape(self._patch, self.filters)[:, filters])
        return channels, filters, matrix

    def _grouped_forward(self, ctx, x, z, geo, record):
        """z's columns, group by group: each group a convolution of its own channels (kept,
        with its padded copy, for the backward pass in training)."""
        n = x.shape[0]
        group_image = geo.image[:2] + (geo.image[2] // self.groups,)
        if record:
            ctx.group_inputs, ctx.group_padded = [], []
        for group in range(self.groups):
            channels, filters, matrix = self._group_parts(self._kernel_array, group)
            if record:
                xg = ctx.buffers.get(f"x_group{group}", n, group_image)
                np.copyto(xg, x[..., channels])
                zg = ctx.buffers.get("z_group", z.shape[0], (matrix.shape[1],))
                padded = (ctx.buffers.get(f"padded{group}", n, geo.padded)
                          if geo.padded is not None else None)
                ctx.group_inputs.append(xg)
                ctx.group_padded.append(padded)
            else:
                xg = np.ascontiguousarray(x[..., channels])
                zg = np.empty((z.shape[0], matrix.shape[1]), self.dtype)
                padded = None
            _convolution.conv_train_forward(xg, matrix, zg,
                                            self._cols(ctx, geo, "cols", n, record),
                                            self._chunk_samples(geo, record), geo.pointwise,
                                            padded=padded, direct=None if geo.direct else False,
                                            **geo.window)
            z[:, filters] = zg

    def can_pool_directly(self, pool):
        """Whether :meth:`forward_max_pool` can serve this layer (with a ReLU) followed by
        ``pool`` (a max pooling whose windows tile the output: strides equal to the pool
        size, 'valid', or 'same' where it pads nothing)."""
        return (self.groups == 1 and self._patch <= _DIRECT_MAX_PATCH
                and self._image is not None and (pool.padding == "valid" or pool.pooled_image is not None and all(
                    pooled * size == rows for pooled, size, rows in
                    zip(pool.pooled_image, pool.pool_window, self._out_image)))
                and self.activation.kernel_params()[0] == "relu"
                and tuple(pool.strides) == tuple(pool.pool_size)
                and pool.built_input_shape == self._output_sample())

    def forward_max_pool(self, ctx, x, pool_size, y, argmax):
        """Training forward of this layer and the max pooling after it, without forming the
        un-pooled output: ``y`` and ``argmax`` (n, pooled..., filters) get what
        ``MaxPooling.forward(self.forward(x))`` gives (the same bits: the maximum of each
        window of the linear part, then the bias and the ReLU on the maxima).
        :meth:`backward_max_pool` is the backward pass.

        Args:
            x: (batch,) + the input shape. pool_size: the pooling's (rows, columns)
                window, also its strides.
            y, argmax: C-contiguous (batch, pooled rows, pooled columns, filters) arrays.
        """
        x = np.ascontiguousarray(x).reshape((x.shape[0],) + self._image)
        _conv_pool.conv_max_pool_forward(x, self._kernel_matrix(self._kernel_array), y, argmax,
                                         pool_size=pool_size, bias=self._bias_array, relu=True,
                                         **self._window)
        ctx.x = x

    def backward_max_pool(self, ctx, dy, argmax, gate, pool_size):
        """Gradients of the kernel and the bias (in ``grads``) through
        :meth:`forward_max_pool` followed by the bias and a ReLU: ``dy`` is the gradient of
        the pooled ``relu(y + bias)``, ``gate`` that output, ``argmax`` the forward's. The
        input gradient is not computed: this serves a model's first trainable layer."""
        _conv_pool.conv_max_pool_backward(ctx.x, dy, argmax, gate,
                                          self._kernel_matrix(ctx.grads[0]),
                                          ctx.grads[1] if self.use_bias else None,
                                          pool_size=pool_size, **self._window)

    def _output_sample(self):
        return self._out_image[2 - self.rank:] + (self.filters,)

    def _backward_linear(self, ctx, dz, need_input_grad):
        n, geo = ctx.x.shape[0], ctx.geo
        dx = ctx.buffers.get("dx", n, geo.image) if need_input_grad else None
        if self.groups > 1:
            self._grouped_backward(ctx, dz, dx)
            return None if dx is None else dx.reshape((n,) + geo.image[2 - self.rank:])
        _convolution.conv_train_backward(
            ctx.x, dz, self._kernel_matrix(self._kernel_array), self._kernel_matrix(ctx.grads[0]),
            dx, self._cols(ctx, geo, "cols", n, True),
            self._cols(ctx, geo, "dcols", n, True) if need_input_grad else None,
            self._chunk_samples(geo, True), geo.pointwise, padded=ctx.padded,
            padded_ready=ctx.padded is not None, direct=None if geo.direct else False,
            narrow=True, **geo.window)
        return None if dx is None else dx.reshape((n,) + geo.image[2 - self.rank:])

    def _grouped_backward(self, ctx, dz, dx):
        """The gradients of :meth:`_grouped_forward`, group by group, into the kernel
        gradient's columns and dx's channels."""
        geo, n = ctx.geo, ctx.x.shape[0]
        d_kernel = ctx.grads[0].reshape(self._patch, self.filters)
        for group in range(self.groups):
            channels, filters, matrix = self._group_parts(self._kernel_array, group)
            xg = ctx.group_inputs[group]
            dzg = ctx.buffers.get("dz_group", dz.shape[0], (matrix.shape[1],))
            np.copyto(dzg, dz[:, filters])
            dkg = ctx.buffers.get("dkernel_group", matrix.shape[0], (matrix.shape[1],))
            dxg = ctx.buffers.get("dx_group", n, xg.shape[1:]) if dx is not None else None
            _convolution.conv_train_backward(
                xg, dzg, matrix, dkg, dxg, self._cols(ctx, geo, "cols", n, True),
                self._cols(ctx, geo, "dcols", n, True) if dx is not None else None,
                self._chunk_samples(geo, True), geo.pointwise, padded=ctx.group_padded[group],
                padded_ready=ctx.group_padded[group] is not None,
                direct=None if geo.direct else False, **geo.window)
            d_kernel[:, filters] = dkg
            if dx is not None:
                dx[..., channels] = dxg

    def get_config(self):
        config = super().get_config()
        return {**config, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": list(self.dilation_rate),
                "groups": self.groups}


@LAYERS.register("Convolution2D")
class Conv2D(ChannelsFirstMixin, _Conv):
    """2-D convolution over images: ``output = activation(conv2d(input, kernel) + bias)``.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int or tuple of 2 ints, the window's height and width.
        strides: int or tuple of 2 ints (default 1).
        padding: 'valid' (no padding, the default) or 'same' (zeros around the input so
            that the output has ``ceil(input / strides)`` rows and columns).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int or tuple of 2 ints: the spacing between the kernel's taps
            (default 1). Unlike Keras, it may be combined with strides > 1.
        groups: positive int dividing both the input channels and ``filters`` (default 1):
            the channels are split into ``groups`` groups, each convolved with its own
            ``filters / groups`` filters; the kernel is then (kh, kw, channels / groups,
            filters).
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias per filter.
        kernel_initializer: initializer of the (kh, kw, channels, filters) kernel
            (default 'glorot_uniform', with fans computed over the receptive field).
        bias_initializer: initializer of the bias (default 'zeros').
        kernel_regularizer, bias_regularizer: optional regularizers of the weights.
        activity_regularizer: optional regularizer of the output (penalty divided by the
            batch size, as in Keras).
        kernel_constraint, bias_constraint: optional constraints of the weights, applied
            after each optimizer update; ``MaxNorm(3.0, axis=[0, 1, 2])`` bounds the norm
            of each filter.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, new_height, new_width, filters)``; with 'valid',
        ``new = (size - (kernel - 1) * dilation - 1) // stride + 1``; with 'same',
        ``new = ceil(size / stride)``.

    Example:
        >>> Sequential([Input((28, 28, 1)), Conv2D(32, 3, activation="relu"),
        ...             MaxPooling2D(), Flatten(), Dense(10, activation="softmax")])
    """

    rank = 2
    _layout = "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, groups=groups,
                         activation=activation, use_bias=use_bias, **kwargs)


@LAYERS.register("Convolution1D")
class Conv1D(ChannelsFirstMixin, _Conv):
    """1-D convolution over sequences: ``output = activation(conv1d(input, kernel) + bias)``.

    Args:
        filters: positive int, the number of output channels.
        kernel_size: int (or tuple of one int), the window's length.
        strides: int (default 1).
        padding: 'valid' (default), 'same', or 'causal' (``(kernel_size - 1) * dilation``
            zeros before the sequence only, so that output step t depends on input steps
            up to t; for temporal models).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        dilation_rate: int (default 1).
        groups: as in :class:`Conv2D`; the kernel is (kernel_size, channels / groups,
            filters).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
            :class:`Conv2D`; the kernel has shape (kernel_size, channels, filters), so
            ``axis=[0, 1]`` constrains each filter.

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, new_steps, filters)``, with the rules of :class:`Conv2D` ('causal'
        gives ``ceil(steps / strides)``).
    """

    rank = 1
    _paddings = ("valid", "same", "causal")
    _layout = "(batch, steps, channels)"
