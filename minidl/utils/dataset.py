"""A small ``tf.data.Dataset``: lazy, re-iterable input pipelines of numpy elements.

Keras programs build their input with ``tf.data.Dataset.from_tensor_slices(...)
.shuffle(...).batch(...).prefetch(...)`` and hand it to ``fit``. This module gives minidl
that part of the API, in pure Python and numpy: each element is a numpy array (or numpy
scalar, or Python ``str``), a tuple of elements or a dict of them, as in tf.data.

Design: a Dataset is a node holding a function that opens a fresh iterator over its
elements, so iterating a second time starts over, as ``fit`` needs for its epochs. A
transformation wraps its parent's function. Datasets of in-memory arrays also offer random
access (``_access``, which returns a length and a gather function for one pass): take,
skip, shuffle, zip and batch keep it, so ``from_tensor_slices(...).shuffle(n).batch(b)``
gathers each batch with one fancy index per array instead of stacking ``b`` slices one by
one. Shuffling draws the same buffer algorithm on indices there as on elements elsewhere,
so both paths give the same order for the same seed. What an element is (nested
structures, numpy conversion, stacking) lives in :mod:`minidl.utils.dataset_structure`.
"""
import builtins
import collections
import itertools
import numbers
import os
import queue
import threading

import numpy as np

from minidl.utils.dataset_structure import (TensorSpec, batch_elements, batch_length,
                                            conform_to_signature, describe, flatten,
                                            leaf_paths, map_structure, pack, shapes_for_types,
                                            structure_of, take_rows, to_leaf)
from minidl.utils.random import _check_seed, global_rng

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2

# A range long enough to count any stream: Dataset.enumerate zips with it.
_COUNT_FOREVER = 2 ** 62


def _call_with_element(fn, element):
    # tf.data passes a tuple's components as positional arguments, anything else as one.
    return fn(*element) if type(element) is tuple else fn(element)


def _check_int(value, name, minimum=None, hint=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int. Received: {name}={value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}{hint}. Received: {name}={value}")
    return value


def _check_callable(fn, name):
    if not callable(fn):
        raise TypeError(f"`{name}` must be callable. Received: {name}={fn!r}")


def _uniforms(rng):
    while True:
        yield from rng.random(1024).tolist()


def _shuffle_stream(items, buffer_size, pick_rng, drain_rng):
    """tf.data's shuffle buffer: fill it with the first ``buffer_size`` items, then emit a
    uniformly chosen buffered item and put the next input item in its place; once the
    input ends, emit what the buffer holds in a random order (``drain_rng``'s permutation).
    """
    uniforms = _uniforms(pick_rng)
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        at = min(int(next(uniforms) * buffer_size), buffer_size - 1)
        yield buffer[at]
        buffer[at] = item
    for at in drain_rng.permutation(len(buffer)).tolist():
        yield buffer[at]


def _shuffled_order(length, buffer_size, pick_rng, drain_rng):
    """The order ``_shuffle_stream`` gives ``range(length)``, without a Python loop: the
    item a step emits is the one its slot received last (the slot's first pick emits the
    item the fill put there)."""
    fill = min(length, buffer_size)
    steps = length - fill
    held = np.arange(fill)  # what each slot holds once the input ends
    emitted = np.empty(steps, dtype=np.intp)
    if steps:
        picks = np.minimum((pick_rng.random(steps) * buffer_size).astype(np.intp),
                           buffer_size - 1)
        by_slot = np.argsort(picks, kind="stable")  # steps grouped by slot, in time order
        slots = picks[by_slot]
        new_slot = np.empty(steps, dtype=bool)
        new_slot[0] = True
        new_slot[1:] = slots[1:] != slots[:-1]
        # Step k puts item fill + k into its slot; a later pick of that slot emits it.
        previous_step = np.concatenate(([0], by_slot[:-1]))
        emitted[by_slot] = np.where(new_slot, slots, fill + previous_step)
        last_of_slot = np.append(new_slot[1:], True)
        held[slots[last_of_slot]] = fill + by_slot[last_of_slot]
    return np.concatenate((emitted, held[drain_rng.permutation(fill)]))


def _parallel_map(elements, fn, workers):
    """Apply ``fn`` on a thread pool, keeping the input order (numpy and Pillow release the
    GIL, so image decoding and array maths overlap)."""
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(workers, thread_name_prefix="minidl-map")
    pending = collections.deque()
    try:
        for element in elements:
            pending.append(pool.submit(fn, element))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


_ELEMENT, _END, _ERROR = "element", "end", "error"


def _put_unless_stopped(slots, item, stop):
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.05)
            return True
        except queue.Full:
            pass
    return False


