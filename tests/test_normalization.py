"""BatchNormalization and LayerNormalization: kernels against the numpy reference, float64
gradient checks of the training path, moving statistics, weights, config and training.
"""
import inspect
import json

import numpy as np
import pytest

import minidl
from minidl import optimizers, regularizers
from minidl._core import _normalization as kernels
from minidl._ref import normalization as ref
from minidl.layers import (BatchNormalization, CallContext, Dense, Dropout,
                           LayerNormalization, get as get_layer)
from minidl.models import Sequential
from minidl._ref.gradcheck import numeric_grad

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


pytestmark = pytest.mark.usefixtures("one_thread")


def data(shape, dtype=np.float64, seed=0, scale=2.0, offset=0.5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)




def check_training_gradients(layer, x, seed=0):
    """backward of the training path against central differences of
    ``sum(layer(x, training=True) * w)``, for x and every trainable weight."""
    w = np.random.default_rng(seed).standard_normal(x.shape)
    layer(x, training=True)  # builds
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dx = ctx.backward(w.copy(), need_input_grad=True)
    assert dx.shape == x.shape
    dx, grads = dx.copy(), [g.copy() for g in ctx.grads]

    def scalar():
        return float(np.sum(layer(x, training=True) * w))

    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-7,
                               err_msg=f"{layer.name}: input gradient")
    for name, param, grad in zip(layer.param_names, layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-7,
                                   err_msg=f"{layer.name}: gradient of {name}")


# ---- kernels against the reference ----

def test_reference_mirrors_kernel_signatures():
    for name in ("batch_norm_train", "batch_norm_inference", "batch_norm_backward",
                 "layer_norm_forward", "layer_norm_backward"):
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


BN_SHAPES = [((7, 5), 1), ((4, 3, 3, 6), 3), ((4, 6, 3, 3), 1), ((3, 4, 5), 2), ((300, 40), 1)]


def _bn_arrays(shape, axis, dtype, seed):
    c = shape[axis]
    rng = np.random.default_rng(seed + 1)
    x = data(shape, dtype, seed, scale=3.0, offset=10.0)
    gamma, beta = (rng.standard_normal(c).astype(dtype) for _ in range(2))
    mm, mv = rng.standard_normal(c).astype(dtype), rng.random(c).astype(dtype) + 0.5
    return x, gamma, beta, mm, mv


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", BN_SHAPES, ids=[str(s) for s, _ in BN_SHAPES])
def test_batch_norm_kernels_match_reference(shape, axis, dtype):
    x, gamma, beta, mm, mv = _bn_arrays(shape, axis, dtype, 0)
    c = shape[axis]
    outs = {}
    for name, mod in (("kernel", kernels), ("ref", ref)):
        m, v = mm.copy(), mv.copy()
        mean, invstd, y = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
        mod.batch_norm_train(x, axis, gamma, beta, m, v, mean, invstd, y, 0.9, 1e-3)
        yi = np.empty_like(x)
        mod.batch_norm_inference(x, axis, gamma, beta, m, v, yi, 1e-3)
        dy = data(shape, dtype, 5)
        dx, dg, db = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        mod.batch_norm_backward(x, dy, axis, gamma, mean, invstd, dx, dg, db)
        outs[name] = (y, m, v, mean, invstd, yi, dx, dg, db)
    for got, want, what in zip(outs["kernel"], outs["ref"],
                               ("y", "moving_mean", "moving_variance", "mean", "invstd",
                                "inference y", "dx", "dgamma", "dbeta")):
        tol = dict(TOL[dtype])
        if what in ("dgamma", "dbeta") and dtype == np.float32:
            tol["atol"] = 1e-4 * np.sqrt(x.size)  # sums of many float32 terms
        np.testing.assert_allclose(got, want, err_msg=what, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,cols", [((6, 5), 5), ((3, 4, 6), 24), ((3, 4, 6), 6),
                                        ((50, 700), 700), ((9, 3), 3)])
