"""Benchmark of MobileNetV2 (issue 17): ``minidl.applications.MobileNetV2(weights=None,
input_shape=(96, 96, 3), classes=10)`` beside the same network written in PyTorch.

- training: one step (forward, categorical cross-entropy, backward, Adam update) on a batch
  of 16 images, ``model.train_on_batch`` against a PyTorch step with ``model.train()``;
- inference: one batch of 64 images, ``model.predict_on_batch`` against the PyTorch module
  in ``eval()`` mode under ``torch.no_grad()``.

The PyTorch twin (torchvision is not used) is Keras's MobileNetV2 layer for layer: NCHW,
``padding='same'`` convolutions of stride 2 padded as TensorFlow does (one extra row and
column at the bottom / right of an even-sized input: an explicit ``F.pad``), depthwise
convolutions as ``groups=channels``, ReLU6, BatchNorm with Keras's epsilon 1e-3 and
momentum 0.999 (PyTorch's momentum 1 - 0.999), Adam with Keras's defaults (epsilon 1e-7),
cross-entropy on the logits with one-hot targets (the softmax folded into the loss, as
PyTorch code does). ``test_the_two_networks_match`` checks that, with minidl's weights copied
over, both give the same predictions.

Single thread (bench/conftest.py): minidl.set_num_threads(1), numpy's BLAS limited to one
thread, torch.set_num_threads(1); the "all threads" groups give minidl and torch every
processor. The target is minidl at least 1.5x PyTorch's speed, one thread and all threads.
"""
import os
import time

import numpy as np
import pytest

import minidl
from minidl.applications import MobileNetV2

pytestmark = pytest.mark.usefixtures("single_thread")

IMAGE = (96, 96, 3)
CLASSES = 10
TRAIN_BATCH = 16
PREDICT_BATCH = 64
SEED = 1234
ROUNDS = 10


def _data(batch):
    rng = np.random.default_rng(SEED)
    x = rng.uniform(-1.0, 1.0, (batch,) + IMAGE).astype(np.float32)
    labels = rng.integers(0, CLASSES, batch)
    y = np.eye(CLASSES, dtype=np.float32)[labels]
    return x, y


