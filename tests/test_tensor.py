"""The Tensor class (Python operators, numpy interoperability), Variable, and GradientTape."""
import threading

import numpy as np
import pytest

from minidl import ops
from minidl.autodiff import GradientTape, Tensor, Variable


def values(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(dtype)


# ---- Python operators ----

# symbol: (apply to two operands, numpy reference)
BINARY_OPERATORS = {
    "+": (lambda a, b: a + b, np.add),
    "-": (lambda a, b: a - b, np.subtract),
    "*": (lambda a, b: a * b, np.multiply),
    "/": (lambda a, b: a / b, np.true_divide),
    "**": (lambda a, b: a ** b, np.power),
    "//": (lambda a, b: a // b, np.floor_divide),
    "%": (lambda a, b: a % b, np.mod),
    "<": (lambda a, b: a < b, np.less),
    "<=": (lambda a, b: a <= b, np.less_equal),
    ">": (lambda a, b: a > b, np.greater),
    ">=": (lambda a, b: a >= b, np.greater_equal),
    "==": (lambda a, b: a == b, np.equal),
    "!=": (lambda a, b: a != b, np.not_equal),
}
COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}


@pytest.mark.parametrize("symbol", BINARY_OPERATORS)
@pytest.mark.parametrize("left,right", [("tensor", "tensor"), ("tensor", "scalar"),
                                        ("scalar", "tensor"), ("array", "tensor"),
                                        ("tensor", "array")])
def test_binary_operators(symbol, left, right):
    apply, reference = BINARY_OPERATORS[symbol]
    a, b = values(2, 3, seed=1), values(2, 3, seed=2)
    a[0, 0] = b[0, 0]   # an equal pair for the comparisons
    operands = {"tensor": (Tensor(a), Tensor(b)), "array": (a, b), "scalar": (1.5, 1.5)}
    x, y = operands[left][0], operands[right][1]
    out = apply(x, y)
    # An ndarray on the left goes through Tensor.__array_ufunc__: still a Tensor.
    assert type(out) is Tensor
    expected = reference(*(o.value if isinstance(o, Tensor) else o for o in (x, y)))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)
    assert out.dtype == (np.bool_ if symbol in COMPARISONS else np.float32)


@pytest.mark.parametrize("symbol", ["+", "-", "*", "/", "**", "%"])
def test_reflected_operators_record_gradients(symbol):
    apply = BINARY_OPERATORS[symbol][0]
    a = values(2, 3, seed=3)
    v = Variable(values(2, 3, seed=4))
    with GradientTape(persistent=True) as tape:
        from_array = apply(a, v)   # ndarray.__op__ -> np ufunc -> Tensor.__array_ufunc__
        from_scalar = apply(1.5, v)  # Tensor.__rop__
    for out in (from_array, from_scalar):
        assert out.node is not None
        grad = tape.gradient(out, v)
        assert grad.shape == (2, 3) and grad.dtype == np.float32 and np.isfinite(grad).all()
    expected = {"+": 1.0, "-": -1.0, "*": a, "/": -a / v.value ** 2,
                "**": a ** v.value * np.log(a), "%": -np.floor_divide(a, v.value)}[symbol]
    np.testing.assert_allclose(tape.gradient(from_array, v), expected, rtol=1e-5)


def test_matmul_operator():
    a, b = values(2, 3, seed=5), values(3, 4, seed=6)
    for x, y in [(Tensor(a), Tensor(b)), (a, Tensor(b)), (Tensor(a), b)]:
        out = x @ y
        assert type(out) is Tensor
        np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-6)


def test_unary_operators_and_abs():
    a = values(2, 3, seed=7) - 1.25
    t = Tensor(a)
    np.testing.assert_array_equal((-t).numpy(), -a)
    assert +t is t
    np.testing.assert_array_equal(abs(t).numpy(), np.abs(a))
    mask = t > 0
    np.testing.assert_array_equal((~mask).numpy(), ~(a > 0))
    np.testing.assert_array_equal((mask & (t < 0.5)).numpy(), (a > 0) & (a < 0.5))
    np.testing.assert_array_equal((mask | (t < -0.5)).numpy(), (a > 0) | (a < -0.5))
    np.testing.assert_array_equal(t.T.numpy(), a.T)


