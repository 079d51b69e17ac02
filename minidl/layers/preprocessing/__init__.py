"""Preprocessing layers, as in ``keras.layers``."""
from minidl.layers.preprocessing.augmentation import (RandomBrightness, RandomContrast,
                                                      RandomCrop, RandomFlip, RandomRotation,
                                                      RandomTranslation, RandomZoom)
from minidl.layers.preprocessing.image import CenterCrop, Resizing
