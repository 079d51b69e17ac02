"""Weight and activity regularizers with the names, arguments and formulas of Keras 3.

A regularizer maps an array to a penalty added to the training loss:
``L1(l1)(x) = l1 * sum(|x|)``, ``L2(l2)(x) = l2 * sum(x^2)``, ``L1L2(l1, l2)`` both. Layers
take them as ``kernel_regularizer``, ``bias_regularizer`` (penalties on weights) and
``activity_regularizer`` (a penalty on the layer's output, divided by the batch size as Keras
does).

A regularizer also gives the gradient of its penalty: :meth:`Regularizer.add_gradient`
writes ``grad + d penalty / dx`` and returns the penalty, in one fused pass for the built-in
ones; a user's regularizer (a subclass with only ``__call__``, or any function of a tensor,
as Keras takes) gets it by automatic differentiation of its penalty, unless it gives
``gradient`` itself. The training loop calls it through
:meth:`minidl.layers.Layer.regularization_loss` after backward and before the optimizer step.

Example:
    >>> layer = Dense(64, kernel_regularizer=L2(1e-4), activity_regularizer="l1")
    >>> L2(0.5)(np.ones((2, 2)))
    2.0
"""
import math
import numbers

import numpy as np

from minidl._core import _regularization as _kernels
from minidl.utils.registry import Registry, deserializer, subclass_test
from minidl.utils.registry import serialize as _serialize

