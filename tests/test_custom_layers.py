"""Custom layers (issue 14): ``Layer`` subclasses whose ``call`` is written with
``minidl.ops``, trained by the gradients of the ops they record.

A custom layer runs in three ways: called on tensors (``layer(x)``, as written), inside a
model's execution plan (a step whose forward runs ``call`` on a tape of its own and whose
backward runs that tape backward, ``layers/eager.py``), and under a ``GradientTape``. The
first part checks that a model of custom layers trains, evaluates, predicts, summarizes,
saves and loads like one of built-in layers; the second checks the backward pass that
custom layers run on (``autodiff/gradient.py``): the recorded tape, the gradients it
skips, the arrays it writes into.
"""
import threading

import numpy as np
import pytest

import minidl
from minidl import ops
from minidl.autodiff import GradientTape, Variable, gradients, record, record_scope, wrap
from minidl.autodiff.gradient import gradients_into
from minidl.layers import CallContext, Dense, Layer
from minidl.saving import register_serializable

pytestmark = pytest.mark.usefixtures("one_thread")

LOGITS_LOSS = minidl.losses.SparseCategoricalCrossentropy(from_logits=True)


@register_serializable(package="test_custom_layers")
class CustomDense(Layer):
    """``relu(x @ kernel + bias)`` (or the logits, without the ReLU), with minidl.ops."""

    def __init__(self, units, relu=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.relu = relu

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                      initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        z = ops.add(ops.matmul(inputs, self.kernel), self.bias)
        return ops.relu(z) if self.relu else z

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)   # whole shapes, batch first (Keras)

    def get_config(self):
        return dict(super().get_config(), units=self.units, relu=self.relu)


@register_serializable(package="test_custom_layers")
class GatedBlock(Layer):
    """A custom layer holding a built-in Dense (a sublayer) and a weight of its own."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = Dense(units, activation="tanh")

    def build(self, input_shape):
        self.gate = self.add_weight(shape=(self.units,), initializer="ones", name="gate")

    def call(self, inputs):
        return ops.multiply(self.inner(inputs), self.gate)

    def get_config(self):
        return dict(super().get_config(), units=self.units)


@register_serializable(package="test_custom_layers")
class MergeDense(Layer):
    """Two inputs: ``a @ kernel + b``."""

    def build(self, input_shape):
        (_, n), (_, m) = input_shape
        self.kernel = self.add_weight(shape=(n, m), name="kernel")

    def call(self, inputs):
        a, b = inputs
        return ops.add(ops.matmul(a, self.kernel), b)


def _data(n=64, features=8, classes=3, seed=0, dtype=np.float32):
    """Inputs and labels a small network can learn (labels from a random linear map)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(dtype)
    y = np.argmax(x @ rng.standard_normal((features, classes)), axis=1)
    return x, y


def _custom_mlp(dtype="float32", seed=0):
    minidl.utils.set_random_seed(seed)
    return minidl.Sequential([minidl.Input((8,), dtype=dtype),
                              CustomDense(16, dtype=dtype),
                              CustomDense(3, relu=False, dtype=dtype)])


def _compile(model, optimizer="adam", metrics=("accuracy",)):
    model.compile(optimizer=optimizer, loss=LOGITS_LOSS, metrics=list(metrics))
    return model


# ---- custom layers train like built-in ones ----

