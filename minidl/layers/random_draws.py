"""The generator of layers that draw random numbers in training: Dropout and the ``Random*``
image augmentation layers.

Such a layer takes a ``seed``. With one it draws from its own ``numpy.random.Generator``
(PCG64 seeded with it), whose state model files store (``get_random_state``), so training
resumes after a load with the draws it would have made; without one it draws from the
training stream of the running fit (:func:`minidl.utils.random.training_rng`), which the
global generator's state and the step count (both in model files) determine.
"""
import numpy as np

from minidl.utils.random import _check_seed, set_generator_state, training_rng


class SeededDrawsMixin:
    """Mixin of a :class:`~minidl.layers.base.Layer` that draws random numbers in training.

    The layer calls :meth:`_init_seed` in its constructor and draws from :meth:`rng`; the
    mixin answers ``get_random_state`` / ``set_random_state``. List it before the Layer
    class among the bases (``class Dropout(SeededDrawsMixin, Layer)``).
    """

    def _init_seed(self, seed):
        """Check ``seed`` (None or an int in ``[0, 2**32)``) and make the layer's own
        generator from it."""
        self.seed = None if seed is None else _check_seed(seed)
        self._rng = None if seed is None else np.random.Generator(np.random.PCG64(self.seed))

    def rng(self):
        """The generator of this call: the layer's own (seeded), or fit's training stream."""
        return self._rng if self._rng is not None else training_rng()

    def get_random_state(self):
        """The state of the layer's own generator (with ``seed``); None without a seed, as
        the layer then draws from the training stream, which the global generator's state and
        the step count (both in model files) determine."""
        return None if self._rng is None else self._rng.bit_generator.state

    def set_random_state(self, state):
        if self._rng is None:
            return super().set_random_state(state)
        try:
            set_generator_state(self._rng, state)
        except ValueError as error:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}, seed={self.seed}) "
                             f"cannot take this random state: {error}.") from None
