"""IntegerLookup: integer ids to vocabulary indices (and back), as
``keras.layers.IntegerLookup``."""
from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.index_lookup import IndexLookup
from minidl.layers.preprocessing.text_base import integer_array


@LAYERS.register()
class IntegerLookup(IndexLookup):
    """A preprocessing layer that maps integers to (possibly encoded) indices.

    As ``StringLookup``, for integer features (ids that are not contiguous indices). With
    several OOV indices an unknown integer ``v`` goes to ``v mod num_oov_indices`` (Keras'
    default 'floormod' method).

    Args:
        max_tokens: optional maximum size of the vocabulary, the mask and OOV indices
            included.
        num_oov_indices: number of OOV indices (default 1); 0 makes an unknown value an
            error.
        mask_token: optional int mapped to 0 in 'int' mode and dropped from the encodings
            of the other modes.
        oov_token: the int that ``invert`` returns for OOV indices (default -1).
        vocabulary: optional list, tuple or 1-D array of ints, or the path of a text file
            of one int a line.
        vocabulary_dtype: 'int64' (default) or 'int32'.
        idf_weights: for 'tf_idf' with a given vocabulary: one float per entry.
        invert: map indices back to the integers ('int' mode only).
        output_mode: 'int' (default), 'one_hot', 'multi_hot', 'count' or 'tf_idf'.
        sparse: must be False.
        pad_to_max_tokens: pad the encodings to ``max_tokens``.

    Input: integers (int arrays, or floats with whole values); strings raise TypeError.

    Examples:
        >>> layer = IntegerLookup(vocabulary=[12, 36, 1138, 42])
        >>> layer(np.array([[12, 1138, 42], [42, 1000, 36]]))   # [[1, 3, 4], [4, 0, 2]]
        >>> layer = IntegerLookup()
        >>> layer.adapt(np.array([[12, 1138, 42], [42, 1000, 36]]))
        >>> layer.get_vocabulary()   # [-1, 42, 1138, 1000, 36, 12]
    """

    _string_tokens = False

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1,
                 vocabulary=None, vocabulary_dtype="int64", idf_weights=None, invert=False,
                 output_mode="int", sparse=False, pad_to_max_tokens=False, name=None,
                 **kwargs):
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(f"IntegerLookup: `vocabulary_dtype` must be 'int64' or "
                             f"'int32'. Received: vocabulary_dtype={vocabulary_dtype!r}")
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=mask_token, oov_token=oov_token, vocabulary=vocabulary,
                         vocabulary_dtype=vocabulary_dtype, idf_weights=idf_weights,
                         invert=invert, output_mode=output_mode, sparse=sparse,
                         pad_to_max_tokens=pad_to_max_tokens, name=name, **kwargs)

    def _convert(self, x, name="inputs"):
        return integer_array(x, self._owner, name)
