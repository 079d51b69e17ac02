"""What fit / evaluate / predict accept as data, turned into batches for the trainer.

Two kinds of source, one interface (``train_epoch``, ``eval_batches``, ``num_batches``):
- arrays (``ArrayBatches``): checked once, whole, and gathered by the
  :class:`~minidl.models.data.Batcher` into reused buffers (the fast path);
- batches made by the user (``StreamBatches``): a :class:`~minidl.utils.PyDataset`, a Python
  generator or iterator (read once), or any other iterable of batches (a torch DataLoader,
  a ``minidl.utils.Dataset``: iterated anew every pass). Each batch is ``x``, ``(x,)``,
  ``(x, y)`` or ``(x, y, sample_weight)`` of array-likes, checked as arrays are and against
  the first batch (same sample shapes and dtypes), and given to the step without a copy
  when it is already C-contiguous in the type of the model's input (a float type, or an
  integer type for an input of ids: see ``models.data.prepare_x``).

Epochs and passes follow Keras 3 (keras/src/trainers/epoch_iterator.py): without
``steps_per_epoch`` an epoch is one pass; with it, an epoch takes that many batches and the
next one goes on where it stopped, a new pass starting when one ends. A pass that ends inside
an epoch ends the epoch early: for arrays with the warning of trainer.py, for other data with
Keras' "Your input ran out of data" warning. A generator can be read once only: when it is
exhausted, fit warns and stops training (as Keras 2 did; Keras 3 restarts it with the batches
it had peeked at, which trains on those again).
"""
import collections.abc
import contextlib
import itertools
import numbers
import warnings

import numpy as np

from minidl.layers.node import numpy_dtype
from minidl.models.data import Arrays
from minidl.utils.py_dataset import PyDataset, iterate_batches

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your data set "
           "or generator can generate at least `steps_per_epoch * epochs` batches ({steps} * "
           "{epochs} here). A Python generator can be read once only: to train several "
           "epochs over the same data, pass an object that can be iterated again (a "
           "PyDataset, or a class with __iter__ and __len__).")


def is_batch_source(data):
    """Whether ``data`` is batches made by the user rather than arrays: a PyDataset, an
    iterator, or an iterable that no array conversion reads (not a list, tuple, dict,
    array, or an object with ``__array__`` such as a torch tensor)."""
    if isinstance(data, PyDataset):
        return True
    if data is None or isinstance(data, (np.ndarray, list, tuple, dict, str, bytes,
                                         numbers.Number)):
        return False
    if hasattr(data, "__array__") or hasattr(data, "__array_interface__"):
        return False
    return isinstance(data, (collections.abc.Iterator, collections.abc.Iterable))


def describe_source(data):
    if isinstance(data, PyDataset):
        return "a PyDataset"
    if isinstance(data, collections.abc.Iterator):
        return "a Python generator or iterator"
    return f"an iterable of batches ({type(data).__name__})"


def check_stream_arguments(x, what, **unused):
    """Keras' errors for arguments that only arrays take, when ``x`` is batches."""
    for name, value in unused.items():
        if value is None or (name == "validation_split" and not value):
            continue
        if name == "validation_split":
            raise ValueError(f"validation_split is only supported for NumPy arrays; {what} "
                             f"is {describe_source(x)}. Pass validation_data instead. "
                             f"Received: validation_split={value!r}")
        hint = {"y": "the targets", "sample_weight": "the sample weights"}.get(name)
        where = (f"{hint} must come in each batch, as (x, y) or (x, y, sample_weight)"
                 if hint else "the batches have their own size")
        raise ValueError(f"`{name}` is not supported when {what} is {describe_source(x)}: "
                         f"{where}. Received: {name}={_short(value)}")


