"""Weight and activity regularizers with the names, arguments and formulas of Keras 3.

A regularizer maps an array to a penalty added to the training loss:
``L1(l1)(x) = l1 * sum(|x|)``, ``L2(l2)(x) = l2 * sum(x^2)``, ``L1L2(l1, l2)`` both. Layers
take them as ``kernel_regularizer``, ``bias_regularizer`` (penalties on weights) and
``activity_regularizer`` (a penalty on the layer's output, divided by the batch size as Keras
does).

Unlike Keras, minidl has no automatic differentiation, so a regularizer also gives the
gradient of its penalty: :meth:`Regularizer.add_gradient` writes ``grad + d penalty / dx`` in
one fused pass and returns the penalty. The training loop calls it through
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
from minidl.utils.registry import Registry, custom_object_scope, subclass_test
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

    Subclasses implement ``__call__(x) -> float`` and ``gradient(x) -> array`` (the gradient
    of the penalty with respect to x), and ``get_config()`` returning their constructor
    arguments. :meth:`add_gradient` has a generic version built on those two; the built-in
    regularizers override it with one fused kernel.

    Example:
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
        """The gradient of the penalty with respect to ``x``, an array of x's shape."""
        raise NotImplementedError(f"{type(self).__name__} must implement gradient(x) to be "
                                  f"trained with: minidl computes gradients explicitly.")

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
        g = np.asarray(self.gradient(x))
        if grad is None:
            np.multiply(g, scale, out=out, casting="unsafe")
        else:
            np.add(grad, scale * g, out=out, casting="unsafe")
        return scale * float(self(x))

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config().")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


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

    Returns:
        A :class:`Regularizer`, or None for None.

    Raises:
        ValueError: unknown name or config. TypeError: a plain function, which minidl could
            not differentiate: subclass :class:`Regularizer` and give it ``gradient``.
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
        return REGULARIZERS.get(identifier, base=Regularizer)
    if callable(identifier):
        raise TypeError(f"Regularizers must be minidl.regularizers.Regularizer objects, which "
                        f"give the gradient of their penalty: subclass Regularizer and "
                        f"implement __call__ and gradient. Received: {identifier!r}")
    raise ValueError(f"Could not interpret regularizer identifier. Received: "
                     f"identifier={identifier!r}. Pass a name "
                     f"({', '.join(REGULARIZERS.names())}), a config dict or a Regularizer.")


def serialize(regularizer):
    """``{"class_name": ..., "config": ...}`` for a regularizer; None for None."""
    return None if regularizer is None else _serialize(regularizer)


def deserialize(config, custom_objects=None):
    """The regularizer described by a :func:`serialize` dict.

    Args:
        config: what :func:`serialize` wrote (a dict or a name).
        custom_objects: optional dict from names to the program's own classes and
            functions, as in ``minidl.saving.custom_object_scope``.
    """
    with custom_object_scope(custom_objects):
        return get(config)


l1 = L1
l2 = L2
l1_l2 = L1L2

__all__ = ["L1", "L1L2", "L2", "Regularizer", "deserialize", "get", "l1", "l1_l2", "l2",
           "serialize"]
