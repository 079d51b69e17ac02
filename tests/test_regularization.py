"""Dropout, ActivityRegularization and the L1/L2 regularizers: kernels against the numpy
reference, masks and seeds, penalties and gradients against Keras' formulas, and the
``regularization_loss`` interface the training loop calls.
"""
import inspect
import json

import numpy as np
import pytest

import minidl
from minidl import ops, regularizers
from minidl._core import _regularization as kernels
from minidl._ref import regularization as ref
from minidl.layers import (ActivityRegularization, BatchNormalization, CallContext, Dense,
                           Dropout, get as get_layer)
from minidl.utils import set_random_seed
from minidl._ref.gradcheck import numeric_grad



pytestmark = pytest.mark.usefixtures("one_thread")


def data(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)




# ---- kernels ----

def test_reference_mirrors_kernel_signatures():
    for name in ("dropout_forward", "dropout_mask", "dropout_backward", "l1l2_penalty"):
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5), (40, 1000)])
def test_dropout_kernels_match_reference_bit_for_bit(shape, dtype):
    x = data(shape, dtype)
    key = 0xDEADBEEF12345678
    outs = []
    for mod in (kernels, ref):
        mask, y = np.empty_like(x), np.empty_like(x)
        mod.dropout_forward(x, mask, y, 0.3, key)
        alone = np.empty_like(x)
        mod.dropout_mask(alone, 0.3, key)
        dx = np.empty_like(x)
        mod.dropout_backward(y, mask, dx)
        outs.append((mask, y, alone, dx))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(outs[0][0], outs[0][2])   # the same key, the same mask


def test_dropout_mask_bits_are_uniform_and_independent_of_the_key():
    # Keep fractions over many calls: binomial, so within a few standard deviations.
    n, rate = 1 << 16, 0.3
    mask = np.empty(n, np.float64)
    fractions = []
    for key in range(64):
        kernels.dropout_mask(mask, rate, key)
        fractions.append(np.count_nonzero(mask) / n)
        assert set(np.unique(mask)) <= {0.0, 1.0 / 0.7}
    sd = np.sqrt(0.7 * 0.3 / n)
    assert abs(np.mean(fractions) - 0.7) < 4 * sd / np.sqrt(64)
    assert max(abs(f - 0.7) for f in fractions) < 5 * sd
    kernels.dropout_mask(mask, rate, 1)
    a = mask.copy()
    kernels.dropout_mask(mask, rate, 2)   # neighbouring keys: uncorrelated masks
    assert abs(np.corrcoef(a != 0, mask != 0)[0, 1]) < 5 / np.sqrt(n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (30, 11), (300, 300)])
def test_l1l2_kernel_matches_reference(shape, dtype):
    x = data(shape, dtype, 2)
    grad_in = data(shape, dtype, 3)
    got_out, want_out = np.empty_like(x), np.empty_like(x)
    got = kernels.l1l2_penalty(x, 0.3, 0.7, 0.5, grad_in, got_out)
    want = ref.l1l2_penalty(x, 0.3, 0.7, 0.5, grad_in, want_out)
    assert got == pytest.approx(want, rel=1e-12 if dtype == np.float64 else 1e-6)
    # the sum grad_in + penalty gradient cancels in places: an absolute tolerance
    np.testing.assert_allclose(got_out, want_out, rtol=0,
                               atol=1e-6 if dtype == np.float32 else 1e-15)
    acc = grad_in.copy()  # in place
    kernels.l1l2_penalty(x, 0.3, 0.7, 0.5, acc, acc)
    np.testing.assert_array_equal(acc, got_out)
    assert kernels.l1l2_penalty(x, 0.3, 0.7) == pytest.approx(
        ref.l1l2_penalty(x, 0.3, 0.7), rel=1e-6)


