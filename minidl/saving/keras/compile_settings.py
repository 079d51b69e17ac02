"""Translation between Keras's compile settings and minidl's compile spec.

Keras 3 keeps a model's ``compile`` arguments as the ``compile_config`` of a ``.keras``
file's config.json; a legacy ``.h5`` file keeps them in its ``training_config`` attribute
(Keras 2: the optimizer under ``optimizer_config``, a trained model's metrics per output).
The optimizer, losses and metrics resolve through minidl's registries only, as the layers
of :mod:`minidl.saving.keras.config` do; what minidl cannot honour (``use_ema=True``,
weighted metrics) is refused with a ValueError naming the field.
"""
import numbers

from minidl import losses, metrics, optimizers, schedules
from minidl.saving.keras.config import (_OBJECT_KEYS, _checked_name, _config_from_keras,
                                        _fail, _function_name, _is_keras_module,
                                        _keras_object, _minidl_name, _object_from_keras,
                                        _plain, _resolve_class)

_KERAS_ONLY_OPTIMIZER_ARGS = {"use_ema": False, "ema_momentum": 0.99,
                              "ema_overwrite_frequency": None,
                              "gradient_accumulation_steps": None, "decay": 0.0}
# Keras 2 optimizer fields with no effect on the update (compilation, the legacy flag).
_KERAS2_IGNORED_OPTIMIZER_ARGS = ("jit_compile", "is_legacy_optimizer")
_KERAS_ONLY_METRIC_ARGS = {"dtype": "float32", "ignore_class": None}
_KERAS_ONLY_LOSS_ARGS = {"dtype": None}
# Keras 3 compile arguments about how training runs, not what it computes.
_COMPILE_EXECUTION_ARGS = ("run_eagerly", "steps_per_execution", "jit_compile",
                           "auto_scale_loss")


def compile_spec_from_keras(compile_config):
    """A Keras 3 ``compile_config`` or a legacy ``training_config`` -> the dict that
    ``minidl.saving.model_io._compile_from_config`` takes.

    Args:
        compile_config: ``{"optimizer", "loss", "loss_weights", "metrics", ...}`` (Keras 3)
            or ``{"optimizer_config", "loss", "metrics", "weighted_metrics",
            "loss_weights"}`` (Keras 2's ``training_config``); None or ``{}`` when the model
            was not compiled.

    Returns:
        ``{"optimizer", "loss", "loss_weights", "metrics"}``, or None for an uncompiled
        model.

    Raises:
        ValueError: what minidl cannot honour (``use_ema=True``, weighted metrics, an
            unknown optimizer, loss or metric), naming the field.
    """
    if compile_config is None or compile_config == {}:
        return None
    where = "compile_config"
    if not isinstance(compile_config, dict):
        _fail(where, f"must be an object; received {compile_config!r:.200}")
    known = {"optimizer", "optimizer_config", "loss", "loss_weights", "metrics",
             "weighted_metrics", *_COMPILE_EXECUTION_ARGS, "sample_weight_mode"}
    unknown = sorted(str(key) for key in compile_config if key not in known)
    if unknown:
        _fail(where, f"unknown fields {', '.join(unknown)[:200]}")
    weighted = compile_config.get("weighted_metrics")
    if weighted not in (None, [], {}):
        _fail(f"{where} field 'weighted_metrics'", f"weighted metrics are not supported by "
                                                   f"minidl; received {weighted!r:.200}")
    if compile_config.get("sample_weight_mode") is not None:
        _fail(f"{where} field 'sample_weight_mode'", "only null loads")
    optimizer = compile_config.get("optimizer", compile_config.get("optimizer_config"))
    return {"optimizer": _optimizer_from_keras(optimizer, f"{where} field 'optimizer'"),
            "loss": _structure_from_keras(compile_config.get("loss"), _loss_from_keras,
                                          f"{where} field 'loss'"),
            "loss_weights": _plain(compile_config.get("loss_weights"), where),
            "metrics": _structure_from_keras(_one_output_metrics(compile_config.get("metrics")),
                                             _metric_from_keras, f"{where} field 'metrics'")}


