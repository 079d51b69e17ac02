"""DepthwiseConv1D/2D and SeparableConv1D/2D: against PyTorch (grouped convolutions with
mapped weights), against a plain-numpy reference, float64 gradient checks, thread-count
determinism, Keras 3 shapes, parameter counts, weights and configs, bad arguments, and a
model that trains, saves and loads.

PyTorch is optional (those tests skip without it). It is NCHW with kernels (out, in / groups,
kh, kw): a depthwise kernel (kh, kw, c, dm) is the torch weight (c * dm, 1, kh, kw) of a
convolution with groups=c (output channel c * dm + m, Keras' order), and Keras' 'same'
padding (the odd zero after) is emulated with F.pad.
"""
import math
import os

import numpy as np
import pytest

import minidl
from minidl._core import _backend, _depthwise
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (BatchNormalization, CallContext, Conv1D, Conv2D, Dense,
                           DepthwiseConv1D, DepthwiseConv2D, GlobalAveragePooling2D, ReLU,
                           SeparableConv1D, SeparableConv2D)
from minidl.layers.base import LAYERS
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def same_pads(n, kernel, stride, dilation):
    """(before, after) zeros of Keras' 'same' padding along one axis."""
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


# ---- references ----

def numpy_depthwise(x, kernel, strides, padding, dilation):
    """The depthwise convolution of channels_last images x (n, h, w, c) with a (kh, kw, c, dm)
    kernel, tap by tap over a zero-padded copy (float64)."""
    n, h, w, c = x.shape
    kh, kw, _, dm = kernel.shape
    if padding == "same":
        (t, b), (l, r) = (same_pads(h, kh, strides[0], dilation[0]),
                          same_pads(w, kw, strides[1], dilation[1]))
        x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    hp, wp = x.shape[1:3]
    oh = (hp - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (wp - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((n, oh, ow, c, dm))
    for ky in range(kh):
        for kx in range(kw):
            rows = x[:, ky * dilation[0]:, kx * dilation[1]:][:, ::strides[0], ::strides[1]]
            y += rows[:, :oh, :ow, :, None] * kernel[ky, kx]
    return y.reshape(n, oh, ow, c * dm)


def torch_grouped_conv(x, weight, bias, dy, strides, padding, dilation, groups):
    """Output and gradients (x, weight, bias) of torch's conv2d with ``groups``, channels_last
    in and out; ``weight`` in torch's (out, in / groups, kh, kw) layout."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    src = xt
    if padding == "same":
        (t, b), (l, r) = (same_pads(x.shape[1], weight.shape[2], strides[0], dilation[0]),
                          same_pads(x.shape[2], weight.shape[3], strides[1], dilation[1]))
        src = F.pad(xt, (l, r, t, b))
    yt = F.conv2d(src, wt, bt, stride=tuple(strides), dilation=tuple(dilation), groups=groups)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    return (yt.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1),
            wt.grad.numpy(), None if bt is None else bt.grad.numpy())


def depthwise_to_torch(kernel):
    """(kh, kw, c, dm) -> torch's (c * dm, 1, kh, kw)."""
    kh, kw, c, dm = kernel.shape
    return np.ascontiguousarray(kernel.reshape(kh, kw, c * dm).transpose(2, 0, 1)[:, None])


def train_step(layer, x, dy):
    """Training forward and backward of one layer: (y, dx, weight gradients)."""
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True).copy()
    dx = ctx.backward(dy.copy(), need_input_grad=True)
    return y, (None if dx is None else dx.copy()), [g.copy() for g in ctx.grads]


def assert_scaled(got, want, rtol, what):
    scale = max(float(np.max(np.abs(want))), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=what)


TOL = {"float64": 1e-10, "float32": 1e-5}

DEPTHWISE_CASES = [   # kernel_size, strides, padding, dilation, depth_multiplier, input shape
    ((3, 3), (1, 1), "same", (1, 1), 1, (9, 8, 5)),
    ((3, 3), (2, 2), "same", (1, 1), 1, (9, 8, 20)),
    ((3, 3), (2, 2), "valid", (1, 1), 1, (10, 9, 37)),
    ((2, 3), (1, 2), "same", (2, 1), 2, (7, 9, 3)),
    ((3, 2), (1, 1), "valid", (2, 3), 3, (9, 10, 4)),
    ((1, 1), (1, 1), "valid", (1, 1), 2, (4, 5, 3)),
    ((5, 5), (1, 1), "same", (1, 1), 1, (3, 4, 33)),   # a kernel larger than the image
    ((3, 3), (1, 1), "same", (2, 2), 1, (9, 10, 40)),
    ((3, 3), (1, 1), "valid", (1, 1), 1, (6, 7, 35)),
]


def _case_id(case):
    k, s, p, d, dm, shape = case
    return f"k{k[0]}x{k[1]}_s{s[0]}x{s[1]}_{p}_d{d[0]}x{d[1]}_dm{dm}_c{shape[-1]}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[_case_id(c) for c in DEPTHWISE_CASES])
def test_depthwise_conv2d_matches_torch(case, dtype):
    kernel_size, strides, padding, dilation, dm, shape = case
    layer = DepthwiseConv2D(kernel_size, strides=strides, padding=padding, depth_multiplier=dm,
                            dilation_rate=dilation, dtype=dtype,
                            bias_initializer="random_normal")
    x = data((3,) + shape, 1)
    layer.build(shape)
    kernel, bias = [w.astype(np.float64) for w in layer.get_weights()]
    dy = data((3,) + layer.compute_output_shape(shape), 2)
    y, dx, (dk, db) = train_step(layer, x.astype(dtype), dy.astype(dtype))
    want_y, want_dx, want_dw, want_db = torch_grouped_conv(
        x, depthwise_to_torch(kernel), bias, dy, strides, padding, dilation, shape[-1])
    tol = TOL[dtype]
    assert_scaled(y, want_y, tol, "y")
    assert_scaled(layer(x.astype(dtype)), want_y, tol, "inference")
    assert_scaled(dx, want_dx, tol, "dx")
    assert_scaled(depthwise_to_torch(dk.astype(np.float64)), want_dw, tol, "dkernel")
    assert_scaled(db, want_db, tol, "dbias")


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[_case_id(c) for c in DEPTHWISE_CASES])
def test_depthwise_conv2d_matches_numpy(case):
    kernel_size, strides, padding, dilation, dm, shape = case
    layer = DepthwiseConv2D(kernel_size, strides=strides, padding=padding, depth_multiplier=dm,
                            dilation_rate=dilation, dtype="float64", use_bias=False)
    x = data((2,) + shape, 3)
    y = layer(x)
    want = numpy_depthwise(x, layer.get_weights()[0], strides, padding, dilation)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


