"""The Keras training API of a model: compile, fit, evaluate, predict and the *_on_batch calls.

The trainer knows batches, losses, metrics, callbacks and the optimizer, and runs the
model's execution plan (``models.plan``); it knows no layer kinds. One training step is
    plan.forward (training) -> each output's loss and its gradient (fused with a softmax or
    sigmoid head where the plan says so) -> plan.backward -> regularization penalties added
    to the loss and, in place, to the gradients -> one fused update per parameter ->
    running loss and metrics.
Every buffer it touches belongs to the plan, the Batcher or the trainer and is reused, and
what does not change from step to step is fixed once per fit (``_prepare_step``). Batches
come from a source of ``models.data_adapters``: arrays through the Batcher, or batches made
by the user (a PyDataset, a generator, any iterable of batches).

A non-finite training loss does not raise, as in Keras: fit warns once and goes on (the
weights are then NaN); ``callbacks.TerminateOnNaN`` stops at the first such batch.

Threads: a training step holds the model's lock exclusively and inference holds it shared,
and fit / evaluate / the *_on_batch calls run one at a time (``models.concurrency``), so
calls from several threads give the results of the same calls made one after another.

Random draws of training (the batch order, unseeded dropout) come from a stream derived from
the global generator's state when fit starts and the optimizer's step count
(``utils.random.training_draws``).
"""
import contextlib
import math
import numbers
import warnings

import numpy as np

from minidl import optimizers as optimizers_module
from minidl.autodiff import Tensor
from minidl.callbacks import CallbackList
from minidl.layers.base import BufferPool
from minidl.models.compiled import CompiledLosses
from minidl.models.concurrency import one_at_a_time
from minidl.models.data_adapters import (ArrayBatches, BatchConverter, StreamBatches,
                                         check_stream_arguments, is_batch_source)
from minidl.models.data import (Arrays, Batcher, check_finite_values,
                                class_weight_to_sample_weight, prepare_sample_weight, prepare_x,
                                prepare_y, split_validation, target_as_given)
from minidl.models.dense_chain import compile_chain, run_inference_chain
from minidl.models.train_steps import TrainSteps, pythonify_logs
from minidl.utils.progbar import Progbar
from minidl.utils.random import global_rng, training_draws


