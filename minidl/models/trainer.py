"""The Keras training API of a model: compile, fit, evaluate, predict and the *_on_batch calls.

One training step (``_train_step``) is
    forward through the layers -> fused loss and gradient (optionally sample-weighted)
    -> backward (the first trainable layer skips its input gradient)
    -> regularization penalties added to the loss and, in place, to the gradients
    -> one fused update per parameter -> running loss and metrics.
Every buffer it touches belongs to the layers, the Batcher or the model and is reused, and
everything that does not change from step to step (the loss method to call, the layers with
penalties) is decided once in ``_prepare_training``: a step does no Python work beyond that.

When the last layer ends in softmax (or sigmoid) and the loss is the matching
cross-entropy, the loss returns the gradient with respect to the logits directly, as the
two fuse to ``probs - onehot``; the activation's own backward is skipped.

A non-finite training loss does not raise, as in Keras: fit warns once and goes on (the
weights are then NaN); ``callbacks.TerminateOnNaN`` stops at the first such batch.

Threads: a training step holds the model's lock exclusively and inference holds it shared,
and fit / evaluate / the *_on_batch calls run one at a time (``models.concurrency``), so
calls from several threads give the results of the same calls made one after another.
"""
import math
import numbers
import warnings

import numpy as np

from minidl import losses as losses_module
from minidl import metrics as metrics_module
from minidl import optimizers as optimizers_module
from minidl.callbacks import CallbackList
from minidl.layers.base import BufferPool
from minidl.models.concurrency import one_at_a_time
from minidl.models.data import (Batcher, class_weight_to_sample_weight, prepare_sample_weight,
                                prepare_x, prepare_y, split_validation)
from minidl.utils.random import global_rng, training_draws


