"""Benchmarks of the recurrent layers (issue 16): one training epoch of an IMDB-shaped
sentiment model, minidl beside PyTorch eager in each group, one thread each.

Model: Embedding(20000, 128) -> LSTM(64) | GRU(64) | Bidirectional(LSTM(64)) ->
Dense(1, sigmoid), sequences of 200 tokens, batch 32, one epoch over 5,000 sequences (binary
cross-entropy, Adam). The embedding lookup is a fixed table gathered per batch with numpy in
both implementations (the same cost on each side) and not trained: what is timed is the
recurrent layer and the head, one train step per batch (forward, loss gradient, backward
with the input gradient the embedding would need, Adam update), driven through
``CallContext`` for minidl and autograd for PyTorch.

A plain ``pytest`` run (benchmarks disabled) runs each body once on 256 sequences, as a
smoke test.
"""
import numpy as np
import pytest

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


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_epoch_minidl(benchmark, imdb_like, kind):
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    benchmark.group = f"imdb-{kind}-epoch"
    benchmark.extra_info.update(impl="minidl", sequences=count)
    _run(benchmark, _minidl_epoch(MAKERS[kind], imdb_like, count))


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_epoch_torch(benchmark, imdb_like, kind):
    count = SEQUENCES if benchmark.enabled else SMOKE_SEQUENCES
    benchmark.group = f"imdb-{kind}-epoch"
    benchmark.extra_info.update(impl="torch", sequences=count)
    _run(benchmark, _torch_epoch(kind, imdb_like, count))
