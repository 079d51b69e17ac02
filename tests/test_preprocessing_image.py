"""Image preprocessing layers (Resizing, CenterCrop) and the random augmentation layers: the
kernels of minidl._core._image against numpy references of TF's half-pixel resize and of
Keras' affine_transform / map_coordinates (every fill mode, both interpolations), Pillow and
PyTorch; the layers' random draws, seeds, thread-count independence, gradients, and their
life inside models (fit, predict, save and load).
"""
import json

import numpy as np
import pytest

import minidl
from minidl._core import _image
from minidl.layers import (CallContext, CenterCrop, Conv2D, Dense, Flatten, Input,
                           RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                           RandomRotation, RandomTranslation, RandomZoom, Resizing,
                           get as get_layer)
from minidl.layers.preprocessing.augmentation import (rotation_transforms,
                                                      translation_transforms, zoom_transforms)

pytestmark = pytest.mark.usefixtures("one_thread")

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


def images(shape, dtype=np.float64, seed=0, scale=255.0):
    return (np.random.default_rng(seed).random(shape) * scale).astype(dtype)


def layer_rng(seed):
    """The generator a layer with ``seed`` draws from."""
    return np.random.Generator(np.random.PCG64(seed))


# ---- numpy references ----

def ref_resize_bilinear(x, out_h, out_w):
    """TF's bilinear resize with half-pixel centers (no antialiasing), float64."""
    def axis(size, out):
        src = (np.arange(out) + 0.5) * (size / out) - 0.5
        lo = np.floor(src)
        return (np.maximum(lo, 0).astype(int), np.minimum(np.ceil(src), size - 1).astype(int),
                src - lo)
    y0, y1, wy = axis(x.shape[1], out_h)
    x0, x1, wx = axis(x.shape[2], out_w)
    x = x.astype(np.float64)
    wx = wx[None, None, :, None]
    top = x[:, y0][:, :, x0] + (x[:, y0][:, :, x1] - x[:, y0][:, :, x0]) * wx
    bottom = x[:, y1][:, :, x0] + (x[:, y1][:, :, x1] - x[:, y1][:, :, x0]) * wx
    return top + (bottom - top) * wy[None, :, None, None]


def _mirror(index, size):
    s = size - 1
    return np.abs((index + s) % (2 * s) - s)


KERAS_INDEX_FIXERS = {   # keras/src/backend/*/image.py
    "constant": lambda index, size: index,
    "nearest": lambda index, size: np.clip(index, 0, size - 1),
    "wrap": lambda index, size: index % size,
    "reflect": lambda index, size: (_mirror(2 * index + 1, 2 * size + 1) - 1) // 2,
}


def ref_affine(x, transforms, interpolation, fill_mode, fill_value=0.0):
    """keras.ops.image.affine_transform (with its map_coordinates), in float64, with TF's
    projective division by ``k = c0 x + c1 y + 1``."""
    n, h, w, c = x.shape
    out = np.empty((n, h, w, c))
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing="ij")
    fix = KERAS_INDEX_FIXERS[fill_mode]
    for i in range(n):
        a0, a1, a2, b0, b1, b2, c0, c1 = transforms[i]
        k = c0 * xx + c1 * yy + 1.0
        sx, sy = (a0 * xx + a1 * yy + a2) / k, (b0 * xx + b1 * yy + b2) / k
        if interpolation == "nearest":
            corners_y = [(np.round(sy).astype(int), 1.0)]
            corners_x = [(np.round(sx).astype(int), 1.0)]
        else:
            fy, fx = np.floor(sy), np.floor(sx)
            corners_y = [(fy.astype(int), 1 - (sy - fy)), (fy.astype(int) + 1, sy - fy)]
            corners_x = [(fx.astype(int), 1 - (sx - fx)), (fx.astype(int) + 1, sx - fx)]
        total = 0.0
        for iy, wy in corners_y:
            for ix, wx in corners_x:
                valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) \
                    if fill_mode == "constant" else np.ones(iy.shape, bool)
                jy = np.clip(fix(iy, h), 0, h - 1)
                jx = np.clip(fix(ix, w), 0, w - 1)
                value = np.where(valid[..., None], x[i][jy, jx].astype(np.float64),
                                 fill_value)
                total = total + (np.asarray(wy) * np.asarray(wx))[..., None] * value
        out[i] = total
    return out


