"""Optimizer kernels against the numpy reference, golden Keras trajectories and the API."""
import inspect
import math
import platform

import numpy as np
import pytest

import minidl
from minidl import optimizers
from minidl._core import _optimizers as kernels
from minidl._ref import optimizers as ref

DTYPES = [np.float32, np.float64]
KERNELS = ["sgd", "adam", "rmsprop", "adagrad", "nadam", "sum_of_squares"]


def rng(seed):
    return np.random.default_rng(seed)


def test_reference_mirrors_kernel_signatures():
    for name in KERNELS:
        kparams = list(inspect.signature(getattr(kernels, name)).parameters)
        rparams = list(inspect.signature(getattr(ref, name)).parameters)
        assert kparams == rparams, name


def kernel_case(name, variant, n, dtype, seed=0):
    """(positional args for kernel `name`, indices of the arrays it updates)."""
    r = rng(seed)
    p, g = r.standard_normal(n).astype(dtype), r.standard_normal(n).astype(dtype)

    def slot():
        return r.uniform(0.0, 1.0, n).astype(dtype)

    wd, gs, clip = variant
    if name == "sgd":
        return [p, g, slot(), 0.1, 0.9, True, wd, gs, clip], [0, 2]
    if name == "sgd_plain":
        return [p, g, None, 0.1, 0.0, False, wd, gs, clip], [0]
    if name == "adam":
        args = [p, g, slot(), slot(), slot(), 0.01, 0.9, 0.999, 1e-7, 0.02, wd, gs, clip]
        return args, [0, 2, 3, 4]
    if name == "rmsprop":
        v, mom, avg = slot() + 1, slot(), slot() * 0.1
        return [p, g, v, mom, avg, 0.01, 0.9, 0.5, 1e-7, wd, gs, clip], [0, 2, 3, 4]
    if name == "adagrad":
        return [p, g, slot(), 0.05, 1e-7, wd, gs, clip], [0, 2]
    return [p, g, slot(), slot(), 0.01, 0.9, 0.999, 1e-7, 0.7, 0.1, 0.05, wd, gs, clip], [0, 2, 3]


KERNEL_CASES = ["sgd", "sgd_plain", "adam", "rmsprop", "adagrad", "nadam"]
VARIANTS = [(0.0, 1.0, 0.0), (0.01, 0.5, 0.3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS, ids=["plain", "decay-scale-clip"])
@pytest.mark.parametrize("name", KERNEL_CASES)
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_kernels_match_reference(name, variant, n, dtype):
    args, outs = kernel_case(name, variant, n, dtype, seed=n)
    ref_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    fn = name.split("_")[0]
    getattr(kernels, fn)(*args)
    getattr(ref, fn)(*ref_args)
    tol = dict(rtol=3e-6, atol=3e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for i in outs:
        np.testing.assert_allclose(args[i], ref_args[i], **tol)


def test_optional_slots_off_match_reference():
    for name, args in [
        ("rmsprop", lambda p, g, s: [p, g, s, None, None, 0.01, 0.9, 0.0, 1e-7, 0.0, 1.0, 0.0]),
        ("adam", lambda p, g, s: [p, g, s, s * 0.5, None, 0.01, 0.9, 0.999, 1e-7, 0.0, 0.0, 1.0,
                                  0.0]),
    ]:
        r = rng(1)
        a = args(r.standard_normal(9), r.standard_normal(9), r.random(9))
        b = [x.copy() if isinstance(x, np.ndarray) else x for x in a]
        getattr(kernels, name)(*a)
        getattr(ref, name)(*b)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)


@pytest.fixture
def threads():
    before = minidl.get_num_threads()
    yield
    minidl.set_num_threads(before)


@pytest.mark.parametrize("name", KERNEL_CASES)
def test_thread_count_does_not_change_bits(name, threads):
    n = 3 * kernels.PARALLEL_MIN + 17
    results = []
    for nt in (1, 2):
        minidl.set_num_threads(nt)
        args, outs = kernel_case(name, VARIANTS[1], n, np.float32, seed=4)
        getattr(kernels, name.split("_")[0])(*args)
        results.append([args[i] for i in outs])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_sum_of_squares(threads):
    x = rng(2).standard_normal(5 * kernels.PARALLEL_MIN + 3).astype(np.float32)
    sums = []
    for nt in (1, 2):
        minidl.set_num_threads(nt)
        sums.append(kernels.sum_of_squares(x))
    assert sums[0] == sums[1]
    assert sums[0] == pytest.approx(ref.sum_of_squares(x), rel=1e-12)
    assert kernels.sum_of_squares(np.zeros(0)) == 0.0


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"),
                    reason="denormals are flushed on x86 only")
