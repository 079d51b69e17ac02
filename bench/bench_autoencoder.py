"""Benchmarks of a convolutional autoencoder (issue 17): one training epoch beside PyTorch,
and each transposed convolution's forward and backward pass alone.

Network (keras.io, "Convolutional autoencoder for image denoising"), on 28x28x1 images:
    Conv2D(32, 3, relu, same) -> MaxPooling2D(2, same) -> Conv2D(32, 3, relu, same) ->
    MaxPooling2D(2, same) -> Conv2DTranspose(32, 3, strides=2, relu, same) ->
    Conv2DTranspose(32, 3, strides=2, relu, same) -> Conv2D(1, 3, sigmoid, same)
trained to reconstruct its input with binary cross-entropy and Adam (lr 1e-3), batch 32, one
epoch over 12,000 images (Fashion-MNIST when installed, else synthetic data of its shape).
PyTorch runs the same network in eager mode with the training loop of its tutorials;
its transposed convolutions are ``ConvTranspose2d(32, 32, 3, stride=2, padding=1,
output_padding=1)``, what a PyTorch user writes for the same output size (Keras puts the
windows one pixel earlier; ``torch_autoencoder(keras_alignment=True)`` crops as Keras does,
which the agreement test uses). The target is a minidl epoch at least twice as fast.

Single thread throughout (bench/conftest.py). A plain ``pytest`` run (benchmarks disabled) runs
each body once as a smoke test, on the first 1,024 images only.
"""
import numpy as np
import pytest

import minidl
from epochs import first_images, run_interleaved_epochs
from minidl.layers import CallContext, Conv2D, Conv2DTranspose, Input, MaxPooling2D
from minidl.models import Sequential

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 32
IMAGE = (28, 28, 1)
SEED = 0
EPOCH_ROUNDS = 5


def minidl_autoencoder(dtype="float32"):
    """The autoencoder in minidl, seeded and compiled."""
    minidl.utils.set_random_seed(SEED)
    kw = dict(padding="same", dtype=dtype)
    model = Sequential([
        Input(IMAGE, dtype=dtype),
        Conv2D(32, 3, activation="relu", **kw), MaxPooling2D(2, padding="same", dtype=dtype),
        Conv2D(32, 3, activation="relu", **kw), MaxPooling2D(2, padding="same", dtype=dtype),
        Conv2DTranspose(32, 3, strides=2, activation="relu", **kw),
        Conv2DTranspose(32, 3, strides=2, activation="relu", **kw),
        Conv2D(1, 3, activation="sigmoid", **kw)])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def torch_autoencoder(keras_alignment=False):
    """The same network in PyTorch (NCHW), or None without torch. With
    ``keras_alignment`` the transposed convolutions run unpadded and are cropped to the
    first 2n rows and columns, as Keras' 'same' does."""
    try:
        import torch
    except ImportError:
        return None
    nn = torch.nn

    class Crop(nn.Module):
        def forward(self, x):
            return x[:, :, :-1, :-1]   # 2n + 1 rows and columns -> the first 2n

    def up():
        if keras_alignment:
            return [nn.ConvTranspose2d(32, 32, 3, stride=2), Crop()]
        return [nn.ConvTranspose2d(32, 32, 3, stride=2, padding=1, output_padding=1)]

    torch.manual_seed(SEED)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         *up(), nn.ReLU(), *up(), nn.ReLU(),
                         nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())


def torch_epoch_runner(x_nchw):
    """``epoch(order, batch_size)``: one epoch of Adam (Keras' defaults) on binary
    cross-entropy, the loop of PyTorch's tutorials; None without torch."""
    model = torch_autoencoder()
    if model is None:
        return None
    import torch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCELoss()
    xt = torch.from_numpy(x_nchw)

    def epoch(order, batch_size=BATCH):
        idx = torch.from_numpy(order)
        for start in range(0, len(xt), batch_size):
            batch = xt[idx[start:start + batch_size]]
            opt.zero_grad()
            loss = loss_fn(model(batch), batch)
            loss.backward()
            opt.step()
    return epoch


