"""Files of format 1 (minidl before Keras's layer order) still load into the right layers.

Format 1 held a functional model's weights, and its optimizer's slots, in the order of the
graph's nodes; format 2 holds them in ``Model.layers`` order, Keras's. The fixtures in
tests/data/format1 were written by minidl at 2650d3f (make_format1.py beside them), from a
branched model whose two orders differ and whose hidden layers all have the same shapes,
so only the order tells them apart.
"""
import json
import pathlib
import zipfile

import numpy as np
import pytest

import minidl
from minidl.layers import Add, Dense
from minidl.saving import FORMAT_VERSION

DATA = pathlib.Path(__file__).parent / "data" / "format1"


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "branched_v1_reference.npz") as data:
        return dict(data)


def _branched():
    x = minidl.Input((4,), name="x")
    b2 = Dense(3, name="b2")(Dense(3, name="b")(x))
    a3 = Dense(3, name="a3")(Dense(3, name="a2")(Dense(3, name="a")(x)))
    return minidl.Model(x, Dense(2, name="out")(Add(name="s")([a3, b2])), name="branched")


def _version(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("metadata.json"))["format_version"]


def test_the_orders_differ_so_the_fixture_can_tell():
    model = _branched()
    assert [layer.name for layer in model.layers][1:6] == ["a", "a2", "b", "a3", "b2"]
    assert [layer.name for layer in model._layers_in_node_order][1:6] == \
        ["a", "a2", "a3", "b", "b2"]
    assert _version(DATA / "branched_v1.minidl") == 1 < FORMAT_VERSION


def _check_weights(model, reference):
    for layer in model.layers:
        for name, weight in zip(layer.weight_names, layer.weight_arrays):
            np.testing.assert_array_equal(weight, reference[f"{layer.name}/{name}"])


def test_a_format1_model_loads_weights_and_slots_by_layer(reference):
    model = minidl.models.load_model(DATA / "branched_v1.minidl")
    _check_weights(model, reference)
    optimizer = model.optimizer
    for layer in model.layers:
        for name, weight in zip(layer.weight_names, layer.weight_arrays):
            for slot in optimizer.slot_names:
                np.testing.assert_array_equal(optimizer.get_slot(weight, slot),
                                              reference[f"{layer.name}/{name}/{slot}"])
    np.testing.assert_array_equal(model.predict(reference["x"], verbose=0),
                                  reference["predictions"])


def test_format1_weights_load_into_the_same_architecture(reference):
    model = _branched()
    model.load_weights(DATA / "branched_v1.weights.minidl")
    _check_weights(model, reference)


def test_resaved_files_are_format2_and_round_trip(tmp_path, reference):
    model = minidl.models.load_model(DATA / "branched_v1.minidl")
    path = tmp_path / "again.minidl"
    model.save(path)
    assert _version(path) == FORMAT_VERSION == 2
    again = minidl.models.load_model(path)
    _check_weights(again, reference)
    for a, b in zip(again.optimizer.get_slot_arrays(), model.optimizer.get_slot_arrays()):
        np.testing.assert_array_equal(a, b)
    weights_path = tmp_path / "again.weights.minidl"
    model.save_weights(weights_path)
    fresh = _branched()
    fresh.load_weights(weights_path)
    _check_weights(fresh, reference)
