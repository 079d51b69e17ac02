"""Datasets from directories and arrays (image_dataset_from_directory,
text_dataset_from_directory, timeseries_dataset_from_array, split_dataset), normalize, and
the image utilities, against Keras' documented behaviour and numpy / Pillow references."""
import io
import os
import random
import sys

import numpy as np
import pytest
from PIL import Image

import minidl
from minidl.utils import (Dataset, array_to_img, image_dataset_from_directory, img_to_array,
                          load_img, normalize, save_img, split_dataset,
                          text_dataset_from_directory, timeseries_dataset_from_array)

# Each class's images are a solid colour, so a label can be checked against its image.
CLASS_COLOURS = {"a_cats": (200, 10, 10), "b_dogs": (10, 200, 10), "c_owls": (10, 10, 200)}


@pytest.fixture
def image_tree(tmp_path):
    """3 classes x 4 images of assorted sizes (PNG, and one BMP and GIF), plus files and
    folders that must be ignored."""
    root = tmp_path / "images"
    for name, colour in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(4):
            image = Image.new("RGB", (10 + 3 * i, 8 + i), colour)
            extension = {0: "png", 1: "PNG", 2: "bmp", 3: "gif"}[i]
            image.save(root / name / f"img_{i}.{extension}")
        (root / name / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.new("RGB", (4, 4)).save(root / ".hidden" / "x.png")
    return root


def all_batches(dataset):
    xs, ys = zip(*dataset)
    return np.concatenate(xs), np.concatenate(ys)


def colour_index(images):
    """The class whose colour each (solid) image has."""
    colours = np.array(list(CLASS_COLOURS.values()), dtype=np.float32)
    means = images.mean(axis=(1, 2))
    return np.argmin(((means[:, None, :] - colours[None]) ** 2).sum(-1), axis=1)


# ---- image_dataset_from_directory ----

def test_image_dataset_labels_sizes_and_message(image_tree, capsys):
    ds = image_dataset_from_directory(image_tree, image_size=(6, 5), batch_size=5, seed=3)
    assert capsys.readouterr().out == "Found 12 files belonging to 3 classes.\n"
    assert ds.class_names == ["a_cats", "b_dogs", "c_owls"]
    assert len(ds) == 3 and len(ds.file_paths) == 12
    images, labels = all_batches(ds)
    assert images.shape == (12, 6, 5, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(colour_index(images), labels)
    np.testing.assert_allclose(images[labels == 0][:, 2, 2], [[200, 10, 10]] * 4, atol=1e-3)
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4


def test_image_dataset_without_shuffle_is_alphanumeric(image_tree):
    ds = image_dataset_from_directory(image_tree, image_size=(4, 4), shuffle=False,
                                      verbose=False)
    expected = [os.path.join(str(image_tree), name, f"img_{i}.{ext}")
                for name in CLASS_COLOURS for i, ext in enumerate(["png", "PNG", "bmp", "gif"])]
    assert ds.file_paths == expected
    _, labels = all_batches(ds)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_files_are_shuffled_as_keras_does(image_tree):
    # Keras: sorted paths, then np.random.RandomState(seed).shuffle(file_paths).
    ordered = image_dataset_from_directory(image_tree, shuffle=False, verbose=False).file_paths
    np.random.RandomState(21).shuffle(ordered)
    ds = image_dataset_from_directory(image_tree, seed=21, verbose=False)
    assert ds.file_paths == ordered


def test_validation_split_has_no_overlap_and_follows_the_seed(image_tree):
    kwargs = dict(image_size=(4, 4), validation_split=0.25, seed=11, verbose=False)
    train, val = image_dataset_from_directory(image_tree, subset="both", **kwargs)
    assert len(train.file_paths) == 9 and len(val.file_paths) == 3
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(set(train.file_paths) | set(val.file_paths)) == 12
    again_train = image_dataset_from_directory(image_tree, subset="training", **kwargs)
    again_val = image_dataset_from_directory(image_tree, subset="validation", **kwargs)
    assert again_train.file_paths == train.file_paths
    assert again_val.file_paths == val.file_paths
    other = image_dataset_from_directory(image_tree, subset="validation",
                                         **{**kwargs, "seed": 12})
    assert other.file_paths != val.file_paths
    images, labels = all_batches(val)
    np.testing.assert_array_equal(colour_index(images), labels)
    # The validation subset of 'both' keeps one order; the training data reshuffles.
    assert all_batches(val)[1].tolist() == labels.tolist()


def test_label_modes(image_tree):
    common = dict(image_size=(4, 4), seed=0, verbose=False)
    images, onehot = all_batches(image_dataset_from_directory(
        image_tree, label_mode="categorical", **common))
    assert onehot.dtype == np.float32 and onehot.shape == (12, 3)
    np.testing.assert_array_equal(onehot, np.eye(3, dtype=np.float32)[colour_index(images)])

    binary = image_dataset_from_directory(image_tree, label_mode="binary",
                                          class_names=["c_owls", "a_cats"], **common)
    assert binary.class_names == ["c_owls", "a_cats"]
    images, labels = all_batches(binary)
    assert labels.shape == (8, 1) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels[:, 0], (colour_index(images) == 0).astype(np.float32))

    # No labels: as Keras, the whole tree is read (hidden folders too) and there are no
    # class names.
    unlabelled = image_dataset_from_directory(image_tree, label_mode=None, **common)
    batch = next(iter(unlabelled))
    assert isinstance(batch, np.ndarray) and batch.shape == (13, 4, 4, 3)
    assert unlabelled.class_names is None


def test_explicit_and_no_labels(image_tree):
    flat = image_tree / "a_cats"
    ds = image_dataset_from_directory(flat, labels=[1, 0, 1, 1], shuffle=False,
                                      image_size=(3, 3), verbose=False)
    assert ds.class_names == ["0", "1"]
    assert all_batches(ds)[1].tolist() == [1, 0, 1, 1]
    ds = image_dataset_from_directory(flat, labels=None, image_size=(3, 3), verbose=False)
    assert ds.class_names is None and next(iter(ds)).shape == (4, 3, 3, 3)


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_color_modes(image_tree, color_mode, channels):
    ds = image_dataset_from_directory(image_tree / "a_cats", labels=None, image_size=(5, 5),
                                      color_mode=color_mode, verbose=False, batch_size=None)
    first = next(iter(ds))
    assert first.shape == (5, 5, channels) and first.dtype == np.float32
    reference = Image.new("RGB", (1, 1), CLASS_COLOURS["a_cats"])
    mode = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]
    expected = np.asarray(reference.convert(mode), dtype=np.float32).reshape(channels)
    np.testing.assert_allclose(first[2, 2], expected, atol=1e-3)


