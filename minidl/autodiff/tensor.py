"""Tensors and variables: numpy arrays that remember, while a tape records, how they were made.

A :class:`Tensor` wraps one numpy array (``value``). What ``minidl.ops`` and the layers return
is a Tensor; it converts to numpy wherever numpy is expected (``np.asarray(t)``, ``float(t)``,
``t.numpy()``) and its Python operators (``+ - * / @ ** [] -t``, comparisons) are the ops.

Recording (micrograd's design): while a :class:`~minidl.autodiff.GradientTape` is open in
this thread (or a training step runs user code), an op whose inputs need a gradient gives
its output a :class:`Node`: the op's name, its inputs (``parents``) and its ``backward``,
a closure written right after the forward computation in the op's own module. The graph
lives on the tensors; ``gradient.gradients`` walks it backwards from a target. Outside a tape
nothing is recorded and an op costs its numpy call plus one small object.

A :class:`Variable` is a Tensor whose array is a layer's (or a metric's) state: ``value`` is
the very array the optimizer updates in place, so it never changes identity; ``assign``
writes into it. Trainable variables need a gradient; everything else is a constant.

Writing an op (see ``minidl/ops/elementwise.py``)::

    def exp(x):
        x_value = value_of(x)
        y = np.exp(x_value)

        def backward(g, needs):     # g: gradient of the output; needs: a bool per parent
            return (g * y,)         # one entry per parent, None where not needed

        return record("exp", y, (x,), backward)
"""
import threading

import numpy as np


class _State(threading.local):
    """Per-thread recording state (class attributes: every thread starts from them).

    ``depth`` counts the open tapes (and training steps running user code) of this thread;
    ops record only while it is positive. ``tape``: None, or the list to which every tensor
    recorded in this thread is appended, in recording order: the open GradientTape's, or
    that of a user layer's call in a plan (their backward passes run over it rather than
    search the graph). ``buffers``: while a backward pass of this thread runs with
    preallocated gradient arrays (``gradient.gradients_into``), ``{id(tensor): array}`` of
    those not yet handed out (see :func:`gradient_buffer`), else None.
    """

    depth = 0
    tape = None
    buffers = None


_state = _State()

FLOATX = np.dtype(np.float32)


class SymbolicTensorError(TypeError):
    """Raised when an op meets a symbolic tensor (``minidl.Input`` and what layers return on
    it), which has a shape but no values: converting one to an array (``to_array``,
    ``value_of``, ``np.asarray``) raises it. ``minidl.ops`` catches it to record the op as a
    node of the graph instead (``minidl.layers.op_layer``)."""


def recording():
    """Whether ops in this thread record their backward pass now."""
    return _state.depth > 0


class _Recording:
    """Context manager: recording on (``on=True``) or off within the block, this thread."""

    __slots__ = ("on", "saved")

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        self.saved = _state.depth
        _state.depth = self.saved + 1 if self.on else 0
        return self

    def __exit__(self, *exc):
        _state.depth = self.saved
        return False


def record_scope():
    """Ops record within this block (nested: the outer state comes back after it)."""
    return _Recording(True)


def no_record_scope():
    """Nothing records within this block (``GradientTape.stop_recording``, inference)."""
    return _Recording(False)


class Node:
    """How a recorded tensor was made.

    Attributes:
        op: the op's name, for messages ('matmul', 'dense', ...).
        parents: the op's inputs, in order; constants (arrays, numbers) included.
        needs: one bool per parent: whether a gradient must reach it.
        backward: ``backward(g, needs) -> tuple`` of gradients, one per parent (None where
            ``needs`` is False), or None for an op that has no gradient (argmax, integer
            casts): a gradient that must flow through it is an error, reported by name.
    """

    __slots__ = ("op", "parents", "needs", "backward")

    def __init__(self, op, parents, needs, backward):
        self.op = op
        self.parents = parents
        self.needs = needs
        self.backward = backward


