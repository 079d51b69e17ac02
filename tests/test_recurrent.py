"""Recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional): the compiled kernel against the
numpy reference and PyTorch, gradient checks, masks, states, dropout, threads, errors."""
import numpy as np
import pytest

import minidl
from minidl._core import _backend, _recurrent
from minidl._ref import recurrent as ref
from minidl._ref.gradcheck import numeric_grad
from minidl.layers import GRU, LSTM, Bidirectional, CallContext, SimpleRNN

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CELLS = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _random_weights(layer, rng, scale=0.5):
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])


def _run(layer, x, dys, initial=None, mask=None, training=True):
    """Forward and backward through a CallContext: (outputs as a list, dx, d_initial,
    weight grads)."""
    ctx = CallContext(layer)
    inputs = [x] + list(initial) if initial is not None else x
    if not layer.built:
        layer.ensure_built(x.shape[1:])
    ctx.mask = mask
    out = layer.forward(ctx, inputs, training)
    outs = [o.copy() for o in out] if isinstance(out, list) else [out.copy()]
    back = ctx.backward(list(dys) if len(dys) > 1 else dys[0],
                        [True] * (1 + len(initial)) if initial is not None else True)
    if initial is not None:
        dx, d_initial = back[0], [d.copy() for d in back[1:]]
    else:
        dx, d_initial = back, []
    return outs, dx.copy(), d_initial, [g.copy() for g in ctx.grads]


def _layer(cell, units, dtype="float64", **kwargs):
    return CELLS[cell](units, dtype=dtype, **kwargs)


# ---- the kernel against the numpy reference, every option ----

@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("options", [
    dict(), dict(return_sequences=True), dict(go_backwards=True),
    dict(return_sequences=True, go_backwards=True, masked=True),
    dict(masked=True), dict(return_sequences=True, masked=True, zero_output_for_mask=True),
    dict(return_sequences=True, rdrop=True, masked=True)])
def test_kernel_matches_reference(cell, options):
    rng = np.random.default_rng(1)
    options = dict(options)
    masked, rdrop = options.pop("masked", False), options.pop("rdrop", False)
    n, steps, features, units = 3, 6, 4, 5
    k = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = rng.standard_normal((n, steps, features))
    W = rng.standard_normal((features, k * units)) * 0.5
    U = rng.standard_normal((units, k * units)) * 0.5
    b = rng.standard_normal((2, k * units) if cell == "gru" else (k * units,))
    h0 = rng.standard_normal((n, units))
    c0 = rng.standard_normal((n, units)) if cell == "lstm" else None
    mask = rng.random((n, steps)) > 0.4 if masked else None
    rmask = (rng.random((n, units)) > 0.3) / 0.7 if rdrop else None
    seqs = options.get("return_sequences", False)
    back = options.get("go_backwards", False)
    zero = options.get("zero_output_for_mask", False)
    outs, last, h, c, cache = ref.rnn_forward(cell, x, W, U, b, h0, c0, mask, rmask, back,
                                              zero_output_for_mask=zero)

    def e(*shape):
        return np.full(shape, np.nan)
    G, Hp = e(n, steps, k * units), e(n, steps, units)
    Cp, AC = (e(n, steps, units), e(n, steps, units)) if cell == "lstm" else (None, None)
    RH, R = (e(n, steps, units), e(n, k * units)) if cell == "gru" else (None, None)
    Hin = e(n, steps, units) if rdrop else None
    hk, ck = h0.copy(), None if c0 is None else c0.copy()
    out = e(n, steps, units) if seqs else e(n, units)
    m8 = None if mask is None else mask.view(np.uint8)
    kw = dict(go_backwards=back, zero_output_for_mask=zero, return_sequences=seqs)
    _recurrent.forward(cell, x, W, U, b, hk, ck, m8, rmask, G, Hp, Cp, AC, RH, Hin, R, out, **kw)
    np.testing.assert_allclose(out, outs if seqs else last, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(hk, h, rtol=1e-12, atol=1e-13)
    if c is not None:
        np.testing.assert_allclose(ck, c, rtol=1e-12, atol=1e-13)
    dY = rng.standard_normal(out.shape)
    dhT = rng.standard_normal((n, units))
    dcT = rng.standard_normal((n, units)) if cell == "lstm" else None
    want = ref.rnn_backward(cache, dY if seqs else None, None if seqs else dY, dhT, dcT)
    dG = e(n, steps, k * units)
    dR = e(n, steps, k * units) if cell == "gru" else dG
    dh, dc = dhT.copy(), None if dcT is None else dcT.copy()
    dx, dW, dU, db = e(*x.shape), e(*W.shape), e(*U.shape), e(*b.shape)
    _recurrent.backward(cell, x, W, U, m8, rmask, G, Hp, Cp, AC, RH, Hin, dY, dG, dR, dh, dc,
                        e(n, units), e(n, units) if rdrop else None, dx, dW, dU, db, **kw)
    for got, expected in zip((dx, dW, dU, db, dh, dc), want):
        if expected is not None:
            np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)


