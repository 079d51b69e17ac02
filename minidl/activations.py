"""Activation functions, Keras 3 names and defaults, on fused compiled kernels.

Two faces, as in Keras:

* functions (``relu(x)``, ``softmax(x, axis=-1)``, ...) that take any array-like and return a
  new array;
* objects from ``get(identifier)`` that layers hold. Besides ``__call__`` they expose the
  in-place kernels a training step calls with preallocated buffers: ``forward``, ``backward``,
  and the two fusions of the Dense layer, ``forward_bias`` (add the bias, activate) and
  ``backward_bias`` (activation gradient and bias gradient in one pass).

All array arguments of the in-place methods are C-contiguous float32 or float64 arrays of one
dtype; the activation acts along the last axis where that matters (softmax).

Example:
    >>> act = activations.get("relu")
    >>> act.forward_bias(z, bias, out)           # z += bias; out = relu(z)
    >>> act.backward_bias(z, out, dy, dz, dbias)  # dz = dy * relu'(z); dbias = dz.sum(0)
"""
import functools
import math
import numbers

import numpy as np

from minidl._core import _activations as _kernels
from minidl.utils.checks import check_bool
from minidl.utils.registry import Registry, deserializer, subclass_test
from minidl.utils.registry import serialize as _serialize_config

ACTIVATIONS = Registry("activation", accepts=subclass_test(lambda: Activation))

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---- checks of the Python-level path (Softmax over an axis other than the last) ----
# The in-place methods otherwise leave every check to the compiled Kernel.

def _check_array(owner, name, a, dtype=None):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{owner}: {name} must be a numpy.ndarray; received "
                        f"{type(a).__name__}.")
    if a.dtype not in _KERNEL_DTYPES:
        raise TypeError(f"{owner}: {name} must be float32 or float64; received {a.dtype}.")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{owner}: {name} must have dtype {dtype} like the input; received "
                        f"{a.dtype}.")
    if not a.flags.c_contiguous:
        raise ValueError(f"{owner}: {name} must be C-contiguous (np.ascontiguousarray).")


def _same_shape(owner, ref_name, ref, name, a):
    if a.shape != ref.shape:
        raise ValueError(f"{owner}: {name} must have the shape of {ref_name} {ref.shape}; "
                         f"received {a.shape}.")


def _float_input(x):
    """x as a float32/float64 array, and the dtype to hand back (Keras computes ints as float32)."""
    x = np.asarray(x)
    if x.dtype in _KERNEL_DTYPES:
        return x, x.dtype
    if np.issubdtype(x.dtype, np.floating):
        work = np.float64 if x.dtype.itemsize > 8 else np.float32
        return x.astype(work), x.dtype
    return x.astype(np.float32), np.dtype(np.float32)


