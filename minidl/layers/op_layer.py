"""Keras ops on symbolic tensors: each call of an op becomes a node of the graph, an OpLayer.

In a functional model, ``x = inputs * 2.0``, ``ops.concatenate([a, b], axis=-1)``,
``ops.expand_dims(x, -1)``, ``x[:, 0]`` or ``x @ w`` on symbolic tensors compute nothing:
``minidl.ops`` sees the op fail on a symbolic operand (``SymbolicTensorError``) and calls
:func:`symbolic_call`, which records the call as an :class:`OpLayer`: the op's name and its
arguments, with the symbolic tensors replaced by references to the layer's inputs
(:class:`InputRef`). The output's shape and dtype come from running the op on zeros of the
input shapes (see :func:`infer_output`), so an input the op cannot take fails here, at
graph-building time, with a ValueError naming the op and the shapes.

In a model, an OpLayer is a step of the execution plan like any other: it runs its op on a
tape while training and takes its gradients from that tape. It saves as a registered layer
whose config names the op (resolved only among ``minidl.ops``' public ops: an allow-list)
and its arguments as JSON: numbers, strings, None, lists, tuples, slices, Ellipsis, numpy
scalars and dtypes. A numpy array or tensor among the arguments (``x @ w_array``) is a
constant of the graph: the model reads it (a Variable's current value) but neither trains
nor saves it, and ``get_config`` refuses it, naming the layer (make it the weight of a layer
instead).
"""
import math

import numpy as np

from minidl.autodiff.gradient import gradients
from minidl.autodiff.tensor import Tensor, no_record_scope, record_scope, wrap
from minidl.layers.base import LAYERS, Layer, unique_name
from minidl.layers.node import SymbolicTensor, add_node, flatten

# Ops that never make a node: `shape` of a symbolic tensor is its static shape (as in
# Keras), and `convert_to_numpy` has no values to return.
_NOT_NODES = ("shape", "convert_to_numpy")
_SCALAR_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float16", "float32", "float64")


def _raw_ops():
    from minidl import ops
    return ops._RAW_OPS


class InputRef:
    """In an :class:`OpLayer`'s arguments, the place of the layer's input number ``index``
    (the symbolic tensor the op was called on)."""

    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index

    def __eq__(self, other):
        return type(other) is InputRef and other.index == self.index

    __hash__ = None

    def __repr__(self):
        return f"InputRef({self.index})"


# ---- finding symbolic tensors in an op's arguments ----

def has_symbolic(args, kwargs):
    """Whether a SymbolicTensor is among ``args`` / ``kwargs`` (lists and tuples searched)."""
    return any(_contains_symbolic(a) for a in args) or \
        any(_contains_symbolic(v) for v in kwargs.values())


def _contains_symbolic(value):
    if isinstance(value, SymbolicTensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_symbolic(item) for item in value)
    return False


def _template(value, inputs, seen):
    """``value`` with each symbolic tensor replaced by an InputRef (a tensor used twice
    gets one input); ``inputs`` collects the tensors, in order of first use."""
    if isinstance(value, SymbolicTensor):
        index = seen.get(id(value))
        if index is None:
            index = seen[id(value)] = len(inputs)
            inputs.append(value)
        return InputRef(index)
    if isinstance(value, list):
        return [_template(item, inputs, seen) for item in value]
    if isinstance(value, tuple):
        return tuple(_template(item, inputs, seen) for item in value)
    return value


def _fill(value, inputs):
    """The template ``value`` with its InputRefs replaced by ``inputs``."""
    kind = type(value)
    if kind is InputRef:
        return inputs[value.index]
    if kind is tuple:
        return tuple(_fill(item, inputs) for item in value)
    if kind is list:
        return [_fill(item, inputs) for item in value]
    return value


def _refs(value, found):
    kind = type(value)
    if kind is InputRef:
        found.append(value.index)
    elif kind in (tuple, list):
        for item in value:
            _refs(item, found)
    return found


# ---- shape and dtype inference ----