def test_layer_norm_kernels_match_reference(shape, cols, dtype):
    rows = int(np.prod(shape)) // cols
    x = data(shape, dtype, 1, scale=3.0, offset=-20.0)
    rng = np.random.default_rng(2)
    gamma, beta = (rng.standard_normal(cols).astype(dtype) for _ in range(2))
    dy = data(shape, dtype, 3)
    outs = {}
    for name, mod in (("kernel", kernels), ("ref", ref)):
        mean, invstd, y = np.empty(rows, dtype), np.empty(rows, dtype), np.empty_like(x)
        mod.layer_norm_forward(x, cols, gamma, beta, mean, invstd, y, 1e-3)
        dx, dg, db = np.empty_like(x), np.empty(cols, dtype), np.empty(cols, dtype)
        mod.layer_norm_backward(x, dy, cols, gamma, mean, invstd, dx, dg, db)
        outs[name] = (y, mean, invstd, dx, dg, db)
    for got, want, what in zip(outs["kernel"], outs["ref"],
                               ("y", "mean", "invstd", "dx", "dgamma", "dbeta")):
        tol = dict(TOL[dtype])
        if what in ("dgamma", "dbeta", "dx") and dtype == np.float32:
            tol["atol"] = 1e-4 * np.sqrt(rows)
        np.testing.assert_allclose(got, want, err_msg=what, **tol)


