"""Keras 3 ``.keras`` archives and ``.weights.h5`` files: read and write.

A ``.keras`` file is a zip of three members, as Keras 3 writes it::

    metadata.json       {"keras_version", "date_saved"} (minidl adds "minidl_version")
    config.json         the model's config (module, class_name, config, registered_name,
                        build_config) and its compile_config
    model.weights.h5    the weights in Keras's layout (see minidl.saving.keras.weights),
                        then the optimizer's variables

A ``.weights.h5`` file is that HDF5 file on its own.

Reading trusts nothing in the file, as the native format's reader: the zip goes through the
checks of :class:`minidl.saving.format.ArchiveReader` (regular file, members inside the file,
bounded JSON, no compression bombs), the HDF5 file through :func:`minidl.saving.keras.h5.open_h5`
(no external or soft links, no virtual datasets, declared sizes bounded by the file's), class
names through minidl's registries only (:mod:`minidl.saving.keras.config`), and every array's
shape is checked against the model before it is read. Nothing named in a file is imported or
executed, and a load that fails leaves nothing behind. Writing is atomic.
"""
import datetime
import io
import json
import os
import warnings
import zipfile

import numpy as np

from minidl.saving.format import (_FILE_ERRORS, ArchiveReader, InvalidModelFileError,
                                  _describe, atomic_write)
from minidl.saving.keras import weights as layout

__all__ = ["KERAS_VERSION", "KerasArchiveReader", "file_kind", "is_legacy_h5", "load_keras",
           "load_keras_weights", "save_keras", "save_keras_weights"]

# The Keras version whose layout minidl writes (and records in metadata.json).
KERAS_VERSION = "3.15.1"

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
_MEMBERS = (METADATA_MEMBER, CONFIG_MEMBER, WEIGHTS_MEMBER)


def _h5():
    from minidl.saving.keras import h5
    return h5


def _kconfig():
    from minidl.saving.keras import config
    return config


class KerasArchiveReader(ArchiveReader):
    """Checked access to the members of a ``.keras`` zip: :class:`ArchiveReader`'s checks,
    with Keras's metadata.json in place of minidl's."""

    def __init__(self, path):
        super().__init__(path, "keras")

    def read_json(self, name):
        # Keras's loader never reads metadata.json; a file without it still loads there.
        if name == METADATA_MEMBER and name not in self.names:
            return {}
        return super().read_json(name)

    def _check_metadata(self, kind):
        meta = self.metadata
        if not isinstance(meta, dict):
            raise self.error(f"metadata.json must be an object; received {meta!r:.200}")
        for field in ("keras_version", "date_saved", "minidl_version"):
            if field in meta and not isinstance(meta[field], str):
                raise self.error(f"metadata.json {field} must be a string; received "
                                 f"{field}={meta[field]!r:.100}")
        missing = [name for name in (CONFIG_MEMBER, WEIGHTS_MEMBER) if name not in self.names]
        if missing:
            raise self.error(f"it is a zip without {' and '.join(missing)}, so not a Keras 3 "
                             f"model file")

    def read_bytes(self, name):
        """The content of member ``name`` (its size bounded by the checks of the zip's
        directory: no more than the file holds, or 100x that for a deflated member); the
        member's CRC is checked."""
        info = self._info(name)
        try:
            with self._zip.open(info) as f:
                data = f.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise EOFError(f"{len(data)} bytes of {info.file_size}")
            return data
        except _FILE_ERRORS as error:
            raise self.error(f"member '{name}' is damaged ({_describe(error)})") from None


# ---- reading ----

def _file_error(path, problem):
    return InvalidModelFileError(f"Cannot load '{path}': {problem}.")


def _translated(path, function, *args):
    """``function(*args)`` of the config translation, its ValueError as the file's error."""
    try:
        return function(*args)
    except InvalidModelFileError:
        raise
    except (RecursionError,) + _FILE_ERRORS as error:
        raise _file_error(path, str(error).rstrip(".") or type(error).__name__) from None


