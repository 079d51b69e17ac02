"""The convolution fused with its max pooling (csrc/conv_pool.c): the kernels against the
unfused layers' kernels, errors, thread-count determinism, and the training plan's direct
path (``models.rewrites.ReluMaxPoolStep`` with ``direct``) against the old one.

``conv_max_pool_forward`` promises the *same bits* as im2col + GEMM + max_pool_forward
(pool strides = pool size, no padding): each convolution output is the GEMM's FMA chain over
the patch, and the pooling takes the first maximum of each window in row-major order with a
NaN winning, so the maxima and their indices must match exactly. Its backward sums the
kernel gradient in another order than the GEMM, so it is checked against a float64 numpy
reference (``d_kernel = cols.T @ dz``, ``d_bias = dz.sum(0)``, ``dz`` the gated scatter of
max_pool_backward) with a tolerance scaled by the sum of the absolute terms.

At model level the direct path must not change what the model computes: the loss (forward
bits) and every gradient but the first convolution's are bit-identical to the old path, and
the first convolution's gradients agree to rounding.
"""
import itertools

import numpy as np
import pytest

import minidl
from minidl._core import _backend
from minidl._core import _conv_pool, _convolution, _pooling
from minidl.layers import (Conv1D, Conv2D, Dense, Flatten, Input, MaxPooling1D,
                           MaxPooling2D)
from minidl.models import Sequential
from minidl.models.rewrites import ReluMaxPoolStep
from minidl._core._backend import gemm
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")

FILTERS = (1, 7, 16, 17, 32, 33, 48, 70)   # below, at and past multiples of 16 and 32
POOLS = ((2, 2), (3, 3), (1, 2), (2, 1), (1, 1))   # (2, 2) is pooled in registers


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- geometry, as the layers compute it ----

def _same(n, k, s, d):
    """(pad before, output length) of Keras' 'same' along one axis."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, out


def _valid(n, k, s, d):
    return 0, (n - ((k - 1) * d + 1)) // s + 1


def geometry(c, hw, kernel, strides=(1, 1), dilation=(1, 1), padding="valid"):
    """Keyword arguments of the kernels for (h, w, c) images, plus the image shape."""
    axis = _same if padding == "same" else _valid
    (top, out_h), (left, out_w) = (axis(n, k, s, d) for n, k, s, d in
                                   zip(hw, kernel, strides, dilation))
    return (hw + (c,)), dict(kernel_size=kernel, strides=strides, dilation=dilation,
                             pads=(top, left), out_hw=(out_h, out_w))


# id: (channels, (h, w), kernel, strides, dilation, padding). Odd sizes leave ragged rows
# and columns that no pooling window covers; "w3" has pooled width 1 for most pools;
# "same" cases read zeros past every edge (the (2, 3) kernel pads (0, 1): asymmetric).
GEOMETRIES = {
    "c1_k3": (1, (13, 11), (3, 3), (1, 1), (1, 1), "valid"),
    "c3_k3_same": (3, (12, 9), (3, 3), (1, 1), (1, 1), "same"),
    "c2_k5": (2, (11, 13), (5, 5), (1, 1), (1, 1), "valid"),
    "c1_k5_same": (1, (10, 9), (5, 5), (1, 1), (1, 1), "same"),
    "c3_k2x3_same": (3, (9, 10), (2, 3), (1, 1), (1, 1), "same"),
    "c1_k3_s21": (1, (15, 11), (3, 3), (2, 1), (1, 1), "valid"),
    "c3_k3_d2": (3, (13, 12), (3, 3), (1, 1), (2, 2), "valid"),
    "c2_k3_s21_d2_same": (2, (14, 9), (3, 3), (2, 1), (2, 2), "same"),
    "c3_k1": (3, (7, 5), (1, 1), (1, 1), (1, 1), "valid"),
    "c2_k1_s21": (2, (9, 7), (1, 1), (2, 1), (1, 1), "valid"),
    "c1_k1": (1, (5, 6), (1, 1), (1, 1), (1, 1), "valid"),
    "c1_k3_w3": (1, (9, 5), (3, 3), (1, 1), (1, 1), "valid"),
    "c2_k2x3_s21_w3": (2, (8, 5), (2, 3), (2, 1), (1, 1), "valid"),
    "c8_k3": (8, (7, 7), (3, 3), (1, 1), (1, 1), "valid"),   # 72 taps: several tap tiles
}


def case(name):
    c, hw, kernel, strides, dilation, padding = GEOMETRIES[name]
    return geometry(c, hw, kernel, strides, dilation, padding)


def pooled_shape(n, window, pool, filters):
    out_h, out_w = window["out_hw"]
    return (n, out_h // pool[0], out_w // pool[1], filters)


# ---- the unfused path: im2col + GEMM + max_pool_forward / max_pool_backward ----

def unfused_forward(x, kernel, window, pool):
    """(y, argmax, cols, z) of im2col, the GEMM and max_pool_forward, as the layers run them."""
    n, filters = x.shape[0], kernel.shape[1]
    out_h, out_w = window["out_hw"]
    cols = np.empty((n * out_h * out_w, kernel.shape[0]), x.dtype)
    _convolution.im2col(x, cols, **window)
    z = np.empty((cols.shape[0], filters), x.dtype)
    gemm(cols, kernel, z)
    z = z.reshape(n, out_h, out_w, filters)
    y = np.empty(pooled_shape(n, window, pool, filters), x.dtype)
    argmax = np.empty(y.shape, np.intc)
    _pooling.max_pool_forward(z, y, argmax, pool, pool, (0, 0))
    return y, argmax, cols, z


def fused_forward(x, kernel, window, pool):
    shape = pooled_shape(x.shape[0], window, pool, kernel.shape[1])
    y = np.full(shape, np.nan, x.dtype)   # fully overwritten: no NaN may survive
    argmax = np.full(shape, -7, np.intc)
    _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=pool, **window)
    return y, argmax


def reference_backward(cols, z, dy, argmax, gate, pool):
    """(d_kernel, d_bias, scale) in float64: dz = the gated scatter of max_pool_backward,
    d_kernel = cols.T @ dz, d_bias = dz.sum(0); ``scale`` bounds each sum's rounding error
    (the sum of its terms' absolute values)."""
    dz = np.empty(z.shape, z.dtype)
    _pooling.max_pool_backward(dy, argmax, dz, pool, pool, (0, 0), gate=gate)
    cols64, dz64 = cols.astype(np.float64), dz.reshape(-1, z.shape[-1]).astype(np.float64)
    return (cols64.T @ dz64, dz64.sum(0),
            (np.abs(cols64).T @ np.abs(dz64), np.abs(dz64).sum(0)))


def fused_backward(x, dy, argmax, gate, window, pool, k, with_bias=True):
    filters = dy.shape[-1]
    d_kernel = np.full((k, filters), np.nan, x.dtype)   # overwritten
    d_bias = np.full(filters, np.nan, x.dtype) if with_bias else None
    _conv_pool.conv_max_pool_backward(x, dy, argmax, gate, d_kernel, d_bias, pool_size=pool,
                                      **window)
    return d_kernel, d_bias


def assert_sums_close(got, want, scale, dtype):
    """Elementwise |got - want| <= tol * (sum of |terms|): sums in another order differ by
    a few ulps of the terms, never more."""
    tol = 1e-12 if dtype == np.float64 else 1e-5
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol * scale + 1e-300), (
        f"max error {err.max()} at {np.unravel_index(np.argmax(err - tol * scale), err.shape)}")


