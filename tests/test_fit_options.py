"""fit/evaluate/predict options and the *_on_batch calls: sample and class weights against a
numpy computation of Keras' weighted loss (values and the SGD update they cause),
validation_split, initial_epoch, steps_per_epoch, validation options, the layers' hooks
(regularization penalties, non-trainable state), summary, plot_history and bad input.

Exact equalities compare two minidl runs that must do the same arithmetic (same seed, same
batches); comparisons with numpy use float64 models.
"""
import numpy as np
import pytest

from minidl import callbacks, optimizers
from minidl.layers import Dense, Layer
from minidl.models import Sequential
from minidl.utils import plot_history, set_random_seed, to_categorical

EPS = 1e-7
F64 = dict(dtype="float64")


pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n=40, features=4, classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2.0
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, features))).astype(dtype), y


def softmax_model(loss="sparse_categorical_crossentropy", lr=0.1, metrics=("accuracy",),
                  hidden=None, seed=3, **dense):
    set_random_seed(seed)
    layers = [Dense(hidden, activation="tanh", input_shape=(4,), **dense)] if hidden else []
    layers.append(Dense(3, activation="softmax", **({} if hidden else {"input_shape": (4,)}),
                        **dense))
    model = Sequential(layers)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss=loss, metrics=list(metrics))
    return model


def numpy_scce(p, y, w=None):
    """Keras: per-sample -log(clip(p[y])), weighted, summed and divided by the batch size."""
    per_sample = -np.log(np.clip(p[np.arange(len(y)), y], EPS, 1 - EPS))
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    return float(np.sum(w * per_sample) / len(y))


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# ---- sample_weight and class_weight: the loss and the update, against numpy ----

def test_sample_weight_changes_loss_and_update_as_keras_defines_them():
    x, y = blobs(n=12, dtype=np.float64)
    w = np.random.default_rng(1).uniform(0, 3, 12)
    model = softmax_model(**F64)
    kernel, bias = model.get_weights()
    p = model.predict(x, verbose=0)
    history = model.fit(x, y, batch_size=12, shuffle=False, verbose=0, sample_weight=w)
    assert history.history["loss"][0] == pytest.approx(numpy_scce(p, y, w), rel=1e-12)
    # gradient of sum(w * L) / n with respect to the logits: (p - onehot) * w / n
    dz = (p - np.eye(3)[y]) * w[:, None] / 12
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.1 * x.T @ dz, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(new_bias, bias - 0.1 * dz.sum(0), rtol=1e-12, atol=1e-15)
    # metrics are not weighted (Keras' `metrics`, unlike `weighted_metrics`)
    acc = np.mean(np.argmax(p, 1) == y)
    assert history.history["accuracy"][0] == pytest.approx(acc)


@pytest.mark.parametrize("loss, last, targets", [
    ("mse", None, "dense"), ("binary_crossentropy", "sigmoid", "binary"),
    ("categorical_crossentropy", "softmax", "onehot")])
def test_sample_weight_other_losses(loss, last, targets):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 4))
    units = 1 if targets == "binary" else 3
    y = {"dense": rng.standard_normal((10, 3)), "binary": rng.integers(0, 2, (10, 1)),
         "onehot": to_categorical(rng.integers(0, 3, 10), 3)}[targets].astype(np.float64)
    w = rng.uniform(0, 2, 10)
    set_random_seed(4)
    model = Sequential([Dense(units, activation=last, input_shape=(4,), **F64)])
    model.compile(optimizer="sgd", loss=loss)
    p = np.clip(model.predict(x, verbose=0), EPS, 1 - EPS)
    per_sample = {"dense": lambda: np.mean((y - model.predict(x, verbose=0)) ** 2, axis=1),
                  "binary": lambda: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=1),
                  "onehot": lambda: -np.sum(y * np.log(p), axis=1)}[targets]()
    expected = np.sum(w * per_sample) / 10
    assert model.evaluate(x, y, sample_weight=w, verbose=0) == pytest.approx(expected, rel=1e-10)
    history = model.fit(x, y, batch_size=10, shuffle=False, verbose=0, sample_weight=w)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-10)