def infer_output(run, specs):
    """The output ``(shape, dtype)`` of ``run`` (a function of a list of tensors) for
    inputs of ``specs`` (whole shapes, None where unknown, and dtypes), found by running it
    on zeros; a list of them when ``run`` returns a list or tuple of tensors.

    Every unknown dimension is taken as 2, then as 3: an output dimension that changes is
    unknown (None), one that does not is known. When that fails (an unknown dimension
    numpy must broadcast against a known one, which is legal only if the unknown one is 1),
    the unknown dimensions are taken as 1, and output dimensions of 1 are unknown. A last
    run on ones instead of zeros must give the same shapes: otherwise the output's shape
    depends on the values of the inputs (``ops.ones(x)``, ``ops.tile(y, x)``), which a
    graph cannot know before it runs.

    Raises:
        The op's own error when it fails on every try (the first try's); ValueError when
        the output's shape depends on the inputs' values.
    """
    unknown = any(d is None for shape, _ in specs for d in shape)
    try:
        fill, first = 2, _probe(run, specs, 2)
        second = _probe(run, specs, 3) if unknown else first
        result = _combine(first, second, lambda a, b: a if a == b else None)
    except Exception as error:
        if not unknown:
            raise
        try:
            fill, first = 1, _probe(run, specs, 1)
        except Exception:
            raise error from None
        result = _combine(first, first, lambda a, b: None if a == 1 else a)
    try:
        ones = _probe(run, specs, fill, value=1)
    except Exception:
        ones = first   # values the op refuses (an index out of range): nothing to compare
    if _shapes(ones) != _shapes(first):
        raise ValueError("the shape of its output depends on the values of its symbolic "
                         "inputs (a shape, count or indices given as a tensor), which a "
                         "model does not know before it runs")
    return result


def _probe(run, specs, fill, value=0):
    arrays = [wrap(np.full(tuple(fill if d is None else d for d in shape), value, dtype))
              for shape, dtype in specs]
    with no_record_scope(), np.errstate(all="ignore"):
        return run(arrays)


def _shapes(out):
    if isinstance(out, (list, tuple)):
        return [getattr(t, "shape", None) for t in out]
    return getattr(out, "shape", None)


def _combine(a, b, dim):
    """(shape, dtype) from two probe results, ``dim(n_a, n_b)`` per dimension."""
    if isinstance(a, (list, tuple)) and all(isinstance(t, Tensor) for t in a):
        return [_combine(x, y, dim) for x, y in zip(a, b)]
    if not isinstance(a, Tensor):
        raise TypeError(f"it returns {type(a).__name__}, not a tensor")
    if a.ndim != b.ndim:
        raise ValueError(f"the rank of its output ({a.ndim} or {b.ndim}) depends on the "
                         f"unknown dimensions of its inputs")
    return tuple(dim(p, q) for p, q in zip(a.shape, b.shape)), a.dtype.name


def _shapes_text(tensors):
    shapes = [str(t.shape) for t in tensors]
    return shapes[0] if len(shapes) == 1 else ", ".join(shapes[:-1]) + " and " + shapes[-1]


# ---- the layer ----

