"""minidl.ops core.py, numpy_extra.py and math_ops.py: forward against numpy, gradients against
float64 central differences and PyTorch autograd, Keras' dtypes, control flow with gradients
through what ran, stop_gradient, and the errors bad arguments get."""
import math

import numpy as np
import pytest

from minidl import ops
from minidl.autodiff import GradientTape, Tensor, Variable

from op_checks import check_grads, rand, torch_or_skip, vjp

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def grad_of(fn, *arrays, **gradient_kwargs):
    """Gradients of ``sum(fn(*tensors))`` with respect to each input."""
    tensors = [Tensor(np.array(a, np.float64)) for a in arrays]
    with GradientTape() as tape:
        tape.watch(tensors)
        y = fn(*tensors)
    return tape.gradient(y, tensors, **gradient_kwargs)


# ---- stop_gradient, is_tensor ---------------------------------------------------------------

def test_stop_gradient_passes_the_value_and_no_gradient():
    torch = torch_or_skip()
    x = rand(3, 2)
    # x * stop(x): the stopped factor is a constant, so the gradient is w * x, not 2 w * x
    # (central differences see the function itself, so torch's detach is the reference).
    y, (g,), w = vjp(lambda t: t * ops.stop_gradient(t), [x])
    np.testing.assert_allclose(y.value, x * x, rtol=1e-15)
    t = torch.tensor(x, requires_grad=True)
    (t * t.detach()).backward(torch.from_numpy(w))
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, w * x, rtol=1e-12)
    # A source reached only through stop_gradient gets None (zeros when asked), no error.
    (g,) = grad_of(lambda t: ops.stop_gradient(t) * 3.0, x)
    assert g is None
    (g,) = grad_of(lambda t: ops.sum(ops.stop_gradient(t)), x, unconnected_gradients="zero")
    np.testing.assert_array_equal(g, np.zeros_like(x))
    out = ops.stop_gradient(Tensor(x))
    np.testing.assert_array_equal(out.value, x)
    assert out.dtype == np.float64 and out.node is None
    assert ops.stop_gradient([1.5, 2.0]).dtype == np.float32


def test_stop_gradient_of_a_variable_is_a_snapshot():
    v = Variable(np.zeros(2, np.float32))
    with GradientTape() as tape:
        frozen = ops.stop_gradient(v)
        y = ops.sum(frozen * v)
    assert tape.gradient(y, v) is not None   # through the unstopped factor
    v.assign_add(1.0)
    np.testing.assert_array_equal(frozen.value, [0, 0])


def test_is_tensor():
    assert ops.is_tensor(Tensor(np.ones(2)))
    assert ops.is_tensor(Variable(np.ones(2)))
    assert ops.is_tensor(ops.add(1.0, 2.0))
    assert not ops.is_tensor(np.ones(2))
    assert not ops.is_tensor([1.0, 2.0])
    assert not ops.is_tensor(3.0)


# ---- cond, fori_loop, while_loop --------------------------------------------------------------

@pytest.mark.parametrize("taken", [True, False])
def test_cond_runs_and_differentiates_the_taken_branch_only(taken):
    torch = torch_or_skip()
    x = rand(4, seed=2)
    ran = []

    def mine(t):
        def true_fn():
            ran.append("true")
            return ops.sin(t) * t

        def false_fn():
            ran.append("false")
            return ops.exp(t) * 2.0
        return ops.cond(Tensor(np.array(taken)), true_fn, false_fn)

    def theirs(t):
        return torch.sin(t) * t if taken else torch.exp(t) * 2.0
    check_grads(mine, x, torch_fn=theirs)
    assert set(ran) == {"true" if taken else "false"}
    # A Python bool and a 1-element tensor are predicates too.
    assert float(ops.cond(False, lambda: 1.0, lambda: 2.0)) == 2.0
    assert ops.cond(np.array([1]), lambda: "yes", lambda: "no") == "yes"


def test_cond_argument_errors():
    with pytest.raises(ValueError, match=r"ops\.cond: pred must be a scalar boolean; received "
                                         r"a tensor of shape \(2,\)"):
        ops.cond(np.array([True, False]), lambda: 1, lambda: 2)
    with pytest.raises(TypeError, match=r"ops\.cond: false_fn must be a callable; received "
                                        r"false_fn=2"):
        ops.cond(True, lambda: 1, 2)


def test_fori_loop_forward_and_gradient():
    torch = torch_or_skip()
    # Keras' docstring example: the sum of 0..9.
    assert ops.fori_loop(0, 10, lambda i, s: s + i, 0) == 45
    assert int(ops.fori_loop(Tensor(np.array(2, np.int32)), 5, lambda i, s: s + i, 0)) == 9
    x, w = rand(3, seed=3), rand(3, 3, seed=4) * 0.5

    def mine(x, w):
        return ops.fori_loop(1, 4, lambda i, h: ops.tanh(ops.matmul(w, h) + h * float(i)), x)

    def theirs(x, w):
        h = x
        for i in range(1, 4):
            h = torch.tanh(w @ h + h * float(i))
        return h
    check_grads(mine, x, w, torch_fn=theirs)
    # No iterations: the initial value itself.
    init = Tensor(x)
    assert ops.fori_loop(3, 3, lambda i, h: h * 2, init) is init
    with pytest.raises(TypeError, match=r"ops\.fori_loop: upper must be an integer; received "
                                        r"upper=2\.5"):
        ops.fori_loop(0, 2.5, lambda i, h: h, init)
    with pytest.raises(TypeError, match=r"ops\.fori_loop: body_fun must be a callable"):
        ops.fori_loop(0, 2, None, init)


def test_while_loop_forward_as_keras():
    out = ops.while_loop(lambda i: i < 10, lambda i: i + 1, 0)
    assert isinstance(out, Tensor) and int(out) == 10 and out.dtype == np.int32
    out = ops.while_loop(lambda x, y: x < 10, lambda x, y: (x + 1, y + 1), (0, 1))
    assert isinstance(out, tuple) and [int(v) for v in out] == [10, 11]
    # A list of loop variables gives a tuple too; maximum_iterations stops early.
    out = ops.while_loop(lambda i, s: i < 100, lambda i, s: [i + 1, s * 2.0], [0, 1.0],
                         maximum_iterations=3)
    assert int(out[0]) == 3 and float(out[1]) == 8.0
    assert int(ops.while_loop(lambda i: i < 5, lambda i: i + 1, 0, maximum_iterations=0)) == 0


