"""Image preprocessing layers that do the same thing in training and inference: Resizing
and CenterCrop, as in ``keras.layers``.

Images are channels_last: batches ``(batch, height, width, channels)``, or one image
``(height, width, channels)`` called on its own (the layer adds and removes the batch axis,
as Keras does). The layers compute sampling tables here (numpy, per input size) and run one
compiled call per batch (``minidl._core._image.resample``), whose backward pass spreads the
gradient back over the same pixels, so a model can train through them.

Resizing follows ``keras.ops.image.resize`` with ``antialias=False``: bilinear with half-pixel
centers (TF's ``resize``, ``torch...interpolate(mode='bilinear', align_corners=False)``),
nearest as TF's half-pixel nearest (``floor((i + 0.5) * scale)``, Pillow's NEAREST).
"""
import numpy as np

from minidl._core import _image
from minidl.autodiff.tensor import Tensor
from minidl.layers.base import LAYERS
from minidl.layers.conv_utils import check_data_format
from minidl.layers.node import is_symbolic
from minidl.layers.preprocessing.base import (PreprocessingLayer, check_choice, check_number,
                                              check_positive_int)
from minidl.utils.checks import check_bool

_INTERPOLATIONS = ("bilinear", "nearest")
_KERAS_ONLY_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


def resize_table(in_size, out_size, interpolation, start=0, length=None):
    """The source indices and weights of one axis of a resize (``_image.resample``'s
    tables): output index ``i`` samples the box ``[start, start + length)`` of the input
    axis (the whole axis by default).

    Bilinear, half-pixel centers (TF): ``s = (i + 0.5) * length / out_size - 0.5``, rows
    ``max(floor(s), 0)`` and ``min(ceil(s), length - 1)``, weight ``s - floor(s)`` on the
    second. Nearest: ``min(floor((i + 0.5) * length / out_size), length - 1)``.

    Returns:
        (index0, index1, weight): intp, intp and float64 arrays of ``out_size`` entries.
    """
    length = in_size if length is None else length
    scale = length / out_size
    centers = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    if interpolation == "nearest":
        index0 = np.minimum(np.floor(centers), length - 1).astype(np.intp) + start
        return index0, index0, np.zeros(out_size)
    source = centers - 0.5
    lower = np.floor(source)
    index0 = np.maximum(lower, 0).astype(np.intp) + start
    index1 = np.minimum(np.ceil(source), length - 1).astype(np.intp) + start
    return index0, index1, source - lower


def aspect_crop_box(height, width, target_height, target_width):
    """Keras' centered crop of the largest window of the target aspect ratio
    (``crop_to_aspect_ratio``, ``smart_resize``): (top, left, crop_height, crop_width)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return (int(float(height - crop_height) / 2), int(float(width - crop_width) / 2),
            crop_height, crop_width)


class Resampler:
    """One resize of images of a given size into ``(out_height, out_width)``: the tables of
    ``_image.resample``, made once per input size.

    Args:
        interpolation: 'bilinear' or 'nearest'.
        box: optional (top, left, height, width) of the input window that is resized.
    """

    def __init__(self, in_hw, out_hw, interpolation, box=None):
        top, left, box_h, box_w = box if box is not None else (0, 0) + tuple(in_hw)
        self.out_hw = tuple(out_hw)
        self.linear = interpolation == "bilinear"
        self.rows = resize_table(in_hw[0], out_hw[0], interpolation, top, box_h)
        self.cols = resize_table(in_hw[1], out_hw[1], interpolation, left, box_w)

    def forward(self, x, out):
        _image.resample(x, out, *self.rows, *self.cols, self.linear)
        return out

    def backward(self, dy, dx):
        _image.resample_backward(dy, dx, *self.rows, *self.cols, self.linear)
        return dx


class ImageLayer(PreprocessingLayer):
    """Base of minidl's image preprocessing layers: channels_last image batches, and single
    images ``(height, width, channels)`` called on their own (batched for the call, as
    Keras does).

    A layer with a target size (Resizing, CenterCrop, RandomCrop) sets it with
    :meth:`_set_target_size`; the others keep the input's shape.
    """

    # Built for one image size, as other layers are for their input shape.
    _any_shape = False
    height = width = None

    def __call__(self, *args, **kwargs):
        if args and not is_symbolic(args[0]) and np.ndim(_value(args[0])) == 3:
            from minidl import ops
            image = args[0]
            batch = ops.expand_dims(image, 0) if isinstance(image, Tensor) else \
                np.asarray(image)[None]
            out = super().__call__(batch, *args[1:], **kwargs)
            return ops.squeeze(out, 0)
        return super().__call__(*args, **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) takes images "
                             f"(batch, height, width, channels) or one image (height, width, "
                             f"channels); received samples of shape {tuple(input_shape)}.")
        super().build(input_shape)

    def images(self, x):
        """``x`` as a C-contiguous batch of the layer's float type (Keras' preprocessing
        layers output floats whatever the input type)."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) takes images "
                             f"(batch, height, width, channels); received shape {x.shape}.")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _set_target_size(self, height, width, data_format):
        """Check and set the output's ``height`` and ``width``, and ``data_format``."""
        owner = type(self).__name__
        self.height = check_positive_int(owner, "height", height, allow_none=False)
        self.width = check_positive_int(owner, "width", width, allow_none=False)
        self.data_format = check_data_format(data_format, owner)

    def compute_output_shape(self, input_shape):
        if self.height is None:
            return tuple(input_shape)
        return (self.height, self.width, input_shape[-1])

    def resampler(self, in_hw, out_hw, interpolation, box=None):
        """The :class:`Resampler` for this input size, kept for the next batch of the same
        size."""
        key = (tuple(in_hw), tuple(out_hw), interpolation, box)
        cached = self.__dict__.get("_resampler")
        if cached is None or cached[0] != key:
            cached = (key, Resampler(in_hw, out_hw, interpolation, box))
            self._resampler = cached
        return cached[1]


