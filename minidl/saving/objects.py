"""serialize_keras_object / deserialize_keras_object: any object a config may hold, to JSON
and back, as Keras's ``keras.saving`` functions of those names.

A custom layer whose constructor takes another layer (or an initializer, a loss, a
function, an array) writes it in ``get_config`` with :func:`serialize_keras_object` and
rebuilds it in ``from_config`` with :func:`deserialize_keras_object`. Objects of minidl's
kinds are written as ``{"module", "class_name", "config", "registered_name"}`` (the module
says the kind: ``"minidl.layers"``, ...); functions as Keras's function object, by name;
numpy arrays by value. Reading takes these and Keras's own forms (``"keras.layers"``,
...), resolving every class and function through minidl's registries and the custom
objects only: nothing named in a config is imported or run.
"""
import numbers

import numpy as np

from minidl import (activations, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers.base import LAYERS, Layer
from minidl.losses.base import program_function
from minidl.saving.registration import get_registered_name
from minidl.utils.registry import custom_object_scope

# kind -> (base class, registry, module written, Keras's module); the schedules before the
# optimizers, whose module's name theirs extends.
_KINDS = (("layer", Layer, LAYERS, "minidl.layers", "keras.layers"),
          ("loss", losses.Loss, losses.LOSSES, "minidl.losses", "keras.losses"),
          ("metric", metrics.Metric, metrics.METRICS, "minidl.metrics", "keras.metrics"),
          ("schedule", schedules.LearningRateSchedule, schedules.SCHEDULES,
           "minidl.schedules", "keras.optimizers.schedules"),
          ("optimizer", optimizers.Optimizer, optimizers.OPTIMIZERS, "minidl.optimizers",
           "keras.optimizers"),
          ("activation", activations.Activation, activations.ACTIVATIONS,
           "minidl.activations", "keras.activations"),
          ("initializer", initializers.Initializer, initializers.INITIALIZERS,
           "minidl.initializers", "keras.initializers"),
          ("regularizer", regularizers.Regularizer, regularizers.REGULARIZERS,
           "minidl.regularizers", "keras.regularizers"),
          ("constraint", constraints.Constraint, constraints.CONSTRAINTS,
           "minidl.constraints", "keras.constraints"))
_MAX_DEPTH = 64

# kind -> the function making an object of that kind from minidl's spec (a name or
# {"class_name", "config"}).
GETTERS = {"loss": losses.get, "metric": metrics.get, "optimizer": optimizers.get,
           "schedule": schedules.deserialize, "activation": activations.get,
           "initializer": initializers.get, "regularizer": regularizers.get,
           "constraint": constraints.get}


def serialize_keras_object(obj):
    """A JSON-able description of ``obj`` that :func:`deserialize_keras_object` rebuilds.

    Args:
        obj: None, a bool, number or string, a list, tuple or dict of such values, a numpy
            array or scalar, an object of one of minidl's kinds (a layer, loss, metric,
            optimizer, schedule, activation, initializer, regularizer, constraint), or a
            function (saved by name: loading needs it registered or in ``custom_objects``).

    Raises:
        TypeError: an object of none of these kinds (its type named).

    Example:
        >>> config["sublayer"] = minidl.saving.serialize_keras_object(self.sublayer)
    """
    return _serialize(obj, 0)


def _serialize(obj, depth):
    if depth > _MAX_DEPTH:
        raise ValueError("serialize_keras_object: the object nests too deeply.")
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Number) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"class_name": "__numpy__",
                "config": {"value": obj.tolist(), "dtype": str(obj.dtype)}}
    if isinstance(obj, (list, tuple)):
        return [_serialize(item, depth + 1) for item in obj]
    if isinstance(obj, dict):
        if not all(isinstance(key, str) for key in obj):
            raise TypeError(f"serialize_keras_object: a dict's keys must be strings; received "
                            f"{sorted(map(repr, obj))[:5]}.")
        return {key: _serialize(value, depth + 1) for key, value in obj.items()}
    if isinstance(obj, (activations.FunctionActivation, regularizers.FunctionRegularizer)):
        return _function(obj.fn)
    for _, base, _, module, _ in _KINDS:
        if isinstance(obj, base):
            cls = type(obj)
            return {"module": module,
                    "class_name": cls.__dict__.get("serialized_name", cls.__name__),
                    "config": obj.get_config(), "registered_name": get_registered_name(cls)}
    if callable(obj) and not isinstance(obj, type):
        return _function(obj)
    raise TypeError(f"serialize_keras_object cannot describe an object of type "
                    f"{type(obj).__name__}: {obj!r:.100}.")


