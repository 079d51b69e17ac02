"""data_format='channels_first': every layer that takes a data_format runs it, and gives
exactly the bits of the channels_last layer on transposed data (outputs, input gradients,
weight gradients, whole training runs), since it transposes at its boundary
(minidl/layers/data_format.py)."""
import inspect

import numpy as np
import pytest

import minidl
from minidl import config
from minidl.layers import (LAYERS, CallContext, Conv1D, Conv2D, Dense, Flatten,
                           GlobalAveragePooling2D, MaxPooling2D, ReLU)
from minidl.layers.data_format import (ChannelsFirstMixin, to_channels_first,
                                       to_channels_last)
from minidl.models import Sequential, load_model
from minidl.utils import set_random_seed

import hostile_configs
from hostile_configs import LAYER_SAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


def _takes_data_format(cls):
    return "data_format" in inspect.signature(cls.__init__).parameters


# Layers whose data_format Keras gives but minidl's image preprocessing layers keep
# channels_last (they refuse channels_first with a clear error, tested below).
_CHANNELS_LAST_ONLY = {"Resizing", "CenterCrop", "RandomFlip", "RandomRotation", "RandomZoom",
                       "RandomTranslation", "RandomCrop", "RandomContrast", "RandomBrightness"}

DATA_FORMAT_LAYERS = sorted(
    cls.__name__ for cls in hostile_configs.layer_classes()
    if _takes_data_format(cls) and cls.__name__ not in _CHANNELS_LAST_ONLY)


def test_the_list_is_not_empty():
    assert {"Conv2D", "Conv1D", "MaxPooling2D", "GlobalAveragePooling1D"} <= set(
        DATA_FORMAT_LAYERS)


@pytest.mark.parametrize("name", DATA_FORMAT_LAYERS)
def test_every_layer_with_a_data_format_runs_channels_first(name):
    cls = LAYERS.lookup(name)
    assert getattr(cls, "supports_channels_first", False), (
        f"{name} takes data_format but does not run channels_first: put ChannelsFirstMixin "
        f"first among its bases")


@pytest.mark.parametrize("name", DATA_FORMAT_LAYERS)
def test_the_mixin_comes_before_the_layers_own_methods(name):
    """The mixin wraps what the classes after it in the MRO define: a class before it
    that defines one of these would run channels_last code on channels_first data."""
    mro = LAYERS.lookup(name).__mro__
    if ChannelsFirstMixin not in mro:   # runs channels_first natively (SpatialDropout2D)
        return
    position = mro.index(ChannelsFirstMixin)
    for cls in mro[:position]:
        for method in ("build", "compute_output_shape", "forward", "backward"):
            assert method not in vars(cls), f"{cls.__name__}.{method} shadows the mixin"


def _pair(name, dtype):
    """The same layer in both formats, the channels_first one holding the same weights."""
    sample, kwargs = LAYER_SAMPLES[name]
    last = LAYERS.lookup(name)(**kwargs, dtype=dtype)
    first = LAYERS.lookup(name)(**kwargs, dtype=dtype, data_format="channels_first")
    last.build(sample)
    first.build(to_channels_first(sample))
    if last.get_weights():
        first.set_weights(last.get_weights())
    return sample, last, first


def _cf(a):
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim >= 3 else a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", DATA_FORMAT_LAYERS)
def test_same_bits_as_channels_last_on_transposed_data(name, dtype):
    sample, last, first = _pair(name, dtype)
    x = np.random.default_rng(0).standard_normal((3,) + sample).astype(dtype)
    assert first.compute_output_shape(to_channels_first(sample)) == \
        to_channels_first(last.compute_output_shape(sample))
    # inference
    np.testing.assert_array_equal(first(_cf(x)), _cf(last(x)))
    # training: output, input gradient and weight gradients
    ctx_last, ctx_first = CallContext(last), CallContext(first)
    y_last = ctx_last.forward(x, training=True)
    y_first = ctx_first.forward(_cf(x), training=True)
    np.testing.assert_array_equal(y_first, _cf(y_last))
    dy = np.random.default_rng(1).standard_normal(y_last.shape).astype(dtype)
    dx_last = ctx_last.backward(dy)
    dx_first = ctx_first.backward(_cf(dy))
    np.testing.assert_array_equal(dx_first, _cf(dx_last))
    for g_first, g_last in zip(ctx_first.grads, ctx_last.grads):
        np.testing.assert_array_equal(g_first, g_last)


def _cnn(data_format, shape, fusable):
    first = ([Conv2D(4, 3, activation="relu", data_format=data_format)] if fusable else
             [Conv2D(4, 3, data_format=data_format), ReLU()])
    return Sequential([
        minidl.Input(shape), *first,
        MaxPooling2D(data_format=data_format),
        Conv2D(6, 3, padding="same", data_format=data_format),
        ReLU(),
        GlobalAveragePooling2D(data_format=data_format),
        Dense(3, activation="softmax")])


