"""Saving and loading whole models and their weights (see :mod:`minidl.saving.format` for
the archive itself, :mod:`minidl.saving.keras` for Keras's files).

Which format: writing goes by the path's extension: ``.keras`` is a Keras 3 archive,
``.h5`` / ``.hdf5`` Keras's legacy HDF5 file (``save_weights``: ``.weights.h5`` is Keras 3's
weights file, other ``.h5`` / ``.hdf5`` the legacy weights layout), anything else
(``.minidl`` recommended) minidl's own archive, the one that resumes training exactly. A
Keras-named path is never given minidl's format: without h5py (``pip install
'minidl[keras]'``) saving to it raises ImportError and writes nothing. Reading goes by the
file's content, whatever its name: a zip with minidl's metadata is minidl's, a zip with
config.json and model.weights.h5 a Keras 3 archive, an HDF5 file a legacy ``.h5`` model or
weights file or a Keras 3 ``.weights.h5``.

A model file holds what an exact resume needs: the weights, the optimizer's step count
(which also fixes a learning-rate schedule's position) and slots, the state of the global
random generator (batch shuffling, unseeded dropout) and of each layer's own generator
(``Dropout(seed=...)``), so that training on after a load in a new process gives the same
weights, bit for bit, as never having stopped.

state.json: ``{"random_state": <global generator state>, "layer_random_states": [one entry
per layer of the model, in order: Layer.get_random_state(), None for most layers]}``, and,
in a backup of BackupAndRestore, ``"epoch"``: the epoch fit resumes from. The layer states go
by position, not by name, as two layers of a model may share a name. Files written before
layer states were saved lack the key and load with those layers' generators fresh from their
seeds.
"""
import json
import numbers
import os

import numpy as np

from minidl import losses, metrics, optimizers
from minidl.layers.base import MODELS, skip_weight_init
from minidl.layers.lambda_layer import LambdaLoadingError
from minidl.saving.format import _FILE_ERRORS, ArchiveReader, InvalidModelFileError, write_archive
from minidl.utils.random import global_rng, set_generator_state
from minidl.utils.checks import check_bool
from minidl.utils.registry import _check_custom_objects, custom_object_scope, serialize

_ITERATIONS = "optimizer/iterations.npy"


def _weight_member(i):
    return f"weights/{i:05d}.npy"


def _slot_member(i):
    return f"optimizer/{i:05d}.npy"


# ---- configs ----

def model_config(model):
    """``{"class_name": "Sequential" or "Functional", "config": model.get_config()}``;
    a subclassed model adds the shapes it was built for (``build_config``), as Keras."""
    spec = serialize(model)
    if getattr(model, "_subclassed", False) and model.inputs:
        spec["build_config"] = {"input_shapes": [list(t.shape[1:]) for t in model.inputs],
                                "dtypes": [t.dtype for t in model.inputs]}
    return spec


def compile_config(model):
    """The arguments of the model's ``compile`` call, serialized; None if not compiled."""
    config = model.get_compile_config()
    if config is None:
        return None
    return {"optimizer": optimizers.serialize(config["optimizer"]),
            "loss": _map_specs(config["loss"], _loss_spec),
            "loss_weights": config["loss_weights"],
            "metrics": _map_specs(config["metrics"], _metric_spec)}


def _map_specs(structure, function):
    """``structure`` (None, one spec, or lists / dicts of them) with each spec replaced."""
    if structure is None:
        return None
    if isinstance(structure, (list, tuple)):
        return [_map_specs(item, function) for item in structure]
    if isinstance(structure, dict) and "class_name" not in structure:
        return {key: _map_specs(item, function) for key, item in structure.items()}
    return function(structure)


def _loss_spec(loss):
    return loss if isinstance(loss, (str, dict)) else losses.serialize(losses.get(loss))


def _metric_spec(metric):
    if isinstance(metric, type):
        metric = metric()
    from minidl import metrics
    return metric if isinstance(metric, (str, dict)) else metrics.serialize(metric)


def _check_keys(what, obj, allowed):
    """ValueError naming the keys of the JSON object ``obj`` outside ``allowed``."""
    unknown = sorted(str(key) for key in obj if key not in allowed)
    if unknown:
        raise ValueError(f"{what} holds unknown keys {', '.join(unknown)[:200]}; it may hold "
                         f"{', '.join(allowed)}.")


