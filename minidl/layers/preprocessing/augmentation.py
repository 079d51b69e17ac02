"""Random image augmentation layers, as in ``keras.layers``: RandomFlip, RandomRotation,
RandomZoom, RandomTranslation, RandomCrop, RandomContrast and RandomBrightness.

They change images in training only (``fit``, or a call with ``training=True``); at
inference they pass them through (RandomCrop center-crops instead, as Keras documents).

Randomness: each training call draws the parameters of the whole batch in one vectorised
numpy draw (an angle, zoom, shift, flip, factor per image), from the layer's own
``numpy.random.Generator`` when it has a ``seed`` (its state is saved with the model, as
Dropout's), else from the training stream of ``fit`` (``minidl.utils.random.training_rng``),
so a seeded fit is reproducible. The pixel work is one compiled call per batch
(``minidl._core._image``), each image computed on one thread in a fixed order: the same bits
for any thread count. Each layer's backward pass is the transpose of its pixel work, so the
layers may sit anywhere in a model.

Geometry follows Keras: an image's transform maps each output pixel ``(x, y)`` to the input
point it samples (``keras.ops.image.affine_transform``), and points outside the image are
filled by ``fill_mode``:

- 'reflect': ``(d c b a | a b c d | d c b a)``, reflecting about the edge of the last pixel;
- 'wrap': ``(a b c d | a b c d | a b c d)``;
- 'constant': ``(k k k k | a b c d | k k k k)`` with ``k = fill_value``; in bilinear
  sampling each of the four neighbours outside the image counts as ``fill_value``;
- 'nearest': ``(a a a a | a b c d | d d d d)``.
"""
import math
import numbers

import numpy as np

from minidl._core import _image
from minidl.layers.base import LAYERS
from minidl.layers.conv_utils import check_data_format
from minidl.layers.preprocessing.base import check_choice, check_number
from minidl.layers.preprocessing.image import ImageLayer, aspect_crop_box
from minidl.layers.random_draws import SeededDrawsMixin

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("bilinear", "nearest")
_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
_FLIP_FLAGS = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}


