"""Inference plans: a BatchNormalization folded into the Dense or convolution before it
(rewrites.FoldedBatchNormStep), and the inference call path (model(x), predict,
predict_on_batch on one ready batch).

The folded computation equals the unfolded one up to rounding: checked against the plan's
own training steps run in inference mode and against a numpy reference; never stale after
training, set_weights, loading or an optimizer's update; the same bits for any thread count
and any batch composition.
"""
import numpy as np
import pytest

import minidl
from minidl import Input, Model, Sequential
from minidl import layers as L
from minidl.models.rewrites import FoldedBatchNormStep
from random_weights import randomize


def cnn(dtype="float32"):
    minidl.utils.set_random_seed(3)
    model = Sequential([Input((10, 10, 2), dtype=dtype),
                        L.Conv2D(6, 3, dtype=dtype), L.BatchNormalization(dtype=dtype),
                        L.Activation("relu", dtype=dtype), L.MaxPooling2D(2, dtype=dtype),
                        L.Conv2D(4, 3, padding="same", use_bias=False, dtype=dtype),
                        L.BatchNormalization(dtype=dtype), L.ReLU(dtype=dtype),
                        L.Flatten(dtype=dtype), L.Dense(5, dtype=dtype),
                        L.BatchNormalization(center=False, dtype=dtype),
                        L.Dense(3, activation="softmax", dtype=dtype)])
    return randomize(model, 4)


def unfolded_outputs(model, x):
    """The model's outputs from its plan steps (training's, unfolded) run in inference
    mode."""
    plan = model._current_plan()
    values = {plan.input_slots[0]: x}
    for step in plan.steps:
        outs = step.forward(step.contexts(record=False), [values[s] for s in step.inputs],
                            False)
        for slot, y in zip(step.outputs, outs):
            values[slot] = y
    return [values[slot] for slot in plan.output_slots]


def unfolded(model, x):
    """The first output of :func:`unfolded_outputs`."""
    return unfolded_outputs(model, x)[0]


def numpy_reference(model, x):
    """The CNN above in float64 numpy, batch normalization as Keras computes it."""
    x = x.astype(np.float64)
    for layer in model.layers:
        w = [a.astype(np.float64) for a in layer.get_weights()]
        name = type(layer).__name__
        if name == "Conv2D":
            k = w[0]
            kh, kw = k.shape[:2]
            if layer.padding == "same":
                x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
            oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
            y = np.zeros((x.shape[0], oh, ow, k.shape[-1]))
            for i in range(kh):
                for j in range(kw):
                    y += x[:, i:i + oh, j:j + ow, :] @ k[i, j]
            x = y + (w[1] if layer.use_bias else 0)
            if layer.get_config()["activation"] == "relu":
                x = np.maximum(x, 0)
        elif name == "BatchNormalization":
            gamma = w.pop(0) if layer.scale else 1.0
            beta = w.pop(0) if layer.center else 0.0
            mean, var = w
            x = (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta
        elif name in ("Activation", "ReLU"):
            x = np.maximum(x, 0)
        elif name == "MaxPooling2D":
            n, h, wd, c = x.shape
            x = x[:, :h // 2 * 2, :wd // 2 * 2].reshape(n, h // 2, 2, wd // 2, 2, c).max((2, 4))
        elif name == "Flatten":
            x = x.reshape(len(x), -1)
        elif name == "Dense":
            x = x @ w[0] + w[1]
            if layer.get_config()["activation"] == "softmax":
                e = np.exp(x - x.max(1, keepdims=True))
                x = e / e.sum(1, keepdims=True)
    return x


@pytest.fixture
def data():
    return np.random.default_rng(5).random((40, 10, 10, 2), dtype=np.float32)


def _folded_steps(model):
    model._current_plan().inference_contexts()
    return [s for s in model._current_plan().inference_steps
            if isinstance(s, FoldedBatchNormStep)]


def test_batch_norms_fold_into_the_layers_before_them(data):
    model = cnn()
    model.predict(data[:2], verbose=0)
    folded = _folded_steps(model)
    layers = model.layers
    assert [(s.first.layer, s.norm.layer) for s in folded] == [
        (layers[0], layers[1]), (layers[4], layers[5]), (layers[8], layers[9])]
    # the training plan keeps every step
    assert not any(isinstance(s, FoldedBatchNormStep) for s in model._current_plan().steps)


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-5), ("float64", 1e-12)])
def test_folded_equals_unfolded_within_rounding(data, dtype, tol):
    model = cnn(dtype)
    x = data.astype(dtype)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, unfolded(model, x), rtol=tol, atol=tol)
    np.testing.assert_allclose(got, numpy_reference(model, x), rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(model(x[:1])), got[:1], rtol=tol, atol=tol)