def test_resizing_matches_pillow_and_aspect_ratio_options(tmp_path):
    root = tmp_path / "one" / "only"
    root.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "x.png")
    load = lambda **kw: next(iter(image_dataset_from_directory(  # noqa: E731
        tmp_path / "one", label_mode=None, batch_size=None, verbose=False, **kw)))

    nearest = load(image_size=(8, 16), interpolation="nearest")
    expected = np.asarray(Image.fromarray(pixels).resize((16, 8), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(nearest, expected.astype(np.float32))
    bilinear = load(image_size=(3, 5))
    channel = Image.fromarray(pixels[:, :, 1].astype(np.float32)).resize(
        (5, 3), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(bilinear[:, :, 1], np.asarray(channel), rtol=1e-6)

    cropped = load(image_size=(4, 4), crop_to_aspect_ratio=True)
    np.testing.assert_array_equal(cropped, pixels[:, 2:6].astype(np.float32))
    padded = load(image_size=(8, 8), pad_to_aspect_ratio=True)
    assert padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[2:6], pixels.astype(np.float32))
    assert not padded[:2].any() and not padded[6:].any()
    channels_first = load(image_size=(4, 8), data_format="channels_first")
    np.testing.assert_array_equal(channels_first, pixels.transpose(2, 0, 1))


def test_jpeg_images_load(tmp_path):
    (tmp_path / "k").mkdir()
    Image.new("RGB", (9, 7), (120, 60, 30)).save(tmp_path / "k" / "a.jpg", quality=95)
    Image.new("RGB", (9, 7), (120, 60, 30)).save(tmp_path / "k" / "b.jpeg", quality=95)
    images, labels = all_batches(image_dataset_from_directory(tmp_path, image_size=(7, 9),
                                                              verbose=False))
    assert images.shape == (2, 7, 9, 3) and labels.tolist() == [0, 0]
    np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), [120, 60, 30], atol=3)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(validation_split=0.2), ValueError, "`subset` is set, `validation_split` must"),
    (dict(subset="training"), ValueError, "`subset` is set, `validation_split` must"),
    (dict(validation_split=0.2, subset="training"), ValueError, "must provide a `seed`"),
    (dict(validation_split=1.5, subset="training", seed=1), ValueError, "between 0 and 1"),
    (dict(validation_split=0.2, subset="test", seed=1), ValueError, "subset='test'"),
    (dict(label_mode="sparse"), ValueError, "label_mode='sparse'"),
    (dict(color_mode="cmyk"), ValueError, "color_mode='cmyk'"),
    (dict(image_size=(0, 4)), ValueError, r"image_size=\(0, 4\)"),
    (dict(interpolation="gaussian"), ValueError, "no Pillow filter"),
    (dict(batch_size=0), ValueError, "batch_size=0"),
    (dict(label_mode="binary"), ValueError, "exactly 2"),
    (dict(class_names=["a_cats", "zebras"]), ValueError, "did not match"),
    (dict(labels=[0, 1], class_names=["a"]), ValueError, "only pass `class_names`"),
    (dict(labels=[0, 1]), ValueError, "len\\(labels\\) is 2 while we found 13"),
    (dict(labels="folders"), ValueError, "labels='folders'"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, "Only one of"),
    (dict(data_format="nhwc"), ValueError, "data_format='nhwc'"),
])
def test_image_dataset_argument_errors(image_tree, kwargs, error, message):
    with pytest.raises(error, match=message):
        image_dataset_from_directory(image_tree, verbose=False, **kwargs)


