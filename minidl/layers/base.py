"""The Layer base class: lazy building, weights, calls, config plumbing.

A layer holds its configuration and its weights, nothing of any one call. A subclass writes
``build``, ``compute_output_shape``, ``forward(ctx, x, training)`` and
``backward(ctx, dy, need_input_grad)`` (side by side); the base class does the rest. What a
call keeps for its backward pass (the inputs it read, reusable buffers, the gradients of the
weights) lives in that call's :class:`CallContext`, which a model's execution plan owns (or
a test makes, to drive one layer by hand). So a layer can be called twice in one model
(shared weights) and inference in one thread never disturbs training in another.

Calling a layer (``layer(x)``) on symbolic tensors records a node of a graph
(``layers.node``); on arrays it computes the output at once, as Keras' eager call does.

Weights come in two lists, as in Keras: ``params`` (trainable) and ``non_trainable_params``
(state such as BatchNormalization's moving statistics, which the optimizer never sees).
``weights``, ``get_weights`` and ``set_weights`` cover both, trainable first.

Regularization: a weight created with ``add_weight(..., regularizer=...)`` and a layer with an
``activity_regularizer`` report ``has_regularization``; the training loop calls
``regularization_loss(grads)`` on those layers only, after backward and before the optimizer
step, so layers without regularizers cost nothing extra. Activity penalties are per call:
the plan records each in its call's context.

Random state: a layer that keeps its own random generator (``Dropout(seed=...)``) exposes its
state through ``get_random_state`` / ``set_random_state``; model files store it next to the
global generator's, so that training resumes exactly after a load.
"""
import contextlib
import itertools
import math
import threading

import numpy as np

from minidl.layers.node import KerasHistory, Node, SymbolicTensor, flatten, is_symbolic
from minidl.utils.checks import check_bool
from minidl.utils.registry import Registry

LAYERS = Registry("layer")
# Model classes (Sequential, Functional): what a model file's config may name at its top.
MODELS = Registry("model")

# Bumped whenever a layer's `trainable` changes: plans built before then are rebuilt.
_trainable_changes = itertools.count(1)
_trainable_version = [0]
_name_lock = threading.Lock()
_name_counts = {}


def unique_name(base):
    """``base``, then ``base_1``, ``base_2``, ... on later calls (Keras' automatic names)."""
    with _name_lock:
        count = _name_counts.get(base, 0)
        _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"

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


def _compatible(shape, built):
    """Whether a sample shape fits a layer built for ``built`` (None: any size)."""
    return len(shape) == len(built) and all(b is None or s == b for s, b in zip(shape, built))


