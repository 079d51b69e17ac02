"""The execution plan: a model's graph as an ordered list of steps, run forward and backward.

Building a plan (``Plan(model)``) walks the model's graph of layer calls in topological
order, inlining the graphs of nested models, and gives every tensor a *slot*: an index into
the list of arrays one pass computes. Each step reads its input slots and writes its output
slots; its forward and backward passes sit side by side (``steps.py``). Then the rewrite
rules (``rewrites.py``, one table) replace patterns of steps with fused steps, and mark
what the backward pass can skip.

What one pass keeps between its forward and backward (the arrays a layer saves, reusable
buffers) lives in per-step call contexts, never on layers: training reuses the plan's own
contexts from batch to batch (under the model's exclusive lock), inference makes fresh ones
per call, so any number of inference calls run beside each other and beside training.

Gradients: every trainable layer gets gradient arrays in one flat buffer per dtype owned by
the plan (the optimizer's ``grads``). A layer called more than once (shared weights) writes
its first backward call into them and each further call into scratch arrays added after,
in a fixed order. A tensor read by several steps gets the sum of their input gradients, in
an accumulation buffer of the plan, also in a fixed order: results never depend on timing.

Masks (Keras' ``_keras_mask``): in a plan with a layer that makes masks
(``Embedding(mask_zero=True)``, ``Masking``) or a call given one, masks flow beside the
values, one per slot: each step receives its input's mask in ``ctx.mask`` and gives its
outputs ``layer.compute_mask(...)`` (``steps.forward_with_masks``); the outputs' masks
weigh the losses and metrics. Masks are computed at run time, not recorded in the graph, so
configs stay Keras' and a model without mask layers runs exactly as before.
"""
import numpy as np

from minidl._core._backend import gemm
from minidl.layers.base import BufferPool, CallContext
from minidl.layers.core import InputLayer
from minidl.models import rewrites
from minidl.layers.node import flatten
from minidl.models.steps import CastStep, LayerStep, forward_with_masks


