"""Pooling layers (channels_last): max and average over windows, and over whole samples.

MaxPooling keeps, for each output value, the index of the input value it came from; the
backward pass scatters the gradient there (the first maximum of a window wins ties, as in
TF and PyTorch). AveragePooling with padding='same' divides by the number of window
positions inside the input, as Keras does. The 1-D layers run the 2-D kernels on samples
one row high. Every buffer belongs to the layer and is reused from step to step.
"""
import numpy as np

from minidl._core import _conv as kernels
from minidl.layers.base import LAYERS, BufferPool, Layer
from minidl.layers.conv_utils import (check_data_format, check_input_rank, normalize_padding,
                                      normalize_tuple, window_geometry)
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
        self.data_format = check_data_format(data_format, owner)
        self._buffers = BufferPool(self.dtype)
        self._indices = BufferPool(np.intc)   # max pooling's argmax, reused likewise

    def _geometry(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return window_geometry(self, input_shape, input_shape[:-1], self.pool_size,
                               self.strides, (1,) * self.rank, self.padding, "pool")

    def compute_output_shape(self, input_shape):
        out, _ = self._geometry(tuple(input_shape))
        return out + (input_shape[-1],)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        out, pads = self._geometry(input_shape)
        two_d = lambda t, fill: (fill,) * (2 - self.rank) + tuple(t)   # noqa: E731
        self._image = two_d(input_shape[:-1], 1) + (input_shape[-1],)
        self._out_image = two_d(out, 1) + (input_shape[-1],)
        self._window = dict(pool_size=two_d(self.pool_size, 1), strides=two_d(self.strides, 1),
                            pads=two_d(pads, 0))
        self._output_sample = out + (input_shape[-1],)
        super().build(input_shape)

    def forward(self, x, training=False):
        n = x.shape[0]
        x = np.ascontiguousarray(x).reshape((n,) + self._image)
        if training:
            y = self._buffers.get("y", n, self._out_image)
        else:
            y = np.empty((n,) + self._out_image, self.dtype)
        if self._max:
            argmax = (self._indices.get("argmax", n, self._out_image) if training else
                      np.empty(y.shape, np.intc))
            kernels.max_pool_forward(x, y, argmax, **self._window)
            if training:
                self._argmax, self._y = argmax, y
        else:
            kernels.avg_pool_forward(x, y, **self._window)
        return y.reshape((n,) + self._output_sample)

    def backward(self, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n = dy.shape[0]
        dy = np.ascontiguousarray(dy).reshape((n,) + self._out_image)
        dx = self._buffers.get("dx", n, self._image)
        if self._max:
            self._scatter(dy, dx, gate=None)
        else:
            kernels.avg_pool_backward(dy, dx, **self._window)
        return dx.reshape((n,) + self.built_input_shape)

    def _scatter(self, dy, dx, gate):
        kernels.max_pool_backward(dy, self._argmax, dx, gate=gate, **self._window)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides),
                      padding=self.padding, data_format=self.data_format)
        return config


class _ThroughReLU:
    """Max pooling right after a layer with a ReLU: the training loop asks for the gradient
    with respect to that layer's pre-activation directly (see ``models.trainer``), which
    skips a pass of the ReLU's backward over the layer's whole (un-pooled) output."""

    def forward_after_relu_layer(self, layer, x, directly=False):
        """Training forward of ``layer`` (computing ``relu(linear(x) + b)``) and of this
        pooling together: the maximum of each window of ``linear(x)``, then the bias and
        the ReLU on the maxima alone. The same bits as ``self.forward(layer.forward(x))``,
        since max(relu(z + b)) = relu(max(z) + b) for float addition and the ReLU.

        With ``directly`` (allowed by the training loop when the layer's input gradient is
        never needed), a layer that can (``can_pool_directly``) computes the maxima without
        forming ``linear(x)`` at all."""
        self._direct_layer = None
        if directly and getattr(layer, "can_pool_directly", None) and layer.can_pool_directly(self):
            n = x.shape[0]
            y = self._buffers.get("y", n, self._out_image)
            argmax = self._indices.get("argmax", n, self._out_image)
            layer.forward_max_pool(x, self._window["pool_size"], y, argmax)   # bias, ReLU too
            self._argmax, self._y, self._direct_layer = argmax, y, layer
            return y.reshape((n,) + self._output_sample)
        y = self.forward(layer.forward_linear(x), training=True)
        rows = y.reshape(-1, y.shape[-1])
        layer.activation.forward_bias(rows, getattr(layer, "bias", None), rows)
        return y

    def backward_to_relu_layer(self, layer, dy, need_input_grad):
        """Backward through this pooling and ``layer`` after :meth:`forward_after_relu_layer`:
        the layer's weight gradients, and the gradient of its input (None when
        ``need_input_grad`` is False)."""
        if getattr(self, "_direct_layer", None) is layer:
            if need_input_grad:
                raise RuntimeError(f"{layer.name} pooled directly, which gives no input "
                                   f"gradient, but its input gradient was asked for")
            n = dy.shape[0]
            layer.backward_max_pool(np.ascontiguousarray(dy).reshape((n,) + self._out_image),
                                    self._argmax, self._y, self._window["pool_size"])
            return None
        return layer.backward_preactivation(self.backward_through_relu(dy), need_input_grad)

    def backward_through_relu(self, dy):
        """The gradient with respect to ``z`` when this layer's input was ``relu(z)``: the
        pooled gradient scattered to each window's maximum where the maximum is positive.
        Bit for bit what ``backward`` followed by the ReLU's backward gives."""
        n = dy.shape[0]
        dy = np.ascontiguousarray(dy).reshape((n,) + self._out_image)
        dx = self._buffers.get("dx", n, self._image)
        self._scatter(dy, dx, gate=self._y)
        return dx.reshape((n,) + self.built_input_shape)