def model_from_json(json_string, custom_objects=None):
    """A model from the JSON of ``model.to_json()`` (architecture only, fresh weights).

    Class names resolve through minidl's registries and the custom objects only: register
    custom classes with :func:`minidl.saving.register_serializable`, or name them here.

    Args:
        json_string: the JSON text.
        custom_objects: optional dict from the names in the JSON to the program's own
            classes and functions (as :func:`minidl.saving.custom_object_scope`).

    Example:
        >>> clone = minidl.models.model_from_json(model.to_json())
    """
    custom_objects = _check_custom_objects(custom_objects, "model_from_json")
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json expects json_string to be a str; received "
                        f"{type(json_string).__name__}.")
    spec = json.loads(json_string)
    with custom_object_scope(custom_objects):
        return _model_from_spec(spec)


def _model_from_spec(spec):
    """The model of ``{"class_name", "config"}``: a class of minidl's model registry only."""
    if not isinstance(spec, dict):
        raise ValueError(f"A model's config must be an object; received {spec!r:.200}.")
    _check_keys("A model's config", spec, ("class_name", "config", "compile_config",
                                           "build_config"))
    try:
        cls = MODELS.lookup(spec.get("class_name"))
    except ValueError as error:
        raise ValueError(f"class_name: {error}") from None
    model = cls.from_config(spec.get("config"))
    build = spec.get("build_config")
    if build is not None and getattr(model, "_subclassed", False):
        _check_keys("build_config", build, ("input_shapes", "dtypes"))
        shapes, dtypes = build.get("input_shapes"), build.get("dtypes")
        if not (isinstance(shapes, list) and isinstance(dtypes, list) and shapes
                and len(shapes) == len(dtypes)
                and all(d in ("float32", "float64", "int32", "int64") for d in dtypes)):
            raise ValueError(f"build_config must hold input_shapes and dtypes, one per input; "
                             f"received {build!r:.200}.")
        from minidl.layers.base import _as_shape
        model._ensure_built_for([_as_shape(shape, "build_config input shape", allow_none=True)
                                 for shape in shapes], [np.dtype(d) for d in dtypes])
    return model


# ---- format choice ----

_KERAS_MODEL_SUFFIXES = (".keras",)
_LEGACY_H5_SUFFIXES = (".h5", ".hdf5")
_KERAS_WEIGHTS_SUFFIX = ".weights.h5"


def _suffix_kind(filepath, weights=False):
    """The format a path's name asks for: "keras", "legacy_h5", "keras_weights" (with
    ``weights``) or "native"."""
    if not isinstance(filepath, (str, bytes, os.PathLike)):
        raise TypeError(f"filepath must be a path (str or os.PathLike); received "
                        f"filepath={filepath!r:.100} of type {type(filepath).__name__}.")
    name = os.fsdecode(os.fspath(filepath)).lower()
    if weights and name.endswith(_KERAS_WEIGHTS_SUFFIX):
        return "keras_weights"
    if name.endswith(_KERAS_MODEL_SUFFIXES):
        return "keras"
    if name.endswith(_LEGACY_H5_SUFFIXES):
        return "legacy_h5"
    return "native"


def _content_kind(filepath):
    """The format of the file at ``filepath`` by its content: "keras", "hdf5" or
    "native" (any other file: minidl's reader names what is wrong with it)."""
    if not isinstance(filepath, (str, bytes, os.PathLike)):
        raise TypeError(f"filepath must be a path (str or os.PathLike); received "
                        f"filepath={filepath!r:.100} of type {type(filepath).__name__}.")
    from minidl.saving.keras.archive import file_kind
    kind = file_kind(filepath)
    if kind == "unknown" and _suffix_kind(filepath) == "keras":
        return "keras"   # a damaged .keras file: the Keras reader names the problem
    return kind if kind in ("keras", "hdf5") else "native"


# ---- save ----

