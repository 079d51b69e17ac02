"""Pooling layers: the numpy reference against PyTorch, the layers against the reference
(float64 and float32), float64 gradient checks, ties, thread-count determinism, Keras shapes,
errors, config and use in models.

Keras semantics: ``strides=None`` means ``pool_size``; with ``padding='same'`` max pooling
ignores the padding and average pooling divides by the number of real elements in each
window (TensorFlow's rule). The max gradient goes to the first maximal element of a window in
row-major order, and overlapping windows accumulate.

PyTorch is optional (the tests that use it skip without it). It is NCHW and pads
symmetrically, so the helpers here transpose and pad with ``F.pad`` by Keras' formula: -inf
for max pooling, and for average pooling the window sums of the zero-padded input divided by
the window sums of a zero-padded array of ones.
"""
import json
import math

import numpy as np
import pytest

import minidl
from minidl._ref import convolution as ref
from minidl._ref.gradcheck import assert_close, check_layer_gradients
from minidl.layers import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                           CallContext, Conv2D, Dense, GlobalAveragePooling1D,
                           GlobalAveragePooling2D, GlobalAvgPool1D, GlobalAvgPool2D,
                           GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                           GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from minidl.layers import get as get_layer
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def keras_length(n, pool, stride, padding):
    """Pooled length along one axis, as Keras documents it."""
    if padding == "valid":
        return math.floor((n - pool) / stride) + 1
    return math.floor((n - 1) / stride) + 1


def keras_pads(n, pool, stride, padding):
    if padding == "valid":
        return 0, 0
    total = max((keras_length(n, pool, stride, padding) - 1) * stride + pool - n, 0)
    return total // 2, total - total // 2


# ---- PyTorch, channels-last in and out ----

def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)   # tiny tensors: more threads only add overhead
    return torch


def torch_pool2d(kind, x, dy, pool, strides, padding):
    """(y, dx) of a Keras MaxPooling2D / AveragePooling2D by PyTorch autograd."""
    torch = _torch()
    F = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    (top, bottom), (left, right) = (keras_pads(n, k, s, padding)
                                    for n, k, s in zip(x.shape[1:3], pool, strides))
    pads = (left, right, top, bottom)
    if kind == "max":
        y = F.max_pool2d(F.pad(xt, pads, value=-math.inf), pool, strides)
    else:
        sums = F.avg_pool2d(F.pad(xt, pads), pool, strides, divisor_override=1)
        ones = torch.ones((1, 1) + x.shape[1:3], dtype=torch.float64)
        y = sums / F.avg_pool2d(F.pad(ones, pads), pool, strides, divisor_override=1)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 3, 1, 2))))
    return (y.detach().numpy().transpose(0, 2, 3, 1), xt.grad.numpy().transpose(0, 2, 3, 1))


def torch_pool1d(kind, x, dy, pool, stride, padding):
    torch = _torch()
    F = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 2, 1)), requires_grad=True)
    pads = keras_pads(x.shape[1], pool, stride, padding)
    if kind == "max":
        y = F.max_pool1d(F.pad(xt, pads, value=-math.inf), pool, stride)
    else:
        sums = F.avg_pool1d(F.pad(xt, pads), pool, stride) * pool
        ones = torch.ones((1, 1, x.shape[1]), dtype=torch.float64)
        y = sums / (F.avg_pool1d(F.pad(ones, pads), pool, stride) * pool)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 2, 1))))
    return y.detach().numpy().transpose(0, 2, 1), xt.grad.numpy().transpose(0, 2, 1)


# ---- the grid ----

def _id(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)


POOL_GRID = [(k, s, p)
             for k in ((2, 2), (3, 3), (2, 3), (3, 1), (1, 2))
             for s in (None, (1, 1), (2, 2), (2, 1), (3, 3))
             for p in ("valid", "same")]
grid2d = pytest.mark.parametrize("pool_size, strides, padding", POOL_GRID, ids=_id)
grid1d = pytest.mark.parametrize("pool_size, stride, padding", [
    (k, s, p) for k in (1, 2, 3, 4) for s in (None, 1, 2, 3) for p in ("valid", "same")
], ids=_id)
REF_2D = {"max": (ref.max_pool2d_forward, ref.max_pool2d_backward),
          "avg": (ref.avg_pool2d_forward, ref.avg_pool2d_backward)}
REF_1D = {"max": (ref.max_pool1d_forward, ref.max_pool1d_backward),
          "avg": (ref.avg_pool1d_forward, ref.avg_pool1d_backward)}
