"""Seeding: one call makes every random draw in minidl (and in user code) reproducible.

minidl draws its randomness from one ``numpy.random.Generator`` returned by
:func:`global_rng`, unless an object was given its own integer ``seed``.
:func:`set_random_seed` reseeds that generator together with Python's ``random`` module and
numpy's legacy global state, as ``keras.utils.set_random_seed`` does for its backends.

Training draws (the batch order of an epoch, unseeded dropout masks) come from a *training
stream* instead: a generator derived from the global generator's state when ``fit`` starts
and the optimizer's step count when the epoch starts (:func:`derived_generator`), without
advancing the global generator. So two models trained at once in two threads draw what
they would draw trained one after the other, a fit resumed from a model file (which holds
the global state and the step count) draws what the uninterrupted fit drew, and two fit
calls in a row differ (the step count moved on).
"""
import contextlib
import numbers
import random as _python_random
import threading

import numpy as np

# Created lazily so that importing minidl costs no OS entropy read. The object is never
# replaced: set_random_seed reseeds it in place, so a reference someone holds stays live.
_GLOBAL_RNG = None

_SEED_LIMIT = 2 ** 32  # what np.random.seed accepts; we apply the same range everywhere


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be an int in [0, 2**32). Received: seed={seed!r} "
                        f"of type {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"`seed` must be an int in [0, 2**32). Received: seed={seed}")
    return seed


def set_random_seed(seed):
    """Seeds every random number generator minidl uses, for reproducible runs.

    Seeds Python's ``random`` module, numpy's legacy global generator (``np.random.seed``)
    and minidl's own ``numpy.random.Generator`` (:func:`global_rng`). After the same call,
    the same program builds the same weights, shuffles batches in the same order and draws
    the same dropout masks, bit for bit.

    Args:
        seed: int in ``[0, 2**32)``.

    Raises:
        TypeError: ``seed`` is not an int (floats and bools are refused, not truncated).
        ValueError: ``seed`` is negative or ``>= 2**32``.

    Example:
        >>> minidl.utils.set_random_seed(1337)
        >>> a = minidl.initializers.GlorotUniform()((3, 2))
        >>> minidl.utils.set_random_seed(1337)
        >>> b = minidl.initializers.GlorotUniform()((3, 2))
        >>> bool((a == b).all())
        True
    """
    global _GLOBAL_RNG
    seed = _check_seed(seed)
    _python_random.seed(seed)
    np.random.seed(seed)
    fresh = np.random.PCG64(seed)
    if _GLOBAL_RNG is None:
        _GLOBAL_RNG = np.random.Generator(fresh)
    else:
        _GLOBAL_RNG.bit_generator.state = fresh.state


def global_rng():
    """minidl's global ``numpy.random.Generator``.

    Everything random in minidl draws from it unless given its own ``seed``. It starts from
    OS entropy when :func:`set_random_seed` was never called. The same object is returned
    for the life of the process; :func:`set_random_seed` reseeds it in place.

    Returns:
        A ``numpy.random.Generator`` (PCG64).

    Example:
        >>> minidl.utils.random.global_rng().permutation(5)   # a shuffled batch order
    """
    global _GLOBAL_RNG
    if _GLOBAL_RNG is None:
        _GLOBAL_RNG = np.random.default_rng()
    return _GLOBAL_RNG


def derived_generator(state, *key):
    """A new generator determined by a generator's ``state`` and an integer ``key``.

    Nothing is advanced: the same state and key give the same generator, in any thread.

    Args:
        state: a ``bit_generator.state`` dict (e.g. ``global_rng().bit_generator.state``).
        *key: non-negative ints telling apart the streams derived from one state.
    Returns:
        A ``numpy.random.Generator`` (PCG64).
    """
    inner = state["state"]
    entropy = [inner["state"], inner["inc"], state.get("has_uint32", 0),
               state.get("uinteger", 0)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        entropy, spawn_key=tuple(int(k) for k in key))))


class _LazyGenerator:
    """A derived generator made on first use (most training steps draw nothing)."""

    __slots__ = ("_state", "_key", "_rng")

    def __init__(self, state, key):
        self._state, self._key, self._rng = state, key, None

    def get(self):
        if self._rng is None:
            self._rng = derived_generator(self._state, *self._key)
        return self._rng


_TRAINING = threading.local()


@contextlib.contextmanager
def training_draws(state, *key):
    """Within this block, :func:`training_rng` in this thread returns
    ``derived_generator(state, *key)`` (made on first use); other threads are not affected.

    Yields:
        An object whose ``get()`` returns that generator.
    """
    previous = getattr(_TRAINING, "stream", None)
    _TRAINING.stream = stream = _LazyGenerator(state, key)
    try:
        yield stream
    finally:
        _TRAINING.stream = previous


def training_rng():
    """The generator that training draws from in this thread: inside ``fit`` and
    ``train_on_batch``, the training stream of the current epoch or call (see the module
    docstring); elsewhere :func:`global_rng`."""
    stream = getattr(_TRAINING, "stream", None)
    return global_rng() if stream is None else stream.get()


# The fields of a PCG64 state (what ``bit_generator.state`` holds) and their ranges: numpy's
# setter truncates floats and takes an even increment, which no real generator has.
_PCG64_RANGES = {"state": 2 ** 128, "inc": 2 ** 128}


def set_generator_state(rng, state):
    """Set ``rng.bit_generator.state = state`` for a state read from a file.

    The state must be a dict of the same bit generator (for PCG64, with integer fields in
    range); otherwise ValueError, and ``rng`` is unchanged.
    """
    own = type(rng.bit_generator).__name__
    if not isinstance(state, dict) or state.get("bit_generator") != own:
        raise ValueError(f"expected a {own} state, a dict with bit_generator={own!r}; "
                         f"received {state!r:.200}")
    if own == "PCG64":
        inner = state.get("state")
        fields = [(f"state[{key!r}]", inner.get(key) if isinstance(inner, dict) else None, top)
                  for key, top in _PCG64_RANGES.items()]
        fields += [("has_uint32", state.get("has_uint32"), 2),
                   ("uinteger", state.get("uinteger"), 2 ** 32)]
        for name, value, top in fields:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < top:
                raise ValueError(f"PCG64 state field {name} must be an int in [0, {top}); "
                                 f"received {value!r:.100}")
        if inner["inc"] % 2 == 0:
            raise ValueError(f"PCG64 state field state['inc'] must be odd (every seeded "
                             f"PCG64 has an odd increment); received {inner['inc']}")
    previous = rng.bit_generator.state
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        rng.bit_generator.state = previous
        raise ValueError(f"invalid {own} state ({type(error).__name__}: {error})") from None
