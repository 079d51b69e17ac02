"""Fashion-MNIST (Zalando Research): from the cache, Debian's package, or a verified download."""
from pathlib import Path

from minidl.datasets._files import DataFile, DatasetUnavailableError, cache_dir, download
from minidl.datasets._splits import IDX_NAMES, has_all, load_idx_splits

SOURCES = ("auto", "full")

# Where Debian's package dataset-fashion-mnist installs the four files.
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

# sha256: the archives as Zalando publishes them (and as _ORIGIN serves them).
# payload_sha256: their decompressed content. Debian regzips the files when it builds the
# package, which changes the archive hashes but not the content, so the package is verified
# through the payload hash.
_FILES = tuple(DataFile(name, sha256, payload) for name, (sha256, payload) in zip(IDX_NAMES, (
    ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
)))


def load_data(source="auto", path=None):
    """Loads the Fashion-MNIST dataset.

    60,000 training and 10,000 test grayscale images of 28x28 pixels in 10 classes of
    clothing (`CLASS_NAMES`), a drop-in replacement for MNIST. The files are looked for in
    the cache directory (`$MINIDL_HOME/datasets/fashion-mnist`, else
    `~/.minidl/datasets/fashion-mnist`), then in `/usr/share/datasets/fashion-mnist`
    (Debian and Ubuntu: `apt-get install dataset-fashion-mnist`), and are otherwise
    downloaded into the cache directory. Every file is checked against its published
    SHA-256 before it is read.

    Args:
        source: `"auto"` (default) or `"full"`; both load the full set. minidl ships no
            Fashion-MNIST sample; `"auto"` exists so that code can switch between
            `mnist` and `fashion_mnist` without changing arguments.
        path: a directory to use instead of the two above: the files are read from it, or
            downloaded into it.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`. Images are `uint8`
        of shape `(n, 28, 28)`, pixel values 0-255; labels are `uint8` of shape `(n,)`,
        class indices 0-9.

    Raises:
        ValueError: `source` is unknown, or a file on disk fails its SHA-256 check or is
            malformed (the message names the file).
        DatasetUnavailableError: the files are nowhere on disk and cannot be downloaded.
            The message says which package to install or which files to place where.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = minidl.datasets.fashion_mnist.load_data()
    print(fashion_mnist.CLASS_NAMES[y_train[0]])
    ```

    License:
        Fashion-MNIST is copyright Zalando SE, licensed under the MIT license
        (https://github.com/zalandoresearch/fashion-mnist/blob/master/LICENSE).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, SOURCES))}. "
                         f"Received: source={source!r}")
    target = Path(path).expanduser() if path is not None else cache_dir() / "fashion-mnist"
    for directory in ([target] if path is not None else [target, SYSTEM_DIR]):
        if has_all(directory, _FILES):
            return load_idx_splits(directory, _FILES)

    for spec in _FILES:
        # Files from an earlier, interrupted run are complete and verified (downloads are
        # atomic); fetch only the rest.
        if not (target / spec.name).is_file():
            try:
                download(_ORIGIN + spec.name, target / spec.name, spec.sha256)
            except DatasetUnavailableError as exc:
                raise DatasetUnavailableError(f"{exc}\n{_offline_help(target)}") from exc
    return load_idx_splits(target, _FILES)


def _offline_help(target):
    return (f"Fashion-MNIST is not on this machine and could not be downloaded. Either\n"
            f"  apt-get install dataset-fashion-mnist   (Debian/Ubuntu; installs the files "
            f"in {SYSTEM_DIR}/)\n"
            f"or place the four files {', '.join(IDX_NAMES)} (from {_ORIGIN}) in {target}/")
