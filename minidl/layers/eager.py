"""Layers called on tensors: built-in layers as recorded ops, and layers written by users.

Two kinds of layer meet here.

- **Built-in layers** (Dense, Conv2D, ...) have compiled ``forward`` / ``backward`` passes.
  Called on tensors while a tape records (a custom ``train_step``, a ``GradientTape`` loop, a
  user layer holding a Dense), one call becomes one recorded op whose backward runs the
  layer's own backward pass (``kernel_call``): user code keeps the built-in speed.
- **User layers** subclass ``Layer`` and write ``call()`` with ``minidl.ops`` (Keras'
  way). Called on tensors, ``call`` runs as written (``user_call``). Inside a model's
  execution plan, a user layer is a step like any other: its ``forward`` runs ``call`` on a
  tape of its own and its ``backward`` runs the backward pass of that tape (``tape_forward``,
  ``tape_backward``), so the rest of the model stays compiled.

Keras' conventions for user layers hold: ``build`` and ``compute_output_shape`` receive
whole shapes, batch dimension first (``(None, 784)``), while built-in layers work on sample
shapes; ``training`` passes down from an outer call to the layers it calls; layers assigned
to public attributes are sublayers whose weights belong to the layer.
"""
import inspect
import threading

import numpy as np

from minidl.autodiff.gradient import layer_gradients
from minidl.autodiff.tensor import Tensor, _state, no_record_scope, record, recording, wrap

class _Context(threading.local):
    """Per thread: ``training``, the ``training`` of the enclosing layer call (a class
    default: a missing attribute's lookup raises and catches an AttributeError, a
    microsecond of every one-sample prediction)."""
    training = False


_context = _Context()


def current_training():
    """The ``training`` value of the innermost enclosing layer call in this thread (False
    outside any)."""
    return getattr(_context, "training", False)


class training_scope:
    """Within the block, layer calls without ``training=`` use ``value``."""

    __slots__ = ("value", "saved")

    def __init__(self, value):
        self.value = bool(value)

    def __enter__(self):
        self.saved = getattr(_context, "training", False)
        _context.training = self.value

    def __exit__(self, *exc):
        _context.training = self.saved
        return False


# ---- classes ----

def prepare_layer_class(cls, base):
    """Set the class flags of a new Layer subclass ``cls`` (``base`` is Layer).

    ``_user_call``: the class (or a parent below Layer) defines ``call``; its ``forward`` /
    ``backward`` then run ``call`` on a tape, unless the class defines them itself.
    ``_kernel_forward`` / ``_kernel_backward``: the compiled passes of the nearest built-in
    parent, which ``Layer.call`` (``super().call(x)`` in a Dense subclass) still runs.
    ``_user_build`` / ``_user_output_shape``: written by users (not in minidl), so they take
    whole shapes.
    """
    cls._user_call = cls.call is not base.call
    for name, kernel in (("forward", "_kernel_forward"), ("backward", "_kernel_backward")):
        for klass in cls.__mro__:
            method = klass.__dict__.get(name)
            if method is not None and method not in (tape_forward, tape_backward):
                setattr(cls, kernel, method)
                break
    if cls._user_call and "forward" not in cls.__dict__:
        cls.forward = tape_forward
        cls.backward = tape_backward
        cls.finds_nonfinite_input = False
    cls._user_class = not cls.__module__.startswith("minidl.")
    cls._user_build = not _defined_in_minidl(cls, "build")
    cls._user_output_shape = not _defined_in_minidl(cls, "compute_output_shape")
    cls._call_parameters = None   # filled on first call (call_parameters)


def defined_in_minidl(cls, name):
    """Whether ``cls``'s method ``name`` is minidl's (inherited), not a user's."""
    return _defined_in_minidl(cls, name)


def _defined_in_minidl(cls, name):
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__module__.startswith("minidl.")
    return True


def call_parameters(layer):
    """(accepts ``training``, accepts ``mask``) for the layer's ``call``, cached per class."""
    cls = type(layer)
    found = cls.__dict__.get("_call_parameters")
    if found is None:
        try:
            params = inspect.signature(cls.call).parameters
        except (TypeError, ValueError):
            params = {}
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        found = ("training" in params or var_kw, "mask" in params or var_kw)
        cls._call_parameters = found
    return found


