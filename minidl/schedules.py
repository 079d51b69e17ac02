"""Learning-rate schedules, Keras 3 names, arguments, defaults and formulas.

Also reachable as ``minidl.optimizers.schedules`` (Keras' path). A schedule maps the
optimizer's step count to a learning rate; an optimizer created with one evaluates it once per
step, in Python, at ``iterations`` before the step (as Keras does), and passes the resulting
float to its compiled update like any other step scalar. So ``__call__`` is plain float
arithmetic on Python numbers, no arrays: a few hundred nanoseconds a step.

Arguments are checked once, at construction (mutating the attributes afterwards is not
checked, as in Keras), and the formulas run in float64 (Keras runs them in the dtype of
``initial_learning_rate``, float32 by default).

Example:
    >>> lr = schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
    >>> optimizer = optimizers.SGD(learning_rate=lr)
    >>> lr(2000)
    0.09216
"""
import bisect
import math
import numbers

from minidl.utils.checks import check_bool, check_name
from minidl.utils.registry import Registry, custom_object_scope, subclass_test
from minidl.utils.registry import serialize as _serialize

SCHEDULES = Registry("learning rate schedule",
                     accepts=subclass_test(lambda: LearningRateSchedule))


def _real(owner, name, value, low=None, high=None, positive=False):
    """value after checking it is a finite real number, > 0 when ``positive``, and within
    [low, high]; an int (a step count) stays an int, so configs keep what the user wrote."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value)):
        raise ValueError(f"{owner}: argument `{name}` must be a finite number. "
                         f"Received: {name}={value!r}")
    if positive and value <= 0:
        raise ValueError(f"{owner}: argument `{name}` must be > 0. Received: {name}={value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{owner}: argument `{name}` must be {bounds}. "
                         f"Received: {name}={value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _nonnegative(owner, name, value, high=None):
    """A rate, factor or power: a float >= 0 (and <= high), so that schedules return floats."""
    return float(_real(owner, name, value, 0, high))


class LearningRateSchedule:
    """The learning-rate schedule base class.

    A schedule can be passed as the ``learning_rate`` of any optimizer. A subclass defines
    ``__call__(step)``, returning the learning rate (a float) for the step count ``step``
    (an int, the optimizer's ``iterations`` before the step), and, to be serializable,
    ``get_config()`` returning its constructor arguments.

    Example:
        >>> class InverseSqrt(LearningRateSchedule):
        ...     def __init__(self, initial_learning_rate):
        ...         self.initial_learning_rate = initial_learning_rate
        ...     def __call__(self, step):
        ...         return self.initial_learning_rate / math.sqrt(step + 1)
        ...     def get_config(self):
        ...         return {"initial_learning_rate": self.initial_learning_rate}
        >>> optimizer = optimizers.SGD(learning_rate=InverseSqrt(0.1))
    """

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  f"override `__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  f"override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        """Instantiates a schedule from the output of :meth:`get_config`."""
        return cls(**config)

    def __repr__(self):
        try:
            config = self.get_config()
        except NotImplementedError:
            return object.__repr__(self)
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


@SCHEDULES.register()
class ExponentialDecay(LearningRateSchedule):
    """Exponential decay: ``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored, so the rate drops by a factor
    ``decay_rate`` every ``decay_steps`` steps.

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        decay_steps: steps over which the rate is multiplied by ``decay_rate``, > 0.
        decay_rate: the decay factor, >= 0.
        staircase: decay at discrete intervals. Defaults to False.
        name: name of the schedule. Defaults to "ExponentialDecay".

    Example:
        >>> lr = ExponentialDecay(0.1, decay_steps=100000, decay_rate=0.96, staircase=True)
        >>> model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _nonnegative(
            owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(owner, "decay_steps", decay_steps, positive=True)
        self.decay_rate = _nonnegative(owner, "decay_rate", decay_rate)
        self.staircase = check_bool(owner, "staircase", staircase)
        self.name = check_name(owner, name, owner)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


@SCHEDULES.register()
class PiecewiseConstantDecay(LearningRateSchedule):
    """Piecewise constant rates: ``values[0]`` while ``step <= boundaries[0]``,
    ``values[i]`` while ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]``
    once ``step > boundaries[-1]``.

    Args:
        boundaries: strictly increasing step counts.
        values: the rates, >= 0; one more than ``boundaries``.
        name: name of the schedule. Defaults to "PiecewiseConstant".

    Example:
        >>> # 1.0 for the first 100001 steps, 0.5 for the next 10000, then 0.1.
        >>> lr = PiecewiseConstantDecay(boundaries=[100000, 110000], values=[1.0, 0.5, 0.1])
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        owner = type(self).__name__
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length "
                             f"{len(values)}.")
        self.boundaries = [_real(owner, "boundaries", b) for b in boundaries]
        self.values = [_nonnegative(owner, "values", v) for v in values]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{owner}: `boundaries` must be strictly increasing. "
                             f"Received: boundaries={boundaries}")
        self.name = check_name(owner, name, owner)

    def __call__(self, step):
        # bisect_left counts the boundaries strictly below step: the index of its interval.
        return self.values[bisect.bisect_left(self.boundaries, step)]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values),
                "name": self.name}


@SCHEDULES.register()
class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate`` in
    ``decay_steps`` steps:
    ``(initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end``.

    With ``cycle=True`` the decay restarts: ``decay_steps`` is replaced by its first multiple
    not below ``step`` (``decay_steps`` itself at step 0), so the rate reaches
    ``end_learning_rate`` at each multiple of ``decay_steps`` and jumps back up after it.

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        decay_steps: length of the decay, > 0.
        end_learning_rate: the final rate, >= 0. Defaults to 0.0001.
        power: the power of the polynomial, >= 0. Defaults to 1.0 (linear).
        cycle: restart the decay after ``decay_steps``. Defaults to False.
        name: name of the schedule. Defaults to "PolynomialDecay".

    Example:
        >>> # From 0.1 to 0.01 in 10000 steps, as a square root.
        >>> lr = PolynomialDecay(0.1, 10000, end_learning_rate=0.01, power=0.5)
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False, name="PolynomialDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _nonnegative(
            owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(owner, "decay_steps", decay_steps, positive=True)
        self.end_learning_rate = _nonnegative(owner, "end_learning_rate", end_learning_rate)
        # A negative power would divide by zero once the decay is complete.
        self.power = _nonnegative(owner, "power", power)
        self.cycle = check_bool(owner, "cycle", cycle)
        self.name = check_name(owner, name, owner)

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            # ceil gives 0 at step 0, where any other multiplier gives the initial rate.
            decay_steps *= math.ceil(step / decay_steps) or 1
        elif step > decay_steps:
            step = decay_steps
        end = self.end_learning_rate
        return (self.initial_learning_rate - end) * (1 - step / decay_steps) ** self.power + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


@SCHEDULES.register()
class InverseTimeDecay(LearningRateSchedule):
    """Inverse time decay: ``initial_learning_rate / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True``, ``step / decay_steps`` is floored.

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        decay_steps: how often the decay is applied, > 0.
        decay_rate: the decay rate, >= 0.
        staircase: decay at discrete intervals. Defaults to False.
        name: name of the schedule. Defaults to "InverseTimeDecay".

    Example:
        >>> # 1/t decay with a rate of 0.5.
        >>> lr = InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _nonnegative(
            owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(owner, "decay_steps", decay_steps, positive=True)
        # A negative rate would drive the denominator through zero.
        self.decay_rate = _nonnegative(owner, "decay_rate", decay_rate)
        self.staircase = check_bool(owner, "staircase", staircase)
        self.name = check_name(owner, name, owner)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


@SCHEDULES.register()
class CosineDecay(LearningRateSchedule):
    """Cosine decay (Loshchilov & Hutter, SGDR), after an optional linear warmup.

    Without ``warmup_target`` the rate decays from ``initial_learning_rate`` to
    ``initial_learning_rate * alpha`` over ``decay_steps`` steps:
    ``peak * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) +
    alpha)``. With ``warmup_target`` the rate first rises linearly from
    ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps`` steps, then decays
    from ``warmup_target`` as above (counting steps from the end of the warmup).

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        decay_steps: length of the decay, > 0.
        alpha: the final rate as a fraction of the peak, in [0, 1]. Defaults to 0.
        name: name of the schedule. Defaults to "CosineDecay".
        warmup_target: the rate reached at the end of the warmup, >= 0, or None for no
            warmup (``warmup_steps`` is then ignored). Defaults to None.
        warmup_steps: length of the warmup, >= 0. Defaults to 0.

    Example:
        >>> # Warm up from 0 to 0.1 in 1000 steps, then decay to 0 in 9000.
        >>> lr = CosineDecay(0.0, 9000, warmup_target=0.1, warmup_steps=1000)
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        owner = type(self).__name__
        self.initial_learning_rate = _nonnegative(
            owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real(owner, "decay_steps", decay_steps, positive=True)
        self.alpha = _nonnegative(owner, "alpha", alpha, 1)
        self.name = check_name(owner, name, owner)
        self.warmup_target = (None if warmup_target is None else
                              _nonnegative(owner, "warmup_target", warmup_target))
        self.warmup_steps = _real(owner, "warmup_steps", warmup_steps, 0)

    def __call__(self, step):
        decay_steps = self.decay_steps
        peak = self.warmup_target
        if peak is None:
            peak = self.initial_learning_rate
        else:
            warmup_steps = self.warmup_steps
            if step < warmup_steps:
                start = self.initial_learning_rate
                return (peak - start) * (step / warmup_steps) + start
            step -= warmup_steps
        if step > decay_steps:
            step = decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / decay_steps)))
        alpha = self.alpha
        return peak * ((1.0 - alpha) * cosine + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


@SCHEDULES.register()
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (Loshchilov & Hutter, SGDR).

    The rate decays along a cosine from ``initial_learning_rate`` to
    ``initial_learning_rate * alpha`` over ``first_decay_steps`` steps; then it restarts.
    Period ``i`` (from 0) lasts ``first_decay_steps * t_mul ** i`` steps and starts from
    ``m_mul ** i`` times the initial rate: at fraction ``f`` of it, the rate is
    ``initial_learning_rate * ((1 - alpha) * 0.5 * m_mul ** i * (1 + cos(pi * f)) + alpha)``.

    Args:
        initial_learning_rate: the rate at step 0, >= 0.
        first_decay_steps: length of the first period, > 0.
        t_mul: growth factor of the period lengths, >= 1. Defaults to 2.0.
        m_mul: factor of the starting rate at each restart, >= 0. Defaults to 1.0.
        alpha: the lowest rate as a fraction of ``initial_learning_rate``, in [0, 1].
            Defaults to 0.
        name: name of the schedule. Defaults to "SGDRDecay".

    Example:
        >>> lr = CosineDecayRestarts(0.1, first_decay_steps=1000)  # periods 1000, 2000, ...
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        owner = type(self).__name__
        self.initial_learning_rate = _nonnegative(
            owner, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _real(owner, "first_decay_steps", first_decay_steps,
                                       positive=True)
        # Periods shrinking by t_mul < 1 sum to a finite number of steps, after which the
        # schedule is undefined (NaN in Keras).
        self.t_mul = float(_real(owner, "t_mul", t_mul, 1))
        self.m_mul = _nonnegative(owner, "m_mul", m_mul)
        self.alpha = _nonnegative(owner, "alpha", alpha, 1)
        self.name = check_name(owner, name, owner)
        # The period of the last call, (t_mul, start, length, index), in units of the first
        # period: consecutive steps nearly always fall in it, and finding a period costs two
        # logarithms.
        self._period = (None, 0.0, 0.0, 0)

    @staticmethod
    def _find_period(fraction, t_mul):
        """(start, length, index) of the period holding ``fraction`` (in first periods)."""
        # Period i starts at (t_mul**i - 1) / (t_mul - 1) first periods.
        restart = math.floor(math.log(1.0 - fraction * (1.0 - t_mul)) / math.log(t_mul))
        length = t_mul ** restart
        start = (1.0 - length) / (1.0 - t_mul)
        # The logarithm can round a step that starts a period into the one before it
        # (math.log(243) / math.log(3) < 5), where its rate would be the period's lowest
        # instead of its highest: move to the period the start values say.
        if fraction >= start + length:
            return start + length, length * t_mul, restart + 1
        if fraction < start:
            return start - length / t_mul, length / t_mul, restart - 1
        return start, length, restart

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        t_mul = self.t_mul
        if t_mul == 1:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            cached_t_mul, start, length, restart = self._period
            if cached_t_mul != t_mul or not start <= fraction < start + length:
                start, length, restart = self._find_period(fraction, t_mul)
                self._period = (t_mul, start, length, restart)
            fraction = (fraction - start) / length
        cosine = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * fraction))
        alpha = self.alpha
        return self.initial_learning_rate * ((1.0 - alpha) * cosine + alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


def serialize(learning_rate_schedule):
    """``{"class_name": ..., "config": ...}`` for a schedule (JSON-compatible).

    Example:
        >>> serialize(ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96))
        {'class_name': 'ExponentialDecay', 'config': {'initial_learning_rate': 0.1, ...}}
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise ValueError(f"serialize expects a LearningRateSchedule. Received: "
                         f"{learning_rate_schedule!r}")
    return _serialize(learning_rate_schedule)


def deserialize(config, custom_objects=None):
    """The schedule described by ``config``, a dict written by :func:`serialize` (the class
    must be registered in ``SCHEDULES``, as the built-in ones are, or given in
    ``custom_objects``). A schedule instance is returned as is.

    Args:
        config: the dict.
        custom_objects: optional dict from names to the program's own schedule classes, as
            in ``minidl.saving.custom_object_scope``.
    """
    if isinstance(config, LearningRateSchedule):
        return config
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret learning rate schedule config {config!r}. "
                         f"Pass a dict {{'class_name': ..., 'config': {{...}}}} as written "
                         f"by serialize().")
    with custom_object_scope(custom_objects):
        return SCHEDULES.get(config, base=LearningRateSchedule)


__all__ = ["CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
           "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "SCHEDULES",
           "deserialize", "serialize"]
