"""The non-recurrent sequence layers: Embedding, Masking, SpatialDropout1D, RepeatVector,
TimeDistributed, and the masked GlobalAveragePooling1D.

Checks: the compiled Embedding kernels against numpy (every index dtype, both float types)
and PyTorch's nn.Embedding, the row-sparse gradient over several steps, the same bits for 1
and 2 threads, bad indices (the error names the first), float64 gradient checks of every
layer, masks made and passed on (``compute_mask``, Keras' rules), Keras' shapes, errors and
config round trips. Layers are driven by hand through ``CallContext``; a mask reaches a
layer as ``ctx.mask`` (the plan sets it in models).
"""
import json
import warnings

import numpy as np
import pytest

import minidl
from minidl._core import _embedding as kernels
from minidl._ref import sequence as ref
from minidl._ref.gradcheck import check_layer_gradients, numeric_grad
from minidl.layers import (Activation, ActivityRegularization, Add, BatchNormalization,
                           CallContext, Concatenate, Conv2D, Dense, Dot, Dropout, Embedding,
                           Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, Identity,
                           LayerNormalization, Masking, Multiply, PReLU, ReLU, RepeatVector,
                           Reshape, SpatialDropout1D, TimeDistributed)
from minidl.layers import get as get_layer
from minidl.utils.registry import serialize

pytestmark = pytest.mark.usefixtures("one_thread")

ID_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
             np.float32, np.float64]


