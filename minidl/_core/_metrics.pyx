# cython: language_level=3
"""Per-batch counting kernels behind ``minidl.metrics``: one pass, no temporaries.

Layering: ``minidl.metrics`` holds the Metric classes (names, configs, results). Their
``update_state`` calls :func:`update` directly; it checks shapes and dtypes through numpy's
C API, reduces the batch to (sum of weighted per-sample values, sum of weights) and adds both
to the metric's :class:`Totals`. ``fit`` calls this once per batch (1,875 times per MNIST
epoch on (32, 10) arrays), so a call costs about 100 ns beyond the counting itself, and arrays
that are C-contiguous, aligned, native-endian and of a kernel dtype are read in place: y_pred
float32 or float64; y_true bool, uint8, int32, int64, float32 or float64. Anything else
(lists, strided views, other dtypes) is converted once and then takes the same path.

Per-sample values follow Keras: a sample is one index of the first axis. Elementwise metrics
(accuracy, binary accuracy, squared / absolute error) average over the sample's remaining
elements; class metrics average over the sample's label positions (one for (n, C) outputs,
T for (n, T, C)). Sums are accumulated in float64.

Threads: samples are split into chunks whose size depends only on the shape; each chunk writes
its own partial sums, which are added in chunk order, so results have the same bits for any
thread count. A batch that fits in one chunk runs on the calling thread without releasing the
GIL: at (32, 10) the work takes a few hundred nanoseconds, less than a GIL round trip.
"""
from cython.parallel cimport prange
from libc.math cimport fabs
from libc.stdlib cimport free, malloc

cimport numpy as cnp
import numpy as np

from minidl._core._backend cimport num_threads
from minidl._core._metric_inputs cimport (L_FLOAT32, L_INT32, L_INT64, L_UINT8, as_labels,
                                          as_predictions, as_weights, label_t, pred_t,
                                          same_dims)

cnp.import_array()

# Metric kinds, by the name of the Keras metric function each one computes.
KINDS = (
    "accuracy",                            # y_true == y_pred, elementwise
    "binary_accuracy",                     # y_true == (y_pred > threshold), elementwise
    "categorical_accuracy",                # argmax(y_true) == argmax(y_pred)
    "sparse_categorical_accuracy",         # y_true == argmax(y_pred)
    "top_k_categorical_accuracy",          # argmax(y_true) among the k largest of y_pred
    "sparse_top_k_categorical_accuracy",   # y_true among the k largest of y_pred
    "mean_squared_error",
    "mean_absolute_error",
)
KIND_IDS = {name: i for i, name in enumerate(KINDS)}
cdef tuple _NAMES = KINDS   # read from C: the name each call passes for its error messages

cdef enum:
    K_ACCURACY, K_BINARY, K_CATEGORICAL, K_SPARSE_CATEGORICAL, K_TOP_K, K_SPARSE_TOP_K,
    K_SQUARED_ERROR, K_ABSOLUTE_ERROR, K_COUNT

cdef enum:
    # y_pred elements per work chunk (whole samples, at least one). Fixed, so partial sums
    # never depend on the thread count.
    CHUNK_ELEMS = 8192
    # Below this many y_pred elements a multi-chunk batch runs its chunks serially.
    PARALLEL_MIN = 65536


cdef class Totals:
    """Running totals of one metric: ``total`` (sum of weighted per-sample values) and
    ``count`` (sum of sample weights). The metric's result is ``total / count``."""
    cdef public double total
    cdef public double count

    def __init__(self, double total=0.0, double count=0.0):
        self.total = total
        self.count = count

    def add(self, double total, double count=1.0):
        """Adds to both totals: one call costs less than four attribute accesses."""
        self.total += total
        self.count += count

    def __reduce__(self):
        return Totals, (self.total, self.count)


ctypedef struct Job:
    int kind
    Py_ssize_t n             # samples (first axis)
    Py_ssize_t group         # class kinds: label positions per sample; elementwise: 1
    Py_ssize_t width         # class kinds: classes; elementwise: elements per sample
    double threshold         # binary_accuracy
    Py_ssize_t k             # top-k kinds
    const void *weights      # one weight per sample, or NULL for all ones
    bint weights_f32


# ---- scalar helpers ----

cdef inline bint _elementwise(int kind) noexcept nogil:
    return kind == K_ACCURACY or kind == K_BINARY or kind == K_SQUARED_ERROR \
        or kind == K_ABSOLUTE_ERROR


