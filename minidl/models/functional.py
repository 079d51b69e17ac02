"""Model: a graph of layer calls between input and output tensors (the functional API).

    inputs = minidl.Input((784,))
    x = Dense(64, activation="relu")(inputs)
    outputs = Dense(10, activation="softmax")(x)
    model = minidl.Model(inputs, outputs)

The model holds its input and output tensors and, found from them, the nodes between (in
topological order) and its layers; it computes nothing itself. Running it (``fit``,
``predict``, ``model(x)``) goes through its execution plan (``models.plan``), built from
this graph on first use and again after a change (a layer frozen, a loss compiled).
``Sequential`` is a Model whose graph is a chain. A model is a layer: calling it on
symbolic tensors adds a node to another graph, whose plan inlines its steps.
"""
import itertools

import numpy as np

from minidl.autodiff import Tensor, recording, wrap
from minidl.layers import eager
from minidl.layers.base import LAYERS, MODELS, Layer, _trainable_version
from minidl.layers.core import InputLayer
from minidl._core import _data
from minidl.layers.node import (KerasHistory, Node, SymbolicTensor, flatten, is_symbolic,
                                map_structure, pack_like)
from minidl.models import subclassed
from minidl.models.concurrency import ModelLock
from minidl.models.data import as_input_array
from minidl.models.dense_chain import run_inference_chain
from minidl.models.train_steps import TrainSteps
from minidl.models.trainer import Trainer

# Bumped by every change that invalidates plans: a layer's `trainable`, a model's structure.
_versions = itertools.count(1)


