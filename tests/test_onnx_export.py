"""ONNX export: every conversion checked against minidl's own predictions in onnxruntime.

Each model is built in minidl with random weights (batch normalization with random moving
statistics), exported, checked by ``onnx.checker`` (the export does it) and run in
onnxruntime on a batch of a size no model was built or run with; the outputs must match
``model.predict`` within 1e-5. Bad arguments must raise clear errors and write nothing.
"""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import minidl  # noqa: E402
import minidl.onnx  # noqa: E402
from minidl import Input, Model, Sequential  # noqa: E402
from minidl import layers as L  # noqa: E402

BATCH = 3   # never used to build a model here: the exported batch dimension is symbolic
TOLERANCE = 1e-5


def _randomize(model, seed=0):
    """Random weights: variances positive, everything else centred normals."""
    rng = np.random.default_rng(seed)
    values = []
    for name, array in zip(model.weight_names, model.get_weights()):
        if "variance" in name:
            values.append(rng.uniform(0.5, 1.5, array.shape))
        else:
            values.append(rng.normal(0.0, 0.5, array.shape))
    model.set_weights([v.astype(a.dtype) for v, a in zip(values, model.get_weights())])
    return model


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _check(model, x, tmp_path, opset=17, tolerance=TOLERANCE, randomize=True):
    """Export ``model``, run it in onnxruntime on ``x`` (an array or a list for several
    inputs) and compare with minidl's predictions. Returns the ONNX model."""
    if randomize:
        _randomize(model)
    path = str(tmp_path / "model.onnx")
    minidl.onnx.export(model, path, opset=opset)
    session = _session(path)
    xs = x if isinstance(x, list) else [x]
    got = session.run(None, {i.name: v for i, v in zip(session.get_inputs(), xs)})
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=tolerance, atol=tolerance)
    return onnx.load(path)


def _images(shape, seed=1, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(BATCH,) + shape).astype(dtype)


def _ops(proto):
    return [node.op_type for node in proto.graph.node]


# ---- the models of the issue ----

