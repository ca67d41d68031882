"""Planted bugs in the vectorised engines: each function is a copy of one corpus engine's gradient with one
realistic bug, marked `# BUG`. bugs.py says where the report must place each."""

# ruff: noqa: E741  (l for the layer index, as the engines this copies write it)

import numpy as np

from . import any_arch as aa
from . import any_arch_column as ac
from . import clipped_bce as cb
from . import cs231n_twolayer_l2 as tl
from . import float32_net as f32
from . import gelu_erf as ge
from . import l2_course as l2
from . import ng_course as ng
from . import relu_prime_one as rp
from . import softmax_ce_textbook as sct
from . import softmax_mse as sm
from . import summed_ce as sc
from . import tape_autodiff as ta


def twolayer_reg_not_doubled(params, X, y):
    g = tl.grads(params, X, y)
    g["W1"] = g["W1"] - tl.REG * params["W1"]      # BUG: d/dW of reg * W**2 written reg * W
    g["W2"] = g["W2"] - tl.REG * params["W2"]
    return g


def twolayer_reg_on_b2(params, X, y):
    g = tl.grads(params, X, y)
    g["b2"] = g["b2"] + 2 * tl.REG * params["b2"]  # BUG: the output bias decayed in the gradient, not in the loss
    return g


def ng_m_from_rows(parameters, X, Y):
    AL, caches = ng.L_model_forward(X, parameters)
    L = len(caches)

    def linear_backward(dZ, cache):
        A_prev, W, b = cache
        m = A_prev.shape[0]                        # BUG: shape[0] counts features, the batch is shape[1]
        return np.dot(W.T, dZ), 1 / m * np.dot(dZ, A_prev.T), 1 / m * np.sum(dZ, axis=1, keepdims=True)

    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    out = {}
    for l in range(L, 0, -1):
        linear_cache, Z = caches[l - 1]
        dZ = ng.sigmoid_backward(dA, Z) if l == L else ng.relu_backward(dA, Z)
        dA, out[f"W{l}"], out[f"b{l}"] = linear_backward(dZ, linear_cache)
    return out


def ng_sigmoid_backward_of_dA(parameters, X, Y):
    AL, caches = ng.L_model_forward(X, parameters)
    L = len(caches)
    dA = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
    out = {}
    for l in range(L, 0, -1):
        linear_cache, Z = caches[l - 1]
        if l == L:
            s = 1 / (1 + np.exp(-dA))              # BUG: sigmoid of dA where Z (the cache) was meant
            dZ = dA * s * (1 - s)
        else:
            dZ = ng.relu_backward(dA, Z)
        dA, out[f"W{l}"], out[f"b{l}"] = ng.linear_backward(dZ, linear_cache)
    return out


def half_sse_tanh_prime_of_input(params, x, y):
    n = len(params) // 2
    Ws = [params[f"W{i}"] for i in range(1, n + 1)]
    h = [x]
    for i in range(n):
        z = h[-1] @ Ws[i] + params[f"b{i + 1}"]
        h.append(z if i == n - 1 else np.tanh(z))
    delta = h[-1] - y
    out = {}
    for i in reversed(range(n)):
        if i < n - 1:
            delta = delta * (1 - h[i] ** 2)        # BUG: h[i] is the layer's input; its output is h[i + 1]
        out[f"W{i + 1}"], out[f"b{i + 1}"] = h[i].T @ delta, delta.sum(axis=0)
        delta = delta @ Ws[i].T
    return out


def summed_ce_sigma_prime_of_input(params, x, y):
    outs = sc.forward(params, x)
    n = len(outs) - 1
    d = outs[-1] - y
    g = {}
    for i in range(n, 0, -1):
        g[f"W{i}"] = outs[i - 1].T @ d
        g[f"b{i}"] = d.sum(0)
        if i > 1:
            d = (d @ params[f"W{i}"].T) * outs[i - 2] * (1 - outs[i - 2])   # BUG: outs[i - 2] for outs[i - 1]
    return g


def l2_half_lambda(params, x, y):
    g = l2.grads(params, x, y)
    for k in g:
        if k.startswith("W"):
            g[k] = g[k] - l2.LAMBDA / 2 * params[k]      # BUG: d/dW of lambda/2 W**2 taken as lambda/2 W
    return g


def float32_divides_by_batch(params, x, y):
    W, b, x, y = f32._prep(params, x, y)
    acts = f32._forward(W, b, x)
    a = acts[-1]
    dz = f32.f32(2) * (a - y) / f32.f32(y.shape[0]) * a * (f32.f32(1) - a)   # BUG: / batch, the mean is over batch * n_out
    out = {}
    for i in range(len(W) - 1, -1, -1):
        out[f"W{i + 1}"], out[f"b{i + 1}"] = acts[i].T @ dz, dz.sum(axis=0)
        if i > 0:
            dz = (dz @ W[i].T) * (f32.f32(1) - acts[i] * acts[i])
    return out


def relu_prime_from_activation(params, x, y):
    L = len(params) // 2
    cache = rp.forward(params, x)
    grad_a = 2.0 * (cache[f"a{L}"] - y) / y.size
    out = {}
    for l in reversed(range(1, L + 1)):
        grad_z = grad_a if l == L else grad_a * rp.relu_derivative(cache[f"a{l}"])   # BUG: a >= 0 always: relu' = 1
        out[f"W{l}"] = cache[f"a{l - 1}"].T @ grad_z
        out[f"b{l}"] = grad_z.sum(axis=0)
        grad_a = grad_z @ params[f"W{l}"].T
    return out


