"""Symbolic tensors and the nodes that record layer calls: how a model becomes a graph.

Calling a layer on a :class:`SymbolicTensor` (from ``minidl.Input``) computes nothing: it
builds the layer for the input shapes, appends a :class:`Node` to the layer's
``_inbound_nodes`` (the layer, the tensors it was called on, the tensors it returned, the
call's keyword arguments), and returns new symbolic tensors whose ``_keras_history`` points
back to that node. A model is then the part of this graph between its input and output
tensors (``minidl.models.functional``), and its execution plan is built from it
(``minidl.models.plan``). A layer called twice has two nodes and shares its weights.

Keras ops work on symbolic tensors too: ``inputs * 2.0``, ``ops.concatenate([a, b])`` or
``x[:, 0]`` record a node of an ``OpLayer`` (``layers.op_layer``); the Python operators of
:class:`SymbolicTensor` forward to ``minidl.ops``.

Shapes here are whole shapes, batch dimension first (``(None, 784)``); layers build on
sample shapes, without the batch dimension.
"""
import collections

import numpy as np

from minidl.autodiff.tensor import SymbolicTensorError

# Where a symbolic tensor comes from: its layer, the index of the node in the layer's
# _inbound_nodes, and its index among that node's outputs (Keras' names).
KerasHistory = collections.namedtuple("KerasHistory", ["operation", "node_index",
                                                       "tensor_index"])

_DTYPES = ("float32", "float64", "int32", "int64", "string")


def numpy_dtype(name):
    """The numpy dtype of arrays of a graph dtype: object for 'string' (numpy arrays of
    Python str, the text layers' input), else ``np.dtype(name)``."""
    return np.dtype(object) if name == "string" else np.dtype(name)


class SymbolicTensor:
    """A placeholder for the arrays a model will compute: a shape and a dtype, and the
    layer call that produces it. ``minidl.Input`` returns one; calling a layer on one
    returns another.

    Attributes:
        shape: tuple, the batch dimension first, None where any size is allowed.
        dtype: 'float32', 'float64', 'int32', 'int64' or 'string'.
        name: the producing layer's name (and the output index after a slash when the
            layer has several outputs).
    """

    def __init__(self, shape, dtype="float32", name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.name = name
        self._keras_history = history

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def sample_shape(self):
        """The shape without the batch dimension."""
        return self.shape[1:]

    def __repr__(self):
        return (f"<SymbolicTensor shape={self.shape}, dtype={self.dtype}, "
                f"name={self.name}>")

    def __array__(self, *args, **kwargs):
        # (SymbolicTensorError is a TypeError; minidl.ops catches it to record a node.)
        raise SymbolicTensorError(
            f"{self!r} is symbolic: it has a shape but no values until a model computes "
            f"it. Build a model with minidl.Model(inputs, outputs) and call it (or "
            f"predict) on arrays to get values.")

    # numpy's binary operators (`array + symbolic`) then return NotImplemented, so Python
    # asks this class's reflected operator, which records the op.
    __array_ufunc__ = None

    def __bool__(self):
        raise TypeError(f"{self!r} is symbolic and has no truth value.")

    def __iter__(self):
        # Without it Python would iterate through __getitem__ with 0, 1, 2, ... forever.
        raise TypeError(f"{self!r} is symbolic and cannot be iterated over; index it "
                        f"(x[:, 0]) or split it (ops.split) instead.")

    # Symbolic tensors are graph vertices: identity, not value, equality (models look them
    # up in lists). So `==` and `!=` stay identity tests; use ops.equal / ops.not_equal to
    # record an elementwise comparison.
    __hash__ = object.__hash__

    # ---- Keras ops on symbolic tensors: each records an OpLayer node ----

    def __getitem__(self, key):
        return _ops().get_item(self, key)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops().absolute(self)

    def __invert__(self):
        return _ops().logical_not(self)

    def reshape(self, newshape):
        """``ops.reshape(self, newshape)`` (the batch dimension included in ``newshape``)."""
        return _ops().reshape(self, newshape)

    def squeeze(self, axis=None):
        """``ops.squeeze(self, axis)``."""
        return _ops().squeeze(self, axis)


def _ops():
    # minidl.ops imports nothing from layers; layers import ops lazily, on the symbolic path.
    from minidl import ops
    return ops


def _bind_operators():
    """SymbolicTensor's arithmetic, matmul, logical and ordering operators: the ops of
    ``minidl.ops`` (Keras' KerasTensor has the same), each recording a node."""
    binary = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
              "floordiv": "floor_divide", "mod": "mod", "pow": "power", "matmul": "matmul",
              "and": "logical_and", "or": "logical_or"}
    for dunder, op in binary.items():
        def forward(self, other, op=op):
            return getattr(_ops(), op)(self, other)

        def reflected(self, other, op=op):
            return getattr(_ops(), op)(other, self)
        forward.__name__, reflected.__name__ = f"__{dunder}__", f"__r{dunder}__"
        setattr(SymbolicTensor, forward.__name__, forward)
        setattr(SymbolicTensor, reflected.__name__, reflected)
    for dunder, op in {"lt": "less", "le": "less_equal", "gt": "greater",
                       "ge": "greater_equal"}.items():
        def compare(self, other, op=op):
            return getattr(_ops(), op)(self, other)
        compare.__name__ = f"__{dunder}__"
        setattr(SymbolicTensor, compare.__name__, compare)