def gate_of(y, seed):
    """A gate as the layer passes it (relu(y + bias)), with exact zeros, plus negative
    values here and there (only gate > 0 passes gradient)."""
    rng = np.random.default_rng(seed)
    gate = np.maximum(y + rng.standard_normal(y.shape[-1]).astype(y.dtype) * 0.5, 0)
    gate[rng.random(y.shape) < 0.1] = -1
    return np.ascontiguousarray(gate)


# ---- forward: the same bits as the unfused path ----

@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"pool{p[0]}x{p[1]}")
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_forward_gives_the_bits_of_im2col_gemm_and_max_pool(name, pool):
    """Every geometry x pool x filter count x dtype: values and argmax exactly those of the
    unfused kernels. The filter counts cover the vector tails (not multiples of 16 or 32)
    of both the register-pooled 2x2 path and the general band path."""
    image, window = case(name)
    k = window["kernel_size"][0] * window["kernel_size"][1] * image[-1]
    for dtype, filters in itertools.product((np.float32, np.float64), FILTERS):
        x = data((2,) + image, 1, dtype)
        kernel = data((k, filters), 2, dtype)
        want_y, want_argmax, _, _ = unfused_forward(x, kernel, window, pool)
        assert want_y.size > 0
        y, argmax = fused_forward(x, kernel, window, pool)
        where = f"{dtype.__name__}, {filters} filters"
        np.testing.assert_array_equal(y, want_y, err_msg=where)
        np.testing.assert_array_equal(argmax, want_argmax, err_msg=where)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3)])
