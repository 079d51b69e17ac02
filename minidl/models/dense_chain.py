"""The compiled training step of a chain of Dense layers (``minidl._core._chain``).

A model whose plan is a plain chain of Dense layers (an MLP: ``Sequential([Dense, Dense,
...])`` or the same built with the functional API, activations in the layers or in
activation layers after them) trains one batch in one compiled call: forward, loss and
backward run without returning to Python between layers. The call makes exactly the kernel
calls the layer-by-layer step makes, so the results have the same bits; what it saves is the
Python around some thirty small calls per batch, which at batch 32 costs more than the
matrix products themselves.

:func:`compile_chain` decides when a plan qualifies; anything else (other layers,
regularizers, a layer called twice, frozen layers, several inputs or outputs, a loss
without a compiled kernel) keeps the general path, as does any batch with sample weights or
targets the loss kernel cannot take as they are. The optimizer update stays one separate
call (``Optimizer.apply``, itself one compiled call over every variable), so learning-rate
schedules, clipping and loss scaling keep working unchanged.

``ENABLED`` switches the compiled step off for every model (tests compare the two paths).
"""
import numpy as np

from minidl._core._backend import gemm
from minidl._core._data import count_nonfinite
from minidl.layers.base import BufferPool
from minidl.layers.core import _DERIVATIVE_FROM_OUTPUT, Dense
from minidl.models.rewrites import FusedActivationStep
from minidl.models.steps import LayerStep

ENABLED = True

# Batch sizes with buffers kept at once: a fit sees two (full batches and the last one).
_MAX_BATCH_SIZES = 4


def compile_chain(plan, losses):
    """A :class:`CompiledDenseChain` running ``plan``'s training step, or None when the plan
    is not a chain of Dense layers the compiled step covers.

    Args:
        plan: a training plan (``Plan(model, losses)``).
        losses: the model's loss objects, one per output.
    """
    if not ENABLED or len(plan.input_slots) != 1 or len(plan.output_slots) != 1:
        return None
    loss = losses[0]
    if loss is None or plan.extra_grads:
        return None
    fused_head = plan.fused_heads[0]
    kernel = loss._step_kernel(fused_head) if hasattr(loss, "_step_kernel") else None
    if kernel is None:
        return None
    chain = _dense_steps(plan)
    if chain is None:
        return None
    layers, activations = [], []
    for i, (step, layer, activation) in enumerate(chain):
        if (not step.trainable or layer.has_regularization
                or step.need_input_grads != [i > 0] or not step.runs_backward
                or not getattr(activation, "compiled", False)):
            return None
        if (step is plan.steps[-1]) != (step.outputs[0] == plan.output_slots[0]):
            return None
        layers.append(layer)
        activations.append(activation)
    dtype = np.dtype(layers[0].dtype)
    if dtype not in (np.float32, np.float64) or any(np.dtype(l.dtype) != dtype for l in layers):
        return None
    contexts = [ctxs[0] for ctxs in plan.contexts]
    return CompiledDenseChain(layers, activations, [ctx.grads for ctx in contexts], kernel,
                              fused_head, dtype)