# ---- one training epoch ----

@pytest.mark.benchmark(group="autoencoder-epoch")
def test_autoencoder_epoch_minidl(benchmark, fashion):
    x, _, _ = first_images(fashion, benchmark, IMAGE)
    model = minidl_autoencoder()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: model.fit(x, x, epochs=1, batch_size=BATCH, shuffle=True,
                                         verbose=0),
                       rounds=EPOCH_ROUNDS, iterations=1, warmup_rounds=1)
    assert np.isfinite(model.evaluate(x[:1000], x[:1000], verbose=0))


@pytest.mark.benchmark(group="autoencoder-epoch")
def test_autoencoder_epoch_torch(benchmark, fashion):
    x, _, _ = first_images(fashion, benchmark, IMAGE)
    epoch = torch_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(lambda: epoch(order, BATCH), rounds=EPOCH_ROUNDS, iterations=1,
                       warmup_rounds=1)


@pytest.mark.benchmark(group="autoencoder-epoch, interleaved with torch")
def test_autoencoder_epoch_interleaved_with_torch(benchmark, fashion):
    """The minidl epoch again, each round right after a PyTorch epoch (timed by the round's
    setup): pairs measured seconds apart compare more fairly on this drifting VM."""
    x, _, _ = first_images(fashion, benchmark, IMAGE)
    epoch = torch_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    run_interleaved_epochs(benchmark, minidl_autoencoder(), x, x, epoch, order, BATCH,
                           EPOCH_ROUNDS)


# ---- the two networks agree ----

def test_minidl_autoencoder_matches_torch():
    """Same weights, same batch (float64): the same reconstruction and loss as PyTorch with
    Keras' alignment of the transposed convolutions, so the epochs time the same network."""
    torch = pytest.importorskip("torch")
    model = minidl_autoencoder("float64")
    reference = torch_autoencoder(keras_alignment=True).double()
    rng = np.random.default_rng(SEED + 1)
    weights = [w + rng.uniform(-0.05, 0.05, w.shape) for w in model.get_weights()]
    model.set_weights(weights)
    convs = [m for m in reference if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        for module, kernel, bias in zip(convs, weights[::2], weights[1::2]):
            # Conv2D (kh, kw, in, out) -> (out, in, kh, kw); Conv2DTranspose (kh, kw, out,
            # in) -> ConvTranspose2d (in, out, kh, kw): both are transpose(3, 2, 0, 1).
            module.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            module.bias.copy_(torch.from_numpy(bias))
    x = rng.random((4,) + IMAGE)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1), rtol=0, atol=1e-12)


# ---- the transposed convolutions alone ----

# name: input sample shape; 32 -> 32 filters, 3x3, strides 2, 'same', ReLU, batch 32
UPS = {"up1": (7, 7, 32), "up2": (14, 14, 32)}


@pytest.fixture(scope="module", params=list(UPS))
def up(request):
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((BATCH,) + UPS[request.param], dtype=np.float32)
    layer = Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")
    layer.build(x.shape[1:])
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    return request.param, layer, ctx, x, dy


def _flop(x):
    return 2 * x.shape[0] * x.shape[1] * x.shape[2] * 32 * 9 * 32


@pytest.mark.benchmark(group="autoencoder-conv-transpose")
def test_conv_transpose_forward(benchmark, up):
    name, layer, ctx, x, _ = up
    benchmark.extra_info.update(impl="minidl", flop=_flop(x))
    benchmark(lambda: ctx.forward(x, training=True))


@pytest.mark.benchmark(group="autoencoder-conv-transpose")
def test_conv_transpose_backward(benchmark, up):
    name, layer, ctx, x, dy = up
    ctx.forward(x, training=True)
    benchmark.extra_info.update(impl="minidl", flop=2 * _flop(x))
    benchmark(lambda: ctx.backward(dy, need_input_grad=True))
