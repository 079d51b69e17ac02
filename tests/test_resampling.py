"""Zero padding, cropping, upsampling and Permute: numpy references (np.pad, slicing,
np.repeat, np.transpose), PyTorch where installed (F.pad, F.interpolate), float64 finite
differences, thread-count determinism, Keras 3.15.1's output shapes and refusals, and use
in models (fit, save, load).
"""
import os

import numpy as np
import pytest

import minidl
from minidl._core import _resample
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import (CallContext, Conv2D, Cropping1D, Cropping2D, Cropping3D, Dense,
                           Flatten, Input, Permute, UpSampling1D, UpSampling2D, UpSampling3D,
                           ZeroPadding1D, ZeroPadding2D, ZeroPadding3D)
from minidl.layers import get as get_layer
from minidl.models import Model, Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run(layer, x, dy):
    """(inference output, training output, input gradient) of ``layer`` at ``x``."""
    inference = layer(x)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True).copy()
    return inference, y, ctx.backward(dy).copy()


# ---- padding and cropping: numpy reference ----

def margins_of(layer):
    """The layer's margins as one (before, after) pair per spatial axis."""
    value = getattr(layer, "padding", None) or layer.cropping
    return (tuple(value),) if isinstance(value[0], int) else tuple(map(tuple, value))


def pad_reference(x, pairs):
    return np.pad(x, ((0, 0),) + tuple(pairs) + ((0, 0),))


def crop_reference(x, pairs):
    index = tuple(slice(before, size - after)
                  for size, (before, after) in zip(x.shape[1:-1], pairs))
    return x[(slice(None),) + index]


PAD_CASES = [
    (ZeroPadding1D, {}, (5, 3), ((1, 1),)),
    (ZeroPadding1D, {"padding": 2}, (4, 2), ((2, 2),)),
    (ZeroPadding1D, {"padding": (0, 3)}, (4, 2), ((0, 3),)),
    (ZeroPadding2D, {}, (4, 5, 3), ((1, 1), (1, 1))),
    (ZeroPadding2D, {"padding": 2}, (3, 2, 2), ((2, 2), (2, 2))),
    (ZeroPadding2D, {"padding": (1, 2)}, (4, 5, 3), ((1, 1), (2, 2))),
    (ZeroPadding2D, {"padding": ((1, 0), (2, 3))}, (4, 5, 3), ((1, 0), (2, 3))),
    (ZeroPadding2D, {"padding": ((0, 0), (0, 1))}, (3, 3, 1), ((0, 0), (0, 1))),
    (ZeroPadding3D, {}, (2, 3, 4, 2), ((1, 1), (1, 1), (1, 1))),
    (ZeroPadding3D, {"padding": (1, 0, 2)}, (2, 3, 4, 2), ((1, 1), (0, 0), (2, 2))),
    (ZeroPadding3D, {"padding": ((0, 1), (2, 0), (1, 3))}, (2, 3, 4, 1),
     ((0, 1), (2, 0), (1, 3))),
]
CROP_CASES = [
    (Cropping1D, {}, (5, 3), ((1, 1),)),
    (Cropping1D, {"cropping": (0, 3)}, (4, 2), ((0, 3),)),
    (Cropping2D, {}, (4, 5, 3), ((0, 0), (0, 0))),
    (Cropping2D, {"cropping": 1}, (4, 5, 3), ((1, 1), (1, 1))),
    (Cropping2D, {"cropping": (1, 2)}, (4, 6, 3), ((1, 1), (2, 2))),
    (Cropping2D, {"cropping": ((1, 0), (2, 1))}, (4, 5, 3), ((1, 0), (2, 1))),
    (Cropping3D, {}, (3, 4, 5, 2), ((1, 1), (1, 1), (1, 1))),
    (Cropping3D, {"cropping": (1, 0, 2)}, (3, 4, 5, 2), ((1, 1), (0, 0), (2, 2))),
    (Cropping3D, {"cropping": ((0, 1), (2, 0), (1, 3))}, (3, 4, 6, 2),
     ((0, 1), (2, 0), (1, 3))),
]


def _case_id(case):
    return f"{case[0].__name__}-{case[1]}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", PAD_CASES + CROP_CASES,
                         ids=[_case_id(c) for c in PAD_CASES + CROP_CASES])
