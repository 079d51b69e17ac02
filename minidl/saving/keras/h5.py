"""HDF5 access for Keras files, the one module of minidl that imports h5py.

Keras keeps weights in HDF5 (``.h5``, ``.weights.h5`` and the ``model.weights.h5`` member
of a ``.keras`` zip). HDF5 can do much more than hold arrays: a link may point into another
file (an external link) or elsewhere in this one (a soft link), a dataset may be assembled
from other files (a virtual dataset) or keep its bytes in raw files beside it (external
storage), its data may need a filter plugin loaded from disk, and a header may declare a
dataset of terabytes in a file of a kilobyte. Keras files use none of that, so
:func:`open_h5` refuses all of it, walking the whole tree once, before the caller reads
anything: afterwards every object reached by name is a plain group or a numeric dataset of
this file whose declared size is bounded by the file's size, and every attribute too. The
walk itself is bounded (``_MAX_OBJECTS``), so a file of a million empty groups or of
hard-link cycles cannot stall it.

h5py is an optional dependency (the ``minidl[keras]`` extra), imported on first use.
Every failure of h5py or HDF5 on a malformed file becomes an
:class:`~minidl.saving.format.InvalidModelFileError` naming the file and the object.
"""
import json
import os

import numpy as np

from minidl.saving.format import (_FILE_ERRORS, InvalidModelFileError, _describe,
                                  _open_regular_file, atomic_write)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Links and attributes together. A Keras file holds a few per weight (ResNet50's
# ImageNet weights: ~1,300); a hundred thousand is far above any real model and walked in
# well under a second.
_MAX_OBJECTS = 100_000
# A compressed dataset may declare more bytes than the file holds, up to this ratio (as
# format.py bounds deflated zip members). Keras writes no compressed datasets.
_MAX_COMPRESSION_RATIO = 100
_JSON_ATTR_LIMIT = 64 * 2 ** 20   # a model_config of a huge model is far below this
# HDF5 puts a user block of 0, 512, 1024, 2048... bytes before the signature.
_MAX_USER_BLOCK = 2 ** 20
# The filters HDF5 and h5py build in, which need no plugin: deflate, shuffle,
# fletcher32, lzf. Any other filter id would make HDF5 search the plugin path.
_BUILTIN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}

_H5_ERRORS = _FILE_ERRORS + (RecursionError,)


def import_h5py():
    """The ``h5py`` module, imported on first use.

    Raises:
        ImportError: h5py is not installed; the message names the extra to install.
    """
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading and writing Keras files needs h5py: "
                          "pip install 'minidl[keras]'") from None
    return h5py


def h5_error(what, problem):
    """The InvalidModelFileError for ``problem`` in the file described by ``what``."""
    return InvalidModelFileError(f"Cannot load {what}: {problem}.")


def _describe_source(source, what):
    if what is not None:
        return what
    if isinstance(source, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(source))
    return "the HDF5 file"


_file_class = None


def _checked_file_class(h5py):
    """An h5py.File that also closes the Python file object it reads from."""
    global _file_class
    if _file_class is None:
        class CheckedH5File(h5py.File):
            """An HDF5 file open read-only and validated by :func:`open_h5`. ``what``
            names it in messages, ``size`` is its size in bytes."""

            def close(self):
                try:
                    super().close()
                finally:
                    raw = self.__dict__.pop("_minidl_raw", None)
                    if raw is not None:
                        raw.close()
        _file_class = CheckedH5File
    return _file_class


