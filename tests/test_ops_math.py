"""minidl.ops elementwise ops and reductions: forward against numpy, gradients against float64
central differences and PyTorch autograd, Keras' dtype rules, broadcasting and the errors."""
import math
import sys
import warnings

import numpy as np
import pytest

from minidl import ops
from minidl._ref.gradcheck import numeric_grad
from minidl.autodiff import GradientTape, Tensor, Variable

FORWARD = dict(rtol=1e-6, atol=1e-6)
GRAD = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)   # tiny tensors: more threads only add overhead
    return torch


def sample(shape, domain, seed):
    """float64 values in ``domain``: (low, high), or ('away', low, high) for values of
    either sign with low <= |x| <= high (away from a kink or a pole at 0)."""
    rng = np.random.default_rng(seed)
    if domain[0] == "away":
        magnitude = rng.uniform(domain[1], domain[2], shape)
        return np.where(rng.random(shape) < 0.5, -magnitude, magnitude)
    return rng.uniform(domain[0], domain[1], shape)


def tape_grads(fn, arrays, seed):
    """fn(*tensors) and its gradients (output gradient ``seed``) w.r.t. each input."""
    tensors = [Tensor(a) for a in arrays]
    with GradientTape() as tape:
        tape.watch(tensors)
        out = fn(*tensors)
    return out, tape.gradient(out, tensors, output_gradients=seed)


def numeric_grads(fn, arrays, seed):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def loss():
        return float(np.sum(np.asarray(fn(*arrays)) * seed))
    return [numeric_grad(loss, a) for a in arrays]


def torch_grads(torch, fn, arrays, seed):
    tensors = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
               for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(np.asarray(seed, dtype=np.float64)))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def _erf_reference(x):
    return np.vectorize(math.erf)(x)


# ---- elementwise: tables ----

# name: (op, numpy reference, torch reference, domain of the input)
UNARY = {
    "negative": (ops.negative, np.negative, lambda t: -t, (-2, 2)),
    "abs": (ops.abs, np.abs, lambda t: t.abs(), ("away", 0.2, 2)),
    "square": (ops.square, np.square, lambda t: t * t, (-2, 2)),
    "sqrt": (ops.sqrt, np.sqrt, lambda t: t.sqrt(), (0.5, 3)),
    "exp": (ops.exp, np.exp, lambda t: t.exp(), (-2, 2)),
    "expm1": (ops.expm1, np.expm1, lambda t: t.expm1(), (-2, 2)),
    "log": (ops.log, np.log, lambda t: t.log(), (0.5, 3)),
    "log1p": (ops.log1p, np.log1p, lambda t: t.log1p(), (-0.5, 2)),
    "reciprocal": (ops.reciprocal, np.reciprocal, lambda t: t.reciprocal(), ("away", 0.5, 2)),
    "sign": (ops.sign, np.sign, lambda t: t.sign(), ("away", 0.2, 2)),
    "sin": (ops.sin, np.sin, lambda t: t.sin(), (-3, 3)),
    "cos": (ops.cos, np.cos, lambda t: t.cos(), (-3, 3)),
    "erf": (ops.erf, _erf_reference, lambda t: t.erf(), (-2, 2)),
    "clip": (lambda x: ops.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7),
             lambda t: t.clamp(-0.5, 0.7), (-1, 1)),
}

# name: (op, numpy reference, torch reference, domain of x1, domain of x2)
BINARY = {
    "add": (ops.add, np.add, lambda a, b: a + b, (-2, 2), (-2, 2)),
    "subtract": (ops.subtract, np.subtract, lambda a, b: a - b, (-2, 2), (-2, 2)),
    "multiply": (ops.multiply, np.multiply, lambda a, b: a * b, (-2, 2), (-2, 2)),
    "divide": (ops.divide, np.divide, lambda a, b: a / b, (-2, 2), ("away", 0.5, 2)),
    "power": (ops.power, np.power, lambda a, b: a ** b, (0.5, 2), (-1.5, 1.5)),
    "maximum": (ops.maximum, np.maximum, lambda a, b: a.maximum(b), (-2, 2), (-2, 2)),
    "minimum": (ops.minimum, np.minimum, lambda a, b: a.minimum(b), (-2, 2), (-2, 2)),
    "mod": (ops.mod, np.mod, lambda a, b: a.remainder(b), (-3, 3), (0.7, 1.3)),
    "divide_no_nan": (ops.divide_no_nan, np.divide, lambda a, b: a / b, (-2, 2),
                      ("away", 0.5, 2)),
}

