"""Utilities: data input (Dataset, PyDataset, datasets from folders and arrays), image files,
seeding, label encoding, progress bars, training plots."""
from minidl.utils.dataset import AUTOTUNE, Dataset
from minidl.utils.dataset_utils import (image_dataset_from_directory, split_dataset,
                                        text_dataset_from_directory,
                                        timeseries_dataset_from_array)
from minidl.utils.image_utils import array_to_img, img_to_array, load_img, save_img
from minidl.utils.numerical_utils import normalize, to_categorical
from minidl.utils.plotting import plot_history
from minidl.utils.progbar import Progbar
from minidl.utils.py_dataset import PyDataset
from minidl.utils.random import set_random_seed
from minidl.utils.registry import CustomObjectScope, custom_object_scope, get_custom_objects
from minidl.utils.sequence_utils import pad_sequences

__all__ = ["array_to_img", "AUTOTUNE", "CustomObjectScope", "custom_object_scope", "Dataset",
           "get_custom_objects", "get_registered_name", "get_registered_object",
           "image_dataset_from_directory", "img_to_array", "load_img", "normalize",
           "pad_sequences", "plot_history", "Progbar", "PyDataset",
           "register_keras_serializable", "save_img", "set_random_seed", "split_dataset",
           "text_dataset_from_directory", "timeseries_dataset_from_array", "to_categorical"]

# keras.utils' names for minidl.saving's functions, loaded with minidl.saving on first use.
_FROM_SAVING = {"register_keras_serializable": "register_serializable",
                "get_registered_name": "get_registered_name",
                "get_registered_object": "get_registered_object"}


def __getattr__(name):
    if name in _FROM_SAVING:
        from minidl import saving
        return getattr(saving, _FROM_SAVING[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