def test_custom_dense_trains_to_the_weights_of_builtin_dense():
    """20 Adam steps from the same weights. float64, so that the two computations (the
    plan's tape of ops against Dense's fused kernels) differ only by rounding (~1e-16
    relative); after Adam's normalised steps the weights agree to far below 1e-5."""
    x, y = _data(160, dtype=np.float64)
    custom = _compile(_custom_mlp("float64"))
    builtin = _compile(minidl.Sequential([minidl.Input((8,), dtype="float64"),
                                          Dense(16, activation="relu", dtype="float64"),
                                          Dense(3, dtype="float64")]))
    rng = np.random.default_rng(1)
    start = [rng.uniform(-0.5, 0.5, w.shape) for w in builtin.get_weights()]
    builtin.set_weights(start)
    custom.set_weights(start)
    np.testing.assert_allclose(custom.predict(x, verbose=0), builtin.predict(x, verbose=0),
                               rtol=0, atol=1e-12)
    for model in (custom, builtin):
        model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)   # 20 steps
    assert custom.optimizer.iterations == builtin.optimizer.iterations == 20
    for got, want, before in zip(custom.get_weights(), builtin.get_weights(), start):
        assert np.abs(want - before).max() > 1e-3   # they did train
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_custom_layer_training_is_bit_identical_across_runs_and_thread_counts():
    x, y = _data(96)
    results = []
    for threads in (1, 1, 2):
        minidl.set_num_threads(threads)   # (the one_thread fixture restores it)
        model = _compile(_custom_mlp(seed=2))
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        results.append(model.get_weights())
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)


def test_custom_layers_in_sequential_fit_evaluate_predict():
    x, y = _data(256)
    model = _compile(_custom_mlp(), optimizer=minidl.optimizers.Adam(0.01))
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    probs = model.predict(x, verbose=0)
    assert probs.shape == (256, 3) and probs.dtype == np.float32
    # predict runs the layers' call as written, on the plan's arrays
    first, second = model.layers
    np.testing.assert_allclose(probs, second(first(x)).numpy(), rtol=1e-6, atol=1e-6)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(loss, LOGITS_LOSS(y, probs), rtol=1e-5)
    np.testing.assert_allclose(accuracy, np.mean(np.argmax(probs, axis=1) == y), atol=1e-7)
    assert accuracy > 0.8


