"""Progress output: the Keras-style progress bar and the messages callbacks print.

On a terminal the bar is redrawn in place on one line. Anywhere else (a log file, CI) it
writes only its final line, so a log holds one clean line per epoch and no carriage-return
floods. A callback message (``print_msg``) that arrives while a bar is half drawn on the same
stream first ends that line, so the message never lands in the middle of the bar.
"""
import sys
import time

# The stream whose current line holds a bar drawn in place and not yet finished, or None.
_open_line = None


def print_msg(message, stream=None):
    """Print one line of callback output (EarlyStopping, ReduceLROnPlateau, ...).

    Args:
        message: the text, without a trailing newline.
        stream: where to write (default sys.stdout).
    """
    global _open_line
    stream = stream if stream is not None else sys.stdout
    if _open_line is stream:
        stream.write("\n")
        _open_line = None
    stream.write(message + "\n")
    stream.flush()


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
        global _open_line
        self.seen = current
        if self.verbose != 1 or not self.dynamic:
            return
        now = time.perf_counter()
        if now - self.last_draw < self.interval and current != self.target:
            return
        self.last_draw = now
        self.stream.write("\r" + self._line(current, logs, now) + "\033[K")
        self.stream.flush()
        _open_line = self.stream

    def finish(self, logs=None):
        global _open_line
        if not self.verbose:
            return
        now = time.perf_counter()
        prefix = "\r" if self.dynamic and self.verbose == 1 else ""
        self.stream.write(prefix + self._line(self.seen, logs, now, final=True) + "\n")
        self.stream.flush()
        if _open_line is self.stream:
            _open_line = None

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
