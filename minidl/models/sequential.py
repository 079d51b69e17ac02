"""Sequential: a linear stack of layers with the Keras training API.

compile() resolves strings to a loss, an optimizer and metrics; fit() runs epochs of
    gather batch -> forward through the layers -> fused loss and gradient -> backward
    (the first trainable layer skips its input gradient) -> one fused update per parameter.
All buffers of a step belong to the layers, the batcher and the model and are reused, so a
steady-state step allocates nothing large.

When the last layer ends in softmax (or sigmoid) and the loss is the matching
cross-entropy, the loss returns the gradient with respect to the logits directly, as the
two fuse to ``probs - onehot``; the activation's own backward is skipped.
"""
import numpy as np

from minidl import losses as losses_module
from minidl import metrics as metrics_module
from minidl import optimizers as optimizers_module
from minidl._core import _data
from minidl.callbacks import CallbackList, History, ProgbarLogger
from minidl.layers.base import BufferPool, Layer
from minidl.layers.core import InputLayer
from minidl.models.data import Batcher, prepare_x, prepare_y
from minidl.utils.random import global_rng


class Sequential:
    """A model that applies its layers one after another.

    Args:
        layers: optional list of layers; an ``Input(shape)`` first, or a first layer with
            ``input_shape=``, builds the model at once. Otherwise it builds on first data.
        name: optional model name.

    Example:
        >>> model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
        ...                     Dense(10, activation="softmax")])
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])
        >>> history = model.fit(x_train, y_train, epochs=2, validation_data=(x_val, y_val))
    """

    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self.layers = []
        self.input_shape = None  # sample shape, without the batch dimension
        self.built = False
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.history = None
        self.stop_training = False
        self._in_fit = False
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----

    def add(self, layer):
        """Append a layer (or an ``Input``) to the stack."""
        if isinstance(layer, InputLayer):
            if self.layers or self.input_shape is not None:
                raise ValueError("Input(...) must come first in a Sequential model.")
            self.input_shape = layer.input_shape
            self._build_layers()
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {layer!r} of type "
                            f"{type(layer).__name__}.")
        if any(layer is other for other in self.layers):
            raise ValueError(f"Layer '{layer.name}' is already in this model.")
        adopted = not self.layers and self.input_shape is None and layer.input_shape is not None
        if adopted:
            self.input_shape = layer.input_shape
        self.layers.append(layer)
        self.built = False
        if self.input_shape is not None:
            try:
                self._build_layers()
            except Exception:  # a layer that cannot follow the stack is not added
                self.layers.pop()
                if adopted:
                    self.input_shape = None
                else:
                    self._build_layers()
                raise

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (with the batch dim, Keras style)."""
        if input_shape is not None:
            input_shape = tuple(input_shape)[1:]
            if self.input_shape is not None and input_shape != self.input_shape:
                raise ValueError(f"Model '{self.name}' expects input shape "
                                 f"{(None,) + self.input_shape}; received {(None,) + input_shape}.")
            self._build_for(input_shape)
            return
        if self.input_shape is None:
            raise ValueError("Cannot build the model without an input shape: pass "
                             "input_shape=(None, features) or start with Input((features,)).")
        self._build_layers()

    def _build_for(self, sample_shape):
        """Adopt ``sample_shape`` and build; a failed build leaves the shape unset, so the
        user can retry with corrected data."""
        had_shape = self.input_shape is not None
        self.input_shape = tuple(sample_shape)
        try:
            self._build_layers()
        except Exception:
            if not had_shape:
                self.input_shape = None
            raise

    def _build_layers(self):
        shape = self.input_shape
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        self.output_shape = shape
        self.built = bool(self.layers)
        if self.built and self.compiled:
            self._prepare_training()

    def _ensure_built(self, sample_shape):
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers; add some before using it.")
        if not self.built:
            if self.input_shape is None:
                self._build_for(sample_shape)
            else:
                self._build_layers()

    @property
    def weights(self):
        return [p for layer in self.layers for p in layer.params]

    @property
    def trainable_weights(self):
        return [p for layer in self.layers if layer.trainable for p in layer.params]

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self):
        """Copies of all parameters in Keras order: layer by layer, kernel then bias."""
        return [p.copy() for p in self.weights]

    def set_weights(self, weights):
        """Set all parameters from a list in the order of :meth:`get_weights`."""
        weights = list(weights)
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             f"set; give the first layer input_shape=, start with Input(...), "
                             f"or call build() first. Received {len(weights)} arrays.")
        expected = sum(len(layer.params) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"Model '{self.name}' has {expected} weight arrays; received "
                             f"{len(weights)}.")
        checked, i = [], 0
        for layer in self.layers:  # check every layer first, so a failed call changes nothing
            checked.append(layer.check_weights(weights[i:i + len(layer.params)]))
            i += len(layer.params)
        for layer, values in zip(self.layers, checked):
            for param, value in zip(layer.params, values):
                param[...] = value

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
        """Resolve metrics, build the optimizer and decide the loss/activation fusion."""
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
        last = self.layers[-1]
        fused = getattr(self.loss, "fused_with", None)
        last_activation = getattr(getattr(last, "activation", None), "name", None)
        self._fused = fused is not None and fused == last_activation
        self._step_buffers = BufferPool(self.layers[-1].dtype)

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before {what}().")
        if self.loss is None:
            raise RuntimeError(f"compile() was called without a loss; {what}() needs one, e.g. "
                               f"compile(loss='sparse_categorical_crossentropy').")

    # ---- training ----

    def _train_step(self, xb, yb):
        h = xb
        for layer in self.layers:
            h = layer.forward(h, training=True)
        grad = self._step_buffers.get("grad", h.shape[0], h.shape[1:])
        last = len(self.layers) - 1
        first = self._first_trainable
        if self._fused:
            fuse = (self.loss.softmax_forward_backward if self.loss.fused_with == "softmax"
                    else self.loss.sigmoid_forward_backward)
            loss_value = fuse(yb, h, grad)
            g = self.layers[last].backward_preactivation(grad, need_input_grad=last > first)
            last -= 1
        else:
            loss_value = self.loss.forward_backward(yb, h, grad)
            g = grad
        for i in range(last, first - 1, -1):
            g = self.layers[i].backward(g, need_input_grad=i > first)
        if not np.isfinite(loss_value):
            raise FloatingPointError(
                f"The training loss became {loss_value}; lower the learning rate or check the "
                f"data for extreme values.")
        self.optimizer.apply(self._grads, self._params)
        for metric in self.metrics:
            metric.update_state(yb, h)
        self._loss_tracker.update_state(loss_value, sample_weight=h.shape[0])

    def _logs(self, prefix=""):
        logs = {prefix + "loss": self._loss_tracker.result()}
        for metric in self.metrics:
            logs[prefix + metric.name] = metric.result()
        return logs

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for metric in self.metrics:
            metric.reset_state()

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_data=None, shuffle=True):
        """Train the model for ``epochs`` passes over ``(x, y)``.

        Args:
            x: inputs, shape ``(n,) + input_shape``; int or float (converted per batch).
            y: targets: class labels (n,) for sparse losses, else ``(n,) + output_shape``.
            batch_size: samples per gradient step (default 32).
            epochs: number of passes over the data.
            verbose: 'auto' or 1 (progress bar), 2 (one line per epoch), 0 (silent).
            callbacks: list of :class:`minidl.callbacks.Callback`.
            validation_data: ``(x_val, y_val)`` evaluated at the end of every epoch.
            shuffle: reshuffle the samples before every epoch.
        Returns:
            A :class:`History`; ``history.history`` maps 'loss', metric names and their
            'val_' versions to per-epoch lists.
        """
        self._require_compiled("fit")
        batch_size = _check_batch_size(batch_size)
        epochs = _check_count(epochs, "epochs", minimum=0)
        verbose = _check_verbose(verbose)
        x2d, sample_shape = prepare_x(x, self.input_shape)
        self._ensure_built(sample_shape)
        y_arr = prepare_y(y, x2d.shape[0], self.loss, self.output_shape,
                          dtype=self.layers[-1].dtype)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val); received "
                                 f"{type(validation_data).__name__}.")
            vx, vs = prepare_x(validation_data[0], self.input_shape, name="validation_data x")
            vy = prepare_y(validation_data[1], vx.shape[0], self.loss, self.output_shape,
                           name="validation_data y", dtype=self.layers[-1].dtype)
            val = Batcher(vx, vs, vy, batch_size, self.layers[0].dtype)
        batcher = Batcher(x2d, sample_shape, y_arr, batch_size, self.layers[0].dtype)

        history = History()
        cb_list = [history] + list(callbacks or [])
        if verbose:
            cb_list.append(ProgbarLogger())
        cbs = CallbackList(cb_list, self, {"epochs": epochs, "steps": batcher.steps,
                                           "verbose": verbose})
        rng = global_rng()
        self.stop_training = False
        self._in_fit = True
        try:
            cbs.on_train_begin()
            batch_logs = cbs.wants("on_train_batch_end")
            for epoch in range(epochs):
                self._reset_metrics()
                cbs.on_epoch_begin(epoch)
                order = batcher.order(shuffle, rng)
                for step in range(batcher.steps):
                    cbs.on_train_batch_begin(step)
                    self._train_step(*batcher.batch(step, order))
                    cbs.on_train_batch_end(step, self._logs() if batch_logs else None)
                    if self.stop_training:
                        break
                logs = self._logs()
                if val is not None:
                    logs.update(self._evaluate_batches(val, cbs, prefix="val_"))
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            cbs.on_train_end(logs if epochs else {})
        finally:
            self._in_fit = False
        return history

    # ---- evaluation and inference ----

    def _evaluate_batches(self, batcher, cbs, prefix=""):
        self._reset_metrics()
        cbs.on_test_begin()
        for step in range(batcher.steps):
            cbs.on_test_batch_begin(step)
            xb, yb = batcher.batch(step)
            out = self._forward(xb)
            self._loss_tracker.update_state(self.loss(yb, out), sample_weight=out.shape[0])
            for metric in self.metrics:
                metric.update_state(yb, out)
            cbs.on_test_batch_end(step, self._logs())
        logs = self._logs(prefix)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", callbacks=None,
                 return_dict=False):
        """Loss and metrics on ``(x, y)``.

        Returns:
            ``[loss, metric1, ...]`` (just the loss when there are no metrics), or a dict
            ``{'loss': ..., 'accuracy': ...}`` with ``return_dict=True``.
        """
        self._require_compiled("evaluate")
        batch_size = _check_batch_size(batch_size)
        verbose = _check_verbose(verbose)
        x2d, sample_shape = prepare_x(x, self.input_shape)
        self._ensure_built(sample_shape)
        y_arr = prepare_y(y, x2d.shape[0], self.loss, self.output_shape,
                          dtype=self.layers[-1].dtype)
        batcher = Batcher(x2d, sample_shape, y_arr, batch_size, self.layers[0].dtype)
        cb_list = list(callbacks or []) + ([ProgbarLogger()] if verbose else [])
        cbs = CallbackList(cb_list, self, {"steps": batcher.steps, "verbose": verbose})
        logs = self._evaluate_batches(batcher, cbs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _forward(self, x):
        h = x
        for layer in self.layers:
            h = layer.forward(h, training=False)
        return h

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Model outputs for ``x``, computed batch by batch.

        Returns:
            float array of shape ``(n,) + output_shape`` (probabilities for a softmax output).
        """
        batch_size = _check_batch_size(batch_size)
        _check_verbose(verbose)
        x2d, sample_shape = prepare_x(x, self.input_shape)
        self._ensure_built(sample_shape)
        batcher = Batcher(x2d, sample_shape, None, batch_size, self.layers[0].dtype)
        out = np.empty((x2d.shape[0],) + tuple(self.output_shape), self.layers[-1].dtype)
        cbs = CallbackList(list(callbacks or []), self, {"steps": batcher.steps, "verbose": 0})
        cbs.on_predict_begin()
        for step in range(batcher.steps):
            cbs.on_predict_batch_begin(step)
            xb, _ = batcher.batch(step)
            start = step * batch_size
            out[start:start + xb.shape[0]] = self._forward(xb)
            cbs.on_predict_batch_end(step, None)
        cbs.on_predict_end()
        return out

    def __call__(self, x, training=False):
        """Outputs for a small input in one pass (use predict for large data)."""
        if training:
            raise ValueError("Calling a model with training=True is not supported; use fit().")
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers; add some before using it.")
        arr = np.asarray(x)
        if self.built and arr.dtype == self.layers[0].dtype and arr.shape[1:] == self.input_shape \
                and arr.shape[0] > 0 and arr.flags.c_contiguous:
            bad, _ = _data.count_nonfinite(arr)
            if not bad:
                return self._forward(arr)
        x2d, sample_shape = prepare_x(arr, self.input_shape)
        self._ensure_built(sample_shape)
        return self._forward(x2d.astype(self.layers[0].dtype, copy=False).reshape(
            (x2d.shape[0],) + sample_shape))

    # ---- display ----

    def summary(self, print_fn=None):
        """Print a Keras-style table of layers, output shapes and parameter counts."""
        print_fn = print_fn or print
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = self.input_shape
        for layer in self.layers:
            out = layer.compute_output_shape(shape) if shape is not None else None
            shape = out
            out_text = "?" if out is None else str((None,) + tuple(out))
            rows.append((f"{layer.name} ({type(layer).__name__})", out_text,
                         f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        widths = [max(w, m) for w, m in zip(widths, (28, 24, 12))]
        line = "─" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            print_fn(line if i == 0 or i == len(rows) - 1 else "")
        total = self.count_params()
        trainable = sum(layer.count_params() for layer in self.layers if layer.trainable)
        print_fn(f" Total params: {total:,}")
        print_fn(f" Trainable params: {trainable:,}")
        print_fn(f" Non-trainable params: {total - trainable:,}")


def _check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; received {name}={value!r}.")
    return int(value)


def _check_batch_size(batch_size):
    return 32 if batch_size is None else _check_count(batch_size, "batch_size")


def _check_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received verbose={verbose!r}.")
    return int(verbose)
