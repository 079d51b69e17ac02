"""Plain-numpy and PyTorch versions of the reference MLP training epoch, for the benchmarks.

The numpy step is written the way a careful numpy user would: matmuls into fresh arrays,
broadcasting for the bias and activation, the softmax cross-entropy gradient in closed form
and Keras's Adam formula. Same network, same data order, same batch size as minidl's run.
"""
import numpy as np

import minidl

UNITS = (784, 64, 64, 10)
SEED = 0


def glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


class NumpyAdamTrainer:
    """Keras's Adam formula and the epoch loop, shared by the numpy reference networks.
    A subclass sets ``self.params`` and calls ``init_adam``; its ``step(x, y)`` computes the
    gradients and calls ``adam_update``."""

    def init_adam(self, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, beta_1, beta_2, epsilon, 0

    def adam_update(self, grads):
        self.t += 1
        alpha = self.lr * np.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (g - m) * (1 - self.b1)
            v += (g * g - v) * (1 - self.b2)
            p -= alpha * m / (np.sqrt(v) + self.eps)

    def epoch(self, x, y, order, batch_size=32):
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            self.step(x[rows], y[rows])


def softmax_cross_entropy(logits, y):
    """Mean sparse categorical cross-entropy of the softmax of ``logits`` (modified in
    place) for labels ``y``, and its gradient with respect to the logits:
    ``(loss, dlogits)``. Probabilities are clipped at 1e-7 as Keras does."""
    n = logits.shape[0]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(np.clip(probs[np.arange(n), y], 1e-7, 1.0)).mean()
    probs[np.arange(n), y] -= 1
    probs /= n
    return loss, probs


class NumpyMLP(NumpyAdamTrainer):
    """784-64-64-10 ReLU MLP with softmax cross-entropy and Adam (Keras defaults)."""

    def __init__(self, seed=0, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        rng = np.random.default_rng(seed)
        self.params = []
        for fan_in, fan_out in zip(UNITS[:-1], UNITS[1:]):
            self.params += [glorot(rng, fan_in, fan_out), np.zeros(fan_out, np.float32)]
        self.init_adam(lr, beta_1, beta_2, epsilon)

    def step(self, x, y):
        w1, b1, w2, b2, w3, b3 = self.params
        z1 = x @ w1 + b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ w2 + b2
        a2 = np.maximum(z2, 0)
        loss, d3 = softmax_cross_entropy(a2 @ w3 + b3, y)
        grads = [None] * 6
        grads[4], grads[5] = a2.T @ d3, d3.sum(axis=0)
        d2 = (d3 @ w3.T) * (z2 > 0)
        grads[2], grads[3] = a1.T @ d2, d2.sum(axis=0)
        d1 = (d2 @ w2.T) * (z1 > 0)
        grads[0], grads[1] = x.T @ d1, d1.sum(axis=0)
        self.adam_update(grads)
        return loss


def torch_epoch_runner(x, y, seed=0):
    """A function running one epoch of the same model in PyTorch eager mode, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    return torch_adam_epoch(model, x, y)


def torch_adam_epoch(model, x, y):
    """``epoch(order, batch_size=32)``: one pass of Adam (Keras' defaults) with
    cross-entropy on logits over ``x``, ``y`` in the given sample order, in PyTorch eager
    mode: the loop a PyTorch user writes."""
    import torch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def epoch(order, batch_size=32):
        idx = torch.from_numpy(order)
        for start in range(0, len(xt), batch_size):
            rows = idx[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[rows]), yt[rows])
            loss.backward()
            opt.step()
    return epoch


def reference_mlp():
    """The same network in minidl: the Keras MNIST example, seeded and compiled."""
    from minidl import Sequential
    from minidl.layers import Dense
    minidl.utils.set_random_seed(SEED)
    model = Sequential([Dense(64, activation="relu", input_shape=(784,)),
                        Dense(64, activation="relu"), Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
