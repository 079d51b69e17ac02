"""Tests for minidl.datasets: the IDX parser, verification, downloads, and the loaders.

No test reaches the internet: every download goes to an HTTP server on 127.0.0.1 started
here, and an autouse fixture points the loaders' origins at a closed local port, so a test
that downloads by mistake fails fast instead of going online.
"""
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from minidl import datasets
from minidl.datasets import _files, _splits, fashion_mnist, mnist
from minidl.datasets import DatasetUnavailableError, read_idx, write_idx

SAMPLE_DIR = Path(mnist.__file__).parent / "data"
# From /work/shared/data/README.md, written down independently of the loader's table.
SAMPLE_SHA256 = {
    "t10k-images-idx3-ubyte.gz":
        "ee8aafa868ccb4ffb7949261d2cbae2dd0b6fab31edb7433c7188de856a8b5f1",
    "t10k-labels-idx1-ubyte.gz":
        "5f80ea9bcc50fb0131f8d03d85eb69d8fca9428a44f4ee6cb38542009faddf12",
    "train-images-idx3-ubyte.gz":
        "3cc5bb7043e720a722a64b7e54c2c1a232a6ab780c9097933e6e5fe18b9dec25",
    "train-labels-idx1-ubyte.gz":
        "35769c535943d2abda98bf00e7d3e9e19b476b8e583377edc9fc3ff5a1011531",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_DEBIAN_FASHION = all((DEBIAN_DIR / name).is_file() for name in _splits.IDX_NAMES)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty cache, no network, no Debian files unless a test asks for them."""
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "home"))
    dead = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setattr(mnist, "_ORIGIN", dead)
    monkeypatch.setattr(fashion_mnist, "_ORIGIN", dead)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "no-system-dir")


# --- a local HTTP server ----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}        # URL path -> bytes
    truncate = set()  # URL paths answered with a Content-Length longer than the body
    hang = set()      # URL paths never answered

    def do_GET(self):
        if self.path in self.hang:
            self.server.release.wait(10)
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 1000 * (self.path in self.truncate)))
        self.end_headers()
        self.wfile.write(body if self.path not in self.truncate else body[:len(body) // 2])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Serves `server.files` on 127.0.0.1 (port 0); `server.url` is its base URL."""
    handler = type("Handler", (_Handler,), {"files": {}, "truncate": set(), "hang": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.files, httpd.truncate, httpd.hang = handler.files, handler.truncate, handler.hang
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()


# --- IDX format ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", ">i2", "<i2", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = tmp_path / f"data-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    np.testing.assert_array_equal(read_idx(path.read_bytes(), name="x"), array)


def test_idx_layout_matches_the_format(tmp_path):
    """Bytes written by hand, as the format describes them, read back."""
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([3, 1, 4]))
    np.testing.assert_array_equal(read_idx(path), [3, 1, 4])
    path.write_bytes(b"\x00\x00\x0b\x02" + struct.pack(">II", 1, 2) + struct.pack(">hh", -2, 513))
    np.testing.assert_array_equal(read_idx(path), [[-2, 513]])
    write_idx(tmp_path / "w", np.array([[1.5]], dtype=np.float32))
    assert (tmp_path / "w").read_bytes() == b"\x00\x00\x0d\x02" + struct.pack(">IIf", 1, 1, 1.5)


def test_write_idx_gz_is_reproducible(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("array, match", [
    (np.zeros(3, dtype=np.int64), "array.dtype=int64"),
    (np.zeros(3, dtype=bool), "array.dtype=bool"),
    (np.array(5, dtype=np.uint8), r"array.shape=\(\)"),
    (np.zeros((1,) * 9, dtype=np.uint8), r"array.shape=\(1, 1, 1"),
])
def test_write_idx_rejects(tmp_path, array, match):
    with pytest.raises(ValueError, match=match):
        write_idx(tmp_path / "x", array)


HEADER_U8_1D = b"\x00\x00\x08\x01"
CORRUPT = {
    "empty": (b"", "truncated IDX header: 0 bytes"),
    "short magic": (b"\x00\x00\x08", "truncated IDX header: 3 bytes"),
    "wrong magic": (b"PK\x03\x04" + bytes(12), "not an IDX file: magic number 0x504b0304"),
    "one nonzero magic byte": (b"\x00\x01\x08\x01" + struct.pack(">I", 1) + b"\x00",
                               "magic number 0x00010801"),
    "unknown type code": (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00",
                          "unknown IDX type code 0x07"),
    "zero dimensions": (b"\x00\x00\x08\x00", "declares 0 dimensions"),
    "too many dimensions": (b"\x00\x00\x08\xff" + bytes(4 * 255), "declares 255 dimensions"),
    "truncated dims": (b"\x00\x00\x08\x03" + struct.pack(">I", 2),
                       "need 12 bytes of sizes, found 4"),
    "truncated data": (HEADER_U8_1D + struct.pack(">I", 10) + bytes(7),
                       r"truncated IDX data: header declares shape \(10,\).*found 7"),
    "truncated float data": (b"\x00\x00\x0e\x01" + struct.pack(">I", 2) + bytes(12),
                             r"\(16 bytes\), found 12"),
    "trailing bytes": (HEADER_U8_1D + struct.pack(">I", 2) + bytes(3), "size mismatch"),
    "absurd dimensions": (b"\x00\x00\x0e\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1,
                                                            2**32 - 1) + bytes(100),
                          r"shape \(4294967295, 4294967295, 4294967295\).*found 100"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_idx_rejects_corrupt_files(tmp_path, case, compress):
    content, match = CORRUPT[case]
    path = tmp_path / ("bad-idx.gz" if compress else "bad-idx")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=match):
        read_idx(path.read_bytes(), name="bytes-name")


def test_idx_absurd_gzip_header_allocates_only_what_is_there(tmp_path):
    """A tiny .gz whose header claims ~10**29 bytes fails fast with a size error."""
    path = tmp_path / "bomb-idx.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\xff" * 12 + bytes(1 << 20)))
    with pytest.raises(ValueError, match=r"truncated IDX data.*found 1048576"):
        read_idx(path)


@pytest.mark.parametrize("case", ["cut in half", "bad deflate data", "trailing garbage"])
def test_idx_rejects_damaged_gzip(tmp_path, case):
    good = gzip.compress(HEADER_U8_1D + struct.pack(">I", 4000) + bytes(range(250)) * 16)
    content = {
        "cut in half": good[:len(good) // 2],
        "bad deflate data": good[:10] + b"\xff" * 40 + good[50:],
        "trailing garbage": good + b"garbage!",
    }[case]
    path = tmp_path / "damaged-idx.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="damaged gzip stream") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- cache directory ----------------------------------------------------------------------


def test_cache_dir_uses_minidl_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_HOME", str(tmp_path / "mh"))
    assert datasets.cache_dir() == tmp_path / "mh" / "datasets"


@pytest.mark.parametrize("value", [None, ""])
def test_cache_dir_defaults_to_home(monkeypatch, tmp_path, value):
    if value is None:
        monkeypatch.delenv("MINIDL_HOME")
    else:
        monkeypatch.setenv("MINIDL_HOME", value)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert datasets.cache_dir() == tmp_path / "user" / ".minidl" / "datasets"


def test_cache_dir_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("MINIDL_HOME", "~/mh")
    assert datasets.cache_dir() == tmp_path / "user" / "mh" / "datasets"


# --- downloads ------------------------------------------------------------------------------


def leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir()) if Path(directory).exists() else []


def test_download_success(server, tmp_path):
    body = os.urandom(3 << 20)  # several chunks
    server.files["/f.bin"] = body
    dest = tmp_path / "cache" / "sub" / "f.bin"
    assert _files.download(server.url + "f.bin", dest, sha256(body)) == dest
    assert dest.read_bytes() == body
    assert leftovers(dest.parent) == ["f.bin"]


def test_download_replaces_existing_file_only_when_verified(server, tmp_path):
    server.files["/f.bin"] = b"new"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError):
        _files.download(server.url + "f.bin", dest, sha256(b"something else"))
    assert dest.read_bytes() == b"old"
    _files.download(server.url + "f.bin", dest, sha256(b"new"))
    assert dest.read_bytes() == b"new"


