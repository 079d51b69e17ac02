"""minidl.ops neural-network ops: activations, crossentropies, conv and pooling.

Each op against a float64 numpy reference and against PyTorch (forward within 1e-6,
gradients within 1e-5), its gradients also against central differences, plus dtypes,
layouts and argument errors.
"""
import math

import numpy as np
import pytest

import minidl
from minidl import ops
from minidl._ref.gradcheck import numeric_grad

FWD = dict(rtol=1e-6, atol=1e-6)
GRAD = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def vjp(op, args, g, wrt=(0,)):
    """``op(*args)`` as numpy and the gradients of ``sum(op(*args) * g)`` with respect to
    the arguments at ``wrt``, through minidl's tape."""
    tensors = [minidl.Tensor(a) if i in wrt else a for i, a in enumerate(args)]
    with minidl.GradientTape() as tape:
        tape.watch([tensors[i] for i in wrt])
        y = op(*tensors)
    grads = tape.gradient(y, [tensors[i] for i in wrt], output_gradients=g)
    return y.numpy(), grads


def fd(op, args, g, i):
    """Central differences of ``sum(op(*args) * g)`` with respect to ``args[i]``."""
    return numeric_grad(lambda: float(np.sum(op(*args).numpy() * g)), args[i])


def torch_vjp(torch, fn, args, g, wrt=(0,)):
    """``fn`` of torch tensors, and the gradients at ``wrt`` for the upstream ``g``."""
    ts = [torch.tensor(a, requires_grad=i in wrt) if isinstance(a, np.ndarray) and
          a.dtype.kind == "f" else (torch.tensor(a) if isinstance(a, np.ndarray) else a)
          for i, a in enumerate(args)]
    y = fn(*ts)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), [ts[i].grad.numpy() for i in wrt]


