"""Layers that change the shape of samples without touching their values: Flatten, Reshape.

Both return views of C-contiguous inputs, so they cost no copy in forward or backward.
"""
import numpy as np

from minidl.layers.base import LAYERS, Layer


@LAYERS.register()
class Flatten(Layer):
    """Flattens each sample: ``(batch, d1, d2, ...)`` becomes ``(batch, d1 * d2 * ...)``.

    Input shape: ``(batch, ...)``. Output shape: ``(batch, product of the other dims)``.

    Example:
        >>> Sequential([Input((28, 28)), Flatten(), Dense(10)])
    """

    def compute_output_shape(self, input_shape):
        _check_known(self, input_shape)
        return (int(np.prod(input_shape)),)

    def forward(self, ctx, x, training=False):
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, ctx, dy, need_input_grad=True):
        return dy.reshape((dy.shape[0],) + self.built_input_shape) if need_input_grad else None


@LAYERS.register()
class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1, inferred).

    Args:
        target_shape: tuple of ints, the sample shape after reshaping (no batch dim).

    Input shape: ``(batch, ...)``. Output shape: ``(batch,) + target_shape``.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(target_shape)
        except TypeError:
            dims = None
        if dims is None or isinstance(target_shape, (str, bytes, dict)) or any(
                isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in dims):
            raise TypeError(f"Reshape target_shape must be a tuple of ints; received "
                            f"target_shape={target_shape!r:.100}.")
        target_shape = tuple(int(d) for d in dims)
        if sum(d == -1 for d in target_shape) > 1 or any(d == 0 or d < -1 for d in target_shape):
            raise ValueError(f"Reshape target_shape must hold positive ints and at most one -1; "
                             f"received target_shape={target_shape}.")
        self.target_shape = target_shape

    def compute_output_shape(self, input_shape):
        _check_known(self, input_shape)
        size = int(np.prod(input_shape))
        known = int(np.prod([d for d in self.target_shape if d != -1]))
        shape = tuple(size // known if d == -1 else d for d in self.target_shape)
        if int(np.prod(shape)) != size or (-1 in self.target_shape and size % known):
            raise ValueError(f"Layer '{self.name}' cannot reshape samples of shape "
                             f"{tuple(input_shape)} ({size} values) to {self.target_shape}.")
        return shape

    def build(self, input_shape):
        self._output_shape = self.compute_output_shape(input_shape)
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        return np.ascontiguousarray(x).reshape((x.shape[0],) + self._output_shape)

    def backward(self, ctx, dy, need_input_grad=True):
        return dy.reshape((dy.shape[0],) + self.built_input_shape) if need_input_grad else None

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


def _check_known(layer, input_shape):
    if None in tuple(input_shape):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) needs inputs of known "
                         f"size; received shape {(None,) + tuple(input_shape)}. Use a global "
                         f"pooling layer over the axes of unknown size instead.")
