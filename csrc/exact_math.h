/* exact_math.h - the bit-exact rules that the C kernels and the Cython modules share.
 *
 * Where two paths must give the same bits (a Cython loop and its C hot loop, a fused kernel
 * and the unfused layers it replaces, the forward pass and its backward), the rule they
 * follow is written here once, and every one of them includes it: the C kernels directly,
 * the Cython modules through minidl/_core/_exact_math.pxd. Nothing here allocates, branches
 * on data or calls libm; everything is static inline, so there is no symbol to link.
 *
 *   mdl_blendf / mdl_blend      c ? a : b on floats, through the bits (no branch)
 *   mdl_max_update_f32 / _f64   MaxPooling's running maximum and its index: the first
 *                               maximum wins ties, a NaN wins over any number
 *   mdl_expf, mdl_tanhf,        e^x, tanh(x) and 1 / (1 + e^-x) in float32 without branches
 *   mdl_sigmoidf                or libm calls, so that loops over them vectorise
 */
#ifndef MINIDL_EXACT_MATH_H
#define MINIDL_EXACT_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Inlined even where GCC's heuristics call a loop cold: a call blocks vectorisation. */
#if defined(__GNUC__)
#define MDL_MATH_INLINE static inline __attribute__((always_inline))
#else
#define MDL_MATH_INLINE static inline
#endif

/* The same spelling as minidl.h's, for files that include only this header. */
#ifndef MDL_RESTRICT
#if defined(__cplusplus) || defined(_MSC_VER)
#define MDL_RESTRICT __restrict
#else
#define MDL_RESTRICT restrict
#endif
#endif

/* ---- selects ----
 * A branch on the sign of random data mispredicts half the time and blocks vectorisation;
 * under the default -ftrapping-math GCC does not if-convert chains of float selects, but it
 * does turn a comparison's value into a lane mask, so the select is written on the bits.
 * c must be 0 or 1. With b = 0 it is a mask: dropout's kept units, a ReLU's gate. */

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

/* ---- MaxPooling's rule ----
 * out = max(out, v) per channel, idx following the winner (pos + channel): the first maximum
 * wins ties (the window's row-major order, as TF and PyTorch route the gradient), and a NaN
 * wins over any number (so it shows in the output, as in np.maximum). Every max pooling of
 * minidl runs this: the Cython kernels (_pooling.pyx), their C hot loop (pooling.inc) and
 * the fused convolution and pooling (conv_pool.inc), whose argmax must equal the unfused
 * layers'. Selects only, so that the loop vectorises. */
#define MDL_MAX_TAKES(v, cur) (((v) > (cur)) | (((v) != (v)) & ((cur) == (cur))))

MDL_MATH_INLINE void mdl_max_update_f32(float *MDL_RESTRICT out, int *MDL_RESTRICT idx,
                                        const float *MDL_RESTRICT v, int pos,
                                        ptrdiff_t count) {
    for (ptrdiff_t ch = 0; ch < count; ch++) {
        float cur = out[ch];
        int take = MDL_MAX_TAKES(v[ch], cur);
        out[ch] = take ? v[ch] : cur;
        idx[ch] = take ? pos + (int)ch : idx[ch];
    }
}

MDL_MATH_INLINE void mdl_max_update_f64(double *MDL_RESTRICT out, int *MDL_RESTRICT idx,
                                        const double *MDL_RESTRICT v, int pos,
                                        ptrdiff_t count) {
    for (ptrdiff_t ch = 0; ch < count; ch++) {
        double cur = out[ch];
        int take = MDL_MAX_TAKES(v[ch], cur);
        out[ch] = take ? v[ch] : cur;
        idx[ch] = take ? pos + (int)ch : idx[ch];
    }
}

/* ---- float32 transcendental functions (the activations' bits) ----
 * glibc's expf/tanhf are scalar calls of ~10 ns; float32 is the training dtype, so it gets
 * branch-free versions the compiler vectorises. */

/* e^x in float32 without branches or libm calls, so loops over it vectorise.
   Range reduction x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two parts; Cephes'
   degree-6 polynomial for e^r (within 1 ulp); 2^n assembled from exponent bits as
   2^(n-1) * 2 so that n = 128 stays representable. Results below e^-86 flush to 0;
   above FLT_MAX they overflow to inf; NaN propagates through the arithmetic. */
MDL_MATH_INLINE float mdl_expf(float x) {
    const float hi = 88.72283f, lo = -86.0f;
    float xc = mdl_blendf(x > hi, hi, x);
    xc = mdl_blendf(xc < lo, lo, xc);
    /* round to nearest integer by adding and removing 1.5 * 2^23 */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    mdl_f32bits scale;
    scale.u = (uint32_t)((int32_t)n + 126) << 23;
    float y = (q * scale.f) * 2.0f;
    y = mdl_blendf(x < lo, 0.0f, y);
    return mdl_blendf(x > hi, INFINITY, y);
}

/* tanh in float32: Cephes' odd polynomial below |x| = 0.625 (where 1 - 2/(e^2x + 1)
   would cancel), 1 - 2 / (e^{2|x|} + 1) above, with the sign restored. Both are computed
   and one is selected. */
MDL_MATH_INLINE float mdl_tanhf(float x) {
    float a = fabsf(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    p = p * z * x + x;
    float q = copysignf(1.0f - 2.0f / (mdl_expf(2.0f * a) + 1.0f), x);
    return mdl_blendf(a < 0.625f, p, q);
}

/* The logistic function from e^-|x| only: no overflow at either tail. */
MDL_MATH_INLINE float mdl_sigmoidf(float x) {
    float e = mdl_expf(-fabsf(x));
    return mdl_blendf(x >= 0.0f, 1.0f, e) / (1.0f + e);
}

#endif
