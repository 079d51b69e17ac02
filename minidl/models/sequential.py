"""Sequential: a linear stack of layers with the Keras training API.

This file holds the structure: adding and building layers, weights in Keras order, calling
the model and its summary. Training and inference (compile, fit, evaluate, predict and the
*_on_batch calls) come from :class:`minidl.models.trainer.Trainer`.

A layer's weights are its trainable ``params`` followed by its ``non_trainable_params``
(state such as BatchNormalization's moving statistics, which no gradient updates); the
model's weights are its layers' in order.
"""
import numpy as np

from minidl._core import _data
from minidl.layers.base import Layer
from minidl.layers.core import InputLayer
from minidl.models.concurrency import ModelLock
from minidl.models.data import prepare_x
from minidl.models.trainer import Trainer


_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}

class Sequential(Trainer):
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
        self.metrics = []
        self.history = None
        self.stop_training = False     # set by a callback to end fit
        self.stop_evaluating = False   # ... to end evaluate
        self.stop_predicting = False   # ... to end predict
        self._in_fit = False
        self._fit_validates = False
        self._lock = ModelLock()   # see minidl.models.concurrency
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----

    def add(self, layer):
        """Append a layer (or an ``Input``) to the stack.

        When the stack's input shape is known, the layer is built at once on top of the
        stack's output; a layer that cannot follow it raises and is not added, leaving the
        model as it was.
        """
        if isinstance(layer, InputLayer):
            if self.layers or self.input_shape is not None:
                raise ValueError("Input(...) must come first in a Sequential model.")
            self.input_shape = layer.input_shape
            self._build_layers()
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {layer!r} of type "
                            f"{type(layer).__name__}.")
        if self._holds(layer):
            raise ValueError(f"Layer '{layer.name}' is already in this model.")
        adopted = not self.layers and self.input_shape is None and layer.input_shape is not None
        if adopted:
            self.input_shape = layer.input_shape
        if self.input_shape is None:
            self.layers.append(layer)
            self._layer_ids.add(id(layer))
            self.built = False
            return
        try:
            self._build_on_top(layer)
        except Exception:  # a layer that cannot follow the stack is not added
            if adopted:
                self.input_shape = None
            raise
        self._layer_ids.add(id(layer))

    def _holds(self, layer):
        """Whether ``layer`` is in the stack, in O(1): a set of ids beside ``layers``
        (rebuilt when ``layers`` was changed behind ``add``'s back), so that adding n
        layers does not compare each with all those before it."""
        ids = getattr(self, "_layer_ids", None)
        if ids is None or len(ids) != len(self.layers):
            ids = self._layer_ids = {id(other) for other in self.layers}
        return id(layer) in ids and any(layer is other for other in self.layers)

    def _build_on_top(self, layer):
        """Build ``layer`` for the stack's output shape and append it. Only the new layer is
        built, so a model of n layers (a loaded config) is built in O(n), not O(n^2)."""
        if self.layers and not self.built:
            self._build_layers()
        shape = self.output_shape if self.layers else self.input_shape
        layer.ensure_built(shape)
        output_shape = tuple(layer.compute_output_shape(shape))
        previous = (self.built, getattr(self, "output_shape", None))
        self.layers.append(layer)
        self.output_shape, self.built = output_shape, True
        if self.compiled:
            try:
                self._prepare_training()
            except Exception:
                self.layers.pop()
                self.built, self.output_shape = previous
                if self.built:
                    self._prepare_training()
                raise

    def build(self, input_shape=None):
        """Build every layer for inputs of ``input_shape`` (with the batch dim, Keras style)."""
        if input_shape is not None:
            input_shape = _sample_shape(input_shape, self.name)
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
            with self._lock.exclusive:   # two threads' first calls build it once
                if self.built:
                    return
                if self.input_shape is None:
                    self._build_for(sample_shape)
                else:
                    self._build_layers()

    @property
    def weights(self):
        """All weight arrays (live), layer by layer in Keras order."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """Layers' state (e.g. moving statistics) and the parameters of frozen layers."""
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def count_params(self):
        """Number of scalars in all weights, trainable or not."""
        return int(sum(w.size for w in self.weights))

    def get_weights(self):
        """Copies of all weights in Keras order: layer by layer, e.g. kernel then bias, and
        a layer's non-trainable state after its parameters."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set all weights from a list in the order of :meth:`get_weights`."""
        weights = list(weights)
        if not self.built:
            raise ValueError(f"Model '{self.name}' is not built yet, so it has no weights to "
                             f"set; give the first layer input_shape=, start with Input(...), "
                             f"or call build() first. Received {len(weights)} arrays.")
        per_layer = [layer.weights for layer in self.layers]
        expected = sum(len(arrays) for arrays in per_layer)
        if len(weights) != expected:
            raise ValueError(f"Model '{self.name}' has {expected} weight arrays; received "
                             f"{len(weights)}.")
        checked, i = [], 0
        for layer, arrays in zip(self.layers, per_layer):
            # Check every layer first, so that a failed call changes nothing.
            checked.append(layer.check_weights(weights[i:i + len(arrays)]))
            i += len(arrays)
        with self._lock.exclusive:   # inference in other threads sees old or new, not a mix
            for arrays, values in zip(per_layer, checked):
                for array, value in zip(arrays, values):
                    array[...] = value

    def _forward(self, x, activity=None):
        """Inference output for the batch ``x``. With a list ``activity``, the activity
        regularizers' penalties of this batch are appended to it (evaluation adds them to
        the loss); inference keeps nothing on the layers, so it is computed here."""
        h = x
        for layer in self.layers:
            h = layer.forward(h, training=False)
            if activity is not None and layer.activity_regularizer is not None:
                activity.append(layer.activity_penalty(h))
        return h

    def __call__(self, x, training=False):
        """Outputs for a small input in one pass (use predict for large data)."""
        if training:
            raise ValueError("Calling a model with training=True is not supported; use fit().")
        if not self.layers:
            raise ValueError(f"Model '{self.name}' has no layers; add some before using it.")
        arr = np.asarray(x)
        # The common case (built model, right dtype and shape) skips prepare_x: a one-sample
        # prediction is a few microseconds, so every check here must cost nanoseconds.
        if self.built and arr.dtype is _DTYPES[self.layers[0].dtype] \
                and arr.shape[1:] == self.input_shape and arr.shape[0] > 0 \
                and arr.flags.c_contiguous:
            bad, _ = _data.count_nonfinite(arr)
            if not bad:
                with self._lock.shared:
                    return self._forward(arr)
        x2d, sample_shape = prepare_x(arr, self.input_shape)
        self._ensure_built(sample_shape)
        with self._lock.shared:
            return self._forward(x2d.astype(self.layers[0].dtype, copy=False).reshape(
                (x2d.shape[0],) + sample_shape))

    # ---- saving ----

    def get_config(self):
        """The architecture: name, each layer's ``{"class_name", "config"}`` and the input
        shape the model was built for (with the batch dimension as None)."""
        return {"name": self.name,
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "build_input_shape": None if self.input_shape is None
                else [None, *self.input_shape]}

    @classmethod
    def from_config(cls, config):
        """A new model (fresh weights) from :meth:`get_config`'s output; layer classes
        resolve through the layer registry only."""
        from minidl.saving.model_io import sequential_from_config
        return sequential_from_config(config)

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``json.dumps`` keyword arguments accepted);
        :func:`minidl.models.model_from_json` inverts it."""
        import json
        from minidl.saving.model_io import model_config
        return json.dumps(model_config(self), **kwargs)

    def save(self, filepath):
        """Save the whole model (see :func:`minidl.saving.save_model`) to one file,
        atomically; ``minidl.models.load_model`` reads it back."""
        from minidl.saving.model_io import save_model
        save_model(self, filepath)

    def save_weights(self, filepath):
        """Save the weights only (see :func:`minidl.saving.save_weights`)."""
        from minidl.saving.model_io import save_weights
        save_weights(self, filepath)

    def load_weights(self, filepath):
        """Set the weights from a file of :meth:`save_weights` or :meth:`save`."""
        from minidl.saving.model_io import load_weights
        load_weights(self, filepath)

    # ---- display ----

    def summary(self, print_fn=None):
        """Print a Keras-style table of layers, output shapes and parameter counts, with
        the totals split into trainable and non-trainable (and their memory)."""
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
        for label, arrays in (("Total", self.weights), ("Trainable", self.trainable_weights),
                              ("Non-trainable", self.non_trainable_weights)):
            count = sum(w.size for w in arrays)
            print_fn(f" {label} params: {count:,} ({_readable_size(sum(w.nbytes for w in arrays))})")


def _sample_shape(input_shape, model_name):
    """The sample part of a Keras input shape ``(batch, d1, ...)``, checked: the batch entry
    None or a positive int, then at least one positive int (a bool is not an int)."""
    try:
        full = tuple(input_shape)
    except TypeError:
        full = ()
    if len(full) >= 2 and (full[0] is None or _is_positive_int(full[0])) \
            and all(_is_positive_int(d) for d in full[1:]):
        return tuple(int(d) for d in full[1:])
    raise ValueError(f"Model '{model_name}' takes an input shape (batch, d1, ...): a batch "
                     f"size (None or a positive int), then positive ints. Received: "
                     f"input_shape={input_shape!r}.")


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _readable_size(nbytes):
    """Memory as Keras' summary shows it: '215.04 KB'."""
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.2f} {unit}"
        size /= 1024
