"""Regression metrics: means of per-sample errors."""
from minidl.metrics.accuracy import _KernelMetric
from minidl.metrics.base import METRICS


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