def test_padding_and_cropping_match_numpy(case, dtype):
    cls, kwargs, sample, pairs = case
    layer = cls(dtype=dtype, **kwargs)
    assert margins_of(layer) == pairs
    x = data((3,) + sample, 1, dtype)
    crop = cls.__name__.startswith("Cropping")
    want = crop_reference(x, pairs) if crop else pad_reference(x, pairs)
    dy = data(want.shape, 2, dtype)
    inference, y, dx = run(layer, x, dy)
    # A copy: the bits are the input's.
    np.testing.assert_array_equal(inference, want)
    np.testing.assert_array_equal(y, want)
    assert y.dtype == dtype and layer.compute_output_shape(sample) == want.shape[1:]
    want_dx = pad_reference(dy, pairs) if crop else crop_reference(dy, pairs)
    np.testing.assert_array_equal(dx, want_dx)


@pytest.mark.parametrize("case", [PAD_CASES[2], PAD_CASES[6], PAD_CASES[10], CROP_CASES[1],
                                  CROP_CASES[5], CROP_CASES[8]], ids=_case_id)
def test_padding_and_cropping_gradients(case):
    cls, kwargs, sample, _ = case
    check_layer_gradients(cls(dtype="float64", **kwargs), data((2,) + sample, 3))


def test_padding_matches_torch_f_pad():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = data((2, 4, 5, 3), 4)
    layer = ZeroPadding2D(((1, 2), (3, 0)), dtype="float64")
    xt = torch.tensor(x, requires_grad=True)
    yt = F.pad(xt, (0, 0, 3, 0, 1, 2))   # last axis first: channels, width, height
    dy = data(tuple(yt.shape), 5)
    yt.backward(torch.tensor(dy))
    _, y, dx = run(layer, x, dy)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    # Cropping is F.pad with negative pads.
    crop = Cropping3D(((1, 0), (0, 2), (1, 1)), dtype="float64")
    x = data((2, 3, 4, 5, 2), 6)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.pad(xt, (0, 0, -1, -1, 0, -2, -1, 0))
    dy = data(tuple(yt.shape), 7)
    yt.backward(torch.tensor(dy))
    _, y, dx = run(crop, x, dy)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_padding_and_cropping_take_any_spatial_size():
    # Built for (None, None, c): each batch brings its own size.
    inputs = Input((None, None, 2))
    model = Model(inputs, Cropping2D(((1, 0), (0, 2)))(ZeroPadding2D(((0, 1), (2, 3)))(inputs)))
    assert model.output_shape == (None, None, None, 2)
    for shape in ((1, 3, 4, 2), (2, 5, 2, 2)):
        x = data(shape, 8, np.float32)
        want = crop_reference(pad_reference(x, ((0, 1), (2, 3))), ((1, 0), (0, 2)))
        np.testing.assert_array_equal(model.predict(x, verbose=0), want)
    with pytest.raises(ValueError, match="cropping"):
        Cropping1D((2, 2))(np.zeros((1, 4, 1), np.float32))


@pytest.mark.parametrize("layer, sample", [
    (ZeroPadding1D(), (3, 2)), (ZeroPadding3D(), (2, 2, 2, 1)), (Cropping2D(1), (3, 3, 2)),
    (UpSampling1D(), (3, 2)), (UpSampling2D(interpolation="bilinear"), (2, 3, 2)),
    (UpSampling3D(), (2, 2, 2, 1)), (Permute((3, 2, 1)), (2, 3, 4))],
    ids=lambda value: type(value).__name__ if not isinstance(value, tuple) else "")
def test_an_empty_batch(layer, sample):
    ctx = CallContext(layer)
    y = ctx.forward(np.zeros((0,) + sample, np.float32), training=True)
    assert y.shape == (0,) + layer.compute_output_shape(sample)
    assert ctx.backward(np.zeros(y.shape, np.float32)).shape == (0,) + sample


# ---- Keras' output shapes (from Keras 3.15.1) ----

