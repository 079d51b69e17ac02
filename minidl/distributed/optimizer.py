"""``DistributedOptimizer``: the wrapped optimizer's update on gradients averaged over ranks."""
import numpy as np

from minidl.autodiff.tensor import Tensor
from minidl.distributed import comm


def _apply_averaged(self, grads, variables=None, *args, **kwargs):
    """Average ``grads`` over ranks (one rank-ordered allreduce over one flat reused
    buffer), then run the wrapped optimizer's update; with ``backward_passes_per_step`` k,
    gradients are accumulated locally and the allreduce and update happen every k-th call."""
    state = self._distributed
    arrays = [g.value if isinstance(g, Tensor) else g for g in grads]
    sizes = tuple((None if a is None else (np.shape(a), np.asarray(a).dtype)) for a in arrays)
    live = [np.asarray(a) for a in arrays if a is not None]
    if state["layout"] != sizes:
        dtype = np.result_type(*[a.dtype for a in live]) if live else np.float32
        total = sum(a.size for a in live)
        if comm.is_initialized() and total:
            # This rank's slot of the reducer's shared-memory window on one machine: the
            # gradients are gathered where the reduction reads them, with no copy in.
            state["buffer"] = state["reducer"].staging_buffer(total, dtype)
            state["buffer"][...] = 0
        else:
            state["buffer"] = np.zeros(total, dtype)
        state["layout"] = sizes
        state["passes"] = 0
    buffer = state["buffer"]
    offset = 0
    accumulate = state["passes"] > 0
    for a in live:
        part = buffer[offset:offset + a.size]
        if accumulate:
            part += a.reshape(-1)
        else:
            part[...] = a.reshape(-1)
        offset += a.size
    state["passes"] += 1
    if state["passes"] < state["backward_passes_per_step"]:
        return None
    state["passes"] = 0
    if state["average_aggregated_gradients"] and state["backward_passes_per_step"] > 1:
        buffer /= buffer.dtype.type(state["backward_passes_per_step"])
    if comm.is_initialized():
        predivide = state["gradient_predivide_factor"]
        if predivide != 1.0:   # Horovod's split of the averaging: 1/f before, f/size after
            buffer *= buffer.dtype.type(1.0 / predivide)
            state["reducer"](buffer, average=False)
            buffer *= buffer.dtype.type(predivide / comm.size())
        else:
            state["reducer"](buffer, average=state["op"] is Average)
    averaged, offset = [], 0
    for a in arrays:
        if a is None:
            averaged.append(None)
            continue
        a = np.asarray(a)
        averaged.append(buffer[offset:offset + a.size].reshape(a.shape).astype(a.dtype,
                                                                             copy=False))
        offset += a.size
    return type(self).apply(self, averaged, variables, *args, **kwargs)