def random_affine(n, h, w, seed):
    """A batch of transforms mixing rotation, zoom, shear and translation."""
    rng = np.random.default_rng(seed)
    t = np.zeros((n, 8))
    angle = rng.uniform(-np.pi, np.pi, n)
    zoom = rng.uniform(0.6, 1.5, (n, 2))
    t[:, 0], t[:, 1] = zoom[:, 0] * np.cos(angle), -zoom[:, 0] * np.sin(angle) + rng.uniform(
        -0.2, 0.2, n)
    t[:, 3], t[:, 4] = zoom[:, 1] * np.sin(angle), zoom[:, 1] * np.cos(angle)
    t[:, 2] = rng.uniform(-w, w, n) + w / 2
    t[:, 5] = rng.uniform(-h, h, n) + h / 2
    return t


# ---- resize kernels ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out_hw", [(5, 7), (13, 4), (24, 31), (9, 11)])
def test_resize_bilinear_matches_tf_half_pixel_reference(dtype, out_hw):
    x = images((3, 9, 11, 2), dtype)
    got = Resizing(*out_hw, dtype=np.dtype(dtype).name)(x).numpy()
    want = ref_resize_bilinear(x, *out_hw)
    tol = 1e-12 if dtype == np.float64 else 3e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 255)


@pytest.mark.parametrize("out_hw", [(5, 7), (20, 3), (31, 26)])
def test_resize_nearest_matches_pillow(out_hw):
    from PIL import Image
    x = images((2, 11, 13, 3), np.float32, seed=1)
    got = Resizing(*out_hw, interpolation="nearest")(x).numpy()
    for i in range(2):
        for ch in range(3):
            pil = Image.fromarray(x[i, :, :, ch], mode="F").resize(
                (out_hw[1], out_hw[0]), Image.NEAREST)
            np.testing.assert_array_equal(got[i, :, :, ch], np.asarray(pil))


@pytest.mark.parametrize("out_hw", [(5, 7), (23, 17)])
def test_resize_bilinear_matches_torch_interpolate(out_hw, torch_one_thread):
    torch = pytest.importorskip("torch")
    x = images((2, 10, 12, 3), np.float64, seed=2)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=out_hw, mode="bilinear",
        align_corners=False, antialias=False).permute(0, 2, 3, 1).numpy()
    got = Resizing(*out_hw, dtype="float64")(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)


def test_resizing_crop_and_pad_to_aspect_ratio():
    x = images((2, 8, 14, 3))
    # crop: the centered 8 x 8 window (Keras' box), then the resize.
    got = Resizing(4, 4, crop_to_aspect_ratio=True, dtype="float64")(x).numpy()
    np.testing.assert_allclose(got, ref_resize_bilinear(x[:, :, 3:11], 4, 4), rtol=1e-12)
    # pad: 14 x 14 with 3 rows of fill_value above and below, then the resize.
    padded = np.full((2, 14, 14, 3), 7.0)
    padded[:, 3:11] = x
    got = Resizing(7, 7, pad_to_aspect_ratio=True, fill_value=7.0, dtype="float64")(x).numpy()
    np.testing.assert_allclose(got, ref_resize_bilinear(padded, 7, 7), rtol=1e-12)


def test_resizing_same_size_is_exact_copy():
    x = images((2, 6, 5, 3), np.float32)
    np.testing.assert_array_equal(Resizing(6, 5)(x).numpy(), x)


def test_center_crop_slices_or_smart_resizes():
    x = images((2, 9, 12, 3))
    got = CenterCrop(5, 6, dtype="float64")(x).numpy()
    np.testing.assert_array_equal(got, x[:, 2:7, 3:9])
    # Smaller than the target: the largest centered 8:4 window (9 x 4.5 -> 9 x 4), resized.
    got = CenterCrop(16, 8, dtype="float64")(x).numpy()
    np.testing.assert_allclose(got, ref_resize_bilinear(x[:, :, 4:8], 16, 8), rtol=1e-12)


@pytest.mark.parametrize("linear", [True, False])
def test_resample_backward_is_the_transpose(linear):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 9, 2))
    layer = Resizing(11, 4, interpolation="bilinear" if linear else "nearest",
                     dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x)
    g = rng.standard_normal(y.shape)
    dx = ctx.backward(g)
    assert np.isclose(np.sum(y * g), np.sum(x * dx), rtol=1e-12)