def away_from(x, kinks, margin=0.05):
    """``x`` moved off the points where a function is not differentiable."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, 2, -2) * margin
    return x


# ---- activations ----

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf)

# name: (minidl op, numpy reference, torch function name or lambda (F, torch, x), kinks)
ACTIVATIONS = {
    "relu": (ops.relu, lambda x: np.maximum(x, 0), lambda F, t, x: F.relu(x), [0]),
    "relu6": (ops.relu6, lambda x: np.clip(x, 0, 6), lambda F, t, x: F.relu6(x), [0, 6]),
    "sigmoid": (ops.sigmoid, _sigmoid, lambda F, t, x: t.sigmoid(x), []),
    "tanh": (ops.tanh, np.tanh, lambda F, t, x: t.tanh(x), []),
    "softplus": (ops.softplus, lambda x: np.log1p(np.exp(x)),
                 lambda F, t, x: F.softplus(x), []),
    "softsign": (ops.softsign, lambda x: x / (1 + np.abs(x)), lambda F, t, x: F.softsign(x),
                 [0]),
    "silu": (ops.silu, lambda x: x * _sigmoid(x), lambda F, t, x: F.silu(x), []),
    "hard_silu": (ops.hard_silu, lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
                  lambda F, t, x: F.hardswish(x), [-3, 3]),
    "hard_sigmoid": (ops.hard_sigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1),
                     lambda F, t, x: F.hardsigmoid(x), [-3, 3]),
    "log_sigmoid": (ops.log_sigmoid, lambda x: -np.log1p(np.exp(-x)),
                    lambda F, t, x: F.logsigmoid(x), []),
    "elu": (ops.elu, lambda x: np.where(x > 0, x, np.expm1(x)), lambda F, t, x: F.elu(x), [0]),
    "elu_0.7": (lambda x: ops.elu(x, alpha=0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
                lambda F, t, x: F.elu(x, alpha=0.7), [0]),
    "selu": (ops.selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
             lambda F, t, x: F.selu(x), [0]),
    "leaky_relu": (ops.leaky_relu, lambda x: np.where(x >= 0, x, 0.2 * x),
                   lambda F, t, x: F.leaky_relu(x, 0.2), [0]),
    "leaky_relu_1.5": (lambda x: ops.leaky_relu(x, negative_slope=1.5),
                       lambda x: np.where(x >= 0, x, 1.5 * x),
                       lambda F, t, x: F.leaky_relu(x, 1.5), [0]),
    "leaky_relu_-0.1": (lambda x: ops.leaky_relu(x, -0.1), lambda x: np.where(x >= 0, x, -0.1 * x),
                        lambda F, t, x: F.leaky_relu(x, -0.1), [0]),
    "gelu": (ops.gelu, lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi)
                                                       * (x + 0.044715 * x ** 3))),
             lambda F, t, x: F.gelu(x, approximate="tanh"), []),
    "gelu_exact": (lambda x: ops.gelu(x, approximate=False),
                   lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
                   lambda F, t, x: F.gelu(x), []),
}


def _input(kinks, shape=(3, 7), seed=0):
    x = np.random.default_rng(seed).uniform(-8, 8, shape)
    return away_from(x, kinks)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_forward_and_gradient(name):
    op, reference, _, kinks = ACTIVATIONS[name]
    x = _input(kinks)
    g = np.random.default_rng(1).standard_normal(x.shape)
    y, (dx,) = vjp(op, [x], g)
    assert y.dtype == np.float64 and y.shape == x.shape
    np.testing.assert_allclose(y, reference(x), **FWD)
    np.testing.assert_allclose(dx, fd(op, [x], g, 0), **GRAD)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_against_torch(torch, name):
    import torch.nn.functional as F
    op, _, torch_fn, kinks = ACTIVATIONS[name]
    x = _input(kinks, seed=2)
    g = np.random.default_rng(3).standard_normal(x.shape)
    y, (dx,) = vjp(op, [x], g)
    want, (want_dx,) = torch_vjp(torch, lambda t: torch_fn(F, torch, t), [x], g)
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "gelu", "selu"])
def test_activation_float32_layouts_and_integers(name):
    op, reference, _, kinks = ACTIVATIONS[name]
    x = _input(kinks, shape=(4, 6)).astype(np.float32)
    y = op(x).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
    # A transposed (non-contiguous) input gives the transposed result, bit for bit.
    np.testing.assert_array_equal(op(x.T).numpy(), y.T)
    assert op(np.float16(x)).dtype == np.float16
    ints = op(np.arange(-3, 4))
    assert ints.dtype == np.float32
    np.testing.assert_allclose(ints.numpy(), reference(np.arange(-3, 4.0)), rtol=1e-6)
    assert op(1.5).dtype == np.float32 and op(1.5).shape == ()


def _softmax_ref(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_and_log_softmax(torch, axis, log):
    rng = np.random.default_rng(4)
    x = rng.normal(0, 3, (2, 3, 4))
    g = rng.standard_normal(x.shape)
    op = ops.log_softmax if log else ops.softmax

    def run(a):
        return op(a, axis=axis)
    y, (dx,) = vjp(run, [x], g)
    want = _softmax_ref(x, axis)
    np.testing.assert_allclose(y, np.log(want) if log else want, **FWD)
    np.testing.assert_allclose(dx, fd(run, [x], g, 0), **GRAD)

    def torch_run(t):
        dims = axis if isinstance(axis, tuple) else (axis,)
        shifted = t - t.amax(dim=dims, keepdim=True)
        lse = torch.log(torch.exp(shifted).sum(dim=dims, keepdim=True))
        if not isinstance(axis, tuple):
            return torch.log_softmax(t, axis) if log else torch.softmax(t, axis)
        return shifted - lse if log else torch.exp(shifted - lse)
    want, (want_dx,) = torch_vjp(torch, torch_run, [x], g)
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)


def test_softmax_extremes_stay_finite():
    x = np.array([[1e4, -1e4, 0.0], [-np.inf, 0.0, 1.0]])
    y = ops.softmax(x).numpy()
    np.testing.assert_allclose(y[0], [1, 0, 0])
    np.testing.assert_allclose(y[1], [0, 1 / (1 + np.e), np.e / (1 + np.e)])
    log = ops.log_softmax(x).numpy()
    assert log[1, 0] == -np.inf and np.isfinite(log[0]).all()
    np.testing.assert_allclose(log[0], [0, -2e4, -1e4])


def test_activation_argument_errors():
    with pytest.raises(TypeError, match="approximate"):
        ops.gelu(np.ones(2), approximate="yes")
    with pytest.raises(TypeError, match="alpha"):
        ops.elu(np.ones(2), alpha="1")
    with pytest.raises(TypeError, match="negative_slope"):
        ops.leaky_relu(np.ones(2), negative_slope=None)
    with pytest.raises(ValueError, match=r"axis.*out of range"):
        ops.softmax(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="repeated"):
        ops.softmax(np.ones((2, 3)), axis=(1, -1))
    with pytest.raises(TypeError, match="ops.relu"):
        ops.relu(np.array(["a"]))


def test_ops_record_only_under_a_tape():
    x = minidl.Tensor(np.ones(3))
    assert ops.relu(x).node is None
    with minidl.GradientTape() as tape:
        tape.watch(x)
        y = ops.relu(x)
    assert y.node is not None and y.node.op == "relu"


# ---- crossentropies ----

def _bce_ref(t, p):
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return -(t * np.log(q) + (1 - t) * np.log(1 - q))


def test_binary_crossentropy_probabilities(torch):
    rng = np.random.default_rng(5)
    t = rng.uniform(0, 1, (3, 4))
    p = rng.uniform(0.02, 0.98, (3, 4))
    g = rng.standard_normal(p.shape)
    y, (dt, dp) = vjp(ops.binary_crossentropy, [t, p], g, wrt=(0, 1))
    assert y.shape == (3, 4)   # elementwise, as keras.ops
    np.testing.assert_allclose(y, _bce_ref(t, p), **FWD)
    np.testing.assert_allclose(dp, fd(ops.binary_crossentropy, [t, p], g, 1), **GRAD)
    np.testing.assert_allclose(dt, fd(ops.binary_crossentropy, [t, p], g, 0), **GRAD)

    def torch_bce(tt, pp):
        q = pp.clamp(1e-7, 1 - 1e-7)
        return -(tt * q.log() + (1 - tt) * (1 - q).log())
    want, (want_dt, want_dp) = torch_vjp(torch, torch_bce, [t, p], g, wrt=(0, 1))
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dp, want_dp, **GRAD)
    np.testing.assert_allclose(dt, want_dt, **GRAD)


def test_binary_crossentropy_clips_probabilities():
    t = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.0, 1.0, 1.0, 0.0])
    y, (dp,) = vjp(lambda pp: ops.binary_crossentropy(t, pp), [p], np.ones(4))
    np.testing.assert_allclose(y, [-np.log(1e-7)] * 2 + [-np.log(1 - 1e-7)] * 2, rtol=1e-9)
    np.testing.assert_array_equal(dp, 0.0)   # no gradient where the clip is active


def test_binary_crossentropy_from_logits(torch):
    import torch.nn.functional as F
    rng = np.random.default_rng(6)
    t = rng.uniform(0, 1, (2, 5))
    x = rng.normal(0, 4, (2, 5))
    x[0, :2] = [60.0, -60.0]   # the exact form stays finite far out
    g = rng.standard_normal(x.shape)

    def op(tt, xx):
        return ops.binary_crossentropy(tt, xx, from_logits=True)
    y, (dt, dx) = vjp(op, [t, x], g, wrt=(0, 1))
    want = F.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t),
                                              reduction="none").numpy()
    np.testing.assert_allclose(y, want, **FWD)

    def torch_op(tt, xx):
        return xx.clamp(min=0) - xx * tt + torch.log1p(torch.exp(-xx.abs()))
    _, (want_dt, want_dx) = torch_vjp(torch, torch_op, [t, x], g, wrt=(0, 1))
    np.testing.assert_allclose(dx, want_dx, **GRAD)
    np.testing.assert_allclose(dt, want_dt, **GRAD)
    np.testing.assert_allclose(dx, fd(op, [t, x], g, 1), **GRAD)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("axis", [-1, 0])
def test_categorical_crossentropy(torch, from_logits, axis):
    rng = np.random.default_rng(7)
    shape = (3, 2, 4)
    t = rng.uniform(0, 1, shape)
    t /= t.sum(axis=axis, keepdims=True)
    # Probabilities that do not sum to 1: the op divides by their sum first.
    p = rng.normal(0, 2, shape) if from_logits else rng.uniform(0.05, 1.0, shape)
    out_shape = tuple(d for i, d in enumerate(shape) if i != axis % 3)
    g = rng.standard_normal(out_shape)

    def op(tt, pp):
        return ops.categorical_crossentropy(tt, pp, from_logits=from_logits, axis=axis)
    y, (dt, dp) = vjp(op, [t, p], g, wrt=(0, 1))
    assert y.shape == out_shape
    if from_logits:
        log_q = p - np.log(np.sum(np.exp(p), axis=axis, keepdims=True))
    else:
        log_q = np.log(np.clip(p / p.sum(axis=axis, keepdims=True), 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(y, -np.sum(t * log_q, axis=axis), **FWD)
    np.testing.assert_allclose(dp, fd(op, [t, p], g, 1), **GRAD)
    np.testing.assert_allclose(dt, fd(op, [t, p], g, 0), **GRAD)

    def torch_op(tt, pp):
        if from_logits:
            lq = torch.log_softmax(pp, axis)
        else:
            lq = (pp / pp.sum(axis, keepdim=True)).clamp(1e-7, 1 - 1e-7).log()
        return -(tt * lq).sum(axis)
    want, (want_dt, want_dp) = torch_vjp(torch, torch_op, [t, p], g, wrt=(0, 1))
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dp, want_dp, **GRAD)
    np.testing.assert_allclose(dt, want_dt, **GRAD)


def test_categorical_crossentropy_from_logits_matches_torch_cross_entropy(torch):
    import torch.nn.functional as F
    rng = np.random.default_rng(8)
    t = rng.dirichlet(np.ones(5), size=4)
    x = rng.normal(0, 3, (4, 5))
    want = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    np.testing.assert_allclose(ops.categorical_crossentropy(t, x, from_logits=True).numpy(),
                               want, **FWD)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy(torch, from_logits):
    import torch.nn.functional as F
    rng = np.random.default_rng(9)
    labels = np.array([0, 3, 2, 1, 3])
    p = rng.normal(0, 2, (5, 4)) if from_logits else rng.uniform(0.05, 1.0, (5, 4))
    g = rng.standard_normal(5)

    def op(pp):
        return ops.sparse_categorical_crossentropy(labels, pp, from_logits=from_logits)
    y, (dp,) = vjp(op, [p], g)
    if from_logits:
        log_q = p - np.log(np.exp(p).sum(-1, keepdims=True))
    else:
        log_q = np.log(np.clip(p / p.sum(-1, keepdims=True), 1e-7, 1 - 1e-7))
    np.testing.assert_allclose(y, -log_q[np.arange(5), labels], **FWD)
    np.testing.assert_allclose(dp, fd(op, [p], g, 0), **GRAD)

    def torch_op(pp):
        if from_logits:
            return F.cross_entropy(pp, torch.tensor(labels), reduction="none")
        lq = (pp / pp.sum(-1, keepdim=True)).clamp(1e-7, 1 - 1e-7).log()
        return F.nll_loss(lq, torch.tensor(labels), reduction="none")
    want, (want_dp,) = torch_vjp(torch, torch_op, [p], g)
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dp, want_dp, **GRAD)
    # Labels with a trailing axis of 1, int32 or whole floats: the same values.
    for same in (labels[:, None], labels.astype(np.int32), labels.astype(np.float64)):
        np.testing.assert_array_equal(op_with(same, p, from_logits), y)


def op_with(labels, p, from_logits):
    return ops.sparse_categorical_crossentropy(labels, p, from_logits=from_logits).numpy()


def test_sparse_categorical_crossentropy_class_axis_first():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(4, 3, 2))   # classes on axis 0
    labels = np.array([[0, 3], [2, 1], [1, 1]])
    want = ops.sparse_categorical_crossentropy(labels, np.moveaxis(x, 0, -1),
                                               from_logits=True).numpy()
    got = ops.sparse_categorical_crossentropy(labels, x, from_logits=True, axis=0).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_crossentropy_float32_and_errors():
    p = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    assert ops.categorical_crossentropy(np.eye(2, dtype=np.float32), p).dtype == np.float32
    assert ops.binary_crossentropy(np.eye(2), p).dtype == np.float32
    assert ops.sparse_categorical_crossentropy([0, 1], p).dtype == np.float32
    with pytest.raises(ValueError, match=r"target.*output.*same shape"):
        ops.binary_crossentropy(np.ones(3), np.ones(4) / 2)
    with pytest.raises(ValueError, match=r"target.*same shape"):
        ops.categorical_crossentropy(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(TypeError, match="from_logits"):
        ops.categorical_crossentropy(np.eye(2), p, from_logits="no")
    with pytest.raises(ValueError, match=r"class index 2 .*\[0, 2\)"):
        ops.sparse_categorical_crossentropy(np.array([0, 2]), p)
    with pytest.raises(ValueError, match=r"class index -1"):
        ops.sparse_categorical_crossentropy(np.array([-1, 0]), p)
    with pytest.raises(ValueError, match="fractional"):
        ops.sparse_categorical_crossentropy(np.array([0.5, 1.0]), p)
    with pytest.raises(ValueError, match=r"target.*shape \(2,\)"):
        ops.sparse_categorical_crossentropy(np.array([0, 1, 1]), p)
    with pytest.raises(ValueError, match="axis"):
        ops.categorical_crossentropy(np.eye(2), p, axis=2)


# ---- convolution ----

def _tf_pads(size, k, s, d, padding):
    """TF's 'same' padding before and after one axis."""
    if padding == "valid":
        return 0, 0
    extent = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + extent - size, 0)
    return total // 2, total - total // 2