# ---- against PyTorch ----

def _torch_module(cell, layer, torch):
    units = layer.units
    features = layer.kernel.shape[0]
    module = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM,
              "gru": torch.nn.GRU}[cell](features, units, batch_first=True).double()
    W, U, b = [w.astype(np.float64) for w in layer.get_weights()]

    def reorder(a):
        # Keras GRU gates z, r, h; PyTorch r, z, n. LSTM and SimpleRNN: the same order.
        if cell != "gru":
            return a
        z, r, h = np.split(a, 3, axis=0)
        return np.concatenate([r, z, h], axis=0)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(reorder(W.T)))
        module.weight_hh_l0.copy_(torch.from_numpy(reorder(U.T)))
        if cell == "gru":
            module.bias_ih_l0.copy_(torch.from_numpy(reorder(b[0])))
            module.bias_hh_l0.copy_(torch.from_numpy(reorder(b[1])))
        else:
            module.bias_ih_l0.copy_(torch.from_numpy(b))
            module.bias_hh_l0.zero_()
    return module, reorder


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_matches_pytorch(cell, dtype, tol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    n, steps, features, units = 4, 7, 5, 6
    layer = _layer(cell, units, dtype, return_sequences=True, return_state=True)
    layer.build((steps, features))
    _random_weights(layer, rng)
    x = rng.standard_normal((n, steps, features)).astype(dtype)
    count = 2 if cell == "lstm" else 1
    initial = [rng.standard_normal((n, units)).astype(dtype) for _ in range(count)]
    dys = [rng.standard_normal((n, steps, units)).astype(dtype)] + \
        [rng.standard_normal((n, units)).astype(dtype) for _ in range(count)]
    outs, dx, d_initial, grads = _run(layer, x, dys, initial)

    module, reorder = _torch_module(cell, layer, torch)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tinit = [torch.tensor(s[None], dtype=torch.float64, requires_grad=True) for s in initial]
    ty, tstates = module(tx, tuple(tinit) if cell == "lstm" else tinit[0])
    tstates = list(tstates) if cell == "lstm" else [tstates]
    loss = (ty * torch.from_numpy(dys[0].astype(np.float64))).sum()
    for s, d in zip(tstates, dys[1:]):
        loss = loss + (s[0] * torch.from_numpy(d.astype(np.float64))).sum()
    loss.backward()

    def close(got, want, what):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=what)
    close(outs[0], ty.detach().numpy(), "outputs")
    for got, want in zip(outs[1:], tstates):
        close(got, want[0].detach().numpy(), "final state")
    close(dx, tx.grad.numpy(), "input gradient")
    for got, want in zip(d_initial, tinit):
        close(got, want.grad[0].numpy(), "initial state gradient")
    close(grads[0], reorder(module.weight_ih_l0.grad.numpy()).T, "kernel gradient")
    close(grads[1], reorder(module.weight_hh_l0.grad.numpy()).T, "recurrent gradient")
    if cell == "gru":
        close(grads[2][0], reorder(module.bias_ih_l0.grad.numpy()), "input bias gradient")
        close(grads[2][1], reorder(module.bias_hh_l0.grad.numpy()), "recurrent bias gradient")
    else:
        close(grads[2], module.bias_ih_l0.grad.numpy(), "bias gradient")


# ---- gradient checks (float64 central differences) ----

