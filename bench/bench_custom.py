"""Benchmarks of user code with autodiff (issue 14): the reference MLP written as custom
layers, and the cost of one recorded op, each beside its reference in the same run.

Targets (one thread):

- custom-layer epoch: the reference MLP (784-64-64-10, bench/mlp_reference.py) as three
  custom ``Layer`` subclasses on ``minidl.ops`` (bench/custom_mlp_reference.py) trains
  within 2x of the built-in Dense layers' epoch time (summary ratio >= 0.5), and at least 2x
  faster than the same user code in PyTorch eager (ratio >= 2). Batch 32, Adam, sparse
  categorical cross-entropy on logits, the same data.
- recorded op: ``ops.add`` of two 32x64 float32 tensors inside a ``GradientTape``, forward
  plus its share of the backward pass, at least as fast as PyTorch eager with
  ``requires_grad`` (ratio >= 1). One round records a chain of ``CHAIN`` adds
  (``h = h + b``) and runs one backward pass over it (gradients of ``a`` and ``b``), so a
  round's time divided by ``CHAIN`` is the cost of one op; the fixed cost of opening a tape
  and starting a backward pass is spread over the chain, as in a real step.

Single thread throughout (bench/conftest.py). Data: the first 12,000 images of
Fashion-MNIST when installed, else synthetic data of the same shape; a plain ``pytest`` run
(benchmarks disabled) runs each body once on the first 1,024 images, as a smoke test.
The epoch comparisons are interleaved (bench/epochs.py): each minidl round right after a
round of its reference, so that the drifting speed of a shared machine hits both alike.
"""
import numpy as np
import pytest

import minidl
from custom_mlp_reference import builtin_mlp, custom_mlp, torch_custom_epoch_runner
from epochs import first_images, run_interleaved_epochs
from minidl import ops
from mlp_reference import SEED

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 32
EPOCH_ROUNDS = 5
CHAIN = 64          # recorded adds per round of the op benchmark
OP_SHAPE = (32, 64)


# ---- custom-layer training epoch ----

def _images(fashion, benchmark):
    x, y, source = first_images(fashion, benchmark, (784,))
    return x, y, source, np.random.default_rng(SEED).permutation(len(x))


@pytest.mark.benchmark(group="custom-layer epoch, interleaved with built-in Dense")
def test_custom_epoch_vs_builtin(benchmark, fashion):
    """Custom layers (minidl) against built-in Dense layers, round by round: the summary
    ratio is builtin / custom, to be >= 0.5 (custom within 2x)."""
    x, y, source, order = _images(fashion, benchmark)
    builtin = builtin_mlp()

    def builtin_epoch(order, batch):
        builtin.fit(x, y, epochs=1, batch_size=batch, shuffle=True, verbose=0)
    builtin_epoch(order, BATCH)   # warm-up: the plan and the optimizer are built
    model = custom_mlp()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    run_interleaved_epochs(benchmark, model, x, y, builtin_epoch, order, BATCH, EPOCH_ROUNDS,
                           reference="builtin")
    loss, accuracy = model.evaluate(x[:2000], y[:2000], verbose=0)
    assert np.isfinite(loss)
    assert accuracy > 0.5 or source == "synthetic"


@pytest.mark.benchmark(group="custom-layer epoch, interleaved with torch")
def test_custom_epoch_vs_torch(benchmark, fashion):
    """Custom layers (minidl) against the same user code in PyTorch eager, round by round:
    the summary ratio is torch / minidl, to be >= 2."""
    x, y, _, order = _images(fashion, benchmark)
    epoch = torch_custom_epoch_runner(x, y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    epoch(order)   # warm-up
    model = custom_mlp()
    model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
    run_interleaved_epochs(benchmark, model, x, y, epoch, order, BATCH, EPOCH_ROUNDS)


# ---- one recorded op ----

def _operands():
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal(OP_SHAPE, dtype=np.float32),
            rng.standard_normal(OP_SHAPE, dtype=np.float32))


def _expected_grads(a, b):
    # d(sum h)/da = 1, d(sum h)/db = CHAIN, for h = a + CHAIN * b
    return np.ones_like(a), np.full_like(b, CHAIN)


@pytest.mark.benchmark(group=f"recorded add {OP_SHAPE[0]}x{OP_SHAPE[1]}, chain of {CHAIN}")
def test_recorded_add_minidl(benchmark):
    a_value, b_value = _operands()
    a, b = minidl.Variable(a_value, name="a"), minidl.Variable(b_value, name="b")

    def run():
        with minidl.GradientTape() as tape:
            h = a
            for _ in range(CHAIN):
                h = ops.add(h, b)
        return tape.gradient(h, [a, b])
    benchmark.extra_info.update(impl="minidl", ops_per_round=CHAIN)
    da, db = benchmark(run)
    for got, want in zip((da, db), _expected_grads(a_value, b_value)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.benchmark(group=f"recorded add {OP_SHAPE[0]}x{OP_SHAPE[1]}, chain of {CHAIN}")
def test_recorded_add_torch(benchmark):
    torch = pytest.importorskip("torch")
    a_value, b_value = _operands()
    a = torch.from_numpy(a_value).requires_grad_()
    b = torch.from_numpy(b_value).requires_grad_()

    def run():
        a.grad = b.grad = None
        h = a
        for _ in range(CHAIN):
            h = torch.add(h, b)
        h.backward(torch.ones_like(h))
        return a.grad, b.grad
    benchmark.extra_info.update(impl="torch", ops_per_round=CHAIN)
    da, db = benchmark(run)
    for got, want in zip((da, db), _expected_grads(a_value, b_value)):
        np.testing.assert_array_equal(got.numpy(), want)