# ---- affine kernel ----

@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_matches_keras_map_coordinates(interpolation, fill_mode, dtype):
    x = images((4, 7, 9, 3), dtype, seed=4)
    t = random_affine(4, 7, 9, seed=5)
    y = np.empty_like(x)
    _image.affine(x, t, y, interpolation, fill_mode, 3.5)
    want = ref_affine(x, t, interpolation, fill_mode, 3.5)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


def axis_aligned(n, h, w, seed):
    """Transforms without rotation or shear (zoom, translation, mirror): the kernel's
    separable path."""
    rng = np.random.default_rng(seed)
    t = np.zeros((n, 8))
    t[:, 0], t[:, 4] = rng.uniform(0.5, 1.6, n), rng.uniform(0.5, 1.6, n)
    t[:, 2], t[:, 5] = rng.uniform(-w, w, n), rng.uniform(-h, h, n)
    t[0, 0] = -1.0   # a mirror image
    return t


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axis_aligned_affine_matches_keras_and_the_general_path(fill_mode, dtype):
    x = images((5, 7, 9, 3), dtype, seed=9)
    t = axis_aligned(5, 7, 9, seed=10)
    y = np.empty_like(x)
    _image.affine(x, t, y, "bilinear", fill_mode, 3.5)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(y, ref_affine(x, t, "bilinear", fill_mode, 3.5), rtol=tol,
                               atol=tol)
    # A shear of 1e-300 moves no source point (it vanishes against the translation) but
    # takes the general, per-pixel loop: the two paths give the same bits.
    sheared = t.copy()
    sheared[:, 1] = sheared[:, 3] = 1e-300
    general = np.empty_like(x)
    _image.affine(x, sheared, general, "bilinear", fill_mode, 3.5)
    np.testing.assert_array_equal(y, general)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_affine_projective_and_far_points(fill_mode):
    x = images((3, 6, 5, 2), seed=6)
    t = random_affine(3, 6, 5, seed=7)
    t[:, 6:] = [[0.01, -0.02], [0.0, 0.03], [-0.015, 0.0]]
    t[2, 2] = 1e12   # far outside: fill rules, no overflow
    y = np.empty_like(x)
    _image.affine(x, t, y, "bilinear", fill_mode, -1.0)
    np.testing.assert_allclose(y[:2], ref_affine(x[:2], t[:2], "bilinear", fill_mode, -1.0),
                               rtol=1e-10)
    assert np.isfinite(y).all()


def test_fill_modes_on_a_shifted_row():
    # One row a b c d shifted right by 2 (nearest sampling): Keras' documented patterns.
    x = np.arange(1.0, 5.0).reshape(1, 1, 4, 1)
    t = translation_transforms(np.array([2.0]), np.array([0.0]))
    expected = {"reflect": [2, 1, 1, 2], "wrap": [3, 4, 1, 2], "constant": [9, 9, 1, 2],
                "nearest": [1, 1, 1, 2]}
    for mode, row in expected.items():
        y = np.empty_like(x)
        _image.affine(x, t, y, "nearest", mode, 9.0)
        np.testing.assert_array_equal(y.ravel(), row, err_msg=mode)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_affine_backward_is_the_transpose(interpolation, fill_mode):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 6, 7, 2))
    t = random_affine(3, 6, 7, seed=9)
    y = np.empty_like(x)
    _image.affine(x, t, y, interpolation, fill_mode, 0.0)   # linear in x for fill 0
    g = rng.standard_normal(x.shape)
    dx = np.empty_like(x)
    _image.affine_backward(g, t, dx, interpolation, fill_mode)
    assert np.isclose(np.sum(y * g), np.sum(x * dx), rtol=1e-12)


