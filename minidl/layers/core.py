"""Core layers: Input, Dense, Activation.

Dense is the layer the reference MLP spends its time in. One training step is
    forward:  z = x @ W            (GEMM into a reused buffer)
              y = f(z + b)         (one fused pass: bias add and activation)
    backward: dz = dy * f'(z), db = sum(dz) over the batch   (one fused pass)
              dW = x^T @ dz        (GEMM reading x transposed through strides)
              dx = dz @ W^T        (GEMM; skipped for the first layer)
An activity regularizer adds its penalty's gradient to dy before that backward.
"""
import numpy as np

from minidl import activations, constraints, initializers, regularizers
from minidl._core import _data
from minidl.layers.base import LAYERS, Layer
from minidl.layers.node import KerasHistory, Node, SymbolicTensor, check_dtype
from minidl.ops import gemm
from minidl.utils.checks import check_bool


# Used for the bias gradient of a pre-activation gradient (dz -> db); built once.
_LINEAR = activations.get("linear")

@LAYERS.register()
class InputLayer(Layer):
    """The input of a model: its ``output`` is a symbolic tensor of the given sample shape,
    on which the model's first layers are called. ``minidl.Input(...)`` makes one and
    returns that tensor.

    Args:
        shape: the shape of one sample, without the batch dimension, e.g. ``(784,)``; None
            entries allow any size (e.g. ``(None, 128)`` for sequences of any length).
        batch_size: optional fixed batch size.
        dtype: 'float32' (default), 'float64', 'int32' / 'int64' for index inputs, or
            'string' for text (numpy arrays of str, of dtype object or unicode).
        batch_shape: the shape with the batch dimension, instead of shape and batch_size.
        name: optional name (default 'input_layer', made unique).
        sparse, input_tensor, optional: accepted as in Keras; only their defaults are
            supported.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, input_shape=None,
                 trainable=True, ragged=None):
        super().__init__(name=name, trainable=trainable)
        for arg, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value not in (None, False):
                raise ValueError(f"InputLayer supports {arg}=False only; received "
                                 f"{arg}={value!r:.100}.")
        if input_tensor is not None:
            raise ValueError(f"InputLayer does not take input_tensor; received "
                             f"input_tensor={input_tensor!r:.100}.")
        if shape is not None and input_shape is not None \
                and _dims(shape, "shape", True) != _dims(input_shape, "input_shape", True):
            raise ValueError(f"InputLayer takes shape or input_shape (two names of one "
                             f"argument), not two different shapes. Received: shape={shape!r}, "
                             f"input_shape={input_shape!r}")
        what = "shape"
        if shape is None and input_shape is not None:
            shape, what = input_shape, "input_shape"
        if batch_shape is not None:
            if shape is not None or batch_size is not None:
                given = f"{what}={shape!r:.100}" if shape is not None else \
                    f"batch_size={batch_size!r:.100}"
                raise ValueError(f"InputLayer takes either shape (and batch_size) or "
                                 f"batch_shape; received {given}, "
                                 f"batch_shape={batch_shape!r:.100}.")
            full = _dims(batch_shape, "batch_shape", allow_none=True)
            if not full:
                raise ValueError(f"InputLayer batch_shape needs the batch dimension; "
                                 f"received batch_shape={batch_shape!r:.100}.")
            batch_size, shape = full[0], full[1:]
        if shape is None:
            raise ValueError("InputLayer needs `shape`, the shape of one sample, e.g. (784,).")
        # shape=(): a batch of scalars (Input(shape=(), dtype="string"): one text a sample).
        shape = _dims(shape, what, allow_none=True)
        if batch_size is not None:
            batch_size = _dims([batch_size], "batch_size")[0]
        self.dtype = check_dtype(dtype, "dtype")
        self.batch_shape = (batch_size,) + shape
        self.input_shape = shape
        self.built, self.built_input_shape = True, shape
        tensor = SymbolicTensor(self.batch_shape, self.dtype, name=self.name,
                                history=KerasHistory(self, 0, 0))
        self._inbound_nodes.append(Node(self, [], tensor))

    def ensure_built(self, input_shape):
        if len(input_shape) != len(self.built_input_shape) or any(
                d is not None and g != d for g, d in zip(input_shape, self.built_input_shape)):
            raise ValueError(f"Input layer '{self.name}' takes samples of shape "
                             f"{self.built_input_shape}; received {tuple(input_shape)}.")

    def forward(self, ctx, x, training=False):
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False,
                "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None, optional=False):
    """A symbolic input tensor, to build a model on (the functional API), or to start a
    Sequential model: ``Sequential([Input((784,)), ...])``.

    Args:
        shape: the shape of one sample, without the batch dimension; None entries allow
            any size.
        batch_size: optional fixed batch size.
        dtype: 'float32' (default), 'float64', 'int32', 'int64' or 'string' (text:
            numpy arrays of str, of dtype object or unicode, or lists of str).
        batch_shape: the shape with the batch dimension, instead of shape and batch_size.
        name: optional name of its input layer (a key of a dict of inputs).
        sparse, tensor, optional: accepted as in Keras; only their defaults are supported.

    Returns:
        A :class:`~minidl.layers.node.SymbolicTensor` of shape ``(batch_size,) + shape``.

    Example:
        >>> inputs = Input((784,))
        >>> outputs = Dense(10, activation="softmax")(Dense(64, activation="relu")(inputs))
        >>> model = minidl.Model(inputs, outputs)
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, input_tensor=tensor, optional=optional,
                      name=name).output


