"""A built minidl model as an ONNX ``ModelProto``: its graph walked node by node, each layer
call converted (``converters.CONVERTERS``), nested models inlined.

The graph's inputs are the model's ``Input`` layers, named after them, with a symbolic first
dimension ``batch`` (and a symbolic size wherever the Keras shape has None); its outputs are
named after the layers computing them and hold the Keras layout.
"""
import numpy as np

from minidl.onnx import converters
from minidl.onnx import recurrent  # noqa: F401  (registers the recurrent conversions)
from minidl.onnx.graph import GraphBuilder, Value

_ELEMENT_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "int32": "INT32", "int64": "INT64"}


def model_to_proto(onnx, model, opset):
    """The ONNX model of ``model`` (built, functional or Sequential), checked by
    ``onnx.checker`` with ``full_check=True``.

    Raises:
        ValueError: a layer without a conversion, or a setting a graph cannot hold; the
            message names the layer and its class.
    """
    b = GraphBuilder(onnx, opset)
    graph_inputs = []
    values = []
    for tensor in model.inputs:
        layer = tensor._keras_history.operation
        element = _element_type(onnx, tensor.dtype, f"Input '{layer.name}'")
        name = b.name(layer.name)
        dims = ["batch"] + [f"{name}_dim{i}" if d is None else d
                            for i, d in enumerate(tensor.shape[1:], 1)]
        graph_inputs.append(onnx.helper.make_tensor_value_info(name, element, dims))
        values.append(Value(name, tensor.shape, np.dtype(tensor.dtype)))
    results = _convert_graph(b, model, values)
    graph_outputs = []
    used, renamed = set(), {}
    for i, (tensor, result) in enumerate(zip(model.outputs, results)):
        result = b.logical(result, "output")
        result = Value(renamed.get(result.name, result.name), result.shape, result.dtype)
        producer = tensor._keras_history.operation.name
        name = b.name(producer if len(model.outputs) == 1 or producer not in used
                      else f"{producer}_{i}")
        used.add(producer)
        if result.name not in renamed.values() and _rename(b, result.name, name, values):
            renamed[result.name] = name
        else:
            b.nodes.append(onnx.helper.make_node("Identity", [result.name], [name],
                                                 name=b.name(f"{name}/Identity_node")))
        dims = ["batch"] + [None if d is None else d for d in tensor.shape[1:]]
        element = _element_type(onnx, tensor.dtype, f"Output '{producer}'")
        graph_outputs.append(onnx.helper.make_tensor_value_info(name, element, dims))
    graph = onnx.helper.make_graph(b.nodes, model.name, graph_inputs, graph_outputs,
                                   initializer=b.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="minidl",
                                   producer_version=_minidl_version())
    # The oldest IR version that holds this opset: the widest choice of runtimes.
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _convert_graph(b, model, input_values):
    """The Values of ``model``'s outputs, given those of its inputs."""
    from minidl.models.functional import Model
    if getattr(model, "_subclassed", False):
        raise ValueError(f"Model '{model.name}' ({type(model).__name__}) is a subclassed "
                         f"model: its call() is Python code, not a graph of layers, so it "
                         f"cannot be exported to ONNX. Build it with the functional API or "
                         f"Sequential.")
    known = {id(t): v for t, v in zip(model.inputs, input_values)}
    for node in model._nodes_in_order():
        layer = node.operation
        extra = sorted(set(node.call_tensors) - {"initial_state"})
        if extra:
            converters.refuse(layer, f"it is called with {', '.join(extra)}, which the "
                                     f"exported graph cannot carry.")
        if isinstance(layer, Model):
            arguments = node.arguments
            if isinstance(arguments, dict) and isinstance(layer._inputs_struct, dict):
                tensors = [arguments[key] for key in layer._inputs_struct]
            else:
                tensors = node.input_tensors
            outs = _convert_graph(b, layer, [known[id(t)] for t in tensors])
        else:
            convert = converters.CONVERTERS.get(type(layer))
            if convert is None:
                raise ValueError(
                    f"Layer '{layer.name}' ({type(layer).__name__}) has no ONNX conversion. "
                    f"minidl exports these layers: "
                    f"{', '.join(sorted({c.__name__ for c in converters.CONVERTERS}))}.")
            inputs = [_cast_for(b, layer, known[id(t)]) for t in node.input_tensors]
            outs = convert(b, layer, inputs, node.output_tensors)
        for tensor, value in zip(node.output_tensors, outs):
            known[id(tensor)] = value
    return [known[id(t)] for t in model.outputs]


def _cast_for(b, layer, value):
    """``value`` in the type ``layer`` computes in, as minidl's plan casts it
    (``Plan._cast``): a float of the other width, or integers reaching a built-in layer
    with weights; other integers pass as they are."""
    from minidl.models.plan import _promotes_integers
    wanted = np.dtype(layer.dtype)
    if value.dtype == wanted or wanted.kind != "f":
        return value
    if value.dtype.kind != "f" and not _promotes_integers(layer, value.dtype.name):
        return value
    to = getattr(b.onnx.TensorProto, _ELEMENT_TYPES[wanted.name])
    name = b.op("Cast", [value.name], layer.name, to=to)
    return Value(name, value.shape, wanted, value.perm, value.order)


def _rename(b, old, new, graph_inputs):
    """Make the node computing ``old`` write ``new`` instead (and its readers read it);
    False where ``old`` is a graph input or an initializer."""
    if any(v.name == old for v in graph_inputs) or any(t.name == old for t in b.initializers):
        return False
    producer = next((n for n in b.nodes if old in n.output), None)
    if producer is None:
        return False
    for node in b.nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for i, name in enumerate(producer.output):
        if name == old:
            producer.output[i] = new
    return True


def _element_type(onnx, dtype, what):
    element = _ELEMENT_TYPES.get(str(dtype))
    if element is None:
        raise ValueError(f"{what} has dtype {dtype!r}; ONNX export supports "
                         f"{', '.join(_ELEMENT_TYPES)} tensors.")
    return getattr(onnx.TensorProto, element)


def _minidl_version():
    import minidl
    return str(getattr(minidl, "__version__", ""))
