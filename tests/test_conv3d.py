"""Conv3D and the 3-D kernels (minidl/_core/_conv3d.pyx): vol2col / col2vol against numpy,
the layer against PyTorch's conv3d (float64 and float32: output, input and weight gradients),
float64 finite-difference gradient checks, thread-count determinism, Keras' output shapes
(from Keras 3.15.1), errors, config, saving and training.

PyTorch pads symmetrically, so the helper pads as TensorFlow does for Keras' 'same' (the
smaller half of the zeros before the volume), with ``F.pad``; kernels: Keras (kd, kh, kw,
channels, filters) is torch's (filters, channels, kd, kh, kw).
"""
import json

import numpy as np
import pytest

import minidl
from minidl._core import _conv3d
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import CallContext, Conv3D, Conv3DTranspose, Convolution3D, Dense, Flatten
from minidl.layers import Input
from minidl.layers import get as get_layer
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")

# (sample shape, arguments, output sample shape), from Keras 3.15.1.
KERAS_SHAPES = [
    ((6, 7, 8, 2), dict(filters=4, kernel_size=(3, 2, 3), strides=(2, 1, 3), padding="same"),
     (3, 7, 3, 4)),
    ((6, 7, 8, 2), dict(filters=4, kernel_size=3, padding="valid", dilation_rate=(1, 2, 2)),
     (4, 3, 4, 4)),
    ((5, 5, 5, 1), dict(filters=1, kernel_size=(1, 2, 5), strides=2, padding="valid"),
     (3, 2, 1, 1)),
]


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def keras_pads(n, kernel, stride, padding, dilation):
    """(before, after) zeros along one axis, as TensorFlow pads for Keras."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    out = -(-n // stride)
    total = max((out - 1) * stride + span - n, 0)
    return total // 2, total - total // 2


def torch_conv3d(x, kernel, bias, dy, strides, padding, dilation):
    """(y, dx, dkernel, dbias) of a Keras Conv3D by PyTorch autograd; dy given."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)), requires_grad=True)
    kt = torch.tensor(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2)), requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    pads = [keras_pads(n, k, s, padding, d) for n, k, s, d in
            zip(x.shape[1:4], kernel.shape[:3], strides, dilation)]
    flat = [p for pair in reversed(pads) for p in pair]   # F.pad: last axis first
    y = F.conv3d(F.pad(xt, flat), kt, bt, stride=strides, dilation=dilation)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 4, 1, 2, 3))))
    last = (0, 2, 3, 4, 1)
    return (y.detach().numpy().transpose(last), xt.grad.numpy().transpose(last),
            kt.grad.numpy().transpose(2, 3, 4, 1, 0), None if bt is None else bt.grad.numpy())


def numpy_vol2col(x, kernel_size, strides, dilation, pads, out_shape):
    """The patch matrix by plain loops: rows (image, z, y, x), columns (kz, ky, kx, c)."""
    n, d, h, w, c = x.shape
    rows = []
    for img in range(n):
        for oz in range(out_shape[0]):
            for oy in range(out_shape[1]):
                for ox in range(out_shape[2]):
                    row = []
                    for kz in range(kernel_size[0]):
                        for ky in range(kernel_size[1]):
                            for kx in range(kernel_size[2]):
                                iz = oz * strides[0] - pads[0] + kz * dilation[0]
                                iy = oy * strides[1] - pads[1] + ky * dilation[1]
                                ix = ox * strides[2] - pads[2] + kx * dilation[2]
                                inside = 0 <= iz < d and 0 <= iy < h and 0 <= ix < w
                                row.append(x[img, iz, iy, ix] if inside else np.zeros(c))
                    rows.append(np.concatenate(row))
    return np.array(rows)


