"""A residual MLP for MNIST, and the loops that train and evaluate it."""

from __future__ import annotations

import os

import numpy as np

import needle as ndl
import needle.nn as nn

np.random.seed(0)


def _norm(norm: type, dim: int, dtype: str) -> nn.Module:
    # Only pass dtype when asked for, so norm classes without that argument still work.
    return norm(dim) if dtype == "float32" else norm(dim, dtype=dtype)


def ResidualBlock(
    dim: int,
    hidden_dim: int,
    norm: type = nn.BatchNorm1d,
    drop_prob: float = 0.1,
    dtype: str = "float32",
) -> nn.Module:
    """``ReLU(x + norm(Linear(Dropout(ReLU(norm(Linear(x)))))))``: dim -> hidden_dim -> dim."""
    return nn.Sequential(
        nn.Residual(nn.Sequential(
            nn.Linear(dim, hidden_dim, dtype=dtype),
            _norm(norm, hidden_dim, dtype),
            nn.ReLU(),
            nn.Dropout(drop_prob),
            nn.Linear(hidden_dim, dim, dtype=dtype),
            _norm(norm, dim, dtype),
        )),
        nn.ReLU(),
    )


def MLPResNet(
    dim: int,
    hidden_dim: int = 100,
    num_blocks: int = 3,
    num_classes: int = 10,
    norm: type = nn.BatchNorm1d,
    drop_prob: float = 0.1,
    dtype: str = "float32",
) -> nn.Module:
    """Linear(dim, hidden) -> ReLU -> ``num_blocks`` ResidualBlocks -> Linear(hidden, classes).

    ``dtype`` (default float32) is that of every parameter and buffer.
    """
    return nn.Sequential(
        nn.Linear(dim, hidden_dim, dtype=dtype),
        nn.ReLU(),
        *[ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob, dtype)
          for _ in range(num_blocks)],
        nn.Linear(hidden_dim, num_classes, dtype=dtype),
    )


def epoch(
    dataloader: ndl.data.DataLoader,
    model: nn.Module,
    opt: ndl.optim.Optimizer | None = None,
) -> tuple[float, float]:
    """One pass over ``dataloader``: trains when ``opt`` is given, else evaluates.

    Like the course skeleton, it starts with ``np.random.seed(4)`` (shuffling and dropout
    are then reproducible).

    Returns
    -------
    (error_rate, mean_loss) : tuple of float
        The error rate over samples and the mean of the per-batch losses.
    """
    np.random.seed(4)
    loss_fn = nn.SoftmaxLoss()
    if opt is None:
        model.eval()
    else:
        model.train()
    errors, seen, losses = 0, 0, []
    for X, y in dataloader:
        X = X.reshape((X.shape[0], -1))
        logits = model(X)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            opt.step()
        errors += int(np.sum(logits.numpy().argmax(axis=1) != y.numpy()))
        losses.append(float(loss.numpy()))
        seen += X.shape[0]
    return errors / seen, float(np.mean(losses))


def train_mnist(
    batch_size: int = 100,
    epochs: int = 10,
    optimizer: type = ndl.optim.Adam,
    lr: float = 0.001,
    weight_decay: float = 0.001,
    hidden_dim: int = 100,
    data_dir: str = "data",
) -> tuple[float, float, float, float]:
    """Train an MLPResNet on the MNIST idx files in ``data_dir`` and evaluate it.

    Starts with ``np.random.seed(4)`` like the course skeleton.

    Returns
    -------
    (train_err, train_loss, test_err, test_loss) : tuple of float
        Training figures of the last epoch, test figures after it.
    """
    np.random.seed(4)
    model = MLPResNet(28 * 28, hidden_dim=hidden_dim)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_set = ndl.data.MNISTDataset(
        os.path.join(data_dir, "train-images-idx3-ubyte.gz"),
        os.path.join(data_dir, "train-labels-idx1-ubyte.gz"),
    )
    test_set = ndl.data.MNISTDataset(
        os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"),
        os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"),
    )
    train_loader = ndl.data.DataLoader(train_set, batch_size, shuffle=True)
    test_loader = ndl.data.DataLoader(test_set, batch_size)
    for _ in range(epochs):
        train_err, train_loss = epoch(train_loader, model, opt)
    test_err, test_loss = epoch(test_loader, model, None)
    return train_err, train_loss, test_err, test_loss
