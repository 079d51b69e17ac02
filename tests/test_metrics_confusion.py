"""The confusion-matrix metrics (minidl.metrics.confusion) against Keras 3's documented
examples, a plain-numpy restatement of Keras' counting rule, and scikit-learn.

The numpy reference counts a value as positive at a threshold when ``y_pred > threshold``,
both cast to float32 (the metric's dtype), labels cast to bool. Unweighted counts are small
integers, so they must match exactly; weighted ones to 1e-12 relative. scikit-learn checks the
results built on the counts (precision, recall, ROC AUC, F-scores, operating points).
"""
import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import minidl
from minidl import metrics as M
from minidl.layers import Dense, Input

RNG = np.random.default_rng(20251205)


# ---- numpy reference ----

def ref_counts(y_true, y_pred, thresholds, sample_weight=None, dtype=np.float32):
    """(tp, fp, tn, fn) per threshold by Keras' rule, over all values."""
    p = np.asarray(y_pred, np.float64).astype(dtype).reshape(-1)
    t = np.asarray(y_true).reshape(-1) != 0
    w = np.ones(p.size) if sample_weight is None else np.broadcast_to(
        np.asarray(sample_weight, np.float64).reshape(
            (-1,) + (1,) * (np.ndim(y_pred) - 1) if np.ndim(sample_weight) == 1 else
            np.shape(sample_weight)), np.shape(y_pred)).reshape(-1)
    above = p[None, :] > np.asarray(thresholds, dtype)[:, None]
    return tuple(np.sum(w * (above == a) * (t == b), axis=1)
                 for a, b in ((True, True), (True, False), (False, False), (False, True)))


def binary_data(n, positives=0.4, dtype=np.float32):
    y_true = (RNG.random(n) < positives).astype(np.int64)
    y_pred = np.clip(0.35 * y_true + RNG.random(n) * 0.65, 0, 1).astype(dtype)
    return y_true, y_pred


# ---- Keras' documented examples ----

@pytest.mark.parametrize("cls, y_true, y_pred", [
    (M.TruePositives, [0, 1, 1, 1], [1, 0, 1, 1]),
    (M.FalsePositives, [0, 1, 0, 0], [0, 0, 1, 1]),
    (M.TrueNegatives, [0, 1, 0, 0], [1, 1, 0, 0]),
    (M.FalseNegatives, [0, 1, 1, 1], [0, 1, 0, 0]),
])
def test_count_docstring_examples(cls, y_true, y_pred):
    m = cls()
    m.update_state(y_true, y_pred)
    assert m.result() == 2.0
    m.reset_state()
    m.update_state(y_true, y_pred, sample_weight=[0, 0, 1, 0])
    assert m.result() == 1.0


def test_precision_recall_docstring_examples():
    for cls in (M.Precision, M.Recall):
        m = cls()
        m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
        assert m.result() == pytest.approx(2 / 3)
        m.reset_state()
        m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
        assert m.result() == 1.0
    m = M.Precision(top_k=2)   # the top 2 of the rank-1 batch: y_true[:2]
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.0
    m = M.Precision(top_k=4)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.5


@pytest.mark.parametrize("cls, value, y_true, y_pred, weights, plain, weighted", [
    (M.SensitivityAtSpecificity, 0.5, [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8],
     [1, 1, 2, 2, 1], 0.5, 1 / 3),
    (M.SpecificityAtSensitivity, 0.5, [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8],
     [1, 1, 2, 2, 2], 2 / 3, 0.5),
    (M.PrecisionAtRecall, 0.5, [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8],
     [2, 2, 2, 1, 1], 0.5, 1 / 3),
    (M.RecallAtPrecision, 0.8, [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 0, 0, 1], 0.5, 1.0),
])
def test_operating_point_docstring_examples(cls, value, y_true, y_pred, weights, plain,
                                            weighted):
    m = cls(value)
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(plain)
    m.reset_state()
    m.update_state(y_true, y_pred, sample_weight=weights)
    assert m.result() == pytest.approx(weighted)


