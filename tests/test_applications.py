"""minidl.applications: Keras's parameter counts and output shapes (hard-coded from Keras
3.15.1), layer names and weight shapes layer by layer against Keras itself (when installed),
training, saving and loading, input tensors, feature pooling, bad arguments,
preprocess_input in its three modes and decode_predictions with the bundled ImageNet class
index.

The parameter counts are taken at Keras's default input sizes by building only, with
``skip_weight_init`` (zero weights, no random draws): what a model holds does not depend on
its values. Training and saving run at the smallest inputs Keras accepts, with 3 classes.
"""
import hashlib
import os
import re
import warnings

import numpy as np
import pytest

import minidl
from minidl import applications
from minidl.applications import (EfficientNetB0, MobileNetV2, ResNet50, ResNet50V2, VGG16,
                                 VGG19, Xception, efficientnet, imagenet_utils, mobilenet_v2,
                                 resnet, resnet50, resnet_v2, vgg16, vgg19, xception)
from minidl.layers import Dense, Input, Rescaling
from minidl.layers.base import skip_weight_init
from minidl.models import load_model

# From Keras 3.15.1, weights=None at the default input size: (total, trainable,
# non-trainable) parameters with include_top=True, then with include_top=False, and the
# default input size.
KERAS_PARAMS = {
    "VGG16": ((138357544, 138357544, 0), (14714688, 14714688, 0), 224),
    "VGG19": ((143667240, 143667240, 0), (20024384, 20024384, 0), 224),
    "ResNet50": ((25636712, 25583592, 53120), (23587712, 23534592, 53120), 224),
    "ResNet50V2": ((25613800, 25568360, 45440), (23564800, 23519360, 45440), 224),
    "MobileNetV2": ((3538984, 3504872, 34112), (2257984, 2223872, 34112), 224),
    "Xception": ((22910480, 22855952, 54528), (20861480, 20806952, 54528), 299),
    "EfficientNetB0": ((5330571, 5288548, 42023), (4049571, 4007548, 42023), 224),
}
# From Keras 3.15.1: the features' shape (include_top=False, pooling=None) at the smallest
# input Keras accepts and at an odd-sized one, and those smallest sizes.
KERAS_FEATURES = {
    "VGG16": (32, (1, 1, 512), (2, 3, 512)),
    "ResNet50": (32, (1, 1, 2048), (3, 4, 2048)),
    "ResNet50V2": (32, (1, 1, 2048), (3, 4, 2048)),
    "MobileNetV2": (32, (1, 1, 1280), (3, 4, 1280)),
    "Xception": (71, (3, 3, 2048), (3, 3, 2048)),
    "EfficientNetB0": (32, (1, 1, 1280), (3, 4, 1280)),
}
ODD_SHAPE = (75, 99, 3)
APPS = {"VGG16": VGG16, "VGG19": VGG19, "ResNet50": ResNet50, "ResNet50V2": ResNet50V2,
        "MobileNetV2": MobileNetV2, "Xception": Xception, "EfficientNetB0": EfficientNetB0}
MIN_SIZE = {"Xception": 71}


def counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params(), trainable, frozen


# ---- Keras's numbers ----

@pytest.mark.parametrize("name", sorted(KERAS_PARAMS))
def test_parameter_counts_and_outputs_match_keras_at_the_default_size(name):
    top, notop, size = KERAS_PARAMS[name]
    with skip_weight_init():
        model = APPS[name](weights=None)
        features = APPS[name](weights=None, include_top=False)
    assert counts(model) == top
    assert model.input_shape == (None, size, size, 3)
    assert model.output_shape == (None, 1000)
    assert counts(features) == notop
    assert features.input_shape == (None, None, None, 3)
    assert features.output_shape[:3] == (None, None, None)


@pytest.mark.parametrize("name", sorted(KERAS_FEATURES))
def test_feature_shapes_match_keras_at_the_smallest_and_an_odd_size(name):
    size, smallest, odd = KERAS_FEATURES[name]
    with skip_weight_init():
        small = APPS[name](weights=None, include_top=False, input_shape=(size, size, 3))
        odd_model = APPS[name](weights=None, include_top=False, input_shape=ODD_SHAPE)
    assert small.output_shape == (None,) + smallest
    assert odd_model.output_shape == (None,) + odd


