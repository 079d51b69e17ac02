"""Probabilistic losses: the crossentropies (binary, categorical, sparse, focal), the
Kullback-Leibler divergence and the Poisson loss; each class beside its function form.
"""
import numbers

import numpy as np

from minidl import ops
from minidl._core import _losses as _kernels
from minidl.losses.base import (_LABEL_DTYPES, EPSILON, LOSSES, Loss, _as_tensor, _check_axis,
                                _check_float, _ElementwiseLoss, _function_inputs,
                                _LastAxisLoss, _pred_tensor)
from minidl.utils.checks import check_bool


def _crossentropy_inputs(owner, y_true, y_pred, from_logits, label_smoothing, axis):
    """The checked arguments of binary_crossentropy and categorical_crossentropy: (y_true,
    y_pred, from_logits, label_smoothing, axis)."""
    from_logits = check_bool(owner, "from_logits", from_logits)
    smoothing = _check_float(owner, "label_smoothing", label_smoothing, 0.0, 1.0)
    axis = _check_axis(owner, axis)
    return _function_inputs(y_true, y_pred, owner) + (from_logits, smoothing, axis)


def _log_softmax(x, axis):
    # The maximum is a constant shift (log-softmax does not change with it), so it is taken
    # from the values and needs no gradient.
    shifted = x - np.max(x.value, axis=axis, keepdims=True)
    return shifted - ops.log(ops.sum(ops.exp(shifted), axis=axis, keepdims=True))


