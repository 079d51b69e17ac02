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
 * Denormals are flushed to zero during the updates (see mdl_flush_denormals below).
 */
#include <math.h>
#include <stddef.h>

#include "minidl.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "clones.h"

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
