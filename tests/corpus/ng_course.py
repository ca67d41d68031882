"""Deep-learning course style (Ng): L_model_forward / L_model_backward, column layout, caches per layer.

ReLU hidden layers, a sigmoid output and the cost -1/m sum(Y log AL + (1 - Y) log(1 - AL)), written as
the course writes it; the backward starts from dAL = -(Y / AL - (1 - Y) / (1 - AL)) and goes through
sigmoid_backward, not through a fused a - y. One output unit, so the cost is torch's bce.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="course L_model_forward/L_model_backward: linear_activation caches, dAL through sigmoid_backward",
    grads="grads", loss="loss", layout="column", takes_arch=False,
    activations=("relu", "sigmoid"), losses=("bce",), targets=None,
    archs=(("3-4-1", "relu,sigmoid", "bce"), ("4-5-3-1", "relu,relu,sigmoid", "bce")),
    random_archs=None, dtypes=("float64",), weight_decay=None, loss_convention="declared",
    # The course's dAL divides by 1 - AL: once the sigmoid rounds to 1 (|z| > 37 in float64, > 17 in
    # float32) the gradient is NaN; checked where it is sound, as its author would use it.
    regimes=("ordinary", "near_kink", "saturating", "tiny"),
)


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z)), Z


def relu(Z):
    return np.maximum(0, Z), Z


def relu_backward(dA, cache):
    Z = cache
    dZ = np.array(dA, copy=True)
    dZ[Z <= 0] = 0
    return dZ


def sigmoid_backward(dA, cache):
    Z = cache
    s = 1 / (1 + np.exp(-Z))
    return dA * s * (1 - s)


def linear_activation_forward(A_prev, W, b, activation):
    Z = np.dot(W, A_prev) + b
    linear_cache = (A_prev, W, b)
    A, activation_cache = sigmoid(Z) if activation == "sigmoid" else relu(Z)
    return A, (linear_cache, activation_cache)


def L_model_forward(X, parameters):
    caches = []
    A = X
    L = len(parameters) // 2
    for l in range(1, L):
        A, cache = linear_activation_forward(A, parameters["W" + str(l)], parameters["b" + str(l)], "relu")
        caches.append(cache)
    AL, cache = linear_activation_forward(A, parameters["W" + str(L)], parameters["b" + str(L)], "sigmoid")
    caches.append(cache)
    return AL, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    cost = -1 / m * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL))
    return np.squeeze(cost)


def linear_backward(dZ, cache):
    A_prev, W, b = cache
    m = A_prev.shape[1]
    dW = 1 / m * np.dot(dZ, A_prev.T)
    db = 1 / m * np.sum(dZ, axis=1, keepdims=True)
    dA_prev = np.dot(W.T, dZ)
    return dA_prev, dW, db


def linear_activation_backward(dA, cache, activation):
    linear_cache, activation_cache = cache
    if activation == "relu":
        dZ = relu_backward(dA, activation_cache)
    else:
        dZ = sigmoid_backward(dA, activation_cache)
    return linear_backward(dZ, linear_cache)


def L_model_backward(AL, Y, caches):
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    current_cache = caches[L - 1]
    dA_prev_temp, dW_temp, db_temp = linear_activation_backward(dAL, current_cache, "sigmoid")
    grads["dA" + str(L - 1)] = dA_prev_temp
    grads["dW" + str(L)] = dW_temp
    grads["db" + str(L)] = db_temp
    for l in reversed(range(L - 1)):
        current_cache = caches[l]
        dA_prev_temp, dW_temp, db_temp = linear_activation_backward(grads["dA" + str(l + 1)], current_cache, "relu")
        grads["dA" + str(l)] = dA_prev_temp
        grads["dW" + str(l + 1)] = dW_temp
        grads["db" + str(l + 1)] = db_temp
    return grads


def grads(parameters, X, Y):
    AL, caches = L_model_forward(X, parameters)
    g = L_model_backward(AL, Y, caches)
    L = len(caches)
    return {k: g["d" + k] for k in [f"{p}{i}" for i in range(1, L + 1) for p in ("W", "b")]}


def loss(parameters, X, Y):
    AL, _ = L_model_forward(X, parameters)
    return float(compute_cost(AL, Y))
