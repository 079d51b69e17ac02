"""Global settings a Keras program reads or sets through ``keras.config``.

Only the image data format lives here today: the layout the convolution, pooling and
resampling layers assume when they are made with ``data_format=None``.

Example:
    >>> minidl.config.image_data_format()
    'channels_last'
    >>> minidl.config.set_image_data_format("channels_first")   # later layers default to it
"""
import threading

_DATA_FORMATS = ("channels_last", "channels_first")
_lock = threading.Lock()
_image_data_format = "channels_last"


def image_data_format():
    """The default image layout of layers made with ``data_format=None``:
    ``'channels_last'`` (Keras' default: ``(batch, ..., channels)``) or
    ``'channels_first'`` (``(batch, channels, ...)``)."""
    return _image_data_format


def set_image_data_format(data_format):
    """Set the default image layout of layers made from now on with ``data_format=None``.

    Args:
        data_format: ``'channels_last'`` or ``'channels_first'``.
    """
    global _image_data_format
    if data_format not in _DATA_FORMATS:
        raise ValueError(f"set_image_data_format: data_format must be one of "
                         f"{', '.join(map(repr, _DATA_FORMATS))}. Received: "
                         f"data_format={data_format!r:.100}")
    with _lock:
        _image_data_format = data_format


def standardize_data_format(data_format):
    """``data_format`` checked, with None meaning :func:`image_data_format`."""
    if data_format is None:
        return _image_data_format
    if not isinstance(data_format, str) or data_format.lower() not in _DATA_FORMATS:
        raise ValueError(f"data_format must be one of {', '.join(map(repr, _DATA_FORMATS))} or "
                         f"None. Received: data_format={data_format!r:.100}")
    return data_format.lower()