class _ReduceOp:
    """A reduction of Horovod's (``hvd.Average``, ``hvd.Sum``)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"minidl.distributed.{self.name}"

    def __reduce__(self):   # pickles as the module's constant
        return self.name


Average = _ReduceOp("Average")
Sum = _ReduceOp("Sum")


class Compression:
    """Horovod's gradient compression choices. minidl reduces in the gradients' own dtype
    (float32 or float64) so that the sum is reproducible: ``Compression.none`` only."""
    none = "none"
    fp16 = "fp16"


def DistributedOptimizer(optimizer, name=None, device_dense="", device_sparse="",
                         compression=Compression.none, sparse_as_dense=False,
                         gradient_predivide_factor=1.0, op=Average,
                         backward_passes_per_step=1, average_aggregated_gradients=False,
                         num_groups=0, groups=None):
    """Wrap an optimizer so that each update uses gradients averaged over all ranks.

    The result is a new instance of the optimizer's own class (with its config and its
    state, the original is left unused), whose ``apply`` averages first, so that saving,
    ``serialize`` and the callbacks see the wrapped optimizer; a saved model loads with the
    plain optimizer (wrap it again after ``load_model``, as with Horovod). Each step's
    gradients are copied into one flat buffer (reused from step to step; on one machine
    this rank's slot of a shared-memory window), averaged with the reproducible,
    rank-ordered allreduce of :mod:`minidl.distributed.comm` (the same bits on every rank,
    every run), and handed to the wrapped optimizer's update. Without
    :func:`minidl.distributed.init`, or with one rank, the update is the wrapped
    optimizer's, bit for bit.

    Args:
        optimizer: a :class:`minidl.optimizers.Optimizer` instance or name ('adam').
        name, device_dense, device_sparse, sparse_as_dense, num_groups, groups: Horovod's
            arguments about names, devices and how tensors are fused into messages; minidl
            always reduces one flat buffer, so they change nothing.
        compression: ``Compression.none`` (``Compression.fp16`` is refused: see
            :class:`Compression`).
        gradient_predivide_factor: with ``op=Average``, divide the gradients by this
            before the sum and multiply by ``factor / size()`` after (Horovod's split of
            the averaging, for ranges of values half precision would overflow).
        op: ``Average`` (default) or ``Sum`` of the ranks' gradients.
        backward_passes_per_step: gradients of this many batches are accumulated locally
            (summed) before one allreduce and one update; the calls in between update
            nothing.
        average_aggregated_gradients: divide the accumulated gradients by
            ``backward_passes_per_step`` (Horovod's option; default False, a sum).

    Returns:
        The distributed optimizer, to pass to ``model.compile``.
    """
    from minidl import optimizers
    optimizer = optimizers.get(optimizer)
    if isinstance(backward_passes_per_step, bool) or not isinstance(
            backward_passes_per_step, (int, np.integer)) or backward_passes_per_step < 1:
        raise ValueError(f"DistributedOptimizer: backward_passes_per_step must be an int >= "
                         f"1; received backward_passes_per_step={backward_passes_per_step!r}.")
    if getattr(optimizer, "_distributed", None) is not None:
        raise ValueError("DistributedOptimizer: the optimizer is already distributed.")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"DistributedOptimizer: name must be a string or None (Horovod's "
                        f"order: optimizer, name, ...; pass backward_passes_per_step= by "
                        f"keyword); received name={name!r}.")
    if compression not in (None, Compression.none):
        raise ValueError(f"DistributedOptimizer: minidl reduces gradients in their own dtype "
                         f"(reproducible sums), so compression must be Compression.none; "
                         f"received compression={compression!r}.")
    if op is not Average and op is not Sum:
        raise ValueError(f"DistributedOptimizer: op must be minidl.distributed.Average or "
                         f"Sum; received op={op!r}.")
    if isinstance(gradient_predivide_factor, bool) or not isinstance(
            gradient_predivide_factor, (int, float, np.floating, np.integer)) \
            or not np.isfinite(gradient_predivide_factor) or gradient_predivide_factor <= 0:
        raise ValueError(f"DistributedOptimizer: gradient_predivide_factor must be a number "
                         f"> 0; received gradient_predivide_factor="
                         f"{gradient_predivide_factor!r}.")
    if gradient_predivide_factor != 1.0 and op is not Average:
        raise ValueError("DistributedOptimizer: gradient_predivide_factor applies to "
                         "op=Average only.")
    # The same class (exact-type checks, serialize, saving and Keras' file layout see the
    # wrapped optimizer); the averaging ``apply`` is bound on the instance, where the
    # trainer's ``optimizer.apply`` and ``apply_gradients`` find it first.
    base = type(optimizer)
    wrapped = base.__new__(base)
    wrapped.__dict__.update(optimizer.__dict__)
    wrapped._distributed = {"backward_passes_per_step": int(backward_passes_per_step),
                            "average_aggregated_gradients": bool(average_aggregated_gradients),
                            "buffer": None, "layout": None, "passes": 0,
                            "reducer": comm.ReproducibleAllreduce(), "op": op,
                            "gradient_predivide_factor": float(gradient_predivide_factor)}
    wrapped.apply = _AveragingApply(wrapped)
    return wrapped


class _AveragingApply:
    """The instance's ``apply``: a picklable callable (a bound function would not be)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def __call__(self, grads, variables=None, *args, **kwargs):
        return _apply_averaged(self.optimizer, grads, variables, *args, **kwargs)


def load_model(filepath, custom_optimizers=None, custom_objects=None, compile=True):
    """Horovod's ``hvd.load_model``: :func:`minidl.models.load_model`, with the model's
    optimizer (its state included: step count, slots) wrapped in
    :class:`DistributedOptimizer`, so that training resumes data-parallel.

    Args:
        filepath: the saved model (minidl's own file or a Keras ``.keras`` / ``.h5``).
        custom_optimizers: optional list of the program's own Optimizer subclasses the file
            may name (each resolves under its class name).
        custom_objects: optional dict from names to the program's own classes and
            functions, as :func:`minidl.models.load_model`'s.
        compile: as :func:`minidl.models.load_model`; False loads no optimizer (nothing to
            wrap).

    Returns:
        The model, compiled with the distributed optimizer when the file holds one.
    """
    from minidl.models import load_model as load
    from minidl.optimizers import Optimizer
    from minidl.utils.registry import _check_custom_objects
    objects = dict(_check_custom_objects(custom_objects, "load_model"))
    if custom_optimizers is not None:
        if not isinstance(custom_optimizers, (list, tuple)) or not all(
                isinstance(cls, type) and issubclass(cls, Optimizer) for cls in custom_optimizers):
            raise TypeError(f"load_model: custom_optimizers must be a list of Optimizer "
                            f"subclasses, or None; received {custom_optimizers!r:.200}.")
        objects.update({cls.__name__: cls for cls in custom_optimizers})
    model = load(filepath, custom_objects=objects, compile=compile)
    if compile and getattr(model, "compiled", False) and model.optimizer is not None \
            and getattr(model.optimizer, "_distributed", None) is None:
        model.compile(optimizer=DistributedOptimizer(model.optimizer),
                      **model._compile_args)
    return model
