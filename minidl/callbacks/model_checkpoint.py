"""ModelCheckpoint: save the model (or its weights) at the end of epochs, or every that many
batches, as ``keras.callbacks.ModelCheckpoint`` does."""
import math
import numbers
import operator
import os
import string
import warnings

import numpy as np

from minidl.callbacks.arguments import check_path
from minidl.callbacks.callback import Callback
from minidl.callbacks.monitor import _check_mode, _metric_direction
from minidl.utils.progbar import print_msg


class ModelCheckpoint(Callback):
    """Save the model or its weights at the end of every epoch (or every ``save_freq``
    batches), or only when the monitored quantity improves.

    Each save is atomic (see :func:`minidl.saving.save_model`): a run killed while saving
    leaves the previous checkpoint intact. The folders of ``filepath`` are created when
    missing. The format follows the name, as for ``model.save`` / ``model.save_weights``:
    '.keras' writes a Keras 3 archive, '.weights.h5' (with ``save_weights_only``) Keras 3's
    weights file, '.h5' Keras's legacy HDF5 layout (the Keras formats need h5py,
    ``pip install 'minidl[keras]'``), and any other name minidl's own format ('.minidl' is
    the convention), the one that resumes training exactly. Keras 3 accepts only '.keras'
    (or '.weights.h5' with ``save_weights_only``); minidl accepts its own names too. A
    '.keras' name with ``save_weights_only`` raises ValueError at the first save, since a
    '.keras' file holds a whole model.

    Args:
        filepath: path of the file; may hold ``str.format`` fields, filled from ``epoch``
            (counted from 1), ``batch`` (counted from 1 within the epoch; only with an int
            ``save_freq``) and the logs of the epoch (or of the batch), e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.minidl"``. A field the logs do not hold raises
            a KeyError naming it, when the save is due.
        monitor: the log key compared by ``save_best_only``. Defaults to 'val_loss'.
        verbose: 1 prints a line at each save (or skipped save). Defaults to 0.
        save_best_only: save only when ``monitor`` improves on the best value so far (a NaN
            never does). Without a ``{...}`` field in ``filepath``, each save replaces the
            previous best. When ``monitor`` is missing from the logs, the callback warns and
            saves, as Keras 3 does.
        save_weights_only: save with ``model.save_weights`` instead of ``model.save``.
        mode: 'min', 'max' or 'auto' (the loss is minimised, accuracies maximised; other
            metrics need 'min' or 'max' with ``save_best_only``). Defaults to 'auto'.
        save_freq: 'epoch' (save at the end of every epoch) or an int N >= 1: save after
            every N batches, counted across epochs (and across the ``fit`` calls the
            callback serves), and not at epoch ends. The batch logs hold the running loss
            and metrics of the epoch, and no 'val_' values. Defaults to 'epoch'.
        initial_value_threshold: with ``save_best_only``, the value the monitored quantity
            must beat for the first save (the best value until then). Defaults to None.

    Raises:
        ValueError: a bad argument (named in the message), or a ``filepath`` whose format
            is broken (a lone brace, a positional ``{}`` field); the direction of a custom
            metric cannot be inferred with ``mode='auto'`` (at the start of fit).
        KeyError: at a save, ``filepath`` names a field the logs do not hold.
        IsADirectoryError: at a save, the formatted ``filepath`` is an existing directory.

    Example:
        >>> checkpoint = ModelCheckpoint("ckpt/best.minidl", monitor="val_accuracy",
        ...                              save_best_only=True)
        >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[checkpoint])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        self.filepath = _check_filepath(filepath)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"ModelCheckpoint: monitor must be the name of a log value, a "
                             f"non-empty str; received monitor={monitor!r}.")
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode("ModelCheckpoint", mode)
        self.save_freq = _check_save_freq(save_freq)
        self.initial_value_threshold = _check_threshold(initial_value_threshold)
        self.best = self.initial_value_threshold
        self.monitor_op = None
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        if self.save_freq != "epoch":
            # A batch hook only for batch-level saving: a callback list skips the hooks no
            # callback overrides, and fit then builds no batch logs for this callback.
            self.on_train_batch_end = self._save_on_batch

    def on_train_begin(self, logs=None):
        direction = {"min": "down", "max": "up"}.get(self.mode)
        if direction is None:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            direction = "down" if name == "loss" else _metric_direction(self.model, name)
        if direction is None and self.save_best_only:
            raise ValueError(f"ModelCheckpoint received monitor={self.monitor!r} and cannot "
                             f"tell whether it should be maximized or minimized; pass "
                             f"mode='max' or mode='min'.")
        self.monitor_op = operator.gt if direction == "up" else operator.lt
        if self.best is None:   # Keras 3 starts from the worst value, so messages read 'inf'
            self.best = -math.inf if direction == "up" else math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs or {})

    def _save_on_batch(self, batch, logs=None):
        self._batches_seen_since_last_saving += 1
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save_model(self._current_epoch, batch, logs or {})

    def _save_model(self, epoch, batch, logs):
        from minidl.distributed.comm import is_writer
        if not is_writer():   # data-parallel training: rank 0 alone writes
            return
        path = self._format_path(epoch, batch, logs)
        if not self._should_save(epoch, logs, path):
            return
        if os.path.isdir(path):
            raise IsADirectoryError(f"Please specify a non-directory filepath for "
                                    f"ModelCheckpoint. Filepath used is an existing "
                                    f"directory: {path}")
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {path}")

    def _should_save(self, epoch, logs, path):
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {path}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available; the logs "
                          f"hold {', '.join(sorted(logs)) or 'nothing'}. Saving anyway, as "
                          f"Keras 3 does.", stacklevel=3)
            return True
        if np.ndim(current) > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. "
                          f"Received: {current}. Falling back to `save_best_only=False`.",
                          stacklevel=3)
            return True
        current = float(current)
        if math.isnan(current) or not self.monitor_op(current, self.best):
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
            return False
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
        self.best = current
        return True

    def _format_path(self, epoch, batch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            name = error.args[0]
            where = ("the batch's logs" if batch is not None else "the epoch's logs")
            hint = (" ('batch' is filled only with an int save_freq)"
                    if name == "batch" and batch is None else "")
            raise KeyError(f"ModelCheckpoint: filepath={self.filepath!r} names the field "
                           f"{name!r}, which is not in {where} ({', '.join(sorted(fields))})"
                           f"{hint}.") from None
        except (ValueError, TypeError) as error:
            raise ValueError(f"ModelCheckpoint: filepath={self.filepath!r} cannot be "
                             f"formatted with the values {fields!r}: {error}.") from None


def _check_filepath(filepath):
    path = check_path("ModelCheckpoint", "filepath", filepath)
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(path) if name is not None]
    except ValueError as error:
        raise ValueError(f"ModelCheckpoint: filepath={path!r} is not a valid format string "
                         f"({error}); double a brace ('{{{{' or '}}}}') to write it "
                         f"literally.") from None
    for name in fields:
        if name == "" or name.split(".")[0].split("[")[0].isdigit():
            raise ValueError(f"ModelCheckpoint: filepath={path!r} has a positional field "
                             f"'{{{name}}}'; name the value instead, e.g. '{{epoch:02d}}' or "
                             f"'{{val_loss:.2f}}'.")
    return path


def _check_save_freq(save_freq):
    if isinstance(save_freq, str) and save_freq == "epoch":
        return save_freq
    if (isinstance(save_freq, numbers.Integral) and not isinstance(save_freq, bool)
            and save_freq >= 1):
        return int(save_freq)
    raise ValueError(f"Unrecognized save_freq: {save_freq!r}. Expected save_freq are 'epoch' "
                     f"or an int >= 1 (save every that many batches).")


def _check_threshold(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"ModelCheckpoint: initial_value_threshold must be None or a number; "
                         f"received initial_value_threshold={value!r}.")
    return float(value)
