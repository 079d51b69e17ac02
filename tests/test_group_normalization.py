"""GroupNormalization and UnitNormalization: the fused kernels against the numpy reference
and PyTorch (nn.GroupNorm with gamma/beta mapped and the channels moved to axis 1;
F.normalize), outputs, input and weight gradients; float64 central differences without
torch; the same bits for 1 and 2 threads; Keras' weights, configs and refusals; and a model
fit + save/load with each layer.
"""
import inspect
import json

import numpy as np
import pytest

import minidl
from minidl._core import _normalization as kernels
from minidl._ref import normalization as ref
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (CallContext, Conv2D, Dense, Flatten, GroupNormalization, Input,
                           UnitNormalization)
from minidl.layers import get as get_layer
from minidl.utils.registry import serialize

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")

TOL = {np.float32: 1e-5, np.float64: 1e-10}


def data(shape, dtype=np.float64, seed=0, offset=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) + offset).astype(dtype)


def rel_err(got, want):
    want = np.asarray(want, np.float64)
    return np.abs(np.asarray(got, np.float64) - want).max() / max(np.abs(want).max(), 1e-300)


def set_gamma_beta(layer, seed=3):
    rng = np.random.default_rng(seed)
    if layer.scale:
        layer.gamma.assign(rng.standard_normal(layer.gamma.shape).astype(layer.dtype))
    if layer.center:
        layer.beta.assign(rng.standard_normal(layer.beta.shape).astype(layer.dtype))


# ---- kernels ----

def test_reference_mirrors_kernel_signatures():
    for name in ("group_norm_forward", "group_norm_backward", "unit_norm_forward",
                 "unit_norm_backward"):
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


GROUP_CASES = [((4, 6, 5, 8), 3, 4), ((3, 7, 12), 2, 3), ((5, 6), 1, 2), ((2, 8, 3, 4), 1, 4),
               ((2, 3, 6, 5), 2, 6), ((3, 5, 4), 2, 1), ((1, 2100, 8), 2, 2),
               ((150, 3, 8), 2, 4), ((70, 1100, 8), 2, 2)]   # several blocks of samples


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis, groups", GROUP_CASES)
def test_group_norm_kernels_match_reference(shape, axis, groups, dtype):
    x = data(shape, dtype, offset=5.0)   # an offset: the two-pass variance must not cancel
    c = shape[axis]
    gamma, beta = data((c,), dtype, 1), data((c,), dtype, 2)
    dy = data(shape, dtype, 4)
    outs = []
    for mod in (kernels, ref):
        y = np.empty_like(x)
        mean, invstd = np.empty((shape[0], groups), dtype), np.empty((shape[0], groups), dtype)
        mod.group_norm_forward(x, axis, groups, gamma, beta, mean, invstd, y, 1e-3)
        dx, dgamma, dbeta = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        mod.group_norm_backward(x, dy, axis, groups, gamma, mean, invstd, dx, dgamma, dbeta)
        outs.append((y, mean, invstd, dx, dgamma, dbeta))
    for name, got, want in zip(["y", "mean", "invstd", "dx", "dgamma", "dbeta"], *outs):
        assert rel_err(got, want) < 20 * TOL[dtype] * (1 if dtype == np.float32 else 1e-3), name


