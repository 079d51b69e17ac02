"""Weight constraints with the names, arguments and formulas of Keras 3 (``keras.constraints``).

A constraint maps a weight to its projection onto a set of allowed values: non-negative
weights, or weights whose norm along some axes is bounded. The training loop applies each
weight's constraint right after every optimizer update (``w <- constraint(w)``), as Keras
does; ``Optimizer.apply`` and ``apply_gradients`` do the same for the Variables of a
hand-written loop.

Layers take constraints as ``kernel_constraint`` and ``bias_constraint`` (Dense and the
convolutions), ``beta_constraint`` and ``gamma_constraint`` (the normalization layers) and
``alpha_constraint`` (PReLU); a custom layer passes one to ``add_weight(constraint=...)``.
Each of these takes a name ('max_norm', 'non_neg', ...), a config dict, a
:class:`Constraint` or any callable ``w -> w``.

The norm-based constraints compute, as Keras does, ``norms = sqrt(sum(w ** 2, axis,
keepdims=True))`` and rescale ``w`` by ``desired / (epsilon + norms)`` with
``epsilon = 1e-7`` (Keras' ``backend.epsilon()``), in the weight's dtype.

Example:
    >>> layer = Dense(64, kernel_constraint=MaxNorm(3.0), bias_constraint="non_neg")
    >>> MaxNorm(2.0)(np.array([[1.0, 0.0], [0.0, 4.0]]))   # columns of norms 1 and 4
    array([[1., 0.], [0., 2.]])                             # (up to 1e-7)
"""
import math
import numbers

import numpy as np

from minidl.autodiff.tensor import to_array
from minidl.utils.registry import Registry, deserializer, subclass_test
from minidl.utils.registry import serialize as _serialize

CONSTRAINTS = Registry("constraint", accepts=subclass_test(lambda: Constraint))

# Keras' backend.epsilon(): what keeps the rescaling finite for an all-zero weight vector.
EPSILON = 1e-7


