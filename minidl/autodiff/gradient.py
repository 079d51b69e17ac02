"""The backward pass over recorded tensors, and ``GradientTape`` for hand-written loops.

``gradients(targets, sources)`` orders the nodes reachable from the targets (each after
everything that reads it), then runs their ``backward`` closures from the targets down,
summing the gradients of a tensor read several times in a fixed order (the recording
order), so the result never depends on timing. Gradients of a float32 tensor stay float32.

A source reached only through ops without a gradient (argmax, comparisons, integer casts)
is an error naming the op; a source the targets do not depend on at all gets None, as in
TensorFlow.
"""
import numpy as np

from minidl.autodiff.tensor import Tensor, Variable, no_record_scope, record_scope, to_array


def gradients(targets, sources, output_gradients=None, strict=True):
    """Gradients of the sum of ``targets`` with respect to each of ``sources``.

    Args:
        targets: a Tensor or a list of them.
        sources: a list of Tensors / Variables (or the arrays of variables).
        output_gradients: None (ones), or one array per target: the gradient flowing into
            it (a vector-Jacobian product).
        strict: raise when a source is reached only through ops without a gradient (the
            default: asked for by a user, it is a mistake); False gives None, as
            TensorFlow does (a model's step, whose inputs need not all be differentiable).
    Returns:
        One numpy array per source (None where the targets do not depend on it).
    """
    targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    if output_gradients is None:
        output_gradients = [None] * len(targets)
    elif not isinstance(output_gradients, (list, tuple)):
        output_gradients = [output_gradients]
    if len(output_gradients) != len(targets):
        raise ValueError(f"output_gradients must have one entry per target: {len(targets)} "
                         f"targets, received {len(output_gradients)} output gradients.")
    grads = {}
    for target, seed in zip(targets, output_gradients):
        if not isinstance(target, Tensor):
            continue   # a constant: nothing flows back
        value = target.value
        if seed is None:
            seed = np.ones(value.shape, value.dtype if value.dtype.kind == "f" else np.float32)
        else:
            seed = np.asarray(seed.value if isinstance(seed, Tensor) else seed)
            if seed.shape != value.shape:
                raise ValueError(f"An output gradient has shape {seed.shape}; its target "
                                 f"has shape {value.shape}.")
        _add(grads, target, seed)
    source_ids = {id(s) for s in sources}
    blocked = {}   # id(tensor) -> name of an op without gradient the targets read it through
    with no_record_scope():
        for tensor in _reverse_order(targets):
            key = id(tensor)
            g = grads.get(key) if key in source_ids else grads.pop(key, None)
            node = tensor.node
            via = blocked.get(key)
            if node.backward is None:
                if g is not None or via is not None:
                    for parent, need in zip(node.parents, node.needs):
                        if need:
                            blocked[id(parent)] = node.op
                continue
            if g is None:
                if via is not None:
                    for parent, need in zip(node.parents, node.needs):
                        if need:
                            blocked.setdefault(id(parent), via)
                continue
            parent_grads = node.backward(g, node.needs)
            for parent, need, pg in zip(node.parents, node.needs, parent_grads):
                if need and pg is not None:
                    _add(grads, parent, pg)
    out = []
    for source in sources:
        g = grads.get(id(source))
        if g is None and strict and id(source) in blocked:
            raise ValueError(
                f"No gradient can flow to {_describe(source)}: the target reaches it only "
                f"through '{blocked[id(source)]}', which has no gradient (argmax, "
                f"comparisons and integer casts have none). Compute the target from it with "
                f"differentiable ops.")
        out.append(g)
    return out


def _add(grads, tensor, g):
    """Accumulate ``g`` into the gradient of ``tensor``, in the tensor's float type."""
    value = tensor.value
    if type(g) is not np.ndarray:
        g = np.asarray(g)
    if g.dtype != value.dtype and value.dtype.kind == "f":
        g = g.astype(value.dtype)
    if g.shape != value.shape:
        g = np.broadcast_to(g, value.shape)
    key = id(tensor)
    old = grads.get(key)
    grads[key] = g if old is None else old + g


def _reverse_order(targets):
    """The recorded tensors reachable from ``targets``, each before the tensors it was
    computed from (a reversed depth-first post-order, without recursion)."""
    order, seen = [], set()
    for target in targets:
        if not isinstance(target, Tensor) or target.node is None or id(target) in seen:
            continue
        seen.add(id(target))
        stack = [(target, iter(target.node.parents))]
        while stack:
            tensor, parents = stack[-1]
            for parent in parents:
                if isinstance(parent, Tensor) and parent.node is not None and \
                        id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append((parent, iter(parent.node.parents)))
                    break
            else:
                stack.pop()
                order.append(tensor)
    order.reverse()
    return order


