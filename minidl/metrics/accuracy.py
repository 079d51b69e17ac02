"""Accuracy metrics, each a mean of per-sample hits computed by the compiled kernel
``minidl._core._metrics.update`` (one call per batch, no numpy temporaries)."""
import numbers

from minidl._core import _metrics
from minidl.metrics.base import METRICS, Mean

_update = _metrics.update


class _KernelMetric(Mean):
    """A mean of per-sample values computed by one kind of the compiled kernel."""

    _KIND = None  # a name from minidl._core._metrics.KINDS

    def __init__(self, name):
        super().__init__(name)
        self._kind = _metrics.KIND_IDS[self._KIND]
        self._param = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch.

        Args:
            y_true: targets, shape ``(batch, ...)``; see the class docstring.
            y_pred: predictions, shape ``(batch, ...)``.
            sample_weight: None, a number, or one weight per sample (``(batch,)`` or
                ``(batch, 1)``); a weight of 0 masks the sample.

        Raises:
            ValueError: incompatible shapes or (sparse metrics) invalid labels.
        """
        _update(self._totals, self._kind, self._param, y_true, y_pred, sample_weight)


@METRICS.register("accuracy", "acc")
class Accuracy(_KernelMetric):
    """How often predictions equal labels exactly (``y_true == y_pred`` elementwise).

    For class predictions, ``compile(metrics=["accuracy"])`` picks binary, categorical or
    sparse categorical accuracy instead; see :func:`get`.

    Args:
        name: name of the metric.

    Shapes:
        ``y_true`` and ``y_pred`` of the same shape ``(batch, ...)`` (``(batch,)`` against
        ``(batch, 1)`` is accepted either way).

    Example:
        >>> m = Accuracy()
        >>> m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
        >>> m.result()
        0.75
    """

    _KIND = "accuracy"

    def __init__(self, name="accuracy"):
        super().__init__(name)


@METRICS.register("binary_accuracy")
class BinaryAccuracy(_KernelMetric):
    """How often ``y_pred > threshold`` matches binary labels (0/1 or bool).

    Args:
        name: name of the metric.
        threshold: float in (0, 1); a prediction above it counts as 1.

    Shapes:
        ``y_true`` and ``y_pred`` of the same shape ``(batch, ...)`` (``(batch,)`` against
        ``(batch, 1)`` is accepted either way).

    Example:
        >>> m = BinaryAccuracy()
        >>> m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
        >>> m.result()
        0.75
    """

    _KIND = "binary_accuracy"

    def __init__(self, name="binary_accuracy", threshold=0.5):
        super().__init__(name)
        if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                or not 0 < threshold < 1):
            raise ValueError(f"`threshold` must be a float in (0, 1). Received: "
                             f"threshold={threshold!r}")
        self.threshold = float(threshold)
        self._param = self.threshold

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


@METRICS.register("categorical_accuracy")
class CategoricalAccuracy(_KernelMetric):
    """How often ``argmax(y_pred)`` equals ``argmax(y_true)`` for one-hot labels.

    Ties go to the first maximal index, as ``np.argmax`` does. Logits work as well as
    probabilities.

    Args:
        name: name of the metric.

    Shapes:
        ``y_true`` and ``y_pred`` both ``(batch, ..., classes)``.

    Example:
        >>> m = CategoricalAccuracy()
        >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> m.result()
        0.5
    """

    _KIND = "categorical_accuracy"

    def __init__(self, name="categorical_accuracy"):
        super().__init__(name)


@METRICS.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_KernelMetric):
    """How often ``argmax(y_pred)`` equals integer labels.

    Ties go to the first maximal index, as ``np.argmax`` does.

    Args:
        name: name of the metric.

    Shapes:
        ``y_pred``: ``(batch, ..., classes)``. ``y_true``: ``y_pred.shape[:-1]``, optionally
        with a trailing axis of 1, holding integers (int or integral float) in
        ``[0, classes)``; anything else raises ``ValueError``.

    Example:
        >>> m = SparseCategoricalAccuracy()
        >>> m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
        >>> m.result()
        0.5
    """

    _KIND = "sparse_categorical_accuracy"

    def __init__(self, name="sparse_categorical_accuracy"):
        super().__init__(name)


class _TopKMetric(_KernelMetric):
    """A top-k accuracy: the kernel's parameter is ``k``, an int >= 1."""

    def __init__(self, k, name):
        super().__init__(name)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"`k` must be an int >= 1. Received: k={k!r}")
        self.k = int(k)
        self._param = float(self.k)

    def get_config(self):
        return {"k": self.k, "name": self.name}


@METRICS.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(_TopKMetric):
    """How often the one-hot target is among the ``k`` highest predictions.

    A target whose score ties with the k-th highest counts as a hit (Keras' ``in_top_k``).

    Args:
        k: number of top predictions to look at.
        name: name of the metric.

    Shapes:
        ``y_true`` and ``y_pred`` both ``(batch, ..., classes)``.

    Example:
        >>> m = TopKCategoricalAccuracy(k=1)
        >>> m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> m.result()
        0.5
    """

    _KIND = "top_k_categorical_accuracy"

    def __init__(self, k=5, name="top_k_categorical_accuracy"):
        super().__init__(k, name)


@METRICS.register("sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(_TopKMetric):
    """How often the integer target is among the ``k`` highest predictions.

    A target whose score ties with the k-th highest counts as a hit (Keras' ``in_top_k``).

    Args:
        k: number of top predictions to look at.
        name: name of the metric.

    Shapes:
        As :class:`SparseCategoricalAccuracy`.

    Example:
        >>> m = SparseTopKCategoricalAccuracy(k=1)
        >>> m.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
        >>> m.result()
        0.5
    """

    _KIND = "sparse_top_k_categorical_accuracy"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy"):
        super().__init__(k, name)
