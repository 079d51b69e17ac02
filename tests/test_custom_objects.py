"""Custom objects, as Keras's: ``load_model(..., custom_objects=...)``,
``custom_object_scope``, ``get_custom_objects``, ``get_registered_name`` /
``get_registered_object``, and the ``custom_objects`` of ``from_config``, ``model_from_json``
and the ``deserialize`` functions.

A program's own classes and functions, unregistered, are saved by name in every format and
load back when the program names them; Keras's files of a custom model load the same way
(tests/data/keras/custom.*, written by real Keras with tests/data/keras/make_fixtures.py).
"""
import os
import threading
import warnings

import numpy as np
import pytest

import minidl
from minidl import Input, layers, ops
from minidl.layers.base import LAYERS
from minidl.losses import FUNCTIONS, LOSSES
from minidl.models import Sequential, load_model, model_from_json
from minidl.saving import (CustomObjectScope, InvalidModelFileError, custom_object_scope,
                           get_custom_objects, get_registered_name, get_registered_object)

try:
    import h5py
except ImportError:   # minidl[keras] not installed: the Keras formats' cases skip
    h5py = None

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")


# ---- a program's own objects (the names of tests/data/keras/make_fixtures.py's) ----

class Scale(layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                     name="scale")

    def call(self, x):
        return x * self.scale


def scaled_mse(y_true, y_pred):
    return 2.0 * ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_error(y_true, y_pred):
    return ops.mean(y_pred - y_true, axis=-1)


def leaky_tanh(x):
    return ops.tanh(x) + 0.1 * x


def halve(x):
    return x * 0.5


class HalfMSE(minidl.losses.Loss):
    def call(self, y_true, y_pred):
        return 0.5 * ops.mean(ops.square(y_true - y_pred), axis=-1)


class SlowAdam(minidl.optimizers.Adam):
    pass


class Shrink(minidl.regularizers.Regularizer):
    def __init__(self, rate=0.01):
        self.rate = rate

    def __call__(self, w):
        return self.rate * ops.sum(ops.square(w))

    def get_config(self):
        return {"rate": self.rate}


def small_bias(b):
    return 0.01 * ops.sum(ops.abs(b))


OWN = {"Scale": Scale, "scaled_mse": scaled_mse, "mean_error": mean_error,
       "leaky_tanh": leaky_tanh, "halve": halve, "small_bias": small_bias,
       "HalfMSE": HalfMSE, "SlowAdam": SlowAdam, "Shrink": Shrink}


@pytest.fixture(autouse=True)
def clean_global_objects():
    """Each test starts and ends with the process-wide dict as it found it."""
    before = dict(get_custom_objects())
    yield
    get_custom_objects().clear()
    get_custom_objects().update(before)


def custom_model(loss=scaled_mse, metrics=(mean_error,), optimizer="adam"):
    minidl.utils.set_random_seed(3)
    model = Sequential([Input((5,)), Scale(),
                        layers.Dense(3, activation=leaky_tanh, kernel_regularizer=Shrink(0.001),
                                     bias_regularizer=small_bias),
                        layers.Lambda(halve), layers.Dense(2)])
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 5)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model, x, y


def needs_format(suffix):
    if suffix != ".minidl" and h5py is None:
        pytest.skip("the Keras formats need h5py (minidl[keras])")


# ---- the scope ----

def test_scope_resolves_names_of_its_kind_only_and_ends_with_the_block():
    with pytest.raises(ValueError, match="Unknown layer 'Scale'"):
        LAYERS.lookup("Scale")
    with custom_object_scope({"Scale": Scale, "scaled_mse": scaled_mse}) as scope:
        assert isinstance(scope, CustomObjectScope)
        assert LAYERS.lookup("Scale") is Scale
        assert LAYERS.lookup("scale") is Scale          # names are case-insensitive
        assert FUNCTIONS.lookup("scaled_mse") is scaled_mse
        with pytest.raises(ValueError, match="Unknown loss 'Scale'"):
            LOSSES.lookup("Scale")                      # a layer is no loss
        with pytest.raises(ValueError, match="Unknown layer 'scaled_mse'"):
            LAYERS.lookup("scaled_mse")                 # nor a function a layer
        assert isinstance(layers.deserialize({"class_name": "Scale", "config": {}}), Scale)
    with pytest.raises(ValueError, match="Unknown layer 'Scale'"):
        LAYERS.lookup("Scale")


def test_scopes_nest_the_inner_wins_and_an_error_closes_them():
    class Other(layers.Layer):
        pass
    with custom_object_scope({"Scale": Scale}):
        with custom_object_scope({"Scale": Other}):
            assert LAYERS.lookup("Scale") is Other
        assert LAYERS.lookup("Scale") is Scale
        with pytest.raises(RuntimeError):
            with custom_object_scope({"Scale": Other}):
                raise RuntimeError
        assert LAYERS.lookup("Scale") is Scale
    with custom_object_scope(None):
        with pytest.raises(ValueError):
            LAYERS.lookup("Scale")


