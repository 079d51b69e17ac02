/* kernels.h - the one CPU dispatch of minidl's core: a table of kernels per architecture.
 *
 * Every kernel that has a version per instruction set is reached through the active table,
 * mdl_active_kernels(). cpu.c picks it at import (the best architecture the CPU and OS
 * support) and whenever mdl_set_arch is called (MINIDL_ARCH, _backend.set_arch), so that
 * one setting governs every kernel, and a test can run each version on one machine.
 *
 * The contract:
 * - A table holds one sub-table per family of kernels: gemm (the GEMM's and the direct
 *   convolution's micro-kernels and blocking, gemm_kernels.h), conv_pool, optimizers,
 *   pooling, patches, recurrent and batchnorm. The family's source file compiles its loops once per architecture,
 *   each version under that architecture's target attribute (MDL_TARGET_AVX2 or
 *   MDL_TARGET_AVX512 below; none for generic), and defines one sub-table per architecture,
 *   tagged with it (`arch`).
 * - The table of an architecture holds that architecture's version of every family; the tags
 *   say so (mdl_kernel_version), and the tests check them.
 * - The public functions of minidl.h keep their names and signatures: each looks the table
 *   up and calls the version in it. That is one lookup and one indirect call per call of a
 *   public function (per GEMM, per row of a pooling, per parameter of an update); a driver
 *   that calls a micro-kernel in a loop fetches it from the table once, before the loop.
 * - What the versions of a family may compute differently is fixed by the family:
 *     gemm: each architecture its own register tiles and k-blocks; generic multiplies and
 *         adds, AVX2 and AVX-512 fuse (FMA).
 *     conv_pool: fuses exactly as the gemm of the same table does, so that its forward
 *         values equal the unfused layers' (im2col + GEMM) under every architecture.
 *     optimizers, recurrent, batchnorm: no FMA contraction in any version, the same IEEE
 *         operations in the same order: the same bits under every architecture.
 *     pooling, patches: only compare, select, copy and add, each value once in the same
 *         order: the same bits under every architecture.
 * Internal to csrc/.
 */
#ifndef MINIDL_KERNELS_H
#define MINIDL_KERNELS_H

#include "minidl.h"
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#define MDL_X86 1
/* What each x86 architecture's versions are compiled for (the CPU features cpu.c requires of
 * it): a target attribute per function, never -march, so that one build runs anywhere. */
#define MDL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MDL_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

/* A sub-table member pointing to one version of the public function mdl_<name> of minidl.h:
 * the same signature by construction, which the compiler checks where a table is defined. */
#define MDL_VERSION_OF(name) __typeof__(mdl_##name) *name

/* conv_pool.c: a few-tap convolution fused with its max pooling. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(conv_max_pool_row_f32);
    MDL_VERSION_OF(conv_max_pool_row_f64);
    MDL_VERSION_OF(conv_max_pool_grad_image_f32);
    MDL_VERSION_OF(conv_max_pool_grad_image_f64);
} mdl_conv_pool_kernels;

/* optimizers.c: the fused optimizer updates and the gradient norm's sum of squares. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(sgd_f32);
    MDL_VERSION_OF(sgd_f64);
    MDL_VERSION_OF(adam_f32);
    MDL_VERSION_OF(adam_f64);
    MDL_VERSION_OF(rmsprop_f32);
    MDL_VERSION_OF(rmsprop_f64);
    MDL_VERSION_OF(adagrad_f32);
    MDL_VERSION_OF(adagrad_f64);
    MDL_VERSION_OF(nadam_f32);
    MDL_VERSION_OF(nadam_f64);
    MDL_VERSION_OF(sum_of_squares_f32);
    MDL_VERSION_OF(sum_of_squares_f64);
} mdl_optimizer_kernels;

/* pooling.c: the hot loops of max pooling. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(max_pool_2x2_row_f32);
    MDL_VERSION_OF(max_pool_2x2_row_f64);
    MDL_VERSION_OF(unpool_tiled_f32);
    MDL_VERSION_OF(unpool_tiled_f64);
} mdl_pooling_kernels;

/* patches.c: the inner loops of im2col and col2im. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(copy_runs_f32);
    MDL_VERSION_OF(copy_runs_f64);
    MDL_VERSION_OF(add_runs_f32);
    MDL_VERSION_OF(add_runs_f64);
} mdl_patch_kernels;

/* recurrent.c: the recurrent layers' per-step gate passes. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(lstm_forward_row_f32);
    MDL_VERSION_OF(lstm_backward_row_f32);
    MDL_VERSION_OF(gru_forward_row_f32);
    MDL_VERSION_OF(gru_backward_row_f32);
    MDL_VERSION_OF(simple_rnn_forward_row_f32);
    MDL_VERSION_OF(simple_rnn_backward_row_f32);
} mdl_recurrent_kernels;

/* batchnorm.c: batch normalization's chunk loops. */
typedef struct {
    mdl_arch arch;
    MDL_VERSION_OF(bn_sums_f32);
    MDL_VERSION_OF(bn_sums_f64);
    MDL_VERSION_OF(bn_grad_sums_f32);
    MDL_VERSION_OF(bn_grad_sums_f64);
    MDL_VERSION_OF(bn_affine_f32);
    MDL_VERSION_OF(bn_affine_f64);
    MDL_VERSION_OF(bn_dx_f32);
    MDL_VERSION_OF(bn_dx_f64);
} mdl_batchnorm_kernels;

/* The table of one architecture: its version of each family. */
typedef struct {
    mdl_arch arch;
    const mdl_gemm_kernels *gemm;
    const mdl_conv_pool_kernels *conv_pool;
    const mdl_optimizer_kernels *optimizers;
    const mdl_pooling_kernels *pooling;
    const mdl_patch_kernels *patches;
    const mdl_recurrent_kernels *recurrent;
    const mdl_batchnorm_kernels *batchnorm;
} mdl_kernels;

/* Each family's versions, defined in its source file (cpu.c assembles the tables). */
extern const mdl_gemm_kernels mdl_gemm_generic;
extern const mdl_conv_pool_kernels mdl_conv_pool_generic;
extern const mdl_optimizer_kernels mdl_optimizers_generic;
extern const mdl_pooling_kernels mdl_pooling_generic;
extern const mdl_patch_kernels mdl_patches_generic;
extern const mdl_recurrent_kernels mdl_recurrent_generic;
extern const mdl_batchnorm_kernels mdl_batchnorm_generic;
#ifdef MDL_X86
extern const mdl_gemm_kernels mdl_gemm_avx2, mdl_gemm_avx512;
extern const mdl_conv_pool_kernels mdl_conv_pool_avx2, mdl_conv_pool_avx512;
extern const mdl_optimizer_kernels mdl_optimizers_avx2, mdl_optimizers_avx512;
extern const mdl_pooling_kernels mdl_pooling_avx2, mdl_pooling_avx512;
extern const mdl_patch_kernels mdl_patches_avx2, mdl_patches_avx512;
extern const mdl_recurrent_kernels mdl_recurrent_avx2, mdl_recurrent_avx512;
extern const mdl_batchnorm_kernels mdl_batchnorm_avx2, mdl_batchnorm_avx512;
#endif

/* The table picked by cpu.c (at import, or by mdl_set_arch). Read inline from the variable
 * cpu.c keeps, not through a call: a public function's lookup is then two loads before its
 * indirect call, a few cycles, for loops that run per row (pooling, im2col). */
extern const mdl_kernels *mdl_active_table;
static inline const mdl_kernels *mdl_active_kernels(void) { return mdl_active_table; }

#endif