# Shapes large enough to open a parallel region, over several chunks; the last two also
# reach the cap on the number of chunks, and (40, 16, 32, 32) is channels-first (inner > 1).
THREAD_CASES = [((600, 128), 1), ((2100, 256), 1), ((40, 16, 32, 32), 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", THREAD_CASES, ids=[str(s) for s, _ in THREAD_CASES])
def test_kernels_give_the_same_bits_for_one_and_two_threads(shape, axis, dtype):
    assert np.prod(shape) >= kernels.PARALLEL_MIN
    x, gamma, beta, mm, mv = _bn_arrays(shape, axis, dtype, 4)
    dy = data(x.shape, dtype, 9)
    c, cols = shape[axis], shape[-1]
    lg, lb = data((cols,), dtype, 6), data((cols,), dtype, 7)
    rows = x.size // cols
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        m, v = mm.copy(), mv.copy()
        mean, invstd, y = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
        kernels.batch_norm_train(x, axis, gamma, beta, m, v, mean, invstd, y, 0.99, 1e-3)
        dx, dg, db = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        kernels.batch_norm_backward(x, dy, axis, gamma, mean, invstd, dx, dg, db)
        lmean, linv, ly = np.empty(rows, dtype), np.empty(rows, dtype), np.empty_like(x)
        kernels.layer_norm_forward(x, cols, lg, lb, lmean, linv, ly, 1e-3)
        ldx, ldg, ldb = np.empty_like(x), np.empty(cols, dtype), np.empty(cols, dtype)
        kernels.layer_norm_backward(x, dy, cols, lg, lmean, linv, ldx, ldg, ldb)
        results.append((y, m, v, dx, dg, db, ly, ldx, ldg, ldb))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_kernels_check_their_arguments():
    x = np.zeros((4, 3))
    c = np.ones(3)
    with pytest.raises(ValueError, match=r"gamma must hold 3 values; received.*\(2,\)"):
        kernels.batch_norm_inference(x, 1, np.ones(2), c, c, c, np.empty_like(x), 1e-3)
    with pytest.raises(TypeError, match="dtype float64"):
        kernels.batch_norm_inference(x, 1, c.astype(np.float32), c, c, c, np.empty_like(x), 1e-3)
    with pytest.raises(ValueError, match="axis=2"):
        kernels.batch_norm_inference(x, 2, c, c, c, c, np.empty_like(x), 1e-3)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.layer_norm_forward(np.zeros((3, 4)).T, 4, c, c, None, None, np.empty((4, 3)), 1e-3)
    with pytest.raises(ValueError, match="cols=5"):
        kernels.layer_norm_forward(x, 5, c, c, None, None, np.empty_like(x), 1e-3)
    big = np.zeros(8)
    with pytest.raises(ValueError, match="partly overlaps"):
        kernels.layer_norm_forward(big[:6].reshape(2, 3), 3, c, c, None, None,
                                   big[2:].reshape(2, 3), 1e-3)


# ---- gradient checks (float64, training path) ----

@pytest.mark.parametrize("kwargs,shape", [
    ({}, (6, 4)),
    ({"center": False}, (6, 4)),
    ({"scale": False}, (5, 3)),
    ({"momentum": 0.5, "epsilon": 0.1}, (4, 3)),
    ({}, (3, 2, 2, 3)),            # channels-last images
    ({"axis": 1}, (3, 3, 2, 2)),   # channels-first images
    ({"axis": -2}, (2, 3, 2)),
], ids=["2d", "no_center", "no_scale", "momentum_eps", "4d", "4d_axis1", "3d_axis-2"])
def test_batch_norm_gradients(kwargs, shape):
    layer = BatchNormalization(dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal", **kwargs)
    check_training_gradients(layer, data(shape, seed=3))


def test_frozen_batch_norm_runs_inference_and_its_gradient_matches():
    layer = BatchNormalization(dtype="float64", trainable=False)
    x = data((5, 3), seed=4)
    layer(x)
    rng = np.random.default_rng(0)
    layer.set_weights([rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3),
                       rng.random(3) + 0.5])
    before = layer.get_weights()
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    np.testing.assert_allclose(y, layer(x), rtol=1e-14)   # moving statistics, as Keras
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)          # state is frozen too
    w = rng.standard_normal(x.shape)
    dx = ctx.backward(w, need_input_grad=True)
    np.testing.assert_allclose(dx, numeric_grad(lambda: float(np.sum(layer(x) * w)), x),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kwargs,shape", [
    ({}, (4, 5)),
    ({"center": False}, (3, 4)),
    ({"scale": False}, (3, 4)),
    ({}, (2, 3, 4)),
    ({"axis": [-2, -1]}, (2, 3, 4)),
    ({"axis": [1, 2, 3], "epsilon": 0.01}, (2, 2, 2, 3)),
], ids=["2d", "no_center", "no_scale", "3d_last", "3d_two_axes", "4d_three_axes"])
def test_layer_norm_gradients(kwargs, shape):
    layer = LayerNormalization(dtype="float64", gamma_initializer="random_normal",
                               beta_initializer="random_normal", **kwargs)
    check_training_gradients(layer, data(shape, seed=5))


def test_first_layer_skips_the_input_gradient_but_fills_gamma_and_beta():
    for layer in (BatchNormalization(dtype="float64"), LayerNormalization(dtype="float64")):
        x = data((5, 3))
        layer(x)
        ctx = CallContext(layer)
        ctx.forward(x, training=True)
        assert ctx.backward(np.ones((5, 3)), need_input_grad=False) is None
        full = LayerNormalization if isinstance(layer, LayerNormalization) else BatchNormalization
        other = full(dtype="float64")
        other(x)
        other_ctx = CallContext(other)
        other_ctx.forward(x, training=True)
        other_ctx.backward(np.ones((5, 3)))
        for a, b in zip(ctx.grads, other_ctx.grads):
            np.testing.assert_array_equal(a, b)


# ---- semantics ----

