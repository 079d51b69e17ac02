"""Models, as in ``keras.models``: Model (the functional API), Sequential, and loading."""
from minidl.models.functional import Model
from minidl.models.sequential import Sequential
from minidl.models.serialization import clone_model

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json"]


def __getattr__(name):
    # The file format (zip, json, the checked reader) loads on first use, not with
    # `import minidl`: most programs train without ever saving.
    if name in ("load_model", "model_from_json"):
        from minidl import saving
        return getattr(saving, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
