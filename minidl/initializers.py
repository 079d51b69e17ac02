"""Weight initializers with the names, arguments and formulas of Keras 3.

An initializer is a callable ``init(shape, dtype="float32") -> numpy.ndarray`` with a
``get_config()`` that returns exactly its constructor arguments. Random initializers take a
``seed``: with an int seed each call builds its own generator from that seed, so every call
returns the same values; with ``seed=None`` they draw from minidl's global generator
(:func:`minidl.utils.random.global_rng`), so successive calls differ and
:func:`minidl.utils.set_random_seed` makes the whole sequence reproducible.

Values are drawn in float64 and cast to the requested dtype, so one seed gives the same
numbers (up to rounding) for float32 and float64 weights.
"""
import math
import numbers

import numpy as np

from minidl.utils.random import global_rng
from minidl.utils.registry import Registry, deserializer, subclass_test
from minidl.utils.registry import serialize as _serialize

INITIALIZERS = Registry("initializer", accepts=subclass_test(lambda: Initializer))

# Standard deviation of a standard normal truncated to [-2, 2]. VarianceScaling divides by
# it so that the *truncated* samples have the variance the formula asks for (as Keras does).
_TRUNCATED_STDDEV = 0.87962566103423978


def compute_fans(shape):
    """Number of input and output units of a weight tensor, as Keras counts them.

    Args:
        shape: tuple of ints. ``()``: (1, 1); ``(n,)``: (n, n); ``(in, out)``: (in, out);
            convolution kernels ``(*spatial, in, out)``: the receptive field size (the
            product of the spatial dimensions) times ``in`` and times ``out``.

    Returns:
        ``(fan_in, fan_out)`` as ints.

    Example:
        >>> compute_fans((3, 3, 16, 32))
        (144, 288)
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    receptive_field = math.prod(shape[:-2])
    return int(shape[-2] * receptive_field), int(shape[-1] * receptive_field)


def _check_shape(shape):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"`shape` must be a tuple of ints. Received: shape={shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"`shape` must be a tuple of non-negative ints. Received: "
                             f"shape={shape!r}")
    return tuple(int(d) for d in dims)


def _float_dtype(dtype):
    dt = np.dtype("float32" if dtype is None else dtype)
    if dt.kind != "f":
        raise ValueError(f"Random initializers produce floating-point values; expected a "
                         f"float dtype. Received: dtype={dtype!r}")
    return dt


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be an int or None. Received: seed={seed!r} of type "
                        f"{type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0. Received: seed={seed}")
    return int(seed)


def _check_real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite. Received: {name}={value!r}")
    # numpy scalars become Python numbers so that get_config() stays JSON-serialisable.
    return value.item() if isinstance(value, np.generic) else value


def _truncated_standard_normal(rng, size):
    """Standard normal samples, each redrawn until it lies within 2 standard deviations."""
    z = rng.standard_normal(size)
    flat = z.reshape(-1)  # a view: z is freshly allocated and contiguous
    redraw = np.flatnonzero(np.abs(flat) > 2.0)
    while redraw.size:  # about 4.6% of the remaining samples fail each round
        fresh = rng.standard_normal(redraw.size)
        ok = np.abs(fresh) <= 2.0
        flat[redraw[ok]] = fresh[ok]
        redraw = redraw[~ok]
    return z


class Initializer:
    """Base class: a callable that returns a new array of a given shape and dtype.

    Subclasses implement ``__call__(shape, dtype="float32")`` and, when they take arguments,
    ``get_config()`` returning exactly those arguments.
    """

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__.")

    def get_config(self):
        """The constructor arguments, as a JSON-serialisable dict."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Rebuilds an initializer from ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class RandomInitializer(Initializer):
    """Base of the random initializers: owns the ``seed`` and picks the generator."""

    def __init__(self, seed=None):
        self.seed = _check_seed(seed)

    def _rng(self):
        # A fresh generator per call: an int seed must give the same values every call.
        return global_rng() if self.seed is None else np.random.default_rng(self.seed)

    def get_config(self):
        return {"seed": self.seed}


