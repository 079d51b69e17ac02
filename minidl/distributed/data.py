"""Giving each rank its part of the data."""
import numbers

import numpy as np

from minidl.distributed import comm
from minidl.utils.py_dataset import PyDataset


def _rank_and_size(rank, size):
    if size is None:
        size = comm.size() if comm.is_initialized() else 1
    if rank is None:
        rank = comm.rank() if comm.is_initialized() else 0
    for name, value, low in (("size", size, 1), ("rank", rank, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"shard: {name} must be an int >= {low}; received "
                             f"{name}={value!r}.")
    if rank >= size:
        raise ValueError(f"shard: rank must be < size ({size}); received rank={rank}.")
    return int(rank), int(size)


def shard(data, rank=None, size=None):
    """This rank's part of ``data``: samples ``rank, rank + size, rank + 2 * size, ...``
    (strided, as ``tf.data.Dataset.shard``), the same count on every rank (a tail of
    fewer than ``size`` samples is dropped, so that every rank runs the same number of
    steps and no collective waits for a rank that has finished).

    Args:
        data: an array, or a list / tuple / dict of arrays with the same first dimension
            (sharded alike); a :class:`minidl.utils.PyDataset` (batches ``rank``,
            ``rank + size``, ...: a :class:`ShardedPyDataset`); or a generator / iterable of
            batches (every ``size``-th batch, from the ``rank``-th).
        rank: the part to take (default :func:`rank`, or 0 without ``init``).
        size: the number of parts (default :func:`size`, or 1).

    Returns:
        The same structure as ``data`` with this rank's samples (a PyDataset or a
        generator of batches for those).

    Example:
        >>> x_part, y_part = distributed.shard((x, y))
    """
    rank, size = _rank_and_size(rank, size)
    if isinstance(data, np.ndarray):
        usable = (len(data) // size) * size
        return data[rank:usable:size]
    if isinstance(data, dict):
        lengths = {len(np.asarray(v)) for v in data.values()}
        if len(lengths) > 1:
            raise ValueError(f"shard: the arrays of data must have the same first "
                             f"dimension; received lengths {sorted(lengths)}.")
        return {k: shard(np.asarray(v), rank, size) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and data and all(
            isinstance(v, (np.ndarray, list, tuple)) and not isinstance(v, str) for v in data):
        arrays = [np.asarray(v) for v in data]
        lengths = {len(a) for a in arrays}
        if len(lengths) > 1:
            raise ValueError(f"shard: the arrays of data must have the same first "
                             f"dimension; received lengths {sorted(lengths)}.")
        return type(data)(shard(a, rank, size) for a in arrays)
    if isinstance(data, PyDataset):
        return ShardedPyDataset(data, rank, size)
    if hasattr(data, "__iter__") and not isinstance(data, (str, bytes)):
        return _every_nth(data, rank, size)
    raise TypeError(f"shard: data must be an array, a list / tuple / dict of arrays, or an "
                    f"iterable of batches; received {type(data).__name__}.")


def _every_nth(batches, rank, size):
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group[rank]
            group = []



class ShardedPyDataset(PyDataset):
    """Batches ``rank, rank + size, ...`` of a PyDataset (``len(dataset) // size`` of them,
    the same count on every rank, so that no rank waits in a collective for one that has
    finished); the epoch hooks are passed on. Made by :func:`shard`.

    Args:
        dataset: a :class:`minidl.utils.PyDataset` with a length.
        rank: the part to take.
        size: the number of parts.
    """

    def __init__(self, dataset, rank, size):
        super().__init__(workers=dataset.workers,
                         use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        total = dataset.num_batches
        if total is None:
            raise ValueError("shard: a PyDataset without end (num_batches None) cannot be "
                             "sharded by index; shard its samples instead.")
        self.dataset, self.rank, self.size = dataset, rank, size
        self._count = total // size

    def __len__(self):
        return self._count

    def __getitem__(self, index):
        if not 0 <= index < self._count:
            raise IndexError(f"ShardedPyDataset: index must be in [0, {self._count}); "
                             f"received index={index}.")
        return self.dataset[index * self.size + self.rank]

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()