def test_mobilenet_v2_width_multiplier_and_names_match_keras():
    # From Keras 3.15.1.
    with skip_weight_init():
        narrow = MobileNetV2(weights=None, alpha=0.35)
        wide = MobileNetV2(weights=None, alpha=1.4)
        half = MobileNetV2(weights=None, alpha=0.5, include_top=False, input_shape=(96, 96, 3))
        odd = MobileNetV2(weights=None, input_shape=(100, 100, 3), classes=10)
    assert (counts(narrow), narrow.name) == ((1691208, 1677128, 14080), "mobilenetv2_0.35_224")
    assert (counts(wide), wide.name) == ((6156712, 6108776, 47936), "mobilenetv2_1.40_224")
    assert (counts(half), half.name) == ((706224, 687680, 18544), "mobilenetv2_0.50_96")
    assert half.output_shape == (None, 3, 3, 1280)
    assert (counts(odd), odd.name) == ((2270794, 2236682, 34112), "mobilenetv2_1.00_100")


def test_efficientnet_stochastic_depth_rates_match_keras():
    with skip_weight_init():
        model = EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
    rates = [(layer.name, round(layer.rate, 6)) for layer in model.layers
             if type(layer).__name__ == "Dropout"]
    # From Keras 3.15.1: drop_connect_rate * block index / 16 blocks, then the top dropout.
    assert rates == [("block2b_drop", 0.025), ("block3b_drop", 0.05), ("block4b_drop", 0.075),
                     ("block4c_drop", 0.0875), ("block5b_drop", 0.1125),
                     ("block5c_drop", 0.125), ("block6b_drop", 0.15),
                     ("block6c_drop", 0.1625), ("block6d_drop", 0.175),
                     ("top_dropout", 0.2)]
    assert model.get_layer("block2b_drop").noise_shape == (None, 1, 1, 1)


# Keras names the layers it does not name itself with a session-wide counter.
AUTOMATIC = re.compile(r"^(input_layer|conv2d|batch_normalization|add|rescaling|normalization|"
                       r"global_average_pooling2d|global_max_pooling2d|max_pooling2d)(_\d+)?$")


def test_layer_order_is_keras_order_where_branches_join():
    """Keras orders a model's layers by their distance from the outputs (deepest first), so
    a branch's layers interleave with its sibling's; the weight order follows."""
    with skip_weight_init():
        resnet_model = ResNet50(weights=None, input_shape=(32, 32, 3), classes=3)
        xception_model = Xception(weights=None, input_shape=(71, 71, 3), classes=3)
    # From Keras 3.15.1.
    assert [layer.name for layer in resnet_model.layers[7:19]] == [
        "conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_1_relu",
        "conv2_block1_2_conv", "conv2_block1_2_bn", "conv2_block1_2_relu",
        "conv2_block1_0_conv", "conv2_block1_3_conv", "conv2_block1_0_bn",
        "conv2_block1_3_bn", "conv2_block1_add", "conv2_block1_out"]
    names = [AUTOMATIC.sub(r"\1", layer.name) for layer in xception_model.layers[7:16]]
    assert names == ["block2_sepconv1", "block2_sepconv1_bn", "block2_sepconv2_act",
                     "block2_sepconv2", "block2_sepconv2_bn", "conv2d", "block2_pool",
                     "batch_normalization", "add"]
    assert resnet_model.weight_names[12:14] == ["conv2_block1_2_conv/kernel",
                                                "conv2_block1_2_conv/bias"]


def _layer_table(layers):
    """(name, class, weight names and shapes) per layer, in order, automatic names reduced
    to their base."""
    rows = []
    for layer in layers:
        match = AUTOMATIC.match(layer.name)
        name = match.group(1) if match else layer.name
        weights = tuple((w.path.split("/")[-1], tuple(w.shape)) for w in layer.weights)
        rows.append((name, type(layer).__name__, weights))
    return rows


@pytest.mark.parametrize("name", sorted(APPS))
def test_layer_names_classes_and_weights_match_keras(name):
    """Keras's model has the same layers here, in the same order (so the same weight
    order), with the same names, classes, weight names and weight shapes
    (``include_top=True``, at a small input, 3 classes)."""
    pytest.importorskip("torch")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    size = MIN_SIZE.get(name, 32)
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(keras.applications, name)(**kwargs)
    with skip_weight_init():
        model = APPS[name](**kwargs)
    assert _layer_table(model.layers) == _layer_table(reference.layers)
    assert counts(model) == (reference.count_params(),
                             sum(int(np.prod(w.shape)) for w in reference.trainable_weights),
                             sum(int(np.prod(w.shape)) for w in reference.non_trainable_weights))
    assert model.name == reference.name


