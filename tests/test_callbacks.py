"""Callbacks: each one's documented Keras behaviour, the Callback base and CallbackList, History,
and the progress output they share with fit.

Monitored values are scripted (a callback ahead of the one under test writes them into the
epoch logs), so every decision is checked against a known sequence through the real fit loop.
"""
import csv
import io
import math
import re
import warnings

import numpy as np
import pytest

from minidl import callbacks, optimizers
from minidl.layers import Dense
from minidl.models import Sequential
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n=40, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2.0
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, features))).astype(np.float32), y


def small_model(lr=0.05, metrics=("accuracy",)):
    set_random_seed(1)
    model = Sequential([Dense(5, activation="tanh", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=lr),
                  loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


class Scripted(callbacks.Callback):
    """Writes ``values[epoch]`` under ``key`` into the epoch logs, and records the weights
    each epoch ends with."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key, self.weights = values, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


def run(values, *cbs, key="val_loss", epochs=None, model=None, **fit_kwargs):
    x, y = blobs()
    model = model or small_model()
    script = Scripted(values, key)
    history = model.fit(x, y, epochs=epochs or len(values), batch_size=16, verbose=0,
                        callbacks=[script, *cbs], **fit_kwargs)
    return model, history, script


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# ---- EarlyStopping ----

def test_early_stopping_keras_defaults():
    stop = callbacks.EarlyStopping()
    assert (stop.monitor, stop.min_delta, stop.patience, stop.verbose, stop.mode,
            stop.baseline, stop.restore_best_weights, stop.start_from_epoch) == \
        ("val_loss", 0, 0, 0, "auto", None, False, 0)


def test_early_stopping_patience():
    # best 4 at epoch 1; epochs 2 and 3 do not improve: patience 2 is spent at epoch 3
    _, history, _ = run([5, 4, 4.5, 4.2, 4.1, 1, 1], callbacks.EarlyStopping(patience=2))
    assert history.epoch == [0, 1, 2, 3]


def test_early_stopping_patience_zero_stops_at_the_first_non_improvement():
    stop = callbacks.EarlyStopping()
    _, history, _ = run([3, 2, 2, 1], stop)
    assert history.epoch == [0, 1, 2] and stop.stopped_epoch == 2


def test_early_stopping_min_delta():
    values = [1.0, 0.95, 0.92, 0.91]
    _, history, _ = run(values, callbacks.EarlyStopping(patience=1, min_delta=0.1))
    assert history.epoch == [0, 1]   # 0.95 is not 0.1 better than 1.0
    _, history, _ = run(values, callbacks.EarlyStopping(patience=1, min_delta=0.01))
    assert history.epoch == [0, 1, 2, 3]


def test_early_stopping_baseline():
    # Improvements that do not beat the baseline still count towards patience (Keras 3).
    values = [0.9, 0.8, 0.85, 0.7, 0.6]
    _, history, _ = run(values, callbacks.EarlyStopping(patience=2, baseline=0.5))
    assert history.epoch == [0, 1, 2]
    _, history, _ = run(values, callbacks.EarlyStopping(patience=2))
    assert history.epoch == [0, 1, 2, 3, 4]


def test_early_stopping_start_from_epoch():
    values = [1, 2, 3, 4, 5, 6]
    _, history, _ = run(values, callbacks.EarlyStopping())
    assert history.epoch == [0, 1]
    _, history, _ = run(values, callbacks.EarlyStopping(start_from_epoch=3))
    assert history.epoch == [0, 1, 2, 3, 4]   # monitoring starts at epoch 3 (value 4)


def test_early_stopping_restores_best_weights_without_stopping_early():
    stop = callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    model, history, script = run([3, 1, 2, 4], stop)
    assert history.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 0
    assert stop.best_epoch == 1
    assert same_weights(model.get_weights(), script.weights[1])
    assert not same_weights(model.get_weights(), script.weights[3])


def test_early_stopping_restores_best_weights_when_stopping():
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True, verbose=1)
    model, history, script = run([3, 1, 2, 4, 0], stop)
    assert history.epoch == [0, 1, 2, 3]
    assert same_weights(model.get_weights(), script.weights[1])


def test_early_stopping_without_restore_keeps_the_last_weights():
    model, _, script = run([3, 1, 2, 4], callbacks.EarlyStopping(patience=10))
    assert same_weights(model.get_weights(), script.weights[-1])


def test_early_stopping_messages(capsys):
    run([3, 1, 2, 4, 0], callbacks.EarlyStopping(patience=2, restore_best_weights=True,
                                                 verbose=1))
    out = capsys.readouterr().out
    assert "Epoch 4: early stopping\n" in out
    assert "Restoring model weights from the end of the best epoch: 2.\n" in out


def test_early_stopping_mode_max_and_auto_for_accuracy():
    values = [0.5, 0.7, 0.6, 0.6, 0.9]
    for mode in ("max", "auto"):
        _, history, _ = run(values, callbacks.EarlyStopping(monitor="val_accuracy", mode=mode,
                                                            patience=1), key="val_accuracy")
        assert history.epoch == [0, 1, 2], mode
    _, history, _ = run(values, callbacks.EarlyStopping(monitor="val_accuracy", mode="min",
                                                        patience=1), key="val_accuracy")
    assert history.epoch == [0, 1]


def test_early_stopping_auto_mode_needs_a_known_direction():
    with pytest.raises(ValueError, match="monitor=val_custom.*mode='max'"):
        run([1, 2], callbacks.EarlyStopping(monitor="val_custom"), key="val_custom")


def test_early_stopping_unknown_mode_warns_and_falls_back_to_auto():
    with pytest.warns(UserWarning, match="mode 'best' is unknown"):
        stop = callbacks.EarlyStopping(mode="best")
    assert stop.mode == "auto"


def test_early_stopping_unknown_monitor_warns_and_never_stops():
    stop = callbacks.EarlyStopping(monitor="val_los")
    with pytest.warns(UserWarning, match=r"`val_los` which is not available.*val_loss"):
        _, history, _ = run([1, 2, 3], stop)
    assert history.epoch == [0, 1, 2]


def test_early_stopping_instance_is_reset_between_fits():
    stop = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    run([1, 2, 3], stop)
    assert stop.stopped_epoch == 1
    _, history, _ = run([5, 4, 3], stop)
    assert history.epoch == [0, 1, 2] and stop.stopped_epoch == 0 and stop.best == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": -1}, "patience=-1"), ({"patience": 1.5}, "patience=1.5"),
    ({"min_delta": "0.1"}, "min_delta='0.1'"), ({"start_from_epoch": -2}, "start_from_epoch=-2"),
    ({"baseline": "low"}, "baseline='low'")])
def test_early_stopping_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        callbacks.EarlyStopping(**kwargs)


# ---- ReduceLROnPlateau ----

def test_reduce_lr_keras_defaults():
    cb = callbacks.ReduceLROnPlateau()
    assert (cb.monitor, cb.factor, cb.patience, cb.verbose, cb.mode, cb.min_delta,
            cb.cooldown, cb.min_lr) == ("val_loss", 0.1, 10, 0, "auto", 1e-4, 0, 0.0)


def test_reduce_lr_factor_and_patience_and_logged_rate():
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=2)
    model, history, _ = run([1.0] * 6, cb, model=small_model(lr=0.1))
    # logs carry the rate each epoch trained with; the reduction applies from the next one
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.025)


def test_reduce_lr_min_delta():
    values = [1.0, 0.99995, 0.9998, 0.999]   # an improvement of 5e-5 does not count
    model, history, _ = run(values, callbacks.ReduceLROnPlateau(patience=1),
                            model=small_model(lr=0.1))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_reduce_lr_cooldown():
    model, history, _ = run([1.0] * 7, callbacks.ReduceLROnPlateau(factor=0.5, patience=1,
                                                                    cooldown=2),
                            model=small_model(lr=0.8))
    # Keras' counting: with cooldown=2 one epoch after each reduction does not count
    assert history.history["learning_rate"] == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1])
    model, history, _ = run([1.0] * 4, callbacks.ReduceLROnPlateau(factor=0.5, patience=1),
                            model=small_model(lr=0.8))
    assert history.history["learning_rate"] == pytest.approx([0.8, 0.8, 0.4, 0.2])


def test_reduce_lr_min_lr():
    model, history, _ = run([1.0] * 6, callbacks.ReduceLROnPlateau(patience=1, min_lr=0.005),
                            model=small_model(lr=0.1))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01, 0.005, 0.005,
                                                              0.005])
    assert model.optimizer.learning_rate == 0.005


def test_reduce_lr_auto_mode_maximises_accuracy():
    values = [0.5, 0.6, 0.6, 0.6]
    _, history, _ = run(values, callbacks.ReduceLROnPlateau(monitor="val_accuracy",
                                                            patience=1),
                        key="val_accuracy", model=small_model(lr=0.1))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.01])


def test_reduce_lr_verbose_message(capsys):
    run([1.0] * 2, callbacks.ReduceLROnPlateau(patience=1, factor=0.5, verbose=1),
        model=small_model(lr=0.1))
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n" in \
        capsys.readouterr().out


def test_reduce_lr_bad_factor_and_unknown_monitor():
    with pytest.raises(ValueError, match="factor >= 1.0. Received factor=1.5"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    with pytest.warns(UserWarning, match="`val_acc` which is not available"):
        _, history, _ = run([1.0, 1.0], callbacks.ReduceLROnPlateau(monitor="val_acc",
                                                                    patience=0))
    assert history.history["learning_rate"] == pytest.approx([0.05, 0.05])


def test_history_has_no_learning_rate_without_a_schedule_callback():
    _, history, _ = run([1.0, 1.0])
    assert "learning_rate" not in history.history


# ---- LearningRateScheduler ----

def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return 0.1 / (epoch + 1)

    model, history, _ = run([1.0] * 3, callbacks.LearningRateScheduler(schedule),
                            model=small_model(lr=0.5))
    assert seen == [(0, 0.5), (1, 0.1), (2, pytest.approx(0.05))]
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_learning_rate_scheduler_drives_the_update():
    # With lr 0 from the schedule, an SGD epoch leaves the weights unchanged.
    x, y = blobs()
    model = small_model()
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.0)])
    assert same_weights(before, model.get_weights())


def test_learning_rate_scheduler_one_argument_schedule_initial_epoch_and_verbose(capsys):
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=3, initial_epoch=1, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01 * epoch, verbose=1)])
    out = capsys.readouterr().out
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.01.\n" in out
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.02.\n" in out


def test_learning_rate_scheduler_bad_schedule():
    with pytest.raises(TypeError, match="callable"):
        callbacks.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="should be a float. Got: 'fast'"):
        run([1.0], callbacks.LearningRateScheduler(lambda epoch, lr: "fast"))


# ---- CSVLogger ----

def read_csv(path, separator=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=separator))


def test_csv_logger_columns_and_rows(tmp_path):
    path = tmp_path / "log.csv"
    x, y = blobs()
    model = small_model()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x, y),
                        callbacks=[callbacks.CSVLogger(path)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for row, epoch in zip(rows[1:], range(3)):
        for column, value in zip(rows[0][1:], row[1:]):
            assert float(value) == history.history[column][epoch]
    assert "\r" not in path.read_text()


def test_csv_logger_append_continues_without_a_second_header(tmp_path):
    path = tmp_path / "log.csv"
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss"]
    assert [row[0] for row in rows] == ["epoch", "0", "1", "2", "3"]
    # append=False starts over
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path)])
    assert [row[0] for row in read_csv(path)] == ["epoch", "0"]


def test_csv_logger_append_keeps_the_file_columns(tmp_path):
    path = tmp_path / "log.csv"
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y),
              callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=2, initial_epoch=1, verbose=0,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[2][0] == "1" and rows[2][3:] == ["NA", "NA"] and len(rows) == 3


def test_csv_logger_append_to_a_missing_file_writes_the_header(tmp_path):
    path = tmp_path / "new.csv"
    x, y = blobs()
    small_model().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path,
                                                                                append=True)])
    assert read_csv(path)[0] == ["epoch", "accuracy", "loss"]


def test_csv_logger_separator_and_validation_freq(tmp_path):
    path = tmp_path / "log.tsv"
    x, y = blobs()
    small_model().fit(x, y, epochs=3, verbose=0, validation_data=(x, y), validation_freq=2,
                      callbacks=[callbacks.CSVLogger(path, separator="\t")])
    rows = read_csv(path, "\t")
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert rows[1][3:] == ["NA", "NA"] and rows[3][3:] == ["NA", "NA"]
    assert all(float(v) >= 0 for v in rows[2][3:])
    with pytest.raises(ValueError, match="separator=';;'"):
        callbacks.CSVLogger(path, separator=";;")


def test_csv_logger_records_learning_rate_after_reduce_lr(tmp_path):
    path = tmp_path / "log.csv"
    run([1.0, 1.0, 1.0], callbacks.ReduceLROnPlateau(patience=1, factor=0.5),
        callbacks.CSVLogger(path), model=small_model(lr=0.1))
    rows = read_csv(path)
    column = rows[0].index("learning_rate")
    assert [float(row[column]) for row in rows[1:]] == pytest.approx([0.1, 0.1, 0.05])


# ---- TerminateOnNaN and non-finite losses ----

def diverging_model():
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e30), loss="mse")
    return model, np.full((8, 2), 1e15, np.float32), np.ones(8)


def test_terminate_on_nan_stops_at_the_first_bad_batch(capsys):
    model, x, y = diverging_model()
    batches, ended = [], []
    probe = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: batches.append(b),
                                     on_train_end=lambda logs: ended.append(dict(logs)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a stopped run does not also warn
        history = model.fit(x, y, epochs=5, batch_size=2, verbose=0,
                            validation_data=(x, y),
                            callbacks=[callbacks.TerminateOnNaN(), probe])
    # batch 0 overflows the weights; batch 1's loss is inf: training stops there, cleanly
    assert batches == [0, 1] and history.epoch == [0]
    assert not math.isfinite(history.history["loss"][0])
    assert ended and "val_loss" in ended[0]
    assert "Batch 1: Invalid loss, terminating training\n" in capsys.readouterr().out


def test_terminate_on_nan_raise_error():
    model, x, y = diverging_model()
    ended = []
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        model.fit(x, y, epochs=5, batch_size=2, verbose=0,
                  callbacks=[callbacks.TerminateOnNaN(raise_error=True),
                             callbacks.LambdaCallback(on_train_end=ended.append)])
    assert ended == []


def test_without_terminate_on_nan_training_goes_on_with_one_warning():
    model, x, y = diverging_model()
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN") as record:
        history = model.fit(x, y, epochs=3, batch_size=2, verbose=0, validation_data=(x, y))
    assert sum(w.category is RuntimeWarning for w in record) == 1
    assert history.epoch == [0, 1, 2]
    assert all(not math.isfinite(v) for v in history.history["val_loss"])
    assert math.isnan(model.evaluate(x, y, verbose=0))


# ---- LambdaCallback ----

def test_lambda_callback_hook_order():
    events = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(("epoch_begin", epoch)),
        on_train_batch_begin=lambda batch, logs: events.append(("batch_begin", batch)),
        on_train_batch_end=lambda batch, logs: events.append(("batch_end", batch)),
        on_test_begin=lambda logs: events.append("test_begin"),
        on_test_batch_end=lambda batch, logs: events.append(("test_batch_end", batch)),
        on_test_end=lambda logs: events.append("test_end"),
        on_epoch_end=lambda epoch, logs: events.append(("epoch_end", epoch, sorted(logs))),
        on_train_end=lambda logs: events.append("train_end"))
    x, y = blobs(n=20)
    model = small_model()
    model.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, validation_data=(x[:10], y[:10]),
              validation_batch_size=5, verbose=0, callbacks=[cb])
    expected = ["train_begin"]
    for epoch in (1, 2):
        expected += [("epoch_begin", epoch)]
        for batch in range(3):
            expected += [("batch_begin", batch), ("batch_end", batch)]
        expected += ["test_begin", ("test_batch_end", 0), ("test_batch_end", 1), "test_end",
                     ("epoch_end", epoch, ["accuracy", "loss", "val_accuracy", "val_loss"])]
    expected.append("train_end")
    assert events == expected


def test_lambda_callback_evaluate_and_predict_hooks_and_alias():
    events = []
    cb = callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: events.append(("batch_end", batch)),
        on_test_begin=lambda logs: events.append("test_begin"),
        on_predict_batch_end=lambda batch, logs: events.append(("predict", batch,
                                                                 logs["outputs"].shape)),
        on_predict_end=lambda logs: events.append("predict_end"))
    x, y = blobs(n=10)
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=5, verbose=0, callbacks=[cb])
    model.evaluate(x, y, verbose=0, callbacks=[cb])
    model.predict(x, batch_size=6, callbacks=[cb])
    assert events == [("batch_end", 0), ("batch_end", 1), "test_begin",
                      ("predict", 0, (6, 3)), ("predict", 1, (4, 3)), "predict_end"]


def test_lambda_callback_bad_arguments():
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_finish'"):
        callbacks.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="on_epoch_end must be callable"):
        callbacks.LambdaCallback(on_epoch_end=3)


# ---- the Callback base, CallbackList and History ----

def test_callback_base_model_params_and_batch_stop():
    class StopAtBatch(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):   # the Keras alias reaches fit too
            self.seen = getattr(self, "seen", 0) + 1
            if batch == 2:
                self.model.stop_training = True

    x, y = blobs(n=40)
    model = small_model()
    stopper = StopAtBatch()
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[stopper])
    assert stopper.model is model and stopper.seen == 3
    assert stopper.params == {"verbose": 0, "epochs": 4, "steps": 5}
    assert history.epoch == [0]


def test_callback_list_resolves_hooks_once():
    cbs = callbacks.CallbackList([callbacks.EarlyStopping(), callbacks.CSVLogger("unused.csv")],
                                 add_history=True, verbose=0, epochs=1, steps=1)
    assert not cbs.wants("on_train_batch_end") and not cbs.wants("on_train_batch_begin")
    assert cbs.wants("on_epoch_end") and cbs.wants("on_train_begin")
    assert isinstance(cbs.history, callbacks.History) and cbs.callbacks[-1] is cbs.history
    assert cbs.wants("on_train_batch_end") is False
    cbs.append(callbacks.TerminateOnNaN())
    assert cbs.wants("on_train_batch_end")
    with pytest.raises(TypeError, match="Callback instances.*print"):
        callbacks.CallbackList([print])


def test_fit_order_user_callbacks_then_history_then_progbar(capsys):
    x, y = blobs(n=16)
    model = small_model()
    user = callbacks.Callback()
    seen = []
    model.fit(x, y, epochs=1, verbose=1, callbacks=[user, callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(model.history))])
    # a History is attached before training starts; the progbar ran after it
    assert isinstance(seen[0], callbacks.History)
    assert capsys.readouterr().out.startswith("Epoch 1/1\n")


def test_history_params_epoch_and_a_user_history():
    x, y = blobs(n=40)
    model = small_model()
    history = model.fit(x, y, epochs=5, initial_epoch=2, batch_size=10, verbose=0)
    assert history.params == {"verbose": 0, "epochs": 5, "steps": 4}
    assert history.epoch == [2, 3, 4] and len(history.history["loss"]) == 3
    assert model.history is history
    mine = callbacks.History()
    returned = model.fit(x, y, epochs=2, verbose=0, callbacks=[mine])
    assert returned is mine and mine.epoch == [0, 1]


# ---- progress output ----

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_with_validation_split_and_callbacks_is_clean_in_a_log(capsys):
    x, y = blobs(n=50)
    model = small_model()
    capsys.readouterr()
    # min_delta=10: every epoch after the first is a plateau, so the rate drops each time
    model.fit(x, y, epochs=4, initial_epoch=1, batch_size=8, validation_split=0.2, verbose=1,
              callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=0, verbose=1,
                                                     min_delta=10),
                         callbacks.EarlyStopping(monitor="val_loss", patience=5, verbose=1,
                                                 restore_best_weights=True)])
    out = capsys.readouterr().out
    assert "\r" not in out and "\033" not in out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("Epoch ")] == [
        "Epoch 2/4", "Epoch 3/4", "Epoch 3: ReduceLROnPlateau reducing learning rate to "
        "0.005000000000000001.", "Epoch 4/4", "Epoch 4: ReduceLROnPlateau reducing learning "
        "rate to 0.0005000000000000001."]
    bars = [line for line in lines if line.startswith("5/5 ")]   # 40 training samples / 8
    assert len(bars) == 3
    for line in bars:
        assert "━" * 20 in line
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
            assert re.search(rf"(?<!\w){key}: \d", line), line
    assert lines[-1].startswith("Restoring model weights from the end of the best epoch")
    assert len(lines) == 3 + 2 + 3 + 1


def test_callback_messages_on_a_terminal_start_on_their_own_line(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    x, y = blobs(n=32)
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=1,
              callbacks=[callbacks.ReduceLROnPlateau(monitor="loss", patience=0, verbose=1,
                                                     min_delta=10)])
    text = terminal.getvalue()
    # the bar is drawn in place; the message ends its line first, the bar then finishes below
    assert "\033[K\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.005" in text
    assert text.endswith("learning_rate: 0.0500\n")
    for line in text.split("\n"):
        assert not ("ReduceLROnPlateau" in line and "━" in line), line


def test_progress_steps_per_epoch_and_verbose_two(capsys):
    x, y = blobs(n=40)
    model = small_model()
    capsys.readouterr()
    model.fit(x, y, epochs=2, batch_size=4, steps_per_epoch=3, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("3/3 - ")
    assert lines[2] == "Epoch 2/2" and lines[3].startswith("3/3 - ") and len(lines) == 4
