"""The seed essay's XOR script with its two gradient bugs fixed: the gradient of the MSE it reports.

    L = mean((y_hat - y)^2) over the N = batch x n_out elements
    dL/dy_hat = 2/N (y_hat - y)                # the 2/N factor of the mean
    dz2 = dL/dy_hat * sigmoid'(z2)             # the sigmoid's derivative (y_hat - y alone is BCE's)
    dW2 = a1.T @ dz2, db2 = sum of dz2 over the batch    # biases summed like the weights
    dz1 = (dz2 @ W2.T) * sigmoid'(z1), dW1 = X.T @ dz1, db1 = sum of dz1 over the batch

`python -m bpcheck check examples/seed_xor_fixed.py:grads --arch 2-2-1 --activations sigmoid,sigmoid
--loss mse` exits 0. Run the file to train (a larger rate than the essay's 0.1, since the true MSE
gradient is smaller than the summed-BCE one the essay followed).
"""

import numpy as np


def loss(yt, y):
    return np.mean((yt - y) ** 2)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def backprop(X, y, W1, b1, W2, b2):
    """Forward and backward pass; b1, b2 are (1, n). Returns the loss, y_hat and the gradients."""
    z1 = X @ W1 + b1
    a1 = sigmoid(z1)
    z2 = a1 @ W2 + b2
    y_hat = sigmoid(z2)
    epoch_loss = loss(y_hat, y)
    dy_hat = 2.0 / y_hat.size * (y_hat - y)
    dz2 = dy_hat * y_hat * (1 - y_hat)
    dW2 = a1.T @ dz2
    db2 = np.sum(dz2, axis=0, keepdims=True)
    dz1 = (dz2 @ W2.T) * a1 * (1 - a1)
    dW1 = X.T @ dz1
    db1 = np.sum(dz1, axis=0, keepdims=True)
    return epoch_loss, y_hat, (dW1, db1, dW2, db2)


def grads(params, x, y):
    """dL/dparams of the MSE in bpcheck's layout: W1 (2, 2), b1 (2,), W2 (2, 1), b2 (1,)."""
    b1 = params["b1"].reshape(1, -1)
    b2 = params["b2"].reshape(1, -1)
    _, _, (dW1, db1, dW2, db2) = backprop(x, y, params["W1"], b1, params["W2"], b2)
    return {"W1": dW1, "b1": db1.reshape(-1), "W2": dW2, "b2": db2.reshape(-1)}


def main(seed=0, epochs=10000, lr=5.0):
    rng = np.random.default_rng(seed)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([[0], [1], [1], [0]], dtype=float)
    W1, b1 = rng.standard_normal((2, 2)), np.zeros((1, 2))
    W2, b2 = rng.standard_normal((2, 1)), np.zeros((1, 1))
    for epoch in range(epochs):
        epoch_loss, y_hat, (dW1, db1, dW2, db2) = backprop(X, y, W1, b1, W2, b2)
        W1, b1, W2, b2 = W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2
        if epoch % 1000 == 0:
            print(f"Epoch {epoch}: Loss = {epoch_loss:.6f}")
    print("Final predictions:")
    for i in range(len(X)):
        print(f"Input: {X[i]} -> Predicted: {y_hat[i][0]:.4f}, Actual: {y[i][0]:.0f}")


if __name__ == "__main__":
    main()