def _value(x):
    return x.value if isinstance(x, Tensor) else x


@LAYERS.register()
class Resizing(ImageLayer):
    """A preprocessing layer which resizes images.

    Resizes a batch of images to a target size, optionally cropping or padding them first
    to the target aspect ratio, so that they are not distorted.

    Args:
        height: int, the height of the output.
        width: int, the width of the output.
        interpolation: 'bilinear' (default; half-pixel centers, no antialiasing, as TF's
            and Keras' ``resize``) or 'nearest'.
        crop_to_aspect_ratio: if True, resize the largest centered window of the image with
            the target aspect ratio (no distortion; the borders are cropped).
        pad_to_aspect_ratio: if True, pad the image evenly on both sides to the target
            aspect ratio with ``fill_value``, then resize (no distortion, nothing cropped).
        fill_mode: how the padding is filled; only 'constant', as in Keras.
        fill_value: the value of the padding (default 0.0).
        antialias: False (default, Keras' too); minidl does not implement antialiased
            downsampling, so True raises ValueError.
        data_format: None or 'channels_last' (minidl's image layout).

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: ``(batch, height, width, channels)`` with the target height and width.

    Example:
        >>> layer = Resizing(16, 16)
        >>> layer(np.zeros((2, 32, 24, 3))).shape
        (2, 16, 16, 3)
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = "Resizing"
        self._set_target_size(height, width, data_format)
        self.interpolation = check_choice(owner, "interpolation", interpolation,
                                          _INTERPOLATIONS, _KERAS_ONLY_INTERPOLATIONS)
        crop_to_aspect_ratio = check_bool(owner, "crop_to_aspect_ratio", crop_to_aspect_ratio)
        pad_to_aspect_ratio = check_bool(owner, "pad_to_aspect_ratio", pad_to_aspect_ratio)
        if check_bool(owner, "antialias", antialias):
            raise ValueError(f"{owner}: antialias=True is a Keras option that minidl does not "
                             f"implement; use antialias=False (Keras' default).")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{owner}: only one of `crop_to_aspect_ratio` and "
                             f"`pad_to_aspect_ratio` can be True. Received: "
                             f"crop_to_aspect_ratio={crop_to_aspect_ratio}, "
                             f"pad_to_aspect_ratio={pad_to_aspect_ratio}")
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.fill_mode = check_choice(owner, "fill_mode", fill_mode, ("constant",))
        self.fill_value = check_number(owner, "fill_value", fill_value)

    def _padding(self, height, width):
        """Keras' pad_to_aspect_ratio box: (padded height, padded width, top, left)."""
        padded_h = max(height, int(float(width * self.height) / self.width))
        padded_w = max(width, int(float(height * self.width) / self.height))
        return (padded_h, padded_w, int(float(padded_h - height) / 2),
                int(float(padded_w - width) / 2))

    def forward(self, ctx, x, training=False):
        x = self.images(x)
        n, h, w, c = x.shape
        out = self._output_buffer(ctx, (n, self.height, self.width, c))
        source = x
        if self.pad_to_aspect_ratio:
            padded_h, padded_w, top, left = self._padding(h, w)
            if (padded_h, padded_w) != (h, w):
                source = np.full((n, padded_h, padded_w, c), self.fill_value, self.dtype)
                source[:, top:top + h, left:left + w] = x
        box = aspect_crop_box(h, w, self.height, self.width) \
            if self.crop_to_aspect_ratio else None
        resampler = self.resampler(source.shape[1:3], (self.height, self.width),
                                   self.interpolation, box)
        if ctx.record:
            ctx.resampler, ctx.source_shape, ctx.input_shape = resampler, source.shape, x.shape
        return resampler.forward(source, out)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        n, h, w, c = ctx.input_shape
        source_grad = ctx.buffers.get("dsource", n, ctx.source_shape[1:])
        ctx.resampler.backward(dy, source_grad)
        if ctx.source_shape == ctx.input_shape:
            return source_grad
        _, _, top, left = self._padding(h, w)
        return np.ascontiguousarray(source_grad[:, top:top + h, left:left + w])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, interpolation=self.interpolation,
                      crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                      pad_to_aspect_ratio=self.pad_to_aspect_ratio, fill_mode=self.fill_mode,
                      fill_value=self.fill_value, antialias=False,
                      data_format=self.data_format)
        return config


