"""The backward pass over recorded tensors, and ``GradientTape`` for hand-written loops.

``gradients(targets, sources)`` orders the nodes reachable from the targets (each after
everything that reads it), then runs their ``backward`` closures from the targets down,
summing the gradients of a tensor read several times in a fixed order, so the result
never depends on timing. Gradients of a float32 tensor stay float32. A ``GradientTape``
(and a user layer's call in a model's plan) also keeps the list of what it records, in
order: its backward pass runs over that list, latest first, instead of searching the
graph. Either way, the pass leaves out what leads to no source, and computes no gradient
for an operand that does not need one.

A source reached only through ops without a gradient (argmax, comparisons, integer casts)
is an error naming the op; a source the targets do not depend on at all gets None, as in
TensorFlow.
"""
from operator import attrgetter

import numpy as np

from minidl.autodiff.tensor import (Tensor, Variable, _state, no_record_scope, record_scope,
                                    to_array)


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
    return gradients_into(targets, sources, output_gradients, strict=strict)


def gradients_into(targets, sources, output_gradients=None, buffers=None, tape=None,
                   strict=True):
    """:func:`gradients`, writing the gradients of sources into given arrays where the ops
    can (``tensor.gradient_buffer``; matmul's GEMM writes its operand's gradient there).

    A model's plan runs a user layer's backward pass so (:func:`layer_gradients`), the
    buffers being the plan's gradient arrays of the layer's weights: for the reference
    MLP's first layer, a 200 KB array (its 784x64 float32 kernel's gradient) less to
    allocate and copy per step.

    Args:
        targets, sources, output_gradients: as for :func:`gradients`.
        buffers: None, or one entry per source: an array of the source's shape and dtype
            that nothing else reads or writes during the call, or None.
        tape: None, or a list of tensors in recording order (``tensor._state.tape``, a
            GradientTape's). When it holds the targets' whole recorded graph, the backward
            pass runs over it, latest first, instead of searching the graph from the
            targets (0.5 us less per op); otherwise the search runs. The gradients are the
            same either way (summed in another fixed order).
        strict: as for :func:`gradients`.
    Returns:
        As :func:`gradients`. An entry is its buffer itself when the gradient was written
        there; otherwise the buffer's content is undefined and the caller copies the entry.
    """
    targets, grads, owned = _seeds(targets, output_gradients)
    source_ids = set(map(id, sources))
    order = None if tape is None else _needed(tape, source_ids, targets, sources)
    if order is None:
        order = _needed(_post_order(targets), source_ids)
    return _run(order, grads, owned, sources, source_ids, buffers, strict)


def layer_gradients(targets, sources, output_gradients, buffers, tape, prune):
    """The backward pass of a user layer's call in a model's plan
    (``layers.eager.tape_backward``): :func:`gradients_into` over the call's ``tape``, all
    of which the layer's gradients flow through (as TensorFlow's tape: a tensor the call
    read with a history from outside it, e.g. one kept from an earlier step, passes no
    gradient back).

    Args:
        prune: False when every tensor of the tape that needs a gradient leads to one of
            the sources (every input of the call is a source, the layer trainable): the
            pass then runs over the tape reversed, without :func:`_needed`'s pass over it
            (as much Python work per op as recording it). True: leave out what leads to
            no source (the input of a model's first layer).
    """
    seed = output_gradients
    if type(seed) is np.ndarray and isinstance(targets, Tensor) and \
            seed.dtype is targets.value.dtype and seed.shape == targets.value.shape:
        grads, owned = {id(targets): seed}, {}   # (_seeds' answer for the usual call)
    else:
        targets, grads, owned = _seeds(targets, output_gradients)
    source_ids = set(map(id, sources))
    if prune:
        order = _needed(tape, source_ids)
    else:
        latest_first = tape[::-1]
        order = zip(latest_first, map(_node_of, latest_first), map(_needs_of, latest_first))
    # (Not strict: an input the output reaches only through a comparison or an integer
    # cast gets no gradient, as TensorFlow's would.)
    return _run(order, grads, owned, sources, source_ids, buffers, False)


_node_of, _needs_of = attrgetter("node"), attrgetter("node.needs")


