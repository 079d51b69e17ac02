"""Learning-rate schedules: values against the Keras formulas (computed here independently,
vectorised in numpy float64, or by walking the restart periods exactly), configs, argument
errors, optimizers driven by a schedule, and the callbacks that set the rate.
"""
import inspect
import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest

import minidl
from minidl import callbacks, optimizers
from minidl.layers import Dense
from minidl.models import Sequential
from minidl.optimizers import schedules
from minidl.utils import set_random_seed


pytestmark = pytest.mark.usefixtures("one_thread")


def values(schedule, steps):
    return np.array([schedule(int(s)) for s in steps])


def assert_matches(schedule, reference, steps, rtol=1e-12):
    expected = reference(np.asarray(steps, dtype=np.float64))
    np.testing.assert_allclose(values(schedule, steps), expected, rtol=rtol,
                               atol=1e-14 * np.abs(expected).max())


# ---- reference formulas (Keras 3, keras/src/optimizers/schedules) ----

def ref_exponential(lr0, decay_steps, decay_rate, staircase=False):
    def f(step):
        p = step / decay_steps
        return lr0 * decay_rate ** (np.floor(p) if staircase else p)
    return f


def ref_piecewise(boundaries, vals):
    # Keras' form: the sum of each value times the indicator of its interval.
    def f(step):
        out = np.where(step <= boundaries[0], vals[0], 0.0)
        out += np.where(step > boundaries[-1], vals[-1], 0.0)
        for low, high, v in zip(boundaries[:-1], boundaries[1:], vals[1:-1]):
            out += np.where((step > low) & (step <= high), v, 0.0)
        return out
    return f


def ref_polynomial(lr0, decay_steps, end=0.0001, power=1.0, cycle=False):
    def f(step):
        if cycle:
            steps_ = decay_steps * np.where(step == 0, 1.0, np.ceil(step / decay_steps))
        else:
            step, steps_ = np.minimum(step, decay_steps), decay_steps
        return (lr0 - end) * (1 - step / steps_) ** power + end
    return f


def ref_inverse_time(lr0, decay_steps, decay_rate, staircase=False):
    def f(step):
        p = step / decay_steps
        return lr0 / (1 + decay_rate * (np.floor(p) if staircase else p))
    return f


def ref_cosine(lr0, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decayed(step, peak):
        return peak * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * step / decay_steps)) + alpha)

    def f(step):
        if warmup_target is None:
            return decayed(np.minimum(step, decay_steps), lr0)
        step = np.minimum(step, decay_steps + warmup_steps)
        with np.errstate(divide="ignore", invalid="ignore"):
            warm = (warmup_target - lr0) * (step / warmup_steps) + lr0
        return np.where(step < warmup_steps, warm, decayed(step - warmup_steps, warmup_target))
    return f


def restart_starts(first_decay_steps, t_mul, last_step):
    """Exact start steps and lengths of the periods up to last_step."""
    starts, lengths = [Fraction(0)], [Fraction(first_decay_steps)]
    while starts[-1] <= last_step:
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * Fraction(t_mul))
    return starts, lengths


