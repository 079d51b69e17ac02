"""Saving and loading models: one zip archive per model (config, weights, optimizer and
random state), written atomically and loaded without executing anything from the file; and
Keras's own files, read and written (:mod:`minidl.saving.keras`, with h5py: the
``minidl[keras]`` extra).

    model.save("run.minidl")                  # minidl's format: exact resume
    model = minidl.models.load_model("run.minidl")
    model.save("run.keras")                   # Keras 3's archive: keras.saving.load_model
    model = minidl.models.load_model("from_keras.keras")   # or a legacy .h5
    model.save_weights("run.weights.h5")      # Keras 3's weights file

Writing picks the format from the extension ('.keras', '.h5' / '.hdf5', '.weights.h5' for
weights; anything else is minidl's); reading from the content, whatever the name.
"""
from minidl.saving.format import FORMAT_VERSION, InvalidModelFileError
from minidl.saving.model_io import (load_model, load_weights, model_from_json, save_model,
                                    save_weights)
from minidl.saving.objects import deserialize_keras_object, serialize_keras_object
from minidl.saving.registration import (get_registered_name, get_registered_object,
                                        register_serializable)
from minidl.utils.registry import CustomObjectScope, custom_object_scope, get_custom_objects

# Keras 3's name for it (keras.saving.register_keras_serializable), for programs that
# change only their import.
register_keras_serializable = register_serializable

__all__ = ["CustomObjectScope", "FORMAT_VERSION", "InvalidModelFileError",
           "custom_object_scope", "deserialize_keras_object", "get_custom_objects",
           "get_registered_name", "get_registered_object", "load_model", "load_weights",
           "model_from_json", "register_keras_serializable", "register_serializable",
           "save_model", "save_weights", "serialize_keras_object"]
