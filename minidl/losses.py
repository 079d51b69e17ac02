"""Loss functions, Keras 3 names, defaults and reductions, on fused compiled kernels.

A loss object is called like Keras, ``loss(y_true, y_pred, sample_weight=None)``, and returns a
Python float (an array with ``reduction=None``). Training uses
``forward_backward(y_true, y_pred, grad_out)``: the reduced loss is returned and
d(loss)/d(y_pred) is written into ``grad_out`` in the same pass. When the model ends in a
softmax (sigmoid) layer, ``CategoricalCrossentropy`` and ``SparseCategoricalCrossentropy``
(``BinaryCrossentropy``) with ``from_logits=False`` can skip the activation's backward:
``softmax_forward_backward`` (``sigmoid_forward_backward``) takes the probabilities the layer
computed and writes the gradient with respect to its logits. ``loss.fused_with`` names the
activation that fusion expects ('softmax', 'sigmoid' or None).

Semantics follow Keras 3: the per-sample loss is a mean (MSE, MAE, Huber, BCE) or a sum (CCE,
SCCE) over the last axis; it is multiplied by ``sample_weight`` and reduced with
'sum_over_batch_size' (sum / number of per-sample values; the default), 'sum', 'mean' (the same
as 'sum_over_batch_size'), 'mean_with_sample_weight' (sum / sum of weights) or None/'none'.
Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does; categorical crossentropy first
divides them by their sum.

Example:
    >>> loss = losses.get("sparse_categorical_crossentropy")
    >>> loss([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    1.1769...
"""
import math
import numbers

import numpy as np

from minidl._core import _losses as _kernels
from minidl.utils.checks import check_bool, check_name
from minidl.utils.registry import Registry
from minidl.utils.registry import serialize as _serialize

LOSSES = Registry("loss")

EPSILON = 1e-7
"""Keras' ``backend.epsilon()``: probabilities are clipped to [EPSILON, 1 - EPSILON]."""

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_LABEL_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _rows(a):
    """(rows, last axis) view of a C-contiguous array of rank >= 1."""
    if a.ndim == 2:
        return a
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


