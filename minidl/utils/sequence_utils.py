"""``pad_sequences``: lists of sequences of different lengths to one padded array."""
import numbers

import numpy as np

_SIDES = ("pre", "post")


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Pads sequences to the same length.

    Turns a list of ``num_samples`` sequences (lists of integers, or of arrays of one
    shape) into a NumPy array of shape ``(num_samples, num_timesteps) + sample_shape``,
    where ``num_timesteps`` is ``maxlen`` if given, else the length of the longest
    sequence. Shorter sequences are padded with ``value``; longer ones are truncated.
    ``padding`` and ``truncating`` say at which end: at the start ('pre', the default) or
    at the end ('post').

    Args:
        sequences: a list (or other sized iterable) of sequences. An empty sequence gives
            a row of padding; ``sample_shape`` is the shape after the first axis of the
            first non-empty sequence, and every sequence must share it.
        maxlen: optional int >= 0, the length of every output sequence. Default: the
            longest sequence's length.
        dtype: the output's dtype (default 'int32'). Use ``object`` (or a numpy string
            dtype) to pad sequences of strings.
        padding: 'pre' or 'post': pad before or after each sequence.
        truncating: 'pre' or 'post': drop values from the start or the end of the
            sequences longer than ``maxlen``.
        value: the padding value, a number or a string (default 0.).

    Returns:
        A NumPy array of shape ``(len(sequences), maxlen) + sample_shape``.

    Raises:
        ValueError: ``sequences`` is not a list of sequences, the sequences' sample shapes
            differ, a string ``value`` goes with a numeric ``dtype``, or ``padding`` /
            ``truncating`` is neither 'pre' nor 'post'.

    Examples:
        >>> sequence = [[1], [2, 3], [4, 5, 6]]
        >>> pad_sequences(sequence)
        array([[0, 0, 1],
               [0, 2, 3],
               [4, 5, 6]], dtype=int32)
        >>> pad_sequences(sequence, value=-1)
        array([[-1, -1,  1],
               [-1,  2,  3],
               [ 4,  5,  6]], dtype=int32)
        >>> pad_sequences(sequence, padding='post')
        array([[1, 0, 0],
               [2, 3, 0],
               [4, 5, 6]], dtype=int32)
        >>> pad_sequences(sequence, maxlen=2)
        array([[0, 1],
               [2, 3],
               [5, 6]], dtype=int32)
    """
    if not hasattr(sequences, "__len__") or isinstance(sequences, (str, bytes)):
        raise ValueError(f"`sequences` must be a list of sequences. Received: "
                         f"sequences={sequences!r:.100}")
    if padding not in _SIDES:
        raise ValueError(f'Padding type "{padding}" not understood: `padding` must be '
                         f'"pre" or "post". Received: padding={padding!r}')
    if truncating not in _SIDES:
        raise ValueError(f'Truncating type "{truncating}" not understood: `truncating` must '
                         f'be "pre" or "post". Received: truncating={truncating!r}')
    if maxlen is not None and (isinstance(maxlen, bool) or
                               not isinstance(maxlen, numbers.Integral) or maxlen < 0):
        raise ValueError(f"`maxlen` must be None or an int >= 0. Received: maxlen={maxlen!r}")
    lengths, sample_shape = [], None
    for index, sequence in enumerate(sequences):
        if isinstance(sequence, (str, bytes)) or not hasattr(sequence, "__len__"):
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: "
                             f"{sequence!r:.100} at position {index}")
        lengths.append(len(sequence))
        if sample_shape is None and len(sequence):
            sample_shape = np.asarray(sequence).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = max(lengths, default=0)
    string_dtype = dtype is object or np.dtype(dtype).kind in "OSU"
    if isinstance(value, str) and not string_dtype:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length "
                         f"strings.")
    out = np.full((len(lengths), int(maxlen)) + tuple(sample_shape), value, dtype=dtype)
    if maxlen == 0:
        return out
    for index, sequence in enumerate(sequences):
        if not len(sequence):
            continue
        kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        if dtype is object or np.dtype(dtype).kind == "O":
            # np.asarray(list of str, object) keeps the strings; the slicing above keeps
            # numpy arrays as they are.
            kept_array = np.empty((len(kept),) + tuple(sample_shape), object)
            kept_array[...] = list(kept) if not sample_shape else np.asarray(kept, object)
            kept = kept_array
        else:
            kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position "
                             f"{index} is different from expected shape {tuple(sample_shape)}")
        if padding == "post":
            out[index, :len(kept)] = kept
        else:
            out[index, maxlen - len(kept):] = kept
    return out
