"""Conv1DTranspose, Conv2DTranspose, Conv3DTranspose: Keras' output-shape rule (a table from
Keras 3.15.1), PyTorch's transposed convolutions with mapped kernels (float64 and float32:
outputs, input and weight gradients), float64 finite-difference gradient checks, the
kernels' paths and thread-count determinism, errors, config, saving and training.

PyTorch pads symmetrically and adds output_padding after the output only, so the helper runs
torch's transposed convolution unpadded (output ``(n - 1) * s + k`` long, plus what Keras'
output_padding adds beyond it) and crops the window Keras keeps, computed below from Keras'
rule (its JAX backend's padding of the dilated input), written out independently of the
layer. Kernels: Keras (k..., filters, channels) is torch's (channels, filters, k...).
"""
import json

import numpy as np
import pytest

import minidl
from minidl._core import _convolution
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (CallContext, Conv1DTranspose, Conv2D, Conv2DTranspose,
                           Conv3DTranspose, Convolution1DTranspose, Convolution2DTranspose,
                           Convolution3DTranspose, Input, MaxPooling2D)
from minidl.layers import conv_transpose
from minidl.layers import get as get_layer
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")

V, S = "valid", "same"

# (input length, kernel, stride, padding, output_padding, dilation, output length): Keras'
# Conv1DTranspose.compute_output_shape, from Keras 3.15.1.
KERAS_LENGTHS = [
    (1, 1, 1, S, None, 1, 1), (1, 1, 1, S, None, 2, 1), (1, 1, 1, S, 0, 1, 1),
    (1, 1, 1, S, 0, 2, 1), (1, 1, 1, V, None, 1, 1), (1, 1, 1, V, None, 2, 1),
    (1, 1, 1, V, 0, 1, 1), (1, 1, 1, V, 0, 2, 1), (1, 1, 2, S, None, 1, 2),
    (1, 1, 2, S, 0, 1, 1), (1, 1, 2, S, 1, 1, 2), (1, 1, 2, V, None, 1, 2),
    (1, 1, 2, V, 0, 1, 1), (1, 1, 2, V, 1, 1, 2), (1, 1, 3, S, None, 1, 3),
    (1, 1, 3, S, 0, 1, 1), (1, 1, 3, S, 2, 1, 3), (1, 1, 3, V, None, 1, 3),
    (1, 1, 3, V, 0, 1, 1), (1, 1, 3, V, 2, 1, 3), (1, 2, 1, S, None, 1, 1),
    (1, 2, 1, S, None, 2, 1), (1, 2, 1, S, 0, 1, 0), (1, 2, 1, S, 0, 2, 1),
    (1, 2, 1, V, None, 1, 2), (1, 2, 1, V, None, 2, 3), (1, 2, 1, V, 0, 1, 2),
    (1, 2, 1, V, 0, 2, 3), (1, 2, 2, S, None, 1, 2), (1, 2, 2, S, 0, 1, 0),
    (1, 2, 2, S, 1, 1, 1), (1, 2, 2, V, None, 1, 2), (1, 2, 2, V, 0, 1, 2),
    (1, 2, 2, V, 1, 1, 3), (1, 2, 3, S, None, 1, 3), (1, 2, 3, S, 0, 1, 0),
    (1, 2, 3, S, 2, 1, 2), (1, 2, 3, V, None, 1, 3), (1, 2, 3, V, 0, 1, 2),
    (1, 2, 3, V, 2, 1, 4), (1, 3, 1, S, None, 1, 1), (1, 3, 1, S, None, 2, 1),
    (1, 3, 1, S, 0, 1, 1), (1, 3, 1, S, 0, 2, 1), (1, 3, 1, V, None, 1, 3),
    (1, 3, 1, V, None, 2, 5), (1, 3, 1, V, 0, 1, 3), (1, 3, 1, V, 0, 2, 5),
    (1, 3, 2, S, None, 1, 2), (1, 3, 2, S, 0, 1, 1), (1, 3, 2, S, 1, 1, 2),
    (1, 3, 2, V, None, 1, 3), (1, 3, 2, V, 0, 1, 3), (1, 3, 2, V, 1, 1, 4),
    (1, 3, 3, S, None, 1, 3), (1, 3, 3, S, 0, 1, 1), (1, 3, 3, S, 2, 1, 3),
    (1, 3, 3, V, None, 1, 3), (1, 3, 3, V, 0, 1, 3), (1, 3, 3, V, 2, 1, 5),
    (1, 4, 1, S, None, 1, 1), (1, 4, 1, S, None, 2, 1), (1, 4, 1, S, 0, 1, 0),
    (1, 4, 1, S, 0, 2, 1), (1, 4, 1, V, None, 1, 4), (1, 4, 1, V, None, 2, 7),
    (1, 4, 1, V, 0, 1, 4), (1, 4, 1, V, 0, 2, 7), (1, 4, 2, S, None, 1, 2),
    (1, 4, 2, S, 0, 1, 0), (1, 4, 2, S, 1, 1, 1), (1, 4, 2, V, None, 1, 4),
    (1, 4, 2, V, 0, 1, 4), (1, 4, 2, V, 1, 1, 5), (1, 4, 3, S, None, 1, 3),
    (1, 4, 3, S, 0, 1, 0), (1, 4, 3, S, 2, 1, 2), (1, 4, 3, V, None, 1, 4),
    (1, 4, 3, V, 0, 1, 4), (1, 4, 3, V, 2, 1, 6), (5, 1, 1, S, None, 1, 5),
    (5, 1, 1, S, None, 2, 5), (5, 1, 1, S, 0, 1, 5), (5, 1, 1, S, 0, 2, 5),
    (5, 1, 1, V, None, 1, 5), (5, 1, 1, V, None, 2, 5), (5, 1, 1, V, 0, 1, 5),
    (5, 1, 1, V, 0, 2, 5), (5, 1, 2, S, None, 1, 10), (5, 1, 2, S, 0, 1, 9),
    (5, 1, 2, S, 1, 1, 10), (5, 1, 2, V, None, 1, 10), (5, 1, 2, V, 0, 1, 9),
    (5, 1, 2, V, 1, 1, 10), (5, 1, 3, S, None, 1, 15), (5, 1, 3, S, 0, 1, 13),
    (5, 1, 3, S, 2, 1, 15), (5, 1, 3, V, None, 1, 15), (5, 1, 3, V, 0, 1, 13),
    (5, 1, 3, V, 2, 1, 15), (5, 2, 1, S, None, 1, 5), (5, 2, 1, S, None, 2, 5),
    (5, 2, 1, S, 0, 1, 4), (5, 2, 1, S, 0, 2, 5), (5, 2, 1, V, None, 1, 6),
    (5, 2, 1, V, None, 2, 7), (5, 2, 1, V, 0, 1, 6), (5, 2, 1, V, 0, 2, 7),
    (5, 2, 2, S, None, 1, 10), (5, 2, 2, S, 0, 1, 8), (5, 2, 2, S, 1, 1, 9),
    (5, 2, 2, V, None, 1, 10), (5, 2, 2, V, 0, 1, 10), (5, 2, 2, V, 1, 1, 11),
    (5, 2, 3, S, None, 1, 15), (5, 2, 3, S, 0, 1, 12), (5, 2, 3, S, 2, 1, 14),
    (5, 2, 3, V, None, 1, 15), (5, 2, 3, V, 0, 1, 14), (5, 2, 3, V, 2, 1, 16),
    (5, 3, 1, S, None, 1, 5), (5, 3, 1, S, None, 2, 5), (5, 3, 1, S, 0, 1, 5),
    (5, 3, 1, S, 0, 2, 5), (5, 3, 1, V, None, 1, 7), (5, 3, 1, V, None, 2, 9),
    (5, 3, 1, V, 0, 1, 7), (5, 3, 1, V, 0, 2, 9), (5, 3, 2, S, None, 1, 10),
    (5, 3, 2, S, 0, 1, 9), (5, 3, 2, S, 1, 1, 10), (5, 3, 2, V, None, 1, 11),
    (5, 3, 2, V, 0, 1, 11), (5, 3, 2, V, 1, 1, 12), (5, 3, 3, S, None, 1, 15),
    (5, 3, 3, S, 0, 1, 13), (5, 3, 3, S, 2, 1, 15), (5, 3, 3, V, None, 1, 15),
    (5, 3, 3, V, 0, 1, 15), (5, 3, 3, V, 2, 1, 17), (5, 4, 1, S, None, 1, 5),
    (5, 4, 1, S, None, 2, 5), (5, 4, 1, S, 0, 1, 4), (5, 4, 1, S, 0, 2, 5),
    (5, 4, 1, V, None, 1, 8), (5, 4, 1, V, None, 2, 11), (5, 4, 1, V, 0, 1, 8),
    (5, 4, 1, V, 0, 2, 11), (5, 4, 2, S, None, 1, 10), (5, 4, 2, S, 0, 1, 8),
    (5, 4, 2, S, 1, 1, 9), (5, 4, 2, V, None, 1, 12), (5, 4, 2, V, 0, 1, 12),
    (5, 4, 2, V, 1, 1, 13), (5, 4, 3, S, None, 1, 15), (5, 4, 3, S, 0, 1, 12),
    (5, 4, 3, S, 2, 1, 14), (5, 4, 3, V, None, 1, 16), (5, 4, 3, V, 0, 1, 16),
    (5, 4, 3, V, 2, 1, 18),
]

