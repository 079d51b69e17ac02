"""Models whose inputs are integers (token ids, bin indices): Input(dtype='int64') before a
CategoryEncoding, an integer tensor reaching a Dense layer, subclassed models fed ints.

The batch gatherer copies integer rows into a buffer of the input's integer type; a float x
for an integer input must hold whole numbers in that type's range; a layer with weights
reads an integer tensor as floats of its dtype, as Keras' ops promote it.
"""
import numpy as np
import pytest

import minidl
from minidl import layers
from minidl._core import _backend, _data
from minidl.models import Model, Sequential
from minidl.utils import set_random_seed

TOKENS = 10


def _multi_hot(x, depth=TOKENS):
    out = np.zeros((x.shape[0], depth), np.float32)
    out[np.arange(x.shape[0])[:, None], x] = 1
    return out


def _data_set(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, TOKENS, size=(n, 3))
    y = (_multi_hot(x)[:, :5].sum(axis=1, keepdims=True) > 1).astype(np.float32)
    return x, y


def _encoder_model(dtype="int64", seed=1):
    set_random_seed(seed)
    inputs = layers.Input((3,), dtype=dtype)
    hot = layers.CategoryEncoding(num_tokens=TOKENS, output_mode="multi_hot")(inputs)
    model = Model(inputs, layers.Dense(1, activation="sigmoid")(hot))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _hand_model(dense):
    """A float model of one Dense layer holding ``dense``'s weights: what the encoder
    model computes, fed the one-hot floats by hand."""
    inputs = layers.Input((TOKENS,))
    out = layers.Dense(1, activation="sigmoid")(inputs)
    model = Model(inputs, out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.layers[-1].set_weights(dense.get_weights())
    return model


# ---- the gatherer ----

@pytest.mark.parametrize("source", [np.uint8, np.int8, np.int16, np.int32, np.int64,
                                    np.float32, np.float64])
@pytest.mark.parametrize("dest", [np.uint8, np.int8, np.int16, np.int32, np.int64])
def test_gather_rows_into_integer_buffers(source, dest):
    rng = np.random.default_rng(3)
    src = rng.integers(0, 100, size=(50, 7)).astype(source)
    rows = rng.integers(0, 50, size=20)
    out = np.empty((20, 7), dest)
    _data.gather_rows(src, rows, out)
    np.testing.assert_array_equal(out, src[rows].astype(dest))
    assert out.dtype == dest
    out = np.empty((9, 7), dest)
    _data.copy_rows(src, 30, out)
    np.testing.assert_array_equal(out, src[30:39].astype(dest))


@pytest.mark.parametrize("threads", [1, 2])
def test_gather_rows_integer_large_and_misaligned(threads):
    # Large enough for the parallel path; a misaligned view of int64 ids.
    rng = np.random.default_rng(4)
    ids = rng.integers(-2**40, 2**40, size=(4000, 40))
    raw = np.zeros(ids.nbytes + 1, np.uint8)
    view = np.frombuffer(raw.data, np.uint8, ids.nbytes, 1).view(np.int64).reshape(ids.shape)
    view[...] = ids
    assert not view.flags.aligned
    rows = rng.permutation(4000)
    before = _backend.get_num_threads()
    _backend.set_num_threads(threads)
    try:
        out = np.empty((4000, 40), np.int64)
        _data.gather_rows(view, rows, out)
    finally:
        _backend.set_num_threads(before)
    np.testing.assert_array_equal(out, ids[rows])


def test_gather_rows_rejects_unhandled_integer_out():
    with pytest.raises(TypeError, match="out must be uint8, int8, int16, int32, int64, "
                                        "float32 or float64; received uint16"):
        _data.gather_rows(np.zeros((2, 2), np.int64), np.array([0]), np.empty((1, 2), np.uint16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_nonintegral_matches_numpy(dtype):
    rng = np.random.default_rng(5)
    x = rng.integers(-300, 300, size=200_000).astype(np.float64)
    x[rng.integers(0, x.size, 40)] += 0.25
    x[rng.integers(0, x.size, 5)] = np.nan
    x[rng.integers(0, x.size, 5)] = -np.inf
    x = x.astype(dtype)
    low, high = -256.0, 255.0
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (x != np.trunc(x)) | (x < low) | (x > high)
    count, first = _data.count_nonintegral(x, low, high)
    assert count == int(bad.sum())
    assert first == int(np.flatnonzero(bad)[0])
    assert _data.count_nonintegral(np.arange(5.0, dtype=dtype), low, high) == (0, -1)


def test_count_nonintegral_int64_bounds():
    high = float(np.nextafter(2.0**63, 0))
    x = np.array([-2.0**63, high, 2.0**63, -0.0])
    assert _data.count_nonintegral(x, -2.0**63, high) == (1, 2)


# ---- training, evaluation and prediction ----

def test_category_encoding_model_trains_and_predicts_as_by_hand():
    x, y = _data_set()
    model = _encoder_model()
    assert model.inputs[0].dtype == "int64"
    hand = _hand_model(model.layers[-1])
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    hand.fit(_multi_hot(x), y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    # The same float32 products in the same order: the same bits.
    for got, want in zip(model.layers[-1].get_weights(), hand.layers[-1].get_weights()):
        np.testing.assert_array_equal(got, want)
    predicted = model.predict(x, verbose=0)
    assert predicted.dtype == np.float32
    np.testing.assert_array_equal(predicted, hand.predict(_multi_hot(x), verbose=0))
    kernel, bias = model.layers[-1].get_weights()
    reference = 1 / (1 + np.exp(-(_multi_hot(x).astype(np.float64) @ kernel + bias)))
    np.testing.assert_allclose(predicted, reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(model(x)), predicted)
    np.testing.assert_array_equal(model.predict_on_batch(x[:10]), predicted[:10])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    want_loss, want_accuracy = hand.evaluate(_multi_hot(x), y, verbose=0)
    assert loss == pytest.approx(want_loss, rel=1e-6)
    assert accuracy == want_accuracy


def test_fit_from_generator_equals_fit_from_arrays():
    x, y = _data_set()
    arrays = _encoder_model()
    arrays.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    stream = _encoder_model()

    def batches():
        for start in range(0, len(x), 16):
            yield x[start:start + 16], y[start:start + 16]
    stream.fit(batches(), epochs=1, verbose=0)
    for got, want in zip(stream.get_weights(), arrays.get_weights()):
        np.testing.assert_array_equal(got, want)
    logs = stream.evaluate(((x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)),
                           verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(arrays.evaluate(x, y, verbose=0,
                                                         return_dict=True)["loss"], rel=1e-6)
    predicted = stream.predict((x[i:i + 40] for i in range(0, len(x), 40)), verbose=0)
    np.testing.assert_array_equal(predicted, arrays.predict(x, verbose=0))


def test_train_on_batch_and_validation_data():
    x, y = _data_set()
    model = _encoder_model()
    before = model.layers[-1].get_weights()[0].copy()
    loss = model.train_on_batch(x[:32], y[:32])
    assert np.isfinite(loss[0] if isinstance(loss, list) else loss)
    assert not np.array_equal(model.layers[-1].get_weights()[0], before)
    history = model.fit(x[:64], y[:64], validation_data=(x[64:], y[64:]), epochs=2, verbose=0)
    assert len(history.history["val_loss"]) == 2
    history = model.fit(x, y, validation_split=0.25, epochs=1, verbose=0)
    assert "val_accuracy" in history.history
    assert np.isfinite(model.test_on_batch(x[:16], y[:16])[0])


def test_sequential_with_integer_input():
    x, y = _data_set()
    set_random_seed(2)
    model = Sequential([layers.Input((3,), dtype="int32"),
                        layers.CategoryEncoding(num_tokens=TOKENS, output_mode="count"),
                        layers.Dense(4, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    predicted = model.predict(x, verbose=0)
    counts = _multi_hot(x) * 0
    np.add.at(counts, (np.arange(len(x))[:, None], x), 1)
    (k1, b1), (k2, b2) = (layer.get_weights() for layer in model.layers[1:])
    want = np.maximum(counts @ k1 + b1, 0) @ k2 + b2
    np.testing.assert_allclose(predicted, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict_on_batch(x[:5]), predicted[:5])


def test_sequential_without_input_reads_ids_as_floats():
    # As Keras' Sequential.build: the input takes the first layer's dtype (float32), and
    # CategoryEncoding reads whole floats as tokens.
    x, y = _data_set()
    set_random_seed(2)
    model = Sequential([layers.CategoryEncoding(num_tokens=TOKENS), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.inputs[0].dtype == "float32"
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), _multi_hot(x) @ kernel + bias,
                               rtol=1e-5, atol=1e-6)


# ---- conversions of x ----

@pytest.mark.parametrize("given", [np.int32, np.uint8, np.int16, np.uint16, np.bool_])
def test_other_integer_types_convert(given):
    x, y = _data_set()
    if given is np.bool_:
        x = x % 2
    model = _encoder_model()
    want = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x.astype(given), verbose=0), want)
    model.fit(x.astype(given), y, epochs=1, verbose=0)


def test_whole_floats_accepted():
    x, y = _data_set()
    model = _encoder_model()
    want = model.predict(x, verbose=0)
    for dtype in (np.float32, np.float64, np.float16):
        np.testing.assert_array_equal(model.predict(x.astype(dtype), verbose=0), want)
    model.fit(x.astype(np.float64), y, epochs=1, verbose=0)


@pytest.mark.parametrize("value, reason", [(2.5, "is not a whole number"), (np.nan, "is NaN"),
                                           (np.inf, "is infinite")])
def test_non_whole_floats_rejected(value, reason):
    x, y = _data_set()
    x = x.astype(np.float64)
    x[7, 1] = value
    x[9, 0] = 0.5
    model = _encoder_model()
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.predict(x, verbose=0),
                 lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.train_on_batch(x, y)):
        with pytest.raises(ValueError, match=rf"x feeds a model input of dtype int64.*"
                                             rf"x\[7, 1\] = {value!r} {reason} \(2 such"):
            call()


def test_out_of_range_values_rejected():
    x, y = _data_set()
    model = _encoder_model(dtype="int32")
    big = x.astype(np.int64)
    big[3, 2] = 2**40
    with pytest.raises(ValueError, match=r"x\[3, 2\] = 1099511627776 is outside the range "
                                         r"\[-2147483648, 2147483647\] of int32"):
        model.fit(big, y, verbose=0)
    with pytest.raises(ValueError, match=r"x\[3, 2\] = 3000000000.0 is outside the range"):
        model.predict(np.where(big == 2**40, 3e9, big).astype(np.float64), verbose=0)
    huge = x.astype(np.uint64)
    huge[0, 0] = 2**63
    with pytest.raises(ValueError, match=r"x\[0, 0\] = 9223372036854775808 is outside"):
        _encoder_model().predict(huge, verbose=0)


def test_token_out_of_range_for_the_layer_still_reported():
    x, _ = _data_set()
    x[0, 0] = TOKENS
    with pytest.raises(ValueError):
        _encoder_model().predict(x, verbose=0)


# ---- mixed inputs, subclassed models, saving ----

def test_mixed_integer_and_float_inputs():
    x, y = _data_set()
    rng = np.random.default_rng(6)
    features = rng.normal(size=(len(x), 2)).astype(np.float32)
    set_random_seed(3)
    ids = layers.Input((3,), dtype="int64", name="ids")
    numbers = layers.Input((2,), name="numbers")
    hot = layers.CategoryEncoding(num_tokens=TOKENS)(ids)
    joined = layers.Concatenate()([hot, numbers])
    model = Model([ids, numbers], layers.Dense(1, activation="sigmoid")(joined))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit([x, features], y, batch_size=16, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    kernel, bias = model.layers[-1].get_weights()
    want = 1 / (1 + np.exp(-(np.concatenate([_multi_hot(x), features], 1) @ kernel + bias)))
    got = model.predict({"ids": x.astype(np.int32), "numbers": features.astype(np.float64)},
                        verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    nan_features = features.copy()
    nan_features[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"x\['numbers'\] contains 1 NaN"):
        model.fit([x, nan_features], y, verbose=0)
    with pytest.raises(ValueError, match=r"x\['ids'\] feeds a model input of dtype int64"):
        model.fit([x + 0.5, features], y, verbose=0)


def test_subclassed_model_takes_integer_data():
    class Tokens(Model):
        def __init__(self):
            super().__init__()
            self.encode = layers.CategoryEncoding(num_tokens=TOKENS)
            self.dense = layers.Dense(1)

        def call(self, inputs):
            return self.dense(self.encode(inputs))

    x, y = _data_set()
    for dtype in (np.int64, np.uint8):
        set_random_seed(4)
        model = Tokens()
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x.astype(dtype), y, batch_size=16, epochs=1, verbose=0)
        kernel, bias = model.dense.get_weights()
        np.testing.assert_allclose(model.predict(x.astype(dtype), verbose=0),
                                   _multi_hot(x) @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_save_and_load_keep_the_integer_input(tmp_path):
    x, y = _data_set()
    model = _encoder_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "ids.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)
    assert loaded.inputs[0].dtype == "int64"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)
    sequential = Sequential([layers.Input((3,), dtype="int32"),
                             layers.CategoryEncoding(num_tokens=TOKENS), layers.Dense(2)])
    sequential.save(tmp_path / "seq.minidl")
    again = minidl.models.load_model(tmp_path / "seq.minidl")
    assert again.inputs[0].dtype == "int32"
    np.testing.assert_array_equal(again.predict(x, verbose=0), sequential.predict(x, verbose=0))


# ---- an integer tensor reaching a layer with weights ----

def test_dense_after_integer_discretization_reads_floats():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    set_random_seed(5)
    inputs = layers.Input((4,))
    bins = layers.Discretization(bin_boundaries=[-1.0, 0.0, 1.0])(inputs)
    assert bins.dtype == "int64"
    dense = layers.Dense(1)
    out = dense(bins)
    assert out.dtype == "float32"   # Keras: matmul(int64, float32) is float32
    model = Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    indices = np.searchsorted([-1.0, 0.0, 1.0], x, side="right").astype(np.float32)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), indices @ kernel + bias,
                               rtol=1e-6, atol=1e-6)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    # One full-batch SGD step of the mean squared error on the bin indices.
    residual = indices @ kernel + bias - y
    want_kernel = kernel - 0.01 * (2 / 64) * indices.T @ residual
    np.testing.assert_allclose(dense.get_weights()[0], want_kernel, rtol=1e-5, atol=1e-6)


def test_integer_input_straight_into_dense_and_flatten():
    x, y = _data_set()
    set_random_seed(6)
    inputs = layers.Input((3,), dtype="int64")
    model = Model(inputs, layers.Dense(2)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.repeat(y, 2, axis=1), epochs=1, verbose=0)
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x.astype(np.float32) @ kernel + bias,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x[:1])), x[:1].astype(np.float32) @ kernel + bias,
                               rtol=1e-5, atol=1e-5)
    set_random_seed(6)
    inputs = layers.Input((3,), dtype="int64")
    flat = layers.Flatten()(inputs)
    assert flat.dtype == "int64"   # a weightless layer keeps the integer type
    model = Model(inputs, layers.Dense(2)(flat))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.repeat(y, 2, axis=1), epochs=1, verbose=0)
    kernel, bias = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x.astype(np.float32) @ kernel + bias,
                               rtol=1e-5, atol=1e-5)


