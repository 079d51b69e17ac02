# Argument checks shared by the kernel modules of minidl._core.
#
# They read numpy's array struct through its C API, so a check costs a few nanoseconds: the
# training step calls these kernels about twenty times on arrays of a few thousand elements,
# where typed memoryviews, fused-type dispatch and Python-level checks used to cost more than
# the work. Error messages start with `owner` ("ReLU.forward: ") when it is not None, name the
# argument, and say what was expected and what was received; the message is only built when
# the check fails.
#
# Alignment: C reads an element only at an address that is a multiple of its alignment (a
# misaligned float load is undefined behaviour, which UBSan reports and which vector code may
# turn into a fault). numpy allocates aligned memory, but a view can be misaligned, e.g.
# np.frombuffer(buf[1:], np.float32). Every entry point passes its inputs through aligned(),
# which copies such an array (a rare case, so the copy costs nothing in practice), and checks
# its outputs with float_array() or aligned_output(), which refuse one: a kernel cannot write
# its result into a copy.
#
# Arrays of a fixed rank (the convolution and pooling kernels' images, patch matrices and
# argmax indices) are checked with carray() and read through data(): one test of the array's
# flags on the common path, where a typed memoryview argument generated kilobytes of
# unpacking code per argument and per element type.
cimport numpy as cnp


cdef inline str prefix(object owner):
    return "" if owner is None else f"{owner}: "


cdef inline object aligned(object a):
    """``a``, or an aligned copy of it (same layout) when it is a misaligned ndarray."""
    if cnp.PyArray_Check(a) and not cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return cnp.PyArray_NewCopy(<cnp.ndarray>a, cnp.NPY_KEEPORDER)
    return a


cdef inline int aligned_output(object a, object owner, str name) except -1:
    """Refuses an output (or in-place) ndarray ``a`` that is misaligned."""
    if not cnp.PyArray_Check(a) or cnp.PyArray_ISALIGNED(<cnp.ndarray>a):
        return 0
    raise ValueError(f"{prefix(owner)}{name} must be aligned: its address and strides must be "
                     f"multiples of {(<object>a).dtype.alignment} bytes for dtype "
                     f"{(<object>a).dtype}, as in any array numpy allocates. Received: {name} "
                     f"at address {<size_t>cnp.PyArray_DATA(<cnp.ndarray>a):#x} with strides "
                     f"{(<object>a).strides}.")


cdef inline bint is_float_carray(object a, int dtype) noexcept:
    """True when ``a`` is a C-contiguous, aligned, native-endian ndarray of type ``dtype``."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == dtype
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a))


cdef inline int float_array(object a, object owner, str name) except -1:
    """``a``'s type number, NPY_FLOAT or NPY_DOUBLE, after checking that it is a C-contiguous,
    aligned, native-endian float32 or float64 ndarray (inputs: after aligned())."""
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{prefix(owner)}{name} must be a numpy.ndarray; received "
                        f"{type(a).__name__}.")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        raise TypeError(f"{prefix(owner)}{name} must be float32 or float64; received "
                        f"{a.dtype}.")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise ValueError(f"{prefix(owner)}{name} must be C-contiguous "
                         f"(np.ascontiguousarray).")
    aligned_output(a, owner, name)
    return t


cdef inline int float_array_like(object a, int dtype, object owner, str name) except -1:
    """As :func:`float_array`, and of type ``dtype`` (that of the first input)."""
    if is_float_carray(a, dtype):
        return 0
    float_array(a, owner, name)
    raise TypeError(f"{prefix(owner)}{name} must have dtype "
                    f"{'float32' if dtype == cnp.NPY_FLOAT else 'float64'} like the input; "
                    f"received {a.dtype}.")


cdef inline int writeable(object a, object owner, str name) except -1:
    if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{prefix(owner)}{name} is read-only; pass a writeable array.")
    return 0


cdef inline int same_shape(object a, object ref, object owner, str name,
                           str ref_name) except -1:
    if cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>ref):
        return 0
    if owner is None:
        raise ValueError(f"{name} must have shape {(<object>ref).shape} like {ref_name}; "
                         f"received {(<object>a).shape}.")
    raise ValueError(f"{owner}: {name} must have the shape of {ref_name} "
                     f"{(<object>ref).shape}; received {(<object>a).shape}.")


cdef inline bint overlap(object a, object b) noexcept:
    """True when the byte ranges of two C-contiguous arrays intersect."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a), nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and a0 < b0 + nb and b0 < a0 + na


cdef inline char *data(object a) noexcept:
    """The first element of an ndarray that the checks above have accepted."""
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t dim(object a, int axis) noexcept:
    """The length of ``a`` along ``axis`` (an ndarray of at least axis + 1 dimensions)."""
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[axis]


cdef inline int carray(object a, int dtype, int ndim, object owner, str name,
                       bint out) except -1:
    """Checks that ``a`` is a C-contiguous, aligned, native-endian ndarray of the numpy type
    number ``dtype`` with ``ndim`` dimensions, and writeable when it is an output (``out``);
    otherwise raises TypeError (not an ndarray, wrong dtype) or ValueError naming ``a`` and
    saying what was expected and what was received."""
    if (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == dtype
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == ndim
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a)
            and (not out or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a))):
        return 0
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{prefix(owner)}{name} must be a numpy.ndarray; received "
                        f"{type(a).__name__}.")
    if cnp.PyArray_TYPE(<cnp.ndarray>a) != dtype or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        raise TypeError(f"{prefix(owner)}{name} must have dtype "
                        f"{cnp.PyArray_DescrFromType(dtype)}; received {(<object>a).dtype}.")
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != ndim:
        raise ValueError(f"{prefix(owner)}{name} must have {ndim} dimensions; received an "
                         f"array of shape {(<object>a).shape}.")
    if not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
        raise ValueError(f"{prefix(owner)}{name} must be C-contiguous (np.ascontiguousarray); "
                         f"received strides {(<object>a).strides} for shape "
                         f"{(<object>a).shape}.")
    aligned_output(a, owner, name)
    return writeable(a, owner, name)


cdef inline int float_carray(object a, int ndim, object owner, str name) except -1:
    """``a``'s type number, NPY_FLOAT or NPY_DOUBLE, after checking it as :func:`carray`
    does an input of either float type (the first input of a kernel, which sets the type
    of the others)."""
    cdef int t
    if cnp.PyArray_Check(a):
        t = cnp.PyArray_TYPE(<cnp.ndarray>a)
        if t == cnp.NPY_FLOAT or t == cnp.NPY_DOUBLE:
            carray(a, t, ndim, owner, name, False)
            return t
    float_array(a, owner, name)   # raises: not an ndarray, or not float32 / float64
    return -1
