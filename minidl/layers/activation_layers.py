"""Activation layers with Keras 3's own names and arguments: ReLU, LeakyReLU, ELU, Softmax,
PReLU, and Identity.

All but PReLU are an :class:`~minidl.layers.core.Activation` layer over the matching
activation function (the same fused kernels); after a Dense or a convolution without an
activation, the plan runs them as that layer's activation (``rewrites.activation_into_layer``).
PReLU learns its negative slope, one per feature unless axes are shared.
"""
import numpy as np

from minidl import activations, constraints, initializers, regularizers
from minidl.layers.base import LAYERS, Layer
from minidl.layers.core import Activation, _serialize_init


class _ActivationLayer(Activation):
    """An Activation layer whose config holds the function's arguments, not its name."""

    def __init__(self, activation, **kwargs):
        super().__init__(activation, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["activation"]
        return config


@LAYERS.register()
class ReLU(_ActivationLayer):
    """Rectified linear unit: ``max(x, 0)``, or the general form
    ``f(x) = max_value`` for ``x >= max_value``, ``x`` for ``threshold <= x < max_value``,
    ``negative_slope * (x - threshold)`` below.

    Args:
        max_value: float >= 0 or None (default): the saturation value.
        negative_slope: float >= 0 (default 0): the slope below the threshold.
        threshold: float (default 0).

    Input shape: any. Output shape: the same.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(activations.ReLU(negative_slope=negative_slope, max_value=max_value,
                                          threshold=threshold), **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(self.activation.get_config())
        return config


@LAYERS.register()
class LeakyReLU(_ActivationLayer):
    """Leaky ReLU: ``x`` for ``x >= 0``, ``negative_slope * x`` below.

    Args:
        negative_slope: float >= 0 (default 0.3, as in Keras 3's layer).

    Input shape: any. Output shape: the same.
    """

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(activations.LeakyReLU(negative_slope=negative_slope), **kwargs)

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.activation.negative_slope
        return config


@LAYERS.register()
class ELU(_ActivationLayer):
    """Exponential linear unit: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below.

    Args:
        alpha: float (default 1.0).

    Input shape: any. Output shape: the same.
    """

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(activations.ELU(alpha=alpha), **kwargs)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.activation.alpha
        return config


@LAYERS.register()
class Softmax(_ActivationLayer):
    """Softmax along an axis: ``exp(x) / sum(exp(x), axis)``.

    Args:
        axis: int (default -1), the axis normalized.

    Input shape: any. Output shape: the same.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(activations.Softmax(axis=axis), **kwargs)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.activation.axis
        return config


@LAYERS.register()
class Identity(Layer):
    """Returns its input unchanged (a placeholder, or a named point in a graph).

    Input shape: any. Output shape: the same.
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def forward(self, ctx, x, training=False):
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None


@LAYERS.register()
class PReLU(Layer):
    """Parametric ReLU: ``x`` for ``x >= 0``, ``alpha * x`` below, with ``alpha`` learned.

    Args:
        alpha_initializer: initializer of alpha (default 'zeros').
        alpha_regularizer: optional regularizer of alpha.
        alpha_constraint: optional constraint of alpha, applied after each optimizer
            update (e.g. ``'non_neg'``).
        shared_axes: None, or a list of the axes along which alpha is shared, counted
            with the batch axis as 0 (as in Keras): ``[1, 2]`` gives images one alpha per
            channel.

    Input shape: any. Output shape: the same. Weight: alpha, of the input's sample shape
    with 1 on the shared axes.
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None,
                 alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        # Resolved now: an unknown name fails here, naming the argument, not at build.
        self._resolve("alpha_initializer", alpha_initializer, initializers.get)
        self.alpha_initializer = alpha_initializer
        self.alpha_regularizer = self._resolve("alpha_regularizer", alpha_regularizer,
                                               regularizers.get)
        self.alpha_constraint = self._resolve("alpha_constraint", alpha_constraint,
                                              constraints.get)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) \
                else [shared_axes]
            if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1
                   for a in axes):
                raise ValueError(f"PReLU shared_axes must be ints >= 1 (axis 0 is the "
                                 f"batch); received shared_axes={shared_axes!r}.")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape):
        shape = list(input_shape)
        for axis in self.shared_axes or []:
            if axis > len(shape):
                raise ValueError(f"Layer '{self.name}' (PReLU) has shared_axes="
                                 f"{self.shared_axes} for inputs of shape "
                                 f"{(None,) + tuple(input_shape)}.")
            shape[axis - 1] = 1
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint, name="alpha")
        self._sum_axes = tuple([0] + [a for a in self.shared_axes or []])
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        x = np.asarray(x)
        y = ctx.buffers.get("y", x.shape[0], x.shape[1:]) if ctx.record else np.empty_like(x)
        np.multiply(x, self.alpha.value, out=y)
        np.copyto(y, x, where=x >= 0)
        if ctx.record:
            ctx.x = x
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        x = ctx.x
        negative = x < 0
        # d alpha: sum over the batch (and shared axes) of x * dy where x < 0.
        part = np.where(negative, x * dy, 0).astype(dy.dtype, copy=False)
        ctx.grads[0][...] = np.sum(part, axis=self._sum_axes, keepdims=True)[0]
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        np.multiply(dy, self.alpha.value, out=dx)
        np.copyto(dx, dy, where=~negative)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(alpha_initializer=_serialize_init(self.alpha_initializer),
                      alpha_regularizer=regularizers.serialize(self.alpha_regularizer),
                      alpha_constraint=constraints._serialize_argument(self, "alpha_constraint",
                                                                       self.alpha_constraint),
                      shared_axes=self.shared_axes)
        return config
