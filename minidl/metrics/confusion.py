"""Confusion-matrix metrics with the names, arguments and results of Keras 3: the counts
(:class:`TruePositives`, ...), :class:`Precision`, :class:`Recall`, :class:`AUC`, the metrics
at a fixed operating point (:class:`PrecisionAtRecall`, ...) and the F-scores.

A prediction counts as positive at a threshold when ``y_pred > threshold``; labels are cast to
bool. Each metric keeps its state in a compiled counter (``minidl._core._confusion``):
``update_state`` is one call into it, which adds the batch's weighted predictions to a float64
histogram by threshold slot, O(1) per prediction whatever the number of thresholds. The
counts per threshold, and the result, are computed from the histogram when ``result()`` is
read. Results are Python floats, or float64 arrays for one value per threshold or class.
"""
import numbers

import numpy as np

from minidl._core._confusion import (MODE_EVEN, MODE_EVEN_EPS, MODE_SORTED, ConfusionCounts,
                                     FBetaCounts)
from minidl.metrics.base import METRICS, Metric

_EPSILON = 1e-7     # keras.backend.epsilon()
_NEG_INF = -1e10    # Keras' metrics_utils.NEG_INF: the threshold of a top-k metric


# ---- argument checks ----

def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_thresholds(thresholds, cls_name):
    """``thresholds`` (a float or a list of floats in [0, 1]) as a list of floats."""
    values = thresholds
    if isinstance(thresholds, np.ndarray) and thresholds.ndim <= 1:
        values = thresholds.tolist()
    if _is_real(values):
        values = [values]
    if (not isinstance(values, (list, tuple)) or not values
            or not all(_is_real(t) for t in values)):
        raise ValueError(f"{cls_name}: `thresholds` must be a float or a non-empty list of "
                         f"floats in [0, 1]. Received: thresholds={thresholds!r}")
    outside = [t for t in values if not 0.0 <= t <= 1.0]
    if outside:
        raise ValueError(f"{cls_name}: `thresholds` must lie in [0, 1]. Received: "
                         f"thresholds={thresholds!r} (outside: {outside})")
    return [float(t) for t in values]


def _config_thresholds(thresholds):
    """The constructor's ``thresholds`` in JSON form: None, a float or a list of floats."""
    if thresholds is None or _is_real(thresholds):
        return None if thresholds is None else float(thresholds)
    return [float(t) for t in np.asarray(thresholds).reshape(-1)]


def _check_int(value, arg, minimum, cls_name, optional=True):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        what = f"an int >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{cls_name}: `{arg}` must be {what}. Received: {arg}={value!r}")
    return int(value)


def _check_unit(value, arg, cls_name):
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{cls_name}: `{arg}` must be a float in the range [0, 1]. Received: "
                         f"{arg}={value!r}")
    return float(value)


def _check_bool(value, arg, cls_name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{cls_name}: `{arg}` must be True or False. Received: "
                         f"{arg}={value!r}")
    return bool(value)


def _is_evenly_spaced(thresholds):
    # Keras' is_evenly_distributed_thresholds: at least 3 values, i / (T - 1) in order.
    count = len(thresholds)
    if count < 3:
        return False
    even = np.arange(count, dtype=np.float32) / (count - 1)
    return bool(np.allclose(thresholds, even, atol=_EPSILON))


def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def _scalar_or_array(values):
    values = np.asarray(values, np.float64)
    return float(values[0]) if values.size == 1 else values


# ---- the shared state ----

