"""Pooling layers (channels_last; channels_first transposes at the boundary,
layers/data_format.py): max and average over windows, and over whole samples.

MaxPooling keeps, for each output value, the index of the input value it came from; the
backward pass scatters the gradient there (the first maximum of a window wins ties, as in
TF and PyTorch). AveragePooling with padding='same' divides by the number of window
positions inside the input, as Keras does. The 1-D layers run the 2-D kernels on samples
one row high. Buffers come from the call's context and are reused from step to step.

The 3-D layers (MaxPooling3D, AveragePooling3D) run kernels of their own
(``minidl._core._pooling3d``) with the same rules; their max gradient goes through the
shared ``scatter_argmax``. The global layers of every rank flatten the spatial axes.

A 1-D or 2-D max pooling right after a layer ending in a ReLU trains fused with it
(``models.rewrites.relu_then_max_pool``): ``backward_through_relu`` gives the gradient of
that layer's pre-activation in one scatter.
"""
import numpy as np

from minidl._core import _pooling as kernels
from minidl._core import _pooling3d as kernels3d
from minidl.layers.base import LAYERS, Layer
from minidl.layers.data_format import ChannelsFirstMixin
from minidl.layers.conv_utils import (check_data_format, check_input_rank, known_channels,
                                      normalize_padding, normalize_tuple, window_geometry)
from minidl.utils.checks import check_bool


class _Pooling(Layer):
    """Max or average over windows of ``rank`` spatial axes; see MaxPooling2D."""

    rank = None
    _layout = None
    _max = None   # True: max pooling; False: average pooling

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = (self.pool_size if strides is None else
                        normalize_tuple(strides, self.rank, "strides", owner))
        self.padding = normalize_padding(padding, ("valid", "same"), owner)
        self.data_format = check_data_format(data_format, self)

    def _geometry(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return window_geometry(self, input_shape, input_shape[:-1], self.pool_size,
                               self.strides, (1,) * self.rank, self.padding, "pool")

    def compute_output_shape(self, input_shape):
        out, _ = self._geometry(tuple(input_shape))
        return out + (input_shape[-1],)

    def _check_input(self, input_shape):
        """ValueError unless windows fit inputs of ``input_shape`` with known channels."""
        self._geometry(input_shape)
        known_channels(self, input_shape)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_input(input_shape)
        self._geometries = {}
        super().build(input_shape)
        known = None if None in input_shape else self._geo(input_shape)
        self._image, self._out_image, self._window, self._output_sample = (
            (None,) * 4 if known is None else known)

    def _geo(self, sample_shape):
        """(image, pooled image, window arguments, output sample shape) on 2-D images for
        samples of ``sample_shape``; made once per shape (a None size allows any)."""
        geo = self._geometries.get(sample_shape)
        if geo is None:
            out, pads = self._geometry(sample_shape)
            two_d = lambda t, fill: (fill,) * (2 - self.rank) + tuple(t)   # noqa: E731
            channels = (sample_shape[-1],)
            geo = (two_d(sample_shape[:-1], 1) + channels, two_d(out, 1) + channels,
                   dict(pool_size=two_d(self.pool_size, 1), strides=two_d(self.strides, 1),
                        pads=two_d(pads, 0)), out + channels)
            if len(self._geometries) >= 64:   # lengths that vary from batch to batch
                self._geometries.clear()
            self._geometries[sample_shape] = geo
        return geo

    @property
    def pool_window(self):
        """The (rows, columns) window on 2-D images (1-D layers: one row high)."""
        return None if self._window is None else self._window["pool_size"]

    @property
    def pooled_image(self):
        """The pooled sample as a 2-D image: (rows, columns, channels)."""
        return self._out_image

    @property
    def output_sample_shape(self):
        return self._output_sample

    def forward(self, ctx, x, training=False):
        n = x.shape[0]
        image, out_image, window, output_sample = geo = self._geo(x.shape[1:])
        x = np.ascontiguousarray(x).reshape((n,) + image)
        if ctx.record:
            y = ctx.buffers.get("y", n, out_image)
        else:
            y = np.empty((n,) + out_image, self.dtype)
        if self._max:
            argmax = (ctx.buffers.get("argmax", n, out_image, np.intc) if ctx.record
                      else np.empty(y.shape, np.intc))
            kernels.max_pool_forward(x, y, argmax, **window)
            if ctx.record:
                ctx.argmax, ctx.y = argmax, y
        else:
            kernels.avg_pool_forward(x, y, **window)
        if ctx.record:
            ctx.geo = geo
        return y.reshape((n,) + output_sample)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n = dy.shape[0]
        image, out_image, window, _ = ctx.geo
        dy = np.ascontiguousarray(dy).reshape((n,) + out_image)
        dx = ctx.buffers.get("dx", n, image)
        if self._max:
            self._scatter(ctx, dy, dx, gate=None)
        else:
            kernels.avg_pool_backward(dy, dx, **window)
        return dx.reshape((n,) + image[2 - self.rank:])

    def _scatter(self, ctx, dy, dx, gate):
        kernels.max_pool_backward(dy, ctx.argmax, dx, gate=gate, **ctx.geo[2])

    def backward_through_relu(self, ctx, dy):
        """The gradient with respect to ``z`` when this (max) pooling's input was
        ``relu(z)``: the pooled gradient scattered to each window's maximum where the
        maximum is positive. Bit for bit what ``backward`` followed by the ReLU's backward
        gives."""
        n = dy.shape[0]
        image, out_image = ctx.geo[:2]
        dy = np.ascontiguousarray(dy).reshape((n,) + out_image)
        dx = ctx.buffers.get("dx", n, image)
        self._scatter(ctx, dy, dx, gate=ctx.y)
        return dx.reshape((n,) + image[2 - self.rank:])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides),
                      padding=self.padding, data_format=self.data_format)
        return config


