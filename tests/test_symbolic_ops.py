"""Keras ops on symbolic tensors: each call records an OpLayer node, so functional models
built with ops (``inputs * 2.0``, ``ops.concatenate``, ``x[:, 0]``, ``x @ w``) predict as
the eager computation, train, save and load, and refuse bad inputs while the graph is built."""
import inspect
import json
import os
import re

import numpy as np
import pytest

import minidl
from minidl import GradientTape, Input, Model, ops, optimizers
from minidl.layers import Add, Concatenate, Dense, LeakyReLU, OpLayer
from minidl.layers.node import SymbolicTensor
from minidl.layers.op_layer import InputRef
from minidl.models import clone_model, load_model, model_from_json
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _op_of(tensor):
    layer = tensor._keras_history.operation
    assert isinstance(layer, OpLayer)
    return layer.op


# ---- recording ----

def test_operators_and_ops_record_op_layers_with_inferred_shapes_and_dtypes():
    a, b = Input((3,)), Input((3,))
    w = np.ones((3, 5), np.float32)
    cases = [
        (a * 2.0, "multiply", (None, 3), "float32"),
        (2.0 * a, "multiply", (None, 3), "float32"),
        (a + b, "add", (None, 3), "float32"),
        (ops.add(a, b), "add", (None, 3), "float32"),
        (a - 1, "subtract", (None, 3), "float32"),
        (1 - a, "subtract", (None, 3), "float32"),
        (a / b, "divide", (None, 3), "float32"),
        (a ** 2, "power", (None, 3), "float32"),
        (-a, "negative", (None, 3), "float32"),
        (abs(a), "absolute", (None, 3), "float32"),
        (a @ w, "matmul", (None, 5), "float32"),
        (a[:, 0], "get_item", (None,), "float32"),
        (a[:, None, 1:], "get_item", (None, 1, 2), "float32"),
        (a[..., -1:], "get_item", (None, 1), "float32"),
        (ops.concatenate([a, b], axis=-1), "concatenate", (None, 6), "float32"),
        (ops.expand_dims(a, -1), "expand_dims", (None, 3, 1), "float32"),
        (ops.sum(a, axis=1, keepdims=True), "sum", (None, 1), "float32"),
        (a > 0, "greater", (None, 3), "bool"),
        (a <= b, "less_equal", (None, 3), "bool"),
        (~(a > 0), "logical_not", (None, 3), "bool"),
        ((a > 0) & (b > 0), "logical_and", (None, 3), "bool"),
        (ops.cast(a, "int32"), "cast", (None, 3), "int32"),
        (ops.cast(a, np.float64), "cast", (None, 3), "float64"),
    ]
    for tensor, op, shape, dtype in cases:
        assert isinstance(tensor, SymbolicTensor)
        assert (_op_of(tensor), tensor.shape, tensor.dtype) == (op, shape, dtype)
    # A tensor used twice is one input of the node.
    square = a * a
    assert square._keras_history.operation._inbound_nodes[0].input_tensors == [a]


def test_arrays_and_tensors_on_the_left_defer_to_the_symbolic_tensor():
    a = Input((3,))
    array = np.arange(3, dtype=np.float32)
    constant = minidl.ops.convert_to_tensor(array)
    for tensor, op in [(array + a, "add"), (array * a, "multiply"), (constant - a, "subtract"),
                       (constant @ ops.transpose(a), "matmul"), (array > a, "less"),
                       (constant[ops.cast(a[:, 0], "int32")], "get_item")]:
        assert isinstance(tensor, SymbolicTensor) and _op_of(tensor) == op


def test_symbolic_tensors_keep_identity_equality_and_refuse_iteration_and_truth():
    a, b = Input((3,)), Input((3,))
    assert a == a and a != b and [a, b].index(b) == 1 and len({a, b}) == 2
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(a)
    with pytest.raises(TypeError, match="no truth value"):
        bool(a > 0)
    with pytest.raises(TypeError, match="symbolic"):
        np.asarray(a)
    with pytest.raises(TypeError, match="convert_to_numpy cannot take a symbolic"):
        ops.convert_to_numpy(a)


