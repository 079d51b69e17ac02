"""One CPU dispatch for every kernel (csrc/kernels.h): the active kernel table, which
MINIDL_ARCH at import and ``_backend.set_arch`` select, holds each family's version of that
architecture; and the versions keep their families' promises about bits.

- Every family (gemm, conv_pool, optimizers, pooling, patches, recurrent, batchnorm) reports
  the selected architecture, read from the version's own tag in the table.
- The optimizer updates (no FMA contraction), max pooling and im2col / col2im (compare,
  select, copy, add) give the same bits under every architecture this CPU runs.
- conv_pool.c follows the GEMM of its table: tests/test_conv_pool.py checks its forward
  against im2col + GEMM + pooling under each architecture.
"""
import numpy as np
import pytest

import minidl
from minidl._core import _backend
from minidl._core import _convolution, _pooling
from minidl._core import _optimizers

FAMILIES = ("gemm", "conv_pool", "optimizers", "pooling", "patches", "recurrent",
            "batchnorm")
ARCHS = _backend.supported_archs()
DTYPES = (np.float32, np.float64)

pytestmark = pytest.mark.usefixtures("one_thread")

needs_two_archs = pytest.mark.skipif(
    len(ARCHS) < 2, reason="this CPU runs only the generic kernels: nothing to compare")


@pytest.fixture
def restore_arch():
    previous = _backend.get_arch()
    try:
        yield
    finally:
        _backend.set_arch(previous)


def under_each_arch(compute):
    """{arch: compute()} for every architecture this CPU runs, restoring the active one."""
    previous = _backend.get_arch()
    try:
        results = {}
        for arch in ARCHS:
            _backend.set_arch(arch)
            results[arch] = compute()
        return results
    finally:
        _backend.set_arch(previous)


def assert_same_bits(results, what):
    """Every architecture's arrays have generic's bits (as raw bytes: -0.0 is not 0.0)."""
    want = results["generic"]
    for arch, got in results.items():
        assert len(got) == len(want)
        for i, (a, b) in enumerate(zip(got, want)):
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape
            unsigned = np.dtype(f"u{a.dtype.itemsize}")
            np.testing.assert_array_equal(a.view(unsigned), b.view(unsigned),
                                          err_msg=f"{what}: array {i} under {arch}")


# ---- which version each family runs ----

@pytest.mark.parametrize("arch", ARCHS)
def test_every_family_runs_the_selected_architecture(restore_arch, arch):
    assert _backend.set_arch(arch) == arch
    versions = _backend.kernel_versions()
    assert versions == {family: arch for family in FAMILIES}
    assert minidl.backend_info()["kernel_versions"] == versions


def test_auto_selects_the_best_for_every_family(restore_arch):
    _backend.set_arch("generic")
    best = _backend.set_arch("auto")
    assert best == ARCHS[-1]
    assert set(_backend.kernel_versions().values()) == {best}


def test_show_config_lists_each_family_and_its_version(capsys, restore_arch):
    _backend.set_arch("generic")
    minidl.show_config()
    line = next(line for line in capsys.readouterr().out.splitlines()
                if "kernel_versions" in line)
    assert line.split(":", 1)[1].strip() == ", ".join(f"{f} generic" for f in FAMILIES)


# ---- optimizer updates: the same bits under every architecture ----

def _values(rng, n, dtype, scale=1.0):
    """Random values with the awkward ones here and there: zeros of both signs, values far
    past any clip, and denormals (flushed to zero by the updates)."""
    x = (rng.standard_normal(n) * scale).astype(dtype)
    x[::17] = 0.0
    x[5::23] = -0.0
    x[3::29] *= 1e4
    x[7::31] = np.finfo(dtype).tiny / 4
    return x


def _slot(rng, n, dtype):
    return rng.uniform(0.0, 1.0, n).astype(dtype)


# (name, kernel, builder(p, g, slot) -> (positional args, indices of the arrays updated)).
# The options cover each loop of csrc/optimizers.inc; the scalars after the arrays are
# (weight_decay, grad_scale, clip_value), added by the test.
OPTIMIZER_CASES = [
    ("sgd", "sgd", lambda p, g, s: ([p, g, None, 0.1, 0.0, False], [0])),
    ("sgd_momentum", "sgd", lambda p, g, s: ([p, g, s(), 0.1, 0.9, False], [0, 2])),
    ("sgd_nesterov", "sgd", lambda p, g, s: ([p, g, s(), 0.1, 0.9, True], [0, 2])),
    ("adam", "adam", lambda p, g, s: (
        [p, g, s(), s(), None, 0.01, 0.9, 0.999, 1e-7, 0.02], [0, 2, 3])),
    ("adam_amsgrad", "adam", lambda p, g, s: (
        [p, g, s(), s(), s(), 0.01, 0.9, 0.999, 1e-7, 0.02], [0, 2, 3, 4])),
    ("rmsprop", "rmsprop", lambda p, g, s: (
        [p, g, s() + 1, None, None, 0.01, 0.9, 0.0, 1e-7], [0, 2])),
    ("rmsprop_momentum", "rmsprop", lambda p, g, s: (
        [p, g, s() + 1, s(), None, 0.01, 0.9, 0.5, 1e-7], [0, 2, 3])),
    ("rmsprop_centered", "rmsprop", lambda p, g, s: (
        [p, g, s() + 1, None, s() * 0.1, 0.01, 0.9, 0.0, 1e-7], [0, 2, 4])),
    ("rmsprop_centered_momentum", "rmsprop", lambda p, g, s: (
        [p, g, s() + 1, s(), s() * 0.1, 0.01, 0.9, 0.5, 1e-7], [0, 2, 3, 4])),
    ("adagrad", "adagrad", lambda p, g, s: ([p, g, s(), 0.05, 1e-7], [0, 2])),
    ("nadam", "nadam", lambda p, g, s: (
        [p, g, s(), s(), 0.01, 0.9, 0.999, 1e-7, 0.7, 0.1, 0.05], [0, 2, 3])),
]


