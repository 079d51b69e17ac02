"""CSVLogger: one CSV row per epoch, as ``keras.callbacks.CSVLogger``."""
import collections.abc
import csv
import os

import numpy as np

from minidl.callbacks.callback import Callback


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file.

    The columns are 'epoch' (the index, from 0) and the sorted keys of the first epoch's
    logs; when the fit validates less often than every epoch, the 'val_' columns are
    included from the start and read 'NA' where no validation ran. In data-parallel
    training (:mod:`minidl.distributed`) rank 0 alone writes the file.

    Args:
        filename: path of the file, e.g. 'run/log.csv'.
        separator: the string between fields. Defaults to ','.
        append: continue an existing file (no second header; its columns are kept)
            instead of overwriting it. Defaults to False.

    Example:
        >>> model.fit(x, y, epochs=10, callbacks=[CSVLogger("training.log")])
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be a one-character string; received "
                             f"separator={separator!r}.")
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self.writer = None
        self.csv_file = None

    def on_train_begin(self, logs=None):
        self.keys = None
        self.writer = None
        from minidl.distributed.comm import is_writer
        self._writes = is_writer()   # data-parallel training: rank 0 alone writes
        if not self._writes:
            return
        header = None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f, delimiter=self.sep), None)
        self._existing_columns = header[1:] if header else None
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")

    def on_epoch_end(self, epoch, logs=None):
        if not getattr(self, "_writes", True):
            return
        logs = logs or {}
        if self.keys is None:
            if self._existing_columns is not None:
                self.keys = list(self._existing_columns)
            else:
                keys = set(logs)
                if getattr(self.model, "_fit_validates", False):
                    keys.update("val_" + name for name in self.model.metrics_names)
                self.keys = sorted(keys)
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep, lineterminator="\n")
            if self._existing_columns is None:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [_csv_value(logs.get(key, "NA")) for key in self.keys])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, collections.abc.Iterable) and np.ndim(value) > 0:
        return f"[{', '.join(map(str, value))}]"
    return value
