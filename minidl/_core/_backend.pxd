# The C API of minidl's compiled core (csrc/minidl.h, where each function's contract is
# written), declared for Cython once, here. csrc/ is one shared library, libminidl_core, that
# every extension module links (setup.py), so there is one kernel table, one thread setting
# and one set of scratch buffers in a process however many modules call it. Cython modules
# cimport what they use:
#     from minidl._core._backend cimport num_threads, sgemm, dgemm
# Names used from Cython are the C names without their mdl_ prefix (the string after a name
# is the C symbol); those that only _backend.pyx wraps for Python keep their C names.
# Every prange in minidl passes num_threads=num_threads(), so one setting governs them all.

cdef extern from "minidl.h" nogil:

    # ---- instruction sets, kernel tables and threads (cpu.c) ----
    ctypedef enum mdl_arch:
        MDL_ARCH_GENERIC
        MDL_ARCH_AVX2
        MDL_ARCH_AVX512
        MDL_ARCH_COUNT
    int mdl_supported_archs()
    int mdl_set_arch(mdl_arch arch)
    mdl_arch mdl_get_arch()
    const char *mdl_arch_name(mdl_arch arch)
    mdl_arch mdl_best_arch()
    ctypedef enum mdl_family:
        MDL_FAMILY_COUNT
    mdl_arch mdl_kernel_version(mdl_family family)
    const char *mdl_family_name(mdl_family family)
    const char *mdl_kernel_description()
    int MDL_THREADS_PER_PROC
    double MDL_WORK_PER_THREAD
    int num_threads "mdl_get_num_threads"()
    int mdl_threads_for(double work, double items)
    void mdl_set_num_threads(int n)
    int mdl_max_threads()
    int mdl_default_num_threads()
    int mdl_startable_threads(int n)
    int mdl_num_procs()
    int mdl_have_openmp()
    const char *mdl_compiler()

    # Thread-local scratch: slot 2 is for a kernel's buffers shared by its parallel region;
    # NULL when out of memory. Never free the result.
    void *scratch "mdl_scratch"(int slot, size_t bytes)

    # ---- GEMM (gemm.c): 0, or -1 when the packing buffers could not be allocated ----
    int sgemm "mdl_sgemm"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
                          const float *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                          const float *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                          float beta, float *c, Py_ssize_t rs_c, Py_ssize_t cs_c)
    int dgemm "mdl_dgemm"(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
                          const double *a, Py_ssize_t rs_a, Py_ssize_t cs_a,
                          const double *b, Py_ssize_t rs_b, Py_ssize_t cs_b,
                          double beta, double *c, Py_ssize_t rs_c, Py_ssize_t cs_c)

    # ---- fused optimizer updates (optimizers.c): in place; optional slots are NULL ----
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
    void sgd_f32 "mdl_sgd_f32"(Py_ssize_t n, const mdl_optim_hyper *h, float *param,
                               const float *grad, float *velocity)
    void sgd_f64 "mdl_sgd_f64"(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                               const double *grad, double *velocity)
    void adam_f32 "mdl_adam_f32"(Py_ssize_t n, const mdl_optim_hyper *h, float *param,
                                 const float *grad, float *m, float *v, float *v_hat)
    void adam_f64 "mdl_adam_f64"(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                                 const double *grad, double *m, double *v, double *v_hat)
    void rmsprop_f32 "mdl_rmsprop_f32"(Py_ssize_t n, const mdl_optim_hyper *h, float *param,
                                       const float *grad, float *velocity,
                                       float *momentum_buffer, float *average_grad)
    void rmsprop_f64 "mdl_rmsprop_f64"(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                                       const double *grad, double *velocity,
                                       double *momentum_buffer, double *average_grad)
    void adagrad_f32 "mdl_adagrad_f32"(Py_ssize_t n, const mdl_optim_hyper *h, float *param,
                                       const float *grad, float *accumulator)
    void adagrad_f64 "mdl_adagrad_f64"(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                                       const double *grad, double *accumulator)
    void nadam_f32 "mdl_nadam_f32"(Py_ssize_t n, const mdl_optim_hyper *h, float *param,
                                   const float *grad, float *m, float *v)
    void nadam_f64 "mdl_nadam_f64"(Py_ssize_t n, const mdl_optim_hyper *h, double *param,
                                   const double *grad, double *m, double *v)
    # sum(x^2) in double, in an order fixed by n alone.
    double sum_of_squares_f32 "mdl_sum_of_squares_f32"(Py_ssize_t n, const float *x)
    double sum_of_squares_f64 "mdl_sum_of_squares_f64"(Py_ssize_t n, const double *x)

    # ---- max pooling hot loops (pooling.c) ----
    void max_pool_2x2_row_f32 "mdl_max_pool_2x2_row_f32"(
        const mdl_window *g, const float *image, Py_ssize_t oy, Py_ssize_t lo, Py_ssize_t hi,
        float *out_row, int *idx_row)
    void max_pool_2x2_row_f64 "mdl_max_pool_2x2_row_f64"(
        const mdl_window *g, const double *image, Py_ssize_t oy, Py_ssize_t lo,
        Py_ssize_t hi, double *out_row, int *idx_row)
    void unpool_tiled_f32 "mdl_unpool_tiled_f32"(
        const mdl_window *g, const float *dy, const int *argmax, const float *gate, float *dx)
    void unpool_tiled_f64 "mdl_unpool_tiled_f64"(
        const mdl_window *g, const double *dy, const int *argmax, const double *gate,
        double *dx)

    # ---- batch normalization's chunk loops (batchnorm.c): outer rows [o0, o1) ----
    void bn_sums_f32 "mdl_bn_sums_f32"(const float *x, const double *center, Py_ssize_t o0,
                                       Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner,
                                       double *acc)
    void bn_sums_f64 "mdl_bn_sums_f64"(const double *x, const double *center, Py_ssize_t o0,
                                       Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner,
                                       double *acc)
    void bn_grad_sums_f32 "mdl_bn_grad_sums_f32"(
        const float *x, const float *dy, const float *gate, double top, const float *mean,
        Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner, double *acc_dy,
        double *acc_dyx)
    void bn_grad_sums_f64 "mdl_bn_grad_sums_f64"(
        const double *x, const double *dy, const double *gate, double top, const double *mean,
        Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner, double *acc_dy,
        double *acc_dyx)
    void bn_affine_f32 "mdl_bn_affine_f32"(
        const float *x, float *y, const float *m, const float *a, const float *b,
        Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner, int relu, float top)
    void bn_affine_f64 "mdl_bn_affine_f64"(
        const double *x, double *y, const double *m, const double *a, const double *b,
        Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner, int relu, double top)
    void bn_dx_f32 "mdl_bn_dx_f32"(
        const float *x, const float *dy, const float *gate, double top, float *dx,
        const float *m, const float *k1, const float *k2, const float *k3, Py_ssize_t o0,
        Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner)
    void bn_dx_f64 "mdl_bn_dx_f64"(
        const double *x, const double *dy, const double *gate, double top, double *dx,
        const double *m, const double *k1, const double *k2, const double *k3, Py_ssize_t o0,
        Py_ssize_t o1, Py_ssize_t C, Py_ssize_t inner)

    # ---- im2col / col2im inner loops (patches.c): `runs` runs of `width` values ----
    void copy_runs_f32 "mdl_copy_runs_f32"(float *dst, Py_ssize_t dst_stride, const float *src,
                                           Py_ssize_t src_stride, Py_ssize_t runs,
                                           Py_ssize_t width)
    void copy_runs_f64 "mdl_copy_runs_f64"(double *dst, Py_ssize_t dst_stride,
                                           const double *src, Py_ssize_t src_stride,
                                           Py_ssize_t runs, Py_ssize_t width)
    void add_runs_f32 "mdl_add_runs_f32"(float *dst, Py_ssize_t dst_stride, const float *src,
                                         Py_ssize_t src_stride, Py_ssize_t runs,
                                         Py_ssize_t width)
    void add_runs_f64 "mdl_add_runs_f64"(double *dst, Py_ssize_t dst_stride,
                                         const double *src, Py_ssize_t src_stride,
                                         Py_ssize_t runs, Py_ssize_t width)

    # ---- the geometry of a sliding window (convolutions and pooling) ----
    # Filled and checked in one place: window_geometry in _window.pxd.
    ctypedef struct mdl_window:
        Py_ssize_t h, w, c
        Py_ssize_t kh, kw
        Py_ssize_t sh, sw
        Py_ssize_t dh, dw
        Py_ssize_t pad_top, pad_left
        Py_ssize_t out_h, out_w

    # ---- a few-tap convolution fused with its max pooling (conv_pool.c) ----
    # Both return 0, or -1 when out of memory.
    enum:
        MDL_CP_TAPS
    ctypedef struct mdl_conv_pool:
        mdl_window geo
        Py_ssize_t filters, ph, pw, pooled_h, pooled_w
        Py_ssize_t filters_padded, patch_stride
    int conv_max_pool_row_f32 "mdl_conv_max_pool_row_f32"(
        const mdl_conv_pool *g, const float *image, const float *kernel, const float *bias,
        int relu, float *y_row, int *argmax_row, Py_ssize_t py)
    int conv_max_pool_row_f64 "mdl_conv_max_pool_row_f64"(
        const mdl_conv_pool *g, const double *image, const double *kernel, const double *bias,
        int relu, double *y_row, int *argmax_row, Py_ssize_t py)
    int conv_max_pool_grad_image_f32 "mdl_conv_max_pool_grad_image_f32"(
        const mdl_conv_pool *g, const float *image, const float *dy, const int *argmax,
        const float *gate, float *d_kernel, float *d_bias)
    int conv_max_pool_grad_image_f64 "mdl_conv_max_pool_grad_image_f64"(
        const mdl_conv_pool *g, const double *image, const double *dy, const int *argmax,
        const double *gate, double *d_kernel, double *d_bias)

    # ---- the training convolution without patch matrices (conv_direct.c) ----
    # The patch path's bits. All return 0, or -1 when out of memory.
    ctypedef struct mdl_conv_direct:
        mdl_window geo
        Py_ssize_t n, filters, chunk, src_h, src_w
        Py_ssize_t interior_lo, interior_hi
        int interior_by_tap
    int conv_direct_forward_f32 "mdl_conv_direct_forward_f32"(
        const mdl_conv_direct *g, const float *x, float *padded, const float *kernel, float *z)
    int conv_direct_forward_f64 "mdl_conv_direct_forward_f64"(
        const mdl_conv_direct *g, const double *x, double *padded, const double *kernel,
        double *z)
    int conv_direct_backward_f32 "mdl_conv_direct_backward_f32"(
        const mdl_conv_direct *g, const float *x, float *padded, int padded_ready,
        const float *dz, const float *kernel, float *d_kernel, float *dx)
    int conv_direct_backward_f64 "mdl_conv_direct_backward_f64"(
        const mdl_conv_direct *g, const double *x, double *padded, int padded_ready,
        const double *dz, const double *kernel, double *d_kernel, double *dx)

    # ---- the shared-memory allreduce of minidl.distributed (shm_allreduce.c) ----
    ctypedef struct mdl_shm_group:
        int ranks, rank
        char **segments
        Py_ssize_t slot_offset, result_offset
    int shm_allreduce_f32 "mdl_shm_allreduce_f32"(
        const mdl_shm_group *g, const float *inp, float *out, Py_ssize_t n, int average,
        unsigned long long epoch, double timeout_seconds)
    int shm_allreduce_f64 "mdl_shm_allreduce_f64"(
        const mdl_shm_group *g, const double *inp, double *out, Py_ssize_t n, int average,
        unsigned long long epoch, double timeout_seconds)
