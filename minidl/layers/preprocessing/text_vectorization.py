"""TextVectorization: text to token indices or bag-of-words vectors, as
``keras.layers.TextVectorization``.

The steps follow Keras (keras/src/layers/preprocessing/text_vectorization.py), which runs
TensorFlow string ops; minidl reproduces what those ops do:

1. standardize: 'lower' lowercases ASCII letters only (``tf.strings.lower`` without an
   encoding leaves other letters alone); 'strip_punctuation' removes the ASCII characters
   of Keras' regex ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']``.
2. split: 'whitespace' splits on runs of ASCII whitespace and drops empty tokens
   (``tf.strings.split``); 'character' splits into Unicode code points.
3. ngrams: for each width ``n`` of ``ngrams``, in order, the n-grams of the tokens joined
   by a space (``tf.strings.ngrams``: a row shorter than ``n`` gives none of width n).
4. lookup through a ``StringLookup`` whose mask token is '' (index 0, the padding) and
   whose OOV token is '[UNK]' (index 1 in 'int' mode).
5. 'int' mode pads each row with 0 (or truncates it) to ``output_sequence_length``, or to
   the batch's longest row when it is None.
"""
import re

import numpy as np

from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.base import check_positive_int
from minidl.layers.preprocessing.category_encoding import check_output_mode, encoded_shape
from minidl.layers.preprocessing.index_lookup import (OUTPUT_MODES, check_saved_vocabulary,
                                                      encode_tokens)
from minidl.layers.preprocessing.string_lookup import StringLookup, check_encoding
from minidl.layers.preprocessing.text_base import TextLayer, string_array
from minidl.utils.checks import check_bool

STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation")
SPLIT = ("whitespace", "character")

_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def standardize_text(strings, standardize):
    """``strings`` (an object array of str) standardized as Keras' option says."""
    if standardize is None:
        return strings
    if callable(standardize):
        return standardize(strings)
    lower = standardize in ("lower", "lower_and_strip_punctuation")
    strip = standardize in ("strip_punctuation", "lower_and_strip_punctuation")
    out = np.empty(strings.shape, object)
    flat_in, flat_out = strings.reshape(-1), out.reshape(-1)
    for i, text in enumerate(flat_in.tolist()):
        if lower:
            text = text.translate(_ASCII_LOWER)
        if strip:
            text = _PUNCTUATION.sub("", text)
        flat_out[i] = text
    return out


def split_text(strings, split):
    """The tokens of each string of the 1-D array ``strings``, as a list of lists."""
    if split == "whitespace":
        return [[token for token in _ASCII_WHITESPACE.split(text) if token]
                for text in strings.tolist()]
    if split == "character":
        return [list(text) for text in strings.tolist()]
    rows = split(strings)
    return [[str(token) for token in row] for row in rows]


def ngram_rows(rows, widths):
    """Each row's n-grams for the ``widths`` in order (``tf.strings.ngrams`` with a space
    separator and no padding)."""
    out = []
    for row in rows:
        grams = []
        for width in widths:
            grams.extend(" ".join(row[i:i + width]) for i in range(len(row) - width + 1))
        out.append(grams)
    return out


