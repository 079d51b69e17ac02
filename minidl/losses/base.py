"""Loss functions, Keras 3 names, defaults and reductions, on fused compiled kernels.

A loss object is called like Keras, ``loss(y_true, y_pred, sample_weight=None)``, and returns a
0-d :class:`~minidl.autodiff.Tensor` (``float(loss(...))`` gives the number; with
``reduction=None`` a Tensor of per-sample losses). While a ``GradientTape`` records and
``y_pred`` is a Tensor that needs a gradient, the built-in losses record one node whose
backward reuses their compiled kernel's gradient (value and d(loss)/d(y_pred) come out of one
pass), so a hand-written ``train_step`` calling a built-in loss costs no more than ``fit``.

Training uses ``forward_backward(y_true, y_pred, grad_out)``: the reduced loss is returned and
d(loss)/d(y_pred) is written into ``grad_out`` in the same pass. When the model ends in a
softmax (sigmoid) layer, ``CategoricalCrossentropy`` and ``SparseCategoricalCrossentropy``
(``BinaryCrossentropy``) with ``from_logits=False`` can skip the activation's backward:
``softmax_forward_backward`` (``sigmoid_forward_backward``) takes the probabilities the layer
computed and writes the gradient with respect to its logits. ``loss.fused_with`` names the
activation that fusion expects ('softmax', 'sigmoid' or None).

Custom losses follow Keras 3: a function ``fn(y_true, y_pred)`` returning per-sample values
(``compile(loss=fn)`` wraps it in :class:`LossFunctionWrapper`), or a :class:`Loss` subclass
overriding ``call(y_true, y_pred)``. They are computed with ``minidl.ops`` on Tensors and
differentiated by ``minidl.autodiff``; ``forward_backward`` of a custom loss records the call
and runs the backward pass into ``grad_out``.

Semantics follow Keras 3: the per-sample loss is a mean (MSE, MAE, Huber, BCE, MSLE, MAPE,
log-cosh, Poisson, the binary hinges, binary focal crossentropy) or a sum (CCE, SCCE, KL
divergence, categorical focal crossentropy, the cosine similarity) over the last axis
(categorical hinge: the hinge of one row); it is multiplied by ``sample_weight`` and reduced
with 'sum_over_batch_size' (sum / number of per-sample values; the default), 'sum', 'mean'
(the same as 'sum_over_batch_size'), 'mean_with_sample_weight' (sum / sum of weights) or
None/'none'. Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does; categorical
crossentropy first divides them by their sum.

Every built-in loss is one kind of the compiled kernel (``minidl._core._losses``) and also a
function of per-sample values on ``minidl.ops`` (``losses.kl_divergence``, ...), which
``compile(loss=fn)`` maps to the class.

Example:
    >>> loss = losses.get("sparse_categorical_crossentropy")
    >>> float(loss([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]))
    1.1769...
"""
import math
import numbers
import re

import numpy as np

from minidl import ops
from minidl._core import _losses as _kernels
from minidl.autodiff import (Tensor, gradients, record, record_scope, recording, to_array,
                             unbroadcast, wrap)
from minidl.utils.checks import check_bool, check_name
from minidl.utils.registry import Registry
from minidl.utils.registry import serialize as _serialize

LOSSES = Registry("loss")