# (layer, sample shape, arguments, output sample shape), from Keras 3.15.1.
KERAS_SHAPES = [
    ("Conv2DTranspose", (7, 5, 3), dict(filters=4, kernel_size=(3, 2), strides=(2, 3),
                                        padding="same", output_padding=(1, 0)), (14, 12, 4)),
    ("Conv2DTranspose", (7, 7, 32), dict(filters=32, kernel_size=3, strides=2,
                                         padding="same"), (14, 14, 32)),
    ("Conv2DTranspose", (4, 6, 2), dict(filters=3, kernel_size=(2, 4), padding="valid",
                                        dilation_rate=(2, 1)), (6, 9, 3)),
    ("Conv3DTranspose", (2, 3, 4, 2), dict(filters=5, kernel_size=(2, 3, 1), strides=(2, 1, 3),
                                           padding="valid", output_padding=(1, 0, 2)),
     (5, 5, 12, 5)),
    ("Conv3DTranspose", (3, 3, 3, 1), dict(filters=2, kernel_size=3, strides=2, padding="same"),
     (6, 6, 6, 2)),
]

LAYERS = {1: Conv1DTranspose, 2: Conv2DTranspose, 3: Conv3DTranspose}


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def keras_window(n, kernel, stride, padding, output_padding, dilation):
    """(output length, first window's offset) along one axis: Keras' length rule, and the
    left padding its JAX backend gives the stride-dilated input (the window of output
    position 0 starts ``extent - 1 - left`` before it)."""
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(extent, stride) - extent if output_padding is None else output_padding
        return (n - 1) * stride + extent + extra, 0
    if output_padding is None:
        total, length = stride + extent - 2, n * stride
    else:
        total = extent + extent % 2 - 2 + output_padding
        length = (n - 1) * stride + extent % 2 + output_padding
    return length, extent - 1 - min(total // 2 + total % 2, extent - 1)


# ---- PyTorch, channels-last in and out ----

def _torch():
    return pytest.importorskip("torch")


def torch_conv_transpose(x, kernel, bias, dy, strides, padding, output_padding, dilation):
    """(y, dx, dkernel, dbias) of a Keras transposed convolution by PyTorch autograd."""
    torch = _torch()
    F = torch.nn.functional
    rank = x.ndim - 2
    first = (0, rank + 1) + tuple(range(1, rank + 1))   # channels-last -> channels-first
    last = (0,) + tuple(range(2, rank + 2)) + (1,)
    xt = torch.tensor(np.ascontiguousarray(x.transpose(first)), requires_grad=True)
    kt = torch.tensor(np.ascontiguousarray(
        kernel.transpose((rank + 1, rank) + tuple(range(rank)))), requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    crops, extras = [], []
    for i in range(rank):
        n, k, s, d = x.shape[1 + i], kernel.shape[i], strides[i], dilation[i]
        extra = None if output_padding is None else output_padding[i]
        length, start = keras_window(n, k, s, padding, extra, d)
        natural = (n - 1) * s + (k - 1) * d + 1
        extras.append(max(0, start + length - natural))
        crops.append(slice(start, start + length))
    conv = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[rank - 1]
    y = conv(xt, kt, bt, stride=tuple(strides), output_padding=tuple(extras),
             dilation=tuple(dilation))
    y = y[(slice(None), slice(None)) + tuple(crops)]
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(first))))
    back = tuple(range(2, rank + 2)) + (1, 0)   # torch kernel -> Keras kernel
    return (y.detach().numpy().transpose(last), xt.grad.numpy().transpose(last),
            kt.grad.numpy().transpose(back), None if bt is None else bt.grad.numpy())