def data(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def ids_of(shape, high, seed=0, dtype=np.int64):
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


def embedding(input_dim=30, output_dim=5, dtype="float64", **kwargs):
    layer = Embedding(input_dim, output_dim, dtype=dtype, **kwargs)
    layer.build((None,))
    layer.embeddings.assign(data((input_dim, output_dim), seed=7).astype(dtype))
    return layer


def round_trip(layer):
    config = layer.get_config()
    again = get_layer(json.loads(json.dumps(serialize(layer))))
    assert type(again) is type(layer)
    assert again.get_config() == config
    return again


# ---- the kernels ----

@pytest.mark.parametrize("id_dtype", ID_DTYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_matches_numpy_for_every_index_type(id_dtype, dtype):
    table = data((60, 9), dtype=dtype)
    for shape in [(7,), (4, 11), (3, 5, 2)]:
        ids = ids_of(shape, 60, dtype=id_dtype)
        out = np.empty(shape + (9,), dtype)
        rows = np.empty(ids.size, np.intp)
        assert kernels.embedding_forward(ids, table, out, rows) == 0
        np.testing.assert_array_equal(out, ref.embedding_lookup(ids, table))
        np.testing.assert_array_equal(rows, ids.reshape(-1).astype(np.intp))


def test_gather_counts_bad_ids_and_never_reads_outside_the_table():
    table = data((10, 3))
    ids = np.array([[3, 10, -1, 2], [2**40, 0, 9, -2**40]])
    out = np.full(ids.shape + (3,), np.nan)
    assert kernels.embedding_forward(ids, table, out) == 4
    np.testing.assert_array_equal(out[0, 1], 0.0)   # bad rows are zeros
    np.testing.assert_array_equal(out[0, 0], table[3])
    assert kernels.first_bad_id(ids, 10) == (1, 10)
    floats = np.array([1.0, 2.0, 2.5, np.nan, np.inf, -0.5])
    assert kernels.embedding_forward(floats, table, np.empty((6, 3))) == 4
    assert kernels.first_bad_id(floats, 10) == (2, 2.5)
    big = np.array([5, 2**64 - 1], np.uint64)
    assert kernels.embedding_forward(big, table, np.empty((2, 3))) == 1


def test_kernel_argument_errors():
    table = data((10, 3))
    with pytest.raises(TypeError, match="ids must be integers"):
        kernels.embedding_forward(np.array([True]), table, np.empty((1, 3)))
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.embedding_forward(np.array([1, 2]), table, np.empty((3, 3)))
    with pytest.raises(TypeError, match="dtype float64"):
        kernels.embedding_forward(np.array([1]), table, np.empty((1, 3), np.float32))
    rows = np.array([1, 12], np.intp)
    grad, head = np.zeros((10, 3)), np.full(10, -1, np.intp)
    with pytest.raises(ValueError, match=r"rows\[1\] = 12 is outside \[0, 10\)"):
        kernels.embedding_backward(rows, np.ones((2, 3)), grad, head, np.empty(2, np.intp),
                                   np.empty(0, np.intp), 0, np.empty(2, np.intp))
    assert not grad.any() and (head == -1).all()   # nothing written


def sparse_steps(ctx, layer, batches):
    """Run forward and backward on each (ids, dy), checking the full gradient each time."""
    for ids, dy in batches:
        ctx.forward(ids, training=True)
        assert ctx.backward(dy) is None
        expected = ref.embedding_grad(ids, dy.astype(np.float64), layer.input_dim)
        np.testing.assert_allclose(ctx.grads[0], expected, rtol=1e-12, atol=1e-12)


def test_backward_writes_the_full_gradient_step_after_step():
    # Each step zeroes the rows the previous one wrote and no others: the gradient array
    # must equal numpy's full gradient however the rows in use change.
    layer = embedding(200, 6)
    ctx = CallContext(layer)
    batches = [(ids_of((8, 12), 200, seed=s), data((8, 12, 6), seed=s)) for s in range(3)]
    batches.append((np.array([[5, 5, 5]]), data((1, 3, 6), seed=9)))          # few rows
    batches.append((ids_of((40, 20), 200, seed=5), data((40, 20, 6), seed=5)))  # larger
    sparse_steps(ctx, layer, batches)


def test_backward_zeroes_rows_written_by_others_in_dense_cases():
    # A weight regularizer adds into every row after backward: the next backward must not
    # keep those values.
    layer = embedding(50, 4, embeddings_regularizer="l2")
    ctx = CallContext(layer)
    for seed in range(3):
        ids, dy = ids_of((4, 6), 50, seed=seed), data((4, 6, 4), seed=seed)
        ctx.forward(ids, training=True)
        ctx.backward(dy)
        np.testing.assert_allclose(ctx.grads[0], ref.embedding_grad(ids, dy, 50), atol=1e-12)
        layer.regularization_loss(ctx.grads)   # dense writes, as the training loop makes
    # A new gradient array (a plan's) is written whole once.
    plain = embedding(50, 4)
    ctx = CallContext(plain)
    ids, dy = ids_of((4, 6), 50), data((4, 6, 4))
    ctx.forward(ids, training=True)
    ctx.backward(dy)
    ctx.grads = [np.full((50, 4), 3.0)]
    ctx.forward(ids, training=True)
    ctx.backward(dy)
    np.testing.assert_allclose(ctx.grads[0], ref.embedding_grad(ids, dy, 50), atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_same_bits_for_one_and_two_threads(dtype):
    # Large enough for the parallel paths; many repeats per row (the sums' order matters).
    ids = ids_of((64, 200), 500, seed=3)
    dy = data((64, 200, 32), seed=4, dtype=dtype)
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            layer = embedding(500, 32, dtype=np.dtype(dtype).name)
            ctx = CallContext(layer)
            y = ctx.forward(ids, training=True).copy()
            ctx.backward(dy)
            ctx.forward(ids[:3], training=True)   # the zeroing path too
            ctx.backward(dy[:3])
            results.append((y, ctx.grads[0].copy()))
    finally:
        minidl.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(results[0][1], ref.embedding_grad(ids[:3], dy[:3], 500),
                               rtol=1e-5, atol=1e-6)


# ---- Embedding ----

@pytest.mark.parametrize("id_dtype", ID_DTYPES)
def test_embedding_forward_any_index_type_and_rank(id_dtype):
    layer = embedding(40, 3)
    for shape in [(5,), (5, 7), (2, 3, 4)]:
        ids = ids_of(shape, 40, seed=1, dtype=id_dtype)
        y = layer(ids).numpy()
        assert y.shape == shape + (3,) and y.dtype == np.float64
        np.testing.assert_array_equal(y, ref.embedding_lookup(ids, layer.embeddings.numpy()))


def test_embedding_against_torch():
    torch = pytest.importorskip("torch")
    layer = embedding(25, 4, dtype="float32")
    table = layer.get_weights()[0]
    ids = ids_of((6, 9), 25, seed=2)
    dy = data((6, 9, 4), seed=3, dtype=np.float32)
    module = torch.nn.Embedding(25, 4)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(table))
    out = module(torch.from_numpy(ids))
    out.backward(torch.from_numpy(dy))
    ctx = CallContext(layer)
    y = ctx.forward(ids.astype(np.int32), training=True)
    ctx.backward(dy)
    np.testing.assert_array_equal(y, out.detach().numpy())
    np.testing.assert_allclose(ctx.grads[0], module.weight.grad.numpy(), rtol=1e-6,
                               atol=1e-6)


def test_embedding_gradient_check():
    layer = embedding(12, 3)
    ids = ids_of((4, 5), 12, seed=4)
    w = data((4, 5, 3), seed=5)
    ctx = CallContext(layer)
    ctx.forward(ids, training=True)
    ctx.backward(w.copy())
    table = layer.embeddings.value
    numeric = numeric_grad(lambda: float(np.sum(layer(ids).numpy() * w)), table)
    np.testing.assert_allclose(ctx.grads[0], numeric, rtol=1e-6, atol=1e-8)


def test_embedding_activity_regularizer_gradient():
    layer = embedding(12, 3, activity_regularizer=minidl.regularizers.L2(0.1))
    ids = ids_of((4, 5), 12, seed=4)
    w = data((4, 5, 3), seed=5)
    ctx = CallContext(layer)
    y = ctx.forward(ids, training=True)
    ctx.backward(w.copy())

    def loss():
        out = layer(ids).numpy()
        return float(np.sum(out * w) + layer.activity_penalty(out))
    np.testing.assert_allclose(ctx.grads[0], numeric_grad(loss, layer.embeddings.value),
                               rtol=1e-6, atol=1e-8)
    assert y.shape == (4, 5, 3)


@pytest.mark.parametrize("ids, message", [
    (np.array([[1, 2, 30]]), r"index 30 at position \(0, 2\) of the input is outside "
                             r"\[0, input_dim=30\)"),
    (np.array([[1, -1]], np.int8), r"index -1 at position \(0, 1\)"),
    (np.array([[0.0, 1.5]]), r"index 1.5 at position \(0, 1\) of the input is not a whole "
                             r"number"),
    (np.array([[np.nan]], np.float32), r"index nan at position \(0, 0\)"),
    (np.array([[2**63 - 1]], np.uint64), r"index 9223372036854775807"),
])
def test_embedding_bad_indices_raise_naming_the_first(ids, message):
    layer = embedding(30, 2)
    with pytest.raises(ValueError, match=message):
        layer(ids)
    with pytest.raises(ValueError, match=message):
        CallContext(layer).forward(ids, training=True)


def test_embedding_refuses_non_numeric_indices_and_takes_whole_floats():
    layer = embedding(30, 2)
    with pytest.raises(TypeError, match="integer indices; received an array of dtype bool"):
        layer(np.array([[True, False]]))
    with pytest.raises(ValueError, match="scalar"):
        layer.forward(CallContext(layer, record=False), np.array(3), False)
    # Whole numbers in floats (a float model input) give the rows Keras' cast gives.
    floats = np.array([[3.0, 0.0, 29.0]], np.float32)
    np.testing.assert_array_equal(layer(floats).numpy(),
                                  layer.embeddings.numpy()[[[3, 0, 29]]])


def test_embedding_arguments_shapes_and_config():
    layer = Embedding(1000, 64)
    assert layer.compute_output_shape((10,)) == (10, 64)
    assert layer.compute_output_shape((None,)) == (None, 64)
    assert layer.compute_output_shape((None, 3)) == (None, 3, 64)
    assert layer(np.zeros((2, 7), np.int32)).shape == (2, 7, 64)
    assert layer(np.zeros((3, 11), np.int32)).shape == (3, 11, 64)   # any length
    assert layer.weights[0].name == "embeddings" and layer.weights[0].shape == (1000, 64)
    values = layer.embeddings.numpy()
    assert np.abs(values).max() <= 0.05 and values.std() > 0.02   # 'uniform': [-0.05, 0.05]
    config = layer.get_config()
    assert config["embeddings_initializer"] == "uniform" and config["mask_zero"] is False
    again = round_trip(Embedding(5, 2, mask_zero=True, embeddings_regularizer="l2",
                                 embeddings_constraint="non_neg", name="emb"))
    assert again.mask_zero and again.supports_masking
    table = data((5, 2), dtype=np.float32)
    assert np.array_equal(Embedding(5, 2, weights=table).get_weights()[0], table)
    assert np.array_equal(Embedding(5, 2, weights=[table]).get_weights()[0], table)
    with pytest.warns(UserWarning, match="input_length"):
        assert Embedding(5, 2, input_length=10).get_config()["input_dim"] == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Embedding(5, 2, input_length=None)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"input_dim": 0, "output_dim": 2}, ValueError, "input_dim must be a positive int"),
    ({"input_dim": 5, "output_dim": 2.5}, ValueError, "output_dim must be a positive int"),
    ({"input_dim": True, "output_dim": 2}, ValueError, "input_dim"),
    ({"input_dim": 5, "output_dim": 2, "lora_rank": 4}, ValueError, "lora_rank=4"),
    ({"input_dim": 5, "output_dim": 2, "mask_zero": "yes"}, (TypeError, ValueError),
     "mask_zero"),
    ({"input_dim": 5, "output_dim": 2, "embeddings_initializer": "nope"}, ValueError,
     "embeddings_initializer"),
    ({"input_dim": 5, "output_dim": 2, "weights": np.zeros((4, 2))}, ValueError,
     r"shape \(5, 2\)"),
])
def test_embedding_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Embedding(**kwargs)


