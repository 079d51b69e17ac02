"""minidl.metrics against plain-numpy references, Keras' documented examples and errors.

The references below restate the Keras 3 definitions in numpy: a per-sample value (mean over
the sample's elements or label positions), then a weighted mean over samples. Accuracy
counts are small integers, so unweighted results must match exactly; weighted and error
metrics are compared to a float64 reference to 1e-12 relative.
"""
import copy
import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import metrics as M

RNG = np.random.default_rng(20240601)


# ---- numpy references ----

def _weighted_mean(per_sample, sample_weight):
    if sample_weight is None:
        return per_sample.mean() if per_sample.size else 0.0
    w = np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(-1)
                        if np.ndim(sample_weight) else sample_weight, per_sample.shape)
    return float((per_sample * w).sum() / w.sum()) if w.sum() else 0.0


def _per_sample(values, n):
    return np.asarray(values, np.float64).reshape(n, -1).mean(axis=1)


def ref_sparse(y_true, y_pred, sample_weight=None, k=None):
    y_pred = np.asarray(y_pred, np.float64)
    classes = y_pred.shape[-1]
    labels = np.asarray(y_true).reshape(-1).astype(np.int64)
    scores = y_pred.reshape(-1, classes)
    if k is None:
        hits = np.argmax(scores, axis=1) == labels
    else:
        target = scores[np.arange(len(labels)), labels]
        hits = (scores > target[:, None]).sum(axis=1) < k
    return _weighted_mean(_per_sample(hits, y_pred.shape[0]), sample_weight)


def ref_categorical(y_true, y_pred, sample_weight=None, k=None):
    labels = np.argmax(np.asarray(y_true), axis=-1)
    return ref_sparse(labels, y_pred, sample_weight, k)


def ref_elementwise(kind, y_true, y_pred, sample_weight=None, threshold=0.5):
    t = np.asarray(y_true, np.float64).reshape(np.shape(y_pred))
    p = np.asarray(y_pred, np.float64)
    values = {"accuracy": t == p, "binary": t == (p > threshold), "mse": (t - p) ** 2,
              "mae": np.abs(t - p)}[kind]
    return _weighted_mean(_per_sample(values, p.shape[0]), sample_weight)


def _scores(shape, dtype, ties=False):
    if ties:  # few distinct values: many rows tie for the maximum or at the k-th place
        return RNG.integers(0, 3, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


# ---- Keras' documented examples ----

KERAS_EXAMPLES = [
    (M.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]], None, 0.75),
    (M.Accuracy(), [[1], [2], [3], [4]], [[0], [2], [3], [4]], [1, 1, 0, 0], 0.5),
    (M.BinaryAccuracy(), [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], None, 0.75),
    (M.BinaryAccuracy(), [[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], [1, 0, 0, 1], 0.5),
    (M.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
     None, 0.5),
    (M.CategoricalAccuracy(), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
     [0.7, 0.3], 0.3),
    (M.SparseCategoricalAccuracy(), [[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]], None, 0.5),
    (M.SparseCategoricalAccuracy(), [[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]],
     [0.7, 0.3], 0.3),
    (M.TopKCategoricalAccuracy(k=1), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8],
                                                              [0.05, 0.95, 0]], None, 0.5),
    (M.TopKCategoricalAccuracy(k=1), [[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8],
                                                              [0.05, 0.95, 0]], [0.7, 0.3], 0.3),
    (M.SparseTopKCategoricalAccuracy(k=1), [2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
     None, 0.5),
    (M.SparseTopKCategoricalAccuracy(k=1), [2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]],
     [0.7, 0.3], 0.3),
    (M.MeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], None, 0.25),
    (M.MeanSquaredError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], 0.5),
    (M.MeanAbsoluteError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], None, 0.25),
    (M.MeanAbsoluteError(), [[0, 1], [0, 0]], [[1, 1], [0, 0]], [1, 0], 0.5),
]


@pytest.mark.parametrize("metric, y_true, y_pred, sample_weight, expected", KERAS_EXAMPLES,
                         ids=lambda v: type(v).__name__ if isinstance(v, M.Metric) else "")
def test_keras_documented_examples(metric, y_true, y_pred, sample_weight, expected):
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    assert metric.result() == pytest.approx(expected, rel=1e-12)
    assert type(metric.result()) is float