def test_shape_of_a_symbolic_tensor_is_its_static_shape():
    assert ops.shape(Input((None, 3))) == (None, None, 3)


def test_unknown_dimensions_stay_unknown():
    x = Input((None, 4))
    assert (x + 1.0).shape == (None, None, 4)
    assert ops.sum(x, axis=1).shape == (None, 4)
    assert ops.reshape(x, (-1, 2)).shape == (None, 2)
    assert ops.concatenate([x, x], axis=1).shape == (None, None, 4)
    # An unknown dimension broadcast against a known one is that one.
    assert ops.add(Input((None,)), Input((5,))).shape == (None, 5)
    assert ops.add(x, np.ones((7, 1, 4), np.float32)).shape == (7, None, 4)


def test_wrapped_ops_keep_signature_docs_and_errors_on_real_tensors():
    raw = ops._RAW_OPS
    for name in ("add", "sum", "einsum", "concatenate", "get_item"):
        assert inspect.signature(getattr(ops, name)) == inspect.signature(raw[name])
        assert getattr(ops, name).__doc__ == raw[name].__doc__
        assert getattr(ops, name).__wrapped__ is raw[name]
    assert float(ops.sum(np.ones((2, 3)), axis=None)) == 6.0
    assert ops.einsum("i,i->", np.ones(3), np.ones(3)).shape == ()
    with pytest.raises(ValueError, match=r"ops.add: operands of shapes \(3,\) and \(4,\)"):
        ops.add(np.ones(3), np.ones(4))


# ---- errors while the graph is built ----

@pytest.mark.parametrize("build, pattern", [
    (lambda: ops.add(Input((3,)), Input((4,))),
     r"ops.add cannot take symbolic inputs of shape \(None, 3\) and \(None, 4\)"),
    (lambda: Input((3,)) @ np.ones((4, 2), np.float32),
     r"ops.matmul cannot take symbolic inputs of shape \(None, 3\)"),
    (lambda: ops.concatenate([Input((2, 3)), Input((4,))], axis=-1),
     r"ops.concatenate cannot take symbolic inputs of shape \(None, 2, 3\) and \(None, 4\)"),
    (lambda: Input((3,))[:, 5], r"ops.get_item cannot take symbolic inputs of shape \(None, 3\)"),
    (lambda: ops.expand_dims(Input((3,)), 5), r"ops.expand_dims cannot take"),
    (lambda: ops.ones(Input((3,))), r"ops.ones .* depends on the values"),
    (lambda: ops.tile(Input((3,)), Input((2,), dtype="int32")), r"depends on the values"),
])
def test_incompatible_inputs_raise_naming_the_op_and_the_shapes(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


# ---- running ----

def _ops_model():
    a, b = Input((4,), name="a"), Input((4,), name="b")
    x = a * 2.0 + b
    y = ops.concatenate([x, -a[:, :2]], axis=-1)       # (None, 6)
    z = ops.expand_dims(y, -1)[:, ::2, 0]               # (None, 3)
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    out1 = ops.relu(z @ w) / (1.0 + ops.square(b))      # (None, 4)
    out2 = ops.where(a > 0.5, a, 0.0)[..., None]        # (None, 4, 1)
    return Model([a, b], [out1, out2]), w


def _eager(xa, xb, w):
    x = xa * 2.0 + xb
    y = np.concatenate([x, -xa[:, :2]], axis=-1)
    z = y[:, ::2]
    return (np.maximum(z @ w, 0) / (1.0 + xb ** 2),
            np.where(xa > 0.5, xa, 0.0)[..., None])


def test_model_of_ops_predicts_as_the_eager_computation():
    model, w = _ops_model()
    rng = _rng()
    xa, xb = rng.random((7, 4), dtype=np.float32), rng.random((7, 4), dtype=np.float32)
    want = _eager(xa, xb, w)
    for got in (model.predict([xa, xb], verbose=0), model([xa, xb])):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got[1], want[1])
    assert model.output_shape == [(None, 4), (None, 4, 1)]


