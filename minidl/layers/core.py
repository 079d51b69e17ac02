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

from minidl import activations, initializers, regularizers
from minidl.layers.base import LAYERS, BufferPool, Layer, _as_shape
from minidl.ops import gemm
from minidl.utils.checks import check_bool


# Used for the bias gradient of a pre-activation gradient (dz -> db); built once.
_LINEAR = activations.get("linear")

@LAYERS.register()
class InputLayer(Layer):
    """Declares the shape of one input sample; the first layer of a Sequential model.

    Args:
        shape: shape of one sample, without the batch dimension, e.g. ``(784,)``.
        name: optional name.
    """

    def __init__(self, shape=None, name=None, dtype="float32", input_shape=None, **kwargs):
        if shape is None and input_shape is None:
            raise ValueError("InputLayer needs `shape`, the shape of one sample, e.g. (784,).")
        if shape is not None and input_shape is not None \
                and _as_shape(shape, "shape") != _as_shape(input_shape, "input_shape"):
            raise ValueError(f"InputLayer takes shape or input_shape (two names of one "
                             f"argument), not two different shapes. Received: shape={shape!r}, "
                             f"input_shape={input_shape!r}")
        shape, what = (shape, "shape") if shape is not None else (input_shape, "input_shape")
        super().__init__(name=name, input_shape=_as_shape(shape, what), dtype=dtype, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)

    def forward(self, x, training=False):
        return x

    def backward(self, dy, need_input_grad=True):
        return dy if need_input_grad else None

    def get_config(self):
        config = super().get_config()
        config["shape"] = list(config.pop("input_shape"))
        return config


def Input(shape, name=None, dtype="float32"):
    """Start a Sequential model with a known sample shape: ``Sequential([Input((784,)), ...])``.

    Args:
        shape: shape of one sample, without the batch dimension.
    Returns:
        An :class:`InputLayer`.
    """
    return InputLayer(shape=shape, name=name, dtype=dtype)


# Activations whose derivative the kernels take from the output y = f(z) alone, or from the
# sign of z, which y keeps (relu, elu, selu): for these, training applies f in place (y is
# z), which saves a buffer and a pass of memory traffic the size of the layer's output.
_DERIVATIVE_FROM_OUTPUT = frozenset({"linear", "relu", "sigmoid", "tanh", "elu", "selu",
                                     "exponential", "softmax"})


