"""Correctness of minidl.ops.gemm against numpy, on every kernel architecture this CPU runs.

Two kinds of check, because each catches what the other cannot:

* Exact: small-integer inputs (and alpha/beta that are small dyadic numbers) make every product
  and partial sum exactly representable, so the result must equal numpy's bit for bit whatever
  the summation order or FMA use. One dropped, doubled or misplaced term shows up at once.
* Tolerance: standard-normal inputs against a float64 reference, within the rigorous
  forward-error bound 2 (K + 2) eps (|alpha| |A| |B| + |beta| |C0|). This catches what
  integers cannot, such as float64 work done in float32.

The shapes sit on and around the register tiles (generic 4x8; avx2 6x16 / 6x8; avx512 12x32 /
12x16) and the cache blocks (kc 256/384, mc, nc) of every architecture, on both the direct
(unpacked) and the packed path of the driver, plus the workloads that matter most to us:
the MLP training shapes and a convolution as GEMM. Shapes are written M x K x N.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from minidl._core import _backend
from minidl._core._backend import gemm, matmul

ARCHS = _backend.supported_archs()
DTYPES = (np.float32, np.float64)
TRANS = ((False, False), (True, False), (False, True), (True, True))


@pytest.fixture(scope="module", autouse=True)
def single_threaded_numpy():
    """numpy's BLAS computes the references. Its idle threads spin-wait, as minidl's OpenMP
    threads do, and on a small machine the two pools fight for the cores: limiting BLAS to
    one thread halves the run time. threadpoolctl is optional (the test extra has it)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(params=ARCHS)
def arch(request):
    """Run the test on one kernel architecture, then restore the one active before: 'auto',
    or what MINIDL_ARCH selected for the whole run."""
    previous = _backend.get_arch()
    _backend.set_arch(request.param)
    try:
        yield request.param
    finally:
        _backend.set_arch(previous)


@pytest.fixture
def restore_threads():
    saved = minidl.get_num_threads()
    try:
        yield
    finally:
        minidl.set_num_threads(saved)


def _ids(shape):
    return "x".join(map(str, shape))


# ---- operands and references ---------------------------------------------------------------

def int_matrix(rng, shape, dtype):
    """Small integers: every product and sum below 2**24 is exact in float32."""
    return rng.integers(-4, 5, size=shape).astype(dtype)


