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
import numbers

import numpy as np

from minidl import initializers
from minidl import losses as _losses
from minidl._core import _metrics
from minidl._core._metrics import Totals
from minidl.autodiff import Tensor, Variable, to_array, wrap
from minidl.losses import _snake_case
from minidl.utils.registry import Registry, serialize as _serialize

METRICS = Registry("metric")

_update = _metrics.update
_NUMBER_TYPES = (float, int, np.number)
_AGGREGATIONS = ("none", "sum", "mean", "only_first_replica")


class Metric:
    """Base class of all metrics: a name plus state updated batch by batch.

    Subclasses implement ``update_state`` and ``result``; state kept in variables from
    :meth:`add_variable` is reset by the default :meth:`reset_state` (subclasses with other
    state override it). ``get_config`` returns exactly the constructor arguments.

    Args:
        name: the name shown in training logs and history. Defaults to the class name in
            snake case.
        dtype: the dtype of the metric's variables (``self.dtype``). Defaults to float32.

    Example (keras.io's custom metric):
        >>> class BinaryTruePositives(Metric):
        ...     def __init__(self, name="binary_true_positives", **kwargs):
        ...         super().__init__(name=name, **kwargs)
        ...         self.true_positives = self.add_variable(shape=(), initializer="zeros",
        ...                                                 name="true_positives")
        ...     def update_state(self, y_true, y_pred, sample_weight=None):
        ...         hits = ops.cast((y_true > 0.5) & (y_pred > 0.5), self.dtype)
        ...         if sample_weight is not None:
        ...             hits = hits * ops.reshape(ops.cast(sample_weight, self.dtype), (-1, 1))
        ...         self.true_positives.assign_add(ops.sum(hits))
        ...     def result(self):
        ...         return self.true_positives
    """

    def __init__(self, name=None, dtype=None):
        if name is None:
            name = _snake_case(type(self).__name__)
        if not isinstance(name, str) or not name:
            raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
        self.name = name
        if dtype is not None:
            try:
                checked = np.dtype(dtype)
            except TypeError:
                checked = None
            if checked is None or checked.kind not in "biuf":
                raise ValueError(f"{name}: `dtype` must be a numeric type such as 'float32'. "
                                 f"Received: dtype={dtype!r}")
            dtype = checked
        self._dtype = dtype
        self._variables = []

    @property
    def dtype(self):
        """The dtype name of the metric's variables ('float32' unless given)."""
        dtype = self.__dict__.get("_dtype")
        return "float32" if dtype is None else dtype.name

    def update_state(self, *args, **kwargs):
        """Adds one batch to the state."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_state.")

    def result(self):
        """The metric's value over everything seen since the last reset: a number or a
        Tensor (logs and history hold it as a Python float)."""
        raise NotImplementedError(f"{type(self).__name__} must implement result.")

    def reset_state(self):
        """Forgets every batch seen so far: each variable of :meth:`add_variable` gets its
        initial value back, and metrics held as attributes are reset."""
        for variable, initial in self.__dict__.get("_variables", ()):
            variable.assign(initial)
        for value in self.__dict__.values():
            if isinstance(value, Metric) and value is not self:
                value.reset_state()

    # ---- state ----

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """A new state variable of the metric (Keras 3's ``Metric.add_variable``).

        Args:
            shape: the variable's shape: a tuple of ints, or an int (``()``: a scalar).
            initializer: its initial value: an initializer name ('zeros', 'ones', ...), an
                :class:`minidl.initializers.Initializer` or a callable ``f(shape, dtype)``.
                :meth:`reset_state` restores this value.
            dtype: the variable's dtype. Defaults to the metric's (``self.dtype``).
            aggregation: how replicas would combine it: 'sum', 'mean', 'none' or
                'only_first_replica' (checked only: minidl runs one replica).
            name: the variable's name. Defaults to 'variable'.
        Returns:
            A non-trainable :class:`minidl.Variable`; update it with ``assign``,
            ``assign_add`` or ``assign_sub``.
        Raises:
            RuntimeError: the subclass's ``__init__`` did not call ``super().__init__()``.
            ValueError: a bad shape, aggregation or initializer.
        """
        if "name" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before add_variable.")
        if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0
                for n in shape):
            raise ValueError(f"{self.name}: `shape` must be a tuple of non-negative ints. "
                             f"Received: shape={shape!r}")
        shape = tuple(int(n) for n in shape)
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"{self.name}: `aggregation` must be one of {_AGGREGATIONS}. "
                             f"Received: aggregation={aggregation!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{self.name}: `name` must be a non-empty string. Received: "
                             f"name={name!r}")
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        init = initializers.get(initializer)
        if not callable(init):
            raise ValueError(f"{self.name}: `initializer` must be an initializer name, object "
                             f"or callable f(shape, dtype). Received: initializer="
                             f"{initializer!r}")
        value = np.asarray(init(shape, dtype=dtype)).astype(dtype, copy=False)
        if value.shape != shape:
            value = np.broadcast_to(value, shape)
        variable = Variable(np.array(value, dtype=dtype), trainable=False, name=name,
                            dtype=dtype)
        variable.path = f"{self.name}/{variable.name}"
        self.__dict__.setdefault("_variables", []).append((variable, np.array(value)))
        return variable

    def add_weight(self, name=None, shape=(), aggregation="sum", initializer="zeros",
                   dtype=None):
        """:meth:`add_variable` with Keras 2's argument order (``name`` first)."""
        return self.add_variable(shape, initializer=initializer, dtype=dtype,
                                 aggregation=aggregation, name=name)

    @property
    def variables(self):
        """The metric's state variables, then those of metrics held as attributes."""
        out = [variable for variable, _ in self.__dict__.get("_variables", ())]
        for value in self.__dict__.values():
            if isinstance(value, Metric) and value is not self:
                out.extend(value.variables)
        return out

    # ---- calling and config ----

    def __call__(self, *args, **kwargs):
        """``update_state(...)`` then ``result()``, as in Keras."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        """The constructor arguments, as a JSON-serialisable dict."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        """Rebuilds a metric (with fresh state) from ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self):
        try:
            shown = f"{result_value(self):.6g}"
        except (TypeError, ValueError, NotImplementedError):
            shown = "?"
        return f"<{type(self).__name__} name={self.name!r} result={shown}>"


