"""Keras's legacy HDF5 files: whole models (``model.save("m.h5")`` in Keras 2 and Keras 3)
and weights (``model.save_weights("w.h5")`` in Keras 2, and the ImageNet weight files of
keras.applications).

Layout, as Keras 3 writes it (keras/src/legacy/saving/legacy_h5_format.py) and Keras 2 did::

    /                       attrs: model_config, training_config (JSON text),
                                   keras_version, backend
    /model_weights          attrs: layer_names (every layer of model.layers, in order),
                                   keras_version, backend
    /model_weights/<layer>  attrs: weight_names; one dataset per name (names hold '/', so
                                   they nest: <layer>/<model>/<layer>/kernel)
    /model_weights/top_level_model_weights   (empty: minidl models own no weights)
    /optimizer_weights      attrs: weight_names: the optimizer's variables (step count,
                                   learning rate, slots), in Keras 3's order

A weights file holds the content of ``/model_weights`` at its root. A layer's weights are
its trainable ones, then its non-trainable ones (Keras's "legacy" order), and weights are
matched to layers by position among the layers that have weights, as Keras's
``load_weights`` does (or by layer name, with ``by_name=True``).

Reading goes through :func:`minidl.saving.keras.h5.open_h5`, which refuses external links,
virtual datasets and anything else that would read outside the file before the first read;
the config through :mod:`minidl.saving.keras.config`, which resolves class names through
minidl's registries only. Every weight is read and checked before any is written: a file
that does not fit the model changes nothing.
"""
import json
import warnings

import numpy as np

from minidl.saving.format import _FILE_ERRORS, InvalidModelFileError
from minidl.saving.keras import h5
from minidl.saving.keras.weights import assign_weights

# The Keras whose legacy layout and config dialect minidl writes.
KERAS_VERSION = "3.15.1"
# Keras splits a list attribute larger than this over name0, name1, ... (an HDF5 object
# header holds 64 KiB).
_ATTRIBUTE_LIMIT = 64512
_TOP_LEVEL = "top_level_model_weights"

# Keras 3 creates an optimizer's slots in groups: the names of one group alternate per
# variable (Adam: kernel momentum, kernel velocity, bias momentum, ...), groups follow each
# other. Optimizers absent here make one group per slot, in the order of slot_names.
_SLOT_GROUPS = {
    "Adam": (("momentum", "velocity"), ("velocity_hat",)),
    "AdamW": (("momentum", "velocity"), ("velocity_hat",)),
    "Nadam": (("momentum", "velocity"),),
}


# ---- weights in Keras's legacy order ----

def legacy_weights(layer):
    """The Variables of ``layer`` (a layer or a model) in Keras's legacy H5 order: its
    trainable weights, then its non-trainable ones (a frozen layer's weights all count as
    non-trainable), each list in the order of ``layer.weights``."""
    weights = layer.weights
    trainable = {id(v) for v in layer.trainable_weights}
    return ([v for v in weights if id(v) in trainable]
            + [v for v in weights if id(v) not in trainable])


_CELLS = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}


def _is_sequential(layer):
    return type(layer).__name__ == "Sequential"


def _keras_paths(layer, prefix, out):
    """Fill ``out`` (id(variable) -> path) with the paths Keras 3 gives the variables of
    ``layer``: a Sequential scopes its layers' names under its own, a functional model does
    not, a recurrent layer keeps its weights in a cell (``lstm/lstm_cell/kernel``)."""
    sublayers = getattr(layer, "layers", None)
    if isinstance(sublayers, list) and hasattr(layer, "inputs"):
        inner = f"{prefix}{layer.name}/" if _is_sequential(layer) else prefix
        for sublayer in sublayers:
            _keras_paths(sublayer, inner, out)
        return
    cell = _CELLS.get(type(layer).__name__)
    for variable in layer.weights:
        path = getattr(variable, "path", None) or f"{layer.name}/{variable.name}"
        if cell and path == f"{layer.name}/{variable.name}":
            path = f"{layer.name}/{cell}/{variable.name}"
        elif not path.startswith(f"{layer.name}/"):
            path = f"{layer.name}/{path}"
        out.setdefault(id(variable), f"{prefix}{path}")


def _weight_names(model):
    """id(variable) -> the name Keras 3 gives it in a legacy file (its path:
    ``sequential/dense/kernel`` in a Sequential, ``dense/kernel`` in a functional model),
    unique within the model."""
    paths = {}
    prefix = f"{model.name}/" if _is_sequential(model) else ""
    for layer in model.layers:
        _keras_paths(layer, prefix, paths)
    seen, names = set(), {}
    for key, base in paths.items():
        name, count = base, 1
        while name in seen:
            name = f"{base}_{count}"
            count += 1
        seen.add(name)
        names[key] = name
    return names


