"""Fixtures shared by the test modules."""
import os
import sys

import pytest

import minidl

# The helper modules beside the tests (zip_surgery.py, ...): under --import-mode=importlib
# the tests folder is not on sys.path by itself.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def one_thread():
    """Run the test with minidl on one thread, then restore the setting. Modules whose
    numbers or timings should not depend on the machine's core count use it for every
    test: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = minidl.get_num_threads()
    minidl.set_num_threads(1)
    yield
    minidl.set_num_threads(before)


@pytest.fixture
def torch_one_thread():
    """Run the test with PyTorch's thread pool at one thread (when torch is installed), then
    restore it: the machine is shared, and the reference computations are tiny. Modules that
    compare against torch use it for every test, as ``one_thread`` above."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def keras():
    """Real Keras 3 on the PyTorch backend, for the checks that Keras reads minidl's files
    (the comparison job, where Keras is installed); the test skips elsewhere."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.environ["KERAS_BACKEND"] == "torch":
        pytest.importorskip("torch")
    module = pytest.importorskip("keras")
    if module.backend.backend() != "torch":
        pytest.skip("these checks run Keras on the PyTorch backend")
    return module
