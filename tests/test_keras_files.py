"""Keras 3 files: ``.keras`` archives and ``.weights.h5`` files read and written (issue 18).

The fixtures in tests/data/keras were written by real Keras 3 (tests/data/keras/make_fixtures.py,
versions in its README): minidl must predict what Keras predicted from them, and restore
their compile settings and optimizer state. minidl-written files must load back in minidl,
and, where Keras is installed (the comparison job), in Keras with the same predictions.
"""
import json
import os
import sys
import warnings
import zipfile

import numpy as np
import pytest

import minidl
from minidl import Input, layers
from minidl.models import Model, Sequential, load_model
from minidl.saving import InvalidModelFileError
from minidl.saving.keras import keras_weight_groups
from minidl.saving.keras.weights import (keras_class_name, keras_optimizer_values,
                                         to_snake_case)

import hostile_configs

try:
    import h5py
except ImportError:   # minidl[keras] not installed: only the tests of that case run
    h5py = None

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
FIXTURES = ("mlp", "cnn_bn", "residual", "nested", "lstm_text")
TOLERANCE = 1e-5


def fixture(name, suffix):
    return os.path.join(DATA, name + suffix)


def fixture_io(name):
    with np.load(fixture(name, "_io.npz")) as io:
        return io["x"], io["y"]


# ---- the fixtures' architectures, built in minidl (for .weights.h5) ----