def test_class_weight_is_the_weight_of_each_sample_class():
    x, y = blobs(n=40)
    class_weight = {0: 0.5, 1: 2.0, 2: 1.0}
    a, b = softmax_model(hidden=5), softmax_model(hidden=5)
    set_random_seed(9)
    ha = a.fit(x, y, epochs=2, batch_size=8, verbose=0, class_weight=class_weight)
    set_random_seed(9)
    hb = b.fit(x, y, epochs=2, batch_size=8, verbose=0,
               sample_weight=np.array([class_weight[c] for c in y]))
    assert same_weights(a.get_weights(), b.get_weights())
    assert ha.history == hb.history


def test_class_weight_loss_against_numpy_for_sparse_onehot_and_binary_targets():
    x, y = blobs(n=12, dtype=np.float64)
    cw = {0: 3.0, 1: 0.5, 2: 1.5}
    w = np.array([cw[c] for c in y])
    for loss, targets in (("sparse_categorical_crossentropy", y),
                          ("categorical_crossentropy", to_categorical(y, 3))):
        model = softmax_model(loss=loss, **F64)
        p = model.predict(x, verbose=0)
        history = model.fit(x, targets, batch_size=12, verbose=0, class_weight=cw)
        assert history.history["loss"][0] == pytest.approx(numpy_scce(p, y, w), rel=1e-12)
    yb = (y == 1).astype(np.float64)
    set_random_seed(5)
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(4,), **F64)])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    p = np.clip(model.predict(x, verbose=0)[:, 0], EPS, 1 - EPS)
    bce = -(yb * np.log(p) + (1 - yb) * np.log(1 - p))
    loss = model.train_on_batch(x, yb, class_weight={0: 1.0, 1: 4.0})
    assert loss == pytest.approx(np.mean(np.where(yb == 1, 4.0, 1.0) * bce), rel=1e-12)