def test_mean_documented_examples():
    m = M.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0


# ---- against numpy, over dtypes, shapes, ties and weights ----

PRED_DTYPES = [np.float32, np.float64]
LABEL_DTYPES = [np.uint8, np.int32, np.int64, np.float32, np.float64, np.int16, np.uint32]
WEIGHTS = ["none", "scalar", "vector", "column", "float32"]


def _weights(kind, n):
    return {"none": None, "scalar": 2.5, "vector": RNG.random(n),
            "column": RNG.random((n, 1)), "float32": RNG.random(n).astype(np.float32)}[kind]


@pytest.mark.parametrize("pred_dtype", PRED_DTYPES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
@pytest.mark.parametrize("label_shape", ["flat", "column"])
@pytest.mark.parametrize("ties", [False, True])
def test_sparse_categorical_accuracy_matches_numpy(pred_dtype, label_dtype, label_shape, ties):
    y_pred = _scores((97, 10), pred_dtype, ties)
    y_true = RNG.integers(0, 10, 97).astype(label_dtype)
    if label_shape == "column":
        y_true = y_true[:, None]
    m = M.SparseCategoricalAccuracy()
    m.update_state(y_true, y_pred)
    assert m.result() == ref_sparse(y_true, y_pred)


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("cls, ref", [
    (M.SparseCategoricalAccuracy, lambda t, p, w: ref_sparse(t, p, w)),
    (M.SparseTopKCategoricalAccuracy, lambda t, p, w: ref_sparse(t, p, w, k=5)),
])
def test_sparse_metrics_with_sample_weight(weights, cls, ref):
    y_pred = _scores((64, 12), np.float32)
    y_true = RNG.integers(0, 12, 64)
    w = _weights(weights, 64)
    m = cls()
    m.update_state(y_true, y_pred, sample_weight=w)
    assert m.result() == pytest.approx(ref(y_true, y_pred, w), rel=1e-12)


@pytest.mark.parametrize("pred_dtype", PRED_DTYPES)
@pytest.mark.parametrize("true_dtype", [np.float32, np.int64, np.uint8])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("weights", ["none", "vector"])
def test_categorical_accuracy_matches_numpy(pred_dtype, true_dtype, ties, weights):
    y_pred = _scores((80, 7), pred_dtype, ties)
    y_true = np.eye(7, dtype=true_dtype)[RNG.integers(0, 7, 80)]
    w = _weights(weights, 80)
    m = M.CategoricalAccuracy()
    m.update_state(y_true, y_pred, sample_weight=w)
    assert m.result() == pytest.approx(ref_categorical(y_true, y_pred, w), rel=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9, 10, 12])
@pytest.mark.parametrize("ties", [False, True])
def test_top_k_matches_numpy_including_ties_at_the_boundary(k, ties):
    y_pred = _scores((150, 10), np.float32, ties)
    labels = RNG.integers(0, 10, 150)
    sparse = M.SparseTopKCategoricalAccuracy(k=k)
    sparse.update_state(labels, y_pred)
    dense = M.TopKCategoricalAccuracy(k=k)
    dense.update_state(np.eye(10)[labels], y_pred)
    assert sparse.result() == ref_sparse(labels, y_pred, k=k)
    assert dense.result() == sparse.result()
    if k >= 10:
        assert sparse.result() == 1.0


def test_ties_follow_numpy_argmax_and_keras_in_top_k():
    y_pred = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]], np.float32)
    # argmax takes the first maximum: row 0 predicts 0, row 1 predicts 1.
    acc = M.SparseCategoricalAccuracy()
    acc.update_state([0, 2], y_pred)
    assert acc.result() == 0.5
    # in_top_k counts a target tied with the k-th score as a hit.
    top1 = M.SparseTopKCategoricalAccuracy(k=1)
    top1.update_state([1, 2], y_pred)
    assert top1.result() == 1.0


def test_nan_predictions_follow_numpy_argmax():
    y_pred = np.array([[0.1, np.nan, 0.9], [np.nan, np.nan, 1.0], [0.3, 0.2, 0.1]])
    labels = np.argmax(y_pred, axis=1)  # [1, 0, 0]
    m = M.SparseCategoricalAccuracy()
    m.update_state(labels, y_pred)
    assert m.result() == 1.0
    top = M.SparseTopKCategoricalAccuracy(k=3)
    top.update_state([1, 0, 0], y_pred)
    assert top.result() == pytest.approx(1 / 3)  # a NaN target score is never in the top k


