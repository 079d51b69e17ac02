"""Regression metrics: means of per-sample errors, their root, and the R2 score.

The squared and absolute errors run on ``minidl._core._metrics``; the percentage, log and
cosine metrics on their loss's compiled kernel (:class:`~minidl.metrics.base.LossMean`).
"""
import math
import numbers
import warnings

import numpy as np

from minidl import losses as _losses
from minidl.metrics.accuracy import _KernelMetric
from minidl.metrics.base import (METRICS, Metric, _BuiltinLossMean, _dtype_name,
                                 _float_dtype, _float_values)


@METRICS.register("mean_squared_error", "mse")
class MeanSquaredError(_KernelMetric):
    """Mean of ``(y_true - y_pred) ** 2``, computed in float64.

    Args:
        name: name of the metric.

    Shapes:
        ``y_true`` and ``y_pred`` of the same shape ``(batch, ...)`` (``(batch,)`` against
        ``(batch, 1)`` is accepted either way).

    Example:
        >>> m = MeanSquaredError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> m.result()
        0.25
    """

    _KIND = "mean_squared_error"

    def __init__(self, name="mean_squared_error"):
        super().__init__(name)


@METRICS.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_KernelMetric):
    """Mean of ``abs(y_true - y_pred)``, computed in float64.

    Args:
        name: name of the metric.

    Shapes:
        ``y_true`` and ``y_pred`` of the same shape ``(batch, ...)`` (``(batch,)`` against
        ``(batch, 1)`` is accepted either way).

    Example:
        >>> m = MeanAbsoluteError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> m.result()
        0.25
    """

    _KIND = "mean_absolute_error"

    def __init__(self, name="mean_absolute_error"):
        super().__init__(name)


@METRICS.register("root_mean_squared_error")
class RootMeanSquaredError(MeanSquaredError):
    """Square root of the (weighted) mean of ``(y_true - y_pred) ** 2``, computed in float64.

    The squared errors are averaged over each sample's elements, the samples are averaged
    with their weights, and the square root is taken of that mean (Keras' semantics: with
    one weight per sample, the root of the weighted mean over all elements).

    Args:
        name: name of the metric.
        dtype: accepted for Keras compatibility; the totals are float64.

    Shapes:
        As :class:`MeanSquaredError`.

    Example:
        >>> m = RootMeanSquaredError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]], sample_weight=[1, 0])
        >>> round(m.result(), 6)
        0.707107
    """

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name)
        self._dtype = _float_dtype(name, dtype)

    def result(self):
        return math.sqrt(super().result())

    def get_config(self):
        return {"name": self.name, "dtype": _dtype_name(self)}


@METRICS.register("mean_absolute_percentage_error", "mape")
class MeanAbsolutePercentageError(_BuiltinLossMean):
    """Mean of ``100 * abs((y_true - y_pred) / max(abs(y_true), 1e-7))``.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = MeanAbsolutePercentageError()
        >>> m.update_state([[1., 2.]], [[1.5, 1.]])
        >>> m.result()
        50.0
    """

    _LOSS = _losses.MeanAbsolutePercentageError

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(name, dtype)


@METRICS.register("mean_squared_logarithmic_error", "msle")
class MeanSquaredLogarithmicError(_BuiltinLossMean):
    """Mean of ``(log1p(max(y_pred, 1e-7)) - log1p(max(y_true, 1e-7))) ** 2``.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = MeanSquaredLogarithmicError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> round(m.result(), 6)
        0.120113
    """

    _LOSS = _losses.MeanSquaredLogarithmicError

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(name, dtype)


@METRICS.register("cosine_similarity")
class CosineSimilarity(_BuiltinLossMean):
    """Mean cosine similarity ``sum(l2_normalize(y_true) * l2_normalize(y_pred), axis=-1)``
    (each vector divided by ``max(norm, 1e-7)``): 1 for the same direction, -1 for opposite
    ones. The loss of the same name is its negative.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).
        axis: the feature axis; must be the last (-1, the default).

    Example:
        >>> m = CosineSimilarity()
        >>> m.update_state([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]], sample_weight=[0.3, 0.7])
        >>> round(m.result(), 6)
        0.7
    """

    _LOSS = _losses.CosineSimilarity
    _CONFIG = ("axis",)
    _sign = -1.0

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(name, dtype, axis=axis)
        self.axis = self._loss.axis


@METRICS.register("log_cosh_error", "logcosh", "log_cosh")
class LogCoshError(_BuiltinLossMean):
    """Mean of ``log(cosh(y_pred - y_true))``.

    Args:
        name: name of the metric. Defaults to 'logcosh', as in Keras.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = LogCoshError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> round(m.result(), 6)
        0.108445
    """

    _LOSS = _losses.LogCosh

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(name, dtype)


_CLASS_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


