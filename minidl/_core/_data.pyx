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
from libc.math cimport isfinite

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
        for i in prange(b, num_threads=nt, schedule="static"):
            for j in range(d):
                out[i, j] = <dest_t>src[start + i, j]
    return np.asarray(out)


def count_nonfinite(x):
    """Number of NaN or infinite values in a float array (0 for integer arrays).

    Returns (count, flat index of the first one or -1). No temporary the size of x.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        return 0, -1
    flat = arr.reshape(-1) if arr.flags.c_contiguous else np.ravel(arr)
    if flat.dtype == np.float32:
        return _count_nonfinite_f32(flat)
    return _count_nonfinite_f64(flat.astype(np.float64, copy=False))


cdef tuple _count_nonfinite_f32(const float[::1] x):
    cdef Py_ssize_t i, n = x.shape[0], count = 0, first = -1
    with nogil:
        for i in range(n):
            if not isfinite(x[i]):
                if first < 0:
                    first = i
                count += 1
    return count, first


cdef tuple _count_nonfinite_f64(const double[::1] x):
    cdef Py_ssize_t i, n = x.shape[0], count = 0, first = -1
    with nogil:
        for i in range(n):
            if not isfinite(x[i]):
                if first < 0:
                    first = i
                count += 1
    return count, first