# Shapes of (x1, x2): equal, outer broadcasting, trailing axis, and 0-d on either side.
SHAPES = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((2, 3), ())]


# ---- elementwise: forward and gradients ----

@pytest.mark.parametrize("name", UNARY)
def test_unary_forward_and_gradient(name):
    op, reference, _, domain = UNARY[name]
    x = sample((3, 4), domain, seed=1)
    seed = sample((3, 4), (-1, 1), seed=2)
    out, (grad,) = tape_grads(op, [x], seed)
    np.testing.assert_allclose(out.numpy(), reference(x), **FORWARD)
    assert out.dtype == np.float64
    np.testing.assert_allclose(grad, numeric_grads(op, [x], seed)[0], **GRAD)


@pytest.mark.parametrize("name", UNARY)
def test_unary_gradient_matches_torch(torch, name):
    op, _, torch_op, domain = UNARY[name]
    x = sample((3, 4), domain, seed=3)
    seed = sample((3, 4), (-1, 1), seed=4)
    out, (grad,) = tape_grads(op, [x], seed)
    torch_out, (torch_grad,) = torch_grads(torch, torch_op, [x], seed)
    np.testing.assert_allclose(out.numpy(), torch_out, **FORWARD)
    np.testing.assert_allclose(grad, torch_grad, **GRAD)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_forward_and_gradient(name, shapes):
    op, reference, _, domain1, domain2 = BINARY[name]
    x1, x2 = sample(shapes[0], domain1, seed=5), sample(shapes[1], domain2, seed=6)
    expected = reference(x1, x2)
    seed = sample(np.shape(expected), (-1, 1), seed=7)
    out, grads = tape_grads(op, [x1, x2], seed)
    np.testing.assert_allclose(out.numpy(), expected, **FORWARD)
    assert out.shape == np.shape(expected) and out.dtype == np.float64
    for grad, x, numeric in zip(grads, (x1, x2), numeric_grads(op, [x1, x2], seed)):
        assert grad.shape == x.shape and grad.dtype == np.float64
        np.testing.assert_allclose(grad, numeric, **GRAD)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_binary_gradient_matches_torch(torch, name, shapes):
    op, _, torch_op, domain1, domain2 = BINARY[name]
    x1, x2 = sample(shapes[0], domain1, seed=8), sample(shapes[1], domain2, seed=9)
    seed = sample(np.broadcast_shapes(x1.shape, x2.shape), (-1, 1), seed=10)
    out, grads = tape_grads(op, [x1, x2], seed)
    torch_out, torch_gradients = torch_grads(torch, torch_op, [x1, x2], seed)
    np.testing.assert_allclose(out.numpy(), torch_out, **FORWARD)
    for grad, expected in zip(grads, torch_gradients):
        np.testing.assert_allclose(grad, expected, **GRAD)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("side", ["left", "right"])
def test_binary_with_python_scalar(name, side):
    op, reference, _, domain1, domain2 = BINARY[name]
    x = sample((2, 3), domain1 if side == "left" else domain2, seed=11)
    scalar = float(sample((), domain2 if side == "left" else domain1, seed=12))
    seed = sample((2, 3), (-1, 1), seed=13)

    def fn(t):
        return op(t, scalar) if side == "left" else op(scalar, t)
    out, (grad,) = tape_grads(fn, [x], seed)
    expected = reference(x, scalar) if side == "left" else reference(scalar, x)
    np.testing.assert_allclose(out.numpy(), expected, **FORWARD)
    np.testing.assert_allclose(grad, numeric_grads(fn, [x], seed)[0], **GRAD)


def test_where_forward_and_gradient(torch):
    condition = sample((3, 1), (0, 1), seed=14) > 0.5
    condition[0, 0], condition[1, 0] = True, False
    x1, x2 = sample((3, 4), (-2, 2), seed=15), sample((4,), (-2, 2), seed=16)
    seed = sample((3, 4), (-1, 1), seed=17)

    def fn(a, b):
        return ops.where(condition, a, b)
    out, grads = tape_grads(fn, [x1, x2], seed)
    np.testing.assert_allclose(out.numpy(), np.where(condition, x1, x2), **FORWARD)
    for grad, numeric in zip(grads, numeric_grads(fn, [x1, x2], seed)):
        np.testing.assert_allclose(grad, numeric, **GRAD)
    mask = torch.tensor(condition)
    _, torch_gradients = torch_grads(torch, lambda a, b: torch.where(mask, a, b), [x1, x2],
                                     seed)
    for grad, expected in zip(grads, torch_gradients):
        np.testing.assert_allclose(grad, expected, **GRAD)