def ref_restarts(lr0, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """By walking the periods in exact arithmetic: period i lasts first_decay_steps * t_mul**i
    steps and peaks at m_mul**i."""
    def f(step):
        starts, lengths = restart_starts(first_decay_steps, t_mul, step.max())
        i = np.searchsorted(np.array([float(s) for s in starts]), step, side="right") - 1
        fraction = np.array([float((Fraction(int(s)) - starts[k]) / lengths[k])
                             for s, k in zip(step, i)])
        return lr0 * ((1 - alpha) * 0.5 * m_mul ** i * (1 + np.cos(np.pi * fraction)) + alpha)
    return f


def keras_restarts_formula(lr0, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """Keras' closed form (a logarithm finds the period), literally, in float64."""
    def f(step):
        fraction = step / first_decay_steps
        if t_mul == 1.0:
            i = np.floor(fraction)
            fraction = fraction - i
        else:
            i = np.floor(np.log(1.0 - fraction * (1.0 - t_mul)) / np.log(t_mul))
            sum_r = (1.0 - t_mul ** i) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / t_mul ** i
        return lr0 * ((1 - alpha) * 0.5 * m_mul ** i * (1 + np.cos(np.pi * fraction)) + alpha)
    return f


# ---- values ----

STEPS = np.arange(0, 3001)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("decay_steps", [100, 7.5])
def test_exponential_decay(staircase, decay_steps):
    args = (0.1, decay_steps, 0.96, staircase)
    assert_matches(schedules.ExponentialDecay(*args), ref_exponential(*args), STEPS)


def test_exponential_decay_staircase_drops_exactly_at_multiples():
    lr = schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)
    assert [lr(s) for s in (0, 9, 10, 19, 20, 29, 30)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25,
                                                            0.125]


@pytest.mark.parametrize("boundaries, vals", [
    ([100, 110], [1.0, 0.5, 0.1]),
    ([10, 20, 35, 1000], [0.5, 0.4, 0.3, 0.2, 0.1]),
    ([9.5, 20.25], [3.0, 2.0, 1.0]),
    ([0], [1.0, 0.0]),
])
def test_piecewise_constant_decay(boundaries, vals):
    lr = schedules.PiecewiseConstantDecay(boundaries, vals)
    assert_matches(lr, ref_piecewise(boundaries, vals), np.arange(-2, 1200), rtol=0)


def test_piecewise_constant_decay_boundary_belongs_to_the_interval_below():
    lr = schedules.PiecewiseConstantDecay([100000, 110000], [1.0, 0.5, 0.1])
    assert [lr(s) for s in (0, 100000, 100001, 110000, 110001)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    assert schedules.PiecewiseConstantDecay([], [0.3])(12345) == 0.3


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5, 2.0, 0.0])
def test_polynomial_decay(power, cycle):
    args = (0.1, 400, 0.01, power, cycle)
    assert_matches(schedules.PolynomialDecay(*args), ref_polynomial(*args), STEPS)


def test_polynomial_decay_cycle_boundaries():
    lr = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.0, cycle=True)
    # Step 0 uses one period; each multiple of decay_steps ends a period at end_learning_rate,
    # and the next step restarts from the top of a period twice (three times...) as long.
    assert lr(0) == 1.0 and lr(5) == 0.5 and lr(10) == 0.0
    assert lr(11) == pytest.approx(1 - 11 / 20) and lr(20) == 0.0
    assert lr(21) == pytest.approx(1 - 21 / 30)
    flat = schedules.PolynomialDecay(1.0, 10, end_learning_rate=0.25)
    assert flat(10) == flat(11) == flat(10 ** 6) == 0.25


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("decay_steps", [1.0, 50])
def test_inverse_time_decay(staircase, decay_steps):
    args = (0.1, decay_steps, 0.5, staircase)
    assert_matches(schedules.InverseTimeDecay(*args), ref_inverse_time(*args), STEPS)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(alpha=0.1),
    dict(alpha=0.2, warmup_target=0.5, warmup_steps=300),
    dict(warmup_target=0.5, warmup_steps=1),
    dict(warmup_target=0.5, warmup_steps=0),     # no warmup: decays from warmup_target
    dict(warmup_steps=300),                      # no warmup_target: warmup_steps is ignored
])
def test_cosine_decay(kwargs):
    lr = schedules.CosineDecay(0.01, 1000, **kwargs)
    assert_matches(lr, ref_cosine(0.01, 1000, **kwargs), STEPS)


def test_cosine_decay_warmup_boundaries():
    lr = schedules.CosineDecay(0.0, 100, alpha=0.1, warmup_target=1.0, warmup_steps=10)
    assert lr(0) == 0.0 and lr(5) == 0.5
    assert lr(10) == 1.0                                  # the peak: the decay starts here
    assert lr(60) == pytest.approx(0.55)                  # halfway: (1 + alpha) / 2
    assert lr(110) == lr(111) == lr(10 ** 6) == pytest.approx(0.1)