KERAS_SHAPES = [
    ("ZeroPadding1D", {}, (5, 3), (7, 3)),
    ("ZeroPadding1D", {"padding": 2}, (None, 3), (None, 3)),
    ("ZeroPadding1D", {"padding": (0, 3)}, (4, 2), (7, 2)),
    ("ZeroPadding2D", {}, (4, 5, 3), (6, 7, 3)),
    ("ZeroPadding2D", {"padding": 2}, (None, 5, 3), (None, 9, 3)),
    ("ZeroPadding2D", {"padding": (1, 2)}, (4, 5, 3), (6, 9, 3)),
    ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}, (4, None, 3), (5, None, 3)),
    ("ZeroPadding3D", {}, (2, 3, 4, 1), (4, 5, 6, 1)),
    ("ZeroPadding3D", {"padding": (1, 0, 2)}, (2, 3, 4, 1), (4, 3, 8, 1)),
    ("ZeroPadding3D", {"padding": ((0, 1), (2, 0), (1, 3))}, (2, None, 4, 1), (3, None, 8, 1)),
    ("Cropping1D", {}, (5, 3), (3, 3)),
    ("Cropping1D", {"cropping": (0, 3)}, (4, 2), (1, 2)),
    ("Cropping1D", {"cropping": 2}, (None, 2), (None, 2)),
    ("Cropping2D", {}, (4, 5, 3), (4, 5, 3)),
    ("Cropping2D", {"cropping": 1}, (4, 5, 3), (2, 3, 3)),
    ("Cropping2D", {"cropping": (1, 2)}, (4, 5, 3), (2, 1, 3)),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}, (None, 5, 3), (None, 2, 3)),
    ("Cropping3D", {}, (3, 4, 5, 2), (1, 2, 3, 2)),
    ("Cropping3D", {"cropping": (1, 0, 2)}, (3, 4, 5, 2), (1, 4, 1, 2)),
    ("Cropping3D", {"cropping": ((0, 1), (2, 0), (1, 3))}, (3, 4, None, 2), (2, 2, None, 2)),
    ("UpSampling1D", {}, (5, 3), (10, 3)),
    ("UpSampling1D", {"size": 3}, (None, 2), (None, 2)),
    ("UpSampling2D", {}, (4, 5, 3), (8, 10, 3)),
    ("UpSampling2D", {"size": 3}, (2, None, 1), (6, None, 1)),
    ("UpSampling2D", {"size": (1, 3), "interpolation": "bilinear"}, (4, 5, 3), (4, 15, 3)),
    ("UpSampling3D", {}, (2, 3, 4, 1), (4, 6, 8, 1)),
    ("UpSampling3D", {"size": (1, 2, 3)}, (2, 3, None, 2), (2, 6, None, 2)),
    ("Permute", {"dims": (2, 1)}, (5, 3), (3, 5)),
    ("Permute", {"dims": (3, 1, 2)}, (4, None, 2), (2, 4, None)),
    ("Permute", {"dims": (1, 2, 3, 4)}, (2, 3, 4, 5), (2, 3, 4, 5)),
]
# Croppings that Keras 3.15.1 refuses: nothing would be left along an axis.
KERAS_REFUSED = [
    ("Cropping1D", {"cropping": (2, 3)}, (5, 3)),
    ("Cropping2D", {"cropping": ((2, 2), (0, 0))}, (4, 5, 3)),
    ("Cropping3D", {"cropping": 1}, (2, 5, 5, 1)),
]


@pytest.mark.parametrize("name, kwargs, sample, want", KERAS_SHAPES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in KERAS_SHAPES])
def test_output_shapes_follow_keras(name, kwargs, sample, want):
    layer = getattr(minidl.layers, name)(**kwargs)
    assert layer.compute_output_shape(sample) == want
    if None not in sample:
        assert layer(np.zeros((2,) + sample, np.float32)).shape == (2,) + want


@pytest.mark.parametrize("name, kwargs, sample", KERAS_REFUSED)
def test_croppings_keras_refuses_are_refused(name, kwargs, sample):
    layer = getattr(minidl.layers, name)(**kwargs)
    with pytest.raises(ValueError, match="cropping must be smaller than the input"):
        layer.compute_output_shape(sample)
    with pytest.raises(ValueError, match="cropping"):
        layer(np.zeros((1,) + sample, np.float32))


def test_keras_tables_are_keras_results():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for name, kwargs, sample, want in KERAS_SHAPES:
        layer = getattr(keras.layers, name)(**kwargs)
        assert tuple(layer.compute_output_shape((None,) + sample))[1:] == want, name
    for name, kwargs, sample in KERAS_REFUSED:
        with pytest.raises(ValueError):
            getattr(keras.layers, name)(**kwargs).compute_output_shape((None,) + sample)
    # And the values: Keras' own layers on the same data.
    for name, kwargs, sample in [
            ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}, (4, 5, 3)),
            ("Cropping3D", {"cropping": ((0, 1), (2, 0), (1, 3))}, (3, 4, 6, 2)),
            ("UpSampling2D", {"size": (2, 3)}, (3, 4, 2)),
            ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}, (3, 4, 2)),
            ("UpSampling2D", {"size": (3, 1), "interpolation": "bilinear"}, (4, 3, 2)),
            ("UpSampling3D", {"size": (1, 2, 3)}, (2, 3, 2, 2)),
            ("Permute", {"dims": (3, 1, 2)}, (2, 3, 4))]:
        x = data((2,) + sample, 29, np.float32)
        want = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
        got = np.asarray(getattr(minidl.layers, name)(**kwargs)(x))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max(),
                                   err_msg=name)


# ---- upsampling: numpy reference ----