def test_batch_norm_training_output_and_moving_statistics_follow_keras():
    x = data((16, 4), seed=6, offset=3.0)
    layer = BatchNormalization(dtype="float64")
    y = layer(x, training=True)
    mean, var = x.mean(axis=0), x.var(axis=0)   # biased variance, as Keras
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12, atol=1e-12)
    gamma, beta, moving_mean, moving_var = layer.get_weights()
    np.testing.assert_allclose(moving_mean, 0.0 * 0.99 + mean * 0.01, rtol=1e-12)
    np.testing.assert_allclose(moving_var, 1.0 * 0.99 + var * 0.01, rtol=1e-12)
    x2 = data((16, 4), seed=7)
    layer(x2, training=True)
    np.testing.assert_allclose(layer.moving_mean, moving_mean * 0.99 + x2.mean(axis=0) * 0.01,
                               rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, moving_var * 0.99 + x2.var(axis=0) * 0.01,
                               rtol=1e-12)


def test_batch_norm_4d_statistics_are_per_channel():
    x = data((3, 4, 5, 2), seed=8, offset=-1.0)
    layer = BatchNormalization(momentum=0.0, dtype="float64")
    y = layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean, x.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-12)


def test_batch_norm_inference_uses_moving_statistics():
    rng = np.random.default_rng(9)
    x = data((6, 3), seed=9)
    layer = BatchNormalization(epsilon=0.01, dtype="float64")
    layer(x)
    gamma, beta, mm, mv = rng.standard_normal(3), rng.standard_normal(3), \
        rng.standard_normal(3), rng.random(3) + 0.1
    layer.set_weights([gamma, beta, mm, mv])
    expected = gamma * (x - mm) / np.sqrt(mv + 0.01) + beta
    np.testing.assert_allclose(layer(x), expected, rtol=1e-13)
    np.testing.assert_allclose(CallContext(layer, record=False).forward(x, training=False),
                               expected, rtol=1e-13)
    for got, want in zip(layer.get_weights(), [gamma, beta, mm, mv]):  # inference changes nothing
        np.testing.assert_array_equal(got, want)


def test_layer_norm_output_follows_keras():
    x = data((3, 4, 5), seed=10)
    layer = LayerNormalization(axis=[-2, -1], dtype="float64")
    y = layer(x)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-12, atol=1e-12)
    assert layer.gamma.shape == (4, 5)
    np.testing.assert_array_equal(layer(x, training=True), y)


@pytest.mark.parametrize("make", [lambda d: BatchNormalization(dtype=d),
                                  lambda d: LayerNormalization(dtype=d)], ids=["bn", "ln"])
def test_float32_training_matches_float64(make):
    x = data((32, 16), seed=11, offset=5.0)
    dy = data((32, 16), seed=12)
    out = {}
    for dtype in ("float32", "float64"):
        layer = make(dtype)
        ctx = CallContext(layer)
        y = ctx.forward(x.astype(dtype), training=True)
        dx = ctx.backward(dy.astype(dtype))
        out[dtype] = (y, dx, *ctx.grads)
    for a, b in zip(out["float32"], out["float64"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ---- weights, config, errors ----

def test_batch_norm_weights_follow_keras_order_and_counts():
    layer = BatchNormalization()
    layer(np.zeros((2, 5), np.float32))
    assert layer.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.shape for w in layer.get_weights()] == [(5,)] * 4
    # only gamma, beta reach the optimizer
    assert len(layer.params) == len(CallContext(layer).grads) == 2
    assert layer.count_params() == 20
    assert (layer.trainable_count(), layer.non_trainable_count()) == (10, 10)
    assert [w.value is p for w, p in zip(layer.weights, layer.params)] == [True, True]
    layer.trainable = False
    assert (layer.trainable_count(), layer.non_trainable_count()) == (0, 20)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4

    bare = BatchNormalization(center=False, scale=False)
    bare(np.zeros((2, 3), np.float32))
    assert bare.weight_names == ["moving_mean", "moving_variance"]
    assert bare.params == [] and bare.count_params() == 6


def test_batch_norm_set_weights_errors_are_clear_and_change_nothing():
    layer = BatchNormalization()
    layer(np.zeros((2, 3), np.float32))
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"expects 4 weight arrays \(gamma, beta, moving_mean, "
                                         r"moving_variance\); received 2"):
        layer.set_weights(before[:2])
    bad = [np.ones(3), np.ones(3), np.ones(3), np.ones(4)]
    with pytest.raises(ValueError, match=r"'moving_variance' has shape \(3,\); received an "
                                         r"array of shape \(4,\)"):
        layer.set_weights(bad)
    with pytest.raises(ValueError, match="NaN"):
        layer.set_weights([np.ones(3), np.ones(3), np.full(3, np.nan), np.ones(3)])
    for got, want in zip(layer.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    new = [np.full(3, v, np.float32) for v in (2.0, 3.0, 4.0, 5.0)]
    layer.set_weights(new)
    for got, want in zip(layer.get_weights(), new):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make", [
    lambda: BatchNormalization(),
    lambda: BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False,
                               gamma_initializer="random_normal",
                               gamma_regularizer=regularizers.L2(0.1), name="bn"),
    lambda: LayerNormalization(),
    lambda: LayerNormalization(axis=[-2, -1], epsilon=1e-5, scale=False,
                               beta_regularizer="l1", dtype="float64"),
], ids=["bn", "bn_args", "ln", "ln_args"])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    json.dumps(config)
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert get_layer({"class_name": type(layer).__name__, "config": config}).get_config() == config


