"""Training gives the same bits as before the execution plan (issue 12): the weights after one
seeded epoch of the reference MLP, the reference CNN and a BatchNormalization + Dropout
network, on each instruction-set path, as SHA-256 digests recorded with the layer-by-layer
trainer (commit 8eacb2b) before the plan replaced it.

A change of these digests is a change of minidl's numbers: a kernel's summation order, a
fusion that is not exact, a different random stream. Do it on purpose or not at all, and
record the new digests in the same commit, saying why.
"""
import hashlib

import numpy as np
import pytest

import minidl
from minidl._core import _backend
from minidl.datasets import mnist
from minidl.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input,
                           MaxPooling2D)
from minidl.models import Sequential
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")

DIGESTS = {
    "generic": {
        "mlp": "7a9fa2b5e7937a4cd7112d09232091517fe33605eab23ce4a6104425145a5349",
        "cnn": "2e01ec43c46ae76b24d6d07ad62a7bea72fc8ca900d171b8c7d7ca406007ddae",
        "bn_dropout": "19fdca5bef6493c2313e8e822de1a3bc5c3c3b0af88ca9f4fb91886f659468fc",
    },
    "avx2": {
        "mlp": "4056ac93d5272d2340783d7d3728babc23fe104d8565aee16baf833d705e5efd",
        "cnn": "7a0b76ec3c276729b745190b2e88d68cd1e347afb470edf525e7af50995a040e",
        "bn_dropout": "4da1242dde16cab3925b23c7073ba85cac39ee314d4051854e70531c1a3b33f7",
    },
    "avx512": {
        "mlp": "4056ac93d5272d2340783d7d3728babc23fe104d8565aee16baf833d705e5efd",
        "cnn": "1a3b6e981212222584c23983977d136724d9158c081b29faba145849422e51c1",
        "bn_dropout": "4da1242dde16cab3925b23c7073ba85cac39ee314d4051854e70531c1a3b33f7",
    },
}


def _mlp():
    return Sequential([Input((784,)), Dense(64, activation="relu"), Dense(64, activation="relu"),
                       Dense(10, activation="softmax")]), (784,)


def _cnn():
    return Sequential([Input((28, 28, 1)), Conv2D(32, 3, activation="relu"), MaxPooling2D(2),
                       Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                       Dense(128, activation="relu"), Dense(10, activation="softmax")]), \
        (28, 28, 1)


def _bn_dropout():
    return Sequential([Input((784,)), Dense(64), BatchNormalization(),
                       Dense(64, activation="relu"), Dropout(0.3),
                       Dense(10, activation="softmax")]), (784,)


MODELS = {"mlp": _mlp, "cnn": _cnn, "bn_dropout": _bn_dropout}


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = mnist.load_data(source="sample")
    return x[:2000].astype(np.float32) / 255.0, y[:2000]


@pytest.fixture
def arch():
    before = _backend.get_arch()
    yield
    _backend.set_arch(before)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("isa", list(DIGESTS))
def test_one_seeded_epoch_gives_the_recorded_bits(isa, name, digits, arch):
    if isa not in _backend.supported_archs():
        pytest.skip(f"this CPU has no {isa}")
    _backend.set_arch(isa)
    x, y = digits
    set_random_seed(1234)
    model, shape = MODELS[name]()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.reshape((-1,) + shape), y, epochs=1, batch_size=32, verbose=0)
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    assert digest.hexdigest() == DIGESTS[isa][name]
