"""3-D pooling layers (MaxPooling3D, AveragePooling3D, GlobalMaxPooling3D,
GlobalAveragePooling3D): a numpy reference, PyTorch where installed, float64 finite
differences, ties and NaN, thread-count determinism, Keras 3.15.1's output shapes, errors,
config and use in models.

Keras semantics: ``strides=None`` means ``pool_size``; 'same' pads ``max((out - 1) * s + k -
n, 0)`` positions, the smaller half before the input; max pooling never picks the padding,
average pooling divides by the number of window positions inside the input. The max
gradient goes to the first maximum in the window's (depth, row, column) order; a NaN wins.
"""
import itertools
import math
import os

import numpy as np
import pytest

import minidl
from minidl._core import _pooling3d
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (Activation, AveragePooling3D, AvgPool3D, CallContext, Dense, Flatten,
                           GlobalAveragePooling3D, GlobalAvgPool3D, GlobalMaxPool3D,
                           GlobalMaxPooling3D, Input, MaxPool3D, MaxPooling3D, ReLU)
from minidl.layers import get as get_layer
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run(layer, x, dy):
    inference = layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True).copy()
    return inference, y, ctx.backward(dy).copy()


def keras_axis(n, k, s, padding):
    """(output length, pad before, pad after) along one axis, as Keras documents it."""
    if padding == "valid":
        return (n - k) // s + 1, 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2


def pool3d_reference(kind, x, pool, strides, padding, dy):
    """(y, dx) of a Keras 3-D pooling, by loops over the windows."""
    n, c = x.shape[0], x.shape[-1]
    axes = [keras_axis(size, k, s, padding) for size, k, s in zip(x.shape[1:4], pool, strides)]
    out = tuple(a[0] for a in axes)
    y = np.zeros((n,) + out + (c,))
    dx = np.zeros_like(x, dtype=np.float64)
    for o in itertools.product(*(range(length) for length in out)):
        ranges = []
        for (_, before, _), k, s, size, oi in zip(axes, pool, strides, x.shape[1:4], o):
            start = oi * s - before
            ranges.append(range(max(start, 0), min(start + k, size)))
        positions = list(itertools.product(*ranges))
        for i in range(n):
            for ch in range(c):
                values = [x[(i,) + p + (ch,)] for p in positions]
                if kind == "avg":
                    y[(i,) + o + (ch,)] = sum(values) / len(values)
                    for p in positions:
                        dx[(i,) + p + (ch,)] += dy[(i,) + o + (ch,)] / len(values)
                    continue
                best = 0   # first maximum wins; a NaN wins over any number
                for j, v in enumerate(values):
                    if (v > values[best]) or (math.isnan(v) and not math.isnan(values[best])):
                        best = j
                y[(i,) + o + (ch,)] = values[best]
                dx[(i,) + positions[best] + (ch,)] += dy[(i,) + o + (ch,)]
    return y, dx


CASES = [
    ((2, 2, 2), None, "valid", (4, 5, 6)),
    ((3, 3, 3), (2, 2, 2), "same", (5, 6, 7)),
    ((1, 2, 3), (2, 1, 2), "valid", (5, 4, 7)),
    ((2, 3, 2), (1, 1, 1), "same", (3, 4, 3)),
    ((3, 1, 2), None, "same", (7, 3, 5)),
    ((2, 2, 2), (3, 3, 3), "valid", (7, 5, 6)),
]


def _layer(kind, pool, strides, padding, dtype):
    cls = MaxPooling3D if kind == "max" else AveragePooling3D
    return cls(pool, strides=strides, padding=padding, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, padding, sample", CASES)
def test_pooling3d_matches_reference(pool, strides, padding, sample, kind, dtype):
    layer = _layer(kind, pool, strides, padding, dtype)
    x = data((2,) + sample + (3,), 1, dtype)
    out_sample = layer.compute_output_shape(sample + (3,))
    dy = data((2,) + out_sample, 2, dtype)
    want_y, want_dx = pool3d_reference(kind, x.astype(np.float64), pool, strides or pool,
                                       padding, dy.astype(np.float64))
    inference, y, dx = run(layer, x, dy)
    assert y.shape == want_y.shape and y.dtype == dtype
    np.testing.assert_array_equal(inference, y)
    tol = 1e-6 if dtype == "float32" else 1e-14
    if kind == "max":   # a copy of a value, and sums of gradients over overlapping windows
        np.testing.assert_array_equal(y, want_y.astype(dtype))
    else:
        np.testing.assert_allclose(y, want_y, rtol=0, atol=tol * np.abs(want_y).max())
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol * np.abs(want_dx).max())


