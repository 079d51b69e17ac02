"""layers.Lambda: a function as a layer, eagerly, in Sequential and functional models, in
training; its output shape inferred or given; and saving: models with a Lambda save, and
load where the program gives the function (registered or in custom_objects); otherwise
loading one is refused (minidl never loads code from a file) with a message saying what to
do instead."""
import json
import os
import re

import numpy as np
import pytest

import minidl
from minidl import GradientTape, Input, Model, Sequential, ops, optimizers
from minidl.layers import Activation, Dense, Lambda
from minidl.layers.lambda_layer import LambdaLoadingError
from minidl.models import clone_model, load_model, model_from_json
from minidl.saving import InvalidModelFileError
from minidl.utils import set_random_seed

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(n=6, features=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, features)).astype(np.float32)


def half_square(t):
    return ops.square(t) * 0.5


# ---- calls ----

def test_eager_call_runs_the_function_with_its_arguments():
    x = _x()
    layer = Lambda(half_square)
    out = layer(x)
    assert isinstance(out, minidl.Tensor)
    np.testing.assert_allclose(out.numpy(), x ** 2 * 0.5, rtol=1e-6)
    scaled = Lambda(lambda t, scale, shift: t * scale + shift,
                    arguments={"scale": 3.0, "shift": -1.0})
    np.testing.assert_allclose(scaled(x).numpy(), x * 3.0 - 1.0, rtol=1e-6)


def test_training_reaches_a_function_that_takes_it():
    seen = []

    def record(t, training=None):
        seen.append(training)
        return t * (2.0 if training else 1.0)
    layer = Lambda(record)
    x = _x()
    np.testing.assert_allclose(layer(x, training=True).numpy(), 2 * x)
    np.testing.assert_allclose(layer(x).numpy(), x)
    assert seen == [True, False]


def test_lambda_in_sequential_and_functional_models_predicts_the_function():
    x = _x(8)
    set_random_seed(0)
    model = Sequential([Input((4,)), Dense(3),
                        Lambda(lambda t: ops.sum(t, axis=-1, keepdims=True) * 2.0)])
    assert model.output_shape == (None, 1)
    dense = model.layers[0]
    want = (x @ dense.get_weights()[0] + dense.get_weights()[1]).sum(-1, keepdims=True) * 2
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)

    a, b = Input((4,)), Input((2,))
    joined = Lambda(lambda ts: ops.concatenate([ts[0], ops.square(ts[1])], axis=-1))([a, b])
    assert joined.shape == (None, 6)
    functional = Model([a, b], joined)
    xb = _x(8, 2, seed=1)
    np.testing.assert_allclose(functional.predict([x, xb], verbose=0),
                               np.concatenate([x, xb ** 2], -1), rtol=1e-6)


# ---- output shapes ----

def test_output_shape_and_dtype_are_inferred_from_the_function():
    x = Input((None, 5))
    assert Lambda(lambda t: t[:, :, :2])(x).shape == (None, None, 2)
    assert Lambda(lambda t: ops.mean(t, axis=1))(x).shape == (None, 5)
    cast = Lambda(lambda t: ops.cast(t > 0, "int32"))(Input((3,)))
    assert (cast.shape, cast.dtype) == ((None, 3), "int32")
    layer = Lambda(lambda t: ops.expand_dims(t, -1))
    assert layer.compute_output_shape((3,)) == (3, 1)


def test_explicit_output_shape_is_used_without_running_the_function():
    calls = []

    def function(t):
        calls.append(t.shape)
        return ops.reshape(t, (-1, 2, 2))
    tuple_shape = Lambda(function, output_shape=(2, 2))
    assert tuple_shape(Input((4,))).shape == (None, 2, 2)
    callable_shape = Lambda(function, output_shape=lambda s: (s[0], 2, 2))
    assert callable_shape(Input((4,))).shape == (None, 2, 2)
    assert callable_shape.compute_output_shape((4,)) == (2, 2)
    assert calls == []
    model = Sequential([Input((4,)), tuple_shape])
    assert model.predict(_x(3), verbose=0).shape == (3, 2, 2) and calls == [(3, 4)]


def test_summary_shows_lambda_output_shapes(capsys):
    model = Sequential([Input((4,)), Dense(3), Lambda(lambda t: t[:, :1], name="first")])
    model.summary()
    assert re.search(r"first \(Lambda\) +\(None, 1\) +0", capsys.readouterr().out)


# ---- training ----

