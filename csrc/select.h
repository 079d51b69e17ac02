/* select.h - c ? a : b on floats without a branch, for the Cython kernels.
 *
 * A branch on the sign of random data mispredicts half the time and blocks vectorisation;
 * under the default -ftrapping-math GCC does not if-convert chains of float selects, but it
 * does turn a comparison's value into a lane mask, so the select is written on the bits.
 */
#ifndef MINIDL_SELECT_H
#define MINIDL_SELECT_H

#include <stdint.h>

/* Inlined even where GCC's heuristics call a loop cold: a call blocks vectorisation. */
#if defined(__GNUC__)
#define MDL_MATH_INLINE static inline __attribute__((always_inline))
#else
#define MDL_MATH_INLINE static inline
#endif

typedef union { uint32_t u; float f; } mdl_f32bits;

MDL_MATH_INLINE float mdl_blendf(int c, float a, float b) {
    mdl_f32bits ua, ub;
    uint32_t m = -(uint32_t)c;
    ua.f = a;
    ub.f = b;
    ua.u = (ua.u & m) | (ub.u & ~m);
    return ua.f;
}

MDL_MATH_INLINE double mdl_blend(int c, double a, double b) {
    union { uint64_t u; double f; } ua, ub;
    uint64_t m = -(uint64_t)c;
    ua.f = a;
    ub.f = b;
    ua.u = (ua.u & m) | (ub.u & ~m);
    return ua.f;
}

#endif
