"""Hinge losses, for maximum-margin classifiers: hinge, squared hinge and categorical
hinge; each class beside its function form.
"""
import numpy as np

from minidl import ops
from minidl.losses.base import LOSSES, _ElementwiseLoss, _function_inputs


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

    _KIND = "hinge"
    _FUNCTION = staticmethod(hinge)

    def __init__(self, reduction="sum_over_batch_size", name="hinge"):
        super().__init__(name=name, reduction=reduction)


def squared_hinge(y_true, y_pred):
    """Per-sample ``mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)``; see
    :class:`SquaredHinge`. Args as :func:`hinge`."""
    y_true, y_pred = _function_inputs(y_true, y_pred, "squared_hinge")
    margin = ops.maximum(1.0 - _hinge_targets(y_true) * y_pred, 0.0)
    return ops.mean(ops.square(margin), axis=-1)


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

    _KIND = "squared_hinge"
    _FUNCTION = staticmethod(squared_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge"):
        super().__init__(name=name, reduction=reduction)


def categorical_hinge(y_true, y_pred):
    """Per-sample ``maximum(neg - pos + 1, 0)``; see :class:`CategoricalHinge`.

    Args:
        y_true: one-hot targets shaped like y_pred. y_pred: predictions, rank >= 1.
    """
    y_true, y_pred = _function_inputs(y_true, y_pred, "categorical_hinge")
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


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

    _KIND = "categorical_hinge"
    _FUNCTION = staticmethod(categorical_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge"):
        super().__init__(name=name, reduction=reduction)
