# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled shared-memory allreduce of ``minidl.distributed`` (csrc/shm_allreduce.c).

``minidl/distributed/comm.py`` makes the MPI-3 shared-memory window and hands this module
the address of every rank's segment; :class:`SharedMemoryGroup` keeps them and runs one
allreduce per call with the GIL released: copy in, arrive, the rank-ordered sum of this
rank's chunk, arrive, copy out. Nothing here calls MPI.
"""
cimport numpy as cnp
from libc.stdlib cimport free, malloc

from minidl._core._backend cimport mdl_shm_group, shm_allreduce_f32, shm_allreduce_f64

cnp.import_array()


cdef class SharedMemoryGroup:
    """The segments of one window, as the C allreduce reads them.

    Args:
        addresses: every rank's segment address (ints), in rank order.
        rank: this process's rank.
        slot_offset, result_offset: bytes from a segment's start to its slot and to its
            result chunk (the counter is at 0).
        owner: the window, kept alive as long as this object (its memory is the segments').
    """
    cdef mdl_shm_group group
    cdef char **segments
    cdef object owner

    def __cinit__(self, addresses, int rank, Py_ssize_t slot_offset,
                  Py_ssize_t result_offset, owner=None):
        cdef Py_ssize_t r, ranks = len(addresses)
        if ranks < 2 or not 0 <= rank < ranks:
            raise ValueError(f"SharedMemoryGroup: needs >= 2 segments and a rank among them; "
                             f"received {ranks} segments, rank={rank}.")
        if slot_offset < 8 or result_offset <= slot_offset:
            raise ValueError(f"SharedMemoryGroup: offsets must satisfy 8 <= slot_offset < "
                             f"result_offset; received {slot_offset}, {result_offset}.")
        self.segments = <char **>malloc(ranks * sizeof(char *))
        if self.segments == NULL:
            raise MemoryError()
        for r in range(ranks):
            self.segments[r] = <char *><size_t>addresses[r]
        self.group.ranks = <int>ranks
        self.group.rank = rank
        self.group.segments = self.segments
        self.group.slot_offset = slot_offset
        self.group.result_offset = result_offset
        self.owner = owner

    def __dealloc__(self):
        free(self.segments)

    def reduce(self, cnp.ndarray buffer, bint average, unsigned long long epoch,
               double timeout_seconds):
        """``buffer`` (1-D, C-contiguous, float32/float64, the same size on every rank, at
        most the window's capacity: comm.py checks) gets the rank-ordered sum or mean.
        Returns 0, or 1 / 2 when a wait timed out (the caller aborts the job)."""
        cdef Py_ssize_t n = buffer.shape[0]
        cdef int status
        cdef int kind = cnp.PyArray_TYPE(buffer)
        cdef void *data = cnp.PyArray_DATA(buffer)
        if kind == cnp.NPY_FLOAT32:
            with nogil:
                status = shm_allreduce_f32(&self.group, <float *>data, <float *>data, n,
                                           average, epoch, timeout_seconds)
        elif kind == cnp.NPY_FLOAT64:
            with nogil:
                status = shm_allreduce_f64(&self.group, <double *>data, <double *>data, n,
                                           average, epoch, timeout_seconds)
        else:
            raise TypeError(f"SharedMemoryGroup.reduce: buffer must be float32 or float64; "
                            f"received {buffer.dtype}.")
        return status
