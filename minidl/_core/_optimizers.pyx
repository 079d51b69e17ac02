# cython: language_level=3
"""Optimizer updates: one fused pass over a parameter, its gradient and its slots.

Layering: ``minidl.optimizers`` keeps the state (step count, learning rate, slot arrays) and
computes every per-step scalar in Python, in float64: bias-corrected step sizes, Nadam's
momentum schedule. An :class:`Updater`, built once with the variables and their slot arrays,
runs one training step's updates in a single call: it checks (or converts) each gradient,
computes the gradient scale that implements ``loss_scale_factor``, ``clipnorm`` and
``global_clipnorm``, and calls the C update of csrc/optimizers.c (through ``_backend``) per
variable. The module-level functions are the same updates on explicit arrays, with the
signatures of the numpy reference in ``minidl._ref.optimizers``.

Per element: gradient scale and ``clipvalue`` first, then Keras' decoupled weight decay
``p -= p * weight_decay * learning_rate``, then the optimizer's rule; scalars are cast to the
parameter's dtype, as Keras casts them to the variable's dtype. Updates are elementwise, so
the result does not depend on how the array is split; arrays from ``PARALLEL_MIN`` elements up
are split into fixed chunks across threads. ``sum_of_squares`` (for clipnorm) sums fixed
chunks into partial[] and adds the partials in chunk order: the same bits for any thread count.
On x86 the updates run with denormals flushed to zero (see csrc/optimizers.c for why).
"""
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

cimport numpy as cnp
import numpy as np

from minidl._core._arrays cimport (aligned, float_array, float_array_like, is_float_carray,
                                   overlap, writeable)
from minidl._core._backend cimport (
    adagrad_f32, adagrad_f64, adam_f32, adam_f64, mdl_optim_hyper, nadam_f32, nadam_f64,
    num_threads, rmsprop_f32, rmsprop_f64, sgd_f32, sgd_f64, sum_of_squares_f32,
    sum_of_squares_f64)

cnp.import_array()

cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 8192
    STACK_PARTIALS = 64       # sum_of_squares partials up to this many chunks use the stack
    STACK_JOBS = 32           # updates of up to this many variables are described on the stack

PARALLEL_MIN = PARALLEL_MIN_ELEMS

# Update kinds, and the per-kind scalars an Updater step takes, in the order of the arguments
# of the module-level function of the same name (between the arrays and weight_decay).
KINDS = ("sgd", "adam", "rmsprop", "adagrad", "nadam")
SCALARS = {
    "sgd": ("learning_rate", "momentum", "nesterov"),
    "adam": ("alpha", "beta_1", "beta_2", "epsilon", "learning_rate"),
    "rmsprop": ("learning_rate", "rho", "momentum", "epsilon"),
    "adagrad": ("learning_rate", "epsilon"),
    "nadam": ("learning_rate", "beta_1", "beta_2", "epsilon", "m_coef", "g_coef", "v_div"),
}

cdef enum:
    O_SGD, O_ADAM, O_RMSPROP, O_ADAGRAD, O_NADAM

# One update: the kind, its scalars and the arrays as raw pointers (optional slots NULL).
ctypedef struct Job:
    int kind
    bint f32
    mdl_optim_hyper h
    char *p
    const char *g
    char *s0
    char *s1
    char *s2
    Py_ssize_t n


cdef inline char *_at(char *x, Py_ssize_t offset) noexcept nogil:
    return x + offset if x != NULL else NULL