def test_while_loop_gradient_flows_through_the_iterations_run():
    torch = torch_or_skip()
    x = np.array([0.3, -0.2, 0.5])

    def mine(x):
        # Double until the norm passes 3: how many iterations run depends on the values.
        def body(h, n):
            return ops.sin(h) * 2.0 + h, n + 1
        return ops.while_loop(lambda h, n: ops.sum(h * h) < 9.0, body, (x, 0))[0]

    def theirs(x):
        h = x
        while float((h * h).sum().detach()) < 9.0:
            h = torch.sin(h) * 2.0 + h
        return h
    check_grads(mine, x, torch_fn=theirs)
    iterations = ops.while_loop(lambda h, n: ops.sum(h * h) < 9.0,
                                lambda h, n: (ops.sin(h) * 2.0 + h, n + 1), (x, 0))[1]
    assert int(iterations) >= 2


def test_while_loop_argument_errors():
    with pytest.raises(ValueError, match=r"ops\.while_loop: body must return as many loop "
                                         r"variables as it takes \(2\); it returned 1"):
        ops.while_loop(lambda a, b: a < 3, lambda a, b: a + 1, (0, 0))
    with pytest.raises(ValueError, match=r"ops\.while_loop: maximum_iterations must be >= 0 "
                                         r"or None; received maximum_iterations=-1"):
        ops.while_loop(lambda a: a < 3, lambda a: a + 1, 0, maximum_iterations=-1)
    with pytest.raises(ValueError, match=r"ops\.while_loop: the value cond returned must be a "
                                         r"scalar boolean; received a tensor of shape \(2,\)"):
        ops.while_loop(lambda a: a < 3, lambda a: a + 1, np.zeros(2))
    with pytest.raises(TypeError, match=r"ops\.while_loop: cond must be a callable"):
        ops.while_loop(True, lambda a: a + 1, 0)


# ---- slice, slice_update, scatter, scatter_update ------------------------------------------

def test_slice_forward_and_gradient():
    x = rand(4, 5, 3, seed=5)
    out = ops.slice(x, [1, 2, 0], (2, 3, 3))
    np.testing.assert_array_equal(out.value, x[1:3, 2:5, 0:3])
    # Start indices given as a tensor, as Keras allows.
    out = ops.slice(x, Tensor(np.array([3, 0, 1], np.int32)), [1, 5, 2])
    np.testing.assert_array_equal(out.value, x[3:4, :, 1:3])
    check_grads(lambda t: ops.slice(t, (1, 2, 0), (2, 3, 3)), x,
                torch_fn=lambda t: t[1:3, 2:5, 0:3])


def test_slice_update_forward_and_gradients():
    x, u = rand(4, 5, seed=6), rand(2, 3, seed=7)
    out = ops.slice_update(x, [2, 1], u)
    expected = x.copy()
    expected[2:4, 1:4] = u
    np.testing.assert_array_equal(out.value, expected)
    assert not np.shares_memory(out.value, x)

    def theirs(x, u):
        y = x.clone()
        y[2:4, 1:4] = u
        return y
    check_grads(lambda x, u: ops.slice_update(x, [2, 1], u), x, u, torch_fn=theirs)
    # The result keeps the dtype of inputs.
    assert ops.slice_update(np.zeros((2, 2), np.float32), [0, 0], np.ones((1, 1))).dtype == \
        np.float32


def test_slice_errors_name_the_window():
    x = np.zeros((4, 5))
    with pytest.raises(ValueError, match=r"ops\.slice: the window \[3, 5\) along axis 0 does "
                                         r"not fit in inputs of shape \(4, 5\)"):
        ops.slice(x, [3, 0], [2, 2])
    with pytest.raises(ValueError, match=r"ops\.slice: start_indices and shape must have one "
                                         r"entry per axis of inputs \(rank 2\)"):
        ops.slice(x, [0], [2, 2])
    with pytest.raises(TypeError, match=r"ops\.slice: start_indices\[1\] must be an integer; "
                                        r"received start_indices\[1\]=1\.5"):
        ops.slice(x, [0, 1.5], [2, 2])
    with pytest.raises(ValueError, match=r"ops\.slice_update: updates must have the rank of "
                                         r"inputs"):
        ops.slice_update(x, [0, 0], np.ones(3))
    with pytest.raises(ValueError, match=r"ops\.slice_update: the window \[4, 7\) along axis 1"):
        ops.slice_update(x, [0, 4], np.ones((1, 3)))


def test_scatter_forward_sums_repeats_and_gradient():
    torch = torch_or_skip()
    # Keras' docstring example.
    out = ops.scatter([[0, 1], [1, 1]], np.array([1.0, 1.0]), (2, 2))
    np.testing.assert_array_equal(out.value, [[0, 1], [0, 1]])
    # Repeated indices add up; rows of k < rank indices scatter slices.
    idx = np.array([[2], [0], [2]])
    v = rand(3, 4, seed=8)
    out = ops.scatter(idx, v, (3, 4))
    np.testing.assert_allclose(out.value, np.stack([v[1], np.zeros(4), v[0] + v[2]]))
    assert out.dtype == np.float64

    def theirs(v):
        return torch.zeros(3, 4, dtype=torch.float64).index_put(
            (torch.from_numpy(idx[:, 0]),), v, accumulate=True)
    check_grads(lambda v: ops.scatter(idx, v, (3, 4)), v, torch_fn=theirs)


def test_scatter_update_forward_and_gradients():
    torch = torch_or_skip()
    x = rand(3, 4, seed=9)
    idx = np.array([[0, 1], [2, 3], [1, 0]])
    u = rand(3, seed=10)
    expected = x.copy()
    expected[idx[:, 0], idx[:, 1]] = u
    np.testing.assert_array_equal(ops.scatter_update(x, idx, u).value, expected)

    def theirs(x, u):
        return x.index_put((torch.from_numpy(idx[:, 0]), torch.from_numpy(idx[:, 1])), u)
    check_grads(lambda x, u: ops.scatter_update(x, idx, u), x, u, torch_fn=theirs)
    # Rows of k < rank indices replace slices.
    rows = rand(2, 4, seed=11)
    out = ops.scatter_update(x, [[2], [0]], rows)
    np.testing.assert_array_equal(out.value, np.stack([rows[1], x[1], rows[0]]))
    check_grads(lambda x, r: ops.scatter_update(x, [[2], [0]], r), x, rows)


