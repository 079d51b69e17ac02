"""StringLookup, IntegerLookup, Hashing and TextVectorization against the examples of
Keras' docstrings (their outputs are TensorFlow's), the published hash values they rest
on, round trips through configs and saved models, and bad input."""
import numpy as np
import pytest

import minidl
from minidl import layers
from minidl.layers.preprocessing.string_hash import fingerprint64, hash_buckets, siphash64

VOCAB = ["a", "b", "c", "d"]
DATA = [["a", "c", "d"], ["d", "z", "b"]]
DATA4 = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]


def values(tensor):
    return np.asarray(tensor.value if hasattr(tensor, "value") else tensor)


# ---- hashes ----

# FarmHash's own test strings with the farmhashna::Hash64 (= Fingerprint64) values that the
# Go port dgryski/go-farm publishes, one per length class of the algorithm.
FARMHASH_NA = [
    ("", 0x9ae16a3b2f90404f), ("a", 0xb3454265b6df75e3), ("abcd", 0x1a5502de4a1f8101),
    ("abcdefgh", 0xfee9d22990c82909), ("0123456789=012345", 0x46a7416ed4861e3b),
    ("C is as portable as Stonehedge!!", 0xb944f8a16261e414),
    ("Discard medicine more than two years old.", 0xe8f89ab6df9bdd25),
    ("For every action there is an equal and opposite government program.",
     0x55182f8859eca4ce),
    ("The fugacity of a constituent in a mixture of gases at a given temperature is "
     "proportional to its mole fraction.  Lewis-Randall Rule", 0x98eff6958c5e91a),
    ("0123456789%0123456789\u00a3", 0x4dbd128af51d77e8),
]


@pytest.mark.parametrize("text,expected", FARMHASH_NA)
def test_fingerprint64_matches_farmhash(text, expected):
    assert fingerprint64(text.encode("utf-8")) == expected


def test_fingerprint64_matches_tensorflow():
    # tensorflow/core/platform/fingerprint_test.cc, and tf.strings.to_hash_bucket_fast's
    # docstring example.
    assert fingerprint64(b"Hello") == 15404698994557526151
    assert fingerprint64(b"World") == 18308117990299812472
    buckets = hash_buckets(np.array(["Hello", "TensorFlow", "2.x"], object), 3)
    np.testing.assert_array_equal(buckets, [0, 2, 2])


def test_siphash_matches_tensorflow_and_reference():
    # tf.strings.to_hash_bucket_strong(["Hello", "TF"], 3, [1, 2]) -> [2, 0]
    np.testing.assert_array_equal(hash_buckets(np.array(["Hello", "TF"], object), 3, [1, 2]),
                                  [2, 0])
    # SipHash-2-4 reference vector (Aumasson & Bernstein): key 00..0f, message 00..0e.
    key = (int.from_bytes(bytes(range(8)), "little"),
           int.from_bytes(bytes(range(8, 16)), "little"))
    assert siphash64(key, bytes(range(15))) == int.from_bytes(
        bytes.fromhex("e545be4961ca29a1"), "little")
    assert siphash64(key, b"") == int.from_bytes(bytes.fromhex("310e0edd47db6f72"), "little")


# ---- Hashing ----

INP = [["A"], ["B"], ["C"], ["D"], ["E"]]


@pytest.mark.parametrize("kwargs,inputs,expected", [
    ({}, INP, [1, 0, 1, 1, 2]),
    ({"mask_value": ""}, [["A"], ["B"], [""], ["C"], ["D"]], [1, 1, 0, 2, 2]),
    ({"salt": [133, 137]}, INP, [1, 2, 1, 0, 2]),
    ({"salt": 133}, INP, [0, 0, 2, 1, 0]),
])
def test_hashing_keras_examples(kwargs, inputs, expected):
    out = values(layers.Hashing(num_bins=3, **kwargs)(inputs))
    assert out.dtype == np.int64 and out.shape == (5, 1)
    np.testing.assert_array_equal(out.ravel(), expected)


