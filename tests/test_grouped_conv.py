"""Conv1D and Conv2D with ``groups > 1``: against PyTorch's grouped convolutions (mapped
weights), against the layer itself run group by group (numpy, no torch), float64 gradient
checks, thread-count determinism, Keras 3 kernel shapes, configs and refusals, and a model
that trains, saves and loads.

A Keras grouped kernel is (k..., channels / groups, filters), group g owning filters
[g * f, (g + 1) * f) with f = filters / groups: torch's (filters, channels / groups, k...).
"""
import math

import numpy as np
import pytest

import minidl
from minidl._ref.gradcheck import check_layer_gradients
from minidl.layers import CallContext, Conv1D, Conv2D, Dense, GlobalAveragePooling2D
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread", "torch_one_thread")

TOL = {"float64": 1e-10, "float32": 1e-5}


def data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def same_pads(n, kernel, stride, dilation):
    out = math.ceil(n / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def assert_scaled(got, want, rtol, what):
    scale = max(float(np.max(np.abs(want))), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=what)


def train_step(layer, x, dy):
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True).copy()
    dx = ctx.backward(dy.copy(), need_input_grad=True)
    return y, (None if dx is None else dx.copy()), [g.copy() for g in ctx.grads]


CASES = [   # filters, kernel_size, strides, padding, dilation, groups, input shape
    (6, (3, 3), (1, 1), "same", (1, 1), 2, (7, 8, 4)),
    (8, (3, 3), (2, 2), "same", (1, 1), 4, (9, 8, 12)),
    (6, (2, 3), (1, 2), "valid", (2, 1), 3, (7, 9, 6)),
    (4, (1, 1), (1, 1), "valid", (1, 1), 2, (5, 5, 6)),     # pointwise groups
    (9, (3, 3), (1, 1), "valid", (1, 1), 3, (6, 7, 3)),     # one channel per group
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[f"g{c[5]}_{c[3]}_{i}" for i, c in enumerate(CASES)])
def test_grouped_conv2d_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    filters, kernel_size, strides, padding, dilation, groups, shape = case
    layer = Conv2D(filters, kernel_size, strides=strides, padding=padding,
                   dilation_rate=dilation, groups=groups, activation="tanh", dtype=dtype,
                   bias_initializer="random_normal")
    layer.build(shape)
    kernel, bias = [w.astype(np.float64) for w in layer.get_weights()]
    assert kernel.shape == kernel_size + (shape[-1] // groups, filters)
    x = data((3,) + shape, 1)
    dy = data((3,) + layer.compute_output_shape(shape), 2)
    y, dx, (dk, db) = train_step(layer, x.astype(dtype), dy.astype(dtype))
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(kernel.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(bias, requires_grad=True)
    src = xt
    if padding == "same":
        (t, b), (l, r) = (same_pads(shape[0], kernel_size[0], strides[0], dilation[0]),
                          same_pads(shape[1], kernel_size[1], strides[1], dilation[1]))
        src = F.pad(xt, (l, r, t, b))
    yt = torch.tanh(F.conv2d(src, wt, bt, stride=strides, dilation=dilation, groups=groups))
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    tol = TOL[dtype]
    want = yt.detach().numpy().transpose(0, 2, 3, 1)
    assert_scaled(y, want, tol, "y")
    assert_scaled(layer(x.astype(dtype)), want, tol, "inference")
    assert_scaled(dx, xt.grad.numpy().transpose(0, 2, 3, 1), tol, "dx")
    assert_scaled(dk.transpose(3, 2, 0, 1), wt.grad.numpy(), tol, "dkernel")
    assert_scaled(db, bt.grad.numpy(), tol, "dbias")


def test_grouped_conv1d_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    layer = Conv1D(6, 3, strides=2, padding="causal", groups=3, dtype="float64",
                   bias_initializer="random_normal")
    x = data((2, 11, 6), 4)
    layer.build((11, 6))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2, 6)
    dy = data((2, 6, 6), 5)
    y, dx, (dk, db) = train_step(layer, x, dy)
    xt = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    wt = torch.tensor(kernel.transpose(2, 1, 0).copy(), requires_grad=True)
    yt = F.conv1d(F.pad(xt, (2, 0)), wt, torch.tensor(bias), stride=2, groups=3)
    yt.backward(torch.tensor(dy.transpose(0, 2, 1)))
    assert_scaled(y, yt.detach().numpy().transpose(0, 2, 1), 1e-10, "y")
    assert_scaled(dx, xt.grad.numpy().transpose(0, 2, 1), 1e-10, "dx")
    assert_scaled(dk.transpose(2, 1, 0), wt.grad.numpy(), 1e-10, "dkernel")


@pytest.mark.parametrize("case", CASES, ids=[f"g{c[5]}_{c[3]}_{i}" for i, c in enumerate(CASES)])
def test_grouped_conv2d_is_one_convolution_per_group(case):
    # No torch: each group's columns of the output are an ungrouped Conv2D of the group's
    # channels with the group's filters.
    filters, kernel_size, strides, padding, dilation, groups, shape = case
    layer = Conv2D(filters, kernel_size, strides=strides, padding=padding,
                   dilation_rate=dilation, groups=groups, dtype="float64",
                   bias_initializer="random_normal")
    x = data((2,) + shape, 6)
    y = layer(x)
    kernel, bias = layer.get_weights()
    per_group, group_filters = shape[-1] // groups, filters // groups
    for g in range(groups):
        single = Conv2D(group_filters, kernel_size, strides=strides, padding=padding,
                        dilation_rate=dilation, dtype="float64")
        single.build(shape[:-1] + (per_group,))
        columns = slice(g * group_filters, (g + 1) * group_filters)
        single.set_weights([kernel[..., columns], bias[columns]])
        np.testing.assert_allclose(y[..., columns],
                                   single(x[..., g * per_group:(g + 1) * per_group]),
                                   rtol=1e-13, atol=1e-13)


def _grouped2d(*args, **kwargs):
    return lambda: Conv2D(*args, dtype="float64", bias_initializer="random_normal", **kwargs)


GRADIENT_CASES = [
    ("g2_same_k3", _grouped2d(4, 3, padding="same", groups=2), (5, 6, 4)),
    ("g3_valid_s2_relu", _grouped2d(6, 3, strides=2, groups=3, activation="relu"), (7, 6, 3)),
    ("g2_k1", _grouped2d(4, 1, groups=2), (4, 5, 6)),
    ("conv1d_g2_causal_d2", lambda: Conv1D(4, 3, padding="causal", dilation_rate=2, groups=2,
                                           dtype="float64", bias_initializer="random_normal"),
     (9, 4)),
]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=[c[0] for c in GRADIENT_CASES])
def test_grouped_conv_gradients(case):
    _, factory, in_shape = case
    set_random_seed(0)
    check_layer_gradients(factory(), data((2,) + in_shape, 11))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grouped_conv_gives_the_same_bits_for_any_thread_count(dtype):
    x = data((16, 20, 20, 16), 21).astype(dtype)
    results = []
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        set_random_seed(0)
        layer = Conv2D(32, 3, padding="same", groups=4, activation="relu", dtype=dtype)
        inference = layer(x)
        y, dx, grads = train_step(layer, x, data((16, 20, 20, 32), 22).astype(dtype))
        results.append((inference, y, dx, *grads))
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)