def _describe(source):
    if isinstance(source, Variable):
        return f"variable '{source.path}'"
    return f"a tensor of shape {source.shape}"


class GradientTape:
    """Records the ops run in its block, to compute gradients afterwards (TensorFlow's
    ``tf.GradientTape``, which Keras programs use for hand-written training loops).

    Trainable variables (layer weights) are watched as they are used; other tensors with
    :meth:`watch`.

    Args:
        persistent: allow more than one :meth:`gradient` call.
        watch_accessed_variables: accepted for compatibility; trainable variables are
            always watched.

    Example:
        >>> with minidl.GradientTape() as tape:
        ...     loss = loss_fn(y, model(x, training=True))
        >>> grads = tape.gradient(loss, model.trainable_weights)
        >>> optimizer.apply_gradients(zip(grads, model.trainable_weights))
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = bool(persistent)
        self.watch_accessed_variables = bool(watch_accessed_variables)
        self._scope = None
        self._used = False
        self._watched = []   # tensors watch() made require a gradient, until __exit__

    def __enter__(self):
        self._scope = record_scope()
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)
        self._scope = None
        # A watch lasts as long as the tape (as TensorFlow's): later tapes do not record
        # through a tensor this one watched. What was recorded keeps its history.
        for t in self._watched:
            t.requires_grad = False
        self._watched = []
        return False

    def watch(self, tensor):
        """Record gradients with respect to ``tensor`` (a Tensor, or a list of them)."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch takes tensors; received "
                                f"{type(t).__name__}. Convert arrays first: "
                                f"x = minidl.ops.convert_to_tensor(x).")
            if not t.requires_grad:
                t.requires_grad = True
                self._watched.append(t)

    def stop_recording(self):
        """A block within the tape's in which nothing is recorded."""
        return no_record_scope()

    def reset(self):
        """Forget what was recorded (later ops record again)."""
        self._used = False

    def gradient(self, target, sources, output_gradients=None,
                 unconnected_gradients="none"):
        """Gradients of ``target`` with respect to ``sources``.

        Args:
            target: a Tensor (a non-scalar target is summed), or a list of them.
            sources: a Variable or Tensor, or a (nested) list / dict of them; arrays of a
                model's weights (``model.trainable_weights``) are matched to their variables.
            output_gradients: optional gradient(s) flowing into the target(s).
            unconnected_gradients: 'none' (None for a source the target does not depend
                on) or 'zero' (zeros).
        Returns:
            Numpy arrays in the structure of ``sources``.
        """
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero'; received "
                             f"unconnected_gradients={unconnected_gradients!r}.")
        if self._used and not self.persistent:
            raise RuntimeError("A non-persistent GradientTape can compute gradients only "
                               "once; create it with GradientTape(persistent=True) to call "
                               "gradient() several times.")
        self._used = True
        flat, rebuild = _flatten(sources)
        for s in flat:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient sources must be tensors or variables; "
                                f"received {type(s).__name__}.")
        grads = gradients(target, flat, output_gradients)
        if unconnected_gradients == "zero":
            grads = [np.zeros(s.shape, s.dtype) if g is None else g
                     for s, g in zip(flat, grads)]
        return rebuild(grads)


def _flatten(structure):
    """The leaves of a (nested) list / tuple / dict, and a function putting values back."""
    if isinstance(structure, dict):
        keys = list(structure)
        parts = [_flatten(structure[k]) for k in keys]
        flat = [leaf for leaves, _ in parts for leaf in leaves]

        def rebuild(values):
            out, i = {}, 0
            for key, (leaves, inner) in zip(keys, parts):
                out[key] = inner(values[i:i + len(leaves)])
                i += len(leaves)
            return out
        return flat, rebuild
    if isinstance(structure, (list, tuple)):
        parts = [_flatten(item) for item in structure]
        flat = [leaf for leaves, _ in parts for leaf in leaves]
        kind = type(structure) if isinstance(structure, list) else tuple

        def rebuild(values):
            out, i = [], 0
            for leaves, inner in parts:
                out.append(inner(values[i:i + len(leaves)]))
                i += len(leaves)
            return kind(out)
        return flat, rebuild
    return [structure], lambda values: values[0]


def convert_to_tensor(x, dtype=None):
    """``x`` as a Tensor (a Tensor given without dtype is returned as is)."""
    if isinstance(x, Tensor) and (dtype is None or np.dtype(dtype) == x.dtype):
        return x
    return Tensor(to_array(x), dtype)
