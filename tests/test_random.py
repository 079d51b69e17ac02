"""minidl.random (keras.random): shapes and dtypes, rough statistics, seeds and
SeedGenerator, dropout and shuffle with their gradients, argument errors.

Every statistical check draws with a fixed seed, so the tests are deterministic; the bounds
are loose (several standard errors) so that they test the distribution, not the bits.
"""
import numpy as np
import pytest

import minidl
from minidl import random
from minidl.utils.random import derived_generator, global_rng, training_draws

N = 20000


# ---- shapes and dtypes ----

@pytest.mark.parametrize("draw", [
    lambda shape, **kw: random.normal(shape, **kw),
    lambda shape, **kw: random.uniform(shape, **kw),
    lambda shape, **kw: random.truncated_normal(shape, **kw),
])
def test_float_draws_shapes_and_dtypes(draw):
    t = draw((2, 3), seed=1)
    assert isinstance(t, minidl.Tensor) and t.shape == (2, 3) and t.dtype == np.float32
    assert draw([4], dtype="float64", seed=1).dtype == np.float64
    assert draw((5,), dtype=np.float16, seed=1).dtype == np.float16
    assert draw(3, seed=1).shape == (3,)
    assert draw((), seed=1).shape == ()
    assert draw((0, 4), seed=1).shape == (0, 4)
    assert np.isfinite(draw((100,), seed=2).numpy()).all()


def test_integer_draws_shapes_and_dtypes():
    t = random.randint((3, 4), 0, 10, seed=1)
    assert t.shape == (3, 4) and t.dtype == np.int32
    assert random.randint((2,), -5, 5, dtype="int64", seed=1).dtype == np.int64
    assert random.randint((2,), 0, 255, dtype="uint8", seed=1).dtype == np.uint8
    c = random.categorical(np.zeros((3, 4)), 7, seed=1)
    assert c.shape == (3, 7) and c.dtype == np.int32
    assert random.categorical(np.zeros((2, 3)), 1, dtype="int64", seed=1).dtype == np.int64


# ---- statistics ----

def test_normal_statistics():
    x = random.normal((N,), mean=2.0, stddev=3.0, seed=3).numpy().astype(np.float64)
    assert abs(x.mean() - 2.0) < 0.1 and abs(x.std() - 3.0) < 0.1
    # About 68% within one standard deviation.
    assert abs(np.mean(np.abs(x - 2.0) < 3.0) - 0.6827) < 0.02


def test_parameters_broadcast_over_the_draw():
    means = np.array([-100.0, 0.0, 100.0])
    x = random.normal((4000, 3), mean=means, stddev=np.array([1.0, 2.0, 3.0]),
                      seed=20).numpy().astype(np.float64)
    np.testing.assert_allclose(x.mean(axis=0), means, atol=0.2)
    np.testing.assert_allclose(x.std(axis=0), [1, 2, 3], rtol=0.05)
    u = random.uniform((1000, 2), minval=np.array([0.0, 10.0]), maxval=np.array([1.0, 20.0]),
                       seed=21).numpy()
    assert u[:, 0].min() >= 0 and u[:, 0].max() < 1 and u[:, 1].min() >= 10 and \
        u[:, 1].max() < 20


def test_uniform_statistics_and_bounds():
    x = random.uniform((N,), minval=-1.0, maxval=3.0, seed=4).numpy().astype(np.float64)
    assert x.min() >= -1.0 and x.max() < 3.0
    assert abs(x.mean() - 1.0) < 0.05 and abs(x.var() - 16 / 12) < 0.05
    counts = np.histogram(x, bins=4, range=(-1, 3))[0]
    assert np.all(np.abs(counts / N - 0.25) < 0.02)


def test_truncated_normal_statistics():
    x = random.truncated_normal((N,), mean=1.0, stddev=2.0, seed=5).numpy().astype(np.float64)
    assert np.all(np.abs(x - 1.0) <= 4.0)
    # A standard normal truncated to [-2, 2] has standard deviation 0.8796.
    assert abs(x.mean() - 1.0) < 0.05 and abs(x.std() - 2 * 0.8796) < 0.05


def test_randint_statistics():
    x = random.randint((N,), 3, 8, seed=6).numpy()
    assert x.min() == 3 and x.max() == 7
    counts = np.bincount(x - 3, minlength=5)
    assert np.all(np.abs(counts / N - 0.2) < 0.02)


