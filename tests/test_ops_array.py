"""minidl.ops array ops (linalg.py, shape.py, creation.py): forward against numpy, gradients
against float64 central differences and PyTorch autograd, and the errors bad input gets."""
import numpy as np
import pytest

from minidl import ops
from minidl.autodiff import GradientTape, Tensor, Variable
from minidl.ops import linalg

from op_checks import check_grads, rand, torch_or_skip, vjp

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---- matmul ---------------------------------------------------------------------------------

MATMUL_SHAPES = [((3, 4), (4, 5)),          # GEMM
                 ((2, 3, 4), (4, 5)),       # batched @ 2-D: one folded GEMM
                 ((2, 1, 3, 4), (4, 2)),    # folded too
                 ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),   # 1-D operands, numpy
                 ((2, 3, 4), (2, 4, 5)),    # batched
                 ((2, 1, 3, 4), (5, 4, 2)),   # broadcast batch axes
                 ((3, 4), (2, 4, 5)),       # 2-D @ batched
                 ((2, 3, 4), (4,))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_forward_and_gradients(sa, sb):
    torch = torch_or_skip()
    a, b = rand(*sa, seed=1), rand(*sb, seed=2)
    y = check_grads(ops.matmul, a, b, torch_fn=torch.matmul)
    np.testing.assert_allclose(y.value, a @ b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sa,sb,calls", [((3, 4), (4, 5), 3), ((2, 3, 4), (4, 5), 3),
                                         ((4,), (4, 5), 0), ((2, 3, 4), (2, 4, 5), 0)])
def test_matmul_runs_on_the_gemm_where_it_applies(monkeypatch, sa, sb, calls):
    seen = []

    def counting_gemm(*args, **kwargs):
        seen.append(args[0].shape)
        return real(*args, **kwargs)
    real = linalg.gemm
    monkeypatch.setattr(linalg, "gemm", counting_gemm)
    a, b = rand(*sa, seed=3, dtype=np.float32), rand(*sb, seed=4, dtype=np.float32)
    y, (da, db), w = vjp(ops.matmul, [a, b])
    assert len(seen) == calls     # forward + both gradients, or none
    assert y.dtype == da.dtype == db.dtype == np.float32
    # float32 against the float64 computation (checked against torch above).
    y64, (da64, db64), _ = vjp(ops.matmul, [a.astype(np.float64), b.astype(np.float64)],
                               w=w.astype(np.float64))
    for got, want in ((y.value, y64.value), (da, da64), (db, db64)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_gemm_gradient_of_a_broadcast_seed():
    # The seed of sum(a @ b) reaches matmul as a stride-0 broadcast array.
    a, b = rand(5, 3, seed=5, dtype=np.float32), rand(3, 2, seed=6, dtype=np.float32)
    ta, tb = Tensor(a), Tensor(b)
    with GradientTape() as tape:
        tape.watch([ta, tb])
        loss = ops.sum(ops.matmul(ta, tb))
    da, db = tape.gradient(loss, [ta, tb])
    np.testing.assert_allclose(da, np.ones((5, 2)) @ b.T, rtol=1e-6)
    np.testing.assert_allclose(db, a.T @ np.ones((5, 2)), rtol=1e-6)


def test_matmul_dtypes_follow_keras():
    i = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert ops.matmul(i, np.ones((3, 2), np.float32)).dtype == np.float32
    assert ops.matmul(i, i.T).dtype == np.int32
    assert ops.matmul(np.ones((2, 3), np.float32), np.ones((3, 2))).dtype == np.float64
    np.testing.assert_array_equal(ops.matmul(i, i.T).value, i @ i.T)
    np.testing.assert_array_equal((Tensor(i) @ i.T).value, i @ i.T)


@pytest.mark.parametrize("sa,sb,pattern", [
    ((3, 4), (5, 2), r"ops\.matmul: shapes \(3, 4\) and \(5, 2\) do not fit"),
    ((3, 4), (5,), r"ops\.matmul: shapes \(3, 4\) and \(5,\) do not fit"),
    ((2, 3, 4), (3, 4, 5), r"ops\.matmul: the batch axes of shapes \(2, 3, 4\) and "
                           r"\(3, 4, 5\)"),
    ((), (3,), r"ops\.matmul takes tensors of rank >= 1; received shapes \(\) and \(3,\)")])
def test_matmul_shape_errors_name_the_op_and_both_shapes(sa, sb, pattern):
    for dtype in (np.float32, np.int32):
        with pytest.raises(ValueError, match=pattern):
            ops.matmul(np.ones(sa, dtype), np.ones(sb, dtype))


# ---- dot, tensordot, outer ----------------------------------------------------------------

@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3, 4)), ((2, 3, 4), (4,)),
                                   ((2, 3, 4), (5, 4, 6)), ((), (3,)), ((2, 3), ())])
