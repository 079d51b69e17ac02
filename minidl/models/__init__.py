"""Models, as in ``keras.models``."""
from minidl.models.sequential import Sequential
from minidl.saving import load_model, model_from_json

__all__ = ["Sequential", "load_model", "model_from_json"]