@LAYERS.register()
class TextVectorization(TextLayer):
    """A preprocessing layer which maps text features to integer sequences or vectors.

    Each string is standardized, split into tokens, optionally turned into n-grams, and
    looked up in a vocabulary (given, or learned by ``adapt``: the most frequent tokens
    first, ties broken by the tokens in decreasing order). Index 0 is the padding ('')
    and index 1 the out-of-vocabulary token ('[UNK]') in 'int' mode.

    Args:
        max_tokens: optional maximum size of the vocabulary, padding and OOV included.
        standardize: 'lower_and_strip_punctuation' (default), 'lower',
            'strip_punctuation', None, or a callable taking the object array of strings
            and returning strings of the same shape.
        split: 'whitespace' (default), 'character', None (each string is one token), or
            a callable taking the 1-D object array of strings and returning one list of
            tokens per string.
        ngrams: None, an int n (the n-grams of widths 1 to n), or a tuple of widths.
        output_mode: 'int' (default: int64 indices, padded), 'multi_hot', 'count',
            'tf_idf' (floats of the layer's dtype, one entry per vocabulary index) or
            'one_hot'.
        output_sequence_length: 'int' mode only: the length of every output row (padded
            with 0 or truncated); None pads to the batch's longest row.
        pad_to_max_tokens: pad the vectors of the other modes to ``max_tokens``.
        vocabulary: optional list of strings (or a text file path, one token a line).
        idf_weights: for 'tf_idf' with a given vocabulary: one float per entry.
        sparse, ragged: must be False (minidl has no sparse or ragged tensors).
        encoding: the text encoding of byte strings (default 'utf-8').

    Input shape: ``(batch_size,)`` or ``(batch_size, 1)`` strings when splitting; any
    shape with ``split=None``. Given numbers, the layer raises TypeError.

    Output shape: 'int': ``(batch_size, output_sequence_length)``; the other modes:
    ``(batch_size, vocabulary size)`` (or ``max_tokens``).

    Example:
        >>> layer = TextVectorization(max_tokens=5000, output_sequence_length=4)
        >>> layer.adapt(["foo bar", "bar baz", "baz bada boom"])
        >>> layer([["foo qux bar"], ["qux baz"]])   # [[4, 1, 3, 0], [1, 2, 0, 0]]
    """

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation",
                 split="whitespace", ngrams=None, output_mode="int",
                 output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None,
                 has_input_vocabulary=None, vocabulary_size=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not (standardize is None or callable(standardize) or standardize in STANDARDIZE):
            raise ValueError(f"Invalid value for argument `standardize`. Expected one of "
                             f"{list(STANDARDIZE)}, None or a callable. Received: "
                             f"standardize={standardize!r:.100}")
        if not (split is None or callable(split) or split in SPLIT):
            raise ValueError(f"Invalid value for argument `split`. Expected one of "
                             f"{list(SPLIT)}, None or a callable. Received: "
                             f"split={split!r:.100}")
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        check_output_mode("TextVectorization", output_mode, OUTPUT_MODES)
        if isinstance(ngrams, list):
            ngrams = tuple(ngrams)
        if not (ngrams is None or _positive_int(ngrams) or
                (isinstance(ngrams, tuple) and ngrams and all(map(_positive_int, ngrams)))):
            raise ValueError(f"`ngrams` must be None, an integer, or a tuple of integers. "
                             f"Received: ngrams={ngrams!r:.100}")
        if output_mode != "int" and output_sequence_length is not None:
            raise ValueError(f"`output_sequence_length` must not be set if `output_mode` is "
                             f"not 'int'. Received output_sequence_length="
                             f"{output_sequence_length!r}.")
        self.output_sequence_length = check_positive_int(
            "TextVectorization", "output_sequence_length", output_sequence_length)
        if check_bool("TextVectorization", "ragged", ragged):
            raise ValueError("TextVectorization: `ragged=True` cannot be used, as minidl has "
                             "no ragged tensors (as Keras' backends other than TensorFlow). "
                             "Received: ragged=True")
        self.standardize, self.split = standardize, split
        self.ngrams = ngrams
        self._widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else ngrams
        self.output_mode = output_mode
        self.ragged = False
        self.encoding = check_encoding("TextVectorization", encoding)
        self._lookup_layer = StringLookup(
            max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
            pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=output_mode,
            sparse=sparse, encoding=encoding, has_input_vocabulary=has_input_vocabulary,
            vocabulary_size=vocabulary_size, dtype=self.dtype, name=f"{self.name}_lookup")

    # ---- vocabulary ----

    @property
    def max_tokens(self):
        return self._lookup_layer.max_tokens

    @property
    def pad_to_max_tokens(self):
        return self._lookup_layer.pad_to_max_tokens

    @property
    def sparse(self):
        return False

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary, the padding '' and OOV '[UNK]' tokens first unless
        ``include_special_tokens`` is False (see ``StringLookup.get_vocabulary``)."""
        return self._lookup_layer.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        """The size of the vocabulary, padding and OOV indices included."""
        return self._lookup_layer.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        """Sets the vocabulary (and, for 'tf_idf', the IDF weights); see
        ``StringLookup.set_vocabulary``."""
        self._lookup_layer.set_vocabulary(vocabulary, idf_weights=idf_weights)

    def adapt(self, data, batch_size=None, steps=None):
        """Computes a vocabulary of the tokens of ``data`` (and, for 'tf_idf', their
        document frequencies: each string is a document).

        Args:
            data: a list, tuple or array of strings (each a document; an array of shape
                ``(n, 1)`` too), or an iterable of batches of strings (a generator, a
                ``minidl.data.Dataset``; a batch ``(x, y, ...)`` gives its ``x``).
            batch_size: optional int, the strings processed at once from array data.
            steps: optional int, the number of batches to read from an iterable.
        """
        lookup = self._lookup_layer
        if lookup._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             f"vocabulary via `vocabulary` argument or `set_vocabulary()` "
                             f"method.")
        batch_size = check_positive_int(f"{self._owner} adapt()", "batch_size", batch_size)
        steps = check_positive_int(f"{self._owner} adapt()", "steps", steps)
        lookup._reset_counts()
        if isinstance(data, (list, tuple, np.ndarray)) and not any(
                isinstance(item, np.ndarray) and item.ndim >= 1 for item in data):
            strings = self._convert(data, "data")
            if strings.ndim == 1:
                strings = strings[:, None]
            rows = batch_size or max(1, strings.shape[0])
            batches = (strings[i:i + rows] for i in range(0, strings.shape[0], rows))
        else:
            if not hasattr(data, "__iter__"):
                raise TypeError(f"{self._owner} adapt() takes a list or array of strings, or "
                                f"an iterable of batches of strings. Received: data of type "
                                f"{type(data).__name__}")
            batches = (self._convert(b[0] if isinstance(b, tuple) else b, "data")
                       for count, b in zip(range(steps) if steps else _forever(), data))
        for batch in batches:
            for row in self._token_rows(batch):
                lookup._counts.update(row)
                if lookup.output_mode == "tf_idf":
                    lookup._document_counts.update(set(row))
                    lookup._num_documents += 1
        lookup._finalize()

    # ---- computation ----

    def _convert(self, x, name="inputs"):
        return string_array(x, self._owner, name, self.encoding)

    def _token_rows(self, strings):
        """The tokens of each string of a batch, as a list of lists (split) or of
        one-token lists (no split)."""
        strings = standardize_text(strings, self.standardize)
        if callable(self.standardize):
            strings = string_array(strings, self._owner, "the output of `standardize`")
        if self.split is None:
            rows = [[text] for text in strings.reshape(-1).tolist()] if strings.ndim <= 1 \
                else [row for row in strings.reshape(strings.shape[0], -1).tolist()]
        else:
            if strings.ndim > 1:
                if strings.shape[-1] != 1:
                    raise ValueError(f"When using `TextVectorization` to tokenize strings, "
                                     f"the input rank must be 1 or the last shape dimension "
                                     f"must be 1. Received: inputs.shape={strings.shape} "
                                     f"with rank={strings.ndim}")
                strings = strings.reshape(strings.shape[:-1])
            if strings.ndim != 1:
                strings = strings.reshape(-1)
            rows = split_text(strings, self.split)
        if self._widths is not None:
            rows = ngram_rows(rows, self._widths)
        return rows

    def _sample_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.split is not None:
            if len(shape) > 1 or (shape and shape[-1] != 1):
                raise ValueError(f"When using `TextVectorization` to tokenize strings, the "
                                 f"input rank must be 1 or the last shape dimension must be "
                                 f"1. Received: sample shape {shape}")
            return (None,)
        return shape if shape else (1,)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int" and self.split is None and self._widths is None:
            # Each string is one token: the indices keep the input's shape.
            shape = tuple(input_shape)
            if self.output_sequence_length is None:
                return shape
            return (shape or (1,))[:-1] + (self.output_sequence_length,)
        shape = self._sample_shape(input_shape)
        if self.output_mode == "int":
            return (self.output_sequence_length,)
        depth = self._lookup_layer._depth()
        if self.output_mode == "one_hot":
            return encoded_shape(shape, depth, "one_hot")
        return shape[:-1] + (depth,)

    def _output_dtype(self):
        return "int64" if self.output_mode == "int" else self.dtype

    def _output_spec(self, leaves, multi):
        self._check_symbolic_dtype(leaves[0].dtype, ("string",))
        return super()._output_spec(leaves, multi)

    def _compute(self, x):
        lookup = self._lookup_layer
        if x.ndim == 0:
            x = x.reshape(1)
        batch = x.shape[0]
        if self.split is None and self._widths is None:
            tokens = standardize_text(x, self.standardize)
            if callable(self.standardize):
                tokens = string_array(tokens, self._owner, "the output of `standardize`")
            if self.output_mode != "int" and tokens.ndim == 1:
                tokens = tokens[:, None]
            indices, keep = lookup._lookup(tokens)
            if self.output_mode == "int":
                if self.output_sequence_length is not None and indices.ndim == 1:
                    indices = indices[:, None]
                return self._fit_length(indices)
            return encode_tokens(indices, keep, lookup._depth(), self.output_mode,
                                 self.dtype, lookup._idf)
        rows = self._token_rows(x)
        lengths = np.fromiter((len(row) for row in rows), np.int64, count=batch)
        flat = np.empty(int(lengths.sum()), object)
        flat[:] = [token for row in rows for token in row]
        indices, keep = lookup._lookup(flat)
        if self.output_mode in ("int", "one_hot"):
            width = int(lengths.max()) if batch else 0
            dense = np.zeros((batch, width), np.int64)
            present = np.arange(width)[None, :] < lengths[:, None]
            dense[present] = indices
            if self.output_mode == "int":
                return self._fit_length(dense)
            kept = present.copy()
            if keep is not None:
                kept[present] = keep
            return encode_tokens(dense, kept, lookup._depth(), "one_hot", self.dtype)
        depth = lookup._depth()
        keys = np.repeat(np.arange(batch, dtype=np.int64) * depth, lengths) + indices
        if keep is not None:
            keys = keys[keep]
        # Counted straight into the output: a bincount over batch * depth slots would make
        # a float64 temporary twice the output's size.
        out = np.zeros((batch, depth), self.dtype)
        if self.output_mode == "multi_hot":
            out.reshape(-1)[keys] = 1
            return out
        np.add.at(out.reshape(-1), keys, 1)
        if self.output_mode == "tf_idf":
            out *= lookup._idf
        return out

    def _fit_length(self, indices):
        """'int' outputs truncated or padded with 0 to ``output_sequence_length``."""
        length = self.output_sequence_length
        if length is None:
            return indices
        out = np.zeros(indices.shape[:-1] + (length,), np.int64)
        kept = min(length, indices.shape[-1])
        out[..., :kept] = indices[..., :kept]
        return out

    # ---- saving ----

    def get_config(self):
        config = super().get_config()
        lookup = self._lookup_layer
        lookup_config = lookup.get_config()
        config.update(max_tokens=lookup.max_tokens,
                      standardize=_function_config(self.standardize, "standardize"),
                      split=_function_config(self.split, "split"),
                      ngrams=list(self.ngrams) if isinstance(self.ngrams, tuple) else
                      self.ngrams,
                      output_mode=self.output_mode,
                      output_sequence_length=self.output_sequence_length,
                      pad_to_max_tokens=lookup.pad_to_max_tokens, sparse=False, ragged=False,
                      vocabulary=lookup_config["vocabulary"],
                      idf_weights=lookup_config["idf_weights"], encoding=self.encoding,
                      has_input_vocabulary=lookup._has_input_vocabulary)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        check_saved_vocabulary(cls.__name__, config.get("vocabulary"))
        for key in ("standardize", "split"):
            value = config.get(key)
            if isinstance(value, str) and value not in (STANDARDIZE + SPLIT):
                config[key] = _resolve_function(value, key)
        return cls(**config)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _forever():
    count = 0
    while True:
        yield count
        count += 1


def _function_config(option, name):
    """A standardize / split option as a config value: its string, or the registered name
    of a callable (``minidl.saving.register_serializable``)."""
    if option is None or isinstance(option, str):
        return option
    from minidl.losses import FUNCTIONS
    registered = [key for key, value in FUNCTIONS._by_name.items() if value is option]
    if not registered:
        raise ValueError(f"TextVectorization: the callable `{name}` "
                         f"{getattr(option, '__name__', option)!r} cannot be saved unless it "
                         f"is registered: decorate it with "
                         f"@minidl.saving.register_serializable().")
    return next((key for key in registered if ">" in key), registered[0])


def _resolve_function(name, what):
    from minidl.losses import FUNCTIONS
    try:
        return FUNCTIONS.lookup(name)
    except ValueError:
        raise ValueError(f"TextVectorization: `{what}` names the function {name!r}, which is "
                         f"not registered; register it with "
                         f"@minidl.saving.register_serializable() before loading.") from None
