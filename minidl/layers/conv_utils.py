"""Argument checks and Keras' output-shape rules shared by the convolution and pooling layers.

For one spatial axis of length ``n``, a window of ``k`` taps ``d`` apart (its extent is
``(k - 1) * d + 1``) moved by stride ``s``:
    'valid':  out = floor((n - extent) / s) + 1, no padding (the window must fit: n >= extent)
    'same':   out = ceil(n / s); total padding max((out - 1) * s + extent - n, 0), of which
              the smaller half goes before the input and the rest after it (TF's rule)
    'causal': (Conv1D only) out = ceil(n / s) with ``extent - 1`` zeros before the input only,
              so output step t never sees input steps after t * s.
"""
import numpy as np

from minidl import config


def normalize_tuple(value, rank, name, owner):
    """``value`` (an int, or a sequence of ``rank`` ints) as a tuple of ``rank`` positive ints.

    Args:
        value: the argument as given.
        rank: the number of spatial axes (1 or 2).
        name: the argument's name, for messages ('kernel_size', 'strides', ...).
        owner: the layer's class name, for messages.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (int(value),) * rank
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(f"{owner} {name} must be an int or a tuple of {rank} ints; "
                            f"received {name}={value!r}.") from None
        if len(values) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                      for v in values):
            raise ValueError(f"{owner} {name} must be an int or a tuple of {rank} ints; "
                             f"received {name}={value!r}.")
        values = tuple(int(v) for v in values)
    if any(v <= 0 for v in values):
        raise ValueError(f"{owner} {name} must be positive; received {name}={value!r}.")
    return values


def normalize_padding(padding, allowed, owner):
    """The padding mode in lower case, one of ``allowed``; ValueError otherwise."""
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in allowed:
        raise ValueError(f"{owner} padding must be one of {', '.join(map(repr, allowed))}; "
                         f"received padding={padding!r}.")
    return mode


def check_data_format(data_format, layer):
    """``data_format`` standardised (None: ``minidl.config.image_data_format()``).

    Args:
        data_format: None, 'channels_last' or 'channels_first'.
        layer: the layer being made; 'channels_first' needs one that runs it
            (``data_format.ChannelsFirstMixin``). A class name (str) stands for a layer
            that runs channels_last only.
    """
    owner = layer if isinstance(layer, str) else type(layer).__name__
    given = data_format
    try:
        data_format = config.standardize_data_format(data_format)
    except ValueError:
        raise ValueError(f"{owner} data_format must be 'channels_last', 'channels_first' or "
                         f"None; received data_format={data_format!r:.100}.") from None
    if data_format == "channels_first" and not getattr(layer, "supports_channels_first", False):
        raise ValueError(f"{owner} supports data_format='channels_last' only; received "
                         f"data_format={given!r}"
                         f"{' (minidl.config.image_data_format())' if given is None else ''}. "
                         f"Transpose the data to "
                         f"(batch, ..., channels) instead.")
    return data_format


def output_length(length, window, stride, dilation, padding):
    """Output length along one axis and the padding before the input, by Keras' rules."""
    extent = (window - 1) * dilation + 1
    if padding == "valid":
        return (length - extent) // stride + 1, 0
    out = -(-length // stride)
    if padding == "causal":
        return out, extent - 1
    total = max((out - 1) * stride + extent - length, 0)
    return out, total // 2


def window_geometry(layer, input_shape, spatial, window, strides, dilation, padding, what):
    """Output spatial shape and padding before the input, checking that the window fits.

    Args:
        layer: the layer (for messages).
        input_shape: the full sample shape (spatial axes, then channels).
        spatial: the spatial part of it.
        window, strides, dilation: tuples, one entry per spatial axis.
        padding: 'valid', 'same' or 'causal'.
        what: 'kernel' or 'pool', for messages.
    Returns:
        (output spatial shape, pads before the input), both tuples; None (and a pad of 0)
        along an axis of unknown length.
    """
    out, pads = [], []
    for length, k, s, d in zip(spatial, window, strides, dilation):
        if length is None:   # any length: known per call, once the data has one
            out.append(None)
            pads.append(0)
            continue
        extent = (k - 1) * d + 1
        if padding == "valid" and extent > length:
            size = "x".join(map(str, window))
            dilated = f" (dilated to {extent})" if d > 1 else ""
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}): the {what} of size {size}"
                f"{dilated} is larger than its input of shape {(None,) + tuple(input_shape)} "
                f"with padding='valid'; use padding='same', a smaller {what} or larger inputs.")
        o, p = output_length(length, k, s, d, padding)
        out.append(o)
        pads.append(p)
    return tuple(out), tuple(pads)


def check_input_rank(layer, input_shape, rank, layout):
    """ValueError naming the layer unless a sample has ``rank`` spatial axes + channels."""
    if len(input_shape) != rank + 1:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) expects "
                         f"{rank + 2}-D input {layout}; received input of shape "
                         f"{(None,) + tuple(input_shape)}.")


def known_channels(layer, input_shape):
    """The number of channels (the last axis) of ``input_shape``; ValueError naming the layer
    when it is unknown (None), which building weights or buffers needs."""
    channels = input_shape[-1]
    if channels is None:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) needs a known "
                         f"number of channels; received inputs of shape "
                         f"{(None,) + tuple(input_shape)}.")
    return channels


def check_filters(filters, owner):
    """``filters`` as a positive int; ValueError naming ``owner`` otherwise."""
    if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters <= 0:
        raise ValueError(f"{owner} filters must be a positive int; received "
                         f"filters={filters!r}.")
    return int(filters)


def check_strides_with_dilation(strides, dilation_rate, owner):
    """Keras refuses strides > 1 together with dilation > 1 in the transposed and 3-D
    convolutions."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(f"{owner}: `strides > 1` not supported in conjunction with "
                         f"`dilation_rate > 1`. Received: strides={strides} and "
                         f"dilation_rate={dilation_rate}")
