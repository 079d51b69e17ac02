"""``model.summary()``: the Keras-style table of a model's layers.

A Sequential model gets one row per layer; a functional model one row per layer call
(Input layers included) and Keras' "Connected to" column, naming each input tensor as
``layer[node][tensor]``. The totals split the weights into trainable and non-trainable,
with their memory.
"""


def print_summary(model, print_fn):
    subclassed = getattr(model, "_subclassed", False)
    functional = type(model).__name__ != "Sequential" and not subclassed
    header = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional
                                                             else [])
    rows = [header]
    if subclassed:
        from minidl.models.subclassed import summary_rows
        rows += summary_rows(model)
    elif functional:
        if model.built:
            rows += _functional_rows(model)
    else:
        rows += _sequential_rows(model)
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(header))]
    widths = [max(w, m) for w, m in zip(widths, (28, 24, 12, 20))]
    line = "─" * sum(widths)
    print_fn(f'Model: "{model.name}"')
    print_fn(line)
    for i, row in enumerate(rows):
        print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        print_fn(line if i == 0 or i == len(rows) - 1 else "")
    weights = model.weights if model.built else []
    trainable = model.trainable_weights if model.built else []
    frozen = model.non_trainable_weights if model.built else []   # (Variables)
    for label, arrays in (("Total", weights), ("Trainable", trainable),
                          ("Non-trainable", frozen)):
        count = sum(w.size for w in arrays)
        print_fn(f" {label} params: {count:,} ({_readable_size(sum(w.nbytes for w in arrays))})")


def _params(layer):
    return f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"


def _sequential_rows(model):
    rows = []
    shape = model.inputs[0].shape[1:] if model.inputs else None
    for layer in model.layers:
        out = layer.output_shape_for(shape) if shape is not None else None
        shape = out
        out_text = "?" if out is None else str((None,) + tuple(out))
        rows.append([f"{layer.name} ({type(layer).__name__})", out_text, _params(layer)])
    return rows


def _functional_rows(model):
    index, counts = {}, {}
    for node in model._nodes_in_order():
        key = id(node.operation)
        index[id(node)] = counts.get(key, 0)
        counts[key] = index[id(node)] + 1
    rows = []
    for tensor in model.inputs:
        layer = tensor._keras_history.operation
        rows.append([f"{layer.name} ({type(layer).__name__})", str(tensor.shape), "0", "-"])
    for node in model._nodes_in_order():
        layer = node.operation
        shapes = [str(t.shape) for t in node.output_tensors]
        links = []
        for tensor in node.input_tensors:
            producer = tensor._keras_history
            source = producer.operation._inbound_nodes[producer.node_index]
            links.append(f"{producer.operation.name}[{index.get(id(source), 0)}]"
                         f"[{producer.tensor_index}]")
        rows.append([f"{layer.name} ({type(layer).__name__})", ", ".join(shapes),
                     _params(layer) if index[id(node)] == 0 else "0 (shared)",
                     ", ".join(links) or "-"])
    return rows


def _readable_size(nbytes):
    """Memory as Keras' summary shows it: '215.04 KB'."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.2f} {unit}"
        size /= 1024
