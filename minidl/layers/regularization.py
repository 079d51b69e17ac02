"""Regularization layers: Dropout, SpatialDropout2D/3D, GaussianNoise, GaussianDropout,
AlphaDropout and ActivityRegularization.

Dropout takes one 64-bit key per training step from its ``numpy.random.Generator`` (its own
when seeded, else the training stream of the running fit, see ``minidl.layers.random_draws``);
one fused pass of ``minidl._core._regularization`` turns the key into the mask (a
counter-based hash of the key and each element's index) and writes the scaled output into a
reused buffer, and backward multiplies by the same mask. A mask depends only on the key, so a
seed gives the same masks for any thread count, and a step allocates nothing. A seeded
layer's generator state goes into model files (``get_random_state``), so training resumes
after a load with the masks it would have drawn.

The noise layers work the same way: one key per training step, turned by a kernel pass into
the layer's noise (the dropout hash for AlphaDropout's keep decisions, a Box-Muller transform
of the same hash for the Gaussian layers), so they share the seeds, the saved random state
and the independence from the thread count.
"""
import math
import numbers

import numpy as np

from minidl import regularizers
from minidl._core import _regularization as _kernels
from minidl.layers.base import LAYERS, Layer
from minidl.layers.conv_utils import check_data_format
from minidl.layers.random_draws import SeededDrawsMixin
from minidl.random import _dropout_into


def _contiguous(x):
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


@LAYERS.register()
class Dropout(SeededDrawsMixin, Layer):
    """Applies dropout to the input.

    In training, each input unit is set to 0 with probability ``rate`` and the others are
    scaled by ``1 / (1 - rate)``, so the expected sum is unchanged; at inference the layer
    passes its input through unchanged.

    Args:
        rate: float in [0, 1), the fraction of input units to drop.
        noise_shape: optional tuple of ints (or None entries, taken from the input), the
            shape of the mask broadcast over the input, batch axis included: for inputs of
            shape ``(batch, timesteps, features)``, ``noise_shape=(None, 1, None)`` drops the
            same features at every timestep.
        seed: optional int: the layer draws from its own generator seeded with it, so two
            layers with the same seed drop the same units; ``model.save`` stores that
            generator's state. Without it the layer draws from the training stream of
            ``fit``, derived from minidl's global generator
            (:func:`minidl.utils.set_random_seed`) and the step count.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> model = Sequential([Input((784,)), Dense(64, activation="relu"), Dropout(0.2),
        ...                     Dense(10, activation="softmax")])
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate)
        self.noise_shape = _check_noise_shape(noise_shape)
        self._init_seed(seed)

    def build(self, input_shape):
        if self.noise_shape is not None:
            # Checked here, on the model's shapes, rather than at the first training step.
            self._resolve_noise_shape((None,) + tuple(input_shape))
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        ctx.keep = None
        if not training or self.rate == 0.0:
            return x
        x = _contiguous(x)
        n = x.shape[0]
        key = self.rng().bit_generator.random_raw()
        buffers = ctx.buffers
        y = buffers.get("y", n, x.shape[1:])
        shape = x.shape if self.noise_shape is None else self._resolve_noise_shape(x.shape)
        mask = buffers.get("mask", shape[0], shape[1:])
        _dropout_into(x, mask, y, self.rate, key)
        ctx.keep = mask
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if ctx.keep is None:
            return dy
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        if self.noise_shape is None:
            _kernels.dropout_backward(_contiguous(dy), ctx.keep, dx)
        else:
            np.multiply(dy, ctx.keep, out=dx)
        return dx

    def _resolve_noise_shape(self, shape):
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) has noise_shape="
                             f"{self.noise_shape}, of {len(self.noise_shape)} dims, for inputs "
                             f"of shape {shape}; it needs one entry per input dim.")
        # Unknown dims (the batch, while building) take any entry.
        resolved = tuple(d if n is None else n for n, d in zip(self.noise_shape, shape))
        if any(d is not None and n not in (1, d) for n, d in zip(resolved, shape)):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) has noise_shape="
                             f"{self.noise_shape}, which does not broadcast to inputs of shape "
                             f"{shape}: each entry must be None, 1 or the input's size.")
        return resolved

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                      seed=self.seed)
        return config


def _check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float "
                         f"in [0, 1). Received: rate={rate!r}")
    return float(rate)


def _check_noise_shape(noise_shape):
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(f"Invalid value received for argument `noise_shape`. Expected a tuple "
                         f"or list of integers. Received: noise_shape={noise_shape!r}")
    try:
        dims = tuple(noise_shape)
    except TypeError:
        raise ValueError(f"Invalid value received for argument `noise_shape`. Expected an "
                         f"iterable of integers. Received: noise_shape={noise_shape!r}") from None
    for i, d in enumerate(dims):
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer))
                              or d <= 0):
            raise ValueError(f"Invalid value received for argument `noise_shape`. Expected "
                             f"positive integers or None. Received: {d!r} at index {i} of "
                             f"noise_shape={noise_shape!r}")
    return tuple(None if d is None else int(d) for d in dims)


class BaseSpatialDropout(Dropout):
    """The spatial dropouts' base: Dropout with one draw per (sample, channel), the noise
    shape ``(batch, 1, ..., 1, channels)`` (channels first: ``(batch, channels, 1, ..., 1)``,
    a mask broadcast over the input as it is, without moving the channels). Subclasses set
    ``rank`` (the input's, batch included) and ``_dims`` (how the error message names the
    input's axes)."""

    rank = None
    _dims = None

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, noise_shape=(None,) + (1,) * (self.rank - 2) + (None,),
                         seed=seed, **kwargs)

    def _set_data_format(self, data_format):
        self.data_format = data_format
        if data_format == "channels_first":
            self.noise_shape = (None, None) + (1,) * (self.rank - 2)

    def build(self, input_shape):
        if len(input_shape) != self.rank - 1:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects "
                             f"{self.rank}-D input {self._dims}; received input of shape "
                             f"{(None,) + tuple(input_shape)}.")
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        del config["noise_shape"]
        return config


