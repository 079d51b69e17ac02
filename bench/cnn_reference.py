"""Plain-numpy and PyTorch versions of the reference CNN training epoch, for the benchmarks.

Network (issue 6), channels last as in Keras, on 28x28x1 images:
    Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) -> MaxPooling2D(2)
    -> Flatten -> Dense(128, relu) -> Dense(10, softmax)
with sparse categorical cross-entropy and Keras' Adam (lr 1e-3).

The numpy step is written the way a careful numpy user would: a convolution is im2col (a
``sliding_window_view`` copied once into rows of kh*kw*cin values) and one matmul; its input
gradient is one matmul and kh*kw shifted adds (col2im); max pooling keeps the argmax of each
window and scatters the gradient back through it. Kernels have Keras' layout (kh, kw, cin,
filters) and Flatten Keras' (h, w, c) order, so the same weights load into minidl unchanged.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import minidl
from mlp_reference import SEED, NumpyAdamTrainer, glorot, softmax_cross_entropy, torch_adam_epoch

IMAGE = (28, 28, 1)
FILTERS = (32, 64)
KERNEL = 3
POOL = 2
UNITS = 128
CLASSES = 10


def conv_glorot(rng, kh, kw, cin, filters):
    """Keras' glorot_uniform for a (kh, kw, cin, filters) kernel: fans scaled by kh*kw."""
    limit = np.sqrt(6.0 / (kh * kw * cin + kh * kw * filters))
    return rng.uniform(-limit, limit, (kh, kw, cin, filters)).astype(np.float32)


# ---- the layers, as functions ----

def conv_forward(x, kernel, bias):
    """Valid, stride-1 convolution of NHWC ``x`` with a (kh, kw, cin, f) kernel, then bias
    and ReLU. Returns the output and the im2col rows (kept for the backward pass)."""
    kh, kw, cin, filters = kernel.shape
    n, h, w, _ = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))    # (n, oh, ow, cin, kh, kw)
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * cin)
    z = cols @ kernel.reshape(kh * kw * cin, filters)
    z += bias
    np.maximum(z, 0, out=z)
    return z.reshape(n, oh, ow, filters), cols


def conv_backward(dy, y, cols, kernel, x_shape, need_input_grad=True):
    """Gradients of :func:`conv_forward` from the output gradient ``dy``: (dkernel, dbias,
    dx); dx is None when ``need_input_grad`` is False (a model's first layer)."""
    kh, kw, cin, filters = kernel.shape
    n, oh, ow, _ = dy.shape
    dz = (dy * (y > 0)).reshape(n * oh * ow, filters)
    dkernel = (cols.T @ dz).reshape(kernel.shape)
    dbias = dz.sum(axis=0)
    if not need_input_grad:
        return dkernel, dbias, None
    dcols = (dz @ kernel.reshape(kh * kw * cin, filters).T).reshape(n, oh, ow, kh, kw, cin)
    dx = np.zeros(x_shape, dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + oh, j:j + ow, :] += dcols[:, :, :, i, j, :]
    return dkernel, dbias, dx


def maxpool_forward(x, size=POOL):
    """``size`` x ``size`` max pooling, stride ``size``, 'valid' (a ragged edge is dropped).
    Returns the output and the argmax of each window."""
    n, h, w, c = x.shape
    ph, pw = h // size, w // size
    windows = (x[:, :ph * size, :pw * size, :].reshape(n, ph, size, pw, size, c)
               .transpose(0, 1, 3, 5, 2, 4).reshape(n, ph, pw, c, size * size))
    argmax = windows.argmax(axis=-1)[..., None]
    return np.take_along_axis(windows, argmax, axis=-1)[..., 0], argmax


def maxpool_backward(dy, argmax, x_shape, size=POOL):
    """The gradient of :func:`maxpool_forward`: each window's gradient goes to its maximum."""
    n, ph, pw, c = dy.shape
    dwindows = np.zeros((n, ph, pw, c, size * size), dy.dtype)
    np.put_along_axis(dwindows, argmax, dy[..., None], axis=-1)
    dx = np.zeros(x_shape, dy.dtype)
    dx[:, :ph * size, :pw * size, :] = (dwindows.reshape(n, ph, pw, c, size, size)
                                        .transpose(0, 1, 4, 2, 5, 3)
                                        .reshape(n, ph * size, pw * size, c))
    return dx