def test_scatter_update_repeated_index_keeps_the_last_update_and_its_gradient():
    x = np.zeros(3)
    u = np.array([1.0, 2.0, 3.0])
    out = ops.scatter_update(x, [[1], [1], [0]], u)
    np.testing.assert_array_equal(out.value, [3.0, 2.0, 0.0])
    g_x, g_u = grad_of(lambda x, u: ops.scatter_update(x, [[1], [1], [0]], u) *
                       Tensor(np.array([10.0, 20.0, 30.0])), x, u)
    np.testing.assert_array_equal(g_x, [0.0, 0.0, 30.0])
    np.testing.assert_array_equal(g_u, [0.0, 20.0, 10.0])   # the overwritten update gets 0


def test_scatter_errors():
    with pytest.raises(IndexError, match=r"ops\.scatter: index \(2, 0\) is out of bounds for "
                                         r"shape \(2, 2\)"):
        ops.scatter([[0, 0], [2, 0]], np.ones(2), (2, 2))
    with pytest.raises(ValueError, match=r"ops\.scatter: values must have shape "
                                         r"indices\.shape\[:-1\] \+ shape\[2:\] = \(2,\); "
                                         r"received values of shape \(3,\)"):
        ops.scatter([[0, 0], [1, 0]], np.ones(3), (2, 2))
    with pytest.raises(TypeError, match=r"ops\.scatter_update: indices must be integers; "
                                        r"received dtype float32"):
        ops.scatter_update(np.zeros(3), [[0.5]], np.ones(1))
    with pytest.raises(IndexError, match=r"ops\.scatter_update: index \(-1,\) is out of bounds"):
        ops.scatter_update(np.zeros(3), [[-1]], np.ones(1))
    with pytest.raises(ValueError, match=r"ops\.scatter_update: indices have 3 components per "
                                         r"position, more than the 2 axes"):
        ops.scatter_update(np.zeros((2, 2)), [[0, 0, 0]], np.ones(1))


# ---- unstack, vectorized_map -------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unstack_forward_and_gradient(axis):
    torch = torch_or_skip()
    x = rand(2, 3, 4, seed=12)
    pieces = ops.unstack(x, axis=axis)
    assert isinstance(pieces, list) and len(pieces) == x.shape[axis]
    for i, p in enumerate(pieces):
        np.testing.assert_array_equal(p.value, np.take(x, i, axis=axis))
    weights = [1.0, -2.0, 0.5, 3.0]
    check_grads(lambda t: sum(p * w for p, w in zip(ops.unstack(t, axis=axis), weights)), x,
                torch_fn=lambda t: sum(p * w for p, w in zip(torch.unbind(t, axis), weights)))


def test_unstack_errors():
    with pytest.raises(ValueError, match=r"ops\.unstack: num=3 does not match the length 2 of "
                                         r"axis 0 of a tensor of shape \(2, 4\)"):
        ops.unstack(np.zeros((2, 4)), num=3)
    with pytest.raises(ValueError, match=r"ops\.unstack: axis=2 is out of range"):
        ops.unstack(np.zeros((2, 4)), axis=2)


def test_vectorized_map_forward_structures_and_gradient():
    torch = torch_or_skip()
    x, w = rand(4, 3, seed=13), rand(3, 2, seed=14)
    out = ops.vectorized_map(lambda row: ops.matmul(row, w), x)
    np.testing.assert_allclose(out.value, x @ w, rtol=1e-12)
    # A tuple of elements reaches the function as a tuple of slices; a tuple output is
    # stacked leaf by leaf.
    s, d = ops.vectorized_map(lambda ab: (ab[0] + ab[1], ab[0] - ab[1]), (x, 2 * x))
    np.testing.assert_allclose(s.value, 3 * x)
    np.testing.assert_allclose(d.value, -x)
    both = ops.vectorized_map(lambda e: e["a"] * e["b"], {"a": x, "b": x})
    np.testing.assert_allclose(both.value, x * x)
    check_grads(lambda x, w: ops.vectorized_map(lambda r: ops.tanh(ops.matmul(r, w)), x),
                x, w, torch_fn=lambda x, w: torch.stack([torch.tanh(r @ w) for r in x]))


def test_vectorized_map_errors():
    with pytest.raises(ValueError, match=r"ops\.vectorized_map: all elements must have the "
                                         r"same size along axis 0; element 0 has 2, element 1 "
                                         r"has 3"):
        ops.vectorized_map(lambda e: e[0], [np.zeros((2, 1)), np.zeros((3, 1))])
    with pytest.raises(ValueError, match=r"ops\.vectorized_map: elements have size 0"):
        ops.vectorized_map(lambda e: e, np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"ops\.vectorized_map: every element must have a "
                                         r"first axis"):
        ops.vectorized_map(lambda e: e, np.float32(1.0))


# ---- sorting, scans, rearrangements -----------------------------------------------------------

def _sort_torch(t, axis):
    import torch
    return torch.sort(t.flatten() if axis is None else t, dim=0 if axis is None else axis).values


@pytest.mark.parametrize("axis", [-1, 0, None])
def test_sort_and_argsort(axis):
    x = rand(3, 4, seed=15)
    flat = x.reshape(-1) if axis is None else x
    ax = 0 if axis is None else axis
    np.testing.assert_array_equal(ops.sort(x, axis).value, np.sort(flat, axis=ax))
    order = ops.argsort(x, axis)
    assert order.dtype == np.int32
    np.testing.assert_array_equal(order.value, np.argsort(flat, axis=ax))
    check_grads(lambda t: ops.sort(t, axis), x, torch_fn=lambda t: _sort_torch(t, axis))


