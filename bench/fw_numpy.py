"""The baseline: every workload in plain numpy, forward and backward derived by hand.

This is the floor a numpy-backed autodiff library can reach: the same arithmetic with no
graph, no wrappers and no dispatch. Results of the other frameworks are checked against it.
"""

from __future__ import annotations

import numpy as np

from .workloads import Case, Unavailable

MLP_LAYERS = 3


def chain(data: dict) -> Case:
    """W1/W4: ``x + c_add``, ``x * c_mul``, ``tanh``, ``x * scalar`` in turn; loss = sum."""
    x = data["x"]
    c_add, c_mul, n_ops = data["c_add"], data["c_mul"], data["n_ops"]
    scalar = np.float32(data["scalar"])
    last: dict = {}

    def step() -> None:
        y = x
        tanh_out = []  # the only intermediates the backward needs
        for i in range(n_ops):
            k = i % 4
            if k == 0:
                y = y + c_add
            elif k == 1:
                y = y * c_mul
            elif k == 2:
                y = np.tanh(y)
                tanh_out.append(y)
            else:
                y = y * scalar
        loss = y.sum()
        g = np.ones_like(y)
        for i in reversed(range(n_ops)):
            k = i % 4
            if k == 1:
                g = g * c_mul
            elif k == 2:
                t = tanh_out.pop()
                g = g * (1 - t * t)
            elif k == 3:
                g = g * scalar
        last.update(y=y, loss=loss, gx=g)

    return Case(step, lambda: dict(last))


def mlp(data: dict) -> Case:
    """W2: Linear-ReLU-Linear-ReLU-Linear, mean softmax cross-entropy, SGD step."""
    X, y, lr = data["X"], data["y"], np.float32(data["lr"])
    params = {k: v.copy() for k, v in data["params"].items()}
    batch = X.shape[0]
    rows = np.arange(batch)
    last: dict = {}

    def step() -> None:
        acts, pre = [X], []
        h = X
        for i in range(1, MLP_LAYERS + 1):
            z = h @ params[f"W{i}"] + params[f"b{i}"]
            if i < MLP_LAYERS:
                pre.append(z)
                h = np.maximum(z, 0)
                acts.append(h)
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        se = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(se[:, 0]) + m[:, 0] - z[rows, y])
        dz = e / se
        dz[rows, y] -= 1
        dz /= batch
        grads = {}
        for i in range(MLP_LAYERS, 0, -1):
            grads[f"W{i}"] = acts[i - 1].T @ dz
            grads[f"b{i}"] = dz.sum(axis=0, keepdims=True)
            if i > 1:
                dz = (dz @ params[f"W{i}"].T) * (pre[i - 2] > 0)
        for k, g in grads.items():
            params[k] -= lr * g
        last["loss"] = loss
        last["grads"] = grads

    def result() -> dict:
        out = {"loss": last["loss"]}
        out.update({f"g{k}": g for k, g in last["grads"].items()})
        out.update({k: p.copy() for k, p in params.items()})
        return out

    return Case(step, result)


def matmuls(data: dict) -> Case:
    """W3: loss = sum(relu(X @ W1) @ W2); gradients of W1 and W2."""
    X, W1, W2 = data["X"], data["W1"], data["W2"]
    last: dict = {}

    def step() -> None:
        H = X @ W1
        R = np.maximum(H, 0)
        Y = R @ W2
        loss = Y.sum()
        dY = np.ones_like(Y)
        gW2 = R.T @ dY
        dH = (dY @ W2.T) * (H > 0)
        gW1 = X.T @ dH
        last.update(loss=loss, gW1=gW1, gW2=gW2)

    return Case(step, lambda: dict(last))


def build(name: str, data: dict) -> Case:
    """The numpy-by-hand Case of workload ``name``."""
    if name in ("W1", "W4"):
        return chain(data)
    if name in ("W2", "W2c", "W5"):
        return mlp(data)
    if name == "W3":
        return matmuls(data)
    raise Unavailable("numpy by hand: MLPResNet training is not written by hand")