# ---- writing ----

def _set_list_attribute(group, name, values):
    """``group.attrs[name] = values`` as Keras does it: split over name0, name1, ... when
    the list would not fit one object header."""
    data = np.asarray(values) if values else np.asarray([], dtype=np.float64)
    if data.nbytes <= _ATTRIBUTE_LIMIT:
        group.attrs[name] = data
        return
    chunks = 2
    while any(part.nbytes > _ATTRIBUTE_LIMIT for part in np.array_split(data, chunks)):
        chunks += 1
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{name}{i}"] = part


def _write_layer_weights(group, model):
    """The content of ``/model_weights`` (or of a weights file's root) for ``model``."""
    layers = model.layers
    names = [layer.name for layer in layers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Model '{model.name}' has two layers named {duplicates[0]!r}; a "
                         f"Keras H5 file keeps each layer's weights under its name, so the "
                         f"names must be unique. Rename one (name=...).")
    _set_list_attribute(group, "layer_names", [n.encode("utf8") for n in names])
    group.attrs["backend"] = b"minidl"
    group.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
    names = _weight_names(model)
    # Sorted by name, as Keras: groups then never have a name that prefixes a later one.
    for layer in sorted(layers, key=lambda layer: layer.name):
        _write_weight_group(group.create_group(layer.name), layer, names)
    _set_list_attribute(group.create_group(_TOP_LEVEL), "weight_names", [])


def _write_weight_group(group, layer, all_names):
    variables = legacy_weights(layer)
    names = [all_names[id(v)] for v in variables]
    _set_list_attribute(group, "weight_names", [n.encode("utf8") for n in names])
    for name, variable in zip(names, variables):
        group.create_dataset(name, data=np.asarray(variable.value))


def _keras_trainable_arrays(model):
    return [v.value for v in model.trainable_weights]


def _optimizer_entries(optimizer, variables):
    """[(keras name suffix, array or value)] of the optimizer's variables in Keras 3's
    order: the step count, the learning rate (unless a schedule gives it), the slots in
    Keras's groups, and Nadam's running product of its momentum factors."""
    from minidl.schedules import LearningRateSchedule
    iterations = optimizer.iterations
    entries = [("iteration", np.array(iterations, np.int64))]
    if not isinstance(optimizer._learning_rate, LearningRateSchedule):
        entries.append(("learning_rate", np.array(optimizer.learning_rate, np.float32)))
    slots = optimizer.slot_names
    groups = _SLOT_GROUPS.get(type(optimizer).__name__, tuple((s,) for s in slots))
    for group in groups:
        group = [s for s in group if s in slots]
        for index, variable in enumerate(variables):
            for slot in group:
                entries.append((f"{index}_{slot}", optimizer.get_slot(variable, slot)))
    if type(optimizer).__name__ == "Nadam":
        product = optimizer._u_product(iterations) if iterations else 1.0
        entries.append(("u_product", np.array(product, variables[0].dtype
                                              if variables else np.float32)))
    return entries


def _write_optimizer_weights(h5file, model):
    optimizer = model.optimizer
    variables = _keras_trainable_arrays(model)
    if not optimizer.built or {id(v) for v in variables} != {id(v) for v in
                                                             optimizer._variables}:
        return   # no state yet: Keras builds a fresh one on load
    paths = _weight_names(model)
    names = {id(v.value): paths[id(v)].replace("/", "_") for v in model.trainable_weights}
    group = h5file.create_group("optimizer_weights")
    weight_names, values = [], []
    for suffix, value in _optimizer_entries(optimizer, variables):
        index, _, slot = suffix.partition("_")
        if index.isdigit():
            suffix = f"{names[id(variables[int(index)])]}_{slot}"
        weight_names.append(f"{optimizer.name}/{suffix}")
        values.append(value)
    _set_list_attribute(group, "weight_names", [n.encode("utf8") for n in weight_names])
    for name, value in zip(weight_names, values):
        group.create_dataset(name, data=np.asarray(value))


def _json_bytes(obj):
    return json.dumps(obj).encode("utf8")