def test_sort_is_stable_and_argsort_has_no_gradient():
    x = np.array([2.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(ops.argsort(x).value, [1, 3, 0, 2])
    # Tied values each get their own gradient back (a permutation, not a share).
    (g,) = grad_of(lambda t: ops.sort(t) * Tensor(np.array([1.0, 2.0, 3.0, 4.0])), x)
    np.testing.assert_array_equal(g, [3.0, 1.0, 4.0, 2.0])
    with pytest.raises(ValueError, match=r"through 'argsort', which has no gradient"):
        grad_of(lambda t: ops.cast(ops.argsort(t), "float64"), x)


@pytest.mark.parametrize("axis", [0, 1, None])
def test_cumsum_forward_and_gradient(axis):
    torch = torch_or_skip()
    x = rand(3, 4, seed=16)
    expected = np.cumsum(x, axis=axis)
    np.testing.assert_allclose(ops.cumsum(x, axis).value, expected, rtol=1e-12)

    def theirs(t):
        return torch.cumsum(t.flatten(), 0) if axis is None else torch.cumsum(t, axis)
    check_grads(lambda t: ops.cumsum(t, axis), x, torch_fn=theirs)


@pytest.mark.parametrize("with_zeros", [False, True])
@pytest.mark.parametrize("axis", [1, None])
def test_cumprod_forward_and_gradient(axis, with_zeros):
    torch = torch_or_skip()
    x = rand(3, 4, seed=17)
    if with_zeros:
        x[0, 1] = x[2, 0] = x[2, 2] = 0.0   # one zero, and two in a row
    np.testing.assert_allclose(ops.cumprod(x, axis).value, np.cumprod(x, axis=axis),
                               rtol=1e-12)

    def theirs(t):
        return torch.cumprod(t.flatten(), 0) if axis is None else torch.cumprod(t, axis)
    check_grads(lambda t: ops.cumprod(t, axis), x, torch_fn=theirs)


def test_scan_dtypes_follow_keras():
    assert ops.cumsum(np.array([True, False, True])).dtype == np.int32
    assert ops.cumprod(np.array([True, True])).dtype == np.int32
    assert ops.cumsum(np.array([1, 2], np.int8)).dtype == np.int8
    assert ops.cumsum(np.array([1, 2], np.int32), dtype="float32").dtype == np.float32
    assert ops.cumsum([1.0, 2.0]).dtype == np.float32
    np.testing.assert_array_equal(ops.cumsum(np.ones((2, 2), np.int32)).value, [1, 2, 3, 4])


@pytest.mark.parametrize("axis", [None, 0, (0, 2), -1])
def test_flip_forward_and_gradient(axis):
    torch = torch_or_skip()
    x = rand(2, 3, 4, seed=18)
    np.testing.assert_array_equal(ops.flip(x, axis).value, np.flip(x, axis))
    dims = [0, 1, 2] if axis is None else ([axis] if isinstance(axis, int) else list(axis))
    check_grads(lambda t: ops.flip(t, axis), x, torch_fn=lambda t: torch.flip(t, dims))


@pytest.mark.parametrize("shift,axis", [(2, None), (-1, 0), (3, 1), ((1, -2), (0, 1))])
def test_roll_forward_and_gradient(shift, axis):
    torch = torch_or_skip()
    x = rand(3, 4, seed=19)
    np.testing.assert_array_equal(ops.roll(x, shift, axis).value, np.roll(x, shift, axis))
    check_grads(lambda t: ops.roll(t, shift, axis), x,
                torch_fn=lambda t: torch.roll(t, shift, axis))


def test_roll_errors():
    with pytest.raises(ValueError, match=r"ops\.roll: shift=\(1, 2\) and axis=\(0, 1, 0\) "
                                         r"must pair up"):
        ops.roll(np.zeros((2, 2)), (1, 2), (0, 1, 0))
    with pytest.raises(ValueError, match=r"ops\.roll: axis=2 must be an int or a sequence of "
                                         r"ints in range for a tensor of rank 2"):
        ops.roll(np.zeros((2, 2)), 1, 2)
    with pytest.raises(TypeError, match=r"ops\.roll: shift must be an int"):
        ops.roll(np.zeros((2, 2)), 1.5, 0)


# ---- diagonals and triangles ----------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 1, -2])
def test_diag_builds_and_extracts(k):
    torch = torch_or_skip()
    v, m = rand(3, seed=20), rand(4, 5, seed=21)
    np.testing.assert_array_equal(ops.diag(v, k).value, np.diag(v, k))
    np.testing.assert_array_equal(ops.diag(m, k).value, np.diag(m, k))
    check_grads(lambda t: ops.diag(t, k), v, torch_fn=lambda t: torch.diag(t, k))
    check_grads(lambda t: ops.diag(t, k), m, torch_fn=lambda t: torch.diag(t, k))


@pytest.mark.parametrize("offset,axis1,axis2", [(0, 0, 1), (1, 0, 2), (-1, 2, 1), (2, -1, 0)])
def test_diagonal_and_trace(offset, axis1, axis2):
    torch = torch_or_skip()
    x = rand(3, 4, 5, seed=22)
    np.testing.assert_array_equal(ops.diagonal(x, offset, axis1, axis2).value,
                                  np.diagonal(x, offset, axis1, axis2))
    np.testing.assert_allclose(ops.trace(x, offset, axis1, axis2).value,
                               np.trace(x, offset, axis1, axis2), rtol=1e-12)
    check_grads(lambda t: ops.diagonal(t, offset, axis1, axis2), x,
                torch_fn=lambda t: torch.diagonal(t, offset, axis1, axis2))
    check_grads(lambda t: ops.trace(t, offset, axis1, axis2), x,
                torch_fn=lambda t: torch.diagonal(t, offset, axis1, axis2).sum(-1))


def test_trace_dtypes_and_2d_againsttorch_or_skip():
    torch = torch_or_skip()
    check_grads(ops.trace, rand(4, 4, seed=23), torch_fn=torch.trace)
    assert ops.trace(np.ones((3, 3), np.int8)).dtype == np.int32
    assert ops.trace(np.ones((3, 3), np.uint16)).dtype == np.uint32
    assert ops.trace(np.eye(3, dtype=bool)).dtype == np.int32
    assert int(ops.trace(np.eye(3, dtype=bool))) == 3
    assert ops.trace(np.ones((2, 2), np.float32)).dtype == np.float32


@pytest.mark.parametrize("name", ["tril", "triu"])
@pytest.mark.parametrize("k", [0, 1, -1])
def test_triangles(name, k):
    torch = torch_or_skip()
    x = rand(2, 3, 4, seed=24)
    np.testing.assert_array_equal(getattr(ops, name)(x, k).value, getattr(np, name)(x, k))
    check_grads(lambda t: getattr(ops, name)(t, k), x,
                torch_fn=lambda t: getattr(torch, name)(t, k))


def test_diagonal_and_triangle_errors():
    with pytest.raises(ValueError, match=r"ops\.diag: x must be 1-D or 2-D; received shape "
                                         r"\(2, 2, 2\)"):
        ops.diag(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"ops\.diagonal: axis1 and axis2 must be different "
                                         r"axes; received axis1=0, axis2=-3"):
        ops.diagonal(np.zeros((2, 2, 2)), 0, 0, -3)
    with pytest.raises(ValueError, match=r"ops\.trace: x must have at least 2 axes; received "
                                         r"shape \(3,\)"):
        ops.trace(np.zeros(3))
    with pytest.raises(ValueError, match=r"ops\.tril: x must have at least 2 axes"):
        ops.tril(np.zeros(3))
    with pytest.raises(TypeError, match=r"ops\.triu: k must be an int; received k=1\.0"):
        ops.triu(np.zeros((2, 2)), 1.0)


# ---- floating-point tests, nan_to_num, logical reductions --------------------------------------

def test_isnan_isinf_isfinite():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0], np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        out = getattr(ops, name)(x)
        assert out.dtype == np.bool_
        np.testing.assert_array_equal(out.value, getattr(np, name)(x))
        # numpy's ufunc on a tensor runs the op.
        np.testing.assert_array_equal(getattr(np, name)(Tensor(x)).value, out.value)
    np.testing.assert_array_equal(ops.isfinite(np.array([1, 2], np.int32)).value, [True, True])
    np.testing.assert_array_equal(ops.isnan(np.array([True])).value, [False])
    with pytest.raises(ValueError, match=r"through 'isnan', which has no gradient"):
        grad_of(lambda t: ops.where(ops.isnan(t), 1.0, 0.0) * 1.0 +
                ops.cast(ops.isnan(t), "float64"), np.ones(2))


def test_nan_to_num_forward_and_gradient():
    torch = torch_or_skip()
    x = rand(2, 3, seed=25)
    x[0, 1], x[1, 0], x[1, 2] = np.nan, np.inf, -np.inf
    np.testing.assert_array_equal(ops.nan_to_num(x).value, np.nan_to_num(x))
    out = ops.nan_to_num(x, nan=-1.0, posinf=9.0, neginf=-9.0)
    np.testing.assert_array_equal(out.value, np.nan_to_num(x, nan=-1.0, posinf=9.0, neginf=-9.0))
    check_grads(lambda t: ops.nan_to_num(t, nan=-1.0, posinf=9.0, neginf=-9.0), x,
                torch_fn=lambda t: torch.nan_to_num(t, nan=-1.0, posinf=9.0, neginf=-9.0))
    assert ops.nan_to_num(np.array([1.0], np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match=r"ops\.nan_to_num: posinf must be a number or None; "
                                        r"received posinf='big'"):
        ops.nan_to_num(x, posinf="big")


@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, True), ((0, 2), False), (-1, False)])
def test_any_all_count_nonzero(axis, keepdims):
    x = np.random.default_rng(26).integers(0, 3, (3, 2, 4)) * np.array([1, 0, 1, 1])
    np.testing.assert_array_equal(ops.any(x, axis, keepdims).value,
                                  np.any(x, axis=axis, keepdims=keepdims))
    np.testing.assert_array_equal(ops.all(x, axis, keepdims).value,
                                  np.all(x, axis=axis, keepdims=keepdims))
    count = ops.count_nonzero(x, axis)
    assert count.dtype == np.int32 and count.shape == np.shape(np.count_nonzero(x, axis=axis))
    np.testing.assert_array_equal(count.value, np.count_nonzero(x, axis=axis))
    assert ops.any(x, axis).dtype == np.bool_