class _ImageSpatialDropout(BaseSpatialDropout):
    """SpatialDropout2D and 3D: a ``data_format`` argument besides the rate and the seed."""

    # channels_first without transposing: the mask's shape says where the channels are
    supports_channels_first = True

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        data_format = check_data_format(data_format, self)
        super().__init__(rate, seed=seed, **kwargs)
        self._set_data_format(data_format)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


@LAYERS.register()
class SpatialDropout2D(_ImageSpatialDropout):
    """Dropout of whole feature maps: in training, each channel of a sample is zeroed at
    every pixel with probability ``rate`` (one draw per sample and channel: noise shape
    ``(batch, 1, 1, channels)``), the others scaled by ``1 / (1 - rate)``; at inference the
    input passes through. Neighbouring pixels of a feature map are strongly correlated, so
    dropping single pixels barely regularizes (Tompson et al., 2014).

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: ``"channels_last"`` (channels on the last axis) or
            ``"channels_first"``; None: ``minidl.config.image_data_format()``.
        seed: optional int: the layer draws from its own generator (see Dropout).

    Input shape: 4-D ``(batch, rows, cols, channels)``, or ``(batch, channels, rows, cols)``
    with channels_first. Output shape: the same.

    Example:
        >>> model = Sequential([Input((28, 28, 1)), Conv2D(32, 3, activation="relu"),
        ...                     SpatialDropout2D(0.2), Flatten(), Dense(10)])
    """

    rank = 4
    _dims = "(batch, rows, cols, channels)"


@LAYERS.register()
class SpatialDropout3D(_ImageSpatialDropout):
    """Dropout of whole 3-D feature maps: as SpatialDropout2D, one draw per sample and
    channel (noise shape ``(batch, 1, 1, 1, channels)``).

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        data_format: ``"channels_last"`` or ``"channels_first"``; None:
            ``minidl.config.image_data_format()``.
        seed: optional int: the layer draws from its own generator (see Dropout).

    Input shape: 5-D ``(batch, dim1, dim2, dim3, channels)``, or ``(batch, channels, dim1,
    dim2, dim3)`` with channels_first. Output shape: the same.
    """

    rank = 5
    _dims = "(batch, dim1, dim2, dim3, channels)"


@LAYERS.register()
class GaussianNoise(SeededDrawsMixin, Layer):
    """Adds zero-centred Gaussian noise of standard deviation ``stddev`` to its input in
    training; at inference the input passes through. A regularizer, and a form of data
    augmentation for real-valued inputs.

    The gradient passes through unchanged (the noise does not depend on the input).

    Args:
        stddev: float in [0, 1] (Keras' range), the standard deviation of the noise.
        seed: optional int: the layer draws from its own generator seeded with it, whose
            state ``model.save`` stores (see Dropout); without it, from fit's training
            stream.

    Input shape: any. Output shape: same as the input.

    Example:
        >>> model = Sequential([Input((20,)), GaussianNoise(0.1), Dense(1)])
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real) \
                or not 0.0 <= stddev <= 1.0:
            raise ValueError(f"Invalid value received for argument `stddev`. Expected a float "
                             f"in [0, 1]. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self._init_seed(seed)

    def forward(self, ctx, x, training=False):
        if not training or self.stddev == 0.0:
            return x
        x = _contiguous(x)
        key = self.rng().bit_generator.random_raw()
        y = ctx.buffers.get("y", x.shape[0], x.shape[1:]) if ctx.record else np.empty_like(x)
        return _kernels.gaussian_noise_forward(x, y, self.stddev, key,
                                               f"GaussianNoise '{self.name}'")

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None   # y = x + noise

    def get_config(self):
        config = super().get_config()
        config.update(stddev=self.stddev, seed=self.seed)
        return config


@LAYERS.register()
class GaussianDropout(SeededDrawsMixin, Layer):
    """Multiplies its input by 1-centred Gaussian noise of standard deviation
    ``sqrt(rate / (1 - rate))`` in training (the variance of inverted dropout of the same
    rate); at inference the input passes through.

    Args:
        rate: float in [0, 1), the drop probability the noise imitates.
        seed: optional int: the layer draws from its own generator (see Dropout).

    Input shape: any. Output shape: same as the input.

    Example:
        >>> model = Sequential([Input((20,)), Dense(64), GaussianDropout(0.2), Dense(1)])
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate)
        self._init_seed(seed)

    def forward(self, ctx, x, training=False):
        ctx.keep = None
        if not training or self.rate == 0.0:
            return x
        x = _contiguous(x)
        n = x.shape[0]
        key = self.rng().bit_generator.random_raw()
        if ctx.record:
            y = ctx.buffers.get("y", n, x.shape[1:])
            noise = ctx.buffers.get("noise", n, x.shape[1:])
        else:
            y, noise = np.empty_like(x), np.empty_like(x)
        _kernels.gaussian_dropout_forward(x, noise, y, math.sqrt(self.rate / (1.0 - self.rate)),
                                          key, f"GaussianDropout '{self.name}'")
        if ctx.record:
            ctx.keep = noise
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        if ctx.keep is None:
            return dy
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        return _kernels.dropout_backward(_contiguous(dy), ctx.keep, dx)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


