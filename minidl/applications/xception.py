"""Xception (``keras.applications.xception``).

Reference: Xception: Deep Learning with Depthwise Separable Convolutions (Chollet,
CVPR 2017), https://arxiv.org/abs/1610.02357
"""
from minidl import layers
from minidl.applications import _builder, imagenet_utils


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name="xception"):
    """Instantiates the Xception architecture.

    Layer names, layer order and weight order are Keras's (the shortcut convolutions and
    their BatchNormalization layers are unnamed in Keras too, so they get automatic
    names). The default input size is 299x299; call
    ``minidl.applications.xception.preprocess_input`` on the inputs first (pixels scaled
    to [-1, 1]).

    Args:
        include_top: whether to include the fully-connected layer at the top.
        weights: None (random initialization) or the path to a weights file to load.
            ``"imagenet"`` (Keras's default) raises a ValueError: minidl does not
            download pretrained weights.
        input_tensor: optional symbolic tensor (the output of ``minidl.Input`` or of a
            layer) to use as the image input.
        input_shape: optional shape tuple, only to be given if ``include_top`` is False
            (otherwise it must be ``(299, 299, 3)``); height and width at least 71.
        pooling: feature pooling when ``include_top`` is False: None (the 4D output of the
            last block), ``"avg"`` or ``"max"`` (global pooling, a 2D output).
        classes: number of classes, when ``include_top`` is True.
        classifier_activation: activation of the "predictions" layer (None for logits).
        name: the model's name.

    Returns:
        A functional ``Model``.
    """
    _builder.check_arguments(include_top, weights, classes, pooling, classifier_activation,
                             input_tensor)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=299, min_size=71, data_format="channels_last",
        require_flatten=include_top, weights=weights)
    if weights == "imagenet":
        _builder.refuse_imagenet("Xception")
    img_input = _builder.image_input(input_tensor, input_shape, min_size=71)

    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False,
                      name="block1_conv1")(img_input)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    # Entry flow: blocks 2 to 4 halve the size, with a strided 1x1 projection beside.
    # Block 2 starts from the activation of block 1, so it has no leading ReLU.
    for block, filters in ((2, 128), (3, 256), (4, 728)):
        x = _downsampling_block(x, block, (filters, filters), leading_relu=block > 2)
    # Middle flow: blocks 5 to 12, three separable convolutions and an identity shortcut.
    for block in range(5, 13):
        residual = x
        prefix = f"block{block}"
        for conv in (1, 2, 3):
            x = layers.Activation("relu", name=f"{prefix}_sepconv{conv}_act")(x)
            x = layers.SeparableConv2D(728, (3, 3), padding="same", use_bias=False,
                                       name=f"{prefix}_sepconv{conv}")(x)
            x = layers.BatchNormalization(name=f"{prefix}_sepconv{conv}_bn")(x)
        x = layers.add([x, residual])
    # Exit flow.
    x = _downsampling_block(x, 13, (728, 1024), leading_relu=True)
    x = layers.SeparableConv2D(1536, (3, 3), padding="same", use_bias=False,
                               name="block14_sepconv1")(x)
    x = layers.BatchNormalization(name="block14_sepconv1_bn")(x)
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = layers.SeparableConv2D(2048, (3, 3), padding="same", use_bias=False,
                               name="block14_sepconv2")(x)
    x = layers.BatchNormalization(name="block14_sepconv2_bn")(x)
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pool_features(x, pooling)
    return _builder.make_model(img_input, input_tensor, x, name, weights)


def _downsampling_block(x, block, filters, leading_relu):
    """Two separable convolutions (``filters``) and a strided 3x3 max pooling, added to a
    strided 1x1 projection of the block's input; layers made in Keras's order (the
    projection first), so that the automatic names and the weight order match."""
    residual = layers.Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same",
                             use_bias=False)(x)
    residual = layers.BatchNormalization()(residual)
    prefix = f"block{block}"
    for conv, conv_filters in enumerate(filters, start=1):
        if conv > 1 or leading_relu:
            x = layers.Activation("relu", name=f"{prefix}_sepconv{conv}_act")(x)
        x = layers.SeparableConv2D(conv_filters, (3, 3), padding="same", use_bias=False,
                                   name=f"{prefix}_sepconv{conv}")(x)
        x = layers.BatchNormalization(name=f"{prefix}_sepconv{conv}_bn")(x)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"{prefix}_pool")(x)
    return layers.add([x, residual])


def preprocess_input(x, data_format=None):
    """Preprocesses images for Xception: ``imagenet_utils.preprocess_input`` with
    ``mode="tf"`` (pixels scaled to [-1, 1])."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
