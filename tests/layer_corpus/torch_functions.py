"""torch.autograd.Function subclasses with hand-written backward: two right, two wrong.

Course layout for the linear layer: `Linear.apply(x, w, b)` with x (N, D), w (D, M), b (M,), out = x @ w + b.
torch is imported at module level: only tests that need torch import this file.
"""

import torch


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x @ w + b

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        return grad_out @ w.T, x.T @ grad_out, grad_out.sum(0)


class LinearBiasMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x @ w + b

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        return grad_out @ w.T, x.T @ grad_out, grad_out.mean(0)  # BUG: the bias gradient averaged, not summed


class Tanh(torch.autograd.Function):
    """The newer style: forward without ctx, setup_context saves the output."""

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * (1 - y * y)


class TanhFromInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * (1 - x * x)  # BUG: 1 - x**2 where 1 - tanh(x)**2 was meant