def test_kernels_refuse_bad_arrays():
    x = images((2, 4, 4, 1))
    y = np.empty_like(x)
    t = np.zeros((2, 8))
    with pytest.raises(ValueError, match="fill_mode"):
        _image.affine(x, t, y, "bilinear", "mirror")
    with pytest.raises(ValueError, match="interpolation"):
        _image.affine(x, t, y, "bicubic", "reflect")
    with pytest.raises(ValueError, match="transforms"):
        _image.affine(x, np.zeros((3, 8)), y)
    with pytest.raises(ValueError, match="overlap"):
        _image.affine(x, t, x)
    with pytest.raises(TypeError, match="y"):
        _image.affine(x, t, y.astype(np.float32))
    with pytest.raises(ValueError, match="flags"):
        _image.flip(x, np.zeros(3, np.int32), y)
    rows = (np.array([0, 5]), np.array([0, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="rows0"):
        _image.resample(x, np.empty((2, 2, 2, 1)), *rows, *rows, True)


# ---- flips, contrast, brightness ----

@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_flip_draws_and_flips_exactly(mode):
    x = images((16, 5, 6, 3), np.float32)
    out = RandomFlip(mode, seed=11)(x, training=True).numpy()
    flips = layer_rng(11).random(16) <= 0.5
    assert 0 < flips.sum() < 16
    axes = {"horizontal": (1,), "vertical": (0,), "horizontal_and_vertical": (0, 1)}[mode]
    for i in range(16):
        np.testing.assert_array_equal(out[i], np.flip(x[i], axes) if flips[i] else x[i])


def test_random_contrast_formula_and_draws():
    x = images((5, 6, 7, 3), seed=12)
    layer = RandomContrast((0.3, 0.8), value_range=(10, 240), seed=13, dtype="float64")
    out = layer(x, training=True).numpy()
    factors = layer_rng(13).uniform(1 - 0.3, 1 + 0.8, 5)[:, None, None, None]
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out, np.clip((x - mean) * factors + mean, 10, 240), rtol=1e-12)
    assert (out == 240).any() and (out == 10).any()   # the clipping ran
    # A single number: lower = upper = factor (Keras' documented range [1 - f, 1 + f]).
    assert (RandomContrast(0.2).lower, RandomContrast(0.2).upper) == (0.2, 0.2)


def test_random_brightness_formula_and_draws():
    x = images((6, 4, 5, 3), np.float32, seed=14, scale=1.0)
    layer = RandomBrightness(0.4, value_range=(1.0, 0.0), seed=15)   # sorted, as Keras
    out = layer(x, training=True).numpy()
    deltas = layer_rng(15).uniform(-0.4, 0.4, 6).astype(np.float32)
    np.testing.assert_array_equal(out, np.clip(x + deltas[:, None, None, None], 0, 1))


# ---- geometry of the augmentation layers ----

def test_rotation_quarter_turn_is_counter_clockwise():
    x = images((2, 6, 6, 2), seed=16)
    out = RandomRotation((0.25, 0.25), dtype="float64")(x, training=True).numpy()
    np.testing.assert_allclose(out, np.rot90(x, 1, axes=(1, 2)), atol=1e-9)


def _rotation_draws(rng, h, w):
    return rotation_transforms(rng.uniform(-0.3 * 2 * np.pi, 0.3 * 2 * np.pi, 4), h, w)


def _zoom_draws(rng, h, w):
    height_zooms = rng.uniform(0.6, 1.2, 4)
    return zoom_transforms(height_zooms, rng.uniform(0.5, 1.5, 4), h, w)


def _translation_draws(rng, h, w):
    shift_y = rng.uniform(-0.3, 0.3, 4) * h
    return translation_transforms(rng.uniform(-0.2, 0.1, 4) * w, shift_y)


@pytest.mark.parametrize("make, draws", [
    (lambda: RandomRotation(0.3, fill_mode="constant", fill_value=2.0, seed=17,
                            dtype="float64"), _rotation_draws),
    (lambda: RandomZoom((-0.4, 0.2), width_factor=0.5, fill_mode="wrap", seed=18,
                        interpolation="nearest", dtype="float64"), _zoom_draws),
    (lambda: RandomTranslation(0.3, (-0.2, 0.1), fill_mode="nearest", seed=19,
                               dtype="float64"), _translation_draws),
], ids=["rotation", "zoom", "translation"])
def test_affine_layers_draw_keras_transforms(make, draws):
    x = images((4, 7, 8, 3), seed=20)
    layer = make()
    out = layer(x, training=True).numpy()
    t = draws(layer_rng(layer.seed), 7, 8)
    np.testing.assert_allclose(
        out, ref_affine(x, t, layer.interpolation, layer.fill_mode, layer.fill_value),
        rtol=1e-10, atol=1e-9)


def test_random_zoom_without_width_factor_keeps_aspect_ratio():
    x = images((3, 8, 8, 1), seed=21)
    out = RandomZoom(0.5, seed=22, dtype="float64")(x, training=True).numpy()
    zooms = layer_rng(22).uniform(0.5, 1.5, 3)
    np.testing.assert_allclose(
        out, ref_affine(x, zoom_transforms(zooms, zooms, 8, 8), "bilinear", "reflect"),
        rtol=1e-10)


def test_random_crop_training_and_inference():
    x = images((3, 10, 12, 2), seed=23)
    layer = RandomCrop(6, 5, seed=24, dtype="float64")
    out = layer(x, training=True).numpy()
    rng = layer_rng(24)
    top, left = int(rng.random() * 5), int(rng.random() * 8)
    np.testing.assert_array_equal(out, x[:, top:top + 6, left:left + 5])   # one window
    # Inference: the largest centered 6:5 window (10 x 8, from column 2), resized.
    np.testing.assert_allclose(layer(x).numpy(), ref_resize_bilinear(x[:, :, 2:10], 6, 5),
                               rtol=1e-12)


@pytest.mark.parametrize("layer", [
    RandomFlip(seed=1), RandomRotation(0.2, seed=1), RandomZoom(0.2, seed=1),
    RandomTranslation(0.2, 0.2, seed=1), RandomContrast(0.5, seed=1),
    RandomBrightness(0.5, seed=1)], ids=lambda l: type(l).__name__)
def test_augmentation_is_identity_at_inference(layer):
    x = images((4, 8, 8, 3), np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    assert not np.array_equal(layer(x, training=True).numpy(), x)


def test_single_unbatched_image():
    x = images((8, 8, 3), np.float32)
    layer = RandomRotation(0.2, seed=5)
    out = layer(x, training=True)
    assert out.shape == (8, 8, 3)
    batched = RandomRotation(0.2, seed=5)(x[None], training=True).numpy()
    np.testing.assert_array_equal(out.numpy(), batched[0])
    assert Resizing(4, 5)(x).shape == (4, 5, 3)


# ---- seeds and threads ----

AUGMENTATIONS = [
    lambda seed: RandomFlip(seed=seed), lambda seed: RandomRotation(0.3, seed=seed),
    lambda seed: RandomZoom(0.3, 0.2, seed=seed),
    lambda seed: RandomTranslation(0.2, 0.3, fill_mode="constant", seed=seed),
    lambda seed: RandomCrop(20, 18, seed=seed), lambda seed: RandomContrast(0.4, seed=seed),
    lambda seed: RandomBrightness(0.3, seed=seed)]


@pytest.mark.parametrize("make", AUGMENTATIONS)
def test_same_seed_same_bits_any_thread_count_other_seed_differs(make):
    x = images((16, 32, 32, 3), np.float32)   # above the kernels' parallel threshold
    one = make(7)
    first = [one(x, training=True).numpy() for _ in range(2)]
    assert not np.array_equal(first[0], first[1])   # a new draw per call
    before = minidl.get_num_threads()
    minidl.set_num_threads(2)
    try:
        two = make(7)
        second = [two(x, training=True).numpy() for _ in range(2)]
    finally:
        minidl.set_num_threads(before)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make(8)(x, training=True).numpy(), first[0])


def test_kernels_same_bits_for_one_and_two_threads():
    x = images((16, 32, 32, 3), np.float32)
    t = random_affine(16, 32, 32, seed=1)
    outs = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        y, dx = np.empty_like(x), np.empty_like(x)
        _image.affine(x, t, y, "bilinear", "reflect")
        _image.affine_backward(x, t, dx, "bilinear", "reflect")
        r = np.empty((16, 45, 20, 3), np.float32)
        rows = [np.asarray(a) for a in
                minidl.layers.preprocessing.image.resize_table(32, 45, "bilinear")]
        cols = [np.asarray(a) for a in
                minidl.layers.preprocessing.image.resize_table(32, 20, "bilinear")]
        _image.resample(x, r, *rows, *cols, True)
        outs.append((y, dx, r))
    minidl.set_num_threads(1)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


# ---- gradients ----

@pytest.mark.parametrize("layer", [
    RandomFlip(seed=1, dtype="float64"), RandomRotation(0.2, seed=1, dtype="float64"),
    RandomZoom(0.3, seed=1, fill_mode="constant", dtype="float64"),
    RandomTranslation(0.2, 0.2, seed=1, fill_mode="wrap", dtype="float64"),
    RandomCrop(5, 4, seed=1, dtype="float64"), RandomCrop(9, 9, seed=1, dtype="float64"),
    CenterCrop(5, 5, dtype="float64"), CenterCrop(9, 4, dtype="float64"),
    Resizing(9, 5, pad_to_aspect_ratio=True, dtype="float64")],
    ids=lambda l: type(l).__name__)
def test_linear_layers_backward_is_the_transpose(layer):
    rng = np.random.default_rng(30)
    x = rng.standard_normal((3, 7, 8, 2))
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    dx = ctx.backward(g)
    assert dx.shape == x.shape
    assert np.isclose(np.sum(y * g), np.sum(x * dx), rtol=1e-12)


@pytest.mark.parametrize("layer", [
    RandomContrast((0.2, 0.6), value_range=(-1.5, 1.5), seed=2, dtype="float64"),
    RandomBrightness(0.3, value_range=(-1.5, 1.5), seed=2, dtype="float64")],
    ids=lambda l: type(l).__name__)
def test_value_layers_gradient_matches_central_differences(layer):
    from minidl._ref.gradcheck import numeric_grad
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 3, 4, 2))
    g = rng.standard_normal(x.shape)
    state = layer.get_random_state()

    def loss():
        layer.set_random_state(state)   # the same draw each time
        return float(np.sum(CallContext(layer).forward(x, training=True) * g))
    numeric = numeric_grad(loss, x)
    layer.set_random_state(state)
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    np.testing.assert_allclose(ctx.backward(g), numeric, rtol=1e-6, atol=1e-8)


