/* pooling.c - the hot loops of max pooling over channels-last images.
 *
 * minidl/_core/_pooling.pyx holds the pooling kernels for every geometry; the two loops here
 * (in pooling.inc, for float and double) are the common 2x2 window (forward) and the
 * one-pass backward of windows that tile the image. They are in C only to be compiled for
 * AVX-512 and AVX2 as well as baseline x86-64 (MDL_CLONES): Cython modules are built for
 * the baseline, whose 4-wide selects made these loops a tenth of a CNN training step.
 * Both only compare and select, so every version gives the same bits.
 */
#include <stddef.h>
#include <string.h> /* a libc header before clones.h: it defines __GLIBC__ */

#include "minidl.h"

#include "clones.h"

#define POOL_CAT_(a, b) a##b
#define POOL_CAT(a, b) POOL_CAT_(a, b)

#define POOL_T float
#define POOL_SFX _f32
#include "pooling.inc"
#undef POOL_T
#undef POOL_SFX

#define POOL_T double
#define POOL_SFX _f64
#include "pooling.inc"
#undef POOL_T
#undef POOL_SFX