RESTARTS = [
    dict(first_decay_steps=20),
    dict(first_decay_steps=20, t_mul=1.0),
    dict(first_decay_steps=10, t_mul=1.0, m_mul=0.5, alpha=0.1),
    dict(first_decay_steps=2, t_mul=3.0, m_mul=0.9),
    dict(first_decay_steps=8, t_mul=1.5, m_mul=0.8, alpha=0.05),
    dict(first_decay_steps=7.5, t_mul=2.0, alpha=0.2),
]


@pytest.mark.parametrize("kwargs", RESTARTS)
def test_cosine_decay_restarts(kwargs):
    lr = schedules.CosineDecayRestarts(0.1, **kwargs)
    assert_matches(lr, ref_restarts(0.1, **kwargs), STEPS, rtol=1e-9)


@pytest.mark.parametrize("kwargs", [k for k in RESTARTS if k["first_decay_steps"] % 1 == 0])
def test_cosine_decay_restarts_peak_at_every_period_start(kwargs):
    lr = schedules.CosineDecayRestarts(0.1, **kwargs)
    starts, _ = restart_starts(kwargs["first_decay_steps"], kwargs.get("t_mul", 2.0),
                               STEPS[-1])
    m_mul = kwargs.get("m_mul", 1.0)
    checked = 0
    for i, start in enumerate(starts[:-1]):
        if start.denominator == 1:       # a period that starts on a step
            assert lr(int(start)) == pytest.approx(0.1 * m_mul ** i * (1 - kwargs.get(
                "alpha", 0.0)) + 0.1 * kwargs.get("alpha", 0.0), rel=1e-12), (i, start)
            checked += 1
    assert checked >= 3


def test_cosine_decay_restarts_agrees_with_keras_closed_form_between_period_starts():
    for kwargs in RESTARTS:
        starts, _ = restart_starts(kwargs["first_decay_steps"], kwargs.get("t_mul", 2.0),
                                   STEPS[-1])
        steps = np.setdiff1d(STEPS, [int(s) for s in starts if s.denominator == 1])
        lr = schedules.CosineDecayRestarts(0.1, **kwargs)
        assert_matches(lr, keras_restarts_formula(0.1, **kwargs), steps, rtol=1e-9)


def test_cosine_decay_restarts_where_the_closed_form_rounds_into_the_previous_period():
    # Step 242 starts period 5 (2 + 6 + 18 + 54 + 162 steps before it), but
    # log(243) / log(3) rounds below 5: the closed form puts it at the end of period 4.
    assert math.floor(math.log(243) / math.log(3)) == 4
    lr = schedules.CosineDecayRestarts(1.0, 2, t_mul=3.0)
    assert lr(242) == 1.0
    assert lr(241) == pytest.approx(0.5 * (1 + math.cos(math.pi * 161 / 162)))


def test_cosine_decay_restarts_any_order_of_steps():
    # The period of the previous call is cached: steps out of order must not reuse it.
    lr = schedules.CosineDecayRestarts(0.1, 3, t_mul=1.5, m_mul=0.7)
    order = np.random.default_rng(0).permutation(400)
    np.testing.assert_allclose(values(lr, order),
                               ref_restarts(0.1, 3, 1.5, 0.7)(order.astype(np.float64)),
                               rtol=1e-9)
    lr(399)
    lr.t_mul = 2.0     # the cache is keyed by t_mul: step 399 is in another period now
    steps = np.array([399] + list(range(200)))
    np.testing.assert_allclose(values(lr, steps),
                               ref_restarts(0.1, 3, 2.0, 0.7)(steps.astype(np.float64)),
                               rtol=1e-9)


ALL = [
    schedules.ExponentialDecay(0.1, 100, 0.9, staircase=True, name="exp"),
    schedules.PiecewiseConstantDecay([5, 10], [0.3, 0.2, 0.1]),
    schedules.PolynomialDecay(0.1, 40, end_learning_rate=0.01, power=2.0, cycle=True),
    schedules.InverseTimeDecay(0.1, 10, 0.5),
    schedules.CosineDecay(0.0, 30, alpha=0.1, warmup_target=0.2, warmup_steps=10),
    schedules.CosineDecayRestarts(0.1, 8, t_mul=1.5, m_mul=0.9, alpha=0.05),
]
IDS = [type(s).__name__ for s in ALL]