def _read_weight_values(model, h5file, what):
    """``[(Variable, array)]`` for every variable of ``model``, read from ``h5file`` in
    Keras 3's layout, each shape checked before its data is read."""
    h5 = _h5()
    h5py = h5.import_h5py()
    pairs = []
    for group_path, variables in layout.keras_weight_groups(model):
        group = h5file.get(group_path)
        if not isinstance(group, h5py.Group):
            raise h5.h5_error(what, f"it holds no group '{group_path}' (for {len(variables)} "
                                    f"weights of the model); it is a file of another model")
        stored = len(group)
        if stored != len(variables):
            raise h5.h5_error(what, f"'{group_path}' holds {stored} weights; the model's layer "
                                    f"there has {len(variables)}")
        for i, variable in enumerate(variables):
            pairs.append((variable, h5.read_array(group, str(i), variable.value.shape,
                                                  variable.value.dtype, what)))
    return pairs


def _read_optimizer_values(model, h5file, what):
    """The arrays of ``optimizer/vars`` matching the model's optimizer, or None (with a
    warning, as Keras) when the file's optimizer state does not fit it."""
    h5 = _h5()
    h5py = h5.import_h5py()
    expected = layout.keras_optimizer_shapes(model)
    group = h5file.get("optimizer/vars")
    if expected is None or not isinstance(group, h5py.Group):
        if expected is not None and model.optimizer.built and "optimizer" in h5file:
            warnings.warn(f"{what}: its optimizer state was not restored (no optimizer/vars "
                          f"group).", stacklevel=4)
        return None
    if len(group) != len(expected):
        warnings.warn(f"{what}: its optimizer state ({len(group)} variables) does not fit "
                      f"the model's {type(model.optimizer).__name__} ({len(expected)} "
                      f"variables); the optimizer starts fresh.", stacklevel=4)
        return None
    values = []
    for i, (shape, kind) in enumerate(expected):
        dtype = np.int64 if kind == "int" else np.float64
        values.append(h5.read_array(group, str(i), shape, dtype, what))
    iterations = int(values[0])
    if iterations < 0:
        raise h5.h5_error(what, f"optimizer/vars/0 (iterations) is {iterations}, negative")
    if not all(np.isfinite(v).all() for v in values[1:]):
        raise h5.h5_error(what, "the optimizer's state holds NaN or infinite values")
    return values


def _check_h5_source(source):
    """``source`` as a path string (file objects are not taken here)."""
    if isinstance(source, bytes):
        return os.fsdecode(source)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    raise TypeError(f"filepath must be a path (str or os.PathLike); received "
                    f"filepath={source!r:.100} of type {type(source).__name__}.")