def test_empty_and_missing_directories(tmp_path):
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="No files found in directory"):
        image_dataset_from_directory(tmp_path, verbose=False)
    with pytest.raises(ValueError, match="does not exist"):
        image_dataset_from_directory(tmp_path / "nowhere", verbose=False)


def test_missing_pillow_names_the_extra(image_tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"minidl\[image\]"):
        load_img(image_tree / "a_cats" / "img_0.png")
    with pytest.raises(ImportError, match=r"minidl\[image\]"):
        image_dataset_from_directory(image_tree, verbose=False)


# ---- text_dataset_from_directory ----

@pytest.fixture
def text_tree(tmp_path):
    root = tmp_path / "texts"
    for label, name in enumerate(["neg", "pos"]):
        (root / name).mkdir(parents=True)
        for i in range(3):
            (root / name / f"{i}.txt").write_text(f"{name} review number {i} héllo",
                                                  encoding="utf-8")
        (root / name / "skip.md").write_text("ignored")
    return root


def test_text_dataset(text_tree, capsys):
    ds = text_dataset_from_directory(text_tree, batch_size=4, seed=5)
    assert capsys.readouterr().out == "Found 6 files belonging to 2 classes.\n"
    assert ds.class_names == ["neg", "pos"] and len(ds) == 2
    texts, labels = all_batches(ds)
    assert texts.dtype == object and all(type(t) is str for t in texts)
    assert sorted(texts.tolist()) == sorted(
        f"{name} review number {i} héllo" for name in ("neg", "pos") for i in range(3))
    for text, label in zip(texts, labels):
        assert text.startswith(["neg", "pos"][label])
    short = text_dataset_from_directory(text_tree, max_length=5, shuffle=False, verbose=False,
                                        label_mode="categorical", batch_size=None)
    first_text, first_label = next(iter(short))
    assert first_text == "neg r" and first_label.tolist() == [1.0, 0.0]


def test_text_dataset_split_and_errors(text_tree):
    train, val = text_dataset_from_directory(text_tree, validation_split=0.34, subset="both",
                                             seed=2, verbose=False)
    assert len(train.file_paths) == 4 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    with pytest.raises(ValueError, match="max_length=0"):
        text_dataset_from_directory(text_tree, max_length=0)
    with pytest.raises(ValueError, match="must provide a `seed`"):
        text_dataset_from_directory(text_tree, validation_split=0.5, subset="training")


