"""VGG16 (``keras.applications.vgg16``).

Reference: Very Deep Convolutional Networks for Large-Scale Image Recognition
(Simonyan & Zisserman, ICLR 2015), https://arxiv.org/abs/1409.1556
"""
from minidl import layers
from minidl.applications import _builder, imagenet_utils


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
          pooling=None, classes=1000, classifier_activation="softmax", name="vgg16"):
    """Instantiates the VGG16 model.

    Layer names, layer order and weight order are Keras's. The default input size is
    224x224; call ``minidl.applications.vgg16.preprocess_input`` on the inputs first (RGB
    to BGR, then each channel zero-centred with respect to ImageNet, without scaling).

    Args:
        include_top: whether to include the 3 fully-connected layers at the top.
        weights: None (random initialization) or the path to a weights file to load.
            ``"imagenet"`` (Keras's default) raises a ValueError: minidl does not
            download pretrained weights.
        input_tensor: optional symbolic tensor (the output of ``minidl.Input`` or of a
            layer) to use as the image input.
        input_shape: optional shape tuple, only to be given if ``include_top`` is False
            (otherwise it must be ``(224, 224, 3)``); height and width at least 32.
        pooling: feature pooling when ``include_top`` is False: None (the 4D output of the
            last convolutional block), ``"avg"`` (global average pooling, a 2D output) or
            ``"max"`` (global max pooling).
        classes: number of classes, when ``include_top`` is True.
        classifier_activation: activation of the "predictions" layer (None for logits).
        name: the model's name.

    Returns:
        A functional ``Model``.

    Example:
        >>> model = VGG16(weights=None, input_shape=(32, 32, 3), include_top=False,
        ...               pooling="avg")
        >>> model.output_shape
        (None, 512)
    """
    return _vgg((2, 2, 3, 3, 3), "VGG16", include_top, weights, input_tensor, input_shape,
                pooling, classes, classifier_activation, name)


def _vgg(convs_per_block, model_name, include_top, weights, input_tensor, input_shape,
         pooling, classes, classifier_activation, name):
    """VGG16 and VGG19: five blocks of 3x3 'same' convolutions (64, 128, 256, 512, 512
    filters, ``convs_per_block`` each), each block ending in a 2x2 max pooling."""
    _builder.check_arguments(include_top, weights, classes, pooling, classifier_activation,
                             input_tensor)
    input_shape = imagenet_utils.obtain_input_shape(
        input_shape, default_size=224, min_size=32, data_format="channels_last",
        require_flatten=include_top, weights=weights)
    if weights == "imagenet":
        _builder.refuse_imagenet(model_name)
    img_input = _builder.image_input(input_tensor, input_shape, min_size=32)
    x = img_input
    for block, (filters, convs) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block),
                                             start=1):
        for conv in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                              name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = _builder.pool_features(x, pooling)
    return _builder.make_model(img_input, input_tensor, x, name, weights)


def preprocess_input(x, data_format=None):
    """Preprocesses images for VGG16: ``imagenet_utils.preprocess_input`` with
    ``mode="caffe"`` (RGB to BGR, then each channel zero-centred with respect to
    ImageNet, without scaling)."""
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions: see ``imagenet_utils.decode_predictions``."""
    return imagenet_utils.decode_predictions(preds, top=top)
