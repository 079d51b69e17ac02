"""Bidirectional, the Keras 3 wrapper: one recurrent layer over the sequence forwards, a copy
over it backwards, their outputs merged."""
import numpy as np

from minidl.layers.base import LAYERS, CallContext, Layer
from minidl.layers.recurrent.base import RNN, check_fixed_batch
from minidl.utils.registry import serialize

MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _renamed(layer, prefix, **changes):
    """A new layer from ``layer``'s config, named ``prefix + its name`` (once)."""
    config = layer.get_config()
    name = layer.name[len(prefix):] if layer.name.startswith(prefix) else layer.name
    config.update(name=prefix + name, **changes)
    return type(layer).from_config(config)


def _from_config(argument, value):
    if not isinstance(value, dict):
        return value
    try:
        return LAYERS.get(value, base=Layer)
    except (ValueError, TypeError) as error:
        raise type(error)(f"Bidirectional cannot make its {argument} from "
                          f"{argument}={value!r:.200}: {error}") from None


@LAYERS.register()
class Bidirectional(Layer):
    """Bidirectional wrapper of a recurrent layer, as ``keras.layers.Bidirectional``.

    The forward layer is a copy of ``layer`` (made from its config, named
    ``forward_<name>``); the backward layer is ``backward_layer`` or a copy of ``layer``
    with ``go_backwards`` flipped (``backward_<name>``). With ``return_sequences`` the
    backward layer's outputs are put back in time order before the merge, and masked steps
    output zeros in both directions (Keras sets ``zero_output_for_mask``).

    Args:
        layer: a SimpleRNN, LSTM or GRU instance (or its config dict).
        merge_mode: how the two outputs combine: 'concat' (default, along the last axis),
            'sum', 'mul', 'ave', or None (a list of the two outputs).
        weights: optional list of initial weights: the forward layer's, then the backward
            layer's (Keras' order); set when the layer is built.
        backward_layer: optional recurrent layer for the backward direction; it must have
            the other ``go_backwards`` and the same ``stateful``, ``return_sequences`` and
            ``return_state``.

    Call arguments: ``inputs`` (batch, timesteps, features), ``initial_state`` (the
    forward layer's states then the backward layer's), ``mask``, ``training``. With
    ``return_state`` the output is ``[output(s), *forward_states, *backward_states]``.

    Example:
        >>> layer = Bidirectional(LSTM(10, return_sequences=True))
        >>> layer(np.zeros((4, 5, 3), "float32")).shape
        (4, 5, 20)
    """

    supports_masking = True
    _tensor_call_arguments = ("initial_state",)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        # A layer config ({"class_name": ..., "config": ...}) stands for the layer it makes.
        layer = _from_config("layer", layer)
        backward_layer = _from_config("backward_layer", backward_layer)
        if not isinstance(layer, RNN):
            raise ValueError(f"Bidirectional needs a recurrent layer (SimpleRNN, LSTM, GRU) "
                             f"instance. Received: layer={layer!r:.200}")
        if backward_layer is not None and not isinstance(backward_layer, RNN):
            raise ValueError(f"Bidirectional's backward_layer must be a recurrent layer "
                             f"instance. Received: backward_layer={backward_layer!r:.200}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Merge mode should be one of "
                             f"{MERGE_MODES}. Received: merge_mode={merge_mode!r}")
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.forward_layer = _renamed(layer, "forward_")
        if backward_layer is None:
            backward_layer = _renamed(layer, "backward_", go_backwards=not layer.go_backwards)
        self.backward_layer = backward_layer
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(f"Bidirectional: layer and backward_layer need different "
                             f"go_backwards values. Received: go_backwards="
                             f"{forward.go_backwards} for both.")
        for attribute in ("stateful", "return_sequences", "return_state"):
            if getattr(forward, attribute) != getattr(backward, attribute):
                raise ValueError(f"Bidirectional: layer and backward_layer need the same "
                                 f"{attribute}. Received: {getattr(forward, attribute)} (layer) "
                                 f"and {getattr(backward, attribute)} (backward_layer).")
        if backward.dtype != forward.dtype:
            raise ValueError(f"Bidirectional: layer and backward_layer need the same dtype. "
                             f"Received: {forward.dtype} and {backward.dtype}.")
        # Keras: masked steps of returned sequences are zeros in both directions.
        forward.zero_output_for_mask = backward.zero_output_for_mask = forward.return_sequences
        self.merge_mode = merge_mode
        self.stateful = forward.stateful
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        self._initial_weights = None if not weights else list(weights)

    # ---- shapes and building ----

    def build(self, input_shape):
        batch = getattr(self, "_input_batch_size", None)
        for layer in (self.forward_layer, self.backward_layer):
            layer._input_batch_size = batch
            if not layer.built:
                layer.build(input_shape)
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)
        super().build(self.forward_layer.built_input_shape)

    def _call_symbolic(self, inputs, *args, **kwargs):
        if self.stateful and not self.built:
            check_fixed_batch(self, inputs)
        return super()._call_symbolic(inputs, *args, **kwargs)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        shape = tuple(shape)
        if self.merge_mode == "concat":
            outputs = [shape[:-1] + (2 * shape[-1],)]
        elif self.merge_mode is None:
            outputs = [shape, shape]
        else:
            outputs = [shape]
        if self.return_state or self.merge_mode is None:
            return outputs + states + states
        return outputs[0]

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            out = [mask, mask] if self.merge_mode is None else [mask]
        else:
            out = [None, None] if self.merge_mode is None else [None]
        if self.return_state:
            count = 2 * self.forward_layer._state_count
            return out + [None] * count
        return out if self.merge_mode is None else out[0]

    # ---- states ----

    @property
    def states(self):
        forward, backward = self.forward_layer.states, self.backward_layer.states
        if forward and backward:
            return list(forward) + list(backward)
        return None

    def reset_states(self, states=None):
        if not self.stateful:
            raise AttributeError(f"Layer '{self.name}' (Bidirectional): reset_states needs a "
                                 f"stateful layer.")
        half = None if states is None else len(states) // 2
        self.forward_layer.reset_states(None if states is None else states[:half])
        self.backward_layer.reset_states(None if states is None else states[half:])

    reset_state = reset_states

    # ---- the call ----

    def _contexts(self, ctx):
        subs = getattr(ctx, "sub_contexts", None)
        if subs is None:
            subs = ctx.sub_contexts = (CallContext(self.forward_layer, ctx.record),
                                       CallContext(self.backward_layer, ctx.record))
        return subs

    def forward(self, ctx, x, training=False):
        initial = None
        if isinstance(x, (list, tuple)):
            x, *initial = x
            initial = initial or None
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"Layer '{self.name}' (Bidirectional) expects 3-D input (batch, "
                             f"timesteps, features); received an array of shape {x.shape}.")
        forward, backward = self.forward_layer, self.backward_layer
        count = forward._state_count
        if initial is not None and len(initial) != 2 * count:
            raise ValueError(f"Layer '{self.name}' (Bidirectional) takes {2 * count} initial "
                             f"states (the forward layer's, then the backward layer's); "
                             f"received {len(initial)}.")
        mask = getattr(ctx, "mask", None)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        fctx, bctx = self._contexts(ctx) if ctx.record else \
            (CallContext(forward, False), CallContext(backward, False))
        fctx.mask = bctx.mask = mask
        y = forward.forward(fctx, x if initial is None else [x] + initial[:count], training)
        y_rev = backward.forward(bctx, x if initial is None else [x] + initial[count:],
                                 training)
        states = []
        if self.return_state:
            y, states = y[0], list(y[1:])
            y_rev, back_states = y_rev[0], list(y_rev[1:])
            states = [s.copy() for s in states + back_states]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        if ctx.record:
            ctx.y, ctx.y_rev, ctx.multi = y, y_rev, initial is not None
        mode = self.merge_mode
        if mode == "concat":
            out = np.concatenate([y, y_rev], axis=-1)
        elif mode == "sum":
            out = y + y_rev
        elif mode == "ave":
            out = (y + y_rev) / 2
        elif mode == "mul":
            out = y * y_rev
        else:
            out = [np.array(y), np.ascontiguousarray(y_rev)]
        if isinstance(out, list):
            return out + states
        return [out] + states if self.return_state else out

    def backward(self, ctx, dy, need_input_grad=True):
        forward, backward = self.forward_layer, self.backward_layer
        fctx, bctx = ctx.sub_contexts
        count = forward._state_count
        dys = list(dy) if isinstance(dy, (list, tuple)) else [dy]
        outputs = 2 if self.merge_mode is None else 1
        d_out, d_states = dys[:outputs], dys[outputs:]
        d_states += [None] * (2 * count - len(d_states)) if self.return_state else []
        y, y_rev = ctx.y, ctx.y_rev
        d_out = [np.zeros(y.shape, y.dtype) if d is None else np.asarray(d, y.dtype)
                 for d in d_out]
        mode = self.merge_mode
        if mode == "concat":
            units = y.shape[-1]
            dy_f, dy_b = d_out[0][..., :units], d_out[0][..., units:]
        elif mode == "sum":
            dy_f = dy_b = d_out[0]
        elif mode == "ave":
            dy_f = dy_b = d_out[0] / 2
        elif mode == "mul":
            dy_f, dy_b = d_out[0] * y_rev, d_out[0] * y
        else:
            dy_f, dy_b = d_out
        if self.return_sequences:
            dy_b = dy_b[:, ::-1]
        dy_f, dy_b = np.ascontiguousarray(dy_f), np.ascontiguousarray(dy_b)
        multi = ctx.multi
        needs = list(need_input_grad) if isinstance(need_input_grad, (list, tuple)) \
            else [need_input_grad] + [True] * (2 * count)
        split = len(forward.params)
        fctx.grads, bctx.grads = ctx.grads[:split], ctx.grads[split:]
        if self.return_state:
            grads_f = [dy_f] + d_states[:count]
            grads_b = [dy_b] + d_states[count:]
        else:
            grads_f, grads_b = dy_f, dy_b
        need_f = [needs[0]] + needs[1:1 + count] if multi else needs[0]
        need_b = [needs[0]] + needs[1 + count:] if multi else needs[0]
        back_f = forward.backward(fctx, grads_f, need_f)
        back_b = backward.backward(bctx, grads_b, need_b)
        if multi:
            dx_f, dx_b = back_f[0], back_b[0]
        else:
            dx_f, dx_b = back_f, back_b
        dx = None if not needs[0] else dx_f + dx_b
        if not multi:
            return dx
        return [dx] + list(back_f[1:]) + list(back_b[1:])

    # ---- config ----

    def get_config(self):
        config = super().get_config()
        config.update(merge_mode=self.merge_mode, layer=serialize(self.forward_layer),
                      backward_layer=serialize(self.backward_layer))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)   # (the constructor takes the two layers' configs)