@pytest.mark.parametrize("cell,kwargs", [
    ("lstm", dict()), ("gru", dict()), ("simple_rnn", dict()),
    ("lstm", dict(return_sequences=True, go_backwards=True)),
    ("gru", dict(reset_after=False, return_sequences=True)),
    ("simple_rnn", dict(activation="softsign", return_sequences=True)),
    ("lstm", dict(activation="relu", recurrent_activation="hard_sigmoid")),
    ("gru", dict(activation="elu", use_bias=False)),
])
def test_gradients_numeric(cell, kwargs):
    rng = np.random.default_rng(3)
    layer = _layer(cell, 3, **kwargs)
    x = rng.standard_normal((2, 4, 3))
    layer.build((4, 3))
    _random_weights(layer, rng)
    mask = np.array([[True, True, False, True], [True, False, True, True]])
    out_shape = (2, 4, 3) if layer.return_sequences else (2, 3)
    w = rng.standard_normal(out_shape)
    _, dx, _, grads = _run(layer, x, [w], mask=mask)

    def scalar():
        ctx = CallContext(layer, record=False)
        ctx.mask = mask
        return float(np.sum(layer.forward(ctx, x, False) * w))
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    for name, param, grad in zip(layer.param_names, layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


# ---- masks ----

@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("seqs", [False, True])
def test_padded_batch_equals_sequences_alone(cell, seqs):
    rng = np.random.default_rng(4)
    lengths = [5, 2, 4]
    steps, features, units = 5, 3, 4
    layer = _layer(cell, units, return_sequences=seqs)
    layer.build((steps, features))
    _random_weights(layer, rng)
    x = rng.standard_normal((3, steps, features))
    mask = np.arange(steps)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 7.0   # padding values must not matter
    w = rng.standard_normal((3, steps, units) if seqs else (3, units))
    if seqs:
        w[~mask] = 0   # (the padded steps repeat the last output: their gradient joins it)
    outs, dx, _, grads = _run(layer, x, [w], mask=mask)
    total = [np.zeros_like(g) for g in grads]
    for i, length in enumerate(lengths):
        wi = w[i:i + 1, :length] if seqs else w[i:i + 1]
        o, dxi, _, g = _run(layer, x[i:i + 1, :length].copy(), [np.ascontiguousarray(wi)])
        if seqs:
            np.testing.assert_allclose(outs[0][i, :length], o[0][0], rtol=1e-12, atol=1e-14)
            # Masked steps repeat the last output.
            np.testing.assert_allclose(outs[0][i, length:],
                                       np.broadcast_to(o[0][0, -1], (steps - length, units)))
        else:
            np.testing.assert_allclose(outs[0][i], o[0][0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dx[i, :length], dxi[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(dx[i, length:], 0)
        total = [t + gi for t, gi in zip(total, g)]
    for got, want in zip(grads, total):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_compute_mask():
    mask = np.array([[True, False]])
    assert LSTM(2).compute_mask(None, mask) is None
    assert LSTM(2, return_sequences=True).compute_mask(None, mask) is mask
    got = LSTM(2, return_sequences=True, return_state=True).compute_mask(None, mask)
    assert got[0] is mask and got[1:] == [None, None]
    assert GRU(2, return_state=True).compute_mask(None, mask) == [None, None]


# ---- stacking, go_backwards, configs ----

def test_go_backwards_reverses_time():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3))
    a = LSTM(4, return_sequences=True, dtype="float64")
    b = LSTM(4, return_sequences=True, go_backwards=True, dtype="float64")
    a.build((5, 3))
    b.build((5, 3))
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(np.asarray(b(x)), np.asarray(a(x[:, ::-1].copy())), rtol=1e-13)


def test_stacked_layers_gradients():
    rng = np.random.default_rng(6)
    first = GRU(4, return_sequences=True, dtype="float64")
    second = LSTM(3, dtype="float64")
    x = rng.standard_normal((2, 5, 3))
    first.build((5, 3))
    second.build((5, 4))
    _random_weights(first, rng)
    _random_weights(second, rng)
    w = rng.standard_normal((2, 3))

    def scalar():
        return float(np.sum(np.asarray(second(first(x))) * w))
    c1, c2 = CallContext(first), CallContext(second)
    c2.backward_in = None
    y = c2.forward(c1.forward(x, True), True)
    assert y.shape == (2, 3)
    dx = c1.backward(c2.backward(w)).copy()
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(c1.grads[1], numeric_grad(scalar, first.recurrent_kernel.value),
                               rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("layer", [
    LSTM(3, return_sequences=True, unit_forget_bias=False, dropout=0.2, seed=3),
    GRU(4, reset_after=False, recurrent_activation="hard_sigmoid", go_backwards=True),
    SimpleRNN(2, activation="relu", return_state=True, kernel_regularizer="l2"),
])
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert minidl.layers.get({"class_name": type(layer).__name__,
                              "config": config}).get_config() == config


def test_weight_layouts_and_forget_bias():
    layer = LSTM(3)
    layer.build((7, 5))
    assert [w.shape for w in layer.get_weights()] == [(5, 12), (3, 12), (12,)]
    assert layer.param_names == ["kernel", "recurrent_kernel", "bias"]
    np.testing.assert_array_equal(layer.bias.value, [0] * 3 + [1] * 3 + [0] * 6)
    q = layer.recurrent_kernel.value
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-5)   # orthonormal rows
    gru = GRU(3)
    gru.build((7, 5))
    assert [w.shape for w in gru.get_weights()] == [(5, 9), (3, 9), (2, 9)]
    gru = GRU(3, reset_after=False)
    gru.build((7, 5))
    assert gru.bias.shape == (9,)
    assert LSTM(3, return_state=True).compute_output_shape((None, 5)) == \
        [(3,), (3,), (3,)]
    assert GRU(3, return_sequences=True).compute_output_shape((9, 5)) == (9, 3)


# ---- states ----

def test_stateful_carries_states():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 3))
    whole = LSTM(4, dtype="float64")
    parts = LSTM(4, dtype="float64", stateful=True)
    whole.build((6, 3))
    parts.build((3, 3))
    parts.set_weights(whole.get_weights())
    want = np.asarray(whole(x))
    parts(x[:, :3].copy())
    assert parts.states is not None and parts.states[0].shape == (2, 4)
    np.testing.assert_allclose(np.asarray(parts(x[:, 3:].copy())), want, rtol=1e-12)
    parts.reset_states()
    assert not np.any(parts.states[0]) and not np.any(parts.states[1])
    np.testing.assert_allclose(np.asarray(parts(x[:, :3].copy())),
                               np.asarray(whole(x[:, :3].copy())), rtol=1e-12)
    with pytest.raises(ValueError, match="stateful.*batch size"):
        parts(x[:1, :3].copy())


