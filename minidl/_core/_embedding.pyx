# cython: language_level=3
"""Embedding kernels: the gather of table rows by index, with its bounds check, and the
scatter-add of the output gradient into the rows a batch used.

Layering: ``minidl.layers.embedding`` owns the arrays (the ids as the caller gave them, the
table, the reused outputs and scratch); this module checks their types, shapes and layout
(``_arrays.pxd``), then loops on raw pointers without the GIL.

Ids are read in place, of any integer type, or float32 / float64 holding whole numbers (what
a float model input gives): the check that an id is a whole number in ``[0, rows)`` is part
of the gather loop, so it costs no pass of its own. A bad id's output row is zeros, never a
read outside the table; the gather returns the number of bad ids and the caller raises,
naming the first.

The backward pass writes the rows of the table's gradient that the batch used, and zeroes
those the previous call wrote that this one does not: an (input_dim, output_dim) gradient
costs the batch's rows, not the table's. It links the positions of each row into a list
(``head[row]``, ``next_pos[position]``, in increasing position order), then one thread sums
a row's list in that order while threads split the distinct rows: the same bits for any
thread count.
"""
from cython.parallel cimport prange
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cimport numpy as cnp

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport num_threads

cnp.import_array()

ctypedef fused floating:
    float
    double

# The kinds of id arrays, from numpy's kind and itemsize.
cdef enum:
    ID_I8, ID_I16, ID_I32, ID_I64, ID_U8, ID_U16, ID_U32, ID_U64, ID_F32, ID_F64

cdef enum:
    # Below this many bytes of output a call runs on one thread: a parallel region costs
    # a few microseconds, the copy of 64 KiB about as much.
    PARALLEL_MIN_BYTES = 65536


cdef int _id_kind(object ids) except -1:
    """The kind of an id array (see the enum), or TypeError for a type that holds no ids."""
    dtype = ids.dtype
    kind, size = dtype.kind, dtype.itemsize
    if not dtype.isnative:
        raise TypeError(f"ids must be in the machine's byte order; received dtype {dtype}.")
    if kind == "i" and size in (1, 2, 4, 8):
        return (ID_I8, ID_I16, ID_I32, ID_I64)[(1, 2, 4, 8).index(size)]
    if kind == "u" and size in (1, 2, 4, 8):
        return (ID_U8, ID_U16, ID_U32, ID_U64)[(1, 2, 4, 8).index(size)]
    if kind == "f" and size == 4:
        return ID_F32
    if kind == "f" and size == 8:
        return ID_F64
    raise TypeError(f"ids must be integers (or float32 / float64 whole numbers); received "
                    f"dtype {dtype}.")


cdef inline bint _row_of(const char *ids, int kind, Py_ssize_t i, Py_ssize_t rows,
                         Py_ssize_t *row) noexcept nogil:
    """Id ``i`` as a row index; False when it is not a whole number in [0, rows)."""
    cdef int64_t s
    cdef uint64_t u
    cdef double f
    if kind == ID_I32 or kind == ID_I64 or kind == ID_I8 or kind == ID_I16:
        if kind == ID_I32:
            s = (<const int32_t *>ids)[i]
        elif kind == ID_I64:
            s = (<const int64_t *>ids)[i]
        elif kind == ID_I8:
            s = (<const int8_t *>ids)[i]
        else:
            s = (<const int16_t *>ids)[i]
        if s < 0 or s >= rows:
            return False
        row[0] = <Py_ssize_t>s
        return True
    if kind == ID_F32 or kind == ID_F64:
        if kind == ID_F32:
            f = (<const float *>ids)[i]
        else:
            f = (<const double *>ids)[i]
        # (NaN fails both comparisons; the bounds make the conversion defined.)
        if not (f >= 0.0 and f < <double>rows):
            return False
        s = <int64_t>f
        if <double>s != f:
            return False
        row[0] = <Py_ssize_t>s
        return True
    if kind == ID_U8:
        u = (<const uint8_t *>ids)[i]
    elif kind == ID_U16:
        u = (<const uint16_t *>ids)[i]
    elif kind == ID_U32:
        u = (<const uint32_t *>ids)[i]
    else:
        u = (<const uint64_t *>ids)[i]
    if u >= <uint64_t>rows:
        return False
    row[0] = <Py_ssize_t>u
    return True