def save_legacy_h5(model, filepath, include_optimizer=True):
    """Save a model in Keras's legacy HDF5 layout (what ``model.save("m.h5")`` writes in
    Keras 3), atomically: Keras 2 and 3 load it with ``keras.models.load_model``.

    Holds the architecture (Keras 3 config), the weights, the compile configuration and,
    when the optimizer has state and ``include_optimizer``, the optimizer's variables in
    Keras's order. minidl's exact-resume extras (random generator states) have no place in
    this layout: use a ``.minidl`` file for them.

    Args:
        model: a built model.
        filepath: target path (``.h5`` or ``.hdf5``).
        include_optimizer: also save the optimizer's state.

    Raises:
        ImportError: h5py is not installed (nothing is written).
        ValueError: the model is not built, or cannot be expressed as a Keras config.
    """
    from minidl.saving.keras import config as keras_config
    h5.import_h5py()
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save; "
                         f"build it or train it first. Received filepath={filepath!r}.")
    model_config = keras_config.model_config_to_keras(model)
    # Keras 3's legacy files hold the model's config without module / registered_name at
    # the top (its legacy dialect); the layers' configs are the same in both.
    model_config = {"class_name": model_config["class_name"],
                    "config": model_config["config"]}
    training_config = (keras_config.training_config_to_keras(model)
                       if getattr(model, "compiled", False) else None)

    def fill(h5file):
        h5file.attrs["backend"] = b"minidl"
        h5file.attrs["keras_version"] = KERAS_VERSION.encode("utf8")
        h5file.attrs["model_config"] = _json_bytes(model_config)
        if training_config is not None:
            h5file.attrs["training_config"] = _json_bytes(training_config)
        _write_layer_weights(h5file.create_group("model_weights"), model)
        if include_optimizer and training_config is not None:
            _write_optimizer_weights(h5file, model)
    h5.write_h5(filepath, fill)


def save_legacy_weights(model, filepath):
    """Save the model's weights in Keras's legacy HDF5 weights layout (what Keras 2's
    ``save_weights("w.h5")`` wrote; Keras 3's ``load_weights`` reads it), atomically.

    Raises:
        ImportError: h5py is not installed (nothing is written).
        ValueError: the model is not built.
    """
    h5.import_h5py()
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save. "
                         f"Received filepath={filepath!r}.")
    h5.write_h5(filepath, lambda h5file: _write_layer_weights(h5file, model))


# ---- reading ----

def _check_version(h5file, group):
    """Refuse files of Keras 1 and of the Theano backend, whose weights Keras converted
    (transposed recurrent kernels, flipped convolution kernels) on load."""
    what = h5file.what
    for obj in (h5file, group):
        version = _text_attr(obj, "keras_version", what)
        backend = _text_attr(obj, "backend", what)
        if version is not None and version.startswith("1"):
            raise h5.h5_error(what, f"it was written by Keras {version!r:.50}, whose weight "
                                    f"layout minidl does not read (Keras 2 and 3 files only)")
        if backend == "theano":
            raise h5.h5_error(what, "it was written with the Theano backend, whose "
                                    "convolution kernels minidl does not convert")


def _text_attr(obj, name, what):
    values = h5.read_str_list_attr(obj, name, what) if name in obj.attrs else None
    return values[0] if values else None


def _saved_layers(group, what):
    """[(layer name, layer group, weight names)] of the layers listed in ``layer_names``
    that have weights, in file order."""
    h5py = h5.import_h5py()
    out = []
    for name in h5.read_str_list_attr(group, "layer_names", what):
        layer_group = group.get(name)
        if not isinstance(layer_group, h5py.Group):
            raise h5.h5_error(what, f"layer_names lists {name!r:.100}, and "
                                    f"'{group.name.rstrip('/')}/{name:.100}' is not a group")
        weight_names = h5.read_str_list_attr(layer_group, "weight_names", what)
        if weight_names:
            out.append((name, layer_group, weight_names))
    return out


def _read_layer(layer, label, layer_group, weight_names, what, skip_mismatch):
    """[(variable, value)] for the layer's weights from its group; with ``skip_mismatch``
    a weight whose shape differs is left out (with a warning), else it is an error."""
    variables = legacy_weights(layer)
    if len(weight_names) != len(variables):
        raise h5.h5_error(what, f"{label} has {len(weight_names)} saved weight(s), and layer "
                                f"'{layer.name}' of the model expects {len(variables)}")
    pairs = []
    for variable, weight_name in zip(variables, weight_names):
        expected = tuple(variable.value.shape)
        saved = h5.open_dataset(layer_group, weight_name, what).shape
        if saved is not None and tuple(saved) != expected and skip_mismatch:
            warnings.warn(f"Skipping loading weight '{weight_name}' of {label} into layer "
                          f"'{layer.name}': the saved weight has shape {tuple(saved)}, the "
                          f"layer expects {expected}.", stacklevel=4)
            continue
        if saved is not None and tuple(saved) != expected:
            raise h5.h5_error(what, f"weight '{weight_name}' of {label} has shape "
                                    f"{tuple(saved)}, and layer '{layer.name}' expects "
                                    f"{expected}")
        value = h5.read_array(layer_group, weight_name, expected, variable.value.dtype, what)
        pairs.append((variable, value))
    return pairs


