"""Sequential: construction and building, inference, weights in Keras order, summary, and the
checks of user data (shapes, dtypes, NaN, labels) that fit/evaluate/predict run first."""
import re

import numpy as np
import pytest

from minidl import losses, optimizers
from minidl.layers import Activation, Conv2D, Dense, Flatten, Input, Reshape
from minidl.models import Sequential
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def mlp(input_shape=(784,), hidden=64, classes=10):
    return Sequential([Dense(hidden, activation="relu", input_shape=input_shape),
                       Dense(hidden, activation="relu"),
                       Dense(classes, activation="softmax")])


def small_data(n=20, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, features)).astype(np.float32),
            rng.integers(0, classes, n))


def compiled_small(features=6, classes=3, **compile_kwargs):
    model = Sequential([Dense(5, activation="tanh", input_shape=(features,)),
                        Dense(classes, activation="softmax")])
    kwargs = dict(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    kwargs.update(compile_kwargs)
    model.compile(**kwargs)
    return model


# ---- construction and building ----

def test_list_and_add_build_the_same_model():
    set_random_seed(1)
    a = mlp()
    set_random_seed(1)
    b = Sequential()
    b.add(Dense(64, activation="relu", input_shape=(784,)))
    b.add(Dense(64, activation="relu"))
    b.add(Dense(10, activation="softmax"))
    assert a.built and b.built
    assert len(a.layers) == len(b.layers) == 3
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x = np.random.default_rng(0).random((5, 784)).astype(np.float32)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_input_then_flatten():
    model = Sequential([Input((28, 28)), Flatten(), Dense(10, activation="softmax")])
    assert model.built
    assert model.input_shape == (None, 28, 28)
    assert model.output_shape == (None, 10)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]
    assert model.layers[1].get_weights()[0].shape == (784, 10)
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    out = model.predict(x, verbose=0)
    assert out.shape == (4, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_input_must_come_first():
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="Input.*first"):
        model.add(Input((4,)))


def test_add_rejects_non_layers_and_duplicates():
    model = Sequential()
    with pytest.raises(TypeError, match="expects a Layer.*str"):
        model.add("dense")
    layer = Dense(2)
    model.add(layer)
    with pytest.raises(ValueError, match="already in this model"):
        model.add(layer)


def test_add_of_a_layer_that_cannot_follow_leaves_the_model_usable():
    model = Sequential([Input((28, 28))])
    with pytest.raises(ValueError, match=r"Conv2D"):
        model.add(Conv2D(4, 3))
    assert model.layers == []
    model.add(Flatten())
    model.add(Dense(10))
    assert model.predict(np.zeros((2, 28, 28)), verbose=0).shape == (2, 10)


def test_adding_n_layers_builds_each_layer_once():
    # Loading a config adds its layers one by one; building the whole stack on every add made
    # a 20,000-layer config take hours. Counted, not timed: n layers, O(n) shape computations.
    calls = []

    class CountingFlatten(Flatten):
        def compute_output_shape(self, input_shape):
            calls.append(input_shape)
            return super().compute_output_shape(input_shape)

    model = Sequential([Input((3, 4))] + [CountingFlatten() for _ in range(300)])
    assert model.built and model.output_shape == (None, 12) and len(model.layers) == 300
    assert len(calls) <= 2 * 300


def test_failed_add_to_a_compiled_model_leaves_it_unchanged():
    x, y = small_data()
    model = compiled_small()
    with pytest.raises(ValueError, match="reshape"):
        model.add(Reshape((4, 4)))   # 3 values cannot become 16
    assert len(model.layers) == 2 and model.output_shape == (None, 3)
    model.fit(x, y, epochs=1, verbose=0)
    model.add(Activation("linear"))
    assert model.output_shape == (None, 3) and len(model.layers) == 3
    model.fit(x, y, epochs=1, verbose=0)


def test_duplicate_layer_is_refused_after_pop():
    first, second = Dense(3), Dense(3)
    model = Sequential([first, second])
    model.layers.pop()   # a copy, as in Keras: the model is unchanged
    assert len(model.layers) == 2
    assert model.pop() is second
    model.add(second)   # no longer in the model
    with pytest.raises(ValueError, match="already in this model"):
        model.add(first)