def minidl_mobilenet():
    """The benchmarked network in minidl, seeded and compiled (Adam, categorical CE)."""
    minidl.utils.set_random_seed(SEED)
    model = MobileNetV2(weights=None, input_shape=IMAGE, classes=CLASSES)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def torch_mobilenet(model):
    """The same network in PyTorch, with the weights of the minidl ``model``.

    Returns:
        ``(module, optimizer)``, or None when PyTorch is not installed.
    """
    try:
        import torch
    except ImportError:
        return None
    nn, F = torch.nn, torch.nn.functional

    def bn(channels):
        return nn.BatchNorm2d(channels, eps=1e-3, momentum=1 - 0.999)

    def tf_same_pad(x, stride):
        # TensorFlow's 'same' for a 3x3 window: the extra padding goes bottom / right.
        if stride == 1:
            return F.pad(x, (1, 1, 1, 1))
        height, width = x.shape[2:]
        return F.pad(x, (1 - width % 2, 1, 1 - height % 2, 1))

    class Block(nn.Module):
        def __init__(self, in_channels, expanded, out_channels, stride, expands):
            super().__init__()
            self.stride = stride
            self.expand = nn.Conv2d(in_channels, expanded, 1, bias=False) if expands else None
            self.expand_bn = bn(expanded) if expands else None
            self.depthwise = nn.Conv2d(expanded, expanded, 3, stride=stride, groups=expanded,
                                       bias=False)
            self.depthwise_bn = bn(expanded)
            self.project = nn.Conv2d(expanded, out_channels, 1, bias=False)
            self.project_bn = bn(out_channels)
            self.residual = in_channels == out_channels and stride == 1

        def forward(self, x):
            y = x
            if self.expand is not None:
                y = F.relu6(self.expand_bn(self.expand(y)))
            y = F.relu6(self.depthwise_bn(self.depthwise(tf_same_pad(y, self.stride))))
            y = self.project_bn(self.project(y))
            return x + y if self.residual else y

    class Net(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, stride=2, bias=False)
            self.bn1 = bn(32)
            self.blocks = nn.ModuleList(blocks)
            self.conv_last = nn.Conv2d(blocks[-1].project.out_channels, 1280, 1, bias=False)
            self.bn_last = bn(1280)
            self.fc = nn.Linear(1280, CLASSES)

        def forward(self, x):
            x = F.relu6(self.bn1(self.conv1(tf_same_pad(x, 2))))
            for block in self.blocks:
                x = block(x)
            x = F.relu6(self.bn_last(self.conv_last(x)))
            return self.fc(x.mean(dim=(2, 3)))

    def kernel_shape(name):
        return model.get_layer(name).weight_arrays[0].shape

    names = [("expanded_conv_", False)] + [(f"block_{i}_", True) for i in range(1, 17)]
    blocks = []
    for prefix, expands in names:
        expanded = kernel_shape(f"{prefix}depthwise")[2]
        in_channels = kernel_shape(f"{prefix}expand")[2] if expands else expanded
        blocks.append(Block(in_channels, expanded, kernel_shape(f"{prefix}project")[3],
                            model.get_layer(f"{prefix}depthwise").strides[0], expands))
    net = Net(blocks)

    def copy_conv(module, layer):
        kernel = np.asarray(layer.weight_arrays[0])
        if module.groups > 1:   # depthwise (kh, kw, channels, 1) -> (channels, 1, kh, kw)
            kernel = kernel.transpose(2, 3, 0, 1)
        else:                   # (kh, kw, in, out) -> (out, in, kh, kw)
            kernel = kernel.transpose(3, 2, 0, 1)
        module.weight.data = torch.from_numpy(np.ascontiguousarray(kernel))

    def copy_bn(module, layer):
        gamma, beta, mean, variance = (np.array(w) for w in layer.weight_arrays)
        module.weight.data, module.bias.data = torch.from_numpy(gamma), torch.from_numpy(beta)
        module.running_mean.data = torch.from_numpy(mean)
        module.running_var.data = torch.from_numpy(variance)

    copy_conv(net.conv1, model.get_layer("Conv1"))
    copy_bn(net.bn1, model.get_layer("bn_Conv1"))
    for block, (prefix, expands) in zip(net.blocks, names):
        if expands:
            copy_conv(block.expand, model.get_layer(f"{prefix}expand"))
            copy_bn(block.expand_bn, model.get_layer(f"{prefix}expand_BN"))
        copy_conv(block.depthwise, model.get_layer(f"{prefix}depthwise"))
        copy_bn(block.depthwise_bn, model.get_layer(f"{prefix}depthwise_BN"))
        copy_conv(block.project, model.get_layer(f"{prefix}project"))
        copy_bn(block.project_bn, model.get_layer(f"{prefix}project_BN"))
    copy_conv(net.conv_last, model.get_layer("Conv_1"))
    copy_bn(net.bn_last, model.get_layer("Conv_1_bn"))
    kernel, bias = (np.array(w) for w in model.get_layer("predictions").weight_arrays)
    net.fc.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.T))
    net.fc.bias.data = torch.from_numpy(bias)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    return net, optimizer


def test_the_two_networks_match():
    """With the same weights, PyTorch's twin predicts what minidl's model predicts."""
    torch = pytest.importorskip("torch")
    model = minidl_mobilenet()
    net, _ = torch_mobilenet(model)
    x, _ = _data(4)
    expected = model.predict_on_batch(x)
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    actual = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def torch_train_step(net, optimizer, x, y):
    """One PyTorch training step on the NHWC batch ``x`` and one-hot ``y``, as a closure."""
    import torch
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    targets = torch.from_numpy(y)
    net.train()

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images), targets)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def torch_predict(net, x):
    """PyTorch's class probabilities for the NHWC batch ``x``, as a closure."""
    import torch
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    net.eval()

    def predict():
        with torch.no_grad():
            return torch.softmax(net(images), dim=1).numpy()
    return predict


def run_interleaved(benchmark, ours, reference, rounds=ROUNDS):
    """Time ``ours`` per round, each round right after a run of ``reference`` (the round's
    setup, timed here into ``extra_info["reference_seconds"]``): pairs measured a moment
    apart compare more fairly on a busy machine (bench/conftest.py reports their ratio)."""
    reference_seconds = []

    def reference_round():
        start = time.perf_counter()
        reference()
        reference_seconds.append(time.perf_counter() - start)
    for _ in range(2):   # warm both up: buffers, plans, caches
        reference()
        ours()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.extra_info["interleaved_reference"] = "torch"
    benchmark.extra_info["reference_seconds"] = reference_seconds
    return benchmark.pedantic(ours, setup=reference_round, rounds=rounds, iterations=1)


