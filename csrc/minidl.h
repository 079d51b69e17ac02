/* minidl.h - the public C API of minidl's compiled core.
 *
 * Layering: cpu.c detects the instruction sets once and picks a kernel table, through which
 * every function below that has a version per instruction set runs (kernels.h); gemm.c is
 * the BLIS-style driver, which knows nothing of intrinsics; gemm_<isa>.c hold the register
 * micro-kernels, one file per instruction set. Nothing here includes Python.h, allocates in
 * an inner loop, or validates arguments: the Cython layer has done that before any call.
 *
 * Matrices are described by a pointer and two strides in elements (rs = row stride,
 * cs = column stride), so transposes and numpy views are expressed without copies.
 */
#ifndef MINIDL_H
#define MINIDL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The core is one shared library (libminidl_core) that every extension module links; its
 * files are compiled with hidden visibility, and only what this header declares is exported
 * from it. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* ---- instruction sets and kernel selection (cpu.c) ---- */

typedef enum { MDL_ARCH_GENERIC = 0, MDL_ARCH_AVX2 = 1, MDL_ARCH_AVX512 = 2, MDL_ARCH_COUNT } mdl_arch;

/* Bit set of the architectures this CPU and OS can run (bit i = mdl_arch i). */
int mdl_supported_archs(void);
/* Select the kernel table, which every kernel below with per-ISA versions runs from (the
 * GEMM, the convolutions, the optimizer updates, the pooling and im2col loops, the
 * recurrent gate passes); returns 0,
 * or -1 when the CPU lacks that architecture. */
int mdl_set_arch(mdl_arch arch);
mdl_arch mdl_get_arch(void);
const char *mdl_arch_name(mdl_arch arch);
/* Best supported architecture. */
mdl_arch mdl_best_arch(void);
/* The families of kernels a table holds a version of (kernels.h): gemm (with the direct
 * convolution's micro-kernels), conv_pool, optimizers, pooling (max pooling's hot loops),
 * patches (im2col / col2im's), recurrent (the recurrent layers' gate passes), batchnorm
 * (batch normalization's chunk loops).
 * mdl_kernel_version: the architecture of the version of a
 * family that the active table runs, read from that version's own tag (MDL_ARCH_COUNT for
 * an unknown family); mdl_family_name: "gemm", ..., or "unknown". */
typedef enum {
    MDL_FAMILY_GEMM = 0, MDL_FAMILY_CONV_POOL, MDL_FAMILY_OPTIMIZERS, MDL_FAMILY_POOLING,
    MDL_FAMILY_PATCHES, MDL_FAMILY_RECURRENT, MDL_FAMILY_BATCHNORM, MDL_FAMILY_COUNT
} mdl_family;
mdl_arch mdl_kernel_version(mdl_family family);
const char *mdl_family_name(mdl_family family);

/* ---- threads (cpu.c) ---- */

/* The one thread count every parallel region of minidl uses: 1 to mdl_max_threads(),
 * MDL_THREADS_PER_PROC per processor. More threads than processors only add waiting (each
 * takes an equal static share), and an unbounded count reaches failures inside libgomp: it
 * puts ~128 bytes per new thread of a team on the caller's stack (alloca in
 * gomp_team_start), so 65536 threads overflow an 8 MiB stack, and it ends the process when
 * a thread cannot be created. mdl_set_num_threads clamps to the bound; the Python layer
 * refuses or warns first. */
#define MDL_THREADS_PER_PROC 4
int mdl_get_num_threads(void);
void mdl_set_num_threads(int n);
/* The threads a call of `work` multiply-adds in `items` independent pieces should use:
 * min(the set count, items, work / MDL_WORK_PER_THREAD), at least 1. Half a million
 * multiply-adds is about 10 us of one AVX-512 core, several times what opening and closing
 * a parallel region costs, so a product too small to keep 16 threads busy uses fewer. */
#define MDL_WORK_PER_THREAD (512.0 * 1024.0)
int mdl_threads_for(double work, double items);
int mdl_max_threads(void);
/* The count the OpenMP runtime would use by default (OMP_NUM_THREADS, else the processor
 * count), unclamped; 1 in a serial build. */
int mdl_default_num_threads(void);
/* How many threads, the caller included, could run at once, up to n: starts n - 1 threads
 * with the stack size libgomp gives its workers, all alive together, then ends them. Below
 * n when the process or user thread limit (RLIMIT_NPROC) or memory for their stacks runs
 * out; an OpenMP team of that size would then end the process. */