def test_same_bits_for_threads_and_batch_composition(data):
    model = cnn()
    previous = minidl.get_num_threads()
    try:
        minidl.set_num_threads(1)
        one = model.predict(data, batch_size=7, verbose=0)
        minidl.set_num_threads(2)
        two = model.predict(data, batch_size=7, verbose=0)
    finally:
        minidl.set_num_threads(previous)
    assert np.array_equal(one, two)
    whole = model.predict(data, batch_size=40, verbose=0)
    singles = np.concatenate([np.asarray(model(data[i:i + 1])) for i in range(len(data))])
    assert np.array_equal(one, whole)
    assert np.array_equal(one, singles)
    assert np.array_equal(one, model.predict_on_batch(data))


def _check_current(model, x):
    np.testing.assert_allclose(model.predict(x, verbose=0), numpy_reference(model, x),
                               rtol=2e-5, atol=2e-5)


def test_fold_follows_training(data):
    model = cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    y = np.arange(len(data)) % 3
    before = model.predict(data, verbose=0)
    model.fit(data, y, batch_size=8, epochs=1, verbose=0)
    after = model.predict(data, verbose=0)
    assert not np.allclose(before, after, atol=1e-6)   # the weights and statistics moved
    _check_current(model, data)
    model.train_on_batch(data[:8], y[:8])
    _check_current(model, data)
    model(data[:8], training=True)   # the moving statistics move
    _check_current(model, data)


def test_fold_follows_set_weights_assign_and_optimizer(data):
    model = cnn()
    model.predict(data, verbose=0)
    randomize(model, 9)   # model.set_weights
    _check_current(model, data)
    bn = model.layers[1]
    bn.set_weights([w * 1.5 for w in bn.get_weights()])
    _check_current(model, data)
    bn.moving_mean.assign(np.full(bn.moving_mean.shape, 0.25, np.float32))
    _check_current(model, data)
    conv = model.layers[0]
    conv.kernel.assign_add(np.full(conv.kernel.shape, 0.01, np.float32))
    _check_current(model, data)
    model.weights[1][...] = 0.5   # Variable.__setitem__ (the conv's bias)
    _check_current(model, data)
    optimizer = minidl.optimizers.SGD(0.1)
    optimizer.apply([np.ones(conv.kernel.shape, np.float32)], [conv.kernel])
    _check_current(model, data)
    bn(data[:4, :8, :8, :1].repeat(6, -1), training=True)   # the layer alone, training
    _check_current(model, data)


def test_fold_follows_loading(data, tmp_path):
    model = cnn()
    other = randomize(cnn(), 11)
    model.predict(data, verbose=0)
    path = str(tmp_path / "w.weights.h5")
    pytest.importorskip("h5py")
    other.save_weights(path)
    model.load_weights(path)
    np.testing.assert_array_equal(model.predict(data, verbose=0),
                                  other.predict(data, verbose=0))
    _check_current(model, data)


def test_no_fold_where_it_would_change_results(data):
    minidl.utils.set_random_seed(1)
    inputs = Input((6,))
    hidden = L.Dense(4, activation="relu")(inputs)      # an activation before the norm
    normed = L.BatchNormalization()(hidden)
    linear = L.Dense(4)(inputs)
    both = L.BatchNormalization()(linear)               # the Dense output is read twice
    out = L.Add()([normed, both, linear])
    forced = L.BatchNormalization()(L.Dense(4)(out), training=True)   # batch statistics
    model = randomize(Model(inputs, [out, forced]), 2)
    x = data.reshape(40, -1)[:, :6]
    model.predict(x, verbose=0)
    assert not _folded_steps(model)
    got = model.predict(x, verbose=0)
    # (the second output's batch statistics move its moving averages at every call)
    np.testing.assert_array_equal(got[0], unfolded(model, x))


def test_predict_fast_path_returns_copies_and_checks_inputs():
    model = Sequential([Input((3,)), L.Flatten()])   # the output is the input's view
    x = np.ones((2, 3), np.float32)
    out = model.predict(x, verbose=0)
    out[...] = 7
    assert np.array_equal(x, np.ones((2, 3), np.float32))
    out = model.predict_on_batch(x)
    out[...] = 7
    assert np.array_equal(x, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="NaN|nan|finite"):
        model.predict(np.array([[1, np.nan, 2]], np.float32), verbose=0)
    with pytest.raises(ValueError, match="NaN|nan|finite"):
        model.predict_on_batch(np.array([[1, np.nan, 2]], np.float32))


# ---- convolution, ReLU, (BatchNormalization,) max pooling: one step in inference ----

def first_layer_cnn(norm, dtype="float32", negative_gamma=True):
    minidl.utils.set_random_seed(6)
    body = [Input((12, 12, 1), dtype=dtype), L.Conv2D(8, 3, activation="relu", dtype=dtype)]
    if norm:
        body.append(L.BatchNormalization(dtype=dtype))
    body += [L.MaxPooling2D(2, dtype=dtype), L.Flatten(dtype=dtype),
             L.Dense(3, activation="softmax", dtype=dtype)]
    model = randomize(Sequential(body), 7)
    if norm:
        bn = model.layers[1]
        gamma = np.abs(bn.gamma.value)
        if negative_gamma:
            gamma[::2] *= -1   # both monotonic directions
        gamma[1] = 0.0
        bn.gamma.assign(gamma)
    return model


