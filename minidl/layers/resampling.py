"""Upsampling of sequences, images and volumes (channels_last), as in Keras: UpSampling1D,
UpSampling2D (nearest or bilinear) and UpSampling3D.

Nearest upsampling repeats each value ``size`` times along each spatial axis (Keras'
``ops.repeat``): one compiled copy (``minidl._core._resample.upsample_nearest``) over the
sample viewed as a volume ``(depth, height, width, channels)``, whose backward pass sums the
gradients of each value's block of copies in a fixed order. Bilinear upsampling is Keras'
``ops.image.resize(..., interpolation='bilinear')`` to ``size`` times the height and width:
half-pixel centers, no antialiasing (``torch...interpolate(mode='bilinear',
align_corners=False)``), run by the Resizing layer's kernel (``_image.resample``) and its
adjoint.
"""
import numbers

import numpy as np

from minidl._core import _resample
from minidl.layers.base import LAYERS, Layer
from minidl.layers.conv_utils import check_data_format, check_input_rank, normalize_tuple
from minidl.layers.data_format import ChannelsFirstMixin
from minidl.layers.preprocessing.image import Resampler

_LAYOUTS = {1: "(batch, steps, channels)", 2: "(batch, height, width, channels)",
            3: "(batch, dim1, dim2, dim3, channels)"}
# Interpolations of keras.layers.UpSampling2D that minidl does not implement.
_KERAS_ONLY_INTERPOLATIONS = ("bicubic", "lanczos3", "lanczos5", "area")


class _UpSampling(Layer):
    """Nearest (or, 2-D, bilinear) upsampling of ``rank`` spatial axes by ``self.size``."""

    rank = None

    def _sizes(self):
        return (self.size,) if self.rank == 1 else tuple(self.size)

    def compute_output_shape(self, input_shape):
        return self._output_sample(input_shape)

    def _output_sample(self, input_shape):
        # (forward asks here, not compute_output_shape, which speaks the caller's layout:
        # see layers/data_format.py)
        input_shape = tuple(input_shape)
        check_input_rank(self, input_shape, self.rank, _LAYOUTS[self.rank])
        return tuple(None if length is None else length * factor
                     for length, factor in zip(input_shape[:-1], self._sizes())
                     ) + (input_shape[-1],)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self._resamplers = {}
        super().build(input_shape)

    @staticmethod
    def _volume(a):
        return a.reshape((a.shape[0],) + (1,) * (5 - a.ndim) + a.shape[1:])

    def _resampler(self, in_hw):
        """The bilinear tables for images of ``in_hw``, made once per size."""
        resampler = self._resamplers.get(in_hw)
        if resampler is None:
            if len(self._resamplers) >= 16:   # sizes that vary from batch to batch
                self._resamplers.clear()
            out_hw = tuple(length * factor for length, factor in zip(in_hw, self.size))
            resampler = self._resamplers[in_hw] = Resampler(in_hw, out_hw, "bilinear")
        return resampler

    def _bilinear(self):
        return getattr(self, "interpolation", "nearest") == "bilinear"

    def forward(self, ctx, x, training=False):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        n = x.shape[0]
        out_sample = self._output_sample(x.shape[1:])
        y = (ctx.buffers.get("y", n, out_sample) if ctx.record
             else np.empty((n,) + out_sample, self.dtype))
        if self._bilinear():
            self._resampler(x.shape[1:3]).forward(x, y)
        else:
            _resample.upsample_nearest(self._volume(x), self._volume(y),
                                       (1,) * (3 - self.rank) + self._sizes())
        if ctx.record:
            ctx.in_sample = x.shape[1:]
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx = ctx.buffers.get("dx", dy.shape[0], ctx.in_sample)
        if self._bilinear():
            self._resampler(ctx.in_sample[:2]).backward(dy, dx)
        else:
            _resample.upsample_nearest_backward(self._volume(dy), self._volume(dx),
                                                (1,) * (3 - self.rank) + self._sizes())
        return dx

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size if self.rank == 1 else list(self.size)
        return config


@LAYERS.register()
class UpSampling1D(_UpSampling):
    """Upsampling of sequences: each step repeated ``size`` times.

    Args:
        size: int, the repeat factor (default 2).

    Input shape:
        3-D ``(batch, steps, features)``.
    Output shape:
        3-D ``(batch, steps * size, features)``.

    Example:
        >>> UpSampling1D(2)(np.array([[[1.0], [2.0]]])).tolist()
        [[[1.0], [1.0], [2.0], [2.0]]]
    """

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, numbers.Integral) or isinstance(size, bool):
            raise TypeError(f"UpSampling1D `size` must be an int. Received: size={size!r:.100}")
        if size <= 0:
            raise ValueError(f"UpSampling1D `size` must be a positive int. Received: "
                             f"size={size}")
        self.size = int(size)


@LAYERS.register()
class UpSampling2D(ChannelsFirstMixin, _UpSampling):
    """Upsampling of images: rows and columns repeated (nearest) or interpolated
    (bilinear) to ``size`` times the height and width.

    Args:
        size: int or tuple of 2 ints, the height and width factors (default (2, 2)).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.
        interpolation: 'nearest' (default; each pixel repeated) or 'bilinear' (Keras'
            ``ops.image.resize``: half-pixel centers, edges clamped). Keras' 'bicubic',
            'lanczos3' and 'lanczos5' are not implemented in minidl.

    Input shape:
        4-D ``(batch, height, width, channels)``.
    Output shape:
        4-D ``(batch, height * size[0], width * size[1], channels)``.

    Example:
        >>> UpSampling2D((2, 3))(np.ones((1, 2, 2, 1))).shape
        (1, 4, 6, 1)
    """

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 2, "size", "UpSampling2D")
        self.data_format = check_data_format(data_format, self)
        mode = interpolation.lower() if isinstance(interpolation, str) else interpolation
        if mode in _KERAS_ONLY_INTERPOLATIONS:
            raise ValueError(f"UpSampling2D interpolation={interpolation!r} is not implemented "
                             f"in minidl; use 'nearest' or 'bilinear'.")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D `interpolation` must be 'nearest' or 'bilinear'. "
                             f"Received: interpolation={interpolation!r:.100}")
        self.interpolation = mode

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, interpolation=self.interpolation)
        return config


@LAYERS.register()
class UpSampling3D(ChannelsFirstMixin, _UpSampling):
    """Upsampling of volumes: each value repeated ``size[k]`` times along spatial axis ``k``.

    Args:
        size: int or tuple of 3 ints, the factors of the three spatial axes
            (default (2, 2, 2)).
        data_format: 'channels_last' (``(batch, ..., channels)``) or 'channels_first'
            (``(batch, channels, ...)``, run as channels_last between two transpositions;
            see layers/data_format.py); None means ``minidl.config.image_data_format()``.

    Input shape:
        5-D ``(batch, dim1, dim2, dim3, channels)``.
    Output shape:
        5-D ``(batch, dim1 * size[0], dim2 * size[1], dim3 * size[2], channels)``.
    """

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.size = normalize_tuple(size, 3, "size", "UpSampling3D")
        self.data_format = check_data_format(data_format, self)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config