int mdl_startable_threads(int n);
/* Number of processors OpenMP sees (1 in a serial build). */
int mdl_num_procs(void);
int mdl_have_openmp(void);
const char *mdl_compiler(void);

/* ---- GEMM (gemm.c) ----
 * C = alpha * A @ B + beta * C, where A is m x k with strides (rs_a, cs_a), B is k x n with
 * strides (rs_b, cs_b) and C is m x n with strides (rs_c, cs_c). A transposed operand is the
 * same memory with its strides swapped. When beta == 0, C is written without being read,
 * so NaN or garbage in C does not propagate. C must not overlap A or B.
 * The result does not depend on the thread count. Returns 0, or -1 when the packing
 * buffers could not be allocated (C is then unspecified).
 */
int mdl_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
               const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
               const float *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
               float beta, float *c, ptrdiff_t rs_c, ptrdiff_t cs_c);
int mdl_dgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
               const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
               const double *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
               double beta, double *c, ptrdiff_t rs_c, ptrdiff_t cs_c);

/* ---- optimizer updates (optimizers.c) ----
 * One pass over n elements of a parameter, its gradient and its slots, updated in place.
 * Per element: g = grad * grad_scale, clipped to [-clip_value, clip_value] when
 * clip_value > 0; p -= p * weight_decay * decay_lr when weight_decay != 0 (Keras' decoupled
 * decay); then the optimizer's rule. The double scalars are rounded to the arrays' precision
 * before the loop, as Keras casts them to the variable's dtype. Optional slots are NULL when
 * off. No array may overlap another. Every instruction-set version performs the same IEEE
 * operations in the same order (no FMA contraction), so results never depend on the CPU.
 * On x86 the updates run with denormals flushed to zero (FTZ/DAZ, as TensorFlow does on CPU;
 * see optimizers.c), and restore the caller's floating-point mode on return.
 */
#if defined(__cplusplus) || defined(_MSC_VER)
#define MDL_RESTRICT __restrict
#else
#define MDL_RESTRICT restrict
#endif

typedef struct {
    double lr;            /* learning rate; Adam: the bias-corrected step size alpha */
    double decay_lr;      /* learning rate of the weight decay term */
    double weight_decay;  /* 0: no decay */
    double grad_scale;
    double clip_value;    /* <= 0: no clipping */
    double momentum;      /* SGD, RMSprop */
    double beta_1;        /* Adam, Nadam; RMSprop: rho */
    double beta_2;        /* Adam, Nadam */
    double epsilon;
    double m_coef;        /* Nadam: m_hat = m_coef * m + g_coef * g */
    double g_coef;
    double v_div;         /* Nadam: v_hat = v / v_div */
    int nesterov;         /* SGD */
} mdl_optim_hyper;

/* SGD: velocity = momentum * velocity - lr * g; p += velocity (nesterov:
 * p += momentum * velocity - lr * g). velocity NULL: p -= lr * g. */
void mdl_sgd_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                 const float *MDL_RESTRICT grad, float *MDL_RESTRICT velocity);
void mdl_sgd_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                 const double *MDL_RESTRICT grad, double *MDL_RESTRICT velocity);
/* Adam/AdamW: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
 * p -= lr * m / (sqrt(v) + epsilon). v_hat (amsgrad, else NULL) keeps max(v_hat, v),
 * which replaces v in the denominator. */
void mdl_adam_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                  const float *MDL_RESTRICT grad, float *MDL_RESTRICT m, float *MDL_RESTRICT v,
                  float *MDL_RESTRICT v_hat);
void mdl_adam_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                  const double *MDL_RESTRICT grad, double *MDL_RESTRICT m,
                  double *MDL_RESTRICT v, double *MDL_RESTRICT v_hat);
/* RMSprop: v = rho v + (1 - rho) g^2 (rho in beta_1); d = lr g / sqrt(v + eps), centered
 * (average_grad): a = rho a + (1 - rho) g, d = lr g / sqrt(v - a^2 + eps); momentum_buffer:
 * b = momentum b + d, p -= b; else p -= d. */
void mdl_rmsprop_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                     const float *MDL_RESTRICT grad, float *MDL_RESTRICT velocity,
                     float *MDL_RESTRICT momentum_buffer, float *MDL_RESTRICT average_grad);