def test_where_with_condition_only_gives_int32_indices():
    condition = np.array([[True, False], [False, True]])
    rows, cols = ops.where(condition)
    assert rows.dtype == np.int32 and cols.dtype == np.int32
    np.testing.assert_array_equal(rows.numpy(), [0, 1])
    np.testing.assert_array_equal(cols.numpy(), [0, 1])
    with pytest.raises(ValueError, match="x1 and x2 must both be given"):
        ops.where(condition, 1.0)


def test_clip_gradients_reach_tensor_bounds(torch):
    x = np.array([-2.0, -0.5, 0.0, 0.3, 0.7, 2.0])
    lo, hi = np.array(-0.5), np.array(0.7)
    seed = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    out, grads = tape_grads(ops.clip, [x, lo, hi], seed)
    np.testing.assert_allclose(out.numpy(), np.clip(x, lo, hi))
    # x gets the gradient inside [lo, hi], bounds included (as TensorFlow and torch).
    np.testing.assert_allclose(grads[0], [0, 2, 3, 4, 5, 0])
    np.testing.assert_allclose(grads[1], 1.0)
    np.testing.assert_allclose(grads[2], 6.0)


def test_maximum_and_minimum_give_ties_to_the_first_operand():
    x1, x2 = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    for op, expected in [(ops.maximum, ([1, 0, 1], [0, 1, 0])),
                         (ops.minimum, ([1, 1, 0], [0, 0, 1]))]:
        _, grads = tape_grads(op, [x1, x2], np.ones(3))
        np.testing.assert_array_equal(grads[0], expected[0])
        np.testing.assert_array_equal(grads[1], expected[1])


def test_power_gradient_at_zero():
    # d/da a**0 = 0 (not 0 * inf); d/db 0**b = 0 where log(0) is undefined (as TensorFlow).
    _, (da, db) = tape_grads(ops.power, [np.array([0.0, 2.0]), np.array([0.0, 0.0])],
                             np.ones(2))
    np.testing.assert_array_equal(da, [0.0, 0.0])
    np.testing.assert_allclose(db, [0.0, math.log(2.0)])


def test_divide_no_nan_is_zero_where_the_denominator_is():
    x1, x2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0, 0.0])
    out, (g1, g2) = tape_grads(ops.divide_no_nan, [x1, x2], np.ones(3))
    np.testing.assert_array_equal(out.numpy(), [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(g1, [0.0, 0.25, 0.0])
    np.testing.assert_array_equal(g2, [0.0, -2.0 / 16, 0.0])


def test_erf_without_scipy(monkeypatch):
    # scipy is optional: without it erf runs math.erf per element.
    from minidl.ops import elementwise
    monkeypatch.setitem(sys.modules, "scipy.special", None)   # `import` raises ImportError
    monkeypatch.setattr(elementwise, "_erf_kernel", None)
    x = np.array([[-2.0, -0.5, 0.0], [1e-9, 0.7, 3.0]], np.float32)
    out = ops.erf(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), _erf_reference(x.astype(np.float64)), rtol=1e-6)
    assert float(ops.erf(0.5)) == pytest.approx(math.erf(0.5), rel=1e-7)
    assert not isinstance(elementwise._erf_kernel, np.ufunc)   # not scipy's


@pytest.mark.parametrize("op,reference", [(ops.floor, np.floor), (ops.ceil, np.ceil),
                                          (ops.round, np.round)])
def test_rounding_ops_pass_no_gradient(op, reference):
    x = np.array([-1.5, -0.2, 0.5, 1.5, 2.7], dtype=np.float32)
    out = op(x)
    np.testing.assert_array_equal(out.numpy(), reference(x))
    assert out.dtype == np.float32
    v = Variable(x)
    with GradientTape(persistent=True) as tape:
        only = op(v)
        mixed = ops.add(v, op(v))
    # As TensorFlow: None when only a rounding op connects them, the other paths otherwise.
    assert tape.gradient(only, v) is None
    np.testing.assert_array_equal(tape.gradient(only, v, unconnected_gradients="zero"), 0)
    np.testing.assert_array_equal(tape.gradient(mixed, v), np.ones(5, np.float32))


def test_round_decimals_and_half_to_even():
    np.testing.assert_array_equal(ops.round(np.array([0.5, 1.5, 2.5, -0.5])).numpy(),
                                  [0.0, 2.0, 2.0, -0.0])
    np.testing.assert_allclose(ops.round(np.array([1.234, 5.678]), decimals=1).numpy(),
                               [1.2, 5.7])
    with pytest.raises(TypeError, match="decimals"):
        ops.round(np.ones(2), decimals=1.5)


def test_floor_divide_forward_and_no_gradient():
    x1, x2 = np.array([7.0, -7.0, 7.5]), np.array([2.0, 2.0, -2.0])
    v = Variable(x1)
    with GradientTape() as tape:
        out = ops.floor_divide(v, x2)
    np.testing.assert_array_equal(out.numpy(), np.floor_divide(x1, x2))
    assert tape.gradient(out, v) is None


@pytest.mark.parametrize("op,reference", [
    (ops.equal, np.equal), (ops.not_equal, np.not_equal), (ops.less, np.less),
    (ops.less_equal, np.less_equal), (ops.greater, np.greater),
    (ops.greater_equal, np.greater_equal), (ops.logical_and, np.logical_and),
    (ops.logical_or, np.logical_or), (ops.logical_xor, np.logical_xor)])
def test_comparisons_and_logic(op, reference):
    x1 = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 1.0]])
    x2 = np.array([1.0, 1.0, 0.0])
    out = op(x1, x2)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out.numpy(), reference(x1, x2))
    np.testing.assert_array_equal(op(x1, 1.0).numpy(), reference(x1, 1.0))
    np.testing.assert_array_equal(ops.logical_not(x1).numpy(), np.logical_not(x1))


