"""Ready-made image classification networks, as in ``keras.applications``.

Each function builds a functional ``Model`` with Keras's layer names, layer order and
weight order, from random weights (``weights=None``) or from a weights file. Each has a
submodule with its ``preprocess_input`` and ``decode_predictions`` (ImageNet's 1000
classes ship with minidl; nothing is downloaded):

    from minidl.applications import MobileNetV2, mobilenet_v2
    model = MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
    model.compile("adam", "categorical_crossentropy")
    model.fit(mobilenet_v2.preprocess_input(images), labels)

``weights="imagenet"`` raises a ValueError: minidl does not download pretrained weights.
"""
from minidl.applications import (efficientnet, imagenet_utils, mobilenet_v2, resnet,
                                 resnet50, resnet_v2, vgg16, vgg19, xception)
from minidl.applications.efficientnet import EfficientNetB0
from minidl.applications.mobilenet_v2 import MobileNetV2
from minidl.applications.resnet import ResNet50
from minidl.applications.resnet_v2 import ResNet50V2
from minidl.applications.vgg16 import VGG16
from minidl.applications.vgg19 import VGG19
from minidl.applications.xception import Xception

__all__ = ["EfficientNetB0", "MobileNetV2", "ResNet50", "ResNet50V2", "VGG16", "VGG19",
           "Xception", "efficientnet", "imagenet_utils", "mobilenet_v2", "resnet", "resnet50",
           "resnet_v2", "vgg16", "vgg19", "xception"]
