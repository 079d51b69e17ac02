"""minidl.saving.keras.config: Keras 3 / Keras 2 JSON configs <-> minidl specs.

Without Keras, the configs that real Keras 3.15.1 wrote (tests/data/keras/keras_configs.json,
made by make_configs.py beside it) are read back into minidl layers, models and compile
settings equal to the ones minidl builds from the same arguments; a Keras 2 model config
written to Keras 2's format loads; hostile configs are refused. With Keras installed
(KERAS_BACKEND=torch), what minidl writes is also read by Keras itself.
"""
import copy
import json
import os
import sys

import numpy as np
import pytest

from hostile_configs import LAYER_SAMPLES, METRIC_SAMPLES, SCHEDULE_SAMPLES, sample_layer
from minidl import (Input, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers import (GRU, LSTM, Activation, Add, BatchNormalization, Bidirectional,
                           Concatenate, Conv2D, Dense, Dropout, Embedding, Flatten,
                           GlobalAveragePooling2D, MaxPooling2D, TimeDistributed)
from minidl.layers.base import LAYERS, Layer
from minidl.models import Model, Sequential
from minidl.saving.keras import compile_settings
from minidl.saving.keras import config as kconfig
from minidl.saving.model_io import _compile_from_config, _model_from_spec, model_config
from minidl.utils.registry import serialize

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
with open(os.path.join(DATA, "keras_configs.json")) as _file:
    KERAS = json.load(_file)
NEEDS_TENSORFLOW = ("StringLookup", "IntegerLookup", "Hashing", "TextVectorization")
_OBJECT_REGISTRIES = {"_initializer": initializers, "_regularizer": regularizers,
                      "_constraint": constraints}


def _canonical(value, key=""):
    """A config with what only spelling changes made equal: names of layers dropped (they
    are generated), an initializer / regularizer / constraint as its class and config
    ('uniform' and 'random_uniform' are one initializer), tuples as lists."""
    for suffix, module in _OBJECT_REGISTRIES.items():
        if key.endswith(suffix) and value is not None:
            obj = module.get(value)
            return [type(obj).__name__, obj.get_config()]
    if isinstance(value, dict):
        return {k: _canonical(v, k) for k, v in value.items() if k != "name"}
    if isinstance(value, (list, tuple)):
        if len(value) == 3 and isinstance(value[0], str) and key in ("keras_history",
                                                                     "input_layers",
                                                                     "output_layers"):
            return ["<layer>", *value[1:]]
        return [_canonical(v, key) for v in value]
    return value


# Arguments that Keras takes but leaves out of its get_config (they load as their defaults,
# in Keras too).
KERAS_DROPS = {"SimpleRNN": ("seed",), "CategoryEncoding": ("sparse",)}


def _same_layer(rebuilt, original, name, through_keras=False, factor_range=None):
    a, b = _canonical(serialize(rebuilt)), _canonical(serialize(original))
    for field in KERAS_DROPS.get(name, ()) if through_keras else ():
        b["config"][field] = a["config"][field]
    if name in ("RandomContrast", "RandomBrightness"):
        # Keras writes the factor as its (lower, upper) pair: compare the ranges.
        assert (rebuilt.lower, rebuilt.upper) == (factor_range or (original.lower,
                                                                   original.upper))
        a["config"].pop("factor"), b["config"].pop("factor")
    assert a == b


# ---- single layers ----

@pytest.mark.parametrize("name", sorted(KERAS["layers"]))
def test_layer_from_keras_configs(name):
    spec = kconfig.layer_spec_from_keras(copy.deepcopy(KERAS["layers"][name]))
    # Keras 3.15's RandomContrast(0.2) draws contrast from [1, 1.2] (its lower bound is
    # clipped at 0), unlike minidl's [0.8, 1.2]: the file means what Keras does.
    _same_layer(LAYERS.get(spec, base=Layer), sample_layer(name)[1], name, through_keras=True,
                factor_range=(0.0, 0.2) if name == "RandomContrast" else None)


def test_every_layer_sample_has_a_keras_config_or_a_reason():
    assert set(LAYER_SAMPLES) - set(KERAS["layers"]) == {*NEEDS_TENSORFLOW, "OpLayer"}
    assert KERAS["keras_version"] == "3.15.1"


@pytest.mark.parametrize("name", sorted(set(LAYER_SAMPLES) - {"OpLayer"}))
def test_layer_to_keras_and_back(name):
    _, layer = sample_layer(name)
    written = json.loads(json.dumps(kconfig.layer_spec_to_keras(layer)))
    assert written["module"] in ("keras", "keras.layers", "keras.src.models.functional")
    assert written["class_name"] == ("Functional" if name == "Model" else name)
    _same_layer(LAYERS.get(kconfig.layer_spec_from_keras(written), base=Layer), layer, name)


def _keras():
    os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")


def _json_equal(mine, keras_value):
    """Whether Keras's value equals what minidl wrote, Keras's own additions to an object
    aside (a seed it adds to an initializer config, ...)."""
    if isinstance(mine, dict) and isinstance(keras_value, dict):
        return all(key in keras_value and _json_equal(value, keras_value[key])
                   for key, value in mine.items())
    if isinstance(mine, list) and isinstance(keras_value, list):
        return len(mine) == len(keras_value) and all(map(_json_equal, mine, keras_value))
    if isinstance(mine, dict) and mine.get("class_name") == "DTypePolicy":
        return keras_value in (mine, mine["config"]["name"])
    if isinstance(mine, int) and isinstance(keras_value, list):
        return keras_value == [mine]  # an axis, which Keras keeps as a list
    if isinstance(mine, float) and isinstance(keras_value, float):
        return np.float32(mine) == np.float32(keras_value)
    return mine == keras_value


@pytest.mark.parametrize("name", sorted(set(LAYER_SAMPLES) - {"OpLayer", *NEEDS_TENSORFLOW}))
def test_keras_reads_the_layer_config(name):
    keras = _keras()
    _, layer = sample_layer(name)
    written = json.loads(json.dumps(kconfig.layer_spec_to_keras(layer)))
    keras_layer = keras.saving.deserialize_keras_object(copy.deepcopy(written))
    read = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_layer)))
    mine, theirs = written["config"], read["config"]
    representation = {"RandomContrast": ("factor",), "RandomBrightness": ("factor",)}.get(
        name, KERAS_DROPS.get(name, ()))
    for key, value in mine.items():
        if key not in representation and key not in ("layers", "build_input_shape"):
            assert key in theirs and _json_equal(value, theirs[key]), (key, value,
                                                                       theirs.get(key))
    _same_layer(LAYERS.get(kconfig.layer_spec_from_keras(read), base=Layer), layer, name,
                through_keras=True)


