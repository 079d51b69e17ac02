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
from minidl.utils.sequence_utils import pad_sequences

__all__ = ["array_to_img", "AUTOTUNE", "Dataset", "image_dataset_from_directory",
           "img_to_array", "load_img", "normalize", "pad_sequences", "plot_history", "Progbar", "PyDataset",
           "register_keras_serializable", "save_img", "set_random_seed", "split_dataset",
           "text_dataset_from_directory", "timeseries_dataset_from_array", "to_categorical"]


def __getattr__(name):
    # keras.utils.register_keras_serializable, loaded with minidl.saving on first use.
    if name == "register_keras_serializable":
        from minidl.saving import register_serializable
        return register_serializable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
