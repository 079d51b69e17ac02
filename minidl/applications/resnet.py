"""ResNet50 (``keras.applications.resnet``) and the ResNet builder ResNet50V2 shares.

Reference: Deep Residual Learning for Image Recognition (He et al., CVPR 2015),
https://arxiv.org/abs/1512.03385
"""
from minidl import layers
from minidl.applications import _builder, imagenet_utils

# Keras's BatchNormalization epsilon in every ResNet (the value of the original Caffe
# models), so that their ImageNet weights give the same outputs.
BN_EPSILON = 1.001e-5


def ResNet(stack_fn, preact, use_bias, model_name, include_top=True, weights="imagenet",
           input_tensor=None, input_shape=None, pooling=None, classes=1000,
           classifier_activation="softmax", name="resnet"):
    """A ResNet: a 7x7 stem convolution, a 3x3 max pooling, the residual stacks that
    ``stack_fn`` adds, then the classifier or the feature pooling.

    Args:
        stack_fn: function of a tensor returning the output of the residual stacks.
        preact: whether the blocks use pre-activation (ResNetV2): the stem then has no
            BatchNormalization / ReLU, and a final "post_bn" / "post_relu" follows.
        use_bias: whether the stem convolution has a bias.
        model_name: the application's name, for error messages.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in :func:`ResNet50`.

    Returns:
        A functional ``Model``.
    """
    _builder.check_arguments(include_top, weights, classes, pooling, classifier_activation,
                             input_tensor)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=224, min_size=32, data_format="channels_last",
        require_flatten=include_top, weights=weights)
    if weights == "imagenet":
        _builder.refuse_imagenet(model_name)
    img_input = _builder.image_input(input_tensor, input_shape, min_size=32)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name="post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pool_features(x, pooling, avg_name="avg_pool", max_name="max_pool")
    return _builder.make_model(img_input, input_tensor, x, name, weights)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """A bottleneck residual block (1x1, kernel_size, 1x1 convolutions, 4 * filters out),
    with a projection shortcut (``conv_shortcut``) or the identity."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON,
                                             name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    """``blocks`` residual blocks; the first projects the shortcut and strides by
    ``stride1``."""
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """A pre-activation bottleneck block (ResNetV2): BatchNormalization and ReLU before
    the convolutions; the shortcut is a projection of the pre-activation
    (``conv_shortcut``), a strided 1x1 max pooling of the input, or the input."""
    preact = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON,
                                       name=f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride,
                                 name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False,
                      name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    """``blocks`` pre-activation blocks: the first projects the shortcut, the last strides
    by ``stride1`` (ResNetV2 downsamples at the end of a stack)."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, classifier_activation="softmax", name="resnet50"):
    """Instantiates the ResNet50 architecture.

    Layer names, layer order and weight order are Keras's. The default input size is
    224x224; call ``minidl.applications.resnet50.preprocess_input`` on the inputs first
    (RGB to BGR, then each channel zero-centred with respect to ImageNet, without
    scaling).

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
            last block), ``"avg"`` or ``"max"`` (global pooling, a 2D output).
        classes: number of classes, when ``include_top`` is True.
        classifier_activation: activation of the "predictions" layer (None for logits).
        name: the model's name.

    Returns:
        A functional ``Model``.

    Example:
        >>> model = ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
        >>> model.count_params()
        23608202
    """
    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 64, 3, stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 128, 4, name="conv3")
        x = stack_residual_blocks_v1(x, 256, 6, name="conv4")
        return stack_residual_blocks_v1(x, 512, 3, name="conv5")

    return ResNet(stack_fn, preact=False, use_bias=True, model_name="ResNet50",
                  include_top=include_top, weights=weights, input_tensor=input_tensor,
                  input_shape=input_shape, pooling=pooling, classes=classes,
                  classifier_activation=classifier_activation, name=name)


def preprocess_input(x, data_format=None):
    """Preprocesses images for ResNet50: ``imagenet_utils.preprocess_input`` with
    ``mode="caffe"``."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
