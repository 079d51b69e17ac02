"""ModelCheckpoint's Keras 3 features beyond per-epoch saving: save_freq in batches, missing
folders, initial_value_threshold, and filepath format errors.

Monitored values are scripted (a callback ahead of the checkpoint writes them into the logs),
so every save decision is checked against a known sequence through the real fit loop.
"""
import math
import os

import numpy as np
import pytest

import minidl
from minidl.callbacks import CallbackList, LambdaCallback, ModelCheckpoint
from minidl.layers import Dense
from minidl.models import Sequential, load_model, model_from_json
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")

BATCH, N = 16, 48
STEPS = N // BATCH   # batches per epoch


def small_model():
    set_random_seed(0)
    model = Sequential([Dense(5, activation="tanh", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, *cbs, epochs=3, validation=False):
    rng = np.random.default_rng(0)
    n = N + (16 if validation else 0)
    x, y = rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n)
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     validation_split=16 / n if validation else 0.0, callbacks=list(cbs))


def script(values, key="val_score"):
    """A callback writing ``values[epoch]`` into the epoch's logs as ``key``."""
    def write(epoch, logs):
        logs[key] = values[epoch]
    return LambdaCallback(on_epoch_end=write)


def saves_of(model):
    """Record the paths ``model.save`` is called with (the file is still written)."""
    saved = []
    save = model.save

    def spy(filepath):
        saved.append(os.fspath(filepath))
        save(filepath)
    model.save = spy
    return saved


# ---- save_freq in batches ----

