"""minidl.initializers: Keras 3 names, defaults, formulas, seeding and configs.

Statistics are checked on 200,000-element draws: the sample standard deviation of n normal
values has relative error about 1 / sqrt(2 n) = 0.16%, so the 2% tolerance below is over ten
standard errors wide and the tests do not flake.
"""
import json
import math

import numpy as np
import pytest

from minidl import initializers as I
from minidl.utils import set_random_seed

# name -> (class, config of a default instance); the Keras 3 defaults.
DEFAULTS = {
    "glorot_uniform": (I.GlorotUniform, {"seed": None}),
    "glorot_normal": (I.GlorotNormal, {"seed": None}),
    "he_uniform": (I.HeUniform, {"seed": None}),
    "he_normal": (I.HeNormal, {"seed": None}),
    "lecun_uniform": (I.LecunUniform, {"seed": None}),
    "lecun_normal": (I.LecunNormal, {"seed": None}),
    "zeros": (I.Zeros, {}),
    "ones": (I.Ones, {}),
    "constant": (I.Constant, {"value": 0.0}),
    "random_normal": (I.RandomNormal, {"mean": 0.0, "stddev": 0.05, "seed": None}),
    "random_uniform": (I.RandomUniform, {"minval": -0.05, "maxval": 0.05, "seed": None}),
    "truncated_normal": (I.TruncatedNormal, {"mean": 0.0, "stddev": 0.05, "seed": None}),
    "orthogonal": (I.Orthogonal, {"gain": 1.0, "seed": None}),
    "variance_scaling": (I.VarianceScaling, {"scale": 1.0, "mode": "fan_in",
                                             "distribution": "truncated_normal",
                                             "seed": None}),
}
RANDOM = [name for name, (cls, _) in DEFAULTS.items() if issubclass(cls, I.RandomInitializer)]
TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_names_classes_and_default_configs(name):
    cls, config = DEFAULTS[name]
    init = I.get(name)
    assert type(init) is cls
    assert init.get_config() == config
    assert type(I.get(cls.__name__)) is cls


@pytest.mark.parametrize("alias, cls", [("uniform", I.RandomUniform), ("normal", I.RandomNormal),
                                        ("one", I.Ones), ("zero", I.Zeros),
                                        ("OrthogonalInitializer", I.Orthogonal),
                                        ("GLOROT_UNIFORM", I.GlorotUniform)])
def test_aliases(alias, cls):
    assert type(I.get(alias)) is cls


@pytest.mark.parametrize("name", sorted(DEFAULTS))
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32])
def test_shape_and_dtype(name, dtype):
    out = I.get(name)((7, 5), dtype=dtype)
    assert isinstance(out, np.ndarray)
    assert out.shape == (7, 5)
    assert out.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", sorted(set(DEFAULTS) - {"orthogonal"}))  # rank >= 2 only
def test_default_dtype_is_float32_and_int_shape_is_accepted(name):
    out = I.get(name)(6)
    assert out.shape == (6,) and out.dtype == np.float32


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)), ((5,), (5, 5)), ((784, 64), (784, 64)), ((3, 3, 16, 32), (144, 288)),
    ((5, 4, 8), (20, 40)), ((2, 2, 2, 3, 4), (24, 32)),
])
def test_compute_fans(shape, fans):
    assert I.compute_fans(shape) == fans


# ---- distributions ----

def _expected(name, shape):
    """(kind, parameter) Keras 3 promises for a VarianceScaling preset on ``shape``."""
    fan_in, fan_out = I.compute_fans(shape)
    table = {
        "glorot_uniform": ("uniform", math.sqrt(6 / (fan_in + fan_out))),
        "glorot_normal": ("truncated", math.sqrt(2 / (fan_in + fan_out))),
        "he_uniform": ("uniform", math.sqrt(6 / fan_in)),
        "he_normal": ("truncated", math.sqrt(2 / fan_in)),
        "lecun_uniform": ("uniform", math.sqrt(3 / fan_in)),
        "lecun_normal": ("truncated", math.sqrt(1 / fan_in)),
    }
    return table[name]


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                                  "lecun_uniform", "lecun_normal"])
@pytest.mark.parametrize("shape", [(500, 400), (3, 3, 100, 200)])
def test_variance_scaling_presets_follow_keras_formulas(name, shape):
    w = I.get(name)(shape, dtype="float64")
    kind, param = _expected(name, shape)
    assert abs(w.mean()) < 0.02 * param
    if kind == "uniform":
        # param is the limit: all values inside, standard deviation limit / sqrt(3).
        assert np.abs(w).max() <= param
        assert np.abs(w).max() > 0.999 * param
        assert w.std() == pytest.approx(param / math.sqrt(3), rel=0.02)
    else:
        # param is the standard deviation after truncation; the cut is at 2 stddev of the
        # untruncated normal, i.e. at 2 * param / 0.8796.
        cut = 2 * param / TRUNCATED_STD
        assert np.abs(w).max() <= cut
        assert np.abs(w).max() > 0.99 * cut
        assert w.std() == pytest.approx(param, rel=0.02)