def bilinear_matrix(in_size, factor):
    """(in_size * factor, in_size): Keras' bilinear resize along one axis as a matrix
    (half-pixel centers, source coordinates clamped to the input)."""
    out = in_size * factor
    matrix = np.zeros((out, in_size))
    for i in range(out):
        source = min(max((i + 0.5) / factor - 0.5, 0.0), in_size - 1)
        low = int(np.floor(source))
        high = min(low + 1, in_size - 1)
        matrix[i, low] += 1 - (source - low)
        matrix[i, high] += source - low
    return matrix


def upsample_reference(x, sizes, bilinear=False):
    if bilinear:
        rows, cols = (bilinear_matrix(n, f) for n, f in zip(x.shape[1:3], sizes))
        return np.einsum("ih,jw,nhwc->nijc", rows, cols, x)
    for axis, factor in enumerate(sizes, start=1):
        x = np.repeat(x, factor, axis=axis)
    return x


def upsample_gradient_reference(dy, in_sample, sizes, bilinear=False):
    if bilinear:
        rows, cols = (bilinear_matrix(n, f) for n, f in zip(in_sample[:2], sizes))
        return np.einsum("ih,jw,nijc->nhwc", rows, cols, dy)
    # Each input value's gradient: the sum over its block of copies.
    shape = [dy.shape[0]]
    for length, factor in zip(in_sample[:-1], sizes):
        shape += [length, factor]
    grad = dy.reshape(shape + [in_sample[-1]])
    return grad.sum(axis=tuple(range(2, 2 * len(sizes) + 1, 2)))


UP_CASES = [
    (UpSampling1D, {}, (5, 3), (2,)),
    (UpSampling1D, {"size": 3}, (4, 2), (3,)),
    (UpSampling2D, {}, (3, 4, 2), (2, 2)),
    (UpSampling2D, {"size": (3, 1)}, (3, 4, 2), (3, 1)),
    (UpSampling2D, {"size": (2, 3), "interpolation": "bilinear"}, (3, 4, 2), (2, 3)),
    (UpSampling2D, {"size": 4, "interpolation": "Bilinear"}, (2, 3, 1), (4, 4)),
    (UpSampling2D, {"size": (1, 2), "interpolation": "bilinear"}, (1, 3, 2), (1, 2)),
    (UpSampling3D, {}, (2, 3, 2, 2), (2, 2, 2)),
    (UpSampling3D, {"size": (1, 3, 2)}, (2, 2, 3, 1), (1, 3, 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", UP_CASES, ids=[_case_id(c) for c in UP_CASES])
def test_upsampling_matches_numpy(case, dtype):
    cls, kwargs, sample, sizes = case
    layer = cls(dtype=dtype, **kwargs)
    bilinear = getattr(layer, "interpolation", "nearest") == "bilinear"
    x = data((3,) + sample, 12, dtype)
    want = upsample_reference(x.astype(np.float64), sizes, bilinear)
    dy = data(want.shape, 13, dtype)
    want_dx = upsample_gradient_reference(dy.astype(np.float64), sample, sizes, bilinear)
    inference, y, dx = run(layer, x, dy)
    assert y.dtype == dtype and layer.compute_output_shape(sample) == want.shape[1:]
    if bilinear:   # double arithmetic rounded once (float32: to the nearest float32)
        tol = 1e-6 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(inference, y, rtol=0, atol=0)
        np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol * np.abs(want_dx).max())
    else:          # copies, and sums in a fixed order
        np.testing.assert_array_equal(inference, want.astype(dtype))
        np.testing.assert_array_equal(y, want.astype(dtype))
        scale = np.abs(want_dx).max()
        np.testing.assert_allclose(dx, want_dx, rtol=0,
                                   atol=(1e-6 if dtype == "float32" else 1e-14) * scale)


@pytest.mark.parametrize("case", [UP_CASES[1], UP_CASES[3], UP_CASES[4], UP_CASES[8]],
                         ids=_case_id)
def test_upsampling_gradients(case):
    cls, kwargs, sample, _ = case
    check_layer_gradients(cls(dtype="float64", **kwargs), data((2,) + sample, 14))


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs, sample", [
    ({"size": (2, 3)}, (5, 4, 3)),
    ({"size": (2, 3), "interpolation": "bilinear"}, (5, 4, 3)),
    ({"size": (3, 1), "interpolation": "bilinear"}, (4, 7, 2)),
    ({"size": 5, "interpolation": "bilinear"}, (1, 2, 1)),
])
def test_upsampling2d_matches_torch_interpolate(kwargs, sample, dtype):
    torch, F = _torch()
    layer = UpSampling2D(dtype=dtype, **kwargs)
    x = data((2,) + sample, 15, dtype)
    out_sample = layer.compute_output_shape(sample)
    dy = data((2,) + out_sample, 16, dtype)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    # Keras' bilinear resize is torch's with align_corners=False (half-pixel centers).
    mode = layer.interpolation
    yt = F.interpolate(xt, size=out_sample[:2], mode=mode,
                       **({"align_corners": False} if mode == "bilinear" else {}))
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    _, y, dx = run(layer, x, dy)
    want_y = yt.detach().numpy().transpose(0, 2, 3, 1)
    want_dx = xt.grad.numpy().transpose(0, 2, 3, 1)
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(y, want_y, rtol=0, atol=tol * np.abs(want_y).max())
    np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol * np.abs(want_dx).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_upsampling1d_3d_match_torch_interpolate(dtype):
    torch, F = _torch()
    tol = 1e-5 if dtype == "float32" else 1e-10
    for layer, sample in ((UpSampling1D(3, dtype=dtype), (5, 4)),
                          (UpSampling3D((2, 1, 3), dtype=dtype), (2, 3, 4, 2))):
        x = data((2,) + sample, 17, dtype)
        out_sample = layer.compute_output_shape(sample)
        dy = data((2,) + out_sample, 18, dtype)
        to_first = (0, x.ndim - 1) + tuple(range(1, x.ndim - 1))
        to_last = (0,) + tuple(range(2, x.ndim)) + (1,)
        xt = torch.tensor(x.transpose(to_first).copy(), requires_grad=True)
        yt = F.interpolate(xt, size=out_sample[:-1], mode="nearest")
        yt.backward(torch.tensor(dy.transpose(to_first).copy()))
        _, y, dx = run(layer, x, dy)
        np.testing.assert_array_equal(y, yt.detach().numpy().transpose(to_last))
        want_dx = xt.grad.numpy().transpose(to_last)
        np.testing.assert_allclose(dx, want_dx, rtol=0, atol=tol * np.abs(want_dx).max())