KERNEL_CASES = [   # (n, h, w, c), kernel_size, depth_multiplier, strides, dilation, padding
    ((2, 9, 11, 70), (3, 3), 1, (1, 1), (1, 1), "same"),
    ((2, 9, 11, 45), (3, 3), 1, (2, 2), (1, 1), "same"),
    ((2, 8, 7, 19), (3, 3), 1, (1, 2), (2, 1), "valid"),
    ((2, 7, 9, 13), (2, 4), 2, (2, 1), (1, 2), "same"),
    ((1, 6, 6, 100), (5, 5), 1, (1, 1), (1, 1), "same"),
]


@pytest.mark.parametrize("arch", _backend.supported_archs())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_kernels_under_each_architecture(arch, dtype):
    # Every instruction set's version (vector blocks, masked tails, the 3x3 register paths)
    # against the numpy reference and its own gradients by linearity.
    previous = _backend.get_arch()
    try:
        _backend.set_arch(arch)
        for shape, kernel_size, dm, strides, dilation, padding in KERNEL_CASES:
            x = data(shape, 31)
            kernel = data(kernel_size + (shape[-1], dm), 32)
            want = numpy_depthwise(x, kernel, strides, padding, dilation)
            pads = tuple(same_pads(n, k, s, d)[0] if padding == "same" else 0
                         for n, k, s, d in zip(shape[1:3], kernel_size, strides, dilation))
            y = np.empty(want.shape, dtype)
            _depthwise.depthwise_forward(x.astype(dtype), kernel.astype(dtype), y, strides,
                                         dilation, pads)
            tol = TOL[np.dtype(dtype).name] * 10
            assert_scaled(y, want, tol, f"{arch} forward {shape}")
            # The gradients of sum(y * dy): dk by the forward pass on each tap's one-hot
            # kernel, dx as the adjoint: sum(dx * x) == sum(y * dy).
            dy = data(want.shape, 33)
            dk = np.empty(kernel.shape, dtype)
            dx = np.empty(shape, dtype)
            _depthwise.depthwise_backward(x.astype(dtype), dy.astype(dtype),
                                          kernel.astype(dtype), dk, dx, strides, dilation, pads)
            for index in [(0, 0, 0, 0), tuple(i - 1 for i in kernel.shape)]:
                one_hot = np.zeros_like(kernel)
                one_hot[index] = 1.0
                expected = np.sum(numpy_depthwise(x, one_hot, strides, padding, dilation) * dy)
                assert_scaled(dk[index], expected, tol * 10, f"{arch} dkernel {shape}")
            assert_scaled(np.sum(dx.astype(np.float64) * x), np.sum(want * dy), tol * 10,
                          f"{arch} dx {shape}")
    finally:
        _backend.set_arch(previous)