UNIT_CASES = [((4, 10), 1, 1), ((3, 5, 70), 2, 2), ((3, 5, 70), 1, 2), ((3, 70, 5), 1, 1),
              ((2, 3, 100), 0, 1), ((6, 3), 0, 0), ((2, 130, 3), 1, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, first, last", UNIT_CASES)
def test_unit_norm_kernels_match_reference(shape, first, last, dtype):
    x = data(shape, dtype)
    x[0] = 0   # zero lines (or parts of lines): the 1e-12 clip
    dy = data(shape, dtype, 1)
    outs = []
    for mod in (kernels, ref):
        y, dx = np.empty_like(x), np.empty_like(x)
        mod.unit_norm_forward(x, first, last, y)
        mod.unit_norm_backward(x, dy, first, last, dx)
        outs.append((y, dx))
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=TOL[dtype] / 10, atol=TOL[dtype] / 10)


def test_unit_norm_clips_tiny_norms_as_keras():
    x = np.array([[0.0, 0.0], [3e-13, 4e-13], [3e-12, 4e-12]])
    y, dx = np.empty_like(x), np.empty_like(x)
    kernels.unit_norm_forward(x, 1, 1, y)
    # norms 0 and 5e-13 are below epsilon = 1e-12: scaled by 1e12; 5e-12 is not.
    np.testing.assert_allclose(y, [[0, 0], [0.3, 0.4], [0.6, 0.8]], rtol=1e-15)
    kernels.unit_norm_backward(x, np.ones_like(x), 1, 1, dx)
    np.testing.assert_allclose(dx[:2], np.full((2, 2), 1e12), rtol=1e-15)   # constant scale
    np.testing.assert_allclose(dx[2], (np.ones(2) - y[2] * y[2].sum()) / 5e-12, rtol=1e-12)


def test_kernels_give_the_same_bits_for_one_and_two_threads():
    cases = [(data((3, 40, 30, 32), np.float32, offset=2.0), 3, 8),     # few samples, big
             (data((64, 20, 48), np.float32), 2, 4),
             (data((200, 30, 32), np.float32), 2, 8),                   # several blocks
             (data((4, 32, 30, 30), np.float64), 1, 8)]                  # channels on axis 1
    for x, axis, groups in cases:
        c = x.shape[axis]
        gamma, beta = data((c,), x.dtype, 1), data((c,), x.dtype, 2)
        dy = data(x.shape, x.dtype, 3)
        outs = []
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            y, dx, dxu, yu = (np.empty_like(x) for _ in range(4))
            mean = np.empty((x.shape[0], groups), x.dtype)
            invstd = np.empty_like(mean)
            dgamma, dbeta = np.empty(c, x.dtype), np.empty(c, x.dtype)
            kernels.group_norm_forward(x, axis, groups, gamma, beta, mean, invstd, y, 1e-3)
            kernels.group_norm_backward(x, dy, axis, groups, gamma, mean, invstd, dx, dgamma,
                                        dbeta)
            kernels.unit_norm_forward(x, axis, axis, yu)
            kernels.unit_norm_backward(x, dy, axis, axis, dxu)
            outs.append((y, mean, invstd, dx, dgamma, dbeta, yu, dxu))
        for got, want in zip(*outs):
            np.testing.assert_array_equal(got, want)


def test_kernel_argument_errors():
    x = np.ones((2, 3, 6), np.float32)
    g = np.ones(6, np.float32)
    y = np.empty_like(x)
    with pytest.raises(ValueError, match="groups must be positive and divide"):
        kernels.group_norm_forward(x, 2, 4, g, g, None, None, y, 1e-3)
    with pytest.raises(ValueError, match="non-batch dimension"):
        kernels.group_norm_forward(x, 0, 2, g, g, None, None, y, 1e-3)
    with pytest.raises(ValueError, match="gamma"):
        kernels.group_norm_forward(x, 2, 2, g[:3], g, None, None, y, 1e-3)
    with pytest.raises(ValueError, match="mean and invstd"):
        kernels.group_norm_forward(x, 2, 2, g, g, np.empty(4, np.float32), None, y, 1e-3)
    with pytest.raises((ValueError, TypeError), match="y"):
        kernels.group_norm_forward(x, 2, 2, g, g, None, None, np.empty_like(x, np.float64),
                                   1e-3)
    with pytest.raises(ValueError, match="range of axes"):
        kernels.unit_norm_forward(x, 2, 1, y)
    with pytest.raises(ValueError, match="epsilon"):
        kernels.unit_norm_forward(x, 1, 2, y, 0.0)


def test_a_samples_result_does_not_depend_on_its_batch():
    # Chunks and blocks follow the sample's shape alone: the same bits one by one.
    for shape, axis, groups in [((130, 9, 8), 2, 4), ((5, 40, 30, 16), 3, 4)]:
        x = data(shape, np.float32, offset=1.0)
        c = shape[axis]
        gamma, beta = data((c,), np.float32, 1), data((c,), np.float32, 2)
        whole = np.empty_like(x)
        kernels.group_norm_forward(x, axis, groups, gamma, beta, None, None, whole, 1e-3)
        for i in (0, 3, len(x) - 1):
            one = np.empty_like(x[i:i + 1])
            kernels.group_norm_forward(x[i:i + 1], axis, groups, gamma, beta, None, None, one,
                                       1e-3)
            np.testing.assert_array_equal(one, whole[i:i + 1])


# ---- against PyTorch ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis, groups", [((4, 6, 5, 8), -1, 4), ((3, 7, 12), -1, 3),
                                                  ((5, 6), -1, 2), ((2, 8, 3, 4), 1, 4),
                                                  ((3, 4, 6, 5), 2, 6), ((2, 5, 4), -1, 1),
                                                  ((2, 3, 3, 2, 6), -1, 3)])