def _dims(shape, what, allow_none=False):
    """A shape as a tuple of positive ints (and None where allowed), or a clear error."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape) if not isinstance(shape, (str, bytes, dict)) else None
    except TypeError:
        dims = None
    if dims is None or any(
            not (d is None and allow_none) and (isinstance(d, bool) or
                                                not isinstance(d, (int, np.integer)) or d <= 0)
            for d in dims):
        raise ValueError(f"InputLayer {what} must be a tuple of positive ints"
                         f"{' (or None)' if allow_none else ''}. Received: "
                         f"{what}={shape!r:.100}")
    return tuple(None if d is None else int(d) for d in dims)


# Activations whose derivative the kernels take from the output y = f(z) alone, or from the
# sign of z, which y keeps (relu, elu, selu): for these, training applies f in place (y is
# z), which saves a buffer and a pass of memory traffic the size of the layer's output.
_DERIVATIVE_FROM_OUTPUT = frozenset({"linear", "relu", "sigmoid", "tanh", "elu", "selu",
                                     "exponential", "softmax"})


class AffineLayer(Layer):
    """Base of the layers computing ``activation(linear(x) + bias)``: Dense and the
    convolutions. It holds their shared backward pass; a subclass writes the forward pass
    and ``_backward_linear``.

    The forward pass of a subclass keeps, in a recording call's context:
        ``ctx.z``, ``ctx.y``: the pre-activation and the activation as 2-D (rows, units)
            arrays (``ctx.y`` may be ``ctx.z`` for a linear activation);
        ``ctx.y_out``: the output as returned (Dense: ``ctx.y``; Conv2D: ``ctx.y`` as
            images), on which an activity regularizer's penalty is taken.
    ``_backward_linear(ctx, dz, need_input_grad)`` gets ``dz`` as (rows, units), fills the
    kernel's gradient and returns the input gradient (or None).

    The activation is ``ctx.activation`` when the plan sets one (an activation layer after
    this one, fused into it: ``rewrites.activation_into_layer``), else the layer's own.

    Args (shared by the subclasses, as in Keras):
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers (name, config or object).
        kernel_regularizer, bias_regularizer: optional regularizers of the weights.
        activity_regularizer: optional regularizer of the output; its penalty is divided
            by the batch size, as in Keras.
        kernel_constraint, bias_constraint: optional constraints of the weights, applied
            after each optimizer update.
    """

    # Where the bias is in the params (SeparableConv's comes after its two kernels).
    _bias_index = 1

    def __init__(self, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.activation = self._resolve("activation", activation, activations.get)
        self.use_bias = check_bool(type(self).__name__, "use_bias", use_bias)
        # The initializers as given, for get_config; resolved once, here, for build.
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self._initializers = {
            "kernel": self._resolve("kernel_initializer", kernel_initializer, initializers.get),
            "bias": self._resolve("bias_initializer", bias_initializer, initializers.get)}
        self.kernel_regularizer = self._resolve("kernel_regularizer", kernel_regularizer,
                                                regularizers.get)
        self.bias_regularizer = self._resolve("bias_regularizer", bias_regularizer,
                                              regularizers.get)
        self.activity_regularizer = self._resolve("activity_regularizer", activity_regularizer,
                                                  regularizers.get)
        self.kernel_constraint = self._resolve("kernel_constraint", kernel_constraint,
                                               constraints.get)
        self.bias_constraint = self._resolve("bias_constraint", bias_constraint,
                                             constraints.get)

    def can_fuse_activation(self, activation):
        """Whether the plan may run an activation layer after this one as its activation
        (``rewrites.activation_into_layer``): when it has none of its own (linear), and
        the activation works elementwise or, for softmax, along the last axis."""
        return (self.activation.name == "linear" and self.activity_regularizer is None
                and getattr(activation, "axis", -1) == -1)

    def _add_kernel_and_bias(self, kernel_shape, units):
        self.kernel = self.add_weight(kernel_shape, self._initializers["kernel"],
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = self.add_weight((units,), self._initializers["bias"],
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None
        # The kernels take the arrays (the Variables' own, updated in place).
        self._kernel_array = self.kernel.value
        self._bias_array = self.bias.value if self.use_bias else None

    def get_config(self):
        config = super().get_config()
        config.update(activation=activations.serialize(self.activation), use_bias=self.use_bias,
                      kernel_initializer=_serialize_init(self.kernel_initializer),
                      bias_initializer=_serialize_init(self.bias_initializer),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      activity_regularizer=regularizers.serialize(self.activity_regularizer),
                      kernel_constraint=constraints._serialize_argument(self, "kernel_constraint",
                                                                        self.kernel_constraint),
                      bias_constraint=constraints._serialize_argument(self, "bias_constraint",
                                                                      self.bias_constraint))
        return config

    @staticmethod
    def _activation_buffers(ctx, activation, rows, units):
        """The (z, y) training buffers: one array when the activation can run in place."""
        z = ctx.buffers.get("z", rows, (units,))
        if activation.kernel_params()[0] in _DERIVATIVE_FROM_OUTPUT:
            return z, z
        return z, ctx.buffers.get("y", rows, (units,))

    def backward(self, ctx, dy, need_input_grad=True):
        if self.activity_regularizer is not None:
            dy = self._activity_backward(ctx.y_out, dy,
                                         ctx.buffers.get("dy", dy.shape[0], dy.shape[1:]))
        activation = ctx.activation or self.activation
        if activation.name == "linear":
            # dz is dy: the bias gradient is its column sums, and no pass copies it (the
            # kernel writes back the values it read, so a dy shared with another step, as
            # an Add's, is left as it was).
            flags = dy.flags
            dz = (dy if flags.c_contiguous and flags.aligned and flags.writeable
                  else np.array(dy, order="C")).reshape(ctx.z.shape)
            if self.use_bias:
                _LINEAR.backward_bias(dz, dz, dz, dz, ctx.grads[self._bias_index])
            return self._backward_linear(ctx, dz, need_input_grad)
        dz = ctx.buffers.get("dz", ctx.z.shape[0], ctx.z.shape[1:])
        activation.backward_bias(ctx.z, ctx.y, dy.reshape(ctx.z.shape), dz,
                                 ctx.grads[self._bias_index] if self.use_bias else None)
        return self._backward_linear(ctx, dz, need_input_grad)

    def backward_preactivation(self, ctx, dz, need_input_grad=True):
        """Backward from the gradient with respect to ``linear(x) + b`` (used when the loss
        has already folded this layer's softmax or sigmoid into its gradient, and by the
        ReLU + max pooling fusion)."""
        dz = dz.reshape(ctx.z.shape)
        if self.activity_regularizer is not None:
            # The activity penalty is on the output: its gradient goes back through the
            # activation before joining dz.
            out = ctx.y_out
            g = self._activity_backward(out, None, ctx.buffers.get("dy", out.shape[0],
                                                                    out.shape[1:]))
            g = g.reshape(ctx.z.shape)
            (ctx.activation or self.activation).backward(ctx.z, ctx.y, g, g)
            dz = np.add(dz, g, out=g)
        if self.use_bias:
            _LINEAR.backward_bias(dz, dz, dz, dz, ctx.grads[self._bias_index])
        return self._backward_linear(ctx, dz, need_input_grad)


@LAYERS.register()
class Dense(AffineLayer):
    """Densely connected layer: ``output = activation(input @ kernel + bias)``.

    Args:
        units: positive int, dimensionality of the output.
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer: initializer of the (input_dim, units) kernel
            (default 'glorot_uniform').
        bias_initializer: initializer of the bias (default 'zeros').
        kernel_regularizer: optional regularizer of the kernel (name, config or object),
            e.g. ``L2(1e-4)``: its penalty joins the loss and its gradient the kernel's.
        bias_regularizer: optional regularizer of the bias.
        activity_regularizer: optional regularizer of the output; its penalty is divided
            by the batch size, as in Keras.
        kernel_constraint: optional constraint of the kernel (name, config, ``Constraint``
            or callable), applied after each optimizer update, e.g. ``MaxNorm(3.0)``
            bounds the norm of each unit's incoming weights.
        bias_constraint: optional constraint of the bias.

    Input shape:
        N-D ``(batch_size, ..., input_dim)``; the most common case is 2-D
        ``(batch_size, input_dim)``. Beyond 2-D the kernel applies along the last axis,
        to every position of the others (as Keras does, e.g. to each step of a sequence).
    Output shape:
        ``(batch_size, ..., units)``.

    Example:
        >>> layer = Dense(64, activation="relu", input_shape=(784,))
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    # Every value of x @ kernel's row i involves every value of x's row i: a NaN or an
    # infinity there makes the whole row NaN or infinite (NaN * w, inf * 0 and inf - inf are
    # NaN; inf + a finite value stays infinite), whatever the weights. So counting the
    # non-finite values of that product, a tenth of x's size for a 784-64 layer and still in
    # cache, finds any in x: predict skips its own scan of x (as large as the first
    # product's reading of it) when this layer reads the model's input.
    finds_nonfinite_input = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive int; received units={units!r}.")
        self.units = int(units)

    def build(self, input_shape):
        if not input_shape or input_shape[-1] is None:
            raise ValueError(
                f"Layer '{self.name}' (Dense) expects input (batch, ..., features) with a known "
                f"number of features (last axis); received "
                f"input of shape {(None,) + tuple(input_shape)}.")
        self._add_kernel_and_bias((input_shape[-1], self.units), self.units)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, ctx, x, training=False):
        if x.ndim > 2:
            # (batch, ..., features): the product of the rows of every position at once.
            y = self.forward(ctx, np.ascontiguousarray(x).reshape(-1, x.shape[-1]), training)
            y = y.reshape(x.shape[:-1] + (self.units,))
            if ctx.record:
                ctx.y_out, ctx.x_shape = y, x.shape
            return y
        if ctx.record:
            ctx.x_shape = None
        n = x.shape[0]
        activation = ctx.activation or self.activation
        if ctx.record:
            z, y = self._activation_buffers(ctx, activation, n, self.units)
        else:
            # Inference allocates, so that concurrent predict calls never share buffers, and
            # applies the activation in place: nothing needs z afterwards.
            z = y = np.empty((n, self.units), self.dtype)
        gemm(x, self._kernel_array, z)
        if ctx.check_input:
            ctx.input_nonfinite += _data.count_nonfinite(z)[0]
        activation.forward_bias(z, self._bias_array, y)
        if ctx.record:
            ctx.x, ctx.z, ctx.y, ctx.y_out = x, z, y, y
        return y

    def _backward_linear(self, ctx, dz, need_input_grad):
        gemm(ctx.x, dz, ctx.grads[0], trans_a=True)
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dz.shape[0], (self.kernel.shape[0],))
        dx = gemm(dz, self._kernel_array, dx, trans_b=True)
        return dx if ctx.x_shape is None else dx.reshape(ctx.x_shape)

    def get_config(self):
        config = super().get_config()
        return {**config, "units": self.units}


