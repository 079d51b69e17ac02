"""The compiled training step of a Dense chain (minidl/models/dense_chain.py): which models
take it, and that it gives exactly the bits of the layer-by-layer step."""
import copy
import pickle

import numpy as np
import pytest

import minidl
from minidl import Input, Model, Sequential
from minidl.layers import Activation, Dense, Dropout, ReLU
from minidl.models import dense_chain


@pytest.fixture
def both_paths(monkeypatch):
    """Run ``build_and_fit()`` with the compiled step and without; return both results."""
    def run(build_and_fit):
        results = []
        for enabled in (True, False):
            monkeypatch.setattr(dense_chain, "ENABLED", enabled)
            model, history = build_and_fit()
            assert (model._dense_chain is not None) == enabled
            results.append((model, history))
        return results
    return run


def _data(n=200, features=12, classes=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(dtype), rng.integers(0, classes, n)


def _assert_same_bits(results):
    (a, ha), (b, hb) = results
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.tobytes() == wb.tobytes()
    for sa, sb in zip(a.optimizer.get_slot_arrays(), b.optimizer.get_slot_arrays()):
        assert sa.tobytes() == sb.tobytes()


def _fit(model, x, y, batch_size=16, epochs=2, **kwargs):
    return model, model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, **kwargs)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_softmax_mlp_same_bits(both_paths, optimizer):
    x, y = _data()

    def build_and_fit():
        minidl.utils.set_random_seed(1)
        model = Sequential([Input((12,)), Dense(16, activation="relu"),
                            Dense(8, activation="tanh"), Dense(5, activation="softmax")])
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return _fit(model, x, y, batch_size=24)   # 200 = 8 x 24 + a last batch of 8
    _assert_same_bits(both_paths(build_and_fit))


def test_functional_chain_with_activation_layers_same_bits(both_paths):
    x, y = _data(features=6, classes=3)

    def build_and_fit():
        minidl.utils.set_random_seed(2)
        inputs = Input((6,))
        h = ReLU()(Dense(10)(inputs))
        h = Activation("gelu")(Dense(7, use_bias=False)(h))   # y apart from z; no bias
        h = Dense(4)(h)                                        # linear, in the middle
        outputs = Activation("softmax")(Dense(3)(h))
        model = Model(inputs, outputs)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return _fit(model, x, y)
    _assert_same_bits(both_paths(build_and_fit))


def test_sigmoid_and_regression_heads_same_bits(both_paths):
    x, _ = _data(features=5)
    rng = np.random.default_rng(3)
    binary = (rng.random((200, 1)) > 0.5).astype(np.float32)
    target = rng.standard_normal((200, 2)).astype(np.float32)

    def sigmoid_model():
        minidl.utils.set_random_seed(3)
        model = Sequential([Input((5,)), Dense(6, activation="elu"),
                            Dense(1, activation="sigmoid")])
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return _fit(model, x, binary)

    def regression_model():   # no fused head: the loss gradient goes through the layer
        minidl.utils.set_random_seed(4)
        model = Sequential([Input((5,)), Dense(6, activation="softplus"),
                            Dense(2, activation="tanh")])
        model.compile(optimizer="sgd", loss="mse")
        return _fit(model, x, target)
    _assert_same_bits(both_paths(sigmoid_model))
    _assert_same_bits(both_paths(regression_model))


def test_float64_and_ignore_class_same_bits(both_paths):
    x, y = _data(dtype=np.float64)
    y[::7] = 4   # ignored: the reduction divides by the rows kept

    def build_and_fit():
        minidl.utils.set_random_seed(5)
        model = Sequential([Input((12,), dtype="float64"),
                            Dense(9, activation="relu", dtype="float64"),
                            Dense(5, activation="softmax", dtype="float64")])
        model.compile(optimizer="adam",
                      loss=minidl.losses.SparseCategoricalCrossentropy(ignore_class=4))
        return _fit(model, x, y)
    _assert_same_bits(both_paths(build_and_fit))


