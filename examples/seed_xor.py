"""The seed essay's XOR script, re-created with its gradient formulas unchanged (two real bugs in them).

Fixed only so that it runs: sigmoid and sigmoid_prime are defined before the loop uses them, the
random weights come from a seeded Generator, and the update works on copies. The backprop is the
essay's, line for line:

    dz2 = y_hat - y                        # bug 1: the gradient of summed binary cross-entropy w.r.t. z2,
                                           #        not of the MSE that `loss` reports (sigma' and 2/N missing)
    dW2 = a1.T @ dz2                       # weight gradients summed over the batch
    db2 = np.mean(dz2, axis=0, ...)        # bug 2: bias gradients averaged over the batch (1/batch x)
    dz1 = (dz2 @ W2.T) * sigmoid_prime(z1)
    dW1 = X.T @ dz1
    db1 = np.mean(dz1, axis=0, ...)

`grads(params, x, y)` exposes that computation in bpcheck's layout (its biases are (1, n) in the
script, (n,) in bpcheck's), so that `python -m bpcheck check examples/seed_xor.py:grads --arch 2-2-1
--activations sigmoid,sigmoid --loss mse` can catch both bugs. Run the file to train as the essay does.
"""

import numpy as np


def loss(yt, y):
    return np.mean((yt - y) ** 2)


# Activation function (the essay defines these after the loop that uses them)
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_prime(z):
    return sigmoid(z) * (1 - sigmoid(z))


def backprop(X, y, W1, b1, W2, b2):
    """The essay's forward and backward pass; b1, b2 are (1, n). Returns the loss, y_hat and the gradients."""
    # Feedforward
    z1 = X @ W1 + b1
    a1 = sigmoid(z1)
    z2 = a1 @ W2 + b2
    y_hat = sigmoid(z2)
    # Calculate loss
    epoch_loss = loss(y_hat, y)
    # Backprop
    dz2 = y_hat - y
    dW2 = a1.T @ dz2
    db2 = np.mean(dz2, axis=0, keepdims=True)
    dz1 = (dz2 @ W2.T) * sigmoid_prime(z1)
    dW1 = X.T @ dz1
    db1 = np.mean(dz1, axis=0, keepdims=True)
    return epoch_loss, y_hat, (dW1, db1, dW2, db2)


def grads(params, x, y):
    """The essay's gradients in bpcheck's layout: W1 (2, 2), b1 (2,), W2 (2, 1), b2 (1,)."""
    b1 = params["b1"].reshape(1, -1)
    b2 = params["b2"].reshape(1, -1)
    _, _, (dW1, db1, dW2, db2) = backprop(x, y, params["W1"], b1, params["W2"], b2)
    return {"W1": dW1, "b1": db1.reshape(-1), "W2": dW2, "b2": db2.reshape(-1)}


def main(seed=0, epochs=5000, lr=0.1):
    rng = np.random.default_rng(seed)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([[0], [1], [1], [0]])  # XOR
    W1 = rng.standard_normal((2, 2))
    b1 = np.zeros((1, 2))
    W2 = rng.standard_normal((2, 1))
    b2 = np.zeros((1, 1))
    print("Initial weights and biases:")
    print(f"W1:\n{W1}\nb1:\n{b1}\nW2:\n{W2}\nb2:\n{b2}")
    print("*" * 60)
    for epoch in range(epochs):
        epoch_loss, y_hat, (dW1, db1, dW2, db2) = backprop(X, y, W1, b1, W2, b2)
        # Update weights
        W1 = W1 - lr * dW1
        b1 = b1 - lr * db1
        W2 = W2 - lr * dW2
        b2 = b2 - lr * db2
        if epoch % 1000 == 0:
            print(f"Epoch {epoch}: Loss = {epoch_loss:.6f}")
    print("\n" + "=" * 60)
    print("Final predictions:")
    print("y_hat", y_hat)
    for i in range(len(X)):
        print(f"Input: {X[i]} -> Predicted: {y_hat[i][0]:.4f}, Actual: {y[i][0]}")


if __name__ == "__main__":
    main()