def test_forward_adds_the_bias_and_relu_as_the_relu_layer_does(pool, dtype):
    """With ``bias`` and ``relu`` the kernel finishes the layer's forward pass itself: the
    bits of the activation kernel's ``relu(y + bias)`` on the unfused maxima (so NaN stays
    NaN and -0 stays -0), with or without the ReLU."""
    from minidl.activations import get as get_activation
    image, window = case("c3_k3_same")
    x = data((3,) + image, 11, dtype)
    x[0, 2, 3, 1] = np.nan
    kernel, bias = data((27, 17), 12, dtype), data((17,), 13, dtype)
    y_ref, argmax_ref, _, _ = unfused_forward(x, kernel, window, pool)
    for relu, name in ((True, "relu"), (False, "linear")):
        want = y_ref.copy().reshape(-1, 17)
        get_activation(name).forward_bias(want, bias, want)
        y = np.empty_like(y_ref)
        argmax = np.empty_like(argmax_ref)
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=pool, bias=bias,
                                         relu=relu, **window)
        assert np.array_equal(y.reshape(-1, 17), want, equal_nan=True)
        assert np.array_equal(argmax, argmax_ref)
        assert np.isnan(y).any()
    with pytest.raises(ValueError, match="bias must have shape"):
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=pool,
                                         bias=np.zeros(16, dtype), **window)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (1, 2)])
def test_forward_ties_go_to_the_first_maximum(pool, dtype):
    """A constant input makes every window a tie (a ReLU's zeros in practice): argmax must
    be the first position of each window in row-major order, as MaxPooling routes it."""
    image, window = case("c3_k3_same")
    x = np.ones((2,) + image, dtype)
    kernel = np.ones((27, 17), dtype)
    kernel[:, 5] = 0
    y, argmax = fused_forward(x, kernel, window, pool)
    want_y, want_argmax, _, _ = unfused_forward(x, kernel, window, pool)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(argmax, want_argmax)
    # filter 5 is 0 everywhere (even in the padding): each window's first position
    out_w, f = window["out_hw"][1], 17
    py, px = np.meshgrid(np.arange(y.shape[1]), np.arange(y.shape[2]), indexing="ij")
    first = (py * pool[0] * out_w + px * pool[1]) * f + 5
    np.testing.assert_array_equal(argmax[:, :, :, 5], np.broadcast_to(first, y.shape[:3]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (2, 1)])
def test_nan_and_inf_inputs_pool_as_max_pooling_does(pool, dtype):
    """A NaN (and inf - inf, which makes one) in the input makes NaN outputs; the pooled
    NaN must win its window with the same index as MaxPooling picks, and the values equal
    the unfused path's (NaN where it has NaN)."""
    image, window = case("c2_k3_s21_d2_same")
    x = data((3,) + image, 4, dtype)
    x[0, 3, 4, 1] = np.nan
    x[1, 0, 0, 0] = np.nan
    x[2, 5, 2, 0], x[2, 5, 3, 1] = np.inf, -np.inf
    kernel = data((18, 33), 5, dtype)
    kernel[:, 3] = np.abs(kernel[:, 3])   # inf and -inf in one patch: inf - inf = NaN
    want_y, want_argmax, _, z = unfused_forward(x, kernel, window, pool)
    assert np.isnan(z).any() and np.isnan(want_y).any() and not np.isnan(want_y).all()
    y, argmax = fused_forward(x, kernel, window, pool)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want_y))
    np.testing.assert_array_equal(y, want_y)   # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(argmax, want_argmax)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_and_empty_pooled_output(dtype):
    """n = 0, and outputs smaller than one pooling window (nothing pooled): the forward
    writes nothing and the backward gives zero gradients (not the buffers' old contents)."""
    image, window = case("c1_k3")
    x = np.zeros((0,) + image, dtype)
    kernel = data((9, 7), 0, dtype)
    y, argmax = fused_forward(x, kernel, window, (2, 2))
    assert y.shape == (0, 5, 4, 7)
    d_kernel, d_bias = fused_backward(x, y, argmax, y, window, (2, 2), 9)
    assert not d_kernel.any() and not d_bias.any()
    # 3 x 3 output, 4 x 4 pool: (n, 0, 0, filters)
    image, window = geometry(1, (5, 5), (3, 3))
    x = data((2,) + image, 1, dtype)
    y, argmax = fused_forward(x, kernel, window, (4, 4))
    assert y.shape == (2, 0, 0, 7)
    d_kernel, d_bias = fused_backward(x, y, argmax, y, window, (4, 4), 9)
    assert not d_kernel.any() and not d_bias.any()


# ---- backward: against a float64 reference ----