def test_depthwise_conv1d_matches_torch_conv1d():
    torch = pytest.importorskip("torch")
    layer = DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=2, dilation_rate=1,
                            dtype="float64", bias_initializer="random_normal")
    x = data((2, 11, 4), 4)
    layer.build((11, 4))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 4, 2) and bias.shape == (8,)
    dy = data((2, 6, 8), 5)
    y, dx, (dk, db) = train_step(layer, x, dy)
    xt = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    wt = torch.tensor(kernel.reshape(3, 8).T[:, None].copy(), requires_grad=True)
    t, b = same_pads(11, 3, 2, 1)
    yt = torch.nn.functional.conv1d(torch.nn.functional.pad(xt, (t, b)), wt,
                                    torch.tensor(bias), stride=2, groups=4)
    yt.backward(torch.tensor(dy.transpose(0, 2, 1)))
    assert_scaled(y, yt.detach().numpy().transpose(0, 2, 1), 1e-10, "y")
    assert_scaled(dx, xt.grad.numpy().transpose(0, 2, 1), 1e-10, "dx")
    assert_scaled(dk.reshape(3, 8).T[:, None], wt.grad.numpy(), 1e-10, "dkernel")


def _depthwise2d(*args, **kwargs):
    return lambda: DepthwiseConv2D(*args, dtype="float64", bias_initializer="random_normal",
                                   **kwargs)


def _depthwise1d(*args, **kwargs):
    return lambda: DepthwiseConv1D(*args, dtype="float64", bias_initializer="random_normal",
                                   **kwargs)


GRADIENT_CASES = [
    ("dw2d_valid_k3", _depthwise2d(3), (5, 6, 3)),
    ("dw2d_same_k3_s2_dm2", _depthwise2d(3, strides=2, padding="same", depth_multiplier=2),
     (5, 6, 3)),
    ("dw2d_same_k2x3_d2_relu", _depthwise2d((2, 3), padding="same", dilation_rate=2,
                                            activation="relu"), (5, 6, 2)),
    ("dw2d_valid_s3x2_nobias_dm3", _depthwise2d(2, strides=(3, 2), depth_multiplier=3,
                                                use_bias=False), (7, 6, 2)),
    ("dw2d_same_k5_gt_input_tanh", _depthwise2d(5, padding="same", activation="tanh"),
     (3, 4, 2)),
    ("dw1d_valid_k3_dm2", _depthwise1d(3, depth_multiplier=2), (7, 3)),
    ("dw1d_same_k4_s2_d2", _depthwise1d(4, strides=2, padding="same", dilation_rate=2), (9, 3)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_depthwise_gradients(case):
    _, factory, in_shape = case
    set_random_seed(0)
    check_layer_gradients(factory(), data((2,) + in_shape, 11))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make, shape", [
    (lambda d: DepthwiseConv2D(3, padding="same", activation="relu6", dtype=d), (8, 20, 20, 24)),
    (lambda d: DepthwiseConv2D(3, strides=2, depth_multiplier=2, dtype=d), (8, 21, 20, 6)),
    (lambda d: DepthwiseConv1D(5, padding="same", dtype=d), (8, 60, 16)),
], ids=["dw2d_same", "dw2d_s2_dm2", "dw1d_same"])
def test_depthwise_gives_the_same_bits_for_any_thread_count(make, shape, dtype):
    x = data(shape, 21).astype(dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = make(dtype)
        inference = layer(x)
        y, dx, grads = train_step(layer, x, data(layer.compute_output_shape(shape[1:]),
                                                 22)[None].repeat(shape[0], 0).astype(dtype))
        results.append((inference, y, dx, *grads))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)


