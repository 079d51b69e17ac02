"""Loss kernels against the numpy reference, gradient checks, Keras values and the API."""
import inspect

import numpy as np
import pytest

import minidl
from minidl import losses
from minidl._core import _losses as kernels
from minidl._ref import losses as ref
from minidl._ref.gradcheck import numeric_grad

DTYPES = [np.float32, np.float64]
KERNELS = ["mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy",
           "softmax_categorical_crossentropy", "softmax_sparse_categorical_crossentropy",
           "sigmoid_binary_crossentropy"]
EPS = losses.EPSILON


def rng(seed):
    return np.random.default_rng(seed)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kernel_inputs(name, extra, rows, n, dtype, seed=0):
    """(y_true or labels, y_pred, trailing kernel arguments) for one kernel case."""
    r = rng(seed)
    logits = (r.standard_normal((rows, n)) * 3).astype(dtype)
    probs = r.uniform(0.02, 0.98, (rows, n)).astype(dtype)
    onehot = np.eye(n, dtype=dtype)[r.integers(0, n, rows)]
    labels = r.integers(0, n, rows).astype(np.int32)
    if name in ("mean_squared_error", "mean_absolute_error", "huber"):
        return r.standard_normal((rows, n)).astype(dtype), logits, extra
    if name == "binary_crossentropy":
        return (r.random((rows, n)) < 0.5).astype(dtype), (logits if extra[0] else probs), extra
    if name == "categorical_crossentropy":
        return onehot, (logits if extra[0] else probs), extra
    if name == "sparse_categorical_crossentropy":
        return labels, (logits if extra[0] else probs), extra
    if name == "softmax_categorical_crossentropy":
        return onehot, softmax(logits.astype(np.float64)).astype(dtype), extra
    if name == "softmax_sparse_categorical_crossentropy":
        return labels, softmax(logits.astype(np.float64)).astype(dtype), extra
    return (r.random((rows, n)) < 0.5).astype(dtype), probs, extra


CASES = [
    ("mean_squared_error", ()), ("mean_absolute_error", ()), ("huber", (0.7,)),
    ("binary_crossentropy", (False, 0.0, EPS)), ("binary_crossentropy", (True, 0.2, EPS)),
    ("categorical_crossentropy", (False, 0.0, EPS)),
    ("categorical_crossentropy", (True, 0.1, EPS)),
    ("sparse_categorical_crossentropy", (False, None, EPS)),
    ("sparse_categorical_crossentropy", (True, 3, EPS)),
    ("softmax_categorical_crossentropy", (0.1, EPS)),
    ("softmax_sparse_categorical_crossentropy", (None, EPS)),
    ("sigmoid_binary_crossentropy", (0.0, EPS)),
]
CASE_IDS = [f"{n}{e}" for n, e in CASES]


def run(module, name, y, p, weights, scale, extra, with_grad=True):
    grad = np.empty_like(p) if with_grad else None
    row_loss = np.empty(p.shape[0], p.dtype)
    out = getattr(module, name)(y, p, weights, scale, grad, row_loss, *extra)
    total, bad = out if isinstance(out, tuple) else (out, -1)
    return total, bad, grad, row_loss


