"""The steps every application takes around its own layers: checking the arguments,
making (or adopting) the image input, the optional pooling of the features, and making the
model and loading weights from a file. Keras repeats them in each application; here they
are written once, with Keras's checks and messages.
"""
import numbers
import os

from minidl import layers
from minidl.applications import imagenet_utils
from minidl.layers.core import InputLayer
from minidl.layers.node import SymbolicTensor

_POOLINGS = (None, "avg", "max")


def check_arguments(include_top, weights, classes, pooling, classifier_activation,
                    input_tensor):
    """Keras's checks of the arguments every application takes, plus the ones Keras leaves
    to fail later (``include_top`` not a bool, ``pooling`` misspelt, ``classes`` not a
    positive integer), each a ValueError / TypeError naming the argument."""
    if not isinstance(include_top, bool):
        raise TypeError(f"`include_top` must be a bool. Received: include_top={include_top!r}")
    imagenet = isinstance(weights, str) and weights == "imagenet"
    path = isinstance(weights, (str, os.PathLike)) and not imagenet
    if not (weights is None or imagenet or (path and os.path.exists(weights))):
        raise ValueError(f"The `weights` argument should be either `None` (random "
                         f"initialization), 'imagenet' (pre-training on ImageNet), or the "
                         f"path to the weights file to be loaded.  Received: "
                         f"weights={weights!r}")
    if isinstance(classes, bool) or not isinstance(classes, numbers.Integral) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    if imagenet and include_top and classes != 1000:
        raise ValueError(f"If using `weights='imagenet'` with `include_top=True`, `classes` "
                         f"should be 1000.  Received classes={classes}")
    if pooling not in _POOLINGS:
        raise ValueError(f"`pooling` must be one of None, 'avg' or 'max'. Received: "
                         f"pooling={pooling!r}")
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
    if input_tensor is not None and not isinstance(input_tensor, SymbolicTensor):
        raise TypeError(f"`input_tensor` must be a symbolic tensor (the output of "
                        f"`minidl.Input` or of a layer called on one). Received: "
                        f"input_tensor of type {type(input_tensor).__name__}")


def refuse_imagenet(model_name):
    """The error for ``weights='imagenet'``: minidl does not download files."""
    raise ValueError(
        f"{model_name}: weights='imagenet' cannot be used: minidl does not download "
        f"pretrained weights. Build the model with weights=None (random initialization), or "
        f"pass weights=<path>, read with `model.load_weights`: a weights file saved by "
        f"minidl or by Keras (such as Keras's ImageNet '.h5' file for this model, downloaded "
        f"once), as the layer names and weight order are Keras's.")


def image_input(input_tensor, input_shape, min_size):
    """The model's image input: a new ``Input(shape=input_shape)``, or ``input_tensor``
    itself (a symbolic tensor of rank 4 whose known height and width are at least
    ``min_size``)."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    shape = tuple(input_tensor.shape)
    if len(shape) != 4:
        raise ValueError(f"`input_tensor` must be a batch of images of rank 4 (batch, rows, "
                         f"cols, channels). Received: input_tensor.shape={shape}")
    if any(d is not None and d < min_size for d in shape[1:3]):
        raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: "
                         f"input_tensor.shape={shape}")
    return input_tensor


def pool_features(x, pooling, avg_name=None, max_name=None):
    """Global average or max pooling of the features (``pooling``), or ``x`` unchanged."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def source_inputs(tensor):
    """The ``Input`` tensors that ``tensor`` is computed from, in the order first met
    (Keras's ``operation_utils.get_source_inputs``)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        current = stack.pop()
        history = current._keras_history
        layer = history.operation
        if isinstance(layer, InputLayer):
            if id(current) not in seen:
                seen.add(id(current))
                found.append(current)
            continue
        node = layer._inbound_nodes[history.node_index]
        stack.extend(reversed(node.input_tensors))
    return found[0] if len(found) == 1 else found


def make_model(img_input, input_tensor, outputs, name, weights):
    """The functional model from the image input (or the inputs ``input_tensor`` comes
    from) to ``outputs``, with the weights of the file ``weights`` when it is a path."""
    from minidl.models import Model
    inputs = img_input if input_tensor is None else source_inputs(input_tensor)
    model = Model(inputs, outputs, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model
