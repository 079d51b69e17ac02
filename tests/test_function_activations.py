"""Python functions as activations (Keras's ``Dense(..., activation=fn)``,
``layers.Activation(fn)``): :class:`minidl.activations.FunctionActivation`, whose backward
pass comes from automatic differentiation of the function."""
import numpy as np
import pytest

import minidl
from minidl import Input, activations, layers, ops
from minidl.activations import FunctionActivation
from minidl.models import Sequential, load_model


def soft_tanh(x):
    return ops.tanh(x) + 0.1 * x


def times_sigmoid(x):
    return x * ops.sigmoid(1.5 * x)


def as_tanh(x):   # the kernel's function, through autodiff
    return ops.tanh(x)


def test_forward_and_backward_match_the_kernel_of_the_same_function():
    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float32, 2e-6), (np.float64, 1e-14)):
        z = rng.normal(size=(7, 5)).astype(dtype)
        dy = rng.normal(size=(7, 5)).astype(dtype)
        ours, kernel = activations.get(as_tanh), activations.get("tanh")
        assert isinstance(ours, FunctionActivation) and not ours.compiled
        y = ours.forward(z, np.empty_like(z))
        np.testing.assert_allclose(y, kernel.forward(z, np.empty_like(z)), rtol=0, atol=tol)
        np.testing.assert_allclose(ours.backward(z, y, dy, np.empty_like(z)),
                                   kernel.backward(z, y, dy, np.empty_like(z)), rtol=0,
                                   atol=tol)
        assert y.dtype == dtype


def test_backward_is_the_vector_jacobian_product():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 3))
    dy = rng.normal(size=(4, 3))
    act = activations.get(times_sigmoid)
    grad = act.backward(z, None, dy, np.empty_like(z))
    eps = 1e-6
    numeric = ((act.forward(z + eps, np.empty_like(z)) - act.forward(z - eps, np.empty_like(z)))
               / (2 * eps)) * dy
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)
    # Along the last axis too: a softmax written by hand.
    def my_softmax(x):
        e = ops.exp(x - ops.max(x, axis=-1, keepdims=True))
        return e / ops.sum(e, axis=-1, keepdims=True)
    ours, kernel = activations.get(my_softmax), activations.get("softmax")
    y = kernel.forward(z, np.empty_like(z))
    np.testing.assert_allclose(ours.backward(z, y, dy, np.empty_like(z)),
                               kernel.backward(z, y, dy, np.empty_like(z)), atol=1e-12)


def test_bias_fusions_add_the_bias_and_sum_its_gradient():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(6, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    dy = rng.normal(size=(6, 4)).astype(np.float32)
    act = activations.get(soft_tanh)
    expected = np.tanh(z + bias) + 0.1 * (z + bias)
    zb = z.copy()
    y = act.forward_bias(zb, bias, np.empty_like(z))
    np.testing.assert_allclose(zb, z + bias, atol=1e-7)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    dz, dbias = np.empty_like(z), np.empty_like(bias)
    act.backward_bias(zb, y, dy, dz, dbias)
    np.testing.assert_allclose(dz, dy * (1 - np.tanh(zb) ** 2 + 0.1), atol=1e-6)
    np.testing.assert_allclose(dbias, dz.sum(axis=0), atol=1e-6)


def test_ops_with_an_activations_defaults_get_its_kernel():
    assert type(activations.get(ops.relu)) is activations.ReLU
    assert type(activations.get(ops.tanh)) is activations.Tanh
    assert type(activations.get(ops.softmax)) is activations.Softmax
    # ops.gelu approximates by default, activations.gelu does not: no kernel swap.
    gelu = activations.get(ops.gelu)
    assert isinstance(gelu, FunctionActivation)
    z = np.linspace(-3, 3, 13, dtype=np.float32).reshape(1, -1)
    np.testing.assert_allclose(gelu(z), activations.GELU(approximate=True)(z), atol=1e-6)
    assert activations.get(soft_tanh) == activations.get(soft_tanh)
    assert activations.get(soft_tanh) != activations.get(times_sigmoid)


def test_a_function_that_changes_the_shape_is_refused():
    act = activations.get(lambda x: ops.sum(x, axis=-1))
    with pytest.raises(ValueError, match="must return its input's shape"):
        act.forward(np.ones((2, 3), np.float32), np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="expects a function"):
        FunctionActivation(3)


def test_a_function_not_of_its_input_gives_no_gradient():
    act = activations.get(lambda x: ops.zeros_like(x) + 1.0)
    z = np.ones((2, 3), np.float32)
    out = act.backward(z, None, np.ones_like(z), np.full_like(z, 7))
    assert not out.any()


def _train(activation, x, y, layer="dense", steps=3):
    minidl.utils.set_random_seed(5)
    if layer == "dense":
        body = [layers.Dense(8, activation=activation), layers.Dense(1)]
        inputs = Input((6,))
    elif layer == "activation":
        body = [layers.Dense(8), layers.Activation(activation), layers.Dense(1)]
        inputs = Input((6,))
    elif layer == "conv":
        body = [layers.Conv2D(4, 3, activation=activation), layers.Flatten(), layers.Dense(1)]
        inputs = Input((6, 6, 1))
    else:
        body = [layers.LSTM(5, activation=activation), layers.Dense(1)]
        inputs = Input((4, 3))
    model = Sequential([inputs] + body)
    # Plain SGD: an update proportional to the gradient (Adam's first steps are about
    # lr * sign(gradient), blind to a gradient slightly wrong).
    model.compile(optimizer=minidl.optimizers.SGD(0.1), loss="mse")
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


@pytest.mark.parametrize("layer", ["dense", "activation", "conv", "lstm"])
def test_training_with_a_function_matches_the_kernel(layer):
    rng = np.random.default_rng(3)
    shape = {"dense": (16, 6), "activation": (16, 6), "conv": (16, 6, 6, 1),
             "lstm": (16, 4, 3)}[layer]
    x = rng.normal(size=shape).astype(np.float32)
    y = rng.normal(size=(16, 1)).astype(np.float32)
    ours = _train(as_tanh, x, y, layer)
    kernel = _train("tanh", x, y, layer)
    for a, b in zip(ours.get_weights(), kernel.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), kernel.predict(x, verbose=0),
                               rtol=0, atol=2e-5)


def test_same_bits_on_any_thread_count():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 6)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    before = minidl.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            minidl.set_num_threads(threads)
            runs.append(_train(soft_tanh, x, y).get_weights())
    finally:
        minidl.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("suffix", [".minidl", ".keras"])
def test_saved_by_name_and_loaded_with_custom_objects(tmp_path, suffix):
    if suffix == ".keras":
        pytest.importorskip("h5py")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    model = _train(soft_tanh, x, rng.normal(size=(8, 1)).astype(np.float32))
    path = str(tmp_path / ("m" + suffix))
    model.save(path)
    with pytest.raises(Exception, match="soft_tanh"):
        load_model(path)
    loaded = load_model(path, custom_objects={"soft_tanh": soft_tanh})
    assert loaded.layers[0].activation.fn is soft_tanh
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=0, atol=1e-6)


def test_a_registered_function_loads_without_custom_objects(tmp_path):
    @minidl.saving.register_keras_serializable(package="fn_test")
    def registered_tanh(x):
        return ops.tanh(x) * 0.5

    model = Sequential([Input((3,)), layers.Dense(2, activation=registered_tanh)])
    assert model.layers[0].get_config()["activation"] == "fn_test>registered_tanh"
    path = str(tmp_path / "m.minidl")
    model.save(path)
    assert load_model(path).layers[0].activation.fn is registered_tanh