def test_categorical_frequencies():
    probs = np.array([[0.2, 0.3, 0.5, 0.0], [0.7, 0.0, 0.1, 0.2]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs) + 5.0   # unnormalised; the zero classes have logit -inf
    x = random.categorical(logits, N, seed=7).numpy()
    for row in range(2):
        freq = np.bincount(x[row], minlength=4) / N
        np.testing.assert_allclose(freq, probs[row], atol=0.015)
        assert freq[probs[row] == 0].sum() == 0   # never a class of probability 0


# ---- seeds ----

def test_int_seed_gives_the_same_draw_every_call():
    a = random.normal((5,), seed=42).numpy()
    np.testing.assert_array_equal(random.normal((5,), seed=42).numpy(), a)
    assert not np.array_equal(random.normal((5,), seed=43).numpy(), a)
    np.testing.assert_array_equal(random.randint((4,), 0, 100, seed=9).numpy(),
                                  random.randint((4,), 0, 100, seed=9).numpy())


def test_seed_generator_advances_and_is_reproducible():
    gen = random.SeedGenerator(42)
    a = random.normal((5,), seed=gen).numpy()
    b = random.normal((5,), seed=gen).numpy()
    assert not np.array_equal(a, b)
    # The first draw of SeedGenerator(s) is the draw of the int seed s, as in Keras.
    np.testing.assert_array_equal(a, random.normal((5,), seed=42).numpy())
    again = random.SeedGenerator(42)
    np.testing.assert_array_equal(random.normal((5,), seed=again).numpy(), a)
    np.testing.assert_array_equal(random.normal((5,), seed=again).numpy(), b)
    assert gen.seed == 42 and random.SeedGenerator.from_config(gen.get_config()).seed == 42


def test_seed_generator_state_saves_and_resumes():
    gen = random.SeedGenerator(7)
    random.uniform((3,), seed=gen)
    state = gen.state
    assert isinstance(state, minidl.Variable) and not state.trainable
    assert state.dtype == np.uint32
    np.testing.assert_array_equal(state.numpy(), [7, 1])
    saved = state.numpy()
    first = [random.normal((4,), seed=gen).numpy() for _ in range(3)]
    restored = random.SeedGenerator(0)
    restored.state.assign(saved)
    np.testing.assert_array_equal(
        np.stack([random.normal((4,), seed=restored).numpy() for _ in range(3)]),
        np.stack(first))


def test_unseeded_draws_follow_set_random_seed():
    minidl.utils.set_random_seed(123)
    a = random.normal((4,)).numpy()
    gen_a = random.normal((4,), seed=random.SeedGenerator()).numpy()
    b = random.normal((4,)).numpy()
    assert not np.array_equal(a, b)   # the global generator moved on
    minidl.utils.set_random_seed(123)
    np.testing.assert_array_equal(random.normal((4,)).numpy(), a)
    np.testing.assert_array_equal(random.normal((4,), seed=random.SeedGenerator()).numpy(),
                                  gen_a)
    np.testing.assert_array_equal(random.normal((4,)).numpy(), b)


def test_unseeded_draws_inside_fit_use_the_training_stream():
    minidl.utils.set_random_seed(5)
    state = global_rng().bit_generator.state
    with training_draws(state, 3):
        got = random.uniform((6,), dtype="float64").numpy()
    want = derived_generator(state, 3).random(6)
    np.testing.assert_array_equal(got, want)
    assert global_rng().bit_generator.state == state   # the global generator did not move


# ---- dropout ----

def test_dropout_scaling_and_rate():
    x = np.random.default_rng(8).uniform(1, 2, (200, 100)).astype(np.float32)
    y = random.dropout(x, 0.3, seed=11).numpy()
    assert y.dtype == np.float32 and y.shape == x.shape
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(random.dropout(x, 0.3, seed=11).numpy(), y)
    np.testing.assert_array_equal(random.dropout(x, 0.0, seed=11).numpy(), x)


def test_dropout_gradient_flows_through_the_kept_units():
    x = np.random.default_rng(9).standard_normal((30, 20))
    g = np.random.default_rng(10).standard_normal(x.shape)
    t = minidl.Tensor(x)
    with minidl.GradientTape() as tape:
        tape.watch(t)
        y = random.dropout(t, 0.5, seed=12)
    (dx,) = tape.gradient(y, [t], output_gradients=g)
    kept = y.numpy() != 0
    np.testing.assert_allclose(dx[kept], g[kept] * 2, rtol=1e-12)
    np.testing.assert_array_equal(dx[~kept], 0)


def test_dropout_noise_shape_shares_draws():
    x = np.ones((50, 8, 6))
    y = random.dropout(x, 0.5, noise_shape=(None, 1, 6), seed=13).numpy()
    # Every step of a sample drops the same features.
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :], y.shape))
    assert set(np.unique(y)) == {0.0, 2.0}