def _function(fn):
    from minidl.saving.keras.config import _function_object
    name = get_registered_name(fn)
    if name == "<lambda>":
        raise ValueError("serialize_keras_object: a lambda expression has no name to save it "
                         "by (minidl never writes code into a config); define a named "
                         "function.")
    return _function_object(name)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True):
    """The object :func:`serialize_keras_object` described (or Keras's form of it).

    Args:
        config: the description.
        custom_objects: optional dict from names to the program's own classes and functions
            (as :func:`minidl.saving.custom_object_scope`).
        safe_mode: Keras's switch for loading a ``lambda``'s bytecode; minidl never loads
            code, so both values read the same way (a bool).

    Raises:
        ValueError: a class or function that is neither minidl's, registered, nor in
            ``custom_objects``; a ``lambda``'s bytecode; a malformed description.

    Example:
        >>> sublayer = minidl.saving.deserialize_keras_object(config.pop("sublayer"))
    """
    if not isinstance(safe_mode, (bool, np.bool_)):
        raise TypeError(f"deserialize_keras_object: `safe_mode` must be True or False. "
                        f"Received: safe_mode={safe_mode!r:.100}")
    with custom_object_scope(custom_objects):
        return _deserialize(config, 0)


def _deserialize(config, depth):
    if depth > _MAX_DEPTH:
        raise ValueError("deserialize_keras_object: the config nests too deeply.")
    if isinstance(config, list):
        return [_deserialize(item, depth + 1) for item in config]
    if not isinstance(config, dict):
        return config
    if "class_name" not in config:
        return {key: _deserialize(value, depth + 1) for key, value in config.items()}
    class_name, inner = config["class_name"], config.get("config")
    if class_name == "__numpy__":
        if not isinstance(inner, dict) or set(inner) != {"value", "dtype"}:
            raise ValueError(f"A __numpy__ config must be {{'value', 'dtype'}}; received "
                             f"{inner!r:.200}.")
        return np.asarray(inner["value"], dtype=np.dtype(str(inner["dtype"])))
    if class_name == "__lambda__":
        raise ValueError("deserialize_keras_object: this config holds a lambda expression's "
                         "Python bytecode, which minidl never loads; define it as a named "
                         "function and give it in custom_objects.")
    if class_name == "function":
        return _named_function(config)
    return _instance(config)


def _named_function(config):
    registered, name = config.get("registered_name"), config.get("config")
    if not isinstance(name, str):
        raise ValueError(f"A function config must name it; received {name!r:.100}.")
    function = (">" in str(registered) and program_function(registered)) or \
        program_function(name)
    if function:
        return function
    # minidl's own functions of Keras's names (keras.activations.relu, keras.losses.mse).
    for module in (activations, losses):
        function = getattr(module, name, None)
        if callable(function) and not isinstance(function, type) and \
                getattr(function, "__module__", "").startswith("minidl."):
            return function
    raise ValueError(f"Unknown function {name!r}: a function of your own must be registered "
                     f"with @minidl.saving.register_serializable() or given in "
                     f"custom_objects.")


def _instance(config):
    """The object of a ``{"module", "class_name", "config", ...}`` description: its kind
    from the module (minidl's or Keras's), else the first kind that has the class."""
    module = config.get("module")
    for kind, _, registry, ours, keras_module in _KINDS:
        if module == ours or (isinstance(module, str) and _is_keras(module, keras_module)):
            return _make(kind, registry, config, module.startswith("keras"))
    # No module, or one of Keras's internals ('keras.src.backend.torch.optimizers...'): the
    # first kind that has the class.
    keras_form = isinstance(module, str) and module.split(".")[0] == "keras"
    for kind, _, registry, _, _ in _KINDS:
        if (module is None or keras_form) and _has(registry, _registered(config)):
            return _make(kind, registry, config, keras_form)
    raise ValueError(f"deserialize_keras_object: {config.get('class_name')!r:.100} (module "
                     f"{module!r:.100}) is no class minidl has, registered, or given in "
                     f"custom_objects.")


def _has(registry, name):
    try:
        registry.lookup(name)
        return True
    except ValueError:
        return False


def _is_keras(module, keras_module):
    return module == keras_module or module.startswith(keras_module + ".")


def _make(kind, registry, config, keras_form):
    from minidl.saving.keras import config as kconfig
    if kind == "layer":
        spec = kconfig.layer_spec_from_keras(config) if keras_form else \
            {"class_name": _registered(config), "config": config.get("config") or {}}
        return registry.get(spec, base=Layer)
    if keras_form and kind == "optimizer":
        from minidl.saving.keras.compile_settings import _optimizer_from_keras
        spec = _optimizer_from_keras(config, "config")
    elif keras_form:
        keras_only = kconfig._KERAS_ONLY_INITIALIZER_ARGS if kind == "initializer" else None
        spec = kconfig._object_from_keras(config, registry, "config", keras_only)
    else:
        spec = {"class_name": _registered(config), "config": config.get("config") or {}}
    return GETTERS[kind](spec)


def _registered(config):
    registered = config.get("registered_name")
    return registered if isinstance(registered, str) and ">" in registered \
        else config.get("class_name")