def test_indexing_with_ints():
    a = values(3, 4, seed=8)
    t = Tensor(a)
    np.testing.assert_array_equal(t[1].numpy(), a[1])
    assert float(t[2, 3]) == a[2, 3]
    np.testing.assert_array_equal(t[np.array([0, 2])].numpy(), a[[0, 2]])
    v = Variable(a)
    with GradientTape() as tape:
        picked = t[0] + v[1] + v[1]   # a row read twice: its gradient accumulates
    grad = tape.gradient(picked, v)
    np.testing.assert_array_equal(grad, np.array([[0] * 4, [2] * 4, [0] * 4, ], np.float32))


def test_indexing_with_slices():
    a = values(3, 4, seed=9)
    t = Tensor(a)
    np.testing.assert_array_equal(t[:, 1].numpy(), a[:, 1])
    np.testing.assert_array_equal(t[1:, ::2].numpy(), a[1:, ::2])


# ---- numpy interoperability ----

def test_numpy_ufuncs_route_to_ops():
    a = values(2, 3, seed=10)
    v = Variable(a)
    with GradientTape(persistent=True) as tape:
        e = np.exp(v)
        s = np.sin(v)
        m = np.maximum(a * 0 + 1.0, v)
    for out in (e, s, m):
        assert type(out) is Tensor and out.node is not None
    np.testing.assert_allclose(e.numpy(), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(e, v), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(s, v), np.cos(a), rtol=1e-6)
    np.testing.assert_array_equal(tape.gradient(m, v), (a >= 1.0).astype(np.float32))


def test_numpy_functions_without_an_op_give_arrays():
    a = values(2, 3, seed=11)
    t = Tensor(a)
    tan = np.tan(t)   # no minidl op: numpy on the value, no history
    assert type(tan) is np.ndarray
    np.testing.assert_allclose(tan, np.tan(a))
    out = np.empty_like(a)
    result = np.exp(t, out=out)   # keyword arguments: plain numpy
    assert result is out
    np.testing.assert_allclose(out, np.exp(a), rtol=1e-6)


def test_conversions():
    a = values(2, 3, seed=12)
    t = Tensor(a)
    assert t.value is a   # no copy of an array that already has the dtype
    assert np.asarray(t) is a
    copied = t.numpy()
    copied[0, 0] = -1.0
    assert a[0, 0] != -1.0   # .numpy() is a copy
    assert np.array(t) is not a
    as64 = np.asarray(t, dtype=np.float64)
    assert as64.dtype == np.float64
    np.testing.assert_array_equal(as64, a)
    assert float(Tensor(2.5)) == 2.5 and isinstance(float(Tensor(2.5)), float)
    assert int(Tensor(np.int32(7))) == 7
    assert list(range(10))[Tensor(np.int32(3))] == 3   # __index__
    assert bool(Tensor(1.0)) is True
    with pytest.raises(ValueError):
        bool(t)   # ambiguous, as numpy
    assert f"{Tensor(np.float32(1.23456)):.2f}" == "1.23"


def test_construction_dtypes():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.int32
    assert Tensor([True, False]).dtype == np.bool_
    assert Tensor(np.zeros(2)).dtype == np.float64
    assert Tensor([1, 2], dtype="float64").dtype == np.float64
    inner = Tensor(values(2))
    assert Tensor(inner).value is inner.value
    with pytest.raises(TypeError):
        Tensor([object()])


def test_shape_dtype_ndim_len_iter():
    a = values(3, 2, seed=13)
    t = Tensor(a)
    assert t.shape == (3, 2) and t.dtype == np.float32 and t.ndim == 2 and t.size == 6
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(type(r) is Tensor for r in rows)
    np.testing.assert_array_equal(rows[2].numpy(), a[2])
    scalar = Tensor(1.0)
    with pytest.raises(TypeError, match="0-d"):
        len(scalar)
    with pytest.raises(TypeError, match="0-d"):
        iter(scalar)


