"""Benchmarks of the padding, upsampling and 3-D pooling layers: one training pass (forward
and input gradient) on float32 channels_last batches, single thread.

- minidl: the layer's forward and backward passes through a CallContext, as a model's plan
  runs them (buffers reused from call to call).
- numpy: the same computation in whole-array numpy (``np.pad`` and a slice;
  ``np.repeat`` and a block sum).
- torch (when installed): autograd on NCHW / NCDHW tensors (``F.pad``, ``F.interpolate``,
  ``F.max_pool3d``, ``F.avg_pool3d``).

Thread settings come from bench/conftest.py (``single_thread``).
"""
import numpy as np
import pytest

from minidl.layers import (AveragePooling3D, CallContext, MaxPooling3D, UpSampling2D,
                           ZeroPadding2D)

pytestmark = pytest.mark.usefixtures("single_thread")

PAD_GROUP = "zeropad2d-train-b32-28x28x32"
UP_GROUP = "upsample2d-nearest-train-b32-14x14x32"
BILINEAR_GROUP = "upsample2d-bilinear-train-b32-14x14x32"
MAXPOOL_GROUP = "maxpool3d-train-b8-16x16x16x16"
AVGPOOL_GROUP = "avgpool3d-same-3x3x3-s2-train-b8-16x16x16x16"


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _minidl_step(layer, x):
    ctx = CallContext(layer)
    dy = _data((x.shape[0],) + layer.compute_output_shape(x.shape[1:]), 1)

    def step():
        ctx.forward(x, training=True)
        return ctx.backward(dy)
    return step


def _torch():
    return pytest.importorskip("torch")


def _torch_step(forward, x):
    """forward(x) then backward, on a channels_first copy of ``x``."""
    torch = _torch()
    order = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
    xt = torch.tensor(x.transpose(order).copy(), requires_grad=True)
    dy = torch.ones_like(forward(xt))

    def step():
        xt.grad = None
        forward(xt).backward(dy)
        return xt.grad
    return step


# ---- ZeroPadding2D ----

PAD_SHAPE, PADS = (32, 28, 28, 32), ((1, 2), (2, 1))


@pytest.mark.benchmark(group=PAD_GROUP)
def test_zeropad_minidl(benchmark):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(_minidl_step(ZeroPadding2D(PADS), _data(PAD_SHAPE, 0)))


@pytest.mark.benchmark(group=PAD_GROUP)
def test_zeropad_numpy(benchmark):
    x = _data(PAD_SHAPE, 0)
    (top, bottom), (left, right) = PADS
    dy = _data((32, 28 + top + bottom, 28 + left + right, 32), 1)

    def step():
        np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        return np.ascontiguousarray(dy[:, top:top + 28, left:left + 28])
    benchmark.extra_info["impl"] = "numpy"
    benchmark(step)


@pytest.mark.benchmark(group=PAD_GROUP)
def test_zeropad_torch(benchmark):
    F = _torch().nn.functional
    (top, bottom), (left, right) = PADS
    benchmark.extra_info["impl"] = "torch"
    benchmark(_torch_step(lambda t: F.pad(t, (left, right, top, bottom)), _data(PAD_SHAPE, 0)))


# ---- UpSampling2D ----

UP_SHAPE = (32, 14, 14, 32)


@pytest.mark.benchmark(group=UP_GROUP)
def test_upsample_minidl(benchmark):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(_minidl_step(UpSampling2D(), _data(UP_SHAPE, 0)))


@pytest.mark.benchmark(group=UP_GROUP)
def test_upsample_numpy(benchmark):
    x = _data(UP_SHAPE, 0)
    dy = _data((32, 28, 28, 32), 1)

    def step():
        np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
        return dy.reshape(32, 14, 2, 14, 2, 32).sum(axis=(2, 4))
    benchmark.extra_info["impl"] = "numpy"
    benchmark(step)


@pytest.mark.benchmark(group=UP_GROUP)
def test_upsample_torch(benchmark):
    F = _torch().nn.functional
    benchmark.extra_info["impl"] = "torch"
    benchmark(_torch_step(lambda t: F.interpolate(t, scale_factor=2, mode="nearest"),
                          _data(UP_SHAPE, 0)))


@pytest.mark.benchmark(group=BILINEAR_GROUP)
def test_upsample_bilinear_minidl(benchmark):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(_minidl_step(UpSampling2D(interpolation="bilinear"), _data(UP_SHAPE, 0)))


@pytest.mark.benchmark(group=BILINEAR_GROUP)
def test_upsample_bilinear_torch(benchmark):
    F = _torch().nn.functional
    benchmark.extra_info["impl"] = "torch"
    benchmark(_torch_step(lambda t: F.interpolate(t, scale_factor=2, mode="bilinear",
                                                  align_corners=False), _data(UP_SHAPE, 0)))


# ---- 3-D pooling ----

POOL_SHAPE = (8, 16, 16, 16, 16)


@pytest.mark.benchmark(group=MAXPOOL_GROUP)
def test_maxpool3d_minidl(benchmark):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(_minidl_step(MaxPooling3D(), _data(POOL_SHAPE, 0)))


@pytest.mark.benchmark(group=MAXPOOL_GROUP)
def test_maxpool3d_torch(benchmark):
    F = _torch().nn.functional
    benchmark.extra_info["impl"] = "torch"
    benchmark(_torch_step(lambda t: F.max_pool3d(t, 2), _data(POOL_SHAPE, 0)))


@pytest.mark.benchmark(group=AVGPOOL_GROUP)
def test_avgpool3d_minidl(benchmark):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(_minidl_step(AveragePooling3D(3, strides=2, padding="same"),
                           _data(POOL_SHAPE, 0)))


@pytest.mark.benchmark(group=AVGPOOL_GROUP)
def test_avgpool3d_torch(benchmark):
    # 16 / 2 = 8 outputs per axis: Keras pads 0 before and 1 after; torch pads symmetrically
    # (1 and 1) and drops the extra output, the same work.
    F = _torch().nn.functional
    benchmark.extra_info["impl"] = "torch"
    benchmark(_torch_step(lambda t: F.avg_pool3d(t, 3, 2, padding=1, count_include_pad=False),
                          _data(POOL_SHAPE, 0)))
