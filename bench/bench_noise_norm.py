"""Benchmarks of the issue-17 noise and normalization layers, one training step's forward and
backward each, single thread, beside plain numpy (and torch where it has the layer):

* GroupNormalization(8) on a (32, 28, 28, 64) float32 batch (channels last): minidl's fused
  kernel, numpy (minidl._ref.normalization, float64 math), torch's GroupNorm (channels
  first, its native layout).
* UnitNormalization on (256, 1024) float32: the kernel beside numpy and F.normalize.
* GaussianNoise(0.1) and GaussianDropout(0.2) on (256, 4096) float32: the kernels'
  counter-based Box-Muller noise beside numpy's Generator (ziggurat) plus the add/multiply.
"""
import numpy as np
import pytest

from minidl._ref import normalization as ref
from minidl.layers import (CallContext, GaussianDropout, GaussianNoise, GroupNormalization,
                           UnitNormalization)

pytestmark = pytest.mark.usefixtures("single_thread")

ROUNDS = dict(rounds=20, iterations=1, warmup_rounds=2)


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- GroupNormalization ----

GN_SHAPE, GN_GROUPS = (32, 28, 28, 64), 8


@pytest.mark.benchmark(group="group-norm-step")
def test_group_norm_minidl(benchmark):
    x, dy = _data(GN_SHAPE), _data(GN_SHAPE, 1)
    layer = GroupNormalization(GN_GROUPS)
    layer(x[:1])
    ctx = CallContext(layer)

    def step():
        ctx.forward(x, training=True)
        return ctx.backward(dy)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="group-norm-step")
def test_group_norm_numpy(benchmark):
    x, dy = _data(GN_SHAPE), _data(GN_SHAPE, 1)
    c = GN_SHAPE[-1]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    mean = np.empty((GN_SHAPE[0], GN_GROUPS), np.float32)
    invstd = np.empty_like(mean)
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(beta)

    def step():
        ref.group_norm_forward(x, 3, GN_GROUPS, gamma, beta, mean, invstd, y, 1e-3)
        return ref.group_norm_backward(x, dy, 3, GN_GROUPS, gamma, mean, invstd, dx, dgamma,
                                       dbeta)

    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="group-norm-step")
def test_group_norm_torch(benchmark):
    torch = pytest.importorskip("torch")
    x = torch.tensor(np.moveaxis(_data(GN_SHAPE), 3, 1).copy(), requires_grad=True)
    dy = torch.tensor(np.moveaxis(_data(GN_SHAPE, 1), 3, 1).copy())
    gn = torch.nn.GroupNorm(GN_GROUPS, GN_SHAPE[-1], eps=1e-3)

    def step():
        x.grad = None
        gn(x).backward(dy)

    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(step, **ROUNDS)


# ---- UnitNormalization ----

UN_SHAPE = (256, 1024)


@pytest.mark.benchmark(group="unit-norm-step")
def test_unit_norm_minidl(benchmark):
    x, dy = _data(UN_SHAPE), _data(UN_SHAPE, 1)
    ctx = CallContext(UnitNormalization())

    def step():
        ctx.forward(x, training=True)
        return ctx.backward(dy)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="unit-norm-step")
def test_unit_norm_numpy(benchmark):
    x, dy = _data(UN_SHAPE), _data(UN_SHAPE, 1)
    y, dx = np.empty_like(x), np.empty_like(x)

    def step():
        ref.unit_norm_forward(x, 1, 1, y)
        return ref.unit_norm_backward(x, dy, 1, 1, dx)

    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="unit-norm-step")
def test_unit_norm_torch(benchmark):
    torch = pytest.importorskip("torch")
    x = torch.tensor(_data(UN_SHAPE), requires_grad=True)
    dy = torch.tensor(_data(UN_SHAPE, 1))

    def step():
        x.grad = None
        torch.nn.functional.normalize(x, dim=-1, eps=1e-12).backward(dy)

    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(step, **ROUNDS)


# ---- Gaussian noise ----

NOISE_SHAPE = (256, 4096)


@pytest.mark.benchmark(group="gaussian-noise-forward")
def test_gaussian_noise_minidl(benchmark):
    x = _data(NOISE_SHAPE)
    ctx = CallContext(GaussianNoise(0.1, seed=1))
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: ctx.forward(x, training=True), **ROUNDS)


@pytest.mark.benchmark(group="gaussian-noise-forward")
def test_gaussian_noise_numpy(benchmark):
    x = _data(NOISE_SHAPE)
    rng = np.random.default_rng(1)
    noise, y = np.empty_like(x), np.empty_like(x)

    def step():
        rng.standard_normal(out=noise, dtype=np.float32)
        np.multiply(noise, np.float32(0.1), out=noise)
        return np.add(x, noise, out=y)

    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="gaussian-dropout-step")
def test_gaussian_dropout_minidl(benchmark):
    x, dy = _data(NOISE_SHAPE), _data(NOISE_SHAPE, 1)
    ctx = CallContext(GaussianDropout(0.2, seed=1))

    def step():
        ctx.forward(x, training=True)
        return ctx.backward(dy)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(step, **ROUNDS)


@pytest.mark.benchmark(group="gaussian-dropout-step")
def test_gaussian_dropout_numpy(benchmark):
    x, dy = _data(NOISE_SHAPE), _data(NOISE_SHAPE, 1)
    rng = np.random.default_rng(1)
    noise, y, dx = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    stddev = np.float32(np.sqrt(0.2 / 0.8))

    def step():
        rng.standard_normal(out=noise, dtype=np.float32)
        np.multiply(noise, stddev, out=noise)
        np.add(noise, np.float32(1), out=noise)
        np.multiply(x, noise, out=y)
        return np.multiply(dy, noise, out=dx)

    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(step, **ROUNDS)
