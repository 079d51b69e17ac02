"""Gradient checks shared by the op test modules (test_ops_array.py, test_ops_more.py): an
op's tape gradients against float64 central differences and against PyTorch autograd; and
the loss tests' check of a loss function's ops form against its compiled kernel."""
import numpy as np
import pytest

from minidl._ref.gradcheck import numeric_grad
from minidl.autodiff import GradientTape, Tensor


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_or_skip():
    return pytest.importorskip("torch")


def vjp(fn, arrays, w=None, seed=1):
    """Output and gradients of ``sum(fn(*arrays) * w)`` through the tape (``w`` random)."""
    tensors = [Tensor(a.copy()) for a in arrays]
    with GradientTape() as tape:
        tape.watch(tensors)
        y = fn(*tensors)
    if w is None:
        w = rand(*y.shape, seed=seed).astype(y.dtype)
    return y, tape.gradient(y, tensors, output_gradients=w), w


def check_grads(fn, *arrays, torch_fn=None):
    """Gradients of ``fn`` at float64 ``arrays``: against central differences, and against
    PyTorch autograd when ``torch_fn`` (the same computation in torch) is given."""
    arrays = [np.array(a, np.float64) for a in arrays]
    y, grads, w = vjp(fn, arrays)
    plain = [Tensor(a) for a in arrays]   # the arrays themselves: perturbations show

    def scalar():
        return float(np.sum(fn(*plain).value * w))
    np.testing.assert_allclose(y.value, fn(*plain).value, rtol=1e-12, atol=0)
    for i, (a, g) in enumerate(zip(arrays, grads)):
        assert g is not None, f"operand {i}: no gradient"
        assert g.shape == a.shape, f"operand {i}: gradient of shape {g.shape}"
        np.testing.assert_allclose(g, numeric_grad(scalar, a), rtol=1e-5, atol=1e-5,
                                   err_msg=f"operand {i}: central differences")
    if torch_fn is not None:
        torch = torch_or_skip()
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        ty = torch_fn(*ts)
        np.testing.assert_allclose(y.value, ty.detach().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg="forward against torch")
        ty.backward(torch.from_numpy(np.array(w)))
        for i, (g, t) in enumerate(zip(grads, ts)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"operand {i}: torch autograd")
    return y


def check_loss_function_matches_kernel(fn, kwargs, kernel_loss, y_true, y_pred):
    """A loss's function form (on ops) against its class's compiled kernel: the per-sample
    values, and the tape gradient of their sum against ``forward_backward``'s gradient.
    Returns the kernel's gradient."""
    from minidl import ops
    from minidl.autodiff import Variable
    values = fn(y_true, y_pred, **kwargs)
    assert isinstance(values, Tensor) and values.shape == (y_pred.shape[0],)
    np.testing.assert_allclose(np.asarray(values), np.asarray(kernel_loss(y_true, y_pred)),
                               rtol=1e-10, atol=1e-12)
    pred = Variable(y_pred.copy())
    with GradientTape() as tape:
        total = ops.sum(fn(y_true, pred, **kwargs))
    grad = tape.gradient(total, pred)
    kernel_grad = np.empty_like(y_pred)
    kernel_loss.forward_backward(y_true, y_pred, kernel_grad)
    np.testing.assert_allclose(grad, kernel_grad, rtol=1e-8, atol=1e-12)
    return kernel_grad