def track_sublayers(owner, value):
    """Record ``value`` (a layer, or a list / tuple / dict of layers) as sublayers of
    ``owner``, once each, in assignment order."""
    from minidl.layers.base import Layer
    from minidl.metrics import Metric
    items = value.values() if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple)) else (value,)
    subs = owner._sublayers
    for item in items:
        if isinstance(item, Layer) and item is not owner and \
                all(item is not known for known in subs):
            subs.append(item)
        elif isinstance(item, Metric):
            # A metric held by a model (a custom train_step's loss tracker) is one of its
            # `metrics`, which fit resets at each epoch.
            tracked = owner.__dict__.setdefault("_tracked_metrics", [])
            if all(item is not known for known in tracked):
                tracked.append(item)


# ---- building user layers ----

def ensure_user_built(layer, sample_shape, multi):
    """Build a user layer on its first call: ``build`` gets whole shapes (batch first),
    in the structure of its inputs (a list, or a dict for a call on a dict)."""
    if layer.built:
        return
    if isinstance(sample_shape, dict):
        full = {key: (None,) + tuple(s) for key, s in sample_shape.items()}
        if layer._user_build:
            layer.build(full)
        layer.built = True
        layer.built_input_shape = {key: tuple(s) for key, s in sample_shape.items()}
        return
    full = [(None,) + tuple(s) for s in sample_shape] if multi else (None,) + tuple(sample_shape)
    if layer._user_build:
        layer.build(full)
    elif not getattr(layer, "_subclassed", False):
        # No build of its own: a built-in parent's (sample shapes), or Layer's. (A
        # subclassed model's build calls the model: its layers build in that call.)
        layer.build(list(map(tuple, sample_shape)) if multi else tuple(sample_shape))
    layer.built = True
    layer.built_input_shape = tuple(sample_shape) if not multi else \
        [tuple(s) for s in sample_shape]


def output_shape(layer, sample_shape, multi):
    """A user layer's output sample shape: its ``compute_output_shape`` (whole shapes) when
    written, else the shape of ``call`` on a batch of two zeros (None dims taken as 1)."""
    if layer._user_output_shape:
        full = [(None,) + tuple(s) for s in sample_shape] if multi else \
            (None,) + tuple(sample_shape)
        out = layer.compute_output_shape(full)
        if isinstance(out, list) and out and isinstance(out[0], (list, tuple)):
            raise ValueError(f"Layer '{layer.name}' returns several outputs; a layer in a "
                             f"functional model must return one tensor.")
        return tuple(out)[1:]
    shapes = sample_shape if multi else [sample_shape]
    zeros = [np.zeros((2,) + tuple(1 if d is None else d for d in s), layer.dtype)
             for s in shapes]
    saved = layer._added_losses
    with no_record_scope():
        out = user_call(layer, (zeros if multi else zeros[0],), {}, False)
    layer._added_losses = saved
    if not isinstance(out, Tensor):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) returns "
                         f"{type(out).__name__}; a layer in a functional model must return "
                         f"one tensor.")
    return tuple(None if d is None else n for d, n in
                 zip(_unknown_like(shapes[0], out.ndim - 1), out.shape[1:]))


def _unknown_like(shape, rank):
    # An output axis that mirrors an unknown input axis stays unknown when ranks agree.
    if len(shape) == rank:
        return [None if d is None else 0 for d in shape]
    return [0] * rank


# ---- calls ----

def user_call(layer, args, kwargs, training):
    """``layer.call(*args, **kwargs)`` as Keras runs it: inputs as tensors, the layer built
    on first use, ``training`` passed when ``call`` takes it (and to the layers it calls),
    the ``add_loss`` terms of this call collected; the result checked."""
    inputs = args[0]
    if isinstance(inputs, Tensor):   # the usual call, from a plan step or a user's layer
        multi = False
        given = inputs
        if not layer.built:
            ensure_user_built(layer, inputs.shape[1:], False)
    elif isinstance(inputs, dict):   # (Keras passes a dict through as it is)
        given = {key: _as_tensor(x) for key, x in inputs.items()}
        if not layer.built:
            ensure_user_built(layer, {key: t.shape[1:] for key, t in given.items()}, False)
    else:
        multi = isinstance(inputs, (list, tuple))
        tensors = [_as_tensor(x) for x in (inputs if multi else [inputs])]
        if not layer.built:
            ensure_user_built(layer, [t.shape[1:] for t in tensors] if multi
                              else tensors[0].shape[1:], multi)
        given = tensors if multi else tensors[0]
    # call_parameters' answer, cached on the class, without the call (this runs per call)
    takes_training = (type(layer).__dict__.get("_call_parameters") or call_parameters(layer))[0]
    if takes_training and "training" not in kwargs:
        kwargs = dict(kwargs, training=training)
    # The add_loss terms of this call (its sublayers' included) are collected per thread,
    # so that calls in other threads never mix theirs in (collecting_losses, inlined: this
    # runs at every call).
    context = _context
    outer = getattr(context, "losses", None)
    saved = getattr(context, "training", False)
    context.losses = collected = []
    context.training = bool(training)   # (training_scope, without the object)
    try:
        out = layer.call(given, *args[1:], **kwargs) if kwargs or len(args) > 1 else \
            layer.call(given)
    finally:
        context.losses, context.training = outer, saved
    if outer is not None and collected:
        outer.extend(collected)
    # Straight into the instance dict: Layer.__setattr__ (which tracks sublayers) is Python
    # code, and this runs at every call.
    layer.__dict__["_added_losses"] = collected or None
    context.last_losses = collected
    return out if isinstance(out, Tensor) else check_output(layer, out)


