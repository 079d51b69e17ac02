"""Models as graphs: the functional API, nested and shared layers, freezing, several inputs
and outputs, configs, the execution plan's fusions, and calls from several threads."""
import json
import sys
import threading

import numpy as np
import pytest

import minidl
from minidl import Input, Model, layers, optimizers
from minidl._ref.gradcheck import numeric_grad
from minidl.callbacks import Callback
from minidl.initializers import Constant
from minidl.layers import (Activation, Add, BatchNormalization, CallContext, Concatenate,
                           Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten,
                           GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D, ReLU,
                           Softmax)
from minidl.layers.node import SymbolicTensor
from minidl.models import Sequential, clone_model, model_from_json, rewrites
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = dict(dtype="float64")


def _data(n=32, features=6, classes=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(dtype), rng.integers(0, classes, n)


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# ---- building graphs ----

def test_input_and_layer_calls_record_a_graph():
    inputs = Input((6,), name="features")
    assert isinstance(inputs, SymbolicTensor) and inputs.shape == (None, 6)
    assert inputs.dtype == "float32"
    dense = Dense(4, name="hidden")
    hidden = dense(inputs)
    assert hidden.shape == (None, 4) and dense.input is inputs and dense.output is hidden
    outputs = Dense(2, name="out")(hidden)
    model = Model(inputs, outputs, name="tiny")
    assert model.inputs == [inputs] and model.outputs == [outputs]
    assert [layer.name for layer in model.layers] == ["features", "hidden", "out"]
    assert model.get_layer("hidden") is dense and model.get_layer(index=1) is dense
    assert model.input_shape == (None, 6) and model.output_shape == (None, 2)
    assert Input((None, 8)).shape == (None, None, 8)
    assert Input(batch_shape=(4, 3)).shape == (4, 3)
    assert Input((3,), dtype="int32").dtype == "int32"


def test_feature_extraction_model_shares_layers():
    inputs = Input((6,))
    h1 = Dense(5, activation="relu")(inputs)
    h2 = Dense(4, activation="relu")(h1)
    out = Dense(3, activation="softmax")(h2)
    model = Model(inputs, out)
    extractor = Model(model.inputs, [layer.output for layer in model.layers[1:]])
    x, _ = _data()
    features = extractor.predict(x, verbose=0)
    assert [f.shape for f in features] == [(32, 5), (32, 4), (32, 3)]
    np.testing.assert_array_equal(features[-1], model.predict(x, verbose=0))


def test_model_call_on_arrays_and_on_tensors():
    inner = Sequential([Input((6,)), Dense(4, activation="tanh")], name="inner")
    x, _ = _data()
    np.testing.assert_array_equal(inner(x), inner.predict(x, verbose=0))
    inputs = Input((6,))
    outer = Model(inputs, Dense(2)(inner(inputs)))
    assert outer.output_shape == (None, 2) and inner in outer.layers


@pytest.mark.parametrize("make, match", [
    (lambda: Dense(3)(Input((4, None))), r"Layer 'dense\w*' \(Dense\) cannot take inputs of "
                                         r"shape \(None, 4, None\)"),
    (lambda: Conv2D(2, 3)(Input((8,))), r"cannot take inputs of shape \(None, 8\).*4-D"),
    (lambda: Add()([Input((3,)), Input((4,))]), r"cannot combine inputs of shapes"),
    (lambda: Concatenate(axis=1)([Input((3, 2)), Input((4, 5))]),
     r"equal shapes except along axis 1"),
    (lambda: Model(np.zeros((2, 3)), Dense(1)(Input((3,)))),
     r"Model inputs must be symbolic tensors.*ndarray"),
    (lambda: Dense(2)([Input((3,)), np.zeros((1, 3))]), r"mix of symbolic tensors and ndarray"),
])
def test_bad_graphs_get_one_clear_sentence(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_disconnected_graph_names_the_tensor():
    a, b = Input((3,), name="a_in"), Input((3,), name="b_in")
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match=r"Graph disconnected.*Input layer 'b_in'"):
        Model(a, out)


def test_duplicate_layer_names_are_refused():
    inputs = Input((3,))
    out = Dense(2, name="twin")(Dense(3, name="twin")(inputs))
    with pytest.raises(ValueError, match="The name 'twin' is used by two layers"):
        Model(inputs, out)


def test_unique_automatic_names():
    names = [Dense(1).name for _ in range(3)]
    assert len(set(names)) == 3 and all(n.startswith("dense") for n in names)
    assert Sequential().name.startswith("sequential")
    inputs = Input((2,))
    assert Model(inputs, Dense(1)(inputs)).name.startswith("functional")


def test_dict_inputs_and_missing_keys():
    a, b = Input((3,), name="left"), Input((2,), name="right")
    model = Model({"left": a, "right": b},
                  Dense(1)(layers.concatenate([a, b])))
    model.compile("sgd", "mse")
    x = {"left": np.ones((4, 3), np.float32), "right": np.ones((4, 2), np.float32)}
    assert model.predict(x, verbose=0).shape == (4, 1)
    with pytest.raises(ValueError, match=r"x is a dict without the key\(s\) \['right'\]"):
        model.predict({"left": x["left"]}, verbose=0)
    with pytest.raises(ValueError, match=r"pass x as a list or a dict of 2 arrays"):
        model.predict(x["left"], verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.predict({"left": x["left"], "right": x["right"][:2]}, verbose=0)


# ---- gradients through graphs (float64, central differences) ----

def _check_model_gradients(model, x, y, loss="mse"):
    """fit one step with a zero learning rate, then compare the plan's gradients with
    central differences of the loss with respect to every trainable weight."""
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss=loss)
    n = len(y) if not isinstance(y, list) else len(y[0])
    model.fit(x, y, batch_size=n, epochs=1, shuffle=False, verbose=0)
    grads = model._gradients()

    def loss_value():
        return model.evaluate(x, y, batch_size=n, verbose=0)

    assert grads, "the model has trainable weights"
    for weight, grad in zip(model.trainable_weights, grads):
        np.testing.assert_allclose(grad, numeric_grad(loss_value, weight), rtol=1e-6,
                                   atol=1e-8)


def _graph_cases():
    def skip():
        inputs = Input((4,))
        h = Dense(5, activation="tanh", **F64)(inputs)
        h2 = Dense(5, **F64)(h)
        out = Dense(2, **F64)(ReLU(**F64)(Add(**F64)([h, h2])))
        return Model(inputs, out)

    def concat():
        inputs = Input((4,))
        a = Dense(3, activation="sigmoid", **F64)(inputs)
        b = Dense(2, activation="tanh", **F64)(inputs)
        return Model(inputs, Dense(2, **F64)(Concatenate(**F64)([a, b, inputs])))

    def shared():
        inputs = Input((4,))
        twice = Dense(4, activation="tanh", **F64)
        out = Dense(2, **F64)(layers.multiply([twice(inputs), twice(twice(inputs))],
                                              dtype="float64"))
        return Model(inputs, out)

    def nested():
        inner = Sequential([Input((4,)), Dense(3, activation="tanh", **F64),
                            Dense(3, activation="sigmoid", **F64)])
        inputs = Input((4,))
        middle = Model(inputs, Dense(3, activation="tanh", **F64)(inner(inputs)))
        outer_in = Input((4,))
        return Model(outer_in, Dense(2, **F64)(layers.subtract([middle(outer_in),
                                                                inner(outer_in)],
                                                               dtype="float64")))

    def frozen():
        inputs = Input((4,))
        first = Dense(3, activation="tanh", **F64)
        frozen_layer = Dense(3, activation="tanh", trainable=False, **F64)
        return Model(inputs, Dense(2, **F64)(frozen_layer(first(inputs))))

    return {"skip": skip, "concatenate": concat, "shared_layer": shared,
            "nested_model": nested, "frozen_layer": frozen}


@pytest.mark.parametrize("name", list(_graph_cases()))
def test_gradients_through_graphs(name):
    set_random_seed(11)
    model = _graph_cases()[name]()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    y = rng.standard_normal((6, 2))
    _check_model_gradients(model, x, y)


def test_frozen_layer_gets_no_update_and_no_gradient():
    set_random_seed(2)
    model = _graph_cases()["frozen_layer"]()
    frozen = model.layers[2]
    assert not frozen.trainable
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 2
    before = frozen.get_weights()
    x, _ = _data(features=4, dtype=np.float64)
    model.compile("adam", "mse")
    model.fit(x, np.zeros((32, 2)), epochs=2, verbose=0)
    assert _same(frozen.get_weights(), before)


def test_shared_layer_gradient_is_the_sum_of_its_calls():
    set_random_seed(4)
    inputs = Input((3,), dtype="float64")
    shared = Dense(3, use_bias=False, **F64)
    model = Model(inputs, layers.add([shared(inputs), shared(inputs)], dtype="float64"))
    model.compile(optimizers.SGD(learning_rate=0.0), "mse")
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = np.zeros((5, 3))
    model.fit(x, y, batch_size=5, shuffle=False, verbose=0)
    # d/dW mean((2 x W)^2) = 2 * (2 x)^T (2 x W) / size: twice one call's gradient
    expected = 2 * (2 * x).T @ (2 * x @ shared.kernel) / y.size
    np.testing.assert_allclose(model._gradients()[0], expected, rtol=1e-12)


# ---- freezing, nesting, BatchNormalization ----

def test_frozen_nested_model_runs_batch_norm_in_inference():
    set_random_seed(3)
    base = Sequential([Input((6,)), Dense(8), BatchNormalization()], name="base")
    base.trainable = False
    inputs = Input((6,))
    model = Model(inputs, Dense(3, activation="softmax")(base(inputs)))
    bn = base.layers[1]
    assert not bn.trainable and all(not layer.trainable for layer in base.layers)
    moving = [w.copy() for w in bn.non_trainable_params]
    frozen = base.get_weights()
    x, y = _data()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    assert _same(base.get_weights(), frozen)
    assert _same(bn.non_trainable_params, moving)
    base.trainable = True            # unfrozen: the next fit trains it and its statistics
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert not _same(bn.non_trainable_params, moving)


def test_training_false_call_keeps_batch_norm_statistics():
    set_random_seed(3)
    base = Sequential([Input((6,)), Dense(8), BatchNormalization()])
    inputs = Input((6,))
    model = Model(inputs, Dense(3, activation="softmax")(base(inputs, training=False)))
    bn = base.layers[1]
    moving = [w.copy() for w in bn.non_trainable_params]
    x, y = _data()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert _same(bn.non_trainable_params, moving)       # statistics untouched
    assert not _same(base.layers[0].get_weights(),
                     Sequential([Input((6,)), Dense(8)]).layers[0].get_weights())


def test_models_nest_at_any_depth_and_train():
    set_random_seed(6)
    level1 = Sequential([Input((6,)), Dense(8, activation="relu")])
    i2 = Input((6,))
    level2 = Model(i2, Dense(8, activation="relu")(level1(i2)))
    level3 = Sequential([level2, Dense(3, activation="softmax")])
    x, y = _data(n=64)
    level3.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = level3.fit(x, y, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    np.testing.assert_array_equal(level3(x), level3.predict(x, verbose=0))


def test_sequential_of_a_model_and_a_softmax_layer():
    """The TensorFlow tutorials' `Sequential([model, layers.Softmax()])`."""
    set_random_seed(1)
    logits = Sequential([Input((6,)), Dense(3)])
    x, y = _data()
    probabilities = Sequential([logits, Softmax()])
    out = probabilities.predict(x, verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    z = logits.predict(x, verbose=0)
    np.testing.assert_allclose(out, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-5)


def test_sequential_pop_and_losses():
    model = Sequential([Input((4,)), Dense(3, kernel_regularizer="l2"),
                        Dense(2, activity_regularizer="l1")])
    x = np.ones((5, 4), np.float32)
    model(x)
    assert len(model.losses) == 2 and all(v > 0 for v in model.losses)
    top = model.pop()
    assert isinstance(top, Dense) and len(model.layers) == 1
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="no layers"):
        Sequential().pop()


# ---- several outputs ----

def _two_heads():
    set_random_seed(8)
    inputs = Input((6,))
    h = Dense(8, activation="relu")(inputs)
    return Model(inputs, [Dense(3, activation="softmax", name="cls")(h),
                          Dense(1, name="reg")(h)])


def test_multi_output_training_as_keras():
    x, y = _data()
    target = x[:, :1]
    model = _two_heads()
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
    history = model.fit(x, {"cls": y, "reg": target}, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "cls_loss", "reg_loss", "cls_accuracy"]
    logs = model.evaluate(x, [y, target], verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["cls_loss"] + 0.5 * logs["reg_loss"], rel=1e-6)
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, list) and predictions[1].shape == (32, 1)
    # a list of losses, weights and metrics per output
    model = _two_heads()
    model.compile("adam", loss=["sparse_categorical_crossentropy", None],
                  metrics=[["accuracy"], []])
    history = model.fit(x, [y, None], epochs=1, verbose=0, validation_data=(x, [y, None]))
    assert list(history.history) == ["loss", "cls_accuracy", "val_loss", "val_cls_accuracy"]


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": ["mse"]}, r"one entry per output; received 1"),
    ({"loss": {"nope": "mse"}}, r"key\(s\) \['nope'\] do not name any model output"),
    ({"loss": "mse", "metrics": ["mae"]}, r"one entry \(a metric or a list of metrics\)"),
    ({"loss": "mse", "loss_weights": 0.5}, r"loss_weights must be a list or dict"),
])
def test_multi_output_compile_errors(kwargs, match):
    model = _two_heads()
    x, y = _data()
    with pytest.raises(ValueError, match=match):
        model.compile("sgd", **kwargs)
        model.fit(x, [y, x[:, :1]], verbose=0)