def _number(value, name, owner, low=0.0, high=None):
    """``value`` as a float: finite, in ``[low, high]`` (high None: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f"a float >= {low:g}" if high is None else f"a float in [{low:g}, {high:g}]"
        raise ValueError(f"Invalid value for argument {name} of {owner}: expected {bound}. "
                         f"Received: {name}={value!r:.100}")
    return float(value)


def _axis(axis, owner):
    """``axis`` as an int or a list of distinct ints (what get_config writes)."""
    def is_int(a):
        return not isinstance(a, bool) and isinstance(a, (int, np.integer))
    if is_int(axis):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(is_int(a) for a in axis) \
            and len(set(int(a) for a in axis)) == len(axis):
        return [int(a) for a in axis]
    raise ValueError(f"Invalid value for argument axis of {owner}: expected an int or a "
                     f"non-empty list of distinct ints. Received: axis={axis!r:.100}")


def _weight(w):
    """The weight as an array to compute on: float arrays as they are; Python data and
    integer arrays as float32 (Keras' floatx), since a norm of integers is a float."""
    w = to_array(w)
    return w if w.dtype.kind == "f" else w.astype(np.float32)


class Constraint:
    """Base class for weight constraints.

    A constraint works like a stateless function: ``__call__(w)`` takes a weight (an array)
    and returns its projection, a new array of the same shape and dtype (the caller writes
    it into the weight); the base class returns ``w`` unchanged. ``get_config`` returns the
    constructor arguments, which ``from_config`` takes back.

    To save models that use a custom constraint, register its class
    (``@minidl.saving.register_serializable()``): a model file names classes, never code.

    Example:
        >>> class NonNegative(Constraint):
        ...     def __call__(self, w):
        ...         return w * (np.asarray(w) >= 0)
        >>> NonNegative()(np.array([-1.0, 1.0]))
        array([-0., 1.])
        >>> Dense(4, kernel_constraint=NonNegative())
    """

    def __call__(self, w):
        """The projection of the weight ``w`` (by default, ``w`` itself)."""
        return w

    def get_config(self):
        """The constructor arguments, as a JSON-serializable dict."""
        return {}

    @classmethod
    def from_config(cls, config):
        """The constraint of ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _NormConstraint(Constraint):
    """Shared by the constraints that rescale ``w`` from its norms along ``axis``."""

    axis = 0

    def _norms(self, w):
        # Keras' formula, sqrt(sum(square(w))), rather than np.linalg.norm: the same values
        # in the weight's dtype, and any set of axes.
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        ndim = w.ndim
        if any(not -ndim <= a < ndim for a in axes) or len({a % ndim for a in axes}) < len(axes):
            raise ValueError(f"{type(self).__name__} has axis={self.axis}, which does not name "
                             f"distinct axes of a weight of shape {w.shape}.")
        return np.sqrt(np.sum(np.square(w), axis=tuple(axes), keepdims=True))


@CONSTRAINTS.register("max_norm")
class MaxNorm(_NormConstraint):
    """MaxNorm weight constraint.

    Constrains the weights incident to each hidden unit to have a norm less than or equal
    to a desired value: ``w * clip(norms, 0, max_value) / (epsilon + norms)``.

    Also available as ``minidl.constraints.max_norm`` and by the name ``'max_norm'``
    (``MaxNorm(2, axis=0)``).

    Args:
        max_value: the maximum norm of the incoming weights, a float >= 0 (default 2).
        axis: int or list of ints, the axes along which to compute the norms (default 0).
            For instance, in a ``Dense`` layer the kernel has shape
            ``(input_dim, output_dim)``: axis 0 constrains each weight vector of length
            ``input_dim``. In a ``Conv2D`` layer the kernel has shape
            ``(rows, cols, input_depth, output_depth)``: axis ``[0, 1, 2]`` constrains
            each filter.

    Example:
        >>> MaxNorm(2.0)(np.array([[1.0, 0.0], [0.0, 4.0]]))   # column norms 1 and 4
        array([[1., 0.], [0., 2.]])                             # (up to 1e-7)
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value", "MaxNorm")
        self.axis = _axis(axis, "MaxNorm")

    def __call__(self, w):
        w = _weight(w)
        norms = self._norms(w)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@CONSTRAINTS.register("min_max_norm")
class MinMaxNorm(_NormConstraint):
    """MinMaxNorm weight constraint.

    Constrains the weights incident to each hidden unit to have a norm between a lower
    and an upper bound: ``w * desired / (epsilon + norms)`` with
    ``desired = rate * clip(norms, min_value, max_value) + (1 - rate) * norms``.

    Also available as ``minidl.constraints.min_max_norm`` and by the name
    ``'min_max_norm'``.

    Args:
        min_value: the minimum norm of the incoming weights, a float >= 0 (default 0.0).
        max_value: the maximum norm, a float >= min_value (default 1.0).
        rate: float in [0, 1], the rate of enforcing the constraint (default 1.0): 1.0
            enforces it strictly, a smaller rate moves the norms part of the way into
            the interval at each step.
        axis: int or list of ints, the axes along which to compute the norms (default 0);
            see :class:`MaxNorm`.
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm")
        self.max_value = _number(max_value, "max_value", "MinMaxNorm")
        if self.max_value < self.min_value:
            raise ValueError(f"MinMaxNorm needs min_value <= max_value. Received: "
                             f"min_value={min_value!r}, max_value={max_value!r}")
        self.rate = _number(rate, "rate", "MinMaxNorm", 0.0, 1.0)
        self.axis = _axis(axis, "MinMaxNorm")

    def __call__(self, w):
        w = _weight(w)
        norms = self._norms(w)
        desired = (self.rate * np.clip(norms, self.min_value, self.max_value)
                   + (1 - self.rate) * norms)
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


@CONSTRAINTS.register("non_neg")
class NonNeg(Constraint):
    """Constrains the weights to be non-negative: ``maximum(w, 0)``.

    Also available as ``minidl.constraints.non_neg`` and by the name ``'non_neg'``. Unlike
    the norm constraints, it keeps integer weights integers.
    """

    def __call__(self, w):
        return np.maximum(to_array(w), 0)


@CONSTRAINTS.register("unit_norm")
class UnitNorm(_NormConstraint):
    """Constrains the weights incident to each hidden unit to have unit norm:
    ``w / (epsilon + norms)``.

    Also available as ``minidl.constraints.unit_norm`` and by the name ``'unit_norm'``.

    Args:
        axis: int or list of ints, the axes along which to compute the norms (default 0);
            see :class:`MaxNorm`.
    """

    def __init__(self, axis=0):
        self.axis = _axis(axis, "UnitNorm")

    def __call__(self, w):
        w = _weight(w)
        return w / (EPSILON + self._norms(w))

    def get_config(self):
        return {"axis": self.axis}


# Keras registers its base class too: the name 'Constraint' gives the identity.
CONSTRAINTS.register()(Constraint)


def get(identifier):
    """Resolves a constraint from a name, a config dict, a class, an instance or a callable.

    Args:
        identifier: a name (``'max_norm'``, ``'min_max_norm'``, ``'non_neg'``,
            ``'unit_norm'`` or a class name, case-insensitive), which gives the class with
            its default arguments; a dict ``{"class_name": ..., "config": {...}}`` as
            written by :func:`serialize`; a :class:`Constraint` class (instantiated with
            its defaults) or instance; any other callable ``w -> w`` (returned as is); or
            None.

    Returns:
        The constraint, or None for None.

    Raises:
        ValueError: an unknown name, a bad config, or an identifier of another kind.
        TypeError: a class that is not a :class:`Constraint`.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, type):
        if issubclass(identifier, Constraint):
            return identifier()
        raise TypeError(f"A constraint class must subclass minidl.constraints.Constraint. "
                        f"Received: identifier={identifier!r}")
    if isinstance(identifier, (str, dict)):
        return CONSTRAINTS.get(identifier, base=Constraint)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret constraint identifier: expected a name "
                     f"({', '.join(CONSTRAINTS.names())}), a config dict, a Constraint or a "
                     f"callable. Received: identifier={identifier!r:.200}")


def serialize(constraint):
    """``{"class_name": ..., "config": ...}`` for a :class:`Constraint`; None for None.

    Raises:
        ValueError: a plain callable, which a config cannot describe (a model file names
            registered classes, never code): subclass :class:`Constraint`, implement
            ``get_config`` and register the class to save it.
    """
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise ValueError(f"Cannot serialize constraint {constraint!r:.100}: only "
                         f"minidl.constraints.Constraint objects can be saved. Subclass "
                         f"Constraint, implement get_config, and register the class with "
                         f"@minidl.saving.register_serializable().")
    return _serialize(constraint)


def _serialize_argument(layer, argument, constraint):
    """:func:`serialize` for a layer's ``get_config``: a failure names the layer and the
    argument, since saving a model is when a plain callable is found to be unsavable."""
    try:
        return serialize(constraint)
    except ValueError as error:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) cannot save "
                         f"{argument}: {error}") from None


deserialize = deserializer(get, "constraint")


max_norm = MaxNorm
min_max_norm = MinMaxNorm
non_neg = NonNeg
unit_norm = UnitNorm

__all__ = ["CONSTRAINTS", "Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
           "deserialize", "get", "max_norm", "min_max_norm", "non_neg", "serialize",
           "unit_norm"]
