/* optimizers.c - fused optimizer updates: one pass over a parameter, its gradient and slots.
 *
 * The loops are plain C that the compiler vectorises. Where GCC (or clang) can build
 * function multi-versions on x86 ELF/glibc, each exported update is compiled three times,
 * for AVX-512F, AVX2+FMA and baseline x86-64, and the dynamic loader picks one from cpuid
 * (target_clones, through an ifunc). Elsewhere the baseline version is the only one.
 * The updates are divider- and cache-bound, so the wide versions mostly buy wider sqrt and
 * divide instructions.
 *
 * FMA contraction is off in this file: every version then performs the same IEEE operations
 * in the same order, and the untested versions on a given machine compute exactly what the
 * tested one does. Validation happens in the Cython caller; nothing here checks arguments.
 */
#include <math.h>
#include <stddef.h>

#include "minidl.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__GNUC__) && defined(__ELF__) && defined(__GLIBC__) && \
    (defined(__x86_64__) || defined(__i386__)) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MDL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef MDL_CLONES
#define MDL_CLONES
#endif

#if defined(__GNUC__)
#define MDL_INLINE static inline __attribute__((always_inline))
#else
#define MDL_INLINE static inline
#endif

#define OPT_CAT_(a, b) a##b
#define OPT_CAT(a, b) OPT_CAT_(a, b)

#define OPT_T float
#define OPT_SFX _f32
#define OPT_SQRT sqrtf
#define OPT_INF HUGE_VALF
#include "optimizers.inc"
#undef OPT_T
#undef OPT_SFX
#undef OPT_SQRT
#undef OPT_INF

#define OPT_T double
#define OPT_SFX _f64
#define OPT_SQRT sqrt
#define OPT_INF HUGE_VAL
#include "optimizers.inc"
#undef OPT_T
#undef OPT_SFX
#undef OPT_SQRT
#undef OPT_INF
