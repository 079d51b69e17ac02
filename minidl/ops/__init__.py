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

On symbolic tensors (``minidl.Input`` and what layers return on it), an op computes nothing:
it records a node of the graph, an ``OpLayer`` (``minidl.layers.op_layer``), so that
``x = inputs * 2.0`` or ``ops.concatenate([a, b], axis=-1)`` build functional models as in
Keras. The dispatch costs real tensors nothing but one Python call: every op exported here
is the module's function behind a thin wrapper with the same signature that calls it inside
``try``; only when it raises (converting a symbolic tensor raises ``SymbolicTensorError``)
does the wrapper look for symbolic arguments and record the node.
"""
import functools
import importlib
import inspect

from minidl._core._backend import gemm
from minidl.autodiff.tensor import SymbolicTensorError, Tensor, _UFUNC_OPS
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


# ---- symbolic tensors: the wrapper of every op ----

class _Default:
    """A default value in a generated signature, printed as the name that holds it."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def _has_symbolic(args, kwargs):
    from minidl.layers.op_layer import has_symbolic
    return has_symbolic(args, kwargs)


def _symbolic_call(name, args, kwargs):
    from minidl.layers.op_layer import symbolic_call
    return symbolic_call(name, args, kwargs)


def _symbolic_aware(name, op):
    """``op`` behind a wrapper of the same signature: on real tensors it only adds a call
    (~20 ns: a generic ``*args, **kwargs`` wrapper costs ~90 ns, as it packs the arguments
    into a tuple and a dict on every call); when ``op`` raises and an argument is symbolic,
    the call becomes a node of the graph. The source is generated from ``op``'s own
    signature, here, at import; nothing comes from outside minidl."""
    sig = inspect.signature(op)
    namespace = {"_op": op, "_name": name, "_has_symbolic": _has_symbolic,
                 "_symbolic_call": _symbolic_call}
    params, call, positional, keywords = [], [], [], []
    for i, p in enumerate(sig.parameters.values()):
        if p.name.startswith("_"):   # (the wrapper's own names start with one)
            raise AssertionError(f"ops.{name}: parameter {p.name} clashes with the wrapper")
        p = p.replace(annotation=inspect.Parameter.empty)
        if p.default is not inspect.Parameter.empty:
            namespace[f"_d{i}"] = p.default
            p = p.replace(default=_Default(f"_d{i}"))
        params.append(p)
        if p.kind is p.VAR_POSITIONAL:
            call.append("*" + p.name)
            positional.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            call.append("**" + p.name)
            keywords.append("**" + p.name)
        elif p.kind is p.KEYWORD_ONLY:
            call.append(f"{p.name}={p.name}")
            keywords.append(f"{p.name!r}: {p.name}")
        else:
            call.append(p.name)
            positional.append(p.name)
    signature = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    args = "(" + "".join(f"{a}, " for a in positional) + ")"
    kwargs = "{" + ", ".join(keywords) + "}"
    source = (f"def {name}{signature}:\n"
              f"    try:\n"
              f"        return _op({', '.join(call)})\n"
              f"    except Exception:\n"
              f"        _args, _kwargs = {args}, {kwargs}\n"
              f"        if not _has_symbolic(_args, _kwargs):\n"
              f"            raise\n"
              f"    return _symbolic_call(_name, _args, _kwargs)\n")
    exec(compile(source, f"<minidl.ops.{name} wrapper>", "exec"), namespace)
    wrapper = functools.update_wrapper(namespace[name], op)
    return wrapper


# The ops as written (what OpLayer runs, by name: the allow-list of names a saved model may
# use), then the exported names rebound to their wrappers.
_RAW_OPS = {name: globals()[name] for name in __all__ if name != "gemm"}
for _name, _op in _RAW_OPS.items():
    globals()[_name] = _symbolic_aware(_name, _op)
del _name, _op


def _bind_tensor_operators():
    """Python operators on Tensors are the ops; numpy ufuncs on Tensors too."""
    e = elementwise
    binary = {"add": e.add, "sub": e.subtract, "mul": e.multiply, "truediv": e.divide,
              "pow": e.power, "matmul": linalg.matmul, "floordiv": e.floor_divide,
              "mod": e.mod}
    # `tensor + symbolic`: the op fails to convert the symbolic operand; NotImplemented
    # lets Python ask the symbolic tensor's reflected operator, which records the node.
    # (A try block costs nothing while nothing is raised.)
    def forward(op):
        def method(self, other):
            try:
                return op(self, other)
            except SymbolicTensorError:
                return NotImplemented
        return method

    def reflected(op):
        def method(self, other):
            try:
                return op(other, self)
            except SymbolicTensorError:
                return NotImplemented
        return method
    for name, op in binary.items():
        setattr(Tensor, f"__{name}__", forward(op))
        setattr(Tensor, f"__r{name}__", reflected(op))
    for name, op in {"lt": e.less, "le": e.less_equal, "gt": e.greater,
                     "ge": e.greater_equal, "eq": e.equal, "ne": e.not_equal}.items():
        setattr(Tensor, f"__{name}__", forward(op))

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
    def getitem(self, key):
        try:
            return _shape_ops.get_item(self, key)
        except SymbolicTensorError:   # tensor[symbolic indices]: a node of the graph
            if not _has_symbolic((key,), {}):
                raise
        return _symbolic_call("get_item", (self, key), {})
    Tensor.__getitem__ = getitem
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