def test_custom_layers_in_functional_model_with_two_inputs(tmp_path):
    """A custom layer of two inputs after two Dense branches: fit's gradients (the plan
    running the custom layer's tape backward, an input gradient for each branch) equal a
    GradientTape's over the same layers called on tensors."""
    minidl.utils.set_random_seed(3)
    a_in, b_in = minidl.Input((5,)), minidl.Input((4,))
    a = Dense(6, activation="tanh")(a_in)
    b = Dense(3)(b_in)
    merged = MergeDense()([a, b])
    out = CustomDense(3, relu=False)(merged)
    model = minidl.Model([a_in, b_in], out)
    model.compile(optimizer=minidl.optimizers.SGD(0.1), loss=LOGITS_LOSS)
    rng = np.random.default_rng(4)
    xa, xb = rng.standard_normal((8, 5)), rng.standard_normal((8, 4))
    xa, xb = xa.astype(np.float32), xb.astype(np.float32)
    y = rng.integers(0, 3, 8)
    layers = [layer for layer in model.layers if layer.params]
    with GradientTape() as tape:
        logits = layers[3](layers[2]([layers[0](xa), layers[1](xb)]))
        loss = ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
        loss = ops.mean(loss)
    expected = tape.gradient(loss, model.trainable_weights)
    reported = model.train_on_batch([xa, xb], y)
    np.testing.assert_allclose(reported, float(loss), rtol=1e-6)
    for got, want in zip(model._gradients(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert model.evaluate([xa, xb], y, verbose=0) < reported
    predicted = model.predict([xa, xb], verbose=0)
    assert predicted.shape == (8, 3)
    model.save(tmp_path / "functional.minidl")
    loaded = minidl.models.load_model(tmp_path / "functional.minidl")
    assert [type(layer).__name__ for layer in loaded.layers if layer.params] == \
        ["Dense", "Dense", "MergeDense", "CustomDense"]
    np.testing.assert_array_equal(loaded.predict([xa, xb], verbose=0), predicted)
    for m in (model, loaded):
        m.train_on_batch([xa, xb], y)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_summary_shows_custom_layers():
    lines = []
    model = _custom_mlp()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert text.count("(CustomDense)") == 2
    assert "Total params: 195" in text   # 8*16 + 16 + 16*3 + 3
    # (Output shapes in a Sequential summary: see the test below.)
    inputs = minidl.Input((8,))
    hidden = CustomDense(16)(inputs)
    functional = minidl.Model(inputs, GatedBlock(4)(hidden))
    lines.clear()
    functional.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(CustomDense)" in text and "(None, 16)" in text
    assert "(GatedBlock)" in text and "(None, 4)" in text
    assert "Total params: 216" in text   # (8*16 + 16) + (16*4 + 4) + 4


class NoOutputShape(Layer):
    """A custom layer without compute_output_shape: its output shape comes from a call."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 5), name="kernel")

    def call(self, inputs):
        return ops.matmul(inputs, self.kernel)


class BatchFirstShape(NoOutputShape):
    """compute_output_shape written the Keras way, with the batch axis first."""

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 5)


@pytest.mark.parametrize("layer_class", [NoOutputShape, BatchFirstShape])
def test_sequential_summary_output_shape_of_custom_layer(layer_class):
    model = minidl.Sequential([minidl.Input((8,)), layer_class()])
    assert model.outputs[0].shape == (None, 5)
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if f"({layer_class.__name__})" in line)
    assert "(None, 5)" in row, row


def test_save_and_load_custom_layers(tmp_path):
    x, y = _data(96)
    minidl.utils.set_random_seed(5)
    model = _compile(minidl.Sequential([minidl.Input((8,)), CustomDense(12),
                                        GatedBlock(6), CustomDense(3, relu=False)]))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "custom.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [CustomDense, GatedBlock, CustomDense]
    assert loaded.layers[2].get_config() == model.layers[2].get_config()
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Training resumes where it stopped: optimizer state and batch order come back.
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    clone = CustomDense.from_config(model.layers[0].get_config())
    assert clone.get_config() == model.layers[0].get_config()


def test_custom_layer_holding_a_dense_tracks_and_trains_its_weights():
    x, y = _data(64)
    block = GatedBlock(4)
    model = _compile(minidl.Sequential([minidl.Input((8,)), block, CustomDense(3, relu=False)]))
    assert [w.path for w in block.trainable_weights] == \
        [f"{block.name}/gate", f"{block.inner.name}/kernel", f"{block.inner.name}/bias"]
    assert [w.path for w in model.trainable_weights][:3] == \
        [w.path for w in block.trainable_weights]
    before = block.get_weights()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    after = block.get_weights()
    assert len(after) == 3
    for b, a in zip(before, after):
        assert np.abs(a - b).max() > 1e-4
    np.testing.assert_allclose(model.predict(x[:4], verbose=0),
                               model.layers[1](block(x[:4])).numpy(), rtol=1e-6, atol=1e-6)


class ScaleWithPenalty(Layer):
    """``x * w`` with ``add_loss(c * sum(w ** 2))``."""

    def __init__(self, c=0.5, **kwargs):
        super().__init__(**kwargs)
        self.c = c

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, inputs):
        self.add_loss(ops.multiply(ops.sum(ops.multiply(self.w, self.w)), self.c))
        return ops.multiply(inputs, self.w)


def _penalty_case():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    t = rng.standard_normal((4, 3)).astype(np.float32)
    layer = ScaleWithPenalty()
    model = minidl.Sequential([minidl.Input((3,)), layer])
    model.compile(optimizer=minidl.optimizers.SGD(0.1), loss="mse")
    return x, t, layer, model


def test_add_loss_gradient_flows_in_training():
    """mse + 0.5 * sum(w^2): dL/dw = 2 * sum_i (x w - t) x / (n d) + w, by hand."""
    x, t, layer, model = _penalty_case()
    w = np.ones(3)
    grad = 2 * np.sum((x * w - t) * x, axis=0) / x.size + w
    model.train_on_batch(x, t)
    np.testing.assert_allclose(layer.get_weights()[0], w - 0.1 * grad, rtol=1e-6)
    # layer.losses: the add_loss terms of the last call (the step's, before the update)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(w ** 2), rtol=1e-6)


def test_add_loss_value_joins_the_reported_loss():
    x, t, layer, model = _penalty_case()
    w = np.ones(3)
    np.testing.assert_allclose(model.train_on_batch(x, t),
                               np.mean((x * w - t) ** 2) + 0.5 * np.sum(w ** 2), rtol=1e-6)
    w = layer.get_weights()[0].astype(np.float64)
    np.testing.assert_allclose(model.evaluate(x, t, verbose=0),
                               np.mean((x * w - t) ** 2) + 0.5 * np.sum(w ** 2), rtol=1e-6)


class RecordsTraining(Layer):
    """Remembers the ``training`` its call received; calls an inner one without it."""

    def __init__(self, inner=None, **kwargs):
        super().__init__(**kwargs)
        self.seen = []
        self.inner = inner

    def call(self, inputs, training=None):
        self.seen.append(training)
        return self.inner(inputs) if self.inner is not None else ops.multiply(inputs, 1.0)


def test_training_flag_reaches_call():
    inner = RecordsTraining()
    outer = RecordsTraining(inner)
    model = minidl.Sequential([minidl.Input((3,)), outer, Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, t = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    for what, run, expected in (
            ("fit", lambda: model.fit(x, t, epochs=1, batch_size=4, verbose=0), True),
            ("train_on_batch", lambda: model.train_on_batch(x, t), True),
            ("predict", lambda: model.predict(x, verbose=0), False),
            ("evaluate", lambda: model.evaluate(x, t, verbose=0), False),
            ("call", lambda: outer(x), False),
            ("call training=True", lambda: outer(x, training=True), True)):
        outer.seen.clear()
        inner.seen.clear()
        run()
        assert outer.seen == [expected], what
        assert inner.seen == [expected], what   # passed down to the layers call() calls


class TwiceDense(Dense):
    """A built-in layer's computation reused: ``super().call(x) * 2``."""

    def call(self, inputs):
        return super().call(inputs) * 2


def test_dense_subclass_calling_super_call():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    t = rng.standard_normal((6, 3)).astype(np.float32)
    layer = TwiceDense(3, bias_initializer="random_normal")
    model = minidl.Sequential([minidl.Input((4,)), layer])
    model.compile(optimizer=minidl.optimizers.SGD(0.05), loss="mse")
    kernel, bias = layer.get_weights()
    y = 2 * (x @ kernel + bias)
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=1e-6, atol=1e-6)
    dy = 2 * (y - t) / y.size
    model.train_on_batch(x, t)
    np.testing.assert_allclose(layer.get_weights()[0], kernel - 0.05 * x.T @ (2 * dy),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.get_weights()[1], bias - 0.05 * (2 * dy).sum(axis=0),
                               rtol=1e-5, atol=1e-6)


class ReturnsText(Layer):
    def call(self, inputs):
        return "not a tensor"


class ReturnsNoneLater(Layer):
    """Returns its input when a model is built, None afterwards."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, inputs):
        self.calls += 1
        return inputs if self.calls == 1 else None


def test_call_returning_a_non_tensor_is_an_error():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"'returns_text' \(ReturnsText\)\.call\(\) returned str"):
        ReturnsText()(x)
    with pytest.raises(TypeError, match=r"\(ReturnsText\)\.call\(\) returned str"):
        minidl.Sequential([minidl.Input((3,)), ReturnsText()])
    model = minidl.Sequential([minidl.Input((3,)), ReturnsNoneLater()])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match=r"\(ReturnsNoneLater\)\.call\(\) returned NoneType"):
        model.predict(x, verbose=0)
    with pytest.raises(TypeError, match=r"\(ReturnsNoneLater\)\.call\(\) returned NoneType"):
        model.train_on_batch(x, x)


class TwoWeightsOneName(Layer):
    def build(self, input_shape):
        self.add_weight(shape=(input_shape[-1], 2), name="w")
        self.add_weight(shape=(2, 2), name="w")

    def call(self, inputs):
        return inputs


def test_add_weight_with_a_conflicting_shape_for_a_name_is_an_error():
    with pytest.raises(ValueError, match=r"already has a weight 'w' of shape \(3, 2\); "
                                         r"add_weight received shape=\(2, 2\)"):
        TwoWeightsOneName()(np.ones((2, 3), np.float32))


# ---- the backward pass custom layers run on ----

def _graph(a, b, w):
    """A graph with fan-out (h read three times), broadcasting and a bias."""
    h = ops.add(ops.matmul(a, w), b)
    return ops.sum(ops.multiply(ops.add(h, h), ops.relu(h)))


def _graph_operands(seed=8):
    rng = np.random.default_rng(seed)
    return (Variable(rng.standard_normal((5, 4)), name="a"),
            Variable(rng.standard_normal(3), name="b"),
            Variable(rng.standard_normal((4, 3)), name="w"))


def _graph_numeric_gradient(a, b, w, source, eps=1e-6):
    grad = np.zeros(source.shape)
    for index in np.ndindex(source.shape):
        saved = source.value[index]
        values = []
        for delta in (eps, -eps):
            source.value[index] = saved + delta
            values.append(float(_graph(a, b, w)))
        source.value[index] = saved
        grad[index] = (values[0] - values[1]) / (2 * eps)
    return grad


def test_tape_and_graph_search_give_the_same_gradients():
    """GradientTape runs the backward pass over what it recorded; gradients() searches
    the graph from the target. Same gradients, and those of central differences."""
    a, b, w = _graph_operands()
    with GradientTape() as tape:
        target = _graph(a, b, w)
    assert len(tape._recorded) == 6
    from_tape = tape.gradient(target, [a, b, w])
    from_graph = gradients(target, [a, b, w])
    for source, g1, g2 in zip((a, b, w), from_tape, from_graph):
        assert g1.shape == source.shape
        np.testing.assert_allclose(g1, g2, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(g1, _graph_numeric_gradient(a, b, w, source),
                                   rtol=1e-6, atol=1e-8)


def test_gradient_through_ops_recorded_before_the_tape():
    """A tensor made before the tape opened (under another tape) carries its history:
    the gradient flows through it, as through any recorded tensor."""
    w = Variable(np.array([1.5, -2.0]))
    with GradientTape() as outer:
        y = ops.multiply(w, 3.0)
        with GradientTape() as inner:
            z = ops.multiply(y, y)
        (g,) = inner.gradient(z, [w])
        np.testing.assert_allclose(g, 2 * (3 * w.value) * 3)
        total = ops.add(z, w)
    assert len(inner._recorded) == 0   # used up: its record is dropped
    (g,) = outer.gradient(total, [w])
    np.testing.assert_allclose(g, 18 * w.value + 1)


def test_inner_tape_ops_are_on_the_outer_tape():
    w = Variable(np.array([1.5, -2.0]))
    with GradientTape() as outer:
        y = ops.multiply(w, 3.0)
        with GradientTape(persistent=True) as inner:
            z = ops.multiply(y, y)
        total = ops.add(z, w)
    assert len(inner._recorded) == 1 and len(outer._recorded) == 3
    np.testing.assert_allclose(outer.gradient(total, [w])[0], 18 * w.value + 1)
    np.testing.assert_allclose(inner.gradient(z, [y])[0], 2 * y.value)


def test_gradient_through_a_source_recorded_before_the_tape():
    w = Variable(np.array([1.0, -0.5]))
    with GradientTape():
        x = ops.multiply(w, 2.0)
        with GradientTape() as inner:
            y = ops.multiply(x, x)
        gx, gw = inner.gradient(y, [x, w])
    np.testing.assert_allclose(gx, 2 * x.value)
    np.testing.assert_allclose(gw, 8 * w.value)


def test_reset_tape_forgets_the_record_not_the_gradient():
    w = Variable(np.array([2.0, 3.0]))
    with GradientTape(persistent=True) as tape:
        y = ops.multiply(w, w)
        tape.reset()
        z = ops.multiply(y, 2.0)
    assert len(tape._recorded) == 1
    np.testing.assert_allclose(tape.gradient(z, [w])[0], 4 * w.value)


def test_unneeded_gradients_are_not_computed():
    """An operand that needs a gradient (a watched input) but leads to no source gets
    needs=False: a model's first layer computes no input gradient."""
    asked = []

    def probe(x, w):
        def backward(g, needs):
            asked.append(tuple(needs))
            return (g * w.value if needs[0] else None, g * x.value if needs[1] else None)
        return record("probe", x.value * w.value, (x, w), backward)

    x = wrap(np.array([1.0, 2.0]))
    w = Variable(np.array([3.0, 4.0]))
    with GradientTape() as tape:
        tape.watch(x)
        y = probe(x, w)
    np.testing.assert_allclose(tape.gradient(y, [w])[0], x.value)
    np.testing.assert_allclose(gradients(y, [w])[0], x.value)
    np.testing.assert_allclose(gradients(y, [x])[0], w.value)
    assert asked == [(False, True), (False, True), (True, False)]


class ProbeLayer(Layer):
    """``x * w`` through an op that records the ``needs`` its backward receives."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = []

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, inputs):
        layer = self

        def backward(g, needs):
            layer.asked.append(tuple(needs))
            return (g * layer.w.value if needs[0] else None,
                    (g * inputs.value).sum(axis=0) if needs[1] else None)
        return record("probe", inputs.value * self.w.value, (inputs, self.w), backward)


def test_first_layer_of_a_model_computes_no_input_gradient():
    first, second = ProbeLayer(), ProbeLayer()
    model = minidl.Sequential([minidl.Input((3,)), first, second])
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32))
    assert first.asked == [(False, True)]
    assert second.asked == [(True, True)]


def test_gradients_into_writes_the_given_arrays():
    """matmul's GEMM and the bias's reduction write a source's gradient into its buffer
    (the entry returned is the buffer); a weight read twice gets the sum, in its
    buffer or a new array; the results equal gradients()'."""
    rng = np.random.default_rng(9)
    x = wrap(rng.standard_normal((6, 4)).astype(np.float32))
    w = Variable(rng.standard_normal((4, 3)).astype(np.float32), name="w")
    b = Variable(rng.standard_normal(3).astype(np.float32), name="b")
    v = Variable(rng.standard_normal((3, 3)).astype(np.float32), name="v")
    with record_scope():
        h = ops.add(ops.matmul(x, w), b)
        y = ops.add(ops.matmul(h, v), ops.matmul(ops.relu(h), v))   # v read twice
    dy = rng.standard_normal((6, 3)).astype(np.float32)
    dy_before = dy.copy()
    buffers = [np.full(s.shape, np.nan, np.float32) for s in (w, b, v)]
    got = gradients_into(y, [w, b, v], dy, buffers)
    want = gradients(y, [w, b, v], dy)
    assert got[0] is buffers[0] and got[1] is buffers[1]
    for g, e in zip(got, want):
        np.testing.assert_array_equal(g, e)
    np.testing.assert_array_equal(dy, dy_before)   # the seed is never written


def test_accumulation_never_writes_arrays_it_did_not_make():
    """add gives its incoming gradient to both operands (one array): summing a tensor's
    gradients must not write into it, nor into the caller's seed."""
    x = Variable(np.array([1.0, 2.0]))
    seed = np.array([1.0, 10.0])
    with GradientTape() as tape:
        h = ops.add(x, x)
        y = ops.add(ops.add(h, h), h)   # h read three times, x twice
    (g,) = tape.gradient(y, [x], output_gradients=seed)
    np.testing.assert_array_equal(g, 6 * seed)
    np.testing.assert_array_equal(seed, [1.0, 10.0])


def test_no_gradient_through_an_op_without_one_is_an_error_either_way():
    x = Variable(np.array([0.5, -1.0]))
    with GradientTape(persistent=True) as tape:
        mask = ops.cast(ops.greater(x, 0.0), "float32")
        y = ops.multiply(mask, 2.0)
    with pytest.raises(ValueError, match="has no gradient"):
        tape.gradient(y, [x])
    with pytest.raises(ValueError, match="has no gradient"):
        gradients(y, [x])


def test_tapes_of_two_threads_stay_apart():
    """Each thread records on its own tape: gradients computed in one thread while the
    other records are those of a thread alone."""
    results, errors = {}, []

    def work(name, scale):
        try:
            w = Variable(np.full(3, scale))
            for _ in range(200):
                with GradientTape() as tape:
                    y = ops.multiply(ops.multiply(w, w), scale)
                assert len(tape._recorded) == 2
                (g,) = tape.gradient(y, [w])
            results[name] = g
        except Exception as error:   # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i, float(i + 1))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        np.testing.assert_allclose(results[i], 2 * (i + 1) ** 2 * np.ones(3))


class AddsPrevious(Layer):
    """``x @ w`` plus its own output of the previous call, a tensor with a history."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.previous = None

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], 2), name="w")

    def call(self, inputs):
        z = ops.matmul(inputs, self.w)
        out = z if self.previous is None else ops.add(z, self.previous)
        self.previous = z
        return out


def test_a_layer_step_passes_gradients_through_its_own_call_only():
    """In a plan a layer's gradients flow through the ops of the call (its tape), as with
    TensorFlow's tape: not into an earlier step's graph that a kept tensor still holds."""
    layer = AddsPrevious()
    model = minidl.Sequential([minidl.Input((3,)), layer])
    model.compile(optimizer=minidl.optimizers.SGD(0.0), loss="mse")
    layer.previous = None   # (the model's build called it on a batch of two)
    rng = np.random.default_rng(11)
    t = rng.standard_normal((4, 2)).astype(np.float32)
    for step in range(3):
        x = rng.standard_normal((4, 3)).astype(np.float32)
        previous = np.zeros((4, 2), np.float32) if layer.previous is None else \
            layer.previous.numpy()
        model.train_on_batch(x, t)
        out = x @ layer.get_weights()[0] + previous
        np.testing.assert_allclose(model._gradients()[0], x.T @ (2 * (out - t) / out.size),
                                   rtol=1e-5, atol=1e-6)


def test_custom_layer_step_by_hand_matches_the_tape():
    """A custom layer driven by hand (CallContext, as a plan drives it): the weight
    gradients land in ctx.grads, the input gradient is returned, and both equal a
    GradientTape's over layer(x)."""
    rng = np.random.default_rng(10)
    layer = CustomDense(4)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    layer(x)
    dy = rng.standard_normal((5, 4)).astype(np.float32)
    ctx = CallContext(layer)
    np.testing.assert_array_equal(ctx.forward(x, training=True), layer(x).numpy())
    dx = ctx.backward(dy, need_input_grad=True)
    xt = wrap(x)
    with GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    expected = tape.gradient(y, [xt] + layer.trainable_weights, output_gradients=dy)
    np.testing.assert_allclose(dx, expected[0], rtol=1e-6, atol=1e-6)
    for got, want in zip(ctx.grads, expected[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    ctx.forward(x, training=True)
    assert ctx.backward(dy, need_input_grad=False) is None