def _prefetched(make_iterator, buffer_size):
    """Iterate ``make_iterator()`` on a background thread that keeps up to ``buffer_size``
    elements ready. An exception in the pipeline is raised here, in the consumer; a consumer
    that stops early stops the thread (it never blocks on a full queue forever)."""
    slots = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def produce():
        source = None
        try:
            source = iter(make_iterator())
            for element in source:
                if not _put_unless_stopped(slots, (_ELEMENT, element), stop):
                    return
            _put_unless_stopped(slots, (_END, None), stop)
        except BaseException as error:  # noqa: B036 - handed to the consumer to raise
            _put_unless_stopped(slots, (_ERROR, error), stop)
        finally:
            if hasattr(source, "close"):
                source.close()

    producer = threading.Thread(target=produce, name="minidl-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, payload = slots.get()
            if kind is _ELEMENT:
                yield payload
            elif kind is _END:
                return
            else:
                raise payload
    finally:
        stop.set()


class Dataset:
    """A lazy, re-iterable sequence of elements, shaped like ``tf.data.Dataset``.

    Build one with :meth:`from_tensor_slices`, :meth:`from_tensors`, :meth:`range`,
    :meth:`from_generator` or :meth:`zip`, then chain transformations, each returning a
    new Dataset: ``map``, ``filter``, ``shuffle``, ``batch``, ``unbatch``, ``take``,
    ``skip``, ``repeat``, ``cache``, ``prefetch``, ``concatenate``, ``enumerate``,
    ``flat_map``, ``padded_batch``, ``shard``; ``reduce`` folds it to one value. Nothing
    runs until the dataset is iterated; every iteration starts over.

    Elements are numpy arrays or numpy scalars (strings as Python ``str``), or tuples and
    dicts of them. A batched dataset yields numpy arrays with a leading batch axis, so
    ``for x, y in dataset.batch(32)`` feeds ``model.train_on_batch(x, y)``, and ``fit``
    accepts the dataset itself.

    Example:
        >>> ds = Dataset.from_tensor_slices((x_train, y_train))
        >>> ds = ds.shuffle(1024, seed=0).batch(32).prefetch(AUTOTUNE)
        >>> len(ds)  # number of batches
        1875
        >>> for x, y in ds:
        ...     model.train_on_batch(x, y)
    """

    AUTOTUNE = AUTOTUNE
    INFINITE = INFINITE_CARDINALITY
    UNKNOWN = UNKNOWN_CARDINALITY

    def __init__(self, make_iterator, cardinality, access=None, static_access=False):
        # Built by the constructors below, not by users. `access`, when given, returns
        # (length, gather) for one pass: gather(i) is element i and gather(index_array)
        # the stacked elements. `static_access`: every pass sees the same elements.
        self._make_iterator = make_iterator
        self._cardinality = int(cardinality)
        self._access = access
        self._static_access = static_access and access is not None

    @classmethod
    def _from_access(cls, access, cardinality, static_access=False):
        def elements():
            length, gather = access()
            for i in builtins.range(length):
                yield gather(i)
        return cls(elements, cardinality, access, static_access)

    # ---- sources ----

    @staticmethod
    def from_tensor_slices(tensors, name=None):
        """A dataset whose elements are slices of ``tensors`` along their first axis.

        Args:
            tensors: an array (or list, converted as ``tf.constant`` would), or a tuple or
                dict of them (nested freely); every array must have the same length.
            name: unused, for compatibility.
        Returns:
            A Dataset of ``len(tensors)`` elements with the structure of ``tensors``.
        Raises:
            ValueError: the arrays differ in length, or one is a scalar.

        Example:
            >>> ds = Dataset.from_tensor_slices(({"a": np.arange(3)}, np.ones(3)))
            >>> next(iter(ds))
            ({'a': np.int64(0)}, np.float64(1.0))
        """
        del name
        tensors = map_structure(to_leaf, tensors)
        leaves = flatten(tensors)
        if not leaves:
            raise ValueError(f"from_tensor_slices needs at least one array. Received: "
                             f"tensors={tensors!r}")
        length = batch_length(leaves, leaf_paths(tensors, "tensors"), "from_tensor_slices",
                              " Use from_tensors for a single element, or pass arrays.")

        def gather(index):
            return pack(tensors, iter([take_rows(leaf, index) for leaf in leaves]))
        return Dataset._from_access(lambda: (length, gather), length, static_access=True)

    @staticmethod
    def from_tensors(tensors, name=None):
        """A dataset of exactly one element, ``tensors`` (a structure of arrays)."""
        del name
        element = map_structure(to_leaf, tensors)
        return Dataset(lambda: iter((element,)), 1)

    @staticmethod
    def range(*args, dtype="int64", name=None):
        """A dataset of integers, as Python's ``range(start, stop, step)``.

        Example:
            >>> [int(i) for i in Dataset.range(1, 8, 3)]
            [1, 4, 7]
        """
        del name
        for arg in args:
            if isinstance(arg, bool) or not isinstance(arg, numbers.Integral):
                raise TypeError(f"Dataset.range takes ints (start, stop, step). Received: "
                                f"{args!r}")
        if not 1 <= len(args) <= 3:
            raise TypeError(f"Dataset.range takes 1 to 3 ints (start, stop, step). "
                            f"Received: {len(args)} arguments")
        numbers_ = builtins.range(*(int(arg) for arg in args))
        dtype = np.dtype(dtype)

        def gather(index):
            values = numbers_.start + np.asarray(index) * numbers_.step
            return values.astype(dtype) if np.ndim(values) else dtype.type(values)
        return Dataset._from_access(lambda: (len(numbers_), gather), len(numbers_),
                                    static_access=True)

    @staticmethod
    def from_generator(generator, output_types=None, output_shapes=None, args=None,
                       output_signature=None, name=None):
        """A dataset of the elements a Python generator yields.

        Args:
            generator: a callable returning an iterator (a generator function); it is
                called again at each iteration of the dataset, with ``*args``.
            output_signature: optional structure of :class:`TensorSpec` (or of dtypes):
                each element is checked against it and converted to its dtypes.
            output_types, output_shapes: the older form of ``output_signature``.
            args: tuple of arguments for ``generator``.
            name: unused, for compatibility.
        Returns:
            A Dataset of unknown cardinality.
        """
        del name
        _check_callable(generator, "generator")
        if output_signature is None and output_types is not None:
            types = flatten(output_types)
            shapes = [None] * len(types) if output_shapes is None else shapes_for_types(
                output_shapes, len(types))
            output_signature = pack(output_types, iter(
                [TensorSpec(shape, dtype) for shape, dtype in zip(shapes, types)]))
        elif output_signature is not None:
            output_signature = map_structure(
                lambda spec: spec if isinstance(spec, TensorSpec) else TensorSpec(None, spec),
                output_signature)
        call_args = () if args is None else tuple(args)

        def elements():
            source = generator(*call_args)
            try:
                source = iter(source)
            except TypeError:
                raise TypeError(f"from_generator: `generator` must return an iterator; it "
                                f"returned {type(source).__name__}.") from None
            for count, item in enumerate(source):
                if output_signature is None:
                    yield map_structure(to_leaf, item)
                else:
                    yield conform_to_signature(item, output_signature, count)
        return Dataset(elements, UNKNOWN_CARDINALITY)

    @staticmethod
    def zip(*datasets, name=None):
        """A dataset of tuples (or dicts) of the given datasets' elements, stopping with the
        shortest.

        Args:
            *datasets: datasets, or one tuple or dict of datasets (nested freely).
        Example:
            >>> a, b = Dataset.range(3), Dataset.range(10, 13)
            >>> [(int(i), int(j)) for i, j in Dataset.zip(a, b)]
            [(0, 10), (1, 11), (2, 12)]
        """
        del name
        # As tf.data: one argument is the structure itself (a tuple or dict of datasets,
        # or a lone dataset, zipped with nothing); several are a tuple.
        structure = datasets[0] if len(datasets) == 1 else tuple(datasets)
        members = flatten(structure)
        if not members:
            raise ValueError("Dataset.zip needs at least one dataset. Received: nothing")
        for path, member in zip(leaf_paths(structure, "datasets"), members):
            if not isinstance(member, Dataset):
                raise TypeError(f"Dataset.zip takes Datasets. Received: {path} of type "
                                f"{type(member).__name__}")
        cardinality = INFINITE_CARDINALITY
        for member in members:
            count = member._cardinality
            if count == UNKNOWN_CARDINALITY:
                cardinality = UNKNOWN_CARDINALITY
                break
            if count != INFINITE_CARDINALITY and (
                    cardinality == INFINITE_CARDINALITY or count < cardinality):
                cardinality = count

        if all(member._access is not None for member in members):
            def access():
                opened = [member._access() for member in members]
                length = min(length for length, _ in opened)
                return length, lambda index: pack(structure, iter(
                    [gather(index) for _, gather in opened]))
            return Dataset._from_access(access, cardinality, static_access=all(
                member._static_access for member in members))

        def elements():
            iterators = [iter(member) for member in members]
            while True:
                row = []
                for iterator in iterators:
                    try:
                        row.append(next(iterator))
                    except StopIteration:
                        return
                yield pack(structure, iter(row))
        return Dataset(elements, cardinality)

    # ---- transformations ----

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """Apply ``map_func`` to every element.

        A tuple element's components are passed as positional arguments
        (``ds.map(lambda x, y: (x / 255, y))``), any other element as one argument. A list
        returned becomes a tuple; Python numbers become numpy values.

        Args:
            map_func: the function.
            num_parallel_calls: None or 1 to map in the calling thread; an int or
                ``AUTOTUNE`` to map on that many threads (``AUTOTUNE``: one per CPU, at
                most 8). The output order is the input order either way.
            deterministic: accepted for compatibility; minidl always keeps the order.
            name: unused, for compatibility.
        """
        del deterministic, name
        _check_callable(map_func, "map_func")
        workers = _parallel_calls(num_parallel_calls)

        def apply(element):
            result = _call_with_element(map_func, element)
            if isinstance(result, list):
                result = tuple(result)
            return map_structure(to_leaf, result)

        def elements():
            if workers == 1:
                return builtins.map(apply, self)
            return _parallel_map(self, apply, workers)
        return Dataset(elements, self._cardinality)

    def filter(self, predicate, name=None):
        """Keep the elements for which ``predicate`` (called as ``map_func`` is) returns
        True. The cardinality becomes unknown."""
        del name
        _check_callable(predicate, "predicate")

        def keep(element):
            verdict = np.asarray(_call_with_element(predicate, element))
            if verdict.shape != () or verdict.dtype != np.bool_:
                raise TypeError(f"filter: `predicate` must return a scalar bool. Received: "
                                f"a value of dtype {verdict.dtype} and shape {verdict.shape}")
            return bool(verdict)
        return self._derived(Dataset(lambda: builtins.filter(keep, self), UNKNOWN_CARDINALITY))

    def flat_map(self, map_func, name=None):
        """Map each element to a Dataset (with ``map_func``) and chain their elements."""
        del name
        _check_callable(map_func, "map_func")

        def elements():
            for element in self:
                inner = _call_with_element(map_func, element)
                if not isinstance(inner, Dataset):
                    raise TypeError(f"flat_map: `map_func` must return a Dataset. Received: "
                                    f"{type(inner).__name__}")
                yield from inner
        return Dataset(elements, UNKNOWN_CARDINALITY)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None, name=None):
        """Combine consecutive elements into batches: numpy arrays with a new first axis of
        ``batch_size`` (the last batch may be smaller, unless ``drop_remainder``).

        Components must have the same shape in every element of a batch. Strings give
        object arrays of Python ``str``.
        """
        del num_parallel_calls, deterministic, name
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        count = self._cardinality
        if count >= 0:
            count = count // batch_size if drop_remainder else -(-count // batch_size)

        if self._access is not None:
            def elements():
                length, gather = self._access()
                stop = length - length % batch_size if drop_remainder else length
                for start in builtins.range(0, stop, batch_size):
                    yield gather(np.arange(start, min(start + batch_size, length)))
        else:
            def elements():
                iterator = iter(self)
                while True:
                    chunk = list(itertools.islice(iterator, batch_size))
                    if not chunk or (drop_remainder and len(chunk) < batch_size):
                        return
                    yield batch_elements(chunk)
        batched = Dataset(elements, count)
        batched._batch_size = batch_size  # split_dataset unbatches what was batched
        return batched

    def padded_batch(self, batch_size, padded_shapes=None, padding_values=None,
                     drop_remainder=False, name=None):
        """Batch elements whose components differ in length, padding them at the end of
        each axis.

        Args:
            batch_size: int >= 1.
            padded_shapes: None to pad every axis to the longest in the batch, or one shape
                per component (in the element's structure), e.g. ``([None], ())``; a None or
                -1 dimension pads to the longest, an int to exactly that size.
            padding_values: None for 0 (and ``""`` for strings), one scalar for every
                component, or one per component in the element's structure.
            drop_remainder: drop a last batch smaller than ``batch_size``.
            name: unused, for compatibility.

        Example:
            >>> ds = Dataset.range(1, 4).map(lambda n: np.arange(n))
            >>> next(iter(ds.padded_batch(3))).tolist()
            [[0, 0, 0], [0, 1, 0], [0, 1, 2]]
        """
        del name
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        count = self._cardinality
        if count >= 0:
            count = count // batch_size if drop_remainder else -(-count // batch_size)

        def padding_for(element):
            components = len(flatten(element))
            shapes = [None] * components if padded_shapes is None else shapes_for_types(
                padded_shapes, components, "padded_batch: padded_shapes", "components")
            if padding_values is None or not isinstance(padding_values, (tuple, dict)):
                values_ = [padding_values] * components
            else:
                values_ = flatten(padding_values)
                if len(values_) != components:
                    raise ValueError(f"padded_batch: padding_values has {len(values_)} values "
                                     f"for elements of {components} components. Received: "
                                     f"padding_values={padding_values!r}")
            return list(zip(shapes, values_))

        def elements():
            iterator = iter(self)
            padding = None
            while True:
                chunk = list(itertools.islice(iterator, batch_size))
                if not chunk or (drop_remainder and len(chunk) < batch_size):
                    return
                padding = padding or padding_for(chunk[0])
                yield batch_elements(chunk, padding)
        batched = Dataset(elements, count)
        batched._batch_size = batch_size
        return batched

    def reduce(self, initial_state, reduce_func, name=None):
        """Fold the elements into one value: ``state = reduce_func(state, element)`` from
        ``initial_state`` on; returns the final state (as numpy values).

        Example:
            >>> int(Dataset.range(5).reduce(0, lambda total, x: total + x))
            10
        """
        del name
        _check_callable(reduce_func, "reduce_func")
        state = map_structure(to_leaf, initial_state)
        for element in self:
            state = reduce_func(state, element)
            if isinstance(state, list):
                state = tuple(state)
            state = map_structure(to_leaf, state)
        return state

    def shard(self, num_shards, index, name=None):
        """Every ``num_shards``-th element, starting at element ``index`` (one worker's part
        of the data)."""
        del name
        num_shards = _check_int(num_shards, "num_shards", minimum=1)
        index = _check_int(index, "index", minimum=0)
        if index >= num_shards:
            raise ValueError(f"`index` must be lower than `num_shards`. Received: "
                             f"index={index}, num_shards={num_shards}")
        total = self._cardinality
        if total >= 0:
            total = max(0, -(-(total - index) // num_shards))
        if self._access is not None:
            def access():
                length, gather = self._access()
                return (max(0, -(-(length - index) // num_shards)),
                        lambda rows: gather(np.asarray(rows) * num_shards + index))
            return self._derived(Dataset._from_access(access, total, self._static_access))
        return self._derived(Dataset(
            lambda: itertools.islice(self, index, None, num_shards), total))

    def unbatch(self, name=None):
        """Split each element (a batch) into its rows: the inverse of ``batch``."""
        del name

        def elements():
            for element in self:
                leaves = flatten(element)
                rows = batch_length(leaves, leaf_paths(element, "element"), "unbatch")
                for i in builtins.range(rows):
                    yield pack(element, iter([leaf[i] for leaf in leaves]))
        return Dataset(elements, UNKNOWN_CARDINALITY)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """Shuffle with a buffer of ``buffer_size`` elements, as tf.data does: the output is
        a random pick from the buffer, refilled from the input. A buffer at least as long
        as the dataset gives a uniform shuffle.

        Args:
            buffer_size: int >= 1.
            seed: int in ``[0, 2**32)`` for a reproducible order, or None to draw one from
                minidl's global generator (so ``set_random_seed`` fixes it too).
            reshuffle_each_iteration: True for a new order at each iteration (each epoch),
                still reproducible for a seed; False to repeat the first order.
            name: unused, for compatibility.
        """
        del name
        buffer_size = _check_int(buffer_size, "buffer_size", minimum=1)
        seed = int(global_rng().integers(2 ** 32)) if seed is None else _check_seed(seed)
        passes = itertools.count()

        def generators():
            # One stream picks from the buffer, one orders what is left at the end: the
            # in-memory path draws the same numbers as the element stream.
            key = [seed, next(passes)] if reshuffle_each_iteration else [seed]
            return [np.random.default_rng(child)
                    for child in np.random.SeedSequence(key).spawn(2)]

        if self._access is not None:
            def access():
                length, gather = self._access()
                order = _shuffled_order(length, buffer_size, *generators())
                return length, lambda index: gather(order[index])
            return self._derived(Dataset._from_access(access, self._cardinality))
        return self._derived(Dataset(
            lambda: _shuffle_stream(self, buffer_size, *generators()), self._cardinality))

    def take(self, count, name=None):
        """The first ``count`` elements (all of them for ``count=-1``)."""
        del name
        count = _check_int(count, "count", minimum=-1, hint=" (-1 for all)")
        if count == -1:
            return self
        total = self._cardinality
        if total == INFINITE_CARDINALITY:
            total = count
        elif total >= 0:
            total = min(total, count)
        if self._access is not None:
            def access():
                length, gather = self._access()
                return min(length, count), gather
            return self._derived(Dataset._from_access(access, total, self._static_access))
        return self._derived(Dataset(lambda: itertools.islice(self, count), total))

    def skip(self, count, name=None):
        """All elements but the first ``count`` (none for ``count=-1``)."""
        del name
        count = _check_int(count, "count", minimum=-1, hint=" (-1 for all)")
        if count == -1:
            return self._derived(Dataset(lambda: iter(()), 0))
        total = self._cardinality
        if total >= 0:
            total = max(total - count, 0)
        if self._access is not None:
            def access():
                length, gather = self._access()
                return max(length - count, 0), lambda index: gather(index + count)
            return self._derived(Dataset._from_access(access, total, self._static_access))
        return self._derived(Dataset(lambda: itertools.islice(self, count, None), total))

    def repeat(self, count=None, name=None):
        """The dataset ``count`` times over; forever for None or -1. Each repetition
        iterates again, so a shuffle upstream gives a new order per repetition."""
        del name
        count = -1 if count is None else _check_int(count, "count", minimum=-1,
                                                    hint=" (-1 or None for forever)")
        total = self._cardinality
        if count == -1:
            total = 0 if total == 0 else INFINITE_CARDINALITY
        elif count == 0:
            total = 0
        elif total >= 0:
            total *= count

        def elements():
            done = 0
            while count == -1 or done < count:
                produced = False
                for element in self:
                    produced = True
                    yield element
                done += 1
                if not produced:  # an empty dataset repeated forever is still empty
                    return
        return self._derived(Dataset(elements, total))

    def cache(self, filename="", name=None):
        """Keep the elements in memory after the first complete iteration; later iterations
        replay them (the upstream maps and file reads run once).

        ``filename`` is accepted for compatibility, but minidl always caches in memory and
        writes no file. An iteration stopped early caches nothing.
        """
        del filename, name
        if self._static_access:
            return self._derived(Dataset._from_access(self._access, self._cardinality, True))
        stored = []

        def elements():
            if stored:
                yield from stored[0]
                return
            recorded = []
            for element in self:
                recorded.append(element)
                yield element
            if not stored:
                stored.append(recorded)
        return self._derived(Dataset(elements, self._cardinality))

    def prefetch(self, buffer_size, name=None):
        """Prepare up to ``buffer_size`` elements ahead on a background thread while the
        consumer works (``AUTOTUNE``: 2). Errors in the pipeline are raised in the
        consumer; ``buffer_size=0`` prefetches nothing."""
        del name
        buffer_size = _check_int(buffer_size, "buffer_size", minimum=-1, hint=" (AUTOTUNE is -1)")
        if buffer_size == 0:
            return self
        slots = 2 if buffer_size == AUTOTUNE else buffer_size
        return self._derived(Dataset(lambda: _prefetched(self.__iter__, slots),
                                     self._cardinality))

    def concatenate(self, dataset, name=None):
        """This dataset's elements followed by ``dataset``'s (of the same structure)."""
        del name
        if not isinstance(dataset, Dataset):
            raise TypeError(f"concatenate takes a Dataset. Received: dataset of type "
                            f"{type(dataset).__name__}")
        counts = (self._cardinality, dataset._cardinality)
        if INFINITE_CARDINALITY in counts:
            total = INFINITE_CARDINALITY
        elif UNKNOWN_CARDINALITY in counts:
            total = UNKNOWN_CARDINALITY
        else:
            total = sum(counts)

        def elements():
            structures = set()  # the first dataset's element structure, once seen
            for element in self:
                structures.add(structure_of(element))
                yield element
            for element in dataset:
                if structures and structure_of(element) not in structures:
                    raise TypeError(f"concatenate: the datasets' elements differ in "
                                    f"structure; the second yields {describe(element)}.")
                yield element
        return Dataset(elements, total)

    def enumerate(self, start=0, name=None):
        """Pairs ``(index, element)``, the index an int64 counting from ``start``."""
        del name
        start = _check_int(start, "start")
        return Dataset.zip(Dataset.range(start, start + _COUNT_FOREVER), self)

    def apply(self, transformation_func):
        """``transformation_func(self)``, which must return a Dataset."""
        result = transformation_func(self)
        if not isinstance(result, Dataset):
            raise TypeError(f"apply: `transformation_func` must return a Dataset. "
                            f"Received: {type(result).__name__}")
        return result

    def _derived(self, child):
        """``child``, a transformation that keeps this dataset's kind of elements: a batch
        size stays known through it (split_dataset unbatches by it)."""
        if hasattr(self, "_batch_size"):
            child._batch_size = self._batch_size
        return child

    # ---- reading ----

    def __iter__(self):
        return iter(self._make_iterator())

    def as_numpy_iterator(self):
        """An iterator over the elements (already numpy values)."""
        return iter(self)

    def cardinality(self):
        """The number of elements: an int, or ``INFINITE_CARDINALITY`` (-1) or
        ``UNKNOWN_CARDINALITY`` (-2) when it is not known without iterating."""
        return self._cardinality

    def __len__(self):
        if self._cardinality == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if self._cardinality == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return self._cardinality

    def __bool__(self):
        return True  # as tf.data: an unknown length must not make `if dataset:` raise

    def __repr__(self):
        count = {INFINITE_CARDINALITY: "infinite",
                 UNKNOWN_CARDINALITY: "unknown"}.get(self._cardinality, self._cardinality)
        return f"<Dataset cardinality={count}>"


def _parallel_calls(value):
    if value is None:
        return 1
    value = _check_int(value, "num_parallel_calls", minimum=-1, hint=" (AUTOTUNE is -1)")
    if value == AUTOTUNE:
        return max(1, min(os.cpu_count() or 1, 8))
    if value == 0:
        raise ValueError("`num_parallel_calls` must be >= 1 or AUTOTUNE. Received: "
                         "num_parallel_calls=0")
    return value
