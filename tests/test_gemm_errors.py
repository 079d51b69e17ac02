"""Argument validation of minidl.ops.gemm: every rejected input raises the documented
exception, with a message that names the argument and echoes what was received, before any
pointer is touched (so out is left as it was); valid empty shapes work.
"""
import numpy as np
import pytest

from minidl._core._backend import gemm, matmul


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


def f64(*shape):
    return np.ones(shape, dtype=np.float64)


def writeable_strided(shape, strides, dtype=np.float64):
    """A writeable view with arbitrary byte strides over a private buffer."""
    base = np.zeros(64, dtype=dtype)
    return np.lib.stride_tricks.as_strided(base, shape=shape, strides=strides, writeable=True)


def read_only(x):
    x.flags.writeable = False
    return x


def misaligned_strides():
    """A float32 (2, 2) view whose row stride (6 bytes) is not a multiple of 4."""
    raw = np.zeros(32, dtype=np.uint8)
    return np.ndarray((2, 2), dtype=np.float32, buffer=raw, strides=(6, 4))


def misaligned_start():
    """A float32 (2, 2) array starting one byte past an aligned address."""
    return np.zeros(17, dtype=np.uint8)[1:].view(np.float32).reshape(2, 2)


_SQUARE = f64(4, 4)
_B_SQUARE = f64(4, 4)

