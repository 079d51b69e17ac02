"""Benchmark reporting: after pytest-benchmark's own tables, one line per group with the
throughput of minidl, of its reference, and their ratio.

A benchmark takes part by putting into ``benchmark.extra_info`` its ``impl`` ("minidl" or the
reference's name) and the ``flop`` count of one call; bench_gemm.py does. Throughput is
computed from the minimum time (the least disturbed round on a shared machine); the ratio
from the median is shown beside it as a check on noise.
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
        info = bench.extra_info
        if bench.stats and "impl" in info and info.get("flop"):
            groups.setdefault(bench.group, {})[info["impl"]] = bench
    return groups


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return
    rows = []
    for group, impls in _groups(session.benchmarks).items():
        ours = impls.get("minidl")
        references = [name for name in impls if name != "minidl"]
        if ours is None or not references:
            continue
        ref = impls[references[0]]
        flop = ours.extra_info["flop"]
        ours_min, ref_min = flop / ours.stats.min / 1e9, flop / ref.stats.min / 1e9
        median_ratio = ref.stats.median / ours.stats.median
        rows.append((group, ours_min, references[0], ref_min, ours_min / ref_min, median_ratio))
    if not rows:
        return
    width = max(len(r[0]) for r in rows)
    write = terminalreporter.write_line
    terminalreporter.section("minidl vs reference (GFLOP/s from the min time)")
    write(f"{'group':<{width}}  {'minidl':>8}  {'reference':>16}  {'ratio':>6}  {'(median)':>8}")
    for group, ours, ref_name, ref, ratio, median_ratio in rows:
        write(f"{group:<{width}}  {ours:8.1f}  {ref_name + ' ' + format(ref, '.1f'):>16}  "
              f"{ratio:6.2f}  {median_ratio:8.2f}")
