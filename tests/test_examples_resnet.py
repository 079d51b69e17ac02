"""The residual network example (minidl/examples/mnist_resnet.py): its graph, a short run,
and its command line."""
import re

import numpy as np
import pytest

import minidl
from minidl.datasets import mnist
from minidl.examples import mnist_cnn, mnist_resnet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_model_is_a_graph_with_two_residual_blocks():
    model = mnist_resnet.build_model()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Add") == 2 and kinds.count("Conv2D") == 5
    assert model.output_shape == (None, 10)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Connected to" in line for line in lines)


def test_training_lowers_the_loss_and_main_prints_the_accuracy(monkeypatch, capsys):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="sample")
    minidl.utils.set_random_seed(0)
    model = mnist_resnet.build_model()
    x, y = mnist_cnn.prepare(x_train[:256]), y_train[:256]
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    monkeypatch.setattr(mnist_resnet, "load", lambda name: ((x_train[:128], y_train[:128]),
                                                            (x_test[:64], y_test[:64])))
    assert mnist_resnet.main(["--epochs", "1", "--verbose", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "mnist-sample: 128 training and 64 test images" in out
    assert re.search(r"Trained 1 epochs in \d+\.\d\d s\. Test loss \d+\.\d{4}, "
                     r"test accuracy \d\.\d{4}", out)
