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

import pytest

# Reference implementations shared by several benchmark files live beside them; with
# --import-mode=importlib the bench folder is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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