def test_reference_mirrors_kernel_signatures():
    for name in KERNELS:
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,extra", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("rows,n", [(1, 1), (7, 5), (33, 3), (2, 17)])
def test_kernels_match_reference(name, extra, rows, n, dtype):
    y, p, extra = kernel_inputs(name, extra, rows, n, dtype, seed=rows * n)
    weights = rng(1).uniform(0.5, 2.0, rows).astype(dtype)
    for w in (None, weights):
        total, bad, grad, row_loss = run(kernels, name, y, p, w, 0.25, extra)
        rtotal, rbad, rgrad, rrow = run(ref, name, y, p, w, 0.25, extra)
        rtol = 2e-6 if dtype == np.float32 else 1e-12
        assert bad == rbad == -1
        assert total == pytest.approx(rtotal, rel=rtol, abs=rtol)
        np.testing.assert_allclose(row_loss, rrow, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(grad, rgrad, rtol=2 * rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,extra", [c for c in CASES if "crossentropy" in c[0]],
                         ids=[i for i in CASE_IDS if "crossentropy" in i])
def test_clipped_probabilities_match_reference(name, extra, dtype):
    y, p, extra = kernel_inputs(name, extra, 6, 4, dtype, seed=3)
    if not (name.startswith("softmax") or extra[:1] == (True,)):
        p[0, :] = [0.0, 1.0, 0.0, 0.0]
        p[1, :] = [1e-9, 0.5, 0.5, 1.0]
    total, _, grad, row_loss = run(kernels, name, y, p, None, 1.0, extra)
    rtotal, _, rgrad, rrow = run(ref, name, y, p, None, 1.0, extra)
    assert np.isfinite(total)
    assert total == pytest.approx(rtotal, rel=1e-5)
    np.testing.assert_allclose(row_loss, rrow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, rgrad, rtol=1e-5, atol=1e-5)


@pytest.fixture
def threads():
    before = minidl.get_num_threads()
    yield
    minidl.set_num_threads(before)


@pytest.mark.parametrize("name,extra", CASES, ids=CASE_IDS)
def test_thread_count_does_not_change_bits(name, extra, threads):
    y, p, extra = kernel_inputs(name, extra, 4001, 11, np.float32, seed=5)
    assert p.size >= kernels.PARALLEL_MIN
    weights = rng(6).random(4001).astype(np.float32)
    results = []
    for n in (1, 2):
        minidl.set_num_threads(n)
        results.append(run(kernels, name, y, p, weights, 1 / 4001, extra))
    (t1, b1, g1, r1), (t2, b2, g2, r2) = results
    assert t1 == t2 and b1 == b2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(r1, r2)


def test_bad_labels_are_flagged_not_read(threads):
    p = np.full((5, 3), 1 / 3)
    for labels in (np.array([0, 1, 3, 2, -1], np.int64), np.array([0, 1, 3, 2, -1], np.int32)):
        grad = np.full_like(p, 9.0)
        total, bad = kernels.sparse_categorical_crossentropy(labels, p, None, 1.0, grad, None,
                                                             False, None, EPS)
        assert bad == 2
        np.testing.assert_array_equal(grad[[2, 4]], 0.0)
        assert total == pytest.approx(3 * np.log(3))
        total, bad = kernels.softmax_sparse_categorical_crossentropy(
            labels, p, None, 1.0, np.empty_like(p), None, -1, EPS)
        assert bad == 2   # -1 is ignored, 3 is out of range


# ---- gradient checks (central differences, float64) ----



def loss_cases():
    r = rng(7)
    t = r.standard_normal((4, 3))
    binary = (r.random((4, 3)) < 0.5).astype(float)
    onehot = np.eye(3)[[0, 2, 1, 2]]
    soft = softmax(r.standard_normal((4, 3)))
    labels = np.array([2, 0, 1, 1])
    return [
        (losses.MeanSquaredError(), t, "any"),
        (losses.MeanAbsoluteError(), t, "any"),
        (losses.Huber(delta=0.8), t, "any"),
        (losses.BinaryCrossentropy(), binary, "prob"),
        (losses.BinaryCrossentropy(label_smoothing=0.2), binary, "prob"),
        (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), binary, "any"),
        (losses.CategoricalCrossentropy(), onehot, "prob"),
        (losses.CategoricalCrossentropy(), soft, "prob"),
        (losses.CategoricalCrossentropy(label_smoothing=0.3), onehot, "prob"),
        (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), soft, "any"),
        (losses.SparseCategoricalCrossentropy(), labels, "prob"),
        (losses.SparseCategoricalCrossentropy(from_logits=True), labels, "any"),
        (losses.SparseCategoricalCrossentropy(ignore_class=1), labels, "prob"),
        (losses.MeanSquaredError(reduction="sum"), t, "any"),
        (losses.CategoricalCrossentropy(reduction="mean_with_sample_weight"), onehot, "prob"),
        (losses.BinaryCrossentropy(reduction=None), binary, "prob"),
    ]


