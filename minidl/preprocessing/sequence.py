"""``keras.preprocessing.sequence``: where older programs import ``pad_sequences`` from."""
from minidl.utils.sequence_utils import pad_sequences

__all__ = ["pad_sequences"]
