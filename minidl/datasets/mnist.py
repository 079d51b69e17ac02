"""MNIST handwritten digits: the full set (cache or download) or the sample shipped with minidl.

`load_data()` must work on a machine with no network, so the package carries a 5,000-digit
sample and the default source falls back to it (with a warning) when the full set is not in
the cache. Only `source="full"` ever touches the network.
"""
import io
import warnings
from pathlib import Path

import numpy as np

from minidl.datasets._files import (DataFile, DatasetUnavailableError, cache_dir, download,
                                    read_verified)
from minidl.datasets._splits import IDX_NAMES, check_splits, has_all, load_idx_splits

SOURCES = ("auto", "sample", "full")

# The file Keras downloads (keras/src/datasets/mnist.py), so a Keras user's
# ~/.keras/datasets/mnist.npz can be copied over as it is.
_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_NPZ = DataFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")

# The original distribution's four IDX files (as torchvision and others keep them). They are
# accepted when placed in the cache by hand; downloads fetch the npz above.
_IDX = tuple(DataFile(name, sha256) for name, sha256 in zip(IDX_NAMES, (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)))

# The sample shipped in minidl/datasets/data/ (see the README there).
_SAMPLE_DIR = Path(__file__).parent / "data"
_SAMPLE = tuple(DataFile(name, sha256) for name, sha256 in zip(IDX_NAMES, (
    "3cc5bb7043e720a722a64b7e54c2c1a232a6ab780c9097933e6e5fe18b9dec25",
    "35769c535943d2abda98bf00e7d3e9e19b476b8e583377edc9fc3ff5a1011531",
    "ee8aafa868ccb4ffb7949261d2cbae2dd0b6fab31edb7433c7188de856a8b5f1",
    "5f80ea9bcc50fb0131f8d03d85eb69d8fca9428a44f4ee6cb38542009faddf12",
)))


def load_data(source="auto", path=None):
    """Loads the MNIST dataset of handwritten digits.

    The full set has 60,000 training and 10,000 test images. minidl also ships a
    5,000-digit sample (4,000 training images, 400 per class; 1,000 test images, 100 per
    class) so that this function works with no network.

    Args:
        source: which data to load.
            - `"auto"` (default): the full set if it is already on disk (in the cache
              directory, or in `path`), else the shipped sample, with a warning that says
              how to get the full set. Never downloads.
            - `"full"`: the full set; downloads `mnist.npz` (11 MB, SHA-256 verified) into
              the cache directory when it is not there yet.
            - `"sample"`: always the shipped sample.
        path: where the full set lives, instead of the cache directory
            (`$MINIDL_HOME/datasets/mnist`, else `~/.minidl/datasets/mnist`). Either a
            directory holding `mnist.npz` (the file Keras uses) or the four original IDX
            files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
            `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`), or the path of an
            `.npz` file. Relative paths are relative to the working directory.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`. Images are `uint8`
        of shape `(n, 28, 28)`, pixel values 0-255; labels are `uint8` of shape `(n,)`,
        digits 0-9.

    Raises:
        ValueError: `source` is unknown, `path` is given with `source="sample"`, or a file
            on disk fails its SHA-256 check or is malformed (the message names the file).
        DatasetUnavailableError: `source="full"`, the full set is not on disk and cannot
            be downloaded. The message says which files to place where.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = minidl.datasets.mnist.load_data()
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    ```

    License:
        MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, derived from
        NIST data, and licensed under CC BY-SA 3.0
        (https://creativecommons.org/licenses/by-sa/3.0/).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, SOURCES))}. "
                         f"Received: source={source!r}")
    if source == "sample":
        if path is not None:
            raise ValueError(f"path selects where the full set lives; it has no meaning with "
                             f"source='sample'. Received: path={path!r}")
        return load_idx_splits(_SAMPLE_DIR, _SAMPLE)

    npz, directory = _locate(path)
    if npz.is_file():
        return _load_npz(npz)
    if directory is not None and has_all(directory, _IDX):
        return load_idx_splits(directory, _IDX)

    if source == "auto":
        warnings.warn(f"Full MNIST not found in {directory or npz}; using the 5,000-digit "
                      f"sample shipped with minidl (4,000 train / 1,000 test). For all 70,000 "
                      f"digits call mnist.load_data(source='full') once while online, or "
                      f"place mnist.npz there.", UserWarning, stacklevel=2)
        return load_idx_splits(_SAMPLE_DIR, _SAMPLE)

    try:
        download(_ORIGIN + _NPZ.name, npz, _NPZ.sha256)
    except DatasetUnavailableError as exc:
        raise DatasetUnavailableError(f"{exc}\n{_offline_help(npz, directory)}") from exc
    return _load_npz(npz)


def _locate(path):
    """(npz file, directory that may hold the IDX files, or None) for `path`."""
    if path is None:
        directory = cache_dir() / "mnist"
        return directory / _NPZ.name, directory
    path = Path(path).expanduser()
    if path.suffix == ".npz":
        return path, None
    return path / _NPZ.name, path


def _load_npz(path):
    # Hash and parse the same bytes, so the file cannot change between check and use.
    data = read_verified(path, _NPZ)
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        keys = ("x_train", "y_train", "x_test", "y_test")
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}. Received: {archive.files}")
        arrays = [archive[key] for key in keys]
    return check_splits(*arrays, source=path)


def _offline_help(npz, directory):
    lines = ["Full MNIST is not on this machine and could not be downloaded. To install it "
             "by hand, place",
             f"  {npz}  (from {_ORIGIN}{_NPZ.name}, SHA-256 {_NPZ.sha256}; the "
             f"~/.keras/datasets/mnist.npz of a Keras installation is the same file)"]
    if directory is not None:
        lines.append(f"or the four IDX files {', '.join(IDX_NAMES)} in {directory}/")
    lines.append("Or call mnist.load_data(source='sample') for the 5,000-digit sample shipped "
                 "with minidl.")
    return "\n".join(lines)
