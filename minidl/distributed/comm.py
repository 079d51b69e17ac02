"""The MPI communicator of data-parallel training: ranks, a reproducible allreduce, broadcast.

``mpi4py`` (the ``minidl[mpi]`` extra) is imported by :func:`init`, not by importing this
module, so that ``minidl`` runs without it. Under ``mpirun -np N`` every process calls
``init()`` and gets its ``rank()`` among ``size()``; a program started without ``mpirun`` is
one rank of size 1 and every collective returns its input unchanged.

Reproducibility: :func:`allreduce_` never uses MPI's own reduction (whose order depends on
the implementation, the message sizes and the topology). The buffer is cut into ``size()``
equal chunks; an ``Alltoall`` gives rank r every rank's chunk r, which it sums in rank order
``((x0 + x1) + x2) + ...`` with numpy's element-wise add, and an ``Allgather`` hands the
summed chunks to everyone. Each element is therefore summed in the same order on every rank,
in every run and for any thread count: all ranks end with the same bits.

Faults: every collective is non-blocking and polled against a deadline (``init(timeout=)``,
default the ``MINIDL_MPI_TIMEOUT`` environment variable, else 300 seconds). A rank that waits
longer raises :class:`DistributedTimeoutError` and aborts the job (``MPI_Abort``), so no rank
hangs on a peer that died or stopped. ``init()`` also installs a ``sys.excepthook`` that, when
an exception escapes a rank's program (one raised in ``fit`` included), prints it and calls
``MPI_Abort``: OpenMPI then ends every rank of the job at once, with a non-zero exit status.
"""
import os
import sys
import time

import numpy as np

_DEFAULT_TIMEOUT = 300.0
_state = {"comm": None, "local": None, "timeout": None, "mpi": None, "hook": None}


class DistributedTimeoutError(RuntimeError):
    """A collective operation did not complete within the configured timeout."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "minidl.distributed needs mpi4py and an MPI library: install the extra with "
            "`pip install minidl[mpi]` (and OpenMPI, e.g. `apt-get install openmpi-bin "
            "libopenmpi-dev`).") from error
    return MPI


def _check_timeout(timeout):
    if timeout is None:
        text = os.environ.get("MINIDL_MPI_TIMEOUT")
        if text is None:
            return _DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"MINIDL_MPI_TIMEOUT must be a number of seconds > 0; received "
                             f"MINIDL_MPI_TIMEOUT={text!r}.") from None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not np.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"init: timeout must be a number of seconds > 0; received "
                         f"timeout={timeout!r}.")
    return float(timeout)


def init(timeout=None):
    """Start MPI (once) and fix this process's rank among the job's processes.

    Args:
        timeout: seconds a collective may wait for the other ranks before the job is
            aborted with :class:`DistributedTimeoutError`; default ``MINIDL_MPI_TIMEOUT``
            from the environment, else 300. A later call may change it.

    Raises:
        ImportError: mpi4py is missing (the ``minidl[mpi]`` extra).
    """
    timeout = _check_timeout(timeout)
    _state["timeout"] = timeout
    if _state["comm"] is not None:
        return
    MPI = _import_mpi()
    comm = MPI.COMM_WORLD.Dup()
    _state["mpi"] = MPI
    _state["comm"] = comm
    _state["local"] = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    if comm.Get_size() > 1 and _state["hook"] is None:
        previous = sys.excepthook

        def abort_on_exception(kind, value, traceback):
            previous(kind, value, traceback)
            sys.stderr.flush()
            sys.stdout.flush()
            MPI.COMM_WORLD.Abort(1)
        _state["hook"] = abort_on_exception
        sys.excepthook = abort_on_exception


def is_initialized():
    """Whether :func:`init` has run in this process."""
    return _state["comm"] is not None


def _comm():
    if _state["comm"] is None:
        raise ValueError("minidl.distributed has not been initialized: call "
                         "minidl.distributed.init() first.")
    return _state["comm"]


def rank():
    """This process's index among all ranks, 0 to ``size() - 1``."""
    return _comm().Get_rank()


def size():
    """The number of ranks (processes) of the job."""
    return _comm().Get_size()


def local_rank():
    """This process's index among the ranks on its machine."""
    _comm()
    return _state["local"].Get_rank()


def local_size():
    """The number of ranks on this process's machine."""
    _comm()
    return _state["local"].Get_size()


def is_writer():
    """Whether this process writes files and progress: rank 0, or any process when
    :func:`init` has not run (single-process training)."""
    comm = _state["comm"]
    return comm is None or comm.Get_rank() == 0


