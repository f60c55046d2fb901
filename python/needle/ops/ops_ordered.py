"""A matrix product whose float arithmetic happens in one fixed, documented order.

A BLAS matmul accumulates in an order of its own (blocked, with fused multiply-adds, and
depending on the operands' memory layout), so in float32 its last bits differ from a
reference computed as "multiply, then sum over k". ``ordered_matmul`` computes exactly
that reference: every product is rounded on its own, and the k products are added one
after the other, for any layout. This is the arithmetic of the Needle course's attention
helper (broadcast, multiply, sum over k) and of a plain triple loop.
"""

from __future__ import annotations

from typing import Any

import numpy

from ..autograd import Tensor, TensorOp
from ..errors import ShapeError
from .ops_mathematic import MatMul

__all__ = ["OrderedMatMul", "ordered_matmul"]


class OrderedMatMul(TensorOp):
    """``a @ b`` for (..., m, k) and (..., k, n), summing the rounded products in k order.

    Batch dimensions broadcast as in numpy ``matmul``; both operands need at least 2 dims.
    """

    def compute(self, a: Any, b: Any) -> Any:
        xp = self.xp
        av, bv = a, b
        if av.ndim < 2 or bv.ndim < 2 or av.shape[-1] != bv.shape[-2]:
            raise ShapeError(f"ordered_matmul: cannot multiply shapes {tuple(av.shape)} and "
                             f"{tuple(bv.shape)} (expected (..., m, k) and (..., k, n))")
        try:
            batch = numpy.broadcast_shapes(av.shape[:-2], bv.shape[:-2])
        except ValueError:
            raise ShapeError(f"ordered_matmul: batch dims of {tuple(av.shape)} and "
                             f"{tuple(bv.shape)} cannot be broadcast together") from None
        k = av.shape[-1]
        dtype = numpy.result_type(av.dtype, bv.dtype)
        out = xp.zeros((*batch, av.shape[-2], bv.shape[-1]), dtype=dtype)
        term = xp.empty_like(out)
        for i in range(k):
            # Two separate roundings: the product, then the running sum (no fused multiply-add).
            xp.multiply(av[..., :, i:i + 1], bv[..., i:i + 1, :], out=term)
            xp.add(out, term, out=out)
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        # Only the forward values have a reference to reproduce; the backward takes the fast
        # matmul (the same gradient up to float rounding).
        return MatMul().gradient(out_grad, node)


def ordered_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with each product rounded and the k products added in order.

    Parameters
    ----------
    a, b : Tensor
        (..., m, k) and (..., k, n); batch dims broadcast (numpy ``matmul`` rules).

    Returns
    -------
    Tensor
        (..., m, n), bit for bit ``sum over k of a[..., :, k, None] * b[..., None, k, :]``
        added in k order. Slower than :func:`matmul`; use it where values must match a
        reference computed that way.
    """
    return OrderedMatMul()(a, b)
