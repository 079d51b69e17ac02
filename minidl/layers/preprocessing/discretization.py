"""Discretization: continuous values to the index of the range (bin) holding them.

Bins follow Keras (``numpy.digitize``): boundaries ``[b0, b1, ...]`` make the bins
``(-inf, b0), [b0, b1), ..., [b_last, inf)``; a value equal to a boundary goes to the bin
on its right, which is ``np.searchsorted(boundaries, x, side='right')``.

``adapt`` computes exact quantiles where Keras computes them from an approximate summary
(``epsilon`` its tolerance): the ``num_bins - 1`` boundaries are the quantiles at
``1/num_bins, ..., (num_bins-1)/num_bins`` of every value seen, interpolating the empirical
distribution function linearly between the sorted values (Hyndman and Fan's definition 4,
numpy's ``method='interpolated_inverted_cdf'``). That is the function Keras' summary
interpolates, so both agree whenever Keras' summary holds every value (fewer than
``1/epsilon`` values, at least ``num_bins`` of them), as in its documented example. The
price of exactness is memory: adapt keeps the values it reads (one copy, in the layer's
dtype) until it has the quantiles.
"""
import numbers

import numpy as np

from minidl.layers.base import LAYERS
from minidl.layers.preprocessing.base import (EncodingLayer, adapt_batches,
                                              check_positive_int, numeric_array)
from minidl.layers.preprocessing.category_encoding import (check_not_sparse,
                                                           check_output_mode,
                                                           encode_categorical, encoded_shape)

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