# (id, call, exception, fragments the message must contain)
REJECTED = [
    ("a-list", lambda: gemm([[1.0]], f64(1, 1)), TypeError, ["a", "list"]),
    ("b-list", lambda: gemm(f64(1, 1), [[1.0]]), TypeError, ["b", "list"]),
    ("a-int", lambda: gemm(3, f64(1, 1)), TypeError, ["a", "int"]),
    ("a-numpy-scalar", lambda: gemm(np.float64(1), f64(1, 1)), TypeError, ["a", "float64"]),
    ("a-int64", lambda: gemm(np.ones((2, 2), np.int64), f64(2, 2)), TypeError, ["a", "int64"]),
    ("b-int32", lambda: gemm(f32(2, 2), np.ones((2, 2), np.int32)), TypeError, ["b", "int32"]),
    ("a-float16", lambda: gemm(np.ones((2, 2), np.float16), f32(2, 2)), TypeError,
     ["a", "float16"]),
    ("a-complex", lambda: gemm(np.ones((2, 2), np.complex128), f64(2, 2)), TypeError,
     ["a", "complex128"]),
    ("a-bool", lambda: gemm(np.ones((2, 2), bool), f64(2, 2)), TypeError, ["a", "bool"]),
    ("a-object", lambda: gemm(np.ones((2, 2), object), f64(2, 2)), TypeError, ["a", "object"]),
    ("a-big-endian", lambda: gemm(np.ones((2, 2), ">f8"), np.ones((2, 2), ">f8")), TypeError,
     ["a", ">f8"]),
    ("mixed-dtypes", lambda: gemm(f32(2, 3), f64(3, 2)), TypeError, ["float32", "float64"]),
    ("out-dtype", lambda: gemm(f32(2, 3), f32(3, 2), f64(2, 2)), TypeError,
     ["out", "float64"]),
    ("out-list", lambda: gemm(f64(2, 3), f64(3, 2), [[0.0, 0.0], [0.0, 0.0]]), TypeError,
     ["out", "list"]),
    ("alpha-str", lambda: gemm(f64(2, 2), f64(2, 2), alpha="2"), TypeError, ["alpha", "'2'"]),
    ("alpha-None", lambda: gemm(f64(2, 2), f64(2, 2), alpha=None), TypeError,
     ["alpha", "None"]),
    ("alpha-complex", lambda: gemm(f64(2, 2), f64(2, 2), alpha=1j), TypeError, ["alpha", "1j"]),
    ("beta-str", lambda: gemm(f64(2, 2), f64(2, 2), f64(2, 2), beta="1"), TypeError,
     ["beta", "'1'"]),
    ("beta-None", lambda: gemm(f64(2, 2), f64(2, 2), beta=None), TypeError, ["beta", "None"]),
    ("a-1d", lambda: gemm(f64(3), f64(3, 2)), ValueError, ["a", "(3,)"]),
    ("b-1d", lambda: gemm(f64(2, 3), f64(3)), ValueError, ["b", "(3,)"]),
    ("a-0d", lambda: gemm(np.array(1.0), f64(1, 1)), ValueError, ["a", "()"]),
    ("b-3d", lambda: gemm(f64(2, 3), f64(1, 3, 2)), ValueError, ["b", "(1, 3, 2)"]),
    ("out-3d", lambda: gemm(f64(2, 3), f64(3, 2), f64(1, 2, 2)), ValueError,
     ["out", "(1, 2, 2)"]),
    ("inner", lambda: gemm(f64(2, 3), f64(4, 2)), ValueError, ["(2, 3)", "(4, 2)"]),
    ("inner-trans-a", lambda: gemm(f64(2, 3), f64(3, 2), trans_a=True), ValueError,
     ["(3, 2)", "trans_a=True"]),
    ("inner-trans-b", lambda: gemm(f64(2, 3), f64(3, 2), trans_b=True), ValueError,
     ["(2, 3)", "trans_b=True"]),
    ("out-shape", lambda: gemm(f64(2, 3), f64(3, 4), f64(2, 5)), ValueError,
     ["out", "(2, 4)", "(2, 5)"]),
    ("out-transposed-shape", lambda: gemm(f64(2, 3), f64(3, 4), f64(4, 2)), ValueError,
     ["out", "(4, 2)"]),
    ("out-read-only", lambda: gemm(f64(2, 3), f64(3, 4), read_only(f64(2, 4))), ValueError,
     ["out", "read-only"]),
    ("out-broadcast", lambda: gemm(f64(2, 3), f64(3, 4), np.broadcast_to(f64(4), (2, 4))),
     ValueError, ["out"]),
    ("out-zero-stride", lambda: gemm(f64(3, 3), f64(3, 3), writeable_strided((3, 3), (0, 8))),
     ValueError, ["out", "(0, 8)"]),
    ("out-self-overlap", lambda: gemm(f64(3, 3), f64(3, 3), writeable_strided((3, 3), (8, 8))),
     ValueError, ["out", "(8, 8)"]),
    ("out-is-a", lambda: gemm(_SQUARE, _B_SQUARE, _SQUARE), ValueError, ["out", "overlap"]),
    ("out-is-b", lambda: gemm(_SQUARE, _B_SQUARE, _B_SQUARE), ValueError, ["out", "overlap"]),
    ("out-is-a-transposed", lambda: gemm(_SQUARE, _B_SQUARE, _SQUARE.T), ValueError,
     ["out", "overlap"]),
    ("out-part-of-b", lambda: gemm(f64(2, 4), _B_SQUARE[:, 1:3], _B_SQUARE[1:3, 1:3]),
     ValueError, ["out", "overlap"]),
    ("beta-without-out", lambda: gemm(f64(2, 2), f64(2, 2), beta=0.5), ValueError,
     ["beta=0.5", "out"]),
    # A misaligned a or b is copied (tests/test_alignment.py); an out cannot be.
    ("out-strides-not-itemsize", lambda: gemm(f32(2, 2), f32(2, 2), misaligned_strides()),
     ValueError, ["out must be aligned", "(6, 4)"]),
    ("out-misaligned", lambda: gemm(f32(2, 2), f32(2, 2), misaligned_start()), ValueError,
     ["out must be aligned", "4 bytes", "Received: out at address"]),
]


@pytest.mark.parametrize("call,exc,fragments", [r[1:] for r in REJECTED],
                         ids=[r[0] for r in REJECTED])