@LAYERS.register()
class Activation(Layer):
    """Applies an activation function to its input.

    Args:
        activation: activation name (e.g. 'relu') or object.

    Input shape: any. Output shape: same as the input.
    """

    supports_masking = True   # (as in Keras: an incoming mask passes on)

    is_activation_layer = True   # (rewrites.activation_into_layer)

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = self._resolve("activation", activation, activations.get)

    def forward(self, ctx, x, training=False):
        x = np.ascontiguousarray(x)
        if ctx.record:
            y = ctx.buffers.get("y", x.shape[0], x.shape[1:])
        else:
            y = np.empty_like(x)
        self.activation.forward(x, y)
        if ctx.record:
            ctx.x, ctx.y = x, y
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = ctx.buffers.get("dx", dy.shape[0], dy.shape[1:])
        self.activation.backward(ctx.x, ctx.y, dy, dx)
        return dx

    def backward_preactivation(self, ctx, dz, need_input_grad=True):
        return dz if need_input_grad else None

    def forward_linear(self, ctx, x):
        """The input itself: the layer is its activation alone (see AffineLayer)."""
        return np.ascontiguousarray(x)

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config


def _serialize_init(init):
    """Initializer as config: a name stays a name; an object becomes its serialized dict."""
    if isinstance(init, (str, dict)) or init is None:  # a dict is already serialized
        return init
    from minidl import initializers
    return initializers.serialize(init)
