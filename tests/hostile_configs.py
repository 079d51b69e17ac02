"""Wrong-typed values for every field of every config a model file holds: each registered
layer, the activations, initializers, regularizers and constraints layers take, each
optimizer, learning rate schedule, loss and metric of a compile config, and the model,
metadata and state fields.

One table serves two users: test_config_validation.py, which expects each value to fail when
the object is made (ValueError or TypeError) and, put in a saved file, when it is loaded
(InvalidModelFileError), the message naming the field either way; and the hostile corpus of
loader_corpus.py, whose cases loader_probe.py counts.

A field's wrong values come from its name where the name says what it takes (an
initializer, a seed, a shape), else from the type of the valid value in the sample: a string
for a bool ('no', which bool() reads as True), a bool or a string for a number, and so on.
"""
import copy
from dataclasses import dataclass
from typing import Any, Callable

from minidl import (activations, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers.base import LAYERS
from minidl.saving import FORMAT_VERSION

# Layer class -> (sample shape the layer is built for, constructor arguments). Every
# registered layer needs an entry: the test of the table fails on a layer without one.
LAYER_SAMPLES = {
    "InputLayer": ((4,), {"shape": [4]}),
    "Dense": ((4,), {"units": 3}),
    "Activation": ((4,), {"activation": "relu"}),
    "Conv2D": ((6, 6, 2), {"filters": 2, "kernel_size": 3}),
    "Conv1D": ((6, 2), {"filters": 2, "kernel_size": 3}),
    "DepthwiseConv2D": ((6, 6, 2), {"kernel_size": 3, "depth_multiplier": 2}),
    "DepthwiseConv1D": ((6, 2), {"kernel_size": 3, "depth_multiplier": 2}),
    "SeparableConv2D": ((6, 6, 2), {"filters": 3, "kernel_size": 3, "depth_multiplier": 2}),
    "SeparableConv1D": ((6, 2), {"filters": 3, "kernel_size": 3, "depth_multiplier": 2}),
    "Conv2DTranspose": ((3, 3, 2), {"filters": 2, "kernel_size": 3, "strides": 2,
                                    "output_padding": 1}),
    "Conv1DTranspose": ((3, 2), {"filters": 2, "kernel_size": 3, "padding": "same"}),
    "Conv3DTranspose": ((2, 3, 3, 2), {"filters": 2, "kernel_size": 2, "strides": 2}),
    "Conv3D": ((4, 4, 4, 2), {"filters": 2, "kernel_size": 3}),
    "MaxPooling2D": ((6, 6, 2), {}),
    "AveragePooling2D": ((6, 6, 2), {}),
    "MaxPooling1D": ((6, 2), {}),
    "AveragePooling1D": ((6, 2), {}),
    "GlobalMaxPooling2D": ((6, 6, 2), {}),
    "GlobalAveragePooling2D": ((6, 6, 2), {}),
    "GlobalMaxPooling1D": ((6, 2), {}),
    "GlobalAveragePooling1D": ((6, 2), {}),
    "BatchNormalization": ((4,), {}),
    "LayerNormalization": ((4,), {}),
    "Dropout": ((4,), {"rate": 0.5, "noise_shape": [None, 1], "seed": 1}),
    "ActivityRegularization": ((4,), {"l1": 0.1}),
    "Flatten": ((2, 2), {}),
    "Reshape": ((4,), {"target_shape": [2, 2]}),
    "ReLU": ((4,), {"max_value": 6.0}),
    "LeakyReLU": ((4,), {}),
    "ELU": ((4,), {}),
    "Softmax": ((4,), {}),
    "Identity": ((4,), {}),
    "PReLU": ((4,), {}),
    # Recurrent layers (sequences of 5 steps of 3 features).
    "SimpleRNN": ((5, 3), {"units": 2, "return_sequences": True, "dropout": 0.1, "seed": 1}),
    "LSTM": ((5, 3), {"units": 2, "recurrent_dropout": 0.2, "seed": 1,
                      "kernel_regularizer": "l2"}),
    "GRU": ((5, 3), {"units": 2, "reset_after": False, "go_backwards": True}),
    "Bidirectional": ((5, 3), {"layer": {"class_name": "LSTM", "config": {"units": 2}},
                               "merge_mode": "sum"}),
    # Merge layers take a list of inputs: their sample models are functional.
    "Add": ([(4,), (4,)], {}),
    "Subtract": ([(4,), (4,)], {}),
    "Multiply": ([(4,), (4,)], {}),
    "Average": ([(4,), (4,)], {}),
    "Maximum": ([(4,), (4,)], {}),
    "Minimum": ([(4,), (4,)], {}),
    "Concatenate": ([(4,), (3,)], {"axis": -1}),
    "Dot": ([(4,), (4,)], {"axes": 1}),
    # An op on symbolic tensors (`inputs * 2.0`), its arguments in their JSON form.
    "OpLayer": ((4,), {"op": "multiply", "args": [{"__input__": 0}, 2.0]}),
    # Image preprocessing and augmentation layers.
    "Resizing": ((6, 8, 3), {"height": 4, "width": 5, "interpolation": "nearest",
                             "crop_to_aspect_ratio": True, "fill_value": 0.5}),
    "CenterCrop": ((6, 6, 3), {"height": 4, "width": 4}),
    "RandomFlip": ((6, 6, 3), {"mode": "horizontal", "seed": 1}),
    "RandomRotation": ((6, 6, 3), {"factor": [-0.1, 0.2], "fill_mode": "constant",
                                   "seed": 1, "fill_value": 0.5}),
    "RandomZoom": ((6, 6, 3), {"height_factor": 0.2, "width_factor": 0.1, "seed": 1}),
    "RandomTranslation": ((6, 6, 3), {"height_factor": 0.2, "width_factor": 0.1, "seed": 1}),
    "RandomCrop": ((6, 6, 3), {"height": 4, "width": 4, "seed": 1}),
    "RandomContrast": ((6, 6, 3), {"factor": 0.2, "value_range": [0, 1], "seed": 1}),
    "RandomBrightness": ((6, 6, 3), {"factor": 0.2, "value_range": [0, 1], "seed": 1}),
    "Normalization": ((4,), {"mean": [0.0, 1.0, 2.0, 3.0], "variance": [1.0, 2.0, 3.0, 4.0],
                             "invert": True}),
    "Discretization": ((4,), {"bin_boundaries": [0.0, 1.0, 2.0], "output_mode": "one_hot"}),
    "CategoryEncoding": ((4,), {"num_tokens": 4, "output_mode": "count"}),
    "Rescaling": ((4,), {"scale": 0.5, "offset": 1.0}),
    # Text and lookup layers (their inputs' dtype: LAYER_INPUT_DTYPES).
    "StringLookup": ((3,), {"vocabulary": ["a", "b"], "mask_token": "", "max_tokens": 10}),
    "IntegerLookup": ((3,), {"vocabulary": [5, 7], "mask_token": 0, "max_tokens": 10}),
    "Hashing": ((1,), {"num_bins": 3, "salt": [1, 2], "mask_value": "x"}),
    "TextVectorization": ((1,), {"max_tokens": 10, "vocabulary": ["a", "b"], "ngrams": 2,
                                 "output_sequence_length": 4, "standardize": "lower"}),
    # Sequence layers (issue 16).
    "Embedding": ((4,), {"input_dim": 10, "output_dim": 3, "mask_zero": True}),
    "Masking": ((3, 2), {"mask_value": 0.5}),
    "SpatialDropout1D": ((3, 2), {"rate": 0.5, "seed": 1}),
    "RepeatVector": ((4,), {"n": 2}),
    "TimeDistributed": ((3, 4), {"layer": {"class_name": "Dense", "config": {"units": 2}}}),
    # Padding, cropping, upsampling, 3-D pooling, Permute (issue 17).
    "ZeroPadding1D": ((4, 2), {"padding": [1, 2]}),
    "ZeroPadding2D": ((4, 4, 2), {"padding": [[1, 0], [2, 1]]}),
    "ZeroPadding3D": ((3, 3, 3, 2), {"padding": [[1, 0], [0, 1], [1, 1]]}),
    "Cropping1D": ((6, 2), {"cropping": [1, 2]}),
    "Cropping2D": ((6, 6, 2), {"cropping": [[1, 0], [2, 1]]}),
    "Cropping3D": ((4, 4, 4, 2), {"cropping": [[1, 0], [0, 1], [1, 1]]}),
    "UpSampling1D": ((4, 2), {"size": 3}),
    "UpSampling2D": ((3, 4, 2), {"size": [2, 3], "interpolation": "bilinear"}),
    "UpSampling3D": ((2, 2, 3, 2), {"size": [1, 2, 3]}),
    "Permute": ((2, 3, 4), {"dims": [3, 1, 2]}),
    "MaxPooling3D": ((4, 5, 4, 2), {"pool_size": [2, 3, 2], "padding": "same"}),
    "AveragePooling3D": ((4, 5, 4, 2), {"strides": [1, 2, 1]}),
    "GlobalMaxPooling3D": ((3, 3, 3, 2), {"keepdims": True}),
    "GlobalAveragePooling3D": ((3, 3, 3, 2), {}),
    # Noise and normalization layers (issue 17).
    "SpatialDropout2D": ((3, 3, 2), {"rate": 0.5, "seed": 1}),
    "SpatialDropout3D": ((2, 2, 2, 2), {"rate": 0.5, "seed": 1}),
    "GaussianNoise": ((4,), {"stddev": 0.5, "seed": 1}),
    "GaussianDropout": ((4,), {"rate": 0.5, "seed": 1}),
    "AlphaDropout": ((4,), {"rate": 0.5, "noise_shape": [None, 1], "seed": 1}),
    "GroupNormalization": ((3, 4), {"groups": 2, "axis": -1, "epsilon": 0.01, "center": True,
                                    "scale": True, "beta_initializer": "zeros",
                                    "gamma_initializer": "ones", "beta_regularizer": "l2",
                                    "gamma_regularizer": "l2", "beta_constraint": "non_neg",
                                    "gamma_constraint": "non_neg"}),
    "UnitNormalization": ((3, 4), {"axis": [1, 2]}),
    # Models are layers too: each sample is nested in a Sequential.
    "Sequential": ((4,), {}),
    "Model": ((4,), {}),
}

# The dtype of a sample layer's Input where it is not float32.
LAYER_INPUT_DTYPES = {"StringLookup": "string", "IntegerLookup": "int64",
                      "Hashing": "string", "TextVectorization": "string"}

SCHEDULE_SAMPLES = {
    "ExponentialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
    "PiecewiseConstantDecay": {"boundaries": [10], "values": [0.1, 0.01]},
    "PolynomialDecay": {"initial_learning_rate": 0.1, "decay_steps": 10},
    "InverseTimeDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
    "CosineDecay": {"initial_learning_rate": 0.1, "decay_steps": 10, "warmup_target": 0.2,
                    "warmup_steps": 2},
    "CosineDecayRestarts": {"initial_learning_rate": 0.1, "first_decay_steps": 10},
}

# Metric class -> constructor arguments, for the metrics that need some or whose defaults
# (None) leave a field without a type to go wrong from.
METRIC_SAMPLES = {
    "Precision": {"thresholds": [0.3, 0.7], "top_k": 1, "class_id": 0},
    "Recall": {"thresholds": [0.3, 0.7], "top_k": 1, "class_id": 0},
    "AUC": {"thresholds": [0.25, 0.5], "multi_label": True, "num_labels": 2,
            "label_weights": [1.0, 2.0]},
    "PrecisionAtRecall": {"recall": 0.5, "class_id": 0},
    "RecallAtPrecision": {"precision": 0.5, "class_id": 0},
    "SensitivityAtSpecificity": {"specificity": 0.5, "class_id": 0},
    "SpecificityAtSensitivity": {"sensitivity": 0.5, "class_id": 0},
    "F1Score": {"average": "macro", "threshold": 0.5},
    "FBetaScore": {"average": "macro", "beta": 2.0, "threshold": 0.5},
}

_SHAPE = ["x", [0], [True], [1.5]]
_BY_NAME = {
    "name": [5, "", True],
    "dtype": ["float16", 5, True],
    "trainable": ["no", 1, None],
    "input_shape": _SHAPE,
    "shape": _SHAPE,
    "activation": [5, "nope", {"class_name": "Nope"},
                   {"class_name": "ReLU", "config": {"negative_slope": "x"}}],
    "seed": ["1", 1.5, True, -1],
    "noise_shape": ["x", 5, [None, "1"], [True, 1], [None, 1.5]],
    "groups": [0, "1", 1.0, True],
    "output_padding": ["1", 1.5, True, -1, [0, "1"], [0, 0, 0, 0]],
    "padding": [5, "full"],
    "data_format": [5, "channels_middle"],
    "mode": [5, "fan_sum"],
    "distribution": [5, "cauchy"],
    "reduction": [5, "avg"],
    "axis": ["-1", 1.5, True],
    "ignore_class": ["1", 1.5, True],
    "max_value": ["1", True],
    "axes": ["1", 1.5, True, [1, "1"]],
    "sparse": ["no", 1, True],
    "shared_axes": ["x", [0], [True], [1.5]],
    # ([None] is a batch of scalars, Input(shape=()): valid, as in Keras.)
    "batch_shape": ["x", [None, 0], [None, True], [None, 1.5], []],
    "learning_rate": ["0.1", True, {"class_name": "Nope"}],
    "warmup_target": ["0.1", True],
    "boundaries": ["x", [True], ["1"]],
    "values": ["x", [True], ["0.1"]],
    "op": [5, True, "nope", "system", "__import__", "shape", "gemm"],
    "args": ["x", [True], [{"__input__": 1}], [{"__input__": 0}, {"__code__": "x"}],
             [{"__input__": 0}, {"__slice__": [0, "a", None]}],
             [{"__input__": 0}, {"__dtype__": "object"}], [{"__input__": True}]],
    "kwargs": ["x", [1], {"x1": {"__nope__": 1}}, {"x2": {"__float__": "0.5"}}],
    "output_index": ["0", 1.5, True, -1],
    # A float or a list of floats, each in [0, 1] (the confusion metrics).
    "thresholds": ["0.5", True, [True], ["0.5"], [1.5], -0.5],
    "label_weights": ["x", [True, 1.0], ["1", 1.0], [-1.0, 1.0]],
    "mean": ["x", True, [True, 1.0, 1.0, 1.0], ["0", 1.0, 1.0, 1.0], [[1.0], [1.0, 2.0]]],
    "variance": ["x", True, [True, 1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0], [1.0, 1.0]],
    "bin_boundaries": ["x", [True], ["1"], [2.0, 1.0], [[0.0]]],
    "num_bins": ["4", 2.5, True, 0],
}
# Where one field name takes different types in different layers: (layer, field) -> values.
_BY_LAYER_FIELD = {
    ("TimeDistributed", "layer"): [5, "nope", {"class_name": "Nope"},
                                   {"class_name": "Dense", "config": {"units": "x"}}],
    ("Rescaling", "scale"): ["x", True, None, [True], ["0.5"]],
    ("GroupNormalization", "groups"): ["1", 1.0, True, 0, -2],
    ("UnitNormalization", "axis"): ["-1", 1.5, True, [], [1, "1"]],
    ("GaussianNoise", "stddev"): ["0.1", True, -0.1, 1.5, float("nan")],
    ("Rescaling", "offset"): ["x", True, None, [True], ["0.5"]],
    ("Hashing", "mask_value"): [True, ["x"], 1.5],
    ("Bidirectional", "layer"): [5, "lstm", {"class_name": "Nope"},
                                 {"class_name": "Dense", "config": {"units": 2}},
                                 {"class_name": "LSTM", "config": {"units": -1}}],
    ("Bidirectional", "backward_layer"): [5, "lstm", {"class_name": "Dense", "config": {"units": 2}},
                                          {"class_name": "LSTM", "config": {"units": 2}}],
}
for _layer, _rank in (("ZeroPadding1D", 1), ("ZeroPadding2D", 2), ("ZeroPadding3D", 3),
                      ("Cropping1D", 1), ("Cropping2D", 2), ("Cropping3D", 3)):
    # An int is a valid margin; a wrong type, a negative one or a wrong count of axes not.
    _margins = ([[True, 1], [1, -1], [1, "1"]] if _rank == 1 else
                [[[1, 1]] * (_rank + 1), [[1, -1]] * _rank, [[1, 2, 3]] * _rank])
    _BY_LAYER_FIELD[(_layer, "cropping" if _layer.startswith("C") else "padding")] = \
        ["x", True, -1, 1.5, [1, 2, 3, 4]] + _margins
_BY_LAYER_FIELD[("UpSampling1D", "size")] = ["2", 1.5, True, 0, [2]]
_BY_LAYER_FIELD[("UpSampling2D", "size")] = ["2", 1.5, True, 0, [2, 0], [2, "2"], [1, 2, 3]]
_BY_LAYER_FIELD[("UpSampling3D", "size")] = ["2", 1.5, True, -1, [2, 0, 1], [2, 2]]
_BY_LAYER_FIELD[("UpSampling2D", "interpolation")] = [5, True, "cubic", "bicubic", ["nearest"]]
_BY_LAYER_FIELD[("Permute", "dims")] = ["x", 5, [1, 2, 2], [0, 1, 2], [True, 2, 3],
                                       [1.0, 2, 3]]
for _layer in ("StringLookup", "IntegerLookup", "TextVectorization"):
    # Weights for 'tf_idf' only (the samples use 'int'); the hidden adapted-or-given flag.
    _BY_LAYER_FIELD[(_layer, "idf_weights")] = ["x", [True], [0.5, 0.5]]
    _BY_LAYER_FIELD[(_layer, "has_input_vocabulary")] = ["no", 1]
# Step counts take any positive number, so a float is no wrong type for them.
for _steps in ("decay_steps", "first_decay_steps", "warmup_steps"):
    _BY_NAME[_steps] = ["10", True]
# Optional numbers of the optimizers, None by default.
for _optional in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm",
                  "loss_scale_factor"):
    _BY_NAME[_optional] = ["1", True]


