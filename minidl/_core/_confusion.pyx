# cython: language_level=3
"""Per-batch counting kernels behind the confusion-matrix metrics of ``minidl.metrics``.

Layering: ``minidl.metrics.confusion`` holds the Metric classes (arguments, configs,
results). Each one owns a :class:`ConfusionCounts` (or, for the F-scores, an
:class:`FBetaCounts`) made once from its arguments; ``update_state`` is one call to its
``update``, which checks dtypes and shapes through numpy's C API, reads C-contiguous arrays of
a kernel dtype in place (y_pred float32 / float64; y_true bool, uint8, int32, int64, float32,
float64; weights float32 / float64) and converts anything else once.

State: not the cumulative counts per threshold but a histogram per label of the
(weighted) predictions by *slot*: a prediction in slot ``s`` is positive at thresholds
``0 .. s-1`` (sorted ascending) and negative at the others, so slot 0 holds predictions
positive at no threshold. A batch costs O(1) per prediction whatever the number of
thresholds; the cumulative sums that turn slots into true/false positives are taken when the
result is read (``positives`` / ``negatives`` are the float64 histograms, shape
``(labels, thresholds + 1)``).

The slot of a prediction follows Keras 3's ``update_confusion_matrix_variables``:
- thresholds evenly spaced on [0, 1] (AUC's default ones and the PrecisionAtRecall family's):
  Keras's bucket formula ``ceil(clip(p, 0, 1) * (T - 1))``; with the epsilon-shifted end
  thresholds (AUC) every prediction is above the first one, i.e. the slot is at least 1;
- any other thresholds: the number of thresholds strictly below ``p`` (``p > t`` counts as
  positive), found by binary search in the sorted thresholds.
Comparisons run in float32 when the metric's dtype is float32 (Keras casts y_pred and the
thresholds to the metric's dtype), else in float64. A NaN prediction is positive at no
threshold. ``top_k`` keeps the k largest predictions of each row (ties: lower index first);
the rest are positive at no threshold. ``class_id`` counts one column only; ``multi_label``
keeps one histogram per column.

Speed: ``fit`` and streaming evaluation call ``update`` once per batch (1,875 times per
60,000 samples at batch 32), so a call costs about 80 ns beyond the counting, and the common
cases (every value counted, no top_k, no logits) run loops specialised to one slot rule and
one comparison type, free of per-value tests. An unweighted batch whose histogram is small
(Precision or Recall at one threshold: 4 slots) is counted in integers first, in four copies
taken in turn so that consecutive values never wait on one another; whole-number counts are
exact, so the state has the same bits either way.

Threads: rows are cut into chunks whose size depends only on the shape and the number of
slots; a batch of one chunk (any batch under 16,384 values) is counted on the calling thread
straight into the state; larger ones count each chunk into its own histogram (in parallel
above ``PARALLEL_MIN`` values) and add the histograms to the state in chunk order, so the state
has the same bits for any thread count.
"""
from cython.parallel cimport prange
from libc.math cimport exp, fabs
from libc.stdlib cimport calloc, free
from libc.string cimport memset

cimport numpy as cnp
import numpy as np

from minidl._core._backend cimport num_threads
from minidl._core._metric_inputs cimport (L_FLOAT32, L_INT32, L_INT64, L_UINT8, as_labels,
                                          as_predictions, as_weights, label_t, pred_t,
                                          same_dims)

cnp.import_array()

# How a prediction's slot is found (see the module docstring).
MODE_SORTED = 0      # binary search in the sorted thresholds
MODE_EVEN = 1        # Keras's bucket formula for thresholds i / (T - 1)
MODE_EVEN_EPS = 2    # the same with epsilon-shifted end thresholds (AUC)

cdef enum:
    M_SORTED, M_EVEN, M_EVEN_EPS

cdef enum:
    # Values per work chunk at least (whole rows). Fixed, so the partial histograms and
    # their order never depend on the thread count.
    CHUNK_ELEMS = 16384
    # Below this many values a batch of several chunks counts them serially.
    PARALLEL_MIN = 131072
    # Histograms (both halves) of up to this many slots count in LANES integer copies.
    SMALL_HIST = 16
    LANES = 4


