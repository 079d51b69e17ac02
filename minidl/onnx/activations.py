"""minidl's activation functions as ONNX nodes.

Every activation works elementwise except softmax, which normalises one axis: so an
activation keeps its input's layout (``graph.Value.perm``), and softmax's axis is moved to
where the layout holds it. An activation with no ONNX operator of its own in the opset
(GELU before opset 20, mish before 18) is written with its formula.
"""
import math

from minidl.onnx.graph import Value

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def apply_activation(b, activation, value, hint):
    """``activation`` (a ``minidl.activations.Activation``) applied to ``value``.

    Raises:
        ValueError: an activation without a conversion (a user subclass), named.
    """
    kind, params = activation.kernel_params()
    if kind == "linear":
        return value
    if kind == "softmax":
        axis = getattr(activation, "axis", -1)
        if value.order is not None and axis % value.rank != value.rank - 1:
            value = b.logical(value, hint)
        name = b.op("Softmax", [value.name], hint, axis=value.physical_axis(axis))
        return Value(name, value.shape, value.dtype, value.perm, value.order)
    emit = _ELEMENTWISE.get(kind)
    if emit is None or type(activation).__module__ != "minidl.activations":
        raise ValueError(f"Activation {type(activation).__name__} ({activation!r:.100}) has no "
                         f"ONNX conversion; minidl exports its built-in activations only.")
    name = emit(b, value.name, value.dtype, params, hint)
    return Value(name, value.shape, value.dtype, value.perm, value.order)


def onnx_recurrent_activation(activation, owner):
    """The name (and alpha, beta) of ``activation`` among those ONNX's LSTM, GRU and RNN
    take; ValueError naming ``owner`` for the others."""
    kind, params = activation.kernel_params()
    if type(activation).__module__ == "minidl.activations":
        if kind == "sigmoid":
            return "Sigmoid", None, None
        if kind == "tanh":
            return "Tanh", None, None
        if kind == "relu":
            return "Relu", None, None
        if kind == "hard_sigmoid":
            return "HardSigmoid", 1.0 / 6.0, 0.5
        if kind == "linear":
            return "Affine", 1.0, 0.0
        if kind == "softsign":
            return "Softsign", None, None
        if kind == "elu":
            return "Elu", params[0], None
        if kind == "leaky_relu":
            return "LeakyRelu", params[0], None
    raise ValueError(f"{owner}: the activation {activation!r:.100} has no equivalent among the "
                     f"activations of ONNX's recurrent operators (sigmoid, tanh, relu, "
                     f"hard_sigmoid, linear, softsign, elu, leaky_relu).")


def _unary(op_type, **attributes):
    def emit(b, x, dtype, params, hint):
        return b.op(op_type, [x], hint, **attributes)
    return emit


def _relu_general(b, x, dtype, params, hint):
    # minidl's ReLU(negative_slope=a, max_value=m, threshold=t):
    # where(x > t, x, 0), clipped to [0, m], minus a * max(t - x, 0).
    slope, top, threshold = params
    zero = b.scalar(0.0, dtype)
    t = b.scalar(threshold, dtype)
    y = b.op("Where", [b.op("Greater", [x, t], hint), x, zero], hint)
    if top != math.inf:
        y = b.op("Clip", [y, zero, b.scalar(top, dtype)], hint)
    if slope != 0:
        below = b.op("Relu", [b.op("Sub", [t, x], hint)], hint)
        y = b.op("Sub", [y, b.op("Mul", [below, b.scalar(slope, dtype)], hint)], hint)
    return y


def _relu6(b, x, dtype, params, hint):
    return b.op("Clip", [x, b.scalar(0.0, dtype), b.scalar(6.0, dtype)], hint)


def _leaky_relu(b, x, dtype, params, hint):
    return b.op("LeakyRelu", [x], hint, alpha=float(params[0]))


def _elu(b, x, dtype, params, hint):
    return b.op("Elu", [x], hint, alpha=float(params[0]))


def _gelu(approximate):
    def emit(b, x, dtype, params, hint):
        if b.opset >= 20:
            return b.op("Gelu", [x], hint, approximate="tanh" if approximate else "none")
        half = b.scalar(0.5, dtype)
        one = b.scalar(1.0, dtype)
        if approximate:
            # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
            cube = b.op("Mul", [b.op("Mul", [x, x], hint), x], hint)
            inner = b.op("Add", [x, b.op("Mul", [cube, b.scalar(0.044715, dtype)], hint)], hint)
            inner = b.op("Mul", [inner, b.scalar(math.sqrt(2.0 / math.pi), dtype)], hint)
            core = b.op("Tanh", [inner], hint)
        else:
            # 0.5 x (1 + erf(x / sqrt 2))
            core = b.op("Erf", [b.op("Mul", [x, b.scalar(1.0 / math.sqrt(2.0), dtype)],
                                     hint)], hint)
        return b.op("Mul", [b.op("Mul", [x, half], hint), b.op("Add", [core, one], hint)],
                    hint)
    return emit


def _silu(b, x, dtype, params, hint):
    return b.op("Mul", [x, b.op("Sigmoid", [x], hint)], hint)


def _mish(b, x, dtype, params, hint):
    if b.opset >= 18:
        return b.op("Mish", [x], hint)
    return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x], hint)], hint)], hint)


_ELEMENTWISE = {
    "relu": _unary("Relu"),
    "relu6": _relu6,
    "leaky_relu": _leaky_relu,
    "relu_general": _relu_general,
    "sigmoid": _unary("Sigmoid"),
    # Keras 3: clip(x / 6 + 0.5, 0, 1); ONNX: clip(alpha x + beta, 0, 1).
    "hard_sigmoid": _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "tanh": _unary("Tanh"),
    "elu": _elu,
    "selu": _unary("Selu", alpha=SELU_ALPHA, gamma=SELU_SCALE),
    "gelu": _gelu(False),
    "gelu_tanh": _gelu(True),
    "softplus": _unary("Softplus"),
    "softsign": _unary("Softsign"),
    "silu": _silu,
    # x * clip(x / 6 + 0.5, 0, 1)
    "hard_silu": _unary("HardSwish"),
    "exponential": _unary("Exp"),
    "mish": _mish,
}

KINDS = frozenset(_ELEMENTWISE) | {"linear", "softmax"}

