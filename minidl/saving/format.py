"""The .minidl archive: a zip of JSON members and .npy arrays, written atomically and read
defensively.

Layout (format version 2):
    metadata.json          {"format_version", "minidl_version", "date", "kind"}
    config.json            the model's architecture and compile settings (kind "model")
    state.json             random states (kind "model"): the global generator's (shuffling,
                           dropout) and each layer's own ("layer_random_states", one entry
                           per layer, null for most); a backup adds the epoch reached
    weights/00000.npy ...  the model's weights, in get_weights order (Keras's layer order;
                           version 1 held a functional model's weights in the order of its
                           graph's nodes, which model_io still reads)
    optimizer/iterations.npy, optimizer/00000.npy ...   step count, then slot arrays

Writing goes to a temporary file in the target's directory that is fsync'd and then renamed
over the target, so a crash never leaves a half-written file where a good one was. The
temporary file is named after the target, the host and the writing process, and locked while
it is written; a write killed before its rename (SIGKILL, power loss) leaves it behind, and the
next write of the same target removes it (:func:`remove_stale_temporaries`).

Reading trusts nothing in the file: only a regular file is read (opened without blocking, so a
FIFO cannot stall the reader, and checked on the opened descriptor); every member the zip
directory lists must lie inside the file, and together they may not claim more bytes than it
has; member names are checked before use, every array's declared size is compared with what
the caller expects (from the config) before a byte of it is read, .npy headers are read
within a fixed bound and parsed without unpickling, and every failure, whatever layer of
zipfile or numpy it comes from, becomes one InvalidModelFileError naming the file. So what a
load reads and allocates is bounded by the size of the file it was given.
"""
import errno
import io
import json
import os
import re
import socket
import stat
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np

try:
    import fcntl
except ImportError:   # Windows: a file open in another process cannot be removed anyway
    fcntl = None

FORMAT_VERSION = 2

_JSON_LIMIT = 64 * 2 ** 20        # config.json of a huge model is far below this
# A JSON member is the one whose parsed form outgrows its bytes (an empty object, 3 bytes,
# is ~70 in memory), so its expanded size is held to the file's own size (which a stored
# member never exceeds) or this floor, whichever is larger: a small deflated file cannot
# unpack into a config of millions of layers.
_JSON_FLOOR = 2 ** 20
_LOCAL_HEADER_SIZE = 30           # the fixed part of a zip member's local header
_NPY_HEADER_LIMIT = 4096          # np.save writes ~128 bytes; numpy itself caps at 10000
_MAX_COMPRESSION_RATIO = 100      # we write stored members; real weights deflate < 2x
_READ_CHUNK = 2 ** 18           # small reads stay in cache (np.load reads 256 KiB too)
_WRITE_CHUNK = 2 ** 20          # CRC, then copy to the page cache, while still in L2
_WRITEBACK_CHUNK = 8 * 2 ** 20  # start writing to disk every this many bytes
_ALLOWED_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

# Everything zipfile, zlib, json and numpy raise on malformed input; a flipped byte can reach
# any of them (an unknown compression method, a bad CRC, an encrypted flag, a broken header).
_FILE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
                KeyError, IndexError, TypeError, struct.error, zlib.error, NotImplementedError,
                RuntimeError, UnicodeDecodeError, OverflowError, MemoryError)


class InvalidModelFileError(ValueError):
    """A model or weights file that cannot be loaded: not a minidl archive, damaged, from
    a newer format version, or disagreeing with its own config. The message names the
    file and the problem."""


def _default_file_mode():
    # mkstemp creates files readable by the owner only; a saved model should get the mode
    # any new file gets. Reading the umask means setting it, so it is done once, at import.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, then replace ``path``
    by it: readers see the old file or the complete new one, never a part.

    Temporary files that earlier writes of ``path`` left behind when they were killed are
    removed first (see :func:`remove_stale_temporaries`).

    Args:
        path: the target path.
        write: function writing the content to a binary, seekable file object.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(path)
    f, tmp = _locked_temporary(path, directory)
    try:
        with f:
            write(_EarlyWriteback(f))
            f.flush()
            os.fsync(f.fileno())
            try:
                mode = os.stat(path).st_mode & 0o7777
            except FileNotFoundError:
                mode = _FILE_MODE
            os.chmod(tmp, mode)
            if fcntl is not None:
                # Renamed while still open and locked: once closed, a cleaner would take
                # the file for the leftover of a killed write.
                os.replace(tmp, path)
        if fcntl is None:
            os.replace(tmp, path)   # Windows renames only closed files
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