@pytest.mark.parametrize("affine", [(True, True), (False, True), (True, False)],
                         ids=["affine", "no_scale", "no_center"])
def test_group_normalization_matches_torch(shape, axis, groups, dtype, affine):
    torch = pytest.importorskip("torch")
    scale, center = affine
    layer = GroupNormalization(groups, axis=axis, epsilon=1e-3, scale=scale, center=center,
                               dtype=np.dtype(dtype).name)
    x = data(shape, dtype, offset=1.5)
    layer(x[:1])
    set_gamma_beta(layer)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(shape, dtype, 5)
    dx = ctx.backward(dy.copy())

    ax = axis % len(shape)
    c = shape[ax]
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    xt = torch.tensor(np.moveaxis(x, ax, 1).copy(), dtype=tdtype, requires_grad=True)
    gn = torch.nn.GroupNorm(groups, c, eps=1e-3).to(tdtype)
    with torch.no_grad():
        gn.weight.copy_(torch.tensor(layer.gamma.numpy()) if scale else torch.ones(c))
        gn.bias.copy_(torch.tensor(layer.beta.numpy()) if center else torch.zeros(c))
    yt = gn(xt)
    (yt * torch.tensor(np.moveaxis(dy, ax, 1).copy(), dtype=tdtype)).sum().backward()
    tol = TOL[dtype]
    assert rel_err(y, np.moveaxis(yt.detach().numpy(), 1, ax)) < tol
    assert rel_err(dx, np.moveaxis(xt.grad.numpy(), 1, ax)) < tol
    grads = list(ctx.grads)
    if scale:
        assert rel_err(grads.pop(0), gn.weight.grad.numpy()) < tol
    if center:
        assert rel_err(grads.pop(0), gn.bias.grad.numpy()) < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((4, 10), -1), ((3, 5, 7), -1), ((3, 5, 7), 1),
                                         ((3, 5, 7), [1, 2]), ((2, 3, 4, 5), [1, 3]),
                                         ((2, 3, 4, 5), (-1, -2, -3)), ((4, 6), 0)])
