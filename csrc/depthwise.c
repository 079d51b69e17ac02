/* depthwise.c - the depthwise convolution (DepthwiseConv1D/2D, SeparableConv1D/2D's first
 * step) computed directly from the images: forward, input gradient and kernel gradient.
 *
 * Why not the convolution's GEMM: each channel is its own convolution with a kh * kw patch,
 * so the GEMM per channel is (pixels x 9) @ (9 x 1), far too small to pay for its packing.
 * Channels are contiguous in channels_last images, so the loops here run along them, which
 * vectorises without any gather (depthwise.inc, compiled once per instruction set with its
 * own target attribute and chosen at each call by the active kernel table's architecture,
 * which MINIDL_ARCH governs like every other kernel's).
 *
 * Threads split the forward pass over output rows. The backward pass goes through the batch
 * in chunks of about DW_CHUNK_PIXELS output pixels (whole rows of one image): each chunk's
 * kernel gradient is summed into its own partial (scratch slot 2), and the input gradient of
 * the chunk's rows is computed right after, while its dy is in cache (one pass over dy rather
 * than two: these loops are bound by memory at MobileNet's sizes); the partials are then
 * added in chunk order. Each value is computed by one thread in an order set by the shapes,
 * so the bits never depend on the thread count.
 */
#include <string.h>

#include "depthwise.h"
#include "kernels.h"

#ifdef MDL_X86
#include <immintrin.h>
#endif

#if MDL_HAVE_OPENMP
#include <omp.h>
#endif

/* Output pixels per chunk of the kernel gradient (rounded to whole rows): large enough that
 * each chunk's partial gradient (kh * kw * channels values, written once per chunk) costs
 * little beside the chunk's sum; small enough that a batch of a few images still has a
 * chunk per thread. */
#define DW_CHUNK_PIXELS 512

/* [t0, t1): the taps t of an axis with 0 <= i0 + t * d < n (the window starts at i0,
 * possibly before the input). */
static inline void dw_taps(ptrdiff_t i0, ptrdiff_t d, ptrdiff_t k, ptrdiff_t n, ptrdiff_t *t0,
                           ptrdiff_t *t1) {
    ptrdiff_t lo = i0 >= 0 ? 0 : (-i0 + d - 1) / d;
    ptrdiff_t hi = n - 1 - i0 < 0 ? 0 : (n - 1 - i0) / d + 1;
    if (hi > k) hi = k;
    if (lo > k) lo = k;
    *t0 = lo;
    *t1 = hi > lo ? hi : lo;
}

/* The (tap, output index) pairs of an axis whose window covers input index i, tap order;
 * returns their count. */
static inline ptrdiff_t dw_reaching(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t s, ptrdiff_t d,
                                    ptrdiff_t k, ptrdiff_t out, ptrdiff_t *pairs) {
    ptrdiff_t count = 0;
    for (ptrdiff_t t = 0; t < k; t++) {
        ptrdiff_t num = i + pad - t * d;
        if (num < 0) break;
        if (num % s != 0) continue;
        ptrdiff_t o = num / s;
        if (o >= out) continue;
        pairs[2 * count] = t;
        pairs[2 * count + 1] = o;
        count++;
    }
    return count;
}

/* One version per (architecture, element type) of depthwise.inc, each over its vector
 * vocabulary. Generic is scalar (one-lane "vectors", two roundings per multiply-add, which
 * the compiler may still vectorise); AVX2 and AVX-512 use their FMA. DW_NV vectors of
 * channels per block (independent sums, about what an FMA's latency times its two ports
 * wants in flight); DW_NV_K per block of the 3x3 kernel gradient, whose nine taps' sums all
 * stay in registers (9 * DW_NV_K of AVX-512's 32, of AVX2's 16). */
#define DW_CAT_(a, b, c) a##b##c
#define DW_CAT(a, b, c) DW_CAT_(a, b, c)
#define DW_NV 4

#define DW_TARGET
#define DW_VL 1
#define DW_M int
#define DW_MASK(n) (n)
#define DW_NV_K 1
#define DW_ZERO() 0
#define DW_LOAD(p) (*(p))
#define DW_LOADM(p, m) ((void)(m), *(p))
#define DW_STORE(p, v) (*(p) = (v))
#define DW_STOREM(p, m, v) ((void)(m), *(p) = (v))
#define DW_FMA(a, b, c) ((a) * (b) + (c))
#define DW_T float
#define DW_V float
#define DW_NAME(f) DW_CAT(f, _f32, _generic)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_V
#undef DW_T
#define DW_T double
#define DW_V double
#define DW_NAME(f) DW_CAT(f, _f64, _generic)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_V
#undef DW_T
#undef DW_TARGET
#undef DW_VL
#undef DW_M
#undef DW_MASK
#undef DW_NV_K
#undef DW_ZERO
#undef DW_LOAD
#undef DW_LOADM
#undef DW_STORE
#undef DW_STOREM
#undef DW_FMA

