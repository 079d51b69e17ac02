"""The MNIST convnet example (minidl/examples/mnist_cnn.py): it learns on a small subset of the
shipped sample in one epoch, its command line, and its preprocessing."""
import re

import numpy as np
import pytest

import minidl
from minidl.datasets import mnist
from minidl.examples import mnist_cnn


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def subset():
    """1,024 training and 500 test digits of the shipped sample, prepared as the example does."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data(source="sample")
    return (mnist_cnn.prepare(x_train[:1024]), y_train[:1024],
            mnist_cnn.prepare(x_test[:500]), y_test[:500])


def test_prepare_adds_a_channel_axis():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = mnist_cnn.prepare(images)
    assert x.dtype == np.float32 and x.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(x[0, :, :, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)


def test_one_epoch_learns(subset, capsys):
    minidl.utils.set_random_seed(0)
    model, loss, accuracy, seconds = mnist_cnn.train(*subset, epochs=1, verbose=2)
    assert accuracy >= 0.6, accuracy   # chance is 0.1
    assert np.isfinite(loss) and seconds > 0
    assert model.output_shape == (None, 10)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 1 and "val_accuracy" in out


def test_main_prints_the_test_accuracy(monkeypatch, subset, capsys):
    # main() as the console script runs it, on the subset instead of the whole sample
    x_train, y_train, x_test, y_test = subset
    raw = lambda x: np.rint(x[..., 0] * 255).astype(np.uint8)   # noqa: E731
    monkeypatch.setattr(mnist_cnn, "load", lambda name: ((raw(x_train[:256]), y_train[:256]),
                                                         (raw(x_test), y_test)))
    assert mnist_cnn.main(["--epochs", "1", "--verbose", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "mnist-sample: 256 training and 500 test images" in out
    assert re.search(r"Trained 1 epochs in \d+\.\d\d s\. Test loss \d\.\d{4}, "
                     r"test accuracy \d\.\d{4}", out), out


def test_main_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        mnist_cnn.main(["--dataset", "cifar10"])
    assert info.value.code == 2
    assert "--dataset" in capsys.readouterr().err