@pytest.mark.parametrize("loss,y_true,kind", loss_cases(), ids=lambda v: repr(v)[:60])
@pytest.mark.parametrize("weighted", [False, True])
def test_forward_backward_gradcheck(loss, y_true, kind, weighted):
    r = rng(8)
    y_pred = r.uniform(0.1, 0.9, (4, 3)) if kind == "prob" else r.standard_normal((4, 3))
    sw = r.uniform(0.5, 2.0, 4) if weighted else None

    def value():
        v = loss(y_true, y_pred, sample_weight=sw)
        return float(np.sum(v))

    grad = np.empty_like(y_pred)
    reported = loss.forward_backward(y_true, y_pred, grad, sample_weight=sw)
    assert reported == pytest.approx(value(), rel=1e-12)
    np.testing.assert_allclose(grad, numeric_grad(value, y_pred), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss,y_true", [
    (losses.CategoricalCrossentropy(), np.eye(4)[[0, 3, 1]]),
    (losses.CategoricalCrossentropy(label_smoothing=0.2), np.eye(4)[[0, 3, 1]]),
    (losses.SparseCategoricalCrossentropy(), np.array([[2], [0], [3]])),
    (losses.SparseCategoricalCrossentropy(ignore_class=0), np.array([2, 0, 3])),
    (losses.CategoricalCrossentropy(reduction="sum"), np.eye(4)[[2, 2, 1]]),
], ids=repr)
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_fusion_gradcheck_wrt_logits(loss, y_true, weighted):
    assert loss.fused_with == "softmax"
    logits = rng(9).standard_normal((3, 4))
    sw = np.array([0.5, 2.0, 1.5]) if weighted else None

    def value():
        return float(loss(y_true, softmax(logits), sample_weight=sw))

    dlogits = np.empty_like(logits)
    reported = loss.softmax_forward_backward(y_true, softmax(logits), dlogits, sample_weight=sw)
    assert reported == pytest.approx(value(), rel=1e-12)
    np.testing.assert_allclose(dlogits, numeric_grad(value, logits), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_sigmoid_fusion_gradcheck_wrt_logits(smoothing, weighted):
    loss = losses.BinaryCrossentropy(label_smoothing=smoothing)
    assert loss.fused_with == "sigmoid"
    logits, y_true = rng(10).standard_normal((5, 2)), (rng(11).random((5, 2)) < 0.5) * 1.0
    sw = rng(12).uniform(0.5, 2, 5) if weighted else None

    def value():
        return float(loss(y_true, 1 / (1 + np.exp(-logits)), sample_weight=sw))

    dlogits = np.empty_like(logits)
    reported = loss.sigmoid_forward_backward(y_true, 1 / (1 + np.exp(-logits)), dlogits,
                                             sample_weight=sw)
    assert reported == pytest.approx(value(), rel=1e-12)
    np.testing.assert_allclose(dlogits, numeric_grad(value, logits), rtol=1e-6, atol=1e-8)


def test_fused_sparse_gradient_is_probs_minus_onehot_over_batch():
    probs = softmax(rng(13).standard_normal((4, 3))).astype(np.float32)
    labels = np.array([0, 2, 1, 1], np.int32)
    dlogits = np.empty_like(probs)
    losses.SparseCategoricalCrossentropy().softmax_forward_backward(labels, probs, dlogits)
    np.testing.assert_allclose(dlogits, (probs - np.eye(3)[labels]) / 4, rtol=1e-6)


# ---- Keras documented values ----

def test_keras_documented_values():
    y_true, y_pred = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    cce = losses.CategoricalCrossentropy()
    assert float(cce(y_true, y_pred)) == pytest.approx(1.177, abs=1e-3)
    assert float(cce(y_true, y_pred, sample_weight=np.array([0.3, 0.7]))) == \
        pytest.approx(0.814, abs=1e-3)
    cce_sum = losses.CategoricalCrossentropy(reduction="sum")
    assert float(cce_sum(y_true, y_pred)) == pytest.approx(2.354, abs=1e-3)
    np.testing.assert_allclose(losses.CategoricalCrossentropy(reduction=None)(y_true, y_pred),
                               [0.0513, 2.303], atol=1e-3)
    scce = losses.SparseCategoricalCrossentropy()
    assert float(scce([1, 2], y_pred)) == pytest.approx(1.177, abs=1e-3)
    assert float(scce([1, 2], y_pred, np.array([0.3, 0.7]))) == pytest.approx(0.814, abs=1e-3)
    bce = losses.binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    np.testing.assert_allclose(bce, [0.916, 0.714], atol=1e-3)
    assert np.mean(losses.huber([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])) == \
        pytest.approx(0.155)
    t, p = [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]
    assert float(losses.MeanSquaredError()(t, p)) == 0.5
    assert float(losses.MeanAbsoluteError()(t, p)) == 0.5


def test_reductions_and_sample_weight_shapes():
    y_true, y_pred = rng(14).random((4, 3)), rng(15).random((4, 3))
    per = np.mean((y_true - y_pred) ** 2, axis=-1)
    sw = np.array([1.0, 0.0, 2.0, 0.5])
    weighted = np.sum(per * sw)

    def mse(reduction="sum_over_batch_size"):
        return losses.MeanSquaredError(reduction=reduction)

    assert float(mse()(y_true, y_pred, sw)) == pytest.approx(weighted / 4)
    assert float(mse()(y_true, y_pred, sw[:, None])) == pytest.approx(weighted / 4)
    assert float(mse("sum")(y_true, y_pred, sw)) == pytest.approx(weighted)
    assert float(mse("mean")(y_true, y_pred)) == pytest.approx(per.mean())
    assert float(mse("mean_with_sample_weight")(y_true, y_pred, sw)) == \
        pytest.approx(weighted / sw.sum())
    np.testing.assert_allclose(mse("none")(y_true, y_pred, sw), per * sw)
    np.testing.assert_allclose(mse(None)(y_true, y_pred), per)
    assert float(mse()(y_true, y_pred, 2.0)) == pytest.approx(2 * per.mean())


def test_rank_one_and_rank_three_predictions():
    # Rank 1: one per-sample value, the mean over everything (Keras reduces axis -1).
    t, p = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    assert float(losses.MeanSquaredError()(t, p)) == pytest.approx(5 / 3)
    assert float(losses.MeanSquaredError()(t, p, sample_weight=np.array([1.0, 2.0, 3.0]))) == \
        pytest.approx(5 / 3 * 2)
    # (n,) targets against (n, 1) outputs.
    y = np.array([0.0, 1.0, 1.0])
    probs = np.array([[0.2], [0.7], [0.9]])
    expected = -np.mean(y * np.log(probs[:, 0]) + (1 - y) * np.log(1 - probs[:, 0]))
    assert float(losses.BinaryCrossentropy()(y, probs)) == pytest.approx(expected)
    # Rank 3: every leading position is a sample.
    logits = rng(16).standard_normal((2, 3, 4))
    labels = rng(17).integers(0, 4, (2, 3))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    lsm = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(lsm, labels[..., None], -1).mean()
    assert float(loss(labels, logits)) == pytest.approx(expected)
    grad = np.empty_like(logits)
    assert loss.forward_backward(labels[..., None], logits, grad) == pytest.approx(expected)
    np.testing.assert_allclose(grad, (softmax(logits) - np.eye(4)[labels]) / 6, rtol=1e-12)


def test_ignore_class_excludes_samples_from_the_mean():
    probs = softmax(rng(18).standard_normal((4, 3)))
    labels = np.array([0, 255, 2, 255])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=255)
    expected = -np.mean(np.log(probs[[0, 2], [0, 2]]))
    assert float(loss(labels, probs)) == pytest.approx(expected)
    grad = np.empty_like(probs)
    loss.forward_backward(labels, probs, grad)
    np.testing.assert_array_equal(grad[[1, 3]], 0.0)
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(
        ignore_class=255, reduction=None)(labels, probs)[[1, 3]], 0.0)
    assert float(losses.SparseCategoricalCrossentropy(ignore_class=1)([1, 1], probs[:2])) == 0.0


