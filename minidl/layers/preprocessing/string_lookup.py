"""StringLookup: strings to vocabulary indices (and back), as ``keras.layers.StringLookup``."""
from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.index_lookup import IndexLookup
from minidl.layers.preprocessing.text_base import string_array


def check_encoding(owner, encoding):
    """``encoding`` if Python knows the codec; ValueError naming it otherwise."""
    import codecs
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"{owner}: `encoding` must name a text encoding known to Python. "
                         f"Received: encoding={encoding!r:.100}") from None
    return encoding


@LAYERS.register()
class StringLookup(IndexLookup):
    """A preprocessing layer that maps strings to (possibly encoded) indices.

    The vocabulary is given (``vocabulary``, ``set_vocabulary``) or learned by ``adapt``,
    which orders it by decreasing frequency, ties broken by the strings in decreasing
    order. Index 0 is the mask token when ``mask_token`` is set in 'int' mode; then come
    ``num_oov_indices`` indices for out-of-vocabulary strings (several: a string goes to
    ``FarmHash64(s) % num_oov_indices``, as in Keras); then the vocabulary.

    Args:
        max_tokens: optional maximum size of the vocabulary, the mask and OOV indices
            included (for ``adapt`` and ``pad_to_max_tokens``).
        num_oov_indices: number of OOV indices (default 1); 0 makes an unknown string an
            error.
        mask_token: optional string mapped to 0 in 'int' mode and dropped from the
            encodings of the other modes.
        oov_token: the string that ``invert`` returns for OOV indices (default '[UNK]');
            ``adapt`` never puts it in the vocabulary.
        vocabulary: optional list, tuple or 1-D array of strings, or the path of a text
            file of one string a line (read when the layer is made).
        idf_weights: for 'tf_idf' with a given vocabulary: one float per vocabulary entry.
        invert: map indices back to strings ('int' mode only).
        output_mode: 'int' (default: int64 indices), 'one_hot', 'multi_hot', 'count' or
            'tf_idf' (floats of the layer's dtype, as ``CategoryEncoding`` shapes them,
            of vocabulary size, or ``max_tokens`` with ``pad_to_max_tokens``).
        pad_to_max_tokens: pad the encodings to ``max_tokens``.
        sparse: must be False (minidl has no sparse tensors).
        encoding: the text encoding of byte strings and vocabulary files (default
            'utf-8').

    Input: strings (a numpy array of dtype object or unicode, or a nested list of str);
    with ``invert``, integer indices. Numbers given to a forward lookup raise TypeError.

    Examples:
        >>> StringLookup(vocabulary=["a", "b", "c", "d"])([["a", "c", "d"], ["d", "z", "b"]])
        ... # [[1, 3, 4], [4, 0, 2]]
        >>> layer = StringLookup()
        >>> layer.adapt([["a", "c", "d"], ["d", "z", "b"]])
        >>> layer.get_vocabulary()   # ['[UNK]', 'd', 'z', 'c', 'b', 'a']
    """

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, idf_weights=None, invert=False, output_mode="int",
                 pad_to_max_tokens=False, sparse=False, encoding="utf-8", name=None,
                 **kwargs):
        self.encoding = check_encoding("StringLookup", encoding)
        vocabulary_dtype = kwargs.pop("vocabulary_dtype", "string")
        if not isinstance(vocabulary_dtype, str) or vocabulary_dtype != "string":
            raise ValueError(f"StringLookup: `vocabulary_dtype` must be 'string'. Received: "
                             f"vocabulary_dtype={vocabulary_dtype!r:.100}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         pad_to_max_tokens=pad_to_max_tokens, sparse=sparse, name=name,
                         vocabulary_dtype="string", **kwargs)

    def _convert(self, x, name="inputs"):
        if self.invert and name == "inputs":
            from minidl.layers.preprocessing.text_base import integer_array
            return integer_array(x, self._owner, name)
        return string_array(x, self._owner, name, self.encoding)

    def get_config(self):
        config = super().get_config()
        config["encoding"] = self.encoding
        return config