def _factor_range(owner, name, factor, low, high, symmetric=True):
    """Keras' factor argument as (lower, upper): a number ``f`` is ``(-|f|, |f|)``
    (``(f, f)`` when not ``symmetric``), a pair is sorted; every value in [low, high]."""
    expected = (f"{owner}: `{name}` must be a number or a tuple of two numbers in "
                f"[{low}, {high}]. Received: {name}={factor!r:.100}")

    def number(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not low <= value <= high:
            raise ValueError(expected)
        return float(value)

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(expected)
        return tuple(sorted(number(v) for v in factor))
    value = number(factor)
    return (-abs(value), abs(value)) if symmetric else (value, value)


def _value_range(owner, value_range):
    """A (low, high) pair of finite numbers with low < high."""
    message = (f"{owner}: `value_range` must be a tuple of two finite numbers (low, high), "
               f"low < high. Received: value_range={value_range!r:.100}")
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(message)
    for v in value_range:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(message)
    low, high = (float(v) for v in value_range)
    if not low < high:
        raise ValueError(message)
    return low, high


def _config_value(value):
    """A constructor argument as JSON keeps it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


class RandomLayer(SeededDrawsMixin, ImageLayer):
    """Base of the augmentation layers: the seed (its generator and saved state from
    :class:`~minidl.layers.random_draws.SeededDrawsMixin`, as Dropout's), and the
    pass-through at inference.

    A subclass writes ``augment(ctx, x, rng)`` (the training output; it keeps in ``ctx``
    what ``augment_backward(ctx, dy)`` needs).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_seed(seed)

    def forward(self, ctx, x, training=False):
        ctx.augmented = bool(training)
        if not training:
            return self.images(x)
        return self.augment(ctx, self.images(x), self.rng())

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if not ctx.augmented:
            return dy
        return self.augment_backward(ctx, np.ascontiguousarray(dy, dtype=self.dtype))

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@LAYERS.register()
class RandomFlip(RandomLayer):
    """A preprocessing layer which randomly flips images during training.

    Each image is flipped with probability 1/2. With 'horizontal_and_vertical', a flipped
    image is flipped along both axes at once (one draw per image, as in Keras).

    Args:
        mode: 'horizontal_and_vertical' (default), 'horizontal' (left-right) or 'vertical'
            (top-bottom).
        seed: optional int, the seed of the layer's own generator.
        data_format: None or 'channels_last'.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.

    Example:
        >>> RandomFlip("horizontal", seed=1)(images, training=True)
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = check_choice("RandomFlip", "mode", mode, _FLIP_MODES)
        self.data_format = check_data_format(data_format, "RandomFlip")

    def augment(self, ctx, x, rng):
        flips = rng.random(x.shape[0]) <= 0.5
        flags = np.where(flips, _FLIP_FLAGS[self.mode], 0).astype(np.int32)
        out = self._output_buffer(ctx, x.shape)
        _image.flip(x, flags, out)
        ctx.flags = flags
        return out

    def augment_backward(self, ctx, dy):
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        _image.flip(dy, ctx.flags, dx)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, data_format=self.data_format)
        return config


class AffineLayer(RandomLayer):
    """Base of the layers that resample each image through a random transform (rotation,
    zoom, translation): a subclass writes ``transforms(rng, n, height, width)``, the
    ``(n, 8)`` rows of ``_image.affine``."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        owner = type(self).__name__
        self.fill_mode = check_choice(owner, "fill_mode", fill_mode, _FILL_MODES)
        self.interpolation = check_choice(owner, "interpolation", interpolation,
                                          _INTERPOLATIONS)
        self.fill_value = check_number(owner, "fill_value", fill_value)
        self.data_format = check_data_format(data_format, owner)

    def augment(self, ctx, x, rng):
        n, h, w, _ = x.shape
        transforms = np.ascontiguousarray(self.transforms(rng, n, h, w), dtype=np.float64)
        out = self._output_buffer(ctx, x.shape)
        _image.affine(x, transforms, out, self.interpolation, self.fill_mode,
                      self.fill_value)
        ctx.transforms = transforms
        return out

    def augment_backward(self, ctx, dy):
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        _image.affine_backward(dy, ctx.transforms, dx, self.interpolation, self.fill_mode)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(fill_mode=self.fill_mode, interpolation=self.interpolation,
                      fill_value=self.fill_value, data_format=self.data_format)
        return config


class AxisFactorsLayer(AffineLayer):
    """Base of RandomZoom and RandomTranslation: a factor range per image axis."""

    def _set_axis_factors(self, height_factor, width_factor, width_optional):
        owner = type(self).__name__
        self.height_range = _factor_range(owner, "height_factor", height_factor, -1.0, 1.0)
        self.width_range = None if width_factor is None and width_optional else \
            _factor_range(owner, "width_factor", width_factor, -1.0, 1.0)
        self.height_factor = _config_value(height_factor)
        self.width_factor = _config_value(width_factor)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=self.height_factor, width_factor=self.width_factor)
        return config


def rotation_transforms(angles, height, width):
    """The transforms rotating images by ``angles`` (radians, counter-clockwise) about
    their center pixel, as Keras' RandomRotation builds them."""
    cos, sin = np.cos(angles), np.sin(angles)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    zeros = np.zeros_like(cos)
    return np.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1)


def zoom_transforms(height_zooms, width_zooms, height, width):
    """The transforms scaling images about their center by ``width_zooms`` horizontally and
    ``height_zooms`` vertically (an output pixel samples the input at ``zoom`` times its
    distance from the center: a zoom above 1 zooms out)."""
    zeros = np.zeros_like(height_zooms)
    return np.stack([width_zooms, zeros, (width - 1) / 2.0 * (1.0 - width_zooms),
                     zeros, height_zooms, (height - 1) / 2.0 * (1.0 - height_zooms),
                     zeros, zeros], axis=1)


def translation_transforms(dx, dy):
    """The transforms shifting images right by ``dx`` and down by ``dy`` pixels."""
    ones, zeros = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)


