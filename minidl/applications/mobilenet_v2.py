"""MobileNetV2 (``keras.applications.mobilenet_v2``).

Reference: MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et al.,
CVPR 2018), https://arxiv.org/abs/1801.04381
"""
import numbers

from minidl import layers
from minidl.applications import _builder, imagenet_utils

# The sizes and width multipliers Keras has ImageNet weights for.
_IMAGENET_SIZES = (96, 128, 160, 192, 224)
_IMAGENET_ALPHAS = (0.35, 0.50, 0.75, 1.0, 1.3, 1.4)
# Keras's BatchNormalization settings in MobileNetV2 (those of the TensorFlow original).
_BN = {"axis": -1, "epsilon": 1e-3, "momentum": 0.999}
# (filters, stride, expansion) of the 17 inverted residual blocks, block_id 0 to 16.
_BLOCKS = ((16, 1, 1),
           (24, 2, 6), (24, 1, 6),
           (32, 2, 6), (32, 1, 6), (32, 1, 6),
           (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
           (96, 1, 6), (96, 1, 6), (96, 1, 6),
           (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6))


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet",
                input_tensor=None, pooling=None, classes=1000,
                classifier_activation="softmax", name=None):
    """Instantiates the MobileNetV2 architecture.

    Layer names, layer order and weight order are Keras's. The default input size is
    224x224 (a square input of 96, 128, 160 or 192 is its own default size); call
    ``minidl.applications.mobilenet_v2.preprocess_input`` on the inputs first (pixels
    scaled to [-1, 1]).

    Args:
        input_shape: optional shape tuple, to be given if you would like a model with an
            input image size other than (224, 224, 3); height and width at least 32.
        alpha: the width multiplier: below 1.0 fewer filters in every layer, above 1.0
            more (the last convolution grows only above 1.0); 1.0 is the paper's default.
        include_top: whether to include the fully-connected layer at the top.
        weights: None (random initialization) or the path to a weights file to load.
            ``"imagenet"`` (Keras's default) raises a ValueError: minidl does not
            download pretrained weights.
        input_tensor: optional symbolic tensor (the output of ``minidl.Input`` or of a
            layer) to use as the image input.
        pooling: feature pooling when ``include_top`` is False: None (the 4D output of the
            last convolution), ``"avg"`` or ``"max"`` (global pooling, a 2D output).
        classes: number of classes, when ``include_top`` is True.
        classifier_activation: activation of the "predictions" layer (None for logits).
        name: the model's name; by default ``mobilenetv2_{alpha:0.2f}_{rows}``.

    Returns:
        A functional ``Model``.

    Example:
        >>> model = MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
        >>> model.name
        'mobilenetv2_1.00_96'
    """
    _builder.check_arguments(include_top, weights, classes, pooling, classifier_activation,
                             input_tensor)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
        raise ValueError(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
    if input_shape is not None and input_tensor is not None:
        shape = tuple(input_shape)
        if len(shape) != 3 or input_tensor.shape[2] != shape[1]:
            raise ValueError(f"input_tensor.shape[2] must equal input_shape[1]; Received "
                             f"`input_tensor.shape={input_tensor.shape}`, "
                             f"`input_shape={input_shape}`")
    # The default size follows the given (or the tensor's) square size where Keras has
    # weights for it.
    if input_shape is None and input_tensor is not None:
        rows, cols = input_tensor.shape[1:3]
    elif input_shape is not None:
        try:
            rows, cols = tuple(input_shape)[:2]
        except (TypeError, ValueError):
            rows = cols = None
    else:
        rows = cols = None
    default_size = rows if rows == cols and rows in _IMAGENET_SIZES else 224
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=default_size, min_size=32, data_format="channels_last",
        require_flatten=include_top, weights=weights)
    rows = input_shape[0]
    if weights == "imagenet":
        if alpha not in _IMAGENET_ALPHAS:
            raise ValueError(f"If imagenet weights are being loaded, alpha must be one of "
                             f"`0.35`, `0.50`, `0.75`, `1.0`, `1.3` or `1.4` only; Received "
                             f"`alpha={alpha}`")
        _builder.refuse_imagenet("MobileNetV2")
    img_input = _builder.image_input(input_tensor, input_shape, min_size=32)

    first_block_filters = _make_divisible(32 * alpha, 8)
    x = layers.Conv2D(first_block_filters, kernel_size=3, strides=(2, 2), padding="same",
                      use_bias=False, name="Conv1")(img_input)
    x = layers.BatchNormalization(name="bn_Conv1", **_BN)(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride,
                                expansion=expansion, block_id=block_id)
    # No alpha on the last convolution below 1.0, as in the paper: only wider networks
    # get more output channels.
    last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
    x = layers.BatchNormalization(name="Conv_1_bn", **_BN)(x)
    x = layers.ReLU(6.0, name="out_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pool_features(x, pooling)
    if name is None:
        name = f"mobilenetv2_{alpha:0.2f}_{rows}"
    return _builder.make_model(img_input, input_tensor, x, name, weights)


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    """Expand (1x1, except block 0), 3x3 depthwise (strided with TensorFlow's 'same'
    padding made explicit), project (1x1, linear); a residual add where shapes allow."""
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same",
                          use_bias=False, activation=None, name=f"{prefix}expand")(x)
        x = layers.BatchNormalization(name=f"{prefix}expand_BN", **_BN)(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=imagenet_utils.correct_pad(x, 3),
                                 name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None,
                               use_bias=False, padding="same" if stride == 1 else "valid",
                               name=f"{prefix}depthwise")(x)
    x = layers.BatchNormalization(name=f"{prefix}depthwise_BN", **_BN)(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False,
                      activation=None, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(name=f"{prefix}project_BN", **_BN)(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _make_divisible(v, divisor, min_value=None):
    """``v`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``), and
    never more than 10% below ``v``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def preprocess_input(x, data_format=None):
    """Preprocesses images for MobileNetV2: ``imagenet_utils.preprocess_input`` with
    ``mode="tf"`` (pixels scaled to [-1, 1])."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