def test_reduction_axis_errors_name_the_op():
    with pytest.raises(ValueError, match=r"ops\.any: axis 3 is out of range for a tensor of "
                                         r"rank 2"):
        ops.any(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match=r"ops\.count_nonzero: axis=\(0, 0\) names an axis "
                                         r"twice"):
        ops.count_nonzero(np.zeros((2, 2)), (0, 0))
    with pytest.raises(ValueError, match=r"ops\.sort: axis=2 is out of range for a tensor of "
                                         r"rank 2"):
        ops.sort(np.zeros((2, 2)), 2)


# ---- average ----------------------------------------------------------------------------------

def test_average_forward_and_gradients():
    torch = torch_or_skip()
    x, w1, wf = rand(3, 4, seed=27), np.array([0.5, 1.0, 2.0, 0.25]), rand(3, 4, seed=28) ** 2
    np.testing.assert_allclose(ops.average(x).value, np.average(x), rtol=1e-12)
    np.testing.assert_allclose(ops.average(x, 1, w1).value, np.average(x, 1, w1), rtol=1e-12)
    np.testing.assert_allclose(ops.average(x, 0, wf).value, np.average(x, 0, wf), rtol=1e-12)
    np.testing.assert_allclose(ops.average(x, None, wf).value, np.average(x, None, wf),
                               rtol=1e-12)
    check_grads(lambda t: ops.average(t, 0), x, torch_fn=lambda t: t.mean(0))
    check_grads(lambda t, w: ops.average(t, 1, w), x, w1,
                torch_fn=lambda t, w: (t * w).sum(1) / w.sum())
    check_grads(lambda t, w: ops.average(t, 0, w), x, wf,
                torch_fn=lambda t, w: (t * w).sum(0) / w.sum(0))
    check_grads(lambda t, w: ops.average(t, None, w), x, wf,
                torch_fn=lambda t, w: (t * w).sum() / w.sum())


def test_average_dtypes_and_errors():
    assert ops.average(np.array([1, 2], np.int32)).dtype == np.float32
    assert float(ops.average(np.array([1, 2], np.int32))) == 1.5
    assert ops.average(np.ones(2, np.float32), weights=np.ones(2)).dtype == np.float64
    assert ops.average(np.ones(2, np.float16)).dtype == np.float16
    with pytest.raises(ValueError, match=r"ops\.average: weights must have the shape of x "
                                         r"\(2, 3\), or be 1-D with the length of x along an "
                                         r"int axis; received weights of shape \(2,\) and "
                                         r"axis=1"):
        ops.average(np.ones((2, 3)), 1, np.ones(2))
    with pytest.raises(ZeroDivisionError, match=r"ops\.average: the weights sum to 0 along "
                                                r"axis=0"):
        ops.average(np.ones((2, 3)), 0, np.zeros((2, 3)))