# ---- training, saving, loading ----

@pytest.mark.parametrize("name", sorted(set(APPS) - {"VGG19"}))
def test_trains_one_step_saves_and_loads(name, tmp_path):
    size = MIN_SIZE.get(name, 32)
    minidl.utils.set_random_seed(0)
    model = APPS[name](weights=None, input_shape=(size, size, 3), classes=3)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, size, size, 3)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    trained = model.trainable_weights
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert all(np.isfinite(w.value).all() for w in trained)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), probs)


def test_vgg19_features_fine_tune_with_a_new_head_and_weights_from_a_file(tmp_path):
    """Transfer learning as Keras's guide does it: the base without its top, frozen, a new
    classifier; then the base's weights loaded by ``weights=<path>``."""
    minidl.utils.set_random_seed(1)
    base = VGG19(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="max")
    assert base.output_shape == (None, 512)
    base.trainable = False
    inputs = Input((32, 32, 3))
    outputs = Dense(2, activation="softmax")(base(inputs))
    model = minidl.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    frozen = [w.copy() for w in base.get_weights()]
    model.train_on_batch(vgg19.preprocess_input(x.copy()), np.eye(2)[[0, 1, 1, 0]])
    assert all(np.array_equal(a, b) for a, b in zip(frozen, base.get_weights()))
    path = str(tmp_path / "vgg19_notop.weights.h5")
    base.save_weights(path)
    again = VGG19(weights=path, include_top=False, input_shape=(32, 32, 3), pooling="max")
    np.testing.assert_array_equal(again.predict(x, verbose=0), base.predict(x, verbose=0))


# ---- pooling and input tensors ----

@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pooling_is_global_pooling_of_the_features(pooling):
    minidl.utils.set_random_seed(2)
    features = MobileNetV2(weights=None, alpha=0.35, include_top=False,
                           input_shape=(64, 64, 3))
    pooled = MobileNetV2(weights=None, alpha=0.35, include_top=False, input_shape=(64, 64, 3),
                         pooling=pooling)
    pooled.set_weights(features.get_weights())
    x = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    maps = features.predict(x, verbose=0)
    reduce = np.mean if pooling == "avg" else np.max
    assert pooled.output_shape == (None, 1280)
    np.testing.assert_allclose(pooled.predict(x, verbose=0), reduce(maps, axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)


def test_pooling_is_ignored_with_the_top_as_in_keras():
    with skip_weight_init():
        model = ResNet50(weights=None, input_shape=(32, 32, 3), classes=3, pooling="max")
    assert model.output_shape == (None, 3)
    assert "max_pool" not in [layer.name for layer in model.layers]


def test_input_tensor_after_other_layers_becomes_part_of_the_model():
    inputs = Input((32, 32, 3))
    scaled = Rescaling(255.0)(inputs)
    minidl.utils.set_random_seed(3)
    model = EfficientNetB0(weights=None, input_tensor=scaled, classes=3)
    assert model.inputs[0] is inputs
    assert model.layers[1].name == scaled._keras_history.operation.name
    minidl.utils.set_random_seed(3)
    plain = EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=3)
    plain.set_weights(model.get_weights())
    x = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x * 255.0, verbose=0),
                               rtol=1e-5, atol=1e-7)


def test_input_tensor_gives_the_model_its_shape():
    with skip_weight_init():
        model = ResNet50V2(weights=None, include_top=False, input_tensor=Input((48, 40, 3)),
                           pooling="avg")
    assert model.input_shape == (None, 48, 40, 3)
    assert model.output_shape == (None, 2048)


def test_preprocess_input_inside_a_model_matches_the_numpy_version():
    for module in (vgg16, resnet_v2, applications.imagenet_utils):
        inputs = Input((8, 8, 3))
        model = minidl.Model(inputs, module.preprocess_input(inputs))
        x = np.random.default_rng(4).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), module.preprocess_input(x.copy()),
                                   rtol=1e-6, atol=1e-4)


# ---- bad arguments ----

@pytest.mark.parametrize("name", sorted(APPS))
def test_imagenet_weights_cannot_be_downloaded(name):
    with pytest.raises(ValueError, match="minidl does not download pretrained weights.*"
                                         "load_weights"):
        APPS[name]()