def abort(code=1):
    """End every rank of the job now (``MPI_Abort``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    _state["mpi"].COMM_WORLD.Abort(code)


def _wait(request, what):
    """Poll a non-blocking request until it completes or the timeout passes (then abort)."""
    deadline = time.monotonic() + _state["timeout"]
    spins = 0
    while not request.Test():
        spins += 1
        if spins > 1000:
            if time.monotonic() > deadline:
                message = (f"minidl.distributed: {what} on rank {rank()} of {size()} did not "
                           f"complete within {_state['timeout']:g} s (timeout): another rank "
                           f"stopped, died or fell behind. Aborting the job.")
                sys.stderr.write(message + "\n")
                abort(1)
                raise DistributedTimeoutError(message)   # reached when Abort returns (never)
            time.sleep(1e-4)


def _flat_float(buffer, name):
    if not isinstance(buffer, np.ndarray) or buffer.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: buffer must be a float32/float64 numpy array; received "
                        f"{type(buffer).__name__} {getattr(buffer, 'dtype', '')}.")
    if buffer.ndim != 1 or not buffer.flags.c_contiguous or not buffer.flags.writeable:
        raise ValueError(f"{name}: buffer must be a 1-D, C-contiguous, writeable array; "
                         f"received shape {buffer.shape}.")


class ReproducibleAllreduce:
    """A rank-ordered sum (or mean) of a flat float buffer over all ranks, in place.

    Keeps its scratch buffers between calls, so that one instance reused for a buffer of
    one size allocates nothing per call.

    Example:
        >>> reducer = ReproducibleAllreduce()
        >>> reducer(grads, average=True)   # every rank now holds the same bits
    """

    def __init__(self):
        self._key = None

    def _scratch(self, n, dtype, ranks):
        key = (n, np.dtype(dtype), ranks)
        if self._key != key:
            chunk = -(-n // ranks)
            self._send = np.zeros(ranks * chunk, dtype)
            self._recv = np.zeros((ranks, chunk), dtype)
            self._mine = np.zeros(chunk, dtype)
            self._key = key
        return self._send, self._recv, self._mine

    def __call__(self, buffer, average=False):
        """Replace ``buffer`` with the sum (or mean) of every rank's ``buffer``.

        Args:
            buffer: 1-D C-contiguous float32/float64 array, the same size on every rank.
            average: divide the sum by the number of ranks.
        Returns:
            ``buffer``.
        """
        _flat_float(buffer, "allreduce_")
        comm = _comm()
        ranks = comm.Get_size()
        if ranks == 1:
            return buffer
        MPI = _state["mpi"]
        n = buffer.size
        send, recv, mine = self._scratch(n, buffer.dtype, ranks)
        if n % ranks == 0:
            send = buffer     # equal chunks already: no padded copy, in and out
        else:
            send[:n] = buffer
        kind = MPI.FLOAT if buffer.dtype == np.float32 else MPI.DOUBLE
        chunk = recv.shape[1]
        _wait(comm.Ialltoall([send, chunk, kind], [recv, chunk, kind]), "allreduce (alltoall)")
        # The sum in rank order: the same order on every rank, every run.
        np.add(recv[0], recv[1], out=mine)
        for r in range(2, ranks):
            np.add(mine, recv[r], out=mine)
        if average:
            np.divide(mine, buffer.dtype.type(ranks), out=mine)
        _wait(comm.Iallgather([mine, chunk, kind], [send, chunk, kind]),
              "allreduce (allgather)")
        if send is not buffer:
            buffer[...] = send[:n]
        return buffer


_default_reducer = ReproducibleAllreduce()


def allreduce_(buffer, average=False):
    """In place, the rank-ordered sum (or mean) of ``buffer`` over all ranks (see
    :class:`ReproducibleAllreduce`). Returns ``buffer``."""
    return _default_reducer(buffer, average=average)


def broadcast_(array, root_rank=0):
    """In place, ``array`` from rank ``root_rank`` to every rank.

    Args:
        array: C-contiguous numpy array of the same shape and dtype on every rank.
        root_rank: the rank whose values are sent.
    Returns:
        ``array``.
    """
    comm = _comm()
    ranks = comm.Get_size()
    if isinstance(root_rank, bool) or not isinstance(root_rank, (int, np.integer)) \
            or not 0 <= root_rank < ranks:
        raise ValueError(f"broadcast_: root_rank must be an int in [0, {ranks}); received "
                         f"root_rank={root_rank!r}.")
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous \
            or not array.flags.writeable:
        raise TypeError(f"broadcast_: array must be a C-contiguous, writeable numpy array; "
                        f"received {type(array).__name__}.")
    if ranks == 1:
        return array
    _wait(comm.Ibcast(array, root=int(root_rank)), "broadcast")
    return array


def barrier():
    """Wait for every rank (with the timeout)."""
    comm = _comm()
    if comm.Get_size() > 1:
        _wait(comm.Ibarrier(), "barrier")
