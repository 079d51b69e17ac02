"""SimpleRNN, the Keras 3 layer: h = activation(x W + h U + b) over one compiled loop."""
from minidl.layers.base import LAYERS
from minidl.layers.recurrent.base import RNN


@LAYERS.register()
class SimpleRNN(RNN):
    """Fully-connected RNN whose output is fed back as its state, as
    ``keras.layers.SimpleRNN``: ``h = activation(x @ kernel + h @ recurrent_kernel + bias)``.

    Args:
        units: positive int, dimensionality of the output space.
        activation: activation (default 'tanh'); linear, relu, sigmoid, tanh and
            hard_sigmoid are fused into the compiled loop, others run through the numpy
            reference.
        use_bias, kernel_initializer, recurrent_initializer ('orthogonal'),
        bias_initializer, kernel/recurrent/bias_regularizer, activity_regularizer,
        kernel/recurrent/bias_constraint, dropout, recurrent_dropout, return_sequences,
        return_state, go_backwards, stateful, unroll, seed, zero_output_for_mask: as in
        :class:`LSTM`.

    Call arguments: ``inputs`` (batch, timesteps, features), ``initial_state`` (a list of
    one (batch, units) array), ``mask``, ``training``.
    """

    _cell = "simple_rnn"
    _gates = 1
    _state_count = 1

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None,
                 zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        self._init_rnn(units, activation, "sigmoid", use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, kernel_regularizer,
                       recurrent_regularizer, bias_regularizer, activity_regularizer,
                       kernel_constraint, recurrent_constraint, bias_constraint, dropout,
                       recurrent_dropout, seed, return_sequences, return_state, go_backwards,
                       stateful, unroll, zero_output_for_mask)