# ---- merge and activation layers ----

def _ctx_gradients(layer, xs, w):
    """Backward of ``layer`` on float64 inputs ``xs`` against central differences of
    sum(layer(xs) * w)."""
    ctx = CallContext(layer)
    ctx.forward(xs, training=True)
    dxs = ctx.backward(w.copy(), need_input_grad=[True] * len(xs))

    def scalar():
        return float(np.sum(layer(xs) * w))

    for x, dx in zip(xs, dxs):
        np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls, op", [
    (layers.Add, lambda a, b: a + b), (layers.Subtract, lambda a, b: a - b),
    (layers.Multiply, lambda a, b: a * b), (layers.Average, lambda a, b: (a + b) / 2),
    (layers.Maximum, np.maximum), (layers.Minimum, np.minimum)])
@pytest.mark.parametrize("shapes", [((4, 3), (4, 3)), ((4, 3), (4, 1))], ids=["same", "bcast"])
def test_elementwise_merges(cls, op, shapes):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    layer = cls(**F64)
    np.testing.assert_allclose(layer([a, b]), op(a, b), rtol=1e-12)
    _ctx_gradients(cls(**F64), [a, b], rng.standard_normal(shapes[0]))
    assert cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_concatenate_and_dot():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 5, 4))
    np.testing.assert_array_equal(layers.Concatenate(axis=1, **F64)([a, b]),
                                  np.concatenate([a, b], axis=1))
    _ctx_gradients(layers.Concatenate(axis=1, **F64), [a, b], rng.standard_normal((3, 7, 4)))
    dot = layers.Dot(axes=2, **F64)
    np.testing.assert_allclose(dot([a, b]), np.einsum("bik,bjk->bij", a, b), rtol=1e-12)
    _ctx_gradients(layers.Dot(axes=2, **F64), [a, b], rng.standard_normal((3, 2, 5)))
    u, v = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    cosine = layers.Dot(axes=1, normalize=True, **F64)([u, v])
    expected = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(cosine[:, 0], expected, rtol=1e-12)
    _ctx_gradients(layers.Dot(axes=1, normalize=True, **F64), [u, v],
                   rng.standard_normal((4, 1)))
    assert layers.dot([Input((2, 4)), Input((5, 4))], axes=2).shape == (None, 2, 5)