class Loss:
    """Base class of the losses.

    Args:
        reduction: 'sum_over_batch_size' (default), 'sum', 'mean', 'mean_with_sample_weight',
            or None/'none' for per-sample values.
        name: name of the instance.

    Subclasses implement ``_kernel(y_true, y_pred, weights, scale, grad, row_loss)`` over
    2-D (rows, last axis) arrays, returning ``(sum_r w[r] L[r], first bad row or -1)``, and
    ``_kernel_spec(fused)``: the kind and parameters of the compiled
    :class:`minidl._core._losses.LossKernel` that runs the training step's unweighted calls
    (``fused``: the softmax/sigmoid form). Those kernels are built on first use; setting any
    attribute drops them, so they always match the configuration.
    """

    sparse = False   # True when y_true holds class ids rather than one value per output
    _step_kernels = None   # fused flag -> LossKernel

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name != "_step_kernels":
            object.__setattr__(self, "_step_kernels", None)

    def __init__(self, reduction="sum_over_batch_size", name=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{REDUCTIONS}. Received: reduction={reduction!r}")
        self.reduction = reduction
        self.name = check_name(type(self).__name__, name, type(self).__name__)

    @property
    def fused_with(self):
        """The output activation whose backward this loss can absorb, or None."""
        return None

    # ---- public API ----

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch, validating the inputs first.

        Args:
            y_true: targets, shaped like y_pred (class ids of shape y_pred.shape[:-1], or
                with a trailing 1, for sparse losses).
            y_pred: predictions, rank >= 1; float32/float64 are kept, anything else is
                computed as float32.
            sample_weight: optional weights broadcastable to y_pred.shape[:-1].
        Returns:
            A Python float, or with reduction None/'none' an array of per-sample losses.
        Raises:
            ValueError: mismatched shapes, NaN inputs, or (sparse) labels that are not whole
                numbers in [0, classes).
        """
        y_pred = np.asarray(y_pred)
        if y_pred.dtype not in _KERNEL_DTYPES:
            y_pred = y_pred.astype(np.float32)
        y_pred = np.ascontiguousarray(y_pred)
        self._check_pred(y_pred)
        if np.isnan(y_pred).any():
            raise ValueError(f"{self.name}: y_pred contains NaN.")
        y, extra = self._targets(y_true, y_pred, validate=True)
        weights, scale = self._weights(sample_weight, y_pred, extra)
        rows = _rows(y_pred)
        row_loss = np.empty(rows.shape[0], y_pred.dtype)
        total, _ = self._kernel(y, rows, weights, 1.0, None, row_loss)
        if self.reduction in (None, "none"):
            values = row_loss.reshape(y_pred.shape[:-1])
            if sample_weight is not None:
                values = values * self._squeezed(sample_weight, y_pred).astype(y_pred.dtype)
            return values
        return float(total * scale)

    def forward_backward(self, y_true, y_pred, grad_out, sample_weight=None):
        """Loss value and its gradient with respect to ``y_pred``, in one fused pass.

        Called every training step, so only cheap checks run (shapes, dtypes, and the label
        range, which the kernel reports instead of reading out of bounds).

        Args:
            y_true: targets as for ``__call__``.
            y_pred: C-contiguous float32/float64 predictions, rank >= 1.
            grad_out: C-contiguous array like y_pred; receives d(loss)/d(y_pred).
            sample_weight: optional weights broadcastable to y_pred.shape[:-1].
        Returns:
            The reduced loss as a float. With reduction None/'none' the per-sample losses
            are summed, and grad_out is the gradient of that sum.
        """
        kernel = self._step_kernel(False)
        if sample_weight is None and kernel is not None:
            value = kernel.fused(y_true, y_pred, grad_out)
            if value is not None:
                return value
        self._check_buffers("forward_backward", y_pred, grad_out)
        return self._fused_pass(self._kernel, y_true, y_pred, grad_out, sample_weight)

    def get_config(self):
        """The constructor arguments."""
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ---- shared plumbing ----

    def _kernel_spec(self, fused):
        """(kernel kind, delta, label_smoothing, ignore_class) of the step kernel, or None
        for a loss without one (it then always takes the general path)."""
        return None

    def _step_kernel(self, fused):
        """The compiled fast path of ``forward_backward`` (``fused``: of the softmax/sigmoid
        form), or None. Its ``fused`` method returns None for inputs that need the general
        path."""
        kernels = self._step_kernels
        if kernels is None:
            kernels = self._step_kernels = {}
        kernel = kernels.get(fused, False)
        if kernel is False:
            spec = self._kernel_spec(fused)
            kernel = kernels[fused] = None if spec is None else _kernels.LossKernel(
                spec[0], spec[1], spec[2], EPSILON, spec[3], self.reduction,
                getattr(self, "axis", None), self.name)
        return kernel

    def _fast_or_general(self, what, kernel, y_true, y_pred, grad_out, sample_weight):
        """The fused pass of a softmax/sigmoid loss: fast path first, then the general one."""
        step = self._step_kernel(True)
        if sample_weight is None and step is not None:
            value = step.fused(y_true, y_pred, grad_out)
            if value is not None:
                return value
        self._check_buffers(what, y_pred, grad_out)
        return self._fused_pass(kernel, y_true, y_pred, grad_out, sample_weight)

    def _check_pred(self, y_pred):
        if y_pred.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have rank >= 1; received a scalar.")

    def _check_buffers(self, what, y_pred, grad_out):
        owner = f"{type(self).__name__}.{what}"
        for name, a in (("y_pred", y_pred), ("grad_out", grad_out)):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{owner}: {name} must be a numpy.ndarray; received "
                                f"{type(a).__name__}.")
            if a.dtype not in _KERNEL_DTYPES:
                raise TypeError(f"{owner}: {name} must be float32 or float64; received "
                                f"{a.dtype}.")
            if not a.flags.c_contiguous:
                raise ValueError(f"{owner}: {name} must be C-contiguous.")
        if grad_out.dtype != y_pred.dtype or grad_out.shape != y_pred.shape:
            raise ValueError(f"{owner}: grad_out must match y_pred (shape {y_pred.shape}, dtype "
                             f"{y_pred.dtype}); received shape {grad_out.shape}, dtype "
                             f"{grad_out.dtype}.")
        if not grad_out.flags.writeable:
            raise ValueError(f"{owner}: grad_out is read-only.")
        self._check_pred(y_pred)

    def _fused_pass(self, kernel, y_true, y_pred, grad_out, sample_weight):
        y, extra = self._targets(y_true, y_pred, validate=False)
        weights, scale = self._weights(sample_weight, y_pred, extra)
        total, bad = kernel(y, _rows(y_pred), weights, scale, _rows(grad_out), None)
        if bad >= 0:
            self._raise_bad_label(y_true, y_pred, bad)
        return float(total * scale)

    def _raise_bad_label(self, y_true, y_pred, index):
        label = np.asarray(y_true).reshape(-1)[index]
        classes = y_pred.shape[-1]
        raise ValueError(f"{self.name}: received a label value of {label} (at flat index "
                         f"{index}), which is outside the valid range [0, {classes}) for "
                         f"{classes} classes.")

    def _targets(self, y_true, y_pred, validate):
        """(2-D targets in y_pred's dtype, None: every row counts) for dense losses."""
        y = np.asarray(y_true)
        # Keras' squeeze_or_expand_to_same_rank: (n,) targets for (n, 1) outputs and back.
        if y.ndim == y_pred.ndim + 1 and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        elif y_pred.ndim == y.ndim + 1 and y_pred.shape[-1] == 1:
            y = y.reshape(y.shape + (1,))
        if y.shape != y_pred.shape:
            raise ValueError(f"{self.name}: y_true and y_pred must have the same shape; "
                             f"received y_true.shape={np.shape(y_true)}, "
                             f"y_pred.shape={y_pred.shape}.")
        if validate and y.dtype.kind not in "biuf":
            raise TypeError(f"{self.name}: y_true must hold numbers; received dtype {y.dtype}.")
        y = np.ascontiguousarray(y, dtype=y_pred.dtype)
        if validate and np.isnan(y).any():
            raise ValueError(f"{self.name}: y_true contains NaN.")
        return _rows(y), None

    def _squeezed(self, sample_weight, y_pred):
        sw = np.asarray(sample_weight)
        batch = y_pred.shape[:-1]
        if sw.ndim == len(batch) + 1 and sw.shape[-1] == 1:
            sw = sw.reshape(sw.shape[:-1])
        return sw

    def _weights(self, sample_weight, y_pred, keep):
        """Per-row weights (or None) and the scale 1/divisor of the reduction.

        ``keep`` is None, or a boolean mask of the rows that count (ignore_class).
        """
        batch = y_pred.shape[:-1]
        rows = math.prod(batch)
        counted = rows if keep is None else int(np.count_nonzero(keep))
        weights = None
        weight_sum = counted
        if sample_weight is not None:
            sw = self._squeezed(sample_weight, y_pred).astype(y_pred.dtype, copy=False)
            if batch == ():
                # One per-sample value (rank-1 y_pred): Keras multiplies it by every weight.
                weights = np.array([sw.sum()], dtype=y_pred.dtype)
                counted, weight_sum = sw.size, float(sw.sum())
            else:
                try:
                    full = np.broadcast_to(sw, batch)
                except ValueError:
                    raise ValueError(f"{self.name}: sample_weight of shape "
                                     f"{np.shape(sample_weight)} does not broadcast to the "
                                     f"per-sample loss shape {batch}.") from None
                weights = np.ascontiguousarray(full.reshape(rows))
                weight_sum = float(weights.sum() if keep is None else weights[keep].sum())
        if self.reduction in ("sum_over_batch_size", "mean"):
            divisor = counted
        elif self.reduction == "mean_with_sample_weight":
            divisor = weight_sum
        else:
            divisor = 1
        return weights, (1.0 / divisor if divisor else 0.0)


def _check_float(owner, name, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{owner}: {name} must be a number; received {name}={value!r}.")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {name} must be {bounds}; received {name}={value!r}.")
    return float(value)


def _check_last_axis(owner, axis):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"{owner}: axis must be an int; received axis={axis!r}.")
    return int(axis)


class _LastAxisLoss(Loss):
    """A loss with a Keras ``axis`` argument; minidl computes it over the last axis only."""

    def _check_pred(self, y_pred):
        super()._check_pred(y_pred)
        if self.axis not in (-1, y_pred.ndim - 1):
            raise ValueError(f"{self.name}: minidl computes this loss over the last axis only; "
                             f"received axis={self.axis} for y_pred of rank {y_pred.ndim}. Move "
                             f"the class axis last (np.moveaxis).")


@LOSSES.register("mean_squared_error", "mse")
class MeanSquaredError(Loss):
    """Mean of squares of errors: ``loss = mean((y_true - y_pred) ** 2, axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_squared_error'.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(reduction, name)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.mean_squared_error(y, y_pred, weights, scale, grad, row_loss), -1

    def _kernel_spec(self, fused):
        return "mean_squared_error", 0.0, 0.0, None


@LOSSES.register("mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    """Mean of absolute errors: ``loss = mean(abs(y_true - y_pred), axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_absolute_error'.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(reduction, name)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.mean_absolute_error(y, y_pred, weights, scale, grad, row_loss), -1

    def _kernel_spec(self, fused):
        return "mean_absolute_error", 0.0, 0.0, None


@LOSSES.register("huber", "huber_loss")
class Huber(Loss):
    """Huber loss: mean over the last axis of ``0.5 e^2`` where ``|e| <= delta``, else
    ``delta |e| - 0.5 delta^2`` (``e = y_pred - y_true``).

    Args:
        delta: where the loss turns from quadratic to linear, >= 0. Defaults to 1.0.
        reduction: see :class:`Loss`. name: defaults to 'huber_loss'.
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(reduction, name)
        self.delta = _check_float("Huber", "delta", delta, 0.0)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.huber(y, y_pred, weights, scale, grad, row_loss, self.delta), -1

    def _kernel_spec(self, fused):
        return "huber", self.delta, 0.0, None

    def get_config(self):
        return {"delta": self.delta, **super().get_config()}


@LOSSES.register("binary_crossentropy")
class BinaryCrossentropy(_LastAxisLoss):
    """Binary crossentropy, averaged over the last axis.

    Args:
        from_logits: whether y_pred holds logits (then a stable log-sigmoid form is used)
            rather than probabilities (then clipped to [1e-7, 1 - 1e-7]). Defaults to False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + 0.5 * s``. Defaults to 0.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'binary_crossentropy'.

    Shapes: y_true and y_pred (batch, ..., d); (batch,) targets match (batch, 1) outputs.
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        self.label_smoothing = _check_float("BinaryCrossentropy", "label_smoothing",
                                            label_smoothing, 0.0, 1.0)
        self.axis = _check_last_axis("BinaryCrossentropy", axis)

    @property
    def fused_with(self):
        return None if self.from_logits else "sigmoid"

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

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis, **super().get_config()}


@LOSSES.register("categorical_crossentropy")
class CategoricalCrossentropy(_LastAxisLoss):
    """Crossentropy between one-hot (or soft) targets and predictions over the last axis.

    Args:
        from_logits: whether y_pred holds logits (log-softmax is used) rather than
            probabilities (divided by their sum, then clipped). Defaults to False.
        label_smoothing: in [0, 1]; targets become ``t * (1 - s) + s / classes``.
        axis: must be the last axis (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'categorical_crossentropy'.

    Shapes: y_true and y_pred (batch, ..., classes).
    """

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        self.label_smoothing = _check_float("CategoricalCrossentropy", "label_smoothing",
                                            label_smoothing, 0.0, 1.0)
        self.axis = _check_last_axis("CategoricalCrossentropy", axis)

    @property
    def fused_with(self):
        return None if self.from_logits else "softmax"

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

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis, **super().get_config()}


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

    sparse = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy"):
        super().__init__(reduction, name)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, numbers.Integral)):
            raise ValueError(f"SparseCategoricalCrossentropy: ignore_class must be an int or "
                             f"None; received ignore_class={ignore_class!r}.")
        self.ignore_class = None if ignore_class is None else int(ignore_class)

    @property
    def fused_with(self):
        return None if self.from_logits else "softmax"

    def _targets(self, y_true, y_pred, validate):
        """(1-D int32/int64 labels, mask of counted rows or None)."""
        y = np.asarray(y_true)
        batch = y_pred.shape[:-1]
        if y.shape == batch + (1,):
            y = y.reshape(batch)
        if y.shape != batch:
            raise ValueError(f"{self.name}: y_true must have shape {batch} or {batch + (1,)} "
                             f"(class ids) for y_pred of shape {y_pred.shape}; received "
                             f"y_true.shape={np.shape(y_true)}.")
        if y.dtype not in _LABEL_DTYPES:
            if y.dtype.kind == "f":
                if validate:
                    self._check_whole(y)
                with np.errstate(invalid="ignore"):  # NaN/inf become out-of-range ids
                    y = y.astype(np.int64)
            elif y.dtype.kind in "biu":
                y = y.astype(np.int64)
            else:
                raise TypeError(f"{self.name}: y_true must hold class ids; received dtype "
                                f"{y.dtype}.")
        labels = np.ascontiguousarray(y).reshape(-1)
        if validate:
            self._check_range(labels, y_pred.shape[-1])
        keep = None if self.ignore_class is None else labels != self.ignore_class
        return labels, keep

    def _check_whole(self, y):
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.trunc(y)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self.name}: class labels must be whole numbers; received "
                             f"y_true value {y.reshape(-1)[i]} at flat index {i}.")

    def _check_range(self, labels, classes):
        out = (labels < 0) | (labels >= classes)
        if self.ignore_class is not None:
            out &= labels != self.ignore_class
        bad = np.flatnonzero(out)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{self.name}: received a label value of {labels[i]} (at flat "
                             f"index {i}), which is outside the valid range [0, {classes}) for "
                             f"{classes} classes.")

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


