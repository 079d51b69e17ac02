"""Models, as in ``keras.models``."""
from minidl.models.sequential import Sequential

__all__ = ["Sequential"]
