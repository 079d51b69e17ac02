"""The loss base class and what every loss shares.

:class:`Loss` (Keras' ``keras.losses.Loss``): argument checks, the reductions, the custom-loss
path on ``minidl.ops`` and autodiff, and the plumbing of the built-in losses' compiled kernels
(``minidl._core._losses``). Also the registries (:data:`LOSSES`, :data:`FUNCTIONS`),
:data:`EPSILON`, :class:`LossFunctionWrapper` and the input handling of the function forms.
"""
import math
import numbers
import re

import numpy as np

from minidl import ops
from minidl._core import _losses as _kernels
from minidl.autodiff import (Tensor, gradients, record, record_scope, recording, to_array,
                             unbroadcast, wrap)
from minidl.utils.checks import check_name
from minidl.utils.registry import Registry, is_function, subclass_test

LOSSES = Registry("loss", accepts=subclass_test(lambda: Loss))

FUNCTIONS = Registry("function", accepts=is_function)
"""The program's functions by name (losses, metrics, activations, regularizers, a Lambda's),
so that a saved model using them can be loaded: the file stores the function's name only."""


def program_function(name):
    """The function registered in :data:`FUNCTIONS` (or a custom object in scope) under
    ``name``, or None."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return FUNCTIONS.lookup(name)
    except ValueError:
        return None

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


# ---- the built-in losses of one kernel kind each, without parameters ----

class _ElementwiseLoss(Loss):
    """A built-in loss without parameters: its kernel kind (``_KIND``, a function of
    ``minidl._core._losses`` taking the clip epsilon last when ``_TAKES_EPSILON``) and its
    function form (``_FUNCTION``, which ``call`` runs)."""

    _kernel_call = True
    _KIND = None
    _FUNCTION = None
    _TAKES_EPSILON = False

    def call(self, y_true, y_pred):
        """Per-sample losses on ops (what ``__call__`` computes with the kernel)."""
        return self._FUNCTION(y_true, y_pred)

    def _kernel(self, y, y_pred, weights, scale, grad, row_loss):
        extra = (EPSILON,) if self._TAKES_EPSILON else ()
        return getattr(_kernels, self._KIND)(y, y_pred, weights, scale, grad, row_loss,
                                             *extra), -1

    def _kernel_spec(self, fused):
        return self._KIND, 0.0, 0.0, None


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
        # The tables of built-in functions know every family, which all import this
        # module: they are looked up when a wrapper is saved or loaded.
        from minidl.losses import function_name
        return {"fn": function_name(self.fn), **super().get_config(), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        from minidl.losses import resolve_function
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


# ---- Keras-style functions: inputs of the per-sample losses on ops ----

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
