"""Preprocessing layers, as in ``keras.layers``: feature normalization and encoding
(``Normalization``, ``Discretization``, ``CategoryEncoding``, ``Rescaling``), image resizing
(``Resizing``, ``CenterCrop``) and seeded image augmentation (``Random*``)."""
from minidl.layers.preprocessing.augmentation import (RandomBrightness, RandomContrast,
                                                      RandomCrop, RandomFlip, RandomRotation,
                                                      RandomTranslation, RandomZoom)
from minidl.layers.preprocessing.category_encoding import CategoryEncoding
from minidl.layers.preprocessing.discretization import Discretization
from minidl.layers.preprocessing.image import CenterCrop, Resizing
from minidl.layers.preprocessing.normalization import Normalization
from minidl.layers.preprocessing.rescaling import Rescaling

__all__ = ["CategoryEncoding", "CenterCrop", "Discretization", "Normalization",
           "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom", "Rescaling", "Resizing"]