# ---- linspace, meshgrid, size, ndim ------------------------------------------------------------

@pytest.mark.parametrize("endpoint", [True, False])
def test_linspace_forward_dtypes_and_retstep(endpoint):
    out = ops.linspace(0, 1, 5, endpoint=endpoint)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.value, np.linspace(0, 1, 5, endpoint=endpoint), rtol=1e-6)
    samples, step = ops.linspace(-2.0, 3.0, 6, endpoint=endpoint, retstep=True)
    ref, ref_step = np.linspace(-2.0, 3.0, 6, endpoint=endpoint, retstep=True)
    np.testing.assert_allclose(samples.value, ref, rtol=1e-6)
    assert math.isclose(float(step), ref_step, rel_tol=1e-6)
    start, stop = np.array([0.0, 1.0]), np.array([[2.0, 5.0], [4.0, -1.0]])
    out = ops.linspace(start, stop, 4, endpoint=endpoint, axis=-1)
    assert out.dtype == np.float64 and out.shape == (2, 2, 4)
    np.testing.assert_allclose(out.value, np.linspace(start, stop, 4, endpoint=endpoint,
                                                      axis=-1), rtol=1e-12)
    assert ops.linspace(0, 10, 4, dtype="int32").dtype == np.int32
    np.testing.assert_array_equal(ops.linspace(0, 10, 4, dtype="int32").value,
                                  np.linspace(0, 10, 4, dtype=np.int32))


@pytest.mark.parametrize("endpoint", [True, False])
def test_linspace_gradients_reach_start_and_stop(endpoint):
    torch = torch_or_skip()
    start, stop = rand(2, seed=29), rand(3, 1, seed=30)
    n = 5
    div = n - 1 if endpoint else n
    steps = np.arange(n) / div

    def theirs(s, e):
        t = torch.from_numpy(steps)[:, None, None]
        return s + t * (e - s)
    check_grads(lambda s, e: ops.linspace(s, e, n, endpoint=endpoint), start, stop,
                torch_fn=theirs)
    check_grads(lambda s, e: ops.linspace(s, e, n, endpoint=endpoint, retstep=True)[1],
                start, stop, torch_fn=lambda s, e: (e - s) / div)


@pytest.mark.parametrize("indexing", ["xy", "ij"])
def test_meshgrid_forward_and_gradients(indexing):
    torch = torch_or_skip()
    a, b, c = rand(3, seed=31), rand(4, seed=32), rand(2, seed=33)
    grids = ops.meshgrid(a, b, c, indexing=indexing)
    for got, want in zip(grids, np.meshgrid(a, b, c, indexing=indexing)):
        np.testing.assert_array_equal(got.value, want)
    weights = [1.0, -0.5, 2.0]

    def mine(a, b, c):
        return sum(g * w for g, w in zip(ops.meshgrid(a, b, c, indexing=indexing), weights))

    def theirs(a, b, c):
        return sum(g * w for g, w in zip(torch.meshgrid(a, b, c, indexing=indexing), weights))
    check_grads(mine, a, b, c, torch_fn=theirs)


def test_creation_errors_and_size_ndim():
    with pytest.raises(ValueError, match=r"ops\.linspace: num must be non-negative; received "
                                         r"num=-1"):
        ops.linspace(0, 1, -1)
    with pytest.raises(TypeError, match=r"ops\.linspace: num must be an int; received "
                                        r"num=2\.5"):
        ops.linspace(0, 1, 2.5)
    with pytest.raises(ValueError, match=r"ops\.meshgrid: indexing must be 'xy' or 'ij'; "
                                         r"received indexing='yx'"):
        ops.meshgrid(np.ones(2), indexing="yx")
    assert ops.size(np.zeros((2, 3))) == 6 and isinstance(ops.size(Tensor(np.ones(4))), int)
    assert ops.size(3.0) == 1
    assert ops.ndim(np.zeros((2, 3, 1))) == 3 and ops.ndim(Tensor(np.float32(1))) == 0


# ---- top_k, in_top_k ---------------------------------------------------------------------------

def test_top_k_forward_gradient_and_dtypes():
    torch = torch_or_skip()
    x = rand(3, 6, seed=34)
    values, indices = ops.top_k(x, 3)
    t_values, t_indices = torch.topk(torch.from_numpy(x), 3)
    np.testing.assert_array_equal(values.value, t_values.numpy())
    np.testing.assert_array_equal(indices.value, t_indices.numpy())
    assert indices.dtype == np.int32 and values.dtype == np.float64
    check_grads(lambda t: ops.top_k(t, 3)[0], x, torch_fn=lambda t: torch.topk(t, 3).values)
    check_grads(lambda t: ops.top_k(t, 2, sorted=False)[0], rand(2, 3, 4, seed=35),
                torch_fn=lambda t: torch.topk(t, 2).values)
    # Ties come in index order, as TensorFlow and JAX give them.
    _, indices = ops.top_k(np.array([1.0, 3.0, 3.0, 2.0, 3.0]), 4)
    np.testing.assert_array_equal(indices.value, [1, 2, 4, 3])
    with pytest.raises(ValueError, match=r"ops\.top_k: k must be between 0 and the size of the "
                                         r"last axis of x \(6\); received k=7"):
        ops.top_k(x, 7)
    with pytest.raises(TypeError, match=r"ops\.top_k: k must be an int; received k=2\.0"):
        ops.top_k(x, 2.0)


