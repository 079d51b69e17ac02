"""The small residual network of the residual benchmark (issue 12), in minidl and in PyTorch.

Stem: Conv2D(16, 3, 'same') + BatchNormalization + ReLU on 28x28x1 images; then two
residual blocks, each ``relu(x + bn(conv(relu(bn(conv(x))))))`` with 3x3 'same'
convolutions of 16 filters; global average pooling; Dense(10, softmax). Adam (Keras'
defaults) and sparse categorical cross-entropy, batch 32. The PyTorch twin is the same
network written as its docs show (NCHW, nn.Module, CrossEntropyLoss on logits).
"""
import numpy as np

import minidl
from mlp_reference import SEED, torch_adam_epoch

IMAGE = (28, 28, 1)
FILTERS = 16
BLOCKS = 2
CLASSES = 10


def reference_resnet(filters=FILTERS, blocks=BLOCKS):
    """The network in minidl's functional API, seeded and compiled."""
    from minidl import Input, Model
    from minidl.layers import (Add, BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D,
                               ReLU)
    minidl.utils.set_random_seed(SEED)
    inputs = Input(IMAGE)
    x = ReLU()(BatchNormalization()(Conv2D(filters, 3, padding="same")(inputs)))
    for _ in range(blocks):
        y = ReLU()(BatchNormalization()(Conv2D(filters, 3, padding="same")(x)))
        y = BatchNormalization()(Conv2D(filters, 3, padding="same")(y))
        x = ReLU()(Add()([x, y]))
    outputs = Dense(CLASSES, activation="softmax")(GlobalAveragePooling2D()(x))
    model = Model(inputs, outputs, name="small_resnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def torch_resnet(filters=FILTERS, blocks=BLOCKS):
    """The same network in PyTorch (BatchNorm with Keras' momentum and epsilon)."""
    import torch
    nn = torch.nn

    def conv_bn(cin):
        return [nn.Conv2d(cin, filters, 3, padding=1), nn.BatchNorm2d(filters, 1e-3, 0.01)]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(filters), nn.ReLU(), *conv_bn(filters))

        def forward(self, x):
            return torch.relu(x + self.body(x))

    return nn.Sequential(*conv_bn(IMAGE[2]), nn.ReLU(), *[Block() for _ in range(blocks)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(filters, CLASSES))


def torch_resnet_epoch_runner(x_nchw, y, seed=SEED):
    """A function running one epoch of the network in PyTorch eager mode, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    return torch_adam_epoch(torch_resnet(), x_nchw, y)
