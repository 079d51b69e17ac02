"""SimpleRNN, LSTM, GRU and Bidirectional as ONNX's RNN, LSTM and GRU operators.

ONNX's recurrent operators read time-major sequences ``(steps, batch, features)``; their
output sequence stays time-major here (``perm`` (1, 0, 2) of the Keras
``(batch, steps, units)``), so that stacked recurrent layers pass it on without a Transpose.

Weights: Keras holds ``kernel`` (features, k * units) and ``recurrent_kernel``
(units, k * units) with the gates in its order along the columns; ONNX takes ``W``
(1, k * units, features) and ``R`` (1, k * units, units), gates along the rows in its order:

    LSTM: Keras i, f, c, o  ->  ONNX i, o, f, c
    GRU:  Keras z, r, h     ->  ONNX z, r, h; ``reset_after=True`` is ONNX's
          ``linear_before_reset=1``, with Keras' bias rows (input, recurrent) as Wb and Rb
    SimpleRNN: one gate.

A reversed operator (``direction='reverse'``) runs time from the end and writes step t's
output at position t; Keras' ``go_backwards`` returns the outputs in the order it computed
them, so the sequence is reversed after it (and Bidirectional reverses its backward layer's
sequence back to time order: no reversal at all there).
"""
import numpy as np

from minidl import layers as L
from minidl.onnx.activations import onnx_recurrent_activation
from minidl.onnx.converters import converts, refuse
from minidl.onnx.graph import INT64_MIN, Value

TIME_MAJOR = (1, 0, 2)

# Keras' gate blocks in ONNX's order.
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (0, 1, 2), "simple_rnn": (0,)}
_OP = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}


def _gates_to_rows(matrix, cell):
    """(inputs, k * units) Keras columns -> (1, k * units, inputs) ONNX rows."""
    order = _GATE_ORDER[cell]
    blocks = np.split(np.asarray(matrix), len(order), axis=-1)
    return np.concatenate([blocks[i] for i in order], axis=-1).T[None]


def _bias(layer, cell):
    """ONNX's B, (1, 2 * k * units): the input bias then the recurrent one."""
    order = _GATE_ORDER[cell]
    units = layer.units * len(order)
    bias = np.asarray(layer.bias.value)
    if bias.ndim == 2:   # GRU reset_after: rows (input, recurrent)
        rows = [bias[0], bias[1]]
    else:
        rows = [bias, np.zeros(units, bias.dtype)]
    return np.concatenate([np.concatenate([np.split(r, len(order))[i] for i in order])
                           for r in rows])[None]


def _check(layer, inputs):
    if layer.stateful:
        refuse(layer, "stateful=True carries states between batches, which an exported "
                      "graph cannot; export a copy built with stateful=False.")
    if len(inputs) > 1:
        refuse(layer, "it is called with initial_state; export a model that starts from "
                      "zero states.")


def _run(b, layer, sequence, reverse):
    """One recurrent operator over the time-major ``sequence`` name. Returns the names of
    its (steps, batch, units) output sequence and of its final states, (batch, units)."""
    cell = layer._cell
    hint = layer.name
    owner = f"Layer '{layer.name}' ({type(layer).__name__})"
    key = id(layer)
    dtype = layer.dtype
    w = b.constant(_gates_to_rows(layer.kernel.value, cell).astype(dtype),
                   f"{hint}/W", key=(key, "W"))
    r = b.constant(_gates_to_rows(layer.recurrent_kernel.value, cell).astype(dtype),
                   f"{hint}/R", key=(key, "R"))
    args = [sequence, w, r]
    if layer.use_bias:
        args.append(b.constant(_bias(layer, cell).astype(dtype), f"{hint}/B", key=(key, "B")))
    if cell == "simple_rnn":
        functions = [layer.activation]
    elif cell == "lstm":
        functions = [layer.recurrent_activation, layer.activation, layer.activation]
    else:
        functions = [layer.recurrent_activation, layer.activation]
    names, alphas, betas = [], [], []
    for function in functions:
        name, alpha, beta = onnx_recurrent_activation(function, owner)
        names.append(name)
        # (onnxruntime reads one alpha, and one beta, per function that takes it, in order)
        if alpha is not None:
            alphas.append(float(alpha))
        if beta is not None:
            betas.append(float(beta))
    attributes = dict(hidden_size=layer.units, direction="reverse" if reverse else "forward",
                      activations=names)
    if alphas:
        attributes["activation_alpha"] = alphas
    if betas:
        attributes["activation_beta"] = betas
    if cell == "gru":
        attributes["linear_before_reset"] = int(layer.reset_after)
    count = 3 if cell == "lstm" else 2
    outs = b.op(_OP[cell], args, hint, outputs=count, **attributes)
    sequence_out = b.op("Squeeze", [outs[0], b.ints([1], "axes")], hint)
    axis0 = b.ints([0], "axes")
    states = [b.op("Squeeze", [state, axis0], hint) for state in outs[1:]]
    return sequence_out, states


