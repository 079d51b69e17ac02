"""Keras 3's overridable steps: ``train_step``, ``test_step``, ``predict_step``, with
``compute_loss``, ``compute_metrics`` and ``metrics``.

A model that overrides one of the steps (a GAN with two optimizers, a VAE adding its KL
term), and every subclassed model (layers in ``__init__``, a ``call`` written with layers
and ops), trains through these, one batch per call: the step runs ``self(x)`` on a
:class:`~minidl.autodiff.GradientTape`, where built-in layers and losses are single
recorded ops with their compiled backward passes and user code is differentiated op by op.
Functional and Sequential models that override nothing keep the execution plan's compiled
step (``trainer.py``); both paths give the same updates.

What a step receives, as in Keras: ``x`` alone when fit has no targets, else ``(x, y)``, or
``(x, y, sample_weight)`` with sample weights; ``x`` is an array (a list or dict for several
inputs), and so are ``y`` and the weights per output. It returns a dict of metric values.
"""
import numpy as np

from minidl.autodiff import GradientTape, Tensor, record, wrap


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from what a step receives (Keras'
    ``keras.utils.unpack_x_y_sample_weight``)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data of a step must be x, (x,), (x, y) or (x, y, sample_weight); "
                     f"received a tuple of {len(data)} items.")


class TrainSteps:
    """The step methods of a model (mixed into :class:`minidl.Model`)."""

    # ---- the steps ----

    def train_step(self, data):
        """One training step on a batch, Keras' default: forward under a tape, the
        compiled loss, gradients, one optimizer update, metrics.

        Args:
            data: ``x``, ``(x, y)`` or ``(x, y, sample_weight)`` of one batch.
        Returns:
            Dict of metric names to values (``loss`` first).
        """
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        variables = self.trainable_weights
        if variables:
            grads = tape.gradient(loss, variables)
            self.optimizer.apply(grads, variables)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        """One evaluation step on a batch: forward, loss and metrics, no update."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=False)
        self._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        """The model's outputs for one batch of inputs."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # ---- what steps use ----

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The total loss of a batch as a 0-d Tensor (recorded when a tape is open): the
        compiled losses of the outputs, weighted, plus the model's own losses
        (regularization penalties, ``add_loss`` terms of the last call).

        Args:
            x: the inputs (unused by the default; overrides may use them).
            y: the targets (an array, or a list / dict per output).
            y_pred: the outputs, as ``self(x)`` returned them.
            sample_weight: optional weights (per output as ``y``).
            training: whether this is a training step.
        """
        total = None
        compiled = self._compiled_for(x, y_pred)
        if compiled is not None and y is not None:
            preds = self._per_output(y_pred, "y_pred")
            targets = self._per_output(y, "y")
            weights = self._per_output(sample_weight, "sample_weight", broadcast=True)
            for i, loss in enumerate(compiled.losses):
                if loss is None or targets[i] is None:
                    continue
                value = loss(targets[i], preds[i], sample_weight=weights[i])
                tracker = compiled.trackers[i]
                if tracker is not None:
                    tracker.update_state(float(value), sample_weight=_batch_size(preds[i]))
                weight = compiled.weights[i]
                if weight is not None and weight != 1.0:
                    value = value * weight
                total = value if total is None else total + value
        for term in self._loss_terms():
            total = term if total is None else total + term
        if total is None:
            return wrap(np.zeros((), np.float32))
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with a batch and return every metric's value
        (:meth:`get_metrics_result`)."""
        compiled = self._compiled_for(x, y_pred)
        if compiled is not None and y is not None:
            compiled.update_metrics(self._per_output(y, "y"), self._per_output(y_pred, "y_pred"))
        return self.get_metrics_result()

    def get_metrics_result(self):
        """``{name: value}`` of every metric in :attr:`metrics`, as Python floats (a
        metric whose result is a dict contributes its items)."""
        return pythonify_logs({m.name: m.result() for m in self.metrics})

    @property
    def metrics(self):
        """The model's metrics, as Keras lists them: the loss tracker ('loss'), the
        per-output loss trackers, the compiled metrics, then metrics assigned to the
        model's attributes. ``fit`` and ``evaluate`` reset them at the start of each
        epoch."""
        out = []
        compiled = self._compiled
        if compiled is not None:
            out.append(compiled.loss_tracker)
            out += [t for t in compiled.trackers if t is not None]
            out += compiled.all_metrics
        for metric in self.__dict__.get("_tracked_metrics", ()):
            if all(metric is not known for known in out):
                out.append(metric)
        return out

    def _compiled_for(self, x, y_pred):
        """The compiled losses and metrics, resolved against the model's outputs on first
        use: a subclassed model called by hand (``model(x)`` in a GradientTape loop) learns
        its outputs from ``y_pred`` (and its inputs from ``x``, when given) here. None when
        not compiled."""
        if self._compiled is None and self.compiled:
            if getattr(self, "_subclassed", False) and not self.outputs and y_pred is not None:
                from minidl.models import subclassed
                if x is not None and not self.inputs:
                    leaves = list(x.values()) if isinstance(x, dict) else \
                        list(x) if isinstance(x, (list, tuple)) else [x]
                    self._ensure_built_for([np.shape(v)[1:] for v in leaves],
                                           [np.asarray(v.value if isinstance(v, Tensor)
                                                       else v).dtype for v in leaves])
                if not self.outputs:
                    subclassed.set_outputs(self, y_pred)
            if self.outputs:
                self._compile_for_outputs()
        return self._compiled

    @property
    def _loss_tracker(self):
        if self._compiled is None:
            self._compile_for_outputs()
        return self._compiled.loss_tracker

    def _per_output(self, value, what, broadcast=False):
        """``value`` as one entry per output, from one value (one output), a list / tuple,
        or a dict keyed by output name."""
        names = self.output_names
        if len(names) == 1:
            return [value]
        if value is None:
            return [None] * len(names)
        if isinstance(value, dict):
            return [value.get(name) for name in names]
        if isinstance(value, (list, tuple)) and len(value) == len(names):
            return list(value)
        if broadcast:
            return [value] * len(names)
        raise ValueError(f"{what} must hold one entry per output of model '{self.name}' "
                         f"({names}); received {type(value).__name__}.")

    def _loss_terms(self):
        """The model's own loss terms as Tensors: each regularized layer's weight penalty
        (recorded, so its gradient reaches the weights) and the ``add_loss`` terms of the
        model's last call (those of every layer called inside it, each call's once)."""
        terms = [_penalty_tensor(layer) for layer in _all_layers(self)
                 if layer._weight_regularizers and layer.trainable]
        return terms + list(self._added_losses or ())


