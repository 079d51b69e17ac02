# Cross-module C API of minidl._core._losses, for a compiled training step
# (minidl._core._chain):
#     from minidl._core._losses cimport LossCall, LossKernel, loss_call_run
from libc.stdint cimport int64_t

# A loss kind and its parameters (see KINDS in _losses.pyx).
ctypedef struct Args:
    int kind
    double delta          # Huber
    double smoothing      # label smoothing
    double epsilon        # probability clip
    double alpha          # focal losses: class weight
    double gamma          # focal losses: focusing exponent
    int flag              # binary focal: apply_class_balancing; hinge: 0/1 labels seen
    int64_t ignore_class
    bint has_ignore

# One call of a loss kernel on checked arrays, as LossKernel.prepare fills it.
ctypedef struct LossCall:
    Args a
    bint f32
    int label_type        # NPY_INT32 or NPY_INT64 (sparse kinds)
    char *t               # dense targets, or NULL
    char *labels          # sparse labels, or NULL
    char *p               # y_pred, (rows, n)
    char *g               # gradient out, like y_pred
    double scale          # the reduction's factor
    Py_ssize_t rows, n


cdef class LossKernel:
    cdef Args a
    cdef bint by_count
    cdef bint sparse
    cdef object axis
    cdef readonly str name
    cdef tuple config
    cdef bint prepare(self, object y_true, object y_pred, object grad_out,
                      LossCall *c) except -1
    cdef object bad_label(self, object y_true, Py_ssize_t bad, Py_ssize_t n)


# The loss kernel of ``c``: *total = the unscaled sum (multiply by c.scale for the value),
# the gradient into c.g, *bad = the first out-of-range label's row or -1. Returns 0, or -1
# when the partial sums could not be allocated.
cdef int loss_call_run(const LossCall *c, double *total, Py_ssize_t *bad) noexcept nogil
