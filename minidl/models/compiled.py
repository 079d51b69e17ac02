"""What ``compile`` configures, resolved per model output: the losses, their weights, the
metrics, and the running means that ``fit`` and ``evaluate`` report.

Keras 3's rules, for a model with outputs named after the layers computing them:
- ``loss``: one loss (applied to every output), a list with one entry per output, or a dict
  keyed by output name; None for an output leaves it out of the loss.
- ``loss_weights``: a float (one output), a list, or a dict; the total loss is the
  weighted sum of the outputs' losses (plus the regularization penalties).
- ``metrics``: a list of metrics (one output); for several outputs, a list with one entry
  (a metric or a list of them) per output, or a dict keyed by output name. A metric is a
  name, a Metric, or a function of per-sample values (a ``MeanMetricWrapper`` named after
  it); a loss is a name, a Loss, or a function (a ``LossFunctionWrapper``).
- Logs: ``loss``, then ``<output>_loss`` per output when several outputs have a loss
  (unweighted), then the metrics: ``<metric>``, or ``<output>_<metric>`` with several
  outputs.
"""
import numbers

import numpy as np

from minidl import losses as losses_module
from minidl import metrics as metrics_module
from minidl.autodiff import Tensor, wrap
from minidl.metrics import result_value
from minidl.metrics.accuracy import _KernelMetric

# The update_state of the compiled-kernel metrics, which take numpy arrays (the hot path).
_ARRAY_UPDATE = _KernelMetric.update_state


def _tensor(a):
    return a if a is None or isinstance(a, Tensor) else wrap(a)


class CompiledLosses:
    """Losses, loss weights and metrics of a compiled model, one entry per output.

    Args:
        output_names: the model's output names.
        output_shapes: the outputs' sample shapes (to resolve 'accuracy').
        loss, loss_weights, metrics: as given to ``compile``.

    Attributes:
        losses: a Loss or None per output.
        weights: a float or None (weight 1) per output.
        metrics: a list of Metric per output.
    """

    def __init__(self, output_names, output_shapes, loss, loss_weights, metrics):
        count = len(output_names)
        self.names = list(output_names)
        self.losses = [None if spec is None else losses_module.get(spec)
                       for spec in _per_output(loss, self.names, "loss", broadcast=True)]
        if loss_weights is None:
            weights = [None] * count
        elif isinstance(loss_weights, numbers.Real) and not isinstance(loss_weights, bool):
            if count != 1:
                raise ValueError(f"loss_weights must be a list or dict for a model with "
                                 f"{count} outputs; received loss_weights={loss_weights!r}.")
            weights = [loss_weights]
        else:
            weights = _per_output(loss_weights, self.names, "loss_weights", broadcast=False)
        for name, w in zip(self.names, weights):
            if w is not None and (isinstance(w, bool) or not isinstance(w, numbers.Real)):
                raise ValueError(f"loss_weights must hold numbers; received {w!r} for output "
                                 f"'{name}'.")
        self.weights = [None if w is None else float(w) for w in weights]
        self.metrics = []
        specs = _metric_specs(metrics, self.names)
        for name, shape, loss_obj, entries in zip(self.names, output_shapes, self.losses, specs):
            resolved = [metrics_module.get(m, loss=loss_obj, output_shape=tuple(shape))
                        for m in entries]
            self.metrics.append(resolved)
        self.loss_tracker = metrics_module.Mean(name="loss")
        with_loss = [i for i, loss_obj in enumerate(self.losses) if loss_obj is not None]
        self.per_output = len(with_loss) > 1
        self.trackers = [metrics_module.Mean(name=f"{self.names[i]}_loss")
                         if self.per_output and i in with_loss else None
                         for i in range(count)]
        self._prefix = [f"{name}_" if count > 1 else "" for name in self.names]

    @property
    def all_metrics(self):
        return [m for per_output in self.metrics for m in per_output]

    def names_in_logs(self):
        """The keys of :meth:`logs`, in order."""
        return list(self.logs().keys())

    def reset(self):
        self.loss_tracker.reset_state()
        for tracker in self.trackers:
            if tracker is not None:
                tracker.reset_state()
        for metric in self.all_metrics:
            metric.reset_state()

    def update_metrics(self, targets, outputs, masks=None):
        """Adds one batch to every metric: the compiled-kernel metrics read the arrays as
        they are; other metrics (custom ones, function wrappers) receive Tensors, as Keras
        passes tensors to ``update_state``. An output with a mask (``masks``, aligned with
        the outputs) counts its unmasked entries only: the mask is the metrics' sample
        weight, as in Keras' MeanMetricWrapper."""
        for i, (metrics, y, out) in enumerate(zip(self.metrics, targets, outputs)):
            mask = masks[i] if masks else None
            weight = {}
            if mask is not None:
                y, out, weight = _unmasked_entries(y, out, mask)
            as_tensors = None
            for metric in metrics:
                if type(metric).update_state is _ARRAY_UPDATE:
                    metric.update_state(y, out, **weight)
                else:
                    if as_tensors is None:
                        as_tensors = (_tensor(y), _tensor(out))
                    metric.update_state(*as_tensors, **weight)

    def logs(self, prefix=""):
        logs = {prefix + "loss": self.loss_tracker.result()}
        for tracker in self.trackers:
            if tracker is not None:
                logs[prefix + tracker.name] = tracker.result()
        seen = set(logs)
        for output_prefix, metrics in zip(self._prefix, self.metrics):
            for metric in metrics:
                key = prefix + output_prefix + metric.name
                base, count = key, 1
                while key in seen:   # two metrics of one name: Keras appends _1, _2, ...
                    key = f"{base}_{count}"
                    count += 1
                seen.add(key)
                # A custom metric's result may be a Tensor or its live state variable: logs
                # and history keep a Python float of its value now.
                logs[key] = result_value(metric)
        return logs


