"""The Layer base class: lazy building, parameters and gradients, config plumbing.

A layer subclass writes ``build``, ``forward``, ``backward`` and ``compute_output_shape``
(forward and backward next to each other); the base class does the rest. Training-time
buffers belong to the layer and are reused from step to step: ``forward`` writes into a
buffer sized for the largest batch seen, and returns a view of its first rows.

Weights come in two lists, as in Keras: ``params`` (trainable, each with a gradient buffer in
``grads``) and ``non_trainable_params`` (state such as BatchNormalization's moving statistics,
which the optimizer never sees). ``weights``, ``get_weights`` and ``set_weights`` cover both,
trainable first.

Regularization: a weight created with ``add_weight(..., regularizer=...)`` and a layer with an
``activity_regularizer`` report ``has_regularization``; the training loop calls
``regularization_loss(accumulate_grads=True)`` on those layers only, after backward and before
the optimizer step, so layers without regularizers cost nothing extra.

Random state: a layer that keeps its own random generator (``Dropout(seed=...)``) exposes its
state through ``get_random_state`` / ``set_random_state``; model files store it next to the
global generator's, so that training resumes exactly after a load.
"""
import contextlib
import math
import threading

import numpy as np

from minidl.utils.checks import check_bool
from minidl.utils.registry import Registry

LAYERS = Registry("layer")

# Per-thread switch of add_weight, set by skip_weight_init(): None, or a one-item list of
# the bytes that weights may still take.
_weight_init = threading.local()


@contextlib.contextmanager
def skip_weight_init(max_bytes=None):
    """Within this block, layers built by this thread get zero weights instead of drawing
    from their initializers. Loading a saved model uses it: the weights are overwritten at
    once, drawing them would cost as much as reading them, and it would move the global
    random generator that exact resume restores. np.zeros maps untouched pages, so the
    loaded data is their first write.

    Args:
        max_bytes: optional bound on the bytes of all weights made in the block (ValueError
            beyond it). Loading passes what its file holds for weights, so a config of a few
            bytes cannot make it allocate gigabytes.
    """
    previous = getattr(_weight_init, "budget", None)
    _weight_init.budget = [float("inf") if max_bytes is None else max_bytes]
    try:
        yield
    finally:
        _weight_init.budget = previous


def _as_shape(shape, what):
    """Normalise an input shape (without the batch dimension) to a tuple of positive ints."""
    given = shape
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    if isinstance(shape, (str, bytes, dict)):
        shape = ()   # iterable, but not over dims
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints. Received: {what}={given!r:.100}") \
            from None
    if not shape or any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d <= 0
                        for d in shape):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints. Received: "
                         f"{what}={given!r:.100}")
    return tuple(int(d) for d in shape)


def _check_dtype(dtype):
    """'float32' or 'float64' from a name or numpy dtype; None means float32, as in Keras."""
    if dtype is None:
        return "float32"
    try:
        name = np.dtype(dtype).name if isinstance(dtype, (str, np.dtype, type)) else None
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"Layer dtype must be 'float32' or 'float64'. Received: "
                         f"dtype={dtype!r:.100}")
    return name