def test_upsampling_takes_any_spatial_size():
    inputs = Input((None, None, 2))
    model = Model(inputs, UpSampling2D((2, 3), interpolation="bilinear")(inputs))
    assert model.output_shape == (None, None, None, 2)
    for shape in ((1, 3, 4, 2), (2, 2, 5, 2), (1, 3, 4, 2)):
        x = data(shape, 19, np.float32)
        want = upsample_reference(x.astype(np.float64), (2, 3), bilinear=True)
        np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)


# ---- Permute ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dims, sample", [((2, 1), (3, 4)), ((3, 1, 2), (2, 3, 4)),
                                          ((1, 3, 2), (2, 3, 4)), ((4, 2, 3, 1), (2, 3, 1, 2))])
def test_permute_matches_numpy_transpose(dims, sample, dtype):
    layer = Permute(dims, dtype=dtype)
    x = data((3,) + sample, 20, dtype)
    want = np.transpose(x, (0,) + dims)
    dy = data(want.shape, 21, dtype)
    inference, y, dx = run(layer, x, dy)
    np.testing.assert_array_equal(inference, want)
    np.testing.assert_array_equal(y, want)
    assert y.flags.c_contiguous and dx.flags.c_contiguous
    np.testing.assert_array_equal(dx, np.transpose(dy, np.argsort((0,) + dims)))
    assert layer.compute_output_shape(sample) == want.shape[1:]
    check_layer_gradients(Permute(dims, dtype="float64"), data((2,) + sample, 22))


def test_permute_matches_torch():
    torch, _ = _torch()
    x = data((2, 3, 4, 5), 23)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt.permute(0, 3, 1, 2)
    dy = data(tuple(yt.shape), 24)
    yt.backward(torch.tensor(dy))
    _, y, dx = run(Permute((3, 1, 2), dtype="float64"), x, dy)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(dx, xt.grad.numpy())


# ---- arguments, config ----

