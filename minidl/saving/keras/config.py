"""Translation between Keras JSON configs and minidl's specs.

Keras 3 writes a model as nested ``{"module", "class_name", "config", "registered_name"}``
objects (a ``.keras`` file's config.json, the ``model_config`` attribute of a legacy
``.h5``); Keras 2 wrote ``{"class_name", "config"}`` with older field names
(``batch_input_shape``, inbound nodes as ``[[name, node, tensor, kwargs], ...]``,
``training_config`` with ``optimizer_config``). minidl's own specs already use Keras's class
and field names, so the translation is mostly a walk that:

- resolves every class through minidl's registries and the program's custom objects only
  (nothing named in a file is ever imported), refusing a ``module`` outside Keras's own
  unless the class is registered in minidl with ``register_serializable`` or given in
  ``custom_objects``; a ``Lambda`` loads only with a named function the program gives, never
  with the bytecode of a ``lambda`` expression;
- turns Keras's objects (a ``DTypePolicy``, an initializer with its ``module``) into
  minidl's forms (a dtype string, ``{"class_name", "config"}``) and back;
- drops the arguments only Keras has (``quantization_config``, ``ragged``, ``use_ema``, ...)
  when they hold their default, and refuses them otherwise, since minidl cannot honour them.

Every error is a ValueError that says where in the config it is (layer name and field).
The compile settings (``compile_config``, ``training_config``) are translated in
:mod:`minidl.saving.keras.compile_settings`; this module's functions of those names call it.
"""
import functools
import inspect
import numbers
import re