#ifdef MDL_X86
#define DW_TARGET MDL_TARGET_AVX512
#define DW_NV_K 2
#define DW_T float
#define DW_V __m512
#define DW_VL 16
#define DW_M __mmask16
#define DW_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#define DW_ZERO() _mm512_setzero_ps()
#define DW_LOAD(p) _mm512_loadu_ps(p)
#define DW_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define DW_STORE(p, v) _mm512_storeu_ps((p), (v))
#define DW_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define DW_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define DW_NAME(f) DW_CAT(f, _f32, _avx512)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_T
#undef DW_V
#undef DW_VL
#undef DW_M
#undef DW_MASK
#undef DW_ZERO
#undef DW_LOAD
#undef DW_LOADM
#undef DW_STORE
#undef DW_STOREM
#undef DW_FMA

#define DW_T double
#define DW_V __m512d
#define DW_VL 8
#define DW_M __mmask8
#define DW_MASK(n) ((__mmask8)((1u << (n)) - 1u))
#define DW_ZERO() _mm512_setzero_pd()
#define DW_LOAD(p) _mm512_loadu_pd(p)
#define DW_LOADM(p, m) _mm512_maskz_loadu_pd((m), (p))
#define DW_STORE(p, v) _mm512_storeu_pd((p), (v))
#define DW_STOREM(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define DW_FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define DW_NAME(f) DW_CAT(f, _f64, _avx512)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_T
#undef DW_V
#undef DW_VL
#undef DW_M
#undef DW_MASK
#undef DW_ZERO
#undef DW_LOAD
#undef DW_LOADM
#undef DW_STORE
#undef DW_STOREM
#undef DW_FMA
#undef DW_TARGET
#undef DW_NV_K

#define DW_TARGET MDL_TARGET_AVX2
#define DW_NV_K 1
#define DW_M __m256i
#define DW_T float
#define DW_V __m256
#define DW_VL 8
#define DW_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), \
                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define DW_ZERO() _mm256_setzero_ps()
#define DW_LOAD(p) _mm256_loadu_ps(p)
#define DW_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define DW_STORE(p, v) _mm256_storeu_ps((p), (v))
#define DW_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define DW_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define DW_NAME(f) DW_CAT(f, _f32, _avx2)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_T
#undef DW_V
#undef DW_VL
#undef DW_MASK
#undef DW_ZERO
#undef DW_LOAD
#undef DW_LOADM
#undef DW_STORE
#undef DW_STOREM
#undef DW_FMA

#define DW_T double
#define DW_V __m256d
#define DW_VL 4
#define DW_MASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define DW_ZERO() _mm256_setzero_pd()
#define DW_LOAD(p) _mm256_loadu_pd(p)
#define DW_LOADM(p, m) _mm256_maskload_pd((p), (m))
#define DW_STORE(p, v) _mm256_storeu_pd((p), (v))
#define DW_STOREM(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define DW_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define DW_NAME(f) DW_CAT(f, _f64, _avx2)
#include "depthwise.inc"
#undef DW_NAME
#undef DW_T
#undef DW_V
#undef DW_VL
#undef DW_MASK
#undef DW_ZERO
#undef DW_LOAD
#undef DW_LOADM
#undef DW_STORE
#undef DW_STOREM
#undef DW_FMA
#undef DW_M
#undef DW_TARGET
#undef DW_NV_K
#endif

/* The versions of one element type, one entry per architecture (mdl_arch order). */
#define DW_TABLE(T, TS)                                                                      \
    typedef struct {                                                                         \
        void (*forward_row)(const mdl_window *, const T *, const T *, T *, ptrdiff_t);       \
        void (*input_grad_row)(const mdl_window *, const T *, const T *, T *, ptrdiff_t,     \
                               ptrdiff_t *);                                                 \
        void (*kernel_grad_rows)(const mdl_window *, const T *, const T *, T *, ptrdiff_t,   \
                                 ptrdiff_t);                                                 \
        void (*sum_parts)(const T *, ptrdiff_t, ptrdiff_t, T *, ptrdiff_t, ptrdiff_t);       \
    } dw_kernels_##TS;

DW_TABLE(float, f32)
DW_TABLE(double, f64)

#define DW_ENTRY(TS, SFX) \
    { dw_forward_row_##TS##SFX, dw_input_grad_row_##TS##SFX, dw_kernel_grad_rows_##TS##SFX, \
      dw_sum_parts_##TS##SFX }

#ifdef MDL_X86
static const dw_kernels_f32 dw_versions_f32[3] = {
    DW_ENTRY(f32, _generic), DW_ENTRY(f32, _avx2), DW_ENTRY(f32, _avx512)};
static const dw_kernels_f64 dw_versions_f64[3] = {
    DW_ENTRY(f64, _generic), DW_ENTRY(f64, _avx2), DW_ENTRY(f64, _avx512)};
#define DW_ACTIVE(TS) (&dw_versions_##TS[mdl_active_kernels()->arch])
#else
static const dw_kernels_f32 dw_versions_f32[1] = {DW_ENTRY(f32, _generic)};
static const dw_kernels_f64 dw_versions_f64[1] = {DW_ENTRY(f64, _generic)};
#define DW_ACTIVE(TS) (&dw_versions_##TS[0])
#endif

static int dw_thread_id(void) {
#if MDL_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The public functions of depthwise.h for one element type. */
#define DW_DRIVERS(T, TS)                                                                    \
int mdl_depthwise_forward_##TS(const mdl_window *g, ptrdiff_t n, const T *x, const T *k,      \
                               T *y) {                                                       \
    const dw_kernels_##TS *kt = DW_ACTIVE(TS);                                               \
    const ptrdiff_t rows = n * g->out_h;                                                     \
    const int nth = mdl_threads_for((double)rows * g->out_w * g->c * g->kh * g->kw,         \
                                    (double)rows);                                           \
    _Pragma("omp parallel for num_threads(nth) schedule(static) if(nth > 1)")               \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                   \
        const ptrdiff_t img = r / g->out_h, oy = r % g->out_h;                               \
        kt->forward_row(g, x + img * g->h * g->w * g->c, k, y + r * g->out_w * g->c, oy);     \
    }                                                                                        \
    return 0;                                                                                \
}                                                                                            \
                                                                                             \