def test_download_sha_mismatch_discards_file(server, tmp_path):
    server.files["/f.bin"] = b"tampered"
    dest = tmp_path / "f.bin"
    expected = sha256(b"genuine")
    with pytest.raises(ValueError, match="SHA-256") as info:
        _files.download(server.url + "f.bin", dest, expected)
    message = str(info.value)
    assert expected in message and sha256(b"tampered") in message
    assert server.url + "f.bin" in message and "discarded" in message
    assert leftovers(tmp_path) == []


def test_download_server_down(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/f.bin"
    with pytest.raises(DatasetUnavailableError, match="Could not download " + url):
        _files.download(url, tmp_path / "f.bin", sha256(b""))
    assert leftovers(tmp_path) == []


def test_download_http_error(server, tmp_path):
    with pytest.raises(DatasetUnavailableError, match="404"):
        _files.download(server.url + "missing.bin", tmp_path / "f.bin", sha256(b""))
    assert leftovers(tmp_path) == []


def test_download_connection_closed_midway_leaves_nothing(server, tmp_path):
    body = os.urandom(100_000)
    server.files["/f.bin"] = body
    server.truncate.add("/f.bin")
    with pytest.raises(DatasetUnavailableError, match="Could not download"):
        _files.download(server.url + "f.bin", tmp_path / "f.bin", sha256(body))
    assert leftovers(tmp_path) == []


def test_download_timeout(server, tmp_path):
    server.hang.add("/slow.bin")
    with pytest.raises(DatasetUnavailableError, match="timed out"):
        _files.download(server.url + "slow.bin", tmp_path / "f.bin", sha256(b""), timeout=0.3)
    assert leftovers(tmp_path) == []


def test_read_verified_names_file_and_hashes(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"abc")
    spec = _files.DataFile("x.gz", "0" * 64)
    with pytest.raises(ValueError, match="SHA-256") as info:
        _files.read_verified(path, spec)
    assert str(path) in str(info.value) and sha256(b"abc") in str(info.value)
    assert "0" * 64 in str(info.value)


# --- the shipped MNIST sample -----------------------------------------------------------


def test_sample_files_are_the_documented_ones():
    for name, expected in SAMPLE_SHA256.items():
        assert sha256((SAMPLE_DIR / name).read_bytes()) == expected, name


def test_sample_shapes_dtypes_and_class_balance():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="sample")
    assert x_train.shape == (4000, 28, 28) and y_train.shape == (4000,)
    assert x_test.shape == (1000, 28, 28) and y_test.shape == (1000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert x_train.max() == 255 and x_train.min() == 0
    # Digits, not noise: the border is blank and the centre is inked.
    assert x_train[:, 0, :].mean() < 1 and x_train[:, 10:18, 10:18].mean() > 50


def test_auto_without_full_set_warns_and_returns_sample():
    with pytest.warns(UserWarning, match="source='full'") as record:
        (x_train, _), (x_test, _) = mnist.load_data()
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert str(datasets.cache_dir() / "mnist") in str(record[0].message)
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)


