"""Merge layers: combine several tensors into one (Add, Concatenate, ...), and their
function forms (``minidl.layers.add([a, b])``).

A merge layer is called on a list of tensors and its backward pass returns a list of input
gradients (None where the plan needs none). The elementwise ones follow numpy broadcasting
between sample shapes of equal rank (a dimension of 1 broadcasts), as Keras does; the
gradient of a broadcast input is summed over the axes it was broadcast along. Everything
runs as whole-array numpy operations into buffers of the call's context.
"""

import numpy as np

from minidl.layers.base import LAYERS, Layer


class _Merge(Layer):
    """Base of the merge layers: checks the list of inputs."""

    supports_masking = True   # (as in Keras' Merge)

    min_inputs = 2
    max_inputs = None

    def _check_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape \
                or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) must be called on "
                             f"a list of tensors; received an input of shape "
                             f"{_full(input_shape)}.")
        count = len(input_shape)
        if count < self.min_inputs or (self.max_inputs and count > self.max_inputs):
            wanted = (f"exactly {self.min_inputs}" if self.max_inputs == self.min_inputs
                      else f"at least {self.min_inputs}")
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) merges {wanted} "
                             f"inputs; received {count} (shapes "
                             f"{[_full(s) for s in input_shape]}).")
        return [tuple(s) for s in input_shape]

    def build(self, input_shape):
        shapes = self._check_shapes(input_shape)
        self.compute_output_shape(shapes)
        super().build(shapes)

    def _check_masks(self, inputs, mask):
        if not isinstance(mask, (list, tuple)):
            raise ValueError(f"`mask` should be a list. Received: mask={mask!r:.100}")
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"`inputs` should be a list. Received: inputs={inputs!r:.100}")
        if len(mask) != len(inputs):
            raise ValueError(f"The lists `inputs` and `mask` should have the same length. "
                             f"Received: {len(inputs)} inputs and {len(mask)} masks.")

    def compute_mask(self, inputs, mask=None):
        """Keras' rule for the elementwise merges: the OR of the inputs' masks; None when
        an input has none."""
        if mask is None:
            return None
        self._check_masks(inputs, mask)
        if any(m is None for m in mask):
            return None
        return np.logical_or.reduce([np.asarray(m, bool) for m in mask])

    def ensure_built(self, input_shape):
        if not self.built:
            self.build(input_shape)
        elif [tuple(s) for s in input_shape] != list(self.built_input_shape):
            raise ValueError(f"Layer '{self.name}' was built for inputs of shapes "
                             f"{[_full(s) for s in self.built_input_shape]}; received "
                             f"{[_full(s) for s in input_shape]}.")


class _Elementwise(_Merge):
    """An elementwise merge over inputs that broadcast to one shape."""

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) needs inputs of "
                             f"one rank; received shapes {[_full(s) for s in shapes]}.")
        out = []
        for dims in zip(*shapes):
            sizes = {d for d in dims if d not in (1, None)}
            if len(sizes) > 1:
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) cannot "
                                 f"combine inputs of shapes {[_full(s) for s in shapes]}: "
                                 f"each dimension must be equal or 1.")
            out.append(sizes.pop() if sizes else (None if None in dims else 1))
        return tuple(out)

    def forward(self, ctx, inputs, training=False):
        xs = [np.asarray(x) for x in inputs]
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        out = (ctx.buffers.get("y", shape[0], shape[1:]) if ctx.record
               else np.empty(shape, self.dtype))
        self._combine(xs, out)
        if ctx.activation is not None:   # an activation layer after it, fused by the plan
            ctx.activation.forward(out, out)
        if ctx.record:
            ctx.inputs, ctx.y = xs, out
        return out

    def backward(self, ctx, dy, need_input_grad=True):
        need = _need_list(need_input_grad, len(ctx.inputs))
        if ctx.activation is not None:
            gated = ctx.buffers.get("gated", dy.shape[0], dy.shape[1:])
            dy = ctx.activation.backward(ctx.y, ctx.y, np.ascontiguousarray(dy), gated)
        grads = self._gradients(ctx, dy, need)
        return [None if not want else _reduce_to(g, x.shape, ctx, i)
                for i, (g, x, want) in enumerate(zip(grads, ctx.inputs, need))]