_bind_operators()


class Node:
    """One call of a layer in a graph.

    Attributes:
        operation: the layer called.
        arguments: the first positional argument of the call as given (a tensor, or a
            list / tuple / dict of tensors), for configs and for merge layers.
        input_tensors: the symbolic tensors of that argument, flattened.
        outputs: what the call returned (a tensor or a list of tensors).
        output_tensors: those, flattened.
        kwargs: the call's other keyword arguments (e.g. ``training``), JSON-able.
        call_tensors: the call's keyword arguments that are tensors (``initial_state`` of
            a recurrent layer, an explicit ``mask``), name -> tensor structure. Their
            tensors follow the argument's in ``input_tensors``.
    """

    def __init__(self, operation, arguments, outputs, kwargs=None, call_tensors=None):
        self.operation = operation
        self.arguments = arguments
        self.call_tensors = dict(call_tensors or {})
        self.argument_count = len(flatten(arguments))
        self.input_tensors = flatten(arguments) + flatten(list(self.call_tensors.values()))
        self.outputs = outputs
        self.output_tensors = flatten(outputs)
        self.kwargs = dict(kwargs or {})

    @property
    def parent_nodes(self):
        """The nodes producing this node's inputs (Input layers' nodes included)."""
        return [t._keras_history.operation._inbound_nodes[t._keras_history.node_index]
                for t in self.input_tensors]

    def __repr__(self):
        return f"<Node {self.operation.name} {len(self.input_tensors)} -> " \
               f"{len(self.output_tensors)}>"


def add_node(layer, arguments, shape, dtype, training=None, call_tensors=None):
    """Record a call of ``layer`` on the symbolic tensor(s) ``arguments`` (and the tensor
    keyword arguments ``call_tensors``) whose output has the whole ``shape`` and ``dtype``
    (lists of them for a layer of several outputs): a new :class:`Node` in
    ``layer._inbound_nodes``. Returns the output tensor (a list for several)."""
    index = len(layer._inbound_nodes)
    name = layer.name if index == 0 else f"{layer.name}_{index}"
    if isinstance(shape, list):
        output = [SymbolicTensor(s, dtype=d, name=f"{name}/{i}",
                                 history=KerasHistory(layer, index, i))
                  for i, (s, d) in enumerate(zip(shape, dtype))]
    else:
        output = SymbolicTensor(shape, dtype=dtype, name=name,
                                history=KerasHistory(layer, index, 0))
    layer._inbound_nodes.append(Node(layer, arguments, output,
                                     {} if training is None else {"training": training},
                                     call_tensors))
    return output


def flatten(structure):
    """The leaves of a tensor structure (a tensor, or nested lists / tuples / dicts of
    them; dicts in key order as given), as a list."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for item in structure.values() for leaf in flatten(item)]
    return [structure]


def map_structure(function, structure):
    """``structure`` with every leaf replaced by ``function(leaf)``."""
    if isinstance(structure, list):
        return [map_structure(function, item) for item in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(function, item) for item in structure)
    if isinstance(structure, dict):
        return {key: map_structure(function, item) for key, item in structure.items()}
    return function(structure)


def pack_like(structure, leaves):
    """Leaves of a flat list put back into the shape of ``structure``."""
    leaves = iter(leaves)
    return map_structure(lambda _: next(leaves), structure)


def is_symbolic(structure):
    """Whether any leaf of ``structure`` is a SymbolicTensor."""
    return any(isinstance(leaf, SymbolicTensor) for leaf in flatten(structure))


def check_dtype(dtype, what="dtype"):
    """A dtype name minidl's graphs carry ('float32' unless an index input; 'string' for
    text, held in numpy object or unicode arrays)."""
    try:
        name = "string" if isinstance(dtype, str) and dtype == "string" else \
            np.dtype(dtype).name if dtype is not None else "float32"
    except TypeError:
        name = None
    if isinstance(dtype, bool) or name not in _DTYPES:
        raise ValueError(f"{what} must be one of {', '.join(_DTYPES)}; received "
                         f"{what}={dtype!r}.")
    return name