def test_float_and_column_labels():
    probs = softmax(rng(19).standard_normal((3, 4)))
    loss = losses.SparseCategoricalCrossentropy()
    expected = float(loss(np.array([1, 3, 0]), probs))
    assert float(loss(np.array([1.0, 3.0, 0.0]), probs)) == expected
    assert float(loss(np.array([[1], [3], [0]], np.uint8), probs)) == expected
    grad = np.empty_like(probs)
    float_column = np.array([[1.0], [3.0], [0.0]], np.float32)
    assert loss.forward_backward(float_column, probs, grad) == expected


# ---- stability ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_and_probabilities_stay_finite(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype)
    onehot = np.array([[0, 1, 0], [1, 0, 0]], dtype)
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype)
    cases = [
        (losses.CategoricalCrossentropy(from_logits=True), onehot, logits),
        (losses.SparseCategoricalCrossentropy(from_logits=True), np.array([1, 0]), logits),
        (losses.BinaryCrossentropy(from_logits=True), onehot, logits),
        (losses.CategoricalCrossentropy(), onehot, probs),
        (losses.SparseCategoricalCrossentropy(), np.array([1, 0]), probs),
        (losses.BinaryCrossentropy(), onehot, probs),
    ]
    for loss, y, p in cases:
        grad = np.empty_like(p)
        value = loss.forward_backward(y, p, grad)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), loss
        assert value == pytest.approx(float(loss(y, p)), rel=1e-6)
    # A hopeless prediction costs -log(epsilon) per sample, as in Keras.
    value = float(losses.SparseCategoricalCrossentropy()(np.array([1, 0]),
                                                         probs.astype(np.float64)))
    assert value == pytest.approx(-np.log(EPS), rel=1e-6)
    dl = np.empty_like(probs)
    value = losses.CategoricalCrossentropy().softmax_forward_backward(onehot, probs, dl)
    assert np.isfinite(value) and np.all(np.isfinite(dl))