def test_scope_is_per_thread():
    seen = []
    inside, done = threading.Event(), threading.Event()

    def other_thread():
        inside.wait()
        try:
            LAYERS.lookup("Scale")
            seen.append("found")
        except ValueError:
            seen.append("not found")
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with custom_object_scope({"Scale": Scale}):
        inside.set()
        done.wait(10)
    thread.join(10)
    assert seen == ["not found"]


def test_process_wide_objects_resolve_everywhere():
    get_custom_objects()["Scale"] = Scale
    assert LAYERS.lookup("Scale") is Scale
    result = []
    thread = threading.Thread(target=lambda: result.append(LAYERS.lookup("Scale")))
    thread.start()
    thread.join(10)
    assert result == [Scale]
    # A scope still comes first.
    class Other(layers.Layer):
        pass
    with custom_object_scope({"Scale": Other}):
        assert LAYERS.lookup("Scale") is Other


@pytest.mark.parametrize("bad", [[Scale], {1: Scale}, "Scale", (("Scale", Scale),)])
def test_custom_objects_must_be_a_dict_of_names(bad, tmp_path):
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        custom_object_scope(bad)
    model, _, _ = custom_model()
    path = str(tmp_path / "m.minidl")
    model.save(path)
    with pytest.raises(TypeError, match="load_model: custom_objects must be a dict"):
        load_model(path, custom_objects=bad)
    with pytest.raises(TypeError, match="model_from_json: custom_objects must be a dict"):
        model_from_json(model.to_json(), custom_objects=bad)


# ---- registered names ----

def test_registered_name_and_object():
    @minidl.saving.register_keras_serializable(package="objects_test")
    class Registered(layers.Layer):
        pass

    @minidl.saving.register_keras_serializable(package="objects_test", name="fn")
    def registered_fn(y_true, y_pred):
        return ops.mean(y_pred, axis=-1)

    assert get_registered_name(Registered) == "objects_test>Registered"
    assert get_registered_name(registered_fn) == "objects_test>fn"
    assert get_registered_name(Scale) == "Scale"
    assert get_custom_objects()["objects_test>Registered"] is Registered
    assert get_registered_object("objects_test>Registered") is Registered
    assert get_registered_object("objects_test>fn") is registered_fn
    assert get_registered_object("Scale") is None
    assert get_registered_object("Scale", custom_objects={"Scale": Scale}) is Scale
    assert get_registered_object("Scale", module_objects={"Scale": Scale}) is Scale
    with custom_object_scope({"Scale": HalfMSE}):
        # The scope before the arguments, as in Keras.
        assert get_registered_object("Scale", custom_objects={"Scale": Scale}) is HalfMSE
    assert minidl.utils.get_registered_name is get_registered_name
    assert minidl.utils.custom_object_scope is custom_object_scope
    with pytest.raises(TypeError, match="name to be a str"):
        get_registered_object(3)
    with pytest.raises(TypeError, match="module_objects to be a dict"):
        get_registered_object("Scale", module_objects=[Scale])
    with pytest.raises(TypeError, match="a class or function"):
        get_registered_name(3)


# ---- load_model ----

@pytest.mark.parametrize("suffix", [".minidl", ".keras", ".h5"])
@pytest.mark.parametrize("case", ["function loss and metric", "Loss class", "optimizer"])
def test_own_objects_save_and_load_back_by_name(tmp_path, suffix, case):
    needs_format(suffix)
    kwargs = {"function loss and metric": {},
              "Loss class": {"loss": HalfMSE(), "metrics": ()},
              "optimizer": {"optimizer": SlowAdam(learning_rate=0.003)}}[case]
    model, x, y = custom_model(**kwargs)
    path = str(tmp_path / ("m" + suffix))
    model.save(path)
    with pytest.raises((ValueError, InvalidModelFileError), match="custom_objects"):
        load_model(path)
    loaded = load_model(path, custom_objects=OWN)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=1e-6)
    assert isinstance(loaded.layers[0], Scale)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert type(loaded.loss) is type(model.loss)
    if suffix == ".minidl":
        # minidl's own file resumes exactly: the next step is the original's.
        for m in (model, loaded):
            m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            assert a.tobytes() == b.tobytes()
    else:
        loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # The same through a scope, and through the process-wide dict.
    with custom_object_scope(OWN):
        assert isinstance(load_model(path).layers[0], Scale)
    get_custom_objects().update(OWN)
    assert isinstance(load_model(path, compile=False).layers[0], Scale)


def test_load_model_checks_its_switches(tmp_path):
    model, _, _ = custom_model()
    path = str(tmp_path / "m.minidl")
    model.save(path)
    for name in ("compile", "safe_mode", "restore_random_state"):
        with pytest.raises(TypeError, match=f"`{name}` must be True or False"):
            load_model(path, custom_objects=OWN, **{name: "no"})
    # minidl never loads code from a file: safe_mode changes nothing.
    for safe_mode in (True, False):
        assert isinstance(load_model(path, OWN, safe_mode=safe_mode).layers[0], Scale)


