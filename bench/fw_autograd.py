"""The workloads in HIPS autograd (functions of numpy arrays, ``value_and_grad``)."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from autograd.scipy.special import logsumexp

from .workloads import Case, Unavailable, chain_forward


def chain(data: dict) -> Case:
    """W1/W4: ``x + c_add``, ``x * c_mul``, ``tanh``, ``x * scalar`` in turn; loss = sum."""
    x = data["x"]

    def forward(y):
        return chain_forward(y, data, anp.tanh)

    loss_and_grad = value_and_grad(lambda y: anp.sum(forward(y)))
    last: dict = {}

    def step() -> None:
        last["loss"], last["gx"] = loss_and_grad(x)

    def result() -> dict:
        # value_and_grad returns no auxiliary outputs: recompute y outside the timing.
        return {"y": forward(x), "loss": last["loss"], "gx": last["gx"]}

    return Case(step, result)


def mlp(data: dict) -> Case:
    """W2: the MLP as a function of a dict of parameters; SGD by hand."""
    X, y, lr = data["X"], data["y"], np.float32(data["lr"])
    params = {k: v.copy() for k, v in data["params"].items()}
    rows = np.arange(X.shape[0])

    def loss_fn(p):
        h = anp.maximum(X @ p["W1"] + p["b1"], 0)
        h = anp.maximum(h @ p["W2"] + p["b2"], 0)
        z = h @ p["W3"] + p["b3"]
        return anp.mean(logsumexp(z, axis=1) - z[rows, y])

    loss_and_grad = value_and_grad(loss_fn)
    last: dict = {}

    def step() -> None:
        loss, grads = loss_and_grad(params)
        for k, g in grads.items():
            params[k] = params[k] - lr * g
        last.update(loss=loss, grads=grads)

    def result() -> dict:
        out = {"loss": last["loss"]}
        out.update({f"g{k}": g for k, g in last["grads"].items()})
        out.update({k: p.copy() for k, p in params.items()})
        return out

    return Case(step, result)


def matmuls(data: dict) -> Case:
    """W3: loss = sum(relu(X @ W1) @ W2); gradients of W1 and W2."""
    X = data["X"]

    def loss_fn(W1, W2):
        return anp.sum(anp.maximum(X @ W1, 0) @ W2)

    loss_and_grad = value_and_grad(loss_fn, argnum=[0, 1])
    last: dict = {}

    def step() -> None:
        loss, (gW1, gW2) = loss_and_grad(data["W1"], data["W2"])
        last.update(loss=loss, gW1=gW1, gW2=gW2)

    return Case(step, lambda: dict(last))


def build(name: str, data: dict) -> Case:
    """The HIPS autograd Case of workload ``name``."""
    if name in ("W1", "W4"):
        return chain(data)
    if name in ("W2", "W2c", "W5"):
        return mlp(data)
    if name == "W3":
        return matmuls(data)
    raise Unavailable("autograd: no nn/optim/data stack for MLPResNet training")
