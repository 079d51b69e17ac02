"""IMDB movie-review sentiment, as ``keras.datasets.imdb``: from the cache, or a verified
download of the files Keras publishes.

25,000 training and 25,000 test reviews labelled positive (1) or negative (0), each a list
of word indices, a word's index being its frequency rank in the training set. The archive
stores the reviews as pickled lists; it is unpickled only after its bytes match the
published SHA-256 (and the same bytes are parsed), so no other file is ever unpickled.
"""
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from minidl.datasets import _files
from minidl.datasets._files import DataFile, DatasetUnavailableError, cache_dir, download

_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# keras/src/datasets/imdb.py: the archive's SHA-256, and the word index's MD5 (the only
# hash Keras publishes for that file).
_NPZ = DataFile("imdb.npz", "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f")
_WORD_INDEX = "imdb_word_index.json"
_WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3):
    """Loads the IMDB dataset of movie reviews labelled by sentiment.

    The steps and their order are Keras': both splits are shuffled with one
    ``numpy.random.RandomState(seed)`` (the training set first); every word index is
    offset by ``index_from`` and each review starts with ``start_char``; with ``maxlen``,
    reviews of ``maxlen`` indices or more (the start mark included) are dropped; then any
    index outside ``[skip_top, num_words)`` becomes ``oov_char`` (or is removed when
    ``oov_char`` is None). Index 0 is left for padding.

    Args:
        path: the archive's file name in the cache directory (`cache_dir()`:
            `$MINIDL_HOME/datasets`, else `~/.minidl/datasets`; Keras'
            ``~/.keras/datasets/imdb.npz`` is the same file), or an absolute path.
        num_words: int or None: keep the ``num_words - 1`` most frequent indices (indices
            below ``num_words``); others become ``oov_char``. None keeps every word.
        skip_top: indices below it (the most frequent words) become ``oov_char``.
        maxlen: int or None: drop the reviews whose length (with the start mark) is
            ``maxlen`` or more.
        seed: int, the seed of the shuffling.
        start_char: the index marking the start of a review (None: no mark).
        oov_char: the index standing for words cut by ``num_words`` / ``skip_top`` (None:
            such words are removed).
        index_from: the offset added to every word index.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: ``x_*`` lists of reviews, each a list of
        int indices; ``y_*`` int arrays of 0 / 1 labels.

    Raises:
        ValueError: the file on disk fails its SHA-256 check or is malformed, or
            ``maxlen`` leaves a split empty.
        DatasetUnavailableError: the file is not on disk and cannot be downloaded; the
            message says where to place it.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000)
        >>> x_train = minidl.utils.pad_sequences(x_train, maxlen=200)

    License:
        The Large Movie Review Dataset (Maas et al., ACL 2011,
        https://ai.stanford.edu/~amaas/data/sentiment/) is published for research use;
        cite the paper when you use it.
    """
    for name, value in (("num_words", num_words), ("maxlen", maxlen)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ValueError(f"imdb.load_data: `{name}` must be None or an int >= 0. "
                             f"Received: {name}={value!r}")
    for name, value in (("skip_top", skip_top), ("index_from", index_from)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"imdb.load_data: `{name}` must be an int >= 0. Received: "
                             f"{name}={value!r}")
    for name, value in (("start_char", start_char), ("oov_char", oov_char)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"imdb.load_data: `{name}` must be an int or None. Received: "
                             f"{name}={value!r}")
    archive = _npz_arrays(_locate(path, _NPZ.name))
    x_train, labels_train = archive["x_train"], archive["y_train"]
    x_test, labels_test = archive["x_test"], archive["y_test"]

    rng = np.random.RandomState(seed)
    order = np.arange(len(x_train))
    rng.shuffle(order)
    x_train, labels_train = x_train[order], labels_train[order]
    order = np.arange(len(x_test))
    rng.shuffle(order)
    x_test, labels_test = x_test[order], labels_test[order]

    def offset(reviews):
        head = [] if start_char is None else [start_char]
        return [head + [int(w) + index_from for w in review] for review in reviews]

    x_train, x_test = offset(x_train), offset(x_test)
    if maxlen:
        x_train, labels_train = _remove_long(maxlen, x_train, labels_train)
        x_test, labels_test = _remove_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, "
                             f"no sequence was kept. Increase maxlen.")
    reviews = x_train + x_test
    labels = np.concatenate([np.asarray(labels_train), np.asarray(labels_test)])
    if not num_words:
        num_words = max((max(review) for review in reviews if review), default=0)
    if oov_char is not None:
        reviews = [[w if skip_top <= w < num_words else oov_char for w in review]
                   for review in reviews]
    else:
        reviews = [[w for w in review if skip_top <= w < num_words] for review in reviews]
    split = len(x_train)
    return (reviews[:split], labels[:split]), (reviews[split:], labels[split:])