def _seeds(targets, output_gradients):
    """``(targets as a sequence, {id(target): its seed gradient}, {})``, the seeds checked
    (ones where None)."""
    if isinstance(targets, Tensor) and not isinstance(output_gradients, (list, tuple)):
        # One target (a user layer's output): no lists to make.
        pairs = ((targets, output_gradients),)
        targets = (targets,)
    else:
        targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        if output_gradients is None:
            output_gradients = [None] * len(targets)
        elif not isinstance(output_gradients, (list, tuple)):
            output_gradients = [output_gradients]
        if len(output_gradients) != len(targets):
            raise ValueError(f"output_gradients must have one entry per target: "
                             f"{len(targets)} targets, received {len(output_gradients)} "
                             f"output gradients.")
        pairs = zip(targets, output_gradients)
    grads = {}   # id(tensor) -> its gradient so far
    owned = {}   # id(tensor) -> the gradient array when this call made it (may add into it)
    for target, seed in pairs:
        if not isinstance(target, Tensor):
            continue   # a constant: nothing flows back
        value = target.value
        if seed is None:
            seed = np.ones(value.shape, value.dtype if value.dtype.kind == "f" else np.float32)
        else:
            if type(seed) is not np.ndarray:
                seed = np.asarray(seed.value if isinstance(seed, Tensor) else seed)
            if seed.shape != value.shape:
                raise ValueError(f"An output gradient has shape {seed.shape}; its target "
                                 f"has shape {value.shape}.")
            if seed.dtype is value.dtype and id(target) not in grads:
                grads[id(target)] = seed   # (what _add does with it)
                continue
        _add(grads, owned, target, seed)
    return targets, grads, owned


def _run(order, grads, owned, sources, source_ids, buffers, strict):
    """The backward pass over ``order`` (from :func:`_needed`) from the seeds in
    ``grads``; the gradients of ``sources``, as :func:`gradients_into` returns them."""
    blocked = {}   # id(tensor) -> name of an op without gradient the targets read it through
    state = _state
    saved = state.depth, state.buffers
    state.depth = 0   # the backward closures' own ops record nothing
    if buffers is not None:
        given = dict(zip(map(id, sources), buffers))   # (None entries: no buffer)
        state.buffers = given
        owned.update(given)
    get, ndarray, add = grads.get, np.ndarray, np.add   # (locals: the loop runs per op)
    try:
        for tensor, node, needs in order:
            key = id(tensor)
            g = get(key) if key in source_ids else grads.pop(key, None)
            backward = node.backward
            if backward is None:
                if g is not None or key in blocked:
                    for parent, need in zip(node.parents, needs):
                        if need:
                            blocked[id(parent)] = node.op
                continue
            if g is None:
                via = blocked.get(key) if blocked else None
                if via is not None:
                    for parent, need in zip(node.parents, needs):
                        if need:
                            blocked.setdefault(id(parent), via)
                continue
            for parent, need, pg in zip(node.parents, needs, backward(g, needs)):
                if need and pg is not None:
                    value = parent.value
                    if type(pg) is ndarray and pg.dtype is value.dtype and \
                            pg.shape == value.shape:
                        # _add for the usual array of the parent's type and shape, inlined
                        # (the call was 15% of a chain of adds' backward pass).
                        key = id(parent)
                        old = get(key)
                        if old is None:
                            grads[key] = pg
                        elif owned.get(key) is old:
                            add(old, pg, old)
                        else:
                            grads[key] = owned[key] = old + pg
                    else:
                        _add(grads, owned, parent, pg)
    finally:
        state.depth, state.buffers = saved
    out = list(map(grads.get, map(id, sources)))
    for source, g in zip(sources, out) if blocked and strict else ():
        if g is None and id(source) in blocked:
            raise ValueError(
                f"No gradient can flow to {_describe(source)}: the target reaches it only "
                f"through '{blocked[id(source)]}', which has no gradient (argmax, "
                f"comparisons and integer casts have none). Compute the target from it with "
                f"differentiable ops.")
    return out


def _add(grads, owned, tensor, g):
    """Accumulate ``g`` into the gradient of ``tensor``, in the tensor's float type: the
    first contribution is kept as is (ops may return arrays they share, e.g. ``add`` gives
    ``g`` to both operands); the sum of two is a new array, into which later ones are
    added in place (the same bits as ``old + g``, without an allocation per term)."""
    value = tensor.value
    if type(g) is not np.ndarray:
        g = np.asarray(g)
    if g.dtype != value.dtype and value.dtype.kind == "f":
        g = g.astype(value.dtype)
    if g.shape != value.shape:
        g = np.broadcast_to(g, value.shape)
    key = id(tensor)
    old = grads.get(key)
    if old is None:
        grads[key] = g
    elif owned.get(key) is old and old.dtype == g.dtype:
        np.add(old, g, out=old)
    else:
        grads[key] = owned[key] = old + g