def save_model(model, filepath):
    """Save the model to one file at ``filepath``, atomically, in the format its extension
    names.

    - ``.keras``: a Keras 3 archive (config, compile config, weights, optimizer state)
      that Keras 3's ``keras.saving.load_model`` reads and predicts the same from.
    - ``.h5`` / ``.hdf5``: Keras's legacy HDF5 model file.
    - anything else (``.minidl`` recommended): minidl's own archive, which adds the random
      states (the global generator's and seeded layers') so that training resumes
      exactly, bit for bit.

    Args:
        model: a built model.
        filepath: target path.

    Raises:
        ImportError: a Keras format was asked for and h5py is not installed
            (``pip install 'minidl[keras]'``); nothing is written.
        ValueError: the model is not built, or (Keras formats) holds what Keras cannot
            represent.

    Example:
        >>> model.save("mnist.minidl")
        >>> same = minidl.models.load_model("mnist.minidl")
        >>> model.save("mnist.keras")   # for Keras 3, or minidl, to read
    """
    kind = _suffix_kind(filepath)
    if kind == "keras":
        from minidl.saving.keras.archive import save_keras
        save_keras(model, filepath)
    elif kind == "legacy_h5":
        from minidl.saving.keras.h5 import import_h5py
        import_h5py()
        from minidl.saving.keras.legacy_h5 import save_legacy_h5
        save_legacy_h5(model, filepath)
    else:
        _write_model(model, filepath, {})


def save_backup(model, filepath, epoch):
    """Save the model as :func:`save_model` does, adding the epoch that training resumes
    from; :func:`restore_backup` reads it back. The file is also a model file that
    :func:`load_model` reads. :class:`minidl.callbacks.BackupAndRestore` uses this pair.

    Args:
        model: a built, compiled model whose optimizer is built (as it is inside ``fit``).
        filepath: target path.
        epoch: int >= 0, the index of the epoch to resume from (the epochs done).
    """
    if not (model.built and model.compiled and model.optimizer.built):
        raise ValueError(f"Model '{model.name}' must be built and compiled, with its optimizer "
                         f"built, to be backed up; train it first. Received "
                         f"filepath={filepath!r}.")
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0; received epoch={epoch!r}.")
    _write_model(model, filepath, {"epoch": int(epoch)})


def _write_model(model, filepath, extra_state):
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save; "
                         f"build it or train it first. Received filepath={filepath!r}.")
    arrays = [(_weight_member(i), w) for i, w in enumerate(model.weight_arrays)]
    if model.compiled and model.optimizer.built:
        arrays.append((_ITERATIONS, np.array(model.optimizer.iterations, np.int64)))
        arrays += [(_slot_member(i), s)
                   for i, s in enumerate(model.optimizer.get_slot_arrays())]
    config = model_config(model)
    config["compile_config"] = compile_config(model)
    state = {"random_state": global_rng().bit_generator.state,
             "layer_random_states": [layer.get_random_state()
                                     for layer in model.random_state_layers()],
             **extra_state}
    write_archive(filepath, {"config.json": config, "state.json": state}, arrays, "model")


def save_weights(model, filepath):
    """Save only the model's weights to ``filepath``, atomically, in the format its
    extension names.

    - ``.weights.h5``: Keras 3's weights file (with the optimizer's state, when the model
      is compiled, as Keras writes it); Keras's ``model.load_weights`` reads it.
    - other ``.h5`` / ``.hdf5``: Keras's legacy weights layout.
    - ``.keras``: refused (ValueError), as Keras does: a ``.keras`` file is a whole model.
    - anything else: minidl's archive of the weights in ``get_weights`` order.

    Raises:
        ImportError: a Keras format was asked for and h5py is not installed
            (``pip install 'minidl[keras]'``); nothing is written.
        ValueError: the model is not built, or ``filepath`` ends in ``.keras``.
    """
    kind = _suffix_kind(filepath, weights=True)
    if kind == "keras":
        raise ValueError(f"A .keras file holds a whole model: use model.save(). To save "
                         f"only the weights, give a name ending in '.weights.h5'. Received "
                         f"filepath={filepath!r}.")
    if kind == "keras_weights":
        from minidl.saving.keras.archive import save_keras_weights
        save_keras_weights(model, filepath)
        return
    if kind == "legacy_h5":
        from minidl.saving.keras.h5 import import_h5py
        import_h5py()
        from minidl.saving.keras.legacy_h5 import save_legacy_weights
        save_legacy_weights(model, filepath)
        return
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save. "
                         f"Received filepath={filepath!r}.")
    arrays = [(_weight_member(i), w) for i, w in enumerate(model.weight_arrays)]
    write_archive(filepath, {}, arrays, "weights")


# ---- load ----