GEOMETRIES = [   # kernel_size, strides, dilation, pads, out_shape, for volumes (4, 5, 6, 2)
    ((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), (4, 5, 6)),
    ((2, 3, 1), (2, 1, 3), (1, 1, 1), (0, 1, 0), (2, 5, 2)),
    ((2, 2, 3), (1, 1, 1), (2, 1, 2), (0, 0, 2), (2, 4, 4)),
    ((5, 1, 2), (3, 2, 1), (1, 1, 1), (2, 0, 0), (2, 3, 5)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vol2col_and_col2vol_match_numpy(geometry, dtype):
    x = data((2, 4, 5, 6, 2), 1, dtype)
    want = numpy_vol2col(x, *geometry)
    cols = np.full(want.shape, np.nan, dtype)
    _conv3d.vol2col(x, cols, *geometry)
    np.testing.assert_array_equal(cols, want)
    # col2vol is vol2col's adjoint: <vol2col(x), g> == <x, col2vol(g)>
    g = data(want.shape, 2)
    back = np.full(x.shape, np.nan)
    _conv3d.col2vol(g, back, *geometry)
    assert np.isclose(np.sum(want * g), np.sum(x * back), rtol=1e-12)


def test_kernel_functions_refuse_bad_arguments():
    geometry = GEOMETRIES[0]
    x = np.zeros((1, 4, 5, 6, 2))
    with pytest.raises(ValueError, match="cols must have shape"):
        _conv3d.vol2col(x, np.zeros((3, 54)), *geometry)
    with pytest.raises(ValueError, match="must have 5 dimensions"):
        _conv3d.vol2col(x[0], np.zeros((120, 54)), *geometry)
    with pytest.raises(TypeError, match="dtype float64"):
        _conv3d.vol2col(x, np.zeros((120, 54), np.float32), *geometry)
    with pytest.raises(ValueError, match="invalid geometry"):
        _conv3d.vol2col(x, np.zeros((120, 54)), (0, 3, 3), *geometry[1:])
    with pytest.raises(ValueError, match="triples"):
        _conv3d.vol2col(x, np.zeros((120, 54)), (3, 3), *geometry[1:])
    kernel, z = np.zeros((54, 3)), np.zeros((120, 3))
    with pytest.raises(ValueError, match="cols must have at least 120 rows of 54"):
        _conv3d.conv3d_forward(x, kernel, z, np.zeros((10, 54)), 1, False, *geometry)
    with pytest.raises(ValueError, match="kernel must have 54 rows"):
        _conv3d.conv3d_forward(x, kernel[:50], z, np.zeros((120, 54)), 1, False, *geometry)
    with pytest.raises(ValueError, match="pointwise needs"):
        _conv3d.conv3d_forward(x, kernel, z, None, 1, True, *geometry)
    with pytest.raises(ValueError, match="nothing to compute"):
        _conv3d.conv3d_backward(z, kernel, 1, False, *geometry)
    with pytest.raises(ValueError, match="x and d_kernel go together"):
        _conv3d.conv3d_backward(z, kernel, 1, False, *geometry, x=x)


# ---- the layer against PyTorch ----

CASES = [   # kernel_size, strides, padding, dilation
    ((3, 3, 3), (1, 1, 1), "same", (1, 1, 1)),
    ((2, 3, 1), (2, 1, 3), "valid", (1, 1, 1)),
    ((2, 2, 3), (2, 2, 2), "same", (1, 1, 1)),
    ((3, 2, 2), (1, 1, 1), "valid", (2, 1, 2)),
    ((2, 3, 2), (1, 1, 1), "same", (1, 2, 2)),
    ((1, 1, 1), (1, 1, 1), "valid", (1, 1, 1)),   # pointwise: no patches
    ((1, 1, 1), (2, 1, 2), "same", (1, 1, 1)),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel_size, strides, padding, dilation", CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_conv3d_matches_torch(kernel_size, strides, padding, dilation, dtype):
    layer = Conv3D(3, kernel_size, strides=strides, padding=padding, dilation_rate=dilation,
                   dtype=dtype)
    shape = (5, 6, 5, 2)
    layer.build(shape)
    kernel, bias = data(layer.kernel.shape, 1), data((3,), 2)
    layer.set_weights([kernel, bias])
    x = data((2,) + shape, 3)
    ctx = CallContext(layer)
    y = ctx.forward(x.astype(dtype), training=True)
    dy = data(y.shape, 4)
    dx = ctx.backward(dy.astype(dtype), need_input_grad=True)
    want = torch_conv3d(x, kernel, bias, dy, strides, padding, dilation)
    rtol = 1e-10 if dtype == "float64" else 1e-5
    for got, expected, name in zip([y, dx] + list(ctx.grads), want,
                                   ["output", "input gradient", "kernel", "bias"]):
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=0,
                                   atol=rtol * max(np.abs(expected).max(), 1.0), err_msg=name)
    np.testing.assert_array_equal(layer(x.astype(dtype)), y)


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv3D(2, (2, 3, 2), strides=(1, 2, 1), padding="same", activation="tanh",
                    dtype="float64"), (3, 4, 3, 2)),
    (lambda: Conv3D(2, 2, dilation_rate=(2, 1, 1), use_bias=False, dtype="float64"),
     (3, 3, 2, 2)),
], ids=["same", "dilated"])
def test_gradients_by_finite_differences(make, shape):
    check_layer_gradients(make(), data((2,) + shape, 5))