def _reversed_in_time(b, name, hint):
    return b.op("Slice", [name, b.ints([-1], "starts"), b.ints([INT64_MIN], "ends"),
                          b.ints([0], "axes"), b.ints([-1], "steps")], hint)


def _sequence_value(b, layer, sequence, tensor, flip):
    """The Keras output sequence of ``layer`` (reversed once more when ``flip``)."""
    if layer.go_backwards != flip:
        sequence = _reversed_in_time(b, sequence, layer.name)
    return Value(sequence, tensor.shape, tensor.dtype, TIME_MAJOR)


@converts(L.LSTM, L.GRU, L.SimpleRNN)
def _recurrent(b, layer, inputs, outputs):
    _check(layer, inputs)
    x = b.with_perm(inputs[0], TIME_MAJOR, layer.name)
    sequence, states = _run(b, layer, x.name, layer.go_backwards)
    first = outputs[0]
    if layer.return_sequences:
        results = [_sequence_value(b, layer, sequence, first, flip=False)]
    else:
        results = [Value(states[0], first.shape, first.dtype)]
    if layer.return_state:
        results += [Value(s, t.shape, t.dtype) for s, t in zip(states, outputs[1:])]
    return results


@converts(L.Bidirectional)
def _bidirectional(b, layer, inputs, outputs):
    forward, backward = layer.forward_layer, layer.backward_layer
    _check(forward, inputs)
    x = b.with_perm(inputs[0], TIME_MAJOR, layer.name)
    f_sequence, f_states = _run(b, forward, x.name, forward.go_backwards)
    b_sequence, b_states = _run(b, backward, x.name, backward.go_backwards)
    first = outputs[0]
    if layer.return_sequences:
        # (a placeholder shape until the merge: only the names and layouts matter)
        ys = [_sequence_value(b, forward, f_sequence, first, flip=False),
              _sequence_value(b, backward, b_sequence, first, flip=True)]
    else:
        ys = [Value(f_states[0], first.shape, first.dtype),
              Value(b_states[0], first.shape, first.dtype)]
    mode = layer.merge_mode
    if mode is None:
        merged = [Value(y.name, t.shape, t.dtype, y.perm) for y, t in zip(ys, outputs[:2])]
        rest = outputs[2:]
    else:
        names = [y.name for y in ys]
        hint = layer.name
        if mode == "concat":
            name = b.op("Concat", names, hint, axis=-1)
        elif mode == "sum":
            name = b.op("Add", names, hint)
        elif mode == "mul":
            name = b.op("Mul", names, hint)
        else:
            name = b.op("Div", [b.op("Add", names, hint), b.scalar(2.0, layer.dtype)], hint)
        merged = [Value(name, first.shape, first.dtype, ys[0].perm)]
        rest = outputs[1:]
    if layer.return_state:
        merged += [Value(s, t.shape, t.dtype) for s, t in zip(f_states + b_states, rest)]
    return merged
