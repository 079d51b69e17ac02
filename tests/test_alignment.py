"""Misaligned arrays at every entry of the compiled core (issue 11).

A numpy view can start at an address that is not a multiple of its element size, e.g.
``np.frombuffer(buf[1:], np.float32)``. C reads a float only at an aligned address (else
undefined behaviour, which the sanitizer job stops on), so the Cython boundary copies such
an input (or, for the data set, reads it with unaligned-safe loads) and refuses such an
output. Each entry kind is called twice, with aligned and with misaligned inputs: the
results must be the same bits. The sanitizer build (.ci/sanitize) runs this file too, so a
misaligned read that slips through fails there even when the CPU tolerates it.
"""
import numpy as np
import pytest

import minidl
from minidl import activations, layers, losses, metrics, optimizers, regularizers
from minidl._core import _activations, _convolution, _data, _losses, _optimizers, _pooling
from minidl.layers import CallContext
from minidl.models.rewrites import ReluMaxPoolStep
from minidl.models.steps import LayerStep
from minidl._core._backend import gemm, matmul

DTYPES = [np.float32, np.float64]


def misaligned(a):
    """A writeable copy of ``a`` whose data address is one byte past an aligned one."""
    a = np.asarray(a)
    buf = np.empty(a.nbytes + a.itemsize, np.uint8)
    out = buf[1:1 + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def odd_strides(a):
    """A writeable (rows, 2) float32 copy of ``a`` whose row stride (10 bytes) is not a
    multiple of 4: every row but the first starts misaligned."""
    a = np.asarray(a, np.float32)
    assert a.ndim == 2 and a.shape[1] == 2
    buf = np.zeros(a.shape[0] * 10 + 8, np.uint8)
    out = np.ndarray(a.shape, np.float32, buffer=buf, strides=(10, 4))
    out[...] = a
    assert not out.flags.aligned
    return out


def both_ways(run, *arrays):
    """run(*arrays) with the arrays as they are and with misaligned copies of them."""
    return run(*arrays), run(*[misaligned(a) for a in arrays])


def assert_same(expected, actual):
    if isinstance(expected, (tuple, list)):
        assert len(expected) == len(actual)
        for e, a in zip(expected, actual):
            assert_same(e, a)
    else:
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected), strict=True)


