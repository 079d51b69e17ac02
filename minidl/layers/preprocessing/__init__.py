"""Preprocessing layers, as in ``keras.layers``: feature normalization and encoding
(``Normalization``, ``Discretization``, ``CategoryEncoding``, ``Rescaling``), image resizing
(``Resizing``, ``CenterCrop``), seeded image augmentation (``Random*``), and text and
categorical lookups (``StringLookup``, ``IntegerLookup``, ``Hashing``,
``TextVectorization``)."""
from minidl.layers.preprocessing.augmentation import (RandomBrightness, RandomContrast,
                                                      RandomCrop, RandomFlip, RandomRotation,
                                                      RandomTranslation, RandomZoom)
from minidl.layers.preprocessing.category_encoding import CategoryEncoding
from minidl.layers.preprocessing.discretization import Discretization
from minidl.layers.preprocessing.hashing import Hashing
from minidl.layers.preprocessing.image import CenterCrop, Resizing
from minidl.layers.preprocessing.integer_lookup import IntegerLookup
from minidl.layers.preprocessing.normalization import Normalization
from minidl.layers.preprocessing.rescaling import Rescaling
from minidl.layers.preprocessing.string_lookup import StringLookup
from minidl.layers.preprocessing.text_vectorization import TextVectorization

__all__ = ["CategoryEncoding", "CenterCrop", "Discretization", "Normalization",
           "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom", "Rescaling", "Resizing"]
__all__ += ["Hashing", "IntegerLookup", "StringLookup", "TextVectorization"]