def _train(data_format, x, y, fusable, tmp_path=None):
    set_random_seed(7)
    model = _cnn(data_format, x.shape[1:], fusable)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=True)
    if tmp_path is not None:
        path = tmp_path / "cf.minidl"
        model.save(path)
        loaded = load_model(path)
        assert loaded.layers[0].data_format == data_format
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    return model.get_weights()


def _data():
    rng = np.random.default_rng(2)
    return rng.standard_normal((40, 10, 10, 2)).astype("float32"), rng.integers(0, 3, 40)


def test_training_is_bit_identical_to_channels_last(tmp_path):
    """Conv, ReLU, pooling and the loss head, fused alike in both formats (the bias and
    ReLU in the convolution's pass): the same bits, and a saved channels_first model
    predicts the same after loading."""
    x, y = _data()
    for a, b in zip(_train("channels_last", x, y, False),
                    _train("channels_first", _cf(x), y, False, tmp_path)):
        np.testing.assert_array_equal(a, b)


def test_training_matches_the_fused_channels_last_model():
    """channels_last fuses a first convolution + ReLU + max pooling into one direct kernel
    (csrc/conv_pool.c), which sums the kernel gradient in another order; channels_first
    runs the layers one by one: equal within float32 rounding."""
    x, y = _data()
    for a, b in zip(_train("channels_last", x, y, True),
                    _train("channels_first", _cf(x), y, True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_output_shapes_and_summary_use_the_callers_layout():
    model = Sequential([minidl.Input((3, 16, 12)), Conv2D(5, 3, strides=2,
                                                          data_format="channels_first"),
                        MaxPooling2D(data_format="channels_first"), Flatten()])
    assert model.layers[0].output.shape == (None, 5, 7, 5)
    assert model.layers[1].output.shape == (None, 5, 3, 2)
    assert model.output.shape == (None, 30)
    assert model.layers[0].built_input_shape == (3, 16, 12)
    # A channels_last-shaped input is refused by the layer built for channels_first.
    with pytest.raises(ValueError, match=r"built for inputs of shape \(None, 3, 16, 12\)"):
        model.layers[0](np.zeros((2, 16, 12, 3), "float32"))
    with pytest.raises(ValueError, match=r"expects samples of shape \(3, 16, 12\)"):
        model.predict(np.zeros((2, 16, 12, 3), "float32"), verbose=0)


def test_masked_global_average_pooling_1d_channels_first():
    """The masked mean of GlobalAveragePooling1D over channels_first steps (the last axis)."""
    x = np.random.default_rng(4).standard_normal((2, 3, 5)).astype("float32")  # (b, c, steps)
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0]], bool)
    layer = minidl.layers.GlobalAveragePooling1D(data_format="channels_first")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True, mask=mask)
    expected = np.stack([x[i][:, mask[i]].mean(axis=1) for i in range(2)])
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    dx = ctx.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, np.broadcast_to(mask[:, None, :] / mask.sum(1)[:, None, None],
                                                   x.shape), rtol=1e-6)


def test_conv1d_channels_first_against_numpy():
    rng = np.random.default_rng(3)
    layer = Conv1D(4, 3, data_format="channels_first", use_bias=False, dtype="float64")
    x = rng.standard_normal((2, 5, 9))   # (batch, channels, steps)
    y = layer(x)
    kernel = layer.get_weights()[0]      # (3, 5, 4), as for channels_last
    expected = np.stack([np.einsum("bcs,sco->bo", x[:, :, t:t + 3], kernel)
                         for t in range(7)], axis=-1)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_shape_helpers():
    assert to_channels_last((3, 8, 9)) == (8, 9, 3)
    assert to_channels_first((8, 9, 3)) == (3, 8, 9)
    assert to_channels_first((5,)) == (5,)


def test_config_default_follows_image_data_format():
    assert config.image_data_format() == "channels_last"
    config.set_image_data_format("channels_first")
    try:
        assert Conv2D(2, 3).data_format == "channels_first"
        assert MaxPooling2D().get_config()["data_format"] == "channels_first"
        assert Conv2D(2, 3, data_format="channels_last").data_format == "channels_last"
    finally:
        config.set_image_data_format("channels_last")
    assert Conv2D(2, 3).data_format == "channels_last"


@pytest.mark.parametrize("bad", ["channels_middle", "NCHW", 1])
def test_bad_data_format_is_named(bad):
    with pytest.raises(ValueError, match="data_format"):
        Conv2D(2, 3, data_format=bad)
    with pytest.raises(ValueError, match="data_format"):
        config.set_image_data_format(bad)


def test_layers_that_stay_channels_last_say_so():
    with pytest.raises(ValueError, match="channels_last' only.*channels_first"):
        minidl.layers.Resizing(4, 4, data_format="channels_first")


def test_softmax_on_a_channels_first_convolution_is_refused():
    layer = Conv2D(2, 1, activation="softmax", data_format="channels_first")
    with pytest.raises(ValueError, match="softmax.*channels_first"):
        layer.build((3, 4, 4))
