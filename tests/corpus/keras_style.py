"""Keras-like object style: Dense and Activation layers with forward/backward, a Sequential and a loss object.

Each layer keeps what its backward needs from the last forward; the model is rebuilt per call from the
params dict, so no state survives between calls. ELU and softplus hidden layers, identity output,
the Huber loss (delta 1, mean over every element, torch's default).
"""

import numpy as np

ENGINE = dict(
    style="Keras-like Sequential of Dense/Activation objects, Huber loss object, backward chain",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("elu", "softplus", "identity"), losses=("huber",), targets=None,
    archs=(("3-5-2", "elu,identity", "huber"), ("2-4-4-3", "softplus,elu,identity", "huber"),
           ("4-3-3", "softplus,identity", "huber")),
    random_archs=None, dtypes=None, weight_decay=None, loss_convention="declared",
)

ACTIVATIONS = {(3, 5, 2): ("elu", "identity"), (2, 4, 4, 3): ("softplus", "elu", "identity"),
               (4, 3, 3): ("softplus", "identity")}


class Dense:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, grad):
        self.dW = self.x.T @ grad
        self.db = grad.sum(axis=0)
        return grad @ self.W.T


class ELU:
    def forward(self, x):
        self.x = x
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    def backward(self, grad):
        return grad * np.where(self.x > 0, 1.0, np.exp(np.minimum(self.x, 0)))


class Softplus:
    def forward(self, x):
        self.x = x
        return np.logaddexp(0, x)

    def backward(self, grad):
        return grad * (0.5 * (1 + np.tanh(0.5 * self.x)))   # the logistic function, written via tanh


class Identity:
    def forward(self, x):
        return x

    def backward(self, grad):
        return grad


class Huber:
    delta = 1.0

    def __call__(self, pred, target):
        r = pred - target
        quad = np.minimum(np.abs(r), self.delta)
        return np.mean(0.5 * quad ** 2 + self.delta * (np.abs(r) - quad))

    def gradient(self, pred, target):
        return np.clip(pred - target, -self.delta, self.delta) / pred.size


class Sequential:
    def __init__(self, params, x_dim):
        n = len(params) // 2
        sizes = (x_dim,) + tuple(params[f"b{i}"].shape[0] for i in range(1, n + 1))
        kinds = {"elu": ELU, "softplus": Softplus, "identity": Identity}
        self.layers = []
        for i, name in enumerate(ACTIVATIONS[sizes], start=1):
            self.layers += [Dense(params[f"W{i}"], params[f"b{i}"]), kinds[name]()]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad


def loss(params, x, y):
    return Huber()(Sequential(params, x.shape[1]).forward(x), y)


def grads(params, x, y):
    model = Sequential(params, x.shape[1])
    pred = model.forward(x)
    model.backward(Huber().gradient(pred, y))
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    out = {}
    for i, layer in enumerate(dense, start=1):
        out[f"W{i}"], out[f"b{i}"] = layer.dW, layer.db
    return out