@pytest.mark.parametrize("source", ["Full", "mnist", None])
def test_mnist_rejects_unknown_source(source):
    with pytest.raises(ValueError, match=f"Received: source={source!r}"):
        mnist.load_data(source=source)


def test_mnist_sample_rejects_path(tmp_path):
    with pytest.raises(ValueError, match="Received: path="):
        mnist.load_data(source="sample", path=tmp_path)


# --- full MNIST, with small stand-in files --------------------------------------------------


def fake_splits(n_train=30, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return ((rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_train, dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
             rng.integers(0, 10, n_test, dtype=np.uint8)))


def write_npz(path, splits, **extra):
    (x_train, y_train), (x_test, y_test) = splits
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return sha256(path.read_bytes())


def write_idx_set(directory, splits):
    """Writes the four IDX files; returns DataFile specs with their hashes."""
    (x_train, y_train), (x_test, y_test) = splits
    directory.mkdir(parents=True, exist_ok=True)
    specs = []
    for name, array in zip(_splits.IDX_NAMES, (x_train, y_train, x_test, y_test)):
        write_idx(directory / name, array)
        specs.append(_files.DataFile(name, sha256((directory / name).read_bytes())))
    return tuple(specs)


def assert_splits_equal(got, want):
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        assert g.dtype == np.uint8
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("source", ["auto", "full"])
def test_mnist_reads_npz_from_cache(monkeypatch, recwarn, source):
    splits = fake_splits()
    digest = write_npz(datasets.cache_dir() / "mnist" / "mnist.npz", splits)
    monkeypatch.setattr(mnist, "_NPZ", _files.DataFile("mnist.npz", digest))
    assert_splits_equal(mnist.load_data(source=source), splits)
    assert [str(w.message) for w in recwarn.list] == []


@pytest.mark.parametrize("source", ["auto", "full"])
def test_mnist_reads_idx_files_from_cache(monkeypatch, recwarn, source):
    splits = fake_splits()
    specs = write_idx_set(datasets.cache_dir() / "mnist", splits)
    monkeypatch.setattr(mnist, "_IDX", specs)
    assert_splits_equal(mnist.load_data(source=source), splits)
    assert [str(w.message) for w in recwarn.list] == []


def test_mnist_path_as_directory_and_as_npz_file(monkeypatch, tmp_path):
    splits = fake_splits()
    digest = write_npz(tmp_path / "elsewhere" / "mnist.npz", splits)
    monkeypatch.setattr(mnist, "_NPZ", _files.DataFile("mnist.npz", digest))
    assert_splits_equal(mnist.load_data(source="full", path=tmp_path / "elsewhere"), splits)
    (tmp_path / "elsewhere" / "mnist.npz").rename(tmp_path / "renamed.npz")
    assert_splits_equal(mnist.load_data(source="full", path=str(tmp_path / "renamed.npz")),
                        splits)


@pytest.mark.parametrize("source", ["auto", "full"])
def test_mnist_cached_file_with_wrong_hash_is_an_error(source):
    path = datasets.cache_dir() / "mnist" / "mnist.npz"
    write_npz(path, fake_splits())
    with pytest.raises(ValueError, match="SHA-256") as info:
        mnist.load_data(source=source)
    assert str(path) in str(info.value) and mnist._NPZ.sha256 in str(info.value)


def test_mnist_npz_with_pickled_objects_is_refused(monkeypatch):
    path = datasets.cache_dir() / "mnist" / "mnist.npz"
    (x_train, _), (x_test, y_test) = fake_splits()
    path.parent.mkdir(parents=True)
    np.savez(path, x_train=x_train, y_train=np.array([{"a": 1}], dtype=object),
             x_test=x_test, y_test=y_test)
    monkeypatch.setattr(mnist, "_NPZ", _files.DataFile("mnist.npz", sha256(path.read_bytes())))
    with pytest.raises(ValueError, match="allow_pickle"):
        mnist.load_data(source="full")


@pytest.mark.parametrize("case, match", [
    ("missing key", r"missing arrays \['y_test'\]"),
    ("wrong image shape", r"train images must be uint8 of shape \(n, 28, 28\).*shape=\(30, 784\)"),
    ("label count", r"test labels must be uint8 of shape \(20,\).*shape=\(19,\)"),
    ("label range", "labels must lie in 0-9. Received: max label 10"),
    ("float images", "dtype=float32"),
])
def test_mnist_npz_content_is_checked(monkeypatch, case, match):
    (x_train, y_train), (x_test, y_test) = fake_splits()
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    if case == "missing key":
        del arrays["y_test"]
    elif case == "wrong image shape":
        arrays["x_train"] = x_train.reshape(30, 784)
    elif case == "label count":
        arrays["y_test"] = y_test[:19]
    elif case == "label range":
        arrays["y_train"] = np.full_like(y_train, 10)
    else:
        arrays["x_train"] = x_train.astype(np.float32)
    path = datasets.cache_dir() / "mnist" / "mnist.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **arrays)
    monkeypatch.setattr(mnist, "_NPZ", _files.DataFile("mnist.npz", sha256(path.read_bytes())))
    with pytest.raises(ValueError, match=match):
        mnist.load_data(source="full")


def test_mnist_full_downloads_once_then_uses_cache(server, monkeypatch, tmp_path, recwarn):
    splits = fake_splits()
    digest = write_npz(tmp_path / "served" / "mnist.npz", splits)
    server.files["/mnist.npz"] = (tmp_path / "served" / "mnist.npz").read_bytes()
    monkeypatch.setattr(mnist, "_ORIGIN", server.url)
    monkeypatch.setattr(mnist, "_NPZ", _files.DataFile("mnist.npz", digest))
    assert_splits_equal(mnist.load_data(source="full"), splits)
    assert leftovers(datasets.cache_dir() / "mnist") == ["mnist.npz"]
    del server.files["/mnist.npz"]  # a second download would now fail
    assert_splits_equal(mnist.load_data(source="full"), splits)
    assert_splits_equal(mnist.load_data(), splits)
    assert [str(w.message) for w in recwarn.list] == []


def test_mnist_full_download_with_wrong_hash(server, monkeypatch):
    server.files["/mnist.npz"] = b"not the real file"
    monkeypatch.setattr(mnist, "_ORIGIN", server.url)
    with pytest.raises(ValueError, match="discarded"):
        mnist.load_data(source="full")
    assert leftovers(datasets.cache_dir() / "mnist") == []


def test_mnist_full_offline_error_says_what_to_place_where():
    with pytest.raises(DatasetUnavailableError) as info:
        mnist.load_data(source="full")
    message = str(info.value)
    directory = datasets.cache_dir() / "mnist"
    assert str(directory / "mnist.npz") in message
    assert mnist._NPZ.sha256 in message
    assert all(name in message for name in _splits.IDX_NAMES)
    assert f"in {directory}/" in message
    assert "source='sample'" in message
    assert leftovers(directory) == []


# --- Fashion-MNIST --------------------------------------------------------------------------


def serve_idx_set(server, tmp_path, splits):
    specs = write_idx_set(tmp_path / "served", splits)
    for spec in specs:
        server.files["/" + spec.name] = (tmp_path / "served" / spec.name).read_bytes()
    return specs


def test_fashion_downloads_verified_files(server, monkeypatch, tmp_path, recwarn):
    splits = fake_splits(seed=1)
    specs = serve_idx_set(server, tmp_path, splits)
    monkeypatch.setattr(fashion_mnist, "_ORIGIN", server.url)
    monkeypatch.setattr(fashion_mnist, "_FILES", specs)
    assert_splits_equal(fashion_mnist.load_data(), splits)
    target = datasets.cache_dir() / "fashion-mnist"
    assert leftovers(target) == sorted(_splits.IDX_NAMES)
    server.files.clear()
    assert_splits_equal(fashion_mnist.load_data(source="full"), splits)
    assert [str(w.message) for w in recwarn.list] == []


def test_fashion_resumes_partial_cache(server, monkeypatch, tmp_path):
    splits = fake_splits(seed=2)
    specs = serve_idx_set(server, tmp_path, splits)
    target = datasets.cache_dir() / "fashion-mnist"
    target.mkdir(parents=True)
    (target / specs[0].name).write_bytes(server.files.pop("/" + specs[0].name))
    monkeypatch.setattr(fashion_mnist, "_ORIGIN", server.url)
    monkeypatch.setattr(fashion_mnist, "_FILES", specs)
    assert_splits_equal(fashion_mnist.load_data(), splits)


def test_fashion_download_into_path(server, monkeypatch, tmp_path):
    splits = fake_splits(seed=3)
    specs = serve_idx_set(server, tmp_path, splits)
    monkeypatch.setattr(fashion_mnist, "_ORIGIN", server.url)
    monkeypatch.setattr(fashion_mnist, "_FILES", specs)
    assert_splits_equal(fashion_mnist.load_data(path=tmp_path / "mine"), splits)
    assert leftovers(tmp_path / "mine") == sorted(_splits.IDX_NAMES)
    assert not datasets.cache_dir().exists()


def test_fashion_download_with_wrong_hash(server, monkeypatch, tmp_path):
    specs = serve_idx_set(server, tmp_path, fake_splits())
    server.files["/" + specs[1].name] = b"tampered"
    monkeypatch.setattr(fashion_mnist, "_ORIGIN", server.url)
    monkeypatch.setattr(fashion_mnist, "_FILES", specs)
    with pytest.raises(ValueError, match="SHA-256"):
        fashion_mnist.load_data()
    assert leftovers(datasets.cache_dir() / "fashion-mnist") == [specs[0].name]


def test_fashion_offline_error_names_package_and_cache():
    with pytest.raises(DatasetUnavailableError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert f"in {datasets.cache_dir() / 'fashion-mnist'}/" in message
    assert all(name in message for name in _splits.IDX_NAMES)


def test_fashion_accepts_recompressed_copy_by_payload_hash(monkeypatch, tmp_path):
    """Like Debian's package: same content, regzipped, so only the payload hash matches."""
    splits = fake_splits(seed=4)
    published = write_idx_set(tmp_path / "published", splits)
    system = tmp_path / "system"
    system.mkdir()
    specs = []
    for spec in published:
        payload = gzip.decompress((tmp_path / "published" / spec.name).read_bytes())
        (system / spec.name).write_bytes(gzip.compress(payload, compresslevel=1, mtime=12345))
        specs.append(spec._replace(payload_sha256=sha256(payload)))
    assert sha256((system / specs[0].name).read_bytes()) != specs[0].sha256
    monkeypatch.setattr(fashion_mnist, "_FILES", tuple(specs))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", system)
    assert_splits_equal(fashion_mnist.load_data(), splits)

    # Different content under the same name matches neither hash.
    bad = splits[0][1].copy()
    bad[0] = (bad[0] + 1) % 10
    write_idx(system / specs[1].name, bad)
    with pytest.raises(ValueError, match="SHA-256") as info:
        fashion_mnist.load_data()
    assert str(system / specs[1].name) in str(info.value)


def test_fashion_prefers_cache_over_system_dir(monkeypatch, tmp_path):
    cache_splits, system_splits = fake_splits(seed=5), fake_splits(seed=6)
    cache_specs = write_idx_set(datasets.cache_dir() / "fashion-mnist", cache_splits)
    write_idx_set(tmp_path / "system", system_splits)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "_FILES", cache_specs)
    assert_splits_equal(fashion_mnist.load_data(), cache_splits)


@pytest.mark.parametrize("source", ["sample", "Auto", ""])
def test_fashion_rejects_unknown_source(source):
    with pytest.raises(ValueError, match=f"Received: source={source!r}"):
        fashion_mnist.load_data(source=source)


@pytest.mark.skipif(not HAVE_DEBIAN_FASHION,
                    reason="needs Debian's dataset-fashion-mnist in /usr/share/datasets")
def test_fashion_from_debian_package(monkeypatch):
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", DEBIAN_DIR)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert not datasets.cache_dir().exists()  # read in place, nothing copied or downloaded
