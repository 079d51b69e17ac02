"""Saving and loading whole models and their weights (see :mod:`minidl.saving.format` for
the archive itself).

A model file holds what an exact resume needs: the weights, the optimizer's step count
(which also fixes a learning-rate schedule's position) and slots, and the state of the
random generator that shuffles batches, so that training on after a load in a new process
gives the same weights, bit for bit, as never having stopped.
"""
import json

import numpy as np

from minidl import losses, metrics, optimizers
from minidl.layers.base import LAYERS, Layer, skip_weight_init
from minidl.saving.format import _FILE_ERRORS, ArchiveReader, InvalidModelFileError, write_archive
from minidl.utils.random import global_rng
from minidl.utils.registry import serialize

_ITERATIONS = "optimizer/iterations.npy"


def _weight_member(i):
    return f"weights/{i:05d}.npy"


def _slot_member(i):
    return f"optimizer/{i:05d}.npy"


# ---- configs ----

def model_config(model):
    """``{"class_name": "Sequential", "config": model.get_config()}``."""
    return {"class_name": type(model).__name__, "config": model.get_config()}


def compile_config(model):
    """The arguments of the model's ``compile`` call, serialized; None if not compiled."""
    if not model.compiled:
        return None
    specs = []
    for spec in model._metric_specs:
        if isinstance(spec, type):
            spec = spec()
        specs.append(spec if isinstance(spec, str) else serialize(spec))
    return {"optimizer": optimizers.serialize(model.optimizer),
            "loss": None if model.loss is None else losses.serialize(model.loss),
            "metrics": specs}


def sequential_from_config(config):
    """The (built, when the config has a build shape) Sequential of ``get_config()``."""
    from minidl.models.sequential import Sequential
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError(f"A Sequential config must be a dict with a 'layers' list; "
                         f"received {config!r:.200}.")
    layers = [LAYERS.get(spec, base=Layer) for spec in config["layers"]]
    for spec, layer in zip(config["layers"], layers):
        if not isinstance(spec, dict) or not isinstance(layer, Layer):
            raise ValueError(f"Each layer config must be {{'class_name': ..., 'config': ...}}; "
                             f"received {spec!r:.200}.")
    model = Sequential(layers, name=config.get("name", "sequential"))
    shape = config.get("build_input_shape")
    if shape is not None:
        if not isinstance(shape, list) or len(shape) < 2 or shape[0] is not None:
            raise ValueError(f"build_input_shape must be a list [None, d1, ...]; received "
                             f"build_input_shape={shape!r:.200}.")
        model.build(tuple(shape))
    return model


def model_from_json(json_string):
    """A model from the JSON of ``model.to_json()`` (architecture only, fresh weights).

    Class names resolve through minidl's registries only; register custom classes with
    :func:`minidl.saving.register_serializable` first.

    Example:
        >>> clone = minidl.models.model_from_json(model.to_json())
    """
    spec = json.loads(json_string)
    return _model_from_spec(spec)


def _model_from_spec(spec):
    if not isinstance(spec, dict) or spec.get("class_name") != "Sequential":
        name = spec.get("class_name") if isinstance(spec, dict) else spec
        raise ValueError(f"Unknown model class {name!r:.200}; minidl models are "
                         f"'Sequential'.")
    return sequential_from_config(spec.get("config"))


# ---- save ----

def save_model(model, filepath):
    """Save the model (architecture, weights, compile settings, optimizer state and the
    shuffling random state) to one archive at ``filepath``, atomically.

    Args:
        model: a built :class:`minidl.models.Sequential`.
        filepath: target path; the extension '.minidl' is recommended, any name works.

    Example:
        >>> model.save("mnist.minidl")
        >>> same = minidl.models.load_model("mnist.minidl")
    """
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save; "
                         f"build it or train it first. Received filepath={filepath!r}.")
    arrays = [(_weight_member(i), w) for i, w in enumerate(model.weights)]
    if model.compiled and getattr(model, "_optimizer_built", False):
        arrays.append((_ITERATIONS, np.array(model.optimizer.iterations, np.int64)))
        arrays += [(_slot_member(i), s)
                   for i, s in enumerate(model.optimizer.get_slot_arrays())]
    config = model_config(model)
    config["compile_config"] = compile_config(model)
    state = {"random_state": global_rng().bit_generator.state}
    write_archive(filepath, {"config.json": config, "state.json": state}, arrays, "model")


