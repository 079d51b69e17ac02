"""Runnable example programs: ``python -m minidl.examples.mnist_mlp`` (or ``minidl-mnist``)."""
