"""The TensorBoard callback: its event files, read back with TensorBoard's own reader, hold
the tags, steps and values Keras writes, equal to what fit reports."""
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import minidl
from minidl import callbacks, optimizers
from minidl.callbacks import CallbackList, LambdaCallback, TensorBoard
from minidl.callbacks.tensorboard import weight_image
from minidl.layers import Conv2D, Dense, Flatten
from minidl.models import Model, Sequential
from minidl.utils import set_random_seed

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")
pytest.importorskip("tensorboardX")

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCHS, BATCH, N_TRAIN, N_VAL = 3, 16, 48, 16
STEPS = N_TRAIN // BATCH   # batches per epoch


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N_TRAIN + N_VAL, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def small_model():
    set_random_seed(0)
    model = Sequential([Dense(6, activation="tanh", input_shape=(4,), name="hidden"),
                        Dense(3, activation="softmax", name="head")], name="net")
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, board, *extra, validation=True, epochs=EPOCHS):
    x, y = data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     validation_split=N_VAL / (N_TRAIN + N_VAL) if validation else 0.0,
                     callbacks=[board, *extra])


def read(directory):
    accumulator = event_accumulator.EventAccumulator(
        str(directory), size_guidance={"scalars": 0, "histograms": 0, "images": 0,
                                       "tensors": 0})
    return accumulator.Reload()


def scalars(accumulator, tag):
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def as_float32(values):
    return [float(np.float32(v)) for v in values]


def test_epoch_scalars_equal_history_in_train_and_validation(tmp_path):
    model = small_model()
    board = TensorBoard(tmp_path)
    history = fit(model, board).history
    assert board._writers == {}   # the files are closed at the end of fit
    train, val = read(tmp_path / "train"), read(tmp_path / "validation")
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy",
                                            "epoch_learning_rate"}
    steps = list(range(EPOCHS))
    for name in ("loss", "accuracy"):
        assert scalars(train, "epoch_" + name) == list(zip(steps, as_float32(history[name])))
        assert scalars(val, "epoch_" + name) == list(zip(steps,
                                                         as_float32(history["val_" + name])))
    assert scalars(train, "epoch_learning_rate") == [(s, np.float32(0.01)) for s in steps]
    # Each end of validation: evaluation_<name>_vs_iterations at the optimizer's step count.
    for name in ("loss", "accuracy"):
        assert scalars(val, f"evaluation_{name}_vs_iterations") == list(
            zip([STEPS * (e + 1) for e in steps], as_float32(history["val_" + name])))
    assert train.Tags()["histograms"] == [] and train.Tags()["images"] == []


def test_no_validation_directory_without_validation(tmp_path):
    fit(small_model(), TensorBoard(tmp_path), validation=False)
    assert sorted(os.listdir(tmp_path)) == ["train"]


def test_default_writes_nothing_per_batch(tmp_path):
    # No batch hook at update_freq='epoch': fit then builds no batch logs for the callback.
    assert not CallbackList([TensorBoard(tmp_path)]).wants("on_train_batch_end")
    assert not CallbackList([TensorBoard(tmp_path)]).wants("on_train_batch_begin")
    assert CallbackList([TensorBoard(tmp_path, update_freq=3)]).wants("on_train_batch_end")


@pytest.mark.parametrize("update_freq, every", [("batch", 1), (2, 2), (4, 4)])
def test_batch_scalars_every_n_batches_at_the_global_step(tmp_path, update_freq, every):
    seen = []   # the logs callbacks get after each batch, by global batch number
    recorder = LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    fit(small_model(), TensorBoard(tmp_path, update_freq=update_freq), recorder)
    train = read(tmp_path / "train")
    steps = [s for s in range(1, EPOCHS * STEPS + 1) if s % every == 0]
    for name in ("loss", "accuracy"):
        assert scalars(train, "batch_" + name) == [
            (s, float(np.float32(seen[s - 1][name]))) for s in steps]
    assert "batch_steps_per_second" not in train.Tags()["scalars"]


def test_steps_per_second(tmp_path):
    fit(small_model(), TensorBoard(tmp_path, update_freq=2, write_steps_per_second=True))
    train = read(tmp_path / "train")
    epoch_speed = scalars(train, "epoch_steps_per_second")
    batch_speed = scalars(train, "batch_steps_per_second")
    assert [s for s, _ in epoch_speed] == list(range(EPOCHS))
    assert [s for s, _ in batch_speed] == list(range(2, EPOCHS * STEPS + 1, 2))
    assert all(v > 0 for _, v in epoch_speed + batch_speed)


