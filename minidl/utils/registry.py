"""Name registries: one per kind of object (activation, loss, optimizer, metric, ...).

Strings in user code ('relu', 'adam', 'sparse_categorical_crossentropy') and class names in
saved configs resolve only through these tables, so loading a model never imports or runs
code named in a file.
"""


def _normalise(name):
    return name.strip().lower().replace("-", "_")


class Registry:
    """Maps names (case-insensitive) to classes for one kind of object.

    Args:
        kind: what is registered, used in error messages ('activation', 'loss', ...).

    Example:
        >>> LOSSES = Registry("loss")
        >>> @LOSSES.register("mean_squared_error", "mse")
        ... class MeanSquaredError(Loss): ...
        >>> LOSSES.get("mse")          # an instance built with default arguments
    """

    def __init__(self, kind):
        self.kind = kind
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
        """The class registered under ``name``; ValueError listing valid names otherwise."""
        if not isinstance(name, str) or _normalise(name) not in self._by_name:
            raise ValueError(f"Unknown {self.kind} {name!r}. Valid names: "
                             f"{', '.join(self.names())}.")
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
