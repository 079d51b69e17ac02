"""Activation kernels against the numpy reference, gradient checks, stability and the API."""
import inspect

import numpy as np
import pytest

import minidl
from minidl import activations
from minidl._core import _activations as kernels
from minidl._ref import activations as ref
from minidl._ref.gradcheck import numeric_grad

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}

# (kind, params) pairs covering every kernel kind and each parameterised variant.
CASES = [
    ("linear", ()), ("relu", ()), ("relu6", ()), ("leaky_relu", (0.2,)),
    ("relu_general", (0.1, np.inf, 0.5)), ("relu_general", (0.0, 2.5, 0.0)),
    ("relu_general", (0.3, 4.0, -0.5)), ("sigmoid", ()), ("hard_sigmoid", ()), ("tanh", ()),
    ("elu", (1.0,)), ("elu", (0.5,)), ("selu", ()), ("gelu", ()), ("gelu_tanh", ()),
    ("softplus", ()), ("softsign", ()), ("silu", ()), ("hard_silu", ()), ("exponential", ()),
    ("mish", ()), ("softmax", ()),
]
CASE_IDS = [f"{k}{p}" for k, p in CASES]

# Every activation object, through the public constructors, for the gradient checks.
OBJECTS = [
    activations.Linear(), activations.ReLU(), activations.ReLU(negative_slope=0.1),
    activations.ReLU(max_value=6.0), activations.ReLU(max_value=2.0, threshold=0.5),
    activations.ReLU(negative_slope=0.2, max_value=3.0, threshold=-0.4), activations.ReLU6(),
    activations.LeakyReLU(), activations.Sigmoid(), activations.HardSigmoid(),
    activations.Tanh(), activations.ELU(), activations.ELU(alpha=0.3), activations.SELU(),
    activations.GELU(), activations.GELU(approximate=True), activations.Softplus(),
    activations.Softsign(), activations.SiLU(), activations.HardSiLU(),
    activations.Exponential(), activations.Mish(), activations.Softmax(),
]


def data(shape, dtype, seed=0, scale=2.5):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.fixture
def threads():
    """Restores the thread count after a test that changes it."""
    before = minidl.get_num_threads()
    yield
    minidl.set_num_threads(before)