def test_denormals_are_flushed_to_zero():
    # A first moment whose gradient stays 0 decays into the denormals and sticks there (where
    # m * (1 - beta_1) rounds to 0), costing a microcode assist per element on every step.
    tiny = np.finfo(np.float32).tiny
    p, v = np.ones(5, np.float32), np.ones(5, np.float32)
    m = np.array([tiny / 8, -tiny / 3, 3e-45, 0.5, -0.25], np.float32)
    kernels.adam(p, np.zeros(5, np.float32), m, v, None, 1e-3, 0.9, 0.999, 1e-7, 1e-3, 0.0, 1.0,
                 0.0)
    np.testing.assert_array_equal(m[:3], 0.0)
    normal = np.float32([0.5, -0.25])
    np.testing.assert_array_equal(m[3:], normal + (0 - normal) * np.float32(1 - 0.9))
    assert np.float32(tiny) * np.float32(0.5) != 0   # the caller's mode is restored


# ---- golden trajectories: Keras 3's update_step, transcribed in numpy ----

class Golden:
    """Keras' formulas on plain arrays (scalars as Python floats, arrays in their dtype)."""

    def __init__(self, kind, variables, lr, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, loss_scale_factor=None, **hyper):
        self.kind, self.lr, self.h = kind, lr, hyper
        self.wd, self.clipnorm, self.clipvalue = weight_decay, clipnorm, clipvalue
        self.global_clipnorm, self.loss_scale = global_clipnorm, loss_scale_factor
        self.vars = [v.copy() for v in variables]
        init = hyper.get("initial_accumulator_value", 0.0)
        self.s = [{k: np.full_like(v, init if k == "acc" else 0.0)
                   for k in ("m", "v", "vhat", "acc", "mom", "avg")} for v in variables]
        self.t = 0
        self.u_product = 1.0

    def clip(self, grads):
        if self.loss_scale:
            grads = [g / self.loss_scale for g in grads]
        if self.clipnorm:
            c = self.clipnorm
            return [g * c / max(math.sqrt(float(np.sum(g.astype(float) ** 2))), c) for g in grads]
        if self.global_clipnorm:
            c = self.global_clipnorm
            norm = math.sqrt(sum(float(np.sum(g.astype(float) ** 2)) for g in grads))
            return [g * (c / max(norm, c)) for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self, grads):
        grads = self.clip([g.copy() for g in grads])
        lr, h, t = self.lr, self.h, self.t + 1
        if self.kind == "nadam":
            self.u_product *= h["beta_1"] * (1 - 0.5 * 0.96 ** t)
        for w, g, s in zip(self.vars, grads, self.s):
            if self.wd:
                w -= w * self.wd * lr
            if self.kind == "sgd":
                if h["momentum"]:
                    s["mom"][...] = s["mom"] * h["momentum"] - g * lr
                    w += (s["mom"] * h["momentum"] - g * lr) if h["nesterov"] else s["mom"]
                else:
                    w -= g * lr
            elif self.kind == "adam":
                b1, b2 = h["beta_1"], h["beta_2"]
                alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                s["m"] += (g - s["m"]) * (1 - b1)
                s["v"] += (g * g - s["v"]) * (1 - b2)
                v = s["v"]
                if h["amsgrad"]:
                    s["vhat"][...] = np.maximum(s["vhat"], s["v"])
                    v = s["vhat"]
                w -= s["m"] * alpha / (np.sqrt(v) + h["epsilon"])
            elif self.kind == "rmsprop":
                rho = h["rho"]
                s["v"][...] = rho * s["v"] + (1 - rho) * g * g
                if h["centered"]:
                    s["avg"][...] = rho * s["avg"] + (1 - rho) * g
                    denom = s["v"] - s["avg"] ** 2 + h["epsilon"]
                else:
                    denom = s["v"] + h["epsilon"]
                inc = lr * g / np.sqrt(denom)
                if h["momentum"] > 0:
                    s["mom"][...] = h["momentum"] * s["mom"] + inc
                    w -= s["mom"]
                else:
                    w -= inc
            elif self.kind == "adagrad":
                s["acc"] += g * g
                w -= lr * g / np.sqrt(s["acc"] + h["epsilon"])
            elif self.kind == "nadam":
                b1, b2 = h["beta_1"], h["beta_2"]
                u_t = b1 * (1 - 0.5 * 0.96 ** t)
                u_t1 = b1 * (1 - 0.5 * 0.96 ** (t + 1))
                u_product_t1 = self.u_product * u_t1
                s["m"] += (g - s["m"]) * (1 - b1)
                s["v"] += (g * g - s["v"]) * (1 - b2)
                m_hat = u_t1 * s["m"] / (1 - u_product_t1) + (1 - u_t) * g / (1 - self.u_product)
                v_hat = s["v"] / (1 - b2 ** t)
                w -= m_hat * lr / (np.sqrt(v_hat) + h["epsilon"])
        self.t = t