def test_stateful_needs_fixed_batch_size():
    layer = GRU(3, stateful=True)
    with pytest.raises(ValueError, match="fixed batch size"):
        layer(minidl.layers.Input((5, 2)))


def test_initial_state_and_return_state():
    rng = np.random.default_rng(8)
    layer = GRU(3, return_state=True, dtype="float64")
    x = rng.standard_normal((2, 4, 2))
    h0 = rng.standard_normal((2, 3))
    out, h = layer.forward(_ctx(layer, x), [x, h0], False)
    np.testing.assert_array_equal(out, h)   # the last output is the final state
    out0, _ = layer.forward(_ctx(layer, x), x, False)
    assert not np.allclose(out, out0)


def _ctx(layer, x):
    layer.ensure_built(x.shape[1:])
    ctx = CallContext(layer, record=False)
    ctx.mask = None
    return ctx


# ---- dropout ----

def test_dropout_seeded_and_training_only():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 5, 3))

    def run(seed, training):
        layer = LSTM(4, dropout=0.5, recurrent_dropout=0.3, seed=seed, dtype="float64",
                     kernel_initializer=minidl.initializers.GlorotUniform(seed=1),
                     recurrent_initializer=minidl.initializers.Orthogonal(seed=2))
        layer.build((5, 3))
        ctx = CallContext(layer)
        ctx.mask = None
        y = layer.forward(ctx, x, training).copy()
        dx = ctx.backward(np.ones_like(y)).copy()
        return y, dx
    y1, dx1 = run(11, True)
    y2, dx2 = run(11, True)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)
    y3, _ = run(12, True)
    assert not np.allclose(y1, y3)
    y_inf, _ = run(11, False)
    y_plain, _ = run(None, False)
    np.testing.assert_array_equal(y_inf, y_plain)
    assert not np.allclose(y1, y_inf)
    # One input mask per sequence: a dropped feature is zero at every step.
    assert np.any(dx1 == 0) and np.all((dx1 == 0).all(axis=1) == (dx1 == 0).any(axis=1))


# ---- threads ----