def test_histograms_of_every_weight_every_n_epochs(tmp_path):
    model = small_model()
    weights_at = {}
    recorder = LambdaCallback(on_epoch_end=lambda epoch, logs: weights_at.setdefault(
        epoch, [(v.path, np.asarray(v).astype(np.float64)) for v in model.weights]))
    fit(model, TensorBoard(tmp_path, histogram_freq=2), recorder)
    train = read(tmp_path / "train")
    tags = ["hidden/kernel", "hidden/bias", "head/kernel", "head/bias"]
    assert sorted(train.Tags()["histograms"]) == sorted(t + "/histogram" for t in tags)
    assert train.Tags()["images"] == []
    for path, _ in weights_at[0]:
        events = train.Histograms(path + "/histogram")
        assert [e.step for e in events] == [0, 2]
        for event in events:
            values = dict(weights_at[event.step])[path]
            h = event.histogram_value
            assert h.num == values.size and sum(h.bucket) == values.size
            assert h.min == pytest.approx(values.min(), abs=1e-7)
            assert h.max == pytest.approx(values.max(), abs=1e-7)
            assert h.sum == pytest.approx(values.sum(), rel=1e-6, abs=1e-9)
            assert h.sum_squares == pytest.approx((values ** 2).sum(), rel=1e-6, abs=1e-12)
            assert len(h.bucket) <= 31   # 30 equal-width buckets, and an empty one left
            if values.min() < values.max():
                counts, _ = np.histogram(values, bins=30)
                assert max(h.bucket) == counts.max()


def png_pixels(image_event):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)))


def test_weight_images(tmp_path):
    pytest.importorskip("PIL")
    model = small_model()
    fit(model, TensorBoard(tmp_path, histogram_freq=1, write_images=True), epochs=1)
    train = read(tmp_path / "train")
    assert sorted(train.Tags()["images"]) == sorted(
        f"{p}/image" for p in ("hidden/kernel", "hidden/bias", "head/kernel", "head/bias"))
    kernel = np.asarray(model.layers[0].kernel, dtype=np.float64)   # (4, 6): no transpose
    pixels = png_pixels(train.Images("hidden/kernel/image")[0])
    expected = np.rint((kernel - kernel.min()) / (kernel.max() - kernel.min()) * 255)
    assert pixels.shape == (4, 6, 3)   # grey, written as RGB
    np.testing.assert_array_equal(pixels[..., 0], expected.astype(np.uint8))
    # The (6, 3) kernel has more rows than columns: written transposed, as Keras.
    assert png_pixels(train.Images("head/kernel/image")[0]).shape == (3, 6, 3)
    assert png_pixels(train.Images("hidden/bias/image")[0]).shape == (6, 1, 3)


def test_weight_image_shapes():
    bias = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(weight_image(bias)[..., 0], [[[0], [128], [255]]])
    conv = np.arange(3 * 3 * 1 * 5, dtype=np.float64).reshape(3, 3, 1, 5)
    images = weight_image(conv)   # one 3x3 image per filter
    assert images.shape == (5, 3, 3, 1)
    np.testing.assert_array_equal(images[2, ..., 0] > 0, conv[..., 0, 2] > 0)
    assert weight_image(np.ones((3, 3, 2, 4))) is None   # 4 axes: not written
    assert not weight_image(np.full(4, 0.5)).any()       # a constant weight is black