from minidl import (activations, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers.base import LAYERS, MODELS, Layer
from minidl.layers.lambda_layer import Lambda
from minidl.utils.registry import _custom_object, custom_object_scope, is_function, serialize

# Deeper than any real model's nesting (a model in a model in a wrapper ...): a bound so that
# hostile JSON cannot exhaust the stack.
_MAX_DEPTH = 32

# Arguments only Keras has, with the value that changes nothing (their default): dropped
# when they hold it, refused otherwise. Keyed by class name; "*" applies to every layer.
_KERAS_ONLY_LAYER_ARGS = {
    "*": {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
          "ragged": False, "optional": False, "autocast": True,
          # Keras's base Layer writes it for every layer, custom layers included.
          "activity_regularizer": None},
    "BatchNormalization": {"renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99},
    "LayerNormalization": {"rms_scaling": False},
    "Flatten": {"data_format": "channels_last"},
    "RandomContrast": {"data_format": "channels_last"},
    "RandomBrightness": {"data_format": "channels_last"},
    # How Keras's lookups hash out-of-vocabulary tokens into their OOV buckets.
    "StringLookup": {"oov_method": "floormod", "salt": None},
    "IntegerLookup": {"oov_method": "floormod", "salt": None},
    # Keras 2's RNN layers: the batch-major layout is the only one minidl has.
    "LSTM": {"time_major": False},
    "GRU": {"time_major": False},
    "SimpleRNN": {"time_major": False},
}
# Keras 2 arguments that change nothing in what is computed (a kernel choice, a length
# that the input shape carries anyway): dropped whatever their value, as Keras 3 does.
_KERAS2_IGNORED_LAYER_ARGS = {
    "LSTM": ("implementation",), "GRU": ("implementation",), "SimpleRNN": ("implementation",),
    "Embedding": ("input_length",),
}
# Layers without weights whose Keras constructor takes no ``trainable`` (left out when
# writing: it changes nothing on a layer without weights) and whose dtype Keras writes as
# a string.
_NO_TRAINABLE_IN_KERAS = ("Discretization", "SpatialDropout1D", "SpatialDropout2D",
                          "SpatialDropout3D")
_KERAS_ONLY_INITIALIZER_ARGS = {"input_axes": None, "output_axes": None}

# The module Keras 3.15 writes for each kind of object (its public package).
_KERAS_MODULES = {"layer": "keras.layers", "initializer": "keras.initializers",
                  "regularizer": "keras.regularizers", "constraint": "keras.constraints",
                  "optimizer": "keras.optimizers", "loss": "keras.losses",
                  "metric": "keras.metrics", "schedule": "keras.optimizers.schedules"}
_MODEL_MODULES = {"Functional": ("keras.src.models.functional", "Functional"),
                  "Sequential": ("keras", None)}
# ``shared_object_id`` marks an object that Keras serialized at several places (one
# initializer instance given to two layers); minidl makes one object per place.
_OBJECT_KEYS = ("module", "class_name", "config", "registered_name", "shared_object_id")
_LAYER_KEYS = _OBJECT_KEYS + ("build_config", "name", "inbound_nodes", "compile_config")
# Layers that hold only code (TensorFlow ops recorded by tf.keras).
_REFUSED_CLASSES = ("TFOpLambda", "SlicingOpLambda")


# ---- helpers shared by both directions ----

def _fail(where, message):
    raise ValueError(f"{where}: {message}")


def _is_keras_module(module):
    return module is None or module == "keras" or (
        isinstance(module, str) and (module.startswith("keras.") or module == "tf_keras"
                                     or module.startswith("tf_keras.")))


def _resolve_class(obj, registry, where, allowed=_OBJECT_KEYS):
    """The minidl class a Keras object names, through ``registry`` only.

    A class outside Keras's modules (a user's class) must be registered in minidl under its
    ``registered_name`` (``"package>Name"``); nothing is ever imported."""
    if not isinstance(obj, dict):
        _fail(where, f"expected a Keras object {{'class_name': ..., 'config': {{...}}}}; "
                     f"received {obj!r:.200}")
    extra = sorted(str(key) for key in obj if key not in allowed)
    if extra:
        _fail(where, f"unknown keys {', '.join(extra)[:200]} (a Keras object may hold "
                     f"{', '.join(allowed)})")
    class_name, module = obj.get("class_name"), obj.get("module")
    registered = obj.get("registered_name")
    if not isinstance(class_name, str) or not class_name:
        _fail(where, f"class_name must be a non-empty string; received {class_name!r:.100}")
    if class_name in _REFUSED_CLASSES or registered in _REFUSED_CLASSES:
        _fail(where, f"class_name={class_name!r}: a {class_name} layer holds Python code, "
                     f"which minidl never loads; rebuild the model without it")
    if module is not None and not isinstance(module, str):
        _fail(where, f"module must be a string; received {module!r:.100}")
    if registered is not None and not isinstance(registered, str):
        _fail(where, f"registered_name must be a string or null; received "
                     f"{registered!r:.100}")
    custom = _custom_class(registry, registered, class_name)
    if custom is not None:
        # The program's own class, given in custom_objects (or a scope): Keras looks these
        # up first, by registered_name, then class_name.
        if custom.__name__ in _REFUSED_CLASSES:
            _fail(where, f"class_name={class_name!r:.100} is a {custom.__name__} layer, "
                         f"which holds Python code that minidl never loads")
        return custom
    if _is_keras_module(module) and (registered is None or registered == class_name
                                     or ">" not in registered):
        name = class_name
    elif registered is not None and ">" in registered:
        # A custom object: only a class the user registered in minidl under that name.
        name = registered
    else:
        _fail(where, f"module={module!r:.100} is not Keras's own and registered_name="
                     f"{registered!r:.100} names no class registered in minidl; register the "
                     f"class with @minidl.saving.register_serializable() before loading, or "
                     f"pass it in load_model's custom_objects")
    try:
        cls = registry.lookup(name)
    except ValueError:
        _fail(where, f"class_name={name!r:.100} is no {registry.kind} that minidl has (a "
                     f"custom class must be registered with "
                     f"@minidl.saving.register_serializable() or given in load_model's "
                     f"custom_objects)")
    if cls.__name__ in _REFUSED_CLASSES:  # names resolve case-insensitively: 'lambda'
        _fail(where, f"class_name={class_name!r:.100} is a {cls.__name__} layer, which holds "
                     f"Python code that minidl never loads")
    return cls


def _custom_class(registry, *names):
    """The custom object of ``registry``'s kind under the first of ``names`` that has one."""
    for name in names:
        if isinstance(name, str) and name and registry.accepts is not None:
            custom = _custom_object(name, registry.accepts)
            if custom is not None:
                return custom
    return None


@functools.lru_cache(maxsize=None)
def _accepted_fields(cls):
    """The keyword arguments ``cls``'s constructor takes, its bases' included while each
    ``__init__`` passes ``**kwargs`` on (cached: ``inspect.signature`` was a fifth of the
    time of loading a small model)."""
    fields = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        fields.update(p.name for p in parameters
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self")
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return frozenset(fields)


def _same(value, default):
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    if isinstance(value, numbers.Real) and isinstance(default, numbers.Real):
        return float(value) == float(default)
    return value == default


def _plain(value, where, depth=0):
    """A JSON value with Keras's wrapped values unwrapped (a numpy array, a tuple): any
    other object in a plain field is refused."""
    if depth > _MAX_DEPTH:
        _fail(where, "the value nests too deeply")
    if isinstance(value, list):
        return [_plain(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        if "class_name" in value:
            kind = value.get("class_name")
            if kind in ("__numpy__", "__tensor__", "__tuple__") and \
                    isinstance(value.get("config"), dict):
                return _plain(value["config"].get("value"), where, depth + 1)
            _fail(where, f"holds an object of class_name={kind!r:.100}, which minidl does not "
                         f"load in this field")
        return {key: _plain(item, where, depth + 1) for key, item in value.items()}
    return value


# ---- Keras -> minidl: objects inside layer configs ----

def _dtype_from_keras(value, where):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "Policy",
                                                                "FloatDTypePolicy"):
        if not _is_keras_module(value.get("module")):
            _fail(where, f"dtype policy of module {value.get('module')!r:.100} is not Keras's")
        name = value.get("config", {}).get("name") if isinstance(value.get("config"),
                                                                  dict) else None
        if isinstance(name, str):
            return name
    _fail(where, f"dtype must be a dtype name or a Keras DTypePolicy; received "
                 f"{value!r:.200}")


def _object_from_keras(value, registry, where, keras_only=None, depth=0):
    """A Keras initializer / regularizer / constraint / schedule / loss / metric (a name or a
    Keras object) -> minidl's form (the name, or ``{"class_name", "config"}``)."""
    if value is None or isinstance(value, str):
        if isinstance(value, str):
            try:
                registry.lookup(value)
            except ValueError as error:
                _fail(where, str(error))
        return value
    if depth > _MAX_DEPTH:
        _fail(where, "the value nests too deeply")
    cls = _resolve_class(value, registry, where)
    config = value.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        _fail(where, f"config must be an object; received {config!r:.200}")
    config = _config_from_keras(cls, config, where, keras_only or {}, depth + 1)
    if registry in _SHORT_NAME_REGISTRIES:
        name = _snake_name(cls, registry)
        if name is not None and _config_of_name(registry, name) == config:
            # Keras writes every initializer as an object; minidl's layers default to names
            # ('glorot_uniform'), which is what an object with default arguments means.
            return name
    return {"class_name": _minidl_name(cls, value), "config": config}


_SHORT_NAME_REGISTRIES = (initializers.INITIALIZERS, regularizers.REGULARIZERS,
                          constraints.CONSTRAINTS)


def _snake_name(cls, registry):
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
    try:
        return name if registry.lookup(name) is cls else None
    except ValueError:
        return None


def _config_of_name(registry, name):
    """The config of what the name stands for ('l1_l2' is L1L2(0.01, 0.01), not L1L2())."""
    get = {initializers.INITIALIZERS: initializers.get, regularizers.REGULARIZERS:
           regularizers.get, constraints.CONSTRAINTS: constraints.get}[registry]
    try:
        return get(name).get_config()
    except (TypeError, ValueError):
        return None


def _minidl_name(cls, obj):
    registered = obj.get("registered_name")
    return registered if isinstance(registered, str) and ">" in registered else cls.__name__


def _function_name(value, where):
    """The name that Keras 3's ``{"class_name": "function", "config": name, ...}`` stands
    for, to be looked up in minidl's registries (never imported).

    Keras writes its own functions (``keras.losses.mean_squared_error``) with module
    'builtins' and resolves them by name among its built-ins; a function registered with
    ``register_keras_serializable`` carries its ``"package>name"`` as registered_name, which
    minidl resolves only if the function is registered in minidl under that name."""
    extra = sorted(str(key) for key in value if key not in _OBJECT_KEYS)
    if extra:
        _fail(where, f"unknown keys {', '.join(extra)[:200]} in a function object")
    module, name = value.get("module"), value.get("config")
    registered = value.get("registered_name")
    if not isinstance(name, str):
        _fail(where, f"a function config must be its name; received {name!r:.100}")
    if isinstance(registered, str) and ">" in registered:
        return registered
    if _is_keras_module(module) or module == "builtins" or \
            _custom_object(name, is_function) is not None:
        return name
    _fail(where, f"a function {name!r:.100} of module {module!r:.100} is not one of Keras's; "
                 f"register it in minidl with @minidl.saving.register_serializable() or give "
                 f"it in load_model's custom_objects")


def _checked_name(value, where, get):
    """An object given by name (or as Keras 3's function object): the name, once ``get``
    knows it (a registered name, or a function of the program's); any other value
    unchanged. Used for losses, metrics, activations and regularizers."""
    if isinstance(value, dict) and value.get("class_name") == "function":
        value = _function_name(value, where)
    if isinstance(value, str):
        try:
            get(value)
        except ValueError as error:
            _fail(where, str(error))
    return value


def _activation_from_keras(value, where):
    value = _checked_name(value, where, activations.get)
    if value is None or isinstance(value, str):
        return value
    return _object_from_keras(value, activations.ACTIVATIONS, where)


def _config_from_keras(cls, config, where, keras_only, depth=0, ignored=()):
    """A Keras config for minidl class ``cls``: fields translated, Keras-only fields dropped
    at their default and refused otherwise, unknown fields refused."""
    if depth > _MAX_DEPTH:
        _fail(where, "the config nests too deeply")
    accepted = _accepted_fields(cls)
    out = {}
    for key, value in config.items():
        field = f"{where} field {key!r}"
        if not isinstance(key, str):
            _fail(where, f"field names must be strings; received {key!r:.100}")
        if key in ignored or (key in keras_only and _same(value, keras_only[key])):
            continue
        if key in accepted:
            out[key] = _value_from_keras(key, value, field, depth,
                                         own=not cls.__module__.startswith("minidl."))
        elif key in keras_only:
            if not _same(value, keras_only[key]):
                _fail(where, f"{key}={value!r:.100} is a Keras argument that minidl cannot "
                             f"honour; only its default {keras_only[key]!r} loads")
        else:
            _fail(where, f"unknown field {key!r} (minidl's {cls.__name__} takes "
                         f"{', '.join(sorted(accepted))})")
    return out


def _value_from_keras(key, value, where, depth, own=False):
    if key == "dtype":
        return _dtype_from_keras(value, where)
    if key.endswith("_initializer"):
        return _object_from_keras(value, initializers.INITIALIZERS, where,
                                  _KERAS_ONLY_INITIALIZER_ARGS, depth)
    if key.endswith("_regularizer"):
        value = _checked_name(value, where, regularizers.get)
        if value is None or isinstance(value, str):
            return value
        return _object_from_keras(value, regularizers.REGULARIZERS, where, None, depth)
    if key.endswith("_constraint"):
        return _object_from_keras(value, constraints.CONSTRAINTS, where, None, depth)
    if key in ("activation", "recurrent_activation"):
        return _activation_from_keras(value, where)
    if key == "learning_rate" and isinstance(value, dict):
        return _object_from_keras(value, schedules.SCHEDULES, where, None, depth)
    if key in ("layer", "backward_layer") and isinstance(value, dict):
        return _layer_from_keras(value, where, depth + 1)
    if own and isinstance(value, dict) and "class_name" in value:
        # A program's own class gets its nested objects as Keras's from_config does, as
        # written (it rebuilds them, with minidl.saving.deserialize_keras_object).
        return value
    return _plain(value, where)


# ---- Keras -> minidl: layers and models ----

def layer_spec_from_keras(spec):
    """A Keras layer config (Keras 3 or Keras 2) -> minidl's ``{"class_name", "config"}``.

    Args:
        spec: ``{"module", "class_name", "config", "registered_name", ...}`` as Keras's
            ``serialize_keras_object(layer)`` writes it (or Keras 2's ``{"class_name",
            "config"}``).

    Returns:
        The spec that ``minidl.layers.deserialize`` / ``LAYERS.get`` accepts.

    Raises:
        ValueError: a class minidl does not have, a Lambda, a module that is not Keras's,
            a Keras-only argument away from its default; the message names the place.
    """
    return _layer_from_keras(spec, "layer", 0)


def _layer_name(spec):
    config = spec.get("config") if isinstance(spec, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def _layer_from_keras(spec, where, depth):
    if depth > _MAX_DEPTH:
        _fail(where, "layers nest too deeply")
    if isinstance(spec, dict):
        name = _layer_name(spec)
        label = f"{where} {name!r:.100}" if name else where
        where = f"{label} ({str(spec.get('class_name'))[:60]})"
    cls = _resolve_class(spec, LAYERS, where, allowed=_LAYER_KEYS)
    config = spec.get("config", {})
    if not isinstance(config, dict):
        _fail(where, f"config must be an object; received {config!r:.200}")
    from minidl.models import Model, Sequential
    if issubclass(cls, Sequential):
        return {"class_name": "Sequential",
                "config": _sequential_from_keras(config, where, depth)}
    if issubclass(cls, Model) and not getattr(cls, "_user_call", False):
        return {"class_name": "Functional",
                "config": _functional_from_keras(config, where, depth)}
    class_name = _minidl_name(cls, spec)
    config = dict(config)
    if cls.__name__ == "InputLayer":
        _input_layer_from_keras2(config)
    if cls.__name__ == "Lambda":
        _lambda_from_keras(config, where)
    keras_only = dict(_KERAS_ONLY_LAYER_ARGS["*"])
    keras_only.update(_KERAS_ONLY_LAYER_ARGS.get(cls.__name__, {}))
    ignored = _KERAS2_IGNORED_LAYER_ARGS.get(cls.__name__, ())
    if "batch_input_shape" in config and cls.__name__ != "InputLayer":
        # Keras 2 put the model's input shape on its first layer; the caller makes an
        # InputLayer of it.
        ignored = ignored + ("batch_input_shape",)
    config = _config_from_keras(cls, config, where, keras_only, depth, ignored)
    axis = config.get("axis")
    if cls.__name__ in _ONE_AXIS_AS_INT and isinstance(axis, list) and len(axis) == 1:
        config["axis"] = axis[0]  # Keras keeps the axis it was given as a list
    return {"class_name": class_name, "config": config}


_ONE_AXIS_AS_INT = ("LayerNormalization", "Normalization", "BatchNormalization")


def _lambda_from_keras(config, where):
    """A Keras Lambda's functions (``function``, a callable ``output_shape`` or ``mask``) ->
    their names, in place; minidl's Lambda then takes them from the program (registered or
    in ``custom_objects``). A ``lambda`` expression, which Keras stores as bytecode, is
    refused: minidl never loads code from a file."""
    keras2 = config.pop("function_type", None), config.pop("output_shape_type", None)
    for key in ("module", "output_shape_module"):
        config.pop(key, None)
    for key, kind in (("function", keras2[0]), ("output_shape", keras2[1]), ("mask", None)):
        value = config.get(key)
        field = f"{where} field {key!r}"
        if kind == "lambda" or (isinstance(value, dict) and
                                value.get("class_name") == "__lambda__"):
            _fail(field, "this Lambda layer's function is a lambda expression, stored in the "
                         "file as Python bytecode, which minidl never loads; define it as a "
                         "named function and give it in load_model's custom_objects, or "
                         "rebuild the model in code")
        if isinstance(value, dict) and value.get("class_name") == "function":
            config[key] = _function_name(value, field)
        elif kind == "function":   # Keras 2: the function's name
            if not isinstance(value, str):
                _fail(field, f"a function must be given by its name; received {value!r:.100}")
        elif key == "function" and not isinstance(value, str):
            _fail(field, f"expected a named function; received {value!r:.100}")


def _input_layer_from_keras2(config):
    """Keras 2's InputLayer fields (in place): ``batch_input_shape`` -> ``batch_shape``."""
    if "batch_input_shape" in config and "batch_shape" not in config:
        config["batch_shape"] = config.pop("batch_input_shape")
    if "input_shape" in config and "batch_shape" not in config and \
            isinstance(config["input_shape"], list):
        config["batch_shape"] = [None] + config.pop("input_shape")


def _keras2_input_layer(spec, where):
    """The InputLayer that Keras 2's ``batch_input_shape`` on a first layer stands for."""
    config = spec.get("config") if isinstance(spec, dict) else None
    if not isinstance(config, dict) or "batch_input_shape" not in config:
        return None
    shape = config["batch_input_shape"]
    if not isinstance(shape, list) or not shape:
        _fail(where, f"batch_input_shape must be a list [null, d1, ...]; received "
                     f"{shape!r:.200}")
    name = _layer_name(spec)
    dtype = _dtype_from_keras(config.get("dtype"), where)
    return {"class_name": "InputLayer",
            "config": {"batch_shape": _plain(shape, where),
                       "dtype": dtype if dtype in ("float32", "float64", "int32",
                                                   "int64") else "float32",
                       "sparse": False, "name": f"{name}_input" if name else "input_layer"}}


def _sequential_from_keras(config, where, depth):
    layers = config.get("layers")
    if not isinstance(layers, list):
        _fail(where, f"layers must be a list; received {layers!r:.200}")
    out_layers = []
    for i, spec in enumerate(layers):
        if i == 0 and (not isinstance(spec, dict) or spec.get("class_name") != "InputLayer"):
            input_layer = _keras2_input_layer(spec, f"{where} layers[0]")
            if input_layer is not None:
                out_layers.append(input_layer)
        out_layers.append(_layer_from_keras(spec, f"{where} layers[{i}]", depth + 1))
    out = {"name": config.get("name"), "trainable": config.get("trainable", True),
           "layers": out_layers}
    if config.get("build_input_shape") is not None:
        out["build_input_shape"] = _plain(config["build_input_shape"], where)
    unknown = sorted(set(config) - {"name", "trainable", "layers", "build_input_shape",
                                    "dtype"})
    if unknown:
        _fail(where, f"unknown Sequential fields {', '.join(map(str, unknown))[:200]}")
    _check_model_dtype(config.get("dtype"), where)
    if out["name"] is None:
        del out["name"]
    return out


def _check_model_dtype(dtype, where):
    dtype = _dtype_from_keras(dtype, f"{where} field 'dtype'")
    if dtype not in (None, "float32"):
        _fail(where, f"dtype={dtype!r}: minidl's models compute in their layers' dtypes; "
                     f"only a float32 model policy loads")


def _functional_from_keras(config, where, depth):
    unknown = sorted(set(config) - {"name", "trainable", "layers", "input_layers",
                                    "output_layers", "dtype"})
    if unknown:
        _fail(where, f"unknown Functional fields {', '.join(map(str, unknown))[:200]}")
    _check_model_dtype(config.get("dtype"), where)
    layers = config.get("layers")
    if not isinstance(layers, list):
        _fail(where, f"layers must be a list; received {layers!r:.200}")
    keras2 = any(isinstance(spec, dict) and isinstance(spec.get("inbound_nodes"), list)
                 and any(isinstance(node, list) for node in spec["inbound_nodes"])
                 for spec in layers)
    out_layers, counted_from_1 = [], set()
    for i, spec in enumerate(layers):
        entry_where = f"{where} layers[{i}]"
        if _is_op_entry(spec):
            out_layers.append(_op_from_keras(spec, entry_where))
            continue
        layer = _layer_from_keras(spec, entry_where, depth + 1)
        name = spec.get("name", _layer_name(spec))
        if not isinstance(name, str):
            _fail(entry_where, f"a layer's name must be a string; received {name!r:.100}")
        if layer["class_name"] == "Functional" or (keras2 and _keras2_counts_from_1(spec)):
            counted_from_1.add(name)
        out_layers.append((layer, name, spec.get("inbound_nodes", []), entry_where))
    for i, entry in enumerate(out_layers):
        if isinstance(entry, tuple):
            layer, name, nodes, entry_where = entry
            if not isinstance(nodes, list):
                _fail(entry_where, f"inbound_nodes must be a list; received {nodes!r:.200}")
            layer["name"] = name
            layer["inbound_nodes"] = [
                _node_from_keras(node, f"{entry_where} {name!r:.100}", counted_from_1)
                for node in nodes]
            out_layers[i] = layer
    out = {"name": config.get("name"), "trainable": config.get("trainable", True),
           "layers": out_layers}
    for field in ("input_layers", "output_layers"):
        refs = _refs_from_keras(config.get(field), counted_from_1, where)
        if keras2 and isinstance(refs, list) and len(refs) == 1 and isinstance(refs[0], list):
            refs = refs[0]  # Keras 2 wrote a list even for one tensor
        out[field] = refs
    if out["name"] is None:
        del out["name"]
    return out


# ---- ops on symbolic tensors (Keras's operations, minidl's OpLayer) ----

# The Keras module of each op that is not in keras.src.ops.numpy.
_OP_MODULES = {
    "keras.src.ops.nn": ("relu", "relu6", "sigmoid", "softplus", "softsign", "silu", "swish",
                         "log_sigmoid", "leaky_relu", "hard_sigmoid", "hard_silu",
                         "hard_swish", "elu", "selu", "gelu", "softmax", "log_softmax",
                         "one_hot", "moments", "normalize"),
    "keras.src.ops.math": ("logsumexp", "top_k", "in_top_k", "segment_sum", "segment_max",
                           "erf"),
    "keras.src.ops.core": ("cast", "slice", "stop_gradient"),
}
# Keras's class names that are not the CamelCase of minidl's op name.
_OP_CLASS_NAMES = {"abs": "Absolute", "relu6": "Relu6"}


def _op_module(op):
    return next((module for module, names in _OP_MODULES.items() if op in names),
                "keras.src.ops.numpy")


def _op_class_name(op):
    return _OP_CLASS_NAMES.get(op) or "".join(part.capitalize() for part in op.split("_"))


def _is_op_entry(spec):
    module = spec.get("module") if isinstance(spec, dict) else None
    return isinstance(module, str) and (module.startswith("keras.src.ops.")
                                        or module.startswith("keras.ops"))


def _op_from_keras(spec, where):
    """A Keras operation node (``x * 2.0``, the ``not_equal`` of an Embedding's mask) ->
    minidl's OpLayer: the op's constructor arguments become its keyword arguments, the
    call's tensors its inputs."""
    from minidl import ops
    name = spec.get("name")
    class_name = spec.get("class_name")
    where = f"{where} {name!r:.100} ({str(class_name)[:60]})"
    extra = sorted(str(key) for key in spec if key not in _LAYER_KEYS)
    if extra:
        _fail(where, f"unknown keys {', '.join(extra)[:200]}")
    if not isinstance(class_name, str) or not isinstance(name, str):
        _fail(where, "an op needs a class_name and a name")
    op = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    op = {"absolute": "abs"}.get(op, op)
    if op not in ops._RAW_OPS or op in ("shape", "convert_to_numpy"):
        _fail(where, f"class_name={class_name!r}: minidl has no op {op!r} among minidl.ops")
    config = spec.get("config") or {}
    if not isinstance(config, dict):
        _fail(where, f"config must be an object; received {config!r:.200}")
    kwargs = {key: _plain(value, f"{where} field {key!r}") for key, value in config.items()
              if key not in ("name", "dtype")}
    nodes = spec.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        _fail(where, f"an op node must have one call {{'args', 'kwargs'}}; received "
                     f"inbound_nodes={nodes!r:.200}")
    node = nodes[0]
    inputs, seen = [], {}

    def template(value, depth=0):
        if depth > _MAX_DEPTH:
            _fail(where, "the call's arguments nest too deeply")
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            tensor = _tensors_from_keras(value, where)
            key = repr(tensor["config"].get("keras_history"))
            if key not in seen:
                seen[key] = len(inputs)
                inputs.append(tensor)
            return {"__input__": seen[key]}
        if isinstance(value, list):
            return [template(item, depth + 1) for item in value]
        return _plain(value, where)

    args = node.get("args", [])
    call_kwargs = node.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(call_kwargs, dict):
        _fail(where, f"a call must be {{'args': [...], 'kwargs': {{...}}}}; received "
                     f"{node!r:.200}")
    args = [template(arg) for arg in args]
    kwargs.update({key: template(value) for key, value in call_kwargs.items()})
    return {"class_name": "OpLayer",
            "config": {"name": name, "dtype": "float32", "trainable": True, "op": op,
                       "args": args, "kwargs": kwargs, "output_index": None},
            "name": name, "inbound_nodes": [{"args": [inputs], "kwargs": {}}]}


def _op_to_keras(spec, where):
    """minidl's OpLayer entry of a functional config -> Keras's operation node."""
    config = spec.get("config", {})
    op = config.get("op")
    if config.get("output_index") is not None:
        _fail(where, "an op with several outputs has no Keras operation node")
    nodes = spec.get("inbound_nodes", [])
    if len(nodes) != 1:
        _fail(where, "an op called more than once has no Keras operation node")
    inputs = nodes[0]["args"][0]

    def fill(value):
        if isinstance(value, dict) and set(value) == {"__input__"}:
            return inputs[value["__input__"]]
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith("__"):
            _fail(where, f"the argument {value!r:.100} has no Keras form")
        return value

    class_name = _op_class_name(op)
    return {"module": _op_module(op), "class_name": class_name,
            "config": {"name": config.get("name"), **{key: fill(value) for key, value
                                                       in config.get("kwargs", {}).items()}},
            "registered_name": class_name, "name": spec.get("name"),
            "inbound_nodes": [{"args": [fill(arg) for arg in config.get("args", [])],
                               "kwargs": {}}]}


def _keras2_counts_from_1(spec):
    """Whether Keras 2 counted this nested model's calls from 1: its Sequential, a
    functional model too, did so when its first layer was an InputLayer."""
    config = spec.get("config") if isinstance(spec, dict) else None
    layers = config.get("layers") if isinstance(config, dict) else None
    return spec.get("class_name") == "Sequential" and isinstance(layers, list) and \
        bool(layers) and isinstance(layers[0], dict) and \
        layers[0].get("class_name") == "InputLayer"


def _shift_refs(structure, functional, shift, depth=0):
    """Tensor references ``[name, node, tensor]`` (in lists / objects) with the node index
    of each nested model named in ``functional`` moved by ``shift``.

    Keras counts a nested functional model's calls from 1 (the model's own construction
    is its node 0) in a model's input_layers / output_layers, and Keras 2 also in its
    inbound nodes; minidl counts them from 0."""
    if depth > _MAX_DEPTH:
        raise ValueError("The model's input_layers / output_layers nest too deeply.")
    if isinstance(structure, list) and len(structure) == 3 and \
            isinstance(structure[0], str) and isinstance(structure[1], int):
        if structure[0] in functional and structure[1] + shift >= 0:
            return [structure[0], structure[1] + shift, structure[2]]
        return list(structure)
    if isinstance(structure, list):
        return [_shift_refs(item, functional, shift, depth + 1) for item in structure]
    if isinstance(structure, dict):
        return {key: _shift_refs(item, functional, shift, depth + 1)
                for key, item in structure.items()}
    return structure


def _refs_from_keras(structure, functional, where):
    """Model inputs / outputs (Keras 2 wrote ``[[name, 0, 0]]`` for one tensor, which minidl
    reads as Keras 3 does), with nested functional models' calls counted from 0."""
    return _shift_refs(_plain(structure, where), functional, -1)


def _node_from_keras(node, where, functional=()):
    """One call of a layer: Keras 3's ``{"args", "kwargs"}`` (tensor kwargs left null,
    e.g. ``mask``, dropped) or Keras 2's ``[[name, node, tensor, kwargs], ...]`` (where, as
    in input_layers, a nested functional model's calls count from 1)."""
    if isinstance(node, dict):
        if set(node) - {"args", "kwargs"}:
            _fail(where, f"a call must be {{'args': [...], 'kwargs': {{...}}}}; received "
                         f"{node!r:.200}")
        kwargs = node.get("kwargs", {})
        if not isinstance(kwargs, dict):
            _fail(where, f"kwargs must be an object; received {kwargs!r:.200}")
        return {"args": _tensors_from_keras(node.get("args"), where),
                "kwargs": {key: _tensors_from_keras(value, where)
                           for key, value in kwargs.items() if value is not None}}
    if isinstance(node, list) and node:
        tensors, kwargs = [], {}
        for ref in node:
            if not (isinstance(ref, list) and len(ref) in (3, 4) and isinstance(ref[0], str)):
                _fail(where, f"a Keras 2 inbound node must be a list of [layer name, node "
                             f"index, tensor index, kwargs]; received {ref!r:.200}")
            tensors.append({"class_name": "__keras_tensor__",
                            "config": {"keras_history": _shift_refs(list(ref[:3]),
                                                                    functional, -1)}})
            if len(ref) == 4:
                if not isinstance(ref[3], dict):
                    _fail(where, f"the kwargs of a Keras 2 inbound node must be an object; "
                                 f"received {ref[3]!r:.200}")
                kwargs = {key: value for key, value in ref[3].items() if value is not None}
        return {"args": [tensors[0] if len(tensors) == 1 else tensors],
                "kwargs": _plain(kwargs, where)}
    _fail(where, f"an inbound node must be an object (Keras 3) or a list (Keras 2); "
                 f"received {node!r:.200}")


def _tensors_from_keras(structure, where, depth=0):
    if depth > _MAX_DEPTH:
        _fail(where, "the call's arguments nest too deeply")
    if isinstance(structure, list):
        return [_tensors_from_keras(item, where, depth + 1) for item in structure]
    if isinstance(structure, dict):
        if structure.get("class_name") == "__keras_tensor__":
            config = structure.get("config")
            if not isinstance(config, dict):
                _fail(where, f"a tensor's config must be an object; received "
                             f"{structure!r:.200}")
            return {"class_name": "__keras_tensor__",
                    "config": {key: _plain(value, where) for key, value in config.items()}}
        if "class_name" in structure:
            _fail(where, f"a call argument of class_name={structure.get('class_name')!r:.100}"
                         f" is not a tensor; minidl's layers take tensors")
        return {key: _tensors_from_keras(value, where, depth + 1)
                for key, value in structure.items()}
    return _plain(structure, where)


def model_spec_from_keras(config):
    """A Keras model config -> the minidl spec that ``_model_from_spec`` rebuilds.

    Args:
        config: a ``.keras`` file's config.json object, or a legacy ``.h5``'s
            ``model_config`` (Keras 3, or Keras 2 with ``Model`` / ``Functional`` class names,
            ``batch_input_shape`` and list-form inbound nodes).

    Returns:
        ``{"class_name": "Sequential" | "Functional" | registered name, "config": {...}}``
        (``compile_config`` is dropped: :func:`compile_spec_from_keras` reads it).

    Raises:
        ValueError: naming the layer and field that minidl cannot load.
    """
    if not isinstance(config, dict):
        raise ValueError(f"A Keras model config must be an object; received {config!r:.200}")
    where = "model"
    cls = _resolve_class(config, MODELS, where, allowed=_LAYER_KEYS)
    spec = _layer_from_keras(config, where, 0)
    if getattr(cls, "_user_call", False):
        build = config.get("build_config")
        if isinstance(build, dict) and "input_shape" in build:
            shape = build["input_shape"]
            if isinstance(shape, list) and shape and isinstance(shape[0], list):
                shapes = [s[1:] for s in shape]
            elif isinstance(shape, list) and shape:
                shapes = [shape[1:]]
            else:
                _fail(where, f"build_config input_shape must be a shape; received "
                             f"{shape!r:.200}")
            spec["build_config"] = {"input_shapes": _plain(shapes, where),
                                    "dtypes": ["float32"] * len(shapes)}
    return spec


# ---- minidl -> Keras ----

def _keras_object(kind, class_name, config, cls=None):
    module, registered = _KERAS_MODULES[kind], None
    if cls is not None and not cls.__module__.startswith("minidl."):
        module, registered = cls.__module__, _custom_name(cls)
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": registered}


def _custom_name(cls):
    """``"package>Name"`` of a class registered with ``register_serializable``.

    minidl's registries keep names lower-cased, so the package's case is lost; the default
    package is written as Keras's default, 'Custom'."""
    for registry in (LAYERS, initializers.INITIALIZERS, regularizers.REGULARIZERS,
                     constraints.CONSTRAINTS, losses.LOSSES, metrics.METRICS,
                     optimizers.OPTIMIZERS, schedules.SCHEDULES):
        for key, value in registry._by_name.items():
            if value is cls and ">" in key:
                package, name = key.split(">", 1)
                package = "Custom" if package == "custom" else package
                return f"{package}>{cls.__name__ if name == cls.__name__.lower() else name}"
    return cls.__name__


def _object_to_keras(value, registry, get, kind, where):
    """minidl's name or ``{"class_name", "config"}`` -> Keras 3's object."""
    if value is None:
        return None
    try:
        obj = get(value)
    except (ValueError, TypeError) as error:
        _fail(where, str(error))
    if isinstance(obj, regularizers.FunctionRegularizer):
        return _function_object(obj.name)
    cls = type(obj)
    return _keras_object(kind, cls.__name__, obj.get_config(), cls)


def _function_object(name):
    """Keras's object for a function of the program's (named, or registered as
    ``"package>name"``), which Keras resolves through its custom objects."""
    return {"module": "builtins", "class_name": "function", "config": name.split(">")[-1],
            "registered_name": name if ">" in name else "function"}


def _activation_to_keras(value, where):
    if isinstance(value, str) and isinstance(activations.get(value),
                                             activations.FunctionActivation):
        # A function of the program's: Keras's function object (Keras resolves a bare name
        # only among its own activations).
        return _function_object(value)
    if value is None or isinstance(value, str):
        return value
    activation = activations.get(value)
    name = activations.serialize(activation)
    if isinstance(name, str):
        return name
    _fail(where, f"activation {value!r:.200} has arguments, which a Keras config cannot hold "
                 f"for an activation function; use the layer of that activation instead")


def _value_to_keras(key, value, where):
    if key.endswith("_initializer"):
        return _object_to_keras(value, initializers.INITIALIZERS, initializers.get,
                                "initializer", where)
    if key.endswith("_regularizer"):
        return _object_to_keras(value, regularizers.REGULARIZERS, regularizers.get,
                                "regularizer", where)
    if key.endswith("_constraint"):
        return _object_to_keras(value, constraints.CONSTRAINTS, constraints.get,
                                "constraint", where)
    if key in ("activation", "recurrent_activation"):
        return _activation_to_keras(value, where)
    if key in ("layer", "backward_layer") and isinstance(value, dict):
        return _layer_spec_to_keras(value, where)
    if isinstance(value, dict) and str(value.get("module", "")).startswith("minidl."):
        return _minidl_object_to_keras(value, where)
    return value


def _minidl_object_to_keras(value, where):
    """An object a program's own layer wrote with ``serialize_keras_object`` (module
    ``"minidl.<kind>"``) -> Keras's form of it, which Keras's deserialize_keras_object (and
    minidl's) rebuilds."""
    from minidl.saving.objects import _KINDS, GETTERS
    kind, registry = next(((k, reg) for k, _, reg, module, _ in _KINDS
                           if module == value["module"]), (None, None))
    spec = {"class_name": value.get("class_name"), "config": value.get("config") or {}}
    registered = value.get("registered_name")
    if isinstance(registered, str) and ">" in registered:
        spec["class_name"] = registered
    if kind == "layer":
        return _layer_spec_to_keras(spec, where)
    if kind == "activation":   # Keras's activations are functions, written by name
        return _activation_to_keras(spec, where)
    if kind not in GETTERS:
        _fail(where, f"an object of module {value['module']!r:.100} has no Keras form")
    return _object_to_keras(spec, registry, GETTERS[kind], kind, where)


def _lambda_to_keras(config, where):
    """minidl's Lambda config -> Keras's: each function as Keras's function object, which
    Keras resolves through its custom objects. A ``lambda`` expression is refused: Keras
    would store its bytecode, and minidl never writes code into a file."""
    from minidl.layers.lambda_layer import _named_function
    from minidl.saving.registration import get_registered_name
    config = {key: value for key, value in config.items()
              if not (key in ("mask", "output_shape") and value is None)}
    for key in ("function", "output_shape"):
        value = config.get(key)
        if key == "output_shape" and not isinstance(value, str):
            continue
        field = f"{where} field {key!r}"
        function = _named_function(value)
        if function is None:
            _fail(field, f"{value!r:.200} is a lambda expression (or no function by that "
                         f"name): Keras would store its bytecode, which minidl never writes "
                         f"into a file; define it as a named function")
        config[key] = _function_object(get_registered_name(function))
    unsaved = sorted(key for key, value in (config.get("arguments") or {}).items()
                     if isinstance(value, dict) and value.get("class_name") == "__repr__")
    if unsaved:
        _fail(f"{where} field 'arguments'", f"{', '.join(unsaved)[:200]} are values a Keras "
                                            f"config cannot hold")
    return config


def _dtype_policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype},
            "registered_name": None}


def layer_spec_to_keras(layer):
    """A minidl layer (or its ``{"class_name", "config"}`` spec) -> Keras 3's layer config.

    Args:
        layer: a :class:`minidl.layers.Layer` or the dict ``serialize(layer)`` returns.

    Returns:
        ``{"module", "class_name", "config", "registered_name"}`` that Keras 3's
        ``keras.saving.deserialize_keras_object`` rebuilds.

    Raises:
        ValueError: a setting that Keras cannot express (naming the layer and field).
    """
    return _layer_spec_to_keras(serialize(layer) if isinstance(layer, Layer) else layer,
                                "layer")


def _layer_spec_to_keras(spec, where):
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        _fail(where, f"expected a layer spec {{'class_name': ..., 'config': {{...}}}}; "
                     f"received {spec!r:.200}")
    class_name, config = spec["class_name"], spec.get("config", {})
    where = f"{where} {config.get('name')!r:.100} ({class_name[:60]})"
    try:
        cls = LAYERS.lookup(class_name)
    except ValueError as error:
        _fail(where, str(error))
    if cls.__name__ in _REFUSED_CLASSES:
        _fail(where, f"a {cls.__name__} layer holds Python code, which Keras files must not "
                     f"carry")
    if cls.__name__ == "Lambda":
        config = _lambda_to_keras(config, where)
    if cls.__name__ == "OpLayer":
        # Keras writes an operation only as a node of a functional graph; a Sequential (or
        # a lone layer) has no place for one.
        _fail(where, "an operation on tensors can be written for Keras only as a node of a "
                     "functional model; save this model in minidl's format ('.minidl')")
    from minidl.models import Model, Sequential
    if issubclass(cls, Sequential):
        return _sequential_to_keras(config, where)
    if issubclass(cls, Model) and not getattr(cls, "_user_call", False):
        return _functional_to_keras(config, where)
    out = {}
    for key, value in config.items():
        field = f"{where} field {key!r}"
        if key == "dtype" and cls.__name__ != "InputLayer" and \
                cls.__name__ not in _NO_TRAINABLE_IN_KERAS:
            out[key] = _dtype_policy(value)
        elif key == "factor" and cls.__name__ == "RandomContrast" and \
                isinstance(value, numbers.Real):
            # minidl's number f means contrast in [1 - f, 1 + f]; Keras reads a number as
            # [1, 1 + f] and a pair (f, f) as minidl's range.
            out[key] = [value, value]
        elif key == "activity_regularizer" and value is None:
            continue  # Keras's base Layer writes it only when set.
        elif key == "trainable" and cls.__name__ in _NO_TRAINABLE_IN_KERAS:
            continue
        else:
            out[key] = _value_to_keras(key, value, field)
    return _keras_object("layer", cls.__name__, out, cls)


def _sequential_to_keras(config, where):
    out = {"name": config.get("name"), "trainable": config.get("trainable", True),
           "dtype": _dtype_policy("float32"),
           "layers": [_layer_spec_to_keras(spec, f"{where} layers[{i}]")
                      for i, spec in enumerate(config.get("layers", []))]}
    if config.get("build_input_shape") is not None:
        out["build_input_shape"] = config["build_input_shape"]
    module, registered = _MODEL_MODULES["Sequential"]
    result = {"module": module, "class_name": "Sequential", "config": out,
              "registered_name": registered}
    if config.get("build_input_shape") is not None:
        result["build_config"] = {"input_shape": config["build_input_shape"]}
    return result


def _functional_to_keras(config, where):
    layers = []
    for i, spec in enumerate(config.get("layers", [])):
        if spec.get("class_name") == "OpLayer":
            layers.append(_op_to_keras(spec, f"{where} layers[{i}] {spec.get('name')!r:.100}"))
            continue
        entry = _layer_spec_to_keras(spec, f"{where} layers[{i}]")
        entry["name"] = spec.get("name")
        entry["inbound_nodes"] = spec.get("inbound_nodes", [])
        layers.append(entry)
    functional = {entry["name"] for entry in layers if entry["class_name"] == "Functional"}
    out = {"name": config.get("name"), "trainable": config.get("trainable", True),
           "layers": layers,
           "input_layers": _shift_refs(config.get("input_layers"), functional, 1),
           "output_layers": _shift_refs(config.get("output_layers"), functional, 1)}
    module, registered = _MODEL_MODULES["Functional"]
    return {"module": module, "class_name": "Functional", "config": out,
            "registered_name": registered, "build_config": {"input_shape": None}}


def model_config_to_keras(model):
    """The Keras 3 ``config.json`` object of a minidl model (no ``compile_config``).

    Args:
        model: a built Sequential or functional minidl model.

    Returns:
        The dict that Keras 3's ``keras.saving.deserialize_keras_object`` (and
        ``load_model`` reading it from a ``.keras`` file) rebuilds the model from.

    Raises:
        ValueError: a layer or setting that Keras cannot express, naming it.
    """
    from minidl.saving.model_io import model_config
    spec = model_config(model)
    if getattr(type(model), "_user_call", False):
        _fail(f"model {model.name!r}", "a subclassed model has no Keras config that Keras "
                                        "can rebuild without its Python class")
    with custom_object_scope(_own_objects(model)):
        return _layer_spec_to_keras(spec, "model")


def _own_objects(model):
    """The program's own classes that ``model`` uses (its layers, their initializers,
    regularizers, ..., its optimizer, losses and metrics) and its functions (activations,
    regularizers, a Lambda's), by name, unless minidl already has the name.

    The writers resolve the class names of minidl's config through the registries, as the
    reader does; under a scope of these, a custom class needs no registration to be
    written (Keras writes any class; loading it needs the class, registered or in
    ``custom_objects``)."""
    from minidl.saving.registration import _KINDS
    bases = tuple(base for base, _ in _KINDS)
    own, seen = {}, set()

    def named(cls):
        """Whether the registry already resolves cls's name: to cls (registered), or to
        another class (a user's subclass named like minidl's; putting it in scope would
        make every layer of minidl's class of that name be written as the user's)."""
        registry = next(reg for base, reg in _KINDS if issubclass(cls, base))
        try:
            registry.lookup(cls.__name__)
            return True
        except ValueError:
            return False

    def visit(value, depth=0):
        if depth > _MAX_DEPTH or id(value) in seen:
            return
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item, depth + 1)
        elif isinstance(value, bases) or (isinstance(value, type) and issubclass(value, bases)):
            seen.add(id(value))
            if isinstance(value, (activations.FunctionActivation,
                                  regularizers.FunctionRegularizer)):
                own.setdefault(value.name, value.fn)
            if isinstance(value, Lambda):   # its functions, under their own names
                for function in (value.function, value._output_shape):
                    if callable(function) and hasattr(function, "__name__"):
                        own.setdefault(function.__name__, function)
            cls = value if isinstance(value, type) else type(value)
            if not cls.__module__.startswith("minidl.") and not named(cls):
                own.setdefault(cls.__name__, cls)
            if not isinstance(value, type):
                for item in getattr(value, "__dict__", {}).values():
                    visit(item, depth + 1)

    visit(model)
    visit(getattr(model, "optimizer", None))
    visit(getattr(model, "_compile_args", None))
    return own


# ---- compile settings (minidl.saving.keras.compile_settings) ----

def compile_spec_from_keras(compile_config):
    """A Keras 3 ``compile_config`` or a legacy ``training_config`` -> the dict that
    ``minidl.saving.model_io._compile_from_config`` takes; see
    :func:`minidl.saving.keras.compile_settings.compile_spec_from_keras`."""
    from minidl.saving.keras import compile_settings
    return compile_settings.compile_spec_from_keras(compile_config)


def compile_config_to_keras(model):
    """The Keras 3 ``compile_config`` of a minidl model (None if not compiled); see
    :func:`minidl.saving.keras.compile_settings.compile_config_to_keras`."""
    from minidl.saving.keras import compile_settings
    with custom_object_scope(_own_objects(model)):
        return compile_settings.compile_config_to_keras(model)


def training_config_to_keras(model):
    """The legacy ``.h5`` ``training_config`` of a minidl model (None if not compiled); see
    :func:`minidl.saving.keras.compile_settings.training_config_to_keras`."""
    from minidl.saving.keras import compile_settings
    with custom_object_scope(_own_objects(model)):
        return compile_settings.training_config_to_keras(model)