def test_dot_is_numpy_dot(sa, sb):
    a, b = rand(*sa, seed=7), rand(*sb, seed=8)
    y = check_grads(ops.dot, a, b)
    np.testing.assert_allclose(y.value, np.dot(a, b), rtol=1e-12)


@pytest.mark.parametrize("sa,sb,axes", [((3, 4), (4, 5), 1), ((2, 3, 4), (3, 4, 5), 2),
                                        ((3, 2, 4), (2, 5, 3), ([0, 1], [2, 0])),
                                        ((2, 3), (4,), 0), ((2, 3, 4), (4, 2), (-1, 0))])
def test_tensordot_against_numpy_and_torch(sa, sb, axes):
    torch = torch_or_skip()
    a, b = rand(*sa, seed=9), rand(*sb, seed=10)
    taxes = axes if isinstance(axes, int) else [[int(i) for i in np.atleast_1d(x)]
                                                for x in axes]
    y = check_grads(lambda x, z: ops.tensordot(x, z, axes), a, b,
                    torch_fn=lambda x, z: torch.tensordot(x, z, taxes))
    np.testing.assert_allclose(y.value, np.tensordot(a, b, axes), rtol=1e-12, atol=1e-12)


def test_tensordot_errors():
    with pytest.raises(ValueError, match=r"ops\.tensordot: shapes \(3, 4\) and \(5, 2\)"):
        ops.tensordot(np.ones((3, 4)), np.ones((5, 2)), 1)
    with pytest.raises(ValueError, match="axes=3 must be between 0"):
        ops.tensordot(np.ones((3, 4)), np.ones((4, 2)), 3)
    with pytest.raises(ValueError, match="out of range or repeated"):
        ops.tensordot(np.ones((3, 4)), np.ones((4, 2)), ([2], [0]))


def test_outer():
    torch = torch_or_skip()
    a, b = rand(3, seed=11), rand(4, seed=12)
    y = check_grads(ops.outer, a, b, torch_fn=torch.outer)
    np.testing.assert_allclose(y.value, np.outer(a, b))
    m = rand(2, 2, seed=13)
    check_grads(ops.outer, m, b)   # flattens, as numpy
    assert ops.outer(m, b).shape == (4, 4)


# ---- einsum ---------------------------------------------------------------------------------

EINSUM = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
          ("bi,bi->b", [(3, 4), (3, 4)]), ("ij->ji", [(3, 4)]),
          ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
          ("bhqk,bhkd->bhqd", [(2, 2, 3, 5), (2, 2, 5, 4)]),
          ("bij,jk->bik", [(2, 3, 4), (4, 5)]), ("ij,kj->ik", [(3, 4), (5, 4)]),
          ("i,j->ij", [(3,), (4,)]), ("i,i->", [(4,), (4,)]), ("ij->", [(3, 4)]),
          ("ij,jk", [(3, 4), (4, 5)]), ("ba,ab", [(3, 4), (4, 3)]),
          ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
          ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
          ("abc,cd->abd", [(2, 3, 4), (4, 5)]), ("ijk->kji", [(2, 3, 4)]),
          ("ij,ij->ij", [(3, 4), (3, 4)]), ("ij,j->i", [(3, 4), (4,)])]


