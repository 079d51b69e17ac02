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

from minidl.autodiff.tensor import WeightWrites
from minidl.layers import eager
from minidl.layers.node import SymbolicTensor, add_node, flatten, is_symbolic
from minidl.utils.checks import check_bool
from minidl.utils.registry import Registry, subclass_test

LAYERS = Registry("layer", accepts=subclass_test(lambda: Layer))
# Model classes (Sequential, Functional): what a model file's config may name at its top.
MODELS = Registry("model", accepts=subclass_test(lambda: _model_class()))

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

    # Class flags set for every subclass by eager.prepare_layer_class.
    _user_call = _user_build = _user_output_shape = _user_class = False
    # Masks (Keras semantics): a layer that supports masking receives the mask of its input
    # in ``ctx.mask`` and passes it on (``compute_mask``); one that does not drops it.
    supports_masking = False
    # Whether the layer can make a mask where its input has none (Embedding with
    # mask_zero, Masking): only plans holding such a layer track masks.
    _makes_masks = False
    # Keyword arguments of a call that are tensors, recorded in the graph with the input
    # (a recurrent layer's "initial_state"): the layer then receives ``[x, *those]``.
    _tensor_call_arguments = ()
    # The batch dimension of the first symbolic call (None: any), set before building, for
    # layers that need a fixed batch size (a stateful recurrent layer).
    _input_batch_size = None

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
        # The layer's own weights: arrays (what kernels, the plan and the optimizer use) and
        # the Variables around them (what users see), in Keras order (kernel, then bias).
        self._params, self._param_names, self._variables = [], [], []
        self._nt_params, self._nt_param_names, self._nt_variables = [], [], []
        self._sublayers = []   # layers assigned to public attributes (custom layers)
        self._weight_regularizers = []   # (index into params, regularizer)
        self._weight_constraints = []    # (index into params, constraint)
        self._uses_add_loss = False      # set by add_loss: its losses join the training loss
        self._added_losses = None        # the add_loss values of the current call, or None
        self.activity_regularizer = None   # set by layers that support one (Dense, ...)
        self._inbound_nodes = []           # the calls on symbolic tensors (layers.node)
        self._eager_activity = 0.0         # the activity penalty of the last layer(x)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        eager.prepare_layer_class(cls, Layer)

    def __setattr__(self, name, value):
        # A layer (or a list of layers) given to a public attribute is a sublayer, as in
        # Keras: its weights are this layer's too. (Private names are the framework's own.)
        if not name.startswith("_") and "_sublayers" in self.__dict__:
            eager.track_sublayers(self, value)
        object.__setattr__(self, name, value)

    @property
    def trainable(self):
        """Whether the optimizer updates this layer's parameters. Changing it takes effect
        at the next fit or train_on_batch (models rebuild their plans); a frozen
        BatchNormalization runs in inference mode, as in Keras. It sets the sublayers' too."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        value = check_bool(f"Layer '{self.name}'", "trainable", value)
        if getattr(self, "_trainable", None) is not value:
            self._trainable = value
            _trainable_version[0] = next(_trainable_changes)
        for layer in self.__dict__.get("_sublayers", ()):
            layer.trainable = value

    # ---- weights, own and of sublayers ----

    @property
    def params(self):
        """Trainable parameter arrays, in Keras order (own, then the sublayers')."""
        if not self._sublayers:
            return self._params
        return self._params + [p for layer in self._sublayers for p in layer.params]

    @property
    def param_names(self):
        if not self._sublayers:
            return self._param_names
        return self._param_names + [f"{layer.name}/{n}" for layer in self._sublayers
                                    for n in layer.param_names]

    @property
    def non_trainable_params(self):
        """State arrays the optimizer never updates (e.g. moving statistics)."""
        if not self._sublayers:
            return self._nt_params
        return self._nt_params + [p for layer in self._sublayers
                                  for p in layer.non_trainable_params]

    @property
    def non_trainable_param_names(self):
        if not self._sublayers:
            return self._nt_param_names
        return self._nt_param_names + [f"{layer.name}/{n}" for layer in self._sublayers
                                       for n in layer.non_trainable_param_names]

    @property
    def param_variables(self):
        """The Variables of :attr:`params`, aligned with it."""
        if not self._sublayers:
            return self._variables
        return self._variables + [v for layer in self._sublayers for v in layer.param_variables]

    @property
    def non_trainable_variables_all(self):
        """The Variables of :attr:`non_trainable_params`, aligned with it."""
        if not self._sublayers:
            return self._nt_variables
        return self._nt_variables + [v for layer in self._sublayers
                                     for v in layer.non_trainable_variables_all]

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

    def output_shape_for(self, input_shape):
        """The shape of one output sample for one input sample of ``input_shape`` (a list
        of them for several inputs): ``compute_output_shape``, with Keras' whole-shape
        convention for user layers. A layer of several outputs (a recurrent layer with
        ``return_state``) gives a list of shapes."""
        own_rule = not self._user_class and \
            type(self).compute_output_shape is not Layer.compute_output_shape
        if self._user_call and not own_rule:   # (minidl's Lambda, OpLayer: sample shapes)
            multi = isinstance(input_shape, list) and bool(input_shape) and \
                isinstance(input_shape[0], (list, tuple))
            return eager.output_shape(self, input_shape, multi)
        shape = self.compute_output_shape(input_shape)
        if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
            return [tuple(s) for s in shape]
        return tuple(shape)

    def compute_mask(self, inputs, mask=None):
        """The mask of the output for the input arrays ``inputs`` and their ``mask`` (a
        boolean array ``(batch, timesteps)``, a list of them for several inputs, or None),
        as in Keras: a layer that supports masking passes it on, one that does not drops
        it. Layers that make masks (``Embedding(mask_zero=True)``, ``Masking``) or change
        them (a recurrent layer without ``return_sequences``) override this.

        Returns:
            A boolean array, or None (a list for a layer of several outputs).
        """
        return mask if self.supports_masking else None

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   autocast=True, regularizer=None, constraint=None, aggregation="none",
                   name=None):
        """Create a weight of this layer and return it, as a :class:`minidl.Variable`.

        Args:
            shape: tuple of ints (default ``()``, a scalar).
            initializer: initializer name, config or object; default 'glorot_uniform' for
                float weights and 'zeros' for others (Keras' defaults).
            dtype: default: the layer's dtype.
            trainable: True: a parameter the optimizer updates (``trainable_weights``);
                False: state outside the optimizer (``non_trainable_weights``).
            regularizer: optional penalty of a trainable weight (name, config or object),
                added to the training loss.
            constraint: optional constraint (name, config, ``Constraint`` or any callable
                ``w -> w``) applied to the weight after each optimizer update
                (``w <- constraint(w)``), as Keras does.
            autocast, aggregation: accepted for Keras compatibility (minidl computes in
                the weight's dtype and runs one replica per process).
            name: the weight's name ('kernel', 'moving_mean', ...).
        Returns:
            The Variable; its ``value`` is the array the optimizer updates in place.
        """
        from minidl import constraints, initializers, regularizers
        from minidl.autodiff import Variable
        if isinstance(shape, str):
            raise TypeError(f"Layer '{self.name}': add_weight's first argument is the shape "
                            f"(Keras 3); pass the name as name={shape!r}.")
        shape = () if shape is None else tuple(shape)
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
                raise ValueError(f"Layer '{self.name}': add_weight shape must be a tuple of "
                                 f"non-negative ints; received shape={shape!r}.")
        shape = tuple(int(d) for d in shape)
        name = "variable" if name is None else str(name)
        dtype = self.dtype if dtype is None else np.dtype(dtype).name
        for existing, array in zip(self._param_names + self._nt_param_names,
                                   self._params + self._nt_params):
            if existing == name and array.shape != shape:
                raise ValueError(f"Layer '{self.name}' already has a weight '{name}' of shape "
                                 f"{array.shape}; add_weight received shape={shape} for the "
                                 f"same name. Give the new weight another name.")
        if initializer is None:
            initializer = "glorot_uniform" if np.dtype(dtype).kind == "f" else "zeros"
        budget = getattr(_weight_init, "budget", None)
        if budget is not None:
            # Rebuilding a model whose weights are about to be loaded (see skip_weight_init).
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            if nbytes > budget[0]:
                raise ValueError(f"Layer '{self.name}': weight '{name}' of shape {shape} "
                                 f"takes {nbytes} bytes, more than the file being loaded holds "
                                 f"for its weights ({budget[0]} bytes left).")
            budget[0] -= nbytes
            value = np.zeros(shape, dtype=dtype)
        else:
            # (np.require, not np.ascontiguousarray, which makes a scalar weight 1-D.)
            value = np.require(np.asarray(initializers.get(initializer)(shape, dtype=dtype),
                                          dtype=dtype), requirements="C")
        variable = Variable(value, trainable=trainable, name=name)
        variable.path = f"{self.name}/{name}"
        constraint = variable.constraint = self._resolve("constraint", constraint,
                                                         constraints.get)
        if not trainable:
            if regularizer is not None:
                raise ValueError(f"Layer '{self.name}': non-trainable weight '{name}' cannot "
                                 f"have a regularizer; received {regularizer!r}.")
            self._nt_params.append(variable.value)
            self._nt_param_names.append(name)
            self._nt_variables.append(variable)
            return variable
        regularizer = regularizers.get(regularizer)
        if regularizer is not None:
            self._weight_regularizers.append((len(self._params), regularizer))
        if constraint is not None:
            self._weight_constraints.append((len(self._params), constraint))
        self._params.append(variable.value)
        self._param_names.append(name)
        self._variables.append(variable)
        return variable

    def apply_constraints(self):
        """Apply the weight constraints (``add_weight(constraint=...)``) in place; the
        training loop calls it after each optimizer update."""
        for index, constraint in self._weight_constraints:
            param = self._params[index]
            param[...] = np.asarray(constraint(param), dtype=param.dtype)
        for layer in self._sublayers:
            layer.apply_constraints()

    @property
    def has_constraints(self):
        return bool(self._weight_constraints) or any(l.has_constraints for l in self._sublayers)

    def ensure_built(self, input_shape):
        """Build for ``input_shape`` (a sample shape; a list of them for a layer of several
        inputs) on the first call; later calls must bring the same shape."""
        if self._user_call:
            multi = isinstance(input_shape, list) and bool(input_shape) and \
                isinstance(input_shape[0], (list, tuple))
            eager.ensure_user_built(self, input_shape, multi)
            return
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

    def call(self, inputs, training=None):
        """The layer's computation on tensors, as in Keras; a subclass written with
        ``minidl.ops`` overrides it (and gets its gradients from the tape). The built-in
        layers' own runs their compiled forward pass, recorded as one op while a tape
        records, so ``super().call(x)`` in a subclass of a built-in layer works."""
        return eager.kernel_call(self, inputs, training)

    def __call__(self, *args, **kwargs):
        """Call the layer, as in Keras.

        On symbolic tensors (from ``minidl.Input``), records the call in the graph and
        returns the output tensor(s); the layer builds for the input shapes, or raises
        naming itself and both shapes. On arrays or tensors (with a batch dimension),
        computes the output at once and returns it as a :class:`minidl.Tensor`;
        ``training=True`` runs the training behaviour (dropout, batch statistics). Without
        ``training=``, a call inside another layer's call takes that call's value.
        """
        if args:
            inputs, args = args[0], args[1:]
        elif "inputs" in kwargs:
            inputs = kwargs.pop("inputs")
        else:
            raise TypeError(f"Layer '{self.name}' was called without inputs.")
        training = kwargs.pop("training", None)
        if training is not None and not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True, False or None; received "
                            f"training={training!r:.100}.")
        call_tensors = {} if self._user_call else self._pop_call_tensors(kwargs)
        if is_symbolic(inputs):
            if args or kwargs:
                raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) was called on "
                                f"symbolic tensors with extra arguments "
                                f"{sorted(kwargs) or len(args)}; in a functional model a "
                                f"layer takes its inputs, training"
                                f"{''.join(', ' + n for n in self._tensor_call_arguments)} "
                                f"and mask only.")
            return self._call_symbolic(inputs, training, call_tensors)
        if training is None:
            training = eager.current_training()
        if self._user_call:
            return eager.user_call(self, (inputs,) + args, kwargs, bool(training))
        if args or kwargs:
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) was called with "
                            f"unexpected arguments {sorted(kwargs) or len(args)}; layers "
                            f"take inputs and training.")
        return eager.kernel_call(self, inputs, bool(training), call_tensors)

    def _pop_call_tensors(self, kwargs):
        """The tensor keyword arguments of a call (``mask``, and the layer's
        ``_tensor_call_arguments``) taken out of ``kwargs``; None values are dropped."""
        found = {}
        for name in ("mask",) + tuple(self._tensor_call_arguments):
            value = kwargs.pop(name, None)
            if value is not None:
                found[name] = value
        return found

    def _call_symbolic(self, inputs, training, call_tensors=None):
        """Record a call on symbolic tensors: build, infer the output shape, add a node."""
        call_tensors = call_tensors or {}
        leaves = flatten(inputs)
        for leaf in leaves + flatten(list(call_tensors.values())):
            if not isinstance(leaf, SymbolicTensor):
                raise TypeError(f"Layer '{self.name}' was called on a mix of symbolic tensors "
                                f"and {type(leaf).__name__}: call it on symbolic tensors only "
                                f"(from minidl.Input), or on arrays only.")
        multi = isinstance(inputs, (list, tuple))
        if not self.built:
            self._input_batch_size = leaves[0].shape[0]
        try:
            sample = [t.shape[1:] for t in leaves] if multi else leaves[0].shape[1:]
            self.ensure_built(sample)
            states = [t.shape[1:] for name, value in call_tensors.items() if name != "mask"
                      for t in flatten(value)]
            if states:   # a call with initial states: shapes of [x, *states]
                sample = (list(sample) if multi else [sample]) + states
            shape, dtype = self._output_spec(leaves, sample)
        except (ValueError, IndexError) as error:
            shown = [t.shape for t in leaves] if multi else leaves[0].shape
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) cannot take inputs "
                             f"of shape {shown}: {error}") from None
        return add_node(self, inputs, shape, dtype, training, call_tensors)

    def _output_spec(self, leaves, sample):
        """(whole output shape, dtype) of a call on the symbolic tensors ``leaves`` with
        input sample shape(s) ``sample`` (lists of both for a layer of several outputs):
        float outputs in the layer's dtype; a weightless layer's integer input keeps its
        type."""
        dtype = self.dtype if self.params or self.non_trainable_params or \
            leaves[0].dtype not in ("int32", "int64") else leaves[0].dtype
        batch = leaves[0].shape[0]
        out = self.output_shape_for(sample)
        if isinstance(out, list):
            return [(batch,) + s for s in out], [dtype] * len(out)
        return (batch,) + out, dtype

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
        """Every weight as a :class:`minidl.Variable`, trainable first (Keras order), e.g.
        BatchNormalization's gamma, beta, moving_mean, moving_variance."""
        return self.param_variables + self.non_trainable_variables_all

    @property
    def weight_arrays(self):
        """The arrays of :attr:`weights`, aligned with it (live: writing them changes the
        layer)."""
        return self.params + self.non_trainable_params

    @property
    def weight_names(self):
        return self.param_names + self.non_trainable_param_names

    @property
    def trainable_weights(self):
        """The Variables the optimizer updates: none when the layer is frozen."""
        return list(self.param_variables) if self.trainable else []

    @property
    def trainable_variables(self):
        """Keras' other name for :attr:`trainable_weights` (a model's, when overridden)."""
        return self.trainable_weights

    @property
    def non_trainable_weights(self):
        return self.non_trainable_variables_all + ([] if self.trainable
                                                   else self.param_variables)

    @property
    def non_trainable_variables(self):
        return self.non_trainable_weights

    @property
    def variables(self):
        return self.weights

    def count_params(self):
        """Number of scalars in all weights, trainable or not."""
        return int(sum(w.size for w in self.weight_arrays))

    def trainable_count(self):
        """Number of scalars the optimizer updates (0 for a frozen layer)."""
        return int(sum(w.size for w in self.params)) if self.trainable else 0

    def non_trainable_count(self):
        return self.count_params() - self.trainable_count()

    def get_weights(self):
        """Copies of all weights in Keras order (trainable, then non-trainable), as numpy
        arrays."""
        return [w.copy() for w in self.weight_arrays]

    def set_weights(self, weights):
        """Overwrite all weights in place from arrays in the order of :meth:`get_weights`."""
        for weight, value in zip(self.weight_arrays, self.check_weights(weights)):
            weight[...] = value
        WeightWrites.written()

    def check_weights(self, weights):
        """The arrays ``set_weights`` would write, after checking their number, shapes and
        values (ValueError otherwise), so a failed call changes nothing."""
        weights = list(weights)
        own, names = self.weight_arrays, self.weight_names
        if len(weights) != len(own):
            raise ValueError(f"Layer '{self.name}' expects {len(own)} weight arrays "
                             f"({', '.join(names) or 'none'}); received {len(weights)}.")
        values = [np.asarray(value) for value in weights]   # (Variables too)
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
        return (bool(self._weight_regularizers) or self.activity_regularizer is not None
                or self._uses_add_loss or any(l.has_regularization for l in self._sublayers))

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
            param = self._params[index]
            if grads is not None:
                grad = grads[index]
                total += regularizer.add_gradient(param, grad, grad)
            else:
                total += regularizer(param)
        offset = len(self._params)
        for layer in self._sublayers:
            count = len(layer.params)
            total += layer.regularization_loss(
                None if grads is None else grads[offset:offset + count])
            offset += count
        return total

    def add_loss(self, loss):
        """Add a loss term (a scalar tensor computed in ``call``, e.g. a KL divergence) to
        the training loss, as Keras does; its gradient flows through the ops that made it.
        Within a call only; ``losses`` lists the terms of the layer's last call."""
        from minidl.autodiff import Tensor, wrap
        if not isinstance(loss, Tensor):
            loss = wrap(np.asarray(loss, dtype=np.float32))
        if loss.ndim:
            raise ValueError(f"Layer '{self.name}': add_loss takes a scalar; received a tensor "
                             f"of shape {loss.shape}. Reduce it first, e.g. ops.mean(...).")
        self._uses_add_loss = True
        if not eager.collect_loss(loss):
            # Outside a call of a user layer (a built-in layer's caller adding a term):
            # kept on the layer, as its `losses`.
            self._added_losses = (self._added_losses or []) + [loss]

    @property
    def losses(self):
        """The layer's penalties, as in Keras: its weight penalties, then the activity
        penalty of its last call on arrays (``layer(x)``)."""
        out = [float(sum(r(self._params[i]) for i, r in self._weight_regularizers))] \
            if self._weight_regularizers and self.trainable else []
        if self.activity_regularizer is not None:
            out.append(self._eager_activity)
        return out + list(self._added_losses or ()) + [
            loss for layer in self._sublayers for loss in layer.losses]

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

    def __new__(cls, *args, **kwargs):
        layer = super().__new__(cls)
        if cls._user_class:
            # A user's class: its constructor arguments, for a get_config it does not
            # write (Keras 3's automatic config).
            layer._init_arguments = (args, kwargs)
        return layer

    def get_config(self):
        """Constructor arguments of this layer (JSON-able); ``from_config`` inverts it.

        A user's layer or model that does not write ``get_config`` gets Keras 3's
        automatic one: its constructor arguments, when they are plain JSON values
        (NotImplementedError otherwise, asking for a get_config)."""
        config = {"name": self.name, "dtype": self.dtype, "trainable": self.trainable}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        if self._user_class and _defined_by_minidl(type(self), "get_config") and \
                not _defined_by_minidl(type(self), "__init__"):
            config.update(eager.automatic_config(self))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _defined_by_minidl(cls, name):
    """Whether the method ``name`` of ``cls`` comes from minidl (not from a user's class)."""
    return eager.defined_in_minidl(cls, name)


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

    # Defaults as class attributes: a call sets only what it uses, so making a context
    # costs two assignments (a one-sample model(x) makes one per layer).
    activation = None    # set by a plan that fuses an activation into the layer
    activity_loss = 0.0
    # The mask of the call's input (boolean (batch, timesteps); a list for a layer called
    # on a list), set before forward; None: no mask. See Layer.compute_mask.
    mask = None
    # Set by predict on the layer that reads the model's input, when that layer can count
    # the NaN and infinities of its input for free (``finds_nonfinite_input``): the count,
    # of its linear part's output, lands in input_nonfinite.
    check_input = False
    input_nonfinite = 0
    _buffers = None
    _grads = None

    def __init__(self, layer, record=True):
        self.layer = layer
        self.record = record

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

    def forward(self, x, training=False, mask=None):
        """``layer.forward(self, x, training)`` with ``mask`` as the input's mask, building
        the layer first if needed."""
        layer = self.layer
        if not layer.built:
            if isinstance(x, (list, tuple)) and layer._tensor_call_arguments:
                shape = np.shape(x[0])[1:]   # [sequences, *initial states]: the sequences'
            elif isinstance(x, (list, tuple)):
                shape = [np.shape(a)[1:] for a in x]
            else:
                shape = np.shape(x)[1:]
            layer.ensure_built(shape)
        self.mask = mask
        return layer.forward(self, x, training)

    def backward(self, dy, need_input_grad=True):
        """``layer.backward(self, dy, need_input_grad)``."""
        return self.layer.backward(self, dy, need_input_grad)


Layer._kernel_forward = Layer.forward
Layer._kernel_backward = Layer.backward


def _model_class():
    """minidl.models.Model (imported late: models import this module)."""
    from minidl.models import Model
    return Model
