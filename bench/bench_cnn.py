"""Benchmarks of the reference CNN (issue 6): one training epoch, and each convolution's
forward and backward pass alone, beside PyTorch (when installed) and plain numpy in the same
run.

Network: Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) -> MaxPooling2D(2) ->
Flatten -> Dense(128, relu) -> Dense(10, softmax) on 28x28x1 images; Adam (lr 1e-3), sparse
categorical cross-entropy, batch 32. The references are in bench/cnn_reference.py. The target
is an epoch at least twice as fast as PyTorch's.

Single thread throughout (bench/conftest.py): minidl.set_num_threads(1), numpy's BLAS limited
to one thread, torch.set_num_threads(1). Data: the first 12,000 images of Fashion-MNIST when
installed, else synthetic data of the same shape. A plain ``pytest`` run (benchmarks disabled)
runs each body once as a smoke test, on the first 1,024 images only.

The convolution benchmarks time ``layer.forward(ctx, x, training=True)`` and
``layer.backward(ctx, dy)`` (``ctx`` a CallContext, whose buffers are reused from call to call)
at batch 32 (conv1 on 32x28x28x1 to 32 filters, conv2 on 32x13x13x32 to 64 filters), bias and
ReLU included; ``flop`` counts the multiply-adds of the convolution only (2 per MAC): the
forward product, and for the backward dW plus dx, except for conv1, which is timed without dx
as a model's first layer runs it. Each result is checked against numpy.

In the model, conv1 does not run alone: the training plan fuses it with its ReLU and max
pooling (``models.rewrites.ReluMaxPoolStep``, pooling directly with csrc/conv_pool.c). The
"first block" benchmark times that unit as trained (forward, then the weight gradients from
the pooled gradient), beside PyTorch's conv2d + relu + max_pool2d and their backward kernels,
and numpy; its ``flop`` is the convolution's forward and dW products.
"""
import numpy as np
import pytest

from cnn_reference import IMAGE, SEED, NumpyCNN, conv_backward, conv_forward, reference_cnn
from cnn_reference import max_gradient_error_vs_torch, maxpool_backward, maxpool_forward
from cnn_reference import torch_epoch_runner
from epochs import first_images, run_interleaved_epochs
from minidl.layers import CallContext, Conv2D, MaxPooling2D
from minidl.models.rewrites import ReluMaxPoolStep
from minidl.models.steps import LayerStep

pytestmark = pytest.mark.usefixtures("single_thread")

BATCH = 32
# Rounds of each epoch series (min time reported): this shared VM slows down by up to half
# for tens of seconds at a time, and five rounds rarely all fall in such a stretch.
EPOCH_ROUNDS = 5


# ---- one training epoch ----

@pytest.mark.benchmark(group="cnn-epoch")
def test_cnn_epoch_minidl(benchmark, fashion):
    x, y, source = first_images(fashion, benchmark, IMAGE)
    model = reference_cnn()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=True,
                                         verbose=0),
                       rounds=EPOCH_ROUNDS, iterations=1, warmup_rounds=1)
    loss, accuracy = model.evaluate(x[:2000], y[:2000], verbose=0)
    assert accuracy > 0.5 or source == "synthetic"


@pytest.mark.benchmark(group="cnn-epoch")
def test_cnn_epoch_numpy(benchmark, fashion):
    x, y, _ = first_images(fashion, benchmark, IMAGE)
    model = NumpyCNN(SEED)
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(lambda: model.epoch(x, y, order, BATCH), rounds=EPOCH_ROUNDS,
                       iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="cnn-epoch")
def test_cnn_epoch_torch(benchmark, fashion):
    x, y, _ = first_images(fashion, benchmark, IMAGE)
    # NCHW for torch, made before timing starts
    epoch = torch_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(lambda: epoch(order, BATCH), rounds=EPOCH_ROUNDS, iterations=1,
                       warmup_rounds=1)


@pytest.mark.benchmark(group="cnn-epoch, interleaved with torch")
def test_cnn_epoch_interleaved_with_torch(benchmark, fashion):
    """The minidl epoch again, each round right after a PyTorch epoch (run by the round's
    setup, untimed by pytest-benchmark, timed here). This VM's speed drifts by up to 50%
    within a minute, so pairs measured seconds apart compare more fairly than the two
    series above, measured a minute apart. The summary prints both ratios."""
    x, y, _ = first_images(fashion, benchmark, IMAGE)
    epoch = torch_epoch_runner(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    run_interleaved_epochs(benchmark, reference_cnn(), x, y, epoch, order, BATCH, EPOCH_ROUNDS)


# ---- the references agree with each other and with minidl ----

def test_numpy_reference_gradients_match_torch():
    errors = max_gradient_error_vs_torch()
    if errors is None:
        pytest.skip("PyTorch is not installed")
    assert max(errors.values()) < 1e-4, errors


def test_minidl_model_matches_numpy_reference():
    """Same weights, same batch: the same loss and gradients (so the epoch benchmarks time
    the same network)."""
    reference = NumpyCNN(SEED)
    rng = np.random.default_rng(SEED + 1)
    for b in reference.params[1::2]:
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    x = rng.random((8,) + IMAGE, dtype=np.float32)
    y = rng.integers(0, 10, 8)
    model = reference_cnn()
    model.set_weights(reference.params)
    probs = model.predict(x, verbose=0)
    expected_loss, expected_grads = reference.gradients(x, y)
    assert np.allclose(-np.log(probs[np.arange(8), y]).mean(), expected_loss, rtol=1e-4)
    model.train_on_batch(x, y)
    grads = model._gradients()   # the last step's, aligned with the trainable weights
    assert len(grads) == len(expected_grads)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-4 * np.abs(e).max())


