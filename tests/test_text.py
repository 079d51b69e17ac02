"""pad_sequences against Keras' documented outputs, the IMDB loader's Keras semantics on a
small synthetic archive (no network), the shipped Austen data set, and the text
classification example."""
import hashlib
import http.server
import io
import json
import socket
import threading

import numpy as np
import pytest

import minidl
from minidl.datasets import DatasetUnavailableError, austen, imdb
from minidl.examples import text_classification
from minidl.preprocessing.sequence import pad_sequences as legacy_pad_sequences
from minidl.utils import pad_sequences

SEQUENCES = [[1], [2, 3], [4, 5, 6]]


# ---- pad_sequences ----

def test_pad_sequences_keras_examples():
    out = pad_sequences(SEQUENCES)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, value=-1),
                                  [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, padding="post"),
                                  [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, maxlen=2),
                                  [[0, 1], [2, 3], [5, 6]])
    np.testing.assert_array_equal(pad_sequences(SEQUENCES, maxlen=2, truncating="post"),
                                  [[0, 1], [2, 3], [4, 5]])
    assert legacy_pad_sequences is pad_sequences


def test_pad_sequences_edge_cases():
    np.testing.assert_array_equal(pad_sequences([[], [1, 2]]), [[0, 0], [1, 2]])
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences(SEQUENCES, maxlen=0).shape == (3, 0)
    floats = pad_sequences([[0.5, 1.5]], maxlen=3, dtype="float32", value=np.nan)
    np.testing.assert_array_equal(floats, [[np.nan, 0.5, 1.5]])
    vectors = pad_sequences([np.ones((2, 3)), np.zeros((0, 3))], maxlen=3)
    assert vectors.shape == (2, 3, 3) and vectors[0, 0].sum() == 0 and vectors[0, 1:].all()
    words = pad_sequences([["a", "bb"], ["c"]], dtype=object, value="<pad>")
    assert words.tolist() == [["a", "bb"], ["<pad>", "c"]]
    unicode = pad_sequences([["abc"], []], dtype="<U3", value="")
    assert unicode.tolist() == [["abc"], [""]]


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="Padding type"):
        pad_sequences(SEQUENCES, padding="middle")
    with pytest.raises(ValueError, match="Truncating type"):
        pad_sequences(SEQUENCES, truncating="both")
    with pytest.raises(ValueError, match="dtype=object"):
        pad_sequences([["a"]], value="x")
    with pytest.raises(ValueError, match="non-iterable"):
        pad_sequences([[1], 2])
    with pytest.raises(ValueError, match="expected shape"):
        pad_sequences([np.ones((1, 2)), np.ones((1, 3))])
    with pytest.raises(ValueError, match="maxlen"):
        pad_sequences(SEQUENCES, maxlen=-1)
    with pytest.raises(ValueError, match="sequences"):
        pad_sequences(5)


# ---- imdb ----

TRAIN = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [2, 2], [11]]
TEST = [[3, 1], [12, 13, 14, 15], [5]]


def synthetic_archive():
    def reviews(rows):
        out = np.empty(len(rows), dtype=object)
        out[:] = [list(row) for row in rows]
        return out
    buffer = io.BytesIO()
    np.savez(buffer, x_train=reviews(TRAIN), y_train=np.array([1, 0, 1, 0, 1]),
             x_test=reviews(TEST), y_test=np.array([0, 1, 0]))
    return buffer.getvalue()