@pytest.mark.parametrize("cell", list(CELLS))
def test_same_bits_for_one_and_two_threads(cell):
    rng = np.random.default_rng(10)
    # Large enough that the per-step passes run in parallel.
    n, steps, features, units = 64, 5, 8, 256
    layer = _layer(cell, units, "float32", return_sequences=True)
    layer.build((steps, features))
    x = rng.standard_normal((n, steps, features)).astype(np.float32)
    w = rng.standard_normal((n, steps, units)).astype(np.float32)
    mask = rng.random((n, steps)) > 0.2
    results = []
    before = minidl.get_num_threads()
    try:
        for threads in (1, 2):
            minidl.set_num_threads(threads)
            outs, dx, _, grads = _run(layer, x, [w], mask=mask)
            results.append([outs[0], dx] + grads)
    finally:
        minidl.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(len(_backend.supported_archs()) < 2,
                    reason="this CPU runs only the generic kernels: nothing to compare")
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("cell", list(CELLS))
def test_gate_passes_same_bits_under_every_arch(cell, masked):
    """The float32 gate passes (csrc/recurrent.c, one version per instruction set) give the
    same bits under every architecture. The GEMMs around them may not (AVX2 and AVX-512
    fuse multiply-adds), so they are made exact: the inputs and kernel are small multiples
    of 1/8 and the recurrent kernel is zero; the states still carry through the steps
    inside the passes (LSTM's cell state, GRU's z * h, the gradients' masked-step carry)."""
    rng = np.random.default_rng(11)
    n, steps, features, units = 5, 9, 6, 37   # 37: a remainder after every vector width
    k = {"simple_rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = (rng.integers(-8, 9, (n, steps, features)) / 8).astype(np.float32)
    W = (rng.integers(-4, 5, (features, k * units)) / 8).astype(np.float32)
    U = np.zeros((units, k * units), np.float32)
    b = rng.standard_normal((2, k * units) if cell == "gru" else (k * units,)).astype(
        np.float32)
    h0 = rng.standard_normal((n, units)).astype(np.float32)
    c0 = rng.standard_normal((n, units)).astype(np.float32) if cell == "lstm" else None
    mask = (rng.random((n, steps)) > 0.3).view(np.uint8) if masked else None
    dY = rng.standard_normal((n, steps, units)).astype(np.float32)
    dhT = rng.standard_normal((n, units)).astype(np.float32)
    dcT = rng.standard_normal((n, units)).astype(np.float32) if cell == "lstm" else None

    def run():
        def e(*shape):
            return np.full(shape, np.nan, np.float32)
        G, Hp = e(n, steps, k * units), e(n, steps, units)
        Cp, AC = (e(n, steps, units), e(n, steps, units)) if cell == "lstm" else (None, None)
        RH, R = (e(n, steps, units), e(n, k * units)) if cell == "gru" else (None, None)
        h, c = h0.copy(), None if c0 is None else c0.copy()
        out = e(n, steps, units)
        kw = dict(return_sequences=True)
        _recurrent.forward(cell, x, W, U, b, h, c, mask, None, G, Hp, Cp, AC, RH, None, R,
                           out, **kw)
        dG = e(n, steps, k * units)
        dR = e(n, steps, k * units) if cell == "gru" else dG
        dh, dc = dhT.copy(), None if dcT is None else dcT.copy()
        db = e(*b.shape)
        _recurrent.backward(cell, x, W, U, mask, None, G, Hp, Cp, AC, RH, None, dY, dG, dR,
                            dh, dc, e(n, units), None, None, e(*W.shape), e(*U.shape), db,
                            **kw)
        return [a for a in (out, h, c, G, AC, RH, dG, dR, db, dh, dc) if a is not None]

    before = _backend.get_arch()
    results = {}
    try:
        for arch in _backend.supported_archs():
            _backend.set_arch(arch)
            results[arch] = run()
    finally:
        _backend.set_arch(before)
    want = results["generic"]
    assert all(np.isfinite(a).all() for a in (want[0], want[1], want[-1]))
    for arch, got in results.items():
        for i, (a, w) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(a.view(np.uint32), w.view(np.uint32),
                                          err_msg=f"{cell}: array {i} under {arch}")


# ---- bad input ----

def test_bad_inputs():
    layer = LSTM(3)
    with pytest.raises(ValueError, match=r"'lstm.*\(LSTM\).*3-D input.*\(None, 5\)"):
        layer.build((5,))
    layer.build((4, 2))
    ctx = CallContext(layer)
    ctx.mask = None
    with pytest.raises(ValueError, match=r"LSTM.*3-D input.*\(2, 4\)"):
        layer.forward(ctx, np.zeros((2, 4), np.float32))
    ctx.mask = np.ones((2, 5), bool)
    with pytest.raises(ValueError, match=r"mask must have shape.*\(2, 4\).*\(2, 5\)"):
        layer.forward(ctx, np.zeros((2, 4, 2), np.float32))
    ctx.mask = None
    with pytest.raises(ValueError, match="2 initial state"):
        layer.forward(ctx, [np.zeros((2, 4, 2), np.float32), np.zeros((2, 3), np.float32)])
    for units in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="units"):
            GRU(units)
    with pytest.raises(ValueError, match="dropout"):
        SimpleRNN(2, dropout=1.5)
    with pytest.raises(ValueError, match="activation"):
        LSTM(2, activation="nope")