def test_conv_kernel_images_are_tiled(tmp_path):
    pytest.importorskip("PIL")
    set_random_seed(0)
    model = Sequential([Conv2D(10, 3, input_shape=(5, 5, 1)), Flatten(), Dense(2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).standard_normal((8, 5, 5, 1)).astype(np.float32)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, verbose=0,
              callbacks=[TensorBoard(tmp_path, histogram_freq=1, write_images=True)])
    conv_path = model.layers[0].kernel.path
    pixels = png_pixels(read(tmp_path / "train").Images(conv_path + "/image")[0])
    assert pixels.shape == (2 * 3, 8 * 3, 3)   # 10 filters, 8 to a row
    expected = weight_image(np.asarray(model.layers[0].kernel))
    np.testing.assert_array_equal(pixels[3:6, 0:3, 0], expected[8, ..., 0])


def test_graph_is_the_model_architecture(tmp_path):
    model = small_model()
    fit(model, TensorBoard(tmp_path), epochs=1)
    train = read(tmp_path / "train")
    assert train.Tags()["tensors"] == ["keras"]
    assert train.SummaryMetadata("keras").plugin_data.plugin_name == "graph_keras_model"
    (event,) = train.Tensors("keras")
    architecture = event.tensor_proto.string_val[0].decode()
    assert event.step == 0 and architecture == model.to_json()
    # TensorBoard's graph plugin turns it into the conceptual graph.
    from tensorboard.plugins.graph import keras_util
    graph = keras_util.keras_model_to_graph_def(json.loads(architecture))
    assert [node.name for node in graph.node][-2:] == ["net/hidden", "net/head"]


class Subclassed(Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(4, name="sub_hidden")

    def call(self, x):
        return self.hidden(x)


def test_subclassed_model_has_no_graph_but_histograms(tmp_path):
    set_random_seed(0)
    model = Subclassed()
    model.compile("sgd", "mse")
    x = np.ones((8, 3), np.float32)
    model.fit(x, np.zeros((8, 4), np.float32), epochs=1, verbose=0,
              callbacks=[TensorBoard(tmp_path, histogram_freq=1)])
    train = read(tmp_path / "train")
    assert train.Tags()["tensors"] == []
    assert sorted(train.Tags()["histograms"]) == ["sub_hidden/bias/histogram",
                                                  "sub_hidden/kernel/histogram"]


def test_write_graph_false_writes_no_graph(tmp_path):
    fit(small_model(), TensorBoard(tmp_path, write_graph=False), epochs=1)
    assert read(tmp_path / "train").Tags()["tensors"] == []


def test_evaluate_writes_evaluation_scalars_and_closes(tmp_path):
    model = small_model()
    board = TensorBoard(tmp_path)
    fit(model, board)
    x, y = data(1)
    results = model.evaluate(x, y, verbose=0, callbacks=[board], return_dict=True)
    assert board._writers == {}   # closed at the end of evaluate, as after fit
    val = read(tmp_path / "validation")
    for name, value in results.items():
        assert scalars(val, f"evaluation_{name}_vs_iterations")[-1] == (
            EPOCHS * STEPS, float(np.float32(value)))
    # fit's and evaluate's event files both stay (made within the same second).
    assert len(os.listdir(tmp_path / "validation")) == 2


def test_events_flushed_every_epoch(tmp_path):
    written = []

    def check(epoch, logs):
        written.append([s for s, _ in scalars(read(tmp_path / "train"), "epoch_loss")])
    fit(small_model(), TensorBoard(tmp_path), LambdaCallback(on_epoch_end=check))
    assert written == [list(range(e + 1)) for e in range(EPOCHS)]


def test_missing_tensorboardx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install minidl\[tensorboard\]"):
        TensorBoard(tmp_path)


def test_missing_pillow_names_the_extra_for_images(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    TensorBoard(tmp_path, histogram_freq=1)   # images off: Pillow not needed
    with pytest.raises(ImportError, match=r"pip install minidl\[image\]"):
        TensorBoard(tmp_path, histogram_freq=1, write_images=True)


@pytest.mark.parametrize("kwargs, name", [
    (dict(update_freq="sometimes"), "update_freq"),
    (dict(update_freq=0), "update_freq"),
    (dict(update_freq=-2), "update_freq"),
    (dict(update_freq=True), "update_freq"),
    (dict(update_freq=1.5), "update_freq"),
    (dict(histogram_freq=-1), "histogram_freq"),
    (dict(histogram_freq=0.5), "histogram_freq"),
    (dict(histogram_freq=True), "histogram_freq"),
    (dict(embeddings_freq=-1), "embeddings_freq"),
    (dict(write_graph="yes"), "write_graph"),
    (dict(write_images=1), "write_images"),
    (dict(write_steps_per_second=None), "write_steps_per_second"),
    (dict(profile_batch=-1), "profile_batch"),
    (dict(profile_batch=(5, 2)), "profile_batch"),
    (dict(profile_batch=(1, 2, 3)), "profile_batch"),
    (dict(profile_batch="a,b"), "profile_batch"),
    (dict(profile_batch=True), "profile_batch"),
    (dict(profile_batch=2.5), "profile_batch"),
    (dict(embeddings_metadata=5), "embeddings_metadata"),
    (dict(log_dir=""), "log_dir"),
    (dict(log_dir=None), "log_dir"),
])
def test_bad_arguments(tmp_path, kwargs, name):
    kwargs.setdefault("log_dir", tmp_path)
    with pytest.raises(ValueError, match=rf"{name}=") as info:
        TensorBoard(**kwargs)
    assert repr(kwargs[name]) in str(info.value)


def test_log_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        TensorBoard(path)


@pytest.mark.parametrize("profile_batch", [3, (2, 4), "2,4", "5"])
def test_profile_batch_is_accepted_with_a_warning(tmp_path, profile_batch):
    with pytest.warns(UserWarning, match="no profiler"):
        board = TensorBoard(tmp_path, profile_batch=profile_batch)
    fit(small_model(), board, epochs=1)
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]


def test_profile_batch_zero_is_silent(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TensorBoard(tmp_path, profile_batch=0)
        TensorBoard(tmp_path, profile_batch=(0, 0))


def test_embeddings(tmp_path):
    with pytest.warns(UserWarning, match="no Embedding layer"):
        fit(small_model(), TensorBoard(tmp_path, embeddings_freq=1,
                                       embeddings_metadata="meta.tsv"), epochs=1)
    with pytest.raises(ValueError, match="Unrecognized `Embedding` layer names"):
        fit(small_model(), TensorBoard(tmp_path, embeddings_freq=1,
                                       embeddings_metadata={"dense": "meta.tsv"}), epochs=1)


def test_tensorboardx_is_imported_by_the_callback_only():
    code = ("import sys, minidl, minidl.callbacks; "
            "assert 'tensorboardX' not in sys.modules, 'imported with minidl'")
    # Outside the source tree, with the imported package first on the path: from the
    # repository root, `import minidl` would find the uncompiled sources (as in CI).
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir(),
                   env=dict(os.environ, PYTHONPATH=package_root))


def test_exported():
    assert callbacks.TensorBoard is TensorBoard
