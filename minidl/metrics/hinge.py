"""Hinge metrics: means of the hinge losses' per-sample values, for maximum-margin
classifiers (labels -1/1; 0/1 labels are converted as the losses do).

Each is a :class:`~minidl.metrics.base.LossMean`: one call of the loss's compiled kernel per
batch.
"""
from minidl import losses as _losses
from minidl.metrics.base import METRICS, _BuiltinLossMean


@METRICS.register("hinge")
class Hinge(_BuiltinLossMean):
    """The mean hinge loss ``mean(max(1 - t * p, 0), axis=-1)``.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = Hinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> round(m.result(), 5)
        1.3
    """

    _LOSS = _losses.Hinge

    def __init__(self, name="hinge", dtype=None):
        super().__init__(name, dtype)


@METRICS.register("squared_hinge")
class SquaredHinge(_BuiltinLossMean):
    """The mean squared hinge loss ``mean(max(1 - t * p, 0) ** 2, axis=-1)``.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = SquaredHinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> round(m.result(), 5)
        1.86
    """

    _LOSS = _losses.SquaredHinge

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(name, dtype)


@METRICS.register("categorical_hinge")
class CategoricalHinge(_BuiltinLossMean):
    """The mean categorical hinge loss ``max(neg - pos + 1, 0)`` with ``pos = sum(t * p)``
    and ``neg = max((1 - t) * p)`` over the last axis.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = CategoricalHinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> round(m.result(), 5)
        1.4
    """

    _LOSS = _losses.CategoricalHinge

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(name, dtype)