# ---- objects: optimizers, schedules, losses, metrics, initializers, ... ----

_REGISTRIES = {"optimizer": optimizers.OPTIMIZERS, "schedule": schedules.SCHEDULES,
               "loss": losses.LOSSES, "metric": metrics.METRICS,
               "initializer": initializers.INITIALIZERS,
               "regularizer": regularizers.REGULARIZERS, "constraint": constraints.CONSTRAINTS}
_SAMPLES = {"schedule": SCHEDULE_SAMPLES, "metric": METRIC_SAMPLES}


def _object_from_keras(kind, obj):
    """minidl's object of Keras's serialized ``obj``, through the translation of its kind."""
    if kind == "optimizer":
        spec = kconfig.compile_spec_from_keras({"optimizer": obj, "loss": None})["optimizer"]
    elif kind == "loss":
        spec = compile_settings._loss_from_keras(obj, "loss")
    elif kind == "metric":
        spec = compile_settings._metric_from_keras(obj, "metric")
    else:
        spec = kconfig._object_from_keras(obj, _REGISTRIES[kind], kind,
                                          kconfig._KERAS_ONLY_INITIALIZER_ARGS)
    if kind == "schedule":
        return schedules.SCHEDULES.get(spec)
    return {"optimizer": optimizers, "loss": losses, "metric": metrics,
            "initializer": initializers, "regularizer": regularizers,
            "constraint": constraints}[kind].get(spec)