def test_hashing_integers_hash_as_decimal_strings_and_encodings():
    ints = np.array([[1], [22], [-3]])
    expected = hash_buckets(np.array([["1"], ["22"], ["-3"]], object), 5)
    np.testing.assert_array_equal(values(layers.Hashing(5)(ints)), expected)
    np.testing.assert_array_equal(values(layers.Hashing(5)(ints.astype(float) + 0.5)),
                                  hash_buckets(np.array([["1"], ["22"], ["-2"]], object), 5))
    one_hot = values(layers.Hashing(3, output_mode="one_hot")(INP))
    np.testing.assert_array_equal(one_hot, np.eye(3)[[1, 0, 1, 1, 2]])
    counts = values(layers.Hashing(3, output_mode="count")([["A", "C", "E", "E"]]))
    np.testing.assert_array_equal(counts, [[0, 2, 2]])


def test_hashing_bad_arguments():
    for bad in (0, -1, None, 2.5):
        with pytest.raises(ValueError, match="num_bins"):
            layers.Hashing(bad)
    with pytest.raises(ValueError, match="salt"):
        layers.Hashing(3, salt="x")
    with pytest.raises(ValueError, match="output_mode"):
        layers.Hashing(3, output_mode="tf_idf")
    with pytest.raises(ValueError, match="sparse"):
        layers.Hashing(3, sparse=True)


# ---- StringLookup ----