def test_save_freq_counts_batches_across_epochs(tmp_path):
    model = small_model()
    batch_logs, weights = [], []

    def record(batch, logs):
        batch_logs.append(dict(logs))
        weights.append(model.get_weights())
    pattern = tmp_path / "ck" / "{epoch:02d}-{batch:02d}-{loss:.4f}.minidl"
    checkpoint = ModelCheckpoint(str(pattern), save_freq=2)
    fit(model, checkpoint, LambdaCallback(on_train_batch_end=record), epochs=3)
    # 9 batches: saves after global batches 2, 4, 6, 8; none at the ends of epochs.
    expected = []
    for global_batch in (2, 4, 6, 8):
        epoch, batch = divmod(global_batch - 1, STEPS)
        loss = batch_logs[global_batch - 1]["loss"]
        expected.append(f"{epoch + 1:02d}-{batch + 1:02d}-{loss:.4f}.minidl")
    assert sorted(os.listdir(tmp_path / "ck")) == sorted(expected)
    restored = load_model(tmp_path / "ck" / expected[-1])
    for a, b in zip(restored.get_weights(), weights[8 - 1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("save_freq, count", [(1, 6), (4, 1), (5, 1), (7, 0)])
def test_save_freq_number_of_saves(tmp_path, save_freq, count):
    model = small_model()
    saved = saves_of(model)
    fit(model, ModelCheckpoint(str(tmp_path / "m.minidl"), save_freq=save_freq), epochs=2)
    assert len(saved) == count and os.path.exists(tmp_path / "m.minidl") == (count > 0)


def test_save_freq_count_carries_over_to_the_next_fit(tmp_path):
    # Keras counts the batches over the callback's life, not per fit.
    model = small_model()
    checkpoint = ModelCheckpoint(str(tmp_path / "{epoch}-{batch}.minidl"), save_freq=2)
    fit(model, checkpoint, epochs=1)
    fit(model, checkpoint, epochs=1)
    assert sorted(os.listdir(tmp_path)) == ["1-1.minidl", "1-2.minidl", "1-3.minidl"]


def test_save_freq_with_save_best_only_on_a_batch_metric(tmp_path):
    model = small_model()
    losses = []
    saved = saves_of(model)
    fit(model, LambdaCallback(on_train_batch_end=lambda b, logs: losses.append(logs["loss"])),
        ModelCheckpoint(str(tmp_path / "best.minidl"), monitor="loss", save_best_only=True,
                        save_freq=1), epochs=2)
    improvements = [i for i, v in enumerate(losses) if v < min(losses[:i], default=math.inf)]
    assert len(saved) == len(improvements) >= 1


def test_only_batch_saving_adds_a_batch_hook(tmp_path):
    assert not CallbackList([ModelCheckpoint(str(tmp_path / "m"))]).wants("on_train_batch_end")
    assert CallbackList([ModelCheckpoint(str(tmp_path / "m"), save_freq=3)]).wants(
        "on_train_batch_end")


# ---- folders ----

@pytest.mark.parametrize("weights_only", [False, True])
def test_missing_nested_folders_are_created(tmp_path, weights_only):
    model = small_model()
    pattern = tmp_path / "a" / "b" / "c" / "e{epoch}" / "m.minidl"
    fit(model, ModelCheckpoint(pattern, save_weights_only=weights_only), epochs=2)
    for epoch in (1, 2):
        assert (tmp_path / "a" / "b" / "c" / f"e{epoch}" / "m.minidl").is_file()
    last = tmp_path / "a" / "b" / "c" / "e2" / "m.minidl"
    if weights_only:
        restored = model_from_json(model.to_json())
        restored.load_weights(last)
    else:
        restored = load_model(last)
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_filepath_that_is_a_directory(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(IsADirectoryError, match="existing directory"):
        fit(small_model(), ModelCheckpoint(tmp_path / "taken"), epochs=1)


# ---- save_best_only, mode and initial_value_threshold ----

@pytest.mark.parametrize("mode, values, threshold, saved_epochs", [
    ("min", [0.5, 0.4, 0.45, 0.3], None, [1, 2, 4]),
    ("min", [0.5, 0.4, 0.45, 0.3], 0.42, [2, 4]),        # the first save must beat 0.42
    ("min", [0.5, 0.4, 0.45, 0.3], 0.1, []),              # never beaten: never saved
    ("min", [0.5, 0.4, 0.45, 0.3], 0.4, [4]),             # equal is no improvement
    ("max", [0.5, 0.4, 0.6, 0.55], None, [1, 3]),
    ("max", [0.5, 0.4, 0.6, 0.55], 0.58, [3]),
    ("max", [0.5, 0.4, 0.6, 0.55], 0.9, []),
    ("min", [math.nan, 0.4, math.nan, 0.3], None, [2, 4]),  # a NaN never improves
])
def test_save_best_only_and_initial_value_threshold(tmp_path, mode, values, threshold,
                                                     saved_epochs):
    model = small_model()
    saved = saves_of(model)
    fit(model, script(values), ModelCheckpoint(str(tmp_path / "best-{epoch}.minidl"),
                                               monitor="val_score", mode=mode,
                                               save_best_only=True,
                                               initial_value_threshold=threshold),
        epochs=len(values))
    assert saved == [str(tmp_path / f"best-{e}.minidl") for e in saved_epochs]


def test_threshold_is_ignored_without_save_best_only(tmp_path):
    model = small_model()
    saved = saves_of(model)
    fit(model, script([0.5, 0.4]), ModelCheckpoint(str(tmp_path / "m{epoch}.minidl"),
                                                   monitor="val_score", mode="min",
                                                   initial_value_threshold=0.0), epochs=2)
    assert len(saved) == 2


def test_auto_mode_from_the_metric(tmp_path):
    # 'val_accuracy' is maximised, 'val_loss' minimised, as Keras infers.
    model = small_model()
    history = fit(model, ModelCheckpoint(str(tmp_path / "acc-{epoch}.minidl"),
                                         monitor="val_accuracy", save_best_only=True),
                  ModelCheckpoint(str(tmp_path / "loss-{epoch}.minidl"),
                                  save_best_only=True), epochs=4, validation=True).history
    for key, prefix, better in (("val_accuracy", "acc", np.greater),
                                ("val_loss", "loss", np.less)):
        values = history[key]
        expected = [i + 1 for i, v in enumerate(values)
                    if all(better(v, w) for w in values[:i])]
        assert sorted(n for n in os.listdir(tmp_path) if n.startswith(prefix + "-")) == sorted(
            f"{prefix}-{e}.minidl" for e in expected)


def test_unknown_direction_needs_a_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='max' or mode='min'"):
        fit(small_model(), script([1.0]), ModelCheckpoint(str(tmp_path / "m"),
                                                          monitor="val_score",
                                                          save_best_only=True), epochs=1)


def test_missing_monitor_warns_and_saves_as_keras(tmp_path):
    model = small_model()
    saved = saves_of(model)
    with pytest.warns(UserWarning, match="Can save best model only with val_nothing"):
        fit(model, ModelCheckpoint(str(tmp_path / "m.minidl"), monitor="val_nothing",
                                   mode="min", save_best_only=True), epochs=2)
    assert len(saved) == 2


def test_verbose_messages(tmp_path, capsys):
    fit(small_model(), script([0.5, 0.6]),
        ModelCheckpoint(str(tmp_path / "m.minidl"), monitor="val_score", mode="min",
                        save_best_only=True, verbose=1), epochs=2)
    out = capsys.readouterr().out
    assert "Epoch 1: val_score improved from inf to 0.50000, saving model to" in out
    assert "Epoch 2: val_score did not improve from 0.50000" in out


# ---- filepath formatting ----

def test_missing_log_key_names_the_key(tmp_path):
    with pytest.raises(KeyError, match="'val_loss'.*not in the epoch's logs"):
        fit(small_model(), ModelCheckpoint(str(tmp_path / "{val_loss:.2f}.minidl")),
            epochs=1)


def test_batch_field_needs_an_int_save_freq(tmp_path):
    with pytest.raises(KeyError, match="int save_freq"):
        fit(small_model(), ModelCheckpoint(str(tmp_path / "{epoch}-{batch}.minidl")),
            epochs=1)


def test_val_field_at_a_batch_save_names_the_batch_logs(tmp_path):
    with pytest.raises(KeyError, match="'val_loss'.*not in the batch's logs"):
        fit(small_model(), ModelCheckpoint(str(tmp_path / "{val_loss}.minidl"), save_freq=1),
            epochs=1, validation=True)


def test_bad_format_spec_at_save(tmp_path):
    with pytest.raises(ValueError, match=r"\{loss:d\}.*cannot be formatted"):
        fit(small_model(), ModelCheckpoint(str(tmp_path / "{loss:d}.minidl")), epochs=1)


@pytest.mark.parametrize("filepath, match", [
    ("ck{.minidl", "not a valid format string"),
    ("ck}.minidl", "not a valid format string"),
    ("ck-{}.minidl", "positional field"),
    ("ck-{0:02d}.minidl", "positional field"),
])
def test_broken_format_fails_at_construction(tmp_path, filepath, match):
    with pytest.raises(ValueError, match=match):
        ModelCheckpoint(str(tmp_path / filepath))


def test_literal_braces(tmp_path):
    fit(small_model(), ModelCheckpoint(str(tmp_path / "{{run}}-{epoch}.minidl")), epochs=1)
    assert os.listdir(tmp_path) == ["{run}-1.minidl"]


@pytest.mark.parametrize("kwargs, name", [
    (dict(save_freq=0), "save_freq"),
    (dict(save_freq=-3), "save_freq"),
    (dict(save_freq="batch"), "save_freq"),
    (dict(save_freq=2.0), "save_freq"),
    (dict(save_freq=True), "save_freq"),
    (dict(initial_value_threshold="low"), "initial_value_threshold"),
    (dict(initial_value_threshold=math.nan), "initial_value_threshold"),
    (dict(monitor=None), "monitor"),
    (dict(filepath=""), "filepath"),
    (dict(filepath=None), "filepath"),
])
def test_bad_arguments(tmp_path, kwargs, name):
    kwargs.setdefault("filepath", str(tmp_path / "m.minidl"))
    with pytest.raises(ValueError, match=name) as info:
        ModelCheckpoint(**kwargs)
    assert repr(kwargs[name]) in str(info.value)


def test_unknown_mode_warns_and_falls_back_to_auto(tmp_path):
    with pytest.warns(UserWarning, match="fallback to auto mode"):
        checkpoint = ModelCheckpoint(str(tmp_path / "m"), mode="largest")
    assert checkpoint.mode == "auto"


def test_exported():
    assert minidl.callbacks.ModelCheckpoint is ModelCheckpoint