void mdl_rmsprop_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                     const double *MDL_RESTRICT grad, double *MDL_RESTRICT velocity,
                     double *MDL_RESTRICT momentum_buffer, double *MDL_RESTRICT average_grad);
/* Adagrad: acc += g^2; p -= lr g / sqrt(acc + eps). */
void mdl_adagrad_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                     const float *MDL_RESTRICT grad, float *MDL_RESTRICT accumulator);
void mdl_adagrad_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                     const double *MDL_RESTRICT grad, double *MDL_RESTRICT accumulator);
/* Nadam: m, v as in Adam; p -= lr (m_coef m + g_coef g) / (sqrt(v / v_div) + eps). */
void mdl_nadam_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                   const float *MDL_RESTRICT grad, float *MDL_RESTRICT m, float *MDL_RESTRICT v);
void mdl_nadam_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                   const double *MDL_RESTRICT grad, double *MDL_RESTRICT m,
                   double *MDL_RESTRICT v);
/* sum(x^2) in double over MDL_SUMSQ_LANES interleaved partial sums (element i goes to lane
 * i % lanes), folded pairwise in a fixed order: the bits depend on n and x only. */
#define MDL_SUMSQ_LANES 32
double mdl_sum_of_squares_f32(ptrdiff_t n, const float *x);
double mdl_sum_of_squares_f64(ptrdiff_t n, const double *x);

/* ---- the geometry of a sliding window: convolution and pooling ----
 * One image (h, w, c) of a channels-last batch; a (kh, kw) window moved by strides (sh, sw),
 * its taps dilation (dh, dw) apart (1 for pooling); pad_top / pad_left rows / columns of
 * zeros (for pooling: of nothing) before the image; out_h x out_w window positions. The
 * padding after the image is implied by out_h and out_w. One struct for every kernel that
 * slides a window, C and Cython (minidl/_core/_window.pxd), filled and checked in one place:
 * window_geometry() in _window.pxd, from a layer's kernel_size, strides, dilation, pads and
 * output size. The batch size travels beside it. */
typedef struct {
    ptrdiff_t h, w, c;
    ptrdiff_t kh, kw;
    ptrdiff_t sh, sw;
    ptrdiff_t dh, dw;
    ptrdiff_t pad_top, pad_left;
    ptrdiff_t out_h, out_w;
} mdl_window;

/* ---- max pooling hot loops (pooling.c; the general kernels are in
 * minidl/_core/_pooling.pyx) ----
 * One output row oy of a 2x2 max pooling (g: its window geometry), columns [lo, hi), whose
 * windows lie inside the image: rows oy * sh - pad_top and the next, columns
 * ox * sw - pad_left and the next. out_row and idx_row point at the row's column 0; idx
 * gets the winner's index within the image. */
void mdl_max_pool_2x2_row_f32(const mdl_window *g, const float *image, ptrdiff_t oy,
                              ptrdiff_t lo, ptrdiff_t hi, float *out_row, int *idx_row);
void mdl_max_pool_2x2_row_f64(const mdl_window *g, const double *image, ptrdiff_t oy,
                              ptrdiff_t lo, ptrdiff_t hi, double *out_row, int *idx_row);
/* One image of the backward of a max pooling whose (kh x kw) windows tile it from the top
 * left (strides = pool size, no padding): dx (h, w, c), fully written, holds dy at each
 * window's argmax (where gate > 0, when gate is not NULL) and 0 elsewhere. */
void mdl_unpool_tiled_f32(const mdl_window *g, const float *dy, const int *argmax,
                          const float *gate, float *dx);
void mdl_unpool_tiled_f64(const mdl_window *g, const double *dy, const int *argmax,
                          const double *gate, double *dx);

/* ---- im2col / col2im inner loops (patches.c) ----
 * For r < runs, in order, and j < width: dst[r * dst_stride + j] = (or +=)
 * src[r * src_stride + j]. dst must not overlap src; runs of dst may overlap each other
 * (col2im with strides below the kernel's width). */
void mdl_copy_runs_f32(float *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                       const float *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                       ptrdiff_t width);
void mdl_copy_runs_f64(double *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                       const double *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                       ptrdiff_t width);
void mdl_add_runs_f32(float *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                      const float *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                      ptrdiff_t width);
void mdl_add_runs_f64(double *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                      const double *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                      ptrdiff_t width);

