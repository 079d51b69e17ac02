"""The shared logic of the recurrent layers (SimpleRNN, LSTM, GRU): arguments, weights,
states, masks, dropout and the calls of the compiled kernel.

One call runs the whole sequence in ``minidl._core._recurrent`` (the time loop is compiled:
one call per layer per batch, forward and backward). What the backward pass needs (the
activated gates and the states of every step) lives in the call's context, in buffers
reused from batch to batch. Activations the kernel does not fuse (anything but linear, relu,
sigmoid, tanh, hard_sigmoid) and GRU with ``reset_after=False`` run through the numpy
reference, ``minidl._ref.recurrent``, with the same semantics.

Keras semantics kept here:
    - weights ``kernel`` (input_dim, k * units), ``recurrent_kernel`` (units, k * units),
      ``bias`` (k * units,), so Keras weights load unchanged;
    - a masked step keeps the states and repeats the previous output (zeros with
      ``zero_output_for_mask``, which Bidirectional sets for returned sequences);
    - ``go_backwards`` reads time from the end and returns the outputs in that order;
    - ``dropout`` / ``recurrent_dropout`` masks are drawn once per call (per sequence) and
      multiply the inputs and the recurrent state at every step, in training only;
    - ``stateful=True`` carries the final states to the next batch (``reset_states()``).
"""
import numbers

import numpy as np

from minidl import activations, constraints, initializers, regularizers
from minidl._core import _recurrent as _kernels
from minidl._ref import recurrent as _reference
from minidl.layers.base import Layer
from minidl.layers.node import flatten
from minidl.layers.random_draws import SeededDrawsMixin
from minidl.utils.checks import check_bool


def _serialize_init(init):
    if isinstance(init, (str, dict)) or init is None:
        return init
    return initializers.serialize(init)


def _rate(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name} must be a float in [0, 1]. Received: "
                         f"{name}={value!r}")
    return float(value)