@pytest.mark.parametrize("spec,shapes", EINSUM, ids=[s for s, _ in EINSUM])
def test_einsum_against_numpy_and_torch(spec, shapes):
    torch = torch_or_skip()
    arrays = [rand(*s, seed=20 + i) for i, s in enumerate(shapes)]
    y = check_grads(lambda *xs: ops.einsum(spec, *xs), *arrays,
                    torch_fn=lambda *xs: torch.einsum(spec, *xs))
    np.testing.assert_allclose(y.value, np.einsum(spec, *arrays), rtol=1e-12, atol=1e-12)


EINSUM_NUMPY_ONLY = [("ii->", [(3, 3)]), ("ii->i", [(3, 3)]), ("iij->j", [(3, 3, 2)]),
                     ("ii", [(4, 4)]), ("ij,ij->i", [(3, 1), (3, 4)]),
                     ("...i,...i->...", [(2, 3), (3,)]), ("i...->...", [(2, 3)]),
                     ("ij,jk->", [(2, 3), (3, 2)]), ("ijj,jk->ik", [(2, 3, 3), (3, 2)])]


@pytest.mark.parametrize("spec,shapes", EINSUM_NUMPY_ONLY, ids=[s for s, _ in EINSUM_NUMPY_ONLY])
def test_einsum_diagonals_and_broadcasting(spec, shapes):
    arrays = [rand(*s, seed=30 + i) for i, s in enumerate(shapes)]
    y = check_grads(lambda *xs: ops.einsum(spec, *xs), *arrays)
    np.testing.assert_allclose(y.value, np.einsum(spec, *arrays), rtol=1e-12, atol=1e-12)


def test_einsum_dtypes():
    a32, b32 = rand(2, 3, dtype=np.float32), rand(3, 4, seed=2, dtype=np.float32)
    assert ops.einsum("ij,jk->ik", a32, b32).dtype == np.float32
    assert ops.einsum("ij,jk->ik", np.ones((2, 3), np.int32), b32).dtype == np.float32
    out = ops.einsum("ij,jk->ik", np.ones((2, 3), np.int32), np.ones((3, 4), np.int32))
    np.testing.assert_array_equal(out.value, np.full((2, 4), 3))


@pytest.mark.parametrize("spec,shapes,pattern", [
    ("ij,jk->ik", [(3, 4)], r"name 2 operand\(s\); received 1"),
    ("ij,jk->ik", [(3, 4), (5, 6)], r"index 'j' of 'ij,jk->ik' has size 4 in operand 0 "
                                    r"and 5 in operand 1"),
    ("ijk->i", [(3, 4)], r"operand 0 has shape \(3, 4\) \(2 axes\); its subscripts 'ijk'"),
    ("i1->i", [(3, 4)], r"invalid term 'i1'"),
    ("ij->ii", [(3, 4)], r"output 'ii'"),
    ("ij->iz", [(3, 4)], r"names indices no operand has"),
    ("...i->i", [(2, 3)], r"no '\.\.\.' to keep them")])
def test_einsum_refuses_bad_subscripts(spec, shapes, pattern):
    with pytest.raises(ValueError, match=r"ops\.einsum.*" + pattern):
        ops.einsum(spec, *[np.ones(s) for s in shapes])


# ---- transpose and rearranging shape ops ------------------------------------------------------

