# cython: language_level=3
"""Data movement for the training loop: gathering shuffled batches and checking inputs.

Layering: the training loop (minidl/models) validates shapes and dtypes once per call of
fit/evaluate/predict; these kernels then run without the GIL on trusted arguments. A user's
x may be uint8, int or float64 (as `x / 255.0` gives): batches are converted to the model's
float type while they are gathered, so the data set is never copied whole.
"""
import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange

from minidl._core._backend cimport num_threads

cnp.import_array()

ctypedef fused source_t:
    cnp.uint8_t
    cnp.int8_t
    cnp.int16_t
    cnp.int32_t
    cnp.int64_t
    float
    double

ctypedef fused dest_t:
    float
    double

ctypedef fused index_t:
    cnp.int32_t
    cnp.int64_t

# Below this many elements a parallel region costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 1 << 16


def gather_rows(const source_t[:, ::1] src, const index_t[::1] rows, dest_t[:, ::1] out):
    """out[i, :] = src[rows[i], :] converted to out's dtype.

    Args:
        src: (n, d) C-contiguous source rows (a data set flattened to 2-D).
        rows: (b,) indices into src, each in [0, n); checked, IndexError otherwise.
        out: (b, d) C-contiguous destination.
    """
    cdef Py_ssize_t b = rows.shape[0], d = src.shape[1], n = src.shape[0], i, j, r
    if out.shape[0] != b or out.shape[1] != d:
        raise ValueError(f"out must have shape {(b, d)}; received {(out.shape[0], out.shape[1])}.")
    for i in range(b):
        if rows[i] < 0 or rows[i] >= n:
            raise IndexError(f"row index {rows[i]} is out of range for {n} rows.")
    cdef int nt = num_threads() if b * d >= PARALLEL_MIN_ELEMENTS else 1
    with nogil:
        if nt == 1:  # a batch: opening a parallel region would cost more than the copy
            for i in range(b):
                r = rows[i]
                for j in range(d):
                    out[i, j] = <dest_t>src[r, j]
        else:
            for i in prange(b, num_threads=nt, schedule="static"):
                r = rows[i]
                for j in range(d):
                    out[i, j] = <dest_t>src[r, j]
    return np.asarray(out)


def copy_rows(const source_t[:, ::1] src, Py_ssize_t start, dest_t[:, ::1] out):
    """out[i, :] = src[start + i, :] converted to out's dtype (a contiguous batch)."""
    cdef Py_ssize_t b = out.shape[0], d = src.shape[1], i, j
    if start < 0 or start + b > src.shape[0] or out.shape[1] != d:
        raise ValueError(f"rows [{start}, {start + b}) x {out.shape[1]} columns do not fit a "
                         f"source of shape {(src.shape[0], d)}.")
    cdef int nt = num_threads() if b * d >= PARALLEL_MIN_ELEMENTS else 1
    with nogil:
        if nt == 1:
            for i in range(b):
                for j in range(d):
                    out[i, j] = <dest_t>src[start + i, j]
        else:
            for i in prange(b, num_threads=nt, schedule="static"):
                for j in range(d):
                    out[i, j] = <dest_t>src[start + i, j]
    return np.asarray(out)


cdef enum:
    FINITE_CHUNK = 1 << 16


def count_nonfinite(x):
    """Number of NaN or infinite values in a float array (0 for integer arrays).

    Returns (count, flat index of the first one or -1). No temporary the size of x: the scan
    runs over fixed chunks (in parallel for large arrays) with a branch-free, vectorisable
    test, since fit() runs it over the whole data set on every call.
    """
    cdef cnp.ndarray values = x if isinstance(x, np.ndarray) else np.asarray(x)
    cdef int dtype = cnp.PyArray_TYPE(values)
    if dtype != cnp.NPY_FLOAT32 and dtype != cnp.NPY_FLOAT64:
        if values.dtype.kind != "f":
            return 0, -1
        values = values.astype(np.float64)  # float16, longdouble: rare, converted
        dtype = cnp.NPY_FLOAT64
    if not cnp.PyArray_IS_C_CONTIGUOUS(values):
        values = np.ascontiguousarray(values)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(values), chunks = (n + FINITE_CHUNK - 1) // FINITE_CHUNK
    cdef Py_ssize_t ch, count = 0, first = -1, i
    cdef bint is_f32 = dtype == cnp.NPY_FLOAT32
    cdef char *data = <char *>cnp.PyArray_DATA(values)
    cdef int nt = num_threads() if n >= PARALLEL_MIN_ELEMENTS * 8 else 1
    with nogil:
        if nt == 1:  # no parallel region at all: opening one costs more than a small scan
            count = _count_chunk(data, is_f32, 0, n)
        else:
            for ch in prange(chunks, num_threads=nt, schedule="static"):
                count += _count_chunk(data, is_f32, ch * FINITE_CHUNK,
                                      min(<Py_ssize_t>FINITE_CHUNK, n - ch * FINITE_CHUNK))
    if count:
        for i in range(n):
            if _count_chunk(data, is_f32, i, 1):
                first = i
                break
    return count, first


cdef Py_ssize_t _count_chunk(char *data, bint is_f32, Py_ssize_t start,
                             Py_ssize_t length) noexcept nogil:
    # d = v - v is 0 for a finite v and NaN for NaN or +-inf; NaN is the only value unequal
    # to itself. No branch per element, so the loop vectorises.
    cdef Py_ssize_t i, c = 0
    cdef const float *f
    cdef const double *g
    cdef float df
    cdef double dd
    if is_f32:
        f = (<const float *>data) + start
        for i in range(length):
            df = f[i] - f[i]
            c += df != df
    else:
        g = (<const double *>data) + start
        for i in range(length):
            dd = g[i] - g[i]
            c += dd != dd
    return c