@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"pool{p[0]}x{p[1]}")
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_backward_matches_the_float64_reference(name, pool):
    """d_kernel and d_bias from the pooled gradient, the forward's argmax and a gate with
    zeros and negatives, against cols.T @ dz and dz.sum(0) in float64. A few filter counts
    per case (rotating through all of them) keep the grid small."""
    image, window = case(name)
    k = window["kernel_size"][0] * window["kernel_size"][1] * image[-1]
    start = (list(GEOMETRIES).index(name) + POOLS.index(pool)) % len(FILTERS)
    counts = [FILTERS[(start + i) % len(FILTERS)] for i in range(0, len(FILTERS), 3)]
    for dtype, filters in itertools.product((np.float32, np.float64), counts):
        x = data((3,) + image, 6, dtype)
        kernel = data((k, filters), 7, dtype)
        y, argmax, cols, z = unfused_forward(x, kernel, window, pool)
        dy = data(y.shape, 8, dtype)
        gate = gate_of(y, 9)
        want_k, want_b, (scale_k, scale_b) = reference_backward(cols, z, dy, argmax, gate,
                                                                pool)
        d_kernel, d_bias = fused_backward(x, dy, argmax, gate, window, pool, k)
        assert d_kernel.dtype == dtype
        assert_sums_close(d_kernel, want_k, scale_k, dtype)
        assert_sums_close(d_bias, want_b, scale_b, dtype)
        # without a bias: the same kernel gradient, bit for bit
        d_kernel_only, _ = fused_backward(x, dy, argmax, gate, window, pool, k,
                                          with_bias=False)
        np.testing.assert_array_equal(d_kernel_only, d_kernel)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_gate_masks_the_gradient(dtype):
    """Only windows whose gate is > 0 pass gradient: a gate of zeros and negatives gives
    zero gradients, and closing one filter's gate zeroes that filter's column alone."""
    image, window = case("c3_k3_same")
    x = data((2,) + image, 1, dtype)
    kernel = data((27, 33), 2, dtype)
    y, argmax, _, _ = unfused_forward(x, kernel, window, (2, 2))
    dy = data(y.shape, 3, dtype)
    closed = np.where(np.arange(y.size).reshape(y.shape) % 2 == 0, 0, -1).astype(dtype)
    d_kernel, d_bias = fused_backward(x, dy, argmax, closed, window, (2, 2), 27)
    assert not d_kernel.any() and not d_bias.any()
    gate = np.ones_like(y)
    gate[..., 4] = 0
    d_kernel, d_bias = fused_backward(x, dy, argmax, gate, window, (2, 2), 27)
    assert not d_kernel[:, 4].any() and d_bias[4] == 0
    assert np.all(d_kernel[:, 5] != 0) and d_bias[5] != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_ignores_an_argmax_outside_its_window(dtype):
    """An index that is not in its window (e.g. stale) matches no position: its gradient is
    dropped from d_kernel, as max_pool_backward drops it, and nothing is out of bounds."""
    image, window = case("c1_k3")
    x = data((2,) + image, 1, dtype)
    y, argmax, cols, z = unfused_forward(x, data((9, 7), 2, dtype), window, (2, 2))
    dy = data(y.shape, 3, dtype)
    gate = np.ones_like(y)
    bad = argmax.copy()
    bad[0] = 2 ** 30
    bad[1, 0, 0, :] = -1
    want_k, _, (scale_k, _) = reference_backward(cols, z, dy, bad, gate, (2, 2))
    d_kernel, _ = fused_backward(x, dy, bad, gate, window, (2, 2), 9)
    assert_sums_close(d_kernel, want_k, scale_k, dtype)
    bad[...] = 2 ** 30
    d_kernel, _ = fused_backward(x, dy, bad, gate, window, (2, 2), 9)
    assert not d_kernel.any()


def test_backward_drops_an_out_of_window_argmax_from_d_bias_too():
    """The contract is d_bias = dz.sum(0), dz being max_pool_backward's scatter: an argmax
    outside its window contributes to neither gradient."""
    image, window = case("c1_k3")
    x = data((2,) + image, 1)
    y, argmax, cols, z = unfused_forward(x, data((9, 7), 2), window, (2, 2))
    dy, gate = data(y.shape, 3), np.ones_like(y)
    bad = np.full_like(argmax, 2 ** 30)
    _, want_b, _ = reference_backward(cols, z, dy, bad, gate, (2, 2))
    _, d_bias = fused_backward(x, dy, bad, gate, window, (2, 2), 9)
    np.testing.assert_array_equal(d_bias, want_b)


# ---- errors ----

def _arrays(dtype=np.float32, filters=7):
    image, window = case("c1_k3")
    x = data((2,) + image, 0, dtype)
    kernel = data((9, filters), 1, dtype)
    y, argmax = fused_forward(x, kernel, window, (2, 2))
    return x, kernel, y, argmax, window