FUNCTIONS = Registry("function")
"""Custom loss and metric functions by name, so that a saved model compiled with
``loss=fn`` or ``metrics=[fn]`` can be loaded: the file stores the function's name only."""

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


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class Loss:
    """Base class of the losses (Keras' ``keras.losses.Loss``).

    A custom loss overrides ``call(y_true, y_pred)``, returning one loss value per sample
    computed with ``minidl.ops`` (or Tensor operators); ``__call__`` multiplies in
    ``sample_weight`` and applies the reduction, and gradients come from the ops' history.

    Args:
        name: name of the instance. Defaults to the class name in snake case.
        reduction: 'sum_over_batch_size' (default), 'sum', 'mean', 'mean_with_sample_weight',
            or None/'none' for per-sample values.
        dtype: the dtype a custom loss computes in (inputs are cast to it). Defaults to
            None: the dtype of ``y_pred`` (float32 for integer predictions).

    Example:
        >>> class ScaledMSE(minidl.losses.Loss):
        ...     def call(self, y_true, y_pred):
        ...         return 2.0 * ops.mean(ops.square(y_pred - y_true), axis=-1)

    The built-in subclasses run compiled kernels instead of ``call``: they implement
    ``_kernel(y_true, y_pred, weights, scale, grad, row_loss)`` over 2-D (rows, last axis)
    arrays, returning ``(sum_r w[r] L[r], first bad row or -1)``, and ``_kernel_spec(fused)``:
    the kind and parameters of the compiled :class:`minidl._core._losses.LossKernel` that runs
    the training step's unweighted calls (``fused``: the softmax/sigmoid form). Those kernels
    are built on first use; setting any attribute drops them, so they always match the
    configuration. A subclass of a built-in loss that overrides ``call`` is a custom loss.
    """

    sparse = False   # True when y_true holds class ids rather than one value per output
    _step_kernels = None   # fused flag -> LossKernel
    _kernel_call = False   # whether __call__ and forward_backward run the compiled kernel

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A subclass overriding `call` computes what its `call` says, even below a built-in
        # loss whose kernel computes something else.
        if "call" in cls.__dict__ and "_kernel_call" not in cls.__dict__:
            cls._kernel_call = False

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name != "_step_kernels":
            object.__setattr__(self, "_step_kernels", None)

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{REDUCTIONS}. Received: reduction={reduction!r}")
        self.reduction = reduction
        self.name = check_name(type(self).__name__, name, _snake_case(type(self).__name__))
        self.dtype = None if dtype is None else self._float_dtype(dtype)

    def _float_dtype(self, dtype):
        try:
            checked = np.dtype(dtype)
        except TypeError:
            checked = None
        if checked is None or checked.kind != "f":
            raise ValueError(f"{self.name}: dtype must be a float type such as 'float32'; "
                             f"received dtype={dtype!r}.")
        return checked

    @property
    def fused_with(self):
        """The output activation whose backward this loss can absorb, or None."""
        return None

    # ---- public API ----

    def call(self, y_true, y_pred):
        """Per-sample losses: what a custom loss overrides.

        Args:
            y_true: targets, a Tensor in the loss's dtype (y_pred's by default).
            y_pred: predictions, a Tensor (recording its history while a tape records).
        Returns:
            A Tensor of one value per sample (shape ``(batch, ...)``), or a scalar.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred) "
                                  f"returning per-sample loss values.")

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch, validating the inputs first.

        Args:
            y_true: targets, shaped like y_pred (class ids of shape y_pred.shape[:-1], or
                with a trailing 1, for sparse losses).
            y_pred: predictions, rank >= 1 (an array or a Tensor); float32/float64 are kept,
                anything else is computed as float32.
            sample_weight: optional weights broadcastable to the per-sample losses
                (y_pred.shape[:-1] for the built-in losses).
        Returns:
            A 0-d Tensor, or with reduction None/'none' a Tensor of per-sample losses. While
            recording, with a ``y_pred`` Tensor that needs a gradient, the result carries the
            node of the backward pass.
        Raises:
            ValueError: mismatched shapes, NaN inputs, or (sparse) labels that are not whole
                numbers in [0, classes); for a custom loss, per-sample values whose first
                axis is not the batch.
            TypeError: a custom loss whose ``call`` returns something other than numbers.
        """
        if not self._kernel_call:
            return self._call_custom(y_true, y_pred, sample_weight)
        source = y_pred if (isinstance(y_pred, Tensor) and y_pred.requires_grad
                            and recording()) else None
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
        if self.reduction in (None, "none"):
            self._kernel(y, rows, weights, 1.0, None, row_loss)
            values = row_loss.reshape(y_pred.shape[:-1])
            sw = None
            if sample_weight is not None:
                sw = self._squeezed(sample_weight, y_pred).astype(y_pred.dtype)
                values = values * sw
            if source is None:
                return wrap(np.asarray(values))
            kernel, batch = self._kernel, y_pred.shape[:-1]

            def backward(g, needs):
                # d(sum g * values)/d(y_pred) is the kernel's gradient with per-row weights
                # g * sample_weight (summed back over what the weights broadcast).
                row_g = g if sw is None else unbroadcast(g * sw, batch)
                row_w = np.ascontiguousarray(np.broadcast_to(row_g, batch).reshape(-1),
                                             dtype=y_pred.dtype)
                grad = np.empty_like(y_pred)
                kernel(y, rows, row_w, 1.0, _rows(grad), None)
                return (grad,)
            return record(self.name, np.asarray(values), (source,), backward)
        if source is None:
            total, _ = self._kernel(y, rows, weights, 1.0, None, row_loss)
            return wrap(np.asarray(total * scale, y_pred.dtype))
        # Value and gradient in the kernel's one pass; backward only scales the gradient.
        grad = np.empty_like(y_pred)
        total, _ = self._kernel(y, rows, weights, scale, _rows(grad), row_loss)
        return record(self.name, np.asarray(total * scale, y_pred.dtype), (source,),
                      lambda g, needs: (grad * g,))

    def forward_backward(self, y_true, y_pred, grad_out, sample_weight=None):
        """Loss value and its gradient with respect to ``y_pred``, in one fused pass.

        Called every training step, so only cheap checks run (shapes, dtypes, and the label
        range, which the kernel reports instead of reading out of bounds). A custom loss
        runs its ``call`` while recording and the backward pass of what it recorded.

        Args:
            y_true: targets as for ``__call__``.
            y_pred: C-contiguous float32/float64 predictions, rank >= 1.
            grad_out: C-contiguous array like y_pred; receives d(loss)/d(y_pred).
            sample_weight: optional weights broadcastable to y_pred.shape[:-1].
        Returns:
            The reduced loss as a float. With reduction None/'none' the per-sample losses
            are summed, and grad_out is the gradient of that sum.
        Raises:
            ValueError: (custom losses) the loss does not depend on y_pred through ops.
        """
        if not self._kernel_call:
            return self._custom_forward_backward(y_true, y_pred, grad_out, sample_weight)
        kernel = self._step_kernel(False)
        if sample_weight is None and kernel is not None:
            value = kernel.fused(y_true, y_pred, grad_out)
            if value is not None:
                return value
        self._check_buffers("forward_backward", y_pred, grad_out)
        return self._fused_pass(self._kernel, y_true, y_pred, grad_out, sample_weight)

    def get_config(self):
        """The constructor arguments."""
        config = {"reduction": self.reduction, "name": self.name}
        if self.dtype is not None:
            config["dtype"] = self.dtype.name
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # ---- custom losses: ops and autodiff ----

    def _call_custom(self, y_true, y_pred, sample_weight):
        y_pred = _as_tensor(y_pred, "y_pred", self.name)
        dtype = self.dtype or (y_pred.dtype if y_pred.dtype.kind == "f" else np.dtype(np.float32))
        if y_pred.dtype != dtype:
            y_pred = ops.cast(y_pred, dtype)
        # Keras converts y_true to the loss's dtype too (class ids become floats).
        y_true = _as_tensor(y_true, "y_true", self.name, dtype)
        values = _check_values(self.call(y_true, y_pred), y_pred, self.name,
                               self._returned_by())
        return _reduce(values, sample_weight, self.reduction, self.name)

    def _returned_by(self):
        return f"{type(self).__name__}.call()"

    def _custom_forward_backward(self, y_true, y_pred, grad_out, sample_weight):
        self._check_buffers("forward_backward", y_pred, grad_out)
        source = wrap(y_pred)
        source.requires_grad = True
        with record_scope():
            value = self(y_true, source, sample_weight=sample_weight)
        (grad,) = gradients(value, [source])
        if grad is None:
            raise ValueError(
                f"{self.name}: the loss does not depend on y_pred through minidl ops, so no "
                f"gradient reaches the model. Compute it from y_pred with minidl.ops or "
                f"Tensor operators (a numpy function such as np.mean on a Tensor returns a "
                f"plain array, which has no history).")
        np.copyto(grad_out, grad, casting="unsafe")
        return float(np.sum(value.value))

    # ---- shared plumbing of the kernels ----

    def _kernel_spec(self, fused):
        """(kernel kind, delta, label_smoothing, ignore_class[, alpha, gamma, flag]) of the
        step kernel, or None for a loss without one (it then always takes the general
        path)."""
        return None

    def _step_kernel(self, fused):
        """The compiled fast path of ``forward_backward`` (``fused``: of the softmax/sigmoid
        form), or None. Its ``fused`` method returns None for inputs that need the general
        path."""
        if not self._kernel_call:
            return None
        kernels = self._step_kernels
        if kernels is None:
            kernels = self._step_kernels = {}
        kernel = kernels.get(fused, False)
        if kernel is False:
            spec = self._kernel_spec(fused)
            kernel = kernels[fused] = None if spec is None else _kernels.LossKernel(
                spec[0], spec[1], spec[2], EPSILON, spec[3], self.reduction,
                getattr(self, "axis", None), self.name, *spec[4:])
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