GOLDEN_CASES = [
    ("sgd", optimizers.SGD, dict(learning_rate=0.05)),
    ("sgd", optimizers.SGD, dict(learning_rate=0.05, momentum=0.9)),
    ("sgd", optimizers.SGD, dict(learning_rate=0.05, momentum=0.8, nesterov=True)),
    ("sgd", optimizers.SGD, dict(learning_rate=0.05, momentum=0.5, weight_decay=0.1)),
    ("adam", optimizers.Adam, dict()),
    ("adam", optimizers.Adam, dict(learning_rate=0.01, amsgrad=True)),
    ("adam", optimizers.Adam, dict(learning_rate=0.01, clipnorm=0.5)),
    ("adam", optimizers.Adam, dict(learning_rate=0.01, global_clipnorm=0.7)),
    ("adam", optimizers.Adam, dict(learning_rate=0.01, clipvalue=0.2, loss_scale_factor=4.0)),
    ("adam", optimizers.AdamW, dict(learning_rate=0.01)),
    ("adam", optimizers.AdamW, dict(learning_rate=0.01, weight_decay=0.05, amsgrad=True)),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.01)),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.01, momentum=0.9)),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.01, centered=True)),
    ("rmsprop", optimizers.RMSprop, dict(learning_rate=0.01, centered=True, momentum=0.5,
                                         rho=0.8)),
    ("adagrad", optimizers.Adagrad, dict(learning_rate=0.1)),
    ("adagrad", optimizers.Adagrad, dict(learning_rate=0.1, initial_accumulator_value=0.0,
                                         epsilon=1e-3)),
    ("nadam", optimizers.Nadam, dict()),
    ("nadam", optimizers.Nadam, dict(learning_rate=0.01, beta_1=0.8, weight_decay=0.01)),
]


def golden_for(kind, opt, config):
    keys = {"sgd": ("momentum", "nesterov"), "adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
            "rmsprop": ("rho", "momentum", "epsilon", "centered"),
            "adagrad": ("initial_accumulator_value", "epsilon"),
            "nadam": ("beta_1", "beta_2", "epsilon")}[kind]
    cfg = opt.get_config()
    common = {k: cfg[k] for k in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm",
                                  "loss_scale_factor")}
    return lambda variables: Golden(kind, variables, cfg["learning_rate"],
                                    **common, **{k: cfg[k] for k in keys})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,cls,config", GOLDEN_CASES,
                         ids=[f"{c.__name__}{k}" for _, c, k in GOLDEN_CASES])
