"""minidl.saving.serialize_keras_object / deserialize_keras_object: objects a config holds,
to JSON and back, in minidl's form and Keras's (the Keras forms below are what Keras 3.15's
``keras.saving.serialize_keras_object`` wrote for the same objects)."""
import json
import os

import numpy as np
import pytest

import minidl
from minidl import Input, layers, ops
from minidl.models import Sequential, load_model
from minidl.saving import (custom_object_scope, deserialize_keras_object,
                           serialize_keras_object)

try:
    import h5py
except ImportError:
    h5py = None


def _round_trip(obj, **kwargs):
    config = serialize_keras_object(obj)
    return deserialize_keras_object(json.loads(json.dumps(config)), **kwargs)


@pytest.mark.parametrize("make", [
    lambda: layers.Dense(3, activation="relu", kernel_regularizer="l2", name="d"),
    lambda: layers.Conv2D(4, 3, padding="same", name="c"),
    lambda: minidl.losses.Huber(delta=2.0),
    lambda: minidl.metrics.AUC(num_thresholds=50),
    lambda: minidl.optimizers.Adam(learning_rate=0.01, beta_1=0.8),
    lambda: minidl.schedules.ExponentialDecay(0.1, 10, 0.9),
    lambda: minidl.activations.LeakyReLU(0.3),
    lambda: minidl.initializers.HeNormal(seed=3),
    lambda: minidl.regularizers.L1L2(l1=0.1, l2=0.2),
    lambda: minidl.constraints.MaxNorm(2.0),
], ids=["dense", "conv", "loss", "metric", "optimizer", "schedule", "activation",
        "initializer", "regularizer", "constraint"])
def test_objects_of_every_kind_round_trip(make):
    obj = make()
    again = _round_trip(obj)
    assert type(again) is type(obj)
    assert again.get_config() == obj.get_config()
    assert serialize_keras_object(obj)["module"].startswith("minidl.")


def test_plain_values_arrays_and_structures_round_trip():
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": np.float32(1.5)},
             "array": np.arange(6, dtype=np.int16).reshape(2, 3),
             "layer": layers.Dropout(0.25, name="drop")}
    again = _round_trip(value)
    assert again["a"] == [1, 2.5, "x", None, True] and again["b"] == {"c": 1.5}
    assert again["array"].dtype == np.int16
    np.testing.assert_array_equal(again["array"], value["array"])
    assert isinstance(again["layer"], layers.Dropout) and again["layer"].rate == 0.25


def scaled_relu(x):
    return ops.relu(x) * 2.0


def test_functions_are_saved_by_name():
    assert _round_trip(minidl.activations.relu) is minidl.activations.relu
    assert _round_trip(minidl.losses.mean_squared_error) is minidl.losses.mean_squared_error
    config = serialize_keras_object(scaled_relu)
    assert config == {"module": "builtins", "class_name": "function",
                      "config": "scaled_relu", "registered_name": "function"}
    with pytest.raises(ValueError, match="scaled_relu.*custom_objects"):
        deserialize_keras_object(config)
    assert deserialize_keras_object(config, custom_objects={"scaled_relu": scaled_relu}) \
        is scaled_relu
    # A function activation or regularizer is its function.
    dense = layers.Dense(2, activation=scaled_relu)
    assert serialize_keras_object(dense.activation) == config
    with pytest.raises(ValueError, match="lambda expression"):
        serialize_keras_object(lambda x: x)


class Gate(layers.Layer):
    """A custom layer holding a sublayer, configured as the Keras guide shows."""

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, x):
        return x * ops.sigmoid(self.inner(x))

    def get_config(self):
        config = super().get_config()
        config["inner"] = serialize_keras_object(self.inner)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["inner"] = deserialize_keras_object(config["inner"])
        return cls(**config)