@pytest.mark.parametrize("norm,negative_gamma", [(True, True), (True, False), (False, False)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_relu_norm_max_pool_is_one_step_with_the_same_bits(norm, negative_gamma, dtype):
    from minidl.models.rewrites import ConvMaxPoolInferenceStep
    model = first_layer_cnn(norm, dtype, negative_gamma)
    x = np.random.default_rng(8).normal(0, 1, (30, 12, 12, 1)).astype(dtype)
    got = model.predict(x, batch_size=7, verbose=0)
    steps = model._current_plan().inference_steps
    assert isinstance(steps[0], ConvMaxPoolInferenceStep)
    assert np.array_equal(got, unfolded(model, x))
    assert np.array_equal(np.asarray(model(x[:1])), got[:1])
    np.testing.assert_allclose(got, numpy_reference(model, x), rtol=1e-5, atol=1e-6)


def test_conv_max_pool_step_follows_new_weights():
    model = first_layer_cnn(True)
    x = np.random.default_rng(9).normal(0, 1, (6, 12, 12, 1)).astype(np.float32)
    model.predict(x, verbose=0)
    bn = model.layers[1]
    bn.gamma.assign(-bn.gamma.value)   # every channel changes direction
    assert np.array_equal(model.predict(x, verbose=0), unfolded(model, x))
    model.layers[0].kernel.assign(model.layers[0].kernel.value * -2)
    assert np.array_equal(model.predict(x, verbose=0), unfolded(model, x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_folded_layer_then_max_pool_has_the_bits_of_the_two(data, dtype):
    from minidl.layers.base import CallContext
    model = cnn(dtype)
    x = data.astype(dtype)
    model.predict(x[:1], verbose=0)
    fused = model._current_plan().inference_steps[0]
    assert isinstance(fused, FoldedBatchNormStep) and fused.pool is not None
    alone = FoldedBatchNormStep(fused.first, fused.norm, fused.activation)
    hidden = alone.forward(alone.contexts(False), [x], False)[0]
    pooled = fused.pool.layer.forward(CallContext(fused.pool.layer, False), hidden, False)
    assert np.array_equal(fused.forward(fused.contexts(False), [x], False)[0], pooled)
    # (and the generic path, on a non-contiguous input)
    strided = np.stack([x, x], axis=-1).reshape(x.shape[:-1] + (4,))[..., ::2]
    assert np.array_equal(strided, x) and not strided.flags.c_contiguous
    assert np.array_equal(fused.forward(fused.contexts(False), [strided], False)[0], pooled)


def test_activity_regularizers_keep_their_steps(data):
    """A layer with an activity regularizer is never fused away in inference, so
    evaluate's penalties still count it."""
    minidl.utils.set_random_seed(2)
    model = Sequential([Input((10, 10, 2)),
                        L.Conv2D(4, 3, activation="relu", activity_regularizer="l2"),
                        L.BatchNormalization(), L.MaxPooling2D(2),
                        L.Flatten(), L.Dense(3, activity_regularizer="l1"),
                        L.BatchNormalization()])
    model = randomize(model, 3)
    model.compile(loss="mse")
    y = np.zeros((len(data), 3), np.float32)
    model.predict(data, verbose=0)
    steps = model._current_plan().inference_steps
    assert not any(isinstance(s, FoldedBatchNormStep) for s in steps)
    from minidl.models.rewrites import ConvMaxPoolInferenceStep
    assert not any(isinstance(s, ConvMaxPoolInferenceStep) for s in steps)
    mse = np.mean((unfolded(model, data) - y) ** 2)
    assert model.evaluate(data, y, verbose=0) > mse   # the penalties count


class _ScaledDense(L.Dense):
    """A user's Dense subclass: its computation is its own, so nothing folds into it."""

    def forward(self, ctx, x, training=False):
        return super().forward(ctx, x, training) * 2


def test_fold_covers_conv1d_groups_and_sequences_not_subclasses():
    minidl.utils.set_random_seed(4)
    inputs = Input((9, 4))
    a = L.BatchNormalization()(L.Conv1D(6, 3, groups=2)(inputs))         # grouped Conv1D
    b = L.BatchNormalization()(L.Dense(5)(inputs))                       # Dense per step
    c = L.BatchNormalization()(_ScaledDense(5)(inputs))                  # a subclass
    d = L.BatchNormalization(axis=1)(L.Conv1D(6, 3)(inputs))             # steps axis
    model = randomize(Model(inputs, [a, b, c, d]), 5)
    x = np.random.default_rng(6).normal(0, 1, (11, 9, 4)).astype(np.float32)
    got = model.predict(x, verbose=0)
    folded = {s.first.layer.name for s in _folded_steps(model)}
    assert folded == {model.layers[1].name, model.layers[2].name}
    for out, expected in zip(got, unfolded_outputs(model, x)):
        np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-5)