class RNN(SeededDrawsMixin, Layer):
    """Base of SimpleRNN, LSTM and GRU (not a public layer: Keras' generic ``RNN(cell)``
    is not provided). A subclass sets ``_cell`` ('simple_rnn', 'lstm', 'gru') and
    ``_gates`` and writes its constructor with Keras' arguments."""

    supports_masking = True
    _tensor_call_arguments = ("initial_state",)
    _cell = None
    _gates = 1
    _state_count = 1

    def _init_rnn(self, units, activation, recurrent_activation, use_bias, kernel_initializer,
                  recurrent_initializer, bias_initializer, kernel_regularizer,
                  recurrent_regularizer, bias_regularizer, activity_regularizer,
                  kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                  recurrent_dropout, seed, return_sequences, return_state, go_backwards,
                  stateful, unroll, zero_output_for_mask):
        owner = f"{type(self).__name__} '{self.name}'"
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"{owner}: units must be a positive int. Received: "
                             f"units={units!r}")
        self.units = int(units)
        self.activation = self._resolve("activation", activation, activations.get)
        self.recurrent_activation = self._resolve("recurrent_activation",
                                                  recurrent_activation, activations.get)
        self.use_bias = check_bool(owner, "use_bias", use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self._initializers = {
            name: self._resolve(f"{name}_initializer", value, initializers.get)
            for name, value in (("kernel", kernel_initializer),
                                ("recurrent", recurrent_initializer),
                                ("bias", bias_initializer))}
        self.kernel_regularizer = self._resolve("kernel_regularizer", kernel_regularizer,
                                                regularizers.get)
        self.recurrent_regularizer = self._resolve("recurrent_regularizer",
                                                   recurrent_regularizer, regularizers.get)
        self.bias_regularizer = self._resolve("bias_regularizer", bias_regularizer,
                                              regularizers.get)
        self.activity_regularizer = self._resolve("activity_regularizer",
                                                  activity_regularizer, regularizers.get)
        self.kernel_constraint = self._resolve("kernel_constraint", kernel_constraint,
                                               constraints.get)
        self.recurrent_constraint = self._resolve("recurrent_constraint",
                                                  recurrent_constraint, constraints.get)
        self.bias_constraint = self._resolve("bias_constraint", bias_constraint,
                                             constraints.get)
        self.dropout = _rate(owner, "dropout", dropout)
        self.recurrent_dropout = _rate(owner, "recurrent_dropout", recurrent_dropout)
        self._init_seed(seed)
        self.return_sequences = check_bool(owner, "return_sequences", return_sequences)
        self.return_state = check_bool(owner, "return_state", return_state)
        self.go_backwards = check_bool(owner, "go_backwards", go_backwards)
        self.stateful = check_bool(owner, "stateful", stateful)
        self.unroll = check_bool(owner, "unroll", unroll)   # accepted; the loop is compiled
        self.zero_output_for_mask = check_bool(owner, "zero_output_for_mask",
                                               zero_output_for_mask)
        self._state_arrays = None

    # ---- shapes and weights ----

    def _owner(self):
        return f"Layer '{self.name}' ({type(self).__name__})"

    def _sequence_shape(self, input_shape):
        """The (timesteps, features) sample shape of the sequences, from a shape or from
        the list [sequences, *initial states]."""
        if isinstance(input_shape, list) and input_shape and \
                isinstance(input_shape[0], (list, tuple)):
            input_shape = input_shape[0]
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[1] is None:
            raise ValueError(f"{self._owner()} expects 3-D input (batch, timesteps, features) "
                             f"with a known number of features; received input of shape "
                             f"{(None,) + input_shape}.")
        return input_shape

    def build(self, input_shape):
        input_shape = self._sequence_shape(input_shape)
        width = self._gates * self.units
        self.kernel = self.add_weight((input_shape[1], width), self._initializers["kernel"],
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.recurrent_kernel = self.add_weight(
            (self.units, width), self._initializers["recurrent"],
            regularizer=self.recurrent_regularizer, constraint=self.recurrent_constraint,
            name="recurrent_kernel")
        self.bias = self.add_weight(self._bias_shape(), self._bias_initializer(),
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None
        batch = getattr(self, "_input_batch_size", None)
        if self.stateful and batch is not None:
            self._make_states(batch)
        # Any sequence length fits the weights.
        super().build((None, input_shape[1]))

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer(self):
        return self._initializers["bias"]

    def compute_output_shape(self, input_shape):
        steps = self._sequence_shape(input_shape)[0]
        out = (steps, self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [out] + [(self.units,)] * self._state_count
        return out

    def compute_mask(self, inputs, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * self._state_count
        return out

    def _call_symbolic(self, inputs, *args, **kwargs):
        if self.stateful and self._state_arrays is None:
            check_fixed_batch(self, inputs)
        return super()._call_symbolic(inputs, *args, **kwargs)

    # ---- states ----

    def _make_states(self, batch):
        self._state_arrays = [np.zeros((batch, self.units), self.dtype)
                              for _ in range(self._state_count)]

    @property
    def states(self):
        """The states a stateful layer carries between batches (None before its first
        batch, or when not stateful)."""
        return self._state_arrays

    def reset_states(self, states=None):
        """Zero the carried states of a stateful layer (or set them to ``states``)."""
        if not self.stateful:
            raise AttributeError(f"{self._owner()}: reset_states needs stateful=True.")
        if self._state_arrays is None:
            return
        if states is None:
            for s in self._state_arrays:
                s[...] = 0
            return
        states = states if isinstance(states, (list, tuple)) else [states]
        if len(states) != self._state_count:
            raise ValueError(f"{self._owner()} has {self._state_count} states; received "
                             f"{len(states)}.")
        for s, value in zip(self._state_arrays, states):
            value = np.asarray(value, self.dtype)
            if value.shape != s.shape:
                raise ValueError(f"{self._owner()}: a state has shape {s.shape}; received "
                                 f"{value.shape}.")
            s[...] = value

    reset_state = reset_states

    # ---- the call ----

    def _uses_kernel(self):
        kinds = [act.kernel_params() for act in (self.activation, self.recurrent_activation)]
        return all(kind in _kernels.KINDS and not params for kind, params in kinds) and \
            getattr(self, "reset_after", True)

    def _draw(self, rng, shape, rate):
        keep = rng.random(shape) >= rate
        return (keep / (1.0 - rate)).astype(self.dtype)

    def forward(self, ctx, x, training=False):
        initial = None
        if isinstance(x, (list, tuple)):
            x, *initial = x
            initial = initial or None
        x = np.asarray(x)
        owner = self._owner()
        if x.ndim != 3:
            raise ValueError(f"{owner} expects 3-D input (batch, timesteps, features); "
                             f"received an array of shape {x.shape}.")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        n, steps, features = x.shape
        if features != self.kernel.shape[0]:
            raise ValueError(f"{owner} was built for {self.kernel.shape[0]} features; "
                             f"received input of shape {x.shape}.")
        if steps < 1:
            raise ValueError(f"{owner} needs at least one timestep; received input of "
                             f"shape {x.shape}.")
        mask = getattr(ctx, "mask", None)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n, steps):
                raise ValueError(f"{owner}: the mask must have shape (batch, timesteps) = "
                                 f"{(n, steps)}; received a mask of shape {mask.shape}.")
            mask = np.ascontiguousarray(mask, dtype=np.bool_)
        states = self._initial_states(initial, n)
        rng = None
        dp = rdp = None
        if training and 0.0 < self.dropout < 1.0:
            rng = self.rng()
            dp = self._draw(rng, (n, features), self.dropout)
            x = x * dp[:, None, :]
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rdp = self._draw(rng or self.rng(), (n, self.units), self.recurrent_dropout)
        if self._uses_kernel():
            out, finals = self._forward_kernel(ctx, x, states, mask, rdp)
        else:
            out, finals = self._forward_reference(ctx, x, states, mask, rdp)
        if self.stateful:
            if self._state_arrays is None:
                self._make_states(n)
            for carried, final in zip(self._state_arrays, finals):
                carried[...] = final
        if ctx.record:
            ctx.x, ctx.dp, ctx.multi = x, dp, initial is not None
            ctx.y_out = out
        if self.return_state:
            return [out] + list(finals)
        return out

    def _initial_states(self, initial, n):
        owner = self._owner()
        if initial is not None:
            if len(initial) != self._state_count:
                raise ValueError(f"{owner} takes {self._state_count} initial state(s); "
                                 f"received {len(initial)}.")
            states = []
            for s in initial:
                s = np.asarray(s)
                if s.shape != (n, self.units):
                    raise ValueError(f"{owner}: an initial state must have shape (batch, "
                                     f"units) = {(n, self.units)}; received {s.shape}.")
                states.append(np.array(s, dtype=self.dtype, order="C"))
            return states
        if self.stateful:
            if self._state_arrays is None:
                self._make_states(n)
            if self._state_arrays[0].shape[0] != n:
                raise ValueError(f"{owner} is stateful with batch size "
                                 f"{self._state_arrays[0].shape[0]}; received a batch of "
                                 f"{n}. A stateful layer needs the same batch size in every "
                                 f"call.")
            return [s.copy() for s in self._state_arrays]
        return [np.zeros((n, self.units), self.dtype) for _ in range(self._state_count)]

    def _forward_kernel(self, ctx, x, states, mask, rdp):
        n, steps, _ = x.shape
        units, width = self.units, self._gates * self.units
        cell = self._cell
        if ctx.record:
            get = ctx.buffers.get
        else:
            def get(key, rows, shape):
                return np.empty((rows, *shape), self.dtype)
        G = get("gates", n, (steps, width))
        Hprev = get("hprev", n, (steps, units))
        lstm, gru = cell == "lstm", cell == "gru"
        Cprev = get("cprev", n, (steps, units)) if lstm else None
        AC = get("ac", n, (steps, units)) if lstm else None
        RH = get("rh", n, (steps, units)) if gru else None
        R = get("rproj", n, (width,)) if gru else None
        Hin = get("hin", n, (steps, units)) if rdp is not None else None
        out = get("out", n, (steps, units) if self.return_sequences else (units,))
        h = get("h", n, (units,))
        h[...] = states[0]
        c = None
        if lstm:
            c = get("c", n, (units,))
            c[...] = states[1]
        bias = self.bias.value if self.use_bias else self._zero_bias()
        m8 = None if mask is None else mask.view(np.uint8)
        kw = self._kernel_options()
        _kernels.forward(cell, x, self.kernel.value, self.recurrent_kernel.value, bias, h, c,
                         m8, rdp, G, Hprev, Cprev, AC, RH, Hin, R, out, **kw)
        if ctx.record:
            ctx.path = "kernel"
            ctx.saved = (m8, rdp, G, Hprev, Cprev, AC, RH, Hin)
        return out, [h, c] if lstm else [h]

    def _zero_bias(self):
        shape = self._bias_shape()
        zero = getattr(self, "_zero_bias_array", None)
        if zero is None or zero.shape != shape or zero.dtype != self.dtype:
            zero = self._zero_bias_array = np.zeros(shape, self.dtype)
        return zero

    def _kernel_options(self):
        return dict(activation=self.activation.kernel_params()[0],
                    recurrent_activation=self.recurrent_activation.kernel_params()[0],
                    go_backwards=self.go_backwards,
                    zero_output_for_mask=self.zero_output_for_mask,
                    return_sequences=self.return_sequences)

    def _forward_reference(self, ctx, x, states, mask, rdp):
        outputs, last, h, c, cache = _reference.rnn_forward(
            self._cell, x, self.kernel.value, self.recurrent_kernel.value,
            self.bias.value if self.use_bias else None, states[0],
            states[1] if self._cell == "lstm" else None, mask, rdp, self.go_backwards,
            _pair(self.activation), _pair(self.recurrent_activation),
            self.zero_output_for_mask, getattr(self, "reset_after", True))
        if ctx.record:
            ctx.path = "reference"
            ctx.cache = cache
        out = outputs if self.return_sequences else last
        out = np.ascontiguousarray(out, dtype=self.dtype)
        return out, [np.ascontiguousarray(s, dtype=self.dtype) for s in
                     ([h, c] if self._cell == "lstm" else [h])]

    def activity_penalty(self, y):
        return super().activity_penalty(y[0] if isinstance(y, (list, tuple)) else y)

    def backward(self, ctx, dy, need_input_grad=True):
        if isinstance(dy, (list, tuple)):
            dy, *d_states = dy
        else:
            d_states = []
        n, steps, features = ctx.x.shape
        units = self.units
        out_shape = ctx.y_out.shape
        if dy is None:
            dy = np.zeros(out_shape, self.dtype)
        dy = np.ascontiguousarray(dy, dtype=self.dtype)
        if self.activity_regularizer is not None:
            dy = self._activity_backward(ctx.y_out, dy,
                                         ctx.buffers.get("dy", n, out_shape[1:]))
        need_dx = need_input_grad[0] if isinstance(need_input_grad, (list, tuple)) \
            else need_input_grad
        d_states = list(d_states) + [None] * (self._state_count - len(d_states))
        grads = ctx.grads
        if ctx.path == "kernel":
            dx, d_initial = self._backward_kernel(ctx, dy, d_states, need_dx, grads)
        else:
            dx, d_initial = self._backward_reference(ctx, dy, d_states, grads)
        if dx is not None and ctx.dp is not None:
            dx *= ctx.dp[:, None, :]
        if not need_dx:
            dx = None
        if not ctx.multi:
            return dx
        needs = need_input_grad if isinstance(need_input_grad, (list, tuple)) \
            else [True] * (1 + self._state_count)
        return [dx] + [d if need else None for d, need in zip(d_initial, needs[1:])]

    def _backward_kernel(self, ctx, dy, d_states, need_dx, grads):
        n, steps, features = ctx.x.shape
        units, width = self.units, self._gates * self.units
        m8, rdp, G, Hprev, Cprev, AC, RH, Hin = ctx.saved
        get = ctx.buffers.get
        gru, lstm = self._cell == "gru", self._cell == "lstm"
        dG = get("d_gates", n, (steps, width))
        dR = get("d_rproj", n, (steps, width)) if gru else dG
        dh = get("dh", n, (units,))
        dh[...] = 0 if d_states[0] is None else d_states[0]
        dc = None
        if lstm:
            dc = get("dc", n, (units,))
            dc[...] = 0 if d_states[1] is None else d_states[1]
        carry = get("carry", n, (units,))
        tmp = get("tmp", n, (units,)) if rdp is not None else None
        dx = get("dx", n, (steps, features)) if need_dx else None
        d_bias = grads[2] if self.use_bias else get("d_bias", 1, self._bias_shape())[0]
        _kernels.backward(self._cell, ctx.x, self.kernel.value, self.recurrent_kernel.value,
                          m8, rdp, G, Hprev, Cprev, AC, RH, Hin, dy, dG, dR, dh, dc, carry,
                          tmp, dx, grads[0], grads[1], d_bias, **self._kernel_options())
        return dx, ([dh, dc] if lstm else [dh])

    def _backward_reference(self, ctx, dy, d_states, grads):
        seqs = self.return_sequences
        dx, dW, dU, db, dh, dc = _reference.rnn_backward(
            ctx.cache, dy if seqs else None, None if seqs else dy, d_states[0],
            d_states[1] if self._cell == "lstm" else None)
        grads[0][...] = dW
        grads[1][...] = dU
        if self.use_bias:
            grads[2][...] = db
        dx = np.ascontiguousarray(dx, dtype=self.dtype)
        return dx, ([dh, dc] if self._cell == "lstm" else [dh])

    # ---- config ----

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, activation=activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=_serialize_init(self.kernel_initializer),
            recurrent_initializer=_serialize_init(self.recurrent_initializer),
            bias_initializer=_serialize_init(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
            activity_regularizer=regularizers.serialize(self.activity_regularizer),
            kernel_constraint=constraints._serialize_argument(self, "kernel_constraint",
                                                              self.kernel_constraint),
            recurrent_constraint=constraints._serialize_argument(
                self, "recurrent_constraint", self.recurrent_constraint),
            bias_constraint=constraints._serialize_argument(self, "bias_constraint",
                                                            self.bias_constraint),
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout, seed=self.seed,
            return_sequences=self.return_sequences, return_state=self.return_state,
            go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask)
        return config


def check_fixed_batch(layer, inputs):
    """A stateful layer keeps one state per batch row: its symbolic input needs a fixed
    batch size (ValueError otherwise)."""
    if flatten(inputs)[0].shape[0] is None:
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has stateful=True, which needs a "
            f"fixed batch size; the input has an unknown batch dimension. Pass batch_size to "
            f"Input (or batch_shape=(batch, timesteps, features)).")


def _pair(activation):
    """(f, f') of a minidl activation for the numpy reference."""
    def f(z):
        z = np.ascontiguousarray(z)
        return activation.forward(z, np.empty_like(z))

    def df(z, y):
        z, y = np.ascontiguousarray(z), np.ascontiguousarray(y)
        return activation.backward(z, y, np.ones_like(z), np.empty_like(z))
    return f, df
