"""Embedding: integer ids to rows of a trained table.

One training step is
    forward:  out[i] = embeddings[ids[i]]   (a compiled gather; the id check in the same loop)
    backward: grad[r] = sum of dy[i] over the positions with ids[i] == r, for the rows the
              batch used only (``minidl._core._embedding``)
The gradient array keeps zeros outside the rows in use: each backward pass writes this
batch's rows and zeroes the rows the previous one wrote (their list stays in the call's
context), so a step costs the batch's rows, not the (input_dim, output_dim) table. The
rows are summed in position order, one row per thread: the same bits for any thread count.

A weight regularizer adds its gradient to every row after the backward pass: the layer then
zeroes the whole array each step. A layer that runs in several steps of a plan (called twice,
or inside a model called twice) has the other calls' gradients added into its array: each
call also zeroes the rows the others wrote last (the layer keeps them, per context).
"""
import numbers
import warnings
import weakref

import numpy as np

from minidl import constraints, initializers, regularizers
from minidl._core import _embedding as kernels
from minidl.layers.base import LAYERS, Layer, _as_shape
from minidl.layers.core import _serialize_init
from minidl.utils.checks import check_bool


@LAYERS.register()
class Embedding(Layer):
    """Turns non-negative integers (indices) into dense vectors of fixed size:
    ``[[4], [20]] -> [[0.25, 0.1], [0.6, -0.2]]``.

    Args:
        input_dim: positive int, the size of the vocabulary (largest index + 1).
        output_dim: positive int, the size of each vector.
        embeddings_initializer: initializer of the ``embeddings`` table (default 'uniform':
            uniform on [-0.05, 0.05]).
        embeddings_regularizer: optional regularizer of the table.
        embeddings_constraint: optional constraint of the table, applied after each
            optimizer update.
        mask_zero: whether index 0 is padding: the layer then makes the mask
            ``inputs != 0`` for the layers after it (``compute_mask``), and index 0
            cannot be a word (``input_dim`` = vocabulary size + 1).
        weights: optional initial table, an (input_dim, output_dim) array (or a list
            holding it); the layer is then built at once.
        lora_rank, lora_alpha, quantization_config: Keras 3 arguments that minidl does not
            support; only None is accepted.
        activity_regularizer: optional regularizer of the output; its penalty is divided
            by the batch size, as in Keras.
        input_length: accepted and ignored (deprecated in Keras 3, which warns).

    Input shape:
        ``(batch_size, ...)`` of indices: any integer dtype, or floats that are whole
        numbers (what a float model input holds; Keras casts floats to int32, minidl
        refuses a fraction rather than truncate it).
    Output shape:
        ``input_shape + (output_dim,)``, in the layer's float dtype.

    Raises (when called):
        ValueError: an index outside ``[0, input_dim)``, or not a whole number, naming the
            first one; no row outside the table is ever read.

    Example:
        >>> model = Sequential([Input((10,), dtype="int32"), Embedding(1000, 64)])
        >>> model.predict(np.random.randint(1000, size=(32, 10))).shape
        (32, 10, 64)
    """

    # The plan and eager calls pass integer ids as they are, not cast to floats.
    _reads_integer_inputs = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, quantization_config=None,
                 activity_regularizer=None, **kwargs):
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.",
                          stacklevel=2)
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"Embedding {name} must be a positive int. Received: "
                                 f"{name}={value!r:.100}")
        for name, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha),
                            ("quantization_config", quantization_config)):
            if value is not None:
                raise ValueError(f"Embedding does not support LoRA or quantization in minidl; "
                                 f"{name} must be None. Received: {name}={value!r:.100}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self._initializer = self._resolve("embeddings_initializer", embeddings_initializer,
                                          initializers.get)
        self.embeddings_regularizer = self._resolve("embeddings_regularizer",
                                                    embeddings_regularizer, regularizers.get)
        self.embeddings_constraint = self._resolve("embeddings_constraint",
                                                   embeddings_constraint, constraints.get)
        self.activity_regularizer = self._resolve("activity_regularizer", activity_regularizer,
                                                  regularizers.get)
        self.mask_zero = check_bool("Embedding", "mask_zero", mask_zero)
        # Keras: a layer that makes a mask supports masking.
        self.supports_masking = self._makes_masks = self.mask_zero
        if weights is not None:
            if isinstance(weights, (list, tuple)) and len(weights) == 1:
                weights = weights[0]
            self.build(None)
            self.set_weights([np.asarray(weights)])

    # ---- building ----

    def build(self, input_shape):
        """Create the (input_dim, output_dim) table; any sample shape of indices works."""
        self.embeddings = self.add_weight((self.input_dim, self.output_dim),
                                          self._initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint,
                                          name="embeddings")
        self._table = self.embeddings.value
        self.built = True
        self.built_input_shape = None if input_shape is None else tuple(input_shape)

    def ensure_built(self, input_shape):
        # Indices of any rank and length (one per sample too): the table does not depend
        # on them.
        shape = tuple(input_shape)
        if shape:
            shape = _as_shape(shape, f"Layer '{self.name}' input shape", allow_none=True)
        if not self.built:
            self.build(shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs, mask=None):
        """``inputs != 0`` with ``mask_zero``, else None."""
        if not self.mask_zero:
            return None
        return np.not_equal(np.asarray(inputs), 0)

    # ---- computation ----

    def _ids(self, x):
        x = np.asarray(x)
        if x.dtype.kind == "f" and x.dtype.itemsize not in (4, 8):
            x = x.astype(np.float64)   # float16 and long double: rare, read as float64
        elif x.dtype.kind not in "iuf":
            raise TypeError(f"Layer '{self.name}' (Embedding) takes integer indices; received "
                            f"an array of dtype {x.dtype}.")
        if x.ndim < 1:
            raise ValueError(f"Layer '{self.name}' (Embedding) takes indices with a batch "
                             f"dimension; received a scalar.")
        if not x.flags.c_contiguous or not x.dtype.isnative:
            x = np.ascontiguousarray(x, x.dtype.newbyteorder("="))
        return x

    def forward(self, ctx, x, training=False):
        ids = self._ids(x)
        n = ids.shape[0]
        sample = ids.shape[1:] + (self.output_dim,)
        if ctx.record:
            y = ctx.buffers.get("y", n, sample)
            rows = ctx.buffers.get("rows", ids.size, (), np.intp)
        else:
            y, rows = np.empty((n,) + sample, self.dtype), None
        if kernels.embedding_forward(ids, self._table, y, rows):
            self._raise_bad_id(ids)
        if ctx.record:
            ctx.rows, ctx.y = rows, y
        return y

    def _raise_bad_id(self, ids):
        position, value = kernels.first_bad_id(ids, self.input_dim)
        where = tuple(int(i) for i in np.unravel_index(position, ids.shape))
        if ids.dtype.kind == "f" and float(value) == float(value) and \
                0 <= value < self.input_dim:
            reason = "is not a whole number; Embedding takes integer indices"
        else:
            reason = f"is outside [0, input_dim={self.input_dim})"
        raise ValueError(f"Layer '{self.name}' (Embedding): index {value!r} at position "
                         f"{where} of the input {reason}.")

    def backward(self, ctx, dy, need_input_grad=True):
        """Fills the table's gradient; the indices have none (returns None)."""
        if self.activity_regularizer is not None:
            dy = self._activity_backward(ctx.y, dy, ctx.buffers.get("dy", dy.shape[0],
                                                                     dy.shape[1:]))
        rows = ctx.rows
        dy = np.ascontiguousarray(dy).reshape(rows.shape[0], self.output_dim)
        grad = ctx.grads[0]
        state = ctx.__dict__.get("sparse_grad")
        if state is None or state[0] is not grad:
            # A gradient array this context has not written before: all its rows once,
            # then only the batch's rows.
            grad.fill(0)
            state = ctx.sparse_grad = [grad, np.full(self.input_dim, -1, np.intp),
                                       np.empty(0, np.intp), 0]
        elif self.embeddings_regularizer is not None:
            # The regularizer adds its gradient to every row after the backward pass.
            grad.fill(0)
            state[3] = 0
        _, head, touched, count = state
        written = self.__dict__.get("_rows_written")
        if written is None:
            written = self._rows_written = weakref.WeakKeyDictionary()
        others = [r for c, r in list(written.items()) if c is not ctx]
        if others:
            # The layer runs in several steps of a plan (called twice, or in a model
            # called twice): the plan adds the other calls' gradients into this array,
            # so their last rows are zeroed here too.
            touched = np.unique(np.concatenate([touched[:count]] + others))
            count = touched.shape[0]
        unique = ctx.buffers.get("unique", rows.shape[0], (), np.intp)
        next_pos = ctx.buffers.get("next", rows.shape[0], (), np.intp)
        found = kernels.embedding_backward(rows, dy, grad, head, next_pos, touched, count,
                                           unique)
        # This batch's rows are those the next call zeroes: keep a copy, as the buffer
        # that holds them is reused.
        mine = state[2]
        if mine.shape[0] < found:
            mine = state[2] = np.empty(max(found, rows.shape[0]), np.intp)
        mine[:found] = unique[:found]
        state[3] = found
        written[ctx] = mine[:found]
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim, output_dim=self.output_dim,
            embeddings_initializer=_serialize_init(self.embeddings_initializer),
            embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
            activity_regularizer=regularizers.serialize(self.activity_regularizer),
            embeddings_constraint=constraints._serialize_argument(
                self, "embeddings_constraint", self.embeddings_constraint),
            mask_zero=self.mask_zero)
        return config
