"""IndexLookup: the vocabulary table that StringLookup and IntegerLookup share.

Keras semantics (keras/src/layers/preprocessing/index_lookup.py):

- Indices: the mask token (when set, and only in 'int' mode) is 0; then come
  ``num_oov_indices`` OOV indices; then the vocabulary's tokens in order.
- A token outside the vocabulary goes to the one OOV index, or, with several, to
  ``hash % num_oov_indices`` (FarmHash Fingerprint64 for strings, floor-mod for integers);
  with ``num_oov_indices=0`` it is an error.
- ``adapt`` counts every token (the mask and OOV tokens excluded) and orders the vocabulary
  by decreasing count, ties broken by the token in decreasing order (Keras'
  ``np.lexsort((tokens, counts))[::-1]``; strings compare by their UTF-8 bytes, which is
  Python's code point order), keeping the first ``max_tokens`` minus the special indices.
  For 'tf_idf' each token's weight is ``log(1 + documents / (1 + documents holding it))``;
  the OOV (and mask) slots take the mean weight, and ``pad_to_max_tokens`` pads with 0.
- In the other output modes the mask token is dropped from the encodings.

Saving: the vocabulary (and the TF-IDF weights) are JSON values of the layer's config,
whether given or learned by ``adapt``; a vocabulary given as a file path is read when the
layer is made and saved as its tokens, so loading a model never reads a file outside it.
"""
import collections
import os

import numpy as np

from minidl.layers.preprocessing.base import check_positive_int
from minidl.layers.preprocessing.category_encoding import (check_not_sparse,
                                                           check_output_mode,
                                                           encode_categorical)
from minidl.layers.preprocessing.string_hash import hash_buckets
from minidl.layers.preprocessing.text_base import TextLayer
from minidl.utils.checks import check_bool

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
# Markers of a lookup table's misses and of the mask token, before they become indices.
_MISSING, _MASKED = -1, -2


def encode_tokens(indices, keep, depth, output_mode, dtype, idf_weights=None):
    """One-hot, multi-hot, count or TF-IDF encoding of int64 ``indices`` (in
    ``[0, depth)`` where ``keep``), the entries where ``keep`` is False left out (Keras
    drops masked tokens from the encodings)."""
    if keep is not None and not keep.all():
        indices = np.where(keep, indices, 0)
    if output_mode == "one_hot":
        out = encode_categorical(indices, depth, "one_hot", dtype)
        if keep is not None and not keep.all():
            shape = keep.shape[:-1] if keep.ndim > 1 and keep.shape[-1] == 1 else keep.shape
            out[~keep.reshape(shape)] = 0
        return out
    if indices.ndim == 0:
        indices = indices.reshape(1)
        keep = None if keep is None else keep.reshape(1)
    weights = None if keep is None else keep.astype(np.float64)
    counts = encode_categorical(indices, depth, "count", np.float64, weights)
    if output_mode == "multi_hot":
        return (counts > 0).astype(dtype)
    if output_mode == "tf_idf":
        return (counts * idf_weights).astype(dtype)
    return counts.astype(dtype)