def _torch_conv(torch, x, k, strides, padding, dilation):
    """minidl's channels-last conv through torch's channels-first one, 'same' padding
    written out as TF's (asymmetric) rule."""
    import torch.nn.functional as F
    rank = x.dim() - 2
    strides = (strides,) * rank if isinstance(strides, int) else strides
    dilation = (dilation,) * rank if isinstance(dilation, int) else dilation
    pads = []
    for axis in reversed(range(rank)):   # F.pad lists the last axis first
        pads += _tf_pads(x.shape[1 + axis], k.shape[axis], strides[axis], dilation[axis],
                         padding)
    xc = F.pad(x.movedim(-1, 1), pads)
    w = k.permute(*([rank + 1, rank] + list(range(rank))))   # (filters, channels, window)
    conv = F.conv1d if rank == 1 else F.conv2d
    return conv(xc, w, stride=strides, dilation=dilation).movedim(1, -1)


CONV2D_CASES = [
    # (input shape, kernel shape, strides, padding, dilation): each kernel path once
    ((2, 6, 7, 3), (3, 3, 3, 4), 1, "valid", 1),            # direct, windows inside x
    ((2, 7, 8, 3), (3, 2, 3, 5), 2, "same", 1),             # direct, padded copy
    ((1, 6, 9, 2), (3, 3, 2, 3), (1, 2), "same", (2, 1)),   # dilation
    ((2, 4, 22, 8), (3, 3, 8, 2), 1, "same", 1),            # direct input gradient
    ((1, 5, 5, 64), (3, 3, 64, 64), 1, "same", 1),          # patch path (large kernel)
    ((2, 3, 4, 5), (1, 1, 5, 3), 1, "valid", 1),            # pointwise
    ((2, 5, 5, 2), (2, 2, 2, 2), 2, "valid", 1),            # stride leaving a row out
]


