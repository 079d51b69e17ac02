"""Images between files, Pillow images and numpy arrays (``keras.utils.load_img`` & co.).

Pillow is the optional extra ``pip install 'minidl[image]'``; it is imported on first use,
so ``import minidl`` never needs it. Arrays are ``(height, width, channels)`` float32
unless ``data_format='channels_first'`` or another ``dtype`` is asked for.
"""
import io
import numbers
import os
import pathlib
import warnings

import numpy as np

# Pillow's filters by the names load_img takes (Keras' PIL_INTERPOLATION_METHODS).
_PIL_FILTERS = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")
# Names image_dataset_from_directory and smart_resize take (tf.image.resize's), mapped to
# the Pillow filter that computes the same kind of kernel. 'gaussian' and 'mitchellcubic'
# have no Pillow counterpart.
_RESIZE_FILTERS = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic",
                   "area": "box", "lanczos3": "lanczos", "lanczos5": "lanczos"}
_COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


def pil_image_module(caller):
    """``PIL.Image``, or an ImportError that names the ``minidl[image]`` extra."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(f"{caller} needs Pillow: pip install 'minidl[image]' (or pip "
                          f"install pillow).") from error
    return Image


def _pil_filter(image_module, name):
    return getattr(image_module.Resampling, name.upper())


def standardize_data_format(data_format):
    """None (minidl's only default, 'channels_last') or one of the two Keras names."""
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"`data_format` must be 'channels_last', 'channels_first' or None. "
                         f"Received: data_format={data_format!r}")
    return data_format


