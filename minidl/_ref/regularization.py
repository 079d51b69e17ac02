"""Reference for ``minidl._core._regularization``: the same kernels in plain numpy.

Same names and signatures; results are written into the caller's arrays like the kernels,
dropout masks bit for bit (the same splitmix64 counter hash, in numpy's wrapping uint64).
"""
import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(key, counter):
    z = np.uint64(key) + (counter + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _kept(n, rate, key):
    """Which of n elements a call with ``key`` keeps: element 2j and 2j + 1 compare the low
    and high 32 bits of splitmix64(key, j) with keep * 2^32."""
    h = _splitmix64(key, np.arange((n + 1) // 2, dtype=np.uint64))
    bits = np.empty(2 * h.size, np.uint64)
    bits[0::2] = h & np.uint64(0xFFFFFFFF)
    bits[1::2] = h >> np.uint64(32)
    return bits[:n] < np.uint64(int((1.0 - rate) * 4294967296.0))


def dropout_forward(x, mask, y, rate, key, owner=None):
    dropout_mask(mask, rate, key)
    y[...] = x * mask
    return y


def dropout_mask(mask, rate, key, owner=None):
    kept = _kept(mask.size, rate, key).reshape(mask.shape)
    mask[...] = np.where(kept, mask.dtype.type(1.0 / (1.0 - rate)), 0)
    return mask


def dropout_backward(dy, mask, dx, owner=None):
    dx[...] = dy * mask
    return dx


def l1l2_penalty(x, l1, l2, scale=1.0, grad_in=None, grad_out=None, owner=None):
    x64 = x.astype(np.float64)
    if grad_out is not None:
        g = scale * (l1 * np.sign(x64) + 2.0 * l2 * x64)
        grad_out[...] = g if grad_in is None else grad_in + g
    return float(scale * (l1 * np.abs(x64).sum() + l2 * (x64 * x64).sum()))


def alpha_dropout_forward(x, mask, y, rate, key, a, b, dropped, owner=None):
    kept = _kept(x.size, rate, key).reshape(x.shape)
    mask[...] = np.where(kept, mask.dtype.type(a), 0)
    y[...] = np.where(kept, x * mask.dtype.type(a) + mask.dtype.type(b),
                      mask.dtype.type(dropped))
    return y


def alpha_dropout_mask(mask, rate, key, a, owner=None):
    kept = _kept(mask.size, rate, key).reshape(mask.shape)
    mask[...] = np.where(kept, mask.dtype.type(a), 0)
    return mask


def _standard_normal(n, key):
    """The kernels' normal values: Box-Muller of splitmix64 outputs 2j and 2j + 1 of ``key``
    for elements 2j and 2j + 1, with numpy's cos and sin where the kernel evaluates
    polynomials (the two agree within 1e-15)."""
    pairs = (n + 1) // 2
    j = np.arange(pairs, dtype=np.uint64)
    u1 = ((_splitmix64(key, 2 * j) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    u2 = (_splitmix64(key, 2 * j + np.uint64(1)) >> np.uint64(11)).astype(np.float64) \
        * 2.0 ** -53
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.empty(2 * pairs)
    z[0::2] = r * np.cos(2 * np.pi * u2)
    z[1::2] = r * np.sin(2 * np.pi * u2)
    return z[:n]


def gaussian_noise_forward(x, y, stddev, key, owner=None):
    noise = (stddev * _standard_normal(x.size, key)).astype(x.dtype).reshape(x.shape)
    y[...] = x + noise
    return y


def gaussian_dropout_forward(x, noise, y, stddev, key, owner=None):
    noise[...] = (1.0 + stddev * _standard_normal(x.size, key)).reshape(x.shape)
    y[...] = x * noise
    return y