def test_activation_layers_have_keras_arguments_and_values():
    x = np.linspace(-3, 3, 13).reshape(1, 13)
    np.testing.assert_allclose(ReLU(max_value=2.0, threshold=0.5, negative_slope=0.1)(x),
                               np.where(x >= 2, 2, np.where(x > 0.5, x, 0.1 * (x - 0.5))),
                               atol=1e-6)
    np.testing.assert_allclose(layers.LeakyReLU()(x), np.where(x > 0, x, 0.3 * x), atol=1e-6)
    np.testing.assert_allclose(layers.ELU(alpha=0.5)(x), np.where(x > 0, x, 0.5 * np.expm1(x)),
                               atol=1e-6)
    np.testing.assert_allclose(Softmax()(x), np.exp(x) / np.exp(x).sum(), rtol=1e-5)
    np.testing.assert_array_equal(layers.Identity()(x), x)
    assert layers.LeakyReLU().get_config()["negative_slope"] == 0.3
    assert ReLU(max_value=6.0).get_config()["max_value"] == 6.0
    prelu = layers.PReLU(alpha_initializer="constant", shared_axes=[1, 2], **F64)
    images = np.random.default_rng(3).standard_normal((2, 3, 3, 4))
    assert prelu.get_config()["shared_axes"] == [1, 2]
    prelu(images)
    assert prelu.alpha.shape == (1, 1, 4)
    ctx = CallContext(prelu)
    y = ctx.forward(images, training=True)
    w = np.random.default_rng(4).standard_normal(y.shape)
    dx = ctx.backward(w.copy())

    def scalar():
        return float(np.sum(prelu(images) * w))

    np.testing.assert_allclose(dx, numeric_grad(scalar, images), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ctx.grads[0], numeric_grad(scalar, prelu.alpha), rtol=1e-6,
                               atol=1e-8)