class Trainer:
    """Training and inference for a model (see :class:`minidl.models.Model`): it needs
    ``inputs``, ``outputs``, ``output_names``, ``_plan(losses)``, ``_ensure_built_for`` and
    ``_lock``."""

    # ---- compile ----

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto"):
        """Configure the model for training.

        Args:
            optimizer: name (e.g. 'adam') or optimizer instance.
            loss: name (e.g. 'sparse_categorical_crossentropy') or loss instance; for a
                model with several outputs, one for all, a list (one per output) or a dict
                keyed by output name (None leaves an output out).
            loss_weights: the weights of the outputs' losses in the total: a float, a list
                or a dict by output name (default 1 each).
            metrics: list of metric names or instances, e.g. ``['accuracy']``; for several
                outputs, a list with one entry (a metric or a list) per output, or a dict.
            run_eagerly, steps_per_execution, jit_compile: accepted for Keras
                compatibility; minidl always runs its compiled kernels, one step at a time.
        """
        if not isinstance(run_eagerly, (bool, np.bool_)):
            raise TypeError(f"run_eagerly must be True or False; received "
                            f"run_eagerly={run_eagerly!r}.")
        if steps_per_execution != 1:
            raise ValueError(f"minidl runs one step per execution; received "
                             f"steps_per_execution={steps_per_execution!r}.")
        if jit_compile not in ("auto", True, False):
            raise ValueError(f"jit_compile must be 'auto', True or False; received "
                             f"jit_compile={jit_compile!r}.")
        self.optimizer = optimizers_module.get(optimizer)
        if metrics is not None and not isinstance(metrics, (list, tuple, dict)):
            raise TypeError(f"metrics must be a list, e.g. ['accuracy']; received {metrics!r}.")
        self._compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}
        self._compiled = None
        self.compiled = True
        if self.built:
            self._compile_for_outputs()

    def _compile_for_outputs(self):
        """Resolve the compile arguments against the (built) model's outputs, and build the
        optimizer for its trainable weights unless it already is."""
        args = self._compile_args
        self._compiled = CompiledLosses(self.output_names, [t.shape[1:] for t in self.outputs],
                                        args["loss"], args["loss_weights"], args["metrics"])
        losses = self._compiled.losses
        self.loss = losses[0] if len(losses) == 1 else losses
        if not self.optimizer.built:
            self._prepare_step()

    def get_compile_config(self):
        """The arguments of ``compile`` (serialized by saving), or None if not compiled."""
        if not self.compiled:
            return None
        return dict(self._compile_args, optimizer=self.optimizer)

    def _overrides(self, name):
        """Whether the model's class replaces Keras' default step method ``name``."""
        return getattr(type(self), name) is not getattr(TrainSteps, name)

    def _uses_step_methods(self):
        """Whether batches go through ``train_step`` / ``test_step`` / ``predict_step``
        (``train_steps.py``): a subclassed model, or one overriding a step. Otherwise the
        execution plan's compiled step runs."""
        return (getattr(self, "_subclassed", False) or self._overrides("train_step")
                or self._overrides("test_step") or self._overrides("predict_step"))

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}().")
        if self._compile_args["loss"] is None and self._uses_step_methods() and (
                self._overrides("compute_loss")
                or (what == "fit" and self._overrides("train_step"))):
            return   # the model's own code computes the loss (a GAN, a VAE)
        if self._compile_args["loss"] is None:
            raise RuntimeError(f"compile() was called without a loss; {what}() needs one, e.g. "
                               f"compile(loss='sparse_categorical_crossentropy').")

    @property
    def metrics_names(self):
        """The keys of evaluate's results: 'loss', the outputs' losses, the metrics."""
        if self._compiled is None:
            return ["loss"]
        return self._compiled.names_in_logs()

    def _prepare_step(self):
        """Fix what every training step uses: the plan with the loss fusions, the optimizer
        (built on first use), the loss kernels, the regularized layers."""
        if self._compiled is None:
            self._compile_for_outputs()
        # Layers whose weights are projected after each update (add_weight(constraint=)).
        self._constraint_layers = [layer for layer in self._weighted_layers()
                                   if layer.has_constraints]
        if self._uses_step_methods():
            # The optimizer is built for every trainable weight, so that a saved model's
            # slots have a place to load into; a step may update any subset of them.
            self._train_plan = None
            if not self.optimizer.built and self.inputs and self.trainable_weights:
                self.optimizer.build(self.trainable_weights)
            return None
        compiled = self._compiled
        plan = self._plan(compiled.losses)
        if not self.optimizer.built:
            self.optimizer.build(plan.params)
        elif not _same_arrays(self.optimizer._variables, plan.params):
            raise RuntimeError(
                f"Model '{self.name}''s trainable weights changed since its optimizer was "
                f"built (a layer was frozen, unfrozen or added): call compile() again before "
                f"training, as in Keras.")
        steps = []
        for loss, fused in zip(compiled.losses, plan.fused_heads):
            if loss is None:
                steps.append(None)
            elif not fused:
                steps.append(loss.forward_backward)
            elif loss.fused_with == "softmax":
                steps.append(loss.softmax_forward_backward)
            else:
                steps.append(loss.sigmoid_forward_backward)
        self._loss_steps = steps
        weight = compiled.weights[0]
        self._dense_chain = (compile_chain(plan, compiled.losses)
                             if len(compiled.losses) == 1 and weight in (None, 1.0) else None)
        # Layers with regularizers only (has_regularization), so that the others cost
        # nothing per step: (layer, its gradient arrays when trainable, else None).
        grads = dict(zip(map(id, plan.params), plan.grads))
        self._penalties = [(layer, [grads[id(p)] for p in layer.params]
                            if layer.trainable and layer.params and id(layer.params[0]) in grads
                            else None)
                           for layer in plan.layers if layer.has_regularization]
        if self._step_buffers is None:
            self._step_buffers = BufferPool(None)
        self._train_plan = plan
        return plan

    # ---- one step ----

    def _train_step(self, xs, ys, ws):
        if self._train_plan is None:
            # The whole step holds the model alone, as the plan's step does: inference in
            # other threads sees the weights before or after the update, never between.
            with self._lock.exclusive:
                self._step_logs = self._checked_logs(
                    "train_step", self.train_step(self._step_data(xs, ys, ws)))
        else:
            with self._lock.exclusive:   # inference in other threads waits (concurrency.py)
                self._train_step_unlocked(xs, ys, ws)
        if self._constraint_layers:
            with self._lock.exclusive:
                for layer in self._constraint_layers:
                    layer.apply_constraints()

    def _checked_logs(self, step, logs):
        if not isinstance(logs, dict):
            raise TypeError(f"Model '{self.name}'.{step} must return a dict of metric names to "
                            f"values (e.g. {{m.name: m.result() for m in self.metrics}}); "
                            f"received {type(logs).__name__}.")
        return logs

    def _step_data(self, xs, ys, ws):
        """A batch as Keras hands it to a step: ``x``, ``(x, y)`` or ``(x, y, w)``; each
        one array, or a list (a dict for inputs given as a dict) per input / output. Several
        inputs without targets come as ``(x,)``, so that unpacking never takes the second
        input for y (Keras' pack_x_y_sample_weight)."""
        x = xs[0] if len(xs) == 1 else (dict(zip(self.input_names, xs))
                                        if isinstance(self._inputs_struct, dict) else list(xs))
        if not ys or all(y is None for y in ys):
            return (x,) if isinstance(x, list) else x
        y = ys[0] if len(ys) == 1 else list(ys)
        if not ws or all(w is None for w in ws):
            return x, y
        return x, y, ws[0] if len(ws) == 1 else list(ws)

    def _train_step_unlocked(self, xs, ys, ws):
        plan, compiled = self._train_plan, self._compiled
        chain = self._dense_chain
        if chain is not None and not (ws and ws[0] is not None):
            # A chain of Dense layers: forward, loss and backward in one compiled call
            # (models/dense_chain.py), the same bits as the path below.
            done = chain.run(xs[0], ys[0])
            if done is not None:
                value, output = done
                if compiled.trackers[0] is not None:
                    compiled.trackers[0].update_state(value, sample_weight=output.shape[0])
                self.optimizer.apply(plan.grads, plan.params)
                compiled.update_metrics(ys, [output])
                compiled.loss_tracker.update_state(value, sample_weight=output.shape[0])
                return
        masks = [] if plan.uses_masks else None
        outputs = plan.forward(xs, training=True, output_masks=masks)
        total = None
        output_grads = []
        for i, (step, out) in enumerate(zip(self._loss_steps, outputs)):
            if step is None:
                output_grads.append(None)
                continue
            grad = self._step_buffers.get(("grad", i), out.shape[0], out.shape[1:], out.dtype)
            weights = ws[i] if ws else None
            if masks and masks[i] is not None:
                weights = masked_loss_weights(weights, masks[i], compiled.losses[i], out)
            value = step(ys[i], out, grad, weights)
            tracker = compiled.trackers[i]
            if tracker is not None:
                tracker.update_state(value, sample_weight=out.shape[0])
            weight = compiled.weights[i]
            if weight is not None and weight != 1.0:
                value *= weight
                np.multiply(grad, weight, out=grad)
            total = value if total is None else total + value
            output_grads.append(grad)
        plan.backward(output_grads)
        if self._penalties:
            activity = plan.activity_by_layer()
            for layer, grads in self._penalties:
                total += activity.get(id(layer), 0.0) + layer.regularization_loss(grads)
        self.optimizer.apply(plan.grads, plan.params)
        if self._penalties:
            self._last_activity = tuple(plan.activity_penalties())
        compiled.update_metrics(ys, outputs, masks)
        compiled.loss_tracker.update_state(total, sample_weight=outputs[0].shape[0])

    def _logs(self, prefix=""):
        if self._uses_step_methods():
            logs = pythonify_logs(self._step_logs or self.get_metrics_result())
            return {prefix + key: value for key, value in logs.items()}
        return self._compiled.logs(prefix)

    def _reset_metrics(self):
        self._step_logs = None
        if self._uses_step_methods():
            for metric in self.metrics:
                metric.reset_state()
            return
        self._compiled.reset()

    def reset_metrics(self):
        """Reset the running loss and metrics."""
        if self._compiled is not None:
            self._compiled.reset()

    # ---- data ----

    def _split(self, data, names, what, allow_missing=False):
        """``data`` for a model with inputs (outputs) ``names``: one entry per name, from an
        array (one input), a list / tuple, or a dict keyed by name."""
        count = len(names)
        if isinstance(data, dict):
            missing = [name for name in names if name not in data]
            if missing and not allow_missing:
                raise ValueError(f"{what} is a dict without the key(s) {missing}; model "
                                 f"'{self.name}' expects the keys {names}. Received keys "
                                 f"{list(data)}.")
            extra = [key for key in data if key not in names]
            if extra:
                raise ValueError(f"{what} has the key(s) {extra}, which name none of model "
                                 f"'{self.name}''s {'inputs' if what == 'x' else 'outputs'} "
                                 f"{names}.")
            return [data.get(name) for name in names]
        if isinstance(data, (list, tuple)) and count > 1:
            if len(data) != count:
                raise ValueError(f"{what} must hold one array per model "
                                 f"{'input' if what.startswith('x') else 'output'} "
                                 f"({count}: {names}); received a {type(data).__name__} of "
                                 f"{len(data)}.")
            return list(data)
        if isinstance(data, (list, tuple)) and len(data) == 1 \
                and isinstance(data[0], np.ndarray):
            return [data[0]]
        if count > 1:
            raise ValueError(f"Model '{self.name}' has {count} "
                             f"{'inputs' if what.startswith('x') else 'outputs'} ({names}): "
                             f"pass {what} as a list or a dict of {count} arrays; received "
                             f"{type(data).__name__}.")
        return [data]

    def _input_arrays(self, x, name="x", check_finite=True):
        """One ``(x2d, sample_shape)`` per model input, checked (for NaN and infinities too,
        unless ``check_finite`` is False); builds the model for them if it is not built."""
        if x is None:
            raise ValueError(f"{name} is required; received None.")
        if self.inputs:
            names = self.input_names
        elif getattr(self, "_subclassed", False) and isinstance(x, (list, tuple, dict)):
            # An unbuilt subclassed model takes the structure of its first data.
            names = list(x) if isinstance(x, dict) else [f"input_{i + 1}" for i in range(len(x))]
        else:
            names = [None]
        parts = self._split(x, names, name)
        known = [(t.shape[1:], t.dtype) for t in self.inputs] if self.inputs else \
            [(None, None)] * len(parts)
        inputs = []
        for i, (part, (shape, dtype)) in enumerate(zip(parts, known)):
            label = name if len(parts) == 1 else f"{name}[{names[i]!r}]"
            inputs.append(prepare_x(part, shape, name=label, check_finite=check_finite,
                                    dtype=dtype))
        counts = {x2d.shape[0] for x2d, _ in inputs}
        if len(counts) > 1:
            raise ValueError(f"All inputs in {name} must have the same number of samples; "
                             f"received {[x2d.shape[0] for x2d, _ in inputs]}.")
        self._ensure_built_for([shape for _, shape in inputs], [x2d.dtype for x2d, _ in inputs])
        return inputs

    def _checked_arrays(self, x, y, sample_weight, class_weight, names=("x", "y")):
        """The :class:`Arrays` of a fit / evaluate / *_on_batch call."""
        inputs = self._input_arrays(x, names[0])
        if self._compiled is None:
            self._compile_for_outputs()
        n = inputs[0][0].shape[0]
        compiled = self._compiled
        if y is None and self._uses_step_methods() and sample_weight is None and \
                class_weight is None:
            return Arrays(inputs)   # a step of the model's own reads x alone (a VAE, a GAN)
        if y is None:
            raise ValueError(f"{names[1]} is required for training and evaluation; received "
                             f"None.")
        stepped = self._uses_step_methods()
        if stepped and not self.outputs:
            # A model without call (a GAN): its train_step takes y as given.
            parts = list(y) if isinstance(y, (list, tuple)) else [y]
            return Arrays(inputs, [np.ascontiguousarray(target_as_given(part, n, names[1])) for part in parts])
        parts = self._split(y, self.output_names, names[1], allow_missing=True)
        targets = []
        for i, (part, loss, tensor) in enumerate(zip(parts, compiled.losses, self.outputs)):
            label = names[1] if len(parts) == 1 else f"{names[1]}[{self.output_names[i]!r}]"
            if loss is None and stepped and part is not None:
                # No compiled loss reads it, but the model's own step does (Keras hands a
                # train_step y whether or not compile named a loss).
                targets.append(np.ascontiguousarray(target_as_given(part, n, label)))
            elif loss is None:
                targets.append(None)
            elif part is None:
                raise ValueError(f"{label} is missing: output '{self.output_names[i]}' has "
                                 f"a loss, so it needs targets.")
            else:
                targets.append(prepare_y(part, n, loss, tensor.shape[1:], name=label,
                                         dtype=tensor.dtype))
        _check_not_both(sample_weight, class_weight)
        weights = None
        if sample_weight is not None:
            if isinstance(sample_weight, (dict, list, tuple)) and len(self.outputs) > 1:
                per = self._split(sample_weight, self.output_names, "sample_weight",
                                  allow_missing=True)
            else:
                per = [sample_weight] * len(self.outputs)
            label = "sample_weight" if names[0] == "x" else "validation_data sample_weight"
            weights = [None if w is None or t is None else
                       prepare_sample_weight(w, n, out.dtype, name=label)
                       for w, t, out in zip(per, targets, self.outputs)]
        if class_weight is not None:
            weights = [self._class_weights(class_weight, targets)]
        return Arrays(inputs, targets, weights)

    def _class_weights(self, class_weight, targets):
        if len(self.outputs) > 1:
            raise ValueError("class_weight is only supported for models with a single "
                             "output; pass sample_weight per output instead.")
        return class_weight_to_sample_weight(class_weight, targets[0], self.outputs[0].shape[-1],
                                             self.outputs[0].dtype)

    def _validation_arrays(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(f"validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             f"val_sample_weight); received {_describe(validation_data)}.")
        weights = validation_data[2] if len(validation_data) == 3 else None
        return self._checked_arrays(validation_data[0], validation_data[1], weights, None,
                                    names=("validation_data x", "validation_data y"))

    def _input_dtypes(self):
        from minidl.layers.node import numpy_dtype   # (object arrays for 'string' inputs)
        return [numpy_dtype(t.dtype) for t in self.inputs]

    # ---- fit ----

    @one_at_a_time
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train the model on ``(x, y)``, epochs ``initial_epoch`` to ``epochs - 1``.

        Args:
            x: inputs, shape ``(n,) + input_shape``; int or float (converted per batch to
                the input's dtype; for an integer input, floats must be whole numbers). For
                several inputs, a list of arrays or a dict keyed by input name. Or batches
                (``models.data_adapters``): a :class:`minidl.utils.PyDataset`, a Python
                generator, or any iterable of batches (a torch DataLoader), each batch
                ``(x, y)``, ``(x, y, sample_weight)`` or ``x``; y, sample_weight and
                batch_size are then None.
            y: targets: class labels (n,) or (n, 1) for sparse losses, else
                ``(n,) + output_shape``; for several outputs, a list or a dict keyed by
                output name.
            batch_size: samples per gradient step. Defaults to 32, or with
                ``steps_per_epoch`` to the size that covers the data in that many steps.
            epochs: the index of the last epoch plus one (not a count when
                ``initial_epoch`` > 0).
            verbose: 'auto' or 1 (progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: list of :class:`minidl.callbacks.Callback`.
            validation_split: fraction in [0, 1) of the data held out for validation: the
                last samples, taken before shuffling. Ignored when ``validation_data`` is
                given.
            validation_data: ``(x_val, y_val)`` or ``(x_val, y_val, val_sample_weight)``,
                or batches as x takes them, evaluated at the end of an epoch. The test
                callbacks see Keras' keys ('loss'), the epoch logs 'val_loss'.
            shuffle: reshuffle the training samples (a PyDataset's batches; other batches
                made by the user are taken as they come) before every pass. The order
                (and unseeded dropout) comes from a stream derived from the global random
                generator's state when fit starts and the optimizer's step count
                (``minidl.utils.random``); fit does not advance the global generator.
            class_weight: dict mapping each class index in y to a weight; the loss of a
                sample is multiplied by its class's weight (one output only).
            sample_weight: array ``(n,)``: the loss of each sample is multiplied by its
                weight (the loss stays a sum over the batch divided by the batch size); for
                several outputs, one array for all, or a list / dict per output.
            initial_epoch: the epoch to start from (to resume a previous run). A callback
                may override it from ``on_train_begin`` by setting ``model._initial_epoch``
                (as in Keras; :class:`minidl.callbacks.BackupAndRestore` does, after
                restoring a backup).
            steps_per_epoch: batches per epoch; the next epoch continues where the previous
                one stopped, and a pass over the data ends an epoch early (with a warning).
                Without it an epoch is one pass; a generator read to its end then stops
                training with Keras' "Your input ran out of data" warning.
            validation_steps: validate on the first this many batches only (required for a
                PyDataset without end).
            validation_batch_size: batch size of validation (default: batch_size).
            validation_freq: validate every this many epochs (an int), or after the epochs
                (counted from 1) in a list.
        Returns:
            A :class:`minidl.callbacks.History`; ``history.history`` maps 'loss', the
            outputs' losses, metric names and their 'val_' versions to per-epoch lists.
        """
        self._require_compiled("fit")
        epochs = _check_count(epochs, "epochs", minimum=0)
        initial_epoch = _check_count(initial_epoch, "initial_epoch", minimum=0)
        verbose = _check_verbose(verbose)
        steps_per_epoch = _check_optional_count(steps_per_epoch, "steps_per_epoch")
        validation_steps = _check_optional_count(validation_steps, "validation_steps")
        _check_validation_freq(validation_freq)
        _check_not_both(sample_weight, class_weight)
        if is_batch_source(x):
            check_stream_arguments(x, "x", y=y, sample_weight=sample_weight,
                                   batch_size=batch_size,
                                   validation_split=validation_split if validation_data is None
                                   else 0.0)
            source = StreamBatches(x, BatchConverter(self, "x", class_weight=class_weight),
                                   shuffle=shuffle)
            source.require_steps(steps_per_epoch, "steps_per_epoch", "x")
            source.epochs = epochs
            if not self.built:
                source.build_model()
            batch_size = held_out = None
        else:
            source, batch_size, held_out = self._training_arrays(
                x, y, sample_weight, class_weight, batch_size, steps_per_epoch,
                validation_split if validation_data is None else 0.0, shuffle)
        val = None
        val_batch_size = (batch_size if validation_batch_size is None
                          else _check_count(validation_batch_size, "validation_batch_size"))
        if validation_data is not None:
            val = self._evaluation_source(validation_data, None, None, val_batch_size,
                                          "validation_data")
            if isinstance(val, StreamBatches):
                val.require_steps(validation_steps, "validation_steps", "validation_data")
        elif held_out is not None:
            val = ArrayBatches(Batcher(held_out, val_batch_size, self._input_dtypes(),
                                       read_only=True))
        steps = steps_per_epoch or source.num_batches

        if isinstance(callbacks, CallbackList):
            callbacks = callbacks.callbacks
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps)
        self._prepare_step()
        train_step = self._train_step
        batch_begin, batch_end = cbs.on_train_batch_begin, cbs.on_train_batch_end
        batch_logs = cbs.wants("on_train_batch_end")
        logs = None
        warned_nonfinite = False
        self.stop_training = False
        self._in_fit = True
        self._fit_validates = val is not None
        self._initial_epoch = None
        try:
            cbs.on_train_begin()
            if self._initial_epoch is not None:
                initial_epoch = _resume_epoch(self._initial_epoch, initial_epoch, epochs,
                                              steps, source.num_batches
                                              if isinstance(source, ArrayBatches) else None)
            # The training stream's root (utils/random.py), read after on_train_begin, where
            # BackupAndRestore restores the global generator.
            root = global_rng().bit_generator.state
            for epoch in range(initial_epoch, epochs):
                if source.exhausted:   # a generator read to its end: no data for this epoch
                    if not source.warned:
                        source.warn_ran_out(steps_per_epoch or source.num_batches)
                    break
                self._reset_metrics()
                cbs.on_epoch_begin(epoch)
                with training_draws(root, self.optimizer.iterations) as draws, \
                        contextlib.closing(source.train_epoch(draws, steps_per_epoch)) as batches:
                    for step, batch in enumerate(batches):
                        batch_begin(step)
                        train_step(*batch)
                        batch_end(step, self._logs() if batch_logs else None)
                        if self.stop_training:
                            break
                if cbs.params.get("steps") is None and source.num_batches is not None:
                    cbs.params["steps"] = source.num_batches   # found at the end of a pass
                logs = self._logs()
                loss_value = logs.get("loss")   # (a GAN's steps may log d_loss, g_loss)
                if not (warned_nonfinite or self.stop_training or loss_value is None
                        or math.isfinite(loss_value)):
                    warnings.warn(_NONFINITE.format(loss=logs["loss"], epoch=epoch + 1),
                                  RuntimeWarning, stacklevel=2)
                    warned_nonfinite = True
                if val is not None and _should_validate(epoch, validation_freq):
                    if val.exhausted:
                        if not val.warned:
                            val.warn_ran_out(validation_steps or val.num_batches)
                    else:
                        logs.update(self._evaluate_batches(val, cbs, "val_", validation_steps))
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            self._in_fit = False
            self._fit_validates = False
            self._initial_epoch = None
            source.close()
            if val is not None:
                val.close()
        return cbs.history

    def _training_arrays(self, x, y, sample_weight, class_weight, batch_size, steps_per_epoch,
                         validation_split, shuffle):
        """The checked training arrays of fit as a source of batches, the batch size, and the
        arrays held out by ``validation_split`` (or None)."""
        arrays = self._checked_arrays(x, y, sample_weight, None)
        held_out = None
        if validation_split:
            # Keras cuts the last fraction off before shuffling, so it never trains on it.
            arrays, held_out = arrays.split(split_validation(validation_split, arrays.n))
        if class_weight is not None:   # of the training samples (held-out ones unweighted)
            arrays.weights = [self._class_weights(class_weight, arrays.targets)]
        n = arrays.n
        if batch_size is None and steps_per_epoch is not None:
            batch_size = -(-n // steps_per_epoch)
        batch_size = _check_batch_size(batch_size)
        batcher = Batcher(arrays, batch_size, self._input_dtypes())
        ran_out = _RAN_OUT.format(run="{run}", steps="{steps}", n=n, batches="{batches}",
                                  batch_size=batch_size)
        return ArrayBatches(batcher, shuffle, ran_out), batch_size, held_out

    def _evaluation_source(self, x, y, sample_weight, batch_size, what):
        """Batches to evaluate: ``x`` made of batches, or the arrays ``(x, y, sample_weight)``
        (``x`` is ``validation_data`` when ``what`` says so)."""
        if is_batch_source(x):
            if what == "x":
                check_stream_arguments(x, what, y=y, sample_weight=sample_weight,
                                       batch_size=batch_size)
            source = StreamBatches(x, BatchConverter(self, what))
            if not self.built:
                source.build_model()
            return source
        batch_size = _check_batch_size(batch_size)
        if what == "x":
            arrays = self._checked_arrays(x, y, sample_weight, None)
        else:
            arrays = self._validation_arrays(x)
        return ArrayBatches(Batcher(arrays, batch_size, self._input_dtypes(), read_only=True))

    # ---- evaluation and inference ----

    def _evaluate_batches(self, source, cbs, prefix="", steps=None):
        """Loss and metrics over the batches of ``source`` (an ArrayBatches or
        StreamBatches), at most ``steps`` of them. The test callbacks see Keras' keys
        ('loss'); the returned logs have ``prefix`` ('val_' in fit) before each key."""
        if self._uses_step_methods():
            return self._evaluate_with_test_step(source, cbs, prefix, steps)
        compiled = self._compiled
        plan = self._plan(compiled.losses)
        self._reset_metrics()
        self.stop_evaluating = False
        cbs.on_test_begin()
        batch_logs = cbs.wants("on_test_batch_end")
        regularized = [layer for layer in plan.layers if layer.has_regularization]
        with contextlib.closing(source.eval_batches(steps)) as batches:
            for step, (xs, ys, ws) in enumerate(batches):
                cbs.on_test_batch_begin(step)
                contexts = plan.inference_contexts()
                masks = [] if plan.uses_masks else None
                with self._lock.shared:
                    outputs = plan.forward(xs, training=False, contexts=contexts,
                                           output_masks=masks)
                total = None
                for i, (loss, out) in enumerate(zip(compiled.losses, outputs)):
                    if loss is None:
                        continue
                    weights = ws[i] if ws else None
                    if masks and masks[i] is not None:
                        weights = masked_loss_weights(weights, masks[i], loss, out)
                    value = _batch_loss(loss, ys[i], out, weights)
                    if compiled.trackers[i] is not None:
                        compiled.trackers[i].update_state(value, sample_weight=out.shape[0])
                    weight = compiled.weights[i]
                    if weight is not None and weight != 1.0:
                        value *= weight
                    total = value if total is None else total + value
                if regularized:
                    activity = plan.activity_by_layer(contexts)
                    total += float(sum(activity.get(id(layer), 0.0)
                                       + layer.regularization_loss() for layer in regularized))
                compiled.loss_tracker.update_state(total, sample_weight=outputs[0].shape[0])
                compiled.update_metrics(ys, outputs, masks)
                cbs.on_test_batch_end(step, self._logs() if batch_logs else None)
                if self.stop_evaluating:
                    break
        return _end_test(cbs, self._logs(), prefix)

    def _evaluate_with_test_step(self, source, cbs, prefix, steps):
        """Evaluation through ``test_step``, one batch per call."""
        self._reset_metrics()
        self.stop_evaluating = False
        cbs.on_test_begin()
        batch_logs = cbs.wants("on_test_batch_end")
        with contextlib.closing(source.eval_batches(steps)) as batches:
            for step, batch in enumerate(batches):
                cbs.on_test_batch_begin(step)
                self._step_logs = self._checked_logs(
                    "test_step", self.test_step(self._step_data(*batch)))
                cbs.on_test_batch_end(step, self._logs() if batch_logs else None)
                if self.stop_evaluating:
                    break
        return _end_test(cbs, self._logs(), prefix)

    @one_at_a_time
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics on ``(x, y)``.

        Args:
            x, y: as for :meth:`fit` (batches: y None).
            batch_size: samples per batch (default 32); None when x is made of batches.
            verbose: 'auto' or 1 (progress bar), 2 (one line), 0 (silent).
            sample_weight: array ``(n,)`` weighting each sample's loss (not the metrics).
            steps: evaluate the first this many batches only.
            callbacks: list of :class:`minidl.callbacks.Callback`.
            return_dict: return a dict instead of a list.
        Returns:
            ``[loss, metric1, ...]`` (just the loss when there are no metrics), or a dict
            ``{'loss': ..., 'accuracy': ...}`` with ``return_dict=True``. The loss includes
            the regularization penalties.
        """
        self._require_compiled("evaluate")
        verbose = _check_verbose(verbose)
        steps = _check_optional_count(steps, "steps")
        source = self._evaluation_source(x, y, sample_weight, batch_size, "x")
        try:
            if isinstance(source, StreamBatches):
                source.require_steps(steps, "steps", "x")
            count = source.num_batches
            cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                               epochs=1, steps=steps if count is None else
                               count if steps is None else min(steps, count))
            return _results(self._evaluate_batches(source, cbs, steps=steps), return_dict)
        finally:
            source.close()

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for ``x``, computed batch by batch.

        Args:
            x: inputs, shape ``(n,) + input_shape`` (a list or dict for several inputs); or
                batches, as :meth:`fit` takes them (their targets are not read).
            batch_size: samples per batch (default 32); None when x is made of batches.
            verbose: 'auto' or 1 (progress bar), 2 (one line at the end), 0 (silent).
            steps: predict the first this many batches only.
            callbacks: list of :class:`minidl.callbacks.Callback`.
        Returns:
            float array of shape ``(n,) + output_shape`` (probabilities for a softmax
            output); a list of them for several outputs.
        """
        verbose = _check_verbose(verbose)
        steps = _check_optional_count(steps, "steps")
        if is_batch_source(x):
            check_stream_arguments(x, "x", batch_size=batch_size)
            return self._predict_stream(x, verbose, steps, callbacks)
        batch_size = _check_batch_size(batch_size)
        if (verbose == 0 and steps is None and not callbacks and type(x) is np.ndarray
                and 0 < x.shape[0] <= batch_size and self.built
                and not self._uses_step_methods()):
            # One batch of one ready array (its dtype and shape, finite), no callbacks, no
            # progress bar: the pass itself, without the batching machinery (a one-sample
            # prediction takes tens of microseconds). The outputs are copies, as below.
            chain = self._dense_inference_chain()
            xs = self._fast_inputs(x, check_finite=chain is None)
            if xs is not None and chain is not None:
                # A chain of Dense layers checks its first product instead of x (see
                # run_inference_chain); None: the batching path below says what is wrong.
                self.stop_predicting = False
                with self._lock.shared:
                    out = run_inference_chain(chain, xs[0], check_input=True)
                if out is not None:
                    return out   # (made by the call: nothing else holds it)
            elif xs is not None:
                self.stop_predicting = False
                plan = self._plan(None if self._compiled is None else self._compiled.losses)
                with self._lock.shared:
                    values = [plan.run_chain(xs[0])] if plan.is_chain else \
                        plan.forward(xs, training=False)
                return _single_or_list([np.array(v) for v in values])
        inputs = self._input_arrays(x, check_finite=False)
        batcher = Batcher(Arrays(inputs), batch_size, self._input_dtypes(), read_only=True)
        steps = batcher.steps if steps is None else min(steps, batcher.steps)
        rows = min(steps * batch_size, batcher.n)
        outs = None   # allocated at the first batch, whose outputs give the sample shapes
        stepped = self._uses_step_methods()
        plan = contexts = checker = None
        if not stepped:
            plan = self._plan(None if self._compiled is None else self._compiled.losses)
            # NaN and infinities in x: found by the layer that reads it where it can count
            # them for free (Dense: see finds_nonfinite_input), else by a scan of x here;
            # either way reported by the scan, which names the first one.
            contexts = plan.inference_contexts()
            checker = plan.input_checker(contexts)
        if checker is None:
            for i, (x2d, sample_shape) in enumerate(inputs):
                check_finite_values(x2d.reshape((x2d.shape[0],) + tuple(sample_shape)),
                                    "x" if len(inputs) == 1 else
                                    f"x[{self.input_names[i]!r}]")
        cbs = CallbackList(callbacks, model=self, verbose=0, epochs=1, steps=steps)
        batch_logs = cbs.wants("on_predict_batch_end")
        bar = Progbar(steps, verbose=verbose) if verbose else None
        self.stop_predicting = False
        cbs.on_predict_begin()
        # Every batch sees the same weights (concurrency.py); predict_step's model calls take
        # the lock themselves.
        with contextlib.nullcontext() if stepped else self._lock.shared:
            for step in range(steps):
                cbs.on_predict_batch_begin(step)
                xs = batcher.batch(step)[0]
                start, stop = step * batch_size, step * batch_size + xs[0].shape[0]
                values = self._predict_step_values(xs) if stepped else \
                    plan.forward(xs, training=False, contexts=contexts)
                if checker is not None and checker.input_nonfinite:
                    x2d, sample_shape = inputs[0]
                    check_finite_values(x2d.reshape((x2d.shape[0],) + tuple(sample_shape)))
                    # The whole of x is finite (an overflow in the product, or non-finite
                    # weights): nothing left to find, so no scan per batch after this one.
                    checker.check_input = False
                    checker = None
                if outs is None:
                    outs = [np.empty((rows,) + v.shape[1:], v.dtype) for v in values]
                for out, value in zip(outs, values):
                    out[start:stop] = value
                if batch_logs:
                    batch_out = [out[start:stop] for out in outs]
                    cbs.on_predict_batch_end(step, {"outputs": _single_or_list(batch_out)})
                else:
                    cbs.on_predict_batch_end(step, None)
                if bar is not None:
                    bar.update(step + 1)
                if self.stop_predicting:
                    outs = [out[:stop] for out in outs]
                    break
        cbs.on_predict_end()
        if bar is not None:
            bar.finish()
        return _single_or_list(outs)

    def _predict_stream(self, x, verbose, steps, callbacks):
        """predict over batches made by the user: the outputs of each batch, joined."""
        source = StreamBatches(x, BatchConverter(self, "x", targets=False))
        source.require_steps(steps, "steps", "x")
        if not self.built:
            source.build_model()
        stepped = self._uses_step_methods()
        if not stepped:
            plan = self._plan(None if self._compiled is None else self._compiled.losses)
            contexts = plan.inference_contexts()
        count = steps or source.num_batches
        cbs = CallbackList(callbacks, model=self, verbose=0, epochs=1, steps=count)
        batch_logs = cbs.wants("on_predict_batch_end")
        bar = Progbar(count, verbose=verbose) if verbose else None
        chunks = []
        self.stop_predicting = False
        cbs.on_predict_begin()
        try:
            with contextlib.nullcontext() if stepped else self._lock.shared, \
                    contextlib.closing(source.eval_batches(steps)) as batches:
                for step, (xs, _, _) in enumerate(batches):
                    cbs.on_predict_batch_begin(step)
                    values = self._predict_step_values(xs) if stepped else \
                        plan.forward(xs, training=False, contexts=contexts)
                    # The plan's outputs live in buffers the next batch reuses.
                    chunks.append([np.array(value) for value in values])
                    cbs.on_predict_batch_end(step, {"outputs": _single_or_list(chunks[-1])}
                                             if batch_logs else None)
                    if bar is not None:
                        bar.update(step + 1)
                    if self.stop_predicting:
                        break
        finally:
            source.close()
        cbs.on_predict_end()
        if bar is not None:
            bar.finish()
        if not chunks:
            raise ValueError("predict() received no batches: x yielded none.")
        return _single_or_list([np.concatenate([chunk[i] for chunk in chunks])
                                for i in range(len(chunks[0]))])

    def _predict_step_values(self, xs):
        """``predict_step`` of one batch, as one array per output."""
        out = self.predict_step(self._step_data(xs, [], []))
        if isinstance(out, dict):
            out = [out[name] for name in self.output_names]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(v.value if isinstance(v, Tensor) else v) for v in out]

    # ---- one batch ----

    @one_at_a_time
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One gradient step on the batch ``(x, y)``.

        Args:
            x, y: one batch, as for :meth:`fit`.
            sample_weight: array ``(batch,)`` weighting each sample's loss.
            class_weight: dict mapping class index to weight.
            return_dict: return a dict instead of a list.
        Returns:
            The batch's loss (with regularization) and metrics, computed during the step
            (before the update): a float, a list ``[loss, metric1, ...]``, or a dict.
        """
        self._require_compiled("train_on_batch")
        arrays = self._checked_arrays(x, y, sample_weight, class_weight)
        batch = Batcher(arrays, arrays.n, self._input_dtypes()).batch(0)
        self._prepare_step()
        self._reset_metrics()
        with training_draws(global_rng().bit_generator.state, self.optimizer.iterations):
            self._train_step(*batch)
        return _results(self._logs(), return_dict)

    @one_at_a_time
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of the model on one batch, without updating it.

        Returns:
            A float, a list ``[loss, metric1, ...]``, or a dict with ``return_dict=True``.
        """
        self._require_compiled("test_on_batch")
        arrays = self._checked_arrays(x, y, sample_weight, None)
        batcher = Batcher(arrays, arrays.n, self._input_dtypes(), read_only=True)
        return _results(self._evaluate_batches(ArrayBatches(batcher), CallbackList(model=self)),
                        return_dict)

    def predict_on_batch(self, x):
        """Model outputs for one batch ``x``, in one pass."""
        # (predict checks x as it is)
        if type(x) is np.ndarray and x.ndim and x.shape[0] and self.built \
                and not self._uses_step_methods() and self._fast_inputs(x) is not None:
            return self.predict(x, batch_size=x.shape[0], verbose=0)
        inputs = self._input_arrays(x)
        return self.predict(x, batch_size=inputs[0][0].shape[0], verbose=0)


_RAN_OUT = ("Your input ran out of data; interrupting epoch after {run} of "
            "steps_per_epoch={steps} batches: the {n} training samples make {batches} "
            "batches of batch_size={batch_size} per pass, and this epoch reached the end of a "
            "pass. The next epoch starts a new pass.")

_NONFINITE = ("The training loss is {loss} in epoch {epoch}, so the weights are no longer "
              "finite; training goes on, as in Keras. Lower the learning rate or check the "
              "data, and pass callbacks=[minidl.callbacks.TerminateOnNaN()] to stop at the "
              "first such batch.")


def _end_test(cbs, logs, prefix):
    """Keras' end of an evaluation: on_test_end sees the plain keys, fit's epoch logs the
    prefixed ones."""
    cbs.on_test_end(logs)
    return {prefix + key: value for key, value in logs.items()} if prefix else logs


def _same_arrays(a, b):
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _check_not_both(sample_weight, class_weight):
    if sample_weight is not None and class_weight is not None:
        raise ValueError("You cannot pass class_weight and sample_weight at the same "
                         "time; multiply the class weights into sample_weight instead.")


def _single_or_list(values):
    return values[0] if len(values) == 1 else values


def _resume_epoch(epoch, initial_epoch, epochs, steps, batches):
    """The ``model._initial_epoch`` a callback set in on_train_begin, checked; warns when
    an uninterrupted run from ``initial_epoch`` would be inside a pass over the data at that
    epoch (with ``steps_per_epoch`` below a pass), since fit then starts a new pass."""
    epoch = _check_count(epoch, "model._initial_epoch", minimum=0)
    position = 0
    # (epochs bounds the loop; past it, no training; data made of batches always starts anew)
    if batches is not None and steps is not None and steps < batches and epoch < epochs:
        for _ in range(initial_epoch, epoch):
            position = (position + min(steps, batches - position)) % batches
    if position:
        warnings.warn(f"Resuming at epoch {epoch + 1}, where an uninterrupted run would be at "
                      f"batch {position} of a pass of {batches} batches (steps_per_epoch="
                      f"{steps}); the resumed run starts a new pass over the data, so its "
                      f"results will differ from an uninterrupted run's.", stacklevel=3)
    return epoch


def masked_loss_weights(sample_weight, mask, loss, output):
    """The sample weights of a loss on an output with a mask, as Keras' ``apply_mask``:
    masked entries weigh 0; with a mean reduction ('sum_over_batch_size', 'mean') the others
    weigh ``total / (valid + 1e-7)``, so the loss is the mean over the valid entries.

    Args:
        sample_weight: None or the batch's sample weights.
        mask: boolean array, the output's mask (``(batch, timesteps)``).
        loss: the output's loss object (its ``reduction`` decides the scaling).
        output: the output array (its dtype is the weights').
    """
    weights = mask.astype(output.dtype)
    if getattr(loss, "reduction", "sum_over_batch_size") in ("sum_over_batch_size", "mean"):
        weights *= weights.size / (weights.sum() + 1e-7)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=output.dtype)
        if sw.ndim == weights.ndim + 1 and sw.shape[-1] == 1:
            sw = sw.reshape(sw.shape[:-1])
        while sw.ndim < weights.ndim:
            sw = sw[..., None]
        weights = weights * sw
    return weights


def _batch_loss(loss, y, out, sample_weight):
    try:
        return loss(y, out, sample_weight=sample_weight)
    except ValueError:
        # A diverged model predicts NaN, which the loss refuses; its loss is NaN, as in Keras.
        if np.isnan(out).any():
            return math.nan
        raise


def _describe(value):
    length = f" of length {len(value)}" if isinstance(value, (tuple, list)) else ""
    return f"{type(value).__name__}{length}"


def _results(logs, return_dict):
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _should_validate(epoch, validation_freq):
    if isinstance(validation_freq, numbers.Integral):
        return (epoch + 1) % validation_freq == 0
    return epoch + 1 in validation_freq


def _check_validation_freq(validation_freq):
    if isinstance(validation_freq, bool):
        pass
    elif isinstance(validation_freq, numbers.Integral):
        if validation_freq >= 1:
            return
    elif isinstance(validation_freq, (list, tuple)) and all(
            isinstance(e, numbers.Integral) and not isinstance(e, bool) for e in validation_freq):
        return
    raise ValueError(f"validation_freq must be an int >= 1 (validate every that many epochs) "
                     f"or a list of epoch numbers counted from 1; received "
                     f"validation_freq={validation_freq!r}.")


def _check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; received {name}={value!r}.")
    return int(value)


def _check_optional_count(value, name):
    return None if value is None else _check_count(value, name)


def _check_batch_size(batch_size):
    return 32 if batch_size is None else _check_count(batch_size, "batch_size")


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    return int(verbose)
