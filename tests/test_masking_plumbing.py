"""Masks, tensor call arguments and layers of several outputs in graphs, plans and eager calls.

Small layers written here against the layer contract (forward / backward / compute_mask)
check the plumbing itself: masks made by one layer reach the layers that support masking,
a layer that does not support masking drops them (with Keras' warning), an output's mask
weighs its loss and metrics as Keras' ``apply_mask`` does, and a layer called with an
``initial_state`` tensor and returning several outputs trains, saves and clones.
"""
import warnings

import numpy as np
import pytest

import minidl
from minidl import layers
from minidl.layers.base import LAYERS, Layer
from minidl.models.trainer import masked_loss_weights


@LAYERS.register()
class PlumbingMaskFromFirstFeature(Layer):
    """Identity whose mask is where the first feature is non-zero (as Masking does)."""

    _makes_masks = True

    def forward(self, ctx, x, training=False):
        return x

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None

    def compute_mask(self, inputs, mask=None):
        return inputs[..., 0] != 0


@LAYERS.register()
class PlumbingScale(Layer):
    """``2 * x``, passing the mask on (supports_masking)."""

    supports_masking = True

    def forward(self, ctx, x, training=False):
        ctx.seen_mask = ctx.mask
        return 2 * x

    def backward(self, ctx, dy, need_input_grad=True):
        return 2 * dy if need_input_grad else None


@LAYERS.register()
class PlumbingNoMask(Layer):
    """``x + 1``; does not support masking."""

    def forward(self, ctx, x, training=False):
        return x + 1

    def backward(self, ctx, dy, need_input_grad=True):
        return dy if need_input_grad else None


@LAYERS.register()
class PlumbingMaskedMean(Layer):
    """Mean over the unmasked timesteps ``(batch, steps, features) -> (batch, features)``."""

    supports_masking = True

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)

    def forward(self, ctx, x, training=False):
        if ctx.mask is not None:
            self._seen_dtype = ctx.mask.dtype
        mask = np.ones(x.shape[:2], bool) if ctx.mask is None else ctx.mask
        weights = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        ctx.weights = weights.astype(x.dtype)
        return np.einsum("nt,ntf->nf", ctx.weights, x)

    def backward(self, ctx, dy, need_input_grad=True):
        return ctx.weights[:, :, None] * dy[:, None, :] if need_input_grad else None

    def compute_mask(self, inputs, mask=None):
        return None


@LAYERS.register()
class PlumbingSumWithState(Layer):
    """``[x.sum(1) + state, 3 * state]``: a call argument tensor and two outputs."""

    _tensor_call_arguments = ("initial_state",)

    def compute_output_shape(self, input_shape):
        features = (input_shape[0] if isinstance(input_shape, list) else input_shape)[-1]
        return [(features,), (features,)]

    def forward(self, ctx, x, training=False):
        if isinstance(x, list):
            x, state = x
        else:
            state = np.zeros((x.shape[0], x.shape[-1]), x.dtype)
        ctx.steps, ctx.with_state = x.shape[1], True
        return [x.sum(axis=1) + state, 3 * state]

    def backward(self, ctx, dy, need_input_grad=True):
        d_sum, d_state_out = dy
        zeros = np.zeros_like(d_state_out if d_sum is None else d_sum)
        d_sum = zeros if d_sum is None else d_sum
        d_state = d_sum + (zeros if d_state_out is None else 3 * d_state_out)
        dx = np.repeat(d_sum[:, None, :], ctx.steps, axis=1)
        return [dx, d_state]