REARRANGE = [
    (lambda x: ops.transpose(x), lambda x: x.T, lambda t: t.permute(2, 1, 0)),
    (lambda x: ops.transpose(x, (1, -1, 0)), lambda x: np.transpose(x, (1, 2, 0)),
     lambda t: t.permute(1, 2, 0)),
    (lambda x: x.T, lambda x: x.T, lambda t: t.permute(2, 1, 0)),
    (lambda x: ops.reshape(x, (6, -1)), lambda x: x.reshape(6, -1), lambda t: t.reshape(6, -1)),
    (lambda x: ops.reshape(x, 24), lambda x: x.reshape(24), lambda t: t.reshape(24)),
    (lambda x: ops.ravel(x), np.ravel, lambda t: t.reshape(-1)),
    (lambda x: ops.expand_dims(x, 1), lambda x: x[:, None], lambda t: t.unsqueeze(1)),
    (lambda x: ops.expand_dims(x, (0, -1)), lambda x: x[None, ..., None],
     lambda t: t[None, ..., None]),
    (lambda x: ops.squeeze(ops.expand_dims(x, 0)), lambda x: x, lambda t: t),
    (lambda x: ops.squeeze(ops.reshape(x, (2, 1, 3, 4)), 1), lambda x: x, lambda t: t),
    (lambda x: ops.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, 2),
     lambda t: t.transpose(0, 2)),
    (lambda x: ops.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1),
     lambda t: t.movedim(0, -1)),
    (lambda x: ops.moveaxis(x, [0, 1], [2, 0]), lambda x: np.moveaxis(x, [0, 1], [2, 0]),
     lambda t: t.movedim([0, 1], [2, 0])),
    (lambda x: ops.broadcast_to(ops.reshape(x, (2, 1, 3, 4)), (5, 2, 6, 3, 4)),
     lambda x: np.broadcast_to(x.reshape(2, 1, 3, 4), (5, 2, 6, 3, 4)),
     lambda t: t.reshape(2, 1, 3, 4).expand(5, 2, 6, 3, 4)),
    (lambda x: ops.tile(x, 2), lambda x: np.tile(x, 2), lambda t: t.tile(2)),
    (lambda x: ops.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3)),
     lambda t: t.tile(2, 1, 3)),
    (lambda x: ops.tile(x, (2, 1, 1, 2)), lambda x: np.tile(x, (2, 1, 1, 2)),
     lambda t: t.tile(2, 1, 1, 2)),
    (lambda x: ops.repeat(x, 2, axis=1), lambda x: np.repeat(x, 2, axis=1),
     lambda t: t.repeat_interleave(2, dim=1)),
    (lambda x: ops.repeat(x, 3), lambda x: np.repeat(x, 3),
     lambda t: t.reshape(-1).repeat_interleave(3)),
    (lambda x: ops.repeat(x, [2, 0, 1], axis=1), lambda x: np.repeat(x, [2, 0, 1], axis=1),
     None),
    (lambda x: ops.repeat(x, [0, 3, 1, 0], axis=-1), lambda x: np.repeat(x, [0, 3, 1, 0], -1),
     None),
]


@pytest.mark.parametrize("case", range(len(REARRANGE)))
def test_rearranging_ops(case):
    torch = torch_or_skip()
    fn, ref, torch_ref = REARRANGE[case]
    x = rand(2, 3, 4, seed=case)
    y = check_grads(fn, x, torch_fn=torch_ref)
    np.testing.assert_array_equal(y.value, ref(x))
    if torch_ref is None:   # (numpy's repeat with counts per element: no torch twin here)
        t = torch.tensor(x, requires_grad=True)
        counts = torch.tensor([2, 0, 1] if case == len(REARRANGE) - 2 else [0, 3, 1, 0])
        torch.repeat_interleave(t, counts, dim=1 if len(counts) == 3 else -1).sum().backward()
        _, (g,), _ = vjp(fn, [x], w=np.ones(ref(x).shape))
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


def test_views_not_copies():
    x = Tensor(rand(2, 3, 4))
    for y in (ops.reshape(x, (6, 4)), ops.transpose(x), ops.expand_dims(x, 0), x[0, 1:],
              ops.squeeze(x[:, :1]), ops.swapaxes(x, 0, 1), ops.moveaxis(x, 0, 2),
              ops.split(x, 2, axis=2)[1], ops.ravel(x), ops.cast(x, "float64")):
        assert np.shares_memory(y.value, x.value)