# ---- results are Tensors; recorded under a tape ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_call_returns_a_tensor_of_the_prediction_dtype(dtype):
    y_true, y_pred = rng(20).random((3, 2)), rng(21).random((3, 2)).astype(dtype)
    value = losses.MeanSquaredError()(y_true, y_pred)
    assert isinstance(value, minidl.Tensor) and value.shape == () and value.dtype == dtype
    expected = np.mean((y_pred.astype(np.float64) - y_true) ** 2)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    per_sample = losses.MeanSquaredError(reduction=None)(y_true, y_pred)
    assert isinstance(per_sample, minidl.Tensor) and per_sample.shape == (3,)
    assert value.node is None and per_sample.node is None


@pytest.mark.parametrize("loss,y_true,kind", loss_cases(), ids=lambda v: repr(v)[:60])
def test_recorded_gradient_is_the_kernel_gradient(loss, y_true, kind):
    r = rng(22)
    y_pred = r.uniform(0.1, 0.9, (4, 3)) if kind == "prob" else r.standard_normal((4, 3))
    sw = r.uniform(0.5, 2.0, 4)
    pred = minidl.Variable(y_pred.copy())
    with minidl.GradientTape() as tape:
        value = loss(y_true, pred, sample_weight=sw)
    assert value.node is not None and value.node.op == loss.name
    grad = tape.gradient(value, pred)
    expected = np.empty_like(y_pred)
    reported = loss.forward_backward(y_true, y_pred, expected, sample_weight=sw)
    assert float(np.sum(value)) == pytest.approx(reported, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


# ---- API, config and errors ----

def test_get_names_config_round_trip():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("MAE"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("huber"), losses.Huber)
    assert isinstance(losses.get("sparse_categorical_crossentropy"),
                      losses.SparseCategoricalCrossentropy)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1,
                                                reduction="sum", name="scce")
    assert loss.get_config() == {"from_logits": True, "ignore_class": -1, "reduction": "sum",
                                 "name": "scce"}
    assert losses.get(loss) is loss
    for name in losses.LOSSES.names():
        obj = losses.get(name)
        again = losses.get(losses.serialize(obj))
        assert type(again) is type(obj) and again.get_config() == obj.get_config()
        assert set(obj.get_config()) == set(inspect.signature(type(obj)).parameters)
    assert losses.Huber(delta=2.0).get_config()["delta"] == 2.0
    assert losses.CategoricalCrossentropy(from_logits=True).fused_with is None
    assert losses.MeanSquaredError().fused_with is None