@pytest.mark.parametrize("schedule", ALL, ids=IDS)
def test_values_are_python_floats(schedule):
    assert all(type(schedule(s)) is float for s in range(60))
    assert isinstance(schedule(np.int64(7)), float)
    assert schedule(np.int64(7)) == schedule(7)


# ---- configs ----

KERAS_DEFAULTS = {
    schedules.ExponentialDecay: dict(staircase=False, name="ExponentialDecay"),
    schedules.PiecewiseConstantDecay: dict(name="PiecewiseConstant"),
    schedules.PolynomialDecay: dict(end_learning_rate=0.0001, power=1.0, cycle=False,
                                    name="PolynomialDecay"),
    schedules.InverseTimeDecay: dict(staircase=False, name="InverseTimeDecay"),
    schedules.CosineDecay: dict(alpha=0.0, name="CosineDecay", warmup_target=None,
                                warmup_steps=0),
    schedules.CosineDecayRestarts: dict(t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"),
}


@pytest.mark.parametrize("schedule", ALL, ids=IDS)
def test_config_round_trip(schedule):
    cls = type(schedule)
    config = schedule.get_config()
    assert list(config) == list(inspect.signature(cls).parameters)
    text = json.dumps(schedules.serialize(schedule))
    again = schedules.deserialize(json.loads(text))
    assert type(again) is cls and again.get_config() == config
    assert cls.from_config(config).get_config() == config
    assert values(again, range(80)).tolist() == values(schedule, range(80)).tolist()
    assert repr(schedule).startswith(f"{cls.__name__}(") and "name=" in repr(schedule)


def test_keras_defaults_and_positional_order():
    made = {
        schedules.ExponentialDecay: schedules.ExponentialDecay(0.1, 10, 0.5),
        schedules.PiecewiseConstantDecay: schedules.PiecewiseConstantDecay([1], [0.2, 0.1]),
        schedules.PolynomialDecay: schedules.PolynomialDecay(0.1, 10),
        schedules.InverseTimeDecay: schedules.InverseTimeDecay(0.1, 10, 0.5),
        schedules.CosineDecay: schedules.CosineDecay(0.1, 10),
        schedules.CosineDecayRestarts: schedules.CosineDecayRestarts(0.1, 10),
    }
    for cls, schedule in made.items():
        config = schedule.get_config()
        assert {k: config[k] for k in KERAS_DEFAULTS[cls]} == KERAS_DEFAULTS[cls], cls
    # As in Keras, CosineDecay's fourth positional argument is the name.
    assert schedules.CosineDecay(0.1, 10, 0.0, "cos").name == "cos"
    assert schedules.PolynomialDecay(0.1, 10, 0.5).end_learning_rate == 0.5


def test_registry_and_module_paths():
    from minidl.optimizers.schedules import CosineDecay
    assert CosineDecay is schedules.CosineDecay is minidl.schedules.CosineDecay
    assert optimizers.schedules is minidl.schedules
    for name in IDS:
        assert schedules.SCHEDULES.lookup(name).__name__ == name
    with pytest.raises(ValueError, match="Unknown learning rate schedule 'StepDecay'"):
        schedules.deserialize({"class_name": "StepDecay", "config": {}})
    with pytest.raises(ValueError, match="Could not interpret learning rate schedule config "
                                         "'exponentialdecay'"):
        schedules.deserialize("exponentialdecay")
    with pytest.raises(ValueError, match="Received: 0.1"):
        schedules.serialize(0.1)
    lr = schedules.InverseTimeDecay(0.1, 10, 0.5)
    assert schedules.deserialize(lr) is lr


class InverseSqrt(schedules.LearningRateSchedule):
    def __init__(self, initial_learning_rate):
        self.initial_learning_rate = initial_learning_rate

    def __call__(self, step):
        return self.initial_learning_rate / math.sqrt(step + 1)


def test_base_class_contract_and_a_custom_schedule():
    base = schedules.LearningRateSchedule()
    with pytest.raises(NotImplementedError, match="must override `__call__"):
        base(0)
    with pytest.raises(NotImplementedError, match="must override `get_config"):
        base.get_config()
    lr = InverseSqrt(1.0)
    assert repr(lr).startswith("<") and lr(3) == 0.5
    opt = optimizers.SGD(learning_rate=lr)
    w = np.zeros(1)
    for _ in range(4):
        opt.apply([np.ones(1)], [w])
    assert w[0] == pytest.approx(-(1 + 1 / math.sqrt(2) + 1 / math.sqrt(3) + 0.5))
    assert opt.learning_rate == pytest.approx(1 / math.sqrt(5))


# ---- argument errors ----

@pytest.mark.parametrize("make, echo", [
    (lambda: schedules.ExponentialDecay(0.1, 0, 0.9), "must be > 0. Received: decay_steps=0"),
    (lambda: schedules.ExponentialDecay(0.1, -5, 0.9), "decay_steps=-5"),
    (lambda: schedules.ExponentialDecay(0.1, float("nan"), 0.9), "decay_steps=nan"),
    (lambda: schedules.ExponentialDecay(0.1, True, 0.9), "decay_steps=True"),
    (lambda: schedules.ExponentialDecay(0.1, 10, -0.5), "decay_rate=-0.5"),
    (lambda: schedules.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate=-0.1"),
    (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), "initial_learning_rate='0.1'"),
    (lambda: schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5]),
     "The length of boundaries should be 1 less than the length of values. Received: "
     "boundaries=[10, 20] of length 2, and values=[1.0, 0.5] of length 2."),
    (lambda: schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]),
     "`boundaries` must be strictly increasing. Received: boundaries=[20, 10]"),
    (lambda: schedules.PiecewiseConstantDecay([10, 10], [1.0, 0.5, 0.1]),
     "boundaries=[10, 10]"),
    (lambda: schedules.PiecewiseConstantDecay([10], [1.0, -0.5]), "values=-0.5"),
    (lambda: schedules.PiecewiseConstantDecay([None], [1.0, 0.5]), "boundaries=None"),
    (lambda: schedules.PolynomialDecay(0.1, 0), "decay_steps=0"),
    (lambda: schedules.PolynomialDecay(0.1, 10, power=-1), "power=-1"),
    (lambda: schedules.PolynomialDecay(0.1, 10, end_learning_rate=-1e-3),
     "end_learning_rate=-0.001"),
    (lambda: schedules.InverseTimeDecay(0.1, -1.0, 0.5), "decay_steps=-1.0"),
    (lambda: schedules.InverseTimeDecay(0.1, 10, -2), "decay_rate=-2"),
    (lambda: schedules.CosineDecay(0.1, 0), "decay_steps=0"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=1.5), "must be in [0, 1]. Received: alpha=1.5"),
    (lambda: schedules.CosineDecay(0.1, 10, alpha=-0.1), "alpha=-0.1"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-5),
     "warmup_steps=-5"),
    (lambda: schedules.CosineDecay(0.1, 10, warmup_target=-0.2), "warmup_target=-0.2"),
    (lambda: schedules.CosineDecayRestarts(0.1, 0), "first_decay_steps=0"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, t_mul=0.5), "t_mul=0.5"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, m_mul=-1.0), "m_mul=-1.0"),
    (lambda: schedules.CosineDecayRestarts(0.1, 10, alpha=2), "alpha=2"),
])
def test_bad_arguments_echo_the_value(make, echo):
    with pytest.raises(ValueError, match=re.escape(echo)):
        make()