@pytest.mark.parametrize("kind, cls", [("accuracy", M.Accuracy), ("binary", M.BinaryAccuracy),
                                       ("mse", M.MeanSquaredError),
                                       ("mae", M.MeanAbsoluteError)])
@pytest.mark.parametrize("shapes", [((50,), (50,)), ((50, 1), (50,)), ((50,), (50, 1)),
                                    ((50, 4), (50, 4)), ((50, 3, 2), (50, 3, 2))])
@pytest.mark.parametrize("pred_dtype", PRED_DTYPES)
@pytest.mark.parametrize("weights", ["none", "vector", "scalar"])
def test_elementwise_metrics_match_numpy(kind, cls, shapes, pred_dtype, weights):
    true_shape, pred_shape = shapes
    if kind in ("accuracy", "binary"):
        y_true = RNG.integers(0, 2, true_shape)
        y_pred = RNG.integers(0, 2, pred_shape).astype(pred_dtype) if kind == "accuracy" \
            else RNG.random(pred_shape).astype(pred_dtype)
    else:
        y_true = RNG.standard_normal(true_shape)
        y_pred = RNG.standard_normal(pred_shape).astype(pred_dtype)
    w = _weights(weights, 50)
    m = cls()
    m.update_state(y_true, y_pred, sample_weight=w)
    expected = ref_elementwise(kind, y_true, np.asarray(y_pred).reshape(
        y_true.shape if y_true.ndim > len(pred_shape) else pred_shape), w)
    assert m.result() == pytest.approx(expected, rel=1e-12)


def test_binary_accuracy_threshold_and_label_kinds():
    y_pred = np.array([0.2, 0.6, 0.75, 0.9], np.float32)
    m = M.BinaryAccuracy(threshold=0.7)
    m.update_state(np.array([False, False, True, True]), y_pred)
    assert m.result() == 1.0
    m.reset_state()
    m.update_state([0.0, 0.0, 1.0, 0.5], y_pred)  # soft labels never match, as in Keras
    assert m.result() == 0.75


def test_sequence_outputs_average_over_time_steps_per_sample():
    # (batch, T, classes): each sample's value is its mean over T, then samples are weighted.
    y_pred = _scores((20, 6, 5), np.float32)
    labels = RNG.integers(0, 5, (20, 6))
    w = RNG.random(20)
    m = M.SparseCategoricalAccuracy()
    m.update_state(labels, y_pred, sample_weight=w)
    assert m.result() == pytest.approx(ref_sparse(labels, y_pred, w), rel=1e-12)
    c = M.CategoricalAccuracy()
    c.update_state(np.eye(5)[labels], y_pred, sample_weight=w)
    assert c.result() == pytest.approx(m.result(), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), classes=st.integers(1, 9), batches=st.integers(1, 4),
       k=st.integers(1, 10), seed=st.integers(0, 2 ** 32 - 1), weighted=st.booleans())
def test_accumulating_batches_equals_the_reference_over_all_of_them(n, classes, batches, k,
                                                                    seed, weighted):
    rng = np.random.default_rng(seed)
    y_pred = rng.integers(0, 4, (n * batches, classes)).astype(np.float32)  # many ties
    labels = rng.integers(0, classes, n * batches)
    w = rng.random(n * batches) if weighted else None
    acc, top = M.SparseCategoricalAccuracy(), M.SparseTopKCategoricalAccuracy(k=k)
    for b in range(batches):
        part = slice(b * n, (b + 1) * n)
        bw = None if w is None else w[part]
        acc.update_state(labels[part], y_pred[part], sample_weight=bw)
        top.update_state(labels[part], y_pred[part], sample_weight=bw)
    assert acc.result() == pytest.approx(ref_sparse(labels, y_pred, w), rel=1e-12)
    assert top.result() == pytest.approx(ref_sparse(labels, y_pred, w, k=k), rel=1e-12)


# ---- inputs that need converting take the same path ----

