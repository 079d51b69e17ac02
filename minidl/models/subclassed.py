"""Model subclassing: a ``Model`` whose layers are made in ``__init__`` and whose ``call``
runs them (Keras' third way to build a model, beside Sequential and the functional API).

Such a model has no graph, so no execution plan: it trains through ``train_step``
(``train_steps.py``), calling ``self(x)`` on a tape. Layers assigned to its public
attributes are its layers (``Layer.__setattr__``); their weights are its weights.

What the trainer needs from a model's inputs and outputs (shapes, dtypes, names) is known
only once data has gone through ``call``: the first ``fit`` / ``evaluate`` / ``predict``
(or ``build(input_shape)``, or a first call) builds the model by calling it on a batch of
zeros of the data's sample shape, and keeps symbolic stand-ins for its inputs and outputs.
Output names follow Keras: a dict output's keys, else ``output_1``, ``output_2``, ...
"""
import numpy as np

from minidl.autodiff import Tensor, no_record_scope
from minidl.layers.base import Layer, _snake_case
from minidl.layers.node import SymbolicTensor


def init_subclassed(model, name, trainable, kwargs):
    """``Model.__init__`` of a subclass that defines ``call``."""
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"Model got unexpected keyword arguments {sorted(kwargs)}; a "
                        f"subclassed model takes name, trainable and dtype (its own "
                        f"arguments go to its own __init__).")
    from minidl.models.functional import _auto_name
    Layer.__init__(model, name=name or _auto_name(_snake_case(type(model).__name__)),
                   trainable=trainable, dtype=dtype)
    model._init_model()
    model._subclassed = True
    model.inputs, model.outputs, model._nodes, model._layers = [], [], [], []
    model._inputs_struct = model._outputs_struct = None
    model._input_names, model._output_names = [], []
    model.built = False


def layers(model):
    """The layers assigned to the model's attributes, in assignment order."""
    return list(model._sublayers)


def build_for(model, sample_shapes, dtypes=None):
    """Build the model for inputs of ``sample_shapes`` (one per input) by calling it on two
    rows of zeros, and keep symbolic stand-ins for its inputs and outputs."""
    if model.inputs:
        return
    dtypes = dtypes or [None] * len(sample_shapes)
    zeros = [np.zeros((2,) + tuple(1 if d is None else int(d) for d in shape),
                      _input_dtype(model, dtype))
             for shape, dtype in zip(sample_shapes, dtypes)]
    if not model._user_call:
        # A model without call (its train_step runs its parts): inputs known, no outputs.
        model.inputs = [SymbolicTensor((None,) + tuple(shape), z.dtype.name,
                                       name=f"input_{i + 1}")
                        for i, (shape, z) in enumerate(zip(sample_shapes, zeros))]
        model._input_names = [t.name for t in model.inputs]
        model.built = True
        model._changed()
        return
    with model._lock.exclusive, no_record_scope():
        if model.inputs:
            return
        out = model(zeros[0] if len(zeros) == 1 else zeros, training=False)
        for layer in _layers_with_losses(model):
            layer._added_losses = None   # (a build is no step: its add_loss terms go)
        model.inputs = [SymbolicTensor((None,) + tuple(shape), z.dtype.name, name=f"input_{i + 1}")
                        for i, (shape, z) in enumerate(zip(sample_shapes, zeros))]
        model._input_names = [t.name for t in model.inputs]
        model._inputs_struct = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        set_outputs(model, out)


def set_outputs(model, out):
    """Keep symbolic stand-ins of the outputs ``out`` (what ``call`` returned): their
    shapes, dtypes and Keras' names."""
    if isinstance(out, dict):
        names, values = list(out), list(out.values())
    elif isinstance(out, (list, tuple)):
        names, values = [f"output_{i + 1}" for i in range(len(out))], list(out)
    else:
        names, values = ["output_1"], [out]
    for value in values:
        if not isinstance(value, (Tensor, np.ndarray)):
            raise TypeError(f"Model '{model.name}'.call() returned {type(value).__name__}"
                            f" inside its outputs; it must return tensors.")
    model.outputs = [SymbolicTensor((None,) + v.shape[1:], v.dtype.name, name=n)
                     for n, v in zip(names, values)]
    model._output_names = names
    model._outputs_struct = out
    model._changed()


def _input_dtype(model, data_dtype):
    if data_dtype is not None and np.dtype(data_dtype).kind in "iu":
        return np.dtype(data_dtype)   # ids (an Embedding first) stay integers
    return np.dtype(model.dtype)


def _layers_with_losses(model):
    stack, seen = [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack += layer._sublayers


def summary_rows(model):
    """Rows of ``summary()``: one per layer, output shapes where a layer knows them."""
    rows = []
    for layer in model.layers:
        shape = "?"
        if layer.built and not layer._user_call and not isinstance(layer.built_input_shape,
                                                                    list):
            try:
                shape = str((None,) + tuple(layer.compute_output_shape(
                    layer.built_input_shape)))
            except (TypeError, ValueError):
                shape = "?"
        rows.append([f"{layer.name} ({type(layer).__name__})", shape,
                     f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"])
    return rows