# ---- configs, saving, cloning, summary ----

def _residual_model(seed=5):
    set_random_seed(seed)
    inputs = Input((8, 8, 1))
    x = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = Conv2D(4, 3, padding="same")(x)
    y = BatchNormalization()(y)
    x = ReLU()(Add()([x, y]))
    x = GlobalAveragePooling2D()(x)
    return Model(inputs, Dense(3, activation="softmax")(x), name="resnet")


def test_functional_config_round_trip_and_keras_layout():
    model = _residual_model()
    config = model.get_config()
    assert set(config) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    add = next(spec for spec in config["layers"] if spec["class_name"] == "Add")
    args = add["inbound_nodes"][0]["args"][0]
    assert [t["class_name"] for t in args] == ["__keras_tensor__"] * 2
    assert args[0]["config"]["keras_history"][1:] == [0, 0]
    clone = Model.from_config(json.loads(json.dumps(config)))
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    again = model_from_json(model.to_json())
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_nested_and_shared_configs_round_trip():
    inner = Sequential([Input((4,)), Dense(3, activation="tanh")], name="inner")
    inputs = Input((4,))
    shared = Dense(4, name="shared")
    merged = layers.add([shared(inputs), shared(Dense(4, name="pre")(inputs))])
    model = Model(inputs, [inner(inputs), merged], name="outer")
    clone = Model.from_config(json.loads(json.dumps(model.get_config())))
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(1).random((3, 4)).astype(np.float32)
    for a, b in zip(clone.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    assert len(clone.get_layer("shared")._inbound_nodes) == 2


def test_clone_model_makes_new_layers():
    model = _residual_model()
    clone = clone_model(model)
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    sequential = Sequential([Input((3,)), Dense(2)])
    copy = clone_model(sequential, clone_function=lambda layer: Dense(2, name="renamed"))
    assert copy.layers[0].name == "renamed"


def test_summary_shows_connections():
    lines = []
    _residual_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "add (Add)" in text or "Add)" in text
    assert "[0][0]" in text and "Total params" in text


def test_save_and_load_functional_model(tmp_path):
    model = _residual_model()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(2).random((16, 8, 8, 1)).astype(np.float32)
    y = np.arange(16) % 3
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "resnet.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert _same(loaded.get_weights(), model.get_weights())


# ---- the plan's fusions give the same bits ----

def _residual_block_model():
    inputs = Input((6, 6, 2))
    x = ReLU()(BatchNormalization()(Conv2D(4, 3, padding="same")(inputs)))
    y = BatchNormalization()(Conv2D(4, 3, padding="same")(ReLU()(BatchNormalization()(
        Conv2D(4, 3, padding="same")(x)))))
    x = ReLU()(Add()([x, y]))
    return Model(inputs, Dense(3, activation="softmax")(GlobalAveragePooling2D()(x)))


def _bn_relu6_model():
    """MobileNetV2's pairs: BatchNormalization then ReLU6, with activations large enough to
    reach the cap of 6 (scaled input), whose gradient the fused kernel gates out too."""
    inputs = Input((6, 6, 2))
    x = ReLU(max_value=6.0)(BatchNormalization(gamma_initializer=Constant(4.0))(
        Conv2D(8, 3, padding="same")(inputs)))
    x = ReLU(6.0)(BatchNormalization()(DepthwiseConv2D(3, padding="same")(x)))
    return Model(inputs, Dense(3, activation="softmax")(GlobalAveragePooling2D()(x)))


def test_batch_normalization_fuses_relu6_and_clips_at_6():
    model = _bn_relu6_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    plan = model._plan(model._compiled.losses)
    fused = [step for step in plan.steps if isinstance(step, rewrites.FusedActivationStep)
             and isinstance(step.first.layer, BatchNormalization)]
    assert len(fused) == 2
    x = np.random.default_rng(1).random((4, 6, 6, 2)).astype(np.float32)
    features = Model(model.inputs, model.layers[3].output)
    out = features(x, training=True).numpy()   # (unfused: an eager call)
    assert out.max() == 6.0 and out.min() == 0.0   # both ends of ReLU6 are reached


def _train_bits(make, monkeypatch, without=()):
    """The weights after two epochs, with the rewrite rules in ``without`` left out."""
    monkeypatch.setattr(rewrites, "RULES", [rule for rule in rewrites.RULES
                                            if rule.__name__ not in without])
    set_random_seed(9)
    model = make()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    shape = model.inputs[0].shape[1:]
    x = rng.random((24,) + shape).astype(np.float32)
    y = rng.integers(0, 3, 24)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    monkeypatch.undo()
    return model.get_weights()


@pytest.mark.parametrize("make, rule", [
    (lambda: Sequential([Input((6,)), Dense(8), Activation("relu"), Dense(3), Softmax()]),
     "activation_into_layer"),
    (lambda: Sequential([Input((6,)), Dense(8), ReLU(), Dense(3, activation="softmax")]),
     "activation_into_layer"),
    (lambda: Sequential([Input((6,)), Dense(8, activation="tanh"), BatchNormalization(),
                         Activation("relu"), Dense(3), Activation("softmax")]),
     "activation_into_layer"),
    (lambda: Sequential([Input((8, 8, 2)), Conv2D(4, 1), Conv2D(4, 3, activation="relu"),
                         MaxPooling2D(), Flatten(), Dense(3, activation="softmax")]),
     "relu_then_max_pool"),
    (lambda: Sequential([Input((8, 8, 2)), Conv2D(4, 1), Conv2D(4, 3, activation="relu"),
                         GlobalMaxPooling2D(), Dense(3, activation="softmax")]),
     "relu_then_max_pool"),
    (lambda: Sequential([Input((6,)), Dense(8), BatchNormalization(), ReLU(),
                         Dense(3, activation="softmax")]),
     "activation_into_layer"),
    (lambda: _residual_block_model(), "activation_into_layer"),
    (lambda: _bn_relu6_model(), "activation_into_layer"),
    (lambda: Sequential([Input((5, 4)), Dense(6), BatchNormalization(axis=1),
                         Activation("relu6"), Flatten(), Dense(3, activation="softmax")]),
     "activation_into_layer"),
], ids=["dense_relu_softmax_layers", "relu_layer", "bn_then_activations",
        "conv_relu_pool", "conv_relu_global_max", "bn_relu", "add_relu_residual",
        "bn_relu6_conv", "bn_relu6_inner_axis"])
def test_fusions_give_the_same_bits(make, rule, monkeypatch):
    assert _same(_train_bits(make, monkeypatch), _train_bits(make, monkeypatch, (rule,)))


def test_fused_head_and_direct_pooling_match_closely(monkeypatch):
    """The softmax + cross-entropy head computes probs - onehot directly, and a first
    layer pooled directly sums its gradient per image: both equal the unfused steps up to
    rounding."""
    def make():
        return Sequential([Input((8, 8, 1)), Conv2D(4, 3, activation="relu"), MaxPooling2D(),
                           Flatten(), Dense(3, activation="softmax")])
    set_random_seed(9)
    model = make()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.train_on_batch(np.zeros((2, 8, 8, 1), np.float32), np.zeros(2, int))
    step = model._train_plan.steps[0]
    assert type(step).__name__ == "ReluMaxPoolStep" and step.direct
    assert model._train_plan.fused_heads == [True]
    fused = _train_bits(make, monkeypatch)
    plain = _train_bits(make, monkeypatch, ("relu_then_max_pool", "head_with_loss"))
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


# ---- threads ----

def test_fit_beside_predict_and_call_with_a_tiny_switch_interval():
    def make():
        set_random_seed(12)
        inputs = Input((6,))
        h = Dense(16, activation="relu")(inputs)
        h = BatchNormalization()(h)
        h = Dropout(0.3)(h)
        skip = Dense(16)(inputs)
        out = Dense(3, activation="softmax")(layers.add([h, skip]))
        model = Model(inputs, out)
        model.compile("adam", "sparse_categorical_crossentropy")
        return model

    x, y = _data(n=96)
    alone = make()
    history = alone.fit(x, y, batch_size=8, epochs=2, verbose=0)
    expected_predictions = alone.predict(x[:5], verbose=0)
    model = make()
    stop, seen = threading.Event(), []

    def infer():
        while not stop.is_set():
            seen.append(model.predict(x[:5], verbose=0))
            seen.append(model(x[:3]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=infer) for _ in range(2)]
        for thread in threads:
            thread.start()
        raced = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert seen and raced.history == history.history
    assert _same(model.get_weights(), alone.get_weights())
    np.testing.assert_array_equal(model.predict(x[:5], verbose=0), expected_predictions)


class _Count(Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


# ---- a residual CNN against PyTorch ----

def test_residual_cnn_matches_pytorch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    set_random_seed(21)
    inputs = Input((8, 8, 2), dtype="float64")
    stem = Conv2D(4, 3, padding="same", activation="relu", **F64)
    conv_a = Conv2D(4, 3, padding="same", **F64)
    bn_a = BatchNormalization(**F64)
    conv_b = Conv2D(4, 3, padding="same", **F64)
    bn_b = BatchNormalization(**F64)
    head = Dense(3, activation="softmax", **F64)
    x0 = stem(inputs)
    y = bn_b(conv_b(ReLU(**F64)(bn_a(conv_a(x0)))))
    z = GlobalAveragePooling2D(**F64)(ReLU(**F64)(Add(**F64)([x0, y])))
    model = Model(inputs, head(z))
    model.compile(optimizers.Adam(learning_rate=0.01, epsilon=1e-12),
                  "sparse_categorical_crossentropy")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(2, 4, 3, padding=1)
            self.conv_a, self.bn_a = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, 1e-3, 0.01)
            self.conv_b, self.bn_b = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, 1e-3, 0.01)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            x0 = torch.relu(self.stem(x))
            y = self.bn_b(self.conv_b(torch.relu(self.bn_a(self.conv_a(x0)))))
            return self.head(torch.relu(x0 + y).mean(dim=(2, 3)))

    net = Net().double()
    with torch.no_grad():
        for conv, layer in ((net.stem, stem), (net.conv_a, conv_a), (net.conv_b, conv_b)):
            kernel = np.asarray(layer.kernel).transpose(3, 2, 0, 1)
            conv.weight.copy_(torch.from_numpy(kernel.copy()))
            conv.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
        net.head.weight.copy_(torch.from_numpy(np.asarray(head.kernel).T.copy()))
        net.head.bias.copy_(torch.from_numpy(np.asarray(head.bias)))
    # Keras adds epsilon to sqrt(v), PyTorch to sqrt(v / (1 - beta_2^t)): a tiny one
    # makes the two updates agree.
    adam = torch.optim.Adam(net.parameters(), lr=0.01, eps=1e-12)

    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 8, 8, 2))
    labels = rng.integers(0, 3, 6)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    for step in range(3):
        loss = model.train_on_batch(x, labels)
        adam.zero_grad()
        torch_loss = nn.functional.cross_entropy(net(xt), torch.from_numpy(labels))
        torch_loss.backward()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-5)
        if step == 0:
            ours = dict(zip(map(id, model.trainable_weights), model._gradients()))
            for conv, layer in ((net.stem, stem), (net.conv_a, conv_a), (net.conv_b, conv_b)):
                np.testing.assert_allclose(
                    ours[id(layer.kernel)],
                    conv.weight.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-5, atol=1e-9)
                np.testing.assert_allclose(ours[id(layer.bias)], conv.bias.grad.numpy(),
                                           rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(ours[id(head.kernel)], net.head.weight.grad.numpy().T,
                                       rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(ours[id(bn_a.gamma)], net.bn_a.weight.grad.numpy(),
                                       rtol=1e-5, atol=1e-9)
        adam.step()
    for conv, layer in ((net.stem, stem), (net.conv_a, conv_a), (net.conv_b, conv_b)):
        np.testing.assert_allclose(layer.kernel, conv.weight.detach().numpy()
                                   .transpose(2, 3, 1, 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(head.kernel, net.head.weight.detach().numpy().T, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(bn_b.moving_mean, net.bn_b.running_mean.numpy(), rtol=1e-5,
                               atol=1e-9)