def test_non_contiguous_swapped_and_odd_dtype_inputs_give_the_same_result():
    base = _scores((40, 6), np.float64)
    labels = RNG.integers(0, 6, 40)
    expected = ref_sparse(labels, base)
    variants = [
        (labels, np.asfortranarray(base)),
        (labels.astype(np.int16), base.astype(np.float16).astype(np.float64)),
        (labels.astype(">i8"), base.astype(">f8")),
        (np.repeat(labels, 2)[::2], np.repeat(base, 2, axis=0)[::2]),
        (labels.tolist(), base.tolist()),
        (labels.astype(np.uint64), base),
    ]
    for y_true, y_pred in variants:
        m = M.SparseCategoricalAccuracy()
        m.update_state(y_true, y_pred)
        assert m.result() == expected


def test_integer_predictions_work_for_accuracy():
    m = M.Accuracy()
    m.update_state(np.array([1, 2, 3]), np.array([1, 2, 4]))
    assert m.result() == pytest.approx(2 / 3)


def test_empty_batch_changes_nothing_and_empty_metric_is_zero():
    m = M.SparseCategoricalAccuracy()
    assert m.result() == 0.0
    m.update_state(np.zeros(0, np.int64), np.zeros((0, 10), np.float32))
    assert m.result() == 0.0
    m.update_state([1], [[0.0, 1.0]])
    m.update_state(np.zeros(0, np.int64), np.zeros((0, 2), np.float32))
    assert m.result() == 1.0


def test_zero_weights_mask_samples():
    m = M.MeanSquaredError()
    m.update_state([[0.0], [10.0]], [[1.0], [0.0]], sample_weight=[1.0, 0.0])
    assert m.result() == 1.0
    m.reset_state()
    m.update_state([[0.0]], [[1.0]], sample_weight=[0.0])
    assert m.result() == 0.0  # no weight at all: 0, as Keras' divide_no_nan


# ---- threads: same bits for 1 and 2 threads on inputs large enough to go parallel ----

@pytest.fixture
def restore_threads():
    before = minidl.get_num_threads()
    yield
    minidl.set_num_threads(before)


@pytest.mark.parametrize("cls, make_true", [
    (M.SparseCategoricalAccuracy, lambda n: RNG.integers(0, 10, n)),
    (M.SparseTopKCategoricalAccuracy, lambda n: RNG.integers(0, 10, n).astype(np.float32)),
    (M.CategoricalAccuracy, lambda n: np.eye(10, dtype=np.float32)[RNG.integers(0, 10, n)]),
    (M.MeanSquaredError, lambda n: RNG.standard_normal((n, 10))),
    (M.MeanAbsoluteError, lambda n: RNG.standard_normal((n, 10)).astype(np.float32)),
    (M.BinaryAccuracy, lambda n: RNG.integers(0, 2, (n, 10)).astype(np.float32)),
])
def test_thread_count_does_not_change_the_bits(restore_threads, cls, make_true):
    n = 60001  # 600k scores: many chunks, above the parallel threshold, ragged last chunk
    y_pred = RNG.standard_normal((n, 10)).astype(np.float32)
    y_true = make_true(n)
    w = RNG.random(n)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        m = cls()
        m.update_state(y_true, y_pred, sample_weight=w)
        results.append(m.result())
    assert results[0] == results[1]
    if cls is M.MeanSquaredError:
        assert results[0] == pytest.approx(ref_elementwise("mse", y_true, y_pred, w), rel=1e-12)
    if cls is M.SparseCategoricalAccuracy:
        assert results[0] == pytest.approx(ref_sparse(y_true, y_pred, w), rel=1e-12)


def test_bad_label_in_a_late_chunk_is_reported_with_two_threads(restore_threads):
    minidl.set_num_threads(2)
    labels = RNG.integers(0, 10, 50000)
    labels[41234] = 10
    with pytest.raises(ValueError, match=r"label=10 at y_true index \(41234,\)"):
        M.SparseCategoricalAccuracy().update_state(labels, np.zeros((50000, 10), np.float32))


# ---- errors ----

PRED = np.zeros((4, 3), np.float32)