@INITIALIZERS.register("zeros", "zero")
class Zeros(Initializer):
    """Initializer that generates arrays of zeros.

    Example:
        >>> Zeros()((2, 2))
        array([[0., 0.],
               [0., 0.]], dtype=float32)
    """

    def __call__(self, shape, dtype="float32"):
        return np.zeros(_check_shape(shape), dtype=np.dtype(dtype or "float32"))


@INITIALIZERS.register("ones", "one")
class Ones(Initializer):
    """Initializer that generates arrays of ones.

    Example:
        >>> Ones()((2,))
        array([1., 1.], dtype=float32)
    """

    def __call__(self, shape, dtype="float32"):
        return np.ones(_check_shape(shape), dtype=np.dtype(dtype or "float32"))


@INITIALIZERS.register("constant")
class Constant(Initializer):
    """Initializer that fills arrays with one scalar value.

    Args:
        value: a Python (or numpy) scalar.

    Example:
        >>> Constant(0.1)((3,))
        array([0.1, 0.1, 0.1], dtype=float32)
    """

    def __init__(self, value=0.0):
        self.value = _check_real("value", value)

    def __call__(self, shape, dtype="float32"):
        return np.full(_check_shape(shape), self.value, dtype=np.dtype(dtype or "float32"))

    def get_config(self):
        return {"value": self.value}


@INITIALIZERS.register("random_normal", "normal")
class RandomNormal(RandomInitializer):
    """Initializer that draws from a normal distribution.

    Args:
        mean: mean of the distribution.
        stddev: standard deviation, >= 0.
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> RandomNormal(mean=0.0, stddev=1.0, seed=1)((2, 2)).shape
        (2, 2)
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _check_real("mean", mean)
        self.stddev = _check_real("stddev", stddev)
        if self.stddev < 0:
            raise ValueError(f"`stddev` must be >= 0. Received: stddev={stddev}")
        super().__init__(seed)

    def __call__(self, shape, dtype="float32"):
        shape, dt = _check_shape(shape), _float_dtype(dtype)
        z = self._rng().standard_normal(shape)
        return (self.mean + self.stddev * z).astype(dt, copy=False)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@INITIALIZERS.register("truncated_normal")
class TruncatedNormal(RandomInitializer):
    """Initializer that draws from a normal distribution truncated at 2 standard deviations.

    Samples further than ``2 * stddev`` from ``mean`` are discarded and redrawn, so every
    value lies in ``[mean - 2 stddev, mean + 2 stddev]``.

    Args:
        mean: mean of the (untruncated) distribution.
        stddev: standard deviation of the (untruncated) distribution, >= 0.
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> w = TruncatedNormal(stddev=1.0, seed=0)((1000,))
        >>> bool((abs(w) <= 2).all())
        True
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = _check_real("mean", mean)
        self.stddev = _check_real("stddev", stddev)
        if self.stddev < 0:
            raise ValueError(f"`stddev` must be >= 0. Received: stddev={stddev}")
        super().__init__(seed)

    def __call__(self, shape, dtype="float32"):
        shape, dt = _check_shape(shape), _float_dtype(dtype)
        z = _truncated_standard_normal(self._rng(), shape)
        return (self.mean + self.stddev * z).astype(dt, copy=False)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@INITIALIZERS.register("random_uniform", "uniform")
