"""LSTM, the Keras 3 layer: gates i, f, c, o over one compiled time loop."""
import numpy as np

from minidl.activations import serialize as _serialize_activation
from minidl.layers.base import LAYERS
from minidl.layers.recurrent.base import RNN
from minidl.utils.checks import check_bool


@LAYERS.register()
class LSTM(RNN):
    """Long Short-Term Memory layer (Hochreiter 1997), as ``keras.layers.LSTM``.

    Per step: ``z = x @ kernel + h @ recurrent_kernel + bias`` split into the gates
    i, f, c, o (Keras' order); ``c = f * c + i * activation(z_c)``, ``h = o * activation(c)``
    with i, f, o = ``recurrent_activation`` of theirs. The whole sequence runs in one
    compiled call; tanh/sigmoid (and linear, relu, hard_sigmoid) are fused into it.

    Args:
        units: positive int, dimensionality of the output space.
        activation: activation of the cell candidate and the output (default 'tanh').
        recurrent_activation: activation of the i, f, o gates (default 'sigmoid').
        use_bias: whether the layer has a bias vector.
        kernel_initializer: initializer of ``kernel`` (input_dim, 4 * units)
            (default 'glorot_uniform').
        recurrent_initializer: initializer of ``recurrent_kernel`` (units, 4 * units)
            (default 'orthogonal').
        bias_initializer: initializer of ``bias`` (4 * units,) (default 'zeros').
        unit_forget_bias: if True, add 1 to the forget gate's bias at initialization.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: optional weight
            regularizers. activity_regularizer: optional regularizer of the output.
        kernel_constraint, recurrent_constraint, bias_constraint: optional constraints.
        dropout: float in [0, 1], fraction of the input units dropped (one mask per
            sequence, in training). recurrent_dropout: the same for the recurrent state.
        seed: optional int seed of the dropout masks.
        return_sequences: return the whole output sequence (batch, timesteps, units)
            instead of the last output (batch, units).
        return_state: also return the final states ``[output, h, c]``.
        go_backwards: process the sequence backwards and return the reversed sequence.
        stateful: carry the final states of a batch to the next one (fixed batch size).
        unroll: accepted for Keras compatibility (the time loop is compiled).
        zero_output_for_mask: masked steps output zeros instead of the previous output.

    Call arguments: ``inputs`` (batch, timesteps, features), ``initial_state`` (list of
    h and c, each (batch, units)), ``mask`` (bool (batch, timesteps)), ``training``.

    Example:
        >>> layer = LSTM(4)
        >>> layer(np.zeros((32, 10, 8), "float32")).shape
        (32, 4)
    """

    _cell = "lstm"
    _gates = 4
    _state_count = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, use_cudnn="auto", **kwargs):
        super().__init__(**kwargs)
        self._init_rnn(units, activation, recurrent_activation, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, kernel_regularizer,
                       recurrent_regularizer, bias_regularizer, activity_regularizer,
                       kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                       recurrent_dropout, seed, return_sequences, return_state, go_backwards,
                       stateful, unroll, zero_output_for_mask)
        self.unit_forget_bias = check_bool(f"LSTM '{self.name}'", "unit_forget_bias",
                                           unit_forget_bias)
        self.use_cudnn = use_cudnn   # accepted for Keras compatibility

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self._initializers["bias"]
        init, units = self._initializers["bias"], self.units

        def with_forget_ones(shape, dtype=None):
            # Keras: the forget gate's quarter starts at one, the others as initialized.
            return np.concatenate([np.asarray(init((units,), dtype=dtype)),
                                   np.ones((units,), dtype),
                                   np.asarray(init((2 * units,), dtype=dtype))])
        return with_forget_ones

    def get_config(self):
        config = super().get_config()
        config["recurrent_activation"] = _serialize_activation(self.recurrent_activation)
        config["unit_forget_bias"] = self.unit_forget_bias
        return config
