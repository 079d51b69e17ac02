"""``keras.applications.resnet50``: ResNet50 with its preprocessing and decoding."""
from minidl.applications.resnet import ResNet50, decode_predictions, preprocess_input

__all__ = ["ResNet50", "decode_predictions", "preprocess_input"]
