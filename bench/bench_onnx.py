"""Benchmarks of inference (issue 18): a CNN with batch normalization predicting one sample
and 10,000 samples, minidl beside onnxruntime running the same model exported with
``minidl.onnx.export``. Targets: one sample at least as fast as onnxruntime, 10,000 samples
at least 0.9x its speed.

Network: the reference CNN (bench/cnn_reference.py) with batch normalization in both of
Keras's placements: Conv2D(32, 3, relu) -> BatchNormalization -> MaxPooling2D(2) ->
Conv2D(64, 3) -> BatchNormalization -> Activation(relu) -> MaxPooling2D(2) -> Flatten ->
Dropout(0.5) -> Dense(128, relu) -> Dense(10, softmax), on 28x28x1 images, random weights
and moving statistics (speed does not depend on them).

One thread for both (bench/conftest.py's ``single_thread`` for minidl and numpy; the
onnxruntime session with ``intra_op_num_threads=1``, ``inter_op_num_threads=1``, its default
graph optimizations, which fold the first batch normalization into its convolution).

What is timed, the calls a user makes:
- one sample: ``model(x)`` (minidl's fastest public path for one sample: ``predict`` adds its
  data-adapter and callback machinery, ``predict_on_batch`` its checks) and, in a group of
  its own, ``model.predict(x)``, against ``session.run(None, {name: x})``;
- 10,000 samples: ``model.predict(x)`` (batches of 32, Keras's default) against one
  ``session.run`` over the whole array; each minidl round runs right after an onnxruntime
  round (the summary's interleaved row), since this shared machine's speed drifts.
The outputs of both are checked to agree.
"""
import time

import numpy as np
import pytest

import minidl

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import minidl.onnx  # noqa: E402
from minidl import Input, Sequential  # noqa: E402
from minidl import layers as L  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 18
SAMPLES = 10000
ROUNDS_10000 = 5


def cnn():
    """The benchmarked CNN, with random weights and moving statistics."""
    minidl.utils.set_random_seed(SEED)
    model = Sequential([Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"),
                        L.BatchNormalization(), L.MaxPooling2D(2), L.Conv2D(64, 3),
                        L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(2),
                        L.Flatten(), L.Dropout(0.5), L.Dense(128, activation="relu"),
                        L.Dense(10, activation="softmax")])
    rng = np.random.default_rng(SEED)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) if "variance" in name
                       else rng.normal(0, 0.2, w.shape).astype(w.dtype)
                       for name, w in zip(model.weight_names, model.get_weights())])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The minidl model, an onnxruntime session on its export, and the session's input
    name."""
    model = cnn()
    path = str(tmp_path_factory.mktemp("onnx") / "cnn.onnx")
    minidl.onnx.export(model, path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return model, session, session.get_inputs()[0].name


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(SEED)
    return rng.random((SAMPLES, 28, 28, 1), dtype=np.float32)


def _agree(model, session, name, x):
    np.testing.assert_allclose(session.run(None, {name: x})[0], model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


# ---- one sample ----

@pytest.mark.benchmark(group="onnx-cnn-one-sample")
def test_one_sample_minidl(benchmark, models, images):
    model, session, name = models
    x = images[:1]
    _agree(model, session, name, x)
    benchmark.extra_info["impl"] = "minidl"
    assert benchmark(model, x).shape == (1, 10)


@pytest.mark.benchmark(group="onnx-cnn-one-sample")
def test_one_sample_onnxruntime(benchmark, models, images):
    _, session, name = models
    x = images[:1]
    benchmark.extra_info["impl"] = "onnxruntime"
    assert benchmark(session.run, None, {name: x})[0].shape == (1, 10)


@pytest.mark.benchmark(group="onnx-cnn-one-sample-predict")
def test_one_sample_predict_minidl(benchmark, models, images):
    model, _, _ = models
    x = images[:1]
    benchmark.extra_info["impl"] = "minidl"
    assert benchmark(model.predict, x, verbose=0).shape == (1, 10)


@pytest.mark.benchmark(group="onnx-cnn-one-sample-predict")
def test_one_sample_predict_onnxruntime(benchmark, models, images):
    _, session, name = models
    x = images[:1]
    benchmark.extra_info["impl"] = "onnxruntime"
    assert benchmark(session.run, None, {name: x})[0].shape == (1, 10)


# ---- 10,000 samples ----

@pytest.mark.benchmark(group="onnx-cnn-10000-samples")
def test_10000_samples_minidl(benchmark, models, images):
    model, session, name = models
    _agree(model, session, name, images[:64])
    reference_seconds = []

    def onnxruntime_round():
        start = time.perf_counter()
        session.run(None, {name: images})
        reference_seconds.append(time.perf_counter() - start)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.extra_info["interleaved_reference"] = "onnxruntime"
    benchmark.extra_info["reference_seconds"] = reference_seconds
    out = benchmark.pedantic(lambda: model.predict(images, verbose=0),
                             setup=onnxruntime_round, rounds=ROUNDS_10000, iterations=1)
    assert out.shape == (SAMPLES, 10)


@pytest.mark.benchmark(group="onnx-cnn-10000-samples")
def test_10000_samples_onnxruntime(benchmark, models, images):
    _, session, name = models
    benchmark.extra_info["impl"] = "onnxruntime"
    out = benchmark.pedantic(session.run, args=(None, {name: images}), rounds=ROUNDS_10000,
                             iterations=1, warmup_rounds=1)
    assert out[0].shape == (SAMPLES, 10)
