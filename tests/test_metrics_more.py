"""Sum, the probabilistic metrics and the regression metrics beyond MSE/MAE: Keras'
documented values, scikit-learn on random data, streaming, sample weights, dtypes, configs
and use in compile()/fit()."""
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

import minidl
from minidl import losses
from minidl import metrics as M
from minidl.autodiff import Tensor
from minidl.layers import Dense
from minidl.models import Sequential

DTYPES = [np.float32, np.float64]


def rng(seed):
    return np.random.default_rng(seed)


def tol(dtype):
    return dict(rel=2e-6) if dtype == np.float32 else dict(rel=1e-12)


# ---- Keras' documented examples ----

def keras_examples():
    y2, p2 = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
    e1, e2 = [[0, 1], [0, 0]], [[1, 1], [0, 0]]
    y3, p3 = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    return [
        (M.BinaryCrossentropy(), y2, p2, 0.81492424, 0.9162905),
        (M.CategoricalCrossentropy(), y3, p3, 1.1769392, 1.6271976),
        (M.SparseCategoricalCrossentropy(), [1, 2], p3, 1.1769392, 1.6271976),
        (M.KLDivergence(), y2, p2, 0.45814306, 0.9162892),
        (M.Poisson(), e1, e2, 0.49999997, 0.99999994),
        (M.RootMeanSquaredError(), e1, e2, 0.5, 0.70710677),
        (M.MeanAbsolutePercentageError(), e1, e2, 250000000.0, 500000000.0),
        (M.MeanSquaredLogarithmicError(), e1, e2, 0.12011322, 0.24022643),
        (M.LogCoshError(), e1, e2, 0.10844523, 0.21689045),
        (M.CosineSimilarity(axis=1), [[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]], 0.49999997,
         0.6999999),
        (M.Hinge(), y2, p2, 1.3, 1.1),
        (M.SquaredHinge(), y2, p2, 1.86, 1.46),
        (M.CategoricalHinge(), y2, p2, 1.4, 1.2),
    ]


@pytest.mark.parametrize("metric,y_true,y_pred,plain,weighted", keras_examples(),
                         ids=lambda v: type(v).__name__ if isinstance(v, M.Metric) else "")
def test_keras_documented_values(metric, y_true, y_pred, plain, weighted):
    metric.update_state(y_true, y_pred)
    assert metric.result() == pytest.approx(plain, rel=1e-6)
    metric.reset_state()
    assert metric.result() == 0.0
    weights = [0.3, 0.7] if isinstance(metric, (M.CategoricalCrossentropy, M.CosineSimilarity,
                                                M.SparseCategoricalCrossentropy)) else [1, 0]
    metric.update_state(y_true, y_pred, sample_weight=weights)
    assert metric.result() == pytest.approx(weighted, rel=1e-6)
    assert type(metric.result()) is float


def test_keras_r2_and_sum_examples():
    m = M.R2Score()
    m.update_state(np.array([[1], [4], [3]], np.float32), np.array([[2], [4], [4]], np.float32))
    assert m.result() == pytest.approx(0.57142854, rel=1e-6)
    s = M.Sum()
    s.update_state([1, 3, 5, 7])
    assert s.result() == 16.0
    s.reset_state()
    s.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert s.result() == 4.0
    s.update_state(Tensor(np.array([[1.0, 2.0], [3.0, 4.0]])), sample_weight=[[2.0], [0.5]])
    assert s.result() == 4.0 + 2 * 3 + 0.5 * 7


# ---- against scikit-learn and numpy on random data ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_regression_metrics_match_scikit_learn(dtype):
    r = rng(1)
    y = r.uniform(0.5, 3.0, (40, 3)).astype(dtype)
    p = (y + r.normal(0, 0.4, y.shape)).clip(0.05, None).astype(dtype)
    sw = r.uniform(0.0, 2.0, 40)
    y64, p64 = y.astype(np.float64), p.astype(np.float64)
    cases = [
        (M.RootMeanSquaredError(), lambda w: np.sqrt(skm.mean_squared_error(
            y64, p64, sample_weight=w))),
        (M.MeanAbsolutePercentageError(), lambda w: 100 * skm.mean_absolute_percentage_error(
            y64, p64, sample_weight=w)),
        (M.MeanSquaredLogarithmicError(), lambda w: skm.mean_squared_log_error(
            y64, p64, sample_weight=w)),
        (M.CosineSimilarity(), lambda w: np.average(np.diag(sk_cosine(y64, p64)), weights=w)),
        (M.LogCoshError(), lambda w: np.average(np.mean(np.log(np.cosh(p64 - y64)), axis=1),
                                                weights=w)),
    ]
    for metric, expected in cases:
        for w in (None, sw):
            metric.reset_state()
            metric.update_state(y, p, sample_weight=w)
            assert metric.result() == pytest.approx(expected(w), **tol(dtype)), metric.name


