"""String inputs through models: Input(shape=(), dtype="string") and (1,), fit / evaluate /
predict on object arrays, unicode arrays and lists of str, streams of string batches, and
the errors when strings and numbers meet the wrong input."""
import numpy as np
import pytest

import minidl
from minidl import layers

TEXTS = np.array(["good movie", "bad film", "great great fun", "awful bad plot",
                  "good fun", "bad bad"], dtype=object)
LABELS = np.array([1, 0, 1, 0, 1, 0], dtype=np.float32)


def text_model(shape=()):
    vectorizer = layers.TextVectorization(output_mode="multi_hot")
    vectorizer.adapt(TEXTS)
    inputs = layers.Input(shape=shape, dtype="string")
    outputs = layers.Dense(1, activation="sigmoid",
                           kernel_initializer="ones")(vectorizer(inputs))
    model = minidl.Model(inputs, outputs)
    return model, vectorizer


def reference(vectorizer, model, texts):
    """The model's output computed by hand: the vectorizer's encoding through the Dense."""
    kernel, bias = model.layers[-1].get_weights()
    z = np.asarray(vectorizer(texts).value) @ kernel + bias
    return 1.0 / (1.0 + np.exp(-z))


def test_input_accepts_string_dtype_and_scalar_shape():
    x = layers.Input(shape=(), dtype="string")
    assert x.shape == (None,) and x.dtype == "string"
    y = layers.Input(shape=(1,), dtype="string")
    assert y.shape == (None, 1)
    config = x._keras_history.operation.get_config()
    assert config["batch_shape"] == [None] and config["dtype"] == "string"
    assert layers.InputLayer.from_config(config).output.shape == (None,)
    with pytest.raises(ValueError, match="dtype"):
        layers.Input(shape=(), dtype="text")


@pytest.mark.parametrize("as_given", [
    lambda t: t,                                   # object array of str
    lambda t: t.astype(str),                       # numpy unicode array
    lambda t: list(t),                             # list of str
    lambda t: np.array([s.encode() for s in t]),   # bytes, read as UTF-8
])
def test_predict_on_every_string_container(as_given):
    model, vectorizer = text_model()
    expected = reference(vectorizer, model, TEXTS)
    np.testing.assert_allclose(model.predict(as_given(TEXTS), verbose=0), expected,
                               rtol=1e-6)


def test_fit_shuffles_string_batches_and_evaluates():
    model, vectorizer = text_model(shape=(1,))
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x = TEXTS[:, None]
    history = model.fit(x, LABELS, batch_size=4, epochs=3, shuffle=True, verbose=0)
    assert len(history.history["loss"]) == 3
    # After training, predict and evaluate agree with the model's own weights.
    predicted = model.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(predicted, reference(vectorizer, model, x), rtol=1e-5)
    p = np.clip(predicted[:, 0].astype(np.float64), 1e-7, 1 - 1e-7)
    bce = -np.mean(LABELS * np.log(p) + (1 - LABELS) * np.log(1 - p))
    assert model.evaluate(x, LABELS, verbose=0) == pytest.approx(bce, rel=1e-4)
    # A rank-1 array feeds the (1,) input (Keras' rank adjustment).
    np.testing.assert_allclose(model.predict(TEXTS, verbose=0), predicted, rtol=1e-6)


def test_seeded_fit_is_reproducible_with_string_inputs():
    def run():
        minidl.utils.set_random_seed(3)
        model, _ = text_model()
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(TEXTS, LABELS, batch_size=2, epochs=2, verbose=0)
        return model.predict(TEXTS, verbose=0)
    np.testing.assert_array_equal(run(), run())


def test_streams_of_string_batches():
    model, vectorizer = text_model()
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    batches = [(TEXTS[i:i + 2], LABELS[i:i + 2]) for i in range(0, 6, 2)]
    model.fit(iter(batches), epochs=1, verbose=0)
    dataset = minidl.utils.Dataset.from_tensor_slices((TEXTS, LABELS)).batch(3)
    model.fit(dataset, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(iter([b[0] for b in batches]), verbose=0),
                               reference(vectorizer, model, TEXTS), rtol=1e-6)


def test_model_call_on_strings_and_embedding_free_int_path():
    model, vectorizer = text_model()
    np.testing.assert_allclose(np.asarray(model(TEXTS).value),
                               reference(vectorizer, model, TEXTS), rtol=1e-6)
    # StringLookup -> CategoryEncoding-like output inside a model, int64 ids on the way.
    lookup = layers.StringLookup(vocabulary=["a", "b"], output_mode="count")
    inputs = layers.Input(shape=(3,), dtype="string")
    model = minidl.Model(inputs, lookup(inputs))
    np.testing.assert_array_equal(model.predict(np.array([["a", "b", "b"]]), verbose=0),
                                  [[0, 1, 2]])
    ids = layers.StringLookup(vocabulary=["a", "b"])
    inputs = layers.Input(shape=(2,), dtype="string")
    out = ids(inputs)
    assert out.dtype == "int64"
    np.testing.assert_array_equal(minidl.Model(inputs, out).predict(
        np.array([["b", "q"]]), verbose=0), [[2, 0]])


def test_strings_and_numbers_meeting_the_wrong_input():
    model, _ = text_model()
    with pytest.raises(TypeError, match="strings"):
        model.predict(np.array([1.0, 2.0]), verbose=0)
    with pytest.raises(TypeError, match="strings"):
        model.predict(np.array(["ok", 3], dtype=object), verbose=0)
    numeric = minidl.Sequential([layers.Input((2,)), layers.Dense(1)])
    with pytest.raises(TypeError, match="numbers"):
        numeric.predict(np.array([["a", "b"]]), verbose=0)
    # A text layer on a numeric input, or a numeric layer on strings, fails when the
    # graph is built.
    with pytest.raises(TypeError, match="string"):
        layers.TextVectorization(vocabulary=["a"])(layers.Input((1,)))
    with pytest.raises(TypeError, match="int64"):
        layers.IntegerLookup(vocabulary=[1])(layers.Input((1,), dtype="string"))


def test_text_to_masked_embedding_average():
    # TextVectorization's padding (0) masked by Embedding(mask_zero=True): the average
    # covers each text's own tokens only.
    vectorizer = layers.TextVectorization(vocabulary=["a", "b", "c"], output_sequence_length=4)
    embedding = layers.Embedding(5, 2, mask_zero=True)
    inputs = layers.Input(shape=(), dtype="string")
    model = minidl.Model(inputs, layers.GlobalAveragePooling1D()(embedding(vectorizer(inputs))))
    table = embedding.get_weights()[0]
    got = model.predict(np.array(["a b", "c", "a b c q"], dtype=object), verbose=0)
    np.testing.assert_allclose(got, [table[[2, 3]].mean(0), table[4],
                                     table[[2, 3, 4, 1]].mean(0)], rtol=1e-6)