class Layer:
    """Base class of all layers.

    Args:
        name: optional layer name; a unique one is generated when omitted.
        input_shape: optional shape of one sample (no batch dimension), as in Keras;
            lets a Sequential model build before it sees data.
        dtype: 'float32' (default) or 'float64'.
        trainable: whether the optimizer updates this layer's parameters.
    """

    _name_counts = {}

    def __init__(self, name=None, input_shape=None, dtype="float32", trainable=True):
        if name is None:
            base = _snake_case(type(self).__name__)
            count = Layer._name_counts.get(base, 0)
            Layer._name_counts[base] = count + 1
            name = base if count == 0 else f"{base}_{count}"
        elif not isinstance(name, str) or not name:
            raise ValueError(f"Layer name must be a non-empty string. Received: "
                             f"name={name!r:.100}")
        self.name = name
        self.dtype = _check_dtype(dtype)
        self.trainable = check_bool(f"Layer '{name}'", "trainable", trainable)
        self.input_shape = None if input_shape is None else _as_shape(input_shape, "input_shape")
        self.built = False
        self.built_input_shape = None
        self.params = []   # trainable parameter arrays, in Keras order (kernel, then bias)
        self.grads = []    # gradient arrays, same shapes and order as params
        self.param_names = []
        self.non_trainable_params = []   # state the optimizer never updates, in Keras order
        self.non_trainable_param_names = []
        self._weight_regularizers = []   # (index into params, regularizer)
        self.activity_regularizer = None   # set by layers that support one (Dense, ...)
        self._activity_loss = 0.0          # the activity penalty of the last forward

    def _resolve(self, argument, identifier, get):
        """``get(identifier)`` (an initializer, regularizer or activation), its error naming
        the layer and the argument: a bad name in a config fails when the layer is made,
        not when it is built or first run."""
        try:
            return get(identifier)
        except (ValueError, TypeError) as error:
            raise type(error)(f"Layer '{self.name}' ({type(self).__name__}) cannot use "
                              f"{argument}={identifier!r:.200}: {error}") from None

    # ---- building ----

    def build(self, input_shape):
        """Create parameters for inputs of ``input_shape`` (a sample shape, no batch dim)."""
        self.built = True
        self.built_input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape):
        """Shape of one output sample for one input sample of ``input_shape``."""
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer, trainable=True, regularizer=None):
        """Create a weight and return it.

        Args:
            name: weight name ('kernel', 'moving_mean', ...), used in messages.
            shape: tuple of ints.
            initializer: initializer name, config or object.
            trainable: True: a parameter with a gradient buffer (``params``/``grads``);
                False: state outside the optimizer (``non_trainable_params``).
            regularizer: optional regularizer of a trainable weight (name, config or object).
        """
        from minidl import initializers, regularizers
        budget = getattr(_weight_init, "budget", None)
        if budget is not None:
            # Rebuilding a model whose weights are about to be loaded (see skip_weight_init).
            nbytes = math.prod(shape) * np.dtype(self.dtype).itemsize
            if nbytes > budget[0]:
                raise ValueError(f"Layer '{self.name}': weight '{name}' of shape {tuple(shape)} "
                                 f"takes {nbytes} bytes, more than the file being loaded holds "
                                 f"for its weights ({budget[0]} bytes left).")
            budget[0] -= nbytes
            value = np.zeros(shape, dtype=self.dtype)
        else:
            value = np.ascontiguousarray(initializers.get(initializer)(shape, dtype=self.dtype))
        if not trainable:
            if regularizer is not None:
                raise ValueError(f"Layer '{self.name}': non-trainable weight '{name}' cannot "
                                 f"have a regularizer; received {regularizer!r}.")
            self.non_trainable_params.append(value)
            self.non_trainable_param_names.append(name)
            return value
        regularizer = regularizers.get(regularizer)
        if regularizer is not None:
            self._weight_regularizers.append((len(self.params), regularizer))
        self.params.append(value)
        # np.zeros takes zeroed pages from the OS, untouched until the first backward pass
        # writes them (np.zeros_like writes every byte): building or loading a large model
        # does not pay for its gradient buffers.
        self.grads.append(np.zeros(value.shape, value.dtype))
        self.param_names.append(name)
        return value

    def ensure_built(self, input_shape):
        if not self.built:
            # A zero-size dimension would build zero-size weights that train nothing.
            self.build(_as_shape(input_shape, f"Layer '{self.name}' input shape"))
        elif tuple(input_shape) != self.built_input_shape:
            raise ValueError(
                f"Layer '{self.name}' was built for inputs of shape "
                f"{(None,) + self.built_input_shape}; received {(None,) + tuple(input_shape)}.")

    # ---- computation ----

    def forward(self, x, training=False):
        """Output for the batch ``x``; in training, keeps what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dy, need_input_grad=True):
        """Fill ``self.grads`` from the output gradient ``dy``; return the input gradient
        (or None when ``need_input_grad`` is False, as for a model's first layer)."""
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Runs the layer on ``x`` (with a batch dimension) and returns a new array.

        ``training=True`` runs the training path (batch statistics, dropout) and keeps what
        ``backward`` needs, as ``layer(x, training=True)`` does in Keras.
        """
        x = np.asarray(x, dtype=self.dtype)
        self.ensure_built(x.shape[1:])
        out = self.forward(x, training=bool(training))
        if not training and self.activity_regularizer is not None:
            # As in Keras, a call records its activity penalty (training records it in
            # forward). A model's own inference never does: it runs beside training.
            self._activity_loss = self.activity_penalty(out)
        return np.array(out, copy=True)

    # ---- weights and config ----

    @property
    def weights(self):
        """Every weight array, trainable first (Keras order), e.g. BatchNormalization's
        gamma, beta, moving_mean, moving_variance."""
        return self.params + self.non_trainable_params

    @property
    def weight_names(self):
        return self.param_names + self.non_trainable_param_names

    @property
    def trainable_weights(self):
        """The weights the optimizer updates: none when the layer is frozen."""
        return list(self.params) if self.trainable else []

    @property
    def non_trainable_weights(self):
        return self.non_trainable_params + ([] if self.trainable else self.params)

    def count_params(self):
        """Number of scalars in all weights, trainable or not."""
        return int(sum(w.size for w in self.weights))

    def trainable_count(self):
        """Number of scalars the optimizer updates (0 for a frozen layer)."""
        return int(sum(w.size for w in self.trainable_weights))

    def non_trainable_count(self):
        return self.count_params() - self.trainable_count()

    def get_weights(self):
        """Copies of all weights in Keras order: trainable, then non-trainable."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Overwrite all weights in place from arrays in the order of :meth:`get_weights`."""
        for weight, value in zip(self.weights, self.check_weights(weights)):
            weight[...] = value

    def check_weights(self, weights):
        """The arrays ``set_weights`` would write, after checking their number, shapes and
        values (ValueError otherwise), so a failed call changes nothing."""
        weights = list(weights)
        own, names = self.weights, self.weight_names
        if len(weights) != len(own):
            raise ValueError(f"Layer '{self.name}' expects {len(own)} weight arrays "
                             f"({', '.join(names) or 'none'}); received {len(weights)}.")
        values = [np.asarray(value) for value in weights]
        for param, name, value in zip(own, names, values):
            if value.shape != param.shape:
                raise ValueError(f"Layer '{self.name}' weight '{name}' has shape {param.shape}; "
                                 f"received an array of shape {value.shape}.")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"Layer '{self.name}' weight '{name}' contains NaN or inf.")
        return values

    # ---- regularization ----

    @property
    def has_regularization(self):
        """True when the layer has a weight or activity regularizer: the only layers on
        which the training loop calls :meth:`regularization_loss`. Weight regularizers
        count once the layer is built (they belong to the weights ``build`` creates)."""
        return bool(self._weight_regularizers) or self.activity_regularizer is not None

    def regularization_loss(self, accumulate_grads=False):
        """The sum of this layer's penalties, as a float.

        Weight penalties (of trainable weights only, as Keras counts them) are computed from
        the current weights; with ``accumulate_grads=True`` their gradients are also added
        into ``self.grads`` in place, so call it after ``backward`` and before the optimizer
        step. The activity penalty is that of the last ``forward`` (its gradient already
        flowed through ``backward``).
        """
        return self._activity_loss + self.weight_regularization_loss(accumulate_grads)

    def weight_regularization_loss(self, accumulate_grads=False):
        """The weight penalties alone (see :meth:`regularization_loss`)."""
        total = 0.0
        if not self.trainable:
            return total
        for index, regularizer in self._weight_regularizers:
            param = self.params[index]
            if accumulate_grads:
                grad = self.grads[index]
                total += regularizer.add_gradient(param, grad, grad)
            else:
                total += regularizer(param)
        return total

    def activity_penalty(self, y):
        """The activity regularizer's penalty of the output ``y``, divided by the batch
        size so that its weight does not change with the batch size (Keras' rule)."""
        n = y.shape[0]
        return self.activity_regularizer(y) / n if n else 0.0

    def _activity_forward(self, y):
        """Record the activity penalty of a training forward's output ``y``, for
        :meth:`regularization_loss` after the backward pass."""
        self._activity_loss = self.activity_penalty(y)

    def _activity_backward(self, y, dy, out):
        """``out = dy + d(activity penalty) / dy``: the penalty's gradient joins the
        output gradient before the layer's own backward."""
        n = y.shape[0]
        if n:
            self.activity_regularizer.add_gradient(y, dy, out, scale=1.0 / n)
        return out

    # ---- random state ----

    def get_random_state(self):
        """The state of the random generator this layer owns, as a JSON-able object; None
        when it owns none (it draws from minidl's global generator, or not at all).

        Saving a model stores these states with the global generator's, so that training
        resumes exactly after a load (see :func:`minidl.saving.save_model`). A layer that
        keeps its own generator (e.g. ``Dropout(seed=...)``) overrides this and
        :meth:`set_random_state`.
        """
        return None

    def set_random_state(self, state):
        """Restore a state returned by :meth:`get_random_state`.

        Args:
            state: the object ``get_random_state`` returned (None for a layer that owns no
                generator).

        Raises:
            ValueError: ``state`` is not a state this layer can take; the layer is then
                unchanged.
        """
        if state is not None:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) owns no random "
                             f"generator, so its random state must be None; received "
                             f"{state!r:.200}.")

    def get_config(self):
        """Constructor arguments of this layer (JSON-able); ``from_config`` inverts it."""
        config = {"name": self.name, "dtype": self.dtype, "trainable": self.trainable}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _snake_case(name):
    # Keras' rule: Dense -> dense, BatchNormalization -> batch_normalization,
    # Conv2D -> conv2d, MaxPooling2D -> max_pooling2d (no break after a digit).
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and name[i - 1].islower():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class BufferPool:
    """Reusable per-layer arrays for one batch shape: ``get(key, n, sample_shape)`` returns
    the first ``n`` rows of a C-contiguous buffer that is reallocated only when a larger
    batch arrives, so a steady-state training step allocates nothing."""

    def __init__(self, dtype):
        self.dtype = dtype
        self._arrays = {}
        self._views = {}   # key -> the view last returned: a step asks for the same shapes

    def get(self, key, n, sample_shape):
        view = self._views.get(key)
        shape = (n, *sample_shape)
        if view is not None and view.shape == shape:
            return view
        buf = self._arrays.get(key)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != shape[1:]:
            buf = np.empty(shape, dtype=self.dtype)
            self._arrays[key] = buf
        view = buf if buf.shape[0] == n else buf[:n]
        self._views[key] = view
        return view

    def clear(self):
        self._arrays.clear()
        self._views.clear()
