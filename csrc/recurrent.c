/* recurrent.c - the per-step gate passes of the recurrent layers (LSTM, GRU with
 * reset_after, SimpleRNN) in float32 with their default activations (tanh, sigmoid).
 *
 * minidl/_core/_recurrent.pyx runs the time loop (the GEMMs, masks, outputs, threads) and
 * calls these once per sample and step: the gate activations, the state update and, going
 * back, the gate gradients, which are most of a recurrent layer's time (a 64-unit LSTM
 * spends ~4 ns per gate value in them, against ~2 in its GEMMs). They are in C only to be
 * compiled for AVX-512 and AVX2 as well as baseline x86-64 (arch_versions.inc), the active
 * kernel table choosing the version (kernels.h): Cython modules are built for the baseline,
 * where the branch-free tanh and sigmoid (exact_math.h) run 4 lanes wide. Every version
 * performs the same IEEE operations in the same order (no FMA contraction): the same bits
 * under every architecture, and the same as the Cython loops of other activations and of
 * float64.
 */
#include <stddef.h>

#include "kernels.h"
#include "exact_math.h"

#define RNN_CAT_(a, b) a##b
#define RNN_CAT(a, b) RNN_CAT_(a, b)

/* Gradients that fade through the steps are flushed to zero below 2^-100 before they reach
 * the subnormal range (the rule of _recurrent.pyx's _flush). */
MDL_MATH_INLINE float rnn_flush(float x) { return mdl_blendf(fabsf(x) < 0x1p-100f, 0.0f, x); }
#define RNN_FLUSH(x) rnn_flush(x)

/* The derivatives from the activations' outputs, as _recurrent.pyx's _dact computes them in
 * float32: tanh' = 1 - y * y, whose one subtraction Cython writes in double (1.0 - y * y);
 * rounding a single operation on floats through double gives the float result, so it is
 * written in float. sigmoid' = y * (1 - y) takes two operations in double, kept so. */
MDL_MATH_INLINE float rnn_dtanh(float y) { return 1.0f - y * y; }
MDL_MATH_INLINE float rnn_dsigmoid(float y) { return (float)((double)y * (1.0 - (double)y)); }
#define RNN_DTANH(y) rnn_dtanh(y)
#define RNN_DSIGMOID(y) rnn_dsigmoid(y)

#define ARCH_VERSIONS_OF "recurrent.inc"
#include "arch_versions.inc"

#define RNN_KERNELS(ARCH, SFX)                                                              \
    {ARCH, rnn_lstm_forward_row_f32##SFX, rnn_lstm_backward_row_f32##SFX,                   \
     rnn_gru_forward_row_f32##SFX, rnn_gru_backward_row_f32##SFX,                           \
     rnn_simple_rnn_forward_row_f32##SFX, rnn_simple_rnn_backward_row_f32##SFX}
const mdl_recurrent_kernels mdl_recurrent_generic = RNN_KERNELS(MDL_ARCH_GENERIC, _generic);
#ifdef MDL_X86
const mdl_recurrent_kernels mdl_recurrent_avx2 = RNN_KERNELS(MDL_ARCH_AVX2, _avx2);
const mdl_recurrent_kernels mdl_recurrent_avx512 = RNN_KERNELS(MDL_ARCH_AVX512, _avx512);
#endif

/* The public entry points (minidl.h): the active table's version. */
#define RNN_ACTIVE (mdl_active_kernels()->recurrent)

void mdl_lstm_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                              const float *MDL_RESTRICT bias, float *MDL_RESTRICT c,
                              float *MDL_RESTRICT ac, float *MDL_RESTRICT h) {
    RNN_ACTIVE->lstm_forward_row_f32(units, gates, bias, c, ac, h);
}

void mdl_lstm_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                               const float *MDL_RESTRICT c_prev, const float *MDL_RESTRICT ac,
                               const float *MDL_RESTRICT gy, const float *MDL_RESTRICT carry,
                               float *MDL_RESTRICT dgates, float *MDL_RESTRICT dh,
                               float *MDL_RESTRICT dc) {
    RNN_ACTIVE->lstm_backward_row_f32(units, gates, c_prev, ac, gy, carry, dgates, dh, dc);
}

void mdl_gru_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                             const float *MDL_RESTRICT bias, const float *MDL_RESTRICT rproj,
                             const float *MDL_RESTRICT rbias, float *MDL_RESTRICT rh,
                             float *MDL_RESTRICT h) {
    RNN_ACTIVE->gru_forward_row_f32(units, gates, bias, rproj, rbias, rh, h);
}

void mdl_gru_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                              const float *MDL_RESTRICT h_prev, const float *MDL_RESTRICT rh,
                              const float *MDL_RESTRICT gy, const float *MDL_RESTRICT carry,
                              float *MDL_RESTRICT dgates, float *MDL_RESTRICT drproj,
                              float *MDL_RESTRICT dh) {
    RNN_ACTIVE->gru_backward_row_f32(units, gates, h_prev, rh, gy, carry, dgates, drproj, dh);
}

void mdl_simple_rnn_forward_row_f32(ptrdiff_t units, float *MDL_RESTRICT gates,
                                    const float *MDL_RESTRICT bias, float *MDL_RESTRICT h) {
    RNN_ACTIVE->simple_rnn_forward_row_f32(units, gates, bias, h);
}

void mdl_simple_rnn_backward_row_f32(ptrdiff_t units, const float *MDL_RESTRICT gates,
                                     const float *MDL_RESTRICT gy,
                                     const float *MDL_RESTRICT carry,
                                     float *MDL_RESTRICT dgates, float *MDL_RESTRICT dh) {
    RNN_ACTIVE->simple_rnn_backward_row_f32(units, gates, gy, carry, dgates, dh);
}
