/* depthwise.h - the depthwise convolution's C API (csrc/depthwise.c).
 *
 * A depthwise convolution filters each channel of a channels_last image on its own, with its
 * own kernel: channel c of the output is channel c of the input correlated with
 * kernel[:, :, c], the kernel read as (kh * kw, c). The geometry is an mdl_window
 * (minidl.h); n images. (A depth multiplier dm > 1 is this with each input channel repeated
 * dm times, which minidl/_core/_depthwise.pyx does.)
 *
 *   forward:       y[n, oy, ox, c] = sum over taps (ky, kx) inside the image of
 *                  x[n, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw, c] * k[ky, kx, c]
 *   input grad:    dx[n, iy, ix, c] = sum over the taps (ky, kx) reaching (iy, ix) of dy * k
 *   kernel grad:   dk[ky, kx, c] = sum over images and output pixels of x * dy
 *
 * Each output value is computed by one thread, in an order that depends on the shapes only;
 * the kernel gradient sums fixed chunks of output rows (their partial sums in scratch slot
 * 2) in chunk order. So the bits never depend on the thread count. Each function returns 0,
 * or -1 when the scratch memory cannot be had. Outputs are overwritten. Nothing is
 * validated here (minidl/_core/_depthwise.pyx does it).
 */
#ifndef MINIDL_DEPTHWISE_H
#define MINIDL_DEPTHWISE_H

#include "minidl.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

int mdl_depthwise_forward_f32(const mdl_window *g, ptrdiff_t n, const float *x, const float *k,
                              float *y);
int mdl_depthwise_forward_f64(const mdl_window *g, ptrdiff_t n, const double *x,
                              const double *k, double *y);
/* dk = the kernel gradient and, when dx is not NULL, dx = the input gradient. */
int mdl_depthwise_backward_f32(const mdl_window *g, ptrdiff_t n, const float *x,
                               const float *dy, const float *k, float *dk, float *dx);
int mdl_depthwise_backward_f64(const mdl_window *g, ptrdiff_t n, const double *x,
                               const double *dy, const double *k, double *dk, double *dx);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