def open_h5(source, what=None):
    """Open an HDF5 file read-only and check all of it before anything is read.

    Checked, in this order: ``source`` is a regular file (a FIFO or a device is refused
    without blocking on it) or a seekable binary file object; it starts with the HDF5
    signature; HDF5 opens it; then every object of its tree: only hard links (no external
    or soft links), only groups and datasets, no virtual datasets, no external storage, no
    filter but the built-in ones, only numeric dataset dtypes, no dataset or attribute that
    declares more bytes than the file can hold, and at most ``_MAX_OBJECTS`` links and
    attributes in all.

    Args:
        source: a path, or a binary file object open for reading with ``seek`` and
            ``tell`` (such as a member of a ``.keras`` zip).
        what: how messages name the file, e.g. ``"'model.h5'"``; by default the path
            quoted, or "the HDF5 file" for a file object.

    Returns:
        The open ``h5py.File`` (read-only; close it, or use it in a ``with`` block). Its
        ``what`` attribute holds the description, ``size`` the size in bytes.

    Raises:
        ImportError: h5py is not installed.
        FileNotFoundError, IsADirectoryError: as for any file.
        InvalidModelFileError: anything that makes it unsafe or unreadable.
    """
    h5py = import_h5py()
    what = _describe_source(source, what)
    raw = None
    if isinstance(source, (str, bytes, os.PathLike)):
        raw, size = _open_regular_file(os.fsdecode(source))
        stream = raw
    else:
        stream = source
        if not all(callable(getattr(stream, m, None)) for m in ("read", "seek", "tell")):
            raise TypeError(f"source must be a path or a binary file object with read, seek "
                            f"and tell; received {type(source).__name__}")
    h5file = None
    try:
        try:
            if raw is None:
                size = stream.seek(0, os.SEEK_END)
            _check_signature(stream, size, what)
            stream.seek(0)
            h5file = _checked_file_class(h5py)(stream, "r")
        except InvalidModelFileError:
            raise
        except _H5_ERRORS as error:
            raise h5_error(what, f"it is not a readable HDF5 file ({_describe(error)})") from None
        h5file.__dict__.update(what=what, size=size, _minidl_raw=raw)
        raw = None   # closed with the HDF5 file from now on
        _walk(h5py, h5file, what, size)
        return h5file
    except BaseException:
        if h5file is not None:
            h5file.close()
        if raw is not None:
            raw.close()
        raise


def _check_signature(stream, size, what):
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size and offset <= _MAX_USER_BLOCK:
        stream.seek(offset)
        if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return
        offset = 512 if offset == 0 else offset * 2
    raise h5_error(what, "it is not an HDF5 file (no HDF5 signature)")


def _walk(h5py, h5file, what, size):
    """Check every link, object and attribute of the file.

    HDF5's own visitors do the walking (H5Lvisit, H5Ovisit: in C, each object once, so a
    hard-link cycle ends), with a callback that counts and stops at ``_MAX_OBJECTS``; only
    then are the datasets and attributes they listed opened and checked.
    """
    try:
        links, problem = _visit_links(h5py, h5file, len(h5file.attrs))
        if problem is None and links > _MAX_OBJECTS:
            problem = _too_many()
        if problem is None:
            objects, problem = _visit_objects(h5py, h5file, links)
        if problem is not None:
            raise h5_error(what, problem)
        _check_attributes(h5file, "/", what, size)
        for name, kind, has_attributes in objects:
            path = "/" + name
            if kind == h5py.h5o.TYPE_DATASET:
                _check_dataset(h5py, h5py.h5d.open(h5file.id, name.encode()), path, what,
                               size)
            if has_attributes:
                _check_attributes(h5file[path], path, what, size)
    except InvalidModelFileError:
        raise
    except _H5_ERRORS as error:
        raise h5_error(what, f"its structure is damaged ({_describe(error)})") from None


def _too_many():
    return (f"it holds more than {_MAX_OBJECTS} objects and attributes, far more than a "
            f"model has")


def _visit_links(h5py, h5file, count):
    """(links counted, problem or None): every link must be a hard link."""
    state = {"count": count, "problem": None}

    def visit(name, info):
        state["count"] += 1
        if state["count"] > _MAX_OBJECTS:
            state["problem"] = _too_many()
            return 1
        if info.type == h5py.h5l.TYPE_HARD:
            return None
        path = "/" + name.decode("utf-8", "replace")
        link = h5file.get(path, getlink=True)
        if info.type == h5py.h5l.TYPE_EXTERNAL:
            state["problem"] = (f"'{path}' is an external link to "
                                f"'{getattr(link, 'filename', '?')}' (refused: it would read "
                                f"another file)")
        elif info.type == h5py.h5l.TYPE_SOFT:
            state["problem"] = (f"'{path}' is a soft link to '{getattr(link, 'path', '?')}' "
                                f"(refused; Keras writes none)")
        else:
            state["problem"] = f"'{path}' is a link of an unknown kind ({info.type})"
        return 1
    h5file.id.links.visit(visit, info=True)
    return state["count"], state["problem"]