def test_shape_returns_a_tuple_of_ints():
    assert ops.shape(Tensor(np.ones((2, 3)))) == (2, 3)
    assert ops.shape(np.ones(4)) == (4,)
    assert ops.shape([[1, 2], [3, 4]]) == (2, 2)
    assert ops.shape(3.0) == ()
    assert all(type(n) is int for n in ops.shape(np.ones((2, 3))))


def test_shape_op_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"ops\.reshape: cannot reshape a tensor of shape "
                                         r"\(2, 3\) \(6 elements\) into shape \(4, 2\)"):
        ops.reshape(x, (4, 2))
    with pytest.raises(ValueError, match=r"ops\.squeeze: axis=0 must name axes of size 1 of "
                                         r"a tensor of shape \(2, 3\)"):
        ops.squeeze(x, 0)
    with pytest.raises(ValueError, match=r"ops\.broadcast_to: a tensor of shape \(2, 3\) "
                                         r"cannot be broadcast to shape \(2, 4\)"):
        ops.broadcast_to(x, (2, 4))
    with pytest.raises(ValueError, match=r"ops\.expand_dims: axis=3"):
        ops.expand_dims(x, 3)
    with pytest.raises(ValueError, match=r"ops\.swapaxes: axis2=2 is out of range"):
        ops.swapaxes(x, 0, 2)
    with pytest.raises(ValueError, match=r"ops\.transpose: axes=\(0, 0\)"):
        ops.transpose(x, (0, 0))
    with pytest.raises(ValueError, match=r"ops\.repeat: repeats has 2 entries"):
        ops.repeat(x, [1, 2], axis=1)
    with pytest.raises(ValueError, match=r"ops\.tile: repeats must be non-negative"):
        ops.tile(x, (-1, 2))


# ---- concatenate, stack, split ---------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(axis):
    torch = torch_or_skip()
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)],
              -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    arrays = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    y = check_grads(lambda *xs: ops.concatenate(list(xs), axis=axis), *arrays,
                    torch_fn=lambda *xs: torch.cat(xs, dim=axis))
    np.testing.assert_array_equal(y.value, np.concatenate(arrays, axis))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    torch = torch_or_skip()
    arrays = [rand(2, 3, seed=i) for i in range(3)]
    y = check_grads(lambda *xs: ops.stack(xs, axis=axis), *arrays,
                    torch_fn=lambda *xs: torch.stack(xs, dim=axis))
    np.testing.assert_array_equal(y.value, np.stack(arrays, axis))


def test_concatenate_and_stack_dtypes_and_constants():
    f, i = np.ones((2, 2), np.float32), np.ones((1, 2), np.int32)
    assert ops.concatenate([f, i]).dtype == np.float32
    assert ops.concatenate([i, i]).dtype == np.int32
    assert ops.stack([f, f.astype(np.float64)]).dtype == np.float64
    # A constant among the inputs gets no gradient; the tensors still do.
    x = rand(2, 2)
    y, (g,), _ = vjp(lambda t: ops.concatenate([np.zeros((3, 2)), t, t]), [x],
                     w=np.arange(14.0).reshape(7, 2))
    np.testing.assert_array_equal(g, np.arange(6.0, 10).reshape(2, 2)
                                  + np.arange(10.0, 14).reshape(2, 2))