# ---- optimizers driven by a schedule ----

REFERENCES = [
    ref_exponential(0.1, 100, 0.9, True),
    ref_piecewise([5, 10], [0.3, 0.2, 0.1]),
    ref_polynomial(0.1, 40, 0.01, 2.0, True),
    ref_inverse_time(0.1, 10, 0.5),
    ref_cosine(0.0, 30, 0.1, 0.2, 10),
    ref_restarts(0.1, 8, 1.5, 0.9, 0.05),
]


@pytest.mark.parametrize("schedule, reference", list(zip(ALL, REFERENCES)), ids=IDS)
def test_sgd_moves_by_the_sum_of_the_scheduled_rates(schedule, reference):
    # Step k (from 0) uses the rate at iterations == k, as Keras evaluates it before counting.
    g = np.array([1.0, -2.0, 0.5])
    w = np.array([0.3, 0.1, -0.2])
    w0 = w.copy()
    opt = optimizers.SGD(learning_rate=schedule)
    rates = reference(np.arange(60.0))
    for k in range(60):
        assert opt.learning_rate == pytest.approx(rates[k], rel=1e-9, abs=1e-15)
        opt.apply([g], [w])
        np.testing.assert_allclose(w, w0 - g * rates[:k + 1].sum(), rtol=1e-12, atol=1e-15)
    assert opt.iterations == 60
    assert type(opt.learning_rate) is float and opt.learning_rate == schedule(60)


