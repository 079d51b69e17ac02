"""Benchmark of DepthwiseConv2D's training step (forward, then the backward pass with the
input gradient and the kernel and bias gradients) at MobileNetV2-like shapes, batch 16, one
thread, beside PyTorch's grouped convolution (``torch.nn.Conv2d(c, c, 3, groups=c)``) in the
same process: on NCHW tensors, PyTorch's default ("torch"), and on channels_last ones
("torch-channels_last", minidl's own layout).

Shapes (height x width x channels, stride): 48x48x96 stride 1 and 24x24x144 stride 2 (the
expanded blocks of MobileNetV2's second stage on 96x96 images), and 12x12x384 stride 1 (its
fourth stage), all 3x3 'same' and without bias, as MobileNetV2 has them (a BatchNormalization
follows each).

Run: PYTHONPATH=. python -m pytest -q -p no:cacheprovider bench/bench_depthwise.py --benchmark-only
"""
import time

import numpy as np
import pytest

from minidl.layers import CallContext, DepthwiseConv2D

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 16
SHAPES = [((48, 48, 96), 1), ((24, 24, 144), 2), ((12, 12, 384), 1)]
IDS = [f"{h}x{w}x{c}-s{s}" for (h, w, c), s in SHAPES]


def _data(shape, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH,) + shape).astype(np.float32)
    out = tuple(-(-n // stride) for n in shape[:2])
    dy = rng.standard_normal((BATCH,) + out + (shape[-1],)).astype(np.float32)
    return x, dy


@pytest.mark.parametrize("shape, stride", SHAPES, ids=IDS)
def test_depthwise_minidl(benchmark, shape, stride):
    x, dy = _data(shape, stride)
    layer = DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)
    layer.build(shape)
    ctx = CallContext(layer)

    def step():
        ctx.forward(x, training=True)
        return ctx.backward(dy, need_input_grad=True)

    # Each round follows a run of PyTorch's NCHW step (when installed), timed: the summary's
    # interleaved row pairs them, which a machine whose load changes from second to second
    # (a shared one) disturbs far less than the separate groups below.
    torch_seconds = []
    torch_step = _torch_step(shape, stride, "nchw")

    def reference_round():
        if torch_step is not None:
            start = time.perf_counter()
            torch_step()
            torch_seconds.append(time.perf_counter() - start)

    benchmark.group = f"depthwise-{IDS[SHAPES.index((shape, stride))]}"
    benchmark.extra_info.update(impl="minidl", flop=_flop(shape, stride))
    if torch_step is not None:
        benchmark.extra_info.update(interleaved_reference="torch (interleaved)",
                                    reference_seconds=torch_seconds)
    for _ in range(2):   # warm-up here: pytest-benchmark's would call the setup too
        reference_round()
        step()
    torch_seconds.clear()
    dx = benchmark.pedantic(step, setup=reference_round, rounds=15, iterations=1)
    assert dx.shape == x.shape


def _flop(shape, stride):
    """Multiply-adds of one step, times 2: forward, input gradient, kernel gradient."""
    out = np.prod([-(-n // stride) for n in shape[:2]])
    return 2 * 3 * BATCH * int(out) * shape[-1] * 9


def _torch_step(shape, stride, layout):
    """One training step of torch's depthwise convolution (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    x, dy = _data(shape, stride)
    channels = shape[-1]
    conv = torch.nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels,
                           bias=False)
    xt = torch.tensor(x.transpose(0, 3, 1, 2))
    dyt = torch.tensor(dy.transpose(0, 3, 1, 2))
    if layout == "channels_last":
        conv = conv.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
        dyt = dyt.contiguous(memory_format=torch.channels_last)
    xt.requires_grad_(True)

    def step():
        xt.grad = None
        conv.zero_grad(set_to_none=True)
        conv(xt).backward(dyt)
        return xt.grad

    return step


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("shape, stride", SHAPES, ids=IDS)
def test_depthwise_torch(benchmark, shape, stride, layout):
    pytest.importorskip("torch")
    step = _torch_step(shape, stride, layout)
    benchmark.group = f"depthwise-{IDS[SHAPES.index((shape, stride))]}"
    benchmark.extra_info.update(impl="torch" if layout == "nchw" else "torch-channels_last",
                                flop=_flop(shape, stride))
    dx = benchmark.pedantic(step, rounds=15, iterations=1, warmup_rounds=2)
    assert tuple(dx.shape) == (BATCH, shape[-1]) + shape[:2]
