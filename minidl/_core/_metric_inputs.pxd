# Inputs of the metric kernels (_metrics.pyx, _confusion.pyx): the array types they read in
# place, and the one way y_true and y_pred become such arrays.
#     from minidl._core._metric_inputs cimport (L_UINT8, as_labels, as_predictions,
#                                               as_weights, label_t, pred_t, same_dims)
#
# Both modules are called once per batch with a budget of about 100 ns beyond the counting, so
# an array that a kernel can read (C-contiguous, aligned, native-endian, of a kernel dtype) is
# recognised with a few reads of numpy's array struct and used as it is; anything else
# (lists, strided views, other dtypes) is converted once. Error messages start with the
# metric's name, ``name``. Which shapes fit together is each module's own rule.
#
# Everything here is inline: this file has no module of its own.
cimport numpy as cnp

ctypedef fused pred_t:
    float
    double

ctypedef fused label_t:
    cnp.npy_uint8     # also bool: numpy stores it as one byte holding 0 or 1
    cnp.npy_int32
    cnp.npy_int64
    float
    double

# y_true dtype codes: which label_t specialisation reads the array.
cdef enum:
    L_UINT8, L_INT32, L_INT64, L_FLOAT32, L_FLOAT64, L_NONE


cdef inline int label_code(cnp.ndarray a) noexcept:
    """Which label_t specialisation reads ``a`` in place, or L_NONE (convert first)."""
    if not cnp.PyArray_ISCARRAY_RO(a):
        return L_NONE
    cdef int t = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(a)
    if t == cnp.NPY_BOOL or t == cnp.NPY_UBYTE:
        return L_UINT8
    if cnp.PyTypeNum_ISINTEGER(t) and cnp.PyTypeNum_ISSIGNED(t):
        # int64 is NPY_LONG or NPY_LONGLONG depending on the platform: go by size.
        return L_INT32 if size == 4 else (L_INT64 if size == 8 else L_NONE)
    if t == cnp.NPY_FLOAT:
        return L_FLOAT32
    if t == cnp.NPY_DOUBLE:
        return L_FLOAT64
    return L_NONE


cdef inline cnp.ndarray as_labels(object y_true, str name, int *code):
    """``y_true`` as an array a label_t specialisation reads, its code in ``code`` (OUT):
    integers and bools as int64, floats as float32 (up to 4 bytes) or float64, when they are
    not readable in place."""
    cdef cnp.ndarray a
    if cnp.PyArray_Check(y_true):
        a = <cnp.ndarray>y_true
        code[0] = label_code(a)
        if code[0] != L_NONE:
            return a
    import numpy as np   # (the conversion path only: the common one stays in C)
    # np.require, not np.ascontiguousarray: the latter turns a 0-d array into shape (1,).
    a = np.asarray(y_true)
    if a.dtype.kind in "biu":
        a = np.require(a, np.int64, "CA")
    elif a.dtype.kind == "f":
        a = np.require(a, np.float32 if a.dtype.itemsize <= 4 else np.float64, "CA")
    else:
        raise TypeError(f"{name}: `y_true` must hold numbers or bools. Received: y_true with "
                        f"dtype {a.dtype}")
    code[0] = label_code(a)
    return a


cdef inline bint readable_floats(object a) noexcept:
    """True when ``a`` is a C-contiguous, aligned, native-endian float32 or float64 ndarray."""
    if not cnp.PyArray_Check(a):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    return (t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE) and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)


cdef inline cnp.ndarray as_predictions(object y_pred, str name):
    """``y_pred`` as a C-contiguous, aligned float32 or float64 array: float32 stays float32
    (as do smaller floats), other numbers become float64."""
    if readable_floats(y_pred):
        return <cnp.ndarray>y_pred
    import numpy as np
    cdef cnp.ndarray a = np.asarray(y_pred)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: `y_pred` must hold numbers. Received: y_pred with dtype "
                        f"{a.dtype}")
    return np.require(
        a, np.float32 if a.dtype.kind == "f" and a.dtype.itemsize <= 4 else np.float64, "CA")


cdef inline bint same_dims(cnp.ndarray a, cnp.ndarray b, int ndim) noexcept:
    """True when the first ``ndim`` dimensions of ``a`` and ``b`` (both of rank >= ndim) are
    equal."""
    cdef int i
    for i in range(ndim):
        if cnp.PyArray_DIMS(a)[i] != cnp.PyArray_DIMS(b)[i]:
            return False
    return True


cdef inline cnp.ndarray as_weights(object sample_weight, str name, double *scale):
    """``sample_weight`` as a C-contiguous, aligned float32 or float64 array (other numbers
    become float64), or None for None or a Python number, whose value goes to ``scale``
    (OUT; 1 otherwise)."""
    scale[0] = 1.0
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (float, int)) and not isinstance(sample_weight, bool):
        scale[0] = sample_weight
        return None
    if readable_floats(sample_weight):
        return <cnp.ndarray>sample_weight
    import numpy as np
    cdef cnp.ndarray w = np.asarray(sample_weight)
    if readable_floats(w):
        return w
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name}: `sample_weight` must hold numbers. Received: sample_weight "
                        f"with dtype {w.dtype}")
    return np.require(w, np.float64, "CA")
