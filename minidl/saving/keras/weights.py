"""Keras 3's weight layout: where each variable of a model lives in a ``.weights.h5`` file
(or the ``model.weights.h5`` member of a ``.keras`` archive), and the optimizer's variables.

Keras 3 names a variable by the path of the object that owns it, not by its name (names are
generated and differ between two instances of one model). Its saver walks the model:

- a Sequential or functional model first visits ``layers``: each layer of ``model.layers``
  in order (a Sequential's without its InputLayer, a functional model's with them), at
  ``layers/<snake_case(class name)>``, a second layer of one class at ``..._1``, a third at
  ``..._2`` (the counter is per container);
- each object then writes its own variables to ``<path>/vars/0``, ``1``, ... (the layer's
  trainable variables in creation order, then its non-trainable ones), and visits its
  attributes holding other layers, in sorted attribute order: a recurrent layer's
  ``cell`` (so an LSTM's kernels are at ``layers/lstm/cell/vars``), Bidirectional's
  ``backward_layer`` then ``forward_layer``, TimeDistributed's ``layer``, a nested model's
  own ``layers/...``; a subclassed model is walked as a layer (``<attribute>/vars``, an
  attribute holding a list of layers as ``<attribute>/<snake_case>``), its ``layers``
  property among its attributes;
- the model's ``optimizer`` writes ``optimizer/vars/0..n``: ``iterations``, the learning
  rate (absent when it is a schedule), then the slots of the trainable variables (those
  of one ``add_optimizer_variables`` call interleaved per variable: Adam's momentum and
  velocity of the first variable, then of the second, ...), then any extra state (Nadam's
  momentum-schedule product).

An object visited twice (a shared layer) is written once, at its first path. Every group
also carries a ``name`` attribute (the object's name), which Keras writes and never reads.

This module computes those paths for a minidl model and maps the optimizer's variables
onto minidl's optimizer slots; it does not open files (see :mod:`minidl.saving.keras.h5`).
"""
import re
import warnings

import numpy as np

from minidl import optimizers

__all__ = ["keras_class_name", "keras_optimizer_layout", "keras_optimizer_shapes",
           "keras_optimizer_values", "keras_weight_entries", "keras_weight_groups",
           "set_keras_optimizer_values", "to_snake_case"]


def to_snake_case(name):
    """Keras's ``to_snake_case``: ``"Conv2D"`` -> ``"conv2d"``, ``"PReLU"`` -> ``"p_re_lu"``,
    ``"BatchNormalization"`` -> ``"batch_normalization"``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_class_name(layer):
    """The class name Keras gives ``layer``: a functional minidl ``Model`` is Keras's
    ``Functional``; every other class keeps its name."""
    from minidl.models.functional import Model
    if type(layer) is Model and not getattr(layer, "_subclassed", False):
        return "Functional"
    return type(layer).__name__


def _unique(name, used):
    """Keras's ``_get_unique_name``: ``name``, then ``name_1``, ``name_2``, ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _own_variables(layer):
    """The variables ``layer`` itself owns (not its sublayers'), trainable first, in the
    order Keras stores them."""
    return list(layer._variables) + list(layer._nt_variables)


def _is_recurrent(layer):
    from minidl.layers.recurrent.base import RNN
    return isinstance(layer, RNN)


def _child_layers(layer):
    """``(attribute, value)`` for the public attributes of ``layer`` holding a layer or a
    list / tuple / dict of layers, in Keras's visiting order (sorted by name)."""
    from minidl.layers.base import Layer
    out = []
    for attribute in sorted(vars(layer)):
        if attribute.startswith("_"):
            continue
        value = vars(layer)[attribute]
        if isinstance(value, Layer):
            out.append((attribute, value))
        elif isinstance(value, (list, tuple, dict)):
            items = list(value.values()) if isinstance(value, dict) else list(value)
            if items and all(isinstance(item, Layer) for item in items):
                out.append((attribute, items))
    return out


