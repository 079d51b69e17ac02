"""The losses added after the first six: KL divergence, Poisson, log-cosh, the hinges, cosine
similarity, MSLE, MAPE and the focal crossentropies. Kernels against the numpy reference of
Keras' formulas, central-difference gradients, the ops function forms under GradientTape,
Keras' documented values, training, configs and argument errors."""
import inspect
import pickle

import numpy as np
import pytest

import minidl
from minidl import losses, ops
from minidl._core import _losses as kernels
from minidl._ref import losses as ref
from minidl._ref.gradcheck import numeric_grad
from minidl.autodiff import GradientTape, Tensor, Variable
from minidl.layers import Dense
from minidl.models import Sequential
from op_checks import check_loss_function_matches_kernel

DTYPES = [np.float32, np.float64]
EPS = losses.EPSILON
KERNELS = ["kl_divergence", "poisson", "log_cosh", "hinge", "squared_hinge",
           "categorical_hinge", "cosine_similarity", "mean_squared_logarithmic_error",
           "mean_absolute_percentage_error", "binary_focal_crossentropy",
           "categorical_focal_crossentropy"]

# (kernel, trailing kernel arguments, kind of data)
CASES = [
    ("kl_divergence", (EPS,), "dist"),
    ("poisson", (EPS,), "rate"),
    ("log_cosh", (), "real"),
    ("hinge", (), "binary"),
    ("hinge", (), "signed"),
    ("squared_hinge", (), "binary"),
    ("squared_hinge", (), "real"),
    ("categorical_hinge", (), "onehot"),
    ("cosine_similarity", (EPS,), "real"),
    ("mean_squared_logarithmic_error", (EPS,), "positive"),
    ("mean_absolute_percentage_error", (EPS,), "real"),
    ("binary_focal_crossentropy", (False, 0.25, 2.0, False, 0.0, EPS), "binary_prob"),
    ("binary_focal_crossentropy", (True, 0.3, 1.5, False, 0.1, EPS), "binary_prob"),
    ("binary_focal_crossentropy", (True, 0.6, 3.0, True, 0.2, EPS), "binary_logit"),
    ("binary_focal_crossentropy", (False, 0.25, 0.0, True, 0.0, EPS), "binary_logit"),
    ("categorical_focal_crossentropy", (0.25, 2.0, False, 0.0, EPS), "onehot_prob"),
    ("categorical_focal_crossentropy", (0.5, 0.5, False, 0.1, EPS), "onehot_prob"),
    ("categorical_focal_crossentropy", (0.8, 2.5, True, 0.2, EPS), "onehot_logit"),
]
CASE_IDS = [f"{n}-{kind}{extra[:-1] if extra and extra[-1] == EPS else extra}"
            for n, extra, kind in CASES]


def rng(seed):
    return np.random.default_rng(seed)


def make_inputs(kind, rows, n, dtype, seed=0):
    """(y_true, y_pred) of one kind of data, away from the kinks of the losses."""
    r = rng(seed)
    shape = (rows, n)
    if kind == "dist":
        t = r.dirichlet(np.ones(n), rows)
        t[r.random(shape) < 0.2] = 0.0
        return t.astype(dtype), r.dirichlet(np.ones(n), rows).astype(dtype) * 0.9 + 0.01
    if kind == "rate":
        return r.poisson(2.0, shape).astype(dtype), r.uniform(0.2, 4.0, shape).astype(dtype)
    if kind == "real":
        return (r.standard_normal(shape).astype(dtype),
                (r.standard_normal(shape) * 2).astype(dtype))
    if kind == "binary":
        return (r.random(shape) < 0.5).astype(dtype), r.standard_normal(shape).astype(dtype)
    if kind == "signed":
        return np.where(r.random(shape) < 0.5, -1.0, 1.0).astype(dtype), \
            (r.standard_normal(shape) * 1.5).astype(dtype)
    if kind == "onehot":
        return np.eye(n, dtype=dtype)[r.integers(0, n, rows)], \
            r.standard_normal(shape).astype(dtype)
    if kind == "positive":
        return r.uniform(0.0, 5.0, shape).astype(dtype), r.uniform(0.05, 5.0, shape).astype(dtype)
    if kind == "binary_prob":
        return (r.random(shape) < 0.5).astype(dtype), r.uniform(0.02, 0.98, shape).astype(dtype)
    if kind == "binary_logit":
        return (r.random(shape) < 0.5).astype(dtype), (r.standard_normal(shape) * 3).astype(dtype)
    if kind == "onehot_prob":
        return np.eye(n, dtype=dtype)[r.integers(0, n, rows)], \
            r.uniform(0.02, 0.98, shape).astype(dtype)
    assert kind == "onehot_logit"
    return np.eye(n, dtype=dtype)[r.integers(0, n, rows)], \
        (r.standard_normal(shape) * 3).astype(dtype)


