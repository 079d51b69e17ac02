"""Keras's HDF5 files: the validated reader of minidl.saving.keras.h5 against hostile HDF5
files, and legacy ``.h5`` models and weights (minidl.saving.keras.legacy_h5): round trips,
Keras 3 fixtures (tests/data/keras, made by make_fixtures.py) read by minidl, and, where Keras
is installed, minidl's files read by Keras."""
import json
import os
import sys
import warnings

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import minidl  # noqa: E402
from minidl import Input, layers, models  # noqa: E402
from minidl.saving import InvalidModelFileError  # noqa: E402
from minidl.saving.keras import h5, legacy_h5  # noqa: E402

import hostile_configs  # noqa: E402
from loader_corpus_h5 import HOSTILE_EDITS, edited_copy  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
FIXTURES = ("mlp", "cnn_bn", "residual", "nested", "lstm_text")


def _mlp(compiled=True):
    model = models.Sequential([Input((4,)), layers.Dense(5, activation="relu"),
                               layers.BatchNormalization(),
                               layers.Dense(3, activation="softmax")])
    if compiled:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _trained_mlp(optimizer="adam"):
    minidl.utils.set_random_seed(3)
    model = _mlp(compiled=False)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 4)).astype("float32"), rng.integers(0, 3, 16),
              batch_size=8, epochs=1, verbose=0)
    return model


@pytest.fixture
def legacy_file(tmp_path):
    """A legacy .h5 of a small compiled MLP: (path, model)."""
    model = _trained_mlp()
    path = str(tmp_path / "m.h5")
    legacy_h5.save_legacy_h5(model, path)
    return path, model


# ---- the validated reader ----

@pytest.mark.parametrize("case", sorted(HOSTILE_EDITS))
def test_hostile_h5_is_refused_clearly_and_writes_nothing(legacy_file, case):
    path, _ = legacy_file
    edit, message = HOSTILE_EDITS[case]
    hostile = edited_copy(path, edit)
    directory = os.path.dirname(hostile)
    before = sorted(os.listdir(directory))
    with pytest.raises(InvalidModelFileError) as info:
        minidl.models.load_model(hostile)
    assert message in str(info.value)
    assert os.path.basename(hostile) in str(info.value)
    assert sorted(os.listdir(directory)) == before


@pytest.mark.parametrize("case", ["external_link", "virtual_dataset", "string_weight",
                                  "huge_declared_shape", "wrong_shape_weight"])
def test_hostile_h5_weights_change_nothing(legacy_file, case):
    path, model = legacy_file
    hostile = edited_copy(path, HOSTILE_EDITS[case][0])
    target = _mlp(compiled=False)
    before = target.get_weights()
    with pytest.raises(InvalidModelFileError):
        target.load_weights(hostile)
    assert all(np.array_equal(a, b) for a, b in zip(before, target.get_weights()))


def test_cycles_and_object_floods_stop_at_the_object_bound(tmp_path, monkeypatch):
    path = str(tmp_path / "cycle.h5")
    with h5py.File(path, "w") as f:
        group = f.create_group("g")
        group["loop"] = group   # a hard link back to itself: an endless tree
    with pytest.raises(InvalidModelFileError, match="'/g' is reached by 2 links"):
        h5.open_h5(path)
    monkeypatch.setattr(h5, "_MAX_OBJECTS", 50)
    for kind in ("links", "attributes"):
        flood = str(tmp_path / f"{kind}.h5")
        with h5py.File(flood, "w") as f:
            for i in range(60):
                if kind == "links":
                    f.create_group(f"g{i}")
                else:
                    f.attrs[f"a{i}"] = i
        with pytest.raises(InvalidModelFileError, match="more than 50 objects"):
            h5.open_h5(flood)