cdef inline double _weight(const Job *job, Py_ssize_t s) noexcept nogil:
    if job.weights == NULL:
        return 1.0
    if job.weights_f32:
        return (<const float *>job.weights)[s]
    return (<const double *>job.weights)[s]


cdef inline Py_ssize_t _argmax(const label_t *x, Py_ssize_t n) noexcept nogil:
    # numpy's rule, so results match np.argmax: the first maximum wins, and a NaN counts as
    # the maximum (the first NaN wins). The scan is written with selects instead of an `if`:
    # on random scores a data-dependent branch mispredicts about twice per row, which cost
    # more than the whole comparison work at 10 classes. NaNs are rare: note them, rescan.
    cdef Py_ssize_t i, best = 0
    cdef label_t top = x[0], v
    cdef bint greater, nan = False
    for i in range(1, n):
        v = x[i]
        greater = v > top
        best = i if greater else best
        top = v if greater else top
        if label_t is float or label_t is double:
            nan |= v != v
    if label_t is float or label_t is double:
        if nan or x[0] != x[0]:
            for i in range(n):
                if x[i] != x[i]:
                    return i
    return best


cdef inline bint _in_top_k(const pred_t *x, Py_ssize_t n, Py_ssize_t target,
                           Py_ssize_t k) noexcept nogil:
    # Keras' in_top_k: the target's score is >= the k-th largest score, i.e. fewer than k
    # scores are strictly larger. Ties at the boundary therefore count as hits.
    cdef pred_t t = x[target]
    cdef Py_ssize_t i, above = 0
    if t != t:
        return False
    for i in range(n):
        above += x[i] > t
    return above < k


cdef inline Py_ssize_t _class_index(label_t v, Py_ssize_t n_classes) noexcept nogil:
    # -1 for a label that is not an integer in [0, n_classes) (NaN fails the range test).
    if label_t is float or label_t is double:
        if not (v >= 0 and v < n_classes) or v != <label_t>(<Py_ssize_t>v):
            return -1
    elif label_t is cnp.npy_uint8:
        if v >= n_classes:
            return -1
    else:
        if v < 0 or v >= n_classes:
            return -1
    return <Py_ssize_t>v


# ---- one chunk of samples [s0, s1) ----

cdef Py_ssize_t _chunk(const Job *job, const pred_t *yp, const label_t *yt, Py_ssize_t s0,
                       Py_ssize_t s1, double *value, double *weight) noexcept nogil:
    """value = sum_s w_s * v_s and weight = sum_s w_s over the chunk (OUT), where v_s is the
    sample's raw count or error sum (not yet divided by group or width). Returns -1, or the
    flat y_true index of the first invalid label, in which case value/weight are unset."""
    cdef int kind = job.kind
    cdef Py_ssize_t s, r, i, target, g = job.group, m = job.width
    cdef double v, w, diff, acc = 0.0, wsum = 0.0
    cdef pred_t threshold = <pred_t>job.threshold
    cdef const pred_t *p
    cdef const label_t *t
    for s in range(s0, s1):
        v = 0.0
        if kind == K_SPARSE_CATEGORICAL or kind == K_SPARSE_TOP_K:
            for r in range(s * g, s * g + g):
                target = _class_index(yt[r], m)
                if target < 0:
                    return r
                if kind == K_SPARSE_CATEGORICAL:
                    v += _argmax(yp + r * m, m) == target
                else:
                    v += _in_top_k(yp + r * m, m, target, job.k)
        elif kind == K_CATEGORICAL or kind == K_TOP_K:
            for r in range(s * g, s * g + g):
                target = _argmax(yt + r * m, m)
                if kind == K_CATEGORICAL:
                    v += _argmax(yp + r * m, m) == target
                else:
                    v += _in_top_k(yp + r * m, m, target, job.k)
        else:
            p = yp + s * m
            t = yt + s * m
            if kind == K_ACCURACY:
                for i in range(m):
                    v += <pred_t>t[i] == p[i]   # Keras casts y_true to y_pred's dtype
            elif kind == K_BINARY:
                for i in range(m):
                    v += t[i] == (<label_t>1 if p[i] > threshold else <label_t>0)
            elif kind == K_SQUARED_ERROR:
                for i in range(m):
                    diff = <double>t[i] - <double>p[i]
                    v += diff * diff
            else:
                for i in range(m):
                    v += fabs(<double>t[i] - <double>p[i])
        w = _weight(job, s)
        acc += w * v
        wsum += w
    value[0] = acc
    weight[0] = wsum
    return -1