LAYER_2D = {"max": MaxPooling2D, "avg": AveragePooling2D}
LAYER_1D = {"max": MaxPooling1D, "avg": AveragePooling1D}


def out_size2d(size, pool, strides, padding):
    return tuple(keras_length(n, k, s, padding) for n, k, s in zip(size, pool, strides))


# ---- the reference against PyTorch ----

@pytest.mark.parametrize("kind", ["max", "avg"])
@grid2d
def test_reference_pool2d_matches_torch(pool_size, strides, padding, kind):
    effective = pool_size if strides is None else strides
    for size in ((7, 9), (6, 8)):
        x = data((2,) + size + (3,), 1)
        dy = data((2,) + out_size2d(size, pool_size, effective, padding) + (3,), 2)
        want = torch_pool2d(kind, x, dy, pool_size, effective, padding)
        forward, backward = REF_2D[kind]
        got = (forward(x, pool_size, strides, padding),
               backward(x, dy, pool_size, strides, padding))
        for g, w, what in zip(got, want, ("y", "dx")):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=f"{what} {size}")


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, pool_size, strides", [
    ((3, 4), (5, 5), (1, 1)),    # window larger than the input
    ((1, 1), (3, 3), (2, 2)),
    ((5, 5), (3, 3), (4, 4)),    # stride larger than the window
    ((4, 5), (4, 2), (1, 3)),
], ids=["pool_gt_input", "1x1_input", "s_gt_pool", "mixed"])
def test_reference_pool2d_same_edge_cases_match_torch(size, pool_size, strides, kind):
    x = data((2,) + size + (2,), 3)
    dy = data((2,) + out_size2d(size, pool_size, strides, "same") + (2,), 4)
    want = torch_pool2d(kind, x, dy, pool_size, strides, "same")
    forward, backward = REF_2D[kind]
    np.testing.assert_allclose(forward(x, pool_size, strides, "same"), want[0], rtol=1e-10)
    np.testing.assert_allclose(backward(x, dy, pool_size, strides, "same"), want[1],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@grid1d
def test_reference_pool1d_matches_torch(pool_size, stride, padding, kind):
    effective = pool_size if stride is None else stride
    x = data((2, 11, 3), 5)
    dy = data((2, keras_length(11, pool_size, effective, padding), 3), 6)
    want = torch_pool1d(kind, x, dy, pool_size, effective, padding)
    forward, backward = REF_1D[kind]
    np.testing.assert_allclose(forward(x, pool_size, stride, padding), want[0], rtol=1e-10)
    np.testing.assert_allclose(backward(x, dy, pool_size, stride, padding), want[1],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", [(2, 5, 6, 3), (2, 7, 3)], ids=["2d", "1d"])
def test_reference_global_pooling_matches_torch(shape, keepdims):
    torch = _torch()
    x = data(shape, 7)
    dims = tuple(range(1, len(shape) - 1))
    dy = data(ref.global_avg_pool_forward(x, keepdims).shape, 8)
    for forward, backward, fn in ((ref.global_avg_pool_forward, ref.global_avg_pool_backward,
                                   torch.mean),
                                  (ref.global_max_pool_forward, ref.global_max_pool_backward,
                                   torch.amax)):
        xt = torch.tensor(x, requires_grad=True)
        y = fn(xt, dim=dims, keepdim=keepdims)
        y.backward(torch.tensor(dy))
        np.testing.assert_allclose(forward(x, keepdims), y.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(backward(x, dy), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_reference_pooling_by_hand():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).reshape(1, 3, 3, 1)
    # 'same' 2x2 stride 2 on 3x3: one zero row/column after, never counted
    np.testing.assert_array_equal(ref.avg_pool2d_forward(x, 2, 2, "same")[0, :, :, 0],
                                  [[3.0, 4.5], [7.5, 9.0]])
    np.testing.assert_array_equal(ref.max_pool2d_forward(-x, 2, 2, "same")[0, :, :, 0],
                                  [[-1.0, -3.0], [-7.0, -9.0]])
    ties = np.array([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(ref.max_pool2d_backward(ties, np.ones((1, 1, 1, 1)))[0, :, :, 0],
                                  [[1.0, 0.0], [0.0, 0.0]])


# ---- the layers against the reference ----

RTOL = {"float64": 1e-12, "float32": 1e-5}


def check_pool_against_reference(layer, x, forward, backward, args, rtol):
    want = forward(x, *args)
    y = layer(x)
    assert y.dtype == np.dtype(layer.dtype)
    assert_close(y, want, forward(np.abs(x), *args), rtol, f"{layer.name}: output")
    xl = x.astype(layer.dtype)
    ctx = CallContext(layer)
    assert_close(ctx.forward(xl, training=True), want, forward(np.abs(x), *args), rtol,
                 f"{layer.name}: training output")
    dy = data(want.shape, 9).astype(layer.dtype)
    dx = ctx.backward(dy.copy(), need_input_grad=True)
    assert dx.dtype == np.dtype(layer.dtype) and dx.shape == x.shape
    # magnitude: the same backward of |dy| (random data: no ties for max pooling)
    assert_close(dx, backward(x, dy, *args), backward(x, np.abs(dy), *args), rtol,
                 f"{layer.name}: dx")
    return y


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@grid2d
def test_pool2d_layer_matches_reference(pool_size, strides, padding, kind, dtype):
    for size, channels in (((7, 9), 3), ((6, 8), 1)):
        x = data((2,) + size + (channels,), 1).astype(dtype).astype(np.float64)
        layer = LAYER_2D[kind](pool_size, strides=strides, padding=padding, dtype=dtype)
        forward, backward = REF_2D[kind]
        y = check_pool_against_reference(layer, x, forward, backward,
                                         (pool_size, strides, padding), RTOL[dtype])
        if kind == "max":   # a max is one of the inputs: exact in any dtype
            np.testing.assert_array_equal(y, forward(x, pool_size, strides, padding))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@grid1d
def test_pool1d_layer_matches_reference(pool_size, stride, padding, kind, dtype):
    x = data((2, 11, 3), 5).astype(dtype).astype(np.float64)
    layer = LAYER_1D[kind](pool_size, strides=stride, padding=padding, dtype=dtype)
    forward, backward = REF_1D[kind]
    check_pool_against_reference(layer, x, forward, backward, (pool_size, stride, padding),
                                 RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("layer_cls, shape", [
    (GlobalAveragePooling2D, (3, 5, 6, 4)), (GlobalMaxPooling2D, (3, 5, 6, 4)),
    (GlobalAveragePooling1D, (3, 7, 4)), (GlobalMaxPooling1D, (3, 7, 4)),
], ids=["gap2d", "gmp2d", "gap1d", "gmp1d"])
def test_global_pooling_layer_matches_reference(layer_cls, shape, keepdims, dtype):
    x = data(shape, 10).astype(dtype).astype(np.float64)
    layer = layer_cls(keepdims=keepdims, dtype=dtype)
    is_max = "Max" in layer_cls.__name__
    forward = ref.global_max_pool_forward if is_max else ref.global_avg_pool_forward
    backward = ref.global_max_pool_backward if is_max else ref.global_avg_pool_backward
    want = forward(x, keepdims)
    expected_shape = (shape[0],) + ((1,) * (len(shape) - 2) if keepdims else ()) + shape[-1:]
    assert want.shape == expected_shape
    y = layer(x)
    assert y.dtype == np.dtype(dtype)
    assert_close(y, want, forward(np.abs(x), keepdims), RTOL[dtype], "output")
    ctx = CallContext(layer)
    ctx.forward(x.astype(dtype), training=True)
    dy = data(want.shape, 11).astype(dtype)
    dx = ctx.backward(dy.copy())
    assert dx.shape == x.shape and dx.dtype == np.dtype(dtype)
    assert_close(dx, backward(x, dy), np.abs(backward(x, dy)), RTOL[dtype], "dx")


def test_max_pooling_gradient_goes_to_the_first_maximum():
    x = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).reshape(1, 3, 3, 1)
    layer = MaxPooling2D(2, strides=1, dtype="float64")   # overlapping windows
    layer(x)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dx = ctx.backward(np.array([[1.0, 2.0], [4.0, 8.0]]).reshape(1, 2, 2, 1))
    # every window's first maximum (row-major): (0,0), (0,1), (1,0), (1,2)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 2, 0], [4, 0, 8], [0, 0, 0]])
    seq = MaxPooling1D(3, strides=1, dtype="float64")
    s = np.array([2.0, 2.0, 2.0, 1.0, 2.0]).reshape(1, 5, 1)
    seq(s)
    seq_ctx = CallContext(seq)
    seq_ctx.forward(s, training=True)
    np.testing.assert_array_equal(seq_ctx.backward(np.array([1.0, 2.0, 4.0]).reshape(1, 3, 1))
                                  .ravel(), [1, 2, 4, 0, 0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pool_size, strides, padding", [
    ((2, 2), None, "valid"), ((3, 3), (1, 1), "same"), ((3, 2), (2, 1), "same"),
    ((2, 3), (1, 2), "valid")], ids=_id)
def test_max_pooling_ties_follow_the_reference(pool_size, strides, padding, dtype):
    x = np.random.default_rng(12).integers(-2, 1, (2, 7, 8, 3)).astype(np.float64)  # many ties
    layer = MaxPooling2D(pool_size, strides=strides, padding=padding, dtype=dtype)
    y = layer(x)
    np.testing.assert_array_equal(y, ref.max_pool2d_forward(x, pool_size, strides, padding))
    ctx = CallContext(layer)
    ctx.forward(x.astype(dtype), training=True)
    dy = np.random.default_rng(13).integers(1, 5, y.shape).astype(dtype)   # exact sums
    dx = ctx.backward(dy.copy())
    np.testing.assert_array_equal(dx, ref.max_pool2d_backward(x, dy, pool_size, strides, padding))
    gmp = GlobalMaxPooling2D(dtype=dtype)
    gmp(x)
    gmp_ctx = CallContext(gmp)
    gmp_ctx.forward(x.astype(dtype), training=True)
    np.testing.assert_array_equal(gmp_ctx.backward(np.ones((2, 3), dtype)),
                                  ref.global_max_pool_backward(x, np.ones((2, 3))))


def test_same_padding_is_never_pooled():
    x = -1.0 - np.random.default_rng(14).random((2, 5, 5, 2))   # all below the zero padding
    for pool_size, strides in (((2, 2), (2, 2)), ((3, 3), (1, 1)), ((4, 4), (3, 3))):
        y = MaxPooling2D(pool_size, strides, padding="same", dtype="float64")(x)
        assert (y < -1.0).all()
        np.testing.assert_array_equal(y, ref.max_pool2d_forward(x, pool_size, strides, "same"))
        ones = np.ones((2, 5, 5, 2))
        np.testing.assert_array_equal(
            AveragePooling2D(pool_size, strides, padding="same", dtype="float64")(ones), 1.0)
    np.testing.assert_array_equal(
        AveragePooling1D(3, 2, padding="same", dtype="float64")(np.ones((1, 6, 1))), 1.0)
    y = AveragePooling2D(2, 2, padding="same", dtype="float64")(
        np.arange(1.0, 10.0).reshape(1, 3, 3, 1))
    np.testing.assert_array_equal(y[0, :, :, 0], [[3.0, 4.5], [7.5, 9.0]])


EVERY_POOLING = [
    ("max2d", lambda d: MaxPooling2D(3, 2, "same", dtype=d), (6, 7, 2)),
    ("avg2d", lambda d: AveragePooling2D((2, 3), 1, dtype=d), (6, 7, 2)),
    ("max1d", lambda d: MaxPooling1D(2, dtype=d), (9, 2)),
    ("avg1d", lambda d: AveragePooling1D(3, 2, "same", dtype=d), (9, 2)),
    ("gap2d", lambda d: GlobalAveragePooling2D(dtype=d), (6, 7, 2)),
    ("gmp2d", lambda d: GlobalMaxPooling2D(keepdims=True, dtype=d), (6, 7, 2)),
    ("gap1d", lambda d: GlobalAveragePooling1D(keepdims=True, dtype=d), (9, 2)),
    ("gmp1d", lambda d: GlobalMaxPooling1D(dtype=d), (9, 2)),
]


@pytest.mark.parametrize("case", EVERY_POOLING, ids=[c[0] for c in EVERY_POOLING])
def test_pooling_accepts_any_layout_and_an_empty_batch(case):
    _, make, shape = case
    wide = data((3,) + shape[:-1] + (2 * shape[-1],), 25)
    strided = wide[..., ::2]
    layer = make("float32")
    expected = layer(np.ascontiguousarray(strided, np.float32))
    np.testing.assert_array_equal(layer(strided), expected)   # float64 in, float32 layer
    np.testing.assert_array_equal(layer(np.asfortranarray(strided, np.float32)), expected)
    out = layer(strided)
    np.asarray(out)[...] = 0   # a new array
    np.testing.assert_array_equal(layer(strided), expected)
    empty = layer(np.zeros((0,) + shape))
    assert empty.shape == (0,) + tuple(layer.compute_output_shape(shape))


@pytest.mark.parametrize("case", EVERY_POOLING, ids=[c[0] for c in EVERY_POOLING])
def test_pooling_training_buffers_follow_the_batch_size(case):
    # forward/backward reuse buffers sized for the largest batch: a smaller batch, then a
    # larger one, must give what a fresh layer gives
    _, make, shape = case
    layer = make("float64")
    ctx = CallContext(layer)   # one context, its buffers reused from batch to batch
    for n, seed in ((5, 1), (3, 2), (5, 3), (1, 4), (7, 5)):
        x = data((n,) + shape, seed)
        layer(x[:1])
        y = ctx.forward(x, training=True).copy()
        dy = data(y.shape, seed + 10)
        dx = ctx.backward(dy.copy()).copy()
        fresh = make("float64")
        fresh(x[:1])
        fresh_ctx = CallContext(fresh)
        np.testing.assert_array_equal(y, fresh_ctx.forward(x, training=True),
                                      err_msg=f"y, n={n}")
        np.testing.assert_array_equal(dx, fresh_ctx.backward(dy.copy()), err_msg=f"dx, n={n}")


# ---- float64 gradient checks ----

def _f64(cls, *args, **kwargs):
    return lambda: cls(*args, dtype="float64", **kwargs)


GRADIENT_CASES = [
    ("max2d_valid", _f64(MaxPooling2D), (5, 6, 2)),
    ("max2d_same_overlap", _f64(MaxPooling2D, 3, strides=2, padding="same"), (5, 6, 2)),
    ("max2d_s1_overlap", _f64(MaxPooling2D, (2, 3), strides=1), (4, 5, 2)),
    ("max2d_same_s21", _f64(MaxPooling2D, (3, 2), strides=(2, 1), padding="same"), (5, 4, 2)),
    ("avg2d_valid", _f64(AveragePooling2D), (5, 6, 2)),
    ("avg2d_same_overlap", _f64(AveragePooling2D, 3, strides=2, padding="same"), (5, 6, 2)),
    ("avg2d_same_s1", _f64(AveragePooling2D, (2, 3), strides=1, padding="same"), (4, 5, 2)),
    ("avg2d_valid_s_gt_pool", _f64(AveragePooling2D, 2, strides=3), (5, 7, 2)),
    ("max1d_valid", _f64(MaxPooling1D), (7, 3)),
    ("max1d_same_overlap", _f64(MaxPooling1D, 3, strides=2, padding="same"), (7, 3)),
    ("avg1d_valid_overlap", _f64(AveragePooling1D, 3, strides=1), (7, 3)),
    ("avg1d_same", _f64(AveragePooling1D, 4, strides=3, padding="same"), (8, 3)),
    ("gap2d", _f64(GlobalAveragePooling2D), (4, 5, 3)),
    ("gmp2d_keepdims", _f64(GlobalMaxPooling2D, keepdims=True), (4, 5, 3)),
    ("gap1d_keepdims", _f64(GlobalAveragePooling1D, keepdims=True), (6, 3)),
    ("gmp1d", _f64(GlobalMaxPooling1D), (6, 3)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_pooling_gradients(case):
    _, factory, in_shape = case
    layer = factory()
    check_layer_gradients(layer, data((2,) + in_shape, 15))
    assert layer.params == [] and CallContext(layer).grads == []


def test_pooling_first_layer_skips_input_gradient():
    x = data((2, 4, 4, 2), 16)
    for layer in (MaxPooling2D(dtype="float64"), GlobalAveragePooling2D(dtype="float64")):
        y = layer(x)
        ctx = CallContext(layer)
        ctx.forward(x, training=True)
        assert ctx.backward(np.ones_like(y), need_input_grad=False) is None


# ---- the layers against PyTorch (the 1e-5 requirement) ----

@pytest.mark.parametrize("kind, pool_size, strides, padding, size", [
    ("max", (3, 3), (2, 2), "valid", (9, 8)),
    ("max", (2, 2), None, "same", (7, 9)),
    ("avg", (3, 3), (2, 2), "same", (7, 8)),
    ("avg", (2, 3), (1, 2), "same", (6, 7)),
], ids=["max_overlap", "max_same", "avg_same", "avg_same_s12"])
def test_pool2d_layer_matches_torch(kind, pool_size, strides, padding, size):
    x = data((2,) + size + (3,), 17)
    layer = LAYER_2D[kind](pool_size, strides=strides, padding=padding, dtype="float64")
    layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(y.shape, 18)
    dx = ctx.backward(dy.copy())
    want = torch_pool2d(kind, x, dy, pool_size, strides or pool_size, padding)
    np.testing.assert_allclose(y, want[0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(dx, want[1], rtol=1e-5, atol=1e-9)


def test_pool1d_layer_matches_torch():
    x = data((2, 10, 3), 19)
    for kind, layer in (("max", MaxPooling1D(3, 2, "same", dtype="float64")),
                        ("avg", AveragePooling1D(3, 2, "same", dtype="float64"))):
        layer(x)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True)
        dy = data(y.shape, 20)
        dx = ctx.backward(dy.copy())
        want = torch_pool1d(kind, x, dy, 3, 2, "same")
        np.testing.assert_allclose(y, want[0], rtol=1e-5, atol=1e-9, err_msg=kind)
        np.testing.assert_allclose(dx, want[1], rtol=1e-5, atol=1e-9, err_msg=kind)


# ---- thread counts ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make, shape", [
    (lambda d: MaxPooling2D(3, strides=2, padding="same", dtype=d), (16, 20, 20, 8)),
    (lambda d: AveragePooling2D(3, strides=1, padding="same", dtype=d), (16, 20, 20, 8)),
    (lambda d: MaxPooling1D(4, strides=3, dtype=d), (16, 60, 8)),
    (lambda d: AveragePooling1D(2, padding="same", dtype=d), (16, 61, 8)),
    (lambda d: GlobalAveragePooling2D(dtype=d), (16, 20, 20, 8)),
    (lambda d: GlobalMaxPooling2D(keepdims=True, dtype=d), (16, 20, 20, 8)),
], ids=["max2d", "avg2d", "max1d", "avg1d", "gap2d", "gmp2d"])
def test_pooling_gives_the_same_bits_for_any_thread_count(make, shape, dtype):
    x = data(shape, 21).astype(dtype)
    results = []
    for threads in (1, 2, 3):
        minidl.set_num_threads(threads)
        layer = make(dtype)
        inference = layer(x)
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        dx = ctx.backward(data(y.shape, 22).astype(dtype)).copy()
        results.append((inference, y, dx))
    for other in results[1:]:
        for a, b, what in zip(results[0], other, ("inference", "y", "dx")):
            np.testing.assert_array_equal(a, b, err_msg=what)


# ---- shapes ----

def test_pool2d_output_shapes_follow_keras():
    checked = 0
    for size in ((7, 9), (4, 6), (1, 5), (10, 3), (2, 2)):
        for pool in ((1, 1), (2, 2), (3, 2)):
            for strides in (None, (1, 1), (2, 2), (3, 2)):
                for padding in ("valid", "same"):
                    out = out_size2d(size, pool, strides or pool, padding)
                    if min(out) <= 0:
                        continue
                    for cls in (MaxPooling2D, AveragePooling2D):
                        layer = cls(pool, strides=strides, padding=padding)
                        assert tuple(layer.compute_output_shape(size + (3,))) == out + (3,)
                        assert layer(np.ones((2,) + size + (3,))).shape == (2,) + out + (3,)
                        checked += 1
    assert checked > 150


def test_pool1d_output_shapes_follow_keras():
    for steps in (1, 2, 5, 8, 13):
        for pool in (1, 2, 3):
            for stride in (None, 1, 2, 3):
                for padding in ("valid", "same"):
                    out = keras_length(steps, pool, stride or pool, padding)
                    if out <= 0:
                        continue
                    for cls in (MaxPooling1D, AveragePooling1D):
                        layer = cls(pool, strides=stride, padding=padding)
                        assert tuple(layer.compute_output_shape((steps, 2))) == (out, 2)
                        assert layer(np.ones((3, steps, 2))).shape == (3, out, 2)


def test_global_pooling_output_shapes():
    for cls in (GlobalAveragePooling2D, GlobalMaxPooling2D):
        assert tuple(cls().compute_output_shape((5, 6, 3))) == (3,)
        assert tuple(cls(keepdims=True).compute_output_shape((5, 6, 3))) == (1, 1, 3)
        assert cls(keepdims=True)(np.ones((2, 5, 6, 3))).shape == (2, 1, 1, 3)
    for cls in (GlobalAveragePooling1D, GlobalMaxPooling1D):
        assert tuple(cls().compute_output_shape((7, 3))) == (3,)
        assert tuple(cls(keepdims=True).compute_output_shape((7, 3))) == (1, 3)
        assert cls()(np.ones((2, 7, 3))).shape == (2, 3)


def test_pooling_layers_have_no_weights_and_keras_defaults():
    model = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), MaxPooling2D(),
                        AveragePooling2D(padding="same"), GlobalMaxPooling2D(), Dense(1)])
    assert [layer.count_params() for layer in model.layers] == [20, 0, 0, 0, 3]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for shape in ("(None, 6, 6, 2)", "(None, 3, 3, 2)", "(None, 2, 2, 2)", "(None, 2)"):
        assert shape in text, shape
    for layer in model.layers[1:4]:
        assert layer.get_weights() == [] and layer.params == []
    config = MaxPooling2D().get_config()
    assert tuple(config["pool_size"]) == (2, 2)
    assert tuple(config["strides"]) == (2, 2)   # None means pool_size, as Keras stores it
    assert config["padding"] == "valid"
    assert config["data_format"] in (None, "channels_last")
    assert tuple(AveragePooling2D(3, 1).get_config()["strides"]) == (1, 1)
    assert tuple(MaxPooling1D().get_config()["pool_size"]) == (2,)
    assert AveragePooling1D(padding="SAME").get_config()["padding"] == "same"
    assert GlobalAveragePooling2D().get_config()["keepdims"] is False


def test_aliases_are_the_keras_classes():
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    assert MaxPool1D is MaxPooling1D and AvgPool1D is AveragePooling1D
    assert GlobalAvgPool2D is GlobalAveragePooling2D and GlobalMaxPool2D is GlobalMaxPooling2D
    assert GlobalAvgPool1D is GlobalAveragePooling1D and GlobalMaxPool1D is GlobalMaxPooling1D


# ---- bad arguments and inputs ----

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: MaxPooling2D(0), ValueError, "pool_size"),
    (lambda: MaxPooling2D((2, -1)), ValueError, "pool_size"),
    (lambda: MaxPooling2D((2, 2, 2)), ValueError, "pool_size"),
    (lambda: MaxPooling2D(1.5), (ValueError, TypeError), "pool_size"),
    (lambda: AveragePooling2D(2, strides=0), ValueError, "strides"),
    (lambda: AveragePooling2D(2, strides=(1,)), ValueError, "strides"),
    (lambda: AveragePooling2D(2, strides="2"), (ValueError, TypeError), "strides"),
    (lambda: MaxPooling2D(padding="full"), ValueError, "padding"),
    (lambda: MaxPooling2D(padding="causal"), ValueError, "padding"),
    (lambda: AveragePooling2D(data_format="NCHW"), ValueError, "data_format"),
    (lambda: MaxPooling1D(0), ValueError, "pool_size"),
    (lambda: MaxPooling1D((2, 2)), ValueError, "pool_size"),
    (lambda: AveragePooling1D(2, strides=-1), ValueError, "strides"),
    (lambda: AveragePooling1D(padding="causal"), ValueError, "padding"),
    (lambda: MaxPooling1D(data_format="NCHW"), ValueError, "data_format"),
    (lambda: GlobalAveragePooling2D(data_format="NCHW"), ValueError, "data_format"),
    (lambda: GlobalMaxPooling1D(data_format="nhwc"), ValueError, "data_format"),
], ids=["pool0", "pool_neg", "pool_len", "pool_float", "strides0", "strides_len",
        "strides_str", "padding", "padding_causal", "data_format", "1d_pool0", "1d_pool_len",
        "1d_strides_neg", "1d_causal", "1d_data_format", "gap_data_format", "gmp_data_format"])