@pytest.mark.parametrize("xs,ks,strides,padding,dilation", CONV2D_CASES)
def test_conv2d_against_torch(torch, xs, ks, strides, padding, dilation):
    rng = np.random.default_rng(11)
    x, k = rng.standard_normal(xs), rng.standard_normal(ks)

    def op(a, b):
        return ops.conv(a, b, strides=strides, padding=padding, dilation_rate=dilation)
    y = op(x, k).numpy()
    g = rng.standard_normal(y.shape)
    y, (dx, dk) = vjp(op, [x, k], g, wrt=(0, 1))
    want, (want_dx, want_dk) = torch_vjp(
        torch, lambda a, b: _torch_conv(torch, a, b, strides, padding, dilation), [x, k], g,
        wrt=(0, 1))
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)
    np.testing.assert_allclose(dk, want_dk, **GRAD)


@pytest.mark.parametrize("strides,padding,dilation", [(1, "valid", 1), (2, "same", 1),
                                                      (1, "same", 2), (3, "valid", 2)])
def test_conv1d_against_torch(torch, strides, padding, dilation):
    rng = np.random.default_rng(12)
    x, k = rng.standard_normal((2, 11, 3)), rng.standard_normal((3, 3, 4))

    def op(a, b):
        return ops.conv(a, b, strides=strides, padding=padding, dilation_rate=dilation)
    g = rng.standard_normal(op(x, k).shape)
    y, (dx, dk) = vjp(op, [x, k], g, wrt=(0, 1))
    want, (want_dx, want_dk) = torch_vjp(
        torch, lambda a, b: _torch_conv(torch, a, b, strides, padding, dilation), [x, k], g,
        wrt=(0, 1))
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)
    np.testing.assert_allclose(dk, want_dk, **GRAD)