def _check_axis(owner, axis):
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

    _kernel_call = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return mean_squared_error(y_true, y_pred)

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

    _kernel_call = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return mean_absolute_error(y_true, y_pred)

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

    _kernel_call = True

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(name=name, reduction=reduction)
        self.delta = _check_float("Huber", "delta", delta, 0.0)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return huber(y_true, y_pred, self.delta)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.huber(y, y_pred, weights, scale, grad, row_loss, self.delta), -1

    def _kernel_spec(self, fused):
        return "huber", self.delta, 0.0, None

    def get_config(self):
        return {"delta": self.delta, **super().get_config()}


@LOSSES.register("binary_crossentropy", "bce")
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

    _kernel_call = True

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        self.label_smoothing = _check_float("BinaryCrossentropy", "label_smoothing",
                                            label_smoothing, 0.0, 1.0)
        self.axis = _check_axis("BinaryCrossentropy", axis)

    @property
    def fused_with(self):
        return None if self.from_logits or not self._kernel_call else "sigmoid"

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

    _kernel_call = True

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = check_bool(type(self).__name__, "from_logits", from_logits)
        self.label_smoothing = _check_float("CategoricalCrossentropy", "label_smoothing",
                                            label_smoothing, 0.0, 1.0)
        self.axis = _check_axis("CategoricalCrossentropy", axis)

    @property
    def fused_with(self):
        return None if self.from_logits or not self._kernel_call else "softmax"

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

    def get_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis, **super().get_config()}


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