def test_truncated_and_flipped_files(legacy_file, tmp_path):
    path, model = legacy_file
    with open(path, "rb") as f:
        data = f.read()
    probe = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    expected = model.predict(probe, verbose=0)
    for cut in (8, 100, 512, len(data) // 2, len(data) - 1):
        cut_path = str(tmp_path / f"cut{cut}.h5")
        with open(cut_path, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(InvalidModelFileError, match=f"cut{cut}.h5"):
            minidl.models.load_model(cut_path)
    rng = np.random.default_rng(0)
    for i in range(25):
        flipped = bytearray(data)
        at = int(rng.integers(len(data)))
        flipped[at] ^= int(rng.integers(1, 256))
        flip_path = str(tmp_path / f"flip{i}.h5")
        with open(flip_path, "wb") as f:
            f.write(bytes(flipped))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loaded = minidl.models.load_model(flip_path)
            except InvalidModelFileError:
                continue
        # HDF5 keeps no checksum of raw data: a flip there loads, as a changed weight.
        got = loaded.predict(probe, verbose=0)
        assert got.shape == expected.shape


def test_special_files_are_refused_without_blocking(tmp_path):
    fifo = str(tmp_path / "fifo.h5")
    os.mkfifo(fifo)
    with pytest.raises(InvalidModelFileError, match="FIFO"):
        h5.open_h5(fifo)
    if os.path.exists("/dev/zero"):
        with pytest.raises(InvalidModelFileError, match="character device"):
            h5.open_h5("/dev/zero")
    with pytest.raises(IsADirectoryError):
        h5.open_h5(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        h5.open_h5(str(tmp_path / "missing.h5"))
    empty = str(tmp_path / "empty.h5")
    open(empty, "wb").close()
    with pytest.raises(InvalidModelFileError, match="no HDF5 signature"):
        h5.open_h5(empty)


def test_open_h5_reads_a_file_object(legacy_file):
    import io
    path, _ = legacy_file
    with open(path, "rb") as f:
        stream = io.BytesIO(f.read())
    with h5.open_h5(stream, "'m.keras' member model.weights.h5") as f:
        assert f.size == len(stream.getvalue())
        assert h5.read_json_attr(f, "model_config", f.what)["class_name"] == "Sequential"
    with pytest.raises(InvalidModelFileError, match="'m.keras' member"):
        h5.open_h5(io.BytesIO(b"PK\x03\x04" + bytes(100)), "'m.keras' member")
    with pytest.raises(TypeError, match="binary file object"):
        h5.open_h5(12)


def test_attribute_readers(tmp_path):
    path = str(tmp_path / "attrs.h5")
    names = [f"layer_{i:05d}".encode() for i in range(9000)]   # 99 KB: two chunks
    with h5py.File(path, "w") as f:
        legacy_h5._set_list_attribute(f, "layer_names", names)
        f.attrs["json_str"] = '{"a": [1, 2]}'
        f.attrs["json_bytes"] = np.bytes_(b'{"b": null}')
        f.attrs["not_utf8"] = np.bytes_(b"\xff\xfe")
        f.attrs["two"] = np.array([b"{}", b"{}"])
    with h5.open_h5(path) as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs
        assert h5.read_str_list_attr(f, "layer_names", f.what) == [n.decode() for n in names]
        assert h5.read_str_list_attr(f, "absent", f.what) == []
        assert h5.read_json_attr(f, "json_str", f.what) == {"a": [1, 2]}
        assert h5.read_json_attr(f, "json_bytes", f.what) == {"b": None}
        assert h5.read_json_attr(f, "absent", f.what) is None
        with pytest.raises(InvalidModelFileError, match="not UTF-8"):
            h5.read_json_attr(f, "not_utf8", f.what)
        with pytest.raises(InvalidModelFileError, match="2 values"):
            h5.read_json_attr(f, "two", f.what)


def test_read_array_checks_shape_before_reading_and_casts(tmp_path):
    path = str(tmp_path / "a.h5")
    with h5py.File(path, "w") as f:
        f["g/x"] = np.arange(6, dtype="f8").reshape(2, 3)
    with h5.open_h5(path) as f:
        got = h5.read_array(f["g"], "x", (2, 3), np.float32, f.what)
        assert got.dtype == np.float32 and np.array_equal(got, np.arange(6).reshape(2, 3))
        with pytest.raises(InvalidModelFileError, match=r"shape \(2, 3\), expected \(3, 2\)"):
            h5.read_array(f["g"], "x", (3, 2), np.float32, f.what)
        with pytest.raises(InvalidModelFileError, match="'/g/y' is missing"):
            h5.read_array(f["g"], "y", None, np.float32, f.what)
        with pytest.raises(InvalidModelFileError, match="is not a dataset"):
            h5.read_array(f, "g", None, np.float32, f.what)


def test_without_h5py_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    model = _mlp()
    for save in (lambda: model.save(str(tmp_path / "m.h5")),
                 lambda: model.save_weights(str(tmp_path / "w.h5")),
                 lambda: legacy_h5.save_legacy_h5(model, str(tmp_path / "m.h5"))):
        with pytest.raises(ImportError, match=r"minidl\[keras\]"):
            save()
    assert os.listdir(tmp_path) == []


def test_write_h5_is_atomic(tmp_path):
    path = str(tmp_path / "m.h5")
    with open(path, "wb") as f:
        f.write(b"old content")

    def fill(f):
        f["x"] = np.ones(3)
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError, match="interrupted"):
        h5.write_h5(path, fill)
    with open(path, "rb") as f:
        assert f.read() == b"old content"
    assert os.listdir(tmp_path) == ["m.h5"]


# ---- legacy .h5 round trips ----

def _weighted_layer_names():
    return [name for name in hostile_configs.LAYER_SAMPLES
            if hostile_configs.layer_model(name).weights]


def _sample_input(name, model, rng):
    dtype = hostile_configs.LAYER_INPUT_DTYPES.get(name)
    shape = (3,) + tuple(model.inputs[0].shape[1:])
    if name == "Embedding":
        dtype = "int32"
    if dtype is not None and "int" in str(dtype):
        return rng.integers(0, 5, size=shape).astype(dtype)
    return rng.normal(size=shape).astype("float32")


@pytest.mark.parametrize("name", _weighted_layer_names())
def test_every_layer_with_weights_round_trips_through_legacy_h5(name, tmp_path):
    minidl.utils.set_random_seed(7)
    model = hostile_configs.layer_model(name)
    # Weights that differ from any initializer's, so a load that drops one is seen.
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    x = _sample_input(name, model, rng)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "m.h5")
    model.save(path)
    loaded = minidl.models.load_model(path)
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in model.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    weights_path = str(tmp_path / "w.h5")
    model.save_weights(weights_path)
    fresh = hostile_configs.layer_model(name)
    fresh.load_weights(weights_path)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), expected)