@LAYERS.register()
class OpLayer(Layer):
    """One call of a ``minidl.ops`` op on symbolic tensors, as a layer of a functional model.

    Made by the ops themselves when called on symbolic tensors (``inputs * 2.0``,
    ``ops.concatenate([a, b])``, ``x[:, 0]``); it has no weights.

    Args:
        op: the op's name among ``minidl.ops``' public ops ('add', 'get_item', ...).
        args: the op's positional arguments, with :class:`InputRef` where the layer's
            inputs go (or their JSON form, as ``get_config`` writes them).
        kwargs: the op's keyword arguments, likewise.
        output_index: for an op returning a list of tensors (``split``), the index of the
            one this layer returns; None otherwise.
        name, dtype, trainable: as for every layer. The dtype follows the inputs (float64
            when one is float64), so the plan casts nothing numpy would not.

    Called on a list of tensors (its inputs, in the order of the InputRef indices), it
    runs ``op(*args, **kwargs)`` with them in place.
    """

    def __init__(self, op, args=(), kwargs=None, output_index=None, name=None,
                 dtype="float32", trainable=True):
        ops = _raw_ops()
        if not isinstance(op, str) or op not in ops or op in _NOT_NODES:
            valid = ", ".join(sorted(n for n in ops if n not in _NOT_NODES))
            raise ValueError(f"OpLayer: op must be the name of one of minidl.ops' ops "
                             f"({valid}); received op={op!r:.100}.")
        if not isinstance(args, (list, tuple)):
            raise TypeError(f"OpLayer: args must be a list or tuple of the op's positional "
                            f"arguments; received args={args!r:.100}.")
        kwargs = {} if kwargs is None else kwargs
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise TypeError(f"OpLayer: kwargs must be a dict of the op's keyword arguments "
                            f"by name; received kwargs={kwargs!r:.100}.")
        # The JSON form of get_config (a config) is decoded; Python values pass as they are.
        where = f"OpLayer ops.{op}"
        args = tuple(_decode(value, where, f"args[{i}]") for i, value in enumerate(args))
        kwargs = {key: _decode(value, where, f"kwargs[{key!r}]")
                  for key, value in kwargs.items()}
        if output_index is not None and (isinstance(output_index, bool) or not isinstance(
                output_index, (int, np.integer)) or output_index < 0):
            raise ValueError(f"OpLayer: output_index must be None or an int >= 0; received "
                             f"output_index={output_index!r:.100}.")
        refs = sorted(set(_refs(list(args), []) + _refs(list(kwargs.values()), [])))
        if not refs or refs != list(range(len(refs))):
            raise ValueError(f"OpLayer ops.{op}: its arguments must refer to its inputs as "
                             f"InputRef(0), InputRef(1), ... (each at least once); received "
                             f"the references {refs} in args={args!r:.100}, "
                             f"kwargs={kwargs!r:.100}.")
        super().__init__(name=unique_name(op) if name is None else name, dtype=dtype,
                         trainable=trainable)
        self.op = op
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.output_index = None if output_index is None else int(output_index)
        self.input_count = len(refs)
        self._function = ops[op]
        self._input_dtypes = None   # of the first symbolic call: for compute_output_shape
        self._inferred = None       # (specs, output) already inferred by symbolic_call

    def _run(self, inputs):
        out = self._function(*_fill(self.args, inputs), **{
            key: _fill(value, inputs) for key, value in self.kwargs.items()})
        return out if self.output_index is None else out[self.output_index]

    def call(self, inputs):
        """The op on ``inputs`` (a list of tensors, one per InputRef)."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self._check_count(len(inputs))
        return self._run(inputs)

    def _check_count(self, count):
        if count != self.input_count:
            raise ValueError(f"Layer '{self.name}' (ops.{self.op}) takes {self.input_count} "
                             f"input tensor(s); received {count}.")

    # ---- graphs ----

    def _call_symbolic(self, inputs, training, call_tensors=None):
        leaves = flatten(inputs)
        for leaf in leaves:
            if not isinstance(leaf, SymbolicTensor):
                raise TypeError(f"Layer '{self.name}' (ops.{self.op}) was called on a mix of "
                                f"symbolic tensors and {type(leaf).__name__}.")
        self._check_count(len(leaves))
        specs = [(t.shape, t.dtype) for t in leaves]
        known, self._inferred = self._inferred, None
        try:
            out = known[1] if known is not None and known[0] == specs else \
                infer_output(self._run, specs)
            if isinstance(out, list):
                raise TypeError(f"it returns {len(out)} tensors; an OpLayer returns one "
                                f"(give output_index)")
        except Exception as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError
            tried = " (run on zeros, unknown dimensions as 2)" if any(
                d is None for t in leaves for d in t.shape) else ""
            raise kind(f"ops.{self.op} cannot take symbolic inputs of shape "
                       f"{_shapes_text(leaves)}{tried}: {error}") from None
        shape, dtype = out
        # The plan casts float inputs to the layer's dtype: numpy's promotion, no more.
        self.dtype = "float64" if any(t.dtype == "float64" for t in leaves) else "float32"
        self._input_dtypes = [t.dtype for t in leaves]
        self.built = True
        self.built_input_shape = [t.shape[1:] for t in leaves]
        return add_node(self, list(leaves), shape, dtype, training)

    def compute_output_shape(self, input_shape):
        """The output sample shape for a list of input sample shapes."""
        shapes = [tuple(s) for s in input_shape] if self.input_count > 1 or (
            input_shape and isinstance(input_shape[0], (list, tuple))) else [tuple(input_shape)]
        dtypes = self._input_dtypes or [self.dtype] * len(shapes)
        shape, _ = infer_output(self._run, [((None,) + s, d) for s, d in zip(shapes, dtypes)])
        return tuple(shape[1:])

    # ---- in an execution plan ----

    def forward(self, ctx, xs, training=False):
        """The op on the arrays ``xs``; while training (``ctx.record``) on a tape that
        :meth:`backward` differentiates."""
        xs = list(xs) if isinstance(xs, (list, tuple)) else [xs]
        if not ctx.record:
            with no_record_scope():
                out = self._run([wrap(x) for x in xs])
            ctx.tape = None
            return self._output_array(out, xs)
        inputs = []
        for x in xs:
            t = wrap(x)
            t.requires_grad = t.value.dtype.kind == "f"
            inputs.append(t)
        with record_scope():
            out = self._run(inputs)
        ctx.tape = (inputs, out)
        return self._output_array(out, xs)

    def _output_array(self, out, xs):
        if not isinstance(out, Tensor):
            raise TypeError(f"Layer '{self.name}' (ops.{self.op}) returned "
                            f"{type(out).__name__}, not a tensor.")
        y = out.value
        # A view of an input (reshape, x[:, 0]) becomes an array of its own: the input may
        # be a buffer its producer rewrites in place on the next batch.
        if not y.flags.c_contiguous or any(np.may_share_memory(y, x) for x in xs):
            y = np.array(y, order="C")
        return y

    def backward(self, ctx, dy, need_input_grad=True):
        """The input gradients (a list, None where not needed or where none flows: integer
        and bool inputs, ops without a gradient such as comparisons)."""
        inputs, out = ctx.tape
        ctx.tape = None
        needs = list(need_input_grad) if isinstance(need_input_grad, (list, tuple)) else \
            [need_input_grad] * len(inputs)
        wanted = [t for t, need in zip(inputs, needs) if need and t.requires_grad]
        if not wanted or out.node is None or out.node.backward is None:
            return [None] * len(inputs)
        grads = iter(gradients([out], wanted, [dy]))
        dxs = []
        for t, need in zip(inputs, needs):
            g = next(grads) if need and t.requires_grad else None
            dxs.append(None if g is None else np.ascontiguousarray(g, dtype=t.value.dtype))
        return dxs

    # ---- config ----

    def get_config(self):
        """The op's name, its arguments as JSON, ``output_index``; ValueError for an
        argument that JSON cannot hold (a numpy array or tensor constant)."""
        config = super().get_config()
        where = f"Layer '{self.name}' (ops.{self.op})"
        config.update(op=self.op,
                      args=[_encode(value, where, f"args[{i}]")
                            for i, value in enumerate(self.args)],
                      kwargs={key: _encode(value, where, f"kwargs[{key!r}]")
                              for key, value in self.kwargs.items()},
                      output_index=self.output_index)
        return config


# ---- arguments as JSON ----

def _encode(value, where, path):
    """``value`` as JSON: numbers, strings, None and lists as they are; tuples, slices,
    Ellipsis, non-finite floats, numpy scalars and dtypes, and input references as objects
    of one key naming the kind."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, InputRef):
        return {"__input__": value.index}
    if isinstance(value, list):
        return [_encode(item, where, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, where, f"{path}[{i}]")
                              for i, item in enumerate(value)]}
    if isinstance(value, slice):
        return {"__slice__": [_encode(part, where, f"{path}.{name}") for part, name in
                              ((value.start, "start"), (value.stop, "stop"),
                               (value.step, "step"))]}
    if value is Ellipsis:
        return {"__ellipsis__": True}
    if isinstance(value, np.generic) and value.dtype.name in _SCALAR_DTYPES:
        return {"__scalar__": _encode(value.item(), where, path), "dtype": value.dtype.name}
    if isinstance(value, np.dtype) or (isinstance(value, type) and
                                       issubclass(value, np.generic)):
        name = np.dtype(value).name
        if name in _SCALAR_DTYPES:
            return {"__dtype__": name}
    if isinstance(value, (np.ndarray, Tensor)):
        raise ValueError(
            f"{where} cannot be saved: its argument {path} is an array of shape "
            f"{np.shape(value.value if isinstance(value, Tensor) else value)}, and a model "
            f"config holds only JSON (numbers, strings, lists). Make the constant a weight of "
            f"a layer (e.g. Dense(units, use_bias=False) for `x @ w`, then set_weights), or "
            f"pass it as a Python list if it is small.")
    raise ValueError(f"{where} cannot be saved: its argument {path} is "
                     f"{type(value).__name__} ({value!r:.80}), which a model config cannot "
                     f"hold (numbers, strings, None, lists, tuples, slices, Ellipsis, numpy "
                     f"scalars and dtypes only).")


