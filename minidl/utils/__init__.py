"""Utilities: registries, seeding, label encoding."""
from minidl.utils.numerical_utils import to_categorical
from minidl.utils.random import set_random_seed

__all__ = ["set_random_seed", "to_categorical"]