class Model(Trainer, TrainSteps, Layer):
    """A model: the graph between input and output tensors (the functional API), or a
    subclass with layers made in ``__init__`` and a ``call`` (Keras' model subclassing).

    Args:
        inputs: the input tensor(s) of the model, from ``minidl.Input``: one tensor, or a
            list or dict of them.
        outputs: the output tensor(s), computed from ``inputs`` by layer calls: one
            tensor, or a list or dict of them.
        name: optional model name (default 'functional', made unique).
        trainable: whether the optimizer updates the model's weights.

    Example:
        >>> inputs = minidl.Input((28, 28, 1))
        >>> x = Conv2D(32, 3, activation="relu")(inputs)
        >>> x = GlobalAveragePooling2D()(x)
        >>> outputs = Dense(10, activation="softmax")(x)
        >>> model = minidl.Model(inputs, outputs)
        >>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    Subclassing (see ``models/subclassed.py``)::

        class MLP(minidl.Model):
            def __init__(self):
                super().__init__()
                self.hidden = Dense(64, activation="relu")
                self.out = Dense(10)

            def call(self, x, training=None):
                return self.out(self.hidden(x))
    """

    _subclassed = False   # a subclass with its own call(): no graph (models/subclassed.py)

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if inputs is None and outputs is None and (self._user_call or type(self) is not Model):
            # A subclass: with a call() (layers in __init__), or without one (a GAN whose
            # train_step runs its parts), as Keras 3 allows.
            subclassed.init_subclassed(self, name, trainable, kwargs)
            return
        if inputs is None or outputs is None:
            raise TypeError(
                f"Model needs `inputs` and `outputs` (the functional API: "
                f"Model(inputs, outputs)), or a subclass defining call(). Received: "
                f"inputs={inputs!r:.100}, outputs={outputs!r:.100}")
        if kwargs:
            raise TypeError(f"Model got unexpected keyword arguments "
                            f"{sorted(kwargs)}; it takes inputs, outputs, name, trainable.")
        Layer.__init__(self, name=name or _auto_name("functional"), trainable=trainable)
        self._init_model()
        self._set_graph(inputs, outputs)

    def _init_model(self):
        """State shared by every model: compile settings, the plan, the lock."""
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.history = None
        self.stop_training = False     # set by a callback to end fit
        self.stop_evaluating = False   # ... to end evaluate
        self.stop_predicting = False   # ... to end predict
        self._in_fit = False
        self._fit_validates = False
        self._initial_epoch = None
        self._plan_cache = None
        self._compiled = None        # compile's arguments resolved per output (compiled.py)
        self._compile_args = None
        self._step_buffers = None
        self._train_plan = None
        self._constraint_layers = []   # (fixed by each fit's _prepare_step)
        self._dense_chain = None   # the compiled step of a Dense chain (dense_chain.py)
        self._version = next(_versions)
        self._last_activity = ()
        self._lock = ModelLock()   # see minidl.models.concurrency

    # ---- the graph ----

    def _set_graph(self, inputs, outputs):
        for what, structure in (("inputs", inputs), ("outputs", outputs)):
            for leaf in flatten(structure):
                if not isinstance(leaf, SymbolicTensor):
                    raise TypeError(
                        f"Model {what} must be symbolic tensors (from minidl.Input and layer "
                        f"calls on them), not arrays: received an element of type "
                        f"{type(leaf).__name__} in {what}={_describe(structure)}.")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' lists the same input tensor twice in "
                             f"inputs={_describe(inputs)}.")
        self._nodes = nodes_between(self.inputs, self.outputs)
        layers, seen = [], set()
        for tensor in self.inputs:
            layer = tensor._keras_history.operation
            if isinstance(layer, InputLayer) and id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        # The order of format-1 model files (saving.model_io): the graph's nodes as
        # nodes_between lists them, before Model.layers took Keras's order.
        by_node = list(layers)
        for node in self._nodes:
            if node.operation not in by_node:
                by_node.append(node.operation)
        for layer in keras_layer_order(self.inputs, self.outputs, self._nodes):
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        _check_unique_names(self.name, layers)
        self._layers = layers
        self._layers_in_node_order = by_node
        self.built = True
        self._changed()

    def _ensure_built_for(self, sample_shapes, dtypes=None):
        """Build a subclassed model for data of these sample shapes (a functional model is
        built when made; its inputs' shapes were checked)."""
        if self._subclassed:
            subclassed.build_for(self, sample_shapes, dtypes)

    def build(self, input_shape=None):
        """Build a subclassed model for inputs of ``input_shape`` (batch dimension first,
        a list for several inputs) by calling it once; a functional model is built."""
        if not self._subclassed or input_shape is None:
            return
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        subclassed.build_for(self, [tuple(shape)[1:] for shape in shapes])

    def _nodes_in_order(self):
        """The nodes between the inputs and the outputs, each after those it reads."""
        return self._nodes

    @property
    def layers(self):
        """The model's layers, each once, in Keras's order (Input layers first, then by
        distance from the outputs: see :func:`keras_layer_order`); for a subclassed model,
        those assigned to its attributes."""
        if self._subclassed:
            return subclassed.layers(self)
        return list(self._layers)

    @property
    def input(self):
        """The input tensor(s), in the structure given to the constructor."""
        return self._inputs_struct

    @property
    def output(self):
        """The output tensor(s), in the structure given to the constructor."""
        return self._outputs_struct

    @property
    def input_shape(self):
        """The inputs' shapes, batch dimension first (a list for several inputs); None
        before the model knows them."""
        shapes = [t.shape for t in self.inputs]
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    @input_shape.setter
    def input_shape(self, value):
        # Layer's constructor sets it; a model's input shape comes from its inputs.
        if value is not None:
            raise AttributeError("A model's input shape comes from its inputs; it cannot be "
                                 "set.")

    @property
    def output_shape(self):
        """The outputs' shapes, batch dimension first (a list for several outputs); None
        before the model is built."""
        shapes = [t.shape for t in self.outputs]
        return None if not shapes else shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_names(self):
        """The names of the layers computing the outputs (Keras: loss and metric keys)."""
        if self._subclassed:
            return list(self._output_names)
        return [t._keras_history.operation.name for t in self.outputs]

    @property
    def input_names(self):
        if self._subclassed:
            return list(self._input_names)
        return [t._keras_history.operation.name for t in self.inputs]

    def get_layer(self, name=None, index=None):
        """A layer of the model by name or by index in :attr:`layers` (not both)."""
        if (name is None) == (index is None):
            raise ValueError(f"Provide either a layer name or a layer index, not both; "
                             f"received name={name!r}, index={index!r}.")
        layers = self.layers
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"index must be an int; received index={index!r}.")
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model "
                                 f"'{self.name}' only has {len(layers)} layers.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: "
                         f"{[layer.name for layer in layers]}.")

    def random_state_layers(self):
        """The layers whose random states model files store, in order: every layer of the
        model (those of nested models too), each once; most own no generator."""
        return self._weighted_layers()

    # ---- weights ----

    def _weighted_layers(self, node_order=False):
        """Every layer whose weights the model holds, nested models expanded, each once,
        in the order of :attr:`layers` (``node_order``: of format-1 model files, see
        :meth:`weight_arrays_in_node_order`)."""
        out, seen = [], set()
        layers = getattr(self, "_layers_in_node_order", None) if node_order else None
        for layer in self.layers if layers is None else layers:
            inner = (layer._weighted_layers(node_order) if isinstance(layer, Model)
                     else [layer])
            for item in inner:
                if id(item) not in seen:
                    seen.add(id(item))
                    out.append(item)
        return out

    @property
    def weights(self):
        """All weight arrays (live), layer by layer in Keras order."""
        return [w for layer in self._weighted_layers() for w in layer.weights]

    @property
    def weight_arrays(self):
        """The arrays of :attr:`weights` (live), aligned with it."""
        return [w for layer in self._weighted_layers() for w in layer.weight_arrays]

    def weight_arrays_in_node_order(self):
        """:attr:`weight_arrays` in the order format-1 model files hold them: a functional
        model's layers as its graph's nodes list them, which differs from Keras's order
        (:attr:`layers`, format 2) in branched models."""
        return [w for layer in self._weighted_layers(node_order=True)
                for w in layer.weight_arrays]

    @property
    def weight_names(self):
        return [f"{layer.name}/{n}" for layer in self._weighted_layers()
                for n in layer.weight_names]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for layer in self._weighted_layers() for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """Layers' state (e.g. moving statistics) and the parameters of frozen layers."""
        if not self.trainable:
            return self.weights
        return [w for layer in self._weighted_layers() for w in layer.non_trainable_weights]

    def count_params(self):
        """Number of scalars in all weights, trainable or not."""
        return int(sum(w.size for w in self.weight_arrays))

    def get_weights(self):
        """Copies of all weights in Keras order: layer by layer, e.g. kernel then bias, and
        a layer's non-trainable state after its parameters."""
        return [w.copy() for w in self.weight_arrays]

    def check_weights(self, weights):
        """The arrays :meth:`set_weights` would write, checked layer by layer."""
        weights = list(weights)
        layers = self._weighted_layers()
        expected = sum(len(layer.weights) for layer in layers)
        if len(weights) != expected:
            raise ValueError(f"Model '{self.name}' has {expected} weight arrays; received "
                             f"{len(weights)}.")
        checked, i = [], 0
        for layer in layers:
            count = len(layer.weights)
            checked += layer.check_weights(weights[i:i + count])
            i += count
        return checked

    def set_weights(self, weights):
        """Set all weights from a list in the order of :meth:`get_weights`; a list that
        does not fit changes nothing."""
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             f"set; give the first layer input_shape=, start with Input(...), "
                             f"or call build() first. Received {len(list(weights))} arrays.")
        values = self.check_weights(weights)
        with self.writing_weights():
            for array, value in zip(self.weight_arrays, values):
                array[...] = value

    def writing_weights(self):
        """A context manager for writing the model's arrays in place (weights, optimizer
        slots): inside it, inference and training in other threads wait, so they see the
        old values or the new ones, never a mix (``minidl.models.concurrency``). Used by
        ``set_weights`` and by loading and restoring files.

        Example:

        >>> with model.writing_weights():
        ...     for w, v in zip(model.weights, values):
        ...         w[...] = v
        """
        return self._lock.exclusive

    def _gradients(self):
        """The gradient arrays of the last training step (live), aligned with
        ``trainable_weights``: the optimizer's view, for tests and debugging."""
        plan = getattr(self, "_train_plan", None)
        if plan is None:
            raise RuntimeError(f"Model '{self.name}' has not taken a training step yet.")
        grads = dict(zip(map(id, plan.params), plan.grads))
        return [grads[id(w.value)] for w in self.trainable_weights]

    @property
    def losses(self):
        """The regularization penalties, as floats: those of the weights now, then the
        activity penalties of the last forward pass (a training step or ``model(x)``)."""
        weight = [layer.regularization_loss() for layer in self._weighted_layers()
                  if layer.has_regularization]
        # The last call's per-call terms: floats from the execution plan, or the add_loss
        # tensors of a call on tensors (a subclassed model, a step under a tape).
        return ([float(v) for v in weight if v] + [float(v) for v in self._last_activity]
                + list(self._added_losses or ()))

    # ---- trainable ----

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Setting it sets every layer's, nested models' included (as Keras does)."""
        Layer.trainable.fset(self, value)
        for layer in getattr(self, "_layers", ()):
            layer.trainable = value

    # ---- the plan ----

    def _structure_version(self):
        """Changes whenever a plan built for the model might no longer fit it."""
        nested = self.__dict__.get("_nested_models")
        if nested is None or nested[0] != self._version:
            nested = self._nested_models = (
                self._version, [l for l in self._layers if isinstance(l, Model)])
        return (self._version, Layer._trainable_version(),
                tuple(l._version for l in nested[1]) if nested[1] else ())

    def _changed(self):
        self._version = next(_versions)

    def _plan(self, losses=None):
        """The model's execution plan (for training when ``losses`` is given), rebuilt
        when the model changed since."""
        from minidl.models.plan import Plan
        cache = self._plan_cache
        key = (self._structure_version(), None if losses is None else tuple(map(id, losses)))
        if cache is None or cache[0] != key:
            plan = Plan(self, losses)
            self._plan_cache = cache = (key, plan)
        return cache[1]

    # ---- as a layer ----

    def compute_output_shape(self, input_shape):
        """Output sample shape(s) for input sample shape(s), through every node."""
        shapes = [tuple(s) for s in (input_shape if len(self.inputs) > 1 else [input_shape])]
        known = {id(t): (None,) + s for t, s in zip(self.inputs, shapes)}
        for node in self._nodes:
            layer = node.operation
            args = map_structure(lambda t: known[id(t)][1:], node.arguments)
            states = [known[id(t)][1:] for name, value in node.call_tensors.items()
                      if name != "mask" for t in flatten(value)]
            if states:   # a call with initial states: shapes of [x, *states]
                args = (list(args) if isinstance(args, list) else [args]) + states
            out = layer.output_shape_for(args)
            outs = out if isinstance(node.outputs, (list, tuple)) else [out]
            for tensor, shape in zip(node.output_tensors, outs):
                known[id(tensor)] = (None,) + tuple(shape)
        result = [known[id(t)][1:] for t in self.outputs]
        return result[0] if len(result) == 1 else result

    def _call_symbolic(self, inputs, training, call_tensors=None):
        """A call of the model inside another graph: one node, with output tensors of the
        model's output shapes and dtypes (in the structure of its outputs)."""
        if isinstance(inputs, dict) and isinstance(self._inputs_struct, dict):
            missing = [key for key in self._inputs_struct if key not in inputs]
            if missing:
                raise ValueError(f"Model '{self.name}' was called on a dict without the "
                                 f"key(s) {missing}.")
            leaves = [inputs[key] for key in self._inputs_struct]
        else:
            leaves = flatten(inputs)
        for leaf in leaves:
            if not isinstance(leaf, SymbolicTensor):
                raise TypeError(f"Model '{self.name}' was called on a mix of symbolic tensors "
                                f"and {type(leaf).__name__}.")
        if len(leaves) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' has {len(self.inputs)} input(s); it was "
                             f"called on {len(leaves)} tensor(s).")
        shapes = [t.shape[1:] for t in leaves]
        sample = shapes if len(shapes) > 1 else shapes[0]
        self.ensure_built(sample)
        out_shapes = self.compute_output_shape(sample)
        if len(self.outputs) == 1:
            out_shapes = [out_shapes]
        index = len(self._inbound_nodes)
        batch = leaves[0].shape[0]
        outs = [SymbolicTensor((batch,) + tuple(shape), tensor.dtype,
                               name=f"{self.name}_{index}_{i}",
                               history=KerasHistory(self, index, i))
                for i, (shape, tensor) in enumerate(zip(out_shapes, self.outputs))]
        outputs = pack_like(self._outputs_struct, outs)
        self._inbound_nodes.append(Node(self, inputs, outputs,
                                        {} if training is None else {"training": training}))
        return outputs

    def ensure_built(self, input_shape):
        if self._subclassed:
            return Layer.ensure_built(self, input_shape)
        shapes = input_shape if len(self.inputs) > 1 else [input_shape]
        expected = [t.shape[1:] for t in self.inputs]
        for got, want in zip(shapes, expected):
            if len(got) != len(want) or any(w is not None and g != w
                                            for g, w in zip(got, want)):
                raise ValueError(f"Model '{self.name}' expects inputs of shape "
                                 f"{_full(expected)}; received {_full(shapes)}.")

    # ---- calling ----

    def __call__(self, *args, **kwargs):
        """Call the model, as in Keras.

        On symbolic tensors: a node in another graph (the model as a layer). On arrays or
        tensors: the outputs (:class:`minidl.Tensor`; a list for several outputs) in one
        pass, through the execution plan (use predict for large data); ``training=True``
        runs the training behaviour (dropout, batch statistics, which then update the
        moving averages). While a tape records (a custom ``train_step``, a
        ``GradientTape`` loop), the layers run one by one as recorded ops, so that
        gradients reach the weights and the inputs.
        """
        if self._subclassed:
            if not self._user_call:
                raise NotImplementedError(
                    f"Model '{self.name}' ({type(self).__name__}) has no call() method, so it "
                    f"cannot be called; define call(self, inputs, training=None), or call "
                    f"its parts.")
            # As the plan's calls: inference shares the model, a training call (batch
            # statistics move) has it alone; a train_step already holding it passes through.
            training = kwargs.get("training")
            if training is None:
                training = eager.current_training()
            with self._lock.exclusive if training else self._lock.shared:
                return Layer.__call__(self, *args, **kwargs)
        if len(args) == 1 and not kwargs and type(args[0]) is np.ndarray and self.built \
                and not recording() and not eager.current_training():
            # A prediction on one ready array: through a chain of Dense layers, the few
            # kernel calls without the plan's per-step Python (a one-sample call takes
            # about 10 microseconds, half of the general path's); else the plan, without
            # the general path's checks (a one-sample CNN call takes tens of microseconds).
            chain = self._dense_inference_chain()
            xs = self._fast_inputs(args[0], check_finite=chain is None)
            if xs is not None and chain is not None:
                with self._lock.shared:
                    out = run_inference_chain(chain, xs[0], check_input=True)
                if out is not None:
                    return wrap(out)
                xs = None   # a non-finite value in x, or an overflow: the general path says
            if xs is not None:
                plan = self._chain_plan()
                if plan is not None:
                    with self._lock.shared:
                        return wrap(plan.run_chain(xs[0]))
                return self._run_plan(xs, False)   # (nothing else to check)
        inputs = args[0] if args else kwargs.pop("inputs", None)
        training = kwargs.pop("training", None)
        if kwargs.get("mask", 0) is None:
            kwargs.pop("mask")
        if is_symbolic(inputs):
            return Layer.__call__(self, inputs, training=training, **kwargs)
        if len(args) > 1 or kwargs:
            raise TypeError(f"Model '{self.name}' was called with unexpected arguments "
                            f"{sorted(kwargs) or len(args)}; it takes inputs and training.")
        if training is None:
            training = eager.current_training()
        if recording() and self._records(inputs):
            return self._call_recorded(inputs, bool(training))
        if isinstance(inputs, Tensor):
            inputs = inputs.value
        xs = self._fast_inputs(inputs) if self.built else None
        if xs is None:
            xs = [x2d.astype(dtype, copy=False).reshape((x2d.shape[0],) + tuple(shape))
                  for (x2d, shape), dtype in zip(self._input_arrays(_values(inputs)),
                                                 self._input_dtypes())]
        return self._run_plan(xs, training)

    def _run_plan(self, xs, training):
        """The outputs of one call on the input list ``xs`` through the plan, as
        :meth:`__call__` returns them."""
        plan = self._current_plan()
        if not training and plan.is_chain:
            # One array through a chain of steps: per-step functions made once per input
            # shape, without contexts (nothing to read from them afterwards).
            with self._lock.shared:
                return wrap(plan.run_chain(xs[0]))
        contexts = plan.inference_contexts()
        if training:
            with self._lock.exclusive:   # batch statistics update the moving averages
                outs = plan.forward(xs, training=True, contexts=contexts)
        else:
            with self._lock.shared:
                outs = plan.forward(xs, training=False, contexts=contexts)
        if plan.has_activity:
            self._last_activity = tuple(plan.activity_penalties(contexts))
            self._added_losses = None
        if len(outs) == 1:
            return wrap(outs[0])
        return [wrap(out) for out in outs]

    def _records(self, inputs):
        """Whether a call on ``inputs`` while a tape records needs its layers recorded:
        some input needs a gradient, or the model has trainable weights."""
        if any(isinstance(x, Tensor) and x.requires_grad for x in flatten(inputs)):
            return True
        return self.trainable and any(layer.trainable and layer.params
                                      for layer in self._weighted_layers())

    def _call_recorded(self, inputs, training):
        """The graph run node by node on tensors, each layer call a recorded op (or, for
        user layers, the ops of their ``call``), so a tape can differentiate it."""
        if not self.built:
            self._input_arrays(_values(inputs))   # a deferred Sequential builds here
        if isinstance(inputs, dict) and isinstance(self._inputs_struct, dict):
            leaves = [inputs[key] for key in self._inputs_struct]
        else:
            leaves = flatten(inputs)
        if len(leaves) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' has {len(self.inputs)} input(s); it was "
                             f"called on {len(leaves)}.")
        values = {}
        for i, (tensor, x) in enumerate(zip(self.inputs, leaves)):
            values[id(tensor)] = x if isinstance(x, Tensor) else wrap(as_input_array(
                x, tensor.dtype, "x" if len(leaves) == 1 else f"x[{self.input_names[i]!r}]"))
        self._last_activity = ()
        with self._lock.shared, eager.collecting_losses(self):
            for node in self._nodes_in_order():
                layer = node.operation
                arguments = map_structure(lambda t: values[id(t)], node.arguments)
                call_tensors = {name: map_structure(lambda t: values[id(t)], value)
                                for name, value in node.call_tensors.items()}
                out = layer(arguments, training=node.kwargs.get("training", training),
                            **call_tensors)
                for tensor, value in zip(node.output_tensors, flatten(out)):
                    values[id(tensor)] = value
        outs = [values[id(t)] for t in self.outputs]
        return outs[0] if len(outs) == 1 else outs

    def _dense_inference_chain(self):
        """The model's inference pass as a chain of Dense layers (``Plan.inference_chain``,
        for :func:`run_inference_chain`), or None. A chain of Dense layers holds no nested
        model, so the model's own version says whether it still stands."""
        cache = self.__dict__.get("_chain_cache")
        if cache is None or cache[0] != self._version:
            cache = self._chain_cache = (self._version, self._current_plan().inference_chain)
        return cache[1]

    def _fast_inputs(self, x, check_finite=True):
        """The input list when ``x`` is one array ready as it is (built single-input model,
        its dtype and shape, C-contiguous, finite): a one-sample prediction takes a few
        microseconds, so this check must cost nanoseconds. None otherwise.

        ``check_finite=False`` leaves the finite check to the caller: a Dense chain checks
        its first product instead (``run_inference_chain(check_input=True)``), a twelfth
        of the input's size for 784 features into 64 units, and x is read once, not twice."""
        if len(self.inputs) != 1 or not isinstance(x, np.ndarray) or \
                self.inputs[0].dtype == "string":
            return None
        spec = self.__dict__.get("_input_spec")
        if spec is None or spec[0] != self._version:
            # (numpy's dtype.name costs microseconds: compare dtype objects instead.)
            tensor = self.inputs[0]
            spec = self._input_spec = (self._version, np.dtype(tensor.dtype), tensor.shape[1:])
        if x.dtype != spec[1] or x.shape[1:] != spec[2] \
                or not x.shape[0] or not x.flags.c_contiguous or not x.flags.aligned:
            return None
        if check_finite and _data.count_nonfinite(x)[0]:
            return None
        return [x]

    def _chain_plan(self):
        """The plan for inference (:meth:`_current_plan`) when its inference pass is a
        plain chain (``Plan.is_chain``), else None. For a model without nested models,
        found again only when the model, a layer's ``trainable``, the compiled losses or
        the plan cache changed: a one-sample prediction counts microseconds, and building
        the structure's key takes one or two."""
        found = self.__dict__.get("_chain_plan_found")
        if (found is not None and found[0] == self._version
                and found[1] == _trainable_version[0] and found[2] is self._plan_cache
                and found[3] is self._compiled):
            return found[4]
        version, trainable_version = self._version, _trainable_version[0]
        compiled = self._compiled
        plan = self._current_plan()
        cache = self._plan_cache
        chain = plan if plan.is_chain else None
        if cache is not None and cache[1] is plan and not self._nested_models[1]:
            # (one assignment: calls in other threads see all of it or none)
            self._chain_plan_found = (version, trainable_version, cache, compiled, chain)
        return chain

    def _current_plan(self):
        """The plan for inference: the training plan when the model is compiled (the
        same steps), so alternating fit and predict builds nothing."""
        compiled = self._compiled
        return self._plan(None if compiled is None else compiled.losses)

    # ---- saving ----

    def get_config(self):
        """The graph in Keras' functional layout (a subclassed model: its constructor
        arguments, see ``Layer.get_config``): each layer's config with its inbound
        nodes (the tensors of each call, as [layer name, node index, tensor index]), and
        the input and output tensors. Node indices count the calls within this model."""
        if self._subclassed:
            config = Layer.get_config(self)
            config.pop("input_shape", None)   # (the build_config of a saved model holds it)
            return config
        from minidl.utils.registry import serialize
        node_index, kept = {}, {}
        for node in self._nodes_in_order():
            layer = node.operation
            node_index[id(node)] = kept.get(id(layer), 0)
            kept[id(layer)] = node_index[id(node)] + 1
        for tensor in self.inputs:
            node = _producing_node(tensor)
            if id(node) not in node_index:
                node_index[id(node)] = 0

        def ref(tensor):
            node = _producing_node(tensor)
            return [tensor._keras_history.operation.name, node_index[id(node)],
                    tensor._keras_history.tensor_index]

        def tensor_config(tensor):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(tensor.shape), "dtype": tensor.dtype,
                               "keras_history": ref(tensor)}}

        nodes_of = {}
        for node in self._nodes_in_order():
            nodes_of.setdefault(id(node.operation), []).append(node)
        layers = []
        for layer in self._layers:
            spec = serialize(layer)
            spec["name"] = layer.name
            spec["inbound_nodes"] = [
                {"args": [map_structure(tensor_config, node.arguments)],
                 "kwargs": {**node.kwargs, **{name: map_structure(tensor_config, value)
                                              for name, value in node.call_tensors.items()}}}
                for node in nodes_of.get(id(layer), [])]
            layers.append(spec)
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "input_layers": map_structure(ref, self._inputs_struct),
                "output_layers": map_structure(ref, self._outputs_struct)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model (fresh weights) from :meth:`get_config`'s output: the layers are made
        through the layer registry (and ``custom_objects``, a dict from names to the
        program's own classes), then called in the order their inputs become available.
        (A subclassed model: ``cls(**config)``.)"""
        from minidl.utils.registry import custom_object_scope
        with custom_object_scope(custom_objects):
            if cls._user_call:
                return cls(**config)
            from minidl.models.serialization import functional_from_config
            return functional_from_config(cls, config)

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``json.dumps`` keyword arguments accepted);
        :func:`minidl.models.model_from_json` inverts it."""
        import json
        from minidl.utils.registry import serialize
        return json.dumps(serialize(self), **kwargs)

    def save(self, filepath):
        """Save the whole model to one file, atomically, in the format the extension
        names (see :func:`minidl.saving.save_model`): '.keras' a Keras 3 archive that
        Keras loads, '.h5' Keras's legacy HDF5 file, any other name ('.minidl') minidl's
        own format, which resumes training exactly. ``minidl.models.load_model`` reads
        all three back."""
        from minidl.saving.model_io import save_model
        save_model(self, filepath)

    def save_weights(self, filepath):
        """Save the weights only (see :func:`minidl.saving.save_weights`): '.weights.h5'
        as Keras 3's weights file, other '.h5' names in Keras's legacy layout, any other
        name in minidl's format; a '.keras' name is refused, as in Keras."""
        from minidl.saving.model_io import save_weights
        save_weights(self, filepath)

    def load_weights(self, filepath):
        """Set the weights from a file of :meth:`save_weights` or :meth:`save`, minidl's
        or Keras's ('.weights.h5', '.keras', legacy '.h5'): the format is read from the
        file's content (see :func:`minidl.saving.load_weights`)."""
        from minidl.saving.model_io import load_weights
        load_weights(self, filepath)

    def export(self, filepath, format="onnx", verbose=True, input_signature=None, **kwargs):
        """Export the model as an artifact for inference (Keras 3's ``Model.export``).

        Args:
            filepath: path of the file to write, atomically (``str`` or ``os.PathLike``).
            format: 'onnx', the format minidl writes (see :func:`minidl.onnx.export`);
                another (Keras's 'tf_saved_model', ...) raises a ValueError.
            verbose: print the path written.
            input_signature: None: the inputs' shapes are the model's, any batch size.
            **kwargs: ``opset_version``, the ONNX opset (default 17).

        Example:
            >>> model.export("model.onnx", format="onnx")
        """
        from minidl.onnx import export_model
        return export_model(self, filepath, format=format, verbose=verbose,
                            input_signature=input_signature, **kwargs)

    def summary(self, print_fn=None):
        """Print a Keras-style table of the layers (with what each is connected to, for a
        functional model), their output shapes and parameter counts, and the totals."""
        from minidl.models.summary import print_summary
        print_summary(self, print_fn or print)


def _producing_node(tensor):
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]


