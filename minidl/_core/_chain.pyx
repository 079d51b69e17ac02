# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""A compiled training step for a chain of Dense layers: forward, loss and backward of one
batch in one nogil call.

Layering: ``minidl.models.dense_chain`` decides when a model's plan is such a chain, owns
every array (weights, gradients, per-batch buffers) and builds one :class:`DenseChain` per
batch size with them. The chain keeps raw pointers and references to the arrays; each
:meth:`DenseChain.run` checks the batch it is given, then runs without the GIL:

    forward   per layer:  z = x @ W  (GEMM), then z += b, y = f(z)   (one pass)
    loss      the loss kernel on the last y: its value, and its gradient into ``grad``
    backward  per layer, last first:
              dz = dy * f'(z) and db = column sums of dz           (one pass)
              dW = x^T @ dz,  dx = dz @ W^T  (no dx for the first layer)

These are the calls Dense.forward / Dense.backward, the activation kernels and the loss
kernel make, in the same order and with the same arguments, so a compiled step gives the
bits of the layer-by-layer one (tests/test_dense_chain.py); the gain is the ~30 Python calls
per batch it replaces. With a fused head (softmax or sigmoid folded into the loss), the loss
gradient is that of the last layer's pre-activation and its backward starts at the bias
gradient, as ``Dense.backward_preactivation`` does.
"""
from libc.stdlib cimport free, malloc

cimport numpy as cnp
import numpy as np

from minidl._core._activations cimport (Kernel, Params, bias_activation_f32,
                                        bias_activation_f64)
from minidl._core._backend cimport dgemm, sgemm
from minidl._core._losses cimport LossCall, LossKernel, loss_call_run

cnp.import_array()

# What a run can fail with, reported once the GIL is back.
cdef enum:
    RUN_OK = 0
    RUN_NO_MEMORY = 1
    RUN_BAD_LABEL = 2


ctypedef struct Layer:
    int kind              # activation kernel kind (Kernel.kind)
    Params p
    bint linear           # backward: dz is dy (no pass unless there is a bias)
    Py_ssize_t fan_in, units
    char *w               # (fan_in, units)
    char *b               # (units,) or NULL
    char *dw              # (fan_in, units) gradient
    char *db              # (units,) gradient or NULL
    char *z               # (rows, units) pre-activation
    char *y               # (rows, units) output; may be z
    char *dz              # (rows, units) pre-activation gradient (unused when linear)
    char *dx              # (rows, fan_in) input gradient, or NULL (first layer)


# ---- the step, without the GIL ----

ctypedef fused floating:
    float
    double


cdef inline int _gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating *a,
                      Py_ssize_t rs_a, Py_ssize_t cs_a, const floating *b, Py_ssize_t rs_b,
                      Py_ssize_t cs_b, floating *c, Py_ssize_t rs_c,
                      Py_ssize_t cs_c) noexcept nogil:
    # c = a @ b (alpha 1, beta 0), as minidl._core._backend.gemm calls it.
    if floating is float:
        return sgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, cs_b, 0.0, c, rs_c, cs_c)
    else:
        return dgemm(m, n, k, 1.0, a, rs_a, cs_a, b, rs_b, cs_b, 0.0, c, rs_c, cs_c)


cdef inline int _activation(bint is_forward, int kind, const Params *p, floating *z,
                            const floating *y, const floating *dy, floating *out,
                            const floating *bias, floating *dbias, Py_ssize_t rows,
                            Py_ssize_t cols) noexcept nogil:
    if floating is float:
        return bias_activation_f32(is_forward, kind, p, z, y, dy, out, bias, dbias, rows, cols)
    else:
        return bias_activation_f64(is_forward, kind, p, z, y, dy, out, bias, dbias, rows, cols)


cdef int _run(Layer *layers, Py_ssize_t count, Py_ssize_t rows, const floating *x,
              const LossCall *c, bint fused_head, int linear_kind, const Params *linear_p,
              double *total, Py_ssize_t *bad) noexcept nogil:
    """The step of :meth:`DenseChain.run`; RUN_OK or what went wrong."""
    cdef Py_ssize_t i
    cdef Layer *L
    cdef const floating *a
    cdef floating *dy
    cdef floating *dz
    for i in range(count):
        L = &layers[i]
        a = x if i == 0 else <const floating *>layers[i - 1].y
        if _gemm(rows, L.units, L.fan_in, a, L.fan_in, 1, <const floating *>L.w, L.units, 1,
                 <floating *>L.z, L.units, 1) != 0:
            return RUN_NO_MEMORY
        if _activation(True, L.kind, &L.p, <floating *>L.z, <const floating *>NULL,
                       <const floating *>NULL, <floating *>L.y, <const floating *>L.b,
                       <floating *>NULL, rows, L.units) != 0:
            return RUN_NO_MEMORY
    if loss_call_run(c, total, bad) != 0:
        return RUN_NO_MEMORY
    if bad[0] >= 0:
        return RUN_BAD_LABEL
    dy = <floating *>c.g
    for i in range(count - 1, -1, -1):
        L = &layers[i]
        if L.linear or (fused_head and i == count - 1):
            # Dense.backward_preactivation, or a linear Dense: dz is dy, and the bias
            # gradient pass writes back the values it reads.
            dz = dy
            if L.db != NULL and _activation(False, linear_kind, linear_p, dz, dz, dz, dz,
                                            <const floating *>NULL, <floating *>L.db, rows,
                                            L.units) != 0:
                return RUN_NO_MEMORY
        else:
            dz = <floating *>L.dz
            if _activation(False, L.kind, &L.p, <floating *>L.z, <const floating *>L.y, dy, dz,
                           <const floating *>NULL, <floating *>L.db, rows, L.units) != 0:
                return RUN_NO_MEMORY
        a = x if i == 0 else <const floating *>layers[i - 1].y
        if _gemm(L.fan_in, L.units, rows, a, 1, L.fan_in, dz, L.units, 1, <floating *>L.dw,
                 L.units, 1) != 0:
            return RUN_NO_MEMORY
        if L.dx != NULL:
            if _gemm(rows, L.fan_in, L.units, dz, L.units, 1, <const floating *>L.w, 1,
                     L.units, <floating *>L.dx, L.fan_in, 1) != 0:
                return RUN_NO_MEMORY
            dy = <floating *>L.dx
    return RUN_OK


cdef inline char *_ptr(object a):
    return NULL if a is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef class DenseChain:
    """The compiled step of one chain at one batch size (``rows``).

    Args:
        kernels: one activation :class:`~minidl._core._activations.Kernel` per layer.
        arrays: per layer a dict of C-contiguous arrays of one float dtype: 'w', 'b' (or
            None), 'dw', 'db' (None when 'b' is), 'z', 'y' (may be 'z'), 'dz' (may be
            None for a linear activation), 'dx' (None for the first layer).
        loss: the loss's :class:`~minidl._core._losses.LossKernel`.
        linear: the linear activation's Kernel (the bias gradient of a fused head).
        fused_head: whether the loss gradient is that of the last pre-activation.
        grad: (rows, units of the last layer) buffer for the loss gradient.
    """
    cdef Layer *layers
    cdef Py_ssize_t count, rows
    cdef bint f32, fused_head
    cdef Params linear_p
    cdef int linear_kind
    cdef LossKernel loss
    cdef object grad
    cdef readonly object output   # the last layer's output array
    cdef list keep                # every array the pointers point into

    def __cinit__(self):
        self.layers = NULL

    def __init__(self, list kernels, list arrays, LossKernel loss, Kernel linear,
                 bint fused_head, object grad, Py_ssize_t rows):
        cdef Py_ssize_t i
        cdef Kernel k
        cdef Layer *L
        if not kernels or len(kernels) != len(arrays):
            raise ValueError(f"a DenseChain needs one kernel per layer's arrays; received "
                             f"{len(kernels)} kernels and {len(arrays)} array sets.")
        self.count, self.rows = len(kernels), rows
        self.loss, self.fused_head, self.grad = loss, fused_head, grad
        self.linear_kind, self.linear_p = linear.kind, linear.p
        dtype = arrays[0]["w"].dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"a DenseChain runs float32 or float64; received {dtype}.")
        self.f32 = dtype == np.float32
        self.keep = [grad]
        self.layers = <Layer *>malloc(self.count * sizeof(Layer))
        if self.layers == NULL:
            raise MemoryError()
        for i in range(self.count):
            k = kernels[i]
            a = arrays[i]
            w = a["w"]
            fan_in, units = w.shape
            for name in ("w", "b", "dw", "db", "z", "y", "dz", "dx"):
                arr = a[name]
                if arr is None:
                    continue
                if (not isinstance(arr, np.ndarray) or arr.dtype != dtype
                        or not arr.flags.c_contiguous or not arr.flags.aligned):
                    raise ValueError(f"layer {i}: array {name!r} must be an aligned "
                                     f"C-contiguous {dtype} array.")
                self.keep.append(arr)
            expected = {"w": (fan_in, units), "b": (units,), "dw": (fan_in, units),
                        "db": (units,), "z": (rows, units), "y": (rows, units),
                        "dz": (rows, units), "dx": (rows, fan_in)}
            for name, shape in expected.items():
                if a[name] is not None and a[name].shape != shape:
                    raise ValueError(f"layer {i}: array {name!r} must have shape {shape}; "
                                     f"received {a[name].shape}.")
            if (a["b"] is None) != (a["db"] is None):
                raise ValueError(f"layer {i}: 'b' and 'db' must both be given or both None.")
            L = &self.layers[i]
            L.kind, L.p = k.kind, k.p
            L.linear = k.kind == linear.kind
            if not L.linear and a["dz"] is None:
                raise ValueError(f"layer {i}: a {k.kind_name} activation needs a 'dz' buffer.")
            L.fan_in, L.units = fan_in, units
            L.w, L.b, L.dw, L.db = _ptr(a["w"]), _ptr(a["b"]), _ptr(a["dw"]), _ptr(a["db"])
            L.z, L.y, L.dz, L.dx = _ptr(a["z"]), _ptr(a["y"]), _ptr(a["dz"]), _ptr(a["dx"])
            if i > 0 and fan_in != self.layers[i - 1].units:
                raise ValueError(f"layer {i} takes {fan_in} features but layer {i - 1} gives "
                                 f"{self.layers[i - 1].units}.")
        if (not isinstance(grad, np.ndarray) or grad.dtype != dtype
                or grad.shape != (rows, self.layers[self.count - 1].units)
                or not grad.flags.c_contiguous or not grad.flags.aligned):
            raise ValueError(f"grad must be an aligned C-contiguous {dtype} array of shape "
                             f"{(rows, self.layers[self.count - 1].units)}.")
        self.output = arrays[self.count - 1]["y"]

    def __dealloc__(self):
        free(self.layers)

    def run(self, x, y_true):
        """One batch's forward, loss and backward: the loss value, or None when the batch
        needs the layer-by-layer path (targets the loss kernel cannot take as they are).

        Args:
            x: (rows, fan_in of the first layer) aligned C-contiguous input of the chain's
                dtype.
            y_true: the targets as the loss kernel takes them.
        Raises:
            ValueError: a label outside the valid range (weights and gradients are then
                left for the step to discard: the optimizer does not run).
        """
        cdef Layer *first = &self.layers[0]
        if (not isinstance(x, np.ndarray) or x.shape != (self.rows, first.fan_in)
                or x.dtype != (np.float32 if self.f32 else np.float64)
                or not x.flags.c_contiguous or not x.flags.aligned):
            return None
        cdef LossCall c
        if not self.loss.prepare(y_true, self.output, self.grad, &c):
            return None
        cdef char *xp = _ptr(x)
        cdef double total = 0
        cdef Py_ssize_t bad = -1
        cdef int status
        with nogil:
            if self.f32:
                status = _run(self.layers, self.count, self.rows, <const float *>xp, &c,
                              self.fused_head, self.linear_kind, &self.linear_p, &total, &bad)
            else:
                status = _run(self.layers, self.count, self.rows, <const double *>xp, &c,
                              self.fused_head, self.linear_kind, &self.linear_p, &total, &bad)
        if status == RUN_NO_MEMORY:
            raise MemoryError("the compiled training step could not allocate scratch space.")
        if status == RUN_BAD_LABEL:
            raise self.loss.bad_label(y_true, bad, c.n)
        return total * c.scale
