# cython: language_level=3
"""Data movement for the training loop: gathering shuffled batches and checking inputs.

Layering: the training loop (minidl/models) validates shapes and dtypes once per call of
fit/evaluate/predict; these kernels then run without the GIL on trusted arguments. A user's
x may be uint8, int or float64 (as `x / 255.0` gives): batches are converted to the type of
the model's input while they are gathered, so the data set is never copied whole. That type is
a float type, or an integer type for an input of token ids (``Input(dtype="int64")``): a float
source is then read as whole numbers, which the caller has checked beforehand with
count_nonintegral (C leaves the conversion of a fraction-free value undefined only outside the
integer type's range, and of NaN).

That holds for a misaligned data set too (a view such as np.frombuffer(buf[1:], np.float32)
whose address is not a multiple of its element size): the source is read element by element
through memcpy, which C defines at any address and which compiles to the same plain
(unaligned) loads. Copying it instead would cost a pass over the whole data set per call.
"""
import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport trunc
from libc.string cimport memcpy

from minidl._core._arrays cimport aligned, aligned_output
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
    cnp.uint8_t
    cnp.int8_t
    cnp.int16_t
    cnp.int32_t
    cnp.int64_t

ctypedef fused float_t:
    float
    double

ctypedef fused index_t:
    cnp.int32_t
    cnp.int64_t

# Below this many elements a parallel region costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 1 << 16


def gather_rows(src, rows, out):
    """out[i, :] = src[rows[i], :] converted to out's dtype.

    Args:
        src: (n, d) C-contiguous source rows (a data set flattened to 2-D): uint8, int8,
            int16, int32, int64, float32 or float64, aligned or not.
        rows: (b,) C-contiguous int32 or int64 indices into src, each in [0, n); checked,
            IndexError otherwise.
        out: (b, d) C-contiguous, aligned destination of one of the source types. A float
            source for an integer out must hold whole numbers in out's range (see
            :func:`count_nonintegral`); it is not checked here.
    """
    rows = aligned(rows)
    _check(src, out, "gather_rows")
    if not cnp.PyArray_Check(rows):
        raise TypeError(f"gather_rows: rows must be a numpy.ndarray of int32 or int64; "
                        f"received {type(rows).__name__}.")
    cdef cnp.ndarray r = rows
    cdef int kind = cnp.PyArray_TYPE(r)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(r)
    if not (cnp.PyTypeNum_ISINTEGER(kind) and cnp.PyTypeNum_ISSIGNED(kind) and size in (4, 8)
            and cnp.PyArray_ISNOTSWAPPED(r)):
        raise TypeError(f"gather_rows: rows must be int32 or int64; received {rows.dtype}.")
    if cnp.PyArray_NDIM(r) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(r):
        raise ValueError(f"gather_rows: rows must be 1-D and C-contiguous; received shape "
                         f"{rows.shape}, strides {rows.strides}.")
    cdef Py_ssize_t b = cnp.PyArray_DIMS(r)[0]
    if cnp.PyArray_DIMS(<cnp.ndarray>out)[0] != b:
        raise ValueError(f"out must have shape {(b, (<object>src).shape[1])}; received "
                         f"{(<object>out).shape}.")
    if size == 4:
        _gather(src, <const cnp.int32_t *>cnp.PyArray_DATA(r), b, out)
    else:
        _gather(src, <const cnp.int64_t *>cnp.PyArray_DATA(r), b, out)
    return out


cdef int _gather(object src, const index_t *rows, Py_ssize_t b, object out) except -1:
    """gather_rows once the arguments are checked: the indices, then the copy."""
    cdef Py_ssize_t n = cnp.PyArray_DIMS(<cnp.ndarray>src)[0], i
    for i in range(b):
        if rows[i] < 0 or rows[i] >= n:
            raise IndexError(f"row index {rows[i]} is out of range for {n} rows.")
    if b:
        _copy(src, rows, 0, out)
    return 0


