"""Benchmark of the callbacks' overhead (issue 4): one training epoch of the reference MLP on
60,000 samples, batch 32, single thread, with EarlyStopping + ReduceLROnPlateau + CSVLogger
("minidl") beside the same epoch with an empty callback list ("no callbacks"). The target is
under 3% overhead: a ratio of at least 0.97 in the summary table.

The three callbacks act once per epoch (CallbackList gives no per-batch hook to call), so what
is measured is their epoch-end work: EarlyStopping's weight snapshot, the learning-rate check
and one CSV row. Data: full Fashion-MNIST when installed, else synthetic data of that shape.
"""
import numpy as np
import pytest

import minidl
from minidl import Sequential, callbacks
from minidl.layers import Dense

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is in the test extras
    threadpool_limits = None

SEED = 0
ROUNDS = 7


@pytest.fixture(scope="module")
def fashion():
    from minidl.datasets import fashion_mnist
    try:
        (x, y), _ = fashion_mnist.load_data(source="full")
        source = "fashion-mnist"
    except (OSError, RuntimeError, ValueError):
        rng = np.random.default_rng(SEED)
        x = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 60000).astype(np.uint8)
        source = "synthetic"
    x = (x.reshape(len(x), 784) / 255.0).astype(np.float32)
    return x, y.astype(np.int64), source


@pytest.fixture(autouse=True)
def single_thread():
    previous = minidl.get_num_threads()
    minidl.set_num_threads(1)
    limits = threadpool_limits(1) if threadpool_limits else None
    yield
    minidl.set_num_threads(previous)
    if limits is not None:
        limits.restore_original_limits()


def reference_model():
    minidl.utils.set_random_seed(SEED)
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.benchmark(group="callbacks-epoch")
def test_epoch_with_callbacks(benchmark, fashion, tmp_path):
    x, y, source = fashion
    model = reference_model()
    # monitor='loss': no validation data here, and a missing 'val_loss' would only warn
    cbs = [callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True),
           callbacks.ReduceLROnPlateau(monitor="loss", patience=100),
           callbacks.CSVLogger(tmp_path / "log.csv", append=True)]
    benchmark.extra_info.update(impl="minidl", data=source, samples=len(x))
    epochs_run = []

    def one_epoch():
        epochs_run.append(1)
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=cbs)
    # Timed runs make ROUNDS + 1 (warm-up) calls; a plain pytest run (benchmarks disabled)
    # makes one. Each appends one row under the single header.
    benchmark.pedantic(one_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert (tmp_path / "log.csv").read_text().count("\n") == len(epochs_run) + 1


@pytest.mark.benchmark(group="callbacks-epoch")
def test_epoch_without_callbacks(benchmark, fashion):
    x, y, _ = fashion
    model = reference_model()
    benchmark.extra_info["impl"] = "no callbacks"
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0,
                                         callbacks=[]),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
