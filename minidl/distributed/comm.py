"""The MPI communicator of data-parallel training: ranks, a reproducible allreduce, broadcast.

``mpi4py`` (the ``minidl[mpi]`` extra) is imported by :func:`init`, not by importing this
module, so that ``minidl`` runs without it. Under ``mpirun -np N`` every process calls
``init()`` and gets its ``rank()`` among ``size()``; a program started without ``mpirun`` is
one rank of size 1 and every collective returns its input unchanged.

Reproducibility: :func:`allreduce_` never uses MPI's own reduction (whose order depends on
the implementation, the message sizes and the topology). The buffer is cut into ``size()``
chunks and rank r sums chunk r of every rank's buffer in rank order ``((x0 + x1) + x2) + ...``
element by element, then every rank gets every summed chunk. On one machine the chunks meet
in an MPI-3 shared-memory window, summed by compiled code; across machines an ``Alltoall``
and an ``Allgather`` carry them, summed by numpy (:class:`ReproducibleAllreduce`); the two
make the same IEEE operations. Each element is therefore summed
in the same order on every rank, in every run, by either transport and for any thread count:
all ranks end with the same bits.

Faults: every collective is non-blocking and polled against a deadline (``init(timeout=)``,
default the ``MINIDL_MPI_TIMEOUT`` environment variable, else 300 seconds). A rank that waits
longer raises :class:`DistributedTimeoutError` and aborts the job (``MPI_Abort``), so no rank
hangs on a peer that died or stopped. ``init()`` also installs a ``sys.excepthook`` that, when
an exception escapes a rank's program (one raised in ``fit`` included), prints it and calls
``MPI_Abort``: OpenMPI then ends every rank of the job at once, with a non-zero exit status.
"""
import atexit
import os
import sys
import time

import numpy as np

_DEFAULT_TIMEOUT = 300.0
_LINE = 64   # bytes in a cache line: the shared window's parts start on one


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


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
    _share_processors(_state["local"])
    if comm.Get_size() > 1 and _state["hook"] is None:
        previous = sys.excepthook

        def abort_on_exception(kind, value, traceback):
            previous(kind, value, traceback)
            sys.stderr.flush()
            sys.stdout.flush()
            MPI.COMM_WORLD.Abort(1)
        _state["hook"] = abort_on_exception
        sys.excepthook = abort_on_exception