def _one_output_metrics(structure):
    """Keras 2 saved a trained model's metrics per output, ``[[...]]`` for one output;
    minidl takes a single output's metrics as one list."""
    if isinstance(structure, list) and len(structure) == 1 and isinstance(structure[0], list):
        return structure[0]
    return structure


def _optimizer_from_keras(value, where):
    if isinstance(value, str):
        try:
            optimizers.OPTIMIZERS.lookup(value)
        except ValueError as error:
            _fail(where, str(error))
        return value
    cls = _resolve_class(value, optimizers.OPTIMIZERS, where)
    config = value.get("config", {})
    if not isinstance(config, dict):
        _fail(where, f"config must be an object; received {config!r:.200}")
    config = dict(config)
    if "lr" in config and "learning_rate" not in config:
        config["learning_rate"] = config.pop("lr")  # Keras 2.2 and older
    decay = config.get("decay")
    if isinstance(decay, numbers.Real) and not isinstance(decay, bool) and decay > 0 and \
            isinstance(config.get("learning_rate"), numbers.Real):
        # Keras 2's legacy optimizers scaled the rate by 1 / (1 + decay * iterations):
        # an InverseTimeDecay of one step.
        config["learning_rate"] = {
            "class_name": "InverseTimeDecay",
            "config": {"initial_learning_rate": config["learning_rate"], "decay_steps": 1,
                       "decay_rate": decay}}
        del config["decay"]
    return {"class_name": _minidl_name(cls, value),
            "config": _config_from_keras(cls, config, where, _KERAS_ONLY_OPTIMIZER_ARGS,
                                         ignored=_KERAS2_IGNORED_OPTIMIZER_ARGS)}


def _structure_from_keras(structure, function, where, depth=0):
    """A loss or metrics structure (one spec, null, lists / objects of them)."""
    if depth > 3:
        _fail(where, "nests too deeply")
    if structure is None or isinstance(structure, str):
        return function(structure, where)
    if isinstance(structure, list):
        return [_structure_from_keras(item, function, f"{where}[{i}]", depth + 1)
                for i, item in enumerate(structure)]
    if isinstance(structure, dict) and "class_name" not in structure:
        return {key: _structure_from_keras(item, function, f"{where}[{key!r}]", depth + 1)
                for key, item in structure.items()}
    return function(structure, where)


def _loss_from_keras(value, where):
    if value is None:
        return None
    value = _checked_name(value, where, losses.get)
    if isinstance(value, str):
        return value
    spec = _object_from_keras(value, losses.LOSSES, where, _KERAS_ONLY_LOSS_ARGS)
    if spec["config"].get("reduction") == "auto":
        # Keras 2's default, which fit and evaluate take as sum_over_batch_size.
        spec["config"]["reduction"] = "sum_over_batch_size"
    return spec


def _metric_from_keras(value, where):
    if value is None:
        return None
    value = _checked_name(value, where, metrics.get)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") == "MeanMetricWrapper":
        return _keras2_metric_wrapper(value, where)
    return _object_from_keras(value, metrics.METRICS, where, _KERAS_ONLY_METRIC_ARGS)


def _keras2_metric_wrapper(value, where):
    """Keras 2's ``MeanMetricWrapper`` of a built-in function (``{"name": "accuracy", "fn":
    "categorical_accuracy"}``): minidl's metric class of that function, under that name
    (CategoricalAccuracy named 'accuracy'), or minidl's wrapper of the function."""
    extra = sorted(str(key) for key in value if key not in _OBJECT_KEYS)
    config = value.get("config")
    if extra or not isinstance(config, dict):
        _fail(where, f"a MeanMetricWrapper must be {{'class_name', 'config'}}; received "
                     f"{value!r:.200}")
    if not _is_keras_module(value.get("module")):
        _fail(where, f"a metric of module {value.get('module')!r:.100} is not Keras's")
    unknown = sorted(str(key) for key in config if key not in ("name", "dtype", "fn"))
    if unknown or config.get("dtype") not in (None, "float32"):
        _fail(where, f"a MeanMetricWrapper config holds name, fn and a float32 dtype; "
                     f"received {config!r:.200}")
    fn, name = config.get("fn"), config.get("name")
    if isinstance(fn, dict) and fn.get("class_name") == "function":
        fn = _function_name(fn, where)
    if not isinstance(fn, str) or not (name is None or isinstance(name, str)):
        _fail(where, f"fn must be a function's name and name a string; received "
                     f"{config!r:.200}")
    try:
        cls = metrics.METRICS.lookup(fn)
    except ValueError:
        spec = {"class_name": "MeanMetricWrapper", "config": {"fn": fn, "name": name or fn}}
        try:
            metrics.get(spec)
        except (ValueError, TypeError) as error:
            _fail(where, str(error))
        return spec
    return {"class_name": cls.__name__, "config": {"name": name or fn}}