def bad_values(field, valid):
    """Wrong-typed values for ``field``, whose valid value in the sample is ``valid``."""
    if field in _BY_NAME:
        return _BY_NAME[field]
    if field.endswith("_initializer"):
        return [5, "nope", {"class_name": "Nope"},
                {"class_name": "RandomNormal", "config": {"stddev": "x"}}]
    if field.endswith("_regularizer"):
        return [5, "nope", {"class_name": "L2", "config": {"l2": "x"}}]
    if field.endswith("_constraint"):
        return [5, "nope", {"class_name": "Nope"},
                {"class_name": "MaxNorm", "config": {"max_value": "x"}}]
    if isinstance(valid, bool):
        return ["no", 1, None]
    if isinstance(valid, int):
        return ["8", 2.5, True]
    if isinstance(valid, float):
        return ["0.5", True, [0.5]]
    if isinstance(valid, str):
        return [5, True, ["x"]]
    if isinstance(valid, list):
        return ["x", [True] * len(valid), [1.5] * len(valid)]
    raise AssertionError(f"no wrong values for field {field!r} of valid value {valid!r}: add "
                         f"them to _BY_NAME")


@dataclass
class Edit:
    """One wrong value in one field of a model file.

    ``cls``/``config`` let the value be tried on a constructor; ``apply`` puts it into the
    parsed members of a saved file (a dict member name -> JSON), which ``base`` names.
    """
    id: str
    field: str
    value: Any
    base: str
    apply: Callable[[dict], None]
    cls: Any = None
    config: dict = None