# ---- regression, probabilistic and hinge losses of one kernel kind each ----

class _ElementwiseLoss(Loss):
    """A built-in loss without parameters: its kernel kind (``_KIND``, a function of
    ``minidl._core._losses`` taking the clip epsilon last when ``_TAKES_EPSILON``) and its
    function form (``call``)."""

    _kernel_call = True
    _KIND = None
    _TAKES_EPSILON = False

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        extra = (EPSILON,) if self._TAKES_EPSILON else ()
        return getattr(_kernels, self._KIND)(y, y_pred, weights, scale, grad, row_loss,
                                             *extra), -1

    def _kernel_spec(self, fused):
        return self._KIND, 0.0, 0.0, None


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

    _kernel_call = True
    _KIND = "kl_divergence"
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return kl_divergence(y_true, y_pred)


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

    _kernel_call = True
    _KIND = "poisson"
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="poisson"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return poisson(y_true, y_pred)


@LOSSES.register("log_cosh", "logcosh")
class LogCosh(_ElementwiseLoss):
    """Logarithm of the hyperbolic cosine of the error:
    ``loss = mean(log(cosh(y_pred - y_true)), axis=-1)``.

    About ``e ** 2 / 2`` for small errors and ``|e| - log(2)`` for large ones, so it behaves
    like the mean squared error without its sensitivity to outliers.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'log_cosh'.

    Example:
        >>> float(LogCosh()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]))
        0.108...
    """

    _kernel_call = True
    _KIND = "log_cosh"

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return log_cosh(y_true, y_pred)