@pytest.mark.parametrize("suffix", [".minidl", ".keras"])
def test_a_layer_with_a_sublayer_saves_and_loads(tmp_path, suffix):
    if suffix == ".keras" and h5py is None:
        pytest.skip("the Keras format needs h5py (minidl[keras])")
    minidl.utils.set_random_seed(2)
    model = Sequential([Input((4,)), Gate(layers.Dense(4, activation=scaled_relu)),
                        layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    path = os.path.join(tmp_path, "m" + suffix)
    model.save(path)
    loaded = load_model(path, custom_objects={"Gate": Gate, "scaled_relu": scaled_relu})
    assert isinstance(loaded.layers[0].inner, layers.Dense)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=1e-6)


KERAS_FORMS = {
    "dense": {"module": "keras.layers", "class_name": "Dense", "config": {
        "name": "dense", "trainable": True, "dtype": {
            "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
            "registered_name": None},
        "units": 3, "activation": "relu", "use_bias": True, "kernel_initializer": {
            "module": "keras.initializers", "class_name": "GlorotUniform",
            "config": {"seed": None, "input_axes": None, "output_axes": None},
            "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                             "config": {}, "registered_name": None},
        "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None, "quantization_config": None}, "registered_name": None},
    "adam": {"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Adam",
             "config": {"name": "adam", "learning_rate": 0.01, "weight_decay": None,
                        "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                        "use_ema": False, "ema_momentum": 0.99,
                        "ema_overwrite_frequency": None, "loss_scale_factor": None,
                        "gradient_accumulation_steps": None, "beta_1": 0.9, "beta_2": 0.999,
                        "epsilon": 1e-07, "amsgrad": False}, "registered_name": "Adam"},
    "relu": {"module": "builtins", "class_name": "function", "config": "relu",
             "registered_name": "function"},
    "schedule": {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                 "config": {"initial_learning_rate": 0.1, "decay_steps": 10,
                            "decay_rate": 0.9, "staircase": False,
                            "name": "ExponentialDecay"}, "registered_name": None},
    "he": {"module": "keras.initializers", "class_name": "HeNormal",
           "config": {"seed": 3, "input_axes": None, "output_axes": None},
           "registered_name": None},
}


def test_keras_forms_are_read():
    dense = deserialize_keras_object(KERAS_FORMS["dense"])
    assert isinstance(dense, layers.Dense) and dense.units == 3
    assert dense.get_config()["activation"] == "relu"
    adam = deserialize_keras_object(KERAS_FORMS["adam"])
    assert type(adam) is minidl.optimizers.Adam and adam.learning_rate == pytest.approx(0.01)
    assert deserialize_keras_object(KERAS_FORMS["relu"]) is minidl.activations.relu
    schedule = deserialize_keras_object(KERAS_FORMS["schedule"])
    assert isinstance(schedule, minidl.schedules.ExponentialDecay)
    assert deserialize_keras_object(KERAS_FORMS["he"]).get_config() == {"seed": 3}


def test_what_is_refused():
    with pytest.raises(ValueError, match="bytecode"):
        deserialize_keras_object({"class_name": "__lambda__", "config": {"code": "4wEA"}})
    with pytest.raises(ValueError, match="'Nope'"):
        deserialize_keras_object({"module": "keras.layers", "class_name": "Nope",
                                  "config": {}})
    with pytest.raises(ValueError, match="'Nope'.*custom_objects"):
        deserialize_keras_object({"class_name": "Nope", "config": {}})
    with pytest.raises(TypeError, match="type object"):
        serialize_keras_object(object())
    with pytest.raises(TypeError, match="safe_mode"):
        deserialize_keras_object(None, safe_mode="yes")
    with pytest.raises(ValueError, match="__numpy__"):
        deserialize_keras_object({"class_name": "__numpy__", "config": [1, 2]})
    with custom_object_scope({"Gate": Gate}):
        gate = deserialize_keras_object(serialize_keras_object(Gate(layers.Dense(2))))
    assert isinstance(gate, Gate)


def test_keras_rebuilds_the_sublayer_minidl_wrote(keras, tmp_path):
    if h5py is None:
        pytest.skip("the Keras format needs h5py (minidl[keras])")
    minidl.utils.set_random_seed(2)
    model = Sequential([Input((4,)), Gate(layers.Dense(
        4, activation="tanh", kernel_initializer=minidl.initializers.HeNormal(seed=1))),
        layers.Dense(1)])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    path = os.path.join(tmp_path, "gate.keras")
    model.save(path)
    theirs = keras.saving.load_model(path, custom_objects={"Gate": keras_gate_class(keras)})
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)),
                               model.predict(x, verbose=0), rtol=0, atol=1e-5)


def keras_gate_class(keras):
    """Keras's counterpart of Gate, of the same name (Keras's weight paths follow it)."""
    class Gate(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return x * keras.ops.sigmoid(self.inner(x))

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
            return cls(**config)
    return Gate
