"""Layers for sequences that are not recurrent: Masking, SpatialDropout1D, RepeatVector and
the TimeDistributed wrapper.

Sequences are ``(batch, timesteps, features)``; the number of timesteps may change from
batch to batch (a None in the sample shape). Masks follow Keras: a bool ``(batch,
timesteps)`` array, True where a step holds data; Masking makes one, and the layers here
that keep the steps (SpatialDropout1D, TimeDistributed) pass the incoming one on.

Everything here is whole-array numpy into buffers of the call's context: each layer costs
one or two passes over its input, which a kernel of its own would not make much shorter.
"""
import numbers
import operator

import numpy as np

from minidl.layers.base import LAYERS, CallContext, Layer
from minidl.layers.regularization import BaseSpatialDropout


def _full(shape):
    return (None,) + tuple(shape)


@LAYERS.register()
class Masking(Layer):
    """Masks the timesteps of a sequence whose features all equal ``mask_value``.

    The output is the input with those timesteps set to 0; the mask
    ``any(inputs != mask_value, axis=-1)`` goes to the layers after it (``compute_mask``),
    which skip those steps where they support masking (RNNs, GlobalAveragePooling1D).

    Args:
        mask_value: the value that marks a padded step (default 0.0).

    Input shape: ``(batch, timesteps, features)`` (any rank; the last axis is the
    features). Output shape: the same.

    Example:
        >>> x[:, 3, :] = 0.0                          # step 3 is padding
        >>> model = Sequential([Input((10, 8)), Masking(0.0), LSTM(32)])
    """

    supports_masking = True
    _makes_masks = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise ValueError(f"Masking mask_value must be a number. Received: "
                             f"mask_value={mask_value!r:.100}")
        self.mask_value = float(mask_value)

    def compute_mask(self, inputs, mask=None):
        return np.any(np.not_equal(inputs, self.mask_value), axis=-1)

    def forward(self, ctx, x, training=False):
        x = np.ascontiguousarray(x)
        keep = np.any(np.not_equal(x, self.mask_value), axis=-1, keepdims=True)
        y = (ctx.buffers.get("y", x.shape[0], x.shape[1:]) if ctx.record
             else np.empty(x.shape, self.dtype))
        np.multiply(x, keep, out=y)
        if ctx.record:
            ctx.keep = keep
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        return np.multiply(dy, ctx.keep, out=dx)

    def get_config(self):
        config = super().get_config()
        config["mask_value"] = self.mask_value
        return config


@LAYERS.register()
class SpatialDropout1D(BaseSpatialDropout):
    """Dropout of whole channels: in training, each channel of a sample is zeroed at every
    timestep with probability ``rate`` (one draw per sample and channel: noise shape
    ``(batch, 1, channels)``), the others scaled by ``1 / (1 - rate)``; at inference the
    input passes through. Where neighbouring steps are strongly correlated (after a
    convolution or an embedding), dropping single values barely regularizes.

    Args:
        rate: float in [0, 1), the fraction of channels to drop.
        seed: optional int: the layer draws from its own generator (see Dropout).

    Input shape: 3-D ``(batch, timesteps, channels)``. Output shape: the same.
    """

    rank = 3
    _dims = "(batch, timesteps, channels)"