@pytest.mark.parametrize("make, error, pattern", [
    (lambda: ZeroPadding1D(-1), ValueError, "padding.*negative"),
    (lambda: ZeroPadding1D((1, 2, 3)), ValueError, "padding"),
    (lambda: ZeroPadding1D("x"), ValueError, "padding"),
    (lambda: ZeroPadding1D(1.5), ValueError, "padding"),
    (lambda: ZeroPadding2D(True), ValueError, "padding"),
    (lambda: ZeroPadding2D((1, 2, 3)), ValueError, "padding"),
    (lambda: ZeroPadding2D(((1, 2), (3, -1))), ValueError, "2nd entry of padding"),
    (lambda: ZeroPadding2D(((1, 2, 3), (3, 1))), ValueError, "1st entry of padding"),
    (lambda: ZeroPadding2D(data_format="NHWC"), ValueError, "data_format"),
    (lambda: ZeroPadding3D((1, 1)), ValueError, "padding"),
    (lambda: ZeroPadding3D(((1, 1), (1, 1), (1, "a"))), ValueError, "3rd entry of padding"),
    (lambda: Cropping1D(-2), ValueError, "cropping.*negative"),
    (lambda: Cropping2D(-1), ValueError, "cropping.*negative"),
    (lambda: Cropping2D(((1,), (1, 1))), ValueError, "1st entry of cropping"),
    (lambda: Cropping3D(None), ValueError, "cropping"),
    (lambda: Cropping3D(data_format="channels_middle"), ValueError, "data_format"),
    # Keras: a TypeError for a size that is no int, a ValueError for one below 1.
    (lambda: UpSampling1D(2.0), TypeError, "size"),
    (lambda: UpSampling1D((2,)), TypeError, "size"),
    (lambda: UpSampling1D(0), ValueError, "size"),
    (lambda: UpSampling2D((2, 0)), ValueError, "size"),
    (lambda: UpSampling2D((2, 2, 2)), ValueError, "size"),
    (lambda: UpSampling2D(interpolation="cubic"), ValueError, "interpolation"),
    (lambda: UpSampling2D(interpolation="bicubic"), ValueError, "not implemented"),
    (lambda: UpSampling2D(interpolation=None), ValueError, "interpolation"),
    (lambda: UpSampling2D(data_format="NHWC"), ValueError, "data_format"),
    (lambda: UpSampling3D((1, 2)), ValueError, "size"),
    (lambda: UpSampling3D(-1), ValueError, "size"),
    (lambda: Permute((0, 1)), ValueError, "dims"),
    (lambda: Permute((1, 3)), ValueError, "dims"),
    (lambda: Permute((1, 1)), ValueError, "dims"),
    (lambda: Permute(2), TypeError, "dims"),
    (lambda: Permute("21"), TypeError, "dims"),
    (lambda: Permute((1.5, 2)), TypeError, "dims"),
])
def test_bad_arguments_are_refused(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("layer, bad_sample", [
    (ZeroPadding1D(), (4, 4, 2)), (ZeroPadding2D(), (4, 2)), (ZeroPadding3D(), (4, 4, 2)),
    (Cropping1D(), (4,)), (Cropping2D(), (4, 4, 4, 2)), (Cropping3D(), (4, 4, 2)),
    (UpSampling1D(), (4, 4, 2)), (UpSampling2D(), (4, 2)), (UpSampling3D(), (4, 4, 2)),
    (Permute((2, 1)), (4, 4, 2))])
def test_inputs_of_the_wrong_rank_are_refused(layer, bad_sample):
    with pytest.raises(ValueError, match="expects"):
        layer(np.zeros((1,) + bad_sample, np.float32))


@pytest.mark.parametrize("layer, keras_config", [
    (ZeroPadding1D(), {"padding": [1, 1], "data_format": "channels_last"}),
    (ZeroPadding2D(), {"padding": [[1, 1], [1, 1]], "data_format": "channels_last"}),
    (ZeroPadding3D(2), {"padding": [[2, 2]] * 3, "data_format": "channels_last"}),
    (Cropping1D(), {"cropping": [1, 1]}),
    (Cropping2D(), {"cropping": [[0, 0], [0, 0]], "data_format": "channels_last"}),
    (Cropping3D((1, 2, 3)), {"cropping": [[1, 1], [2, 2], [3, 3]],
                             "data_format": "channels_last"}),
    (UpSampling1D(), {"size": 2}),
    (UpSampling2D(), {"size": [2, 2], "data_format": "channels_last",
                      "interpolation": "nearest"}),
    (UpSampling3D(3), {"size": [3, 3, 3], "data_format": "channels_last"}),
    (Permute((2, 1)), {"dims": [2, 1]}),
])
def test_config_holds_keras_keys_and_round_trips(layer, keras_config):
    config = layer.get_config()
    assert {k: config[k] for k in keras_config} == keras_config
    assert set(config) == {"name", "dtype", "trainable"} | set(keras_config)
    clone = get_layer({"class_name": type(layer).__name__, "config": config})
    assert clone.get_config() == config and clone.params == []


# ---- kernels ----

def test_place_refuses_bad_arrays():
    x = np.zeros((2, 1, 3, 4, 2))
    with pytest.raises(TypeError, match="dst"):
        _resample.place(x, np.zeros((2, 1, 3, 4, 2), np.float32), (0, 0, 0))
    with pytest.raises(ValueError, match="same batch size"):
        _resample.place(x, np.zeros((3, 1, 3, 4, 2)), (0, 0, 0))
    with pytest.raises(ValueError, match="offsets"):
        _resample.place(x, np.zeros((2, 1, 3, 4, 2)), (0, 0))
    with pytest.raises(ValueError, match="share memory"):
        _resample.place(x, x, (0, 0, 0))
    with pytest.raises(ValueError, match="C-contiguous"):
        _resample.place(np.zeros((2, 1, 3, 8, 2))[:, :, :, ::2], np.zeros((2, 1, 3, 4, 2)),
                        (0, 0, 0))
    # Offsets far outside the destination: all zeros, no stray access.
    out = np.ones((2, 1, 3, 4, 2))
    _resample.place(x + 1, out, (0, 100, -100))
    assert not out.any()


def place_reference(src, out_shape, offsets):
    dst = np.zeros(out_shape, src.dtype)
    target, source = [slice(None)], [slice(None)]
    for size, out, offset in zip(src.shape[1:4], out_shape[1:4], offsets):
        lo, hi = max(offset, 0), min(size + offset, out)
        if hi <= lo:
            return dst
        target.append(slice(lo, hi))
        source.append(slice(lo - offset, hi - offset))
    dst[tuple(target)] = src[tuple(source)]
    return dst


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_numpy_on_random_geometries(dtype):
    rng = np.random.default_rng(30)
    for _ in range(40):
        shape = (int(rng.integers(0, 3)),) + tuple(int(v) for v in rng.integers(1, 5, 4))
        out_shape = shape[:1] + tuple(int(v) for v in rng.integers(1, 7, 3)) + shape[4:]
        offsets = tuple(int(v) for v in rng.integers(-5, 6, 3))
        src = data(shape, int(rng.integers(1000)), dtype)
        dst = np.full(out_shape, np.nan, dtype)
        _resample.place(src, dst, offsets)
        np.testing.assert_array_equal(dst, place_reference(src, out_shape, offsets))
        sizes = tuple(int(v) for v in rng.integers(1, 4, 3))
        up = np.full(shape[:1] + tuple(n * f for n, f in zip(shape[1:4], sizes)) + shape[4:],
                     np.nan, dtype)
        _resample.upsample_nearest(src, up, sizes)
        np.testing.assert_array_equal(up, upsample_reference(src, sizes))
        back = np.full(shape, np.nan, dtype)
        _resample.upsample_nearest_backward(up, back, sizes)
        np.testing.assert_allclose(back, upsample_gradient_reference(up, shape[1:], sizes),
                                   rtol=1e-6 if dtype == np.float32 else 1e-15)


def test_upsample_kernels_refuse_bad_arrays():
    x = np.zeros((2, 1, 2, 3, 2))
    with pytest.raises(ValueError, match="y must have shape"):
        _resample.upsample_nearest(x, np.zeros((2, 1, 4, 5, 2)), (1, 2, 2))
    with pytest.raises(ValueError, match="size"):
        _resample.upsample_nearest(x, np.zeros((2, 1, 4, 6, 2)), (1, 0, 2))
    with pytest.raises(ValueError, match="size"):
        _resample.upsample_nearest(x, np.zeros((2, 1, 4, 6, 2)), 2)
    with pytest.raises(TypeError, match="dx"):
        _resample.upsample_nearest_backward(np.zeros((2, 1, 4, 6, 2)), x.astype(np.float32),
                                            (1, 2, 2))
    read_only = np.zeros_like(x)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _resample.upsample_nearest_backward(np.zeros((2, 1, 4, 6, 2)), read_only, (1, 2, 2))


# ---- threads ----

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make, shape", [
    (lambda d: ZeroPadding2D(((1, 2), (0, 3)), dtype=d), (8, 30, 31, 8)),
    (lambda d: Cropping3D(((1, 0), (2, 1), (0, 3)), dtype=d), (4, 10, 14, 16, 8)),
    (lambda d: UpSampling2D((2, 3), dtype=d), (8, 16, 15, 8)),
    (lambda d: UpSampling2D((2, 3), interpolation="bilinear", dtype=d), (8, 16, 15, 8)),
    (lambda d: UpSampling3D((2, 1, 2), dtype=d), (4, 6, 10, 11, 8)),
], ids=["pad2d", "crop3d", "up2d", "up2d_bilinear", "up3d"])
def test_same_bits_for_any_thread_count(make, shape, dtype):
    x = data(shape, 9, dtype)
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            layer = make(dtype)
            out_shape = (shape[0],) + layer.compute_output_shape(shape[1:])
            results.append(run(layer, x, data(out_shape, 10, dtype)))
    finally:
        minidl.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- models ----

