"""Benchmarks of the losses and metrics added with the focal, hinge and divergence kernels.

Each group times minidl's compiled path beside two references in the same run:

- loss value + gradient: ``CategoricalFocalCrossentropy.forward_backward`` and
  ``BinaryFocalCrossentropy(from_logits=True).forward_backward`` on a (256, 10) float32 batch
  (what ``fit`` calls each step), against the plain-numpy reference of the same formula
  (``minidl._ref.losses``) and against the function form on ``minidl.ops`` differentiated
  by a ``GradientTape`` (what a user-written loss costs). Target: faster than both.
- metric update: ``metrics.BinaryCrossentropy.update_state`` and ``metrics.KLDivergence``
  on a (32, 10) float32 batch (one ``fit`` step's metric update), against the numpy
  reference and against ``MeanMetricWrapper`` of the loss function on ops (what the name
  resolved to before these metric classes). Target: faster than both.

Single thread (bench/conftest.py); a plain ``pytest`` run executes each body once.
"""
import numpy as np
import pytest

from minidl import losses, metrics, ops
from minidl._ref import losses as ref
from minidl.autodiff import GradientTape, Variable

pytestmark = pytest.mark.usefixtures("single_thread")

IMPLS = ["minidl", "numpy", "ops+tape"]


def _batch(rows, n, seed=0):
    r = np.random.default_rng(seed)
    onehot = np.eye(n, dtype=np.float32)[r.integers(0, n, rows)]
    logits = r.standard_normal((rows, n)).astype(np.float32) * 2
    probs = r.dirichlet(np.ones(n), rows).astype(np.float32)
    binary = (r.random((rows, n)) < 0.3).astype(np.float32)
    return onehot, logits, probs, binary


def _loss_runner(impl, loss, kernel, extra, fn, kwargs, y, p):
    grad = np.empty_like(p)
    if impl == "minidl":
        return lambda: loss.forward_backward(y, p, grad)
    if impl == "numpy":
        scale = 1.0 / p.shape[0]
        return lambda: getattr(ref, kernel)(y, p, None, scale, grad, None, *extra)
    pred = Variable(p)

    def taped():
        with GradientTape() as tape:
            value = ops.mean(fn(y, pred, **kwargs))
        return tape.gradient(value, pred)
    return taped


@pytest.mark.benchmark(group="loss value+grad: categorical focal, 256x10 float32")
@pytest.mark.parametrize("impl", IMPLS)
def test_categorical_focal(benchmark, impl):
    onehot, _, probs, _ = _batch(256, 10)
    run = _loss_runner(impl, losses.CategoricalFocalCrossentropy(),
                       "categorical_focal_crossentropy", (0.25, 2.0, False, 0.0, 1e-7),
                       losses.categorical_focal_crossentropy, {}, onehot, probs)
    benchmark.extra_info["impl"] = impl
    benchmark(run)


@pytest.mark.benchmark(group="loss value+grad: binary focal from logits, 256x10 float32")
@pytest.mark.parametrize("impl", IMPLS)
def test_binary_focal_logits(benchmark, impl):
    _, logits, _, binary = _batch(256, 10, seed=1)
    run = _loss_runner(impl, losses.BinaryFocalCrossentropy(from_logits=True),
                       "binary_focal_crossentropy", (False, 0.25, 2.0, True, 0.0, 1e-7),
                       losses.binary_focal_crossentropy, {"from_logits": True}, binary,
                       logits)
    benchmark.extra_info["impl"] = impl
    benchmark(run)


def _metric_runner(impl, metric, kernel, extra, fn, y, p):
    if impl == "minidl":
        return lambda: metric.update_state(y, p)
    if impl == "numpy":
        row_loss = np.empty(p.shape[0], p.dtype)
        return lambda: getattr(ref, kernel)(y, p, None, 1.0, None, row_loss, *extra)
    wrapper = metrics.MeanMetricWrapper(fn)
    return lambda: wrapper.update_state(y, p)


@pytest.mark.benchmark(group="metric update: binary crossentropy, 32x10 float32")
@pytest.mark.parametrize("impl", ["minidl", "numpy", "ops wrapper"])
def test_binary_crossentropy_metric(benchmark, impl):
    _, _, probs, binary = _batch(32, 10, seed=2)
    run = _metric_runner(impl, metrics.BinaryCrossentropy(), "binary_crossentropy",
                         (False, 0.0, 1e-7), losses.binary_crossentropy, binary, probs)
    benchmark.extra_info["impl"] = impl
    benchmark(run)


@pytest.mark.benchmark(group="metric update: KL divergence, 32x10 float32")
@pytest.mark.parametrize("impl", ["minidl", "numpy", "ops wrapper"])
def test_kl_divergence_metric(benchmark, impl):
    onehot, _, probs, _ = _batch(32, 10, seed=3)
    run = _metric_runner(impl, metrics.KLDivergence(), "kl_divergence", (1e-7,),
                         losses.kl_divergence, onehot, probs)
    benchmark.extra_info["impl"] = impl
    benchmark(run)
