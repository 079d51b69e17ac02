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


class LearningRateWarmupCallback(Callback):
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
        super().__init__()
        if isinstance(initial_lr, bool) or not isinstance(initial_lr, numbers.Real) \
                or not np.isfinite(initial_lr) or initial_lr < 0:
            raise ValueError(f"LearningRateWarmupCallback: initial_lr must be a float >= 0; "
                             f"received initial_lr={initial_lr!r}.")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, numbers.Real) \
                or warmup_epochs <= 0:
            raise ValueError(f"LearningRateWarmupCallback: warmup_epochs must be > 0; "
                             f"received warmup_epochs={warmup_epochs!r}.")
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not
                                            isinstance(steps_per_epoch, numbers.Integral)
                                            or steps_per_epoch < 1):
            raise ValueError(f"LearningRateWarmupCallback: steps_per_epoch must be an int "
                             f">= 1 or None; received steps_per_epoch={steps_per_epoch!r}.")
        self.initial_lr = float(initial_lr)
        self.warmup_epochs = warmup_epochs
        self.momentum_correction = bool(momentum_correction)
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self.current_epoch = None
        self._restore_momentum = None

    def _steps(self):
        steps = self.steps_per_epoch or self.params.get("steps")
        if not steps:
            raise ValueError("LearningRateWarmupCallback: steps_per_epoch is unknown (a "
                             "stream without a length); pass steps_per_epoch=.")
        return steps

    def multiplier(self, epoch):
        """The factor of ``initial_lr`` for the batch starting at fractional ``epoch``."""
        ranks = comm.size() if comm.is_initialized() else 1
        epoch += 1.0 / self._steps()
        return 1.0 / ranks * (epoch * (ranks - 1) / self.warmup_epochs + 1)

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.current_epoch is None or self.current_epoch >= self.warmup_epochs:
            return
        epoch = self.current_epoch + float(batch) / self._steps()
        self._set_lr(self.initial_lr * self.multiplier(epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._restore_momentum is not None:
            self.model.optimizer.momentum = self._restore_momentum
            self._restore_momentum = None

    def on_epoch_end(self, epoch, logs=None):
        if epoch == int(np.ceil(self.warmup_epochs)) - 1:
            if self.verbose and comm.is_writer():
                print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                      f"{self.initial_lr:g}.")
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
