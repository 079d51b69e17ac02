/* gemm_kernels.h - internal contract between the GEMM driver and the per-ISA micro-kernels:
 * the gemm family of the kernel tables (kernels.h), one mdl_gemm_kernels per architecture in
 * gemm_<isa>.c, which the drivers (gemm.c, conv_direct.c) take from the active table.
 *
 * A micro-kernel computes one MR x NR tile of C over a depth of k:
 *     C[0:mr, 0:nr] = alpha * A[0:mr, 0:k] @ B[0:k, 0:nr] + beta * C[0:mr, 0:nr]
 * - A is read through any strides (rs_a, cs_a): packed panels (rs_a = 1, cs_a = MR) and plain
 *   row-major or transposed matrices go through the same code. Rows at and past mr are never
 *   read (the kernel clamps their addresses to row mr - 1) and never stored.
 * - B rows are contiguous (column stride 1), row stride rs_b; columns at and past nr are
 *   neither read nor stored (masked), so B may be an unpacked matrix as well as a packed panel.
 * - C has any strides. beta == 0 means C is not read.
 * - nr <= NR, except that a tile of one or two rows (mr <= 2, A unpacked) may have up to
 *   2 * NR columns: its k loop is latency-bound, and a wider tile runs twice the chains.
 * Every element of C is the same sequence of fused multiply-adds over k whatever the tile it
 * lands in and whatever mr and nr are, so tiling never changes the result bits.
 */
#ifndef MINIDL_GEMM_KERNELS_H
#define MINIDL_GEMM_KERNELS_H

#include "minidl.h"

typedef void (*mdl_sgemm_ukernel)(ptrdiff_t k, float alpha,
                                  const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                  const float *b, ptrdiff_t rs_b, float beta,
                                  float *c, ptrdiff_t rs_c, ptrdiff_t cs_c, int mr, int nr);
typedef void (*mdl_dgemm_ukernel)(ptrdiff_t k, double alpha,
                                  const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                  const double *b, ptrdiff_t rs_b, double beta,
                                  double *c, ptrdiff_t rs_c, ptrdiff_t cs_c, int mr, int nr);

/* Optional gathering pack of one panel (see pack_panel in gemm_driver.inc):
 * dst[k * width + j] = src[k * stride_k + j * stride_j] for j < w, 0 up to width.
 * Returns 0 when done, -1 when it cannot handle these strides (the driver then packs). */
typedef int (*mdl_spack)(ptrdiff_t kc, ptrdiff_t w, const float *src, ptrdiff_t stride_k,
                         ptrdiff_t stride_j, float *dst, int width);
typedef int (*mdl_dpack)(ptrdiff_t kc, ptrdiff_t w, const double *src, ptrdiff_t stride_k,
                         ptrdiff_t stride_j, double *dst, int width);

/* The direct convolution's micro-kernels (conv_direct.inc; the driver is conv_direct.c).
 * Each computes what a GEMM of the patch path computes for one tile, the same operations in
 * the same order (UK_FMA: the micro-kernel's multiply-add, unfused in the generic one),
 * reading its operands in place through offsets:
 * - gather: a g_mr x NR tile: for i < mr, j < nr, over the k-blocks
 *   [p0, p0 + kc) of [0, k) in order, acc = the FMA chain from zero over the block of
 *   a[row_off[i] + koff[p]] * b[p * rs_b + j]; then C[i * rs_c + j] = acc for the first
 *   block when beta == 0, else C + acc (beta is 0 or 1).
 * - gather_t: the same product transposed, a t_mr x (t_nv vectors) tile: for i < mr and the
 *   vl lanes l of vectors v < nv, the chain of a[koff[p] + col[v] + l] * b[p * rs_b + i]
 *   into C[i * rs_c + v * vl + l]. Whole vectors only (each col[v] starts vl values that
 *   are one tap's channels). NULL where the ISA has no such tile.
 * - col2im: an x_mr x x_nr tile of the input gradient: for i < mr, j < nr,
 *   C[i * rs_c + j] = +0 + d_0 + d_1 + ... in term order, where d_t is the GEMM's value (as
 *   above, beta 0) of the chain over p < k (k-blocks of kc) of
 *   a[term_off[2t] + i * rs_a + p] * b[term_off[2t + 1] + p * rs_b + j]. */
typedef void (*mdl_sconv_gather)(ptrdiff_t k, ptrdiff_t kc, const float *a,
                                 const ptrdiff_t *row_off, const ptrdiff_t *koff,
                                 const float *b, ptrdiff_t rs_b, float beta, float *c,
                                 ptrdiff_t rs_c, int mr, int nr);
typedef void (*mdl_dconv_gather)(ptrdiff_t k, ptrdiff_t kc, const double *a,
                                 const ptrdiff_t *row_off, const ptrdiff_t *koff,
                                 const double *b, ptrdiff_t rs_b, double beta, double *c,
                                 ptrdiff_t rs_c, int mr, int nr);
typedef void (*mdl_sconv_col2im)(ptrdiff_t terms, const ptrdiff_t *term_off, ptrdiff_t k,
                                 ptrdiff_t kc, const float *a, ptrdiff_t rs_a, const float *b,
                                 ptrdiff_t rs_b, float *c, ptrdiff_t rs_c, int mr, int nr);
typedef void (*mdl_dconv_col2im)(ptrdiff_t terms, const ptrdiff_t *term_off, ptrdiff_t k,
                                 ptrdiff_t kc, const double *a, ptrdiff_t rs_a, const double *b,
                                 ptrdiff_t rs_b, double *c, ptrdiff_t rs_c, int mr, int nr);

/* Register tile (mr x nr) and cache blocks (mc, kc, nc) for one element type. KC and
 * direct_b fix the summation order over k, so they depend only on the ISA and never on the
 * thread count (nor on the machine's cache sizes). The direct convolution's tiles: vl lanes
 * per vector, gather's g_mr x nr, gather_t's t_mr x t_nv vectors, col2im's x_mr x x_nr. */
typedef struct {
    int mr, nr;
    int mc, kc, nc;
    long direct_b; /* largest B (bytes) run unpacked over a few row tiles: use_direct_path */
    int vl, g_mr, t_mr, t_nv, x_mr, x_nr;
} mdl_blocking;

typedef struct {
    mdl_arch arch;
    mdl_sgemm_ukernel sgemm;
    mdl_spack spack_gather; /* may be NULL */
    mdl_blocking s;
    mdl_dgemm_ukernel dgemm;
    mdl_dpack dpack_gather; /* may be NULL */
    mdl_blocking d;
    mdl_sconv_gather sconv_gather, sconv_gather_t; /* gather_t may be NULL */
    mdl_sconv_col2im sconv_col2im;
    mdl_dconv_gather dconv_gather, dconv_gather_t;
    mdl_dconv_col2im dconv_col2im;
} mdl_gemm_kernels;

/* The length of the k-blocks in which the GEMM sums a product of this shape (B's column
 * stride cs_b; elem bytes per element): k on its direct path, else the packed path's equal
 * blocks (the last one may be shorter). Each block is an FMA chain from zero added to C in
 * order; a caller computing the same product its own way reproduces the bits with it. */
ptrdiff_t mdl_gemm_k_block(const mdl_blocking *bl, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                           ptrdiff_t cs_b, size_t elem);

#endif