@pytest.mark.parametrize("name", sorted(APPS))
def test_too_small_inputs_are_refused(name):
    size = MIN_SIZE.get(name, 32)
    with pytest.raises(ValueError, match=f"Input size must be at least {size}x{size}"):
        APPS[name](weights=None, include_top=False, input_shape=(size - 1, 200, 3))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(weights="imagenet", classes=10), ValueError, "`classes` should be 1000"),
    (dict(weights=None, pooling="mean", include_top=False), ValueError,
     "`pooling` must be one of None, 'avg' or 'max'. Received: pooling='mean'"),
    (dict(weights="/no/such/file.weights.h5"), ValueError,
     "the path to the weights file to be loaded.  Received: weights='/no/such/file"),
    (dict(weights=3), ValueError, "Received: weights=3"),
    (dict(weights=np.zeros(3)), ValueError, "Received: weights=array"),
    (dict(weights=None, classes=0), ValueError, "`classes` must be a positive integer"),
    (dict(weights=None, include_top="yes"), TypeError, "include_top='yes'"),
    (dict(weights=None, input_shape=(None, None, 3)), ValueError,
     "you should specify a static `input_shape`"),
    (dict(weights=None, include_top=False, input_shape=(64, 64)), ValueError,
     "`input_shape` must be a tuple of three integers"),
    (dict(weights=None, include_top=False, input_shape=(64, 0, 3)), ValueError,
     "three positive integers"),
    (dict(weights="imagenet", input_shape=(96, 96, 3)), ValueError,
     r"`input_shape` should be \(224, 224, 3\)"),
    (dict(weights="imagenet", include_top=False, input_shape=(96, 96, 1)), ValueError,
     "The input must have 3 channels"),
    (dict(weights=None, classifier_activation="nope"), ValueError, "Unknown activation"),
    (dict(weights=None, input_tensor=np.zeros((1, 32, 32, 3))), TypeError,
     "`input_tensor` must be a symbolic tensor"),
])
def test_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        ResNet50(**kwargs)


def test_classifier_activation_with_weights_must_be_softmax_or_none(tmp_path):
    with skip_weight_init():
        model = MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=3)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    with pytest.raises(ValueError, match="Only `None` and `softmax` activations"):
        MobileNetV2(weights=path, input_shape=(32, 32, 3), classes=3,
                    classifier_activation="sigmoid")
    logits = MobileNetV2(weights=path, input_shape=(32, 32, 3), classes=3,
                         classifier_activation=None)
    assert logits.get_layer("predictions").activation.name == "linear"


def test_mobilenet_v2_specific_checks():
    with pytest.raises(ValueError, match="`alpha` must be a positive number"):
        MobileNetV2(weights=None, alpha=0)
    with pytest.raises(ValueError, match="alpha must be one of"):
        MobileNetV2(weights="imagenet", alpha=0.6)
    with pytest.raises(ValueError, match=r"input_tensor.shape\[2\] must equal input_shape\[1\]"):
        MobileNetV2(weights=None, input_tensor=Input((64, 64, 3)), input_shape=(64, 96, 3))


def test_input_tensor_of_the_wrong_rank_or_size():
    with pytest.raises(ValueError, match="rank 4"):
        VGG16(weights=None, include_top=False, input_tensor=Input((32, 3)))
    with pytest.raises(ValueError, match="at least 71x71"):
        Xception(weights=None, include_top=False, input_tensor=Input((70, 90, 3)))


def test_unusual_channel_counts_warn_as_in_keras():
    with pytest.warns(UserWarning, match="usually expects 1 or 3 input channels"):
        with skip_weight_init():
            VGG16(weights=None, include_top=False, input_shape=(32, 32, 4))


# ---- preprocess_input ----

