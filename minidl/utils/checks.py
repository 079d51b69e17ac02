"""Checks of constructor arguments shared by layers, activations, optimizers, losses and
schedules: the arguments a config read from a file reaches. A wrong type fails when the
object is made, and the error names the argument: a string such as 'no' is never read as
True, nor a bool as an int.
"""
import numpy as np


def check_bool(owner, name, value):
    """``value`` as a bool; TypeError unless it is True or False (a numpy bool too).

    Args:
        owner: what takes the argument, for the message (e.g. "Dense").
        name: the argument's name.
        value: the argument.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: `{name}` must be True or False. Received: "
                        f"{name}={value!r:.100}")
    return bool(value)


def check_name(owner, name, default):
    """``name``, or ``default`` when it is None; ValueError unless it is a non-empty string."""
    if name is None:
        return default
    if not isinstance(name, str) or not name:
        raise ValueError(f"{owner}: `name` must be a non-empty string. Received: "
                         f"name={name!r:.100}")
    return name