def _layer(rank, filters, kernel_size, strides, padding, output_padding, dilation,
           dtype="float64", **kwargs):
    return LAYERS[rank](filters, kernel_size, strides=strides, padding=padding,
                        output_padding=output_padding, dilation_rate=dilation, dtype=dtype,
                        **kwargs)


def check_against_torch(rank, shape, filters, kernel_size, strides, padding, output_padding,
                        dilation, dtype, use_bias=True, seed=0):
    layer = _layer(rank, filters, kernel_size, strides, padding, output_padding, dilation,
                   dtype, use_bias=use_bias)
    layer.build(shape)
    kernel = data(layer.kernel.shape, seed + 1)
    bias = data((filters,), seed + 2) if use_bias else None
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    x = data((2,) + shape, seed)
    ctx = CallContext(layer)
    y = ctx.forward(x.astype(dtype), training=True)
    dy = data(y.shape, seed + 3)
    dx = ctx.backward(dy.astype(dtype), need_input_grad=True)
    want = torch_conv_transpose(x, kernel, bias, dy, layer.strides, padding,
                                layer.output_padding, layer.dilation_rate)
    rtol = 1e-10 if dtype == "float64" else 1e-5
    names = ["output", "input gradient", "kernel gradient", "bias gradient"]
    for got, expected, name in zip([y, dx] + list(ctx.grads), want, names):
        scale = max(np.abs(expected).max(), 1.0)
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=0,
                                   atol=rtol * scale, err_msg=name)
    np.testing.assert_array_equal(layer(x.astype(dtype)), y)   # inference: the same bits