def run(module, name, y, p, weights, scale, extra, with_grad=True):
    grad = np.empty_like(p) if with_grad else None
    row_loss = np.empty(p.shape[0], p.dtype)
    total = getattr(module, name)(y, p, weights, scale, grad, row_loss, *extra)
    return total, grad, row_loss


# ---- kernels ----

def test_reference_mirrors_kernel_signatures():
    for name in KERNELS:
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name
    assert set(KERNELS) <= set(kernels.KINDS)


# One-hot targets need two classes at least; the other kinds also run on a 1x1 batch.
KERNEL_SHAPES = [pytest.param(*case, rows, n, id=f"{case_id}-{rows}x{n}")
                 for case, case_id in zip(CASES, CASE_IDS)
                 for rows, n in ((1, 1), (1, 2), (7, 5), (33, 17))
                 if n > 1 or case[2] not in ("onehot", "onehot_prob", "onehot_logit")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,extra,kind,rows,n", KERNEL_SHAPES)
def test_kernels_match_reference(name, extra, kind, rows, n, dtype):
    y, p = make_inputs(kind, rows, n, dtype, seed=rows * n)
    weights = rng(1).uniform(0.5, 2.0, rows).astype(dtype)
    for w in (None, weights):
        total, grad, row_loss = run(kernels, name, y, p, w, 0.25, extra)
        rtotal, rgrad, rrow = run(ref, name, y, p, w, 0.25, extra)
        rtol = 2e-5 if dtype == np.float32 else 1e-11
        atol = 2e-5 if dtype == np.float32 else 1e-12
        assert total == pytest.approx(rtotal, rel=rtol, abs=atol)
        np.testing.assert_allclose(row_loss, rrow, rtol=rtol, atol=atol)
        np.testing.assert_allclose(grad, rgrad, rtol=5 * rtol, atol=atol)
        assert row_loss.dtype == grad.dtype == dtype


@pytest.mark.parametrize("name,extra,kind", CASES, ids=CASE_IDS)
def test_kernel_gradient_is_the_central_difference(name, extra, kind):
    y, p = make_inputs(kind, 4, 5, np.float64, seed=11)
    weights = rng(2).uniform(0.5, 2.0, 4)
    grad = np.empty_like(p)
    getattr(kernels, name)(y, p, weights, 0.3, grad, None, *extra)

    def value():
        return 0.3 * getattr(kernels, name)(y, p, weights, 0.3, None, None, *extra)

    np.testing.assert_allclose(grad, numeric_grad(value, p), rtol=1e-6, atol=1e-8)


@pytest.fixture
def threads():
    before = minidl.get_num_threads()
    yield
    minidl.set_num_threads(before)


@pytest.mark.parametrize("name,extra,kind", CASES[::2], ids=CASE_IDS[::2])
def test_thread_count_does_not_change_bits(name, extra, kind, threads):
    y, p = make_inputs(kind, 4001, 11, np.float32, seed=5)
    assert p.size >= kernels.PARALLEL_MIN
    weights = rng(6).random(4001).astype(np.float32)
    results = []
    for count in (1, 2):
        minidl.set_num_threads(count)
        results.append(run(kernels, name, y, p, weights, 1 / 4001, extra))
    (t1, g1, r1), (t2, g2, r2) = results
    assert t1 == t2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(r1, r2)


def test_hinge_converts_binary_labels_only_when_all_are_binary():
    p = np.array([[0.3, -0.8], [1.5, 0.2]])
    binary = np.array([[0.0, 1.0], [1.0, 0.0]])
    signed = 2 * binary - 1
    assert kernels.hinge(binary, p, None, 1.0, None, None) == \
        pytest.approx(kernels.hinge(signed, p, None, 1.0, None, None), rel=1e-15)
    # One target that is neither 0 nor 1: Keras leaves the whole batch unconverted.
    mixed = binary.copy()
    mixed[1, 1] = 0.5
    expected = np.maximum(1 - mixed * p, 0).mean(axis=1).sum()
    assert kernels.hinge(mixed, p, None, 1.0, None, None) == pytest.approx(expected, rel=1e-15)
    loss = losses.SquaredHinge(reduction=None)
    np.testing.assert_allclose(np.asarray(loss(binary, p)),
                               np.mean(np.maximum(1 - signed * p, 0) ** 2, axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs_stay_finite(dtype):
    big = np.array([[-200.0, 200.0, 0.0], [90.0, -90.0, 1e-3]], dtype)
    onehot = np.eye(3, dtype=dtype)[[1, 0]]
    binary = np.array([[0, 1, 1], [1, 0, 0]], dtype)
    probs = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype)
    checks = [
        (losses.BinaryFocalCrossentropy(from_logits=True), binary, big),
        (losses.BinaryFocalCrossentropy(apply_class_balancing=True), binary, probs),
        (losses.CategoricalFocalCrossentropy(from_logits=True), onehot, big),
        (losses.CategoricalFocalCrossentropy(gamma=0.5), onehot, probs),
        (losses.KLDivergence(), probs, probs[::-1].copy()),
        (losses.LogCosh(), np.zeros_like(big), big * 1e3),
        (losses.CosineSimilarity(), np.zeros_like(big), np.zeros_like(big)),
        (losses.MeanAbsolutePercentageError(), np.zeros_like(big), big),
        (losses.MeanSquaredLogarithmicError(), -big, big),
    ]
    for loss, y, p in checks:
        grad = np.empty_like(p)
        value = loss.forward_backward(y, p, grad)
        assert np.isfinite(value) and np.isfinite(grad).all(), loss.name


# ---- loss classes: reductions, weights, gradients ----

def loss_objects():
    """(loss, kernel case index) for every new class, constructed like its case."""
    return [
        (losses.KLDivergence(), 0), (losses.Poisson(), 1), (losses.LogCosh(), 2),
        (losses.Hinge(), 3), (losses.SquaredHinge(), 6), (losses.CategoricalHinge(), 7),
        (losses.CosineSimilarity(), 8), (losses.MeanSquaredLogarithmicError(), 9),
        (losses.MeanAbsolutePercentageError(), 10),
        (losses.BinaryFocalCrossentropy(), 11),
        (losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.3, gamma=1.5,
                                        label_smoothing=0.1), 12),
        (losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.6, gamma=3.0,
                                        from_logits=True, label_smoothing=0.2), 13),
        (losses.CategoricalFocalCrossentropy(), 15),
        (losses.CategoricalFocalCrossentropy(alpha=0.8, gamma=2.5, from_logits=True,
                                             label_smoothing=0.2), 17),
    ]