def test_lambda_trains_as_the_built_in_layer():
    def build(use_lambda):
        set_random_seed(2)
        middle = Lambda(lambda t: ops.relu(t)) if use_lambda else Activation("relu")
        model = Sequential([Input((5,)), Dense(6), middle, Dense(2)])
        model.compile(optimizers.SGD(0.05), "mse")
        return model
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 5)).astype(np.float32), rng.standard_normal((64, 2))
    with_lambda, built_in = build(True), build(False)
    h1 = with_lambda.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    h2 = built_in.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    assert h1.history["loss"][-1] < h1.history["loss"][0]
    for p, q in zip(with_lambda.get_weights(), built_in.get_weights()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


def test_lambda_gradients_match_a_hand_written_tape_step():
    set_random_seed(4)
    d1, d2 = Dense(3, dtype="float64"), Dense(1, dtype="float64")

    def mix(ts, power):
        return ops.concatenate([ts[0] ** power, ops.tanh(ts[1])], axis=-1)
    a = Input((2,), dtype="float64")
    h = d1(a)
    model = Model(a, d2(Lambda(mix, arguments={"power": 2}, dtype="float64")([h, a])))
    rng = np.random.default_rng(3)
    xs, ys = rng.standard_normal((8, 2)), rng.standard_normal((8, 1))
    before = model.get_weights()
    with GradientTape() as tape:
        loss = ops.mean(ops.square(d2(mix([d1(xs), xs], 2)) - ys))
    grads = tape.gradient(loss, model.trainable_weights)
    model.compile(optimizers.SGD(0.1), "mse")
    model.train_on_batch(xs, ys)
    for w0, g, w1 in zip(before, grads, model.get_weights()):
        np.testing.assert_allclose(w1, w0 - 0.1 * g, rtol=1e-10, atol=1e-12)


# ---- bad arguments ----

def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(TypeError, match="function must be callable; received function=3"):
        Lambda(3)
    with pytest.raises(ValueError, match="mask must be None"):
        Lambda(half_square, mask=lambda x, m: m)
    with pytest.raises(TypeError, match="arguments must be a dict"):
        Lambda(half_square, arguments=[1])
    with pytest.raises(ValueError, match="output_shape must be a tuple of positive ints"):
        Lambda(half_square, output_shape=(0, 2))
    with pytest.raises(ValueError, match=r"Layer 'bad' \(Lambda\) cannot take inputs of shape "
                                         r"\(None, 3\)"):
        Lambda(lambda t: ops.add(t, np.ones(4, np.float32)), name="bad")(Input((3,)))
    with pytest.raises(ValueError, match="returns 2 tensors"):
        Lambda(lambda t: [t, t])(Input((3,)))


# ---- saving ----

def _lambda_model(seed=7):
    set_random_seed(seed)
    a = Input((4,))
    h = Dense(3, name="hidden")(a)
    x = Lambda(half_square, name="half_square")(h)
    return Model(a, Dense(2, name="out")(x))


def test_config_names_the_function():
    model = _lambda_model()
    spec = json.loads(model.to_json())["config"]["layers"][2]
    assert spec["class_name"] == "Lambda"
    assert spec["config"]["function"].endswith("test_lambda.half_square")
    layer = Lambda(lambda t, k: t * k, arguments={"k": 2.0, "table": np.ones(2)},
                   output_shape=(4,))
    config = layer.get_config()
    assert config["arguments"]["k"] == 2.0
    assert config["arguments"]["table"]["class_name"] == "__repr__"
    assert config["arguments"]["table"]["config"].startswith("array(")
    assert config["output_shape"] == [4] and config["function"].endswith("<lambda>")
    json.dumps(config)


def test_loading_a_model_file_with_a_lambda_is_refused_and_its_weights_load(tmp_path):
    model = _lambda_model()
    x = _x()
    want = model.predict(x, verbose=0)
    path = os.path.join(tmp_path, "lambda.minidl")
    model.save(path)
    with pytest.raises(InvalidModelFileError) as info:
        load_model(path)
    message = str(info.value)
    for part in ("Cannot load", "'half_square'", "test_lambda.half_square", "Python code",
                 "never loads", "Rebuild the model in code", "model.load_weights(path)"):
        assert part in message
    assert "does not describe a valid model" not in message
    rebuilt = _lambda_model(seed=8)   # other weights, until load_weights
    assert not np.allclose(rebuilt.predict(x, verbose=0), want)
    rebuilt.load_weights(path)
    np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), want)


@pytest.mark.parametrize("rebuild", [
    lambda m: model_from_json(m.to_json()),
    lambda m: Model.from_config(m.get_config()),
    lambda m: minidl.layers.get({"class_name": "Lambda", "config": m.layers[2].get_config()}),
    lambda m: clone_model(m),
    lambda m: model_from_json(Sequential([Input((3,)), Lambda(half_square)]).to_json()),
])
def test_every_way_of_rebuilding_a_lambda_from_a_config_is_refused(rebuild):
    with pytest.raises(LambdaLoadingError, match="never loads from a file.*load_weights"):
        rebuild(_lambda_model())


