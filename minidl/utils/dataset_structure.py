"""What a dataset element is: nested tuples and dicts of numpy leaves.

The helpers :mod:`minidl.utils.dataset` builds on: flattening a structure in a fixed order
(dict keys sorted, as tf.nest does) and packing it back, converting Python values to numpy
with tf's default dtypes, stacking elements into a batch with errors that name the
component, and :class:`TensorSpec`, which checks what a generator yields.
"""
import numbers

import numpy as np


# ---- nested structures: tuples and dicts of leaves, flattened in a fixed order ----

def sorted_keys(mapping):
    try:
        return sorted(mapping)
    except TypeError:  # keys of mixed types: keep the insertion order
        return list(mapping)


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(value, "_fields")


_NESTS = (tuple, dict)


def _is_flat_tuple(value):
    # The common element, (x, y) or (x, y, w) of arrays, skips the recursion: most of a
    # pipeline's per-element cost is walking structures.
    if type(value) is not tuple:
        return False
    for item in value:
        if isinstance(item, _NESTS):
            return False
    return True


def flatten(value):
    if _is_flat_tuple(value):
        return list(value)
    if isinstance(value, tuple):
        return [leaf for item in value for leaf in flatten(item)]
    if isinstance(value, dict):
        return [leaf for key in sorted_keys(value) for leaf in flatten(value[key])]
    return [value]


def leaf_paths(value, prefix):
    """Names of the leaves, in flatten's order: 'tensors[0]', "tensors['label']"."""
    if isinstance(value, tuple):
        return [path for i, item in enumerate(value)
                for path in leaf_paths(item, f"{prefix}[{i}]")]
    if isinstance(value, dict):
        return [path for key in sorted_keys(value)
                for path in leaf_paths(value[key], f"{prefix}[{key!r}]")]
    return [prefix]


def batch_length(leaves, paths, what, scalar_hint=""):
    """The common length of the first axis of ``leaves`` (named by ``paths``); ValueError
    naming the leaf that is a scalar or of another length.

    Args:
        leaves: the arrays of one structure, in flatten's order.
        paths: their names (:func:`leaf_paths`).
        what: the operation, for messages ('from_tensor_slices', 'unbatch').
        scalar_hint: a sentence added to the message about a scalar.
    """
    for path, leaf in zip(paths, leaves):
        if np.ndim(leaf) == 0:
            raise ValueError(f"{what} needs a first (batch) axis to slice along, but {path} "
                             f"is a scalar ({leaf!r}).{scalar_hint}")
    length = len(leaves[0])
    for path, leaf in zip(paths, leaves):
        if len(leaf) != length:
            raise ValueError(f"{what}: all components must have the same length (first "
                             f"dimension). Received: {paths[0]} of length {length} and "
                             f"{path} of length {len(leaf)}.")
    return length


def structure_of(value):
    """A hashable description of the nesting, to compare two elements' structures."""
    if _is_flat_tuple(value):
        return (tuple, len(value))
    if isinstance(value, tuple):
        return (type(value), tuple(structure_of(item) for item in value))
    if isinstance(value, dict):
        keys = sorted_keys(value)
        return (dict, tuple(keys), tuple(structure_of(value[key]) for key in keys))
    return None


def pack(template, leaves):
    """Rebuild ``template``'s nesting from the iterator ``leaves`` (in flatten's order)."""
    if _is_flat_tuple(template):
        return tuple([next(leaves) for _ in template])
    if isinstance(template, tuple):
        items = [pack(item, leaves) for item in template]
        return type(template)(*items) if _is_namedtuple(template) else tuple(items)
    if isinstance(template, dict):
        packed = {key: pack(template[key], leaves) for key in sorted_keys(template)}
        return {key: packed[key] for key in template}
    return next(leaves)


def map_structure(fn, value):
    return pack(value, iter([fn(leaf) for leaf in flatten(value)]))


def to_leaf(value):
    """One component of an element as numpy. Python numbers and lists take tf's default
    dtypes (float32, and int32 when the values fit), as ``tf.constant`` gives them; numpy
    values keep theirs; strings stay ``str``."""
    if isinstance(value, (np.ndarray, np.generic, str, bytes)):
        return value
    if value is None:
        raise TypeError("A dataset element cannot hold None; use an array, a number or a "
                        "string. Received: None")
    if hasattr(value, "__array__"):  # minidl Tensors, pandas objects: their own dtype
        array = np.asarray(value)
    else:
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype == np.int64 and (array.size == 0 or (
                array.min() >= np.iinfo(np.int32).min and array.max() <= np.iinfo(np.int32).max)):
            array = array.astype(np.int32)
    if array.dtype == object:
        raise TypeError(f"A dataset element must be numbers or strings of one shape; this "
                        f"value gives a numpy object array (ragged or mixed). Received: "
                        f"{value!r:.200}")
    return array[()] if array.ndim == 0 else array


def take_rows(leaf, index):
    rows = leaf[index]
    if isinstance(rows, np.ndarray) and rows.dtype.kind in "US":
        rows = rows.astype(object)  # batches of strings are arrays of Python str
    return rows


def stack_component(leaves, path):
    """Stack one component of a batch's elements along a new first axis."""
    shape = np.shape(leaves[0])
    for i, leaf in enumerate(leaves):
        if np.shape(leaf) != shape:
            raise ValueError(f"Cannot batch elements of different shapes: component {path} "
                             f"has shape {shape} in the batch's element 0 and "
                             f"{np.shape(leaf)} in element {i}. Resize or pad the elements "
                             f"first (e.g. in a map), or batch with batch_size=1.")
    if isinstance(leaves[0], (str, bytes)):
        stacked = np.empty(len(leaves), dtype=object)
        stacked[:] = leaves
        return stacked
    stacked = np.stack(leaves)
    if stacked.dtype.kind in "US":
        stacked = stacked.astype(object)
    return stacked