@pytest.mark.parametrize("padding,strides", [("valid", 1), ("same", 2)])
def test_conv_gradients_against_central_differences(padding, strides):
    rng = np.random.default_rng(13)
    x, k = rng.standard_normal((2, 4, 5, 2)), rng.standard_normal((2, 3, 2, 3))

    def op(a, b):
        return ops.conv(a, b, strides=strides, padding=padding)
    g = rng.standard_normal(op(x, k).shape)
    _, (dx, dk) = vjp(op, [x, k], g, wrt=(0, 1))
    np.testing.assert_allclose(dx, fd(op, [x, k], g, 0), **GRAD)
    np.testing.assert_allclose(dk, fd(op, [x, k], g, 1), **GRAD)


def test_conv_only_the_gradients_asked_for():
    rng = np.random.default_rng(14)
    x, k = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 2))
    g = rng.standard_normal((1, 3, 3, 2))
    _, (dx_both, dk_both) = vjp(ops.conv, [x, k], g, wrt=(0, 1))
    _, (dk,) = vjp(ops.conv, [x, k], g, wrt=(1,))
    _, (dx,) = vjp(ops.conv, [x, k], g, wrt=(0,))
    np.testing.assert_array_equal(dk, dk_both)
    np.testing.assert_array_equal(dx, dx_both)