def test_kernels_give_the_same_bits_for_one_and_two_threads():
    assert 300 * 300 >= kernels.PARALLEL_MIN
    x = data((300, 300), np.float32, 4)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        mask, y, g = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        kernels.dropout_forward(x, mask, y, 0.25, 12345)
        penalty = kernels.l1l2_penalty(x, 0.1, 0.2, 1.0, None, g)
        results.append((mask, y, g, np.float64(penalty)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_kernel_argument_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\); received rate=1.0"):
        kernels.dropout_forward(x, np.zeros_like(x), np.zeros_like(x), 1.0, 0)
    with pytest.raises(ValueError, match="mask must have shape"):
        kernels.dropout_forward(x, np.zeros((4, 3), np.float32), np.zeros_like(x), 0.5, 0)
    with pytest.raises(OverflowError):
        kernels.dropout_mask(x, 0.5, -1)
    with pytest.raises(TypeError, match="float32"):
        kernels.l1l2_penalty(x, 0.1, 0.1, 1.0, None, np.zeros((3, 4)))


# ---- Dropout ----

@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", True, None])
def test_dropout_rate_must_be_in_zero_one(rate):
    with pytest.raises(ValueError, match=f"rate={rate!r}"):
        Dropout(rate)


def test_dropout_is_identity_at_inference_and_inverted_in_training():
    x = data((200, 50), np.float32, 6) + 3.0
    layer = Dropout(0.25, seed=3)
    np.testing.assert_array_equal(layer(x), x)
    assert CallContext(layer, record=False).forward(x, training=False) is x   # no copy
    y = layer(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.25) < 0.02
    assert CallContext(Dropout(0.0)).forward(x, training=True) is x


def test_dropout_same_seed_same_masks_and_different_steps_differ():
    x = np.ones((16, 32), np.float32)
    a, b = Dropout(0.5, seed=42), Dropout(0.5, seed=42)
    first_a, first_b = a(x, training=True), b(x, training=True)
    np.testing.assert_array_equal(first_a, first_b)
    second_a = a(x, training=True)
    np.testing.assert_array_equal(second_a, b(x, training=True))
    assert not np.array_equal(first_a, second_a)          # a new mask every step
    assert not np.array_equal(first_a, Dropout(0.5, seed=43)(x, training=True))


def test_dropout_without_seed_follows_the_global_seed():
    x = np.ones((8, 64), np.float64)
    set_random_seed(7)
    first = Dropout(0.3, dtype="float64")(x, training=True)
    set_random_seed(7)
    np.testing.assert_array_equal(Dropout(0.3, dtype="float64")(x, training=True), first)


def test_dropout_mask_is_the_same_for_one_and_two_threads():
    x = data((256, 256), np.float32, 8)   # large enough for a parallel kernel
    outs = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        layer = Dropout(0.2, seed=11)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True)
        dx = ctx.backward(np.ones_like(x))
        outs.append((y, dx.copy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_dropout_gradient_with_a_fixed_mask():
    x = data((4, 6), seed=9)
    w = data((4, 6), seed=10)

    def scalar():  # a fresh layer with the same seed draws the same mask
        return float(np.sum(Dropout(0.4, seed=5, dtype="float64")(x, training=True) * w))

    layer = Dropout(0.4, seed=5, dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dx = ctx.backward(w.copy())
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(dx == 0, y == 0)
    assert ctx.backward(w, need_input_grad=False) is None


def test_dropout_noise_shape_broadcasts_one_mask():
    x = data((4, 5, 6), np.float64, 12) + 5.0
    layer = Dropout(0.5, noise_shape=(None, 1, 6), seed=1, dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dropped = y == 0
    assert dropped.any() and (~dropped).any()
    assert (dropped == dropped[:, :1, :]).all()            # same units at every timestep
    dx = ctx.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx == 0, dropped)
    with pytest.raises(ValueError, match=r"noise_shape=\(None, 2, 6\).*does not broadcast"):
        Dropout(0.5, noise_shape=(None, 2, 6))(x, training=True)
    with pytest.raises(ValueError, match="one entry per input dim"):
        Dropout(0.5, noise_shape=(None, 6))(x, training=True)
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape=(0, 1))
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape="abc")


@pytest.mark.parametrize("noise_shape, match", [
    ((None, 3), "does not broadcast"), ((None, 1, 4), "one entry per input dim"),
    ((2, 3), "does not broadcast")])
def test_dropout_noise_shape_is_checked_when_the_model_is_built(noise_shape, match):
    # Not only at the first training step: building (which loading a file does) finds it.
    with pytest.raises(ValueError, match=match):
        minidl.Sequential([minidl.layers.Input((4,)), Dropout(0.5, noise_shape=noise_shape)])
    built = minidl.Sequential([minidl.layers.Input((4,)), Dropout(0.5, noise_shape=(7, 1))])
    assert built.built   # the batch entry is only known per call


def test_dropout_reuses_its_buffers():
    layer = Dropout(0.5, seed=0)
    x = np.ones((32, 64), np.float32)
    ctx = CallContext(layer)
    y1 = ctx.forward(x, training=True)
    mask1 = ctx.keep
    y2 = ctx.forward(x, training=True)
    assert y1.__array_interface__["data"] == y2.__array_interface__["data"]
    assert mask1.__array_interface__["data"] == ctx.keep.__array_interface__["data"]


@pytest.mark.parametrize("make", [lambda: Dropout(0.2),
                                  lambda: Dropout(0.5, noise_shape=[None, 1], seed=3, name="d"),
                                  lambda: ActivityRegularization(l1=0.1, l2=0.2)],
                         ids=["dropout", "dropout_args", "activity"])
def test_layer_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    json.dumps(config)
    assert type(layer).from_config(config).get_config() == config
    assert get_layer({"class_name": type(layer).__name__, "config": config}).get_config() == config


# ---- regularizers ----

def test_penalties_follow_the_keras_formulas():
    x = data((5, 4), seed=13)
    assert regularizers.L1(0.3)(x) == pytest.approx(0.3 * np.abs(x).sum(), rel=1e-12)
    assert regularizers.L2(0.3)(x) == pytest.approx(0.3 * np.square(x).sum(), rel=1e-12)
    assert regularizers.L1L2(0.1, 0.2)(x) == pytest.approx(
        0.1 * np.abs(x).sum() + 0.2 * np.square(x).sum(), rel=1e-12)
    assert regularizers.L2(2.0)(np.ones((5, 5))) == 50.0          # Keras' docstring example
    assert regularizers.L1L2()(x) == 0.0
    assert regularizers.L2(0.5)([[1, 2], [3, 4]]) == 15.0          # any array-like


def test_defaults_and_names_follow_keras():
    assert regularizers.L1().l1 == 0.01 and regularizers.L2().l2 == 0.01
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert isinstance(regularizers.get("l1"), regularizers.L1)
    assert isinstance(regularizers.get("L2"), regularizers.L2)
    assert isinstance(regularizers.get(regularizers.L1L2), regularizers.L1L2)
    assert regularizers.get(None) is None
    reg = regularizers.L2(0.3)
    assert regularizers.get(reg) is reg


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2),
                                 regularizers.L1L2(0.1, 0.4)], ids=["l1", "l2", "l1l2"])
