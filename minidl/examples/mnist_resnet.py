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
import argparse
import sys
import time

import minidl
from minidl import Input, Model
from minidl.examples.mnist_cnn import load, prepare
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


def train(x_train, y_train, x_test, y_test, epochs=5, batch_size=32, verbose=1):
    """Build the model and fit it on prepared images; returns the model, the test loss and
    accuracy and the training time in seconds."""
    model = build_model()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
              validation_data=(x_test, y_test), verbose=verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, loss, accuracy, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist-sample",
                        choices=["mnist-sample", "mnist", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads for minidl's kernels (default: all)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    parser.add_argument("--summary", action="store_true", help="print the model's summary")
    args = parser.parse_args(argv)

    if args.threads is not None:
        minidl.set_num_threads(args.threads)
    minidl.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load(args.dataset)
    x_train, x_test = prepare(x_train), prepare(x_test)
    print(f"{args.dataset}: {len(x_train)} training and {len(x_test)} test images; "
          f"{minidl.get_num_threads()} thread(s), {minidl.backend_info()['arch']} kernels")
    if args.summary:
        build_model().summary()
    _, loss, accuracy, seconds = train(x_train, y_train, x_test, y_test, args.epochs,
                                       args.batch_size, args.verbose)
    print(f"Trained {args.epochs} epochs in {seconds:.2f} s. "
          f"Test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