def nodes_between(inputs, outputs):
    """The nodes computing ``outputs`` from ``inputs``, each after the nodes it reads
    (depth-first, iterative: a chain of 20,000 layers is fine).

    Raises:
        ValueError: an output depends on a tensor that is not computed from ``inputs``
            (an ``Input`` missing from ``inputs``); the message names it.
    """
    input_ids = {id(t) for t in inputs}
    order, done = [], set()
    stack = []

    def parent(tensor, reader):
        history = tensor._keras_history
        layer = history.operation
        if isinstance(layer, InputLayer):
            raise ValueError(
                f"Graph disconnected: {tensor!r} (the output of Input layer '{layer.name}'), "
                f"read by {reader}, is not among the model's inputs and cannot be computed "
                f"from them. Add it to inputs=, or build the outputs from the given inputs.")
        return layer._inbound_nodes[history.node_index]

    for tensor in reversed(outputs):
        if id(tensor) not in input_ids:
            stack.append((parent(tensor, "the model's outputs"), False))
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for tensor in reversed(node.input_tensors):
            if id(tensor) not in input_ids:
                above = parent(tensor, f"layer '{node.operation.name}'")
                if id(above) not in done:
                    stack.append((above, False))
    return order


def keras_layer_order(inputs, outputs, nodes):
    """The layers of ``nodes`` in Keras's order (``keras.src.ops.function.map_graph``):
    by depth, the number of layer calls between a node and the outputs, deepest first;
    ties in the order a depth-first walk from the outputs first meets them. Any topological
    order computes the same; this one gives Keras's ``model.layers`` and so its weight
    order, which weight files written by Keras follow (a branch's layers interleave with
    its sibling's, e.g. a ResNet block's shortcut convolution sits beside the main path's
    last one).
    """
    in_graph = {id(node) for node in nodes}
    input_ids = {id(t) for t in inputs}
    first_met, walked = {}, []   # layer id -> rank in the walk; nodes, inputs first
    finished = set()
    stack = [(tensor, False) for tensor in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        node = _producing_node(tensor)
        if expanded:
            finished.add(id(node))
            walked.append(node)
            continue
        if id(node) in finished or id(tensor) in input_ids or id(node) not in in_graph:
            continue
        first_met.setdefault(id(node.operation), len(first_met))
        stack.append((tensor, True))
        stack.extend((t, False) for t in reversed(node.input_tensors))
    node_depth, layer_depth, layers = {}, {}, {}
    for node in reversed(walked):
        layer = node.operation
        depth = max(node_depth.get(id(node), 0), layer_depth.get(id(layer), 0))
        layer_depth[id(layer)], node_depth[id(node)], layers[id(layer)] = depth, depth, layer
        for tensor in node.input_tensors:
            parent = id(_producing_node(tensor))
            if id(tensor) not in input_ids and parent in in_graph:
                node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    ranked = sorted(layers, key=lambda key: (-layer_depth[key], first_met[key]))
    return [layers[key] for key in ranked]


def _check_unique_names(model_name, layers):
    seen = {}
    for layer in layers:
        if layer.name in seen and seen[layer.name] is not layer:
            raise ValueError(
                f"The name '{layer.name}' is used by two layers of model '{model_name}'. "
                f"All layer names should be unique: pass name= to one of them.")
        seen[layer.name] = layer


def _auto_name(base):
    from minidl.layers.base import unique_name
    return unique_name(base)


def _values(inputs):
    """``inputs`` with Tensors replaced by their arrays (lists and dicts kept)."""
    return map_structure(lambda x: x.value if isinstance(x, Tensor) else x, inputs)


def _full(shapes):
    shapes = [(None,) + tuple(s) for s in shapes]
    return shapes[0] if len(shapes) == 1 else shapes


def _describe(structure):
    if isinstance(structure, (list, tuple)):
        return f"{type(structure).__name__} of {len(structure)}"
    if isinstance(structure, dict):
        return f"dict with keys {sorted(structure)}"
    return repr(structure)


LAYERS.register("Functional")(Model)
MODELS.register("Functional")(Model)
Model.serialized_name = "Functional"   # Keras' class name for functional models in configs
