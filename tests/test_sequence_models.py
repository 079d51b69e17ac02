"""Sequence models end to end: per-timestep targets, masks from Embedding(mask_zero) over
them, and label checks for sequence outputs."""
import numpy as np
import pytest

import minidl
from minidl import layers


def _tagger(vocabulary=50, classes=5):
    minidl.utils.set_random_seed(3)
    ids = minidl.Input((None,), dtype="int32")
    hidden = layers.Embedding(vocabulary, 8, mask_zero=True)(ids)
    model = minidl.Model(ids, layers.Dense(classes, activation="softmax")(hidden))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_per_step_labels_count_only_the_unmasked_steps():
    x = minidl.utils.pad_sequences([[1, 2, 3, 9], [4, 5], [6]], padding="post")
    y = np.array([[1, 2, 3, 4], [4, 0, 0, 0], [1, 0, 0, 0]])
    model = _tagger()
    model.fit(x, y, epochs=1, verbose=0)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    probs = model.predict(x, verbose=0)
    mask = x != 0
    ce = -np.log(np.take_along_axis(probs, y[..., None], -1)[..., 0])
    assert loss == pytest.approx((ce * mask).sum() / mask.sum(), rel=1e-5)
    assert accuracy == pytest.approx(((probs.argmax(-1) == y) & mask).sum() / mask.sum())


def test_per_step_labels_of_a_trailing_axis_of_one_and_bad_shapes():
    x = minidl.utils.pad_sequences([[1, 2, 3], [4, 5]], padding="post")
    y = np.array([[1, 2, 3], [4, 0, 0]])
    model = _tagger()
    same = model.evaluate(x, y[..., None], verbose=0)
    assert same == model.evaluate(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"labels of shape \(2, None\)"):
        model.evaluate(x, y[:, :, None, None], verbose=0)
    with pytest.raises(ValueError, match=r"y\[\[1, 2\]\] = 7 is not a valid class label"):
        model.evaluate(x, np.array([[1, 2, 3], [4, 0, 7]]), verbose=0)


def test_sequential_models_of_any_length_save_and_load(tmp_path):
    model = minidl.Sequential([layers.Input((None, 3)), layers.Dense(2)])
    model.build((None, None, 3))
    path = tmp_path / "m.minidl"
    model.save(path)
    loaded = minidl.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="positive ints or None"):
        minidl.Sequential([layers.Dense(2)]).build((None, 0, 3))


def test_sequence_to_sequence_targets_on_inputs_of_any_length():
    rng = np.random.default_rng(1)
    inputs = minidl.Input((None, 4))
    hidden = layers.GRU(5, return_sequences=True)(layers.LSTM(6, return_sequences=True)(inputs))
    model = minidl.Model(inputs, layers.TimeDistributed(layers.Dense(2))(hidden))
    model.compile("adam", "mse")
    history = model.fit(rng.normal(size=(16, 9, 4)), rng.normal(size=(16, 9, 2)), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(rng.normal(size=(3, 11, 4)), verbose=0).shape == (3, 11, 2)
    with pytest.raises(ValueError, match=r"y must have shape \(16, None, 2\)"):
        model.fit(rng.normal(size=(16, 9, 4)), rng.normal(size=(16, 9, 3)), verbose=0)
