"""Datasets from folders of files, from time series, and splits of a dataset in two.

The Keras 3 utilities ``image_dataset_from_directory``, ``text_dataset_from_directory``,
``timeseries_dataset_from_array`` and ``split_dataset``, returning minidl
:class:`~minidl.utils.dataset.Dataset` objects that ``fit`` takes as it takes a
``tf.data.Dataset``. The files are listed (and shuffled with the seed) before the
training / validation split, so the two subsets never share a file.
"""
import numbers
import os
import random

import numpy as np

from minidl.utils import image_utils
from minidl.utils.dataset import AUTOTUNE, Dataset
from minidl.utils.dataset_structure import batch_elements
from minidl.utils.random import _check_seed, global_rng

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TEXT_FORMATS = (".txt",)


# ---- argument checks shared by the directory readers ----

def _check_label_args(labels, label_mode, class_names):
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple)):
            raise ValueError(f"`labels` must be 'inferred', None, or a list/tuple of integer "
                             f"labels, one per file in the directory (in alphanumeric order "
                             f"of the file paths). Received: labels={labels!r:.200}")
        if class_names:
            raise ValueError(f"You can only pass `class_names` if labels='inferred'. "
                             f"Received: labels={labels!r:.200}, and "
                             f"class_names={class_names!r}")
        for i, label in enumerate(labels):
            if isinstance(label, bool) or not isinstance(label, numbers.Integral) or label < 0:
                raise ValueError(f"`labels` must hold non-negative ints. Received: "
                                 f"labels[{i}]={label!r}")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError(f"`label_mode` must be one of 'int', 'categorical', 'binary', or "
                         f"None. Received: label_mode={label_mode!r}")
    if class_names is not None and (not isinstance(class_names, (list, tuple)) or not all(
            isinstance(name, str) for name in class_names)):
        raise TypeError(f"`class_names` must be a list of subdirectory names (str). "
                        f"Received: class_names={class_names!r}")


def _check_batch_size(batch_size):
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, numbers.Integral) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None (no batching). "
                         f"Received: batch_size={batch_size!r}")


def _check_validation_split(validation_split, subset, shuffle, seed):
    if validation_split is not None and (isinstance(validation_split, bool) or not isinstance(
            validation_split, numbers.Real)):
        raise TypeError(f"`validation_split` must be a float between 0 and 1 or None. "
                        f"Received: validation_split={validation_split!r}")
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1. Received: "
                         f"validation_split={validation_split}")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f"`subset` must be 'training', 'validation', 'both' or None. "
                         f"Received: subset={subset!r}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError(f"If `subset` is set, `validation_split` must be set, and "
                         f"inversely. Received: validation_split={validation_split!r}, "
                         f"subset={subset!r}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must "
                         "provide a `seed` argument, to make sure that there is no overlap "
                         "between the training and validation subset.")
    if seed is not None:
        _check_seed(seed)


def _iter_files(directory, follow_links, formats):
    walk = sorted(os.walk(directory, followlinks=follow_links), key=lambda entry: entry[0])
    for root, _, files in walk:
        for name in sorted(files):
            if name.lower().endswith(formats):
                yield os.path.join(root, name)