# ---- elementwise: dtypes (Keras 3 promotion) ----

I8, I16, I32, I64 = (np.ones(3, t) for t in (np.int8, np.int16, np.int32, np.int64))
U32 = np.ones(3, np.uint32)
F16, F32, F64 = (np.ones(3, t) for t in (np.float16, np.float32, np.float64))
B = np.ones(3, bool)

DTYPE_CASES = [
    # (description, thunk, expected dtype)
    ("f32 + f32", lambda: ops.add(F32, F32), np.float32),
    ("f32 + python float", lambda: ops.add(F32, 1.5), np.float32),
    ("python float * f32", lambda: ops.multiply(1.5, F32), np.float32),
    ("f32 + numpy float64 scalar", lambda: ops.add(F32, np.float64(1.5)), np.float32),
    ("f16 + python float", lambda: ops.add(F16, 1.5), np.float16),
    ("i32 + f32", lambda: ops.add(I32, F32), np.float32),
    ("i64 + f32", lambda: ops.subtract(I64, F32), np.float32),
    ("i16 + f16", lambda: ops.add(I16, F16), np.float16),
    ("f32 + f64", lambda: ops.add(F32, F64), np.float64),
    ("i32 + python float", lambda: ops.add(I32, 1.5), np.float32),
    ("i64 * python float", lambda: ops.multiply(I64, 0.5), np.float32),
    ("i32 + python int", lambda: ops.add(I32, 2), np.int32),
    ("i8 + python int", lambda: ops.add(I8, 3), np.int8),
    ("i8 + i16", lambda: ops.add(I8, I16), np.int16),
    ("u32 + i32", lambda: ops.add(U32, I32), np.int64),
    ("bool + python int", lambda: ops.add(B, 1), np.int32),
    ("python float + python float", lambda: ops.add(1.5, 2.5), np.float32),
    ("python int + python int", lambda: ops.add(1, 2), np.int32),
    ("i32 / i32", lambda: ops.divide(I32, I32), np.float32),
    ("i64 / i64", lambda: ops.divide(I64, I64), np.float32),
    ("f16 / i32", lambda: ops.divide(F16, I32), np.float16),
    ("i32 ** python float", lambda: ops.power(I32, 0.5), np.float32),
    ("i32 ** python int", lambda: ops.power(I32, 2), np.int32),
    ("maximum(i32, python float)", lambda: ops.maximum(I32, 0.5), np.float32),
    ("where(c, python floats)", lambda: ops.where(B, 1.0, 0.0), np.float32),
    ("where(c, python ints)", lambda: ops.where(B, 1, 0), np.int32),
    ("where(c, f32, python float)", lambda: ops.where(B, F32, 0.0), np.float32),
    ("clip(i32, floats) keeps i32", lambda: ops.clip(I32, 0.5, 2.5), np.int32),
    ("clip(f32, f64 bounds) keeps f32", lambda: ops.clip(F32, F64 * 0, F64), np.float32),
    ("clip(bool)", lambda: ops.clip(B, 0, 1), np.int32),
    ("sqrt(i32)", lambda: ops.sqrt(I32), np.float32),
    ("exp(i8)", lambda: ops.exp(I8), np.float32),
    ("log(bool)", lambda: ops.log(B), np.float32),
    ("sin(i64)", lambda: ops.sin(I64), np.float32),
    ("floor(i32)", lambda: ops.floor(I32), np.float32),
    ("sqrt(f16)", lambda: ops.sqrt(F16), np.float16),
    ("exp(python float)", lambda: ops.exp(1.5), np.float32),
    ("abs(python int)", lambda: ops.abs(-3), np.int32),
    ("square(i8)", lambda: ops.square(I8), np.int8),
    ("square(bool)", lambda: ops.square(B), np.int32),
    ("negative(f32)", lambda: ops.negative(F32), np.float32),
    ("round(i32)", lambda: ops.round(I32), np.int32),
    ("reciprocal(i32)", lambda: ops.reciprocal(I32), np.float32),
    ("sum(i8)", lambda: ops.sum(I8), np.int32),
    ("sum(i32)", lambda: ops.sum(I32), np.int32),
    ("sum(bool)", lambda: ops.sum(B), np.int32),
    ("sum(i64)", lambda: ops.sum(I64), np.int64),
    ("sum(f32)", lambda: ops.sum(F32), np.float32),
    ("prod(i16)", lambda: ops.prod(I16), np.int32),
    ("mean(i32)", lambda: ops.mean(I32), np.float32),
    ("mean(i64)", lambda: ops.mean(I64), np.float32),
    ("mean(bool)", lambda: ops.mean(B), np.float32),
    ("mean(f16)", lambda: ops.mean(F16), np.float16),
    ("var(i32)", lambda: ops.var(I32), np.float32),
    ("std(f16)", lambda: ops.std(F16), np.float16),
    ("logsumexp(i32)", lambda: ops.logsumexp(I32), np.float32),
    ("max(i8)", lambda: ops.max(I8), np.int8),
    ("argmax(f32)", lambda: ops.argmax(F32), np.int32),
    ("argmin(i64)", lambda: ops.argmin(I64, axis=0), np.int32),
]


