"""Central-difference gradients, the trusted side of every gradient check in tests/."""
import numpy as np


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to the array ``a``.

    ``a`` is perturbed in place, one element at a time, and restored. Use float64 arrays:
    the truncation error is O(eps^2) and the rounding error O(1e-16 / eps).
    """
    grad = np.zeros(a.shape, np.float64)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad
