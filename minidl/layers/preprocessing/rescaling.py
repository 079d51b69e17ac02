"""Rescaling: ``inputs * scale + offset``."""
import numpy as np

from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.base import PreprocessingLayer, numeric_array


def _as_config(array, given):
    """A scale or offset as its config holds it: a float, or nested lists of floats."""
    if np.ndim(array) == 0 and not isinstance(given, (list, tuple, np.ndarray)):
        return float(array)
    return array.tolist()


@LAYERS.register()
class Rescaling(PreprocessingLayer):
    """A preprocessing layer which rescales input values to a new range.

    It multiplies every input value by ``scale`` and adds ``offset``, in training and in
    inference. Inputs may be integers or floats; outputs are floats of the layer's dtype.
    The layer has no weights; in a model it passes gradients through (``dx = dy * scale``).

    To rescale inputs in ``[0, 255]`` to ``[0, 1]``, pass ``scale=1./255``; to ``[-1, 1]``,
    ``scale=1./127.5, offset=-1``.

    Args:
        scale: float, or a list of floats broadcast over the last axes of each sample
            (e.g. one per channel of channels-last images).
        offset: float, or a list of floats broadcast likewise (default 0).

    Input shape: any, ``(batch_size, ...)``. Output shape: the same.

    Example:
        >>> layer = Rescaling(scale=1. / 127.5, offset=-1.)
        >>> layer(np.array([[0, 127.5, 255]]))   # [[-1., 0., 1.]]
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        scale_array = numeric_array("Rescaling", "scale", scale)
        offset_array = numeric_array("Rescaling", "offset", offset)
        self.scale = _as_config(scale_array, scale)
        self.offset = _as_config(offset_array, offset)
        self._scale = scale_array.astype(self.dtype)
        self._offset = None if not np.any(offset_array) else offset_array.astype(self.dtype)

    def build(self, input_shape):
        self._check_broadcast(input_shape)
        super().build(input_shape)

    def _check_broadcast(self, sample_shape):
        """ValueError unless scale and offset broadcast to samples of ``sample_shape``
        without changing their shape (unknown dims taken as any size)."""
        sample_shape = tuple(sample_shape)
        for name, array in (("scale", self._scale), ("offset", self._offset)):
            if array is None or array.ndim == 0:
                continue
            fits = array.ndim <= len(sample_shape) and all(
                a == 1 or d is None or a == d
                for a, d in zip(array.shape[::-1], sample_shape[::-1]))
            if not fits:
                raise ValueError(f"Layer '{self.name}' (Rescaling): `{name}` of shape "
                                 f"{array.shape} does not broadcast to samples of shape "
                                 f"{sample_shape} (it applies to their last axes).")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, ctx, x, training=False):
        if self._scale.ndim or self._offset is not None and self._offset.ndim:
            self._check_broadcast(x.shape[1:])
        y = self._output_buffer(ctx, x.shape)
        np.multiply(x, self._scale, out=y)
        if self._offset is not None:
            np.add(y, self._offset, out=y)
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        return np.multiply(dy, self._scale, out=ctx.buffers.get("dx", dy.shape[0],
                                                                 dy.shape[1:]))

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config