class _DenseCrossentropy(_LastAxisLoss):
    """The arguments shared by :class:`BinaryCrossentropy` and
    :class:`CategoricalCrossentropy`, and the activation (``_ACTIVATION``: 'sigmoid' or
    'softmax') whose backward they absorb when ``from_logits`` is False."""

    _ACTIVATION = None

    def __init__(self, owner, from_logits, label_smoothing, axis, reduction, name):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        self.label_smoothing = _check_float(owner, "label_smoothing", label_smoothing, 0.0, 1.0)
        self.axis = _check_axis(owner, axis)

    @property
    def fused_with(self):
        return None if self.from_logits or not self._kernel_call else self._ACTIVATION

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis, **super().get_config()}


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary crossentropy (mean over ``axis``); see :class:`BinaryCrossentropy`.

    Args:
        y_true: 0/1 (or soft) targets shaped like y_pred.
        y_pred: probabilities (clipped to [1e-7, 1 - 1e-7]) or, with ``from_logits``, logits.
        from_logits: whether y_pred holds logits.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + 0.5 * s``.
        axis: the axis averaged over. Defaults to the last.
    """
    y_true, y_pred, from_logits, smoothing, axis = _crossentropy_inputs(
        "binary_crossentropy", y_true, y_pred, from_logits, label_smoothing, axis)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + 0.5 * smoothing
    if from_logits:
        # max(x, 0) - x t + log(1 + exp(-|x|)): no overflow for any logit.
        values = (ops.maximum(y_pred, 0.0) - y_pred * y_true
                  + ops.log(1.0 + ops.exp(-ops.abs(y_pred))))
    else:
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(values, axis=axis)


@LOSSES.register("binary_crossentropy", "bce")
class BinaryCrossentropy(_DenseCrossentropy):
    """Binary crossentropy, averaged over the last axis.

    Args:
        from_logits: whether y_pred holds logits (then a stable log-sigmoid form is used)
            rather than probabilities (then clipped to [1e-7, 1 - 1e-7]). Defaults to False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + 0.5 * s``. Defaults to 0.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'binary_crossentropy'.

    Shapes: y_true and y_pred (batch, ..., d); (batch,) targets match (batch, 1) outputs.
    """

    _kernel_call = True
    _ACTIVATION = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__("BinaryCrossentropy", from_logits, label_smoothing, axis, reduction,
                         name)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing,
                                   self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.binary_crossentropy(y, y_pred, weights, scale, grad, row_loss,
                                            self.from_logits, self.label_smoothing, EPSILON), -1

    def _kernel_spec(self, fused):
        kind = ("sigmoid_binary_crossentropy" if fused else
                "binary_crossentropy_logits" if self.from_logits else "binary_crossentropy")
        return kind, 0.0, self.label_smoothing, None

    def sigmoid_forward_backward(self, y_true, probs, dlogits_out, sample_weight=None):
        """Loss of sigmoid outputs and its gradient with respect to their logits.

        Args:
            y_true: targets shaped like probs. probs: the sigmoid layer's output.
            dlogits_out: buffer like probs; receives ``(probs - t) * weight / (n * batch)``
                (n: size of the last axis; the reduction's divisor in place of ``batch``).
            sample_weight: optional per-sample weights.
        Returns:
            The loss Keras reports for ``probs`` (with its clipping), as a float.
        """
        if self.from_logits:
            raise ValueError(f"{self.name}: sigmoid_forward_backward needs from_logits=False "
                             f"(the probabilities of a sigmoid layer).")
        return self._fast_or_general("sigmoid_forward_backward", self._sigmoid_kernel, y_true,
                                     probs, dlogits_out, sample_weight)

    def _sigmoid_kernel(self, y, p, weights, scale, grad, row_loss):
        return _kernels.sigmoid_binary_crossentropy(y, p, weights, scale, grad, row_loss,
                                                    self.label_smoothing, EPSILON), -1


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical crossentropy (sum over ``axis``); see
    :class:`CategoricalCrossentropy`.

    Args:
        y_true: one-hot (or soft) targets shaped like y_pred.
        y_pred: probabilities (divided by their sum, then clipped) or, with ``from_logits``,
            logits.
        from_logits: whether y_pred holds logits.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + s / classes``.
        axis: the class axis. Defaults to the last.
    """
    y_true, y_pred, from_logits, smoothing, axis = _crossentropy_inputs(
        "categorical_crossentropy", y_true, y_pred, from_logits, label_smoothing, axis)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + smoothing / y_true.shape[axis]
    if from_logits:
        log_probs = _log_softmax(y_pred, axis)
    else:
        p = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
        log_probs = ops.log(ops.clip(p, EPSILON, 1.0 - EPSILON))
    return -ops.sum(y_true * log_probs, axis=axis)


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(_DenseCrossentropy):
    """Crossentropy between one-hot (or soft) targets and predictions over the last axis.

    Args:
        from_logits: whether y_pred holds logits (log-softmax is used) rather than
            probabilities (divided by their sum, then clipped). Defaults to False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + s / classes``.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'categorical_crossentropy'.

    Shapes: y_true and y_pred (batch, ..., classes).
    """

    _kernel_call = True
    _ACTIVATION = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__("CategoricalCrossentropy", from_logits, label_smoothing, axis, reduction,
                         name)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return categorical_crossentropy(y_true, y_pred, self.from_logits,
                                        self.label_smoothing, self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.categorical_crossentropy(y, y_pred, weights, scale, grad, row_loss,
                                                 self.from_logits, self.label_smoothing,
                                                 EPSILON), -1

    def _kernel_spec(self, fused):
        kind = ("softmax_categorical_crossentropy" if fused else
                "categorical_crossentropy_logits" if self.from_logits else
                "categorical_crossentropy")
        return kind, 0.0, self.label_smoothing, None

    def softmax_forward_backward(self, y_true, probs, dlogits_out, sample_weight=None):
        """Loss of softmax outputs and its gradient with respect to their logits.

        Args:
            y_true: targets shaped like probs. probs: the softmax layer's output.
            dlogits_out: buffer like probs; receives ``(probs - t) * weight / batch`` (for
                targets summing to 1; the reduction's divisor in place of ``batch``).
            sample_weight: optional per-sample weights.
        Returns:
            The loss Keras reports for ``probs`` (with its clipping), as a float.
        """
        if self.from_logits:
            raise ValueError(f"{self.name}: softmax_forward_backward needs from_logits=False "
                             f"(the probabilities of a softmax layer).")
        return self._fast_or_general("softmax_forward_backward", self._softmax_kernel, y_true,
                                     probs, dlogits_out, sample_weight)

    def _softmax_kernel(self, y, p, weights, scale, grad, row_loss):
        return _kernels.softmax_categorical_crossentropy(
            y, p, weights, scale, grad, row_loss, self.label_smoothing, EPSILON), -1


def _batch_labels(labels, y_true, y_pred, owner):
    """``labels`` (the class ids ``y_true`` holds) in ``y_pred``'s batch shape, a trailing
    axis of 1 dropped; ValueError for any other shape."""
    batch = y_pred.shape[:-1]
    if labels.shape == batch + (1,):
        return labels.reshape(batch)
    if labels.shape != batch:
        raise ValueError(f"{owner}: y_true must have shape {batch} or {batch + (1,)} (class "
                         f"ids) for y_pred of shape {y_pred.shape}; received "
                         f"y_true.shape={np.shape(y_true)}.")
    return labels


def _check_whole_labels(y, owner):
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.trunc(y)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{owner}: class labels must be whole numbers; received y_true value "
                         f"{y.reshape(-1)[i]} at flat index {i}.")


def _check_label_range(labels, classes, counted, owner):
    """ValueError for the first of the 1-D ``labels`` outside ``[0, classes)``, among those
    ``counted`` (a mask; None for all: the ignored class may be out of range)."""
    out = (labels < 0) | (labels >= classes)
    if counted is not None:
        out &= counted
    bad = np.flatnonzero(out)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{owner}: received a label value of {labels[i]} (at flat index {i}), "
                         f"which is outside the valid range [0, {classes}) for {classes} "
                         f"classes.")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample sparse categorical crossentropy; see :class:`SparseCategoricalCrossentropy`.

    Args:
        y_true: class ids of shape ``y_pred.shape[:-1]`` (or with a trailing 1), whole
            numbers in ``[0, classes)``.
        y_pred: probabilities (divided by their sum, then clipped) or, with ``from_logits``,
            logits; classes on the last axis.
        from_logits: whether y_pred holds logits.
        ignore_class: a label value whose samples get a loss of 0. Defaults to None.
        axis: the class axis; must be the last (-1, the default).
    Raises:
        ValueError: labels of the wrong shape, not whole numbers, or out of range.
    """
    owner = "sparse_categorical_crossentropy"
    from_logits = check_bool(owner, "from_logits", from_logits)
    if ignore_class is not None and (isinstance(ignore_class, bool) or
                                     not isinstance(ignore_class, numbers.Integral)):
        raise ValueError(f"{owner}: ignore_class must be an int or None; received "
                         f"ignore_class={ignore_class!r}.")
    axis = _check_axis(owner, axis)
    y_pred = _pred_tensor(y_pred, owner)
    if axis not in (-1, y_pred.ndim - 1):
        raise ValueError(f"{owner}: minidl computes this loss over the last axis only; "
                         f"received axis={axis} for y_pred of rank {y_pred.ndim}.")
    labels = _batch_labels(_as_tensor(y_true, "y_true", owner).value, y_true, y_pred, owner)
    batch, classes = y_pred.shape[:-1], y_pred.shape[-1]
    flat = labels.reshape(-1)
    if flat.dtype.kind == "f":
        _check_whole_labels(flat, owner)
    flat = flat.astype(np.int64)
    valid = None if ignore_class is None else flat != ignore_class
    _check_label_range(flat, classes, valid, owner)
    if from_logits:
        log_probs = _log_softmax(y_pred, -1)
    else:
        p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
        log_probs = ops.log(ops.clip(p, EPSILON, 1.0 - EPSILON))
    rows = ops.reshape(log_probs, (-1, classes))
    safe = flat if valid is None else np.where(valid, flat, 0)
    values = -ops.reshape(rows[np.arange(rows.shape[0]), safe], batch)
    if valid is not None:
        values = ops.where(valid.reshape(batch), values, 0.0)
    return values


@LOSSES.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss):
    """Crossentropy between integer class labels and predictions over the last axis.

    Args:
        from_logits: whether y_pred holds logits rather than probabilities. Defaults to False.
        ignore_class: a label value (e.g. -1 or 255) whose samples count neither in the loss
            nor in the 'sum_over_batch_size' divisor. Defaults to None.
        reduction: see :class:`Loss`. name: defaults to 'sparse_categorical_crossentropy'.

    Shapes: y_pred (batch, ..., classes); y_true (batch, ...) or (batch, ..., 1), int or
    float holding whole numbers in [0, classes).
    """

    _kernel_call = True

    sparse = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, numbers.Integral)):
            raise ValueError(f"SparseCategoricalCrossentropy: ignore_class must be an int or "
                             f"None; received ignore_class={ignore_class!r}.")
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    @property
    def fused_with(self):
        return None if self.from_logits or not self._kernel_call else "softmax"

    def _targets(self, y_true, y_pred, validate):
        """(1-D int32/int64 labels, mask of counted rows or None)."""
        y = _batch_labels(np.asarray(y_true), y_true, y_pred, self.name)
        if y.dtype not in _LABEL_DTYPES:
            if y.dtype.kind == "f":
                if validate:
                    _check_whole_labels(y, self.name)
                with np.errstate(invalid="ignore"):  # NaN/inf become out-of-range ids
                    y = y.astype(np.int64)
            elif y.dtype.kind in "biu":
                y = y.astype(np.int64)
            else:
                raise TypeError(f"{self.name}: y_true must hold class ids; received dtype "
                                f"{y.dtype}.")
        labels = np.ascontiguousarray(y).reshape(-1)
        keep = None if self.ignore_class is None else labels != self.ignore_class
        if validate:
            _check_label_range(labels, y_pred.shape[-1], keep, self.name)
        return labels, keep

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits,
                                               self.ignore_class)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.sparse_categorical_crossentropy(
            y, y_pred, weights, scale, grad, row_loss, self.from_logits, self.ignore_class,
            EPSILON)

    def _kernel_spec(self, fused):
        kind = ("softmax_sparse_categorical_crossentropy" if fused else
                "sparse_categorical_crossentropy_logits" if self.from_logits else
                "sparse_categorical_crossentropy")
        return kind, 0.0, 0.0, self.ignore_class

    def softmax_forward_backward(self, y_true, probs, dlogits_out, sample_weight=None):
        """Loss of softmax outputs and its gradient with respect to their logits.

        Args:
            y_true: class ids as for ``__call__``. probs: the softmax layer's output.
            dlogits_out: buffer like probs; receives ``(probs - onehot) * weight / batch``
                (the reduction's divisor in place of ``batch``).
            sample_weight: optional per-sample weights.
        Returns:
            The loss Keras reports for ``probs`` (with its clipping), as a float.
        Raises:
            ValueError: a label outside [0, classes) (other than ignore_class).
        """
        if self.from_logits:
            raise ValueError(f"{self.name}: softmax_forward_backward needs from_logits=False "
                             f"(the probabilities of a softmax layer).")
        return self._fast_or_general("softmax_forward_backward", self._softmax_kernel, y_true,
                                     probs, dlogits_out, sample_weight)

    def _softmax_kernel(self, y, p, weights, scale, grad, row_loss):
        return _kernels.softmax_sparse_categorical_crossentropy(
            y, p, weights, scale, grad, row_loss, self.ignore_class, EPSILON)

    def get_config(self):
        return {"from_logits": self.from_logits, "ignore_class": self.ignore_class,
                **super().get_config()}


def _focal_arguments(owner, alpha, gamma, from_logits, label_smoothing, axis):
    """The checked (alpha, gamma, from_logits, label_smoothing, axis) of a focal loss."""
    return (_check_float(owner, "alpha", alpha, 0.0, 1.0),
            _check_float(owner, "gamma", gamma, 0.0),
            check_bool(owner, "from_logits", from_logits),
            _check_float(owner, "label_smoothing", label_smoothing, 0.0, 1.0),
            _check_axis(owner, axis))


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary focal crossentropy (mean over ``axis``); see
    :class:`BinaryFocalCrossentropy` for the arguments."""
    owner = "binary_focal_crossentropy"
    apply_class_balancing = check_bool(owner, "apply_class_balancing", apply_class_balancing)
    alpha, gamma, from_logits, smoothing, axis = _focal_arguments(
        owner, alpha, gamma, from_logits, label_smoothing, axis)
    y_true, y_pred = _function_inputs(y_true, y_pred, owner)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + 0.5 * smoothing
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = ops.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return ops.mean(focal, axis=axis)


@LOSSES.register("binary_focal_crossentropy")
class BinaryFocalCrossentropy(_LastAxisLoss):
    """Binary focal crossentropy (Lin et al., 2018), averaged over the last axis.

    Each element's binary crossentropy (probabilities clipped to [1e-7, 1 - 1e-7]) is
    multiplied by the focal factor ``(1 - p_t) ** gamma``, ``p_t = t p + (1 - t)(1 - p)``,
    which down-weights easy examples; with ``apply_class_balancing`` also by ``alpha`` for
    class 1 and ``1 - alpha`` for class 0. With ``gamma=0`` and no balancing it is
    :class:`BinaryCrossentropy`.

    Args:
        apply_class_balancing: whether to weight the classes by alpha. Defaults to False.
        alpha: weight of class 1, in [0, 1] (class 0 gets ``1 - alpha``). Defaults to 0.25.
        gamma: the focusing exponent, >= 0. Defaults to 2.0.
        from_logits: whether y_pred holds logits (a sigmoid is applied first). Defaults to
            False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + 0.5 * s``. Defaults to 0.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'binary_focal_crossentropy'.

    Example:
        >>> loss = BinaryFocalCrossentropy(gamma=2, from_logits=True)
        >>> float(loss([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]))
        0.691...
    """

    _kernel_call = True

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy"):
        super().__init__(name=name, reduction=reduction)
        owner = "BinaryFocalCrossentropy"
        self.apply_class_balancing = check_bool(owner, "apply_class_balancing",
                                                apply_class_balancing)
        (self.alpha, self.gamma, self.from_logits, self.label_smoothing,
         self.axis) = _focal_arguments(owner, alpha, gamma, from_logits, label_smoothing, axis)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return binary_focal_crossentropy(y_true, y_pred, self.apply_class_balancing,
                                         self.alpha, self.gamma, self.from_logits,
                                         self.label_smoothing, self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.binary_focal_crossentropy(
            y, y_pred, weights, scale, grad, row_loss, self.apply_class_balancing, self.alpha,
            self.gamma, self.from_logits, self.label_smoothing, EPSILON), -1

    def _kernel_spec(self, fused):
        kind = ("binary_focal_crossentropy_logits" if self.from_logits else
                "binary_focal_crossentropy")
        return (kind, 0.0, self.label_smoothing, None, self.alpha, self.gamma,
                int(self.apply_class_balancing))

    def get_config(self):
        return {"apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                "gamma": self.gamma, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis,
                **super().get_config()}


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample categorical focal crossentropy (sum over ``axis``); see
    :class:`CategoricalFocalCrossentropy` for the arguments."""
    owner = "categorical_focal_crossentropy"
    alpha, gamma, from_logits, smoothing, axis = _focal_arguments(
        owner, alpha, gamma, from_logits, label_smoothing, axis)
    y_true, y_pred = _function_inputs(y_true, y_pred, owner)
    if smoothing:
        y_true = y_true * (1.0 - smoothing) + smoothing / y_true.shape[axis]
    if from_logits:
        y_pred = ops.exp(_log_softmax(y_pred, axis))
    output = ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), EPSILON,
                      1.0 - EPSILON)
    focal = alpha * ops.power(1.0 - output, gamma) * (-y_true * ops.log(output))
    return ops.sum(focal, axis=axis)


@LOSSES.register("categorical_focal_crossentropy")
class CategoricalFocalCrossentropy(_LastAxisLoss):
    """Categorical focal crossentropy (Lin et al., 2018) over the last axis.

    ``loss = sum(alpha * (1 - o) ** gamma * (-y_true * log(o)), axis=-1)``, where ``o`` is
    y_pred (softmax of it with ``from_logits``) divided by its sum and clipped to
    [1e-7, 1 - 1e-7]. With ``alpha=1`` and ``gamma=0`` it is :class:`CategoricalCrossentropy`.

    Args:
        alpha: weight of every class, in [0, 1]. Defaults to 0.25. (Keras also takes one
            weight per class; minidl takes one number.)
        gamma: the focusing exponent, >= 0. Defaults to 2.0.
        from_logits: whether y_pred holds logits. Defaults to False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + s / classes``.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'categorical_focal_crossentropy'.

    Example:
        >>> loss = CategoricalFocalCrossentropy()
        >>> float(loss([[0., 1., 0.], [0., 0., 1.]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]))
        0.233...
    """

    _kernel_call = True

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy"):
        super().__init__(name=name, reduction=reduction)
        (self.alpha, self.gamma, self.from_logits, self.label_smoothing,
         self.axis) = _focal_arguments("CategoricalFocalCrossentropy", alpha, gamma,
                                       from_logits, label_smoothing, axis)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return categorical_focal_crossentropy(y_true, y_pred, self.alpha, self.gamma,
                                              self.from_logits, self.label_smoothing,
                                              self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.categorical_focal_crossentropy(
            y, y_pred, weights, scale, grad, row_loss, self.alpha, self.gamma,
            self.from_logits, self.label_smoothing, EPSILON), -1

    def _kernel_spec(self, fused):
        kind = ("categorical_focal_crossentropy_logits" if self.from_logits else
                "categorical_focal_crossentropy")
        return kind, 0.0, self.label_smoothing, None, self.alpha, self.gamma, 0

    def get_config(self):
        return {"alpha": self.alpha, "gamma": self.gamma, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis,
                **super().get_config()}


def kl_divergence(y_true, y_pred):
    """Per-sample Kullback-Leibler divergence; see :class:`KLDivergence`.

    Args:
        y_true: target distributions, shaped like y_pred (clipped to [1e-7, 1]).
        y_pred: predicted distributions, rank >= 1 (clipped to [1e-7, 1]).
    Returns:
        ``sum(t * log(t / p), axis=-1)``, a Tensor of shape ``y_pred.shape[:-1]``.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "kl_divergence")
    t = ops.clip(y_true, EPSILON, 1.0)
    p = ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(t * ops.log(t / p), axis=-1)


@LOSSES.register("kl_divergence", "kld", "kullback_leibler_divergence")
class KLDivergence(_ElementwiseLoss):
    """Kullback-Leibler divergence: ``loss = sum(t * log(t / p), axis=-1)``.

    Both ``y_true`` and ``y_pred`` are clipped to ``[1e-7, 1]`` first, as Keras does (they are
    meant to be probability distributions).

    Args:
        reduction: see :class:`Loss`. name: defaults to 'kl_divergence'.

    Example:
        >>> float(KLDivergence()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]))
        0.458...
    """

    _KIND = "kl_divergence"
    _FUNCTION = staticmethod(kl_divergence)
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(name=name, reduction=reduction)


kld = KLD = kl_divergence


def poisson(y_true, y_pred):
    """Per-sample Poisson loss ``mean(p - t * log(p + 1e-7), axis=-1)``; see :class:`Poisson`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "poisson")
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


@LOSSES.register("poisson")
class Poisson(_ElementwiseLoss):
    """Poisson loss: ``loss = mean(p - t * log(p + 1e-7), axis=-1)``.

    ``y_pred`` should be positive rates (e.g. the output of an exponential or softplus); a
    prediction at or below -1e-7 has no logarithm, and its loss is NaN, as in Keras.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'poisson'.

    Example:
        >>> float(Poisson()([[0, 1], [0, 0]], [[1, 1], [0, 0]]))
        0.5
    """

    _KIND = "poisson"
    _FUNCTION = staticmethod(poisson)
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="poisson"):
        super().__init__(name=name, reduction=reduction)
