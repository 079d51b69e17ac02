"""One-array inference through a chain of steps (``Plan.run_chain``): ``model(x)`` on a
model whose inference pass is a plain chain runs per-step functions made once per input
shape, without contexts.

Checked: the bits of the general inference pass (``Plan.forward``, the path every other
call takes) for CNNs with folded normalizations, pooled convolutions whose last rows and
columns the pooling leaves out (computed on the part it reads), float32 and float64, batch
1 and more; outputs that are new arrays at every call; two threads predicting at once; new
weights, ``trainable`` changes and steps without a runner of their own.
"""
import copy
import threading

import numpy as np
import pytest

import minidl
from minidl import Input, Model, Sequential
from minidl import layers as L
from minidl.models.rewrites import FoldedBatchNormStep, _pooled_part
from random_weights import randomize


def bench_cnn(dtype="float32"):
    """The CNN of bench/bench_onnx.py."""
    minidl.utils.set_random_seed(18)
    model = Sequential([Input((28, 28, 1), dtype=dtype),
                        L.Conv2D(32, 3, activation="relu", dtype=dtype),
                        L.BatchNormalization(dtype=dtype), L.MaxPooling2D(2, dtype=dtype),
                        L.Conv2D(64, 3, dtype=dtype), L.BatchNormalization(dtype=dtype),
                        L.Activation("relu", dtype=dtype), L.MaxPooling2D(2, dtype=dtype),
                        L.Flatten(dtype=dtype), L.Dropout(0.5, dtype=dtype),
                        L.Dense(128, activation="relu", dtype=dtype),
                        L.Dense(10, activation="softmax", dtype=dtype)])
    return randomize(model, 18)


def pooled_conv(size, filters, conv_kwargs, pool_kwargs, channels=5, dtype="float32"):
    """Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D -> Flatten -> Dense."""
    minidl.utils.set_random_seed(7)
    model = Sequential([Input((size[0], size[1], channels), dtype=dtype),
                        L.Conv2D(filters, 3, dtype=dtype, **conv_kwargs),
                        L.BatchNormalization(dtype=dtype), L.ReLU(dtype=dtype),
                        L.MaxPooling2D(dtype=dtype, **pool_kwargs), L.Flatten(dtype=dtype),
                        L.Dense(3, dtype=dtype)])
    return randomize(model, 8)


def general(model, x):
    """The general inference pass (Plan.forward), which run_chain must equal bit for bit."""
    return model._current_plan().forward([x], training=False)[0]


def _check_bits(model, x):
    plan = model._current_plan()
    assert plan.is_chain
    got = model(x).numpy()
    np.testing.assert_array_equal(got, general(model, x))
    assert x.shape[1:] in plan._chains   # (the chain ran, not the general pass)
    return got


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 5])
def test_bench_cnn_has_the_bits_of_the_general_pass(dtype, batch):
    model = bench_cnn(dtype)
    x = np.random.default_rng(1).random((batch, 28, 28, 1)).astype(dtype)
    _check_bits(model, x)
    _check_bits(model, x)   # (the second call: the functions made by the first)
    # The second convolution's 11x11 output is pooled to 5x5: only its first 10 rows and
    # columns are computed, from the first 12 of the input.
    folded = [s for s in model._current_plan().inference_steps
              if isinstance(s, FoldedBatchNormStep)]
    _, layer, direct = folded[0]._current()
    assert _pooled_part(layer, direct[-1], folded[0].pool.layer)[0] == (12, 12)


@pytest.mark.parametrize("size, channels, filters, conv_kwargs, pool_kwargs, part", [
    ((13, 13), 5, 8, {}, {"pool_size": 2}, (12, 12)),                   # 11 -> 5
    ((14, 11), 5, 16, {}, {"pool_size": (3, 2)}, (14, 10)),             # 12x9 -> 4x4
    ((15, 15), 5, 4, {"strides": 2}, {"pool_size": 2}, (13, 13)),       # 7 -> 3
    ((17, 17), 5, 8, {"dilation_rate": 2}, {"pool_size": 2}, (16, 16)),  # 13 -> 6
    ((13, 13), 16, 3, {}, {"pool_size": 2}, (12, 12)),   # few filters: the narrow kernel
    ((13, 13), 5, 8, {}, {"pool_size": 3, "strides": 2}, None),         # 11 -> 5 overlapping
    ((12, 12), 5, 8, {"padding": "same"}, {"pool_size": 5}, None),      # a padded input
    ((13, 12), 5, 8, {}, {"pool_size": 2, "padding": "same"}, None),    # padded windows
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pooled_part_has_the_bits_of_the_whole_output(size, channels, filters, conv_kwargs,
                                                      pool_kwargs, part, dtype):
    model = pooled_conv(size, filters, conv_kwargs, pool_kwargs, channels, dtype)
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch,) + size + (channels,))
        _check_bits(model, x.astype(dtype))
    folded = model._current_plan().inference_steps[0]
    _, layer, direct = folded._current()
    found = _pooled_part(layer, direct[-1], folded.pool.layer)
    assert (None if found is None else found[0]) == part