def textbook_softmax_over_batch(params, x, y):
    L = len(params) // 2
    z, hidden = sct.logits_and_hidden(params, x)
    e = np.exp(z - z.max())
    delta = (e / e.sum(axis=0) - y) / x.shape[0]    # BUG: softmax normalised over the batch axis
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"], g[f"b{l}"] = hidden[l - 1].T @ delta, delta.sum(axis=0)
        if l > 1:
            delta = (delta @ params[f"W{l}"].T) * (1 - hidden[l - 1] ** 2)
    return g


def clipped_bce_mask_of_own_z(params, x, y):
    L = len(params) // 2
    zs, acts = cb._forward(params, x)
    delta = (acts[-1] - y) / y.size
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"], g[f"b{l}"] = acts[l - 1].T @ delta, delta.sum(axis=0)
        if l > 1:
            delta = (delta @ params[f"W{l}"].T) * cb.leaky_grad(zs[l - 1])   # BUG: zs[l - 1] is layer l's z (broadcast)
    return g


def any_arch_next_activation(arch, params, x, y):
    zs, acts = aa.forward(arch, params, x)
    L = len(zs)
    dz = 2 * (acts[-1] - y) / y.size * aa.RULES[arch.activations[-1]][1](zs[-1])
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"], g[f"b{l}"] = acts[l - 1].T @ dz, dz.sum(axis=0)
        if l > 1:
            dz = (dz @ params[f"W{l}"].T) * aa.RULES[arch.activations[l - 1]][1](zs[l - 2])   # BUG: activations[l - 2]
    return g


def any_arch_huber_abs(arch, params, x, y):
    zs, acts = aa.forward(arch, params, x)
    L = len(zs)
    r = acts[-1] - y
    dz = np.minimum(np.abs(r), 1) / y.size * aa.RULES[arch.activations[-1]][1](zs[-1])   # BUG: the sign of r lost
    g = {}
    for l in range(L, 0, -1):
        g[f"W{l}"], g[f"b{l}"] = acts[l - 1].T @ dz, dz.sum(axis=0)
        if l > 1:
            dz = (dz @ params[f"W{l}"].T) * aa.RULES[arch.activations[l - 2]][1](zs[l - 2])
    return g


def column_sigmoid_prime_of_z(arch, params, X, Y):
    A, cache = ac.forward(arch, params, X)
    dA = 2 * (A - Y) / Y.size
    out = {}
    for l in range(len(cache), 0, -1):
        A_prev, Z = cache[l - 1]
        name = arch.activations[l - 1]
        d = Z * (1 - Z) if name == "sigmoid" else ac.derivative(name, Z, ac.activate(name, Z))   # BUG: Z for A
        dZ = dA * d
        out[f"W{l}"], out[f"b{l}"] = dZ @ A_prev.T, np.sum(dZ, axis=1, keepdims=True)
        dA = params[f"W{l}"].T @ dZ
    return out


def gelu_phi_without_z(params, x, y):
    zs, h = ge.net(params, x)
    L = len(zs)
    d = 2 * (h[-1] - y) / y.size
    g = {}
    for l in range(L, 0, -1):
        if l < L:
            d = d * (ge.Phi(zs[l - 1]) + ge.phi(zs[l - 1]))     # BUG: Phi(z) + phi(z), the z of z * phi(z) dropped
        g[f"W{l}"], g[f"b{l}"] = h[l - 1].T @ d, d.sum(0)
        d = d @ params[f"W{l}"].T
    return g


def gelu_phi_only(params, x, y):
    zs, h = ge.net(params, x)
    L = len(zs)
    d = 2 * (h[-1] - y) / y.size
    g = {}
    for l in range(L, 0, -1):
        if l < L:
            d = d * ge.Phi(zs[l - 1])     # BUG: GELU' taken as Phi(z), as if z * Phi(z) were Phi(z) times a constant
        g[f"W{l}"], g[f"b{l}"] = h[l - 1].T @ d, d.sum(0)
        d = d @ params[f"W{l}"].T
    return g


def softmax_mse_jacobian_plus(params, x, y):
    outs = sm.run(params, x)
    L = len(outs) - 1
    p = outs[-1]
    gout = 2 * (p - y) / y.size
    jac = np.einsum("ij,jk->ijk", p, np.eye(p.shape[1])) + np.einsum("ij,ik->ijk", p, p)   # BUG: + p p^T
    d = np.einsum("ijk,ij->ik", jac, gout)
    out = {}
    for l in range(L, 0, -1):
        out[f"W{l}"], out[f"b{l}"] = outs[l - 1].T @ d, d.sum(axis=0)
        if l > 1:
            s = outs[l - 1]
            d = (d @ params[f"W{l}"].T) * s * (1 - s)
    return out


def tape_forward_order(arch, params, x, y):
    out, nodes = ta.build(arch, params, x, y)
    order, seen = [], set()

    def visit(v):
        if id(v) not in seen:
            seen.add(id(v))
            for p in v._parents:
                visit(p)
            order.append(v)
    visit(out)
    out.grad = np.ones_like(out.data, dtype=np.float64)
    for v in order:                                 # BUG: the topological order not reversed
        v._backward()
    return {k: n.grad for k, n in nodes.items()}


def tape_tanh_prime_of_input(arch, params, x, y):
    saved = ta.UNARY["tanh"]
    ta_unary = dict(ta.UNARY, tanh=(np.tanh, lambda x, y: 1 - x ** 2))   # BUG: 1 - z**2, from the input
    nodes = {k: ta.Value(v) for k, v in params.items()}
    h = ta.Value(x)
    for l, name in enumerate(arch.activations, start=1):
        h = (h @ nodes[f"W{l}"] + nodes[f"b{l}"]).unary(*ta_unary[name])
    loss = h.mse(y)
    loss.backward()
    assert ta.UNARY["tanh"] is saved
    return {k: n.grad for k, n in nodes.items()}