def load_model(filepath, custom_objects=None, compile=True, safe_mode=True,
               restore_random_state=True):
    """Load a model saved by ``model.save``, or by Keras.

    The format is read from the file's content, whatever its name: minidl's archive, a
    Keras 3 ``.keras`` archive, or a legacy Keras ``.h5`` model file (the Keras formats
    need h5py: ``pip install 'minidl[keras]'``). A Keras file's layers must be classes
    minidl has, registered custom classes or ones given in ``custom_objects``; a ``Lambda``
    layer loads when its function is one of those too (never from the bytecode Keras stores
    for a ``lambda``); anything else is refused, nothing in the file is imported or
    executed.

    The model comes back built, with its weights, and (when it was compiled and
    ``compile=True``) compiled with the same optimizer, loss and metrics, the optimizer's
    step count and slots restored. Nothing in the file is executed, imported or unpickled:
    class names resolve through minidl's registries only.

    Args:
        filepath: the file written by ``model.save``.
        custom_objects: optional dict from the names the file uses to the program's own
            classes and functions (layers, losses, metrics, ...), as Keras's: they resolve
            during this load as in a :func:`minidl.saving.custom_object_scope`.
        compile: compile the model as it was compiled when saved.
        safe_mode: Keras's switch for loading a ``lambda``'s bytecode from a file. minidl
            never loads code from a file, so both values load the same way (a bool).
        restore_random_state: restore the global random generator (batch shuffling,
            dropout) and the generators of seeded layers (``Dropout(seed=...)``) to their
            states at save time, so that training resumes exactly. Without it, seeded
            layers start over from their seeds. (Keras files hold no random states.)

    Returns:
        A :class:`minidl.models.Sequential` or functional :class:`minidl.models.Model`.

    Raises:
        InvalidModelFileError: the file is not a model file, is damaged or
            inconsistent, or names a class that is not registered.
        ImportError: a Keras file, and h5py is not installed.

    Example:
        >>> model = minidl.models.load_model("mnist.minidl")
        >>> model = minidl.models.load_model("scaled.keras", custom_objects={"Scale": Scale})
    """
    custom_objects = _check_custom_objects(custom_objects, "load_model")
    check_bool("load_model", "compile", compile)
    check_bool("load_model", "safe_mode", safe_mode)
    check_bool("load_model", "restore_random_state", restore_random_state)
    with custom_object_scope(custom_objects):
        return _load_model(filepath, compile, restore_random_state)


def _load_model(filepath, compile, restore_random_state):
    kind = _content_kind(filepath)
    if kind == "keras":
        from minidl.saving.keras.archive import load_keras
        return load_keras(filepath, compile=compile)
    if kind == "hdf5":
        from minidl.saving.keras import archive
        if not archive.is_legacy_h5(filepath):
            raise InvalidModelFileError(f"Cannot load '{os.fsdecode(filepath)}': it is a "
                                        f"Keras 3 weights file (.weights.h5), no model; "
                                        f"build the model and use model.load_weights.")
        from minidl.saving.keras.legacy_h5 import load_legacy_h5
        return load_legacy_h5(filepath, compile=compile)
    with ArchiveReader(filepath, "model") as reader:
        config = reader.read_json("config.json")
        state = reader.read_json("state.json")
        if not isinstance(config, dict):
            raise reader.error(f"config.json is not an object; received {config!r:.200}")
        _check_state(reader, state)
        try:
            # The weights the config declares may take no more than the file holds for them.
            with skip_weight_init(max_bytes=reader.declared_size("weights/")):
                model = _model_from_spec(config)
        except InvalidModelFileError:
            raise
        except LambdaLoadingError as error:   # a sound file, refused by design: say so
            raise reader.error(str(error).rstrip(".")) from None
        except (RecursionError,) + _FILE_ERRORS as error:
            raise reader.error(f"its config does not describe a valid model ({error})") from None
        if not model.built:
            raise reader.error("its config has no build_input_shape, so it holds no weights")
        weights = _weights_in_file_order(model, reader)
        expected = [_weight_member(i) for i in range(len(weights))]
        for name, weight in zip(expected, weights):
            reader.read_array(name, weight.shape, weight.dtype, out=weight)
        # Compiled after the weights are read: the optimizer's slots are as large as the
        # weights, which the file has now shown it holds.
        compiled = config.get("compile_config") if compile else None
        if compiled is not None:
            try:
                _compile_from_config(model, compiled)
            except (RecursionError,) + _FILE_ERRORS as error:
                raise reader.error(f"its compile_config is not valid ({error})") from None
        if model.compiled:
            iterations = int(reader.read_array(_ITERATIONS, (), np.int64))
            if iterations < 0:
                raise reader.error(f"optimizer iterations={iterations} is negative")
            slots = _slots_in_file_order(model, reader, weights)
            expected.append(_ITERATIONS)
            for i, slot in enumerate(slots):
                expected.append(_slot_member(i))
                reader.read_array(expected[-1], slot.shape, slot.dtype, out=slot)
            model.optimizer.iterations = iterations
        else:
            # Not compiling: the optimizer's members are known, just not needed.
            expected += [n for n in reader.names if n.startswith("optimizer/")]
        reader.warn_unknown(expected + ["config.json", "state.json"])
        if restore_random_state:
            # The layers first: they belong to the new model, so a bad entry there leaves
            # the caller's global generator untouched.
            _restore_layer_random_states(reader, model.random_state_layers(), state)
            _restore_random_state(reader, state)
    return model


