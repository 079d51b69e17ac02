"""Functional models from their configs (Keras' functional layout), and ``clone_model``.

A config lists each layer with its inbound nodes: for every call, the argument as a
structure of tensor references ``[layer name, node index, tensor index]``. Rebuilding makes
every layer through the layer registry (so nothing named in a file is imported or run), then
replays the calls; a call whose input tensors do not exist yet (a layer shared at two
depths) waits for a later round. Every field is checked, and every failure is a ValueError
that names the field.
"""
from minidl.layers.base import LAYERS, Layer
from minidl.layers.core import InputLayer
from minidl.layers.node import map_structure

_LAYER_FIELDS = {"class_name", "config", "name", "inbound_nodes", "module", "registered_name",
                 "build_config"}


def functional_from_config(cls, config):
    """An instance of ``cls`` (Model or a subclass) from a functional ``config``."""
    if not isinstance(config, dict):
        raise ValueError(f"A functional model config must be a dict; received "
                         f"{config!r:.200}.")
    unknown = sorted(set(config) - {"name", "trainable", "layers", "input_layers",
                                    "output_layers"})
    if unknown:
        raise ValueError(f"A functional model config has no field(s) {unknown}.")
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"A functional model config needs a non-empty 'layers' list; "
                         f"received layers={specs!r:.200}.")
    created, pending = {}, []
    for spec in specs:
        if not isinstance(spec, dict) or not set(spec) <= _LAYER_FIELDS:
            raise ValueError(f"Each layer of a functional config must be a dict with "
                             f"class_name, config, name and inbound_nodes; received "
                             f"{spec!r:.200}.")
        name = spec.get("name")
        layer = LAYERS.get({"class_name": spec.get("class_name"),
                            "config": spec.get("config", {})}, base=Layer)
        if not isinstance(name, str) or name != layer.name:
            raise ValueError(f"Layer config name {name!r:.100} does not match its config's "
                             f"name {layer.name!r}.")
        if name in created:
            raise ValueError(f"The layer name {name!r} appears twice in the config.")
        created[name] = layer
        nodes = spec.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"Layer {name!r} inbound_nodes must be a list; received "
                             f"{nodes!r:.200}.")
        if isinstance(layer, InputLayer):
            if nodes:
                raise ValueError(f"Input layer {name!r} cannot have inbound nodes.")
            continue
        pending += [(layer, node) for node in nodes]
    # Replay the calls: each round makes every call whose inputs exist; a round that makes
    # none means a reference that can never resolve.
    while pending:
        waiting = []
        for layer, node in pending:
            args = _node_arguments(layer, node, created)
            if args is None:
                waiting.append((layer, node))
            else:
                argument, kwargs = args
                layer(argument, **kwargs)
        if len(waiting) == len(pending):
            layer, node = waiting[0]
            raise ValueError(f"The config's call of layer {layer.name!r} reads a tensor that "
                             f"no layer of the config produces: {node!r:.200}.")
        pending = waiting
    inputs = _tensors(config.get("input_layers"), created, "input_layers")
    outputs = _tensors(config.get("output_layers"), created, "output_layers")
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"A functional model's trainable must be true or false; received "
                         f"trainable={trainable!r:.100}.")
    name = config.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"A model name must be a non-empty string; received {name!r:.100}.")
    return cls(inputs, outputs, name=name, trainable=trainable)


def _node_arguments(layer, node, created):
    """``(argument, kwargs)`` of a serialized call, or None while an input tensor does not
    exist yet."""
    if not isinstance(node, dict) or set(node) - {"args", "kwargs"}:
        raise ValueError(f"A call of layer {layer.name!r} must be {{'args': [...], "
                         f"'kwargs': {{...}}}}; received {node!r:.200}.")
    args, kwargs = node.get("args"), node.get("kwargs", {})
    if not isinstance(args, list) or len(args) != 1:
        raise ValueError(f"A call of layer {layer.name!r} must have one positional argument; "
                         f"received args={args!r:.200}.")
    tensor_names = {"mask", *layer._tensor_call_arguments}
    if not isinstance(kwargs, dict) or set(kwargs) - {"training"} - tensor_names \
            or kwargs.get("training") not in (None, True, False):
        raise ValueError(f"A call of layer {layer.name!r} takes only the keywords "
                         f"{sorted({'training'} | tensor_names)} ('training': true, false or "
                         f"null); received kwargs={kwargs!r:.200}.")
    missing = []

    def resolve(leaf):
        ref = leaf.get("config", {}).get("keras_history") if isinstance(leaf, dict) else None
        if not isinstance(leaf, dict) or leaf.get("class_name") != "__keras_tensor__":
            raise ValueError(f"A call of layer {layer.name!r} must read tensors "
                             f"({{'class_name': '__keras_tensor__', ...}}); received "
                             f"{leaf!r:.200}.")
        tensor = _lookup(ref, created, f"the call of layer {layer.name!r}")
        if tensor is None:
            missing.append(ref)
        return tensor

    argument = _map_tensor_configs(resolve, args[0])
    kwargs = {name: _map_tensor_configs(resolve, value) if name in tensor_names else value
              for name, value in kwargs.items()}
    return None if missing else (argument, kwargs)