# SELU's constants (Klambauer et al., 2017): alpha dropout sets dropped units to SELU's
# negative saturation value -_SELU_ALPHA * _SELU_SCALE.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@LAYERS.register()
class AlphaDropout(Dropout):
    """Dropout that keeps the mean and variance of its inputs, for self-normalizing networks
    (SELU activations, ``lecun_normal`` kernels; Klambauer et al., 2017).

    In training each unit is kept with probability ``1 - rate``; dropped units are set to
    SELU's saturation value ``alpha' = -alpha * scale``, then every unit goes through
    ``a * x + b`` with ``a = ((1 - rate) * (1 + rate * alpha'^2))^(-1/2)`` and
    ``b = -a * alpha' * rate``, so zero-mean unit-variance inputs keep both moments. At
    inference the input passes through.

    Args:
        rate: float in [0, 1), the fraction of units to drop.
        noise_shape: optional tuple, as in Dropout: the shape of the keep mask broadcast over
            the input.
        seed: optional int: the layer draws from its own generator (see Dropout).

    Input shape: any. Output shape: same as the input.

    Example:
        >>> model = Sequential([Input((20,)), Dense(64, activation="selu",
        ...                     kernel_initializer="lecun_normal"), AlphaDropout(0.1),
        ...                     Dense(1)])
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        self._a = ((1.0 - self.rate) * (1.0 + self.rate * alpha_p ** 2)) ** -0.5
        self._b = -self._a * alpha_p * self.rate
        self._dropped = self._a * alpha_p + self._b

    def forward(self, ctx, x, training=False):
        ctx.keep = None
        if not training or self.rate == 0.0:
            return x
        x = _contiguous(x)
        n = x.shape[0]
        key = self.rng().bit_generator.random_raw()
        shape = x.shape if self.noise_shape is None else self._resolve_noise_shape(x.shape)
        if ctx.record:
            y = ctx.buffers.get("y", n, x.shape[1:])
            mask = ctx.buffers.get("mask", shape[0], shape[1:])
        else:
            y, mask = np.empty_like(x), np.empty(shape, x.dtype)
        owner = f"AlphaDropout '{self.name}'"
        if mask.shape == x.shape:
            _kernels.alpha_dropout_forward(x, mask, y, self.rate, key, self._a, self._b,
                                           self._dropped, owner)
        else:
            _kernels.alpha_dropout_mask(mask, self.rate, key, self._a, owner)
            np.multiply(x, mask, out=y)
            np.add(y, np.where(mask != 0, x.dtype.type(self._b), x.dtype.type(self._dropped)),
                   out=y)
        if ctx.record:
            ctx.keep = mask
        return y


@LAYERS.register()
class ActivityRegularization(Layer):
    """Passes its input through and adds ``l1 * sum(|x|) + l2 * sum(x^2)``, divided by the
    batch size, to the training loss (the penalty's gradient flows back through it).

    Args:
        l1: non-negative float, the L1 factor (default 0.0).
        l2: non-negative float, the L2 factor (default 0.0).

    Input shape: any. Output shape: same as the input.
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l1 = regularizers._factor(l1, "l1")
        self.l2 = regularizers._factor(l2, "l2")
        self.activity_regularizer = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def forward(self, ctx, x, training=False):
        x = _contiguous(x)
        if ctx.record:
            ctx.x = x
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = _contiguous(dy)
        return self._activity_backward(ctx.x, dy,
                                       ctx.buffers.get("dx", dy.shape[0], dy.shape[1:]))

    def get_config(self):
        config = super().get_config()
        config.update(l1=self.l1, l2=self.l2)
        return config