def test_auc_docstring_example():
    m = M.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    np.testing.assert_allclose(m.thresholds, [-1e-7, 0.5, 1 + 1e-7])
    np.testing.assert_array_equal(m.true_positives, [2, 1, 0])
    np.testing.assert_array_equal(m.false_positives, [2, 0, 0])
    np.testing.assert_array_equal(m.false_negatives, [0, 1, 2])
    np.testing.assert_array_equal(m.true_negatives, [0, 2, 2])
    assert m.result() == 0.75
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert m.result() == 1.0


# Keras' weighted AUC cases (confusion_metrics_test.py): tp = [7, 4, 0], fp = [3, 0, 0],
# fn = [0, 3, 7], tn = [0, 3, 3]; recall = [1, 4/7, 0], fp rate = [1, 0, 0],
# precision = [0.7, 1, 0].
_R = 4 / 7


@pytest.mark.parametrize("curve, method, expected", [
    ("ROC", "interpolation", (1 + _R) / 2),
    ("ROC", "minoring", _R),
    ("ROC", "majoring", 1.0),
    ("PR", "majoring", 1 * (1 - _R) + 1 * _R),
    ("PR", "minoring", 0.7 * (1 - _R)),
    ("PR", "interpolation", 0.5 * (3 + 2 * np.log(2.5)) / 7 + 4 / 7),
])
@pytest.mark.parametrize("from_logits", [False, True])
def test_auc_weighted_keras_cases(curve, method, expected, from_logits):
    y_pred = np.array([0, 0.5, 0.3, 0.9], np.float32)
    if from_logits:   # Keras' y_pred_logits: sigmoid brings back y_pred
        y_pred = -np.log(1.0 / (y_pred.astype(np.float64) + 1e-12) - 1.0)
    m = M.AUC(num_thresholds=3, curve=curve, summation_method=method,
              from_logits=from_logits)
    m.update_state(np.array([0, 0, 1, 1]), y_pred, sample_weight=[1, 2, 3, 4])
    assert m.result() == pytest.approx(expected, rel=1e-6)


def test_fscore_docstring_examples():
    y_true = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.int32)
    y_pred = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]], np.float32)
    m = M.FBetaScore(beta=2.0, threshold=0.5)
    m.update_state(y_true, y_pred)
    np.testing.assert_allclose(m.result(), [0.3846154, 0.90909094, 0.8333334], rtol=1e-6)
    m = M.F1Score(threshold=0.5)
    m.update_state(y_true, y_pred)
    np.testing.assert_allclose(m.result(), [0.5, 0.8, 0.6666667], rtol=1e-6)


# ---- counting rule against the numpy reference ----

