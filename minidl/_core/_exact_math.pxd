# The bit-exact rules shared by the C kernels and the Cython modules (csrc/exact_math.h,
# where each is explained), declared once for Cython:
#     from minidl._core._exact_math cimport mdl_blendf, mdl_expf
# Header only: no module of its own, nothing to link.

cdef extern from "exact_math.h" nogil:
    # c ? a : b on floats through the bits, without a branch (c: 0 or 1).
    float mdl_blendf(bint c, float a, float b) noexcept
    double mdl_blend(bint c, double a, double b) noexcept
    # MaxPooling's running maximum of `count` channels: out = max(out, v), idx = pos + channel
    # of the winner; the first maximum wins ties, a NaN wins over any number.
    void mdl_max_update_f32(float *out, int *idx, const float *v, int pos,
                            Py_ssize_t count) noexcept
    void mdl_max_update_f64(double *out, int *idx, const double *v, int pos,
                            Py_ssize_t count) noexcept
    # e^x, tanh(x) and 1 / (1 + e^-x) in float32, branch-free (the activations' bits).
    float mdl_expf(float x) noexcept
    float mdl_tanhf(float x) noexcept
    float mdl_sigmoidf(float x) noexcept