def test_forward_rejects_bad_shapes_with_a_message():
    x, kernel, y, argmax, window = _arrays()
    with pytest.raises(ValueError, match="kernel must have shape"):
        _conv_pool.conv_max_pool_forward(x, data((10, 7), 0, np.float32), y, argmax,
                                         pool_size=(2, 2), **window)
    with pytest.raises(ValueError, match="pooled output must have shape"):
        _conv_pool.conv_max_pool_forward(x, kernel, np.empty((2, 5, 5, 7), np.float32),
                                         np.empty((2, 5, 5, 7), np.intc), pool_size=(2, 2),
                                         **window)
    with pytest.raises(ValueError, match="pooled output must have shape"):
        _conv_pool.conv_max_pool_forward(x, kernel, np.empty((2, 5, 4, 8), np.float32),
                                         np.empty((2, 5, 4, 8), np.intc), pool_size=(2, 2),
                                         **window)
    with pytest.raises(ValueError, match="argmax must have the shape of y"):
        _conv_pool.conv_max_pool_forward(x, kernel, y, np.empty((2, 5, 3, 7), np.intc),
                                         pool_size=(2, 2), **window)
    with pytest.raises(ValueError, match="pool_size must be positive"):
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=(0, 2), **window)
    with pytest.raises(ValueError, match="invalid geometry"):
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax, pool_size=(2, 2),
                                         **{**window, "strides": (0, 1)})


def test_backward_rejects_bad_shapes_with_a_message():
    x, kernel, y, argmax, window = _arrays()
    d_kernel, d_bias = np.empty_like(kernel), np.empty(7, np.float32)

    def call(dy=y, am=argmax, gate=y, dk=d_kernel, db=d_bias):
        _conv_pool.conv_max_pool_backward(x, dy, am, gate, dk, db, pool_size=(2, 2), **window)

    call()
    with pytest.raises(ValueError, match="pooled output must have shape"):
        call(dy=np.zeros((2, 5, 3, 7), np.float32))
    with pytest.raises(ValueError, match="argmax must have the shape of dy"):
        call(am=np.zeros((2, 5, 3, 7), np.intc))
    with pytest.raises(ValueError, match="gate must have the shape of dy"):
        call(gate=np.zeros((2, 5, 4, 6), np.float32))
    with pytest.raises(ValueError, match="d_bias must have shape"):
        call(db=np.empty(8, np.float32))
    with pytest.raises(ValueError, match="kernel must have shape"):
        call(dk=np.empty((8, 7), np.float32))
    with pytest.raises(ValueError, match="pooled output must have shape"):
        call(dk=np.empty((9, 6), np.float32))   # dy's filters no longer match


def test_mixed_dtypes_and_strided_arrays_are_rejected():
    """The fused-type signatures take one dtype and C-contiguous arrays; anything else must
    raise rather than read memory the wrong way."""
    x, kernel, y, argmax, window = _arrays()
    with pytest.raises((TypeError, ValueError)):
        _conv_pool.conv_max_pool_forward(x, kernel.astype(np.float64), y, argmax,
                                         pool_size=(2, 2), **window)
    with pytest.raises((TypeError, ValueError)):
        _conv_pool.conv_max_pool_forward(x, kernel, y, argmax.astype(np.int64),
                                         pool_size=(2, 2), **window)
    with pytest.raises((TypeError, ValueError)):
        _conv_pool.conv_max_pool_forward(x[:, ::-1], kernel, y, argmax, pool_size=(2, 2),
                                         **window)


# ---- threads and architectures ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_give_the_same_bits_for_any_thread_count(dtype):
    """The backward sums each image on its own and adds the images in order; the forward
    only splits rows. Neither may depend on the thread count. The batch is large enough
    for both to run in parallel."""
    image, window = case("c3_k3_same")
    x = data((9,) + image, 1, dtype)
    kernel = data((27, 33), 2, dtype)
    big_image, big_window = geometry(1, (30, 30), (3, 3))
    big_x = data((8,) + big_image, 3, dtype)
    big_kernel = data((9, 32), 4, dtype)
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2, 3):
            minidl.set_num_threads(threads)
            y, argmax = fused_forward(x, kernel, window, (2, 2))
            dy, gate = data(y.shape, 5, dtype), gate_of(y, 6)
            grads = fused_backward(x, dy, argmax, gate, window, (2, 2), 27)
            big = fused_forward(big_x, big_kernel, big_window, (2, 2))
            results.append((y, argmax, *grads, *big))
    finally:
        minidl.set_num_threads(before)
    for other in results[1:]:
        for a, b, what in zip(results[0], other, ("y", "argmax", "d_kernel", "d_bias",
                                                   "big y", "big argmax")):
            np.testing.assert_array_equal(a, b, err_msg=what)


