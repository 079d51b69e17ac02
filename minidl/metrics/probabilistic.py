"""Probabilistic metrics: means of a crossentropy or divergence loss's per-sample values.

Each is a :class:`~minidl.metrics.base.LossMean`: ``update_state`` is one call of the loss's
compiled kernel over the batch, whose weighted sum of per-sample losses is added to the
running mean (no ops, no temporaries beyond the inputs' conversion).
"""
import numpy as np

from minidl import losses as _losses
from minidl.metrics.base import METRICS, _BuiltinLossMean


@METRICS.register("binary_crossentropy", "bce")
class BinaryCrossentropy(_BuiltinLossMean):
    """The mean binary crossentropy between labels and predictions.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).
        from_logits: whether y_pred holds logits rather than probabilities.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + 0.5 * s``.

    Example:
        >>> m = BinaryCrossentropy()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> round(m.result(), 5)
        0.81492
    """

    _LOSS = _losses.BinaryCrossentropy
    _CONFIG = ("from_logits", "label_smoothing")

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing)
        self.from_logits = self._loss.from_logits
        self.label_smoothing = label_smoothing   # the config keeps it as given, as Keras'


@METRICS.register("categorical_crossentropy")
class CategoricalCrossentropy(_BuiltinLossMean):
    """The mean categorical crossentropy between one-hot labels and predictions.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).
        from_logits: whether y_pred holds logits rather than probabilities.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + s / classes``.
        axis: the class axis; must be the last (-1, the default).

    Example:
        >>> m = CategoricalCrossentropy()
        >>> m.update_state([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> round(m.result(), 5)
        1.17694
    """

    _LOSS = _losses.CategoricalCrossentropy
    _CONFIG = ("from_logits", "label_smoothing", "axis")

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        super().__init__(name, dtype, from_logits=from_logits, label_smoothing=label_smoothing,
                         axis=axis)
        self.from_logits = self._loss.from_logits
        self.label_smoothing = label_smoothing   # the config keeps it as given, as Keras'
        self.axis = self._loss.axis


@METRICS.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_BuiltinLossMean):
    """The mean crossentropy between integer labels and predictions.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).
        from_logits: whether y_pred holds logits rather than probabilities.
        axis: the class axis; must be the last (-1, the default).

    Example:
        >>> m = SparseCategoricalCrossentropy()
        >>> m.update_state([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> round(m.result(), 5)
        1.17694
    """

    _LOSS = _losses.SparseCategoricalCrossentropy
    _CONFIG = ("from_logits", "axis")

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 axis=-1):
        super().__init__(name, dtype, from_logits=from_logits)
        self.from_logits = self._loss.from_logits
        self.axis = _losses._check_axis(name, axis)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch; see :meth:`LossMean.update_state`.

        Raises:
            ValueError: also when ``axis`` is not y_pred's last axis.
        """
        rank = np.ndim(y_pred)
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"{self.name}: minidl computes this metric over the last axis "
                             f"only; received axis={self.axis} for y_pred of rank {rank}.")
        super().update_state(y_true, y_pred, sample_weight)


@METRICS.register("kl_divergence", "kld", "kullback_leibler_divergence")
class KLDivergence(_BuiltinLossMean):
    """The mean Kullback-Leibler divergence ``sum(t * log(t / p), axis=-1)`` (both clipped to
    [1e-7, 1]).

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = KLDivergence()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> round(m.result(), 5)
        0.45814
    """

    _LOSS = _losses.KLDivergence

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(name, dtype)


@METRICS.register("poisson")
class Poisson(_BuiltinLossMean):
    """The mean Poisson loss ``mean(p - t * log(p + 1e-7), axis=-1)``.

    Args:
        name: name of the metric.
        dtype: the float dtype to compute in; defaults to y_pred's (float32 for others).

    Example:
        >>> m = Poisson()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> round(m.result(), 5)
        0.5
    """

    _LOSS = _losses.Poisson

    def __init__(self, name="poisson", dtype=None):
        super().__init__(name, dtype)