def keras_weight_entries(model):
    """Every object Keras gives a ``vars`` group in a weights file of ``model``.

    Returns:
        A list of ``(path, name, variables)``: the object's path (``""`` for the model
        itself, ``"layers/dense"``, ``"layers/lstm/cell"``, ...), its name (the group's
        ``name`` attribute) and its variables (:class:`minidl.Variable`, possibly none), in
        the order Keras visits them. The variables are stored at ``<path>/vars/<i>``.
    """
    from minidl.models.functional import Model
    entries, visited = [], set()

    def join(path, part):
        return f"{path}/{part}" if path else part

    def visit(obj, path):
        if id(obj) in visited:
            return
        visited.add(id(obj))
        if isinstance(obj, Model) and not getattr(obj, "_subclassed", False):
            entries.append((path, obj.name, []))
            visit_container(obj.layers, join(path, "layers"))
            return
        # A layer, or a subclassed model (which Keras walks as a layer: by the
        # attributes holding its layers, with no "layers/" level).
        own = _own_variables(obj)
        if _is_recurrent(obj):
            # Keras keeps a recurrent layer's weights on its cell ("lstm_cell", ...).
            entries.append((path, obj.name, []))
            cell = f"{to_snake_case(type(obj).__name__)}_cell"
            entries.append((join(path, "cell"), cell, own))
        else:
            entries.append((path, obj.name, own))
        children = _child_layers(obj)
        if isinstance(obj, Model):
            # Keras meets a subclassed model's ``layers`` property among its attributes,
            # in sorted order: a layer not yet reached through an attribute sorted before
            # "layers" gets its path there (``layers/dense``), named by its place in the
            # list of all the model's layers.
            children = sorted(children + [("layers", obj.layers)], key=lambda c: c[0])
        for attribute, value in children:
            visit_child(value, join(path, attribute))

    def visit_child(value, path):
        if isinstance(value, list):
            visit_container(value, path)
        else:
            visit(value, path)

    def visit_container(items, path):
        used = {}
        for item in items:
            visit(item, join(path, _unique(to_snake_case(keras_class_name(item)), used)))

    visit(model, "")
    return entries


def keras_weight_groups(model):
    """``[(h5 group path, [Variable, ...]), ...]``: where each layer's variables live in a
    Keras 3 weights file of ``model`` (``"layers/dense/vars"``, ``"layers/lstm/cell/vars"``,
    nested models' ``"layers/functional/layers/dense/vars"``), layers in Keras's order, each
    layer's variables trainable first, then non-trainable; only groups holding variables.
    """
    return [(_vars_path(path), variables)
            for path, _, variables in keras_weight_entries(model) if variables]


def _vars_path(path):
    return f"{path}/vars" if path else "vars"


# ---- the optimizer ----

def keras_optimizer_layout(optimizer):
    """How Keras lays out ``optimizer``'s slots.

    Returns:
        ``(groups, extra)``: ``groups`` is a list of tuples of minidl slot names, each tuple
        one ``add_optimizer_variables`` call of Keras's optimizer (its slots interleaved per
        variable, the calls one after another); ``extra`` names the scalars Keras keeps
        after the slots (Nadam's ``"u_product"``). None when Keras has no optimizer of this
        class (its state is then neither written nor read).
    """
    if type(optimizer) is optimizers.AdamW:
        groups = [("momentum", "velocity")]
        return groups + ([("velocity_hat",)] if optimizer.amsgrad else []), ()
    kind = type(optimizer)
    if kind is optimizers.Adam:
        groups = [("momentum", "velocity")]
        return groups + ([("velocity_hat",)] if optimizer.amsgrad else []), ()
    if kind is optimizers.SGD:
        return ([("momentum",)] if optimizer.momentum != 0 else []), ()
    if kind is optimizers.RMSprop:
        groups = [("velocity",)]
        if optimizer.momentum > 0:
            groups.append(("momentum",))
        if optimizer.centered:
            groups.append(("average_gradient",))
        return groups, ()
    if kind is optimizers.Adagrad:
        return [("accumulator",)], ()
    if kind is optimizers.Nadam:
        return [("momentum", "velocity")], ("u_product",)
    return None


def _trainable_arrays(model):
    """The arrays of the model's trainable variables in Keras's ``trainable_variables``
    order (layer by layer, a layer's own before its sublayers'), as the optimizer's slots
    follow them."""
    return [variable.value for variable in model.trainable_weights]