def pad_component(leaves, path, padded_shape, padding_value):
    """Stack one component, padding each element at the end of every axis to the longest
    in the batch, or to ``padded_shape``'s fixed sizes (None or -1: the longest)."""
    shapes = [np.shape(leaf) for leaf in leaves]
    rank = len(shapes[0])
    for i, shape in enumerate(shapes):
        if len(shape) != rank:
            raise ValueError(f"padded_batch: component {path} has rank {rank} in the batch's "
                             f"element 0 and rank {len(shape)} in element {i}; padding cannot "
                             f"change a rank.")
    target = tuple(max(dims) for dims in zip(*shapes))
    if padded_shape is not None:
        padded_shape = tuple(padded_shape)
        if len(padded_shape) != rank:
            raise ValueError(f"padded_batch: padded_shapes gives component {path} the shape "
                             f"{padded_shape}, but its elements have rank {rank}.")
        target = tuple(longest if want is None or want == -1 else int(want)
                       for longest, want in zip(target, padded_shape))
        for i, shape in enumerate(shapes):
            if any(got > want for got, want in zip(shape, target)):
                raise ValueError(f"padded_batch: component {path} has shape {shape} in the "
                                 f"batch's element {i}, larger than padded_shapes' "
                                 f"{padded_shape}.")
    first = np.asarray(leaves[0])
    if first.dtype.kind in "USO":
        dtype, fill = object, "" if padding_value is None else padding_value
    else:
        dtype, fill = first.dtype, 0 if padding_value is None else padding_value
    padded = np.full((len(leaves),) + target, fill, dtype=dtype)
    for i, (leaf, shape) in enumerate(zip(leaves, shapes)):
        padded[(i,) + tuple(slice(0, size) for size in shape)] = leaf
    return padded


def batch_elements(elements, padding=None):
    """Stack a list of elements of one structure into a batch; ``padding``, a list of
    ``(padded_shape, padding_value)`` per component, pads them instead (padded_batch)."""
    first = elements[0]
    structure = structure_of(first)
    for i, element in enumerate(elements):
        if structure_of(element) != structure:
            raise ValueError(f"Cannot batch elements of different structures: element 0 of "
                             f"the batch is {describe(first)} and element {i} is "
                             f"{describe(element)}.")
    columns = [list(column) for column in zip(*[flatten(element) for element in elements])]
    paths = leaf_paths(first, "element")
    if padding is None:
        stacked = [stack_component(column, path) for column, path in zip(columns, paths)]
    else:
        stacked = [pad_component(column, path, shape, value)
                   for column, path, (shape, value) in zip(columns, paths, padding)]
    return pack(first, iter(stacked))


def describe(element):
    return repr(map_structure(lambda leaf: f"<shape {np.shape(leaf)}>", element))


class TensorSpec:
    """The type of one component of an element, for ``from_generator``'s
    ``output_signature`` (as ``tf.TensorSpec``).

    Args:
        shape: tuple of ints or None (None for a dimension of any size), or None for any
            shape.
        dtype: numpy dtype or its name; ``"string"`` for Python strings.
        name: optional name, kept for reference.
    """

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = None if shape is None else tuple(
            None if dim is None else int(dim) for dim in shape)
        self.dtype = np.dtype(object) if dtype in ("string", str) else np.dtype(dtype)
        self.name = name

    def conform(self, value, where):
        if self.dtype == object:
            if isinstance(value, bytes):
                value = value.decode()
            array = np.asarray(value, dtype=object)
        else:
            try:
                array = np.asarray(value, dtype=self.dtype)
            except (TypeError, ValueError) as error:
                raise TypeError(f"{where} cannot be converted to {self.dtype}: "
                                f"{error}") from None
        if self.shape is not None and (array.ndim != len(self.shape) or any(
                want is not None and got != want for got, want in zip(array.shape, self.shape))):
            raise ValueError(f"{where} has shape {array.shape}, which does not match the "
                             f"output_signature's shape {self.shape}.")
        return array[()] if array.ndim == 0 else array

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype}, name={self.name!r})"


def shapes_for_types(shapes, count, what="from_generator: output_shapes",
                     per="output_types"):
    """The ``count`` shapes a nested ``shapes`` argument gives, one per component. A shape
    is itself a tuple, so the nesting is read against the number of components."""
    found = [shapes] if count == 1 else list(_iter_shapes(shapes))
    if len(found) != count:
        raise ValueError(f"{what} has {len(found)} shapes for {count} {per}. Received: "
                         f"{shapes!r}")
    return found


def _iter_shapes(value):
    if isinstance(value, dict):
        for key in sorted_keys(value):
            yield from _iter_shapes(value[key])
    elif isinstance(value, (tuple, list)) and all(
            dim is None or isinstance(dim, numbers.Integral) for dim in value):
        yield value
    elif value is None:
        yield None
    else:
        for item in value:
            yield from _iter_shapes(item)


def conform_to_signature(item, signature, count):
    """Check a generated element against ``output_signature`` and cast it to its dtypes."""
    if isinstance(signature, TensorSpec):
        return signature.conform(item, f"from_generator: element {count}")
    if isinstance(signature, tuple):
        if isinstance(item, list):
            item = tuple(item)
        if isinstance(item, tuple) and len(item) == len(signature):
            return tuple(conform_to_signature(part, spec, count)
                         for part, spec in zip(item, signature))
    elif isinstance(item, dict) and set(item) == set(signature):
        return {key: conform_to_signature(item[key], signature[key], count)
                for key in signature}
    raise TypeError(f"from_generator: element {count} does not match output_signature "
                    f"{signature!r}. Received: {type(item).__name__} {item!r:.200}")