def _short(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return repr(value)[:80]


# ---- raw batches: one iterator per pass ----

class _PyDatasetPasses:
    """Passes over a PyDataset: indices 0..num_batches-1 (shuffled per pass if asked, from
    the training stream), fetched ahead by its workers."""

    one_shot = False

    def __init__(self, dataset):
        self.dataset = dataset
        count = dataset.num_batches
        if count is not None and (isinstance(count, bool) or
                                  not isinstance(count, numbers.Integral) or count < 0):
            raise ValueError(f"{type(dataset).__name__}'s number of batches (__len__ or "
                             f"num_batches) must be an int >= 0 or None; received {count!r}.")
        self.num_batches = None if count is None else int(count)
        self.endless = count is None

    def new_pass(self, draws):
        if self.endless:
            indices = itertools.count()
        elif draws is not None:
            indices = (int(i) for i in draws.get().permutation(self.num_batches))
        else:
            indices = range(self.num_batches)
        return iterate_batches(self.dataset, indices)

    @staticmethod
    def end_pass(iterator):
        iterator.close()   # stops the workers

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class _IterablePasses:
    """Passes over an iterable (``iter(data)`` each pass), or the one pass of an iterator."""

    endless = False

    def __init__(self, data):
        self.data = data
        self.one_shot = isinstance(data, collections.abc.Iterator)
        count = None
        if not self.one_shot and hasattr(data, "__len__"):
            with contextlib.suppress(TypeError):   # (len() of an iterable without an end)
                count = int(len(data))
        self.num_batches = count

    def new_pass(self, draws):
        return self.data if self.one_shot else iter(self.data)

    @staticmethod
    def end_pass(iterator):
        pass   # the user's iterators: left to them

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


# ---- checked batches ----

class BatchConverter:
    """Turns a batch made by the user into the trainer's ``(xs, ys, ws)``, checked as arrays
    are and against the first batch.

    Args:
        model: the model (a Trainer).
        what: the source's name in messages ("x", "validation_data").
        targets: whether the call reads targets (fit, evaluate) or not (predict).
        class_weight: dict of class weights, applied per batch (fit).
    """

    def __init__(self, model, what, targets=True, class_weight=None):
        self.model, self.what = model, what
        self.targets, self.class_weight = targets, class_weight
        self.signature = None

    def __call__(self, raw, index):
        x, y, weights = self._unpack(raw, index)
        model = self.model
        try:
            if self.targets:
                arrays = model._checked_arrays(x, y, weights, self.class_weight)
            else:
                arrays = Arrays(model._input_arrays(x))
        except (ValueError, TypeError) as err:
            if type(err) not in (ValueError, TypeError):
                raise
            raise type(err)(f"Batch {index} of {self.what}: {err}") from None
        self._check_signature(arrays, index)
        xs = []
        for (x2d, sample_shape), dtype in zip(arrays.inputs, model._input_dtypes()):
            dtype = numpy_dtype(dtype) if isinstance(dtype, str) else dtype
            if x2d.dtype != dtype:
                x2d = x2d.astype(dtype)
            xs.append(x2d.reshape((x2d.shape[0],) + tuple(sample_shape)))
        return xs, arrays.targets or [], arrays.weights or []

    def _unpack(self, raw, index):
        if isinstance(raw, list):
            raw = tuple(raw)
        if not isinstance(raw, tuple):
            return raw, None, None
        if not 1 <= len(raw) <= 3:
            raise ValueError(f"Batch {index} of {self.what} is a tuple of {len(raw)} items; a "
                             f"batch must be x, (x,), (x, y) or (x, y, sample_weight).")
        return raw + (None,) * (3 - len(raw))

    def _check_signature(self, arrays, index):
        parts = [("x", x2d.dtype, sample_shape) for x2d, sample_shape in arrays.inputs]
        parts += [("y", t.dtype, t.shape[1:]) for t in arrays.targets or [] if t is not None]
        parts += [("sample_weight", w.dtype, ()) for w in arrays.weights or [] if w is not None]
        signature = [(name, dtype, tuple(shape)) for name, dtype, shape in parts]
        if self.signature is None:
            self.signature = signature
            return
        if signature == self.signature:
            return
        first, now = self.signature, signature
        if len(first) != len(now):
            raise ValueError(f"Batch {index} of {self.what} holds "
                             f"{[name for name, _, _ in now]}, but batch 0 held "
                             f"{[name for name, _, _ in first]}; every batch must have the "
                             f"same structure.")
        # Dimensions that may change from batch to batch: those the model's inputs leave
        # open (sequences of any length), and all but the last of targets and weights
        # (per-timestep targets follow the input's length).
        inputs = self.model.inputs or []
        free = [[d is None for d in inputs[i].shape[1:]] if i < len(inputs) else
                [False] * len(shape) if name == "x" else
                [True] * max(len(shape) - 1, 0) + [False]
                for i, (name, _, shape) in enumerate(now)]
        for (name, dtype, shape), (_, want_dtype, want_shape), open_dims in zip(
                now, first, free):
            if dtype != want_dtype or len(shape) != len(want_shape) or any(
                    got != want and not open_dim
                    for got, want, open_dim in zip(shape, want_shape, open_dims)):
                raise ValueError(f"Batch {index} of {self.what} does not match batch 0: its "
                                 f"{name} has shape {(None,) + shape} and dtype {dtype}, where "
                                 f"batch 0 had shape {(None,) + want_shape} and dtype "
                                 f"{want_dtype}. Every batch must hold arrays of the same "
                                 f"sample shape and dtype (sizes the model's inputs leave "
                                 f"open, None, may vary).")


# ---- the sources the trainer iterates ----

class ArrayBatches:
    """Batches of checked arrays through a Batcher: the position in the current pass and its
    shuffled order carry over from epoch to epoch (``steps_per_epoch``).

    Args:
        batcher: the call's :class:`~minidl.models.data.Batcher`.
        shuffle: draw a new order of the samples at the start of every pass.
        ran_out: the warning when a pass ends inside an epoch, formatted with ``run``,
            ``steps`` and ``batches``.
    """

    exhausted = False

    def __init__(self, batcher, shuffle=False, ran_out=None):
        self.batcher, self.shuffle, self.ran_out = batcher, shuffle, ran_out
        self.num_batches = batcher.steps
        self.position = 0    # batches of the current pass already taken
        self.order = None

    def train_epoch(self, draws, steps):
        """The batches of one training epoch of ``steps`` (None: one pass)."""
        batcher = self.batcher
        steps = steps or batcher.steps
        if self.position == 0:
            self.order = draws.get().permutation(batcher.n) if self.shuffle else None
        run = min(steps, batcher.steps - self.position)
        for _ in range(run):
            batch = batcher.batch(self.position, self.order)
            self.position = (self.position + 1) % batcher.steps
            yield batch
        if run < steps:
            warnings.warn(self.ran_out.format(run=run, steps=steps, batches=batcher.steps),
                          stacklevel=3)

    def eval_batches(self, steps):
        """The first ``steps`` batches (all when None), in order."""
        batcher = self.batcher
        for step in range(batcher.steps if steps is None else min(steps, batcher.steps)):
            yield batcher.batch(step)

    def close(self):
        pass


class StreamBatches:
    """Batches made by the user (see the module docstring), converted and checked one by one.

    Args:
        data: a PyDataset, an iterator, or an iterable of batches.
        convert: a :class:`BatchConverter`.
        shuffle: shuffle a PyDataset's batch order every pass (other data is not shuffled).
    """

    def __init__(self, data, convert, shuffle=False):
        self.passes = (_PyDatasetPasses(data) if isinstance(data, PyDataset)
                       else _IterablePasses(data))
        self.convert = convert
        self.shuffle = shuffle and isinstance(data, PyDataset)
        self.num_batches = self.passes.num_batches
        self.endless = self.passes.endless
        self.exhausted = False   # a one-shot iterator reached its end
        self._iterator = None
        self._seen = 0           # batches of the current pass taken
        self._peeked = None      # a batch read before the pass to build the model
        self.warned = False      # the ran-out warning was given

    def require_steps(self, steps, steps_name, what):
        if self.endless and steps is None:
            raise ValueError(f"{what} is a PyDataset without end (its num_batches is None), "
                             f"so {steps_name} is required: pass the number of batches to "
                             f"take. Received: {steps_name}=None")

    def build_model(self):
        """Read the first batch, without using it up, so that an unbuilt model is built for
        its shapes before the call starts (as Keras does)."""
        if isinstance(self.passes, _PyDatasetPasses):
            raw = self.passes.dataset[0]
        elif self.passes.one_shot:
            raw = next(self.passes.data, _END)
            if raw is _END:
                raise ValueError(f"{self.convert.what} is an empty generator; it yielded no "
                                 f"batch.")
            self._peeked = raw
        else:
            raw = next(iter(self.passes.data), _END)
            if raw is _END:
                raise ValueError(f"{self.convert.what} is an empty iterable; it yielded no "
                                 f"batch.")
        self.convert(raw, 0)
        self.convert.signature = None   # batch 0 is checked again when it is used

    def _new_pass(self, draws):
        self._end_pass()
        self._iterator = self.passes.new_pass(draws if self.shuffle else None)
        self._seen = 0

    def _end_pass(self):
        if self._iterator is not None:
            self.passes.end_pass(self._iterator)
            self._iterator = None

    def _next_raw(self):
        if self._peeked is not None:
            raw, self._peeked = self._peeked, None
            return raw
        return next(self._iterator, _END)

    def _batches(self, draws, steps, continue_pass):
        """Up to ``steps`` batches (None: to the end of the pass), going on with the current
        pass if ``continue_pass``; warns when ``steps`` was given and the data ran out."""
        if self._iterator is None or not continue_pass:
            self._new_pass(draws)
        taken = 0
        while steps is None or taken < steps:
            if self.num_batches is not None and self._seen >= self.num_batches:
                if steps is not None:
                    self.warn_ran_out(steps)
                break
            raw = self._next_raw()
            if raw is _END:
                self._end_pass()
                if self.num_batches is None:   # how an unknown size is found, not an error
                    self.num_batches = self._seen
                if self.passes.one_shot:
                    self.exhausted = True
                if steps is not None:
                    self.warn_ran_out(steps)
                return
            index = self._seen
            self._seen += 1
            taken += 1
            yield self.convert(raw, index)
        if self.num_batches is not None and self._seen >= self.num_batches:
            self._end_pass()

    epochs = 1   # for the message; fit sets its epochs

    def warn_ran_out(self, steps):
        warnings.warn(RAN_OUT.format(steps=steps, epochs=self.epochs), stacklevel=5)
        self.warned = True

    def train_epoch(self, draws, steps):
        """The batches of one training epoch: ``steps`` batches going on from the previous
        epoch, or one pass when ``steps`` is None."""
        self.passes.on_epoch_begin()
        try:
            yield from self._batches(draws, steps, continue_pass=steps is not None)
        finally:
            self.passes.on_epoch_end()

    def eval_batches(self, steps):
        """Up to ``steps`` batches of a new pass (one pass when None); a one-shot iterator
        goes on where it stopped."""
        yield from self._batches(None, steps, continue_pass=self.passes.one_shot)

    def close(self):
        self._end_pass()


_END = object()
