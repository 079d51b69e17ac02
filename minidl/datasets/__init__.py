"""Data sets, loaded as numpy arrays the way `keras.datasets` loads them.

    (x_train, y_train), (x_test, y_test) = minidl.datasets.mnist.load_data()

- `mnist`: full MNIST from the cache or a download, or the 5,000-digit sample shipped with
  the package (the default when the full set is absent, so it works offline).
- `fashion_mnist`: Fashion-MNIST from the cache, Debian's `dataset-fashion-mnist` package,
  or a download.
- `imdb`: IMDB movie-review sentiment as word indices, from the cache or a download.
- `austen`: paragraphs of two Jane Austen novels labelled by novel, shipped with the
  package (offline text classification).

Downloads are SHA-256 verified and kept in `cache_dir()`: `$MINIDL_HOME/datasets`, else
`~/.minidl/datasets`. `read_idx` / `write_idx` handle the IDX files these data sets use.
"""
from minidl.datasets import fashion_mnist, mnist
from minidl.datasets import austen, imdb
from minidl.datasets._files import DatasetUnavailableError, cache_dir
from minidl.datasets._idx import read_idx, write_idx

__all__ = ["mnist", "fashion_mnist", "cache_dir", "DatasetUnavailableError", "read_idx",
           "write_idx"]
__all__ += ["austen", "imdb"]