def builtin_classes(registry):
    """minidl's own classes in ``registry``, each once (other tests register their own)."""
    return sorted({cls for cls in registry._by_name.values()
                   if cls.__module__.startswith("minidl.")}, key=lambda c: c.__name__)


# Registered so that a file naming it gets a clear refusal, never loaded: a Lambda's config
# names its function, which is code (tests/test_lambda.py checks the refusal).
NEVER_LOADED = ("Lambda",)


def layer_classes():
    """Every layer class minidl registers and loads."""
    return [cls for cls in builtin_classes(LAYERS) if cls.__name__ not in NEVER_LOADED]


_MODEL_CLASSES = ("Sequential", "Model")


def sample_layer(name):
    """(sample shape, a layer of class ``name`` made from its sample arguments)."""
    shape, kwargs = LAYER_SAMPLES[name]
    if name in _MODEL_CLASSES:
        from minidl import Input
        from minidl.layers import Dense
        from minidl.models import Model, Sequential
        if name == "Sequential":
            return shape, Sequential([Input(shape), Dense(2)], name="inner")
        inputs = Input(shape)
        return shape, Model(inputs, Dense(2)(inputs), name="inner")
    return shape, LAYERS.lookup(name)(**kwargs)


def layer_model(name):
    """A built model holding the sample of layer class ``name``: after an Input in a
    Sequential, or, for a merge layer, over two Inputs in a functional model. InputLayer
    comes first, before a Dense."""
    from minidl import Input
    from minidl.layers import Dense
    from minidl.models import Model, Sequential
    shape, layer = sample_layer(name)
    if name == "InputLayer":
        return Sequential([layer, Dense(2)], name="sample")
    if isinstance(shape, list):
        inputs = [Input(s) for s in shape]
        return Model(inputs, layer(inputs), name="sample")
    return Sequential([Input(shape, dtype=LAYER_INPUT_DTYPES.get(name)), layer],
                      name="sample")


