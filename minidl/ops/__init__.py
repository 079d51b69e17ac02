"""Keras 3's ``keras.ops`` on minidl tensors, with reverse-mode automatic differentiation.

Every op takes Tensors, numpy arrays or Python numbers (numpy broadcasting rules) and returns
a :class:`minidl.autodiff.Tensor`. While a ``GradientTape`` records (or a training step runs
user code), each op also records its backward pass, written beside its forward pass in the
op's module:

    elementwise.py   arithmetic, unary math, comparisons, where, clip
    reduction.py     sum, mean, max, min, var, std, logsumexp, argmax, argmin
    linalg.py        matmul (on minidl's GEMM), dot, einsum, transpose
    shape.py         reshape, concatenate, stack, split, tile, ..., indexing
    core.py          stop_gradient, cond, fori_loop, while_loop, slice, scatter, unstack, ...
    numpy_extra.py   sort, cumsum, flip, roll, diagonal, tril, isnan, linspace, meshgrid, ...
    math_ops.py      top_k, in_top_k, norm, normalize, moments, segment_sum, segment_max
    creation.py      convert_to_tensor, cast, zeros, ones, full, arange, one_hot, ...
    nn.py            activations (compiled kernels), crossentropies, conv, max_pool

``gemm`` is the compiled GEMM itself (numpy arrays in, numpy array out, no recording).
"""
import importlib

from minidl._core._backend import gemm
from minidl.autodiff.tensor import Tensor, _UFUNC_OPS
from minidl.ops.creation import *      # noqa: F401,F403
from minidl.ops.elementwise import *   # noqa: F401,F403
from minidl.ops.linalg import *        # noqa: F401,F403
from minidl.ops.nn import *            # noqa: F401,F403
from minidl.ops.reduction import *     # noqa: F401,F403
from minidl.ops.shape import *         # noqa: F401,F403
from minidl.ops.core import *          # noqa: F401,F403
from minidl.ops.math_ops import *      # noqa: F401,F403
from minidl.ops.numpy_extra import *   # noqa: F401,F403
from minidl.ops import creation, elementwise, linalg, nn, reduction
from minidl.ops import core, math_ops, numpy_extra
# `ops.shape` is Keras' op shape(x) (the star import above bound it); the module shape.py is
# reached through sys.modules.
_shape_ops = importlib.import_module("minidl.ops.shape")

__all__ = (["gemm"] + creation.__all__ + elementwise.__all__ + linalg.__all__ + nn.__all__
           + reduction.__all__ + _shape_ops.__all__)
__all__ += core.__all__ + math_ops.__all__ + numpy_extra.__all__


def _bind_tensor_operators():
    """Python operators on Tensors are the ops; numpy ufuncs on Tensors too."""
    e = elementwise
    binary = {"add": e.add, "sub": e.subtract, "mul": e.multiply, "truediv": e.divide,
              "pow": e.power, "matmul": linalg.matmul, "floordiv": e.floor_divide,
              "mod": e.mod}
    for name, op in binary.items():
        setattr(Tensor, f"__{name}__", lambda self, other, op=op: op(self, other))
        setattr(Tensor, f"__r{name}__", lambda self, other, op=op: op(other, self))
    for name, op in {"lt": e.less, "le": e.less_equal, "gt": e.greater,
                     "ge": e.greater_equal, "eq": e.equal, "ne": e.not_equal}.items():
        setattr(Tensor, f"__{name}__", lambda self, other, op=op: op(self, other))

    # `tensor == thing` with something that is not array data (pytest.approx, None, an
    # object) lets Python ask the other side, as numpy arrays do.
    def equality(op):
        def method(self, other):
            try:
                return op(self, other)
            except TypeError:
                return NotImplemented
        return method
    Tensor.__eq__ = equality(e.equal)
    Tensor.__ne__ = equality(e.not_equal)
    Tensor.__neg__ = lambda self: e.negative(self)
    Tensor.__pos__ = lambda self: self
    Tensor.__abs__ = lambda self: e.abs(self)
    Tensor.__invert__ = lambda self: e.logical_not(self)
    Tensor.__and__ = lambda self, other: e.logical_and(self, other)
    Tensor.__or__ = lambda self, other: e.logical_or(self, other)
    Tensor.__getitem__ = lambda self, key: _shape_ops.get_item(self, key)
    Tensor.T = property(lambda self: linalg.transpose(self))
    import numpy as np
    # A few numpy-style methods, for code written against numpy arrays.
    # (np.sum(t) and np.mean(t) call these with numpy's dtype= and out= arguments.)
    def numpy_style(op):
        def method(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
            if out is not None or dtype is not None or kwargs:
                return getattr(np, op.__name__)(self.value, axis=axis, dtype=dtype, out=out,
                                                keepdims=keepdims, **kwargs)
            return op(self, axis, keepdims)
        method.__name__ = op.__name__
        return method
    Tensor.mean = numpy_style(reduction.mean)
    Tensor.sum = numpy_style(reduction.sum)
    Tensor.reshape = lambda self, *shape: _shape_ops.reshape(
        self, shape[0] if len(shape) == 1 else shape)
    Tensor.astype = lambda self, dtype: creation.cast(self, dtype)
    Tensor.item = lambda self: self.value.item()
    Tensor.tolist = lambda self: self.value.tolist()
    Tensor.all = lambda self, axis=None, **kwargs: np.all(self.value, axis=axis, **kwargs)
    Tensor.any = lambda self, axis=None, **kwargs: np.any(self.value, axis=axis, **kwargs)
    _UFUNC_OPS.update({
        np.add: e.add, np.subtract: e.subtract, np.multiply: e.multiply,
        np.true_divide: e.divide, np.power: e.power, np.negative: e.negative,
        np.absolute: e.abs, np.square: e.square, np.sqrt: e.sqrt, np.exp: e.exp,
        np.log: e.log, np.log1p: e.log1p, np.expm1: e.expm1, np.maximum: e.maximum,
        np.minimum: e.minimum, np.sign: e.sign, np.matmul: linalg.matmul,
        np.tanh: nn.tanh, np.less: e.less, np.less_equal: e.less_equal,
        np.greater: e.greater, np.greater_equal: e.greater_equal, np.equal: e.equal,
        np.not_equal: e.not_equal, np.floor_divide: e.floor_divide, np.remainder: e.mod,
    })


_bind_tensor_operators()