@pytest.fixture
def restore_arch():
    previous = _backend.get_arch()
    try:
        yield
    finally:
        _backend.set_arch(previous)


ARCH_CASES = [("c1_k3", (2, 2), np.float32), ("c3_k3_same", (3, 3), np.float32),
              ("c2_k5", (2, 2), np.float64), ("c1_k3_s21", (1, 2), np.float64)]


def _arch_case(name, dtype):
    image, window = case(name)
    k = window["kernel_size"][0] * window["kernel_size"][1] * image[-1]
    return data((2,) + image, 1, dtype), data((k, 33), 2, dtype), window


@pytest.mark.parametrize("arch", _backend.supported_archs())
def test_forward_bits_hold_under_every_kernel_architecture(restore_arch, arch):
    """The same-bits promise is against whatever GEMM the model runs, and MINIDL_ARCH (or
    set_arch) selects that GEMM: under each supported architecture the fused forward must
    still equal im2col + GEMM + pooling, or a model's loss would change with the path (the
    generic GEMM does not fuse multiply-adds, the others do; conv_pool.c's version comes
    from the same kernel table as the GEMM)."""
    _backend.set_arch(arch)
    for name, pool, dtype in ARCH_CASES:
        x, kernel, window = _arch_case(name, dtype)
        want_y, want_argmax, _, _ = unfused_forward(x, kernel, window, pool)
        y, argmax = fused_forward(x, kernel, window, pool)
        np.testing.assert_array_equal(y, want_y, err_msg=f"{arch}: {name}, {pool}")
        np.testing.assert_array_equal(argmax, want_argmax, err_msg=f"{arch}: {name}, {pool}")


@pytest.mark.skipif(_backend.supported_archs() == ("generic",),
                    reason="this CPU has no FMA architecture")
def test_the_architectures_give_different_forward_bits_on_those_cases(restore_arch):
    """What gives the test above its teeth: on each of its cases the generic GEMM (multiply,
    then add) and the FMA ones round differently, so a conv_pool.c version that did not
    follow the selected architecture would not match the GEMM under one of them."""
    for name, pool, dtype in ARCH_CASES:
        x, kernel, window = _arch_case(name, dtype)
        pooled = {}
        for arch in _backend.supported_archs():
            _backend.set_arch(arch)
            pooled[arch] = unfused_forward(x, kernel, window, pool)[0]
        for arch in _backend.supported_archs()[1:]:
            assert not np.array_equal(pooled[arch], pooled["generic"]), (name, arch)


@pytest.mark.parametrize("arch", _backend.supported_archs())
def test_backward_matches_the_float64_reference_under_every_kernel_architecture(restore_arch,
                                                                                arch):
    """Each architecture's version of the backward (its own FMA or not) within rounding of
    the float64 reference."""
    _backend.set_arch(arch)
    for name, pool, dtype in ARCH_CASES:
        x, kernel, window = _arch_case(name, dtype)
        y, argmax, cols, z = unfused_forward(x, kernel, window, pool)
        dy, gate = data(y.shape, 8, dtype), gate_of(y, 9)
        want_k, want_b, (scale_k, scale_b) = reference_backward(cols, z, dy, argmax, gate,
                                                                pool)
        d_kernel, d_bias = fused_backward(x, dy, argmax, gate, window, pool, kernel.shape[0])
        assert_sums_close(d_kernel, want_k, scale_k, dtype)
        assert_sums_close(d_bias, want_b, scale_b, dtype)


# ---- the training loop's direct path ----

def _cnn(layers, optimizer="sgd", seed=1):
    set_random_seed(seed)
    model = Sequential(layers())
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def _fused_pools(model):
    """The training plan's ReLU + max pooling steps (rewrites.ReluMaxPoolStep), keyed by the
    index of their pooling layer in ``model.layers``."""
    plan = model._plan(model._compiled.losses)
    index = {id(layer): i for i, layer in enumerate(model.layers)}
    return {index[id(step.pool.layer)]: step for step in plan.steps
            if isinstance(step, ReluMaxPoolStep)}


def _may_pool_directly(model):
    """The poolings fused with a layer whose input needs no gradient: the pairs allowed to
    pool directly (the layer then does when it can: ``can_pool_directly``)."""
    return {i for i, step in _fused_pools(model).items() if not step.need_input_grads[0]}


def _direct_layer(model, pool_index):
    """The layer that the pooling at ``pool_index`` pools directly in training (with
    conv_pool.c, never forming the un-pooled output), or None."""
    step = _fused_pools(model).get(pool_index)
    return step.first.layer if step is not None and step.direct else None


