"""Benchmark of the reference MLP with BatchNormalization and Dropout(0.2) after each hidden
Dense (issue 4): one training epoch of 60,000 samples at batch 32, single thread, beside the
same network in plain numpy (bench/bn_dropout_reference.py).

Data and thread settings come from bench/conftest.py: Fashion-MNIST when installed, else synthetic
data of the same shape; minidl, numpy's BLAS and torch limited to one thread.
"""
import numpy as np
import pytest

import minidl
from mlp_reference import SEED
from bn_dropout_reference import NumpyBNDropoutMLP
from minidl import Sequential
from minidl.layers import BatchNormalization, Dense, Dropout

pytestmark = pytest.mark.usefixtures("single_thread")


def bn_dropout_model():
    minidl.utils.set_random_seed(SEED)
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        BatchNormalization(), Dropout(0.2),
                        Dense(64, activation="relu"), BatchNormalization(), Dropout(0.2),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.benchmark(group="bn-dropout-epoch")
def test_bn_dropout_epoch_minidl(benchmark, fashion):
    x, y, source = fashion
    model = bn_dropout_model()
    benchmark.extra_info.update(impl="minidl", data=source, samples=len(x))
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0),
                       rounds=3, iterations=1, warmup_rounds=1)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.5 or source == "synthetic"


@pytest.mark.benchmark(group="bn-dropout-epoch")
def test_bn_dropout_epoch_numpy(benchmark, fashion):
    x, y, _ = fashion
    model = NumpyBNDropoutMLP(SEED)
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(lambda: model.epoch(x, y, order), rounds=3, iterations=1, warmup_rounds=1)
