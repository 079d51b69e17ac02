"""Benchmarks of serving a Keras-trained model (issue 18): load a ``.keras`` file and predict,
minidl beside Keras itself and beside onnxruntime on minidl's ONNX export of the loaded
model, one thread for all three. Targets: one sample at least as fast as onnxruntime, 10,000
samples at least 0.9x its speed, load + first prediction at least 10x faster than Keras.

The model: the reference CNN (bench/cnn_reference.py) with batch normalization,
Conv2D(32, 3, relu) -> BatchNormalization -> MaxPooling2D(2) -> Conv2D(64, 3) ->
BatchNormalization -> Activation(relu) -> MaxPooling2D(2) -> Flatten -> Dropout(0.5) ->
Dense(128, relu) -> Dense(10, softmax) on 28x28x1 images, built, trained for a few steps and
saved by Keras 3 (``KERAS_BACKEND=torch``) when Keras is installed. Without Keras (as in CI)
the small CNN that tests/data/keras/make_fixtures.py wrote with Keras stands in, and the Keras
groups skip.

What is timed, the calls a user makes (and for Keras the fastest of them: ``model(x)`` for
one sample, as ``predict`` builds its data pipeline on every call):
- a cold start: a fresh Python process that imports the library, loads the file and predicts
  one sample (a command-line tool, a serverless function, a worker starting up);
- load + first prediction in a running process: ``load_model(path)`` then one sample through
  it, the library imported beforehand;
- one sample: ``model(x)`` against ``session.run`` and Keras's ``model(x)``;
- 10,000 samples: ``model.predict(x)`` against one ``session.run`` over the whole array and
  Keras's ``model.predict(x)`` (Keras's default batch size 32, the same for minidl).
The outputs of all three are checked to agree.
"""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import minidl

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("h5py")

import minidl.onnx  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 18
SAMPLES = 10000
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests",
                       "data", "keras", "cnn_bn.keras")


def _keras():
    """Keras on the torch backend, or None where either is missing."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    return keras if keras.backend.backend() == "torch" else None


def _train_reference_cnn(keras, path):
    """The reference CNN with batch normalization, trained by Keras for a few steps on random
    images (so its moving statistics are its own), saved to ``path``."""
    keras.utils.set_random_seed(SEED)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Conv2D(64, 3),
        layers.BatchNormalization(), layers.Activation("relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(SEED)
    model.fit(rng.random((512, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 512),
              batch_size=64, epochs=1, verbose=0)
    model.save(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The Keras file's path, minidl's model loaded from it, an onnxruntime session on its
    export and the session's input name, and Keras (None where not installed)."""
    directory = tmp_path_factory.mktemp("keras_files")
    keras = _keras()
    path = FIXTURE
    if keras is not None:
        path = str(directory / "cnn.keras")
        _train_reference_cnn(keras, path)
    model = minidl.models.load_model(path)
    onnx_path = str(directory / "cnn.onnx")
    minidl.onnx.export(model, onnx_path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx_path, options,
                                           providers=["CPUExecutionProvider"])
    return path, model, session, session.get_inputs()[0].name, keras


@pytest.fixture(scope="module")
def images(served):
    shape = served[1].inputs[0].shape[1:]
    return np.random.default_rng(SEED).random((SAMPLES,) + tuple(shape), dtype=np.float32)


def _keras_model(served):
    path, *_, keras = served
    if keras is None:
        pytest.skip("Keras (with KERAS_BACKEND=torch) is not installed")
    return keras.saving.load_model(path)


def _keras_call(keras_model, x):
    return keras_model(x, training=False).detach().numpy()


def test_the_three_agree(served, images):
    _, model, session, name, keras = served
    x = images[:64]
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(session.run(None, {name: x})[0], expected, rtol=1e-5,
                               atol=1e-6)
    if keras is not None:
        np.testing.assert_allclose(_keras_call(_keras_model(served), x), expected,
                                   rtol=1e-5, atol=1e-6)


# ---- cold start: import, load, first prediction ----

_COLD_START = {
    "minidl": "import numpy as np, minidl\n"
              "model = minidl.models.load_model({path!r})\n"
              "assert model(np.zeros((1, 28, 28, 1), np.float32)).shape == (1, 10)\n",
    "keras": "import numpy as np, keras\n"
             "model = keras.saving.load_model({path!r})\n"
             "assert tuple(model(np.zeros((1, 28, 28, 1), np.float32)).shape) == (1, 10)\n",
}


