"""Numerically stable log-sum-exp, log-softmax and softmax."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..errors import DTypeError
from ._args import reduction_args
from .ops_mathematic import BroadcastLike, _normalize_axes, exp, summation


def _stable_max(xp: Any, x: Any, axes: tuple) -> Any:
    """Max over ``axes`` (kept), with non-finite maxima replaced by 0 so x - max stays finite."""
    m = xp.max(x, axis=axes, keepdims=True) if x.size else xp.zeros(
        [1 if i in axes else d for i, d in enumerate(x.shape)], dtype=x.dtype)
    m = xp.where(xp.isfinite(m), m, 0)
    return m if m.dtype == x.dtype else xp.asarray(m, dtype=x.dtype)


def _float(a: Any, op: str) -> Any:
    if a.dtype.kind != "f":
        raise DTypeError(f"{op}: expects a floating-point tensor, got dtype {a.dtype}")
    return a


class LogSoftmax(TensorOp):
    """``x - logsumexp(x)`` along ``axis`` (the last axis; axis 1 of a 2-D input)."""

    def __init__(self, axis: int = -1):
        self.axis = axis

    def compute(self, Z: Any) -> Any:
        xp = self.xp
        z = _float(Z, "logsoftmax")
        axes = _normalize_axes(self.axis, z.ndim, "logsoftmax", z.shape)
        shifted = xp.subtract(z, _stable_max(xp, z, axes))
        total = xp.sum(xp.exp(shifted), axis=axes, keepdims=True)
        return xp.subtract(shifted, xp.log(total))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        total = BroadcastLike(self.axis)(summation(out_grad, self.axis), out_grad)
        return out_grad - exp(node) * total


def logsoftmax(a: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """Stable ``a - logsumexp(a)`` along ``axis`` (default: the last; ``dim`` is PyTorch's
    spelling)."""
    axis, _ = reduction_args("logsoftmax", axis, dim, axes_default=-1)
    return LogSoftmax(axis)(a)


class LogSumExp(TensorOp):
    """``log(sum(exp(x)))`` over ``axes`` (None: all), dropping them; stable for huge inputs."""

    def __init__(self, axes: Any = None, keepdims: bool = False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, Z: Any) -> Any:
        xp = self.xp
        z = _float(Z, "logsumexp")
        axes = _normalize_axes(self.axes, z.ndim, "logsumexp", z.shape)
        m = _stable_max(xp, z, axes)
        total = xp.sum(xp.exp(xp.subtract(z, m)), axis=axes, keepdims=True)
        out = xp.add(xp.log(total), m)
        if self.keepdims:
            return out
        return xp.reshape(out, [d for i, d in enumerate(z.shape) if i not in axes])

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        # softmax(z) rather than exp(z - lse): lse rounds at large magnitudes (1e10 in
        # float32), and the softmax op stays exact there.
        z = node.inputs[0]
        axes = None if self.keepdims else self.axes
        return BroadcastLike(axes)(out_grad, z) * Softmax(self.axes)(z)


def logsumexp(a: Tensor, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
              keepdim: bool | None = None) -> Tensor:
    """Stable ``log(sum(exp(a)))`` over ``axes`` (None: all; int or tuple), dropping them
    unless ``keepdims``; ``dim``/``keepdim`` are PyTorch's spellings."""
    axes, keepdims = reduction_args("logsumexp", axes, dim, keepdims, keepdim)
    return LogSumExp(axes=axes, keepdims=keepdims)(a)


class Softmax(TensorOp):
    """``exp(x) / sum(exp(x))`` along ``axis`` (default: the last; a tuple or None also work)."""

    def __init__(self, axis: int = -1):
        self.axis = axis

    def compute(self, Z: Any) -> Any:
        xp = self.xp
        z = _float(Z, "softmax")
        axes = _normalize_axes(self.axis, z.ndim, "softmax", z.shape)
        e = xp.exp(xp.subtract(z, _stable_max(xp, z, axes)))
        return xp.divide(e, xp.sum(e, axis=axes, keepdims=True))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        dot = BroadcastLike(self.axis)(summation(out_grad * node, self.axis), node)
        return node * (out_grad - dot)


def softmax(a: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """Stable ``exp(a) / sum(exp(a))`` along ``axis`` (default: the last; ``dim`` is
    PyTorch's spelling)."""
    axis, _ = reduction_args("softmax", axis, dim, axes_default=-1)
    return Softmax(axis)(a)
