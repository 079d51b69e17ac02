"""Callbacks that act on the training's progress: EarlyStopping, ReduceLROnPlateau,
LearningRateScheduler and TerminateOnNaN (Keras 3 arguments, defaults and decisions).

A monitored key missing from the logs gives a warning, as in Keras, not an exception: a typo
in ``monitor`` must not end a long run, but it must not pass silently either.
"""
import math
import numbers
import operator
import warnings

from minidl.callbacks.callback import Callback
from minidl.optimizers import SCHEDULE_NOT_SETTABLE
from minidl.schedules import LearningRateSchedule
from minidl.utils.progbar import print_msg


def _check_int(owner, name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}; received "
                         f"{name}={value!r}.")
    return int(value)


def _check_real(owner, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number; received {name}={value!r}.")
    return float(value)


def _check_mode(owner, mode):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode {mode!r} is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _metric_direction(model, name):
    """'up' or 'down' for the compiled metric called ``name``, or None if unknown."""
    from minidl import metrics as m
    for metric in getattr(model, "metrics", None) or []:
        if metric.name != name:
            continue
        direction = getattr(metric, "_direction", None)
        if direction is not None:
            return direction
        if isinstance(metric, (m.Accuracy, m.BinaryAccuracy, m.CategoricalAccuracy,
                               m.SparseCategoricalAccuracy, m.TopKCategoricalAccuracy,
                               m.SparseTopKCategoricalAccuracy)):
            return "up"
        if isinstance(metric, (m.MeanSquaredError, m.MeanAbsoluteError)):
            return "down"
    return None


def _require_settable_learning_rate(owner, optimizer):
    """TypeError, at the start of training, when the optimizer's learning rate is a schedule:
    the callback could never set it. Keras raises the same error only when the callback first
    sets the rate, which for ReduceLROnPlateau can be many epochs into a run."""
    # The optimizer keeps a schedule where it keeps a float rate (as Keras does).
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"{owner} sets the optimizer's learning rate, but the optimizer's "
                        f"learning rate is {schedule!r}. {SCHEDULE_NOT_SETTABLE} Or drop "
                        f"the callback and let the schedule drive the rate.")


def _monitor_warning(what, monitor, logs):
    warnings.warn(f"{what} conditioned on metric `{monitor}` which is not available. "
                  f"Available metrics are: {','.join(logs)}", stacklevel=4)


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    At the end of every epoch from ``start_from_epoch`` on, the monitored value is compared
    with the best so far; after ``patience`` epochs without an improvement of more than
    ``min_delta``, ``model.stop_training`` is set.

    Args:
        monitor: the log key to watch. Defaults to 'val_loss'.
        min_delta: the smallest change that counts as an improvement. Defaults to 0.
        patience: epochs without improvement after which training stops. Defaults to 0.
        verbose: 1 prints a line when stopping or restoring weights. Defaults to 0.
        mode: 'min', 'max', or 'auto' (the loss is minimised, accuracies maximised; other
            metrics need an explicit mode). Defaults to 'auto'.
        baseline: a value the monitored quantity must beat; epochs that do not beat it
            count towards patience even when they improve on the best so far.
        restore_best_weights: at the end of training, set the weights of the best epoch,
            whether or not training stopped early. Defaults to False.
        start_from_epoch: epochs to wait before monitoring starts (a warm-up). Defaults to 0.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
        >>> model.fit(x, y, epochs=100, validation_split=0.2, callbacks=[stop])
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        owner = "EarlyStopping"
        self.monitor = monitor
        self.min_delta = abs(_check_real(owner, "min_delta", min_delta))
        self.patience = _check_int(owner, "patience", patience)
        self.verbose = verbose
        self.mode = _check_mode(owner, mode)
        self.baseline = _check_real(owner, "baseline", baseline, allow_none=True)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _check_int(owner, "start_from_epoch", start_from_epoch)
        self.monitor_op = None
        self.on_train_begin()

    def _set_monitor_op(self):
        direction = {"min": "down", "max": "up"}.get(self.mode)
        if direction is None:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            direction = "down" if name == "loss" else _metric_direction(self.model, name)
        if direction is None:
            raise ValueError(f"EarlyStopping callback received monitor={self.monitor}, but "
                             f"cannot tell whether that metric should be maximized or "
                             f"minimized. Pass mode='max' to stop on the highest value, or "
                             f"mode='min' to stop on the lowest.")
        self.monitor_op = operator.gt if direction == "up" else operator.lt
        if self.monitor_op is operator.lt:
            self.min_delta = -abs(self.min_delta)

    def on_train_begin(self, logs=None):
        # Reset, so that one instance can serve several fit calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            # A missing key warns before the direction is inferred (Keras would raise a
            # direction error for a misspelled key in 'auto' mode instead).
            _monitor_warning("Early stopping", self.monitor, logs)
            return
        if self.monitor_op is None:
            self._set_monitor_op()
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # The first monitored epoch is the best seen so far.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Patience restarts only when the value beats both the best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg(f"Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return self.monitor_op(value - self.min_delta, reference)


