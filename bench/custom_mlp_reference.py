"""The reference MLP (784-64-64-10, bench/mlp_reference.py) written as user code: three custom
``Layer`` subclasses on ``minidl.ops`` (matmul, bias add and an activation in ``call``, the
weights made with ``add_weight``), and the same code in PyTorch eager (an ``nn.Module`` with
``nn.Parameter`` and torch ops). The benchmarks (bench_custom.py) and the tests
(tests/test_custom_layers.py) share them.

The output layer returns logits and the loss takes them (``from_logits=True``; PyTorch's
CrossEntropyLoss): what a user writing the output layer by hand writes, in either framework.
"""
import numpy as np

import minidl
from minidl import ops
from minidl.layers import Layer
from mlp_reference import SEED, UNITS


class CustomDense(Layer):
    """``relu(x @ kernel + bias)`` (or without the ReLU), written with ``minidl.ops``.

    Args:
        units: output features.
        relu: apply the ReLU (False: the logits of an output layer).
    """

    def __init__(self, units, relu=True, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.relu = bool(relu)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        z = ops.add(ops.matmul(inputs, self.kernel), self.bias)
        return ops.relu(z) if self.relu else z

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return dict(super().get_config(), units=self.units, relu=self.relu)


def custom_mlp(seed=SEED, dtype="float32"):
    """The reference MLP of three CustomDense layers, compiled with Adam and sparse
    categorical cross-entropy on logits."""
    from minidl import Sequential
    minidl.utils.set_random_seed(seed)
    model = Sequential([CustomDense(UNITS[1], input_shape=(UNITS[0],), dtype=dtype),
                        CustomDense(UNITS[2], dtype=dtype),
                        CustomDense(UNITS[3], relu=False, dtype=dtype)])
    model.compile(optimizer="adam",
                  loss=minidl.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def builtin_mlp(seed=SEED):
    """The same network with built-in Dense layers, logits and the same loss."""
    from minidl import Sequential
    from minidl.layers import Dense
    minidl.utils.set_random_seed(seed)
    model = Sequential([Dense(UNITS[1], activation="relu", input_shape=(UNITS[0],)),
                        Dense(UNITS[2], activation="relu"), Dense(UNITS[3])])
    model.compile(optimizer="adam",
                  loss=minidl.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def torch_custom_epoch_runner(x, y, seed=SEED):
    """One epoch of the same user code in PyTorch eager mode (``nn.Module`` layers with
    ``nn.Parameter`` weights and ``x @ w + b``, ``torch.relu``), or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    from mlp_reference import torch_adam_epoch

    class TorchCustomDense(torch.nn.Module):
        def __init__(self, fan_in, units, relu=True):
            super().__init__()
            limit = float(np.sqrt(6.0 / (fan_in + units)))
            self.kernel = torch.nn.Parameter(torch.empty(fan_in, units).uniform_(-limit, limit))
            self.bias = torch.nn.Parameter(torch.zeros(units))
            self.relu = relu

        def forward(self, x):
            z = x @ self.kernel + self.bias
            return torch.relu(z) if self.relu else z

    torch.manual_seed(seed)
    model = torch.nn.Sequential(TorchCustomDense(UNITS[0], UNITS[1]),
                                TorchCustomDense(UNITS[1], UNITS[2]),
                                TorchCustomDense(UNITS[2], UNITS[3], relu=False))
    return torch_adam_epoch(model, x, y)