def save_weights(model, filepath):
    """Save only the model's weights (in get_weights order) to an archive, atomically."""
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save. "
                         f"Received filepath={filepath!r}.")
    arrays = [(_weight_member(i), w) for i, w in enumerate(model.weights)]
    write_archive(filepath, {}, arrays, "weights")


# ---- load ----

def load_model(filepath, compile=True, restore_random_state=True):
    """Load a model saved by ``model.save``.

    The model comes back built, with its weights, and (when it was compiled and
    ``compile=True``) compiled with the same optimizer, loss and metrics, the optimizer's
    step count and slots restored. Nothing in the file is executed, imported or unpickled:
    class names resolve through minidl's registries only.

    Args:
        filepath: the file written by ``model.save``.
        compile: compile the model as it was compiled when saved.
        restore_random_state: restore the global random generator (batch shuffling,
            dropout) to its state at save time, so that training resumes exactly.

    Returns:
        A :class:`minidl.models.Sequential`.

    Raises:
        InvalidModelFileError: the file is not a minidl model file, is damaged or
            inconsistent, or names a class that is not registered.

    Example:
        >>> model = minidl.models.load_model("mnist.minidl")
    """
    with ArchiveReader(filepath, "model") as reader:
        config = reader.read_json("config.json")
        state = reader.read_json("state.json")
        if not isinstance(config, dict):
            raise reader.error(f"config.json is not an object; received {config!r:.200}")
        try:
            with skip_weight_init():
                model = _model_from_spec(config)
                compiled = config.get("compile_config") if compile else None
                if compiled is not None:
                    _compile_from_config(model, compiled)
        except InvalidModelFileError:
            raise
        except (RecursionError,) + _FILE_ERRORS as error:
            raise reader.error(f"its config does not describe a valid model ({error})") from None
        if not model.built:
            raise reader.error("its config has no build_input_shape, so it holds no weights")
        expected = [_weight_member(i) for i in range(len(model.weights))]
        for name, weight in zip(expected, model.weights):
            reader.read_array(name, weight.shape, weight.dtype, out=weight)
        if model.compiled:
            iterations = int(reader.read_array(_ITERATIONS, (), np.int64))
            if iterations < 0:
                raise reader.error(f"optimizer iterations={iterations} is negative")
            slots = model.optimizer.get_slot_arrays()
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
            _restore_random_state(reader, state)
    return model


def _compile_from_config(model, compiled):
    if not isinstance(compiled, dict):
        raise ValueError(f"compile_config must be an object; received {compiled!r:.200}")
    specs = compiled.get("metrics") or []
    if not isinstance(specs, list):
        raise ValueError(f"compile_config metrics must be a list; received {specs!r:.200}")
    model.compile(optimizer=optimizers.get(compiled.get("optimizer")),
                  loss=None if compiled.get("loss") is None else losses.get(compiled["loss"]),
                  metrics=[m if isinstance(m, str) else metrics.get(m) for m in specs])


def _restore_random_state(reader, state):
    rng = global_rng()
    saved = state.get("random_state") if isinstance(state, dict) else None
    own = type(rng.bit_generator).__name__
    if not isinstance(saved, dict) or saved.get("bit_generator") != own:
        raise reader.error(f"state.json holds no {own} random state; received "
                           f"{saved!r:.200}")
    previous = rng.bit_generator.state
    try:
        rng.bit_generator.state = saved
    except _FILE_ERRORS as error:
        rng.bit_generator.state = previous
        raise reader.error(f"state.json holds an invalid random state ({error})") from None


def load_weights(model, filepath):
    """Set the model's weights from a file of ``save_weights`` (or ``save``); a file that
    does not match the model's weights changes nothing."""
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it cannot take weights; "
                         f"build it first. Received filepath={filepath!r}.")
    kind = _peek_kind(filepath)
    with ArchiveReader(filepath, kind) as reader:
        names = [_weight_member(i) for i in range(len(model.weights))]
        if kind == "weights" and _weight_member(len(names)) in reader.names:
            raise reader.error(f"it holds more weight arrays than the {len(names)} of model "
                               f"'{model.name}'")
        values = [reader.read_array(name, w.shape, w.dtype)
                  for name, w in zip(names, model.weights)]
        if kind == "weights":
            reader.warn_unknown(names)
    for weight, value in zip(model.weights, values):
        weight[...] = value


def _peek_kind(filepath):
    """'model' for a file of ``save``, else 'weights' (then checked by ArchiveReader)."""
    try:
        with ArchiveReader(filepath, "model"):
            return "model"
    except InvalidModelFileError as error:
        if "kind='weights'" in str(error):
            return "weights"
        raise