def copy_rows(src, Py_ssize_t start, out):
    """out[i, :] = src[start + i, :] converted to out's dtype (a contiguous batch); the
    arrays as in :func:`gather_rows`."""
    _check(src, out, "copy_rows")
    cdef Py_ssize_t b = cnp.PyArray_DIMS(<cnp.ndarray>out)[0]
    cdef Py_ssize_t n = cnp.PyArray_DIMS(<cnp.ndarray>src)[0]
    if start < 0 or start + b > n:
        raise ValueError(f"rows [{start}, {start + b}) do not fit a source of {n} rows.")
    if b:
        _copy(src, <const cnp.int64_t *>NULL, start, out)
    return out


cdef int _source_type(object a) noexcept:
    """The numpy type number a source (or destination) array is read as, or -1 for a type
    not handled."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(<cnp.ndarray>a)
    if t == cnp.NPY_UBYTE or t == cnp.NPY_BYTE or t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE:
        return t
    if cnp.PyTypeNum_ISINTEGER(t) and cnp.PyTypeNum_ISSIGNED(t):
        # int64 is NPY_LONG or NPY_LONGLONG depending on the platform: go by size.
        return cnp.NPY_INT16 if size == 2 else cnp.NPY_INT32 if size == 4 else (
            cnp.NPY_INT64 if size == 8 else -1)
    return -1


cdef int _check(object src, object out, str caller) except -1:
    for a, name in ((src, "src"), (out, "out")):
        if not cnp.PyArray_Check(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
            raise ValueError(f"{caller}: {name} must be a 2-D numpy.ndarray; received "
                             f"{getattr(a, 'shape', type(a).__name__)}.")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)):
            raise ValueError(f"{caller}: {name} must be C-contiguous and in native byte "
                             f"order; received strides {(<object>a).strides}, dtype "
                             f"{(<object>a).dtype!r}.")
    for a, name in ((src, "src"), (out, "out")):
        if _source_type(a) < 0:
            raise TypeError(f"{caller}: {name} must be uint8, int8, int16, int32, int64, "
                            f"float32 or float64; received {(<object>a).dtype}.")
    if cnp.PyArray_DIMS(<cnp.ndarray>out)[1] != cnp.PyArray_DIMS(<cnp.ndarray>src)[1]:
        raise ValueError(f"{caller}: out must have {(<object>src).shape[1]} columns like src; "
                         f"received {(<object>out).shape}.")
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        raise ValueError(f"{caller}: out is read-only; pass a writeable array.")
    aligned_output(out, caller, "out")
    return 0


cdef void _copy(object src, const index_t *rows, Py_ssize_t start, object out) noexcept:
    """out's rows from src: rows[i] (or start + i when rows is NULL), converted."""
    cdef int t = _source_type(out)
    if t == cnp.NPY_FLOAT:
        _copy_to(src, rows, start, out, <float>0)
    elif t == cnp.NPY_DOUBLE:
        _copy_to(src, rows, start, out, <double>0)
    elif t == cnp.NPY_UBYTE:
        _copy_to(src, rows, start, out, <cnp.uint8_t>0)
    elif t == cnp.NPY_BYTE:
        _copy_to(src, rows, start, out, <cnp.int8_t>0)
    elif t == cnp.NPY_INT16:
        _copy_to(src, rows, start, out, <cnp.int16_t>0)
    elif t == cnp.NPY_INT32:
        _copy_to(src, rows, start, out, <cnp.int32_t>0)
    else:
        _copy_to(src, rows, start, out, <cnp.int64_t>0)