@pytest.mark.parametrize("thunk,expected", [c[1:] for c in DTYPE_CASES],
                         ids=[c[0] for c in DTYPE_CASES])
def test_keras_result_dtypes(thunk, expected):
    assert thunk().dtype == np.dtype(expected)


@pytest.mark.parametrize("name", sorted(set(UNARY) | set(BINARY)))
def test_float32_stays_float32_with_float32_gradients(name):
    x = Variable(sample((2, 3), (UNARY.get(name) or BINARY[name])[3], seed=18)
                 .astype(np.float32))
    other = sample((2, 3), BINARY[name][4], seed=19).astype(np.float32) \
        if name in BINARY else None
    with GradientTape() as tape:
        out = UNARY[name][0](x) if name in UNARY else BINARY[name][0](x, other)
    assert out.dtype == np.float32
    grad = tape.gradient(out, x)
    assert grad.dtype == np.float32 and np.isfinite(grad).all()


# ---- elementwise: errors ----

@pytest.mark.parametrize("name", sorted(BINARY) + ["greater", "logical_and"])
def test_broadcast_mismatch_names_the_op_and_shapes(name):
    op = BINARY[name][0] if name in BINARY else getattr(ops, name)
    with pytest.raises(ValueError, match=rf"ops\.{name}: .*\(2, 3\) and \(4,\)"):
        op(np.ones((2, 3)), np.ones(4))


def test_broadcast_mismatch_in_where_and_clip():
    with pytest.raises(ValueError, match=r"ops\.where: .*\(2,\) and \(3,\) and \(\)"):
        ops.where(np.ones(2, bool), np.ones(3), 0.0)
    with pytest.raises(ValueError, match=r"ops\.clip: .*\(2,\) and \(3,\)"):
        ops.clip(np.ones(2), np.zeros(3), 1.0)


