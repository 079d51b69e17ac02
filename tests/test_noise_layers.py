"""The noise layers: SpatialDropout2D/3D, GaussianNoise, GaussianDropout and AlphaDropout.

Checks: the kernels against the numpy reference (keep decisions bit for bit, Gaussian values
within an ulp or two), the statistics of the noise over large samples (mean, variance, keep
fraction, the self-normalizing moments of alpha dropout), identity at inference, gradients
equal to the noise or mask of the forward pass (and to float64 central differences with a
fixed seed), seeds, the same bits for 1 and 2 threads, exact resume of the random state
after save/load in the middle of training, Keras' arguments, refusals and config keys, and a
model fit + save/load with each layer.
"""
import inspect
import json
import math

import numpy as np
import pytest

import minidl
from minidl._core import _regularization as kernels
from minidl._ref import regularization as ref
from minidl._ref.gradcheck import numeric_grad
from minidl.layers import (AlphaDropout, CallContext, Conv2D, Dense, Flatten, GaussianDropout,
                           GaussianNoise, Input, SpatialDropout1D, SpatialDropout2D,
                           SpatialDropout3D)
from minidl.layers import get as get_layer
from minidl.utils.registry import serialize

pytestmark = pytest.mark.usefixtures("one_thread")

KEY = 0x0123456789ABCDEF
ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946


def data(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def alpha_constants(rate):
    """Keras' AlphaDropout.call: a, b and the value a dropped unit takes."""
    a = ((1 - rate) * (1 + rate * ALPHA_P ** 2)) ** -0.5
    b = -a * ALPHA_P * rate
    return a, b, a * ALPHA_P + b


# ---- kernels ----

def test_reference_mirrors_kernel_signatures():
    for name in ("alpha_dropout_forward", "alpha_dropout_mask", "gaussian_noise_forward",
                 "gaussian_dropout_forward"):
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5), (40, 1000)])
def test_alpha_dropout_kernels_match_reference_bit_for_bit(shape, dtype):
    x = data(shape, dtype)
    a, b, dropped = alpha_constants(0.3)
    outs = []
    for mod in (kernels, ref):
        mask, y, alone = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        mod.alpha_dropout_forward(x, mask, y, 0.3, KEY, a, b, dropped)
        mod.alpha_dropout_mask(alone, 0.3, KEY, a)
        outs.append((mask, y, alone))
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)
    # The units dropout keeps for the same key.
    dmask = np.empty_like(x)
    kernels.dropout_mask(dmask, 0.3, KEY)
    np.testing.assert_array_equal(outs[0][0] != 0, dmask != 0)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-7), (np.float64, 1e-14)])
@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 5), (40, 1001)])
def test_gaussian_kernels_match_reference(shape, dtype, rtol):
    x = data(shape, dtype) + 2.0
    y, want = np.empty_like(x), np.empty_like(x)
    kernels.gaussian_noise_forward(x, y, 0.7, KEY)
    ref.gaussian_noise_forward(x, want, 0.7, KEY)
    np.testing.assert_allclose(y, want, rtol=rtol, atol=rtol)
    noise, want_noise = np.empty_like(x), np.empty_like(x)
    kernels.gaussian_dropout_forward(x, noise, y, 0.5, KEY)
    ref.gaussian_dropout_forward(x, want_noise, want, 0.5, KEY)
    np.testing.assert_allclose(noise, want_noise, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(y, x * noise)   # y is x times the noise kept for backward


def test_kernels_give_the_same_bits_for_one_and_two_threads():
    x = data((300, 700), np.float32)   # above the parallel threshold, several chunks
    a, b, dropped = alpha_constants(0.2)
    outs = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        y1, y2, y3 = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        noise, mask = np.empty_like(x), np.empty_like(x)
        kernels.gaussian_noise_forward(x, y1, 0.3, KEY)
        kernels.gaussian_dropout_forward(x, noise, y2, 0.3, KEY)
        kernels.alpha_dropout_forward(x, mask, y3, 0.2, KEY, a, b, dropped)
        outs.append((y1, y2, y3, noise, mask))
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)


def test_kernel_argument_errors():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="stddev"):
        kernels.gaussian_noise_forward(x, np.empty_like(x), -1.0, KEY)
    with pytest.raises(ValueError, match="rate"):
        kernels.alpha_dropout_forward(x, np.empty_like(x), np.empty_like(x), 1.0, KEY, 1, 0, 0)
    with pytest.raises((ValueError, TypeError), match="noise"):
        kernels.gaussian_dropout_forward(x, np.empty((4, 4), np.float32), np.empty_like(x),
                                         0.5, KEY)
    with pytest.raises(ValueError, match="share memory"):
        kernels.gaussian_dropout_forward(x, x, np.empty_like(x), 0.5, KEY)