# ---- timeseries_dataset_from_array ----

def windows_reference(data, targets, length, stride, rate, start, end):
    """Every window of the Keras docstring's definition, with a plain loop."""
    start = start or 0
    end = len(data) if end is None else end
    xs, ys, i = [], [], start
    while i + (length - 1) * rate < end and (targets is None or i - start < len(targets)):
        xs.append(data[i:i + (length - 1) * rate + 1:rate])
        if targets is not None:
            ys.append(targets[i])
        i += stride
    return np.array(xs), np.array(ys)


def test_timeseries_docstring_example_1():
    ds = timeseries_dataset_from_array(np.arange(99), None, sequence_length=10,
                                       sampling_rate=2, sequence_stride=3, batch_size=1000)
    windows = next(iter(ds))
    np.testing.assert_array_equal(windows[0], [0, 2, 4, 6, 8, 10, 12, 14, 16, 18])
    np.testing.assert_array_equal(windows[1], [3, 5, 7, 9, 11, 13, 15, 17, 19, 21])
    np.testing.assert_array_equal(windows[2], [6, 8, 10, 12, 14, 16, 18, 20, 22, 24])
    np.testing.assert_array_equal(windows[-1], [78, 80, 82, 84, 86, 88, 90, 92, 94, 96])


def test_timeseries_docstring_example_2():
    data = np.random.default_rng(0).random(50)
    ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
    inputs, targets = next(iter(ds))
    np.testing.assert_array_equal(inputs[0], data[:10])
    assert targets[0] == data[10]
    assert inputs.shape == (31, 10)


def test_timeseries_docstring_example_3():
    x = np.arange(100)
    y = x * 2
    inputs = timeseries_dataset_from_array(x, None, sequence_length=20, sequence_stride=20)
    targets = timeseries_dataset_from_array(y, None, sequence_length=20, sequence_stride=20)
    for batch_x, batch_y in zip(inputs, targets):
        np.testing.assert_array_equal(batch_x[0], x[:20])
        np.testing.assert_array_equal(batch_y[1], y[20:40])


@pytest.mark.parametrize("length, stride, rate, start, end, batch", [
    (5, 1, 1, None, None, 7), (4, 3, 2, 5, None, 4), (3, 2, 3, None, 40, 5),
    (6, 5, 1, 3, 47, None)])
def test_timeseries_matches_reference(length, stride, rate, start, end, batch):
    data = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    targets = np.arange(50) * 10
    ds = timeseries_dataset_from_array(data, targets, length, sequence_stride=stride,
                                       sampling_rate=rate, batch_size=batch,
                                       start_index=start, end_index=end)
    want_x, want_y = windows_reference(data, targets, length, stride, rate, start, end)
    if batch is None:
        got_x = np.stack([x for x, _ in ds])
        got_y = np.array([y for _, y in ds])
    else:
        got_x, got_y = all_batches(ds)
        assert [len(b[0]) for b in ds][:-1] == [batch] * (len(ds) - 1)
    np.testing.assert_array_equal(got_x, want_x)
    np.testing.assert_array_equal(got_y, want_y)
    assert got_x.dtype == np.float32


def test_timeseries_shuffle_is_a_seeded_permutation_of_the_windows():
    data = np.arange(60)
    kwargs = dict(sequence_length=4, batch_size=8, shuffle=True, seed=9)
    ds = timeseries_dataset_from_array(data, data * 3, **kwargs)
    x, y = all_batches(ds)
    plain_x, _ = windows_reference(data, data * 3, 4, 1, 1, None, None)
    assert sorted(map(tuple, x.tolist())) == sorted(map(tuple, plain_x.tolist()))
    assert x[:, 0].tolist() != plain_x[:, 0].tolist()
    np.testing.assert_array_equal(y, x[:, 0] * 3)  # each target stays with its window
    again = timeseries_dataset_from_array(data, data * 3, **kwargs)
    np.testing.assert_array_equal(all_batches(again)[0], x)


