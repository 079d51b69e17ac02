"""A picture of training: loss and metrics per epoch, drawn with matplotlib (optional).

matplotlib is imported only when a plot is made, so ``import minidl`` never needs it; it is
the optional extra ``pip install 'minidl[plot]'``.
"""
import math
import os


def plot_history(history, path, title=None):
    """Write a PNG of the loss and metrics per epoch: one panel per quantity, with the
    training curve and, when present, the validation ('val_') curve.

    Args:
        history: the :class:`minidl.callbacks.History` returned by ``fit``, or its
            ``.history`` dict (``{'loss': [...], 'val_loss': [...], ...}``).
        path: file to write, e.g. 'history.png'.
        title: optional figure title.
    Returns:
        The path written, as a string.
    Raises:
        ImportError: matplotlib is not installed.
        ValueError: the history holds no epochs.

    Example:
        >>> history = model.fit(x, y, epochs=10, validation_split=0.1)
        >>> minidl.utils.plot_history(history, "history.png")
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot_history needs matplotlib: pip install 'minidl[plot]' "
                          "(or pip install matplotlib).") from error
    series, epochs_of = _series(history)
    names = [key for key in series if not key.startswith("val_")]
    names += [key[4:] for key in series if key.startswith("val_") and key[4:] not in series]
    if not names:
        raise ValueError(f"plot_history: the history holds no epochs to plot; received "
                         f"{type(history).__name__} with keys {sorted(series)}.")
    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    # A Figure without pyplot: no global state and no display backend, so it works headless
    # and from threads.
    figure = Figure(figsize=(4.6 * columns, 3.4 * rows), layout="constrained")
    for i, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, i + 1)
        curves = [(key, label, style) for key, label, style in
                  ((name, "train", "-o"), ("val_" + name, "validation", "--s")) if key in series]
        for key, label, style in curves:
            axes.plot(epochs_of(key), series[key], style, markersize=3, label=label)
        if name == "learning_rate" and name in series and min(series[name]) > 0:
            axes.set_yscale("log")  # schedules and plateaus change it by factors
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if len(curves) > 1:
            axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    path = os.fspath(path)
    figure.savefig(path, format="png", dpi=100)
    return path


def _series(history):
    """(key -> values, key -> epoch numbers from 1) for a History or a history dict."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history expects a History or its .history dict; received "
                        f"{type(history).__name__}.")
    series = {key: [float(v) for v in values] for key, values in logs.items() if len(values)}
    logged_at = getattr(history, "_logged_at", {})
    longest = max((len(v) for v in series.values()), default=0)

    def epochs_of(key):
        if key in logged_at and len(logged_at[key]) == len(series[key]):
            return [e + 1 for e in logged_at[key]]
        count = len(series[key])
        # A bare dict does not say when a shorter (validation_freq) series was logged: Keras
        # validates after every k-th epoch, so spread it that way when it divides evenly.
        step = longest // count if count and longest % count == 0 else 1
        return [step * (i + 1) for i in range(count)] if step > 1 else list(range(1, count + 1))

    return series, epochs_of
