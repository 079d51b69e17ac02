/* gemm.c - instantiates the GEMM driver (gemm_driver.inc) for float and double, and owns
 * the policy decisions that do not depend on the ISA: when a product is worth threads, when
 * packing is worth its cost, and the reusable packing buffers.
 */
#include "gemm_kernels.h"

#include <stdlib.h>
#include <string.h>

#if MDL_HAVE_OPENMP
#include <omp.h>
#endif

/* Below this many multiply-adds a parallel region costs more than it saves. */
#define MDL_GEMM_PARALLEL_MIN_WORK (64.0 * 64.0 * 64.0)

/* Packing pays for itself when a panel is reused many times. A product whose B rows are
 * contiguous and whose B fits comfortably in L2 is run straight from the operands; this
 * is the path of MLP training at small batch sizes. */
static int use_direct_path(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t cs_b, size_t elem) {
    (void)m;
    return cs_b == 1 && (double)k * (double)n * (double)elem <= 256.0 * 1024.0;
}

#define SCRATCH_SLOTS 2
static _Thread_local void *scratch_ptr[SCRATCH_SLOTS];
static _Thread_local size_t scratch_size[SCRATCH_SLOTS];

void *mdl_scratch(int slot, size_t bytes) {
    if (scratch_size[slot] >= bytes) return scratch_ptr[slot];
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) return NULL;
    free(scratch_ptr[slot]);
    scratch_ptr[slot] = p;
    scratch_size[slot] = rounded;
    return p;
}

#define GD_CAT_(a, b) a##b
#define GD_CAT(a, b) GD_CAT_(a, b)

#define GD_T float
#define GD_NAME mdl_sgemm
#define GD_UKERNEL_T mdl_sgemm_ukernel
#define GD_UKERNEL(kern) ((kern)->sgemm)
#define GD_PACK_T mdl_spack
#define GD_GATHER(kern) ((kern)->spack_gather)
#define GD_BLOCKING(kern) ((kern)->s)
#include "gemm_driver.inc"
#undef GD_T
#undef GD_NAME
#undef GD_UKERNEL_T
#undef GD_UKERNEL
#undef GD_PACK_T
#undef GD_GATHER
#undef GD_BLOCKING

#define GD_T double
#define GD_NAME mdl_dgemm
#define GD_UKERNEL_T mdl_dgemm_ukernel
#define GD_UKERNEL(kern) ((kern)->dgemm)
#define GD_PACK_T mdl_dpack
#define GD_GATHER(kern) ((kern)->dpack_gather)
#define GD_BLOCKING(kern) ((kern)->d)
#include "gemm_driver.inc"