def test_reference_mirrors_kernel_signatures():
    assert kernels.KINDS == ref.KINDS
    for name in ("forward", "backward", "forward_bias", "backward_bias"):
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,params", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (33, 5)])
def test_forward_backward_match_reference(kind, params, dtype, shape):
    z, dy = data(shape, dtype, 1), data(shape, dtype, 2)
    y, y_ref = np.empty_like(z), np.empty_like(z)
    kernels.forward(kind, params, z, y)
    ref.forward(kind, params, z, y_ref)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    g, g_ref = np.empty_like(z), np.empty_like(z)
    kernels.backward(kind, params, z, y_ref, dy, g)
    ref.backward(kind, params, z, y_ref, dy, g_ref)
    np.testing.assert_allclose(g, g_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,params", CASES, ids=CASE_IDS)
def test_bias_fusions_match_reference(kind, params, dtype):
    z0, bias, dy = data((19, 11), dtype, 3), data((11,), dtype, 4), data((19, 11), dtype, 5)
    z, z_ref = z0.copy(), z0.copy()
    y, y_ref = np.empty_like(z), np.empty_like(z)
    kernels.forward_bias(kind, params, z, bias, y)
    ref.forward_bias(kind, params, z_ref, bias, y_ref)
    np.testing.assert_allclose(z, z_ref, **TOL[dtype])
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    dz, dz_ref = np.empty_like(z), np.empty_like(z)
    db, db_ref = np.empty_like(bias), np.empty_like(bias)
    kernels.backward_bias(kind, params, z_ref, y_ref, dy, dz, db)
    ref.backward_bias(kind, params, z_ref, y_ref, dy, dz_ref, db_ref)
    np.testing.assert_allclose(dz, dz_ref, **TOL[dtype])
    np.testing.assert_allclose(db, db_ref, rtol=TOL[dtype]["rtol"], atol=20 * TOL[dtype]["atol"])


@pytest.mark.parametrize("kind,params", CASES, ids=CASE_IDS)
def test_bias_none_is_plain_forward_and_backward(kind, params):
    z, dy = data((6, 9), np.float64, 6), data((6, 9), np.float64, 7)
    y1, y2 = np.empty_like(z), np.empty_like(z)
    kernels.forward_bias(kind, params, z.copy(), None, y1)
    kernels.forward(kind, params, z, y2)
    np.testing.assert_array_equal(y1, y2)
    g1, g2 = np.empty_like(z), np.empty_like(z)
    kernels.backward_bias(kind, params, z, y2, dy, g1, None)
    kernels.backward(kind, params, z, y2, dy, g2)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize("shape", [(300, 257), (40000, 3)])
@pytest.mark.parametrize("kind", ["relu", "tanh", "gelu", "softmax"])
def test_thread_count_does_not_change_bits(kind, shape, threads):
    z0, dy = data(shape, np.float32, 8), data(shape, np.float32, 10)
    bias = data(shape[1:], np.float32, 9)
    assert z0.size >= kernels.PARALLEL_MIN
    results = []
    for n in (1, 2):
        minidl.set_num_threads(n)
        z, y, dz, db = z0.copy(), np.empty_like(z0), np.empty_like(z0), np.empty_like(bias)
        kernels.forward_bias(kind, (), z, bias, y)
        kernels.backward_bias(kind, (), z, y, dy, dz, db)
        results.append((z, y, dz, db))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_large_arrays_match_reference_on_the_parallel_path(threads):
    minidl.set_num_threads(2)
    z, dy = data((257, 300), np.float64, 11), data((257, 300), np.float64, 12)
    bias = data((300,), np.float64, 13)
    y, y_ref = np.empty_like(z), np.empty_like(z)
    zk, zr = z.copy(), z.copy()
    kernels.forward_bias("silu", (), zk, bias, y)
    ref.forward_bias("silu", (), zr, bias, y_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-13)
    dz, dz_ref = np.empty_like(z), np.empty_like(z)
    db, db_ref = np.empty_like(bias), np.empty_like(bias)
    kernels.backward_bias("silu", (), zr, y_ref, dy, dz, db)
    ref.backward_bias("silu", (), zr, y_ref, dy, dz_ref, db_ref)
    np.testing.assert_allclose(dz, dz_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(db, db_ref, rtol=1e-10, atol=1e-10)


# ---- gradient checks (central differences, float64) ----



def away_from_kinks(shape, seed):
    """Random inputs at least 0.05 from every kink of the piecewise activations tested."""
    z = data(shape, np.float64, seed, scale=2.0)
    kinks = np.array([0.0, 0.5, -0.4, 2.0, 2.5, 3.0, -3.0, 6.0])
    near = np.abs(z[..., None] - kinks).min(axis=-1) < 0.05
    return np.where(near, z + 0.1, z)


@pytest.mark.parametrize("act", OBJECTS, ids=repr)
def test_backward_gradcheck(act):
    z, dy = away_from_kinks((3, 7), 14), data((3, 7), np.float64, 15)
    y = act.forward(z, np.empty_like(z))
    g = act.backward(z, y, dy, np.empty_like(z))
    expected = numeric_grad(lambda: float(np.sum(dy * act(z))), z)
    np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("act", OBJECTS, ids=repr)
def test_backward_bias_gradcheck(act):
    z0, dy, bias = away_from_kinks((4, 5), 16), data((4, 5), np.float64, 17), np.zeros(5)
    z, y = z0.copy(), np.empty_like(z0)
    act.forward_bias(z, bias, y)
    dz, db = np.empty_like(z), np.empty(5)
    act.backward_bias(z, y, dy, dz, db)
    expected_db = numeric_grad(lambda: float(np.sum(dy * act(z0 + bias))), bias)
    expected_dz = numeric_grad(lambda: float(np.sum(dy * act(z0))), z0)
    np.testing.assert_allclose(db, expected_db, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dz, expected_dz, rtol=1e-6, atol=1e-7)


# ---- stability ----

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "softplus", "tanh", "silu", "mish",
                                  "elu", "selu", "gelu", "softsign", "hard_sigmoid"])
def test_extreme_inputs_stay_finite(name, dtype):
    x = np.array([[1e4, -1e4, 0.0, 88.0, -88.0, 1e4]], dtype=dtype)
    act = activations.get(name)
    y = act(x)
    assert np.all(np.isfinite(y)), (name, y)
    g = act.backward(x, y, np.ones_like(x), np.empty_like(x))
    assert np.all(np.isfinite(g)), (name, g)


@pytest.mark.parametrize("kind,exact", [
    ("exponential", np.exp),
    ("tanh", np.tanh),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
])
def test_float32_math_is_within_a_few_ulp(kind, exact):
    # exp, tanh and sigmoid have hand-written float32 versions (so that they vectorise).
    x = np.concatenate([np.linspace(-86, 88.7, 300001), np.linspace(-1, 1, 20001),
                        np.logspace(-30, 1, 2000), -np.logspace(-30, 1, 2000)])
    x = x.astype(np.float32).reshape(1, -1)
    y = np.empty_like(x)
    kernels.forward(kind, (), x, y)
    want = exact(x.astype(np.float64))
    ulp = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    ulp = np.maximum(ulp, np.finfo(np.float32).tiny)   # sigmoid's tail flushes below e^-86
    assert np.max(np.abs(y - want) / ulp) <= 2.5