def get_word_index(path="imdb_word_index.json"):
    """The dict from words to their index in the IMDB data (before ``index_from``).

    Args:
        path: the file name in the cache directory, or an absolute path.

    Returns:
        A dict ``{word: index}``; index 1 is the most frequent word.

    Example:
        >>> index = imdb.get_word_index()
        >>> words = {i + 3: w for w, i in index.items()}   # load_data's index_from=3
        >>> " ".join(words.get(i, "?") for i in x_train[0][1:])
    """
    target = _locate(path, _WORD_INDEX)
    if not target.is_file():
        _download_md5(_ORIGIN + _WORD_INDEX, target, _WORD_INDEX_MD5)
    data = target.read_bytes()
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != _WORD_INDEX_MD5:
        raise ValueError(f"{target}: MD5 is {actual}, but the published {_WORD_INDEX} has "
                         f"{_WORD_INDEX_MD5}. The file is damaged or is not the expected "
                         f"file; delete or replace it.")
    return json.loads(data.decode("utf-8"))


def _locate(path, default):
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"`path` must be a file name or path. Received: path={path!r}")
    path = Path(path).expanduser()
    return path if path.is_absolute() else cache_dir() / path


def _npz_arrays(target):
    if not target.is_file():
        try:
            download(_ORIGIN + _NPZ.name, target, _NPZ.sha256)
        except DatasetUnavailableError as exc:
            raise DatasetUnavailableError(f"{exc}\n{_offline_help(target)}") from exc
    # Hash and parse the same bytes: only the published archive is unpickled.
    data = _files.read_verified(target, _NPZ)
    with np.load(io.BytesIO(data), allow_pickle=True) as archive:
        keys = ("x_train", "y_train", "x_test", "y_test")
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise ValueError(f"{target}: missing arrays {missing}. Received: {archive.files}")
        return {key: archive[key] for key in keys}


def _remove_long(maxlen, reviews, labels):
    """The reviews shorter than ``maxlen`` and their labels (Keras' remove_long_seq)."""
    kept = [(review, label) for review, label in zip(reviews, labels) if len(review) < maxlen]
    return [review for review, _ in kept], [label for _, label in kept]


def _download_md5(url, destination, md5):
    """``download`` for a file whose only published hash is an MD5."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                   suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _files._fetch(url, out, _files.DOWNLOAD_TIMEOUT)
        actual = hashlib.md5(Path(partial).read_bytes(), usedforsecurity=False).hexdigest()
        if actual != md5:
            raise ValueError(f"Downloaded {url} has MD5 {actual}, expected {md5}; the download "
                             f"was discarded.")
        os.replace(partial, destination)
    except DatasetUnavailableError as exc:
        _unlink(partial)
        raise DatasetUnavailableError(f"{exc}\n{_offline_help(destination)}") from exc
    except BaseException:
        _unlink(partial)
        raise


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _offline_help(target):
    return (f"The IMDB data is not on this machine and could not be downloaded. Place "
            f"{target.name} (from {_ORIGIN}{target.name}; the file of the same name in a "
            f"Keras installation's ~/.keras/datasets/ is the same) at {target}")