@pytest.mark.benchmark(group="mobilenetv2-96-train-step-b16")
def test_train_step_minidl(benchmark):
    model = minidl_mobilenet()
    x, y = _data(TRAIN_BATCH)
    benchmark.extra_info["impl"] = "minidl"
    loss = benchmark.pedantic(lambda: model.train_on_batch(x, y), rounds=ROUNDS, iterations=1,
                              warmup_rounds=2)
    assert np.isfinite(loss)


@pytest.mark.benchmark(group="mobilenetv2-96-train-step-b16")
def test_train_step_torch(benchmark):
    pytest.importorskip("torch")
    step = torch_train_step(*torch_mobilenet(minidl_mobilenet()), *_data(TRAIN_BATCH))
    benchmark.extra_info["impl"] = "torch"
    loss = benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert np.isfinite(loss)


@pytest.mark.benchmark(group="mobilenetv2-96-train-step-b16, interleaved with torch")
def test_train_step_interleaved_with_torch(benchmark):
    pytest.importorskip("torch")
    model = minidl_mobilenet()
    x, y = _data(TRAIN_BATCH)
    step = torch_train_step(*torch_mobilenet(minidl_mobilenet()), x, y)
    loss = run_interleaved(benchmark, lambda: model.train_on_batch(x, y), step)
    assert np.isfinite(loss)


@pytest.mark.benchmark(group="mobilenetv2-96-predict-b64")
def test_predict_minidl(benchmark):
    model = minidl_mobilenet()
    x, _ = _data(PREDICT_BATCH)
    benchmark.extra_info["impl"] = "minidl"
    probs = benchmark.pedantic(lambda: model.predict_on_batch(x), rounds=ROUNDS, iterations=1,
                               warmup_rounds=2)
    assert probs.shape == (PREDICT_BATCH, CLASSES)


@pytest.mark.benchmark(group="mobilenetv2-96-predict-b64")
def test_predict_torch(benchmark):
    pytest.importorskip("torch")
    predict = torch_predict(torch_mobilenet(minidl_mobilenet())[0], _data(PREDICT_BATCH)[0])
    benchmark.extra_info["impl"] = "torch"
    probs = benchmark.pedantic(predict, rounds=ROUNDS, iterations=1, warmup_rounds=2)
    assert probs.shape == (PREDICT_BATCH, CLASSES)


@pytest.mark.benchmark(group="mobilenetv2-96-predict-b64, interleaved with torch")
def test_predict_interleaved_with_torch(benchmark):
    pytest.importorskip("torch")
    model = minidl_mobilenet()
    x, _ = _data(PREDICT_BATCH)
    predict = torch_predict(torch_mobilenet(minidl_mobilenet())[0], x)
    probs = run_interleaved(benchmark, lambda: model.predict_on_batch(x), predict)
    assert probs.shape == (PREDICT_BATCH, CLASSES)


@pytest.fixture
def all_threads():
    """minidl and torch on every processor (after the module's single_thread fixture, which
    restores both afterwards)."""
    torch = pytest.importorskip("torch")
    threads = os.cpu_count() or 1
    minidl.set_num_threads(threads)
    torch.set_num_threads(threads)
    return threads


@pytest.mark.benchmark(group="mobilenetv2-96-train-step-b16, all threads, interleaved with torch")
def test_train_step_all_threads_interleaved_with_torch(benchmark, all_threads):
    model = minidl_mobilenet()
    x, y = _data(TRAIN_BATCH)
    step = torch_train_step(*torch_mobilenet(minidl_mobilenet()), x, y)
    benchmark.extra_info["threads"] = all_threads
    loss = run_interleaved(benchmark, lambda: model.train_on_batch(x, y), step)
    assert np.isfinite(loss)


@pytest.mark.benchmark(group="mobilenetv2-96-predict-b64, all threads, interleaved with torch")
def test_predict_all_threads_interleaved_with_torch(benchmark, all_threads):
    model = minidl_mobilenet()
    x, _ = _data(PREDICT_BATCH)
    predict = torch_predict(torch_mobilenet(minidl_mobilenet())[0], x)
    benchmark.extra_info["threads"] = all_threads
    probs = run_interleaved(benchmark, lambda: model.predict_on_batch(x), predict)
    assert probs.shape == (PREDICT_BATCH, CLASSES)
