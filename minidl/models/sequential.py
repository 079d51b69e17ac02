"""Sequential: a model whose graph is a chain of layers.

It is a :class:`~minidl.models.functional.Model` like any other: once its input shape is
known (an ``Input`` first, ``input_shape=`` on the first layer, ``build``, or the first
data), it calls its layers one after another on a symbolic input and runs through the same
execution plan. Adding a layer to a built model calls just that layer on the current output,
so building a model of n layers (loading a config) takes O(n).
"""
import numpy as np

from minidl.layers.base import LAYERS, MODELS, Layer
from minidl.layers.core import InputLayer
from minidl.layers.node import SymbolicTensor
from minidl.models.functional import Model, _auto_name


@MODELS.register()
@LAYERS.register()
class Sequential(Model):
    """A model that applies its layers one after another.

    Args:
        layers: optional list of layers; an ``Input(shape)`` first, or a first layer with
            ``input_shape=``, builds the model at once. Otherwise it builds on first data.
        trainable: whether the optimizer updates the model's weights.
        name: optional model name (default 'sequential', made unique).

    Example:
        >>> model = Sequential([Input((784,)), Dense(64, activation="relu"),
        ...                     Dense(10, activation="softmax")])
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])
        >>> history = model.fit(x_train, y_train, epochs=2, validation_data=(x_val, y_val))
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self._stack = []           # the layers, without the input layer
        self._stack_ids = set()
        self._input_layer = None
        self._layers = []
        Layer.__init__(self, name=name or _auto_name("sequential"), trainable=trainable)
        self._init_model()
        self.inputs, self.outputs, self._nodes = [], [], []
        self._inputs_struct = self._outputs_struct = None
        self.built = False
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----

    @property
    def layers(self):
        """The layers, in order (the input layer excluded, as in Keras)."""
        return list(self._stack)

    def add(self, layer):
        """Append a layer to the stack (or set its input with ``Input(...)`` first).

        When the input shape is known, the layer is called at once on the stack's output; a
        layer that cannot follow it raises and is not added, leaving the model as it was.
        """
        if isinstance(layer, SymbolicTensor):
            producer = layer._keras_history.operation
            if not isinstance(producer, InputLayer):
                raise TypeError(f"Sequential.add takes layers, or an Input(...) first; "
                                f"received the tensor {layer!r}, computed by a layer.")
            layer = producer
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("Input(...) must come first in a Sequential model.")
            self._start(layer)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {layer!r:.100} of type "
                            f"{type(layer).__name__}.")
        if id(layer) in self._stack_ids:
            raise ValueError(f"Layer '{layer.name}' is already in this model.")
        adopted = (not self._stack and self._input_layer is None
                   and getattr(layer, "input_shape", None) is not None
                   and not isinstance(layer, Model))
        if adopted:
            self._start(InputLayer(shape=layer.input_shape, dtype=layer.dtype), build=False)
        if self._input_layer is not None:
            try:
                output = layer(self.outputs[0] if self.built else self._input_layer.output)
            except Exception:   # a layer that cannot follow the stack is not added
                if adopted:
                    self._input_layer = None
                raise
            self._extend(layer, output)
        else:
            self._stack.append(layer)
            self._stack_ids.add(id(layer))
        self._changed()

    def _start(self, input_layer, build=True):
        self._input_layer = input_layer
        if build:
            self._build_chain()

    def _extend(self, layer, output):
        """Record ``layer``'s call on the stack's output: the graph grows by one node."""
        node = layer._inbound_nodes[output._keras_history.node_index]
        self._stack.append(layer)
        self._stack_ids.add(id(layer))
        if not self.built:
            self.inputs = [self._input_layer.output]
            self._inputs_struct = self.inputs[0]
            self._layers = [self._input_layer]
            self.built = True
        self._nodes.append(node)
        self._layers.append(layer)   # (new: add refuses a layer already in the model)
        self.outputs = [output]
        self._outputs_struct = output
        if self._compiled is not None:   # the outputs changed: compile's view of them too
            self._compile_for_outputs()

    def _build_chain(self):
        """Call every layer in turn on the input layer's output (O(n))."""
        tensor = self._input_layer.output
        nodes = []
        for layer in self._stack:
            tensor = layer(tensor)
            nodes.append(layer._inbound_nodes[tensor._keras_history.node_index])
        self.inputs = [self._input_layer.output]
        self._inputs_struct = self.inputs[0]
        self._layers = [self._input_layer] + self._stack
        if self._stack:
            self.outputs, self._outputs_struct = [tensor], tensor
            self._nodes = nodes
            self.built = True
            if self.compiled:
                self._compile_for_outputs()
        self._changed()

    def pop(self):
        """Remove the last layer; returns it."""
        if not self._stack:
            raise ValueError(f"There are no layers in model '{self.name}' to pop.")
        layer = self._stack.pop()
        self._stack_ids.discard(id(layer))
        self.built = False
        self.outputs, self._nodes, self._outputs_struct = [], [], None
        if self._input_layer is not None and self._stack:
            self._build_chain()
        self._changed()
        return layer

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (with the batch dim, Keras style)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Cannot build the model without an input shape: pass "
                                 "input_shape=(None, features) or start with Input((features,)).")
            return
        sample = _sample_shape(input_shape, self.name)
        if self._input_layer is not None:
            known = self._input_layer.output.shape[1:]
            if sample != known:
                raise ValueError(f"Model '{self.name}' expects input shape {(None,) + known}; "
                                 f"received {(None,) + sample}.")
            return
        self._build_for(sample)

    def _build_for(self, sample_shape):
        """Adopt ``sample_shape`` and build; a failed build leaves the model unbuilt, so
        the user can retry with corrected data."""
        dtype = self._stack[0].dtype if self._stack else "float32"
        self._input_layer = InputLayer(shape=sample_shape, dtype=dtype)
        try:
            self._build_chain()
        except Exception:
            self._input_layer, self._layers = None, []
            self.inputs, self.outputs, self._nodes = [], [], []
            self.built = False
            raise

    def _ensure_built_for(self, sample_shapes, dtypes=None):
        if not self._stack:
            raise ValueError(f"Model '{self.name}' has no layers; add some before using it.")
        if not self.built:
            with self._lock.exclusive:   # two threads' first calls build it once
                if not self.built:
                    self._build_for(tuple(sample_shapes[0]))

    @property
    def input_names(self):
        return [self._input_layer.name] if self._input_layer is not None else []

    # ---- saving ----

    def get_config(self):
        """The architecture: name, the layers' configs (the input layer first) and the
        input shape the model was built for (with the batch dimension as None)."""
        from minidl.utils.registry import serialize
        layers = ([] if self._input_layer is None else [serialize(self._input_layer)]) + \
            [serialize(layer) for layer in self._stack]
        shape = None if self._input_layer is None else \
            [None, *self._input_layer.output.shape[1:]]
        return {"name": self.name, "trainable": self.trainable, "layers": layers,
                "build_input_shape": shape}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model (fresh weights) from :meth:`get_config`'s output; layer classes
        resolve through the layer registry (and ``custom_objects``, a dict from names to the
        program's own classes) only. Every field is checked; an error names it
        (``layers[3]``, ``build_input_shape``)."""
        from minidl.utils.registry import custom_object_scope
        with custom_object_scope(custom_objects):
            return cls._from_config(config)

    @classmethod
    def _from_config(cls, config):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"A Sequential config must be a dict with a 'layers' list; "
                             f"received {config!r:.200}.")
        unknown = sorted(str(key) for key in config
                         if key not in ("name", "trainable", "layers", "build_input_shape"))
        if unknown:
            raise ValueError(f"A Sequential config holds unknown keys {', '.join(unknown)[:200]}; "
                             f"it may hold name, trainable, layers, build_input_shape.")
        name = config.get("name", "sequential")
        if not isinstance(name, str) or not name:
            raise ValueError(f"A Sequential config's name must be a non-empty string. "
                             f"Received: name={name!r:.100}.")
        trainable = config.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ValueError(f"A Sequential config's trainable must be true or false. "
                             f"Received: trainable={trainable!r:.100}.")
        model = cls(name=name)
        for i, spec in enumerate(config["layers"]):
            if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
                raise ValueError(f"Each layer config must be {{'class_name': ..., 'config': "
                                 f"...}}; received layers[{i}]={spec!r:.200}.")
            extra = sorted(str(key) for key in spec if key not in ("class_name", "config"))
            if extra:
                raise ValueError(f"layers[{i}] holds unknown keys {', '.join(extra)[:200]}; it "
                                 f"may hold class_name, config.")
            try:
                model.add(LAYERS.get(spec, base=Layer))
            except (ValueError, TypeError) as error:
                raise type(error)(f"layers[{i}] ({spec['class_name']:.100}): {error}") from None
        shape = config.get("build_input_shape")
        if shape is not None:
            if not isinstance(shape, list) or len(shape) < 2 or shape[0] is not None:
                raise ValueError(f"build_input_shape must be a list [None, d1, ...]; received "
                                 f"build_input_shape={shape!r:.200}.")
            try:
                model.build(tuple(shape))
            except (ValueError, TypeError) as error:
                raise type(error)(f"build_input_shape={shape!r:.200}: {error}") from None
        if not trainable:
            # A frozen model freezes its layers; a trainable one keeps each layer's own
            # flag (a frozen layer in it stays frozen), as Keras's from_config does.
            model.trainable = False
        return model


def _sample_shape(input_shape, model_name):
    """The sample part of a Keras input shape ``(batch, d1, ...)``, checked: the batch entry
    None or a positive int, then at least one dimension, each a positive int or None (any
    size: sequences of any length); a bool is not an int."""
    try:
        full = tuple(input_shape)
    except TypeError:
        full = ()
    if len(full) >= 2 and (full[0] is None or _is_positive_int(full[0])) \
            and all(d is None or _is_positive_int(d) for d in full[1:]):
        return tuple(None if d is None else int(d) for d in full[1:])
    raise ValueError(f"Model '{model_name}' takes an input shape (batch, d1, ...): a batch "
                     f"size (None or a positive int), then positive ints or None. Received: "
                     f"input_shape={input_shape!r}.")


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0

