"""Reference for the convolution family: Conv1D/Conv2D and the pooling layers in plain numpy.

Channels-last throughout, with Keras' shapes: images ``(batch, height, width, channels)``,
sequences ``(batch, steps, channels)``, Conv2D kernels ``(kh, kw, in, out)`` and Conv1D
kernels ``(k, in, out)``. The math runs in float64 whatever the input dtype, so for float32
data the reference is the exact result rounded once. Written for clarity, not speed: one
strided view of the padded input per kernel tap, and a small matrix product per tap.

Padding follows Keras (TensorFlow):

* ``'valid'``: none; ``out = floor((in - span) / stride) + 1`` with
  ``span = (kernel - 1) * dilation + 1``.
* ``'same'``: ``out = ceil(in / stride)``; the total padding
  ``max((out - 1) * stride + span - in, 0)`` is split with the smaller half before
  (``before = total // 2``), so an odd total puts the extra zero after, unlike PyTorch.
* ``'causal'`` (1-D only): ``(kernel - 1) * dilation`` zeros before, none after.

Strides and dilation may both exceed 1 (PyTorch semantics). Pooling with ``'same'`` never
counts padding: max pooling ignores it, average pooling divides by the number of real
elements in each window. The max-pooling gradient goes to the first maximal element of
each window in row-major order, and overlapping windows accumulate.
"""
import numpy as np

PADDINGS = ("valid", "same", "causal")


# ---- shapes ----