def test_defaults_follow_keras():
    sig = inspect.signature(losses.SparseCategoricalCrossentropy)
    assert sig.parameters["from_logits"].default is False
    assert sig.parameters["ignore_class"].default is None
    assert inspect.signature(losses.Huber).parameters["delta"].default == 1.0
    for cls in (losses.MeanSquaredError, losses.BinaryCrossentropy,
                losses.CategoricalCrossentropy):
        assert inspect.signature(cls).parameters["reduction"].default == "sum_over_batch_size"
    assert losses.CategoricalCrossentropy().label_smoothing == 0.0


def test_errors_are_clear():
    with pytest.raises(ValueError, match="Unknown loss 'msee'.*mean_squared_error"):
        losses.get("msee")
    scce = losses.SparseCategoricalCrossentropy()
    probs = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"label value of 4 .*\[0, 4\) for 4 classes"):
        scce([0, 4, 1], probs)
    with pytest.raises(ValueError, match=r"label value of -2 .*for 4 classes"):
        scce.forward_backward(np.array([0, 1, -2]), probs, np.empty_like(probs))
    with pytest.raises(ValueError, match=r"label value of 7 "):
        scce.softmax_forward_backward(np.array([7, 1, 2], np.int32), probs, np.empty_like(probs))
    with pytest.raises(ValueError, match="label value of nan"):
        scce.forward_backward(np.array([0.0, np.nan, 1.0]), probs, np.empty_like(probs))
    with pytest.raises(ValueError, match="whole numbers.*1.5"):
        scce([0, 1.5, 1], probs)
    with pytest.raises(ValueError, match=r"y_true must have shape \(3,\)"):
        scce([0, 1], probs)
    with pytest.raises(ValueError, match=r"same shape.*y_true.shape=\(3, 2\)"):
        losses.MeanSquaredError()(np.zeros((3, 2)), probs)
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        losses.MeanSquaredError()(np.zeros((1, 2)), [[0.0, np.nan]])
    with pytest.raises(ValueError, match="y_true contains NaN"):
        losses.BinaryCrossentropy()([[np.nan, 0.0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="grad_out must match y_pred"):
        losses.MeanSquaredError().forward_backward(probs, probs, np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        losses.MeanSquaredError().forward_backward(probs.T, probs.T, np.empty((4, 3)))
    with pytest.raises(ValueError, match="from_logits=False"):
        losses.CategoricalCrossentropy(from_logits=True).softmax_forward_backward(
            probs, probs, np.empty_like(probs))
    with pytest.raises(ValueError, match="last axis only.*axis=0"):
        losses.CategoricalCrossentropy(axis=0)(probs, probs)
    with pytest.raises(ValueError, match="reduction=.mean_over."):
        losses.MeanSquaredError(reduction="mean_over")
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="does not broadcast"):
        losses.MeanSquaredError()(probs, probs, sample_weight=np.ones(5))