LOSS_IDS = [type(loss).__name__ + str(i) for loss, i in loss_objects()]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,case", loss_objects(), ids=LOSS_IDS)
def test_reductions_and_sample_weights_follow_the_reference(loss, case, dtype):
    name, extra, kind = CASES[case]
    y, p = make_inputs(kind, 6, 4, dtype, seed=case)
    sw = rng(3).uniform(0.0, 2.0, 6)
    per_sample = np.empty(6)
    ref_fn = getattr(ref, name)
    ref_fn(y, p, None, 1.0, None, per_sample, *extra)
    tol = dict(rel=3e-6) if dtype == np.float32 else dict(rel=1e-12, abs=1e-14)
    config = loss.get_config()
    for reduction, weights, expected in [
            ("sum_over_batch_size", None, per_sample.mean()),
            ("sum", None, per_sample.sum()),
            ("sum_over_batch_size", sw, np.sum(per_sample * sw) / 6),
            ("mean_with_sample_weight", sw, np.sum(per_sample * sw) / sw.sum())]:
        reduced = type(loss).from_config({**config, "reduction": reduction})
        value = reduced(y, p, sample_weight=weights)
        assert isinstance(value, Tensor) and value.dtype == dtype and value.shape == ()
        assert float(value) == pytest.approx(expected, **tol)
    unreduced = type(loss).from_config({**config, "reduction": None})
    values = np.asarray(unreduced(y, p, sample_weight=sw[:, None]))
    np.testing.assert_allclose(values, per_sample * sw, rtol=tol["rel"], atol=1e-6)


