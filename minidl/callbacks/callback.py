"""The Callback base class, CallbackList, and the two callbacks every fit uses: History and
ProgbarLogger.

fit() runs the user's callbacks followed by a History (returned to the caller) and, when
verbose, a ProgbarLogger: Keras' order, so both see the epoch logs after the user's callbacks
have added to them (ReduceLROnPlateau and LearningRateScheduler add 'learning_rate').

A CallbackList resolves its hooks once, when it is made: a hook that no callback overrides is
a no-op, so epoch-level callbacks (EarlyStopping, ReduceLROnPlateau, CSVLogger) add nothing
to the cost of a training step.
"""
import sys

from minidl.utils.progbar import Progbar


class Callback:
    """Base class of callbacks: override any ``on_*`` hook.

    Attributes:
        model: the model being trained, evaluated or predicted with (set by the model).
            Setting ``self.model.stop_training = True`` ends ``fit`` after the current batch
            (from a batch hook) or epoch (from ``on_epoch_end``).
        params: ``{'verbose', 'epochs', 'steps'}`` of the running call.

    Every ``logs`` argument is a dict: the running loss and metrics of the epoch at
    ``on_train_batch_end``; the epoch's training and 'val_' results at ``on_epoch_end``.

    Example:
        >>> class StopAtLoss(Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         if logs["loss"] < 0.1:
        ...             self.model.stop_training = True
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_batch_begin(self, batch, logs=None):
        """Alias of ``on_train_batch_begin`` (Keras' backwards compatible name)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of ``on_train_batch_end`` (Keras' backwards compatible name)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of an epoch of fit (``epoch`` counts from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch of fit with its training and 'val_' results."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training batch (``batch``: index within the epoch)."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with the epoch's running results."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before each batch of evaluate, or of validation in fit."""

    def on_test_batch_end(self, batch, logs=None):
        """Called after each batch of evaluate, or of validation in fit."""

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before each batch of predict."""

    def on_predict_batch_end(self, batch, logs=None):
        """Called after each batch of predict; ``logs['outputs']`` holds its outputs."""

    def on_train_begin(self, logs=None):
        """Called once at the start of fit."""

    def on_train_end(self, logs=None):
        """Called once at the end of fit with the last epoch's logs."""

    def on_test_begin(self, logs=None):
        """Called at the start of evaluate, or of validation in fit."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluate, or of validation in fit, with its results."""

    def on_predict_begin(self, logs=None):
        """Called at the start of predict."""

    def on_predict_end(self, logs=None):
        """Called at the end of predict."""


# Hooks a list dispatches; the on_batch_* aliases are reached through on_train_batch_*.
_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}
_HOOKS = tuple(name for name in vars(Callback)
               if name.startswith("on_") and name not in _ALIASES.values())


def _overrides(callback, hook):
    """Whether ``callback`` replaces the base class's ``hook`` (in its class or, like
    LambdaCallback, on the instance)."""
    method = getattr(callback, hook)
    return getattr(method, "__func__", method) is not getattr(Callback, hook)


class CallbackList(Callback):
    """Calls each hook on every callback, in order.

    Args:
        callbacks: list of :class:`Callback` instances.
        add_history: append a :class:`History` unless the list has one.
        add_progbar: append a :class:`ProgbarLogger` unless the list has one.
        model: the model the callbacks are used with.
        **params: passed to every callback's ``set_params`` (e.g. verbose, epochs, steps).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None,
                 **params):
        super().__init__()
        self.callbacks = []
        for cb in callbacks or []:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances (minidl.callbacks); "
                                f"received {cb!r} of type {type(cb).__name__}.")
            self.callbacks.append(cb)
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)
        self._resolve_hooks()

    def append(self, callback):
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback instances; received {callback!r}.")
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        callback.set_params(self.params)
        self._resolve_hooks()

    def set_model(self, model):
        super().set_model(model)
        if self.history is not None:
            model.history = self.history
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def wants(self, hook):
        """Whether any callback overrides ``hook`` (lets the loop skip building logs)."""
        return getattr(self, hook) is not _noop

    def _resolve_hooks(self):
        for hook in _HOOKS:
            alias = _ALIASES.get(hook)
            methods = [getattr(cb, hook) for cb in self.callbacks
                       if _overrides(cb, hook) or (alias is not None and _overrides(cb, alias))]
            setattr(self, hook, _fan_out(hook, methods))


def _noop(*args, **kwargs):
    pass


def _fan_out(hook, methods):
    """One function calling ``methods`` in order, with ``{}`` for missing logs as Keras
    passes them."""
    if not methods:
        return _noop
    if "batch" in hook or hook.startswith("on_epoch"):
        # Positional logs (Keras passes logs=...), so a LambdaCallback's `lambda b, l: ...`
        # works too.
        def call(index, logs=None):
            logs = {} if logs is None else logs
            for method in methods:
                method(index, logs)
    else:
        def call(logs=None):
            logs = {} if logs is None else logs
            for method in methods:
                method(logs)
    return call


class History(Callback):
    """Records the logs of every epoch; ``fit`` returns it.

    Attributes:
        history: dict mapping 'loss', each metric and their 'val_' versions (and
            'learning_rate' when a callback logs it) to a list with one value per epoch.
        epoch: the epoch indices recorded (from ``initial_epoch``).
        params: ``{'verbose', 'epochs', 'steps'}`` of the fit call.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []
        self._logged_at = {}   # key -> epochs it was logged at (val_ keys skip some epochs)

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
            self._logged_at.setdefault(key, []).append(epoch)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints Keras-style progress: a bar updated in place on a terminal, or one clean line
    per epoch when output goes to a file or a CI log (no carriage-return floods).

    Args:
        stream: where to write (default sys.stdout at the time of writing).
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self.bar = None

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def on_train_begin(self, logs=None):
        from minidl.distributed.comm import is_writer
        self.epochs = self.params.get("epochs", 1)
        # Data-parallel training: rank 0 alone prints progress.
        self.verbose = self.params.get("verbose", 1) if is_writer() else 0

    def on_epoch_begin(self, epoch, logs=None):
        out = self._out()
        self.bar = Progbar(self.params.get("steps"), verbose=self.verbose, stream=out)
        if self.verbose:
            out.write(f"Epoch {epoch + 1}/{self.epochs}\n")
            out.flush()

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.finish(logs)

    def on_test_begin(self, logs=None):
        from minidl.distributed.comm import is_writer
        if not getattr(self.model, "_in_fit", False):
            self.verbose = self.params.get("verbose", 1) if is_writer() else 0
            self.bar = Progbar(self.params.get("steps"), verbose=self.verbose, stream=self._out())

    def on_test_batch_end(self, batch, logs=None):
        if not getattr(self.model, "_in_fit", False):
            self.bar.update(batch + 1, logs)

    def on_test_end(self, logs=None):
        if not getattr(self.model, "_in_fit", False):
            self.bar.finish(logs)