_POOLING_DOC = """{kind} pooling over {what}: each output is the {op} of a window of the input.

    Args:
        pool_size: {size_doc}
        strides: {stride_doc} None (default) means pool_size: windows that do not overlap.
        padding: 'valid' (default; windows inside the input only) or 'same' (windows also
            past the edges, so that the output has ``ceil(input / strides)`` positions;
            {pad_doc}).
        data_format: None or 'channels_last' (the only layout minidl supports).

    Input shape:
        {input_shape}
    Output shape:
        {output_shape}; with 'valid', ``new = (size - pool) // stride + 1``.
"""


@LAYERS.register("MaxPool2D")
class MaxPooling2D(_ThroughReLU, _Pooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", True

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@LAYERS.register("AvgPool2D")
class AveragePooling2D(_Pooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", False

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@LAYERS.register("MaxPool1D")
class MaxPooling1D(_ThroughReLU, _Pooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", True


@LAYERS.register("AvgPool1D")
class AveragePooling1D(_Pooling):
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


class _GlobalPooling(Layer):
    """Max or average over every spatial position of a sample; see GlobalAveragePooling2D."""

    rank = None
    _layout = None
    _max = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, type(self).__name__)
        self.keepdims = check_bool(type(self).__name__, "keepdims", keepdims)
        self._buffers = BufferPool(self.dtype)
        self._indices = BufferPool(np.intc)

    def compute_output_shape(self, input_shape):
        check_input_rank(self, input_shape, self.rank, self._layout)
        return ((1,) * self.rank if self.keepdims else ()) + (input_shape[-1],)

    def build(self, input_shape):
        self._output_sample = self.compute_output_shape(tuple(input_shape))
        self._positions = int(np.prod(input_shape[:-1]))
        self._image, self._out_image = tuple(input_shape), (input_shape[-1],)
        super().build(input_shape)

    def forward(self, x, training=False):
        n, channels = x.shape[0], x.shape[-1]
        x = np.ascontiguousarray(x).reshape(n, self._positions, channels)
        y = (self._buffers.get("y", n, (channels,)) if training
             else np.empty((n, channels), self.dtype))
        if self._max:
            argmax = (self._indices.get("argmax", n, (channels,)) if training else
                      np.empty((n, channels), np.intc))
            kernels.global_max_pool(x, y, argmax)
            if training:
                self._argmax, self._y = argmax, y
        else:
            kernels.global_avg_pool(x, y)
        return y.reshape((n,) + self._output_sample)

    def backward(self, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        n = dy.shape[0]
        channels = self.built_input_shape[-1]
        dy = np.ascontiguousarray(dy).reshape(n, channels)
        dx = self._buffers.get("dx", n, self.built_input_shape)
        if self._max:
            self._scatter(dy, dx, gate=None)
        else:
            np.multiply(dy.reshape(n, 1, channels), 1.0 / self._positions,
                        out=dx.reshape(n, self._positions, channels))
        return dx

    def _scatter(self, dy, dx, gate):
        n, channels = dy.shape[0], self._out_image[0]
        kernels.scatter_argmax(dy.reshape(n, channels), self._argmax,
                               dx.reshape(n, self._positions * channels), gate)

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


_GLOBAL_DOC = """Global {kind} pooling: the {op} of each channel over all {what}.

    Args:
        data_format: None or 'channels_last' (the only layout minidl supports).
        keepdims: keep the spatial axes, with length 1 (default False).

    Input shape:
        {input_shape}
    Output shape:
        2-D ``(batch, channels)``, or {kept} with keepdims.
"""


@LAYERS.register("GlobalMaxPool2D")
class GlobalMaxPooling2D(_ThroughReLU, _GlobalPooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", True


@LAYERS.register("GlobalAvgPool2D")
class GlobalAveragePooling2D(_GlobalPooling):
    rank, _layout, _max = 2, "(batch, height, width, channels)", False


@LAYERS.register("GlobalMaxPool1D")
class GlobalMaxPooling1D(_ThroughReLU, _GlobalPooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", True


@LAYERS.register("GlobalAvgPool1D")
class GlobalAveragePooling1D(_GlobalPooling):
    rank, _layout, _max = 1, "(batch, steps, channels)", False


for _cls in (GlobalMaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling1D,
             GlobalAveragePooling1D):
    _two = _cls.rank == 2
    _cls.__doc__ = _GLOBAL_DOC.format(
        kind="max" if _cls._max else "average", op="maximum" if _cls._max else "mean",
        what="positions of an image" if _two else "steps of a sequence",
        input_shape="4-D ``(batch, height, width, channels)``." if _two else
        "3-D ``(batch, steps, channels)``.",
        kept="``(batch, 1, 1, channels)``" if _two else "``(batch, 1, channels)``")

# Keras' short names.
MaxPool2D, AvgPool2D, MaxPool1D, AvgPool1D = (MaxPooling2D, AveragePooling2D, MaxPooling1D,
                                              AveragePooling1D)
GlobalMaxPool2D, GlobalAvgPool2D = GlobalMaxPooling2D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalAvgPool1D = GlobalMaxPooling1D, GlobalAveragePooling1D