def test_conv_channels_first_and_float32():
    rng = np.random.default_rng(15)
    x, k = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    want = ops.conv(x, k, padding="same").numpy()
    first = ops.conv(np.moveaxis(x, -1, 1), k, padding="same", data_format="channels_first")
    np.testing.assert_allclose(first.numpy(), np.moveaxis(want, -1, 1), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(want.shape)
    _, (dx_last,) = vjp(lambda a: ops.conv(a, k, padding="same"), [x], g)
    _, (dx_first,) = vjp(lambda a: ops.conv(a, k, padding="same",
                                            data_format="channels_first"),
                         [np.moveaxis(x, -1, 1)], np.moveaxis(g, -1, 1))
    np.testing.assert_allclose(dx_first, np.moveaxis(dx_last, -1, 1), rtol=1e-12, atol=1e-12)
    y32 = ops.conv(x.astype(np.float32), k.astype(np.float32), padding="same")
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.numpy(), want, rtol=1e-4, atol=1e-4)
    assert ops.conv(x.astype(np.float32), k).dtype == np.float64   # float64 kernel wins


def test_conv_argument_errors():
    x, k = np.ones((1, 4, 4, 2)), np.ones((3, 3, 2, 1))
    with pytest.raises(ValueError, match="padding"):
        ops.conv(x, k, padding="causal")
    with pytest.raises(ValueError, match="data_format"):
        ops.conv(x, k, data_format="NHWC")
    with pytest.raises(ValueError, match=r"input channels.*grouped"):
        ops.conv(x, np.ones((3, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"kernel.*rank 4"):
        ops.conv(x, np.ones((3, 2, 1)))
    with pytest.raises(ValueError, match=r"inputs.*3-D.*4-D"):
        ops.conv(np.ones((1, 2, 2, 2, 2)), np.ones((1, 1, 1, 2, 1)))
    with pytest.raises(ValueError, match="does not fit"):
        ops.conv(x, np.ones((5, 5, 2, 1)))
    with pytest.raises(ValueError, match="strides"):
        ops.conv(x, k, strides=0)
    with pytest.raises(ValueError, match="dilation_rate"):
        ops.conv(x, k, dilation_rate=(1, 2, 3))


# ---- pooling ----

def _torch_pool(torch, x, pool, strides, padding, kind):
    import torch.nn.functional as F
    rank = x.dim() - 2
    pool = (pool,) * rank if isinstance(pool, int) else pool
    strides = pool if strides is None else strides
    strides = (strides,) * rank if isinstance(strides, int) else strides
    pads = []
    for axis in reversed(range(rank)):
        pads += _tf_pads(x.shape[1 + axis], pool[axis], strides[axis], 1, padding)
    xc = x.movedim(-1, 1)
    if kind == "max":
        # Positions over the edge never win: pad with -inf.
        fn = F.max_pool1d if rank == 1 else F.max_pool2d
        return fn(F.pad(xc, pads, value=-math.inf), pool, strides).movedim(1, -1)
    # Keras averages over the positions inside the input only.
    fn = F.avg_pool1d if rank == 1 else F.avg_pool2d
    total = fn(F.pad(xc, pads), pool, strides)
    count = fn(F.pad(torch.ones_like(xc), pads), pool, strides)
    return (total / count).movedim(1, -1)


POOL_CASES = [
    # (input shape, pool_size, strides, padding)
    ((2, 6, 6, 3), 2, None, "valid"),
    ((2, 7, 5, 2), 3, 2, "same"),
    ((1, 5, 8, 2), (2, 3), (1, 2), "same"),
    ((2, 7, 7, 1), 3, 2, "valid"),
    ((2, 9, 3), 2, None, "valid"),
    ((2, 9, 3), 3, 2, "same"),
]


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("xs,pool,strides,padding", POOL_CASES)
def test_pool_against_torch(torch, kind, xs, pool, strides, padding):
    rng = np.random.default_rng(16)
    x = rng.standard_normal(xs)
    fn = ops.max_pool if kind == "max" else ops.average_pool

    def op(a):
        return fn(a, pool, strides=strides, padding=padding)
    g = rng.standard_normal(op(x).shape)
    y, (dx,) = vjp(op, [x], g)
    want, (want_dx,) = torch_vjp(torch, lambda a: _torch_pool(torch, a, pool, strides, padding,
                                                              kind), [x], g)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)
    np.testing.assert_allclose(dx, fd(op, [x], g, 0), **GRAD)


def test_pool_channels_first_float32_and_errors():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)   # channels first
    y = ops.max_pool(x, 2, data_format="channels_first")
    assert y.dtype == np.float32 and y.shape == (2, 3, 3, 2)
    want = ops.max_pool(np.moveaxis(x, 1, -1), 2).numpy()
    np.testing.assert_array_equal(y.numpy(), np.moveaxis(want, -1, 1))
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool(x, 0)
    with pytest.raises(ValueError, match="padding"):
        ops.average_pool(x, 2, padding="full")
    with pytest.raises(ValueError, match="does not fit"):
        ops.max_pool(x, 7)
    with pytest.raises(ValueError, match="inputs"):
        ops.max_pool(np.ones((2, 3)), 2)