# Temporary files are named ".{target}.{host}.{pid}.{random}.tmp". A write holds an exclusive
# flock on its file until the rename, and the kernel drops the lock when the writer dies,
# whatever killed it: a file nobody holds is the leftover of a dead write. The lock, not the
# PID, decides, because a PID can be reused by an unrelated process and is meaningless
# across PID namespaces (two containers of one pod share a host name and a volume). The
# PID serves only where the file system refuses locks: there a file whose PID is no running
# process is a leftover, and a reused PID can only keep a leftover, never remove a live file.
# The host scopes it all: only files written on this host are candidates, since network file
# systems do not always share locks between hosts.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_NAME_MAX = 255   # POSIX file name limit; long target names are cut in temporary names


def _temporary_prefix(path):
    """``.{target}.{host}.``, the target's name cut so that a whole temporary name fits."""
    name = os.path.basename(path)
    room = _NAME_MAX - len(f"..{_HOST}.{2 ** 22}.xxxxxxxx.tmp")
    return f".{name[:room]}.{_HOST}."


def _locked_temporary(path, directory):
    """A new temporary file beside ``path``, open for writing and flock'ed, and its path."""
    prefix = f"{_temporary_prefix(path)}{os.getpid()}."
    while True:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        if fcntl is None:
            return os.fdopen(fd, "w+b"), tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:   # a file system without locks: cleaners fall back on the PID
            return os.fdopen(fd, "w+b"), tmp
        try:
            still_ours = os.stat(tmp).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            still_ours = False
        if still_ours:
            return os.fdopen(fd, "w+b"), tmp
        # A cleaner found the file unlocked between mkstemp and flock, and removed it.
        os.close(fd)


def remove_stale_temporaries(path):
    """Remove the temporary files of writes of ``path`` on this host that were killed
    before their rename (SIGKILL, a power cut); temporary files of writes still running,
    in this process or another, stay.

    Args:
        path: the target path whose leftovers to remove.

    Returns:
        The paths removed.
    """
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))
    prefix = _temporary_prefix(os.fspath(path))
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid, dot, token = name[len(prefix):-len(".tmp")].partition(".")
        if not (pid.isdigit() and dot and token and "." not in token):
            continue   # not a temporary file of this scheme
        if int(pid) == os.getpid():
            # A write of this process, so a live one (where flock is emulated by POSIX
            # locks, on NFS, a process never conflicts with its own lock).
            continue
        candidate = os.path.join(directory, name)
        if _remove_if_abandoned(candidate, int(pid)):
            removed.append(candidate)
    return removed