cdef void _span(const Job *j, Py_ssize_t start, Py_ssize_t n) noexcept nogil:
    """Elements [start, start + n) of the job."""
    cdef Py_ssize_t b = start * (4 if j.f32 else 8)
    cdef char *p = j.p + b
    cdef const char *g = j.g + b
    cdef char *s0 = _at(j.s0, b)
    cdef char *s1 = _at(j.s1, b)
    cdef char *s2 = _at(j.s2, b)
    if j.f32:
        if j.kind == O_SGD:
            sgd_f32(n, &j.h, <float *>p, <const float *>g, <float *>s0)
        elif j.kind == O_ADAM:
            adam_f32(n, &j.h, <float *>p, <const float *>g, <float *>s0, <float *>s1,
                     <float *>s2)
        elif j.kind == O_RMSPROP:
            rmsprop_f32(n, &j.h, <float *>p, <const float *>g, <float *>s0, <float *>s1,
                        <float *>s2)
        elif j.kind == O_ADAGRAD:
            adagrad_f32(n, &j.h, <float *>p, <const float *>g, <float *>s0)
        else:
            nadam_f32(n, &j.h, <float *>p, <const float *>g, <float *>s0, <float *>s1)
    else:
        if j.kind == O_SGD:
            sgd_f64(n, &j.h, <double *>p, <const double *>g, <double *>s0)
        elif j.kind == O_ADAM:
            adam_f64(n, &j.h, <double *>p, <const double *>g, <double *>s0, <double *>s1,
                     <double *>s2)
        elif j.kind == O_RMSPROP:
            rmsprop_f64(n, &j.h, <double *>p, <const double *>g, <double *>s0, <double *>s1,
                        <double *>s2)
        elif j.kind == O_ADAGRAD:
            adagrad_f64(n, &j.h, <double *>p, <const double *>g, <double *>s0)
        else:
            nadam_f64(n, &j.h, <double *>p, <const double *>g, <double *>s0, <double *>s1)


