"""Zero padding and cropping of sequences, images and volumes (channels_last), as in Keras:
ZeroPadding1D/2D/3D and Cropping1D/2D/3D.

Each sample is viewed as a volume ``(depth, height, width, channels)`` (1-D and 2-D samples
with leading axes of length 1), and one compiled copy (``minidl._core._resample.place``)
moves it to its place in the output: at ``+padding`` for zero padding, at ``-cropping`` for
cropping. Each layer's backward pass is the other's forward pass: the gradient of a padding
is the crop of the output gradient, that of a cropping the output gradient padded with zeros.
Spatial sizes may be unknown (None) at build time; they are read from each batch.
"""
import numbers

import numpy as np

from minidl._core import _resample
from minidl.layers.base import LAYERS, Layer
from minidl.layers.conv_utils import check_data_format, check_input_rank
from minidl.layers.data_format import ChannelsFirstMixin

_LAYOUTS = {1: "(batch, steps, channels)", 2: "(batch, height, width, channels)",
            3: "(batch, dim1, dim2, dim3, channels)"}
_ORDINALS = ("1st", "2nd", "3rd")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(value, name, owner, given):
    """``value`` as (before, after): an int means the same on both sides."""
    if _is_int(value):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = None
        if (pair is None or isinstance(value, (str, bytes)) or len(pair) != 2
                or not all(_is_int(v) for v in pair)):
            raise ValueError(f"{owner} `{name}` must be an int or a tuple of 2 ints. "
                             f"Received: {name}={given!r:.100}")
        pair = (int(pair[0]), int(pair[1]))
    if min(pair) < 0:
        raise ValueError(f"{owner} `{name}` cannot be negative. Received: {name}={given!r:.100}")
    return pair


def normalize_margins(value, rank, name, owner):
    """Keras' forms of a padding or cropping argument as ``rank`` (before, after) pairs.

    Args:
        value: an int (the same on every side); for rank 1 a tuple of 2 ints
            ``(before, after)``; for rank 2 or 3 a tuple of ``rank`` entries, each an int
            (symmetric along that axis) or a tuple of 2 ints ``(before, after)``.
        rank: the number of spatial axes.
        name: 'padding' or 'cropping', for messages.
        owner: the layer's class name, for messages.
    Returns:
        A tuple of ``rank`` pairs of non-negative ints.
    """
    if rank == 1:
        return (_pair(value, name, owner, value),)
    if _is_int(value):
        return (_pair(value, name, owner, value),) * rank
    try:
        entries = tuple(value)
    except TypeError:
        entries = None
    if entries is None or isinstance(value, (str, bytes, dict)) or len(entries) != rank:
        raise ValueError(f"{owner} `{name}` must be an int, a tuple of {rank} ints or a "
                         f"tuple of {rank} tuples of 2 ints (before, after). Received: "
                         f"{name}={value!r:.100}")
    return tuple(_pair(entry, f"{_ORDINALS[i]} entry of {name}", owner, value)
                 for i, entry in enumerate(entries))


class _Margins(Layer):
    """Zero padding (``_crop`` False) or cropping (True) of ``rank`` spatial axes."""

    rank = None
    _crop = None
    _argument = None   # the constructor argument: 'padding' or 'cropping'

    def _set_margins(self, value):
        self._margins = normalize_margins(value, self.rank, self._argument,
                                          type(self).__name__)

    def _spatial_out(self, input_shape, call=False):
        """The output's spatial sizes (None where the input's is unknown); ValueError
        when a cropping leaves nothing along an axis (Keras' rule)."""
        check_input_rank(self, input_shape, self.rank, _LAYOUTS[self.rank])
        sign = -1 if self._crop else 1
        out = tuple(None if size is None else size + sign * (before + after)
                    for size, (before, after) in zip(input_shape[:-1], self._margins))
        if any(size is not None and size <= 0 for size in out):
            what = "inputs" if call else "input_shape"
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): the cropping must be smaller "
                f"than the input along each spatial axis. Received: {what} "
                f"{(None,) + tuple(input_shape)}, cropping={self._config_margins()}")
        return out

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return self._spatial_out(input_shape) + (input_shape[-1],)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def _offsets(self):
        """Where the input's origin lies in the output, per axis of the volume view."""
        sign = -1 if self._crop else 1
        return (0,) * (3 - self.rank) + tuple(sign * before for before, _ in self._margins)

    @staticmethod
    def _volume(a):
        """``a`` (batch, spatial..., channels) viewed as (batch, depth, height, width, c)."""
        return a.reshape((a.shape[0],) + (1,) * (5 - a.ndim) + a.shape[1:])

    def forward(self, ctx, x, training=False):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        n = x.shape[0]
        out_sample = self._spatial_out(x.shape[1:], call=True) + x.shape[-1:]
        y = (ctx.buffers.get("y", n, out_sample) if ctx.record
             else np.empty((n,) + out_sample, self.dtype))
        _resample.place(self._volume(x), self._volume(y), self._offsets())
        if ctx.record:
            ctx.in_sample = x.shape[1:]
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx = ctx.buffers.get("dx", dy.shape[0], ctx.in_sample)
        _resample.place(self._volume(dy), self._volume(dx),
                        tuple(-offset for offset in self._offsets()))
        return dx

    def _config_margins(self):
        if self.rank == 1:
            return list(self._margins[0])
        return [list(pair) for pair in self._margins]

    def get_config(self):
        config = super().get_config()
        config[self._argument] = self._config_margins()
        if hasattr(self, "data_format"):
            config["data_format"] = self.data_format
        return config