OPTIMIZERS = [
    lambda lr: optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True),
    lambda lr: optimizers.Adam(learning_rate=lr, amsgrad=True),
    lambda lr: optimizers.AdamW(learning_rate=lr, weight_decay=0.1),
    lambda lr: optimizers.RMSprop(learning_rate=lr, momentum=0.5, centered=True),
    lambda lr: optimizers.Adagrad(learning_rate=lr),
    lambda lr: optimizers.Nadam(learning_rate=lr, clipnorm=0.5),
]


@pytest.mark.parametrize("make", OPTIMIZERS,
                         ids=["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_optimizer_with_a_schedule_equals_setting_each_rate_by_hand(make, dtype):
    schedule = schedules.CosineDecay(0.01, 20, alpha=0.1, warmup_target=0.05, warmup_steps=5)
    r = np.random.default_rng(3)
    w = [r.standard_normal((4, 3)).astype(dtype), r.standard_normal(3).astype(dtype)]
    v = [a.copy() for a in w]
    scheduled, by_hand = make(schedule), make(1.0)
    for step in range(30):
        grads = [r.standard_normal(a.shape).astype(dtype) for a in w]
        scheduled.apply(grads, w)
        by_hand.learning_rate = schedule(by_hand.iterations)
        by_hand.apply(grads, v)
    for a, b in zip(w, v):
        np.testing.assert_array_equal(a, b)


def test_the_general_apply_path_uses_the_schedule_too():
    # Variables in another order, None gradients and apply_gradients take the slower path.
    lr = schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5, 0.25])
    w, b = np.zeros(2), np.zeros(1)
    opt = optimizers.SGD(learning_rate=lr)
    opt.build([w, b])
    opt.apply([np.ones(1), np.ones(2)], [b, w])                       # step 0: rate 1.0
    with pytest.warns(UserWarning, match="None"):
        opt.apply([None, np.ones(1)], [w, b])                         # step 1: rate 1.0
    opt.apply_gradients([(np.ones(2), w), (np.ones(1), b)])           # step 2: rate 0.5
    opt.apply([np.ones(2), np.ones(1)])                               # step 3: rate 0.25
    np.testing.assert_array_equal(w, [-1.75, -1.75])
    np.testing.assert_array_equal(b, [-2.75])


def test_learning_rate_follows_iterations():
    lr = schedules.ExponentialDecay(0.1, 10, 0.5)
    opt = optimizers.Adam(learning_rate=lr)
    assert opt.learning_rate == 0.1
    opt.iterations = 20
    assert opt.learning_rate == pytest.approx(0.025)
    w = np.zeros(1)
    opt.apply([np.ones(1)], [w])
    assert opt.iterations == 21 and opt.learning_rate == lr(21)