def test_concatenate_and_stack_errors():
    with pytest.raises(ValueError, match=r"ops\.concatenate: shapes must agree except along "
                                         r"axis 0; received shapes \(2, 3\) \(xs\[0\]\) and "
                                         r"\(2, 4\) \(xs\[1\]\)"):
        ops.concatenate([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match=r"ops\.concatenate: shapes .* \(2, 3\) .* \(2, 3, 1\)"):
        ops.concatenate([np.ones((2, 3)), np.ones((2, 3, 1))], axis=1)
    with pytest.raises(ValueError, match=r"ops\.concatenate: axis=2 is out of range"):
        ops.concatenate([np.ones((2, 3))], axis=2)
    with pytest.raises(ValueError, match=r"ops\.concatenate takes a non-empty list"):
        ops.concatenate([])
    with pytest.raises(ValueError, match=r"ops\.stack: all tensors must have one shape; "
                                         r"received shapes \(2,\) \(x\[0\]\) and \(3,\)"):
        ops.stack([np.ones(2), np.ones(3)])


@pytest.mark.parametrize("sections,axis", [(3, 0), ([2, 5], 1), ([1, 1, 4], -1), (1, 1),
                                           ([-2], 0)])
def test_split_matches_numpy_and_concatenate_undoes_it(sections, axis):
    x = rand(6, 6, seed=4)
    pieces = ops.split(x, sections, axis=axis)
    want = np.split(x, sections, axis=axis)
    assert isinstance(pieces, list) and len(pieces) == len(want)
    for p, w in zip(pieces, want):
        np.testing.assert_array_equal(p.value, w)
    np.testing.assert_array_equal(ops.concatenate(pieces, axis=axis).value, x)
    # Gradients: pieces rejoined in reverse order (every element moves), and one piece
    # alone (the others get zeros).
    check_grads(lambda t: ops.concatenate(ops.split(t, sections, axis)[::-1], axis), x)
    check_grads(lambda t: ops.split(t, sections, axis)[-1], x)


def test_split_againsttorch_or_skip():
    torch = torch_or_skip()
    x = rand(4, 7, seed=5)
    check_grads(lambda t: ops.concatenate([p * (i + 1) for i, p in
                                           enumerate(ops.split(t, [2, 3], axis=1))], 1), x,
                torch_fn=lambda t: torch.cat([p * (i + 1) for i, p in
                                              enumerate(torch.split(t, [2, 1, 4], 1))], 1))


def test_split_errors():
    with pytest.raises(ValueError, match=r"ops\.split: axis 0 of a tensor of shape \(5, 2\) "
                                         r"\(length 5\) does not split into 2 equal pieces"):
        ops.split(np.ones((5, 2)), 2)


# ---- indexing -------------------------------------------------------------------------------

X_SHAPE = (4, 5, 6)
MASK = rand(*X_SHAPE, seed=99) > 0
KEYS = {  # name: (key, torch can take it)
    "int": (1, True), "negative int": (-1, True), "ints": ((0, 1, 2), True),
    "slice": (slice(1, 3), True), "negative step": (slice(None, None, -1), False),
    "steps": ((slice(3, 0, -2), slice(None), slice(1, None, 2)), False),
    "ellipsis": ((Ellipsis, 2), True), "none": ((None, 1, slice(1, 4)), True),
    "ellipsis none": ((slice(3, 0, -1), Ellipsis, None), False),
    "bool mask": (MASK, True), "bool axis": (np.array([True, False, True, True]), True),
    "bool second axis": ((slice(None), np.array([True, False, True, False, True])), True),
    "repeated ints": ([0, 0, 3, 0], True),
    "int array 2-d": (np.array([[1, 1], [2, 0]]), True),
    "int arrays": ((slice(None), [4, 4, 0], [1, 1, 5]), True),
    "ints mixed": ((2, [1, 1], slice(None, None, -2)), False),
    "tensor": (Tensor(np.array([3, 3, 1])), True),
    "tensor slice bounds": ((slice(Tensor(np.int32(1)), Tensor(np.int32(3))), 0), False),
    "empty list": ([], False),
}


@pytest.mark.parametrize("name", list(KEYS))
def test_get_item(name):
    torch = torch_or_skip()
    key, torch_ok = KEYS[name]
    x = rand(*X_SHAPE, seed=6)
    np_key = key.value if isinstance(key, Tensor) else key

    def torch_key():
        k = key.value if isinstance(key, Tensor) else key
        parts = k if isinstance(k, tuple) else (k,)
        return tuple(torch.from_numpy(p) if isinstance(p, np.ndarray) else p for p in parts)
    y = check_grads(lambda t: t[key], x,
                    torch_fn=(lambda t: t[torch_key()]) if torch_ok else None)
    np.testing.assert_array_equal(y.value, x[np_key])
    assert ops.get_item(x, key).shape == x[np_key].shape


def test_get_item_repeated_indices_accumulate():
    x = np.arange(5.0)
    _, (g,), _ = vjp(lambda t: t[[1, 1, 1, 4]], [x], w=np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(g, [0, 6, 0, 0, 4])


def test_get_item_errors():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"ops\.get_item: .*out of bounds.*shape \(2, 3\)"):
        x[5]
    with pytest.raises(IndexError, match=r"ops\.get_item: index arrays must hold integers"):
        x[np.array([0.5])]


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_take(axis):
    torch = torch_or_skip()
    x = rand(3, 4, seed=7)
    idx = np.array([[0, 2], [2, -1]]) if axis is not None else np.array([11, 0, 11, 5])
    y = check_grads(lambda t: ops.take(t, idx, axis=axis), x,
                    torch_fn=(lambda t: torch.take(t, torch.from_numpy(idx)))
                    if axis is None else None)
    np.testing.assert_array_equal(y.value, np.take(x, idx, axis=axis))


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_take_along_axis(axis):
    torch = torch_or_skip()
    x = rand(3, 4, seed=8)
    idx = {None: np.array([0, 11, 11, 3]), 0: np.array([[0, 2, 2, 1], [2, 2, 0, 0]]),
           1: np.array([[3], [0], [3]])}[axis]
    y = check_grads(lambda t: ops.take_along_axis(t, idx, axis=axis), x,
                    torch_fn=lambda t: torch.take_along_dim(t, torch.from_numpy(idx), axis))
    np.testing.assert_array_equal(y.value, np.take_along_axis(x, idx, axis=axis))


def test_take_errors():
    with pytest.raises(IndexError, match=r"ops\.take: .*out of bounds.*shape \(3, 4\)"):
        ops.take(np.ones((3, 4)), [7], axis=1)
    with pytest.raises(TypeError, match=r"ops\.take: indices must be integers"):
        ops.take(np.ones(3), np.array([1.0]))
    with pytest.raises(ValueError, match=r"ops\.take_along_axis: indices of shape \(2,\) must "
                                         r"have the rank of x \(shape \(3, 4\)\)"):
        ops.take_along_axis(np.ones((3, 4)), np.array([0, 1]), axis=1)


# ---- creation and conversion --------------------------------------------------------------

def test_creation_defaults_follow_keras():
    assert ops.zeros((2, 3)).dtype == np.float32 and ops.zeros(4).shape == (4,)
    assert ops.ones((2,), dtype="int32").dtype == np.int32
    np.testing.assert_array_equal(ops.ones((2, 2)).value, np.ones((2, 2)))
    i = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert ops.zeros_like(i).dtype == np.int32 and ops.ones_like(i, "float32").dtype == np.float32
    np.testing.assert_array_equal(ops.ones_like(i).value, np.ones((2, 3)))
    f = ops.full((2, 3), 7)
    assert f.dtype == np.float32 and (f.value == 7).all()
    assert ops.full_like(i, 2.7).dtype == np.int32
    assert (ops.full_like(i, 2.5, dtype="float64").value == 2.5).all()
    assert ops.arange(5).dtype == np.int32
    np.testing.assert_array_equal(ops.arange(2, 11, 3).value, [2, 5, 8])
    assert ops.arange(0.0, 1.0, 0.25).dtype == np.float32
    np.testing.assert_array_equal(ops.arange(1, 0, -0.5).value, [1.0, 0.5])
    assert ops.arange(3, dtype="float64").dtype == np.float64
    np.testing.assert_array_equal(ops.eye(2, 3, k=1).value, np.eye(2, 3, 1))
    assert ops.eye(3).dtype == np.float32
    np.testing.assert_array_equal(ops.identity(3, "int32").value, np.eye(3, dtype=np.int32))
    with pytest.raises(ValueError, match=r"ops\.arange: step must not be 0"):
        ops.arange(0, 3, 0)


def test_one_hot():
    ids = np.array([[0, 2], [-1, 3]])
    out = ops.one_hot(ids, 3)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.value, [[[1, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 0, 0]]])
    first = ops.one_hot(ids, 3, axis=0, dtype="int32")
    assert first.dtype == np.int32
    np.testing.assert_array_equal(first.value, np.moveaxis(out.value, -1, 0))
    np.testing.assert_array_equal(ops.one_hot(Tensor(np.array([1], np.int32)), 2, axis=1).value,
                                  [[0, 1]])
    with pytest.raises(TypeError, match=r"ops\.one_hot: x must hold integer class ids; "
                                        r"received dtype float32"):
        ops.one_hot(np.array([1.0], np.float32), 3)