def test_unit_normalization_matches_torch(shape, axis, dtype):
    torch = pytest.importorskip("torch")
    layer = UnitNormalization(axis=axis, dtype=np.dtype(dtype).name)
    x = data(shape, dtype)
    x[1] = 0   # zero vectors (or parts) along the way
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(shape, dtype, 5)
    dx = ctx.backward(dy.copy())

    axes = [a % len(shape) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    rest = [a for a in range(len(shape)) if a not in axes]
    xt = torch.tensor(x, requires_grad=True)
    # F.normalize along one dim: flatten the normalised axes into one, moved last.
    flat = xt.permute(*rest, *axes).reshape([shape[a] for a in rest] + [-1])
    yt = torch.nn.functional.normalize(flat, p=2.0, dim=-1, eps=1e-12)
    yt = yt.reshape([shape[a] for a in rest] + [shape[a] for a in axes]) \
        .permute(*np.argsort(rest + axes).tolist())
    (yt * torch.tensor(dy)).sum().backward()
    tol = TOL[dtype]
    assert rel_err(y, yt.detach().numpy()) < tol
    nonzero = np.abs(x) > 0   # torch's gradient at a zero vector is dy / eps, as ours
    assert rel_err(dx[nonzero], xt.grad.numpy()[nonzero]) < tol
    np.testing.assert_allclose(dx[~nonzero], xt.grad.numpy()[~nonzero], rtol=tol)


# ---- without torch: references and central differences ----

@pytest.mark.parametrize("shape, axis, groups", [((2, 3, 2, 6), -1, 3), ((2, 5, 4), 1, 5),
                                                  ((3, 6), -1, 2), ((2, 4, 3, 2), 2, 1)])
@pytest.mark.parametrize("affine", [(True, True), (False, False)], ids=["affine", "plain"])
def test_group_normalization_gradients_match_finite_differences(shape, axis, groups, affine):
    layer = GroupNormalization(groups, axis=axis, scale=affine[0], center=affine[1],
                               dtype="float64")
    x = data(shape, offset=0.5)
    layer(x[:1])
    set_gamma_beta(layer)
    y = check_layer_gradients(layer, x)
    ax = axis % len(shape)
    c = shape[ax]
    g = layer.gamma.numpy() if affine[0] else np.ones(c)
    b = layer.beta.numpy() if affine[1] else np.zeros(c)
    want = np.empty_like(x)
    ref.group_norm_forward(x, ax, groups, g, b, None, None, want, 1e-3)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_group_normalization_per_sample_statistics():
    # groups=-1 (one channel per group, instance norm): each (sample, channel) map gets
    # mean 0 and variance var / (var + eps); the result does not depend on the batch.
    x = data((3, 5, 4, 6), offset=2.0)
    layer = GroupNormalization(-1, epsilon=1e-3, dtype="float64")
    y = layer(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    var = x.var(axis=(1, 2))
    np.testing.assert_allclose(y.var(axis=(1, 2)), var / (var + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(layer(x[1:2]).numpy(), y[1:2], rtol=1e-13, atol=1e-13)
    assert layer.groups == 6 and layer.get_config()["groups"] == 6   # as Keras


@pytest.mark.parametrize("shape, axis", [((3, 6), -1), ((2, 3, 4), [1, 2]), ((2, 3, 4), 1),
                                         ((2, 3, 2, 4), [1, 3])])
def test_unit_normalization_gradients_match_finite_differences(shape, axis):
    layer = UnitNormalization(axis=axis, dtype="float64")
    x = data(shape)
    y = check_layer_gradients(layer, x)
    axes = tuple(a % len(shape) for a in (axis if isinstance(axis, list) else [axis]))
    np.testing.assert_allclose(y, x / np.sqrt((x * x).sum(axis=axes, keepdims=True)),
                               rtol=1e-14)


def test_unit_normalization_of_integers_and_keras_example():
    y = UnitNormalization()(np.arange(6).reshape(2, 3)).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.sum(y ** 2, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y[0], [0, 0.4472136, 0.8944272], rtol=1e-6)


# ---- Keras: weights, configs, errors ----

def test_group_normalization_weights_follow_keras():
    layer = GroupNormalization(groups=2)
    layer.build((5, 5, 8))
    assert [w.name for w in layer.weights] == ["gamma", "beta"]
    assert [tuple(w.shape) for w in layer.weights] == [(8,), (8,)]
    np.testing.assert_array_equal(layer.gamma.numpy(), 1)
    np.testing.assert_array_equal(layer.beta.numpy(), 0)
    no_center = GroupNormalization(groups=2, center=False)
    no_center.build((8,))
    assert [w.name for w in no_center.weights] == ["gamma"]
    assert not GroupNormalization(groups=4, scale=False, center=False).weights
    assert GroupNormalization.supports_masking and UnitNormalization.supports_masking


def test_group_normalization_config_round_trip():
    layer = GroupNormalization(groups=4, axis=2, epsilon=1e-5, center=False,
                               gamma_initializer="random_normal", gamma_regularizer="l2",
                               beta_constraint="non_neg", name="gn")
    config = layer.get_config()
    assert {"groups", "axis", "epsilon", "center", "scale", "beta_initializer",
            "gamma_initializer", "beta_regularizer", "gamma_regularizer", "beta_constraint",
            "gamma_constraint"} <= set(config)
    assert config["groups"] == 4 and config["axis"] == 2 and config["epsilon"] == 1e-5
    again = get_layer(json.loads(json.dumps(serialize(layer))))
    assert type(again) is GroupNormalization and again.get_config() == config
    unit = UnitNormalization(axis=(1, 2))
    assert unit.get_config()["axis"] == [1, 2]
    assert get_layer(json.loads(json.dumps(serialize(unit)))).get_config() == unit.get_config()


@pytest.mark.parametrize("make, shape, error, match", [
    (lambda: GroupNormalization(groups=5), (4, 12), ValueError,
     r"Number of groups \(5\) must divide the number of channels \(12\)"),
    (lambda: GroupNormalization(groups=32), (4, 16), ValueError,
     r"Number of groups \(32\) cannot be more than the number of channels \(16\)"),
    (lambda: GroupNormalization(groups=2, axis=1), (None, 4), ValueError,
     "should have a defined dimension"),
    (lambda: GroupNormalization(groups=2, axis=3), (4, 4), ValueError, "out of bounds"),
    (lambda: GroupNormalization(groups=2, axis=0), (4, 4), ValueError, "batch axis"),
    (lambda: UnitNormalization(axis=3), (4, 4), ValueError, "out of bounds"),
    (lambda: UnitNormalization(axis=[1, -2]), (4, 4), ValueError, "twice"),
], ids=["not_dividing", "too_many", "unknown_channels", "axis_range", "batch_axis",
        "unit_axis_range", "unit_duplicate"])
def test_build_errors(make, shape, error, match):
    with pytest.raises(error, match=match):
        make().build(shape)


@pytest.mark.parametrize("make, error, match", [
    (lambda: GroupNormalization(groups=0), ValueError, r"`groups`.*Received: groups=0"),
    (lambda: GroupNormalization(groups=-2), ValueError, "groups=-2"),
    (lambda: GroupNormalization(groups=2.0), ValueError, "groups=2.0"),
    (lambda: GroupNormalization(groups=True), ValueError, "groups=True"),
    (lambda: GroupNormalization(axis="1"), TypeError, "axis"),
    (lambda: GroupNormalization(axis=[1, 2]), TypeError, "axis"),
    (lambda: GroupNormalization(epsilon=0), ValueError, "epsilon"),
    (lambda: GroupNormalization(epsilon=float("nan")), ValueError, "epsilon"),
    (lambda: GroupNormalization(center="yes"), (ValueError, TypeError), "center"),
    (lambda: GroupNormalization(gamma_initializer="nope"), ValueError, "gamma_initializer"),
    (lambda: UnitNormalization(axis="x"), TypeError, "axis"),
    (lambda: UnitNormalization(axis=1.5), TypeError, "axis"),
    (lambda: UnitNormalization(axis=[]), TypeError, "axis"),
    (lambda: UnitNormalization(axis=[1, "2"]), TypeError, "axis"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_unknown_spatial_size_and_eager_calls():
    model = minidl.Sequential([Input((None, None, 4)), GroupNormalization(2),
                               UnitNormalization()])
    for size in (3, 5):
        assert model.predict(data((2, size, size, 4), np.float32), verbose=0).shape == \
            (2, size, size, 4)


# ---- models ----

def _model(seed=0):
    minidl.utils.set_random_seed(seed)
    model = minidl.Sequential([Input((6, 6, 2)), Conv2D(8, 3), GroupNormalization(4),
                               Flatten(), Dense(5), UnitNormalization(),
                               Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_fit_save_load_with_group_and_unit_normalization(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((48, 6, 6, 2), dtype=np.float32), rng.integers(0, 3, 48)
    straight = _model()
    history = straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    first = _model()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "gn.minidl"
    first.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), first.predict(x, verbose=0))
    loaded.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    for got, want in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_group_normalization_under_gradient_tape():
    layer = GroupNormalization(2, dtype="float64")
    x = data((3, 4, 6))
    layer(x[:1])
    set_gamma_beta(layer)
    w = data((3, 4, 6), seed=7)
    with minidl.GradientTape() as tape:
        loss = minidl.ops.sum(layer(x, training=True) * w)
    grads = tape.gradient(loss, layer.trainable_weights)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    ctx.backward(w)
    for got, want in zip(grads, ctx.grads):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # (Keras' own, numpy 2 copy=)
def test_outputs_match_keras(monkeypatch):
    # Keras 3.15.1 recomputes the same outputs (torch backend), when it is installed.
    pytest.importorskip("torch")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras runs on another backend here")
    x = data((2, 3, 4, 6), np.float32, offset=1.0)
    ours = GroupNormalization(3)
    ours(x[:1])
    set_gamma_beta(ours)
    theirs = keras.layers.GroupNormalization(3)
    theirs.build(x.shape)
    theirs.set_weights([ours.gamma.numpy(), ours.beta.numpy()])
    np.testing.assert_allclose(ours(x).numpy(), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5,
                               atol=1e-5)
    for axis in (-1, [1, 3]):
        theirs = keras.layers.UnitNormalization(axis)(x)
        np.testing.assert_allclose(UnitNormalization(axis)(x).numpy(),
                                   keras.ops.convert_to_numpy(theirs), rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_config_keys_and_weights_match_keras(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras runs on another backend here")
    for ours, theirs in [(GroupNormalization(4), keras.layers.GroupNormalization(4)),
                         (UnitNormalization([1, 2]), keras.layers.UnitNormalization([1, 2]))]:
        keys = set(theirs.get_config()) - {"name", "dtype", "trainable"}
        assert keys <= set(ours.get_config())
        ours.build((3, 8))
        theirs.build((None, 3, 8))
        assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
        assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
