"""The classic Keras MNIST MLP, run on minidl.

Trains ``Dense(64, relu) -> Dense(64, relu) -> Dense(10, softmax)`` with Adam and sparse
categorical cross-entropy, prints Keras-style progress and the final test accuracy.

By default it uses the 5,000-digit MNIST sample shipped inside the package, so it works
offline anywhere. ``--dataset mnist`` uses full MNIST from the cache directory (or downloads
it); ``--dataset fashion_mnist`` uses full Fashion-MNIST (Debian's dataset-fashion-mnist
package or the cache directory).

Usage:
    minidl-mnist [--dataset mnist-sample|mnist|fashion_mnist] [--epochs 10] [--seed 0]
"""
import argparse
import sys
import time

import minidl
from minidl import Sequential
from minidl.datasets import fashion_mnist, mnist
from minidl.layers import Dense


def load(name):
    if name == "mnist-sample":
        return mnist.load_data(source="sample")
    if name == "mnist":
        return mnist.load_data(source="full")
    return fashion_mnist.load_data()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="mnist-sample",
                        choices=["mnist-sample", "mnist", "fashion_mnist"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="OpenMP threads for minidl's kernels (default: all)")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = parser.parse_args(argv)

    if args.threads is not None:
        minidl.set_num_threads(args.threads)
    minidl.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load(args.dataset)
    # The Keras program: scale to [0, 1] and flatten the 28x28 images to 784 features.
    x_train = x_train.reshape(len(x_train), 784) / 255.0
    x_test = x_test.reshape(len(x_test), 784) / 255.0
    print(f"{args.dataset}: {len(x_train)} training and {len(x_test)} test images; "
          f"{minidl.get_num_threads()} thread(s), {minidl.backend_info()['arch']} kernels")

    model = Sequential([
        Dense(64, activation="relu", input_shape=(784,)),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), verbose=args.verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Trained {args.epochs} epochs in {seconds:.2f} s. "
          f"Test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