def _sample_spec(members, name):
    """The config of the sample layer of class ``name`` in a saved model's config."""
    class_name = "Functional" if name == "Model" else name
    return next(spec for spec in members["config.json"]["config"]["layers"]
                if spec["class_name"] == class_name)


def _in_layer(name, field, value):
    def apply(members):
        _sample_spec(members, name)["config"][field] = value
    return apply


def layer_edits():
    """A wrong value in each field of each layer class (the base Layer's fields included).
    Models are made from configs by from_config, not their constructor: their edits are
    tried on loading only."""
    for cls in layer_classes():
        name = cls.__name__
        _, layer = sample_layer(name)
        config = layer.get_config()
        plain = name not in _MODEL_CLASSES
        fields = dict(config, input_shape=[4]) if "input_shape" not in config and plain \
            else config
        for field, valid in fields.items():
            values = _BY_LAYER_FIELD.get((name, field)) or bad_values(field, valid)
            for i, bad in enumerate(values):
                yield Edit(f"layer-{name}-{field}-{i}", field, bad, f"layer:{name}",
                           _in_layer(name, field, bad), cls if plain else None, config)


_NESTED = ((activations.ACTIVATIONS, "activation"),
           (initializers.INITIALIZERS, "kernel_initializer"),
           (regularizers.REGULARIZERS, "kernel_regularizer"),
           (constraints.CONSTRAINTS, "kernel_constraint"))


