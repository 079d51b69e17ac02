"""Every field of every config a model file holds is checked when its object is made: a
wrong-typed value fails at construction (ValueError or TypeError), the message naming the
field. The table of wrong values is tests/hostile_configs.py."""
import re

import numpy as np
import pytest

import minidl
from minidl.layers import Dense

import hostile_configs
from hostile_configs import LAYER_SAMPLES, all_edits

minidl.set_num_threads(1)

_EDITS = list(all_edits())


def test_every_builtin_class_is_in_the_table():
    # A new layer class or schedule joins the table by getting a sample, or this fails.
    assert {cls.__name__ for cls in hostile_configs.layer_classes()} == set(LAYER_SAMPLES)
    assert {cls.__name__ for cls in hostile_configs.builtin_classes(minidl.schedules.SCHEDULES)} \
        == set(hostile_configs.SCHEDULE_SAMPLES)


def _names(message, field):
    return re.search(rf"(?<![A-Za-z_]){re.escape(field)}(?![A-Za-z_])", message) is not None


_CONSTRUCTED = [edit for edit in _EDITS if edit.cls is not None]


@pytest.mark.parametrize("edit", _CONSTRUCTED, ids=[edit.id for edit in _CONSTRUCTED])
def test_constructor_refuses_and_names_the_field(edit):
    with pytest.raises((ValueError, TypeError)) as info:
        edit.cls(**{**edit.config, edit.field: edit.value})
    assert _names(str(info.value), edit.field), str(info.value)


def test_the_table_covers_each_field_of_each_sample():
    # Each field of each layer sample (and the Layer base's input_shape) has wrong values.
    edited_fields = {(edit.base, edit.field) for edit in _EDITS}
    for name in LAYER_SAMPLES:
        _, layer = hostile_configs.sample_layer(name)
        for field in [*layer.get_config(), "input_shape"]:
            assert (f"layer:{name}", field) in edited_fields, (name, field)


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