def _reference(x, mode, channels_first=False):
    """Keras's formulas in float64, channels last."""
    x = np.moveaxis(x, -3, -1) if channels_first else x
    x = x.astype(np.float64)
    if mode == "tf":
        out = x / 127.5 - 1.0
    elif mode == "torch":
        out = (x / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    else:
        out = x[..., ::-1] - [103.939, 116.779, 123.68]
    return np.moveaxis(out, -1, -3) if channels_first else out


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_input_modes(mode):
    x = np.random.default_rng(5).uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    expected = _reference(x, mode)
    out = imagenet_utils.preprocess_input(x.copy(), mode=mode)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    first = imagenet_utils.preprocess_input(np.moveaxis(x, -1, 1).copy(), mode=mode,
                                            data_format="channels_first")
    np.testing.assert_allclose(first, np.moveaxis(expected, -1, 1), rtol=1e-5, atol=1e-4)
    single = imagenet_utils.preprocess_input(x[0].copy(), mode=mode)
    np.testing.assert_allclose(single, expected[0], rtol=1e-5, atol=1e-4)


def test_preprocess_input_writes_into_float_arrays_and_converts_integers():
    x = np.full((1, 2, 2, 3), 255.0, dtype=np.float64)
    out = imagenet_utils.preprocess_input(x, mode="tf")
    assert np.shares_memory(out, x) and out.dtype == np.float64
    np.testing.assert_array_equal(x, 1.0)
    pixels = np.array([[[[10, 20, 30]]]], dtype=np.uint8)
    out = vgg16.preprocess_input(pixels)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68],
                               rtol=1e-6)
    assert pixels[0, 0, 0, 0] == 10


def test_each_application_preprocesses_as_keras_does():
    x = np.random.default_rng(6).uniform(0, 255, (1, 3, 3, 3)).astype(np.float32)
    for module, mode in ((vgg16, "caffe"), (vgg19, "caffe"), (resnet, "caffe"),
                         (resnet50, "caffe"), (resnet_v2, "tf"), (mobilenet_v2, "tf"),
                         (xception, "tf")):
        np.testing.assert_allclose(module.preprocess_input(x.copy()), _reference(x, mode),
                                   rtol=1e-5, atol=1e-4, err_msg=module.__name__)
    assert efficientnet.preprocess_input(x) is x


def test_preprocess_input_bad_arguments():
    x = np.zeros((1, 2, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="Expected mode to be one of"):
        imagenet_utils.preprocess_input(x, mode="keras")
    with pytest.raises(ValueError, match="Expected data_format to be one of"):
        imagenet_utils.preprocess_input(x, data_format="channels_middle")
    with pytest.raises(ValueError, match="3 colour channels"):
        imagenet_utils.preprocess_input(np.zeros((1, 2, 2, 4)), mode="caffe")
    with pytest.raises(ValueError, match="3D image or a 4D batch"):
        imagenet_utils.preprocess_input(np.zeros((2, 3)), mode="torch")
    with pytest.raises(ValueError, match="Expected data_format"):
        efficientnet.preprocess_input(x, data_format="nhwc")


# ---- decode_predictions ----

def test_class_index_is_keras_file_and_bundled():
    # Keras's file_hash for imagenet_class_index.json.
    with open(imagenet_utils.CLASS_INDEX_PATH, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"


def test_decode_predictions_gives_the_top_classes_best_first():
    preds = np.zeros((2, 1000), dtype=np.float32)
    preds[0, [0, 999, 207]] = [0.5, 0.3, 0.2]
    preds[1, 1] = 1.0
    top = vgg16.decode_predictions(preds, top=3)
    assert top[0] == [("n01440764", "tench", 0.5), ("n15075141", "toilet_tissue", 0.3),
                      ("n02099601", "golden_retriever", 0.2)]
    assert top[1][0] == ("n01443537", "goldfish", 1.0)
    assert len(mobilenet_v2.decode_predictions(preds)[1]) == 5


def test_decode_predictions_bad_arguments():
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\).*\(2, 10\)"):
        resnet50.decode_predictions(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="Received array with shape: \\(1000,\\)"):
        imagenet_utils.decode_predictions(np.zeros(1000))
    with pytest.raises(ValueError, match="`top` must be a positive integer"):
        imagenet_utils.decode_predictions(np.zeros((1, 1000)), top=0)


def test_correct_pad_matches_tensorflow_same_padding():
    for size, expected in ((224, ((0, 1), (0, 1))), (75, ((1, 1), (1, 1)))):
        tensor = Input((size, size, 8))
        assert imagenet_utils.correct_pad(tensor, 3) == expected
    assert imagenet_utils.correct_pad(Input((None, None, 8)), (5, 5)) == ((1, 2), (1, 2))


def test_the_package_is_reachable_as_in_keras():
    assert minidl.applications is applications
    for name in APPS:
        assert getattr(applications, name) is APPS[name]
    assert applications.resnet50.ResNet50 is ResNet50