def test_penalty_gradients_match_finite_differences(reg):
    x = data((4, 3), seed=14)
    np.testing.assert_allclose(reg.gradient(x), numeric_grad(lambda: reg(x), x), rtol=1e-6,
                               atol=1e-8)
    grad = data((4, 3), seed=15)
    expected = grad + 0.5 * reg.gradient(x)
    value = reg.add_gradient(x, grad, grad, scale=0.5)
    np.testing.assert_allclose(grad, expected, rtol=1e-14)
    assert value == pytest.approx(0.5 * reg(x), rel=1e-14)


def test_l1_gradient_is_zero_at_zero():
    np.testing.assert_array_equal(regularizers.L1(1.0).gradient(np.zeros(3)), 0.0)


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(),
                                 regularizers.L1L2(l1=0.1, l2=0.2)])
def test_regularizer_config_round_trip(reg):
    config = regularizers.serialize(reg)
    json.dumps(config)
    clone = regularizers.get(config)
    assert type(clone) is type(reg) and clone.get_config() == reg.get_config()
    assert type(reg).from_config(reg.get_config()).get_config() == reg.get_config()
    assert regularizers.deserialize(config).get_config() == reg.get_config()


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: regularizers.L2(-0.1), ValueError, "l2=-0.1"),
    (lambda: regularizers.L1(float("nan")), ValueError, "l1=nan"),
    (lambda: regularizers.L1L2(l1="a"), ValueError, "l1='a'"),
    (lambda: regularizers.get("l3"), ValueError, "l3.*l1.*l2"),
    (lambda: regularizers.get(lambda x: 0.0).gradient(np.ones(2)), NotImplementedError,
     "returned float.*ops"),
    (lambda: regularizers.get(lambda x: x * 2.0).gradient(np.ones(2)), ValueError,
     "scalar.*shape \\(2,\\)"),
    (lambda: regularizers.get(3), ValueError, "identifier=3"),
    (lambda: Dense(3, kernel_regularizer="l3"), ValueError, "l3"),
], ids=["negative", "nan", "str_factor", "unknown", "numpy_function", "not_scalar", "int",
        "dense"])
