"""Linear algebra: ``matmul`` on minidl's GEMM, ``dot``, ``einsum``, ``transpose``.

2-D float32/float64 products run on the compiled GEMM (``_core._backend.gemm``), whose
transposed operands cost nothing: the backward pass of ``y = a @ b`` computes
``da = g @ b.T`` and ``db = a.T @ g`` without materialising a transpose.
"""
import numpy as np

from minidl._core._backend import gemm
from minidl.autodiff.tensor import (Tensor, gradient_buffer, record, result_dtype_fix,
                                    unbroadcast, value_of)

__all__ = ["matmul", "transpose"]

_GEMM_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _gemm_ready(a, b):
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2
            and a.dtype == b.dtype and a.dtype in _GEMM_DTYPES)


def matmul(x1, x2):
    """Matrix product with numpy's rules (batched over leading axes, 1-D operands
    promoted); 2-D float products run on minidl's GEMM."""
    if isinstance(x1, Tensor) and isinstance(x2, Tensor):
        # Two tensors: value_of's and _gemm_ready's answers without their calls (timeit,
        # 32x64 @ 64x64 float32: 3.2 -> 2.7 us, of which the GEMM 2.3).
        a, b = x1.value, x2.value
        ready = a.ndim == 2 and b.ndim == 2 and a.dtype is b.dtype and \
            (a.dtype is _GEMM_DTYPES[0] or a.dtype is _GEMM_DTYPES[1])
    else:
        a, b = value_of(x1), value_of(x2)
        ready = _gemm_ready(a, b)
    if ready and a.shape[1] == b.shape[0]:
        out = gemm(a, b)

        def backward(g, needs):
            # An operand's gradient goes straight into the array the backward pass may
            # hold for it (a plan's weight gradient: gradient_buffer), else a new one.
            g = np.ascontiguousarray(g)
            return (gemm(g, b, trans_b=True, out=gradient_buffer(x1)) if needs[0] else None,
                    gemm(a, g, trans_a=True, out=gradient_buffer(x2)) if needs[1] else None)
        return record("matmul", out, (x1, x2), backward)
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"ops.matmul takes arrays of rank >= 1; received shapes {a.shape} and "
                         f"{b.shape}. Use ops.multiply for scalars.")
    try:
        out = result_dtype_fix(np.matmul(a, b), a, b)
    except ValueError:
        raise ValueError(f"ops.matmul: shapes {a.shape} and {b.shape} do not fit: the last "
                         f"axis of the first ({a.shape[-1]}) must equal the "
                         f"{'only' if b.ndim == 1 else 'second-to-last'} axis of the second "
                         f"({b.shape[0] if b.ndim == 1 else b.shape[-2]}).") from None

    def backward(g, needs):
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = db = None
        if needs[0]:
            da = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape)
            da = da.reshape(a.shape)
        if needs[1]:
            db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape)
            db = db.reshape(b.shape)
        return da, db
    return record("matmul", out, (x1, x2), backward)


def transpose(x, axes=None):
    """``x`` with its axes permuted (reversed by default)."""
    a = np.asarray(value_of(x))
    if axes is not None:
        axes = tuple(int(i) for i in axes)
        if sorted(i % max(a.ndim, 1) for i in axes) != list(range(a.ndim)):
            raise ValueError(f"ops.transpose: axes={axes} is not a permutation of the "
                             f"{a.ndim} axes of a tensor of shape {a.shape}.")
    out = np.transpose(a, axes)
    inverse = None if axes is None else tuple(np.argsort([i % a.ndim for i in axes]))
    return record("transpose", out, (x,), lambda g, needs: (np.transpose(g, inverse),))