def _penalty_tensor(layer):
    """A layer's weight penalties as one recorded op on its variables."""
    items = [(layer._variables[i], r) for i, r in layer._weight_regularizers]
    value = float(sum(r(v.value) for v, r in items))

    def backward(g, needs):
        out = []
        for (variable, regularizer), need in zip(items, needs):
            if not need:
                out.append(None)
                continue
            grad = np.zeros_like(variable.value)
            regularizer.add_gradient(variable.value, grad, grad)
            out.append(grad * float(g))
        return tuple(out)
    return record("regularization", np.asarray(value, np.float32),
                  tuple(v for v, _ in items), backward)


def _all_layers(model):
    """Every layer inside ``model`` (graph layers, sublayers, nested models), each once."""
    out, seen, stack = [], set(), [model]
    while stack:
        layer = stack.pop()
        children = list(getattr(layer, "_layers", ())) + list(layer._sublayers)
        for child in reversed(children):
            if id(child) not in seen:
                seen.add(id(child))
                out.append(child)
                stack.append(child)
    return out


def _batch_size(x):
    while isinstance(x, (list, tuple)):
        x = x[0]
    if isinstance(x, dict):
        return _batch_size(next(iter(x.values())))
    return int(np.shape(x)[0]) if np.ndim(x) else 1


def pythonify_logs(logs):
    """A step's logs as ``{name: float}``: Tensors and arrays of one value become floats,
    nested dicts are flattened (Keras' rule)."""
    out = {}
    for key, value in logs.items():
        if isinstance(value, dict):
            out.update(pythonify_logs(value))
        elif isinstance(value, (Tensor, np.ndarray, np.generic, int, float)):
            out[key] = float(np.asarray(value.value if isinstance(value, Tensor) else value))
        else:
            out[key] = value
    return out