def test_in_top_k():
    predictions = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1],
                            [np.nan, 0.5, 0.1]], np.float32)
    targets = np.array([2, 0, 2, 0])
    out = ops.in_top_k(targets, predictions, 2)
    assert out.dtype == np.bool_
    # Row 1: class 0 ties with the 2nd highest (0.3), which counts; row 3: NaN score.
    np.testing.assert_array_equal(out.value, [True, True, False, False])
    np.testing.assert_array_equal(ops.in_top_k(targets, predictions, 1).value,
                                  [False, False, False, False])
    np.testing.assert_array_equal(ops.in_top_k([3, -1], predictions[:2], 3).value,
                                  [False, False])   # ids outside the classes
    with pytest.raises(TypeError, match=r"ops\.in_top_k: targets must be integer class ids; "
                                        r"received dtype float32"):
        ops.in_top_k(np.array([1.0], np.float32), predictions[:1], 1)
    with pytest.raises(ValueError, match=r"ops\.in_top_k: targets must have the shape of "
                                         r"predictions without its last \(class\) axis"):
        ops.in_top_k(targets[:2], predictions, 1)


# ---- norm --------------------------------------------------------------------------------------

VECTOR_NORMS = [(None, None), (None, 1), (2, 0), (1, -1), (math.inf, 1), (-math.inf, 0),
                (3, 1), (0.5, 0), (-1, 1)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("ord,axis", VECTOR_NORMS, ids=str)
def test_vector_norms_forward_and_gradient(ord, axis, keepdims):
    torch = torch_or_skip()
    x = rand(3, 4, seed=36)
    out = ops.norm(x, ord, axis, keepdims)
    if axis is None:   # ord=None: the 2-norm of the flattened tensor, reduced axes kept as 1s
        expected = np.linalg.norm(x.reshape(-1)).reshape((1, 1) if keepdims else ())
    else:
        expected = np.linalg.norm(x, ord, axis, keepdims)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.value, expected, rtol=1e-12)

    def theirs(t):
        return torch.linalg.vector_norm(t, 2 if ord is None else ord, axis, keepdims)
    check_grads(lambda t: ops.norm(t, ord, axis, keepdims), x, torch_fn=theirs)


MATRIX_NORMS = ["fro", "nuc", 1, -1, math.inf, -math.inf, 2, -2]


@pytest.mark.parametrize("axis", [(0, 1), (2, 0)], ids=str)
@pytest.mark.parametrize("ord", MATRIX_NORMS, ids=str)
def test_matrix_norms_forward_and_gradient(ord, axis):
    torch = torch_or_skip()
    x = rand(3, 2, 4, seed=37)
    np.testing.assert_allclose(ops.norm(x, ord, axis).value, np.linalg.norm(x, ord, axis),
                               rtol=1e-10)
    kept = ops.norm(x, ord, axis, keepdims=True)
    assert kept.shape == np.linalg.norm(x, ord, axis, keepdims=True).shape
    check_grads(lambda t: ops.norm(t, ord, axis), x,
                torch_fn=lambda t: torch.linalg.matrix_norm(t, ord, axis))
    check_grads(lambda t: ops.norm(t, ord, axis, keepdims=True), x,
                torch_fn=lambda t: torch.linalg.matrix_norm(t, ord, axis, keepdim=True))


def test_norm_of_2d_without_axis_is_the_matrix_norm():
    m = rand(3, 3, seed=38)
    assert math.isclose(float(ops.norm(m, 1)), np.linalg.norm(m, 1), rel_tol=1e-12)
    assert math.isclose(float(ops.norm(m)), np.linalg.norm(m), rel_tol=1e-12)
    v = rand(5, seed=44)
    assert math.isclose(float(ops.norm(v, math.inf)), np.abs(v).max(), rel_tol=1e-15)
    assert math.isclose(float(ops.norm(v, 0)), 5.0)
    # ord=None flattens any rank.
    x = rand(2, 3, 4, seed=39)
    assert math.isclose(float(ops.norm(x)), np.linalg.norm(x.reshape(-1)), rel_tol=1e-12)


@pytest.mark.parametrize("ord,axis", [(None, None), (2, -1), (1, -1), (math.inf, -1),
                                      (-math.inf, -1), (3, -1), ("fro", (0, 1)),
                                      (math.inf, (0, 1))], ids=str)
def test_norm_gradient_at_zero_is_zero_not_nan(ord, axis):
    (g,) = grad_of(lambda t: ops.norm(t, ord, axis), np.zeros((2, 3)))
    np.testing.assert_array_equal(g, np.zeros((2, 3)))
    # A zero row next to a non-zero one: only the zero row's gradient is 0.
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    (g,) = grad_of(lambda t: ops.norm(t, axis=1), x)
    np.testing.assert_allclose(g, [[0.0, 0.0], [0.6, 0.8]])


def test_norm_dtypes_and_errors():
    assert ops.norm(np.array([3, 4], np.int32)).dtype == np.float32
    assert float(ops.norm(np.array([3, 4], np.int32))) == 5.0
    assert ops.norm(np.ones(3, np.float16)).dtype == np.float16
    assert ops.norm(np.ones(3, np.float32), 1).dtype == np.float32
    with pytest.raises(ValueError, match=r"ops\.norm: ord='fro' is not a vector norm"):
        ops.norm(np.ones(3), "fro")
    with pytest.raises(ValueError, match=r"ops\.norm: ord=3 is not a matrix norm"):
        ops.norm(np.ones((2, 2)), 3)
    with pytest.raises(ValueError, match=r"ops\.norm: with axis=None, ord=1 needs a 1-D or 2-D "
                                         r"x; received shape \(2, 2, 2\)"):
        ops.norm(np.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match=r"ops\.norm: axis must be an int or a pair of axes; "
                                         r"received axis=\(0, 1, 2\)"):
        ops.norm(np.ones((2, 2, 2)), None, (0, 1, 2))


# ---- normalize, moments -----------------------------------------------------------------------

@pytest.mark.parametrize("order,axis", [(2, -1), (1, 0), (3, -1), (2, (0, 2))], ids=str)
def test_normalize_forward_and_gradient(order, axis):
    torch = torch_or_skip()
    x = rand(2, 3, 4, seed=40)
    flat_axes = axis if isinstance(axis, tuple) else (axis,)
    n = np.sum(np.abs(x) ** order, axis=flat_axes, keepdims=True) ** (1 / order)
    np.testing.assert_allclose(ops.normalize(x, axis, order).value, x / n, rtol=1e-12)

    def theirs(t):
        if isinstance(axis, tuple):
            norm = t.abs().pow(order).sum(dim=axis, keepdim=True).pow(1 / order)
            return t / norm.clamp_min(1e-7)
        return torch.nn.functional.normalize(t, order, axis, eps=1e-7)
    check_grads(lambda t: ops.normalize(t, axis, order), x, torch_fn=theirs)


