"""ModelCheckpoint, and a saving process killed at random moments."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import minidl
from minidl.callbacks import ModelCheckpoint
from minidl.layers import Dense
from minidl.saving import format as format_module

minidl.set_num_threads(1)


def _fit(tmp_path, **kwargs):
    minidl.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4), dtype=np.float32), rng.integers(0, 3, 64)
    model = minidl.Sequential([Dense(8, activation="relu", input_shape=(4,)),
                               Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, verbose=0,
                        callbacks=[ModelCheckpoint(**kwargs)])
    return model, history


def test_filepath_formatting_saves_every_epoch(tmp_path):
    _, history = _fit(tmp_path, filepath=str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.minidl"))
    names = sorted(os.listdir(tmp_path))
    expected = sorted(f"m-{e + 1:02d}-{v:.2f}.minidl"
                      for e, v in enumerate(history.history["val_loss"]))
    assert names == expected
    minidl.models.load_model(tmp_path / names[-1])


def test_save_best_only_keeps_the_best_epoch(tmp_path):
    path = tmp_path / "best.minidl"
    saved = []
    orig = minidl.Sequential.save

    def spy(self, filepath):
        saved.append(filepath)
        orig(self, filepath)
    minidl.Sequential.save = spy
    try:
        _, history = _fit(tmp_path, filepath=str(path), monitor="val_accuracy",
                          save_best_only=True, mode="max")
    finally:
        minidl.Sequential.save = orig
    accs = history.history["val_accuracy"]
    improvements = sum(1 for i, a in enumerate(accs) if i == 0 or a > max(accs[:i]))
    assert len(saved) == improvements and path.exists()


def test_save_weights_only(tmp_path):
    model, _ = _fit(tmp_path, filepath=str(tmp_path / "w.minidl"), save_weights_only=True)
    clone = minidl.models.model_from_json(model.to_json())
    clone.load_weights(tmp_path / "w.minidl")
    for a, b in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_field_in_filepath(tmp_path):
    with pytest.raises(KeyError, match="val_nothing"):
        _fit(tmp_path, filepath=str(tmp_path / "{val_nothing}.minidl"))


_SAVER = """
import sys, numpy as np, minidl
from minidl.layers import Dense
minidl.set_num_threads(1)
model = minidl.Sequential([Dense(256, input_shape=(256,)), Dense(256)])
print("ready", flush=True)
i = 0
while True:
    model.layers[0].params[1][...] = i
    model.save(sys.argv[1])
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_save_never_breaks_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.minidl"
    minidl.Sequential([Dense(256, input_shape=(256,)), Dense(256)]).save(path)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root)
    rng = random.Random(7)
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], env=env,
                                 cwd=tempfile.gettempdir(), stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()
        model = minidl.models.load_model(path)
        bias = model.layers[0].params[1]
        assert (bias == bias[0]).all()
    # Each save removed what the kills before it left; the next one removes the last.
    model.save(path)
    assert os.listdir(tmp_path) == ["ckpt.minidl"]


# A child that saves, stopping in the middle of writing the weights: it says "writing" and
# waits for a line on stdin (or to be killed), then finishes the save.
_PAUSED_SAVER = """
import sys, minidl
from minidl.layers import Dense
from minidl.saving import format
write_npy = format._write_npy
def paused(member, array):
    write_npy(member, array)
    format._write_npy = write_npy   # once
    print("writing", flush=True)
    sys.stdin.readline()
format._write_npy = paused
model = minidl.Sequential([Dense(64, input_shape=(64,))])
model.layers[0].params[1][...] = 7
model.save(sys.argv[1])
"""


def _paused_saver(path):
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    child = subprocess.Popen([sys.executable, "-c", _PAUSED_SAVER, str(path)],
                             env=dict(os.environ, PYTHONPATH=package_root),
                             cwd=tempfile.gettempdir(), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"writing"
    return child


def _temporaries(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_next_save_removes_what_a_killed_save_left(tmp_path):
    path = tmp_path / "ckpt.minidl"
    child = _paused_saver(path)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdin.close()
    child.stdout.close()
    left = _temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".ckpt.minidl.{format_module._HOST}."
                                                 f"{child.pid}.")
    minidl.Sequential([Dense(2, input_shape=(3,))]).save(path)
    assert os.listdir(tmp_path) == ["ckpt.minidl"]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_save_leaves_the_temporary_of_a_live_writer_alone(tmp_path):
    path = tmp_path / "ckpt.minidl"
    child = _paused_saver(path)
    try:
        live = _temporaries(tmp_path)
        minidl.Sequential([Dense(2, input_shape=(3,))]).save(path)
        assert _temporaries(tmp_path) == live and len(live) == 1
        child.stdin.write(b"go\n")
        child.stdin.flush()
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    # The paused writer finished its save after ours: its model is the file now.
    assert os.listdir(tmp_path) == ["ckpt.minidl"]
    assert (minidl.models.load_model(path).layers[0].params[1] == 7).all()


@pytest.mark.skipif(format_module.fcntl is None, reason="POSIX file locks")
def test_only_unlocked_temporaries_of_this_host_and_target_are_removed(tmp_path):
    import fcntl
    target = tmp_path / "m.minidl"
    host = format_module._HOST
    names = {"stale": f".m.minidl.{host}.4242.abcdefgh.tmp",
             "locked": f".m.minidl.{host}.4243.ijklmnop.tmp",
             "other_host": ".m.minidl.elsewhere-42.4244.qrstuvwx.tmp",
             "old_scheme": ".m.minidl.yzabcdef.tmp",
             "other_target": f".n.minidl.{host}.4245.ghijklmn.tmp"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    holder = os.open(tmp_path / names["locked"], os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        removed = format_module.remove_stale_temporaries(target)
    finally:
        os.close(holder)
    assert removed == [str(tmp_path / names["stale"])]
    assert sorted(os.listdir(tmp_path)) == sorted(v for k, v in names.items() if k != "stale")