def test_dropout_mask_does_not_depend_on_the_thread_count():
    x = np.ones((300, 200), np.float32)   # above the kernel's parallel threshold
    before = minidl.get_num_threads()
    try:
        minidl.set_num_threads(1)
        one = random.dropout(x, 0.4, seed=14).numpy()
        minidl.set_num_threads(max(2, before))
        many = random.dropout(x, 0.4, seed=14).numpy()
    finally:
        minidl.set_num_threads(before)
    np.testing.assert_array_equal(one, many)


# ---- shuffle ----

def test_shuffle_permutes_one_axis_and_its_gradient():
    x = np.arange(24.0).reshape(4, 6)
    t = minidl.Tensor(x)
    with minidl.GradientTape() as tape:
        tape.watch(t)
        y = random.shuffle(t, axis=1, seed=15)
    yv = y.numpy()
    order = (yv[0] - x[0, 0]).astype(int)
    assert sorted(order) == list(range(6)) and list(order) != list(range(6))
    np.testing.assert_array_equal(yv, x[:, order])   # whole columns move together
    g = np.random.default_rng(16).standard_normal(y.shape)
    (dx,) = tape.gradient(y, [t], output_gradients=g)
    np.testing.assert_array_equal(dx[:, order], g)
    np.testing.assert_array_equal(random.shuffle(x, axis=1, seed=15).numpy(), yv)
    rows = random.shuffle(x, seed=15).numpy()
    assert sorted(map(tuple, rows)) == sorted(map(tuple, x))


# ---- argument errors ----

@pytest.mark.parametrize("call,error,match", [
    (lambda: random.normal((2, -1)), ValueError, "shape"),
    (lambda: random.normal("ab"), TypeError, "shape"),
    (lambda: random.normal((2.5,)), TypeError, "shape"),
    (lambda: random.normal((2,), dtype="int32"), ValueError, "dtype"),
    (lambda: random.uniform((2,), dtype="nonsense"), TypeError, "dtype"),
    (lambda: random.uniform((2,), minval=1.0, maxval=1.0), ValueError, "minval"),
    (lambda: random.normal((2,), stddev="1"), TypeError, "stddev"),
    (lambda: random.normal((2,), mean=np.zeros(3)), ValueError, "mean"),
    (lambda: random.uniform((2,), maxval=np.ones((2, 2))), ValueError, "maxval"),
    (lambda: random.randint((2,), 5, 5), ValueError, "minval"),
    (lambda: random.randint((2,), 0.5, 5), TypeError, "minval"),
    (lambda: random.randint((2,), 0, 300, dtype="uint8"), ValueError, "dtype"),
    (lambda: random.randint((2,), 0, 3, dtype="float32"), ValueError, "dtype"),
    (lambda: random.normal((2,), seed=1.5), TypeError, "seed"),
    (lambda: random.normal((2,), seed=-1), ValueError, "seed"),
    (lambda: random.normal((2,), seed="a"), TypeError, "seed"),
    (lambda: random.SeedGenerator(2 ** 32), ValueError, "seed"),
    (lambda: random.SeedGenerator("x"), TypeError, "seed"),
    (lambda: random.categorical(np.zeros(3), 2), ValueError, "logits"),
    (lambda: random.categorical(np.zeros((2, 3)), 0), ValueError, "num_samples"),
    (lambda: random.categorical(np.full((1, 2), -np.inf), 1), ValueError, "logits"),
    (lambda: random.dropout(np.ones(3), 1.0), ValueError, "rate"),
    (lambda: random.dropout(np.ones(3), -0.1), ValueError, "rate"),
    (lambda: random.dropout(np.ones((2, 3)), 0.5, noise_shape=(2, 2)), ValueError,
     "noise_shape"),
    (lambda: random.dropout(np.ones((2, 3)), 0.5, noise_shape=(2,)), ValueError,
     "noise_shape"),
    (lambda: random.dropout(np.ones(3, np.int32), 0.5), TypeError, "inputs"),
    (lambda: random.shuffle(np.ones((2, 3)), axis=2), ValueError, "axis"),
    (lambda: random.shuffle(np.float32(1.0)), ValueError, "x"),
])
def test_bad_arguments_raise_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_refused_call_does_not_advance_the_seed_generator():
    gen = random.SeedGenerator(3)
    with pytest.raises(ValueError):
        random.normal((2,), dtype="int32", seed=gen)
    with pytest.raises(ValueError):
        random.dropout(np.ones(2), 2.0, seed=gen)
    np.testing.assert_array_equal(gen.state.numpy(), [3, 0])