@pytest.mark.parametrize("op", [ops.greater, ops.less_equal, ops.equal, ops.logical_not])
def test_gradient_through_a_comparison_is_an_error_naming_it(op):
    x = Variable(np.array([0.2, 0.8]))
    args = (x,) if op is ops.logical_not else (x, 0.5)
    with GradientTape(persistent=True) as tape:
        direct = op(*args)
        # A cast of bools has no gradient either; the error names the op nearest x.
        through_cast = ops.multiply(ops.cast(op(*args), "float32"), 2.0)
    for target in (direct, through_cast):
        with pytest.raises(ValueError, match=f"through '{op.__name__}'"):
            tape.gradient(target, x)


def test_where_condition_passes_no_gradient():
    x = Variable(np.array([0.2, 0.8]))
    with GradientTape() as tape:
        y = ops.where(ops.greater(x, 0.5), 1.0, 0.0)
    # The condition is not differentiated (as TensorFlow): x is unconnected, not an error.
    assert tape.gradient(y, x) is None


# ---- reductions ----

# Every axis combination of a 3-D array, in positive and negative spellings.
AXES = [None, 0, 1, 2, -1, (0, 1), (0, 2), (1, 2), (0, 1, 2), (-1, -3), [2, 0]]


def _torch_dims(axis):
    if axis is None:
        return (0, 1, 2)
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _torch_prod(torch, t, axis, keepdims):
    for dim in sorted(((d % 3) for d in _torch_dims(axis)), reverse=True):
        t = t.prod(dim=dim, keepdim=keepdims)
    return t


def _np_logsumexp(x, axis, keepdims):
    axis = tuple(axis) if isinstance(axis, list) else axis
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _np(fn):
    return lambda x, axis, keepdims: fn(x, axis=tuple(axis) if isinstance(axis, list)
                                        else axis, keepdims=keepdims)


# name: (op, numpy reference, torch reference(torch, t, axis, keepdims))
REDUCTIONS = {
    "sum": (ops.sum, _np(np.sum),
            lambda th, t, a, k: t.sum(dim=_torch_dims(a), keepdim=k)),
    "mean": (ops.mean, _np(np.mean),
             lambda th, t, a, k: t.mean(dim=_torch_dims(a), keepdim=k)),
    "max": (ops.max, _np(np.max),
            lambda th, t, a, k: th.amax(t, dim=_torch_dims(a), keepdim=k)),
    "min": (ops.min, _np(np.min),
            lambda th, t, a, k: th.amin(t, dim=_torch_dims(a), keepdim=k)),
    "var": (ops.var, _np(np.var),
            lambda th, t, a, k: th.var(t, dim=_torch_dims(a), correction=0, keepdim=k)),
    "std": (ops.std, _np(np.std),
            lambda th, t, a, k: th.std(t, dim=_torch_dims(a), correction=0, keepdim=k)),
    "logsumexp": (ops.logsumexp, _np_logsumexp,
                  lambda th, t, a, k: th.logsumexp(t, dim=_torch_dims(a), keepdim=k)),
    "prod": (ops.prod, _np(np.prod), _torch_prod),
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_forward_and_gradient(name, axis, keepdims):
    op, reference, _ = REDUCTIONS[name]
    x = sample((2, 3, 4), (0.5, 1.5), seed=20)
    expected = reference(x, axis, keepdims)
    seed = sample(np.shape(expected), (-1, 1), seed=21)

    def fn(t):
        return op(t, axis=axis, keepdims=keepdims)
    out, (grad,) = tape_grads(fn, [x], seed)
    assert out.shape == np.shape(expected) and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), expected, **FORWARD)
    np.testing.assert_allclose(grad, numeric_grads(fn, [x], seed)[0], **GRAD)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_gradient_matches_torch(torch, name, axis, keepdims):
    op, _, torch_op = REDUCTIONS[name]
    x = sample((2, 3, 4), (0.5, 1.5), seed=22)
    x[0, 1, 2] = 0.0   # prod's gradient with a zero factor
    out, _ = tape_grads(lambda t: op(t, axis=axis, keepdims=keepdims), [x], None)
    seed = sample(out.shape, (-1, 1), seed=23)
    out, (grad,) = tape_grads(lambda t: op(t, axis=axis, keepdims=keepdims), [x], seed)
    torch_out, (torch_grad,) = torch_grads(
        torch, lambda t: torch_op(torch, t, axis, keepdims), [x], seed)
    np.testing.assert_allclose(out.numpy(), torch_out, **FORWARD)
    np.testing.assert_allclose(grad, torch_grad, **GRAD)