class ReduceLROnPlateau(Callback):
    """Reduce the learning rate when a monitored quantity has stopped improving.

    After ``patience`` epochs without an improvement of more than ``min_delta``, the
    optimizer's learning rate becomes ``max(lr * factor, min_lr)``; then a cooldown starts
    (counted as in Keras: the ``cooldown - 1`` epochs after the reduction do not count
    towards patience). Every epoch's logs get 'learning_rate' (the rate that epoch
    trained with), so History records it. An optimizer whose learning rate is a
    ``LearningRateSchedule`` cannot be driven by it: fit raises a TypeError before the first
    epoch.

    Args:
        monitor: the log key to watch. Defaults to 'val_loss'.
        factor: multiplier of the learning rate, < 1. Defaults to 0.1.
        patience: epochs without improvement before a reduction. Defaults to 10.
        verbose: 1 prints a line at each reduction. Defaults to 0.
        mode: 'min', 'max', or 'auto' ('max' when the key contains 'acc'). Defaults to 'auto'.
        min_delta: the smallest change that counts as an improvement. Defaults to 1e-4.
        cooldown: length of the cooldown after a reduction (see above). Defaults to 0.
        min_lr: lower bound of the learning rate. Defaults to 0.

    Example:
        >>> reduce_lr = ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5,
        ...                               min_lr=0.001)
        >>> model.fit(x, y, validation_split=0.1, callbacks=[reduce_lr])
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        owner = "ReduceLROnPlateau"
        self.monitor = monitor
        self.factor = _check_real(owner, "factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received "
                             f"factor={factor}")
        self.patience = _check_int(owner, "patience", patience)
        self.verbose = verbose
        self.mode = _check_mode(owner, mode)
        self.min_delta = _check_real(owner, "min_delta", min_delta)
        self.cooldown = _check_int(owner, "cooldown", cooldown)
        self.min_lr = _check_real(owner, "min_lr", min_lr)
        self._reset()

    def _reset(self):
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: a < b - self.min_delta
            self.best = math.inf
        else:
            self.monitor_op = lambda a, b: a > b + self.min_delta
            self.best = -math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        _require_settable_learning_rate("ReduceLROnPlateau", self.model.optimizer)
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            _monitor_warning("Learning rate reduction", self.monitor, logs)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > self.min_lr:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print_msg(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning "
                                  f"rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from a schedule.

    Args:
        schedule: ``schedule(epoch, lr) -> new_lr``, with the epoch index (from 0) and the
            current rate as a float; ``schedule(epoch)`` is accepted too.
        verbose: 1 prints the rate set at each epoch. Defaults to 0.

    Every epoch's logs get 'learning_rate', so History records it. An optimizer whose
    learning rate is a ``LearningRateSchedule`` cannot be driven by it: fit raises a
    TypeError before the first epoch.

    Example:
        >>> def scheduler(epoch, lr):
        ...     return lr if epoch < 10 else lr * math.exp(-0.1)
        >>> model.fit(x, y, epochs=15, callbacks=[LearningRateScheduler(scheduler)])
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable as "
                            f"schedule(epoch, lr); received {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _accepts_two_args(schedule)

    def on_train_begin(self, logs=None):
        _require_settable_learning_rate("LearningRateScheduler", self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if self._takes_lr:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ValueError(f"The output of the `schedule` function should be a float. "
                             f"Got: {lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print_msg(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to "
                      f"{float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


def _accepts_two_args(function):
    try:
        import inspect  # only for this signature check, not at `import minidl`
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature: assume the new API
        return True
    try:
        signature.bind(0, 0.0)
    except TypeError:
        return False
    return True


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite.

    Without it, fit (as in Keras) goes on training with a NaN loss, warning once.

    Args:
        raise_error: raise a RuntimeError at once (skipping on_train_end of the other
            callbacks) instead of stopping training cleanly. Defaults to False.
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = bool(raise_error)

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss "
                                   f"value: {loss}. Terminating training immediately.")
            print_msg(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
