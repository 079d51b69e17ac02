# The sliding-window geometry of the convolution and pooling kernels (_convolution.pyx,
# _pooling.pyx, _conv_pool.pyx) and the small pieces of code they share.
#
# window_geometry() is the one place where a layer's window arguments become a geometry and
# are checked: kernel_size (or pool_size), strides, dilation, pads and out_hw, pairs of ints
# (rows, columns) that the layers compute with Keras' rules (minidl/layers/conv_utils.py).
# ``pads`` are the rows / columns of zeros before the input (top, left); the padding after
# it is implied by ``out_hw``. The kernels bounds-check every index against the input, so
# any geometry that passes here is memory-safe.
#
# Everything here is inline: this file has no module of its own.
from cython cimport floating
from libc.string cimport memcpy

cdef enum:
    # Below this many elements a parallel region costs more than it saves.
    PARALLEL_MIN_ELEMENTS = 1 << 15
    # The scratch slot of a kernel's buffers shared with its parallel region (kept from call
    # to call, so that a training step allocates nothing; see mdl_scratch in csrc/minidl.h).
    SHARED_SCRATCH = 2


# mdl_window (csrc/minidl.h, declared in _backend.pxd), the one geometry struct of the C and
# Cython kernels: one image (h, w, c) of a channels_last batch; a (kh, kw) window moved by
# strides (sh, sw) whose taps lie dilation (dh, dw) apart (1 for pooling); pad_top / pad_left
# rows / columns of zeros before the image; out_h x out_w window positions. The batch size
# travels beside it.
from minidl._core._backend cimport mdl_window


cdef inline int window_geometry(mdl_window *g, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                                object kernel_size, object strides, object dilation,
                                object pads, object out_hw) except -1:
    """Fills ``g`` for images of (h, w, c) from the window's arguments, pairs of ints;
    ValueError when one is out of range (a window, stride or dilation below 1, a negative
    pad or output size) or when an image holds 2**31 values or more (argmax indices are C
    ints)."""
    # One unpacking in a loop rather than five: this function is inlined into three modules.
    cdef Py_ssize_t v[10]
    cdef int i = 0
    for pair in (kernel_size, strides, dilation, pads, out_hw):
        v[i], v[i + 1] = pair
        i += 2
    g.h, g.w, g.c = h, w, c
    g.kh, g.kw, g.sh, g.sw, g.dh, g.dw = v[0], v[1], v[2], v[3], v[4], v[5]
    g.pad_top, g.pad_left, g.out_h, g.out_w = v[6], v[7], v[8], v[9]
    if (min(g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) < 1
            or min(g.out_h, g.out_w, g.pad_top, g.pad_left) < 0):
        raise ValueError(f"invalid geometry: kernel {kernel_size}, strides {strides}, "
                         f"dilation {dilation}, pads {pads}, output {out_hw}; expected "
                         f"windows, strides and dilation of at least 1, pads and output sizes "
                         f"of at least 0")
    if h * w * c >= 2 ** 31:
        raise ValueError(f"images of shape {(h, w, c)} hold more than 2**31 values")
    return 0


cdef inline void interior(const mdl_window *g, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """[lo, hi): the output columns whose window lies inside the input horizontally."""
    # (C division truncates toward zero, so a negative numerator is handled apart.)
    cdef Py_ssize_t last = g.w - 1 - (g.kw - 1) * g.dw + g.pad_left
    lo[0] = min((g.pad_left + g.sw - 1) // g.sw, g.out_w)
    hi[0] = max(min(last // g.sw + 1, g.out_w), lo[0]) if last >= 0 else lo[0]


cdef inline void copy_values(floating *dst, const floating *src,
                             Py_ssize_t count) noexcept nogil:
    # Receptive-field rows are short (kw * c values); a plain loop beats a memcpy call there.
    cdef Py_ssize_t i
    if count >= 64:
        memcpy(dst, src, count * sizeof(floating))
    else:
        for i in range(count):
            dst[i] = src[i]


cdef inline void add_values(floating *dst, const floating *src, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        dst[i] += src[i]
