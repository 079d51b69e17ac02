"""BackupAndRestore: an interrupted fit resumed bit for bit, the backup's life cycle, bad
arguments and bad backups."""
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import pytest

import minidl
from minidl.callbacks import BackupAndRestore, Callback, EarlyStopping, LambdaCallback
from minidl.layers import BatchNormalization, Dense, Dropout
from minidl.saving import InvalidModelFileError

minidl.set_num_threads(1)

FIT = dict(epochs=6, batch_size=16, shuffle=True, validation_split=0.2, verbose=0)


def _data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6), dtype=np.float32), rng.integers(0, 3, n)


def _model(seed=0, width=16, optimizer="adam"):
    # Both kinds of dropout: one draws from the global generator, one from its own.
    minidl.utils.set_random_seed(seed)
    model = minidl.Sequential([Dense(width, activation="relu", input_shape=(6,)),
                               BatchNormalization(), Dropout(0.3, seed=3),
                               Dense(8, activation="relu"), Dropout(0.2),
                               Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class Interrupted(Exception):
    pass


class Interrupt(Callback):
    """Raises at the start of epoch ``epoch``, or after its batch ``batch``."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.at, self.batch, self.epoch = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if epoch == self.at and self.batch is None:
            raise Interrupted(f"epoch {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.at and batch == self.batch:
            raise Interrupted(f"epoch {self.epoch}, batch {batch}")


def _straight(tmp_path):
    """Weights, history and optimizer step count of an uninterrupted run with a backup."""
    x, y = _data()
    model = _model()
    history = model.fit(x, y, callbacks=[BackupAndRestore(tmp_path / "straight")], **FIT)
    return model.get_weights(), history.history, model.optimizer.iterations


def _interrupt(backup, interrupt, **fit):
    x, y = _data()
    model = _model()
    with pytest.raises(Interrupted):
        model.fit(x, y, callbacks=[backup, interrupt], **{**FIT, **fit})
    assert os.path.exists(backup.backup_path)
    return model


def _assert_same_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ---- exact resume ----

def test_backups_do_not_change_training(tmp_path):
    x, y = _data()
    plain = _model()
    plain.fit(x, y, **FIT)
    weights, _, _ = _straight(tmp_path)
    _assert_same_weights(weights, plain.get_weights())
    assert not os.path.exists(tmp_path / "straight")


@pytest.mark.parametrize("batch", [None, 1], ids=["epoch_begin", "mid_epoch"])
@pytest.mark.parametrize("same_model", [True, False], ids=["same_model", "fresh_model"])
def test_resume_is_bit_exact(tmp_path, batch, same_model):
    weights, history, iterations = _straight(tmp_path)
    backup = BackupAndRestore(tmp_path / "backup")
    model = _interrupt(backup, Interrupt(3, batch))
    if not same_model:
        model = _model(seed=7)           # other initial weights, all to be overwritten
    minidl.utils.set_random_seed(999)   # the resumed run must not depend on this
    x, y = _data()
    resumed = model.fit(x, y, callbacks=[backup], **FIT)
    assert resumed.epoch == [3, 4, 5]
    _assert_same_weights(model.get_weights(), weights)
    assert model.optimizer.iterations == iterations
    for key, values in history.items():
        assert resumed.history[key] == values[3:], key
    assert not os.path.exists(backup.backup_path)


_RESUME = """
import sys, numpy as np, minidl
sys.path.insert(0, sys.argv[3])
from test_backup_and_restore import FIT, _data, _model
model = _model(seed=7)
x, y = _data()
history = model.fit(x, y, callbacks=[minidl.callbacks.BackupAndRestore(sys.argv[1])], **FIT)
assert history.epoch == [2, 3, 4, 5], history.epoch
np.savez(sys.argv[2], *model.get_weights())
"""


def test_resume_in_new_process_is_bit_exact(tmp_path):
    weights, _, _ = _straight(tmp_path)
    backup = BackupAndRestore(tmp_path / "backup")
    _interrupt(backup, Interrupt(2))
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    out = tmp_path / "resumed.npz"
    subprocess.run([sys.executable, "-c", _RESUME, backup.backup_dir, str(out),
                    os.path.dirname(os.path.abspath(__file__))],
                   check=True, env=env, cwd=tempfile.gettempdir(), timeout=120)
    with np.load(out) as resumed:
        _assert_same_weights([resumed[f"arr_{i}"] for i in range(len(resumed.files))], weights)
    assert not os.path.exists(backup.backup_path)


def test_learning_rate_set_by_a_callback_is_restored(tmp_path):
    halve = LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        halve.model.optimizer, "learning_rate", halve.model.optimizer.learning_rate / 2))
    backup = BackupAndRestore(tmp_path / "backup")
    x, y = _data()
    with pytest.raises(Interrupted):
        _model().fit(x, y, callbacks=[halve, backup, Interrupt(2)], **FIT)
    fresh = _model()
    fresh.fit(x, y, callbacks=[backup], **{**FIT, "epochs": 2})   # restores, trains nothing
    assert fresh.optimizer.learning_rate == 0.001 / 4


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_steps_per_epoch_inside_a_pass_warns_on_resume(tmp_path):
    # 64 training samples in batches of 16: 4 batches a pass, 3 an epoch; epoch 2 of an
    # uninterrupted run starts at batch 3 of a pass.
    backup = BackupAndRestore(tmp_path / "backup")
    _interrupt(backup, Interrupt(1), steps_per_epoch=3)
    x, y = _data()
    with pytest.warns(UserWarning, match="at batch 3 of a pass of 4 batches"):
        _model().fit(x, y, callbacks=[backup], **{**FIT, "steps_per_epoch": 3})


# ---- the backup's life cycle ----

def test_backup_kept_after_interruption_is_a_model_file(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup")
    model = _interrupt(backup, Interrupt(2))
    assert sorted(os.listdir(backup.backup_dir)) == ["latest.minidl"]
    with zipfile.ZipFile(backup.backup_path) as zf:
        assert json.loads(zf.read("state.json"))["epoch"] == 2
    # Interrupted at the start of epoch 2: the model is as the backup of epoch 1 left it.
    loaded = minidl.models.load_model(backup.backup_path)
    _assert_same_weights(loaded.get_weights(), model.get_weights())


def test_deletion_after_success_keeps_other_files(tmp_path):
    x, y = _data()
    backup = BackupAndRestore(tmp_path / "backup")
    _model().fit(x, y, callbacks=[backup], **FIT)
    assert not os.path.exists(tmp_path / "backup")
    os.makedirs(tmp_path / "backup")
    (tmp_path / "backup" / "notes.txt").write_text("mine")
    _model().fit(x, y, callbacks=[backup], **FIT)
    assert os.listdir(tmp_path / "backup") == ["notes.txt"]


def test_early_stopping_is_a_normal_end(tmp_path):
    x, y = _data()
    backup = BackupAndRestore(tmp_path / "backup")
    stop = LambdaCallback(on_epoch_end=lambda epoch, logs: setattr(
        stop.model, "stop_training", epoch == 1))
    history = _model().fit(x, y, callbacks=[backup, stop, EarlyStopping(patience=100)], **FIT)
    assert history.epoch == [0, 1]
    assert not os.path.exists(backup.backup_path)


def test_keep_backup_then_resume_after_the_last_epoch(tmp_path):
    x, y = _data()
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    model = _model()
    model.fit(x, y, callbacks=[backup], **FIT)
    assert os.path.exists(backup.backup_path)
    again = _model(seed=7)
    history = again.fit(x, y, callbacks=[backup], **FIT)   # every epoch is done already
    assert history.epoch == []
    _assert_same_weights(again.get_weights(), model.get_weights())
    assert os.path.exists(backup.backup_path)


def test_path_like_backup_dir_is_created(tmp_path):
    x, y = _data()
    backup = BackupAndRestore(tmp_path / "a" / "b")
    assert backup.backup_dir == str(tmp_path / "a" / "b")
    _interrupt(backup, Interrupt(1))
    assert os.path.isfile(tmp_path / "a" / "b" / "latest.minidl")


# ---- bad arguments ----

@pytest.mark.parametrize("kwargs, match", [
    (dict(backup_dir=""), "non-empty path"),
    (dict(backup_dir=None), "non-empty path"),
    (dict(backup_dir=3), "non-empty path"),
    (dict(backup_dir=b"dir"), "non-empty path"),
    (dict(backup_dir="d", save_freq=5), "every that many batches is not supported"),
    (dict(backup_dir="d", save_freq=np.int64(5)), "not supported"),
    (dict(backup_dir="d", save_freq=0), "save_freq=0"),
    (dict(backup_dir="d", save_freq="batch"), "save_freq='batch'"),
    (dict(backup_dir="d", save_freq=True), "save_freq=True"),
    (dict(backup_dir="d", save_freq=None), "save_freq=None"),
    (dict(backup_dir="d", delete_checkpoint="no"), "delete_checkpoint='no'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BackupAndRestore(**kwargs)


def test_backup_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="which is a file"):
        BackupAndRestore(tmp_path / "f")


def test_arguments_in_keras_order():
    # Keras 3: BackupAndRestore(backup_dir, save_freq, double_checkpoint, delete_checkpoint).
    backup = BackupAndRestore("d", "epoch", True, False)
    assert (backup.double_checkpoint, backup.delete_checkpoint) == (True, False)
    backup = BackupAndRestore("d")
    assert (backup.double_checkpoint, backup.delete_checkpoint) == (False, True)
    with pytest.raises(ValueError, match="double_checkpoint='yes'"):
        BackupAndRestore("d", double_checkpoint="yes")


# ---- double_checkpoint ----

def _epoch_of(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("state.json"))["epoch"]


def test_double_checkpoint_keeps_the_backup_before_the_latest(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    _interrupt(backup, Interrupt(3))
    assert sorted(os.listdir(backup.backup_dir)) == ["latest.minidl", "previous.minidl"]
    assert (_epoch_of(backup.backup_path), _epoch_of(backup.previous_backup_path)) == (3, 2)
    # Without double_checkpoint, one backup only.
    single = BackupAndRestore(tmp_path / "single")
    _interrupt(single, Interrupt(3))
    assert os.listdir(single.backup_dir) == ["latest.minidl"]


@pytest.mark.parametrize("harm", ["damaged", "missing"])
def test_double_checkpoint_resumes_from_the_previous_backup(tmp_path, harm):
    weights, history, iterations = _straight(tmp_path)
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    model = _interrupt(backup, Interrupt(3))
    if harm == "damaged":
        with open(backup.backup_path, "r+b") as f:
            f.truncate(100)
    else:   # killed between the rename of the latest backup and the write of the next
        os.remove(backup.backup_path)
    x, y = _data()
    with pytest.warns(UserWarning, match="previous.minidl"):
        resumed = model.fit(x, y, callbacks=[backup], **FIT)
    assert resumed.epoch == [2, 3, 4, 5]   # from the backup of epoch 1, one epoch earlier
    _assert_same_weights(model.get_weights(), weights)
    assert model.optimizer.iterations == iterations
    for key, values in history.items():
        assert resumed.history[key] == values[2:], key
    assert not os.path.exists(backup.backup_dir)   # both backups deleted at the end


def test_double_checkpoint_with_both_backups_damaged_refuses(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    model = _interrupt(backup, Interrupt(3))
    for path in (backup.backup_path, backup.previous_backup_path):
        with open(path, "r+b") as f:
            f.truncate(100)
    x, y = _data()
    with pytest.warns(UserWarning), \
            pytest.raises(InvalidModelFileError, match="either backup"):
        model.fit(x, y, callbacks=[backup], **FIT)
    assert sorted(os.listdir(backup.backup_dir)) == ["latest.minidl", "previous.minidl"]


def test_previous_backup_ignored_without_double_checkpoint(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup", double_checkpoint=True)
    model = _interrupt(backup, Interrupt(3))
    os.remove(backup.backup_path)
    x, y = _data()
    history = model.fit(x, y, callbacks=[BackupAndRestore(tmp_path / "backup")], **FIT)
    assert history.epoch == list(range(6))   # a fresh start: previous.minidl is not read
    assert os.listdir(backup.backup_dir) == ["previous.minidl"]   # and not deleted


# ---- bad backups: a clear error, never a silent fresh start ----

def _check_refused(backup, match):
    x, y = _data()
    model = _model(seed=7)
    weights = model.get_weights()
    minidl.utils.set_random_seed(5)
    rng_state = minidl.utils.random.global_rng().bit_generator.state
    dropout_state = model.layers[2].get_random_state()
    good = open(backup.backup_path, "rb").read()
    with pytest.raises(InvalidModelFileError, match=match) as info:
        model.fit(x, y, callbacks=[backup], **FIT)
    assert "delete it to train from the start" in str(info.value)
    # All or nothing: nothing of the model or the generators was changed, the file kept.
    _assert_same_weights(model.get_weights(), weights)
    assert minidl.utils.random.global_rng().bit_generator.state == rng_state
    assert model.layers[2].get_random_state() == dropout_state
    assert model.optimizer.iterations == 0
    assert open(backup.backup_path, "rb").read() == good


def test_damaged_backup(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup")
    _interrupt(backup, Interrupt(2))
    data = bytearray(open(backup.backup_path, "rb").read())
    data[len(data) // 2:len(data) // 2 + 8] = b"\xff" * 8
    with open(backup.backup_path, "wb") as f:
        f.write(bytes(data))
    _check_refused(backup, "latest.minidl")


def test_truncated_backup(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup")
    _interrupt(backup, Interrupt(2))
    data = open(backup.backup_path, "rb").read()
    with open(backup.backup_path, "wb") as f:
        f.write(data[:len(data) // 3])
    _check_refused(backup, "not a readable zip")


def _rewrite_state(path, change):
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    state = json.loads(members["state.json"])
    change(state)
    members["state.json"] = json.dumps(state).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("change, match", [
    (lambda state: state.pop("epoch"), "no epoch to resume from"),
    (lambda state: state.__setitem__("epoch", -1), "epoch=-1"),
    (lambda state: state.__setitem__("epoch", 2.0), "epoch=2.0"),
    (lambda state: state["layer_random_states"][2].__setitem__("uinteger", -1), "uinteger"),
    (lambda state: state.pop("layer_random_states"), "no layer_random_states"),
    # Layer 2's (good) state is set, then undone when layer 3's entry fails.
    (lambda state: state["layer_random_states"].__setitem__(3, {"bit_generator": "PCG64"}),
     r"layer_random_states\[3\].*owns no random generator"),
    (lambda state: state["random_state"].__setitem__("has_uint32", 7), "has_uint32"),
], ids=["no_epoch", "negative_epoch", "float_epoch", "layer_state", "no_layer_states",
        "later_layer_state", "global_state"])
def test_tampered_backup_state(tmp_path, change, match):
    backup = BackupAndRestore(tmp_path / "backup")
    _interrupt(backup, Interrupt(2))
    _rewrite_state(backup.backup_path, change)
    _check_refused(backup, match)


def test_saved_model_is_not_a_backup(tmp_path):
    backup = BackupAndRestore(tmp_path / "backup")
    os.makedirs(backup.backup_dir)
    x, y = _data()
    model = _model()
    model.fit(x, y, **{**FIT, "epochs": 1})
    model.save(backup.backup_path)
    _check_refused(backup, "not a backup of BackupAndRestore")


@pytest.mark.parametrize("other, match", [
    (dict(width=12), r"shape \(6, 12\)"),
    (dict(optimizer="sgd"), "saved with optimizer 'SGD'"),
], ids=["architecture", "optimizer"])
def test_backup_of_another_model(tmp_path, other, match):
    backup = BackupAndRestore(tmp_path / "backup")
    x, y = _data()
    with pytest.raises(Interrupted):
        _model(**other).fit(x, y, callbacks=[backup, Interrupt(1)], **FIT)
    _check_refused(backup, match)