def _visit_objects(h5py, h5file, count):
    """([(name, type, has attributes)], problem or None): groups and datasets only, each
    reached by one link (Keras writes trees; a second link is a cycle or an alias)."""
    state = {"count": count, "problem": None}
    objects = []

    def visit(name, info):
        path = "/" + name.decode("utf-8", "replace")
        state["count"] += info.num_attrs
        if state["count"] > _MAX_OBJECTS:
            state["problem"] = _too_many()
            return 1
        if info.type not in (h5py.h5o.TYPE_GROUP, h5py.h5o.TYPE_DATASET):
            kind = "named datatype" if info.type == h5py.h5o.TYPE_NAMED_DATATYPE \
                else f"object of type {info.type}"
            state["problem"] = f"'{path}' is a {kind}, not a group or dataset"
            return 1
        if info.rc > 1:
            state["problem"] = (f"'{path}' is reached by {info.rc} links (a cycle or an "
                                f"alias; Keras files are trees)")
            return 1
        objects.append((name.decode("utf-8", "replace"), info.type, info.num_attrs > 0))
        return None
    h5py.h5o.visit(h5file.id, visit, info=True)
    return objects, state["problem"]


def _check_attributes(obj, path, what, size):
    """Check each attribute's declared size against the file's."""
    attrs = obj.attrs
    for name in attrs:
        attr = attrs.get_id(name)
        declared = int(attr.shape and np.prod(attr.shape, dtype=object) or 1) \
            * attr.dtype.itemsize
        if declared > size:
            raise h5_error(what, f"attribute {name!r:.100} of '{path}' declares {declared} "
                                 f"bytes, more than the file's {size}")


def _is_numeric(dtype):
    return dtype.kind in "biuf" and dtype.fields is None and dtype.subdtype is None


def _check_dataset(h5py, dataset, path, what, size):
    """Check a dataset (an h5py DatasetID) before anything of its data is read."""
    plist = dataset.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise h5_error(what, f"dataset '{path}' is a virtual dataset (refused: it would "
                             f"read other files)")
    if plist.get_external_count():
        raise h5_error(what, f"dataset '{path}' keeps its data in external files (refused)")
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [f for f in filters if f not in _BUILTIN_FILTERS]
    if unknown:
        raise h5_error(what, f"dataset '{path}' needs HDF5 filter {unknown[0]}, which is not "
                             f"built in (refused: only {', '.join(_BUILTIN_FILTERS.values())})")
    dtype = dataset.dtype
    if not _is_numeric(dtype):
        raise h5_error(what, f"dataset '{path}' holds {dtype}, not numbers")
    shape = dataset.shape
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize if shape is not None else 0
    bound = size * _MAX_COMPRESSION_RATIO if filters else size
    if declared > bound:
        raise h5_error(what, f"dataset '{path}' declares shape {shape} of {dtype} "
                             f"({declared} bytes), more than the file's {size} bytes can hold")
    if layout == h5py.h5d.CHUNKED:
        chunk_bytes = int(np.prod(plist.get_chunk(), dtype=object)) * dtype.itemsize
        if chunk_bytes > size * _MAX_COMPRESSION_RATIO:
            raise h5_error(what, f"dataset '{path}' declares chunks of {chunk_bytes} bytes, "
                                 f"more than the file's {size} bytes can hold")


def read_array(group, name, shape, dtype, what):
    """The dataset ``group[name]`` as an array of ``dtype``, its shape checked first.

    Args:
        group: an h5py group of a file from :func:`open_h5`.
        name: the dataset's name or path relative to ``group``.
        shape: the shape expected (a tuple), or None to take the dataset's own.
        dtype: the dtype of the array returned (the dataset's values are cast).
        what: how messages name the file.

    Returns:
        A new numpy array of ``shape`` and ``dtype``.

    Raises:
        InvalidModelFileError: the dataset is missing, is not numeric, has another
            shape, or cannot be read.
    """
    h5py = import_h5py()
    path = f"{group.name.rstrip('/')}/{name}"
    try:
        dataset = group.get(name)
        if not isinstance(dataset, h5py.Dataset):
            problem = "is missing" if dataset is None else "is not a dataset"
            raise h5_error(what, f"'{path}' {problem}")
        if not _is_numeric(dataset.dtype):
            raise h5_error(what, f"dataset '{path}' holds {dataset.dtype}, not numbers")
        got = dataset.shape
        if got is None:
            raise h5_error(what, f"dataset '{path}' is empty (no dataspace)")
        if shape is not None and tuple(got) != tuple(shape):
            raise h5_error(what, f"dataset '{path}' has shape {tuple(got)}, expected "
                                 f"{tuple(shape)}")
        array = np.empty(got, dataset.dtype)
        if array.size:
            dataset.read_direct(array)
        return array.astype(dtype, copy=False)
    except InvalidModelFileError:
        raise
    except _H5_ERRORS as error:
        raise h5_error(what, f"dataset '{path}' is damaged ({_describe(error)})") from None


