"""Preprocessing layers, as in ``keras.layers``: feature normalization and encoding."""
from minidl.layers.preprocessing.category_encoding import CategoryEncoding
from minidl.layers.preprocessing.discretization import Discretization
from minidl.layers.preprocessing.normalization import Normalization
from minidl.layers.preprocessing.rescaling import Rescaling

__all__ = ["CategoryEncoding", "Discretization", "Normalization", "Rescaling"]