def test_setting_the_rate_of_a_scheduled_optimizer():
    lr = schedules.InverseTimeDecay(0.1, 10, 0.5)
    opt = optimizers.SGD(learning_rate=lr)
    with pytest.raises(TypeError, match="This optimizer was created with a "
                                        "`LearningRateSchedule` object as its `learning_rate` "
                                        "constructor argument, hence its learning rate is not "
                                        "settable"):
        opt.learning_rate = 0.01
    other = schedules.ExponentialDecay(0.2, 10, 0.5)
    opt.learning_rate = other                     # a schedule replaces a schedule (Keras)
    assert opt.learning_rate == 0.2
    plain = optimizers.SGD(learning_rate=0.5)
    plain.learning_rate = lr                      # and a float (Keras)
    assert plain.learning_rate == 0.1
    with pytest.raises(ValueError, match="float or a LearningRateSchedule; received "
                                         "learning_rate='0.1'"):
        optimizers.SGD(learning_rate="0.1")
    with pytest.raises(ValueError, match="learning_rate=-0.1"):
        optimizers.SGD(learning_rate=-0.1)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam"])
def test_optimizer_config_with_a_schedule(name):
    lr = schedules.CosineDecayRestarts(0.1, 8, t_mul=1.5, m_mul=0.9, alpha=0.05)
    opt = type(optimizers.get(name))(learning_rate=lr)
    config = opt.get_config()
    assert config["learning_rate"] == schedules.serialize(lr)
    for again in (type(opt).from_config(config),
                  optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(opt))))):
        assert type(again) is type(opt) and again.get_config() == config
        for k in range(50):
            again.iterations = k
            assert again.learning_rate == lr(k)
    assert "CosineDecayRestarts(initial_learning_rate=0.1" in repr(opt)


class InverseSqrtWithConfig(InverseSqrt):
    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate}


def test_custom_schedules_save_with_get_config_and_load_only_when_registered():
    with pytest.raises(NotImplementedError, match="'InverseSqrt' must override `get_config"):
        optimizers.SGD(learning_rate=InverseSqrt(0.1)).get_config()
    config = optimizers.serialize(optimizers.SGD(learning_rate=InverseSqrtWithConfig(0.1)))
    assert config["config"]["learning_rate"] == {"class_name": "InverseSqrtWithConfig",
                                                 "config": {"initial_learning_rate": 0.1}}
    with pytest.raises(ValueError, match="Unknown learning rate schedule "
                                         "'InverseSqrtWithConfig'"):
        optimizers.deserialize(config)


# ---- fit and callbacks ----

def blobs(n=40, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, features)) * 2.0
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, features))).astype(np.float32), y


def small_model(learning_rate):
    set_random_seed(1)
    model = Sequential([Dense(5, activation="tanh", input_shape=(4,)),
                        Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy")
    return model


def test_fit_advances_the_schedule_every_step():
    lr = schedules.ExponentialDecay(0.1, 2, 0.5)
    model = small_model(lr)
    seen = []
    record = callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(model.optimizer.learning_rate))
    x, y = blobs()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[record])
    assert model.optimizer.iterations == 6                      # 3 batches an epoch
    assert seen == [lr(k) for k in range(6)]
    assert model.optimizer.learning_rate == lr(6)


@pytest.mark.parametrize("callback", [
    callbacks.ReduceLROnPlateau(monitor="loss", patience=1),
    callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5),
], ids=["ReduceLROnPlateau", "LearningRateScheduler"])
def test_callbacks_that_set_the_rate_refuse_a_schedule_before_training(callback):
    model = small_model(schedules.ExponentialDecay(0.1, 2, 0.5))
    assert model.built
    before = model.get_weights()
    x, y = blobs()
    name = type(callback).__name__
    with pytest.raises(TypeError, match=f"{name} sets the optimizer's learning rate, but the "
                                        f"optimizer's learning rate is ExponentialDecay\\(.*"
                                        f"hence its learning rate is not settable"):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_reduce_lr_logs_the_rate_of_a_float_optimizer_as_before():
    model = small_model(0.1)
    x, y = blobs()
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0,
                        callbacks=[callbacks.ReduceLROnPlateau(monitor="loss")])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1])