def test_regularizer_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


class L1Sum(regularizers.Regularizer):
    """Keras's way: only the penalty, written with ops."""

    def __init__(self, rate=0.1):
        self.rate = rate

    def __call__(self, x):
        return self.rate * ops.sum(ops.abs(x)) + 0.5 * self.rate * ops.sum(ops.square(x))

    def get_config(self):
        return {"rate": self.rate}


@pytest.mark.parametrize("reg", [L1Sum(0.1),
                                 lambda w: 0.1 * ops.sum(ops.abs(w))
                                 + 0.05 * ops.sum(ops.square(w))],
                         ids=["subclass", "function"])
def test_a_penalty_alone_gets_its_gradient_by_autodiff(reg):
    layer = Dense(2, kernel_regularizer=reg, dtype="float64")
    layer(np.ones((1, 3)))
    kernel = layer.kernel
    builtin = Dense(2, kernel_regularizer=regularizers.L1L2(l1=0.1, l2=0.05), dtype="float64")
    builtin(np.ones((1, 3)))
    builtin.kernel[...] = kernel
    grads, want = CallContext(layer).grads, CallContext(builtin).grads
    for g in (grads, want):
        g[0][...] = 1.0
    value = layer.regularization_loss(grads)
    assert value == pytest.approx(builtin.regularization_loss(want), rel=1e-12)
    np.testing.assert_allclose(grads[0], want[0], rtol=1e-12)
    assert isinstance(layer.kernel_regularizer, regularizers.Regularizer)