@LAYERS.register()
class RandomRotation(AffineLayer):
    """A preprocessing layer which randomly rotates images during training.

    Each image is rotated about its center by an angle drawn uniformly from
    ``[lower * 2 pi, upper * 2 pi]``; empty space is filled according to ``fill_mode``.

    Args:
        factor: a float, a fraction of 2 pi: ``factor=0.2`` rotates by a random amount in
            ``[-20% * 360, 20% * 360]`` degrees; or a tuple ``(lower, upper)``, e.g.
            ``(-0.2, 0.3)``. Positive values rotate counter-clockwise. Values in [-1, 1].
        fill_mode: 'reflect' (default), 'wrap', 'constant' or 'nearest' (see the module
            docstring).
        interpolation: 'bilinear' (default) or 'nearest'.
        seed: optional int, the seed of the layer's own generator.
        fill_value: the value of points outside the image with ``fill_mode='constant'``.
        data_format: None or 'channels_last'.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self.lower, self.upper = _factor_range("RandomRotation", "factor", factor, -1.0, 1.0)
        self.factor = _config_value(factor)

    def transforms(self, rng, n, height, width):
        angles = rng.uniform(self.lower * 2.0 * math.pi, self.upper * 2.0 * math.pi, n)
        return rotation_transforms(angles, height, width)

    def get_config(self):
        config = super().get_config()
        config["factor"] = self.factor
        return config


@LAYERS.register()
class RandomZoom(AxisFactorsLayer):
    """A preprocessing layer which randomly zooms images during training.

    Each image is zoomed about its center, by ``1 + height_factor`` vertically and
    ``1 + width_factor`` horizontally (each drawn uniformly from its range); empty space is
    filled according to ``fill_mode``.

    Args:
        height_factor: a float or a tuple ``(lower, upper)`` in [-1, 1]: a positive value
            zooms out, a negative one zooms in. ``0.2`` zooms by a random amount in
            ``[-20%, +20%]``.
        width_factor: as ``height_factor``, for the width; None (default) zooms both axes
            by the same draw, keeping the aspect ratio.
        fill_mode: 'reflect' (default), 'wrap', 'constant' or 'nearest'.
        interpolation: 'bilinear' (default) or 'nearest'.
        seed: optional int, the seed of the layer's own generator.
        fill_value: the value of points outside the image with ``fill_mode='constant'``.
        data_format: None or 'channels_last'.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self._set_axis_factors(height_factor, width_factor, width_optional=True)

    def transforms(self, rng, n, height, width):
        low, high = self.height_range
        height_zooms = rng.uniform(1.0 + low, 1.0 + high, n)
        if self.width_range is None:
            width_zooms = height_zooms
        else:
            low, high = self.width_range
            width_zooms = rng.uniform(1.0 + low, 1.0 + high, n)
        return zoom_transforms(height_zooms, width_zooms, height, width)


@LAYERS.register()
class RandomTranslation(AxisFactorsLayer):
    """A preprocessing layer which randomly translates images during training.

    Each image is shifted by a fraction of its height and width drawn uniformly from the
    factors' ranges; empty space is filled according to ``fill_mode``.

    Args:
        height_factor: a float or a tuple ``(lower, upper)`` in [-1, 1], a fraction of the
            height: negative shifts up, positive down. ``0.2`` shifts by a random amount in
            ``[-20%, +20%]`` of the height.
        width_factor: as ``height_factor``, a fraction of the width: negative shifts left,
            positive right.
        fill_mode: 'reflect' (default), 'wrap', 'constant' or 'nearest'.
        interpolation: 'bilinear' (default) or 'nearest'.
        seed: optional int, the seed of the layer's own generator.
        fill_value: the value of points outside the image with ``fill_mode='constant'``.
        data_format: None or 'channels_last'.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed,
                         fill_value=fill_value, data_format=data_format, **kwargs)
        self._set_axis_factors(height_factor, width_factor, width_optional=False)

    def transforms(self, rng, n, height, width):
        shift_y = rng.uniform(*self.height_range, n) * height
        shift_x = rng.uniform(*self.width_range, n) * width
        return translation_transforms(shift_x, shift_y)


@LAYERS.register()
class RandomCrop(RandomLayer):
    """A preprocessing layer which randomly crops images during training.

    In training, when the images are larger than the target in both height and width, the
    layer crops a window of the target size at a random location, the same for every image
    of the batch (as Keras). Otherwise (at inference, or for images not larger than the
    target) it crops the largest centered window of the target aspect ratio and resizes it
    (bilinear) to the target.

    Args:
        height: int, the height of the output.
        width: int, the width of the output.
        seed: optional int, the seed of the layer's own generator.
        data_format: None or 'channels_last'.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: ``(batch, height, width, channels)`` with the target height and width.
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._set_target_size(height, width, data_format)

    def forward(self, ctx, x, training=False):
        x = self.images(x)
        n, h, w, c = x.shape
        out = self._output_buffer(ctx, (n, self.height, self.width, c))
        ctx.input_shape = x.shape
        if training and h > self.height and w > self.width:
            rng = self.rng()
            top = int(rng.random() * (h - self.height + 1))
            left = int(rng.random() * (w - self.width + 1))
            out[...] = x[:, top:top + self.height, left:left + self.width]
            ctx.window = (top, left)
            return out
        # Inference, or images not larger than the target: Keras' crop to the target aspect
        # ratio, resized to the target.
        resampler = self.resampler((h, w), (self.height, self.width), "bilinear",
                                   aspect_crop_box(h, w, self.height, self.width))
        ctx.window, ctx.resampler = None, resampler
        return resampler.forward(x, out)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx = ctx.buffers.get("dx", dy.shape[0], ctx.input_shape[1:])
        if ctx.window is None:
            return ctx.resampler.backward(dy, dx)
        top, left = ctx.window
        dx.fill(0)
        dx[:, top:top + self.height, left:left + self.width] = dy
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, data_format=self.data_format)
        return config


