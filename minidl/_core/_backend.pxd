# Cross-module C API of minidl._core._backend for other Cython modules:
#     from minidl._core._backend cimport num_threads, sgemm, dgemm
# Every prange in minidl passes num_threads=num_threads(), so one setting governs them all.
# sgemm/dgemm return 0, or -1 when their packing buffers could not be allocated.

cdef int num_threads() noexcept nogil

cdef int sgemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
                const float *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                const float *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                float beta, float *c, Py_ssize_t rs_c, Py_ssize_t cs_c) noexcept nogil

cdef int dgemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
                const double *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                const double *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                double beta, double *c, Py_ssize_t rs_c, Py_ssize_t cs_c) noexcept nogil

# Fused optimizer updates of csrc/optimizers.c (rules in minidl.h): one pass over n elements
# of a parameter, its gradient and its slots, in place; optional slots are NULL; no array may
# overlap another. sum_of_squares_* sum x^2 in double in an order fixed by n alone.
cdef extern from "minidl.h" nogil:
    ctypedef struct mdl_optim_hyper:
        double lr
        double decay_lr
        double weight_decay
        double grad_scale
        double clip_value
        double momentum
        double beta_1
        double beta_2
        double epsilon
        double m_coef
        double g_coef
        double v_div
        int nesterov

cdef void sgd_f32(Py_ssize_t n, const mdl_optim_hyper *h, float *param, const float *grad,
                  float *velocity) noexcept nogil
cdef void sgd_f64(Py_ssize_t n, const mdl_optim_hyper *h, double *param, const double *grad,
                  double *velocity) noexcept nogil
cdef void adam_f32(Py_ssize_t n, const mdl_optim_hyper *h, float *param, const float *grad,
                   float *m, float *v, float *v_hat) noexcept nogil
cdef void adam_f64(Py_ssize_t n, const mdl_optim_hyper *h, double *param, const double *grad,
                   double *m, double *v, double *v_hat) noexcept nogil
cdef void rmsprop_f32(Py_ssize_t n, const mdl_optim_hyper *h, float *param, const float *grad,
                      float *velocity, float *momentum_buffer, float *average_grad) noexcept nogil
cdef void rmsprop_f64(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                      const double *grad, double *velocity, double *momentum_buffer,
                      double *average_grad) noexcept nogil
cdef void adagrad_f32(Py_ssize_t n, const mdl_optim_hyper *h, float *param, const float *grad,
                      float *accumulator) noexcept nogil
cdef void adagrad_f64(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                      const double *grad, double *accumulator) noexcept nogil
cdef void nadam_f32(Py_ssize_t n, const mdl_optim_hyper *h, float *param, const float *grad,
                    float *m, float *v) noexcept nogil
cdef void nadam_f64(Py_ssize_t n, const mdl_optim_hyper *h, double *param, const double *grad,
                    double *m, double *v) noexcept nogil
cdef double sum_of_squares_f32(Py_ssize_t n, const float *x) noexcept nogil
cdef double sum_of_squares_f64(Py_ssize_t n, const double *x) noexcept nogil

# Max pooling hot loops (csrc/pooling.c, declared in minidl.h): see there.
cdef void max_pool_2x2_row_f32(const float *image, Py_ssize_t w, Py_ssize_t c, Py_ssize_t y0,
                               Py_ssize_t sw, Py_ssize_t pad_left, Py_ssize_t lo,
                               Py_ssize_t hi, float *out_row, int *idx_row) noexcept nogil
cdef void unpool_tiled_f32(Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t kh,
                           Py_ssize_t kw, Py_ssize_t out_h, Py_ssize_t out_w, const float *dy,
                           const int *argmax, const float *gate, float *dx) noexcept nogil
cdef void max_pool_2x2_row_f64(const double *image, Py_ssize_t w, Py_ssize_t c, Py_ssize_t y0,
                               Py_ssize_t sw, Py_ssize_t pad_left, Py_ssize_t lo,
                               Py_ssize_t hi, double *out_row, int *idx_row) noexcept nogil
cdef void unpool_tiled_f64(Py_ssize_t h, Py_ssize_t w, Py_ssize_t c, Py_ssize_t kh,
                           Py_ssize_t kw, Py_ssize_t out_h, Py_ssize_t out_w, const double *dy,
                           const int *argmax, const double *gate, double *dx) noexcept nogil