def test_trajectory_matches_keras_formula(kind, cls, config, dtype):
    r = rng(3)
    variables = [r.standard_normal((5, 3)).astype(dtype), r.standard_normal(3).astype(dtype)]
    opt = cls(**config)
    golden = golden_for(kind, opt, config)(variables)
    for step in range(25):
        grads = [(r.standard_normal(v.shape) * (1 + step % 3)).astype(dtype) for v in variables]
        opt.apply(grads, variables)
        golden.step(grads)
    assert opt.iterations == 25
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for ours, theirs in zip(variables, golden.vars):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs, **tol)


def test_rmsprop_keras_documented_step():
    var = np.array([10.0], np.float32)
    optimizers.RMSprop(learning_rate=0.1).apply([var.copy()], [var])
    assert var[0] == pytest.approx(9.683772, rel=1e-6)


def test_large_variable_runs_the_parallel_path(threads):
    minidl.set_num_threads(2)
    w = rng(5).standard_normal(kernels.PARALLEL_MIN * 2 + 5)
    golden = Golden("adam", [w], 0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)
    opt = optimizers.Adam(learning_rate=0.01)
    for _ in range(3):
        g = rng(6).standard_normal(w.shape)
        opt.apply([g], [w])
        golden.step([g])
    np.testing.assert_allclose(w, golden.vars[0], rtol=1e-12)


# ---- state, config and errors ----

def test_slots_and_state_round_trip():
    r = rng(7)
    w = r.standard_normal((4, 2)).astype(np.float32)
    b = np.zeros(2, np.float32)
    opt = optimizers.Adam(learning_rate=0.01, amsgrad=True)
    opt.build([w, b])
    assert opt.slot_names == ("momentum", "velocity", "velocity_hat")
    slots = opt.get_slot_arrays()
    assert [s.shape for s in slots] == [(4, 2), (2,)] * 3
    assert all(s.dtype == np.float32 and not s.any() for s in slots)
    assert opt.variables[0] is slots[0]
    assert opt.get_slot(b, "velocity") is slots[3]
    opt.build([w])                                   # built: ignored, as in Keras
    assert opt.get_slot_arrays()[0] is slots[0]
    grads = [[r.standard_normal(v.shape).astype(np.float32) for v in (w, b)] for _ in range(6)]
    for g in grads[:3]:
        opt.apply(g, [w, b])
    saved = ([w.copy(), b.copy()], [s.copy() for s in opt.get_slot_arrays()], opt.iterations)
    for g in grads[3:]:
        opt.apply(g)
    # A fresh optimizer restored from the saved state continues identically.
    w2, b2 = saved[0][0].copy(), saved[0][1].copy()
    opt2 = optimizers.get(optimizers.serialize(opt))
    opt2.build([w2, b2])
    opt2.set_slot_arrays(saved[1])
    opt2.iterations = saved[2]
    for g in grads[3:]:
        opt2.apply_gradients(zip(g, [w2, b2]))
    np.testing.assert_array_equal(w2, w)
    np.testing.assert_array_equal(b2, b)


def test_nadam_schedule_survives_restoring_iterations():
    r = rng(8)
    w = r.standard_normal(6)
    grads = [r.standard_normal(6) for _ in range(5)]
    opt = optimizers.Nadam(learning_rate=0.01)
    for g in grads[:2]:
        opt.apply([g], [w])
    w2, slots = w.copy(), [s.copy() for s in opt.get_slot_arrays()]
    for g in grads[2:]:
        opt.apply([g], [w])
    opt2 = optimizers.Nadam(learning_rate=0.01)
    opt2.build([w2])
    opt2.set_slot_arrays(slots)
    opt2.iterations = 2
    for g in grads[2:]:
        opt2.apply([g], [w2])
    np.testing.assert_allclose(w2, w, rtol=1e-14)


