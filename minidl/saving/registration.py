"""register_serializable: put a user's class into the registry of its kind.

Loading resolves every class name in a file through minidl's registries only (never by
importing a module the file names), so a custom layer or loss must be registered before a
model that uses it is loaded.
"""
from minidl import (activations, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers.base import LAYERS, MODELS, Layer
from minidl.utils.registry import _GLOBAL_CUSTOM_OBJECTS, _check_custom_objects, _scopes

# The "package>name" of each class or function register_serializable registered.
_REGISTERED_NAMES = {}

# Most specific first: a class is registered in the first kind it derives from.
_KINDS = ((Layer, LAYERS), (losses.Loss, losses.LOSSES), (metrics.Metric, metrics.METRICS),
          (optimizers.Optimizer, optimizers.OPTIMIZERS),
          (activations.Activation, activations.ACTIVATIONS),
          (initializers.Initializer, initializers.INITIALIZERS),
          (regularizers.Regularizer, regularizers.REGULARIZERS),
          (constraints.Constraint, constraints.CONSTRAINTS),
          (schedules.LearningRateSchedule, schedules.SCHEDULES))


def register_serializable(package="Custom", name=None):
    """Class decorator registering a custom layer, loss, metric, optimizer, activation,
    initializer, regularizer, constraint or learning-rate schedule (or a loss or metric
    function), so that saved models using it load.

    The class is registered under its own name and under ``"package>name"``, as Keras names
    registered objects. It must implement ``get_config`` (and ``from_config`` when its
    constructor does not take ``get_config()``'s output as keyword arguments).

    Args:
        package: namespace of the registered name. Defaults to 'Custom'.
        name: the name within ``package``; defaults to the class name.

    Raises:
        TypeError: the class derives from none of the registrable base classes.
        ValueError: the name is already registered to another class.

    Example:
        >>> @minidl.saving.register_serializable(package="my_project")
        ... class Scale(minidl.layers.Layer):
        ...     ...
    """
    if not isinstance(package, str) or not package or ">" in package:
        raise ValueError(f"package must be a non-empty string without '>'; received "
                         f"package={package!r}.")

    def decorator(cls):
        registered_name = f"{package}>{name or cls.__name__}"
        if callable(cls) and not isinstance(cls, type):
            # A function: a loss or metric function (compile(loss=fn), metrics=[fn]).
            from minidl import losses
            losses.FUNCTIONS.register(registered_name)(cls)
            _remember(cls, registered_name)
            return cls
        registry = next((reg for base, reg in _KINDS
                         if isinstance(cls, type) and issubclass(cls, base)), None)
        if registry is None:
            kinds = ", ".join(base.__name__ for base, _ in _KINDS)
            raise TypeError(f"register_serializable expects a subclass of one of {kinds}; "
                            f"received {cls!r}.")
        registered = registry.register(registered_name)(cls)
        if registry is LAYERS and getattr(cls, "_user_call", False) and \
                issubclass(cls, _model_class()):
            # A subclassed model is also what a model file's top may name.
            MODELS.register(registered_name)(cls)
        _remember(cls, registered_name)
        return registered
    return decorator


def _remember(obj, registered_name):
    # As Keras, a registered object is also a global custom object under its full name.
    _REGISTERED_NAMES[obj] = registered_name
    _GLOBAL_CUSTOM_OBJECTS[registered_name] = obj


def get_registered_name(obj):
    """The name a class or function is saved under: the ``"package>name"`` it was
    registered under with :func:`register_serializable`, else its ``__name__`` (Keras's
    ``keras.saving.get_registered_name``).

    Args:
        obj: a class or function.
    """
    try:
        registered = _REGISTERED_NAMES.get(obj)
    except TypeError:   # an unhashable object: never registered
        registered = None
    if registered is not None:
        return registered
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"get_registered_name expects a class or function; received "
                        f"{obj!r:.200}.")
    return name


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function ``name`` stands for among the custom objects, or None (Keras's
    ``keras.saving.get_registered_object``).

    Looked up, in order: the open :func:`custom_object_scope` (innermost first), the
    process-wide :func:`get_custom_objects` (which holds every registered object under its
    ``"package>name"``), then ``custom_objects`` and ``module_objects``. Names match exactly.

    Args:
        name: the name, as a saved config stores it.
        custom_objects: optional dict from name to object, searched after the above.
        module_objects: optional dict (such as a module's ``globals()``), searched last.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_registered_object expects name to be a str; received "
                        f"{name!r:.100}.")
    dicts = list(reversed(getattr(_scopes, "stack", None) or [])) + [_GLOBAL_CUSTOM_OBJECTS]
    dicts.append(_check_custom_objects(custom_objects, "get_registered_object"))
    if module_objects is not None:
        if not isinstance(module_objects, dict):
            raise TypeError(f"get_registered_object expects module_objects to be a dict or "
                            f"None; received {module_objects!r:.100}.")
        dicts.append(module_objects)
    for objects in dicts:
        if name in objects:
            return objects[name]
    return None


def _model_class():
    from minidl.models import Model
    return Model
