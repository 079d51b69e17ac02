"""Model files: round trips, exact resume in a new process, atomic writes, and bad files."""
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import minidl
from minidl.layers import BatchNormalization, Dense, Dropout, Layer
from minidl.saving import FORMAT_VERSION, InvalidModelFileError, register_serializable
from minidl.saving import format as format_module

import zip_surgery

minidl.set_num_threads(1)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4), dtype=np.float32), rng.integers(0, 3, n)


def _model(seed=0, optimizer="adam", dropout_seed=None):
    minidl.utils.set_random_seed(seed)
    model = minidl.Sequential([Dense(8, activation="relu", input_shape=(4,)),
                               BatchNormalization(),
                               Dropout(0.2) if dropout_seed is None
                               else Dropout(0.3, seed=dropout_seed),
                               Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture
def saved(tmp_path):
    """A trained model and the path it was saved to."""
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.minidl"
    model.save(path)
    return model, path


def _rewrite(src, dst, drop=(), replace=None, add=None):
    """Copy the archive ``src`` to ``dst`` without ``drop``, with members replaced/added."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(name, replace.get(name, zin.read(name)))
        for name, data in add.items():
            zout.writestr(name, data)
    return dst


def _npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


# ---- round trips ----

def test_load_model_predicts_bit_for_bit_and_keeps_compile_state(saved):
    model, path = saved
    x, _ = _data(32, seed=1)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 8
    for a, b in zip(loaded.optimizer.get_slot_arrays(), model.optimizer.get_slot_arrays()):
        np.testing.assert_array_equal(a, b)
    assert loaded.metrics_names == model.metrics_names
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]


def test_archive_layout(saved):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
        config = json.loads(zf.read("config.json"))
    assert {"metadata.json", "config.json", "state.json", "weights/00000.npy",
            "optimizer/iterations.npy"} <= names
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["minidl_version"] == minidl.__version__
    assert config["class_name"] == "Sequential"
    assert config["config"]["build_input_shape"] == [None, 4]
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert config["compile_config"]["metrics"] == ["accuracy"]


def test_uncompiled_model_and_any_file_name(tmp_path):
    minidl.utils.set_random_seed(3)
    model = minidl.Sequential([Dense(5, input_shape=(4,))])
    path = tmp_path / "no_extension"
    model.save(path)
    loaded = minidl.models.load_model(path)
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_save_weights_load_weights(saved, tmp_path):
    model, _ = saved
    path = tmp_path / "w.minidl"
    model.save_weights(path)
    other = minidl.models.model_from_json(model.to_json())
    other.load_weights(path)
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidModelFileError, match="weights file"):
        minidl.models.load_model(path)
    small = minidl.Sequential([Dense(2, input_shape=(4,))])
    before = small.get_weights()
    with pytest.raises(InvalidModelFileError, match="more weight arrays"):
        small.load_weights(path)
    np.testing.assert_array_equal(small.get_weights()[0], before[0])


def test_get_config_from_config_and_json(saved):
    model, _ = saved
    clone = minidl.Sequential.from_config(model.get_config())
    assert clone.built and clone.get_config() == model.get_config()
    assert json.loads(model.to_json())["config"] == model.get_config()
    assert minidl.models.model_from_json(model.to_json()).get_config() == model.get_config()


def test_load_does_not_touch_random_state_when_asked(saved):
    _, path = saved
    minidl.utils.set_random_seed(11)
    expected = np.random.default_rng(0).bit_generator.state  # any value to compare shape
    state = minidl.utils.random.global_rng().bit_generator.state
    minidl.models.load_model(path, restore_random_state=False)
    assert minidl.utils.random.global_rng().bit_generator.state == state
    assert expected["bit_generator"] == state["bit_generator"]


def test_registered_custom_layer_round_trips(tmp_path):
    @register_serializable(package="test_saving")
    class TimesTwo(Layer):
        def forward(self, ctx, x, training=False):
            return x * 2

        def backward(self, ctx, dy, need_input_grad=True):
            return dy * 2

    model = minidl.Sequential([Dense(3, input_shape=(4,)), TimesTwo()])
    model.save(tmp_path / "c.minidl")
    loaded = minidl.models.load_model(tmp_path / "c.minidl")
    assert type(loaded.layers[1]) is TimesTwo
    x, _ = _data(5)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(TypeError, match="subclass"):
        register_serializable()(int)


# ---- atomic writes ----

def test_save_leaves_no_temporary_and_failed_save_keeps_old_file(saved, monkeypatch):
    model, path = saved
    good = path.read_bytes()
    assert os.listdir(path.parent) == [path.name]

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(format_module, "_write_npy", fail)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good
    assert os.listdir(path.parent) == [path.name]


# ---- exact resume in a new process ----

_RESUME = """
import sys, numpy as np, minidl
minidl.set_num_threads(1)
model = minidl.models.load_model(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.random((64, 4), dtype=np.float32); y = rng.integers(0, 3, 64)
model.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
np.savez(sys.argv[2], *model.get_weights())
"""


def _child_env():
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


@pytest.mark.parametrize("optimizer, dropout_seed", [
    ("adam", None),
    ({"class_name": "SGD", "config": {"momentum": 0.9, "learning_rate": {
        "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}}}},
     None),
    ("adam", 3),   # the seeded Dropout's own generator must resume too
], ids=["adam", "sgd_schedule", "adam_seeded_dropout"])
def test_resume_in_new_process_is_bit_exact(tmp_path, optimizer, dropout_seed):
    x, y = _data()
    straight = _model(optimizer=minidl.optimizers.get(optimizer) if isinstance(optimizer, dict)
                      else optimizer, dropout_seed=dropout_seed)
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = _model(optimizer=minidl.optimizers.get(optimizer) if isinstance(optimizer, dict)
                   else optimizer, dropout_seed=dropout_seed)
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "half.minidl"
    first.save(path)
    minidl.utils.set_random_seed(999)   # the child must not depend on the parent's state
    out = tmp_path / "resumed.npz"
    subprocess.run([sys.executable, "-c", _RESUME, str(path), str(out)], check=True,
                   env=_child_env(), cwd=tempfile.gettempdir(), timeout=120)
    with np.load(out) as resumed:
        arrays = [resumed[f"arr_{i}"] for i in range(len(resumed.files))]
    for a, b in zip(arrays, straight.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---- random states of layers ----

def test_layer_random_state_hook():
    plain = Dense(2)
    assert plain.get_random_state() is None
    plain.set_random_state(None)
    with pytest.raises(ValueError, match="owns no random generator"):
        plain.set_random_state({"bit_generator": "PCG64"})
    assert Dropout(0.5).get_random_state() is None
    layer, twin = Dropout(0.5, seed=3), Dropout(0.5, seed=4)
    x = np.ones((4, 6), np.float32)
    layer(x, training=True)
    twin.set_random_state(layer.get_random_state())
    np.testing.assert_array_equal(twin(x, training=True), layer(x, training=True))
    json.dumps(layer.get_random_state())   # JSON-able, as state.json needs


def _seeded_saved(tmp_path):
    model = _model(dropout_seed=3)
    x, y = _data()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "seeded.minidl"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        state = json.loads(zf.read("state.json"))
    return model, path, state


def test_seeded_layer_state_is_saved_and_restored(tmp_path):
    model, path, state = _seeded_saved(tmp_path)
    assert [s is not None for s in state["layer_random_states"]] == [False, False, True, False]
    assert state["layer_random_states"][2] == model.layers[2].get_random_state()
    assert minidl.models.load_model(path).layers[2].get_random_state() == \
        model.layers[2].get_random_state()
    fresh = Dropout(0.3, seed=3).get_random_state()
    assert minidl.models.load_model(path, restore_random_state=False).layers[2] \
        .get_random_state() == fresh


def test_file_without_layer_states_still_loads(tmp_path):
    # Files written before layer states were saved: the seeded layer starts from its seed.
    _, path, state = _seeded_saved(tmp_path)
    del state["layer_random_states"]
    old = _rewrite(path, tmp_path / "old.minidl", replace={"state.json": json.dumps(state)})
    loaded = minidl.models.load_model(old)
    assert loaded.layers[2].get_random_state() == Dropout(0.3, seed=3).get_random_state()
    assert minidl.utils.random.global_rng().bit_generator.state == state["random_state"]


def _tamper_inc(states):
    states[2]["state"]["inc"] += 1   # even: no seeded PCG64 has that


@pytest.mark.parametrize("tamper, match", [
    (lambda states: states.__setitem__(2, None), r"layer_random_states\[2\].*seed=3"),
    (lambda states: states[2].__setitem__("bit_generator", "MT19937"), "PCG64 state"),
    (lambda states: states[2]["state"].__setitem__("state", 1.5), r"state\['state'\]"),
    (lambda states: states[2]["state"].__setitem__("state", -1), r"state\['state'\]"),
    (lambda states: states[2].__setitem__("uinteger", 2 ** 40), "uinteger"),
    (lambda states: states[2]["state"].pop("inc"), r"state\['inc'\]"),
    (_tamper_inc, "odd"),
    (lambda states: states.__setitem__(0, {"bit_generator": "PCG64"}),
     r"layer_random_states\[0\].*owns no random generator"),
    (lambda states: states.pop(), "one entry per layer"),
], ids=["none", "other_generator", "float", "negative", "uinteger", "missing_field",
        "even_inc", "state_for_plain_layer", "short_list"])
def test_tampered_layer_random_state_is_refused(tmp_path, tamper, match):
    _, path, state = _seeded_saved(tmp_path)
    tamper(state["layer_random_states"])
    bad = _rewrite(path, tmp_path / "bad.minidl", replace={"state.json": json.dumps(state)})
    minidl.utils.set_random_seed(5)
    before = minidl.utils.random.global_rng().bit_generator.state
    with pytest.raises(InvalidModelFileError, match=match):
        minidl.models.load_model(bad)
    assert minidl.utils.random.global_rng().bit_generator.state == before


@pytest.mark.parametrize("value", ["x", None, {"0": None}])
def test_layer_random_states_not_a_list(tmp_path, value):
    _, path, state = _seeded_saved(tmp_path)
    state["layer_random_states"] = value
    bad = _rewrite(path, tmp_path / "bad.minidl", replace={"state.json": json.dumps(state)})
    with pytest.raises(InvalidModelFileError, match="layer_random_states must be a list"):
        minidl.models.load_model(bad)


def test_tampered_global_random_state_is_refused(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        state = json.loads(zf.read("state.json"))
    state["random_state"]["state"]["state"] = 2.5   # numpy itself would truncate it
    bad = _rewrite(path, tmp_path / "g.minidl", replace={"state.json": json.dumps(state)})
    with pytest.raises(InvalidModelFileError, match="invalid random state"):
        minidl.models.load_model(bad)


# ---- bad files ----

def test_not_a_zip(tmp_path):
    path = tmp_path / "x.minidl"
    path.write_bytes(b"hello, not a zip" * 10)
    with pytest.raises(InvalidModelFileError, match="not a readable zip.*|x.minidl"):
        minidl.models.load_model(path)


def test_every_truncation_is_refused(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cut_path = tmp_path / "cut.minidl"
    for cut in range(len(data)):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(InvalidModelFileError, match="cut.minidl"):
            minidl.models.load_model(cut_path)


def test_random_byte_flips_never_crash(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1234)
    flipped = tmp_path / "flip.minidl"
    outcomes = set()
    for _ in range(400):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            damaged[pos] ^= int(rng.integers(1, 256))
        flipped.write_bytes(bytes(damaged))
        try:
            minidl.models.load_model(flipped, restore_random_state=False)
            outcomes.add("loaded")   # a flip in padding, a date or a float's low bits
        except InvalidModelFileError:
            outcomes.add("refused")
    assert "refused" in outcomes


def test_missing_member(saved, tmp_path):
    _, path = saved
    bad = _rewrite(path, tmp_path / "m.minidl", drop={"weights/00001.npy"})
    with pytest.raises(InvalidModelFileError, match="'weights/00001.npy' is missing"):
        minidl.models.load_model(bad)


def test_unknown_member_warns_then_loads(saved, tmp_path):
    model, path = saved
    bad = _rewrite(path, tmp_path / "e.minidl", add={"notes/readme.txt": b"hi"})
    with pytest.warns(UserWarning, match="notes/readme.txt"):
        loaded = minidl.models.load_model(bad)
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


@pytest.mark.parametrize("name", ["../x", "/etc/x", "weights/../../x", "C:/x"])
def test_member_escaping_directory(saved, tmp_path, name):
    _, path = saved
    bad = _rewrite(path, tmp_path / "esc.minidl", add={name: b"x"})
    with pytest.raises(InvalidModelFileError, match="escapes"):
        minidl.models.load_model(bad)


def test_absurd_declared_size_is_refused_before_reading(saved, tmp_path):
    _, path = saved
    # A member declaring far more data than its config shape: a deflated run of zeros
    # (a small bomb) in place of the first kernel.
    bomb = _npy(np.zeros((4, 8), np.float32)) + bytes(50_000_000)
    bad = tmp_path / "bomb.minidl"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            if name == "weights/00000.npy":
                zout.writestr(name, bomb, compress_type=zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(name, zin.read(name))
    with pytest.raises(InvalidModelFileError, match="declares .* bytes"):
        minidl.models.load_model(bad)


def test_compression_ratio_bomb_in_json(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "json_bomb.minidl"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            if name == "config.json":
                zout.writestr(name, b" " * 20_000_000 + zin.read(name),
                              compress_type=zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(name, zin.read(name))
    with pytest.raises(InvalidModelFileError, match="compression bomb"):
        minidl.models.load_model(bad)


@pytest.mark.parametrize("array, match", [
    (np.zeros((5, 8), np.float32), r"shape \(5, 8\)"),
    (np.zeros((4, 8), np.float64), "dtype float64"),
    (np.array([{"a": 1}] * 32, dtype=object).reshape(4, 8), "object array"),
])
def test_weight_disagreeing_with_config(saved, tmp_path, array, match):
    _, path = saved
    bad = _rewrite(path, tmp_path / "s.minidl",
                   replace={"weights/00000.npy": _npy(array, allow_pickle=array.dtype == object)})
    with pytest.raises(InvalidModelFileError, match=match):
        minidl.models.load_model(bad)


def test_unknown_class_name_is_listed(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    config["config"]["layers"][1]["class_name"] = "os.system"
    bad = _rewrite(path, tmp_path / "u.minidl", replace={"config.json": json.dumps(config)})
    with pytest.raises(InvalidModelFileError, match="os.system"):
        minidl.models.load_model(bad)


def test_bad_layer_arguments(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    config["config"]["layers"][0]["config"]["__import__"] = "os"
    bad = _rewrite(path, tmp_path / "a.minidl", replace={"config.json": json.dumps(config)})
    with pytest.raises(InvalidModelFileError, match="a.minidl"):
        minidl.models.load_model(bad)


def test_newer_format_version(saved, tmp_path):
    _, path = saved
    meta = {"format_version": FORMAT_VERSION + 1, "minidl_version": "9.0", "kind": "model"}
    bad = _rewrite(path, tmp_path / "v.minidl", replace={"metadata.json": json.dumps(meta)})
    with pytest.raises(InvalidModelFileError, match="format_version=3.*upgrade"):
        minidl.models.load_model(bad)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        minidl.models.load_model(tmp_path / "nothing.minidl")


@pytest.mark.parametrize("array", [np.float32(1.5) * np.ones(()), np.arange(7, dtype=np.int64),
                                   np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                                   np.arange(40.0).reshape(5, 8)[:, ::3],     # not contiguous
                                   np.zeros((0, 3), np.float32),
                                   np.arange(3_000_000, dtype=np.float32)])   # several chunks
def test_array_members_are_what_np_save_writes(array):
    ours, numpys = io.BytesIO(), io.BytesIO()
    format_module._write_npy(ours, array)
    np.save(numpys, array, allow_pickle=False)
    assert ours.getvalue() == numpys.getvalue()


# ---- what a load reads: regular files only, within the sizes the file declares ----

def _special_file(tmp_path, kind):
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.symlink({"zero": "/dev/zero", "urandom": "/dev/urandom"}[kind], path)
    return path


def _within(seconds, call):
    """The exception ``call`` raised, None if it returned, or 'hung': a hang detector,
    generous for a loaded machine."""
    outcome = []

    def target():
        try:
            call()
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else "hung"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("kind, error, match", [
    ("zero", InvalidModelFileError, "character device, not a regular file"),
    ("urandom", InvalidModelFileError, "character device, not a regular file"),
    ("fifo", InvalidModelFileError, r"FIFO \(named pipe\), not a regular file"),
    ("directory", IsADirectoryError, "Is a directory"),
])
@pytest.mark.parametrize("load", ["load_model", "load_weights"])
def test_special_files_are_refused_before_a_byte_is_read(saved, tmp_path, kind, error, match,
                                                        load):
    model, _ = saved
    path = _special_file(tmp_path, kind)
    call = (lambda: minidl.models.load_model(path)) if load == "load_model" \
        else (lambda: model.load_weights(path))
    outcome = _within(60, call)
    if outcome == "hung" and kind == "fifo":
        # Unblock the reader stuck in open() before failing.
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert isinstance(outcome, error), outcome
    assert re.search(match, str(outcome))


def _plain_copy(path, tmp_path):
    """The archive rewritten by zipfile without zip64 records, for directory surgery."""
    return zip_surgery.rewrite(path, tmp_path / "plain.minidl")


@pytest.mark.parametrize("fields, match", [
    ({"compress_size": 2 ** 32 - 2}, "past the end of the file"),
    ({"header_offset": 2 ** 32 - 2}, "past the end of the file"),
    ({"file_size": 10}, r"is stored \(not compressed\) but declares 10 bytes"),
    ({"file_size": 0xFFFFFFFF, "compress_size": 0xFFFFFFFF,
      "extra": zip_surgery.zip64_extra(2 ** 62, 2 ** 62)}, "past the end of the file"),
], ids=["compress_size", "offset", "stored_sizes_differ", "zip64_sizes"])
def test_zip_directory_lies_are_refused(saved, tmp_path, fields, match):
    data = _plain_copy(saved[1], tmp_path).read_bytes()
    bad = tmp_path / "lie.minidl"
    bad.write_bytes(zip_surgery.patch_member(data, "weights/00000.npy", **fields))
    with pytest.raises(InvalidModelFileError, match=match):
        minidl.models.load_model(bad)


def test_overlapping_members_are_refused(saved, tmp_path):
    # The same data listed under many names (a zip bomb technique) claims more bytes than
    # the file has.
    data = _plain_copy(saved[1], tmp_path).read_bytes()
    entries, offset = zip_surgery.read_directory(data)
    copies = [dict(entries[-1], name=f"x/{i}".encode()) for i in range(50)]
    bad = tmp_path / "overlap.minidl"
    bad.write_bytes(zip_surgery.write_directory(data, entries + copies, offset))
    with pytest.raises(InvalidModelFileError, match="claim .* bytes together"):
        minidl.models.load_model(bad)


def test_npy_header_length_is_checked_before_the_header_is_read(saved, tmp_path):
    header = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 ** 31) + b"{"
    bad = _rewrite(saved[1], tmp_path / "h.minidl", replace={"weights/00000.npy": header})
    with pytest.raises(InvalidModelFileError, match="header of 2147483648 bytes"):
        minidl.models.load_model(bad)


def test_deflated_json_may_not_outgrow_the_file(saved, tmp_path):
    # Under the compression-bomb ratio, yet unpacking to more JSON than the whole file
    # holds (and more than the 1 MiB floor): refused before it is parsed.
    with zipfile.ZipFile(saved[1]) as zf:
        config = json.loads(zf.read("config.json"))
    rng = np.random.default_rng(0)
    config["config"]["padding"] = [rng.bytes(8).hex() for _ in range(120_000)]
    bad = zip_surgery.rewrite(saved[1], tmp_path / "j.minidl",
                                replace={"config.json": json.dumps(config).encode()},
                                deflate=("config.json",))
    with pytest.raises(InvalidModelFileError, match=r"allowed for JSON in a file of \d+ bytes"):
        minidl.models.load_model(bad)


def _peak_while(call):
    """The peak of traced allocations (numpy reports its arrays) while ``call`` runs."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_config_cannot_make_load_allocate_more_than_the_file_holds(saved, tmp_path):
    # Dense(units=10**9) would take 30 GiB of weights (and, compiled, optimizer slots written
    # in full) for a file of a few kilobytes: refused before anything that size exists.
    with zipfile.ZipFile(saved[1]) as zf:
        config = json.loads(zf.read("config.json"))
    dense = next(spec for spec in config["config"]["layers"] if spec["class_name"] == "Dense")
    dense["config"]["units"] = 10 ** 9
    bad = _rewrite(saved[1], tmp_path / "u.minidl", replace={"config.json": json.dumps(config)})

    def load():
        with pytest.raises(InvalidModelFileError, match="more than the file being loaded holds"):
            minidl.models.load_model(bad)
    assert _peak_while(load) < 64 * 2 ** 20


def test_a_model_without_weights_loads_whatever_its_input_shape(tmp_path):
    # Building allocates weights only: LayerNormalization's stand-ins for an absent gamma and
    # beta span the input and are made on the first call, not when a file is loaded.
    model = minidl.Sequential([minidl.layers.Input((4,)),
                               minidl.layers.LayerNormalization(center=False, scale=False)])
    model.save(tmp_path / "n.minidl")
    with zipfile.ZipFile(tmp_path / "n.minidl") as zf:
        config = json.loads(zf.read("config.json"))
    config["config"]["build_input_shape"] = [None, 10 ** 9]
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 10 ** 9]   # the Input
    wide = _rewrite(tmp_path / "n.minidl", tmp_path / "w.minidl",
                    replace={"config.json": json.dumps(config)})
    loaded = []
    assert _peak_while(lambda: loaded.append(minidl.models.load_model(wide))) < 64 * 2 ** 20
    assert loaded[0].input_shape == (None, 10 ** 9)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5)