def _compile_from_config(model, compiled):
    if not isinstance(compiled, dict):
        raise ValueError(f"compile_config must be an object; received {compiled!r:.200}")
    _check_keys("compile_config", compiled, ("optimizer", "loss", "loss_weights", "metrics"))
    optimizer = compiled.get("optimizer")
    if not isinstance(optimizer, (str, dict)):
        raise ValueError(f"optimizer must be a name or a config object. Received: "
                         f"optimizer={optimizer!r:.200}")
    try:
        optimizer = optimizers.get(optimizer)
    except (ValueError, TypeError) as error:
        raise type(error)(f"optimizer: {error}") from None
    loss = _resolve_specs(compiled.get("loss"), "loss", losses.get, keep_names=False)
    # A metric name stays a name: compile resolves 'accuracy' by the output's shape.
    specs = _resolve_specs(compiled.get("metrics", []), "metrics", metrics.get,
                           keep_names=True)
    weights = compiled.get("loss_weights")
    if not _is_weights(weights):
        raise ValueError(f"loss_weights must be null, a number, or a list or object of "
                         f"numbers. Received: loss_weights={weights!r:.200}")
    model.compile(optimizer=optimizer, loss=loss, loss_weights=weights, metrics=specs)


def _resolve_specs(structure, field, get, keep_names, depth=0):
    """A loss or metrics structure of a compile config (a spec, None, or lists / objects
    of them, two levels at most), each spec resolved through its registry; errors name
    the place (``metrics[1]``, ``loss['head']``)."""
    if structure is None:
        return None
    if isinstance(structure, (list, dict)) and not (isinstance(structure, dict)
                                                     and "class_name" in structure):
        if depth >= 2:
            raise ValueError(f"{field} nests too deeply. Received: {structure!r:.200}")
        items = structure.items() if isinstance(structure, dict) else enumerate(structure)
        out = {} if isinstance(structure, dict) else []
        for key, item in items:
            if isinstance(structure, dict) and not isinstance(key, str):
                raise ValueError(f"{field} keys must be output names. Received: {key!r:.100}")
            label = f"{field}[{key!r}]" if isinstance(structure, dict) else f"{field}[{key}]"
            value = _resolve_specs(item, label, get, keep_names, depth + 1)
            if isinstance(out, dict):
                out[key] = value
            else:
                out.append(value)
        return out
    if not isinstance(structure, (str, dict)):
        raise ValueError(f"{field} must be a name, a config object or null. Received: "
                         f"{field}={structure!r:.200}")
    try:
        resolved = get(structure)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{field}: {error}") from None
    return structure if keep_names and isinstance(structure, str) else resolved


