"""Reading and writing the IDX format (the file format of MNIST and Fashion-MNIST).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the array in C order, big-endian. Files may be
gzip-compressed; they are recognised by the gzip magic bytes, not by their name.

Every length the header declares is checked against the bytes actually present, and data are
read in bounded chunks, so a corrupt or hostile header can never make us allocate more than
the file really holds.
"""
import gzip
import io
import os
import zlib

import numpy as np

# IDX type code -> numpy dtype (big-endian, as stored on disk).
_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}

# The format allows 255 dimensions; real data sets use 1 to 4. A larger count means the
# header is garbage, and saying so is clearer than a later size mismatch.
MAX_NDIM = 8

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def read_idx(source, name=None):
    """Reads an IDX array from a file (raw or gzip-compressed) or from bytes.

    Args:
        source: a path (str or `os.PathLike`), or the file's content as `bytes`.
        name: how to name the data in error messages. Defaults to the path; give it when
            `source` is bytes.

    Returns:
        A writable numpy array in native byte order, with the dtype and shape the header
        declares.

    Raises:
        ValueError: the data are not a well-formed IDX file (wrong magic number, unknown
            type code, truncated header or data, trailing bytes, damaged gzip stream). The
            message names the file.

    Example:

    >>> images = read_idx("train-images-idx3-ubyte.gz")
    >>> images.shape, images.dtype
    ((60000, 28, 28), dtype('uint8'))
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        _, dtype, shape, data = _read_parts(io.BytesIO(source), name or "<bytes>")
    else:
        with open(source, "rb") as raw:
            _, dtype, shape, data = _read_parts(raw, name or os.fspath(source))
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder("="))
    return array


def inflate_idx(data, name):
    """The uncompressed IDX bytes of `data` (gzip-compressed or not), validated.

    Used to hash the content of a file that was recompressed, without trusting the gzip
    stream's length: no more is decompressed than the IDX header declares, plus one byte.

    Args:
        data: the file's content.
        name: the file, for error messages.

    Returns:
        `bytes`: header and data, exactly as an uncompressed IDX file holds them.

    Raises:
        ValueError: as `read_idx`.
    """
    header, _, _, payload = _read_parts(io.BytesIO(data), name)
    return header + payload


def write_idx(path, array):
    """Writes an array as an IDX file, gzip-compressed when `path` ends in `.gz`.

    Args:
        path: destination file (str or `os.PathLike`).
        array: array-like of dtype uint8, int8, int16, int32, float32 or float64, with
            1 to `MAX_NDIM` dimensions.

    Example:

    >>> write_idx("labels-idx1-ubyte.gz", np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx("labels-idx1-ubyte.gz")
    array([3, 1, 4], dtype=uint8)
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX stores uint8, int8, int16, int32, float32 or float64. "
                         f"Received: array.dtype={array.dtype}")
    if not 1 <= array.ndim <= MAX_NDIM:
        raise ValueError(f"IDX arrays need 1 to {MAX_NDIM} dimensions. "
                         f"Received: array.shape={array.shape}")
    if any(dim >= 2**32 for dim in array.shape):
        raise ValueError(f"IDX dimensions are uint32. Received: array.shape={array.shape}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        dim.to_bytes(4, "big") for dim in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    with open(path, "wb") as out:
        if os.fspath(path).endswith(".gz"):
            # No stored file name and mtime=0: the same array gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as compressed:
                compressed.write(payload)
        else:
            out.write(payload)


def _read_parts(raw, name):
    """(header bytes, dtype, shape, data bytearray) from a raw or gzip-compressed stream."""
    head = raw.read(2)
    raw.seek(0)
    if head != _GZIP_MAGIC:
        return _parse(raw, name)
    try:
        return _parse(gzip.GzipFile(fileobj=raw, mode="rb"), name)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip reports damage as BadGzipFile (an OSError), EOFError or zlib.error.
        raise ValueError(f"{name}: damaged gzip stream ({exc}).") from exc


def _read_exactly(stream, size):
    """Up to `size` bytes; fewer only at end of file. Grows with the data actually read."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = stream.read(min(_CHUNK, size - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def _parse(stream, name):
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise ValueError(f"{name}: truncated IDX header: {len(magic)} bytes, need at least 4.")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{name}: not an IDX file: magic number 0x{bytes(magic).hex()} "
                         f"does not start with two zero bytes.")
    code, ndim = magic[2], magic[3]
    if code not in _DTYPES:
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02x} (magic number "
                         f"0x{bytes(magic).hex()}); known codes: "
                         f"{', '.join(f'0x{c:02x}' for c in _DTYPES)}.")
    if not 1 <= ndim <= MAX_NDIM:
        raise ValueError(f"{name}: IDX header declares {ndim} dimensions; expected 1 to "
                         f"{MAX_NDIM}.")
    dims_bytes = _read_exactly(stream, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need "
                         f"{4 * ndim} bytes of sizes, found {len(dims_bytes)}.")
    shape = tuple(int.from_bytes(dims_bytes[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = _DTYPES[code]
    # Python integers: the product of absurd dimensions cannot overflow, and nothing of
    # this size is allocated; it only bounds how much we read.
    expected = dtype.itemsize * _product(shape)
    data = _read_exactly(stream, expected)
    if len(data) < expected:
        raise ValueError(f"{name}: truncated IDX data: header declares shape {shape} of "
                         f"{dtype.newbyteorder('=')} ({expected} bytes), found {len(data)}.")
    if stream.read(1):
        raise ValueError(f"{name}: size mismatch: the file holds more than the "
                         f"{expected} bytes of data that its header (shape {shape}) declares.")
    return bytes(magic + dims_bytes), dtype, shape, data


def _product(shape):
    result = 1
    for dim in shape:
        result *= dim
    return result
