"""Benchmark of the input pipeline: one epoch of shuffled batches of 32 drawn from 60,000 x
784 float32 samples held in memory, the ``from_tensor_slices(...).shuffle(...).batch(32)``
pipeline that Keras programs write, beside the same epoch by hand in numpy (a permutation and
a fancy index per batch) and, when installed, torch's DataLoader over a TensorDataset.

The "dataset-epoch" group measures minidl's random-access path (a batch is one gather); the
"dataset-stream-epoch" group the element-by-element path a map puts the pipeline on.
"""
import numpy as np
import pytest

from minidl.data import AUTOTUNE, Dataset

SAMPLES, FEATURES, BATCH = 60000, 784, 32


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return (rng.random((SAMPLES, FEATURES), dtype=np.float32),
            rng.integers(0, 10, SAMPLES).astype(np.int64))


def consume(batches):
    count = 0
    for x, _ in batches:
        count += len(x)
    assert count == SAMPLES


@pytest.mark.benchmark(group="dataset-epoch")
def test_dataset_epoch_minidl(benchmark, arrays):
    ds = Dataset.from_tensor_slices(arrays).shuffle(SAMPLES, seed=0).batch(BATCH)
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(consume, args=(ds,), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="dataset-epoch")
def test_dataset_epoch_numpy(benchmark, arrays):
    x, y = arrays
    rng = np.random.default_rng(0)

    def epoch():
        order = rng.permutation(SAMPLES)
        consume((x[order[i:i + BATCH]], y[order[i:i + BATCH]])
                for i in range(0, SAMPLES, BATCH))
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(epoch, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="dataset-epoch")
def test_dataset_epoch_torch(benchmark, arrays):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(*(torch.from_numpy(a) for a in arrays)),
                        batch_size=BATCH, shuffle=True)
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(consume, args=(loader,), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="dataset-stream-epoch")
def test_dataset_stream_epoch_minidl(benchmark, arrays):
    ds = (Dataset.from_tensor_slices(arrays).map(lambda x, y: (x, y))
          .shuffle(10000, seed=0).batch(BATCH).prefetch(AUTOTUNE))
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(consume, args=(ds,), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="dataset-stream-epoch")
def test_dataset_stream_epoch_torch(benchmark, arrays):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(*(torch.from_numpy(a) for a in arrays)),
                        batch_size=BATCH, shuffle=True)
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(consume, args=(loader,), rounds=3, iterations=1, warmup_rounds=1)