def _cold_start(impl, path, directory):
    # The minidl this process imported (the installed one, or a source tree on PYTHONPATH),
    # run from an empty directory: `python -c` puts its working directory first on sys.path,
    # and a checkout's root holds a minidl without its compiled extensions.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    environment = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1",
                       PYTHONPATH=package_root)
    done = subprocess.run([sys.executable, "-c", _COLD_START[impl].format(path=path)],
                          env=environment, cwd=directory, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.benchmark(group="keras-cnn-cold-start")
def test_cold_start_minidl(benchmark, served, tmp_path):
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(_cold_start, args=("minidl", os.path.abspath(served[0]), str(tmp_path)),
                       rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="keras-cnn-cold-start")
def test_cold_start_keras(benchmark, served, tmp_path):
    _keras_model(served)   # skips without Keras
    benchmark.extra_info["impl"] = "keras"
    benchmark.pedantic(_cold_start, args=("keras", os.path.abspath(served[0]), str(tmp_path)),
                       rounds=3, iterations=1, warmup_rounds=1)


# ---- load + first prediction ----

@pytest.mark.benchmark(group="keras-cnn-load-and-first-predict")
def test_load_and_first_predict_minidl(benchmark, served, images):
    path = served[0]
    x = images[:1]
    benchmark.extra_info["impl"] = "minidl"
    out = benchmark.pedantic(lambda: minidl.models.load_model(path)(x), rounds=10,
                             iterations=1, warmup_rounds=1)
    assert out.shape == (1, 10)


@pytest.mark.benchmark(group="keras-cnn-load-and-first-predict")
def test_load_and_first_predict_keras(benchmark, served, images):
    _keras_model(served)   # skips without Keras; warms its imports
    path, *_, keras = served
    x = images[:1]
    benchmark.extra_info["impl"] = "keras"
    out = benchmark.pedantic(lambda: _keras_call(keras.saving.load_model(path), x), rounds=5,
                             iterations=1, warmup_rounds=1)
    assert out.shape == (1, 10)


# ---- one sample ----

@pytest.mark.benchmark(group="keras-cnn-one-sample")
def test_one_sample_minidl(benchmark, served, images):
    model = served[1]
    benchmark.extra_info["impl"] = "minidl"
    assert benchmark(model, images[:1]).shape == (1, 10)


@pytest.mark.benchmark(group="keras-cnn-one-sample")
def test_one_sample_onnxruntime(benchmark, served, images):
    _, _, session, name, _ = served
    benchmark.extra_info["impl"] = "onnxruntime"
    assert benchmark(session.run, None, {name: images[:1]})[0].shape == (1, 10)


@pytest.mark.benchmark(group="keras-cnn-one-sample")
def test_one_sample_keras(benchmark, served, images):
    keras_model = _keras_model(served)
    benchmark.extra_info["impl"] = "keras"
    assert benchmark(_keras_call, keras_model, images[:1]).shape == (1, 10)


# ---- 10,000 samples ----

@pytest.mark.benchmark(group="keras-cnn-10000-samples")
def test_10000_samples_minidl(benchmark, served, images):
    _, model, session, name, _ = served
    reference_seconds = []

    def onnxruntime_round():
        # Interleaved: this shared machine's speed drifts between groups of rounds.
        start = time.perf_counter()
        session.run(None, {name: images})
        reference_seconds.append(time.perf_counter() - start)

    benchmark.extra_info["impl"] = "minidl"
    benchmark.extra_info["interleaved_reference"] = "onnxruntime"
    benchmark.extra_info["reference_seconds"] = reference_seconds
    out = benchmark.pedantic(lambda: model.predict(images, verbose=0),
                             setup=onnxruntime_round, rounds=5, iterations=1)
    assert out.shape == (SAMPLES, 10)


@pytest.mark.benchmark(group="keras-cnn-10000-samples")
def test_10000_samples_onnxruntime(benchmark, served, images):
    _, _, session, name, _ = served
    benchmark.extra_info["impl"] = "onnxruntime"
    out = benchmark.pedantic(session.run, args=(None, {name: images}), rounds=5,
                             iterations=1, warmup_rounds=1)
    assert out[0].shape == (SAMPLES, 10)


@pytest.mark.benchmark(group="keras-cnn-10000-samples")
def test_10000_samples_keras(benchmark, served, images):
    keras_model = _keras_model(served)
    benchmark.extra_info["impl"] = "keras"
    out = benchmark.pedantic(keras_model.predict, args=(images,), kwargs={"verbose": 0},
                             rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (SAMPLES, 10)
