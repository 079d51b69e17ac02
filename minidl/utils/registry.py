"""Name registries: one per kind of object (activation, loss, optimizer, metric, ...), and
Keras's custom objects.

Strings in user code ('relu', 'adam', 'sparse_categorical_crossentropy') and class names in
saved configs resolve only through these tables, so loading a model never imports or runs
code named in a file.

Custom objects are the other way Keras lets a program name its own classes and functions:
a dict from name to object, given to ``load_model(..., custom_objects=...)``, opened with
``custom_object_scope(...)``, or put into the process-wide ``get_custom_objects()``. While
one is active, every registry lookup tries it first (the innermost scope, then the
process-wide dict), taking an object only if it is of the registry's kind: a layer name
finds a Layer subclass, a loss function's name a function. The objects are the program's
own, so this too runs nothing a file names.
"""
import threading


def _normalise(name):
    return name.strip().lower().replace("-", "_")


# ---- custom objects ----

_GLOBAL_CUSTOM_OBJECTS = {}
_scopes = threading.local()   # .stack: the dicts of this thread's open scopes, innermost last


def get_custom_objects():
    """The process-wide dict of custom objects, as Keras's ``get_custom_objects()``.

    Names put into it resolve in every load and every name lookup of this process, as if
    registered (``register_keras_serializable`` adds its classes here too, under
    ``"package>name"``). Prefer :class:`custom_object_scope` or ``load_model``'s
    ``custom_objects`` for a name needed by one load only.

    Example:
        >>> minidl.saving.get_custom_objects()["Scale"] = Scale
    """
    return _GLOBAL_CUSTOM_OBJECTS


def _check_custom_objects(custom_objects, where):
    """``custom_objects`` as a dict of str keys (None: empty); TypeError otherwise."""
    if custom_objects is None:
        return {}
    if not isinstance(custom_objects, dict) or not all(
            isinstance(key, str) for key in custom_objects):
        raise TypeError(f"{where}: custom_objects must be a dict from names (str) to classes "
                        f"or functions, or None; received {custom_objects!r:.200}.")
    return custom_objects


class custom_object_scope:
    """Context manager under which ``custom_objects`` resolve by name, in this thread (Keras's
    ``keras.saving.custom_object_scope``, also ``CustomObjectScope``).

    Inside it, loading a model (``load_model``, ``model_from_json``, ``from_config``) and
    every lookup of a name (``Dense(activation=...)``, ``compile(loss=...)``) find the given
    classes and functions under their keys. Scopes nest: an inner scope's names win.

    Args:
        custom_objects: dict from name to class or function (None: an empty scope).

    Example:
        >>> with minidl.saving.custom_object_scope({"Scale": Scale}):
        ...     model = minidl.models.load_model("scaled.keras")
    """

    def __init__(self, custom_objects=None):
        self.custom_objects = dict(_check_custom_objects(custom_objects, "custom_object_scope"))

    def __enter__(self):
        stack = getattr(_scopes, "stack", None)
        if stack is None:
            stack = _scopes.stack = []
        stack.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _scopes.stack.pop()
        return False


CustomObjectScope = custom_object_scope


def _custom_object(name, accepts):
    """The custom object named ``name`` for which ``accepts(obj)`` holds, or None: the
    innermost scope first, then the process-wide dict; the exact key, else one equal after
    normalising (registry names are case-insensitive)."""
    stack = getattr(_scopes, "stack", None) or []
    if not stack and not _GLOBAL_CUSTOM_OBJECTS:
        return None
    key = _normalise(name)
    for objects in list(reversed(stack)) + [_GLOBAL_CUSTOM_OBJECTS]:
        obj = objects.get(name)
        if obj is not None and accepts(obj):
            return obj
        for other, obj in list(objects.items()):
            if _normalise(other) == key and accepts(obj):
                return obj
    return None


def deserializer(get, kind):
    """The module-level ``deserialize(config, custom_objects=None)`` of a kind (Keras's
    ``keras.<kind>s.deserialize``): ``get(config)`` with ``custom_objects`` in scope.

    Args:
        get: the kind's ``get``, which makes an object from a name or a config dict.
        kind: its name in the docstring ('loss', 'optimizer', ...).
    """
    def deserialize(config, custom_objects=None):
        with custom_object_scope(custom_objects):
            return get(config)
    deserialize.__doc__ = (
        f"The {kind} a config describes: the inverse of ``serialize``.\n\n"
        f"    Args:\n"
        f"        config: what ``serialize`` wrote (a dict or a name).\n"
        f"        custom_objects: optional dict from names to the program's own classes and\n"
        f"            functions, as in ``minidl.saving.custom_object_scope``.\n    ")
    return deserialize