# ---- Keras-style functions: per-sample losses ----

def mean_squared_error(y_true, y_pred):
    """Per-sample ``mean((y_true - y_pred) ** 2, axis=-1)``."""
    return MeanSquaredError(reduction=None)(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-sample ``mean(abs(y_true - y_pred), axis=-1)``."""
    return MeanAbsoluteError(reduction=None)(y_true, y_pred)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss; see :class:`Huber`."""
    return Huber(delta, reduction=None)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary crossentropy; see :class:`BinaryCrossentropy`."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis, reduction=None)(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical crossentropy; see :class:`CategoricalCrossentropy`."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis,
                                   reduction=None)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None):
    """Per-sample sparse categorical crossentropy; see :class:`SparseCategoricalCrossentropy`."""
    return SparseCategoricalCrossentropy(from_logits, ignore_class,
                                         reduction=None)(y_true, y_pred)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ---- lookup ----

def get(identifier):
    """A :class:`Loss` from a name ('mse', 'sparse_categorical_crossentropy', ...), a config
    dict written by :func:`serialize`, or a Loss instance.

    Raises:
        ValueError: unknown name or uninterpretable identifier; the message lists valid names.
    """
    return LOSSES.get(identifier, base=Loss)


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` for a loss."""
    return _serialize(loss)


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return get(config)


__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "EPSILON", "Huber", "LOSSES", "Loss",
    "MAE", "MSE", "MeanAbsoluteError", "MeanSquaredError", "SparseCategoricalCrossentropy",
    "binary_crossentropy", "categorical_crossentropy", "deserialize", "get", "huber", "mae",
    "mean_absolute_error", "mean_squared_error", "mse", "serialize",
    "sparse_categorical_crossentropy",
]