def load_keras(source, compile=True):
    """Load a Keras 3 ``.keras`` model file.

    Args:
        source: the path of a ``.keras`` file (written by Keras 3 or by minidl).
        compile: compile the model as its ``compile_config`` says and, when the optimizer
            maps onto minidl's, restore its step count, learning rate and slots.

    Returns:
        A built minidl model (Sequential or functional).

    Raises:
        ImportError: h5py is not installed (``pip install 'minidl[keras]'``).
        InvalidModelFileError: the file is damaged, is not a Keras 3 model file, or names
            a class minidl does not have (custom objects, ``Lambda``).
    """
    from minidl.layers.base import skip_weight_init
    from minidl.saving.model_io import _compile_from_config, _model_from_spec
    h5 = _h5()
    h5.import_h5py()
    path = _check_h5_source(source)
    kconfig = _kconfig()
    with KerasArchiveReader(path) as reader:
        config = reader.read_json(CONFIG_MEMBER)
        if not isinstance(config, dict):
            raise reader.error(f"config.json is not an object; received {config!r:.200}")
        data = reader.read_bytes(WEIGHTS_MEMBER)
        unknown = sorted(reader.names - set(_MEMBERS))
    what = f"'{path}' (member {WEIGHTS_MEMBER})"
    spec = _translated(path, kconfig.model_spec_from_keras, config)
    compiled = None
    if compile and config.get("compile_config") is not None:
        compiled = _translated(path, kconfig.compile_spec_from_keras, config["compile_config"])
    # The weights file is validated (its whole tree) before the model is built, so that a
    # damaged member is named as such.
    with h5.open_h5(io.BytesIO(data), what) as h5file:
        try:
            # The weights the config declares may take no more than the member holds.
            with skip_weight_init(max_bytes=len(data)):
                model = _model_from_spec(spec)
        except InvalidModelFileError:
            raise
        except (RecursionError,) + _FILE_ERRORS as error:
            raise _file_error(path, f"its config does not describe a valid model "
                                    f"({str(error).rstrip('.')})") from None
        if not model.built:
            raise _file_error(path, "its config describes a model that is not built (no "
                                    "input shape), so it holds no weights")
        pairs = _read_weight_values(model, h5file, what)
        # Compiled after the weights are read: the optimizer's slots are as large as the
        # weights, which the file has now shown it holds.
        if compiled is not None:
            try:
                _compile_from_config(model, compiled)
            except (RecursionError,) + _FILE_ERRORS as error:
                raise _file_error(path, f"its compile_config is not valid "
                                        f"({str(error).rstrip('.')})") from None
        optimizer_values = (_read_optimizer_values(model, h5file, what)
                            if model.compiled else None)
    layout.assign_weights(model, pairs)
    if optimizer_values is not None:
        layout.set_keras_optimizer_values(model, optimizer_values)
    if unknown:
        warnings.warn(f"'{path}' holds members minidl does not read (Keras assets?), "
                      f"ignored: {', '.join(unknown[:10])}", stacklevel=2)
    return model


def load_keras_weights(model, source):
    """Set ``model``'s weights from a Keras 3 ``.weights.h5`` file (or the weights of a
    ``.keras`` archive), matched by Keras's layout: layer by layer in ``model.layers``
    order, by class (not by name). When the model is compiled and the file holds the state
    of an optimizer of the same kind, the optimizer's state is restored too, as Keras does.
    A file that does not fit the model changes nothing.

    Raises:
        ImportError: h5py is not installed.
        InvalidModelFileError: the file is damaged or holds weights of another model.
    """
    h5 = _h5()
    h5.import_h5py()
    path = _check_h5_source(source)
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it cannot take weights; "
                         f"build it first. Received filepath={path!r}.")
    if _is_zip(path):
        with KerasArchiveReader(path) as reader:
            data = reader.read_bytes(WEIGHTS_MEMBER)
        what = f"'{path}' (member {WEIGHTS_MEMBER})"
        opened = h5.open_h5(io.BytesIO(data), what)
    else:
        what = f"'{path}'"
        opened = h5.open_h5(path, what)
    with opened as h5file:
        pairs = _read_weight_values(model, h5file, what)
        optimizer_values = (_read_optimizer_values(model, h5file, what)
                            if getattr(model, "compiled", False) else None)
    layout.assign_weights(model, pairs)
    if optimizer_values is not None:
        layout.set_keras_optimizer_values(model, optimizer_values)


def is_legacy_h5(path):
    """Whether the HDF5 file at ``path`` is in Keras's legacy layout (a ``.h5`` model file
    with ``model_weights``, or a legacy weights file with ``layer_names``) rather than
    Keras 3's ``.weights.h5`` layout. The file is validated as any read (``open_h5``)."""
    with _h5().open_h5(path, f"'{os.fspath(path)}'") as h5file:
        return "model_weights" in h5file or "layer_names" in h5file.attrs


def _is_zip(path):
    return file_kind(path) in ("keras", "zip")


