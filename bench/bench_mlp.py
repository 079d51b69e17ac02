"""Benchmarks of the reference MLP (issue 3): one training epoch, one-sample predict, import
time and peak memory, each beside a reference measured in the same run.

Single thread throughout: minidl.set_num_threads(1), numpy's BLAS limited to one thread,
torch.set_num_threads(1). Data: full Fashion-MNIST when installed, else synthetic data of the
same shape (60,000 x 784).
"""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import minidl
from mlp_reference import SEED, NumpyMLP, torch_epoch_runner
from mlp_reference import reference_mlp as reference_model

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.benchmark(group="mlp-epoch")
def test_mlp_epoch_minidl(benchmark, fashion):
    x, y, source = fashion
    model = reference_model()
    benchmark.extra_info.update(impl="minidl", data=source, samples=len(x))
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0),
                       rounds=3, iterations=1, warmup_rounds=1)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.5 or source == "synthetic"


@pytest.mark.benchmark(group="mlp-epoch")
def test_mlp_epoch_numpy(benchmark, fashion):
    x, y, _ = fashion
    model = NumpyMLP(SEED)
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(lambda: model.epoch(x, y, order), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="mlp-epoch")
def test_mlp_epoch_torch(benchmark, fashion):
    x, y, _ = fashion
    epoch = torch_epoch_runner(x, y, SEED)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(lambda: epoch(order), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="predict-one-sample")
def test_predict_one_minidl(benchmark):
    model = reference_model()
    x1 = np.random.default_rng(SEED).random((1, 784), dtype=np.float32)
    benchmark.extra_info["impl"] = "minidl"
    out = benchmark(model, x1)
    assert out.shape == (1, 10)


@pytest.mark.benchmark(group="predict-one-sample")
def test_predict_one_numpy(benchmark):
    model = NumpyMLP(SEED)
    w1, b1, w2, b2, w3, b3 = model.params
    x1 = np.random.default_rng(SEED).random((1, 784), dtype=np.float32)

    def forward(x):
        a = np.maximum(x @ w1 + b1, 0)
        a = np.maximum(a @ w2 + b2, 0)
        z = a @ w3 + b3
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    benchmark.extra_info["impl"] = "numpy"
    assert benchmark(forward, x1).shape == (1, 10)


def _subprocess_env():
    """The environment for a child Python that must import this same minidl: the child runs
    in a temporary directory (from the repository root it would find the uncompiled source
    tree), so the directory holding the imported package goes on PYTHONPATH."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minidl.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _python(code, env=None):
    subprocess.run([sys.executable, "-c", code], check=True, env=env or _subprocess_env(),
                   cwd=tempfile.gettempdir())


@pytest.fixture(scope="module")
def import_env(tmp_path_factory):
    """As a user's Python imports an installed package: from compiled bytecode. (This
    machine sets PYTHONDONTWRITEBYTECODE, so a source tree would be compiled again at every
    import.) The bytecode goes to a temporary cache; the warm-up round fills it."""
    env = _subprocess_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


@pytest.mark.benchmark(group="import")
def test_import_minidl(benchmark, import_env):
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(_python, args=("import minidl", import_env), rounds=5, iterations=1,
                       warmup_rounds=1)


@pytest.mark.benchmark(group="import")
def test_import_numpy(benchmark, import_env):
    benchmark.extra_info["impl"] = "numpy"
    benchmark.pedantic(_python, args=("import numpy", import_env), rounds=5, iterations=1,
                       warmup_rounds=1)


MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import minidl
    from minidl import Sequential
    from minidl.layers import Dense
    minidl.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.random((60000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60000)
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.fit(x, y, epochs=1, verbose=0, validation_data=(x[:10000], y[:10000]))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024.0)
""")


@pytest.mark.benchmark(group="peak-memory")
def test_training_peak_memory(benchmark):
    """Peak RSS growth of a full-data training run (60,000 x 784 float32 already loaded)."""
    def run():
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], check=True,
                             cwd=tempfile.gettempdir(), env=_subprocess_env(),
                             capture_output=True, text=True)
        return float(out.stdout.strip())
    growth_mb = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["peak_growth_MB"] = growth_mb
    assert growth_mb <= 100, f"training grew peak memory by {growth_mb:.1f} MB"