def test_empty_axis_tuple_reduces_nothing():
    x = sample((2, 3), (0, 1), seed=24)
    for op in (ops.sum, ops.mean, ops.max):
        np.testing.assert_allclose(op(x, axis=()).numpy(), x)


@pytest.mark.parametrize("op,torch_name", [(ops.max, "amax"), (ops.min, "amin")])
def test_extremum_gradient_is_shared_among_ties(torch, op, torch_name):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, -1.0, 5.0, -1.0]])
    seed = np.array([1.0, 3.0, 2.0])
    _, (grad,) = tape_grads(lambda t: op(t, axis=1), [x], seed)
    _, (expected,) = torch_grads(torch, lambda t: getattr(torch, torch_name)(t, dim=1),
                                 [x], seed)
    np.testing.assert_allclose(grad, expected, **GRAD)
    assert grad[1].tolist() == [0.75] * 4   # four ties share 3.0


def test_extremum_initial():
    x = np.array([[1.0, 2.0], [5.0, 4.0]])
    out, (grad,) = tape_grads(lambda t: ops.max(t, axis=1, initial=3.0), [x], np.ones(2))
    np.testing.assert_array_equal(out.numpy(), [3.0, 5.0])
    np.testing.assert_array_equal(grad, [[0.0, 0.0], [1.0, 0.0]])   # row 0: initial wins


def test_std_gradient_at_zero_is_zero_not_nan():
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no 0/0 RuntimeWarning either
        out, (grad,) = tape_grads(lambda t: ops.std(t, axis=1), [x], np.ones(2))
    assert out.numpy()[0] == 0.0
    np.testing.assert_array_equal(grad[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(grad[1], (x[1] - x[1].mean()) / (3 * x[1].std()))


def test_logsumexp_is_stable():
    x = np.array([[1000.0, 1000.0, 990.0], [-1000.0, -1010.0, -1000.0]], np.float32)
    out, (grad,) = tape_grads(lambda t: ops.logsumexp(t, axis=1), [x], np.ones(2))
    shifted = x - x.max(axis=1, keepdims=True)
    expected = x.max(axis=1) + np.log(np.exp(shifted.astype(np.float64)).sum(axis=1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(grad, softmax, rtol=1e-5, atol=1e-7)
    # Every element -inf: the result is -inf and its gradient 0, not NaN.
    out, (grad,) = tape_grads(lambda t: ops.logsumexp(t), [np.full(3, -np.inf)], 1.0)
    assert out.numpy() == -np.inf
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, axis, keepdims):
    x = sample((2, 3, 4), (-1, 1), seed=25)
    out = getattr(ops, name)(x, axis=axis, keepdims=keepdims)
    expected = getattr(np, name)(x, axis=axis, keepdims=keepdims)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_gradient_through_argmax_is_an_error_naming_it(name):
    x = Variable(np.array([0.3, 0.9, 0.1]))
    with GradientTape() as tape:
        i = getattr(ops, name)(x)
    with pytest.raises(ValueError, match=f"'{name}'"):
        tape.gradient(i, x)
    with pytest.raises(TypeError, match="axis must be None or an int"):
        getattr(ops, name)(x, axis=(0,))


@pytest.mark.parametrize("name", sorted(REDUCTIONS) + ["argmax"])
@pytest.mark.parametrize("axis", [3, -4, (0, 0), (1, -2)])
def test_bad_axis_names_the_op(name, axis):
    if name == "argmax" and isinstance(axis, tuple):
        return
    with pytest.raises(ValueError, match=rf"ops\.{name}: axis"):
        getattr(ops, name)(np.ones((2, 3, 4)), axis=axis)


def test_reductions_of_python_data_and_float32():
    assert ops.sum([1.0, 2.0]).dtype == np.float32
    assert float(ops.mean([[1, 2], [3, 4]])) == 2.5
    v = Variable(sample((2, 3), (0.5, 1.5), seed=26).astype(np.float32))
    for name, (op, _, _) in REDUCTIONS.items():
        with GradientTape() as tape:
            out = op(v, axis=0)
        assert out.dtype == np.float32, name
        grad = tape.gradient(out, v)
        assert grad.dtype == np.float32 and grad.shape == (2, 3), name

