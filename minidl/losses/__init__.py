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

The package: :mod:`~minidl.losses.base` (:class:`Loss`, the reductions, custom losses,
the registries), :mod:`~minidl.losses.regression`, :mod:`~minidl.losses.probabilistic`
and :mod:`~minidl.losses.hinge` (each loss class beside its function form); here, the
lookup (:func:`get`, :func:`serialize`, :func:`deserialize`) and the function tables.

Example:
    >>> loss = losses.get("sparse_categorical_crossentropy")
    >>> float(loss([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]))
    1.1769...
"""
from minidl.losses.base import (EPSILON, FUNCTIONS, LOSSES, Loss, LossFunctionWrapper,
                                _callable_name, squeeze_or_expand_to_same_rank)
# Helpers minidl.metrics shares with the losses.
from minidl.losses.base import _check_axis, _snake_case  # noqa: F401
from minidl.losses.hinge import (CategoricalHinge, Hinge, SquaredHinge, categorical_hinge,
                                 hinge, squared_hinge)
from minidl.losses.probabilistic import (KLD, BinaryCrossentropy, BinaryFocalCrossentropy,
                                         CategoricalCrossentropy, CategoricalFocalCrossentropy,
                                         KLDivergence, Poisson, SparseCategoricalCrossentropy,
                                         binary_crossentropy, binary_focal_crossentropy,
                                         categorical_crossentropy,
                                         categorical_focal_crossentropy, kl_divergence, kld,
                                         poisson, sparse_categorical_crossentropy)
from minidl.losses.regression import (MAE, MAPE, MSE, MSLE, CosineSimilarity, Huber, LogCosh,
                                      MeanAbsoluteError, MeanAbsolutePercentageError,
                                      MeanSquaredError, MeanSquaredLogarithmicError,
                                      cosine_similarity, huber, log_cosh, logcosh, mae, mape,
                                      mean_absolute_error, mean_absolute_percentage_error,
                                      mean_squared_error, mean_squared_logarithmic_error, mse,
                                      msle)
from minidl.utils.registry import deserializer
from minidl.utils.registry import serialize as _serialize

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
            f"before a model that uses it is loaded, or given in load_model's "
            f"custom_objects. Decorate it with @minidl.saving.register_serializable() where "
            f"it is defined, and import that module before loading.") from None


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
                f"registered before a model that uses it is loaded (decorate it with "
                f"@minidl.saving.register_serializable()) or given in load_model's "
                f"custom_objects. Valid names: "
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


deserialize = deserializer(get, "loss")


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