def _share_processors(local):
    """Divide the processors among the ranks of this host that run on the same ones, unless
    the user chose a thread count (``OMP_NUM_THREADS`` or ``minidl.set_num_threads``).

    Each process defaults to one thread per processor it may run on. Ranks that mpirun
    binds to their own cores keep their cores; unbound ranks (more ranks than cores, or
    ``--bind-to none``) would each start a thread per processor of the host, N ranks x P
    threads on P cores, and every parallel region would wait for threads the others keep
    off the CPU. They get an equal share instead, as torchrun does with OMP_NUM_THREADS. The
    thread count never changes results (same bits for any count).
    """
    from minidl._core import _backend
    if local.Get_size() == 1:
        return
    # Every rank of the host takes part, whatever it then decides: a collective that only
    # some ranks called would hang the others.
    mine = (frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None)
    everyone = local.allgather(mine)
    if mine is None or _backend.user_chose_threads():
        return
    _backend.share_default_threads(len(mine) // sum(1 for cpus in everyone if cpus == mine))


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


def _timed_out(what):
    """Report a collective that passed the timeout and abort the job."""
    message = (f"minidl.distributed: {what} on rank {rank()} of {size()} did not complete "
               f"within {_state['timeout']:g} s (timeout): another rank stopped, died or "
               f"fell behind. Aborting the job.")
    sys.stderr.write(message + "\n")
    abort(1)
    raise DistributedTimeoutError(message)   # reached when Abort returns (never)


def _wait(request, what):
    """Poll a non-blocking request until it completes or the timeout passes (then abort)."""
    deadline = time.monotonic() + _state["timeout"]
    spins = 0
    while not request.Test():
        spins += 1
        if spins > 1000:
            if time.monotonic() > deadline:
                _timed_out(what)
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

    Every element is summed as ``((x0 + x1) + x2) + ...`` in rank order, whatever the
    transport, so the bits depend on the values and the number of ranks only. Two transports,
    which give the same bits:

    - **One machine** (every rank on one host): an MPI-3 shared-memory window and one
      compiled call with the GIL released (csrc/shm_allreduce.c). Each rank copies its
      buffer into its own slot; after all have arrived (a counter per rank in the window),
      rank r sums the r-th chunk of every slot into its own result chunk; after a second
      arrival, every rank copies the result chunks out. No message is sent, and each rank
      writes memory its own allocation placed (near its core on a multi-socket host). The
      arrivals order consecutive calls too: a slot is written again only after every rank
      has passed the arrival that ends its reading, and a result chunk only after every
      rank has passed the arrival that starts the next sum, so no third arrival and no
      double buffer are needed.
    - **Several machines**: an ``Alltoall`` gives rank r every rank's chunk r, which it sums
      in rank order, and an ``Allgather`` hands the summed chunks to everyone.

    Keeps its window (or scratch buffers) between calls, so that one instance reused for a
    buffer of one size allocates nothing per call.

    Args:
        shared_memory: None (default) uses the window when every rank is on one machine,
            unless the environment variable ``MINIDL_MPI_SHARED_MEMORY`` is ``0`` (for a
            host whose ``/dev/shm`` is too small); False always uses the messages
            (``Alltoall``/``Allgather``); True requires the window and raises if the ranks
            are on several machines.

    Example:
        >>> reducer = ReproducibleAllreduce()
        >>> reducer(grads, average=True)   # every rank now holds the same bits
    """

    def __init__(self, shared_memory=None):
        if not (shared_memory is None or isinstance(shared_memory, bool)):
            raise ValueError(f"ReproducibleAllreduce: shared_memory must be None, True or "
                             f"False; received shared_memory={shared_memory!r}.")
        self.shared_memory = shared_memory
        self._key = None
        self._window = None

    def __getstate__(self):   # a copy makes its own window (or scratch) on first use
        return {"shared_memory": self.shared_memory}

    def __setstate__(self, state):
        self.__init__(state["shared_memory"])

    def _use_window(self, comm):
        on_one_host = _state["local"].Get_size() == comm.Get_size()
        if self.shared_memory is True and not on_one_host:
            raise ValueError("ReproducibleAllreduce(shared_memory=True): the ranks are on "
                             "several machines; use shared_memory=None or False.")
        if self.shared_memory is None:
            text = os.environ.get("MINIDL_MPI_SHARED_MEMORY", "1")
            if text not in ("0", "1"):
                raise ValueError(f"MINIDL_MPI_SHARED_MEMORY must be 0 or 1; received "
                                 f"MINIDL_MPI_SHARED_MEMORY={text!r}.")
            return on_one_host and text == "1"
        return self.shared_memory

    # ---- several machines: Alltoall + ordered sum + Allgather ----

    def _scratch(self, n, dtype, ranks):
        key = (n, np.dtype(dtype), ranks)
        if self._key != key:
            chunk = -(-n // ranks)
            self._send = np.zeros(ranks * chunk, dtype)
            self._recv = np.zeros((ranks, chunk), dtype)
            self._mine = np.zeros(chunk, dtype)
            self._key = key
        return self._send, self._recv, self._mine

    def _by_messages(self, comm, buffer, average):
        MPI = _state["mpi"]
        ranks, n = comm.Get_size(), buffer.size
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

    # ---- one machine: a shared-memory window ----

    def _slots(self, comm, n, dtype):
        """The window: every rank's slot (n elements) as an array, and the compiled group
        that reduces over it (``minidl._core._allreduce``)."""
        window = self._window
        if window is None or window["dtype"] != dtype or window["capacity"] < n:
            # A window replaced here is kept until exit: a staging buffer may still point
            # into it.
            from minidl._core._allreduce import SharedMemoryGroup
            MPI, ranks, itemsize = _state["mpi"], comm.Get_size(), np.dtype(dtype).itemsize
            # A segment: the arrival counter on a cache line of its own, the slot, the
            # result chunk; each part starts on a cache line.
            slot_offset = _LINE
            result_offset = slot_offset + _round_up(n * itemsize, _LINE)
            used = result_offset + _round_up(-(-n // ranks) * itemsize, _LINE)
            size = used + _LINE   # room to start on a cache line wherever MPI puts it
            try:
                # Each rank allocates (and first touches) its own segment.
                info = MPI.Info.Create()
                info.Set("alloc_shared_noncontig", "true")
                win = MPI.Win.Allocate_shared(size, 1, info=info, comm=comm)
                info.Free()
            except MPI.Exception as error:
                raise RuntimeError(
                    f"minidl.distributed: MPI could not allocate {size} bytes of shared "
                    f"memory for the allreduce ({error}). Make /dev/shm larger, or set "
                    f"MINIDL_MPI_SHARED_MEMORY=0 to reduce by messages instead (the same "
                    f"bits).") from error
            _windows.append(win)
            segments = []
            for r in range(ranks):
                memory = np.frombuffer(win.Shared_query(r)[0], np.uint8, size)
                # The same shift in every process: memory is shared by whole pages.
                shift = -memory.__array_interface__["data"][0] % _LINE
                segments.append(memory[shift:shift + used])
            segments[comm.Get_rank()][:_LINE] = 0   # the counter, before any rank reads it
            addresses = [segment.__array_interface__["data"][0] for segment in segments]
            slots = [np.frombuffer(segment, dtype, n, slot_offset) for segment in segments]
            window = self._window = {
                "win": win, "dtype": dtype, "capacity": n, "slots": slots, "epoch": 0,
                "group": SharedMemoryGroup(addresses, comm.Get_rank(), slot_offset,
                                           result_offset, win)}
            _wait(comm.Ibarrier(), "allreduce (shared memory, setup)")
        return window

    def _by_shared_memory(self, comm, buffer, average):
        """One compiled call with the GIL released (csrc/shm_allreduce.c): copy in,
        arrive, the rank-ordered sum of this rank's chunk, arrive, copy out."""
        window = self._slots(comm, buffer.size, buffer.dtype)
        status = window["group"].reduce(buffer, average, window["epoch"], _state["timeout"])
        window["epoch"] += 2
        if status:
            _timed_out("allreduce (shared memory)")

    def staging_buffer(self, n, dtype=np.float32):
        """A 1-D array of ``n`` elements to gather the values to reduce in: on one machine
        this rank's slot of the shared-memory window, so that reducing it copies nothing in;
        otherwise a plain array. Collective on the first call (every rank calls it with the
        same ``n`` and ``dtype``); the array stays valid until the process ends (a later
        call for a larger ``n`` or another dtype gives a new one).

        Args:
            n: number of elements, >= 1.
            dtype: float32 or float64.
        Returns:
            A writeable float array of shape ``(n,)``.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"staging_buffer: dtype must be float32 or float64; received "
                            f"dtype={dtype}.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"staging_buffer: n must be an int >= 1; received n={n!r}.")
        comm = _comm()
        if comm.Get_size() == 1 or not self._use_window(comm):
            return np.zeros(int(n), dtype)
        return self._slots(comm, int(n), dtype)["slots"][comm.Get_rank()][:n]

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
        if comm.Get_size() == 1 or buffer.size == 0:
            return buffer
        if self._use_window(comm):
            self._by_shared_memory(comm, buffer, average)
        else:
            self._by_messages(comm, buffer, average)
        return buffer


# Every shared-memory window made in this process, in the order made: the same order on every
# rank, as making one is collective. They are freed at exit in that order (freeing is
# collective too: any other order, such as a set's, can deadlock ranks), before MPI finalizes
# (mpi4py's finalizer was registered at its import, in init(); atexit runs ours first).
_windows = []


def _free_windows():
    while _windows:
        win = _windows.pop(0)
        try:
            win.Free()
        except Exception:   # pragma: no cover - an aborting job
            pass


atexit.register(_free_windows)


_default_reducer = ReproducibleAllreduce()


def allreduce_(buffer, average=False):
    """In place, the rank-ordered sum (or mean) of ``buffer`` over all ranks (see
    :class:`ReproducibleAllreduce`). Returns ``buffer``."""
    return _default_reducer(buffer, average=average)


def _as_array(value, what):
    """``value`` (a minidl Tensor or Variable, an array, a number or a nested list) as a
    numpy array of numbers."""
    value = getattr(value, "value", value)   # a minidl Tensor / Variable: its array
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what}: value must hold numbers (a numpy array, a minidl tensor, "
                        f"a number); received {type(value).__name__} of dtype {array.dtype}.")
    return array


def allreduce(value, average=True, name=None):
    """Horovod's ``hvd.allreduce``: the mean (or sum) of ``value`` over every rank, as a
    new value; ``value`` is left as it is. The reduction is :func:`allreduce_`'s: in rank
    order, the same bits on every rank, in every run.

    Args:
        value: numpy array, minidl tensor or number, of the same shape on every rank.
            Integers are summed exactly (as float64, up to 2**53); their mean is a float.
        average: the mean (default, as Horovod's Keras API); False: the sum.
        name: ignored (Horovod names its operations; kept so that calls port unchanged).

    Returns:
        A numpy array of ``value``'s shape (a numpy scalar for a number): float32 or
        float64 as ``value`` is, float64 otherwise (integers: their own dtype for a sum).
    """
    array = _as_array(value, "allreduce")
    dtype = array.dtype if array.dtype.kind == "f" and array.dtype.itemsize >= 4 \
        else np.dtype(np.float64)
    flat = np.array(array, dtype=dtype).reshape(-1)
    if flat.size:
        allreduce_(flat, average=bool(average))
    out = flat.reshape(array.shape)
    if not average and array.dtype.kind in "biu":
        out = out.astype(array.dtype)
    return out[()] if out.ndim == 0 else out


def broadcast(value, root_rank=0, name=None):
    """Horovod's ``hvd.broadcast``: rank ``root_rank``'s ``value``, on every rank, as a new
    array (a numpy scalar for a number); ``value`` is left as it is.

    Args:
        value: numpy array, minidl tensor or number, of the same shape and dtype on every
            rank.
        root_rank: the rank whose value is sent.
        name: ignored (kept so that Horovod calls port unchanged).
    """
    array = np.array(_as_array(value, "broadcast"), order="C")
    broadcast_(array, root_rank)
    return array[()] if array.ndim == 0 else array


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


def allgather(array):
    """Every rank's ``array``, stacked in rank order: shape ``(size(),) + array.shape``.

    Args:
        array: numpy array of the same shape and dtype on every rank.
    Returns:
        A new array, the same bits on every rank.
    """
    comm = _comm()
    if not isinstance(array, np.ndarray):
        raise TypeError(f"allgather: array must be a numpy array; received "
                        f"{type(array).__name__}.")
    array = np.ascontiguousarray(array)
    out = np.empty((comm.Get_size(),) + array.shape, array.dtype)
    if comm.Get_size() == 1:
        out[0] = array
        return out
    _wait(comm.Iallgather(array, out), "allgather")
    return out
