"""The steps of an execution plan: one layer call, or several fused by a rewrite rule.

A step reads the arrays of its input slots and returns those of its output slots; its
``forward`` and ``backward`` sit side by side. What a call keeps for its backward pass is in
its contexts (one :class:`~minidl.layers.base.CallContext` per layer it runs), which the
plan owns. The trainer never sees steps: it runs the plan.

Every step has:
    inputs, outputs: slot indices.
    layers: the layers it runs, one context each (``contexts()`` makes them).
    trainable: whether it has weights the optimizer updates.
    need_input_grads, runs_backward: set by the plan (which inputs need a gradient,
        whether the backward pass runs at all).
"""
import warnings
import weakref

import numpy as np

from minidl.layers.base import CallContext


class LayerStep:
    """One call of one layer.

    Args:
        layer: the layer.
        inputs, outputs: slot indices: the call's argument(s), then the tensors of its
            tensor keyword arguments (a recurrent layer's initial states), then an explicit
            mask if the call was given one.
        multi_input: the layer takes a list of inputs (merge layers).
        training: None, or the ``training`` argument the call was made with (it holds in
            training and in inference: ``Dropout(0.5)(x, training=True)``, or a base model
            called with ``training=False`` whose BatchNormalization keeps its statistics).
        state_count: how many of the inputs are tensor keyword arguments: the layer then
            receives ``[x, *those]`` and returns their gradients after the input's.
        mask_input: the last input is the call's ``mask`` argument.
        multi_output: the layer returns a list of outputs (``return_state``).
    """

    def __init__(self, layer, inputs, outputs, multi_input=False, training=None,
                 state_count=0, mask_input=False, multi_output=False):
        self.layer = layer
        self.layers = (layer,)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.multi_input = multi_input
        self.argument_count = len(self.inputs) - state_count - bool(mask_input)
        self.takes_list = multi_input or state_count > 0
        self.mask_input = mask_input
        self.multi_output = multi_output
        self.training = training
        self.trainable = bool(layer.trainable and layer.params)
        self.need_input_grads = [True] * len(self.inputs)
        if mask_input:
            self.need_input_grads[-1] = False
        self.runs_backward = True
        self.preactivation = False   # set by rewrites.head_with_loss

    def contexts(self, record):
        return (CallContext(self.layer, record=record),)

    def forward(self, contexts, xs, training):
        ctx = contexts[0]
        if self.training is not None:
            training = self.training
        if self.mask_input:   # (forward_with_masks set ctx.mask from it)
            xs = xs[:-1]
        y = self.layer.forward(ctx, xs if self.takes_list else xs[0], training)
        if self.layer.activity_regularizer is not None:
            ctx.activity_loss = self.layer.activity_penalty(y[0] if self.multi_output else y)
        return tuple(y) if self.multi_output else (y,)

    def forward_with_masks(self, contexts, xs, training, masks):
        """:meth:`forward` with the layer's input mask taken from ``masks`` (those of the
        input slots; an explicit mask argument wins), and the output masks (Keras'
        ``compute_mask``) returned after the outputs."""
        ctx, layer = contexts[0], self.layer
        if self.mask_input:   # a mask argument: any 0/1 array, as booleans
            mask = np.asarray(xs[-1], dtype=bool)
        elif self.multi_input:
            mask = list(masks[:self.argument_count])
            if all(m is None for m in mask):
                mask = None
        else:
            mask = masks[0]
        if mask is not None and not layer.supports_masking:
            _warn_mask_dropped(layer)
            mask = None
        ctx.mask = mask
        outs = self.forward(contexts, xs, training)
        if self.mask_input:
            xs = xs[:-1]
        out_mask = layer.compute_mask(xs[:self.argument_count] if self.multi_input else xs[0],
                                      mask)
        if self.multi_output:
            return outs, tuple(out_mask) if out_mask is not None else (None,) * len(outs)
        return outs, (out_mask,)

    def backward(self, contexts, dys):
        if self.preactivation:
            return (self.layer.backward_preactivation(contexts[0], dys[0],
                                                      self.need_input_grads[0]),)
        dy = list(dys) if self.multi_output else dys[0]
        if self.takes_list:
            needs = self.need_input_grads[:len(self.inputs) - self.mask_input]
            dxs = list(self.layer.backward(contexts[0], dy, needs))
            return dxs + [None] if self.mask_input else dxs
        dx = self.layer.backward(contexts[0], dy, self.need_input_grads[0])
        return (dx, None) if self.mask_input else (dx,)

    def __repr__(self):
        return f"<LayerStep {self.layer.name} {self.inputs} -> {self.outputs}>"


def forward_with_masks(step, contexts, xs, training, masks):
    """``step.forward`` and the masks of its outputs, from the masks of its inputs (a list
    aligned with ``step.inputs``, None where a tensor has none). A layer call computes its
    own (:meth:`LayerStep.forward_with_masks`); a cast, or a fused step whose layers all
    support masking (Dense with its activation), passes its first input's mask on."""
    if isinstance(step, LayerStep):
        return step.forward_with_masks(contexts, xs, training, masks)
    outs = step.forward(contexts, xs, training)
    keep = masks[0]
    if keep is not None and not all(layer.supports_masking for layer in step.layers):
        _warn_mask_dropped(next(layer for layer in step.layers if not layer.supports_masking))
        keep = None
    return outs, (keep,) * len(outs)


_warned_layers = weakref.WeakSet()


def _warn_mask_dropped(layer):
    """Keras' warning, once per layer: a mask reached a layer that does not support
    masking, so the layers after it will not see it."""
    if layer in _warned_layers:
        return
    _warned_layers.add(layer)
    warnings.warn(f"Layer '{layer.name}' (of type {type(layer).__name__}) was passed an input "
                  f"with a mask attached to it. However, this layer does not support masking "
                  f"and will therefore destroy the mask information. Downstream layers will "
                  f"not see the mask.", stacklevel=4)


class CastStep:
    """A tensor converted to the float type of a layer that reads it (Keras casts a
    layer's inputs to the layer's dtype); the gradient goes back in the original type, or
    not at all to integers (ids, bin indices), which have none."""

    layers = ()
    trainable = False
    training = None
    preactivation = False

    def __init__(self, source, target, source_dtype, dtype):
        self.inputs, self.outputs = [source], [target]
        self.source_dtype, self.dtype = np.dtype(source_dtype), np.dtype(dtype)
        self.need_input_grads = [True]
        self.runs_backward = True

    def contexts(self, record):
        return ()

    def forward(self, contexts, xs, training):
        return (xs[0].astype(self.dtype),)

    def backward(self, contexts, dys):
        if not self.need_input_grads[0] or self.source_dtype.kind != "f":
            return (None,)
        return (dys[0].astype(self.source_dtype),)