@pytest.mark.parametrize("suffix", [".minidl", ".keras", ".h5"])
def test_a_lambda_of_a_named_function_loads_with_custom_objects(tmp_path, suffix):
    if suffix != ".minidl":
        pytest.importorskip("h5py")
    model = _lambda_model()
    x = _x()
    path = os.path.join(tmp_path, "lambda" + suffix)
    model.save(path)
    with pytest.raises(InvalidModelFileError, match="custom_objects"):
        load_model(path)
    loaded = load_model(path, custom_objects={"half_square": half_square})
    assert [layer.function for layer in loaded.layers if isinstance(layer, Lambda)] == \
        [half_square]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_lambda_rebuilds_from_its_config_with_its_functions_given():
    config = Lambda(half_square, output_shape=_same_shape).get_config()
    with pytest.raises(LambdaLoadingError, match="'half_square'"):
        Lambda.from_config(config)
    with minidl.saving.custom_object_scope({"half_square": half_square}):
        with pytest.raises(LambdaLoadingError, match="output_shape function"):
            Lambda.from_config(config)
    with minidl.saving.custom_object_scope({"half_square": half_square,
                                            "_same_shape": _same_shape}):
        again = Lambda.from_config(config)
    assert again.function is half_square and again._output_shape is _same_shape
    # An argument JSON cannot hold was saved as a description: refused, not passed on.
    config = Lambda(half_square, arguments={"table": np.ones(2)}).get_config()
    with minidl.saving.custom_object_scope({"half_square": half_square}):
        with pytest.raises(LambdaLoadingError, match="table"):
            Lambda.from_config(config)
    # A lambda expression has no name to give.
    config = Lambda(lambda t: t).get_config()
    with minidl.saving.custom_object_scope({"<lambda>": half_square}):
        with pytest.raises(LambdaLoadingError, match="lambda expression"):
            Lambda.from_config(config)


def _same_shape(shape):
    return shape


def test_a_lambda_expression_is_not_written_for_keras(tmp_path):
    pytest.importorskip("h5py")
    model = Sequential([Input((3,)), Lambda(lambda t: t * 2.0), Dense(2)])
    with pytest.raises(ValueError, match="lambda expression"):
        model.save(os.path.join(tmp_path, "m.keras"))
    assert not os.path.exists(os.path.join(tmp_path, "m.keras"))


def test_a_backup_of_a_model_with_a_lambda_restores_into_it(tmp_path):
    # BackupAndRestore restores into the model in memory: nothing is rebuilt from the file.
    from minidl.saving.model_io import restore_backup, save_backup
    model = _lambda_model()
    model.compile(optimizers.SGD(0.1), "mse")
    x, y = _x(), np.zeros((6, 2), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    saved = model.get_weights()
    path = os.path.join(tmp_path, "backup.minidl")
    save_backup(model, path, epoch=1)
    model.fit(x, y, epochs=1, verbose=0)
    assert not all(np.array_equal(p, q) for p, q in zip(saved, model.get_weights()))
    assert restore_backup(model, path) == 1
    assert all(np.array_equal(p, q) for p, q in zip(saved, model.get_weights()))


def test_a_mask_made_by_a_comparison_trains_as_a_constant():
    # The Lambda's output reaches its input both through the multiply (a gradient) and
    # through the comparison (none): the input's gradient is the mask, with no error, as in
    # TensorFlow; the Dense before it trains.
    set_random_seed(5)
    inputs = Input((4,))
    hidden = Dense(3)(inputs)
    gated = Lambda(lambda t: t * ops.cast(ops.greater(t, 0.0), "float32"))(hidden)
    model = Model(inputs, Dense(1)(gated))
    model.compile(optimizers.SGD(0.1), "mse")
    x, y = _x(8), np.ones((8, 1), np.float32)
    before = model.get_weights()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    after = model.get_weights()
    assert not np.array_equal(before[0], after[0])   # the gradient reached the first Dense
    with GradientTape() as tape:
        t = ops.convert_to_tensor(x)
        tape.watch(t)
        total = ops.sum(gated._keras_history.operation(t))
    (grad,) = tape.gradient(total, [t])
    np.testing.assert_array_equal(grad, (x > 0).astype(np.float32))


def test_a_user_layer_inside_a_nested_model_gets_whole_shapes():
    class Widen(minidl.layers.Layer):
        def compute_output_shape(self, input_shape):
            assert input_shape[0] is None   # Keras' convention: the batch dimension first
            return input_shape[:-1] + (2 * input_shape[-1],)

        def call(self, x):
            return ops.concatenate([x, x], axis=-1)

    inner_in = Input((3,))
    inner = Model(inner_in, Widen()(inner_in))
    outer_in = Input((3,))
    outer = Model(outer_in, Dense(2)(inner(outer_in)))
    assert outer.layers[1].output_shape == (None, 6)
    assert outer(_x(2, 3)).shape == (2, 2)