def build_mlp():
    model = Sequential([Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=minidl.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_cnn_bn():
    model = Sequential([
        Input((28, 28, 1)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(2),
        layers.Conv2D(8, 3, padding="same"), layers.BatchNormalization(),
        layers.Activation("relu"), layers.AveragePooling2D(2), layers.Flatten(),
        layers.Dense(10, activation="softmax")])
    model.compile(optimizer=minidl.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_residual():
    inputs = Input((12,), name="features")
    hidden = layers.Dense(16, activation="relu")(inputs)
    branch = layers.Dense(16, activation="tanh")(hidden)
    branch = layers.Dense(16)(branch)
    merged = layers.LayerNormalization()(layers.Add()([hidden, branch]))
    model = Model(inputs, layers.Dense(1)(merged), name="residual")
    model.compile(optimizer=minidl.optimizers.RMSprop(learning_rate=0.01), loss="mse",
                  metrics=["mae"])
    return model


def build_nested():
    block = Sequential([Input((6,)), layers.Dense(8, activation="relu"), layers.Dense(8)],
                       name="block")
    inner = Input((8,))
    head = Model(inner, layers.Dense(4, activation="sigmoid")(inner), name="head")
    inputs = Input((6,))
    outputs = head(layers.Activation("relu")(block(inputs)))
    model = Model(inputs, outputs, name="nested")
    model.compile(optimizer=minidl.optimizers.Adam(learning_rate=0.01),
                  loss="binary_crossentropy")
    return model


def build_lstm_text():
    model = Sequential([Input((10,), dtype="int32"), layers.Embedding(50, 8), layers.LSTM(12),
                        layers.Dense(2, activation="softmax")])
    model.compile(optimizer=minidl.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


BUILDERS = {"mlp": build_mlp, "cnn_bn": build_cnn_bn, "residual": build_residual,
            "nested": build_nested, "lstm_text": build_lstm_text}
# (optimizer class, loss) each fixture was compiled with by make_fixtures.py.
COMPILED_WITH = {"mlp": ("Adam", "sparse_categorical_crossentropy"),
                 "cnn_bn": ("SGD", "sparse_categorical_crossentropy"),
                 "residual": ("RMSprop", "mse"), "nested": ("Adam", "binary_crossentropy"),
                 "lstm_text": ("Adam", "sparse_categorical_crossentropy")}


def same_loss(a, b):
    def spec(loss):
        return minidl.losses.serialize(minidl.losses.get(loss))
    return spec(a) == spec(b)


def file_optimizer_arrays(path):
    """optimizer/vars/0..n of a Keras weights file, in order."""
    with h5py.File(path, "r") as f:
        group = f["optimizer/vars"]
        return [group[str(i)][()] for i in range(len(group))]


def assert_optimizer_state_is_the_files(model, weights_path):
    expected = file_optimizer_arrays(weights_path)
    got = keras_optimizer_values(model)
    assert got is not None and len(got) == len(expected)
    assert model.optimizer.iterations == int(expected[0]) > 0
    for a, b in zip(got[1:], expected[1:]):
        np.testing.assert_array_equal(np.asarray(a, np.float32), b)


# ---- Keras's files, read by minidl ----

@pytest.mark.parametrize("name", FIXTURES)
def test_keras_archive_predicts_what_keras_predicted(name):
    model = load_model(fixture(name, ".keras"))
    x, y = fixture_io(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)
    optimizer, loss = COMPILED_WITH[name]
    assert model.compiled and type(model.optimizer).__name__ == optimizer
    assert same_loss(model.get_compile_config()["loss"], loss)
    assert_optimizer_state_is_the_files(model, fixture(name, ".weights.h5"))


@pytest.mark.parametrize("name", FIXTURES)
def test_keras_archive_without_compile(name):
    model = load_model(fixture(name, ".keras"), compile=False)
    assert not model.compiled
    x, y = fixture_io(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", FIXTURES)
def test_keras_weights_file_into_the_same_architecture(name):
    model = BUILDERS[name]()
    model.load_weights(fixture(name, ".weights.h5"))
    x, y = fixture_io(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)
    # A compiled model takes the optimizer's state too, as Keras's load_weights does.
    assert_optimizer_state_is_the_files(model, fixture(name, ".weights.h5"))


@pytest.mark.parametrize("name", FIXTURES)
def test_keras_archive_weights_into_the_same_architecture(name):
    # load_weights also takes a .keras archive's weights, by content.
    model = BUILDERS[name]()
    model.load_weights(fixture(name, ".keras"))
    x, y = fixture_io(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", FIXTURES)
def test_legacy_h5_fixture(name):
    pytest.importorskip("minidl.saving.keras.legacy_h5")
    model = load_model(fixture(name, ".h5"))
    x, y = fixture_io(name)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)


def test_weight_paths_follow_keras_layout():
    with h5py.File(fixture("nested", ".weights.h5"), "r") as f:
        stored = set()
        f.visititems(lambda n, o: stored.add(n.rsplit("/", 1)[0])
                     if isinstance(o, h5py.Dataset) and not n.startswith("optimizer") else None)
    assert {path for path, _ in keras_weight_groups(build_nested())} == stored
    lstm = [path for path, _ in keras_weight_groups(build_lstm_text())]
    assert lstm == ["layers/embedding/vars", "layers/lstm/cell/vars", "layers/dense/vars"]
    assert [to_snake_case(n) for n in ("Conv2D", "PReLU", "BatchNormalization", "GRU")] == \
        ["conv2d", "p_re_lu", "batch_normalization", "gru"]


def test_bidirectional_paths_are_keras_sorted_order():
    model = Sequential([Input((5, 3)), layers.Bidirectional(layers.LSTM(2)),
                        layers.Dense(2), layers.Dense(1)])
    assert [path for path, _ in keras_weight_groups(model)] == [
        "layers/bidirectional/backward_layer/cell/vars",
        "layers/bidirectional/forward_layer/cell/vars",
        "layers/dense/vars", "layers/dense_1/vars"]


class TwoDense(Model):
    """A subclassed model: Keras walks it as a layer, by its attributes in sorted order,
    its ``layers`` property among them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.second = layers.Dense(3)
        self.first = layers.Dense(2, activation="tanh")
        self.blocks = [layers.Dense(2), layers.Dense(2)]

    def call(self, x):
        return self.second(self.blocks[1](self.blocks[0](self.first(x))))


def test_subclassed_model_paths_are_its_attributes():
    model = TwoDense()
    model(np.zeros((1, 4), np.float32))
    # As Keras 3.15 writes it: "second" is first met in the sorted walk through the model's
    # ``layers`` property (before "second"), as the first Dense of that list.
    assert [path for path, _ in keras_weight_groups(model)] == [
        "blocks/dense/vars", "blocks/dense_1/vars", "first/vars", "layers/dense/vars"]


@pytest.mark.parametrize("name", ["cnn_bn", "residual", "nested", "lstm_text"])
def test_training_goes_on_after_loading(name):
    model = load_model(fixture(name, ".keras"))
    steps = model.optimizer.iterations
    x, _ = fixture_io(name)
    y = (np.zeros(len(x), np.int64) if name in ("cnn_bn", "lstm_text")
         else np.zeros((len(x),) + model.output_shape[1:], np.float32))
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    for _ in range(3):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert model.optimizer.iterations == steps + 3
    assert np.isfinite(after) and after < before


# ---- minidl's files, read back by minidl ----

def sample_input(name, shape, rng, batch=3):
    """An input batch for the sample layer of class ``name``."""
    if isinstance(shape, list):
        return [sample_input(name, s, rng, batch) for s in shape]
    shape = (batch,) + tuple(shape)
    if name in ("StringLookup", "Hashing"):
        return rng.choice(np.array(["a", "b", "x", "zz"], dtype=object), shape)
    if name == "TextVectorization":
        return rng.choice(np.array(["A b", "a a b", "c"], dtype=object), shape)
    if name == "IntegerLookup":
        return rng.choice(np.array([5, 7, 0, 3], np.int64), shape)
    if name == "Embedding":
        return rng.integers(0, 10, shape).astype(np.int32)
    if name == "CategoryEncoding":
        return rng.integers(0, 4, shape).astype(np.int32)
    return (rng.random(shape) * 3).astype(np.float32)


def layer_names():
    return list(hostile_configs.LAYER_SAMPLES)


def _sample_model(name):
    model = hostile_configs.layer_model(name)
    if name == "OpLayer":
        # Keras holds an operation only as a node of a functional graph (a Sequential
        # holding one is refused for Keras files).
        inputs = Input(hostile_configs.LAYER_SAMPLES[name][0])
        model = Model(inputs, model.layers[-1](inputs), name="sample")
    shape = (4,) if name == "InputLayer" else hostile_configs.LAYER_SAMPLES[name][0]
    x = sample_input(name, shape, np.random.default_rng(0))
    return model, x


def _perturb(model, rng):
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype)
                       if w.dtype.kind == "f" else w for w in model.get_weights()])


@pytest.mark.parametrize("name", layer_names())
def test_every_layer_round_trips_through_a_keras_archive(tmp_path, name):
    model, x = _sample_model(name)
    _perturb(model, np.random.default_rng(1))
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    loaded = load_model(path)
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0), np.float64),
                               np.asarray(expected, np.float64), rtol=0, atol=TOLERANCE)
    # And the weights alone, through .weights.h5, into a fresh model of the architecture.
    fresh, _ = _sample_model(name)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    fresh.load_weights(str(tmp_path / "m.weights.h5"))
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_round_trips_through_minidl_written_files(tmp_path, name):
    model = load_model(fixture(name, ".keras"))
    x, y = fixture_io(name)
    model.save(str(tmp_path / "m.keras"))
    again = load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)
    assert again.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(keras_optimizer_values(again), keras_optimizer_values(model)):
        np.testing.assert_array_equal(a, b)
    assert same_loss(again.get_compile_config()["loss"], model.get_compile_config()["loss"])


def _frozen_first_layer_model():
    model = Sequential([Input((4,)), layers.Dense(3, trainable=False),
                        layers.BatchNormalization(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_frozen_layers_stay_frozen_with_their_optimizer_state(tmp_path):
    rng = np.random.default_rng(5)
    x, y = rng.random((8, 4)).astype(np.float32), rng.random((8, 1)).astype(np.float32)
    model = _frozen_first_layer_model()
    model.fit(x, y, batch_size=4, verbose=0)
    # The architecture alone keeps the flag (minidl's own JSON too).
    assert not minidl.models.model_from_json(model.to_json()).layers[0].trainable
    model.save(str(tmp_path / "m.keras"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the optimizer's state fits: no warning
        loaded = load_model(str(tmp_path / "m.keras"))
    assert [layer.trainable for layer in loaded.layers] == [False, True, True]
    assert loaded.optimizer.iterations == model.optimizer.iterations == 2
    for a, b in zip(keras_optimizer_values(loaded), keras_optimizer_values(model)):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_optimizer_is_written_as_a_fresh_one(tmp_path):
    model = build_residual()   # compiled, never trained
    model.save(str(tmp_path / "m.keras"))
    loaded = load_model(str(tmp_path / "m.keras"))
    assert loaded.optimizer.iterations == 0
    assert all(not np.any(s) for s in loaded.optimizer.get_slot_arrays())


# ---- which format: by name when writing, by content when reading ----

def test_load_decides_by_content_not_name(tmp_path):
    x, y = fixture_io("mlp")
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(open(fixture("mlp", ".keras"), "rb").read())
    np.testing.assert_allclose(load_model(str(renamed)).predict(x, verbose=0), y,
                               atol=TOLERANCE, rtol=0)
    model = build_mlp()
    model.save(str(tmp_path / "native.minidl"))
    # A native file under a Keras name still loads as what it is.
    os.replace(tmp_path / "native.minidl", tmp_path / "native.keras")
    assert type(load_model(str(tmp_path / "native.keras"))) is Sequential
    weights = tmp_path / "weights.data"
    weights.write_bytes(open(fixture("mlp", ".weights.h5"), "rb").read())
    fresh = build_mlp()
    fresh.load_weights(str(weights))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), y, atol=TOLERANCE, rtol=0)


def test_keras_archive_without_metadata_loads(tmp_path):
    # Keras reads only config.json and model.weights.h5.
    out = str(tmp_path / "m.keras")
    with zipfile.ZipFile(fixture("mlp", ".keras")) as zin, zipfile.ZipFile(out, "w") as zout:
        for member in ("config.json", "model.weights.h5"):
            zout.writestr(member, zin.read(member))
    x, y = fixture_io("mlp")
    np.testing.assert_allclose(load_model(out).predict(x, verbose=0), y, rtol=0,
                               atol=TOLERANCE)


def test_load_model_of_a_weights_file_says_so():
    with pytest.raises(InvalidModelFileError, match="load_weights"):
        load_model(fixture("mlp", ".weights.h5"))


def test_native_format_keeps_its_own_names(tmp_path):
    model = build_mlp()
    model.save(str(tmp_path / "m.minidl"))
    with zipfile.ZipFile(str(tmp_path / "m.minidl")) as zf:
        assert "state.json" in zf.namelist()
    model.save(str(tmp_path / "m.keras"))
    with zipfile.ZipFile(str(tmp_path / "m.keras")) as zf:
        assert "state.json" not in zf.namelist()
        metadata = json.loads(zf.read("metadata.json"))
    assert metadata["keras_version"].startswith("3.")
    model.save_weights(str(tmp_path / "w.weights.h5"))
    with open(str(tmp_path / "w.weights.h5"), "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"


def test_h5_names_write_keras_legacy_layouts(tmp_path):
    pytest.importorskip("minidl.saving.keras.legacy_h5")
    model = load_model(fixture("cnn_bn", ".keras"))
    x, y = fixture_io("cnn_bn")
    model.save(str(tmp_path / "m.h5"))
    with h5py.File(str(tmp_path / "m.h5"), "r") as f:
        assert "model_config" in f.attrs and "model_weights" in f
    again = load_model(str(tmp_path / "m.h5"))
    np.testing.assert_allclose(again.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)
    model.save_weights(str(tmp_path / "w.hdf5"))
    with h5py.File(str(tmp_path / "w.hdf5"), "r") as f:
        assert "layer_names" in f.attrs
    fresh = build_cnn_bn()
    fresh.load_weights(str(tmp_path / "w.hdf5"))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), y, rtol=0, atol=TOLERANCE)


def test_model_checkpoint_writes_keras_files_under_keras_names(tmp_path):
    from minidl.callbacks import ModelCheckpoint
    x, _ = fixture_io("residual")
    y = np.zeros((len(x), 1), np.float32)
    model = build_residual()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[
        ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.keras")),
        ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.h5"), save_weights_only=True)])
    with zipfile.ZipFile(str(tmp_path / "ckpt-2.keras")) as zf:
        assert "model.weights.h5" in zf.namelist()
    loaded = load_model(str(tmp_path / "ckpt-2.keras"))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    fresh = build_residual()
    fresh.load_weights(str(tmp_path / "w-2.weights.h5"))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=TOLERANCE)


def test_save_weights_refuses_a_keras_archive_name(tmp_path):
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        build_mlp().save_weights(str(tmp_path / "w.keras"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("call, name", [("save", "m.keras"), ("save", "m.h5"),
                                        ("save", "m.hdf5"), ("save_weights", "w.weights.h5"),
                                        ("save_weights", "w.h5")])
def test_keras_names_without_h5py_write_nothing(tmp_path, monkeypatch, call, name):
    monkeypatch.setitem(sys.modules, "h5py", None)   # makes `import h5py` fail
    model = build_mlp()
    with pytest.raises(ImportError, match=r"minidl\[keras\]"):
        getattr(model, call)(str(tmp_path / name))
    assert os.listdir(tmp_path) == []


def test_loading_keras_files_without_h5py(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"minidl\[keras\]"):
        load_model(fixture("mlp", ".keras"))
    with pytest.raises(ImportError, match=r"minidl\[keras\]"):
        build_mlp().load_weights(fixture("mlp", ".weights.h5"))


def test_weights_of_another_model_change_nothing(tmp_path):
    model = build_residual()
    before = model.get_weights()
    with pytest.raises(InvalidModelFileError, match="layers/dense"):
        model.load_weights(fixture("mlp", ".weights.h5"))
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_of_another_kind_is_skipped_with_a_warning():
    model = build_mlp()
    model.compile(optimizer=minidl.optimizers.SGD(momentum=0.5), loss="mse")
    with pytest.warns(UserWarning, match="optimizer"):
        model.load_weights(fixture("mlp", ".weights.h5"))
    x, y = fixture_io("mlp")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, atol=TOLERANCE, rtol=0)
    assert model.optimizer.iterations == 0


# ---- hostile .keras files: nothing imported, executed or written ----

def _keras_with_config(tmp_path, edit, name="edited.keras"):
    """The mlp fixture with its config.json changed by ``edit(config)``."""
    source = fixture("mlp", ".keras")
    out = str(tmp_path / name)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w") as zout:
        for member in zin.namelist():
            data = zin.read(member)
            if member == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(member, data)
    return out


def _dense(config):
    return config["config"]["layers"][1]


def test_module_paths_in_config_are_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "evil_module_18.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(package))

    def edit(config):
        _dense(config).update(module="evil_module_18", class_name="Evil",
                              registered_name="evil_module_18>Evil")
    path = _keras_with_config(tmp_path, edit)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(InvalidModelFileError, match="Evil"):
        load_model(path)
    assert not marker.exists() and "evil_module_18" not in sys.modules
    assert sorted(os.listdir(tmp_path)) == listing


@pytest.mark.parametrize("edit, match", [
    (lambda c: _dense(c).update(class_name="NoSuchLayer"), "NoSuchLayer"),
    (lambda c: _dense(c).update(module="os", class_name="system", registered_name=None),
     "system"),
    (lambda c: _dense(c).update(class_name="Lambda", config={
        "name": "l", "function": {"class_name": "__lambda__", "config": {
            "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA",
            "defaults": None, "closure": None}}}), "Lambda"),
    (lambda c: c.update(class_name="Functional", module="subprocess"), "."),
    (lambda c: _dense(c)["config"].update(units=10 ** 12), "."),
    (lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 10 ** 15]), "."),
    (lambda c: c["compile_config"]["optimizer"].update(class_name="Evil", module="os"),
     "os"),
])
def test_hostile_configs_are_clean_errors(tmp_path, edit, match):
    path = _keras_with_config(tmp_path, edit)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(InvalidModelFileError, match=match):
        load_model(path)
    assert sorted(os.listdir(tmp_path)) == listing


def _keras_with_weights(tmp_path, fill, name="edited.keras"):
    """The mlp fixture with its model.weights.h5 member made by ``fill(h5file, original)``."""
    source = fixture("mlp", ".keras")
    h5_path = str(tmp_path / "member.h5")
    with zipfile.ZipFile(source) as zin:
        original = str(tmp_path / "original.h5")
        with open(original, "wb") as f:
            f.write(zin.read("model.weights.h5"))
    with h5py.File(original, "r") as src, h5py.File(h5_path, "w") as dst:
        for key in src:
            src.copy(src[key], dst, key)
        fill(dst)
    out = str(tmp_path / name)
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w") as zout:
        for member in zin.namelist():
            data = zin.read(member)
            if member == "model.weights.h5":
                data = open(h5_path, "rb").read()
            zout.writestr(member, data)
    os.remove(h5_path)
    os.remove(original)
    return out


def _replace_dataset(path, make):
    def fill(h5file):
        del h5file[path]
        make(h5file, path)
    return fill


@pytest.mark.parametrize("fill, match", [
    (_replace_dataset("layers/dense/vars/0",
                      lambda f, p: f.__setitem__(p, h5py.ExternalLink("/etc/passwd", "/x"))),
     "external link"),
    (_replace_dataset("layers/dense/vars/0",
                      lambda f, p: f.__setitem__(p, h5py.SoftLink("/layers/dense_1/vars/0"))),
     "soft link"),
    (_replace_dataset("layers/dense/vars/0",
                      lambda f, p: f.create_dataset(p, shape=(10 ** 6, 10 ** 6), dtype="f4",
                                                    chunks=(1, 16))), "declares"),
    (_replace_dataset("layers/dense/vars/0",
                      lambda f, p: f.create_dataset(p, data=np.zeros((3, 3), np.float32))),
     "shape"),
    (_replace_dataset("layers/dense/vars/0",
                      lambda f, p: f.create_dataset(p, data=np.array([b"abc"] * 4))), "."),
    (lambda f: f["layers/dense/vars"].create_dataset("2", data=np.zeros(3, np.float32)),
     "holds 3 weights"),
    (lambda f: f.__delitem__("layers/dense_1"), "layers/dense_1"),
    (lambda f: f["optimizer/vars"].__delitem__("0") or
     f["optimizer/vars"].create_dataset("0", data=np.array(-5, np.int32)), "negative"),
])
def test_hostile_weights_are_clean_errors(tmp_path, fill, match):
    path = _keras_with_weights(tmp_path, fill)
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(InvalidModelFileError, match=match):
        load_model(path)
    assert sorted(os.listdir(tmp_path)) == listing


def test_virtual_dataset_is_refused(tmp_path):
    def fill(h5file):
        del h5file["layers/dense/vars/1"]
        source = h5py.VirtualSource(str(tmp_path / "elsewhere.h5"), "data", shape=(16,))
        vlayout = h5py.VirtualLayout(shape=(16,), dtype="f4")
        vlayout[:] = source
        h5file["layers/dense/vars"].create_virtual_dataset("1", vlayout)
    path = _keras_with_weights(tmp_path, fill)
    with pytest.raises(InvalidModelFileError, match="virtual"):
        load_model(path)


@pytest.mark.parametrize("cut", [0, 10, 100, 1000, 5000, 20000, -100, -1])
def test_truncated_keras_files_are_clean_errors(tmp_path, cut):
    data = open(fixture("mlp", ".keras"), "rb").read()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[:cut])
    with pytest.raises(InvalidModelFileError):
        load_model(str(path))
    weights = open(fixture("mlp", ".weights.h5"), "rb").read()
    path = tmp_path / "cut.weights.h5"
    path.write_bytes(weights[:cut])
    with pytest.raises(InvalidModelFileError):
        build_mlp().load_weights(str(path))


# ---- Keras reads minidl's files (the comparison job, where Keras is installed) ----

@pytest.mark.parametrize("name", FIXTURES)
def test_keras_loads_minidl_written_files(keras, tmp_path, name):
    model = load_model(fixture(name, ".keras"))
    x, _ = fixture_io(name)
    # Trained on in minidl, so the weights and optimizer state are minidl's own.
    y_train = np.zeros((len(x),) + model.output_shape[1:], np.float32)
    if COMPILED_WITH[name][1] == "sparse_categorical_crossentropy":
        y_train = np.zeros(len(x), np.int64)
    model.train_on_batch(x, y_train)
    expected = model.predict(x, verbose=0)
    model.save(str(tmp_path / "m.keras"))
    model.save_weights(str(tmp_path / "m.weights.h5"))
    theirs = keras.saving.load_model(str(tmp_path / "m.keras"))
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), expected,
                               rtol=0, atol=TOLERANCE)
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations
    assert type(theirs.optimizer).__name__ == type(model.optimizer).__name__
    other = keras.saving.load_model(fixture(name, ".keras"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # Keras warns when it skips variables
        other.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_allclose(np.asarray(other.predict(x, verbose=0)), expected,
                               rtol=0, atol=TOLERANCE)
    for a, b in zip(other.optimizer.variables, keras_optimizer_values(model)):
        np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["cnn_bn", "residual", "nested", "lstm_text"])
def test_training_on_after_loading_matches_keras(keras, name):
    # The optimizer state restored from Keras's file makes the next steps Keras's steps.
    ours = load_model(fixture(name, ".keras"))
    theirs = keras.saving.load_model(fixture(name, ".keras"))
    x, _ = fixture_io(name)
    rng = np.random.default_rng(7)
    if COMPILED_WITH[name][1] == "sparse_categorical_crossentropy":
        y = rng.integers(0, ours.output_shape[-1], len(x))
    else:
        y = rng.random((len(x),) + ours.output_shape[1:]).astype(np.float32)
    for _ in range(2):
        ours.train_on_batch(x, y)
        theirs.train_on_batch(x, y)
    np.testing.assert_allclose(ours.predict(x, verbose=0),
                               np.asarray(theirs.predict(x, verbose=0)), rtol=0, atol=1e-4)


# Layers Keras cannot rebuild from a minidl file, and why.
KERAS_CANNOT_LOAD = {
    "OpLayer": "minidl's own layer (an ops call in a functional model); Keras has none",
    "StringLookup": "needs TensorFlow in Keras", "IntegerLookup": "needs TensorFlow in Keras",
    "Hashing": "needs TensorFlow in Keras", "TextVectorization": "needs TensorFlow in Keras",
}


# Layers Keras rebuilds but computes otherwise at inference, and how.
KERAS_PREDICTS_OTHERWISE = {
    "RandomCrop": "Keras 3.15 passes inference inputs through uncropped (its docstring says "
                  "it crops the center); minidl crops the center",
}


@pytest.mark.parametrize("name", [n for n in layer_names() if n not in KERAS_CANNOT_LOAD])
def test_keras_loads_every_layer_minidl_writes(keras, tmp_path, name):
    model, x = _sample_model(name)
    rng = np.random.default_rng(2)
    _perturb(model, rng)
    path = str(tmp_path / "m.keras")
    model.save(path)
    theirs = keras.saving.load_model(path)
    assert type(theirs.layers[-1]).__name__ == keras_class_name(model.layers[-1])
    if name in KERAS_PREDICTS_OTHERWISE:
        return
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0), np.float64),
                               np.asarray(expected, np.float64), rtol=0, atol=TOLERANCE)
    # New weights through .weights.h5 into Keras's model of that architecture.
    _perturb(model, rng)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    theirs.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0), np.float64),
                               np.asarray(model.predict(x, verbose=0), np.float64),
                               rtol=0, atol=TOLERANCE)


OPTIMIZERS = {
    "sgd": lambda m: m.SGD(0.05),
    "sgd_nesterov": lambda m: m.SGD(0.05, momentum=0.8, nesterov=True),
    "adam_amsgrad": lambda m: m.Adam(0.01, amsgrad=True),
    "adamw": lambda m: m.AdamW(0.01, weight_decay=0.01),
    "rmsprop_centered": lambda m: m.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda m: m.Adagrad(0.05),
    "nadam": lambda m: m.Nadam(0.01),
    "adam_schedule": lambda m: m.Adam(m.schedules.ExponentialDecay(0.01, 3, 0.5)),
}


def test_subclassed_weights_match_keras(keras, tmp_path):
    class KerasTwoDense(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.second = keras.layers.Dense(3)
            self.first = keras.layers.Dense(2, activation="tanh")
            self.blocks = [keras.layers.Dense(2), keras.layers.Dense(2)]

        def call(self, x):
            return self.second(self.blocks[1](self.blocks[0](self.first(x))))
    x = np.random.default_rng(3).random((5, 4)).astype(np.float32)
    theirs = KerasTwoDense()
    theirs(x)
    theirs.save_weights(str(tmp_path / "k.weights.h5"))
    ours = TwoDense()
    ours(x)
    ours.load_weights(str(tmp_path / "k.weights.h5"))
    np.testing.assert_allclose(ours.predict(x, verbose=0),
                               np.asarray(theirs.predict(x, verbose=0)), rtol=0, atol=TOLERANCE)
    _perturb(ours, np.random.default_rng(4))
    ours.save_weights(str(tmp_path / "m.weights.h5"))
    theirs.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               ours.predict(x, verbose=0), rtol=0, atol=TOLERANCE)


def test_frozen_layer_training_matches_keras(keras, tmp_path):
    rng = np.random.default_rng(6)
    x, y = rng.random((8, 4)).astype(np.float32), rng.random((8, 1)).astype(np.float32)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, trainable=False),
                               keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    theirs.compile("adam", "mse")
    theirs.fit(x, y, batch_size=4, verbose=0)
    _train_on_and_back(keras, theirs, x, y, tmp_path)


def _train_on_and_back(keras, theirs, x, y, tmp_path, iterations=None):
    """``theirs`` (a trained Keras model) through a .keras file into minidl; both train two
    more steps and must predict the same; then minidl's file back into Keras, whose model
    (returned) holds as many optimizer variables as ``theirs``."""
    theirs.save(str(tmp_path / "k.keras"))
    ours = load_model(str(tmp_path / "k.keras"))
    if iterations is not None:
        assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == iterations
    # The next steps from the restored state are Keras's steps.
    for _ in range(2):
        theirs.train_on_batch(x, y)
        ours.train_on_batch(x, y)
    np.testing.assert_allclose(ours.predict(x, verbose=0),
                               np.asarray(theirs.predict(x, verbose=0)), rtol=0, atol=1e-5)
    # And back: Keras reads minidl's optimizer variables as its own.
    ours.save(str(tmp_path / "m.keras"))
    again = keras.saving.load_model(str(tmp_path / "m.keras"))
    assert len(again.optimizer.variables) == len(theirs.optimizer.variables)
    return again


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_maps_both_ways(keras, tmp_path, name):
    rng = np.random.default_rng(0)
    x = rng.random((16, 5)).astype(np.float32)
    y = rng.random((16, 2)).astype(np.float32)
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"),
                               keras.layers.Dense(2)])
    theirs.compile(OPTIMIZERS[name](keras.optimizers), "mse")
    theirs.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    again = _train_on_and_back(keras, theirs, x, y, tmp_path, iterations=4)
    for a, b in zip(again.optimizer.variables, theirs.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=0, atol=1e-5)


# Every test but those of a machine without h5py needs h5py (the minidl[keras] extra).
_WITHOUT_H5PY = {"test_keras_names_without_h5py_write_nothing",
                 "test_loading_keras_files_without_h5py",
                 "test_save_weights_refuses_a_keras_archive_name"}
_requires_h5py = pytest.mark.skipif(h5py is None, reason="needs h5py (minidl[keras])")
for _name, _test in list(globals().items()):
    if _name.startswith("test_") and callable(_test) and _name not in _WITHOUT_H5PY:
        globals()[_name] = _requires_h5py(_test)