@pytest.mark.parametrize("loss,case", loss_objects(), ids=LOSS_IDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_forward_backward_gradcheck(loss, case, weighted):
    name, extra, kind = CASES[case]
    y, p = make_inputs(kind, 4, 3, np.float64, seed=20 + case)
    sw = rng(8).uniform(0.5, 2.0, 4) if weighted else None

    def value():
        return float(loss(y, p, sample_weight=sw))

    grad = np.empty_like(p)
    reported = loss.forward_backward(y, p, grad, sample_weight=sw)
    assert reported == pytest.approx(value(), rel=1e-12)
    np.testing.assert_allclose(grad, numeric_grad(value, p), rtol=1e-6, atol=1e-8)
    # The step kernel survives pickling with its focal parameters.
    step = loss._step_kernel(False)
    if not weighted and step is not None:
        again = np.empty_like(p)
        assert pickle.loads(pickle.dumps(step)).fused(y, p, again) == reported
        np.testing.assert_array_equal(again, grad)


def function_cases():
    """(function, kwargs, equivalent kernel loss, case index)."""
    return [
        (losses.kl_divergence, {}, losses.KLDivergence(reduction=None), 0),
        (losses.poisson, {}, losses.Poisson(reduction=None), 1),
        (losses.log_cosh, {}, losses.LogCosh(reduction=None), 2),
        (losses.hinge, {}, losses.Hinge(reduction=None), 3),
        (losses.hinge, {}, losses.Hinge(reduction=None), 4),
        (losses.squared_hinge, {}, losses.SquaredHinge(reduction=None), 5),
        (losses.categorical_hinge, {}, losses.CategoricalHinge(reduction=None), 7),
        (losses.cosine_similarity, {}, losses.CosineSimilarity(reduction=None), 8),
        (losses.mean_squared_logarithmic_error, {},
         losses.MeanSquaredLogarithmicError(reduction=None), 9),
        (losses.mean_absolute_percentage_error, {},
         losses.MeanAbsolutePercentageError(reduction=None), 10),
        (losses.binary_focal_crossentropy, {},
         losses.BinaryFocalCrossentropy(reduction=None), 11),
        (losses.binary_focal_crossentropy,
         {"apply_class_balancing": True, "alpha": 0.6, "gamma": 3.0, "from_logits": True,
          "label_smoothing": 0.2},
         losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.6, gamma=3.0,
                                        from_logits=True, label_smoothing=0.2,
                                        reduction=None), 13),
        (losses.categorical_focal_crossentropy, {"alpha": 0.5, "gamma": 0.5,
                                                 "label_smoothing": 0.1},
         losses.CategoricalFocalCrossentropy(alpha=0.5, gamma=0.5, label_smoothing=0.1,
                                             reduction=None), 16),
        (losses.categorical_focal_crossentropy, {"alpha": 0.8, "gamma": 2.5,
                                                 "from_logits": True, "label_smoothing": 0.2},
         losses.CategoricalFocalCrossentropy(alpha=0.8, gamma=2.5, from_logits=True,
                                             label_smoothing=0.2, reduction=None), 17),
    ]


@pytest.mark.parametrize("fn,kwargs,kernel_loss,case", function_cases(),
                         ids=lambda v: getattr(v, "__name__", "") or "")