def test_pooling_constructor_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("make, bad_shape, good_shape", [
    (lambda: MaxPooling2D(name="pool_x"), (2, 6, 6), (2, 6, 6, 3)),
    (lambda: AveragePooling2D(name="pool_x"), (2, 6, 6, 3, 1), (2, 6, 6, 3)),
    (lambda: MaxPooling1D(name="pool_x"), (2, 6, 6, 3), (2, 6, 3)),
    (lambda: GlobalAveragePooling2D(name="pool_x"), (2, 6, 3), (2, 6, 6, 3)),
    (lambda: GlobalMaxPooling1D(name="pool_x"), (2, 6, 6, 3), (2, 6, 3)),
], ids=["max2d_3d", "avg2d_5d", "max1d_4d", "gap2d_3d", "gmp1d_4d"])
def test_pooling_rejects_inputs_of_the_wrong_rank(make, bad_shape, good_shape):
    layer = make()
    shown = ", ".join(map(str, bad_shape[1:]))
    with pytest.raises(ValueError, match=rf"pool_x.*{shown}\)"):
        layer(np.ones(bad_shape))
    assert layer(np.ones(good_shape)).shape[0] == 2
    other = good_shape[:-1] + (good_shape[-1] + 1,)
    with pytest.raises(ValueError, match=r"pool_x"):
        layer(np.ones(other))   # another channel count than the built one


