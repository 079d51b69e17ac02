"""Utilities: registries, seeding, label encoding, progress bars, training plots."""
from minidl.utils.numerical_utils import to_categorical
from minidl.utils.plotting import plot_history
from minidl.utils.progbar import Progbar
from minidl.utils.random import set_random_seed

__all__ = ["Progbar", "plot_history", "set_random_seed", "to_categorical"]