# ---- statistics of the noise ----

def test_gaussian_noise_statistics():
    n = 400_000
    for stddev in (0.25, 1.0):
        noise = GaussianNoise(stddev, seed=1)(np.zeros((n // 100, 100)), training=True)
        noise = np.asarray(noise, np.float64).ravel()
        z = noise / stddev
        assert abs(z.mean()) < 5 / math.sqrt(n)                 # mean 0
        assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)          # variance 1
        assert abs(np.mean(np.abs(z) < 1) - 0.682689) < 0.005   # normal, not just unit var
        assert abs(np.mean(z ** 4) - 3) < 0.05                  # kurtosis of a normal
        assert abs(np.corrcoef(z[0::2], z[1::2])[0, 1]) < 0.01  # a pair's two values


def test_gaussian_dropout_statistics():
    n = 400_000
    rate = 0.3
    layer = GaussianDropout(rate, seed=2)
    ctx = CallContext(layer)
    ctx.forward(np.ones((n // 100, 100), np.float32), training=True)
    noise = ctx.keep.astype(np.float64).ravel()
    std = math.sqrt(rate / (1 - rate))
    assert abs(noise.mean() - 1) < 5 * std / math.sqrt(n)
    assert abs(noise.var() / std ** 2 - 1) < 5 * math.sqrt(2 / n)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_alpha_dropout_keeps_mean_and_variance(rate):
    # Zero-mean, unit-variance inputs keep both moments: the point of alpha dropout.
    n = 400_000
    x = data((n // 100, 100), seed=3)
    y = np.asarray(AlphaDropout(rate, seed=4, dtype="float64")(x, training=True))
    assert abs(np.mean(y != x) - 1) < 1e-9                       # every unit changes
    a, b, dropped = alpha_constants(rate)
    dropped_fraction = np.mean(y == dropped)
    assert abs(dropped_fraction - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    assert abs(y.mean()) < 0.01
    assert abs(y.var() - 1) < 0.015


def test_spatial_dropout_keep_fraction():
    layer = SpatialDropout2D(0.25, seed=5)
    y = layer(np.ones((4000, 2, 2, 50), np.float32), training=True)
    kept = np.asarray(y)[:, 0, 0, :] != 0
    assert abs(kept.mean() - 0.75) < 5 * math.sqrt(0.75 * 0.25 / kept.size)


# ---- the layers' passes ----

def _layers():
    return [SpatialDropout2D(0.4, seed=1), SpatialDropout3D(0.4, seed=1),
            GaussianNoise(0.5, seed=1), GaussianDropout(0.4, seed=1),
            AlphaDropout(0.4, seed=1), AlphaDropout(0.4, noise_shape=(None, 1, 1, 6), seed=1)]


def _input_for(layer, dtype=np.float32, seed=0):
    shape = (3, 4, 2, 2, 6) if isinstance(layer, SpatialDropout3D) else (3, 4, 5, 6)
    return data(shape, dtype, seed) + 3.0   # no zeros of its own


@pytest.mark.parametrize("index", range(6), ids=["sd2", "sd3", "noise", "gdrop", "alpha",
                                                  "alpha_shape"])
def test_identity_at_inference(index):
    layer = _layers()[index]
    x = _input_for(layer)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    ctx = CallContext(layer)
    assert ctx.forward(x) is x
    np.testing.assert_array_equal(ctx.backward(x), x)


@pytest.mark.parametrize("make", [lambda: GaussianNoise(0.0), lambda: GaussianDropout(0.0),
                                  lambda: AlphaDropout(0.0), lambda: SpatialDropout2D(0.0)],
                         ids=["noise", "gdrop", "alpha", "sd2"])
def test_zero_rate_is_identity_in_training(make):
    x = data((2, 3, 3, 4), np.float32)
    np.testing.assert_array_equal(make()(x, training=True).numpy(), x)


@pytest.mark.parametrize("layer_class, shape", [(SpatialDropout2D, (6, 5, 4, 10)),
                                                (SpatialDropout3D, (6, 3, 4, 2, 10))])
def test_spatial_dropout_drops_whole_feature_maps(layer_class, shape):
    x = data(shape, np.float32) + 3.0
    layer = layer_class(0.4, seed=3)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dropped = y == 0
    spatial = tuple(range(1, len(shape) - 1))
    first = dropped[(slice(None),) + (slice(0, 1),) * len(spatial)]
    assert np.all(dropped == first)                    # one draw per (sample, channel)
    assert 0 < first.sum() < first.size
    scale = np.where(dropped, 0.0, 1 / 0.6).astype(np.float32)
    np.testing.assert_array_equal(y, x * scale)
    dy = data(shape, np.float32, 1)
    np.testing.assert_array_equal(ctx.backward(dy), dy * scale)
    again = CallContext(layer_class(0.4, seed=3)).forward(x, training=True)
    np.testing.assert_array_equal(again, y)
    # Any spatial size.
    small = x[:, :2]
    assert CallContext(layer).forward(small, training=True).shape == small.shape


@pytest.mark.parametrize("layer_class, shape", [(SpatialDropout2D, (6, 10, 5, 4)),
                                                (SpatialDropout3D, (6, 10, 3, 4, 2))])
def test_spatial_dropout_channels_first_drops_the_same_maps(layer_class, shape):
    # The mask's shape puts the channels on axis 1: no transposition, and the (sample,
    # channel) draws of the channels_last layer with the same seed.
    x = data(shape, np.float32) + 3.0
    ctx = CallContext(layer_class(0.4, data_format="channels_first", seed=3))
    y = ctx.forward(x, training=True)
    assert ctx.keep.shape == shape[:2] + (1,) * (len(shape) - 2)
    dropped = y == 0
    assert np.all(dropped == dropped[(slice(None), slice(None)) + (slice(0, 1),) *
                                     (len(shape) - 2)])
    last = CallContext(layer_class(0.4, seed=3)).forward(
        np.ascontiguousarray(np.moveaxis(x, 1, -1)), training=True)
    np.testing.assert_array_equal(y, np.moveaxis(last, -1, 1))
    with pytest.raises(ValueError, match="expects"):
        layer_class(0.4, data_format="channels_first")(x[0], training=True)
    minidl.config.set_image_data_format("channels_first")
    try:
        assert layer_class(0.4).data_format == "channels_first"   # None: the global default
    finally:
        minidl.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_are_the_noise_of_the_forward_pass(dtype):
    x = data((5, 7, 3), dtype) + 3.0
    dy = data((5, 7, 3), dtype, seed=1)
    dname = np.dtype(dtype).name
    # GaussianNoise: additive, the gradient passes through.
    ctx = CallContext(GaussianNoise(0.3, seed=2, dtype=dname))
    y = ctx.forward(x, training=True)
    assert np.abs(y - x).max() > 0.1
    np.testing.assert_array_equal(ctx.backward(dy), dy)
    # GaussianDropout: y = x * noise and dx = dy * noise, the same noise.
    ctx = CallContext(GaussianDropout(0.3, seed=2, dtype=dname))
    y = ctx.forward(x, training=True)
    noise = ctx.keep.copy()
    np.testing.assert_array_equal(y, x * noise)
    np.testing.assert_array_equal(ctx.backward(dy), dy * noise)
    # AlphaDropout: kept units a * x + b, dropped ones a constant; dx = dy * a where kept.
    a, b, dropped = (dtype(v) for v in alpha_constants(0.3))
    for noise_shape in (None, (None, 1, 3)):
        ctx = CallContext(AlphaDropout(0.3, noise_shape=noise_shape, seed=2, dtype=dname))
        y = ctx.forward(x, training=True)
        kept = np.broadcast_to(ctx.keep != 0, x.shape)
        assert kept.any() and (~kept).any()
        np.testing.assert_array_equal(y, np.where(kept, x * a + b, dropped))
        np.testing.assert_array_equal(ctx.backward(dy), np.where(kept, dy * a, 0))
        assert ctx.backward(dy, need_input_grad=False) is None


@pytest.mark.parametrize("make", [lambda: GaussianNoise(0.3, seed=5, dtype="float64"),
                                  lambda: GaussianDropout(0.3, seed=5, dtype="float64"),
                                  lambda: AlphaDropout(0.3, seed=5, dtype="float64"),
                                  lambda: SpatialDropout2D(0.3, seed=5, dtype="float64")],
                         ids=["noise", "gdrop", "alpha", "sd2"])
def test_gradients_match_finite_differences_with_a_fixed_seed(make):
    x = data((3, 2, 3, 4), seed=9)
    w = data((3, 2, 3, 4), seed=10)

    def scalar():  # a fresh layer with the same seed draws the same noise
        return float(np.sum(np.asarray(make()(x, training=True)) * w))

    ctx = CallContext(make())
    ctx.forward(x, training=True)
    dx = ctx.backward(w.copy())
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("index", range(6), ids=["sd2", "sd3", "noise", "gdrop", "alpha",
                                                  "alpha_shape"])
def test_seeds_reproduce_and_steps_differ(index):
    layer, twin = _layers()[index], _layers()[index]
    x = _input_for(layer)
    first = CallContext(layer).forward(x, training=True).copy()
    np.testing.assert_array_equal(CallContext(twin).forward(x, training=True), first)
    second = CallContext(layer).forward(x, training=True)
    assert not np.array_equal(first, second)      # the next step draws new noise


def test_unseeded_layers_follow_the_global_seed():
    x = data((4, 3, 3, 5), np.float32) + 3.0
    for make in (lambda: GaussianNoise(0.2), lambda: AlphaDropout(0.3),
                 lambda: SpatialDropout2D(0.5), lambda: GaussianDropout(0.3)):
        minidl.utils.set_random_seed(11)
        first = make()(x, training=True).numpy()
        minidl.utils.set_random_seed(11)
        np.testing.assert_array_equal(make()(x, training=True).numpy(), first)


@pytest.mark.parametrize("index", range(6), ids=["sd2", "sd3", "noise", "gdrop", "alpha",
                                                  "alpha_shape"])
def test_same_bits_for_one_and_two_threads(index):
    outs = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        layer = _layers()[index]
        shape = (16, 20, 10, 10, 6) if isinstance(layer, SpatialDropout3D) else (64, 30, 20, 6)
        x = data(shape, np.float32)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        outs.append((y, ctx.backward(np.ones_like(x)).copy()))
    for got, want in zip(*outs):
        np.testing.assert_array_equal(got, want)


def test_random_state_is_saved_and_restored():
    x = np.ones((4, 6), np.float32)
    for make in (lambda s: GaussianNoise(0.5, seed=s), lambda s: GaussianDropout(0.4, seed=s),
                 lambda s: AlphaDropout(0.4, seed=s), lambda s: SpatialDropout1D(0.4, seed=s)):
        layer, twin = make(3), make(4)
        xs = x[:, :, None] if isinstance(layer, SpatialDropout1D) else x
        layer(xs, training=True)
        json.dumps(layer.get_random_state())
        twin.set_random_state(layer.get_random_state())
        np.testing.assert_array_equal(twin(xs, training=True), layer(xs, training=True))
        assert make(None).get_random_state() is None


# ---- models ----

def _image_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 2), dtype=np.float32), rng.integers(0, 3, n)


def _model(noise_layer, seed=0):
    minidl.utils.set_random_seed(seed)
    model = minidl.Sequential([Input((6, 6, 2)), Conv2D(4, 3, activation="selu"),
                               noise_layer, Flatten(), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


_NOISE_LAYERS = {
    "sd2": lambda seed: SpatialDropout2D(0.3, seed=seed),
    "noise": lambda seed: GaussianNoise(0.2, seed=seed),
    "gdrop": lambda seed: GaussianDropout(0.3, seed=seed),
    "alpha": lambda seed: AlphaDropout(0.2, seed=seed),
    "alpha_unseeded": lambda seed: AlphaDropout(0.2),
}


@pytest.mark.parametrize("name", list(_NOISE_LAYERS))
def test_fit_save_load_resumes_exactly(tmp_path, name):
    make = _NOISE_LAYERS[name]
    x, y = _image_data()
    straight = _model(make(7))
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = _model(make(7))
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "half.minidl"
    first.save(path)
    minidl.utils.set_random_seed(999)   # the loaded model must not depend on this
    loaded = minidl.models.load_model(path)
    assert type(loaded.layers[1]) is type(first.layers[1])
    assert loaded.layers[1].get_config() == first.layers[1].get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), first.predict(x, verbose=0))
    loaded.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    for got, want in zip(loaded.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_layers_train_under_gradient_tape():
    x = data((8, 5), np.float32)
    dense = Dense(3)
    for noise in (GaussianDropout(0.3, seed=1), AlphaDropout(0.3, seed=1),
                  GaussianNoise(0.3, seed=1)):
        with minidl.GradientTape() as tape:
            loss = minidl.ops.sum(dense(noise(x, training=True)) ** 2)
        grads = tape.gradient(loss, dense.trainable_weights)
        assert all(np.isfinite(np.asarray(g)).all() for g in grads)
        assert np.abs(np.asarray(grads[0])).sum() > 0


# ---- arguments, errors and configs ----

@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None, float("nan")])
def test_rates_outside_zero_one_are_refused(rate):
    for layer_class in (SpatialDropout2D, SpatialDropout3D, GaussianDropout, AlphaDropout):
        with pytest.raises(ValueError, match=r"`rate`.*Received: rate="):
            layer_class(rate)


@pytest.mark.parametrize("stddev", [-0.1, 1.5, "0.1", True, None, float("nan")])
def test_gaussian_noise_stddev_outside_keras_range_is_refused(stddev):
    with pytest.raises(ValueError, match=r"`stddev`.*Received: stddev="):
        GaussianNoise(stddev)


def test_shape_and_format_errors():
    with pytest.raises(ValueError, match=r"expects 4-D input \(batch, rows, cols, channels\)"):
        SpatialDropout2D(0.3)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="expects 5-D input"):
        SpatialDropout3D(0.3)(np.ones((2, 3, 4, 5), np.float32))
    for layer_class in (SpatialDropout2D, SpatialDropout3D):
        with pytest.raises(ValueError, match="data_format"):
            layer_class(0.3, data_format="NHWC")
    with pytest.raises(ValueError, match="does not broadcast"):
        AlphaDropout(0.3, noise_shape=(None, 2))(np.ones((2, 3), np.float32), training=True)
    with pytest.raises(ValueError, match="noise_shape"):
        AlphaDropout(0.3, noise_shape="abc")
    with pytest.raises(ValueError, match="seed"):
        GaussianNoise(0.1, seed=-1)


@pytest.mark.parametrize("layer, keys", [
    (SpatialDropout2D(0.3, seed=2), {"rate", "seed", "data_format"}),
    (SpatialDropout3D(0.3), {"rate", "seed", "data_format"}),
    (GaussianNoise(0.3, seed=2), {"stddev", "seed"}),
    (GaussianDropout(0.3), {"rate", "seed"}),
    (AlphaDropout(0.3, noise_shape=(None, 1), seed=1), {"rate", "seed", "noise_shape"}),
], ids=["sd2", "sd3", "noise", "gdrop", "alpha"])
def test_config_keys_follow_keras_and_round_trip(layer, keys):
    config = layer.get_config()
    assert keys <= set(config) and "noise_shape" not in set(config) - keys
    again = get_layer(json.loads(json.dumps(serialize(layer))))
    assert type(again) is type(layer)
    assert again.get_config() == config
    if "data_format" in keys:
        assert config["data_format"] == "channels_last"
    assert layer.compute_output_shape((4, 5, 6)) == (4, 5, 6)
    assert type(layer).supports_masking   # as in Keras


def test_alpha_dropout_constants_follow_keras():
    # From Keras 3.15.1: AlphaDropout(0.2) in training maps kept units to a * x + b and
    # dropped ones to -1.23616 (float32), with these a and b.
    layer = AlphaDropout(0.2)
    assert layer._a == pytest.approx(0.8789035834435328, rel=1e-15)
    assert layer._b == pytest.approx(0.30903996214409446, rel=1e-15)
    assert layer._dropped == pytest.approx(-1.2361598485763778, rel=1e-15)
    x = data((50, 40), np.float32)
    y = AlphaDropout(0.2, seed=0)(x, training=True).numpy()
    assert set(np.unique(y[~np.isclose(y, 0.8789035834435328 * x + 0.30903996214409446,
                                        rtol=1e-6)])) == {np.float32(-1.2361598485763778)}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # (Keras' own, numpy 2 copy=)
def test_keras_recomputes_the_constants_and_config_keys(monkeypatch):
    # Keras 3.15.1 (torch backend), when installed: AlphaDropout's dropped value and the
    # layers' config keys.
    pytest.importorskip("torch")
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras runs on another backend here")
    x = data((50, 40), np.float32)
    y = keras.ops.convert_to_numpy(keras.layers.AlphaDropout(0.2, seed=1)(x, training=True))
    a, b, dropped = alpha_constants(0.2)
    dropped_values = y[~np.isclose(y, a * x + b, rtol=1e-6)]
    np.testing.assert_allclose(dropped_values, AlphaDropout(0.2)._dropped, rtol=1e-6)
    for ours, theirs in [(SpatialDropout2D(0.3, seed=1), keras.layers.SpatialDropout2D(0.3)),
                         (SpatialDropout3D(0.3), keras.layers.SpatialDropout3D(0.3)),
                         (GaussianNoise(0.3), keras.layers.GaussianNoise(0.3)),
                         (GaussianDropout(0.3), keras.layers.GaussianDropout(0.3)),
                         (AlphaDropout(0.3), keras.layers.AlphaDropout(0.3))]:
        keys = set(theirs.get_config()) - {"name", "dtype", "trainable"}
        assert keys <= set(ours.get_config()), type(ours).__name__
