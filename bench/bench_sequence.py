"""Benchmarks of the recurrent layers (issue 16): one training epoch of an IMDB-shaped
sentiment model, minidl beside PyTorch eager in each group, one thread each.

Model: Embedding(20000, 128) -> LSTM(64) | GRU(64) | Bidirectional(LSTM(64)) ->
Dense(1, sigmoid), sequences of 200 tokens, batch 32, one epoch over 5,000 sequences (binary
cross-entropy, Adam).

Two forms of each workload:
    imdb-<kind>-fit: the whole model through ``model.fit`` (Embedding trained too, as
        PyTorch's nn.Embedding is); skipped where ``minidl.layers.Embedding`` is missing.
    imdb-<kind>-epoch: the recurrent layer and the head alone, on embedded inputs gathered
        per batch from a fixed table with numpy (the same cost on each side): one train step
        per batch (forward, loss gradient, backward with the input gradient an embedding
        would need, Adam update), driven through ``CallContext`` for minidl and autograd
        for PyTorch.

PyTorch runs twice: as it comes, and with ``torch.set_flush_denormal(True)`` ("torch-ftz").
Gradients that fade through 200 steps can reach the subnormal range, where PyTorch's CPU
kernels slow down several times (how often depends on the data: the epoch groups' rounds
vary by up to 10x); minidl's recurrent kernel flushes them below 2^-100.

Where minidl's time goes (one thread, one LSTM(64) training step of 32 sequences): the six
GEMMs (input projection, 200 recurrent products forward and back, the kernel, recurrent
kernel and input gradients) are ~1.9 GFLOP, about 14 ms at the ~135 GFLOP/s minidl's and
PyTorch's GEMMs both reach here; Adam over the 2.56M-parameter embedding table (dense, as
PyTorch's and Keras') ~3 ms; the gate passes (csrc/recurrent.c) ~3-4 ms; Embedding ~2.5 ms.

A plain ``pytest`` run (benchmarks disabled) runs each body once on 256 sequences, as a
smoke test.
"""
import contextlib

import numpy as np
import pytest

import minidl
from minidl.layers import GRU, LSTM, Bidirectional, CallContext, Dense
from minidl.optimizers import Adam

pytestmark = pytest.mark.usefixtures("single_thread")

VOCAB, EMBED, STEPS, UNITS, BATCH = 20000, 128, 200, 64, 32
SEQUENCES, SMOKE_SEQUENCES = 5000, 256
SEED = 0


@pytest.fixture(scope="module")
def imdb_like():
    rng = np.random.default_rng(SEED)
    table = (rng.standard_normal((VOCAB, EMBED)) * 0.05).astype(np.float32)
    ids = rng.integers(1, VOCAB, (SEQUENCES, STEPS))
    labels = rng.integers(0, 2, (SEQUENCES, 1)).astype(np.float32)
    return table, ids, labels


def _batches(data, count):
    table, ids, labels = data
    for start in range(0, count, BATCH):
        yield table[ids[start:start + BATCH]], labels[start:start + BATCH]


def _minidl_epoch(make_rnn, data, count):
    rnn, head = make_rnn(), Dense(1, activation="sigmoid")
    rnn.build((STEPS, EMBED))
    head.build((2 * UNITS if isinstance(rnn, Bidirectional) else UNITS,))
    rnn_ctx, head_ctx = CallContext(rnn), CallContext(head)
    rnn_ctx.mask = None
    optimizer = Adam(learning_rate=1e-3)
    variables = rnn.params + head.params

    def epoch():
        for x, y in _batches(data, count):
            h = rnn.forward(rnn_ctx, x, True)
            p = head.forward(head_ctx, h, True)
            # Sigmoid + binary cross-entropy: the gradient of the logit is (p - y) / n.
            dz = (p - y) / np.float32(len(y))
            dh = head.backward_preactivation(head_ctx, dz, True)
            rnn.backward(rnn_ctx, dh, True)
            optimizer.apply(rnn_ctx.grads + head_ctx.grads, variables)
    return epoch