def test_depthwise_first_layer_skips_input_gradient():
    x = data((3, 5, 6, 2), 12)
    dy = data((3, 5, 6, 4), 13)
    layer = DepthwiseConv2D(3, padding="same", depth_multiplier=2, dtype="float64")
    layer(x)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    full = ctx.backward(dy.copy(), need_input_grad=True)
    grads = [g.copy() for g in ctx.grads]
    ctx.forward(x, training=True)
    assert ctx.backward(dy.copy(), need_input_grad=False) is None
    assert full is not None
    for a, b in zip(grads, ctx.grads):
        np.testing.assert_array_equal(a, b)


def test_depthwise_accepts_unknown_spatial_sizes():
    model = Sequential([minidl.Input((None, None, 3)),
                        DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)])
    assert model.output_shape == (None, None, None, 6)
    for size in ((7, 9), (4, 4)):
        x = data((2,) + size + (3,), 3).astype("float32")
        want = numpy_depthwise(x.astype(np.float64), model.layers[0].get_weights()[0],
                               (2, 2), "same", (1, 1))
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-5)


# ---- Keras shapes, weights and configs ----

def test_depthwise_weights_and_config_follow_keras():
    layer = DepthwiseConv2D((3, 2), depth_multiplier=2, name="dw")
    layer.build((8, 8, 5))
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert [tuple(w.shape) for w in layer.weights] == [(3, 2, 5, 2), (10,)]
    config = layer.get_config()
    # The keys of Keras 3.15.1's DepthwiseConv2D.get_config().
    assert set(config) == {
        "name", "trainable", "dtype", "depth_multiplier", "kernel_size", "strides", "padding",
        "data_format", "dilation_rate", "activation", "use_bias", "depthwise_initializer",
        "bias_initializer", "depthwise_regularizer", "bias_regularizer",
        "activity_regularizer", "depthwise_constraint", "bias_constraint"}
    clone = LAYERS.lookup(type(layer).__name__).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("make, error, field", [
    (lambda: DepthwiseConv2D(3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=-2), ValueError, "depth_multiplier"),
    (lambda: DepthwiseConv2D(3, depth_multiplier=1.5), TypeError, "depth_multiplier"),
    (lambda: DepthwiseConv2D(0), ValueError, "kernel_size"),
    (lambda: DepthwiseConv2D(3, strides=(1, 0)), ValueError, "strides"),
    (lambda: DepthwiseConv2D(3, padding="causal"), ValueError, "padding"),
    (lambda: DepthwiseConv1D(3, padding="causal"), ValueError, "padding"),
    (lambda: DepthwiseConv2D(3, data_format="channels_middle"), ValueError, "data_format"),
    (lambda: DepthwiseConv2D(3, depthwise_initializer="nope"), ValueError,
     "depthwise_initializer"),
    (lambda: DepthwiseConv2D(3, depthwise_regularizer="nope"), ValueError,
     "depthwise_regularizer"),
    (lambda: DepthwiseConv2D(3, depthwise_constraint="nope"), ValueError,
     "depthwise_constraint"),
    (lambda: DepthwiseConv2D(3, use_bias="yes"), TypeError, "use_bias"),
])
def test_depthwise_refuses_bad_arguments(make, error, field):
    with pytest.raises(error, match=field):
        make()