def test_repr():
    t = Tensor(np.array([[1.0, 2.0]], np.float32))
    text = repr(t)
    assert text.startswith("<Tensor shape=(1, 2) dtype=float32")
    assert "[[1., 2.]]" in text and "requires_grad" not in text
    with GradientTape() as tape:
        tape.watch(t)
        assert "requires_grad" in repr(t * 2)
    v = Variable(np.zeros(2, np.float32), name="kernel", trainable=False)
    assert repr(v).startswith("<Variable path=kernel shape=(2,) dtype=float32, "
                              "trainable=False")


def test_tensors_are_hashable_by_identity():
    a, b = Tensor(1.0), Tensor(1.0)
    assert len({a, b}) == 2
    assert {a: 1}[a] == 1


# ---- Variable ----

def test_variable_keeps_its_array():
    array = values(2, 3, seed=14)
    v = Variable(array, name="w")
    assert v.value is array and v.trainable and v.requires_grad and v.name == "w"
    v.assign(np.ones((2, 3)))
    assert v.value is array and v.dtype == np.float32
    np.testing.assert_array_equal(array, 1.0)
    v.assign(2.5)   # a scalar fills it
    np.testing.assert_array_equal(array, 2.5)
    v.assign(Tensor(np.full((2, 3), 4.0)))
    np.testing.assert_array_equal(array, 4.0)
    v.assign_add(np.arange(3))
    np.testing.assert_array_equal(array[1], [4.0, 5.0, 6.0])
    v.assign_sub(Tensor(1.0))
    np.testing.assert_array_equal(array[1], [3.0, 4.0, 5.0])
    assert v.value is array
    with pytest.raises(ValueError, match=r"Variable 'w' has shape \(2, 3\).*\(3,\)"):
        v.assign(np.ones(3))


def test_variable_copies_non_contiguous_or_readonly_values():
    base = values(3, 4, seed=15)
    v = Variable(base.T)
    assert v.value.flags.c_contiguous and not np.shares_memory(v.value, base)
    readonly = values(2, seed=16)
    readonly.flags.writeable = False
    w = Variable(readonly)
    assert w.value.flags.writeable
    frozen = Variable(values(2, seed=17), trainable=False)
    assert not frozen.requires_grad


# ---- GradientTape ----

def test_non_persistent_tape_gives_gradients_once():
    v = Variable(values(3, seed=18))
    with GradientTape() as tape:
        y = ops.sum(v * v)
    np.testing.assert_allclose(tape.gradient(y, v), 2 * v.value, rtol=1e-6)
    with pytest.raises(RuntimeError, match="persistent=True"):
        tape.gradient(y, v)


def test_persistent_tape_gives_gradients_again():
    v = Variable(values(3, seed=19))
    with GradientTape(persistent=True) as tape:
        y = v * v
        z = v * 3.0
    first = tape.gradient(y, v)
    np.testing.assert_allclose(tape.gradient(y, v), first)
    np.testing.assert_allclose(tape.gradient(z, v), 3.0)


def test_watch():
    x = Tensor(values(3, seed=20))
    with GradientTape() as tape:
        y = x * x
    assert y.node is None and tape.gradient(y, x) is None   # constants are not watched
    with GradientTape() as tape:
        tape.watch(x)
        y = x * x
    np.testing.assert_allclose(tape.gradient(y, x), 2 * x.value, rtol=1e-6)
    # The watch ends with its tape: a later tape does not record through x.
    assert not x.requires_grad
    with GradientTape() as tape:
        later = x * x
    assert later.node is None
    with GradientTape() as tape:
        with pytest.raises(TypeError, match="watch takes tensors"):
            tape.watch(np.ones(3))


def test_watch_of_frozen_variable():
    frozen = Variable(values(3, seed=21), trainable=False)
    with GradientTape(persistent=True) as tape:
        unwatched = frozen * 2.0
        tape.watch([frozen])
        watched = frozen * 2.0
    assert tape.gradient(unwatched, frozen) is None
    np.testing.assert_allclose(tape.gradient(watched, frozen), 2.0)
    assert not frozen.requires_grad


def test_stop_recording():
    v = Variable(values(3, seed=22))
    with GradientTape() as tape:
        with tape.stop_recording():
            hidden = v * 2.0
        y = v * 3.0 + hidden
    assert hidden.node is None
    np.testing.assert_allclose(tape.gradient(y, v), 3.0)


