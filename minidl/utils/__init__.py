"""Utilities: registries, seeding, label encoding, progress bars, training plots."""
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

__all__ = ["Progbar", "PyDataset", "plot_history", "register_keras_serializable", "set_random_seed",
           "to_categorical"]
__all__ += ["AUTOTUNE", "Dataset", "array_to_img", "image_dataset_from_directory",
            "img_to_array", "load_img", "normalize", "save_img", "split_dataset",
            "text_dataset_from_directory", "timeseries_dataset_from_array"]


def __getattr__(name):
    # keras.utils.register_keras_serializable, loaded with minidl.saving on first use.
    if name == "register_keras_serializable":
        from minidl.saving import register_serializable
        return register_serializable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
