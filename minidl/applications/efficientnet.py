"""EfficientNetB0 (``keras.applications.efficientnet``) and the EfficientNet builder.

Reference: EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks (Tan &
Le, ICML 2019), https://arxiv.org/abs/1905.11946
"""
import copy
import math
import numbers

from minidl import layers
from minidl.applications import _builder, imagenet_utils

# The B0 network's stages; the larger variants scale filters and repeats.
DEFAULT_BLOCKS_ARGS = [
    {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1,
     "id_skip": True, "strides": 1, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6,
     "id_skip": True, "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 2, "filters_in": 24, "filters_out": 40, "expand_ratio": 6,
     "id_skip": True, "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 3, "filters_in": 40, "filters_out": 80, "expand_ratio": 6,
     "id_skip": True, "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 3, "filters_in": 80, "filters_out": 112, "expand_ratio": 6,
     "id_skip": True, "strides": 1, "se_ratio": 0.25},
    {"kernel_size": 5, "repeats": 4, "filters_in": 112, "filters_out": 192, "expand_ratio": 6,
     "id_skip": True, "strides": 2, "se_ratio": 0.25},
    {"kernel_size": 3, "repeats": 1, "filters_in": 192, "filters_out": 320, "expand_ratio": 6,
     "id_skip": True, "strides": 1, "se_ratio": 0.25},
]

CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                           "config": {"scale": 2.0, "mode": "fan_out",
                                      "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 1.0 / 3.0, "mode": "fan_out",
                                       "distribution": "uniform"}}