def test_mlp(tmp_path):
    model = Sequential([Input((20,)), L.Dense(16, activation="relu"), L.Dropout(0.5),
                        L.Dense(5, activation="softmax")])
    proto = _check(model, _images((20,)), tmp_path)
    assert "Dropout" not in _ops(proto)
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_cnn_with_batch_normalization(tmp_path):
    # The reference CNN with batch normalization: one Transpose (the input), none before
    # the Flatten, whose channels-last order the Dense kernel's rows absorb.
    model = Sequential([Input((12, 12, 1)), L.Conv2D(4, 3, activation="relu"),
                        L.BatchNormalization(), L.MaxPooling2D(2),
                        L.Conv2D(6, 3, padding="same"), L.BatchNormalization(),
                        L.Activation("relu"), L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.3),
                        L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    proto = _check(model, _images((12, 12, 1)), tmp_path)
    assert _ops(proto).count("Transpose") == 1
    assert "Gather" not in _ops(proto)


def test_residual_functional_model(tmp_path):
    inputs = Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = L.Conv2D(4, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    x = L.Activation("relu")(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    outputs = L.Dense(2, activation="softmax")(x)
    _check(Model(inputs, outputs), _images((8, 8, 3)), tmp_path)


def test_nested_model(tmp_path):
    inner = Sequential([Input((6,)), L.Dense(5, activation="tanh"), L.Dense(4)], name="inner")
    inputs = Input((6,))
    x = inner(inputs)
    outputs = L.Dense(2)(L.Concatenate()([x, inner(inputs)]))
    _check(Model(inputs, outputs), _images((6,)), tmp_path)


def test_nested_functional_model_of_images(tmp_path):
    inputs = Input((7, 7, 2))
    block = Model(inputs, L.MaxPooling2D()(L.Conv2D(3, 2, activation="relu")(inputs)),
                  name="block")
    outer_in = Input((7, 7, 2))
    outputs = L.Dense(2)(L.Flatten()(block(outer_in)))
    _check(Model(outer_in, outputs), _images((7, 7, 2)), tmp_path)


def test_lstm_text_model(tmp_path):
    model = Sequential([Input((7,), dtype="int32"), L.Embedding(30, 8),
                        L.LSTM(6, return_sequences=True), L.LSTM(5),
                        L.Dense(3, activation="softmax")])
    x = np.random.default_rng(2).integers(0, 30, (BATCH, 7)).astype(np.int32)
    proto = _check(model, x, tmp_path)
    assert _ops(proto).count("LSTM") == 2


def test_multiple_inputs_and_outputs(tmp_path):
    a, b = Input((4,), name="a"), Input((3,), name="b")
    merged = L.Concatenate()([L.Dense(5)(a), b])
    first = L.Dense(2, name="first")(merged)
    second = L.Dense(3, activation="sigmoid", name="second")(merged)
    proto = _check(Model([a, b], [first, second]), [_images((4,)), _images((3,), seed=4)],
                   tmp_path)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["first", "second"]


def test_same_tensor_twice_and_input_as_output(tmp_path):
    inputs = Input((4,))
    x = L.Dense(3)(inputs)
    _check(Model(inputs, [x, x, inputs]), _images((4,)), tmp_path)


# ---- Dense ----

def test_dense_on_sequences_and_float64(tmp_path):
    model = Sequential([Input((5, 4), dtype="float64"), L.Dense(3, dtype="float64"),
                        L.Dense(2, use_bias=False, dtype="float64")])
    _check(model, _images((5, 4), dtype=np.float64), tmp_path)


def test_dense_after_convolution_without_flatten(tmp_path):
    model = Sequential([Input((5, 5, 2)), L.Conv2D(3, 2), L.Dense(4)])
    _check(model, _images((5, 5, 2)), tmp_path)


# ---- convolutions ----

@pytest.mark.parametrize("kwargs", [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=(2, 3), strides=2, padding="same"),
    dict(filters=4, kernel_size=3, strides=(2, 1), padding="same"),
    dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=6, kernel_size=2, groups=2, use_bias=False),
    dict(filters=4, kernel_size=4, strides=3, padding="same", activation="relu"),
    dict(filters=4, kernel_size=3, data_format="channels_first", activation="tanh"),
])
def test_conv2d(tmp_path, kwargs):
    shape = (4, 9, 8) if kwargs.get("data_format") == "channels_first" else (9, 8, 4)
    _check(Sequential([Input(shape), L.Conv2D(**kwargs)]), _images(shape), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=4, strides=2, padding="same"),
    dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=4, kernel_size=2, groups=2, activation="relu"),
])
def test_conv1d(tmp_path, kwargs):
    _check(Sequential([Input((11, 4)), L.Conv1D(**kwargs)]), _images((11, 4)), tmp_path)


def test_convolution_on_sequences_of_any_length(tmp_path):
    model = Sequential([Input((None, 3)), L.Conv1D(4, 3, padding="same", strides=2),
                        L.GlobalMaxPooling1D()])
    _check(model, _images((10, 3)), tmp_path)


def test_depthwise_and_separable(tmp_path):
    model = Sequential([Input((9, 9, 3)),
                        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                          activation="relu"),
                        L.SeparableConv2D(5, 3, strides=2, depth_multiplier=2),
                        L.SeparableConv2D(4, 2, use_bias=False, activation="relu")])
    _check(model, _images((9, 9, 3)), tmp_path)


def test_depthwise_and_separable_1d(tmp_path):
    model = Sequential([Input((10, 3)), L.DepthwiseConv1D(3, depth_multiplier=2),
                        L.SeparableConv1D(4, 3, padding="same")])
    _check(model, _images((10, 3)), tmp_path)


# ---- pooling ----

@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same"),
                                    dict(pool_size=(2, 3), strides=1, padding="same"),
                                    dict(pool_size=3, strides=2)])
