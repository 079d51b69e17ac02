/* gemm_avx512.c - AVX-512F micro-kernels: sgemm 12x32 and dgemm 12x16.
 * 12 rows x 2 zmm accumulators = 24 of the 32 zmm registers, leaving room for the two B
 * vectors and the broadcast. Compiled with a target attribute rather than -mavx512f so the
 * rest of the library stays runnable on any x86-64; cpu.c only selects it after checking
 * cpuid and XCR0.
 */
#include "kernels.h"

#ifdef MDL_X86
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define UK_CAT_(a, b) a##b
#define UK_CAT(a, b) UK_CAT_(a, b)
#define UK_TARGET MDL_TARGET_AVX512
#define UK_MR 12
#define UK_NV 2
/* The direct convolution's tiles (conv_direct.inc): gather 10 rows (its row pointers and
 * the loop's fit the general registers, which 12 spilled: the benchmark convolution's
 * forward pass 1.05 -> 0.93 ms), transposed 8 filters x 3 vectors, input gradient 12 x 1
 * (its running sums take as many registers as its chains). */
#define CD_G_MR 10
#define CD_T_MR 8
#define CD_T_NV 3
#define CD_X_MR 12
#define CD_X_NV 1

#define UK_NAME sgemm_ukernel_avx512
#define UK_T float
#define UK_V __m512
#define UK_M __mmask16
#define UK_VL 16
#define UK_ZERO() _mm512_setzero_ps()
#define UK_LOAD(p) _mm512_loadu_ps(p)
#define UK_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define UK_BCAST(x) _mm512_set1_ps(x)
#define UK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define UK_MUL(a, b) _mm512_mul_ps(a, b)
#define UK_STORE(p, v) _mm512_storeu_ps(p, v)
#define UK_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define UK_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define UK_SFMA(x, y, z) fmaf(x, y, z)
#define UK_ADD(a, b) _mm512_add_ps(a, b)
#include "gemm_ukernel.inc"
#define CD_NAME sconv_avx512
#include "conv_direct.inc"
#undef CD_NAME
#undef UK_NAME
#undef UK_T
#undef UK_V
#undef UK_M
#undef UK_VL
#undef UK_ZERO
#undef UK_LOAD
#undef UK_LOADM
#undef UK_BCAST
#undef UK_FMA
#undef UK_MUL
#undef UK_STORE
#undef UK_STOREM
#undef UK_MASK
#undef UK_SFMA
#undef UK_ADD

#define UK_NAME dgemm_ukernel_avx512
#define UK_T double
#define UK_V __m512d
#define UK_M __mmask8
#define UK_VL 8
#define UK_ZERO() _mm512_setzero_pd()
#define UK_LOAD(p) _mm512_loadu_pd(p)
#define UK_LOADM(p, m) _mm512_maskz_loadu_pd(m, p)
#define UK_BCAST(x) _mm512_set1_pd(x)
#define UK_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define UK_MUL(a, b) _mm512_mul_pd(a, b)
#define UK_STORE(p, v) _mm512_storeu_pd(p, v)
#define UK_STOREM(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define UK_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#define UK_SFMA(x, y, z) fma(x, y, z)
#define UK_ADD(a, b) _mm512_add_pd(a, b)
#include "gemm_ukernel.inc"
#define CD_NAME dconv_avx512
#include "conv_direct.inc"
#undef CD_NAME

/* Gathering packs for transposed operands (see mdl_spack in gemm_kernels.h): one masked
 * gather per vector of the panel row replaces 16 scalar loads and stores. The 32-bit gather
 * indices j * stride_j must not overflow, so very long strides fall back to the driver. */
/* One 16 x 16 block of a transposing pack: rows j < rows of src (stride_j apart, each kcnt
 * contiguous elements along k) become dst[kk * width + j] for kk < kcnt, j < lanes (rows
 * at and past `rows` give zeros). Register transpose: 64 shuffles replace 16 gathers. */
static inline __attribute__((always_inline)) UK_TARGET void
spack_tr16_avx512(const float *src, ptrdiff_t stride_j, int rows, int kcnt, float *dst,
                  int width, __mmask16 store_mask) {
    __mmask16 kmask = (__mmask16)((1u << kcnt) - 1u);
    __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(kmask, src + i * stride_j) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4q + e]: rows 4q..4q+3 at column 4L + e in 128-bit lane L */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512 lo0 = t[4 * q], hi0 = t[4 * q + 1], lo1 = t[4 * q + 2], hi1 = t[4 * q + 3];
        u[4 * q + 0] = _mm512_shuffle_ps(lo0, lo1, 0x44);
        u[4 * q + 1] = _mm512_shuffle_ps(lo0, lo1, 0xEE);
        u[4 * q + 2] = _mm512_shuffle_ps(hi0, hi1, 0x44);
        u[4 * q + 3] = _mm512_shuffle_ps(hi0, hi1, 0xEE);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        __m512 v = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88);
        __m512 x = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        __m512 y = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xDD);
        __m512 z = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xDD);
        __m512 o[4] = {_mm512_shuffle_f32x4(v, x, 0x88), _mm512_shuffle_f32x4(y, z, 0x88),
                       _mm512_shuffle_f32x4(v, x, 0xDD), _mm512_shuffle_f32x4(y, z, 0xDD)};