ctypedef struct Job:
    int mode
    Py_ssize_t T              # thresholds
    float scale32             # T - 1, for the even modes
    double scale64
    const float *thr32        # sorted thresholds (M_SORTED)
    const double *thr64
    bint compare_f32
    bint from_logits
    Py_ssize_t top_k          # 0: off
    Py_ssize_t rows           # rows of C values (the last axis, or the whole batch)
    Py_ssize_t C
    Py_ssize_t c0, c1         # the columns counted: [c0, c1)
    bint multi_label          # one histogram per counted column
    const void *weights       # NULL: every value weighs `scale`
    bint weights_f32
    Py_ssize_t w_div          # value index // w_div = weight index
    double scale
    const double *label_weights   # one per column, or NULL


# ---- one prediction ----

ctypedef fused cmp_t:     # the type comparisons run in: the metric's dtype
    float
    double


cdef inline Py_ssize_t _sorted_slot(const cmp_t *thr, Py_ssize_t T, cmp_t x) noexcept nogil:
    """The number of sorted thresholds below ``x`` (0 for a NaN: no comparison holds).
    Branch-free: the loop runs a number of times fixed by T, each step a conditional move,
    so random predictions cause no mispredictions."""
    cdef Py_ssize_t lo = 0, mid
    while T > 1:
        mid = T >> 1
        lo = lo + mid if thr[lo + mid] < x else lo
        T -= mid
    return lo + (thr[lo] < x)


cdef inline Py_ssize_t _even_slot(cmp_t scale, bint epsilon_ends, cmp_t x) noexcept nogil:
    """Keras' bucket for thresholds i / scale: ``ceil(clip(x, 0, 1) * scale)``, at least 1
    with epsilon-shifted ends (every prediction is above -epsilon); 0 for a NaN."""
    cdef Py_ssize_t s
    if x != x:
        return 0
    x = 1 if x > 1 else x
    x = x * scale if x > 0 else 0
    # The ceiling by truncation and one comparison: ceilf / ceil are calls out of line on
    # the baseline x86-64 target, and cost more than the rest of the count.
    s = <Py_ssize_t>x
    s += <cmp_t>s < x
    return 1 if epsilon_ends and s == 0 else s


cdef inline Py_ssize_t _slot(const Job *job, double x) noexcept nogil:
    """The slot of prediction ``x``: the number of thresholds it is above."""
    if job.from_logits:
        x = 1.0 / (1.0 + exp(-x))
    if job.mode == M_SORTED:
        if job.compare_f32:
            return _sorted_slot(job.thr32, job.T, <float>x)
        return _sorted_slot(job.thr64, job.T, x)
    if job.compare_f32:
        return _even_slot(job.scale32, job.mode == M_EVEN_EPS, <float>x)
    return _even_slot(job.scale64, job.mode == M_EVEN_EPS, x)


cdef inline bint _in_top_k(const pred_t *row, Py_ssize_t n, Py_ssize_t j,
                           Py_ssize_t k) noexcept nogil:
    # Column j is among the k largest of the row: fewer than k values rank before it
    # (larger, or equal at a lower index, as a stable top-k picks). A NaN is never kept.
    cdef pred_t v = row[j], x
    cdef Py_ssize_t i, before = 0
    if v != v:
        return False
    for i in range(n):
        x = row[i]
        before += (x > v) | ((x == v) & (i < j))
        if before >= k:
            return False
    return True


cdef inline Py_ssize_t _bin(const Job *job, const pred_t *row, Py_ssize_t j) noexcept nogil:
    """Where column ``j`` of a row goes in one half of the histogram: its label's offset
    (multi_label) plus its slot."""
    cdef Py_ssize_t s
    if job.top_k and not _in_top_k(row, job.C, j, job.top_k):
        s = 0
    else:
        s = _slot(job, <double>row[j])
    return (j - job.c0) * (job.T + 1) + s if job.multi_label else s


# ---- one chunk of rows [r0, r1) ----