# ---- the convolutions alone ----

# name: (input sample shape, filters); batch 32, 3x3 kernel, stride 1, 'valid'
CONVS = {"conv1": ((28, 28, 1), 32), "conv2": ((13, 13, 32), 64)}


@pytest.fixture(scope="module", params=list(CONVS))
def conv(request):
    """Operands of one convolution, and numpy's results for them."""
    name = request.param
    shape, filters = CONVS[name]
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((BATCH,) + shape, dtype=np.float32)
    kernel = rng.standard_normal((3, 3, shape[2], filters)) / np.sqrt(9 * shape[2])
    kernel = kernel.astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, filters).astype(np.float32)
    y, cols = conv_forward(x, kernel, bias)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    need_input_grad = name != "conv1"
    grads = conv_backward(dy, y, cols, kernel, x.shape, need_input_grad)
    macs = y.size * kernel.shape[0] * kernel.shape[1] * shape[2]
    return dict(name=name, x=x, kernel=kernel, bias=bias, y=y, cols=cols, dy=dy, grads=grads,
                need_input_grad=need_input_grad, macs=macs)


def _record(benchmark, conv, impl, backward):
    if backward:
        flop = 2.0 * conv["macs"] * (2 if conv["need_input_grad"] else 1)
        what = "backward (dW, dx)" if conv["need_input_grad"] else "backward (dW only)"
    else:
        flop, what = 2.0 * conv["macs"], "forward"
    benchmark.group = f"{conv['name']} {what}, batch {BATCH}"
    benchmark.extra_info.update(impl=impl, flop=flop, input=list(conv["x"].shape),
                                kernel=list(conv["kernel"].shape))


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def _minidl_layer(conv):
    layer = Conv2D(conv["kernel"].shape[3], 3, activation="relu")
    layer.ensure_built(conv["x"].shape[1:])
    layer.set_weights([conv["kernel"], conv["bias"]])
    return layer


def test_conv_forward_minidl(benchmark, conv):
    _record(benchmark, conv, "minidl", backward=False)
    layer = _minidl_layer(conv)
    out = benchmark(layer.forward, CallContext(layer), conv["x"], training=True)
    _close(out, conv["y"])


def test_conv_backward_minidl(benchmark, conv):
    _record(benchmark, conv, "minidl", backward=True)
    layer = _minidl_layer(conv)
    ctx = CallContext(layer)
    layer.forward(ctx, conv["x"], training=True)
    dx = benchmark(layer.backward, ctx, conv["dy"], need_input_grad=conv["need_input_grad"])
    dkernel, dbias, expected_dx = conv["grads"]
    _close(ctx.grads[0], dkernel)
    _close(ctx.grads[1], dbias)
    if conv["need_input_grad"]:
        _close(dx, expected_dx)


def test_conv_forward_numpy(benchmark, conv):
    _record(benchmark, conv, "numpy", backward=False)
    out, _ = benchmark(conv_forward, conv["x"], conv["kernel"], conv["bias"])
    _close(out, conv["y"])


def test_conv_backward_numpy(benchmark, conv):
    _record(benchmark, conv, "numpy", backward=True)
    grads = benchmark(conv_backward, conv["dy"], conv["y"], conv["cols"], conv["kernel"],
                      conv["x"].shape, conv["need_input_grad"])
    for g, e in zip(grads, conv["grads"]):
        if e is not None:
            _close(g, e)


