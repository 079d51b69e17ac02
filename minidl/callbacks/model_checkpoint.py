"""ModelCheckpoint: save the model (or its weights) at the end of epochs, as
``keras.callbacks.ModelCheckpoint`` does (epoch-level saving only)."""
import math
import operator
import os
import warnings

from minidl.callbacks.callback import Callback
from minidl.callbacks.monitor import _check_mode, _metric_direction
from minidl.utils.progbar import print_msg


class ModelCheckpoint(Callback):
    """Save the model or its weights at the end of every epoch (or of the best ones).

    Each save is atomic (see :func:`minidl.saving.save_model`): a run killed while saving
    leaves the previous checkpoint intact.

    Args:
        filepath: path of the file; may hold ``str.format`` fields filled from the epoch
            number (counted from 1) and the epoch's logs, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.minidl"``.
        monitor: the log key compared by ``save_best_only``. Defaults to 'val_loss'.
        verbose: 1 prints a line at each save (or skipped save). Defaults to 0.
        save_best_only: save only when ``monitor`` improves on the best so far.
        save_weights_only: save with ``model.save_weights`` instead of ``model.save``.
        mode: 'min', 'max' or 'auto' (losses are minimised, accuracies maximised).
        initial_value_threshold: a value the monitored quantity must beat for the first
            save with ``save_best_only``.

    Example:
        >>> checkpoint = ModelCheckpoint("best.minidl", monitor="val_accuracy",
        ...                              save_best_only=True)
        >>> model.fit(x, y, epochs=10, validation_split=0.1, callbacks=[checkpoint])
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _check_mode("ModelCheckpoint", mode)
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self.monitor_op = None

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

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self._format_path(epoch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available; the "
                              f"logs hold {', '.join(sorted(logs))}. Skipping.", stacklevel=2)
                return
            if math.isnan(current) or not (self.best is None
                                           or self.monitor_op(current, self.best)):
                if self.verbose > 0:
                    print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                              f"{self.best:.5f}")
                return
            if self.verbose > 0:
                previous = "inf" if self.best is None else f"{self.best:.5f}"
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {previous} to "
                          f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _format_path(self, epoch, logs):
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as error:
            raise KeyError(f"ModelCheckpoint: filepath={self.filepath!r} names the field "
                           f"{error.args[0]!r}, which is not in the epoch's logs "
                           f"({', '.join(sorted(logs))}).") from None
