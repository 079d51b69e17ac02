"""CategoryEncoding: integer tokens to one-hot, multi-hot or count vectors; and the encoding
that Discretization shares."""
import numpy as np

from minidl.autodiff import Tensor, wrap
from minidl.layers.base import LAYERS
from minidl.layers.node import is_symbolic
from minidl.layers.preprocessing.base import EncodingLayer, check_positive_int, numeric_array
from minidl.utils.checks import check_bool

OUTPUT_MODES = ("one_hot", "multi_hot", "count")


def check_output_mode(owner, output_mode, modes):
    """``output_mode`` if it is one of ``modes``; ValueError naming it otherwise."""
    if not isinstance(output_mode, str) or output_mode not in modes:
        raise ValueError(f"The `output_mode` argument of {owner} must be one of "
                         f"{', '.join(repr(m) for m in modes)}. Received: "
                         f"output_mode={output_mode!r:.100}")
    return output_mode


def check_not_sparse(owner, sparse):
    """``sparse`` must be False: minidl has no sparse tensors (Keras' rule for backends
    without them)."""
    if check_bool(owner, "sparse", sparse):
        raise ValueError(f"{owner}: `sparse=True` cannot be used, as minidl has no sparse "
                         f"tensors (as Keras' numpy and JAX backends). Received: sparse=True")
    return False


def encoded_shape(sample_shape, depth, output_mode):
    """The sample shape of the encoding of indices of ``sample_shape``, as Keras shapes it.

    one_hot: a trailing axis of size 1 is replaced, another gets one appended. multi_hot
    and count: the last axis (a sample's tokens) becomes ``depth``. A batch of scalars
    (sample shape ``()``) gives ``(depth,)``.
    """
    shape = tuple(sample_shape)
    if not shape:
        return (depth,)
    if output_mode == "one_hot":
        return (shape[:-1] if shape[-1] == 1 else shape) + (depth,)
    return shape[:-1] + (depth,)


def encode_categorical(indices, depth, output_mode, dtype, count_weights=None):
    """One-hot, multi-hot or count encoding of int64 ``indices`` in ``[0, depth)``.

    Args:
        indices: int array of whole inputs (batch axis first).
        depth: the size of the encoding.
        output_mode: 'one_hot', 'multi_hot' or 'count'.
        dtype: the output's dtype.
        count_weights: optional float array of the shape of ``indices``: what each index
            adds in 'count' mode (default 1).

    Returns:
        one_hot: ``indices.shape`` (a trailing 1 dropped) + ``(depth,)``. multi_hot and
        count: ``indices.shape[:-1] + (depth,)``; a 1-D input is one sample, as in Keras.
    """
    if output_mode == "one_hot":
        shape = indices.shape
        if len(shape) > 1 and shape[-1] == 1:
            shape = shape[:-1]
        flat = indices.reshape(-1)
        out = np.zeros((flat.size, depth), dtype)
        out[np.arange(flat.size), flat] = 1
        return out.reshape(shape + (depth,))
    lead, width = indices.shape[:-1], indices.shape[-1]
    rows = int(np.prod(lead, dtype=np.int64))
    # Each row's tokens, offset into that row's slice of one flat output.
    flat = (indices.reshape(rows, width) + (np.arange(rows, dtype=np.int64) * depth)[:, None])
    flat = flat.reshape(-1)
    if output_mode == "multi_hot":
        out = np.zeros(rows * depth, dtype)
        out[flat] = 1
    else:
        weights = None if count_weights is None else count_weights.reshape(-1)
        out = np.bincount(flat, weights=weights, minlength=rows * depth).astype(dtype)
    return out.reshape(lead + (depth,))