@pytest.mark.parametrize("thresholds", [
    [0.5], [0.7, 0.1, 0.45, 0.45],                       # binary search, unsorted order
    np.linspace(0, 1, 11).tolist(),                      # Keras' evenly spaced path
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_match_reference(thresholds, dtype):
    y_true, y_pred = binary_data(3000, dtype=dtype)
    y_pred[:4] = [0.0, 1.0, 0.5, 0.1]                     # values on thresholds
    metrics = [M.TruePositives(thresholds), M.FalsePositives(thresholds),
               M.TrueNegatives(thresholds), M.FalseNegatives(thresholds)]
    for m in metrics:
        m.update_state(y_true, y_pred)
    expected = ref_counts(y_true, y_pred, thresholds)
    for m, e in zip(metrics, expected):
        np.testing.assert_array_equal(np.atleast_1d(m.result()), e)
    sk = skm.confusion_matrix(y_true, y_pred > np.float32(thresholds[0]))
    assert (metrics[2].result() if len(thresholds) == 1 else metrics[2].result()[0]) \
        == sk[0, 0]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), width=st.integers(1, 4),
       thresholds=st.lists(st.sampled_from([0.0, 0.25, 0.3, 0.5, 0.75, 1.0]), min_size=1,
                           max_size=5),
       weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_counts_match_reference_on_random_inputs(n, width, thresholds, weighted, seed):
    rng = np.random.default_rng(seed)
    # Predictions on a coarse grid, so that many sit exactly on a threshold.
    y_pred = (rng.integers(0, 9, (n, width)) / 8).astype(np.float32)
    y_true = rng.integers(0, 2, (n, width))
    weights = rng.random(n) if weighted else None
    m = M.TruePositives(thresholds), M.FalsePositives(thresholds), \
        M.TrueNegatives(thresholds), M.FalseNegatives(thresholds)
    for metric, expected in zip(m, ref_counts(y_true, y_pred, thresholds, weights)):
        metric.update_state(y_true, y_pred, sample_weight=weights)
        np.testing.assert_allclose(np.atleast_1d(metric.result()), expected, rtol=1e-12)


def test_weighted_counts_per_sample_and_per_value():
    y_true = (RNG.random((400, 3)) < 0.5).astype(bool)
    y_pred = RNG.random((400, 3)).astype(np.float32)
    thresholds = [0.2, 0.5, 0.9]
    for weights in (RNG.random(400), RNG.random((400, 1)), RNG.random((400, 3)), 2.5):
        m = M.TruePositives(thresholds)
        m.update_state(y_true, y_pred, sample_weight=weights)
        w = weights if np.ndim(weights) != 2 or np.shape(weights)[1] == 3 else weights[:, 0]
        np.testing.assert_allclose(m.result(), ref_counts(y_true, y_pred, thresholds, w)[0],
                                   rtol=1e-12)


def test_comparison_precision_follows_the_metric_dtype():
    # 0.50000001 is 0.5 in float32: not above the threshold there, above it in float64.
    y_pred = np.array([0.50000001, 0.9])
    assert M.TruePositives().__call__([1, 1], y_pred) == 1.0
    assert M.TruePositives(dtype="float64")([1, 1], y_pred) == 2.0


def test_nan_predictions_are_positive_nowhere():
    for m in (M.TruePositives([0.0, 0.5]), M.AUC(num_thresholds=5)):
        m.update_state([1, 1], np.array([np.nan, 0.7], np.float32))
        assert m.true_positives[0] == 1.0 and m.false_negatives[0] == 1.0


def test_class_id_and_top_k_match_reference():
    y_true = (RNG.random((300, 5)) < 0.3).astype(np.float32)
    y_pred = RNG.random((300, 5)).astype(np.float32)
    y_pred[:20, 1] = y_pred[:20, 2]                      # ties go to the lower index
    order = np.argsort(-y_pred, axis=1, kind="stable")
    in_top2 = np.zeros_like(y_true, bool)
    np.put_along_axis(in_top2, order[:, :2], True, axis=1)
    kept = np.where(in_top2, y_pred, -1e10)
    cases = [(dict(class_id=3), y_true[:, 3], y_pred[:, 3], [0.5]),
             (dict(top_k=2), y_true, kept, [-1e10]),
             (dict(top_k=2, class_id=1), y_true[:, 1], kept[:, 1], [-1e10]),
             (dict(top_k=2, thresholds=[0.3, 0.8]), y_true, kept, [0.3, 0.8])]
    for kwargs, t, p, thresholds in cases:
        tp, fp, _, fn = ref_counts(t, p, thresholds)
        precision, recall = M.Precision(**kwargs), M.Recall(**kwargs)
        precision.update_state(y_true, y_pred)
        recall.update_state(y_true, y_pred)
        np.testing.assert_allclose(precision.result(), tp / (tp + fp), rtol=1e-12)
        np.testing.assert_allclose(recall.result(), tp / (tp + fn), rtol=1e-12)


# ---- scikit-learn ----

def test_precision_recall_match_sklearn():
    y_true, y_pred = binary_data(5000)
    weights = RNG.random(5000)
    for sw in (None, weights):
        for cls, fn in ((M.Precision, skm.precision_score), (M.Recall, skm.recall_score)):
            m = cls()
            m.update_state(y_true, y_pred, sample_weight=sw)
            assert m.result() == pytest.approx(fn(y_true, y_pred > 0.5, sample_weight=sw),
                                               rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roc_auc_approaches_sklearn(dtype):
    y_true, y_pred = binary_data(20000, dtype=dtype)
    weights = RNG.random(20000)
    m = M.AUC(num_thresholds=2000)
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(skm.roc_auc_score(y_true, y_pred), abs=1e-4)
    m = M.AUC(num_thresholds=2000)
    m.update_state(y_true, y_pred, sample_weight=weights)
    assert m.result() == pytest.approx(skm.roc_auc_score(y_true, y_pred, sample_weight=weights),
                                       abs=1e-4)
    # The PR curve: Keras' interpolation against the trapezoids of sklearn's curve.
    m = M.AUC(num_thresholds=2000, curve="PR")
    m.update_state(y_true, y_pred)
    precision, recall, _ = skm.precision_recall_curve(y_true, y_pred)
    assert m.result() == pytest.approx(skm.auc(recall, precision), abs=2e-3)


def test_auc_with_given_thresholds_is_exact_on_a_grid():
    # Predictions strictly between given thresholds: every ROC point is a threshold of the
    # metric, so the trapezoid rule equals sklearn's AUC (ties included).
    grid = [0.1, 0.2, 0.35, 0.5, 0.8]
    values = np.array([0.05, 0.15, 0.3, 0.4, 0.6, 0.9], np.float32)
    y_pred = values[RNG.integers(0, 6, 1000)]
    y_true = (RNG.random(1000) < y_pred).astype(int)
    m = M.AUC(thresholds=grid)
    m.update_state(y_true, y_pred)
    assert m.num_thresholds == 7
    assert m.result() == pytest.approx(skm.roc_auc_score(y_true, y_pred), rel=1e-12)
    even = M.AUC(thresholds=[0.2, 0.4, 0.6, 0.8])        # Keras' bucket path
    even.update_state(y_true, y_pred)
    ref = M.AUC(thresholds=[0.2, 0.4, 0.6, 0.8001])
    ref.update_state(y_true, y_pred)
    assert even.result() == ref.result()


def test_operating_points_match_sklearn_curves():
    # Predictions between the metric's thresholds (i / 20): its operating points are
    # exactly those of sklearn's curves, but for sklearn's artificial end point.
    y_pred = ((RNG.integers(0, 20, 2000) + 0.5) / 20).astype(np.float32)
    y_true = (RNG.random(2000) < y_pred).astype(int)
    precision, recall, _ = skm.precision_recall_curve(y_true, y_pred)
    precision, recall = precision[:-1], recall[:-1]
    fpr, tpr, _ = skm.roc_curve(y_true, y_pred, drop_intermediate=False)
    for value in (0.3, 0.75, 0.95):
        cases = [(M.PrecisionAtRecall(value, 21), precision[recall >= value].max()),
                 (M.RecallAtPrecision(value, 21), recall[precision >= value].max()),
                 (M.SensitivityAtSpecificity(value, 21), tpr[1 - fpr >= value].max()),
                 (M.SpecificityAtSensitivity(value, 21), (1 - fpr)[tpr >= value].max())]
        for m, expected in cases:
            m.update_state(y_true, y_pred)
            assert m.result() == pytest.approx(expected, rel=1e-12), type(m).__name__


def test_unreachable_precision_gives_zero():
    m = M.RecallAtPrecision(0.99)
    m.update_state([1, 0, 0], [0.2, 0.9, 0.8])
    assert m.result() == 0.0


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_fscores_match_sklearn(average):
    y_true = (RNG.random((500, 4)) < 0.4).astype(np.int32)
    y_pred = np.clip(0.3 * y_true + 0.7 * RNG.random((500, 4)), 0, 1).astype(np.float32)
    weights = RNG.random(500)
    for sw in (None, weights):
        m = M.F1Score(average=average, threshold=0.5)
        m.update_state(y_true, y_pred, sample_weight=sw)
        expected = skm.f1_score(y_true, y_pred > 0.5, average=average, sample_weight=sw)
        np.testing.assert_allclose(m.result(), expected, rtol=1e-5)
        m = M.FBetaScore(average=average, beta=0.5, threshold=0.5)
        m.update_state(y_true, y_pred, sample_weight=sw)
        expected = skm.fbeta_score(y_true, y_pred > 0.5, beta=0.5, average=average,
                                   sample_weight=sw)
        np.testing.assert_allclose(m.result(), expected, rtol=1e-5)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
def test_fscore_without_threshold_takes_the_argmax(average):
    labels = RNG.integers(0, 3, 600)
    y_pred = RNG.random((600, 3)) + 0.4 * np.eye(3)[labels]
    m = M.F1Score(average=average)
    m.update_state(np.eye(3)[labels], y_pred)
    expected = skm.f1_score(labels, y_pred.argmax(axis=1), average=average)
    np.testing.assert_allclose(m.result(), expected, rtol=1e-5)
    m = M.F1Score(threshold=None)   # an all-zero row predicts nothing
    m.update_state([[1, 0]], [[0.0, 0.0]])
    np.testing.assert_array_equal(m.result(), [0.0, 0.0])


# ---- multi-label AUC and label weights ----

def test_multi_label_auc_is_the_mean_of_label_aucs():
    y_true = (RNG.random((800, 3)) < 0.5).astype(np.float32)
    y_pred = np.clip(0.3 * y_true + 0.7 * RNG.random((800, 3)), 0, 1).astype(np.float32)
    per_label = []
    for j in range(3):
        single = M.AUC()
        single.update_state(y_true[:, j], y_pred[:, j])
        per_label.append(single.result())
    m = M.AUC(multi_label=True)
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(np.mean(per_label), rel=1e-12)
    assert m.true_positives.shape == (200, 3)
    weighted = M.AUC(multi_label=True, num_labels=3, label_weights=[1.0, 0.0, 3.0])
    weighted.update_state(y_true, y_pred)
    assert weighted.result() == pytest.approx((per_label[0] + 3 * per_label[2]) / 4, rel=1e-12)
    # Not multi-label: the label weights weigh each value of the flattened data.
    flat = M.AUC(label_weights=[1.0, 0.0, 3.0])
    flat.update_state(y_true, y_pred)
    ref = M.AUC()
    ref.update_state(y_true, y_pred, sample_weight=np.tile([1.0, 0.0, 3.0], (800, 1)))
    assert flat.result() == ref.result()


# ---- streaming ----

def test_streaming_over_uneven_batches_equals_one_pass():
    y_true = (RNG.random((1000, 2)) < 0.4).astype(np.float32)
    y_pred = RNG.random((1000, 2)).astype(np.float32)
    weights = RNG.random(1000)
    makers = [lambda: M.AUC(), lambda: M.AUC(curve="PR", multi_label=True),
              lambda: M.Precision([0.2, 0.5, 0.7]), lambda: M.Recall(top_k=1),
              lambda: M.PrecisionAtRecall(0.6), lambda: M.FBetaScore("weighted", 2.0),
              lambda: M.F1Score(threshold=0.4)]
    cuts = [0, 1, 33, 64, 65, 500, 999, 1000]
    for make in makers:
        for sw in (None, weights):
            whole, parts = make(), make()
            whole.update_state(y_true, y_pred, sample_weight=sw)
            for a, b in zip(cuts[:-1], cuts[1:]):
                parts.update_state(y_true[a:b], y_pred[a:b],
                                   sample_weight=None if sw is None else sw[a:b])
            np.testing.assert_array_equal(parts.result(), whole.result())


def test_large_batches_have_the_same_bits_for_any_thread_count():
    y_true = (RNG.random(300_000) < 0.5)
    y_pred = RNG.random(300_000).astype(np.float32)
    weights = RNG.random(300_000)
    previous = minidl.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            minidl.set_num_threads(threads)
            m, precision = M.AUC(), M.Precision([0.3, 0.6])
            m.update_state(y_true, y_pred, sample_weight=weights)
            precision.update_state(y_true, y_pred)
            results.append((m.result(), m.true_positives.copy(), precision.result()))
    finally:
        minidl.set_num_threads(previous)
    for result, tp, precision in results[1:]:
        assert result == results[0][0]
        np.testing.assert_array_equal(tp, results[0][1])
        np.testing.assert_array_equal(precision, results[0][2])
    tp = ref_counts(y_true, y_pred, [-1e-7, 100 / 199, 198 / 199], weights)[0]
    np.testing.assert_allclose(results[0][1][[0, 100, 198]], tp, rtol=1e-9)
    tp, fp, _, _ = ref_counts(y_true, y_pred, [0.3, 0.6])
    np.testing.assert_array_equal(results[0][2], tp / (tp + fp))


def test_input_dtypes_and_shapes_give_the_same_counts():
    y_true, y_pred = binary_data(64)
    expected = M.Precision()(y_true, y_pred)
    for t in (y_true.astype(bool), y_true.astype(np.uint8), y_true.astype(np.int32),
              y_true.astype(np.float64), y_true.tolist()):
        for p in (y_pred, y_pred.astype(np.float64), y_pred.reshape(-1, 1), y_pred[::1].copy()):
            assert M.Precision()(t, p) == expected
    assert M.Precision()(y_true.reshape(-1, 1), y_pred) == expected
    strided = np.stack([y_pred, y_pred], axis=1)[:, 0]
    assert M.Precision()(y_true, strided) == expected
    assert M.Precision()(minidl.ops.convert_to_tensor(y_true),
                         minidl.ops.convert_to_tensor(y_pred)) == expected
    m = M.AUC()
    m.update_state(np.zeros(0), np.zeros(0, np.float32))
    assert m.result() == 0.0


# ---- configs, names, copies ----

_SAMPLES = {
    M.TruePositives: {"thresholds": [0.3, 0.6]}, M.FalsePositives: {"thresholds": 0.4},
    M.TrueNegatives: {}, M.FalseNegatives: {},
    M.Precision: {"thresholds": [0.3, 0.7], "top_k": 2, "class_id": 1},
    M.Recall: {"class_id": 0},
    M.AUC: {"num_thresholds": 50, "curve": "PR", "summation_method": "majoring",
            "multi_label": True, "num_labels": 2, "label_weights": [1.0, 2.0],
            "from_logits": True},
    M.PrecisionAtRecall: {"recall": 0.4, "num_thresholds": 10},
    M.RecallAtPrecision: {"precision": 0.4, "class_id": 1},
    M.SensitivityAtSpecificity: {"specificity": 0.7},
    M.SpecificityAtSensitivity: {"sensitivity": 0.7},
    M.F1Score: {"average": "micro", "threshold": 0.3},
    M.FBetaScore: {"average": "weighted", "beta": 0.5},
}


@pytest.mark.parametrize("cls", list(_SAMPLES), ids=lambda c: c.__name__)
def test_config_round_trip(cls):
    m = cls(**_SAMPLES[cls], name="my_metric")
    config = m.get_config()
    assert {**_SAMPLES[cls], "name": "my_metric"}.items() <= config.items()
    again = cls.from_config(config)
    assert again.get_config() == config
    restored = M.get(M.serialize(m))
    assert type(restored) is cls and restored.get_config() == config


def test_auc_config_keeps_given_thresholds():
    m = M.AUC(thresholds=[0.7, 0.2])
    config = m.get_config()
    assert config["thresholds"] == [0.2, 0.7] and config["num_thresholds"] == 4
    assert M.AUC.from_config(config).thresholds == m.thresholds
    assert "thresholds" not in M.AUC().get_config()


@pytest.mark.parametrize("name, cls", [
    ("auc", M.AUC), ("AUC", M.AUC), ("precision", M.Precision), ("recall", M.Recall),
    ("true_positives", M.TruePositives), ("false_positives", M.FalsePositives),
    ("true_negatives", M.TrueNegatives), ("false_negatives", M.FalseNegatives),
    ("f1_score", M.F1Score), ("f_beta_score", M.FBetaScore), ("FBetaScore", M.FBetaScore),
])
def test_get_by_name(name, cls):
    m = M.get(name)
    assert type(m) is cls and m.name == name


def test_default_names():
    assert [cls(0.5).name for cls in (M.PrecisionAtRecall, M.SpecificityAtSensitivity)] == \
        ["precision_at_recall", "specificity_at_sensitivity"]
    assert (M.AUC().name, M.TruePositives().name, M.F1Score().name, M.FBetaScore().name) == \
        ("auc", "true_positives", "f1_score", "fbeta_score")


def test_copies_keep_the_state():
    for m in (M.AUC(multi_label=True), M.Precision([0.3, 0.6]), M.F1Score()):
        m.update_state(np.eye(3)[[0, 1, 2, 1]], RNG.random((4, 3)))
        for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            np.testing.assert_array_equal(clone.result(), m.result())
            clone.update_state(np.eye(3)[[0]], RNG.random((1, 3)))   # a state of its own
        np.testing.assert_array_equal(copy.deepcopy(m).result(), m.result())


# ---- in a model ----

def test_compile_fit_and_evaluate_report_the_metrics():
    x = RNG.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    model = minidl.Sequential([Input((4,)), Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=[M.AUC(), "precision", M.Recall(thresholds=[0.3, 0.7]), "auc"])
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    for key in ("auc", "precision", "auc_1"):
        assert len(history.history[key]) == 2 and 0.0 <= history.history[key][-1] <= 1.0
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    predictions = model.predict(x, verbose=0)
    auc, recall = M.AUC(), M.Recall(thresholds=[0.3, 0.7])
    auc.update_state(y, predictions)
    recall.update_state(y, predictions)
    assert logs["auc"] == pytest.approx(auc.result(), abs=1e-6)
    np.testing.assert_allclose(logs["recall"], recall.result(), atol=1e-6)


# ---- bad input ----

@pytest.mark.parametrize("make, match", [
    (lambda: M.Precision(thresholds=1.5), r"thresholds=1\.5"),
    (lambda: M.TruePositives([0.2, -0.1]), r"thresholds=\[0\.2, -0\.1\]"),
    (lambda: M.AUC(thresholds=[0.5, 2.0]), r"thresholds"),
    (lambda: M.Recall(thresholds=[]), r"thresholds=\[\]"),
    (lambda: M.Precision(top_k=0), r"top_k=0"),
    (lambda: M.Recall(class_id=-1), r"class_id=-1"),
    (lambda: M.AUC(num_thresholds=1), r"num_thresholds=1"),
    (lambda: M.AUC(curve="ROCK"), r"curve='ROCK'"),
    (lambda: M.AUC(summation_method="trapezoid"), r"summation_method='trapezoid'"),
    (lambda: M.AUC(num_labels=3), r"num_labels=3"),
    (lambda: M.AUC(multi_label=True, num_labels=2, label_weights=[1.0]), r"label_weights"),
    (lambda: M.PrecisionAtRecall(1.5), r"recall=1\.5"),
    (lambda: M.SensitivityAtSpecificity(0.5, num_thresholds=0), r"num_thresholds=0"),
    (lambda: M.F1Score(average="median"), r"average='median'"),
    (lambda: M.F1Score(threshold=0.0), r"threshold=0\.0"),
    (lambda: M.FBetaScore(beta=0.0), r"beta=0\.0"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("m, y_true, y_pred, kwargs, match", [
    (M.Precision(), [0, 1, 1], [0.2, 0.3], {}, r"y_true\.shape=\(3,\), y_pred\.shape=\(2,\)"),
    (M.AUC(), np.zeros((4, 2)), np.zeros((4, 3)), {}, r"y_pred\.shape=\(4, 3\)"),
    (M.Precision(class_id=3), np.zeros((4, 3)), np.zeros((4, 3)), {}, r"class_id=3"),
    (M.Recall(class_id=0), np.zeros(4), np.zeros(4), {}, r"class_id.*\(4,\)"),
    (M.AUC(multi_label=True), np.zeros(4), np.zeros(4), {}, r"rank 2"),
    (M.AUC(multi_label=True, num_labels=2), np.zeros((4, 3)), np.zeros((4, 3)), {},
     r"2 labels"),
    (M.AUC(label_weights=[1.0, 2.0]), np.zeros((4, 3)), np.zeros((4, 3)), {},
     r"label_weights"),
    (M.AUC(), np.zeros(4), np.zeros(4), {"sample_weight": np.ones(3)},
     r"sample_weight\.shape=\(3,\)"),
    (M.F1Score(), np.zeros(4), np.zeros(4), {}, r"2D inputs.*y_pred\.shape=\(4,\)"),
    (M.F1Score(), np.zeros((4, 2)), np.zeros((4, 2)), {"sample_weight": np.ones((4, 2))},
     r"sample_weight\.shape=\(4, 2\)"),
])
def test_bad_inputs_name_the_shapes(m, y_true, y_pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        m.update_state(y_true, y_pred, **kwargs)


def test_non_numeric_inputs_are_refused():
    with pytest.raises(TypeError, match="y_pred"):
        M.AUC().update_state([0, 1], ["a", "b"])
    with pytest.raises(TypeError, match="y_true"):
        M.Precision().update_state(["a", "b"], [0.1, 0.2])


def test_f1_keeps_its_number_of_classes():
    m = M.F1Score()
    m.update_state(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="3 classes"):
        m.update_state(np.eye(4), np.eye(4))