def _torch_operands(conv):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.ascontiguousarray(conv["x"].transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
    return torch, x, w, torch.from_numpy(conv["bias"])


def test_conv_forward_torch(benchmark, conv):
    torch, x, w, b = _torch_operands(conv)
    _record(benchmark, conv, "torch", backward=False)

    def forward():
        return torch.relu_(torch.nn.functional.conv2d(x, w, b))
    out = benchmark(forward)
    _close(out.numpy().transpose(0, 2, 3, 1), conv["y"])


def test_conv_backward_torch(benchmark, conv):
    torch, x, w, b = _torch_operands(conv)
    _record(benchmark, conv, "torch", backward=True)
    y = torch.from_numpy(np.ascontiguousarray(conv["y"].transpose(0, 3, 1, 2)))
    dy = torch.from_numpy(np.ascontiguousarray(conv["dy"].transpose(0, 3, 1, 2)))
    mask = [conv["need_input_grad"], True, True]

    def backward():
        # what autograd runs for relu(conv2d(x, w, b)): the ReLU mask, then the
        # convolution's own backward kernel
        dz = torch.ops.aten.threshold_backward(dy, y, 0)
        return torch.ops.aten.convolution_backward(dz, x, w, [w.shape[0]], [1, 1], [0, 0],
                                                   [1, 1], False, [0, 0], 1, mask)
    dx, dw, db = benchmark(backward)
    dkernel, dbias, expected_dx = conv["grads"]
    _close(dw.numpy().transpose(2, 3, 1, 0), dkernel)
    _close(db.numpy(), dbias)
    if conv["need_input_grad"]:
        _close(dx.numpy().transpose(0, 2, 3, 1), expected_dx)


# ---- the first block as the model trains it: conv1, its ReLU and the max pooling ----

@pytest.fixture(scope="module")
def block():
    """conv1's operands, a pooled output gradient, and numpy's results for them."""
    rng = np.random.default_rng(SEED + 2)
    x = rng.random((BATCH,) + IMAGE, dtype=np.float32)
    kernel = (rng.standard_normal((3, 3, 1, 32)) / 3).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, 32).astype(np.float32)
    y, cols = conv_forward(x, kernel, bias)
    pooled, argmax = maxpool_forward(y)
    dpooled = rng.standard_normal(pooled.shape, dtype=np.float32)
    dkernel, dbias, _ = conv_backward(maxpool_backward(dpooled, argmax, y.shape), y, cols,
                                      kernel, x.shape, need_input_grad=False)
    return dict(x=x, kernel=kernel, bias=bias, pooled=pooled, dpooled=dpooled,
                dkernel=dkernel, dbias=dbias, macs=y.size * 9)


def _record_block(benchmark, block, impl):
    benchmark.group = f"first block (conv1 + ReLU + max pooling), forward and dW, batch {BATCH}"
    benchmark.extra_info.update(impl=impl, flop=2.0 * 2 * block["macs"])


def test_first_block_minidl(benchmark, block):
    _record_block(benchmark, block, "minidl")
    layer = Conv2D(32, 3, activation="relu")
    layer.ensure_built(IMAGE)
    layer.set_weights([block["kernel"], block["bias"]])
    pool = MaxPooling2D()
    pool.ensure_built(layer.compute_output_shape(IMAGE))
    assert layer.can_pool_directly(pool)
    # The step a model's training plan runs for the pair (a first layer: no input gradient).
    first = LayerStep(layer, [0], [1])
    first.need_input_grads = [False]
    fused = ReluMaxPoolStep(first, LayerStep(pool, [1], [2]), direct=True)
    contexts = fused.contexts(record=True)

    def step():
        (out,) = fused.forward(contexts, [block["x"]], True)
        fused.backward(contexts, [block["dpooled"]])
        return out
    out = benchmark(step)
    _close(out, block["pooled"])
    _close(contexts[0].grads[0], block["dkernel"])
    _close(contexts[0].grads[1], block["dbias"])


def test_first_block_numpy(benchmark, block):
    _record_block(benchmark, block, "numpy")

    def step():
        y, cols = conv_forward(block["x"], block["kernel"], block["bias"])
        pooled, argmax = maxpool_forward(y)
        dy = maxpool_backward(block["dpooled"], argmax, y.shape)
        return pooled, conv_backward(dy, y, cols, block["kernel"], block["x"].shape, False)
    pooled, (dkernel, dbias, _) = benchmark(step)
    _close(pooled, block["pooled"])
    _close(dkernel, block["dkernel"])


def test_first_block_torch(benchmark, block):
    torch = pytest.importorskip("torch")
    _record_block(benchmark, block, "torch")
    x = torch.from_numpy(np.ascontiguousarray(block["x"].transpose(0, 3, 1, 2)))
    w = torch.from_numpy(np.ascontiguousarray(block["kernel"].transpose(3, 2, 0, 1)))
    b = torch.from_numpy(block["bias"])
    dpooled = torch.from_numpy(np.ascontiguousarray(block["dpooled"].transpose(0, 3, 1, 2)))
    aten = torch.ops.aten

    def step():
        # what autograd runs for max_pool2d(relu(conv2d(x, w, b)), 2), with no input
        # gradient for the first layer
        y = torch.relu_(torch.nn.functional.conv2d(x, w, b))
        pooled, indices = aten.max_pool2d_with_indices(y, [2, 2], [2, 2])
        dy = aten.max_pool2d_with_indices_backward(dpooled, y, [2, 2], [2, 2], [0, 0],
                                                   [1, 1], False, indices)
        dz = aten.threshold_backward(dy, y, 0)
        _, dw, db = aten.convolution_backward(dz, x, w, [w.shape[0]], [1, 1], [0, 0], [1, 1],
                                              False, [0, 0], 1, [False, True, True])
        return pooled, dw, db
    pooled, dw, db = benchmark(step)
    _close(pooled.numpy().transpose(0, 2, 3, 1), block["pooled"])
    _close(dw.numpy().transpose(2, 3, 1, 0), block["dkernel"])
    _close(db.numpy(), block["dbias"])