cdef int _run(const Job *job, const pred_t *yp, const label_t *yt, double *value,
              double *weight, Py_ssize_t *bad) except -1:
    """Runs ``_chunk`` over fixed sample chunks (threaded when large) and adds the partials
    in chunk order. ``bad``: -1, or the first invalid label's flat index (OUT)."""
    cdef Py_ssize_t n = job.n, per = job.group * job.width
    cdef Py_ssize_t spc = CHUNK_ELEMS // per if per < CHUNK_ELEMS else 1
    cdef Py_ssize_t nchunks = (n + spc - 1) // spc, ch, s0
    cdef double *partial
    cdef Py_ssize_t *bads
    if nchunks <= 1:
        bad[0] = _chunk(job, yp, yt, 0, n, value, weight)
        return 0
    partial = <double *>malloc(nchunks * (2 * sizeof(double) + sizeof(Py_ssize_t)))
    if partial == NULL:
        raise MemoryError(f"could not allocate {nchunks} partial sums.")
    bads = <Py_ssize_t *>(partial + 2 * nchunks)
    try:
        if n * per >= PARALLEL_MIN:
            for ch in prange(nchunks, nogil=True, schedule="static", num_threads=num_threads()):
                s0 = ch * spc
                bads[ch] = _chunk(job, yp, yt, s0, min(s0 + spc, n), &partial[ch],
                                  &partial[nchunks + ch])
        else:
            with nogil:
                for ch in range(nchunks):
                    s0 = ch * spc
                    bads[ch] = _chunk(job, yp, yt, s0, min(s0 + spc, n), &partial[ch],
                                      &partial[nchunks + ch])
        value[0] = 0.0
        weight[0] = 0.0
        bad[0] = -1
        for ch in range(nchunks):
            if bads[ch] >= 0:
                bad[0] = bads[ch]
                break
            value[0] += partial[ch]
            weight[0] += partial[nchunks + ch]
    finally:
        free(partial)
    return 0


cdef int _run_labels(const Job *job, const pred_t *yp, cnp.ndarray yt, int code,
                     double *value, double *weight, Py_ssize_t *bad) except -1:
    cdef const void *t = cnp.PyArray_DATA(yt)
    if code == L_UINT8:
        return _run(job, yp, <const cnp.npy_uint8 *>t, value, weight, bad)
    if code == L_INT32:
        return _run(job, yp, <const cnp.npy_int32 *>t, value, weight, bad)
    if code == L_INT64:
        return _run(job, yp, <const cnp.npy_int64 *>t, value, weight, bad)
    if code == L_FLOAT32:
        return _run(job, yp, <const float *>t, value, weight, bad)
    return _run(job, yp, <const double *>t, value, weight, bad)


# ---- argument handling ----

cdef int _layout(Job *job, cnp.ndarray yt, cnp.ndarray yp) except -1:
    """Checks that y_true fits y_pred for ``job.kind``; sets n, group and width."""
    cdef int kind = job.kind
    cdef int tnd = cnp.PyArray_NDIM(yt), pnd = cnp.PyArray_NDIM(yp)
    cdef cnp.npy_intp *pd = cnp.PyArray_DIMS(yp)
    cdef cnp.npy_intp *td = cnp.PyArray_DIMS(yt)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(yp)
    cdef bint ok
    if kind == K_SPARSE_CATEGORICAL or kind == K_SPARSE_TOP_K:
        # Integer labels: y_pred.shape[:-1], optionally with a trailing axis of 1.
        # Ranks first: same_dims must not read past the shorter dims array.
        ok = pnd >= 2 and (tnd == pnd - 1 or (tnd == pnd and td[pnd - 1] == 1)) \
            and same_dims(yt, yp, pnd - 1)
        if not ok:
            raise ValueError(f"{KINDS[kind]} expects y_pred of shape (batch, ..., classes) and "
                             f"integer labels of shape y_pred.shape[:-1] (or with a trailing "
                             f"1). Received: y_true.shape={(<object>yt).shape}, "
                             f"y_pred.shape={(<object>yp).shape}")
    elif kind == K_CATEGORICAL or kind == K_TOP_K:
        if not (pnd >= 2 and tnd == pnd and same_dims(yt, yp, pnd)):
            raise ValueError(f"{KINDS[kind]} expects one-hot y_true of the same shape as y_pred"
                             f" (batch, ..., classes); for integer labels use the sparse "
                             f"variant. Received: y_true.shape={(<object>yt).shape}, "
                             f"y_pred.shape={(<object>yp).shape}")
    else:
        # Same shape, or ranks differing by one where the longer one ends in an axis of 1
        # (Keras squeezes it): (n,) against (n, 1) is fine either way.
        ok = tnd >= 1 and pnd >= 1 and (
            (tnd == pnd and same_dims(yt, yp, pnd))
            or (tnd == pnd + 1 and td[tnd - 1] == 1 and same_dims(yt, yp, pnd))
            or (pnd == tnd + 1 and pd[pnd - 1] == 1 and same_dims(yt, yp, tnd)))
        if not ok:
            raise ValueError(f"{KINDS[kind]} expects y_true and y_pred of the same shape. "
                             f"Received: y_true.shape={(<object>yt).shape}, "
                             f"y_pred.shape={(<object>yp).shape}")
    job.n = pd[0]
    if job.n and not size:
        raise ValueError(f"{KINDS[kind]}: every sample needs at least one value. Received: "
                         f"y_pred.shape={(<object>yp).shape}")
    if job.n == 0:
        job.group = job.width = 1
    elif _elementwise(kind):
        job.group, job.width = 1, size // job.n
    else:
        job.width = pd[pnd - 1]
        job.group = size // (job.n * job.width)
    return 0


