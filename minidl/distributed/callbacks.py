"""Horovod's Keras callbacks for data-parallel training over MPI."""
import numbers

import numpy as np

from minidl.callbacks.callback import Callback
from minidl.distributed import comm


class BroadcastGlobalVariablesCallback(Callback):
    """At the start of training, copy rank ``root_rank``'s weights and optimizer state
    (slots and step count) to every rank, so that all ranks start from the same point.

    Horovod broadcasts after the first batch because TensorFlow creates variables lazily;
    minidl's fit builds the model and the optimizer before ``on_train_begin``, so the
    broadcast happens there and the first step already starts from the same weights.

    Args:
        root_rank: the rank whose state is copied.
    """

    def __init__(self, root_rank=0):
        super().__init__()
        if isinstance(root_rank, bool) or not isinstance(root_rank, numbers.Integral) \
                or root_rank < 0:
            raise ValueError(f"BroadcastGlobalVariablesCallback: root_rank must be an int >= "
                             f"0; received root_rank={root_rank!r}.")
        self.root_rank = int(root_rank)
        self.broadcast_done = False

    def on_train_begin(self, logs=None):
        if not comm.is_initialized() or comm.size() == 1:
            self.broadcast_done = True
            return
        broadcast_model_state(self.model, self.root_rank)
        self.broadcast_done = True


def broadcast_model_state(model, root_rank=0):
    """Copy rank ``root_rank``'s weights, optimizer slots and step count to every rank."""
    weights = [np.ascontiguousarray(w) for w in model.get_weights()]
    for w in weights:
        comm.broadcast_(w, root_rank)
    model.set_weights(weights)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        with model.writing_weights():
            for slot in optimizer.get_slot_arrays():
                comm.broadcast_(slot, root_rank)
        step = np.array([optimizer.iterations], np.int64)
        comm.broadcast_(step, root_rank)
        optimizer.iterations = int(step[0])