@LOSSES.register("hinge")
class Hinge(_ElementwiseLoss):
    """Hinge loss: ``loss = mean(maximum(1 - y_true * y_pred, 0), axis=-1)``.

    ``y_true`` holds -1 or 1; when every target of a call is 0 or 1 they are read as -1 and
    1 (Keras' conversion of binary labels).

    Args:
        reduction: see :class:`Loss`. name: defaults to 'hinge'.

    Example:
        >>> float(Hinge()([[0., 1.], [0., 0.]], [[0.6, 0.4], [0.4, 0.6]]))
        1.3
    """

    _kernel_call = True
    _KIND = "hinge"

    def __init__(self, reduction="sum_over_batch_size", name="hinge"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return hinge(y_true, y_pred)


@LOSSES.register("squared_hinge")
class SquaredHinge(_ElementwiseLoss):
    """Squared hinge loss: ``loss = mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``.

    Targets as for :class:`Hinge` (0/1 labels become -1/1).

    Args:
        reduction: see :class:`Loss`. name: defaults to 'squared_hinge'.

    Example:
        >>> float(SquaredHinge()([[0., 1.], [0., 0.]], [[0.6, 0.4], [0.4, 0.6]]))
        1.86
    """

    _kernel_call = True
    _KIND = "squared_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return squared_hinge(y_true, y_pred)


@LOSSES.register("categorical_hinge")
class CategoricalHinge(_ElementwiseLoss):
    """Categorical hinge loss: ``loss = maximum(neg - pos + 1, 0)`` with
    ``pos = sum(y_true * y_pred, axis=-1)`` and ``neg = max((1 - y_true) * y_pred, axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'categorical_hinge'.

    Example:
        >>> float(CategoricalHinge()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]))
        1.4
    """

    _kernel_call = True
    _KIND = "categorical_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return categorical_hinge(y_true, y_pred)


@LOSSES.register("mean_squared_logarithmic_error", "msle")
class MeanSquaredLogarithmicError(_ElementwiseLoss):
    """Mean squared logarithmic error:
    ``loss = mean(square(log1p(max(y_pred, 1e-7)) - log1p(max(y_true, 1e-7))), axis=-1)``.

    Values at or below 0 count as 1e-7, as in Keras.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_squared_logarithmic_error'.

    Example:
        >>> float(MeanSquaredLogarithmicError()([[0., 1.], [0., 0.]], [[1., 1.], [0., 0.]]))
        0.120...
    """

    _kernel_call = True
    _KIND = "mean_squared_logarithmic_error"
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return mean_squared_logarithmic_error(y_true, y_pred)


@LOSSES.register("mean_absolute_percentage_error", "mape")
class MeanAbsolutePercentageError(_ElementwiseLoss):
    """Mean absolute percentage error:
    ``loss = 100 * mean(abs((y_true - y_pred) / max(abs(y_true), 1e-7)), axis=-1)``.

    Args:
        reduction: see :class:`Loss`. name: defaults to 'mean_absolute_percentage_error'.

    Example:
        >>> float(MeanAbsolutePercentageError()([[1., 2.]], [[1.5, 1.]]))
        50.0
    """

    _kernel_call = True
    _KIND = "mean_absolute_percentage_error"
    _TAKES_EPSILON = True

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return mean_absolute_percentage_error(y_true, y_pred)


@LOSSES.register("cosine_similarity")
class CosineSimilarity(_LastAxisLoss):
    """Negative cosine similarity: ``loss = -sum(l2_normalize(y_true) * l2_normalize(y_pred),
    axis=-1)``, each vector divided by ``max(norm, 1e-7)`` (Keras' ``normalize``).

    Between -1 (same direction, the minimum) and 1; 0 for orthogonal vectors or a zero vector.

    Args:
        axis: the feature axis; must be the last (-1, the default).
        reduction: see :class:`Loss`. name: defaults to 'cosine_similarity'.

    Example:
        >>> CosineSimilarity(reduction=None)([[0., 1.], [1., 1.]], [[1., 0.], [1., 1.]]).value
        array([-0.,  -1.], dtype=float32)
    """

    _kernel_call = True

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity"):
        super().__init__(name=name, reduction=reduction)
        self.axis = _check_axis("CosineSimilarity", axis)

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return cosine_similarity(y_true, y_pred, self.axis)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        return _kernels.cosine_similarity(y, y_pred, weights, scale, grad, row_loss,
                                          EPSILON), -1

    def _kernel_spec(self, fused):
        return "cosine_similarity", 0.0, 0.0, None

    def get_config(self):
        return {"axis": self.axis, **super().get_config()}


def _focal_arguments(owner, alpha, gamma, from_logits, label_smoothing, axis):
    """The checked (alpha, gamma, from_logits, label_smoothing, axis) of a focal loss."""
    return (_check_float(owner, "alpha", alpha, 0.0, 1.0),
            _check_float(owner, "gamma", gamma, 0.0),
            check_bool(owner, "from_logits", from_logits),
            _check_float(owner, "label_smoothing", label_smoothing, 0.0, 1.0),
            _check_axis(owner, axis))


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


# ---- custom losses ----

class LossFunctionWrapper(Loss):
    """A loss from a function of per-sample losses (Keras' ``keras.losses.LossFunctionWrapper``).

    ``compile(loss=fn)`` and ``losses.get(fn)`` wrap a plain function in it, named after the
    function. ``fn`` computes with ``minidl.ops`` (or Tensor operators) so that gradients
    reach the model; ``sample_weight`` and the reduction are applied as for any :class:`Loss`.

    Args:
        fn: ``fn(y_true, y_pred, **kwargs)`` returning one loss value per sample (shape
            ``(batch, ...)``), e.g. ``ops.mean(ops.square(y_pred - y_true), axis=-1)``.
        reduction: see :class:`Loss`.
        name: name of the loss. Defaults to ``fn.__name__``.
        dtype: see :class:`Loss`.
        **kwargs: further keyword arguments passed to ``fn``.

    Example:
        >>> def my_mse(y_true, y_pred):
        ...     return ops.mean(ops.square(y_pred - y_true), axis=-1)
        >>> model.compile(optimizer="adam", loss=my_mse)   # LossFunctionWrapper(my_mse)

    A model compiled with it saves the function's name; to load the model, register the
    function first (see :data:`FUNCTIONS`).
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn) or isinstance(fn, type):
            raise TypeError(f"LossFunctionWrapper: fn must be a function fn(y_true, y_pred) "
                            f"returning per-sample losses; received fn={fn!r:.100}.")
        super().__init__(name=_callable_name(fn) if name is None else name,
                         reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = dict(kwargs)

    def call(self, y_true, y_pred):
        """``fn(y_true, y_pred, **kwargs)``, after Keras' rank alignment of the two."""
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def _returned_by(self):
        return f"the loss function '{_callable_name(self.fn)}'"

    def get_config(self):
        return {"fn": function_name(self.fn), **super().get_config(), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" not in config:
            raise ValueError(f"A LossFunctionWrapper config needs 'fn', the name of the loss "
                             f"function; received keys {sorted(config)}.")
        return cls(resolve_function(config.pop("fn"), "loss"), **config)


def _callable_name(fn):
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name else _snake_case(type(fn).__name__)


def _describe(value):
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r:.60}"


def _as_tensor(x, what, owner, dtype=None):
    """``x`` as a Tensor of numbers: a Tensor as is (keeping its history; cast with ops to
    ``dtype`` when given); other data converted straight to ``dtype``, or without one as
    Keras converts it (Python floats to float32)."""
    if isinstance(x, Tensor):
        t = x
    else:
        try:
            a = np.asarray(x) if dtype is not None else to_array(x)
        except (TypeError, ValueError):
            a = None
        if a is None or a.dtype == object:
            raise TypeError(f"{owner}: {what} must be an array or tensor of numbers; received "
                            f"{_describe(x)}.")
        t = wrap(a)
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {what} must hold numbers; received dtype {t.dtype}.")
    if dtype is not None and t.dtype != dtype:
        t = ops.cast(t, dtype) if isinstance(x, Tensor) else wrap(t.value.astype(dtype))
    return t


def _check_values(values, y_pred, owner, what):
    """The per-sample losses ``what`` returned, as a float Tensor; TypeError for anything
    but numbers, ValueError unless they are a scalar or have the batch as first axis."""
    if isinstance(values, Tensor):
        t = values
    else:
        try:
            t = wrap(to_array(values))
        except (TypeError, ValueError):
            t = None
    if t is None or t.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {what} must return the per-sample losses as a tensor of "
                        f"numbers; received {_describe(values)}.")
    if t.dtype.kind != "f":
        t = ops.cast(t, y_pred.dtype)
    if t.ndim and y_pred.ndim and t.shape[0] != y_pred.shape[0]:
        raise ValueError(f"{owner}: {what} must return one loss per sample: shape "
                         f"({y_pred.shape[0]}, ...) or a scalar, for y_pred of shape "
                         f"{y_pred.shape}; received shape {t.shape}. Reduce over the feature "
                         f"axes only (e.g. ops.mean(..., axis=-1)), not over the batch.")
    return t


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras' rank alignment of two tensors whose ranks differ by a trailing axis of 1.

    Args:
        x1, x2: Tensors (or arrays).
        expand_rank_1: a rank-1 tensor facing ``(n, 1)`` gets the trailing axis (else the
            other one loses it).
    Returns:
        ``(x1, x2)``, reshaped with ops (so gradients flow through).
    """
    r1, r2 = np.ndim(x1), np.ndim(x2)
    if r1 == r2 + 1 and np.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.reshape(x2, np.shape(x2) + (1,))
        else:
            x1 = ops.reshape(x1, np.shape(x1)[:-1])
    elif r2 == r1 + 1 and np.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.reshape(x1, np.shape(x1) + (1,))
        else:
            x2 = ops.reshape(x2, np.shape(x2)[:-1])
    return x1, x2


def _reduce(values, sample_weight, reduction, owner):
    """Keras' ``reduce_weighted_values`` on ops: weights multiplied in, then the reduction.

    'mean_with_sample_weight' divides by the sum of the weights broadcast to the per-sample
    losses (as the built-in losses do); a scalar or empty ``values`` is returned as is, and
    a zero divisor gives 0 (Keras' ``divide_no_nan``).
    """
    weight_sum = None
    if sample_weight is not None:
        given = np.shape(sample_weight)
        sw = _as_tensor(sample_weight, "sample_weight", owner, values.dtype)
        # (n, 1) weights of (n,) losses lose their axis (Keras would give the losses one):
        # per-sample losses keep the shape the built-in losses give them.
        values, sw = squeeze_or_expand_to_same_rank(values, sw, expand_rank_1=False)
        try:
            shape = np.broadcast_shapes(values.shape, sw.shape)
        except ValueError:
            raise ValueError(f"{owner}: sample_weight of shape {given} does not broadcast to "
                             f"the per-sample loss shape {values.shape}.") from None
        values = values * sw
        weight_sum = float(np.sum(np.broadcast_to(sw.value, shape)))
    if reduction in (None, "none") or values.ndim == 0 or values.shape == (0,):
        return values
    loss = ops.sum(values)
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        divisor = (weight_sum if reduction == "mean_with_sample_weight" and
                   weight_sum is not None else values.size)
        loss = loss / divisor if divisor else loss * 0.0
    return loss


# ---- Keras-style functions: per-sample losses on ops ----

def _pred_tensor(y_pred, owner):
    """y_pred of a loss function as a float Tensor (float32 for other data) of rank >= 1."""
    y_pred = _as_tensor(y_pred, "y_pred", owner)
    if y_pred.dtype.kind != "f":
        y_pred = ops.cast(y_pred, np.float32)
    if y_pred.ndim == 0:
        raise ValueError(f"{owner}: y_pred must have rank >= 1; received a scalar.")
    return y_pred


def _function_inputs(y_true, y_pred, owner):
    """(y_true, y_pred) of a loss function as float Tensors of y_pred's dtype and one shape."""
    y_pred = _pred_tensor(y_pred, owner)
    given = np.shape(y_true)
    y_true = _as_tensor(y_true, "y_true", owner, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: y_true and y_pred must have the same shape; received "
                         f"y_true.shape={given}, y_pred.shape={y_pred.shape}.")
    return y_true, y_pred


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


def mean_squared_error(y_true, y_pred):
    """Per-sample mean of squared errors: ``mean(square(y_true - y_pred), axis=-1)``.

    Args:
        y_true: targets, shaped like y_pred (``(n,)`` against ``(n, 1)`` is accepted).
        y_pred: predictions, rank >= 1.
    Returns:
        A Tensor of shape ``y_pred.shape[:-1]``, differentiable with respect to y_pred.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_squared_error")
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Per-sample mean of absolute errors: ``mean(abs(y_true - y_pred), axis=-1)``.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_absolute_error")
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss; see :class:`Huber`.

    Args:
        y_true, y_pred: as for :func:`mean_squared_error`.
        delta: where the loss turns from quadratic to linear, >= 0.
    """
    delta = _check_float("huber", "delta", delta, 0.0)
    y_true, y_pred = _function_inputs(y_true, y_pred, "huber")
    error = y_pred - y_true
    abs_error = ops.abs(error)
    return ops.mean(ops.where(abs_error <= delta, 0.5 * ops.square(error),
                              delta * abs_error - 0.5 * delta * delta), axis=-1)


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


def poisson(y_true, y_pred):
    """Per-sample Poisson loss ``mean(p - t * log(p + 1e-7), axis=-1)``; see :class:`Poisson`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "poisson")
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


def log_cosh(y_true, y_pred):
    """Per-sample ``mean(log(cosh(y_pred - y_true)), axis=-1)``; see :class:`LogCosh`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "log_cosh")
    error = y_pred - y_true
    # x + softplus(-2x) - log 2 equals log(cosh(x)) without overflowing for large |x|.
    return ops.mean(error + ops.softplus(-2.0 * error) - math.log(2.0), axis=-1)