class Plan:
    """The steps of ``model``'s graph, with the contexts and gradients of training.

    Args:
        model: a built model (functional or Sequential).
        losses: for training, one loss object per output (None for an output no loss
            reads); the loss fusions depend on them.

    Attributes:
        steps: the steps in execution order (after the rewrite rules).
        fused_heads: per output, whether its loss returns the gradient of the
            pre-activation (``rewrites.head_with_loss``).
        input_slots, output_slots: the slots of the model's inputs and outputs.
        layers: the model's unique layers with weights, in the order of ``model.layers``.
        params, grads: trainable weights and their gradient arrays, aligned (what the
            optimizer updates).
    """

    def __init__(self, model, losses=None):
        self.model = model
        self.losses = None if losses is None else list(losses)
        # (scope, id(symbolic tensor)) -> slot. A nested model's tensors are keyed by the
        # call that inlines it (its scope), so a model called twice gets two sets of slots.
        self._slots = {}
        self.steps = []
        self.input_slots = [self._slot(t, ()) for t in model.inputs]
        self._add_graph(model, (), self.input_slots, training=None)
        self.output_slots = [self._slot(t, ()) for t in model.outputs]
        self.slot_count = len(self._slots)
        self.fused_heads = [False] * len(self.output_slots)
        rewrites.apply(self)
        self._finish()

    # ---- building ----

    def _slot(self, tensor, scope):
        key = (scope, id(tensor))
        if key not in self._slots:
            self._slots[key] = len(self._slots)
        return self._slots[key]

    def _add_graph(self, model, scope, input_slots, training):
        """Append the steps of ``model``'s nodes, its inputs read from ``input_slots``; a
        call's ``training`` argument holds for everything it contains."""
        for tensor, slot in zip(model.inputs, input_slots):
            self._slots[(scope, id(tensor))] = slot
        for node in model._nodes_in_order():
            layer = node.operation
            if isinstance(layer, InputLayer):
                continue
            node_training = node.kwargs.get("training", training)
            if node_training is None:
                node_training = training
            if hasattr(layer, "_nodes_in_order"):   # a nested model: its steps, inlined
                inner = scope + (id(node),)
                self._add_graph(layer, inner, [self._slot(t, scope) for t in node.input_tensors],
                                node_training)
                for tensor, outer in zip(layer.outputs, node.output_tensors):
                    self._slots[(scope, id(outer))] = self._slot(tensor, inner)
                continue
            # The call's argument, then its tensor keyword arguments (initial states), then
            # an explicit mask.
            states = [t for name, value in node.call_tensors.items() if name != "mask"
                      for t in flatten(value)]
            mask = node.call_tensors.get("mask")
            tensors = node.input_tensors[:node.argument_count] + states + flatten(
                [] if mask is None else mask)
            inputs = [self._cast(self._slot(t, scope), t.dtype, layer) for t in tensors]
            self.steps.append(LayerStep(
                layer, inputs, [self._slot(t, scope) for t in node.output_tensors],
                multi_input=not _single(node.arguments), training=node_training,
                state_count=len(states), mask_input=mask is not None,
                multi_output=isinstance(node.outputs, list)))

    def _cast(self, slot, dtype, layer):
        """``slot``, or a new slot holding its values in ``layer``'s float type when the
        layer computes in another: a float tensor of the other float type (Keras casts a
        layer's float inputs to its dtype), or integers reaching a built-in layer with
        weights (Dense after ``Discretization(output_mode='int')``: Keras' ops promote the
        integers to the weights' float type, int64 with float32 giving float32). A layer
        that reads integers as such (a preprocessing layer, an Embedding: class attribute
        ``_reads_integer_inputs``), a weightless layer (Flatten: its output keeps the
        integer type, as the graph records) and a user layer (its ``call`` sees what
        Keras would pass it) get the integers as they are."""
        wanted = layer.dtype
        if dtype == wanted:
            return slot
        if dtype not in ("float32", "float64") and not _promotes_integers(layer, dtype):
            return slot
        key = ("cast", slot, wanted)
        if key not in self._slots:
            self._slots[key] = len(self._slots)
            self.steps.append(CastStep(slot, self._slots[key], dtype, wanted))
        return self._slots[key]

    def _finish(self):
        """The training contexts and the gradient arrays."""
        self._build_gradients()
        self.contexts = [step.contexts(record=True) for step in self.steps]
        self._assign_gradients()
        self.buffers = None   # accumulation buffers, made on first use
        # Penalties computed per call: activity regularizers, add_loss terms of user layers.
        self.has_activity = any(layer.activity_regularizer is not None or layer._uses_add_loss
                                for step in self.steps for layer in step.layers)
        # Masks flow beside the values only in a plan with a layer that makes them
        # (Embedding(mask_zero=True), Masking: ``_makes_masks``) or a call given one: other
        # plans run exactly as before.
        self.uses_masks = any(
            getattr(step, "mask_input", False) or any(layer._makes_masks for layer in step.layers)
            for step in self.steps)

    def _build_gradients(self):
        """One flat gradient buffer per dtype, split into each trainable layer's arrays,
        in the order of the model's trainable weights."""
        layers, seen = [], set()
        for layer in self.model._weighted_layers():
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        self.layers = layers
        self.params, self.grads, self._layer_grads = [], [], {}
        trainable = [layer for layer in layers if layer.trainable and layer.params]
        sizes = {}
        for layer in trainable:
            for p in layer.params:
                sizes[p.dtype] = sizes.get(p.dtype, 0) + p.size
        # np.zeros: untouched pages until the first backward pass writes them.
        flat = {dtype: np.zeros(size, dtype) for dtype, size in sizes.items()}
        offsets = dict.fromkeys(sizes, 0)
        for layer in trainable:
            arrays = []
            for p in layer.params:
                start = offsets[p.dtype]
                arrays.append(flat[p.dtype][start:start + p.size].reshape(p.shape))
                offsets[p.dtype] = start + p.size
            self._layer_grads[id(layer)] = arrays
            self.params += layer.params
            self.grads += arrays
        self.flat_grads = flat

    def _assign_gradients(self):
        """The training contexts' gradient arrays: a trainable layer's first call in
        backward order writes the plan's arrays; later calls write scratch arrays (their
        context's own), added in by :meth:`backward`."""
        self.extra_grads = []   # (scratch arrays, the plan's arrays), in backward order
        claimed = set()
        for step, contexts in zip(reversed(self.steps), reversed(self.contexts)):
            if not step.runs_backward:
                continue
            for layer, ctx in zip(step.layers, contexts):
                arrays = self._layer_grads.get(id(layer))
                if arrays is None:
                    continue   # frozen or weightless: the context's own scratch, if any
                if id(layer) in claimed:
                    self.extra_grads.append((ctx, arrays))
                else:
                    claimed.add(id(layer))
                    ctx.grads = arrays

    @property
    def inference_chain(self):
        """The plan as a plain chain of Dense layers for inference
        (``dense_chain.inference_chain``), or None; found once."""
        chain = self.__dict__.get("_inference_chain", False)
        if chain is False:
            from minidl.models.dense_chain import inference_chain
            chain = self._inference_chain = inference_chain(self)
        return chain

    # ---- running ----

    def inference_contexts(self):
        """Fresh contexts for one inference call (nothing shared with other calls)."""
        return [make() for make in self._inference_program()[1]]

    def _inference_program(self):
        """What an inference pass without masks runs, found once: per step, either
        ``(layer.forward, input slot, output slot, slots to release)`` for a plain call of
        a layer on one tensor (run without the step's own bookkeeping), or ``(None, step,
        None, slots to release)``; per step the maker of its fresh contexts; the steps
        (:attr:`inference_steps`) and their release points (a slot's array is dropped
        after its last reader). A one-sample call takes tens of microseconds, so the
        per-step Python counts."""
        program = self.__dict__.get("_program")
        if program is None:
            steps = rewrites.inference_steps(self)
            releases = _release_points(steps, self.output_slots)
            runs, makers = [], []
            for step, release in zip(steps, releases):
                if (type(step) is LayerStep and step.training is None and not step.takes_list
                        and not step.mask_input and not step.multi_output
                        and len(step.inputs) == 1 and len(step.outputs) == 1
                        and step.layer.activity_regularizer is None):
                    runs.append((step.layer.forward, step.inputs[0], step.outputs[0], release))
                    makers.append(_context_maker(step.layer))
                else:
                    runs.append((None, step, None, release))
                    makers.append(_step_context_maker(step))
            # (one assignment: calls in other threads see all of it or none)
            program = self._program = (runs, makers, steps, releases)
        return program

    @property
    def is_chain(self):
        """Whether an inference pass is a plain chain (:meth:`run_chain`): one input, one
        output, each step reading the one before alone, no masks, no activity penalties."""
        chain = self.__dict__.get("_is_chain")
        if chain is None:
            steps = self._inference_program()[2]
            slot = self.input_slots[0] if len(self.input_slots) == 1 else None
            chain = (slot is not None and len(self.output_slots) == 1
                     and not self.uses_masks and not self.has_activity)
            for step in steps:
                if not chain:
                    break
                chain = (len(step.inputs) == 1 and len(step.outputs) == 1
                         and step.inputs[0] == slot)
                slot = step.outputs[0]
            chain = self._is_chain = chain and slot == self.output_slots[0]
        return chain

    def __getstate__(self):
        # A copied (deep-copied, pickled) plan makes its own chain functions: these bind
        # the layers of this one.
        state = dict(self.__dict__)
        state.pop("_chains", None)
        return state

    def run_chain(self, x):
        """The output of an inference pass on the input array ``x`` of a plan that
        :attr:`is_chain`: the calls :meth:`_infer` makes, through per-step functions made
        once per input sample shape (``_step_runner``), which skip the contexts and the
        per-step bookkeeping of the general pass (a one-sample call of a small CNN takes
        tens of microseconds, so each microsecond counts). Every array a step returns is
        made by that call: nothing is shared between calls or threads."""
        chains = self.__dict__.get("_chains")
        if chains is None:
            chains = self._chains = {}
        chain = chains.get(x.shape[1:])
        if chain is None:
            return self._first_chain_run(x, chains)
        for run in chain:
            x = run(x)
        return x

    def _first_chain_run(self, x, chains):
        """:meth:`run_chain` for a new input sample shape: each step's function made for
        the shape its input has, then run; the functions kept for the next calls."""
        runs, makers, steps, _ = self._inference_program()
        sample, chain = x.shape[1:], []
        for (forward, _, _, _), make, step in zip(runs, makers, steps):
            run = _step_runner(forward, make, step, x.shape[1:])
            if run is not None:   # (None: the input as it is)
                chain.append(run)
                x = run(x)
        if len(chains) >= 16:   # shapes that vary from call to call
            chains.clear()
        chains[sample] = tuple(chain)
        return x

    @property
    def inference_steps(self):
        """The steps an inference pass runs: ``steps`` after the inference-only rewrites
        (``rewrites.inference_steps``)."""
        return self._inference_program()[2]

    def input_checker(self, contexts):
        """The context, among ``contexts`` (from :meth:`inference_contexts`), of the one step
        that reads the model's only input if its layer finds NaN and infinities in its input
        as it runs (``finds_nonfinite_input``, Dense), with ``check_input`` set; else None."""
        if len(self.input_slots) != 1:
            return None
        steps = self.inference_steps   # (which inference_contexts are made for)
        readers = [i for i, step in enumerate(steps) if self.input_slots[0] in step.inputs]
        if len(readers) != 1:
            return None
        step = steps[readers[0]]
        if not (isinstance(step, LayerStep) and len(step.inputs) == 1
                and getattr(step.layer, "finds_nonfinite_input", False)):
            return None
        ctx = contexts[readers[0]][0]
        ctx.check_input = True
        return ctx

    def forward(self, inputs, training, contexts=None, output_masks=None):
        """The outputs (a list) for the list of input arrays.

        Args:
            inputs: one array per model input, in ``model.inputs`` order.
            training: a training pass: layers behave as in training (batch statistics,
                dropout; unless a call says otherwise) and keep what :meth:`backward`
                needs in the plan's own contexts. Otherwise an inference pass on fresh
                contexts (or ``contexts``, from :meth:`inference_contexts`, to read the
                activity penalties afterwards).
            output_masks: None, or a list that receives the outputs' masks (boolean
                arrays, None for an output without one), for the losses and metrics.
        """
        if training:
            contexts, steps, release = self.contexts, self.steps, None
        else:
            if contexts is None:
                contexts = self.inference_contexts()
            if not self.uses_masks:
                return self._infer(inputs, contexts, output_masks)
            _, _, steps, release = self._inference_program()
        values = [None] * self.slot_count
        masks = [None] * self.slot_count if self.uses_masks else None
        for slot, x in zip(self.input_slots, inputs):
            values[slot] = x
        for i, (step, ctx) in enumerate(zip(steps, contexts)):
            xs = [values[s] for s in step.inputs]
            if masks is None:
                outs = step.forward(ctx, xs, training)
            else:
                outs, out_masks = forward_with_masks(step, ctx, xs, training,
                                                     [masks[s] for s in step.inputs])
                for slot, m in zip(step.outputs, out_masks):
                    masks[slot] = m
            for slot, y in zip(step.outputs, outs):
                values[slot] = y
            if release is not None:
                for slot in release[i]:
                    values[slot] = None
        if output_masks is not None:
            output_masks[:] = [None if masks is None else masks[s] for s in self.output_slots]
        return [values[s] for s in self.output_slots]

    def _infer(self, inputs, contexts, output_masks):
        """:meth:`forward` in inference, for a plan without masks: the same calls, in the
        same order, with less Python around each."""
        values = [None] * self.slot_count
        for slot, x in zip(self.input_slots, inputs):
            values[slot] = x
        for (forward, source, target, release), ctx in zip(self._inference_program()[0],
                                                            contexts):
            if forward is not None:
                values[target] = forward(ctx[0], values[source], False)
            else:
                outs = source.forward(ctx, [values[s] for s in source.inputs], False)
                for slot, y in zip(source.outputs, outs):
                    values[slot] = y
            for slot in release:
                values[slot] = None
        if output_masks is not None:
            output_masks[:] = [None] * len(self.output_slots)
        return [values[s] for s in self.output_slots]

    def backward(self, output_grads):
        """Gradients of every trainable weight (into ``self.grads``) from the gradients of
        the outputs (a list, None for an output no loss reads), after a training
        :meth:`forward`. For an output in ``fused_heads`` the gradient is that of its
        pre-activation."""
        grads = [None] * self.slot_count
        for slot, g in zip(self.output_slots, output_grads):
            if g is not None:
                grads[slot] = g
        for step, ctx in zip(reversed(self.steps), reversed(self.contexts)):
            if not step.runs_backward:
                continue
            dys = [grads[s] for s in step.outputs]
            if all(dy is None for dy in dys):
                continue
            dxs = step.backward(ctx, dys)
            for slot, dx in zip(step.inputs, dxs):
                if dx is not None:
                    grads[slot] = dx if grads[slot] is None else self._accumulate(
                        slot, grads[slot], dx)
        for ctx, arrays in self.extra_grads:
            for total, part in zip(arrays, ctx.grads):
                np.add(total, part, out=total)

    def _accumulate(self, slot, total, part):
        """``total + part`` into the slot's own buffer: neither may be written, as both can
        be buffers that other steps own (or one array given to two inputs)."""
        if self.buffers is None:
            self.buffers = BufferPool(None)
        out = self.buffers.get(slot, total.shape[0], total.shape[1:], total.dtype)
        return np.add(total, part, out=out)

    def activity_by_layer(self, contexts=None):
        """``{id(layer): its activity penalty}`` of the last forward pass on ``contexts``
        (default: the last training pass), summed over a layer's calls."""
        out = {}
        for cs in contexts or self.contexts:
            for c in cs:
                if c.layer.activity_regularizer is not None or c.layer._uses_add_loss:
                    key = id(c.layer)
                    out[key] = out.get(key, 0.0) + c.activity_loss
        return out

    def activity_penalties(self, contexts=None):
        """The activity penalties of the last forward pass on ``contexts`` (default: the
        last training pass), in step order."""
        return [c.activity_loss for cs in (contexts or self.contexts) for c in cs
                if c.layer.activity_regularizer is not None or c.layer._uses_add_loss]