def _map_tensor_configs(function, structure):
    """``structure`` (lists / dicts of serialized tensors) with each serialized tensor
    replaced by ``function(it)``; a dict with a 'class_name' is a tensor, not a level."""
    if isinstance(structure, list):
        return [_map_tensor_configs(function, item) for item in structure]
    if isinstance(structure, dict) and "class_name" not in structure:
        return {key: _map_tensor_configs(function, item) for key, item in structure.items()}
    return function(structure)


def _lookup(ref, created, where):
    """The tensor ``[layer name, node index, tensor index]`` refers to, or None when that
    node was not made yet."""
    if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                    for i in ref[1:])):
        raise ValueError(f"A tensor reference in {where} must be [layer name, node index, "
                         f"tensor index]; received {ref!r:.200}.")
    layer = created.get(ref[0])
    if layer is None:
        raise ValueError(f"{where} refers to layer {ref[0]!r:.100}, which the config does "
                         f"not define.")
    if ref[1] >= len(layer._inbound_nodes):
        return None
    outputs = layer._inbound_nodes[ref[1]].output_tensors
    if ref[2] >= len(outputs):
        raise ValueError(f"{where} refers to output {ref[2]} of layer {ref[0]!r}, which has "
                         f"{len(outputs)}.")
    return outputs[ref[2]]


def _tensors(structure, created, field):
    """The model inputs or outputs of a config: a reference, or a list / dict of them."""
    if _is_ref(structure):
        return _resolved(structure, created, field)
    if isinstance(structure, list) and structure:
        return [_tensors(item, created, field) for item in structure]
    if isinstance(structure, dict) and structure:
        return {key: _tensors(item, created, field) for key, item in structure.items()}
    raise ValueError(f"The config's {field} must be a tensor reference [layer name, node "
                     f"index, tensor index] or a list / dict of them; received "
                     f"{structure!r:.200}.")


def _is_ref(value):
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


def _resolved(ref, created, field):
    tensor = _lookup(ref, created, field)
    if tensor is None:
        raise ValueError(f"The config's {field} refers to call {ref[1]} of layer "
                         f"{ref[0]!r}, which the config never makes.")
    return tensor


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model of the same architecture, with new layers and fresh weights (as Keras'
    ``clone_model``).

    Args:
        model: a Sequential or functional model.
        input_tensors: must be None (cloning onto other tensors is not supported).
        clone_function: optional function from a layer to its clone (default: a new layer
            from the layer's config).

    Returns:
        The clone; call ``set_weights(model.get_weights())`` to copy the weights too.
    """
    from minidl.models.functional import Model
    from minidl.models.sequential import Sequential
    from minidl.utils.registry import serialize
    if not isinstance(model, Model):
        raise TypeError(f"clone_model expects a model; received {type(model).__name__}.")
    if input_tensors is not None:
        raise ValueError("clone_model does not support input_tensors; received "
                         f"{input_tensors!r:.100}.")
    if clone_function is None:
        return LAYERS.get(serialize(model), base=Layer)
    if isinstance(model, Sequential):
        clones = [clone_function(layer) for layer in model.layers]
        clone = Sequential(name=model.name, trainable=model.trainable)
        if model.built:
            clone.add(InputLayer(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype))
        for layer in clones:
            clone.add(layer)
        return clone
    mapping = {}
    for layer in model.layers:
        mapping[id(layer)] = layer if isinstance(layer, InputLayer) else clone_function(layer)
    tensors = {}
    for tensor in model.inputs:
        layer = tensor._keras_history.operation
        tensors[id(tensor)] = InputLayer(shape=tensor.shape[1:], dtype=tensor.dtype,
                                         name=layer.name).output \
            if isinstance(layer, InputLayer) else tensor
    for node in model._nodes_in_order():
        argument = map_structure(lambda t: tensors[id(t)], node.arguments)
        call_tensors = {name: map_structure(lambda t: tensors[id(t)], value)
                        for name, value in node.call_tensors.items()}
        out = mapping[id(node.operation)](argument, **node.kwargs, **call_tensors)
        for old, new in zip(node.output_tensors, out if isinstance(out, list) else [out]):
            tensors[id(old)] = new
    return Model(map_structure(lambda t: tensors[id(t)], model._inputs_struct),
                 map_structure(lambda t: tensors[id(t)], model._outputs_struct),
                 name=model.name, trainable=model.trainable)