def test_grouped_conv_config_round_trip():
    layer = Conv2D(8, 3, groups=4)
    config = layer.get_config()
    assert config["groups"] == 4
    assert Conv2D.from_config(config).get_config() == config


@pytest.mark.parametrize("make, field", [
    (lambda: Conv2D(6, 3, groups=0), "groups"),
    (lambda: Conv2D(6, 3, groups=-1), "groups"),
    (lambda: Conv2D(6, 3, groups=4), "groups"),       # 6 filters in 4 groups
    (lambda: Conv1D(6, 3, groups=1.5), "groups"),
    (lambda: Conv1D(6, 3, groups=True), "groups"),
])
def test_grouped_conv_refuses_bad_groups(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_grouped_conv_refuses_channels_not_divisible():
    with pytest.raises(ValueError, match="evenly divisible by the number of groups.*5 channels"):
        Conv2D(6, 3, groups=3).build((8, 8, 5))


def test_grouped_conv_model_trains_saves_and_loads(tmp_path):
    set_random_seed(3)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 8, 8, 4)).astype("float32")
    labels = (x[..., :2].mean(axis=(1, 2, 3)) > x[..., 2:].mean(axis=(1, 2, 3))).astype("int64")
    model = Sequential([minidl.Input((8, 8, 4)), Conv2D(8, 3, padding="same", groups=2,
                                                        activation="relu"),
                        Conv2D(8, 3, strides=2, groups=4), GlobalAveragePooling2D(),
                        Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, labels, epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "grouped.minidl"
    model.save(path)
    loaded = load_model(path)
    assert loaded.layers[0].groups == 2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
