/* gemm_avx2.c - AVX2 + FMA micro-kernels: sgemm 6x16 and dgemm 6x8.
 * 6 rows x 2 ymm accumulators = 12 of the 16 ymm registers, the classic Haswell shape.
 * AVX2 has no mask registers; partial columns use vmaskmov with an integer lane mask, which
 * neither reads nor writes the masked-off lanes.
 */
#include "kernels.h"

#ifdef MDL_X86
#include <immintrin.h>
#include <math.h>

#define UK_CAT_(a, b) a##b
#define UK_CAT(a, b) UK_CAT_(a, b)
#define UK_TARGET MDL_TARGET_AVX2
#define UK_MR 6
#define UK_NV 2
/* The direct convolution's tiles (conv_direct.inc): gather 6 rows, transposed 4 filters x
 * 3 vectors, input gradient 6 x 1 (its running sums take as many registers as its
 * chains). */
#define CD_G_MR 6
#define CD_T_MR 4
#define CD_T_NV 3
#define CD_X_MR 6
#define CD_X_NV 1

#define UK_NAME sgemm_ukernel_avx2
#define UK_T float
#define UK_V __m256
#define UK_M __m256i
#define UK_VL 8
#define UK_ZERO() _mm256_setzero_ps()
#define UK_LOAD(p) _mm256_loadu_ps(p)
#define UK_LOADM(p, m) _mm256_maskload_ps(p, m)
#define UK_BCAST(x) _mm256_set1_ps(x)
#define UK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define UK_MUL(a, b) _mm256_mul_ps(a, b)
#define UK_STORE(p, v) _mm256_storeu_ps(p, v)
#define UK_STOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define UK_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define UK_SFMA(x, y, z) fmaf(x, y, z)
#define UK_ADD(a, b) _mm256_add_ps(a, b)
#include "gemm_ukernel.inc"
#define CD_NAME sconv_avx2
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

#define UK_NAME dgemm_ukernel_avx2
#define UK_T double
#define UK_V __m256d
#define UK_M __m256i
#define UK_VL 4
#define UK_ZERO() _mm256_setzero_pd()
#define UK_LOAD(p) _mm256_loadu_pd(p)
#define UK_LOADM(p, m) _mm256_maskload_pd(p, m)
#define UK_BCAST(x) _mm256_set1_pd(x)
#define UK_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define UK_MUL(a, b) _mm256_mul_pd(a, b)
#define UK_STORE(p, v) _mm256_storeu_pd(p, v)
#define UK_STOREM(p, m, v) _mm256_maskstore_pd(p, m, v)
#define UK_MASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define UK_SFMA(x, y, z) fma(x, y, z)
#define UK_ADD(a, b) _mm256_add_pd(a, b)
#include "gemm_ukernel.inc"
#define CD_NAME dconv_avx2
#include "conv_direct.inc"
#undef CD_NAME

const mdl_gemm_kernels mdl_gemm_avx2 = {
    MDL_ARCH_AVX2,
    sgemm_ukernel_avx2, NULL,
    {6, 16, 168, 256, 1024, 256L * 1024, 8, CD_G_MR, CD_T_MR, CD_T_NV, CD_X_MR, 8 * CD_X_NV},
    dgemm_ukernel_avx2, NULL,
    {6, 8, 72, 256, 1024, 256L * 1024, 4, CD_G_MR, CD_T_MR, CD_T_NV, CD_X_MR, 4 * CD_X_NV},
    sconv_avx2_gather, sconv_avx2_gather_t, sconv_avx2_col2im,
    dconv_avx2_gather, dconv_avx2_gather_t, dconv_avx2_col2im,
};
#endif