@pytest.mark.parametrize("kind,name", [(kind, name) for kind in sorted(KERAS["objects"])
                                       for name in sorted(KERAS["objects"][kind])])
def test_objects_from_keras_configs(kind, name):
    sample = _SAMPLES.get(kind, {}).get(name, {})
    expected = _REGISTRIES[kind].lookup(name)(**sample).get_config()
    got = _object_from_keras(kind, copy.deepcopy(KERAS["objects"][kind][name])).get_config()
    if kind == "optimizer":
        # Keras names an optimizer 'sgd', 'rmsprop'; minidl keeps the name it is given.
        expected.pop("name"), got.pop("name")
    # Keras keeps its float hyperparameters as float32 (learning_rate 0.0010000000474974513).
    assert _json_equal(json.loads(json.dumps(expected)), json.loads(json.dumps(got))), \
        (expected, got)
    assert set(got) == set(expected)


def test_every_registered_optimizer_schedule_loss_metric_is_in_the_table():
    from hostile_configs import builtin_classes
    for kind, registry in _REGISTRIES.items():
        names = {cls.__name__ for cls in builtin_classes(registry)} - {
            "Constraint", "LossFunctionWrapper", "MeanMetricWrapper", "LossMean"}
        assert names <= set(KERAS["objects"][kind]), (kind, names - set(KERAS["objects"][kind]))


# ---- whole models ----

def _mlp():
    return Sequential([Input((8,), name="x"), Dense(16, activation="relu", name="hidden"),
                       Dropout(0.2, name="drop"), Dense(3, activation="softmax", name="probs")],
                      name="mlp")


def _cnn_branches():
    inputs = Input((8, 8, 3), name="image")
    x = Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = BatchNormalization(name="bn")(x)
    x = Activation("relu", name="relu")(x)
    left = Conv2D(4, 1, name="left")(x)
    right = MaxPooling2D(1, name="right")(x)
    x = Add(name="add")([left, right])
    pooled = GlobalAveragePooling2D(name="gap")(x)
    flat = Flatten(name="flat")(MaxPooling2D(name="pool")(x))
    x = Concatenate(name="concat")([pooled, flat])
    return Model(inputs, Dense(2, name="logits")(x), name="cnn_branches")


def _nested():
    inner_seq = Sequential([Input((6,), name="seq_in"),
                            Dense(5, activation="tanh", name="seq_dense")], name="inner_seq")
    inner_in = Input((5,), name="fn_in")
    inner_fn = Model(inner_in, Dense(4, name="fn_dense")(inner_in), name="inner_fn")
    inputs = Input((6,), name="outer_in")
    outputs = Dense(1, activation="sigmoid", name="head")(inner_fn(inner_seq(inputs)))
    return Model(inputs, outputs, name="nested")


def _text():
    inputs = Input((7,), dtype="int32", name="tokens")
    x = Embedding(20, 4, mask_zero=True, name="embed")(inputs)
    x = Bidirectional(LSTM(3, return_sequences=True, name="lstm"), name="bilstm")(x)
    x = TimeDistributed(Dense(2, name="td_dense"), name="td")(x)
    x = GRU(3, name="gru")(x)
    return Model(inputs, Dense(1, name="out")(x), name="text")


def _nested_output():
    head_in = Input((3,), name="head_in")
    head = Model(head_in, Dense(2, name="head_dense")(head_in), name="head")
    inputs = Input((4,), name="top_in")
    return Model(inputs, head(Dense(3, name="pre")(inputs)), name="nested_output")


MODELS = {"mlp": _mlp, "cnn_branches": _cnn_branches, "nested": _nested,
          "nested_output": _nested_output, "text": _text}