def test_pooling3d_matches_reference_on_random_geometries():
    rng = np.random.default_rng(18)
    for _ in range(12):
        pool = tuple(int(v) for v in rng.integers(1, 4, 3))
        strides = tuple(int(v) for v in rng.integers(1, 4, 3))
        padding = str(rng.choice(["valid", "same"]))
        sample = tuple(int(k + v) for k, v in zip(pool, rng.integers(0, 4, 3)))
        x = data((1,) + sample + (2,), int(rng.integers(1000)))
        for kind in ("max", "avg"):
            layer = _layer(kind, pool, strides, padding, "float64")
            dy = data((1,) + layer.compute_output_shape(sample + (2,)), 19)
            want_y, want_dx = pool3d_reference(kind, x, pool, strides, padding, dy)
            _, y, dx = run(layer, x, dy)
            np.testing.assert_allclose(y, want_y, rtol=1e-14, atol=1e-14)
            np.testing.assert_allclose(dx, want_dx, rtol=1e-14, atol=1e-14)


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def torch_pool3d(kind, x, dy, pool, strides, padding):
    """(y, dx) of a Keras 3-D pooling by PyTorch autograd: F.pad by Keras' rule (-inf for
    max), MaxPool3d; for average, window sums over the zero-padded input divided by the
    count of real positions (AvgPool3d with count_include_pad=False, where the pads are
    symmetric)."""
    torch, F = _torch()
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)), requires_grad=True)
    axes = [keras_axis(n, k, s, padding) for n, k, s in zip(x.shape[1:4], pool, strides)]
    pads = tuple(v for axis in reversed(axes) for v in axis[1:])   # (w, h, d) order
    symmetric = all(before == after for _, before, after in axes)
    if kind == "max":
        y = F.max_pool3d(F.pad(xt, pads, value=-math.inf), pool, strides)
    elif symmetric:
        y = F.avg_pool3d(xt, pool, strides, padding=tuple(a[1] for a in axes),
                         count_include_pad=False)
    else:
        sums = F.avg_pool3d(F.pad(xt, pads), pool, strides, divisor_override=1)
        ones = torch.ones((1, 1) + x.shape[1:4], dtype=xt.dtype)
        y = sums / F.avg_pool3d(F.pad(ones, pads), pool, strides, divisor_override=1)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 4, 1, 2, 3))))
    return (y.detach().numpy().transpose(0, 2, 3, 4, 1),
            xt.grad.numpy().transpose(0, 2, 3, 4, 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("pool, strides, padding, sample", CASES + [
    ((3, 3, 3), (1, 1, 1), "same", (4, 5, 6)),    # symmetric 'same' pads
    ((2, 2, 2), (2, 2, 2), "same", (5, 6, 7))])
def test_pooling3d_matches_torch(pool, strides, padding, sample, kind, dtype):
    layer = _layer(kind, pool, strides, padding, dtype)
    x = data((2,) + sample + (3,), 3, dtype)
    dy = data((2,) + layer.compute_output_shape(sample + (3,)), 4, dtype)
    want_y, want_dx = torch_pool3d(kind, x, dy, pool, strides or pool, padding)
    _, y, dx = run(layer, x, dy)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(y, want_y, rtol=0, atol=tol * np.abs(want_y).max())
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol * np.abs(want_dx).max())


@pytest.mark.parametrize("layer_cls, keepdims", [
    (GlobalMaxPooling3D, False), (GlobalMaxPooling3D, True),
    (GlobalAveragePooling3D, False), (GlobalAveragePooling3D, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_global_pooling3d_matches_numpy(layer_cls, keepdims, dtype):
    layer = layer_cls(keepdims=keepdims, dtype=dtype)
    x = data((3, 2, 3, 4, 5), 5, dtype)
    reduce = np.max if layer_cls is GlobalMaxPooling3D else np.mean
    want = reduce(x.astype(np.float64), axis=(1, 2, 3), keepdims=keepdims)
    dy = data(want.shape, 6, dtype)
    inference, y, dx = run(layer, x, dy)
    np.testing.assert_allclose(y, want, rtol=1e-6 if dtype == "float32" else 1e-14)
    np.testing.assert_array_equal(inference, y)
    flat_dy = dy.reshape(3, 1, 1, 1, 5)
    if layer_cls is GlobalMaxPooling3D:
        want_dx = np.where(x == want.reshape(3, 1, 1, 1, 5), flat_dy, 0)
    else:
        want_dx = np.broadcast_to(flat_dy / 24, x.shape)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_global_pooling3d_matches_torch():
    torch, _ = _torch()
    x = data((2, 3, 4, 2, 3), 7)
    for layer, reduce in ((GlobalMaxPooling3D(dtype="float64"), torch.amax),
                          (GlobalAveragePooling3D(keepdims=True, dtype="float64"),
                           torch.mean)):
        xt = torch.tensor(x, requires_grad=True)
        yt = reduce(xt, dim=(1, 2, 3), keepdim=layer.keepdims)
        dy = data(tuple(yt.shape), 8)
        yt.backward(torch.tensor(dy))
        _, y, dx = run(layer, x, dy)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)


# ---- ties, NaN, gradients ----

def test_max_pooling3d_first_maximum_wins_and_nan_wins():
    x = np.zeros((1, 2, 2, 2, 2))
    x[0, 1, 0, 1, 0] = 5.0       # channel 0: one maximum, not first
    x[0, 0, 1, 0, 1] = np.nan    # channel 1: a NaN among zeros (ties)
    layer = MaxPooling3D(dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    assert y[0, 0, 0, 0, 0] == 5.0 and np.isnan(y[0, 0, 0, 0, 1])
    dx = ctx.backward(np.array([[[[[1.0, 2.0]]]]]))
    want = np.zeros_like(x)
    want[0, 1, 0, 1, 0] = 1.0
    want[0, 0, 1, 0, 1] = 2.0
    np.testing.assert_array_equal(dx, want)
    # All ties: the first position in (depth, row, column) order takes the gradient.
    dx = CallContext(layer)
    dx.forward(np.ones((1, 2, 2, 2, 1)), training=True)
    grad = dx.backward(np.ones((1, 1, 1, 1, 1)))
    assert grad[0, 0, 0, 0, 0] == 1.0 and grad.sum() == 1.0


@pytest.mark.parametrize("make, sample", [
    (lambda: MaxPooling3D(2, dtype="float64"), (4, 3, 4, 2)),
    (lambda: MaxPooling3D((2, 3, 2), strides=(1, 2, 1), padding="same", dtype="float64"),
     (3, 4, 3, 2)),
    (lambda: AveragePooling3D((3, 2, 2), strides=2, padding="same", dtype="float64"),
     (4, 3, 5, 2)),
    (lambda: AveragePooling3D(2, strides=1, dtype="float64"), (3, 3, 4, 2)),
    (lambda: GlobalMaxPooling3D(keepdims=True, dtype="float64"), (2, 3, 2, 2)),
    (lambda: GlobalAveragePooling3D(dtype="float64"), (2, 3, 2, 2)),
], ids=["max", "max_same", "avg_same", "avg_overlap", "gmp", "gap"])
def test_pooling3d_gradients(make, sample):
    layer = make()
    check_layer_gradients(layer, data((2,) + sample, 9))
    assert layer.params == []


def test_gradient_tape_gives_the_backward_pass():
    for layer in (MaxPooling3D(2, strides=1, dtype="float64"),
                  AveragePooling3D(2, padding="same", dtype="float64"),
                  GlobalMaxPooling3D(dtype="float64")):
        x = data((2, 3, 3, 4, 2), 15)
        weights = data((2,) + layer.compute_output_shape(x.shape[1:]), 16)
        variable = minidl.Variable(x)
        with minidl.GradientTape() as tape:
            loss = minidl.ops.sum(layer(variable) * weights)
        _, _, dx = run(layer, x, weights)
        np.testing.assert_array_equal(np.asarray(tape.gradient(loss, variable)), dx)


@pytest.mark.parametrize("layer", [MaxPooling3D(), AveragePooling3D(), GlobalMaxPooling3D(),
                                   GlobalAveragePooling3D(keepdims=True)],
                         ids=lambda layer: type(layer).__name__)
def test_an_empty_batch(layer):
    ctx = CallContext(layer)
    y = ctx.forward(np.zeros((0, 2, 4, 2, 3), np.float32), training=True)
    assert y.shape == (0,) + layer.compute_output_shape((2, 4, 2, 3))
    assert ctx.backward(np.zeros(y.shape, np.float32)).shape == (0, 2, 4, 2, 3)


def test_pooling3d_takes_any_spatial_size():
    model = Sequential([Input((None, None, None, 2)), MaxPooling3D(2, padding="same"),
                        AveragePooling3D(2, strides=1, padding="same"),
                        GlobalMaxPooling3D()])
    assert model.output_shape == (None, 2)
    for shape in ((1, 3, 4, 5, 2), (2, 2, 2, 2, 2)):
        x = data(shape, 10, np.float32)
        assert model.predict(x, verbose=0).shape == (shape[0], 2)


# ---- threads ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [
    lambda d: MaxPooling3D(3, strides=2, padding="same", dtype=d),
    lambda d: AveragePooling3D(3, strides=1, padding="same", dtype=d),
    lambda d: GlobalAveragePooling3D(dtype=d),
], ids=["max", "avg", "gap"])
def test_same_bits_for_any_thread_count(make, dtype):
    x = data((6, 8, 10, 12, 8), 11, dtype)
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            layer = make(dtype)
            dy = data((6,) + layer.compute_output_shape(x.shape[1:]), 12, dtype)
            results.append(run(layer, x, dy))
    finally:
        minidl.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- Keras' output shapes (from Keras 3.15.1) ----

KERAS_SHAPES = [
    ("MaxPooling3D", {}, (4, 5, 6, 2), (2, 2, 3, 2)),
    ("MaxPooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}, (5, 6, 7, 2),
     (3, 3, 4, 2)),
    ("MaxPooling3D", {"pool_size": (1, 2, 3), "strides": (2, 1, 2)}, (5, 6, 7, 1),
     (3, 5, 3, 1)),
    ("AveragePooling3D", {"pool_size": 2}, (4, 5, 6, 2), (2, 2, 3, 2)),
    ("AveragePooling3D", {"pool_size": 2, "strides": 1, "padding": "same"}, (3, 4, 5, 2),
     (3, 4, 5, 2)),
    ("AveragePooling3D", {"pool_size": (3, 1, 2), "padding": "same"}, (7, 3, 5, 3),
     (3, 3, 3, 3)),
    ("MaxPooling3D", {"pool_size": 2}, (None, 6, None, 3), (None, 3, None, 3)),
    ("GlobalMaxPooling3D", {}, (3, 4, 5, 2), (2,)),
    ("GlobalAveragePooling3D", {"keepdims": True}, (3, 4, 5, 2), (1, 1, 1, 2)),
    ("GlobalMaxPooling3D", {"keepdims": True}, (None, None, None, 2), (1, 1, 1, 2)),
]


@pytest.mark.parametrize("name, kwargs, sample, want", KERAS_SHAPES)
def test_output_shapes_follow_keras(name, kwargs, sample, want):
    layer = getattr(minidl.layers, name)(**kwargs)
    assert layer.compute_output_shape(sample) == want
    if None not in sample:
        assert layer(np.zeros((2,) + sample, np.float32)).shape == (2,) + want


def test_keras_table_is_keras_results():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for name, kwargs, sample, want in KERAS_SHAPES:
        layer = getattr(keras.layers, name)(**kwargs)
        assert tuple(layer.compute_output_shape((None,) + sample))[1:] == want, name
    # Keras refuses a 'valid' window larger than its input, as minidl does.
    with pytest.raises(ValueError):
        keras.layers.MaxPooling3D(3).compute_output_shape((None, 2, 4, 4, 1))
    # And the values: Keras' own layers on the same data. (Keras' torch backend pads an
    # average pooling's asymmetric 'same' padding by replicating the edge and counts it,
    # unlike its TensorFlow and JAX backends; minidl counts only the input's positions, as
    # they do and as its 2-D pooling does, so only symmetric pads are compared here.)
    x = data((2, 5, 6, 7, 3), 17, np.float32)
    for name, kwargs in [
            ("MaxPooling3D", {"pool_size": 3, "strides": 2, "padding": "same"}),
            ("MaxPooling3D", {"pool_size": (1, 2, 3), "strides": (2, 1, 2)}),
            ("AveragePooling3D", {"pool_size": 2}),
            ("AveragePooling3D", {"pool_size": (3, 3, 1), "strides": 1, "padding": "same"}),
            ("GlobalMaxPooling3D", {"keepdims": True}), ("GlobalAveragePooling3D", {})]:
        want = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
        got = np.asarray(getattr(minidl.layers, name)(**kwargs)(x))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max(),
                                   err_msg=name)


# ---- arguments, errors, config ----

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: MaxPooling3D((2, 2)), ValueError, "pool_size"),
    (lambda: MaxPooling3D(0), ValueError, "pool_size"),
    (lambda: MaxPooling3D("2"), ValueError, "pool_size"),
    (lambda: AveragePooling3D(2, strides=(1, 0, 1)), ValueError, "strides"),
    (lambda: AveragePooling3D(2, strides=1.5), TypeError, "strides"),
    (lambda: MaxPooling3D(2, padding="full"), ValueError, "padding"),
    (lambda: AveragePooling3D(2, data_format="NHWC"), ValueError, "data_format"),
    (lambda: GlobalMaxPooling3D(keepdims=1), TypeError, "keepdims"),
    (lambda: GlobalAveragePooling3D(data_format="nchw"), ValueError, "data_format"),
])
def test_bad_arguments_are_refused(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("layer, sample", [
    (MaxPooling3D(), (4, 4, 2)), (AveragePooling3D(), (4, 4, 4, 4, 2)),
    (GlobalMaxPooling3D(), (4, 4, 2)), (GlobalAveragePooling3D(), (4, 2))])
def test_inputs_of_the_wrong_rank_are_refused(layer, sample):
    with pytest.raises(ValueError, match="expects 5-D input"):
        layer(np.zeros((1,) + sample, np.float32))


def test_valid_window_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="larger than its input"):
        MaxPooling3D(3)(np.zeros((1, 2, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="larger than its input"):
        Sequential([Input((4, 2, 4, 1)), AveragePooling3D((1, 3, 1))])


def test_kernels_refuse_bad_arrays():
    x = np.zeros((2, 4, 4, 4, 2))
    y = np.zeros((2, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="argmax"):
        _pooling3d.max_pool3d_forward(x, y, np.zeros((2, 2, 2, 2, 1), np.intc),
                                      (2, 2, 2), (2, 2, 2), (0, 0, 0))
    with pytest.raises(TypeError, match="argmax"):
        _pooling3d.max_pool3d_forward(x, y, np.zeros((2, 2, 2, 2, 2)), (2, 2, 2), (2, 2, 2),
                                      (0, 0, 0))
    with pytest.raises(ValueError, match="3 ints"):
        _pooling3d.avg_pool3d_forward(x, y, (2, 2), (2, 2, 2), (0, 0, 0))
    with pytest.raises(ValueError, match="invalid geometry"):
        _pooling3d.avg_pool3d_forward(x, y, (2, 2, 2), (0, 2, 2), (0, 0, 0))
    with pytest.raises(ValueError, match="batch size and channels"):
        _pooling3d.avg_pool3d_backward(np.zeros((3, 2, 2, 2, 2)), x, (2, 2, 2), (2, 2, 2),
                                       (0, 0, 0))
    with pytest.raises(TypeError, match="y"):
        _pooling3d.avg_pool3d_forward(x, y.astype(np.float32), (2, 2, 2), (2, 2, 2),
                                      (0, 0, 0))


def test_defaults_aliases_and_config_round_trip():
    assert MaxPool3D is MaxPooling3D and AvgPool3D is AveragePooling3D
    assert GlobalMaxPool3D is GlobalMaxPooling3D and GlobalAvgPool3D is GlobalAveragePooling3D
    for alias, cls in (("MaxPool3D", MaxPooling3D), ("AvgPool3D", AveragePooling3D),
                       ("GlobalMaxPool3D", GlobalMaxPooling3D),
                       ("GlobalAvgPool3D", GlobalAveragePooling3D)):
        assert type(get_layer({"class_name": alias, "config": {}})) is cls
    config = MaxPooling3D().get_config()
    assert {k: config[k] for k in ("pool_size", "strides", "padding", "data_format")} == {
        "pool_size": [2, 2, 2], "strides": [2, 2, 2], "padding": "valid",
        "data_format": "channels_last"}
    layer = AveragePooling3D((1, 2, 3), strides=(2, 1, 1), padding="SAME")
    clone = get_layer({"class_name": "AveragePooling3D", "config": layer.get_config()})
    assert clone.get_config() == layer.get_config() and clone.padding == "same"
    config = GlobalAveragePooling3D(keepdims=True).get_config()
    assert config["keepdims"] is True and config["data_format"] == "channels_last"


def test_model_with_3d_pooling_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(13)
    volumes = rng.standard_normal((16, 4, 6, 5, 2)).astype(np.float32)
    labels = rng.integers(0, 2, 16)
    set_random_seed(5)
    model = Sequential([Input((4, 6, 5, 2)), MaxPooling3D(2, strides=1, padding="same"),
                        AveragePooling3D((2, 3, 2), padding="same"),
                        GlobalMaxPooling3D(keepdims=True), Flatten(),
                        Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(volumes, labels, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "pool3d.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(volumes, verbose=0),
                                  model.predict(volumes, verbose=0))
    # The global average, after a Dense over the channels.
    other = Sequential([Input((4, 6, 5, 2)), Dense(3, activation="relu"),
                        MaxPooling3D((1, 2, 2)), GlobalAveragePooling3D(),
                        Dense(2, activation="softmax")])
    other.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert np.isfinite(other.fit(volumes, labels, epochs=1, verbose=0).history["loss"][0])
    path = tmp_path / "gap3d.minidl"
    other.save(path)
    np.testing.assert_array_equal(load_model(path).predict(volumes, verbose=0),
                                  other.predict(volumes, verbose=0))


def test_relu_then_max_pooling3d_is_fused_and_gives_the_same_bits(monkeypatch):
    """A ReLU layer and the 3-D max pooling after it train as one step
    (rewrites.relu_then_max_pool, through backward_through_relu): the same loss and
    weights, bit for bit, as the two layers run one by one."""
    from minidl.models import rewrites
    from minidl.models.rewrites import ReluMaxPoolStep
    rng = np.random.default_rng(14)
    x = rng.standard_normal((8, 4, 5, 4, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)

    def model():
        set_random_seed(6)
        m = Sequential([Input((4, 5, 4, 2)), Dense(3), Activation("relu"),
                        MaxPooling3D(2, strides=1, padding="same"), Dense(4), ReLU(),
                        GlobalMaxPooling3D(), Dense(3, activation="softmax")])
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return m

    def fused_steps(m):
        return sum(isinstance(step, ReluMaxPoolStep)
                   for step in m._plan(m._compiled.losses).steps)

    fused = model()
    assert fused_steps(fused) == 2
    with monkeypatch.context() as patch:
        patch.setattr(rewrites, "RULES", [rule for rule in rewrites.RULES
                                          if rule is not rewrites.relu_then_max_pool])
        plain = model()
        assert fused_steps(plain) == 0
    assert fused.train_on_batch(x, y) == plain.train_on_batch(x, y)
    for mine, theirs in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