def test_embedding_mask():
    layer = Embedding(10, 3, mask_zero=True)
    ids = np.array([[4, 2, 0, 0], [1, 0, 3, 0]])
    assert layer.supports_masking
    np.testing.assert_array_equal(layer.compute_mask(ids), ids != 0)
    deep = np.array([[[1, 0], [0, 0]]])
    np.testing.assert_array_equal(layer.compute_mask(deep), deep != 0)
    plain = Embedding(10, 3)
    assert plain.compute_mask(ids) is None and not plain.supports_masking


def test_embedding_on_a_tape():
    # An eager call keeps integer ids (no cast to the layer's float type) and records its
    # backward for a GradientTape.
    layer = embedding(20, 3)
    ids = np.array([[1, 1, 19], [0, 5, 1]])
    w = data((2, 3, 3), seed=2)
    with minidl.GradientTape() as tape:
        loss = minidl.ops.sum(layer(ids) * w)
    grad, = tape.gradient(loss, layer.trainable_weights)
    np.testing.assert_allclose(np.asarray(grad), ref.embedding_grad(ids, w, 20), atol=1e-12)


# ---- Masking ----

def test_masking_output_mask_and_gradient():
    x = data((3, 5, 4))
    x[0, 1] = 0.0
    x[2, [0, 4]] = 0.0
    x[1, 2, :2] = 0.0   # partly zero: kept
    layer = Masking(dtype="float64")
    want, mask = ref.masking(x, 0.0)
    np.testing.assert_array_equal(layer(x).numpy(), want)
    np.testing.assert_array_equal(layer.compute_mask(x), mask)
    assert mask.tolist() == [[True, False, True, True, True], [True] * 5,
                             [False, True, True, True, False]]
    # The mask is a constant of the gradient (as Keras' autodiff has it): dy on kept
    # steps, zeros on masked ones; central differences agree away from masked steps,
    # whose perturbation would unmask them.
    ctx = CallContext(layer)
    ctx.forward(x, training=True)
    dy = data(x.shape, seed=3)
    np.testing.assert_array_equal(ctx.backward(dy), dy * mask[..., None])
    check_layer_gradients(layer, data((3, 5, 4), seed=4))
    other = Masking(mask_value=-1.0, dtype="float64")
    x[1, 3] = -1.0
    assert not other.compute_mask(x)[1, 3] and other.compute_mask(x)[0, 1]
    assert round_trip(other).mask_value == -1.0
    with pytest.raises(ValueError, match="mask_value must be a number"):
        Masking(mask_value="0")