cdef inline Py_ssize_t _gather_one(const char *ids, int kind, const char *table,
                                   Py_ssize_t rows, Py_ssize_t row_bytes, char *out,
                                   Py_ssize_t *rows_out, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t r = -1
    if _row_of(ids, kind, i, rows, &r):
        memcpy(out + i * row_bytes, table + r * row_bytes, row_bytes)
        if rows_out != NULL:
            rows_out[i] = r
        return 0
    memset(out + i * row_bytes, 0, row_bytes)
    if rows_out != NULL:
        rows_out[i] = -1
    return 1


def embedding_forward(ids, table, out, rows_out=None):
    """``out[..., :] = table[ids[...], :]``: the rows of ``table`` named by ``ids``.

    Args:
        ids: array of any shape (C-contiguous) of an integer type, or float32 / float64
            holding whole numbers.
        table: (rows, dim) float32 or float64, C-contiguous.
        out: ``ids.shape + (dim,)`` of the table's dtype, C-contiguous, fully overwritten;
            the row of a bad id is zeros.
        rows_out: None, or an intp array of ``ids.size`` entries: each id's row (-1 for a
            bad one), what :func:`embedding_backward` reads.

    Returns:
        The number of bad ids (not a whole number in ``[0, rows)``); 0 when all are good.

    Raises:
        TypeError, ValueError: an array of the wrong type, layout or shape.
    """
    ids = aligned(ids)
    table = aligned(table)
    if not cnp.PyArray_Check(ids):
        raise TypeError(f"ids must be a numpy.ndarray; received {type(ids).__name__}.")
    cdef int kind = _id_kind(ids)
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>ids):
        raise ValueError("ids must be C-contiguous (np.ascontiguousarray).")
    cdef int t = float_carray(table, 2, None, "table")
    cdef Py_ssize_t rows = dim(table, 0), width = dim(table, 1)
    carray(out, t, cnp.PyArray_NDIM(<cnp.ndarray>ids) + 1, None, "out", True)
    if out.shape != ids.shape + (width,):
        raise ValueError(f"out must have shape {ids.shape + (width,)} (ids.shape + (dim,)); "
                         f"received {out.shape}.")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>ids)
    cdef Py_ssize_t *rows_ptr = NULL
    if rows_out is not None:
        carray(rows_out, cnp.NPY_INTP, 1, None, "rows_out", True)
        if dim(rows_out, 0) != n:
            raise ValueError(f"rows_out must have ids.size = {n} entries; received "
                             f"{rows_out.shape}.")
        rows_ptr = <Py_ssize_t *>data(rows_out)
    cdef Py_ssize_t row_bytes = width * cnp.PyArray_ITEMSIZE(<cnp.ndarray>table)
    cdef const char *id_data = data(ids)
    cdef const char *table_data = data(table)
    cdef char *out_data = data(out)
    cdef Py_ssize_t bad = 0, i
    cdef int threads = num_threads() if n * row_bytes >= PARALLEL_MIN_BYTES else 1
    with nogil:
        if threads > 1:
            for i in prange(n, num_threads=threads, schedule="static"):
                bad += _gather_one(id_data, kind, table_data, rows, row_bytes, out_data,
                                   rows_ptr, i)
        else:
            for i in range(n):
                bad += _gather_one(id_data, kind, table_data, rows, row_bytes, out_data,
                                   rows_ptr, i)
    return bad


def first_bad_id(ids, Py_ssize_t rows):
    """(flat position, value) of the first id of ``ids`` that is not a whole number in
    ``[0, rows)``, or None: what the error of a failed :func:`embedding_forward` names."""
    ids = aligned(ids)
    if not cnp.PyArray_Check(ids):
        raise TypeError(f"ids must be a numpy.ndarray; received {type(ids).__name__}.")
    cdef int kind = _id_kind(ids)
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>ids):
        raise ValueError("ids must be C-contiguous (np.ascontiguousarray).")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>ids), i, r
    cdef const char *id_data = data(ids)
    for i in range(n):
        if not _row_of(id_data, kind, i, rows, &r):
            return i, ids.reshape(-1)[i].item()
    return None


# ---- backward ----

