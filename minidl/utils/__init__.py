"""Utilities: registries, seeding, label encoding, progress bars, training plots."""
from minidl.utils.numerical_utils import to_categorical
from minidl.utils.plotting import plot_history
from minidl.utils.progbar import Progbar
from minidl.utils.py_dataset import PyDataset
from minidl.utils.random import set_random_seed

__all__ = ["Progbar", "PyDataset", "plot_history", "register_keras_serializable", "set_random_seed",
           "to_categorical"]


def __getattr__(name):
    # keras.utils.register_keras_serializable, loaded with minidl.saving on first use.
    if name == "register_keras_serializable":
        from minidl.saving import register_serializable
        return register_serializable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