@pytest.mark.parametrize("kwargs, message", [
    (dict(start_index=-1), "start_index=-1"),
    (dict(start_index=30), "start_index=30, for data of length 30"),
    (dict(start_index=10, end_index=5), "start_index=10, and end_index=5"),
    (dict(end_index=30), "end_index=30, for data of length 30"),
    (dict(sampling_rate=0), "sampling_rate=0"),
    (dict(sequence_stride=30), "sequence_stride=30"),
    (dict(sequence_length=0), "sequence_length=0"),
    (dict(batch_size=-4), "batch_size=-4"),
])
def test_timeseries_argument_errors(kwargs, message):
    arguments = {"sequence_length": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        timeseries_dataset_from_array(np.arange(30), None, **arguments)


# ---- split_dataset ----

def test_split_dataset_array_fraction():
    data = np.random.default_rng(0).random((1000, 4))
    left, right = split_dataset(data, left_size=0.8)
    assert left.cardinality() == 800 and right.cardinality() == 200
    np.testing.assert_array_equal(np.stack(list(left)), data[:800])
    np.testing.assert_array_equal(np.stack(list(right)), data[800:])


def test_split_dataset_shuffle_follows_keras_python_random():
    x, y = np.arange(20) * 1.0, np.arange(20)
    left, right = split_dataset((x, y), left_size=5, right_size=10, shuffle=True, seed=4)
    order = list(range(20))
    random.seed(4)
    random.shuffle(order)  # what Keras does to the list of samples
    assert [int(b) for _, b in left] == order[:5]
    assert [int(b) for _, b in right] == order[-10:]
    assert all(a == b for a, b in left)


def test_split_dataset_sizes_rounding_and_complement():
    left, right = split_dataset(np.arange(7), right_size=0.3)
    assert (len(left), len(right)) == (5, 2)
    left, right = split_dataset([np.arange(7), np.arange(7)], left_size=3)
    assert (len(left), len(right)) == (3, 4)


def test_split_dataset_of_a_batched_dataset_rebatches():
    ds = Dataset.from_tensor_slices({"a": np.arange(10), "b": np.arange(10) * 2}).batch(3)
    left, right = split_dataset(ds, left_size=0.6)
    assert [b["a"].tolist() for b in left] == [[0, 1, 2], [3, 4, 5]]
    assert [b["b"].tolist() for b in right] == [[12, 14, 16], [18]]
    # Prefetching (as the directory readers do) keeps the batch size known.
    left, right = split_dataset(ds.prefetch(2), left_size=0.6)
    assert [b["a"].tolist() for b in left] == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(), ValueError, "At least one of"),
    (dict(left_size=0, right_size=0), ValueError, "Both `left_size` and `right_size` are zero"),
    (dict(left_size=10), ValueError, "left_size=10"),
    (dict(left_size=1.2), ValueError, "left_size=1.2"),
    (dict(right_size=-1), ValueError, "right_size=-1"),
    (dict(left_size=0.7, right_size=0.5), ValueError, "greater than 1"),
    (dict(left_size=6, right_size=6), ValueError, "should be smaller"),
    (dict(left_size="half"), TypeError, "left_size='half'"),
    (dict(left_size=0.01), ValueError, "left split empty"),
])
def test_split_dataset_size_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        split_dataset(np.arange(10), **kwargs)


def test_split_dataset_input_errors():
    with pytest.raises(TypeError, match="dataset of type int"):
        split_dataset(3, left_size=0.5)
    with pytest.raises(ValueError, match="length 4 and tensors\\[1\\] of length 3"):
        split_dataset((np.arange(4), np.arange(3)), left_size=0.5)
    with pytest.raises(ValueError, match="infinite"):
        split_dataset(Dataset.range(3).repeat(), left_size=0.5)


# ---- normalize ----

@pytest.mark.parametrize("order", [1, 2, 3, np.inf])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_normalize_matches_numpy(order, axis):
    x = np.random.default_rng(1).standard_normal((4, 5, 3))
    x[1, :, :] = 0  # zero-norm slices stay zero
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    expected = x / np.where(norm == 0, 1, norm)
    got = normalize(x, axis=axis, order=order)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.isfinite(got).all()


def test_normalize_dtypes_and_errors():
    assert normalize(np.ones((2, 3), np.float32)).dtype == np.float32
    np.testing.assert_allclose(normalize([[3, 4]]), [[0.6, 0.8]])
    with pytest.raises(ValueError, match="axis=2"):
        normalize(np.ones((2, 3)), axis=2)
    with pytest.raises(TypeError, match="dtype"):
        normalize(["a"])