# ---- SpatialDropout1D ----

def test_spatial_dropout_drops_whole_channels():
    x = data((8, 6, 10), dtype=np.float32) + 3.0   # no zeros of its own
    layer = SpatialDropout1D(0.4, seed=3)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dropped = y == 0
    assert np.all(dropped == dropped[:, :1, :])     # one draw per (sample, channel)
    assert 0 < dropped[:, 0].sum() < dropped[:, 0].size
    scale = np.where(dropped, 0.0, 1 / 0.6)
    np.testing.assert_allclose(y, x * scale, rtol=1e-6)
    dy = data((8, 6, 10), seed=1, dtype=np.float32)
    np.testing.assert_allclose(ctx.backward(dy), dy * scale, rtol=1e-6)
    np.testing.assert_array_equal(layer(x).numpy(), x)           # inference
    # The same seed drops the same channels.
    again = CallContext(SpatialDropout1D(0.4, seed=3)).forward(x, training=True)
    np.testing.assert_array_equal(again, y)
    # Any length.
    assert CallContext(layer).forward(x[:, :2], training=True).shape == (8, 2, 10)


def test_spatial_dropout_errors_and_config():
    for rate in (1.0, -0.1, "0.5", True):
        with pytest.raises(ValueError, match="rate"):
            SpatialDropout1D(rate)
    layer = SpatialDropout1D(0.3)
    with pytest.raises(ValueError, match="expects 3-D input"):
        layer(np.ones((2, 4)))
    config = round_trip(SpatialDropout1D(0.3, seed=5)).get_config()
    assert config["rate"] == 0.3 and config["seed"] == 5 and "noise_shape" not in config
    assert SpatialDropout1D.supports_masking


