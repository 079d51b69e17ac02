"""Normalization: shifts and scales features to mean 0 and variance 1 with statistics of the
data (``adapt``) or given ones.

``adapt`` streams over batches: each batch's mean and sum of squared deviations are taken in
float64 (two passes over the batch), and batches are combined with Chan et al.'s pairwise
update, so the statistics of a dataset read in many batches agree with one pass over it to
rounding, and no sum of squares of large values cancels catastrophically.
"""
import math

import numpy as np

from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.base import (PreprocessingLayer, adapt_batches,
                                              numeric_array)
from minidl.utils.checks import check_bool

# keras.backend.epsilon(): the smallest standard deviation the layer divides by.
EPSILON = 1e-7


def _check_axis(axis):
    """The axes as a tuple of ints (``()`` for None); TypeError naming ``axis`` otherwise."""
    if axis is None:
        return ()
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        return (int(axis),)
    if isinstance(axis, (list, tuple)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
            for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(f"Normalization: `axis` must be an int, a tuple of ints or None. "
                    f"Received: axis={axis!r:.100}")


@LAYERS.register()
class Normalization(PreprocessingLayer):
    """A preprocessing layer that normalizes continuous features.

    It returns ``(inputs - mean) / sqrt(variance)``, with the mean and variance learned
    from data by :meth:`adapt` or given to the constructor. The standard deviation it
    divides by is at least 1e-7 (Keras' backend epsilon), so a constant feature maps to 0
    rather than NaN. With ``invert=True`` it computes the inverse,
    ``mean + inputs * sqrt(variance)``.

    The layer has no trainable weights; in a model it passes gradients through
    (``dx = dy / sqrt(variance)``), so it can sit before trainable layers.

    Args:
        axis: int, tuple of ints, or None: the axis or axes (of the whole input, the batch
            axis being 0) that keep a separate mean and variance per index. With inputs of
            shape ``(None, 5)`` and ``axis=-1`` (the default) there are 5 of each; with
            ``axis=None`` one mean and one variance cover every value. The batch axis
            cannot be kept; for a batch of scalars (1-D inputs) pass ``axis=None``.
        mean: optional mean value(s), broadcast to the shape of the kept axes (aligned on
            the right). Given with ``variance``; the layer then needs no ``adapt``.
        variance: optional variance value(s) (>= 0), given with ``mean``.
        invert: if True, turn normalized inputs back into the original scale.

    Weights (as in Keras, when mean and variance are not given): ``mean``, ``variance``
    (float, the shape of the kept axes) and ``count`` (int64, the number of values each
    statistic was computed from), all non-trainable. Before ``adapt`` they hold Keras's
    initial values, mean 0, variance 1 and count 0, so the layer passes its inputs
    through unchanged (as Keras's does; EfficientNet's stem relies on it).

    Input shape: any, ``(batch_size, ...)``. Output shape: the same, in the layer's dtype
    (float32 by default), whatever the input's type.

    Examples:
        >>> layer = Normalization(axis=None)
        >>> layer.adapt(np.array([1., 2., 3., 4., 5.], dtype="float32"))
        >>> layer(np.array([1., 2., 3.], dtype="float32"))   # [-1.4142135, -0.70710677, 0.]

        >>> layer = Normalization(mean=3., variance=2.)
        >>> layer(np.array([[1.], [2.], [3.]], dtype="float32"))
        ... # [[-1.4142135], [-0.70710677], [0.]]
    """

    _any_shape = False

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self._axes = _check_axis(axis)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else \
            None if axis is None else int(axis)
        self.invert = check_bool("Normalization", "invert", invert)
        if (mean is None) != (variance is None):
            raise ValueError(f"When setting values directly, both `mean` and `variance` must "
                             f"be set. Received: mean={mean!r:.100} and "
                             f"variance={variance!r:.100}")
        self._input_mean = self._input_variance = None
        if mean is not None:
            mean = numeric_array("Normalization", "mean", mean)
            variance = numeric_array("Normalization", "variance", variance)
            if np.any(variance < 0):
                raise ValueError(f"Normalization: `variance` must be >= 0. Received: "
                                 f"variance={variance.tolist()!r:.100}")
            if mean.shape != variance.shape:
                raise ValueError(f"When setting values directly, `mean` and `variance` must "
                                 f"have the same shape. Received: mean shape {mean.shape} and "
                                 f"variance shape {variance.shape}")
            if mean.ndim > len(self._axes):
                raise ValueError(f"The rank of `mean` must be less than or equal to the "
                                 f"number of axes ({len(self._axes)}). Received: mean shape "
                                 f"{mean.shape} for axis={self.axis}")
            self._input_mean, self._input_variance = mean, variance
        self._constants = None   # (mean, standard deviation), broadcastable, when given
        # One mean and variance for every value (axis=None) fit inputs of any shape.
        self._any_shape = not self._axes

    # ---- building ----

    def build(self, input_shape):
        full = (None,) + tuple(input_shape)
        ndim = len(full)
        if any(not -ndim <= a < ndim for a in self._axes):
            raise ValueError(f"Layer '{self.name}' (Normalization): all `axis` values must be "
                             f"in the range [-ndim, ndim). Received inputs of shape {full} "
                             f"(ndim={ndim}), while axis={self.axis}")
        keep = sorted({a % ndim for a in self._axes})
        if 0 in keep:
            raise ValueError(f"Layer '{self.name}' (Normalization): axis={self.axis} names the "
                             f"batch axis of inputs of shape {full}, which cannot keep "
                             f"statistics of its own. For a batch of scalars (1-D inputs) "
                             f"pass axis=None.")
        unknown = [d for d in keep if full[d] is None]
        if unknown:
            raise ValueError(f"Layer '{self.name}' (Normalization): all `axis` values to be "
                             f"kept must have a known shape. Received axis={self.axis}, "
                             f"inputs.shape={full}, with unknown axis at index {unknown[0]}")
        self._keep = tuple(keep)
        self._reduce = tuple(d for d in range(ndim) if d not in keep)
        self._stat_shape = tuple(full[d] for d in keep)
        # The statistics' shape broadcast against a sample (the batch axis left out);
        # scalars when no axis is kept, which broadcast against samples of any shape.
        self._broadcast_shape = tuple(full[d] if d in keep else 1 for d in range(1, ndim)) \
            if keep else ()
        if self._input_mean is None:
            self.mean = self.add_weight(self._stat_shape, "zeros", trainable=False,
                                        name="mean")
            self.variance = self.add_weight(self._stat_shape, "ones", trainable=False,
                                            name="variance")
            self.count = self.add_weight((), "zeros", dtype="int64", trainable=False,
                                         name="count")
        else:
            self._constants = self._broadcast_given(full)
        super().build(input_shape)

    def _broadcast_given(self, full):
        """The given mean and standard deviation, broadcast to the statistics' shape: a
        scalar everywhere, else its dims aligned with the kept axes from the right."""
        mean, variance = self._input_mean, self._input_variance
        expanded = [1] * (len(full) - 1) if self._keep else []
        if mean.ndim > len(self._keep):
            raise ValueError(f"Layer '{self.name}' (Normalization): `mean` of shape "
                             f"{mean.shape} has more dims than the {len(self._keep)} kept "
                             f"axes of axis={self.axis}.")
        for i in range(1, mean.ndim + 1):
            expanded[self._keep[-i] - 1] = mean.shape[-i]
        try:
            mean = np.broadcast_to(mean.reshape(expanded), self._broadcast_shape)
            variance = np.broadcast_to(variance.reshape(expanded), self._broadcast_shape)
        except ValueError:
            raise ValueError(f"Layer '{self.name}' (Normalization): `mean` and `variance` of "
                             f"shape {self._input_mean.shape} do not broadcast to the kept "
                             f"axes {self._stat_shape} of inputs of shape {full} "
                             f"(axis={self.axis}).") from None
        mean = np.ascontiguousarray(mean, dtype=self.dtype)
        std = np.maximum(np.sqrt(variance.astype(self.dtype)), EPSILON)
        return mean, np.ascontiguousarray(std)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # ---- adapt ----

    def adapt(self, data, batch_size=None, steps=None):
        """Computes the mean and variance of the data, per index of the kept axes.

        The statistics replace those of any earlier ``adapt``; the variance is the biased
        one (divided by the count), as numpy's ``var`` and Keras compute it.

        Args:
            data: a numpy array (or nested list of numbers) of shape
                ``(samples, ...)``, or an iterable of such batches (a list of arrays, a
                generator, a dataset; a batch ``(x, y, ...)`` gives its ``x``).
            batch_size: optional int, the rows read at once from array data (by default,
                chunks of about a million values).
            steps: optional int, the number of batches to read from an iterable.

        Raises:
            ValueError: the data is empty, holds NaN or infinity, or its kept axes do not
                match the shape the layer was built for; the layer was given mean and
                variance.
            TypeError: the data is not numeric, or not an array or iterable.
        """
        if self._input_mean is not None:
            raise ValueError(f"Layer '{self.name}' (Normalization) was given `mean` and "
                             f"`variance`; adapt() cannot replace them. Make the layer "
                             f"without mean and variance to learn them from data.")
        total, mean, m2 = 0, None, None
        for batch in adapt_batches(data, batch_size, steps, self):
            if not self.built:
                self.ensure_built(batch.shape[1:])
            else:
                self._check_adapt_shape(batch.shape)
            # (With no kept axis, batches of any shape: every axis is reduced.)
            reduce = self._reduce if self._keep else tuple(range(batch.ndim))
            count = math.prod(batch.shape[d] for d in reduce)
            if count == 0:
                continue
            x = batch.astype(np.float64, copy=False)
            batch_mean = x.mean(axis=reduce)
            deviations = x - batch_mean.reshape((1,) + self._broadcast_shape)
            np.square(deviations, out=deviations)
            batch_m2 = deviations.sum(axis=reduce)
            if mean is None:
                total, mean, m2 = count, batch_mean, batch_m2
                continue
            # Chan, Golub and LeVeque's update of the pooled mean and sum of squares.
            combined = total + count
            delta = batch_mean - mean
            mean = mean + delta * (count / combined)
            m2 = m2 + batch_m2 + np.square(delta) * (total * count / combined)
            total = combined
        if mean is None:
            raise ValueError(f"Layer '{self.name}' (Normalization) adapt() received no data "
                             f"(an empty array or iterable). Pass at least one sample, e.g. "
                             f"layer.adapt(x) or layer.adapt(list_of_batches).")
        variance = m2 / total
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance))):
            raise ValueError(f"Layer '{self.name}' (Normalization) adapt() received data "
                             f"holding NaN or infinite values; their mean and variance are "
                             f"undefined.")
        self.mean.value[...] = mean
        self.variance.value[...] = variance
        self.count.value[...] = total

    def _check_adapt_shape(self, shape):
        if not self._keep:
            return
        built = (None,) + tuple(self.built_input_shape)
        if len(shape) != len(built) or any(shape[d] != built[d] for d in self._keep):
            raise ValueError(f"Layer '{self.name}' (Normalization) was built with input_shape="
                             f"{built}, but adapt() is being called with data with an "
                             f"incompatible shape, data.shape={tuple(shape)}: the kept axes "
                             f"{list(self._keep)} must match.")

    # ---- computation ----

    def _statistics(self):
        """(mean, standard deviation), broadcastable against a sample."""
        if self._constants is not None:
            return self._constants
        # (Taken from the weights at each call, so set_weights and loading a model take
        # effect; the cost is one pass over the statistics, not over the batch.)
        mean = self.mean.value.reshape(self._broadcast_shape)
        std = np.maximum(np.sqrt(self.variance.value), EPSILON).reshape(self._broadcast_shape)
        return mean, std

    def forward(self, ctx, x, training=False):
        mean, std = self._statistics()
        y = self._output_buffer(ctx, x.shape)
        if self.invert:
            np.multiply(x, std, out=y)
            np.add(y, mean, out=y)
        else:
            np.subtract(x, mean, out=y)
            np.divide(y, std, out=y)
        if ctx.record:
            ctx.std = std
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        if self.invert:
            return np.multiply(dy, ctx.std, out=dx)
        return np.divide(dy, ctx.std, out=dx)

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis, invert=self.invert,
            mean=None if self._input_mean is None else self._input_mean.tolist(),
            variance=None if self._input_variance is None else self._input_variance.tolist())
        return config
