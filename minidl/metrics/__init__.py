"""Metrics with the names, arguments and results of Keras 3.

A metric accumulates over batches: ``update_state(...)`` adds a batch, ``result()`` returns the
running value, ``reset_state()`` starts over (``fit`` resets at each epoch). The built-in
metrics are (weighted) means of per-sample values, kept as two float64 totals, and return
Python floats. ``update_state`` of the accuracy and error metrics is one call into the
compiled kernel ``minidl._core._metrics.update``: no numpy temporaries, and the same bits for
any thread count.

Custom metrics follow Keras 3: a :class:`Metric` subclass keeps its state in variables made
by ``add_variable`` (or ``add_weight``), updates them with ``assign`` / ``assign_add`` in
``update_state`` (``minidl.ops`` work on the Tensors it receives) and computes ``result()``
(a Tensor or a number; training logs and history hold it as a Python float). A plain
function ``fn(y_true, y_pred)`` of per-sample values becomes a :class:`MeanMetricWrapper`
named ``fn.__name__`` in ``compile(metrics=[fn])``.

Example:
    >>> m = SparseCategoricalAccuracy()
    >>> m.update_state([2, 1], np.array([[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]]))
    >>> m.result()
    0.5
"""
from minidl import losses as _losses
from minidl.losses import _snake_case
from minidl.metrics.accuracy import (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                     SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
                                     TopKCategoricalAccuracy)
from minidl.metrics.base import (METRICS, LossMean, Mean, MeanMetricWrapper, Metric, Sum,
                                 _callable_name, result_value)
from minidl.metrics.confusion import (AUC, F1Score, FalseNegatives, FalsePositives,
                                      FBetaScore, Precision, PrecisionAtRecall, Recall,
                                      RecallAtPrecision, SensitivityAtSpecificity,
                                      SpecificityAtSensitivity, TrueNegatives, TruePositives)
from minidl.metrics.hinge import CategoricalHinge, Hinge, SquaredHinge
from minidl.metrics.probabilistic import (BinaryCrossentropy, CategoricalCrossentropy,
                                          KLDivergence, Poisson, SparseCategoricalCrossentropy)
from minidl.metrics.regression import (CosineSimilarity, LogCoshError, MeanAbsoluteError,
                                       MeanAbsolutePercentageError, MeanSquaredError,
                                       MeanSquaredLogarithmicError, R2Score,
                                       RootMeanSquaredError)
from minidl.utils.registry import deserializer
from minidl.utils.registry import serialize as _serialize


def _loss_names(loss):
    """Snake-case names a loss identifier goes by: its string, ``name`` or class name."""
    if loss is None:
        return set()
    if isinstance(loss, str):
        return {_snake_case(loss.strip())}
    candidates = (getattr(loss, "name", None), getattr(loss, "__name__", None),
                  type(loss).__name__)
    return {_snake_case(c) for c in candidates if isinstance(c, str)}


def _resolve_accuracy(loss, y_true_ndim, output_shape, y_true_shape):
    """The class 'accuracy' stands for, by Keras 3's shape rule with a loss-name fallback."""
    if y_true_shape is not None:
        y_true_shape = tuple(y_true_shape)
        y_true_ndim = len(y_true_shape)
    out_last = None
    if output_shape is not None:
        output_shape = tuple(output_shape)
        out_last = output_shape[-1] if output_shape else None
    # Keras 3 (trainers/compile_utils.py): one output unit means binary; targets of lower
    # rank than the output, or a trailing 1 against several units, mean sparse labels.
    if out_last == 1:
        return BinaryAccuracy
    if output_shape is not None and y_true_ndim is not None:
        if y_true_ndim < len(output_shape):
            return SparseCategoricalAccuracy
        if y_true_shape:
            sparse = y_true_shape[-1] == 1 and out_last is not None and out_last > 1
            return SparseCategoricalAccuracy if sparse else CategoricalAccuracy
    # Shapes are partly unknown (e.g. only the rank of y_true): the loss decides, as in
    # Keras 2.
    names = _loss_names(loss)
    if "sparse_categorical_crossentropy" in names:
        return SparseCategoricalAccuracy
    if "binary_crossentropy" in names and out_last is None:
        return BinaryAccuracy
    if not names and output_shape is None and y_true_ndim is None:
        return Accuracy  # nothing to go on: what keras.metrics.get("accuracy") returns
    return CategoricalAccuracy


