"""CS231n TwoLayerNet.loss: a two-layer ReLU net, softmax scores, and an L2 term reg * sum(W**2).

The assignment's regularisation is reg * (sum(W1**2) + sum(W2**2)) with gradient 2 * reg * W (biases
not decayed): in the lambda/2 * sum(W**2) form that is lambda = 2 * reg. Cross-entropy on probability
or one-hot target rows (the delta (p - y) / N).
"""

import numpy as np

REG = 0.05

ENGINE = dict(
    style="CS231n TwoLayerNet.loss: scores, probs, dscores, reg * sum(W**2) in loss and grads",
    grads="grads", loss="loss", layout="row", takes_arch=False,
    activations=("relu", "softmax"), losses=("cross_entropy",), targets=("onehot", "probs"),
    archs=(("5-10-3", "relu,softmax", "cross_entropy"), ("2-4-2", "relu,softmax", "cross_entropy")),
    random_archs=None, dtypes=None, weight_decay=2 * REG,
    loss_convention="cross_entropy + reg * sum(W**2) (an L2 term with lambda = 2 reg in lambda/2 sum W^2)",
)


def _scores(params, X):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden = np.maximum(0, X.dot(W1) + b1)
    return hidden, hidden.dot(W2) + b2


def loss(params, X, y):
    _, scores = _scores(params, X)
    scores = scores - scores.max(axis=1, keepdims=True)
    log_probs = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    data_loss = -np.sum(y * log_probs) / X.shape[0]
    reg_loss = REG * (np.sum(params["W1"] * params["W1"]) + np.sum(params["W2"] * params["W2"]))
    return data_loss + reg_loss


def grads(params, X, y):
    W1, W2 = params["W1"], params["W2"]
    N = X.shape[0]
    hidden, scores = _scores(params, X)
    exp_scores = np.exp(scores - np.max(scores, axis=1, keepdims=True))
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    dscores = (probs - y) / N
    g = {}
    g["W2"] = hidden.T.dot(dscores) + 2 * REG * W2
    g["b2"] = np.sum(dscores, axis=0)
    dhidden = dscores.dot(W2.T)
    dhidden[hidden <= 0] = 0
    g["W1"] = X.T.dot(dhidden) + 2 * REG * W1
    g["b1"] = np.sum(dhidden, axis=0)
    return g
