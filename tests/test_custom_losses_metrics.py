"""Custom losses and metrics with Keras 3 semantics: plain functions, Loss and Metric
subclasses, their reductions and gradients, training with them, and their errors.

References are plain numpy (float64) and central differences (``numeric_grad``).
"""
import os

import numpy as np
import pytest

import minidl
from minidl import losses, metrics, ops
from minidl._ref.gradcheck import numeric_grad
from minidl.autodiff import GradientTape, Tensor, Variable
from minidl.layers import Dense
from minidl.models import Sequential
from op_checks import check_loss_function_matches_kernel
from minidl.saving import load_model, register_serializable

pytestmark = pytest.mark.usefixtures("one_thread")


def rng(seed):
    return np.random.default_rng(seed)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---- custom losses and metrics used below ----

CALLS = {"my_mse": 0}


def my_mse(y_true, y_pred):
    CALLS["my_mse"] += 1
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


def abs_error(y_true, y_pred):
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


def cubic(y_true, y_pred, power=3.0):
    """Not a built-in loss: its gradient comes from the ops alone."""
    return ops.mean(ops.abs(y_pred - y_true) ** power, axis=-1)


class ScaledSquares(losses.Loss):
    """A Loss subclass (Keras style): per-sample ``factor * sum((y_pred - y_true)^2)``."""

    def __init__(self, factor=2.0, name="scaled_squares", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.factor = factor

    def call(self, y_true, y_pred):
        return self.factor * ops.sum(ops.square(y_pred - y_true), axis=-1)

    def get_config(self):
        return {"factor": self.factor, **super().get_config()}


@register_serializable(package="minidl_custom_tests")
class RegisteredScaledSquares(ScaledSquares):
    pass


def registered_abs_error(y_true, y_pred):
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


# register_serializable takes classes only (see the module's report); functions go into
# the function registry it would fill.
losses.FUNCTIONS.register("minidl_custom_tests>registered_abs_error")(registered_abs_error)


class BinaryTruePositives(metrics.Metric):
    """keras.io's custom metric, on minidl.ops."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros",
                                                name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.cast((y_true > 0.5) & (y_pred > 0.5), self.dtype)
        if sample_weight is not None:
            values = values * ops.reshape(ops.cast(sample_weight, self.dtype), (-1, 1))
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives


def regression_data(n=32, seed=0):
    r = rng(seed)
    x = r.standard_normal((n, 5)).astype(np.float32)
    y = (x @ r.standard_normal((5, 2)) + 0.1 * r.standard_normal((n, 2))).astype(np.float32)
    return x, y


def twin_models(loss_a, loss_b, metrics_b=None, learning_rate=0.01):
    """Two small Dense models with the same initial weights, compiled with each loss."""
    minidl.utils.set_random_seed(3)
    a = Sequential([Dense(8, activation="tanh", input_shape=(5,)), Dense(2)])
    b = Sequential([Dense(8, activation="tanh", input_shape=(5,)), Dense(2)])
    b.set_weights(a.get_weights())
    a.compile(optimizer=minidl.optimizers.Adam(learning_rate), loss=loss_a)
    b.compile(optimizer=minidl.optimizers.Adam(learning_rate), loss=loss_b, metrics=metrics_b)
    return a, b


def assert_same_weights(a, b, atol=1e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=atol)


# ---- training with custom losses ----

def test_function_loss_trains_to_the_weights_of_builtin_mse():
    x, y = regression_data()
    builtin, custom = twin_models("mse", my_mse)
    assert isinstance(custom.loss, losses.LossFunctionWrapper) and custom.loss.name == "my_mse"
    start = [w.copy() for w in custom.get_weights()]
    before = CALLS["my_mse"]
    for _ in range(20):
        expected = builtin.train_on_batch(x, y)
        got = custom.train_on_batch(x, y)
        assert got == pytest.approx(expected, rel=1e-5)
    assert CALLS["my_mse"] - before >= 20   # the function itself computed each step
    assert_same_weights(builtin, custom)
    assert max(np.abs(w - s).max() for w, s in zip(custom.get_weights(), start)) > 1e-2


def test_function_loss_in_fit_with_sample_weights_and_evaluate():
    x, y = regression_data(n=40, seed=1)
    sw = rng(2).uniform(0.2, 2.0, 40).astype(np.float32)
    builtin, custom = twin_models("mse", my_mse)
    ha = builtin.fit(x, y, sample_weight=sw, batch_size=8, epochs=4, shuffle=False, verbose=0)
    hb = custom.fit(x, y, sample_weight=sw, batch_size=8, epochs=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(hb.history["loss"], ha.history["loss"], rtol=1e-5)
    assert all(type(v) is float for v in hb.history["loss"])
    assert_same_weights(builtin, custom)
    value = custom.evaluate(x, y, sample_weight=sw, verbose=0)
    pred = custom.predict(x, verbose=0).astype(np.float64)
    reference = np.mean(np.mean((pred - y) ** 2, axis=-1) * sw)
    assert value == pytest.approx(reference, rel=1e-5)
    assert value == pytest.approx(builtin.evaluate(x, y, sample_weight=sw, verbose=0),
                                  rel=1e-5)


def test_loss_subclass_trains_and_matches_numpy():
    x, y = regression_data(seed=4)
    # factor 0.5 * sum over 2 outputs = mean over outputs: the built-in MSE exactly.
    builtin, custom = twin_models("mse", ScaledSquares(factor=0.5))
    for _ in range(20):
        builtin.train_on_batch(x, y)
        custom.train_on_batch(x, y)
    assert_same_weights(builtin, custom)
    pred = custom.predict(x, verbose=0).astype(np.float64)
    loss = ScaledSquares(factor=3.0)
    assert float(loss(y, pred)) == pytest.approx(np.mean(3.0 * np.sum((pred - y) ** 2, -1)),
                                                 rel=1e-12)


def test_custom_loss_with_its_own_gradient_trains_as_plain_gradient_descent():
    # A loss no kernel knows: one SGD step must move the weights by -lr * d(loss)/dW,
    # which central differences of the loss through predict give independently.
    x, y = regression_data(n=6, seed=5)
    x, y = x.astype(np.float64), y.astype(np.float64)
    minidl.utils.set_random_seed(6)
    model = Sequential([Dense(2, input_shape=(5,), dtype="float64")])
    model.compile(optimizer=minidl.optimizers.SGD(0.1), loss=cubic)
    model.build((None, 5))
    kernel, bias = model.get_weights()

    def value():
        pred = x @ kernel + bias
        return float(np.mean(np.mean(np.abs(pred - y) ** 3, axis=-1)))

    expected = [kernel - 0.1 * numeric_grad(value, kernel), bias - 0.1 * numeric_grad(value, bias)]
    reported = model.train_on_batch(x, y)
    assert reported == pytest.approx(value(), rel=1e-12)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)


def test_subclass_of_builtin_overriding_call_is_not_fused():
    class DoubledCCE(losses.CategoricalCrossentropy):
        def call(self, y_true, y_pred):
            return 2.0 * super().call(y_true, y_pred)

    loss = DoubledCCE()
    plain = losses.CategoricalCrossentropy()
    assert plain.fused_with == "softmax" and plain._step_kernel(False) is not None
    assert loss.fused_with is None and loss._step_kernel(False) is None
    probs = softmax(rng(7).standard_normal((4, 3)))
    onehot = np.eye(3)[[0, 2, 1, 1]]
    assert float(loss(onehot, probs)) == pytest.approx(2 * float(plain(onehot, probs)),
                                                       rel=1e-12)
    grad, plain_grad = np.empty_like(probs), np.empty_like(probs)
    value = loss.forward_backward(onehot, probs, grad)
    assert value == pytest.approx(2 * plain.forward_backward(onehot, probs, plain_grad),
                                  rel=1e-12)
    np.testing.assert_allclose(grad, 2 * plain_grad, rtol=1e-10, atol=1e-12)


# ---- reductions and sample weights ----

REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None, "none"]


def numpy_reduce(per_sample, sw, reduction):
    values = per_sample if sw is None else per_sample * np.broadcast_to(
        np.reshape(sw, (-1,)) if np.ndim(sw) else sw, per_sample.shape)
    if reduction in (None, "none"):
        return values
    if reduction == "sum":
        return values.sum()
    if reduction == "mean_with_sample_weight" and sw is not None:
        return values.sum() / np.broadcast_to(np.reshape(sw, (-1,)) if np.ndim(sw) else sw,
                                              per_sample.shape).sum()
    return values.sum() / values.size


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "vector", "column", "scalar"])
def test_reductions_and_sample_weights_against_numpy(reduction, weights):
    y_true, y_pred = rng(8).standard_normal((5, 3)), rng(9).standard_normal((5, 3))
    sw = {"none": None, "vector": rng(10).uniform(0.1, 2.0, 5),
          "column": rng(10).uniform(0.1, 2.0, (5, 1)), "scalar": 0.7}[weights]
    per_sample = np.mean(np.abs(y_pred - y_true) ** 3, axis=-1)
    expected = numpy_reduce(per_sample, sw, reduction)
    for loss in (losses.LossFunctionWrapper(cubic, reduction=reduction),
                 losses.get(cubic) if reduction == "sum_over_batch_size" else None):
        if loss is None:
            continue
        got = loss(y_true, y_pred, sample_weight=sw)
        assert isinstance(got, Tensor) and got.dtype == np.float64
        np.testing.assert_allclose(np.asarray(got).reshape(np.shape(expected)), expected,
                                   rtol=1e-12)
    # The same reduction of the built-in loss gives the same numbers as the custom one.
    mse = losses.MeanSquaredError(reduction=reduction)
    custom_mse = losses.LossFunctionWrapper(my_mse, reduction=reduction)
    np.testing.assert_allclose(np.asarray(custom_mse(y_true, y_pred, sample_weight=sw)),
                               np.asarray(mse(y_true, y_pred, sample_weight=sw)), rtol=1e-12)


def test_mean_with_sample_weight_and_zero_weights():
    y_true, y_pred = np.zeros((3, 2)), np.ones((3, 2))
    loss = losses.LossFunctionWrapper(abs_error, reduction="mean_with_sample_weight")
    assert float(loss(y_true, y_pred, sample_weight=[0.0, 0.0, 0.0])) == 0.0  # divide_no_nan
    assert float(loss(y_true, y_pred, sample_weight=[2.0, 0.0, 0.0])) == 1.0
    # A scalar per-sample loss is returned as it is (Keras' reduce_values).
    scalar = losses.LossFunctionWrapper(lambda t, p: ops.mean(ops.abs(p - t)), reduction="sum")
    assert float(scalar(y_true, y_pred)) == 1.0


def test_loss_kwargs_dtype_and_rank_alignment():
    y_true, y_pred = rng(11).standard_normal(4), rng(12).standard_normal((4, 1))
    squared = losses.LossFunctionWrapper(cubic, power=2.0)
    # (n,) targets face (n, 1) predictions: Keras expands y_true to (n, 1).
    assert float(squared(y_true, y_pred)) == pytest.approx(
        np.mean((y_pred[:, 0] - y_true) ** 2), rel=1e-12)
    as32 = losses.LossFunctionWrapper(cubic, dtype="float32")
    assert as32(y_true, y_pred).dtype == np.float32
    ints = losses.LossFunctionWrapper(abs_error)(np.array([[1, 2]]), np.array([[2, 4]]))
    assert ints.dtype == np.float32 and float(ints) == 1.5


# ---- the value of a loss call ----

@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.get(my_mse), ScaledSquares()],
                         ids=["builtin", "function", "subclass"])
def test_loss_call_returns_a_tensor(loss):
    y_true, y_pred = rng(13).random((4, 3)), rng(14).random((4, 3)).astype(np.float32)
    value = loss(y_true, y_pred)
    assert isinstance(value, Tensor) and value.shape == () and value.dtype == np.float32
    number = float(value)
    assert isinstance(number, float) and number > 0
    assert np.asarray(value).shape == () and float(np.asarray(value)) == number
    assert float(value + 1.0) == pytest.approx(number + 1.0)
    assert float(2.0 * value) == pytest.approx(2 * number)
    assert float(value / 2) == pytest.approx(number / 2)
    assert f"{value:.3f}" == f"{number:.3f}"
    per_sample = type(loss)(reduction=None) if not isinstance(loss, losses.LossFunctionWrapper) \
        else losses.LossFunctionWrapper(my_mse, reduction=None)
    values = per_sample(y_true, y_pred)
    assert isinstance(values, Tensor) and values.shape == (4,)
    assert float(np.mean(values)) == pytest.approx(number, rel=1e-6)


def test_mean_metric_accepts_loss_tensors():
    tracker = metrics.Mean()
    loss = losses.MeanSquaredError()
    a = loss(np.zeros((2, 2)), np.ones((2, 2)))          # 1.0
    b = loss(np.zeros((2, 2)), 3 * np.ones((2, 2)))      # 9.0
    tracker.update_state(a, sample_weight=2)
    tracker.update_state(b * 1.0, sample_weight=6)
    assert tracker.result() == pytest.approx((2 + 54) / 8)
    tracker.update_state(losses.MeanSquaredError(reduction=None)(np.zeros((2, 2)),
                                                                 np.ones((2, 2))))
    assert tracker.result() == pytest.approx((2 + 54 + 2) / 10)


# ---- gradients under a GradientTape ----

def tape_gradient(loss, y_true, pred_value, sample_weight=None):
    pred = Variable(pred_value.copy())
    with GradientTape() as tape:
        value = loss(y_true, pred * 1.0, sample_weight=sample_weight)
        total = ops.sum(value * np.linspace(0.5, 1.5, value.size).reshape(value.shape)) \
            if value.ndim else value
    return tape.gradient(total, pred), pred


def tape_cases():
    r = rng(15)
    t = r.standard_normal((4, 3))
    binary = (r.random((4, 3)) < 0.5).astype(float)
    onehot = np.eye(3)[[0, 2, 1, 2]]
    labels = np.array([2, 0, 1, 1])
    return [
        (losses.get(my_mse), t, "any"),
        (losses.LossFunctionWrapper(cubic, reduction="sum"), t, "any"),
        (ScaledSquares(factor=1.5), t, "any"),
        (ScaledSquares(reduction=None), t, "any"),
        (losses.MeanSquaredError(), t, "any"),
        (losses.MeanAbsoluteError(reduction="sum"), t, "any"),
        (losses.Huber(delta=0.6), t, "any"),
        (losses.Huber(delta=0.6, reduction=None), t, "any"),
        (losses.BinaryCrossentropy(label_smoothing=0.1), binary, "prob"),
        (losses.BinaryCrossentropy(from_logits=True, reduction=None), binary, "any"),
        (losses.CategoricalCrossentropy(), onehot, "prob"),
        (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2,
                                        reduction="mean_with_sample_weight"), onehot, "any"),
        (losses.SparseCategoricalCrossentropy(), labels, "prob"),
        (losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1,
                                              reduction=None), labels, "any"),
    ]


@pytest.mark.parametrize("loss,y_true,kind", tape_cases(), ids=lambda v: repr(v)[:50])
@pytest.mark.parametrize("weighted", [False, True])
def test_tape_gradients_match_central_differences(loss, y_true, kind, weighted):
    r = rng(16)
    pred_value = r.uniform(0.1, 0.9, (4, 3)) if kind == "prob" else r.standard_normal((4, 3))
    sw = r.uniform(0.5, 2.0, 4) if weighted else None
    grad, pred = tape_gradient(loss, y_true, pred_value, sw)
    assert grad is not None and grad.shape == pred_value.shape

    def value():
        v = np.asarray(loss(y_true, pred.value, sample_weight=sw), np.float64)
        return float(np.sum(v * np.linspace(0.5, 1.5, v.size).reshape(v.shape))) if v.ndim \
            else float(v)

    np.testing.assert_allclose(grad, numeric_grad(value, pred.value), rtol=1e-6, atol=1e-8)


def test_tape_gradient_through_a_matmul_to_weights():
    x = rng(17).standard_normal((6, 4))
    y = rng(18).standard_normal((6, 2))
    w = Variable(rng(19).standard_normal((4, 2)))
    for loss in (losses.MeanSquaredError(), losses.get(cubic)):
        with GradientTape() as tape:
            value = loss(y, ops.matmul(x, w))
        grad = tape.gradient(value, [w])[0]

        def f():
            return float(loss(y, x @ w.value))
        np.testing.assert_allclose(grad, numeric_grad(f, w.value), rtol=1e-6, atol=1e-9)


def test_builtin_loss_outside_a_tape_records_nothing():
    pred = Variable(np.ones((2, 3)))
    value = losses.MeanSquaredError()(np.zeros((2, 3)), pred)
    assert value.node is None and not value.requires_grad
    with GradientTape():
        recorded = losses.MeanSquaredError()(np.zeros((2, 3)), pred)
    assert recorded.requires_grad and recorded.node is not None


# ---- function forms ----

def function_cases():
    r = rng(20)
    t = r.standard_normal((5, 4))
    binary = (r.random((5, 4)) < 0.5).astype(float)
    onehot = np.eye(4)[[0, 3, 1, 2, 2]]
    labels = np.array([[3], [0], [1], [2], [2]])
    probs = r.uniform(0.05, 0.95, (5, 4))
    logits = r.standard_normal((5, 4)) * 3
    return [
        (losses.mean_squared_error, {}, losses.MeanSquaredError(reduction=None), t, logits),
        (losses.mean_absolute_error, {}, losses.MeanAbsoluteError(reduction=None), t, logits),
        (losses.huber, {"delta": 0.5}, losses.Huber(0.5, reduction=None), t, logits),
        (losses.binary_crossentropy, {"label_smoothing": 0.2},
         losses.BinaryCrossentropy(label_smoothing=0.2, reduction=None), binary, probs),
        (losses.binary_crossentropy, {"from_logits": True},
         losses.BinaryCrossentropy(from_logits=True, reduction=None), binary, logits),
        (losses.categorical_crossentropy, {},
         losses.CategoricalCrossentropy(reduction=None), onehot, probs),
        (losses.categorical_crossentropy, {"from_logits": True, "label_smoothing": 0.1},
         losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1,
                                        reduction=None), onehot, logits),
        (losses.sparse_categorical_crossentropy, {},
         losses.SparseCategoricalCrossentropy(reduction=None), labels, probs),
        (losses.sparse_categorical_crossentropy, {"from_logits": True, "ignore_class": 2},
         losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2,
                                              reduction=None), labels, logits),
    ]


@pytest.mark.parametrize("fn,kwargs,kernel_loss,y_true,y_pred", function_cases(),
                         ids=lambda v: getattr(v, "__name__", "") or "")
def test_function_forms_match_the_kernels_in_value_and_gradient(fn, kwargs, kernel_loss,
                                                                y_true, y_pred):
    check_loss_function_matches_kernel(fn, kwargs, kernel_loss, y_true, y_pred)


def test_function_forms_compile_to_the_fused_classes_and_work_as_metrics():
    assert type(losses.get(losses.mean_squared_error)) is losses.MeanSquaredError
    assert losses.get(losses.huber).name == "huber"
    assert type(losses.get(losses.sparse_categorical_crossentropy)) is \
        losses.SparseCategoricalCrossentropy
    m = metrics.get(losses.mean_absolute_error)
    assert isinstance(m, metrics.MeanMetricWrapper) and m.name == "mean_absolute_error"
    m.update_state([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [2.0, 0.0]])
    assert m.result() == pytest.approx((0.5 + 1.0) / 2)
    # A loss name that is also a registered metric class gives the class (as in Keras);
    # other loss names give the mean of the loss function.
    bce = metrics.get("binary_crossentropy")
    assert type(bce) is metrics.BinaryCrossentropy and bce.name == "binary_crossentropy"
    hub = metrics.get("huber")
    assert isinstance(hub, metrics.MeanMetricWrapper) and hub.name == "huber"


# ---- custom metrics ----

def test_metric_subclass_streams_resets_and_exposes_variables():
    m = BinaryTruePositives()
    assert m.dtype == "float32" and len(m.variables) == 1
    assert m.variables[0] is m.true_positives and m.true_positives.path == \
        "binary_true_positives/true_positives"
    m.update_state(np.array([[1], [1], [0]]), np.array([[0.9], [0.2], [0.8]]))
    m.update_state(np.array([[1], [1]]), np.array([[0.7], [0.6]]), sample_weight=[2.0, 0.5])
    assert float(m.result()) == 1 + 2.0 + 0.5
    m.reset_state()
    assert float(m.result()) == 0.0

    class Offset(metrics.Metric):
        def __init__(self):
            super().__init__()
            self.total = self.add_weight("total", shape=(2,), initializer="ones",
                                         dtype="float64")
            self.inner = metrics.Mean()

        def update_state(self, values):
            self.total.assign_add(values)
            self.inner.update_state(values)

        def result(self):
            return ops.sum(self.total)

    o = Offset()
    assert o.name == "offset" and o.total.dtype == np.float64
    o.update_state(np.array([1.0, 2.0]))
    assert float(o.result()) == 5.0 and o.inner.result() == 1.5
    o.reset_state()   # back to the initializer's value, and the nested metric reset
    np.testing.assert_array_equal(o.total.value, [1.0, 1.0])
    assert o.inner.result() == 0.0
    assert o([1.0, 1.0]) == 4.0    # __call__: update, then result
    assert metrics.result_value(o) == 4.0 and "result=4" in repr(o)


def test_custom_metric_in_fit_resets_each_epoch_and_in_evaluate():
    x = rng(21).standard_normal((30, 4)).astype(np.float32)
    y = (rng(22).random((30, 1)) < 0.5).astype(np.float32)
    minidl.utils.set_random_seed(7)
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))])
    # A learning rate of 0 keeps the predictions fixed, so every epoch sees the same counts.
    model.compile(optimizer=minidl.optimizers.SGD(0.0), loss="binary_crossentropy",
                  metrics=[BinaryTruePositives()])
    pred = model.predict(x, verbose=0)
    expected = float(np.sum((y > 0.5) & (pred > 0.5)))
    assert expected > 0
    history = model.fit(x, y, batch_size=7, epochs=3, verbose=0)
    assert history.history["binary_true_positives"] == [expected] * 3
    assert all(type(v) is float for v in history.history["binary_true_positives"])
    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert result["binary_true_positives"] == expected
    assert type(result["binary_true_positives"]) is float


def test_function_metrics_and_wrappers_in_logs():
    x, y = regression_data(n=20, seed=23)
    minidl.utils.set_random_seed(8)
    model = Sequential([Dense(2, input_shape=(5,))])

    def squared_error(y_true, y_pred):   # returns (batch, 2): averaged per sample
        return ops.square(y_pred - y_true)

    model.compile(optimizer=minidl.optimizers.SGD(0.0), loss="mse",
                  metrics=[abs_error, metrics.MeanMetricWrapper(cubic, name="p4", power=4.0),
                           squared_error, losses.mean_squared_error, "mae", "mse"])
    logs = model.evaluate(x, y, batch_size=6, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "abs_error", "p4", "squared_error", "mean_squared_error",
                          "mae", "mse"]
    pred = model.predict(x, verbose=0).astype(np.float64)
    err = pred - y
    assert logs["abs_error"] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)
    assert logs["p4"] == pytest.approx(np.mean(np.mean(err ** 4, -1)), rel=1e-6)
    for key in ("squared_error", "mean_squared_error", "mse", "loss"):
        assert logs[key] == pytest.approx(np.mean(err ** 2), rel=1e-6), key
    assert logs["mae"] == pytest.approx(logs["abs_error"], rel=1e-6)
    assert all(type(v) is float for v in logs.values())
    history = model.fit(x, y, batch_size=6, epochs=2, verbose=0)
    assert history.history["abs_error"][0] == pytest.approx(logs["abs_error"], rel=1e-6)
    assert history.history["p4"][1] == pytest.approx(logs["p4"], rel=1e-6)


def test_mean_metric_wrapper_config_round_trip():
    m = metrics.MeanMetricWrapper(losses.huber, name="h", delta=0.5)
    config = m.get_config()
    assert config == {"fn": "huber", "name": "h", "delta": 0.5}
    again = metrics.get(metrics.serialize(m))
    assert isinstance(again, metrics.MeanMetricWrapper) and again.get_config() == config
    loss = losses.LossFunctionWrapper(registered_abs_error, reduction="sum")
    config = losses.serialize(loss)
    assert config["config"]["fn"] == "minidl_custom_tests>registered_abs_error"
    assert losses.get(config).fn is registered_abs_error
    # A registered function's name works wherever a loss or metric name does.
    by_name = losses.get("minidl_custom_tests>registered_abs_error")
    assert isinstance(by_name, losses.LossFunctionWrapper) and by_name.fn is registered_abs_error
    metric = metrics.get("minidl_custom_tests>registered_abs_error")
    assert isinstance(metric, metrics.MeanMetricWrapper)
    metric.update_state([[0.0, 0.0]], [[1.0, 3.0]])
    assert metric.result() == 2.0
    with pytest.raises(ValueError, match=r"Unknown loss 'not_a_loss'\. Valid names: .*mse"):
        losses.get("not_a_loss")


# ---- errors ----

def test_loss_function_results_of_the_wrong_kind_are_clear_errors():
    y_true, y_pred = np.zeros((4, 3)), np.ones((4, 3))

    def over_the_batch(y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=0)

    def nothing(y_true, y_pred):
        return None

    def words(y_true, y_pred):
        return "small"

    with pytest.raises(ValueError, match=r"over_the_batch' must return one loss per sample: "
                                         r"shape \(4, \.\.\.\) .*received shape \(3,\)"):
        losses.get(over_the_batch)(y_true, y_pred)
    with pytest.raises(TypeError, match=r"loss function 'nothing' must return the per-sample "
                                        r"losses as a tensor of numbers; received NoneType"):
        losses.get(nothing)(y_true, y_pred)
    with pytest.raises(TypeError, match=r"received str 'small'"):
        losses.get(words)(y_true, y_pred)
    with pytest.raises(TypeError, match=r"y_true must hold numbers; received dtype <U1"):
        losses.get(abs_error)([["a", "b", "c"]], [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not broadcast to "
                                         r"the per-sample loss shape \(4,\)"):
        losses.get(abs_error)(y_true, y_pred, sample_weight=np.ones(3))
    with pytest.raises(NotImplementedError, match=r"must implement call\(y_true, y_pred\)"):
        losses.Loss()(y_true, y_pred)
    with pytest.raises(TypeError, match=r"fn must be a function .*received fn=3"):
        losses.LossFunctionWrapper(3)
    with pytest.raises(ValueError, match=r"dtype must be a float type .*dtype='int32'"):
        losses.LossFunctionWrapper(abs_error, dtype="int32")

    model = Sequential([Dense(3, input_shape=(2,))])
    model.compile(optimizer="sgd", loss=over_the_batch)
    with pytest.raises(ValueError, match="one loss per sample"):
        model.fit(np.ones((4, 2)), y_true, verbose=0)


def test_loss_without_a_path_to_y_pred_cannot_train():
    def through_numpy(y_true, y_pred):
        return np.mean((np.asarray(y_pred) - np.asarray(y_true)) ** 2, axis=-1)

    model = Sequential([Dense(3, input_shape=(2,))])
    model.compile(optimizer="sgd", loss=through_numpy)
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"through_numpy: the loss does not depend on y_pred "
                                         r"through minidl ops"):
        model.train_on_batch(np.ones((4, 2)), np.zeros((4, 3)))
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    # Evaluating it needs no gradient, so it works.
    assert model.evaluate(np.ones((4, 2)), np.zeros((4, 3)), verbose=0) >= 0


def test_metric_errors_are_clear():
    def words(y_true, y_pred):
        return "many"

    def per_feature(y_true, y_pred):
        return ops.mean(y_pred, axis=0)

    with pytest.raises(TypeError, match=r"Metric 'words': the metric function 'words' must "
                                        r"return per-sample values"):
        metrics.get(words).update_state([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match=r"one value per sample: shape \(2, \.\.\.\) .*"
                                         r"received shape \(3,\)"):
        metrics.get(per_feature).update_state(np.ones((2, 3)), np.ones((2, 3)))

    class NoInit(metrics.Metric):
        def __init__(self):
            self.v = self.add_variable(shape=())

    with pytest.raises(RuntimeError, match=r"NoInit.__init__ must call super\(\).__init__\(\)"):
        NoInit()
    m = metrics.Mean()
    with pytest.raises(ValueError, match=r"aggregation.*Received: aggregation='max'"):
        m.add_variable(shape=(), aggregation="max")
    with pytest.raises(ValueError, match=r"shape.*Received: shape=\(-1,\)"):
        m.add_variable(shape=(-1,))

    class Words(metrics.Metric):
        def update_state(self, *args):
            pass

        def result(self):
            return "good"

    with pytest.raises(TypeError, match=r"Metric 'words': result\(\) must return a number"):
        metrics.result_value(Words())


def save_compiled(tmp_path, loss, name="model.minidl"):
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(optimizer="adam", loss=loss)
    model.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))
    path = os.path.join(tmp_path, name)
    model.save(path)
    return model, path


def test_unregistered_custom_losses_fail_to_load_with_a_clear_error(tmp_path):
    _, path = save_compiled(tmp_path, ScaledSquares(factor=3.0), "subclass.minidl")
    with pytest.raises(ValueError, match=r"Unknown loss 'ScaledSquares': a custom loss class "
                                         r"must be registered .*register_serializable"):
        load_model(path)
    model = load_model(path, compile=False)   # the architecture needs no loss
    assert model.get_weights()[0].shape == (3, 2)

    _, path = save_compiled(tmp_path, cubic, "function.minidl")
    with pytest.raises(ValueError, match=r"Unknown loss function 'cubic': a custom loss "
                                         r"function must be registered"):
        load_model(path)


def test_registered_custom_losses_load_and_evaluate_the_same(tmp_path):
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    for loss in (RegisteredScaledSquares(factor=3.0),
                 losses.LossFunctionWrapper(registered_abs_error, reduction="sum")):
        model, path = save_compiled(tmp_path, loss)
        loaded = load_model(path)
        assert type(loaded.loss) is type(loss)
        assert loaded.loss.get_config() == loss.get_config()
        assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0),
                                                                 rel=1e-6)
