"""GEMM throughput: minidl.ops.gemm beside numpy.matmul (its BLAS), float32, both with out=.

One pytest-benchmark group per shape and thread setting, so each table row pair reads as
"ours vs reference" directly; bench/conftest.py prints GFLOP/s and the ratio at the end.
Shapes are M x K x N: the three products of an MLP training step at batch 32 (forward,
dW = X^T dY as TN, dX = dY W^T as NT), a wider layer, a 3x3 convolution over 32 channels of
a 22x22 image as GEMM (im2col), and a large square product.

Threads: "1 thread" sets minidl.set_num_threads(1) and limits numpy's BLAS to one thread
with threadpoolctl (in the test extra). Without threadpoolctl the BLAS thread count cannot be
changed in process: set OPENBLAS_NUM_THREADS=1 (or OMP_NUM_THREADS / MKL_NUM_THREADS for
other BLAS builds) in the environment for a fair single-thread comparison; the run records
which case it was in extra_info["numpy_threads"]. "all threads" uses every processor in both.

    pytest bench/bench_gemm.py --benchmark-only

Times are never asserted; the result of each body is checked against numpy, so that a plain
``pytest`` run (benchmarks disabled: each body runs once) is a smoke test too.
"""
import os

import numpy as np
import pytest

import minidl
from minidl.ops import gemm

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is in the test extras
    threadpool_limits = None

# (label, M, K, N, trans_a, trans_b)
SHAPES = [
    ("32x784x64", 32, 784, 64, False, False),
    ("784x32x64 TN", 784, 32, 64, True, False),
    ("32x64x784 NT", 32, 64, 784, False, True),
    ("128x784x256", 128, 784, 256, False, False),
    ("3872x288x64", 3872, 288, 64, False, False),
    ("1024x1024x1024", 1024, 1024, 1024, False, False),
]
NUM_PROCS = minidl.backend_info()["num_procs"]
THREADS = {"1 thread": 1, "all threads": NUM_PROCS}


@pytest.fixture(scope="module", params=SHAPES, ids=[s[0] for s in SHAPES])
def problem(request):
    """Operands stored as training stores them (transposed in memory for TN / NT)."""
    label, m, k, n, trans_a, trans_b = request.param
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    expected = op_a.astype(np.float64) @ op_b.astype(np.float64)
    return dict(label=label, m=m, k=k, n=n, trans_a=trans_a, trans_b=trans_b, a=a, b=b,
                op_a=op_a, op_b=op_b, expected=expected)


@pytest.fixture(params=list(THREADS), ids=list(THREADS))
def threads(request):
    """Set minidl's and numpy's thread counts for one benchmark, and put them back after."""
    count = THREADS[request.param]
    previous = minidl.get_num_threads()
    minidl.set_num_threads(count)
    limits = threadpool_limits(limits=count, user_api="blas") if threadpool_limits else None
    try:
        yield request.param, count
    finally:
        minidl.set_num_threads(previous)
        if limits is not None:
            limits.restore_original_limits()


def _numpy_threads(count):
    if threadpool_limits is not None:
        return count
    env = [f"{v}={os.environ[v]}" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                            "MKL_NUM_THREADS") if v in os.environ]
    return "not limited in process (no threadpoolctl); environment: " + (", ".join(env) or "none")


def _record(benchmark, problem, threads, impl):
    label, count = threads
    flop = 2.0 * problem["m"] * problem["n"] * problem["k"]
    benchmark.group = f"gemm {problem['label']}, {label}"
    benchmark.extra_info.update(impl=impl, flop=flop, minidl_threads=count,
                                numpy_threads=_numpy_threads(count),
                                arch=minidl.backend_info()["arch"])
    return flop


def _add_gflops(benchmark, flop):
    if benchmark.stats:  # None when benchmarks are disabled (plain pytest)
        stats = benchmark.stats.stats
        benchmark.extra_info["gflops_min"] = flop / stats.min / 1e9
        benchmark.extra_info["gflops_median"] = flop / stats.median / 1e9


def _check(out, problem):
    # The float32 result against float64, with room for a K-term float32 sum.
    tol = 4 * np.sqrt(problem["k"]) * np.finfo(np.float32).eps * np.abs(problem["expected"]).max()
    np.testing.assert_allclose(out, problem["expected"], rtol=0, atol=tol)


def test_gemm_minidl(benchmark, problem, threads):
    flop = _record(benchmark, problem, threads, "minidl")
    out = np.empty((problem["m"], problem["n"]), np.float32)
    a, b, ta, tb = problem["a"], problem["b"], problem["trans_a"], problem["trans_b"]
    benchmark(gemm, a, b, out, trans_a=ta, trans_b=tb)
    _add_gflops(benchmark, flop)
    _check(out, problem)


def test_gemm_numpy(benchmark, problem, threads):
    flop = _record(benchmark, problem, threads, "numpy")
    out = np.empty((problem["m"], problem["n"]), np.float32)
    benchmark(np.matmul, problem["op_a"], problem["op_b"], out=out)
    _add_gflops(benchmark, flop)
    _check(out, problem)
