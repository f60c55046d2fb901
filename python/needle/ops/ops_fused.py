"""Fused ops: a matrix product followed by a normalisation, as one graph node each.

The forward computes ``a @ b`` and normalises it in place, so no intermediate array is
kept alive by the graph (the unfused composition keeps one per node). The backward is
written with needle ops, so it stays differentiable and works in graph mode.
"""

from __future__ import annotations

from typing import Any

import numpy

from .._array import wrap
from .._dtype import operand_pair
from ..autograd import Tensor, TensorOp
from .ops_graph import _as_shape, layernorm_backward, layernorm_forward, trailing_axes
from .ops_logarithmic import Softmax, _stable_max
from .ops_mathematic import MatMul, _normalize_axes, matmul_arrays
from .ops_mathematic import matmul as _matmul

__all__ = ["MatMulLayerNorm", "matmul_layernorm", "MatMulSoftmax", "matmul_softmax"]


def _product(a: Any, b: Any, op: str) -> numpy.ndarray:
    """``a @ b`` as a fresh numpy array, with needle's matmul error messages."""
    out = matmul_arrays(*operand_pair(a, b), op)
    if out.dtype.kind != "f":
        out = out.astype(numpy.float32)
    return out


def _matmul_grads(grad_h: Tensor, node: Tensor) -> tuple:
    """Push the gradient of ``h = a @ b`` back to ``a`` and ``b`` (MatMul's own rule: it
    reads only ``node.inputs``, which the fused node shares)."""
    return MatMul().gradient(grad_h, node)


class MatMulLayerNorm(TensorOp):
    """``layernorm(a @ b)`` over the trailing ``normalized_shape`` dims, no affine."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5):
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = float(eps)

    def compute(self, a: Any, b: Any) -> Any:
        h = _product(a, b, "matmul_layernorm")
        return wrap(layernorm_forward(h, self.normalized_shape, self.eps, "matmul_layernorm"), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        # The pre-norm product is recomputed, not stored: it is the memory the fusion saves.
        axes = trailing_axes(self.normalized_shape)
        grad_h = layernorm_backward(out_grad, _matmul(a, b), node, axes, self.eps)
        return _matmul_grads(grad_h, node)


def matmul_layernorm(a: Tensor, b: Tensor, normalized_shape: Any, eps: float = 1e-5) -> Tensor:
    """``layernorm(a @ b, normalized_shape, eps)`` as one op (biased variance, no affine).

    Parameters
    ----------
    a, b : Tensor
        Matmul operands (2-D or batched, numpy ``matmul`` rules).
    normalized_shape : int or tuple of int
        The trailing dims of ``a @ b`` to normalise over.
    eps : float
        Added to the variance.
    """
    return MatMulLayerNorm(normalized_shape, eps)(a, b)


class MatMulSoftmax(TensorOp):
    """``softmax(a @ b)`` along ``axis``."""

    def __init__(self, axis: int = -1):
        self.axis = int(axis)

    def compute(self, a: Any, b: Any) -> Any:
        h = _product(a, b, "matmul_softmax")
        axes = _normalize_axes(self.axis, h.ndim, "matmul_softmax", h.shape)
        h -= _stable_max(h, axes)
        numpy.exp(h, out=h)
        h /= h.sum(axis=axes, keepdims=True)
        return wrap(h, a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        # The node's value is softmax(h), so Softmax's rule gives the gradient of h.
        return _matmul_grads(Softmax(self.axis).gradient(out_grad, node), node)


def matmul_softmax(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """``softmax(a @ b, dim)`` as one op.

    Parameters
    ----------
    a, b : Tensor
        Matmul operands (2-D or batched, numpy ``matmul`` rules).
    dim : int
        The axis of ``a @ b`` the softmax normalises over (negative allowed).
    """
    return MatMulSoftmax(dim)(a, b)