class _ThroughReLU:
    """Max pooling, which may follow a layer ending in a ReLU as one fused step
    (``models.rewrites.relu_then_max_pool``, through ``backward_through_relu``)."""

    pools_max_after_relu = True


_POOLING_DOC = """{kind} pooling over {what}: each output is the {op} of a window of the input.

    Args:
        pool_size: {size_doc}
        strides: {stride_doc} None (default) means pool_size: windows that do not overlap.
        padding: 'valid' (default; windows inside the input only) or 'same' (windows also
            past the edges, so that the output has ``ceil(input / strides)`` positions;
            {pad_doc}).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        {input_shape}
    Output shape:
        {output_shape}; with 'valid', ``new = (size - pool) // stride + 1``.
"""


@LAYERS.register("MaxPool2D")
class MaxPooling2D(ChannelsFirstMixin, _ThroughReLU, _Pooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", True

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@LAYERS.register("AvgPool2D")
class AveragePooling2D(ChannelsFirstMixin, _Pooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", False

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@LAYERS.register("MaxPool1D")
class MaxPooling1D(ChannelsFirstMixin, _ThroughReLU, _Pooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", True


@LAYERS.register("AvgPool1D")
class AveragePooling1D(ChannelsFirstMixin, _Pooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", False


for _cls, _kind, _op, _pad in [(MaxPooling2D, "Max", "maximum", "the padding never wins"),
                               (AveragePooling2D, "Average", "mean",
                                "the mean is over the positions inside the input"),
                               (MaxPooling1D, "Max", "maximum", "the padding never wins"),
                               (AveragePooling1D, "Average", "mean",
                                "the mean is over the positions inside the input")]:
    _two = _cls.rank == 2
    _cls.__doc__ = _POOLING_DOC.format(
        kind=_kind, what="the height and width of images" if _two else "the steps of sequences",
        op=_op, pad_doc=_pad,
        size_doc="int or tuple of 2 ints, the window's height and width (default (2, 2))."
        if _two else "int, the window's length (default 2).",
        stride_doc="int or tuple of 2 ints, or None." if _two else "int, or None.",
        input_shape="4-D ``(batch, height, width, channels)``." if _two else
        "3-D ``(batch, steps, channels)``.",
        output_shape="4-D ``(batch, new_height, new_width, channels)``" if _two else
        "3-D ``(batch, new_steps, channels)``")


class _Pooling3D(_Pooling):
    """Max or average over windows of volumes, on kernels of their own
    (``_core._pooling3d``); see MaxPooling3D. The arguments, shapes and config are
    _Pooling's."""

    rank, _layout = 3, "(batch, dim1, dim2, dim3, channels)"

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_input(input_shape)
        Layer.build(self, input_shape)

    def forward(self, ctx, x, training=False):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        n = x.shape[0]
        out, pads = self._geometry(x.shape[1:])
        out_sample = out + x.shape[-1:]
        window = dict(pool_size=self.pool_size, strides=self.strides, pads=pads)
        y = (ctx.buffers.get("y", n, out_sample) if ctx.record
             else np.empty((n,) + out_sample, self.dtype))
        if self._max:
            argmax = (ctx.buffers.get("argmax", n, out_sample, np.intc) if ctx.record
                      else np.empty(y.shape, np.intc))
            kernels3d.max_pool3d_forward(x, y, argmax, **window)
            if ctx.record:
                ctx.argmax, ctx.y = argmax, y
        else:
            kernels3d.avg_pool3d_forward(x, y, **window)
        if ctx.record:
            ctx.in_sample, ctx.window = x.shape[1:], window
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n = dy.shape[0]
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx = ctx.buffers.get("dx", n, ctx.in_sample)
        if self._max:
            per_out = int(np.prod(dy.shape[1:]))   # (reshape(n, -1) fails for n = 0)
            kernels.scatter_argmax(dy.reshape(n, per_out), ctx.argmax.reshape(n, per_out),
                                   dx.reshape(n, int(np.prod(ctx.in_sample))))
        else:
            kernels3d.avg_pool3d_backward(dy, dx, **ctx.window)
        return dx

    # (no fused first-layer path: rewrites.relu_then_max_pool, conv_pool.c)
    pool_window = pooled_image = output_sample_shape = None

    def backward_through_relu(self, ctx, dy):
        """As ``_Pooling.backward_through_relu`` (max pooling only)."""
        n = dy.shape[0]
        dx = ctx.buffers.get("dx", n, ctx.in_sample)
        per_out, per_in = int(np.prod(ctx.y.shape[1:])), int(np.prod(ctx.in_sample))
        kernels.scatter_argmax(np.ascontiguousarray(dy, dtype=self.dtype).reshape(n, per_out),
                               ctx.argmax.reshape(n, per_out), dx.reshape(n, per_in),
                               ctx.y.reshape(n, per_out))
        return dx


@LAYERS.register("MaxPool3D")
class MaxPooling3D(ChannelsFirstMixin, _ThroughReLU, _Pooling3D):
    _max = True


@LAYERS.register("AvgPool3D")
class AveragePooling3D(ChannelsFirstMixin, _Pooling3D):
    _max = False


for _cls, _kind, _op, _pad in [(MaxPooling3D, "Max", "maximum", "the padding never wins"),
                               (AveragePooling3D, "Average", "mean",
                                "the mean is over the positions inside the input")]:
    _cls.__doc__ = _POOLING_DOC.format(
        kind=_kind, what="the three spatial axes of volumes", op=_op, pad_doc=_pad,
        size_doc="int or tuple of 3 ints, the window's extent along each spatial axis "
                 "(default (2, 2, 2)).",
        stride_doc="int or tuple of 3 ints, or None.",
        input_shape="5-D ``(batch, dim1, dim2, dim3, channels)``.",
        output_shape="5-D ``(batch, new_dim1, new_dim2, new_dim3, channels)``")


class _GlobalPooling(Layer):
    """Max or average over every spatial position of a sample; see GlobalAveragePooling2D."""

    rank = None
    _layout = None
    _max = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, self)
        self.keepdims = check_bool(type(self).__name__, "keepdims", keepdims)

    def compute_output_shape(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return ((1,) * self.rank if self.keepdims else ()) + (input_shape[-1],)

    def build(self, input_shape):
        self._output_sample = self.compute_output_shape(tuple(input_shape))
        known_channels(self, input_shape)
        self._out_image = (input_shape[-1],)
        super().build(input_shape)

    pool_window = None   # (no fused first-layer path: rewrites.relu_then_max_pool)

    def forward(self, ctx, x, training=False):
        n, channels = x.shape[0], x.shape[-1]
        positions = int(np.prod(x.shape[1:-1]))
        if ctx.record:
            ctx.in_shape = x.shape[1:]
        x = np.ascontiguousarray(x).reshape(n, positions, channels)
        y = (ctx.buffers.get("y", n, (channels,)) if ctx.record
             else np.empty((n, channels), self.dtype))
        if self._max:
            argmax = (ctx.buffers.get("argmax", n, (channels,), np.intc) if ctx.record else
                      np.empty((n, channels), np.intc))
            kernels.global_max_pool(x, y, argmax)
            if ctx.record:
                ctx.argmax, ctx.y = argmax, y
        else:
            kernels.global_avg_pool(x, y)
        return y.reshape((n,) + self._output_sample)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n = dy.shape[0]
        channels = ctx.in_shape[-1]
        positions = int(np.prod(ctx.in_shape[:-1]))
        dy = np.ascontiguousarray(dy).reshape(n, channels)
        dx = ctx.buffers.get("dx", n, ctx.in_shape)
        if self._max:
            self._scatter(ctx, dy, dx, gate=None)
        else:
            np.multiply(dy.reshape(n, 1, channels), 1.0 / positions,
                        out=dx.reshape(n, positions, channels))
        return dx

    def _scatter(self, ctx, dy, dx, gate):
        n, channels = dy.shape[0], self._out_image[0]
        kernels.scatter_argmax(dy.reshape(n, channels), ctx.argmax,
                               dx.reshape(n, int(np.prod(dx.shape[1:]))), gate)

    def backward_through_relu(self, ctx, dy):
        """As ``_Pooling.backward_through_relu``, for the global maximum."""
        n = dy.shape[0]
        dy = np.ascontiguousarray(dy).reshape(n, self._out_image[0])
        dx = ctx.buffers.get("dx", n, ctx.in_shape)
        self._scatter(ctx, dy, dx, gate=ctx.y)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


_GLOBAL_DOC = """Global {kind} pooling: the {op} of each channel over all {what}.

    Args:
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        keepdims: keep the spatial axes, with length 1 (default False).

    Input shape:
        {input_shape}
    Output shape:
        2-D ``(batch, channels)``, or {kept} with keepdims.
"""


@LAYERS.register("GlobalMaxPool2D")
class GlobalMaxPooling2D(ChannelsFirstMixin, _ThroughReLU, _GlobalPooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", True


@LAYERS.register("GlobalAvgPool2D")
class GlobalAveragePooling2D(ChannelsFirstMixin, _GlobalPooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", False


@LAYERS.register("GlobalMaxPool1D")
class GlobalMaxPooling1D(ChannelsFirstMixin, _ThroughReLU, _GlobalPooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", True


class _MaskedAveragePooling1D(_GlobalPooling):
    """The mean over steps, of the unmasked steps only when the input has a mask."""

    # With a mask (``ctx.mask``: bool (batch, steps), True where a step holds data), the mean
    # is over the unmasked steps only, as in Keras: ``sum(where(mask, x, 0)) / sum(mask)``.
    # A sample whose steps are all masked gives zeros (Keras: 0 / 0, NaN).
    supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def forward(self, ctx, x, training=False):
        mask = getattr(ctx, "mask", None)
        if mask is None:
            ctx.step_mask = None
            return super().forward(ctx, x, training)
        n, steps = x.shape[:2]
        mask = np.asarray(mask)
        if mask.shape != (n, steps):
            raise ValueError(f"Layer '{self.name}' (GlobalAveragePooling1D) takes a mask of "
                             f"shape (batch, steps) = {(n, steps)}; received a mask of shape "
                             f"{mask.shape}.")
        keep = mask.astype(bool)[:, :, None]
        y = (ctx.buffers.get("y", n, x.shape[2:]) if ctx.record
             else np.empty((n,) + x.shape[2:], self.dtype))
        np.sum(np.where(keep, x, 0), axis=1, out=y)
        counts = np.maximum(keep.sum(axis=1, dtype=np.intp), 1).astype(y.dtype)
        np.divide(y, counts, out=y)
        if ctx.record:
            ctx.step_mask, ctx.counts, ctx.in_shape = keep, counts, x.shape[1:]
        return y.reshape((n,) + self._output_sample)

    def backward(self, ctx, dy, need_input_grad=True):
        if ctx.step_mask is None:
            return super().backward(ctx, dy, need_input_grad)
        if not need_input_grad:
            return None
        n = dy.shape[0]
        dx = ctx.buffers.get("dx", n, ctx.in_shape)
        share = dy.reshape(n, 1, -1) / ctx.counts[:, None, :]
        return np.multiply(share, ctx.step_mask, out=dx)


@LAYERS.register("GlobalAvgPool1D")
class GlobalAveragePooling1D(ChannelsFirstMixin, _MaskedAveragePooling1D):
    rank, _layout, _max = 1, "(batch, steps, channels)", False


@LAYERS.register("GlobalMaxPool3D")
class GlobalMaxPooling3D(ChannelsFirstMixin, _ThroughReLU, _GlobalPooling):
    rank, _layout, _max = 3, "(batch, dim1, dim2, dim3, channels)", True


@LAYERS.register("GlobalAvgPool3D")
class GlobalAveragePooling3D(ChannelsFirstMixin, _GlobalPooling):
    rank, _layout, _max = 3, "(batch, dim1, dim2, dim3, channels)", False


_GLOBAL_SHAPES = {
    1: ("steps of a sequence", "3-D ``(batch, steps, channels)``.",
        "``(batch, 1, channels)``"),
    2: ("positions of an image", "4-D ``(batch, height, width, channels)``.",
        "``(batch, 1, 1, channels)``"),
    3: ("positions of a volume", "5-D ``(batch, dim1, dim2, dim3, channels)``.",
        "``(batch, 1, 1, 1, channels)``")}
for _cls in (GlobalMaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling1D,
             GlobalAveragePooling1D, GlobalMaxPooling3D, GlobalAveragePooling3D):
    _what, _input_shape, _kept = _GLOBAL_SHAPES[_cls.rank]
    _cls.__doc__ = _GLOBAL_DOC.format(
        kind="max" if _cls._max else "average", op="maximum" if _cls._max else "mean",
        what=_what, input_shape=_input_shape, kept=_kept)

# Keras' short names.
MaxPool2D, AvgPool2D, MaxPool1D, AvgPool1D = (MaxPooling2D, AveragePooling2D, MaxPooling1D,
                                              AveragePooling1D)
GlobalMaxPool2D, GlobalAvgPool2D = GlobalMaxPooling2D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalAvgPool1D = GlobalMaxPooling1D, GlobalAveragePooling1D
MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D
GlobalMaxPool3D, GlobalAvgPool3D = GlobalMaxPooling3D, GlobalAveragePooling3D