def test_model_with_padding_and_cropping_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(11)
    images = rng.standard_normal((24, 7, 6, 2)).astype(np.float32)
    labels = rng.integers(0, 2, 24)
    set_random_seed(3)
    model = Sequential([Input((7, 6, 2)), ZeroPadding2D(((1, 0), (2, 1))),
                        Conv2D(3, 3, activation="relu"), Cropping2D(((0, 1), (1, 0))),
                        Flatten(), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(images, labels, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "pad.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(images, verbose=0),
                                  model.predict(images, verbose=0))

    seqs = rng.standard_normal((24, 6, 3)).astype(np.float32)
    volumes = rng.standard_normal((24, 3, 4, 4, 1)).astype(np.float32)
    seq_in, vol_in = Input((6, 3)), Input((3, 4, 4, 1))
    a = Flatten()(Cropping1D((1, 2))(ZeroPadding1D((0, 2))(seq_in)))
    b = Flatten()(Cropping3D(((0, 1), (1, 1), (2, 0)))(ZeroPadding3D(1)(vol_in)))
    both = Model([seq_in, vol_in], Dense(2, activation="softmax")(
        minidl.layers.concatenate([a, b])))
    both.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert np.isfinite(both.fit([seqs, volumes], labels, epochs=1, verbose=0)
                       .history["loss"][0])
    path = tmp_path / "both.minidl"
    both.save(path)
    np.testing.assert_array_equal(load_model(path).predict([seqs, volumes], verbose=0),
                                  both.predict([seqs, volumes], verbose=0))


def test_model_with_upsampling_and_permute_fits_saves_and_loads(tmp_path):
    # A small decoder: upsample, convolve, upsample bilinearly back to the input size.
    rng = np.random.default_rng(25)
    images = rng.standard_normal((16, 4, 4, 2)).astype(np.float32)
    set_random_seed(4)
    model = Sequential([Input((4, 4, 2)), Conv2D(3, 3, strides=2, padding="same"),
                        UpSampling2D(), Conv2D(4, 3, padding="same", activation="relu"),
                        UpSampling2D((1, 1), interpolation="bilinear"), Permute((3, 1, 2)),
                        Permute((2, 3, 1)), Conv2D(2, 1)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(images, images, epochs=3, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "up.minidl"
    model.save(path)
    np.testing.assert_array_equal(load_model(path).predict(images, verbose=0),
                                  model.predict(images, verbose=0))

    seqs = rng.standard_normal((16, 3, 2)).astype(np.float32)
    volumes = rng.standard_normal((16, 1, 2, 2, 1)).astype(np.float32)
    labels = rng.integers(0, 2, 16)
    seq_in, vol_in = Input((3, 2)), Input((1, 2, 2, 1))
    a = Flatten()(UpSampling1D(3)(Permute((2, 1))(seq_in)))
    b = Flatten()(UpSampling3D((2, 1, 2))(vol_in))
    both = Model([seq_in, vol_in], Dense(2, activation="softmax")(
        minidl.layers.concatenate([a, b])))
    both.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert np.isfinite(both.fit([seqs, volumes], labels, epochs=1, verbose=0)
                       .history["loss"][0])
    path = tmp_path / "both_up.minidl"
    both.save(path)
    np.testing.assert_array_equal(load_model(path).predict([seqs, volumes], verbose=0),
                                  both.predict([seqs, volumes], verbose=0))


def test_upsampling_under_gradient_tape():
    layer = UpSampling2D((2, 1), interpolation="bilinear", dtype="float64")
    x = minidl.Variable(data((2, 3, 2, 2), 26))
    with minidl.GradientTape() as tape:
        loss = minidl.ops.sum(layer(x) * 2.0)
    grad = np.asarray(tape.gradient(loss, x))
    want = upsample_gradient_reference(np.full((2, 6, 2, 2), 2.0), (3, 2, 2), (2, 1), True)
    np.testing.assert_allclose(grad, want, rtol=1e-13)


@pytest.mark.parametrize("make, sample", [
    (lambda: ZeroPadding2D(((1, 0), (0, 2)), dtype="float64"), (3, 2, 2)),
    (lambda: Cropping3D(((1, 0), (0, 1), (1, 1)), dtype="float64"), (3, 3, 4, 2)),
    (lambda: UpSampling3D((1, 2, 2), dtype="float64"), (2, 2, 2, 1)),
    (lambda: Permute((3, 1, 2), dtype="float64"), (2, 3, 4)),
], ids=["pad", "crop", "up3d", "permute"])
def test_gradient_tape_gives_the_backward_pass(make, sample):
    layer = make()
    x = data((2,) + sample, 27)
    weights = data((2,) + layer.compute_output_shape(sample), 28)
    variable = minidl.Variable(x)
    with minidl.GradientTape() as tape:
        loss = minidl.ops.sum(layer(variable) * weights)
    _, _, dx = run(layer, x, weights)
    np.testing.assert_array_equal(np.asarray(tape.gradient(loss, variable)), dx)