@METRICS.register("r2_score")
class R2Score(Metric):
    """The coefficient of determination, ``1 - sum((y - p) ** 2) / sum((y - mean(y)) ** 2)``
    per output column, streamed over batches as Keras does.

    State, per output (float64): the weighted sums of ``y`` and ``y ** 2``, of the squared
    residuals and of the weights, and the number of target values seen. Outputs whose
    targets do not vary score 0 when predicted with any error, and 1 when predicted exactly
    (scikit-learn's convention; Keras gives NaN there).

    Args:
        class_aggregation: how to combine the outputs' scores: 'uniform_average' (the mean,
            the default), 'variance_weighted_average' (weighted by each output's variance) or
            None (an array of one score per output). scikit-learn's ``multioutput``.
        num_regressors: the number of independent variables, for the adjusted R2
            ``1 - (1 - R2) (n - 1) / (n - num_regressors - 1)`` (n: target values seen). 0,
            the default, gives the plain R2. Where ``n - 1 <= num_regressors`` a warning is
            given and the plain R2 returned.
        name: name of the metric.
        dtype: accepted for Keras compatibility; the state is float64.

    Shapes:
        ``y_true`` and ``y_pred`` of shape ``(batch, outputs)`` (``(batch,)`` against
        ``(batch, 1)`` is accepted either way); the same number of outputs in every batch.

    Example:
        >>> m = R2Score()
        >>> m.update_state(np.array([[1], [4], [3]]), np.array([[2], [4], [4]]))
        >>> round(m.result(), 6)
        0.571429
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name, _float_dtype(name, dtype))
        if not any(class_aggregation is a or class_aggregation == a
                   for a in _CLASS_AGGREGATIONS):
            raise ValueError(f"Invalid value for argument `class_aggregation`. Expected one "
                             f"of {_CLASS_AGGREGATIONS}. Received: "
                             f"class_aggregation={class_aggregation!r}")
        if (isinstance(num_regressors, bool) or not isinstance(num_regressors, numbers.Integral)
                or num_regressors < 0):
            raise ValueError(f"Invalid value for argument `num_regressors`. Expected an int "
                             f">= 0. Received: num_regressors={num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch.

        Args:
            y_true: targets, shape ``(batch, outputs)``.
            y_pred: predictions, the same shape.
            sample_weight: None, a number, one weight per sample (``(batch,)``) or one per
                value (``(batch, outputs)``).
        Raises:
            ValueError: inputs that are not 2-D of one shape, a change in the number of
                outputs, NaN inputs, or weights that do not broadcast.
        """
        y = _float_values(y_true, self.name, "y_true")
        p = _float_values(y_pred, self.name, "y_pred")
        # Keras' squeeze_or_expand_to_same_rank: (n,) against (n, 1) becomes (n, 1).
        if y.ndim == p.ndim + 1 and y.shape[-1] == 1:
            if p.ndim == 1:
                p = p.reshape(-1, 1)
            else:
                y = y.reshape(y.shape[:-1])
        elif p.ndim == y.ndim + 1 and p.shape[-1] == 1:
            if y.ndim == 1:
                y = y.reshape(-1, 1)
            else:
                p = p.reshape(p.shape[:-1])
        if y.ndim != 2 or p.shape != y.shape:
            raise ValueError(f"{self.name}: R2Score expects 2-D inputs of one shape "
                             f"(batch_size, output_dim). Received: y_true.shape="
                             f"{np.shape(y_true)}, y_pred.shape={np.shape(y_pred)}")
        if np.isnan(y).any() or np.isnan(p).any():
            raise ValueError(f"{self.name}: y_true and y_pred must not contain NaN.")
        outputs = y.shape[1]
        if self._sum is None:
            self._sum, self._squared_sum, self._residual, self._count = (
                np.zeros(outputs) for _ in range(4))
        elif outputs != self._sum.shape[0]:
            raise ValueError(f"{self.name}: every batch must have {self._sum.shape[0]} "
                             f"outputs, as the first one had. Received: y_true.shape="
                             f"{y.shape}")
        if sample_weight is None:
            w = np.ones_like(y)
        else:
            w = _float_values(sample_weight, self.name, "sample_weight")
            if w.ndim == 1:
                w = w.reshape(-1, 1)
            try:
                w = np.broadcast_to(w, y.shape)
            except ValueError:
                raise ValueError(f"{self.name}: sample_weight of shape "
                                 f"{np.shape(sample_weight)} does not broadcast to y_true of "
                                 f"shape {y.shape}.") from None
        weighted = y * w
        self._sum += weighted.sum(axis=0)
        self._squared_sum += (y * weighted).sum(axis=0)
        self._residual += (np.square(y - p) * w).sum(axis=0)
        self._count += w.sum(axis=0)
        self._num_samples += y.size

    def result(self):
        """The score: a float, or with ``class_aggregation=None`` one per output (an array).
        0.0 before any batch."""
        if self._sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(self._count > 0, self._sum / self._count, 0.0)
            total = self._squared_sum - self._sum * mean
            raw = np.where(total != 0, 1.0 - self._residual / total,
                           np.where(self._residual == 0, 1.0, 0.0))
        if self.class_aggregation == "uniform_average":
            score = float(np.mean(raw))
        elif self.class_aggregation == "variance_weighted_average":
            weight = float(np.sum(total))
            score = float(np.sum(total * raw) / weight) if weight else float(np.mean(raw))
        else:
            score = raw
        if self.num_regressors:
            n, k = self._num_samples, self.num_regressors
            if k > n - 1:
                warnings.warn(f"{self.name}: more independent regressors ({k}) than data "
                              f"points ({n:g}) in the adjusted R2 score; returning the plain "
                              f"R2 score.", stacklevel=2)
            elif k == n - 1:
                warnings.warn(f"{self.name}: division by zero in the adjusted R2 score; "
                              f"returning the plain R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1) / (n - k - 1)
        return score

    def reset_state(self):
        self._sum = self._squared_sum = self._residual = self._count = None
        self._num_samples = 0.0

    def get_config(self):
        return {"class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors, "name": self.name,
                "dtype": _dtype_name(self)}