def _index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links,
                     verbose):
    """List the files under ``directory`` with their integer labels.

    Returns:
        ``(file_paths, labels, class_names)``: labels an int32 array or None; the files in
        alphanumeric order, or shuffled with ``seed`` (paths and labels alike).
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"`directory` must be a path. Received: directory of type "
                        f"{type(directory).__name__}")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"`directory` does not exist or is not a directory. Received: "
                         f"directory={directory!r}")
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError(f"The `class_names` passed did not match the names of the "
                                 f"subdirectories of the target directory. Expected: "
                                 f"{subdirs} (or a subset of it), but received: "
                                 f"class_names={list(class_names)}")
            subdirs = list(class_names)
        paths, file_labels = [], []
        for index, subdir in enumerate(subdirs):
            found = list(_iter_files(os.path.join(directory, subdir), follow_links, formats))
            paths += found
            file_labels += [index] * len(found)
        file_labels = np.asarray(file_labels, dtype=np.int32)
        class_names = subdirs
    else:
        if class_names is not None:
            raise ValueError("When `labels` is None or a list, `class_names` cannot be "
                             "specified.")
        paths = list(_iter_files(directory, follow_links, formats))
        if labels is None:
            file_labels = None
        else:
            if len(labels) != len(paths):
                raise ValueError(f"Expected the lengths of `labels` to match the number of "
                                 f"files in the target directory. len(labels) is "
                                 f"{len(labels)} while we found {len(paths)} files in "
                                 f"directory {directory}.")
            file_labels = np.asarray(labels, dtype=np.int32)
            class_names = [str(label) for label in sorted(set(int(v) for v in labels))]
    if verbose:
        if file_labels is None:
            print(f"Found {len(paths)} files.")
        else:
            print(f"Found {len(paths)} files belonging to {len(class_names)} classes.")
    if shuffle:
        # Shuffled as Keras does (RandomState(seed)), one permutation for paths and labels.
        order = np.random.RandomState(seed).permutation(len(paths))
        paths = [paths[i] for i in order]
        if file_labels is not None:
            file_labels = file_labels[order]
    return paths, file_labels, class_names


def _split(paths, labels, validation_split, subset, verbose):
    """The training or validation part: the validation files are the last
    ``int(validation_split * n)`` of the (shuffled) list."""
    if not validation_split:
        return paths, labels
    n_validation = int(validation_split * len(paths))
    cut = len(paths) - n_validation
    if subset == "training":
        if verbose:
            print(f"Using {cut} files for training.")
        return paths[:cut], None if labels is None else labels[:cut]
    if verbose:
        print(f"Using {n_validation} files for validation.")
    return paths[cut:], None if labels is None else labels[cut:]


def _encode_labels(labels, label_mode, num_classes):
    if label_mode == "categorical" and len(labels) and labels.max() >= num_classes:
        raise ValueError(f"label_mode='categorical' needs labels below the number of classes "
                         f"({num_classes}: {num_classes} distinct labels). Received: a label "
                         f"{int(labels.max())}; number the classes 0 to {num_classes - 1}.")
    if label_mode == "binary":
        return labels.astype(np.float32)[:, None]
    if label_mode == "categorical":
        encoded = np.zeros((len(labels), num_classes), dtype=np.float32)
        encoded[np.arange(len(labels)), labels] = 1.0
        return encoded
    return labels


def _files_dataset(paths, labels, label_mode, num_classes, load, batch_size, shuffle, seed):
    """paths (+ labels) -> shuffled, loaded in parallel, batched, prefetched."""
    if label_mode:
        dataset = Dataset.from_tensor_slices(
            (np.asarray(paths, dtype=object), _encode_labels(labels, label_mode, num_classes)))
    else:
        dataset = Dataset.from_tensor_slices(np.asarray(paths, dtype=object))
    if shuffle:
        dataset = dataset.shuffle(8 * batch_size if batch_size else 1024, seed=seed)
    if label_mode:
        dataset = dataset.map(lambda path, label: (load(path), label),
                              num_parallel_calls=AUTOTUNE)
    else:
        dataset = dataset.map(load, num_parallel_calls=AUTOTUNE)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(AUTOTUNE)


def _datasets_from_directory(directory, labels, label_mode, class_names, formats, load,
                             batch_size, shuffle, seed, validation_split, subset, follow_links,
                             verbose):
    """The dataset (or, with ``subset='both'``, the two datasets) of the files of
    ``formats`` under ``directory``, each read by ``load(path)``: the steps that
    ``image_dataset_from_directory`` and ``text_dataset_from_directory`` share, once their
    arguments are checked."""
    if seed is None and shuffle:
        seed = int(global_rng().integers(1_000_000))
    paths, labels, class_names = _index_directory(
        directory, labels, formats, class_names, shuffle, seed, follow_links, verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"When passing label_mode='binary', there must be exactly 2 "
                         f"class_names. Received: class_names={class_names}")
    directory = os.fspath(directory)
    num_classes = len(class_names) if class_names else 0
    subsets = ("training", "validation") if subset == "both" else (subset,)
    datasets = []
    for part in subsets:
        part_paths, part_labels = _split(paths, labels, validation_split, part, verbose)
        if not part_paths:
            what = f"{part} " if part else ""
            raise ValueError(f"No {what}files found in directory {directory}. Allowed "
                             f"formats: {formats}")
        # With subset='both', the validation dataset keeps one order (as Keras).
        dataset = _files_dataset(part_paths, part_labels, label_mode, num_classes, load,
                                 batch_size, shuffle and not (subset == "both"
                                                              and part == "validation"), seed)
        dataset.class_names = class_names
        dataset.file_paths = part_paths
        datasets.append(dataset)
    return datasets if subset == "both" else datasets[0]


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True):
    """Generates a Dataset of images (and labels) from image files in a directory.

    With ``labels="inferred"`` the directory holds one subdirectory per class::

        main_directory/
            class_a/  a_image_1.jpg  a_image_2.jpg
            class_b/  b_image_1.jpg  b_image_2.jpg

    and the labels are the indices of the subdirectories in alphanumeric order
    (``class_a`` is 0). Supported formats: ``.jpeg``, ``.jpg``, ``.png``, ``.bmp``,
    ``.gif`` (the first frame). Files are decoded with Pillow, the optional extra
    ``pip install 'minidl[image]'``.

    Args:
        directory: the data directory.
        labels: ``"inferred"`` (from the subdirectories), None (no labels), or a list of
            integer labels, one per image file in alphanumeric order of the file paths.
        label_mode: ``"int"`` (int32 labels ``(batch,)``), ``"categorical"`` (one-hot
            float32 ``(batch, num_classes)``), ``"binary"`` (float32 ``(batch, 1)``, exactly
            2 classes) or None (images only).
        class_names: with ``labels="inferred"``, the subdirectories to use, in this order.
        color_mode: ``"grayscale"``, ``"rgb"`` or ``"rgba"`` (1, 3 or 4 channels).
        batch_size: batch size, or None to yield single images.
        image_size: ``(height, width)`` every image is resized to.
        shuffle: shuffle the files (else alphanumeric order). The training data is also
            reshuffled in a buffer of ``8 * batch_size`` at each epoch.
        seed: int for the shuffling; required with ``validation_split`` and ``shuffle``.
        validation_split: fraction of the files held out for validation.
        subset: ``"training"``, ``"validation"``, or ``"both"`` (returns both datasets);
            required with ``validation_split``.
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``,
            ``"lanczos3"`` or ``"lanczos5"`` (both Pillow's Lanczos-3). Resizing is
            Pillow's, in float32: when shrinking, its filters antialias, so values differ
            slightly from ``tf.image.resize``'s.
        follow_links: visit subdirectories that are symbolic links.
        crop_to_aspect_ratio: resize without distortion, cropping the largest centred
            window of the target aspect ratio.
        pad_to_aspect_ratio: resize without distortion, padding with zeros to the target
            aspect ratio.
        data_format: ``"channels_last"`` (the default, for None) or ``"channels_first"``.
        verbose: print how many files and classes were found.

    Returns:
        A Dataset yielding ``(images, labels)`` (or images alone when there are no labels),
        images float32 ``(batch, height, width, channels)`` in ``[0, 255]``, with
        attributes ``class_names`` and ``file_paths``. With ``subset="both"``, the list
        ``[train_dataset, validation_dataset]``.

    Example:
        >>> train_ds, val_ds = image_dataset_from_directory(
        ...     "flowers", validation_split=0.2, subset="both", seed=1337,
        ...     image_size=(180, 180), batch_size=32)
        Found 3670 files belonging to 5 classes.
    """
    _check_label_args(labels, label_mode, class_names)
    if labels is None or label_mode is None:
        labels = label_mode = None
    num_channels = image_utils._check_color_mode(color_mode)
    _check_batch_size(batch_size)
    image_size = image_utils.check_image_size(image_size, "image_size")
    interpolation = image_utils.check_resize_interpolation(interpolation)
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be "
                         "set to True.")
    data_format = image_utils.standardize_data_format(data_format)
    _check_validation_split(validation_split, subset, shuffle, seed)
    image_utils.pil_image_module("image_dataset_from_directory")

    def load(path):
        try:
            image = image_utils.open_image(path, "image_dataset_from_directory")
        except OSError as error:  # unreadable or not an image after all
            raise ValueError(f"Could not read the image file {path}: {error}") from error
        image = image_utils.convert_color(image, color_mode)
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            array = array[:, :, None]
        array = image_utils.resize_array(array, image_size, interpolation,
                                         crop_to_aspect_ratio, pad_to_aspect_ratio)
        if array.shape[2] != num_channels:
            raise ValueError(f"{path}: decoded {array.shape[2]} channels where color_mode="
                             f"{color_mode!r} needs {num_channels}.")
        return array.transpose(2, 0, 1) if data_format == "channels_first" else array

    return _datasets_from_directory(directory, labels, label_mode, class_names, IMAGE_FORMATS,
                                    load, batch_size, shuffle, seed, validation_split, subset,
                                    follow_links, verbose)


def text_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                class_names=None, batch_size=32, max_length=None, shuffle=True,
                                seed=None, validation_split=None, subset=None,
                                follow_links=False, verbose=True):
    """Generates a Dataset of texts (and labels) from ``.txt`` files in a directory.

    The layout and the labelling are those of :func:`image_dataset_from_directory`: one
    subdirectory per class with ``labels="inferred"``.

    Args:
        directory: the data directory.
        labels: ``"inferred"``, None, or a list of integer labels, one per file in
            alphanumeric order of the file paths.
        label_mode: ``"int"``, ``"categorical"``, ``"binary"`` or None.
        class_names: with ``labels="inferred"``, the subdirectories to use, in this order.
        batch_size: batch size, or None to yield single texts.
        max_length: keep at most this many characters of each text (tf.data counts bytes;
            minidl counts characters of the UTF-8 decoded text).
        shuffle: shuffle the files (else alphanumeric order).
        seed: int for the shuffling; required with ``validation_split`` and ``shuffle``.
        validation_split: fraction of the files held out for validation.
        subset: ``"training"``, ``"validation"`` or ``"both"``.
        follow_links: visit subdirectories that are symbolic links.
        verbose: print how many files and classes were found.

    Returns:
        A Dataset yielding ``(texts, labels)`` or texts alone; texts are object arrays of
        Python ``str`` (decoded as UTF-8, undecodable bytes replaced). With
        ``subset="both"``, the list ``[train_dataset, validation_dataset]``.
    """
    _check_label_args(labels, label_mode, class_names)
    if labels is None or label_mode is None:
        labels = label_mode = None
    _check_batch_size(batch_size)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(
            max_length, numbers.Integral) or max_length < 1):
        raise ValueError(f"`max_length` must be a positive int or None. Received: "
                         f"max_length={max_length!r}")
    _check_validation_split(validation_split, subset, shuffle, seed)

    def load(path):
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", errors="replace")
        return text if max_length is None else text[:max_length]

    return _datasets_from_directory(directory, labels, label_mode, class_names, TEXT_FORMATS,
                                    load, batch_size, shuffle, seed, validation_split, subset,
                                    follow_links, verbose)


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    return int(value)


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None):
    """Creates a Dataset of sliding windows over a time series given as an array.

    Window ``k`` starts at step ``start_index + k * sequence_stride`` and holds
    ``sequence_length`` steps spaced ``sampling_rate`` apart; windows that would run past
    ``end_index`` are dropped.

    Args:
        data: array of consecutive time steps; axis 0 is time.
        targets: array whose ``targets[i]`` is the target of the window starting at
            ``data[i]``, or None for windows alone.
        sequence_length: steps per window.
        sequence_stride: steps between the starts of consecutive windows.
        sampling_rate: steps between consecutive steps of a window.
        batch_size: windows per batch, or None to yield single windows.
        shuffle: shuffle the windows (else chronological order).
        seed: int for the shuffling.
        start_index: first step used (data before it is left out), or None for 0.
        end_index: steps from ``end_index`` on are left out, or None for the end.

    Returns:
        A Dataset yielding ``(windows, targets)`` batches, or windows alone for
        ``targets=None``; windows have shape ``(batch, sequence_length) + data.shape[1:]``.

    Example:
        With ``data = np.arange(100)``, ``sequence_length=10, sampling_rate=2,
        sequence_stride=3``: the windows are ``[0 2 4 ... 18]``, ``[3 5 7 ... 21]``, ...,
        ``[78 80 ... 96]``.

        >>> data = np.arange(100)
        >>> ds = timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=10)
        >>> x, y = next(iter(ds))
        >>> x[0], y[0]  # steps 0-9, and step 10 as target
        (array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), np.int64(10))
    """
    data = np.asarray(data)
    if data.ndim == 0:
        raise ValueError(f"`data` must be an array with time on axis 0. Received: a scalar "
                         f"{data!r}")
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 0:
            raise ValueError(f"`targets` must be an array (one target per step) or None. "
                             f"Received: a scalar {targets!r}")
    sequence_length = _check_positive_int(sequence_length, "sequence_length")
    sequence_stride = _check_positive_int(sequence_stride, "sequence_stride")
    sampling_rate = _check_positive_int(sampling_rate, "sampling_rate")
    _check_batch_size(batch_size)
    for name, value in (("start_index", start_index), ("end_index", end_index)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Integral)):
            raise TypeError(f"`{name}` must be an int or None. Received: {name}={value!r}")
    steps = len(data)
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: "
                             f"start_index={start_index}")
        if start_index >= steps:
            raise ValueError(f"`start_index` must be lower than the length of the data. "
                             f"Received: start_index={start_index}, for data of length "
                             f"{steps}")
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(f"`end_index` must be higher than `start_index`. Received: "
                             f"start_index={start_index}, and end_index={end_index}")
        if end_index >= steps:
            raise ValueError(f"`end_index` must be lower than the length of the data. "
                             f"Received: end_index={end_index}, for data of length {steps}")
    if end_index is not None and end_index <= 0:
        raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate >= steps:
        raise ValueError(f"`sampling_rate` must be lower than the length of the data. "
                         f"Received: sampling_rate={sampling_rate}, for data of length {steps}")
    if sequence_stride >= steps:
        raise ValueError(f"`sequence_stride` must be lower than the length of the data. "
                         f"Received: sequence_stride={sequence_stride}, for data of length "
                         f"{steps}")
    if seed is not None:
        _check_seed(seed)

    start_index = start_index or 0
    end_index = steps if end_index is None else end_index
    count = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        count = min(count, len(targets))
    starts = np.arange(0, max(count, 0), sequence_stride, dtype=np.int64)
    if shuffle:
        if seed is None:
            seed = int(global_rng().integers(1_000_000))
        np.random.RandomState(seed).shuffle(starts)
    offsets = np.arange(sequence_length, dtype=np.int64) * sampling_rate
    series = data[start_index:end_index]
    target_series = None if targets is None else targets[start_index:end_index]

    def gather(index):
        first = starts[index]
        windows = series[np.asarray(first)[..., None] + offsets]
        return windows if target_series is None else (windows, target_series[first])

    dataset = Dataset._from_access(lambda: (len(starts), gather), len(starts),
                                   static_access=True)
    if shuffle:
        dataset = dataset.shuffle(8 * batch_size if batch_size else 1024, seed=seed)
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset


def _size_type(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "bad"
    if isinstance(value, numbers.Integral):
        return int
    if isinstance(value, numbers.Real):
        return float
    return "bad"


def _split_sizes(left_size, right_size, total):
    """Keras' rules: an int is a count in ``(0, total)``, a float a fraction in ``(0, 1)``
    (rounded), a None the complement of the other."""
    left_type, right_type = _size_type(left_size), _size_type(right_size)
    for name, value, kind in (("left_size", left_size, left_type),
                              ("right_size", right_size, right_type)):
        if kind == "bad":
            raise TypeError(f"`{name}` must be an int, a float or None. Received: "
                            f"{name}={value!r} of type {type(value).__name__}")
    if left_size == 0 and right_size == 0:
        raise ValueError("Both `left_size` and `right_size` are zero. At least one of the "
                         "split sizes must be non-zero.")
    for name, value, kind in (("left_size", left_size, left_type),
                              ("right_size", right_size, right_type)):
        if (kind is int and not 0 < value < total) or (kind is float and not 0 < value < 1):
            raise ValueError(f"`{name}` should be either a positive integer smaller than "
                             f"{total}, or a float within the range `[0, 1]`. Received: "
                             f"{name}={value}")
    if left_type is float and right_type is float and left_size + right_size > 1:
        raise ValueError(f"The sum of `left_size` and `right_size` is greater than 1. It "
                         f"must be less than or equal to 1. Received: left_size={left_size}, "
                         f"right_size={right_size}")
    left = round(left_size * total) if left_type is float else left_size
    right = round(right_size * total) if right_type is float else right_size
    if left is None:
        left = total - right
    elif right is None:
        right = total - left
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than "
                         f"the dataset's length {total}. Received: left_size + right_size = "
                         f"{left + right}")
    for count, side in ((left, "left"), (right, "right")):
        if count == 0:
            raise ValueError(f"With a dataset of length {total}, left_size={left_size} and "
                             f"right_size={right_size} leave the {side} split empty. Adjust "
                             f"the sizes.")
    return int(left), int(right)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Splits a dataset into a left part and a right part (e.g. train / test).

    Args:
        dataset: a numpy array, a list or tuple of arrays of the same length, or a
            (finite) Dataset. A batched Dataset is split by samples and both parts are
            batched again with its batch size.
        left_size: float in ``(0, 1)``: the fraction of samples in the left part (rounded);
            int: their count; None: the complement of ``right_size``.
        right_size: the same for the right part, which takes the last samples.
        shuffle: shuffle the samples before splitting.
        seed: int for the shuffling (Python's ``random.Random(seed)``, as Keras).

    Returns:
        A tuple ``(left_dataset, right_dataset)`` of Datasets.

    Example:
        >>> data = np.random.random(size=(1000, 4))
        >>> left_ds, right_ds = split_dataset(data, left_size=0.8)
        >>> left_ds.cardinality(), right_ds.cardinality()
        (800, 200)
    """
    if left_size is None and right_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be "
                         "specified. Received: left_size=None and right_size=None")
    batch_size = None
    if isinstance(dataset, Dataset):
        batch_size = getattr(dataset, "_batch_size", None)
        if dataset.cardinality() == -1:
            raise ValueError("split_dataset cannot split an infinite dataset (one that "
                             "repeats forever); split it before repeat().")
        source = dataset.unbatch() if batch_size is not None else dataset
        samples = list(source)
        if not samples:
            raise ValueError("Received an empty dataset. Argument `dataset` must be a "
                             "non-empty array, list/tuple of arrays, or Dataset.")
        arrays = batch_elements(samples)  # checks one structure and shape throughout
    elif isinstance(dataset, np.ndarray):
        arrays = dataset
    elif isinstance(dataset, (list, tuple)):
        if not dataset:
            raise ValueError("Received an empty list/tuple dataset. Please provide a "
                             "non-empty list/tuple of arrays.")
        arrays = tuple(np.asarray(array) for array in dataset)
    else:
        raise TypeError(f"The `dataset` argument must be a numpy array, a list/tuple of "
                        f"arrays or a Dataset. Received: dataset of type "
                        f"{type(dataset).__name__}")
    whole = Dataset.from_tensor_slices(arrays)  # checks equal lengths, names a mismatch
    total = len(whole)
    if total == 0:
        raise ValueError("Received an empty dataset. Argument `dataset` must hold at least "
                         "one sample.")
    left, right = _split_sizes(left_size, right_size, total)
    order = list(range(total))
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(1e6))
        random.Random(seed).shuffle(order)
    order = np.asarray(order, dtype=np.intp)
    _, gather = whole._access()
    parts = []
    for indices in (order[:left], order[total - right:]):
        part = Dataset.from_tensor_slices(gather(indices))
        if batch_size is not None:
            part = part.batch(batch_size)
        parts.append(part)
    return tuple(parts)