def test_normalize_below_epsilon_and_dtypes():
    # Keras' docstring example.
    out = ops.normalize(ops.convert_to_tensor([[1, 2, 3], [4, 5, 6]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.value, [[0.26726124, 0.5345225, 0.8017837],
                                           [0.45584232, 0.5698029, 0.68376344]], rtol=1e-6)
    # A zero vector stays 0 with gradient 1 / epsilon (no NaN).
    (g,) = grad_of(lambda t: ops.normalize(t, epsilon=0.5), np.zeros((1, 3)))
    np.testing.assert_array_equal(g, np.full((1, 3), 2.0))
    assert ops.normalize(np.float32(2.0)).shape == (1,)
    with pytest.raises(ValueError, match=r"ops\.normalize: order must be an int >= 1; received "
                                         r"order=0"):
        ops.normalize(np.ones(3), order=0)
    with pytest.raises(ValueError, match=r"ops\.normalize: order must be an int >= 1; received "
                                         r"order=2\.0"):
        ops.normalize(np.ones(3), order=2.0)


@pytest.mark.parametrize("axes,keepdims", [([0], False), ([0, 2], True), (1, False)], ids=str)
def test_moments_forward_and_gradients(axes, keepdims):
    torch = torch_or_skip()
    x = rand(3, 4, 2, seed=41) + 5.0
    mean, variance = ops.moments(x, axes, keepdims)
    ax = tuple(axes) if isinstance(axes, list) else axes
    np.testing.assert_allclose(mean.value, np.mean(x, ax, keepdims=keepdims), rtol=1e-12)
    np.testing.assert_allclose(variance.value, np.var(x, ax, keepdims=keepdims), rtol=1e-12)
    dims = list(axes) if isinstance(axes, list) else [axes]
    check_grads(lambda t: ops.moments(t, axes, keepdims)[0], x,
                torch_fn=lambda t: t.mean(dims, keepdim=keepdims))
    check_grads(lambda t: ops.moments(t, axes, keepdims)[1], x,
                torch_fn=lambda t: t.var(dims, correction=0, keepdim=keepdims))


def test_moments_dtypes_and_errors():
    mean, variance = ops.moments(np.array([[1, 2], [3, 5]], np.int32), [0])
    assert mean.dtype == variance.dtype == np.float32
    np.testing.assert_allclose(variance.value, [1.0, 2.25])
    mean, variance = ops.moments(np.ones((2, 2), np.float16), [0, 1])
    assert mean.dtype == variance.dtype == np.float16
    with pytest.raises(ValueError, match=r"ops\.moments: axes must name the axes to reduce"):
        ops.moments(np.ones(2), None)
    with pytest.raises(ValueError, match=r"ops\.mean: axis 2 is out of range"):
        ops.moments(np.ones((2, 2)), [2])


# ---- segment_sum, segment_max -----------------------------------------------------------------

def test_segment_sum_forward_and_gradient():
    torch = torch_or_skip()
    data = rand(6, 3, seed=42)
    ids = np.array([2, 0, 2, -1, 1, 4])   # -1 and 4 (>= num_segments) are dropped
    out = ops.segment_sum(data, ids, num_segments=4)
    expected = np.zeros((4, 3))
    for row, i in zip(data, ids):
        if 0 <= i < 4:
            expected[i] += row
    np.testing.assert_allclose(out.value, expected, rtol=1e-12)
    assert ops.segment_sum(data, ids).shape == (5, 3)   # inferred: max id + 1
    keep = torch.from_numpy((ids >= 0) & (ids < 4))
    kept_ids = torch.from_numpy(ids[(ids >= 0) & (ids < 4)])
    check_grads(lambda d: ops.segment_sum(d, ids, 4), data,
                torch_fn=lambda d: torch.zeros(4, 3, dtype=torch.float64)
                .index_add(0, kept_ids, d[keep]))
    assert ops.segment_sum(np.array([True, True]), np.array([0, 0])).dtype == np.int32


def test_segment_max_forward_gradient_and_ties():
    torch = torch_or_skip()
    data = rand(6, 2, seed=43)
    ids = np.array([0, 0, 2, 2, 2, 0])
    out = ops.segment_max(data, ids, num_segments=4, sorted=False)
    np.testing.assert_array_equal(out.value[[0, 2]],
                                  [data[ids == 0].max(0), data[ids == 2].max(0)])
    np.testing.assert_array_equal(out.value[[1, 3]], np.full((2, 2), -np.inf))
    # (Every segment non-empty here: -inf in the output would make the checks' sums NaN.)
    ids = np.array([0, 1, 2, 2, 2, 0])
    index = torch.from_numpy(ids)[:, None].expand(6, 2)
    check_grads(lambda d: ops.segment_max(d, ids, 3), data,
                torch_fn=lambda d: torch.zeros(3, 2, dtype=torch.float64)
                .scatter_reduce(0, index, d, "amax", include_self=False))
    # Ties share the gradient evenly (as torch and TensorFlow).
    tied = np.array([1.0, 3.0, 3.0, 2.0])
    (g,) = grad_of(lambda d: ops.segment_max(d, np.array([0, 0, 0, 1])), tied)
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5, 1.0])
    assert ops.segment_max(np.array([1, 2], np.int32), np.array([1, 1])).value[0] == \
        np.iinfo(np.int32).min


def test_segment_errors():
    with pytest.raises(ValueError, match=r"ops\.segment_sum: segment_ids must be 1-D with one id "
                                         r"per entry of data's first axis \(3\); received "
                                         r"segment_ids of shape \(2,\)"):
        ops.segment_sum(np.ones(3), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ops\.segment_max: sorted=True promises sorted "
                                         r"segment_ids, but they are not sorted"):
        ops.segment_max(np.ones(3), np.array([1, 0, 2]), sorted=True)
    with pytest.raises(TypeError, match=r"ops\.segment_sum: segment_ids must be integers; "
                                        r"received dtype float32"):
        ops.segment_sum(np.ones(2), np.array([0.0, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"ops\.segment_sum: num_segments must be >= 0; "
                                         r"received num_segments=-2"):
        ops.segment_sum(np.ones(2), np.array([0, 1]), num_segments=-2)
