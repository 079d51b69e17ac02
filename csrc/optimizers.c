/* optimizers.c - fused optimizer updates: one pass over a parameter, its gradient and slots.
 *
 * The loops are plain C that the compiler vectorises, compiled once per architecture of the
 * kernel tables (arch_versions.inc: baseline x86-64, AVX2 and AVX-512 under target
 * attributes); the public functions run the version of the active table (kernels.h), so
 * MINIDL_ARCH governs these as it does the GEMM. The updates are divider- and cache-bound,
 * so the wide versions mostly buy wider sqrt and divide instructions.
 *
 * FMA contraction is off in this file: every version then performs the same IEEE operations
 * in the same order, and the untested versions on a given machine compute exactly what the
 * tested one does. Validation happens in the Cython caller; nothing here checks arguments.
 * Denormals are flushed to zero during the updates (see mdl_flush_denormals below).
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__GNUC__)
#define MDL_INLINE static inline __attribute__((always_inline))
#else
#define MDL_INLINE static inline
#endif

/* Denormals are flushed to zero inside the updates (FTZ and DAZ, as TensorFlow runs on CPU).
 * An x86 core takes a ~100-cycle assist for each denormal operand or result, and they do
 * arise: once a weight's gradient stays 0 (a dead ReLU unit, a pixel that is always blank),
 * Adam's first moment decays by beta_1 per step into the denormals and then sticks there,
 * at k * 2^-149 for k <= 4, where m * (1 - beta_1) rounds to 0. That made the update of the
 * reference MLP's first layer ten times slower after ~600 steps. Results differ from strict
 * IEEE only where a value would be below FLT_MIN (DBL_MIN) in magnitude. The caller's mode
 * is restored on return. Other architectures run in their default mode. */
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <xmmintrin.h>
typedef unsigned int mdl_fp_mode;
#define MDL_MXCSR_FTZ_DAZ 0x8040u
MDL_INLINE mdl_fp_mode mdl_flush_denormals(void) {
    mdl_fp_mode mode = _mm_getcsr();
    _mm_setcsr(mode | MDL_MXCSR_FTZ_DAZ);
    return mode;
}
MDL_INLINE void mdl_restore_fp_mode(mdl_fp_mode mode) { _mm_setcsr(mode); }
#else
typedef int mdl_fp_mode;
MDL_INLINE mdl_fp_mode mdl_flush_denormals(void) { return 0; }
MDL_INLINE void mdl_restore_fp_mode(mdl_fp_mode mode) { (void)mode; }
#endif

#define OPT_CAT_(a, b) a##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)

#define ARCH_VERSIONS_OF "optimizers.inc"

#define OPT_T float
#define OPT_TYPE_SFX _f32
#define OPT_SQRT sqrtf
#define OPT_INF HUGE_VALF
#include "arch_versions.inc"
#undef OPT_T
#undef OPT_TYPE_SFX
#undef OPT_SQRT
#undef OPT_INF

#define OPT_T double
#define OPT_TYPE_SFX _f64
#define OPT_SQRT sqrt
#define OPT_INF HUGE_VAL
#include "arch_versions.inc"
#undef OPT_T
#undef OPT_TYPE_SFX
#undef OPT_SQRT
#undef OPT_INF

#define OPT_KERNELS(ARCH, SFX)                                                              \
    {ARCH,                                                                                  \
     opt_sgd_f32##SFX, opt_sgd_f64##SFX, opt_adam_f32##SFX, opt_adam_f64##SFX,              \
     opt_rmsprop_f32##SFX, opt_rmsprop_f64##SFX, opt_adagrad_f32##SFX, opt_adagrad_f64##SFX,\
     opt_nadam_f32##SFX, opt_nadam_f64##SFX,                                                \
     opt_sum_of_squares_f32##SFX, opt_sum_of_squares_f64##SFX}
const mdl_optimizer_kernels mdl_optimizers_generic = OPT_KERNELS(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
const mdl_optimizer_kernels mdl_optimizers_avx2 = OPT_KERNELS(MDL_ARCH_AVX2, _avx2);
const mdl_optimizer_kernels mdl_optimizers_avx512 = OPT_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version. */
#define OPT_ACTIVE (mdl_active_kernels()->optimizers)

void mdl_sgd_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                 const float *MDL_RESTRICT grad, float *MDL_RESTRICT velocity) {
    OPT_ACTIVE->sgd_f32(n, h, param, grad, velocity);
}

void mdl_sgd_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                 const double *MDL_RESTRICT grad, double *MDL_RESTRICT velocity) {
    OPT_ACTIVE->sgd_f64(n, h, param, grad, velocity);
}

void mdl_adam_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                  const float *MDL_RESTRICT grad, float *MDL_RESTRICT m, float *MDL_RESTRICT v,
                  float *MDL_RESTRICT v_hat) {
    OPT_ACTIVE->adam_f32(n, h, param, grad, m, v, v_hat);
}

void mdl_adam_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                  const double *MDL_RESTRICT grad, double *MDL_RESTRICT m,
                  double *MDL_RESTRICT v, double *MDL_RESTRICT v_hat) {
    OPT_ACTIVE->adam_f64(n, h, param, grad, m, v, v_hat);
}

void mdl_rmsprop_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                     const float *MDL_RESTRICT grad, float *MDL_RESTRICT velocity,
                     float *MDL_RESTRICT momentum_buffer, float *MDL_RESTRICT average_grad) {
    OPT_ACTIVE->rmsprop_f32(n, h, param, grad, velocity, momentum_buffer, average_grad);
}

void mdl_rmsprop_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                     const double *MDL_RESTRICT grad, double *MDL_RESTRICT velocity,
                     double *MDL_RESTRICT momentum_buffer, double *MDL_RESTRICT average_grad) {
    OPT_ACTIVE->rmsprop_f64(n, h, param, grad, velocity, momentum_buffer, average_grad);
}

void mdl_adagrad_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                     const float *MDL_RESTRICT grad, float *MDL_RESTRICT accumulator) {
    OPT_ACTIVE->adagrad_f32(n, h, param, grad, accumulator);
}

void mdl_adagrad_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                     const double *MDL_RESTRICT grad, double *MDL_RESTRICT accumulator) {
    OPT_ACTIVE->adagrad_f64(n, h, param, grad, accumulator);
}

void mdl_nadam_f32(ptrdiff_t n, const mdl_optim_hyper *h, float *MDL_RESTRICT param,
                   const float *MDL_RESTRICT grad, float *MDL_RESTRICT m, float *MDL_RESTRICT v) {
    OPT_ACTIVE->nadam_f32(n, h, param, grad, m, v);
}

void mdl_nadam_f64(ptrdiff_t n, const mdl_optim_hyper *h, double *MDL_RESTRICT param,
                   const double *MDL_RESTRICT grad, double *MDL_RESTRICT m,
                   double *MDL_RESTRICT v) {
    OPT_ACTIVE->nadam_f64(n, h, param, grad, m, v);
}

double mdl_sum_of_squares_f32(ptrdiff_t n, const float *x) {
    return OPT_ACTIVE->sum_of_squares_f32(n, x);
}

double mdl_sum_of_squares_f64(ptrdiff_t n, const double *x) {
    return OPT_ACTIVE->sum_of_squares_f64(n, x);
}