def _as_shape(shape, what, allow_none=False):
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
    if not shape or any(not (d is None and allow_none) and (
            not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d <= 0)
            for d in shape):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints. Received: "
                         f"{what}={given!r:.100}")
    return tuple(None if d is None else int(d) for d in shape)


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

    def __init__(self, name=None, input_shape=None, dtype="float32", trainable=True):
        if name is None:
            name = unique_name(_snake_case(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise ValueError(f"Layer name must be a non-empty string. Received: "
                             f"name={name!r:.100}")
        self.name = name
        self.dtype = _check_dtype(dtype)
        self.trainable = trainable
        self.input_shape = None if input_shape is None else _as_shape(input_shape, "input_shape")
        self.built = False
        self.built_input_shape = None
        self.params = []   # trainable parameter arrays, in Keras order (kernel, then bias)
        self.param_names = []
        self.non_trainable_params = []   # state the optimizer never updates, in Keras order
        self.non_trainable_param_names = []
        self._weight_regularizers = []   # (index into params, regularizer)
        self.activity_regularizer = None   # set by layers that support one (Dense, ...)
        self._inbound_nodes = []           # the calls on symbolic tensors (layers.node)
        self._eager_activity = 0.0         # the activity penalty of the last layer(x)

    @property
    def trainable(self):
        """Whether the optimizer updates this layer's parameters. Changing it takes effect
        at the next fit or train_on_batch (models rebuild their plans); a frozen
        BatchNormalization runs in inference mode, as in Keras."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        value = check_bool(f"Layer '{self.name}'", "trainable", value)
        if getattr(self, "_trainable", None) is not value:
            self._trainable = value
            _trainable_version[0] = next(_trainable_changes)

    @staticmethod
    def _trainable_version():
        return _trainable_version[0]

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
            trainable: True: a parameter the optimizer updates (``params``); False: state
                outside the optimizer (``non_trainable_params``).
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
        self.param_names.append(name)
        return value

    def ensure_built(self, input_shape):
        """Build for ``input_shape`` (a sample shape; a list of them for a layer of several
        inputs) on the first call; later calls must bring the same shape."""
        if not self.built:
            # A zero-size dimension would build zero-size weights that train nothing; None
            # (any size) is for the layer's build to accept or refuse.
            self.build(_as_shape(input_shape, f"Layer '{self.name}' input shape",
                                 allow_none=True))
        elif not _compatible(tuple(input_shape), self.built_input_shape):
            raise ValueError(
                f"Layer '{self.name}' was built for inputs of shape "
                f"{(None,) + self.built_input_shape}; received {(None,) + tuple(input_shape)}.")

    # ---- computation ----

    def forward(self, ctx, x, training=False):
        """The output for the batch ``x``.

        Args:
            ctx: this call's :class:`CallContext`. With ``ctx.record`` (a training pass)
                keep in it what :meth:`backward` needs and take the output from
                ``ctx.buffers`` (reused from batch to batch); otherwise keep nothing and
                allocate the output.
            x: the input (a list of inputs for a layer of several).
            training: behave as in training (dropout, batch statistics).
        """
        raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}) does not "
                                  f"implement forward(ctx, x, training).")

    def backward(self, ctx, dy, need_input_grad=True):
        """The input gradient for the output gradient ``dy``, after a recording
        :meth:`forward` with ``ctx``; fills ``ctx.grads`` (aligned with ``params``).
        Returns None when ``need_input_grad`` is False (a model's first layer); a layer of
        several inputs takes and returns lists."""
        raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}) does not "
                                  f"implement backward(ctx, dy, need_input_grad).")

    def __call__(self, inputs, training=None, **kwargs):
        """Call the layer, as in Keras.

        On symbolic tensors (from ``minidl.Input``), records the call in the graph and
        returns the output tensor(s); the layer builds for the input shapes, or raises
        naming itself and both shapes. On arrays (with a batch dimension), returns the
        output as a new array; ``training=True`` runs the training behaviour (dropout,
        batch statistics).
        """
        if kwargs:
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) was called with "
                            f"unexpected keyword arguments {sorted(kwargs)}; layers take "
                            f"inputs and training.")
        if training not in (None, True, False):
            raise TypeError(f"training must be True, False or None; received "
                            f"training={training!r:.100}.")
        if is_symbolic(inputs):
            return self._call_symbolic(inputs, training)
        multi = isinstance(inputs, (list, tuple))
        xs = [np.asarray(x, dtype=self.dtype) for x in (inputs if multi else [inputs])]
        for x in xs:
            if x.ndim < 1:
                raise ValueError(f"Layer '{self.name}' takes arrays with a batch dimension; "
                                 f"received a scalar.")
        self.ensure_built([x.shape[1:] for x in xs] if multi else xs[0].shape[1:])
        out = self.forward(CallContext(self, record=False), xs if multi else xs[0],
                           training=bool(training))
        if self.activity_regularizer is not None:
            # As in Keras, an eager call leaves its activity penalty in `losses`.
            self._eager_activity = self.activity_penalty(out)
        return np.array(out, copy=True)

    def _call_symbolic(self, inputs, training):
        """Record a call on symbolic tensors: build, infer the output shape, add a node."""
        leaves = flatten(inputs)
        for leaf in leaves:
            if not isinstance(leaf, SymbolicTensor):
                raise TypeError(f"Layer '{self.name}' was called on a mix of symbolic tensors "
                                f"and {type(leaf).__name__}: call it on symbolic tensors only "
                                f"(from minidl.Input), or on arrays only.")
        multi = isinstance(inputs, (list, tuple))
        shapes = [t.shape[1:] for t in leaves]
        sample = shapes if multi else shapes[0]
        try:
            self.ensure_built(sample)
            out_shape = tuple(self.compute_output_shape(sample))
        except ValueError as error:
            shown = [t.shape for t in leaves] if multi else leaves[0].shape
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) cannot take inputs "
                             f"of shape {shown}: {error}") from None
        batch = leaves[0].shape[0]
        index = len(self._inbound_nodes)
        dtype = self.dtype if self.params or self.non_trainable_params or \
            leaves[0].dtype not in ("int32", "int64") else leaves[0].dtype
        output = SymbolicTensor((batch,) + out_shape, dtype=dtype,
                                name=self.name if index == 0 else f"{self.name}_{index}",
                                history=KerasHistory(self, index, 0))
        self._inbound_nodes.append(Node(self, inputs, output,
                                        {} if training is None else {"training": training}))
        return output

    @property
    def input(self):
        """The input tensor(s) of the layer's first call on symbolic tensors."""
        return self._first_node("input").arguments

    @property
    def output(self):
        """The output tensor(s) of the layer's first call on symbolic tensors."""
        return self._first_node("output").outputs

    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called on symbolic "
                                 f"tensors, so it has no {what}.")
        return self._inbound_nodes[0]

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

    def regularization_loss(self, grads=None):
        """The layer's weight penalties (of trainable weights only, as Keras counts them),
        as a float, from the current weights.

        Args:
            grads: None, or the arrays of this layer's weight gradients (aligned with
                ``params``): the penalties' gradients are then added into them in place,
                so call it after the backward pass and before the optimizer step.
        """
        total = 0.0
        if not self.trainable:
            return total
        for index, regularizer in self._weight_regularizers:
            param = self.params[index]
            if grads is not None:
                grad = grads[index]
                total += regularizer.add_gradient(param, grad, grad)
            else:
                total += regularizer(param)
        return total

    @property
    def losses(self):
        """The layer's penalties, as in Keras: its weight penalties, then the activity
        penalty of its last call on arrays (``layer(x)``)."""
        out = [self.regularization_loss()] if self._weight_regularizers else []
        if self.activity_regularizer is not None:
            out.append(self._eager_activity)
        return out

    def activity_penalty(self, y):
        """The activity regularizer's penalty of the output ``y``, divided by the batch
        size so that its weight does not change with the batch size (Keras' rule)."""
        n = y.shape[0]
        return self.activity_regularizer(y) / n if n else 0.0

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
    """Reusable arrays for one batch shape: ``get(key, n, sample_shape)`` returns the first
    ``n`` rows of a C-contiguous buffer that is reallocated only when a larger batch
    arrives, so a steady-state training step allocates nothing.

    Args:
        dtype: the default dtype of the buffers (``get`` may ask for another).
    """

    def __init__(self, dtype):
        self.dtype = dtype
        self._arrays = {}
        self._views = {}   # key -> the view last returned: a step asks for the same shapes

    def get(self, key, n, sample_shape, dtype=None):
        view = self._views.get(key)
        shape = (n, *sample_shape)
        if view is not None and view.shape == shape:
            return view
        buf = self._arrays.get(key)
        dtype = self.dtype if dtype is None else dtype
        if buf is None or buf.shape[0] < n or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._arrays[key] = buf
        view = buf if buf.shape[0] == n else buf[:n]
        self._views[key] = view
        return view

    def clear(self):
        self._arrays.clear()
        self._views.clear()


class CallContext:
    """What one call of a layer keeps between its forward and backward passes.

    The layer's ``forward`` sets what its ``backward`` reads (e.g. ``ctx.x``); buffers
    come from ``ctx.buffers`` and are reused from batch to batch; ``ctx.grads`` are the
    arrays the backward pass writes the weight gradients into (a model's plan gives its
    own; otherwise fresh zeros on first use).

    Args:
        layer: the layer called.
        record: whether this is a training pass, keeping what backward needs (True), or
            inference (False: nothing kept, outputs allocated per call).

    It also drives one layer by hand (tests do)::

        ctx = CallContext(layer)
        y = ctx.forward(x, training=True)
        dx = ctx.backward(dy)
        ctx.grads   # the weight gradients
    """

    def __init__(self, layer, record=True):
        self.layer = layer
        self.record = record
        self.activation = None   # set by a plan that fuses an activation into the layer
        self.activity_loss = 0.0
        # Set by predict on the layer that reads the model's input, when that layer can
        # count the NaN and infinities of its input for free (``finds_nonfinite_input``):
        # the count, of its linear part's output, lands in input_nonfinite.
        self.check_input = False
        self.input_nonfinite = 0
        self._buffers = None
        self._grads = None

    @property
    def buffers(self):
        if self._buffers is None:
            self._buffers = BufferPool(self.layer.dtype)
        return self._buffers

    @property
    def grads(self):
        if self._grads is None:
            # np.zeros takes zeroed pages from the OS, untouched until backward writes them.
            self._grads = [np.zeros(p.shape, p.dtype) for p in self.layer.params]
        return self._grads

    @grads.setter
    def grads(self, arrays):
        self._grads = arrays

    def forward(self, x, training=False):
        """``layer.forward(self, x, training)``, building the layer first if needed."""
        layer = self.layer
        if not layer.built:
            multi = isinstance(x, (list, tuple))
            layer.ensure_built([np.shape(a)[1:] for a in x] if multi else np.shape(x)[1:])
        return layer.forward(self, x, training)

    def backward(self, dy, need_input_grad=True):
        """``layer.backward(self, dy, need_input_grad)``."""
        return self.layer.backward(self, dy, need_input_grad)