def _cases_1d():
    for n in (1, 5):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                for p in (V, S):
                    for op in (None, 0, s - 1):
                        for d in ((1, 2) if s == 1 else (1,)):
                            if keras_window(n, k, s, p, op, d)[0] > 0:
                                yield n, k, s, p, op, d


def _cases_2d():
    for k in [(1, 1), (2, 2), (3, 3), (3, 2), (4, 1)]:
        for s in [(1, 1), (2, 2), (3, 2)]:
            for p in (V, S):
                for op in (None, (0, 0), (s[0] - 1, s[1] - 1)):
                    yield k, s, p, op, (1, 1)
            if s == (1, 1):
                for p in (V, S):
                    yield k, s, p, None, (2, 1)


def _ids(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv1d_transpose_matches_torch(dtype):
    for n, k, s, p, op, d in _cases_1d():
        check_against_torch(1, (n, 3), 2, k, s, p, op, d, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv2d_transpose_matches_torch(dtype):
    for k, s, p, op, d in _cases_2d():
        check_against_torch(2, (5, 4, 3), 2, k, s, p, op, d, dtype, use_bias=k != (2, 2))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel_size, strides, padding, output_padding, dilation", [
    ((2, 3, 1), (2, 1, 3), V, (1, 0, 2), (1, 1, 1)),
    ((3, 3, 3), (2, 2, 2), S, None, (1, 1, 1)),
    ((3, 2, 2), (1, 2, 3), S, (0, 1, 1), (1, 1, 1)),
    ((1, 1, 1), (1, 1, 1), V, None, (1, 1, 1)),   # pointwise: no patches
    ((2, 3, 2), (1, 1, 1), S, None, (2, 1, 2)),
], ids=_ids)
def test_conv3d_transpose_matches_torch(kernel_size, strides, padding, output_padding,
                                        dilation, dtype):
    check_against_torch(3, (3, 4, 2, 3), 2, kernel_size, strides, padding, output_padding,
                        dilation, dtype)


def test_conv2d_transpose_large_channels_matches_torch():
    """The autoencoder's shape (32 -> 32 channels, 3x3, strides 2, 'same'): the backward
    pass runs through the direct kernels there."""
    check_against_torch(2, (7, 6, 32), 32, 3, 2, S, None, (1, 1), "float32", seed=5)


def test_patch_path_matches_torch(monkeypatch):
    """The backward pass without the direct kernels (chosen for large kernels) too."""
    monkeypatch.setattr(conv_transpose._convolution, "direct_plan",
                        lambda *args, **kwargs: (False, False, None))
    for k, s, p, op, d in [((3, 3), (2, 2), S, None, (1, 1)), ((2, 3), (3, 2), V, (1, 0), (1, 1)),
                           ((1, 1), (1, 1), V, None, (1, 1))]:
        check_against_torch(2, (5, 4, 3), 2, k, s, p, op, d, "float64")


# ---- gradients by finite differences (no torch) ----