def data(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---- ops.gemm / ops.matmul ----------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (2, 300, 90), (70, 300, 200)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("which", ["a", "b", "both"])
def test_gemm_misaligned_operands_give_the_aligned_result(dtype, m, k, n, trans_a, trans_b,
                                                          which):
    """Direct (small) and packed (large) paths, plain and transposed operands."""
    a = data((k, m) if trans_a else (m, k), dtype, 1)
    b = data((n, k) if trans_b else (k, n), dtype, 2)
    expected = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    a2 = misaligned(a) if which in ("a", "both") else a
    b2 = misaligned(b) if which in ("b", "both") else b
    out = np.full((m, n), 3, dtype)
    gemm(a2, b2, out, alpha=0.5, beta=2.0, trans_a=trans_a, trans_b=trans_b)
    assert_same(gemm(a, b, np.full((m, n), 3, dtype), alpha=0.5, beta=2.0, trans_a=trans_a,
                     trans_b=trans_b), out)
    assert_same(expected, matmul(a2.T if trans_a else a2, b2.T if trans_b else b2))


def test_gemm_strides_not_a_multiple_of_the_item_size_are_copied():
    a = data((6, 2), np.float32, 3)
    b = data((2, 5), np.float32, 4)
    assert_same(gemm(a, b), gemm(odd_strides(a), b))
    assert_same(gemm(a.T, a), gemm(odd_strides(a), a, trans_a=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_refuses_a_misaligned_out(dtype):
    out = misaligned(np.zeros((3, 4), dtype))
    with pytest.raises(ValueError, match=r"out must be aligned.*Received: out at address"):
        gemm(np.ones((3, 2), dtype), np.ones((2, 4), dtype), out)
    assert np.array_equal(out, np.zeros((3, 4), dtype))


# ---- activations ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "gelu", "softmax", "sigmoid"])
def test_activation_kernels_copy_misaligned_inputs(dtype, name):
    z, dy, bias = data((9, 13), dtype, 1), data((9, 13), dtype, 2), data(13, dtype, 3)
    act = activations.get(name)
    assert_same(*both_ways(act, z))
    assert_same(*both_ways(lambda z: _activations.forward(name, (), z, np.empty_like(z)), z))
    assert_same(*both_ways(
        lambda z, dy: _activations.backward(name, (), z, None, dy, np.empty_like(z)), z, dy))
    assert_same(*both_ways(
        lambda b: _activations.forward_bias(name, (), z.copy(), b, np.empty_like(z)), bias))

    def backward_bias(z, dy):
        dz, dbias = np.empty_like(z), np.empty(z.shape[1], dtype)
        _activations.backward_bias(name, (), z, None, dy, dz, dbias)
        return dz, dbias
    assert_same(*both_ways(backward_bias, z, dy))


def test_activation_kernels_refuse_misaligned_outputs():
    z = data((4, 5))
    with pytest.raises(ValueError, match="ReLU.forward: out must be aligned"):
        activations.get("relu").forward(z, misaligned(np.empty_like(z)))
    with pytest.raises(ValueError, match="dbias must be aligned"):
        _activations.backward_bias("relu", (), z, None, z, np.empty_like(z),
                                   misaligned(np.empty(5, np.float32)))
    with pytest.raises(ValueError, match="z must be aligned"):   # forward_bias writes z
        _activations.forward_bias("relu", (), misaligned(z), np.zeros(5, np.float32),
                                  np.empty_like(z))


# ---- losses and metrics -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_copy_misaligned_inputs(dtype):
    y_true, y_pred = data((8, 5), dtype, 1), data((8, 5), dtype, 2)
    probs = np.exp(y_pred) / np.exp(y_pred).sum(1, keepdims=True)
    labels = np.arange(8) % 5
    weights = np.linspace(0.5, 2, 8).astype(dtype)
    assert_same(*both_ways(losses.MeanSquaredError(), y_true, y_pred))
    assert_same(*both_ways(losses.SparseCategoricalCrossentropy(), labels, probs))
    assert_same(*both_ways(
        lambda t, p, w: losses.CategoricalCrossentropy()(t, p, sample_weight=w),
        np.eye(5, dtype=dtype)[labels], probs, weights))

    def kernel(t, p, w):
        grad, row_loss = np.empty_like(p), np.empty(8, dtype)
        total = _losses.huber(t, p, w, 0.25, grad, row_loss, 1.0)
        return total, grad, row_loss
    assert_same(*both_ways(kernel, y_true, y_pred, weights))
    with pytest.raises(ValueError, match="grad must be aligned"):
        _losses.mean_squared_error(y_true, y_pred, None, 1.0, misaligned(np.empty_like(y_pred)),
                                   None)


@pytest.mark.parametrize("metric", [metrics.SparseCategoricalAccuracy, metrics.MeanSquaredError,
                                    metrics.CategoricalAccuracy])
def test_metrics_copy_misaligned_inputs(metric):
    y_pred = data((10, 4), np.float64, 1)
    y_true = (np.arange(10) % 4).astype(np.int64)
    if metric is not metrics.SparseCategoricalAccuracy:
        y_true = np.eye(4)[y_true]
    weights = np.linspace(0, 1, 10)

    def run(t, p, w):
        m = metric()
        m.update_state(t, p, sample_weight=w)
        return m.result()
    assert_same(*both_ways(run, y_true, y_pred, weights))


# ---- optimizers and regularizers --------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "nadam"])
def test_optimizers_copy_misaligned_gradients(dtype, name):
    w0, g = data((6, 7), dtype, 1), data((6, 7), dtype, 2)

    def run(g):
        w = w0.copy()
        opt = optimizers.get(name)
        for _ in range(3):
            opt.apply([g], [w])
        return w
    assert_same(*both_ways(run, g))
    assert_same(*both_ways(_optimizers.sum_of_squares, g))


def test_optimizer_kernels_refuse_a_misaligned_parameter_or_slot():
    g = data(12)
    with pytest.raises(ValueError, match="param must be aligned"):
        _optimizers.sgd(misaligned(data(12)), g, None, 0.1, 0.0, False, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="velocity must be aligned"):
        _optimizers.sgd(data(12), g, misaligned(np.zeros(12, np.float32)), 0.1, 0.9, False,
                        0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="Adam: variable 0 must be aligned"):
        optimizers.Adam().build([misaligned(data(12))])


@pytest.mark.parametrize("dtype", DTYPES)
def test_regularizer_copies_a_misaligned_weight(dtype):
    reg = regularizers.L1L2(l1=0.01, l2=0.02)
    w = data((5, 3), dtype)
    assert_same(*both_ways(reg, w))
    assert_same(*both_ways(reg.gradient, w))


# ---- layers called directly -------------------------------------------------------------------

LAYERS = [
    ("dense", lambda: layers.Dense(6, activation="relu"), (4, 9)),
    ("conv2d", lambda: layers.Conv2D(5, 3, activation="relu", padding="same"), (2, 7, 6, 3)),
    ("conv2d-1x1", lambda: layers.Conv2D(4, 1), (2, 5, 5, 3)),
    ("conv1d", lambda: layers.Conv1D(4, 3, strides=2), (3, 11, 2)),
    ("max-pooling", lambda: layers.MaxPooling2D(2), (2, 6, 6, 3)),
    ("max-pooling-strided", lambda: layers.MaxPooling2D(3, strides=2, padding="same"),
     (2, 7, 7, 2)),
    ("average-pooling", lambda: layers.AveragePooling2D(2), (2, 6, 6, 3)),
    ("global-max", lambda: layers.GlobalMaxPooling2D(), (2, 4, 5, 3)),
    ("global-average", lambda: layers.GlobalAveragePooling1D(), (2, 4, 3)),
    ("batch-norm", lambda: layers.BatchNormalization(), (5, 4)),
    ("layer-norm", lambda: layers.LayerNormalization(), (5, 4)),
    ("dropout", lambda: layers.Dropout(0.5, seed=3), (5, 8)),
    ("flatten", lambda: layers.Flatten(), (3, 2, 2)),
]


@pytest.mark.parametrize("make,shape", [row[1:] for row in LAYERS], ids=[r[0] for r in LAYERS])
def test_layers_called_directly_copy_misaligned_inputs(make, shape):
    x = data(shape, np.float32, 1)

    def run(x, dy):
        minidl.utils.set_random_seed(7)
        layer = make()
        layer.ensure_built(x.shape[1:])
        inference = layer(x)
        ctx = CallContext(layer)
        out = np.array(ctx.forward(x, training=True))
        dx = ctx.backward(dy)
        return inference, out, np.array(dx), [np.array(g) for g in ctx.grads]

    minidl.utils.set_random_seed(7)
    probe = make()
    probe.ensure_built(shape[1:])
    dy = data(CallContext(probe).forward(x, training=True).shape, np.float32, 2)
    expected = run(x, dy)
    assert_same(expected, run(misaligned(x), misaligned(dy)))


def test_fused_conv_relu_max_pooling_copies_misaligned_inputs():
    """A first convolution with a ReLU and a max pooling, as the trainer fuses them."""
    x = data((3, 9, 9, 1), np.float32, 1)

    def run(x, dy):
        minidl.utils.set_random_seed(5)
        conv = layers.Conv2D(16, 3, activation="relu")
        conv.ensure_built(x.shape[1:])
        pool = layers.MaxPooling2D()
        pool.ensure_built(conv.compute_output_shape(x.shape[1:]))
        assert conv.can_pool_directly(pool)
        step = ReluMaxPoolStep(LayerStep(conv, [0], [1]), LayerStep(pool, [1], [2]),
                               direct=True)
        step.need_input_grads = [False]
        contexts = step.contexts(record=True)
        out = np.array(step.forward(contexts, [x], training=True)[0])
        step.backward(contexts, [dy])
        return out, [np.array(g) for g in contexts[0].grads]

    dy = data((3, 3, 3, 16), np.float32, 2)
    assert_same(run(x, dy), run(misaligned(x), misaligned(dy)))


def test_conv_kernels_refuse_misaligned_outputs():
    x = data((1, 4, 4, 1))
    cols = misaligned(np.empty((4, 9), np.float32))
    with pytest.raises(ValueError, match="cols must be aligned"):
        _convolution.im2col(x, cols, (3, 3), (1, 1), (1, 1), (0, 0), (2, 2))
    y = misaligned(np.empty((1, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match="y must be aligned"):
        _pooling.max_pool_forward(x, y, np.empty((1, 2, 2, 1), np.int32), (2, 2), (2, 2), (0, 0))


# ---- models and data gathering ----------------------------------------------------------------

def _model():
    model = minidl.Sequential([layers.Dense(8, activation="relu", input_shape=(6,)),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.int16])
def test_fit_predict_and_call_on_a_misaligned_data_set(x_dtype):
    """count_nonfinite and the batch gathering read a misaligned data set in place."""
    x = (data((50, 6), np.float64, 1) * 10).astype(x_dtype)
    y = np.arange(50) % 3

    def run(x, y):
        minidl.utils.set_random_seed(11)
        model = _model()
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return (history.history["loss"], model.get_weights(), model.predict(x, verbose=0),
                np.array(model(x)), model.evaluate(x, y, verbose=0))
    assert_same(*both_ways(run, x, y))


def test_a_misaligned_data_set_with_a_nan_is_still_refused():
    x = data((20, 6), np.float32)
    x[13, 2] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\), the first at index "
                                         r"\(13, 2\)"):
        _model().fit(misaligned(x), np.zeros(20, np.int64), verbose=0)
    assert _data.count_nonfinite(misaligned(x)) == (1, 13 * 6 + 2)


@pytest.mark.parametrize("src_dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64,
                                       np.float32, np.float64])
@pytest.mark.parametrize("out_dtype", DTYPES)
def test_gather_and_copy_rows_read_a_misaligned_source(src_dtype, out_dtype):
    src = (data((9, 5), np.float64) * 50).astype(src_dtype)
    rows = np.array([8, 0, 3, 3], np.int32)

    def run(src):
        gathered = _data.gather_rows(src, rows, np.empty((4, 5), out_dtype))
        copied = _data.copy_rows(src, 2, np.empty((6, 5), out_dtype))
        return gathered, copied
    expected = run(src)
    assert_same(expected, (src[rows].astype(out_dtype), src[2:8].astype(out_dtype)))
    if src.itemsize > 1:
        assert_same(expected, run(misaligned(src)))


def test_gather_rows_refuses_a_misaligned_out():
    with pytest.raises(ValueError, match="gather_rows: out must be aligned"):
        _data.gather_rows(np.ones((3, 2), np.float32), np.zeros(2, np.int64),
                          misaligned(np.empty((2, 2), np.float32)))