cdef void _copy_to(object src, const index_t *rows, Py_ssize_t start, object out,
                   dest_t kind) noexcept:
    cdef int t = _source_type(src)
    if t == cnp.NPY_UBYTE:
        _copy_rows(src, rows, start, out, kind, <cnp.uint8_t>0)
    elif t == cnp.NPY_BYTE:
        _copy_rows(src, rows, start, out, kind, <cnp.int8_t>0)
    elif t == cnp.NPY_INT16:
        _copy_rows(src, rows, start, out, kind, <cnp.int16_t>0)
    elif t == cnp.NPY_INT32:
        _copy_rows(src, rows, start, out, kind, <cnp.int32_t>0)
    elif t == cnp.NPY_INT64:
        _copy_rows(src, rows, start, out, kind, <cnp.int64_t>0)
    elif t == cnp.NPY_FLOAT:
        _copy_rows(src, rows, start, out, kind, <float>0)
    else:
        _copy_rows(src, rows, start, out, kind, <double>0)


cdef extern from *:
    """
    /* Hint the cache to fetch the `bytes` bytes at p (a row a few rows ahead). */
    static inline void mdl_prefetch_bytes(const char *p, Py_ssize_t bytes) {
        for (Py_ssize_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 3);
    }
    """
    void mdl_prefetch_bytes(const char *p, Py_ssize_t bytes) noexcept nogil

# Gathered rows ahead of the one being copied whose lines are requested (shuffled rows of a
# large array come from memory; each row is one stream the prefetchers only find late).
cdef enum:
    PREFETCH_ROWS = 4


cdef void _copy_rows(object src, const index_t *rows, Py_ssize_t start, object out,
                     dest_t dest_kind, source_t source_kind) noexcept:
    """The copy for one source type (`source_kind` and `dest_kind` only select the types)."""
    cdef Py_ssize_t b = cnp.PyArray_DIMS(<cnp.ndarray>out)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(<cnp.ndarray>out)[1], i
    cdef Py_ssize_t row_bytes = d * sizeof(source_t)
    cdef const char *base = <const char *>cnp.PyArray_DATA(<cnp.ndarray>src)
    cdef dest_t *o = <dest_t *>cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef int nt = num_threads() if b * d >= PARALLEL_MIN_ELEMENTS else 1
    with nogil:
        if nt == 1:  # a batch: opening a parallel region would cost more than the copy
            for i in range(b):
                if rows != NULL and i + PREFETCH_ROWS < b:
                    mdl_prefetch_bytes(base + rows[i + PREFETCH_ROWS] * row_bytes, row_bytes)
                _convert_row(base + (rows[i] if rows != NULL else start + i) * row_bytes,
                             o + i * d, d, source_kind)
        else:
            for i in prange(b, num_threads=nt, schedule="static"):
                _convert_row(base + (rows[i] if rows != NULL else start + i) * row_bytes,
                             o + i * d, d, source_kind)


cdef inline void _convert_row(const char *src, dest_t *out, Py_ssize_t d,
                              source_t kind) noexcept nogil:
    """out[j] = element j of src (any alignment) converted, for j < d."""
    cdef Py_ssize_t j
    cdef source_t v
    for j in range(d):
        memcpy(&v, src + j * sizeof(source_t), sizeof(source_t))
        out[j] = <dest_t>v


cdef enum:
    FINITE_CHUNK = 1 << 16