class NumpyCNN(NumpyAdamTrainer):
    """The reference CNN with softmax cross-entropy and Adam (Keras defaults)."""

    def __init__(self, seed=SEED, filters=FILTERS, units=UNITS, lr=1e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-7):
        rng = np.random.default_rng(seed)
        f1, f2 = filters
        side = ((IMAGE[0] - KERNEL + 1) // POOL - KERNEL + 1) // POOL
        flat = side * side * f2
        self.params = [conv_glorot(rng, KERNEL, KERNEL, IMAGE[2], f1), np.zeros(f1, np.float32),
                       conv_glorot(rng, KERNEL, KERNEL, f1, f2), np.zeros(f2, np.float32),
                       glorot(rng, flat, units), np.zeros(units, np.float32),
                       glorot(rng, units, CLASSES), np.zeros(CLASSES, np.float32)]
        self.init_adam(lr, beta_1, beta_2, epsilon)

    def gradients(self, x, y):
        """The batch's mean loss and the gradients of every parameter (params order)."""
        k1, b1, k2, b2, w3, b3, w4, b4 = self.params
        c1, cols1 = conv_forward(x, k1, b1)
        p1, arg1 = maxpool_forward(c1)
        c2, cols2 = conv_forward(p1, k2, b2)
        p2, arg2 = maxpool_forward(c2)
        n = x.shape[0]
        flat = p2.reshape(n, -1)
        z3 = flat @ w3 + b3
        a3 = np.maximum(z3, 0)
        loss, d4 = softmax_cross_entropy(a3 @ w4 + b4, y)
        grads = [None] * 8
        grads[6], grads[7] = a3.T @ d4, d4.sum(axis=0)
        d3 = (d4 @ w4.T) * (z3 > 0)
        grads[4], grads[5] = flat.T @ d3, d3.sum(axis=0)
        dp2 = (d3 @ w3.T).reshape(p2.shape)
        dc2 = maxpool_backward(dp2, arg2, c2.shape)
        grads[2], grads[3], dp1 = conv_backward(dc2, c2, cols2, k2, p1.shape)
        dc1 = maxpool_backward(dp1, arg1, c1.shape)
        grads[0], grads[1], _ = conv_backward(dc1, c1, cols1, k1, x.shape,
                                              need_input_grad=False)
        return loss, grads

    def step(self, x, y):
        loss, grads = self.gradients(x, y)
        self.adam_update(grads)
        return loss


# ---- PyTorch ----

def torch_cnn(filters=FILTERS, units=UNITS):
    """The same network in PyTorch (NCHW), or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    nn = torch.nn
    f1, f2 = filters
    side = ((IMAGE[0] - KERNEL + 1) // POOL - KERNEL + 1) // POOL
    return nn.Sequential(nn.Conv2d(IMAGE[2], f1, KERNEL), nn.ReLU(), nn.MaxPool2d(POOL),
                         nn.Conv2d(f1, f2, KERNEL), nn.ReLU(), nn.MaxPool2d(POOL),
                         nn.Flatten(), nn.Linear(side * side * f2, units), nn.ReLU(),
                         nn.Linear(units, CLASSES))


def torch_epoch_runner(x_nchw, y, seed=SEED):
    """A function running one epoch of the CNN in PyTorch eager mode on NCHW images, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    return torch_adam_epoch(torch_cnn(), x_nchw, y)


def torch_layout(arrays):
    """NumpyCNN's parameters (or gradients), in Keras' layouts, in torch_cnn's layouts."""
    k1, b1, k2, b2, w3, b3, w4, b4 = arrays
    filters = k2.shape[3]
    side = int(round(np.sqrt(w3.shape[0] // filters)))
    # Keras flattens (h, w, c), torch (c, h, w): permute the first Dense's input rows.
    w3_chw = w3.reshape(side, side, filters, -1).transpose(3, 2, 0, 1).reshape(w3.shape[1], -1)
    return [k1.transpose(3, 2, 0, 1), b1, k2.transpose(3, 2, 0, 1), b2, w3_chw, b3, w4.T, b4]


def load_into_torch(model, params):
    """Copy NumpyCNN's parameters into :func:`torch_cnn`'s model."""
    import torch
    with torch.no_grad():
        for p, value in zip(model.parameters(), torch_layout(params)):
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def max_gradient_error_vs_torch(n=8, seed=SEED):
    """Self-check of :meth:`NumpyCNN.gradients` against PyTorch autograd (float64) on ``n``
    random images with the same weights: the largest error of the loss and of each gradient,
    relative to that gradient's largest magnitude. None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    rng = np.random.default_rng(seed)
    reference = NumpyCNN(seed)
    # Biases are zero at initialisation: give them values, so their paths are checked too.
    for b in reference.params[1::2]:
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    x = rng.random((n,) + IMAGE, dtype=np.float32)
    y = rng.integers(0, CLASSES, n)
    loss, grads = reference.gradients(x, y)

    model = torch_cnn().double()
    load_into_torch(model, reference.params)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64))
    torch_loss = torch.nn.functional.cross_entropy(model(xt), torch.from_numpy(y))
    torch_loss.backward()
    expected = [p.grad.numpy() for p in model.parameters()]
    errors = {"loss": float(abs(loss - torch_loss.item()) / abs(torch_loss.item()))}
    names = ["conv1.kernel", "conv1.bias", "conv2.kernel", "conv2.bias", "dense1.kernel",
             "dense1.bias", "dense2.kernel", "dense2.bias"]
    for name, g, e in zip(names, torch_layout(grads), expected):
        errors[name] = float(np.abs(g - e).max() / np.abs(e).max())
    return errors


def reference_cnn(filters=FILTERS, units=UNITS):
    """The same network in minidl, seeded and compiled."""
    from minidl import Sequential
    from minidl.layers import Conv2D, Dense, Flatten, MaxPooling2D
    minidl.utils.set_random_seed(SEED)
    f1, f2 = filters
    model = Sequential([Conv2D(f1, KERNEL, activation="relu", input_shape=IMAGE),
                        MaxPooling2D(POOL),
                        Conv2D(f2, KERNEL, activation="relu"),
                        MaxPooling2D(POOL),
                        Flatten(),
                        Dense(units, activation="relu"),
                        Dense(CLASSES, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