def test_ops_train_as_the_same_model_of_built_in_layers():
    def build(use_ops):
        set_random_seed(3)
        a = Input((5,))
        h1, h2 = Dense(4, name="h1")(a), Dense(4, name="h2")(a)
        if use_ops:
            s = h1 + h2
            c = ops.concatenate([s, h1], axis=-1)
            x = ops.where(c > 0, c, c * 0.1)
        else:
            s = Add()([h1, h2])
            c = Concatenate(axis=-1)([s, h1])
            x = LeakyReLU(negative_slope=0.1)(c)
        model = Model(a, Dense(2, name="out")(x))
        model.compile(optimizers.SGD(0.05), "mse")
        return model
    rng = _rng(1)
    x, y = rng.standard_normal((64, 5)).astype(np.float32), rng.standard_normal((64, 2))
    with_ops, built_in = build(True), build(False)
    assert all(np.array_equal(p, q) for p, q in zip(with_ops.get_weights(),
                                                     built_in.get_weights()))
    h1 = with_ops.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    h2 = built_in.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(h1, h2, rtol=1e-5)
    assert h1[-1] < h1[0]
    for p, q in zip(with_ops.get_weights(), built_in.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_ops_gradients_match_a_hand_written_tape_step():
    set_random_seed(5)
    a = Input((3,), dtype="float64")
    d1, d2 = Dense(4, dtype="float64"), Dense(1, dtype="float64")
    h = d1(a)
    x = ops.tanh(h) * h[:, :1] + ops.expand_dims(ops.sum(h ** 2, axis=-1), -1) / 4.0
    model = Model(a, d2(x))
    assert x._keras_history.operation.dtype == "float64"
    rng = _rng(2)
    xs, ys = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    before = model.get_weights()
    with GradientTape() as tape:
        hh = d1(xs)
        pred = d2(ops.tanh(hh) * hh[:, :1] + ops.expand_dims(ops.sum(hh ** 2, axis=-1), -1) / 4.0)
        loss = ops.mean(ops.square(pred - ys))
    grads = tape.gradient(loss, model.trainable_weights)
    model.compile(optimizers.SGD(0.1), "mse")
    model.train_on_batch(xs, ys)
    for w0, g, w1 in zip(before, grads, model.get_weights()):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-10, atol=1e-12)


def test_split_makes_one_layer_per_piece_and_they_train():
    set_random_seed(0)
    a = Input((6,))
    h = Dense(6)(a)
    first, second, third = ops.split(h, 3, axis=-1)
    assert [t.shape for t in (first, second, third)] == [(None, 2)] * 3
    assert [t._keras_history.operation.output_index for t in (first, second, third)] == [0, 1, 2]
    model = Model(a, Dense(1)(first * second - third))
    model.compile(optimizers.SGD(0.05), "mse")
    rng = _rng()
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.standard_normal((32, 1))
    losses = model.fit(x, y, epochs=4, verbose=0, shuffle=False).history["loss"]
    assert losses[-1] < losses[0]


def test_integer_inputs_index_tables_and_one_hot():
    ids = Input((3,), dtype="int32")
    table = _rng().random((10, 4)).astype(np.float32)
    emb, hot = ops.take(table, ids, axis=0), ops.one_hot(ids, 10)
    assert (emb.shape, hot.shape) == ((None, 3, 4), (None, 3, 10))
    model = Model(ids, [emb, hot])
    x = np.array([[1, 2, 3], [9, 0, 0]], np.int32)
    got = model.predict(x, verbose=0)
    np.testing.assert_array_equal(got[0], table[x])
    np.testing.assert_array_equal(got[1], np.eye(10, dtype=np.float32)[x])


def test_nested_model_of_ops_and_summary(capsys):
    a = Input((4,))
    x = Dense(3, name="proj")(a)
    inner = Model(a, ops.concatenate([x * 2.0, x[:, :1]], axis=-1), name="inner")
    b = Input((4,))
    outer = Model(b, Dense(2)(inner(b)))
    assert inner.compute_output_shape((4,)) == (4,)
    x_ = _rng().random((5, 4)).astype(np.float32)
    assert outer.predict(x_, verbose=0).shape == (5, 2)
    inner.summary()
    text = capsys.readouterr().out
    assert re.search(r"multiply(_\d+)? \(OpLayer\) +\(None, 3\)", text)
    assert re.search(r"get_item(_\d+)? \(OpLayer\) +\(None, 1\)", text)
    assert "concatenate" in text and "(None, 4)" in text and "proj[0][0]" in text


