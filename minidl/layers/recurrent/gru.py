"""GRU, the Keras 3 layer: gates z, r, h over one compiled time loop."""
from minidl.activations import serialize as _serialize_activation
from minidl.layers.base import LAYERS
from minidl.layers.recurrent.base import RNN
from minidl.utils.checks import check_bool


@LAYERS.register()
class GRU(RNN):
    """Gated Recurrent Unit (Cho et al. 2014), as ``keras.layers.GRU``.

    Per step, with gates z, r, h in Keras' order: ``z = ra(x W_z + h U_z + b)``,
    ``r = ra(x W_r + h U_r + b)``, and with ``reset_after=True`` (default)
    ``hh = act(x W_h + b_x + r * (h U_h + b_h))``, else ``hh = act(x W_h + (r * h) U_h + b)``;
    ``h = z * h + (1 - z) * hh``. With reset_after=True the bias has shape (2, 3 * units):
    row 0 the input bias, row 1 the recurrent bias (Keras' layout, PyTorch's b_ih / b_hh).
    The compiled loop runs reset_after=True with tanh/sigmoid (and linear, relu,
    hard_sigmoid); reset_after=False runs through the numpy reference.

    Args:
        units: positive int, dimensionality of the output space.
        activation: activation of the candidate (default 'tanh').
        recurrent_activation: activation of the z and r gates (default 'sigmoid').
        use_bias, kernel_initializer, recurrent_initializer ('orthogonal'),
        bias_initializer, kernel/recurrent/bias_regularizer, activity_regularizer,
        kernel/recurrent/bias_constraint, dropout, recurrent_dropout, seed,
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask: as in :class:`LSTM`.
        reset_after: apply the reset gate after the recurrent matrix product (default
            True, Keras' and cuDNN's convention).

    Call arguments: ``inputs`` (batch, timesteps, features), ``initial_state`` (a list of
    one (batch, units) array), ``mask``, ``training``.
    """

    _cell = "gru"
    _gates = 3
    _state_count = 1

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 zero_output_for_mask=False, use_cudnn="auto", **kwargs):
        super().__init__(**kwargs)
        self.reset_after = check_bool(f"GRU '{self.name}'", "reset_after", reset_after)
        self._init_rnn(units, activation, recurrent_activation, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, kernel_regularizer,
                       recurrent_regularizer, bias_regularizer, activity_regularizer,
                       kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                       recurrent_dropout, seed, return_sequences, return_state, go_backwards,
                       stateful, unroll, zero_output_for_mask)
        self.use_cudnn = use_cudnn   # accepted for Keras compatibility

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self):
        config = super().get_config()
        config["recurrent_activation"] = _serialize_activation(self.recurrent_activation)
        config["reset_after"] = self.reset_after
        return config
