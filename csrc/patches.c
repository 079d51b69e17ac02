/* patches.c - the inner loops of im2col and col2im (minidl/_core/_convolution.pyx): `runs` runs of
 * `width` values, copied or added from one strided place to another (one kernel row of the
 * receptive fields along an output row). In C only to be compiled for AVX-512 and AVX2 as
 * well as baseline x86-64, the active kernel table choosing the version (kernels.h): Cython
 * modules are built for the baseline, whose 16-byte moves and adds made these loops a tenth
 * of the convolutions' time, and a libc memcpy call per run costs as much as the copy. Each
 * value is copied or added once, in the same order, so every version gives the same bits.
 */
#include <stddef.h>

#include "kernels.h"

/* GCC would turn the copy loop back into one memcpy call per run, the cost this file exists
 * to avoid: keep it a loop. */
#if defined(__GNUC__) && !defined(__clang__)
#define PATCH_NO_MEMCPY __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define PATCH_NO_MEMCPY
#endif

/* One version of both loops for element type T: patch_copy_runs<SFX> and patch_add_runs<SFX>,
 * SFX the type and architecture (e.g. _f32_avx2), TARGET that architecture's attribute. */
#define PATCH_RUNS(T, SFX, TARGET)                                                          \
    static TARGET PATCH_NO_MEMCPY                                                           \
    void patch_copy_runs##SFX(T *MDL_RESTRICT dst, ptrdiff_t dst_stride,                    \
                              const T *MDL_RESTRICT src, ptrdiff_t src_stride,              \
                              ptrdiff_t runs, ptrdiff_t width) {                            \
        for (ptrdiff_t r = 0; r < runs; r++, dst += dst_stride, src += src_stride)          \
            for (ptrdiff_t j = 0; j < width; j++) dst[j] = src[j];                          \
    }                                                                                       \
    static TARGET                                                                           \
    void patch_add_runs##SFX(T *MDL_RESTRICT dst, ptrdiff_t dst_stride,                     \
                             const T *MDL_RESTRICT src, ptrdiff_t src_stride,               \
                             ptrdiff_t runs, ptrdiff_t width) {                             \
        for (ptrdiff_t r = 0; r < runs; r++, dst += dst_stride, src += src_stride)          \
            for (ptrdiff_t j = 0; j < width; j++) dst[j] += src[j];                         \
    }

#define PATCH_KERNELS(ARCH, SFX)                                                            \
    {ARCH, patch_copy_runs_f32##SFX, patch_copy_runs_f64##SFX, patch_add_runs_f32##SFX,     \
     patch_add_runs_f64##SFX}

PATCH_RUNS(float, _f32_generic, )
PATCH_RUNS(double, _f64_generic, )
const mdl_patch_kernels mdl_patches_generic = PATCH_KERNELS(MDL_ARCH_GENERIC, _generic);

#ifdef MDL_X86
PATCH_RUNS(float, _f32_avx2, MDL_TARGET_AVX2)
PATCH_RUNS(double, _f64_avx2, MDL_TARGET_AVX2)
const mdl_patch_kernels mdl_patches_avx2 = PATCH_KERNELS(MDL_ARCH_AVX2, _avx2);

PATCH_RUNS(float, _f32_avx512, MDL_TARGET_AVX512)
PATCH_RUNS(double, _f64_avx512, MDL_TARGET_AVX512)
const mdl_patch_kernels mdl_patches_avx512 = PATCH_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version. */
void mdl_copy_runs_f32(float *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                       const float *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                       ptrdiff_t width) {
    mdl_active_kernels()->patches->copy_runs_f32(dst, dst_stride, src, src_stride, runs, width);
}

void mdl_copy_runs_f64(double *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                       const double *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                       ptrdiff_t width) {
    mdl_active_kernels()->patches->copy_runs_f64(dst, dst_stride, src, src_stride, runs, width);
}

void mdl_add_runs_f32(float *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                      const float *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                      ptrdiff_t width) {
    mdl_active_kernels()->patches->add_runs_f32(dst, dst_stride, src, src_stride, runs, width);
}

void mdl_add_runs_f64(double *MDL_RESTRICT dst, ptrdiff_t dst_stride,
                      const double *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,
                      ptrdiff_t width) {
    mdl_active_kernels()->patches->add_runs_f64(dst, dst_stride, src, src_stride, runs, width);
}