/* ---- batch normalization's chunk loops (batchnorm.c; the checks, the chunk plan, the
 * threads and the per-channel constants are in minidl/_core/_normalization.pyx) ----
 * x (and dy, gate, y, dx) read as (outer, C, inner); each call covers the outer rows
 * [o0, o1), one chunk. Per-channel sums are in double, each channel's values added in
 * order (rows, then inner positions: with inner > 1 a row's run is summed on its own, then
 * added); every version gives the same bits. The per-channel arrays must not overlap the
 * data; y may be x and dx may be dy.
 *   mdl_bn_sums: acc[c] += sum of x (center NULL) or of (x - center[c])^2, in double.
 *   mdl_bn_grad_sums: acc_dy[c] += sum of g, acc_dyx[c] += sum of g * (x - mean[c]) (the
 *     difference in the data's precision), g = dy, or with gate: dy where gate > 0 (top
 *     infinite: a ReLU) or dy * (0 < gate < top) (a capped ReLU, ReLU6), else 0.
 *   mdl_bn_affine: y = (x - m[c]) * a[c] + b[c]; with relu, then 0 below 0 and top above
 *     top (NaN stays NaN).
 *   mdl_bn_dx: dx = k1[c] * (g - k2[c] - (x - m[c]) * k3[c]), g as in mdl_bn_grad_sums. */
void mdl_bn_sums_f32(const float *x, const double *center, ptrdiff_t o0, ptrdiff_t o1,
                     ptrdiff_t C, ptrdiff_t inner, double *acc);
void mdl_bn_sums_f64(const double *x, const double *center, ptrdiff_t o0, ptrdiff_t o1,
                     ptrdiff_t C, ptrdiff_t inner, double *acc);
void mdl_bn_grad_sums_f32(const float *x, const float *dy, const float *gate, double top,
                          const float *mean, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C,
                          ptrdiff_t inner, double *acc_dy, double *acc_dyx);
void mdl_bn_grad_sums_f64(const double *x, const double *dy, const double *gate, double top,
                          const double *mean, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C,
                          ptrdiff_t inner, double *acc_dy, double *acc_dyx);
void mdl_bn_affine_f32(const float *x, float *y, const float *m, const float *a,
                       const float *b, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C,
                       ptrdiff_t inner, int relu, float top);
void mdl_bn_affine_f64(const double *x, double *y, const double *m, const double *a,
                       const double *b, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C,
                       ptrdiff_t inner, int relu, double top);
void mdl_bn_dx_f32(const float *x, const float *dy, const float *gate, double top, float *dx,
                   const float *m, const float *k1, const float *k2, const float *k3,
                   ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C, ptrdiff_t inner);
void mdl_bn_dx_f64(const double *x, const double *dy, const double *gate, double top,
                   double *dx, const double *m, const double *k1, const double *k2,
                   const double *k3, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C, ptrdiff_t inner);

/* ---- a convolution with few taps fused with its max pooling (conv_pool.c) ----
 * Geometry: geo, the convolution's window over the input images, whose output z is
 * (out_h, out_w, filters); max pooling windows (ph, pw) with strides equal to their size and
 * no padding, giving (pooled_h, pooled_w). Set by the caller: filters_padded, filters rounded
 * up to 64 bytes of elements (the kernel's row stride); patch_stride, kh * kw * c rounded up
 * to MDL_CP_TAPS. */
#define MDL_CP_TAPS 9
typedef struct {
    mdl_window geo;
    ptrdiff_t filters, ph, pw, pooled_h, pooled_w;
    ptrdiff_t filters_padded, patch_stride;
} mdl_conv_pool;
/* Pooled row py of one image: y_row and argmax_row (pooled_w, filters) get the maximum m of
 * each window of z = conv(image, kernel) (no bias) and its index within z's image, as
 * MaxPooling computes them; y_row then holds m + bias (bias may be NULL) and, with relu,
 * (v < 0 ? 0 : v) of that: the ReLU layer's bits, since both commute with the maximum.
 * kernel: (kh * kw * c, filters_padded), zero past `filters`. Returns 0, or -1 when out of
 * memory. Both use mdl_scratch slots 0 and 1. */
int mdl_conv_max_pool_row_f32(const mdl_conv_pool *g, const float *image, const float *kernel,
                              const float *bias, int relu, float *y_row, int *argmax_row,
                              ptrdiff_t py);