# ---- saving ----

def _saveable_model():
    a = Input((2, 3))
    x = a[:, 1, ::-1] + a[..., 0, None][:, 1]            # slices, ints, None, Ellipsis
    x = ops.reshape(x, (-1, 3)) * np.float32(0.5)        # a tuple, a numpy scalar
    x = ops.clip(x, -float("inf"), 2.0)                  # a non-finite float
    x = ops.concatenate([x, ops.cast(a[:, 0] > 0.3, np.float32)], axis=-1)
    x = ops.sum(ops.stack([x, x * 2], axis=1), axis=(1,), keepdims=False)
    return Model(a, Dense(2)(x))


def test_ops_save_and_load_with_identical_predictions(tmp_path):
    model = _saveable_model()
    x = _rng().random((5, 2, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    path = os.path.join(tmp_path, "ops.minidl")
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    rebuilt = model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), want)
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), want)
    configs = json.loads(model.to_json())["config"]["layers"]
    indexes = [c["config"]["args"][1] for c in configs
               if c["class_name"] == "OpLayer" and c["config"]["op"] == "get_item"]
    assert {"__tuple__": [{"__slice__": [None, None, None]}, 1,
                          {"__slice__": [None, None, -1]}]} in indexes


def test_trained_model_of_ops_resumes_after_load(tmp_path):
    set_random_seed(1)
    a = Input((3,))
    h = Dense(4)(a)
    model = Model(a, Dense(1)(ops.relu(h) * 0.5 + h[:, -1:]))
    model.compile("adam", "mse")
    rng = _rng()
    x, y = rng.random((16, 3)).astype(np.float32), rng.random((16, 1)).astype(np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.minidl")
    model.save(path)
    loaded = load_model(path)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for p, q in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_array_constants_are_refused_at_save_time(tmp_path):
    a = Input((3,))
    model = Model(a, a @ np.ones((3, 2), np.float32))
    path = os.path.join(tmp_path, "no.minidl")
    with pytest.raises(ValueError, match=r"Layer 'matmul.*' \(ops.matmul\) cannot be saved: its "
                                         r"argument args\[1\] is an array of shape \(3, 2\)"):
        model.save(path)
    assert not os.path.exists(path)
    with pytest.raises(ValueError, match="cannot be saved"):
        model.to_json()


@pytest.mark.parametrize("config, pattern", [
    ({"op": "system", "args": [{"__input__": 0}]}, "op must be the name of one of minidl.ops"),
    ({"op": "__import__", "args": [{"__input__": 0}]}, "op must be the name"),
    ({"op": "gemm", "args": [{"__input__": 0}]}, "op must be the name"),
    ({"op": "shape", "args": [{"__input__": 0}]}, "op must be the name"),
    ({"op": "add", "args": [{"__input__": 0}, {"__input__": 2}]}, r"InputRef\(0\), InputRef\(1\)"),
    ({"op": "add", "args": [1, 2]}, "InputRef"),
    ({"op": "add", "args": [{"__input__": 0}, {"__code__": "print(1)"}]}, r"args\[1\] must be"),
    ({"op": "add", "args": [{"__input__": 0}, {"__scalar__": 1, "dtype": "object"}]},
     "not a valid __scalar__"),
    ({"op": "add", "args": [{"__input__": 0}, {"__dtype__": "V8"}]}, "not a valid __dtype__"),
    ({"op": "get_item", "args": [{"__input__": 0}, {"__slice__": [0, "a", None]}]},
     "not a valid __slice__"),
    ({"op": "add", "args": {"x": 1}}, "args must be a list"),
])
def test_op_layer_configs_are_checked(config, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        minidl.layers.get({"class_name": "OpLayer", "config": dict(config, name="x")})


def test_op_layer_round_trips_its_config_and_runs_eagerly():
    layer = OpLayer("get_item", (InputRef(0), (Ellipsis, slice(1, None, 2), None)))
    again = OpLayer.from_config(json.loads(json.dumps(layer.get_config())))
    assert again.args == layer.args and again.op == "get_item"
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(again([x]).numpy(), x[..., 1::2, None])