@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2DTranspose(3, (3, 2), strides=(2, 3), padding="same", output_padding=(1, 0),
                             activation="tanh", dtype="float64"), (3, 4, 2)),
    (lambda: Conv2DTranspose(2, 2, padding="valid", dilation_rate=2, use_bias=False,
                             dtype="float64"), (3, 3, 2)),
    (lambda: Conv1DTranspose(2, 3, strides=2, activation="sigmoid", dtype="float64"), (4, 3)),
    (lambda: Conv3DTranspose(2, (2, 3, 2), strides=(2, 1, 2), padding="same",
                             activation="elu", dtype="float64"), (2, 3, 2, 2)),
], ids=["2d-same-op", "2d-dilated", "1d", "3d"])
def test_gradients_by_finite_differences(make, shape):
    check_layer_gradients(make(), data((2,) + shape, 7))


def test_conv_input_grad_is_the_adjoint_of_im2col():
    """<im2col(y), g> == <y, conv_input_grad(g)> for any y, g: the kernel computes the
    transpose of the convolution's patch operator, through the kernel matrix."""
    win = dict(kernel_size=(3, 2), strides=(2, 1), dilation=(1, 2), pads=(1, 0),
               out_hw=(4, 3))
    y = data((2, 8, 5, 3), 1)
    cols = np.empty((2 * 12, 18))
    _convolution.im2col(y, cols, **win)
    kernel = data((18, 4), 2)
    g = data((24, 4), 3)
    out = np.empty_like(y)
    _convolution.conv_input_grad(g, kernel, out, np.empty((24, 18)), 1, False, **win)
    assert np.isclose(np.sum(cols @ kernel * g), np.sum(y * out), rtol=1e-12)


