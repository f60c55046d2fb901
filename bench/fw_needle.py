"""The workloads in needle, written the way a user would (nn.Linear, SoftmaxLoss, optim.SGD).

The backend (``nd`` or ``np``) is fixed by ``NEEDLE_BACKEND`` when needle is imported, so the
runner measures each backend in its own process.
"""

from __future__ import annotations

import numpy as np

import needle as ndl

from .workloads import Case, Unavailable, chain_forward


def _const(array: np.ndarray, requires_grad: bool = False) -> ndl.Tensor:
    return ndl.Tensor(array, dtype="float32", requires_grad=requires_grad)


def chain(data: dict) -> Case:
    """W1/W4: ``x + c_add``, ``x * c_mul``, ``tanh``, ``x * scalar`` in turn; loss = sum."""
    x = _const(data["x"], requires_grad=True)
    consts = dict(data, c_add=_const(data["c_add"]), c_mul=_const(data["c_mul"]))
    last: dict = {}

    def step() -> None:
        y = chain_forward(x, consts, ndl.tanh)
        loss = y.sum()
        loss.backward()
        last.update(y=y.detach(), loss=loss.detach())

    def result() -> dict:
        return {"y": last["y"].numpy(), "loss": last["loss"].numpy(), "gx": x.grad.numpy()}

    return Case(step, result)


def _mlp_model(params: dict) -> tuple[ndl.nn.Module, list]:
    """The 3-layer MLP with ``params`` copied into its Linear layers."""
    nn = ndl.nn
    dims = [params["W1"].shape[0]] + [params[f"W{i}"].shape[1] for i in (1, 2, 3)]
    linears = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
    for i, layer in enumerate(linears, start=1):
        layer.weight.data = _const(params[f"W{i}"])
        layer.bias.data = _const(params[f"b{i}"])
    model = nn.Sequential(linears[0], nn.ReLU(), linears[1], nn.ReLU(), linears[2])
    return model, linears


def mlp(data: dict) -> Case:
    """W2: a training step of the MLP with nn.Linear, nn.ReLU, nn.SoftmaxLoss, optim.SGD."""
    model, linears = _mlp_model(data["params"])
    loss_fn = ndl.nn.SoftmaxLoss()
    opt = ndl.optim.SGD(model.parameters(), lr=data["lr"])
    X, y = _const(data["X"]), ndl.Tensor(data["y"], requires_grad=False)
    last: dict = {}

    def step() -> None:
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        last["loss"] = loss.detach()

    def result() -> dict:
        out = {"loss": last["loss"].numpy()}
        for i, layer in enumerate(linears, start=1):
            out[f"gW{i}"] = layer.weight.grad.numpy()
            out[f"gb{i}"] = layer.bias.grad.numpy()
            out[f"W{i}"] = layer.weight.numpy()
            out[f"b{i}"] = layer.bias.numpy()
        return out

    return Case(step, result)


def mlp_course(data: dict) -> Case:
    """W2c: the W2 step as the course's homework writes it (hw2's nn_epoch style):
    ``broadcast_to(reshape(b, (1, n)), (B, n))`` bias adds, the loss as
    ``logsumexp(z) - summation(z * one_hot)``, updates ``p.data = p.data - lr * p.grad.data``.
    """
    X = _const(data["X"])
    batch = data["X"].shape[0]
    classes = data["params"]["W3"].shape[1]
    one_hot = _const(np.eye(classes, dtype=np.float32)[data["y"]])
    params = {}
    for i in (1, 2, 3):
        params[f"W{i}"] = _const(data["params"][f"W{i}"], requires_grad=True)
        params[f"b{i}"] = _const(data["params"][f"b{i}"].reshape(-1), requires_grad=True)
    lr = data["lr"]
    last: dict = {}

    def step() -> None:
        h = X
        for i in (1, 2, 3):
            b = params[f"b{i}"]
            n = b.shape[0]
            z = h @ params[f"W{i}"] + ndl.broadcast_to(ndl.reshape(b, (1, n)), (batch, n))
            h = ndl.relu(z) if i < 3 else z
        loss = ndl.summation(ndl.logsumexp(z, axes=(1,)) - ndl.summation(z * one_hot, axes=(1,)))
        loss = loss / batch
        loss.backward()
        for p in params.values():
            p.data = p.data - lr * p.grad.data
        last["loss"] = loss.detach()

    def result() -> dict:
        out = {"loss": last["loss"].numpy()}
        for i in (1, 2, 3):
            out[f"gW{i}"] = params[f"W{i}"].grad.numpy()
            out[f"gb{i}"] = params[f"b{i}"].grad.numpy().reshape(1, -1)
            out[f"W{i}"] = params[f"W{i}"].numpy()
            out[f"b{i}"] = params[f"b{i}"].numpy().reshape(1, -1)
        return out

    return Case(step, result)


def matmuls(data: dict) -> Case:
    """W3: loss = sum(relu(X @ W1) @ W2); gradients of W1 and W2."""
    X = _const(data["X"])
    W1, W2 = _const(data["W1"], True), _const(data["W2"], True)
    last: dict = {}

    def step() -> None:
        loss = ndl.relu(X @ W1) @ W2
        loss = loss.sum()
        loss.backward()
        last["loss"] = loss.detach()

    def result() -> dict:
        return {"loss": last["loss"].numpy(), "gW1": W1.grad.numpy(), "gW2": W2.grad.numpy()}

    return Case(step, result)


def digits_epoch(data: dict, jit: bool = False) -> Case:
    """W6: one training epoch of ``make demo`` (apps.train_mnist's MLPResNet and run_epoch);
    ``jit=True`` compiles the training step with ndl.jit (``Steps(..., jit=True)``)."""
    try:
        from apps import train_mnist
    except ImportError as e:
        raise Unavailable(f"apps.train_mnist cannot be imported ({e})") from None
    np.random.seed(0)
    model = train_mnist.MLPResNet(data["X"].shape[1], hidden_dim=data["hidden_dim"])
    opt = ndl.optim.Adam(model.parameters(), lr=data["lr"], weight_decay=data["weight_decay"])
    dataset = ndl.data.NDArrayDataset(data["X"], data["y"])
    loader = ndl.data.DataLoader(dataset, data["batch_size"], shuffle=True)
    steps = train_mnist.Steps(model, opt, jit=jit)
    last: dict = {}

    def step() -> None:
        last["loss"], last["acc"] = train_mnist.run_epoch(loader, model, opt, steps=steps)

    return Case(step, lambda: {"loss": np.float32(last["loss"])})


def build(name: str, data: dict) -> Case:
    """The needle Case of workload ``name``."""
    if name in ("W1", "W4"):
        return chain(data)
    if name in ("W2", "W5"):
        return mlp(data)
    if name == "W2c":
        return mlp_course(data)
    if name == "W3":
        return matmuls(data)
    if name == "W6":
        return digits_epoch(data)
    raise KeyError(name)
