"""Planted bugs in the per-sample-loop and layer-object engines: each function is a copy of one corpus
engine's gradient with one realistic bug, marked `# BUG`. bugs.py says where the report must place each."""

# ruff: noqa: E741  (l for the layer index, as the engines this copies write it)

import numpy as np

from . import cs231n_layers as cs
from . import keras_style as ks
from . import nielsen_cross_entropy as nce
from . import nielsen_mse as nm
from . import nielsen_quadratic as nq


def _nielsen_sum(backprop, weights, biases, x, y, overwrite_b=False):
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    n = x.shape[1]
    for i in range(n):
        dnb, dnw = backprop(weights, biases, x[:, i:i + 1], y[:, i:i + 1])
        nabla_b = dnb if overwrite_b else [nb + d for nb, d in zip(nabla_b, dnb)]
        nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
    out = {}
    for i, (nw, nb) in enumerate(zip(nabla_w, nabla_b), start=1):
        out[f"W{i}"], out[f"b{i}"] = nw / n, nb / n
    return out


def _nielsen_backprop_sp_index(weights, biases, x, y):
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    activation, activations, zs = x, [x], []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = nq.sigmoid(z)
        activations.append(activation)
    delta = (activations[-1] - y) * nq.sigmoid_prime(zs[-1])
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for layer in range(2, len(weights) + 1):
        z = zs[-layer + 1]                      # BUG: the next layer's z (should be zs[-layer])
        sp = nq.sigmoid_prime(z)
        delta = np.dot(weights[-layer + 1].transpose(), delta) * sp
        nabla_b[-layer] = delta
        nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
    return nabla_b, nabla_w


def nielsen_sp_of_next_layer(params, x, y):
    weights, biases = nq._unpack(params)
    return _nielsen_sum(_nielsen_backprop_sp_index, weights, biases, x, y)


def nielsen_bias_not_accumulated(params, x, y):
    weights, biases = nq._unpack(params)
    return _nielsen_sum(nq.backprop, weights, biases, x, y, overwrite_b=True)   # BUG: nabla_b = delta_nabla_b


def nielsen_mse_last_sample_dropped(params, x, y):
    net = nm.layers(params, x)
    sum_w = [np.zeros_like(w) for w, _, _ in net]
    sum_b = [np.zeros_like(b) for _, b, _ in net]
    for k in range(len(x) - 1):                 # BUG: range(len(x) - 1) skips the last sample
        dws, dbs = nm.one_sample(net, x[k].reshape(-1, 1), y[k].reshape(-1, 1))
        for i in range(len(net)):
            sum_w[i] += dws[i]
            sum_b[i] += dbs[i]
    scale = 1.0 / y.size
    return {key: v for i in range(len(net))
            for key, v in ((f"W{i + 1}", (sum_w[i] * scale).T), (f"b{i + 1}", (sum_b[i] * scale).ravel()))}


def _nce_backprop_quadratic_delta(weights, biases, x, y):
    nabla_b = [np.zeros(b.shape) for b in biases]
    nabla_w = [np.zeros(w.shape) for w in weights]
    activation, activations, zs = x, [x], []
    for b, w in zip(biases, weights):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = nce.sigmoid(z)
        activations.append(activation)
    delta = (activations[-1] - y) * nce.sigmoid_prime(zs[-1])   # BUG: QuadraticCost.delta kept with the CE cost
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    for layer in range(2, len(weights) + 1):
        delta = np.dot(weights[-layer + 1].transpose(), delta) * nce.sigmoid_prime(zs[-layer])
        nabla_b[-layer] = delta
        nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
    return nabla_b, nabla_w


def nielsen_ce_quadratic_delta(params, x, y):
    weights, biases = nce._net(params)
    return _nielsen_sum(_nce_backprop_quadratic_delta, weights, biases, x, y)


def cs231n_relu_mask_from_input(params, X, y):
    labels = np.argmax(y, axis=1)
    scores, caches = cs._forward(params, X)
    _, dout = cs.softmax_loss(scores, labels)
    out = {}
    for i in range(len(caches), 0, -1):
        fc, rc = caches[i - 1]
        if rc is not None:
            dout = cs.relu_backward(dout, fc[0])     # BUG: the affine cache's x (the layer's input), not its output
        dout, out[f"W{i}"], out[f"b{i}"] = cs.affine_backward(dout, fc)
    return out


class _SharedSequential(ks.Sequential):
    """One activation object per kind, shared by every layer of that kind (its cached x is overwritten)."""

    def __init__(self, params, x_dim):
        n = len(params) // 2
        names = ("elu",) * (n - 1) + ("identity",)
        shared = {"elu": ks.ELU(), "identity": ks.Identity()}     # BUG: one ELU instance reused in every layer
        self.layers = []
        for i, name in enumerate(names, start=1):
            self.layers += [ks.Dense(params[f"W{i}"], params[f"b{i}"]), shared[name]]


def keras_shared_activation(params, x, y):
    model = _SharedSequential(params, x.shape[1])
    pred = model.forward(x)
    model.backward(ks.Huber().gradient(pred, y))
    dense = [layer for layer in model.layers if isinstance(layer, ks.Dense)]
    return {k: v for i, layer in enumerate(dense, start=1) for k, v in ((f"W{i}", layer.dW), (f"b{i}", layer.db))}


def keras_shared_activation_loss(params, x, y):
    n = len(params) // 2
    a = x
    for i in range(1, n + 1):
        z = a @ params[f"W{i}"] + params[f"b{i}"]
        a = z if i == n else np.where(z > 0, z, np.expm1(np.minimum(z, 0)))
    return ks.Huber()(a, y)
