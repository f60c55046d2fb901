"""Batch normalisation in training mode as one graph node, and its running statistics.

``BatchNorm1d`` composed of elementary ops records about twenty nodes per call (sums,
reshapes, broadcasts, the normalisation) and about thirty more in ``backward()``; on small
models that per-node work is most of a training step. :class:`BatchNormTrain` computes the
same float operations in one ``compute`` (so the values are those of the composition, bit
for bit); its gradient is written with needle ops, one node per step of the textbook
formula, so it is differentiable again and works in graph mode and under ``ndl.jit``.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from .ops_graph import Mean
from .ops_mathematic import BroadcastLike, _row_major, summation

__all__ = ["BatchNormTrain", "batchnorm_train", "RunningStat", "running_stat"]


def _check(op: str, x: Any, *vectors: Any) -> None:
    if x.ndim != 2:
        raise ShapeError(f"{op}: expected a (batch, dim) input, got shape {tuple(x.shape)}")
    for v in vectors:
        if tuple(v.shape) != (x.shape[1],):
            raise ShapeError(f"{op}: expected ({x.shape[1]},) per-feature vectors for input "
                             f"{tuple(x.shape)}, got shape {tuple(v.shape)}")


def _batch_moments(xp: Any, x: Any) -> tuple:
    """(mean, centred, biased var) over axis 0, in the composition's order of operations
    (``x.sum(axes=(0,)) / n``, ``x - mean``, ``(centred ** 2).sum(axes=(0,)) / n``)."""
    n = x.shape[0]
    mean = xp.divide(xp.sum(_row_major(xp, x), axis=(0,)), n)
    centred = xp.subtract(x, mean)
    var = xp.divide(xp.sum(xp.power(centred, 2), axis=(0,)), n)
    return mean, centred, var


class BatchNormTrain(TensorOp):
    """``(x - mean) / (var + eps) ** 0.5 * weight + bias`` with the batch mean and biased
    variance over axis 0 of a (batch, dim) input; ``weight`` and ``bias`` are (dim,)."""

    def __init__(self, eps: float = 1e-5):
        self.eps = float(eps)

    def compute(self, x: Any, w: Any, b: Any) -> Any:
        xp = self.xp
        _check("batchnorm_train", x, w, b)
        _, centred, var = _batch_moments(xp, x)
        std = xp.power(xp.add(var, self.eps), 0.5)
        return xp.add(xp.multiply(xp.divide(centred, std), w), b)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        x, w, b = node.inputs
        # The statistics are recomputed from x, not saved: the node keeps no extra arrays.
        mean_of = Mean((0,), keepdims=True)
        centred = x - mean_of(x)
        inv_std = (mean_of(centred * centred) + self.eps) ** -0.5
        xhat = centred * inv_std
        grad_x = grad_w = grad_b = None
        if x.requires_grad:
            g = out_grad * w
            grad_x = (g - mean_of(g) - xhat * mean_of(g * xhat)) * inv_std
        if w.requires_grad:
            grad_w = summation(out_grad * xhat, axes=(0,))
        if b.requires_grad:
            grad_b = summation(out_grad, axes=(0,))
        return grad_x, grad_w, grad_b


def batchnorm_train(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Batch normalisation of a (batch, dim) ``x`` with its own batch statistics.

    Parameters
    ----------
    x : Tensor
        (batch, dim) input.
    weight, bias : Tensor
        (dim,) affine parameters.
    eps : float
        Added to the biased batch variance.
    """
    return BatchNormTrain(eps)(x, weight, bias)


class RunningStat(TensorOp):
    """``running * (1 - momentum) + stat(x) * momentum``, where ``stat`` is the batch mean
    (``which="mean"``) or the biased batch variance (``which="var"``) over axis 0."""

    def __init__(self, momentum: float, which: str):
        if which not in ("mean", "var"):
            raise ValueError(f"running_stat: which must be 'mean' or 'var', got {which!r}")
        self.momentum = float(momentum)
        self.which = which

    def compute(self, running: Any, x: Any) -> Any:
        xp = self.xp
        _check("running_stat", x, running)
        mean, _, var = _batch_moments(xp, x)
        stat = mean if self.which == "mean" else var
        m = self.momentum
        return xp.add(xp.multiply(running, 1 - m), xp.multiply(stat, m))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        running, x = node.inputs
        m = self.momentum
        grad_x = None
        if x.requires_grad:
            g = out_grad * m
            if self.which == "mean":
                grad_x = BroadcastLike((0,))(g / x.shape[0], x)
            else:
                centred = x - Mean((0,), keepdims=True)(x)
                grad_x = centred * (g * (2 / x.shape[0]))
        return out_grad * (1 - m), grad_x


def running_stat(running: Tensor, x: Tensor, momentum: float, which: str) -> Tensor:
    """The updated running mean or variance of a batch-norm layer (see :class:`RunningStat`)."""
    return RunningStat(momentum, which)(running, x)