@pytest.mark.parametrize("multioutput,aggregation", [
    ("uniform_average", "uniform_average"),
    ("variance_weighted", "variance_weighted_average"),
    ("raw_values", None)])
@pytest.mark.parametrize("weighted", [False, True])
def test_r2_score_matches_scikit_learn(multioutput, aggregation, weighted):
    r = rng(2)
    y = r.normal(0, 1, (50, 3)) * [1.0, 3.0, 0.5]
    p = y + r.normal(0, 0.7, y.shape)
    sw = r.uniform(0.1, 2.0, 50) if weighted else None
    m = M.R2Score(class_aggregation=aggregation)
    # Uneven batches stream to the one-pass score.
    for lo, hi in ((0, 7), (7, 8), (8, 31), (31, 50)):
        m.update_state(y[lo:hi], p[lo:hi], sample_weight=None if sw is None else sw[lo:hi])
    expected = skm.r2_score(y, p, sample_weight=sw, multioutput=multioutput)
    np.testing.assert_allclose(m.result(), expected, rtol=1e-10)


def test_adjusted_r2_and_edge_cases():
    r = rng(3)
    y = r.normal(0, 1, (30, 1))
    p = y + r.normal(0, 0.5, y.shape)
    plain = skm.r2_score(y, p)
    m = M.R2Score(num_regressors=4)
    m.update_state(y, p)
    assert m.result() == pytest.approx(1 - (1 - plain) * 29 / 25, rel=1e-12)
    few = M.R2Score(num_regressors=40)
    few.update_state(y, p)
    with pytest.warns(UserWarning, match="regressors"):
        assert few.result() == pytest.approx(plain, rel=1e-12)
    # (n,) targets against (n, 1) predictions; a constant target: 1 if exact, else 0.
    const = M.R2Score(class_aggregation=None)
    const.update_state(np.array([2.0, 2.0, 2.0]), np.array([[2.0], [2.0], [2.0]]))
    np.testing.assert_array_equal(const.result(), [1.0])
    off = M.R2Score()
    off.update_state(np.array([[2.0], [2.0]]), np.array([[1.0], [3.0]]))
    assert off.result() == 0.0
    assert M.R2Score().result() == 0.0