def test_depthwise_refuses_bad_inputs():
    with pytest.raises(ValueError, match="4-D input"):
        DepthwiseConv2D(3).build((8, 3))
    with pytest.raises(ValueError, match="larger than its input"):
        DepthwiseConv2D(5).build((4, 4, 3))
    with pytest.raises(ValueError, match="channels"):
        DepthwiseConv2D(3).build((8, 8, None))
    layer = DepthwiseConv2D(3)
    layer.build((8, 8, 3))
    with pytest.raises(ValueError):
        layer(np.zeros((2, 8, 8, 4), "float32"))


# ---- models ----

def test_depthwise_model_trains_saves_and_loads(tmp_path):
    set_random_seed(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 8, 3)).astype("float32")
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")
    model = Sequential([minidl.Input((8, 8, 3)),
                        DepthwiseConv2D(3, padding="same", depth_multiplier=4),
                        BatchNormalization(), ReLU(6.0),
                        DepthwiseConv2D(3, strides=2, activation="relu"),
                        GlobalAveragePooling2D(), Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "dw.minidl"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in loaded.layers][0] == "DepthwiseConv2D"


def test_depthwise_under_gradient_tape():
    layer = DepthwiseConv2D(3, padding="same", depth_multiplier=2, dtype="float64",
                            bias_initializer="random_normal")
    x = data((2, 5, 5, 3), 7)
    w = data((2, 5, 5, 6), 8)
    with minidl.GradientTape() as tape:
        loss = minidl.ops.sum(layer(minidl.Tensor(x)) * w)
    grads = tape.gradient(loss, layer.trainable_weights)
    _, _, want = train_step(layer, x, w)
    for got, expected in zip(grads, want):
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)


# ---- separable convolutions ----