def _hinge_targets(y_true):
    """Keras' conversion: targets that are all 0 or 1 become -1 or 1."""
    values = y_true.value
    if np.all((values == 0) | (values == 1)):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred):
    """Per-sample ``mean(maximum(1 - y_true * y_pred, 0), axis=-1)``; see :class:`Hinge`.

    Args:
        y_true: -1/1 targets shaped like y_pred; if all of them are 0 or 1 they are read as
            -1 or 1.
        y_pred: predictions, rank >= 1.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "hinge")
    return ops.mean(ops.maximum(1.0 - _hinge_targets(y_true) * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``; see
    :class:`SquaredHinge`. Args as :func:`hinge`."""
    y_true, y_pred = _function_inputs(y_true, y_pred, "squared_hinge")
    margin = ops.maximum(1.0 - _hinge_targets(y_true) * y_pred, 0.0)
    return ops.mean(ops.square(margin), axis=-1)


def categorical_hinge(y_true, y_pred):
    """Per-sample ``maximum(neg - pos + 1, 0)``; see :class:`CategoricalHinge`.

    Args:
        y_true: one-hot targets shaped like y_pred. y_pred: predictions, rank >= 1.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "categorical_hinge")
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample negative cosine similarity; see :class:`CosineSimilarity`.

    Args:
        y_true, y_pred: as for :func:`mean_squared_error`.
        axis: the feature axis. Defaults to the last.
    Returns:
        ``-sum(normalize(y_true) * normalize(y_pred), axis=axis)``.
    """
    axis = _check_axis("cosine_similarity", axis)
    y_true, y_pred = _function_inputs(y_true, y_pred, "cosine_similarity")
    return -ops.sum(ops.normalize(y_true, axis=axis) * ops.normalize(y_pred, axis=axis),
                    axis=axis)