@pytest.mark.parametrize("mode, n", [("fan_in", 300), ("fan_out", 700), ("fan_avg", 500)])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_modes_and_distributions(mode, n, distribution):
    w = I.VarianceScaling(scale=2.0, mode=mode, distribution=distribution)((300, 700), "float64")
    assert w.std() == pytest.approx(math.sqrt(2.0 / n), rel=0.02)
    if distribution == "uniform":
        assert np.abs(w).max() <= math.sqrt(3 * 2.0 / n)
    if distribution == "truncated_normal":
        assert np.abs(w).max() <= 2 * math.sqrt(2.0 / n) / TRUNCATED_STD
    if distribution == "untruncated_normal":  # tails beyond the truncation point exist
        assert np.abs(w).max() > 2 * math.sqrt(2.0 / n) / TRUNCATED_STD


def test_variance_scaling_fan_is_at_least_one():
    # A (0, 5) kernel has fan_in 0; Keras divides by max(1, fan) instead of by 0.
    assert I.VarianceScaling(distribution="uniform")((0, 5)).shape == (0, 5)
    w = I.VarianceScaling(scale=3.0, distribution="uniform")((), "float64")
    assert abs(w) <= 3.0


def test_random_normal_and_uniform_and_truncated_statistics():
    shape = (400, 500)
    w = I.RandomNormal(mean=1.0, stddev=2.0)(shape, "float64")
    assert w.mean() == pytest.approx(1.0, abs=0.02) and w.std() == pytest.approx(2.0, rel=0.02)
    u = I.RandomUniform(minval=-3.0, maxval=1.0)(shape, "float64")
    assert u.min() >= -3.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(-1.0, abs=0.02)
    assert u.std() == pytest.approx(4 / math.sqrt(12), rel=0.02)
    t = I.TruncatedNormal(mean=-1.0, stddev=0.5)(shape, "float64")
    assert t.min() >= -2.0 and t.max() <= 0.0  # mean -1, cut at 2 * 0.5
    assert t.mean() == pytest.approx(-1.0, abs=0.01)
    assert t.std() == pytest.approx(0.5 * TRUNCATED_STD, rel=0.02)


def test_constant_zeros_ones_values_and_integer_dtypes():
    np.testing.assert_array_equal(I.Constant(2.5)((2, 3)), np.full((2, 3), 2.5, np.float32))
    np.testing.assert_array_equal(I.Zeros()((4,), dtype="int32"), np.zeros(4, np.int32))
    ones = I.Ones()((2, 2), dtype="int64")
    assert ones.dtype == np.int64 and (ones == 1).all()
    assert I.Constant(np.float32(0.25)).get_config() == {"value": 0.25}


# ---- orthogonal ----

@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (3, 3, 4, 8), (2, 2, 2, 16)])
def test_orthogonal(shape, gain=2.0):
    w = I.Orthogonal(gain=gain, seed=3)(shape, "float64")
    assert w.shape == shape
    m = w.reshape(-1, shape[-1]) / gain
    rows, cols = m.shape
    if rows >= cols:
        np.testing.assert_allclose(m.T @ m, np.eye(cols), atol=1e-12)
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(rows), atol=1e-12)


def test_orthogonal_float32_is_orthogonal_to_float32_precision():
    w = I.Orthogonal()((64, 64))
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.T.astype(np.float64) @ w, np.eye(64), atol=1e-5)


def test_orthogonal_needs_rank_2():
    with pytest.raises(ValueError, match=r"shape=\(5,\) of rank 1"):
        I.Orthogonal()((5,))


# ---- seeding ----

