"""Regularization layers: Dropout and ActivityRegularization.

Dropout takes one 64-bit key per training step from its ``numpy.random.Generator`` (its own
when seeded, else the training stream of the running fit, see ``minidl.layers.random_draws``);
one fused pass of ``minidl._core._regularization`` turns the key into the mask (a
counter-based hash of the key and each element's index) and writes the scaled output into a
reused buffer, and backward multiplies by the same mask. A mask depends only on the key, so a
seed gives the same masks for any thread count, and a step allocates nothing. A seeded
layer's generator state goes into model files (``get_random_state``), so training resumes
after a load with the masks it would have drawn.
"""
import numbers

import numpy as np

from minidl import regularizers
from minidl._core import _regularization as _kernels
from minidl.layers.base import LAYERS, Layer
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
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) \
                or not 0.0 <= rate < 1.0:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float "
                             f"in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
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
            raise ValueError(f"Layer '{self.name}' (Dropout) has noise_shape="
                             f"{self.noise_shape}, of {len(self.noise_shape)} dims, for inputs "
                             f"of shape {shape}; it needs one entry per input dim.")
        # Unknown dims (the batch, while building) take any entry.
        resolved = tuple(d if n is None else n for n, d in zip(self.noise_shape, shape))
        if any(d is not None and n not in (1, d) for n, d in zip(resolved, shape)):
            raise ValueError(f"Layer '{self.name}' (Dropout) has noise_shape="
                             f"{self.noise_shape}, which does not broadcast to inputs of shape "
                             f"{shape}: each entry must be None, 1 or the input's size.")
        return resolved

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape),
                      seed=self.seed)
        return config


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
