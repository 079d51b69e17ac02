"""``tf.data``'s place in minidl: ``minidl.data.Dataset.from_tensor_slices(...)``.

Re-exports :class:`minidl.utils.dataset.Dataset` and its constants, so a Keras program's
``tf.data.Dataset`` / ``tf.data.AUTOTUNE`` become ``minidl.data.Dataset`` /
``minidl.data.AUTOTUNE``.
"""
import types

from minidl.utils.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset,
                                  TensorSpec)

# tf.data.experimental's members that Keras tutorials still use.
experimental = types.SimpleNamespace(
    AUTOTUNE=AUTOTUNE, INFINITE_CARDINALITY=INFINITE_CARDINALITY,
    UNKNOWN_CARDINALITY=UNKNOWN_CARDINALITY, cardinality=lambda dataset: dataset.cardinality())

__all__ = ["AUTOTUNE", "Dataset", "INFINITE_CARDINALITY", "TensorSpec", "UNKNOWN_CARDINALITY",
           "experimental"]
