"""Benchmark of a small residual network (issue 12): one training epoch beside the same
network in PyTorch eager mode, in the same run.

Network (bench/resnet_reference.py): Conv2D(16, 3, 'same') + BatchNormalization + ReLU, two
residual blocks ``relu(x + bn(conv(relu(bn(conv(x))))))``, global average pooling,
Dense(10, softmax), on 28x28x1 images; Adam, sparse categorical cross-entropy, batch 32, one
thread. Data: the first 12,000 images of Fashion-MNIST when installed, else synthetic data
of the same shape; a plain ``pytest`` run (benchmarks disabled) runs each body once on 1,024
images. The target is an epoch at least twice as fast as PyTorch's.
"""
import numpy as np
import pytest

from epochs import first_images, run_interleaved_epochs
from mlp_reference import SEED
from resnet_reference import IMAGE, reference_resnet, torch_resnet_epoch_runner

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 32
EPOCH_ROUNDS = 5   # min of five: this shared VM slows down for tens of seconds at a time


@pytest.mark.benchmark(group="resnet-epoch")
def test_resnet_epoch_minidl(benchmark, fashion):
    x, y, source = first_images(fashion, benchmark, IMAGE)
    model = reference_resnet()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=True,
                                         verbose=0),
                       rounds=EPOCH_ROUNDS, iterations=1, warmup_rounds=1)
    _, accuracy = model.evaluate(x[:2000], y[:2000], verbose=0)
    assert accuracy > 0.5 or source == "synthetic" or not benchmark.enabled


@pytest.mark.benchmark(group="resnet-epoch")
def test_resnet_epoch_torch(benchmark, fashion):
    x, y, _ = first_images(fashion, benchmark, IMAGE)
    epoch = torch_resnet_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(lambda: epoch(order, BATCH), rounds=EPOCH_ROUNDS, iterations=1,
                       warmup_rounds=1)


@pytest.mark.benchmark(group="resnet-epoch, interleaved with torch")
def test_resnet_epoch_interleaved_with_torch(benchmark, fashion):
    """The minidl epoch again, each round right after a PyTorch epoch (timed by the round's
    setup): pairs measured seconds apart compare more fairly on this drifting VM."""
    x, y, _ = first_images(fashion, benchmark, IMAGE)
    epoch = torch_resnet_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    run_interleaved_epochs(benchmark, reference_resnet(), x, y, epoch, order, BATCH, EPOCH_ROUNDS)


def test_the_two_networks_match():
    """Same weights, same batch: the same loss and gradients in minidl and PyTorch (so the
    benchmark times the same network)."""
    torch = pytest.importorskip("torch")
    from resnet_reference import torch_resnet
    model = reference_resnet()
    net = torch_resnet()
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    dense = model.layers[-1]
    with torch.no_grad():
        for conv, layer in zip([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)],
                               convs):
            conv.weight.copy_(torch.from_numpy(layer.kernel.numpy().transpose(3, 2, 0, 1)
                                               .copy()))
            conv.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][0]
        linear.weight.copy_(torch.from_numpy(dense.kernel.numpy().T.copy()))
        linear.bias.copy_(torch.from_numpy(dense.bias.numpy()))
    rng = np.random.default_rng(SEED)
    x = rng.random((8,) + IMAGE, dtype=np.float32)
    y = rng.integers(0, 10, 8)
    loss = model.train_on_batch(x, y, return_dict=True)["loss"]
    torch_loss = torch.nn.functional.cross_entropy(
        net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())), torch.from_numpy(y))
    assert loss == pytest.approx(torch_loss.item(), rel=1e-4)
