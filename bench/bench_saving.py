"""Saving and loading a 10-million-parameter MLP, beside np.savez / np.load of the same
arrays (minidl's save also fsyncs, which np.savez does not)."""
import numpy as np
import pytest

import minidl
from minidl.layers import Dense


@pytest.fixture(scope="module")
def mlp():
    minidl.utils.set_random_seed(0)
    model = minidl.Sequential([Dense(2048, activation="relu", input_shape=(784,)),
                               Dense(2048, activation="relu"), Dense(2048, activation="relu"),
                               Dense(10, activation="softmax")])
    assert model.count_params() > 10_000_000
    return model


@pytest.mark.benchmark(group="save-10M")
def test_save_minidl(benchmark, mlp, tmp_path):
    benchmark.extra_info["impl"] = "minidl"
    benchmark(mlp.save, tmp_path / "m.minidl")


@pytest.mark.benchmark(group="save-10M")
def test_save_numpy(benchmark, mlp, tmp_path):
    benchmark.extra_info["impl"] = "numpy"
    benchmark(np.savez, tmp_path / "m.npz", *mlp.get_weights())


@pytest.mark.benchmark(group="load-10M")
def test_load_minidl(benchmark, mlp, tmp_path):
    benchmark.extra_info["impl"] = "minidl"
    mlp.save(tmp_path / "m.minidl")
    benchmark(minidl.models.load_model, tmp_path / "m.minidl")


@pytest.mark.benchmark(group="load-10M")
def test_load_numpy(benchmark, mlp, tmp_path):
    benchmark.extra_info["impl"] = "numpy"
    np.savez(tmp_path / "m.npz", *mlp.get_weights())

    def load():
        with np.load(tmp_path / "m.npz") as arrays:
            return [arrays[name] for name in arrays.files]
    benchmark(load)
