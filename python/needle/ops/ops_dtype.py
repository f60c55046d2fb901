"""The cast the engine applies to gradients (the dtype rule lives in ``needle._dtype``)."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp, TensorTuple

__all__ = ["CastLike", "cast_like", "in_dtype_of"]


class CastLike(TensorOp):
    """``g`` in ``ref``'s dtype when that is a float dtype; otherwise ``g`` unchanged.

    ``ref`` only lends its dtype (it gets no gradient). The reverse pass wraps a partial
    adjoint in this op when its dtype differs from its input's, or, in graph and lazy
    mode, when the dtypes are not known yet; then the cast is decided at compute time and
    costs nothing when they agree. Integer and bool refs leave ``g`` alone: a gradient is
    never truncated to integers.
    """

    def compute(self, g: Any, ref: Any) -> Any:
        target = ref.dtype
        if g.dtype == target or target.kind != "f":
            return g
        return self.xp.asarray(g, dtype=target)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        # The engine casts this back to g's dtype, as it does for every input.
        return out_grad, None


def cast_like(g: Tensor, ref: Tensor) -> Tensor:
    """``g`` cast to ``ref``'s float dtype (differentiable; ``ref`` gets no gradient)."""
    return CastLike()(g, ref)


def in_dtype_of(grad: Tensor, inp: Tensor) -> Tensor:
    """``grad`` as a gradient of ``inp``: cast to ``inp``'s dtype when that is a float dtype.

    The reverse pass calls this (``core.ENGINE_OPS.in_dtype_of``) for a partial adjoint
    whose dtype differs from its input's or is not known yet. With both computed this is
    decided now (no node when the dtypes agree); in graph and lazy mode a ``CastLike`` node
    decides when it is computed. Tuples are cast element by element, where their elements
    reach the tensors they were made of; an integer or bool input keeps its gradient's
    (float) dtype.
    """
    gd, xd = grad._data, inp._data
    if gd is None or xd is None:
        if isinstance(inp, TensorTuple) or isinstance(grad, TensorTuple):
            return grad
        return CastLike()(grad, inp)
    if gd.__class__ is tuple or xd.__class__ is tuple:
        return grad
    target = xd.dtype
    if target.kind != "f" or gd.dtype == target:
        return grad
    return CastLike()(grad, inp)