class Cropper:
    """Keras' center crop of images of one size to (height, width): a slice when the image
    is at least that large, else the largest centered window of the target aspect ratio
    resized (bilinear) to the target (``smart_resize``)."""

    def __init__(self, layer, in_hw, height, width):
        h, w = in_hw
        self.in_hw, self.out_hw = (h, w), (height, width)
        if h >= height and w >= width:
            self.top, self.left = int((h - height) / 2), int((w - width) / 2)
            self.resampler = None
        else:
            self.resampler = layer.resampler(in_hw, (height, width), "bilinear",
                                             aspect_crop_box(h, w, height, width))

    def forward(self, x, out):
        if self.resampler is not None:
            return self.resampler.forward(x, out)
        height, width = self.out_hw
        out[...] = x[:, self.top:self.top + height, self.left:self.left + width]
        return out

    def backward(self, dy, dx):
        if self.resampler is not None:
            return self.resampler.backward(dy, dx)
        height, width = self.out_hw
        dx.fill(0)
        dx[:, self.top:self.top + height, self.left:self.left + width] = dy
        return dx


@LAYERS.register()
class CenterCrop(ImageLayer):
    """A preprocessing layer which crops the central portion of images to a target size.

    An image smaller than the target (in height or width) is instead resized: the largest
    centered window with the target aspect ratio is resized (bilinear) to the target, as
    Keras' ``smart_resize`` does.

    Args:
        height: int, the height of the output.
        width: int, the width of the output.
        data_format: None or 'channels_last' (minidl's image layout).

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: ``(batch, height, width, channels)`` with the target height and width.

    Example:
        >>> CenterCrop(24, 24)(np.zeros((8, 32, 32, 3))).shape
        (8, 24, 24, 3)
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._set_target_size(height, width, data_format)

    def forward(self, ctx, x, training=False):
        x = self.images(x)
        n, h, w, c = x.shape
        cropper = Cropper(self, (h, w), self.height, self.width)
        out = self._output_buffer(ctx, (n, self.height, self.width, c))
        if ctx.record:
            ctx.cropper, ctx.input_shape = cropper, x.shape
        return cropper.forward(x, out)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        n = dy.shape[0]
        dx = ctx.buffers.get("dx", n, ctx.input_shape[1:])
        return ctx.cropper.backward(dy, dx)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, data_format=self.data_format)
        return config