def test_conv_input_grad_refuses_bad_arguments():
    win = dict(kernel_size=(3, 3), strides=(1, 1), dilation=(1, 1), pads=(1, 1),
               out_hw=(4, 4))
    g, kernel, out = np.zeros((16, 2)), np.zeros((27, 2)), np.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="dcols must have at least 16 rows of 27"):
        _convolution.conv_input_grad(g, kernel, out, np.zeros((15, 27)), 1, False, **win)
    with pytest.raises(ValueError, match="kernel must have 27 rows"):
        _convolution.conv_input_grad(g, kernel[:20], out, np.zeros((16, 27)), 1, False, **win)
    with pytest.raises(TypeError, match="dtype float64"):
        _convolution.conv_input_grad(g, kernel.astype(np.float32), out, None, 1, False, **win)
    with pytest.raises(ValueError, match="pointwise needs"):
        _convolution.conv_input_grad(g, kernel, out, None, 1, True, **win)


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
     (9, 8, 16)),
    (lambda: Conv3DTranspose(4, 3, strides=2, padding="same"), (4, 5, 4, 3)),
], ids=["2d", "3d"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_bits_for_any_thread_count(make, shape, dtype):
    x = data((8,) + shape, 3, dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = make()
        layer.dtype = dtype
        layer.build(shape)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        dx = ctx.backward(data(y.shape, 4, dtype), need_input_grad=True)
        results.append([y, dx.copy()] + [g.copy() for g in ctx.grads])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- Keras' shapes ----

def test_output_lengths_follow_keras_table():
    for n, k, s, p, op, d, want in KERAS_LENGTHS:
        assert conv_transpose.transpose_output_length(n, k, s, d, p, op)[0] == want
        assert keras_window(n, k, s, p, op, d)[0] == want
        layer = Conv1DTranspose(2, k, strides=s, padding=p, output_padding=op, dilation_rate=d)
        if want > 0:
            assert layer.compute_output_shape((n, 3)) == (want, 2)
        else:   # Keras gives an empty output; minidl says why instead
            with pytest.raises(ValueError, match="empty output"):
                layer.compute_output_shape((n, 3))


@pytest.mark.parametrize("name, shape, kwargs, want", KERAS_SHAPES)
def test_output_shapes_follow_keras(name, shape, kwargs, want):
    layer = get_layer({"class_name": name, "config": kwargs})
    assert layer.compute_output_shape(shape) == want
    assert layer(np.zeros((1,) + shape, np.float32)).shape == (1,) + want


def test_keras_table_matches_keras():
    """Recomputes the tables above with Keras itself (not installed in CI)."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for n, k, s, p, op, d, want in KERAS_LENGTHS:
        layer = keras.layers.Conv1DTranspose(1, k, strides=s, padding=p, output_padding=op,
                                             dilation_rate=d)
        assert layer.compute_output_shape((None, n, 1))[1] == want
    for name, shape, kwargs, want in KERAS_SHAPES:
        layer = getattr(keras.layers, name)(**kwargs)
        assert tuple(layer.compute_output_shape((None,) + shape))[1:] == want


def test_unknown_spatial_sizes():
    inputs = Input((None, None, 3))
    layer = Conv2DTranspose(2, 3, strides=2, padding="same")
    out = layer(inputs)
    assert out.shape == (None, None, None, 2)
    model = minidl.Model(inputs, out)
    for size in [(3, 5), (4, 4)]:
        y = model.predict(np.ones((2,) + size + (3,), np.float32), verbose=0)
        assert y.shape == (2, size[0] * 2, size[1] * 2, 2)


def test_weights_follow_keras():
    layer = Conv2DTranspose(5, (3, 2))
    layer.build((6, 6, 4))
    assert [w.shape for w in layer.weights] == [(3, 2, 5, 4), (5,)]
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert layer.count_params() == 3 * 2 * 5 * 4 + 5
    assert Conv3DTranspose(2, 2, use_bias=False)(np.zeros((1, 2, 2, 2, 3))).shape == \
        (1, 3, 3, 3, 2)


# ---- arguments and errors ----

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError,
     r"`output_padding` must be strictly less than `strides` for all dimensions. At "
     r"dimension 0, `output_padding` is 2 but `strides` is 2"),
    (lambda: Conv1DTranspose(2, 3, output_padding=1), ValueError, "strictly less"),
    (lambda: Conv3DTranspose(2, 3, strides=(2, 1, 2), output_padding=(1, 1, 0)), ValueError,
     "At dimension 1"),
    (lambda: Conv2DTranspose(2, 3, strides=2, dilation_rate=2), ValueError,
     r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda: Conv2DTranspose(2, 3, output_padding=-1), ValueError, "output_padding must be >= 0"),
    (lambda: Conv2DTranspose(2, 3, output_padding=(0, 0, 0)), ValueError,
     "output_padding must be None, an int or a tuple of 2 ints"),
    (lambda: Conv2DTranspose(2, 3, output_padding="one"), ValueError, "output_padding="),
    (lambda: Conv2DTranspose(0, 3), ValueError, "filters must be a positive int"),
    (lambda: Conv2DTranspose(2.5, 3), ValueError, "received filters=2.5"),
    (lambda: Conv2DTranspose(2, (3, 0)), ValueError, "kernel_size must be positive"),
    (lambda: Conv2DTranspose(2, 3, strides=0), ValueError, "strides must be positive"),
    (lambda: Conv2DTranspose(2, 3, padding="causal"), ValueError,
     "padding must be one of 'valid', 'same'; received padding='causal'"),
    (lambda: Conv2DTranspose(2, 3, data_format="NCHW"), ValueError, "data_format"),
    (lambda: Conv2DTranspose(2, 3, activation="nope"), ValueError, "nope"),
    (lambda: Conv2DTranspose(2, 3, use_bias="yes"), TypeError, "use_bias"),
])
def test_constructor_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_input_errors():
    with pytest.raises(ValueError, match=r"expects 4-D input \(batch, height, width, "
                                         r"channels\); received input of shape \(None, 5, 3\)"):
        Conv2DTranspose(2, 3).build((5, 3))
    with pytest.raises(ValueError, match="needs a known number of channels"):
        Conv2DTranspose(2, 3).build((5, 5, None))
    with pytest.raises(ValueError, match="expects 5-D input"):
        Conv3DTranspose(2, 3)(np.zeros((1, 4, 4, 2)))
    layer = Conv2DTranspose(2, 3)
    layer.build((4, 4, 3))
    with pytest.raises(ValueError):
        layer(np.zeros((1, 4, 4, 2), np.float32))


def test_arguments_are_normalised_as_keras():
    layer = Conv2DTranspose(4, 3, strides=2, padding="SAME", output_padding=1)
    assert (layer.kernel_size, layer.strides, layer.padding, layer.output_padding,
            layer.dilation_rate, layer.data_format) == ((3, 3), (2, 2), "same", (1, 1),
                                                        (1, 1), "channels_last")
    assert Conv1DTranspose(2, 3, output_padding=None).output_padding is None


@pytest.mark.parametrize("make", [
    lambda: Conv2DTranspose(3, (3, 2), strides=(2, 1), padding="same", output_padding=(1, 0),
                            activation="relu", kernel_regularizer="l2", name="up"),
    lambda: Conv1DTranspose(2, 4, dilation_rate=2, use_bias=False),
    lambda: Conv3DTranspose(2, 2, strides=2, bias_initializer="ones"),
], ids=["2d", "1d", "3d"])
def test_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    assert {"filters", "kernel_size", "strides", "padding", "output_padding", "data_format",
            "dilation_rate", "activation", "use_bias", "kernel_initializer"} <= set(config)
    json.dumps(config)
    again = type(layer).from_config(config)
    assert again.get_config() == config
    by_alias = get_layer({"class_name": "Convolution" + type(layer).__name__[4:],
                          "config": config})
    assert type(by_alias) is type(layer)


def test_aliases_are_the_classes():
    assert Convolution1DTranspose is Conv1DTranspose
    assert Convolution2DTranspose is Conv2DTranspose
    assert Convolution3DTranspose is Conv3DTranspose


# ---- models ----

def _autoencoder(seed):
    set_random_seed(seed)
    model = Sequential([Input((8, 8, 1)),
                        Conv2D(4, 3, activation="relu", padding="same"),
                        MaxPooling2D(2),
                        Conv2DTranspose(4, 3, strides=2, activation="relu", padding="same"),
                        Conv2DTranspose(1, 3, activation="sigmoid", padding="same")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def test_autoencoder_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random((64, 8, 8, 1)).astype(np.float32)
    model = _autoencoder(0)
    before = model.evaluate(x, x, verbose=0)
    history = model.fit(x, x, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < before
    path = tmp_path / "autoencoder.minidl"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    again = _autoencoder(0)
    again.fit(x, x, epochs=3, batch_size=16, verbose=0)   # seeded: the same run
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequence_and_volume_models_fit():
    rng = np.random.default_rng(4)
    for layer, shape in [(Conv1DTranspose(2, 3, strides=2, padding="same"), (5, 3)),
                         (Conv3DTranspose(2, 2, strides=2), (2, 2, 2, 3))]:
        set_random_seed(1)
        model = Sequential([Input(shape), layer])
        model.compile(optimizer="sgd", loss="mse")
        x = rng.standard_normal((16,) + shape).astype(np.float32)
        y = rng.standard_normal((16,) + model.output_shape[1:]).astype(np.float32)
        losses = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
        assert losses[-1] < losses[0]


def test_gradient_tape_matches_backward():
    from minidl.autodiff import GradientTape
    layer = Conv2DTranspose(2, 3, strides=2, padding="same", dtype="float64")
    x = data((2, 3, 3, 2), 9)
    layer.build(x.shape[1:])
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    w = data(y.shape, 10)
    ctx.backward(w, need_input_grad=False)
    with GradientTape() as tape:
        loss = minidl.ops.sum(layer(x) * w)
    grads = tape.gradient(loss, layer.trainable_variables)
    for got, want in zip(grads, ctx.grads):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


# ---- the narrow path of the convolutions (few filters, stride 1: the autoencoder's last
# layer), in minidl/_core/_convolution.pyx; Conv2D and the transposed layers' backward
# pass opt in ----

def _narrow_window(h, w, kh, kw, dh, dw, pads, out_hw):
    return dict(kernel_size=(kh, kw), strides=(1, 1), dilation=(dh, dw), pads=pads,
                out_hw=out_hw)


NARROW_CASES = [   # (n, h, w, c, filters), window
    ((3, 6, 7, 16, 1), _narrow_window(6, 7, 3, 3, 1, 1, (1, 1), (6, 7))),     # 'same'
    ((2, 7, 6, 32, 2), _narrow_window(7, 6, 3, 2, 2, 1, (0, 0), (3, 5))),     # 'valid', dilated
    ((2, 1, 9, 48, 3), _narrow_window(1, 9, 1, 3, 1, 2, (0, 4), (1, 9))),     # causal (Conv1D)
    ((2, 5, 5, 40, 1), _narrow_window(5, 5, 5, 5, 1, 1, (2, 2), (5, 5))),     # 25 taps
]


@pytest.mark.parametrize("shape, window", NARROW_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_path_matches_the_patch_path(shape, window, dtype):
    n, h, w, c, f = shape
    kh, kw = window["kernel_size"]
    rows = n * window["out_hw"][0] * window["out_hw"][1]
    x, kernel, dz = (data(s, seed, dtype) for seed, s in
                     enumerate([(n, h, w, c), (kh * kw * c, f), (rows, f)]))
    cols = np.empty((rows, kh * kw * c), dtype)
    results = []
    for narrow, direct in ((True, None), (False, False)):
        z = np.full((rows, f), np.nan, dtype)
        _convolution.conv_train_forward(x, kernel, z, cols, n, False, direct=direct,
                                        narrow=narrow, **window)
        d_kernel, dx = np.full(kernel.shape, np.nan, dtype), np.full(x.shape, np.nan, dtype)
        _convolution.conv_train_backward(x, dz, kernel, d_kernel, dx, cols, cols.copy(), n,
                                         False, direct=direct, narrow=narrow, **window)
        alone = np.full(kernel.shape, np.nan, dtype)   # the kernel gradient without dx
        _convolution.conv_train_backward(x, dz, kernel, alone, None, cols, None, n, False,
                                         direct=direct, narrow=narrow, **window)
        np.testing.assert_array_equal(alone, d_kernel)
        results.append((z, d_kernel, dx))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("make, shape, args", [
    (lambda: Conv2D(1, 3, padding="same", activation="sigmoid", dtype="float64"), (6, 7, 16),
     ((1, 1), "same", (1, 1))),
    (lambda: Conv2D(2, (3, 2), dilation_rate=(2, 1), dtype="float64"), (7, 6, 32),
     ((1, 1), "valid", (2, 1))),
], ids=["same", "valid-dilated"])
def test_narrow_conv2d_layer_matches_the_reference(make, shape, args):
    from minidl._ref import convolution as ref
    layer = make()
    layer.build(shape)
    kernel, bias = data(layer.kernel.shape, 1), data(layer.bias.shape, 2)
    layer.set_weights([kernel, bias])
    x = data((3,) + shape, 3)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    z = ref.conv2d_forward(x, kernel, bias, *args)
    want_y = 1 / (1 + np.exp(-z)) if layer.activation.name == "sigmoid" else z
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(layer(x), y)
    dz = data(z.shape, 4)
    dy = dz / (want_y * (1 - want_y)) if layer.activation.name == "sigmoid" else dz
    dx = ctx.backward(dy, need_input_grad=True)
    want_dx, want_dk, want_db = ref.conv2d_backward(x, kernel, dz, *args)
    for got, want in [(dx, want_dx), (ctx.grads[0], want_dk), (ctx.grads[1], want_db)]:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_path_gives_the_same_bits_for_any_thread_count(dtype):
    x = data((8, 28, 28, 16), 5, dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = Conv2D(1, 3, padding="same", dtype=dtype)
        layer.build(x.shape[1:])
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        dx = ctx.backward(data(y.shape, 6, dtype), need_input_grad=True)
        results.append([y, dx.copy()] + [g.copy() for g in ctx.grads])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_narrow_backward_of_a_transposed_layer_matches_torch():
    """A transposed convolution from few channels, stride 1 (its backward pass's
    convolution has 2 filters and patches of 3 * 3 * 16 values)."""
    check_against_torch(2, (5, 4, 2), 16, 3, 1, S, None, (1, 1), "float64")


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2DTranspose(3, 2, strides=2, dtype="float64"), (3, 3, 2)),
    (lambda: Conv1DTranspose(3, 2, padding="same", dtype="float64"), (4, 2)),
    (lambda: Conv3DTranspose(3, 2, strides=2, dtype="float64"), (2, 2, 2, 2)),
], ids=["2d", "1d", "3d"])
def test_training_step_on_an_empty_batch(make, shape):
    layer = make()
    layer.build(shape)
    ctx = CallContext(layer)
    y = ctx.forward(np.zeros((0,) + shape), training=True)
    assert y.shape == (0,) + layer.compute_output_shape(shape)
    dx = ctx.backward(np.zeros(y.shape), need_input_grad=True)
    assert dx.shape == (0,) + shape
    assert all(not g.any() for g in ctx.grads)


def test_first_conv_pools_directly_through_same_padding_that_pads_nothing():
    """The autoencoder's MaxPooling2D(2, padding='same') on 28x28 pads nothing: its first
    convolution pools directly (conv_pool.c) as with 'valid', with the same bits; a 'same'
    pooling that pads does not."""
    from minidl.models.rewrites import ReluMaxPoolStep

    def model(size, padding):
        set_random_seed(3)
        m = Sequential([Input((size, size, 1)), Conv2D(4, 3, activation="relu", padding="same"),
                        MaxPooling2D(2, padding=padding),
                        Conv2DTranspose(1, 3, strides=2, padding="same")])
        m.compile(optimizer="sgd", loss="mse")
        return m

    def direct(m):
        plan = m._plan(m._compiled.losses)
        return [s.direct for s in plan.steps if isinstance(s, ReluMaxPoolStep)]

    x = data((4, 8, 8, 1), 11, np.float32)
    same, valid = model(8, "same"), model(8, "valid")
    assert direct(same) == direct(valid) == [True]
    assert same.train_on_batch(x, x) == valid.train_on_batch(x, x)
    for a, b in zip(same.get_weights(), valid.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert direct(model(7, "same")) == [False]
