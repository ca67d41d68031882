"""Nielsen's network2.py (ch. 3): sigmoid outputs with his CrossEntropyCost, column vectors per sample.

C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], written as the book writes it with
np.nan_to_num; its delta is the famous a - y (no sigma'). Summed over the outputs and averaged over
the batch: n_out times torch's binary cross-entropy (mean over every element).
"""

import numpy as np

ENGINE = dict(
    style="Nielsen network2.py: CrossEntropyCost.delta = a - y, per-sample loop, nan_to_num loss",
    grads="grads", loss="loss", layout="column", takes_arch=False,
    activations=("sigmoid",), losses=("bce",), targets=None,
    archs=(("3-4-2", "sigmoid,sigmoid", "bce"), ("2-3-1", "sigmoid,sigmoid", "bce"),
           ("4-3-3-3", "sigmoid,sigmoid,sigmoid", "bce")),
    random_archs=None, dtypes=None, weight_decay=None,
    loss_convention="binary cross-entropy summed over the outputs, averaged over the batch (n_out x bce)",
)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


class CrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


def _net(params):
    n = len(params) // 2
    return [params[f"W{i}"] for i in range(1, n + 1)], [params[f"b{i}"] for i in range(1, n + 1)]


def backprop(weights, biases, x, y):
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    activation, activations, zs = x, [x], []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    delta = CrossEntropyCost.delta(zs[-1], activations[-1], y)
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for layer in range(2, len(weights) + 1):
        delta = np.dot(weights[-layer + 1].transpose(), delta) * sigmoid_prime(zs[-layer])
        nabla_b[-layer] = delta
        nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
    return nabla_b, nabla_w


def grads(params, x, y):
    weights, biases = _net(params)
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    for i in range(x.shape[1]):
        dnb, dnw = backprop(weights, biases, x[:, [i]], y[:, [i]])
        nabla_b = [nb + d for nb, d in zip(nabla_b, dnb)]
        nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
    n = x.shape[1]
    out = {}
    for i in range(len(weights)):
        out[f"W{i + 1}"] = nabla_w[i] / n
        out[f"b{i + 1}"] = nabla_b[i] / n
    return out


def loss(params, x, y):
    weights, biases = _net(params)
    cost = 0.0
    for i in range(x.shape[1]):
        a = x[:, [i]]
        for b, w in zip(biases, weights):
            a = sigmoid(np.dot(w, a) + b)
        cost += CrossEntropyCost.fn(a, y[:, [i]]) / x.shape[1]
    return cost
