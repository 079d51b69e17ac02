"""Callbacks: hooks into fit/evaluate/predict, as in ``keras.callbacks``.

fit() always attaches a History (returned to the caller) and, when verbose, a ProgbarLogger.
"""
import sys
import time


class Callback:
    """Base class: override any ``on_*`` hook. ``self.model`` is set by fit/evaluate/predict,
    and ``self.params`` holds {'epochs', 'steps', 'verbose'}."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls a hook on every callback in order. Hooks that no callback overrides are skipped,
    so an empty list costs nothing per batch."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances; received {cb!r}.")
            cb.set_model(model)
            cb.set_params(params)
        for hook in _HOOKS:
            active = [getattr(cb, hook) for cb in self.callbacks
                      if getattr(type(cb), hook) is not getattr(Callback, hook)]
            setattr(self, hook, _fan_out(active))

    def wants(self, hook):
        """Whether any callback overrides ``hook`` (lets the loop skip building logs)."""
        return getattr(self, hook) is not _noop


def _noop(*args, **kwargs):
    pass


def _fan_out(methods):
    if not methods:
        return _noop

    def call(*args, **kwargs):
        for method in methods:
            method(*args, **kwargs)
    return call


class History(Callback):
    """Records the logs of every epoch: ``history.history['loss']`` is a list per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class ProgbarLogger(Callback):
    """Prints Keras-style progress: a bar updated in place on a terminal, or one clean line
    per epoch when output goes to a file or a CI log (no carriage-return floods)."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs", 1)
        self.verbose = self.params.get("verbose", 1)

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
        if self.model is not None and not getattr(self.model, "_in_fit", False):
            self.verbose = self.params.get("verbose", 1)
            self.bar = Progbar(self.params.get("steps"), verbose=self.verbose, stream=self._out())

    def on_test_batch_end(self, batch, logs=None):
        if not getattr(self.model, "_in_fit", False):
            self.bar.update(batch + 1, logs)

    def on_test_end(self, logs=None):
        if not getattr(self.model, "_in_fit", False):
            self.bar.finish(logs)


class Progbar:
    """A Keras-style progress line: ``1875/1875 ━━━━━━━━━━━━━━━━━━━━ 2s 1ms/step - loss: 0.29``.

    Args:
        target: total number of steps (None if unknown).
        verbose: 1 = bar (in place on a terminal, final line only otherwise), 2 = one line
            at the end, 0 = silent.
        stream: where to write (default sys.stdout).
        interval: minimum seconds between in-place updates on a terminal.
    """

    WIDTH = 20

    def __init__(self, target, verbose=1, stream=None, interval=0.05):
        self.target = target
        self.verbose = verbose
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.seen = 0
        isatty = getattr(self.stream, "isatty", None)
        self.dynamic = bool(isatty and isatty())

    def update(self, current, logs=None):
        self.seen = current
        if self.verbose != 1 or not self.dynamic:
            return
        now = time.perf_counter()
        if now - self.last_draw < self.interval and current != self.target:
            return
        self.last_draw = now
        self.stream.write("\r" + self._line(current, logs, now) + "\033[K")
        self.stream.flush()

    def finish(self, logs=None):
        if not self.verbose:
            return
        now = time.perf_counter()
        prefix = "\r" if self.dynamic and self.verbose == 1 else ""
        self.stream.write(prefix + self._line(self.seen, logs, now, final=True) + "\n")
        self.stream.flush()

    def _line(self, current, logs, now, final=False):
        elapsed = now - self.start
        target = self.target
        parts = []
        if self.verbose == 1:
            if target:
                done = int(self.WIDTH * min(current, target) / target)
                parts.append(f"{current}/{target} " + "━" * done + "─" * (self.WIDTH - done))
            else:
                parts.append(f"{current}")
            if final or not target:
                parts.append(f"{elapsed:.0f}s {_per_step(elapsed, current)}")
            else:
                eta = elapsed / max(current, 1) * (target - current)
                parts.append(f"{eta:.0f}s {_per_step(elapsed, current)}")
            line = " ".join(parts)
        else:
            line = f"{current}/{target} - {elapsed:.0f}s - {_per_step(elapsed, current)}"
        for key, value in (logs or {}).items():
            line += f" - {key}: {_format_value(value)}"
        return line


def _per_step(elapsed, steps):
    per = elapsed / max(steps, 1)
    if per >= 1:
        return f"{per:.0f}s/step"
    if per >= 1e-3:
        return f"{per * 1e3:.0f}ms/step"
    return f"{per * 1e6:.0f}us/step"


def _format_value(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"