def nested_edits():
    """A wrong value in each field of each activation, initializer, regularizer and
    constraint that has fields, held by a Dense."""
    for registry, argument in _NESTED:
        for cls in builtin_classes(registry):
            config = cls().get_config()
            for field, valid in config.items():
                for i, bad in enumerate(bad_values(field, valid)):
                    value = {"class_name": cls.__name__, "config": {**config, field: bad}}
                    yield Edit(f"{argument}-{cls.__name__}-{field}-{i}", field, bad,
                               "layer:Dense", _in_layer("Dense", argument, value), cls, config)


def _in_compile(key, make):
    def apply(members):
        members["config.json"]["compile_config"][key] = make(members)
    return apply


def compile_edits():
    """A wrong value in each field of each optimizer, schedule (as SGD's learning rate),
    loss and metric of a compile config."""
    for cls in builtin_classes(optimizers.OPTIMIZERS):
        config = cls().get_config()
        for field, valid in config.items():
            for i, bad in enumerate(bad_values(field, valid)):
                value = {"class_name": cls.__name__, "config": {**config, field: bad}}
                yield Edit(f"optimizer-{cls.__name__}-{field}-{i}", field, bad, "compiled",
                           _in_compile("optimizer", lambda m, v=value: v), cls, config)
    for name, config in SCHEDULE_SAMPLES.items():
        cls = schedules.SCHEDULES.lookup(name)
        config = cls(**config).get_config()
        for field, valid in config.items():
            for i, bad in enumerate(bad_values(field, valid)):
                value = {"class_name": "SGD", "config": {"learning_rate": {
                    "class_name": name, "config": {**config, field: bad}}}}
                yield Edit(f"schedule-{name}-{field}-{i}", field, bad, "compiled",
                           _in_compile("optimizer", lambda m, v=value: v), cls, config)
    for cls in builtin_classes(losses.LOSSES):
        config = cls().get_config()
        for field, valid in config.items():
            for i, bad in enumerate(bad_values(field, valid)):
                value = {"class_name": cls.__name__, "config": {**config, field: bad}}
                yield Edit(f"loss-{cls.__name__}-{field}-{i}", field, bad, "compiled",
                           _in_compile("loss", lambda m, v=value: v), cls, config)
    for cls in builtin_classes(metrics.METRICS):
        config = cls(**METRIC_SAMPLES.get(cls.__name__, {})).get_config()
        for field, valid in config.items():
            for i, bad in enumerate(bad_values(field, valid)):
                value = {"class_name": cls.__name__, "config": {**config, field: bad}}
                yield Edit(f"metric-{cls.__name__}-{field}-{i}", field, bad, "compiled",
                           _in_compile("metrics", lambda m, v=value: [v]), cls, config)