def _post_order(targets):
    """The recorded tensors reachable from ``targets``, each after the tensors it was
    computed from (a depth-first post-order, without recursion)."""
    order, seen = [], set()
    for target in targets:
        if not isinstance(target, Tensor) or target.node is None or id(target) in seen:
            continue
        seen.add(id(target))
        stack = [(target, iter(target.node.parents))]
        while stack:
            tensor, parents = stack[-1]
            for parent in parents:
                if isinstance(parent, Tensor) and parent.node is not None:
                    key = id(parent)
                    if key not in seen:
                        seen.add(key)
                        stack.append((parent, iter(parent.node.parents)))
                        break
            else:
                stack.pop()
                order.append(tensor)
    return order


def _needed(tensors, source_ids, targets=None, sources=()):
    """The order of the backward pass over ``tensors`` (recorded tensors, each after those
    it was computed from): latest first, as ``(tensor, node, needs)``, leaving out the
    tensors from which no source (ids in ``source_ids``) can be reached.

    ``needs`` is the node's own, less the parents from which no source can be reached:
    their gradients would be computed for nothing. (The input of a model's first layer
    wants a gradient, yet no weight lies behind it: in the reference MLP its 32x64 @ 64x784
    GEMM, 25 us, was half of the backward pass's GEMM time.)

    With ``targets`` (``tensors`` then being a tape), None when the tape does not hold the
    targets' whole recorded graph: a target, a recorded source, or an operand of a tensor
    in the tape, was recorded outside it (before the tape began, or by another thread).
    """
    order = []
    reaching = set(source_ids)   # ids of the sources and the recorded tensors leading to one
    unsure = []   # recorded tensors the tape reads that lead to no source: in the tape?
    for tensor in tensors:
        node = tensor.node
        parents = node.parents
        if len(parents) == 2:   # unrolled: most ops have one or two operands
            a, b = parents
            na, nb = node.needs
            needs = (na and id(a) in reaching, nb and id(b) in reaching)
        elif len(parents) == 1:
            needs = (node.needs[0] and id(parents[0]) in reaching,)
        else:
            needs = tuple(need and id(p) in reaching for p, need in zip(parents, node.needs))
        if True in needs:
            reaching.add(id(tensor))
            order.append((tensor, node, needs))
        if targets is not None and needs != node.needs:
            unsure += [p for p, need, kept in zip(parents, node.needs, needs)
                       if need and not kept and p.node is not None]
    if targets is not None:
        unsure += [t for t in targets if isinstance(t, Tensor) and t.node is not None and
                   id(t) not in reaching]
        # (A recorded source counts as reaching; the ops that made it must be on the tape
        # too, for the gradients of the sources they read.)
        unsure += [s for s in sources if isinstance(s, Tensor) and s.node is not None]
        if unsure:
            inside = set(map(id, tensors))
            if any(id(t) not in inside for t in unsure):
                return None
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
        # What the block records, in order (the backward pass runs over it; see
        # gradients_into), kept until gradient() uses a non-persistent tape up, or the
        # tape is reset or deleted.
        self._recorded = []
        self._outer = None    # the tape list of an enclosing tape or layer call, if any
        self._start = 0       # len(self._recorded) when the block was entered
        self._watched = []    # tensors watch() made require a gradient, until __exit__

    def __enter__(self):
        self._scope = record_scope()
        self._scope.__enter__()
        self._outer, self._start = _state.tape, len(self._recorded)
        _state.tape = self._recorded
        return self

    def __exit__(self, *exc):
        _state.tape = self._outer
        if self._outer is not None:
            # What this block recorded, the enclosing one recorded too (in order: nothing
            # was added to it meanwhile).
            self._outer.extend(self._recorded[self._start:])
        self._outer = None
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
        del self._recorded[:]   # (in place: an open block keeps appending to this list)
        self._start = 0

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
        grads = gradients_into(target, flat, output_gradients, tape=self._recorded)
        if not self.persistent:
            # Used up: what it recorded need not outlive the call (the graph, which the
            # target holds, is unchanged; an enclosing tape searches it when it must).
            del self._recorded[:]
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