_SPECIAL = {"__float__", "__input__", "__tuple__", "__slice__", "__ellipsis__", "__scalar__",
            "__dtype__"}


def _decode(value, where, path):
    """The inverse of :func:`_encode` (ValueError naming the field for an object it does
    not write); values that are not JSON (an op's arguments given in Python) pass."""
    if isinstance(value, list):
        return [_decode(item, where, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_decode(item, where, f"{path}[{i}]") for i, item in enumerate(value))
    if not isinstance(value, dict):
        return value
    keys = set(value)
    kind = next(iter(keys & _SPECIAL), None)
    allowed = {kind, "dtype"} if kind == "__scalar__" else {kind}
    if kind is None or keys != allowed:
        raise ValueError(f"{where}: {path} must be a number, string, null, list or one of the "
                         f"objects {sorted(_SPECIAL)}; received {value!r:.100}.")
    item = value[kind]
    if kind == "__float__" and item in ("nan", "inf", "-inf"):
        return float(item)
    if kind == "__input__" and isinstance(item, int) and not isinstance(item, bool) \
            and item >= 0:
        return InputRef(item)
    if kind == "__tuple__" and isinstance(item, list):
        return tuple(_decode(part, where, f"{path}[{i}]") for i, part in enumerate(item))
    if kind == "__slice__" and isinstance(item, list) and len(item) == 3:
        parts = [_decode(part, where, f"{path}.{name}")
                 for part, name in zip(item, ("start", "stop", "step"))]
        if all(p is None or (isinstance(p, int) and not isinstance(p, bool)) for p in parts):
            return slice(*parts)
    if kind == "__ellipsis__" and item is True:
        return Ellipsis
    if kind == "__scalar__" and value["dtype"] in _SCALAR_DTYPES and \
            isinstance(item, (bool, int, float)):
        return np.dtype(value["dtype"]).type(item)
    if kind == "__dtype__" and item in _SCALAR_DTYPES:
        return np.dtype(item)
    raise ValueError(f"{where}: {path} is not a valid {kind} object; received "
                     f"{value!r:.100}.")


# ---- the ops' symbolic path ----

def symbolic_call(name, args, kwargs):
    """``ops.<name>(*args, **kwargs)`` where an argument is symbolic: the output tensor(s)
    of a new OpLayer node (one OpLayer per output for an op returning a list)."""
    if name == "shape" and len(args) == 1 and not kwargs and \
            isinstance(args[0], SymbolicTensor):
        return args[0].shape   # Keras: the static shape, None where unknown
    if name in _NOT_NODES:
        raise TypeError(f"ops.{name} cannot take a symbolic tensor: it has a shape but no "
                        f"values until a model computes it.")
    inputs, seen = [], {}
    args = _template(tuple(args), inputs, seen)
    kwargs = {key: _template(value, inputs, seen) for key, value in kwargs.items()}
    layer = OpLayer(name, args, kwargs)
    specs = [(t.shape, t.dtype) for t in inputs]
    try:
        outputs = infer_output(layer._run, specs)
    except Exception:
        return layer(inputs)   # which infers again and reports the error, naming the op
    if not isinstance(outputs, list):
        layer._inferred = (specs, outputs)
        return layer(inputs)
    # Several outputs (split): one OpLayer each, as a plan step has one output.
    layer.output_index = 0
    return [layer(inputs)] + [OpLayer(name, args, kwargs, output_index=i)(inputs)
                              for i in range(1, len(outputs))]