def test_first_layer_skips_the_input_gradient():
    layer = Conv3D(2, 3, padding="same", dtype="float64")
    x = data((2, 3, 4, 3, 2), 6)
    layer.build(x.shape[1:])
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    assert ctx.backward(np.ones_like(y), need_input_grad=False) is None
    kernel_grad = ctx.grads[0].copy()
    ctx.forward(x, training=True)
    ctx.backward(np.ones_like(y), need_input_grad=True)
    np.testing.assert_array_equal(ctx.grads[0], kernel_grad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_bits_for_any_thread_count(dtype):
    x = data((6, 6, 7, 6, 4), 7, dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = Conv3D(8, 3, padding="same", activation="relu", dtype=dtype)
        layer.build(x.shape[1:])
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True).copy()
        dx = ctx.backward(data(y.shape, 8, dtype), need_input_grad=True)
        results.append([y, dx.copy()] + [g.copy() for g in ctx.grads])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- shapes, arguments, errors ----

@pytest.mark.parametrize("shape, kwargs, want", KERAS_SHAPES)
def test_output_shapes_follow_keras(shape, kwargs, want):
    layer = Conv3D(**kwargs)
    assert layer.compute_output_shape(shape) == want
    assert layer(np.zeros((1,) + shape, np.float32)).shape == (1,) + want


def test_keras_shapes_match_keras():
    """Recomputes the table above with Keras itself (not installed in CI)."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for shape, kwargs, want in KERAS_SHAPES:
        layer = keras.layers.Conv3D(**kwargs)
        assert tuple(layer.compute_output_shape((None,) + shape))[1:] == want


def test_weights_follow_keras():
    layer = Conv3D(5, (3, 2, 1))
    layer.build((6, 6, 6, 4))
    assert [(w.name, w.shape) for w in layer.weights] == [("kernel", (3, 2, 1, 4, 5)),
                                                          ("bias", (5,))]
    assert layer.count_params() == 3 * 2 * 4 * 5 + 5


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: Conv3D(2, 3, strides=2, dilation_rate=2), ValueError,
     r"`strides > 1` not supported in conjunction with `dilation_rate > 1`"),
    (lambda: Conv3D(0, 3), ValueError, "filters must be a positive int; received filters=0"),
    (lambda: Conv3D(2, (3, 3)), ValueError, "kernel_size must be an int or a tuple of 3 ints"),
    (lambda: Conv3D(2, 3, padding="causal"), ValueError, "received padding='causal'"),
    (lambda: Conv3D(2, 3, groups=2), ValueError, "groups=1 only"),
    (lambda: Conv3D(2, 3, data_format="NCDHW"), ValueError, "data_format"),
])
def test_constructor_errors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_input_errors():
    with pytest.raises(ValueError, match=r"expects 5-D input \(batch, depth, height, width, "
                                         r"channels\)"):
        Conv3D(2, 3).build((5, 5, 3))
    with pytest.raises(ValueError, match="larger than its input"):
        Conv3D(2, 3).build((2, 5, 5, 3))
    with pytest.raises(ValueError, match="needs a known number of channels"):
        Conv3D(2, 3).build((5, 5, 5, None))


def test_config_round_trip():
    layer = Conv3D(3, (3, 2, 1), strides=(1, 2, 1), padding="same", activation="relu",
                   kernel_regularizer="l2", name="c3")
    config = layer.get_config()
    json.dumps(config)
    assert {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
            "groups", "activation", "use_bias"} <= set(config)
    assert Conv3D.from_config(config).get_config() == config
    assert type(get_layer({"class_name": "Convolution3D", "config": config})) is Conv3D
    assert Convolution3D is Conv3D


def test_unknown_spatial_sizes():
    inputs = Input((None, None, None, 2))
    model = minidl.Model(inputs, Conv3D(2, 3, padding="same")(inputs))
    for size in [(3, 4, 5), (2, 2, 2)]:
        assert model.predict(np.ones((1,) + size + (2,), np.float32), verbose=0).shape == \
            (1,) + size + (2,)


def test_volume_model_fits_saves_and_loads(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((32, 4, 6, 6, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3, 4)) > 0).astype(np.int64)
    set_random_seed(2)
    model = Sequential([Input((4, 6, 6, 1)), Conv3D(4, 3, activation="relu", padding="same"),
                        Conv3D(2, 2, strides=2), Conv3DTranspose(2, 2, strides=2),
                        Flatten(), Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    losses = model.fit(x, y, epochs=4, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    path = tmp_path / "volumes.minidl"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