class Tensor:
    """An array with, while recording, the history of the ops that made it.

    Args:
        value: array-like; lists of Python floats become float32 (Keras' floatx).
        dtype: optional dtype to convert to.

    Attributes:
        value: the numpy array (never a copy of the caller's array when it already has the
            dtype asked for).
        node: the :class:`Node` that made it while recording, else None.
        requires_grad: whether gradients flow back to it (recorded results, watched
            tensors, trainable variables).
    """

    # (_keras_mask: the mask a layer call attached, as in Keras; read with getattr.)
    __slots__ = ("value", "node", "requires_grad", "_keras_mask", "__weakref__")
    __array_priority__ = 100   # numpy defers `array + tensor` to Tensor.__radd__ and friends

    def __init__(self, value, dtype=None):
        self.value = to_array(value, dtype)
        self.node = None
        self.requires_grad = False

    # ---- numpy interoperability ----

    def numpy(self):
        """The value as a numpy array (a copy, which later ops never change)."""
        return self.value.copy()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.value.dtype:
            return self.value.astype(dtype)
        return self.value.copy() if copy else self.value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy calls on tensors: the op of the same name when there is one (so
        # `np.exp(t)` and `array * t` record), else numpy on the values.
        op = _UFUNC_OPS.get(ufunc) if method == "__call__" and not kwargs else None
        if op is not None:
            return op(*inputs)
        inputs = [x.value if isinstance(x, Tensor) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(x.value if isinstance(x, Tensor) else x
                                  for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    @property
    def ndim(self):
        return self.value.ndim

    @property
    def size(self):
        return self.value.size

    @property
    def nbytes(self):
        return self.value.nbytes

    @property
    def flat(self):
        """numpy's flat iterator over the value (code written for arrays, pytest.approx,
        iterate a 0-d tensor so)."""
        return self.value.flat

    def __len__(self):
        if not self.value.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self.value)

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __index__(self):
        return self.value.__index__()

    def __bool__(self):
        return bool(self.value)

    def __iter__(self):
        if not self.value.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.value)))

    def __repr__(self):
        body = np.array2string(self.value, separator=", ", threshold=20)
        grad = ", requires_grad" if self.requires_grad else ""
        return f"<Tensor shape={self.value.shape} dtype={self.value.dtype.name}{grad}\n{body}>"

    def __format__(self, spec):
        return format(self.value.item(), spec) if self.value.ndim == 0 and spec else \
            format(str(self), spec)

    __hash__ = object.__hash__   # `==` is the elementwise op, as in every array library


class WeightWrites:
    """How many times weights may have been written in place (``Variable.assign`` and
    the like, ``Layer.set_weights``, an optimizer's update, a training step or a load under
    a model's exclusive lock, a batch normalization's moving statistics): what is derived
    from weights and kept (an inference plan's batch normalization folded into the layer
    before it, ``rewrites.FoldedBatchNormStep``) is derived again when the count moved.
    Each writer adds one after writing, so a copy made at a count is never kept past the
    next write. Arrays written directly (``variable.value[...] = ...``) are not counted."""

    count = 0

    @classmethod
    def written(cls):
        cls.count += 1


class Variable(Tensor):
    """A tensor holding state: a layer's weight, a metric's total.

    ``value`` is the array itself (the one the optimizer updates in place): a Variable never
    changes its array, ``assign`` writes into it.

    Args:
        value: the initial array (kept, not copied, when it is a C-contiguous ndarray).
        trainable: whether gradients are computed for it (the optimizer updates it).
        name: the variable's name ('kernel', 'bias', ...).
        dtype: optional dtype to convert the initial value to.
    """

    __slots__ = ("name", "trainable", "path", "constraint")

    def __init__(self, value, trainable=True, name=None, dtype=None):
        array = to_array(value, dtype)
        if not array.flags.c_contiguous or not array.flags.writeable:
            array = np.array(array, order="C")
        self.value = array
        self.node = None
        self.trainable = bool(trainable)
        self.requires_grad = self.trainable
        self.name = "variable" if name is None else str(name)
        self.path = self.name
        self.constraint = None   # set by Layer.add_weight(constraint=...)

    def assign(self, value):
        """Write ``value`` (broadcast to this variable's shape) into it, in place."""
        value = value.value if isinstance(value, Tensor) else value
        new = np.asarray(value)
        if new.shape != self.value.shape and new.size != 1:
            raise ValueError(f"Variable '{self.path}' has shape {self.value.shape}; cannot "
                             f"assign a value of shape {new.shape}.")
        np.copyto(self.value, new, casting="unsafe")
        WeightWrites.written()
        return self

    def assign_add(self, value):
        """``variable += value``, in place."""
        value = value.value if isinstance(value, Tensor) else value
        np.add(self.value, value, out=self.value, casting="unsafe")
        WeightWrites.written()
        return self

    def assign_sub(self, value):
        """``variable -= value``, in place."""
        value = value.value if isinstance(value, Tensor) else value
        np.subtract(self.value, value, out=self.value, casting="unsafe")
        WeightWrites.written()
        return self

    def __setitem__(self, key, value):
        self.value[key] = value.value if isinstance(value, Tensor) else value
        WeightWrites.written()

    def copy(self):
        """A copy of the value, as a numpy array."""
        return self.value.copy()

    def __repr__(self):
        body = np.array2string(self.value, separator=", ", threshold=20)
        return (f"<Variable path={self.path} shape={self.value.shape} "
                f"dtype={self.value.dtype.name}, trainable={self.trainable}\n{body}>")