def check_image_size(size, name):
    """``(height, width)`` as two positive ints (an int means a square)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2 or any(
            isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1
            for dim in size)):
        raise ValueError(f"`{name}` must be a tuple of 2 positive ints (height, width). "
                         f"Received: {name}={size!r}")
    return int(size[0]), int(size[1])


def _check_color_mode(color_mode):
    if color_mode not in _COLOR_MODES:
        raise ValueError(f"`color_mode` must be one of 'grayscale', 'rgb', 'rgba'. "
                         f"Received: color_mode={color_mode!r}")
    return _COLOR_MODES[color_mode]


def convert_color(image, color_mode):
    """The Pillow image in ``color_mode``; grayscale keeps 16- and 32-bit gray as they are."""
    if color_mode == "grayscale":
        if image.mode not in ("L", "I;16", "I"):
            image = image.convert("L")
    elif color_mode == "rgba":
        if image.mode != "RGBA":
            image = image.convert("RGBA")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return image


def open_image(path, caller):
    """Open an image file (path, ``pathlib.Path``, bytes path or ``io.BytesIO``) fully
    into memory, so no file handle stays open."""
    image_module = pil_image_module(caller)
    if isinstance(path, io.BytesIO):
        image = image_module.open(path)
    elif isinstance(path, (str, bytes, pathlib.Path, os.PathLike)):
        with open(path, "rb") as file:
            image = image_module.open(io.BytesIO(file.read()))
    else:
        raise TypeError(f"`path` must be a path or an io.BytesIO. Received: path of type "
                        f"{type(path).__name__}")
    image.load()
    return image


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Loads an image into a Pillow image.

    Args:
        path: path to the image file, or an ``io.BytesIO``.
        color_mode: one of ``"grayscale"``, ``"rgb"``, ``"rgba"``.
        target_size: None (the file's size) or ``(height, width)``.
        interpolation: resampling used when resizing: ``"nearest"``, ``"bilinear"``,
            ``"bicubic"``, ``"hamming"``, ``"box"`` or ``"lanczos"``.
        keep_aspect_ratio: resize without distortion: take the largest centred crop with
            the target's aspect ratio, then resize it.

    Returns:
        A ``PIL.Image.Image``.

    Raises:
        ImportError: Pillow is not installed (``pip install 'minidl[image]'``).

    Example:
        >>> image = load_img("cat.jpg", target_size=(224, 224))
        >>> batch = img_to_array(image)[None]  # (1, 224, 224, 3) float32
    """
    _check_color_mode(color_mode)
    if target_size is not None:
        target_size = check_image_size(target_size, "target_size")
    if interpolation not in _PIL_FILTERS:
        raise ValueError(f"`interpolation` must be one of {', '.join(_PIL_FILTERS)}. "
                         f"Received: interpolation={interpolation!r}")
    image = convert_color(open_image(path, "load_img"), color_mode)
    if target_size is None:
        return image
    height, width = target_size
    if image.size == (width, height):
        return image
    resample = _pil_filter(pil_image_module("load_img"), interpolation)
    box = None
    if keep_aspect_ratio:
        source_width, source_height = image.size
        crop_height = min(source_height, (source_width * height) // width)
        crop_width = min(source_width, (source_height * width) // height)
        top = (source_height - crop_height) // 2
        left = (source_width - crop_width) // 2
        box = (left, top, left + crop_width, top + crop_height)
    return image.resize((width, height), resample, box=box)


def img_to_array(img, data_format=None, dtype=None):
    """Converts a Pillow image to a 3-D numpy array.

    Args:
        img: a Pillow image (or anything numpy can convert).
        data_format: ``"channels_last"`` (the default, for None) or ``"channels_first"``.
        dtype: dtype of the array; None means float32.

    Returns:
        An array of shape ``(height, width, channels)`` (grayscale images get a channel
        axis of 1), or ``(channels, height, width)`` for channels_first.
    """
    data_format = standardize_data_format(data_format)
    array = np.asarray(img, dtype=np.float32 if dtype is None else dtype)
    if array.ndim == 2:
        array = array[..., None]
    elif array.ndim != 3:
        raise ValueError(f"img_to_array expects an image of rank 2 or 3. Received: an "
                         f"image of shape {array.shape}")
    if data_format == "channels_first":
        array = array.transpose(2, 0, 1)
    return array


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """Converts a 3-D numpy array to a Pillow image.

    Args:
        x: array of shape ``(height, width, channels)`` (or channels first), with 1, 3 or
            4 channels.
        data_format: ``"channels_last"`` (the default, for None) or ``"channels_first"``.
        scale: rescale the values so that the minimum is 0 and the maximum 255 (a
            constant image becomes 0); without it the values are cast to uint8 as they are.
        dtype: dtype the array is converted to first; None means float32.

    Returns:
        A Pillow image: mode "L" for 1 channel ("I" when a value exceeds 255), "RGB" for 3,
        "RGBA" for 4.
    """
    data_format = standardize_data_format(data_format)
    image_module = pil_image_module("array_to_img")
    array = np.array(x, dtype=np.float32 if dtype is None else dtype)
    if array.ndim != 3:
        raise ValueError(f"array_to_img expects an array of rank 3 (one image). Received: "
                         f"x with shape {array.shape}")
    if data_format == "channels_first":
        array = array.transpose(1, 2, 0)
    channels = array.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"array_to_img supports 1, 3 or 4 channels. Received: x with shape "
                         f"{array.shape} ({channels} channels, data_format={data_format!r})")
    if scale:
        array = array - np.min(array)
        peak = np.max(array)
        if peak != 0:
            array = array / peak
        array = array * 255
    if channels == 1:
        if np.max(array) > 255:  # 32-bit integer grayscale
            return image_module.fromarray(array[:, :, 0].astype(np.int32), "I")
        return image_module.fromarray(array[:, :, 0].astype(np.uint8), "L")
    return image_module.fromarray(array.astype(np.uint8), "RGB" if channels == 3 else "RGBA")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Saves an image stored as a numpy array to a file (or file object).

    Args:
        path: path or file object.
        x: array of shape ``(height, width, channels)`` (see :func:`array_to_img`).
        data_format: ``"channels_last"`` (the default, for None) or ``"channels_first"``.
        file_format: e.g. ``"png"`` or ``"jpeg"``; None takes it from the file name (it is
            required for a file object).
        scale: rescale the values to ``[0, 255]`` first.
        **kwargs: passed to ``PIL.Image.Image.save`` (e.g. ``quality=95``).
    """
    data_format = standardize_data_format(data_format)
    if file_format is not None and file_format.lower() == "jpg":
        file_format = "jpeg"
    image = array_to_img(x, data_format=data_format, scale=scale)
    extension = os.path.splitext(str(path))[1].lower() if file_format is None else ""
    if image.mode == "RGBA" and (
            (file_format or "").lower() == "jpeg" or extension in (".jpg", ".jpeg")):
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      stacklevel=2)
        image = image.convert("RGB")
    image.save(path, format=file_format, **kwargs)


def resize_array(image, size, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False):
    """Resize one ``(height, width, channels)`` image to ``size`` in float32 with Pillow.

    Each channel is resampled as a 32-bit float image, so no value is rounded to uint8.
    With ``crop_to_aspect_ratio`` the largest centred window of the target's aspect ratio
    is resized; with ``pad_to_aspect_ratio`` the image is first centred on a zero canvas
    of that aspect ratio. Pillow's filters widen when shrinking (antialiasing), so
    downscaled values differ slightly from ``tf.image.resize``'s.
    """
    image_module = pil_image_module("resizing images")
    height, width = size
    image = np.asarray(image, dtype=np.float32)
    source_height, source_width = image.shape[:2]
    if crop_to_aspect_ratio:
        crop_height = max(min(source_height, int(source_width * height / width)), 1)
        crop_width = max(min(source_width, int(source_height * width / height)), 1)
        top = (source_height - crop_height) // 2
        left = (source_width - crop_width) // 2
        image = image[top:top + crop_height, left:left + crop_width]
    elif pad_to_aspect_ratio:
        pad_height = max(source_height, int(source_width * height / width))
        pad_width = max(source_width, int(source_height * width / height))
        top = (pad_height - source_height) // 2
        left = (pad_width - source_width) // 2
        canvas = np.zeros((pad_height, pad_width, image.shape[2]), dtype=np.float32)
        canvas[top:top + source_height, left:left + source_width] = image
        image = canvas
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    resample = _pil_filter(image_module, _RESIZE_FILTERS[interpolation])
    channels = [np.asarray(image_module.fromarray(np.ascontiguousarray(image[:, :, c]))
                           .resize((width, height), resample))
                for c in range(image.shape[2])]
    return np.stack(channels, axis=-1)


def check_resize_interpolation(interpolation):
    if not isinstance(interpolation, str) or interpolation.lower() not in _RESIZE_FILTERS:
        unsupported = " ('gaussian' and 'mitchellcubic' have no Pillow filter)" if (
            interpolation in ("gaussian", "mitchellcubic")) else ""
        raise ValueError(f"`interpolation` must be one of {', '.join(_RESIZE_FILTERS)}"
                         f"{unsupported}. Received: interpolation={interpolation!r}")
    return interpolation.lower()


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last"):
    """Resize images to ``size`` without distorting them: crop the largest centred window
    with the target's aspect ratio, then resize it (Keras' ``smart_resize``).

    Args:
        x: one image ``(height, width, channels)`` or a batch of them (4-D).
        size: ``(height, width)``.
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"area"``,
            ``"lanczos3"`` or ``"lanczos5"``.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        A float32 array of the same rank, resized.
    """
    size = check_image_size(size, "size")
    interpolation = check_resize_interpolation(interpolation)
    data_format = standardize_data_format(data_format)
    images = np.asarray(x, dtype=np.float32)
    if images.ndim not in (3, 4):
        raise ValueError(f"smart_resize expects an image (rank 3) or a batch of images "
                         f"(rank 4). Received: x with shape {images.shape}")
    batch = images if images.ndim == 4 else images[None]
    if data_format == "channels_first":
        batch = batch.transpose(0, 2, 3, 1)
    out = np.stack([resize_array(image, size, interpolation, crop_to_aspect_ratio=True)
                    for image in batch])
    if data_format == "channels_first":
        out = out.transpose(0, 3, 1, 2)
    return out if images.ndim == 4 else out[0]
