"""Normalization layers: BatchNormalization, LayerNormalization, GroupNormalization and
UnitNormalization.

All run on the fused kernels of ``minidl._core._normalization``: one call computes the
statistics and writes the normalised, scaled and shifted output (batch norm also updates its
moving statistics in the same call); one call computes every gradient. Statistics are
accumulated in double in a fixed order, so results are the same for any thread count.
"""
import math
import numbers

import numpy as np

from minidl import constraints, initializers, regularizers
from minidl.autodiff.tensor import WeightWrites
from minidl._core import _normalization as _kernels
from minidl.layers.base import LAYERS, Layer
from minidl.layers.core import _serialize_init
from minidl.utils.checks import check_bool


def _check_epsilon(epsilon, layer):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
            or not 0 < epsilon < math.inf:
        raise ValueError(f"{layer} epsilon must be a positive, finite float; received "
                         f"epsilon={epsilon!r}.")
    return float(epsilon)


def _contiguous(x):
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


class _ScaleAndOffset(Layer):
    """A normalization layer's learned per-feature scale ``gamma`` (``scale=True``) and
    offset ``beta`` (``center=True``), with their initializers, regularizers and constraints:
    the arguments, weights and config keys BatchNormalization, LayerNormalization and
    GroupNormalization share, as in Keras."""

    def _init_scale_and_offset(self, center, scale, beta_initializer, gamma_initializer,
                               beta_regularizer, gamma_regularizer, beta_constraint,
                               gamma_constraint):
        owner = type(self).__name__
        self.center = check_bool(owner, "center", center)
        self.scale = check_bool(owner, "scale", scale)
        # The initializers as given, for get_config; resolved once, here, for build.
        self.beta_initializer = beta_initializer
        self.gamma_initializer = gamma_initializer
        self._initializers = {
            "beta": self._resolve("beta_initializer", beta_initializer, initializers.get),
            "gamma": self._resolve("gamma_initializer", gamma_initializer, initializers.get)}
        self.beta_regularizer = self._resolve("beta_regularizer", beta_regularizer,
                                              regularizers.get)
        self.gamma_regularizer = self._resolve("gamma_regularizer", gamma_regularizer,
                                               regularizers.get)
        self.beta_constraint = self._resolve("beta_constraint", beta_constraint,
                                             constraints.get)
        self.gamma_constraint = self._resolve("gamma_constraint", gamma_constraint,
                                              constraints.get)

    def _add_scale_and_offset(self, shape):
        """Create gamma then beta (Keras' order) of ``shape``, each where asked for."""
        self.gamma = self.add_weight(shape, self._initializers["gamma"],
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint,
                                     name="gamma") if self.scale else None
        self.beta = self.add_weight(shape, self._initializers["beta"],
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint,
                                    name="beta") if self.center else None

    def _kernel_scale_and_offset(self, shape):
        """gamma and beta for the kernels, which always take both: ones and zeros stand in
        for absent ones."""
        return (self.gamma.value if self.scale else np.ones(shape, self.dtype),
                self.beta.value if self.center else np.zeros(shape, self.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            center=self.center, scale=self.scale,
            beta_initializer=_serialize_init(self.beta_initializer),
            gamma_initializer=_serialize_init(self.gamma_initializer),
            beta_regularizer=regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
            beta_constraint=constraints._serialize_argument(self, "beta_constraint",
                                                            self.beta_constraint),
            gamma_constraint=constraints._serialize_argument(self, "gamma_constraint",
                                                             self.gamma_constraint))
        return config


@LAYERS.register()
class BatchNormalization(_ScaleAndOffset):
    """Normalizes its inputs per channel with batch statistics in training and moving
    statistics at inference (Ioffe and Szegedy, 2015).

    In training (``fit``, or ``layer(x, training=True)``) the layer returns
    ``gamma * (x - mean(x)) / sqrt(var(x) + epsilon) + beta``, with the mean and the biased
    variance taken per channel over every other axis, and updates
    ``moving_mean = moving_mean * momentum + mean(x) * (1 - momentum)`` (likewise
    ``moving_variance`` with var(x)). At inference it normalises with the moving statistics.
    A frozen layer (``trainable=False``) runs in inference mode even in training, as in Keras.

    Args:
        axis: int, the channel axis (default -1: features, or channels-last images).
        momentum: float in [0, 1], momentum of the moving averages (default 0.99).
        epsilon: small positive float added to the variance (default 1e-3).
        center: add the learned offset ``beta`` (default True).
        scale: multiply by the learned scale ``gamma`` (default True).
        beta_initializer, gamma_initializer: initializers of beta ('zeros') and gamma ('ones').
        moving_mean_initializer, moving_variance_initializer: 'zeros' and 'ones'.
        beta_regularizer, gamma_regularizer: optional regularizers of beta and gamma.
        beta_constraint, gamma_constraint: optional constraints of beta and gamma, applied
            after each optimizer update.
        synchronized: in data-parallel training (:mod:`minidl.distributed`, more than one
            rank), take the training statistics over every rank's batch, as one process
            with the global batch would, and their gradients likewise; the moving statistics
            stay the same on every rank. Each training step then exchanges two small
            vectors per layer (reproducibly, in rank order). Without it (the default, as in
            Keras and Horovod) each rank normalises with its own batch's statistics. In one
            process it changes nothing.

    Input shape:
        Any rank >= 2, ``(batch_size, ...)``.
    Output shape:
        Same as the input.

    Weights (Keras order): gamma, beta (trainable), moving_mean, moving_variance.

    Example:
        >>> model = Sequential([Input((784,)), Dense(64), BatchNormalization(),
        ...                     Activation("relu"), Dense(10, activation="softmax")])
    """

    # As in Keras, an incoming mask passes on. (Keras also leaves masked steps out of the
    # batch statistics; minidl's statistics take every step.)
    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"BatchNormalization axis must be an int; received axis={axis!r}.")
        self.synchronized = check_bool("BatchNormalization", "synchronized", synchronized)
        self.axis = int(axis)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
                or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be a float in [0, 1]; "
                             f"received momentum={momentum!r}.")
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon, "BatchNormalization")
        self._init_scale_and_offset(center, scale, beta_initializer, gamma_initializer,
                                    beta_regularizer, gamma_regularizer, beta_constraint,
                                    gamma_constraint)
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        for weight, identifier in (("moving_mean", moving_mean_initializer),
                                   ("moving_variance", moving_variance_initializer)):
            self._initializers[weight] = self._resolve(f"{weight}_initializer", identifier,
                                                       initializers.get)

    def build(self, input_shape):
        ndim = len(input_shape) + 1
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(
                f"Layer '{self.name}' (BatchNormalization) got axis={self.axis} for inputs of "
                f"shape {(None,) + tuple(input_shape)}; the axis must be a non-batch axis "
                f"in [{-ndim + 1}, {ndim - 1}], 0 excepted.")
        self._axis = self.axis % ndim   # in the full input, batch axis included
        shape = (input_shape[self._axis - 1],)
        self._add_scale_and_offset(shape)
        self.moving_mean = self.add_weight(shape, self._initializers["moving_mean"],
                                           trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape, self._initializers["moving_variance"],
                                               trainable=False, name="moving_variance")
        self._gamma, self._beta = self._kernel_scale_and_offset(shape)
        self._moving_mean = self.moving_mean.value
        self._moving_variance = self.moving_variance.value
        self._zeros = np.zeros(shape, self.dtype)
        self._channels = shape
        self._owner = f"BatchNormalization '{self.name}'"
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, ctx, x, training=False):
        x = _contiguous(x)
        if ctx.record:
            y = ctx.buffers.get("y", x.shape[0], x.shape[1:])
        else:  # inference allocates, so that concurrent predict calls never share buffers
            y = np.empty_like(x)
        batch_stats = training and self.trainable
        relu = ctx.activation is not None   # a ReLU layer after it, fused by the plan
        relu_max = 6 if relu and ctx.activation.kernel_params()[0] == "relu6" else None
        synchronized = batch_stats and self._across_ranks()
        if synchronized:
            mean, invstd = self._synchronized_forward(x, y, relu, relu_max)
            WeightWrites.written()   # the moving statistics moved
        elif batch_stats:
            # The batch statistics, kept for backward (a fresh pair when not recording).
            mean = ctx.buffers.get("mean", self._channels[0], ()) if ctx.record else \
                np.empty(self._channels, self.dtype)
            invstd = ctx.buffers.get("invstd", self._channels[0], ()) if ctx.record else \
                np.empty(self._channels, self.dtype)
            _kernels.batch_norm_train(x, self._axis, self._gamma, self._beta, self._moving_mean,
                                      self._moving_variance, mean, invstd, y,
                                      self.momentum, self.epsilon, self._owner, relu, relu_max)
            WeightWrites.written()   # the moving statistics moved
        else:
            _kernels.batch_norm_inference(x, self._axis, self._gamma, self._beta,
                                          self._moving_mean, self._moving_variance, y,
                                          self.epsilon, self._owner, relu, relu_max)
        if ctx.record:
            ctx.y = y
            ctx.x, ctx.batch_stats, ctx.synchronized = x, batch_stats, synchronized
            if batch_stats:
                ctx.mean, ctx.invstd = mean, invstd
        return y

    # ---- statistics over every rank (synchronized=True) ----

    def _across_ranks(self):
        if not self.synchronized:
            return False
        from minidl.distributed import comm
        return comm.is_initialized() and comm.size() > 1

    def _rows(self, a):
        """``a`` as (values per channel, channels): a view when the channel axis is last."""
        return np.moveaxis(a, self._axis, -1).reshape(-1, self._channels[0])

    def _synchronized_forward(self, x, y, relu, relu_max):
        """Normalise ``x`` into ``y`` with the mean and biased variance of every rank's batch;
        returns them as (mean, invstd) for backward.

        Each rank sends its count, mean and sum of squared deviations per channel (float64);
        every rank combines them in rank order (Chan et al.'s pairwise update, as one sum),
        so every rank holds the same statistics, in every run."""
        from minidl.distributed import comm
        rows = self._rows(x)
        channels = self._channels[0]
        local_mean = rows.mean(axis=0, dtype=np.float64)
        deviations = rows - local_mean
        local = np.empty(1 + 2 * channels)
        local[0] = rows.shape[0]
        local[1:1 + channels] = local_mean
        local[1 + channels:] = np.einsum("ij,ij->j", deviations, deviations)
        gathered = comm.allgather(local)
        counts, means = gathered[:, :1], gathered[:, 1:1 + channels]
        total = counts.sum()
        mean = (counts * means).sum(axis=0) / total
        variance = (gathered[:, 1 + channels:] + counts * (means - mean) ** 2).sum(axis=0) / total
        mean, variance = mean.astype(self.dtype), variance.astype(self.dtype)
        _kernels.batch_norm_inference(x, self._axis, self._gamma, self._beta, mean, variance,
                                      y, self.epsilon, self._owner, relu, relu_max)
        momentum = self.momentum
        self._moving_mean[...] = self._moving_mean * momentum + mean * (1.0 - momentum)
        self._moving_variance[...] = (self._moving_variance * momentum
                                      + variance * (1.0 - momentum))
        invstd = (1.0 / np.sqrt(variance.astype(np.float64) + self.epsilon)).astype(self.dtype)
        return mean, invstd

    def _synchronized_backward(self, ctx, dy, dx, gate):
        """The gradients of :meth:`_synchronized_forward`: gamma's and beta's from this
        rank's batch (the optimizer averages them over ranks), the input's with the sums
        ``sum(dy)`` and ``sum(dy * x_hat)`` over every rank's batch."""
        from minidl.distributed import comm
        if gate is not None:   # the fused ReLU's gradient first
            dy = ctx.activation.backward(gate, gate, dy, np.empty_like(dy))
        channels = self._channels[0]
        dy_rows = self._rows(dy)
        x_hat = (self._rows(ctx.x) - ctx.mean) * ctx.invstd
        local = np.empty(1 + 2 * channels)
        local[0] = dy_rows.shape[0]
        local[1:1 + channels] = dy_rows.sum(axis=0, dtype=np.float64)
        local[1 + channels:] = np.einsum("ij,ij->j", dy_rows, x_hat, dtype=np.float64)
        if self.scale:
            ctx.grads[0][...] = local[1 + channels:]
        if self.center:
            ctx.grads[-1][...] = local[1:1 + channels]
        if dx is None:
            return None
        total = comm.allreduce_(local)
        count, sum_dy, sum_dy_x_hat = total[0], total[1:1 + channels], total[1 + channels:]
        scale = self._gamma * ctx.invstd
        rows = scale * (dy_rows - (sum_dy / count).astype(self.dtype)
                        - x_hat * (sum_dy_x_hat / count).astype(self.dtype))
        np.moveaxis(dx, self._axis, -1)[...] = rows.reshape(
            np.moveaxis(dx, self._axis, -1).shape)
        return dx

    def backward(self, ctx, dy, need_input_grad=True):
        dy = _contiguous(dy)
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:]) if need_input_grad else None
        gate = ctx.y if ctx.activation is not None else None   # the fused ReLU's output
        if ctx.synchronized:
            return self._synchronized_backward(ctx, dy, dx, gate)
        if ctx.batch_stats:
            relu_max = (6 if gate is not None and ctx.activation.kernel_params()[0] == "relu6"
                        else None)
            _kernels.batch_norm_backward(ctx.x, dy, self._axis, self._gamma, ctx.mean,
                                         ctx.invstd, dx, ctx.grads[0] if self.scale else None,
                                         ctx.grads[-1] if self.center else None, self._owner,
                                         gate, relu_max)
        elif dx is not None:
            if gate is not None:
                dy = ctx.activation.backward(gate, gate, dy, dx)
            # Frozen: the moving statistics are constants, so dx = dy * gamma / sqrt(var + eps),
            # which is the inference transform of dy with a zero mean and a zero offset.
            _kernels.batch_norm_inference(dy, self._axis, self._gamma, self._zeros, self._zeros,
                                          self._moving_variance, dx, self.epsilon, self._owner)
        return dx

    def can_fuse_activation(self, activation):
        """A ReLU or ReLU6 layer after it runs in its passes
        (``rewrites.activation_into_layer``): MobileNet's BatchNormalization, ReLU6 pairs."""
        return activation.kernel_params()[0] in ("relu", "relu6")

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
            synchronized=self.synchronized,
            moving_mean_initializer=_serialize_init(self.moving_mean_initializer),
            moving_variance_initializer=_serialize_init(self.moving_variance_initializer))
        return config