def _torch_epoch(kind, data, count):
    torch = pytest.importorskip("torch")
    torch.manual_seed(SEED)
    bidirectional = kind == "bilstm"
    rnn = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(
        EMBED, UNITS, batch_first=True, bidirectional=bidirectional)
    head = torch.nn.Linear(2 * UNITS if bidirectional else UNITS, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def epoch():
        for x, y in _batches(data, count):
            x = torch.from_numpy(x).requires_grad_(True)
            _, states = rnn(x)
            h = states[0] if kind != "gru" else states
            last = torch.cat([h[0], h[1]], dim=1) if bidirectional else h[0]
            loss = loss_fn(head(last), torch.from_numpy(y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


MAKERS = {"lstm": lambda: LSTM(UNITS), "gru": lambda: GRU(UNITS),
          "bilstm": lambda: Bidirectional(LSTM(UNITS))}


def _run(benchmark, epoch):
    if benchmark.enabled:
        benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark(epoch)


@contextlib.contextmanager
def _torch_flush_denormal(torch, flush):
    previous = torch.set_flush_denormal(flush) and flush
    try:
        yield
    finally:
        if previous:
            torch.set_flush_denormal(False)


TORCH_VARIANTS = {"torch": False, "torch-ftz": True}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_epoch_minidl(benchmark, imdb_like, kind):
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    benchmark.group = f"imdb-{kind}-epoch"
    benchmark.extra_info.update(impl="minidl", sequences=count)
    _run(benchmark, _minidl_epoch(MAKERS[kind], imdb_like, count))


@pytest.mark.parametrize("variant", list(TORCH_VARIANTS))
@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_epoch_torch(benchmark, imdb_like, kind, variant):
    torch = pytest.importorskip("torch")
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    benchmark.group = f"imdb-{kind}-epoch"
    benchmark.extra_info.update(impl=variant, sequences=count)
    with _torch_flush_denormal(torch, TORCH_VARIANTS[variant]):
        _run(benchmark, _torch_epoch(kind, imdb_like, count))


# ---- whole models through fit (once Embedding exists) ----

def _minidl_model(kind):
    layers = minidl.layers
    rnn = MAKERS[kind]()
    model = minidl.Sequential([minidl.Input((STEPS,), dtype="int32"),
                               layers.Embedding(VOCAB, EMBED), rnn,
                               Dense(1, activation="sigmoid")])
    model.compile(Adam(learning_rate=1e-3), "binary_crossentropy")
    return model


def _torch_fit(kind, data, count):
    torch = pytest.importorskip("torch")
    torch.manual_seed(SEED)
    _, ids, labels = data
    bidirectional = kind == "bilstm"
    embedding = torch.nn.Embedding(VOCAB, EMBED)
    rnn = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(
        EMBED, UNITS, batch_first=True, bidirectional=bidirectional)
    head = torch.nn.Linear(2 * UNITS if bidirectional else UNITS, 1)
    params = list(embedding.parameters()) + list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    ids_t, labels_t = torch.from_numpy(ids[:count]), torch.from_numpy(labels[:count])

    def epoch():
        for start in range(0, count, BATCH):
            _, states = rnn(embedding(ids_t[start:start + BATCH]))
            h = states[0] if kind != "gru" else states
            last = torch.cat([h[0], h[1]], dim=1) if bidirectional else h[0]
            loss = loss_fn(head(last), labels_t[start:start + BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_fit_minidl(benchmark, imdb_like, kind):
    if not hasattr(minidl.layers, "Embedding"):
        pytest.skip("minidl.layers.Embedding is not on this branch yet")
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    _, ids, labels = imdb_like
    model = _minidl_model(kind)
    x, y = ids[:count].astype(np.int32), labels[:count]
    benchmark.group = f"imdb-{kind}-fit"
    benchmark.extra_info.update(impl="minidl", sequences=count)
    _run(benchmark, lambda: model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False,
                                      verbose=0))


@pytest.mark.parametrize("variant", list(TORCH_VARIANTS))
@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_fit_torch(benchmark, imdb_like, kind, variant):
    torch = pytest.importorskip("torch")
    if not hasattr(minidl.layers, "Embedding"):
        pytest.skip("minidl.layers.Embedding is not on this branch yet")
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    benchmark.group = f"imdb-{kind}-fit"
    benchmark.extra_info.update(impl=variant, sequences=count)
    with _torch_flush_denormal(torch, TORCH_VARIANTS[variant]):
        _run(benchmark, _torch_fit(kind, imdb_like, count))