def test_function_forms_match_the_kernels_in_value_and_gradient(fn, kwargs, kernel_loss,
                                                                case):
    _, _, kind = CASES[case]
    y_true, y_pred = make_inputs(kind, 5, 4, np.float64, seed=40 + case)
    kernel_grad = check_loss_function_matches_kernel(fn, kwargs, kernel_loss, y_true, y_pred)
    # A built-in called under a tape records the kernel's gradient.
    pred = Variable(y_pred.copy())
    with GradientTape() as tape:
        value = ops.sum(kernel_loss(y_true, pred))
    np.testing.assert_allclose(tape.gradient(value, pred), kernel_grad, rtol=1e-12,
                               atol=1e-15)


# ---- Keras' documented values ----

def test_keras_documented_values():
    y2, p2 = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
    assert float(losses.KLDivergence()(y2, p2)) == pytest.approx(0.458, abs=1e-3)
    assert float(losses.Poisson()([[0, 1], [0, 0]], [[1, 1], [0, 0]])) == \
        pytest.approx(0.5, abs=1e-6)
    assert float(losses.log_cosh([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]).value.mean()) \
        == pytest.approx(0.108, abs=1e-3)
    assert float(losses.Hinge()(y2, p2)) == pytest.approx(1.3, abs=1e-6)
    assert float(losses.SquaredHinge()(y2, p2)) == pytest.approx(1.86, abs=1e-6)
    assert float(losses.CategoricalHinge()(y2, p2)) == pytest.approx(1.4, abs=1e-6)
    assert float(losses.MeanSquaredLogarithmicError()([[0., 1.], [0., 0.]],
                                                      [[1., 1.], [0., 0.]])) == \
        pytest.approx(0.12011322, rel=1e-6)
    np.testing.assert_allclose(
        np.asarray(losses.cosine_similarity([[0., 1.], [1., 1.], [1., 1.]],
                                            [[1., 0.], [1., 1.], [-1., -1.]])),
        [0.0, -0.99999994, 0.99999994], atol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.binary_focal_crossentropy(y2, p2, gamma=2)),
                               [0.330, 0.206], atol=1e-3)
    y, logits = np.array([0, 1, 0, 0]), np.array([-18.6, 0.51, 2.94, -12.8])
    assert float(losses.BinaryFocalCrossentropy(gamma=2, from_logits=True)(y, logits)) == \
        pytest.approx(0.691, abs=1e-3)
    assert float(losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2,
                                                from_logits=True)(y, logits)) == \
        pytest.approx(0.51, abs=1e-3)
    yb, lb = np.array([[0, 1], [0, 0]]), np.array([[-18.6, 0.51], [2.94, -12.8]])
    expected = [({"gamma": 3}, {}, 0.647), ({"gamma": 3, "apply_class_balancing": True}, {},
                                            0.482),
                ({"gamma": 3}, {"sample_weight": [0.8, 0.2]}, 0.133),
                ({"gamma": 3, "apply_class_balancing": True}, {"sample_weight": [0.8, 0.2]},
                 0.097),
                ({"gamma": 4, "reduction": "sum"}, {}, 1.222),
                ({"gamma": 4, "reduction": "sum", "apply_class_balancing": True}, {}, 0.914)]
    for ctor, call, value in expected:
        loss = losses.BinaryFocalCrossentropy(from_logits=True, **ctor)
        assert float(loss(yb, lb, **call)) == pytest.approx(value, abs=1e-3), ctor
    np.testing.assert_allclose(
        np.asarray(losses.BinaryFocalCrossentropy(gamma=5, from_logits=True,
                                                  reduction=None)(yb, lb)),
        [0.0017, 1.1561], atol=1e-4)
    yc = np.array([[0., 1., 0.], [0., 0., 1.]], np.float32)
    pc = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], np.float32)
    cfce = losses.CategoricalFocalCrossentropy()
    assert float(cfce(yc, pc)) == pytest.approx(0.23315276, rel=1e-6)
    assert float(cfce(yc, pc, sample_weight=np.array([0.3, 0.7]))) == \
        pytest.approx(0.1632, abs=1e-4)
    assert float(losses.CategoricalFocalCrossentropy(reduction="sum")(yc, pc)) == \
        pytest.approx(0.46631, abs=1e-5)
    np.testing.assert_allclose(
        np.asarray(losses.CategoricalFocalCrossentropy(reduction=None)(yc, pc)),
        [3.2058331e-05, 4.6627346e-01], rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(losses.categorical_focal_crossentropy(
            [[0, 1, 0], [0, 0, 1]], [[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])),
        [2.63401289e-04, 6.75912094e-01], rtol=1e-5)


def test_label_smoothing_follows_keras():
    # BCE family: towards 0.5; CCE family: towards 1 / classes. Sparse CCE has none.
    y, p = np.array([[1.0, 0.0]]), np.array([[0.7, 0.4]])
    smoothed = np.array([[0.9, 0.1]])
    assert float(losses.BinaryFocalCrossentropy(label_smoothing=0.2, gamma=0.0)(y, p)) == \
        pytest.approx(float(losses.BinaryCrossentropy()(smoothed, p)), rel=1e-12)
    assert float(losses.CategoricalFocalCrossentropy(label_smoothing=0.2, gamma=0.0,
                                                     alpha=1.0)(y, p)) == \
        pytest.approx(float(losses.CategoricalCrossentropy(label_smoothing=0.2)(y, p)),
                      rel=1e-12)
    assert "label_smoothing" not in inspect.signature(
        losses.SparseCategoricalCrossentropy).parameters


# ---- training, names, configs, errors ----

def test_compile_with_the_names_and_fit():
    r = rng(30)
    x = r.standard_normal((64, 4)).astype(np.float32)
    w = r.standard_normal((4, 3)).astype(np.float32)
    counts = r.poisson(np.exp(0.3 * x @ w)).astype(np.float32)
    onehot = np.eye(3, dtype=np.float32)[np.argmax(x @ w, axis=1)]
    binary = (x[:, :1] > 0).astype(np.float32)
    cases = [
        ("poisson", losses.Poisson, "exponential", 3, counts),
        ("kld", losses.KLDivergence, "softmax", 3, onehot * 0.9 + 0.1 / 3),
        ("categorical_focal_crossentropy", losses.CategoricalFocalCrossentropy, "softmax", 3,
         onehot),
        ("binary_focal_crossentropy", losses.BinaryFocalCrossentropy, "sigmoid", 1, binary),
        ("hinge", losses.Hinge, "tanh", 1, binary),
        ("cosine_similarity", losses.CosineSimilarity, None, 3, x @ w),
        ("log_cosh", losses.LogCosh, None, 3, x @ w),
    ]
    for name, cls, activation, units, y in cases:
        minidl.utils.set_random_seed(1)
        model = Sequential([Dense(units, activation=activation, input_shape=(4,))])
        model.compile(optimizer=minidl.optimizers.Adam(0.05), loss=name)
        assert type(model.loss) is cls
        history = model.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0)
        curve = history.history["loss"]
        assert np.isfinite(curve).all() and curve[-1] < curve[0], (name, curve)
        assert model.evaluate(x, y, verbose=0) == pytest.approx(
            float(cls()(y, model.predict(x, verbose=0))), rel=1e-5)