def _sequences(seed=0, n=4, steps=5, features=3, lengths=(5, 3, 1, 4)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    for i, length in enumerate(lengths):
        x[i, length:] = 0.0
    return x, np.arange(steps)[None, :] < np.array(lengths)[:, None]


def test_masks_flow_through_supporting_layers_in_a_plan():
    x, mask = _sequences()
    inputs = minidl.Input((None, 3))
    hidden = PlumbingScale()(PlumbingMaskFromFirstFeature()(inputs))
    model = minidl.Model(inputs, PlumbingMaskedMean()(hidden))
    expected = (2 * x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(model(x).value, expected, rtol=1e-6)


def test_a_layer_without_masking_drops_the_mask_with_a_warning():
    x, _ = _sequences()
    inputs = minidl.Input((5, 3))
    hidden = PlumbingNoMask()(PlumbingMaskFromFirstFeature()(inputs))
    model = minidl.Model(inputs, PlumbingMaskedMean()(hidden))
    with pytest.warns(UserWarning, match="does not support masking"):
        out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, (x + 1).mean(axis=1), rtol=1e-6)


def test_a_plan_without_mask_layers_does_not_track_masks():
    inputs = minidl.Input((5, 3))
    model = minidl.Model(inputs, PlumbingNoMask()(PlumbingScale()(inputs)))
    assert not model._current_plan().uses_masks


def test_eager_calls_attach_and_read_masks():
    x, mask = _sequences()
    masked = PlumbingMaskFromFirstFeature()(x)
    np.testing.assert_array_equal(masked._keras_mask.value, mask)
    scaled = PlumbingScale()(masked)
    np.testing.assert_array_equal(scaled._keras_mask.value, mask)
    mean = PlumbingMaskedMean()(scaled)
    assert getattr(mean, "_keras_mask", None) is None
    expected = (2 * x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mean.value, expected, rtol=1e-6)
    # An explicit mask= wins over the attached one.
    everything = np.ones_like(mask)
    np.testing.assert_allclose(PlumbingMaskedMean()(scaled, mask=everything).value,
                               (2 * x).mean(axis=1), rtol=1e-6)


def test_an_explicit_symbolic_mask_argument():
    x, mask = _sequences()
    values = minidl.Input((5, 3))
    given = minidl.Input((5,), dtype="int32")
    model = minidl.Model([values, given], PlumbingMaskedMean()(values, mask=given))
    expected = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict([x, mask.astype(np.int32)], verbose=0),
                               expected, rtol=1e-6)
    assert model.layers[-1]._seen_dtype == np.bool_   # a mask argument arrives as booleans
    clone = minidl.Model.from_config(model.get_config())
    np.testing.assert_allclose(clone.predict([x, mask.astype(np.int32)], verbose=0),
                               expected, rtol=1e-6)


def test_the_output_mask_weighs_the_loss_as_keras_apply_mask():
    x, mask = _sequences()
    y = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    inputs = minidl.Input((5, 3))
    model = minidl.Model(inputs, PlumbingScale()(PlumbingMaskFromFirstFeature()(inputs)))
    model.compile("sgd", "mse", metrics=["mae"])
    loss, mae = model.evaluate(x, y, verbose=0, batch_size=4)
    per_step = ((2 * x - y) ** 2).mean(axis=-1)
    valid = mask.sum()
    expected = (per_step * mask).sum() * (mask.size / (valid + 1e-7)) / mask.size
    assert loss == pytest.approx(expected, rel=1e-5)
    expected_mae = (np.abs(2 * x - y).mean(axis=-1) * mask).sum() / valid
    assert mae == pytest.approx(expected_mae, rel=1e-5)
    # Training uses the same weights: one SGD step's loss is that of evaluate before it.
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_masked_loss_weights_follow_the_reduction():
    mask = np.array([[True, False], [True, True]])
    out = np.zeros((2, 2, 1), np.float32)
    mean = masked_loss_weights(None, mask, minidl.losses.MeanSquaredError(), out)
    np.testing.assert_allclose(mean, mask * 4 / (3 + 1e-7), rtol=1e-6)
    total = masked_loss_weights(np.array([2.0, 3.0]), mask,
                                minidl.losses.MeanSquaredError(reduction="sum"), out)
    np.testing.assert_allclose(total, mask * np.array([[2.0], [3.0]]))