# ---- models ----

def _model(seed_offset=0):
    return minidl.Sequential([
        Input((12, 12, 3)), RandomFlip("horizontal", seed=1 + seed_offset),
        RandomRotation(0.1, seed=2 + seed_offset),
        RandomZoom(0.1),   # unseeded: draws from fit's training stream
        Conv2D(4, 3, activation="relu"),
        RandomTranslation(0.1, 0.1, seed=4 + seed_offset),   # not first: trains through it
        Flatten(), Dense(3, activation="softmax")])


def _fit(model):
    rng = np.random.default_rng(40)
    x = rng.random((48, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return x, y, history


def test_fit_with_seeds_is_reproducible_and_predict_is_deterministic():
    minidl.utils.set_random_seed(5)
    a = _model()
    x, y, history = _fit(a)
    assert np.isfinite(history.history["loss"]).all()
    minidl.utils.set_random_seed(5)
    b = _model()
    _fit(b)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    # Inference: augmentation off, so predict and evaluate are deterministic.
    np.testing.assert_array_equal(a.predict(x, verbose=0), a.predict(x, verbose=0))
    assert np.isfinite(a.evaluate(x, y, verbose=0))


def test_augmentation_changes_training():
    """Other seeds of the seeded layers (same weights, same batches): other weights."""
    minidl.utils.set_random_seed(5)
    a = _model()
    _fit(a)
    minidl.utils.set_random_seed(5)
    b = _model(seed_offset=10)
    _fit(b)
    assert not np.array_equal(a.get_weights()[0], b.get_weights()[0])


def test_save_and_load_round_trip(tmp_path):
    minidl.utils.set_random_seed(6)
    model = _model()
    x, y, _ = _fit(model)
    path = tmp_path / "augment.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for original, copy in zip(model.layers, loaded.layers):
        assert type(original) is type(copy)
        assert original.get_config() == copy.get_config()
        assert original.get_random_state() == copy.get_random_state()
    # Training resumes with the draws the original would make next.
    batch = x[:4]
    for original, copy in zip(model.layers[:2], loaded.layers[:2]):
        np.testing.assert_array_equal(original(batch, training=True).numpy(),
                                      copy(batch, training=True).numpy())


def test_functional_model_with_resizing_and_center_crop():
    inputs = Input((10, 14, 3))
    hidden = Resizing(8, 8, crop_to_aspect_ratio=True)(inputs)
    hidden = CenterCrop(6, 6)(RandomContrast(0.2, seed=3)(hidden))
    outputs = Dense(2)(Flatten()(hidden))
    model = minidl.Model(inputs, outputs)
    assert model.output_shape == (None, 2)
    x = images((8, 10, 14, 3), np.float32, scale=1.0)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0)
    assert model.predict(x, verbose=0).shape == (8, 2)


# ---- configs and arguments ----

@pytest.mark.parametrize("layer", [
    Resizing(5, 6, interpolation="nearest", pad_to_aspect_ratio=True, fill_value=1.5),
    CenterCrop(3, 4), RandomFlip("vertical", seed=3),
    RandomRotation((-0.1, 0.2), fill_mode="constant", interpolation="nearest", seed=4,
                   fill_value=2.0),
    RandomZoom(0.2, (-0.1, 0.3), seed=5), RandomTranslation(0.1, 0.2, seed=6),
    RandomCrop(4, 5, seed=7), RandomContrast((0.1, 0.2), value_range=(0, 1), seed=8),
    RandomBrightness(0.2, value_range=[0, 1])], ids=lambda l: type(l).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    json.dumps(config)
    copy = type(layer).from_config(config)
    assert copy.get_config() == config
    assert get_layer({"class_name": type(layer).__name__, "config": config}).get_config() \
        == config
    if "seed" in config:
        assert config["seed"] == layer.seed


@pytest.mark.parametrize("make, match", [
    (lambda: RandomRotation(1.5), "factor"),
    (lambda: RandomRotation((0.1, 0.2, 0.3)), "factor"),
    (lambda: RandomRotation("0.2"), "factor"),
    (lambda: RandomRotation(0.2, fill_mode="mirror"), "fill_mode"),
    (lambda: RandomRotation(0.2, interpolation="bicubic"), "interpolation"),
    (lambda: RandomRotation(0.2, fill_value=float("nan")), "fill_value"),
    (lambda: RandomZoom(-1.2), "height_factor"),
    (lambda: RandomZoom(0.2, width_factor=(0.1, 2.0)), "width_factor"),
    (lambda: RandomTranslation(0.1, True), "width_factor"),
    (lambda: RandomContrast(-0.1), "factor"),
    (lambda: RandomContrast(0.2, value_range=(1, 0)), "value_range"),
    (lambda: RandomBrightness(0.2, value_range=(0, 1, 2)), "value_range"),
    (lambda: RandomBrightness((-1.5, 0.2)), "factor"),
    (lambda: RandomFlip("diagonal"), "mode"),
    (lambda: RandomCrop(0, 4), "height"),
    (lambda: Resizing(4, 4, interpolation="lanczos3"), "interpolation"),
    (lambda: Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     "crop_to_aspect_ratio"),
    (lambda: Resizing(4, 4, fill_mode="reflect"), "fill_mode"),
    (lambda: Resizing(4, 4, antialias=True), "antialias"),
    (lambda: Resizing(4, 4, data_format="channels_first"), "data_format"),
])
def test_bad_arguments_raise_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: CenterCrop(4, 2.5), "width"),
    (lambda: RandomCrop(True, 4), "height"),
    (lambda: Resizing(4, 4, crop_to_aspect_ratio="yes"), "crop_to_aspect_ratio"),
])
def test_wrong_typed_arguments_raise_type_error_naming_the_argument(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_bad_seed_and_bad_inputs():
    with pytest.raises((TypeError, ValueError), match="seed"):
        RandomFlip(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        RandomFlip(seed=1.5)
    with pytest.raises(ValueError, match="images"):
        RandomFlip()(np.zeros((4, 5)), training=True)
    with pytest.raises(ValueError, match="images"):
        minidl.Sequential([Input((8, 3)), RandomRotation(0.1)])


@pytest.mark.parametrize("make", [lambda: Resizing(4, 5), lambda: CenterCrop(3, 3),
                                  lambda: RandomFlip(seed=1), lambda: RandomCrop(3, 4, seed=1)])
def test_integer_images_give_float_outputs_symbolic_and_eager(make):
    # As every preprocessing layer: the symbolic output's dtype is the eager output's.
    layer = make()
    images = np.arange(2 * 6 * 7 * 3, dtype=np.int32).reshape(2, 6, 7, 3)
    symbolic = layer(Input((6, 7, 3), dtype="int32"))
    eager = layer(images, training=True)
    assert symbolic.dtype == "float32" and eager.dtype == np.float32
    assert tuple(symbolic.shape[1:]) == eager.shape[1:]
    # A nested list is taken as the array it spells, batch or single image alike.
    np.testing.assert_array_equal(layer(images.tolist()).value, layer(images).value)
    np.testing.assert_array_equal(layer(images[0].tolist()).value, layer(images[0]).value)
