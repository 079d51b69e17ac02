"""Benchmark of Embedding's training step (issue 16): forward and backward of a batch of
(32, 200) token ids into a (20000, 128) float32 table, one thread, beside PyTorch's
``nn.Embedding`` (dense gradient, its default) in the same run.

minidl's backward writes only the rows the batch used (and zeroes the previous batch's), so
the step costs the batch's rows; PyTorch's default gradient is the whole table, allocated
zeroed each step (``optimizer.zero_grad()`` sets it to None) before its scatter-add. Both are
what a training loop of each library runs.
"""
import numpy as np
import pytest

from minidl.layers import CallContext, Embedding

pytestmark = pytest.mark.usefixtures("single_thread")

VOCABULARY, DIM, BATCH, LENGTH, SEED = 20000, 128, 32, 200, 0


def _batches():
    rng = np.random.default_rng(SEED)
    ids = rng.integers(0, VOCABULARY, (BATCH, LENGTH), dtype=np.int64)
    dy = rng.standard_normal((BATCH, LENGTH, DIM)).astype(np.float32)
    return ids, dy


@pytest.mark.benchmark(group="embedding-step")
def test_embedding_step_minidl(benchmark):
    ids, dy = _batches()
    layer = Embedding(VOCABULARY, DIM)
    ctx = CallContext(layer)

    def step():
        ctx.forward(ids, training=True)
        ctx.backward(dy)
    benchmark.extra_info["impl"] = "minidl"
    benchmark(step)
    expected = np.zeros((VOCABULARY, DIM))
    np.add.at(expected, ids.reshape(-1), dy.reshape(-1, DIM))
    np.testing.assert_allclose(ctx.grads[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.benchmark(group="embedding-step")
def test_embedding_step_torch(benchmark):
    torch = pytest.importorskip("torch")
    ids, dy = _batches()
    module = torch.nn.Embedding(VOCABULARY, DIM)
    ids_t, dy_t = torch.from_numpy(ids), torch.from_numpy(dy)

    def step():
        module.weight.grad = None
        module(ids_t).backward(dy_t)
    benchmark.extra_info["impl"] = "torch"
    benchmark(step)