cdef inline double _weight(const Job *job, Py_ssize_t e) noexcept nogil:
    """The sample weight of value ``e`` (times one weight for all)."""
    if job.weights == NULL:
        return job.scale
    if job.weights_f32:
        return job.scale * (<const float *>job.weights)[e // job.w_div]
    return job.scale * (<const double *>job.weights)[e // job.w_div]


cdef void _count(const Job *job, const pred_t *yp, const label_t *yt, const cmp_t *thr,
                 Py_ssize_t r0, Py_ssize_t r1, double *hist, Py_ssize_t half) noexcept nogil:
    """Adds the weight of each value of rows [r0, r1) to the slot of its prediction in
    ``hist`` (IN/OUT): the negatives' histograms first, then ``half`` doubles on, the
    positives'; per label when multi_label. ``thr``: the thresholds in the comparison
    type."""
    cdef Py_ssize_t r, j, e, C = job.C, T = job.T
    cdef cmp_t scale = <cmp_t>(T - 1)
    cdef bint epsilon_ends = job.mode == M_EVEN_EPS
    # The label picks the half by an index, not a branch: labels are as unpredictable as
    # coin flips.
    if job.top_k or job.multi_label or job.from_logits or job.c1 - job.c0 != C \
            or job.label_weights != NULL:
        for r in range(r0, r1):
            for j in range(job.c0, job.c1):
                e = r * C + j
                hist[(yt[e] != 0) * half + _bin(job, yp + r * C, j)] += \
                    _weight(job, e) * (1.0 if job.label_weights == NULL
                                       else job.label_weights[j])
    # Every value, one slot rule: loops the compiler keeps free of per-value tests.
    elif job.mode == M_SORTED:
        for e in range(r0 * C, r1 * C):
            hist[(yt[e] != 0) * half + _sorted_slot(thr, T, <cmp_t>yp[e])] += _weight(job, e)
    else:
        for e in range(r0 * C, r1 * C):
            hist[(yt[e] != 0) * half + _even_slot(scale, epsilon_ends, <cmp_t>yp[e])] += \
                _weight(job, e)


cdef void _count_small(const Job *job, const pred_t *yp, const label_t *yt, const cmp_t *thr,
                       double *hist, Py_ssize_t half) noexcept nogil:
    """``_count`` of every row for one weight for all and a histogram of at most
    SMALL_HIST slots (Precision and Recall at one threshold have 4); ``thr``: the
    thresholds in the comparison type. Values are counted in integers, in LANES histograms
    taken in turn, so that consecutive values never wait for one another's add to the same
    slot; then ``scale * count`` is added to each slot. Unweighted, the bits are those of
    ``_count``: counts of whole numbers are exact."""
    cdef Py_ssize_t counts[LANES * SMALL_HIST]
    cdef Py_ssize_t r, j, e, h, lane = 0, size = 2 * half, C = job.C, T = job.T
    cdef Py_ssize_t n = job.rows * C
    cdef cmp_t scale = <cmp_t>(T - 1)
    cdef bint epsilon_ends = job.mode == M_EVEN_EPS
    memset(counts, 0, LANES * size * sizeof(Py_ssize_t))
    if job.top_k or job.multi_label or job.from_logits or job.c1 - job.c0 != C:
        for r in range(job.rows):
            for j in range(job.c0, job.c1):
                e = r * C + j
                counts[lane * size + (yt[e] != 0) * half + _bin(job, yp + r * C, j)] += 1
                lane = (lane + 1) & (LANES - 1)
    # Every value, one slot rule: loops the compiler keeps free of per-value tests.
    elif job.mode == M_SORTED:
        for e in range(n):
            counts[lane * size + (yt[e] != 0) * half
                   + _sorted_slot(thr, T, <cmp_t>yp[e])] += 1
            lane = (lane + 1) & (LANES - 1)
    else:
        for e in range(n):
            counts[lane * size + (yt[e] != 0) * half
                   + _even_slot(scale, epsilon_ends, <cmp_t>yp[e])] += 1
            lane = (lane + 1) & (LANES - 1)
    for h in range(size):
        hist[h] += job.scale * <double>(counts[h] + counts[size + h] + counts[2 * size + h]
                                        + counts[3 * size + h])


cdef int _run(const Job *job, const pred_t *yp, const label_t *yt, double *hist,
              Py_ssize_t half) except -1:
    if job.compare_f32:
        return _run_chunks(job, yp, yt, job.thr32, hist, half)
    return _run_chunks(job, yp, yt, job.thr64, hist, half)


cdef int _run_chunks(const Job *job, const pred_t *yp, const label_t *yt, const cmp_t *thr,
                     double *hist, Py_ssize_t half) except -1:
    """Counts every row into ``hist`` (2 * ``half`` doubles, IN/OUT), in fixed chunks whose
    histograms are added in chunk order."""
    cdef Py_ssize_t size = 2 * half
    cdef Py_ssize_t chunk_elems = max(<Py_ssize_t>CHUNK_ELEMS, 2 * size)
    cdef Py_ssize_t rpc = max(<Py_ssize_t>1, chunk_elems // job.C)
    cdef Py_ssize_t nchunks = (job.rows + rpc - 1) // rpc, ch, r0, h
    cdef double *partial
    if nchunks <= 1:
        if job.weights == NULL and job.label_weights == NULL and size <= SMALL_HIST:
            _count_small(job, yp, yt, thr, hist, half)
        else:
            _count(job, yp, yt, thr, 0, job.rows, hist, half)
        return 0
    partial = <double *>calloc(nchunks * size, sizeof(double))
    if partial == NULL:
        raise MemoryError(f"could not allocate {nchunks} partial histograms of {size} slots.")
    try:
        if job.rows * job.C >= PARALLEL_MIN:
            for ch in prange(nchunks, nogil=True, schedule="static", num_threads=num_threads()):
                r0 = ch * rpc
                _count(job, yp, yt, thr, r0, min(r0 + rpc, job.rows), partial + ch * size, half)
        else:
            with nogil:
                for ch in range(nchunks):
                    r0 = ch * rpc
                    _count(job, yp, yt, thr, r0, min(r0 + rpc, job.rows), partial + ch * size,
                           half)
        with nogil:
            for ch in range(nchunks):
                for h in range(size):
                    hist[h] += partial[ch * size + h]
    finally:
        free(partial)
    return 0


cdef int _run_labels(const Job *job, const pred_t *yp, cnp.ndarray yt, int code, double *hist,
                     Py_ssize_t half) except -1:
    cdef const void *t = cnp.PyArray_DATA(yt)
    if code == L_UINT8:
        return _run(job, yp, <const cnp.npy_uint8 *>t, hist, half)
    if code == L_INT32:
        return _run(job, yp, <const cnp.npy_int32 *>t, hist, half)
    if code == L_INT64:
        return _run(job, yp, <const cnp.npy_int64 *>t, hist, half)
    if code == L_FLOAT32:
        return _run(job, yp, <const float *>t, hist, half)
    return _run(job, yp, <const double *>t, hist, half)


# ---- argument handling (shared with FBetaCounts) ----

cdef int _effective_ndim(cnp.ndarray yt, cnp.ndarray yp, str name) except -1:
    """The rank y_true and y_pred share after Keras's squeeze_or_expand_to_same_rank: equal
    shapes, or shapes that differ by a trailing axis of 1 ((n,) against (n, 1) means
    (n, 1); (n, k) against (n, k, 1) means (n, k))."""
    cdef int tnd = cnp.PyArray_NDIM(yt), pnd = cnp.PyArray_NDIM(yp)
    cdef bint ok
    if tnd == pnd:
        ok = tnd >= 1 and same_dims(yt, yp, pnd)
    elif tnd == pnd + 1:
        ok = pnd >= 1 and cnp.PyArray_DIMS(yt)[tnd - 1] == 1 and same_dims(yt, yp, pnd)
    elif pnd == tnd + 1:
        ok = tnd >= 1 and cnp.PyArray_DIMS(yp)[pnd - 1] == 1 and same_dims(yt, yp, tnd)
    else:
        ok = False
    if not ok:
        raise ValueError(f"{name}: `y_true` and `y_pred` must have the same shape (batch, ...) "
                         f"(a trailing axis of 1 may differ). Received: "
                         f"y_true.shape={(<object>yt).shape}, y_pred.shape="
                         f"{(<object>yp).shape}")
    if tnd == pnd:
        return tnd
    return max(tnd, pnd) if min(tnd, pnd) == 1 else min(tnd, pnd)


cdef object _weights(object sample_weight, Py_ssize_t n, Py_ssize_t size, str name,
                     const void **data, bint *is_f32, Py_ssize_t *w_div, double *scale):
    """Sets ``data`` (NULL for one weight for all, in ``scale``) and ``w_div`` (value index
    // w_div = weight index); returns the array to keep alive while the kernel runs.
    Accepted: None, a number, one weight per sample ((n,), (n, 1)) or one per value (the
    shape of y_true)."""
    data[0] = NULL
    cdef cnp.ndarray w = as_weights(sample_weight, name, scale)
    if w is None:
        return None
    if cnp.PyArray_SIZE(w) == 1 and n != 1:
        scale[0] = float(w.reshape(-1)[0])
        return None
    if cnp.PyArray_NDIM(w) == 0 or cnp.PyArray_DIMS(w)[0] != n or not (
            cnp.PyArray_SIZE(w) == n or cnp.PyArray_SIZE(w) == size):
        raise ValueError(f"{name}: `sample_weight` must be a number, one weight per sample "
                         f"(shape ({n},) or ({n}, 1)) or one per value (the shape of y_true). "
                         f"Received: sample_weight.shape={(<object>w).shape} for {size} values "
                         f"in {n} samples")
    data[0] = cnp.PyArray_DATA(w)
    is_f32[0] = cnp.PyArray_TYPE(w) == cnp.NPY_FLOAT
    w_div[0] = size // n if cnp.PyArray_SIZE(w) == n else 1
    return w


cdef class ConfusionCounts:
    """The state of a confusion-matrix metric: per label, the total weight of positive and
    of negative labels in each threshold slot (see the module docstring).

    Args:
        thresholds: the thresholds, sorted ascending (float64, 1-D).
        mode: MODE_SORTED, MODE_EVEN or MODE_EVEN_EPS.
        compare_f32: compare in float32 (the metric's dtype is float32) or float64.
        top_k: keep only the k largest predictions of each row (0: all).
        class_id: count only this column of the last axis (-1: all).
        multi_label: one histogram per column of 2-D predictions.
        num_labels: the number of columns when multi_label (0: taken from the first batch).
        label_weights: None or one non-negative weight per column (not multi_label).
        from_logits: apply a sigmoid to the predictions first.
        name: the metric's name, for error messages.
    """
    cdef readonly object positives
    cdef readonly object negatives
    cdef readonly Py_ssize_t num_labels
    cdef object _hist
    cdef object _thr64, _thr32, _label_weights, _args
    cdef Job _job
    cdef str _name

    def __init__(self, thresholds, int mode, bint compare_f32, Py_ssize_t top_k=0,
                 Py_ssize_t class_id=-1, bint multi_label=False, Py_ssize_t num_labels=0,
                 label_weights=None, bint from_logits=False, str name="metric"):
        self._args = (thresholds, mode, compare_f32, top_k, class_id, multi_label, num_labels,
                      label_weights, from_logits, name)
        self._name = name
        self._thr64 = np.require(np.asarray(thresholds, np.float64).reshape(-1), None, "CA")
        self._thr32 = self._thr64.astype(np.float32)
        if mode not in (M_SORTED, M_EVEN, M_EVEN_EPS):
            raise ValueError(f"{name}: unknown threshold mode. Received: mode={mode}")
        if self._thr64.size < 1 or (mode != M_SORTED and self._thr64.size < 2):
            raise ValueError(f"{name}: too few thresholds ({self._thr64.size}) for mode {mode}")
        cdef Job *job = &self._job
        job.mode = mode
        job.T = self._thr64.size
        job.scale32 = <float>(job.T - 1)
        job.scale64 = <double>(job.T - 1)
        job.thr64 = <const double *>cnp.PyArray_DATA(self._thr64)
        job.thr32 = <const float *>cnp.PyArray_DATA(self._thr32)
        job.compare_f32 = compare_f32
        job.from_logits = from_logits
        job.top_k = top_k if top_k > 0 else 0
        job.c0 = class_id
        job.multi_label = multi_label
        self._label_weights = None if label_weights is None else np.require(
            np.asarray(label_weights, np.float64).reshape(-1), None, "CA")
        self.num_labels = 0
        self.positives = self.negatives = self._hist = None
        if not multi_label:
            self._allocate(1)
        elif num_labels > 0:
            self._allocate(num_labels)

    cdef _allocate(self, Py_ssize_t labels):
        self.num_labels = labels
        self._hist = np.zeros((2, labels, self._job.T + 1), np.float64)
        self.negatives, self.positives = self._hist[0], self._hist[1]

    def reset(self):
        """Forgets every batch (the number of labels, once known, stays)."""
        if self._hist is not None:
            self._hist.fill(0.0)

    def __reduce__(self):
        return _rebuild_counts, (self._args, self.positives, self.negatives)

    def _restore(self, positives, negatives):
        self._allocate(len(positives))
        self.positives[...] = positives
        self.negatives[...] = negatives

    def update(self, y_true, y_pred, sample_weight=None):
        """Adds one batch.

        Args:
            y_true: labels, cast to bool (non-zero is positive); the shape of ``y_pred``
                (a trailing axis of 1 may differ).
            y_pred: predictions, shape ``(batch, ...)``.
            sample_weight: None, a number, one weight per sample, or one per value.

        Raises:
            ValueError: shapes that do not fit (the message names them).
            TypeError: arrays of non-numeric dtype.
        """
        cdef str name = self._name
        cdef Job job = self._job     # a copy: the shape fields are this call's
        cdef int code, nd
        cdef cnp.ndarray yp = as_predictions(y_pred, name)
        cdef cnp.ndarray yt = as_labels(y_true, name, &code)
        nd = _effective_ndim(yt, yp, name)
        cdef Py_ssize_t size = cnp.PyArray_SIZE(yp)
        cdef Py_ssize_t n = cnp.PyArray_DIMS(yp)[0]
        cdef Py_ssize_t C = 1, class_id = job.c0, half
        if nd >= 2:
            C = cnp.PyArray_DIMS(yt if cnp.PyArray_NDIM(yt) >= nd else yp)[nd - 1]
        elif job.top_k:
            C = size   # a rank-1 batch is one row: Keras takes its top k over the last axis
        if size == 0:
            return
        job.C = C
        job.rows = size // C
        if class_id >= 0:
            if nd < 2:
                raise ValueError(f"{name}: with `class_id`, y_pred must have shape (batch, "
                                 f"num_classes). Received: y_pred.shape={(<object>yp).shape}")
            if class_id >= C:
                raise ValueError(f"{name}: `class_id` must be in [0, {C}) for y_pred with {C} "
                                 f"classes. Received: class_id={class_id}")
            job.c0, job.c1 = class_id, class_id + 1
        else:
            job.c0, job.c1 = 0, C
        if job.multi_label:
            if nd != 2:
                raise ValueError(f"{name}: with multi_label=True, y_pred must have rank 2 "
                                 f"(batch, num_labels). Received: y_pred.shape="
                                 f"{(<object>yp).shape}")
            if self.num_labels == 0:
                self._allocate(C)
            elif C != self.num_labels:
                raise ValueError(f"{name}: multi_label counts are kept for {self.num_labels} "
                                 f"labels. Received: y_pred.shape={(<object>yp).shape}")
        job.label_weights = NULL
        if self._label_weights is not None:
            if self._label_weights.size != C:
                raise ValueError(f"{name}: `label_weights` has {self._label_weights.size} "
                                 f"weights for y_pred with {C} labels. Received: y_pred.shape="
                                 f"{(<object>yp).shape}")
            if not job.multi_label:   # multi-label AUC weighs the label AUCs instead
                job.label_weights = <const double *>cnp.PyArray_DATA(self._label_weights)
        keep_alive = _weights(sample_weight, n, size, name, &job.weights, &job.weights_f32,
                              &job.w_div, &job.scale)
        half = self.num_labels * (job.T + 1)
        cdef double *counts = <double *>cnp.PyArray_DATA(self._hist)
        if cnp.PyArray_TYPE(yp) == cnp.NPY_FLOAT:
            _run_labels(&job, <const float *>cnp.PyArray_DATA(yp), yt, code, counts, half)
        else:
            _run_labels(&job, <const double *>cnp.PyArray_DATA(yp), yt, code, counts, half)


def _rebuild_counts(args, positives, negatives):
    counts = ConfusionCounts(*args)
    if positives is not None:
        counts._restore(positives, negatives)
    return counts


# ---- F-beta scores ----

cdef void _fbeta_rows(const pred_t *yp, const label_t *yt, Py_ssize_t n, Py_ssize_t C,
                      double threshold, bint argmax, bint compare_f32, const void *weights,
                      bint weights_f32, double scale, double *tp, double *fp, double *fn,
                      double *support) noexcept nogil:
    """Adds each row's weighted counts per class to tp, fp, fn and support (IN/OUT)."""
    cdef Py_ssize_t r, j
    cdef double w, v, top, t
    cdef bint predicted, nan
    cdef const pred_t *row
    cdef const label_t *lab
    for r in range(n):
        row = yp + r * C
        lab = yt + r * C
        w = scale
        if weights != NULL:
            w = w * ((<const float *>weights)[r] if weights_f32 else (<const double *>weights)[r])
        top = 0.0
        nan = False
        if argmax:
            # Keras: y_pred >= max(y_pred) and |y_pred| > 1e-9; a NaN max selects nothing.
            top = row[0]
            for j in range(C):
                v = <double>(<float>row[j]) if compare_f32 else <double>row[j]
                nan |= v != v
                if v > top or j == 0:
                    top = v
        for j in range(C):
            v = <double>(<float>row[j]) if compare_f32 else <double>row[j]
            if argmax:
                predicted = (not nan) and v >= top and fabs(v) > 1e-9
            else:
                predicted = v > threshold
            t = <double>lab[j]
            if predicted:
                tp[j] += w * t
                fp[j] += w * (1.0 - t)
            else:
                fn[j] += w * t
            support[j] += w * t


cdef class FBetaCounts:
    """The state of an F-beta metric: per class, the weighted true positives, false
    positives, false negatives and support (sum of y_true), float64.

    Args:
        threshold: predictions above it count as positive; None: each row's maximal
            predictions (Keras' argmax rule, zeros excluded).
        compare_f32: compare in float32 (the metric's dtype is float32) or float64.
        name: the metric's name, for error messages.
    """
    cdef readonly object true_positives, false_positives, false_negatives, support
    cdef readonly Py_ssize_t num_classes
    cdef object _threshold
    cdef bint _compare_f32
    cdef str _name

    def __init__(self, threshold=None, bint compare_f32=True, str name="fbeta_score"):
        self._threshold = threshold
        self._compare_f32 = compare_f32
        self._name = name
        self.num_classes = 0
        self.true_positives = self.false_positives = self.false_negatives = None
        self.support = None

    def reset(self):
        """Forgets every batch (the number of classes, once known, stays)."""
        if self.num_classes:
            for a in (self.true_positives, self.false_positives, self.false_negatives,
                      self.support):
                a.fill(0.0)

    def __reduce__(self):
        return _rebuild_fbeta, ((self._threshold, self._compare_f32, self._name),
                                self.true_positives, self.false_positives,
                                self.false_negatives, self.support)

    def _restore(self, tp, fp, fn, support):
        self.num_classes = len(tp)
        self.true_positives, self.false_positives = np.array(tp), np.array(fp)
        self.false_negatives, self.support = np.array(fn), np.array(support)

    def update(self, y_true, y_pred, sample_weight=None):
        """Adds one batch of 2-D ``(batch, classes)`` labels and predictions.

        Raises:
            ValueError: inputs that are not 2-D of one shape, a number of classes other than
                the first batch's, or bad sample weights.
            TypeError: arrays of non-numeric dtype.
        """
        cdef str name = self._name
        cdef int code
        cdef cnp.ndarray yp = as_predictions(y_pred, name)
        cdef cnp.ndarray yt = as_labels(y_true, name, &code)
        if not (cnp.PyArray_NDIM(yp) == 2 and cnp.PyArray_NDIM(yt) == 2
                and same_dims(yt, yp, 2)):
            raise ValueError(f"{name} expects 2D inputs of one shape (batch_size, output_dim). "
                             f"Received: y_true.shape={(<object>yt).shape}, "
                             f"y_pred.shape={(<object>yp).shape}")
        cdef Py_ssize_t n = cnp.PyArray_DIMS(yp)[0], C = cnp.PyArray_DIMS(yp)[1], w_div = 1
        if self.num_classes == 0:
            if C == 0:
                raise ValueError(f"{name} expects at least one class. Received: "
                                 f"y_pred.shape={(<object>yp).shape}")
            self.num_classes = C
            self.true_positives = np.zeros(C, np.float64)
            self.false_positives = np.zeros(C, np.float64)
            self.false_negatives = np.zeros(C, np.float64)
            self.support = np.zeros(C, np.float64)
        elif C != self.num_classes:
            raise ValueError(f"{name} counts {self.num_classes} classes. Received: "
                             f"y_pred.shape={(<object>yp).shape}")
        cdef const void *weights = NULL
        cdef bint weights_f32 = False
        cdef double scale = 1.0
        if n == 0:
            return
        keep_alive = _weights(sample_weight, n, n, name, &weights, &weights_f32, &w_div, &scale)
        cdef bint argmax = self._threshold is None
        cdef double threshold = 0.0 if argmax else self._threshold
        if self._compare_f32:
            threshold = <float>threshold
        cdef double *tp = <double *>cnp.PyArray_DATA(self.true_positives)
        cdef double *fp = <double *>cnp.PyArray_DATA(self.false_positives)
        cdef double *fn = <double *>cnp.PyArray_DATA(self.false_negatives)
        cdef double *sup = <double *>cnp.PyArray_DATA(self.support)
        cdef bint f32 = self._compare_f32
        cdef const void *t = cnp.PyArray_DATA(yt)
        if cnp.PyArray_TYPE(yp) == cnp.NPY_FLOAT:
            _fbeta_dispatch(<const float *>cnp.PyArray_DATA(yp), t, code, n, C, threshold,
                            argmax, f32, weights, weights_f32, scale, tp, fp, fn, sup)
        else:
            _fbeta_dispatch(<const double *>cnp.PyArray_DATA(yp), t, code, n, C, threshold,
                            argmax, f32, weights, weights_f32, scale, tp, fp, fn, sup)


cdef void _fbeta_dispatch(const pred_t *yp, const void *t, int code, Py_ssize_t n,
                          Py_ssize_t C, double threshold, bint argmax, bint f32,
                          const void *weights, bint weights_f32, double scale, double *tp,
                          double *fp, double *fn, double *sup) noexcept nogil:
    if code == L_UINT8:
        _fbeta_rows(yp, <const cnp.npy_uint8 *>t, n, C, threshold, argmax, f32, weights,
                    weights_f32, scale, tp, fp, fn, sup)
    elif code == L_INT32:
        _fbeta_rows(yp, <const cnp.npy_int32 *>t, n, C, threshold, argmax, f32, weights,
                    weights_f32, scale, tp, fp, fn, sup)
    elif code == L_INT64:
        _fbeta_rows(yp, <const cnp.npy_int64 *>t, n, C, threshold, argmax, f32, weights,
                    weights_f32, scale, tp, fp, fn, sup)
    elif code == L_FLOAT32:
        _fbeta_rows(yp, <const float *>t, n, C, threshold, argmax, f32, weights, weights_f32,
                    scale, tp, fp, fn, sup)
    else:
        _fbeta_rows(yp, <const double *>t, n, C, threshold, argmax, f32, weights, weights_f32,
                    scale, tp, fp, fn, sup)


def _rebuild_fbeta(args, tp, fp, fn, support):
    counts = FBetaCounts(*args)
    if tp is not None:
        counts._restore(tp, fp, fn, support)
    return counts
