"""Neural-network ops: activations, crossentropies, conv and max_pool."""
import numpy as np

from minidl.autodiff.tensor import record, value_of

__all__ = ["relu", "sigmoid", "tanh"]


def relu(x):
    """``max(x, 0)``."""
    a = np.asarray(value_of(x))
    out = np.maximum(a, 0)
    return record("relu", out, (x,), lambda g, needs: (g * (out > 0),))


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    a = np.asarray(value_of(x))
    out = 1 / (1 + np.exp(-a))
    return record("sigmoid", out, (x,), lambda g, needs: (g * out * (1 - out),))


def tanh(x):
    """Hyperbolic tangent."""
    a = np.asarray(value_of(x))
    out = np.tanh(a)
    return record("tanh", out, (x,), lambda g, needs: (g * (1 - out * out),))