def test_a_model_with_penalty_only_regularizers_trains_as_with_the_builtin():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)
    weights = []
    for reg in (L1Sum(0.1), regularizers.L1L2(l1=0.1, l2=0.05)):
        minidl.utils.set_random_seed(1)
        model = minidl.Sequential([minidl.Input((3,)),
                                   Dense(4, kernel_regularizer=reg, activity_regularizer=reg),
                                   Dense(2)])
        model.compile(optimizer=minidl.optimizers.SGD(0.1), loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def my_penalty(w):
    return 0.01 * ops.sum(ops.square(w))


def test_a_function_regularizer_saves_by_name(tmp_path):
    model = minidl.Sequential([minidl.Input((3,)), Dense(2, kernel_regularizer=my_penalty)])
    assert model.layers[0].get_config()["kernel_regularizer"] == "my_penalty"
    path = str(tmp_path / "m.minidl")
    model.save(path)
    with pytest.raises(minidl.saving.InvalidModelFileError, match="my_penalty"):
        minidl.models.load_model(path)
    loaded = minidl.models.load_model(path, custom_objects={"my_penalty": my_penalty})
    assert loaded.layers[0].kernel_regularizer.fn is my_penalty


def test_custom_regularizer_uses_the_generic_gradient_path():
    class L4(regularizers.Regularizer):
        def __init__(self, l4=0.1):
            self.l4 = l4

        def __call__(self, x):
            return float(self.l4 * np.sum(np.asarray(x) ** 4))

        def gradient(self, x):
            return 4 * self.l4 * np.asarray(x) ** 3

        def get_config(self):
            return {"l4": self.l4}

    layer = Dense(2, kernel_regularizer=L4(), dtype="float64")
    layer(np.ones((1, 3)))
    kernel = layer.kernel
    grads = CallContext(layer).grads
    grads[0][...] = 1.0
    value = layer.regularization_loss(grads)
    assert value == pytest.approx(0.1 * np.sum(kernel ** 4))
    np.testing.assert_allclose(grads[0], 1.0 + 0.4 * kernel ** 3)


# ---- the regularization_loss interface ----

def test_dense_weight_penalties_and_their_gradients():
    x = data((6, 4), seed=16)
    layer = Dense(3, kernel_regularizer=regularizers.L2(0.1), bias_regularizer="l1",
                  bias_initializer="random_normal", dtype="float64")
    layer(x)
    assert layer.has_regularization   # weight regularizers are registered on build
    kernel, bias = layer.get_weights()
    expected = 0.1 * np.sum(kernel ** 2) + 0.01 * np.sum(np.abs(bias))
    assert layer.regularization_loss() == pytest.approx(expected, rel=1e-12)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    ctx.backward(np.ones((6, 3)))
    data_grads = [g.copy() for g in ctx.grads]
    assert layer.regularization_loss(ctx.grads) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(ctx.grads[0], data_grads[0] + 0.2 * kernel, rtol=1e-13)
    np.testing.assert_allclose(ctx.grads[1], data_grads[1] + 0.01 * np.sign(bias), rtol=1e-13)
    layer.trainable = False   # Keras counts the penalties of trainable weights only
    assert layer.regularization_loss() == 0.0


def test_layers_without_regularizers_report_none():
    layer = Dense(3)
    layer(np.ones((1, 2), np.float32))
    assert not layer.has_regularization and layer.regularization_loss() == 0.0
    for other in (Dropout(0.5), BatchNormalization()):
        assert not other.has_regularization
    bn = BatchNormalization(gamma_regularizer=regularizers.L2(0.5))
    bn(np.ones((2, 3), np.float32))
    assert bn.has_regularization
    assert bn.regularization_loss() == pytest.approx(0.5 * 3)


@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_dense_activity_regularization_gradients(activation):
    x = data((5, 3), seed=17)
    w = data((5, 4), seed=18)
    reg = regularizers.L1L2(l1=0.05, l2=0.3)
    layer = Dense(4, activation=activation, activity_regularizer=reg,
                  bias_initializer="random_normal", dtype="float64")

    def scalar():  # the data term sum(y * w) plus the activity penalty (of this call)
        y = layer(x)
        return float(np.sum(y * w)) + sum(layer.losses)

    layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    assert layer.activity_penalty(y) == pytest.approx(reg(y) / 5, rel=1e-12)  # / batch size
    dx = ctx.backward(w.copy()).copy()
    grads = [g.copy() for g in ctx.grads]
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    for name, param, grad in zip(layer.param_names, layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_dense_activity_regularization_through_the_fused_softmax_path():
    x = data((4, 3), seed=19)
    w = data((4, 5), seed=20)   # the loss gradient with respect to the logits
    reg = regularizers.L2(0.2)
    layer = Dense(5, activation="softmax", activity_regularizer=reg, dtype="float64")
    layer(x)

    def scalar():  # sum(z * w) + activity penalty of softmax(z)
        z = x @ layer.kernel + layer.bias
        layer(x)
        return float(np.sum(z * w)) + sum(layer.losses)

    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dx = layer.backward_preactivation(ctx, w.copy()).copy()
    grads = [g.copy() for g in ctx.grads]
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    for param, grad in zip(layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-8)


def test_activity_regularization_layer():
    x = data((4, 5), seed=21)
    w = data((4, 5), seed=22)
    layer = ActivityRegularization(l1=0.1, l2=0.2, dtype="float64")
    assert layer.has_regularization
    np.testing.assert_array_equal(layer(x), x)
    expected = (0.1 * np.abs(x).sum() + 0.2 * np.square(x).sum()) / 4
    assert layer.losses == [pytest.approx(expected, rel=1e-12)]   # the call's activity penalty

    def scalar():
        return float(np.sum(layer(x) * w)) + sum(layer.losses)

    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dx = ctx.backward(w.copy()).copy()
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="l1=-1"):
        ActivityRegularization(l1=-1)


def test_dense_config_carries_regularizers():
    layer = Dense(3, kernel_regularizer=regularizers.L2(1e-4), activity_regularizer="l1")
    config = layer.get_config()
    json.dumps(config)
    assert config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 1e-4}}
    assert config["bias_regularizer"] is None
    clone = Dense.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.activity_regularizer, regularizers.L1)