def mean_squared_logarithmic_error(y_true, y_pred):
    """Per-sample mean squared logarithmic error; see :class:`MeanSquaredLogarithmicError`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_squared_logarithmic_error")
    first = ops.log1p(ops.maximum(y_pred, EPSILON))
    second = ops.log1p(ops.maximum(y_true, EPSILON))
    return ops.mean(ops.square(first - second), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """Per-sample mean absolute percentage error; see :class:`MeanAbsolutePercentageError`.

    Args and returns as :func:`mean_squared_error`.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "mean_absolute_percentage_error")
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


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


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
kld = KLD = kl_divergence
msle = MSLE = mean_squared_logarithmic_error
mape = MAPE = mean_absolute_percentage_error
logcosh = log_cosh

# The function forms by name (what a saved LossFunctionWrapper or MeanMetricWrapper of
# them stores), and the class that computes each on the compiled kernel.
_FUNCTION_CLASSES = {mean_squared_error: MeanSquaredError,
                     mean_absolute_error: MeanAbsoluteError, huber: Huber,
                     binary_crossentropy: BinaryCrossentropy,
                     categorical_crossentropy: CategoricalCrossentropy,
                     sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                     kl_divergence: KLDivergence, poisson: Poisson, log_cosh: LogCosh,
                     hinge: Hinge, squared_hinge: SquaredHinge,
                     categorical_hinge: CategoricalHinge, cosine_similarity: CosineSimilarity,
                     mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
                     mean_absolute_percentage_error: MeanAbsolutePercentageError,
                     binary_focal_crossentropy: BinaryFocalCrossentropy,
                     categorical_focal_crossentropy: CategoricalFocalCrossentropy}