NAMES = {
    "kl_divergence": losses.KLDivergence, "kld": losses.KLDivergence,
    "KLD": losses.KLDivergence, "poisson": losses.Poisson, "log_cosh": losses.LogCosh,
    "logcosh": losses.LogCosh, "hinge": losses.Hinge, "squared_hinge": losses.SquaredHinge,
    "categorical_hinge": losses.CategoricalHinge,
    "cosine_similarity": losses.CosineSimilarity,
    "mean_squared_logarithmic_error": losses.MeanSquaredLogarithmicError,
    "msle": losses.MeanSquaredLogarithmicError,
    "mean_absolute_percentage_error": losses.MeanAbsolutePercentageError,
    "MAPE": losses.MeanAbsolutePercentageError,
    "binary_focal_crossentropy": losses.BinaryFocalCrossentropy,
    "categorical_focal_crossentropy": losses.CategoricalFocalCrossentropy,
    "CategoricalFocalCrossentropy": losses.CategoricalFocalCrossentropy,
    "bce": losses.BinaryCrossentropy,
}


def test_registered_names_functions_and_config_round_trips():
    for name, cls in NAMES.items():
        assert type(losses.get(name)) is cls, name
    defaults = {losses.KLDivergence: "kl_divergence", losses.LogCosh: "log_cosh",
                losses.BinaryFocalCrossentropy: "binary_focal_crossentropy",
                losses.CosineSimilarity: "cosine_similarity"}
    for cls, name in defaults.items():
        assert cls().name == name
    for loss, _ in loss_objects():
        again = losses.deserialize(losses.serialize(loss))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
    config = losses.BinaryFocalCrossentropy().get_config()
    assert {k: config[k] for k in ("apply_class_balancing", "alpha", "gamma", "from_logits",
                                   "label_smoothing", "axis")} == {
        "apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0, "from_logits": False,
        "label_smoothing": 0.0, "axis": -1}
    assert losses.CosineSimilarity(axis=1).get_config()["axis"] == 1
    # A function form compiles to its class; as a saved name it resolves back.
    for fn in (losses.kl_divergence, losses.poisson, losses.binary_focal_crossentropy):
        assert type(losses.get(fn)).__name__ == type(losses.get(fn.__name__)).__name__
        assert losses.resolve_function(losses.function_name(fn), "loss") is fn
    assert losses.kld is losses.kl_divergence and losses.logcosh is losses.log_cosh