@pytest.mark.parametrize("optimizer", [
    "adam", "sgd", minidl.optimizers.SGD(momentum=0.9), "rmsprop",
    minidl.optimizers.RMSprop(momentum=0.5, centered=True), "adagrad", "nadam",
    minidl.optimizers.Adam(amsgrad=True), "adamw"])
def test_optimizer_state_round_trips_and_training_resumes(optimizer, tmp_path):
    if not isinstance(optimizer, str):
        optimizer = type(optimizer).from_config(optimizer.get_config())
    model = _trained_mlp(optimizer)
    path = str(tmp_path / "m.h5")
    model.save(path)
    loaded = minidl.models.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.iterations == model.optimizer.iterations == 2
    slots, loaded_slots = model.optimizer.get_slot_arrays(), loaded.optimizer.get_slot_arrays()
    assert len(slots) == len(loaded_slots) > 0 or model.optimizer.slot_names == ()
    assert all(np.array_equal(a, b) for a, b in zip(slots, loaded_slots))
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.integers(0, 3, 8)
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_optimizer_state_of_another_layout_warns_and_starts_fresh(legacy_file, tmp_path):
    path, model = legacy_file

    def drop_one(f):
        group = f["optimizer_weights"]
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = np.array(names[:-1])
    edited = edited_copy(path, drop_one)
    with pytest.warns(UserWarning, match="starts fresh"):
        loaded = minidl.models.load_model(edited)
    assert loaded.compiled and loaded.optimizer.iterations == 0
    no_compile = minidl.models.load_model(path, compile=False)
    assert not no_compile.compiled


