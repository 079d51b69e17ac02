"""Write keras_configs.json: the configs that real Keras 3 writes, for
tests/test_keras_config.py to read without Keras installed.

Run from the repository root with Keras 3.15.1 on the PyTorch backend (torch 2.13):

    KERAS_BACKEND=torch PYTHONPATH=. python tests/data/keras/make_configs.py

The file holds, under "keras_version":
- "layers": for each entry of tests/hostile_configs.py LAYER_SAMPLES, Keras's
  ``serialize_keras_object`` of the Keras layer made from the same arguments and built for
  the same input shape (as a layer appears in a ``.keras`` file's config.json). The layers
  that Keras implements only with TensorFlow (the lookup and text layers) are absent, and
  so is OpLayer (an op on symbolic tensors is no layer in Keras: see "models").
- "objects": kind -> class name -> Keras's serialization of one optimizer, schedule, loss,
  metric, initializer, regularizer or constraint, made from the arguments of
  hostile_configs's SCHEDULE_SAMPLES / METRIC_SAMPLES (defaults otherwise).
- "models": whole config.json objects of small compiled models (tests/test_keras_config.py
  builds the same models in minidl, with the same layer names).
"""
import inspect
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # tests/, for hostile_configs

import keras  # noqa: E402
from keras import layers  # noqa: E402

from hostile_configs import (LAYER_INPUT_DTYPES, LAYER_SAMPLES, METRIC_SAMPLES,  # noqa: E402
                             SCHEDULE_SAMPLES, builtin_classes)
from minidl.layers.base import LAYERS  # noqa: E402
from minidl import (constraints, initializers, losses, metrics, optimizers,  # noqa: E402
                    regularizers, schedules)

# Keras implements these with TensorFlow only; its PyTorch backend cannot make them.
NEEDS_TENSORFLOW = ("StringLookup", "IntegerLookup", "Hashing", "TextVectorization")


def serialize(obj):
    return json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))


def keras_layer(name, kwargs, shape):
    if name == "InputLayer":
        return layers.InputLayer(**kwargs)
    if name == "Sequential":
        return keras.Sequential([keras.Input(shape), layers.Dense(2)], name="inner")
    if name == "Model":
        inputs = keras.Input(shape)
        return keras.Model(inputs, layers.Dense(2)(inputs), name="inner")
    kwargs = dict(kwargs)
    for key in ("layer", "backward_layer"):
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = getattr(layers, kwargs[key]["class_name"])(**kwargs[key]["config"])
    cls = getattr(layers, name)
    # Where Keras has no default (AveragePooling's pool_size), minidl's default is taken.
    required = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD
                and p.name != "self" and p.name not in kwargs]
    if required:
        minidl_config = LAYERS.lookup(name)(**kwargs).get_config()
        kwargs.update({key: minidl_config[key] for key in required})
    layer = cls(**kwargs)
    dtype = LAYER_INPUT_DTYPES.get(name, "float32")
    if isinstance(shape, list):
        layer([keras.Input(s) for s in shape])
    else:
        layer(keras.Input(shape, dtype=dtype))
    return layer


def layer_table():
    table = {}
    for name, (shape, kwargs) in LAYER_SAMPLES.items():
        if name in NEEDS_TENSORFLOW or name == "OpLayer":
            continue
        table[name] = serialize(keras_layer(name, kwargs, shape))
    return table


def object_table():
    kinds = (("optimizer", optimizers.OPTIMIZERS, keras.optimizers, {}),
             ("schedule", schedules.SCHEDULES, keras.optimizers.schedules, SCHEDULE_SAMPLES),
             ("loss", losses.LOSSES, keras.losses, {}),
             ("metric", metrics.METRICS, keras.metrics, METRIC_SAMPLES),
             ("initializer", initializers.INITIALIZERS, keras.initializers, {}),
             ("regularizer", regularizers.REGULARIZERS, keras.regularizers, {}),
             ("constraint", constraints.CONSTRAINTS, keras.constraints, {}))
    table = {}
    for kind, registry, module, samples in kinds:
        table[kind] = {}
        for cls in builtin_classes(registry):
            keras_cls = getattr(module, cls.__name__, None)
            if keras_cls is None or cls.__name__ in ("Constraint", "LossFunctionWrapper",
                                                     "MeanMetricWrapper"):
                continue
            table[kind][cls.__name__] = serialize(keras_cls(**samples.get(cls.__name__, {})))
    return table


def mlp():
    model = keras.Sequential([keras.Input((8,), name="x"),
                              layers.Dense(16, activation="relu", name="hidden"),
                              layers.Dropout(0.2, name="drop"),
                              layers.Dense(3, activation="softmax", name="probs")],
                             name="mlp")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def cnn_branches():
    inputs = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    left = layers.Conv2D(4, 1, name="left")(x)
    right = layers.MaxPooling2D(1, name="right")(x)
    x = layers.Add(name="add")([left, right])
    pooled = layers.GlobalAveragePooling2D(name="gap")(x)
    flat = layers.Flatten(name="flat")(layers.MaxPooling2D(name="pool")(x))
    x = layers.Concatenate(name="concat")([pooled, flat])
    outputs = layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, outputs, name="cnn_branches")
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc"), "mae"])
    return model


def nested():
    inner_seq = keras.Sequential([keras.Input((6,), name="seq_in"),
                                  layers.Dense(5, activation="tanh", name="seq_dense")],
                                 name="inner_seq")
    inner_in = keras.Input((5,), name="fn_in")
    inner_fn = keras.Model(inner_in, layers.Dense(4, name="fn_dense")(inner_in),
                           name="inner_fn")
    inputs = keras.Input((6,), name="outer_in")
    x = inner_fn(inner_seq(inputs))
    outputs = layers.Dense(1, activation="sigmoid", name="head")(x)
    model = keras.Model(inputs, outputs, name="nested")
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 100, 0.9)
    model.compile(optimizer=keras.optimizers.RMSprop(schedule),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=0.1),
                  metrics=[keras.metrics.AUC(name="auc"), "binary_accuracy"])
    return model


def text():
    inputs = keras.Input((7,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 4, mask_zero=True, name="embed")(inputs)
    x = layers.Bidirectional(layers.LSTM(3, return_sequences=True, name="lstm"),
                             name="bilstm")(x)
    x = layers.TimeDistributed(layers.Dense(2, name="td_dense"), name="td")(x)
    x = layers.GRU(3, name="gru")(x)
    outputs = layers.Dense(1, name="out")(x)
    model = keras.Model(inputs, outputs, name="text")
    model.compile(optimizer=keras.optimizers.AdamW(0.002, weight_decay=0.01),
                  loss="mse", metrics=["mae"])
    return model


def nested_output():
    head_in = keras.Input((3,), name="head_in")
    head = keras.Model(head_in, layers.Dense(2, name="head_dense")(head_in), name="head")
    inputs = keras.Input((4,), name="top_in")
    model = keras.Model(inputs, head(layers.Dense(3, name="pre")(inputs)),
                        name="nested_output")
    model.compile(optimizer="sgd", loss="mse")
    return model


def main():
    table = {"keras_version": keras.__version__, "layers": layer_table(),
             "objects": object_table(),
             "models": {name: serialize(make()) for name, make in
                        (("mlp", mlp), ("cnn_branches", cnn_branches), ("nested", nested),
                         ("nested_output", nested_output), ("text", text))}}
    with open(os.path.join(HERE, "keras_configs.json"), "w") as file:
        json.dump(table, file, indent=1, sort_keys=True)
        file.write("\n")


if __name__ == "__main__":
    main()