int mdl_conv_max_pool_row_f64(const mdl_conv_pool *g, const double *image,
                              const double *kernel, const double *bias, int relu,
                              double *y_row, int *argmax_row, ptrdiff_t py);
/* The kernel's gradient (kh * kw * c, filters) and the bias's (filters), overwritten, of
 * one image, from the pooled gradient dy of relu(pooled + bias) (gate: that output; dy
 * counts where it is positive) and the forward pass's argmax; an index outside its window
 * matches nothing. Returns 0, or -1 when out of memory. */
int mdl_conv_max_pool_grad_image_f32(const mdl_conv_pool *g, const float *image,
                                     const float *dy, const int *argmax, const float *gate,
                                     float *d_kernel, float *d_bias);
int mdl_conv_max_pool_grad_image_f64(const mdl_conv_pool *g, const double *image,
                                     const double *dy, const int *argmax, const double *gate,
                                     double *d_kernel, double *d_bias);

/* ---- a training convolution without patch matrices (conv_direct.c) ----
 * The linear part of a convolution (channels-last images, a (kh * kw * c, filters) kernel)
 * and its gradients, computed from the image itself, with the bits of the patch path of
 * minidl/_core/_convolution.pyx (im2col, then the GEMM of each chunk of `chunk` images;
 * col2im of each chunk's patch gradient). Geometry: geo, the window over each of the n
 * images, the filters, and:
 *   chunk: the images per GEMM of that path (its k-blocks depend on the GEMM's shape);
 *   src_h, src_w: the rows and columns the windows reach, (out_h - 1) * sh + (kh - 1) * dh
 *       + 1 and the same across;
 *   interior_lo, interior_hi: col2im's interior output columns, whose windows lie inside the
 *       input horizontally (interior in _window.pxd); interior_by_tap: col2im adds those
 *       columns tap by tap (kx ascending) rather than column by column.
 * The windows are read from `padded`, a (n, src_h, src_w, c) copy of x with zeros where
 * they reach outside it, which the forward pass writes (and the backward pass too, unless
 * padded_ready says it holds the forward's copy of this x); or, where `padded` is NULL (no
 * padding, src_h <= h and src_w <= w), from x itself. The bits depend on neither the
 * thread count nor that choice. All return 0, or -1 when out of memory. */
typedef struct {
    mdl_window geo;
    ptrdiff_t n, filters, chunk, src_h, src_w;
    ptrdiff_t interior_lo, interior_hi;
    int interior_by_tap;
} mdl_conv_direct;
/* z (n * out_h * out_w, filters) = the convolution of x (no bias). */
int mdl_conv_direct_forward_f32(const mdl_conv_direct *g, const float *x, float *padded,
                                const float *kernel, float *z);
int mdl_conv_direct_forward_f64(const mdl_conv_direct *g, const double *x, double *padded,
                                const double *kernel, double *z);
/* d_kernel (kh * kw * c, filters) = the kernel's gradient from dz (n * out_h * out_w,
 * filters); and dx (n, h, w, c), when not NULL, the input's. Both overwritten. */
int mdl_conv_direct_backward_f32(const mdl_conv_direct *g, const float *x, float *padded,
                                 int padded_ready, const float *dz, const float *kernel,
                                 float *d_kernel, float *dx);
int mdl_conv_direct_backward_f64(const mdl_conv_direct *g, const double *x, double *padded,
                                 int padded_ready, const double *dz, const double *kernel,
                                 double *d_kernel, double *dx);

/* ---- recurrent layers' per-step gate passes (recurrent.c; the time loop, the GEMMs and
 * every other activation or dtype are in minidl/_core/_recurrent.pyx) ----
 * One sample's row of one step, float32, with activation tanh and recurrent activation
 * sigmoid; `units` U values per gate, gates in Keras' order, no argument overlapping another.
 * Forward: `gates` holds the step's pre-activations (the input projection plus, except for
 * GRU, the recurrent one) and gets the activated gates.
 *   LSTM (gates i, f, c, o: 4U): c = f * c + i * tanh(.), ac = tanh(c), h = o * ac; c is
 *     the cell state IN and OUT, h OUT.
 *   GRU, reset_after (z, r, hh: 3U): rproj (3U) = h @ recurrent_kernel, rbias (3U) its bias;
 *     rh = rproj_h + rbias_h, hh = tanh(x_h + b_h + r * rh), h = z * h + (1 - z) * hh; h
 *     is the state IN and OUT.
 *   SimpleRNN (U): gates = h = tanh(gates + bias).
 * Backward, from the forward's saved values: the new state's gradient is dh + carry (+ gy,
 * the step's output gradient, when not NULL); dgates gets the gradients of the
 * pre-activations and dh the previous state's gradient through the cell (0 for LSTM and
 * SimpleRNN, whose state reaches the previous one only through the recurrent GEMM); LSTM's
 * dc the previous cell state's (IN: the new one's); GRU's drproj (3U) the gradient of rproj.
 * Values below 2^-100 in magnitude are flushed to zero. Every instruction-set version gives
 * the same bits. */
