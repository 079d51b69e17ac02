/* gemm.c - instantiates the GEMM driver (gemm_driver.inc) for float and double, and owns
 * the policy decisions that do not depend on the ISA: when a product is worth threads, when
 * packing is worth its cost, and the reusable packing buffers.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if MDL_HAVE_OPENMP
#include <omp.h>
#endif

/* Packing pays for itself when a panel is reused many times. A product whose B rows are
 * contiguous and whose B fits comfortably in L2 is run straight from the operands; this is
 * the path of MLP training at small batch sizes and of the convolutions' GEMMs. So is one of
 * at most 4 row tiles whose B is at most bl->direct_b bytes (a Dense layer's forward pass at
 * a small batch size): each B panel is then read from L2 only a few times, which costs less
 * than copying it once, and C is written once rather than once per k-block. And so is a
 * product of one row tile over narrow B rows, whatever its depth (a first convolution's
 * weight gradient, k = batch pixels): B is then read once, as one sequential stream. The
 * limits belong to the ISA's table, never to the machine, since the path fixes the
 * summation order. */
static int use_direct_path(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, ptrdiff_t cs_b, size_t elem,
                           const mdl_blocking *bl) {
    double b_bytes = (double)k * (double)n * (double)elem;
    ptrdiff_t row_tiles = (m + bl->mr - 1) / bl->mr;
    if (cs_b != 1) return 0;
    if (b_bytes <= 256.0 * 1024.0) return 1;
    if (row_tiles <= 4 && b_bytes <= (double)bl->direct_b) return 1;
    return row_tiles == 1 && (double)n * (double)elem <= 256.0;
}

/* Equal k-blocks of at most bl->kc (784 = 2 x 392, not 384 + 384 + 16): a thin last block
 * would pay a full pass over C for little work. Depends on k and the ISA only, never on the
 * thread count, since it fixes the summation order. */
static ptrdiff_t packed_k_block(ptrdiff_t k, const mdl_blocking *bl) {
    ptrdiff_t k_blocks = (k + bl->kc - 1) / bl->kc;
    return ((k + k_blocks - 1) / k_blocks + 7) / 8 * 8;
}

/* Threads of the packed path as a grid of ways_m x ways_n over (row blocks, column panels):
 * the factorisation of nt whose share of C per thread is closest to square (BLIS splits its
 * ic and jr loops the same way). A product with few rows and many columns (a Dense layer's
 * forward pass at batch 256 with 1024 units) then splits its columns: each thread packs the
 * panels of B it multiplies, in its own cache, instead of reading half of them from another
 * core's. Ties go to the rows. Which thread computes a tile never changes its bits. */
static void packed_ways(ptrdiff_t m, ptrdiff_t n, int nt, int *ways_m, int *ways_n) {
    double best = -1;
    for (int wm = nt; wm >= 1; wm--) {
        if (nt % wm) continue;
        double aspect = ((double)m / wm) / ((double)n / (nt / wm));
        double off = aspect > 1 ? aspect : 1 / aspect;
        if (best < 0 || off < best) {
            best = off;
            *ways_m = wm;
            *ways_n = nt / wm;
        }
    }
}

ptrdiff_t mdl_gemm_k_block(const mdl_blocking *bl, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                           ptrdiff_t cs_b, size_t elem) {
    if (k <= 0 || use_direct_path(m, n, k, cs_b, elem, bl)) return k;
    return packed_k_block(k, bl);
}

/* Packing buffers belong to the calling thread and are kept between calls, so steady-state
 * work allocates nothing. A pthread key frees them when the thread exits: Python programs
 * may run GEMMs from many short-lived threads. */
#define SCRATCH_SLOTS 3
typedef struct {
    void *ptr[SCRATCH_SLOTS];
    size_t size[SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_set *set = (scratch_set *)p;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(set->ptr[i]);
    free(set);
}

static void scratch_key_create(void) { pthread_key_create(&scratch_key, scratch_free); }

void *mdl_scratch(int slot, size_t bytes) {
    pthread_once(&scratch_once, scratch_key_create);
    scratch_set *set = (scratch_set *)pthread_getspecific(scratch_key);
    if (!set) {
        set = (scratch_set *)calloc(1, sizeof *set);
        if (!set || pthread_setspecific(scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
    }
    if (set->size[slot] >= bytes) return set->ptr[slot];
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) return NULL;
    free(set->ptr[slot]);
    set->ptr[slot] = p;
    set->size[slot] = rounded;
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