@LAYERS.register()
class LayerNormalization(_ScaleAndOffset):
    """Normalizes each sample over its last axis (or trailing axes) (Ba et al., 2016).

    For each sample, with the mean and biased variance over the normalised axes:
    ``output = gamma * (x - mean) / sqrt(var + epsilon) + beta``. Training and inference
    compute the same thing.

    Args:
        axis: int or list of ints, the axes to normalise (default -1). They must be the
            trailing axes of the input, e.g. ``[-2, -1]``; gamma and beta span them.
        epsilon: small positive float added to the variance (default 1e-3).
        center: add the learned offset ``beta`` (default True).
        scale: multiply by the learned scale ``gamma`` (default True).
        beta_initializer, gamma_initializer: initializers ('zeros' and 'ones').
        beta_regularizer, gamma_regularizer: optional regularizers.
        beta_constraint, gamma_constraint: optional constraints, applied after each
            optimizer update.

    Input shape:
        Any rank >= 2, ``(batch_size, ...)``.
    Output shape:
        Same as the input.

    Example:
        >>> layer = LayerNormalization()
        >>> y = layer(np.random.rand(4, 16))   # each row now has mean ~0 and variance ~1
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axes = list(axis)
        else:
            axes = [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                           for a in axes):
            raise TypeError(f"LayerNormalization axis must be an int or a list of ints; "
                            f"received axis={axis!r}.")
        self.axis = [int(a) for a in axes] if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = _check_epsilon(epsilon, "LayerNormalization")
        self._init_scale_and_offset(center, scale, beta_initializer, gamma_initializer,
                                    beta_regularizer, gamma_regularizer, beta_constraint,
                                    gamma_constraint)

    def build(self, input_shape):
        ndim = len(input_shape) + 1
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        full = (None,) + tuple(input_shape)
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"Layer '{self.name}' (LayerNormalization) got axis={self.axis} "
                             f"for inputs of shape {full}: an axis is out of range.")
        resolved = sorted({a % ndim for a in axes})
        if 0 in resolved or resolved != list(range(ndim - len(resolved), ndim)):
            raise ValueError(f"Layer '{self.name}' (LayerNormalization) normalises trailing "
                             f"axes only (not the batch axis); received axis={self.axis} for "
                             f"inputs of shape {full}.")
        shape = tuple(full[a] for a in resolved)
        self._cols = int(np.prod(shape))
        self._row_shape = tuple(input_shape[:len(input_shape) - len(resolved)])
        self._add_scale_and_offset(shape)
        self._param_shape = shape
        self._gamma_beta = (self.gamma.value, self.beta.value) \
            if self.scale and self.center else None
        self._owner = f"LayerNormalization '{self.name}'"
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, ctx, x, training=False):
        x = _contiguous(x)
        n = x.shape[0]
        if ctx.record:
            y = ctx.buffers.get("y", n, x.shape[1:])
            mean = ctx.buffers.get("mean", n, self._row_shape)
            invstd = ctx.buffers.get("invstd", n, self._row_shape)
            ctx.x, ctx.mean, ctx.invstd = x, mean, invstd
        else:
            y, mean, invstd = np.empty_like(x), None, None
        gamma, beta = self._gamma_beta or self._stand_ins()
        _kernels.layer_norm_forward(x, self._cols, gamma, beta, mean, invstd, y,
                                    self.epsilon, self._owner)
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        dy = _contiguous(dy)
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:]) if need_input_grad else None
        gamma, _ = self._gamma_beta or self._stand_ins()
        _kernels.layer_norm_backward(ctx.x, dy, self._cols, gamma, ctx.mean,
                                     ctx.invstd, dx, ctx.grads[0] if self.scale else None,
                                     ctx.grads[-1] if self.center else None, self._owner)
        return dx

    def _stand_ins(self):
        """gamma and beta for the kernels, which always take both: ones and zeros stand in
        for absent ones. Made on first use rather than in build, so that building a model
        (and loading one) allocates its weights only: these span the normalised axes, which
        a config can make huge without a byte of weights in its file."""
        shape = self._param_shape
        self._gamma_beta = self._kernel_scale_and_offset(shape)
        return self._gamma_beta

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, epsilon=self.epsilon)
        return config


@LAYERS.register()
class GroupNormalization(_ScaleAndOffset):
    """Normalizes each sample over groups of channels (Wu and He, 2018).

    The channels of ``axis`` split into ``groups`` groups of consecutive channels; each
    (sample, group) is normalised with the mean and biased variance of its channels over
    every other non-batch axis: ``output = gamma * (x - mean) / sqrt(var + epsilon) + beta``,
    gamma and beta per channel. ``groups=1`` normalises each sample as a whole (close to
    LayerNormalization over all axes); ``groups=-1`` (one channel per group) is instance
    normalization. It does not depend on the batch size, and training and inference compute
    the same thing.

    Args:
        groups: int, the number of groups (default 32), or -1 for one group per channel;
            it must divide the number of channels.
        axis: int, the channel axis (default -1).
        epsilon: small positive float added to the variance (default 1e-3).
        center: add the learned offset ``beta`` (default True).
        scale: multiply by the learned scale ``gamma`` (default True).
        beta_initializer, gamma_initializer: initializers ('zeros' and 'ones').
        beta_regularizer, gamma_regularizer: optional regularizers.
        beta_constraint, gamma_constraint: optional constraints, applied after each
            optimizer update.

    Input shape:
        Any rank >= 2, ``(batch_size, ...)``; the channel axis of known size.
    Output shape:
        Same as the input.

    Weights (Keras order): gamma, beta, each of shape ``(channels,)``.

    Example:
        >>> model = Sequential([Input((32, 32, 3)), Conv2D(64, 3), GroupNormalization(8),
        ...                     Activation("relu")])
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) \
                or (groups <= 0 and groups != -1):
            raise ValueError(f"Received an invalid value for argument `groups`, expected a "
                             f"positive integer (or `-1` for instance normalization). "
                             f"Received: groups={groups!r}")
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"GroupNormalization axis must be an int; received axis={axis!r}.")
        self.groups = int(groups)
        self.axis = int(axis)
        self.epsilon = _check_epsilon(epsilon, "GroupNormalization")
        self._init_scale_and_offset(center, scale, beta_initializer, gamma_initializer,
                                    beta_regularizer, gamma_regularizer, beta_constraint,
                                    gamma_constraint)

    def _channel_axis(self, input_shape):
        """The channel axis in the full input (batch axis included)."""
        ndim = len(input_shape) + 1
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape "
                             f"{(None,) + tuple(input_shape)}. Received: axis={self.axis}")
        if self.axis % ndim == 0:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization) got axis={self.axis}, "
                             f"the batch axis of inputs of shape "
                             f"{(None,) + tuple(input_shape)}; the axis must be a channel "
                             f"axis in [1, {ndim - 1}] (or negative).")
        return self.axis % ndim

    def build(self, input_shape):
        axis = self._channel_axis(input_shape)
        full = (None,) + tuple(input_shape)
        dim = full[axis]
        if dim is None:
            raise ValueError(f"Axis {self.axis} of input tensor should have a defined dimension "
                             f"but the layer received an input with shape {full}.")
        if self.groups == -1:
            self.groups = dim   # (as Keras: the config then holds the number of channels)
        if dim < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number "
                             f"of channels ({dim}).")
        if dim % self.groups != 0:
            raise ValueError(f"Number of groups ({self.groups}) must divide the number of "
                             f"channels ({dim}) of axis {self.axis} of inputs of shape {full}.")
        self._axis = axis
        shape = (dim,)
        self._add_scale_and_offset(shape)
        self._gamma_beta = self._kernel_scale_and_offset(shape)
        self._owner = f"GroupNormalization '{self.name}'"
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        self._channel_axis(input_shape)
        return tuple(input_shape)

    def forward(self, ctx, x, training=False):
        x = _contiguous(x)
        n = x.shape[0]
        if ctx.record:
            y = ctx.buffers.get("y", n, x.shape[1:])
            mean = ctx.buffers.get("mean", n, (self.groups,))
            invstd = ctx.buffers.get("invstd", n, (self.groups,))
            ctx.x, ctx.mean, ctx.invstd = x, mean, invstd
        else:
            y, mean, invstd = np.empty_like(x), None, None
        gamma, beta = self._gamma_beta
        _kernels.group_norm_forward(x, self._axis, self.groups, gamma, beta, mean, invstd, y,
                                    self.epsilon, self._owner)
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        dy = _contiguous(dy)
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:]) if need_input_grad else None
        if dx is None and not (self.scale or self.center):
            return None   # nothing wanted
        _kernels.group_norm_backward(ctx.x, dy, self._axis, self.groups, self._gamma_beta[0],
                                     ctx.mean, ctx.invstd, dx,
                                     ctx.grads[0] if self.scale else None,
                                     ctx.grads[-1] if self.center else None, self._owner)
        return dx

    def get_config(self):
        config = super().get_config()
        config.update(groups=self.groups, axis=self.axis, epsilon=self.epsilon)
        return config