class RandomUniform(RandomInitializer):
    """Initializer that draws from a uniform distribution on ``[minval, maxval)``.

    Args:
        minval: lower bound (inclusive).
        maxval: upper bound (exclusive), >= minval.
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> w = RandomUniform(minval=0.0, maxval=1.0, seed=3)((2, 2))
    """

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = _check_real("minval", minval)
        self.maxval = _check_real("maxval", maxval)
        if self.maxval < self.minval:
            raise ValueError(f"`maxval` must be >= `minval`. Received: minval={minval}, "
                             f"maxval={maxval}")
        super().__init__(seed)

    def __call__(self, shape, dtype="float32"):
        shape, dt = _check_shape(shape), _float_dtype(dtype)
        u = self._rng().random(shape)
        return (self.minval + (self.maxval - self.minval) * u).astype(dt, copy=False)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


@INITIALIZERS.register("variance_scaling")
class VarianceScaling(RandomInitializer):
    """Initializer whose scale adapts to the shape of the weights.

    With ``n`` = fan_in, fan_out or their mean (``mode``; see :func:`compute_fans`):

    - ``"truncated_normal"``: normal truncated at 2 standard deviations whose standard
      deviation *after* truncation is ``sqrt(scale / n)``;
    - ``"untruncated_normal"``: normal with standard deviation ``sqrt(scale / n)``;
    - ``"uniform"``: uniform on ``[-limit, limit]`` with ``limit = sqrt(3 * scale / n)``.

    Args:
        scale: positive scaling factor.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (``"normal"`` is accepted as its alias),
            ``"untruncated_normal"`` or ``"uniform"``.
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> init = VarianceScaling(scale=0.1, mode="fan_in", distribution="uniform")
        >>> init((784, 64)).shape
        (784, 64)
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        scale = _check_real("scale", scale)
        if not scale > 0:
            raise ValueError(f"`scale` must be a positive float. Received: scale={scale}")
        if mode not in self._MODES:
            raise ValueError(f"`mode` must be one of {', '.join(self._MODES)}. Received: "
                             f"mode={mode!r}")
        dist = distribution.lower() if isinstance(distribution, str) else distribution
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in self._DISTRIBUTIONS:
            raise ValueError(f"`distribution` must be one of {', '.join(self._DISTRIBUTIONS)}"
                             f". Received: distribution={distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, dist
        super().__init__(seed)

    def __call__(self, shape, dtype="float32"):
        shape, dt = _check_shape(shape), _float_dtype(dtype)
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        variance = self.scale / max(1.0, n[self.mode])
        rng = self._rng()
        if self.distribution == "truncated_normal":
            z = _truncated_standard_normal(rng, shape) * (math.sqrt(variance) / _TRUNCATED_STDDEV)
        elif self.distribution == "untruncated_normal":
            z = rng.standard_normal(shape) * math.sqrt(variance)
        else:
            limit = math.sqrt(3.0 * variance)
            z = rng.uniform(-limit, limit, shape)
        return z.astype(dt, copy=False)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _FixedVarianceScaling(VarianceScaling):
    """A named VarianceScaling preset: the only argument is ``seed``."""

    _PRESET = {}

    def __init__(self, seed=None):
        super().__init__(seed=seed, **self._PRESET)

    def get_config(self):
        return {"seed": self.seed}


@INITIALIZERS.register("glorot_uniform")
class GlorotUniform(_FixedVarianceScaling):
    """Glorot (Xavier) uniform: uniform on ``[-limit, limit]``, ``limit = sqrt(6 / fan_sum)``.

    ``fan_sum = fan_in + fan_out``. The default kernel initializer of Keras layers.

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> GlorotUniform(seed=0)((784, 64)).dtype
        dtype('float32')
    """

    _PRESET = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


@INITIALIZERS.register("glorot_normal")
class GlorotNormal(_FixedVarianceScaling):
    """Glorot (Xavier) normal: truncated normal with ``stddev = sqrt(2 / (fan_in + fan_out))``.

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> GlorotNormal(seed=0)((64, 10)).shape
        (64, 10)
    """

    _PRESET = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


@INITIALIZERS.register("he_uniform")
class HeUniform(_FixedVarianceScaling):
    """He uniform: uniform on ``[-limit, limit]``, ``limit = sqrt(6 / fan_in)``.

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> HeUniform(seed=0)((3, 3, 1, 32)).shape
        (3, 3, 1, 32)
    """

    _PRESET = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


@INITIALIZERS.register("he_normal")
class HeNormal(_FixedVarianceScaling):
    """He normal: truncated normal with ``stddev = sqrt(2 / fan_in)``.

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> HeNormal(seed=0)((784, 128)).shape
        (784, 128)
    """

    _PRESET = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


@INITIALIZERS.register("lecun_uniform")
class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform: uniform on ``[-limit, limit]``, ``limit = sqrt(3 / fan_in)``.

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> LecunUniform(seed=0)((128, 10)).shape
        (128, 10)
    """

    _PRESET = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