def test_evaluate_with_sample_weight():
    x, y = blobs(n=20, dtype=np.float64)
    w = np.linspace(0, 2, 20)
    model = softmax_model(**F64)
    p = model.predict(x, verbose=0)
    loss, acc = model.evaluate(x, y, sample_weight=w, batch_size=7, verbose=0)
    # batches of 7, 7, 6: each batch's weighted mean, averaged by batch size = the total
    assert loss == pytest.approx(numpy_scce(p, y, w), rel=1e-12)
    assert acc == pytest.approx(np.mean(np.argmax(p, 1) == y))
    logs = model.evaluate(x, y, sample_weight=w[:, None], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(loss, rel=1e-12)


def test_validation_data_with_sample_weights():
    x, y = blobs(n=20, dtype=np.float64)
    w = np.linspace(0, 2, 20)
    model = softmax_model(lr=0.0, **F64)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, w))
    p = model.predict(x, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(numpy_scce(p, y, w), rel=1e-12)


# ---- validation_split ----

@pytest.mark.parametrize("n, split, train", [(10, 0.2, 8), (10, 0.25, 7), (3, 0.1, 2),
                                             (2, 0.5, 1), (10, 0.05, 9)])
def test_validation_split_holds_out_the_last_samples_before_shuffling(n, split, train):
    x, y = blobs(n=n)
    a, b = softmax_model(), softmax_model()
    set_random_seed(7)
    history = a.fit(x, y, epochs=2, batch_size=4, validation_split=split, verbose=0)
    set_random_seed(7)
    b.fit(x[:train], y[:train], epochs=2, batch_size=4, verbose=0)
    # trained on exactly the first samples, shuffled the same way
    assert same_weights(a.get_weights(), b.get_weights())
    assert history.params["steps"] == -(-train // 4)
    assert history.history["val_loss"][-1] == pytest.approx(
        a.evaluate(x[train:], y[train:], verbose=0)[0], rel=1e-6)


def test_validation_split_splits_sample_weights_and_is_ignored_with_validation_data():
    x, y = blobs(n=10, dtype=np.float64)
    w = np.arange(10, dtype=np.float64)
    model = softmax_model(lr=0.0, **F64)
    history = model.fit(x, y, validation_split=0.3, sample_weight=w, verbose=0)
    p = model.predict(x, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(numpy_scce(p[7:], y[7:], w[7:]))
    assert history.history["loss"][0] == pytest.approx(numpy_scce(p[:7], y[:7], w[:7]))
    history = model.fit(x, y, validation_split=0.3, validation_data=(x[:2], y[:2]), verbose=0)
    assert history.params["steps"] == 1 and history.history["val_loss"][0] == pytest.approx(
        numpy_scce(p[:2], y[:2]))


@pytest.mark.parametrize("split", [-0.1, 1.0, 1.5, "0.2", True])
def test_validation_split_out_of_range(split):
    x, y = blobs(n=10)
    with pytest.raises(ValueError, match=rf"validation_split must be a float in \[0, 1\); "
                                         rf"received validation_split={split!r}"):
        softmax_model().fit(x, y, validation_split=split, verbose=0)


def test_validation_split_too_small_for_the_data():
    x, y = blobs(n=1)
    with pytest.raises(ValueError, match="contains 1 samples, which is not sufficient.*0.5"):
        softmax_model().fit(x, y, validation_split=0.5, verbose=0)


def test_validation_split_zero_means_no_validation():
    x, y = blobs(n=10)
    history = softmax_model().fit(x, y, validation_split=0.0, verbose=0)
    assert list(history.history) == ["loss", "accuracy"]


# ---- epochs, steps and validation options ----

def test_initial_epoch_beyond_epochs_trains_nothing():
    x, y = blobs(n=10)
    model = softmax_model()
    before = model.get_weights()
    ended = []
    history = model.fit(x, y, epochs=2, initial_epoch=2, verbose=0,
                        callbacks=[callbacks.LambdaCallback(on_train_end=ended.append)])
    assert history.epoch == [] and history.history == {} and ended == [{}]
    assert same_weights(before, model.get_weights())


def count_batches():
    counts = []
    return counts, callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: counts.append(0),
        on_train_batch_end=lambda batch, logs: counts.__setitem__(-1, counts[-1] + 1))


def test_steps_per_epoch_continues_the_pass_and_warns_when_it_runs_out():
    x, y = blobs(n=100)
    counts, counter = count_batches()
    with pytest.warns(UserWarning, match="ran out of data.*after 1 of steps_per_epoch=3") as rec:
        history = softmax_model().fit(x, y, batch_size=10, steps_per_epoch=3, epochs=5,
                                      verbose=0, callbacks=[counter])
    assert counts == [3, 3, 3, 1, 3] and len(rec) == 1
    assert history.params == {"verbose": 0, "epochs": 5, "steps": 3}


@pytest.mark.parametrize("shuffle", [False, True])
def test_steps_per_epoch_visits_the_same_batches_as_whole_epochs(shuffle):
    x, y = blobs(n=100)
    a, b = softmax_model(), softmax_model()
    set_random_seed(11)
    a.fit(x, y, batch_size=10, steps_per_epoch=5, epochs=4, shuffle=shuffle, verbose=0)
    set_random_seed(11)
    b.fit(x, y, batch_size=10, epochs=2, shuffle=shuffle, verbose=0)
    assert same_weights(a.get_weights(), b.get_weights())


def test_steps_per_epoch_beyond_the_data_and_default_batch_size():
    x, y = blobs(n=20)
    counts, counter = count_batches()
    with pytest.warns(UserWarning, match="after 2 of steps_per_epoch=5"):
        softmax_model().fit(x, y, batch_size=10, steps_per_epoch=5, epochs=2, verbose=0,
                            callbacks=[counter])
    assert counts == [2, 2]
    counts, counter = count_batches()
    # Keras: without batch_size, steps_per_epoch sets it to cover the data: ceil(20 / 3) = 7
    softmax_model().fit(x, y, steps_per_epoch=3, epochs=2, verbose=0, callbacks=[counter])
    assert counts == [3, 3]


def test_validation_batch_size_steps_and_freq():
    x, y = blobs(n=20)
    events = []
    probe = callbacks.LambdaCallback(
        on_test_begin=lambda logs: events.append([]),
        on_test_batch_end=lambda batch, logs: events[-1].append(batch))
    model = softmax_model()
    history = model.fit(x, y, epochs=4, verbose=0, validation_data=(x[:10], y[:10]),
                        validation_batch_size=3, validation_freq=2, callbacks=[probe])
    assert events == [[0, 1, 2, 3]] * 2
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    assert history._logged_at["val_loss"] == [1, 3]
    events.clear()
    history = model.fit(x, y, epochs=3, verbose=0, validation_data=(x[:10], y[:10]),
                        validation_steps=2, validation_batch_size=3, validation_freq=[1, 3],
                        callbacks=[probe])
    assert events == [[0, 1]] * 2 and history._logged_at["val_loss"] == [0, 2]


# ---- evaluate / predict steps and the *_on_batch calls ----

def test_evaluate_and_predict_steps():
    x, y = blobs(n=20)
    model = softmax_model()
    assert model.evaluate(x, y, batch_size=5, steps=2, verbose=0)[0] == pytest.approx(
        model.evaluate(x[:10], y[:10], verbose=0)[0], rel=1e-6)
    out = model.predict(x, batch_size=6, steps=2)
    assert out.shape == (12, 3)
    np.testing.assert_array_equal(out, model.predict(x[:12], batch_size=6))


def test_train_on_batch_returns_the_batch_loss_before_the_update():
    x, y = blobs(n=12, dtype=np.float64)
    model = softmax_model(**F64)
    p = model.predict(x, verbose=0)
    before = model.get_weights()
    loss, acc = model.train_on_batch(x, y)
    assert loss == pytest.approx(numpy_scce(p, y), rel=1e-12)
    assert acc == pytest.approx(np.mean(np.argmax(p, 1) == y))
    assert not same_weights(before, model.get_weights())
    # each call reports its own batch (metrics reset per call, as in current Keras)
    p = model.predict(x[:4], verbose=0)
    logs = model.train_on_batch(x[:4], y[:4], sample_weight=[1, 2, 0, 1], return_dict=True)
    assert list(logs) == ["loss", "accuracy"]
    assert logs["loss"] == pytest.approx(numpy_scce(p, y[:4], [1, 2, 0, 1]), rel=1e-12)
    no_metrics = softmax_model(metrics=())
    assert isinstance(no_metrics.train_on_batch(x, y), float)


def test_train_on_batch_matches_a_one_batch_fit():
    x, y = blobs(n=16)
    a, b = softmax_model(hidden=4), softmax_model(hidden=4)
    a.train_on_batch(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    b.fit(x, y, batch_size=16, shuffle=False, verbose=0, class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    assert same_weights(a.get_weights(), b.get_weights())


def test_test_on_batch_and_predict_on_batch():
    x, y = blobs(n=12)
    model = softmax_model()
    before = model.get_weights()
    assert model.test_on_batch(x, y) == pytest.approx(model.evaluate(x, y, verbose=0))
    w = np.linspace(0, 1, 12)
    assert model.test_on_batch(x, y, sample_weight=w, return_dict=True)["loss"] == \
        pytest.approx(model.evaluate(x, y, sample_weight=w, batch_size=12, verbose=0)[0])
    assert same_weights(before, model.get_weights())
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x, batch_size=12))


# ---- the layers' hooks: regularization penalties and non-trainable state ----

class L2Dense(Dense):
    """Dense with an L2 kernel penalty written directly against the training loop's hook."""

    has_regularization = True

    def __init__(self, units, l2=0.05, **kwargs):
        super().__init__(units, **kwargs)
        self.l2, self.calls = l2, []

    def regularization_loss(self, grads=None):
        self.calls.append(grads is not None)
        if grads is not None:
            grads[0] += 2 * self.l2 * self.kernel
        return float(self.l2 * np.sum(self.kernel ** 2))


def test_regularization_penalty_in_loss_gradient_and_evaluation():
    x, y = blobs(n=10, dtype=np.float64)
    set_random_seed(3)
    layer = L2Dense(3, activation="softmax", input_shape=(4,), **F64)
    model = Sequential([layer])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy")
    kernel, bias = model.get_weights()
    p = model.predict(x, verbose=0)
    loss = model.train_on_batch(x, y)
    assert layer.calls == [True]
    assert loss == pytest.approx(numpy_scce(p, y) + 0.05 * np.sum(kernel ** 2), rel=1e-12)
    dz = (p - np.eye(3)[y]) / 10
    np.testing.assert_allclose(model.get_weights()[0],
                               kernel - 0.1 * (x.T @ dz + 0.1 * kernel), rtol=1e-12)
    new_kernel = model.get_weights()[0]
    p = model.predict(x, verbose=0)
    expected = numpy_scce(p, y) + 0.05 * np.sum(new_kernel ** 2)
    assert model.evaluate(x, y, batch_size=3, verbose=0) == pytest.approx(expected, rel=1e-12)
    assert model.test_on_batch(x, y) == pytest.approx(expected, rel=1e-12)
    # once per evaluation batch (4 of evaluate, 1 of test_on_batch), without gradients
    assert layer.calls[1:] == [False] * 5
    history = model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0)
    assert layer.calls[6:] == [True, True] and history.history["loss"][0] > 0


def test_layers_without_regularizers_are_not_called_per_step():
    x, y = blobs(n=10)
    layer = L2Dense(3, activation="softmax", input_shape=(4,))
    layer.has_regularization = False
    model = Sequential([layer])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=5, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert layer.calls == []


def test_keras_regularizers_through_fit():
    regularizers = pytest.importorskip("minidl.regularizers")
    x, y = blobs(n=8, dtype=np.float64)
    set_random_seed(3)
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,),
                              kernel_regularizer=regularizers.L2(0.05), **F64)])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy")
    kernel = model.get_weights()[0]
    p = model.predict(x, verbose=0)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(numpy_scce(p, y) + 0.05 * np.sum(kernel ** 2), rel=1e-12)