def _architecture(model):
    return [(type(layer).__name__, layer.name, _canonical(layer.get_config()))
            for layer in model.layers if type(layer).__name__ != "OpLayer"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_from_keras_config(name):
    keras_config = copy.deepcopy(KERAS["models"][name])
    spec = kconfig.model_spec_from_keras(keras_config)
    assert "compile_config" not in spec
    loaded = _model_from_spec(spec)
    expected = MODELS[name]()
    if name == "text":
        # Keras records the Embedding's mask as a not_equal op node feeding the
        # Bidirectional; minidl passes the mask along itself.
        ops = [layer for layer in loaded.layers if type(layer).__name__ == "OpLayer"]
        assert [layer.op for layer in ops] == ["not_equal"]
        assert _architecture(loaded) == _architecture(expected)
    else:
        assert model_config(loaded) == model_config(expected)
    x = np.random.default_rng(0).integers(1, 20, (2, 7)) if name == "text" else \
        np.random.default_rng(0).normal(size=(2, *expected.inputs[0].shape[1:]))
    loaded.set_weights(expected.get_weights())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-6)


def test_compile_configs_from_keras():
    compiled = {name: kconfig.compile_spec_from_keras(KERAS["models"][name]["compile_config"])
                for name in MODELS}
    assert compiled["mlp"]["optimizer"] == "adam" or \
        compiled["mlp"]["optimizer"]["class_name"] == "Adam"
    assert compiled["mlp"]["loss"] == "sparse_categorical_crossentropy"
    assert compiled["mlp"]["metrics"] == ["accuracy"]
    sgd = compiled["cnn_branches"]["optimizer"]["config"]
    assert (sgd["momentum"], sgd["nesterov"]) == (0.9, True)
    assert np.float32(sgd["learning_rate"]) == np.float32(0.05)
    assert compiled["cnn_branches"]["loss"]["config"]["from_logits"] is True
    assert compiled["cnn_branches"]["metrics"][0]["class_name"] == "SparseCategoricalAccuracy"
    assert compiled["nested"]["optimizer"]["config"]["learning_rate"]["class_name"] == \
        "ExponentialDecay"
    assert compiled["nested"]["loss"]["config"]["label_smoothing"] == pytest.approx(0.1)
    assert compiled["text"]["optimizer"]["config"]["weight_decay"] == pytest.approx(0.01)
    for name, make in MODELS.items():
        model = make()
        _compile_from_config(model, compiled[name])
        assert model.compiled
    model = _nested()
    _compile_from_config(model, compiled["nested"])
    assert model.optimizer.get_config()["learning_rate"]["class_name"] == "ExponentialDecay"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_to_keras_and_back(name):
    model = MODELS[name]()
    written = json.loads(json.dumps(kconfig.model_config_to_keras(model)))
    assert "compile_config" not in written
    assert _canonical(model_config(_model_from_spec(kconfig.model_spec_from_keras(
        written)))) == _canonical(model_config(model))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_reads_the_model_config(name):
    keras = _keras()
    model = MODELS[name]()
    model.compile(optimizer=optimizers.SGD(0.1, momentum=0.5), loss="mse",
                  metrics=["mae", metrics.AUC(name="auc")])
    written = json.loads(json.dumps(kconfig.model_config_to_keras(model)))
    keras_model = keras.saving.deserialize_keras_object(copy.deepcopy(written))
    assert [layer.name for layer in keras_model.layers] == [layer.name for layer in
                                                           model.layers]
    assert tuple(keras_model.outputs[0].shape) == tuple(model.outputs[0].shape)
    compile_config = json.loads(json.dumps(kconfig.compile_config_to_keras(model)))
    keras_model.compile_from_config(copy.deepcopy(compile_config))
    assert type(keras_model.optimizer).__name__ == "SGD"
    read = json.loads(json.dumps(keras.saving.serialize_keras_object(keras_model)))
    again = _model_from_spec(kconfig.model_spec_from_keras(read))
    if name == "text":
        # Keras adds the Embedding mask's not_equal op node.
        assert _architecture(again) == _architecture(model)
    else:
        assert _canonical(model_config(again)) == _canonical(model_config(model))
    _compile_from_config(again, kconfig.compile_spec_from_keras(read["compile_config"]))
    # Keras keeps the learning rate as float32 (0.10000000149011612).
    assert _json_equal(model.optimizer.get_config(), again.optimizer.get_config())


def _ops_model():
    from minidl import ops
    inputs = Input((4,), name="x")
    scaled = inputs * 2.0
    return Model(inputs, Dense(3, name="dense")(ops.add(scaled, inputs)), name="ops")