#pragma GCC unroll 4
        for (int l = 0; l < 4; l++) /* column 4l + e */
            if (4 * l + e < kcnt) _mm512_mask_storeu_ps(dst + (4 * l + e) * width, store_mask, o[l]);
    }
}

static UK_TARGET int spack_gather_avx512(ptrdiff_t kc, ptrdiff_t w, const float *src,
                                         ptrdiff_t stride_k, ptrdiff_t stride_j, float *dst,
                                         int width) {
    if (stride_k == 1) {
        /* The elements of each panel row j are contiguous along k (a row-major A, or a
         * transposed B): transpose 16 x 16 blocks in registers. */
        for (int j0 = 0; j0 < width; j0 += 16) {
            int rows = w - j0 < 0 ? 0 : w - j0 > 16 ? 16 : (int)(w - j0);
            int store_lanes = width - j0 > 16 ? 16 : width - j0;
            __mmask16 store_mask = (__mmask16)((1u << store_lanes) - 1u);
            const float *s = src + j0 * stride_j;
            ptrdiff_t k0 = 0;
            for (; k0 + 16 <= kc; k0 += 16)
                spack_tr16_avx512(s + k0, stride_j, rows, 16, dst + k0 * width + j0, width,
                                  store_mask);
            if (k0 < kc)
                spack_tr16_avx512(s + k0, stride_j, rows, (int)(kc - k0), dst + k0 * width + j0,
                                  width, store_mask);
        }
        return 0;
    }
    if (stride_j <= 0 || stride_j > INT32_MAX / 64) return -1;
    __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)stride_j));
    for (int j0 = 0; j0 < width; j0 += 16) {
        ptrdiff_t lanes = w - j0 < 0 ? 0 : w - j0 > 16 ? 16 : w - j0;
        int store_lanes = width - j0 > 16 ? 16 : width - j0;
        __mmask16 load_mask = (__mmask16)((1u << lanes) - 1u);
        __mmask16 store_mask = (__mmask16)((1u << store_lanes) - 1u);
        const float *s = src + j0 * stride_j;
        for (ptrdiff_t k = 0; k < kc; k++) {
            __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), load_mask, idx, s + k * stride_k, 4);
            _mm512_mask_storeu_ps(dst + k * width + j0, store_mask, v);
        }
    }
    return 0;
}

static UK_TARGET int dpack_gather_avx512(ptrdiff_t kc, ptrdiff_t w, const double *src,
                                         ptrdiff_t stride_k, ptrdiff_t stride_j, double *dst,
                                         int width) {
    if (stride_j <= 0 || stride_j > INT32_MAX / 64) return -1;
    __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                     _mm256_set1_epi32((int)stride_j));
    for (int j0 = 0; j0 < width; j0 += 8) {
        ptrdiff_t lanes = w - j0 < 0 ? 0 : w - j0 > 8 ? 8 : w - j0;
        int store_lanes = width - j0 > 8 ? 8 : width - j0;
        __mmask8 load_mask = (__mmask8)((1u << lanes) - 1u);
        __mmask8 store_mask = (__mmask8)((1u << store_lanes) - 1u);
        const double *s = src + j0 * stride_j;
        for (ptrdiff_t k = 0; k < kc; k++) {
            __m512d v = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), load_mask, idx, s + k * stride_k, 8);
            _mm512_mask_storeu_pd(dst + k * width + j0, store_mask, v);
        }
    }
    return 0;
}

const mdl_gemm_kernels mdl_gemm_avx512 = {
    MDL_ARCH_AVX512,
    sgemm_ukernel_avx512, spack_gather_avx512,
    {12, 32, 240, 384, 1024, 896L * 1024, 16, CD_G_MR, CD_T_MR, CD_T_NV, CD_X_MR, 16 * CD_X_NV},
    dgemm_ukernel_avx512, dpack_gather_avx512,
    {12, 16, 120, 384, 512, 256L * 1024, 8, CD_G_MR, CD_T_MR, CD_T_NV, CD_X_MR, 8 * CD_X_NV},
    sconv_avx512_gather, sconv_avx512_gather_t, sconv_avx512_col2im,
    dconv_avx512_gather, dconv_avx512_gather_t, dconv_avx512_col2im,
};
#endif