@pytest.mark.parametrize("make, shape", [
    (lambda: MaxPooling2D(5), (4, 6, 3)),
    (lambda: AveragePooling2D((2, 7)), (4, 6, 3)),
    (lambda: MaxPooling1D(6), (5, 3)),
], ids=["max2d", "avg2d", "max1d"])
def test_valid_pool_larger_than_input_is_refused_at_build(make, shape):
    with pytest.raises(ValueError, match="pool"):
        make()(np.ones((1,) + shape))
    layer = make()
    config = layer.get_config()
    config["input_shape"] = list(shape)
    with pytest.raises(ValueError, match="pool"):
        Sequential([type(layer).from_config(config)])
    same = dict(layer.get_config(), padding="same")
    assert type(layer).from_config(same)(np.ones((1,) + shape)).shape[0] == 1


# ---- config and models ----

CONFIG_CASES = [
    lambda: MaxPooling2D(),
    lambda: MaxPooling2D((3, 2), strides=(2, 1), padding="same", name="p", dtype="float64"),
    lambda: AveragePooling2D(3, strides=1, padding="same"),
    lambda: MaxPooling1D(3, strides=2),
    lambda: AveragePooling1D(4, padding="same", input_shape=(10, 2)),
    lambda: GlobalAveragePooling2D(keepdims=True),
    lambda: GlobalMaxPooling2D(),
    lambda: GlobalAveragePooling1D(),
    lambda: GlobalMaxPooling1D(keepdims=True, dtype="float64"),
]


