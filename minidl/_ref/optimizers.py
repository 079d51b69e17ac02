"""Reference for ``minidl._core._optimizers``: the same update kernels in plain numpy.

Each function updates ``param`` and its slots in place from ``grad``, like the kernel of the
same name. The math runs in float64 and is stored back in the arrays' dtype.
"""
import numpy as np


def _g(grad, grad_scale, clip_value):
    g = np.asarray(grad, np.float64) * grad_scale
    return np.clip(g, -clip_value, clip_value) if clip_value > 0 else g


def _decayed(param, weight_decay, learning_rate):
    p = param.astype(np.float64)
    return p - p * weight_decay * learning_rate if weight_decay else p


def sgd(param, grad, velocity, learning_rate, momentum, nesterov, weight_decay, grad_scale,
        clip_value):
    """v = momentum v - lr g; p += v (nesterov: p += momentum v - lr g); no v: p -= lr g."""
    g, p = _g(grad, grad_scale, clip_value), _decayed(param, weight_decay, learning_rate)
    if velocity is None:
        p = p - g * learning_rate
    else:
        v = velocity * momentum - g * learning_rate
        velocity[...] = v
        p = p + (v * momentum - g * learning_rate if nesterov else v)
    param[...] = p


def adam(param, grad, m, v, v_hat, alpha, beta_1, beta_2, epsilon, learning_rate, weight_decay,
         grad_scale, clip_value):
    """Adam with the step size alpha given; v_hat (amsgrad) keeps the running max of v."""
    g, p = _g(grad, grad_scale, clip_value), _decayed(param, weight_decay, learning_rate)
    m[...] = m + (g - m) * (1 - beta_1)
    v[...] = v + (g * g - v) * (1 - beta_2)
    denom = v.astype(np.float64)
    if v_hat is not None:
        v_hat[...] = np.maximum(v_hat, v)
        denom = v_hat.astype(np.float64)
    param[...] = p - m * alpha / (np.sqrt(denom) + epsilon)


def rmsprop(param, grad, velocity, momentum_buffer, average_grad, learning_rate, rho, momentum,
            epsilon, weight_decay, grad_scale, clip_value):
    """RMSprop, optionally centered (average_grad) and with momentum (momentum_buffer)."""
    g, p = _g(grad, grad_scale, clip_value), _decayed(param, weight_decay, learning_rate)
    velocity[...] = rho * velocity + (1 - rho) * g * g
    denom = velocity.astype(np.float64) + epsilon
    if average_grad is not None:
        average_grad[...] = rho * average_grad + (1 - rho) * g
        denom = denom - average_grad.astype(np.float64) ** 2
    step = learning_rate * g / np.sqrt(denom)
    if momentum_buffer is not None:
        momentum_buffer[...] = momentum * momentum_buffer + step
        step = momentum_buffer.astype(np.float64)
    param[...] = p - step


def adagrad(param, grad, accumulator, learning_rate, epsilon, weight_decay, grad_scale,
            clip_value):
    """acc += g^2; p -= lr g / sqrt(acc + eps)."""
    g, p = _g(grad, grad_scale, clip_value), _decayed(param, weight_decay, learning_rate)
    accumulator[...] = accumulator + g * g
    param[...] = p - learning_rate * g / np.sqrt(accumulator.astype(np.float64) + epsilon)


def nadam(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, m_coef, g_coef, v_div,
          weight_decay, grad_scale, clip_value):
    """Nadam with the momentum-schedule coefficients given by the caller."""
    g, p = _g(grad, grad_scale, clip_value), _decayed(param, weight_decay, learning_rate)
    m[...] = m + (g - m) * (1 - beta_1)
    v[...] = v + (g * g - v) * (1 - beta_2)
    m_hat = m_coef * m.astype(np.float64) + g_coef * g
    param[...] = p - m_hat * learning_rate / (np.sqrt(v / v_div) + epsilon)


def sum_of_squares(x):
    """sum(x ** 2) in float64."""
    x = np.asarray(x, np.float64)
    return float(np.dot(x, x))