@pytest.mark.parametrize("shape", [(None,), (None, 0), (None, True), (None, "4"), (0, 4),
                                   (None, 4.0), "x", 4])
def test_build_refuses_a_bad_input_shape(shape):
    model = Sequential([Dense(3)])
    with pytest.raises(ValueError, match=r"Received: input_shape="):
        model.build(shape)
    assert not model.built and model.input_shape is None


def test_lazy_build_on_first_data_equals_input_shape_build():
    x = np.random.default_rng(0).random((6, 12)).astype(np.float32)
    set_random_seed(3)
    eager = Sequential([Dense(4, activation="relu", input_shape=(12,)), Dense(2)])
    set_random_seed(3)
    lazy = Sequential([Dense(4, activation="relu"), Dense(2)])
    assert eager.built and not lazy.built
    assert lazy.get_weights() == []
    out = lazy.predict(x, verbose=0)
    assert lazy.built and lazy.input_shape == (None, 12) and lazy.output_shape == (None, 2)
    np.testing.assert_array_equal(out, eager.predict(x, verbose=0))
    for wa, wb in zip(lazy.get_weights(), eager.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_lazy_build_via_build():
    model = Sequential([Dense(4), Reshape((2, 2))])
    model.build((None, 3))
    assert model.built and model.output_shape == (None, 2, 2)
    with pytest.raises(ValueError, match=r"expects input shape \(None, 3\).*\(None, 5\)"):
        model.build((None, 5))
    with pytest.raises(ValueError, match="input shape"):
        Sequential([Dense(3)]).build()


def test_failed_lazy_build_can_be_retried_with_fixed_data():
    model = Sequential([Conv2D(4, 3), Flatten(), Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match=r"\(None, 28\)"):
        model.predict(np.zeros((3, 28)), verbose=0)
    assert not model.built and model.input_shape is None
    assert model.predict(np.zeros((3, 8, 8, 1)), verbose=0).shape == (3, 2)


def test_lazy_model_compiled_before_build_trains():
    x, y = small_data()
    model = Sequential([Dense(5, activation="relu"), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.input_shape == (None, 6)


def test_empty_model_is_an_error():
    with pytest.raises(ValueError, match="no layers"):
        Sequential().predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no layers"):
        Sequential()(np.zeros((2, 3)))


# ---- inference ----

def test_call_equals_predict():
    rng = np.random.default_rng(2)
    model = mlp()
    x = rng.random((37, 784)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model.predict(x, verbose=0))
    # other dtypes and non-contiguous input go through the checked path, same values
    np.testing.assert_array_equal(model(x.astype(np.float64)), model(x))
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(model(xt), model(x))
    with pytest.raises(ValueError, match="NaN"):
        model(np.full((2, 784), np.nan, np.float32))
    # training=True runs the training behaviour (none in this model), as in Keras
    np.testing.assert_array_equal(model(x, training=True), model(x))


def test_predict_is_batch_size_independent():
    rng = np.random.default_rng(3)
    model = mlp()
    x = rng.random((1000, 784)).astype(np.float32)
    reference = model.predict(x, batch_size=1000, verbose=0)
    assert reference.shape == (1000, 10) and reference.dtype == np.float32
    for batch_size in (1, 7, 32):
        np.testing.assert_array_equal(model.predict(x, batch_size=batch_size, verbose=0),
                                      reference, err_msg=f"batch_size={batch_size}")
    np.testing.assert_array_equal(model.predict(x[:10], batch_size=1000, verbose=0),
                                  reference[:10])


def test_predict_and_evaluate_read_the_callers_array_without_changing_it():
    # Batches in order of the model's float type are read-only views of x, not copies:
    # a read-only x works, x is left as it was, and the results are those of a copy.
    rng = np.random.default_rng(5)
    model = Sequential([Dense(8, activation="relu", input_shape=(6,)),
                        Activation("relu"), Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    before = x.copy()
    frozen = x.copy()
    frozen.flags.writeable = False
    expected = model.predict(x.astype(np.float64).astype(np.float32) + 0, batch_size=16,
                             verbose=0)
    np.testing.assert_array_equal(model.predict(frozen, batch_size=16, verbose=0), expected)
    np.testing.assert_array_equal(model.predict(x, batch_size=16, verbose=0), expected)
    assert model.evaluate(frozen, y, batch_size=16, verbose=0) == \
        model.evaluate(x.copy(), y, batch_size=16, verbose=0)
    model.fit(x[:40], y[:40], validation_data=(frozen[40:], y[40:]), epochs=1, verbose=0)
    np.testing.assert_array_equal(x, before)
    from minidl.models.data import Arrays, Batcher, prepare_x
    views = Batcher(Arrays([prepare_x(x, (6,))]), 16, [np.float32], read_only=True)
    batch = views.batch(1)[0][0]
    assert np.shares_memory(batch, x) and not batch.flags.writeable
    copies = Batcher(Arrays([prepare_x(x, (6,))]), 16, [np.float32])
    assert not np.shares_memory(copies.batch(1)[0][0], x)


def test_predict_matches_numpy_forward():
    rng = np.random.default_rng(4)
    model = Sequential([Dense(5, activation="relu", input_shape=(3,), dtype="float64"),
                        Dense(4, activation="tanh", use_bias=False, dtype="float64"),
                        Dense(2, activation="softmax", dtype="float64")])
    weights = [rng.standard_normal(w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    x = rng.standard_normal((9, 3))
    w1, b1, w2, w3, b3 = weights
    h = np.tanh(np.maximum(x @ w1 + b1, 0) @ w2)
    z = h @ w3 + b3
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    out = model.predict(x, verbose=0)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_predict_works_before_compile_and_keeps_training_state():
    x, y = small_data()
    model = compiled_small()
    before = model.predict(x, verbose=0)
    model.fit(x, y, epochs=1, verbose=0)
    after = model.predict(x, verbose=0)
    assert not np.array_equal(before, after)


# ---- weights ----

def test_get_weights_in_keras_order():
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu", use_bias=False),
                        Flatten(),
                        Dense(10, activation="softmax")])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(784, 64), (64,), (64, 64), (64, 10), (10,)]
    assert [w.shape for w in model.weights] == shapes
    assert not model.get_weights()[1].any()  # biases start at zeros


def test_set_weights_round_trip_and_copies():
    model = mlp(hidden=8)
    rng = np.random.default_rng(5)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    model.get_weights()[0][...] = 7  # a copy
    np.testing.assert_array_equal(model.get_weights()[0], new[0])
    clone = mlp(hidden=8)
    clone.set_weights(model.get_weights())
    x = rng.random((5, 784)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_set_weights_errors():
    model = mlp(hidden=8)
    good = model.get_weights()
    with pytest.raises(ValueError, match="has 6 weight arrays; received 5"):
        model.set_weights(good[:5])
    with pytest.raises(ValueError, match="has 6 weight arrays; received 7"):
        model.set_weights(good + [good[0]])
    bad = [w.copy() for w in good]
    bad[2] = np.zeros((8, 9), np.float32)
    with pytest.raises(ValueError, match=r"weight 'kernel' has shape \(8, 8\); received an "
                                         r"array of shape \(8, 9\)"):
        model.set_weights(bad)
    transposed = [w.copy() for w in good]
    transposed[0] = good[0].T  # PyTorch's (out, in) layout is a clear error, not a silent bug
    with pytest.raises(ValueError, match=r"\(784, 8\).*\(8, 784\)"):
        model.set_weights(transposed)
    nan = [np.ones_like(w) for w in good]
    nan[5][0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        model.set_weights(nan)
    for got, want in zip(model.get_weights(), good):  # failed calls changed nothing
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(3), Dense(2)]).set_weights(good)


def test_count_params():
    assert mlp().count_params() == 55_050
    model = Sequential([Input((28, 28)), Flatten(), Dense(10, use_bias=False)])
    assert model.count_params() == 7840


# ---- summary ----

def test_summary():
    model = Sequential([Dense(64, activation="relu", input_shape=(784,), name="hidden_1"),
                        Dense(64, activation="relu", name="hidden_2"),
                        Dense(10, activation="softmax", name="output")])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for name, shape, params in [("hidden_1", "(None, 64)", "50,240"),
                                ("hidden_2", "(None, 64)", "4,160"),
                                ("output", "(None, 10)", "650")]:
        row = next(line for line in lines if line.startswith(name))
        assert "(Dense)" in row and shape in row and params in row, row
    assert re.search(r"Total params: 55,050\b", text)
    assert re.search(r"Trainable params: 55,050\b", text)
    assert re.search(r"Non-trainable params: 0\b", text)


def test_summary_prints_to_stdout_and_counts_frozen_layers(capsys):
    model = Sequential([Input((28, 28)), Flatten(name="flat"),
                        Dense(10, trainable=False, name="frozen")])
    model.summary()
    text = capsys.readouterr().out
    assert "flat (Flatten)" in text and "(None, 784)" in text
    assert "Total params: 7,850" in text
    assert "Trainable params: 0" in text
    assert "Non-trainable params: 7,850" in text


def test_summary_of_an_unbuilt_model():
    lines = []
    Sequential([Dense(3, name="d")]).summary(print_fn=lines.append)
    assert any(line.startswith("d (Dense)") for line in lines)
    assert any("Total params: 0" in line for line in lines)


# ---- bad input: a clear exception naming the problem ----

def test_missing_flatten_is_explained():
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.zeros((5, 28, 28), np.uint8)
    y = np.zeros(5, np.uint8)
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.predict(x, verbose=0), lambda: model(x)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "784" in message and "(5, 28, 28)" in message and "Flatten" in message, message


def test_wrong_feature_count():
    model = compiled_small()
    with pytest.raises(ValueError, match=r"\(4, 7\).*\(6,\)"):
        model.predict(np.zeros((4, 7)))


@pytest.mark.parametrize("labels, pattern", [
    ([0, 1, 2, 3], r"y\[3\] = 3.*\[0, 3\)"),
    ([0, -1, 2, 1], r"y\[1\] = -1.*\[0, 3\)"),
    ([0, 1, 2, 300], r"y\[3\] = 300"),
    ([0.0, 1.5, 2.0, 1.0], r"non-integer.*y\[1\] = 1\.5"),
    ([0.0, 1.0, 2.0, np.nan], r"non-integer.*y\[3\] = nan"),
], ids=["too_large", "negative", "uint8_range", "fraction", "nan"])
def test_bad_sparse_labels(labels, pattern):
    model = compiled_small()
    x = np.zeros((4, 6), np.float32)
    y = np.array(labels)
    with pytest.raises(ValueError, match=pattern):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=pattern):
        model.evaluate(x, y, verbose=0)


def test_sparse_labels_of_many_int_types_are_accepted():
    x, y = small_data(n=8)
    model = compiled_small()
    results = [model.evaluate(x, y.astype(dtype), verbose=0)
               for dtype in (np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64)]
    results.append(model.evaluate(x, y.reshape(-1, 1), verbose=0))
    assert all(r == results[0] for r in results), results


def test_one_hot_targets_for_sparse_loss_are_explained():
    model = compiled_small()
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="categorical_crossentropy"):
        model.fit(x, np.eye(3)[[0, 1, 2, 0]], verbose=0)


def test_dense_targets_of_wrong_shape():
    model = compiled_small(loss="categorical_crossentropy")
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*\(4, 2\)"):
        model.fit(x, np.zeros((4, 2)), verbose=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(x, np.full((4, 3), np.nan), verbose=0)


def test_x_and_y_of_different_lengths():
    model = compiled_small()
    x, y = small_data(n=10)
    with pytest.raises(ValueError, match="x has 10.*y has 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="x has 10.*y has 11"):
        model.evaluate(x, np.append(y, 0), verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, 1, verbose=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_x(value):
    model = compiled_small()
    x, y = small_data(n=10)
    x[7, 2] = value
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.predict(x, verbose=0)):
        with pytest.raises(ValueError, match=r"1 NaN or infinite.*\(7, 2\)"):
            call()
    with pytest.raises(ValueError, match="validation_data x.*NaN"):
        model.fit(np.ones_like(x), y, validation_data=(x, y), verbose=0)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_one_batch_calls_find_nonfinite_x_through_the_first_product(value, monkeypatch):
    # model(x), predict on one batch and predict_on_batch of a Dense chain check x @ kernel
    # instead of x (dense_chain.run_inference_chain): the same errors as a scan of x, and no
    # error for a finite x whose product overflows.
    from minidl.layers import ReLU
    model = Sequential([Dense(4, input_shape=(6,)), ReLU(), Dense(2)])
    kernel, bias, k2, b2 = model.get_weights()
    kernel[...] = 0.5
    kernel[2] = 0.0                       # feature 2 meets only zero weights
    model.set_weights([kernel, bias, k2, b2])
    assert model._dense_inference_chain() is not None   # the path under test
    rng = np.random.default_rng(9)
    for row, col in ((0, 0), (7, 2), (49, 5)):
        x = rng.standard_normal((50, 6)).astype(np.float32)
        x[row, col] = value
        for call in (lambda: model(x), lambda: model.predict(x, verbose=0),
                     lambda: model.predict_on_batch(x)):
            with pytest.raises(ValueError, match=r"NaN or inf"):
                call()
    x = np.full((3, 6), 3e38, np.float32)
    for out in (model(x), model.predict(x, verbose=0), model.predict_on_batch(x)):
        assert not np.isfinite(np.asarray(out)).all()
    x = rng.standard_normal((5, 6)).astype(np.float32)
    expected = np.maximum(x @ kernel + bias, 0) @ k2 + b2
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-6)
    assert model.predict(x, verbose=0).tobytes() == np.asarray(model(x)).tobytes()
    # ... and x itself is not scanned on these paths
    import types
    from minidl.models import functional
    scanned, count = [], functional._data.count_nonfinite
    monkeypatch.setattr(functional, "_data", types.SimpleNamespace(
        count_nonfinite=lambda a: (scanned.append(a.shape), count(a))[1]))
    model(x)
    model.predict(x, verbose=0)
    assert x.shape not in scanned


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_predict_finds_nonfinite_x_through_its_first_dense_layer(value):
    # predict lets a first Dense layer count the non-finite values of x @ kernel instead of
    # scanning x: every case must still raise, with the first bad index: -inf under a ReLU,
    # an inf meeting only zero weights (inf * 0 = NaN), a bad value in a later batch.
    model = Sequential([Dense(4, activation="relu", input_shape=(6,)), Dense(2)])
    kernel, bias, k2, b2 = model.get_weights()
    kernel[...] = 0.5
    kernel[2] = 0.0                       # feature 2 meets only zero weights
    model.set_weights([kernel, bias, k2, b2])
    rng = np.random.default_rng(8)
    for row, col in ((0, 0), (7, 2), (45, 5)):
        x = rng.standard_normal((50, 6)).astype(np.float32)
        x[row, col] = value
        with pytest.raises(ValueError, match=rf"x contains 1 NaN or infinite value\(s\), "
                                             rf"the first at index \({row}, {col}\)"):
            model.predict(x, batch_size=16, verbose=0)
    # x finite, but the product overflows (5 x 0.5 x 3e38) or the weights are NaN: no
    # error, as in Keras
    x = np.full((3, 6), 3e38, np.float32)
    assert not np.isfinite(model.predict(x, verbose=0)).all()
    model.layers[0].kernel[...] = np.nan   # (set_weights refuses non-finite weights)
    assert np.isnan(model.predict(np.ones((3, 6), np.float32), verbose=0)).all()
    # ... and x, once found finite, is not scanned again for every later batch
    from minidl.models import trainer
    scans = []
    scan = trainer.check_finite_values
    trainer.check_finite_values = lambda *a, **k: (scans.append(1), scan(*a, **k))
    try:
        model.predict(np.ones((40, 6), np.float32), batch_size=4, verbose=0)
    finally:
        trainer.check_finite_values = scan
    assert len(scans) == 1


def test_integer_and_float64_x_equal_float32_results():
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (50, 784)).astype(np.uint8)
    model = mlp(hidden=16)
    as_f32 = model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_array_equal(model.predict(images, verbose=0), as_f32)
    np.testing.assert_array_equal(model.predict(images.astype(np.int64), verbose=0), as_f32)
    scaled64 = images / 255.0
    np.testing.assert_array_equal(model.predict(scaled64, verbose=0),
                                  model.predict(scaled64.astype(np.float32), verbose=0))
    np.testing.assert_array_equal(model.predict(images.astype(bool), verbose=0),
                                  model.predict(images.astype(bool).astype(np.float32),
                                                verbose=0))
    assert images.dtype == np.uint8 and scaled64.dtype == np.float64  # inputs not modified


def test_integer_and_float64_x_train_like_float32():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (64, 20)).astype(np.uint8)
    labels = rng.integers(0, 3, 64)
    weights = {}
    for name, x in [("uint8", images), ("float32", images.astype(np.float32)),
                    ("f64", images / 255.0), ("f32", (images / 255.0).astype(np.float32))]:
        set_random_seed(11)
        model = Sequential([Dense(8, activation="relu", input_shape=(20,)),
                            Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=2, batch_size=16, verbose=0)
        weights[name] = model.get_weights()
    for a, b in zip(weights["uint8"], weights["float32"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights["f64"], weights["f32"]):
        np.testing.assert_array_equal(a, b)


def test_non_numeric_x():
    model = compiled_small()
    with pytest.raises(TypeError, match="numbers"):
        model.predict(np.array([["a"] * 6] * 2))
    with pytest.raises(ValueError, match="required"):
        model.predict(None)
    with pytest.raises(ValueError, match=r"batch dimension.*\(6,\)"):
        model.predict(np.zeros(6))


def test_bad_targets():
    model = compiled_small()
    x = np.zeros((3, 6), np.float32)
    with pytest.raises(TypeError, match="y must hold numbers"):
        model.fit(x, np.array(["a", "b", "c"]), verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x, None, verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        model.evaluate(x, verbose=0)


def test_diverging_training_warns_once_and_goes_on_as_keras():
    # As in Keras, a non-finite loss does not raise; fit warns once, naming the remedies.
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e30), loss="mse")
    x = np.full((8, 2), 1e15, np.float32)
    with pytest.warns(RuntimeWarning, match="learning rate.*TerminateOnNaN") as record:
        history = model.fit(x, np.ones(8), epochs=3, verbose=0)
    assert len([w for w in record if w.category is RuntimeWarning]) == 1
    assert len(history.history["loss"]) == 3
    assert not np.isfinite(history.history["loss"][-1])


def test_concurrent_predict_from_python_threads():
    from concurrent.futures import ThreadPoolExecutor
    model = mlp(hidden=32)
    rng = np.random.default_rng(8)
    inputs = [rng.random((200, 784)).astype(np.float32) for _ in range(4)]
    serial = [model.predict(x, verbose=0) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda x: model.predict(x, batch_size=16, verbose=0), inputs))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_fit_and_evaluate_before_compile():
    model = mlp(hidden=4)
    x = np.zeros((3, 784), np.float32)
    y = np.zeros(3, np.int64)
    with pytest.raises(RuntimeError, match=r"compile\(\) before fit"):
        model.fit(x, y)
    with pytest.raises(RuntimeError, match=r"compile\(\) before evaluate"):
        model.evaluate(x, y)
    model.compile(optimizer="adam")
    with pytest.raises(RuntimeError, match="without a loss"):
        model.fit(x, y)


def test_empty_arrays():
    model = compiled_small()
    with pytest.raises(ValueError, match="empty"):
        model.fit(np.zeros((0, 6), np.float32), np.zeros(0), verbose=0)
    with pytest.raises(ValueError, match="empty"):
        model.evaluate(np.zeros((0, 6), np.float32), np.zeros(0), verbose=0)
    with pytest.raises(ValueError, match="empty"):
        model.predict(np.zeros((0, 6), np.float32))
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(np.zeros((2, 6), np.float32), np.zeros(0), verbose=0)


@pytest.mark.parametrize("kind, kwargs, valid", [
    ("optimizer", dict(optimizer="adamm"), "adam"),
    ("loss", dict(loss="sparse_crossentropy"), "sparse_categorical_crossentropy"),
    ("metric", dict(metrics=["acuracy"]), "accuracy"),
])
def test_unknown_names_list_valid_ones(kind, kwargs, valid):
    model = mlp(hidden=4)
    with pytest.raises(ValueError) as info:
        model.compile(**{"optimizer": "sgd", "loss": "mse", **kwargs})
    message = str(info.value)
    assert f"Unknown {kind}" in message and valid in message, message


def test_unknown_activation_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown activation 'rleu'.*relu.*sigmoid"):
        Sequential([Dense(3, activation="rleu")])


def test_metrics_must_be_a_list():
    with pytest.raises(TypeError, match=r"metrics must be a list"):
        mlp(hidden=4).compile(optimizer="sgd", loss="mse", metrics="accuracy")


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(batch_size=0), "batch_size=0"),
    (dict(batch_size=-3), "batch_size=-3"),
    (dict(batch_size=2.5), "batch_size=2.5"),
    (dict(batch_size="32"), "batch_size='32'"),
    (dict(batch_size=True), "batch_size=True"),
    (dict(epochs=-1), "epochs=-1"),
    (dict(epochs=1.5), "epochs=1.5"),
    (dict(epochs=None), "epochs=None"),
    (dict(verbose=3), "verbose=3"),
    (dict(verbose="yes"), "verbose='yes'"),
    (dict(verbose=-1), "verbose=-1"),
])
def test_bad_fit_arguments(kwargs, pattern):
    model = compiled_small()
    x, y = small_data(n=4)
    before = model.get_weights()
    with pytest.raises(ValueError, match=re.escape(pattern)):
        model.fit(x, y, **kwargs)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call", ["evaluate", "predict"])
