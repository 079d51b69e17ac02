"""Central-difference gradients and comparisons: the trusted side of the checks in tests/."""
import numpy as np

from minidl.layers.base import CallContext


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to the array ``a``.

    ``a`` is perturbed in place, one element at a time, and restored. Use float64 arrays:
    the truncation error is O(eps^2) and the rounding error O(1e-16 / eps).
    """
    grad = np.zeros(a.shape, np.float64)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def check_layer_gradients(layer, x, seed=0):
    """Backward of ``layer`` at the float64 batch ``x`` against central differences of
    ``sum(layer(x) * w)`` for a random ``w``: the input gradient and the gradient of every
    trainable weight. Also checks that the training forward equals inference. Returns the
    output.
    """
    rng = np.random.default_rng(seed)
    layer(x[:1])  # builds the layer
    ctx = CallContext(layer)
    y = ctx.forward(x, training=True)
    w = rng.standard_normal(y.shape)
    np.testing.assert_allclose(y, layer(x), rtol=1e-13, atol=1e-14,
                               err_msg="training and inference forward differ")
    y = y.copy()
    dx = ctx.backward(w.copy(), need_input_grad=True)
    assert dx.shape == x.shape, f"{layer.name}: input gradient of shape {dx.shape}"
    dx, grads = dx.copy(), [g.copy() for g in ctx.grads]

    def scalar():
        return float(np.sum(layer(x) * w))

    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8,
                               err_msg=f"{layer.name}: input gradient")
    for name, param, grad in zip(layer.param_names, layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-8,
                                   err_msg=f"{layer.name}: gradient of {name}")
    return y


def assert_close(got, want, magnitude, rtol, what):
    """``|got - want| <= rtol * magnitude`` elementwise, where ``magnitude`` is the same
    computation on absolute values: a relative tolerance that survives cancellation (and
    demands exact zeros where nothing contributes)."""
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    err = np.abs(got.astype(np.float64) - want)
    bound = rtol * magnitude + np.finfo(np.float64).tiny
    bad = err > bound
    if bad.any():
        i = np.unravel_index(np.argmax(err / bound), err.shape)
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} elements differ; worst at "
                             f"{i}: got {got[i]!r}, expected {want[i]!r} (allowed error "
                             f"{bound[i]:.3g})")