class IndexLookup(TextLayer):
    """Maps tokens of a vocabulary to integer indices (and back with ``invert``); the base
    of ``StringLookup`` and ``IntegerLookup``, which document the arguments."""

    _string_tokens = True   # False: IntegerLookup

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=None,
                 vocabulary=None, vocabulary_dtype=None, idf_weights=None, invert=False,
                 output_mode="int", sparse=False, pad_to_max_tokens=False, name=None,
                 has_input_vocabulary=None, vocabulary_size=None, **kwargs):
        super().__init__(name=name, **kwargs)
        what = type(self).__name__
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode == "tf-idf":
            output_mode = "tf_idf"
        self.output_mode = check_output_mode(what, output_mode, OUTPUT_MODES)
        self.max_tokens = check_positive_int(what, "max_tokens", max_tokens)
        if self.max_tokens is not None and self.max_tokens <= 1:
            raise ValueError(f"If set, `max_tokens` must be greater than 1. Received: "
                             f"max_tokens={max_tokens}")
        self.pad_to_max_tokens = check_bool(what, "pad_to_max_tokens", pad_to_max_tokens)
        if self.pad_to_max_tokens and self.max_tokens is None:
            raise ValueError(f"If pad_to_max_tokens is True, must set `max_tokens`. "
                             f"Received: max_tokens={max_tokens}")
        if isinstance(num_oov_indices, bool) or not isinstance(num_oov_indices, int) or \
                num_oov_indices < 0:
            raise ValueError(f"`num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices!r}")
        self.num_oov_indices = num_oov_indices
        self.invert = check_bool(what, "invert", invert)
        if self.invert and self.output_mode != "int":
            raise ValueError(f"`output_mode` must be `'int'` when `invert` is true. "
                             f"Received: output_mode={self.output_mode}")
        self.sparse = check_not_sparse(what, sparse)
        if idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError(f"`idf_weights` should only be set if `output_mode` is "
                             f"`'tf_idf'`. Received: idf_weights={idf_weights!r:.100} and "
                             f"output_mode={self.output_mode}")
        self.mask_token = self._check_token(mask_token, "mask_token")
        self.oov_token = self._check_token(oov_token, "oov_token")
        self.vocabulary_dtype = vocabulary_dtype
        self._tokens = []            # the vocabulary, special tokens excluded
        self._index = {}             # token -> index
        self._idf = None             # float array over all indices ('tf_idf')
        self._frozen_vocab_size = vocabulary_size
        self._reset_counts()
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = self._read_vocabulary_file(vocabulary)
        self._has_input_vocabulary = vocabulary is not None if has_input_vocabulary is None \
            else check_bool(what, "has_input_vocabulary", has_input_vocabulary)
        if self.output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError("When specifying the `vocabulary` argument, in TF-IDF output "
                             "mode, the `idf_weights` argument must also be provided.")
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights, _input=self._has_input_vocabulary)

    # ---- tokens ----

    def _check_token(self, token, name):
        """A special token of the vocabulary's type (or None)."""
        if token is None:
            return None
        if self._string_tokens:
            if isinstance(token, bytes):
                token = token.decode("utf-8")
            if not isinstance(token, str):
                raise TypeError(f"{type(self).__name__}: `{name}` must be a string or None. "
                                f"Received: {name}={token!r:.100}")
            return token
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: `{name}` must be an int or None. "
                            f"Received: {name}={token!r:.100}")
        return int(token)

    def _read_vocabulary_file(self, path):
        if not os.path.isfile(path):
            raise ValueError(f"Vocabulary file {path} does not exist. Received: "
                             f"vocabulary={str(path)!r:.200}")
        if self.output_mode == "tf_idf":
            raise ValueError("output_mode `'tf_idf'` does not support loading a vocabulary "
                             "from file.")
        with open(path, encoding=getattr(self, "encoding", "utf-8")) as handle:
            lines = handle.read().splitlines()
        while lines and lines[-1] == "":
            lines.pop()
        return lines if self._string_tokens else [int(line) for line in lines]

    def _as_tokens(self, values, name):
        """The vocabulary's values as a list of str or int."""
        return self._convert(values, name).reshape(-1).tolist()

    def _oov_start_index(self):
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start_index(self):
        return self._oov_start_index() + self.num_oov_indices

    # ---- vocabulary ----

    def vocabulary_size(self):
        """The size of the vocabulary, the mask and OOV indices included."""
        return len(self._tokens) + self._token_start_index()

    def get_vocabulary(self, include_special_tokens=True):
        """The vocabulary, as a list: with ``include_special_tokens`` (default), a token's
        position is its index (the mask token first when set in 'int' mode, then the OOV
        token once per OOV index); otherwise the learned or given tokens only."""
        tokens = list(self._tokens)
        if not include_special_tokens:
            return tokens
        special = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices
        return special + tokens

    def set_vocabulary(self, vocabulary, idf_weights=None, _input=True):
        """Sets the vocabulary (and, for 'tf_idf', the inverse document frequencies).

        Args:
            vocabulary: a list, tuple or 1-D array of tokens, or the path of a text file
                of one token a line. It may start with the special tokens, exactly as
                ``get_vocabulary()`` returns them; any other occurrence of the mask (or,
                with ``invert``, the OOV) token is an error, as is a repeated token.
            idf_weights: for 'tf_idf' only (and then required): one float per vocabulary
                entry.

        Raises:
            ValueError: see above; the vocabulary is empty or larger than ``max_tokens``.
        """
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError("`idf_weights` must be set if output_mode is 'tf_idf'.")
        elif idf_weights is not None:
            raise ValueError(f"`idf_weights` should only be set if output_mode is "
                             f"`'tf_idf'`. Received: output_mode={self.output_mode} and "
                             f"idf_weights={idf_weights!r:.100}")
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = self._read_vocabulary_file(vocabulary)
        vocabulary = self._as_tokens(vocabulary, "vocabulary")
        if not vocabulary:
            raise ValueError(f"Cannot set an empty vocabulary. Received: "
                             f"vocabulary={vocabulary}")
        token_start = self._token_start_index()
        special = [self.mask_token] * self._oov_start_index() + \
            [self.oov_token] * self.num_oov_indices
        found_special = vocabulary[:token_start] == special
        tokens = vocabulary[token_start:] if found_special else vocabulary
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise ValueError(f"The passed vocabulary has at least one repeated term. Please "
                             f"uniquify your dataset. The repeated terms are: "
                             f"{repeated[:20]}")
        for token, name, applies in ((self.mask_token, "mask_token", True),
                                     (self.oov_token, "oov_token", self.invert)):
            if token is not None and applies and token in tokens:
                raise ValueError(f"Found reserved {name.split('_')[0].upper()} token at "
                                 f"unexpected location in `vocabulary`. Note that passed "
                                 f"`vocabulary` does not need to include the OOV and mask "
                                 f"tokens. Either remove all mask and OOV tokens, or include "
                                 f"them only at the start of the vocabulary in precisely "
                                 f"this order: {special}. Received: {name}={token!r} at "
                                 f"vocabulary index {vocabulary.index(token)}")
        size = token_start + len(tokens)
        if self.max_tokens is not None and size > self.max_tokens:
            raise ValueError(f"Attempted to set a vocabulary larger than the maximum vocab "
                             f"size. Received vocabulary size is {size}; `max_tokens` is "
                             f"{self.max_tokens}.")
        weights = None
        if self.output_mode == "tf_idf":
            weights = np.asarray(idf_weights, dtype=np.float64)
            if weights.ndim != 1:
                raise ValueError(f"TF-IDF data must be a 1-index array. Received: "
                                 f"idf_weights of shape {weights.shape}")
            if len(weights) != len(vocabulary):
                raise ValueError(f"`idf_weights` must be the same length as vocabulary. "
                                 f"len(idf_weights) is {len(weights)}; len(vocabulary) is "
                                 f"{len(vocabulary)}")
            if not found_special:
                weights = np.concatenate([np.full(token_start, np.average(weights)),
                                          weights])
        self._ensure_vocab_size_unchanged(size)
        self._set_table(tokens, weights)
        self._has_input_vocabulary = bool(_input)

    def _set_table(self, tokens, weights):
        start = self._token_start_index()
        self._tokens = list(tokens)
        self._index = {token: start + i for i, token in enumerate(self._tokens)}
        if weights is not None:
            if self.pad_to_max_tokens and self.max_tokens is not None:
                weights = np.concatenate([weights, np.zeros(max(0, self.max_tokens -
                                                                len(weights)))])
            weights = weights.astype(self.dtype)
        self._idf = weights
        if self.output_mode != "int" and not self.pad_to_max_tokens:
            self._frozen_vocab_size = self.vocabulary_size()

    def _ensure_vocab_size_unchanged(self, size):
        if self.output_mode == "int" or self.pad_to_max_tokens:
            return
        if self.built and self._frozen_vocab_size is not None and \
                size != self._frozen_vocab_size:
            raise RuntimeError(f"When using `output_mode={self.output_mode}` and "
                               f"`pad_to_max_tokens=False`, the vocabulary size cannot be "
                               f"changed after the layer is called. Old vocab size is "
                               f"{self._frozen_vocab_size}, new vocab size is {size}")

    # ---- adapt ----

    def _reset_counts(self):
        self._counts = collections.Counter()
        self._document_counts = collections.Counter()
        self._num_documents = 0

    def adapt(self, data, steps=None):
        """Computes a vocabulary of the tokens of ``data``, the most frequent first.

        Args:
            data: an array or (nested) list of tokens, where each element of a 1-D array
                is a document; or an iterable of batches (a list of arrays, a generator,
                a ``minidl.data.Dataset``; a batch ``(x, y, ...)`` gives its ``x``), where
                a 1-D batch is one document.
            steps: optional int, the number of batches to read from an iterable.

        Raises:
            ValueError: the layer was given its vocabulary (``vocabulary`` or
                ``set_vocabulary``).
            TypeError: the data are not tokens of the layer's type.
        """
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static "
                             f"vocabulary via `vocabulary` argument or `set_vocabulary()` "
                             f"method.")
        steps = check_positive_int(f"{self._owner} adapt()", "steps", steps)
        self._reset_counts()
        for batch in self._adapt_batches(data, steps):
            self._update_counts(batch)
        self._finalize()

    def _adapt_batches(self, data, steps):
        """Keras' reading of adapt data: arrays at once (a 1-D array: one document per
        element), other iterables batch by batch."""
        if isinstance(data, (list, tuple, np.ndarray)) and not _holds_arrays(data):
            array = self._convert(data, "data")
            if array.ndim == 1:
                array = array[:, None]
            yield array
            return
        if not hasattr(data, "__iter__"):
            yield self._convert(data, "data")
            return
        for count, batch in enumerate(data):
            if steps is not None and count >= steps:
                break
            if isinstance(batch, tuple):
                batch = batch[0]
            yield self._convert(batch, "data")

    def _update_counts(self, batch):
        if batch.ndim == 0:
            batch = batch.reshape(1)
        if batch.ndim == 1:
            batch = batch[None]   # one document
        self._counts.update(batch.reshape(-1).tolist())
        if self.output_mode == "tf_idf":
            for row in batch.reshape(batch.shape[0], -1):
                self._document_counts.update(set(row.tolist()))
            self._num_documents += batch.shape[0]

    def _finalize(self):
        counts = self._counts
        if not counts:
            self._reset_counts()
            return
        for token in (self.mask_token, self.oov_token):
            counts.pop(token, None)
        ordered = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        if self.max_tokens:
            ordered = ordered[:max(0, self.max_tokens - self._token_start_index())]
        tokens = [token for token, _ in ordered]
        weights = None
        if self.output_mode == "tf_idf":
            docs = np.asarray([self._document_counts[t] for t in tokens], np.float64)
            idf = np.log(1.0 + self._num_documents / (1.0 + docs)).astype(self.dtype)
            mean = float(np.mean(idf.astype(np.float64))) if idf.size else 0.0
            weights = np.concatenate([np.full(self._token_start_index(), mean),
                                      idf.astype(np.float64)])
        self._ensure_vocab_size_unchanged(self._token_start_index() + len(tokens))
        self._set_table(tokens, weights)
        self._reset_counts()

    # ---- computation ----

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = self._depth()
        shape = tuple(input_shape)
        if not shape:
            return (depth,)
        if self.output_mode == "one_hot":
            return (shape[:-1] if shape[-1] == 1 else shape) + (depth,)
        return shape[:-1] + (depth,)

    def _output_dtype(self):
        if self.output_mode != "int":
            return self.dtype
        if self.invert:
            return "string" if self._string_tokens else "int64"
        return "int64"

    def _output_spec(self, leaves, multi):
        self._check_symbolic_dtype(leaves[0].dtype, self._input_kinds())
        return super()._output_spec(leaves, multi)

    def _input_kinds(self):
        if self.invert or not self._string_tokens:
            return ("int64", "int32")
        return ("string",)

    def _depth(self):
        if self.pad_to_max_tokens:
            return self.max_tokens
        if self._frozen_vocab_size is None:
            raise RuntimeError(f"When using `output_mode={self.output_mode}` and "
                               f"`pad_to_max_tokens=False`, you must set the layer's "
                               f"vocabulary before calling it. Either pass a `vocabulary` "
                               f"argument to the layer, or call `adapt` with some sample "
                               f"data.")
        return self._frozen_vocab_size

    def _convert(self, x, name="inputs"):
        raise NotImplementedError

    def _compute(self, x):
        if self.invert:
            return self._lookup_inverse(x)
        indices, keep = self._lookup(x)
        if self.output_mode == "int":
            return indices
        return encode_tokens(indices, keep, self._depth(), self.output_mode, self.dtype,
                             self._idf)

    def _lookup(self, x):
        """``(indices, keep)``: int64 indices of the tokens ``x``, and where they are not
        the mask token (None when there is none) for the encodings to leave out."""
        tokens = x.reshape(-1).tolist()
        default = self._oov_start_index() if self.num_oov_indices == 1 else _MISSING
        table = self._index
        if self.mask_token is not None:
            table = dict(table)   # (the mask token is never in the vocabulary)
            table[self.mask_token] = _MASKED
        get = table.get
        indices = np.fromiter((get(token, default) for token in tokens), np.int64,
                              count=len(tokens))
        missing = indices == _MISSING
        if missing.any():
            unknown = [token for token, out in zip(tokens, missing) if out]
            if self.num_oov_indices == 0:
                found = list(dict.fromkeys(unknown))[:10]
                raise ValueError(f"{self._owner}: when `num_oov_indices=0` all inputs should "
                                 f"be in vocabulary, found OOV values {found}, consider "
                                 f"setting `num_oov_indices=1`.")
            if self._string_tokens:
                unknown = np.asarray(unknown, dtype=object)
                buckets = hash_buckets(unknown, self.num_oov_indices)
            else:
                buckets = np.mod(np.asarray(unknown, np.int64), self.num_oov_indices)
            indices[missing] = buckets + self._oov_start_index()
        keep = None
        if self.mask_token is not None:
            masked = indices == _MASKED
            if masked.any():
                indices[masked] = 0
                if self.output_mode != "int":
                    keep = ~masked.reshape(x.shape)
        return indices.reshape(x.shape), keep

    def _lookup_inverse(self, x):
        indices = integer_indices(x, self._owner)
        start = self._token_start_index()
        table = np.asarray(self.get_vocabulary(), dtype=object)
        inside = (indices >= start) & (indices < start + len(self._tokens))
        flat = np.where(inside, indices, 0).reshape(-1)
        out = np.full(indices.shape, self.oov_token, dtype=object if self._string_tokens
                      else np.int64)
        out[inside] = table[flat[inside.reshape(-1)]] if inside.any() else out[inside]
        if self.mask_token is not None:
            out[indices == 0] = self.mask_token
        return out

    # ---- saving ----

    @classmethod
    def from_config(cls, config):
        check_saved_vocabulary(cls.__name__, config.get("vocabulary"))
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(invert=self.invert, max_tokens=self.max_tokens,
                      num_oov_indices=self.num_oov_indices, oov_token=self.oov_token,
                      mask_token=self.mask_token, output_mode=self.output_mode,
                      sparse=self.sparse, pad_to_max_tokens=self.pad_to_max_tokens,
                      vocabulary_dtype=self.vocabulary_dtype,
                      vocabulary=self.get_vocabulary() if self._tokens else None,
                      idf_weights=None if self._idf is None else
                      [float(w) for w in self._idf[:self.vocabulary_size()]],
                      has_input_vocabulary=self._has_input_vocabulary)
        return config


def integer_indices(x, owner):
    """``x`` as int64 indices (for ``invert``); TypeError for strings."""
    from minidl.layers.preprocessing.text_base import integer_array
    return integer_array(x, owner)


def _holds_arrays(data):
    """Whether a list given to adapt is a list of batches (arrays) rather than tokens."""
    return isinstance(data, (list, tuple)) and any(isinstance(item, np.ndarray) and
                                                   item.ndim >= 1 for item in data)


def check_saved_vocabulary(owner, vocabulary):
    """A saved config's vocabulary must be its tokens: loading a model never reads a file
    the config names (Keras refuses vocabulary files in safe mode, for the same reason)."""
    if isinstance(vocabulary, str):
        raise ValueError(f"{owner}: a saved config's `vocabulary` must be the list of its "
                         f"tokens; loading never reads a vocabulary file. Received: "
                         f"vocabulary={vocabulary!r:.200}")
