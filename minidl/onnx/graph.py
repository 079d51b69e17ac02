"""The ONNX graph under construction, and the layouts of its values.

minidl computes channels-last (``(batch, ..., channels)``); ONNX's Conv and pooling take
channels-first (``(batch, channels, ...)``). Transposing before and after every convolution
would put two copies of each activation map around it, so a value here carries the layout
it has in the graph beside the layout the Keras model gives it:

    physical = numpy.transpose(logical, value.perm)

``perm`` None means the two are the same. A convolution asks for its input with the
channels-first ``perm`` and returns its output in that layout, so that consecutive
convolutions, poolings, batch normalizations and elementwise layers pass it on without a
Transpose; one appears only before a layer that needs the Keras layout (a Reshape, an
LSTM), where :meth:`GraphBuilder.logical` makes it (once per value, whoever asks).

A Flatten of a channels-first image flattens it as it is, and records in ``value.order``
which Keras feature each flattened position holds (``physical[:, j] = logical[:, order[j]]``):
a Dense layer after it takes its kernel's rows in that order, which costs nothing at run
time; any other layer gets the Keras order through a Gather.
"""
import numpy as np

INT64_MIN = -(2 ** 63)


class Value:
    """A tensor of the ONNX graph standing for a tensor of the Keras model.

    Attributes:
        name: the ONNX value name.
        shape: the Keras shape, batch first, None where any size is allowed.
        dtype: the numpy dtype of its elements.
        perm: how the graph's layout permutes the Keras one (None: unpermuted).
        order: for a 2-D value, which Keras feature each column holds (None: in order).
    """

    __slots__ = ("name", "shape", "dtype", "perm", "order")

    def __init__(self, name, shape=None, dtype=None, perm=None, order=None):
        self.name = name
        self.shape = None if shape is None else tuple(shape)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.perm = None if perm is None or tuple(perm) == tuple(range(len(perm))) \
            else tuple(int(p) for p in perm)
        self.order = order

    @property
    def rank(self):
        return len(self.shape)

    @property
    def plain(self):
        """Whether the graph holds it in the Keras layout."""
        return self.perm is None and self.order is None

    def physical_axis(self, axis):
        """Where Keras axis ``axis`` (may be negative) lies in the graph's layout."""
        axis %= self.rank
        return axis if self.perm is None else self.perm.index(axis)

    def __repr__(self):
        return f"Value({self.name!r}, shape={self.shape}, perm={self.perm})"


def inverse(perm):
    """The permutation undoing ``perm``."""
    return tuple(int(i) for i in np.argsort(perm))


def channels_first_perm(rank):
    """The perm taking a channels-last tensor of ``rank`` axes to channels-first."""
    return (0, rank - 1) + tuple(range(1, rank - 1))


class GraphBuilder:
    """Nodes, initializers and names of one ONNX graph.

    Args:
        onnx: the imported ``onnx`` module.
        opset: the default domain's opset version.
    """

    def __init__(self, onnx, opset):
        self.onnx = onnx
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self._names = set()
        self._constants = {}
        self._layouts = {}

    # ---- names and constants ----

    def name(self, hint):
        """A value or node name not used yet, made from ``hint``."""
        base = "".join(c if c.isalnum() or c in "_./-" else "_" for c in str(hint)) or "v"
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def reserve(self, name):
        self._names.add(name)

    def constant(self, array, hint, key=None):
        """An initializer holding ``array``; the same ``key`` (a layer's weight used by two
        calls of it) gives the same initializer."""
        if key is not None and key in self._constants:
            return self._constants[key]
        name = self.name(hint)
        tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.initializers.append(tensor)
        if key is not None:
            self._constants[key] = name
        return name

    def ints(self, values, hint="shape"):
        """An int64 1-D initializer (shapes, axes), shared by equal uses."""
        values = tuple(int(v) for v in values)
        return self.constant(np.array(values, np.int64), hint, key=("ints", values))

    def scalar(self, value, dtype, hint="c"):
        """A 0-D initializer of ``dtype``, shared by equal uses."""
        dtype = np.dtype(dtype)
        return self.constant(np.array(value, dtype), hint, key=("scalar", float(value), dtype.str))

    # ---- nodes ----

    def op(self, op_type, inputs, hint, outputs=1, **attributes):
        """Append a node; returns its output name (a list when ``outputs`` > 1). An empty
        string in ``inputs`` skips an optional input."""
        names = [self.name(f"{hint}/{op_type}" if outputs == 1 else f"{hint}/{op_type}_{i}")
                 for i in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=self.name(f"{hint}/{op_type}_node"),
                                                     **attributes))
        return names[0] if outputs == 1 else names

    # ---- layouts ----

    def logical(self, value, hint="layout"):
        """``value`` in the Keras layout (a Transpose or Gather made once per value)."""
        return self.with_perm(value, None, hint)

    def with_perm(self, value, perm, hint="layout"):
        """``value`` held as ``transpose(logical, perm)`` (None: the Keras layout)."""
        perm = None if perm is None or tuple(perm) == tuple(range(len(perm))) else tuple(perm)
        if value.order is not None:
            # Back to the Keras order of features first: logical[:, i] = physical[:, inv[i]].
            key = (value.name, "order")
            name = self._layouts.get(key)
            if name is None:
                indices = self.constant(np.argsort(value.order).astype(np.int64),
                                        f"{hint}/feature_order")
                name = self._layouts[key] = self.op("Gather", [value.name, indices], hint,
                                                    axis=1)
            value = Value(name, value.shape, value.dtype)
        if value.perm == perm:
            return value
        current = value.perm or tuple(range(value.rank))
        wanted = perm or tuple(range(value.rank))
        # physical_wanted[i] = logical[wanted[i]] = physical_current[current.index(wanted[i])]
        step = tuple(current.index(axis) for axis in wanted)
        key = (value.name, step)
        name = self._layouts.get(key)
        if name is None:
            name = self._layouts[key] = self.op("Transpose", [value.name], hint,
                                                perm=list(step))
        return Value(name, value.shape, value.dtype, perm)

    def same_layout(self, values, hint):
        """``values`` (of one rank) in one layout: the first one's when all can share it,
        else the Keras layout."""
        first = values[0]
        if all(v.perm == first.perm and _same_order(v.order, first.order) for v in values):
            return list(values)
        if first.order is None and all(v.rank == first.rank and v.order is None
                                       for v in values):
            return [self.with_perm(v, first.perm, hint) for v in values]
        return [self.logical(v, hint) for v in values]


def _same_order(a, b):
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and bool(np.all(a == b))
