"""A small residual network on MNIST, built with minidl's functional API.

    inputs -> Conv2D(16, 3, 'same') -> BatchNormalization -> ReLU
           -> 2 x [x + BatchNormalization(Conv2D(ReLU(BatchNormalization(Conv2D(x))))) -> ReLU]
           -> GlobalAveragePooling2D -> Dense(10, softmax)

The residual blocks are the Keras pattern ``x = layers.add([x, y])``: the skip connection
makes the model a graph rather than a stack, so it is a ``minidl.Model(inputs, outputs)``.
Adam and sparse categorical cross-entropy; prints Keras-style progress and the test
accuracy. By default it trains on the 5,000-digit sample shipped inside the package;
``--dataset mnist`` and ``--dataset fashion_mnist`` use the full data sets, as in
``minidl-mnist-cnn``.

Usage:
    minidl-mnist-resnet [--dataset mnist-sample|mnist|fashion_mnist] [--epochs 5] [--seed 0]
"""
import sys

from minidl import Input, Model
from minidl.examples.mnist_cnn import load, run
from minidl.layers import (BatchNormalization, Conv2D, Dense, GlobalAveragePooling2D, ReLU,
                           add)


def residual_block(x, filters):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``."""
    y = ReLU()(BatchNormalization()(Conv2D(filters, 3, padding="same")(x)))
    y = BatchNormalization()(Conv2D(filters, 3, padding="same")(y))
    return ReLU()(add([x, y]))


def build_model(filters=16, blocks=2):
    """The residual network, compiled."""
    inputs = Input((28, 28, 1), name="digits")
    x = ReLU()(BatchNormalization()(Conv2D(filters, 3, padding="same")(inputs)))
    for _ in range(blocks):
        x = residual_block(x, filters)
    outputs = Dense(10, activation="softmax")(GlobalAveragePooling2D()(x))
    model = Model(inputs, outputs, name="mnist_resnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    return run(build_model, __doc__, argv, load)


if __name__ == "__main__":
    sys.exit(main())
