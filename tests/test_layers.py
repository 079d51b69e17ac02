"""Layers: float64 gradient checks, one table row per layer config, weights and config API.

Gradient checks compare ``backward`` (the training path, with its reused buffers and fused
bias/activation kernels) against central differences of the inference path ``layer(x)``
for the scalar ``sum(layer(x) * w)``, so ``dy = w``.
"""
import json

import numpy as np
import pytest

from minidl import activations, initializers
from minidl.layers import Activation, CallContext, Dense, Flatten, Input, InputLayer, Reshape
from minidl.layers import get as get_layer
from minidl._ref.gradcheck import check_layer_gradients

ACTIVATION_NAMES = ["linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu",
                    "selu", "gelu", "softplus", "silu"]


pytestmark = pytest.mark.usefixtures("one_thread")




# ---- gradient checks ----

@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_dense_gradients(activation, use_bias):
    rng = np.random.default_rng(1)
    layer = Dense(4, activation=activation, use_bias=use_bias, dtype="float64",
                  bias_initializer="random_normal")
    x = rng.standard_normal((5, 3))
    check_layer_gradients(layer, x)


@pytest.mark.parametrize("activation", [activations.LeakyReLU(0.1), activations.ELU(0.5),
                                        activations.GELU(approximate=True),
                                        activations.ReLU(max_value=0.8, threshold=0.1)],
                         ids=repr)
def test_dense_gradients_activation_objects(activation):
    rng = np.random.default_rng(2)
    layer = Dense(3, activation=activation, dtype="float64", bias_initializer="random_normal")
    check_layer_gradients(layer, rng.standard_normal((4, 5)))


def test_dense_first_layer_skips_input_gradient():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3))
    layer = Dense(2, activation="tanh", dtype="float64")
    layer(x)
    dy = rng.standard_normal((6, 2))
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    full = ctx.backward(dy.copy(), need_input_grad=True)
    grads = [g.copy() for g in ctx.grads]
    ctx.forward(x, training=True)
    assert ctx.backward(dy.copy(), need_input_grad=False) is None
    assert full is not None
    for a, b in zip(grads, ctx.grads):
        np.testing.assert_array_equal(a, b)


def test_dense_backward_preactivation_is_the_linear_backward():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3))
    layer = Dense(4, activation="softmax", dtype="float64")
    layer(x)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dz = rng.standard_normal((6, 4))
    dx = layer.backward_preactivation(ctx, dz.copy())
    kernel, _ = layer.get_weights()
    np.testing.assert_allclose(ctx.grads[0], x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(ctx.grads[1], dz.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dx, dz @ kernel.T, rtol=1e-12)


def test_dense_float32_training_matches_float64():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 5))
    dy = rng.standard_normal((7, 3))
    out = {}
    for dtype in ("float32", "float64"):
        layer = Dense(3, activation="gelu", dtype=dtype,
                      kernel_initializer=initializers.GlorotUniform(seed=3))
        layer(x[:1].astype(dtype))
        ctx = CallContext(layer)
        y = ctx.forward(x.astype(dtype), training=True)
        dx = ctx.backward(dy.astype(dtype))
        assert y.dtype == dtype and dx.dtype == dtype and ctx.grads[0].dtype == dtype
        out[dtype] = (y.copy(), dx.copy(), ctx.grads[0].copy())
    for a, b in zip(out["float32"], out["float64"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_activation_layer_gradients(activation):
    rng = np.random.default_rng(6)
    layer = Activation(activation, dtype="float64")
    check_layer_gradients(layer, rng.standard_normal((2, 3, 4)))


def test_activation_layer_matches_activation_function():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5))
    for name in ACTIVATION_NAMES:
        np.testing.assert_allclose(Activation(name, dtype="float64")(x),
                                   activations.get(name)(x), rtol=1e-14, err_msg=name)


@pytest.mark.parametrize("layer, in_shape", [
    (lambda: Flatten(dtype="float64"), (2, 3, 4)),
    (lambda: Flatten(dtype="float64"), (3, 5)),
    (lambda: Reshape((3, 4), dtype="float64"), (12,)),
    (lambda: Reshape((-1, 2), dtype="float64"), (3, 4)),
    (lambda: Reshape((6,), dtype="float64"), (2, 3)),
], ids=["flatten3d", "flatten2d", "reshape", "reshape_infer", "reshape_flat"])
def test_reshaping_gradients(layer, in_shape):
    rng = np.random.default_rng(8)
    layer = layer()
    x = rng.standard_normal((3,) + in_shape)
    y = check_layer_gradients(layer, x)
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


# ---- one row per layer config ----