def test_float32_math_special_values():
    x = np.array([[np.inf, -np.inf, np.nan, 88.8, -1e4, 0.0, -0.0]], np.float32)
    y = np.empty_like(x)
    kernels.forward("exponential", (), x, y)
    np.testing.assert_array_equal(y, [[np.inf, 0, np.nan, np.inf, 0, 1, 1]])
    kernels.forward("tanh", (), x, y)
    np.testing.assert_array_equal(y, [[1, -1, np.nan, 1, -1, 0, -0.0]])
    kernels.forward("sigmoid", (), x, y)
    np.testing.assert_array_equal(y, [[1, 0, np.nan, 1, 0, 0.5, 0.5]])


def test_extreme_values_are_exact_limits():
    x = np.array([1e4, -1e4], dtype=np.float32)
    np.testing.assert_array_equal(activations.sigmoid(x), [1.0, 0.0])
    np.testing.assert_array_equal(activations.softplus(x), [1e4, 0.0])
    np.testing.assert_array_equal(activations.softmax(np.array([[1e4, -1e4, 1e4]])),
                                  [[0.5, 0.0, 0.5]])


# ---- the API objects ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_aliasing(dtype):
    act = activations.get("tanh")
    z, dy = data((5, 6), dtype, 18), data((5, 6), dtype, 19)
    y = act(z)
    g = act.backward(z, y, dy, np.empty_like(z))
    dy_alias = dy.copy()
    act.backward(z, y, dy_alias, dy_alias)
    np.testing.assert_array_equal(dy_alias, g)
    z_alias = z.copy()
    act.forward(z_alias, z_alias)
    np.testing.assert_array_equal(z_alias, y)
    bias = data((6,), dtype, 20)
    zb = z.copy()
    act.forward_bias(zb, bias, zb)
    np.testing.assert_allclose(zb, np.tanh(z + bias), **TOL[dtype])


def test_backward_bias_with_dz_aliasing_dy():
    act = activations.get("sigmoid")
    z, dy = data((9, 4), np.float64, 21), data((9, 4), np.float64, 22)
    y = act(z)
    dz, db = np.empty_like(z), np.empty(4)
    act.backward_bias(z, y, dy, dz, db)
    dy2, db2 = dy.copy(), np.empty(4)
    act.backward_bias(z, y, dy2, dy2, db2)
    np.testing.assert_array_equal(dy2, dz)
    np.testing.assert_array_equal(db2, db)


def test_backward_without_y_recomputes_it():
    act = activations.get("sigmoid")
    z, dy = data((3, 4), np.float64, 23), data((3, 4), np.float64, 24)
    with_y = act.backward(z, act(z), dy, np.empty_like(z))
    np.testing.assert_array_equal(act.backward(z, None, dy, np.empty_like(z)), with_y)


def test_higher_rank_inputs_use_the_last_axis():
    act = activations.Softmax()
    z = data((2, 3, 4), np.float64, 25)
    y = act(z)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
    bias = data((4,), np.float64, 26)
    zb, out = z.copy(), np.empty_like(z)
    act.forward_bias(zb, bias, out)
    np.testing.assert_allclose(out, act(z + bias), rtol=1e-12)
    dz, db = np.empty_like(z), np.empty(4)
    dy = data((2, 3, 4), np.float64, 27)
    act.backward_bias(zb, out, dy, dz, db)
    np.testing.assert_allclose(db, dz.reshape(-1, 4).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_softmax_other_axes(axis):
    act = activations.Softmax(axis=axis)
    z, dy = data((3, 5, 2), np.float64, 28), data((3, 5, 2), np.float64, 29)
    y = act(z)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=axis, keepdims=True), rtol=1e-12)
    g = act.backward(z, y, dy, np.empty_like(z))
    expected = y * (dy - np.sum(dy * y, axis=axis, keepdims=True))
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-15)
    z_before = z.copy()
    act.forward(z, np.empty_like(z))
    np.testing.assert_array_equal(z, z_before)


def test_empty_arrays():
    act = activations.get("relu")
    z = np.empty((0, 4), np.float32)
    act.forward(z, np.empty_like(z))
    db = np.full(4, 7.0, np.float32)
    act.backward_bias(z, z, z, np.empty_like(z), db)
    np.testing.assert_array_equal(db, 0.0)


# ---- Keras-style functions ----

