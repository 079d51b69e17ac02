/* gemm_generic.c - portable C micro-kernels (4x8 tiles), the fallback on any CPU.
 * Written so that the compiler can keep the tile in registers and vectorise the j loop
 * with whatever baseline ISA the build targets (SSE2 on x86-64, NEON on arm64).
 */
#include "kernels.h"

#define GEN_MR 4
#define GEN_NR 8

#define DEFINE_GENERIC_UKERNEL(NAME, T)                                                     \
    static void NAME(ptrdiff_t k, T alpha, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,     \
                     const T *b, ptrdiff_t rs_b, T beta,                                    \
                     T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, int mr, int nr) {               \
        T acc[GEN_MR][2 * GEN_NR] = {{0}}; /* up to 2 * NR columns when mr <= 2 */             \
        const T *rows[GEN_MR];                                                              \
        for (int i = 0; i < GEN_MR; i++) rows[i] = a + (i < mr ? i : mr - 1) * rs_a;        \
        if (nr == GEN_NR) {                                                                 \
            for (ptrdiff_t p = 0; p < k; p++, b += rs_b)                                    \
                for (int i = 0; i < GEN_MR; i++) {                                          \
                    T ai = rows[i][p * cs_a];                                               \
                    for (int j = 0; j < GEN_NR; j++) acc[i][j] += ai * b[j];                \
                }                                                                           \
        } else {                                                                            \
            for (ptrdiff_t p = 0; p < k; p++, b += rs_b)                                    \
                for (int i = 0; i < GEN_MR; i++) {                                          \
                    T ai = rows[i][p * cs_a];                                               \
                    for (int j = 0; j < nr; j++) acc[i][j] += ai * b[j];                    \
                }                                                                           \
        }                                                                                   \
        for (int i = 0; i < mr; i++)                                                        \
            for (int j = 0; j < nr; j++) {                                                  \
                T *cij = c + i * rs_c + j * cs_c;                                           \
                *cij = beta != 0 ? alpha * acc[i][j] + beta * *cij : alpha * acc[i][j];     \
            }                                                                               \
    }

DEFINE_GENERIC_UKERNEL(sgemm_ukernel_generic, float)
DEFINE_GENERIC_UKERNEL(dgemm_ukernel_generic, double)

/* The direct convolution's tiles (conv_direct.inc) over a one-lane "vector" vocabulary:
 * the multiply and the add of the micro-kernel above, unfused, in its operand order. No
 * transposed tile: with one lane it would save nothing. */
#define UK_CAT_(a, b) a##b
#define UK_CAT(a, b) UK_CAT_(a, b)
#define UK_TARGET
#define UK_NV GEN_NR
#define UK_VL 1
#define CD_G_MR GEN_MR
#define CD_T_MR 0
#define CD_X_MR GEN_MR
#define CD_X_NV GEN_NR
#define UK_M int
#define UK_ZERO() 0
#define UK_LOAD(p) (*(p))
#define UK_LOADM(p, m) ((m) ? *(p) : 0)
#define UK_BCAST(x) (x)
#define UK_FMA(a, b, c) ((c) + (a) * (b))
#define UK_ADD(a, b) ((a) + (b))
#define UK_STORE(p, v) (*(p) = (v))
#define UK_STOREM(p, m, v) ((m) ? (void)(*(p) = (v)) : (void)0)
#define UK_MASK(n) ((n) > 0)

#define UK_T float
#define UK_V float
#define CD_NAME sconv_generic
#include "conv_direct.inc"
#undef UK_T
#undef UK_V
#undef CD_NAME

#define UK_T double
#define UK_V double
#define CD_NAME dconv_generic
#include "conv_direct.inc"

const mdl_gemm_kernels mdl_gemm_generic = {
    MDL_ARCH_GENERIC,
    sgemm_ukernel_generic, NULL,
    {GEN_MR, GEN_NR, 128, 256, 1024, 256L * 1024, 1, CD_G_MR, 0, 0, CD_X_MR, CD_X_NV},
    dgemm_ukernel_generic, NULL,
    {GEN_MR, GEN_NR, 128, 256, 1024, 256L * 1024, 1, CD_G_MR, 0, 0, CD_X_MR, CD_X_NV},
    sconv_generic_gather, NULL, sconv_generic_col2im,
    dconv_generic_gather, NULL, dconv_generic_col2im,
};
