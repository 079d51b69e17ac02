"""Repository-wide pytest settings.

Benchmarks live beside the tests (testpaths = tests, bench). A plain ``pytest`` must stay a
quick correctness run, so it runs each benchmark body once, untimed, as a smoke test. Timing
happens only on request: ``pytest --benchmark-only``, or ``--benchmark-enable`` to time the
benchmarks beside the tests (also needed with ``--benchmark-json`` or ``--benchmark-save``).
"""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # Runs before pytest-benchmark's own pytest_configure (trylast), which reads these
    # options into its session. Without the plugin the options do not exist: nothing to do.
    option = config.option
    if not hasattr(option, "benchmark_disable"):
        return
    if not (option.benchmark_only or option.benchmark_enable):
        option.benchmark_disable = True
