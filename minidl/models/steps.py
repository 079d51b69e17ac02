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
import numpy as np

from minidl.layers.base import CallContext


class LayerStep:
    """One call of one layer.

    Args:
        layer: the layer.
        inputs, outputs: slot indices.
        multi_input: the layer takes a list of inputs (merge layers).
        training: None, or the ``training`` argument the call was made with (it holds in
            training and in inference: ``Dropout(0.5)(x, training=True)``, or a base model
            called with ``training=False`` whose BatchNormalization keeps its statistics).
    """

    def __init__(self, layer, inputs, outputs, multi_input=False, training=None):
        self.layer = layer
        self.layers = (layer,)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.multi_input = multi_input
        self.training = training
        self.trainable = bool(layer.trainable and layer.params)
        self.need_input_grads = [True] * len(self.inputs)
        self.runs_backward = True
        self.preactivation = False   # set by rewrites.head_with_loss

    def contexts(self, record):
        return (CallContext(self.layer, record=record),)

    def forward(self, contexts, xs, training):
        ctx = contexts[0]
        if self.training is not None:
            training = self.training
        y = self.layer.forward(ctx, xs if self.multi_input else xs[0], training)
        if self.layer.activity_regularizer is not None:
            ctx.activity_loss = self.layer.activity_penalty(y)
        return (y,)

    def backward(self, contexts, dys):
        if self.preactivation:
            return (self.layer.backward_preactivation(contexts[0], dys[0],
                                                      self.need_input_grads[0]),)
        if self.multi_input:
            return self.layer.backward(contexts[0], dys[0], self.need_input_grads)
        return (self.layer.backward(contexts[0], dys[0], self.need_input_grads[0]),)

    def __repr__(self):
        return f"<LayerStep {self.layer.name} {self.inputs} -> {self.outputs}>"


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
