"""Paragraphs of two Jane Austen novels labelled by novel: a small text classification set
shipped with minidl, so that text examples and tests run offline.

See ``minidl/datasets/data/README.md`` for its source (Debian's ``r-cran-janeaustenr``),
licence (public domain texts, MIT-licensed package) and processing.
"""
import csv
import gzip
import io
from pathlib import Path

import numpy as np

from minidl.datasets._files import DataFile, read_verified

CLASS_NAMES = ("Pride and Prejudice", "Sense and Sensibility")

_FILE = DataFile("austen.tsv.gz",
                 "5f0e9b24f95aec9864147b5abbcb465a80149b8f8138961712cbd1a02bb5e140")
_PATH = Path(__file__).parent / "data" / _FILE.name


def load_data():
    """Loads 1,874 paragraphs of *Pride and Prejudice* and *Sense and Sensibility*.

    Each sample is one paragraph (20 to 80 words, as printed, punctuation and capitals
    kept); its label is the novel it comes from (`CLASS_NAMES`). The file ships with minidl
    and is checked against its SHA-256 before it is read.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`. Texts are object
        arrays of `str` (1,405 train, 469 test), ready for
        `layers.TextVectorization` or an `Input(shape=(), dtype="string")`; labels are
        `int64` arrays of 0 (*Pride and Prejudice*) and 1 (*Sense and Sensibility*).

    Raises:
        ValueError: the shipped file fails its SHA-256 check or is malformed.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = minidl.datasets.austen.load_data()
    print(austen.CLASS_NAMES[y_train[0]], x_train[0][:60])
    ```

    License:
        The novels are in the public domain; the package the paragraphs were taken from
        (janeaustenr, by Julia Silge) is under the MIT licence.
    """
    text = gzip.decompress(read_verified(_PATH, _FILE)).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != ["split", "label", "text"] or \
            any(len(row) != 3 or row[0] not in ("train", "test") for row in rows[1:]):
        raise ValueError(f"{_PATH}: not a split/label/text table; the file is damaged.")
    splits = []
    for name in ("train", "test"):
        chosen = [row for row in rows[1:] if row[0] == name]
        texts = np.empty(len(chosen), dtype=object)
        texts[:] = [row[2] for row in chosen]
        splits.append((texts, np.array([int(row[1]) for row in chosen], dtype=np.int64)))
    return tuple(splits)