void mdl_lstm_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                              const float *MDL_RESTRICT bias, float *MDL_RESTRICT c,
                              float *MDL_RESTRICT ac, float *MDL_RESTRICT h);
void mdl_lstm_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                               const float *MDL_RESTRICT c_prev, const float *MDL_RESTRICT ac,
                               const float *MDL_RESTRICT gy, const float *MDL_RESTRICT carry,
                               float *MDL_RESTRICT dgates, float *MDL_RESTRICT dh,
                               float *MDL_RESTRICT dc);
void mdl_gru_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                             const float *MDL_RESTRICT bias, const float *MDL_RESTRICT rproj,
                             const float *MDL_RESTRICT rbias, float *MDL_RESTRICT rh,
                             float *MDL_RESTRICT h);
void mdl_gru_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                              const float *MDL_RESTRICT h_prev, const float *MDL_RESTRICT rh,
                              const float *MDL_RESTRICT gy, const float *MDL_RESTRICT carry,
                              float *MDL_RESTRICT dgates, float *MDL_RESTRICT drproj,
                              float *MDL_RESTRICT dh);
void mdl_simple_rnn_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                                    const float *MDL_RESTRICT bias, float *MDL_RESTRICT h);
void mdl_simple_rnn_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                                     const float *MDL_RESTRICT gy,
                                     const float *MDL_RESTRICT carry,
                                     float *MDL_RESTRICT dgates, float *MDL_RESTRICT dh);

/* ---- the shared-memory allreduce of minidl.distributed (shm_allreduce.c) ----
 *
 * The ranks of one machine, each with a segment of a shared window: at offset 0 its arrival
 * counter (uint64, zero before the first call, on a cache line of its own), at slot_offset
 * its slot (n values), at result_offset its result chunk (ceil(n / ranks) values).
 * mdl_shm_allreduce_*: every rank calls it at once with the same n, average and epoch (0,
 * then 2 more per call); `out` gets the rank-ordered sum (mean when `average`) of every
 * rank's `in` (which may be the rank's own slot: nothing is copied in then; `out` may be
 * `in`). Returns 0, or 1 / 2 when the first / second wait passed `timeout_seconds` (another
 * rank stopped): the job must then be aborted, as the window's state is undefined. */
typedef struct {
    int ranks, rank;
    char *const *segments;
    ptrdiff_t slot_offset, result_offset;
} mdl_shm_group;
int mdl_shm_allreduce_f32(const mdl_shm_group *g, const float *in, float *out, ptrdiff_t n,
                          int average, uint64_t epoch, double timeout_seconds);
int mdl_shm_allreduce_f64(const mdl_shm_group *g, const double *in, double *out, ptrdiff_t n,
                          int average, uint64_t epoch, double timeout_seconds);

/* Thread-local scratch buffer number `slot` (0, 1 or 2) of at least `bytes`, 64-byte
 * aligned, kept between calls so that steady-state work allocates nothing; NULL when out of
 * memory. Slots 0 and 1: the GEMM's packing and conv_pool.c's band buffers, each thread its
 * own; conv_direct.c's backward pass also puts its threads' partial kernel gradients in its
 * caller's slot 0, which no GEMM uses until it returns. Slot 2: buffers a kernel's calling thread takes before its parallel region and shares
 * with it (the Cython convolution kernels, conv_direct.c's tables); nothing else uses it, so
 * they survive the GEMMs and band loops they call. */
void *mdl_scratch(int slot, size_t bytes);

/* Description of the active kernels, e.g. "avx512 sgemm 12x32, dgemm 12x16". */
const char *mdl_kernel_description(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