@LAYERS.register()
class RepeatVector(Layer):
    """Repeats each input vector ``n`` times: ``(batch, features)`` becomes
    ``(batch, n, features)``.

    Args:
        n: positive int, the number of repetitions.

    Input shape: 2-D ``(batch, features)``. Output shape: 3-D ``(batch, n, features)``.

    Example:
        >>> RepeatVector(3)(np.ones((2, 32))).shape
        (2, 3, 32)
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        try:
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.") from None
        if n <= 0:
            raise ValueError(f"RepeatVector n must be a positive int. Received: n={n}")
        self.n = int(n)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Layer '{self.name}' (RepeatVector) expects 2-D input "
                             f"(batch, features); received input of shape "
                             f"{_full(input_shape)}.")
        return (self.n, input_shape[0])

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        if x.ndim != 2:
            raise ValueError(f"Layer '{self.name}' (RepeatVector) expects 2-D input "
                             f"(batch, features); received input of shape {x.shape}.")
        shape = (self.n, x.shape[1])
        y = (ctx.buffers.get("y", x.shape[0], shape) if ctx.record
             else np.empty((x.shape[0],) + shape, self.dtype))
        np.copyto(y, x[:, None, :])
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[2:])
        return np.sum(dy, axis=1, out=dx)

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config


@LAYERS.register()
class TimeDistributed(Layer):
    """Applies a layer to every timestep of its input: ``(batch, timesteps, ...)`` runs
    through ``layer`` as ``(batch * timesteps, ...)``, one batch of all the steps, so the
    same weights serve every step. The wrapped layer's weights are this layer's (in its
    order), and its own forward and backward passes run, on a context of their own kept in
    this call's context.

    Args:
        layer: a Layer instance (Dense, Conv2D, ...), built by this layer for one step's
            shape (or its config, ``{"class_name": ..., "config": ...}``).

    Input shape: ``(batch, timesteps, ...)``, at least 3-D; ``timesteps`` may vary from
    batch to batch. Output shape: ``(batch, timesteps) + layer's output sample shape``.

    A mask passes through to the layers after this one; the wrapped layer sees none (its
    samples are steps). As in Keras, the wrapped layer's activity regularizer does not
    apply, so one is refused.

    Example:
        >>> inputs = Input((10, 128, 128, 3))
        >>> TimeDistributed(Conv2D(64, 3))(inputs).shape
        (None, 10, 126, 126, 64)
    """

    supports_masking = True

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):   # a layer's config, as get_config writes it
            from minidl.layers import get
            try:
                layer = get(layer)
            except (TypeError, ValueError) as error:
                raise ValueError(f"TimeDistributed cannot make its layer from "
                                 f"layer={layer!r:.200}: {error}") from None
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a Layer "
                             f"instance. Received: layer={layer!r:.100}")
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer   # (a sublayer: its weights are this layer's)

    def _step_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"Layer '{self.name}' (TimeDistributed) expects input of at "
                             f"least 3 dimensions (batch, timesteps, ...); received input of "
                             f"shape {_full(input_shape)}.")
        return input_shape[1:]

    def compute_output_shape(self, input_shape):
        step = self.layer.output_shape_for(self._step_shape(input_shape))
        return (tuple(input_shape)[0],) + tuple(step)

    def build(self, input_shape):
        step = self._step_shape(input_shape)
        if getattr(self.layer, "activity_regularizer", None) is not None:
            raise ValueError(f"Layer '{self.name}' (TimeDistributed) does not apply the "
                             f"activity_regularizer of the layer it wraps ('{self.layer.name}')"
                             f", as in Keras; remove it, or add ActivityRegularization after "
                             f"this layer.")
        self.layer.ensure_built(step)
        # Built for any number of steps: they are batch rows to the wrapped layer.
        super().build((None,) + step)

    def _inner(self, ctx):
        inner = ctx.__dict__.get("inner")
        if inner is None:
            inner = ctx.inner = CallContext(self.layer, record=ctx.record)
        return inner

    def forward(self, ctx, x, training=False):
        if x.ndim < 3:
            raise ValueError(f"Layer '{self.name}' (TimeDistributed) expects input of at "
                             f"least 3 dimensions (batch, timesteps, ...); received input of "
                             f"shape {x.shape}.")
        x = np.ascontiguousarray(x)
        n, steps = x.shape[:2]
        inner = self._inner(ctx)
        inner.mask = None   # the wrapped layer's samples are single steps
        y = self.layer.forward(inner, x.reshape((n * steps,) + x.shape[2:]), training)
        return y.reshape((n, steps) + y.shape[1:])

    def backward(self, ctx, dy, need_input_grad=True):
        inner = ctx.inner
        inner.grads = ctx.grads   # (aligned: this layer's weights are the wrapped layer's)
        n, steps = dy.shape[:2]
        dx = self.layer.backward(inner, np.ascontiguousarray(dy).reshape(
            (n * steps,) + dy.shape[2:]), need_input_grad)
        return None if dx is None else dx.reshape((n, steps) + dx.shape[1:])

    def get_config(self):
        from minidl.utils.registry import serialize
        config = super().get_config()
        config["layer"] = serialize(self.layer)
        return config
