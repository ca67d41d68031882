"""Nielsen's network.py backprop (ch. 1-2): column vectors, one sample at a time, summed, then divided.

The quadratic cost of the book, C = 1/(2n) sum_x ||y(x) - a^L(x)||^2: half the squared error of each
sample, averaged over the n samples of the batch (n_out/2 times torch's mean-over-all-elements MSE).
Sigmoid everywhere. Weights are (n_l, n_{l-1}) and biases (n_l, 1): the column layout.
"""

import numpy as np

ENGINE = dict(
    style="Nielsen network.py: column vectors, per-sample loop, nabla summed then divided by n",
    grads="grads", loss="loss", layout="column", takes_arch=False,
    activations=("sigmoid",), losses=("mse",), targets=None,
    archs=(("3-4-2", "sigmoid,sigmoid", "mse"), ("2-3-3-1", "sigmoid,sigmoid,sigmoid", "mse")),
    random_archs=None, dtypes=None, weight_decay=None,
    loss_convention="half the squared error of each sample, averaged over the batch (n_out/2 x mse)",
)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def _unpack(params):
    n = len(params) // 2
    return [params[f"W{i}"] for i in range(1, n + 1)], [params[f"b{i}"] for i in range(1, n + 1)]


def feedforward(weights, biases, a):
    for b, w in zip(biases, weights):
        a = sigmoid(np.dot(w, a) + b)
    return a


def backprop(weights, biases, x, y):
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    activation = x
    activations = [x]
    zs = []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for layer in range(2, len(weights) + 1):
        z = zs[-layer]
        sp = sigmoid_prime(z)
        delta = np.dot(weights[-layer + 1].transpose(), delta) * sp
        nabla_b[-layer] = delta
        nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
    return nabla_b, nabla_w


def grads(params, x, y):
    weights, biases = _unpack(params)
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    n = x.shape[1]
    for i in range(n):
        delta_nabla_b, delta_nabla_w = backprop(weights, biases, x[:, i:i + 1], y[:, i:i + 1])
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    out = {}
    for i, (nw, nb) in enumerate(zip(nabla_w, nabla_b), start=1):
        out[f"W{i}"] = nw / n
        out[f"b{i}"] = nb / n
    return out


def loss(params, x, y):
    weights, biases = _unpack(params)
    total = 0.0
    for i in range(x.shape[1]):
        a = feedforward(weights, biases, x[:, i:i + 1])
        total += 0.5 * np.linalg.norm(a - y[:, i:i + 1]) ** 2
    return total / x.shape[1]