def test_outputs_are_new_arrays_at_every_call():
    model = bench_cnn()
    rng = np.random.default_rng(2)
    x1, x2 = rng.random((2, 1, 28, 28, 1), dtype=np.float32)
    first = model(x1).numpy()
    kept = first.copy()
    second = model(x2).numpy()
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)


def test_two_threads_predicting_at_once_give_the_bits_of_one():
    model = bench_cnn()
    xs = np.random.default_rng(3).random((16, 1, 28, 28, 1), dtype=np.float32)
    expected = [general(model, x) for x in xs]
    results, errors = {}, []
    start = threading.Barrier(2)

    def predict(name):
        try:
            start.wait()
            results[name] = [[model(x).numpy() for x in xs] for _ in range(10)]
        except Exception as error:   # (reported below, in the main thread)
            errors.append(error)

    threads = [threading.Thread(target=predict, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for outs in results.values():
        for round_ in outs:
            for got, want in zip(round_, expected):
                np.testing.assert_array_equal(got, want)


def test_chain_follows_new_weights_and_trainable():
    model = bench_cnn()
    x = np.random.default_rng(4).random((2, 28, 28, 1), dtype=np.float32)
    before = _check_bits(model, x)
    randomize(model, 99)
    after = _check_bits(model, x)
    assert not np.array_equal(before, after)
    # Negative gammas: the pooled normalization takes the smallest convolution values.
    norm = model.layers[1]
    norm.gamma.assign(-np.abs(norm.gamma.numpy()))
    _check_bits(model, x)
    model.layers[0].trainable = False   # (a rebuilt plan)
    _check_bits(model, x)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, np.array([1, 2]), epochs=1, verbose=0)
    _check_bits(model, x)


def test_steps_without_runners_and_nested_models():
    minidl.utils.set_random_seed(5)
    inner = Sequential([Input((6,)), L.Dense(8, activation="tanh"), L.LayerNormalization()])
    inputs = Input((12,))
    h = L.Reshape((2, 6))(inputs)
    h = L.Flatten()(L.Dense(6)(h))   # (Dense on a sequence: its general forward)
    h = inner(L.Dense(6)(h))
    h = L.Dropout(0.3)(h)
    model = randomize(Model(inputs, L.Dense(4, activation="softmax")(h)), 6)
    x = np.random.default_rng(6).normal(size=(3, 12)).astype(np.float32)
    got = _check_bits(model, x)
    inner.layers[0].kernel.assign(np.zeros((6, 8), np.float32))   # a nested model changes
    changed = _check_bits(model, x)
    assert not np.array_equal(got, changed)


def test_models_that_are_not_chains_take_the_general_pass():
    inputs = Input((4,))
    a, b = L.Dense(3)(inputs), L.Dense(3)(inputs)
    model = Model(inputs, L.Add()([a, b]))
    assert not model._current_plan().is_chain
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(model(x).numpy(), general(model, x))
    regularized = Sequential([Input((4,)), L.Dense(3, activity_regularizer="l2")])
    assert not regularized._current_plan().is_chain
    regularized(x)
    assert regularized.losses[-1] > 0


def test_a_copied_model_computes_with_its_own_weights():
    model = bench_cnn()
    x = np.random.default_rng(7).random((1, 28, 28, 1), dtype=np.float32)
    original = model(x).numpy()
    copied = copy.deepcopy(model)
    randomize(copied, 123)
    got = _check_bits(copied, x)
    assert not np.array_equal(got, original)
    np.testing.assert_array_equal(model(x).numpy(), original)


def test_predict_on_one_batch_takes_the_chain():
    model = bench_cnn()
    x = np.random.default_rng(8).random((3, 28, 28, 1), dtype=np.float32)
    got = model.predict(x, verbose=0)
    np.testing.assert_array_equal(got, general(model, x))
    assert x.shape[1:] in model._current_plan()._chains
    with pytest.raises(ValueError, match="NaN|nan|finite"):
        model.predict(np.full((1, 28, 28, 1), np.nan, np.float32), verbose=0)
