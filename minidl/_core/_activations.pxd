# Cross-module C API of minidl._core._activations, for a compiled training step
# (minidl._core._chain):
#     from minidl._core._activations cimport Kernel, Params, bias_activation_f32

# An activation's float parameters (a, b, c): see KINDS in _activations.pyx.
ctypedef struct Params:
    double a
    double b
    double c


cdef class Kernel:
    cdef int kind
    cdef Params p
    cdef readonly str kind_name
    cdef readonly tuple params
    cdef readonly str owner
    cdef str owner_forward, owner_backward, owner_forward_bias, owner_backward_bias


# What Kernel.forward_bias (is_forward) and Kernel.backward_bias compute, on raw rows x cols
# C-contiguous arrays, without checks: forward ``z += bias; out = f(z)`` (bias may be NULL;
# y, dy, dbias unused), backward ``out = dy * f'(z)`` and ``dbias`` = its column sums (may be
# NULL; bias unused). Returns 0, or -1 when the dbias partial sums could not be allocated.
cdef int bias_activation_f32(bint is_forward, int kind, const Params *p, float *z,
                             const float *y, const float *dy, float *out, const float *bias,
                             float *dbias, Py_ssize_t rows, Py_ssize_t cols) noexcept nogil
cdef int bias_activation_f64(bint is_forward, int kind, const Params *p, double *z,
                             const double *y, const double *dy, double *out,
                             const double *bias, double *dbias, Py_ssize_t rows,
                             Py_ssize_t cols) noexcept nogil