REGULARIZERS = Registry("regularizer", accepts=subclass_test(lambda: Regularizer))

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _factor(value, name):
    """A penalty factor as a float: finite and >= 0 (Keras' rule); None means 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


def _float_array(x):
    """x as a C-contiguous float32/float64 array (other inputs are converted to float64)."""
    x = np.asarray(x)
    if x.dtype not in _KERNEL_DTYPES:
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


class Regularizer:
    """Base class: a penalty on an array and its gradient.

    Subclasses implement ``__call__(x)``, the penalty, and ``get_config()`` returning their
    constructor arguments, as in Keras. ``__call__`` written with ``minidl.ops`` (or numpy
    functions, which a tensor routes to the ops) needs nothing more: the gradient comes from
    automatic differentiation of it. A subclass may give ``gradient(x) -> array`` itself (a
    closed form, faster). The built-in regularizers override :meth:`add_gradient` with one
    fused kernel.

    Example:
        >>> class L1Sum(Regularizer):
        ...     def __init__(self, rate=0.01):
        ...         self.rate = rate
        ...     def __call__(self, x):
        ...         return self.rate * ops.sum(ops.abs(x))
        ...     def get_config(self):
        ...         return {"rate": self.rate}

    With a closed-form gradient:
        >>> class L4(Regularizer):
        ...     def __init__(self, l4=0.01):
        ...         self.l4 = l4
        ...     def __call__(self, x):
        ...         return float(self.l4 * np.sum(np.asarray(x) ** 4))
        ...     def gradient(self, x):
        ...         return 4 * self.l4 * np.asarray(x) ** 3
        ...     def get_config(self):
        ...         return {"l4": self.l4}
    """

    def __call__(self, x):
        """The penalty of the array ``x``, as a float."""
        return 0.0

    def gradient(self, x):
        """The gradient of the penalty with respect to ``x``, an array of x's shape: by
        automatic differentiation of ``__call__`` unless a subclass gives it."""
        return self._differentiated(x)[1]

    def _differentiated(self, x):
        """(penalty, gradient) of ``__call__`` at ``x`` by automatic differentiation."""
        from minidl.autodiff import Tensor, gradients, record_scope
        x = _float_array(x)
        with record_scope():
            tensor = Tensor(x)
            tensor.requires_grad = True
            penalty = self(tensor)
        if not isinstance(penalty, Tensor):
            raise NotImplementedError(
                f"{type(self).__name__}: __call__ returned {type(penalty).__name__}, which does "
                f"not record how the penalty depends on the weights (it went through numpy "
                f"values or float()); write it with minidl.ops on the tensor it receives, or "
                f"implement gradient(x).")
        if penalty.value.size != 1:
            raise ValueError(f"{type(self).__name__}: a penalty must be a scalar; __call__ "
                             f"returned shape {penalty.value.shape}.")
        grad = gradients([penalty], [tensor], strict=False)[0] \
            if penalty.node is not None else None
        return float(penalty.value.reshape(())), np.zeros_like(x) if grad is None else grad

    def add_gradient(self, x, grad, out, scale=1.0):
        """``out = grad + scale * gradient(x)`` and return ``scale * penalty(x)``.

        Args:
            x: the regularized array (a weight, or a layer's output).
            grad: array of x's shape added to, or None (zeros).
            out: array of x's shape written (may be ``grad``: accumulate in place).
            scale: factor on the penalty and its gradient (1 / batch size for activities).
        Returns:
            The scaled penalty, a float.
        """
        if type(self).gradient is Regularizer.gradient:   # one recorded pass: both
            penalty, g = self._differentiated(x)
        else:
            penalty, g = float(np.asarray(self(x))), np.asarray(self.gradient(x))
        if grad is None:
            np.multiply(g, scale, out=out, casting="unsafe")
        else:
            np.add(grad, scale * g, out=out, casting="unsafe")
        return scale * penalty

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config().")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class FunctionRegularizer(Regularizer):
    """A function of a tensor as a regularizer, as Keras takes any callable
    (``Dense(..., kernel_regularizer=lambda w: 1e-3 * ops.sum(ops.square(w)))``); its
    gradient comes from automatic differentiation.

    Saved by the function's name (its ``"package>name"`` when registered); a model using it
    loads where the function is registered or given in ``custom_objects``.

    Args:
        fn: the function, ``fn(x) -> scalar tensor``.
    """

    def __init__(self, fn):
        if not callable(fn) or isinstance(fn, (type, Regularizer)):
            raise TypeError(f"FunctionRegularizer expects a function; received {fn!r:.100}.")
        self.fn = fn
        from minidl.activations import _function_name
        self.name = _function_name(fn)

    def __call__(self, x):
        return self.fn(x)

    def get_config(self):
        return {"fn": self.name}

    def __repr__(self):
        return f"FunctionRegularizer({self.name})"


class _L1L2Penalty(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``: the shared, fused implementation of L1, L2, L1L2."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        return _kernels.l1l2_penalty(_float_array(x), self.l1, self.l2)

    def gradient(self, x):
        x = _float_array(x)
        out = np.empty_like(x)
        _kernels.l1l2_penalty(x, self.l1, self.l2, 1.0, None, out)
        return out

    def add_gradient(self, x, grad, out, scale=1.0):
        return _kernels.l1l2_penalty(x, self.l1, self.l2, scale, grad, out,
                                     type(self).__name__)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@REGULARIZERS.register("l1l2", "l1_l2")
class L1L2(_L1L2Penalty):
    """A regularizer that applies both L1 and L2 penalties:
    ``l1 * sum(|x|) + l2 * sum(x^2)``.

    Args:
        l1: non-negative float, the L1 factor (default 0.0, as Keras' class).
        l2: non-negative float, the L2 factor (default 0.0).

    The string ``'l1_l2'`` gives ``L1L2(l1=0.01, l2=0.01)``, as Keras documents.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1")
        self.l2 = _factor(l2, "l2")

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@REGULARIZERS.register("l1")
class L1(_L1L2Penalty):
    """A regularizer that applies an L1 penalty: ``l1 * sum(|x|)``.

    Its gradient is ``l1 * sign(x)``, taking 0 at x = 0.

    Args:
        l1: non-negative float, the L1 factor (default 0.01).
    """

    def __init__(self, l1=0.01):
        self.l1 = _factor(0.01 if l1 is None else l1, "l1")

    def get_config(self):
        return {"l1": self.l1}


@REGULARIZERS.register("l2")
class L2(_L1L2Penalty):
    """A regularizer that applies an L2 penalty: ``l2 * sum(x^2)`` (no factor 1/2).

    Args:
        l2: non-negative float, the L2 factor (default 0.01).
    """

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2")

    def get_config(self):
        return {"l2": self.l2}


def get(identifier):
    """Resolves a regularizer from a name, a config dict, a class or an instance.

    Args:
        identifier: ``'l1'``, ``'l2'`` (factor 0.01), ``'l1_l2'`` (both 0.01); a dict
            ``{"class_name": ..., "config": {...}}`` as written by :func:`serialize`; a
            :class:`Regularizer` class (instantiated with defaults) or instance; or None.

            Also any function of a tensor (a :class:`FunctionRegularizer`), or the name
            of one registered with ``minidl.saving.register_serializable`` or given in
            ``custom_objects``.

    Returns:
        A :class:`Regularizer`, or None for None.

    Raises:
        ValueError: unknown name or config.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, str) and identifier.strip().lower().replace("-", "_") == "l1_l2":
        return L1L2(l1=0.01, l2=0.01)
    if isinstance(identifier, (str, dict)):
        try:
            return REGULARIZERS.get(identifier, base=Regularizer)
        except ValueError:
            from minidl.losses.base import program_function
            function = program_function(identifier)   # a function of the program's, by name
            if function is None:
                raise
            return FunctionRegularizer(function)
    if callable(identifier) and not isinstance(identifier, type):
        return FunctionRegularizer(identifier)
    raise ValueError(f"Could not interpret regularizer identifier. Received: "
                     f"identifier={identifier!r}. Pass a name "
                     f"({', '.join(REGULARIZERS.names())}), a config dict or a Regularizer.")


def serialize(regularizer):
    """``{"class_name": ..., "config": ...}`` for a regularizer (a function's: its name);
    None for None."""
    if isinstance(regularizer, FunctionRegularizer):
        return regularizer.name
    return None if regularizer is None else _serialize(regularizer)


deserialize = deserializer(get, "regularizer")


l1 = L1
l2 = L2
l1_l2 = L1L2

__all__ = ["FunctionRegularizer", "L1", "L1L2", "L2", "Regularizer", "deserialize", "get", "l1",
           "l1_l2", "l2", "serialize"]