def compile_config_to_keras(model):
    """The Keras 3 ``compile_config`` of a compiled minidl model.

    Args:
        model: a minidl model.

    Returns:
        ``{"optimizer", "loss", "loss_weights", "metrics", "weighted_metrics",
        "run_eagerly", "steps_per_execution", "jit_compile"}`` as Keras 3.15 writes it in a
        ``.keras`` file's config.json (objects with their Keras ``module``), or None when the
        model is not compiled.
    """
    from minidl.saving.model_io import compile_config
    spec = compile_config(model)
    if spec is None:
        return None
    where = "compile_config"
    return {"optimizer": _optimizer_to_keras(spec["optimizer"], f"{where} field 'optimizer'"),
            "loss": _structure_to_keras(spec["loss"], "loss", f"{where} field 'loss'"),
            "loss_weights": spec["loss_weights"],
            "metrics": _structure_to_keras(spec["metrics"], "metric",
                                           f"{where} field 'metrics'"),
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}


def _optimizer_to_keras(spec, where):
    optimizer = optimizers.get(spec)
    config = dict(optimizer.get_config())
    if isinstance(config.get("learning_rate"), dict):
        schedule = config["learning_rate"]
        cls = schedules.SCHEDULES.lookup(schedule["class_name"])
        config["learning_rate"] = _keras_object("schedule", cls.__name__,
                                                dict(schedule.get("config", {})), cls)
    cls = type(optimizer)
    out = _keras_object("optimizer", cls.__name__, config, cls)
    if out["registered_name"] is None:
        out["registered_name"] = cls.__name__
    return out


def _structure_to_keras(structure, kind, where):
    if structure is None:
        return None
    if isinstance(structure, list):
        return [_structure_to_keras(item, kind, f"{where}[{i}]")
                for i, item in enumerate(structure)]
    if isinstance(structure, dict) and "class_name" not in structure:
        return {key: _structure_to_keras(item, kind, f"{where}[{key!r}]")
                for key, item in structure.items()}
    if isinstance(structure, str):
        return structure
    if structure.get("class_name") in ("LossFunctionWrapper", "MeanMetricWrapper"):
        # A wrapped function, by its name: Keras's own by Keras's name; a program's own
        # resolves on loading where registered or given in custom_objects, as in Keras.
        fn = structure.get("config", {}).get("fn")
        if isinstance(fn, str):
            return fn
        _fail(where, f"a wrapped function {structure!r:.200} has no Keras form")
    registry = losses.LOSSES if kind == "loss" else metrics.METRICS
    try:
        cls = registry.lookup(structure["class_name"])
    except ValueError as error:
        _fail(where, str(error))
    return _keras_object(kind, cls.__name__, dict(structure.get("config", {})), cls)


def training_config_to_keras(model):
    """The ``training_config`` attribute of a legacy ``.h5`` file for a minidl model.

    Args:
        model: a minidl model.

    Returns:
        Keras 3's legacy form of the compile settings, ``{"loss", "metrics",
        "weighted_metrics", "loss_weights", "optimizer_config"}`` (the optimizer as
        ``{"class_name", "config"}``), or None when the model is not compiled.
    """
    config = compile_config_to_keras(model)
    if config is None:
        return None
    optimizer = config.pop("optimizer")
    config = {"loss": config["loss"], "metrics": config["metrics"],
              "weighted_metrics": config["weighted_metrics"],
              "loss_weights": config["loss_weights"],
              "optimizer_config": {"class_name": optimizer["class_name"],
                                   "config": optimizer["config"]}}
    return config
