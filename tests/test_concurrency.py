"""Calls on models from several Python threads: each result equals that of the same calls
made one after another (minidl.models.concurrency), and training draws from streams that do
not depend on what other threads draw (minidl.utils.random)."""
import threading

import numpy as np
import pytest

import minidl
from minidl.callbacks import Callback
from minidl.layers import (ActivityRegularization, BatchNormalization, Dense, Dropout, Input,
                           Layer)
from minidl.models import Sequential
from minidl.models.concurrency import ModelLock
from minidl.utils import set_random_seed
from minidl.utils.random import global_rng

pytestmark = pytest.mark.usefixtures("one_thread")

FIT = dict(epochs=2, batch_size=16, verbose=0)


def _data(n=128, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, features)).astype(np.float32),
            rng.integers(0, classes, n))


def _model(extra=(), seed=1):
    """Every layer that keeps per-call state: batch statistics, dropout masks, activity
    penalties."""
    set_random_seed(seed)
    model = Sequential([Input((8,)), Dense(16, activation="relu"), BatchNormalization(),
                        *extra, Dropout(0.3), Dense(16, activity_regularizer="l2"),
                        ActivityRegularization(l1=0.01), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


class _PredictFromAnotherThread(Layer):
    """Passes its input through; in a training forward, starts ``model.predict`` in a
    second thread and gives it ``wait`` seconds to finish inside this training step. The
    step must hold the model, so the predict must not run (and disturb the step's batch
    statistics, masks and penalties) until the step ends."""

    def __init__(self, wait=0.05, **kwargs):
        super().__init__(**kwargs)
        self.wait, self.model, self.x, self.inside, self.threads = wait, None, None, 0, []

    def forward(self, ctx, x, training=False):
        if training and self.model is not None:
            done = threading.Event()
            thread = threading.Thread(target=lambda: (self.model.predict(self.x, verbose=0),
                                                      done.set()))
            thread.start()
            self.threads.append(thread)
            self.inside += done.wait(self.wait)
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        return dy


def test_predict_never_runs_inside_a_training_step():
    x, y = _data()
    plain = _model(extra=[_PredictFromAnotherThread()])
    history = plain.fit(x, y, **FIT)
    model = _model(extra=[_PredictFromAnotherThread()])
    probe = model.layers[2]
    probe.model, probe.x = model, x[:5]
    raced = model.fit(x, y, **FIT)
    for thread in probe.threads:
        thread.join()
    assert len(probe.threads) == 16 and probe.inside == 0
    assert _same(model.get_weights(), plain.get_weights())
    assert raced.history == history.history


def test_predict_in_a_loop_beside_fit_changes_nothing():
    x, y = _data()
    alone = _model()
    history = alone.fit(x, y, **FIT)
    model = _model()
    stop, outputs = threading.Event(), []

    def predict_until_stopped():
        while not stop.is_set():
            outputs.append(model.predict(x[:7], verbose=0))

    thread = threading.Thread(target=predict_until_stopped)
    thread.start()
    try:
        raced = model.fit(x, y, **FIT)
    finally:
        stop.set()
        thread.join()
    assert outputs and all(np.all(np.isfinite(out)) for out in outputs)
    assert _same(model.get_weights(), alone.get_weights())
    assert raced.history == history.history


def test_concurrent_predicts_equal_sequential_ones():
    x, _ = _data(n=300)
    model = _model()
    expected = [model.predict(x[i::3], batch_size=7, verbose=0) for i in range(3)]
    results = [None] * 3

    def run(i):
        for _ in range(10):
            results[i] = model.predict(x[i::3], batch_size=7, verbose=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_evaluate_beside_fit_waits_and_changes_nothing():
    x, y = _data()
    alone = _model()
    history = alone.fit(x, y, **FIT)
    evaluation = alone.evaluate(x, y, verbose=0)
    model = _model()
    started, results = threading.Event(), []

    class Signal(Callback):
        def on_train_batch_end(self, batch, logs=None):
            started.set()

    thread = threading.Thread(target=lambda: (started.wait(5),
                                              results.append(model.evaluate(x, y, verbose=0))))
    thread.start()
    raced = model.fit(x, y, callbacks=[Signal()], **FIT)
    thread.join()
    assert raced.history == history.history
    assert results == [evaluation]   # it ran after fit, on the trained weights


def test_evaluate_from_a_callback_of_fit_is_allowed():
    x, y = _data()
    model, seen = _model(), []

    class EvaluateEachEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.evaluate(x, y, verbose=0))
            seen.append(self.model.predict(x[:3], verbose=0))

    model.fit(x, y, callbacks=[EvaluateEachEpoch()], **FIT)
    assert len(seen) == 4


def test_training_from_inside_predict_is_refused():
    x, y = _data()
    model = _model()

    class TrainWhilePredicting(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            self.model.train_on_batch(x[:4], y[:4])

    with pytest.raises(RuntimeError, match="cannot train from inside its own inference"):
        model.predict(x, callbacks=[TrainWhilePredicting()], verbose=0)
    model.train_on_batch(x[:4], y[:4])   # the lock was released


def test_first_calls_from_two_threads_build_the_model_once():
    model = Sequential([Dense(4), Dense(2)])
    x, _ = _data()
    barrier = threading.Barrier(2)
    outputs = []

    def call():
        barrier.wait()
        outputs.append(model.predict(x, verbose=0))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(model.weights) == 4
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_model_lock_gives_waiting_training_priority():
    lock, order = ModelLock(), []
    reading, release = threading.Event(), threading.Event()

    def reader(name, hold):
        with lock.shared:
            order.append(name)
            if hold:
                reading.set()
                release.wait(5)

    def writer():
        with lock.exclusive:
            order.append("train")

    first = threading.Thread(target=reader, args=("first read", True))
    first.start()
    reading.wait(5)
    train = threading.Thread(target=writer)
    train.start()
    while not lock._writers_waiting:   # the step is queued behind the first reader
        threading.Event().wait(0.001)
    late = threading.Thread(target=reader, args=("late read", False))
    late.start()
    release.set()
    for thread in (first, train, late):
        thread.join(5)
    assert order == ["first read", "train", "late read"]


# ---- random streams of training ----

def _dropout_model(seed):
    set_random_seed(seed)
    model = Sequential([Input((8,)), Dense(16, activation="relu"), Dropout(0.5),
                        Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def test_concurrent_fits_reproduce_their_sequential_runs():
    x, y = _data()
    set_random_seed(5)
    a, b = _dropout_model(1), _dropout_model(2)
    set_random_seed(5)
    a.fit(x, y, **FIT)
    b.fit(x[::-1], y[::-1], **FIT)
    expected = [a.get_weights(), b.get_weights()]

    a, b = _dropout_model(1), _dropout_model(2)
    set_random_seed(5)
    barrier = threading.Barrier(2)

    def fit(model, xs, ys):
        barrier.wait()
        model.fit(xs, ys, **FIT)

    threads = [threading.Thread(target=fit, args=(a, x, y)),
               threading.Thread(target=fit, args=(b, x[::-1], y[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _same(a.get_weights(), expected[0])
    assert _same(b.get_weights(), expected[1])


def test_fit_leaves_the_global_generator_alone_and_fit_calls_differ():
    x, y = _data()
    fit = dict(FIT, epochs=1)
    model = _dropout_model(3)
    model.optimizer.learning_rate = 0.0   # the weights stay; only the draws differ
    before = global_rng().bit_generator.state
    first = model.fit(x, y, **fit).history["loss"]
    assert global_rng().bit_generator.state == before
    second = model.fit(x, y, **fit).history["loss"]   # a later step: other draws
    assert second != first
    twin = _dropout_model(3)
    twin.optimizer.learning_rate = 0.0
    global_rng().bit_generator.state = before
    assert twin.fit(x, y, **fit).history["loss"] == first   # same state, same step


def test_train_on_batch_draws_a_new_mask_each_call():
    x, y = _data(n=16)
    model = _dropout_model(4)
    model.optimizer.learning_rate = 0.0   # the weights stay; only the masks can differ
    losses = {model.train_on_batch(x, y) for _ in range(4)}
    assert len(losses) == 4


# ---- zero-size samples ----

@pytest.mark.parametrize("call", ["fit", "evaluate", "predict", "model", "layer", "build"])
def test_zero_size_features_are_refused(call):
    model = Sequential([Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.zeros((4, 0), np.float32), np.zeros(4, int)
    with pytest.raises(ValueError, match=r"\(0,\)|\(None, 0\)"):
        {"fit": lambda: model.fit(x, y, verbose=0),
         "evaluate": lambda: model.evaluate(x, y, verbose=0),
         "predict": lambda: model.predict(x, verbose=0),
         "model": lambda: model(x),
         "layer": lambda: Dense(3)(x),
         "build": lambda: model.build((None, 0))}[call]()
    assert not model.built and not model.weights


def test_set_and_load_weights_beside_predict_give_old_or_new_outputs(tmp_path):
    x, _ = _data(n=64)
    model = _model()
    first = model.get_weights()
    second = [w * 0.5 + 0.1 for w in first]
    model.set_weights(second)
    path = tmp_path / "second.weights.minidl"
    model.save_weights(path)
    model.set_weights(first)
    expected = [model.predict(x, verbose=0)]
    model.set_weights(second)
    expected.append(model.predict(x, verbose=0))
    stop, seen = threading.Event(), []

    def predict():
        while not stop.is_set():
            seen.append(model.predict(x, batch_size=8, verbose=0))

    thread = threading.Thread(target=predict)
    thread.start()
    try:
        for _ in range(20):
            model.set_weights(first)
            model.load_weights(path)
    finally:
        stop.set()
        thread.join()
    assert seen
    for out in seen:
        assert any(np.array_equal(out, e) for e in expected)


class _Subclassed(minidl.Model):
    """A subclassed model (trained through train_step) whose call starts, in a training
    call, a prediction in another thread and waits a little for it: the step holds the
    model, so the prediction must wait until the step's update is done."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(16, activation="relu")
        self.norm = BatchNormalization()
        self.out = Dense(3, activation="softmax")
        self.x, self.inside, self.threads = None, 0, []

    def call(self, x, training=None):
        if training and self.x is not None:
            done = threading.Event()
            thread = threading.Thread(target=lambda: (self.predict(self.x, verbose=0),
                                                      done.set()))
            thread.start()
            self.threads.append(thread)
            self.inside += done.wait(0.05)
        return self.out(self.norm(self.hidden(x)))


def test_predict_never_runs_inside_a_train_step_of_a_subclassed_model():
    x, y = _data()

    def trained(probe):
        set_random_seed(2)
        model = _Subclassed()
        model.compile("adam", "sparse_categorical_crossentropy")
        model.build((None, 8))
        if probe:
            model.x = x[:5]
        return model, model.fit(x, y, **FIT)
    plain, history = trained(False)
    model, raced = trained(True)
    for thread in model.threads:
        thread.join()
    assert len(model.threads) == 16 and model.inside == 0
    assert _same(model.get_weights(), plain.get_weights())
    assert raced.history == history.history