def test_nested_structure_of_sources():
    a, b, c = (Variable(values(2, seed=s)) for s in (23, 24, 25))
    with GradientTape() as tape:
        y = ops.sum(a * 1.0 + b * 2.0 + c * 3.0)
    grads = tape.gradient(y, {"first": [a, (b,)], "second": c})
    assert set(grads) == {"first", "second"}
    assert isinstance(grads["first"], list) and isinstance(grads["first"][1], tuple)
    np.testing.assert_allclose(grads["first"][0], 1.0)
    np.testing.assert_allclose(grads["first"][1][0], 2.0)
    np.testing.assert_allclose(grads["second"], 3.0)


def test_unconnected_gradients():
    used, unused = Variable(values(2, seed=26)), Variable(values(3, seed=27))
    with GradientTape(persistent=True) as tape:
        y = used * 2.0
    assert tape.gradient(y, [used, unused])[1] is None
    zero = tape.gradient(y, [used, unused], unconnected_gradients="zero")[1]
    assert zero.shape == (3,) and zero.dtype == np.float32 and not zero.any()
    with pytest.raises(ValueError, match="unconnected_gradients must be 'none' or 'zero'"):
        tape.gradient(y, used, unconnected_gradients="zeros")


def test_output_gradients():
    v = Variable(values(3, seed=28))
    with GradientTape(persistent=True) as tape:
        y = v * v
    seed = np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(tape.gradient(y, v, output_gradients=seed),
                               2 * v.value * seed, rtol=1e-6)
    with pytest.raises(ValueError, match=r"output gradient has shape \(2,\)"):
        tape.gradient(y, v, output_gradients=np.ones(2))


def test_several_targets_add_up():
    v = Variable(values(3, seed=29))
    with GradientTape() as tape:
        y1, y2 = v * 2.0, ops.sum(v * v)
    np.testing.assert_allclose(tape.gradient([y1, y2], v), 2.0 + 2 * v.value, rtol=1e-6)


def test_gradient_accumulates_over_uses():
    v = Variable(values(3, seed=30))
    with GradientTape() as tape:
        y = v * v + v   # v read three times
    np.testing.assert_allclose(tape.gradient(y, v), 2 * v.value + 1, rtol=1e-6)
    w = Variable(values(2, seed=31))
    with GradientTape() as tape:
        h = w * 2.0
        z = h * h + h   # an intermediate read three times
    np.testing.assert_allclose(tape.gradient(z, w), (2 * (2 * w.value) + 1) * 2, rtol=1e-6)


def test_float32_variables_get_float32_gradients():
    v = Variable(values(3, seed=32))
    wide = np.array([1.0, 2.0, 3.0])   # float64: the product is float64 (Keras' rule)
    with GradientTape() as tape:
        y = v * wide
    assert y.dtype == np.float64
    grad = tape.gradient(y, v)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, wide)


def test_no_recording_outside_a_tape():
    v = Variable(values(3, seed=33))
    y = v * 2.0
    assert y.node is None and not y.requires_grad
    with GradientTape() as tape:
        inside = v * 2.0
    after = inside * 2.0   # after the tape closed: not recorded
    assert inside.node is not None and after.node is None
    assert tape.gradient(after, v) is None


def test_nested_tapes():
    v = Variable(values(3, seed=34))
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = v * v
        np.testing.assert_allclose(inner.gradient(y, v), 2 * v.value, rtol=1e-6)
        z = y * 3.0   # the outer tape still records after the inner one closed
    np.testing.assert_allclose(outer.gradient(z, v), 6 * v.value, rtol=1e-6)


def test_recording_is_per_thread():
    v = Variable(values(3, seed=35))
    seen = {}

    def other_thread():
        seen["outside"] = (v * 2.0).node   # this thread has no tape open
        with GradientTape() as tape:
            y = v * 5.0
        seen["own_tape"] = tape.gradient(y, v)

    with GradientTape() as tape:
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        mine = v * 3.0
    assert seen["outside"] is None
    np.testing.assert_allclose(seen["own_tape"], 5.0)
    np.testing.assert_allclose(tape.gradient(mine, v), 3.0)
    # and the main thread's tape is unaffected by the other thread's closing one
    outside = v * 2.0
    assert outside.node is None
