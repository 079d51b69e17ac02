# cython: language_level=3
"""Optimizer update kernels: one fused pass over a parameter, its gradient and its slots.

Layering: ``minidl.optimizers`` keeps the state (step count, learning rate, slot arrays) and
computes every per-step scalar in Python, in float64: bias-corrected step sizes, Nadam's
momentum schedule, the gradient scale that implements ``clipnorm``/``global_clipnorm`` and
``loss_scale_factor``. The kernels here take 1-D C-contiguous views of one parameter, its
gradient and its slot arrays (slots that an option turns off are None) and update them in
place in one pass: element by element, gradient scale and ``clipvalue`` first, then Keras'
decoupled weight decay ``p -= p * weight_decay * learning_rate``, then the optimizer's rule.

Scalars are cast to the parameter's dtype before the loop, as Keras casts them to the
variable's dtype. Updates are elementwise, so the result does not depend on how the array is
split; arrays from ``PARALLEL_MIN`` elements up are split into fixed chunks across threads.
``sum_of_squares`` (for clipnorm) sums fixed chunks into partial[] and adds the partials in
chunk order: the same bits for any thread count.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport free, malloc

from minidl._core._backend cimport num_threads

ctypedef fused floating:
    float
    double

cdef enum:
    PARALLEL_MIN_ELEMS = 32768
    CHUNK_ELEMS = 16384

PARALLEL_MIN = PARALLEL_MIN_ELEMS

cdef enum:
    O_SGD, O_ADAM, O_RMSPROP, O_ADAGRAD, O_NADAM

ctypedef struct Hyper:
    int kind
    double lr             # learning rate (Adam: the bias-corrected step size alpha)
    double decay_lr       # learning rate for the weight decay term
    double weight_decay
    double grad_scale
    double clip_value     # <= 0: no clipping
    double momentum       # SGD, RMSprop
    double beta_1         # Adam, Nadam (RMSprop: rho)
    double beta_2
    double epsilon
    double c_m            # Nadam: coefficient of m in m_hat
    double c_g            # Nadam: coefficient of g in m_hat
    double v_div          # Nadam: 1 - beta_2 ** t
    bint nesterov


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _grad(floating g, floating scale, floating clip, bint do_clip) noexcept nogil:
    # The gradient as the update uses it: scaled, then clipped to [-clip, clip] if asked.
    g = g * scale
    if do_clip:
        g = -clip if g < -clip else g
        g = clip if g > clip else g
    return g


cdef inline floating _decayed(floating x, floating wd, floating lr, bint decay) noexcept nogil:
    # Keras' decoupled weight decay, applied to the parameter before the update. Skipped, not
    # multiplied by 0, when off: inf * 0 would turn an infinite parameter into NaN.
    return x - x * wd * lr if decay else x


cdef void _span(const Hyper *h, floating *p, const floating *grad, floating *s0, floating *s1,
                floating *s2, Py_ssize_t n) noexcept nogil:
    # s0, s1, s2: the slots of the kind (see the def functions); unused ones are NULL. One
    # loop per kind and slot layout, each a single pass over param, grad and slots; the
    # remaining conditions (decay, clipping, amsgrad, ...) are loop-invariant.
    cdef Py_ssize_t i
    cdef floating g, x, m, v, a, d
    cdef floating lr = <floating>h.lr, dlr = <floating>h.decay_lr
    cdef floating wd = <floating>h.weight_decay, gs = <floating>h.grad_scale
    cdef floating clip = <floating>h.clip_value, mom = <floating>h.momentum
    cdef floating b1 = <floating>h.beta_1, b1c = <floating>(1 - h.beta_1)
    cdef floating b2c = <floating>(1 - h.beta_2), eps = <floating>h.epsilon
    cdef floating c_m = <floating>h.c_m, c_g = <floating>h.c_g, v_div = <floating>h.v_div
    cdef bint do_clip = h.clip_value > 0, decay = h.weight_decay != 0
    if h.kind == O_SGD:
        if s0 == NULL:
            for i in range(n):
                g = _grad(grad[i], gs, clip, do_clip)
                p[i] = _decayed(p[i], wd, dlr, decay) - g * lr
        elif h.nesterov:
            for i in range(n):
                g = _grad(grad[i], gs, clip, do_clip)
                m = s0[i] * mom - g * lr
                s0[i] = m
                p[i] = _decayed(p[i], wd, dlr, decay) + (m * mom - g * lr)
        else:
            for i in range(n):
                m = s0[i] * mom - _grad(grad[i], gs, clip, do_clip) * lr
                s0[i] = m
                p[i] = _decayed(p[i], wd, dlr, decay) + m
    elif h.kind == O_ADAM:
        for i in range(n):
            g = _grad(grad[i], gs, clip, do_clip)
            m = s0[i] + (g - s0[i]) * b1c
            v = s1[i] + (g * g - s1[i]) * b2c
            s0[i] = m
            s1[i] = v
            if s2 != NULL:              # amsgrad: the running maximum of v replaces v
                a = s2[i]
                v = a if a > v else v
                s2[i] = v
            p[i] = _decayed(p[i], wd, dlr, decay) - (m * lr) / (_sqrt(v) + eps)
    elif h.kind == O_RMSPROP:
        for i in range(n):
            g = _grad(grad[i], gs, clip, do_clip)
            v = b1 * s0[i] + b1c * (g * g)     # beta_1 holds rho
            s0[i] = v
            if s2 != NULL:              # centered: subtract the squared mean gradient
                a = b1 * s2[i] + b1c * g
                s2[i] = a
                d = lr * g / _sqrt(v - a * a + eps)
            else:
                d = lr * g / _sqrt(v + eps)
            if s1 != NULL:
                d = mom * s1[i] + d
                s1[i] = d
            p[i] = _decayed(p[i], wd, dlr, decay) - d
    elif h.kind == O_ADAGRAD:
        for i in range(n):
            g = _grad(grad[i], gs, clip, do_clip)
            a = s0[i] + g * g
            s0[i] = a
            p[i] = _decayed(p[i], wd, dlr, decay) - lr * g / _sqrt(a + eps)
    elif h.kind == O_NADAM:
        for i in range(n):
            g = _grad(grad[i], gs, clip, do_clip)
            m = s0[i] + (g - s0[i]) * b1c
            v = s1[i] + (g * g - s1[i]) * b2c
            s0[i] = m
            s1[i] = v
            p[i] = (_decayed(p[i], wd, dlr, decay)
                    - ((c_m * m + c_g * g) * lr) / (_sqrt(v / v_div) + eps))


cdef int _check_len(str name, Py_ssize_t length, Py_ssize_t n) except -1:
    if length != n:
        raise ValueError(f"{name} must have {n} elements like param; received {length}.")
    return 0


cdef void _drive(const Hyper *h, floating *p, const floating *g, floating *s0, floating *s1,
                 floating *s2, Py_ssize_t n) noexcept nogil:
    """Runs ``_span`` over the whole array, in fixed chunks across threads when large."""
    cdef Py_ssize_t nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, off
    if n < PARALLEL_MIN_ELEMS:
        _span(h, p, g, s0, s1, s2, n)
        return
    for ch in prange(nchunks, schedule="static", num_threads=num_threads()):
        off = ch * CHUNK_ELEMS
        _span(h, p + off, g + off, (s0 + off) if s0 != NULL else NULL,
              (s1 + off) if s1 != NULL else NULL, (s2 + off) if s2 != NULL else NULL,
              min(<Py_ssize_t>CHUNK_ELEMS, n - off))


cdef Hyper _hyper(int kind, double lr, double weight_decay, double decay_lr, double grad_scale,
                  double clip_value) noexcept:
    cdef Hyper h
    h.kind = kind
    h.lr = lr
    h.decay_lr = decay_lr
    h.weight_decay = weight_decay
    h.grad_scale = grad_scale
    h.clip_value = clip_value
    h.momentum = 0
    h.beta_1 = 0
    h.beta_2 = 0
    h.epsilon = 0
    h.c_m = 0
    h.c_g = 0
    h.v_div = 1
    h.nesterov = False
    return h


# ---- kernels ----
# Shared arguments:
#   param: (n,) parameter, IN/OUT. grad: (n,) gradient of the same dtype.
#   learning_rate: the step's learning rate (also used by the weight decay term).
#   weight_decay: decoupled decay factor (0: none). grad_scale: multiplies the gradient first.
#   clip_value: clips the scaled gradient to [-clip_value, clip_value]; <= 0 turns it off.

def sgd(floating[::1] param not None, const floating[::1] grad not None, floating[::1] velocity,
        double learning_rate, double momentum, bint nesterov, double weight_decay,
        double grad_scale, double clip_value):
    """Keras SGD. velocity (IN/OUT, None when momentum == 0): v = momentum v - lr g;
    p += v, or with nesterov p += momentum v - lr g. Without velocity: p -= lr g."""
    cdef Hyper h = _hyper(O_SGD, learning_rate, weight_decay, learning_rate, grad_scale,
                          clip_value)
    h.momentum = momentum
    h.nesterov = nesterov
    cdef Py_ssize_t n = param.shape[0]
    _check_len("grad", grad.shape[0], n)
    if velocity is not None:
        _check_len("velocity", velocity.shape[0], n)
    if n:
        with nogil:
            _drive(&h, &param[0], &grad[0], &velocity[0] if velocity is not None else NULL,
                   <floating *>NULL, <floating *>NULL, n)


def adam(floating[::1] param not None, const floating[::1] grad not None,
         floating[::1] m not None, floating[::1] v not None, floating[::1] v_hat,
         double alpha, double beta_1, double beta_2, double epsilon, double learning_rate,
         double weight_decay, double grad_scale, double clip_value):
    """Keras Adam/AdamW: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    p -= alpha m / (sqrt(v) + eps), alpha = lr sqrt(1 - b2^t) / (1 - b1^t) from the caller.
    v_hat (IN/OUT, amsgrad only, else None) keeps max(v_hat, v), used in place of v."""
    cdef Hyper h = _hyper(O_ADAM, alpha, weight_decay, learning_rate, grad_scale, clip_value)
    h.beta_1 = beta_1
    h.beta_2 = beta_2
    h.epsilon = epsilon
    cdef Py_ssize_t n = param.shape[0]
    _check_len("grad", grad.shape[0], n)
    _check_len("m", m.shape[0], n)
    _check_len("v", v.shape[0], n)
    if v_hat is not None:
        _check_len("v_hat", v_hat.shape[0], n)
    if n:
        with nogil:
            _drive(&h, &param[0], &grad[0], &m[0], &v[0],
                   &v_hat[0] if v_hat is not None else NULL, n)


def rmsprop(floating[::1] param not None, const floating[::1] grad not None,
            floating[::1] velocity not None, floating[::1] momentum_buffer,
            floating[::1] average_grad, double learning_rate, double rho, double momentum,
            double epsilon, double weight_decay, double grad_scale, double clip_value):
    """Keras RMSprop: v = rho v + (1 - rho) g^2; d = lr g / sqrt(v + eps), centered:
    a = rho a + (1 - rho) g and d = lr g / sqrt(v - a^2 + eps); with momentum_buffer
    b = momentum b + d and p -= b, else p -= d. Optional slots are None when unused."""
    cdef Hyper h = _hyper(O_RMSPROP, learning_rate, weight_decay, learning_rate, grad_scale,
                          clip_value)
    h.beta_1 = rho
    h.momentum = momentum
    h.epsilon = epsilon
    cdef Py_ssize_t n = param.shape[0]
    _check_len("grad", grad.shape[0], n)
    _check_len("velocity", velocity.shape[0], n)
    if momentum_buffer is not None:
        _check_len("momentum_buffer", momentum_buffer.shape[0], n)
    if average_grad is not None:
        _check_len("average_grad", average_grad.shape[0], n)
    if n:
        with nogil:
            _drive(&h, &param[0], &grad[0], &velocity[0],
                   &momentum_buffer[0] if momentum_buffer is not None else NULL,
                   &average_grad[0] if average_grad is not None else NULL, n)


def adagrad(floating[::1] param not None, const floating[::1] grad not None,
            floating[::1] accumulator not None, double learning_rate, double epsilon,
            double weight_decay, double grad_scale, double clip_value):
    """Keras Adagrad: acc += g^2; p -= lr g / sqrt(acc + eps)."""
    cdef Hyper h = _hyper(O_ADAGRAD, learning_rate, weight_decay, learning_rate, grad_scale,
                          clip_value)
    h.epsilon = epsilon
    cdef Py_ssize_t n = param.shape[0]
    _check_len("grad", grad.shape[0], n)
    _check_len("accumulator", accumulator.shape[0], n)
    if n:
        with nogil:
            _drive(&h, &param[0], &grad[0], &accumulator[0], <floating *>NULL,
                   <floating *>NULL, n)


def nadam(floating[::1] param not None, const floating[::1] grad not None,
          floating[::1] m not None, floating[::1] v not None, double learning_rate,
          double beta_1, double beta_2, double epsilon, double m_coef, double g_coef,
          double v_div, double weight_decay, double grad_scale, double clip_value):
    """Keras Nadam: m, v as in Adam; m_hat = m_coef m + g_coef g (m_coef = u_{t+1} /
    (1 - prod u_1..u_{t+1}), g_coef = (1 - u_t) / (1 - prod u_1..u_t)); v_hat = v / v_div
    (v_div = 1 - b2^t); p -= lr m_hat / (sqrt(v_hat) + eps)."""
    cdef Hyper h = _hyper(O_NADAM, learning_rate, weight_decay, learning_rate, grad_scale,
                          clip_value)
    h.beta_1 = beta_1
    h.beta_2 = beta_2
    h.epsilon = epsilon
    h.c_m = m_coef
    h.c_g = g_coef
    h.v_div = v_div
    cdef Py_ssize_t n = param.shape[0]
    _check_len("grad", grad.shape[0], n)
    _check_len("m", m.shape[0], n)
    _check_len("v", v.shape[0], n)
    if n:
        with nogil:
            _drive(&h, &param[0], &grad[0], &m[0], &v[0], <floating *>NULL, n)


def sum_of_squares(const floating[::1] x not None):
    """sum(x ** 2) in float64, summed over fixed chunks in chunk order (thread-count proof)."""
    cdef Py_ssize_t n = x.shape[0], nchunks = (n + CHUNK_ELEMS - 1) // CHUNK_ELEMS, ch, i, end
    if n == 0:
        return 0.0
    cdef double *partial = <double *>malloc(nchunks * sizeof(double))
    cdef double total = 0, s
    cdef const floating *xp = &x[0]
    if partial == NULL:
        raise MemoryError(f"could not allocate {nchunks} partial sums.")
    try:
        with nogil:
            if n >= PARALLEL_MIN_ELEMS:
                for ch in prange(nchunks, schedule="static", num_threads=num_threads()):
                    s = 0
                    end = min(n, (ch + 1) * <Py_ssize_t>CHUNK_ELEMS)
                    for i in range(ch * CHUNK_ELEMS, end):
                        s = s + <double>xp[i] * xp[i]
                    partial[ch] = s
            else:
                for ch in range(nchunks):
                    s = 0
                    end = min(n, (ch + 1) * <Py_ssize_t>CHUNK_ELEMS)
                    for i in range(ch * CHUNK_ELEMS, end):
                        s = s + <double>xp[i] * xp[i]
                    partial[ch] = s
            for ch in range(nchunks):
                total += partial[ch]
    finally:
        free(partial)
    return total