class MetricAverageCallback(Callback):
    """At the end of each epoch, replace every numeric value of the epoch logs by its mean
    over ranks (in rank order, float64), so that every rank reports, and rank 0 saves by,
    the same metrics. Put it before callbacks that read the logs (ModelCheckpoint,
    EarlyStopping, ReduceLROnPlateau), as in Horovod.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not comm.is_initialized() or comm.size() == 1:
            return
        keys = sorted(k for k, v in logs.items()
                      if isinstance(v, numbers.Real) and not isinstance(v, bool))
        # Every rank must reduce the same keys in the same order: the key set is checked.
        values = np.array([float(logs[k]) for k in keys], np.float64)
        count = np.array([float(len(keys))], np.float64)
        reduced = count.copy()
        comm.allreduce_(reduced, average=True)
        if reduced[0] != count[0]:
            raise ValueError(f"MetricAverageCallback: the ranks' epoch logs hold different "
                             f"metrics (rank {comm.rank()} has {keys}).")
        if values.size:
            comm.allreduce_(values, average=True)
        for key, value in zip(keys, values):
            logs[key] = float(value)


def _check_epoch(owner, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: {name} must be a number of epochs >= 0"
                         f"{' or None' if allow_none else ''}; received {name}={value!r}.")
    return value


class _Constant:
    """A constant multiplier (a class, not a lambda, so that the callback pickles)."""

    def __init__(self, factor):
        self.factor = factor

    def __call__(self, epoch):
        return self.factor


class LearningRateScheduleCallback(Callback):
    """Horovod's learning-rate schedule: ``lr = initial_lr * multiplier(epoch)`` from
    ``start_epoch`` until ``end_epoch``.

    With ``staircase=True`` the rate is set once, at the first batch of each epoch, from the
    epoch's index; otherwise at every batch, from the fractional epoch
    ``epoch + batch / steps_per_epoch``. Outside ``[start_epoch, end_epoch)`` the callback
    leaves the rate as it is. Several schedules over different epochs make a piecewise
    schedule, e.g. Goyal et al.'s warmup (:class:`LearningRateWarmupCallback`) and then
    ``LearningRateScheduleCallback(lr, 1e-1, start_epoch=30, end_epoch=60)``.

    Args:
        initial_lr: the rate the multiplier scales (usually the single-process rate times
            ``size()``); None: the optimizer's rate when training begins.
        multiplier: a number (then the schedule is a staircase), or a function of the
            (fractional) epoch returning the factor.
        start_epoch: the first epoch the schedule covers.
        end_epoch: the epoch where it stops (excluded), or None for no end.
        staircase: set the rate once per epoch (True) or at every batch (False).
        momentum_correction: for an optimizer with a ``momentum``, scale it by the ratio of
            the new rate to the old one for the batch where the rate changes, then restore
            it (Goyal et al.'s correction, as Horovod).
        steps_per_epoch: batches per epoch, for ``staircase=False`` (default: fit's
            ``steps``).
    """

    def __init__(self, initial_lr, multiplier, start_epoch=0, end_epoch=None, staircase=True,
                 momentum_correction=True, steps_per_epoch=None):
        super().__init__()
        owner = type(self).__name__
        if initial_lr is not None and (isinstance(initial_lr, bool) or not isinstance(
                initial_lr, numbers.Real) or not np.isfinite(initial_lr) or initial_lr < 0):
            raise ValueError(f"{owner}: initial_lr must be a float >= 0 or None; received "
                             f"initial_lr={initial_lr!r}.")
        if callable(multiplier):
            self.multiplier = multiplier
        elif isinstance(multiplier, numbers.Real) and not isinstance(multiplier, bool) \
                and np.isfinite(multiplier):
            self.multiplier = _Constant(float(multiplier))
            staircase = True   # a constant needs setting once per epoch
        else:
            raise TypeError(f"{owner}: multiplier must be a number or a function of the "
                            f"epoch; received multiplier={multiplier!r}.")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not
                                            isinstance(steps_per_epoch, numbers.Integral)
                                            or steps_per_epoch < 1):
            raise ValueError(f"{owner}: steps_per_epoch must be an int >= 1 or None; "
                             f"received steps_per_epoch={steps_per_epoch!r}.")
        self.initial_lr = None if initial_lr is None else float(initial_lr)
        self.start_epoch = _check_epoch(owner, "start_epoch", start_epoch)
        self.end_epoch = _check_epoch(owner, "end_epoch", end_epoch, allow_none=True)
        self.staircase = bool(staircase)
        self.momentum_correction = bool(momentum_correction)
        self.steps_per_epoch = steps_per_epoch
        self.current_epoch = None
        self._restore_momentum = None

    def _steps(self):
        steps = self.steps_per_epoch or self.params.get("steps")
        if not steps:
            raise ValueError(f"{type(self).__name__}: steps_per_epoch is unknown (a stream "
                             f"without a length); pass steps_per_epoch=.")
        return steps

    def on_train_begin(self, logs=None):
        if self.initial_lr is None:
            self.initial_lr = float(self.model.optimizer.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        epoch = self.current_epoch
        if epoch is None or epoch < self.start_epoch or (
                self.end_epoch is not None and epoch >= self.end_epoch):
            return
        if not self.staircase:
            self._set_lr(self.initial_lr * self.multiplier(epoch + float(batch)
                                                           / self._steps()))
        elif batch == 0:
            self._set_lr(self.initial_lr * self.multiplier(epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._restore_momentum is not None:
            self.model.optimizer.momentum = self._restore_momentum
            self._restore_momentum = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)

    def _set_lr(self, lr):
        optimizer = self.model.optimizer
        old = float(optimizer.learning_rate)
        optimizer.learning_rate = lr
        momentum = getattr(optimizer, "momentum", None)
        if self.momentum_correction and isinstance(momentum, float) and momentum and old > 0:
            self._restore_momentum = momentum
            optimizer.momentum = momentum * lr / old


class LearningRateWarmupCallback(LearningRateScheduleCallback):
    """Horovod's gradual learning-rate warmup (Goyal et al., 2017, "Accurate, Large
    Minibatch SGD"): over the first ``warmup_epochs`` epochs the learning rate grows from
    ``initial_lr / size()`` to ``initial_lr``, adjusted at every batch, with

        lr = initial_lr / size() * (epoch * (size() - 1) / warmup_epochs + 1)

    where ``epoch`` is fractional, ``epoch + (batch + 1) / steps_per_epoch`` (Horovod's
    shift by one batch, so that the last batch of the warmup runs at ``initial_lr``). After
    ``warmup_epochs`` the callback stops changing the learning rate. ``initial_lr``
    is usually the single-process learning rate scaled by ``size()``.

    Args:
        initial_lr: the learning rate at the end of the warmup.
        warmup_epochs: number of epochs of warmup.
        momentum_correction: for an optimizer with ``momentum``, scale it by the ratio of
            new to old learning rate at each change (Horovod's correction), restored after.
        steps_per_epoch: batches per epoch (default: fit's ``steps``).
        verbose: 1 prints a message on rank 0 when the warmup ends.
    """

    def __init__(self, initial_lr, warmup_epochs=5, momentum_correction=True,
                 steps_per_epoch=None, verbose=0):
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, numbers.Real) \
                or warmup_epochs <= 0:
            raise ValueError(f"LearningRateWarmupCallback: warmup_epochs must be > 0; "
                             f"received warmup_epochs={warmup_epochs!r}.")
        if initial_lr is None:
            raise ValueError("LearningRateWarmupCallback: initial_lr must be a float >= 0; "
                             "received initial_lr=None.")
        super().__init__(initial_lr, self._warmup, start_epoch=0, end_epoch=warmup_epochs,
                         staircase=False, momentum_correction=momentum_correction,
                         steps_per_epoch=steps_per_epoch)
        self.warmup_epochs = warmup_epochs
        self.verbose = verbose

    def _warmup(self, epoch):
        """The factor of ``initial_lr`` for the batch starting at fractional ``epoch``."""
        ranks = comm.size() if comm.is_initialized() else 1
        epoch += 1.0 / self._steps()
        return 1.0 / ranks * (epoch * (ranks - 1) / self.warmup_epochs + 1)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch == int(np.ceil(self.warmup_epochs)) - 1:
            if self.verbose and comm.is_writer():
                print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                      f"{self.initial_lr:g}.")