# ---- image utilities ----

def test_array_img_round_trips():
    pixels = np.random.default_rng(2).integers(0, 256, (5, 7, 3)).astype(np.float32)
    pixels[0, 0] = [0, 0, 0]
    pixels[0, 1] = [255, 255, 255]
    image = array_to_img(pixels)
    assert image.mode == "RGB" and image.size == (7, 5)
    np.testing.assert_array_equal(img_to_array(image), pixels)
    first = img_to_array(array_to_img(pixels.transpose(2, 0, 1), data_format="channels_first"),
                         data_format="channels_first")
    np.testing.assert_array_equal(first, pixels.transpose(2, 0, 1))
    assert img_to_array(image, dtype="uint8").dtype == np.uint8
    scaled = img_to_array(array_to_img(np.linspace(0, 1, 12).reshape(2, 2, 3)))
    assert scaled.min() == 0 and scaled.max() == 255
    gray = array_to_img(np.full((3, 3, 1), 7.0), scale=False)
    assert gray.mode == "L" and img_to_array(gray).shape == (3, 3, 1)
    assert array_to_img(np.full((2, 2, 1), 1000.0), scale=False).mode == "I"
    assert array_to_img(np.zeros((2, 2, 4))).mode == "RGBA"


def test_save_and_load_img(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (6, 8, 4)).astype(np.float32)
    path = tmp_path / "x.png"
    save_img(path, pixels, scale=False)
    np.testing.assert_array_equal(img_to_array(load_img(path, color_mode="rgba")), pixels)
    np.testing.assert_array_equal(img_to_array(load_img(str(path))), pixels[:, :, :3])
    gray = img_to_array(load_img(path, color_mode="grayscale"))
    expected = np.asarray(Image.open(path).convert("L"), dtype=np.float32)[..., None]
    np.testing.assert_array_equal(gray, expected)

    resized = load_img(path, target_size=(3, 5), interpolation="bilinear")
    reference = Image.open(path).convert("RGB").resize((5, 3), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(np.asarray(resized), np.asarray(reference))
    kept = load_img(path, target_size=(6, 6), keep_aspect_ratio=True)
    np.testing.assert_array_equal(np.asarray(kept), pixels[:, 1:7, :3].astype(np.uint8))

    buffer = io.BytesIO()
    save_img(buffer, pixels[:, :, :3], file_format="png", scale=False)
    buffer.seek(0)
    np.testing.assert_array_equal(img_to_array(load_img(buffer)), pixels[:, :, :3])
    with pytest.warns(UserWarning, match="RGBA"):
        save_img(tmp_path / "x.jpg", pixels)
    assert load_img(tmp_path / "x.jpg").mode == "RGB"


def test_image_util_errors(tmp_path):
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="2 channels"):
        array_to_img(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="color_mode='hsv'"):
        load_img(tmp_path / "x.png", color_mode="hsv")
    with pytest.raises(ValueError, match="interpolation='cubic'"):
        load_img(tmp_path / "x.png", target_size=(2, 2), interpolation="cubic")
    with pytest.raises(TypeError, match="path of type int"):
        load_img(5)


def test_preprocessing_namespace():
    assert minidl.preprocessing.image_dataset_from_directory is image_dataset_from_directory
    assert minidl.preprocessing.timeseries_dataset_from_array is timeseries_dataset_from_array
    assert minidl.preprocessing.image.load_img is load_img
    out = minidl.preprocessing.image.smart_resize(np.ones((4, 8, 3)), (2, 2))
    assert out.shape == (2, 2, 3) and np.allclose(out, 1)


def test_unreadable_image_and_bad_categorical_labels(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "broken.png").write_bytes(b"not a png at all")
    ds = image_dataset_from_directory(tmp_path, verbose=False)
    with pytest.raises(ValueError, match="broken.png"):
        list(ds)
    Image.new("RGB", (2, 2)).save(tmp_path / "c" / "fine.png")
    with pytest.raises(ValueError, match="a label 3"):
        image_dataset_from_directory(tmp_path / "c", labels=[0, 3], label_mode="categorical",
                                     verbose=False)