def test_two_threads_same_bits_as_one():
    x, y = _data(n=512, features=64)
    weights = []
    for threads in (1, 2):
        previous = minidl.get_num_threads()
        minidl.set_num_threads(threads)
        try:
            minidl.utils.set_random_seed(6)
            model = Sequential([Input((64,)), Dense(600, activation="relu"),
                                Dense(5, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)
            assert model._dense_chain is not None
            weights.append(model.get_weights())
        finally:
            minidl.set_num_threads(previous)
    for a, b in zip(*weights):
        assert a.tobytes() == b.tobytes()


def test_sample_weights_take_the_general_path_with_the_same_result(both_paths):
    x, y = _data()
    w = np.linspace(0.5, 2.0, len(x)).astype(np.float32)

    def build_and_fit():
        minidl.utils.set_random_seed(7)
        model = Sequential([Input((12,)), Dense(8, activation="relu"),
                            Dense(5, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return _fit(model, x, y, sample_weight=w)
    _assert_same_bits(both_paths(build_and_fit))


@pytest.mark.parametrize("make", [
    lambda: Sequential([Input((4,)), Dense(8, activation="relu"), Dropout(0.5), Dense(2)]),
    lambda: Sequential([Input((4,)), Dense(8, kernel_regularizer="l2"), Dense(2)]),
    lambda: Sequential([Input((4,)), Dense(8, activity_regularizer="l1"), Dense(2)]),
], ids=["dropout", "kernel_regularizer", "activity_regularizer"])
def test_other_models_keep_the_layer_by_layer_step(make):
    model = make()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32), verbose=0)
    assert model._dense_chain is None


def test_frozen_and_shared_layers_keep_the_layer_by_layer_step():
    frozen = Sequential([Input((4,)), Dense(8), Dense(2)])
    frozen.layers[0].trainable = False
    shared_layer = Dense(4)
    inputs = Input((4,))
    shared = Model(inputs, Dense(2)(shared_layer(shared_layer(inputs))))
    for model in (frozen, shared):
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32), verbose=0)
        assert model._dense_chain is None


def test_bad_label_raises_and_changes_nothing():
    model = Sequential([Input((3,)), Dense(4, activation="relu"), Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.ones((4, 3), np.float32)
    model.fit(x, np.array([0, 1, 2, 0]), verbose=0)
    assert model._dense_chain is not None
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"y\[1\] = 7 is not a valid class label"):
        model.train_on_batch(x, np.array([0, 7, 1, 2]))   # caught before any step
    # The chain's own report, for labels that reach it unchecked:
    with pytest.raises(ValueError, match=r"label value of 7 .* \[0, 3\)"):
        model._dense_chain.run(x, np.array([0, 7, 1, 2]))
    for a, b in zip(before, model.get_weights()):
        assert np.array_equal(a, b)


def test_a_trained_model_copies_and_pickles():
    x, y = _data()
    model = Sequential([Input((12,)), Dense(8, activation="relu"), Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, verbose=0)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        twin.fit(x, y, verbose=0)
        model_copy = copy.deepcopy(twin)
        assert [w.shape for w in model_copy.get_weights()] == [w.shape for w in
                                                                model.get_weights()]


def test_the_chain_checks_its_arrays():
    from minidl._core._chain import DenseChain
    from minidl import activations
    softmax, linear = activations.get("softmax")._compiled(), activations.get("linear")._compiled()
    loss = minidl.losses.SparseCategoricalCrossentropy()._step_kernel(True)
    w = np.zeros((3, 2), np.float32)
    arrays = {"w": w, "b": None, "dw": np.zeros_like(w), "db": None,
              "z": np.zeros((4, 2), np.float32), "y": np.zeros((4, 2), np.float32),
              "dz": np.zeros((4, 2), np.float32), "dx": None}
    grad = np.zeros((4, 2), np.float32)
    DenseChain([softmax], [arrays], loss, linear, True, grad, 4)
    with pytest.raises(ValueError, match="'z' must have shape"):
        DenseChain([softmax], [dict(arrays, z=np.zeros((5, 2), np.float32))], loss, linear, True,
                   grad, 4)
    with pytest.raises(ValueError, match="'dw' must be an aligned C-contiguous float32"):
        DenseChain([softmax], [dict(arrays, dw=np.zeros((3, 2)))], loss, linear, True, grad, 4)
    with pytest.raises(ValueError, match="needs a 'dz' buffer"):
        DenseChain([softmax], [dict(arrays, dz=None)], loss, linear, True, grad, 4)
    chain = DenseChain([softmax], [arrays], loss, linear, True, grad, 4)
    assert chain.run(np.zeros((5, 3), np.float32), np.zeros(5, np.int64)) is None   # rows
    assert chain.run(np.zeros((4, 3)), np.zeros(4, np.int64)) is None               # dtype
    assert chain.run(np.zeros((4, 3), np.float32), np.zeros(4)) is None             # labels
    value = chain.run(np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    assert value == pytest.approx(np.log(2))   # uniform over 2 classes
