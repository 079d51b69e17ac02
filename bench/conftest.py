"""Benchmark reporting: after pytest-benchmark's own tables, one line per group and reference
with minidl's figure, the reference's and their ratio (> 1 means minidl is faster).

A benchmark takes part by putting into ``benchmark.extra_info`` its ``impl`` ("minidl" or the
reference's name: "numpy", "torch", ...) and, optionally, the ``flop`` count of one call, in
which case GFLOP/s are shown; otherwise times are. Figures come from the minimum time (the
least disturbed round on a shared machine); the ratio from the median is shown beside it as a
check on noise.
"""
import os
import sys

import numpy as np
import pytest

# PyTorch before minidl: the two share one OpenMP runtime (libgomp), which reads its
# spin-before-sleep setting when the first of them loads it. minidl sets a short spin
# (GOMP_SPINCOUNT, minidl/_core/__init__.py) unless one is set; loaded second, PyTorch's
# threads would run with it, not with the default its users get, and its 2-thread training
# of small models was up to 3x slower for that. Loaded first, both run with libgomp's
# default; minidl's own figures then differ from its short spin's by about 5% at most
# (2 threads here).
try:
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - torch is only needed by the reference benchmarks
    torch = None

import minidl  # noqa: E402

# Reference implementations shared by several benchmark files live beside them; with
# --import-mode=importlib the bench folder is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is in the test extras
    threadpool_limits = None

from mlp_reference import SEED


# ---- fixtures shared by the training benchmarks ----

@pytest.fixture(scope="session")
def fashion():
    """60,000 x 784 float32 images in [0, 1] and int64 labels: full Fashion-MNIST when it is
    installed, else synthetic data of the same shape; and which one it is."""
    from minidl.datasets import fashion_mnist
    try:
        (x, y), _ = fashion_mnist.load_data(source="full")
        source = "fashion-mnist"
    except (OSError, RuntimeError, ValueError):
        rng = np.random.default_rng(SEED)
        x = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 60000).astype(np.uint8)
        source = "synthetic"
    x = (x.reshape(len(x), 784) / 255.0).astype(np.float32)
    return x, y.astype(np.int64), source


@pytest.fixture
def single_thread():
    """minidl, numpy's BLAS and (when installed) torch on one thread, restored afterwards."""
    previous = minidl.get_num_threads()
    minidl.set_num_threads(1)
    limits = threadpool_limits(1) if threadpool_limits else None
    try:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    yield
    minidl.set_num_threads(previous)
    if limits is not None:
        limits.restore_original_limits()
    if torch is not None:
        torch.set_num_threads(torch_threads)


def _groups(benchmarks):
    groups = {}
    for bench in benchmarks:
        if bench.stats and "impl" in bench.extra_info:
            groups.setdefault(bench.group, {})[bench.extra_info["impl"]] = bench
    return groups


def _figure(bench, flop):
    if flop:
        return f"{flop / bench.stats.min / 1e9:.1f} GF/s"
    return f"{bench.stats.min * 1e3:.3f} ms"


def _interleaved_row(group, ours):
    """A summary row for a benchmark whose rounds each followed a reference run, timed by
    its setup (extra_info "reference_seconds"): the ratio of the min times, and the median
    of the per-pair ratios in place of the ratio of medians."""
    seconds = ours.extra_info.get("reference_seconds")
    rounds = list(ours.stats.data) if ours.stats else []
    if not seconds or len(seconds) != len(rounds):
        return None
    pairs = sorted(ref / mine for ref, mine in zip(seconds, rounds))
    middle = len(pairs) // 2
    median = pairs[middle] if len(pairs) % 2 else (pairs[middle - 1] + pairs[middle]) / 2
    name = ours.extra_info.get("interleaved_reference", "reference")
    return (group, f"{ours.stats.min * 1e3:.3f} ms", f"{name} {min(seconds) * 1e3:.3f} ms",
            min(seconds) / ours.stats.min, median)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return
    rows = []
    for group, impls in _groups(session.benchmarks).items():
        ours = impls.get("minidl")
        if ours is None:
            continue
        interleaved = _interleaved_row(group, ours)
        if interleaved:
            rows.append(interleaved)
        flop = ours.extra_info.get("flop")
        for name, ref in impls.items():
            if name == "minidl":
                continue
            rows.append((group, _figure(ours, flop), f"{name} {_figure(ref, flop)}",
                         ref.stats.min / ours.stats.min, ref.stats.median / ours.stats.median))
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    write = terminalreporter.write_line
    terminalreporter.section("minidl vs reference (min time; ratio > 1: minidl faster)")
    write(f"{'group':<{widths[0]}}  {'minidl':>{widths[1]}}  {'reference':>{widths[2]}}  "
          f"{'ratio':>6}  {'(median)':>8}")
    for group, ours, ref, ratio, median_ratio in rows:
        write(f"{group:<{widths[0]}}  {ours:>{widths[1]}}  {ref:>{widths[2]}}  {ratio:6.2f}  "
              f"{median_ratio:8.2f}")
