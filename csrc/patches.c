/* patches.c - the inner loops of im2col and col2im (minidl/_core/_convolution.pyx): `runs` runs of
 * `width` values, copied or added from one strided place to another (one kernel row of the
 * receptive fields along an output row). In C only to be compiled for AVX-512 and AVX2 as
 * well as baseline x86-64 (MDL_CLONES): Cython modules are built for the baseline, whose
 * 16-byte moves and adds made these loops a tenth of the convolutions' time, and a libc
 * memcpy call per run costs as much as the copy. Each value is copied or added once, in
 * the same order, so every version gives the same bits.
 */
#include <stddef.h>
#include <string.h> /* a libc header before clones.h: it defines __GLIBC__ */

#include "minidl.h"

#include "clones.h"

/* GCC would turn the copy loop back into one memcpy call per run, the cost this file exists
 * to avoid: keep it a loop. */
#if defined(__GNUC__) && !defined(__clang__)
#define PATCH_NO_MEMCPY __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define PATCH_NO_MEMCPY
#endif

#define PATCH_RUNS(T, SFX)                                                                  \
    MDL_CLONES PATCH_NO_MEMCPY                                                              \
    void mdl_copy_runs##SFX(T *MDL_RESTRICT dst, ptrdiff_t dst_stride,                      \
                            const T *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs,\
                            ptrdiff_t width) {                                              \
        for (ptrdiff_t r = 0; r < runs; r++, dst += dst_stride, src += src_stride)          \
            for (ptrdiff_t j = 0; j < width; j++) dst[j] = src[j];                          \
    }                                                                                       \
    MDL_CLONES                                                                              \
    void mdl_add_runs##SFX(T *MDL_RESTRICT dst, ptrdiff_t dst_stride,                       \
                           const T *MDL_RESTRICT src, ptrdiff_t src_stride, ptrdiff_t runs, \
                           ptrdiff_t width) {                                               \
        for (ptrdiff_t r = 0; r < runs; r++, dst += dst_stride, src += src_stride)          \
            for (ptrdiff_t j = 0; j < width; j++) dst[j] += src[j];                         \
    }

PATCH_RUNS(float, _f32)
PATCH_RUNS(double, _f64)