class _ConfusionMetric(Metric):
    """A metric over weighted confusion-matrix counts at one or more thresholds."""

    def _start_counts(self, thresholds, even, epsilon_ends=False, top_k=None, class_id=None,
                      multi_label=False, num_labels=None, label_weights=None,
                      from_logits=False):
        """Makes the compiled counter; ``thresholds`` in the order results report them."""
        thresholds = np.asarray(thresholds, np.float64)
        order = np.argsort(thresholds, kind="stable")
        # Results come from the sorted histogram: put them back in the order given.
        self._unsort = None if np.all(order[:-1] < order[1:]) else np.argsort(order)
        mode = (MODE_EVEN_EPS if epsilon_ends else MODE_EVEN) if even else MODE_SORTED
        self._counts = ConfusionCounts(
            thresholds[order], mode, self.dtype != "float64", top_k or 0,
            -1 if class_id is None else class_id, multi_label, num_labels or 0, label_weights,
            from_logits, self.name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch to the counts.

        Args:
            y_true: labels, 0/1 or bool (any non-zero value is a positive label), of the
                shape of ``y_pred`` (a trailing axis of 1 may differ).
            y_pred: predictions, shape ``(batch,)`` or ``(batch, ...)``, float (probabilities
                unless the metric takes logits).
            sample_weight: None, a number, one weight per sample (``(batch,)`` or
                ``(batch, 1)``) or one per value (the shape of ``y_true``); 0 masks.

        Raises:
            ValueError: shapes that do not fit; the message names them.
        """
        self._counts.update(y_true, y_pred, sample_weight)

    def reset_state(self):
        self._counts.reset()

    def _confusion(self):
        """(tp, fp, tn, fn), float64 arrays of shape (labels, thresholds), or None before a
        multi-label metric has seen its first batch."""
        pos, neg = self._counts.positives, self._counts.negatives
        if pos is None:
            return None
        # Slot s is positive at thresholds 0..s-1: a threshold's positives are the slots
        # above it, its negatives the slots at or below it. Summing each side directly,
        # never as a difference of totals, keeps an empty side exactly 0.
        tp = np.cumsum(pos[:, :0:-1], axis=1)[:, ::-1]
        fp = np.cumsum(neg[:, :0:-1], axis=1)[:, ::-1]
        fn = np.cumsum(pos[:, :-1], axis=1)
        tn = np.cumsum(neg[:, :-1], axis=1)
        if self._unsort is not None:
            tp, fp, tn, fn = (a[:, self._unsort] for a in (tp, fp, tn, fn))
        return tp, fp, tn, fn

    @property
    def true_positives(self):
        """The weighted true positives per threshold (float64; per label, thresholds first,
        for a multi-label AUC)."""
        return self._read(0)

    @property
    def false_positives(self):
        """The weighted false positives per threshold; see :attr:`true_positives`."""
        return self._read(1)

    @property
    def true_negatives(self):
        """The weighted true negatives per threshold; see :attr:`true_positives`."""
        return self._read(2)

    @property
    def false_negatives(self):
        """The weighted false negatives per threshold; see :attr:`true_positives`."""
        return self._read(3)

    def _read(self, which):
        counts = self._confusion()
        if counts is None:
            return None
        values = counts[which]
        return values[0] if values.shape[0] == 1 and not self._multi_label() else values.T

    def _multi_label(self):
        return False


# ---- counts ----

class _ConditionCount(_ConfusionMetric):
    """The weighted count of one confusion-matrix condition at each threshold."""

    _WHICH = None   # index into _confusion()'s (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        cls_name = type(self).__name__
        self.init_thresholds = thresholds
        self.thresholds = [0.5] if thresholds is None else _check_thresholds(thresholds,
                                                                              cls_name)
        self._start_counts(self.thresholds, _is_evenly_spaced(self.thresholds))

    def result(self):
        """The count: a float for one threshold, else a float64 array per threshold."""
        return _scalar_or_array(self._confusion()[self._WHICH][0])

    def get_config(self):
        return {"thresholds": _config_thresholds(self.init_thresholds), "name": self.name}


_COUNT_DOC = """The weighted number of {what}.

    A prediction is positive when ``y_pred > threshold``; labels are cast to bool. With
    ``sample_weight`` the sum of the weights of the {what} is counted; a weight of 0 masks.

    Args:
        thresholds: a float or a list of floats in ``[0, 1]`` (default 0.5); one count per
            threshold. With logits (a loss with ``from_logits=True``) use 0.
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64; counts are
            float64.

    Shapes:
        ``y_true`` and ``y_pred`` of one shape ``(batch,)`` or ``(batch, ...)`` (a trailing
        axis of 1 may differ); all values are counted.

    Example:
        >>> m = {cls}()
        >>> m.update_state({y_true}, {y_pred})
        >>> m.result()
        2.0
        >>> m.reset_state()
        >>> m.update_state({y_true}, {y_pred}, sample_weight=[0, 0, 1, 0])
        >>> m.result()
        1.0
    """


@METRICS.register("true_positives")
class TruePositives(_ConditionCount):
    __doc__ = _COUNT_DOC.format(what="true positives", cls="TruePositives",
                                y_true="[0, 1, 1, 1]", y_pred="[1, 0, 1, 1]")
    _WHICH = 0


@METRICS.register("false_positives")
class FalsePositives(_ConditionCount):
    __doc__ = _COUNT_DOC.format(what="false positives", cls="FalsePositives",
                                y_true="[0, 1, 0, 0]", y_pred="[0, 0, 1, 1]")
    _WHICH = 1


@METRICS.register("true_negatives")
class TrueNegatives(_ConditionCount):
    __doc__ = _COUNT_DOC.format(what="true negatives", cls="TrueNegatives",
                                y_true="[0, 1, 0, 0]", y_pred="[1, 1, 0, 0]")
    _WHICH = 2


@METRICS.register("false_negatives")
class FalseNegatives(_ConditionCount):
    __doc__ = _COUNT_DOC.format(what="false negatives", cls="FalseNegatives",
                                y_true="[0, 1, 1, 1]", y_pred="[0, 1, 0, 0]")
    _WHICH = 3


# ---- precision and recall ----

class _PrecisionRecall(_ConfusionMetric):

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        cls_name = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = _check_int(top_k, "top_k", 1, cls_name)
        self.class_id = _check_int(class_id, "class_id", 0, cls_name)
        if thresholds is None:
            # Keras: a top-k metric counts every kept prediction as positive.
            self.thresholds = [0.5 if top_k is None else _NEG_INF]
        else:
            self.thresholds = _check_thresholds(thresholds, cls_name)
        self._start_counts(self.thresholds, _is_evenly_spaced(self.thresholds),
                           top_k=self.top_k, class_id=self.class_id)

    def get_config(self):
        return {"thresholds": _config_thresholds(self.init_thresholds), "top_k": self.top_k,
                "class_id": self.class_id, "name": self.name}


_PR_ARGS = """Args:
        thresholds: a float or a list of floats in ``[0, 1]``; one result per threshold. A
            prediction above a threshold is positive. Default: 0.5, or with ``top_k``,
            every prediction among the top k. With logits use 0.
        top_k: keep only the k largest predictions of each row (along the last axis; ties go
            to the lower index); the others count as negative.
        class_id: count only this class, an index of the last axis of ``y_pred``.
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64.

    Shapes:
        ``y_true`` and ``y_pred`` of one shape ``(batch,)`` or ``(batch, ..., classes)`` (a
        trailing axis of 1 may differ); ``class_id`` needs rank 2 or more."""


@METRICS.register("precision")
class Precision(_PrecisionRecall):
    __doc__ = f"""Precision: ``tp / (tp + fp)`` (0 where nothing is predicted positive).

    With ``top_k``, how often a class among the top k of a row is a true label; with
    ``class_id``, the precision of that class alone.

    {_PR_ARGS}

    Example:
        >>> m = Precision()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> m.result()
        0.6666666666666666
        >>> m = Precision(top_k=2)
        >>> m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
        >>> m.result()
        0.0
    """

    def result(self):
        """The precision: a float for one threshold, else a float64 array per threshold."""
        tp, fp, _, _ = self._confusion()
        return _scalar_or_array(_divide_no_nan(tp[0], tp[0] + fp[0]))


@METRICS.register("recall")
class Recall(_PrecisionRecall):
    __doc__ = f"""Recall: ``tp / (tp + fn)`` (0 where there is no positive label).

    With ``top_k``, how often a true label of a row is among its top k predictions; with
    ``class_id``, the recall of that class alone.

    {_PR_ARGS}

    Example:
        >>> m = Recall()
        >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        >>> m.result()
        0.6666666666666666
    """

    def result(self):
        """The recall: a float for one threshold, else a float64 array per threshold."""
        tp, _, _, fn = self._confusion()
        return _scalar_or_array(_divide_no_nan(tp[0], tp[0] + fn[0]))


# ---- AUC ----

_CURVES = {"roc": "ROC", "pr": "PR"}
_SUMMATIONS = ("interpolation", "minoring", "majoring")


@METRICS.register("auc")
class AUC(_ConfusionMetric):
    """The area under the ROC or precision-recall curve, by a Riemann sum over thresholds.

    Predictions are counted at ``num_thresholds`` thresholds: ``-epsilon``, ``i / (T - 1)``
    for ``0 < i < T - 1``, and ``1 + epsilon`` (epsilon = 1e-7), so that predictions of
    exactly 0 and 1 fall inside the curve. ROC: the true-positive rate against the
    false-positive rate; PR: precision against recall. For a good estimate, predictions
    should spread over [0, 1]; 'minoring' and 'majoring' bound the interpolated area from
    below and above.

    Args:
        num_thresholds: the number of thresholds (> 1). Default 200.
        curve: 'ROC' (default) or 'PR'.
        summation_method: 'interpolation' (default): trapezoids for ROC, and for PR
            Davis & Goadrich's interpolation of true and false positives (not of the
            precision) between thresholds; 'minoring': the lower of the two heights of each
            interval; 'majoring': the higher.
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64.
        thresholds: a list of floats in [0, 1] to use instead of evenly spaced ones
            (``num_thresholds`` is then ignored); ``-epsilon`` and ``1 + epsilon`` are added.
        multi_label: True: one curve per column of 2-D predictions, and the (weighted)
            mean of the label AUCs; False: all values form one curve.
        num_labels: the number of labels when ``multi_label`` (else taken from the first
            batch).
        label_weights: non-negative weights, one per label (the last axis): with
            ``multi_label``, of each label's AUC in the mean; otherwise of each value in the
            counts.
        from_logits: the predictions are logits (a sigmoid is applied first).

    Shapes:
        ``y_true`` and ``y_pred`` of one shape ``(batch,)`` or ``(batch, ...)`` (a trailing
        axis of 1 may differ); ``(batch, labels)`` with ``multi_label``.

    Example:
        >>> m = AUC(num_thresholds=3)
        >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
        >>> m.result()     # tp = [2, 1, 0], fp = [2, 0, 0]: trapezoids under (fpr, tpr)
        0.75
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError(f"AUC: invalid `curve` argument value. Expected 'ROC' or 'PR'. "
                             f"Received: curve={curve!r}")
        if not isinstance(summation_method, str) or \
                summation_method.lower() not in _SUMMATIONS:
            raise ValueError(f"AUC: invalid `summation_method` argument value. Expected one "
                             f"of {_SUMMATIONS}. Received: summation_method="
                             f"{summation_method!r}")
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        self.multi_label = _check_bool(multi_label, "multi_label", "AUC")
        self.from_logits = _check_bool(from_logits, "from_logits", "AUC")
        self.num_labels = _check_int(num_labels, "num_labels", 1, "AUC")
        if self.num_labels is not None and not self.multi_label:
            raise ValueError(f"AUC: `num_labels` is needed only when multi_label is True. "
                             f"Received: num_labels={num_labels!r}, multi_label=False")
        self.label_weights = self._check_label_weights(label_weights)
        self._init_from_thresholds = thresholds is not None
        # Checked even where `thresholds` makes it unused: a saved config holds both.
        _check_int(num_thresholds, "num_thresholds", 2, "AUC", optional=False)
        if thresholds is not None:
            inner = sorted(_check_thresholds(thresholds, "AUC"))
            self.num_thresholds = len(inner) + 2
            even = _is_evenly_spaced([0.0] + inner + [1.0])
        else:
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            even = True
        self._thresholds = [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]
        self._start_counts(self._thresholds, even, epsilon_ends=True,
                           multi_label=self.multi_label, num_labels=self.num_labels,
                           label_weights=self.label_weights, from_logits=self.from_logits)

    def _check_label_weights(self, label_weights):
        if label_weights is None:
            return None
        values = label_weights.tolist() if isinstance(label_weights, np.ndarray) \
            else label_weights
        if (not isinstance(values, (list, tuple)) or not values
                or not all(_is_real(w) and w >= 0 and np.isfinite(w) for w in values)):
            raise ValueError(f"AUC: `label_weights` must be a non-empty list of non-negative "
                             f"floats, one per label. Received: label_weights="
                             f"{label_weights!r}")
        if self.num_labels is not None and len(values) != self.num_labels:
            raise ValueError(f"AUC: `label_weights` needs one weight per label "
                             f"(num_labels={self.num_labels}). Received: label_weights="
                             f"{label_weights!r}")
        return np.array(values, np.float64)

    @property
    def thresholds(self):
        """The thresholds used, the epsilon-shifted ends included."""
        return list(self._thresholds)

    def _multi_label(self):
        return self.multi_label

    def result(self):
        """The AUC, a float (0.0 before any batch)."""
        counts = self._confusion()
        if counts is None:
            return 0.0
        tp, fp, tn, fn = counts
        if self.curve == "PR" and self.summation_method == "interpolation":
            by_label = self._interpolated_pr_auc(tp, fp, fn)
        else:
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            else:
                x, y = recall, _divide_no_nan(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:, :-1] + y[:, 1:]) / 2.0
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:, :-1], y[:, 1:])
            else:
                heights = np.maximum(y[:, :-1], y[:, 1:])
            by_label = np.sum((x[:, :-1] - x[:, 1:]) * heights, axis=1)
        if not self.multi_label:
            return float(by_label[0])
        if self.label_weights is None:
            return float(np.mean(by_label))
        total = float(np.sum(self.label_weights))
        return float(np.sum(by_label * self.label_weights) / total) if total else 0.0

    @staticmethod
    def _interpolated_pr_auc(tp, fp, fn):
        """Davis & Goadrich (2006): between two thresholds A, B, true positives and
        predicted positives P = tp + fp vary linearly, so precision = tp / P integrates in
        closed form over recall: ``slope * (dtp + intercept * log(P_A / P_B)) / positives``,
        with ``slope = dtp / dP`` and ``intercept = tp_B - slope * P_B``; where P_A or P_B is
        0 the log term is dropped (constant precision across the interval)."""
        p = tp + fp
        dtp = tp[:, :-1] - tp[:, 1:]
        dp = p[:, :-1] - p[:, 1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0.0))
        intercept = tp[:, 1:] - slope * p[:, 1:]
        both = (p[:, :-1] > 0) & (p[:, 1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:, :-1], np.maximum(p[:, 1:], 0.0)), 1.0)
        increments = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                                    np.maximum(tp[:, 1:] + fn[:, 1:], 0.0))
        return np.sum(increments, axis=1)

    def get_config(self):
        config = {"num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "name": self.name,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None
                  else self.label_weights.tolist(),
                  "from_logits": self.from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self._thresholds[1:-1]
        return config


# ---- one rate at a constraint on another ----

class _RateAtRate(_ConfusionMetric):
    """The best value of one rate over the thresholds where another is at least a value."""

    _VALUE = None    # the constrained rate, also the constructor argument holding its value
    _RESULT = None   # the rate result() maximises

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        cls_name = type(self).__name__
        setattr(self, self._VALUE, _check_unit(value, self._VALUE, cls_name))
        self.value = getattr(self, self._VALUE)
        self.num_thresholds = _check_int(num_thresholds, "num_thresholds", 1, cls_name,
                                         optional=False)
        self.class_id = _check_int(class_id, "class_id", 0, cls_name)
        if self.num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            step = self.num_thresholds - 1
            self.thresholds = [0.0] + [(i + 1) / step for i in range(step - 1)] + [1.0]
        self._start_counts(self.thresholds, self.num_thresholds > 1, class_id=self.class_id)

    def result(self):
        """The best ``_RESULT`` rate over the thresholds whose ``_VALUE`` rate is at least
        the value; 0.0 when none is."""
        tp, fp, tn, fn = (a[0] for a in self._confusion())
        recall = _divide_no_nan(tp, tp + fn)
        rates = {"sensitivity": recall, "recall": recall,
                 "specificity": _divide_no_nan(tn, tn + fp),
                 "precision": _divide_no_nan(tp, tp + fp)}
        feasible = rates[self._VALUE] >= self.value
        if not feasible.any():
            return 0.0
        return float(np.max(rates[self._RESULT][feasible], initial=0.0))

    def get_config(self):
        return {"num_thresholds": self.num_thresholds, self._VALUE: self.value,
                "class_id": self.class_id, "name": self.name}


_RATE_ARGS = """Args:
        {value}: the constraint, a float in [0, 1].
        num_thresholds: the number of thresholds, evenly spaced on [0, 1] (0.5 alone for
            1). Default 200.
        class_id: count only this class, an index of the last axis of ``y_pred``.
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64.

    Shapes:
        ``y_true`` and ``y_pred`` of one shape ``(batch,)`` or ``(batch, ...)`` (a trailing
        axis of 1 may differ); all values are counted (one column with ``class_id``)."""


@METRICS.register("sensitivity_at_specificity")
class SensitivityAtSpecificity(_RateAtRate):
    __doc__ = f"""The best sensitivity (recall) at thresholds whose specificity
    ``tn / (tn + fp)`` is at least ``specificity``; 0 when none is.

    {_RATE_ARGS.format(value="specificity")}

    Example:
        >>> m = SensitivityAtSpecificity(0.5)
        >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
        >>> m.result()
        0.5
    """
    _VALUE = "specificity"
    _RESULT = "sensitivity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)


@METRICS.register("specificity_at_sensitivity")
class SpecificityAtSensitivity(_RateAtRate):
    __doc__ = f"""The best specificity ``tn / (tn + fp)`` at thresholds whose sensitivity
    (recall) is at least ``sensitivity``; 0 when none is.

    {_RATE_ARGS.format(value="sensitivity")}

    Example:
        >>> m = SpecificityAtSensitivity(0.5)
        >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
        >>> m.result()
        0.6666666666666666
    """
    _VALUE = "sensitivity"
    _RESULT = "specificity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)


@METRICS.register("precision_at_recall")
class PrecisionAtRecall(_RateAtRate):
    __doc__ = f"""The best precision at thresholds whose recall is at least ``recall``; 0
    when none is.

    {_RATE_ARGS.format(value="recall")}

    Example:
        >>> m = PrecisionAtRecall(0.5)
        >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
        >>> m.result()
        0.5
    """
    _VALUE = "recall"
    _RESULT = "precision"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)


