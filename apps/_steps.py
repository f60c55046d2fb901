"""The training and evaluation steps of the classifier apps (train_mnist, train_cifar10)."""

from __future__ import annotations

from typing import Any

import needle as ndl
import needle.nn as nn


class ClassifierSteps:
    """A classifier's training and evaluation steps, compiled by ``ndl.jit`` when ``jit``
    (the results are the same bit for bit; the jitted steps keep their traces across
    epochs, so make one per model and optimizer).

    Parameters
    ----------
    model : Module
        Maps a batch to logits.
    opt : Optimizer, optional
        Updated by the training step (evaluation needs none).
    jit : bool
        Compile both steps with ``ndl.jit``.
    flatten : bool
        Reshape each batch to (batch, features) first (the MLPs of train_mnist).
    """

    def __init__(self, model: nn.Module, opt: Any = None, jit: bool = False,
                 flatten: bool = False) -> None:
        loss_fn = nn.SoftmaxLoss()

        def logits_of(X: ndl.Tensor) -> ndl.Tensor:
            return model(X.reshape((X.shape[0], -1)) if flatten else X)

        def train_step(X: ndl.Tensor, y: ndl.Tensor) -> tuple:
            logits = logits_of(X)
            loss = loss_fn(logits, y)
            opt.reset_grad()
            loss.backward()
            opt.step()
            return loss, logits

        def eval_step(X: ndl.Tensor, y: ndl.Tensor) -> tuple:
            with ndl.no_grad():
                logits = logits_of(X)
                return loss_fn(logits, y), logits

        self.train = ndl.jit(train_step, enabled=jit)
        self.eval = ndl.jit(eval_step, enabled=jit)