def test_op_nodes_to_keras_and_back():
    model = _ops_model()
    written = json.loads(json.dumps(kconfig.model_config_to_keras(model)))
    ops_written = [entry for entry in written["config"]["layers"]
                   if entry["module"].startswith("keras.src.ops")]
    assert [(entry["module"], entry["class_name"]) for entry in ops_written] == [
        ("keras.src.ops.numpy", "Multiply"), ("keras.src.ops.numpy", "Add")]
    assert ops_written[0]["inbound_nodes"][0]["args"][1] == 2.0
    assert model_config(_model_from_spec(kconfig.model_spec_from_keras(written))) == \
        model_config(model)


def test_keras_runs_op_nodes_minidl_wrote():
    keras = _keras()
    model = _ops_model()
    written = json.loads(json.dumps(kconfig.model_config_to_keras(model)))
    keras_model = keras.saving.deserialize_keras_object(written)
    keras_model.get_layer("dense").set_weights(model.get_layer("dense").get_weights())
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(keras_model.predict(x, verbose=0)),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_config_to_keras():
    model = _mlp()
    assert kconfig.training_config_to_keras(model) is None
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    config = kconfig.training_config_to_keras(model)
    assert config["optimizer_config"]["class_name"] == "RMSprop"
    assert config["loss"] == "sparse_categorical_crossentropy"
    spec = kconfig.compile_spec_from_keras(json.loads(json.dumps(config)))
    assert spec["optimizer"]["class_name"] == "RMSprop" and spec["metrics"] == ["accuracy"]


# ---- Keras 2 dialect ----

def _keras2():
    with open(os.path.join(DATA, "keras2_configs.json")) as file:
        return json.load(file)


def test_keras2_sequential_loads():
    config = _keras2()
    spec = kconfig.model_spec_from_keras(config["sequential"]["model_config"])
    model = _model_from_spec(spec)
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "MaxPooling2D",
                                                               "Flatten", "Dropout", "Dense"]
    assert model.inputs[0].shape == (None, 8, 8, 1)
    conv = model.layers[0]
    assert conv.get_config()["kernel_size"] == [3, 3]
    assert model.layers[-1].get_config()["activation"] == "softmax"
    training = kconfig.compile_spec_from_keras(config["sequential"]["training_config"])
    assert training["optimizer"]["config"]["learning_rate"] == pytest.approx(0.001)
    assert training["loss"] == "categorical_crossentropy"
    assert training["metrics"] == [{"class_name": "CategoricalAccuracy",
                                    "config": {"name": "accuracy"}}]
    _compile_from_config(model, training)
    assert type(model.optimizer).__name__ == "Adam" and model.compiled


def test_keras2_functional_loads():
    config = _keras2()
    spec = kconfig.model_spec_from_keras(config["functional"]["model_config"])
    model = _model_from_spec(spec)
    assert [layer.name for layer in model.layers] == ["tokens", "embed", "lstm", "dense_a",
                                                      "dense_b", "add", "bn", "out"]
    lstm = model.layers[2]
    assert lstm.get_config()["units"] == 8 and lstm.get_config()["recurrent_initializer"] \
        == "orthogonal"
    assert model.layers[6].get_config()["axis"] == 1  # Keras 2 wrote the built axis
    assert tuple(model.outputs[0].shape) == (None, 1)
    training = kconfig.compile_spec_from_keras(config["functional"]["training_config"])
    assert training["optimizer"]["class_name"] == "SGD"
    assert training["loss"]["config"]["reduction"] == "sum_over_batch_size"  # Keras 2's 'auto'
    assert training["loss"]["config"]["from_logits"] is False
    assert training["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    _compile_from_config(model, training)
    assert model.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    x = np.random.default_rng(1).integers(0, 50, (3, 10))
    assert model.predict(x, verbose=0).shape == (3, 1)


def test_keras2_nested_models_load():
    spec = kconfig.model_spec_from_keras(_keras2()["nested"]["model_config"])
    loaded = _model_from_spec(spec)
    inner_seq = Sequential([Input((6,), name="seq_in"),
                            Dense(5, activation="tanh", name="seq_dense")], name="inner_seq")
    inner_in = Input((5,), name="fn_in")
    inner_fn = Model(inner_in, Dense(4, name="fn_dense")(inner_in), name="inner_fn")
    inputs = Input((6,), name="outer_in")
    expected = Model(inputs, inner_fn(inner_seq(inputs)), name="nested")
    assert model_config(loaded) == model_config(expected)


# ---- hostile configs ----

def _dense(**changes):
    spec = {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": "d", "units": 2, "dtype": "float32"}, "registered_name": None}
    spec.update(changes)
    return spec


def _sequential(*layer_specs):
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": "s", "layers": [
                {"module": "keras.layers", "class_name": "InputLayer",
                 "config": {"batch_shape": [None, 3], "dtype": "float32", "name": "in"},
                 "registered_name": None}, *layer_specs]},
            "registered_name": None}