def test_adagrad_accumulator_starts_at_initial_value():
    w = np.zeros(3)
    opt = optimizers.Adagrad(initial_accumulator_value=0.25)
    opt.build([w])
    np.testing.assert_array_equal(opt.get_slot(w, "accumulator"), 0.25)
    assert optimizers.SGD().slot_names == ()
    assert optimizers.RMSprop(momentum=0.5, centered=True).slot_names == (
        "velocity", "momentum", "average_gradient")


def test_learning_rate_is_a_settable_float():
    opt = optimizers.SGD(learning_rate=0.1)
    w = np.ones(2)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and opt.get_config()["learning_rate"] == 0.5
    opt.apply([np.ones(2)], [w])
    np.testing.assert_array_equal(w, 0.5)
    with pytest.raises(ValueError, match="learning_rate=-0.1"):
        opt.learning_rate = -0.1


def test_gradients_are_cast_and_none_skipped():
    w, b = np.ones((2, 2), np.float32), np.ones(2, np.float32)
    opt = optimizers.SGD(learning_rate=1.0)
    opt.apply([np.ones((2, 2)), np.ones((2, 2))[:, 0]], [w, b])   # float64, strided
    np.testing.assert_array_equal(w, 0.0)
    np.testing.assert_array_equal(b, 0.0)
    with pytest.warns(UserWarning, match="None"):
        opt.apply([None, np.ones(2, np.float32)], [w, b])
    np.testing.assert_array_equal(w, 0.0)
    with pytest.raises(ValueError, match="No gradients"):
        opt.apply([None, None], [w, b])


def test_config_round_trip_and_defaults():
    expected = {
        "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
        "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
        "adamw": dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7),
        "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                        centered=False),
        "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
        "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    }
    for name, defaults in expected.items():
        opt = optimizers.get(name)
        config = opt.get_config()
        assert {k: config[k] for k in defaults} == defaults, name
        assert list(config) == list(inspect.signature(type(opt)).parameters), name
        again = optimizers.get(optimizers.serialize(opt))
        assert type(again) is type(opt) and again.get_config() == config
    opt = optimizers.Adam(learning_rate=0.02, amsgrad=True, clipnorm=1.0, name="a")
    assert optimizers.Adam.from_config(opt.get_config()).get_config() == opt.get_config()
    assert optimizers.get(opt) is opt


def test_errors_echo_bad_values():
    with pytest.raises(ValueError, match="Unknown optimizer 'adamx'.*adam, adamw"):
        optimizers.get("adamx")
    with pytest.raises(ValueError, match="learning_rate=-1"):
        optimizers.Adam(learning_rate=-1)
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0.0, 1.0\); received beta_1=1.0"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="beta_2=-0.5"):
        optimizers.Nadam(beta_2=-0.5)
    with pytest.raises(ValueError, match="momentum=1.5"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="rho=2"):
        optimizers.RMSprop(rho=2)
    with pytest.raises(ValueError, match="initial_accumulator_value=-1"):
        optimizers.Adagrad(initial_accumulator_value=-1)
    with pytest.raises(ValueError, match="weight_decay=None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="learning_rate='fast'"):
        optimizers.SGD(learning_rate="fast")
    opt = optimizers.SGD()
    w = np.zeros(3)
    opt.build([w])
    with pytest.raises(ValueError, match="unknown variable"):
        opt.apply([np.zeros(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match=r"gradient of variable 0 has shape \(2,\)"):
        opt.apply([np.zeros(2)], [w])
    with pytest.raises(ValueError, match="received 2 gradients for 1 variables"):
        opt.apply([np.zeros(3), np.zeros(3)], [w])
    with pytest.raises(TypeError, match="float32/float64"):
        optimizers.SGD().build([np.zeros(3, np.int32)])
    with pytest.raises(ValueError, match="C-contiguous"):
        optimizers.SGD().build([np.zeros((3, 3))[:, 0]])
    with pytest.raises(ValueError, match="call build"):
        optimizers.Adam().set_slot_arrays([])
    adam = optimizers.Adam()
    adam.build([w])
    with pytest.raises(ValueError, match="expected 2 slot arrays"):
        adam.set_slot_arrays([np.zeros(3)])