# ---- RepeatVector ----

def test_repeat_vector():
    x = data((4, 6))
    layer = RepeatVector(3, dtype="float64")
    np.testing.assert_array_equal(layer(x).numpy(), ref.repeat_vector(x, 3))
    assert layer.compute_output_shape((6,)) == (3, 6)
    check_layer_gradients(RepeatVector(3, dtype="float64"), x)
    assert round_trip(layer).n == 3
    with pytest.raises(ValueError, match="expects 2-D input"):
        RepeatVector(2)(np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="integer value for `n`"):
        RepeatVector(2.0)
    with pytest.raises(ValueError, match="positive"):
        RepeatVector(0)
    assert not RepeatVector.supports_masking   # as in Keras


# ---- TimeDistributed ----

def test_time_distributed_dense_matches_each_step():
    inner = Dense(4, activation="tanh", dtype="float64")
    layer = TimeDistributed(inner)
    x = data((3, 5, 6))
    y = layer(x).numpy()
    assert y.shape == (3, 5, 4) and layer.dtype == "float64"
    for t in range(5):
        np.testing.assert_allclose(y[:, t], inner(x[:, t]).numpy(), rtol=1e-14)
    assert layer.weights == inner.weights                  # the wrapped layer's, in order
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert layer(data((3, 9, 6))).shape == (3, 9, 4)        # any number of steps
    check_layer_gradients(TimeDistributed(Dense(4, activation="tanh", dtype="float64")), x)
    assert layer.compute_output_shape((None, 6)) == (None, 4)


def test_time_distributed_conv_and_flatten():
    # The wrapped Conv2D on the steps folded into the batch, forward and backward: the
    # same bits as the Conv2D called on that batch itself (whose gradients test_conv checks).
    x = data((2, 3, 6, 6, 2))
    layer = TimeDistributed(Conv2D(3, 3, activation="tanh", dtype="float64"))
    assert layer.compute_output_shape((3, 6, 6, 2)) == (3, 4, 4, 3)
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    dy = data(y.shape, seed=1)
    dx = ctx.backward(dy.copy())
    plain = CallContext(layer.layer)
    np.testing.assert_array_equal(y.reshape(6, 4, 4, 3),
                                  plain.forward(x.reshape(6, 6, 6, 2), training=True))
    np.testing.assert_array_equal(dx.reshape(6, 6, 6, 2),
                                  plain.backward(dy.reshape(6, 4, 4, 3).copy()))
    for mine, want in zip(ctx.grads, plain.grads):
        np.testing.assert_array_equal(mine, want)
    flat = TimeDistributed(Flatten(), dtype="float64")
    assert flat(x).shape == (2, 3, 72)
    check_layer_gradients(TimeDistributed(Flatten(), dtype="float64"), x[:, :, :2, :3])


def test_time_distributed_masks_errors_and_config():
    layer = TimeDistributed(Dense(2))
    mask = np.array([[True, False, True]])
    assert layer.supports_masking
    np.testing.assert_array_equal(layer.compute_mask(np.ones((1, 3, 4)), mask), mask)
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        layer(np.ones((2, 4)))
    with pytest.raises(ValueError, match="Layer instance"):
        TimeDistributed("dense")
    with pytest.raises(ValueError, match="activity_regularizer"):
        TimeDistributed(Dense(2, activity_regularizer="l2"))(np.ones((1, 2, 3)))
    wrapped = TimeDistributed(Dense(3, activation="relu", name="inner"), name="td")
    again = round_trip(wrapped)
    assert isinstance(again.layer, Dense) and again.layer.units == 3
    assert again.layer.name == "inner"