def _learning_rate_is_variable(optimizer):
    from minidl.schedules import LearningRateSchedule
    return not isinstance(getattr(optimizer, "_learning_rate", None), LearningRateSchedule)


def _compiled_optimizer_layout(model):
    """(optimizer, slot groups, extra variables) of a compiled model whose optimizer Keras
    has (see :func:`keras_optimizer_layout`); None otherwise."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(model, "compiled", False) or optimizer is None:
        return None
    layout = keras_optimizer_layout(optimizer)
    return None if layout is None else (optimizer, *layout)


def keras_optimizer_values(model):
    """The arrays Keras stores at ``optimizer/vars/0..n`` for ``model``'s optimizer, or
    None when the model is not compiled or Keras has no optimizer of its class.

    An optimizer not built yet (compiled, never trained) gives zero-filled slots for the
    model's trainable weights (what it would start from), so that Keras finds as many
    variables as it expects.
    """
    found = _compiled_optimizer_layout(model)
    if found is None:
        return None
    optimizer, groups, extra = found
    iterations = optimizer.iterations
    values = [np.array(iterations, np.int32 if iterations < 2 ** 31 else np.int64)]
    if _learning_rate_is_variable(optimizer):
        values.append(np.array(optimizer.learning_rate, np.float32))
    arrays = _trainable_arrays(model)
    initial = dict(optimizer._slot_specs())
    known = set(map(id, optimizer._variables)) if optimizer.built else set()
    for group in groups:
        for array in arrays:
            for slot in group:
                if id(array) in known:
                    values.append(optimizer.get_slot(array, slot))
                else:
                    # A weight the optimizer has no slot for (not built yet, or unfrozen
                    # since): the state it would start from.
                    values.append(np.full_like(array, initial.get(slot, 0.0)))
    for name in extra:
        if name == "u_product":
            product = optimizer._u_product(iterations) if iterations else 1.0
            values.append(np.array(product, np.float32))
    return values


def keras_optimizer_shapes(model):
    """``[(shape, kind), ...]`` of the variables :func:`keras_optimizer_values` gives, kind
    "int" for the step count and "float" for the rest; None as there."""
    found = _compiled_optimizer_layout(model)
    if found is None:
        return None
    optimizer, groups, extra = found
    shapes = [((), "int")]
    if _learning_rate_is_variable(optimizer):
        shapes.append(((), "float"))
    arrays = _trainable_arrays(model)
    shapes += [(array.shape, "float") for group in groups for array in arrays for _ in group]
    shapes += [((), "float") for _ in extra]
    return shapes


def set_keras_optimizer_values(model, values):
    """Restore ``model``'s optimizer from the arrays of ``optimizer/vars`` (in the order of
    :func:`keras_optimizer_values`, checked by the caller against
    :func:`keras_optimizer_shapes`): the step count, the learning rate (when a float) and
    the slots. The optimizer is built for the model's trainable weights if it is not."""
    optimizer = model.optimizer
    groups, extra = keras_optimizer_layout(optimizer)
    arrays = _trainable_arrays(model)
    if not optimizer.built and arrays:
        optimizer.build(arrays)
    iterations = int(values[0])
    position = 1
    learning_rate = None
    if _learning_rate_is_variable(optimizer):
        learning_rate = float(values[1])
        position = 2
    slots = []
    for group in groups:
        for array in arrays:
            for slot in group:
                slots.append((optimizer.get_slot(array, slot), values[position]))
                position += 1
    with model.writing_weights():
        for target, value in slots:
            np.copyto(target, value, casting="same_kind")
    optimizer.iterations = iterations
    if learning_rate is not None:
        try:
            optimizer.learning_rate = learning_rate
        except ValueError as error:
            warnings.warn(f"The file's learning rate was not restored ({error}).",
                          stacklevel=3)


def assign_weights(model, pairs):
    """Write each ``(variable, value)`` pair's value into the variable, all under the
    model's exclusive lock (inference in other threads sees the old weights or the new
    ones, never a mix; what is derived from the weights is derived again)."""
    with model.writing_weights():
        for variable, value in pairs:
            variable.value[...] = value
