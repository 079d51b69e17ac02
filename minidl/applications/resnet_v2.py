"""ResNet50V2 (``keras.applications.resnet_v2``).

Reference: Identity Mappings in Deep Residual Networks (He et al., ECCV 2016),
https://arxiv.org/abs/1603.05027
"""
from minidl.applications import imagenet_utils, resnet


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, classifier_activation="softmax",
               name="resnet50v2"):
    """Instantiates the ResNet50V2 architecture (pre-activation residual blocks).

    Same arguments as :func:`minidl.applications.ResNet50` (default input 224x224,
    minimum 32x32). Call ``minidl.applications.resnet_v2.preprocess_input`` on the
    inputs first (pixels scaled to [-1, 1]).

    Returns:
        A functional ``Model``.
    """
    def stack_fn(x):
        x = resnet.stack_residual_blocks_v2(x, 64, 3, name="conv2")
        x = resnet.stack_residual_blocks_v2(x, 128, 4, name="conv3")
        x = resnet.stack_residual_blocks_v2(x, 256, 6, name="conv4")
        return resnet.stack_residual_blocks_v2(x, 512, 3, stride1=1, name="conv5")

    return resnet.ResNet(stack_fn, preact=True, use_bias=True, model_name="ResNet50V2",
                         include_top=include_top, weights=weights, input_tensor=input_tensor,
                         input_shape=input_shape, pooling=pooling, classes=classes,
                         classifier_activation=classifier_activation, name=name)


def preprocess_input(x, data_format=None):
    """Preprocesses images for ResNet50V2: ``imagenet_utils.preprocess_input`` with
    ``mode="tf"`` (pixels scaled to [-1, 1])."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