def test_cast():
    x = rand(3, 2)
    check_grads(lambda t: ops.cast(ops.cast(t, "float64"), "float64") * 1.5, x)
    np.testing.assert_array_equal(ops.cast(np.array([1.7, -1.2]), "int32").value, [1, -1])
    assert ops.cast([1, 0], "bool").dtype == np.bool_
    # float64 -> float32: the gradient passes through, back in the input's dtype.
    y, (g,), w = vjp(lambda t: ops.cast(t, "float32"), [x])
    assert y.dtype == np.float32 and g.dtype == np.float64
    np.testing.assert_array_equal(y.value, x.astype(np.float32))
    np.testing.assert_array_equal(g, w.astype(np.float64))
    # A cast of a variable is a snapshot: the optimizer's in-place updates do not reach it.
    v = Variable(np.zeros(2, np.float32))
    snapshot = ops.cast(v, "float32")
    v.assign_add(1.0)
    np.testing.assert_array_equal(snapshot.value, [0, 0])


def test_gradient_through_an_integer_cast_is_an_error_naming_cast():
    x = Tensor(rand(3))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.cast(ops.cast(x, "int32"), "float32") * 2.0
    with pytest.raises(ValueError, match=r"through 'cast', which has no gradient"):
        tape.gradient(y, x)