# ---- Bidirectional ----

def _bidirectional(mode, rng, inner=LSTM, **kwargs):
    layer = Bidirectional(inner(3, dtype="float64", **kwargs), merge_mode=mode)
    layer.build((4, 2))
    _random_weights(layer, rng)
    return layer


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("seqs", [False, True])
def test_bidirectional_merge_modes(mode, seqs):
    rng = np.random.default_rng(11)
    layer = _bidirectional(mode, rng, GRU, return_sequences=seqs)
    x = rng.standard_normal((2, 4, 2))
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    ctx = CallContext(layer)
    ctx.mask = mask
    out = layer.forward(ctx, x, True)
    outs = [o.copy() for o in out] if isinstance(out, list) else [out.copy()]

    # The same from the two layers run by hand.
    def run(sub):
        c = CallContext(sub, record=False)
        c.mask = mask
        return sub.forward(c, x, False)
    y, y_rev = run(layer.forward_layer), run(layer.backward_layer)
    if seqs:
        y_rev = y_rev[:, ::-1]
        assert np.all(y[0, 3] == 0) and np.all(y_rev[0, 3] == 0)   # zero_output_for_mask
    want = {"concat": [np.concatenate([y, y_rev], -1)], "sum": [y + y_rev],
            "mul": [y * y_rev], "ave": [(y + y_rev) / 2], None: [y, y_rev]}[mode]
    for got, expected in zip(outs, want):
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    ws = [rng.standard_normal(o.shape) for o in outs]
    dx = ctx.backward(ws if mode is None else ws[0]).copy()
    grads = [g.copy() for g in ctx.grads]

    def scalar():
        c = CallContext(layer, record=False)
        c.mask = mask
        o = layer.forward(c, x, False)
        o = o if isinstance(o, list) else [o]
        return float(sum(np.sum(a * w) for a, w in zip(o, ws)))
    np.testing.assert_allclose(dx, numeric_grad(scalar, x), rtol=1e-6, atol=1e-8)
    for name, param, grad in zip(layer.param_names, layer.params, grads):
        np.testing.assert_allclose(grad, numeric_grad(scalar, param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_bidirectional_states_and_config():
    rng = np.random.default_rng(12)
    layer = _bidirectional("concat", rng, LSTM, return_state=True)
    assert [w for w in layer.param_names] == [
        f"{layer.forward_layer.name}/{n}" for n in ("kernel", "recurrent_kernel", "bias")] + [
        f"{layer.backward_layer.name}/{n}" for n in ("kernel", "recurrent_kernel", "bias")]
    assert layer.forward_layer.name.startswith("forward_")
    assert layer.backward_layer.name.startswith("backward_")
    assert layer.backward_layer.go_backwards and not layer.forward_layer.go_backwards
    assert layer.compute_output_shape((4, 2)) == [(6,), (3,), (3,), (3,), (3,)]
    x = rng.standard_normal((2, 4, 2))
    initial = [rng.standard_normal((2, 3)) for _ in range(4)]
    ctx = CallContext(layer)
    ctx.mask = None
    out, *states = layer.forward(ctx, [x] + initial, True)
    np.testing.assert_array_equal(out[:, :3], states[0])
    np.testing.assert_array_equal(out[:, 3:], states[2])
    back = ctx.backward([np.ones((2, 6)), None, np.ones((2, 3)), None, None], [True] * 5)
    assert len(back) == 5 and back[0].shape == x.shape
    assert all(b.shape == (2, 3) for b in back[1:])
    config = layer.get_config()
    clone = Bidirectional.from_config(config)
    assert clone.get_config() == config
    clone.build((4, 2))
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in layer.get_weights()]


def test_bidirectional_weights_argument_and_errors():
    layer = Bidirectional(SimpleRNN(2))
    layer.build((3, 4))
    weights = [np.full(w.shape, i, np.float32) for i, w in enumerate(layer.get_weights())]
    preset = Bidirectional(SimpleRNN(2), weights=weights)
    preset.build((3, 4))
    for got, want in zip(preset.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="recurrent layer"):
        Bidirectional(minidl.layers.Dense(2))
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True,
                                                   return_sequences=True))