@pytest.mark.parametrize("cls, y_true, y_pred, message", [
    (M.SparseCategoricalAccuracy, [0, 1, 2], PRED,
     r"y_true\.shape=\(3,\), y_pred\.shape=\(4, 3\)"),
    (M.SparseCategoricalAccuracy, np.zeros((4, 3)), PRED, r"y_true\.shape=\(4, 3\)"),
    (M.SparseCategoricalAccuracy, [0, 1, 2, 0], np.zeros(4), r"y_pred\.shape=\(4,\)"),
    (M.SparseTopKCategoricalAccuracy, [[0, 1], [2, 0]], PRED, r"y_true\.shape=\(2, 2\)"),
    (M.CategoricalAccuracy, [0, 1, 2, 0], PRED, r"for integer labels use the sparse"),
    (M.TopKCategoricalAccuracy, np.zeros((4, 2)), PRED, r"y_true\.shape=\(4, 2\)"),
    (M.Accuracy, np.zeros((4, 2)), PRED, r"y_true\.shape=\(4, 2\), y_pred\.shape=\(4, 3\)"),
    (M.MeanSquaredError, np.zeros(5), np.zeros(4), r"y_true\.shape=\(5,\)"),
    (M.BinaryAccuracy, np.zeros((4, 1, 1)), np.zeros(4), r"y_true\.shape=\(4, 1, 1\)"),
    (M.MeanAbsoluteError, 1.0, np.zeros(1), r"y_true\.shape=\(\)"),
    # lower-rank labels than y_pred.shape[:-1]: ranks are compared before any dimension
    (M.SparseCategoricalAccuracy, 1, PRED, r"y_true\.shape=\(\)"),
    (M.SparseTopKCategoricalAccuracy, [0, 1, 2, 0], np.zeros((4, 2, 3)),
     r"y_true\.shape=\(4,\), y_pred\.shape=\(4, 2, 3\)"),
])
def test_shape_mismatch_is_a_value_error_naming_both_shapes(cls, y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        cls().update_state(y_true, y_pred)


@pytest.mark.parametrize("cls", [M.SparseCategoricalAccuracy, M.SparseTopKCategoricalAccuracy])
@pytest.mark.parametrize("labels, shown", [
    (np.array([0, 1, 3, 0]), r"label=3 at y_true index \(2,\)"),
    (np.array([0, -1, 2, 0], np.int32), r"label=-1 at y_true index \(1,\)"),
    (np.array([[0], [1], [2], [200]], np.uint8), r"label=200 at y_true index \(3, 0\)"),
    (np.array([0.0, 1.5, 2.0, 0.0]), r"label=1\.5 at y_true index \(1,\)"),
    (np.array([0.0, 1.0, np.nan, 0.0], np.float32), r"label=nan at y_true index \(2,\)"),
    (np.array([0, 1, 2, 2 ** 40]), r"label=1099511627776"),
])
def test_invalid_labels_are_value_errors_naming_the_value(cls, labels, shown):
    with pytest.raises(ValueError, match=r"integers in \[0, 3\).*" + shown):
        cls().update_state(labels, PRED)


def test_invalid_label_leaves_the_state_unchanged():
    m = M.SparseCategoricalAccuracy()
    m.update_state([1], [[0.0, 1.0, 0.0]])
    with pytest.raises(ValueError):
        m.update_state([5], [[0.0, 1.0, 0.0]])
    assert m.result() == 1.0


@pytest.mark.parametrize("sample_weight, message", [
    (np.ones(3), r"shape \(4,\) or \(4, 1\)\. Received: sample_weight\.shape=\(3,\)"),
    (np.ones((4, 3)), r"sample_weight\.shape=\(4, 3\)"),
    (np.ones((1, 4)), r"sample_weight\.shape=\(1, 4\)"),
])
def test_sample_weight_must_have_one_weight_per_sample(sample_weight, message):
    with pytest.raises(ValueError, match=message):
        M.SparseCategoricalAccuracy().update_state([0, 1, 2, 0], PRED, sample_weight)
    with pytest.raises(ValueError, match=r"sample_weight\.shape="):
        M.Mean().update_state(np.ones((4, 2)), sample_weight=sample_weight)


def test_non_numeric_inputs_are_type_errors():
    with pytest.raises(TypeError, match=r"y_true with dtype <U1"):
        M.SparseCategoricalAccuracy().update_state(["a"], [[1.0]])
    with pytest.raises(TypeError, match=r"y_pred with dtype object"):
        M.Accuracy().update_state([1], np.array([None]))
    with pytest.raises(TypeError, match=r"sample_weight with dtype <U1"):
        M.Accuracy().update_state([1], [1.0], sample_weight=["x"])


@pytest.mark.parametrize("make, message", [
    (lambda: M.TopKCategoricalAccuracy(k=0), r"Received: k=0"),
    (lambda: M.SparseTopKCategoricalAccuracy(k=2.5), r"Received: k=2\.5"),
    (lambda: M.BinaryAccuracy(threshold=1.0), r"Received: threshold=1\.0"),
    (lambda: M.BinaryAccuracy(threshold=0), r"Received: threshold=0"),
    (lambda: M.Mean(name=""), r"Received: name=''"),
])
def test_bad_constructor_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---- Mean ----

def test_mean_of_scalars_weighted_scalars_and_arrays():
    m = M.Mean(name="loss")
    m.update_state(2.0)
    m.update_state(np.float32(4.0))
    assert m.result() == 3.0
    m.reset_state()
    m.update_state(1.0, sample_weight=32)  # fit weights each batch loss by its size
    m.update_state(4.0, sample_weight=16)
    assert m.result() == pytest.approx((32 + 64) / 48)
    m.reset_state()
    values = RNG.random((10, 3))
    w = RNG.random(10)
    m.update_state(values, sample_weight=w)
    assert m.result() == pytest.approx(_weighted_mean(values.mean(axis=1), w), rel=1e-12)
    m.reset_state()
    m.update_state(np.array(5.0), sample_weight=np.ones(4))  # one value for all weights
    m.update_state(np.array([1.0, 3.0]), sample_weight=0.5)  # one weight for all values
    assert m.result() == pytest.approx((20 + 2) / (4 + 1))


# ---- names, get, configs ----

DEFAULT_NAMES = {
    M.Mean: "mean", M.Accuracy: "accuracy", M.BinaryAccuracy: "binary_accuracy",
    M.CategoricalAccuracy: "categorical_accuracy",
    M.SparseCategoricalAccuracy: "sparse_categorical_accuracy",
    M.TopKCategoricalAccuracy: "top_k_categorical_accuracy",
    M.SparseTopKCategoricalAccuracy: "sparse_top_k_categorical_accuracy",
    M.MeanSquaredError: "mean_squared_error", M.MeanAbsoluteError: "mean_absolute_error",
}


@pytest.mark.parametrize("cls", list(DEFAULT_NAMES), ids=lambda c: c.__name__)
def test_default_names_and_lookup_by_them(cls):
    assert cls().name == DEFAULT_NAMES[cls]
    if cls is not M.Accuracy:  # 'accuracy' itself resolves by shapes; see below
        got = M.get(DEFAULT_NAMES[cls])
        assert type(got) is cls and got.name == DEFAULT_NAMES[cls]
    assert type(M.get(cls.__name__)) is cls


@pytest.mark.parametrize("alias, cls", [("mse", M.MeanSquaredError), ("MSE", M.MeanSquaredError),
                                        ("mae", M.MeanAbsoluteError),
                                        ("top_k_categorical_accuracy",
                                         M.TopKCategoricalAccuracy)])
def test_aliases_keep_the_name_they_were_asked_by(alias, cls):
    m = M.get(alias)
    assert type(m) is cls and m.name == alias  # Keras compile logs 'mse', not the class name


@pytest.mark.parametrize("kwargs, expected", [
    # Keras 3 shape rule
    (dict(y_true_ndim=1, output_shape=(None, 10)), M.SparseCategoricalAccuracy),
    (dict(y_true_shape=(32, 1), output_shape=(None, 10)), M.SparseCategoricalAccuracy),
    (dict(y_true_shape=(32, 10), output_shape=(None, 10)), M.CategoricalAccuracy),
    (dict(y_true_ndim=2, output_shape=(None, 1)), M.BinaryAccuracy),
    (dict(y_true_ndim=1, output_shape=(None, 1)), M.BinaryAccuracy),
    (dict(loss="sparse_categorical_crossentropy", output_shape=(None, 1)), M.BinaryAccuracy),
    (dict(loss="binary_crossentropy", y_true_shape=(8, 5), output_shape=(8, 5)),
     M.CategoricalAccuracy),  # Keras 3: multi-label outputs get categorical accuracy
    # shapes not decisive: the loss decides
    (dict(loss="sparse_categorical_crossentropy", y_true_ndim=2, output_shape=(None, 10)),
     M.SparseCategoricalAccuracy),
    (dict(loss="categorical_crossentropy", y_true_ndim=2, output_shape=(None, 10)),
     M.CategoricalAccuracy),
    (dict(loss="sparse_categorical_crossentropy"), M.SparseCategoricalAccuracy),
    (dict(loss="SparseCategoricalCrossentropy"), M.SparseCategoricalAccuracy),
    (dict(loss="binary_crossentropy"), M.BinaryAccuracy),
    (dict(loss="categorical_crossentropy"), M.CategoricalAccuracy),
    (dict(loss="mse"), M.CategoricalAccuracy),
    (dict(), M.Accuracy),
])
@pytest.mark.parametrize("identifier", ["accuracy", "acc", "Accuracy"])
def test_accuracy_resolution(identifier, kwargs, expected):
    m = M.get(identifier, **kwargs)
    assert type(m) is expected
    assert m.name == identifier


def test_accuracy_resolution_reads_loss_objects():
    class SparseCategoricalCrossentropy:  # stands for a loss class of minidl.losses
        name = "sparse_categorical_crossentropy"

    class Custom:
        name = "my_loss"

    def binary_crossentropy(y_true, y_pred):
        return 0.0

    assert type(M.get("accuracy", loss=SparseCategoricalCrossentropy())) is \
        M.SparseCategoricalAccuracy
    assert type(M.get("accuracy", loss=SparseCategoricalCrossentropy)) is \
        M.SparseCategoricalAccuracy
    assert type(M.get("accuracy", loss=binary_crossentropy)) is M.BinaryAccuracy
    assert type(M.get("accuracy", loss=Custom())) is M.CategoricalAccuracy


CONFIGURED = [M.Mean(name="loss"), M.Accuracy(name="acc"), M.BinaryAccuracy(threshold=0.3),
              M.CategoricalAccuracy(), M.SparseCategoricalAccuracy(name="accuracy"),
              M.TopKCategoricalAccuracy(k=3, name="top3"), M.SparseTopKCategoricalAccuracy(k=2),
              M.MeanSquaredError(name="mse"), M.MeanAbsoluteError()]


@pytest.mark.parametrize("metric", CONFIGURED, ids=lambda m: type(m).__name__)
def test_config_is_the_constructor_arguments_and_round_trips(metric):
    config = metric.get_config()
    assert json.loads(json.dumps(config)) == config
    assert type(metric)(**config).get_config() == config
    rebuilt = M.get(json.loads(json.dumps(M.serialize(metric))))
    assert type(rebuilt) is type(metric) and rebuilt.get_config() == config


def test_config_contents():
    assert M.BinaryAccuracy(threshold=0.3).get_config() == {"name": "binary_accuracy",
                                                            "threshold": 0.3}
    assert M.TopKCategoricalAccuracy(k=3).get_config() == {"k": 3,
                                                           "name": "top_k_categorical_accuracy"}
    assert M.Mean().get_config() == {"name": "mean"}


def test_get_instances_classes_none_and_errors():
    m = M.MeanSquaredError()
    assert M.get(m) is m
    assert M.get(None) is None
    assert type(M.get(M.MeanAbsoluteError)) is M.MeanAbsoluteError
    with pytest.raises(ValueError, match=r"Unknown metric 'no_such_metric'.*mean_squared_error"):
        M.get("no_such_metric")
    with pytest.raises(ValueError, match=r"identifier=3"):
        M.get(3)


def test_call_updates_and_returns_result_and_state_survives_copies():
    m = M.SparseCategoricalAccuracy()
    assert m([1, 0], [[0.0, 1.0], [0.0, 1.0]]) == 0.5
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.result() == 0.5
        clone.update_state([1], [[0.0, 1.0]])
        assert clone.result() == pytest.approx(2 / 3)
    assert m.result() == 0.5  # copies do not share state
    assert "result=0.5" in repr(m)
