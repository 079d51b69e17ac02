"""Conv1D and Conv2D: the numpy reference against PyTorch, the layers against the reference
(float64 and float32), float64 gradient checks, thread-count determinism, Keras shapes,
errors, config, saving and training.

Gradient checks compare ``backward`` (the training path) against central differences of the
inference path ``layer(x)`` for the scalar ``sum(layer(x) * w)``, so ``dy = w``.

PyTorch is optional (the tests that use it skip without it). It is NCHW with kernels
``(out, in, kh, kw)`` and pads symmetrically, so the helpers here transpose, and emulate
Keras' 'same' padding (an odd total puts the extra zero after) and 'causal' with ``F.pad``
computed from Keras' formula, written out below independently of the reference.
"""
import json
import math

import numpy as np
import pytest

import minidl
from minidl._ref import convolution as ref
from minidl._ref.gradcheck import assert_close, check_layer_gradients
from minidl.layers import (AveragePooling2D, BatchNormalization, CallContext, Conv1D, Conv2D,
                           Dense, Dropout, Flatten, GlobalAveragePooling1D, GlobalMaxPooling2D,
                           MaxPooling1D, MaxPooling2D)
from minidl.layers import get as get_layer
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def keras_length(n, kernel, stride, padding, dilation=1):
    """Output length along one axis, as Keras documents it."""
    if padding == "valid":
        return math.floor((n - ((kernel - 1) * dilation + 1)) / stride) + 1
    return math.ceil(n / stride)   # 'same' and 'causal'