def test_from_config_json_and_deserialize_take_custom_objects():
    model, x, _ = custom_model()
    config = model.get_config()
    with pytest.raises(ValueError, match="Scale"):
        Sequential.from_config(config)
    rebuilt = Sequential.from_config(config, custom_objects=OWN)
    assert isinstance(rebuilt.layers[0], Scale)
    rebuilt = model_from_json(model.to_json(), custom_objects=OWN)
    assert isinstance(rebuilt.layers[0], Scale)
    functional = minidl.Model.from_config(_functional(x).get_config(), custom_objects=OWN)
    assert isinstance(functional.layers[1], Scale)
    assert minidl.losses.deserialize({"class_name": "HalfMSE", "config": {}},
                                     custom_objects=OWN).__class__ is HalfMSE
    assert isinstance(minidl.optimizers.deserialize(
        minidl.optimizers.serialize(SlowAdam()), custom_objects=OWN), SlowAdam)
    assert isinstance(minidl.regularizers.deserialize(
        {"class_name": "Shrink", "config": {"rate": 0.5}}, custom_objects=OWN), Shrink)
    with pytest.raises(ValueError, match="Shrink"):
        minidl.regularizers.deserialize({"class_name": "Shrink", "config": {"rate": 0.5}})
    scale = layers.deserialize(layers.serialize(Scale(name="s")), custom_objects=OWN)
    assert isinstance(scale, Scale) and scale.name == "s"
    metric = minidl.metrics.deserialize("mean_error", custom_objects=OWN)
    assert metric._fn is mean_error
    with pytest.raises(TypeError, match="expects a Layer"):
        layers.serialize(Scale)


class Halves(minidl.initializers.Initializer):
    def __call__(self, shape, dtype=None):
        return np.full(shape, 0.5, dtype or np.float32)


def test_deserialize_finds_an_own_initializer():
    init = minidl.initializers.deserialize({"class_name": "Halves", "config": {}},
                                           custom_objects={"Halves": Halves})
    assert isinstance(init, Halves)
    with pytest.raises(ValueError, match="Halves"):
        minidl.initializers.deserialize({"class_name": "Halves", "config": {}})


def _functional(x):
    inputs = Input((5,))
    return minidl.Model(inputs, layers.Dense(2)(Scale()(inputs)))


# ---- Keras's files of a custom model ----

@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_written_custom_model_loads_with_custom_objects(suffix):
    needs_format(suffix)
    path = os.path.join(DATA, "custom" + suffix)
    with pytest.raises(InvalidModelFileError, match="custom_objects"):
        load_model(path)
    model = load_model(path, custom_objects=OWN)
    with np.load(os.path.join(DATA, "custom_io.npz")) as io:
        x, expected = io["x"], io["y"]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=1e-5)
    assert isinstance(model.layers[0], Scale)
    assert model.layers[1].activation.fn is leaky_tanh
    assert model.layers[2].function is halve
    assert model.loss.fn is scaled_mse
    model.fit(x, expected, verbose=0)


def test_keras_loads_minidl_written_custom_model(keras, tmp_path):
    needs_format(".keras")
    model, x, y = custom_model()
    model.save(str(tmp_path / "m.keras"))

    class Scale(keras.layers.Layer):   # Keras's weight paths follow the class name
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                         name="scale")

        def call(self, x):
            return x * self.scale

    @keras.saving.register_keras_serializable(package="objects_test")
    class KerasShrink(keras.regularizers.Regularizer):
        def __init__(self, rate=0.01):
            self.rate = rate

        def __call__(self, w):
            return self.rate * keras.ops.sum(keras.ops.square(w))

        def get_config(self):
            return {"rate": self.rate}

    def keras_scaled_mse(y_true, y_pred):
        return 2.0 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    def keras_mean_error(y_true, y_pred):
        return keras.ops.mean(y_pred - y_true, axis=-1)

    def keras_leaky_tanh(x):
        return keras.ops.tanh(x) + 0.1 * x

    def keras_halve(x):
        return x * 0.5

    def keras_small_bias(b):
        return 0.01 * keras.ops.sum(keras.ops.abs(b))

    theirs = keras.saving.load_model(
        str(tmp_path / "m.keras"),
        custom_objects={"Scale": Scale, "Shrink": KerasShrink,
                        "scaled_mse": keras_scaled_mse, "mean_error": keras_mean_error,
                        "leaky_tanh": keras_leaky_tanh, "halve": keras_halve,
                        "small_bias": keras_small_bias})
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = model.evaluate(x, y, verbose=0, return_dict=True)
        keras_loss = theirs.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(keras_loss["loss"], ours["loss"], rtol=1e-4)
