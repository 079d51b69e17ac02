"""Model subclassing with Keras 3 semantics: ``class M(minidl.Model)`` with layers made in
``__init__`` and a ``call``, trained, evaluated, saved and compared with the equivalent
Sequential / functional models.

References: numpy forward passes written from the weights, and the compiled (execution
plan) path of the equivalent Sequential model started from the same weights.
"""
import numpy as np
import pytest

import minidl
from minidl import layers, ops
from minidl.losses import SparseCategoricalCrossentropy

pytestmark = pytest.mark.usefixtures("one_thread")


def rng(seed):
    return np.random.default_rng(seed)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sparse_ce(labels, logits):
    return float(-np.mean(log_softmax(logits.astype(np.float64))[np.arange(len(labels)),
                                                                  labels]))


# ---- models used below ----

class MLP(minidl.Model):
    """keras.io's minimal subclassed model."""

    def __init__(self, units=16, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(units, activation="relu")
        self.classifier = layers.Dense(classes)

    def call(self, x, training=None):
        return self.classifier(self.hidden(x))


class NormMLP(minidl.Model):
    """Dense -> BatchNormalization -> Dense: the training flag matters (batch statistics,
    moving averages) although ``call`` never passes it on."""

    def __init__(self):
        super().__init__()
        self.hidden = layers.Dense(8, activation="relu")
        self.norm = layers.BatchNormalization()
        self.head = layers.Dense(2)

    def call(self, x):
        return self.head(self.norm(self.hidden(x)))


class Composite(minidl.Model):
    """A subclass whose parts are a Sequential model and a functional model."""

    def __init__(self):
        super().__init__()
        self.encoder = minidl.Sequential([layers.Dense(8, activation="tanh"), layers.Dense(4)])
        inputs = minidl.Input((4,))
        hidden = layers.Dense(6, activation="relu")(inputs)
        self.head = minidl.Model(inputs, layers.Dense(2)(hidden))

    def call(self, x):
        return self.head(self.encoder(x))


class TwoInTwoOut(minidl.Model):
    """A list of two inputs, a dict of two outputs."""

    def __init__(self):
        super().__init__()
        self.left = layers.Dense(4, activation="relu")
        self.right = layers.Dense(4, activation="relu")
        self.cls = layers.Dense(3)
        self.reg = layers.Dense(1)

    def call(self, inputs):
        a, b = inputs
        h = ops.concatenate([self.left(a), self.right(b)], axis=-1)
        return {"cls": self.cls(h), "reg": self.reg(h)}


class TrainingProbe(layers.Layer):
    """Records the ``training`` value each call receives."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, x, training=None):
        self.seen.append(training)
        return x


def classification_data(n=64, features=8, classes=3, seed=0):
    r = rng(seed)
    x = r.standard_normal((n, features)).astype(np.float32)
    y = (x[:, :classes] + 0.3 * r.standard_normal((n, classes))).argmax(axis=1)
    return x, y


def mlp_forward(weights, x):
    k1, b1, k2, b2 = weights
    return np.maximum(x @ k1 + b1, 0) @ k2 + b2


# ---- 1. an MLP subclass: build, summary, fit, evaluate, predict ----

def test_build_creates_weights_and_summary_reports_them():
    minidl.utils.set_random_seed(0)
    model = MLP()
    assert not model.built and model.weights == []
    model.build((None, 8))
    assert [w.shape for w in model.weights] == [(8, 16), (16,), (16, 3), (3,)]
    assert model.count_params() == 8 * 16 + 16 + 16 * 3 + 3 == 195
    assert model.input_shape == (None, 8) and model.output_shape == (None, 3)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    # One row per layer with its output shape and parameter count, and the totals.
    assert "(None, 16)" in text and "144" in text
    assert "(None, 3)" in text and "51" in text
    assert "Total params: 195" in text and "Trainable params: 195" in text


def test_fit_evaluate_predict_agree_with_numpy():
    minidl.utils.set_random_seed(0)
    x, y = classification_data()
    model = MLP()
    model.compile(minidl.optimizers.Adam(0.02), SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0]   # it learns
    weights = model.get_weights()
    logits = mlp_forward(weights, x)
    # predict and a direct call compute the numpy forward pass of the trained weights.
    np.testing.assert_allclose(model.predict(x, batch_size=10, verbose=0), logits,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x).numpy(), logits, rtol=1e-5, atol=1e-5)
    loss, accuracy = model.evaluate(x, y, batch_size=16, verbose=0)
    assert loss == pytest.approx(sparse_ce(y, logits), rel=1e-5)
    assert accuracy == pytest.approx(np.mean(logits.argmax(axis=1) == y))


def test_save_weights_then_load_weights_gives_identical_predictions(tmp_path):
    minidl.utils.set_random_seed(0)
    x, y = classification_data()
    model = MLP()
    model.compile("adam", SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    path = str(tmp_path / "mlp.weights.h5")
    model.save_weights(path)
    restored = MLP()
    restored.build((None, 8))
    # (fresh initial weights: the comparison below can fail)
    assert not np.array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    restored.load_weights(path)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_twenty_adam_steps_match_the_equivalent_sequential():
    # The subclass trains through train_step on a tape; the Sequential through its compiled
    # execution plan. Same initial weights and batches (shuffle=False): same weights,
    # BatchNormalization's moving statistics included.
    minidl.utils.set_random_seed(5)
    r = rng(1)
    x = r.standard_normal((40, 8)).astype(np.float32)
    y = r.standard_normal((40, 2)).astype(np.float32)
    sub = NormMLP()
    sub.build((None, 8))
    seq = minidl.Sequential([minidl.Input((8,)), layers.Dense(8, activation="relu"),
                             layers.BatchNormalization(), layers.Dense(2)])
    initial = sub.get_weights()
    seq.set_weights(initial)
    histories = []
    for model in (sub, seq):
        model.compile(minidl.optimizers.Adam(0.01), "mse")
        histories.append(model.fit(x, y, batch_size=8, epochs=4, shuffle=False,
                                   verbose=0).history)
        assert model.optimizer.iterations == 20
    for name, a, b in zip(seq.weight_names, sub.get_weights(), seq.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-6)
    # ... and every weight did move (the comparison is not between initial weights).
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(sub.get_weights(), initial))


# ---- nested models as parts ----

def test_trainable_weights_cover_nested_sequential_and_functional_parts():
    minidl.utils.set_random_seed(0)
    model = Composite()
    model.build((None, 5))
    parts = model.encoder.trainable_weights + model.head.trainable_weights
    assert len(parts) == 8
    assert {id(v) for v in model.trainable_weights} == {id(v) for v in parts}
    assert model.count_params() == (5 * 8 + 8 + 8 * 4 + 4) + (4 * 6 + 6 + 6 * 2 + 2)


def test_one_sgd_step_on_nested_parts_follows_the_tape_gradient():
    # The update of every weight of both parts is -lr times the gradient a GradientTape
    # computes for the same batch: the gradients reach inside the nested models.
    minidl.utils.set_random_seed(0)
    r = rng(2)
    x = r.standard_normal((12, 5)).astype(np.float32)
    y = r.standard_normal((12, 2)).astype(np.float32)
    model = Composite()
    model.build((None, 5))
    before = [w.numpy() for w in model.trainable_weights]
    with minidl.GradientTape() as tape:
        loss = minidl.losses.MeanSquaredError()(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.abs(g).max() > 0 for g in grads)
    lr = 0.1
    model.compile(minidl.optimizers.SGD(lr), "mse")
    history = model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0).history
    assert history["loss"][0] == pytest.approx(float(loss), rel=1e-6)
    for w0, g, w in zip(before, grads, model.trainable_weights):
        np.testing.assert_allclose(w.numpy(), w0 - lr * g, rtol=1e-5, atol=1e-7,
                                   err_msg=w.path)


def test_frozen_part_is_left_out_of_training():
    minidl.utils.set_random_seed(0)
    r = rng(3)
    x = r.standard_normal((16, 5)).astype(np.float32)
    y = r.standard_normal((16, 2)).astype(np.float32)
    model = Composite()
    model.build((None, 5))
    model.encoder.trainable = False
    assert {id(v) for v in model.trainable_weights} == \
        {id(v) for v in model.head.trainable_weights}
    frozen = model.encoder.get_weights()
    head = model.head.get_weights()
    model.compile(minidl.optimizers.SGD(0.1), "mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(model.encoder.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(model.head.get_weights(), head))


# ---- several inputs, dict outputs ----

def two_input_data(n=32, seed=4):
    r = rng(seed)
    a = r.standard_normal((n, 5)).astype(np.float32)
    b = r.standard_normal((n, 3)).astype(np.float32)
    return a, b, r.integers(0, 3, n), r.standard_normal((n, 1)).astype(np.float32)


def compile_two_outputs(model):
    model.compile(minidl.optimizers.Adam(0.01),
                  loss={"cls": SparseCategoricalCrossentropy(from_logits=True), "reg": "mse"})


def test_list_inputs_and_dict_outputs_train_and_evaluate():
    minidl.utils.set_random_seed(0)
    a, b, labels, targets = two_input_data()
    model = TwoInTwoOut()
    model.build([(None, 5), (None, 3)])
    assert model.output_names == ["cls", "reg"]
    out = model([a, b])
    assert isinstance(out, dict) and out["cls"].shape == (32, 3) and out["reg"].shape == (32, 1)
    compile_two_outputs(model)
    history = model.fit([a, b], {"cls": labels, "reg": targets}, epochs=3, batch_size=8,
                        shuffle=False, verbose=0).history
    assert set(history) == {"loss", "cls_loss", "reg_loss"}
    # The total is the sum of the two outputs' losses, epoch by epoch.
    np.testing.assert_allclose(history["loss"],
                               np.add(history["cls_loss"], history["reg_loss"]), rtol=1e-6)
    result = model.evaluate([a, b], {"cls": labels, "reg": targets}, batch_size=32, verbose=0,
                            return_dict=True)
    out = model([a, b])
    cls_loss = sparse_ce(labels, out["cls"].numpy())
    reg_loss = float(np.mean((out["reg"].numpy() - targets) ** 2))
    assert result["cls_loss"] == pytest.approx(cls_loss, rel=1e-5)
    assert result["reg_loss"] == pytest.approx(reg_loss, rel=1e-5)
    assert result["loss"] == pytest.approx(cls_loss + reg_loss, rel=1e-5)


def test_fit_builds_a_multi_input_subclass_from_its_data():
    minidl.utils.set_random_seed(0)
    a, b, labels, targets = two_input_data()
    model = TwoInTwoOut()   # not built: fit builds it, as in Keras
    compile_two_outputs(model)
    model.fit([a, b], {"cls": labels, "reg": targets}, epochs=1, batch_size=8, verbose=0)
    assert model.input_shape == [(None, 5), (None, 3)]


def test_predict_of_a_multi_input_subclass():
    minidl.utils.set_random_seed(0)
    a, b, _, _ = two_input_data()
    model = TwoInTwoOut()
    model.build([(None, 5), (None, 3)])
    predicted = model.predict([a, b], batch_size=8, verbose=0)
    out = model([a, b])
    np.testing.assert_allclose(predicted[0], out["cls"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(predicted[1], out["reg"].numpy(), rtol=1e-6)


class DictInputs(minidl.Model):
    def __init__(self):
        super().__init__()
        self.left = layers.Dense(2, kernel_initializer="ones")
        self.right = layers.Dense(2, kernel_initializer="ones")

    def call(self, inputs):
        return self.left(inputs["left"]) + self.right(inputs["right"])


def test_call_on_dict_inputs():
    a = np.ones((4, 3), np.float32)
    b = np.ones((4, 5), np.float32)
    out = DictInputs()({"left": a, "right": b})
    np.testing.assert_allclose(out.numpy(), np.full((4, 2), 8.0))


# ---- the training flag ----

class Noisy(minidl.Model):
    """Dropout and BatchNormalization inside call, neither given ``training``; a nested
    Sequential holding another Dropout."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(16, kernel_initializer="ones", bias_initializer="ones")
        self.norm = layers.BatchNormalization(momentum=0.5)
        self.drop = layers.Dropout(0.5)
        self.block = minidl.Sequential([layers.Dropout(0.5)])

    def call(self, x):
        h = self.norm(self.dense(x))
        return self.drop(h), self.block(h)


def test_training_true_reaches_dropout_and_batch_normalization_inside_call():
    minidl.utils.set_random_seed(0)
    x = np.abs(rng(5).standard_normal((64, 4))).astype(np.float32)
    model = Noisy()
    model.build((None, 4))
    h = x @ np.ones((4, 16), np.float32) + 1
    mean, var = h.mean(axis=0), h.var(axis=0)
    normalized = (h - mean) / np.sqrt(var + 1e-3)   # batch statistics (gamma 1, beta 0)

    dropped, nested = (t.numpy() for t in model(x, training=True))
    # BatchNormalization used the batch statistics, and Dropout kept each value scaled by
    # 1 / (1 - rate) or zeroed it, about half of them.
    for out in (dropped, nested):
        kept = out != 0
        assert 0.4 < 1 - kept.mean() < 0.6
        np.testing.assert_allclose(out[kept], 2 * normalized[kept], rtol=1e-4, atol=1e-4)
    # The moving mean moved halfway (momentum 0.5) from 0 to the batch mean.
    np.testing.assert_allclose(model.norm.moving_mean.numpy(), 0.5 * mean, rtol=1e-5)

    # Inference: no dropout, the moving statistics.
    dropped, nested = (t.numpy() for t in model(x))
    moving = (h - model.norm.moving_mean.numpy()) / np.sqrt(
        model.norm.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(dropped, moving, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(nested, dropped)


class Probed(minidl.Model):
    def __init__(self):
        super().__init__()
        self.probe = TrainingProbe()
        self.dense = layers.Dense(1)

    def call(self, x):
        return self.dense(self.probe(x))


def test_fit_runs_call_with_training_true_and_evaluate_predict_with_false():
    minidl.utils.set_random_seed(0)
    x = rng(6).standard_normal((40, 3)).astype(np.float32)
    y = x[:, :1]
    model = Probed()
    model.build((None, 3))
    model.compile("sgd", "mse")
    model.probe.seen.clear()
    model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    assert model.probe.seen == [True, True]
    model.probe.seen.clear()
    model.evaluate(x, y, batch_size=20, verbose=0)
    model.predict(x, batch_size=20, verbose=0)
    assert model.probe.seen == [False] * 4


# ---- errors ----

def test_fit_and_evaluate_without_compile_raise():
    x = np.zeros((4, 8), np.float32)
    y = np.zeros(4)
    with pytest.raises(RuntimeError, match="compile"):
        MLP().fit(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        MLP().evaluate(x, y, verbose=0)


class ReturnsNone(minidl.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(1)

    def call(self, x):
        return {"out": self.dense(x), "oops": None}


class ReturnsString(layers.Layer):
    def call(self, x):
        return "not a tensor"


def test_call_returning_a_non_tensor_is_a_type_error_naming_the_layer():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="'odd_layer'.*str"):
        ReturnsString(name="odd_layer")(x)
    with pytest.raises(TypeError, match="'broken_model'.*NoneType"):
        ReturnsNone(name="broken_model")(x)
    # Inside a model being built by fit, too.
    model = ReturnsNone(name="broken_model_2")
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match="'broken_model_2'"):
        model.fit(x, np.zeros((2, 1), np.float32), verbose=0)


def test_variables_aliases_follow_the_models_weights():
    # Keras' train_step guide uses self.trainable_variables: on a functional model too.
    model = minidl.Sequential([minidl.Input((3,)), minidl.layers.Dense(2),
                               minidl.layers.BatchNormalization()])
    assert [id(v) for v in model.trainable_variables] == \
        [id(v) for v in model.trainable_weights]
    assert len(model.trainable_variables) == 4 and len(model.non_trainable_variables) == 2
    assert len(model.variables) == len(model.weights) == 6
