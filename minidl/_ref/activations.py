"""Reference for ``minidl._core._activations``: the same kernels in plain numpy.

Arrays are (rows, cols) and every result is written into the caller's ``out`` like the kernels.
The math runs in float64 whatever the dtype, so for float32 data the reference is the exact
result rounded once: tests measure the kernels' own float32 error against it.
"""
import math

import numpy as np

KINDS = (
    "linear", "relu", "relu6", "leaky_relu", "relu_general", "sigmoid", "hard_sigmoid", "tanh",
    "elu", "selu", "gelu", "gelu_tanh", "softplus", "softsign", "silu", "hard_silu",
    "exponential", "mish", "softmax",
)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.frompyfunc(math.erf, 1, 1)


def _c(value, x):
    """A scalar in the dtype of ``x`` (a bare Python float would promote float32 to float64)."""
    return np.asarray(value, dtype=x.dtype)


def _params(params):
    a, b, c = (tuple(params) + (0.0, 0.0, 0.0))[:3]
    return a, b, c


def _sigmoid(x):
    return _c(1, x) / (_c(1, x) + np.exp(-x))


def _erf_same(x):
    return _erf(x.astype(np.float64)).astype(x.dtype)


def _f(kind, params, x):
    a, b, c = _params(params)
    one, zero = _c(1, x), _c(0, x)
    if kind == "linear":
        return x.copy()
    if kind == "relu":
        return np.maximum(x, zero)
    if kind == "relu6":
        return np.minimum(np.maximum(x, zero), _c(6, x))
    if kind == "leaky_relu":
        return np.maximum(x, _c(a, x) * x)
    if kind == "relu_general":
        y = np.where(x > _c(c, x), x, zero)
        if b != np.inf:
            y = np.clip(y, zero, _c(b, x))
        if a != 0:
            y = y - _c(a, x) * np.maximum(_c(c, x) - x, zero)
        return y
    if kind == "sigmoid":
        return _sigmoid(x)
    if kind == "hard_sigmoid":
        return np.clip(x / _c(6, x) + _c(0.5, x), zero, one)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "elu":
        return np.where(x > zero, x, _c(a, x) * np.expm1(x))
    if kind == "selu":
        return _c(SELU_SCALE, x) * np.where(x > zero, x, _c(SELU_ALPHA, x) * np.expm1(x))
    if kind == "gelu":
        return x * (_erf_same(x / _c(math.sqrt(2), x)) + one) / _c(2, x)
    if kind == "gelu_tanh":
        k = _c(math.sqrt(2 / math.pi), x)
        return _c(0.5, x) * x * (one + np.tanh(k * (x + _c(0.044715, x) * x ** 3)))
    if kind == "softplus":
        return np.logaddexp(x, zero)
    if kind == "softsign":
        return x / (one + np.abs(x))
    if kind == "silu":
        return x * _sigmoid(x)
    if kind == "hard_silu":
        return x * np.clip(x / _c(6, x) + _c(0.5, x), zero, one)
    if kind == "exponential":
        return np.exp(x)
    if kind == "mish":
        return x * np.tanh(np.logaddexp(x, zero))
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"Unknown activation kernel kind {kind!r}; expected one of "
                     f"{', '.join(KINDS)}.")


def _df(kind, params, x, y):
    """f'(x) for the elementwise kinds (y = f(x))."""
    a, b, c = _params(params)
    one, zero = _c(1, x), _c(0, x)
    if kind == "linear":
        return np.ones_like(x)
    if kind == "relu":
        return (x > zero).astype(x.dtype)
    if kind == "relu6":
        return ((x > zero) & (x < _c(6, x))).astype(x.dtype)
    if kind == "leaky_relu":
        return np.where(x >= _c(a, x) * x, one, _c(a, x))
    if kind == "relu_general":
        inside = x > _c(c, x)
        if b != np.inf:
            inside &= (x > zero) & (x < _c(b, x))
        d = inside.astype(x.dtype)
        if a != 0:
            d = d + np.where(x < _c(c, x), _c(a, x), zero)
        return d
    if kind == "sigmoid":
        s = _sigmoid(x)
        return s * (one - s)
    if kind == "hard_sigmoid":
        return np.where((x > _c(-3, x)) & (x < _c(3, x)), one / _c(6, x), zero)
    if kind == "tanh":
        return one - np.tanh(x) ** 2
    if kind == "elu":
        return np.where(x > zero, one, _c(a, x) * np.exp(x))
    if kind == "selu":
        return _c(SELU_SCALE, x) * np.where(x > zero, one, _c(SELU_ALPHA, x) * np.exp(x))
    if kind == "gelu":
        cdf = (_erf_same(x / _c(math.sqrt(2), x)) + one) / _c(2, x)
        return cdf + x * np.exp(-x * x / _c(2, x)) / _c(math.sqrt(2 * math.pi), x)
    if kind == "gelu_tanh":
        k, cub = _c(math.sqrt(2 / math.pi), x), _c(0.044715, x)
        t = np.tanh(k * (x + cub * x ** 3))
        half = _c(0.5, x)
        return half * (one + t) + half * x * (one - t * t) * k * (one + _c(3, x) * cub * x * x)
    if kind == "softplus":
        return _sigmoid(x)
    if kind == "softsign":
        return one / (one + np.abs(x)) ** 2
    if kind == "silu":
        s = _sigmoid(x)
        return s * (one + x * (one - s))
    if kind == "hard_silu":
        hs = np.clip(x / _c(6, x) + _c(0.5, x), zero, one)
        return hs + np.where((x > _c(-3, x)) & (x < _c(3, x)), x / _c(6, x), zero)
    if kind == "exponential":
        return np.exp(x)
    if kind == "mish":
        t = np.tanh(np.logaddexp(x, zero))
        return t + x * (one - t * t) * _sigmoid(x)
    raise ValueError(f"Unknown activation kernel kind {kind!r}; expected one of "
                     f"{', '.join(KINDS)}.")


def _grad(kind, params, z, y, dy):
    if kind == "softmax":
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    return dy * _df(kind, params, z, y)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def forward(kind, params, z, out):
    """out = f(z); see ``minidl._core._activations.forward``."""
    out[...] = _f(kind, params, _f64(z))


def backward(kind, params, z, y, dy, out):
    """out = dy * f'(z); see ``minidl._core._activations.backward``."""
    out[...] = _grad(kind, params, _f64(z), _f64(y), _f64(dy))


def forward_bias(kind, params, z, bias, out):
    """z += bias (when given), then out = f(z); see ``minidl._core._activations.forward_bias``."""
    if bias is not None:
        z += bias
    out[...] = _f(kind, params, _f64(z))


def backward_bias(kind, params, z, y, dy, dz, dbias):
    """dz = dy * f'(z), dbias = dz.sum(0); see ``minidl._core._activations.backward_bias``."""
    grad = _grad(kind, params, _f64(z), _f64(y), _f64(dy))
    dz[...] = grad
    if dbias is not None:
        dbias[...] = grad.sum(axis=0)
