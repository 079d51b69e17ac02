/* conv_direct.c - a training convolution without patch matrices, with the patch path's bits.
 *
 * The patch path (minidl/_core/_convolution.pyx) packs every receptive field into a row of a
 * patch matrix, multiplies it with the GEMM, and scatters the patch gradient back with col2im;
 * writing and reading those matrices cost it as much as the multiplications. Here the
 * GEMM's micro-kernel tiles read the image itself (a zero-padded copy where the windows
 * reach outside it) through offset tables (conv_direct.inc, one copy per instruction set,
 * in the active kernel table):
 *   forward:  z = patches @ kernel, a gather tile per g_mr consecutive output pixels of
 *             one image, its k running over the taps' offsets (tap, then channel: the patch
 *             order); the padded copy of each image is written just before it is read;
 *   kernel gradient: patches^T @ dz, chunk by chunk as the patch path adds them, a tile per
 *             g_mr patch rows (gather; their offsets may straddle taps) or, when the
 *             channels fill whole vectors, per few filters x vectors of channels (gather_t,
 *             into a transposed buffer: it loads 11 values per 24 FMAs where gather loads 13
 *             per 12 with 16 filters; 0.71 against 1.15 ms on the benchmark convolution);
 *   input gradient: per x_mr input pixels of one row (a run of columns with the same taps,
 *             see col_tiles), each patch-gradient term (dz @ kernel^T, its own chain) added
 *             to a running sum in col2im's order; chunk by chunk after the kernel gradient's
 *             tiles, while the chunk's dz is in cache.
 * Each output element thus gets the very operations of the patch path in the same order:
 * the k-blocks the GEMM would use for each chunk's shape (mdl_gemm_k_block), the chunks'
 * sums added in order, col2im's sums starting from +0 and skipping the taps outside the
 * image. Threads share output tiles, never a sum, so the bits do not depend on their count:
 * one parallel region per call (the patch path opened three per chunk of one image).
 */
#include <string.h>

#include "kernels.h"

#if MDL_HAVE_OPENMP
#include <omp.h>
#endif

/* [begin, end) of count items for thread tid of nth: a static split. */
static void cd_share(ptrdiff_t count, int tid, int nth, ptrdiff_t *begin, ptrdiff_t *end) {
    *begin = count * tid / nth;
    *end = count * (tid + 1) / nth;
}

static void cd_barrier(int nth) {
#if MDL_HAVE_OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#else
    (void)nth;
#endif
}

/* Rows of the GEMM of the patch path that holds image img: its chunk's output pixels. */
static ptrdiff_t cd_chunk_rows(const mdl_conv_direct *g, ptrdiff_t img) {
    ptrdiff_t first = img / g->chunk * g->chunk;
    ptrdiff_t images = g->n - first < g->chunk ? g->n - first : g->chunk;
    return images * g->geo.out_h * g->geo.out_w;
}

/* The source's row and image strides: the padded copy's, or x's. */
static void cd_src_strides(const mdl_conv_direct *g, int padded, ptrdiff_t *rs, ptrdiff_t *is) {
    *rs = (padded ? g->src_w : g->geo.w) * g->geo.c;
    *is = (padded ? g->src_h : g->geo.h) * *rs;
}

/* tapoff[q] for patch value q = (ky, kx, ch): its offset from the window's first value. */
static void cd_tap_offsets(const mdl_conv_direct *g, ptrdiff_t rs, ptrdiff_t *tapoff) {
    ptrdiff_t q = 0;
    for (ptrdiff_t ky = 0; ky < g->geo.kh; ky++)
        for (ptrdiff_t kx = 0; kx < g->geo.kw; kx++)
            for (ptrdiff_t ch = 0; ch < g->geo.c; ch++)
                tapoff[q++] = ky * g->geo.dh * rs + kx * g->geo.dw * g->geo.c + ch;
}

/* pixoff[p] for the output pixels p of one chunk, in order: the offset of p's window from
 * the chunk's first image. */
static void cd_pixel_offsets(const mdl_conv_direct *g, ptrdiff_t rs, ptrdiff_t is,
                             ptrdiff_t images, ptrdiff_t *pixoff) {
    ptrdiff_t p = 0;
    for (ptrdiff_t i = 0; i < images; i++)
        for (ptrdiff_t oy = 0; oy < g->geo.out_h; oy++)
            for (ptrdiff_t ox = 0; ox < g->geo.out_w; ox++)
                pixoff[p++] = i * is + oy * g->geo.sh * rs + ox * g->geo.sw * g->geo.c;
}

/* A run of input columns ix0, ix0 + sw, ... (count of them, at most x_mr) that receive the
 * same taps in the same order: col2im adds, to input column ix, the patch-gradient values
 * of the output columns ox whose window covers it (tap kx = (ix + pad_left - ox * sw) / dw),
 * interior columns first (tap by tap, or column by column, as the loops of _col2im_image in
 * _convolution.pyx go), then the left edge's, then the right edge's, each in column order.
 * Pixel j of the run then reads output column ox(kx) + j for each tap kx of the list. */
typedef struct {
    ptrdiff_t ix0, count;
    ptrdiff_t taps;      /* length of the list */
    const ptrdiff_t *kx; /* the taps in order */
    ptrdiff_t *ox;       /* the output column of each for pixel 0 */
} cd_col_tile;