def test_keras_documented_values():
    x = [-10, -5, 0.0, 5, 10]
    np.testing.assert_array_equal(activations.relu(x), [0, 0, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, negative_slope=0.5), [-5, -2.5, 0, 5, 10])
    np.testing.assert_array_equal(activations.relu(x, max_value=5.0), [0, 0, 0, 5, 5])
    np.testing.assert_array_equal(activations.relu(x, threshold=5.0), [0, 0, 0, 0, 10])
    np.testing.assert_allclose(activations.leaky_relu([-1.0, 2.0]), [-0.2, 2.0])
    np.testing.assert_allclose(activations.hard_sigmoid([-4.0, 0.0, 1.5, 4.0]),
                               [0.0, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(activations.gelu([1.0]), [0.8413447460685429], rtol=1e-6)
    np.testing.assert_allclose(activations.gelu([1.0], approximate=True), [0.8411919906082768],
                               rtol=1e-6)
    np.testing.assert_allclose(activations.selu([-1.0, 1.0]),
                               [-1.1113307378125625, 1.0507009873554805], rtol=1e-6)


def test_function_defaults_follow_keras():
    assert inspect.signature(activations.relu).parameters["max_value"].default is None
    assert inspect.signature(activations.leaky_relu).parameters["negative_slope"].default == 0.2
    assert inspect.signature(activations.gelu).parameters["approximate"].default is False
    assert inspect.signature(activations.softmax).parameters["axis"].default == -1
    assert inspect.signature(activations.elu).parameters["alpha"].default == 1.0
    assert activations.swish is activations.silu


def test_function_input_dtypes():
    assert activations.relu([1, 2]).dtype == np.float32
    assert activations.tanh(np.array([0.5], np.float16)).dtype == np.float16
    assert activations.tanh(np.array([0.5])).dtype == np.float64
    strided = np.arange(12.0).reshape(3, 4)[:, ::2]
    np.testing.assert_allclose(activations.sigmoid(strided), 1 / (1 + np.exp(-strided)))


# ---- lookup and config ----

def test_get_and_serialize_round_trip_every_name():
    for name in activations.ACTIVATIONS.names():
        act = activations.get(name)
        assert isinstance(act, activations.Activation)
        assert activations.get(activations.serialize(act)) == act
        assert activations.get(act.name) == act


def test_get_variants():
    assert isinstance(activations.get(None), activations.Linear)
    act = activations.ELU(alpha=0.5)
    assert activations.get(act) is act
    assert activations.serialize(act) == {"class_name": "ELU", "config": {"alpha": 0.5}}
    assert activations.get(activations.serialize(act)) == act
    assert activations.get("swish").name == "silu"
    assert activations.get("Leaky_ReLU") == activations.LeakyReLU()
    assert activations.get(activations.gelu) == activations.GELU()
    approx = activations.GELU(True)
    assert activations.GELU.from_config(approx.get_config()) == approx
    assert activations.ReLU(max_value=6).kernel_params() == ("relu6", ())


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="Unknown activation 'relu7'.*relu6.*tanh"):
        activations.get("relu7")
    with pytest.raises(ValueError, match="Could not interpret activation"):
        activations.get(42)
    with pytest.raises(ValueError, match="Unknown activation kernel kind"):
        kernels.forward("nope", (), np.zeros((1, 1)), np.zeros((1, 1)))


def test_bad_parameters_echo_the_value():
    with pytest.raises(ValueError, match="negative_slope=-1"):
        activations.ReLU(negative_slope=-1)
    with pytest.raises(ValueError, match="max_value=-2"):
        activations.ReLU(max_value=-2)
    with pytest.raises(ValueError, match="alpha='x'"):
        activations.ELU(alpha="x")
    with pytest.raises(ValueError, match="axis=1.5"):
        activations.Softmax(axis=1.5)


def test_array_checks_give_clear_errors():
    act = activations.get("relu")
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        act.forward(z, np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match=r"out must have the shape of z \(2, 3\)"):
        act.forward(z, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        act.forward(np.zeros((3, 2), np.float32).T, z)
    with pytest.raises(TypeError, match="float32 or float64"):
        act.forward(np.zeros((2, 3), np.int32), z)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        act.forward([[0.0]], z)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        act.forward_bias(z, np.zeros(2, np.float32), z)
    with pytest.raises(ValueError, match=r"dbias must have shape \(3,\)"):
        act.backward_bias(z, z, z, z, np.zeros(4, np.float32))
    readonly = z.copy()
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        act.forward_bias(readonly, None, np.empty_like(z))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\)"):
        kernels.forward("relu", (), z, np.zeros((2, 4), np.float32))
