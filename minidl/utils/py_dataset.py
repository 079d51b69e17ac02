"""``PyDataset``: a data set that builds its batches in Python, one index at a time, for
``fit`` / ``evaluate`` / ``predict`` (Keras 3's ``keras.utils.PyDataset``).

Batches are fetched ahead, in order, by ``workers`` threads (or processes with
``use_multiprocessing=True``), at most ``max_queue_size`` of them waiting; with the
default ``workers=1`` and threads, as in Keras, they are made in the training thread when
they are needed. An exception raised by ``__getitem__`` in a worker is raised again by the
call that wanted the batch (with the worker's traceback), after the workers are stopped.
"""
import collections
import concurrent.futures
import itertools
import multiprocessing
import numbers
import warnings

_SUPER_NOT_CALLED = ("`PyDataset` subclass should call `super().__init__(**kwargs)` in its "
                     "constructor. `**kwargs` can include `workers`, `use_multiprocessing`, "
                     "`max_queue_size`. Do not pass these arguments to `fit()`, as they will "
                     "be ignored.")


class PyDataset:
    """Base class for data sets of batches computed by Python code.

    A subclass implements ``__getitem__(index)``, returning the batch ``index``: ``x``,
    ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (each an array, or a list / dict of
    arrays for a model with several inputs or outputs), and ``__len__`` (the number of
    batches), or instead the ``num_batches`` property (None for a data set without end, which
    then needs ``steps_per_epoch``). Every batch but the last should hold the same number of
    samples.

    Args:
        workers: the number of threads (or processes) fetching batches ahead. With 1 and
            threads, batches are fetched when needed, in the calling thread.
        use_multiprocessing: fetch in processes instead of threads (for ``__getitem__``
            code that holds the GIL). The data set is inherited by forked processes, or
            pickled where the platform cannot fork; the batches come back pickled. A forked
            process should not call minidl's multithreaded kernels (OpenMP does not survive
            a fork): keep ``__getitem__`` to loading and numpy.
        max_queue_size: the most batches fetched ahead and waiting to be used.

    Example:
        >>> class Batches(minidl.utils.PyDataset):
        ...     def __init__(self, x, y, batch_size, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x, self.y, self.batch_size = x, y, batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, index):
        ...         part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        ...         return self.x[part], self.y[part]
        >>> model.fit(Batches(x, y, 64, workers=2), epochs=3)
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for name, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; received {name}={value!r}.")
        if not isinstance(use_multiprocessing, bool):
            raise TypeError(f"use_multiprocessing must be True or False; received "
                            f"use_multiprocessing={use_multiprocessing!r}.")
        self._workers = int(workers)
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = int(max_queue_size)

    def _warn_if_super_not_called(self):
        if not hasattr(self, "_workers"):
            warnings.warn(_SUPER_NOT_CALLED, stacklevel=3)
            self._workers, self._use_multiprocessing, self._max_queue_size = 1, False, 10

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at ``index``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  f"__getitem__(index), returning the batch at index.")

    @property
    def num_batches(self):
        """The number of batches: ``len(self)``, or None for a data set without end."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (the number "
                                  f"of batches) or the num_batches property (None when the "
                                  f"data set has no end).")

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch (e.g. to reshuffle the samples)."""


# The data set a worker process fetches from: set once per process by _share, inherited by
# forked processes (so it need not be picklable there).
_WORKER_DATASET = None


def _share(dataset):
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _fetch_in_worker(index):
    return _WORKER_DATASET[index]


def iterate_batches(dataset, indices):
    """The batches ``dataset[i]`` for ``i`` in ``indices``, in that order, fetched ahead by
    the data set's workers.

    Closing the returned generator (or an exception from a batch, raised here) cancels the
    batches not yet started and waits for the workers to finish the ones they are on.

    Args:
        dataset: a :class:`PyDataset`.
        indices: an iterable of batch indices (an endless one for a data set without end).
    """
    workers, processes = dataset.workers, dataset.use_multiprocessing
    if workers == 1 and not processes:   # Keras: no queue, batches made when needed
        for index in indices:
            yield dataset[index]
        return
    if processes:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        executor = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=_share,
            initargs=(dataset,))
        fetch = _fetch_in_worker
    else:
        executor = concurrent.futures.ThreadPoolExecutor(workers,
                                                         thread_name_prefix="PyDataset")
        fetch = dataset.__getitem__
    pending = collections.deque()
    indices = iter(indices)
    size = dataset.max_queue_size
    # Refilled in bulk when half used, so that a worker woken once fetches several batches
    # in a row: a worker woken for every batch forces a GIL hand-over (and a wait for the
    # OS to run that thread) per training step, which cost 10% of a CNN epoch on two cores.
    low_water = size // 2
    try:
        while True:
            if len(pending) <= low_water:
                for index in itertools.islice(indices, size - len(pending)):
                    pending.append(executor.submit(fetch, index))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