_BUILTIN_FUNCTIONS = {f.__name__: f for f in _FUNCTION_CLASSES}


def function_name(fn):
    """The name a saved config stores for the loss or metric function ``fn``: a built-in
    function's name, the name ``fn`` is registered under in :data:`FUNCTIONS` (the
    'package>name' one when there is one), else ``fn.__name__``."""
    for name, builtin in _BUILTIN_FUNCTIONS.items():
        if builtin is fn:
            return name
    registered = [key for key, value in FUNCTIONS._by_name.items() if value is fn]
    if registered:
        return next((key for key in registered if ">" in key), registered[0])
    return _callable_name(fn)


def resolve_function(name, kind):
    """The function a saved config names: a built-in function form, else one registered in
    :data:`FUNCTIONS`.

    Args:
        name: the stored name.
        kind: 'loss' or 'metric', for the message.
    Raises:
        ValueError: no such function is known; the message says how to register it.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"The {kind} function must be given by name; received fn={name!r:.100}.")
    builtin = _BUILTIN_FUNCTIONS.get(name.strip().lower())
    if builtin is not None:
        return builtin
    try:
        return FUNCTIONS.lookup(name)
    except ValueError:
        raise ValueError(
            f"Unknown {kind} function {name!r}: a custom {kind} function must be registered "
            f"before a model that uses it is loaded. Decorate it with "
            f"@minidl.saving.register_serializable() where it is defined, and import that "
            f"module before loading.") from None


# ---- lookup ----

def get(identifier):
    """A :class:`Loss` from a name ('mse', 'sparse_categorical_crossentropy', ...), a config
    dict written by :func:`serialize`, a Loss class or instance, or a function.

    A function ``fn(y_true, y_pred)`` becomes ``LossFunctionWrapper(fn, name=fn.__name__)``,
    as in Keras' ``compile``; minidl's own function forms (``losses.mean_squared_error``,
    ...) become their class, named after the function, so they train on the kernels.

    Raises:
        ValueError: unknown name or uninterpretable identifier; the message lists valid
            names (and, for a config, says that custom losses must be registered).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict) and identifier.get("class_name") == "LossFunctionWrapper":
        extra = sorted(str(key) for key in identifier if key not in ("class_name", "config"))
        config = identifier.get("config", {})
        if extra or not isinstance(config, dict):
            raise ValueError(f"A loss config must be {{'class_name': ..., 'config': {{...}}}}; "
                             f"received {identifier!r:.200}.")
        return LossFunctionWrapper.from_config(config)
    if callable(identifier) and not isinstance(identifier, type):
        cls = next((c for f, c in _FUNCTION_CLASSES.items() if f is identifier), None)
        if cls is not None:
            return cls(name=identifier.__name__)
        return LossFunctionWrapper(identifier)
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        try:
            LOSSES.lookup(identifier["class_name"])
        except ValueError:
            raise ValueError(
                f"Unknown loss {identifier['class_name']!r}: a custom loss class must be "
                f"registered before a model that uses it is loaded; decorate it with "
                f"@minidl.saving.register_serializable(). Valid names: "
                f"{', '.join(LOSSES.names())}.") from None
    if isinstance(identifier, str):
        try:
            return LOSSES.get(identifier, base=Loss)
        except ValueError:
            try:
                fn = FUNCTIONS.lookup(identifier)
            except ValueError:
                raise ValueError(f"Unknown loss {identifier!r}. Valid names: "
                                 f"{', '.join(LOSSES.names())}.") from None
            return LossFunctionWrapper(fn, name=identifier)
    return LOSSES.get(identifier, base=Loss)


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` for a loss (a function is serialized as the
    :class:`LossFunctionWrapper` that ``get`` makes of it)."""
    return _serialize(loss if isinstance(loss, Loss) else get(loss))


def deserialize(config):
    """Inverse of :func:`serialize`."""
    return get(config)


__all__ = [
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "CategoricalHinge", "CosineSimilarity", "EPSILON",
    "FUNCTIONS", "Hinge", "Huber", "KLD", "KLDivergence", "LOSSES", "LogCosh", "Loss",
    "LossFunctionWrapper", "MAE", "MAPE", "MSE", "MSLE", "MeanAbsoluteError",
    "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError",
    "Poisson", "SparseCategoricalCrossentropy", "SquaredHinge", "binary_crossentropy",
    "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
    "categorical_hinge", "cosine_similarity", "deserialize", "function_name", "get", "hinge",
    "huber", "kl_divergence", "kld", "log_cosh", "logcosh", "mae", "mape",
    "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
    "mean_squared_logarithmic_error", "msle", "mse", "poisson", "resolve_function",
    "serialize", "sparse_categorical_crossentropy", "squared_hinge",
    "squeeze_or_expand_to_same_rank",
]