@METRICS.register("recall_at_precision")
class RecallAtPrecision(_RateAtRate):
    __doc__ = f"""The best recall at thresholds whose precision is at least ``precision``;
    0 when none is (the precision cannot be reached).

    {_RATE_ARGS.format(value="precision")}

    Example:
        >>> m = RecallAtPrecision(0.8)
        >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
        >>> m.result()
        0.5
    """
    _VALUE = "precision"
    _RESULT = "recall"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)


# ---- F-scores ----

_AVERAGES = (None, "micro", "macro", "weighted")


@METRICS.register("f_beta_score", "fbeta_score")
class FBetaScore(Metric):
    """The F-beta score per class, or averaged: ``(1 + b2) * p * r / (b2 * p + r)`` with
    ``b2 = beta ** 2``, the weighted harmonic mean of precision ``p`` and recall ``r``.

    As Keras computes it: ``p = tp / (tp + fp + eps)``, ``r = tp / (tp + fn + eps)`` and
    ``eps`` (1e-7) added to the denominator, so a class never predicted nor present scores 0.

    Args:
        average: None (one score per class), 'micro' (from the counts summed over classes),
            'macro' (the mean of the class scores) or 'weighted' (their mean weighted by
            each class's support, the sum of its labels).
        beta: the weight of recall, a float > 0. Default 1.
        threshold: predictions above it are positive, a float in (0, 1]; None (default):
            the largest prediction of each row is (all tied maxima, and never a 0).
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64.

    Shapes:
        ``y_true`` and ``y_pred`` both ``(batch, classes)``, multi-class (one-hot) or
        multi-label; ``sample_weight`` None, a number or ``(batch,)``.

    Example:
        >>> m = FBetaScore(beta=2.0, threshold=0.5)
        >>> m.update_state(np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
        ...                np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]))
        >>> m.result()
        array([0.38461536, 0.90909084, 0.83333324])
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        cls_name = type(self).__name__
        if average not in _AVERAGES or not (average is None or isinstance(average, str)):
            raise ValueError(f"{cls_name}: invalid `average` argument value. Expected one of "
                             f"{_AVERAGES}. Received: average={average!r}")
        if not _is_real(beta) or not beta > 0:
            raise ValueError(f"{cls_name}: invalid `beta` argument value. It should be a "
                             f"float > 0. Received: beta={beta!r}")
        if threshold is not None and (not _is_real(threshold) or not 0 < threshold <= 1):
            raise ValueError(f"{cls_name}: invalid `threshold` argument value. It should be "
                             f"None or a float with 0 < threshold <= 1. Received: "
                             f"threshold={threshold!r}")
        self.average = average
        self.beta = float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self._counts = FBetaCounts(self.threshold, self.dtype != "float64", self.name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds one batch.

        Args:
            y_true: labels, shape ``(batch, classes)``, 0/1 or bool.
            y_pred: predictions, shape ``(batch, classes)``.
            sample_weight: None, a number, or one weight per sample (``(batch,)``).

        Raises:
            ValueError: inputs that are not 2-D of one shape, or a number of classes other
                than the first batch's.
        """
        self._counts.update(y_true, y_pred, sample_weight)

    def reset_state(self):
        self._counts.reset()

    def result(self):
        """The score: a float64 array per class (``average=None``), else a float; 0.0
        before any batch."""
        counts = self._counts
        if not counts.num_classes:
            return 0.0
        tp, fp, fn = counts.true_positives, counts.false_positives, counts.false_negatives
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = tp / (tp + fp + _EPSILON)
        recall = tp / (tp + fn + _EPSILON)
        b2 = self.beta ** 2
        score = precision * recall / (b2 * precision + recall + _EPSILON) * (1.0 + b2)
        if self.average == "weighted":
            support = counts.support
            return float(np.sum(score * support / (np.sum(support) + _EPSILON)))
        if self.average is not None:
            return float(np.mean(score))
        return np.array(score, np.float64)

    def get_config(self):
        return {"average": self.average, "beta": self.beta, "threshold": self.threshold,
                "name": self.name}


@METRICS.register("f1_score")
class F1Score(FBetaScore):
    """The F1 score per class, or averaged: ``2 * p * r / (p + r)``, the harmonic mean of
    precision ``p`` and recall ``r`` (:class:`FBetaScore` with ``beta=1``).

    Args:
        average: None (one score per class), 'micro', 'macro' or 'weighted'; see
            :class:`FBetaScore`.
        threshold: predictions above it are positive, a float in (0, 1]; None (default):
            the largest prediction of each row is.
        name: name of the metric.
        dtype: the precision of the comparisons, float32 (default) or float64.

    Shapes:
        ``y_true`` and ``y_pred`` both ``(batch, classes)``.

    Example:
        >>> m = F1Score(threshold=0.5)
        >>> m.update_state(np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
        ...                np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]))
        >>> m.result()
        array([0.49999994, 0.79999992, 0.66666658])
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name,
                         dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