def test_float_inputs_keep_their_path():
    # A float model's batches are still float32 views or gathered copies of its data.
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 3))
    model = Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  model.predict(x.astype(np.float32), verbose=0))
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        model.predict(np.where(x == x[2, 2], np.nan, x), verbose=0)


def test_batches_of_non_whole_floats_rejected():
    x, y = _data_set()
    batches = [(x[:32].astype(np.float32), y[:32]), (x[32:64] + 0.5, y[32:64])]
    with pytest.raises(ValueError, match=r"Batch 1 of x: x feeds a model input of dtype "
                                         r"int64.*is not a whole number"):
        _encoder_model().fit(iter(batches), epochs=1, verbose=0)


def test_call_on_a_tape_checks_integer_inputs():
    from minidl.autodiff import GradientTape
    x, _ = _data_set(8)
    model = _encoder_model()
    with GradientTape() as tape:
        out = model(x.astype(np.float64))
        loss = minidl.ops.mean(out)
    kernel_grad, _ = tape.gradient(loss, model.trainable_variables)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_array_equal(np.asarray(out), probabilities)
    # d mean(sigmoid(z)) / dW = multi_hot^T (p (1 - p)) / n
    want = _multi_hot(x).T @ (probabilities * (1 - probabilities)) / len(x)
    np.testing.assert_allclose(np.asarray(kernel_grad), want, rtol=1e-5, atol=1e-7)
    with GradientTape():
        with pytest.raises(ValueError, match=r"x\[0, 0\] = 0.5 is not a whole number"):
            model(np.where(np.arange(x.size).reshape(x.shape) == 0, 0.5, x))