def test_small_network_against_torch(torch):
    """conv -> relu -> max_pool -> softmax crossentropy, gradients through all of it."""
    import torch.nn.functional as F
    rng = np.random.default_rng(18)
    x, k = rng.standard_normal((3, 6, 6, 2)), rng.standard_normal((3, 3, 2, 4))
    labels = np.array([1, 15, 6])

    def net(a, b):
        h = ops.max_pool(ops.relu(ops.conv(a, b, padding="same")), 3)
        return ops.sparse_categorical_crossentropy(labels, ops.reshape(h, (3, -1)),
                                                   from_logits=True)
    g = np.ones(3)
    y, (dx, dk) = vjp(net, [x, k], g, wrt=(0, 1))

    def torch_net(a, b):
        h = _torch_pool(torch, F.relu(_torch_conv(torch, a, b, 1, "same", 1)), 3, None,
                        "valid", "max")
        return F.cross_entropy(h.reshape(3, -1), torch.tensor(labels), reduction="none")
    want, (want_dx, want_dk) = torch_vjp(torch, torch_net, [x, k], g, wrt=(0, 1))
    np.testing.assert_allclose(y, want, **FWD)
    np.testing.assert_allclose(dx, want_dx, **GRAD)
    np.testing.assert_allclose(dk, want_dk, **GRAD)