def _old_path(model):
    """Make ``model`` train on the old path: its ReLU + max pooling steps pool the layer's
    output (conv GEMM, then the pooling), never directly, in every plan it builds."""
    build = model._plan

    def plan(losses=None):
        built = build(losses)
        for step in built.steps:
            if isinstance(step, ReluMaxPoolStep):
                step.direct = False
        return built

    model._plan = plan


def _pair(layers, optimizer="sgd"):
    """Two identically seeded models: the first may pool directly, the second runs the
    old path (conv GEMM, then the pooling of its output)."""
    direct, plain = _cnn(layers, optimizer), _cnn(layers, optimizer)
    _old_path(plain)
    return direct, plain


def _layer_grads(model):
    """Each of ``model.layers``' gradient arrays of the last training step (aligned with
    its ``params``; none for a layer the optimizer does not update)."""
    grads = dict(zip(map(id, model.trainable_weights), model._gradients()))
    return [[grads[id(p)] for p in layer.params if id(p) in grads] for layer in model.layers]


def _batch(shape, n=8, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape), rng.integers(0, classes, n)


def _assert_one_step_agrees(direct, plain, x, y, fused_conv, tol):
    """One train_on_batch of each: the loss bit-identical (the forward is); gradients and
    updated weights of the directly pooled convolutions close, the others' bit-identical."""
    before = [w.copy() for w in direct.get_weights()]
    assert direct.train_on_batch(x, y) == plain.train_on_batch(x, y)
    layer_grads = zip(_layer_grads(direct), _layer_grads(plain))
    for index, (mine, theirs, (my_grads, their_grads)) in enumerate(
            zip(direct.layers, plain.layers, layer_grads)):
        for what, a, b in itertools.chain(
                zip(("d_kernel", "d_bias"), my_grads, their_grads),
                zip(("kernel", "bias"), mine.get_weights(), theirs.get_weights())):
            where = f"layer {index} ({mine.name}) {what}"
            if index in fused_conv:
                np.testing.assert_allclose(a, b, rtol=0, atol=tol * np.abs(b).max(),
                                           err_msg=where)
            else:
                np.testing.assert_array_equal(a, b, err_msg=where)
    assert any(not np.array_equal(w, v) for w, v in zip(before, direct.get_weights()))


def _two_blocks(first, pool=None, shape=(28, 28, 1), dtype="float32", second=8):
    d = dict(dtype=dtype)
    return lambda: [Input(shape), first(d), pool(d) if pool else MaxPooling2D(**d),
                    Conv2D(second, 3, activation="relu", **d), MaxPooling2D(**d),
                    Flatten(**d), Dense(10, activation="softmax", **d)]