class Trainer:
    """Training and inference for a model with ``layers``, ``_forward(x)`` and
    ``_ensure_built(sample_shape)`` (see :class:`minidl.models.Sequential`)."""

    # ---- compile ----

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Configure the model for training.

        Args:
            optimizer: name (e.g. 'adam') or optimizer instance.
            loss: name (e.g. 'sparse_categorical_crossentropy') or loss instance.
            metrics: list of metric names or instances, e.g. ``['accuracy']``.
        """
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = None if loss is None else losses_module.get(loss)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list, e.g. ['accuracy']; received {metrics!r}.")
        self._metric_specs = list(metrics or [])
        self.compiled = True
        self._optimizer_built = False
        if self.built:
            self._prepare_training()

    def _prepare_training(self):
        """Resolve metrics, build the optimizer, and fix what every step calls."""
        self.metrics = [metrics_module.get(m, loss=self.loss, output_shape=self.output_shape)
                        for m in self._metric_specs]
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._params = [p for layer in self.layers if layer.trainable for p in layer.params]
        self._grads = [g for layer in self.layers if layer.trainable for g in layer.grads]
        if not self._optimizer_built:
            self.optimizer.build(self._params)
            self._optimizer_built = True
        trainable = [i for i, layer in enumerate(self.layers) if layer.trainable and layer.params]
        self._first_trainable = trainable[0] if trainable else len(self.layers)
        self._through_relu = _relu_then_max_pool(self.layers)
        # Of those pairs, the ones whose input gradient is never needed (up to the first
        # trainable layer) may pool without forming the layer's output (conv_pool.c).
        self._pool_directly = {i for i in self._through_relu if i - 1 <= self._first_trainable}
        last_activation = getattr(getattr(self.layers[-1], "activation", None), "name", None)
        fused = getattr(self.loss, "fused_with", None)
        self._fused = fused is not None and fused == last_activation
        if self.loss is not None:
            self._loss_step = (self.loss.forward_backward if not self._fused else
                               self.loss.softmax_forward_backward if fused == "softmax" else
                               self.loss.sigmoid_forward_backward)
        # Layers with regularizers only (has_regularization), so that the others cost nothing
        # per step: (penalty function, whether it adds to the gradients).
        regularized = [layer for layer in self.layers
                       if callable(getattr(layer, "regularization_loss", None))
                       and getattr(layer, "has_regularization", True)]
        self._penalties = [(layer.regularization_loss, layer.trainable) for layer in regularized]
        # Evaluation takes the activity penalties from its own forward pass (inference
        # records nothing on the layers), so of a layer with an activity regularizer it
        # asks for the weight penalties alone.
        self._weight_penalties = [
            layer.regularization_loss if getattr(layer, "activity_regularizer", None) is None
            else layer.weight_regularization_loss for layer in regularized]
        self._step_buffers = BufferPool(self.layers[-1].dtype)

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}().")
        if self.loss is None:
            raise RuntimeError(f"compile() was called without a loss; {what}() needs one, e.g. "
                               f"compile(loss='sparse_categorical_crossentropy').")

    @property
    def metrics_names(self):
        """'loss' and the compiled metrics' names: the keys of evaluate's results."""
        return ["loss"] + [m.name for m in self.metrics]

    # ---- one step ----

    def _train_step(self, xb, yb, wb=None):
        with self._lock.exclusive:   # inference in other threads waits (concurrency.py)
            self._train_step_unlocked(xb, yb, wb)

    def _train_step_unlocked(self, xb, yb, wb):
        h = xb
        i, count = 0, len(self.layers)
        while i < count:
            if i + 1 in self._through_relu:
                # A ReLU layer and the max pooling after it: the pooling takes the
                # maximum of the layer's linear part and adds the bias and the ReLU after
                # (both commute with the maximum), on a 4x smaller array.
                h = self.layers[i + 1].forward_after_relu_layer(
                    self.layers[i], h, directly=i + 1 in self._pool_directly)
                i += 2
            else:
                h = self.layers[i].forward(h, training=True)
                i += 1
        grad = self._step_buffers.get("grad", h.shape[0], h.shape[1:])
        loss_value = self._loss_step(yb, h, grad, wb)
        last = len(self.layers) - 1
        first = self._first_trainable
        if self._fused:
            g = self.layers[last].backward_preactivation(grad, need_input_grad=last > first)
            last -= 1
        else:
            g = grad
        i = last
        while i >= first:
            if i in self._through_relu and i - 1 >= first:
                # Max pooling after a ReLU layer: one scatter gives the gradient of that
                # layer's pre-activation (see _relu_then_max_pool).
                i -= 1
                g = self.layers[i + 1].backward_to_relu_layer(self.layers[i], g,
                                                               need_input_grad=i > first)
            else:
                g = self.layers[i].backward(g, need_input_grad=i > first)
            i -= 1
        for penalty, accumulate_grads in self._penalties:
            loss_value += penalty(accumulate_grads)
        self.optimizer.apply(self._grads, self._params)
        for metric in self.metrics:
            metric.update_state(yb, h)
        self._loss_tracker.update_state(loss_value, sample_weight=h.shape[0])

    def _regularization_penalty(self, activity):
        """The regularizers' total penalty, without gradients: the weight penalties and the
        ``activity`` penalties of an inference forward pass (evaluation adds it to each
        batch's loss, as Keras adds ``model.losses``)."""
        return float(sum(penalty(False) for penalty in self._weight_penalties) + sum(activity))

    def _logs(self, prefix=""):
        logs = {prefix + "loss": self._loss_tracker.result()}
        for metric in self.metrics:
            logs[prefix + metric.name] = metric.result()
        return logs

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for metric in self.metrics:
            metric.reset_state()

    def reset_metrics(self):
        """Reset the running loss and metrics."""
        if self.compiled and self.built:
            self._reset_metrics()

    # ---- data ----

    def _targets_and_weights(self, x, y, sample_weight, class_weight):
        """Checked (x2d, sample_shape, y, sample_weight or None) of a fit / *_on_batch call."""
        x2d, sample_shape = prepare_x(x, self.input_shape)
        self._ensure_built(sample_shape)
        n = x2d.shape[0]
        dtype = self.layers[-1].dtype
        y_arr = prepare_y(y, n, self.loss, self.output_shape, dtype=dtype)
        if sample_weight is not None and class_weight is not None:
            raise ValueError("You cannot pass class_weight and sample_weight at the same "
                             "time; multiply the class weights into sample_weight instead.")
        sw = None if sample_weight is None else prepare_sample_weight(sample_weight, n, dtype)
        return x2d, sample_shape, y_arr, sw

    def _class_weights(self, class_weight, y_arr):
        return class_weight_to_sample_weight(class_weight, y_arr, self.output_shape[-1],
                                             self.layers[-1].dtype)

    def _validation_batcher(self, validation_data, batch_size):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(f"validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             f"val_sample_weight); received {_describe(validation_data)}.")
        vx, vs = prepare_x(validation_data[0], self.input_shape, name="validation_data x")
        dtype = self.layers[-1].dtype
        vy = prepare_y(validation_data[1], vx.shape[0], self.loss, self.output_shape,
                       name="validation_data y", dtype=dtype)
        vw = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            vw = prepare_sample_weight(validation_data[2], vx.shape[0], dtype,
                                       name="validation_data sample_weight")
        return Batcher(vx, vs, vy, batch_size, self.layers[0].dtype, vw)

    # ---- fit ----

    @one_at_a_time
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train the model on ``(x, y)``, epochs ``initial_epoch`` to ``epochs - 1``.

        Args:
            x: inputs, shape ``(n,) + input_shape``; int or float (converted per batch).
            y: targets: class labels (n,) for sparse losses, else ``(n,) + output_shape``.
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
                evaluated at the end of an epoch.
            shuffle: reshuffle the training samples before every pass over them. The order
                (and unseeded dropout) comes from a stream derived from the global random
                generator's state when fit starts and the optimizer's step count
                (``minidl.utils.random``); fit does not advance the global generator.
            class_weight: dict mapping each class index in y to a weight; the loss of a
                sample is multiplied by its class's weight.
            sample_weight: array ``(n,)``: the loss of each sample is multiplied by its
                weight (the loss stays a sum over the batch divided by the batch size).
            initial_epoch: the epoch to start from (to resume a previous run). A callback
                may override it from ``on_train_begin`` by setting ``model._initial_epoch``
                (as in Keras; :class:`minidl.callbacks.BackupAndRestore` does, after
                restoring a backup).
            steps_per_epoch: batches per epoch; the next epoch continues where the previous
                one stopped, and a pass over the data ends an epoch early (with a warning).
            validation_steps: validate on the first this many batches only.
            validation_batch_size: batch size of validation (default: batch_size).
            validation_freq: validate every this many epochs (an int), or after the epochs
                (counted from 1) in a list.
        Returns:
            A :class:`minidl.callbacks.History`; ``history.history`` maps 'loss', metric
            names and their 'val_' versions to per-epoch lists.
        """
        self._require_compiled("fit")
        epochs = _check_count(epochs, "epochs", minimum=0)
        initial_epoch = _check_count(initial_epoch, "initial_epoch", minimum=0)
        verbose = _check_verbose(verbose)
        steps_per_epoch = _check_optional_count(steps_per_epoch, "steps_per_epoch")
        validation_steps = _check_optional_count(validation_steps, "validation_steps")
        _check_validation_freq(validation_freq)
        x2d, sample_shape, y_arr, sw = self._targets_and_weights(x, y, sample_weight,
                                                                 class_weight)
        held_out = None
        if validation_data is None and validation_split:
            # Keras cuts the last fraction off before shuffling, so it never trains on it.
            split_at = split_validation(validation_split, x2d.shape[0])
            held_out = (x2d[split_at:], y_arr[split_at:], None if sw is None else sw[split_at:])
            x2d, y_arr = x2d[:split_at], y_arr[:split_at]
            sw = None if sw is None else sw[:split_at]
        if class_weight is not None:
            sw = self._class_weights(class_weight, y_arr)
        n = x2d.shape[0]
        if batch_size is None and steps_per_epoch is not None:
            batch_size = -(-n // steps_per_epoch)
        batch_size = _check_batch_size(batch_size)
        val_batch_size = _check_optional_count(validation_batch_size,
                                               "validation_batch_size") or batch_size
        val = None
        if validation_data is not None:
            val = self._validation_batcher(validation_data, val_batch_size)
        elif held_out is not None:
            vx, vy, vw = held_out
            val = Batcher(vx, sample_shape, vy, val_batch_size, self.layers[0].dtype, vw)
        batcher = Batcher(x2d, sample_shape, y_arr, batch_size, self.layers[0].dtype, sw)
        steps = steps_per_epoch or batcher.steps

        if isinstance(callbacks, CallbackList):
            callbacks = callbacks.callbacks
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps)
        train_step = self._train_step
        batch_begin, batch_end = cbs.on_train_batch_begin, cbs.on_train_batch_end
        batch_logs = cbs.wants("on_train_batch_end")
        position = 0      # batches of the current pass over the data already trained on
        order = None
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
                                              steps, batcher.steps)
            # The training stream's root (utils/random.py), read after on_train_begin, where
            # BackupAndRestore restores the global generator.
            root = global_rng().bit_generator.state
            for epoch in range(initial_epoch, epochs):
                self._reset_metrics()
                cbs.on_epoch_begin(epoch)
                with training_draws(root, self.optimizer.iterations) as draws:
                    if position == 0:
                        order = draws.get().permutation(batcher.n) if shuffle else None
                    run = min(steps, batcher.steps - position)
                    for step in range(run):
                        batch_begin(step)
                        train_step(*batcher.batch(position + step, order))
                        batch_end(step, self._logs() if batch_logs else None)
                        if self.stop_training:
                            run = step + 1
                            break
                    else:
                        if run < steps:
                            warnings.warn(_RAN_OUT.format(run=run, steps=steps, n=n,
                                                          batches=batcher.steps,
                                                          batch_size=batch_size), stacklevel=2)
                position = (position + run) % batcher.steps
                logs = self._logs()
                if not (warned_nonfinite or self.stop_training or math.isfinite(logs["loss"])):
                    warnings.warn(_NONFINITE.format(loss=logs["loss"], epoch=epoch + 1),
                                  RuntimeWarning, stacklevel=2)
                    warned_nonfinite = True
                if val is not None and _should_validate(epoch, validation_freq):
                    logs.update(self._evaluate_batches(val, cbs, "val_", validation_steps))
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            self._in_fit = False
            self._fit_validates = False
            self._initial_epoch = None
        return cbs.history

    # ---- evaluation and inference ----

    def _evaluate_batches(self, batcher, cbs, prefix="", steps=None):
        self._reset_metrics()
        self.stop_evaluating = False
        cbs.on_test_begin()
        batch_logs = cbs.wants("on_test_batch_end")
        for step in range(batcher.steps if steps is None else min(steps, batcher.steps)):
            cbs.on_test_batch_begin(step)
            xb, yb, wb = batcher.batch(step)
            activity = [] if self._penalties else None
            out = self._forward(xb, activity)
            loss = _batch_loss(self.loss, yb, out, wb)
            if self._penalties:
                loss += self._regularization_penalty(activity)
            self._loss_tracker.update_state(loss, sample_weight=out.shape[0])
            for metric in self.metrics:
                metric.update_state(yb, out)
            cbs.on_test_batch_end(step, self._logs() if batch_logs else None)
            if self.stop_evaluating:
                break
        logs = self._logs(prefix)
        cbs.on_test_end(logs)
        return logs

    @one_at_a_time
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics on ``(x, y)``.

        Args:
            x, y: as for :meth:`fit`.
            batch_size: samples per batch (default 32).
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
        batch_size = _check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        steps = _check_optional_count(steps, "steps")
        x2d, sample_shape, y_arr, sw = self._targets_and_weights(x, y, sample_weight, None)
        batcher = Batcher(x2d, sample_shape, y_arr, batch_size, self.layers[0].dtype, sw)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                           epochs=1, steps=batcher.steps if steps is None else
                           min(steps, batcher.steps))
        return _results(self._evaluate_batches(batcher, cbs, steps=steps), return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for ``x``, computed batch by batch.

        Args:
            x: inputs, shape ``(n,) + input_shape``.
            batch_size: samples per batch (default 32).
            verbose: accepted for Keras compatibility; predict prints nothing.
            steps: predict the first this many batches only.
            callbacks: list of :class:`minidl.callbacks.Callback`.
        Returns:
            float array of shape ``(n,) + output_shape`` (probabilities for a softmax output).
        """
        batch_size = _check_batch_size(batch_size)
        _check_verbose(verbose)
        steps = _check_optional_count(steps, "steps")
        x2d, sample_shape = prepare_x(x, self.input_shape)
        self._ensure_built(sample_shape)
        batcher = Batcher(x2d, sample_shape, None, batch_size, self.layers[0].dtype)
        steps = batcher.steps if steps is None else min(steps, batcher.steps)
        rows = min(steps * batch_size, x2d.shape[0])
        out = np.empty((rows,) + tuple(self.output_shape), self.layers[-1].dtype)
        cbs = CallbackList(callbacks, model=self, verbose=0, epochs=1, steps=steps)
        batch_logs = cbs.wants("on_predict_batch_end")
        self.stop_predicting = False
        cbs.on_predict_begin()
        with self._lock.shared:   # every batch sees the same weights (concurrency.py)
            for step in range(steps):
                cbs.on_predict_batch_begin(step)
                xb = batcher.batch(step)[0]
                start = step * batch_size
                out[start:start + xb.shape[0]] = self._forward(xb)
                cbs.on_predict_batch_end(step, {"outputs": out[start:start + xb.shape[0]]}
                                         if batch_logs else None)
                if self.stop_predicting:
                    out = out[:start + xb.shape[0]]
                    break
        cbs.on_predict_end()
        return out

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
        x2d, sample_shape, y_arr, sw = self._targets_and_weights(x, y, sample_weight,
                                                                 class_weight)
        if class_weight is not None:
            sw = self._class_weights(class_weight, y_arr)
        batch = Batcher(x2d, sample_shape, y_arr, x2d.shape[0], self.layers[0].dtype,
                        sw).batch(0)
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
        x2d, sample_shape, y_arr, sw = self._targets_and_weights(x, y, sample_weight, None)
        batcher = Batcher(x2d, sample_shape, y_arr, x2d.shape[0], self.layers[0].dtype, sw)
        return _results(self._evaluate_batches(batcher, CallbackList(model=self)), return_dict)

    def predict_on_batch(self, x):
        """Model outputs for one batch ``x``, in one pass."""
        x2d, _ = prepare_x(x, self.input_shape)
        return self.predict(x, batch_size=x2d.shape[0], verbose=0)


_RAN_OUT = ("Your input ran out of data; interrupting epoch after {run} of "
            "steps_per_epoch={steps} batches: the {n} training samples make {batches} "
            "batches of batch_size={batch_size} per pass, and this epoch reached the end of a "
            "pass. The next epoch starts a new pass.")

_NONFINITE = ("The training loss is {loss} in epoch {epoch}, so the weights are no longer "
              "finite; training goes on, as in Keras. Lower the learning rate or check the "
              "data, and pass callbacks=[minidl.callbacks.TerminateOnNaN()] to stop at the "
              "first such batch.")


def _relu_then_max_pool(layers):
    """Indices of the max-pooling layers that directly follow a layer computing
    ``relu(linear(x) + b)`` (Conv2D(..., activation='relu') then MaxPooling2D, the usual CNN
    block). Training runs such a pair as one:
        forward:  the pooling takes the maximum of each window of ``linear(x)`` and applies
                  the bias and the ReLU to the maxima: max(relu(z + b)) = relu(max(z) + b)
                  exactly (float addition and the ReLU are monotonic), so the bias and ReLU
                  pass over the un-pooled output, 4x the size of the pooled one, is skipped;
        backward: the pooling's scatter gives the gradient of the ReLU's input directly
                  (the pooled output is positive exactly where the ReLU passes gradient),
                  and the ReLU's own backward pass is skipped.
    Outputs and gradients are the same bits as running the layers one by one.
    """
    fused = set()
    for i in range(1, len(layers)):
        producer, pool = layers[i - 1], layers[i]
        activation = getattr(producer, "activation", None)
        if (hasattr(pool, "forward_after_relu_layer") and
                hasattr(producer, "forward_linear") and
                hasattr(producer, "backward_preactivation") and activation is not None and
                activation.kernel_params()[0] == "relu" and
                getattr(producer, "activity_regularizer", None) is None):
            fused.add(i)
    return fused


def _resume_epoch(epoch, initial_epoch, epochs, steps, batches):
    """The ``model._initial_epoch`` a callback set in on_train_begin, checked; warns when
    an uninterrupted run from ``initial_epoch`` would be inside a pass over the data at that
    epoch (with ``steps_per_epoch`` below a pass), since fit then starts a new pass."""
    epoch = _check_count(epoch, "model._initial_epoch", minimum=0)
    position = 0
    if steps < batches and epoch < epochs:   # (epochs bounds the loop; past it, no training)
        for _ in range(initial_epoch, epoch):
            position = (position + min(steps, batches - position)) % batches
    if position:
        warnings.warn(f"Resuming at epoch {epoch + 1}, where an uninterrupted run would be at "
                      f"batch {position} of a pass of {batches} batches (steps_per_epoch="
                      f"{steps}); the resumed run starts a new pass over the data, so its "
                      f"results will differ from an uninterrupted run's.", stacklevel=3)
    return epoch


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
