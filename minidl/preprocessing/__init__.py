"""``keras.preprocessing``: datasets from directories and arrays, and image helpers."""
from minidl.preprocessing import image, sequence
from minidl.utils.dataset_utils import (image_dataset_from_directory,
                                        text_dataset_from_directory,
                                        timeseries_dataset_from_array)

__all__ = ["image", "sequence", "image_dataset_from_directory", "text_dataset_from_directory",
           "timeseries_dataset_from_array"]