MODELS = {
    # id: (layers, input shape, optimizer)
    "conv8_sgd": (lambda dt: _two_blocks(lambda d: Conv2D(8, 3, activation="relu", **d),
                                         dtype=dt), (28, 28, 1), "sgd"),
    "conv32_adam": (lambda dt: _two_blocks(lambda d: Conv2D(32, 3, activation="relu", **d),
                                           dtype=dt), (28, 28, 1), "adam"),
    "no_bias": (lambda dt: _two_blocks(
        lambda d: Conv2D(8, 3, activation="relu", use_bias=False, **d), dtype=dt),
        (28, 28, 1), "sgd"),
    "same_padding": (lambda dt: _two_blocks(
        lambda d: Conv2D(8, 3, padding="same", activation="relu", **d), shape=(27, 27, 1),
        dtype=dt), (27, 27, 1), "sgd"),
    "rgb_pool3": (lambda dt: _two_blocks(
        lambda d: Conv2D(16, 3, activation="relu", **d),
        lambda d: MaxPooling2D(3, **d), shape=(20, 20, 3), dtype=dt), (20, 20, 3), "sgd"),
    "strided_5x5_pool1x2": (lambda dt: _two_blocks(
        lambda d: Conv2D(17, 5, strides=(2, 1), activation="relu", **d),
        lambda d: MaxPooling2D((1, 2), **d), shape=(25, 23, 1), dtype=dt), (25, 23, 1), "sgd"),
    "l2_regularized": (lambda dt: _two_blocks(
        lambda d: Conv2D(8, 3, activation="relu", kernel_regularizer="l2", **d), dtype=dt),
        (28, 28, 1), "sgd"),
    "conv1d": (lambda dt: lambda: [
        Input((41, 1)), Conv1D(16, 5, activation="relu", dtype=dt),
        MaxPooling1D(3, dtype=dt), Conv1D(8, 3, activation="relu", dtype=dt),
        MaxPooling1D(dtype=dt), Flatten(dtype=dt), Dense(10, activation="softmax", dtype=dt)],
        (41, 1), "sgd"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_direct_pooling_in_training_agrees_with_the_old_path(name, dtype):
    """A model's first Conv + ReLU + MaxPooling pools directly (conv_pool.c) and must
    compute the same step as the conv GEMM followed by the pooling: the same loss bits,
    the same bits for every later layer's gradient, and the first layer's gradients and
    updated weights equal to rounding. Covers 1-D (the band path), no bias, 'same'
    padding, three channels with a 3x3 pool, strides and a (1, 2) pool, a regularizer."""
    layers, shape, optimizer = MODELS[name]
    direct, plain = _pair(layers(dtype), optimizer)
    assert _may_pool_directly(direct) == {1}   # the second block's input gradient is needed
    x, y = _batch(shape)
    _assert_one_step_agrees(direct, plain, x, y, fused_conv={0},
                            tol=1e-12 if dtype == "float64" else 1e-5)
    assert _direct_layer(direct, 1) is direct.layers[0]
    assert _direct_layer(direct, 3) is None
    assert _direct_layer(plain, 1) is None


@pytest.mark.parametrize("pool", [
    lambda d: MaxPooling2D(3, 2, **d),               # overlapping windows
    lambda d: MaxPooling2D(2, padding="same", **d),  # windows past the edge
], ids=["strides_not_pool", "same"])
def test_pools_that_do_not_tile_take_the_old_path(pool):
    """Only 'valid' pools with strides equal to their size tile the output; others must
    not pool directly (and the step is then bit-identical to the old path)."""
    direct, plain = _pair(_two_blocks(lambda d: Conv2D(8, 3, activation="relu", **d), pool,
                                      shape=(15, 15, 1)))
    x, y = _batch((15, 15, 1))
    _assert_one_step_agrees(direct, plain, x, y, fused_conv=(), tol=0)
    assert _direct_layer(direct, 1) is None


def test_a_first_convolution_with_a_large_patch_takes_the_old_path():
    """3x3 over 16 channels is 144 values per patch, past _DIRECT_MAX_PATCH (128): the GEMM
    is as fast or faster there, so the pair is allowed to pool directly but does not."""
    from minidl.layers import convolutional
    assert 3 * 3 * 16 > convolutional._DIRECT_MAX_PATCH
    layers = lambda: [Input((12, 12, 16)), Conv2D(4, 3, activation="relu"),   # noqa: E731
                      MaxPooling2D(), Flatten(), Dense(10, activation="softmax")]
    direct, plain = _pair(layers)
    assert _may_pool_directly(direct) == {1}
    x, y = _batch((12, 12, 16))
    _assert_one_step_agrees(direct, plain, x, y, fused_conv=(), tol=0)
    assert _direct_layer(direct, 1) is None


def test_a_frozen_first_convolution_still_trains_through_the_direct_path():
    """With the first convolution frozen, the first trainable layer is the second one: both
    pairs may pool directly (neither input gradient is needed; the second conv's patch is
    3x3x2 = 18 values). Training must run, leave the frozen kernel untouched, and give the
    old path's loss, the later layers' gradient bits and the second conv's gradients."""
    layers = lambda: [Input((28, 28, 1)),   # noqa: E731
                      Conv2D(2, 3, activation="relu", trainable=False), MaxPooling2D(),
                      Conv2D(8, 3, activation="relu"), MaxPooling2D(), Flatten(),
                      Dense(10, activation="softmax")]
    direct, plain = _pair(layers)
    assert _may_pool_directly(direct) == {1, 3}
    frozen = [w.copy() for w in direct.layers[0].get_weights()]
    second = direct.layers[2].get_weights()[0].copy()
    x, y = _batch((28, 28, 1))
    _assert_one_step_agrees(direct, plain, x, y, fused_conv={2}, tol=1e-5)
    assert _direct_layer(direct, 1) is direct.layers[0]
    assert _direct_layer(direct, 3) is direct.layers[2]
    for step in range(3):
        x, y = _batch((28, 28, 1), seed=step + 1)
        assert np.isfinite(direct.train_on_batch(x, y))
    for a, b in zip(frozen, direct.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(second, direct.layers[2].get_weights()[0])   # it did train


def test_training_on_the_direct_path_gives_the_same_bits_for_any_thread_count():
    """A few steps with 1, 2 and 3 threads: weights equal bit for bit (the backward adds
    the images in order whatever the thread count). The batch is large enough for the
    fused forward and backward to run in parallel."""
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2, 3):
            minidl.set_num_threads(threads)
            model = _cnn(_two_blocks(lambda d: Conv2D(8, 3, activation="relu", **d)))
            for step in range(3):
                model.train_on_batch(*_batch((28, 28, 1), n=16, seed=step))
            assert _direct_layer(model, 1) is model.layers[0]
            results.append(model.get_weights())
    finally:
        minidl.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