@INITIALIZERS.register("lecun_normal")
class LecunNormal(_FixedVarianceScaling):
    """LeCun normal: truncated normal with ``stddev = sqrt(1 / fan_in)`` (for SELU networks).

    Args:
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> LecunNormal(seed=0)((128, 10)).shape
        (128, 10)
    """

    _PRESET = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


@INITIALIZERS.register("orthogonal", "OrthogonalInitializer", "orthogonal_initializer")
class Orthogonal(RandomInitializer):
    """Initializer that generates an orthogonal matrix (times ``gain``).

    The shape is viewed as a matrix ``(prod(shape[:-1]), shape[-1])``. A standard normal
    matrix is QR-factorised and ``Q`` (with column signs fixed by ``diag(R)`` so that the
    result is uniformly distributed) is returned: orthonormal columns when there are at
    least as many rows as columns, orthonormal rows otherwise.

    Args:
        gain: multiplicative factor applied to the orthogonal matrix.
        seed: int for the same values on every call, or None to draw from minidl's global
            generator.

    Example:
        >>> q = Orthogonal(seed=0)((4, 4))
        >>> np.allclose(q.T @ q, np.eye(4), atol=1e-6)
        True
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = _check_real("gain", gain)
        super().__init__(seed)

    def __call__(self, shape, dtype="float32"):
        shape, dt = _check_shape(shape), _float_dtype(dtype)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank >= 2. Received: "
                             f"shape={shape} of rank {len(shape)}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        # Signs of diag(R) (0 counted as +) make Q Haar-distributed rather than biased.
        q *= np.where(np.diagonal(r) < 0, -1.0, 1.0)
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dt, copy=False)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


def get(identifier):
    """Resolves an initializer from a name, a config dict, a class or an instance.

    Args:
        identifier: a registered name (``"glorot_uniform"``, ``"HeNormal"``, ``"zeros"``;
            case-insensitive), a dict ``{"class_name": ..., "config": {...}}`` as written by
            :func:`serialize`, an :class:`Initializer` class (instantiated with defaults), an
            instance or any callable ``f(shape, dtype)`` (returned as is), or None.

    Returns:
        An initializer, or None for None.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or an identifier of
            another kind.

    Example:
        >>> get("he_normal")
        HeNormal(seed=None)
    """
    if identifier is None:
        return None
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, (str, dict)):
        return INITIALIZERS.get(identifier)
    if callable(identifier) and not isinstance(identifier, type):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier. Received: "
                     f"identifier={identifier!r}. Pass a name "
                     f"({', '.join(INITIALIZERS.names())}), a config dict or an initializer.")


def serialize(initializer):
    """``{"class_name": ..., "config": ...}`` for an initializer; see :func:`get`."""
    return _serialize(initializer)


deserialize = deserializer(get, "initializer")


__all__ = ["Initializer", "RandomInitializer", "Zeros", "Ones", "Constant", "RandomNormal",
           "TruncatedNormal", "RandomUniform", "VarianceScaling", "GlorotUniform",
           "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
           "Orthogonal", "compute_fans", "deserialize", "get", "serialize"]
