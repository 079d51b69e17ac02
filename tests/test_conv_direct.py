"""The direct convolution kernels (csrc/conv_direct.c) give the bits of the patch path.

``conv_train_forward`` / ``conv_train_backward`` run a convolution either through patches
(im2col, the GEMM of each chunk of images, col2im) or, without any patch matrix, through the
direct kernels, which promise the very same bits: the GEMM's k-blocks for each chunk's shape,
the chunks' kernel gradients added in order, col2im's order of additions. ``direct=False`` /
``direct=True`` force one path; every case below compares them byte for byte, forward, kernel
gradient and input gradient, on every instruction-set path, in float32 and float64, on one
and two threads.
"""
import numpy as np
import pytest

import minidl
from minidl._core import _backend
from minidl._core import _convolution as kernels
from minidl.layers import CallContext, Conv1D, Conv2D

ARCHS = _backend.supported_archs()


@pytest.fixture
def restore_backend():
    arch, threads = _backend.get_arch(), minidl.get_num_threads()
    yield
    _backend.set_arch(arch)
    minidl.set_num_threads(threads)


def _out_and_pad(size, kernel, stride, dilation, padding):
    """Keras' output length and zeros before the input ('causal': all before)."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total if padding == "causal" else total // 2


def _window(h, w, kh, kw, sh, sw, dh, dw, padding):
    oh, pt = _out_and_pad(h, kh, sh, dh, "valid" if padding == "causal" else padding)
    ow, pl = _out_and_pad(w, kw, sw, dw, padding)
    return dict(kernel_size=(kh, kw), strides=(sh, sw), dilation=(dh, dw), pads=(pt, pl),
                out_hw=(oh, ow))


def _all_paths(x, kernel, dz, chunk, window, need_dx=True):
    """(z, d_kernel, dx) of the patch path, of the direct kernels and of the default plan
    (the direct kernels, perhaps with the patch path's input gradient), outputs prefilled
    with NaN so that a value left unwritten shows."""
    n, h, w, c = x.shape
    k, f = kernel.shape
    rows = n * window["out_hw"][0] * window["out_hw"][1]
    cols = np.empty((min(chunk, n) * rows // max(n, 1), k), x.dtype)
    dcols = np.empty_like(cols)
    results = []
    for direct in (False, True, None):
        z = np.full((rows, f), np.nan, x.dtype)
        kernels.conv_train_forward(x, kernel, z, cols, chunk, False, direct=direct, **window)
        d_kernel = np.full((k, f), np.nan, x.dtype)
        dx = np.full(x.shape, np.nan, x.dtype) if need_dx else None
        kernels.conv_train_backward(x, dz, kernel, d_kernel, dx, cols, dcols, chunk, False,
                                    direct=direct, **window)
        results.append((z, d_kernel, dx))
    return results


def _assert_same_bits(case, chunk=None, need_dx=True, seed=0):
    n, h, w, c, f, kh, kw, sh, sw, dh, dw, padding = case
    window = _window(h, w, kh, kw, sh, sw, dh, dw, padding)
    rng = np.random.default_rng(seed)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((n, h, w, c)).astype(dtype)
        kernel = rng.standard_normal((kh * kw * c, f)).astype(dtype)
        rows = n * window["out_hw"][0] * window["out_hw"][1]
        dz = rng.standard_normal((rows, f)).astype(dtype)
        x[0, 0, 0, 0] = -0.0   # col2im turns a -0 patch gradient into +0: so must we
        patches, *others = _all_paths(x, kernel, dz, chunk or max(1, n // 2), window, need_dx)
        for path, results in zip(("direct", "default"), others):
            for name, want, got in zip(("z", "d_kernel", "dx"), patches, results):
                if want is None:
                    continue
                assert want.tobytes() == got.tobytes(), (
                    f"{name} differs ({path}) on {_backend.get_arch()} "
                    f"{np.dtype(dtype).name} {minidl.get_num_threads()} threads, case {case}: "
                    f"max |diff| {np.nanmax(np.abs(want - got))}")


# (n, h, w, c, filters, kh, kw, sh, sw, dh, dw, padding)
CASES = [
    (4, 28, 28, 16, 16, 3, 3, 1, 1, 1, 1, "same"),     # the residual network's convolution
    (2, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"),    # the reference CNN's second one
    (2, 14, 14, 32, 32, 3, 3, 1, 1, 1, 1, "same"),     # the autoencoder's second one
    (3, 9, 8, 1, 16, 3, 3, 1, 1, 1, 1, "same"),        # a first layer, grey images
    (2, 9, 9, 3, 17, 5, 5, 1, 1, 1, 1, "same"),
    (5, 8, 11, 17, 3, 5, 5, 2, 2, 1, 1, "same"),
    (1, 12, 12, 16, 32, 3, 3, 2, 2, 1, 1, "valid"),
    (3, 10, 9, 64, 1, 1, 7, 1, 1, 1, 1, "same"),
    (2, 7, 12, 3, 16, 1, 7, 1, 3, 1, 2, "valid"),
    (2, 11, 11, 16, 17, 3, 3, 1, 1, 2, 2, "same"),     # dilation
    (3, 12, 10, 32, 3, 3, 3, 3, 2, 2, 1, "same"),
    (4, 9, 9, 1, 32, 1, 1, 3, 3, 1, 1, "valid"),       # stride above the kernel
    (2, 10, 10, 17, 16, 2, 2, 3, 3, 1, 1, "valid"),
    (2, 2, 3, 16, 16, 5, 5, 1, 1, 1, 1, "same"),       # kernel larger than the input
    (3, 5, 4, 3, 64, 3, 3, 2, 2, 2, 2, "same"),
    (2, 6, 6, 16, 16, 1, 1, 1, 1, 1, 1, "same"),       # pointwise geometry, forced direct
    (3, 1, 30, 16, 32, 1, 5, 1, 1, 1, 1, "same"),      # Conv1D shapes: one row high
    (2, 1, 25, 3, 16, 1, 3, 1, 2, 1, 2, "causal"),
    (1, 1, 40, 17, 3, 1, 4, 1, 3, 1, 1, "valid"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: "x".join(map(str, case[:5])) + "-" +
                         "".join(map(str, case[5:11])) + case[11])
@pytest.mark.parametrize("arch", ARCHS)
def test_direct_kernels_give_the_bits_of_the_patch_path(case, arch, restore_backend):
    _backend.set_arch(arch)
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        _assert_same_bits(case)


@pytest.mark.parametrize("arch", ARCHS)
def test_direct_kernels_follow_the_chunks_and_k_blocks(arch, restore_backend):
    """The GEMM's k-blocks: its packed path splits k when B exceeds its direct path's
    bound, here in each of the three products (forced direct where the rule would not take
    them), chunk sizes leaving a short last chunk; and a kernel gradient without dx."""
    _backend.set_arch(arch)
    for threads in (1, 2):
        minidl.set_num_threads(threads)
        _assert_same_bits((3, 9, 9, 64, 128, 3, 3, 1, 1, 1, 1, "same"), chunk=2)   # forward
        _assert_same_bits((2, 28, 28, 16, 128, 3, 3, 1, 1, 1, 1, "same"), chunk=1)  # d_kernel
        _assert_same_bits((3, 10, 10, 256, 400, 1, 1, 2, 2, 1, 1, "valid"), chunk=3)  # dx
        _assert_same_bits((5, 6, 6, 3, 20, 3, 3, 1, 1, 1, 1, "same"), chunk=2, need_dx=False)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_kernel_gradient_split_by_rows_gives_the_bits_of_the_patch_path(arch, threads,
                                                                       restore_backend):
    """With at least one k-block per thread, the threads sum whole blocks of rows in waves
    and the sums are added in block order (conv_direct_driver.inc, backward_rows_part):
    full and partial waves (13 blocks on 2, 3 and 4 threads), chunks of one block and of
    many, the transposed tile (32 channels) and the other (8), and with fewer blocks (3)
    than threads (4) the split by tiles."""
    _backend.set_arch(arch)
    minidl.set_num_threads(threads)
    _assert_same_bits((7, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"), chunk=3)
    _assert_same_bits((3, 40, 40, 8, 16, 5, 5, 1, 1, 1, 1, "same"), chunk=3)


@pytest.mark.parametrize("threads", [1, 2])
def test_input_gradient_alone_takes_as_many_images_as_dcols_holds(threads, restore_backend):
    """After the direct kernel gradient, the patch path's input gradient runs alone; no sum
    crosses its chunks, so a dcols of several chunks (as a layer sizes it for its threads)
    gives the bits of one chunk at a time, and the kernel gradient keeps its chunking."""
    minidl.set_num_threads(threads)
    window = _window(13, 13, 3, 3, 1, 1, 1, 1, "valid")
    assert kernels.direct_plan((13, 13, 32), 64, 4, False, **window)[:2] == (True, False)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 13, 13, 32)).astype(np.float32)
    kernel = rng.standard_normal((288, 64)).astype(np.float32)
    dz = rng.standard_normal((7 * 121, 64)).astype(np.float32)
    results = []
    for chunks in (1, 3, 4):   # dcols of 2, 6 and 8 images; the chunk stays 2 images
        dcols = np.empty((2 * chunks * 121, 288), np.float32)
        d_kernel, dx = np.empty((288, 64), np.float32), np.empty_like(x)
        kernels.conv_train_backward(x, dz, kernel, d_kernel, dx, None, dcols, 2, False,
                                    **window)
        results.append((d_kernel.tobytes(), dx.tobytes()))
    assert results[0] == results[1] == results[2]


def test_direct_kernels_on_two_threads_split_rows_of_one_image(restore_backend):
    """One image and enough work for two threads: the rows are shared, the padded copy
    written before either reads it."""
    minidl.set_num_threads(2)
    _assert_same_bits((1, 40, 40, 16, 32, 3, 3, 1, 1, 1, 1, "same"))


def test_direct_plan_rule():
    window = _window(28, 28, 3, 3, 1, 1, 1, 1, "same")
    assert kernels.direct_plan((28, 28, 16), 16, 4, False, **window) == (True, True,
                                                                        (30, 30, 16))
    # the input gradient through the patch gradient: channels not filling 64-byte vectors,
    # or narrow images
    assert kernels.direct_plan((28, 28, 3), 16, 4, False, **window) == (True, False,
                                                                       (30, 30, 3))
    assert kernels.direct_plan((13, 13, 32), 64, 4, False,
                               **_window(13, 13, 3, 3, 1, 1, 1, 1, "valid")) == (True, False,
                                                                                None)
    # rows of 12 to 19 outputs: direct with at most one 64-byte vector of filters (the
    # autoencoder's 14x14, 32 -> 32), the patch gradient with more
    same14 = _window(14, 14, 3, 3, 1, 1, 1, 1, "same")
    assert kernels.direct_plan((14, 14, 32), 16, 4, False, **same14) == (True, True,
                                                                         (16, 16, 32))
    assert kernels.direct_plan((14, 14, 32), 64, 4, False, **same14) == (True, False,
                                                                         (16, 16, 32))
    assert kernels.direct_plan((14, 14, 16), 16, 8, False, **same14) == (True, True,
                                                                         (16, 16, 16))
    assert kernels.direct_plan((11, 11, 16), 16, 4, False,
                               **_window(11, 11, 3, 3, 1, 1, 1, 1, "same")) == (True, False,
                                                                                (13, 13, 16))
    # pointwise: the patch matrix is x itself
    assert kernels.direct_plan((28, 28, 16), 16, 4, True,
                               **_window(28, 28, 1, 1, 1, 1, 1, 1, "valid")) == (False, False,
                                                                                None)
    # a kernel matrix above DIRECT_MAX_KERNEL_BYTES stays with the GEMM
    big = kernels.DIRECT_MAX_KERNEL_BYTES // (9 * 64 * 4) + 1
    assert kernels.direct_plan((28, 28, 64), big, 4, False, **window) == (False, False, None)
    # windows inside the image: x is read in place
    assert kernels.direct_plan((28, 28, 16), 16, 4, False,
                               **_window(28, 28, 3, 3, 1, 1, 1, 1, "valid")) == (True, True,
                                                                                None)


def test_padded_copy_is_reused_by_the_backward_pass():
    window = _window(10, 10, 3, 3, 1, 1, 1, 1, "same")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 10, 10, 16)).astype(np.float32)
    kernel = rng.standard_normal((144, 8)).astype(np.float32)
    dz = rng.standard_normal((200, 8)).astype(np.float32)
    padded = np.full((2, 12, 12, 16), np.nan, np.float32)
    z = np.empty((200, 8), np.float32)
    kernels.conv_train_forward(x, kernel, z, None, 1, False, padded=padded, **window)
    want = np.zeros((2, 12, 12, 16), np.float32)
    want[:, 1:11, 1:11] = x
    assert padded.tobytes() == want.tobytes()
    grads = []
    for ready in (False, True):
        d_kernel, dx = np.empty_like(kernel), np.empty_like(x)
        kernels.conv_train_backward(x, dz, kernel, d_kernel, dx, None, None, 1, False,
                                    padded=padded, padded_ready=ready, direct=True, **window)
        grads.append(d_kernel.tobytes() + dx.tobytes())
    assert grads[0] == grads[1]
    with pytest.raises(ValueError, match="padded must be"):
        kernels.conv_train_forward(x, kernel, z, None, 1, False, padded=padded[:, :11],
                                   **window)


def test_direct_kernels_accept_misaligned_inputs_and_refuse_a_misaligned_output():
    window = _window(6, 6, 3, 3, 1, 1, 1, 1, "same")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    kernel = rng.standard_normal((27, 5)).astype(np.float32)
    z = np.empty((72, 5), np.float32)
    kernels.conv_train_forward(x, kernel, z, None, 1, False, **window)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    shifted = np.frombuffer(raw.data, np.float32, x.size, 1).reshape(x.shape)
    shifted[...] = x
    z2 = np.empty_like(z)
    kernels.conv_train_forward(shifted, kernel, z2, None, 1, False, **window)
    assert z.tobytes() == z2.tobytes()
    raw_z = np.zeros(z.nbytes + 1, np.uint8)
    with pytest.raises(ValueError, match="z must be aligned"):
        kernels.conv_train_forward(
            x, kernel, np.frombuffer(raw_z.data, np.float32, z.size, 1).reshape(z.shape), None,
            1, False, **window)


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2D(16, 3, padding="same", activation="relu"), (6, 7, 16)),
    (lambda: Conv2D(8, (2, 3), strides=2, dilation_rate=1), (9, 8, 3)),
    (lambda: Conv1D(16, 5, padding="causal", dilation_rate=2), (30, 16)),
])
def test_layer_training_step_gives_the_same_bits_with_either_path(make, shape, monkeypatch):
    """A layer's forward and backward through the direct kernels (keeping the padded copy
    from one to the other) against the same layer on the patch path."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5,) + shape).astype(np.float32)
    results = []
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(kernels, "direct_plan", lambda *args, **kw: (False, False, None))
        minidl.utils.set_random_seed(0)
        layer = make()
        ctx = CallContext(layer)
        y = ctx.forward(x, training=True)
        assert layer._geo(x.shape[1:-1]).direct is direct
        dx = ctx.backward(np.ones_like(y))
        results.append(b"".join(a.tobytes() for a in [y, dx] + ctx.grads))
    assert results[0] == results[1]


def test_empty_batches_and_zero_filters():
    window = _window(5, 5, 3, 3, 1, 1, 1, 1, "same")
    x = np.zeros((0, 5, 5, 4), np.float32)
    kernel = np.ones((36, 3), np.float32)
    kernels.conv_train_forward(x, kernel, np.empty((0, 3), np.float32), None, 1, False,
                               direct=True, **window)
    d_kernel = np.full((36, 3), np.nan, np.float32)
    kernels.conv_train_backward(x, np.empty((0, 3), np.float32), kernel, d_kernel,
                                np.empty((0, 5, 5, 4), np.float32), None, None, 1, False,
                                direct=True, **window)
    assert not d_kernel.any()