# Keras' UnitNormalization divides by max(norm, 1e-12) (``ops.normalize(epsilon=1e-12)``).
_UNIT_EPSILON = 1e-12


@LAYERS.register()
class UnitNormalization(Layer):
    """Scales each input to unit L2 norm along ``axis``.

    ``output = x * min(1 / sqrt(sum(x^2)), 1e12)``, the sum over the axes: as Keras'
    ``ops.normalize(x, order=2, epsilon=1e-12)``, so a vector of norm below 1e-12 is scaled
    by 1e12 (an all-zero one stays zero) rather than divided by zero.

    Args:
        axis: int or list/tuple of ints, the axis or axes to normalise over (default -1).

    Input shape: any. Output shape: same as the input.

    Example:
        >>> y = UnitNormalization()(np.arange(6.0).reshape(2, 3))
        >>> np.sum(y.numpy()[0] ** 2)   # 1.0
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axes = list(axis)
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axes = [axis]
        else:
            raise TypeError(f"Invalid value for `axis` argument: expected an int or a "
                            f"list/tuple of ints. Received: axis={axis!r}")
        if not axes or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                           for a in axes):
            raise TypeError(f"Invalid value for `axis` argument: expected an int or a "
                            f"non-empty list/tuple of ints. Received: axis={axis!r}")
        self.axis = [int(a) for a in axes] if isinstance(axis, (list, tuple)) else int(axis)

    def _axes(self, ndim):
        """The sorted axes in an input of ``ndim`` dims (batch included)."""
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape of rank "
                             f"{ndim}.")
        resolved = sorted(a % ndim for a in axes)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"Layer '{self.name}' (UnitNormalization) got axis={self.axis}, "
                             f"which names an axis twice for inputs of rank {ndim}.")
        return resolved

    def compute_output_shape(self, input_shape):
        self._axes(len(input_shape) + 1)
        return tuple(input_shape)

    def build(self, input_shape):
        self._axes(len(input_shape) + 1)
        super().build(input_shape)

    def _run(self, x, dy, out):
        """Forward (dy None) or backward of the kernel; axes that are not one contiguous run
        are moved to the end first (a copy: the kernels need a contiguous range)."""
        axes = self._axes(x.ndim)
        owner = f"UnitNormalization '{self.name}'"
        if axes == list(range(axes[0], axes[-1] + 1)):
            if dy is None:
                return _kernels.unit_norm_forward(x, axes[0], axes[-1], out, _UNIT_EPSILON,
                                                  owner)
            return _kernels.unit_norm_backward(x, dy, axes[0], axes[-1], out, _UNIT_EPSILON,
                                               owner)
        order = [a for a in range(x.ndim) if a not in axes] + axes
        first = x.ndim - len(axes)
        xt = np.ascontiguousarray(x.transpose(order))
        result = np.empty_like(xt)
        if dy is None:
            _kernels.unit_norm_forward(xt, first, x.ndim - 1, result, _UNIT_EPSILON, owner)
        else:
            _kernels.unit_norm_backward(xt, np.ascontiguousarray(dy.transpose(order)), first,
                                        x.ndim - 1, result, _UNIT_EPSILON, owner)
        out[...] = result.transpose(np.argsort(order))
        return out

    def forward(self, ctx, x, training=False):
        x = _contiguous(x)
        if ctx.record:
            ctx.x = x
            y = ctx.buffers.get("y", x.shape[0], x.shape[1:])
        else:
            y = np.empty_like(x)
        return self._run(x, None, y)

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = _contiguous(dy)
        return self._run(ctx.x, dy, ctx.buffers.get("dx", dy.shape[0], dy.shape[1:]))

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