def test_rejected(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"


def test_overlap_with_a_partial_view_is_rejected():
    """out sharing only some elements with a (a window of the same buffer)."""
    buf = np.zeros((6, 6))
    a, out = buf[:4, :4], buf[2:6, 2:6]
    with pytest.raises(ValueError, match="overlap"):
        gemm(a, np.ones((4, 4)), out)


def test_rejected_call_leaves_out_untouched():
    """Validation happens before any write: a rejected out keeps its content."""
    a = np.arange(9.0).reshape(3, 3)
    out = a  # overlaps a
    before = out.copy()
    with pytest.raises(ValueError):
        gemm(a, np.ones((3, 3)), out)
    assert np.array_equal(out, before)
    out = np.full((3, 3), 5.0)
    with pytest.raises(TypeError):
        gemm(a, np.ones((3, 3)), out, alpha="x")
    assert np.array_equal(out, np.full((3, 3), 5.0))


def test_matmul_validates_like_gemm():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        matmul(f64(2, 3), f64(2, 3))
    with pytest.raises(TypeError, match="out"):
        matmul(f64(2, 3), f64(3, 2), f32(2, 2))


# ---- accepted edge cases ---------------------------------------------------------------------

def test_single_row_and_column_out_views_with_zero_strides_are_accepted():
    """x[None, :] and x[:, None] have a zero stride on a length-1 axis: no element repeats."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1, 5)), rng.standard_normal((5, 4))
    row = np.zeros(4)
    gemm(a, b, row[None, :])
    np.testing.assert_allclose(row, (a @ b)[0], rtol=1e-12)
    col = np.zeros(4)
    gemm(b.T, a.T, col[:, None])
    np.testing.assert_allclose(col, (a @ b)[0], rtol=1e-12)


@pytest.mark.parametrize("shape,strides", [((3, 3), (24, 8)), ((3, 2), (8, 24)),
                                           ((2, 3), (8, 16)), ((3, 3), (-24, 16))])
def test_unusual_but_distinct_out_strides_are_accepted(shape, strides):
    """Strides that interleave rows without any element landing twice are legal."""
    base = np.zeros(64)
    start = 40 if strides[0] < 0 else 0
    out = np.lib.stride_tricks.as_strided(base[start:], shape=shape, strides=strides,
                                          writeable=True)
    m, n = shape
    a, b = np.ones((m, 2)), np.ones((2, n))
    gemm(a, b, out)
    assert np.array_equal(out, np.full(shape, 2.0))


@pytest.mark.parametrize("n0,n1,s0,s1", [(n0, n1, s0, s1) for n0 in (1, 2, 3, 5)
                                         for n1 in (1, 2, 4) for s0 in (-3, 0, 1, 2, 3, 5)
                                         for s1 in (-2, 0, 1, 2, 4)])
def test_out_overlap_detection_is_exact(n0, n1, s0, s1):
    """out is rejected exactly when two of its elements share an address (brute force)."""
    offsets = [i * s0 + j * s1 for i in range(n0) for j in range(n1)]
    overlapping = len(set(offsets)) < len(offsets)
    base = np.zeros(128)
    start = 64
    out = np.lib.stride_tricks.as_strided(base[start:], shape=(n0, n1),
                                          strides=(s0 * 8, s1 * 8), writeable=True)
    a, b = np.ones((n0, 3)), np.ones((3, n1))
    if overlapping:
        with pytest.raises(ValueError, match="overlap"):
            gemm(a, b, out)
    else:
        gemm(a, b, out)
        assert np.array_equal(out, np.full((n0, n1), 3.0))


EMPTY = [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (0, 3, 0), (3, 0, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)], ids=["NN", "TT"])
@pytest.mark.parametrize("mkn", EMPTY, ids=lambda s: "x".join(map(str, s)))
def test_empty_shapes(mkn, trans_a, trans_b, dtype):
    """M = 0, N = 0 or K = 0 are valid: out is (M, N); with K = 0, out = beta * out."""
    m, k, n = mkn
    a = np.ones((k, m) if trans_a else (m, k), dtype)
    b = np.ones((n, k) if trans_b else (k, n), dtype)
    result = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert result.shape == (m, n) and result.dtype == dtype
    assert np.array_equal(result, np.zeros((m, n), dtype))
    out = np.full((m, n), np.nan, dtype)
    assert gemm(a, b, out, trans_a=trans_a, trans_b=trans_b) is out
    assert np.array_equal(out, np.zeros((m, n), dtype))  # beta = 0: the NaN is not read
    out = np.full((m, n), 3.0, dtype)
    gemm(a, b, out, alpha=2.0, beta=-0.5, trans_a=trans_a, trans_b=trans_b)
    assert np.array_equal(out, np.full((m, n), -1.5, dtype))


def test_integer_alpha_beta_and_numpy_scalars_are_accepted():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    out = np.ones((2, 2), np.float32)
    gemm(a, b, out, alpha=2, beta=np.float32(0.5))
    assert np.array_equal(out, np.full((2, 2), 6.5, np.float32))
    gemm(a, b, out, alpha=np.int64(1), beta=np.float64(0))
    assert np.array_equal(out, np.full((2, 2), 3.0, np.float32))


def test_non_contiguous_read_only_operands_are_accepted():
    """Only out must be writeable; a and b may be read-only views (e.g. of a mapped file)."""
    a = read_only(np.arange(12.0).reshape(3, 4))[:, ::2]
    b = read_only(np.ones((2, 5)))
    assert np.array_equal(gemm(a, b), a @ b)