@LAYERS.register()
class CategoryEncoding(EncodingLayer):
    """A preprocessing layer which encodes integer features.

    It turns integer tokens in ``[0, num_tokens)`` into a dense one-hot, multi-hot or
    count representation; a token outside that range raises a ValueError. Its outputs are
    not differentiable in its inputs (their gradient is zero); it is normally a first
    layer.

    Args:
        num_tokens: int >= 1, the number of tokens the layer supports.
        output_mode: 'one_hot' (each element becomes a vector of ``num_tokens`` with a 1 at
            its index; a trailing axis of size 1 is replaced, another gets a new axis
            appended), 'multi_hot' (default: each sample, the last axis, becomes one
            vector with a 1 for each token present) or 'count' (as 'multi_hot', with the
            number of times each token appears). 'binary' is an old name of 'multi_hot'.
        sparse: must be False (minidl has no sparse tensors).

    Call arguments:
        inputs: integer tokens (ints, or floats with integral values), of shape
            ``(batch_size,)`` or ``(batch_size, sample_length)``. In 'multi_hot' and
            'count' modes a 1-D input is one sample, as in Keras.
        count_weights: optional array of the shape of ``inputs``: the weight each token
            adds in 'count' mode (eager calls only).

    Output shape: see ``output_mode``; floats of the layer's dtype.

    Examples:
        >>> CategoryEncoding(num_tokens=4, output_mode="one_hot")(np.array([3, 2, 0, 1]))
        ... # [[0, 0, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
        >>> CategoryEncoding(num_tokens=4)(np.array([[0, 1], [0, 0], [1, 2], [3, 1]]))
        ... # [[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]]
    """

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":   # (Keras' old name)
            output_mode = "multi_hot"
        self.output_mode = check_output_mode("CategoryEncoding", output_mode, OUTPUT_MODES)
        if num_tokens is None:
            raise ValueError("num_tokens must be set to use this layer. If the number of "
                             "tokens is not known beforehand, use the IntegerLookup layer "
                             "instead. Received: num_tokens=None")
        self.num_tokens = check_positive_int("CategoryEncoding", "num_tokens", num_tokens,
                                             allow_none=False)
        self.sparse = check_not_sparse("CategoryEncoding", sparse)

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.num_tokens, self.output_mode)

    def __call__(self, *args, count_weights=None, **kwargs):
        if count_weights is None:
            return super().__call__(*args, **kwargs)
        if self.output_mode != "count":
            raise ValueError(f"`count_weights` is not used when `output_mode` is not "
                             f"'count'. Received: count_weights={count_weights!r:.100} with "
                             f"output_mode={self.output_mode!r}")
        inputs = args[0] if args else kwargs.pop("inputs", None)
        kwargs.pop("training", None)
        if len(args) > 1 or kwargs:
            raise TypeError(f"Layer '{self.name}' (CategoryEncoding) takes inputs, "
                            f"count_weights and training; received extra arguments "
                            f"{sorted(kwargs) or len(args) - 1}.")
        if is_symbolic(inputs) or is_symbolic(count_weights):
            raise TypeError(f"Layer '{self.name}' (CategoryEncoding) takes count_weights in "
                            f"calls on arrays only, not on symbolic tensors.")
        x = np.asarray(inputs.value if isinstance(inputs, Tensor) else inputs)
        weights = numeric_array(f"Layer '{self.name}' (CategoryEncoding)", "count_weights",
                                count_weights, allow_bool=True)
        if weights.shape != x.shape:
            raise ValueError(f"Layer '{self.name}' (CategoryEncoding): count_weights must "
                             f"have the shape of the inputs, {x.shape}; received "
                             f"{weights.shape}.")
        if x.ndim < 1:
            raise ValueError(f"Layer '{self.name}' takes arrays with a batch dimension; "
                             f"received a scalar.")
        self.ensure_built(x.shape[1:])
        return wrap(encode_categorical(self._tokens(x), self.num_tokens, self.output_mode,
                                       self.dtype, weights))

    def _tokens(self, x):
        """``x`` as int64 tokens, after checking they are integers in [0, num_tokens)."""
        x = np.asarray(x)
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x) | (x != np.floor(x))
            if bad.any():
                raise ValueError(f"Layer '{self.name}' (CategoryEncoding) takes integer "
                                 f"tokens; received {x[bad].flat[0].item()!r}.")
        elif x.dtype.kind not in "biu":
            raise TypeError(f"Layer '{self.name}' (CategoryEncoding) takes integer tokens; "
                            f"received an array of dtype {x.dtype}.")
        if x.size:
            low, high = x.min(), x.max()
            if low < 0 or high >= self.num_tokens:
                value = low if low < 0 else high
                raise ValueError(f"Layer '{self.name}' (CategoryEncoding) takes tokens in the "
                                 f"range [0, num_tokens={self.num_tokens}); received "
                                 f"{int(value)}. Use a larger num_tokens, or map the "
                                 f"values to indices first.")
        return x.astype(np.int64, copy=False)

    def encode(self, x):
        return encode_categorical(self._tokens(x), self.num_tokens, self.output_mode,
                                  self.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_tokens=self.num_tokens, output_mode=self.output_mode,
                      sparse=self.sparse)
        return config