class collecting_losses:
    """Within the block, ``add_loss`` terms go to a list of this call (and, after it, to
    the enclosing call's too): per thread, so calls in other threads never mix theirs in.
    ``owner`` (a layer or model) keeps the list as its ``_added_losses``: Keras' terms of
    its last call, everything called inside it included."""

    __slots__ = ("owner", "outer", "items")

    def __init__(self, owner):
        self.owner = owner

    def __enter__(self):
        self.outer = getattr(_context, "losses", None)
        _context.losses = self.items = []
        return self.items

    def __exit__(self, *exc):
        _context.losses = self.outer
        if self.outer is not None:
            self.outer.extend(self.items)
        self.owner._added_losses = self.items or None
        _context.last_losses = self.items
        return False


def collect_loss(loss):
    """Add a loss term to the current call's collection (``Layer.add_loss``); False when
    no user call is running in this thread."""
    collected = getattr(_context, "losses", None)
    if collected is None:
        return False
    collected.append(loss)
    return True


def last_call_losses():
    """The add_loss terms of the last user call that finished in this thread."""
    return getattr(_context, "last_losses", [])


def _as_tensor(x):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (list, tuple, dict)):
        raise TypeError(f"A layer's inputs may be tensors, or a list or dict of them, not "
                        f"nested {type(x).__name__}s.")
    return wrap(np.asarray(x))


