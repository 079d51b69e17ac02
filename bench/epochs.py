"""Helpers of the training-epoch benchmarks (bench_cnn.py, bench_resnet.py).

The interleaved benchmark runs one minidl epoch per round, each right after the reference's
epoch: a shared VM's speed drifts by up to 50% within a minute, so pairs measured seconds
apart compare more fairly than two series measured a minute apart; conftest.py's summary
prints both ratios (``_interleaved_row``).
"""
import time

SAMPLES = 12000
SMOKE_SAMPLES = 1024   # benchmarks disabled: one pass over these, to keep `pytest` quick


def first_images(fashion, benchmark, image_shape):
    """The first SAMPLES images (SMOKE_SAMPLES in a plain `pytest` run) of the ``fashion``
    fixture as ``(n,) + image_shape`` float32 in [0, 1] (a view), their labels, and the
    data's source; recorded in the benchmark's extra_info."""
    x, y, source = fashion
    n = SAMPLES if benchmark.enabled else SMOKE_SAMPLES
    benchmark.extra_info.update(data=source, samples=n)
    return x[:n].reshape((n,) + tuple(image_shape)), y[:n], source


def run_interleaved_epochs(benchmark, model, x, y, reference_epoch, order, batch, rounds,
                           reference="torch"):
    """Time ``model.fit`` for one epoch per round, each round after an epoch of the
    reference (run by the round's setup, untimed by pytest-benchmark, timed here and kept in
    ``extra_info["reference_seconds"]``).

    Args:
        model: the compiled minidl model, trained with ``fit`` on ``(x, y)``.
        reference_epoch: ``reference_epoch(order, batch)`` runs the reference's epoch.
    """
    reference_seconds = []

    def reference_round():
        start = time.perf_counter()
        reference_epoch(order, batch)
        reference_seconds.append(time.perf_counter() - start)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.extra_info["interleaved_reference"] = reference
    benchmark.extra_info["reference_seconds"] = reference_seconds
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=batch, shuffle=True,
                                         verbose=0),
                       setup=reference_round, rounds=rounds, iterations=1)