def _read_weights(model, group, what, by_name=False, skip_mismatch=False):
    """[(variable, value)] for the model from a group holding ``layer_names`` (the root
    of a weights file, or ``/model_weights`` of a model file)."""
    saved = _saved_layers(group, what)
    top = group.get(_TOP_LEVEL)
    if top is not None and h5.read_str_list_attr(top, "weight_names", what):
        raise h5.h5_error(what, "it holds top-level model weights (of a subclassed Keras "
                                "model's own variables), which minidl models do not have")
    pairs = []
    if by_name:
        layers = {}
        for layer in model.layers:
            layers.setdefault(layer.name, []).append(layer)
        for index, (name, layer_group, weight_names) in enumerate(saved):
            label = f"saved layer #{index} (named {name!r:.100})"
            for layer in layers.get(name, []):
                if len(weight_names) != len(legacy_weights(layer)) and skip_mismatch:
                    warnings.warn(f"Skipping loading {label} into layer '{layer.name}': it "
                                  f"has {len(weight_names)} weight(s), the layer "
                                  f"{len(legacy_weights(layer))}.", stacklevel=3)
                    continue
                pairs += _read_layer(layer, label, layer_group, weight_names, what,
                                     skip_mismatch)
        return pairs
    layers = [layer for layer in model.layers if legacy_weights(layer)]
    if len(saved) != len(layers):
        raise h5.h5_error(what, f"it holds the weights of {len(saved)} layers, and model "
                                f"'{model.name}' has {len(layers)} layers with weights (layer "
                                f"count mismatch)")
    for index, ((name, layer_group, weight_names), layer) in enumerate(zip(saved, layers)):
        label = f"saved layer #{index} (named {name!r:.100})"
        pairs += _read_layer(layer, label, layer_group, weight_names, what, skip_mismatch)
    return pairs


def load_legacy_weights(model, source, by_name=False, skip_mismatch=False, what=None):
    """Set the model's weights from a legacy Keras HDF5 file: a weights file (Keras 2's
    ``save_weights("w.h5")``, keras.applications' ImageNet weights) or a whole-model file,
    as Keras's ``load_weights`` reads it.

    Args:
        model: a built model.
        source: a path or a binary file object.
        by_name: match saved layers to the model's layers by name (layers without a match
            keep their weights) instead of by position among the layers with weights.
        skip_mismatch: leave out, with a warning, the weights whose shape (and, with
            ``by_name``, the layers whose number of weights) differs from the model's.
        what: how messages name the file (default: the path).

    Raises:
        InvalidModelFileError: the file is damaged, unsafe, not a legacy Keras file, or
            does not fit the model; then no weight has changed.
    """
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it cannot take weights; "
                         f"build it first. Received filepath={source!r:.200}.")
    with h5.open_h5(source, what) as h5file:
        group = h5file
        if "layer_names" not in h5file.attrs and "model_weights" in h5file:
            group = h5file["model_weights"]
        if "layer_names" not in group.attrs:
            raise h5.h5_error(h5file.what, "it is an HDF5 file without layer_names: not a "
                                           "legacy Keras weights or model file")
        _check_version(h5file, group)
        pairs = _read_weights(model, group, h5file.what, by_name, skip_mismatch)
    assign_weights(model, pairs)