# Thread-local scratch (mdl_scratch, csrc/minidl.h): slot 2 is for a kernel's buffers shared
# by its parallel region; NULL when out of memory. Never free the result.
cdef void *scratch(int slot, size_t bytes) noexcept nogil

# im2col / col2im inner loops (csrc/patches.c): `runs` runs of `width` values, copied or
# added from src to dst (strides between runs in elements).
cdef void copy_runs_f32(float *dst, Py_ssize_t dst_stride, const float *src,
                        Py_ssize_t src_stride, Py_ssize_t runs, Py_ssize_t width) noexcept nogil
cdef void copy_runs_f64(double *dst, Py_ssize_t dst_stride, const double *src,
                        Py_ssize_t src_stride, Py_ssize_t runs, Py_ssize_t width) noexcept nogil
cdef void add_runs_f32(float *dst, Py_ssize_t dst_stride, const float *src,
                       Py_ssize_t src_stride, Py_ssize_t runs, Py_ssize_t width) noexcept nogil
cdef void add_runs_f64(double *dst, Py_ssize_t dst_stride, const double *src,
                       Py_ssize_t src_stride, Py_ssize_t runs, Py_ssize_t width) noexcept nogil

# The geometry of a sliding window, shared by the C kernels and the Cython convolution and
# pooling kernels (minidl.h; filled and checked by window_geometry in _window.pxd).
cdef extern from "minidl.h" nogil:
    ctypedef struct mdl_window:
        Py_ssize_t h, w, c
        Py_ssize_t kh, kw
        Py_ssize_t sh, sw
        Py_ssize_t dh, dw
        Py_ssize_t pad_top, pad_left
        Py_ssize_t out_h, out_w

# A convolution with few taps fused with the max pooling after it (csrc/conv_pool.c, the
# contract in minidl.h). Both return 0, or -1 when out of memory.
cdef extern from "minidl.h" nogil:
    enum:
        MDL_CP_TAPS
    ctypedef struct mdl_conv_pool:
        mdl_window geo
        Py_ssize_t filters, ph, pw, pooled_h, pooled_w
        Py_ssize_t filters_padded, patch_stride
cdef int conv_max_pool_row_f32(const mdl_conv_pool *g, const float *image, const float *kernel,
                               const float *bias, int relu, float *y_row, int *argmax_row,
                               Py_ssize_t py) noexcept nogil
cdef int conv_max_pool_row_f64(const mdl_conv_pool *g, const double *image,
                               const double *kernel, const double *bias, int relu,
                               double *y_row, int *argmax_row, Py_ssize_t py) noexcept nogil
cdef int conv_max_pool_grad_image_f32(const mdl_conv_pool *g, const float *image,
                                      const float *dy, const int *argmax, const float *gate,
                                      float *d_kernel, float *d_bias) noexcept nogil
cdef int conv_max_pool_grad_image_f64(const mdl_conv_pool *g, const double *image,
                                      const double *dy, const int *argmax, const double *gate,
                                      double *d_kernel, double *d_bias) noexcept nogil

# The training convolution without patch matrices (csrc/conv_direct.c, the contract in
# minidl.h): the patch path's bits. All return 0, or -1 when out of memory.
cdef extern from "minidl.h" nogil:
    ctypedef struct mdl_conv_direct:
        mdl_window geo
        Py_ssize_t n, filters, chunk, src_h, src_w
        Py_ssize_t interior_lo, interior_hi
        int interior_by_tap
cdef int conv_direct_forward_f32(const mdl_conv_direct *g, const float *x, float *padded,
                                 const float *kernel, float *z) noexcept nogil
cdef int conv_direct_forward_f64(const mdl_conv_direct *g, const double *x, double *padded,
                                 const double *kernel, double *z) noexcept nogil
cdef int conv_direct_backward_f32(const mdl_conv_direct *g, const float *x, float *padded,
                                  int padded_ready, const float *dz, const float *kernel,
                                  float *d_kernel, float *dx) noexcept nogil
cdef int conv_direct_backward_f64(const mdl_conv_direct *g, const double *x, double *padded,
                                  int padded_ready, const double *dz, const double *kernel,
                                  double *d_kernel, double *dx) noexcept nogil