@LAYERS.register()
class Discretization(EncodingLayer):
    """A preprocessing layer which buckets continuous features by ranges.

    Each value of the input becomes the index of the range (bin) it falls in; the output
    mode may then encode the indices as with ``CategoryEncoding``. The outputs are not
    differentiable in the inputs (their gradient is zero); the layer is normally a first
    layer.

    Args:
        bin_boundaries: a sorted list of bin boundaries. The leftmost and rightmost bins
            extend to -inf and inf, so ``bin_boundaries=[0., 1., 2.]`` makes the bins
            ``(-inf, 0.)``, ``[0., 1.)``, ``[1., 2.)`` and ``[2., +inf)``. If set,
            ``adapt()`` should not be called.
        num_bins: the int number of bins, whose boundaries ``adapt()`` learns (then
            ``bin_boundaries`` must not be set).
        epsilon: Keras' error tolerance of its approximate quantiles (default 0.01), a
            float in (0, 1). minidl's quantiles are exact, so it changes nothing here; it
            is kept for compatible configs.
        output_mode: 'int' (default: the bin indices, as int64), 'one_hot', 'multi_hot'
            or 'count' (encoded as by ``CategoryEncoding``, with ``num_bins`` tokens; floats
            of the layer's dtype).
        sparse: must be False (minidl has no sparse tensors).

    Input shape: any, ``(batch_size, ...)``. Output shape: the same for 'int'; see
    ``CategoryEncoding`` for the other modes. NaN goes to the last bin, as with
    ``numpy.digitize``.

    Examples:
        >>> x = np.array([[-1.5, 1.0, 3.4, .5], [0.0, 3.0, 1.3, 0.0]])
        >>> Discretization(bin_boundaries=[0., 1., 2.])(x)   # [[0, 2, 3, 1], [1, 3, 2, 1]]
        >>> layer = Discretization(num_bins=4, epsilon=0.01)
        >>> layer.adapt(x)
        >>> layer(x)   # [[0, 2, 3, 2], [1, 3, 3, 1]]
    """

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, **kwargs):
        super().__init__(**kwargs)
        self.output_mode = check_output_mode("Discretization", output_mode, OUTPUT_MODES)
        self.sparse = check_not_sparse("Discretization", sparse)
        self.num_bins = check_positive_int("Discretization", "num_bins", num_bins)
        if isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, numbers.Real) \
                or not 0.0 < epsilon < 1.0:
            raise ValueError(f"Discretization: `epsilon` must be a float in (0, 1). "
                             f"Received: epsilon={epsilon!r:.100}")
        self.epsilon = float(epsilon)
        if bin_boundaries is not None:
            bin_boundaries = self._check_boundaries(bin_boundaries)
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError(f"Both `num_bins` and `bin_boundaries` should not be set. "
                             f"Received: `num_bins={num_bins}` and "
                             f"`bin_boundaries={bin_boundaries}`")
        if num_bins is None and bin_boundaries is None:
            raise ValueError("You need to set either `num_bins` or `bin_boundaries`.")
        self._set_boundaries(bin_boundaries)

    @staticmethod
    def _check_boundaries(bin_boundaries):
        """The boundaries as a list of floats, after checking they are finite numbers in
        non-decreasing order."""
        edges = numeric_array("Discretization", "bin_boundaries", bin_boundaries)
        if edges.ndim != 1:
            raise ValueError(f"Discretization: `bin_boundaries` must be a flat list of "
                             f"numbers. Received: bin_boundaries={bin_boundaries!r:.100}")
        if np.any(np.diff(edges) < 0):
            raise ValueError(f"Discretization: `bin_boundaries` must be sorted in increasing "
                             f"order. Received: bin_boundaries={bin_boundaries!r:.100}")
        return edges.tolist()

    def _set_boundaries(self, bin_boundaries):
        self.bin_boundaries = bin_boundaries
        # Compared in the layer's dtype, the type its inputs have (as TensorFlow's
        # Bucketize compares float32 values with float32 boundaries).
        self._edges = None if bin_boundaries is None else \
            np.asarray(bin_boundaries, dtype=self.dtype)

    @property
    def _depth(self):
        """The number of bins (the size of the encodings)."""
        if self.bin_boundaries is not None:
            return len(self.bin_boundaries) + 1
        return self.num_bins

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        return encoded_shape(input_shape, self._depth, self.output_mode)

    def _output_dtype(self):
        return "int64" if self.output_mode == "int" else self.dtype

    # ---- adapt ----

    def adapt(self, data, batch_size=None, steps=None):
        """Computes ``num_bins - 1`` bin boundaries: the quantiles of the data's values.

        Every value counts alike, whatever its position in the input. The boundaries
        replace those of any earlier ``adapt``; they are the exact quantiles described in
        the module's docstring, rounded to the layer's dtype.

        Args:
            data: a numpy array (or nested list of numbers), or an iterable of batches (a
                list of arrays, a generator, a dataset; a batch ``(x, y, ...)`` gives its
                ``x``).
            batch_size: optional int, the rows read at once from array data.
            steps: optional int, the number of batches to read from an iterable.

        Raises:
            ValueError: the layer was made with ``bin_boundaries``; the data is empty or
                holds NaN or infinity.
            TypeError: the data is not numeric, or not an array or iterable.
        """
        if self.num_bins is None:
            raise ValueError("Cannot adapt a Discretization layer that has been initialized "
                             "with `bin_boundaries`, use `num_bins` instead.")
        values = [np.asarray(batch, dtype=self.dtype).reshape(-1)
                  for batch in adapt_batches(data, batch_size, steps, self)]
        values = np.concatenate(values) if values else np.empty(0, self.dtype)
        if values.size == 0:
            raise ValueError(f"Layer '{self.name}' (Discretization) adapt() received no data "
                             f"(an empty array or iterable). Pass at least one value.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Layer '{self.name}' (Discretization) adapt() received data "
                             f"holding NaN or infinite values; their quantiles are undefined.")
        levels = np.arange(1, self.num_bins, dtype=np.float64) / self.num_bins
        quantiles = np.quantile(values.astype(np.float64), levels,
                                method="interpolated_inverted_cdf")
        self._set_boundaries(quantiles.astype(self.dtype).tolist())

    # ---- computation ----

    def encode(self, x):
        if self._edges is None:
            raise ValueError("You need to either pass the `bin_boundaries` argument at "
                             "construction time or call `adapt(dataset)` before you can start "
                             f"using the `Discretization` layer '{self.name}'.")
        indices = np.searchsorted(self._edges, x, side="right").astype(np.int64, copy=False)
        if self.output_mode == "int":
            return indices
        return encode_categorical(indices, len(self._edges) + 1, self.output_mode, self.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(bin_boundaries=self.bin_boundaries, num_bins=self.num_bins,
                      epsilon=self.epsilon, output_mode=self.output_mode, sparse=self.sparse)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            # An adapted layer's config holds both (as Keras'): make it with num_bins, then
            # give it the boundaries it learned.
            bin_boundaries = config.pop("bin_boundaries")
            layer = cls(**config)
            bin_boundaries = cls._check_boundaries(bin_boundaries)
            if len(bin_boundaries) != layer.num_bins - 1:
                raise ValueError(f"Discretization: an adapted layer's `bin_boundaries` holds "
                                 f"num_bins - 1 values. Received: num_bins={layer.num_bins} "
                                 f"and {len(bin_boundaries)} bin_boundaries")
            layer._set_boundaries(bin_boundaries)
            return layer
        return cls(**config)
