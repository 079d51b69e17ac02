"""Recurrent layers, as in Keras: SimpleRNN, LSTM, GRU and the Bidirectional wrapper."""
from minidl.layers.recurrent.bidirectional import Bidirectional
from minidl.layers.recurrent.gru import GRU
from minidl.layers.recurrent.lstm import LSTM
from minidl.layers.recurrent.simple_rnn import SimpleRNN

__all__ = ["Bidirectional", "GRU", "LSTM", "SimpleRNN"]