def test_config_defaults_follow_keras():
    bn = BatchNormalization().get_config()
    assert (bn["axis"], bn["momentum"], bn["epsilon"], bn["center"], bn["scale"]) == \
        (-1, 0.99, 1e-3, True, True)
    assert (bn["gamma_initializer"], bn["beta_initializer"], bn["moving_mean_initializer"],
            bn["moving_variance_initializer"]) == ("ones", "zeros", "zeros", "ones")
    ln = LayerNormalization().get_config()
    assert (ln["axis"], ln["epsilon"], ln["center"], ln["scale"]) == (-1, 1e-3, True, True)


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: BatchNormalization(momentum=1.5), ValueError, "momentum=1.5"),
    (lambda: BatchNormalization(epsilon=0), ValueError, "epsilon=0"),
    (lambda: BatchNormalization(axis="x"), TypeError, "axis='x'"),
    (lambda: BatchNormalization(center="yes"), TypeError, "center='yes'"),
    (lambda: BatchNormalization(axis=0), ValueError, "axis=0"),
    (lambda: BatchNormalization(axis=3), ValueError, "axis=3"),
    (lambda: LayerNormalization(axis=1.5), TypeError, "axis=1.5"),
    (lambda: LayerNormalization(epsilon=-1), ValueError, "epsilon=-1"),
    (lambda: LayerNormalization(axis=[1]), ValueError, r"trailing axes.*axis=\[1\]"),
    (lambda: LayerNormalization(axis=5), ValueError, "axis=5"),
], ids=["momentum", "epsilon", "axis_type", "center_type", "axis_batch", "axis_range",
        "ln_axis_type", "ln_epsilon", "ln_not_trailing", "ln_axis_range"])
def test_constructor_and_build_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()(np.ones((2, 3, 4), np.float32))


# ---- training ----

def test_dense_batchnorm_dropout_dense_trains_with_sequential():
    minidl.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64) + (x[:, 3] > 1)
    # momentum 0.9: the moving statistics settle within the few hundred steps of this test
    model = Sequential([Dense(32, input_shape=(10,)), BatchNormalization(momentum=0.9),
                        Dropout(0.2), Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.6
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean, 0)        # fit updated the moving statistics
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)   # inference: no noise
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.7