def result_value(metric):
    """``metric.result()`` as logs hold it: a Python float (an array for a metric whose result
    has several values).

    Raises:
        TypeError: ``result()`` returned something other than numbers.
    """
    value = metric.result()
    if type(value) is float:
        return value
    if isinstance(value, Tensor):
        value = value.value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(f"Metric '{metric.name}': result() must return a number or a tensor "
                        f"of numbers; received {type(value).__name__} {value!r:.60}.")
    return float(array.reshape(-1)[0]) if array.size == 1 else np.array(array, np.float64)


@METRICS.register("mean")
class Mean(Metric):
    """The (weighted) mean of the values passed to ``update_state``; tracks the loss in ``fit``.

    Values of shape ``(batch, ...)`` are first averaged over all axes but the first, so each
    sample counts once (times its weight); a scalar counts as one sample.

    Args:
        name: name of the metric.
        dtype: accepted for Keras compatibility; the totals are float64.

    Example:
        >>> m = Mean()
        >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
        >>> m.result()
        2.0
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)
        self._totals = Totals()

    def update_state(self, values, sample_weight=None):
        """Adds values to the mean.

        Args:
            values: a number (e.g. a batch loss), or an array or Tensor of shape
                ``(batch, ...)`` (a 0-d Tensor counts as a number).
            sample_weight: None, a number, or one weight per sample (``(batch,)`` or
                ``(batch, 1)``). ``fit`` passes the batch size to weight each batch's loss.

        Raises:
            ValueError: ``sample_weight`` does not have one weight per sample.
        """
        totals = self._totals
        if isinstance(values, Tensor):
            # A loss called in evaluate (or a user's train_step) is a 0-d Tensor.
            values = values.value
            if not values.ndim:
                values = float(values)
        if isinstance(sample_weight, Tensor):
            sample_weight = sample_weight.value
        # Fast path for fit's per-batch loss: a number, optionally weighted by a number.
        if isinstance(values, _NUMBER_TYPES):
            if sample_weight is None:
                totals.add(values)
                return
            if isinstance(sample_weight, _NUMBER_TYPES):
                totals.add(values * sample_weight, sample_weight)
                return
        v = np.asarray(values, dtype=np.float64)
        if v.ndim and v.shape[0] == 0:
            return
        per_sample = v if v.ndim <= 1 else v.reshape(v.shape[0], -1).mean(axis=1)
        if sample_weight is None:
            totals.add(float(per_sample.sum()), float(per_sample.size))
            return
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0 or v.ndim == 0:
            # One weight for all samples, or one value for all weights: Keras broadcasts.
            totals.add(float(per_sample.sum() * w.sum()), float(per_sample.size * w.sum()))
            return
        if not (w.shape[0] == v.shape[0] and w.size == v.shape[0] and w.ndim <= 2):
            raise ValueError(f"{self.name}: sample_weight must have one weight per sample, "
                             f"shape ({v.shape[0]},) or ({v.shape[0]}, 1). Received: "
                             f"sample_weight.shape={w.shape} for values.shape={v.shape}")
        totals.add(float(per_sample @ w.reshape(-1)), float(w.sum()))

    def result(self):
        totals = self._totals
        # No samples (or weights summing to 0) gives 0.0, like Keras' divide_no_nan.
        return totals.total / totals.count if totals.count else 0.0

    def reset_state(self):
        self._totals.total = 0.0
        self._totals.count = 0.0


class MeanMetricWrapper(Mean):
    """The mean of a function's per-sample values (Keras' ``keras.metrics.MeanMetricWrapper``).

    ``compile(metrics=[fn])`` wraps a function in it, named ``fn.__name__``.

    Args:
        fn: ``fn(y_true, y_pred, **kwargs)`` returning one value per sample (shape
            ``(batch, ...)``, averaged over the axes after the first) or one value for the
            batch; it receives Tensors and may use ``minidl.ops``.
        name: name of the metric. Defaults to ``fn.__name__``.
        dtype: see :class:`Mean`.
        **kwargs: further keyword arguments passed to ``fn``.

    Example:
        >>> m = MeanMetricWrapper(minidl.losses.mean_absolute_error)
        >>> m.update_state([[0.0, 1.0]], [[1.0, 1.0]])
        >>> m.result()
        0.5
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn) or isinstance(fn, type):
            raise TypeError(f"MeanMetricWrapper: fn must be a function fn(y_true, y_pred) "
                            f"returning per-sample values. Received: fn={fn!r:.100}")
        super().__init__(name=_callable_name(fn) if name is None else name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = dict(kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds ``fn(y_true, y_pred)`` of one batch to the mean.

        Raises:
            TypeError: ``fn`` returned something other than numbers.
            ValueError: ``fn`` returned values whose first axis is not the batch.
        """
        y_pred = y_pred if isinstance(y_pred, Tensor) else wrap(to_array(y_pred))
        y_true = y_true if isinstance(y_true, Tensor) else wrap(to_array(y_true))
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        what = f"the metric function '{_callable_name(self._fn)}'"
        array = values.value if isinstance(values, Tensor) else None
        if array is None:
            try:
                array = to_array(values)
            except (TypeError, ValueError):
                array = None
        if array is None or array.dtype.kind not in "biuf":
            raise TypeError(f"Metric '{self.name}': {what} must return per-sample values as "
                            f"a tensor of numbers; received {type(values).__name__} "
                            f"{values!r:.60}.")
        if array.ndim and y_pred.ndim and array.shape[0] != y_pred.shape[0]:
            raise ValueError(f"Metric '{self.name}': {what} must return one value per sample: "
                             f"shape ({y_pred.shape[0]}, ...) or a scalar, for y_pred of "
                             f"shape {y_pred.shape}; received shape {array.shape}.")
        super().update_state(array if array.ndim else float(array), sample_weight)

    def get_config(self):
        return {"fn": _losses.function_name(self._fn), "name": self.name, **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" not in config:
            raise ValueError(f"A MeanMetricWrapper config needs 'fn', the name of the metric "
                             f"function. Received keys: {sorted(config)}")
        return cls(_losses.resolve_function(config.pop("fn"), "metric"), **config)


def _callable_name(fn):
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(fn, "name", None)   # a Loss instance used as a metric
    return name if isinstance(name, str) and name else _snake_case(type(fn).__name__)


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


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"`k` must be an int >= 1. Received: k={k!r}")
    return int(k)


@METRICS.register("top_k_categorical_accuracy")
class TopKCategoricalAccuracy(_KernelMetric):
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
        super().__init__(name)
        self.k = _check_k(k)
        self._param = float(self.k)

    def get_config(self):
        return {"k": self.k, "name": self.name}


@METRICS.register("sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(_KernelMetric):
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
        super().__init__(name)
        self.k = _check_k(k)
        self._param = float(self.k)

    def get_config(self):
        return {"k": self.k, "name": self.name}


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
                    f"a model that uses it is loaded; decorate it with "
                    f"@minidl.saving.register_serializable(). Valid names: "
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


__all__ = ["Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError", "get",
           "result_value", "serialize"]
