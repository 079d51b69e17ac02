"""Benchmark of image augmentation in training: RandomFlip + RandomRotation(0.1) +
RandomZoom(0.2) (bilinear, 'reflect' fill) on a batch of 32 float32 images 32 x 32 x 3, the
per-image random parameters drawn at every call, single thread.

- minidl: the three layers' training forward passes as a model's plan runs them (one
  context per layer, buffers reused from batch to batch).
- numpy: the same transforms, vectorised over the batch: flips by ``np.where``, then per
  transform the source coordinates of every pixel, Keras' reflect index rule and a gathered
  bilinear blend of the four neighbours.
- torch (when installed): what torchvision's tensor transforms do, on NCHW tensors: per-image
  flips by ``torch.where``, then ``affine_grid`` / ``grid_sample`` (bilinear, reflection
  padding) with per-image thetas for the rotation and for the zoom.

Thread settings come from bench/conftest.py (``single_thread``).
"""
import math

import numpy as np
import pytest

from minidl.layers import CallContext, RandomFlip, RandomRotation, RandomZoom
from minidl.layers.preprocessing.augmentation import rotation_transforms, zoom_transforms

pytestmark = pytest.mark.usefixtures("single_thread")

GROUP = "augment-flip-rotate-zoom-32x32x3-b32"
SHAPE = (32, 32, 32, 3)
ROTATION, ZOOM = 0.1, 0.2


@pytest.fixture(scope="module")
def batch():
    return np.random.default_rng(0).random(SHAPE, dtype=np.float32)


@pytest.mark.benchmark(group=GROUP)
def test_augment_minidl(benchmark, batch):
    layers = [RandomFlip(seed=1), RandomRotation(ROTATION, seed=2), RandomZoom(ZOOM, seed=3)]
    contexts = [CallContext(layer) for layer in layers]

    def augment():
        x = batch
        for ctx in contexts:
            x = ctx.forward(x, training=True)
        return x
    out = augment()
    assert out.shape == SHAPE and np.isfinite(out).all()
    benchmark.extra_info["impl"] = "minidl"
    benchmark(augment)


class NumpyAugmentation:
    """The same three transforms in vectorised numpy (float32 images, float64 coordinates)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        n, h, w, _ = SHAPE
        self.rows = np.arange(h, dtype=np.float64)[None, :, None]
        self.cols = np.arange(w, dtype=np.float64)[None, None, :]
        self.batch_index = np.arange(n)[:, None, None]

    @staticmethod
    def reflect(index, size):
        m = index % (2 * size)
        return np.where(m >= size, 2 * size - 1 - m, m)

    def resample(self, x, t):
        _, h, w, _ = x.shape
        a = t[:, :, None, None]
        sx = a[:, 0] * self.cols + a[:, 1] * self.rows + a[:, 2]
        sy = a[:, 3] * self.cols + a[:, 4] * self.rows + a[:, 5]
        fx, fy = np.floor(sx), np.floor(sy)
        wx, wy = (sx - fx)[..., None], (sy - fy)[..., None]
        x0, y0 = fx.astype(np.intp), fy.astype(np.intp)
        x0, x1 = self.reflect(x0, w), self.reflect(x0 + 1, w)
        y0, y1 = self.reflect(y0, h), self.reflect(y0 + 1, h)
        b = self.batch_index
        out = (x[b, y0, x0] * ((1 - wy) * (1 - wx)) + x[b, y0, x1] * ((1 - wy) * wx)
               + x[b, y1, x0] * (wy * (1 - wx)) + x[b, y1, x1] * (wy * wx))
        return out.astype(np.float32)

    def __call__(self, x):
        n, h, w, _ = x.shape
        flips = (self.rng.random(n) <= 0.5)[:, None, None, None]
        x = np.where(flips, x[:, ::-1, ::-1], x)
        angles = self.rng.uniform(-ROTATION * 2 * math.pi, ROTATION * 2 * math.pi, n)
        x = self.resample(x, rotation_transforms(angles, h, w))
        zooms = self.rng.uniform(1 - ZOOM, 1 + ZOOM, n)
        return self.resample(x, zoom_transforms(zooms, zooms, h, w))


@pytest.mark.benchmark(group=GROUP)
def test_augment_numpy(benchmark, batch):
    augment = NumpyAugmentation(seed=1)
    out = augment(batch)
    assert out.shape == SHAPE and np.isfinite(out).all()
    benchmark.extra_info["impl"] = "numpy"
    benchmark(augment, batch)


@pytest.mark.benchmark(group=GROUP)
def test_augment_torch(benchmark, batch):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    images = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    generator = torch.Generator().manual_seed(1)
    n = images.shape[0]

    def warp(x, theta):
        grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
        return functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                                      align_corners=False)

    def augment():
        flips = (torch.rand(n, generator=generator) <= 0.5).view(n, 1, 1, 1)
        x = torch.where(flips, images.flip(2, 3), images)
        angles = (torch.rand(n, generator=generator) * 2 - 1) * (ROTATION * 2 * math.pi)
        cos, sin, zeros = torch.cos(angles), torch.sin(angles), torch.zeros(n)
        rotation = torch.stack([cos, -sin, zeros, sin, cos, zeros], 1).view(n, 2, 3)
        x = warp(x, rotation)
        zooms = 1 + (torch.rand(n, generator=generator) * 2 - 1) * ZOOM
        zoom = torch.stack([zooms, zeros, zeros, zeros, zooms, zeros], 1).view(n, 2, 3)
        return warp(x, zoom)
    with torch.no_grad():
        out = augment()
        assert tuple(out.shape) == (32, 3, 32, 32) and bool(torch.isfinite(out).all())
        benchmark.extra_info["impl"] = "torch"
        benchmark(augment)
