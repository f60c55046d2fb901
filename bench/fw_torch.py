"""The workloads in PyTorch (CPU, eager), written idiomatically (nn.Linear, optim.SGD)."""

from __future__ import annotations

import numpy as np
import torch

from .workloads import Case, chain_forward


def _t(array: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(array, requires_grad=requires_grad)


def chain(data: dict) -> Case:
    """W1/W4: ``x + c_add``, ``x * c_mul``, ``tanh``, ``x * scalar`` in turn; loss = sum."""
    x = _t(data["x"], requires_grad=True)
    consts = dict(data, c_add=_t(data["c_add"]), c_mul=_t(data["c_mul"]))
    last: dict = {}

    def step() -> None:
        x.grad = None
        y = chain_forward(x, consts, torch.tanh)
        loss = y.sum()
        loss.backward()
        last.update(y=y.detach(), loss=loss.detach())

    def result() -> dict:
        return {"y": last["y"].numpy(), "loss": last["loss"].numpy(), "gx": x.grad.numpy()}

    return Case(step, result)


def mlp(data: dict) -> Case:
    """W2: nn.Linear/ReLU MLP, cross_entropy, optim.SGD (weights copied in, transposed)."""
    params = data["params"]
    linears = []
    for i in (1, 2, 3):
        W, b = params[f"W{i}"], params[f"b{i}"]
        layer = torch.nn.Linear(*W.shape)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W.T))
            layer.bias.copy_(torch.from_numpy(b[0]))
        linears.append(layer)
    model = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(),
                                linears[2])
    opt = torch.optim.SGD(model.parameters(), lr=data["lr"])
    X, y = _t(data["X"]), torch.from_numpy(data["y"])
    last: dict = {}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        last["loss"] = loss.detach()

    def result() -> dict:
        out = {"loss": last["loss"].numpy()}
        for i, layer in enumerate(linears, start=1):
            out[f"gW{i}"] = layer.weight.grad.numpy().T
            out[f"gb{i}"] = layer.bias.grad.numpy()[None, :]
            out[f"W{i}"] = layer.weight.detach().numpy().T
            out[f"b{i}"] = layer.bias.detach().numpy()[None, :]
        return out

    return Case(step, result)


def matmuls(data: dict) -> Case:
    """W3: loss = sum(relu(X @ W1) @ W2); gradients of W1 and W2."""
    X = _t(data["X"])
    W1, W2 = _t(data["W1"], True), _t(data["W2"], True)
    last: dict = {}

    def step() -> None:
        W1.grad = W2.grad = None
        loss = (torch.relu(X @ W1) @ W2).sum()
        loss.backward()
        last["loss"] = loss.detach()

    def result() -> dict:
        return {"loss": last["loss"].numpy(), "gW1": W1.grad.numpy(), "gW2": W2.grad.numpy()}

    return Case(step, result)


def _residual_block(dim: int, hidden: int, drop_prob: float) -> torch.nn.Module:
    nn = torch.nn
    body = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Dropout(drop_prob), nn.Linear(hidden, dim), nn.BatchNorm1d(dim))

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fn = body

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fn(x) + x

    return nn.Sequential(Residual(), nn.ReLU())


def digits_epoch(data: dict) -> Case:
    """W6: the same MLPResNet (3 blocks, BatchNorm, dropout 0.1) and Adam, one epoch."""
    nn = torch.nn
    torch.manual_seed(0)
    dim, hidden = data["X"].shape[1], data["hidden_dim"]
    model = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(),
                          *[_residual_block(hidden, hidden // 2, 0.1) for _ in range(3)],
                          nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=data["lr"], weight_decay=data["weight_decay"])
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(data["X"]),
                                             torch.from_numpy(data["y"].astype(np.int64)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=data["batch_size"], shuffle=True)
    last: dict = {}

    def step() -> None:
        # The same bookkeeping as apps.train_mnist.run_epoch: mean loss and accuracy.
        model.train()
        correct, total_loss, n = 0, 0.0, 0
        for X, y in loader:
            logits = model(X)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            n += len(y)
        last["loss"], last["acc"] = total_loss / n, correct / n

    return Case(step, lambda: {"loss": np.float32(last["loss"])})


def build(name: str, data: dict) -> Case:
    """The PyTorch Case of workload ``name``."""
    if name in ("W1", "W4"):
        return chain(data)
    if name in ("W2", "W2c", "W5"):
        return mlp(data)
    if name == "W3":
        return matmuls(data)
    if name == "W6":
        return digits_epoch(data)
    raise KeyError(name)
