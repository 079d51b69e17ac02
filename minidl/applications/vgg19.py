"""VGG19 (``keras.applications.vgg19``).

Reference: Very Deep Convolutional Networks for Large-Scale Image Recognition
(Simonyan & Zisserman, ICLR 2015), https://arxiv.org/abs/1409.1556
"""
from minidl.applications.vgg16 import _vgg, decode_predictions, preprocess_input


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name="vgg19"):
    """Instantiates the VGG19 model: VGG16 with a fourth convolution in blocks 3, 4 and 5.

    Same arguments as :func:`minidl.applications.VGG16` (default input 224x224, minimum
    32x32, ``preprocess_input`` in "caffe" mode).

    Returns:
        A functional ``Model``.
    """
    return _vgg((2, 2, 4, 4, 4), "VGG19", include_top, weights, input_tensor, input_shape,
                pooling, classes, classifier_activation, name)


__all__ = ["VGG19", "decode_predictions", "preprocess_input"]