def file_kind(path):
    """What the file at ``path`` holds, from its content (never its name): ``"keras"`` (a
    zip with config.json and model.weights.h5, and no minidl state.json), ``"zip"`` (any
    other zip: minidl's native format), ``"hdf5"`` (an HDF5 signature at offset 0 or at a
    user-block offset) or ``"unknown"``.

    Raises:
        FileNotFoundError, IsADirectoryError: as for any file.
        InvalidModelFileError: ``path`` is not a regular file (a FIFO, a device).
    """
    from minidl.saving.format import _open_regular_file
    from minidl.saving.keras.h5 import HDF5_SIGNATURE
    f, size = _open_regular_file(os.fspath(path))
    with f:
        head = f.read(len(HDF5_SIGNATURE))
        if head.startswith(b"PK"):
            try:
                f.seek(0)
                with zipfile.ZipFile(f) as zf:
                    names = set(zf.namelist())
            except _FILE_ERRORS:
                return "zip"   # damaged: the native reader names the problem
            if {CONFIG_MEMBER, WEIGHTS_MEMBER} <= names and "state.json" not in names:
                return "keras"
            return "zip"
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size and offset <= 2 ** 20:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return "hdf5"
            offset = 512 if offset == 0 else offset * 2
    return "unknown"


# ---- writing ----

def _fill_weights(h5file, model):
    """Write ``model``'s weights, then its optimizer's variables, in Keras 3's layout."""
    for path, name, variables in layout.keras_weight_entries(model):
        group = h5file.create_group(layout._vars_path(path))
        group.attrs["name"] = name
        for i, variable in enumerate(variables):
            group.create_dataset(str(i), data=np.asarray(variable.value))
    values = layout.keras_optimizer_values(model)
    if values is not None:
        group = h5file.create_group("optimizer/vars")
        group.attrs["name"] = model.optimizer.name
        for i, value in enumerate(values):
            group.create_dataset(str(i), data=np.asarray(value))


def _check_built(model, filepath):
    if not model.built:
        raise ValueError(f"Model '{model.name}' is not built, so it has no weights to save; "
                         f"build it or train it first. Received filepath={filepath!r}.")


def save_keras_weights(model, filepath):
    """Write ``model``'s weights (and its optimizer's state, when compiled) as a Keras 3
    ``.weights.h5`` file, atomically; Keras's ``model.load_weights`` reads it.

    Raises:
        ImportError: h5py is not installed (nothing is written).
    """
    _h5().import_h5py()
    _check_built(model, filepath)
    data = _weights_bytes(model)
    atomic_write(filepath, lambda f: f.write(data))


def _weights_bytes(model):
    """The ``model.weights.h5`` member (or a ``.weights.h5`` file), made in memory under
    the model's shared lock: a snapshot between two training steps of another thread,
    never halfway through an update."""
    h5py = _h5().import_h5py()
    buffer = io.BytesIO()
    with model._lock.shared:
        with h5py.File(buffer, "w") as h5file:
            _fill_weights(h5file, model)
    return buffer.getvalue()


def keras_config_json(model):
    """The ``config.json`` object of a ``.keras`` file of ``model``."""
    kconfig = _kconfig()
    config = kconfig.model_config_to_keras(model)
    compiled = kconfig.compile_config_to_keras(model) if getattr(model, "compiled", False) \
        else None
    if compiled is not None:
        config["compile_config"] = compiled
    return config


def save_keras(model, filepath):
    """Write ``model`` as a Keras 3 ``.keras`` file, atomically: its config, compile
    settings, weights and optimizer state, in the layout Keras 3 reads
    (``keras.saving.load_model`` rebuilds the same model and predicts the same).

    Raises:
        ImportError: h5py is not installed (nothing is written).
        ValueError: the model is not built, or holds something Keras cannot represent
            (the message names the layer).
    """
    from minidl import __version__
    _h5().import_h5py()
    _check_built(model, filepath)
    config = keras_config_json(model)
    weights = _weights_bytes(model)
    metadata = {"keras_version": KERAS_VERSION, "minidl_version": __version__,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(METADATA_MEMBER, json.dumps(metadata))
            zf.writestr(CONFIG_MEMBER, json.dumps(config))
            zf.writestr(WEIGHTS_MEMBER, weights)
    atomic_write(filepath, write)