def keras_reference(num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1,
                    oov_char=2, index_from=3):
    """keras.datasets.imdb.load_data's steps, written out on the synthetic lists."""
    rng = np.random.RandomState(seed)
    order = np.arange(len(TRAIN))
    rng.shuffle(order)
    x_train, y_train = [TRAIN[i] for i in order], [[1, 0, 1, 0, 1][i] for i in order]
    order = np.arange(len(TEST))
    rng.shuffle(order)
    x_test, y_test = [TEST[i] for i in order], [[0, 1, 0][i] for i in order]
    head = [] if start_char is None else [start_char]
    x_train = [head + [w + index_from for w in x] for x in x_train]
    x_test = [head + [w + index_from for w in x] for x in x_test]
    if maxlen:
        kept = [(x, y) for x, y in zip(x_train, y_train) if len(x) < maxlen]
        x_train, y_train = [x for x, _ in kept], [y for _, y in kept]
        kept = [(x, y) for x, y in zip(x_test, y_test) if len(x) < maxlen]
        x_test, y_test = [x for x, _ in kept], [y for _, y in kept]
    xs = x_train + x_test
    num_words = num_words or max(max(x) for x in xs)
    if oov_char is not None:
        xs = [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    else:
        xs = [[w for w in x if skip_top <= w < num_words] for x in xs]
    return (xs[:len(x_train)], y_train), (xs[len(x_train):], y_test)


@pytest.fixture
def imdb_cache(tmp_path, monkeypatch):
    """The synthetic archive in an empty cache, accepted as the published file."""
    data = synthetic_archive()
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(imdb, "_NPZ", imdb._NPZ._replace(
        sha256=hashlib.sha256(data).hexdigest()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(imdb, "_ORIGIN", f"http://127.0.0.1:{port}/")   # nothing listens
    path = tmp_path / "home" / "datasets" / "imdb.npz"
    return path, data


@pytest.mark.parametrize("kwargs", [
    {}, {"num_words": 10}, {"skip_top": 5, "num_words": 12}, {"maxlen": 4},
    {"seed": 7, "start_char": None, "index_from": 0}, {"oov_char": None, "num_words": 9},
])
def test_imdb_load_data_follows_keras(imdb_cache, kwargs):
    path, data = imdb_cache
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(**kwargs)
    (ex_train, ey_train), (ex_test, ey_test) = keras_reference(**kwargs)
    assert x_train == ex_train and x_test == ex_test
    np.testing.assert_array_equal(y_train, ey_train)
    np.testing.assert_array_equal(y_test, ey_test)


def test_imdb_refuses_other_files_and_reports_offline(imdb_cache, tmp_path):
    path, data = imdb_cache
    with pytest.raises(DatasetUnavailableError, match="imdb.npz"):
        imdb.load_data()
    assert not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-1] + b"x")   # not the published bytes: never unpickled
    with pytest.raises(ValueError, match="SHA-256"):
        imdb.load_data()
    with pytest.raises(ValueError, match="no sequence was kept"):
        path.write_bytes(data)
        imdb.load_data(maxlen=2)
    with pytest.raises(ValueError, match="num_words"):
        imdb.load_data(num_words=-1)
    with pytest.raises(DatasetUnavailableError, match="imdb_word_index.json"):
        imdb.get_word_index()


def test_imdb_verified_download_and_word_index(imdb_cache, monkeypatch):
    path, data = imdb_cache
    index = json.dumps({"the": 1, "movie": 2}).encode()
    files = {"/imdb.npz": data, "/imdb_word_index.json": index}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(imdb, "_ORIGIN", f"http://127.0.0.1:{server.server_port}/")
        (x_train, _), _ = imdb.load_data()
        assert path.read_bytes() == data and x_train == keras_reference()[0][0]
        monkeypatch.setattr(imdb, "_WORD_INDEX_MD5", hashlib.md5(index).hexdigest())
        assert imdb.get_word_index() == {"the": 1, "movie": 2}
        assert imdb.get_word_index() == {"the": 1, "movie": 2}   # from the cache now
        files["/imdb_word_index.json"] = b"{}"
        (path.parent / "imdb_word_index.json").unlink()
        with pytest.raises(ValueError, match="MD5"):
            imdb.get_word_index()
        assert not (path.parent / "imdb_word_index.json").exists()
    finally:
        server.shutdown()
        server.server_close()


# ---- austen and the example ----

def test_austen_load_data():
    (x_train, y_train), (x_test, y_test) = austen.load_data()
    assert x_train.dtype == object and x_train.shape == (1405,) and x_test.shape == (469,)
    assert y_train.dtype == np.int64 and set(np.unique(y_train)) == {0, 1}
    assert np.bincount(y_train).tolist() == [788, 617]
    assert np.bincount(y_test).tolist() == [279, 190]
    assert all(isinstance(t, str) and 20 <= len(t.split()) <= 80 for t in x_train)
    assert not set(x_train) & set(x_test)
    assert austen.CLASS_NAMES == ("Pride and Prejudice", "Sense and Sensibility")


@pytest.mark.usefixtures("one_thread")
def test_text_classification_example_learns():
    (x_train, y_train), (x_test, y_test) = austen.load_data()
    minidl.utils.set_random_seed(0)
    model, loss, accuracy, seconds = text_classification.train(
        x_train, y_train, x_test, y_test, model_kind="bow", epochs=3, verbose=0)
    assert accuracy >= 0.75, accuracy   # the classes are 59% / 41%
    assert np.isfinite(loss) and model.inputs[0].dtype == "string"


@pytest.mark.usefixtures("one_thread")
def test_text_classification_command_line(capsys):
    assert text_classification.main(["--model", "bow", "--epochs", "1", "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "1405 training and 469 test paragraphs" in out and "test accuracy" in out


@pytest.mark.usefixtures("one_thread")
def test_text_classification_embedding_model_learns():
    (x_train, y_train), (x_test, y_test) = austen.load_data()
    minidl.utils.set_random_seed(0)
    model, loss, accuracy, _ = text_classification.train(
        x_train, y_train, x_test, y_test, model_kind="embedding", epochs=30, verbose=0)
    assert accuracy >= 0.75, accuracy
    assert [type(layer).__name__ for layer in model.layers][1:4] == [
        "TextVectorization", "Embedding", "GlobalAveragePooling1D"]


@pytest.mark.usefixtures("one_thread")
def test_text_classification_lstm_model_learns():
    (x_train, y_train), (x_test, y_test) = austen.load_data()
    minidl.utils.set_random_seed(0)
    model, loss, accuracy, _ = text_classification.train(
        x_train, y_train, x_test, y_test, model_kind="lstm", epochs=3, verbose=0)
    assert accuracy >= 0.75, accuracy
    assert [type(layer).__name__ for layer in model.layers][1:4] == [
        "TextVectorization", "Embedding", "LSTM"]
