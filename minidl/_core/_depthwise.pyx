# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Depthwise convolution kernels (channels_last images) for DepthwiseConv1D/2D and the
depthwise step of SeparableConv1D/2D.

Thin: each function checks its arrays (dtype, rank, contiguity, alignment, shapes) and the
geometry (_window.pxd), then calls csrc/depthwise.c without the GIL, which computes the
convolution directly from the images (no patch matrix: a GEMM per channel is far too small),
vectorised along the channels, one version per instruction set. The kernel is taken as
``(kh, kw, c, depth_multiplier)``, Keras' layout; output channel ``c * depth_multiplier + m``
is input channel ``c`` filtered by ``kernel[:, :, c, m]``: the C kernels compute the
multiplier-1 convolution, and a larger multiplier runs as that of the input with each channel
repeated ``depth_multiplier`` times (a copy; the input gradient then sums the repeats).

Determinism: see csrc/depthwise.h; the bits never depend on the thread count.
"""
import numpy as np

cimport numpy as cnp

from minidl._core._arrays cimport aligned, carray, data, dim, float_carray
from minidl._core._backend cimport mdl_window
from minidl._core._window cimport window_geometry

cnp.import_array()


cdef extern from "depthwise.h" nogil:
    int mdl_depthwise_forward_f32(const mdl_window *g, Py_ssize_t n, const float *x,
                                  const float *k, float *y)
    int mdl_depthwise_forward_f64(const mdl_window *g, Py_ssize_t n, const double *x,
                                  const double *k, double *y)
    int mdl_depthwise_backward_f32(const mdl_window *g, Py_ssize_t n, const float *x,
                                   const float *dy, const float *k, float *dk, float *dx)
    int mdl_depthwise_backward_f64(const mdl_window *g, Py_ssize_t n, const double *x,
                                   const double *dy, const double *k, double *dk, double *dx)


cdef int _check_shape(object a, tuple expected, str name) except -1:
    if a.shape != expected:
        raise ValueError(f"{name} must have shape {expected}; received {a.shape}.")
    return 0


cdef Py_ssize_t _geometry(mdl_window *g, object image, object kernel, int t, object strides,
                          object dilation, object pads, object out_hw) except -1:
    """Checks the (kh, kw, c, dm) kernel against ``t`` and the (n, h, w, c) ``image`` shape,
    and fills ``g`` for images of c * dm channels (the repeated input); returns dm."""
    carray(kernel, t, 4, None, "kernel", False)
    if dim(kernel, 2) != image[3] or dim(kernel, 3) < 1:
        raise ValueError(f"kernel must have shape (kh, kw, {image[3]}, depth_multiplier); "
                         f"received {kernel.shape}.")
    window_geometry(g, image[1], image[2], image[3] * dim(kernel, 3),
                    (dim(kernel, 0), dim(kernel, 1)), strides, dilation, pads, out_hw)
    return dim(kernel, 3)


cdef object _repeated(object x, Py_ssize_t dm):
    """x with each channel repeated dm times, C-contiguous (x itself when dm is 1)."""
    return x if dm == 1 else np.repeat(x, dm, axis=3)


def depthwise_forward(x, kernel, y, strides, dilation, pads):
    """``y`` = the depthwise convolution of ``x`` with ``kernel`` (no bias).

    Args:
        x: (n, h, w, c) float32 or float64.
        kernel: (kh, kw, c, depth_multiplier) of x's dtype.
        y: (n, out_h, out_w, c * depth_multiplier) of x's dtype, overwritten; its rows and
            columns give the output size.
        strides, dilation, pads: pairs of ints (pads: zeros before the input, top and left).

    Raises:
        TypeError, ValueError: an array of the wrong type, rank, layout or shape, a
            misaligned output, or an invalid geometry.
        MemoryError: no memory for the kernel's scratch.
    """
    x, kernel = aligned(x), aligned(kernel)
    cdef int t = float_carray(x, 4, None, "x")
    carray(y, t, 4, None, "y", True)
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    cdef Py_ssize_t dm = _geometry(&g, x.shape, kernel, t, strides, dilation, pads,
                                   (dim(y, 1), dim(y, 2)))
    _check_shape(y, (n, g.out_h, g.out_w, g.c), "y")
    x = _repeated(x, dm)
    cdef char *x_p = data(x)
    cdef char *k_p = data(kernel)
    cdef char *y_p = data(y)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = mdl_depthwise_forward_f32(&g, n, <const float *>x_p, <const float *>k_p,
                                               <float *>y_p)
        else:
            status = mdl_depthwise_forward_f64(&g, n, <const double *>x_p,
                                               <const double *>k_p, <double *>y_p)
    if status != 0:
        raise MemoryError("depthwise_forward: no memory for the kernel's scratch")


def depthwise_backward(x, dy, kernel, d_kernel, dx, strides, dilation, pads):
    """Gradients of :func:`depthwise_forward` from ``dy``: ``d_kernel`` and, when ``dx`` is
    given, the input gradient.

    Args:
        x: (n, h, w, c) float32 or float64, the forward pass's input.
        dy: (n, out_h, out_w, c * depth_multiplier) of x's dtype.
        kernel: (kh, kw, c, depth_multiplier) of x's dtype.
        d_kernel: kernel's shape and dtype, overwritten.
        dx: None, or x's shape and dtype, overwritten.
        strides, dilation, pads: as for :func:`depthwise_forward`.

    Raises:
        TypeError, ValueError, MemoryError: as :func:`depthwise_forward`.
    """
    x, dy, kernel = aligned(x), aligned(dy), aligned(kernel)
    cdef int t = float_carray(x, 4, None, "x")
    carray(dy, t, 4, None, "dy", False)
    carray(d_kernel, t, 4, None, "d_kernel", True)
    _check_shape(d_kernel, kernel.shape, "d_kernel")
    if dx is not None:
        carray(dx, t, 4, None, "dx", True)
        _check_shape(dx, x.shape, "dx")
    cdef mdl_window g
    cdef Py_ssize_t n = dim(x, 0)
    cdef Py_ssize_t dm = _geometry(&g, x.shape, kernel, t, strides, dilation, pads,
                                   (dim(dy, 1), dim(dy, 2)))
    _check_shape(dy, (n, g.out_h, g.out_w, g.c), "dy")
    # With a multiplier, the input gradient of the repeated input, whose repeats add up to dx.
    repeats = None if dx is None or dm == 1 else np.empty((n,) + x.shape[1:3] + (g.c,), x.dtype)
    x = _repeated(x, dm)
    cdef char *x_p = data(x)
    cdef char *dy_p = data(dy)
    cdef char *k_p = data(kernel)
    cdef char *dk_p = data(d_kernel)
    cdef char *dx_p = NULL if dx is None else data(dx if repeats is None else repeats)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT:
            status = mdl_depthwise_backward_f32(&g, n, <const float *>x_p,
                                                <const float *>dy_p, <const float *>k_p,
                                                <float *>dk_p, <float *>dx_p)
        else:
            status = mdl_depthwise_backward_f64(&g, n, <const double *>x_p,
                                                <const double *>dy_p, <const double *>k_p,
                                                <double *>dk_p, <double *>dx_p)
    if status != 0:
        raise MemoryError("depthwise_backward: no memory for the kernel's scratch")
    if repeats is not None:
        # The repeats in order (numpy's reduction over so short an axis is far slower).
        parts = repeats.reshape(repeats.shape[:3] + (g.c // dm, dm))
        np.copyto(dx, parts[..., 0])
        for m in range(1, dm):
            np.add(dx, parts[..., m], out=dx)
