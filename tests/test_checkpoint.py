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
