"""Saving and loading models: one zip archive per model (config, weights, optimizer and
random state), written atomically and loaded without executing anything from the file.

    model.save("run.minidl")
    model = minidl.models.load_model("run.minidl")
"""
from minidl.saving.format import FORMAT_VERSION, InvalidModelFileError
from minidl.saving.model_io import (load_model, load_weights, model_from_json, save_model,
                                    save_weights)
from minidl.saving.registration import register_serializable

# Keras 3's name for it (keras.saving.register_keras_serializable), for programs that
# change only their import.
register_keras_serializable = register_serializable

__all__ = ["FORMAT_VERSION", "InvalidModelFileError", "load_model", "load_weights",
           "model_from_json", "register_keras_serializable", "register_serializable",
           "save_model", "save_weights"]