def normal_matrix(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def operands(make, rng, m, k, n, dtype, trans_a, trans_b):
    """(a, b) as stored, i.e. already transposed in memory where the flag says so."""
    a = make(rng, (k, m) if trans_a else (m, k), dtype)
    b = make(rng, (n, k) if trans_b else (k, n), dtype)
    return a, b


def op(x, trans):
    return x.T if trans else x


def exact_reference(a, b, alpha=1.0, beta=0.0, c0=None):
    """alpha * a @ b + beta * c0 in float64 (exact for the integer inputs used here)."""
    ref = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    if beta != 0:
        ref = ref + beta * c0.astype(np.float64)
    return ref.astype(a.dtype)


def assert_exact(result, a, b, alpha=1.0, beta=0.0, c0=None, context=""):
    expected = exact_reference(a, b, alpha, beta, c0)
    assert result.dtype == a.dtype
    assert result.shape == expected.shape, context
    if not np.array_equal(result, expected):
        bad = np.argwhere(result != expected)
        i, j = bad[0]
        raise AssertionError(f"{context}: {len(bad)} of {result.size} elements differ; first at "
                             f"({i}, {j}): got {result[i, j]!r}, expected {expected[i, j]!r}")


def assert_close(result, a, b, alpha=1.0, beta=0.0, c0=None, context=""):
    """Within the rigorous dot-product error bound, scaled by K and the dtype's epsilon."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = alpha * (a64 @ b64)
    bound = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        ref = ref + beta * c0.astype(np.float64)
        bound = bound + abs(beta) * np.abs(c0.astype(np.float64))
    info = np.finfo(result.dtype)
    tol = 2.0 * (a.shape[1] + 2) * float(info.eps) * bound + float(info.tiny)
    err = np.abs(result.astype(np.float64) - ref)
    ok = err <= tol  # False for NaN too
    if not ok.all():
        i, j = np.argwhere(~ok)[0]
        raise AssertionError(f"{context}: {(~ok).sum()} of {result.size} elements off; first at "
                             f"({i}, {j}): got {result[i, j]!r}, expected {ref[i, j]!r} "
                             f"+- {tol[i, j]:.3g}")


# ---- shapes: (M, K, N) ---------------------------------------------------------------------

SHAPES = [
    # degenerate and tiny
    (0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0), (1, 1, 1), (1, 13, 1), (1, 1, 17), (17, 1, 1),
    # primes
    (2, 3, 5), (7, 11, 13), (17, 19, 23), (31, 37, 41), (97, 89, 83), (101, 103, 107),
    # register tiles and their neighbours: MR in {4, 6, 12}, NR in {8, 16, 32}
    (3, 9, 7), (4, 9, 8), (5, 9, 9), (6, 5, 16), (7, 5, 17), (11, 21, 31), (12, 21, 32),
    (13, 21, 33), (23, 10, 63), (24, 10, 64), (25, 10, 65), (35, 6, 95), (36, 6, 96),
    # kc (256 / 384) on the direct path (small N) and the packed path (K * N * size > 256 KiB)
    (9, 255, 40), (9, 256, 40), (9, 257, 40), (13, 383, 41), (13, 384, 41), (13, 385, 41),
    (13, 385, 200), (29, 257, 300), (7, 769, 170), (5, 1100, 64), (5, 1100, 65), (7, 2100, 32),
    # mc blocks (72, 128, 168, 240, 480) on the packed path
    (73, 401, 203), (129, 401, 203), (169, 385, 170), (241, 390, 171), (481, 401, 203),
    # nc blocks (1536, 2048, 3072, 4080): wide B, small M and K
    (5, 45, 1537), (3, 33, 2049), (5, 45, 3073), (13, 20, 4081),
    # MLP at batch 32 (forward; dW as TN and dX as NT are in TRANSPOSED_WORKLOADS) and conv
    (32, 784, 64), (3872, 288, 64),
]

# (M, K, N, trans_a, trans_b): the products of MLP backprop, stored as training stores them.
TRANSPOSED_WORKLOADS = [
    (784, 32, 64, True, False),   # dW = X^T @ dY
    (32, 64, 784, False, True),   # dX = dY @ W^T
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_shapes_match_numpy(arch, shape, trans_a, trans_b, dtype):
    """Every shape, transpose combination, dtype and architecture: exact, and within tolerance.

    Transposes change only which element is read, which the exact check covers, so the
    tolerance check runs on NN and TT only (TT goes through the other packing routines)."""
    m, k, n = shape
    rng = np.random.default_rng([m, k, n, int(trans_a), int(trans_b)])
    context = f"{arch} {dtype.__name__} {_ids(shape)} trans_a={trans_a} trans_b={trans_b}"
    a, b = operands(int_matrix, rng, m, k, n, dtype, trans_a, trans_b)
    result = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert result.flags.c_contiguous
    assert_exact(result, op(a, trans_a), op(b, trans_b), context=context)
    if trans_a != trans_b:
        return
    a, b = operands(normal_matrix, rng, m, k, n, dtype, trans_a, trans_b)
    result = gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert_close(result, op(a, trans_a), op(b, trans_b), context=context)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("workload", TRANSPOSED_WORKLOADS, ids=["784x32x64-TN", "32x64x784-NT"])
def test_mlp_backprop_workloads(arch, workload, dtype):
    """The backprop products, with out= reused across calls as a training loop does."""
    m, k, n, trans_a, trans_b = workload
    rng = np.random.default_rng(7)
    out = np.full((m, n), np.nan, dtype=dtype)
    for make, check in ((int_matrix, assert_exact), (normal_matrix, assert_close)):
        a, b = operands(make, rng, m, k, n, dtype, trans_a, trans_b)
        assert gemm(a, b, out, trans_a=trans_a, trans_b=trans_b) is out
        check(out, op(a, trans_a), op(b, trans_b), context=f"{arch} {workload}")


# ---- memory layouts --------------------------------------------------------------------------
# Each layout gives a view with the wanted strides inside a larger NaN-filled buffer: a kernel
# that reads outside an operand's view picks up NaN, and one that writes outside the view of
# out changes the buffer, so both are caught.

LAYOUTS = {
    "C": (lambda r, c: (r, c), lambda buf, r, c: buf),
    "F": (lambda r, c: (c, r), lambda buf, r, c: buf.T),
    "padded": (lambda r, c: (r + 3, c + 5), lambda buf, r, c: buf[2:2 + r, 3:3 + c]),
    "step": (lambda r, c: (2 * r + 1, 3 * c + 2), lambda buf, r, c: buf[1:1 + 2 * r:2, 2:2 + 3 * c:3]),
    "neg": (lambda r, c: (r + 1, c + 2), lambda buf, r, c: buf[1:1 + r, 2:2 + c][::-1, ::-1]),
    "negrow_F": (lambda r, c: (c + 2, r + 1), lambda buf, r, c: buf[2:2 + c, 1:1 + r].T[::-1]),
    "step_neg": (lambda r, c: (2 * r + 2, 3 * c + 3),
                 lambda buf, r, c: buf[1:1 + 2 * r:2, 0:3 * c:3][::-1, ::-1]),
}


def in_layout(x, layout, fill=np.nan):
    """(view, buffer): a view of `buffer` equal to x, with the strides `layout` names."""
    buf_shape, view_of = LAYOUTS[layout]
    r, c = x.shape
    buf = np.full(buf_shape(r, c), fill, dtype=x.dtype)
    view = view_of(buf, r, c)
    view[...] = x
    assert view.shape == x.shape and (view.size == 0 or np.shares_memory(view, buf))
    return view, buf


def expected_buffer(buf, layout, values):
    """What the whole buffer of an out view must hold: `values` in the view, the rest as was."""
    r, c = values.shape
    expected = buf.copy()
    LAYOUTS[layout][1](expected, r, c)[...] = values
    return expected


# Direct path with partial tiles; packed path with several k blocks and pack-A; conv-like.
LAYOUT_SHAPES = [(13, 37, 29), (37, 401, 211), (150, 70, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("layout_b", list(LAYOUTS))
@pytest.mark.parametrize("layout_a", list(LAYOUTS))
def test_operand_layouts(arch, layout_a, layout_b, dtype):
    """Any strides of a and b, negative included, read exactly the view and nothing else."""
    rng = np.random.default_rng(11)
    for m, k, n in LAYOUT_SHAPES:
        for trans_a, trans_b in ((False, False), (True, True)):
            a, b = operands(int_matrix, rng, m, k, n, dtype, trans_a, trans_b)
            va, _ = in_layout(a, layout_a)
            vb, _ = in_layout(b, layout_b)
            a_before, b_before = va.copy(), vb.copy()
            result = gemm(va, vb, trans_a=trans_a, trans_b=trans_b)
            assert_exact(result, op(a, trans_a), op(b, trans_b),
                         context=f"{arch} a={layout_a} b={layout_b} {(m, k, n)} T={trans_a}")
            assert np.array_equal(va, a_before) and np.array_equal(vb, b_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.75])
@pytest.mark.parametrize("layout_out", list(LAYOUTS))
def test_out_layouts(arch, layout_out, beta, dtype):
    """Any strides of out: the view gets alpha op(a) op(b) + beta out, nothing else is written."""
    rng = np.random.default_rng(13)
    alpha = -2.0
    for m, k, n in LAYOUT_SHAPES:
        a, b = operands(int_matrix, rng, m, k, n, dtype, False, True)
        c0 = int_matrix(rng, (m, n), dtype)
        out, buf = in_layout(c0, layout_out, fill=np.nan)
        if beta == 0:
            out[...] = np.nan  # beta = 0 must not read out
        expected = expected_buffer(buf, layout_out, exact_reference(a, b.T, alpha, beta, c0))
        assert gemm(a, b, out, alpha=alpha, beta=beta, trans_b=True) is out
        assert np.array_equal(buf, expected, equal_nan=True), (
            f"{arch} out={layout_out} beta={beta} {(m, k, n)}: wrong values or writes "
            f"outside the view of out")


def test_interleaved_out_shares_a_buffer_without_overlap():
    """out may live in the same buffer as a, as long as no element is shared."""
    rng = np.random.default_rng(17)
    buf = int_matrix(rng, (40, 60), np.float64)
    a, out = buf[:, 0::2], buf[:, 1::2]
    b = int_matrix(rng, (30, 30), np.float64)
    a_copy = a.copy()
    gemm(a, b, out)
    assert np.array_equal(a, a_copy)
    assert_exact(out, a_copy, b)


def _huge_stride_view(rng, rows, cols, row_stride, dtype):
    """rows x cols integers, rows `row_stride` elements apart, in a lazily mapped buffer:
    only the pages the view touches become resident (a few hundred KiB)."""
    try:
        base = np.zeros(rows * row_stride, dtype)
    except MemoryError:  # pragma: no cover - a machine that refuses to overcommit
        pytest.skip("cannot map a sparse buffer this large here")
    itemsize = np.dtype(dtype).itemsize
    view = np.lib.stride_tricks.as_strided(base, shape=(rows, cols),
                                           strides=(row_stride * itemsize, itemsize))
    view[...] = int_matrix(rng, (rows, cols), dtype)
    return view


# Beyond the stride the AVX-512 gathering pack accepts (INT32_MAX / 64 elements), so its
# fallback runs; in float64 the rows of a_far also span more than 2**31 bytes (64-bit offsets).
HUGE_STRIDE = 34_000_000


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_huge_strides(arch, dtype):
    rng = np.random.default_rng(47)
    b_far = _huge_stride_view(rng, 5, 30, HUGE_STRIDE, dtype)  # op(b) = b_far.T: columns apart
    a = int_matrix(rng, (13, 30), dtype)
    assert_exact(gemm(a, b_far, trans_b=True), a, b_far.T, context=f"{arch} huge cs_b")
    a_far = _huge_stride_view(rng, 13, 30, HUGE_STRIDE, dtype)  # rows of a apart, packed
    b = int_matrix(rng, (70, 30), dtype)
    assert_exact(gemm(a_far, b, trans_b=True), a_far, b.T, context=f"{arch} huge rs_a")


# ---- alpha, beta and NaN in out --------------------------------------------------------------

# (M, K, N, out layout): direct path, packed path with several k blocks, strided out (the
# micro-kernel's tile-in-memory store), K = 0 (the scaling-only path).
BETA_CASES = [(13, 37, 29, "C"), (37, 801, 211, "C"), (37, 801, 211, "F"), (13, 37, 29, "step"),
              (6, 0, 9, "C"), (6, 0, 9, "F")]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", BETA_CASES, ids=lambda c: f"{_ids(c[:3])}-{c[3]}")
@pytest.mark.parametrize("alpha", [1.0, 0.0, -0.5, 2.5])
def test_beta_zero_never_reads_out(arch, alpha, case, dtype):
    """beta = 0: NaN or inf in out must not reach the result (0 * NaN would)."""
    m, k, n, layout = case
    rng = np.random.default_rng(19)
    a, b = operands(int_matrix, rng, m, k, n, dtype, False, False)
    junk = np.where(rng.random((m, n)) < 0.5, np.nan, np.inf).astype(dtype)
    out, _ = in_layout(junk, layout)
    gemm(a, b, out, alpha=alpha, beta=0.0)
    assert np.isfinite(out).all(), f"{arch} alpha={alpha} {case}: NaN/inf from out leaked"
    assert_exact(out, a, b, alpha=alpha)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("case", BETA_CASES, ids=lambda c: f"{_ids(c[:3])}-{c[3]}")
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -1.0), (0.0, 2.0), (-3.0, 0.25)])
def test_alpha_beta(arch, alpha, beta, case, dtype):
    m, k, n, layout = case
    rng = np.random.default_rng(23)
    a, b = operands(int_matrix, rng, m, k, n, dtype, False, False)
    c0 = int_matrix(rng, (m, n), dtype)
    out, _ = in_layout(c0, layout)
    gemm(a, b, out, alpha=alpha, beta=beta)
    assert_exact(out, a, b, alpha, beta, c0, context=f"{arch} {alpha=} {beta=} {case}")
    a, b = operands(normal_matrix, rng, m, k, n, dtype, False, False)
    c0 = normal_matrix(rng, (m, n), dtype)
    out, _ = in_layout(c0, layout)
    gemm(a, b, out, alpha=alpha, beta=beta)
    assert_close(out, a, b, alpha, beta, c0, context=f"{arch} {alpha=} {beta=} {case}")


def test_beta_nonzero_propagates_nan_in_out():
    """With beta != 0 out is an input, so its NaN stays NaN, exactly where it was."""
    rng = np.random.default_rng(29)
    a, b = operands(int_matrix, rng, 20, 30, 40, np.float32, False, False)
    out = int_matrix(rng, (20, 40), np.float32)
    out[3, 5] = np.nan
    gemm(a, b, out, beta=1.0)
    assert np.isnan(out).sum() == 1 and np.isnan(out[3, 5])


def test_matmul_is_gemm_without_scaling():
    rng = np.random.default_rng(31)
    a, b = operands(normal_matrix, rng, 33, 65, 17, np.float32, False, False)
    expected = gemm(a, b)
    assert np.array_equal(matmul(a, b), expected)
    out = np.full((33, 17), np.nan, np.float32)
    assert matmul(a, b, out) is out
    assert np.array_equal(out, expected)


# ---- thread count: the same bits for any number of threads -----------------------------------

# Large enough for both the direct and the packed path to open a parallel region.
# (64, 300, 2000): few rows, many columns, so the packed path splits the columns between
# threads (packed_ways in csrc/gemm.c); the others split the rows, or both at 4 and 6.
THREAD_SHAPES = [(200, 300, 500), (1024, 64, 700), (32, 784, 64), (784, 32, 64), (32, 64, 784),
                 (64, 300, 2000)]
# 1..max(2, processors), plus 3 for an odd split and 4 and 6 for two-way grids of threads
# (set_num_threads allows 4 per processor); on a large machine 1..4, 6 and the processor
# count stand for the rest, to keep the run short.
_PROCS = _backend.backend_info()["num_procs"]
_MAX_THREADS = _backend.backend_info()["max_threads"]
THREAD_COUNTS = sorted(t for t in set(range(1, min(max(2, _PROCS), 4) + 1))
                       | {3, 4, 6, max(2, _PROCS)} if t <= _MAX_THREADS)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("trans_a,trans_b", TRANS, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("shape", THREAD_SHAPES, ids=_ids)
def test_thread_count_does_not_change_bits(arch, restore_threads, shape, trans_a, trans_b, dtype):
    """Normal data, so the summation order matters: any split of K across threads would show."""
    m, k, n = shape
    rng = np.random.default_rng(37)
    a, b = operands(normal_matrix, rng, m, k, n, dtype, trans_a, trans_b)
    c0 = normal_matrix(rng, (m, n), dtype)
    results = {}
    for threads in THREAD_COUNTS:
        minidl.set_num_threads(threads)
        out = c0.copy()
        gemm(a, b, out, alpha=0.7, beta=-1.3, trans_a=trans_a, trans_b=trans_b)
        results[threads] = out
    assert_close(results[1], op(a, trans_a), op(b, trans_b), 0.7, -1.3, c0)
    for threads, out in results.items():
        assert np.array_equal(out, results[1]), (
            f"{arch} {dtype.__name__} {_ids(shape)} trans=({trans_a}, {trans_b}): "
            f"{threads} threads differ from 1 thread in {(out != results[1]).sum()} elements")


def test_thread_count_does_not_change_bits_with_strided_out(arch, restore_threads):
    rng = np.random.default_rng(41)
    a, b = operands(normal_matrix, rng, 300, 257, 190, np.float32, False, False)
    results = []
    for threads in THREAD_COUNTS:
        minidl.set_num_threads(threads)
        out, _ = in_layout(np.zeros((300, 190), np.float32), "step_neg")
        gemm(a, b, out)
        results.append(out.copy())
    assert all(np.array_equal(r, results[0]) for r in results)


def test_repeated_calls_give_the_same_bits():
    """Scratch buffers are reused between calls; stale contents must never leak in."""
    rng = np.random.default_rng(43)
    big_a, big_b = operands(normal_matrix, rng, 500, 700, 300, np.float32, False, False)
    a, b = operands(normal_matrix, rng, 97, 401, 211, np.float32, False, False)
    first = gemm(a, b)
    gemm(big_a, big_b)
    assert np.array_equal(gemm(a, b), first)


# ---- randomised: any shape, layout, transpose, scaling, dtype and architecture ---------------

SIZES = st.one_of(st.integers(0, 40), st.sampled_from([63, 64, 65, 95, 96, 97, 127, 129, 257, 385]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=SIZES, k=SIZES, n=SIZES, trans_a=st.booleans(), trans_b=st.booleans(),
       layout_a=st.sampled_from(list(LAYOUTS)), layout_b=st.sampled_from(list(LAYOUTS)),
       layout_out=st.sampled_from(list(LAYOUTS)), alpha=st.sampled_from([1.0, -1.0, 0.5, 3.0]),
       beta=st.sampled_from([0.0, 1.0, -0.25]), dtype=st.sampled_from(DTYPES),
       arch_name=st.sampled_from(ARCHS), seed=st.integers(0, 2**32 - 1))
def test_random_cases_exact(m, k, n, trans_a, trans_b, layout_a, layout_b, layout_out, alpha,
                            beta, dtype, arch_name, seed):
    rng = np.random.default_rng(seed)
    a, b = operands(int_matrix, rng, m, k, n, dtype, trans_a, trans_b)
    c0 = int_matrix(rng, (m, n), dtype)
    va, _ = in_layout(a, layout_a)
    vb, _ = in_layout(b, layout_b)
    out, buf = in_layout(c0, layout_out)
    if beta == 0:
        out[...] = np.nan
    expected = expected_buffer(buf, layout_out,
                               exact_reference(op(a, trans_a), op(b, trans_b), alpha, beta, c0))
    previous = _backend.get_arch()
    _backend.set_arch(arch_name)
    try:
        gemm(va, vb, out, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
    finally:
        _backend.set_arch(previous)
    assert np.array_equal(buf, expected, equal_nan=True)
