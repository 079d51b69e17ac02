"""Benchmark of the streaming confusion-matrix metrics (issue 15): 60,000 predictions of a
binary classifier fed at batch 32 (1,875 ``update_state`` calls), then ``result()``, single
thread. Each group sets minidl beside a careful numpy implementation of the same streaming
update in float32:

- AUC (200 thresholds, Keras' epsilon-padded ones): per batch, ``np.searchsorted`` puts each
  prediction in its threshold slot and two ``np.bincount`` add the slots' label and total
  counts to a running histogram; ``result()`` takes the reversed cumulative sums and the
  trapezoids. Measured per batch of 32 on the development machine, this was the fastest of
  the numpy forms tried: searchsorted + bincount 5.0 us, Keras' bucket formula (ceil, clip)
  + bincount 6.5 us, np.add.at 7.4 us, a (32, 200) broadcast comparison with matmul 13.5 us.
- Precision and Recall at 0.5, updated together: per batch one comparison, one label cast
  and three ``np.count_nonzero`` give the true positives, false positives and false
  negatives both metrics need (2.1 us); minidl updates its two metric objects.

The target is minidl at least 5x faster: a ratio of 5 or more in the summary table.
"""
import numpy as np
import pytest

from minidl import metrics

SAMPLES, BATCH, ROUNDS = 60_000, 32, 7
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def batches():
    """1,875 batches of (y_true float32 0/1, y_pred float32 in [0, 1]) from a classifier
    with an AUC near 0.8."""
    rng = np.random.default_rng(15)
    y_true = (rng.random(SAMPLES) < 0.4).astype(np.float32)
    y_pred = np.clip(0.3 * y_true + 0.7 * rng.random(SAMPLES), 0, 1).astype(np.float32)
    return [(y_true[i:i + BATCH], y_pred[i:i + BATCH]) for i in range(0, SAMPLES, BATCH)]


class NumpyStreamingAUC:
    """ROC AUC with Keras' 200 thresholds, streamed: a running histogram of predictions by
    threshold slot (the number of thresholds a prediction is above), in numpy."""

    def __init__(self, num_thresholds=200):
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.array([-1e-7] + inner + [1 + 1e-7], np.float32)
        self.slots = num_thresholds + 1
        self.reset_state()

    def reset_state(self):
        self.positives = np.zeros(self.slots)
        self.totals = np.zeros(self.slots)

    def update_state(self, y_true, y_pred):
        slot = np.searchsorted(self.thresholds, y_pred)
        self.positives += np.bincount(slot, weights=y_true, minlength=self.slots)
        self.totals += np.bincount(slot, minlength=self.slots)

    def result(self):
        negatives = self.totals - self.positives
        tp = np.cumsum(self.positives[:0:-1])[::-1]
        fp = np.cumsum(negatives[:0:-1])[::-1]
        tpr = tp / max(self.positives.sum(), 1e-300)
        fpr = fp / max(negatives.sum(), 1e-300)
        return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


class NumpyStreamingPrecisionRecall:
    """Precision and recall at 0.5, streamed, in numpy: three running counts."""

    def reset_state(self):
        self.tp = self.fp = self.fn = 0

    def update_state(self, y_true, y_pred):
        predicted = y_pred > np.float32(0.5)
        actual = y_true != 0
        tp = np.count_nonzero(predicted & actual)
        self.tp += tp
        self.fp += np.count_nonzero(predicted) - tp
        self.fn += np.count_nonzero(actual) - tp

    def result(self):
        return (self.tp / max(self.tp + self.fp, 1), self.tp / max(self.tp + self.fn, 1))


def _stream(metric_list, batches):
    for metric in metric_list:
        metric.reset_state()
    for y_true, y_pred in batches:
        for metric in metric_list:
            metric.update_state(y_true, y_pred)
    return [metric.result() for metric in metric_list]


@pytest.mark.benchmark(group="metrics-auc-stream")
def test_auc_stream_minidl(benchmark, batches):
    benchmark.extra_info.update(impl="minidl", samples=SAMPLES, batch=BATCH)
    auc = metrics.AUC()
    (value,) = benchmark.pedantic(lambda: _stream([auc], batches), rounds=ROUNDS,
                                  iterations=1, warmup_rounds=1)
    assert value == pytest.approx(_stream([NumpyStreamingAUC()], batches)[0], abs=1e-5)


@pytest.mark.benchmark(group="metrics-auc-stream")
def test_auc_stream_numpy(benchmark, batches):
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(lambda: _stream([NumpyStreamingAUC()], batches), rounds=ROUNDS,
                       iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="metrics-precision-recall-stream")
def test_precision_recall_stream_minidl(benchmark, batches):
    benchmark.extra_info.update(impl="minidl", samples=SAMPLES, batch=BATCH)
    pair = [metrics.Precision(), metrics.Recall()]
    values = benchmark.pedantic(lambda: _stream(pair, batches), rounds=ROUNDS, iterations=1,
                                warmup_rounds=1)
    reference = NumpyStreamingPrecisionRecall()
    assert values == pytest.approx(list(_stream([reference], batches)[0]), rel=1e-12)


@pytest.mark.benchmark(group="metrics-precision-recall-stream")
def test_precision_recall_stream_numpy(benchmark, batches):
    benchmark.extra_info["impl"] = "numpy"
    reference = NumpyStreamingPrecisionRecall()
    benchmark.pedantic(lambda: _stream([reference], batches), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
