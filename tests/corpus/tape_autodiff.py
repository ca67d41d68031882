"""A tiny reverse-mode autodiff on whole arrays (micrograd, but for tensors): Value nodes, a topological
sort, and each op's local backward closure. The MLP is built from matmul, add, tanh, relu, sigmoid and
an MSE node; the gradient is read off the parameter nodes.
"""

# ruff: noqa: E741  (l for the layer index, as the styles this copies write it)

import numpy as np

ENGINE = dict(
    style="tensor-level tape autodiff: Value nodes with _backward closures, topological sort",
    grads="grads", loss="loss", layout="row", takes_arch=True,
    activations=("tanh", "relu", "sigmoid", "identity"), losses=("mse",), targets=None,
    archs=(("3-4-2", "tanh,identity", "mse"), ("2-3-3-3", "relu,sigmoid,tanh", "mse")),
    random_archs=dict(max_depth=4, max_width=5), dtypes=None, weight_decay=None, loss_convention="declared",
)


class Value:
    def __init__(self, data, parents=()):
        self.data = np.asarray(data)
        self.grad = np.zeros_like(self.data, dtype=np.float64)
        self._parents = parents
        self._backward = lambda: None

    def __matmul__(self, other):
        out = Value(self.data @ other.data, (self, other))

        def _backward():
            self.grad = self.grad + out.grad @ other.data.T
            other.grad = other.grad + self.data.T @ out.grad
        out._backward = _backward
        return out

    def __add__(self, bias):
        out = Value(self.data + bias.data, (self, bias))

        def _backward():
            self.grad = self.grad + out.grad
            bias.grad = bias.grad + out.grad.sum(axis=0)
        out._backward = _backward
        return out

    def unary(self, f, df):
        out = Value(f(self.data), (self,))

        def _backward():
            self.grad = self.grad + out.grad * df(self.data, out.data)
        out._backward = _backward
        return out

    def mse(self, target):
        diff = self.data - target
        out = Value(np.mean(diff ** 2), (self,))

        def _backward():
            self.grad = self.grad + out.grad * 2 * diff / diff.size
        out._backward = _backward
        return out

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for p in v._parents:
                    visit(p)
                order.append(v)
        visit(self)
        self.grad = np.ones_like(self.data, dtype=np.float64)
        for v in reversed(order):
            v._backward()


UNARY = {
    "tanh": (np.tanh, lambda x, y: 1 - y ** 2),
    "relu": (lambda x: np.maximum(x, 0), lambda x, y: (x > 0) * 1.0),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda x, y: y * (1 - y)),
    "identity": (lambda x: x, lambda x, y: np.ones_like(x)),
}


def build(arch, params, x, y):
    nodes = {k: Value(v) for k, v in params.items()}
    h = Value(x)
    for l, name in enumerate(arch.activations, start=1):
        h = (h @ nodes[f"W{l}"] + nodes[f"b{l}"]).unary(*UNARY[name])
    return h.mse(y), nodes


def loss(arch, params, x, y):
    return float(build(arch, params, x, y)[0].data)


def grads(arch, params, x, y):
    out, nodes = build(arch, params, x, y)
    out.backward()
    return {k: n.grad for k, n in nodes.items()}
