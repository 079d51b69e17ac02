"""Benchmark of the callbacks' overhead (issue 4): one training epoch of the reference MLP on
60,000 samples, batch 32, single thread, with EarlyStopping + ReduceLROnPlateau + CSVLogger
("minidl") beside the same epoch with an empty callback list ("no callbacks"). The target is
under 3% overhead: a ratio of at least 0.97 in the summary table.

The three callbacks act once per epoch (CallbackList gives no per-batch hook to call), so what
is measured is their epoch-end work: EarlyStopping's weight snapshot, the learning-rate check
and one CSV row. Data: full Fashion-MNIST when installed, else synthetic data of that shape.
"""
import pytest

from minidl import callbacks

from mlp_reference import reference_mlp as reference_model

ROUNDS = 7
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.benchmark(group="callbacks-epoch")
def test_epoch_with_callbacks(benchmark, fashion, tmp_path):
    x, y, source = fashion
    model = reference_model()
    # monitor='loss': no validation data here, and a missing 'val_loss' would only warn
    cbs = [callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True),
           callbacks.ReduceLROnPlateau(monitor="loss", patience=100),
           callbacks.CSVLogger(tmp_path / "log.csv", append=True)]
    benchmark.extra_info.update(impl="minidl", data=source, samples=len(x))
    epochs_run = []

    def one_epoch():
        epochs_run.append(1)
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=cbs)
    # Timed runs make ROUNDS + 1 (warm-up) calls; a plain pytest run (benchmarks disabled)
    # makes one. Each appends one row under the single header.
    benchmark.pedantic(one_epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert (tmp_path / "log.csv").read_text().count("\n") == len(epochs_run) + 1


@pytest.mark.benchmark(group="callbacks-epoch")
def test_epoch_without_callbacks(benchmark, fashion):
    x, y, _ = fashion
    model = reference_model()
    benchmark.extra_info["impl"] = "no callbacks"
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0,
                                         callbacks=[]),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
