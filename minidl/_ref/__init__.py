"""Plain-numpy reference implementations of minidl's compiled kernels.

Each module mirrors one ``minidl._core`` kernel module function for function, with the same
names and signatures (tests check this), written for clarity rather than speed. Tests compare
the compiled kernels against these over random shapes, both dtypes and several thread counts.
"""
from minidl._ref import activations, losses, normalization, optimizers, regularization

__all__ = ["activations", "losses", "normalization", "optimizers", "regularization"]