@LAYERS.register()
class Add(_Elementwise):
    """Adds a list of inputs: ``output = inputs[0] + inputs[1] + ...``.

    Input shape: a list of tensors of one rank whose shapes broadcast (a dimension of 1
    repeats). Output shape: the broadcast shape.

    Example:
        >>> y = Add()([x, shortcut])    # a residual connection
    """

    def _combine(self, xs, out):
        np.add(xs[0], xs[1], out=out)
        for x in xs[2:]:
            np.add(out, x, out=out)

    def _gradients(self, ctx, dy, need):
        return [dy] * len(need)

    def can_fuse_activation(self, activation):
        """A ReLU layer after it (a residual block's ``relu(x + y)``) runs in its passes
        (``rewrites.activation_into_layer``); its backward gates by the output, which is
        exact for the ReLU only."""
        return activation.kernel_params()[0] == "relu"


@LAYERS.register()
class Subtract(_Elementwise):
    """Subtracts two inputs: ``output = inputs[0] - inputs[1]``.

    Input shape: a list of exactly two broadcastable tensors. Output shape: their
    broadcast shape.
    """

    max_inputs = 2

    def _combine(self, xs, out):
        np.subtract(xs[0], xs[1], out=out)

    def _gradients(self, ctx, dy, need):
        negative = None
        if need[1]:
            negative = ctx.buffers.get("neg", dy.shape[0], dy.shape[1:])
            np.negative(dy, out=negative)
        return [dy, negative]


@LAYERS.register()
class Multiply(_Elementwise):
    """Multiplies a list of inputs elementwise.

    Input shape: a list of broadcastable tensors of one rank. Output shape: their
    broadcast shape.
    """

    def _combine(self, xs, out):
        np.multiply(xs[0], xs[1], out=out)
        for x in xs[2:]:
            np.multiply(out, x, out=out)

    def _gradients(self, ctx, dy, need):
        xs, grads = ctx.inputs, []
        for i, want in enumerate(need):
            if not want:
                grads.append(None)
                continue
            g = ctx.buffers.get(("d", i), dy.shape[0], dy.shape[1:])
            np.copyto(g, dy)
            for j, x in enumerate(xs):   # the product of the others, in input order
                if j != i:
                    np.multiply(g, x, out=g)
            grads.append(g)
        return grads


@LAYERS.register()
class Average(_Elementwise):
    """The elementwise mean of a list of inputs.

    Input shape: a list of broadcastable tensors of one rank. Output shape: their
    broadcast shape.
    """

    def _combine(self, xs, out):
        Add._combine(self, xs, out)
        np.multiply(out, 1.0 / len(xs), out=out)

    def _gradients(self, ctx, dy, need):
        g = ctx.buffers.get("d", dy.shape[0], dy.shape[1:])
        np.multiply(dy, 1.0 / len(need), out=g)
        return [g] * len(need)


class _Extremum(_Elementwise):
    """Maximum or Minimum: the gradient goes to the input holding the extremum (the first
    such input where several tie, as for max pooling)."""

    _pick = None   # np.maximum or np.minimum

    def _combine(self, xs, out):
        type(self)._pick(xs[0], xs[1], out=out)
        for x in xs[2:]:
            type(self)._pick(out, x, out=out)

    def _gradients(self, ctx, dy, need):
        xs, y = ctx.inputs, ctx.y
        taken = np.zeros(y.shape, bool)
        grads = []
        for i, x in enumerate(xs):
            winner = (x == y) & ~taken
            taken |= winner
            if need[i]:
                g = ctx.buffers.get(("d", i), dy.shape[0], dy.shape[1:])
                np.multiply(dy, winner, out=g)
                grads.append(g)
            else:
                grads.append(None)
        return grads


@LAYERS.register()
class Maximum(_Extremum):
    """The elementwise maximum of a list of inputs.

    Input shape: a list of broadcastable tensors of one rank. Output shape: their
    broadcast shape.
    """

    _pick = np.maximum


@LAYERS.register()
class Minimum(_Extremum):
    """The elementwise minimum of a list of inputs.

    Input shape: a list of broadcastable tensors of one rank. Output shape: their
    broadcast shape.
    """

    _pick = np.minimum


@LAYERS.register()
class Concatenate(_Merge):
    """Concatenates a list of inputs along an axis.

    Args:
        axis: the axis to concatenate along (default -1, the features or channels); not
            the batch axis.

    Input shape: a list of tensors with equal shapes except along ``axis``.
    Output shape: the same, with the sizes along ``axis`` added.

    Example:
        >>> merged = Concatenate()([Dense(16)(a), Dense(8)(b)])   # (None, 24)
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"Concatenate axis must be an int; received axis={axis!r}.")
        self.axis = int(axis)

    def _sample_axis(self, rank):
        """The axis within a sample (batch axis excluded) of inputs of ``rank`` sample
        dimensions."""
        axis = self.axis if self.axis < 0 else self.axis - 1
        if self.axis == 0 or not -rank <= axis < rank:
            raise ValueError(f"Layer '{self.name}' (Concatenate) got axis={self.axis} for "
                             f"inputs of rank {rank + 1}; the axis must be a non-batch axis.")
        return axis % rank

    def compute_mask(self, inputs, mask=None):
        """Keras' rule: each input's mask spread over its values (all True for an input
        without one), concatenated as the inputs are, then any() over the last axis."""
        if mask is None:
            return None
        self._check_masks(inputs, mask)
        if all(m is None for m in mask):
            return None
        spread = []
        for x, m in zip(inputs, mask):
            shape = np.shape(x)
            if m is None:
                spread.append(np.ones(shape, bool))
                continue
            m = np.asarray(m, bool)
            if m.ndim < len(shape):
                m = np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)
            spread.append(m)
        return np.any(np.concatenate(spread, axis=self.axis), axis=-1)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"Layer '{self.name}' (Concatenate) needs inputs of one rank; "
                             f"received shapes {[_full(s) for s in shapes]}.")
        axis = self._sample_axis(rank)
        for dim in range(rank):
            sizes = {s[dim] for s in shapes} - {None}
            if dim != axis and len(sizes) > 1:
                raise ValueError(f"Layer '{self.name}' (Concatenate) needs inputs of equal "
                                 f"shapes except along axis {self.axis}; received shapes "
                                 f"{[_full(s) for s in shapes]}.")
        along = [s[axis] for s in shapes]
        out = list(shapes[0])
        out[axis] = None if None in along else sum(along)
        return tuple(out)

    def forward(self, ctx, inputs, training=False):
        xs = [np.asarray(x) for x in inputs]
        axis = self._sample_axis(xs[0].ndim - 1) + 1
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = (ctx.buffers.get("y", shape[0], shape[1:]) if ctx.record
               else np.empty(shape, self.dtype))
        np.concatenate(xs, axis=axis, out=out)
        if ctx.record:
            ctx.sizes, ctx.axis = [x.shape[axis] for x in xs], axis
        return out

    def backward(self, ctx, dy, need_input_grad=True):
        need = _need_list(need_input_grad, len(ctx.sizes))
        grads, start = [], 0
        for size, want in zip(ctx.sizes, need):
            index = [slice(None)] * dy.ndim
            index[ctx.axis] = slice(start, start + size)
            grads.append(np.ascontiguousarray(dy[tuple(index)]) if want else None)
            start += size
        return grads

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


@LAYERS.register()
class Dot(_Merge):
    """The dot product of two inputs along an axis of each, per sample.

    Args:
        axes: int or tuple of two ints, the axis of each input to sum over (counted with
            the batch axis, as in Keras; negative counts from the end).
        normalize: L2-normalize both inputs along those axes first, so that the product is
            their cosine similarity.

    Input shape: two tensors ``(batch, ...)`` of rank 2 or 3 whose ``axes`` have equal size.
    Output shape: the batched product: ``(batch, 1)`` for two rank-2 inputs; for rank-3
    inputs the remaining axis of the first, then of the second, e.g. ``(b, m, d)`` and
    ``(b, n, d)`` with ``axes=2`` give ``(b, m, n)``.
    """

    min_inputs = max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = axes if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                                 for a in pair):
            raise TypeError(f"Dot axes must be an int or a tuple of two ints; received "
                            f"axes={axes!r}.")
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"Dot normalize must be True or False; received "
                            f"normalize={normalize!r}.")
        self.axes = [int(a) for a in pair] if isinstance(axes, (list, tuple)) else int(axes)
        self.normalize = bool(normalize)

    def _resolved(self, shapes):
        pair = self.axes if isinstance(self.axes, list) else [self.axes, self.axes]
        out = []
        for axis, shape in zip(pair, shapes):
            rank = len(shape) + 1
            if rank not in (2, 3):
                raise ValueError(f"Layer '{self.name}' (Dot) takes inputs of rank 2 or 3; "
                                 f"received shapes {[_full(s) for s in shapes]}.")
            resolved = axis % rank
            if resolved == 0 or not -rank <= axis < rank:
                raise ValueError(f"Layer '{self.name}' (Dot) got axes={self.axes} for "
                                 f"inputs of shapes {[_full(s) for s in shapes]}; an axis "
                                 f"must be a non-batch axis of its input.")
            out.append(resolved)
        return out

    def compute_mask(self, inputs, mask=None):
        return None   # (Keras' Dot makes no mask)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        a, b = self._resolved(shapes)
        if None not in (shapes[0][a - 1], shapes[1][b - 1]) and \
                shapes[0][a - 1] != shapes[1][b - 1]:
            raise ValueError(f"Layer '{self.name}' (Dot) sums over axes {a} and {b} of inputs "
                             f"of shapes {[_full(s) for s in shapes]}, whose sizes differ.")
        rest = [d for i, d in enumerate(shapes[0]) if i != a - 1] + \
            [d for i, d in enumerate(shapes[1]) if i != b - 1]
        return tuple(rest) or (1,)

    def _as_matrices(self, x, axis, contract_last):
        """x as (batch, rows, k) with the summed axis last (or (batch, k, cols) first)."""
        if x.ndim == 2:
            x = x[:, None, :] if contract_last else x[:, :, None]
            return x
        other = 2 if axis == 1 else 1
        order = (0, other, axis) if contract_last else (0, axis, other)
        return np.transpose(x, order)

    def forward(self, ctx, inputs, training=False):
        a, b = (np.asarray(x) for x in inputs)
        axis_a, axis_b = self._resolved([a.shape[1:], b.shape[1:]])
        na = nb = None
        if self.normalize:
            a, na = _l2_normalize(a, axis_a)
            b, nb = _l2_normalize(b, axis_b)
        left = self._as_matrices(a, axis_a, True)     # (batch, m, k)
        right = self._as_matrices(b, axis_b, False)   # (batch, k, n)
        product = np.matmul(left, right)              # (batch, m, n)
        out = np.ascontiguousarray(product.reshape(
            (product.shape[0],) + self.compute_output_shape([a.shape[1:], b.shape[1:]])))
        if ctx.record:
            ctx.a, ctx.b, ctx.na, ctx.nb = a, b, na, nb
            ctx.axes, ctx.left, ctx.right = (axis_a, axis_b), left, right
        return out

    def backward(self, ctx, dy, need_input_grad=True):
        need = _need_list(need_input_grad, 2)
        n, m, k = ctx.left.shape
        cols = ctx.right.shape[2]
        g = dy.reshape(n, m, cols)
        grads = []
        if need[0]:
            d_left = np.matmul(g, np.swapaxes(ctx.right, 1, 2))        # (n, m, k)
            grads.append(self._from_matrices(d_left, ctx.a, ctx.axes[0], True))
        else:
            grads.append(None)
        if need[1]:
            d_right = np.matmul(np.swapaxes(ctx.left, 1, 2), g)        # (n, k, cols)
            grads.append(self._from_matrices(d_right, ctx.b, ctx.axes[1], False))
        else:
            grads.append(None)
        if self.normalize:
            grads = [None if d is None else _l2_normalize_backward(d, x, norm, axis)
                     for d, x, norm, axis in zip(grads, (ctx.a, ctx.b), (ctx.na, ctx.nb),
                                                 ctx.axes)]
        return grads

    def _from_matrices(self, d, x, axis, contract_last):
        if x.ndim == 2:
            return np.ascontiguousarray(d.reshape(x.shape))
        other = 2 if axis == 1 else 1
        order = (0, other, axis) if contract_last else (0, axis, other)
        return np.ascontiguousarray(np.transpose(d, np.argsort(order)))

    def get_config(self):
        config = super().get_config()
        config.update(axes=self.axes, normalize=self.normalize)
        return config


def _l2_normalize(x, axis):
    norm = np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))
    return x / norm, norm


def _l2_normalize_backward(d, y, norm, axis):
    """Gradient through y = x / ||x|| given dL/dy = d: (d - y * sum(d * y)) / ||x||."""
    return np.ascontiguousarray((d - y * np.sum(d * y, axis=axis, keepdims=True)) / norm)


def _need_list(need_input_grad, count):
    if isinstance(need_input_grad, (list, tuple)):
        return list(need_input_grad)
    return [bool(need_input_grad)] * count


def _reduce_to(g, shape, ctx, i):
    """The gradient ``g`` of a broadcast input of ``shape``: summed over the broadcast
    axes (a copy only then)."""
    if g.shape == shape:
        return g
    axes = tuple(j for j, (a, b) in enumerate(zip(shape, g.shape)) if a == 1 and b != 1)
    return np.ascontiguousarray(np.sum(g, axis=axes, keepdims=True, dtype=g.dtype))


def _full(shape):
    return (None,) + tuple(shape)


# ---- function forms (keras.layers.add, ...) ----

def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = (f"``{cls.__name__}(**kwargs)(inputs)``: the function form of "
                     f":class:`{cls.__name__}`.")
    return merge


add = _functional(Add)
subtract = _functional(Subtract)
multiply = _functional(Multiply)
average = _functional(Average)
maximum = _functional(Maximum)
minimum = _functional(Minimum)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``: the function form of
    :class:`Concatenate`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes, normalize, **kwargs)(inputs)``: the function form of :class:`Dot`."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