def keras_pads(n, kernel, stride, padding, dilation=1):
    """(before, after) zeros along one axis, as TensorFlow pads for Keras."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return (kernel - 1) * dilation, 0
    out = keras_length(n, kernel, stride, padding, dilation)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


# ---- PyTorch, channels-last in and out ----

def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)   # tiny tensors: more threads only add overhead
    return torch


def torch_conv2d(x, kernel, bias, dy, strides, padding, dilation):
    """(y, dx, dkernel, dbias) of a Keras Conv2D by PyTorch autograd; dy given."""
    torch = _torch()
    F = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    kt = torch.tensor(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    (top, bottom), (left, right) = (keras_pads(n, k, s, padding, d) for n, k, s, d in
                                    zip(x.shape[1:3], kernel.shape[:2], strides, dilation))
    y = F.conv2d(F.pad(xt, (left, right, top, bottom)), kt, bt, stride=strides,
                 dilation=dilation)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 3, 1, 2))))
    return (y.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1),
            kt.grad.numpy().transpose(2, 3, 1, 0), None if bt is None else bt.grad.numpy())


def torch_conv1d(x, kernel, bias, dy, stride, padding, dilation):
    """(y, dx, dkernel, dbias) of a Keras Conv1D by PyTorch autograd; dy given."""
    torch = _torch()
    F = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 2, 1)), requires_grad=True)
    kt = torch.tensor(np.ascontiguousarray(kernel.transpose(2, 1, 0)), requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    left, right = keras_pads(x.shape[1], kernel.shape[0], stride, padding, dilation)
    y = F.conv1d(F.pad(xt, (left, right)), kt, bt, stride=stride, dilation=dilation)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 2, 1))))
    return (y.detach().numpy().transpose(0, 2, 1), xt.grad.numpy().transpose(0, 2, 1),
            kt.grad.numpy().transpose(2, 1, 0), None if bt is None else bt.grad.numpy())


# ---- the grid ----

KERNELS = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3), (3, 1)]
STRIDES = [(1, 1), (2, 2), (3, 3), (2, 1)]
DILATIONS = [(1, 1), (2, 2)]
PADDINGS = ["valid", "same"]


def _pair_id(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)


grid2d = pytest.mark.parametrize("kernel_size, strides, padding, dilation", [
    (k, s, p, d) for k in KERNELS for s in STRIDES for p in PADDINGS for d in DILATIONS
], ids=_pair_id)

grid1d = pytest.mark.parametrize("kernel_size, stride, padding, dilation", [
    (k, s, p, d) for k in (1, 2, 3, 5) for s in (1, 2, 3) for p in ("valid", "same", "causal")
    for d in (1, 2)
], ids=_pair_id)


def image_size(kernel, dilation):
    """Odd sizes (7, 9), grown to (11, 13) when the dilated kernel would not fit 'valid'."""
    span = max((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    return (7, 9) if span <= 7 else (11, 13)


def out_size2d(size, kernel, strides, padding, dilation):
    return tuple(keras_length(n, k, s, padding, d)
                 for n, k, s, d in zip(size, kernel, strides, dilation))


# ---- the reference against PyTorch ----

CHANNELS_FILTERS = [(1, 1), (1, 4), (3, 1), (3, 4)]


def _compare_reference(got, want, what):
    for g, w, name in zip(got, want, ("y", "dx", "dkernel", "dbias")):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"{name}, {what}")


@grid2d
def test_reference_conv2d_matches_torch(kernel_size, strides, padding, dilation):
    size = image_size(kernel_size, dilation)
    out = out_size2d(size, kernel_size, strides, padding, dilation)
    for channels, filters in CHANNELS_FILTERS:
        x = data((2,) + size + (channels,), 1)
        kernel, bias = data(kernel_size + (channels, filters), 2), data((filters,), 3)
        dy = data((2,) + out + (filters,), 4)
        want = torch_conv2d(x, kernel, bias, dy, strides, padding, dilation)
        got = (ref.conv2d_forward(x, kernel, bias, strides, padding, dilation),
               *ref.conv2d_backward(x, kernel, dy, strides, padding, dilation))
        _compare_reference(got, want, f"channels={channels} filters={filters}")


@pytest.mark.parametrize("size, kernel_size, strides, padding, dilation", [
    ((3, 4), (5, 5), (1, 1), "same", (1, 1)),    # kernel larger than the input
    ((3, 4), (4, 3), (2, 2), "same", (2, 1)),
    ((1, 1), (3, 3), (1, 1), "same", (1, 1)),
    ((1, 5), (1, 2), (1, 3), "valid", (1, 1)),   # stride larger than the kernel
    ((6, 6), (2, 2), (1, 1), "same", (1, 1)),    # even kernel: the extra zero goes after
    ((8, 8), (3, 3), (3, 2), "same", (2, 3)),
], ids=["k_gt_input", "k_gt_input_s2_d2", "1x1_input", "s_gt_k", "even_kernel", "s32_d23"])
def test_reference_conv2d_edge_cases_match_torch(size, kernel_size, strides, padding,
                                                 dilation):
    out = out_size2d(size, kernel_size, strides, padding, dilation)
    x = data((2,) + size + (3,), 5)
    kernel, bias = data(kernel_size + (3, 2), 6), data((2,), 7)
    dy = data((2,) + out + (2,), 8)
    want = torch_conv2d(x, kernel, bias, dy, strides, padding, dilation)
    got = (ref.conv2d_forward(x, kernel, bias, strides, padding, dilation),
           *ref.conv2d_backward(x, kernel, dy, strides, padding, dilation))
    _compare_reference(got, want, "edge case")


@grid1d
def test_reference_conv1d_matches_torch(kernel_size, stride, padding, dilation):
    steps = 11
    out = keras_length(steps, kernel_size, stride, padding, dilation)
    for channels, filters in CHANNELS_FILTERS:
        x = data((2, steps, channels), 1)
        kernel, bias = data((kernel_size, channels, filters), 2), data((filters,), 3)
        dy = data((2, out, filters), 4)
        want = torch_conv1d(x, kernel, bias, dy, stride, padding, dilation)
        got = (ref.conv1d_forward(x, kernel, bias, stride, padding, dilation),
               *ref.conv1d_backward(x, kernel, dy, stride, padding, dilation))
        _compare_reference(got, want, f"channels={channels} filters={filters}")


def test_reference_padding_follows_keras():
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in (1, 2, 3):
                    for padding in ("valid", "same", "causal"):
                        assert ref.conv_output_length(n, k, s, padding, d) == \
                            keras_length(n, k, s, padding, d)
                        assert ref.conv_padding(n, k, s, padding, d) == \
                            keras_pads(n, k, s, padding, d)
    assert ref.conv_padding(6, 2, 1, "same") == (0, 1)    # extra zero after, as TensorFlow
    assert ref.conv_padding(7, 4, 2, "same") == (1, 2)
    assert ref.conv_padding(5, 3, 1, "causal", 2) == (4, 0)


def test_reference_conv2d_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(2, 2, 1, 1)
    # valid: x[p, q] - x[p + 1, q + 1]
    np.testing.assert_array_equal(ref.conv2d_forward(x, kernel)[0, :, :, 0], [[-4, -4], [-4, -4]])
    # same: pads one zero after in each axis
    np.testing.assert_array_equal(ref.conv2d_forward(x, kernel, padding="same")[0, :, :, 0],
                                  [[-4, -4, 3], [-4, -4, 6], [7, 8, 9]])


# ---- the layers against the reference ----

# (channels, filters, activation, use_bias), four variants per grid cell
LAYER_VARIANTS = [(1, 1, "relu", True), (3, 4, "linear", False), (3, 1, "relu", False),
                  (1, 4, None, True)]
RTOL = {"float64": 1e-12, "float32": 1e-5}


def check_conv_against_reference(layer, x, kernel, bias, forward, backward, args, relu, rtol):
    """Layer forward (inference and training) and backward against the reference, with
    errors bounded relative to the same sums over absolute values."""
    z = forward(x, kernel, bias, *args)
    mag = forward(np.abs(x), np.abs(kernel), None if bias is None else np.abs(bias), *args)
    y = layer(x)
    assert y.dtype == np.dtype(layer.dtype)
    assert_close(y, np.maximum(z, 0) if relu else z, mag, rtol, f"{layer.name}: output")
    ctx = CallContext(layer)
    assert_close(ctx.forward(x.astype(layer.dtype), training=True),
                 np.maximum(z, 0) if relu else z, mag, rtol, f"{layer.name}: training output")
    dy = data(z.shape, 9).astype(layer.dtype)
    dz = dy * (y > 0) if relu else dy   # the layer's own relu mask
    dx = ctx.backward(dy.copy(), need_input_grad=True)
    assert dx.dtype == np.dtype(layer.dtype) and dx.shape == x.shape
    want = backward(x, kernel, dz, *args)
    mags = backward(np.abs(x), np.abs(kernel), np.abs(dz), *args)
    assert_close(dx, want[0], mags[0], rtol, f"{layer.name}: dx")
    assert_close(ctx.grads[0], want[1], mags[1], rtol, f"{layer.name}: dkernel")
    if bias is not None:
        assert_close(ctx.grads[1], want[2], mags[2], rtol, f"{layer.name}: dbias")
    assert len(ctx.grads) == (2 if bias is not None else 1)


def _set_random_weights(layer, kernel_shape, filters, use_bias, seed):
    weights = [data(kernel_shape, seed)] + ([data((filters,), seed + 1)] if use_bias else [])
    layer.set_weights(weights)
    got = layer.get_weights()   # rounded to the layer's dtype
    return got[0].astype(np.float64), got[1].astype(np.float64) if use_bias else None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@grid2d
def test_conv2d_layer_matches_reference(kernel_size, strides, padding, dilation, dtype):
    size = image_size(kernel_size, dilation)
    for channels, filters, activation, use_bias in LAYER_VARIANTS:
        x = data((2,) + size + (channels,), 1).astype(dtype)
        layer = Conv2D(filters, kernel_size, strides=strides, padding=padding,
                       dilation_rate=dilation, activation=activation, use_bias=use_bias,
                       dtype=dtype)
        layer(x[:1])
        kernel, bias = _set_random_weights(layer, kernel_size + (channels, filters), filters,
                                           use_bias, 2)
        check_conv_against_reference(layer, x.astype(np.float64), kernel, bias,
                                     ref.conv2d_forward, ref.conv2d_backward,
                                     (strides, padding, dilation), activation == "relu",
                                     RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@grid1d
def test_conv1d_layer_matches_reference(kernel_size, stride, padding, dilation, dtype):
    for channels, filters, activation, use_bias in LAYER_VARIANTS:
        x = data((2, 11, channels), 1).astype(dtype)
        layer = Conv1D(filters, kernel_size, strides=stride, padding=padding,
                       dilation_rate=dilation, activation=activation, use_bias=use_bias,
                       dtype=dtype)
        layer(x[:1])
        kernel, bias = _set_random_weights(layer, (kernel_size, channels, filters), filters,
                                           use_bias, 2)
        check_conv_against_reference(layer, x.astype(np.float64), kernel, bias,
                                     ref.conv1d_forward, ref.conv1d_backward,
                                     (stride, padding, dilation), activation == "relu",
                                     RTOL[dtype])


def test_conv2d_kernel_larger_than_input_with_same_padding():
    x = data((2, 3, 4, 2), 3)
    layer = Conv2D(3, 5, padding="same", dtype="float64")
    layer(x)
    kernel, bias = _set_random_weights(layer, (5, 5, 2, 3), 3, True, 4)
    check_conv_against_reference(layer, x, kernel, bias, ref.conv2d_forward,
                                 ref.conv2d_backward, ((1, 1), "same", (1, 1)), False, 1e-12)


def test_conv_layers_accept_any_layout_and_input_dtype():
    rng = np.random.default_rng(10)
    wide = rng.standard_normal((3, 6, 10, 2))
    strided = wide[:, :, ::2]
    layer = Conv2D(4, 3, padding="same")
    expected = layer(np.ascontiguousarray(strided, dtype=np.float32))
    np.testing.assert_array_equal(layer(strided), expected)   # float64 in, float32 layer
    np.testing.assert_array_equal(layer(np.asfortranarray(strided, dtype=np.float32)), expected)
    out = layer(strided)
    np.asarray(out)[...] = 0   # a new array
    np.testing.assert_array_equal(layer(strided), expected)
    assert layer(np.zeros((0, 6, 5, 2))).shape == (0, 6, 5, 4)
    seq = Conv1D(2, 3, padding="causal")
    np.testing.assert_array_equal(seq(wide[:, 0, ::2]),
                                  seq(np.ascontiguousarray(wide[:, 0, ::2], np.float32)))


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2D(3, 3, strides=2, padding="same", activation="relu", dtype="float64"),
     (6, 7, 2)),
    (lambda: Conv1D(3, 3, padding="causal", use_bias=False, dtype="float64"), (9, 2)),
], ids=["conv2d", "conv1d"])
def test_conv_training_buffers_follow_the_batch_size(make, shape):
    # forward/backward reuse buffers sized for the largest batch: a smaller batch, then a
    # larger one, must give what a fresh layer gives
    layer = make()
    layer(np.zeros((1,) + shape))
    ctx = CallContext(layer)   # one context, its buffers reused from batch to batch
    for n, seed in ((5, 1), (3, 2), (5, 3), (1, 4), (7, 5)):
        x = data((n,) + shape, seed)
        y = ctx.forward(x, training=True).copy()
        dy = data(y.shape, seed + 10)
        dx = ctx.backward(dy.copy()).copy()
        grads = [g.copy() for g in ctx.grads]
        fresh = make()
        fresh(x[:1])
        fresh.set_weights(layer.get_weights())
        fresh_ctx = CallContext(fresh)
        np.testing.assert_array_equal(y, fresh_ctx.forward(x, training=True),
                                      err_msg=f"y, n={n}")
        np.testing.assert_array_equal(dx, fresh_ctx.backward(dy.copy()), err_msg=f"dx, n={n}")
        for a, b in zip(grads, fresh_ctx.grads):
            np.testing.assert_array_equal(a, b, err_msg=f"grads, n={n}")


# ---- float64 gradient checks ----

def _conv2d(*args, **kwargs):
    return lambda: Conv2D(*args, dtype="float64", bias_initializer="random_normal", **kwargs)


def _conv1d(*args, **kwargs):
    return lambda: Conv1D(*args, dtype="float64", bias_initializer="random_normal", **kwargs)


GRADIENT_CASES = [
    ("conv2d_valid_k3", _conv2d(3, 3), (5, 6, 2)),
    ("conv2d_same_k3_s2", _conv2d(2, 3, strides=2, padding="same"), (5, 6, 3)),
    ("conv2d_same_k2x3_s2x1_d2", _conv2d(2, (2, 3), strides=(2, 1), padding="same",
                                         dilation_rate=2), (5, 6, 2)),
    ("conv2d_valid_k2_s2_d2x1", _conv2d(2, 2, strides=2, dilation_rate=(2, 1)), (5, 6, 2)),
    ("conv2d_same_relu_nobias", _conv2d(3, 3, padding="same", activation="relu",
                                        use_bias=False), (5, 6, 2)),
    ("conv2d_k1", _conv2d(3, 1), (4, 5, 2)),
    ("conv2d_valid_s3_unused_rows", _conv2d(2, 2, strides=3), (5, 6, 2)),
    ("conv2d_same_k5_gt_input_tanh", _conv2d(2, 5, padding="same", activation="tanh"),
     (3, 4, 2)),
    ("conv2d_same_s3x2_d2x3", _conv2d(2, 3, strides=(3, 2), padding="same",
                                      dilation_rate=(2, 3)), (6, 7, 2)),
    ("conv1d_valid_k3", _conv1d(3, 3), (7, 3)),
    ("conv1d_same_k4_s2", _conv1d(2, 4, strides=2, padding="same"), (7, 3)),
    ("conv1d_causal_k3_d2", _conv1d(2, 3, padding="causal", dilation_rate=2), (7, 3)),
    ("conv1d_causal_s2_relu_nobias", _conv1d(3, 2, strides=2, padding="causal",
                                             activation="relu", use_bias=False), (7, 2)),
    ("conv1d_same_k2_d3_s3", _conv1d(2, 2, strides=3, padding="same", dilation_rate=3),
     (8, 2)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_conv_gradients(case):
    _, factory, in_shape = case
    set_random_seed(0)   # the kernel initializer draws from the global generator
    check_layer_gradients(factory(), data((2,) + in_shape, 11))


def test_conv_first_layer_skips_input_gradient():
    x = data((3, 5, 6, 2), 12)
    dy = data((3, 5, 6, 4), 13)
    layer = Conv2D(4, 3, padding="same", activation="relu", dtype="float64")
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


def test_conv_float32_training_matches_float64():
    x = data((4, 6, 7, 3), 14)
    dy = data((4, 3, 4, 5), 15)
    out = {}
    for dtype in ("float32", "float64"):
        layer = Conv2D(5, 3, strides=2, padding="same", activation="gelu", dtype=dtype,
                       kernel_initializer=minidl.initializers.GlorotUniform(seed=3))
        layer(x[:1].astype(dtype))
        ctx = CallContext(layer)
        y = ctx.forward(x.astype(dtype), training=True)
        dx = ctx.backward(dy.astype(dtype))
        assert y.dtype == dtype and dx.dtype == dtype and ctx.grads[0].dtype == dtype
        out[dtype] = (y.copy(), dx.copy(), ctx.grads[0].copy(), ctx.grads[1].copy())
    for a, b in zip(out["float32"], out["float64"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---- the layers against PyTorch (the 1e-5 requirement) ----

def test_conv2d_layer_matches_torch_same_stride2_dilation2():
    x = data((2, 9, 8, 3), 16)
    layer = Conv2D(4, 3, strides=2, padding="same", dilation_rate=2, dtype="float64",
                   bias_initializer="random_normal")
    layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(y.shape, 17)
    dx = ctx.backward(dy.copy())
    kernel, bias = layer.get_weights()
    want = torch_conv2d(x, kernel, bias, dy, (2, 2), "same", (2, 2))
    for got, expected, what in zip((y, dx, *ctx.grads), want, ("y", "dx", "dkernel", "dbias")):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9, err_msg=what)


def test_conv1d_layer_matches_torch_causal():
    x = data((2, 10, 3), 18)
    layer = Conv1D(4, 3, padding="causal", dilation_rate=2, dtype="float64",
                   bias_initializer="random_normal")
    layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(y.shape, 19)
    dx = ctx.backward(dy.copy())
    kernel, bias = layer.get_weights()
    want = torch_conv1d(x, kernel, bias, dy, 1, "causal", 2)
    for got, expected, what in zip((y, dx, *ctx.grads), want, ("y", "dx", "dkernel", "dbias")):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9, err_msg=what)


def test_causal_output_ignores_the_future():
    x = data((1, 9, 2), 20)
    layer = Conv1D(3, 3, padding="causal", dilation_rate=2, dtype="float64")
    before = layer(x)
    x[0, 5:] += 1.0
    after = layer(x)
    np.testing.assert_array_equal(after[0, :5], before[0, :5])
    assert not np.allclose(after[0, 5:], before[0, 5:])


# ---- thread counts ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make, shape", [
    (lambda d: Conv2D(16, 3, padding="same", activation="relu", dtype=d), (16, 20, 20, 8)),
    (lambda d: Conv2D(16, (3, 2), strides=2, dilation_rate=(1, 2), dtype=d), (16, 20, 20, 8)),
    (lambda d: Conv1D(16, 5, padding="causal", dtype=d), (16, 60, 8)),
], ids=["conv2d_same", "conv2d_s2_d2", "conv1d_causal"])
def test_conv_gives_the_same_bits_for_any_thread_count(make, shape, dtype):
    x = data(shape, 21).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = make(dtype)
        inference = layer(x)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        dx = ctx.backward(data(y.shape, 22).astype(dtype)).copy()
        results.append((inference, y, dx, *[g.copy() for g in ctx.grads]))
    for other in results[1:]:
        for a, b, what in zip(results[0], other, ("inference", "y", "dx", "dkernel", "dbias")):
            np.testing.assert_array_equal(a, b, err_msg=what)


# ---- shapes ----

SHAPE_GRID = [(size, k, s, d, p)
              for size in ((7, 9), (4, 6), (1, 5), (10, 3))
              for k in ((1, 1), (3, 3), (2, 5))
              for s in ((1, 1), (2, 2), (3, 2))
              for d in ((1, 1), (2, 2), (1, 3))
              for p in ("valid", "same")]


def test_conv2d_output_shapes_follow_keras():
    checked = 0
    for size, k, s, d, p in SHAPE_GRID:
        out = out_size2d(size, k, s, p, d)
        if min(out) <= 0:
            continue
        layer = Conv2D(3, k, strides=s, dilation_rate=d, padding=p)
        expected = out + (3,)
        assert tuple(layer.compute_output_shape(size + (2,))) == expected, (size, k, s, d, p)
        assert layer(np.ones((2,) + size + (2,))).shape == (2,) + expected, (size, k, s, d, p)
        checked += 1
    assert checked > 100


def test_conv1d_output_shapes_follow_keras():
    for steps in (1, 2, 5, 8, 13):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                for d in (1, 2):
                    for p in ("valid", "same", "causal"):
                        out = keras_length(steps, k, s, p, d)
                        if out <= 0:
                            continue
                        layer = Conv1D(2, k, strides=s, dilation_rate=d, padding=p)
                        assert tuple(layer.compute_output_shape((steps, 3))) == (out, 2)
                        assert layer(np.ones((2, steps, 3))).shape == (2, out, 2)


def test_sequential_cnn_summary_and_param_counts():
    model = Sequential([Conv2D(8, 3, padding="same", input_shape=(9, 7, 3)), MaxPooling2D(),
                        Conv2D(4, (2, 3), strides=2), GlobalMaxPooling2D(), Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for shape in ("(None, 9, 7, 8)", "(None, 4, 3, 8)", "(None, 2, 1, 4)", "(None, 4)",
                  "(None, 2)"):
        assert shape in text, shape
    counts = [3 * 3 * 3 * 8 + 8, 0, 2 * 3 * 8 * 4 + 4, 0, 4 * 2 + 2]
    assert [layer.count_params() for layer in model.layers] == counts
    assert model.count_params() == sum(counts)
    assert f"{sum(counts):,}" in text
    assert model.predict(np.ones((3, 9, 7, 3), np.float32), verbose=0).shape == (3, 2)
    single = Sequential([Conv1D(5, 4, input_shape=(10, 3))])
    assert single.count_params() == 4 * 3 * 5 + 5
    assert [w.shape for w in single.get_weights()] == [(4, 3, 5), (5,)]


def test_conv_weights_follow_keras():
    layer = Conv2D(8, (3, 2))
    assert layer.get_weights() == []
    layer(np.zeros((1, 5, 5, 4), np.float32))
    assert layer.param_names == ["kernel", "bias"]
    assert [p.shape for p in layer.params] == [(3, 2, 4, 8), (8,)]
    assert [g.shape for g in CallContext(layer).grads] == [(3, 2, 4, 8), (8,)]
    kernel, bias = layer.get_weights()
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(bias, 0)
    limit = np.sqrt(6 / (3 * 2 * 4 + 3 * 2 * 8))   # glorot_uniform with receptive fields
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.7 * limit
    nobias = Conv1D(3, 2, use_bias=False)
    nobias(np.zeros((1, 4, 2), np.float32))
    assert [p.shape for p in nobias.params] == [(2, 2, 3)]
    with pytest.raises(ValueError, match="kernel"):
        layer.set_weights([np.zeros((3, 3, 4, 8)), np.zeros(8)])


# ---- bad arguments and inputs ----

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: Conv2D(0, 3), ValueError, "filters"),
    (lambda: Conv2D(-2, 3), ValueError, "filters"),
    (lambda: Conv2D(2.5, 3), (ValueError, TypeError), "filters"),
    (lambda: Conv2D(True, 3), (ValueError, TypeError), "filters"),
    (lambda: Conv2D(4, 0), ValueError, "kernel_size"),
    (lambda: Conv2D(4, (3, -1)), ValueError, "kernel_size"),
    (lambda: Conv2D(4, (3, 3, 3)), ValueError, "kernel_size"),
    (lambda: Conv2D(4, 2.5), (ValueError, TypeError), "kernel_size"),
    (lambda: Conv2D(4, "3"), (ValueError, TypeError), "kernel_size"),
    (lambda: Conv2D(4, 3, strides=0), ValueError, "strides"),
    (lambda: Conv2D(4, 3, strides=(1, -2)), ValueError, "strides"),
    (lambda: Conv2D(4, 3, strides=(1,)), ValueError, "strides"),
    (lambda: Conv2D(4, 3, strides=(2.0, 2)), (ValueError, TypeError), "strides"),
    (lambda: Conv2D(4, 3, strides=True), (ValueError, TypeError), "strides"),
    (lambda: Conv2D(4, 3, dilation_rate=0), ValueError, "dilation_rate"),
    (lambda: Conv2D(4, 3, dilation_rate=(1, 2, 1)), ValueError, "dilation_rate"),
    (lambda: Conv2D(4, 3, padding="full"), ValueError, "padding"),
    (lambda: Conv2D(4, 3, padding="causal"), ValueError, "padding"),
    (lambda: Conv2D(4, 3, data_format="NCHW"), ValueError, "data_format"),
    (lambda: Conv2D(4, 3, groups=2), ValueError, "groups"),
    (lambda: Conv2D(4, 3, activation="relux"), ValueError, "relux"),
    (lambda: Conv1D(0, 3), ValueError, "filters"),
    (lambda: Conv1D(4, 0), ValueError, "kernel_size"),
    (lambda: Conv1D(4, (2, 2)), ValueError, "kernel_size"),
    (lambda: Conv1D(4, 3, strides=-1), ValueError, "strides"),
    (lambda: Conv1D(4, 3, dilation_rate=0), ValueError, "dilation_rate"),
    (lambda: Conv1D(4, 3, padding="full"), ValueError, "padding"),
    (lambda: Conv1D(4, 3, data_format="NCHW"), ValueError, "data_format"),
    (lambda: Conv1D(4, 3, groups=3), ValueError, "groups"),
], ids=["filters0", "filters_neg", "filters_float", "filters_bool", "kernel0", "kernel_neg",
        "kernel_len", "kernel_float", "kernel_str", "strides0", "strides_neg", "strides_len",
        "strides_float", "strides_bool", "dilation0", "dilation_len", "padding",
        "padding_causal_2d", "data_format", "groups", "activation", "1d_filters0", "1d_kernel0",
        "1d_kernel_len", "1d_strides_neg", "1d_dilation0", "1d_padding", "1d_data_format",
        "1d_groups"])
def test_conv_constructor_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_conv_arguments_are_normalised_as_keras():
    layer = Conv2D(4, 3, padding="SAME")
    config = layer.get_config()
    assert tuple(config["kernel_size"]) == (3, 3)
    assert tuple(config["strides"]) == (1, 1)
    assert tuple(config["dilation_rate"]) == (1, 1)
    assert config["padding"] == "same"
    assert config["data_format"] in (None, "channels_last")
    assert config["activation"] == "linear"
    assert config["use_bias"] is True
    assert (config["kernel_initializer"], config["bias_initializer"]) == ("glorot_uniform", "zeros")
    assert Conv2D(4, 3, data_format="channels_last").get_config()["padding"] == "valid"
    assert layer(np.ones((1, 5, 5, 2))).shape == (1, 5, 5, 4)
    seq = Conv1D(4, 3, strides=2, padding="Causal").get_config()
    assert (tuple(seq["kernel_size"]), tuple(seq["strides"]), tuple(seq["dilation_rate"]),
            seq["padding"]) == ((3,), (2,), (1,), "causal")
    assert tuple(Conv2D(2, (2, 3), strides=(2, 1)).get_config()["strides"]) == (2, 1)
    assert tuple(Conv2D(2, np.int64(3), strides=np.int32(2))
                 .compute_output_shape((5, 5, 1))) == (2, 2, 2)


def test_conv_input_errors():
    layer = Conv2D(4, 3, name="conv_x")
    with pytest.raises(ValueError, match=r"conv_x.*5, 6\)"):
        layer(np.ones((2, 5, 6)))   # 3-D input to Conv2D
    assert not layer.built
    with pytest.raises(ValueError, match=r"conv_x.*5, 6, 3, 1\)"):
        layer(np.ones((2, 5, 6, 3, 1)))
    layer(np.ones((2, 5, 6, 3)))
    with pytest.raises(ValueError, match=r"conv_x.*5, 6, 4\)"):
        layer(np.ones((2, 5, 6, 4)))   # another channel count than the built one
    seq = Conv1D(2, 3, name="conv_seq")
    with pytest.raises(ValueError, match=r"conv_seq.*4, 5, 2\)"):
        seq(np.ones((2, 4, 5, 2)))
    seq(np.ones((2, 7, 3)))
    with pytest.raises(ValueError, match=r"conv_seq.*7, 2\)"):
        seq(np.ones((2, 7, 2)))


@pytest.mark.parametrize("make, shape, pattern", [
    (lambda: Conv2D(2, 5), (4, 6, 3), "kernel"),
    (lambda: Conv2D(2, (2, 7)), (4, 6, 3), "kernel"),
    (lambda: Conv2D(2, 3, dilation_rate=3), (6, 6, 3), "kernel|dilation"),
    (lambda: Conv1D(2, 6), (5, 3), "kernel"),
    (lambda: Conv1D(2, 3, dilation_rate=3), (6, 3), "kernel|dilation"),
], ids=["k5_on_4", "k7_on_6", "dilated_3x3_on_6", "1d_k6_on_5", "1d_dilated"])
def test_valid_kernel_larger_than_input_is_refused_at_build(make, shape, pattern):
    layer = make()
    with pytest.raises(ValueError, match=pattern):
        layer(np.ones((1,) + shape))
    with pytest.raises(ValueError, match=pattern):
        Sequential([make_with_input_shape(make, shape)])


def make_with_input_shape(make, shape):
    layer = make()
    config = layer.get_config()
    config["input_shape"] = list(shape)
    return type(layer).from_config(config)


def test_dilated_kernel_that_exactly_fits_is_accepted():
    assert Conv2D(2, 3, dilation_rate=3)(np.ones((1, 7, 7, 1))).shape == (1, 1, 1, 2)
    assert Conv1D(2, 6)(np.ones((1, 6, 1))).shape == (1, 1, 2)


# ---- config, saving, training ----

CONFIG_CASES = [
    lambda: Conv2D(4, 3),
    lambda: Conv2D(2, (2, 3), strides=(2, 1), padding="same", dilation_rate=(1, 2),
                   activation="relu", use_bias=False, kernel_initializer="he_normal",
                   kernel_regularizer="l2", name="c2", dtype="float64"),
    lambda: Conv2D(3, 3, bias_initializer="random_normal", bias_regularizer="l1",
                   activity_regularizer="l2", input_shape=(6, 5, 2)),
    lambda: Conv1D(4, 3),
    lambda: Conv1D(2, 4, strides=2, padding="causal", dilation_rate=2, activation="tanh",
                   use_bias=False, dtype="float64", trainable=False),
]


@pytest.mark.parametrize("make", CONFIG_CASES, ids=["conv2d", "conv2d_args", "conv2d_regs",
                                                     "conv1d", "conv1d_args"])
def test_conv_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    text = json.dumps(config)   # JSON-able
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    from_json = type(layer).from_config(json.loads(text))
    assert json.dumps(from_json.get_config()) == text
    by_name = get_layer({"class_name": type(layer).__name__, "config": config})
    assert by_name.get_config() == config
    assert "weights" not in config and "kernel" not in config
    shape = (7, 6, 2) if isinstance(layer, Conv2D) else (9, 2)
    x = data((3,) + shape, 23)
    y = layer(x)
    from_json(x[:1])
    from_json.set_weights(layer.get_weights())
    np.testing.assert_array_equal(from_json(x), y)


def _cnn(seed):
    set_random_seed(seed)
    model = Sequential([Conv2D(4, 3, activation="relu", padding="same", input_shape=(8, 7, 2)),
                        BatchNormalization(), MaxPooling2D(), Dropout(0.2),
                        Conv2D(3, 2, strides=(2, 1), dilation_rate=(1, 2)),
                        AveragePooling2D(pool_size=(1, 2), padding="same"), Flatten(),
                        Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_cnn_with_flatten_dropout_batchnorm_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(24)
    x = rng.standard_normal((40, 8, 7, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = _cnn(0)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(model.layers[1].moving_mean, 0)   # BatchNormalization trained on 4-D
    path = tmp_path / "cnn.minidl"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequence_model_saves_and_loads(tmp_path):
    rng = np.random.default_rng(25)
    x = rng.standard_normal((24, 12, 3)).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    set_random_seed(1)
    model = Sequential([Conv1D(4, 3, padding="causal", activation="relu", input_shape=(12, 3)),
                        MaxPooling1D(2), Conv1D(4, 2, strides=2, padding="same"),
                        GlobalAveragePooling1D(), Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    path = tmp_path / "seq.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_small_cnn_training_is_reproducible_with_a_seed():
    rng = np.random.default_rng(26)
    x = rng.random((64, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    runs = []
    for _ in range(2):
        set_random_seed(7)
        model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
                            MaxPooling2D(), Flatten(), Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        initial = model.get_weights()[0]
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        runs.append((model.get_weights(), history.history["loss"]))
        assert not np.array_equal(initial, runs[-1][0][0])   # training moved the kernel
    (w0, loss0), (w1, loss1) = runs
    assert loss0 == loss1 and all(np.isfinite(loss0))
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)


def test_cnn_learns_a_spatial_pattern():
    # class = whether the bright 2x2 patch sits in the top or bottom half: a conv net must
    # see it wherever it is; a few epochs take the loss well down.
    rng = np.random.default_rng(27)
    n = 256
    x = rng.random((n, 8, 8, 1)).astype(np.float32) * 0.2
    y = rng.integers(0, 2, n)
    rows = np.where(y == 0, rng.integers(0, 3, n), rng.integers(4, 7, n))
    cols = rng.integers(0, 7, n)
    for i in range(n):
        x[i, rows[i]:rows[i] + 2, cols[i]:cols[i] + 2, 0] += 1.0
    set_random_seed(3)
    model = Sequential([Conv2D(8, 3, activation="relu", padding="same", input_shape=(8, 8, 1)),
                        MaxPooling2D(), Conv2D(8, 3, activation="relu"), Flatten(),
                        Dense(2, activation="softmax")])
    model.compile(optimizer=minidl.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def _fused_pools(model):
    """The indices in ``model.layers`` of the max poolings that the training plan fuses with
    the ReLU layer before them (rewrites.ReluMaxPoolStep)."""
    from minidl.models.rewrites import ReluMaxPoolStep
    plan = model._plan(model._compiled.losses)
    pools = [id(step.pool.layer) for step in plan.steps if isinstance(step, ReluMaxPoolStep)]
    return {i for i, layer in enumerate(model.layers) if id(layer) in pools}


def test_relu_then_max_pool_is_fused_and_gives_the_same_bits(monkeypatch):
    """The training loop runs a ReLU layer and the max pooling after it as one
    (rewrites.relu_then_max_pool): pooling before the bias and ReLU, and the pre-activation
    gradient straight from the pooling's scatter. Loss, gradients and the updated weights
    must equal, bit for bit, running the layers one by one."""
    from minidl.layers import Activation, Input
    from minidl.models import rewrites
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 12, 12, 2)).astype(np.float32)
    y = rng.integers(0, 5, 16)

    def model():
        set_random_seed(1)
        m = Sequential([Input((12, 12, 2)), Conv2D(4, 3, activation="relu"),
                        MaxPooling2D(3, 2, padding="same"), Conv2D(6, 2), Activation("relu"),
                        MaxPooling2D(1), Conv2D(6, 2, activation="relu"), GlobalMaxPooling2D(),
                        Dense(5, activation="softmax")])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    fused = model()
    assert _fused_pools(fused) == {1, 4, 6}   # the pooling layers' indices
    with monkeypatch.context() as patch:   # the plain model's plan without the fusion
        patch.setattr(rewrites, "RULES", [rule for rule in rewrites.RULES
                                          if rule is not rewrites.relu_then_max_pool])
        plain = model()   # (compile builds the plan, which the model keeps)
        assert _fused_pools(plain) == set()
    assert fused.train_on_batch(x, y) == plain.train_on_batch(x, y)
    for mine, theirs in zip(fused.get_weights(), plain.get_weights()):
        assert np.array_equal(mine, theirs)
    grads = list(zip(fused._gradients(), plain._gradients()))
    assert len(grads) == 8 and all(np.array_equal(a, b) for a, b in grads)


@pytest.mark.parametrize("make", [lambda: Conv2D(3, 2, dtype="float64"),
                                  lambda: Conv1D(3, 2, dtype="float64")], ids=["2d", "1d"])
def test_conv_training_step_on_an_empty_batch(make):
    layer = make()
    shape = (5, 5, 2) if isinstance(layer, Conv2D) else (5, 2)
    layer.build(shape)
    ctx = CallContext(layer)
    y = ctx.forward(np.zeros((0,) + shape), training=True)
    assert y.shape == (0,) + layer.compute_output_shape(shape)
    assert ctx.backward(np.zeros(y.shape)).shape == (0,) + shape
    assert not ctx.grads[0].any() and not ctx.grads[1].any()
