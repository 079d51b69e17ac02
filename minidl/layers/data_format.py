"""``data_format='channels_first'`` for the convolution, pooling and resampling layers.

minidl's image kernels work on channels_last data, ``(batch, ..., channels)``: the channels
of one position are contiguous, which is what the GEMM-based convolutions and the vector
loops along channels want. A layer made with ``data_format='channels_first'`` takes and
gives ``(batch, channels, ...)`` as Keras does, and runs the channels_last computation in
between: :class:`ChannelsFirstMixin` moves the channel axis of the input to the end before
the layer's own ``forward`` and back to the front after it (and the mirror for gradients in
``backward``). The weights are the same either way (Keras' kernels do not depend on the
data format), so a model can switch formats without touching its weights.

Why transpose at the boundary instead of channels_first kernels: every kernel would need
a second layout (twice the code to test and keep bit-exact), while one transposition is a
memory-bound copy, small beside the convolution around it. The copies go into buffers of the
call's context, reused from batch to batch in training.

A layer opts in by putting the mixin first among its bases and calling
``check_data_format(data_format, self)``; its own code stays channels_last:
``build``, ``compute_output_shape``, ``forward`` and ``backward`` of the class below the
mixin see channels_last shapes and arrays only. ``built_input_shape`` keeps the shape the
layer was called on (channels first), so shape checks and ``summary`` see what the user
passed. The plan's fusions that call other entry points (``forward_linear``,
``backward_preactivation``, the fused max pooling) skip channels_first layers
(``models.rewrites``).
"""
import numpy as np


def to_channels_last(shape):
    """A sample shape ``(channels, d1, ..., dk)`` as ``(d1, ..., dk, channels)``; shapes of
    rank 1 (no spatial axis, e.g. a global pooling's ``(channels,)``) stay as they are."""
    shape = tuple(shape)
    return shape[1:] + shape[:1] if len(shape) >= 2 else shape


def to_channels_first(shape):
    """The inverse of :func:`to_channels_last`."""
    shape = tuple(shape)
    return shape[-1:] + shape[:-1] if len(shape) >= 2 else shape


class ChannelsFirstMixin:
    """Runs a channels_last layer on channels_first data when ``data_format`` asks for it.

    Put first among the bases: ``class Conv2D(ChannelsFirstMixin, _Conv)``. With
    ``data_format='channels_last'`` every method is the layer's own.
    """

    supports_channels_first = True

    @property
    def channels_first(self):
        return getattr(self, "data_format", None) == "channels_first"

    def _check_channels_first_activation(self):
        activation = getattr(self, "activation", None)
        if getattr(activation, "kind", None) == "softmax":
            # Keras applies the activation to the channels_first output, where the last
            # axis is a spatial one; the fused kernels here normalise over channels.
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}): activation='softmax' with "
                f"data_format='channels_first' normalises over the last spatial axis in Keras, "
                f"which minidl does not run fused; use a separate Softmax(axis=...) layer or "
                f"data_format='channels_last'.")

    def compute_output_shape(self, input_shape):
        # The layer's own build may ask for its output shape: that question is in
        # channels_last terms (see build).
        if not self.channels_first or self.__dict__.get("_building_channels_last"):
            return super().compute_output_shape(input_shape)
        return to_channels_first(super().compute_output_shape(to_channels_last(input_shape)))

    def build(self, input_shape):
        if not self.channels_first:
            return super().build(input_shape)
        self._check_channels_first_activation()
        self._building_channels_last = True
        try:
            super().build(to_channels_last(input_shape))
        finally:
            del self._building_channels_last
        self.built_input_shape = tuple(input_shape)

    def forward(self, ctx, x, training=False):
        if not self.channels_first:
            return super().forward(ctx, x, training)
        y = super().forward(ctx, _move_channels(ctx, "channels_first_x", x, to_last=True),
                            training)
        return _move_channels(ctx, "channels_first_y", y, to_last=False)

    def backward(self, ctx, dy, need_input_grad=True):
        if not self.channels_first:
            return super().backward(ctx, dy, need_input_grad)
        dx = super().backward(ctx, _move_channels(ctx, "channels_first_dy", dy, to_last=True),
                              need_input_grad)
        return None if dx is None else _move_channels(ctx, "channels_first_dx", dx,
                                                      to_last=False)


def _move_channels(ctx, key, a, to_last):
    """``a`` (batch, channels, ...) as a C-contiguous (batch, ..., channels) array, or the
    reverse: in training into the context's buffer ``key`` (reused batch to batch), in
    inference into a new array. Arrays without spatial axes come back as they are."""
    if a.ndim < 3:
        return a
    moved = np.moveaxis(a, 1, -1) if to_last else np.moveaxis(a, -1, 1)
    if ctx.record:
        out = ctx.buffers.get(key, a.shape[0], moved.shape[1:], a.dtype)
    else:
        out = np.empty(moved.shape, a.dtype)
    np.copyto(out, moved)
    return out
