"""Regression losses: squared, absolute, Huber, squared-log, percentage and log-cosh errors,
and the cosine similarity; each class beside its function form of per-sample values.
"""
import math

from minidl import ops
from minidl._core import _losses as _kernels
from minidl.losses.base import (EPSILON, LOSSES, Loss, _check_axis, _check_float,
                                _ElementwiseLoss, _function_inputs, _LastAxisLoss)


def mean_squared_error(y_true, y_pred):
    """Per-sample mean of squared errors: ``mean(square(y_true - y_pred), axis=-1)``.

    Args:
        y_true: targets, shaped like y_pred (``(n,)`` against ``(n, 1)`` is accepted).
        y_pred: predictions, rank >= 1.
    Returns:
        A Tensor of shape ``y_pred.shape[:-1]``, differentiable with respect to y_pred.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_squared_error")
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


@LOSSES.register("mean_squared_error", "mse")
class MeanSquaredError(_ElementwiseLoss):
    """Mean of squares of errors: ``loss = mean((y_true - y_pred) ** 2, axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_squared_error'.
    """

    _KIND = "mean_squared_error"
    _FUNCTION = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(name=name, reduction=reduction)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean of absolute errors: ``mean(abs(y_true - y_pred), axis=-1)``.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_absolute_error")
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


@LOSSES.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_ElementwiseLoss):
    """Mean of absolute errors: ``loss = mean(abs(y_true - y_pred), axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_absolute_error'.
    """

    _KIND = "mean_absolute_error"
    _FUNCTION = staticmethod(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(name=name, reduction=reduction)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss; see :class:`Huber`.

    Args:
        y_true, y_pred: as for :func:`mean_squared_error`.
        delta: where the loss turns from quadratic to linear, >= 0.
    """
    delta = _check_float("huber", "delta", delta, 0.0)
    y_true, y_pred = _function_inputs(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = ops.abs(error)
    return ops.mean(ops.where(abs_error <= delta, 0.5 * ops.square(error),
                              delta * abs_error - 0.5 * delta * delta), axis=-1)


@LOSSES.register("huber", "huber_loss")
class Huber(Loss):
    """Huber loss: mean over the last axis of ``0.5 e^2`` where ``|e| <= delta``, else
    ``delta |e| - 0.5 delta^2`` (``e = y_pred - y_true``).

    Args:
        delta: where the loss turns from quadratic to linear, >= 0. Defaults to 1.0.
        reduction: see :class:`Loss`. name: defaults to 'huber_loss'.
    """

    _kernel_call = True

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(name=name, reduction=reduction)
        self.delta = _check_float("Huber", "delta", delta, 0.0)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return huber(y_true, y_pred, self.delta)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.huber(y, y_pred, weights, scale, grad, row_loss, self.delta), -1

    def _kernel_spec(self, fused):
        return "huber", self.delta, 0.0, None

    def get_config(self):
        return {"delta": self.delta, **super().get_config()}


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample mean squared logarithmic error; see :class:`MeanSquaredLogarithmicError`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_squared_logarithmic_error")
    first = ops.log1p(ops.maximum(y_pred, EPSILON))
    second = ops.log1p(ops.maximum(y_true, EPSILON))
    return ops.mean(ops.square(first - second), axis=-1)


@LOSSES.register("mean_squared_logarithmic_error", "msle")
class MeanSquaredLogarithmicError(_ElementwiseLoss):
    """Mean squared logarithmic error:
    ``loss = mean(square(log1p(max(y_pred, 1e-7)) - log1p(max(y_true, 1e-7))), axis=-1)``.

    Values at or below 0 count as 1e-7, as in Keras.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_squared_logarithmic_error'.

    Example:
        >>> float(MeanSquaredLogarithmicError()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]))
        0.120...
    """

    _KIND = "mean_squared_logarithmic_error"
    _FUNCTION = staticmethod(mean_squared_logarithmic_error)
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error"):
        super().__init__(name=name, reduction=reduction)


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample mean absolute percentage error; see :class:`MeanAbsolutePercentageError`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_absolute_percentage_error")
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


@LOSSES.register("mean_absolute_percentage_error", "mape")
class MeanAbsolutePercentageError(_ElementwiseLoss):
    """Mean absolute percentage error:
    ``loss = 100 * mean(abs((y_true - y_pred) / max(abs(y_true), 1e-7)), axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_absolute_percentage_error'.

    Example:
        >>> float(MeanAbsolutePercentageError()([[1., 2.]], [[1.5, 1.]]))
        50.0
    """

    _KIND = "mean_absolute_percentage_error"
    _FUNCTION = staticmethod(mean_absolute_percentage_error)
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error"):
        super().__init__(name=name, reduction=reduction)


def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(y_pred - y_true)), axis=-1)``; see :class:`LogCosh`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "log_cosh")
    error = y_pred - y_true
    # x + softplus(-2x) - log 2 equals log(cosh(x)) without overflowing for large |x|.
    return ops.mean(error + ops.softplus(-2.0 * error) - math.log(2.0), axis=-1)


@LOSSES.register("log_cosh", "logcosh")
class LogCosh(_ElementwiseLoss):
    """Logarithm of the hyperbolic cosine of the error:
    ``loss = mean(log(cosh(y_pred - y_true)), axis=-1)``.

    About ``e ** 2 / 2`` for small errors and ``|e| - log(2)`` for large ones, so it behaves
    like the mean squared error without its sensitivity to outliers.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'log_cosh'.

    Example:
        >>> float(LogCosh()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]))
        0.108...
    """

    _KIND = "log_cosh"
    _FUNCTION = staticmethod(log_cosh)

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh"):
        super().__init__(name=name, reduction=reduction)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample negative cosine similarity; see :class:`CosineSimilarity`.

    Args:
        y_true, y_pred: as for :func:`mean_squared_error`.
        axis: the feature axis. Defaults to the last.
    Returns:
        ``-sum(normalize(y_true) * normalize(y_pred), axis=axis)``.
    """
    axis = _check_axis("cosine_similarity", axis)
    y_true, y_pred = _function_inputs(y_true, y_pred, "cosine_similarity")
    return -ops.sum(ops.normalize(y_true, axis=axis) * ops.normalize(y_pred, axis=axis),
                    axis=axis)


@LOSSES.register("cosine_similarity")
class CosineSimilarity(_LastAxisLoss):
    """Negative cosine similarity: ``loss = -sum(l2_normalize(y_true) * l2_normalize(y_pred),
    axis=-1)``, each vector divided by ``max(norm, 1e-7)`` (Keras' ``normalize``).

    Between -1 (same direction, the minimum) and 1; 0 for orthogonal vectors or a zero vector.

    Args:
        axis: the feature axis; must be the last (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'cosine_similarity'.

    Example:
        >>> CosineSimilarity(reduction=None)([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]]).value
        array([-0.,  -1.], dtype=float32)
    """

    _kernel_call = True

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity"):
        super().__init__(name=name, reduction=reduction)
        self.axis = _check_axis("CosineSimilarity", axis)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return cosine_similarity(y_true, y_pred, self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.cosine_similarity(y, y_pred, weights, scale, grad, row_loss,
                                          EPSILON), -1

    def _kernel_spec(self, fused):
        return "cosine_similarity", 0.0, 0.0, None

    def get_config(self):
        return {"axis": self.axis, **super().get_config()}


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
msle = MSLE = mean_squared_logarithmic_error
mape = MAPE = mean_absolute_percentage_error
logcosh = log_cosh
