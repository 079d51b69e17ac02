"""Where data set files live, how they are verified, and how they are downloaded.

Every file a loader reads is checked against a published SHA-256 first, whether it came from
a download, the cache, or a system package; no array from a file that fails reaches the user.
Downloads go to a temporary file next to their destination and are renamed into place only
once complete and verified, so the cache never holds a half-written or unverified file, even
when two processes download at once.
"""
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

# Seconds a connection attempt or a single read may stall before the download is abandoned.
DOWNLOAD_TIMEOUT = 30

_CHUNK = 1 << 20


class DatasetUnavailableError(OSError):
    """A data set is neither on disk nor downloadable (offline, server down, HTTP error)."""


class DataFile(NamedTuple):
    """One published file and the hashes that identify it.

    Attributes:
        name: file name, as published and as stored in the cache.
        sha256: SHA-256 of the file as published (what a download must match).
        payload_sha256: optional SHA-256 of the decompressed content of a `.gz` file. It
            accepts copies that were recompressed on the way (Debian's package regzips the
            Fashion-MNIST files, which changes the archive bytes but not the data).
    """
    name: str
    sha256: str
    payload_sha256: Optional[str] = None


def cache_dir():
    """The directory where minidl keeps downloaded data sets.

    `$MINIDL_HOME/datasets` when the environment variable `MINIDL_HOME` is set (and not
    empty), else `~/.minidl/datasets`. The directory is not created here.

    Returns:
        A `pathlib.Path`.

    Example:

    >>> os.environ["MINIDL_HOME"] = "/data/minidl"
    >>> cache_dir()
    PosixPath('/data/minidl/datasets')
    """
    home = os.environ.get("MINIDL_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".minidl"
    return base / "datasets"


def read_verified(path, spec, unpack=None):
    """The content of `path`, after checking it against `spec`'s hashes.

    Args:
        path: the file to read.
        spec: the `DataFile` it should be.
        unpack: for specs with a `payload_sha256`: a function from the file's bytes to its
            decompressed content, raising ValueError on malformed input.

    Returns:
        The file's bytes when they match `spec.sha256`; else the decompressed content when
        that matches `spec.payload_sha256`.

    Raises:
        ValueError: no hash matches. The message names the file and both hashes, and says
            to delete or replace it.
    """
    data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual == spec.sha256:
        return data
    if spec.payload_sha256 is not None:
        try:
            payload = unpack(data)
        except ValueError:
            payload = None  # malformed: reported below as the hash mismatch it also is
        if payload is not None and hashlib.sha256(payload).hexdigest() == spec.payload_sha256:
            return payload
    raise ValueError(f"{path}: SHA-256 is {actual}, but the published {spec.name} has "
                     f"{spec.sha256}. The file is damaged or is not the expected file; delete "
                     f"or replace it.")


def download(url, destination, sha256, timeout=DOWNLOAD_TIMEOUT):
    """Downloads `url` to `destination`, verifying its SHA-256 before it appears there.

    The data go to a temporary file in the destination's directory, which is renamed onto
    `destination` (atomically) only when the transfer completed and the hash matched. On any
    failure the temporary file is removed, and `destination` is left as it was.

    Args:
        url: where to download from.
        destination: final path of the file; parent directories are created.
        sha256: the expected hex SHA-256.
        timeout: seconds a connection attempt or a single read may stall.

    Returns:
        `destination`, as a `pathlib.Path`.

    Raises:
        DatasetUnavailableError: the server could not be reached, answered with an HTTP
            error, stalled past `timeout`, or closed the connection early.
        ValueError: the downloaded data do not have the expected SHA-256 (nothing is kept).

    Example:

    >>> download("https://example.org/mnist.npz", cache_dir() / "mnist" / "mnist.npz",
    ...          sha256="731c5ac6...")
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                   suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _fetch(url, out, timeout)
        if actual != sha256:
            raise ValueError(f"Downloaded {url} has SHA-256 {actual}, expected {sha256}; the "
                             f"download was discarded. The server sent a damaged or different "
                             f"file: try again later, or fetch it yourself and place it at "
                             f"{destination}.")
        os.replace(partial, destination)
    except BaseException:
        # BaseException: a KeyboardInterrupt mid-transfer must not leave a .part file behind.
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise
    return destination


def _fetch(url, out, timeout):
    """Streams `url` into the open file `out`; returns the hex SHA-256 of what was read."""
    # Imported here, not at the top: the HTTP stack costs ~50 ms at `import minidl`, and
    # almost every run loads data that is already on disk.
    import http.client
    import urllib.error
    import urllib.request
    print(f"Downloading {url}", file=sys.stderr)
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
        # http.client returns a short body without complaint when the server closes early;
        # say so, rather than report the truncated file as a hash mismatch.
        if announced is not None and announced.isdigit() and received != int(announced):
            raise ConnectionError(f"connection closed after {received} of {announced} bytes")
    # Only network failures become DatasetUnavailableError; a local write error (disk full,
    # permissions) propagates as itself, because "offline" would be the wrong diagnosis.
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
            TimeoutError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # it holds the response's socket open
            reason = exc  # its str() carries the status code
        else:
            reason = getattr(exc, "reason", exc)  # URLError wraps the socket error
        raise DatasetUnavailableError(f"Could not download {url}: {reason}") from exc
    return digest.hexdigest()
