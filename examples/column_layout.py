"""A backprop written in the column convention of many textbooks, checked through bpcheck's adapter.

    z_l = W_l a_{l-1} + b_l,   a_l = act(z_l),   samples as columns: x is (n_in, batch)
    W_l is (n_l, n_{l-1}), b_l is (n_l, 1); tanh hidden layers, a sigmoid output, L = mean((a_L - y)^2)

    dL/da_L = 2/N (a_L - y)                 N = n_out x batch
    dz_l = dL/da_l * act'(z_l),  dW_l = dz_l a_{l-1}^T,  db_l = sum over columns of dz_l,
    dL/da_{l-1} = W_l^T dz_l

    python -m bpcheck check examples/column_layout.py:grads --layout column \\
        --arch 3-4-2 --activations tanh,sigmoid --loss mse
"""

import numpy as np


def forward(params, x):
    """[(a_prev, z, a)] per layer; tanh on hidden layers, sigmoid on the last."""
    n = len(params) // 2
    a, caches = x, []
    for layer in range(1, n + 1):
        z = params[f"W{layer}"] @ a + params[f"b{layer}"]
        out = 1.0 / (1.0 + np.exp(-z)) if layer == n else np.tanh(z)
        caches.append((a, z, out))
        a = out
    return caches


def loss(params, x, y):
    return float(np.mean((forward(params, x)[-1][2] - y) ** 2))


def grads(params, x, y):
    caches = forward(params, x)
    n = len(caches)
    a_out = caches[-1][2]
    g = 2.0 / a_out.size * (a_out - y)   # dL/da_L
    out = {}
    for layer in range(n, 0, -1):
        a_prev, z, a = caches[layer - 1]
        dz = g * (a * (1 - a) if layer == n else 1 - a * a)
        out[f"W{layer}"] = dz @ a_prev.T
        out[f"b{layer}"] = dz.sum(axis=1, keepdims=True)
        g = params[f"W{layer}"].T @ dz
    return out


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((4, 3)), "b1": np.zeros((4, 1)),
              "W2": rng.standard_normal((2, 4)), "b2": np.zeros((2, 1))}
    x, y = rng.standard_normal((3, 8)), rng.random((2, 8))
    for step in range(201):
        g = grads(params, x, y)
        params = {k: v - 0.5 * g[k] for k, v in params.items()}
        if step % 50 == 0:
            print(f"step {step}: loss {loss(params, x, y):.6f}")
