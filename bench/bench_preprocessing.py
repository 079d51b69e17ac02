"""Benchmarks of the preprocessing layers beside plain numpy doing the same work.

- normalization-forward: Normalization's training forward pass (into its reused buffer) on a
  batch of 4,096 x 784 float32 values, beside numpy's ``(x - mean) / std`` (which allocates
  twice).
- rescaling-forward: Rescaling(1/255, offset) likewise, beside ``x * scale + offset``.
- normalization-adapt: adapt over 60,000 x 784 float32 values in batches of 4,096 (float64
  statistics, Chan's combination), beside numpy's one-pass ``mean`` and ``var`` of the
  array converted to float64.
- discretization-forward: 32 learned boundaries on 4,096 x 784 values, beside
  ``np.digitize``.
"""
import numpy as np
import pytest

from minidl.layers import CallContext, Discretization, Normalization, Rescaling

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = np.random.default_rng(0).random((4096, 784), dtype=np.float32) * 255


@pytest.fixture(scope="module")
def adapted():
    layer = Normalization()
    layer.adapt(BATCH)
    return layer


@pytest.mark.benchmark(group="normalization-forward")
def test_normalization_forward_minidl(benchmark, adapted):
    ctx = CallContext(adapted, record=True)
    benchmark.extra_info["impl"] = "minidl"
    out = benchmark(lambda: adapted.forward(ctx, BATCH, True))
    mean = BATCH.astype(np.float64).mean(axis=0)
    std = BATCH.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(out, (BATCH - mean) / std, rtol=1e-4, atol=1e-4)


@pytest.mark.benchmark(group="normalization-forward")
def test_normalization_forward_numpy(benchmark, adapted):
    mean, std = adapted.mean.value, np.sqrt(adapted.variance.value)
    benchmark.extra_info["impl"] = "numpy"
    benchmark(lambda: (BATCH - mean) / std)


@pytest.mark.benchmark(group="rescaling-forward")
def test_rescaling_forward_minidl(benchmark):
    layer = Rescaling(1.0 / 255, offset=-0.5)
    layer(BATCH[:1])
    ctx = CallContext(layer, record=True)
    benchmark.extra_info["impl"] = "minidl"
    out = benchmark(lambda: layer.forward(ctx, BATCH, True))
    np.testing.assert_allclose(out, BATCH * np.float32(1.0 / 255) - 0.5, rtol=1e-6, atol=1e-6)


@pytest.mark.benchmark(group="rescaling-forward")
def test_rescaling_forward_numpy(benchmark):
    scale = np.float32(1.0 / 255)
    benchmark.extra_info["impl"] = "numpy"
    benchmark(lambda: BATCH * scale - np.float32(0.5))


@pytest.fixture(scope="module")
def dataset():
    return np.random.default_rng(1).standard_normal((60000, 784), dtype=np.float32)


@pytest.mark.benchmark(group="normalization-adapt")
def test_normalization_adapt_minidl(benchmark, dataset):
    layer = Normalization()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: layer.adapt(dataset, batch_size=4096), rounds=3, iterations=1)
    np.testing.assert_allclose(layer.variance.value,
                               dataset.astype(np.float64).var(axis=0), rtol=1e-5)


@pytest.mark.benchmark(group="normalization-adapt")
def test_normalization_adapt_numpy(benchmark, dataset):
    def stats():
        x = dataset.astype(np.float64)
        return x.mean(axis=0), x.var(axis=0)
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(stats, rounds=3, iterations=1)


@pytest.mark.benchmark(group="discretization-forward")
def test_discretization_forward_minidl(benchmark):
    layer = Discretization(num_bins=33)
    layer.adapt(BATCH[:512])
    ctx = CallContext(layer, record=False)
    benchmark.extra_info["impl"] = "minidl"
    out = benchmark(lambda: layer.forward(ctx, BATCH, False))
    np.testing.assert_array_equal(out, np.digitize(BATCH, layer.bin_boundaries))


@pytest.mark.benchmark(group="discretization-forward")
def test_discretization_forward_numpy(benchmark):
    boundaries = np.quantile(BATCH[:512], np.arange(1, 33) / 33).astype(np.float32)
    benchmark.extra_info["impl"] = "numpy"
    benchmark(lambda: np.digitize(BATCH, boundaries))