def subclass_test(base):
    """``accepts`` for a registry of the subclasses of ``base`` (a function returning the
    class, as registries are made before their base class is)."""
    return lambda obj: isinstance(obj, type) and issubclass(obj, base())


def is_function(obj):
    """``accepts`` for a registry of functions: anything callable but a class."""
    return callable(obj) and not isinstance(obj, type)


class Registry:
    """Maps names (case-insensitive) to classes for one kind of object.

    Args:
        kind: what is registered, used in error messages ('activation', 'loss', ...).
        accepts: ``accepts(obj)`` says whether a custom object (see
            :class:`custom_object_scope`) is of this kind; None: none is.

    Example:
        >>> LOSSES = Registry("loss", accepts=subclass_test(lambda: Loss))
        >>> @LOSSES.register("mean_squared_error", "mse")
        ... class MeanSquaredError(Loss): ...
        >>> LOSSES.get("mse")          # an instance built with default arguments
    """

    def __init__(self, kind, accepts=None):
        self.kind = kind
        self.accepts = accepts
        self._by_name = {}

    def register(self, *names):
        """Class decorator registering the class under its own name and ``names``."""
        def decorator(cls):
            for name in (cls.__name__,) + names:
                key = _normalise(name)
                if key in self._by_name and self._by_name[key] is not cls:
                    raise ValueError(f"{self.kind} name {name!r} is already registered to "
                                     f"{self._by_name[key].__name__}.")
                self._by_name[key] = cls
            return cls
        return decorator

    def names(self):
        """All registered names, sorted."""
        return sorted(self._by_name)

    def lookup(self, name):
        """The class registered under ``name`` (or a custom object of this kind in scope,
        first); ValueError listing valid names otherwise."""
        if isinstance(name, str) and self.accepts is not None:
            custom = _custom_object(name, self.accepts)
            if custom is not None:
                return custom
        if not isinstance(name, str) or _normalise(name) not in self._by_name:
            raise ValueError(f"Unknown {self.kind} {name!r}. Valid names: "
                             f"{', '.join(self.names())}. (A class or function of your own "
                             f"is found when registered with "
                             f"@minidl.saving.register_serializable() or given in "
                             f"custom_objects.)")
        return self._by_name[_normalise(name)]

    def get(self, identifier, base=None):
        """Resolve ``identifier`` to an instance.

        Args:
            identifier: a registered name, an instance (returned as is), or a config dict
                ``{"class_name": ..., "config": {...}}`` as written by ``serialize``.
            base: optional base class an instance must derive from.
        """
        if isinstance(identifier, str):
            return self.lookup(identifier)()
        if isinstance(identifier, dict) and "class_name" in identifier:
            cls = self.lookup(identifier["class_name"])
            config = identifier.get("config", {})
            extra = sorted(str(key) for key in identifier if key not in ("class_name", "config"))
            if extra or not isinstance(config, dict):
                raise ValueError(f"A {self.kind} config must be {{'class_name': ..., 'config': "
                                 f"{{...}}}}; received {identifier!r:.200}.")
            # from_config, where a class has one, rebuilds nested objects (an optimizer's
            # learning-rate schedule) that the constructor takes as instances.
            from_config = getattr(cls, "from_config", None)
            return from_config(config) if from_config is not None else cls(**config)
        if base is not None and isinstance(identifier, base):
            return identifier
        if base is None and identifier is not None and not isinstance(identifier, (dict, type)):
            return identifier
        raise ValueError(f"Could not interpret {self.kind} identifier {identifier!r}. Pass a "
                         f"name ({', '.join(self.names())}) or an instance.")


def serialize(obj):
    """``{"class_name": ..., "config": obj.get_config()}`` for any registered object (the
    class name is ``serialized_name`` where a class sets one: 'Functional' for Model)."""
    name = type(obj).__dict__.get("serialized_name", type(obj).__name__)
    return {"class_name": name, "config": obj.get_config()}
