"""register_serializable: put a user's class into the registry of its kind.

Loading resolves every class name in a file through minidl's registries only (never by
importing a module the file names), so a custom layer or loss must be registered before a
model that uses it is loaded.
"""
from minidl import (activations, constraints, initializers, losses, metrics, optimizers,
                    regularizers, schedules)
from minidl.layers.base import LAYERS, MODELS, Layer

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
        if callable(cls) and not isinstance(cls, type):
            # A function: a loss or metric function (compile(loss=fn), metrics=[fn]).
            from minidl import losses
            return losses.FUNCTIONS.register(f"{package}>{name or cls.__name__}")(cls)
        registry = next((reg for base, reg in _KINDS
                         if isinstance(cls, type) and issubclass(cls, base)), None)
        if registry is None:
            kinds = ", ".join(base.__name__ for base, _ in _KINDS)
            raise TypeError(f"register_serializable expects a subclass of one of {kinds}; "
                            f"received {cls!r}.")
        registered = registry.register(f"{package}>{name or cls.__name__}")(cls)
        if registry is LAYERS and getattr(cls, "_user_call", False) and \
                issubclass(cls, _model_class()):
            # A subclassed model is also what a model file's top may name.
            MODELS.register(f"{package}>{name or cls.__name__}")(cls)
        return registered
    return decorator


def _model_class():
    from minidl.models import Model
    return Model
