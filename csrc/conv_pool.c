/* conv_pool.c - a convolution with few taps fused with the max pooling after it.
 *
 * A model's first convolution usually sees one or three channels: its patches hold
 * kh * kw * c values (9 or 27 for 3x3), too few for the GEMM to pay for packing them, and its
 * output is the largest tensor of the network, which the unfused path writes to memory and
 * reads back for the pooling. These loops compute the convolution directly from the input
 * (each patch value read in place at its offset from the output's first tap; a copy with
 * zeros only where a band reaches into the padding) and pool it at once, one band at a time
 * (the ph output rows under one row of pooling windows):
 *   forward, 2x2 windows: two windows x up to 32 filters per register tile, pooled from the
 *            tile; other windows: the band's output in an L1 buffer, then pooled;
 *   backward: each band's output gradient rebuilt from the pooled one (the gradient at
 *            each window's argmax where the ReLU passed it), and the kernel gradient
 *            accumulated from it in register tiles; the bias gradient is its sum. No input
 *            gradient: this serves a model's first layer.
 * So the full-size output and its gradient never exist.
 *
 * Band layout: row r of a band for pooled row py is the output position
 * (py * ph + r / band_w, r % band_w), band_w = pooled_w * pw (columns past the last window
 * are never needed). The forward values are the chain of multiply-adds over the patch in
 * order, as the GEMM computes them, so the pooled maxima and argmax equal those of the
 * unfused layers; the kernel gradient sums in another order than the GEMM's.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#ifdef MDL_X86
#include <immintrin.h>
#endif

#define CP_CAT_(a, b) a##b
#define CP_CAT(a, b) CP_CAT_(a, b)
/* Adjacent outputs per register tile of the general (not 2x2) pooling's forward pass. */
#define CP_OUTPUTS 8

/* One copy of the loops per element type and architecture, in that architecture's kernel
 * table (kernels.h) beside its GEMM: the FMA versions fuse the multiply-adds as its AVX2 and
 * AVX-512 kernels do, the generic one does not, as its generic kernel does not, so the
 * forward values are the GEMM's bits under any setting.
 * The fused ones are written as FMA instructions (CP_MADD in conv_pool_archs.inc), never
 * left to the optimiser's contraction, which -O1 does not do and setup.py turns off. The
 * x86 names below are each type's FMA on 64 and 32 bytes. */
#define CP_T float
#define CP_ITYPE int32_t
#define CP_LANES 16
#define CP_TYPE_SFX _f32
#define CP_X86_512 __m512
#define CP_X86_FMA512(a, b, c) _mm512_fmadd_ps(a, b, c)
#define CP_X86_SET512(x) _mm512_set1_ps(x)
#define CP_X86_256 __m256
#define CP_X86_FMA256(a, b, c) _mm256_fmadd_ps(a, b, c)
#define CP_X86_SET256(x) _mm256_set1_ps(x)
#include "conv_pool_archs.inc"
#undef CP_T
#undef CP_ITYPE
#undef CP_LANES
#undef CP_TYPE_SFX
#undef CP_X86_512
#undef CP_X86_FMA512
#undef CP_X86_SET512
#undef CP_X86_256
#undef CP_X86_FMA256
#undef CP_X86_SET256

#define CP_T double
#define CP_ITYPE int64_t
#define CP_LANES 8
#define CP_TYPE_SFX _f64
#define CP_X86_512 __m512d
#define CP_X86_FMA512(a, b, c) _mm512_fmadd_pd(a, b, c)
#define CP_X86_SET512(x) _mm512_set1_pd(x)
#define CP_X86_256 __m256d
#define CP_X86_FMA256(a, b, c) _mm256_fmadd_pd(a, b, c)
#define CP_X86_SET256(x) _mm256_set1_pd(x)
#include "conv_pool_archs.inc"
#undef CP_T
#undef CP_ITYPE
#undef CP_LANES
#undef CP_TYPE_SFX
#undef CP_X86_512
#undef CP_X86_FMA512
#undef CP_X86_SET512
#undef CP_X86_256
#undef CP_X86_FMA256
#undef CP_X86_SET256

#define CP_KERNELS(ARCH, SFX)                                                               \
    {ARCH, cp_conv_max_pool_row_f32##SFX, cp_conv_max_pool_row_f64##SFX,                    \
     cp_conv_max_pool_grad_image_f32##SFX, cp_conv_max_pool_grad_image_f64##SFX}
const mdl_conv_pool_kernels mdl_conv_pool_generic = CP_KERNELS(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
const mdl_conv_pool_kernels mdl_conv_pool_avx2 = CP_KERNELS(MDL_ARCH_AVX2, _avx2);
const mdl_conv_pool_kernels mdl_conv_pool_avx512 = CP_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version, the one whose GEMM the
 * same table holds. */
int mdl_conv_max_pool_row_f32(const mdl_conv_pool *g, const float *image, const float *kernel,
                              const float *bias, int relu, float *y_row, int *argmax_row,
                              ptrdiff_t py) {
    return mdl_active_kernels()->conv_pool->conv_max_pool_row_f32(g, image, kernel, bias, relu,
                                                                  y_row, argmax_row, py);
}

int mdl_conv_max_pool_row_f64(const mdl_conv_pool *g, const double *image,
                              const double *kernel, const double *bias, int relu,
                              double *y_row, int *argmax_row, ptrdiff_t py) {
    return mdl_active_kernels()->conv_pool->conv_max_pool_row_f64(g, image, kernel, bias, relu,
                                                                  y_row, argmax_row, py);
}

int mdl_conv_max_pool_grad_image_f32(const mdl_conv_pool *g, const float *image,
                                     const float *dy, const int *argmax, const float *gate,
                                     float *d_kernel, float *d_bias) {
    return mdl_active_kernels()->conv_pool->conv_max_pool_grad_image_f32(g, image, dy, argmax,
                                                                         gate, d_kernel, d_bias);
}

int mdl_conv_max_pool_grad_image_f64(const mdl_conv_pool *g, const double *image,
                                     const double *dy, const int *argmax, const double *gate,
                                     double *d_kernel, double *d_bias) {
    return mdl_active_kernels()->conv_pool->conv_max_pool_grad_image_f64(g, image, dy, argmax,
                                                                         gate, d_kernel, d_bias);
}