def test_a_frozen_layer_penalty_counts_without_gradients():
    x, y = blobs(n=10)
    set_random_seed(3)
    frozen = L2Dense(4, activation="tanh", input_shape=(4,), trainable=False)
    model = Sequential([frozen, Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    kernel = frozen.kernel.copy()
    model.fit(x, y, batch_size=10, verbose=0)
    assert frozen.calls == [False] and np.array_equal(frozen.kernel, kernel)


class RunningMean(Layer):
    """Identity that tracks a moving mean of its input: non-trainable state."""

    def build(self, input_shape):
        self.moving_mean = self.add_weight(shape=input_shape, initializer="zeros", trainable=False,
                                           name="moving_mean")
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        if training:
            self.moving_mean[...] = 0.9 * self.moving_mean + 0.1 * x.mean(axis=0)
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None


def stateful_model():
    set_random_seed(3)
    model = Sequential([Dense(4, activation="tanh", input_shape=(4,), name="hidden"),
                        RunningMean(name="running"), Dense(3, activation="softmax",
                                                           name="out")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_summary_reports_trainable_and_non_trainable_counts():
    lines = []
    stateful_model().summary(print_fn=lines.append)
    row = next(line for line in lines if line.startswith("running"))
    assert "(RunningMean)" in row and "(None, 4)" in row and row.rstrip().endswith(" 4")
    text = "\n".join(lines)
    assert " Total params: 39 (156.00 B)" in text
    assert " Trainable params: 35 (140.00 B)" in text
    assert " Non-trainable params: 4 (16.00 B)" in text


def test_summary_of_the_reference_network_shows_memory():
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu"), Dense(10, activation="softmax")])
    lines = []
    model.summary(print_fn=lines.append)
    assert " Total params: 55,050 (215.04 KB)" in lines


def test_non_trainable_state_is_in_weights_and_restored_by_early_stopping():
    x, y = blobs(n=20)
    model = stateful_model()
    assert [w.shape for w in model.get_weights()] == [(4, 4), (4,), (4,), (4, 3), (3,)]
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 1
    snapshots = []
    probe = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (logs.__setitem__("val_loss", [3, 1, 2][epoch]),
                                          snapshots.append(model.get_weights())))
    model.fit(x, y, epochs=3, verbose=0,
              callbacks=[probe, callbacks.EarlyStopping(patience=5, restore_best_weights=True)])
    assert same_weights(model.get_weights(), snapshots[1])
    assert not np.array_equal(snapshots[1][2], snapshots[2][2])   # the moving mean moved


# ---- plot_history ----

def test_plot_history_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs(n=30)
    history = softmax_model().fit(x, y, epochs=4, validation_split=0.2, validation_freq=2,
                                  verbose=0, callbacks=[callbacks.ReduceLROnPlateau(
                                      monitor="loss", patience=0, min_delta=10)])
    path = plot_history(history, tmp_path / "history.png", title="blobs")
    data = (tmp_path / "history.png").read_bytes()
    assert path == str(tmp_path / "history.png") and data.startswith(b"\x89PNG") and \
        len(data) > 10_000
    plot_history({"loss": [1.0, 0.5], "val_loss": [1.2]}, tmp_path / "dict.png")
    assert (tmp_path / "dict.png").read_bytes().startswith(b"\x89PNG")


def test_plot_history_bad_input(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="no epochs"):
        plot_history(callbacks.History(), tmp_path / "empty.png")
    with pytest.raises(TypeError, match="History or its .history dict"):
        plot_history([1, 2], tmp_path / "list.png")


def test_plot_history_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'minidl\[plot\]'"):
        plot_history({"loss": [1.0]}, tmp_path / "h.png")


# ---- bad input: clear exceptions naming the problem ----

@pytest.mark.parametrize("kwargs, error, match", [
    ({"sample_weight": np.ones(9)}, ValueError, r"one weight per sample, shape \(10,\).*\(9,\)"),
    ({"sample_weight": np.ones((10, 2))}, ValueError, r"shape \(10, 2\)"),
    ({"sample_weight": np.r_[np.ones(9), np.nan]}, ValueError, r"NaN.*index 9"),
    ({"sample_weight": np.array(["a"] * 10)}, TypeError, "sample_weight must hold numbers"),
    ({"class_weight": {0: 1.0, 1: 2.0}}, ValueError, r"no weight for class\(es\) \[2\]"),
    ({"class_weight": {0: 1, 1: 1, 2: 1, 5: 1}}, ValueError, r"\[0, 3\); received key 5"),
    ({"class_weight": {0: 1, 1: 1, "2": 1}}, ValueError, "received key '2'"),
    ({"class_weight": {0: 1, 1: 1, 2: "x"}}, ValueError, r"class_weight\[2\] must be a finite"),
    ({"class_weight": [1, 2, 3]}, TypeError, "class_weight must be a dict"),
    ({"class_weight": {0: 1, 1: 1, 2: 1}, "sample_weight": np.ones(10)}, ValueError,
     "class_weight and sample_weight at the same time"),
    ({"validation_freq": 0}, ValueError, "validation_freq=0"),
    ({"validation_freq": "2"}, ValueError, "validation_freq='2'"),
    ({"validation_freq": [1.5]}, ValueError, r"validation_freq=\[1.5\]"),
    ({"initial_epoch": -1}, ValueError, "initial_epoch=-1"),
    ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch=0"),
    ({"validation_batch_size": 2.5}, ValueError, "validation_batch_size=2.5"),
    ({"validation_data": (1, 2, 3, 4)}, ValueError, "tuple of length 4"),
    ({"validation_data": (np.zeros((3, 4)), np.zeros(3), np.ones(2))}, ValueError,
     r"validation_data sample_weight must hold one weight per sample, shape \(3,\)"),
    ({"callbacks": [callbacks.History, 1]}, TypeError, "Callback instances"),
])
def test_bad_fit_arguments(kwargs, error, match):
    x, y = blobs(n=10)
    with pytest.raises(error, match=match):
        softmax_model().fit(x, y, verbose=0, **kwargs)


def test_class_weight_needs_class_labels():
    x = np.random.default_rng(0).standard_normal((6, 4))
    model = Sequential([Dense(1, input_shape=(4,))])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"non-integer values \(y\[0\] = 0.3"):
        model.fit(x, np.full(6, 0.3), class_weight={0: 1.0}, verbose=0)


def test_bad_arguments_of_the_other_calls():
    x, y = blobs(n=6)
    model = softmax_model()
    with pytest.raises(ValueError, match=r"shape \(6,\).*\(5,\)"):
        model.evaluate(x, y, sample_weight=np.ones(5), verbose=0)
    with pytest.raises(ValueError, match="steps=0"):
        model.predict(x, steps=0)
    with pytest.raises(ValueError, match=r"shape \(6,\).*\(2,\)"):
        model.train_on_batch(x, y, sample_weight=[1, 2])
    with pytest.raises(ValueError, match=r"no weight for class\(es\)"):
        model.train_on_batch(x, y, class_weight={0: 1.0})
    uncompiled = Sequential([Dense(3, input_shape=(4,))])
    for call in (lambda: uncompiled.train_on_batch(x, y), lambda: uncompiled.test_on_batch(x, y)):
        with pytest.raises(RuntimeError, match="compile"):
            call()