# ---- helpers for ops ----

def to_array(x, dtype=None):
    """``x`` as an ndarray: a Tensor's value; an ndarray as is; Python data as Keras
    converts it (floats to float32, ints to int32, bools to bool)."""
    if isinstance(x, Tensor):
        x = x.value
    elif not isinstance(x, np.ndarray):
        if isinstance(x, np.generic):
            x = np.asarray(x)
        else:
            x = np.asarray(x)
            if x.dtype == np.float64:
                x = x.astype(FLOATX)
            elif x.dtype == np.int64:
                x = x.astype(np.int32)
            elif x.dtype == object:
                raise TypeError(f"Cannot convert {type(x).__name__} with objects to a tensor.")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if x.dtype != dtype:
            x = x.astype(dtype)
    return x


def value_of(x):
    """The operand ``x`` of an op as numpy takes it: a Tensor's array; Python numbers kept
    (numpy treats them as weakly typed: float32 + 1.5 stays float32); numpy scalars as
    Python numbers for the same reason; other data through :func:`to_array`."""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):
        # (before the Python types: np.float64 is a subclass of float, and numpy would
        # take it as a strong float64)
        return x.item()
    if isinstance(x, (int, float, bool)):
        return x
    return to_array(x)


_new_tensor = object.__new__   # Tensor.__new__, without the attribute lookup
_ndarray = np.ndarray


def wrap(value):
    """A Tensor around the array ``value`` (no copy, no history)."""
    t = Tensor.__new__(Tensor)
    t.value = value if type(value) is np.ndarray else np.asarray(value)
    t.node = None
    t.requires_grad = False
    return t


def record(op, value, parents, backward):
    """The output Tensor of an op, with its :class:`Node` when recording and some parent
    needs a gradient.

    Args:
        op: the op's name.
        value: the output array (numpy scalars become 0-d arrays).
        parents: the op's inputs (Tensors or constants), in the order ``backward`` returns
            their gradients.
        backward: ``backward(g, needs)``, or None for an op without a gradient.
    """
    t = _new_tensor(Tensor)
    t.value = value if type(value) is _ndarray else np.asarray(value)
    state = _state
    if state.depth:
        # Unrolled for the one- and two-operand ops that make up most graphs: the generator
        # of the general case costs 0.2 us more per op (timeit, two operands).
        n = len(parents)
        if n == 2:
            a, b = parents
            needs = (isinstance(a, Tensor) and a.requires_grad,
                     isinstance(b, Tensor) and b.requires_grad)
        elif n == 1:
            a = parents[0]
            needs = (isinstance(a, Tensor) and a.requires_grad,)
        else:
            needs = tuple(isinstance(p, Tensor) and p.requires_grad for p in parents)
        if True in needs:
            # (An op without a gradient keeps its parents too, so that a gradient asked
            # for through it is reported by the op's name rather than silently missing.)
            t.node = Node(op, parents, needs, backward)
            t.requires_grad = True
            tape = state.tape
            if tape is not None:
                tape.append(t)
            return t
    t.node = None
    t.requires_grad = False
    return t


def gradient_buffer(tensor):
    """The array the running backward pass wants ``tensor``'s gradient written into, or
    None (the usual case: the op returns a new array).

    A model's execution plan trains a user layer by running the backward pass of the
    layer's tape with the plan's own gradient arrays for the layer's weights
    (``gradient.layer_gradients``); an op whose backward can write an operand's gradient
    into a given array (matmul: the GEMM's ``out``; a bias added to a batch: the
    reduction's) asks for it here, saving an allocation and a copy. Each array is handed
    out once: ask only when about to write the whole gradient of ``tensor`` into it, and
    return that array as the gradient.
    """
    buffers = _state.buffers
    if buffers:
        return buffers.pop(id(tensor), None)
    return None


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the gradient of an input that numpy broadcast."""
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra == 1 and g.shape[1:] == shape:
        # A bias added to a batch: the reduction alone, the same bits as g.sum(axis=0)
        # (timeit, 32x64 float32: 1.9 us -> 1.3 us).
        return _add_reduce(g, 0)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


_add_reduce = np.add.reduce


# numpy ufunc -> op, filled by minidl.ops once it is imported (see __array_ufunc__).
_UFUNC_OPS = {}