_EVIL = "minidl_never_imported_module"
_LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
           "config": {"name": "l", "function": {"class_name": "__lambda__", "config": {
               "code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}}
HOSTILE = {
    "lambda": (_sequential(_LAMBDA), "Lambda"),
    "keras2 lambda": ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "l", "function": ["4wEAAAAA", None, None],
                                             "function_type": "lambda"}}]}}, "Lambda"),
    "lambda in another case": (_sequential(dict(_LAMBDA, class_name="lambda")), "Lambda"),
    "unknown class": (_sequential(_dense(class_name="Nope")), "Nope"),
    "module os": (_sequential(_dense(module="os", class_name="system")), "module='os'"),
    "module builtins": (_sequential(_dense(module="builtins", class_name="eval")),
                        "builtins"),
    "module of own": (_sequential(_dense(module=_EVIL)), _EVIL),
    "unregistered custom": (_sequential(_dense(module=_EVIL, registered_name="Evil>Dense")),
                            "Evil>Dense"),
    "unregistered custom keras module": (
        _sequential(_dense(registered_name="Evil>Payload", class_name="Payload")), "Payload"),
    "quantized": (_sequential(_dense(config={"name": "d", "units": 2,
                                             "quantization_config": {"mode": "int8"}})),
                  "quantization_config"),
    "lora": (_sequential(_dense(config={"name": "d", "units": 2, "lora_rank": 4})),
             "lora_rank"),
    "renorm": (_sequential({"module": "keras.layers", "class_name": "BatchNormalization",
                            "config": {"name": "bn", "renorm": True}}), "renorm"),
    "unknown field": (_sequential(_dense(config={"name": "d", "units": 2, "evil": 1})),
                      "evil"),
    "initializer module": (_sequential(_dense(config={
        "name": "d", "units": 2, "kernel_initializer": {
            "module": _EVIL, "class_name": "GlorotUniform", "config": {}}})), _EVIL),
    "initializer class": (_sequential(_dense(config={
        "name": "d", "units": 2, "kernel_initializer": {
            "module": "keras.initializers", "class_name": "Evil", "config": {}}})), "Evil"),
    "activation function module": (_sequential(_dense(config={
        "name": "d", "units": 2, "activation": {
            "module": _EVIL, "class_name": "function", "config": "relu"}})), _EVIL),
    "marshalled in a field": (_sequential(_dense(config={
        "name": "d", "units": 2, "kernel_initializer": "zeros", "use_bias": {
            "class_name": "__lambda__", "config": {"code": "4wEAAAAA"}}})), "__lambda__"),
    "mixed precision": (_sequential(_dense(config={
        "name": "d", "units": 2, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                           "config": {"name": "mixed_float16"}}})),
        "mixed_float16"),
    "dtype policy module": (_sequential(_dense(config={
        "name": "d", "units": 2, "dtype": {"module": _EVIL, "class_name": "DTypePolicy",
                                           "config": {"name": "float32"}}})), _EVIL),
    "op not in minidl": ({"module": "keras.src.models.functional", "class_name": "Functional",
                          "config": {"layers": [
                              {"module": "keras.src.ops.numpy", "class_name": "System",
                               "name": "s", "config": {"name": "s"}, "inbound_nodes": [
                                   {"args": [], "kwargs": {}}]}],
                              "input_layers": [], "output_layers": []}}, "System"),
    "model module": ({"module": _EVIL, "class_name": "Sequential",
                      "config": {"layers": []}}, _EVIL),
}