def _state_model():
    sequences = minidl.Input((None, 3))
    state = minidl.Input((3,))
    summed, tripled = PlumbingSumWithState()(sequences, initial_state=state)
    return minidl.Model([sequences, state], [summed, tripled])


def test_initial_state_and_several_outputs():
    x, _ = _sequences()
    s = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    model = _state_model()
    summed, tripled = model.predict([x, s], verbose=0)
    np.testing.assert_allclose(summed, x.sum(axis=1) + s, rtol=1e-6)
    np.testing.assert_allclose(tripled, 3 * s, rtol=1e-6)
    assert [tuple(t.shape) for t in model.outputs] == [(None, 3), (None, 3)]
    clone = minidl.Model.from_config(model.get_config())
    np.testing.assert_allclose(clone.predict([x, s], verbose=0)[0], summed, rtol=1e-6)
    cloned = minidl.models.clone_model(model)
    np.testing.assert_allclose(cloned.predict([x, s], verbose=0)[1], tripled, rtol=1e-6)


def test_initial_state_gradients_reach_the_state_input():
    x, _ = _sequences()
    s = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    sequences = minidl.Input((5, 3))
    state_in = minidl.Input((3,))
    state = layers.Dense(3)(state_in)   # trainable: the gradient must reach it
    summed, tripled = PlumbingSumWithState()(sequences, initial_state=state)
    model = minidl.Model([sequences, state_in], [summed, tripled])
    model.compile("sgd", ["mse", "mse"])
    dense = model.layers[2] if isinstance(model.layers[2], layers.Dense) else \
        next(layer for layer in model.layers if isinstance(layer, layers.Dense))
    before = dense.get_weights()[0].copy()
    model.fit([x, s], [np.zeros((4, 3)), np.zeros((4, 3))], verbose=0, batch_size=4)
    assert not np.array_equal(before, dense.get_weights()[0])
    # The eager call under a tape: each output's gradient reaches the state.
    from minidl.autodiff import GradientTape
    layer = PlumbingSumWithState()
    st = minidl.Variable(s)
    with GradientTape() as tape:
        a, b = layer(x, initial_state=st)
        total = minidl.ops.sum(a) + minidl.ops.sum(b)
    grad = tape.gradient(total, st)
    np.testing.assert_allclose(np.asarray(grad), np.full((4, 3), 4.0))


def test_symbolic_calls_refuse_other_keywords():
    inputs = minidl.Input((5, 3))
    with pytest.raises(TypeError, match="initial_state"):
        PlumbingSumWithState()(inputs, bogus=inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PlumbingScale()(inputs, mask=None)   # None: no mask, nothing recorded


def _variable_length_model():
    inputs = minidl.Input((None, 8))
    pooled = layers.GlobalAveragePooling1D()(layers.Conv1D(4, 3)(inputs))
    model = minidl.Model(inputs, layers.Dense(1)(pooled))
    model.compile("adam", "mse")
    return model


def test_batches_of_different_lengths_in_one_fit():
    def batches(lengths, features=8):
        rng = np.random.default_rng(0)
        for length in lengths:
            yield (rng.random((4, length, features)).astype(np.float32),
                   rng.random((4, 1)).astype(np.float32))

    model = _variable_length_model()
    history = model.fit(batches([5, 9, 6, 12]), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(np.zeros((2, 30, 8), np.float32), verbose=0).shape == (2, 1)
    # A size the model fixes (features) must still match batch 0.
    with pytest.raises(ValueError, match="y must have shape"):
        model.fit(iter([(np.zeros((4, 5, 8), np.float32), np.zeros((4, 1), np.float32)),
                        (np.zeros((4, 5, 8), np.float32), np.zeros((4, 2), np.float32))]),
                  epochs=1, verbose=0)