# ---- masked global pooling ----

def test_global_average_pooling_1d_with_mask():
    x = data((4, 6, 3))
    mask = np.array([[1, 1, 0, 0, 0, 0], [1] * 6, [0, 1, 0, 1, 0, 1], [0] * 6], bool)
    x[0, 2:] = np.nan   # masked steps never reach the output (Keras: where, not multiply)
    layer = GlobalAveragePooling1D(dtype="float64")
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True, mask=mask)
    np.testing.assert_allclose(y, ref.masked_average(x, mask), rtol=1e-15)
    np.testing.assert_array_equal(y[3], 0.0)   # nothing unmasked: zeros, not NaN
    dy = data((4, 3), seed=1)
    np.testing.assert_allclose(ctx.backward(dy), ref.masked_average_grad(dy, mask),
                               rtol=1e-15)
    # Gradient check on finite inputs.
    x = data((4, 6, 3), seed=2)
    ctx = CallContext(layer)
    ctx.forward(x, training=True, mask=mask)
    dx = ctx.backward(dy.copy())

    def loss():
        return float(np.sum(CallContext(layer, record=False).forward(x, mask=mask) * dy))
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-9)
    # Without a mask: the plain mean, on the same context.
    np.testing.assert_allclose(ctx.forward(x, training=True), x.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(ctx.backward(dy), np.repeat(dy[:, None] / 6, 6, axis=1))
    # keepdims, and a mask of the wrong shape.
    keep = GlobalAveragePooling1D(keepdims=True, dtype="float64")
    c = CallContext(keep)
    assert c.forward(x, training=True, mask=mask).shape == (4, 1, 3)
    with pytest.raises(ValueError, match="mask of shape"):
        c.forward(x, training=True, mask=mask[:, :5])
    assert layer.supports_masking and layer.compute_mask(x, mask) is None
    assert not GlobalMaxPooling1D.supports_masking   # as in Keras
    np.testing.assert_allclose(layer(x, mask=mask).numpy(), ref.masked_average(x, mask),
                               rtol=1e-15)   # an eager call with a mask


def test_masks_flow_through_eager_calls():
    # layer(x) on arrays: the mask rides on the output tensor (Keras' _keras_mask).
    emb = Embedding(10, 3, mask_zero=True, dtype="float64")
    ids = np.array([[1, 2, 0], [3, 0, 0]])
    y = emb(ids)
    np.testing.assert_array_equal(np.asarray(y._keras_mask), ids != 0)
    steps = TimeDistributed(Dense(2, dtype="float64"))(y)   # passes it on
    np.testing.assert_array_equal(np.asarray(steps._keras_mask), ids != 0)
    pooled = GlobalAveragePooling1D(dtype="float64")(steps)
    assert getattr(pooled, "_keras_mask", None) is None
    np.testing.assert_allclose(pooled.numpy(), ref.masked_average(steps.numpy(), ids != 0),
                               rtol=1e-15)


# ---- masks across layers ----

def test_supports_masking_as_in_keras():
    for cls in (Dense, Activation, ReLU, Identity, PReLU, Dropout, ActivityRegularization,
                BatchNormalization, LayerNormalization, Add, Concatenate, Dot, Masking,
                TimeDistributed, GlobalAveragePooling1D, SpatialDropout1D):
        assert cls.supports_masking is True, cls.__name__
    for cls in (Flatten, Reshape, Conv2D, GlobalMaxPooling1D, RepeatVector):
        assert not getattr(cls, "supports_masking", False), cls.__name__


def test_merge_masks_follow_keras():
    a = np.array([[1, 1, 0], [1, 0, 0]], bool)
    b = np.array([[1, 0, 0], [1, 1, 1]], bool)
    x = np.zeros((2, 3, 4))
    np.testing.assert_array_equal(Add().compute_mask([x, x], [a, b]), a | b)
    np.testing.assert_array_equal(Multiply().compute_mask([x, x, x], [a, b, a]), a | b)
    assert Add().compute_mask([x, x], [a, None]) is None
    assert Add().compute_mask([x, x], None) is None
    with pytest.raises(ValueError, match="same length"):
        Add().compute_mask([x, x], [a])
    # Concatenate: an input without a mask counts as all True along the features...
    np.testing.assert_array_equal(Concatenate().compute_mask([x, x], [a, None]),
                                  np.ones((2, 3), bool))
    np.testing.assert_array_equal(Concatenate().compute_mask([x, x], [a, b]), a | b)
    # ... and along time the masks are joined.
    np.testing.assert_array_equal(Concatenate(axis=1).compute_mask([x, x], [a, b]),
                                  np.concatenate([a, b], axis=1))
    assert Concatenate().compute_mask([x, x], [None, None]) is None
    assert Dot(axes=2).compute_mask([x, x], [a, b]) is None


# ---- in models ----

def _sgd_model(inputs, outputs):
    model = minidl.Model(inputs, outputs)
    model.compile(optimizer=minidl.optimizers.SGD(learning_rate=1.0), loss="mse")
    return model


def _steps_match_numeric_gradient(model, table, batches):
    """Each SGD step (learning rate 1) moves the table by minus the central-difference
    gradient of the batch's loss: the plan's row-sparse gradient is the whole gradient,
    step after step."""
    for x, y in batches:
        numeric = numeric_grad(
            lambda: float(model.evaluate(x, y, batch_size=len(y), verbose=0)), table)
        before = table.copy()
        model.train_on_batch(x, y)
        np.testing.assert_allclose(before - table, numeric, rtol=1e-6, atol=1e-9)


def test_model_embedding_gradient_over_steps():
    minidl.utils.set_random_seed(1)
    inputs = minidl.Input((None,), dtype="int32")
    emb = Embedding(15, 3, dtype="float64")
    out = Dense(1, dtype="float64")(GlobalAveragePooling1D(dtype="float64")(emb(inputs)))
    model = _sgd_model(inputs, out)
    batches = [(ids_of((4, 5), 15, seed=s), data((4, 1), seed=s)) for s in range(2)]
    batches.append((np.array([[3, 3], [4, 3]]), data((2, 1), seed=5)))   # fewer rows, shorter
    _steps_match_numeric_gradient(model, emb.embeddings.value, batches)


def test_model_shared_embedding_gradient_over_steps():
    # One table read by two inputs: the plan adds the second call's gradient into the
    # first's array, which the layer must then zero whole.
    minidl.utils.set_random_seed(2)
    a, b = minidl.Input((4,), dtype="int32"), minidl.Input((4,), dtype="int32")
    emb = Embedding(12, 2, dtype="float64")
    pool = GlobalAveragePooling1D(dtype="float64")
    merged = Concatenate(dtype="float64")([pool(emb(a)), pool(emb(b))])
    model = _sgd_model([a, b], Dense(1, dtype="float64")(merged))
    batches = [([ids_of((3, 4), 12, seed=s), ids_of((3, 4), 12, seed=s + 10)],
                data((3, 1), seed=s)) for s in range(3)]
    _steps_match_numeric_gradient(model, emb.embeddings.value, batches)


def _masked_model():
    minidl.utils.set_random_seed(3)
    inputs = minidl.Input((None,), dtype="int32")
    h = Embedding(30, 8, mask_zero=True)(inputs)
    h = TimeDistributed(Dense(8, activation="tanh"))(h)   # passes the mask on
    h = GlobalAveragePooling1D()(h)
    model = minidl.Model(inputs, Dense(1, activation="sigmoid")(h))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _masked_reference(model, ids):
    table, kernel, bias, out_kernel, out_bias = [w.astype(np.float64)
                                                 for w in model.get_weights()]
    hidden = np.tanh(ref.embedding_lookup(ids, table) @ kernel + bias)
    pooled = ref.masked_average(hidden, ids != 0)
    return 1 / (1 + np.exp(-(pooled @ out_kernel + out_bias)))


def test_model_with_mask_zero_fits_predicts_saves_and_loads(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 10, size=256)
    x = np.zeros((256, 10), np.int32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(1, 30, size=n)
    y = (np.array([np.isin(row, [5, 6, 7]).any() for row in x]) * 1.0).reshape(-1, 1)
    model = _masked_model()
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.85
    pred = model.predict(x[:16], verbose=0)
    np.testing.assert_allclose(pred, _masked_reference(model, x[:16]), rtol=1e-4, atol=1e-6)
    # Padding does not change a prediction: the masked steps are left out of the mean.
    padded = np.concatenate([x[:16], np.zeros((16, 7), np.int32)], axis=1)
    np.testing.assert_allclose(model.predict(padded, verbose=0), pred, rtol=1e-5, atol=1e-7)
    path = str(tmp_path / "masked.keras")
    model.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:16], verbose=0), pred)
    assert loaded.layers[1].mask_zero and isinstance(loaded.layers[1], Embedding)