def _deep(depth):
    layer = _dense()
    for _ in range(depth):
        layer = {"module": "keras.layers", "class_name": "TimeDistributed",
                 "config": {"name": "t", "layer": layer}}
    return _sequential(layer)


HOSTILE["deeply nested wrappers"] = (_deep(200), "nest too deeply")
_junk = []
for _ in range(200):
    _junk = [_junk]
HOSTILE["deeply nested junk"] = (_sequential(_dense(config={"name": "d", "units": 2,
                                                            "kernel_initializer": "zeros",
                                                            "bias_initializer": "zeros",
                                                            "use_bias": _junk})),
                                 "nests too deeply")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_configs_are_refused(case):
    config, message = HOSTILE[case]
    before = set(sys.modules)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(">", ">")):
        _model_from_spec(kconfig.model_spec_from_keras(copy.deepcopy(config)))
    assert _EVIL not in sys.modules
    assert not {name for name in set(sys.modules) - before if not name.startswith("minidl")}


def test_errors_name_the_layer_and_field():
    with pytest.raises(ValueError, match=r"'d' \(Dense\).*quantization_config"):
        kconfig.model_spec_from_keras(_sequential(_dense(config={
            "name": "d", "units": 2, "quantization_config": {"mode": "int8"}})))
    with pytest.raises(ValueError, match=r"'d' \(Dense\) field 'kernel_initializer'"):
        kconfig.model_spec_from_keras(_sequential(_dense(config={
            "name": "d", "units": 2, "kernel_initializer": "nope"})))


@pytest.mark.parametrize("config,field", [
    ({"optimizer": {"module": "keras.optimizers", "class_name": "Adam",
                    "config": {"use_ema": True}}, "loss": "mse"}, "use_ema"),
    ({"optimizer": {"module": _EVIL, "class_name": "Adam", "config": {}}, "loss": "mse"},
     _EVIL),
    ({"optimizer": "adam", "loss": {"module": "builtins", "class_name": "function",
                                    "config": "eval"}}, "eval"),
    ({"optimizer": "adam", "loss": {"module": _EVIL, "class_name": "function",
                                    "config": "mse"}}, _EVIL),
    ({"optimizer": "adam", "loss": {"module": _EVIL, "class_name": "function",
                                    "config": "x", "registered_name": "Evil>x"}}, "Evil>x"),
    ({"optimizer": "adam", "loss": "mse", "metrics": [{"module": "keras.metrics",
                                                       "class_name": "Evil", "config": {}}]},
     "Evil"),
    ({"optimizer": "adam", "loss": "mse", "weighted_metrics": ["mae"]}, "weighted_metrics"),
    ({"optimizer": "nope", "loss": "mse"}, "nope"),
    ({"optimizer": "adam", "loss": "mse", "evil": 1}, "evil"),
])
def test_hostile_compile_configs_are_refused(config, field):
    with pytest.raises(ValueError, match=field):
        kconfig.compile_spec_from_keras(config)
    assert _EVIL not in sys.modules


@pytest.mark.parametrize("name", NEEDS_TENSORFLOW)
def test_tensorflow_only_layers_load_from_keras_shaped_configs(name):
    # Keras builds these only with TensorFlow, so no Keras-made config is in the table:
    # the config below adds to what minidl writes the fields that Keras 3.15's get_config
    # adds (index_lookup.py: oov_method, salt; its preprocessing layers' dtype policy).
    _, layer = sample_layer(name)
    written = kconfig.layer_spec_to_keras(layer)
    if name in ("StringLookup", "IntegerLookup"):
        written["config"].update(oov_method="floormod", salt=None)
    _same_layer(LAYERS.get(kconfig.layer_spec_from_keras(copy.deepcopy(written)), base=Layer),
                layer, name)
    if name in ("StringLookup", "IntegerLookup"):
        written["config"]["oov_method"] = "farmhash"
        with pytest.raises(ValueError, match=f"\\({name}\\).*oov_method='farmhash'"):
            kconfig.layer_spec_from_keras(written)