def _per_output(spec, names, what, broadcast):
    """``spec`` as one entry per output: a list/tuple in output order, a dict by name, or
    (with ``broadcast``) one value for every output."""
    count = len(names)
    if isinstance(spec, dict):
        unknown = [key for key in spec if key not in names]
        if unknown:
            raise ValueError(f"In the dict argument `{what}`, key(s) {unknown} do not name "
                             f"any model output; the outputs are {names}. Received "
                             f"{what}={spec!r:.200}.")
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != count:
            raise ValueError(f"For a model with {count} output(s), `{what}` given as a list "
                             f"must have one entry per output; received {len(spec)} entries "
                             f"({what}={spec!r:.200}). The outputs are {names}.")
        return list(spec)
    if broadcast or count == 1:
        return [spec] * count
    raise ValueError(f"For a model with {count} outputs, `{what}` must be a list or a dict "
                     f"keyed by output name ({names}); received {what}={spec!r:.200}.")


def _metric_specs(metrics, names):
    """One list of metric specs per output."""
    count = len(names)
    if metrics is None:
        return [[] for _ in names]
    if isinstance(metrics, dict):
        per = _per_output(metrics, names, "metrics", broadcast=False)
        return [[] if m is None else list(m) if isinstance(m, (list, tuple)) else [m]
                for m in per]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list, e.g. ['accuracy'] (or a dict keyed by "
                        f"output name); received metrics={metrics!r}.")
    if count == 1:
        return [[m for m in metrics if m is not None]]
    if len(metrics) != count:
        raise ValueError(f"For a model with {count} outputs, `metrics` given as a list must "
                         f"have one entry (a metric or a list of metrics) per output; received "
                         f"{len(metrics)} entries. The outputs are {names}; a dict keyed by "
                         f"output name also works.")
    return [[] if m is None else list(m) if isinstance(m, (list, tuple)) else [m]
            for m in metrics]


def _unmasked_entries(y, out, mask):
    """``(y, out, {"sample_weight": w})`` for the metrics of an output with ``mask``
    (``(batch, timesteps)``): every timestep a sample of its own, weighted 1 where unmasked
    and 0 elsewhere. Keras weighs each sample by its share of valid steps and averages
    over steps, which gives the same results: the mean over the unmasked entries."""
    rows = mask.size
    lead = mask.ndim
    out = out.reshape((rows,) + out.shape[lead:])
    y = np.asarray(y)
    if y.shape[:lead] == mask.shape:
        y = y.reshape((rows,) + y.shape[lead:])
    return y, out, {"sample_weight": mask.reshape(rows).astype(out.dtype)}
