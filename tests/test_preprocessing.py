"""Preprocessing layers (Normalization, Discretization, CategoryEncoding, Rescaling): Keras'
documented examples, numpy references, adapt over batches, gradients passed through, use
in Sequential and functional models, saving, configs and bad input."""
import numpy as np
import pytest

import minidl
from minidl import layers
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (CategoryEncoding, Dense, Discretization, Input, Normalization,
                           Rescaling)
from minidl.models import Model, Sequential
from minidl.saving import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def value(t):
    return np.asarray(t.value if hasattr(t, "value") else t)


def features(n=200, seed=0):
    """Features of very different scales and offsets, float32."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3)) * [1.0, 10.0, 100.0] + [5.0, -3.0, 50.0]) \
        .astype(np.float32)


# ---- Normalization ----

def test_normalization_keras_examples():
    layer = Normalization(axis=None)
    layer.adapt(np.array([1., 2., 3., 4., 5.], dtype="float32"))
    out = value(layer(np.array([1., 2., 3.], dtype="float32")))
    np.testing.assert_array_equal(out, np.array([-1.4142135, -0.70710677, 0.], np.float32))
    assert out.dtype == np.float32

    adapt_data = np.array([[0., 7., 4.], [2., 9., 6.], [0., 7., 4.], [2., 9., 6.]], "float32")
    layer = Normalization(axis=-1)
    layer.adapt(adapt_data)
    np.testing.assert_array_equal(value(layer(np.array([[0., 7., 4.]], "float32"))),
                                  [[-1., -1., -1.]])

    layer = Normalization(mean=3., variance=2.)
    np.testing.assert_array_equal(
        value(layer(np.array([[1.], [2.], [3.]], "float32"))),
        np.array([[-1.4142135], [-0.70710677], [0.]], np.float32))

    layer = Normalization(axis=-1, invert=True)
    layer.adapt(adapt_data)
    np.testing.assert_array_equal(value(layer(np.array([[1., 2., 3.]], "float32"))),
                                  [[2., 10., 8.]])


@pytest.mark.parametrize("axis, shape", [
    (-1, (40, 3)), (None, (40, 3)), (-1, (20, 4, 3)), (1, (20, 4, 3)), ((1, 2), (20, 4, 3)),
    ([-2], (10, 4, 3, 2)), ((1, 3), (10, 4, 3, 2))])
def test_normalization_axes_against_numpy(axis, shape):
    x = np.random.default_rng(1).standard_normal(shape) * 3 + 2
    layer = Normalization(axis=axis, dtype="float64")
    layer.adapt(x)
    keep = () if axis is None else tuple(
        sorted({a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}))
    reduce = tuple(d for d in range(len(shape)) if d not in keep)
    mean = x.mean(axis=reduce, keepdims=True)
    std = np.sqrt(x.var(axis=reduce, keepdims=True))
    assert layer.mean.value.shape == tuple(shape[d] for d in keep)
    np.testing.assert_allclose(value(layer(x)), (x - mean) / std, rtol=1e-12, atol=1e-12)
    assert int(layer.count.value) == int(np.prod([shape[d] for d in reduce]))


def test_adapt_in_batches_equals_one_pass():
    x = features(1000)
    one = Normalization()
    one.adapt(x)
    reference_mean = x.astype(np.float64).mean(axis=0)
    reference_var = x.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(one.mean.value, reference_mean, rtol=1e-6)
    np.testing.assert_allclose(one.variance.value, reference_var, rtol=1e-6)
    ways = {
        "batch_size": lambda layer: layer.adapt(x, batch_size=7),
        "list of arrays": lambda layer: layer.adapt([x[:1], x[1:333], x[333:]]),
        "generator of (x, y)": lambda layer: layer.adapt(
            (x[i:i + 64], np.zeros(len(x[i:i + 64]))) for i in range(0, len(x), 64)),
        "tensors": lambda layer: layer.adapt([minidl.Tensor(x[:500]), minidl.Tensor(x[500:])]),
    }
    for name, adapt in ways.items():
        layer = Normalization()
        adapt(layer)
        np.testing.assert_allclose(layer.mean.value, one.mean.value, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(layer.variance.value, one.variance.value, rtol=1e-6,
                                   err_msg=name)
        assert int(layer.count.value) == 1000


def test_adapt_is_sound_for_large_offsets():
    # Values 1e8 + N(0, 1): a float64 sum of squares would lose every digit of the variance.
    rng = np.random.default_rng(2)
    x = 1e8 + rng.standard_normal((4000, 2))
    layer = Normalization(dtype="float64")
    layer.adapt(x, batch_size=100)
    np.testing.assert_allclose(layer.variance.value, x.var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(layer.mean.value, x.mean(axis=0), rtol=1e-14)


def test_adapt_reads_steps_and_a_dataset_by_index():
    x = features(100)

    class Batches:   # a PyDataset-like object: __len__ and __getitem__, no __iter__
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[25 * i:25 * (i + 1)], None

    layer = Normalization()
    layer.adapt(Batches())
    np.testing.assert_allclose(layer.mean.value, x.astype(np.float64).mean(axis=0), rtol=1e-6)
    layer.adapt(iter([x[:10], x[10:20], x[20:]]), steps=2)
    np.testing.assert_allclose(layer.mean.value, x[:20].astype(np.float64).mean(axis=0),
                               rtol=1e-6)
    assert int(layer.count.value) == 20


def test_normalization_axis_none_takes_any_shape():
    parts = [np.arange(5.0), np.arange(6.0).reshape(3, 2)]
    values = np.concatenate([part.reshape(-1) for part in parts])
    layer = Normalization(axis=None)
    layer.adapt(parts)
    np.testing.assert_allclose(layer.mean.value, values.mean(), rtol=1e-6)
    np.testing.assert_allclose(layer.variance.value, values.var(), rtol=1e-6)
    out = value(layer(np.ones((2, 3, 4), np.float32)))
    np.testing.assert_allclose(out, np.full((2, 3, 4), (1 - values.mean()) / values.std()),
                               rtol=1e-6)


def test_adapt_after_the_model_is_built():
    # adapt writes the weights a built model's plan already reads.
    x = features(50)
    norm = Normalization()
    model = Sequential([Input((3,)), norm])
    norm.adapt(x)
    np.testing.assert_allclose(model.predict(x, verbose=0), (x - x.mean(axis=0)) / x.std(axis=0),
                               rtol=1e-4, atol=1e-5)


def test_normalization_constant_feature_and_int_inputs():
    x = np.array([[1, 5], [3, 5], [5, 5]], dtype=np.int64)
    layer = Normalization()
    layer.adapt(x)
    out = value(layer(x))
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 1], 0.0)   # std floored at 1e-7, not NaN
    double = Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0], dtype="float64")
    out = value(double(np.array([[3.0, 2.0]])))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 0.0]])


def test_normalization_invert_undoes_normalization():
    x = features()
    forward, inverse = Normalization(), Normalization(invert=True)
    forward.adapt(x)
    inverse.adapt(x)
    np.testing.assert_allclose(value(inverse(value(forward(x)))), x, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_and_rescaling_gradients(invert):
    x = np.random.default_rng(3).standard_normal((5, 3)) * 2 + 1
    layer = Normalization(mean=[1.0, -2.0, 0.5], variance=[4.0, 0.25, 9.0], invert=invert,
                          dtype="float64")
    check_layer_gradients(layer, x)
    adapted = Normalization(invert=invert, dtype="float64")
    adapted.adapt(x * 3)
    check_layer_gradients(adapted, x)
    check_layer_gradients(Rescaling(scale=[0.5, -2.0, 3.0], offset=1.0, dtype="float64"), x)
    images = np.random.default_rng(4).standard_normal((3, 4, 2))
    per_row = Normalization(axis=1, invert=invert, dtype="float64")
    per_row.adapt(images * 2 + 1)
    check_layer_gradients(per_row, images)


def test_normalization_before_dense_trains_like_normalized_data():
    # [Normalization(adapted), Dense] on x trains exactly as [Dense] on (x - mean) / std.
    x = features(128)
    y = (x[:, :1] * 0.5 - x[:, 1:2] * 0.05 + 0.01 * x[:, 2:]).astype(np.float32)
    norm = Normalization()
    norm.adapt(x)
    minidl.utils.set_random_seed(0)
    with_layer = Sequential([Input((3,)), norm, Dense(1)])
    plain = Sequential([Input((3,)), Dense(1)])
    plain.set_weights(with_layer.get_weights()[-2:])
    for model in (with_layer, plain):
        model.compile(minidl.optimizers.SGD(0.05), "mse")
    normalized = (x - x.mean(axis=0)) / x.std(axis=0)
    h1 = with_layer.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    h2 = plain.fit(normalized.astype(np.float32), y, epochs=3, batch_size=32, shuffle=False,
                   verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-4)
    assert h1.history["loss"][-1] < h1.history["loss"][0]
    np.testing.assert_allclose(with_layer.layers[-1].kernel, plain.layers[-1].kernel,
                               rtol=1e-4, atol=1e-6)


def test_rescaling_passes_the_gradient_to_earlier_layers():
    # Dense -> Rescaling(s) -> Dense(W2) has the first layer's gradient of Dense -> Dense(s W2).
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    first_a, first_b = Dense(3), Dense(3)
    a = Sequential([Input((4,)), first_a, Rescaling(2.5), Dense(1)])
    b = Sequential([Input((4,)), first_b, Dense(1)])
    w = a.get_weights()
    b.set_weights([w[0], w[1], w[2] * 2.5, w[3]])
    for model in (a, b):
        model.compile(minidl.optimizers.SGD(0.1), "mse")
        model.train_on_batch(x, y)
    np.testing.assert_allclose(first_a.kernel, first_b.kernel, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first_a.kernel, w[0])


def test_normalization_in_functional_model_saves_and_loads(tmp_path):
    x = features(64)
    inputs = Input((3,))
    norm = Normalization()
    norm.adapt(x)
    fixed = Normalization(mean=[0.0, 1.0, 2.0], variance=[1.0, 2.0, 3.0], invert=True)
    outputs = Dense(2)(fixed(norm(inputs)))
    model = Model(inputs, outputs)
    model.compile("adam", "mse")
    model.fit(x, np.zeros((64, 2), np.float32), epochs=1, verbose=0)
    path = tmp_path / "norm.minidl"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    restored = loaded.get_layer(norm.name)
    np.testing.assert_array_equal(restored.mean.value, norm.mean.value)
    assert restored.weight_names == ["mean", "variance", "count"]
    assert restored.count.value.shape == () and int(restored.count.value) == 64
    assert not restored.trainable_weights and not fixed.weights
    assert loaded.get_layer(fixed.name).get_config() == fixed.get_config()


def test_normalization_errors():
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match="same shape"):
        Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="variance"):
        Normalization(mean=[1.0], variance=[-1.0])
    with pytest.raises(ValueError, match="rank of `mean`"):
        Normalization(axis=None, mean=[1.0], variance=[1.0])
    with pytest.raises(TypeError, match="axis"):
        Normalization(axis="x")
    with pytest.raises(ValueError, match="axis=None"):
        Normalization().adapt(np.arange(5.0))   # 1-D: axis -1 is the batch axis
    with pytest.raises(ValueError, match="no data"):
        Normalization().adapt(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no data"):
        Normalization().adapt([])
    with pytest.raises(ValueError, match="NaN"):
        Normalization().adapt(np.array([[1.0], [np.nan]]))
    with pytest.raises(TypeError, match="numbers"):
        Normalization().adapt(np.array([["a"], ["b"]]))
    with pytest.raises(ValueError, match="batch_size"):
        Normalization().adapt([np.zeros((2, 3))], batch_size=2)
    with pytest.raises(ValueError, match="steps"):
        Normalization().adapt(np.zeros((2, 3)), steps=2)
    with pytest.raises(ValueError, match="cannot replace"):
        Normalization(mean=0.0, variance=1.0).adapt(np.zeros((2, 1)))
    layer = Normalization()
    # Neither adapted nor given statistics: Keras's initial ones (mean 0, variance 1), so
    # the inputs pass through, as in Keras.
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(layer(x), x)
    assert layer.count.value == 0
    model = Sequential([Input((3,)), Normalization(), Dense(1, kernel_initializer="ones")])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x.sum(axis=1, keepdims=True))
    layer.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"\(None, 3\).*\(None, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="incompatible shape"):
        layer.adapt([np.ones((4, 3)), np.ones((4, 4))])


# ---- Discretization ----

def test_discretization_keras_examples():
    x = np.array([[-1.5, 1.0, 3.4, .5], [0.0, 3.0, 1.3, 0.0]])
    out = value(Discretization(bin_boundaries=[0., 1., 2.])(x))
    np.testing.assert_array_equal(out, [[0, 2, 3, 1], [1, 3, 2, 1]])
    assert out.dtype == np.int64
    layer = Discretization(num_bins=4, epsilon=0.01)
    layer.adapt(x)
    np.testing.assert_array_equal(value(layer(x)), [[0, 2, 3, 2], [1, 3, 3, 1]])
    assert layer.bin_boundaries == [0.0, 0.5, float(np.float32(1.3))]


def test_discretization_bins_match_numpy_digitize():
    rng = np.random.default_rng(5)
    boundaries = [-1.0, 0.0, 0.0, 0.5, 2.0]
    x = np.concatenate([rng.standard_normal(200), boundaries]).reshape(-1, 5)
    out = value(Discretization(bin_boundaries=boundaries)(x))
    np.testing.assert_array_equal(out, np.digitize(x.astype(np.float32), boundaries))


def test_discretization_adapt_quantiles():
    rng = np.random.default_rng(6)
    x = rng.gamma(2.0, size=(300, 4)).astype(np.float32)
    layer = Discretization(num_bins=5)
    layer.adapt(x)
    # Linear interpolation of the empirical CDF through (i / n, i-th smallest value).
    values = np.sort(x.reshape(-1).astype(np.float64))
    expected = np.interp(np.arange(1, 5) / 5, np.arange(1, values.size + 1) / values.size,
                         values).astype(np.float32)
    np.testing.assert_array_equal(layer.bin_boundaries, expected)
    counts = np.bincount(value(layer(x)).reshape(-1), minlength=5)
    assert counts.sum() == x.size and np.all(np.abs(counts - x.size / 5) <= 2)
    batched = Discretization(num_bins=5)
    batched.adapt((x[i:i + 17], None) for i in range(0, 300, 17))
    assert batched.bin_boundaries == layer.bin_boundaries


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_discretization_output_modes(mode):
    boundaries = [0.0, 1.0, 2.0]
    x = np.array([[-1.0, 0.5, 0.7], [2.5, 2.5, 1.0]], np.float32)
    out = value(Discretization(bin_boundaries=boundaries, output_mode=mode)(x))
    indices = np.digitize(x, boundaries)
    one_hot = np.eye(4, dtype=np.float32)[indices]
    expected = {"one_hot": one_hot, "multi_hot": (one_hot.sum(axis=1) > 0).astype(np.float32),
                "count": one_hot.sum(axis=1)}[mode]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    assert out.shape[1:] == Discretization(bin_boundaries=boundaries, output_mode=mode) \
        .compute_output_shape((3,))


def test_discretization_in_a_model_saves_and_loads(tmp_path):
    x = features(100)
    disc = Discretization(num_bins=4, output_mode="one_hot")
    disc.adapt(x[:, 0])
    inputs = Input((3,))
    encoded = disc(inputs)
    assert encoded.shape == (None, 3, 4) and encoded.dtype == "float32"
    ints = Discretization(bin_boundaries=[0.0, 10.0])(inputs)
    assert ints.dtype == "int64"
    counts = CategoryEncoding(3, output_mode="count")(ints)
    model = Model(inputs, [minidl.layers.Flatten()(encoded), counts])
    path = tmp_path / "disc.minidl"
    model.save(path)
    loaded = load_model(path)
    for got, want in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(got, want)
    assert loaded.get_layer(disc.name).bin_boundaries == disc.bin_boundaries


def test_discretization_errors():
    with pytest.raises(ValueError, match="Both `num_bins` and `bin_boundaries`"):
        Discretization(bin_boundaries=[0.0], num_bins=2)
    with pytest.raises(ValueError, match="either `num_bins` or `bin_boundaries`"):
        Discretization()
    with pytest.raises(ValueError, match="sorted"):
        Discretization(bin_boundaries=[1.0, 0.0])
    with pytest.raises(ValueError, match="output_mode"):
        Discretization(num_bins=2, output_mode="tf_idf")
    with pytest.raises(ValueError, match="sparse"):
        Discretization(num_bins=2, output_mode="one_hot", sparse=True)
    with pytest.raises(ValueError, match="num_bins"):
        Discretization(num_bins=0)
    with pytest.raises(ValueError, match="Cannot adapt"):
        Discretization(bin_boundaries=[0.0]).adapt(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="no data"):
        Discretization(num_bins=3).adapt(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="NaN"):
        Discretization(num_bins=3).adapt(np.array([[1.0], [np.inf]]))
    with pytest.raises(ValueError, match="adapt"):
        Discretization(num_bins=3)(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="num_bins - 1"):
        Discretization.from_config({"bin_boundaries": [0.0], "num_bins": 4})


# ---- CategoryEncoding ----

def test_category_encoding_keras_examples():
    out = value(CategoryEncoding(num_tokens=4, output_mode="one_hot")([3, 2, 0, 1]))
    np.testing.assert_array_equal(out, np.eye(4)[[3, 2, 0, 1]])
    assert out.dtype == np.float32
    tokens = [[0, 1], [0, 0], [1, 2], [3, 1]]
    np.testing.assert_array_equal(
        value(CategoryEncoding(num_tokens=4, output_mode="multi_hot")(tokens)),
        [[1., 1., 0., 0.], [1., 0., 0., 0.], [0., 1., 1., 0.], [0., 1., 0., 1.]])
    weights = np.array([[.1, .2], [.1, .1], [.2, .3], [.4, .2]])
    np.testing.assert_allclose(
        value(CategoryEncoding(num_tokens=4, output_mode="count")(tokens,
                                                                   count_weights=weights)),
        [[.1, .2, 0., 0.], [.2, 0., 0., 0.], [0., .2, .3, 0.], [0., .2, 0., .4]], rtol=1e-6)


def test_category_encoding_against_numpy():
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 6, (9, 5))
    counts = value(CategoryEncoding(6, output_mode="count")(tokens))
    np.testing.assert_array_equal(counts, [np.bincount(row, minlength=6) for row in tokens])
    multi = value(CategoryEncoding(6)(tokens))
    np.testing.assert_array_equal(multi, counts > 0)
    one_hot = CategoryEncoding(6, output_mode="one_hot")
    assert value(one_hot(tokens)).shape == (9, 5, 6)
    np.testing.assert_array_equal(value(one_hot(tokens[:, :1])), np.eye(6)[tokens[:, 0]])
    assert one_hot.compute_output_shape((1,)) == (6,)
    assert one_hot.compute_output_shape((5,)) == (5, 6)
    # A 1-D input is one sample in multi_hot and count modes, as in Keras.
    np.testing.assert_array_equal(value(CategoryEncoding(4)([0, 2, 2])), [1, 0, 1, 0])


def test_category_encoding_in_a_trained_model(tmp_path):
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, 5, (64, 3)).astype(np.float32)
    y = (tokens == 2).sum(axis=1, keepdims=True).astype(np.float32)
    model = Sequential([Input((3,)), CategoryEncoding(5, output_mode="count"), Dense(1)])
    model.compile(minidl.optimizers.SGD(0.1), "mse")
    history = model.fit(tokens, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]
    path = tmp_path / "cat.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(tokens, verbose=0),
                                  model.predict(tokens, verbose=0))


def test_category_encoding_errors():
    layer = CategoryEncoding(num_tokens=4)
    with pytest.raises(ValueError, match=r"\[0, num_tokens=4\); received 4"):
        layer(np.array([[0, 4]]))
    with pytest.raises(ValueError, match="received -1"):
        layer(np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="integer tokens"):
        layer(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="num_tokens must be set"):
        CategoryEncoding()
    with pytest.raises(ValueError, match="num_tokens"):
        CategoryEncoding(num_tokens=0)
    with pytest.raises(TypeError, match="num_tokens"):
        CategoryEncoding(num_tokens=2.5)
    with pytest.raises(ValueError, match="output_mode"):
        CategoryEncoding(4, output_mode="int")
    with pytest.raises(ValueError, match="sparse"):
        CategoryEncoding(4, sparse=True)
    with pytest.raises(ValueError, match="count_weights"):
        layer(np.array([[0, 1]]), count_weights=np.ones((1, 2)))
    counter = CategoryEncoding(4, output_mode="count")
    with pytest.raises(ValueError, match="shape of the inputs"):
        counter(np.array([[0, 1]]), count_weights=np.ones((1, 3)))
    with pytest.raises(TypeError, match="symbolic"):
        counter(Input((2,)), count_weights=np.ones((1, 2)))


# ---- Rescaling ----

def test_rescaling():
    out = value(Rescaling(scale=1. / 127.5, offset=-1)(np.array([[0, 127.5, 255]])))
    np.testing.assert_allclose(out, [[-1., 0., 1.]], atol=1e-7)
    images = np.random.default_rng(9).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    layer = Rescaling(scale=[1 / 255, 2 / 255, 1.0], offset=[0.0, -1.0, 0.0])
    out = value(layer(images))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images * np.float32([1 / 255, 2 / 255, 1.0]) +
                               np.float32([0.0, -1.0, 0.0]), rtol=1e-6)
    # Inputs of another shape after the first: the layer depends on no built shape.
    assert value(layer(np.ones((1, 2, 3)))).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="broadcast"):
        layer(np.ones((1, 4)))
    with pytest.raises(TypeError, match="scale"):
        Rescaling(scale="x")
    with pytest.raises(ValueError, match="offset"):
        Rescaling(1.0, offset=float("nan"))


# ---- configs and the registry ----

@pytest.mark.parametrize("make", [
    lambda: Normalization(axis=(1, 2), invert=True),
    lambda: Normalization(mean=[1.0, 2.0], variance=[3.0, 4.0]),
    lambda: Normalization(axis=None, mean=0.5, variance=2.0),
    lambda: Discretization(bin_boundaries=[0.0, 1.5], output_mode="count"),
    lambda: Discretization(num_bins=3, epsilon=0.05),
    lambda: CategoryEncoding(7, output_mode="one_hot"),
    lambda: Rescaling(scale=[0.5, 2.0], offset=-1.0),
    lambda: Rescaling(0.25),
])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    again = layers.get({"class_name": type(layer).__name__, "config": config})
    assert type(again) is type(layer) and again.get_config() == config


def test_adapted_discretization_config_round_trip():
    layer = Discretization(num_bins=3)
    layer.adapt(np.arange(30.0).reshape(10, 3))
    config = layer.get_config()
    assert config["num_bins"] == 3 and len(config["bin_boundaries"]) == 2
    clone = Discretization.from_config(config)
    assert clone.get_config() == config
    x = np.linspace(-5, 35, 40).reshape(10, 4)
    np.testing.assert_array_equal(value(clone(x)), value(layer(x)))