cdef object _weights(Job *job, object sample_weight, double *scale):
    """Sets job.weights (or ``scale`` for one weight for all); returns the array to keep
    alive while the kernel runs."""
    job.weights = NULL
    cdef cnp.ndarray w = as_weights(sample_weight, _NAMES[job.kind], scale)
    if w is None:
        return None
    if cnp.PyArray_NDIM(w) == 0:
        scale[0] = float(w)
        return None
    if not (cnp.PyArray_DIMS(w)[0] == job.n and cnp.PyArray_SIZE(w) == job.n
            and cnp.PyArray_NDIM(w) <= 2):
        raise ValueError(f"{KINDS[job.kind]}: sample_weight must have one weight per sample, "
                         f"shape ({job.n},) or ({job.n}, 1). Received: "
                         f"sample_weight.shape={(<object>w).shape}")
    job.weights = cnp.PyArray_DATA(w)
    job.weights_f32 = cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT
    return w


def update(Totals totals not None, int kind, double param, y_true, y_pred,
           sample_weight=None):
    """Adds one batch to ``totals``: total += sum_s w_s * value_s, count += sum_s w_s.

    Args:
        totals: the metric's :class:`Totals` (IN/OUT).
        kind: an index into ``KINDS``.
        param: the threshold for binary_accuracy, k for the top-k kinds; ignored otherwise.
        y_true: labels; see the module docstring for the shapes each kind accepts.
        y_pred: predictions, shape (batch, ...).
        sample_weight: None, a scalar, or one weight per sample, shape (batch,) or (batch, 1).

    Raises:
        ValueError: shapes that do not fit, or (sparse kinds) a label that is not an integer
            in [0, classes); the message names the metric, the shapes and the bad value.
        TypeError: arrays of non-numeric dtype.
    """
    if kind < 0 or kind >= K_COUNT:
        raise ValueError(f"Unknown metric kernel kind. Received: kind={kind}")
    cdef Job job
    cdef int code
    cdef double value, weight, scale
    cdef Py_ssize_t bad
    job.kind = kind
    job.threshold = param
    job.k = <Py_ssize_t>param
    cdef cnp.ndarray yp = as_predictions(y_pred, _NAMES[kind])
    cdef cnp.ndarray yt = as_labels(y_true, _NAMES[kind], &code)
    _layout(&job, yt, yp)
    keep_alive = _weights(&job, sample_weight, &scale)
    if job.n == 0:
        return
    if cnp.PyArray_TYPE(yp) == cnp.NPY_FLOAT:
        _run_labels(&job, <const float *>cnp.PyArray_DATA(yp), yt, code, &value, &weight, &bad)
    else:
        _run_labels(&job, <const double *>cnp.PyArray_DATA(yp), yt, code, &value, &weight, &bad)
    if bad >= 0:
        label = np.asarray(y_true).reshape(-1)[bad].item()
        at = np.unravel_index(bad, (<object>yt).shape)
        raise ValueError(f"{KINDS[kind]}: labels must be integers in [0, {job.width}) for "
                         f"y_pred with {job.width} classes. Received: label={label!r} at "
                         f"y_true index {tuple(int(i) for i in at)}")
    # Per-sample means: elementwise kinds over `width` elements, class kinds over `group`
    # label positions. One division of the batch sum keeps unweighted counts exact.
    totals.total += scale * value / (job.width if _elementwise(kind) else job.group)
    totals.count += scale * weight