def _set(member, *path):
    """An ``apply`` setting ``members[member][path...]`` to the edit's value."""
    def make(value):
        def apply(members):
            target = members[member]
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return apply
    return make


_MODEL_FIELDS = (
    # (field named in the error, member, path, wrong values)
    ("format_version", "metadata.json", ("format_version",),
     [True, "1", 1.5, None, FORMAT_VERSION + 1, 0]),
    ("kind", "metadata.json", ("kind",), [1, None, "weights", "x"]),
    ("minidl_version", "metadata.json", ("minidl_version",), [5, None]),
    ("date", "metadata.json", ("date",), [5, []]),
    ("class_name", "config.json", ("class_name",), ["Nope", 5, None]),
    ("name", "config.json", ("config", "name"), [5, "", True]),
    ("build_input_shape", "config.json", ("config", "build_input_shape"),
     ["x", [None, "4"], [None, True], [None, 0], [None, 4.5], [4], [None], [None, -1]]),
    ("layers", "config.json", ("config", "layers"),
     ["x", {"a": 1}, [5], [{"class_name": 5}], [{"config": {}}],
      [{"class_name": "Dense", "config": [3]}],
      [{"class_name": "Dense", "config": {"units": 3}, "extra": 1}]]),
    ("Lambda", "config.json", ("config", "layers", 0, "class_name"), ["Lambda"]),
    ("os.system", "config.json", ("config", "layers", 0, "class_name"), ["os.system"]),
    ("compile_config", "config.json", ("compile_config",), ["x", 5, []]),
    ("optimizer", "config.json", ("compile_config", "optimizer"),
     [5, None, "nope", {"class_name": "Adam", "config": [1]}, ["adam"]]),
    ("loss", "config.json", ("compile_config", "loss"), [5, "nope", {"class_name": "Nope"}]),
    ("metrics", "config.json", ("compile_config", "metrics"), ["accuracy", 5, [5], ["nope"]]),
    ("epoch", "state.json", ("epoch",), ["1", -1, True, 1.5]),
)


def model_edits():
    """Wrong values in the fields of the model itself: metadata.json, the Sequential's
    config, the compile config's structure and state.json."""
    for field, member, path, values in _MODEL_FIELDS:
        for i, bad in enumerate(values):
            yield Edit(f"model-{field}-{i}", field, bad, "compiled", _set(member, *path)(bad))
    for field, value in (("extra", 1),):
        for where, path in (("model", ()), ("sequential", ("config",)),
                            ("compile", ("compile_config",))):
            def apply(members, path=path):
                target = members["config.json"]
                for key in path:
                    target = target[key]
                target[field] = value
            yield Edit(f"unknown-key-{where}", field, value, "compiled", apply)
    for i, bad in enumerate(["x", [], 5]):
        def replace_state(members, bad=bad):
            members["state.json"] = bad
        yield Edit(f"model-state-{i}", "state.json", bad, "compiled", replace_state)


def all_edits():
    """Every edit of the table."""
    yield from layer_edits()
    yield from nested_edits()
    yield from compile_edits()
    yield from model_edits()


def edited(members, edit):
    """A deep copy of ``members`` with ``edit`` applied."""
    members = copy.deepcopy(members)
    edit.apply(members)
    return members