SEPARABLE_CASES = [   # kernel_size, strides, padding, dilation, depth_multiplier, filters, shape
    ((3, 3), (1, 1), "same", (1, 1), 1, 7, (9, 8, 5)),
    ((3, 3), (2, 2), "same", (1, 1), 2, 4, (9, 8, 6)),
    ((2, 3), (1, 1), "valid", (2, 1), 3, 5, (7, 9, 3)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", SEPARABLE_CASES, ids=[str(i) for i in range(len(SEPARABLE_CASES))])
def test_separable_conv2d_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    kernel_size, strides, padding, dilation, dm, filters, shape = case
    layer = SeparableConv2D(filters, kernel_size, strides=strides, padding=padding,
                            depth_multiplier=dm, dilation_rate=dilation, dtype=dtype,
                            activation="tanh", bias_initializer="random_normal")
    layer.build(shape)
    assert [w.name for w in layer.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    depthwise, pointwise, bias = [w.astype(np.float64) for w in layer.get_weights()]
    x = data((3,) + shape, 1)
    dy = data((3,) + layer.compute_output_shape(shape), 2)
    y, dx, (d_depthwise, d_pointwise, d_bias) = train_step(layer, x.astype(dtype),
                                                           dy.astype(dtype))
    # torch: the depthwise convolution (groups = channels), a 1x1 convolution, tanh.
    F = torch.nn.functional
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    dwt = torch.tensor(depthwise_to_torch(depthwise), requires_grad=True)
    pwt = torch.tensor(pointwise[0, 0].T[:, :, None, None].copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    src = xt
    if padding == "same":
        (t, b), (l, r) = (same_pads(shape[0], kernel_size[0], strides[0], dilation[0]),
                          same_pads(shape[1], kernel_size[1], strides[1], dilation[1]))
        src = F.pad(xt, (l, r, t, b))
    yt = torch.tanh(F.conv2d(F.conv2d(src, dwt, stride=strides, dilation=dilation,
                                      groups=shape[-1]), pwt, bt))
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    tol = TOL[dtype]
    assert_scaled(y, yt.detach().numpy().transpose(0, 2, 3, 1), tol, "y")
    assert_scaled(layer(x.astype(dtype)), yt.detach().numpy().transpose(0, 2, 3, 1), tol,
                  "inference")
    assert_scaled(dx, xt.grad.numpy().transpose(0, 2, 3, 1), tol, "dx")
    assert_scaled(depthwise_to_torch(d_depthwise.astype(np.float64)), dwt.grad.numpy(), tol,
                  "d_depthwise")
    assert_scaled(d_pointwise[0, 0].T, pwt.grad.numpy()[:, :, 0, 0], tol, "d_pointwise")
    assert_scaled(d_bias, bt.grad.numpy(), tol, "d_bias")


def test_separable_conv2d_matches_numpy():
    layer = SeparableConv2D(4, 3, strides=2, padding="same", depth_multiplier=2,
                            dtype="float64", bias_initializer="random_normal")
    x = data((2, 7, 6, 3), 3)
    y = layer(x)
    depthwise, pointwise, bias = layer.get_weights()
    want = numpy_depthwise(x, depthwise, (2, 2), "same", (1, 1)) @ pointwise[0, 0] + bias
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def _separable2d(*args, **kwargs):
    return lambda: SeparableConv2D(*args, dtype="float64", bias_initializer="random_normal",
                                   **kwargs)


def _separable1d(*args, **kwargs):
    return lambda: SeparableConv1D(*args, dtype="float64", bias_initializer="random_normal",
                                   **kwargs)


SEPARABLE_GRADIENT_CASES = [
    ("sep2d_valid_k3", _separable2d(4, 3), (5, 6, 3)),
    ("sep2d_same_s2_dm2_relu", _separable2d(3, 3, strides=2, padding="same",
                                            depth_multiplier=2, activation="relu"), (5, 6, 2)),
    ("sep2d_same_d2_nobias", _separable2d(2, (2, 3), padding="same", dilation_rate=2,
                                          use_bias=False), (5, 6, 2)),
    ("sep1d_same_k3_dm2", _separable1d(3, 3, padding="same", depth_multiplier=2), (7, 3)),
    ("sep1d_valid_s2_sigmoid", _separable1d(2, 4, strides=2, activation="sigmoid"), (9, 2)),
]


@pytest.mark.parametrize("case", SEPARABLE_GRADIENT_CASES,
                         ids=[c[0] for c in SEPARABLE_GRADIENT_CASES])
def test_separable_gradients(case):
    _, factory, in_shape = case
    set_random_seed(0)
    check_layer_gradients(factory(), data((2,) + in_shape, 11))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_separable_gives_the_same_bits_for_any_thread_count(dtype):
    x = data((8, 20, 20, 12), 21).astype(dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = SeparableConv2D(16, 3, strides=2, padding="same", activation="relu",
                                depth_multiplier=2, dtype=dtype)
        inference = layer(x)
        y, dx, grads = train_step(layer, x, data((8, 10, 10, 16), 22).astype(dtype))
        results.append((inference, y, dx, *grads))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)


def test_separable_weights_and_config_follow_keras():
    layer = SeparableConv1D(6, 3, depth_multiplier=2, name="sep")
    layer.build((10, 4))
    assert [(w.name, tuple(w.shape)) for w in layer.weights] == [
        ("depthwise_kernel", (3, 4, 2)), ("pointwise_kernel", (1, 8, 6)), ("bias", (6,))]
    config = layer.get_config()
    # The keys of Keras 3.15.1's SeparableConv1D.get_config().
    assert set(config) == {
        "name", "trainable", "dtype", "depth_multiplier", "filters", "kernel_size", "strides",
        "padding", "data_format", "dilation_rate", "activation", "use_bias",
        "depthwise_initializer", "pointwise_initializer", "bias_initializer",
        "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
        "activity_regularizer", "depthwise_constraint", "pointwise_constraint",
        "bias_constraint"}
    assert LAYERS.lookup("SeparableConvolution1D") is SeparableConv1D
    assert LAYERS.lookup("SeparableConvolution2D") is SeparableConv2D
    clone = SeparableConv1D.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("make, error, field", [
    (lambda: SeparableConv2D(0, 3), ValueError, "filters"),
    (lambda: SeparableConv2D(4, 3, depth_multiplier=0), ValueError, "depth_multiplier"),
    (lambda: SeparableConv2D(4, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: SeparableConv1D(4, 3, padding="causal"), ValueError, "padding"),
    (lambda: SeparableConv2D(4, 3, pointwise_initializer="nope"), ValueError,
     "pointwise_initializer"),
    (lambda: SeparableConv2D(4, 3, pointwise_constraint="nope"), ValueError,
     "pointwise_constraint"),
])
def test_separable_refuses_bad_arguments(make, error, field):
    with pytest.raises(error, match=field):
        make()


def test_separable_model_trains_saves_and_loads(tmp_path):
    set_random_seed(2)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 8, 8, 3)).astype("float32")
    labels = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int64")
    inputs = minidl.Input((8, 8, 3))
    hidden = SeparableConv2D(8, 3, padding="same", activation="relu",
                             pointwise_regularizer="l2")(inputs)
    hidden = SeparableConv2D(8, 3, strides=2, depth_multiplier=2)(hidden)
    outputs = Dense(2, activation="softmax")(GlobalAveragePooling2D()(hidden))
    model = minidl.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, labels, epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "sep.minidl"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

# ---- Keras 3.15.1's shapes, parameter counts and weight shapes ----

# from Keras 3.15.1 (KERAS_BACKEND=torch): layer, arguments, sample shape, output shape,
# count_params(), weight shapes in order; test_keras_table_is_keras_own recomputes it.
KERAS_TABLE = [
    ("DepthwiseConv2D", {'kernel_size': 3}, (9, 8, 5), (None, 7, 6, 5), 50, [(3, 3, 5, 1), (5,)]),
    ("DepthwiseConv2D", {'kernel_size': 3, 'strides': 2, 'padding': 'same', 'depth_multiplier': 2},
     (9, 8, 5), (None, 5, 4, 10), 100, [(3, 3, 5, 2), (10,)]),
    ("DepthwiseConv2D", {'kernel_size': (2, 3), 'dilation_rate': 2, 'use_bias': False},
     (9, 8, 4), (None, 7, 4, 4), 24, [(2, 3, 4, 1)]),
    ("DepthwiseConv2D", {'kernel_size': 5, 'padding': 'same', 'depth_multiplier': 3},
     (3, 4, 2), (None, 3, 4, 6), 156, [(5, 5, 2, 3), (6,)]),
    ("DepthwiseConv2D", {'kernel_size': 3, 'strides': (3, 2)},
     (10, 7, 6), (None, 3, 3, 6), 60, [(3, 3, 6, 1), (6,)]),
    ("DepthwiseConv1D", {'kernel_size': 3, 'depth_multiplier': 2},
     (10, 4), (None, 8, 8), 32, [(3, 4, 2), (8,)]),
    ("DepthwiseConv1D", {'kernel_size': 4, 'strides': 2, 'padding': 'same'},
     (9, 3), (None, 5, 3), 15, [(4, 3, 1), (3,)]),
    ("SeparableConv2D", {'filters': 8, 'kernel_size': 3},
     (9, 8, 5), (None, 7, 6, 8), 93, [(3, 3, 5, 1), (1, 1, 5, 8), (8,)]),
    ("SeparableConv2D", {'filters': 4, 'kernel_size': 3, 'strides': 2, 'padding': 'same',
                         'depth_multiplier': 2},
     (9, 8, 5), (None, 5, 4, 4), 134, [(3, 3, 5, 2), (1, 1, 10, 4), (4,)]),
    ("SeparableConv2D", {'filters': 6, 'kernel_size': (2, 3), 'dilation_rate': 2,
                         'use_bias': False},
     (9, 8, 4), (None, 7, 4, 6), 48, [(2, 3, 4, 1), (1, 1, 4, 6)]),
    ("SeparableConv1D", {'filters': 5, 'kernel_size': 3, 'depth_multiplier': 3},
     (10, 4), (None, 8, 5), 101, [(3, 4, 3), (1, 12, 5), (5,)]),
    ("SeparableConv1D", {'filters': 2, 'kernel_size': 2, 'strides': 3, 'padding': 'same'},
     (10, 4), (None, 4, 2), 18, [(2, 4, 1), (1, 4, 2), (2,)]),
    ("Conv2D", {'filters': 8, 'kernel_size': 3, 'groups': 2},
     (9, 8, 4), (None, 7, 6, 8), 152, [(3, 3, 2, 8), (8,)]),
    ("Conv2D", {'filters': 6, 'kernel_size': 3, 'strides': 2, 'padding': 'same', 'groups': 3},
     (9, 8, 6), (None, 5, 4, 6), 114, [(3, 3, 2, 6), (6,)]),
    ("Conv1D", {'filters': 4, 'kernel_size': 3, 'groups': 4, 'padding': 'causal'},
     (10, 8), (None, 10, 4), 28, [(3, 2, 4), (4,)]),
]

_LAYERS = {"DepthwiseConv2D": DepthwiseConv2D, "DepthwiseConv1D": DepthwiseConv1D,
           "SeparableConv2D": SeparableConv2D, "SeparableConv1D": SeparableConv1D,
           "Conv2D": Conv2D, "Conv1D": Conv1D}


@pytest.mark.parametrize("row", KERAS_TABLE,
                         ids=[f"{r[0]}_{i}" for i, r in enumerate(KERAS_TABLE)])
def test_shapes_and_parameters_follow_keras(row):
    name, kwargs, shape, output, params, weights = row
    layer = _LAYERS[name](**kwargs)
    assert (None,) + layer.compute_output_shape(shape) == output
    layer.build(shape)
    assert layer.count_params() == params
    assert [tuple(w.shape) for w in layer.weights] == weights
    y = layer(data((2,) + shape, 9).astype("float32"))
    assert y.shape == (2,) + output[1:]


def test_keras_table_is_keras_own():
    os.environ.setdefault("KERAS_BACKEND", "torch")   # the backend installed beside keras here
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the table was computed with KERAS_BACKEND=torch")
    for name, kwargs, shape, output, params, weights in KERAS_TABLE:
        layer = getattr(keras.layers, name)(**kwargs)
        assert tuple(layer.compute_output_shape((None,) + shape)) == output
        layer.build((None,) + shape)
        assert layer.count_params() == params
        assert [tuple(w.shape) for w in layer.weights] == weights


def test_depthwise_and_separable_constraints_apply_after_each_update():
    set_random_seed(4)
    x = data((32, 6, 6, 2), 5).astype("float32")
    y = data((32, 2), 6).astype("float32")
    model = Sequential([minidl.Input((6, 6, 2)),
                        DepthwiseConv2D(3, depthwise_constraint="non_neg"),
                        SeparableConv2D(4, 3, pointwise_constraint="non_neg",
                                        depthwise_constraint="non_neg"),
                        GlobalAveragePooling2D(), Dense(2)])
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    depthwise, separable = model.layers[0], model.layers[1]
    assert depthwise.get_config()["depthwise_constraint"]["class_name"] == "NonNeg"
    for weight in (depthwise.kernel, separable.depthwise_kernel, separable.pointwise_kernel):
        assert np.min(np.asarray(weight.value)) >= 0.0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # keras' torch backend, numpy 2
def test_outputs_match_keras():
    # Keras' own layers with the same weights: the channel order of the depth multiplier,
    # the 'same' padding, the grouped kernel's layout.
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("checked with KERAS_BACKEND=torch")
    x = data((2, 9, 8, 6), 40).astype("float32")
    for name, kwargs in [
            ("DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same",
                                     depth_multiplier=2)),
            ("DepthwiseConv1D", dict(kernel_size=3, padding="same", depth_multiplier=3)),
            ("SeparableConv2D", dict(filters=5, kernel_size=(2, 3), depth_multiplier=2,
                                     padding="same", activation="relu")),
            ("SeparableConv1D", dict(filters=4, kernel_size=2, strides=2)),
            ("Conv2D", dict(filters=4, kernel_size=3, groups=2, padding="same")),
            ("Conv1D", dict(filters=6, kernel_size=3, groups=3))]:
        inputs = x if name.endswith("2D") else x[:, 0]
        ours = _LAYERS[name](**kwargs)
        ours.build(inputs.shape[1:])
        theirs = getattr(keras.layers, name)(**kwargs)
        theirs.build(inputs.shape)
        weights = [data(w.shape, 41 + i).astype("float32")
                   for i, w in enumerate(ours.get_weights())]
        ours.set_weights(weights)
        theirs.set_weights(weights)
        want = keras.ops.convert_to_numpy(theirs(inputs))
        assert_scaled(ours(inputs), want, 1e-5, name)