def test_keras_functions_load_by_name():
    # What Keras 3.15 writes for compile(loss=keras.losses.mean_squared_error,
    # metrics=[keras.metrics.mean_absolute_error]) and for activation=keras.activations.relu
    # given as an object.
    def function(name):
        return {"module": "builtins", "class_name": "function", "config": name,
                "registered_name": "function"}
    spec = kconfig.compile_spec_from_keras({
        "optimizer": "adam", "loss": function("mean_squared_error"), "loss_weights": [1.0],
        "metrics": [function("mean_absolute_error"), function("categorical_crossentropy")]})
    assert spec["loss"] == "mean_squared_error"
    assert spec["metrics"] == ["mean_absolute_error", "categorical_crossentropy"]
    model = _mlp()
    _compile_from_config(model, spec)
    layer = kconfig.layer_spec_from_keras(_dense(config={"name": "d", "units": 2,
                                                         "activation": function("relu")}))
    assert layer["config"]["activation"] == "relu"


def test_keras_only_arguments_at_their_defaults_are_dropped():
    spec = kconfig.layer_spec_from_keras(_dense(config={
        "name": "d", "units": 2, "quantization_config": None, "lora_rank": None}))
    assert "quantization_config" not in spec["config"] and "lora_rank" not in spec["config"]
    optimizer = kconfig.compile_spec_from_keras({"optimizer": {
        "class_name": "Adam", "config": {"lr": 0.5, "decay": 0.0, "use_ema": False,
                                         "is_legacy_optimizer": False}}})["optimizer"]
    assert optimizer["config"] == {"learning_rate": 0.5}


def test_keras2_decay_becomes_an_inverse_time_decay():
    spec = kconfig.compile_spec_from_keras({"optimizer_config": {
        "class_name": "SGD", "config": {"name": "SGD", "lr": 0.1, "decay": 0.01,
                                        "momentum": 0.0, "nesterov": False}},
        "loss": "mse"})
    model = _mlp()
    _compile_from_config(model, spec)
    schedule = schedules.SCHEDULES.get(model.optimizer.get_config()["learning_rate"])
    # Keras 2: lr / (1 + decay * iterations).
    for step in (0, 1, 10, 1000):
        assert float(schedule(step)) == pytest.approx(0.1 / (1 + 0.01 * step))


def test_registered_custom_layer_loads_by_its_registered_name():
    from minidl.saving import register_serializable

    @register_serializable(package="KerasConfigTest")
    class Doubler(Layer):
        def forward(self, x, training=False):
            return x * 2

    spec = kconfig.layer_spec_from_keras({"module": "my_project.layers",
                                          "class_name": "Doubler",
                                          "registered_name": "KerasConfigTest>Doubler",
                                          "config": {"name": "dbl"}})
    assert spec["class_name"] == "KerasConfigTest>Doubler"
    assert isinstance(LAYERS.get(spec, base=Layer), Doubler)
    assert "my_project" not in sys.modules
    written = kconfig.layer_spec_to_keras(Doubler(name="dbl"))
    assert written["registered_name"].lower() == "kerasconfigtest>doubler"
    assert written["module"] == Doubler.__module__
    again = kconfig.layer_spec_from_keras(written)
    assert again["class_name"].lower() == "kerasconfigtest>doubler"
    assert LAYERS.get(again, base=Layer).get_config() == Doubler(name="dbl").get_config()


def test_an_operation_outside_a_functional_graph_is_refused_for_keras(tmp_path):
    # Keras writes operations only as nodes of a functional graph: a Sequential holding one
    # has no Keras form, and no file may be written under a Keras name.
    pytest.importorskip("h5py")
    inputs = Input((4,))
    operation = [layer for layer in Model(inputs, inputs * 2.0).layers
                 if type(layer).__name__ == "OpLayer"][0]
    model = Sequential([Input((4,)), operation])
    path = tmp_path / "m.keras"
    with pytest.raises(ValueError, match="only as a node of a functional model"):
        model.save(str(path))
    assert not path.exists()