int mdl_depthwise_backward_##TS(const mdl_window *g, ptrdiff_t n, const T *x, const T *dy,    \
                                const T *k, T *dk, T *dx) {                                  \
    const dw_kernels_##TS *kt = DW_ACTIVE(TS);                                               \
    const ptrdiff_t size = g->kh * g->kw * g->c;                                             \
    const ptrdiff_t per = 2 * (g->kh + g->kw);                                               \
    if (n == 0) {                                                                            \
        memset(dk, 0, (size_t)size * sizeof(T));                                             \
        return 0;                                                                            \
    }                                                                                        \
    ptrdiff_t band = DW_CHUNK_PIXELS / (g->out_w > 0 ? g->out_w : 1);                        \
    if (band < 1) band = 1;                                                                  \
    if (band > g->out_h) band = g->out_h > 0 ? g->out_h : 1;                                 \
    const ptrdiff_t per_image = g->out_h > 0 ? (g->out_h + band - 1) / band : 1;            \
    const ptrdiff_t chunks = n * per_image;                                                  \
    int nth = mdl_threads_for((double)n * g->out_h * g->out_w * size * (dx ? 2 : 1),        \
                              (double)chunks);                                               \
    /* Scratch: the chunks' partial gradients, then each thread's (tap, pixel) pairs. */     \
    const size_t parts_bytes = ((size_t)chunks * size * sizeof(T) + 63) / 64 * 64;           \
    char *scratch = (char *)mdl_scratch(2, parts_bytes + (size_t)nth * per * sizeof(ptrdiff_t)); \
    if (scratch == NULL) return -1;                                                          \
    T *parts = (T *)scratch;                                                                 \
    ptrdiff_t *pairs = (ptrdiff_t *)(scratch + parts_bytes);                                 \
    _Pragma("omp parallel num_threads(nth) if(nth > 1)")                                    \
    {                                                                                        \
        ptrdiff_t *mine = pairs + dw_thread_id() * per;                                      \
        _Pragma("omp for schedule(static)")                                                 \
        for (ptrdiff_t ch = 0; ch < chunks; ch++) {                                          \
            const ptrdiff_t img = ch / per_image, part = ch % per_image;                     \
            const ptrdiff_t oy0 = part * band;                                               \
            const ptrdiff_t oy1 = oy0 + band < g->out_h ? oy0 + band : g->out_h;             \
            const T *x_img = x + img * g->h * g->w * g->c;                                   \
            const T *dy_img = dy + img * g->out_h * g->out_w * g->c;                         \
            kt->kernel_grad_rows(g, x_img, dy_img, parts + ch * size, oy0, oy1);             \
            if (dx == NULL) continue;                                                        \
            /* The input rows of the chunk's band while its dy is in cache: rows            \
             * [oy0 * sh, oy1 * sh), the image's last band to its end. */                     \
            ptrdiff_t iy0 = oy0 * g->sh, iy1 = part == per_image - 1 ? g->h : oy1 * g->sh;  \
            if (iy1 > g->h) iy1 = g->h;                                                      \
            for (ptrdiff_t iy = iy0; iy < iy1; iy++)                                         \
                kt->input_grad_row(g, dy_img, k,                                             \
                                   dx + (img * g->h + iy) * g->w * g->c, iy, mine);          \
        }                                                                                    \
    }                                                                                        \
    /* The kernel gradient: the partials' sums in chunk order, over fixed blocks. */         \
    const ptrdiff_t block = 1024, blocks = (size + block - 1) / block;                       \
    nth = mdl_threads_for((double)chunks * size, (double)blocks);                            \
    _Pragma("omp parallel for num_threads(nth) schedule(static) if(nth > 1)")               \
    for (ptrdiff_t b = 0; b < blocks; b++) {                                                 \
        const ptrdiff_t e1 = (b + 1) * block < size ? (b + 1) * block : size;                \
        kt->sum_parts(parts, chunks, size, dk, b * block, e1);                               \
    }                                                                                        \
    return 0;                                                                                \
}

DW_DRIVERS(float, f32)
DW_DRIVERS(double, f64)
