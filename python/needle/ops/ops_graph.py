"""Ops that graph mode needs and the core lacks: layer normalisation and a checked broadcast.

Both follow the one contract: ``compute`` on backend arrays, ``gradient`` with needle ops
only (so it is differentiable again and builds on placeholders that hold no data).
"""

from __future__ import annotations

from typing import Any

import numpy

from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from .ops_mathematic import BroadcastLike, BroadcastTo, Mean, sqrt

__all__ = ["LayerNorm", "layernorm", "layernorm_backward", "trailing_axes", "Broadcast",
           "broadcast", "ExpandAs", "expand_as"]


def _as_shape(shape: Any) -> tuple:
    return (int(shape),) if isinstance(shape, (int, numpy.integer)) else tuple(shape)


def trailing_axes(normalized_shape: Any) -> tuple:
    """The negative axes ``(-k, ..., -1)`` that a layer norm over ``normalized_shape`` reduces."""
    return tuple(range(-len(_as_shape(normalized_shape)), 0))


def check_normalized_shape(shape: tuple, normalized_shape: tuple, op: str) -> None:
    """Raise a ShapeError unless ``shape`` ends with ``normalized_shape``."""
    k = len(normalized_shape)
    if k == 0 or len(shape) < k or tuple(shape[len(shape) - k:]) != normalized_shape:
        raise ShapeError(f"{op}: normalized_shape {normalized_shape} does not match the "
                         f"trailing dims of shape {tuple(shape)}")


def layernorm_forward(xp: Any, x: Any, normalized_shape: tuple, eps: float, op: str) -> Any:
    """``(x - mean) / sqrt(var + eps)`` over the trailing dims; overwrites ``x`` in place."""
    check_normalized_shape(x.shape, normalized_shape, op)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xp.subtract(x, xp.mean(x, axis=axes, keepdims=True), out=x)
    var = xp.mean(xp.square(x), axis=axes, keepdims=True)
    xp.divide(x, xp.sqrt(xp.add(var, eps)), out=x)
    return x


def layernorm_backward(out_grad: Tensor, x: Tensor, y: Tensor, axes: tuple,
                       eps: float) -> Tensor:
    """The layer-norm vector-Jacobian product, in needle ops.

    With ``y = (x - mean) / std``: ``dx = (g - mean(g) - y * mean(g * y)) / std``. ``std``
    is recomputed from ``x`` rather than saved, which keeps the forward free of extra state.
    """
    centred = x - Mean(axes, keepdims=True)(x)
    std = sqrt(Mean(axes, keepdims=True)(centred * centred) + eps)
    g_mean = Mean(axes, keepdims=True)(out_grad)
    gy_mean = Mean(axes, keepdims=True)(out_grad * y)
    return (out_grad - g_mean - y * gy_mean) / std


class LayerNorm(TensorOp):
    """Normalise over the trailing ``normalized_shape`` dims (biased variance, no affine)."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5):
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = float(eps)

    def compute(self, a: Any) -> Any:
        xp = self.xp
        x = xp.array(a, dtype=a.dtype if a.dtype.kind == "f" else numpy.float32)
        return layernorm_forward(xp, x, self.normalized_shape, self.eps, "layernorm")

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        axes = trailing_axes(self.normalized_shape)
        return layernorm_backward(out_grad, node.inputs[0], node, axes, self.eps)


def layernorm(a: Tensor, normalized_shape: Any, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims (no affine)."""
    return LayerNorm(normalized_shape, eps)(a)


class Broadcast(BroadcastTo):
    """``broadcast_to(a, target_shape)`` that first checks ``a`` has ``input_shape``.

    The gradient (inherited) sums over the broadcast axes back to ``a``'s shape.
    """

    def __init__(self, input_shape: Any, target_shape: Any):
        super().__init__(_as_shape(target_shape))
        self.input_shape = _as_shape(input_shape)

    def compute(self, a: Any) -> Any:
        if tuple(a.shape) != self.input_shape:
            raise ShapeError(f"broadcast: input has shape {tuple(a.shape)}, expected "
                             f"input_shape {self.input_shape}")
        return super().compute(a)


def broadcast(a: Tensor, input_shape: Any, target_shape: Any) -> Tensor:
    """Broadcast ``a`` (of ``input_shape``) to ``target_shape``, numpy rules."""
    return Broadcast(input_shape, target_shape)(a)


class ExpandAs(BroadcastLike):
    """Broadcast ``a`` to ``b``'s shape; ``b`` only lends its shape (no gradient)."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            ok = numpy.broadcast_shapes(tuple(a.shape), tuple(b.shape)) == tuple(b.shape)
        except ValueError:
            ok = False
        if not ok:
            raise ShapeError(f"expand_as: cannot broadcast shape {tuple(a.shape)} to "
                             f"{tuple(b.shape)}")
        return super().compute(a, b)


def expand_as(a: Tensor, b: Tensor) -> Tensor:
    """Broadcast ``a`` to the shape of ``b`` (numpy rules)."""
    return ExpandAs()(a, b)