def test_string_lookup_keras_examples():
    np.testing.assert_array_equal(values(layers.StringLookup(vocabulary=VOCAB)(DATA)),
                                  [[1, 3, 4], [4, 0, 2]])
    layer = layers.StringLookup()
    layer.adapt(DATA)
    assert layer.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    np.testing.assert_array_equal(values(layer(DATA)), [[5, 3, 1], [1, 2, 4]])
    two_oov = layers.StringLookup(vocabulary=VOCAB, num_oov_indices=2)
    np.testing.assert_array_equal(values(two_oov([["a", "c", "d"], ["m", "z", "b"]])),
                                  [[2, 4, 5], [0, 1, 3]])
    one_hot = layers.StringLookup(vocabulary=VOCAB, output_mode="one_hot")
    np.testing.assert_array_equal(values(one_hot(["a", "b", "c", "d", "z"])),
                                  np.eye(5)[[1, 2, 3, 4, 0]])
    multi = layers.StringLookup(vocabulary=VOCAB, output_mode="multi_hot")
    np.testing.assert_array_equal(values(multi(DATA4)), [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    count = layers.StringLookup(vocabulary=VOCAB, output_mode="count")
    np.testing.assert_array_equal(values(count(DATA4)), [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])


def test_string_lookup_tf_idf_and_invert_examples():
    layer = layers.StringLookup(output_mode="tf_idf")
    layer.set_vocabulary(VOCAB, idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(values(layer(DATA4)), [[0, 0.25, 0, 0.6, 0.8],
                                                      [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    layer = layers.StringLookup(output_mode="tf_idf")
    layer.set_vocabulary(["[UNK]"] + VOCAB, idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(values(layer(DATA4)), [[0, 0.25, 0, 0.6, 0.8],
                                                      [1.8, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverse = layers.StringLookup(vocabulary=VOCAB, invert=True)
    out = values(inverse([[1, 3, 4], [4, 0, 2]]))
    assert out.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]
    forward = layers.StringLookup(vocabulary=VOCAB)
    assert values(inverse(forward(DATA))).tolist() == out.tolist()


def test_string_lookup_mask_token_and_special_tokens():
    layer = layers.StringLookup(vocabulary=VOCAB, mask_token="")
    assert layer.get_vocabulary() == ["", "[UNK]"] + VOCAB
    np.testing.assert_array_equal(values(layer([["a", "", "q"]])), [[2, 0, 1]])
    # In the other modes the mask token is dropped, and takes no index.
    multi = layers.StringLookup(vocabulary=VOCAB, mask_token="", output_mode="count")
    np.testing.assert_array_equal(values(multi([["a", "", "", "q"]])), [[1, 1, 0, 0, 0]])
    # A vocabulary may start with the special tokens, exactly as get_vocabulary gives them.
    again = layers.StringLookup(vocabulary=layer.get_vocabulary(), mask_token="")
    assert again.get_vocabulary() == layer.get_vocabulary()
    with pytest.raises(ValueError, match="mask"):
        layers.StringLookup(vocabulary=["a", ""], mask_token="")
    with pytest.raises(ValueError, match="repeated"):
        layers.StringLookup(vocabulary=["a", "b", "a"])
    with pytest.raises(ValueError, match="empty"):
        layers.StringLookup(vocabulary=[])
    with pytest.raises(ValueError, match="max_tokens"):
        layers.StringLookup(vocabulary=VOCAB, max_tokens=3)
    strict = layers.StringLookup(vocabulary=VOCAB, num_oov_indices=0)
    np.testing.assert_array_equal(values(strict(["a", "d"])), [0, 3])
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        strict(["a", "zz"])


def test_adapt_frequency_order_max_tokens_and_tf_idf():
    docs = ["x y y", "y z", "z w", "y"]
    tokens = [d.split() for d in docs]
    # Counts: y 4, z 2, x 1, w 1 -> y, z, then the ties in decreasing order: x, w.
    layer = layers.StringLookup(max_tokens=4)
    layer.adapt(np.array([t for row in tokens for t in row], object))
    assert layer.get_vocabulary() == ["[UNK]", "y", "z", "x"]
    assert layer.vocabulary_size() == 4
    tfidf = layers.TextVectorization(output_mode="tf_idf")
    tfidf.adapt(docs)
    vocab = tfidf.get_vocabulary()
    assert vocab == ["[UNK]", "y", "z", "x", "w"]
    df = np.array([3, 2, 1, 1], float)   # documents holding y, z, x, w
    idf = np.log(1 + 4 / (1 + df))
    expected_row = np.concatenate([[idf.mean()], idf * [2, 0, 1, 0]])   # q: one OOV
    np.testing.assert_allclose(values(tfidf(["x y y q"]))[0],
                               expected_row, rtol=1e-6)
    # The OOV and mask tokens never enter a learned vocabulary.
    layer = layers.StringLookup(mask_token="")
    layer.adapt([["[UNK]", "", "a", "a"]])
    assert layer.get_vocabulary() == ["", "[UNK]", "a"]
    with pytest.raises(ValueError, match="Cannot adapt"):
        layers.StringLookup(vocabulary=VOCAB).adapt(DATA)


def test_adapt_reads_batches_and_datasets():
    layer = layers.StringLookup()
    layer.adapt(iter([np.array([["a", "b"]], object), (np.array([["b"]], object), None)]))
    assert layer.get_vocabulary() == ["[UNK]", "b", "a"]
    dataset = minidl.utils.Dataset.from_tensor_slices(
        np.array(["the cat", "the dog", "a cat"], object)).batch(2)
    vectorizer = layers.TextVectorization()
    vectorizer.adapt(dataset)
    assert vectorizer.get_vocabulary() == ["", "[UNK]", "the", "cat", "dog", "a"]
    limited = layers.TextVectorization()
    limited.adapt(dataset, steps=1)
    assert limited.get_vocabulary() == ["", "[UNK]", "the", "dog", "cat"]


def test_text_layers_refuse_numbers_and_lookups_refuse_strings():
    with pytest.raises(TypeError, match="strings"):
        layers.StringLookup(vocabulary=VOCAB)(np.array([[1.0, 2.0]]))
    with pytest.raises(TypeError, match="strings"):
        layers.TextVectorization()(np.array([3, 4]))
    with pytest.raises(TypeError, match="strings"):
        layers.StringLookup(vocabulary=VOCAB)(np.array(["a", 3], object))
    with pytest.raises(TypeError, match="integers"):
        layers.IntegerLookup(vocabulary=[1, 2])(["a"])
    with pytest.raises(ValueError, match="integers"):
        layers.IntegerLookup(vocabulary=[1, 2])(np.array([1.5]))
    with pytest.raises(TypeError, match="strings"):
        layers.StringLookup().adapt(np.arange(4))
    with pytest.raises(ValueError, match="output_mode"):
        layers.StringLookup(output_mode="bag")
    with pytest.raises(ValueError, match="invert"):
        layers.StringLookup(invert=True, output_mode="count")
    with pytest.raises(ValueError, match="idf_weights"):
        layers.StringLookup(vocabulary=VOCAB, idf_weights=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="idf_weights"):
        layers.StringLookup(vocabulary=VOCAB, output_mode="tf_idf")
    with pytest.raises(ValueError, match="max_tokens"):
        layers.StringLookup(pad_to_max_tokens=True)
    with pytest.raises(RuntimeError, match="vocabulary"):
        layers.StringLookup(output_mode="multi_hot")(["a"])


# ---- IntegerLookup ----

def test_integer_lookup_keras_examples():
    vocab = [12, 36, 1138, 42]
    data = np.array([[12, 1138, 42], [42, 1000, 36]])
    np.testing.assert_array_equal(values(layers.IntegerLookup(vocabulary=vocab)(data)),
                                  [[1, 3, 4], [4, 0, 2]])
    layer = layers.IntegerLookup()
    layer.adapt(data)
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    np.testing.assert_array_equal(values(layer(data)), [[5, 2, 1], [1, 3, 4]])
    two_oov = layers.IntegerLookup(vocabulary=vocab, num_oov_indices=2)
    np.testing.assert_array_equal(values(two_oov(np.array([[12, 1138, 42], [37, 1000, 36]]))),
                                  [[2, 4, 5], [1, 0, 3]])
    masked = layers.IntegerLookup(vocabulary=vocab, mask_token=0)
    np.testing.assert_array_equal(values(masked(np.array([[12, 0, 7]]))), [[2, 0, 1]])
    inverse = layers.IntegerLookup(vocabulary=vocab, invert=True)
    np.testing.assert_array_equal(values(inverse(np.array([[1, 3, 4], [4, 0, 2]]))),
                                  [[12, 1138, 42], [42, -1, 36]])


def test_vocabulary_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\nd\n", encoding="utf-8")
    layer = layers.StringLookup(vocabulary=str(path))
    np.testing.assert_array_equal(values(layer(DATA)), [[1, 3, 4], [4, 0, 2]])
    # The config holds the tokens, never the path: loading reads no outside file.
    assert layer.get_config()["vocabulary"] == ["[UNK]"] + VOCAB
    with pytest.raises(ValueError, match="does not exist"):
        layers.StringLookup(vocabulary=str(tmp_path / "missing.txt"))


# ---- TextVectorization ----

def test_text_vectorization_keras_examples():
    layer = layers.TextVectorization(max_tokens=5000, output_mode="int",
                                     output_sequence_length=4)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    out = values(layer([["foo qux bar"], ["qux baz"]]))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[4, 1, 3, 0], [1, 2, 0, 0]])
    given = layers.TextVectorization(max_tokens=5000, output_sequence_length=4,
                                     vocabulary=["earth", "wind", "and", "fire"])
    assert given.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]


def test_standardize_and_split_as_tensorflow():
    layer = layers.TextVectorization(vocabulary=["hello", "world", "it's"],
                                     standardize="lower")
    # ASCII letters only are lowercased (tf.strings.lower without an encoding); split on
    # runs of ASCII whitespace; a no-break space is not whitespace there.
    np.testing.assert_array_equal(values(layer(["  HELLO\t\nWorld  It's"])), [[2, 3, 4]])
    strip = layers.TextVectorization(standardize="lower_and_strip_punctuation",
                                     vocabulary=["its", "é", "ok"])
    np.testing.assert_array_equal(values(strip(["It's, OK!! é É"])), [[2, 4, 3, 1]])
    from minidl.layers.preprocessing.text_vectorization import standardize_text
    punctuation = "".join(chr(c) for c in range(33, 127) if not chr(c).isalnum())
    assert standardize_text(np.array([punctuation], object),
                            "strip_punctuation")[0] == ""
    chars = layers.TextVectorization(split="character", standardize=None,
                                     vocabulary=["a", "b"])
    np.testing.assert_array_equal(values(chars(["ab a", "b"])), [[2, 3, 1, 2], [3, 0, 0, 0]])
    whole = layers.TextVectorization(split=None, vocabulary=["new york", "paris"],
                                     standardize="lower")
    np.testing.assert_array_equal(values(whole(["New York", "Rome", "paris"])), [2, 1, 3])


def test_ngrams_output_modes_and_shapes():
    layer = layers.TextVectorization(ngrams=2)
    layer.adapt(["a b c"])
    # Unigrams then bigrams, each in order; all counted once -> decreasing token order.
    assert layer.get_vocabulary() == ["", "[UNK]", "c", "b c", "b", "a b", "a"]
    np.testing.assert_array_equal(values(layer(["a b"])), [[6, 4, 5]])
    pairs = layers.TextVectorization(ngrams=(2,), vocabulary=["a b"])
    np.testing.assert_array_equal(values(pairs(["a b", "a"])), [[2], [0]])
    counts = layers.TextVectorization(output_mode="count", vocabulary=["a", "b"])
    np.testing.assert_array_equal(values(counts(["a a b z", ""])), [[1, 2, 1], [0, 0, 0]])
    padded = layers.TextVectorization(output_mode="multi_hot", vocabulary=["a", "b"],
                                      max_tokens=6, pad_to_max_tokens=True)
    np.testing.assert_array_equal(values(padded([["b"]])), [[0, 0, 1, 0, 0, 0]])
    short = layers.TextVectorization(vocabulary=["a"], output_sequence_length=2)
    np.testing.assert_array_equal(values(short(["a a a", "x"])), [[2, 2], [1, 0]])
    with pytest.raises(ValueError, match="last shape dimension"):
        short(np.array([["a", "b"]], object))
    with pytest.raises(ValueError, match="output_sequence_length"):
        layers.TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ValueError, match="ngrams"):
        layers.TextVectorization(ngrams=0)
    with pytest.raises(ValueError, match="ragged"):
        layers.TextVectorization(ragged=True)
    with pytest.raises(ValueError, match="standardize"):
        layers.TextVectorization(standardize="upper")


def test_callable_standardize_and_split():
    def upper(strings):
        return np.vectorize(str.upper, otypes=[object])(strings)

    layer = layers.TextVectorization(standardize=upper, split=lambda s: [t.split("-")
                                                                        for t in s],
                                     vocabulary=["A", "B"])
    np.testing.assert_array_equal(values(layer(["a-b-c"])), [[2, 3, 1]])
    with pytest.raises(ValueError, match="register"):
        layer.get_config()


# ---- configs and saving ----

@pytest.mark.parametrize("make", [
    lambda: layers.StringLookup(vocabulary=VOCAB, mask_token="", num_oov_indices=2),
    lambda: layers.IntegerLookup(vocabulary=[5, 7], output_mode="count"),
    lambda: layers.Hashing(7, salt=[3, 4], mask_value="x"),
    lambda: layers.TextVectorization(vocabulary=["a", "b"], ngrams=(1, 2),
                                     output_sequence_length=5),
])
def test_config_round_trip(make):
    layer = make()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    data = np.array([[5, 7, 9]]) if isinstance(layer, layers.IntegerLookup) else \
        np.array(["a b x", "b"], object) if isinstance(layer, layers.TextVectorization) \
        else np.array([["a", "x", "b"]], object)
    np.testing.assert_array_equal(values(clone(data)), values(layer(data)))


def test_adapted_vocabulary_and_idf_survive_saving(tmp_path):
    texts = np.array(["the good film", "the bad film", "good good fun", "bad end"], object)
    vectorizer = layers.TextVectorization(output_mode="tf_idf")
    vectorizer.adapt(texts)
    inputs = layers.Input(shape=(), dtype="string")
    model = minidl.Model(inputs, layers.Dense(2)(vectorizer(inputs)))
    path = str(tmp_path / "text.keras")
    model.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(texts, verbose=0),
                                  model.predict(texts, verbose=0))
    restored = loaded.layers[1]
    assert restored.get_vocabulary() == vectorizer.get_vocabulary()
    # An adapted layer stays adaptable after loading (its vocabulary was learned).
    restored.adapt(["new words only"])
    assert restored.get_vocabulary() == ["[UNK]", "words", "only", "new"]
