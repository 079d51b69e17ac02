"""ONNX export: a built minidl model as an ONNX file, for onnxruntime and other runtimes.

    minidl.onnx.export(model, "model.onnx")          # or model.export("model.onnx")

    import onnxruntime
    session = onnxruntime.InferenceSession("model.onnx")
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: x})

The file takes inputs and gives outputs in Keras's layout (channels last), with any batch
size. Inside, the convolutions and poolings run channels-first, as ONNX defines them, with
transposes only where a layer needs the Keras layout (``onnx/graph.py``). Training-only
layers (Dropout, noise) are left out. A layer without a conversion is refused with a
ValueError naming it: never a graph that computes something else.

Writing needs the ``onnx`` package (``pip install 'minidl[onnx]'``); minidl imports it only
here, when a model is exported.
"""
import os

_MIN_OPSET = 17   # LayerNormalization
_FORMATS = ("onnx",)


def import_onnx():
    """The ``onnx`` module; ImportError naming the extra that installs it when missing."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError("Exporting to ONNX needs the onnx package: pip install "
                          "'minidl[onnx]'.") from error
    return onnx


def export(model, filepath, opset=17):
    """Write ``model`` to ``filepath`` as an ONNX model, atomically.

    Supported layers: Dense, Conv1D, Conv2D (strides, dilation, groups, 'valid', 'same' and
    'causal' padding), DepthwiseConv1D/2D, SeparableConv1D/2D, MaxPooling1D/2D,
    AveragePooling1D/2D, the global poolings (1-D and 2-D), BatchNormalization (inference),
    LayerNormalization, every built-in activation (as ``activation=`` or as a layer:
    Activation, ReLU, LeakyReLU, ELU, Softmax, PReLU), Flatten, Reshape, Permute,
    ZeroPadding1D/2D, UpSampling1D/2D ('nearest'), Embedding, the merge layers (Add,
    Subtract, Multiply, Average, Maximum, Minimum, Concatenate), SimpleRNN, LSTM, GRU and
    Bidirectional; Dropout and the other training-only layers are left out. Nested models
    are inlined.

    Args:
        model: a built functional or Sequential model.
        filepath: path of the file to write (``str`` or ``os.PathLike``); its directory
            must exist. Written through a temporary file, so a failed export leaves no file
            (and an existing one untouched).
        opset: the ONNX opset version, an int from 17 to the highest the installed
            ``onnx`` package knows (default 17).

    Returns:
        The path written.

    Raises:
        ImportError: the ``onnx`` package is missing.
        ValueError: a layer without a conversion, a setting a graph cannot hold
            (``stateful=True``, ``mask_zero=True``), or an opset out of range.
        TypeError: ``model`` is not a minidl model, or ``filepath`` not a path.

    Example:
        >>> model = Sequential([Input((28, 28, 1)), Conv2D(32, 3, activation="relu"),
        ...                     MaxPooling2D(), Flatten(), Dense(10, activation="softmax")])
        >>> minidl.onnx.export(model, "mnist.onnx")
    """
    from minidl.models.functional import Model
    if not isinstance(model, Model):
        raise TypeError(f"export needs a minidl model; received model={model!r:.100} of type "
                        f"{type(model).__name__}.")
    path = _check_path(filepath)
    onnx = import_onnx()
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not _MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {_MIN_OPSET} to {newest} (the newest the "
                         f"installed onnx package knows); received opset={opset!r:.100}.")
    if not model.built or not model.outputs:
        raise ValueError(f"Model '{model.name}' is not built, so it has no graph to export; "
                         f"give it an Input, or call it on data first. Received "
                         f"filepath={filepath!r}.")
    from minidl.onnx.exporter import model_to_proto
    data = model_to_proto(onnx, model, opset).SerializeToString()
    from minidl.saving.format import atomic_write
    atomic_write(path, lambda f: f.write(data))
    return path


def export_model(model, filepath, format="onnx", verbose=True, input_signature=None,
                 **kwargs):
    """What ``Model.export`` does (Keras 3's method): ``format='onnx'`` is the format
    minidl writes; see :func:`export`. ``opset_version`` (Keras's keyword) sets the opset."""
    if format not in _FORMATS:
        raise ValueError(f"minidl exports models in the format {', '.join(map(repr, _FORMATS))} "
                         f"only; received format={format!r:.100}. (Keras's other formats, "
                         f"such as 'tf_saved_model', need TensorFlow or another backend.)")
    if input_signature is not None:
        raise ValueError(f"minidl exports a model with the input shapes of its Input layers "
                         f"(any batch size); input_signature must be None. Received "
                         f"input_signature={input_signature!r:.100}.")
    opset = kwargs.pop("opset_version", 17)
    if kwargs:
        raise TypeError(f"Model.export got unexpected keyword arguments {sorted(kwargs)}; "
                        f"with format='onnx' it takes opset_version.")
    path = export(model, filepath, opset=opset)
    if verbose:
        print(f"Saved artifact at '{path}'.")
    return path


def _check_path(filepath):
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath must be a str or os.PathLike; received "
                        f"filepath={filepath!r:.100} of type {type(filepath).__name__}.")
    path = os.fspath(filepath)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not path or os.path.isdir(path):
        raise ValueError(f"filepath must name a file; received filepath={filepath!r:.200}"
                         f"{' (a directory)' if path else ''}.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The directory of filepath={filepath!r:.200} does not exist; "
                                f"create {directory!r:.200} first.")
    return path


__all__ = ["export", "import_onnx"]