class Activation:
    """Base class: an activation function with fused forward/backward kernels.

    Subclasses set ``name`` (the registry name) and ``kind`` (the kernel), and override
    ``kernel_params`` when the kernel takes parameters. Instances are cheap and stateless.

    The in-place methods go straight to a compiled :class:`minidl._core._activations.Kernel`
    built from ``kernel_params()`` on first use, which checks every argument (ndarray,
    float32/float64 of one dtype, C-contiguous, shapes, writeable outputs) at a cost well
    under a microsecond. Setting any attribute drops it, so it always matches the config.
    """

    name = None
    kind = None
    compiled = True   # runs on a compiled Kernel (FunctionActivation: False)
    _kernel = None

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name != "_kernel":
            object.__setattr__(self, "_kernel", None)

    def kernel_params(self):
        """(kernel kind, params tuple) for ``minidl._core._activations``."""
        return self.kind, ()

    def _compiled(self):
        kind, params = self.kernel_params()
        self._kernel = _kernels.Kernel(kind, tuple(params), type(self).__name__)
        return self._kernel

    # -- in-place kernels used by layers --

    def forward(self, z, out):
        """out = f(z), elementwise (softmax: along the last axis).

        Args:
            z: C-contiguous float32/float64 array, any shape.
            out: array of the same shape and dtype (may be ``z``).
        Returns:
            ``out``.
        """
        (self._kernel or self._compiled()).forward(z, out)
        return out

    def backward(self, z, y, dy, out):
        """out = dy * f'(z), given y = f(z) (softmax: y * (dy - sum(dy * y, axis=-1))).

        Args:
            z: pre-activation. y: f(z), or None to recompute it (allocates).
            dy: upstream gradient. out: the result; may be ``dy``.
            All of one shape and dtype, C-contiguous.
        Returns:
            ``out``.
        """
        (self._kernel or self._compiled()).backward(z, y, dy, out)
        return out

    def forward_bias(self, z, bias, out):
        """z[..., j] += bias[j] in place, then out = f(z), in one pass.

        Args:
            z: (batch, units) pre-activation (more leading axes are fine), modified in place.
            bias: (units,) array of z's dtype, or None for no bias.
            out: array like ``z``; may be ``z``.
        Returns:
            ``out``.
        """
        (self._kernel or self._compiled()).forward_bias(z, bias, out)
        return out

    def backward_bias(self, z, y, dy, dz, dbias):
        """dz = dy * f'(z) and, when dbias is given, dbias[j] = sum of dz[..., j], in one pass.

        The column sums run over fixed row chunks, so dbias has the same bits for any thread
        count.

        Args:
            z, y, dy: (batch, units) arrays as in :meth:`backward` (y may be None).
            dz: the result, like ``z``; may be ``dy``.
            dbias: (units,) array of z's dtype, or None.
        Returns:
            ``dz``.
        """
        (self._kernel or self._compiled()).backward_bias(z, y, dy, dz, dbias)
        return dz

    # -- functional use --

    def __call__(self, x):
        """f(x) as a new array; x may be any array-like (ints compute as float32)."""
        x, dtype = _float_input(x)
        x = np.ascontiguousarray(x)
        out = self.forward(x, np.empty_like(x))
        return out if out.dtype == dtype else out.astype(dtype)

    # -- config --

    def get_config(self):
        """The constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _real(owner, name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number; received {name}={value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}; received {name}={value!r}.")
    return float(value)


@ACTIVATIONS.register("linear")
class Linear(Activation):
    """Identity: ``f(x) = x``."""
    name, kind = "linear", "linear"


@ACTIVATIONS.register("relu")
class ReLU(Activation):
    """Rectified linear unit, Keras 3 form.

    ``f(x) = x`` for ``x > threshold`` (clipped to ``max_value`` when given), else 0, minus
    ``negative_slope * max(threshold - x, 0)``; with defaults ``max(x, 0)``.

    Args:
        negative_slope: slope below the threshold, >= 0. Defaults to 0.
        max_value: saturation value (>= 0), or None. Defaults to None.
        threshold: values at or below it are damped. Defaults to 0.
    """
    name = "relu"

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0):
        self.negative_slope = _real("ReLU", "negative_slope", negative_slope, 0.0)
        self.max_value = None if max_value is None else _real("ReLU", "max_value", max_value, 0.0)
        self.threshold = _real("ReLU", "threshold", threshold)

    def kernel_params(self):
        slope, top, thr = self.negative_slope, self.max_value, self.threshold
        if thr == 0 and slope == 0 and top is None:
            return "relu", ()
        if thr == 0 and slope == 0 and top == 6:
            return "relu6", ()
        if thr == 0 and top is None:
            return "leaky_relu", (slope,)
        return "relu_general", (slope, math.inf if top is None else top, thr)

    def get_config(self):
        return {"negative_slope": self.negative_slope, "max_value": self.max_value,
                "threshold": self.threshold}


@ACTIVATIONS.register("relu6")
class ReLU6(Activation):
    """``f(x) = min(max(x, 0), 6)``."""
    name, kind = "relu6", "relu6"


@ACTIVATIONS.register("leaky_relu")
class LeakyReLU(Activation):
    """Leaky ReLU, ``f(x) = max(x, negative_slope * x)``.

    Args:
        negative_slope: slope for x < 0, in [0, 1] for the usual shape. Defaults to 0.2
            (Keras 3's default for the activation function).
    """
    name = "leaky_relu"

    def __init__(self, negative_slope=0.2):
        self.negative_slope = _real("LeakyReLU", "negative_slope", negative_slope)

    def kernel_params(self):
        return "leaky_relu", (self.negative_slope,)

    def get_config(self):
        return {"negative_slope": self.negative_slope}


@ACTIVATIONS.register("sigmoid")
class Sigmoid(Activation):
    """``f(x) = 1 / (1 + exp(-x))``, evaluated without overflow at either tail."""
    name, kind = "sigmoid", "sigmoid"


@ACTIVATIONS.register("hard_sigmoid")
class HardSigmoid(Activation):
    """``f(x) = clip(x / 6 + 0.5, 0, 1)`` (Keras 3's definition)."""
    name, kind = "hard_sigmoid", "hard_sigmoid"


@ACTIVATIONS.register("tanh")
class Tanh(Activation):
    """Hyperbolic tangent."""
    name, kind = "tanh", "tanh"


@ACTIVATIONS.register("elu")
class ELU(Activation):
    """Exponential linear unit: ``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        alpha: scale of the negative part. Defaults to 1.0.
    """
    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = _real("ELU", "alpha", alpha)

    def kernel_params(self):
        return "elu", (self.alpha,)

    def get_config(self):
        return {"alpha": self.alpha}


@ACTIVATIONS.register("selu")
class SELU(Activation):
    """Scaled ELU with Keras' fixed alpha (1.67326...) and scale (1.05070...)."""
    name, kind = "selu", "selu"


@ACTIVATIONS.register("gelu")
class GELU(Activation):
    """Gaussian error linear unit.

    Args:
        approximate: False (Keras 3's default) for ``0.5 x (1 + erf(x / sqrt 2))``; True for
            the tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    name = "gelu"

    def __init__(self, approximate=False):
        self.approximate = check_bool("GELU", "approximate", approximate)

    def kernel_params(self):
        return ("gelu_tanh" if self.approximate else "gelu"), ()

    def get_config(self):
        return {"approximate": self.approximate}


@ACTIVATIONS.register("softplus")
class Softplus(Activation):
    """``f(x) = log(1 + exp(x))``, as ``max(x, 0) + log1p(exp(-|x|))`` (no overflow)."""
    name, kind = "softplus", "softplus"


@ACTIVATIONS.register("softsign")
class Softsign(Activation):
    """``f(x) = x / (1 + |x|)``."""
    name, kind = "softsign", "softsign"


@ACTIVATIONS.register("silu", "swish")
class SiLU(Activation):
    """SiLU, also called swish: ``f(x) = x * sigmoid(x)``."""
    name, kind = "silu", "silu"


@ACTIVATIONS.register("hard_silu", "hard_swish")
class HardSiLU(Activation):
    """Hard SiLU (hard swish): ``f(x) = x * hard_sigmoid(x)``."""
    name, kind = "hard_silu", "hard_silu"


@ACTIVATIONS.register("exponential")
class Exponential(Activation):
    """``f(x) = exp(x)``."""
    name, kind = "exponential", "exponential"


@ACTIVATIONS.register("mish")
class Mish(Activation):
    """``f(x) = x * tanh(softplus(x))``."""
    name, kind = "mish", "mish"


@ACTIVATIONS.register("softmax")
class Softmax(Activation):
    """Softmax along ``axis``: ``exp(x - max) / sum(exp(x - max))``, finite for any finite x.

    The fused Dense paths (``forward_bias``/``backward_bias``) and the fast paths of
    ``forward``/``backward`` work on the last axis; another ``axis`` works on a transposed
    copy.

    Args:
        axis: the axis to normalise over. Defaults to -1.
    """
    name, kind = "softmax", "softmax"

    def __init__(self, axis=-1):
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError(f"Softmax: axis must be an int; received axis={axis!r}.")
        self.axis = int(axis)

    def _moved(self, a):
        """The axis to move to the end for ``a``, or None when it already is the last one."""
        if a.ndim == 0:
            return None
        axis = self.axis + a.ndim if self.axis < 0 else self.axis
        if not 0 <= axis < a.ndim:
            raise ValueError(f"Softmax: axis={self.axis} is out of range for an input of shape "
                             f"{a.shape}.")
        return None if axis == a.ndim - 1 else axis

    def forward(self, z, out):
        axis = None if self.axis == -1 or not isinstance(z, np.ndarray) else self._moved(z)
        if axis is None:
            return super().forward(z, out)
        _check_array("Softmax.forward", "out", out, z.dtype)
        _same_shape("Softmax.forward", "z", z, "out", out)
        zt = np.moveaxis(z, axis, -1).copy()
        out[...] = np.moveaxis(super().forward(zt, zt), -1, axis)
        return out

    def backward(self, z, y, dy, out):
        axis = None if self.axis == -1 or not isinstance(z, np.ndarray) else self._moved(z)
        if axis is None:
            return super().backward(z, y, dy, out)
        owner = "Softmax.backward"
        _check_array(owner, "z", z)
        if y is None:
            y = self.forward(z, np.empty_like(z))
        for name, a in (("y", y), ("dy", dy), ("out", out)):
            _check_array(owner, name, a, z.dtype)
            _same_shape(owner, "z", z, name, a)
        yt, dyt = (np.moveaxis(a, axis, -1).copy() for a in (y, dy))
        out[...] = np.moveaxis(super().backward(yt, yt, dyt, dyt), -1, axis)
        return out

    def get_config(self):
        return {"axis": self.axis}


# ---- Keras-style functions ----

def linear(x):
    """Identity, as a new array."""
    return Linear()(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit (Keras 3 signature); see :class:`ReLU`."""
    return ReLU(negative_slope, max_value, threshold)(x)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return ReLU6()(x)


def leaky_relu(x, negative_slope=0.2):
    """``max(x, negative_slope * x)``."""
    return LeakyReLU(negative_slope)(x)


def sigmoid(x):
    """Logistic sigmoid, finite at any input."""
    return Sigmoid()(x)


def hard_sigmoid(x):
    """``clip(x / 6 + 0.5, 0, 1)``."""
    return HardSigmoid()(x)


def tanh(x):
    """Hyperbolic tangent."""
    return Tanh()(x)


def elu(x, alpha=1.0):
    """Exponential linear unit; see :class:`ELU`."""
    return ELU(alpha)(x)


def selu(x):
    """Scaled exponential linear unit; see :class:`SELU`."""
    return SELU()(x)


def gelu(x, approximate=False):
    """Gaussian error linear unit; exact erf form unless ``approximate``."""
    return GELU(approximate)(x)


def softplus(x):
    """``log(1 + exp(x))`` without overflow."""
    return Softplus()(x)


def softsign(x):
    """``x / (1 + |x|)``."""
    return Softsign()(x)


def silu(x):
    """``x * sigmoid(x)``."""
    return SiLU()(x)


swish = silu


def hard_silu(x):
    """``x * hard_sigmoid(x)``."""
    return HardSiLU()(x)


hard_swish = hard_silu


def exponential(x):
    """``exp(x)``."""
    return Exponential()(x)


def mish(x):
    """``x * tanh(softplus(x))``."""
    return Mish()(x)


def softmax(x, axis=-1):
    """Softmax along ``axis``; see :class:`Softmax`."""
    return Softmax(axis)(x)


class FunctionActivation(Activation):
    """A Python function as an activation, as Keras's ``Dense(..., activation=fn)`` and
    ``layers.Activation(fn)``.

    ``fn(x)`` takes a tensor and returns one of the same shape, computed with
    ``minidl.ops`` (or numpy functions, which tensors route to the ops), like a Keras
    activation written with ``keras.ops``. It runs without a fused kernel: the forward pass
    calls ``fn``; the backward pass calls it again while recording and takes the
    vector-Jacobian product by automatic differentiation. minidl's activation functions
    (``minidl.activations.relu``, ...) and the ops that are one (``ops.relu``, ``ops.tanh``,
    ...) get their kernels instead.

    Saving: the function is saved by its name (its ``"package>name"`` when registered with
    ``minidl.saving.register_serializable``); a model using it loads where the function is
    registered or given in ``custom_objects``.

    Args:
        fn: the function.
    """
    compiled = False

    def __init__(self, fn):
        if not callable(fn) or isinstance(fn, (type, Activation)):
            raise TypeError(f"FunctionActivation expects a function; received {fn!r:.100}.")
        self.fn = fn
        self.name = _function_name(fn)

    def kernel_params(self):
        return "function", ()

    def _apply(self, z):
        from minidl.autodiff import Tensor
        x = Tensor(z)
        x.requires_grad = True
        y = self.fn(x)
        if not isinstance(y, Tensor):
            y = Tensor(y)
        if y.value.shape != z.shape:
            raise ValueError(f"Activation function {self.name!r}: an activation must return "
                             f"its input's shape {z.shape}; received shape {y.value.shape}.")
        return x, y

    def forward(self, z, out):
        """out = fn(z); see :meth:`Activation.forward`."""
        from minidl.autodiff import no_record_scope
        with no_record_scope():
            _, y = self._apply(z)
        np.copyto(out, y.value, casting="same_kind")
        return out

    def backward(self, z, y, dy, out):
        """out = the vector-Jacobian product of fn at z with dy; ``y`` is not needed."""
        from minidl.autodiff import gradients, record_scope
        with record_scope():
            x, result = self._apply(z)
        grad = gradients([result], [x], output_gradients=[dy], strict=False)[0] \
            if result.node is not None else None
        if grad is None:   # fn does not depend on its input: no gradient flows
            out[...] = 0
        else:
            np.copyto(out, grad, casting="same_kind")
        return out

    def forward_bias(self, z, bias, out):
        """z += bias (along the last axis), then out = fn(z)."""
        if bias is not None:
            z += bias
        return self.forward(z, out)

    def backward_bias(self, z, y, dy, dz, dbias):
        """dz = the backward pass of fn; dbias = the sum of dz over all axes but the last."""
        self.backward(z, y, dy, dz)
        if dbias is not None:
            np.sum(dz.reshape(-1, dz.shape[-1]), axis=0, out=dbias)
        return dz

    def get_config(self):
        return {"fn": self.name}

    def __eq__(self, other):
        return type(other) is FunctionActivation and other.fn is self.fn

    def __hash__(self):
        return hash(self.fn)


def _function_name(fn):
    """The name a config stores for a function (its registered name where it has one)."""
    from minidl.saving.registration import get_registered_name
    try:
        return get_registered_name(fn)
    except TypeError:   # a callable object without a __name__
        return type(fn).__name__


_FUNCTIONS = {linear: Linear, relu: ReLU, relu6: ReLU6, leaky_relu: LeakyReLU,
              sigmoid: Sigmoid, hard_sigmoid: HardSigmoid, tanh: Tanh, elu: ELU, selu: SELU,
              gelu: GELU, softplus: Softplus, softsign: Softsign, silu: SiLU,
              hard_silu: HardSiLU, exponential: Exponential, mish: Mish, softmax: Softmax}


# ---- lookup ----

@functools.lru_cache(maxsize=1)
def _op_kernels():
    """minidl.ops' activation functions whose defaults are an activation's: their kernel."""
    from minidl import ops
    return {ops.relu: ReLU, ops.relu6: ReLU6, ops.sigmoid: Sigmoid, ops.tanh: Tanh,
            ops.softmax: Softmax, ops.softplus: Softplus, ops.softsign: Softsign,
            ops.silu: SiLU, ops.swish: SiLU, ops.selu: SELU, ops.elu: ELU,
            ops.leaky_relu: LeakyReLU, ops.hard_sigmoid: HardSigmoid, ops.hard_silu: HardSiLU}


def get(identifier):
    """An :class:`Activation` from a name, config dict, instance, function, or None.

    Args:
        identifier: None (linear), a registered name such as ``"relu"`` or ``"swish"``, a dict
            written by :func:`serialize`, an Activation, one of this module's functions (or
            of ``minidl.ops``' with the same defaults), any other function of a tensor (a
            :class:`FunctionActivation`), or the name of such a function registered with
            ``minidl.saving.register_serializable`` or given in ``custom_objects``.
    Raises:
        ValueError: unknown name or uninterpretable identifier; the message lists valid names.
    """
    if identifier is None:
        return Linear()
    if callable(identifier) and not isinstance(identifier, (Activation, type)):
        try:
            cls = _FUNCTIONS.get(identifier) or _op_kernels().get(identifier)
        except TypeError:   # an unhashable callable
            cls = None
        return cls() if cls is not None else FunctionActivation(identifier)
    try:
        return ACTIVATIONS.get(identifier, base=Activation)
    except ValueError:
        from minidl.losses.base import program_function
        function = program_function(identifier)   # a function of the program's, by name
        if function is None:
            raise
        return FunctionActivation(function)


def serialize(activation):
    """The activation's name when it has default arguments, else a config dict.

    ``get(serialize(a)) == a`` for every activation.
    """
    activation = get(activation)
    if isinstance(activation, FunctionActivation) or activation == type(activation)():
        return activation.name
    return _serialize_config(activation)


deserialize = deserializer(get, "activation")


__all__ = [
    "ACTIVATIONS", "Activation", "ELU", "Exponential", "FunctionActivation", "GELU", "HardSiLU",
    "HardSigmoid", "LeakyReLU", "Linear", "Mish", "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid",
    "Softmax", "Softplus", "Softsign", "Tanh", "deserialize", "elu", "exponential", "gelu", "get",
    "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "linear", "mish", "relu", "relu6",
    "selu", "serialize", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh",
]
