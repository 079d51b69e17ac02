"""Benchmark of feeding fit from a PyDataset: one training epoch of the reference CNN
(bench/cnn_reference.py) fed by a PyDataset with workers=2, whose ``__getitem__`` slices
numpy arrays, beside the same epoch fed the arrays themselves (the Batcher's path). Target:
the PyDataset epoch within 1.2x of the arrays epoch (ratio >= 0.83 in the summary).

Both epochs take the batches in order (shuffle=False), so they train on the same batches;
a batch sliced from a C-contiguous float32 array reaches the step without a copy. Data:
6,000 images of Fashion-MNIST when installed, else synthetic data of the same shape (1,024
in a plain ``pytest`` run, which runs each body once as a smoke test). minidl on one thread
(bench/conftest.py); the PyDataset's two worker threads fetch ahead.

Each PyDataset round runs right after an arrays epoch, timed by the round's setup
(``extra_info["reference_seconds"]``), so the summary's interleaved row compares pairs
measured seconds apart on this shared machine; the "arrays" benchmark is the plain series.
"""
import time

import pytest

from cnn_reference import IMAGE, reference_cnn
from minidl.utils import PyDataset

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 32
SAMPLES = 6000
SMOKE_SAMPLES = 1024
ROUNDS = 5


class ArraySlices(PyDataset):
    """Batches sliced (as views) from arrays in memory."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def images(fashion, benchmark):
    x, y, source = fashion
    n = SAMPLES if benchmark.enabled else SMOKE_SAMPLES
    benchmark.extra_info.update(data=source, samples=n)
    return x[:n].reshape((n,) + IMAGE), y[:n]


@pytest.mark.benchmark(group="data-input-epoch")
def test_epoch_from_pydataset(benchmark, fashion):
    x, y = images(fashion, benchmark)
    arrays_model, model = reference_cnn(), reference_cnn()
    data = ArraySlices(x, y, BATCH, workers=2)
    arrays_seconds = []

    def arrays_epoch():
        start = time.perf_counter()
        arrays_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        arrays_seconds.append(time.perf_counter() - start)

    model.fit(data, epochs=1, shuffle=False, verbose=0)   # warm-up epochs, one each
    arrays_model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    benchmark.extra_info.update(impl="minidl", interleaved_reference="arrays",
                                reference_seconds=arrays_seconds)
    benchmark.pedantic(lambda: model.fit(data, epochs=1, shuffle=False, verbose=0),
                       setup=arrays_epoch, rounds=ROUNDS, iterations=1)
    # The same batches in the same order: the same weights.
    assert all((a == b).all() for a, b in zip(model.get_weights(),
                                              arrays_model.get_weights()))


@pytest.mark.benchmark(group="data-input-epoch")
def test_epoch_from_arrays(benchmark, fashion):
    x, y = images(fashion, benchmark)
    model = reference_cnn()
    benchmark.extra_info["impl"] = "arrays"
    benchmark.pedantic(lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False,
                                         verbose=0),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