class AffineLayer(Layer):
    """Base of the layers computing ``activation(linear(x) + bias)``: Dense and the
    convolutions. It holds their shared backward pass; a subclass writes the forward pass
    and ``_backward_linear``.

    The forward pass of a subclass keeps, in training:
        ``_z``, ``_y``: the pre-activation and the activation as 2-D (rows, units) arrays
            (``_y`` may be ``_z`` for a linear activation);
        ``_y_out``: the output as returned (Dense: ``_y``; Conv2D: ``_y`` as images), on
            which an activity regularizer's penalty is taken.
    ``_backward_linear(dz, need_input_grad)`` gets ``dz`` as (rows, units), fills the
    kernel's gradient and returns the input gradient (or None).

    Args (shared by the subclasses, as in Keras):
        activation: activation name or object; None means linear.
        use_bias: whether to add a bias vector.
        kernel_initializer, bias_initializer: initializers (name, config or object).
        kernel_regularizer, bias_regularizer: optional regularizers of the weights.
        activity_regularizer: optional regularizer of the output; its penalty is divided
            by the batch size, as in Keras.
    """

    def __init__(self, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, **kwargs):
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
        self._buffers = BufferPool(self.dtype)

    def _add_kernel_and_bias(self, kernel_shape, units):
        self.kernel = self.add_weight("kernel", kernel_shape, self._initializers["kernel"],
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight("bias", (units,), self._initializers["bias"],
                                    regularizer=self.bias_regularizer) if self.use_bias else None

    def get_config(self):
        config = super().get_config()
        config.update(activation=activations.serialize(self.activation), use_bias=self.use_bias,
                      kernel_initializer=_serialize_init(self.kernel_initializer),
                      bias_initializer=_serialize_init(self.bias_initializer),
                      kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                      bias_regularizer=regularizers.serialize(self.bias_regularizer),
                      activity_regularizer=regularizers.serialize(self.activity_regularizer))
        return config

    def _activation_buffers(self, rows, units):
        """The (z, y) training buffers: one array when the activation can run in place."""
        z = self._buffers.get("z", rows, (units,))
        if self.activation.kernel_params()[0] in _DERIVATIVE_FROM_OUTPUT:
            return z, z
        return z, self._buffers.get("y", rows, (units,))

    def backward(self, dy, need_input_grad=True):
        if self.activity_regularizer is not None:
            dy = self._activity_backward(self._y_out, dy,
                                         self._buffers.get("dy", dy.shape[0], dy.shape[1:]))
        dz = self._buffers.get("dz", self._z.shape[0], self._z.shape[1:])
        self.activation.backward_bias(self._z, self._y, dy.reshape(self._z.shape), dz,
                                      self.grads[1] if self.use_bias else None)
        return self._backward_linear(dz, need_input_grad)

    def backward_preactivation(self, dz, need_input_grad=True):
        """Backward from the gradient with respect to ``linear(x) + b`` (used when the loss
        has already folded this layer's softmax or sigmoid into its gradient)."""
        dz = dz.reshape(self._z.shape)
        if self.activity_regularizer is not None:
            # The activity penalty is on the output: its gradient goes back through the
            # activation before joining dz.
            out = self._y_out
            g = self._activity_backward(out, None, self._buffers.get("dy", out.shape[0],
                                                                      out.shape[1:]))
            g = g.reshape(self._z.shape)
            self.activation.backward(self._z, self._y, g, g)
            dz = np.add(dz, g, out=g)
        if self.use_bias:
            _LINEAR.backward_bias(dz, dz, dz, dz, self.grads[1])
        return self._backward_linear(dz, need_input_grad)


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

    Input shape:
        2-D ``(batch_size, input_dim)``.
    Output shape:
        2-D ``(batch_size, units)``.

    Example:
        >>> layer = Dense(64, activation="relu", input_shape=(784,))
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, **kwargs):
        super().__init__(activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"Dense units must be a positive int; received units={units!r}.")
        self.units = int(units)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"Layer '{self.name}' (Dense) expects 2-D input (batch, features); received "
                f"input of shape {(None,) + tuple(input_shape)}. Add Flatten() before it or "
                f"reshape the data.")
        self._add_kernel_and_bias((input_shape[0], self.units), self.units)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def forward(self, x, training=False):
        n = x.shape[0]
        if training:
            z, y = self._activation_buffers(n, self.units)
        else:
            # Inference allocates, so that concurrent predict calls never share buffers, and
            # applies the activation in place: nothing needs z afterwards.
            z = y = np.empty((n, self.units), self.dtype)
        gemm(x, self.kernel, z)
        self.activation.forward_bias(z, self.bias, y)
        if training:
            if self.activity_regularizer is not None:
                self._activity_forward(y)
            self._x, self._z, self._y, self._y_out = x, z, y, y
        return y

    def _backward_linear(self, dz, need_input_grad):
        gemm(self._x, dz, self.grads[0], trans_a=True)
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", dz.shape[0], (self.kernel.shape[0],))
        return gemm(dz, self.kernel, dx, trans_b=True)

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

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = self._resolve("activation", activation, activations.get)
        self._buffers = BufferPool(self.dtype)

    def forward(self, x, training=False):
        x = np.ascontiguousarray(x)
        if training:
            y = self._buffers.get("y", x.shape[0], x.shape[1:])
        else:
            y = np.empty_like(x)
        self.activation.forward(x, y)
        if training:
            self._x, self._y = x, y
        return y

    def backward(self, dy, need_input_grad=True):
        if not need_input_grad:
            return None
        dx = self._buffers.get("dx", dy.shape[0], dy.shape[1:])
        self.activation.backward(self._x, self._y, dy, dx)
        return dx

    def backward_preactivation(self, dz, need_input_grad=True):
        return dz if need_input_grad else None

    def forward_linear(self, x):
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