class CompiledDenseChain:
    """One model's compiled Dense-chain step; see :func:`compile_chain`.

    Args:
        layers: the Dense layers, first to last.
        activations: the activation each runs (its own, or the activation layer's after it).
        grads: per layer its gradient arrays in the plan ([kernel] or [kernel, bias]).
        loss_kernel: the loss's compiled kernel (``LossKernel``).
        fused_head: whether the loss returns the gradient of the last pre-activation.
        dtype: the layers' float dtype.
    """

    def __init__(self, layers, activations, grads, loss_kernel, fused_head, dtype):
        from minidl import activations as activation_module
        self.layers, self.activations, self.grads = layers, activations, grads
        self.loss_kernel, self.fused_head, self.dtype = loss_kernel, fused_head, dtype
        self._linear = activation_module.get("linear")._compiled()
        self._kernels = [a._kernel or a._compiled() for a in activations]
        self._chains = {}

    def __getstate__(self):   # a copied model binds its own arrays on first use
        return dict(self.__dict__, _chains={})

    def run(self, x, y):
        """One batch: forward, loss and backward; ``(loss value, output array)``, or None
        when the batch needs the general path (the caller then runs it, nothing written).

        Raises:
            ValueError: a label outside the valid range.
        """
        chain = self._chains.get(x.shape[0])
        if chain is None:
            chain = self._chain(x.shape[0])
        value = chain.run(x, y)
        return None if value is None else (value, chain.output)

    def _chain(self, rows):
        from minidl._core._chain import DenseChain
        if len(self._chains) >= _MAX_BATCH_SIZES:
            self._chains.clear()
        pool = BufferPool(self.dtype)   # (a chain's buffers are its own)
        arrays = []
        for i, (layer, activation, grads) in enumerate(zip(self.layers, self.activations,
                                                           self.grads)):
            units = layer.units
            z = pool.get(("z", i), rows, (units,))
            # z and y are one array where Dense's own buffers are (the derivative is then
            # computed from the output).
            in_place = activation.kernel_params()[0] in _DERIVATIVE_FROM_OUTPUT
            arrays.append({
                "w": layer._kernel_array, "b": layer._bias_array, "dw": grads[0],
                "db": grads[1] if layer.use_bias else None,
                "z": z, "y": z if in_place else pool.get(("y", i), rows, (units,)),
                "dz": None if activation.name == "linear" else pool.get(("dz", i), rows,
                                                                         (units,)),
                "dx": None if i == 0 else pool.get(("dx", i), rows, (layer.kernel.shape[0],)),
            })
        grad = pool.get("grad", rows, (self.layers[-1].units,))
        chain = DenseChain(self._kernels, arrays, self.loss_kernel, self._linear,
                           self.fused_head, grad, rows)
        self._chains[rows] = chain
        return chain



def inference_chain(plan):
    """The Dense layers and activations of ``plan`` when it is a plain chain of Dense layers
    (as :func:`compile_chain` takes for training), for :func:`run_inference_chain`; else
    None."""
    if not ENABLED or len(plan.input_slots) != 1 or len(plan.output_slots) != 1:
        return None
    chain = _dense_steps(plan)
    return None if chain is None else [(layer, activation) for _, layer, activation in chain]


def _dense_steps(plan):
    """``[(step, Dense layer, its activation)]`` when every step of ``plan`` is a Dense
    layer (an activation layer after it fused in) reading the step before, without an
    activity regularizer or a fixed ``training``; else None."""
    chain, slot = [], plan.input_slots[0]
    for step in plan.steps:
        if isinstance(step, FusedActivationStep):
            layer, activation = step.first.layer, step.activation_step.layer.activation
        elif isinstance(step, LayerStep):
            layer = step.layer
            activation = getattr(layer, "activation", None)
        else:
            return None
        if (type(layer) is not Dense or step.training is not None or step.inputs != [slot]
                or layer.activity_regularizer is not None
                or len(layer.built_input_shape) != 1):   # (2-D inputs only)
            return None
        chain.append((step, layer, activation))
        slot = step.outputs[0]
    return chain if chain and slot == plan.output_slots[0] else None


def run_inference_chain(chain, x, check_input=False):
    """The chain's output for ``x``: the kernel calls of the layers' inference passes
    (the same bits), without the plan's per-step Python. A one-sample ``model(x)`` of the
    reference MLP spends most of its time there otherwise.

    ``check_input=True``: None when the first product holds a NaN or an infinity, which it
    does whenever x does (a non-finite value makes its whole row of ``x @ kernel``
    non-finite: inf * 0 is NaN, and no finite term cancels an infinity), so that the caller
    need not scan x (Dense.forward's ``check_input`` does the same). The caller then finds
    out which it is: a non-finite input, or a product that overflowed."""
    for layer, activation in chain:
        y = np.empty((x.shape[0], layer.units), layer.dtype)
        gemm(x, layer._kernel_array, y)
        if check_input:
            if count_nonfinite(y)[0]:
                return None
            check_input = False
        activation.forward_bias(y, layer._bias_array, y)
        x = y
    return x
