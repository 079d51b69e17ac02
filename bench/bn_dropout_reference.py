"""Plain-numpy version of the reference MLP with BatchNormalization and Dropout after each
hidden Dense, for the benchmarks.

Network: Dense(64, relu) -> BatchNormalization -> Dropout(0.2), twice, then Dense(10,
softmax); sparse categorical cross-entropy, Keras' Adam. Written the way a careful numpy user
would: matmuls into fresh arrays, broadcasting for bias, activation and normalisation, the
batch-norm backward in its closed form, one ``Generator.random`` call per dropout mask, and the
moving statistics updated with Keras' momentum 0.99.
"""
import numpy as np

from mlp_reference import UNITS, NumpyAdamTrainer, glorot, softmax_cross_entropy

MOMENTUM, EPSILON, RATE = 0.99, 1e-3, 0.2


class NumpyBNDropoutMLP(NumpyAdamTrainer):
    """784-64-64-10 ReLU MLP with BatchNormalization and Dropout(0.2) after each hidden layer."""

    def __init__(self, seed=0, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng(seed + 1)
        self.params = []   # w1, b1, gamma1, beta1, w2, b2, gamma2, beta2, w3, b3
        for i, (fan_in, fan_out) in enumerate(zip(UNITS[:-1], UNITS[1:])):
            self.params += [glorot(rng, fan_in, fan_out), np.zeros(fan_out, np.float32)]
            if i < 2:
                self.params += [np.ones(fan_out, np.float32), np.zeros(fan_out, np.float32)]
        self.moving = [[np.zeros(u, np.float32), np.ones(u, np.float32)] for u in UNITS[1:3]]
        self.init_adam(lr, beta_1, beta_2, epsilon)

    def _hidden_forward(self, x, w, b, gamma, beta, moving):
        z = x @ w + b
        a = np.maximum(z, 0)
        mean, var = a.mean(axis=0), a.var(axis=0)
        moving[0] *= MOMENTUM
        moving[0] += (1 - MOMENTUM) * mean
        moving[1] *= MOMENTUM
        moving[1] += (1 - MOMENTUM) * var
        invstd = 1.0 / np.sqrt(var + EPSILON)
        xhat = (a - mean) * invstd
        mask = (self.rng.random(a.shape, dtype=np.float32) < 1 - RATE) / np.float32(1 - RATE)
        return (gamma * xhat + beta) * mask, (z, xhat, invstd, mask)

    @staticmethod
    def _hidden_backward(dh, x, w, gamma, cache):
        z, xhat, invstd, mask = cache
        dy = dh * mask
        dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
        n = dy.shape[0]
        da = gamma * invstd / n * (n * dy - dbeta - xhat * dgamma)
        dz = da * (z > 0)
        return [x.T @ dz, dz.sum(axis=0), dgamma, dbeta], dz

    def step(self, x, y):
        w1, b1, g1, be1, w2, b2, g2, be2, w3, b3 = self.params
        h1, c1 = self._hidden_forward(x, w1, b1, g1, be1, self.moving[0])
        h2, c2 = self._hidden_forward(h1, w2, b2, g2, be2, self.moving[1])
        loss, d3 = softmax_cross_entropy(h2 @ w3 + b3, y)
        grads3 = [h2.T @ d3, d3.sum(axis=0)]
        grads2, dz2 = self._hidden_backward(d3 @ w3.T, h1, w2, g2, c2)
        grads1, _ = self._hidden_backward(dz2 @ w2.T, x, w1, g1, c1)
        grads = grads1 + grads2 + grads3
        self.adam_update(grads)
        return loss
