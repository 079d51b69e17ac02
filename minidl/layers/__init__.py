"""Layers, as in ``keras.layers``."""
from minidl.layers.activation_layers import ELU, Identity, LeakyReLU, PReLU, ReLU, Softmax
from minidl.layers.base import LAYERS, CallContext, Layer
from minidl.layers.convolutional import Conv1D, Conv2D
from minidl.layers.depthwise import DepthwiseConv1D, DepthwiseConv2D
from minidl.layers.separable import SeparableConv1D, SeparableConv2D
from minidl.layers.conv3d import Conv3D, Convolution3D
from minidl.layers.conv_transpose import (Conv1DTranspose, Conv2DTranspose, Conv3DTranspose,
                                          Convolution1DTranspose, Convolution2DTranspose,
                                          Convolution3DTranspose)
from minidl.layers.core import Activation, Dense, Input, InputLayer
from minidl.layers.embedding import Embedding
from minidl.layers.lambda_layer import Lambda
from minidl.layers.merging import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply,
                                   Subtract, add, average, concatenate, dot, maximum, minimum,
                                   multiply, subtract)
from minidl.layers.normalization import (BatchNormalization, GroupNormalization,
                                         LayerNormalization, UnitNormalization)
from minidl.layers.op_layer import OpLayer
from minidl.layers.padding import (Cropping1D, Cropping2D, Cropping3D, ZeroPadding1D,
                                   ZeroPadding2D, ZeroPadding3D)
from minidl.layers.pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                                   GlobalAveragePooling1D, GlobalAveragePooling2D,
                                   GlobalAvgPool1D, GlobalAvgPool2D, GlobalMaxPool1D,
                                   GlobalMaxPool2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                                   MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from minidl.layers.pooling import (AveragePooling3D, AvgPool3D, GlobalAveragePooling3D,
                                   GlobalAvgPool3D, GlobalMaxPool3D, GlobalMaxPooling3D,
                                   MaxPool3D, MaxPooling3D)
from minidl.layers.preprocessing import (CenterCrop, RandomBrightness, RandomContrast,
                                         RandomCrop, RandomFlip, RandomRotation,
                                         RandomTranslation, RandomZoom, Resizing)
from minidl.layers.preprocessing import (CategoryEncoding, Discretization, Normalization,
                                         Rescaling)
from minidl.layers.preprocessing import (Hashing, IntegerLookup, StringLookup,
                                         TextVectorization)
from minidl.layers.regularization import (ActivityRegularization, AlphaDropout, Dropout,
                                          GaussianDropout, GaussianNoise, SpatialDropout2D,
                                          SpatialDropout3D)
from minidl.layers.resampling import UpSampling1D, UpSampling2D, UpSampling3D
from minidl.layers.reshaping import Flatten, Permute, Reshape
from minidl.layers.sequence import Masking, RepeatVector, SpatialDropout1D, TimeDistributed

from minidl.utils.registry import custom_object_scope
from minidl.utils.registry import serialize as _serialize


def get(identifier):
    """Resolve a layer config dict ``{"class_name": ..., "config": ...}`` or an instance."""
    return LAYERS.get(identifier, base=Layer)


def serialize(layer):
    """``{"class_name": ..., "config": layer.get_config()}`` of a layer (Keras's
    ``keras.layers.serialize``); :func:`deserialize` makes a new layer of it."""
    if not isinstance(layer, Layer):
        raise TypeError(f"serialize expects a Layer; received {layer!r:.100}.")
    return _serialize(layer)


def deserialize(config, custom_objects=None):
    """A new layer (fresh weights) from :func:`serialize`'s dict.

    Args:
        config: ``{"class_name": ..., "config": {...}}``.
        custom_objects: optional dict from names to the program's own layer classes, as in
            ``minidl.saving.custom_object_scope``.
    """
    with custom_object_scope(custom_objects):
        return LAYERS.get(config, base=Layer)


__all__ = ["Activation", "ActivityRegularization", "Add", "AveragePooling1D",
           "AveragePooling2D", "Average", "AvgPool1D", "AvgPool2D", "BatchNormalization",
           "CallContext", "Concatenate", "Conv1D", "Conv2D", "Dense", "Dot", "Dropout", "ELU",
           "Flatten", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "Identity", "Input", "InputLayer", "Lambda", "Layer",
           "LayerNormalization", "LeakyReLU", "MaxPool1D", "MaxPool2D", "MaxPooling1D",
           "MaxPooling2D", "Maximum", "Minimum", "Multiply", "OpLayer", "PReLU", "ReLU", "Reshape",
           "Softmax", "Subtract", "add", "average", "concatenate", "deserialize", "dot", "get",
           "maximum", "minimum", "multiply", "serialize", "subtract"]
__all__ += ["CenterCrop", "RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip",
            "RandomRotation", "RandomTranslation", "RandomZoom", "Resizing"]
__all__ += ["CategoryEncoding", "Discretization", "Normalization", "Rescaling"]
__all__ += ["Hashing", "IntegerLookup", "StringLookup", "TextVectorization"]
__all__ += ["Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D",
            "ZeroPadding3D"]
__all__ += ["Permute", "UpSampling1D", "UpSampling2D", "UpSampling3D"]
__all__ += ["AveragePooling3D", "AvgPool3D", "GlobalAveragePooling3D", "GlobalAvgPool3D",
            "GlobalMaxPool3D", "GlobalMaxPooling3D", "MaxPool3D", "MaxPooling3D"]
__all__ += ["Embedding", "Masking", "RepeatVector", "SpatialDropout1D", "TimeDistributed"]
__all__ += ["AlphaDropout", "GaussianDropout", "GaussianNoise", "GroupNormalization",
            "SpatialDropout2D", "SpatialDropout3D", "UnitNormalization"]
from minidl.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN  # noqa: E402

__all__ += ["Bidirectional", "GRU", "LSTM", "SimpleRNN"]
__all__ += ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]
__all__ += ["Conv1DTranspose", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
            "Convolution1DTranspose", "Convolution2DTranspose", "Convolution3D",
            "Convolution3DTranspose"]