# ---- in models: masks, initial states, several outputs, saving, stateful ----

def _padded(rng, lengths, steps, features):
    x = rng.standard_normal((len(lengths), steps, features)).astype(np.float32) + 3.0
    for i, length in enumerate(lengths):
        x[i, length:] = 0
    return x


def test_masked_model_fit_predict_save(tmp_path):
    rng = np.random.default_rng(13)
    inputs = minidl.Input((None, 3))
    hidden = LSTM(4, return_sequences=True, seed=1)(minidl.layers.Masking()(inputs))
    model = minidl.Model(inputs, minidl.layers.Dense(1)(Bidirectional(GRU(3))(hidden)))
    model.compile("adam", "mse")
    lengths = [6, 2, 4, 5]
    x = _padded(rng, lengths, 6, 3)
    y = rng.standard_normal((4, 1)).astype(np.float32)
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    predicted = model.predict(x, verbose=0)
    for i, length in enumerate(lengths):
        alone = model.predict(x[i:i + 1, :length], verbose=0)
        np.testing.assert_allclose(predicted[i], alone[0], rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = minidl.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), predicted)


def test_initial_state_and_return_state_in_a_model():
    rng = np.random.default_rng(14)
    sequences, h_in, c_in = minidl.Input((5, 3)), minidl.Input((4,)), minidl.Input((4,))
    out, h, c = LSTM(4, return_state=True, return_sequences=True)(
        sequences, initial_state=[h_in, c_in])
    model = minidl.Model([sequences, h_in, c_in], [out, h, c])
    assert [tuple(t.shape) for t in model.outputs] == [(None, 5, 4), (None, 4), (None, 4)]
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, 4)).astype(np.float32) for _ in range(2))
    got = model.predict([x, h0, c0], verbose=0)
    np.testing.assert_array_equal(got[0][:, -1], got[1])
    layer = model.layers[-1] if isinstance(model.layers[-1], LSTM) else \
        next(l for l in model.layers if isinstance(l, LSTM))
    ctx = CallContext(layer, record=False)
    ctx.mask = None
    want = layer.forward(ctx, [x, h0, c0], False)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    model.compile("sgd", ["mse", "mse", "mse"])
    model.fit([x, h0, c0], [np.zeros((2, 5, 4)), np.zeros((2, 4)), np.zeros((2, 4))],
              verbose=0, batch_size=2)
    clone = minidl.Model.from_config(model.get_config())
    assert len(clone.outputs) == 3


def test_stateful_model():
    rng = np.random.default_rng(15)
    inputs = minidl.Input(batch_shape=(2, None, 3))
    layer = SimpleRNN(4, stateful=True)
    model = minidl.Model(inputs, layer(inputs))
    assert layer.states is not None and layer.states[0].shape == (2, 4)
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    first = model.predict(x[:, :3], verbose=0, batch_size=2)
    second = model.predict(x[:, 3:], verbose=0, batch_size=2)
    layer.reset_states()
    whole = SimpleRNN(4)
    whole.build((6, 3))
    whole.set_weights(layer.get_weights())
    np.testing.assert_allclose(second, np.asarray(whole(x)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, second)


def test_embedding_mask_zero_into_recurrent_layers():
    rng = np.random.default_rng(16)
    model = minidl.Sequential([
        minidl.Input((None,), dtype="int32"), minidl.layers.Embedding(50, 8, mask_zero=True),
        GRU(5, return_sequences=True), Bidirectional(LSTM(4)),
        minidl.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    lengths = [7, 3, 5, 1]
    ids = np.zeros((4, 7), np.int32)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, 50, length)
    history = model.fit(ids, np.array([[1], [0], [1], [0]], np.float32), epochs=2,
                        batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    predicted = model.predict(ids, verbose=0)
    for i, length in enumerate(lengths):
        np.testing.assert_allclose(predicted[i], model.predict(ids[i:i + 1, :length],
                                                               verbose=0)[0], rtol=1e-5)