cdef void _run(const Job *j) noexcept nogil:
    """The whole job, in fixed chunks dealt round-robin to the threads when large."""
    cdef Py_ssize_t nchunks = (j.n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch
    if j.n < PARALLEL_MIN_ELEMS:
        _span(j, 0, j.n)
        return
    for ch in prange(nchunks, schedule="static", chunksize=1, num_threads=num_threads()):
        _span(j, ch * CHUNK_ELEMS, min(<Py_ssize_t>CHUNK_ELEMS, j.n - ch * CHUNK_ELEMS))


cdef double _sum_of_squares(const char *x, bint f32, Py_ssize_t n) except? -1:
    """sum(x^2) over fixed chunks, added in chunk order (any thread count, same bits)."""
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, length
    cdef Py_ssize_t size = 4 if f32 else 8
    cdef double local[STACK_PARTIALS]
    cdef double *partial = local
    cdef double total = 0
    if n == 0:
        return 0.0
    if nchunks > STACK_PARTIALS:
        partial = <double *>malloc(nchunks * sizeof(double))
        if partial == NULL:
            raise MemoryError(f"could not allocate {nchunks} partial sums.")
    with nogil:
        if n >= PARALLEL_MIN_ELEMS:
            for ch in prange(nchunks, schedule="static", chunksize=1, num_threads=num_threads()):
                length = min(<Py_ssize_t>CHUNK_ELEMS, n - ch * CHUNK_ELEMS)
                if f32:
                    partial[ch] = sum_of_squares_f32(length, <const float *>(x + ch * CHUNK_ELEMS * size))
                else:
                    partial[ch] = sum_of_squares_f64(length, <const double *>(x + ch * CHUNK_ELEMS * size))
        else:
            for ch in range(nchunks):
                length = min(<Py_ssize_t>CHUNK_ELEMS, n - ch * CHUNK_ELEMS)
                if f32:
                    partial[ch] = sum_of_squares_f32(length, <const float *>(x + ch * CHUNK_ELEMS * size))
                else:
                    partial[ch] = sum_of_squares_f64(length, <const double *>(x + ch * CHUNK_ELEMS * size))
        for ch in range(nchunks):
            total += partial[ch]
    if partial != local:
        free(partial)
    return total


# ---- argument handling ----

cdef void _hyper(mdl_optim_hyper *h, double weight_decay, double grad_scale,
                 double clip_value) noexcept:
    h.lr = 0
    h.decay_lr = 0
    h.weight_decay = weight_decay
    h.grad_scale = grad_scale
    h.clip_value = clip_value
    h.momentum = 0
    h.beta_1 = 0
    h.beta_2 = 0
    h.epsilon = 0
    h.m_coef = 0
    h.g_coef = 0
    h.v_div = 1
    h.nesterov = 0


cdef Py_ssize_t[5] SCALAR_COUNTS = [3, 5, 4, 2, 7]


cdef int _scalars(Job *j, tuple s) except -1:
    """Sets the kind's scalars of j.h from ``s`` (see SCALARS)."""
    if len(s) != SCALAR_COUNTS[j.kind]:
        raise ValueError(f"{KINDS[j.kind]} takes {SCALAR_COUNTS[j.kind]} step scalars "
                         f"{SCALARS[KINDS[j.kind]]}; received {s!r}.")
    if j.kind == O_SGD:
        j.h.lr, j.h.momentum, j.h.nesterov = s[0], s[1], bool(s[2])
    elif j.kind == O_ADAM:
        j.h.lr, j.h.beta_1, j.h.beta_2, j.h.epsilon, j.h.decay_lr = s
        return 0
    elif j.kind == O_RMSPROP:
        j.h.lr, j.h.beta_1, j.h.momentum, j.h.epsilon = s
    elif j.kind == O_ADAGRAD:
        j.h.lr, j.h.epsilon = s
    else:
        (j.h.lr, j.h.beta_1, j.h.beta_2, j.h.epsilon, j.h.m_coef, j.h.g_coef,
         j.h.v_div) = s
    j.h.decay_lr = j.h.lr
    return 0


cdef int _arrays(Job *j, object param, object grad, object s0, object s1, object s2,
                 tuple names) except -1:
    """Checks the arrays of a module-level call and points the job at them (grad is an input,
    copied when misaligned; param and the slots are updated in place, so must be aligned)."""
    grad = aligned(grad)
    cdef int t = float_array(param, None, "param")
    writeable(param, None, "param")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    arrays = (grad, s0, s1, s2)
    cdef Py_ssize_t i, k
    for i in range(4):
        a = arrays[i]
        if a is None and i > 0:
            continue
        float_array_like(a, t, None, names[i])
        if cnp.PyArray_SIZE(<cnp.ndarray>a) != n:
            raise ValueError(f"{names[i]} must have {n} elements like param; received "
                             f"{cnp.PyArray_SIZE(<cnp.ndarray>a)}.")
        if i > 0:
            writeable(a, None, names[i])
        if overlap(a, param):
            raise ValueError(f"{names[i]} overlaps param in memory; pass separate arrays.")
        for k in range(i):
            if arrays[k] is not None and overlap(a, arrays[k]):
                raise ValueError(f"{names[i]} overlaps {names[k]} in memory; pass separate "
                                 f"arrays.")
    j.f32 = t == cnp.NPY_FLOAT
    j.n = n
    j.p = <char *>cnp.PyArray_DATA(<cnp.ndarray>param)
    j.g = <const char *>cnp.PyArray_DATA(<cnp.ndarray>grad)
    j.s0 = <char *>cnp.PyArray_DATA(<cnp.ndarray>s0) if s0 is not None else NULL
    j.s1 = <char *>cnp.PyArray_DATA(<cnp.ndarray>s1) if s1 is not None else NULL
    j.s2 = <char *>cnp.PyArray_DATA(<cnp.ndarray>s2) if s2 is not None else NULL
    return 0


cdef int _call(int kind, object param, object grad, object s0, object s1, object s2,
               tuple names, tuple scalars, double weight_decay, double grad_scale,
               double clip_value) except -1:
    cdef Job j
    j.kind = kind
    _hyper(&j.h, weight_decay, grad_scale, clip_value)
    _scalars(&j, scalars)
    _arrays(&j, param, grad, s0, s1, s2, names)
    if j.n:
        with nogil:
            _run(&j)
    return 0


cdef class Updater:
    """One optimizer's update kernels over the variables it was built with.

    Args:
        kind: a name from ``KINDS``.
        variables: list of the C-contiguous, writeable float32/float64 variables.
        slots: up to three lists (or None for a slot that is off), each with one array per
            variable: the kind's slots in the order of its module-level function
            (adam: m, v, v_hat; rmsprop: velocity, momentum_buffer, average_grad).
        owner: the optimizer's class name, for error messages.
    """
    cdef int kind
    cdef readonly str kind_name
    cdef readonly list variables
    cdef readonly list slots
    cdef readonly str owner
    cdef Py_ssize_t count

    def __init__(self, str kind, list variables, list slots, str owner):
        if kind not in KINDS:
            raise ValueError(f"Unknown update kind {kind!r}; expected one of {KINDS}.")
        self.kind = KINDS.index(kind)
        self.kind_name, self.owner = kind, owner
        self.count = len(variables)
        self.variables = list(variables)
        slots = list(slots) + [None] * (3 - len(slots))
        for i in range(self.count):
            v = self.variables[i]
            float_array(v, owner, f"variable {i}")
            writeable(v, owner, f"variable {i}")
            for arrays in slots:
                if arrays is None:
                    continue
                a = arrays[i]
                float_array_like(a, cnp.PyArray_TYPE(<cnp.ndarray>v), owner, f"slot of variable {i}")
                if not cnp.PyArray_SAMESHAPE(<cnp.ndarray>a, <cnp.ndarray>v):
                    raise ValueError(f"{owner}: a slot of variable {i} has shape {a.shape}; "
                                     f"the variable has shape {v.shape}.")
        self.slots = [None if arrays is None else list(arrays) for arrays in slots]

    def __reduce__(self):
        return Updater, (self.kind_name, self.variables, self.slots, self.owner)

    def step(self, grads, variables, tuple scalars, double weight_decay, double grad_scale,
             double clip_value, double clipnorm, double global_clipnorm):
        """One step over every variable: the fast path of ``Optimizer.apply``.

        Args:
            grads: list or tuple with one gradient per variable, in order.
            variables: None, or the list of built variables (the same objects, in order).
            scalars: the kind's step scalars (see ``SCALARS``).
            weight_decay: decoupled decay factor, 0 for none.
            grad_scale: multiplies every gradient (1 / loss_scale_factor).
            clip_value: clips each scaled gradient element; 0 for none.
            clipnorm, global_clipnorm: clip each gradient, or all of them together, to this
                L2 norm; 0 for none.
        Returns:
            True when done. False, with nothing changed, when the call is for the general
            path (``update``): other variables or order, a None gradient, a count mismatch.
        """
        cdef Py_ssize_t i, n = self.count
        if type(grads) is not list and type(grads) is not tuple:
            return False
        if n == 0 or len(grads) != n:
            return False
        if variables is not None:
            if (type(variables) is not list and type(variables) is not tuple) or len(variables) != n:
                return False
            for i in range(n):
                if variables[i] is not self.variables[i]:
                    return False
        for i in range(n):
            if grads[i] is None:
                return False
        self._apply(grads, None, scalars, weight_decay, grad_scale, clip_value, clipnorm,
                    global_clipnorm)
        return True

    def update(self, grads, indices, tuple scalars, double weight_decay, double grad_scale,
               double clip_value, double clipnorm, double global_clipnorm):
        """Updates variable ``indices[k]`` from ``grads[k]`` (none of them None); the other
        arguments as in :meth:`step`."""
        grads, indices = list(grads), list(indices)
        if len(grads) != len(indices):
            raise ValueError(f"{self.owner}: received {len(grads)} gradients for "
                             f"{len(indices)} variables.")
        for i in indices:
            if not 0 <= i < self.count:
                raise ValueError(f"{self.owner}: variable index {i} is out of range for "
                                 f"{self.count} variables.")
        self._apply(grads, indices, scalars, weight_decay, grad_scale, clip_value, clipnorm,
                    global_clipnorm)

    cdef object _grad(self, object g, Py_ssize_t i):
        """Gradient ``g`` of variable i as a C-contiguous array of its dtype and shape,
        converted (or copied, when it overlaps the variable or a slot) only if needed."""
        v = self.variables[i]
        cdef int s
        if not is_float_carray(g, cnp.PyArray_TYPE(<cnp.ndarray>v)):
            # "A": aligned as well (np.ascontiguousarray keeps a misaligned view as it is)
            g = np.require(g, (<object>v).dtype, "CA")
        if not cnp.PyArray_SAMESHAPE(<cnp.ndarray>g, <cnp.ndarray>v):
            raise ValueError(f"{self.owner}: the gradient of variable {i} has shape "
                             f"{(<object>g).shape}; the variable has shape {(<object>v).shape}.")
        if overlap(g, v):
            return np.array(g, copy=True)
        for s in range(3):
            arrays = self.slots[s]
            if arrays is not None and overlap(g, arrays[i]):
                return np.array(g, copy=True)
        return g

    cdef int _apply(self, object grads_in, object indices, tuple scalars, double weight_decay,
                    double grad_scale, double clip_value, double clipnorm,
                    double global_clipnorm) except -1:
        cdef Py_ssize_t k, i, m = len(grads_in)
        cdef Job local[STACK_JOBS]
        cdef Job *jobs = local
        cdef Job j
        cdef double norm, total = 0
        j.kind = self.kind
        _hyper(&j.h, weight_decay, grad_scale, clip_value)
        _scalars(&j, scalars)
        # Checked (or converted) gradients, kept alive until the updates are done.
        grads = [self._grad(grads_in[k], k if indices is None else indices[k])
                 for k in range(m)]
        if m > STACK_JOBS:
            jobs = <Job *>malloc(m * sizeof(Job))
            if jobs == NULL:
                raise MemoryError(f"could not allocate {m} update descriptors.")
        try:
            for k in range(m):
                i = k if indices is None else indices[k]
                v = self.variables[i]
                g = grads[k]
                jobs[k] = j
                jobs[k].f32 = cnp.PyArray_TYPE(<cnp.ndarray>v) == cnp.NPY_FLOAT
                jobs[k].n = cnp.PyArray_SIZE(<cnp.ndarray>v)
                jobs[k].p = <char *>cnp.PyArray_DATA(<cnp.ndarray>v)
                jobs[k].g = <const char *>cnp.PyArray_DATA(<cnp.ndarray>g)
                jobs[k].s0 = self._slot(0, i)
                jobs[k].s1 = self._slot(1, i)
                jobs[k].s2 = self._slot(2, i)
            if clipnorm > 0 or global_clipnorm > 0:
                # Keras' clipnorm / global_clipnorm, from float64 norms of the scaled gradients.
                for k in range(m):
                    norm = _sum_of_squares(jobs[k].g, jobs[k].f32, jobs[k].n)
                    total += norm
                    if clipnorm > 0:
                        norm = grad_scale * sqrt(norm)
                        jobs[k].h.grad_scale = grad_scale * clipnorm / (
                            clipnorm if clipnorm > norm else norm)
                if clipnorm <= 0:
                    norm = grad_scale * sqrt(total)
                    for k in range(m):
                        jobs[k].h.grad_scale = grad_scale * global_clipnorm / (
                            global_clipnorm if global_clipnorm > norm else norm)
            with nogil:
                for k in range(m):
                    if jobs[k].n:
                        _run(&jobs[k])
        finally:
            if jobs != local:
                free(jobs)
        return 0

    cdef char *_slot(self, int s, Py_ssize_t i):
        arrays = self.slots[s]
        if arrays is None:
            return NULL
        return <char *>cnp.PyArray_DATA(<cnp.ndarray>arrays[i])


# ---- kernels ----
# Shared arguments:
#   param: parameter, IN/OUT. grad: gradient of param's dtype and size. Slots: IN/OUT arrays
#   of param's dtype and size (None where an option turns them off). Any shape; C-contiguous
#   float32/float64, no array overlapping another.
#   learning_rate: the step's learning rate (also used by the weight decay term).
#   weight_decay: decoupled decay factor (0: none). grad_scale: multiplies the gradient first.
#   clip_value: clips the scaled gradient to [-clip_value, clip_value]; <= 0 turns it off.

def sgd(param, grad, velocity, double learning_rate, double momentum, bint nesterov,
        double weight_decay, double grad_scale, double clip_value):
    """Keras SGD. velocity (IN/OUT, None when momentum == 0): v = momentum v - lr g;
    p += v, or with nesterov p += momentum v - lr g. Without velocity: p -= lr g."""
    _call(O_SGD, param, grad, velocity, None, None, ("grad", "velocity", "", ""),
          (learning_rate, momentum, nesterov), weight_decay, grad_scale, clip_value)


def adam(param, grad, m, v, v_hat, double alpha, double beta_1, double beta_2, double epsilon,
         double learning_rate, double weight_decay, double grad_scale, double clip_value):
    """Keras Adam/AdamW: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    p -= alpha m / (sqrt(v) + eps), alpha = lr sqrt(1 - b2^t) / (1 - b1^t) from the caller.
    v_hat (IN/OUT, amsgrad only, else None) keeps max(v_hat, v), used in place of v."""
    if m is None or v is None:
        raise TypeError("adam needs the m and v slot arrays; received None.")
    _call(O_ADAM, param, grad, m, v, v_hat, ("grad", "m", "v", "v_hat"),
          (alpha, beta_1, beta_2, epsilon, learning_rate), weight_decay, grad_scale,
          clip_value)


def rmsprop(param, grad, velocity, momentum_buffer, average_grad, double learning_rate,
            double rho, double momentum, double epsilon, double weight_decay,
            double grad_scale, double clip_value):
    """Keras RMSprop: v = rho v + (1 - rho) g^2; d = lr g / sqrt(v + eps), centered:
    a = rho a + (1 - rho) g and d = lr g / sqrt(v - a^2 + eps); with momentum_buffer
    b = momentum b + d and p -= b, else p -= d. Optional slots are None when unused."""
    if velocity is None:
        raise TypeError("rmsprop needs the velocity slot array; received None.")
    _call(O_RMSPROP, param, grad, velocity, momentum_buffer, average_grad,
          ("grad", "velocity", "momentum_buffer", "average_grad"),
          (learning_rate, rho, momentum, epsilon), weight_decay, grad_scale, clip_value)


def adagrad(param, grad, accumulator, double learning_rate, double epsilon,
            double weight_decay, double grad_scale, double clip_value):
    """Keras Adagrad: acc += g^2; p -= lr g / sqrt(acc + eps)."""
    if accumulator is None:
        raise TypeError("adagrad needs the accumulator slot array; received None.")
    _call(O_ADAGRAD, param, grad, accumulator, None, None, ("grad", "accumulator", "", ""),
          (learning_rate, epsilon), weight_decay, grad_scale, clip_value)


def nadam(param, grad, m, v, double learning_rate, double beta_1, double beta_2,
          double epsilon, double m_coef, double g_coef, double v_div, double weight_decay,
          double grad_scale, double clip_value):
    """Keras Nadam: m, v as in Adam; m_hat = m_coef m + g_coef g (m_coef = u_{t+1} /
    (1 - prod u_1..u_{t+1}), g_coef = (1 - u_t) / (1 - prod u_1..u_t)); v_hat = v / v_div
    (v_div = 1 - b2^t); p -= lr m_hat / (sqrt(v_hat) + eps)."""
    if m is None or v is None:
        raise TypeError("nadam needs the m and v slot arrays; received None.")
    _call(O_NADAM, param, grad, m, v, None, ("grad", "m", "v", ""),
          (learning_rate, beta_1, beta_2, epsilon, m_coef, g_coef, v_div), weight_decay,
          grad_scale, clip_value)


def sum_of_squares(x):
    """sum(x ** 2) in float64, over fixed chunks added in chunk order (thread-count proof)."""
    x = aligned(x)
    cdef int t = float_array(x, None, "x")
    return _sum_of_squares(<const char *>cnp.PyArray_DATA(<cnp.ndarray>x), t == cnp.NPY_FLOAT,
                           cnp.PyArray_SIZE(<cnp.ndarray>x))
