"""Reverse-mode automatic differentiation for user code: tensors, variables, GradientTape.

Built-in layers and losses have hand-written, fused backward passes; code a user writes
(a custom layer's ``call``, a loss function, a ``train_step``) gets its gradients from the
history ops record on tensors (``tensor.py``) and the backward pass over it (``gradient.py``).
"""
from minidl.autodiff.gradient import GradientTape, convert_to_tensor, gradients
from minidl.autodiff.tensor import (Node, Tensor, Variable, no_record_scope, record,
                                    record_scope, recording, to_array, unbroadcast, value_of,
                                    wrap)

__all__ = ["GradientTape", "Node", "Tensor", "Variable", "convert_to_tensor", "gradients",
           "no_record_scope", "record", "record_scope", "recording", "to_array", "unbroadcast",
           "value_of", "wrap"]
