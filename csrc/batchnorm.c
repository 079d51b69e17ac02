/* batchnorm.c - the chunk loops of batch normalization (statistics, output, gradients).
 *
 * minidl/_core/_normalization.pyx checks the arguments, plans the chunks and runs them (in
 * parallel above a size, partial sums added in chunk order); the loops over one chunk of
 * whole outer rows are here, in batchnorm.inc, for float and double, once per architecture
 * (arch_versions.inc), the active kernel table choosing the version (kernels.h). They are in
 * C only to be compiled for AVX-512 and AVX2 as well as baseline x86-64: Cython modules are
 * built for the baseline, whose 2-wide double sums made batch normalization a third of a
 * MobileNetV2 training step.
 *
 * Every version makes the same IEEE operations in the same order (no FMA contraction: the
 * build's -ffp-contract=off; sums per channel in row order, across channels in vector
 * lanes), so every architecture gives the same bits, and the bits of the Cython loops these
 * replaced.
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

#define BN_CAT_(a, b) a##b
#define BN_CAT(a, b) BN_CAT_(a, b)

#define ARCH_VERSIONS_OF "batchnorm.inc"

#define BN_T float
#define BN_BLEND mdl_blendf
#define BN_TYPE_SFX _f32
#include "arch_versions.inc"
#undef BN_T
#undef BN_BLEND
#undef BN_TYPE_SFX

#define BN_T double
#define BN_BLEND mdl_blend
#define BN_TYPE_SFX _f64
#include "arch_versions.inc"
#undef BN_T
#undef BN_BLEND
#undef BN_TYPE_SFX

#define BN_KERNELS(ARCH, SFX)                                                               \
    {ARCH, bn_bn_sums_f32##SFX, bn_bn_sums_f64##SFX, bn_bn_grad_sums_f32##SFX,              \
     bn_bn_grad_sums_f64##SFX, bn_bn_affine_f32##SFX, bn_bn_affine_f64##SFX,                \
     bn_bn_dx_f32##SFX, bn_bn_dx_f64##SFX}
const mdl_batchnorm_kernels mdl_batchnorm_generic = BN_KERNELS(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
const mdl_batchnorm_kernels mdl_batchnorm_avx2 = BN_KERNELS(MDL_ARCH_AVX2, _avx2);
const mdl_batchnorm_kernels mdl_batchnorm_avx512 = BN_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version. */
#define BN_PUBLIC(T, SFX)                                                                   \
    void mdl_bn_sums##SFX(const T *x, const double *center, ptrdiff_t o0, ptrdiff_t o1,    \
                          ptrdiff_t C, ptrdiff_t inner, double *acc) {                      \
        mdl_active_kernels()->batchnorm->bn_sums##SFX(x, center, o0, o1, C, inner, acc);    \
    }                                                                                       \
    void mdl_bn_grad_sums##SFX(const T *x, const T *dy, const T *gate, double top,          \
                               const T *mean, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C,      \
                               ptrdiff_t inner, double *acc_dy, double *acc_dyx) {          \
        mdl_active_kernels()->batchnorm->bn_grad_sums##SFX(x, dy, gate, top, mean, o0, o1,  \
                                                           C, inner, acc_dy, acc_dyx);      \
    }                                                                                       \
    void mdl_bn_affine##SFX(const T *x, T *y, const T *m, const T *a, const T *b,           \
                            ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t C, ptrdiff_t inner,       \
                            int relu, T top) {                                              \
        mdl_active_kernels()->batchnorm->bn_affine##SFX(x, y, m, a, b, o0, o1, C, inner,    \
                                                        relu, top);                         \
    }                                                                                       \
    void mdl_bn_dx##SFX(const T *x, const T *dy, const T *gate, double top, T *dx,          \
                        const T *m, const T *k1, const T *k2, const T *k3, ptrdiff_t o0,    \
                        ptrdiff_t o1, ptrdiff_t C, ptrdiff_t inner) {                       \
        mdl_active_kernels()->batchnorm->bn_dx##SFX(x, dy, gate, top, dx, m, k1, k2, k3,    \
                                                    o0, o1, C, inner);                      \
    }
BN_PUBLIC(float, _f32)
BN_PUBLIC(double, _f64)