def _decode(value, where, what):
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise h5_error(what, f"{where} is not UTF-8 text") from None
    if isinstance(value, str):
        return str(value)
    raise h5_error(what, f"{where} holds {type(value).__name__}, not text")


def _read_attr(obj, name, what):
    """The raw value of attribute ``name`` of ``obj``; None when it has none."""
    try:
        if name not in obj.attrs:
            return None
        return obj.attrs[name]
    except _H5_ERRORS as error:
        raise h5_error(what, f"attribute {name!r} of '{obj.name}' is damaged "
                             f"({_describe(error)})") from None


def read_json_attr(obj, name, what):
    """The JSON text held in attribute ``name`` of ``obj``, parsed (as Keras writes
    ``model_config`` and ``training_config``); None when there is no such attribute.

    Raises:
        InvalidModelFileError: the attribute is not one text value, is larger than
            64 MiB, or is not valid JSON.
    """
    value = _read_attr(obj, name, what)
    if value is None:
        return None
    where = f"attribute {name!r} of '{obj.name}'"
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise h5_error(what, f"{where} holds {value.size} values, not one JSON text")
        value = value.reshape(-1)[0]
    text = _decode(value, where, what)
    if len(text) > _JSON_ATTR_LIMIT:
        raise h5_error(what, f"{where} holds {len(text)} characters, more than the "
                             f"{_JSON_ATTR_LIMIT} allowed for JSON")
    try:
        return json.loads(text)
    except (RecursionError, ValueError) as error:
        raise h5_error(what, f"{where} is not valid JSON ({_describe(error)})") from None


def read_str_list_attr(obj, name, what):
    """The list of strings in attribute ``name`` of ``obj``, as Keras reads
    ``layer_names`` and ``weight_names``: a list too large for one attribute is split
    over ``name0``, ``name1``, ...; an object without it gives ``[]``.

    Raises:
        InvalidModelFileError: the attribute does not hold text.
    """
    values = _read_attr(obj, name, what)
    parts = [(name, values)]
    if values is None:
        parts = []
        while True:
            part = f"{name}{len(parts)}"
            values = _read_attr(obj, part, what)
            if values is None:
                break
            parts.append((part, values))
    out = []
    for part, values in parts:
        where = f"attribute {part!r} of '{obj.name}'"
        if isinstance(values, np.ndarray):
            if values.ndim > 1:
                raise h5_error(what, f"{where} has shape {values.shape}, not a list")
            values = values.reshape(-1).tolist()
        elif isinstance(values, (bytes, str, np.bytes_, np.str_)):
            values = [values]
        else:
            raise h5_error(what, f"{where} holds {type(values).__name__}, not text")
        out.extend(_decode(v, where, what) for v in values)
    return out


class _WriteTarget:
    """The temporary file of :func:`atomic_write` as h5py's file-object driver uses it:
    writes go through atomic_write's writer, reads and truncation to the file below."""

    def __init__(self, writer):
        self._writer = writer
        self._file = getattr(writer, "_f", writer)

    def write(self, data):
        return self._writer.write(data)

    def seek(self, *args):
        return self._writer.seek(*args)

    def tell(self):
        return self._writer.tell()

    def flush(self):
        return self._writer.flush()

    def readinto(self, buffer):
        return self._file.readinto(buffer)

    def read(self, *args):
        return self._file.read(*args)

    def truncate(self, *args):
        return self._file.truncate(*args)

    def seekable(self):
        return True


def write_h5(path, fill):
    """Write an HDF5 file atomically: ``fill(h5file)`` gets an ``h5py.File`` open for
    writing on a temporary file beside ``path``, which replaces ``path`` once complete.

    Args:
        path: the target path.
        fill: function writing the content into the open h5py.File.

    Raises:
        ImportError: h5py is not installed (nothing is written).
    """
    h5py = import_h5py()

    def write(f):
        with h5py.File(_WriteTarget(f), "w") as h5file:
            fill(h5file)
    atomic_write(path, write)