def test_pooling_2d(tmp_path, cls, kwargs):
    _check(Sequential([Input((7, 8, 3)), cls(**kwargs)]), _images((7, 8, 3)), tmp_path)


@pytest.mark.parametrize("cls", [L.MaxPooling1D, L.AveragePooling1D])
@pytest.mark.parametrize("kwargs", [dict(), dict(pool_size=3, strides=2, padding="same")])
def test_pooling_1d(tmp_path, cls, kwargs):
    _check(Sequential([Input((9, 3)), cls(**kwargs)]), _images((9, 3)), tmp_path)


@pytest.mark.parametrize("cls, shape", [(L.GlobalAveragePooling2D, (5, 4, 3)),
                                        (L.GlobalMaxPooling2D, (5, 4, 3)),
                                        (L.GlobalAveragePooling1D, (6, 3)),
                                        (L.GlobalMaxPooling1D, (6, 3))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(tmp_path, cls, shape, keepdims):
    _check(Sequential([Input(shape), cls(keepdims=keepdims)]), _images(shape), tmp_path)


# ---- normalization ----

def test_batch_normalization_everywhere(tmp_path):
    inputs = Input((6, 5, 3))
    images = L.BatchNormalization(epsilon=0.01)(L.Conv2D(4, 2)(inputs))   # channels-first
    rows = L.BatchNormalization(axis=1, center=False)(L.Reshape((30, 3))(inputs))
    sequence = L.BatchNormalization(scale=False)(L.Reshape((30, 3))(inputs))   # Mul/Add
    outputs = [images, rows, sequence, L.BatchNormalization()(L.Flatten()(inputs))]
    _check(Model(inputs, outputs), _images((6, 5, 3)), tmp_path)


@pytest.mark.parametrize("kwargs", [dict(), dict(axis=[-2, -1], epsilon=1e-5),
                                    dict(center=False), dict(scale=False)])
def test_layer_normalization(tmp_path, kwargs):
    model = Sequential([Input((4, 6)), L.LayerNormalization(**kwargs)])
    _check(model, _images((4, 6)), tmp_path)


def test_layer_normalization_after_convolution(tmp_path):
    model = Sequential([Input((5, 5, 2)), L.Conv2D(3, 2), L.LayerNormalization()])
    _check(model, _images((5, 5, 2)), tmp_path)


# ---- activations ----

ACTIVATIONS = ["linear", "relu", "relu6", "leaky_relu", "sigmoid", "hard_sigmoid", "tanh",
               "elu", "selu", "gelu", "softplus", "softsign", "silu", "hard_silu",
               "exponential", "mish", "softmax"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fused_activations(tmp_path, activation):
    inputs = Input((6,))
    dense = L.Dense(5, activation=activation)(inputs)
    conv = L.Conv1D(3, 2, activation=activation)(L.Reshape((3, 2))(inputs))
    _check(Model(inputs, [dense, conv]), 2 * _images((6,)), tmp_path)


@pytest.mark.parametrize("opset", [17, 18, 20])
@pytest.mark.parametrize("activation", [minidl.activations.GELU(approximate=True),
                                        minidl.activations.GELU(), "mish"])
def test_activations_written_with_their_formula_or_operator(tmp_path, opset, activation):
    model = Sequential([Input((6,)), L.Dense(8, activation=activation)])
    _check(model, 2 * _images((6,)), tmp_path, opset=opset)


def test_activation_layers(tmp_path):
    inputs = Input((6, 5, 2))
    x = L.Conv2D(4, 2)(inputs)   # held channels-first: the layers below keep it so
    outputs = [L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(x),
               L.ReLU(max_value=6.0)(x), L.ReLU(negative_slope=0.2)(x), L.LeakyReLU()(x),
               L.ELU(alpha=0.7)(x), L.Softmax(axis=1)(x), L.Softmax()(x),
               L.Activation(minidl.activations.ReLU(threshold=-0.3))(x),
               L.PReLU(shared_axes=[1, 2])(x), L.PReLU()(x)]
    _check(Model(inputs, outputs), _images((6, 5, 2)), tmp_path)


def test_softmax_and_activation_after_flatten(tmp_path):
    model = Sequential([Input((4, 4, 2)), L.Conv2D(3, 2), L.Flatten(), L.Softmax(),
                        L.Dense(4)])
    proto = _check(model, _images((4, 4, 2)), tmp_path)
    assert "Gather" not in _ops(proto)


# ---- shapes ----

def test_flatten_keeps_channels_last_order(tmp_path):
    # Flatten of a convolution's output as the model's output: the values must come in
    # Keras's (row, column, channel) order, not ONNX's (channel, row, column).
    model = Sequential([Input((4, 3, 2)), L.Conv2D(5, 2), L.Flatten()])
    _check(model, _images((4, 3, 2)), tmp_path)
    inputs = Input((4, 3, 2))
    flat = L.Flatten()(L.MaxPooling2D(1)(inputs))
    outputs = [L.Reshape((6, 4))(flat), L.Concatenate()([flat, flat]), L.Dense(3)(flat)]
    _check(Model(inputs, outputs), _images((4, 3, 2)), tmp_path)


def test_reshape_and_permute(tmp_path):
    inputs = Input((4, 6, 2))
    x = L.Conv2D(3, 1)(inputs)
    outputs = [L.Reshape((-1, 3))(x), L.Permute((2, 1, 3))(x),
               L.Dense(2)(L.Permute((3, 1, 2))(x)), L.Reshape((8, 6))(inputs)]
    _check(Model(inputs, outputs), _images((4, 6, 2)), tmp_path)


def test_zero_padding_and_upsampling(tmp_path):
    inputs = Input((4, 5, 2))
    x = L.Conv2D(3, 1)(inputs)
    outputs = [L.ZeroPadding2D(((1, 2), (0, 3)))(x), L.UpSampling2D((2, 3))(x),
               L.UpSampling1D(2)(L.ZeroPadding1D(2)(L.Reshape((20, 2))(inputs)))]
    _check(Model(inputs, outputs), _images((4, 5, 2)), tmp_path)


# ---- merging ----

@pytest.mark.parametrize("cls", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum,
                                 L.Minimum])
def test_elementwise_merges(tmp_path, cls):
    inputs = Input((5, 4, 3))
    a, b = L.Conv2D(2, 2)(inputs), L.Conv2D(2, 2)(inputs)
    merged = [cls()([a, b])]
    c = L.Reshape((4, 3, 2))(L.Dense(24)(L.Flatten()(L.Conv2D(2, 2)(inputs))))
    merged.append(cls()([a, c]))   # one input channels-first, the other not
    if cls is not L.Subtract:
        merged.append(cls()([a, b, c]))
    _check(Model(inputs, merged), _images((5, 4, 3)), tmp_path)


@pytest.mark.parametrize("axis", [-1, 1, 2, 3])
def test_concatenate_axes(tmp_path, axis):
    inputs = Input((4, 4, 3))
    a, b = L.Conv2D(2, 1)(inputs), L.Conv2D(2, 1)(inputs)
    _check(Model(inputs, L.Concatenate(axis=axis)([a, b, L.Conv2D(2, 1)(inputs)])),
           _images((4, 4, 3)), tmp_path)


# ---- recurrent ----

@pytest.mark.parametrize("cls, kwargs", [
    (L.LSTM, dict()),
    (L.LSTM, dict(return_sequences=True, go_backwards=True)),
    (L.LSTM, dict(return_state=True, use_bias=False)),
    (L.LSTM, dict(activation="relu", recurrent_activation="hard_sigmoid")),
    (L.GRU, dict()),
    (L.GRU, dict(reset_after=False, return_sequences=True)),
    (L.GRU, dict(go_backwards=True, return_state=True)),
    (L.SimpleRNN, dict(return_sequences=True)),
    (L.SimpleRNN, dict(activation="relu", go_backwards=True)),
])
def test_recurrent_layers(tmp_path, cls, kwargs):
    model = Model(*(lambda i: (i, cls(4, **kwargs)(i)))(Input((6, 3))))
    _check(model, _images((6, 3)), tmp_path)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional(tmp_path, merge_mode):
    inputs = Input((5, 3))
    sequences = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=merge_mode)(inputs)
    if merge_mode is None:   # a list of the two directions' outputs
        sequences = L.Concatenate()(sequences)
    last = L.Bidirectional(L.LSTM(3), merge_mode=merge_mode)(sequences)
    outputs = [sequences] + (last if merge_mode is None else [last])
    _check(Model(inputs, outputs), _images((5, 3)), tmp_path)


def test_bidirectional_with_states(tmp_path):
    inputs = Input((5, 3))
    outputs = L.Bidirectional(L.LSTM(3, return_state=True, return_sequences=True))(inputs)
    _check(Model(inputs, outputs), _images((5, 3)), tmp_path)


def test_recurrent_on_convolution_features(tmp_path):
    model = Sequential([Input((12, 2)), L.Conv1D(4, 3, activation="relu"),
                        L.MaxPooling1D(2), L.GRU(3, return_sequences=True),
                        L.SimpleRNN(2)])
    _check(model, _images((12, 2)), tmp_path)


def test_embedding_with_float_indices(tmp_path):
    model = Sequential([Input((5,)), L.Embedding(10, 3), L.Flatten(), L.Dense(2)])
    x = np.random.default_rng(3).integers(0, 10, (BATCH, 5)).astype(np.float32)
    _check(model, x, tmp_path)


# ---- Model.export ----

def test_model_export_method(tmp_path, capsys):
    model = _randomize(Sequential([Input((3,)), L.Dense(2)]))
    path = tmp_path / "model.onnx"
    assert model.export(path, format="onnx", opset_version=18) == str(path)
    assert f"Saved artifact at '{path}'" in capsys.readouterr().out
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 18
    x = _images((3,))
    got = _session(str(path)).run(None, {proto.graph.input[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=TOLERANCE,
                               atol=TOLERANCE)
    model.export(tmp_path / "quiet.onnx", verbose=False)
    assert capsys.readouterr().out == ""


# ---- bad input: clear errors, nothing written ----

def _nothing_written(tmp_path):
    return sorted(os.listdir(tmp_path)) == []


def _simple_model():
    return Sequential([Input((3,)), L.Dense(2)])


@pytest.mark.parametrize("layer, message", [
    (L.GroupNormalization(groups=1), "GroupNormalization"),
    (L.Lambda(lambda x: x * 2), "Lambda"),
    (L.Embedding(5, 2, mask_zero=True), "mask_zero"),
])
def test_unsupported_layer(tmp_path, layer, message):
    model = Sequential([Input((3,)), layer])
    with pytest.raises(ValueError, match=message) as error:
        minidl.onnx.export(model, tmp_path / "m.onnx")
    assert layer.name in str(error.value)
    assert _nothing_written(tmp_path)


def test_user_subclass_of_a_layer_is_refused(tmp_path):
    class Doubled(L.Dense):
        def forward(self, ctx, x, training=False):
            return 2 * super().forward(ctx, x, training)
    model = Sequential([Input((3,)), Doubled(2, name="doubled")])
    with pytest.raises(ValueError, match="'doubled' \\(Doubled\\) has no ONNX conversion"):
        minidl.onnx.export(model, tmp_path / "m.onnx")
    assert _nothing_written(tmp_path)


def test_stateful_recurrent_layer_is_refused(tmp_path):
    model = Sequential([Input((4, 2), batch_size=2), L.LSTM(3, stateful=True, name="lstm")])
    with pytest.raises(ValueError, match="'lstm' \\(LSTM\\).*stateful"):
        minidl.onnx.export(model, tmp_path / "m.onnx")
    assert _nothing_written(tmp_path)


def test_subclassed_and_unbuilt_models(tmp_path):
    class Net(Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x, training=None):
            return self.dense(x)
    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="subclassed"):
        minidl.onnx.export(net, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="not built"):
        minidl.onnx.export(Sequential([L.Dense(2)]), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match="minidl model"):
        minidl.onnx.export(L.Dense(2), tmp_path / "m.onnx")
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("opset", [16, 10 ** 6, "17", 17.0, True, None])
def test_bad_opset(tmp_path, opset):
    with pytest.raises(ValueError, match="opset"):
        minidl.onnx.export(_simple_model(), tmp_path / "m.onnx", opset=opset)
    assert _nothing_written(tmp_path)


def test_bad_path(tmp_path):
    model = _simple_model()
    with pytest.raises(FileNotFoundError, match="filepath"):
        minidl.onnx.export(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match="filepath"):
        minidl.onnx.export(model, tmp_path)
    with pytest.raises(TypeError, match="filepath"):
        minidl.onnx.export(model, 3)
    assert _nothing_written(tmp_path)


def test_failed_export_leaves_an_existing_file_alone(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError):
        minidl.onnx.export(Sequential([Input((3,)), L.GroupNormalization(groups=1)]), path)
    assert path.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_bad_export_arguments(tmp_path):
    model = _simple_model()
    with pytest.raises(ValueError, match="format='tf_saved_model'"):
        model.export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(ValueError, match="input_signature"):
        model.export(tmp_path / "m.onnx", input_signature=[(None, 3)])
    with pytest.raises(TypeError, match="is_static"):
        model.export(tmp_path / "m.onnx", is_static=True)
    assert _nothing_written(tmp_path)


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"minidl\[onnx\]"):
        minidl.onnx.export(_simple_model(), tmp_path / "m.onnx")
    assert _nothing_written(tmp_path)


# ---- more layers and layouts ----

def test_cropping_and_rescaling(tmp_path):
    inputs = Input((6, 5, 2))
    x = L.Conv2D(3, 1)(L.Rescaling(1.0 / 4, offset=-0.5)(inputs))
    outputs = [L.Cropping2D(((1, 2), (0, 1)))(x), L.Cropping2D(1)(x),
               L.Cropping1D((2, 0))(L.Reshape((30, 2))(inputs)),
               L.Rescaling([0.5, 2.0, -1.0])(x)]
    _check(Model(inputs, outputs), _images((6, 5, 2)), tmp_path)


def test_batch_normalization_after_flatten_of_images(tmp_path):
    model = Sequential([Input((4, 4, 2)), L.Conv2D(3, 2), L.Flatten(),
                        L.BatchNormalization(), L.Dense(2)])
    proto = _check(model, _images((4, 4, 2)), tmp_path)
    assert "Gather" not in _ops(proto)


def test_layer_normalization_on_recurrent_sequences(tmp_path):
    model = Sequential([Input((5, 3)), L.LSTM(4, return_sequences=True),
                        L.LayerNormalization(), L.Dense(2)])
    proto = _check(model, _images((5, 3)), tmp_path)
    # normalised time-major, as the LSTM gives it: no Transpose between the two
    producers = {out: node.op_type for node in proto.graph.node for out in node.output}
    norm = next(node for node in proto.graph.node if node.op_type == "LayerNormalization")
    assert producers[norm.input[0]] == "Squeeze"


def test_integer_and_float64_inputs_are_cast_as_minidl_does(tmp_path):
    ints = Input((4,), dtype="int32")
    doubles = Input((4,), dtype="float64")
    outputs = [L.Dense(3)(ints), L.Dense(2)(doubles)]
    x = [np.random.default_rng(5).integers(-3, 4, (BATCH, 4)).astype(np.int32),
         _images((4,), dtype=np.float64)]
    _check(Model([ints, doubles], outputs), x, tmp_path)
