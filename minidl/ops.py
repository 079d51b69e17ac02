"""Array operations on minidl's compiled core (the building blocks under the layers)."""
from minidl._core._backend import gemm, matmul

__all__ = ["gemm", "matmul"]
