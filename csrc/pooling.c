/* pooling.c - the hot loops of max pooling over channels-last images.
 *
 * minidl/_core/_pooling.pyx holds the pooling kernels for every geometry; the two loops here
 * (in pooling.inc, for float and double) are the common 2x2 window (forward) and the
 * one-pass backward of windows that tile the image. They are in C only to be compiled for
 * AVX-512 and AVX2 as well as baseline x86-64 (arch_versions.inc), the active kernel table
 * choosing the version (kernels.h): Cython modules are built for the baseline, whose 4-wide
 * selects made these loops a tenth of a CNN training step. Both only compare and select, so
 * every version gives the same bits.
 */
#include <stddef.h>

#include "kernels.h"

#define POOL_CAT_(a, b) a##b
#define POOL_CAT(a, b) POOL_CAT_(a, b)

#define ARCH_VERSIONS_OF "pooling.inc"

#define POOL_T float
#define POOL_TYPE_SFX _f32
#include "arch_versions.inc"
#undef POOL_T
#undef POOL_TYPE_SFX

#define POOL_T double
#define POOL_TYPE_SFX _f64
#include "arch_versions.inc"
#undef POOL_T
#undef POOL_TYPE_SFX

#define POOL_KERNELS(ARCH, SFX)                                                             \
    {ARCH, pool_max_pool_2x2_row_f32##SFX, pool_max_pool_2x2_row_f64##SFX,                  \
     pool_unpool_tiled_f32##SFX, pool_unpool_tiled_f64##SFX}
const mdl_pooling_kernels mdl_pooling_generic = POOL_KERNELS(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
const mdl_pooling_kernels mdl_pooling_avx2 = POOL_KERNELS(MDL_ARCH_AVX2, _avx2);
const mdl_pooling_kernels mdl_pooling_avx512 = POOL_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version. */
void mdl_max_pool_2x2_row_f32(const mdl_window *g, const float *image, ptrdiff_t oy,
                              ptrdiff_t lo, ptrdiff_t hi, float *out_row, int *idx_row) {
    mdl_active_kernels()->pooling->max_pool_2x2_row_f32(g, image, oy, lo, hi, out_row, idx_row);
}

void mdl_max_pool_2x2_row_f64(const mdl_window *g, const double *image, ptrdiff_t oy,
                              ptrdiff_t lo, ptrdiff_t hi, double *out_row, int *idx_row) {
    mdl_active_kernels()->pooling->max_pool_2x2_row_f64(g, image, oy, lo, hi, out_row, idx_row);
}

void mdl_unpool_tiled_f32(const mdl_window *g, const float *dy, const int *argmax,
                          const float *gate, float *dx) {
    mdl_active_kernels()->pooling->unpool_tiled_f32(g, dy, argmax, gate, dx);
}

void mdl_unpool_tiled_f64(const mdl_window *g, const double *dy, const int *argmax,
                          const double *gate, double *dx) {
    mdl_active_kernels()->pooling->unpool_tiled_f64(g, dy, argmax, gate, dx);
}
