"""Layers, as in ``keras.layers``."""
from minidl.layers.base import LAYERS, Layer
from minidl.layers.core import Activation, Dense, Input, InputLayer
from minidl.layers.normalization import BatchNormalization, LayerNormalization
from minidl.layers.regularization import ActivityRegularization, Dropout
from minidl.layers.reshaping import Flatten, Reshape


def get(identifier):
    """Resolve a layer config dict ``{"class_name": ..., "config": ...}`` or an instance."""
    return LAYERS.get(identifier, base=Layer)


__all__ = ["Activation", "ActivityRegularization", "BatchNormalization", "Dense", "Dropout",
           "Flatten", "Input", "InputLayer", "Layer", "LayerNormalization", "Reshape", "get"]
