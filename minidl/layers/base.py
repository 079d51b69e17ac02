"""The Layer base class: lazy building, parameters and gradients, config plumbing.

A layer subclass writes ``build``, ``forward``, ``backward`` and ``compute_output_shape``
(forward and backward next to each other); the base class does the rest. Training-time
buffers belong to the layer and are reused from step to step: ``forward`` writes into a
buffer sized for the largest batch seen, and returns a view of its first rows.
"""
import numpy as np

from minidl.utils.registry import Registry

LAYERS = Registry("layer")


def _as_shape(shape, what):
    """Normalise an input shape (without the batch dimension) to a tuple of positive ints."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints; received {shape!r}.") from None
    if not shape or any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d <= 0
                        for d in shape):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints; received {shape!r}.")
    return tuple(int(d) for d in shape)


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
            raise ValueError(f"Layer name must be a non-empty string; received {name!r}.")
        self.name = name
        self.dtype = np.dtype(dtype).name
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"Layer dtype must be 'float32' or 'float64'; received {dtype!r}.")
        self.trainable = bool(trainable)
        self.input_shape = None if input_shape is None else _as_shape(input_shape, "input_shape")
        self.built = False
        self.built_input_shape = None
        self.params = []   # parameter arrays, in Keras order (kernel, then bias)
        self.grads = []    # gradient arrays, same shapes and order as params
        self.param_names = []

    # ---- building ----

    def build(self, input_shape):
        """Create parameters for inputs of ``input_shape`` (a sample shape, no batch dim)."""
        self.built = True
        self.built_input_shape = tuple(input_shape)

    def compute_output_shape(self, input_shape):
        """Shape of one output sample for one input sample of ``input_shape``."""
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer):
        """Create a parameter and its gradient buffer; returns the parameter array."""
        from minidl import initializers
        value = np.ascontiguousarray(initializers.get(initializer)(shape, dtype=self.dtype))
        self.params.append(value)
        self.grads.append(np.zeros_like(value))
        self.param_names.append(name)
        return value

    def ensure_built(self, input_shape):
        if not self.built:
            self.build(tuple(input_shape))
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

    def __call__(self, x):
        """Inference on ``x`` (with a batch dimension), returning a new array."""
        x = np.asarray(x, dtype=self.dtype)
        self.ensure_built(x.shape[1:])
        return np.array(self.forward(x, training=False), copy=True)

    # ---- weights and config ----

    @property
    def weights(self):
        return list(self.params)

    def count_params(self):
        return int(sum(p.size for p in self.params))

    def get_weights(self):
        """Copies of the parameters, in Keras order."""
        return [p.copy() for p in self.params]

    def set_weights(self, weights):
        """Overwrite the parameters in place from a list of arrays of the same shapes."""
        for param, value in zip(self.params, self.check_weights(weights)):
            param[...] = value

    def check_weights(self, weights):
        """The arrays ``set_weights`` would write, after checking their number, shapes and
        values (ValueError otherwise), so a failed call changes nothing."""
        weights = list(weights)
        if len(weights) != len(self.params):
            raise ValueError(f"Layer '{self.name}' expects {len(self.params)} weight arrays "
                             f"({', '.join(self.param_names) or 'none'}); received {len(weights)}.")
        values = [np.asarray(value) for value in weights]
        for param, name, value in zip(self.params, self.param_names, values):
            if value.shape != param.shape:
                raise ValueError(f"Layer '{self.name}' weight '{name}' has shape {param.shape}; "
                                 f"received an array of shape {value.shape}.")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"Layer '{self.name}' weight '{name}' contains NaN or inf.")
        return values

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
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
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

    def get(self, key, n, sample_shape):
        buf = self._arrays.get(key)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != tuple(sample_shape):
            buf = np.empty((n,) + tuple(sample_shape), dtype=self.dtype)
            self._arrays[key] = buf
        return buf[:n]

    def clear(self):
        self._arrays.clear()