def test_convert_to_tensor_and_numpy():
    a = np.ones((2, 2), np.float32)
    t = ops.convert_to_tensor(a)
    assert isinstance(t, Tensor) and t.value is a
    assert ops.convert_to_tensor(t) is t
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32
    assert ops.convert_to_tensor([1.5]).dtype == np.float32
    n = ops.convert_to_numpy(t)
    assert isinstance(n, np.ndarray) and not np.shares_memory(n, a)
    with pytest.raises(ValueError, match=r"no sparse or ragged tensors"):
        ops.convert_to_tensor(a, sparse=True)
    # A dtype conversion of a tensor records, so the gradient still flows.
    x = Tensor(rand(3))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.convert_to_tensor(x, "float32")
    np.testing.assert_array_equal(tape.gradient(y, x), np.ones(3))


def test_full_passes_its_gradient_to_a_tensor_fill_value():
    check_grads(lambda v: ops.full((2, 3), v, dtype="float64"), rand(3, seed=2))
    check_grads(lambda v: ops.full_like(np.ones((4, 1)), v), rand(1, seed=3))
    # zeros_like / ones_like do not depend on their input's values: no gradient.
    x = Tensor(rand(2))
    with GradientTape() as tape:
        tape.watch(x)
        y = ops.zeros_like(x)
    assert tape.gradient(y, x) is None


def test_indexing_and_matmul_in_a_custom_computation():
    """The ops together, as a user layer uses them: attention over a gathered batch."""
    torch = torch_or_skip()
    q, k, table = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(6, 4, seed=3)
    ids = np.array([0, 5, 5, 2, 1])

    def mine(q, k, table):
        scores = ops.einsum("bqd,bkd->bqk", q, k + table[ids])
        return ops.matmul(scores, table[1:])[:, ::2].T

    def theirs(q, k, table):
        scores = torch.einsum("bqd,bkd->bqk", q, k + table[torch.from_numpy(ids)])
        return torch.matmul(scores, table[1:])[:, ::2].permute(2, 1, 0)
    check_grads(mine, q, k, table, torch_fn=theirs)