def check_output(layer, out):
    """``out`` with arrays and numbers as Tensors; TypeError for anything else."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (np.ndarray, np.generic, float, int)):
        return wrap(np.asarray(out))
    if isinstance(out, (list, tuple)):
        return type(out)(check_output(layer, item) for item in out)
    if isinstance(out, dict):
        return {key: check_output(layer, item) for key, item in out.items()}
    raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}).call() returned "
                    f"{type(out).__name__}; it must return a tensor (or a list, tuple or dict "
                    f"of tensors), e.g. computed with minidl.ops.")


def kernel_call(layer, inputs, training, call_tensors=None):
    """A built-in layer called on arrays or tensors: its compiled forward pass; while a
    tape records and something needs a gradient, one recorded op whose backward is the
    layer's compiled backward pass (weight gradients included).

    ``call_tensors``: the call's tensor keyword arguments (``mask``, a recurrent layer's
    ``initial_state``). The input's mask is ``mask`` when given, else the ``_keras_mask``
    of the input Tensor(s); the outputs carry the layer's ``compute_mask`` as theirs, as
    in Keras."""
    from minidl.layers.base import CallContext
    call_tensors = dict(call_tensors or {})
    mask = call_tensors.pop("mask", None)
    states = [t for value in call_tensors.values()
              for t in (value if isinstance(value, (list, tuple)) else [value])]
    multi = isinstance(inputs, (list, tuple))
    items = list(inputs) if multi else [inputs]
    if mask is None:
        masks = [getattr(x, "_keras_mask", None) for x in items]
        mask = (None if all(m is None for m in masks) else masks) if multi else masks[0]
    mask = _mask_arrays(mask)
    keep_integers = getattr(layer, "_reads_integer_inputs", False)
    xs = [_input_array(x, layer.dtype, keep_integers) for x in items]
    xs += [_input_array(x, layer.dtype, False) for x in states]
    for x in xs:
        if x.ndim < 1:
            raise ValueError(f"Layer '{layer.name}' takes arrays with a batch dimension; "
                             f"received a scalar.")
    layer.ensure_built([x.shape[1:] for x in xs[:len(items)]] if multi else xs[0].shape[1:])
    if mask is not None and not layer.supports_masking:
        mask = None   # (Keras drops it: the layer does not support masking)
    takes_list = multi or bool(states)
    argument = xs if takes_list else xs[0]
    arguments = xs[:len(items)] if multi else xs[0]
    items += states
    variables = layer.param_variables if layer.trainable else ()
    if recording() and (variables or any(isinstance(x, Tensor) and x.requires_grad
                                         for x in items)):
        ctx = CallContext(layer, record=True)
        ctx.mask = mask
        y = layer._kernel_forward(ctx, argument, training)
        out_mask = layer.compute_mask(arguments, mask)
        if layer.activity_regularizer is not None:
            layer._eager_activity = layer.activity_penalty(y[0] if isinstance(y, list) else y)
        count = len(items)

        def backward_for(output_index=None, outputs=1):
            def backward(g, needs):
                g = np.ascontiguousarray(g, dtype=layer.dtype)
                if output_index is not None:
                    g = [g if i == output_index else None for i in range(outputs)]
                if takes_list:
                    dxs = list(layer._kernel_backward(ctx, g, list(needs[:count])))
                else:
                    dxs = [layer._kernel_backward(ctx, g, needs[0])]
                # (Several outputs: one backward call per output, each writing ctx.grads.)
                grads = ctx.grads if output_index is None else [a.copy() for a in ctx.grads]
                return tuple(dxs) + tuple(grads)
            return backward
        parents = tuple(items) + tuple(variables)
        if isinstance(y, list):
            # Gradients are linear in the output gradients: the backward pass of each output
            # on its own, summed by the tape, is the layer's backward pass.
            outs = [record(layer.name, value, parents, backward_for(i, len(y)))
                    for i, value in enumerate(y)]
            return _with_masks(outs, out_mask)
        return _with_masks(record(layer.name, y, parents, backward_for()), out_mask)
    ctx = CallContext(layer, record=False)
    ctx.mask = mask
    out = layer._kernel_forward(ctx, argument, bool(training))
    out_mask = layer.compute_mask(arguments, mask)
    if layer.activity_regularizer is not None:
        # As in Keras, an eager call leaves its activity penalty in `losses`.
        layer._eager_activity = layer.activity_penalty(out[0] if isinstance(out, list)
                                                       else out)
    if isinstance(out, list):
        return _with_masks([wrap(np.array(o, copy=True)) for o in out], out_mask)
    return _with_masks(wrap(np.array(out, copy=True)), out_mask)


def _input_array(x, dtype, keep_integers):
    """The array of an input (a Tensor's value) in the layer's float ``dtype``; integers
    stay integers for a layer that reads them as such (Embedding, lookups)."""
    value = x.value if isinstance(x, Tensor) else x
    if keep_integers:
        value = np.asarray(value)
        if value.dtype.kind in "iub":
            return value
    return np.asarray(value, dtype=dtype)


def _mask_arrays(mask):
    """A mask argument (a Tensor, array, list of them, or None) as boolean arrays."""
    if mask is None:
        return None
    if isinstance(mask, (list, tuple)):
        return [_mask_arrays(m) for m in mask]
    return np.asarray(mask.value if isinstance(mask, Tensor) else mask, dtype=bool)


def _with_masks(out, mask):
    """``out`` (a Tensor or list of them) with ``mask`` (aligned) as ``_keras_mask``."""
    if isinstance(out, list):
        masks = mask if isinstance(mask, (list, tuple)) else [mask] + [None] * (len(out) - 1)
        for tensor, m in zip(out, masks):
            if m is not None:
                tensor._keras_mask = wrap(m)
        return out
    if mask is not None:
        out._keras_mask = wrap(mask)
    return out


# ---- user layers inside an execution plan ----

def tape_forward(layer, ctx, x, training=False):
    """A user layer's ``forward`` as a plan step: ``call`` on a tape of its own when the
    step records (training), plainly otherwise. Returns the output array."""
    multi = isinstance(x, (list, tuple))
    if not ctx.record:
        with no_record_scope():
            out = user_call(layer, (x,), {}, training)
        # The add_loss terms count in evaluation's loss too, as in Keras.
        losses = last_call_losses()
        ctx.activity_loss = float(sum(float(loss) for loss in losses)) if losses else 0.0
        return _output_array(layer, out)
    inputs = [wrap(array) for array in x] if multi else [wrap(x)]
    for t in inputs:
        t.requires_grad = True   # (what the pass leaves out when no input gradient is needed)
    state = _state
    saved = state.depth, state.tape
    recorded = []   # every tensor the call records, in order: the backward pass's tape
    state.depth, state.tape = saved[0] + 1, recorded   # (record_scope, without the object)
    try:
        out = user_call(layer, (inputs if multi else inputs[0],), {}, training)
    finally:
        state.depth, state.tape = saved
    losses = list(last_call_losses())
    ctx.tape = (inputs, out, losses, recorded)
    ctx.activity_loss = float(sum(float(loss) for loss in losses)) if losses else 0.0
    if isinstance(out, Tensor):   # (_output_array, without the call)
        return np.ascontiguousarray(out.value)
    return _output_array(layer, out)


def tape_backward(layer, ctx, dy, need_input_grad=True):
    """The backward pass of the tape ``tape_forward`` recorded: the weight gradients into
    ``ctx.grads`` (aligned with ``layer.params``), the input gradient(s) returned. The
    ``add_loss`` terms of the call add their gradients (their values joined the loss).

    The weight gradients are computed into ``ctx.grads`` where the ops can
    (``gradient.layer_gradients``), else copied there. No input gradient is computed when
    none is needed (a model's first layer): the pass leaves out what reaches no source."""
    inputs, out, losses, recorded = ctx.tape
    ctx.tape = None
    multi = isinstance(need_input_grad, (list, tuple))
    if multi:
        wanted = [t for t, need in zip(inputs, need_input_grad) if need]
    else:
        wanted = inputs if need_input_grad else []
    targets, seeds = ([out] + losses, [dy] + [None] * len(losses)) if losses else (out, dy)
    variables = layer.param_variables if layer.trainable else None
    # Every input and weight a source: nothing of the tape to leave out.
    prune = not variables or len(wanted) < len(inputs)
    if variables:
        arrays = ctx.grads
        if wanted:
            grads = layer_gradients(targets, wanted + variables, seeds,
                                    [None] * len(wanted) + arrays, recorded, prune)
            weight_grads = grads[len(wanted):]
        else:
            grads = weight_grads = layer_gradients(targets, variables, seeds, arrays,
                                                   recorded, prune)
        for target, g in zip(arrays, weight_grads):
            if g is None:
                target.fill(0)
            elif g is not target:
                np.copyto(target, g)
    else:
        grads = layer_gradients(targets, wanted, seeds, None, recorded, prune)
    if not multi:
        if not need_input_grad:
            return None
        value, g = inputs[0].value, grads[0]
        return np.zeros(value.shape, value.dtype) if g is None else \
            np.ascontiguousarray(g, dtype=value.dtype)
    input_grads = iter(grads[:len(wanted)])
    dxs = []
    for t, need in zip(inputs, need_input_grad):
        if not need:
            dxs.append(None)
            continue
        g = next(input_grads)
        dxs.append(np.zeros(t.shape, t.dtype) if g is None else
                   np.ascontiguousarray(g, dtype=t.dtype))
    return dxs


def _output_array(layer, out):
    if not isinstance(out, Tensor):
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}) returned "
                        f"{type(out).__name__} inside a model; a layer in a functional or "
                        f"Sequential model must return one tensor.")
    return np.ascontiguousarray(out.value)


# ---- configs of user classes ----

_JSON_TYPES = (str, int, float, bool, type(None))


def automatic_config(layer):
    """The constructor arguments a user's layer or model was made with, by parameter name,
    as its config (Keras 3 does the same for a class without get_config); the base
    arguments (name, dtype, trainable) are the layer's current values."""
    args, kwargs = getattr(layer, "_init_arguments", ((), {}))
    try:
        bound = inspect.signature(type(layer).__init__).bind(layer, *args, **kwargs)
    except TypeError:
        bound = None
    config = {}
    if bound is not None:
        for name, value in list(bound.arguments.items())[1:]:
            kind = bound.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                config.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    bound = None
                    break
            else:
                config[name] = value
    if bound is None or not all(_is_json(v) for v in config.values()):
        raise NotImplementedError(
            f"{type(layer).__name__} '{layer.name}' has constructor arguments that are not "
            f"plain JSON values (layers, arrays, functions ...), so minidl cannot write its "
            f"config by itself. Implement get_config() (returning the arguments of "
            f"__init__) and, if needed, from_config(); or save only the weights with "
            f"save_weights().")
    for key in ("name", "dtype", "trainable"):
        config.pop(key, None)
    return config


def _is_json(value):
    if isinstance(value, _JSON_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