@pytest.mark.parametrize("name", RANDOM)
def test_int_seed_gives_the_same_values_every_call(name):
    cls = DEFAULTS[name][0]
    init = cls(seed=42)
    a, b = init((30, 20)), init((30, 20))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, cls(seed=42)((30, 20)))
    assert not np.array_equal(a, cls(seed=43)((30, 20)))


@pytest.mark.parametrize("name", RANDOM)
def test_unseeded_draws_from_the_global_generator(name):
    init = I.get(name)
    set_random_seed(99)
    first = [init((8, 8)) for _ in range(2)]
    assert not np.array_equal(first[0], first[1])  # successive calls differ
    set_random_seed(99)
    again = [init((8, 8)) for _ in range(2)]
    for x, y in zip(first, again):  # ... and the sequence is reproducible
        np.testing.assert_array_equal(x, y)


def test_float32_and_float64_share_one_stream():
    a = I.HeNormal(seed=5)((20, 10), "float32")
    b = I.HeNormal(seed=5)((20, 10), "float64")
    np.testing.assert_array_equal(a, b.astype(np.float32))


# ---- config, get, serialize ----

CONFIGURED = [I.Constant(3), I.RandomNormal(1.0, 0.1, seed=2), I.RandomUniform(-1, 2, seed=0),
              I.TruncatedNormal(0.5, 2.0, seed=9), I.Orthogonal(gain=0.5, seed=1),
              I.VarianceScaling(2.0, "fan_avg", "uniform", seed=4), I.HeUniform(seed=11),
              I.LecunNormal(seed=0), I.Zeros()]


@pytest.mark.parametrize("init", CONFIGURED, ids=lambda i: type(i).__name__)
def test_config_round_trip(init):
    config = init.get_config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = type(init).from_config(config)
    assert rebuilt.get_config() == config
    via_get = I.get(json.loads(json.dumps(I.serialize(init))))
    assert type(via_get) is type(init) and via_get.get_config() == config
    if "seed" in config or not isinstance(init, I.RandomInitializer):
        np.testing.assert_array_equal(via_get((4, 3)), init((4, 3)))


def test_variance_scaling_normal_is_stored_as_truncated_normal():
    assert I.VarianceScaling(distribution="Normal").get_config()["distribution"] == \
        "truncated_normal"


def test_get_passes_through_instances_and_callables_and_builds_classes():
    init = I.HeNormal(seed=1)
    assert I.get(init) is init
    assert I.get(None) is None

    def custom(shape, dtype="float32"):
        return np.full(shape, 7, dtype)

    assert I.get(custom) is custom
    assert type(I.get(I.Ones)) is I.Ones


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown initializer 'glorot'.*glorot_uniform"):
        I.get("glorot")
    with pytest.raises(ValueError, match="identifier=42"):
        I.get(42)


# ---- argument errors ----

@pytest.mark.parametrize("make, message", [
    (lambda: I.VarianceScaling(scale=0), r"Received: scale=0"),
    (lambda: I.VarianceScaling(scale=-1.0), r"Received: scale=-1\.0"),
    (lambda: I.VarianceScaling(mode="fan"), r"Received: mode='fan'"),
    (lambda: I.VarianceScaling(distribution="gamma"), r"Received: distribution='gamma'"),
    (lambda: I.RandomNormal(stddev=-0.1), r"Received: stddev=-0\.1"),
    (lambda: I.TruncatedNormal(stddev=-1), r"Received: stddev=-1"),
    (lambda: I.RandomUniform(minval=1, maxval=0), r"Received: minval=1, maxval=0"),
    (lambda: I.HeNormal(seed=-3), r"Received: seed=-3"),
])
def test_bad_arguments_are_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: I.GlorotUniform(seed=1.5), r"seed=1\.5"),
    (lambda: I.GlorotUniform(seed=True), r"seed=True"),
    (lambda: I.Constant("a"), r"value='a'"),
    (lambda: I.RandomNormal(mean=None), r"mean=None"),
])
def test_bad_argument_types_are_type_errors(make, message):
    with pytest.raises(TypeError, match=message):
        make()


def test_bad_call_arguments():
    with pytest.raises(ValueError, match=r"dtype='int32'"):
        I.GlorotUniform()((3, 3), dtype="int32")
    with pytest.raises(ValueError, match=r"shape=\(3, -1\)"):
        I.Zeros()((3, -1))
    with pytest.raises(TypeError, match=r"shape=None"):
        I.Ones()(None)
