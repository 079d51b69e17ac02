"""The metric base classes: :class:`Metric`, :class:`Mean` and :class:`MeanMetricWrapper`.

Also :class:`Sum` and :class:`LossMean` (the mean of a built-in loss's per-sample values on
its compiled kernel), and the argument and value checks the metric modules share. The
package docstring (:mod:`minidl.metrics`) describes how metrics are used and written.
"""
import math
import numbers

import numpy as np

from minidl import initializers
from minidl import losses as _losses
from minidl._core import _metrics
from minidl._core._metrics import Totals
from minidl.autodiff import Tensor, Variable, to_array, wrap
from minidl.losses import _snake_case
from minidl.utils.registry import Registry, subclass_test

METRICS = Registry("metric", accepts=subclass_test(lambda: Metric))

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
        self._dtype = _checked_dtype(name, dtype)
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


def _checked_dtype(name, dtype):
    """``dtype`` as a numpy dtype (None stays None); ValueError unless it is numeric."""
    if dtype is None:
        return None
    try:
        checked = np.dtype(dtype)
    except TypeError:
        checked = None
    if checked is None or checked.kind not in "biuf":
        raise ValueError(f"{name}: `dtype` must be a numeric type such as 'float32'. "
                         f"Received: dtype={dtype!r}")
    return checked


def _float_dtype(name, dtype):
    """``dtype`` of a built-in metric that computes in floats: None, float32 or float64."""
    checked = _checked_dtype(name, dtype)
    if checked is not None and checked not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name}: `dtype` must be 'float32' or 'float64'. Received: "
                         f"dtype={dtype!r}")
    return checked


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


@METRICS.register("sum")
class Sum(Metric):
    """The (weighted) sum of the values passed to ``update_state`` (Keras' ``Sum``).

    Weights broadcast against the values from the first axis: one weight per sample
    multiplies all of the sample's values. Sums are kept in float64.

    Args:
        name: name of the metric.
        dtype: accepted for Keras compatibility; the sum is float64.

    Example:
        >>> m = Sum()
        >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
        >>> m.result()
        4.0
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name, _float_dtype(name, dtype))
        self._total = 0.0

    def update_state(self, values, sample_weight=None):
        """Adds values (a number, or an array or Tensor of shape ``(batch, ...)``).

        Args:
            values: the values to add.
            sample_weight: None, a number, or weights broadcastable to the values from the
                first axis (``(batch,)``, ``(batch, 1)`` or the values' shape).
        Raises:
            ValueError: weights that do not broadcast to the values.
        """
        v = _float_values(values, self.name, "values")
        if sample_weight is None:
            self._total += float(v.sum())
            return
        w = _leading_weights(sample_weight, v.shape, self.name)
        self._total += float(np.sum(v * w))

    def result(self):
        return self._total

    def reset_state(self):
        self._total = 0.0

    def get_config(self):
        return {"name": self.name, "dtype": _dtype_name(self)}


def _dtype_name(metric):
    """The dtype given to the constructor, by name (None when none was given)."""
    dtype = metric.__dict__.get("_dtype")
    return None if dtype is None else dtype.name


def _float_values(values, owner, what):
    """``values`` (an array, a Tensor or numbers) as a float64 array."""
    if isinstance(values, Tensor):
        values = values.value
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {what} must be numbers. Received: "
                        f"{type(values).__name__} {values!r:.60}")
    return array.astype(np.float64, copy=False)


def _leading_weights(sample_weight, shape, owner):
    """Keras' alignment of sample weights with values of ``shape``: a trailing axis of 1
    dropped, missing trailing axes added, then broadcast; float64 weights of ``shape``."""
    w = _float_values(sample_weight, owner, "sample_weight")
    if w.ndim == len(shape) + 1 and w.shape[-1] == 1:
        w = w.reshape(w.shape[:-1])
    if w.ndim <= len(shape):
        w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))
        try:
            return np.broadcast_to(w, shape)
        except ValueError:
            pass
    raise ValueError(f"{owner}: sample_weight of shape {np.shape(sample_weight)} does not "
                     f"broadcast to the values of shape {shape} (weights align with the "
                     f"first axis: one per sample, or one per value).")


class LossMean(Mean):
    """The mean of a built-in loss's per-sample values, computed by the loss's compiled
    kernel in one pass (no ops, no per-element temporaries).

    Per-sample values follow Keras' metrics: the loss of each position (a mean or sum over
    the last axis), averaged over the positions of a sample; sample weights align with the
    first axis (one per sample) or give one weight per position.

    Args:
        loss: the :class:`minidl.losses.Loss` whose kernel computes the values.
        name: name of the metric.
        dtype: the float dtype the kernel computes in. Defaults to None: y_pred's (float32
            for other data), as the loss would.
    """

    _sign = 1.0   # -1 for a metric that reports the negated loss (cosine similarity)

    def __init__(self, loss, name, dtype=None):
        super().__init__(name, _float_dtype(name, dtype))
        self._loss = loss

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch.

        Args:
            y_true: targets, as the loss takes them.
            y_pred: predictions, shape ``(batch, ..., d)``.
            sample_weight: None, a number, one weight per sample (``(batch,)`` or
                ``(batch, 1)``) or one per position (``y_pred.shape[:-1]``).
        Raises:
            ValueError: shapes that do not fit, NaN inputs, or (sparse) invalid labels.
        """
        loss = self._loss
        if isinstance(y_pred, Tensor):
            y_pred = y_pred.value
        if isinstance(y_true, Tensor):
            y_true = y_true.value
        pred = np.asarray(y_pred)
        dtype = self.__dict__.get("_dtype")
        if dtype is None:
            dtype = pred.dtype if pred.dtype.kind == "f" and pred.dtype.itemsize in (4, 8) \
                else np.dtype(np.float32)
        pred = np.ascontiguousarray(pred, dtype=dtype)
        loss._check_pred(pred)
        if np.isnan(pred).any():
            raise ValueError(f"{self.name}: y_pred contains NaN.")
        targets, _ = loss._targets(y_true, pred, validate=True)
        batch = pred.shape[:-1]
        positions = math.prod(batch[1:]) if batch else 1
        rows = pred.reshape(-1, pred.shape[-1]) if pred.ndim != 2 else pred
        if sample_weight is None:
            weights, count = None, (batch[0] if batch else 1)
        else:
            if batch:
                full = _leading_weights(sample_weight, batch, self.name)
            else:
                full = np.asarray(_float_values(sample_weight, self.name,
                                                "sample_weight").sum())
            weights = np.ascontiguousarray(full.reshape(-1), dtype=dtype)
            count = float(full.sum()) / positions
        total, _ = loss._kernel(targets, rows, weights, 1.0, None, None)
        self._totals.add(self._sign * total / positions, count)


class _BuiltinLossMean(LossMean):
    """A :class:`LossMean` of one built-in loss class: the loss is made from the metric's
    name and loss arguments, and the config is the name, the dtype and the attributes named
    in ``_CONFIG`` (a subclass sets those attributes after ``__init__``)."""

    _LOSS = None     # the loss class whose kernel computes the per-sample values
    _CONFIG = ()     # the further constructor arguments get_config returns, in order

    def __init__(self, name, dtype=None, **loss_args):
        super().__init__(self._LOSS(name=name, **loss_args), name, dtype)

    def get_config(self):
        return {"name": self.name, "dtype": _dtype_name(self),
                **{key: getattr(self, key) for key in self._CONFIG}}
