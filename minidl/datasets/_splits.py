"""The layout MNIST and Fashion-MNIST share: four IDX files, two splits, 28x28 uint8 images.

Both loaders end here, whatever the source (shipped sample, cache, system package, npz), so
every array handed to a user has passed the same shape and label checks.
"""
from pathlib import Path

import numpy as np

from minidl.datasets._files import read_verified
from minidl.datasets._idx import inflate_idx, read_idx

# Order of the DataFile tuples the loaders pass in: train images, train labels, test images,
# test labels. The names are those of the original MNIST distribution.
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def has_all(directory, specs):
    """True when every file of `specs` exists in `directory`."""
    return all((Path(directory) / spec.name).is_file() for spec in specs)


def load_idx_splits(directory, specs):
    """Verifies and reads four IDX files from `directory`.

    Args:
        directory: folder holding the files.
        specs: four `DataFile`s in `IDX_NAMES` order.

    Returns:
        `(x_train, y_train), (x_test, y_test)`, checked by `check_splits`.
    """
    arrays = []
    for spec in specs:
        path = Path(directory) / spec.name
        data = read_verified(path, spec, unpack=lambda raw: inflate_idx(raw, str(path)))
        arrays.append(read_idx(data, name=str(path)))
    return check_splits(*arrays, source=directory)


def check_splits(x_train, y_train, x_test, y_test, source):
    """Checks dtypes, shapes and label range; returns the usual Keras nesting.

    Args:
        x_train, y_train, x_test, y_test: the four arrays.
        source: where they came from, for error messages.

    Returns:
        `(x_train, y_train), (x_test, y_test)`.

    Raises:
        ValueError: an array is not uint8, images are not `(n, 28, 28)`, labels are not
            `(n,)` with the images' `n`, or a label is outside 0-9.
    """
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{source}: {split} images must be uint8 of shape (n, 28, 28). "
                             f"Received: dtype={images.dtype}, shape={images.shape}")
        if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
            raise ValueError(f"{source}: {split} labels must be uint8 of shape "
                             f"({images.shape[0]},) to match the images. "
                             f"Received: dtype={labels.dtype}, shape={labels.shape}")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise ValueError(f"{source}: {split} labels must lie in 0-{NUM_CLASSES - 1}. "
                             f"Received: max label {labels.max()}")
    return (x_train, y_train), (x_test, y_test)