LAYER_CASES = [
    # id, factory, input sample shape, output sample shape, weight shapes (Keras order)
    ("dense", lambda: Dense(7), (5,), (7,), [(5, 7), (7,)]),
    ("dense_relu_nobias", lambda: Dense(7, activation="relu", use_bias=False), (5,), (7,),
     [(5, 7)]),
    ("dense_softmax_inits", lambda: Dense(3, activation="softmax", kernel_initializer="he_normal",
                                          bias_initializer="ones"), (4,), (3,), [(4, 3), (3,)]),
    ("dense_objects", lambda: Dense(2, activation=activations.LeakyReLU(0.1),
                                    kernel_initializer=initializers.GlorotNormal(seed=1),
                                    bias_initializer=initializers.Constant(0.5)),
     (6,), (2,), [(6, 2), (2,)]),
    ("dense_input_shape", lambda: Dense(4, input_shape=(6,), name="first"), (6,), (4,),
     [(6, 4), (4,)]),
    ("dense_float64", lambda: Dense(3, activation="tanh", dtype="float64"), (2,), (3,),
     [(2, 3), (3,)]),
    ("dense_frozen", lambda: Dense(3, trainable=False), (2,), (3,), [(2, 3), (3,)]),
    ("activation", lambda: Activation("tanh"), (3, 4), (3, 4), []),
    ("activation_object", lambda: Activation(activations.ELU(0.5)), (5,), (5,), []),
    ("activation_softmax", lambda: Activation("softmax", dtype="float64"), (4,), (4,), []),
    ("flatten", lambda: Flatten(), (2, 3, 4), (24,), []),
    ("flatten_flat", lambda: Flatten(), (5,), (5,), []),
    ("reshape", lambda: Reshape((3, 4)), (12,), (3, 4), []),
    ("reshape_infer", lambda: Reshape((-1, 2)), (3, 4), (6, 2), []),
    ("reshape_input_shape", lambda: Reshape([2, 2], input_shape=(4,)), (4,), (2, 2), []),
]
CASE_IDS = [case[0] for case in LAYER_CASES]


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_layer_output_shape(case):
    _, factory, in_shape, out_shape, _ = case
    layer = factory()
    assert tuple(layer.compute_output_shape(in_shape)) == out_shape
    x = np.random.default_rng(0).standard_normal((3,) + in_shape)
    y = layer(x)
    assert y.shape == (3,) + out_shape
    assert y.dtype == np.dtype(layer.dtype)
    assert layer.built and layer.built_input_shape == in_shape


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_layer_config_round_trip(case):
    _, factory, _, _, _ = case
    layer = factory()
    config = layer.get_config()
    json.dumps(config)  # JSON-able
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    by_name = get_layer({"class_name": type(layer).__name__, "config": config})
    assert by_name.get_config() == config
    assert "weights" not in config and "kernel" not in config


@pytest.mark.parametrize("case", LAYER_CASES, ids=CASE_IDS)
def test_layer_weights(case):
    _, factory, in_shape, _, weight_shapes = case
    layer = factory()
    assert layer.get_weights() == []  # nothing before build
    layer(np.zeros((1,) + in_shape))
    weights = layer.get_weights()
    assert [w.shape for w in weights] == weight_shapes
    assert all(w.dtype == np.dtype(layer.dtype) for w in weights)
    assert layer.count_params() == sum(int(np.prod(s)) for s in weight_shapes)

    rng = np.random.default_rng(0)
    new = [rng.standard_normal(s) for s in weight_shapes]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_allclose(got, want.astype(layer.dtype))
    for w in layer.get_weights():  # copies: changing them does not touch the layer
        w[...] = 123.0
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_allclose(got, want.astype(layer.dtype))

    with pytest.raises(ValueError, match=f"expects {len(weight_shapes)} weight arrays.*received "
                                         f"{len(weight_shapes) + 1}"):
        layer.set_weights(new + [np.zeros(3)])
    if weight_shapes:
        bad = [np.zeros(s) for s in weight_shapes]
        bad[0] = np.zeros(weight_shapes[0][:-1] + (weight_shapes[0][-1] + 1,))
        with pytest.raises(ValueError, match=r"kernel.*\(.*\).*received an array of shape"):
            layer.set_weights(bad)
        nan = [np.zeros(s) for s in weight_shapes]
        nan[-1][0] = np.nan
        with pytest.raises(ValueError, match="NaN or inf"):
            layer.set_weights(nan)
        for got, want in zip(layer.get_weights(), new):  # a failed set changes nothing
            np.testing.assert_allclose(got, want.astype(layer.dtype))


def test_dense_defaults_follow_keras():
    layer = Dense(5)
    config = layer.get_config()
    assert config["activation"] == "linear"
    assert config["use_bias"] is True
    assert config["kernel_initializer"] == "glorot_uniform"
    assert config["bias_initializer"] == "zeros"
    layer(np.ones((1, 300)))
    kernel, bias = layer.get_weights()
    np.testing.assert_array_equal(bias, 0)
    limit = np.sqrt(6 / (300 + 5))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit


def test_dense_forward_values():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 3))
    layer = Dense(2, activation="relu", dtype="float64")
    layer(x)
    kernel, bias = rng.standard_normal((3, 2)), rng.standard_normal(2)
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(layer(x), np.maximum(x @ kernel + bias, 0), rtol=1e-14)


def test_layer_call_accepts_any_layout_and_dtype():
    rng = np.random.default_rng(10)
    layer = Dense(3, activation="tanh")
    wide = rng.random((4, 10))
    strided = wide[:, ::2]
    expected = layer(np.ascontiguousarray(strided, dtype=np.float32))
    np.testing.assert_array_equal(layer(strided.astype(np.float32)), expected)
    np.testing.assert_array_equal(layer(np.asfortranarray(strided, dtype=np.float32)), expected)
    np.testing.assert_array_equal(layer(strided), expected)  # float64 in, float32 layer
    assert layer(np.zeros((0, 5))).shape == (0, 3)
    out = layer(strided)
    np.asarray(out)[...] = 0  # a new array: the next call is unaffected
    np.testing.assert_array_equal(layer(strided), expected)


def test_input_layer():
    # Input returns the symbolic tensor of a new InputLayer (as in Keras 3), whose config
    # stores the shape with the batch dimension (batch_shape).
    tensor = Input((28, 28))
    layer = tensor._keras_history.operation
    assert isinstance(layer, InputLayer)
    assert tensor.shape == (None, 28, 28) and layer.built_input_shape == (28, 28)
    config = layer.get_config()
    assert config["batch_shape"] == [None, 28, 28]
    assert InputLayer.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="shape"):
        InputLayer()
    with pytest.raises(ValueError, match="positive"):
        Input((0, 3))


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: Dense(0), ValueError, "units=0"),
    (lambda: Dense(-2), ValueError, "units=-2"),
    (lambda: Dense(2.5), ValueError, "units=2.5"),
    (lambda: Dense(True), ValueError, "units=True"),
    (lambda: Dense("8"), ValueError, "units='8'"),
    (lambda: Dense(3, activation="relux"), ValueError, "relux.*relu.*softmax"),
    (lambda: Activation("sofmax"), ValueError, "sofmax.*softmax"),
    (lambda: Dense(3, kernel_initializer="glorot"), ValueError, "glorot.*glorot_uniform"),
    (lambda: Dense(3, dtype="float16"), ValueError, "float16"),
    (lambda: Dense(3, name=""), ValueError, "name"),
    (lambda: Dense(3, input_shape=(0,)), ValueError, "input_shape"),
    (lambda: Dense(3, input_shape="abc"), ValueError, "input_shape"),
    (lambda: Reshape((0, 3)), ValueError, "target_shape"),
    (lambda: Reshape((-1, -1)), ValueError, "at most one -1"),
    (lambda: Reshape(("a", 2)), TypeError, "target_shape"),
    (lambda: Reshape(5), TypeError, "target_shape"),
], ids=["units0", "units_neg", "units_float", "units_bool", "units_str", "activation",
        "activation_layer", "initializer", "dtype", "name", "input_shape_zero",
        "input_shape_str", "reshape_zero", "reshape_two_minus_one", "reshape_str",
        "reshape_int"])
def test_layer_constructor_errors(make, error, pattern):
    # Unknown initializers may only be found on build, so build when construction passes.
    with pytest.raises(error, match=pattern):
        layer = make()
        layer(np.ones((1, 4)))


def test_dense_rejects_inputs_of_another_shape():
    layer = Dense(3)
    layer(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"built for inputs of shape \(None, 5\).*\(None, 6\)"):
        layer(np.ones((2, 6)))
    with pytest.raises(ValueError, match=r"known number of features"):
        Dense(3).build((4, None))


def test_dense_applies_along_the_last_axis_of_nd_inputs():
    # As Keras: (batch, ..., features) -> (batch, ..., units), the kernel at every position.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 5, 3))
    layer = Dense(6, activation="tanh", dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    kernel, bias = layer.get_weights()
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias), rtol=1e-12)
    dy = rng.normal(size=y.shape)
    dx = ctx.backward(dy)
    dz = dy * (1 - y ** 2)
    np.testing.assert_allclose(dx, dz @ kernel.T, rtol=1e-12)
    np.testing.assert_allclose(ctx.grads[0], x.reshape(-1, 3).T @ dz.reshape(-1, 6),
                               rtol=1e-12)
    np.testing.assert_allclose(ctx.grads[1], dz.reshape(-1, 6).sum(axis=0), rtol=1e-12)
    assert Dense(3)(np.ones((2, 4, 4))).shape == (2, 4, 3)


def test_reshape_rejects_incompatible_sizes():
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape \(5,\).*\(2, 3\)"):
        Reshape((2, 3))(np.ones((1, 5)))
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((-1, 2))(np.ones((1, 5)))


def test_layer_names_are_unique_and_kept():
    a, b = Dense(2), Dense(2)
    assert a.name != b.name
    assert Dense(2, name="head").name == "head"