cdef inline void _add_row(floating *dst, const floating *src, Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(width):
        dst[j] = dst[j] + src[j]


cdef void _sum_row(floating *grad, const floating *dy, const Py_ssize_t *head,
                   const Py_ssize_t *next_pos, Py_ssize_t r, Py_ssize_t width) noexcept nogil:
    # grad[r] = the sum of dy over the positions of row r, in increasing position order.
    cdef Py_ssize_t i = head[r]
    cdef floating *dst = grad + r * width
    memcpy(dst, dy + i * width, width * sizeof(floating))
    i = next_pos[i]
    while i >= 0:
        _add_row(dst, dy + i * width, width)
        i = next_pos[i]


cdef void _scatter(floating *grad, const floating *dy, const Py_ssize_t *rows,
                   Py_ssize_t *head, Py_ssize_t *next_pos, const Py_ssize_t *touched,
                   Py_ssize_t count, Py_ssize_t *unique, Py_ssize_t n, Py_ssize_t width,
                   Py_ssize_t *found) noexcept nogil:
    cdef Py_ssize_t i, k, r, h, u = 0
    cdef int threads
    # The lists, built backwards so that each runs in increasing position order. A head
    # outside (i, n) counts as empty: whatever the array held, no link leaves the batch.
    for i in range(n - 1, -1, -1):
        r = rows[i]
        h = head[r]
        if h <= i or h >= n:
            unique[u] = r
            u += 1
            h = -1
        next_pos[i] = h
        head[r] = i
    threads = num_threads() if (u + count) * width * sizeof(floating) >= PARALLEL_MIN_BYTES \
        else 1
    if threads > 1:
        for k in prange(u, num_threads=threads, schedule="static"):
            _sum_row(grad, dy, head, next_pos, unique[k], width)
        for k in prange(count, num_threads=threads, schedule="static"):
            r = touched[k]
            h = head[r]
            if h < 0 or h >= n or rows[h] != r:   # not a row of this batch
                memset(grad + r * width, 0, width * sizeof(floating))
    else:
        for k in range(u):
            _sum_row(grad, dy, head, next_pos, unique[k], width)
        for k in range(count):
            r = touched[k]
            h = head[r]
            if h < 0 or h >= n or rows[h] != r:
                memset(grad + r * width, 0, width * sizeof(floating))
    for k in range(u):
        head[unique[k]] = -1
    found[0] = u


def embedding_backward(rows, dy, grad, head, next_pos, touched, Py_ssize_t count, unique):
    """The table's gradient from the output gradient, touching only the rows in use.

    ``grad[r] = sum of dy[i] over the positions i with rows[i] == r`` for every row of this
    batch (written, not added); the rows of ``touched[:count]`` (those the previous call
    wrote) that this batch does not use become zeros; every other row is left as it is. So
    a gradient that started as zeros, and that only this function writes, stays equal to
    the full gradient from call to call.

    Args:
        rows: (n,) intp, each in ``[0, grad.shape[0])`` (``rows_out`` of the forward pass).
        dy: (n, dim) float32 or float64, C-contiguous.
        grad: (rows, dim) of dy's dtype, C-contiguous, written as above.
        head: (rows,) intp scratch, every entry -1; left so on return.
        next_pos: (n,) intp scratch.
        touched: intp array whose first ``count`` entries are rows of ``grad``.
        count: the number of entries of ``touched`` to read.
        unique: intp array of at least n entries: receives the distinct rows of this batch
            (the ``touched`` of the next call).

    Returns:
        The number of distinct rows written into ``unique``.

    Raises:
        TypeError, ValueError: an array of the wrong type, layout or shape, or a row out of
            range, before anything is written.
    """
    dy = aligned(dy)
    rows = aligned(rows)
    touched = aligned(touched)
    cdef int t = float_carray(dy, 2, None, "dy")
    cdef Py_ssize_t n = dim(dy, 0), width = dim(dy, 1)
    carray(grad, t, 2, None, "grad", True)
    if dim(grad, 1) != width:
        raise ValueError(f"grad must have {width} columns like dy; received {grad.shape}.")
    cdef Py_ssize_t table_rows = dim(grad, 0)
    carray(rows, cnp.NPY_INTP, 1, None, "rows", False)
    if dim(rows, 0) != n:
        raise ValueError(f"rows must have dy.shape[0] = {n} entries; received {rows.shape}.")
    carray(head, cnp.NPY_INTP, 1, None, "head", True)
    if dim(head, 0) != table_rows:
        raise ValueError(f"head must have grad.shape[0] = {table_rows} entries; received "
                         f"{head.shape}.")
    carray(next_pos, cnp.NPY_INTP, 1, None, "next_pos", True)
    if dim(next_pos, 0) < n:
        raise ValueError(f"next_pos must have at least {n} entries; received "
                         f"{next_pos.shape}.")
    carray(touched, cnp.NPY_INTP, 1, None, "touched", False)
    if count < 0 or count > dim(touched, 0):
        raise ValueError(f"count must be in [0, {dim(touched, 0)}] (touched's length); "
                         f"received count={count}.")
    carray(unique, cnp.NPY_INTP, 1, None, "unique", True)
    if dim(unique, 0) < n:
        raise ValueError(f"unique must have at least {n} entries; received {unique.shape}.")
    cdef const Py_ssize_t *row_data = <const Py_ssize_t *>data(rows)
    cdef const Py_ssize_t *touched_data = <const Py_ssize_t *>data(touched)
    cdef Py_ssize_t i, bad = -1, bad_touched = -1, found = 0
    with nogil:
        for i in range(n):
            if row_data[i] < 0 or row_data[i] >= table_rows:
                bad = i
                break
        for i in range(count):
            if touched_data[i] < 0 or touched_data[i] >= table_rows:
                bad_touched = i
                break
    if bad >= 0:
        raise ValueError(f"rows[{bad}] = {rows[bad]} is outside [0, {table_rows}).")
    if bad_touched >= 0:
        raise ValueError(f"touched[{bad_touched}] = {touched[bad_touched]} is outside "
                         f"[0, {table_rows}).")
    cdef char *grad_data = data(grad)
    cdef const char *dy_data = data(dy)
    cdef Py_ssize_t *head_data = <Py_ssize_t *>data(head)
    cdef Py_ssize_t *next_data = <Py_ssize_t *>data(next_pos)
    cdef Py_ssize_t *unique_data = <Py_ssize_t *>data(unique)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _scatter(<float *>grad_data, <const float *>dy_data, row_data, head_data,
                     next_data, touched_data, count, unique_data, n, width, &found)
        else:
            _scatter(<double *>grad_data, <const double *>dy_data, row_data, head_data,
                     next_data, touched_data, count, unique_data, n, width, &found)
    return found