@needs_two_archs
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [(0.0, 1.0, 0.0), (0.01, 0.5, 0.3)],
                         ids=["plain", "decay-scale-clip"])
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda c: c[0])
def test_optimizer_updates_give_the_same_bits_under_every_architecture(case, options, dtype):
    name, kernel, build = case
    n = 1037   # vector bodies and a tail for every width

    def three_steps():
        rng = np.random.default_rng(7)
        p = _values(rng, n, dtype)
        args, updated = build(p, None, lambda: _slot(rng, n, dtype))
        for step in range(3):
            args[1] = _values(rng, n, dtype, scale=0.5 + step)
            getattr(_optimizers, kernel)(*args, *options)
        return [args[i] for i in updated]

    assert_same_bits(under_each_arch(three_steps), name)


@needs_two_archs
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sum_of_squares_gives_the_same_bits_under_every_architecture(dtype):
    x = _values(np.random.default_rng(3), 4099, dtype)
    sums = under_each_arch(lambda: [np.float64(_optimizers.sum_of_squares(x))])
    assert_same_bits(sums, "sum_of_squares")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_version_of_the_updates_flushes_denormals(restore_arch, arch):
    _backend.set_arch(arch)
    tiny = np.finfo(np.float32).tiny
    p, v = np.ones(40, np.float32), np.ones(40, np.float32)
    m = np.full(40, tiny / 8, np.float32)   # 40: the vector body of every width, not a tail
    _optimizers.adam(p, np.zeros(40, np.float32), m, v, None, 1e-3, 0.9, 0.999, 1e-7, 1e-3,
                     0.0, 1.0, 0.0)
    np.testing.assert_array_equal(m, 0.0)


# ---- max pooling: the same bits under every architecture ----

def _pool_input(shape, dtype, seed):
    """Values with many ties (rounded), zeros of both signs and NaNs: the first maximum wins
    a tie and a NaN wins over any number, in every version."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)
    x[rng.random(shape) < 0.05] = -0.0
    x[rng.random(shape) < 0.02] = np.nan
    return x


# (n, h, w, c), strides, pads: the 2x2 windows run the row loop of csrc/pooling.c; channel
# counts below, at and past the vector widths leave tails.
POOL_CASES = [
    ((2, 8, 10, 37), (2, 2), (0, 0)),
    ((3, 7, 9, 16), (2, 2), (0, 0)),
    ((2, 9, 9, 5), (1, 1), (0, 0)),
    ((2, 9, 8, 33), (2, 2), (1, 1)),
]


@needs_two_archs
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape, strides, pads", POOL_CASES)
def test_max_pooling_gives_the_same_bits_under_every_architecture(shape, strides, pads,
                                                                  dtype):
    x = _pool_input(shape, dtype, 1)
    n, h, w, c = shape
    out_h = (h + pads[0] - 2) // strides[0] + 1
    out_w = (w + pads[1] - 2) // strides[1] + 1
    dy = _pool_input((n, out_h, out_w, c), dtype, 2)

    def forward_backward():
        y = np.empty((n, out_h, out_w, c), dtype)
        argmax = np.empty(y.shape, np.intc)
        _pooling.max_pool_forward(x, y, argmax, (2, 2), strides, pads)
        results = [y, argmax]
        for gate in (None, y):   # windows that tile the image: csrc/pooling.c's unpool loop
            dx = np.empty_like(x)
            _pooling.max_pool_backward(dy, argmax, dx, (2, 2), strides, pads, gate=gate)
            results.append(dx)
        return results

    assert_same_bits(under_each_arch(forward_backward), f"max pooling {shape}")


# ---- im2col / col2im: the same bits under every architecture ----

# (n, h, w, c), kernel, strides, dilation, pads (top, left); the output size keeps the
# padding symmetric. Each has runs of kw * c >= 16 values and no dilation across, which
# _convolution.pyx copies and adds with csrc/patches.c; strides below the kernel's width make
# col2im add overlapping runs.
PATCH_CASES = [
    ((2, 9, 11, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 10, 9, 16), (3, 3), (2, 2), (1, 1), (0, 0)),
    ((1, 11, 12, 37), (2, 3), (2, 1), (2, 1), (0, 1)),
    ((3, 6, 7, 8), (5, 5), (1, 1), (1, 1), (2, 2)),
]


@needs_two_archs
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("shape, kernel, strides, dilation, pads", PATCH_CASES)
def test_im2col_and_col2im_give_the_same_bits_under_every_architecture(
        shape, kernel, strides, dilation, pads, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(dtype)
    n, h, w, c = shape
    out_hw = tuple((size + 2 * pad - d * (k - 1) - 1) // s + 1
                   for size, pad, d, k, s in zip((h, w), pads, dilation, kernel, strides))
    rows, taps = n * out_hw[0] * out_hw[1], kernel[0] * kernel[1] * c
    dcols = rng.standard_normal((rows, taps)).astype(dtype)

    def patches():
        cols = np.empty((rows, taps), dtype)
        _convolution.im2col(x, cols, kernel, strides, dilation, pads, out_hw)
        dx = np.empty_like(x)
        _convolution.col2im(dcols, dx, kernel, strides, dilation, pads, out_hw)
        return [cols, dx]

    assert_same_bits(under_each_arch(patches), f"im2col / col2im {shape}")
