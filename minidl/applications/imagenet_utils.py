"""What the ImageNet applications share: input preprocessing, decoding predictions into
ImageNet classes, and the input-shape checks (``keras.applications.imagenet_utils``).

The 1000 ImageNet classes (index -> WordNet id and name) ship with minidl as package data
(``data/imagenet_class_index.json``, the same file as Keras's, md5
c2c37ea517e94d9795004a39431a14cb), so decoding never needs the network.
"""
import json
import os
import warnings

import numpy as np

from minidl import activations

CLASS_INDEX = None
CLASS_INDEX_PATH = os.path.join(os.path.dirname(__file__), "data", "imagenet_class_index.json")

_MODES = ("caffe", "tf", "torch")
_DATA_FORMATS = ("channels_last", "channels_first")
# ImageNet's mean pixel in BGR order (caffe) and its RGB mean / std in [0, 1] (torch).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocesses a batch of images (or one image) for an ImageNet model.

    A NumPy array of floats is changed in place where it can be (as in Keras): pass
    ``np.copy(x)`` to keep the original. Integer arrays are converted to float32 first.
    A symbolic tensor (``minidl.Input``, a layer's output) gets the same arithmetic as
    graph operations, so the preprocessing can live inside a model.

    Args:
        x: a NumPy array or symbolic tensor, 3D or 4D with 3 colour channels, values in
            [0, 255].
        data_format: ``"channels_last"`` (the default, also for None) or
            ``"channels_first"``.
        mode: one of ``"caffe"``, ``"tf"`` or ``"torch"``.
            - caffe: converts the images from RGB to BGR, then zero-centers each colour
              channel with respect to ImageNet, without scaling.
            - tf: scales pixels between -1 and 1, sample-wise.
            - torch: scales pixels between 0 and 1, then normalizes each channel with
              ImageNet's mean and standard deviation.

    Returns:
        The preprocessed array (float32 for integer input) or tensor.

    Raises:
        ValueError: an unknown ``mode`` or ``data_format``, or ``x`` without 3 channels.

    Example:
        >>> x = np.full((1, 2, 2, 3), 255.0, dtype="float32")
        >>> preprocess_input(x, mode="tf")[0, 0, 0]
        array([1., 1., 1.], dtype=float32)
    """
    if mode not in _MODES:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. "
                         f"Received: mode={mode!r}")
    data_format = _check_data_format(data_format)
    from minidl.layers.node import SymbolicTensor
    from minidl.autodiff import Tensor
    if isinstance(x, (SymbolicTensor, Tensor)):
        return _preprocess_tensor_input(x, data_format, mode)
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    return _preprocess_numpy_input(x, data_format, mode)


def _check_data_format(data_format):
    if data_format is None:
        return "channels_last"
    if data_format not in _DATA_FORMATS:
        raise ValueError(f"Expected data_format to be one of `channels_first` or "
                         f"`channels_last`. Received: data_format={data_format!r}")
    return data_format


def _channel_axis(ndim, data_format):
    if ndim not in (3, 4):
        raise ValueError(f"preprocess_input expects a 3D image or a 4D batch of images. "
                         f"Received x with {ndim} dimensions.")
    return -1 if data_format == "channels_last" else ndim - 3


def _check_channels(shape, axis):
    if shape[axis] is not None and shape[axis] != 3:
        raise ValueError(f"preprocess_input expects 3 colour channels on axis {axis}. "
                         f"Received x of shape {tuple(shape)}.")


def _preprocess_numpy_input(x, data_format, mode):
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype("float32", copy=False)
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    axis = _channel_axis(x.ndim, data_format)
    _check_channels(x.shape, axis)
    if mode == "torch":
        x /= 255.0
        mean, std = _TORCH_MEAN, _TORCH_STD
    else:
        # RGB -> BGR as a reversed view: the subtraction below still writes into x.
        index = [slice(None)] * x.ndim
        index[axis] = slice(None, None, -1)
        x = x[tuple(index)]
        mean, std = _CAFFE_MEAN_BGR, None
    shape = [1] * x.ndim
    shape[axis] = 3
    x -= np.asarray(mean, dtype=x.dtype).reshape(shape)
    if std is not None:
        x /= np.asarray(std, dtype=x.dtype).reshape(shape)
    return x


def _preprocess_tensor_input(x, data_format, mode):
    from minidl import ops
    if mode == "tf":
        return x / 127.5 - 1.0
    axis = _channel_axis(len(x.shape), data_format)
    _check_channels(x.shape, axis)
    dtype = x.dtype if x.dtype in ("float32", "float64") else "float32"
    shape = [1] * len(x.shape)
    shape[axis] = 3
    if mode == "torch":
        x = x / 255.0
        mean, std = _TORCH_MEAN, _TORCH_STD
    else:
        stack_axis = axis % len(x.shape)
        channels = [ops.take(x, i, axis=stack_axis) for i in (2, 1, 0)]
        x = ops.stack(channels, axis=stack_axis)
        mean, std = _CAFFE_MEAN_BGR, None
    x = x - ops.convert_to_tensor(np.asarray(mean, dtype=dtype).reshape(shape))
    if std is not None:
        x = x / ops.convert_to_tensor(np.asarray(std, dtype=dtype).reshape(shape))
    return x


def _class_index():
    global CLASS_INDEX
    if CLASS_INDEX is None:
        with open(CLASS_INDEX_PATH, encoding="utf-8") as f:
            CLASS_INDEX = json.load(f)
    return CLASS_INDEX


def decode_predictions(preds, top=5):
    """Decodes the predictions of an ImageNet model.

    Args:
        preds: NumPy array of a batch of predictions, shape ``(samples, 1000)``.
        top: integer, how many top guesses to return per sample. Defaults to 5.

    Returns:
        A list (one per sample) of lists of ``(class_name, class_description, score)``
        tuples, best first, e.g. ``("n01440764", "tench", 0.9)``.

    Raises:
        ValueError: ``preds`` is not of shape ``(samples, 1000)``, or ``top`` is not a
            positive integer.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(f"`decode_predictions` expects a batch of predictions (i.e. a 2D "
                         f"array of shape (samples, 1000)). Received array with shape: "
                         f"{preds.shape}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"`top` must be a positive integer. Received: top={top!r}")
    index = _class_index()
    results = []
    for pred in preds:
        best = np.argsort(pred, kind="stable")[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in best]
        result.sort(key=lambda entry: entry[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten,
                       weights=None):
    """Computes and checks a model's input shape, as Keras's applications do.

    Args:
        input_shape: None (the model's default input shape) or a shape to check.
        default_size: the default input height and width.
        min_size: the smallest height and width the model accepts.
        data_format: ``"channels_last"`` or ``"channels_first"``.
        require_flatten: whether the model ends in a classifier that needs a static shape
            (``include_top=True``).
        weights: None, ``"imagenet"`` or a file path; ImageNet weights need 3 channels
            and, with the classifier, the default shape.

    Returns:
        The input shape, a tuple of 3 entries (None where any size is allowed).

    Raises:
        ValueError: a shape of the wrong rank, too small, without 3 channels where
            ImageNet weights need them, or without a static size where the classifier
            needs one.
    """
    data_format = _check_data_format(data_format)
    if input_shape is not None:
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: "
                             f"input_shape={input_shape!r}") from None
        if any(d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer))
                                  or d <= 0) for d in input_shape):
            raise ValueError(f"`input_shape` must be a tuple of three positive integers "
                             f"(None for any size). Received: input_shape={input_shape!r}")
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    channels_first = data_format == "channels_first"
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        channels = input_shape[0] if channels_first else input_shape[-1]
        if channels not in (1, 3):
            warnings.warn(f"This model usually expects 1 or 3 input channels. However, it "
                          f"was passed an input_shape with {channels} input channels.",
                          stacklevel=3)
        default_shape = ((channels, default_size, default_size) if channels_first
                         else (default_size, default_size, channels))
    else:
        default_shape = ((3, default_size, default_size) if channels_first
                         else (default_size, default_size, 3))
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(f"When setting `include_top=True` and loading `imagenet` "
                             f"weights, `input_shape` should be {default_shape}.  Received: "
                             f"input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: "
                             f"input_shape={input_shape}")
        channels = input_shape[0] if channels_first else input_shape[-1]
        rows, cols = input_shape[1:] if channels_first else input_shape[:2]
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received "
                             f"`input_shape={input_shape}`")
        if (rows is not None and rows < min_size) or (cols is not None and cols < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    elif require_flatten:
        input_shape = default_shape
    else:
        input_shape = (3, None, None) if channels_first else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(f"If `include_top` is True, you should specify a static "
                         f"`input_shape`. Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """The zero padding ``((top, bottom), (left, right))`` that makes a strided 'valid'
    convolution of ``kernel_size`` over ``inputs`` (channels_last) centre like TensorFlow's
    'same': one row / column less on the top / left of an even-sized input.

    Args:
        inputs: a symbolic tensor of shape ``(batch, rows, cols, channels)``.
        kernel_size: an integer or a tuple of 2 integers.

    Returns:
        A tuple of 2 tuples of 2 integers, for ``ZeroPadding2D``.
    """
    rows, cols = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if rows is None else (1 - rows % 2, 1 - cols % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """Checks that ``classifier_activation`` suits pretrained weights: with ``weights``
    other than None, only None and ``"softmax"`` are allowed (what the classifier was
    trained with).

    Raises:
        ValueError: an unknown activation, or one other than None / softmax with weights.
    """
    activation = activations.get(classifier_activation)
    if weights is None:
        return
    if getattr(activation, "name", None) not in ("softmax", "linear"):
        raise ValueError(f"Only `None` and `softmax` activations are allowed for the "
                         f"`classifier_activation` argument when using pretrained weights, "
                         f"with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation!r}")
