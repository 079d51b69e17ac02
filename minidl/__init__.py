"""minidl: a minimal deep learning framework with a Keras-shaped API over a compiled core.

    import minidl
    from minidl import Sequential
    from minidl.layers import Dense

The namespace mirrors ``keras``: layers, activations, losses, optimizers, metrics,
initializers, constraints, callbacks, datasets, utils, models, saving, ops and random, with
``GradientTape`` for hand-written loops. Heavy work runs in ``minidl._core`` (Cython over the
C kernels in csrc/), chosen for this CPU at import; see show_config(). Code a user writes
with ``minidl.ops`` gets its gradients from ``minidl.autodiff``.
"""
try:
    from minidl._core._backend import backend_info, get_num_threads, set_num_threads
except ImportError as error:  # pragma: no cover - depends on how minidl was obtained
    if "MINIDL_ARCH" in str(error):
        raise
    raise ImportError(
        "minidl's compiled core is missing. Install the package with `pip install .` (and "
        "run Python outside the source tree), or build in place with "
        "`python setup.py build_ext --inplace`.") from error

from minidl import (activations, callbacks, config, constraints, initializers, layers, losses,
                    metrics, models, ops, optimizers, random, regularizers, utils)
from minidl import data, preprocessing  # tf.data's Dataset; keras.preprocessing
from minidl.autodiff import GradientTape, Tensor, Variable
from minidl.layers import Input
from minidl.models import Model, Sequential
from minidl import applications  # keras.applications: ready-made image networks

__version__ = "0.1.0"


def __getattr__(name):
    # minidl.datasets pulls in file, hashing and compression modules that training code
    # rarely needs: it is imported on first use (`minidl.datasets` or `from minidl import
    # datasets` both work), which keeps `import minidl` quick.
    if name in ("datasets", "saving", "onnx"):
        import importlib
        return importlib.import_module(f"minidl.{name}")
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")


def show_config():
    """Print what the compiled core chose on this machine: ISA, kernels, OpenMP, threads."""
    for key, value in backend_info().items():
        if isinstance(value, dict):   # kernel_versions: "gemm avx512, conv_pool avx512, ..."
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, tuple):
            value = ", ".join(value)
        print(f"{key:>16}: {value}")


__all__ = ["GradientTape", "Input", "Model", "Sequential", "Tensor", "Variable", "activations",
           "backend_info", "callbacks", "config", "constraints", "datasets", "get_num_threads",
           "initializers", "layers", "losses", "metrics", "models", "ops", "optimizers", "random",
           "regularizers", "saving", "set_num_threads", "show_config", "utils", "__version__"]
__all__ += ["data", "preprocessing"]
__all__ += ["applications"]
