"""Benchmark of the Keras 2 ``imdb_cnn`` example's network (issue 16): one training epoch,
beside the same network in PyTorch eager, in the same run.

Network (keras-team/keras examples/imdb_cnn.py, Keras 2): Embedding(5000, 50) on sequences
of 400 token ids -> Dropout(0.2) -> Conv1D(250, 3, relu) -> GlobalMaxPooling1D ->
Dense(250) -> Dropout(0.2) -> Activation('relu') -> Dense(1) -> Activation('sigmoid');
binary cross-entropy, Adam (lr 1e-3), batch 32. PyTorch as its documentation shows:
``nn.Embedding``, ``nn.Conv1d`` on (batch, channels, length), ``nn.Linear``,
``BCEWithLogitsLoss``.

Single thread (bench/conftest.py). Data: synthetic token ids (a fixed seed), 2,000 sequences
per epoch (256 in a plain ``pytest`` run, benchmarks disabled, as a smoke test). Target:
minidl at least twice as fast as PyTorch.
"""
import numpy as np
import pytest

import minidl
from minidl import layers

pytestmark = pytest.mark.usefixtures("single_thread")

VOCABULARY, EMBEDDING, LENGTH, FILTERS, HIDDEN = 5000, 50, 400, 250, 250
BATCH, SEED, ROUNDS = 32, 7, 3


def _data(benchmark):
    n = 2000 if benchmark.enabled else 256
    rng = np.random.default_rng(SEED)
    x = rng.integers(1, VOCABULARY, (n, LENGTH), dtype=np.int32)
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    benchmark.extra_info.update(samples=n, data="synthetic")
    return x, y


def imdb_cnn():
    """The minidl model, compiled."""
    minidl.utils.set_random_seed(SEED)
    model = minidl.Sequential([
        minidl.Input((LENGTH,), dtype="int32"),
        layers.Embedding(VOCABULARY, EMBEDDING),
        layers.Dropout(0.2),
        layers.Conv1D(FILTERS, 3, padding="valid", activation="relu", strides=1),
        layers.GlobalMaxPooling1D(),
        layers.Dense(HIDDEN),
        layers.Dropout(0.2),
        layers.Activation("relu"),
        layers.Dense(1),
        layers.Activation("sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def torch_epoch_runner(x, y):
    """A function running one PyTorch epoch over ``(x, y)`` in the given order, or None
    without PyTorch."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.manual_seed(SEED)

    class ImdbCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCABULARY, EMBEDDING)
            self.conv = nn.Conv1d(EMBEDDING, FILTERS, 3)
            self.hidden = nn.Linear(FILTERS, HIDDEN)
            self.out = nn.Linear(HIDDEN, 1)
            self.dropout = nn.Dropout(0.2)

        def forward(self, ids):
            h = self.dropout(self.embedding(ids)).transpose(1, 2)
            h = torch.relu(self.conv(h)).amax(dim=2)
            h = torch.relu(self.dropout(self.hidden(h)))
            return self.out(h)

    net = ImdbCnn()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    ids, targets = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y)

    def epoch(order):
        net.train()
        for start in range(0, len(order), BATCH):
            batch = torch.from_numpy(order[start:start + BATCH])
            optimizer.zero_grad()
            loss = loss_fn(net(ids[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return epoch


@pytest.mark.benchmark(group="imdb-cnn-epoch")
def test_imdb_cnn_epoch_minidl(benchmark):
    x, y = _data(benchmark)
    model = imdb_cnn()
    benchmark.extra_info["impl"] = "minidl"
    benchmark.pedantic(lambda: model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert np.isfinite(model.evaluate(x[:256], y[:256], verbose=0))


@pytest.mark.benchmark(group="imdb-cnn-epoch")
def test_imdb_cnn_epoch_torch(benchmark):
    x, y = _data(benchmark)
    epoch = torch_epoch_runner(x, y)
    if epoch is None:
        pytest.skip("PyTorch is not installed")
    order = np.random.default_rng(SEED).permutation(len(x))
    benchmark.extra_info["impl"] = "torch"
    benchmark.pedantic(lambda: epoch(order), rounds=ROUNDS, iterations=1, warmup_rounds=1)