def test_model_weights_carry_the_moving_statistics():
    x = data((64, 6), np.float32, seed=13)
    y = np.arange(64) % 2
    models = []
    for seed in (0, 1):
        minidl.utils.set_random_seed(seed)
        model = Sequential([Dense(8, input_shape=(6,)), BatchNormalization(),
                            Dense(2, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        models.append(model)
    models[0].fit(x, y, epochs=2, batch_size=16, verbose=0)
    weights = models[0].get_weights()
    assert [w.shape for w in weights] == [(6, 8), (8,), (8,), (8,), (8,), (8,), (8, 2), (2,)]
    models[1].set_weights(weights)
    np.testing.assert_array_equal(models[1].predict(x, verbose=0), models[0].predict(x, verbose=0))
    with pytest.raises(ValueError, match="expects 4 weight arrays"):
        models[1].layers[1].set_weights(weights[2:4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((64, 5, 5, 6), 3), ((16, 6, 20), 1)])
def test_batch_norm_kernels_with_a_fused_relu6(shape, axis, dtype):
    """relu_max=6 caps the fused ReLU (forward) and gates the gradient to 0 < y < 6
    (backward), as the numpy reference does; gamma 4 sends values past the cap."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    channels = shape[axis]
    gamma, beta = np.full(channels, 4.0, dtype), rng.standard_normal(channels).astype(dtype)
    outs = []
    for module in (kernels, ref):
        mm, mv = np.zeros(channels, dtype), np.ones(channels, dtype)
        mean, invstd = np.empty(channels, dtype), np.empty(channels, dtype)
        y = np.empty_like(x)
        module.batch_norm_train(x, axis, gamma, beta, mm, mv, mean, invstd, y, 0.9, 1e-3,
                                relu=True, relu_max=6)
        dy = rng.standard_normal(shape).astype(dtype) if not outs else outs[0][1]
        dx, dgamma, dbeta = np.empty_like(x), np.empty(channels, dtype), np.empty(channels, dtype)
        module.batch_norm_backward(x, dy, axis, gamma, mean, invstd, dx, dgamma, dbeta,
                                   gate=y, relu_max=6)
        outs.append((y, dy, dx, dgamma, dbeta))
    assert outs[0][0].max() == 6 and (outs[0][0] == 6).mean() > 0.01
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(outs[0], outs[1]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("relu_max", [0, -1.0, float("inf"), float("nan")])
def test_batch_norm_relu_max_is_checked(relu_max):
    x = np.zeros((4, 3))
    args = (np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="relu_max"):
        kernels.batch_norm_inference(x, 1, *args, np.empty_like(x), 1e-3, relu=True,
                                     relu_max=relu_max)


# ---- one version per instruction set (csrc/batchnorm.c) ----

# Channels-last rows with a remainder after every vector width (37, 19 channels), rows of
# one channel (C = 1), channels-first runs (inner > 1) with a remainder, and a shape over
# several chunks.
ARCH_CASES = [((6, 5, 7, 37), 3), ((300, 1), 1), ((5, 19, 3, 7), 1), ((4, 3, 45), 1),
              ((2100, 19), 1)]


@pytest.mark.skipif(len(minidl.backend_info()["supported_archs"]) < 2,
                    reason="this CPU runs only the generic kernels: nothing to compare")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", ARCH_CASES, ids=[str(s) for s, _ in ARCH_CASES])
def test_batch_norm_gives_the_same_bits_under_every_arch(shape, axis, dtype):
    """Statistics, output (plain, ReLU, ReLU6), inference and gradients (ungated and gated)
    give the same bits under every architecture: the versions make the same IEEE operations
    in the same order (no FMA). The data hits the selects' edges: NaN, +-inf in dy, values
    at 0 and at the cap, and -0.0."""
    from minidl._core import _backend
    rng = np.random.default_rng(21)
    c = shape[axis]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    if c > 1:   # a NaN in x spreads over its channel
        x.flat[5] = np.nan
    dy = rng.standard_normal(shape).astype(dtype)
    dy.flat[7::17] = -0.0
    dy_inf = dy.copy()   # infinities spread NaN over their channels: a run of its own
    dy_inf.flat[::11], dy_inf.flat[3::13] = np.inf, -np.inf
    gamma, beta = rng.standard_normal(c).astype(dtype) * 4, rng.standard_normal(c).astype(dtype)

    def run():
        out = []
        for relu, relu_max in ((False, None), (True, None), (True, 6.0)):
            mm, mv = np.zeros(c, dtype), np.ones(c, dtype)
            mean, invstd, y = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
            kernels.batch_norm_train(x, axis, gamma, beta, mm, mv, mean, invstd, y, 0.9,
                                     1e-3, relu=relu, relu_max=relu_max)
            yi = np.empty_like(x)
            kernels.batch_norm_inference(x, axis, gamma, beta, mm + 0.5, mv, yi, 1e-3,
                                         relu=relu, relu_max=relu_max)
            if relu:   # gates exactly at 0 and at the cap
                y.flat[1::7] = 0
                y.flat[2::9] = 6.0 if relu_max else y.flat[2::9]
            gate = y if relu else None
            out += [y, mm, mv, mean, invstd, yi]
            for grad in (dy, dy_inf):
                dx, dg, db = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
                kernels.batch_norm_backward(x, grad, axis, gamma, mean, invstd, dx, dg, db,
                                            gate=gate, relu_max=relu_max)
                in_place = grad.copy()   # dx written over dy
                kernels.batch_norm_backward(x, in_place, axis, gamma, mean, invstd, in_place,
                                            None, None, gate=gate, relu_max=relu_max)
                out += [dx, dg, db, in_place]
        return out

    before = _backend.get_arch()
    results = {}
    try:
        for arch in _backend.supported_archs():
            _backend.set_arch(arch)
            results[arch] = run()
    finally:
        _backend.set_arch(before)
    want = results["generic"]
    assert np.isnan(want[0]).any() == (c > 1) and np.isfinite(want[6]).mean() > 0.5
    unsigned = np.uint32 if dtype == np.float32 else np.uint64

    def bits(a):
        # A NaN's sign and payload are not results (IEEE leaves them to the operations, and
        # the sanitizer build's generic code computes some NaNs with the other sign): every
        # NaN compares as one canonical NaN, every other value by its exact bits, -0.0 too.
        return np.where(np.isnan(a), np.array(np.nan, a.dtype), a).view(unsigned)

    for arch, got in results.items():
        for i, (a, w) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(bits(a), bits(w), err_msg=f"array {i} under {arch}")


def test_batch_norm_in_place_matches_separate_outputs():
    """y written over x and dx over dy give the bits of separate outputs."""
    shape, c = (7, 5, 4, 37), 37
    x, dy = data(shape, np.float32, 1), data(shape, np.float32, 2)
    gamma, beta = data((c,), np.float32, 3), data((c,), np.float32, 4)
    mean, invstd = np.empty(c, np.float32), np.empty(c, np.float32)
    y = np.empty_like(x)
    kernels.batch_norm_train(x, 3, gamma, beta, np.zeros(c, np.float32),
                             np.ones(c, np.float32), mean, invstd, y, 0.9, 1e-3, relu=True,
                             relu_max=6.0)
    y2 = x.copy()
    kernels.batch_norm_train(y2, 3, gamma, beta, np.zeros(c, np.float32),
                             np.ones(c, np.float32), np.empty(c, np.float32),
                             np.empty(c, np.float32), y2, 0.9, 1e-3, relu=True, relu_max=6.0)
    np.testing.assert_array_equal(y2, y)
    dx = np.empty_like(x)
    kernels.batch_norm_backward(x, dy, 3, gamma, mean, invstd, dx, None, None, gate=y,
                                relu_max=6.0)
    dx2 = dy.copy()
    kernels.batch_norm_backward(x, dx2, 3, gamma, mean, invstd, dx2, None, None, gate=y,
                                relu_max=6.0)
    np.testing.assert_array_equal(dx2, dx)
    assert (y == 6).any() and (y == 0).any()