def count_nonfinite(x):
    """Number of NaN or infinite values in a float array (0 for integer arrays).

    Returns (count, flat index of the first one or -1). No temporary the size of x, even a
    misaligned one: the scan runs over fixed chunks (in parallel for large arrays) with a
    branch-free, vectorisable test, since fit() runs it over the whole data set on every
    call.
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
    cdef const char *data = <const char *>cnp.PyArray_DATA(values)
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


cdef Py_ssize_t _count_chunk(const char *data, bint is_f32, Py_ssize_t start,
                             Py_ssize_t length) noexcept nogil:
    # d = v - v is 0 for a finite v and NaN for NaN or +-inf; NaN is the only value unequal
    # to itself. No branch per element, so the loop vectorises. Loads through memcpy: x may
    # be misaligned (see the module docstring).
    cdef Py_ssize_t i, c = 0
    cdef float vf, df
    cdef double vd, dd
    if is_f32:
        data += start * sizeof(float)
        for i in range(length):
            memcpy(&vf, data + i * sizeof(float), sizeof(float))
            df = vf - vf
            c += df != df
    else:
        data += start * sizeof(double)
        for i in range(length):
            memcpy(&vd, data + i * sizeof(double), sizeof(double))
            dd = vd - vd
            c += dd != dd
    return c


def count_nonintegral(x, double low, double high):
    """Number of values of a float array that are not whole numbers in ``[low, high]``.

    What a float x must pass before it is gathered into an integer input: every value a
    whole number the integer type holds (NaN and infinities fail). ``low`` and ``high`` must
    be whole numbers of that type exactly representable as doubles, so that the conversion
    of a value that passes is exact and defined in C (for int64: -2**63 and 2**63 - 1024).

    Returns (count, flat index of the first one or -1); the scan runs as that of
    :func:`count_nonfinite`: fixed chunks, no temporary the size of x, any alignment.
    """
    cdef cnp.ndarray values = x if isinstance(x, np.ndarray) else np.asarray(x)
    cdef int dtype = cnp.PyArray_TYPE(values)
    if dtype != cnp.NPY_FLOAT32 and dtype != cnp.NPY_FLOAT64:
        if values.dtype.kind != "f":
            raise TypeError(f"count_nonintegral: x must be a float array; received "
                            f"{values.dtype}.")
        values = values.astype(np.float64)  # float16, longdouble: rare, converted
        dtype = cnp.NPY_FLOAT64
    if not cnp.PyArray_IS_C_CONTIGUOUS(values) or not cnp.PyArray_ISNOTSWAPPED(values):
        values = np.ascontiguousarray(values, values.dtype.newbyteorder("="))
    cdef Py_ssize_t n = cnp.PyArray_SIZE(values), chunks = (n + FINITE_CHUNK - 1) // FINITE_CHUNK
    cdef Py_ssize_t ch, count = 0, first = -1, i
    cdef const char *data = <const char *>cnp.PyArray_DATA(values)
    cdef int nt = num_threads() if n >= PARALLEL_MIN_ELEMENTS * 8 else 1
    with nogil:
        if dtype == cnp.NPY_FLOAT32:
            if nt == 1:
                count = _count_nonintegral(data, 0, n, low, high, <float>0)
            else:
                for ch in prange(chunks, num_threads=nt, schedule="static"):
                    count += _count_nonintegral(
                        data, ch * FINITE_CHUNK,
                        min(<Py_ssize_t>FINITE_CHUNK, n - ch * FINITE_CHUNK), low, high,
                        <float>0)
        else:
            if nt == 1:
                count = _count_nonintegral(data, 0, n, low, high, <double>0)
            else:
                for ch in prange(chunks, num_threads=nt, schedule="static"):
                    count += _count_nonintegral(
                        data, ch * FINITE_CHUNK,
                        min(<Py_ssize_t>FINITE_CHUNK, n - ch * FINITE_CHUNK), low, high,
                        <double>0)
    if count:
        for i in range(n):
            if (_count_nonintegral(data, i, 1, low, high, <float>0)
                    if dtype == cnp.NPY_FLOAT32 else
                    _count_nonintegral(data, i, 1, low, high, <double>0)):
                first = i
                break
    return count, first


cdef Py_ssize_t _count_nonintegral(const char *data, Py_ssize_t start, Py_ssize_t length,
                                   double low, double high, float_t kind) noexcept nogil:
    # Clamped into [low, high], a value in range is unchanged; NaN passes every comparison
    # as false and stays NaN, unequal to itself. So c != v flags the values out of range
    # and NaN, trunc(c) != c the fractions. (`kind` only selects the source type.)
    cdef Py_ssize_t i, c = 0
    cdef float_t raw
    cdef double v, clamped
    data += start * sizeof(float_t)
    for i in range(length):
        memcpy(&raw, data + i * sizeof(float_t), sizeof(float_t))
        v = raw
        clamped = low if v < low else v
        clamped = high if clamped > high else clamped
        c += (clamped != v) | (trunc(clamped) != clamped)
    return c