class ValueRangeLayer(RandomLayer):
    """Base of RandomContrast and RandomBrightness: a factor range, and the range of the
    images' values, to which the outputs are clipped."""

    def _set_factor_and_value_range(self, factor, value_range, factor_low, symmetric):
        owner = type(self).__name__
        self.lower, self.upper = _factor_range(owner, "factor", factor, factor_low, 1.0,
                                               symmetric=symmetric)
        self.value_range = _value_range(owner, value_range)
        self.factor = _config_value(factor)
        self._value_range_arg = _config_value(value_range)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, value_range=self._value_range_arg)
        return config


@LAYERS.register()
class RandomContrast(ValueRangeLayer):
    """A preprocessing layer which randomly adjusts contrast during training.

    For each image and channel, with ``mean`` the channel's mean over the image and a
    contrast factor drawn per image from ``[1 - lower, 1 + upper]``, each value becomes
    ``(x - mean) * factor + mean``, clipped to ``value_range``.

    Args:
        factor: a float in [0, 1] (``lower = upper = factor``) or a tuple
            ``(lower, upper)`` of floats in [0, 1].
        value_range: the (low, high) range of the images' values, to which the output is
            clipped. Default (0, 255).
        seed: optional int, the seed of the layer's own generator.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._set_factor_and_value_range(factor, value_range, 0.0, symmetric=False)

    def augment(self, ctx, x, rng):
        n, _, _, c = x.shape
        factors = rng.uniform(1.0 - self.lower, 1.0 + self.upper, n)
        out = self._output_buffer(ctx, x.shape)
        means = np.empty((n, c))
        _image.contrast(x, factors, out, *self.value_range, means)
        if ctx.record:
            ctx.x, ctx.factors, ctx.means = x, factors, means
        return out

    def augment_backward(self, ctx, dy):
        # y = clip(z), z = (x - m) f + m, m the channel mean: dz = dy where z was not
        # clipped; dx = f dz + (1 - f) mean(dz), the mean over the image's pixels.
        f = ctx.factors[:, None, None, None]
        means = ctx.means[:, None, None, :]
        z = (ctx.x - means) * f + means
        low, high = self.value_range
        dz = np.where((z >= low) & (z <= high), dy, 0.0)
        dx = f * dz + (1.0 - f) * dz.mean(axis=(1, 2), keepdims=True)
        return np.ascontiguousarray(dx, dtype=self.dtype)


@LAYERS.register()
class RandomBrightness(ValueRangeLayer):
    """A preprocessing layer which randomly adjusts brightness during training.

    Each image gets ``delta * (high - low)`` added to every value, ``delta`` drawn per image
    from ``[lower, upper]``, and is clipped to ``value_range = (low, high)``: -1.0 gives a
    black image, 1.0 a white one.

    Args:
        factor: a float in [-1, 1] (range ``[-|factor|, |factor|]``) or a tuple
            ``(lower, upper)`` of floats in [-1, 1].
        value_range: the (low, high) range of the images' values. Default (0, 255).
        seed: optional int, the seed of the layer's own generator.

    Input shape: ``(batch, height, width, channels)`` or ``(height, width, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(value_range, (tuple, list)) and len(value_range) == 2 and \
                all(isinstance(v, numbers.Real) for v in value_range):
            value_range = sorted(value_range)   # (Keras sorts it)
        self._set_factor_and_value_range(factor, value_range, -1.0, symmetric=True)

    def augment(self, ctx, x, rng):
        low, high = self.value_range
        deltas = rng.uniform(self.lower, self.upper, x.shape[0]) * (high - low)
        out = self._output_buffer(ctx, x.shape)
        _image.brightness(x, deltas, out, low, high)
        if ctx.record:
            ctx.x, ctx.deltas = x, deltas
        return out

    def augment_backward(self, ctx, dy):
        low, high = self.value_range
        shifted = ctx.x + ctx.deltas.astype(self.dtype)[:, None, None, None]
        return np.where((shifted >= low) & (shifted <= high), dy,
                        np.zeros((), self.dtype)).astype(self.dtype, copy=False)
