/* minidl.h - the public C API of minidl's compiled core.
 *
 * Layering: cpu.c detects the instruction sets once and picks a kernel table; gemm.c is the
 * BLIS-style driver, which knows nothing of intrinsics; gemm_<isa>.c hold the register
 * micro-kernels, one file per instruction set. Nothing here includes Python.h, allocates in
 * an inner loop, or validates arguments: the Cython layer has done that before any call.
 *
 * Matrices are described by a pointer and two strides in elements (rs = row stride,
 * cs = column stride), so transposes and numpy views are expressed without copies.
 */
#ifndef MINIDL_H
#define MINIDL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- instruction sets and kernel selection (cpu.c) ---- */

typedef enum { MDL_ARCH_GENERIC = 0, MDL_ARCH_AVX2 = 1, MDL_ARCH_AVX512 = 2, MDL_ARCH_COUNT } mdl_arch;

/* Bit set of the architectures this CPU and OS can run (bit i = mdl_arch i). */
int mdl_supported_archs(void);
/* Select the kernel table; returns 0, or -1 when the CPU lacks that architecture. */
int mdl_set_arch(mdl_arch arch);
mdl_arch mdl_get_arch(void);
const char *mdl_arch_name(mdl_arch arch);
/* Best supported architecture. */
mdl_arch mdl_best_arch(void);

/* ---- threads (cpu.c) ---- */

/* The one thread count every parallel region of minidl uses. */
int mdl_get_num_threads(void);
void mdl_set_num_threads(int n);
/* Number of processors OpenMP sees (1 in a serial build). */
int mdl_num_procs(void);
int mdl_have_openmp(void);
const char *mdl_compiler(void);

/* ---- GEMM (gemm.c) ----
 * C = alpha * A @ B + beta * C, where A is m x k with strides (rs_a, cs_a), B is k x n with
 * strides (rs_b, cs_b) and C is m x n with strides (rs_c, cs_c). A transposed operand is the
 * same memory with its strides swapped. When beta == 0, C is written without being read,
 * so NaN or garbage in C does not propagate. C must not overlap A or B.
 * The result does not depend on the thread count. Returns 0, or -1 when the packing
 * buffers could not be allocated (C is then unspecified).
 */
int mdl_sgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
               const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
               const float *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
               float beta, float *c, ptrdiff_t rs_c, ptrdiff_t cs_c);
int mdl_dgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, double alpha,
               const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
               const double *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
               double beta, double *c, ptrdiff_t rs_c, ptrdiff_t cs_c);

/* Thread-local scratch buffer number `slot` (0 or 1) of at least `bytes`, 64-byte aligned,
 * kept between calls so that steady-state work allocates nothing; NULL when out of memory. */
void *mdl_scratch(int slot, size_t bytes);

/* Description of the active kernels, e.g. "avx512 sgemm 12x32, dgemm 12x16". */
const char *mdl_kernel_description(void);

#ifdef __cplusplus
}
#endif
#endif