@pytest.mark.parametrize("make", CONFIG_CASES, ids=["max2d", "max2d_args", "avg2d", "max1d",
                                                     "avg1d", "gap2d", "gmp2d", "gap1d",
                                                     "gmp1d"])
def test_pooling_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    text = json.dumps(config)
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    from_json = type(layer).from_config(json.loads(text))
    assert json.dumps(from_json.get_config()) == text
    assert get_layer({"class_name": type(layer).__name__, "config": config}).get_config() == config
    shape = (3, 7, 6, 2) if ("2D" in type(layer).__name__) else (3, 10, 2)
    x = data(shape, 23)
    np.testing.assert_array_equal(from_json(x), layer(x))


def test_model_with_every_pooling_layer_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(24)
    images = rng.standard_normal((32, 9, 8, 2)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    set_random_seed(2)
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(9, 8, 2)),
                        MaxPooling2D(3, strides=2, padding="same"),
                        AveragePooling2D((2, 1), padding="same"),
                        GlobalAveragePooling2D(keepdims=True), GlobalMaxPooling2D(),
                        Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(images, y, epochs=2, batch_size=8, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    path = tmp_path / "pools.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(images, verbose=0),
                                  model.predict(images, verbose=0))

    seqs = rng.standard_normal((32, 12, 3)).astype(np.float32)
    seq_model = Sequential([MaxPooling1D(2, input_shape=(12, 3)),
                            AveragePooling1D(3, strides=1, padding="same"),
                            GlobalMaxPooling1D(keepdims=True), GlobalAveragePooling1D(),
                            Dense(2, activation="softmax")])
    seq_model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert np.isfinite(seq_model.fit(seqs, y, epochs=1, verbose=0).history["loss"][0])
    seq_path = tmp_path / "seq_pools.minidl"
    seq_model.save(seq_path)
    np.testing.assert_array_equal(load_model(seq_path).predict(seqs, verbose=0),
                                  seq_model.predict(seqs, verbose=0))