def _release_points(steps, output_slots):
    """Per step, the slots whose arrays an inference pass drops after it (their last
    reader), model outputs excepted."""
    last_read = {}
    for i, step in enumerate(steps):
        for slot in step.inputs:
            last_read[slot] = i
    keep = set(output_slots)
    release = [[] for _ in steps]
    for slot, i in last_read.items():
        if slot not in keep:
            release[i].append(slot)
    return [tuple(r) for r in release]


def _step_runner(forward, make, step, sample_shape):
    """``run(x)``: one step of an inference pass on inputs of samples of ``sample_shape``
    (``Plan.run_chain``), as ``Plan._infer`` runs it: the step's own ``runner`` where it
    has one, Dense, Flatten and Dropout without their general forward's tests, else the
    step's forward on fresh contexts. None for a step that returns its input as it is
    (Dropout in inference)."""
    from minidl.layers.core import Dense
    from minidl.layers.regularization import Dropout
    from minidl.layers.reshaping import Flatten
    if forward is None:
        runner = getattr(step, "runner", None)
        if runner is not None:
            return runner(sample_shape)
        return lambda x: step.forward(make(), [x], False)[0]
    layer = step.layer
    if type(layer) is Dropout:
        return None
    if type(layer) is Flatten:
        return lambda x: np.ascontiguousarray(x).reshape(x.shape[0], -1)
    if type(layer) is Dense and len(sample_shape) == 1:
        units, dtype = layer.units, np.dtype(layer.dtype)

        def dense(x):
            # Dense.forward in inference on (batch, features): the product, then the bias
            # and the activation in place.
            z = np.empty((x.shape[0], units), dtype)
            gemm(x, layer._kernel_array, z)
            layer.activation.forward_bias(z, layer._bias_array, z)
            return z
        return dense
    return lambda x: forward(make()[0], x, False)


def _context_maker(layer):
    """A maker of one inference context of ``layer``, as ``LayerStep.contexts`` makes."""
    def make():
        return (CallContext(layer, False),)
    return make


def _step_context_maker(step):
    def make():
        return step.contexts(record=False)
    return make


def _promotes_integers(layer, dtype):
    """Whether ``layer`` reads an input of the integer type ``dtype`` as floats of its
    dtype (see :meth:`Plan._cast`)."""
    from minidl.layers.preprocessing.base import PreprocessingLayer
    return (dtype != "string" and np.dtype(dtype).kind in "iu" and not layer._user_call
            and not isinstance(layer, PreprocessingLayer)
            and not getattr(layer, "_reads_integer_inputs", False)
            and bool(layer.params or layer.non_trainable_params))


def _single(arguments):
    return not isinstance(arguments, (list, tuple, dict))

