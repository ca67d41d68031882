"""GELU in the tanh approximation, as GPT-2's and BERT's code write it (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))),
with its derivative worked out by hand through the inner u(x); dicts of per-layer caches; torch's huber loss.
"""

import numpy as np

ENGINE = dict(
    style="GPT-2-style tanh-approximation GELU with a hand-derived derivative through u(x), per-layer cache dicts",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("gelu_tanh", "identity"), losses=("huber",), targets=None,
    archs=(("3-5-2", "gelu_tanh,identity", "huber"), ("2-4-4-1", "gelu_tanh,gelu_tanh,identity", "huber")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)

S = np.sqrt(2.0 / np.pi)


def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(S * (x + 0.044715 * np.power(x, 3))))


def gelu_grad(x):
    u = S * (x + 0.044715 * np.power(x, 3))
    t = np.tanh(u)
    du = S * (1.0 + 3 * 0.044715 * x * x)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du


def _layers(params):
    return [(params[f"W{i}"], params[f"b{i}"]) for i in range(1, len(params) // 2 + 1)]


def forward(params, x):
    caches = []
    h = x
    layers = _layers(params)
    for i, (W, b) in enumerate(layers):
        z = h @ W + b
        caches.append({"h_in": h, "z": z})
        h = z if i == len(layers) - 1 else gelu(z)
    return h, caches


def loss(params, x, y):
    """torch's HuberLoss: delta 1, mean over every element."""
    out, _ = forward(params, x)
    r = np.abs(out - y)
    return float(np.mean(np.where(r <= 1.0, 0.5 * r * r, r - 0.5)))


def grads(params, x, y):
    out, caches = forward(params, x)
    layers = _layers(params)
    d = np.clip(out - y, -1.0, 1.0) / out.size
    result = {}
    for i in range(len(layers) - 1, -1, -1):
        c = caches[i]
        if i < len(layers) - 1:
            d = d * gelu_grad(c["z"])
        result[f"W{i + 1}"] = c["h_in"].T @ d
        result[f"b{i + 1}"] = d.sum(axis=0)
        d = d @ layers[i][0].T
    return result