def get(identifier, loss=None, y_true_ndim=None, output_shape=None, y_true_shape=None):
    """Resolves a metric identifier to a new metric instance, as ``compile()`` does.

    ``"accuracy"`` and ``"acc"`` (any case) stand for the accuracy that fits the model, by
    Keras 3's rule: an output with last dimension 1 gives :class:`BinaryAccuracy`; targets of
    lower rank than the output, or with a trailing 1 against several output units, give
    :class:`SparseCategoricalAccuracy`; other targets give :class:`CategoricalAccuracy`.
    When the shapes do not settle it, the loss does (``sparse_categorical_crossentropy``:
    sparse; ``binary_crossentropy``: binary; otherwise categorical). With no loss and no
    shapes at all, plain :class:`Accuracy`. The metric keeps the name it was asked by
    (``"accuracy"`` or ``"acc"``), so logs show what the user wrote, as in Keras.

    Other names (``"mse"``, ``"sparse_categorical_accuracy"``, ``"MeanAbsoluteError"``, ...)
    give an instance of the registered class, also named by the string given; the name of a
    loss function (``"binary_crossentropy"``) or of a registered function gives the
    :class:`MeanMetricWrapper` of that function. A function ``fn`` gives
    ``MeanMetricWrapper(fn, name=fn.__name__)``, as Keras' ``compile`` does.

    Args:
        identifier: a metric name, a config dict ``{"class_name": ..., "config": {...}}``,
            a :class:`Metric` class (instantiated) or instance (returned as is), a function
            of per-sample values, or None.
        loss: the model's loss: a name, a loss class or instance, or None.
        y_true_ndim: rank of the targets, batch axis included.
        output_shape: shape of the model's output, e.g. ``(None, 10)``.
        y_true_shape: shape of the targets; more precise than ``y_true_ndim`` (it tells
            ``(n, 1)`` integer labels from ``(n, 10)`` one-hot ones).

    Returns:
        A :class:`Metric`, or None for None.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or an identifier of
            another kind.

    Example:
        >>> m = get("accuracy", loss="sparse_categorical_crossentropy", y_true_ndim=1,
        ...         output_shape=(None, 10))
        >>> type(m).__name__, m.name
        ('SparseCategoricalAccuracy', 'accuracy')
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        if identifier.strip().lower() in ("accuracy", "acc"):
            cls = _resolve_accuracy(loss, y_true_ndim, output_shape, y_true_shape)
        else:
            try:
                cls = METRICS.lookup(identifier)
            except ValueError:
                # A loss function's name ('binary_crossentropy') or a registered function:
                # the mean of its per-sample values, as Keras' metrics of those names.
                try:
                    fn = _losses.resolve_function(identifier, "metric")
                except ValueError:
                    fn = None
                if fn is None:
                    raise
                return MeanMetricWrapper(fn, name=identifier)
        return cls(name=identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        if name == "MeanMetricWrapper":
            extra = sorted(str(key) for key in identifier if key not in ("class_name", "config"))
            config = identifier.get("config", {})
            if extra or not isinstance(config, dict):
                raise ValueError(f"A metric config must be {{'class_name': ..., 'config': "
                                 f"{{...}}}}. Received: {identifier!r:.200}")
            return MeanMetricWrapper.from_config(config)
        if isinstance(name, str):
            try:
                METRICS.lookup(name)
            except ValueError:
                raise ValueError(
                    f"Unknown metric {name!r}: a custom metric class must be registered before "
                    f"a model that uses it is loaded (decorate it with "
                    f"@minidl.saving.register_serializable()) or given in load_model's "
                    f"custom_objects. Valid names: "
                    f"{', '.join(METRICS.names())}.") from None
        return METRICS.get(identifier, base=Metric)
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier, name=_callable_name(identifier))
    raise ValueError(f"Could not interpret metric identifier. Received: "
                     f"identifier={identifier!r}. Pass a name ({', '.join(METRICS.names())}), "
                     f"a config dict or a Metric.")


def serialize(metric):
    """``{"class_name": ..., "config": ...}`` for a metric (a function is serialized as the
    :class:`MeanMetricWrapper` that :func:`get` makes of it); see :func:`get`."""
    if isinstance(metric, type) and issubclass(metric, Metric):
        metric = metric()
    elif not isinstance(metric, Metric) and callable(metric):
        metric = get(metric)
    return _serialize(metric)


deserialize = deserializer(get, "metric")


__all__ = ["Accuracy", "AUC", "BinaryAccuracy", "BinaryCrossentropy", "CategoricalAccuracy",
           "CategoricalCrossentropy", "CategoricalHinge", "CosineSimilarity", "F1Score",
           "deserialize", "FalseNegatives", "FalsePositives", "FBetaScore", "get", "Hinge",
           "KLDivergence",
           "LogCoshError", "LossMean", "Mean", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanMetricWrapper", "MeanSquaredError",
           "MeanSquaredLogarithmicError", "Metric", "Poisson", "Precision",
           "PrecisionAtRecall", "R2Score", "Recall", "RecallAtPrecision", "result_value",
           "RootMeanSquaredError", "SensitivityAtSpecificity", "serialize",
           "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
           "SparseTopKCategoricalAccuracy", "SpecificityAtSensitivity", "SquaredHinge", "Sum",
           "TopKCategoricalAccuracy", "TrueNegatives", "TruePositives"]