def test_legacy_weights_by_name_and_skip_mismatch(tmp_path):
    # A Keras 2 weights file, written as Keras 2's save_weights did: names with ':0'.
    path = str(tmp_path / "keras2.h5")
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4, 5)).astype("f4"), rng.normal(size=5).astype("f4")
    head = rng.normal(size=(5, 3)).astype("f4")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"first", b"unused", b"head"]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.4.0"
        for layer, arrays in (("first", {"kernel:0": kernel, "bias:0": bias}),
                              ("unused", {}),
                              ("head", {"kernel:0": head, "bias:0": np.ones(3, "f4")})):
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{layer}/{n}".encode() for n in arrays]
            for n, value in arrays.items():
                group[f"{layer}/{n}"] = value
    model = models.Sequential([Input((4,)), layers.Dense(5, name="first"),
                               layers.Dense(3, name="head")])
    model.load_weights(path)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], kernel)
    np.testing.assert_array_equal(model.layers[1].get_weights()[0], head)
    # By name: a model whose layers come in another order, one of them absent from the file.
    other = models.Sequential([Input((4,)), layers.Dense(5, name="first"),
                               layers.Dense(7, name="extra"), layers.Dense(3, name="last")])
    extra_before = other.layers[1].get_weights()
    legacy_h5.load_legacy_weights(other, path, by_name=True)
    np.testing.assert_array_equal(other.layers[0].get_weights()[1], bias)
    assert all(np.array_equal(a, b) for a, b in zip(extra_before, other.layers[1].get_weights()))
    # A shape that differs: an error, or with skip_mismatch a warning and the rest loaded.
    wide = models.Sequential([Input((4,)), layers.Dense(5, name="first"),
                              layers.Dense(4, name="head")])
    with pytest.raises(InvalidModelFileError, match=r"has shape \(5, 3\), and layer 'head'"):
        legacy_h5.load_legacy_weights(wide, path)
    with pytest.warns(UserWarning, match="Skipping loading weight 'head/kernel:0'"):
        legacy_h5.load_legacy_weights(wide, path, by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(wide.layers[0].get_weights()[0], kernel)
    with pytest.raises(InvalidModelFileError, match="layer count mismatch"):
        models.Sequential([Input((4,)), layers.Dense(3)]).load_weights(path)
    with pytest.raises(InvalidModelFileError, match="holds no model_config"):
        minidl.models.load_model(path)


def test_writing_refuses_duplicate_layer_names(tmp_path):
    inputs = Input((4,))
    a = layers.Dense(2, name="twin")(inputs)
    b = layers.Dense(2)(inputs)
    model = models.Model(inputs, layers.Add()([a, b]))
    model.layers[2].name = "twin"
    with pytest.raises(ValueError, match="two layers named 'twin'"):
        legacy_h5.save_legacy_h5(model, str(tmp_path / "m.h5"))
    assert os.listdir(tmp_path) == []


# ---- Keras 2 files ----

def _write_keras2_h5(path, configs, model, optimizer_names=()):
    """A model file as Keras 2 (tf.keras 2.x) wrote it: its model_config and
    training_config (Keras 2 dialect, from tests/data/keras/keras2_configs.json), weights
    named '<layer>/<weight>:0', a TensorFlow optimizer's variables."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.13.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(configs["model_config"]).encode()
        f.attrs["training_config"] = json.dumps(configs["training_config"]).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        group.attrs["keras_version"] = b"2.13.1"
        group.attrs["backend"] = b"tensorflow"
        for layer in model.layers:
            layer_group = group.create_group(layer.name)
            names = [f"{layer.name}/{v.name}:0" for v in legacy_h5.legacy_weights(layer)]
            layer_group.attrs["weight_names"] = [n.encode() for n in names]
            for name, variable in zip(names, legacy_h5.legacy_weights(layer)):
                layer_group[name] = variable.value
        if optimizer_names:
            weights = f.create_group("optimizer_weights")
            weights.attrs["weight_names"] = [n.encode() for n in optimizer_names]
            for n in optimizer_names:
                weights[n] = np.zeros(())


@pytest.mark.parametrize("which", ["sequential", "functional"])
def test_keras2_model_files_load(which, tmp_path):
    from minidl.saving.keras import config as keras_config
    from minidl.saving.model_io import _model_from_spec
    with open(os.path.join(DATA, "keras2_configs.json")) as f:
        configs = json.load(f)[which]
    # The weights: a minidl model of the same config, given weights of its own.
    model = _model_from_spec(keras_config.model_spec_from_keras(configs["model_config"]))
    rng = np.random.default_rng(4)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    path = str(tmp_path / "keras2.h5")
    # tf.keras's Adam: its step count, then every m, then every v (not Keras 3's order).
    _write_keras2_h5(path, configs, model, ["Adam/iter:0", "Adam/m:0", "Adam/v:0"])
    with pytest.warns(UserWarning, match="starts fresh"):
        loaded = minidl.models.load_model(path)
    assert loaded.compiled and loaded.optimizer.iterations == 0
    shape = (4,) + tuple(model.inputs[0].shape[1:])
    x = (rng.integers(0, 50, shape) if which == "functional"
         else rng.normal(size=shape).astype("float32"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    clone = _model_from_spec(keras_config.model_spec_from_keras(configs["model_config"]))
    clone.load_weights(path)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


# ---- Keras 3 fixtures ----

@pytest.mark.parametrize("name", FIXTURES)
def test_keras_made_h5_predicts_what_keras_saved(name):
    io = np.load(os.path.join(DATA, f"{name}_io.npz"))
    model = minidl.models.load_model(os.path.join(DATA, f"{name}.h5"))
    np.testing.assert_allclose(model.predict(io["x"], verbose=0), io["y"], atol=1e-5, rtol=0)
    assert model.compiled and model.optimizer.iterations > 0
    # The model file's weights load into the same architecture by layer order too.
    clone = minidl.models.model_from_json(model.to_json())
    clone.load_weights(os.path.join(DATA, f"{name}.h5"))
    np.testing.assert_allclose(clone.predict(io["x"], verbose=0), io["y"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "residual", "lstm_text"])
def test_resaved_keras_h5_holds_the_same_weights_and_optimizer_variables(name, tmp_path):
    """Keras's file, loaded by minidl and saved again: the same layers, weights and
    optimizer variables, under the same names and in the same order."""
    source = os.path.join(DATA, f"{name}.h5")
    path = str(tmp_path / "again.h5")
    minidl.models.load_model(source).save(path)
    with h5py.File(source, "r") as keras_file, h5py.File(path, "r") as ours:
        def names(group, attr):
            return [n.decode() if isinstance(n, bytes) else n for n in group.attrs[attr]]
        assert names(ours["model_weights"], "layer_names") == \
            names(keras_file["model_weights"], "layer_names")
        for layer in names(keras_file["model_weights"], "layer_names"):
            theirs_group, ours_group = keras_file["model_weights"][layer], \
                ours["model_weights"][layer]
            theirs_names = names(theirs_group, "weight_names")
            ours_names = names(ours_group, "weight_names")
            assert len(theirs_names) == len(ours_names)
            for a, b in zip(theirs_names, ours_names):
                np.testing.assert_array_equal(theirs_group[a][()], ours_group[b][()])
        theirs_names = names(keras_file["optimizer_weights"], "weight_names")
        assert names(ours["optimizer_weights"], "weight_names") == theirs_names
        for n in theirs_names:
            np.testing.assert_array_equal(ours["optimizer_weights"][n][()],
                                          keras_file["optimizer_weights"][n][()])


# ---- Keras reads minidl's files ----

# Keras on torch warns about numpy 2's copy keyword at every conversion.
keras_warnings = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@keras_warnings
@pytest.mark.parametrize("name", _weighted_layer_names())
def test_keras_loads_minidl_legacy_h5_with_the_same_predictions(keras, name, tmp_path):
    minidl.utils.set_random_seed(11)
    model = hostile_configs.layer_model(name)
    rng = np.random.default_rng(1)
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    x = _sample_input(name, model, rng)
    path = str(tmp_path / "m.h5")
    model.save(path)
    theirs = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)
    weights_path = str(tmp_path / "w.h5")
    model.save_weights(weights_path)
    theirs.set_weights([np.zeros_like(w) for w in theirs.get_weights()])
    theirs.load_weights(weights_path)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


@keras_warnings
def test_keras_loads_minidl_compiled_h5(keras, tmp_path):
    model = _trained_mlp("rmsprop")
    path = str(tmp_path / "m.h5")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = keras.models.load_model(path)
    assert type(theirs.optimizer).__name__ == "RMSprop"
    assert int(theirs.optimizer.iterations) == 2
    x = np.random.default_rng(2).normal(size=(4, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)


@keras_warnings
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50"])
def test_application_loads_a_keras_imagenet_style_weights_file(keras, name, tmp_path):
    """The layout of keras.applications' ImageNet files (Keras 2's ``save_weights("w.h5")``,
    written here by Keras's own legacy writer from a Keras model with weights of its own):
    an application built with ``weights=<file>`` predicts what the Keras model does."""
    from keras.src.legacy.saving import legacy_h5_format
    kwargs = dict(input_shape=(32, 32, 3), classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(keras.applications, name)(weights=None, **kwargs)
    rng = np.random.default_rng(3)
    # Moving variances away from 1, so a BatchNormalization statistic loaded into the wrong
    # place shows.
    reference.set_weights([w + rng.uniform(0, 0.1, size=w.shape).astype(w.dtype)
                           for w in reference.get_weights()])
    path = str(tmp_path / f"{name.lower()}_weights_tf_dim_ordering_tf_kernels.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    model = getattr(minidl.applications, name)(weights=path, **kwargs)
    # Every weight in its place (the layers and their weights come in Keras's order)...
    ours, theirs = model.get_weights(), reference.get_weights()
    assert len(ours) == len(theirs)
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(ours, theirs))
    # ... and the same predictions (float32 sums over 50 layers: within 1e-4).
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.asarray(reference.predict(x, verbose=0)), atol=1e-4)
