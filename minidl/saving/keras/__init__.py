"""Keras file formats: ``.keras`` archives, ``.weights.h5`` and legacy ``.h5`` files.

What lives where:

- :mod:`~minidl.saving.keras.config`: Keras 3 ``config.json`` (and legacy ``model_config``)
  <-> minidl's model spec, and the compile config; pure JSON, class names resolved through
  minidl's registries only.
- :mod:`~minidl.saving.keras.h5`: the one module that imports h5py (the ``minidl[keras]``
  extra): validated read-only opening, checked dataset and attribute reads, atomic writes.
- :mod:`~minidl.saving.keras.weights`: Keras 3's weight layout (``layers/<snake_case>/vars/<i>``,
  nested paths, the optimizer's ``optimizer/vars``).
- :mod:`~minidl.saving.keras.archive`: ``.keras`` zip and ``.weights.h5`` read and write.
- :mod:`~minidl.saving.keras.legacy_h5`: legacy ``.h5`` files (Keras 2 and Keras 3's legacy
  writer) read and write.

Users reach all of it through ``model.save`` / ``minidl.models.load_model`` /
``model.save_weights`` / ``model.load_weights``, which choose the format by the file's
extension when writing and by its content when reading (see
:mod:`minidl.saving.model_io`).
"""
from minidl.saving.keras.archive import (load_keras, load_keras_weights, save_keras,
                                         save_keras_weights)
from minidl.saving.keras.weights import keras_weight_groups

__all__ = ["keras_weight_groups", "load_keras", "load_keras_weights", "save_keras",
           "save_keras_weights"]
