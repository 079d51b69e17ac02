/* pooling.c - the hot loops of max pooling over float32 channels-last images.
 *
 * minidl/_core/_conv.pyx holds the pooling kernels for every geometry and dtype; the two
 * loops here are the common 2x2 window (forward) and the one-pass backward of windows that
 * tile the image, for float32. They are in C only to be compiled for AVX-512 and AVX2 as
 * well as baseline x86-64 (target_clones, as in optimizers.c): Cython modules are built for
 * the baseline, whose 4-wide selects made these loops a tenth of a CNN training step.
 * Both only compare and select, so every version gives the same bits as the Cython loops.
 */
#include <stddef.h>
#include <string.h> /* a libc header before clones.h: it defines __GLIBC__ */

#include "minidl.h"

#include "clones.h"

/* out = max(out, src) per channel with idx following the winner: the first maximum wins
 * ties, a NaN wins over any number (as _max_update in _conv.pyx). */
static inline void max_update(float *MDL_RESTRICT out, int *MDL_RESTRICT idx,
                              const float *MDL_RESTRICT src, int pos, ptrdiff_t c) {
    for (ptrdiff_t ch = 0; ch < c; ch++) {
        float v = src[ch], cur = out[ch];
        int take = (v > cur) | ((v != v) & (cur == cur));
        out[ch] = take ? v : cur;
        idx[ch] = take ? pos + (int)ch : idx[ch];
    }
}

MDL_CLONES
void mdl_max_pool_2x2_row_f32(const float *image, ptrdiff_t w, ptrdiff_t c, ptrdiff_t y0,
                              ptrdiff_t sw, ptrdiff_t pad_left, ptrdiff_t lo, ptrdiff_t hi,
                              float *out_row, int *idx_row) {
    for (ptrdiff_t ox = lo; ox < hi; ox++) {
        float *out = out_row + ox * c;
        int *idx = idx_row + ox * c;
        int p0 = (int)((y0 * w + ox * sw - pad_left) * c), p1 = p0 + (int)c;
        int p2 = p0 + (int)(w * c), p3 = p2 + (int)c;
        for (ptrdiff_t ch = 0; ch < c; ch++) {
            out[ch] = image[p0 + ch];
            idx[ch] = p0 + (int)ch;
        }
        max_update(out, idx, image + p1, p1, c);
        max_update(out, idx, image + p2, p2, c);
        max_update(out, idx, image + p3, p3, c);
    }
}

MDL_CLONES
void mdl_unpool_tiled_f32(ptrdiff_t h, ptrdiff_t w, ptrdiff_t c, ptrdiff_t kh, ptrdiff_t kw,
                          ptrdiff_t out_h, ptrdiff_t out_w, const float *dy, const int *argmax,
                          const float *gate, float *dx) {
    ptrdiff_t covered = out_w * kw;
    for (ptrdiff_t iy = 0; iy < h; iy++) {
        float *row = dx + iy * w * c;
        ptrdiff_t oy = iy / kh;
        if (oy >= out_h) {
            for (ptrdiff_t j = 0; j < w * c; j++) row[j] = 0;
            continue;
        }
        for (ptrdiff_t ox = 0; ox < out_w; ox++) {
            ptrdiff_t o = (oy * out_w + ox) * c;
            const float *grad = dy + o;
            const int *idx = argmax + o;
            const float *g = gate ? gate + o : NULL;
            for (ptrdiff_t kx = 0; kx < kw; kx++) {
                ptrdiff_t ix = ox * kw + kx;
                int pos = (int)((iy * w + ix) * c);
                float *dst = row + ix * c;
                if (g) {
                    for (ptrdiff_t ch = 0; ch < c; ch++) {
                        float v = grad[ch];
                        int hit = (idx[ch] == pos + (int)ch) & (g[ch] > 0);
                        dst[ch] = hit ? v : 0.0f;
                    }
                } else {
                    for (ptrdiff_t ch = 0; ch < c; ch++) {
                        float v = grad[ch];
                        dst[ch] = idx[ch] == pos + (int)ch ? v : 0.0f;
                    }
                }
            }
        }
        for (ptrdiff_t j = covered * c; j < w * c; j++) row[j] = 0;
    }
}