def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2,
                 drop_connect_rate=0.2, depth_divisor=8, activation="swish",
                 blocks_args="default", name="efficientnet", include_top=True,
                 weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                 classes=1000, classifier_activation="softmax", model_name="EfficientNet"):
    """An EfficientNet of the given width and depth scaling.

    Args:
        width_coefficient: float, scaling of the number of filters.
        depth_coefficient: float, scaling of the number of blocks per stage.
        default_size: integer, the default input height and width.
        dropout_rate: float, dropout before the classifier.
        drop_connect_rate: float, the largest rate of the stochastic-depth dropouts on
            the residual branches (growing linearly from 0 over the blocks).
        depth_divisor: integer, the unit of the network's width.
        activation: activation of the convolutions.
        blocks_args: ``"default"`` or a list of dicts, the stages.
        name: the model's name.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation: as in :func:`EfficientNetB0`.
        model_name: the application's name, for error messages.

    Returns:
        A functional ``Model``.
    """
    _builder.check_arguments(include_top, weights, classes, pooling, classifier_activation,
                             input_tensor)
    for arg, value, low in (("dropout_rate", dropout_rate, 0.0),
                            ("drop_connect_rate", drop_connect_rate, 0.0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not low <= value < 1.0:
            raise ValueError(f"`{arg}` must be a float in [0, 1). Received: {arg}={value!r}")
    if blocks_args == "default":
        blocks_args = DEFAULT_BLOCKS_ARGS
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format="channels_last",
        require_flatten=include_top, weights=weights)
    if weights == "imagenet":
        _builder.refuse_imagenet(model_name)
    img_input = _builder.image_input(input_tensor, input_shape, min_size=32)

    def round_filters(filters, divisor=depth_divisor):
        """The number of filters scaled by the width, rounded to the divisor."""
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        if new_filters < 0.9 * filters:   # rounding down must not lose more than 10%
            new_filters += divisor
        return int(new_filters)

    def round_repeats(repeats):
        """The number of blocks scaled by the depth."""
        return int(math.ceil(depth_coefficient * repeats))

    # The stem normalizes the input itself (so preprocess_input is the identity). The
    # Normalization layer keeps Keras's layer and weight list (mean, variance, count), which
    # ImageNet weights fill with ImageNet's statistics; with other weights it is the
    # identity, as an unadapted Normalization is (mean 0, variance 1).
    x = layers.Rescaling(1.0 / 255.0)(img_input)
    x = layers.Normalization(axis=-1)(x)
    x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3),
                             name="stem_conv_pad")(x)
    x = layers.Conv2D(round_filters(32), 3, strides=2, padding="valid", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)

    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["repeats"] <= 0:
            raise ValueError(f"Each block's `repeats` must be a positive integer. Received: "
                             f"repeats={args['repeats']}")
        args["filters_in"] = round_filters(args["filters_in"])
        args["filters_out"] = round_filters(args["filters_out"])
        for j in range(round_repeats(args.pop("repeats"))):
            # Only the first block of a stage strides and changes the number of filters.
            if j > 0:
                args["strides"] = 1
                args["filters_in"] = args["filters_out"]
            x = block(x, activation, drop_connect_rate * b / blocks,
                      name=f"block{i + 1}{chr(j + 97)}_", **args)
            b += 1

    x = layers.Conv2D(round_filters(1280), 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, name="top_conv")(x)
    x = layers.BatchNormalization(name="top_bn")(x)
    x = layers.Activation(activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation,
                         kernel_initializer=DENSE_KERNEL_INITIALIZER, name="predictions")(x)
    else:
        x = _builder.pool_features(x, pooling, avg_name="avg_pool", max_name="max_pool")
    return _builder.make_model(img_input, input_tensor, x, name, weights)


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16,
          kernel_size=3, strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """An inverted residual block (MBConv): expansion, depthwise convolution,
    squeeze-and-excitation, projection, and a residual add with stochastic depth where
    shapes allow.

    Returns:
        The block's output tensor.
    """
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=CONV_KERNEL_INITIALIZER,
                          name=f"{name}expand_conv")(inputs)
        x = layers.BatchNormalization(name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, kernel_size),
                                 name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER,
                               name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=activation,
                           kernel_initializer=CONV_KERNEL_INITIALIZER,
                           name=f"{name}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                           kernel_initializer=CONV_KERNEL_INITIALIZER,
                           name=f"{name}se_expand")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=CONV_KERNEL_INITIALIZER,
                      name=f"{name}project_conv")(x)
    x = layers.BatchNormalization(name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1),
                               name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNetB0(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax",
                   name="efficientnetb0"):
    """Instantiates the EfficientNetB0 architecture.

    Layer names, layer order and weight order are Keras's. The default input size is
    224x224. The model normalizes its input itself (a ``Rescaling`` and a
    ``Normalization`` layer): it takes pixels in [0, 255], and
    ``minidl.applications.efficientnet.preprocess_input`` is the identity.

    Args:
        include_top: whether to include the fully-connected layer at the top.
        weights: None (random initialization) or the path to a weights file to load.
            ``"imagenet"`` (Keras's default) raises a ValueError: minidl does not
            download pretrained weights.
        input_tensor: optional symbolic tensor (the output of ``minidl.Input`` or of a
            layer) to use as the image input.
        input_shape: optional shape tuple, only to be given if ``include_top`` is False
            (otherwise it must be ``(224, 224, 3)``); height and width at least 32.
        pooling: feature pooling when ``include_top`` is False: None (the 4D output of the
            last convolution), ``"avg"`` or ``"max"`` (global pooling, a 2D output).
        classes: number of classes, when ``include_top`` is True.
        classifier_activation: activation of the "predictions" layer (None for logits).
        name: the model's name.

    Returns:
        A functional ``Model``.
    """
    return EfficientNet(1.0, 1.0, 224, 0.2, name=name, include_top=include_top,
                        weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                        pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation,
                        model_name="EfficientNetB0")


def preprocess_input(x, data_format=None):
    """The identity: EfficientNet models normalize their input themselves. Kept so that
    every application has the same API.

    Args:
        x: a NumPy array or tensor of images.
        data_format: ``"channels_last"``, ``"channels_first"`` or None (checked, unused).

    Returns:
        ``x`` unchanged.
    """
    imagenet_utils._check_data_format(data_format)
    return x


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