def test_r2_score_errors():
    with pytest.raises(ValueError, match="class_aggregation"):
        M.R2Score(class_aggregation="macro")
    with pytest.raises(ValueError, match="num_regressors"):
        M.R2Score(num_regressors=-1)
    with pytest.raises(ValueError, match="num_regressors"):
        M.R2Score(num_regressors=1.5)
    m = M.R2Score()
    with pytest.raises(ValueError, match="2-D"):
        m.update_state(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    m.update_state(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="2 outputs"):
        m.update_state(np.ones((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(np.ones((4, 2)), np.zeros((4, 2)), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        m.update_state(np.ones((4, 2)), np.full((4, 2), np.nan))


@pytest.mark.parametrize("dtype", DTYPES)
def test_probabilistic_metrics_match_scikit_learn_and_numpy(dtype):
    r = rng(4)
    labels = r.integers(0, 4, 60)
    probs = r.dirichlet(np.ones(4), 60) * 0.96 + 0.01
    binary = (r.random((60, 1)) < 0.4).astype(dtype)
    bprobs = r.uniform(0.05, 0.95, (60, 1))
    sw = r.uniform(0.0, 2.0, 60)
    onehot = np.eye(4, dtype=dtype)[labels]
    counts = r.poisson(1.5, (60, 4)).astype(dtype)
    for w in (None, sw):
        cases = [
            (M.BinaryCrossentropy(), binary, bprobs,
             skm.log_loss(binary[:, 0], bprobs[:, 0], sample_weight=w)),
            (M.CategoricalCrossentropy(), onehot, probs,
             skm.log_loss(labels, probs, sample_weight=w, labels=range(4))),
            (M.SparseCategoricalCrossentropy(), labels, probs,
             skm.log_loss(labels, probs, sample_weight=w, labels=range(4))),
            (M.KLDivergence(), probs[::-1], probs,
             np.average(np.sum(probs[::-1] * np.log(probs[::-1] / probs), axis=1),
                        weights=w)),
            (M.Poisson(), counts, probs * 3,
             np.average(np.mean(probs * 3 - counts * np.log(probs * 3 + 1e-7), axis=1),
                        weights=w)),
        ]
        for metric, y, p, expected in cases:
            metric.update_state(y, p.astype(dtype), sample_weight=w)
            assert metric.result() == pytest.approx(expected, **tol(dtype)), metric.name


def test_from_logits_and_label_smoothing_match_the_losses():
    r = rng(5)
    logits = r.normal(0, 2, (20, 3))
    onehot = np.eye(3)[r.integers(0, 3, 20)]
    binary = (r.random((20, 3)) < 0.5) * 1.0
    cases = [
        (M.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), binary,
         losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)),
        (M.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), onehot,
         losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)),
        (M.SparseCategoricalCrossentropy(from_logits=True), onehot.argmax(axis=1),
         losses.SparseCategoricalCrossentropy(from_logits=True)),
        (M.CosineSimilarity(), logits[::-1], losses.CosineSimilarity()),
    ]
    for metric, y, loss in cases:
        metric.update_state(y, logits)
        sign = -1 if isinstance(metric, M.CosineSimilarity) else 1
        assert metric.result() == pytest.approx(sign * float(loss(y, logits)), rel=1e-12)


# ---- streaming, weights, shapes, dtypes ----

def streaming_metrics():
    return [M.BinaryCrossentropy(), M.CategoricalCrossentropy(label_smoothing=0.1),
            M.KLDivergence(), M.Poisson(), M.RootMeanSquaredError(),
            M.MeanAbsolutePercentageError(), M.MeanSquaredLogarithmicError(),
            M.CosineSimilarity(), M.LogCoshError(), M.Sum(), M.Hinge(), M.SquaredHinge(),
            M.CategoricalHinge()]


@pytest.mark.parametrize("metric", streaming_metrics(), ids=lambda m: m.name)
@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_uneven_batches_equals_one_pass(metric, dtype):
    r = rng(6)
    y = r.dirichlet(np.ones(5), 37).astype(dtype)
    p = r.dirichlet(np.ones(5), 37).astype(dtype) * 0.9 + dtype(0.01)
    sw = r.uniform(0.0, 2.0, 37)

    def feed(target, a, b, w):
        if isinstance(target, M.Sum):
            target.update_state(a - b, sample_weight=w)
        else:
            target.update_state(a, b, sample_weight=w)

    one = type(metric).from_config(metric.get_config())
    feed(one, y, p, sw)
    metric.reset_state()
    for lo, hi in ((0, 1), (1, 13), (13, 13), (13, 30), (30, 37)):
        feed(metric, y[lo:hi], p[lo:hi], sw[lo:hi])
    assert metric.result() == pytest.approx(one.result(), rel=1e-12 if dtype == np.float64
                                            else 1e-6)


def test_weights_align_with_samples_and_positions():
    r = rng(7)
    y = (r.random((4, 3, 2)) < 0.5) * 1.0
    p = r.uniform(0.05, 0.95, (4, 3, 2))
    per_position = np.asarray(losses.BinaryCrossentropy(reduction=None)(y, p))   # (4, 3)
    m = M.BinaryCrossentropy()
    m.update_state(y, p)
    assert m.result() == pytest.approx(per_position.mean(), rel=1e-12)
    w = np.array([1.0, 0.0, 2.0, 0.5])
    for given in (w, w[:, None]):
        m.reset_state()
        m.update_state(y, p, sample_weight=given)
        assert m.result() == pytest.approx(np.average(per_position.mean(axis=1), weights=w),
                                           rel=1e-12)
    # One weight per position: Keras multiplies, then averages both over the positions.
    wp = r.uniform(0.0, 2.0, (4, 3))
    m.reset_state()
    m.update_state(y, p, sample_weight=wp)
    assert m.result() == pytest.approx(np.sum(per_position * wp) / wp.sum(), rel=1e-12)
    m.reset_state()
    m.update_state(y, p, sample_weight=3.0)
    assert m.result() == pytest.approx(per_position.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        m.update_state(y, p, sample_weight=np.ones(3))
    m.reset_state()
    m.update_state(y, p, sample_weight=np.zeros(4))
    assert m.result() == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_argument_and_results(dtype):
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    p = np.array([[0.3, 0.6], [0.8, 0.1]])
    m = M.BinaryCrossentropy(dtype=np.dtype(dtype).name)
    m.update_state(y, p)
    expected = float(losses.BinaryCrossentropy()(y.astype(dtype), p.astype(dtype)))
    assert m.result() == pytest.approx(expected, rel=1e-7)
    assert m.get_config()["dtype"] == np.dtype(dtype).name
    ints = M.MeanSquaredLogarithmicError()
    ints.update_state(np.array([[1, 2]]), np.array([[2, 2]]))   # integers compute as float32
    assert ints.result() == pytest.approx(np.log(3 / 2) ** 2 / 2, rel=1e-6)
    for cls in (M.Sum, M.Poisson, M.R2Score, M.RootMeanSquaredError):
        with pytest.raises(ValueError, match="dtype"):
            cls(dtype="float16")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        M.KLDivergence().update_state([[0.5, 0.5]], [[0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="NaN"):
        M.Poisson().update_state([[1.0]], [[np.nan]])
    with pytest.raises(ValueError, match="label"):
        M.SparseCategoricalCrossentropy().update_state([3], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="axis"):
        M.SparseCategoricalCrossentropy(axis=0).update_state([1, 0], [[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match="label_smoothing"):
        M.BinaryCrossentropy(label_smoothing=2)
    with pytest.raises(TypeError, match="from_logits"):
        M.CategoricalCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="axis"):
        M.CosineSimilarity(axis=1).update_state(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="values"):
        M.Sum().update_state(["a", "b"])
    with pytest.raises(ValueError, match="sample_weight"):
        M.Sum().update_state(np.ones((2, 3)), sample_weight=np.ones(3))


# ---- names, configs, compile and fit ----

METRIC_NAMES = {
    "sum": M.Sum, "binary_crossentropy": M.BinaryCrossentropy, "bce": M.BinaryCrossentropy,
    "categorical_crossentropy": M.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": M.SparseCategoricalCrossentropy,
    "kl_divergence": M.KLDivergence, "kld": M.KLDivergence, "poisson": M.Poisson,
    "root_mean_squared_error": M.RootMeanSquaredError,
    "RootMeanSquaredError": M.RootMeanSquaredError,
    "mean_absolute_percentage_error": M.MeanAbsolutePercentageError,
    "mape": M.MeanAbsolutePercentageError, "MAPE": M.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": M.MeanSquaredLogarithmicError,
    "msle": M.MeanSquaredLogarithmicError, "cosine_similarity": M.CosineSimilarity,
    "log_cosh_error": M.LogCoshError, "logcosh": M.LogCoshError, "r2_score": M.R2Score,
}


def test_names_resolve_to_registered_classes_before_loss_functions():
    for name, cls in METRIC_NAMES.items():
        metric = M.get(name)
        assert type(metric) is cls and metric.name == name, name
    # A loss without a metric class is the mean of its function.
    huber = M.get("huber")
    assert isinstance(huber, M.MeanMetricWrapper)
    huber.update_state([[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]])
    assert huber.result() == pytest.approx(0.155, rel=1e-6)
    # The metric is +cosine; the loss of the same name is its negative.
    y, p = [[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]]
    assert M.get("cosine_similarity")(y, p) == pytest.approx(
        -float(losses.get("cosine_similarity")(y, p)), rel=1e-12)


@pytest.mark.parametrize("metric", [
    M.Sum(name="total"), M.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
    M.CategoricalCrossentropy(label_smoothing=0.2, axis=-1, dtype="float64"),
    M.SparseCategoricalCrossentropy(from_logits=True), M.KLDivergence(), M.Poisson(),
    M.RootMeanSquaredError(), M.MeanAbsolutePercentageError(),
    M.MeanSquaredLogarithmicError(), M.CosineSimilarity(axis=-1), M.LogCoshError(),
    M.R2Score(class_aggregation="variance_weighted_average", num_regressors=2), M.Hinge(),
    M.SquaredHinge(dtype="float64"), M.CategoricalHinge(name="ch")],
    ids=lambda m: type(m).__name__)
def test_config_round_trips(metric):
    again = M.get(M.serialize(metric))
    assert type(again) is type(metric) and again.get_config() == metric.get_config()
    assert type(metric).from_config(metric.get_config()).get_config() == metric.get_config()


def test_defaults_follow_keras():
    assert M.LogCoshError().name == "logcosh"
    assert M.RootMeanSquaredError().name == "root_mean_squared_error"
    assert M.KLDivergence().name == "kl_divergence"
    assert M.R2Score().get_config() == {"class_aggregation": "uniform_average",
                                        "num_regressors": 0, "name": "r2_score",
                                        "dtype": None}
    assert M.BinaryCrossentropy().get_config() == {
        "name": "binary_crossentropy", "dtype": None, "from_logits": False,
        "label_smoothing": 0}


def test_compile_metrics_and_fit():
    minidl.utils.set_random_seed(9)
    r = rng(10)
    x = r.standard_normal((48, 4)).astype(np.float32)
    y = (x @ r.standard_normal((4, 2)) + 0.1 * r.standard_normal((48, 2))).astype(np.float32)
    model = Sequential([Dense(2, input_shape=(4,))])
    model.compile(optimizer=minidl.optimizers.Adam(0.05), loss="mse",
                  metrics=["root_mean_squared_error", M.R2Score(), "cosine_similarity",
                           M.LogCoshError(), "mape"])
    history = model.fit(x, y, batch_size=10, epochs=5, verbose=0)
    for key in ("root_mean_squared_error", "r2_score", "cosine_similarity", "logcosh",
                "mape"):
        assert len(history.history[key]) == 5 and np.isfinite(history.history[key]).all()
    assert history.history["r2_score"][-1] > history.history["r2_score"][0]
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert results["r2_score"] == pytest.approx(skm.r2_score(y, pred), rel=1e-5)
    assert results["root_mean_squared_error"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-5)
    assert results["loss"] == pytest.approx(results["root_mean_squared_error"] ** 2,
                                            rel=1e-5)

    labels = (x[:, 0] > 0).astype(np.int64)
    classifier = Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    classifier.compile(optimizer=minidl.optimizers.Adam(0.05),
                       loss="sparse_categorical_crossentropy",
                       metrics=["sparse_categorical_crossentropy", "accuracy"])
    history = classifier.fit(x, labels, batch_size=12, epochs=3, verbose=0)
    assert np.isfinite(history.history["sparse_categorical_crossentropy"]).all()
    results = classifier.evaluate(x, labels, verbose=0, return_dict=True)
    assert results["sparse_categorical_crossentropy"] == pytest.approx(results["loss"],
                                                                       rel=1e-5)


def test_saved_model_keeps_the_new_loss_and_metrics(tmp_path):
    from minidl.saving import load_model
    minidl.utils.set_random_seed(11)
    r = rng(12)
    x = r.standard_normal((20, 3)).astype(np.float32)
    y = (r.random((20, 2)) < 0.5).astype(np.float32)
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer="adam",
                  loss=losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3.0,
                                                      from_logits=True),
                  metrics=[M.BinaryCrossentropy(from_logits=True), M.R2Score(), "kld",
                           "log_cosh"])
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = load_model(path)
    assert loaded.loss.get_config() == model.loss.get_config()
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(after) == set(before) >= {"binary_crossentropy", "r2_score", "kld", "log_cosh"}
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("name,loss", [("hinge", losses.hinge),
                                       ("squared_hinge", losses.squared_hinge),
                                       ("categorical_hinge", losses.categorical_hinge)])
def test_hinge_metrics_are_the_mean_of_the_loss_function(name, loss):
    r = rng(11)
    y = np.eye(4)[r.integers(0, 4, 23)]
    p = r.standard_normal((23, 4))
    metric = M.get(name)
    assert type(metric).__name__ == "".join(part.title() for part in name.split("_"))
    metric.update_state(y, p)
    assert metric.result() == pytest.approx(float(np.mean(loss(y, p).value)), rel=1e-12)