def test_keras2_imdb_cnn_shape_trains():
    # The Keras 2 imdb_cnn example's network, small: label 1 when token 7 occurs.
    rng = np.random.default_rng(1)
    x = rng.integers(1, 50, size=(320, 20)).astype(np.int32)
    x[::2, rng.integers(0, 20, size=160)] = 7
    y = (x == 7).any(axis=1).astype(np.float32).reshape(-1, 1)
    minidl.utils.set_random_seed(4)
    model = minidl.Sequential([
        minidl.Input((20,), dtype="int32"),
        Embedding(50, 16),
        Dropout(0.2),
        minidl.layers.Conv1D(32, 3, padding="valid", activation="relu", strides=1),
        GlobalMaxPooling1D(),
        Dense(16, activation="relu"),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_sequential_with_float_input_reads_whole_number_ids():
    # No Input dtype: the model's input is float32, and the ids arrive as whole floats.
    minidl.utils.set_random_seed(5)
    model = minidl.Sequential([Embedding(10, 4, input_shape=(3,)), Flatten(), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    ids = np.array([[1, 2, 9], [0, 0, 4]])
    want = ref.embedding_lookup(ids, model.layers[0].get_weights()[0]).reshape(2, 12) @ \
        model.layers[-1].get_weights()[0] + model.layers[-1].get_weights()[1]
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"index 10(\.0)? at position \(0, 1\)"):
        model.predict(np.array([[1, 10, 2]]), verbose=0)
    model.fit(ids, np.ones((2, 1)), epochs=1, verbose=0)


def test_masking_and_time_distributed_in_a_model():
    minidl.utils.set_random_seed(6)
    inputs = minidl.Input((None, 3))
    h = Masking()(inputs)
    h = TimeDistributed(Dense(4, activation="tanh"))(h)   # passes the mask on
    h = GlobalAveragePooling1D()(h)
    model = minidl.Model(inputs, RepeatVector(2)(h))
    model.compile(optimizer="adam", loss="mse")
    x = data((5, 6, 3), dtype=np.float32)
    x[0, 4:] = 0.0
    x[3, :2] = 0.0
    kernel, bias = model.get_weights()
    step = np.tanh(x.astype(np.float64) @ kernel + bias)
    want = ref.masked_average(step, np.any(x != 0, axis=-1))
    pred = model.predict(x, verbose=0)
    assert pred.shape == (5, 2, 4)
    np.testing.assert_allclose(pred, ref.repeat_vector(want, 2), rtol=1e-5, atol=1e-7)
    model.fit(x, np.zeros((5, 2, 4), np.float32), epochs=2, verbose=0)
    assert model.predict(data((2, 9, 3), dtype=np.float32), verbose=0).shape == (2, 2, 4)


def test_model_shared_encoder_submodel_gradient_over_steps():
    # A nested model called on two inputs: its Embedding runs in two steps of the plan
    # though it was called once on symbolic tensors.
    minidl.utils.set_random_seed(7)
    emb = Embedding(12, 2, dtype="float64")
    encoder = minidl.Sequential([minidl.Input((4,), dtype="int32"), emb,
                                 GlobalAveragePooling1D(dtype="float64")])
    a, b = minidl.Input((4,), dtype="int32"), minidl.Input((4,), dtype="int32")
    merged = Concatenate(dtype="float64")([encoder(a), encoder(b)])
    model = _sgd_model([a, b], Dense(1, dtype="float64")(merged))
    batches = [([ids_of((3, 4), 12, seed=s), ids_of((3, 4), 12, seed=s + 10)],
                data((3, 1), seed=s)) for s in range(3)]
    _steps_match_numeric_gradient(model, emb.embeddings.value, batches)