def conv_output_length(length, kernel_size, stride, padding, dilation=1):
    """Output length along one axis (Keras' rule); may be <= 0 for 'valid' inputs shorter
    than the dilated kernel."""
    padding = _check_padding(padding)
    span = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        return (length - span) // stride + 1
    return -(-length // stride)   # 'same' and 'causal': ceil(length / stride)


def conv_padding(length, kernel_size, stride, padding, dilation=1):
    """``(before, after)`` zeros along one axis."""
    padding = _check_padding(padding)
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return (kernel_size - 1) * dilation, 0
    out = conv_output_length(length, kernel_size, stride, padding, dilation)
    total = max((out - 1) * stride + (kernel_size - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def _check_padding(padding):
    padding = padding.lower()
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}; received padding={padding!r}.")
    return padding


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(d) for d in v)


def _geometry(spatial, kernel, strides, padding, dilation):
    """Pads and output sizes for each spatial axis of a 2-D operation."""
    pads = [conv_padding(n, k, s, padding, d)
            for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    out = [conv_output_length(n, k, s, padding, d)
           for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    if min(out) <= 0:
        raise ValueError(f"kernel {tuple(kernel)} with dilation {tuple(dilation)} does not "
                         f"fit the input {tuple(spatial)} with padding='valid'.")
    return pads, out


def _pad(x, pads, value=0.0):
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _taps(kernel, strides, dilation, out):
    """For each kernel tap (i, j) in row-major order, the index expressions of the padded
    input that the tap reads for every output position."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(i * dh, i * dh + (oh - 1) * sh + 1, sh),
                         slice(j * dw, j * dw + (ow - 1) * sw + 1, sw), slice(None))


def _unpad(xp, pads):
    h, w = xp.shape[1] - sum(pads[0]), xp.shape[2] - sum(pads[1])
    return xp[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + w, :]


# ---- convolution ----

def conv2d_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """``y[n, p, q, f] = bias[f] + sum_{i, j, c} xpad[n, p*sh + i*dh, q*sw + j*dw, c]
    * kernel[i, j, c, f]`` (cross-correlation, as every framework computes it)."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    strides, dilation = _pair(strides), _pair(dilation_rate)
    pads, out = _geometry(x.shape[1:3], kernel.shape[:2], strides, padding, dilation)
    xp = _pad(x, pads)
    y = np.zeros((x.shape[0], out[0], out[1], kernel.shape[3]))
    for i, j, index in _taps(kernel.shape[:2], strides, dilation, out):
        y += xp[index] @ kernel[i, j]
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y


def conv2d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1):
    """Gradients ``(dx, dkernel, dbias)`` of ``sum(conv2d_forward(...) * dy)``."""
    x = np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    dy = np.asarray(dy, np.float64)
    strides, dilation = _pair(strides), _pair(dilation_rate)
    pads, out = _geometry(x.shape[1:3], kernel.shape[:2], strides, padding, dilation)
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    rows = -1, kernel.shape[2]
    for i, j, index in _taps(kernel.shape[:2], strides, dilation, out):
        dxp[index] += dy @ kernel[i, j].T
        dkernel[i, j] = xp[index].reshape(rows).T @ dy.reshape(-1, kernel.shape[3])
    return _unpad(dxp, pads), dkernel, dy.sum(axis=(0, 1, 2))


def _as_2d(x):
    """(batch, steps, c) as an image of height 1."""
    return np.asarray(x, np.float64)[:, None]


def _conv1d_args(x, kernel_size, strides, padding, dilation_rate):
    """A 1-D operation as a 2-D one of height 1; 'causal' becomes 'valid' on the input
    padded in front."""
    x = _as_2d(x)
    if _check_padding(padding) == "causal":
        x = np.pad(x, ((0, 0), (0, 0), ((kernel_size - 1) * dilation_rate, 0), (0, 0)))
        padding = "valid"
    return x, (1, strides), padding, (1, dilation_rate)


def conv1d_forward(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """Conv1D: ``x`` (batch, steps, c), ``kernel`` (k, c, filters); padding 'valid',
    'same' or 'causal'."""
    kernel = np.asarray(kernel, np.float64)
    x2, strides, padding, dilation = _conv1d_args(x, kernel.shape[0], strides, padding,
                                                  dilation_rate)
    return conv2d_forward(x2, kernel[None], bias, strides, padding, dilation)[:, 0]


def conv1d_backward(x, kernel, dy, strides=1, padding="valid", dilation_rate=1):
    """Gradients ``(dx, dkernel, dbias)`` of ``sum(conv1d_forward(...) * dy)``."""
    kernel = np.asarray(kernel, np.float64)
    x2, strides2, padding2, dilation = _conv1d_args(x, kernel.shape[0], strides, padding,
                                                    dilation_rate)
    dx, dkernel, dbias = conv2d_backward(x2, kernel[None], _as_2d(dy), strides2, padding2,
                                         dilation)
    dx = dx[:, 0]
    if dx.shape[1] != np.shape(x)[1]:   # causal: drop the gradient of the front zeros
        dx = dx[:, dx.shape[1] - np.shape(x)[1]:]
    return dx, dkernel[0], dbias


# ---- pooling ----

def _pool_geometry(x, pool_size, strides, padding):
    pool = _pair(pool_size)
    strides = pool if strides is None else _pair(strides)
    if _check_padding(padding) == "causal":
        raise ValueError("pooling takes padding 'valid' or 'same'; received 'causal'.")
    pads, out = _geometry(x.shape[1:3], pool, strides, padding, (1, 1))
    return pool, strides, pads, out


def _windows(xp, pool, strides, out):
    """(pool_h * pool_w, batch, out_h, out_w, c): every window, taps in row-major order."""
    return np.stack([xp[index] for _, _, index in _taps(pool, strides, (1, 1), out)])


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    pool, strides, pads, out = _pool_geometry(x, pool_size, strides, padding)
    return _windows(_pad(x, pads, -np.inf), pool, strides, out).max(axis=0)


def max_pool2d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    """dx: each output's gradient goes to the first maximal element of its window
    (row-major), summed over overlapping windows."""
    x = np.asarray(x, np.float64)
    dy = np.asarray(dy, np.float64)
    pool, strides, pads, out = _pool_geometry(x, pool_size, strides, padding)
    xp = _pad(x, pads, -np.inf)
    first = _windows(xp, pool, strides, out).argmax(axis=0)   # argmax: first occurrence
    dxp = np.zeros_like(xp)
    for tap, (_, _, index) in enumerate(_taps(pool, strides, (1, 1), out)):
        dxp[index] += np.where(first == tap, dy, 0.0)
    return _unpad(dxp, pads)


def _window_counts(x, pool, strides, pads, out):
    """Number of real (non-padding) elements in each window, shaped (1, oh, ow, 1)."""
    ones = _pad(np.ones((1, x.shape[1], x.shape[2], 1)), pads)
    return _windows(ones, pool, strides, out).sum(axis=0)


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    pool, strides, pads, out = _pool_geometry(x, pool_size, strides, padding)
    total = _windows(_pad(x, pads), pool, strides, out).sum(axis=0)
    return total / _window_counts(x, pool, strides, pads, out)


def avg_pool2d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    x = np.asarray(x, np.float64)
    pool, strides, pads, out = _pool_geometry(x, pool_size, strides, padding)
    share = np.asarray(dy, np.float64) / _window_counts(x, pool, strides, pads, out)
    dxp = np.zeros_like(_pad(x, pads))
    for _, _, index in _taps(pool, strides, (1, 1), out):
        dxp[index] += share
    return _unpad(dxp, pads)


def _pool1d(fn, x, *arrays, pool_size=2, strides=None, padding="valid"):
    strides = pool_size if strides is None else strides
    out = fn(_as_2d(x), *(_as_2d(a) for a in arrays), (1, pool_size), (1, strides), padding)
    return out[:, 0]


def max_pool1d_forward(x, pool_size=2, strides=None, padding="valid"):
    return _pool1d(max_pool2d_forward, x, pool_size=pool_size, strides=strides, padding=padding)


def max_pool1d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    return _pool1d(max_pool2d_backward, x, dy, pool_size=pool_size, strides=strides,
                   padding=padding)


def avg_pool1d_forward(x, pool_size=2, strides=None, padding="valid"):
    return _pool1d(avg_pool2d_forward, x, pool_size=pool_size, strides=strides, padding=padding)


def avg_pool1d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    return _pool1d(avg_pool2d_backward, x, dy, pool_size=pool_size, strides=strides,
                   padding=padding)


# ---- global pooling (any rank: every axis but the batch and the last is reduced) ----

def _spatial_axes(x):
    return tuple(range(1, np.ndim(x) - 1))


def global_avg_pool_forward(x, keepdims=False):
    x = np.asarray(x, np.float64)
    return x.mean(axis=_spatial_axes(x), keepdims=keepdims)


def global_avg_pool_backward(x, dy):
    """dy is (batch, c) or the keepdims shape."""
    x = np.asarray(x, np.float64)
    count = x[0, ..., 0].size
    dy = np.asarray(dy, np.float64).reshape(x.shape[0], *([1] * (x.ndim - 2)), x.shape[-1])
    return np.broadcast_to(dy / count, x.shape).copy()


def global_max_pool_forward(x, keepdims=False):
    x = np.asarray(x, np.float64)
    return x.max(axis=_spatial_axes(x), keepdims=keepdims)


def global_max_pool_backward(x, dy):
    """The gradient of each (sample, channel) goes to its first maximal element in
    row-major order over the spatial axes."""
    x = np.asarray(x, np.float64)
    n, c = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, c)
    first = flat.argmax(axis=1)
    dx = np.zeros_like(flat)
    rows, cols = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    dx[rows, first, cols] = np.asarray(dy, np.float64).reshape(n, c)
    return dx.reshape(x.shape)