@pytest.mark.parametrize("make,field", [
    (lambda: losses.BinaryFocalCrossentropy(alpha=1.5), "alpha"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=-0.1), "alpha"),
    (lambda: losses.BinaryFocalCrossentropy(gamma=-1.0), "gamma"),
    (lambda: losses.BinaryFocalCrossentropy(gamma="2"), "gamma"),
    (lambda: losses.BinaryFocalCrossentropy(label_smoothing=1.5), "label_smoothing"),
    (lambda: losses.BinaryFocalCrossentropy(apply_class_balancing="yes"),
     "apply_class_balancing"),
    (lambda: losses.BinaryFocalCrossentropy(from_logits=1), "from_logits"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=[0.2, 0.8]), "alpha"),
    (lambda: losses.CategoricalFocalCrossentropy(gamma=float("nan")), "gamma"),
    (lambda: losses.CategoricalFocalCrossentropy(label_smoothing=-0.1), "label_smoothing"),
    (lambda: losses.CategoricalFocalCrossentropy(axis=1.5), "axis"),
    (lambda: losses.CosineSimilarity(axis="last"), "axis"),
    (lambda: losses.Poisson(reduction="avg"), "reduction"),
    (lambda: losses.binary_focal_crossentropy([[1.0]], [[0.5]], gamma=-2), "gamma"),
    (lambda: losses.categorical_focal_crossentropy([[1.0, 0.0]], [[0.5, 0.5]], alpha=2),
     "alpha"),
    (lambda: losses.cosine_similarity([[1.0]], [[0.5]], axis=True), "axis"),
    (lambda: losses.KLDivergence()([[0.5, 0.5]], [[0.5, 0.2, 0.3]]), "shape"),
    (lambda: losses.Hinge()([[1.0, 0.0]], [[np.nan, 0.5]]), "NaN"),
    (lambda: losses.CosineSimilarity(axis=0)(np.ones((2, 3)), np.ones((2, 3))), "axis"),
    (lambda: losses.LogCosh()([["a"]], [[0.5]]), "y_true"),
])
def test_bad_arguments_raise_clear_errors(make, field):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert field in str(info.value)


def test_subclass_overriding_call_is_a_custom_loss():
    class Halved(losses.Poisson):
        def call(self, y_true, y_pred):
            return 0.5 * losses.poisson(y_true, y_pred)

    y, p = make_inputs("rate", 3, 2, np.float64, seed=4)
    assert float(Halved()(y, p)) == pytest.approx(0.5 * float(losses.Poisson()(y, p)),
                                                  rel=1e-12)