class _ZeroPadding(_Margins):
    _crop, _argument = False, "padding"

    def __init__(self, padding, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._set_margins(padding)
        self.data_format = check_data_format(data_format, self)

    @property
    def padding(self):
        """Keras' normalized form: (before, after) for 1-D, a pair per axis otherwise."""
        return self._margins[0] if self.rank == 1 else self._margins


class _Cropping(_Margins):
    _crop, _argument = True, "cropping"

    @property
    def cropping(self):
        """Keras' normalized form: (before, after) for 1-D, a pair per axis otherwise."""
        return self._margins[0] if self.rank == 1 else self._margins


@LAYERS.register()
class ZeroPadding1D(ChannelsFirstMixin, _ZeroPadding):
    """Zero padding of sequences: zeros added before and after the steps.

    Args:
        padding: int (the same number of zero steps on both sides; default 1) or tuple of
            2 ints ``(before, after)``.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, before + steps + after, channels)``.

    Example:
        >>> ZeroPadding1D((1, 2))(np.ones((1, 3, 1))).shape
        (1, 6, 1)
    """

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@LAYERS.register()
class ZeroPadding2D(ChannelsFirstMixin, _ZeroPadding):
    """Zero padding of images: rows of zeros at the top and bottom, columns at the left and
    right.

    Args:
        padding: int (the same on all four sides; default 1), tuple of 2 ints
            ``(symmetric_height_pad, symmetric_width_pad)``, or tuple of 2 tuples of 2 ints
            ``((top_pad, bottom_pad), (left_pad, right_pad))``.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, padded_height, padded_width, channels)``.

    Example:
        >>> ZeroPadding2D(((1, 0), (2, 1)))(np.ones((1, 3, 3, 1))).shape
        (1, 4, 6, 1)
    """

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@LAYERS.register()
class ZeroPadding3D(ChannelsFirstMixin, _ZeroPadding):
    """Zero padding of volumes: zeros before and after each of the three spatial axes.

    Args:
        padding: int (the same on every side; default 1), tuple of 3 ints (symmetric per
            axis), or tuple of 3 tuples of 2 ints
            ``((left_dim1, right_dim1), (left_dim2, right_dim2), (left_dim3, right_dim3))``.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        5-D ``(batch, dim1, dim2, dim3, channels)``.
    Output shape:
        5-D ``(batch, padded_dim1, padded_dim2, padded_dim3, channels)``.
    """

    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


@LAYERS.register()
class Cropping1D(_Cropping):
    """Cropping of sequences: steps removed at the start and the end.

    Args:
        cropping: int (the same number of steps at both ends; default 1) or tuple of 2
            ints ``(start, end)``. Together they must be fewer than the steps.

    Input shape:
        3-D ``(batch, steps, channels)``.
    Output shape:
        3-D ``(batch, steps - start - end, channels)``.
    """

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self._set_margins(cropping)


@LAYERS.register()
class Cropping2D(ChannelsFirstMixin, _Cropping):
    """Cropping of images: rows removed at the top and bottom, columns at the left and
    right.

    Args:
        cropping: int (the same on all four sides), tuple of 2 ints (symmetric height and
            width crops), or tuple of 2 tuples of 2 ints
            ``((top_crop, bottom_crop), (left_crop, right_crop))`` (default no cropping).
            Each axis' crops must sum to less than its size.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, cropped_height, cropped_width, channels)``.

    Example:
        >>> Cropping2D(((2, 2), (4, 4)))(np.ones((2, 28, 28, 3))).shape
        (2, 24, 20, 3)
    """

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._set_margins(cropping)
        self.data_format = check_data_format(data_format, self)


@LAYERS.register()
class Cropping3D(ChannelsFirstMixin, _Cropping):
    """Cropping of volumes along their three spatial axes.

    Args:
        cropping: int (the same on every side), tuple of 3 ints (symmetric per axis), or
            tuple of 3 tuples of 2 ints ``((left_dim1, right_dim1), (left_dim2, right_dim2),
            (left_dim3, right_dim3))`` (default 1 on every side). Each axis' crops must sum
            to less than its size.
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        5-D ``(batch, dim1, dim2, dim3, channels)``.
    Output shape:
        5-D ``(batch, cropped_dim1, cropped_dim2, cropped_dim3, channels)``.
    """

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._set_margins(cropping)
        self.data_format = check_data_format(data_format, self)
