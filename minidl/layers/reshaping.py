"""Layers that change the shape of samples without touching their values: Flatten, Reshape
and Permute.

Flatten and Reshape return views of C-contiguous inputs, so they cost no copy in forward or
backward; Permute copies its input in the new order (numpy's transposing copy), and its
backward pass copies the gradient back in the inverse order.
"""
import numbers

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


@LAYERS.register()
class Permute(Layer):
    """Permutes the axes of each sample (the batch axis stays first).

    Args:
        dims: tuple of ints, a permutation of ``1 .. rank`` (1 is the first axis after the
            batch): output axis ``i + 1`` is input axis ``dims[i]``.

    Input shape: ``(batch, ...)`` of ``len(dims)`` axes after the batch axis. Output shape:
    the same axes in the order ``dims``.

    Example:
        >>> Permute((2, 1))(np.zeros((32, 10, 64))).shape
        (32, 64, 10)
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            order = tuple(dims)
        except TypeError:
            order = None
        if order is None or isinstance(dims, (str, bytes, dict)) or any(
                isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in order):
            raise TypeError(f"Permute `dims` must be a tuple of ints. Received: "
                            f"dims={dims!r:.100}")
        order = tuple(int(d) for d in order)
        if sorted(order) != list(range(1, len(order) + 1)):
            raise ValueError(f"Invalid permutation argument `dims` for Permute: the indices "
                             f"must be consecutive and start from 1. Received: dims={dims!r}")
        self.dims = order
        self._axes = (0,) + order
        self._inverse = (0,) + tuple(int(a) + 1 for a in np.argsort(order))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != len(self.dims):
            raise ValueError(f"Layer '{self.name}' (Permute) with dims={self.dims} expects "
                             f"{len(self.dims) + 1}-D inputs; received input of shape "
                             f"{(None,) + input_shape}.")
        return tuple(input_shape[d - 1] for d in self.dims)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        super().build(input_shape)

    def forward(self, ctx, x, training=False):
        n = x.shape[0]
        self.compute_output_shape(x.shape[1:])
        moved = np.transpose(x, self._axes)
        y = (ctx.buffers.get("y", n, moved.shape[1:]) if ctx.record
             else np.empty(moved.shape, self.dtype))
        np.copyto(y, moved)
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        moved = np.transpose(dy, self._inverse)
        dx = ctx.buffers.get("dx", dy.shape[0], moved.shape[1:])
        np.copyto(dx, moved)
        return dx

    def get_config(self):
        config = super().get_config()
        config["dims"] = list(self.dims)
        return config


def _check_known(layer, input_shape):
    if None in tuple(input_shape):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) needs inputs of known "
                         f"size; received shape {(None,) + tuple(input_shape)}. Use a global "
                         f"pooling layer over the axes of unknown size instead.")