/* The taps of input column ix in col2im's order into kx; returns their number. */
static ptrdiff_t cd_column_taps(const mdl_conv_direct *g, ptrdiff_t ix, ptrdiff_t *kx) {
    ptrdiff_t inner = 0, left = 0, right = 0, n = 0;
    ptrdiff_t *by_class = kx + g->geo.kw; /* scratch: left edge, then right edge, kx ascending */
    for (ptrdiff_t t = 0; t < g->geo.kw; t++) {
        ptrdiff_t at = ix + g->geo.pad_left - t * g->geo.dw;
        if (at < 0 || at % g->geo.sw) continue;
        ptrdiff_t ox = at / g->geo.sw;
        if (ox >= g->geo.out_w) continue;
        if (ox < g->interior_lo) by_class[left++] = t;
        else if (ox < g->interior_hi) kx[inner++] = t;
        else by_class[g->geo.kw + right++] = t;
    }
    /* kx ascending is output column descending */
    if (!g->interior_by_tap)
        for (ptrdiff_t i = 0; i < inner / 2; i++) {
            ptrdiff_t s = kx[i];
            kx[i] = kx[inner - 1 - i];
            kx[inner - 1 - i] = s;
        }
    n = inner;
    for (ptrdiff_t i = left - 1; i >= 0; i--) kx[n++] = by_class[i];
    for (ptrdiff_t i = right - 1; i >= 0; i--) kx[n++] = by_class[g->geo.kw + i];
    return n;
}

/* The column runs of the input gradient: tiles (at most w) and their tap lists (kx, at
 * most w * kw values; lists has room for 3 * kw more; ox: room for w * kw). Returns the
 * number of tiles. */
static ptrdiff_t cd_col_tiles(const mdl_conv_direct *g, int x_mr, cd_col_tile *tiles,
                              ptrdiff_t *lists, ptrdiff_t *ox) {
    ptrdiff_t count = 0, used = 0;
    for (ptrdiff_t r = 0; r < g->geo.sw && r < g->geo.w; r++) {
        ptrdiff_t ix = r;
        while (ix < g->geo.w) {
            cd_col_tile *t = &tiles[count++];
            t->ix0 = ix;
            t->kx = lists + used;
            t->taps = cd_column_taps(g, ix, lists + used);
            t->count = 1;
            t->ox = ox + used;
            for (ptrdiff_t i = 0; i < t->taps; i++)
                t->ox[i] = (ix + g->geo.pad_left - t->kx[i] * g->geo.dw) / g->geo.sw;
            used += t->taps;
            ix += g->geo.sw;
            /* the next column joins the run when its list is the same */
            while (ix < g->geo.w && t->count < x_mr) {
                ptrdiff_t taps = cd_column_taps(g, ix, lists + used);
                if (taps != t->taps || memcmp(lists + used, t->kx, (size_t)taps * sizeof *lists))
                    break;
                t->count++;
                ix += g->geo.sw;
            }
        }
    }
    return count;
}

/* The output rows oy (ascending, as col2im adds them) whose window covers input row iy, and
 * their taps ky, into oy_ky (pairs); returns their number. */
static ptrdiff_t cd_row_taps(const mdl_conv_direct *g, ptrdiff_t iy, ptrdiff_t *oy_ky) {
    ptrdiff_t at = iy + g->geo.pad_top, n = 0;
    ptrdiff_t lowest = at - (g->geo.kh - 1) * g->geo.dh;
    ptrdiff_t oy = lowest <= 0 ? 0 : (lowest + g->geo.sh - 1) / g->geo.sh;
    for (; oy < g->geo.out_h && oy * g->geo.sh <= at; oy++) {
        ptrdiff_t t = at - oy * g->geo.sh;
        if (t % g->geo.dh == 0 && t / g->geo.dh < g->geo.kh) {
            oy_ky[2 * n] = oy;
            oy_ky[2 * n + 1] = t / g->geo.dh;
            n++;
        }
    }
    return n;
}

/* The backward pass split by rows (backward_rows_part) keeps a K x f partial kernel
 * gradient per thread; past this much it splits by tiles instead (3x3x512 -> 512 in
 * float32 on 16 threads would take 151 MB). */
#define MDL_CONV_PARTIALS_MAX_BYTES ((size_t)64 << 20)

#define CD_CAT_(a, b) a##b
#define CD_CAT(a, b) CD_CAT_(a, b)

#define CD_T float
#define CD_SFX _f32
#define CD_BLOCKING(kern) ((kern)->s)
#define CD_GATHER(kern) ((kern)->sconv_gather)
#define CD_GATHER_T(kern) ((kern)->sconv_gather_t)
#define CD_COL2IM(kern) ((kern)->sconv_col2im)
#define CD_GATHER_FN mdl_sconv_gather
#define CD_COL2IM_FN mdl_sconv_col2im
#include "conv_direct_driver.inc"
#undef CD_T
#undef CD_SFX
#undef CD_BLOCKING
#undef CD_GATHER
#undef CD_GATHER_T
#undef CD_COL2IM
#undef CD_GATHER_FN
#undef CD_COL2IM_FN

#define CD_T double
#define CD_SFX _f64
#define CD_BLOCKING(kern) ((kern)->d)
#define CD_GATHER(kern) ((kern)->dconv_gather)
#define CD_GATHER_T(kern) ((kern)->dconv_gather_t)
#define CD_COL2IM(kern) ((kern)->dconv_col2im)
#define CD_GATHER_FN mdl_dconv_gather
#define CD_COL2IM_FN mdl_dconv_col2im
#include "conv_direct_driver.inc"