def _remove_if_abandoned(candidate, pid):
    if fcntl is None:
        try:
            os.remove(candidate)   # fails while its writer has it open
            return True
        except OSError:
            return False
    try:
        fd = os.open(candidate, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False   # its writer holds it
        except OSError:
            if _process_exists(pid):
                return False
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or \
                os.stat(candidate, follow_symlinks=False).st_ino != status.st_ino:
            return False   # not a file we write, or replaced since it was listed
        os.unlink(candidate)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _process_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # PermissionError: it exists, as another user's
        return True
    return True


class _EarlyWriteback:
    """A binary file (as zipfile uses it: write, tell, seek, flush) that asks the OS to
    start writing each ``_WRITEBACK_CHUNK`` bytes to disk as soon as they are written.

    fsync then only waits for the last few megabytes instead of the whole file: measured
    on a 40 MB model, the fsync went from ~26 ms to ~5 ms and the save from ~70 to ~50 ms.
    POSIX_FADV_DONTNEED starts the writeback of the range and lets the OS drop those pages
    from its cache, which also keeps checkpoints from crowding the cache out during
    training. Where posix_fadvise does not exist (macOS, Windows), it is a plain file.
    """

    def __init__(self, f):
        self._f = f
        self._advised = 0   # bytes [0, _advised) were handed to the OS already
        self._advise = getattr(os, "posix_fadvise", None)

    def write(self, data):
        written = self._f.write(data)
        if self._advise is not None:
            end = self._f.tell()
            if end - self._advised >= _WRITEBACK_CHUNK:
                self._f.flush()
                try:
                    self._advise(self._f.fileno(), self._advised, end - self._advised,
                                 os.POSIX_FADV_DONTNEED)
                except OSError:      # a file system that refuses advice: write plainly
                    self._advise = None
                self._advised = end
        return written

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def flush(self):
        return self._f.flush()

    def seekable(self):
        return True


def _fsync_directory(directory):
    # The rename is durable only once the directory entry is; not every OS (Windows) or
    # file system lets a directory be opened or fsync'd, and there it is skipped.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_archive(path, json_members, arrays, kind):
    """Atomically write an archive.

    Args:
        path: target path.
        json_members: dict member name -> JSON-able object (besides metadata.json).
        arrays: list of (member name, array).
        kind: 'model' or 'weights', recorded in metadata.json.
    """
    from minidl import __version__
    import datetime
    metadata = {"format_version": FORMAT_VERSION, "minidl_version": __version__, "kind": kind,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}

    def write(f):
        # Stored, not deflated: weights barely compress and deflate would cost more than
        # the disk write; np.savez makes the same choice.
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr("metadata.json", json.dumps(metadata, indent=2))
            for name, obj in json_members.items():
                zf.writestr(name, json.dumps(obj, indent=2))
            for name, array in arrays:
                with zf.open(name, "w", force_zip64=True) as member:
                    _write_npy(member, array)
    atomic_write(path, write)


def _write_npy(member, array):
    # What np.save writes, without its copy: np.save turns the data into bytes objects
    # 16 MiB at a time, here the array's own buffer goes to zipfile (which takes the CRC)
    # in slices small enough to still be in cache when they are written.
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")   # (not ascontiguousarray: it makes 0-d arrays 1-d)
    if array.dtype.hasobject:
        raise TypeError(f"cannot save an object array ({array.dtype}) without pickling")
    header = np.lib.format.header_data_from_array_1_0(array)
    try:
        np.lib.format.write_array_header_1_0(member, header)
    except ValueError:   # a 1.0 header holds 65535 bytes; only a huge-rank shape needs 2.0
        np.lib.format.write_array_header_2_0(member, header)
    data = memoryview(array.reshape(-1)).cast("B")
    for start in range(0, len(data), _WRITE_CHUNK):
        member.write(data[start:start + _WRITE_CHUNK])


class ArchiveReader:
    """Checked access to the members of an archive; use as a context manager.

    Args:
        path: the file to read; it must be a regular file (or a link to one).
        kind: the metadata kind expected ('model' or 'weights'), or a tuple of the kinds
            accepted; ``metadata["kind"]`` tells which one the file is.

    Raises:
        FileNotFoundError: there is no such file.
        IsADirectoryError: ``path`` is a directory.
        InvalidModelFileError: anything else that makes it unreadable as an archive.
    """

    def __init__(self, path, kind):
        self.path = os.fspath(path)
        self._file, self.size = _open_regular_file(self.path)
        try:
            try:
                self._zip = zipfile.ZipFile(self._file, "r")
            except _FILE_ERRORS as error:
                raise self.error(f"it is not a readable zip archive "
                                 f"({_describe(error)})") from None
            try:
                self._check_directory()
                self.metadata = self.read_json("metadata.json")
                self._check_metadata(kind)
            except BaseException:
                self._zip.close()
                raise
        except BaseException:
            self._file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()
        self._file.close()

    def error(self, problem):
        return InvalidModelFileError(f"Cannot load '{self.path}': {problem}.")

    def _check_directory(self):
        """Check the member names, and that each member the directory lists lies inside
        the file and that together they claim no more bytes than it has: every later read
        is then bounded by the file's size."""
        infos = self._zip.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            raise self.error("the archive holds two members of the same name")
        claimed = 0
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in name or "\x00" in name:
                raise self.error(f"member name {name!r:.200} escapes the archive's directory")
            end = info.header_offset + _LOCAL_HEADER_SIZE + len(name) + info.compress_size
            if info.header_offset < 0 or end > self.size:
                raise self.error(f"member {name!r:.200} declares {info.compress_size} bytes at "
                                 f"offset {info.header_offset}, past the end of the file "
                                 f"({self.size} bytes)")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise self.error(f"member {name!r:.200} is stored (not compressed) but declares "
                                 f"{info.file_size} bytes of content in {info.compress_size}")
            claimed += _LOCAL_HEADER_SIZE + info.compress_size
        if claimed > self.size:
            raise self.error(f"its members claim {claimed} bytes together, more than the file's "
                             f"{self.size} (members overlap)")
        self.names = set(names)

    def _check_metadata(self, kind):
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        meta = self.metadata
        if not isinstance(meta, dict):
            raise self.error(f"metadata.json must be an object; received {meta!r:.200}")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise self.error(f"metadata.json format_version must be an int; received "
                             f"format_version={version!r:.100}")
        if version > FORMAT_VERSION:
            raise self.error(f"it has format_version={version}, newer than the version "
                             f"{FORMAT_VERSION} this minidl reads (written by minidl "
                             f"{meta.get('minidl_version')!r:.100}); upgrade minidl")
        if version < 1:
            raise self.error(f"format_version={version} is not a valid version")
        for field in ("minidl_version", "date"):
            if field in meta and not isinstance(meta[field], str):
                raise self.error(f"metadata.json {field} must be a string; received "
                                 f"{field}={meta[field]!r:.100}")
        if meta.get("kind") not in kinds:
            hint = (" (a weights file: use model.load_weights)" if meta.get("kind") == "weights"
                    else " (a whole model: use minidl.models.load_model)"
                    if meta.get("kind") == "model" else "")
            expected = " or ".join(map(repr, kinds))
            raise self.error(f"it holds kind={meta.get('kind')!r:.100}, expected "
                             f"{expected}{hint}")

    def _info(self, name):
        if name not in self.names:
            raise self.error(f"member '{name}' is missing")
        info = self._zip.getinfo(name)
        if info.compress_type not in _ALLOWED_COMPRESSION:
            raise self.error(f"member '{name}' uses compression method {info.compress_type}, "
                             f"not stored or deflated")
        if info.flag_bits & 0x1:
            raise self.error(f"member '{name}' is encrypted")
        if info.compress_type != zipfile.ZIP_STORED and \
                info.file_size > _MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise self.error(f"member '{name}' declares {info.file_size} bytes from "
                             f"{info.compress_size} compressed (a compression bomb)")
        return info

    def declared_size(self, prefix):
        """The bytes that the members whose names start with ``prefix`` declare, together:
        what the archive can hold for them."""
        return sum(info.file_size for info in self._zip.infolist()
                   if info.filename.startswith(prefix))

    def read_json(self, name):
        """The parsed JSON member ``name``."""
        info = self._info(name)
        limit = min(_JSON_LIMIT, max(self.size, _JSON_FLOOR))
        if info.file_size > limit:
            raise self.error(f"member '{name}' declares {info.file_size} bytes, more than "
                             f"the {limit} allowed for JSON in a file of {self.size} bytes")
        try:
            with self._zip.open(info) as f:
                data = f.read(info.file_size + 1)
            return json.loads(data.decode("utf-8"))
        except (RecursionError,) + _FILE_ERRORS as error:
            raise self.error(f"member '{name}' is not valid JSON ({_describe(error)})") from None

    def read_array(self, name, shape, dtype, out=None):
        """The array member ``name``, which must have ``shape`` and ``dtype``.

        Its declared size is checked against ``shape`` and ``dtype`` before its data is
        read, so a file cannot make the reader allocate more than the caller expects.
        With ``out`` (C-contiguous, of that shape and dtype), the data is read into it.
        """
        shape, dtype = tuple(shape), np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        info = self._info(name)
        if info.file_size > nbytes + _NPY_HEADER_LIMIT:
            raise self.error(f"member '{name}' declares {info.file_size} bytes, more than "
                             f"an array of shape {shape} and dtype {dtype.name} needs")
        try:
            with self._zip.open(info) as f:
                got_shape, fortran, got_dtype = self._read_npy_header(name, f)
                if got_dtype.hasobject:
                    raise self.error(f"member '{name}' holds an object array, which could "
                                     f"only be read by unpickling (refused)")
                if got_shape != shape or got_dtype != dtype or fortran:
                    order = ", Fortran order" if fortran else ""
                    raise self.error(f"member '{name}' holds an array of shape "
                                     f"{got_shape!r:.200} and dtype {got_dtype}{order}; the "
                                     f"config expects shape {shape} and dtype {dtype.name}")
                if info.file_size != f.tell() + nbytes:
                    raise self.error(f"member '{name}' has {info.file_size - f.tell()} bytes "
                                     f"of data; shape {shape} and dtype {dtype.name} need "
                                     f"{nbytes}")
                array = np.empty(shape, dtype) if out is None else out
                view = memoryview(array.reshape(-1).view(np.uint8))
                for start in range(0, nbytes, _READ_CHUNK):
                    want = min(_READ_CHUNK, nbytes - start)
                    chunk = f.read(want)
                    if len(chunk) != want:
                        raise EOFError("unexpected end of data")
                    view[start:start + want] = chunk
                f.read(1)   # reaching the end makes zipfile check the member's CRC
            return array
        except InvalidModelFileError:
            raise
        except _FILE_ERRORS as error:
            raise self.error(f"member '{name}' is damaged ({_describe(error)})") from None

    def _read_npy_header(self, name, f):
        """(shape, fortran_order, dtype) of the .npy member open as ``f``, reading at most
        ``_NPY_HEADER_LIMIT`` bytes of header: its length is checked before it is read."""
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise self.error(f"member '{name}' is a .npy file of version {version}, not 1.0 "
                             f"or 2.0")
        length_format = "<H" if version == (1, 0) else "<I"
        length_bytes = f.read(struct.calcsize(length_format))
        length = struct.unpack(length_format, length_bytes)[0]
        if length > _NPY_HEADER_LIMIT:
            raise self.error(f"member '{name}' declares a .npy header of {length} bytes, more "
                             f"than the {_NPY_HEADER_LIMIT} allowed")
        header = io.BytesIO(length_bytes + f.read(length))
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        return read_header(header, max_header_size=_NPY_HEADER_LIMIT)

    def warn_unknown(self, expected):
        """Warn about members outside ``expected`` (they are ignored)."""
        extra = sorted(self.names - set(expected) - {"metadata.json"})
        if extra:
            warnings.warn(f"'{self.path}' holds members minidl does not know, ignored: "
                          f"{', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}",
                          stacklevel=3)


def _open_regular_file(path):
    """``(binary file object, size)`` of ``path``, which must be a regular file.

    The file is opened without blocking (a FIFO with no writer would otherwise stall
    ``open`` forever) and checked on the opened descriptor, so nothing can swap a device in
    between the check and the reads. /dev/zero and /dev/urandom never end; a FIFO or socket
    blocks or can be read once only; none of them has a size to bound the reads by.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno in (errno.ENXIO, errno.ENODEV):   # a socket, a device without driver
            raise InvalidModelFileError(f"Cannot load '{path}': it is not a regular file "
                                        f"({error.strerror}).") from None
        raise
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory, not a model file", path)
        if not stat.S_ISREG(status.st_mode):
            raise InvalidModelFileError(f"Cannot load '{path}': it is "
                                        f"{_file_type(status.st_mode)}, not a regular file.")
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)   # no effect on a regular file; reads as usual
        return os.fdopen(fd, "rb"), status.st_size
    except BaseException:
        os.close(fd)
        raise


def _file_type(mode):
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"a special file (mode {mode:o})"


def _describe(error):
    return f"{type(error).__name__}: {error}"