@pytest.mark.parametrize("kwargs, pattern", [
    (dict(batch_size=0), "batch_size=0"),
    (dict(verbose=5), "verbose=5"),
])
def test_bad_evaluate_and_predict_arguments(call, kwargs, pattern):
    model = compiled_small()
    x, y = small_data(n=4)
    args = (x, y) if call == "evaluate" else (x,)
    with pytest.raises(ValueError, match=re.escape(pattern)):
        getattr(model, call)(*args, **kwargs)


@pytest.mark.parametrize("validation_data", [
    "data", [1, 2, 3], (np.zeros((3, 6)),), (np.zeros((3, 6)), np.zeros(3), np.ones(3), 4),
], ids=["string", "list3", "tuple1", "tuple4"])
def test_bad_validation_data_form(validation_data):
    model = compiled_small()
    x, y = small_data(n=4)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(x, y, validation_data=validation_data, verbose=0)


def test_bad_validation_data_contents():
    model = compiled_small()
    x, y = small_data(n=4)
    with pytest.raises(ValueError, match=r"validation_data x.*\(3, 5\)"):
        model.fit(x, y, validation_data=(np.zeros((3, 5)), np.zeros(3)), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data y"):
        model.fit(x, y, validation_data=(np.zeros((3, 6)), np.zeros(2)), verbose=0)
    with pytest.raises(ValueError, match=r"validation_data y.*\[0, 3\)"):
        model.fit(x, y, validation_data=(np.zeros((3, 6)), np.array([0, 1, 3])), verbose=0)


def test_bad_callbacks():
    model = compiled_small()
    x, y = small_data(n=4)
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, callbacks=[print], verbose=0)


def test_loss_and_optimizer_instances_are_used_as_given():
    model = compiled_small(optimizer=optimizers.SGD(learning_rate=0.5),
                           loss=losses.SparseCategoricalCrossentropy())
    assert model.optimizer.learning_rate == 0.5
    assert isinstance(model.loss, losses.SparseCategoricalCrossentropy)


def test_activation_layer_at_the_end_uses_the_fused_loss_path():
    x, y = small_data(n=30)
    set_random_seed(2)
    a = Sequential([Dense(3, input_shape=(6,)), Activation("softmax")])
    set_random_seed(2)
    b = Sequential([Dense(3, activation="softmax", input_shape=(6,))])
    for model in (a, b):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