def load_legacy_h5(source, compile=True, what=None):
    """Load a model from a legacy Keras HDF5 file (``model.save("m.h5")`` in Keras 2 or
    Keras 3, or :func:`save_legacy_h5`).

    Nothing in the file is executed or imported: class names resolve through minidl's
    registries only, and a Lambda layer is refused. The model comes back built with the
    file's weights and, when the file holds a training configuration and ``compile``,
    compiled as saved, with the optimizer's state where the file holds it in Keras 3's
    order (else a warning, and a fresh optimizer, as Keras).

    Args:
        source: a path or a binary file object.
        compile: compile the model as it was compiled when saved.
        what: how messages name the file (default: the path).

    Returns:
        The model.

    Raises:
        InvalidModelFileError: the file is damaged or unsafe, holds no model (a weights
            file: use ``model.load_weights``), or describes a model minidl cannot build.
    """
    from minidl.layers.base import skip_weight_init
    from minidl.saving.keras import config as keras_config
    from minidl.saving.model_io import _compile_from_config, _model_from_spec
    h5py = h5.import_h5py()
    with h5.open_h5(source, what) as h5file:
        what = h5file.what
        model_config = h5.read_json_attr(h5file, "model_config", what)
        if model_config is None:
            hint = (" (a weights file: use model.load_weights)"
                    if "layer_names" in h5file.attrs else "")
            raise h5.h5_error(what, f"it holds no model_config attribute, so no model{hint}")
        group = h5file.get("model_weights")
        if not isinstance(group, h5py.Group):
            raise h5.h5_error(what, "it holds no model_weights group")
        _check_version(h5file, group)
        try:
            spec = keras_config.model_spec_from_keras(model_config)
            # The weights the config declares may take no more than the file holds (at
            # 8 bytes a value, so a float32 file can fill a float64 model).
            with skip_weight_init(max_bytes=8 * h5file.stored_values):
                model = _model_from_spec(spec)
        except InvalidModelFileError:
            raise
        except (RecursionError,) + _FILE_ERRORS as error:
            raise h5.h5_error(what, f"its model_config does not describe a model minidl can "
                                    f"build ({error})") from None
        if not model.built:
            raise h5.h5_error(what, "its model_config gives no input shape, so the model "
                                    "cannot be built to take the file's weights")
        assign_weights(model, _read_weights(model, group, what))
        training_config = h5.read_json_attr(h5file, "training_config", what)
        if compile and training_config is not None:
            try:
                compile_spec = keras_config.compile_spec_from_keras(training_config)
                if compile_spec is not None:
                    _compile_from_config(model, compile_spec)
            except InvalidModelFileError:
                raise
            except (RecursionError,) + _FILE_ERRORS as error:
                raise h5.h5_error(what, f"its training_config is not valid ({error})") \
                    from None
            if getattr(model, "compiled", False) and "optimizer_weights" in h5file:
                _load_optimizer_weights(model, h5file, what)
    return model


def _load_optimizer_weights(model, h5file, what):
    """Restore the optimizer's state from ``/optimizer_weights`` when it holds exactly the
    variables Keras 3 gives this optimizer; otherwise warn and keep a fresh optimizer, as
    Keras does."""
    optimizer = model.optimizer
    group = h5file["optimizer_weights"]
    names = h5.read_str_list_attr(group, "weight_names", what)
    variables = _keras_trainable_arrays(model)
    if not optimizer.built or {id(v) for v in variables} != {id(v) for v in
                                                             optimizer._variables}:
        return _fresh_optimizer_warning(what, "the optimizer is not built on the model's "
                                              "trainable weights")
    entries = _optimizer_entries(optimizer, variables)
    if len(names) != len(entries):
        return _fresh_optimizer_warning(
            what, f"it holds {len(names)} optimizer variables, and {type(optimizer).__name__} "
                  f"has {len(entries)} in Keras 3's order for this model")
    values = []
    for name, (kind, target) in zip(names, entries):
        value = h5.read_array(group, name, None, np.float64, what)
        if value.shape != np.shape(target):
            return _fresh_optimizer_warning(
                what, f"optimizer variable '{name}' has shape {value.shape}, expected "
                      f"{np.shape(target)}")
        values.append((kind, target, value))
    for kind, _, value in values:
        if kind in ("iteration", "learning_rate") and not (np.isfinite(value) and value >= 0):
            raise h5.h5_error(what, f"optimizer {kind} {float(value)!r} is not a finite number "
                                    f">= 0")
    iterations = None
    with model.writing_weights():
        for kind, target, value in values:
            if kind == "iteration":
                iterations = int(value)
            elif kind == "learning_rate":
                # Stored as float32 (Keras's variable): keep the config's more precise
                # value where it is the same number.
                if np.float32(optimizer.learning_rate) != np.float32(value):
                    optimizer.learning_rate = float(value)
            elif kind != "u_product":   # Nadam recomputes it from the step count
                target[...] = value
    if iterations is not None:
        optimizer.iterations = iterations


def _fresh_optimizer_warning(what, reason):
    warnings.warn(f"The optimizer state saved in {what} was not restored ({reason}); the "
                  f"model's optimizer starts fresh.", stacklevel=4)
