"""Every field of every config a model file holds is checked when its object is made: a
wrong-typed value fails at construction (ValueError or TypeError) and, in a saved file, at
load (InvalidModelFileError), the message naming the field. The table of wrong values is
tests/hostile_configs.py."""
import json
import re
import zipfile

import numpy as np
import pytest

import minidl
from minidl.layers import Dense, Input
from minidl.saving import InvalidModelFileError

import hostile_configs
from hostile_configs import LAYER_SAMPLES, all_edits, edited, layer_model

minidl.set_num_threads(1)

_EDITS = list(all_edits())


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: json.loads(zf.read(name)) if name.endswith(".json") else zf.read(name)
                for name in zf.namelist()}


def _write(members, path):
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            zf.writestr(name, json.dumps(value) if name.endswith(".json") else value)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Parsed members of one saved file per base of the edits: a model holding each layer
    class, and a compiled model."""
    directory = tmp_path_factory.mktemp("bases")
    files = {}
    for name in LAYER_SAMPLES:
        model = layer_model(name)
        model.save(directory / f"{name}.minidl")
        files[f"layer:{name}"] = _members(directory / f"{name}.minidl")
    model = minidl.Sequential([Input((4,)), Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(directory / "compiled.minidl")
    files["compiled"] = _members(directory / "compiled.minidl")
    return files


def test_every_builtin_class_is_in_the_table():
    # A new layer class or schedule joins the table by getting a sample, or this fails.
    assert {cls.__name__ for cls in hostile_configs.layer_classes()} == set(LAYER_SAMPLES)
    assert {cls.__name__ for cls in hostile_configs.builtin_classes(minidl.schedules.SCHEDULES)} \
        == set(hostile_configs.SCHEDULE_SAMPLES)


def test_the_unedited_files_load(saved, tmp_path):
    for base, members in saved.items():
        minidl.models.load_model(_write(members, tmp_path / "ok.minidl"))


def _names(message, field):
    return re.search(rf"(?<![A-Za-z_]){re.escape(field)}(?![A-Za-z_])", message) is not None


_CONSTRUCTED = [edit for edit in _EDITS if edit.cls is not None]


@pytest.mark.parametrize("edit", _CONSTRUCTED, ids=[edit.id for edit in _CONSTRUCTED])
def test_constructor_refuses_and_names_the_field(edit):
    with pytest.raises((ValueError, TypeError)) as info:
        edit.cls(**{**edit.config, edit.field: edit.value})
    assert _names(str(info.value), edit.field), str(info.value)


@pytest.mark.parametrize("edit", _EDITS, ids=[edit.id for edit in _EDITS])
def test_load_refuses_and_names_the_field(edit, saved, tmp_path):
    path = _write(edited(saved[edit.base], edit), tmp_path / "bad.minidl")
    with pytest.raises(InvalidModelFileError) as info:
        minidl.models.load_model(path)
    assert _names(str(info.value), edit.field), str(info.value)
    assert "bad.minidl" in str(info.value)


def test_the_table_covers_each_field_of_each_sample():
    # Each field of each layer sample (and the Layer base's input_shape) has wrong values.
    edited_fields = {(edit.base, edit.field) for edit in _EDITS}
    for name in LAYER_SAMPLES:
        _, layer = hostile_configs.sample_layer(name)
        model = name in ("Sequential", "Model")   # models take no input_shape argument
        for field in [*layer.get_config(), *([] if model else ["input_shape"])]:
            assert (f"layer:{name}", field) in edited_fields, (name, field)


@pytest.mark.parametrize("noise_shape, match", [
    ([None, 3], "does not broadcast"), ([None, 1, 4], "one entry per input dim")])
def test_dropout_noise_shape_is_checked_when_a_file_is_loaded(saved, tmp_path, noise_shape,
                                                               match):
    # A valid type but a shape that cannot follow the model's: loading builds the model,
    # which checks it, rather than the first training step.
    members = json.loads(json.dumps({k: v for k, v in saved["layer:Dropout"].items()
                                     if k.endswith(".json")}))
    members = {**saved["layer:Dropout"], **members}
    dropout = next(spec for spec in members["config.json"]["config"]["layers"]
                   if spec["class_name"] == "Dropout")
    dropout["config"]["noise_shape"] = noise_shape
    with pytest.raises(InvalidModelFileError, match=match):
        minidl.models.load_model(_write(members, tmp_path / "d.minidl"))


def test_layer_dtype_none_means_float32():
    # Keras' meaning; np.dtype(None) would make it float64.
    assert Dense(2, dtype=None).dtype == "float32"


def test_initializers_are_resolved_when_the_layer_is_made():
    with pytest.raises(ValueError, match=r"kernel_initializer='nope'.*Unknown initializer"):
        Dense(2, kernel_initializer="nope")
    layer = Dense(2, kernel_initializer="ones", input_shape=(3,))
    minidl.Sequential([layer])
    np.testing.assert_array_equal(layer.kernel, np.ones((3, 2), np.float32))
    assert layer.get_config()["kernel_initializer"] == "ones"


def test_input_layer_shape_and_input_shape_must_agree():
    assert minidl.layers.InputLayer(input_shape=(3,)).input_shape == (3,)
    assert minidl.layers.InputLayer(shape=(3,), input_shape=[3]).input_shape == (3,)
    with pytest.raises(ValueError, match="shape=.*input_shape="):
        minidl.layers.InputLayer(shape=(3,), input_shape=(4,))