@pytest.mark.parametrize("shape, pool", [((3, 8, 6, 5), (2, 2)), ((2, 9, 7, 3), (2, 3)),
                                         ((2, 5, 5, 1), (5, 5))])
@pytest.mark.parametrize("gated", [False, True])
def test_tiled_max_pool_backward_equals_the_scatter(shape, pool, gated):
    """Windows that tile the input take max_pool_backward's one-pass path (odd sizes leave
    uncovered rows and columns, which get 0); it must equal the general scatter."""
    from minidl._core import _pooling as kernels
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    out = (shape[0], shape[1] // pool[0], shape[2] // pool[1], shape[3])
    y, argmax = np.empty(out, np.float32), np.empty(out, np.intc)
    kernels.max_pool_forward(x, y, argmax, pool, pool, (0, 0))
    dy = rng.standard_normal(out).astype(np.float32)
    gate = y if gated else None
    tiled = np.full(shape, np.nan, np.float32)
    kernels.max_pool_backward(dy, argmax, tiled, pool, pool, (0, 0), gate=gate)
    scattered = np.full(shape, np.nan, np.float32)
    n = shape[0]
    kernels.scatter_argmax(dy.reshape(n, -1), argmax.reshape(n, -1), scattered.reshape(n, -1),
                           None if gate is None else gate.reshape(n, -1))
    assert np.array_equal(tiled, scattered)
    # An index outside its window matches no position: its gradient is dropped, and
    # nothing outside dx is touched.
    argmax[...] = 2 ** 30
    kernels.max_pool_backward(dy, argmax, tiled, pool, pool, (0, 0), gate=gate)
    assert not tiled.any()