def _is_weights(value):
    """Whether ``value`` is a loss_weights of a compile config."""
    def number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, bool)
    if value is None or number(value):
        return True
    if isinstance(value, list):
        return all(number(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and number(v) for k, v in value.items())
    return False


def _check_state(reader, state):
    """The fields of state.json that this module owns; the random states are checked when
    they are restored."""
    if not isinstance(state, dict):
        raise reader.error(f"state.json is not an object; received {state!r:.200}")
    epoch = state.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise reader.error(f"state.json epoch must be an int >= 0; received epoch={epoch!r:.100}")


def _restore_random_state(reader, state):
    rng = global_rng()
    saved = state.get("random_state") if isinstance(state, dict) else None
    own = type(rng.bit_generator).__name__
    if not isinstance(saved, dict) or saved.get("bit_generator") != own:
        raise reader.error(f"state.json holds no {own} random state; received "
                           f"{saved!r:.200}")
    try:
        set_generator_state(rng, saved)
    except ValueError as error:
        raise reader.error(f"state.json holds an invalid random state ({error})") from None


def _restore_layer_random_states(reader, layers, state, required=False):
    """Give each layer its state from state.json's "layer_random_states"; all or nothing:
    on a bad entry every layer is put back as it was and InvalidModelFileError raised.
    Without ``required``, a file lacking the key (written before layer states were saved)
    leaves the layers as they are."""
    if not isinstance(state, dict) or "layer_random_states" not in state:
        if required:
            raise reader.error("state.json holds no layer_random_states")
        return   # seeded layers keep the generators they were built with
    saved = state["layer_random_states"]
    if not isinstance(saved, list) or len(saved) != len(layers):
        raise reader.error(f"state.json layer_random_states must be a list with one entry "
                           f"per layer ({len(layers)}); received {saved!r:.200}")
    previous = [layer.get_random_state() for layer in layers]
    for i, (layer, layer_state) in enumerate(zip(layers, saved)):
        try:
            layer.set_random_state(layer_state)
        except (ValueError, TypeError) as error:
            for done, before in zip(layers[:i], previous):
                done.set_random_state(before)
            raise reader.error(f"state.json layer_random_states[{i}] does not fit layer "
                               f"{i} ({error})") from None


def restore_backup(model, filepath):
    """Set the model's weights, optimizer state and random states from a file of
    :func:`save_backup`, and return the epoch to resume training from.

    Unlike :func:`load_model`, nothing is rebuilt from the file's config: the file must hold
    exactly the weights of ``model`` (their number, shapes and dtypes), the optimizer state
    of its optimizer's class, and the random states of its layers. Restored are the weights,
    the optimizer's step count, slots and (when a float) learning rate, the global random
    generator and those of seeded layers. Everything is read and checked before anything
    is set: on any error the model and the generators are unchanged.

    Args:
        model: a built, compiled model whose optimizer is built (as it is inside ``fit``).
        filepath: a file written by :func:`save_backup`.

    Returns:
        The epoch (int >= 0) that training resumes from.

    Raises:
        InvalidModelFileError: the file is damaged, is not a backup, or does not match the
            model.
    """
    if not (model.built and model.compiled and model.optimizer.built):
        raise ValueError(f"Model '{model.name}' must be built and compiled, with its optimizer "
                         f"built, to be restored from a backup. Received filepath={filepath!r}.")
    optimizer = model.optimizer
    with ArchiveReader(filepath, "model") as reader:
        config = reader.read_json("config.json")
        state = reader.read_json("state.json")
        if not isinstance(state, dict):
            raise reader.error(f"state.json is not an object; received {state!r:.200}")
        epoch = state.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise reader.error(f"state.json holds no epoch to resume from (an int >= 0), so it "
                               f"is not a backup of BackupAndRestore; received "
                               f"epoch={epoch!r:.100}")
        saved_optimizer = _member(_member(config, "compile_config"), "optimizer")
        name = _member(saved_optimizer, "class_name")
        if name != type(optimizer).__name__:
            raise reader.error(f"it was saved with optimizer {name!r:.100}, and model "
                               f"'{model.name}' is compiled with {type(optimizer).__name__!r}")
        learning_rate = _member(_member(saved_optimizer, "config"), "learning_rate")
        restore_lr = not isinstance(optimizer.get_config()["learning_rate"], dict)
        if restore_lr and (isinstance(learning_rate, bool)
                           or not isinstance(learning_rate, numbers.Real)
                           or not 0 <= learning_rate < float("inf")):
            raise reader.error(f"its optimizer learning_rate must be a finite float >= 0; "
                               f"received learning_rate={learning_rate!r:.100}")
        weights = _weights_in_file_order(model, reader)
        slots = _slots_in_file_order(model, reader, weights)
        names = [_weight_member(i) for i in range(len(weights))]
        names += [_ITERATIONS] + [_slot_member(i) for i in range(len(slots))]
        arrays = [n for n in reader.names if n.startswith(("weights/", "optimizer/"))]
        if set(arrays) != set(names):
            raise reader.error(f"it holds {len(arrays)} weight and optimizer arrays, and model "
                               f"'{model.name}' has {len(names)} ({len(weights)} weights, the "
                               f"step count and {len(slots)} optimizer slots): it is a backup "
                               f"of another model or optimizer")
        values = [reader.read_array(_weight_member(i), w.shape, w.dtype)
                  for i, w in enumerate(weights)]
        iterations = int(reader.read_array(_ITERATIONS, (), np.int64))
        if iterations < 0:
            raise reader.error(f"optimizer iterations={iterations} is negative")
        slot_values = [reader.read_array(_slot_member(i), slot.shape, slot.dtype)
                       for i, slot in enumerate(slots)]
        reader.warn_unknown(names + ["config.json", "state.json"])
        # Random states last among what can fail, each all or nothing, the global one
        # after the layers: a failure there undoes the layers' states.
        layers = model.random_state_layers()
        previous = [layer.get_random_state() for layer in layers]
        _restore_layer_random_states(reader, layers, state, required=True)
        try:
            _restore_random_state(reader, state)
        except InvalidModelFileError:
            for layer, layer_state in zip(layers, previous):
                layer.set_random_state(layer_state)
            raise
    with model.writing_weights():
        for weight, value in zip(weights, values):
            weight[...] = value
        for slot, value in zip(slots, slot_values):
            slot[...] = value
    optimizer.iterations = iterations
    if restore_lr:
        optimizer.learning_rate = float(learning_rate)
    return epoch


def _weights_in_file_order(model, reader):
    """``model.weight_arrays`` in the order of ``reader``'s file. Format 1 held a functional
    model's weights in the order of its graph's nodes; format 2 holds them in Keras's layer
    order (``Model.layers``), which differs in branched models (a ResNet block's shortcut)."""
    if reader.metadata["format_version"] >= 2 or not hasattr(model,
                                                             "weight_arrays_in_node_order"):
        return model.weight_arrays
    return model.weight_arrays_in_node_order()


def _slots_in_file_order(model, reader, weights):
    """The optimizer's slot arrays in the order of ``reader``'s file: per slot name, one per
    trainable weight, the weights in the order of ``weights`` (the file's)."""
    optimizer = model.optimizer
    if reader.metadata["format_version"] >= 2:
        return optimizer.get_slot_arrays()
    position = {id(w): i for i, w in enumerate(weights)}
    return optimizer.get_slot_arrays(sorted(optimizer._variables,
                                            key=lambda v: position.get(id(v), -1)))


def _member(obj, key):
    """``obj[key]`` of a JSON object, None when ``obj`` is not a dict or lacks ``key``."""
    return obj.get(key) if isinstance(obj, dict) else None


def load_weights(model, filepath):
    """Set the model's weights from a file of ``save_weights`` (or ``save``), minidl's or
    Keras's; a file that does not match the model's weights changes nothing.

    The format is read from the file's content: minidl's archive (weights in
    ``get_weights`` order), a Keras 3 ``.weights.h5`` or ``.keras`` file (matched by
    Keras's layout: layer by layer, by class; a compiled model's optimizer state is
    restored too when the file holds one of the same kind, as Keras does), or a legacy
    ``.h5`` weights or model file (by layer order, as Keras's ``load_weights``).

    Raises:
        InvalidModelFileError: the file is damaged or holds weights of another model.
        ImportError: a Keras file, and h5py is not installed
            (``pip install 'minidl[keras]'``).
    """
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it cannot take weights; "
                         f"build it first. Received filepath={filepath!r}.")
    kind = _content_kind(filepath)
    if kind == "keras":
        from minidl.saving.keras.archive import load_keras_weights
        load_keras_weights(model, filepath)
        return
    if kind == "hdf5":
        from minidl.saving.keras import archive
        if archive.is_legacy_h5(filepath):
            from minidl.saving.keras.legacy_h5 import load_legacy_weights
            load_legacy_weights(model, filepath)
        else:
            archive.load_keras_weights(model, filepath)
        return
    with ArchiveReader(filepath, ("weights", "model")) as reader:
        kind = reader.metadata["kind"]
        weights = _weights_in_file_order(model, reader)
        names = [_weight_member(i) for i in range(len(weights))]
        if kind == "weights" and _weight_member(len(names)) in reader.names:
            raise reader.error(f"it holds more weight arrays than the {len(names)} of model "
                               f"'{model.name}'")
        values = [reader.read_array(name, w.shape, w.dtype)
                  for name, w in zip(names, weights)]
        if kind == "weights":
            reader.warn_unknown(names)
    with model.writing_weights():
        for weight, value in zip(weights, values):
            weight[...] = value
