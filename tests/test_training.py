"""The training loop: gradients of a whole step against finite differences (float64), fit /
evaluate semantics, optimizers x losses, 'accuracy' resolution, determinism (seeds and thread
counts), callbacks and progress output, the MNIST reference program, and PyTorch parity."""
import io
import re

import numpy as np
import pytest

import minidl
from minidl import callbacks, losses, metrics, optimizers
from minidl.datasets import mnist
from minidl.layers import Activation, Dense, Flatten, Reshape
from minidl.models import Sequential
from minidl.utils import set_random_seed, to_categorical
from minidl._ref.gradcheck import numeric_grad



pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist_sample():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="sample")
    return ((x_train.reshape(len(x_train), 784) / 255.0, y_train),
            (x_test.reshape(len(x_test), 784) / 255.0, y_test))


def reference_mlp():
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model




def blobs(n=240, features=4, classes=3, seed=0):
    """Separable-ish classes: integer labels and float32 features."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2.0
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(np.float32), y


# ---- gradients of one training step against finite differences (float64) ----

F64 = dict(dtype="float64")

GRAD_CASES = [
    # id, layers, loss, target kind
    ("softmax+sparse_cce", lambda: [Dense(5, activation="tanh", **F64),
                                    Dense(3, activation="softmax", **F64)],
     "sparse_categorical_crossentropy", "sparse"),
    ("softmax+cce", lambda: [Dense(5, activation="relu", **F64),
                             Dense(3, activation="softmax", **F64)],
     "categorical_crossentropy", "onehot"),
    ("softmax+cce_soft_targets", lambda: [Dense(3, activation="softmax", **F64)],
     "categorical_crossentropy", "soft"),
    ("sigmoid+bce", lambda: [Dense(4, activation="elu", **F64),
                             Dense(1, activation="sigmoid", **F64)],
     "binary_crossentropy", "binary1"),
    ("sigmoid+bce_multilabel", lambda: [Dense(4, activation="silu", **F64),
                                        Dense(3, activation="sigmoid", **F64)],
     "binary_crossentropy", "binary3"),
    ("activation_layer_softmax+sparse_cce", lambda: [Dense(4, activation="gelu", **F64),
                                                     Dense(3, **F64),
                                                     Activation("softmax", **F64)],
     "sparse_categorical_crossentropy", "sparse"),
    ("logits+sparse_cce", lambda: [Dense(4, activation="selu", **F64), Dense(3, **F64)],
     losses.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    ("logits+cce", lambda: [Dense(3, activation="leaky_relu", **F64), Dense(3, **F64)],
     losses.CategoricalCrossentropy(from_logits=True), "onehot"),
    ("logits+bce", lambda: [Dense(4, activation="softplus", **F64), Dense(1, **F64)],
     losses.BinaryCrossentropy(from_logits=True), "binary1"),
    ("softmax+mse_unfused", lambda: [Dense(3, activation="softmax", **F64)], "mse", "onehot"),
    ("sigmoid+mse_unfused", lambda: [Dense(2, activation="sigmoid", **F64)], "mse", "binary2"),
    ("linear+mse_nobias", lambda: [Dense(4, activation="tanh", use_bias=False, **F64),
                                   Dense(2, **F64)], "mse", "regression"),
    ("huber", lambda: [Dense(4, activation="sigmoid", **F64), Dense(2, **F64)],
     losses.Huber(delta=0.5), "regression"),
    ("mae", lambda: [Dense(2, activation="tanh", **F64)], "mae", "regression"),
    ("reshape_flatten", lambda: [Reshape((2, 3), **F64), Flatten(**F64),
                                 Dense(4, activation="relu", **F64),
                                 Dense(3, activation="softmax", **F64)],
     "sparse_categorical_crossentropy", "sparse"),
    ("frozen_first_layer", lambda: [Dense(4, activation="tanh", trainable=False, **F64),
                                    Dense(3, activation="softmax", **F64)],
     "sparse_categorical_crossentropy", "sparse"),
]


def make_targets(kind, n, rng):
    if kind == "sparse":
        return rng.integers(0, 3, n)
    if kind == "onehot":
        return to_categorical(rng.integers(0, 3, n), 3).astype(np.float64)
    if kind == "soft":
        t = rng.random((n, 3))
        return t / t.sum(axis=1, keepdims=True)
    if kind.startswith("binary"):
        width = int(kind[-1])
        t = rng.integers(0, 2, (n, width)).astype(np.float64)
        return t[:, 0] if width == 1 else t
    return rng.standard_normal((n, 2))


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_training_step_gradients_match_finite_differences(case):
    _, make_layers, loss, target_kind = case
    rng = np.random.default_rng(42)
    n = 7
    x = rng.standard_normal((n, 6))
    y = make_targets(target_kind, n, rng)
    model = Sequential(make_layers())
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss=loss)
    model.build((None, 6))
    model.set_weights([rng.standard_normal(w.shape) * 0.7 for w in model.get_weights()])
    before = model.get_weights()

    history = model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)

    for a, b in zip(model.get_weights(), before):  # learning rate 0: nothing moved
        np.testing.assert_array_equal(a, b)

    def loss_value():
        return model.loss(y, model.predict(x, batch_size=n, verbose=0))

    assert history.history["loss"][0] == pytest.approx(loss_value(), rel=1e-12)
    checked = 0
    gradients = dict(zip((id(w.value) for w in model.trainable_weights), model._gradients()))
    for layer in model.layers:
        if not layer.trainable:
            continue
        for name, param in zip(layer.param_names, layer.params):
            grad = gradients[id(param)]
            np.testing.assert_allclose(grad, numeric_grad(loss_value, param), rtol=1e-6,
                                       atol=1e-8, err_msg=f"{layer.name}.{name}")
            checked += 1
    assert checked >= 1


def test_sgd_step_moves_weights_by_minus_lr_times_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 5))
    y = rng.integers(0, 3, 9)
    model = Sequential([Dense(4, activation="tanh", input_shape=(5,), **F64),
                        Dense(3, activation="softmax", **F64)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=9, shuffle=False, verbose=0)
    grads = [g.copy() for g in model._gradients()]
    before = model.get_weights()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.3),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=9, shuffle=False, verbose=0)
    for after, w, g in zip(model.get_weights(), before, grads):
        np.testing.assert_allclose(after, w - 0.3 * g, rtol=1e-12, atol=1e-15)


# ---- fit / evaluate semantics ----

def test_history_keys_and_lengths():
    x, y = blobs()
    xv, yv = blobs(n=60, seed=1)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=32, validation_data=(xv, yv), verbose=0)
    assert isinstance(history, callbacks.History)
    assert model.history is history
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert all(isinstance(v, float) for vs in history.history.values() for v in vs)
    assert all(0 <= v <= 1 for v in history.history["accuracy"] + history.history["val_accuracy"])
    # the last validation entry is what evaluate reports for the trained model
    val_loss, val_acc = model.evaluate(xv, yv, batch_size=32, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-12)
    assert history.history["val_accuracy"][-1] == val_acc

    history = model.fit(x, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "accuracy"]
    assert all(len(v) == 2 for v in history.history.values())


def test_history_without_metrics_and_validation_list():
    x, y = blobs(n=50)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=2, validation_data=[x[:10], y[:10]], verbose=0)
    assert list(history.history) == ["loss", "val_loss"]


def test_epochs_zero_trains_nothing():
    x, y = blobs(n=40)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {}
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_evaluate_return_forms():
    x, y = blobs(n=100)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    loss, acc = result
    as_dict = model.evaluate(x, y, verbose=0, return_dict=True)
    assert as_dict == {"loss": loss, "accuracy": acc}
    probs = model.predict(x, verbose=0)
    assert loss == pytest.approx(losses.get("sparse_categorical_crossentropy")(y, probs),
                                 rel=1e-6)
    assert acc == pytest.approx(np.mean(probs.argmax(axis=1) == y), abs=1e-12)
    # batch size changes only the summation order
    assert model.evaluate(x, y, batch_size=7, verbose=0)[0] == pytest.approx(loss, rel=1e-6)

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    single = model.evaluate(x, y, verbose=0)
    assert isinstance(single, float) and single == pytest.approx(loss, rel=1e-6)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": single}


def test_training_loss_equals_evaluate_loss_when_nothing_moves():
    x, y = blobs(n=100)
    model = Sequential([Dense(6, activation="relu", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=16, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-6)
    assert history.history["accuracy"][0] == acc


def test_loss_decreases():
    x, y = blobs(n=300)
    set_random_seed(0)
    model = Sequential([Dense(16, activation="relu", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    initial = model.evaluate(x, y, verbose=0)[0]
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    losses_seen = history.history["loss"]
    assert all(b < a for a, b in zip(losses_seen, losses_seen[1:])), losses_seen
    final, acc = model.evaluate(x, y, verbose=0)
    assert final < 0.7 * initial
    assert acc > 0.8


def test_mnist_reference_program(mnist_sample):
    (x_train, y_train), (x_test, y_test) = mnist_sample
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    set_random_seed(0)
    model = reference_mlp()
    history = model.fit(x_train, y_train, epochs=2, batch_size=32,
                        validation_data=(x_test, y_test), verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.88, (loss, accuracy)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] == accuracy


# ---- optimizers x losses ----

OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(learning_rate=0.05),
    "sgd_nesterov": lambda: optimizers.SGD(learning_rate=0.02, momentum=0.9, nesterov=True),
    "adam": lambda: optimizers.Adam(learning_rate=0.02),
    "adam_amsgrad": lambda: optimizers.Adam(learning_rate=0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(learning_rate=0.01),
    "rmsprop": lambda: optimizers.RMSprop(learning_rate=0.01),
    "rmsprop_centered": lambda: optimizers.RMSprop(learning_rate=0.005, momentum=0.5,
                                                   centered=True),
    "adagrad": lambda: optimizers.Adagrad(learning_rate=0.1),
    "nadam": lambda: optimizers.Nadam(learning_rate=0.02),
}


def problem(loss):
    """(layers, x, y) of a small problem suited to ``loss``."""
    x, labels = blobs(n=200, seed=5)
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        y = labels if loss.startswith("sparse") else to_categorical(labels, 3)
        return [Dense(8, activation="relu", input_shape=(4,)), Dense(3, activation="softmax")], x, y
    if loss == "binary_crossentropy":
        return ([Dense(8, activation="tanh", input_shape=(4,)), Dense(1, activation="sigmoid")],
                x, (labels == 0).astype(np.float32))
    rng = np.random.default_rng(6)
    y = x @ rng.standard_normal((4, 1))
    y = y / y.std() + 0.5
    return [Dense(8, activation="tanh", input_shape=(4,)), Dense(1)], x, y


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy", "mse", "mae", "huber"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_trains_with_every_loss(optimizer, loss):
    set_random_seed(1)
    layers, x, y = problem(loss)
    model = Sequential(layers)
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss=loss)
    initial = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=25, verbose=0)
    final = model.evaluate(x, y, verbose=0)
    assert np.isfinite(final) and final < 0.5 * initial, (initial, final)


# ---- 'accuracy' resolves to the metric the problem needs ----

@pytest.mark.parametrize("loss, targets, expected", [
    ("sparse_categorical_crossentropy", "sparse", metrics.SparseCategoricalAccuracy),
    ("sparse_categorical_crossentropy", "sparse_column", metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", "onehot", metrics.CategoricalAccuracy),
    ("binary_crossentropy", "binary", metrics.BinaryAccuracy),
    ("binary_crossentropy", "binary_column", metrics.BinaryAccuracy),
])
def test_accuracy_resolves_by_problem(loss, targets, expected):
    x, labels = blobs(n=120, seed=2)
    if targets.startswith("binary"):
        model = Sequential([Dense(6, activation="tanh", input_shape=(4,)),
                            Dense(1, activation="sigmoid")])
        y = (labels == 1).astype(np.int64)
    else:
        model = Sequential([Dense(6, activation="tanh", input_shape=(4,)),
                            Dense(3, activation="softmax")])
        y = to_categorical(labels, 3) if targets == "onehot" else labels
    if targets.endswith("column"):
        y = y.reshape(-1, 1)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert [m.name for m in model.metrics] == ["loss", "accuracy"]   # (Keras: loss first)
    assert type(model.metrics[1]) is expected
    assert "accuracy" in history.history
    probs = model.predict(x, verbose=0)
    if targets.startswith("binary"):
        want = np.mean((probs[:, 0] > 0.5) == (labels == 1))
    else:
        want = np.mean(probs.argmax(axis=1) == labels)
    _, acc = model.evaluate(x, y, verbose=0)
    assert acc == pytest.approx(want, abs=1e-12)


def test_named_metrics_appear_under_their_names():
    x, y = blobs(n=64)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=["acc", "mse", metrics.TopKCategoricalAccuracy(k=2)])
    history = model.fit(x, to_categorical(y, 3), epochs=1, verbose=0)
    assert list(history.history) == ["loss", "acc", "mse", "top_k_categorical_accuracy"]


# ---- determinism ----

def train_reference(x, y, seed, batch_size=32):
    set_random_seed(seed)
    model = reference_mlp()
    model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
    return model.get_weights()


def test_same_seed_gives_bit_identical_weights(mnist_sample):
    (x, y), _ = mnist_sample
    x, y = x[:1000], y[:1000]
    first = train_reference(x, y, seed=123)
    second = train_reference(x, y, seed=123)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = train_reference(x, y, seed=124)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("batch_size", [32, 640])
def test_one_and_two_threads_give_bit_identical_weights(mnist_sample, batch_size):
    (x, y), _ = mnist_sample
    x, y = x[:1280], y[:1280]
    minidl.set_num_threads(1)
    single = train_reference(x, y, seed=7, batch_size=batch_size)
    minidl.set_num_threads(2)
    assert minidl.get_num_threads() == 2
    double = train_reference(x, y, seed=7, batch_size=batch_size)
    for a, b in zip(single, double):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shuffle", [False, True])
def test_shuffling_draws_from_the_global_seed(shuffle):
    x, y = blobs(n=64)
    results = []
    for seed in (1, 2):
        set_random_seed(3)
        model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        set_random_seed(seed)  # same initial weights; only the batch order may differ
        model.fit(x, y, epochs=2, batch_size=8, shuffle=shuffle, verbose=0)
        results.append(model.get_weights())
    same = all(np.array_equal(a, b) for a, b in zip(*results))
    assert same != shuffle


# ---- callbacks ----

class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs)))

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin",))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_callback_hooks_order_and_logs():
    x, y = blobs(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    recorder = Recorder()
    model.fit(x, y, epochs=2, batch_size=8, validation_data=(x, y), callbacks=[recorder],
              verbose=0)
    assert recorder.model is model
    assert recorder.params["epochs"] == 2 and recorder.params["steps"] == 3
    batch = ["accuracy", "loss"]
    epoch = ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = [("train_begin",)]
    for e in range(2):
        expected += [("epoch_begin", e)] + [("batch_end", b, batch) for b in range(3)]
        expected += [("test_begin",), ("epoch_end", e, epoch)]
    expected.append(("train_end",))
    assert recorder.events == expected


def test_callback_can_stop_training():
    class StopAfterTwo(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    x, y = blobs(n=20)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert len(history.history["loss"]) == 2


# ---- progress output ----

def fit_output(capsys, verbose, epochs=3, validation=True):
    x, y = blobs(n=100)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    capsys.readouterr()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=verbose,
              validation_data=(x, y) if validation else None)
    return capsys.readouterr().out, model, x, y


@pytest.mark.parametrize("verbose", [1, "auto", 2])
def test_progress_is_one_line_per_epoch_when_not_a_terminal(capsys, verbose):
    out, _, _, _ = fit_output(capsys, verbose)
    assert "\r" not in out and "\033" not in out
    lines = out.splitlines()
    assert len(lines) == 6, lines
    for i in range(3):
        assert lines[2 * i] == f"Epoch {i + 1}/3"
        result = lines[2 * i + 1]
        assert result.startswith("4/4")
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert re.search(rf"(?<!\w){key}: \d+\.\d{{4}}", result), result


def test_progress_bar_line_shows_a_full_bar(capsys):
    out, _, _, _ = fit_output(capsys, 1, epochs=1, validation=False)
    result = out.splitlines()[1]
    assert "━" * 20 in result and "val_loss" not in result


def test_verbose_zero_prints_nothing(capsys):
    out, model, x, y = fit_output(capsys, 0)
    assert out == ""
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_evaluate_progress(capsys):
    _, model, x, y = fit_output(capsys, 0)
    loss, acc = model.evaluate(x, y, verbose=1)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 and "\r" not in out
    assert lines[0].startswith("4/4") and f"loss: {loss:.4f}" in lines[0]
    assert f"accuracy: {acc:.4f}" in lines[0]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_progress_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    x, y = blobs(n=100)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=32, verbose=1)
    text = terminal.getvalue()
    lines = text.split("\n")
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[4] == ""
    for line in (lines[1], lines[3]):
        assert line.startswith("\r") and "\r4/4 " in line and "loss:" in line.split("\r")[-1]


def test_progress_on_a_terminal_redraws_in_place():
    x, y = blobs(n=100)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    stream = FakeTerminal()
    logger = callbacks.ProgbarLogger(stream=stream)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[logger])
    # verbose=0 silences fit's own logger; a user's logger takes its verbosity from fit
    assert stream.getvalue() == ""
    bar = callbacks.Progbar(4, verbose=1, stream=stream, interval=0)
    for step in range(1, 5):
        bar.update(step, {"loss": 0.5})
    bar.finish({"loss": 0.25})
    text = stream.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "4/4" in text and "loss: 0.2500" in text.split("\r")[-1]


# ---- the example program ----

def test_mnist_example(capsys):
    from minidl.examples import mnist_mlp
    assert mnist_mlp.main(["--epochs", "2"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"test accuracy (\d\.\d+)", out)
    assert match, out
    assert float(match.group(1)) >= 0.88
    assert out.count("Epoch ") == 2 and "\r" not in out


def test_mnist_example_rejects_bad_arguments(capsys):
    from minidl.examples import mnist_mlp
    with pytest.raises(SystemExit) as info:
        mnist_mlp.main(["--epochs", "two"])
    assert info.value.code == 2
    assert "--epochs" in capsys.readouterr().err


# ---- PyTorch parity (optional) ----

TORCH_CASES = ["sparse_categorical_crossentropy", "categorical_crossentropy",
               "binary_crossentropy", "mse"]


@pytest.mark.parametrize("loss", TORCH_CASES)
def test_matches_pytorch(loss):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    n, features = 16, 6
    x = rng.standard_normal((n, features))
    classes = 1 if loss == "binary_crossentropy" else 3
    last = {"binary_crossentropy": "sigmoid", "mse": None}.get(loss, "softmax")
    labels = rng.integers(0, max(classes, 2), n)
    y = {"sparse_categorical_crossentropy": labels,
         "categorical_crossentropy": to_categorical(labels, 3).astype(np.float64),
         "binary_crossentropy": labels.astype(np.float64),
         "mse": rng.standard_normal((n, 3))}[loss]
    model = Sequential([Dense(8, activation="tanh", input_shape=(features,), **F64),
                        Dense(5, activation="relu", **F64),
                        Dense(classes, activation=last, **F64)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss=loss)
    weights = [rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()]
    model.set_weights(weights)

    torch_model = torch.nn.Sequential(
        torch.nn.Linear(features, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5), torch.nn.ReLU(),
        torch.nn.Linear(5, classes)).double()
    with torch.no_grad():
        for linear, (kernel, bias) in zip(torch_model[::2], zip(weights[::2], weights[1::2])):
            linear.weight.copy_(torch.from_numpy(kernel.T))
            linear.bias.copy_(torch.from_numpy(bias))
    logits = torch_model(torch.from_numpy(x))
    if loss == "sparse_categorical_crossentropy":
        value = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        probs = torch.softmax(logits, dim=1)
    elif loss == "categorical_crossentropy":
        value = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        probs = torch.softmax(logits, dim=1)
    elif loss == "binary_crossentropy":
        value = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[:, 0], torch.from_numpy(y))
        probs = torch.sigmoid(logits)
    else:
        value = torch.nn.functional.mse_loss(logits, torch.from_numpy(y))
        probs = logits
    value.backward()

    np.testing.assert_allclose(model.predict(x, verbose=0), probs.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    history = model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(value.item(), rel=1e-5)
    torch_grads = []
    for linear in torch_model[::2]:
        torch_grads += [linear.weight.grad.numpy().T, linear.bias.grad.numpy()]
    ours = model._gradients()
    for mine, theirs in zip(ours, torch_grads):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-10)
    sgd = torch.optim.SGD(torch_model.parameters(), lr=0.1)
    sgd.step()
    torch_weights = []
    for linear in torch_model[::2]:
        torch_weights += [linear.weight.detach().numpy().T, linear.bias.detach().numpy()]
    for mine, theirs in zip(model.get_weights(), torch_weights):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-10)
