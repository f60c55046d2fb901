"""The cast the engine applies to gradients (the dtype rule lives in ``needle._dtype``)."""

from __future__ import annotations

from typing import Any

from .._array import as_numpy, wrap
from ..autograd import Tensor, TensorOp

__all__ = ["CastLike", "cast_like"]


class CastLike(TensorOp):
    """``g`` in ``ref``'s dtype when that is a float dtype; otherwise ``g`` unchanged.

    ``ref`` only lends its dtype (it gets no gradient). The reverse pass wraps a partial
    adjoint in this op when its dtype differs from its input's, or, in graph and lazy
    mode, when the dtypes are not known yet; then the cast is decided at compute time and
    costs nothing when they agree. Integer and bool refs leave ``g`` alone: a gradient is
    never truncated to integers.
    """

    def compute(self, g: Any, ref: Any) -> Any:
        gv = as_numpy(g)
        target = as_numpy(ref).dtype
        if gv.dtype == target or target.kind != "f":
            return g
        return wrap(gv.astype(target), g)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        # The engine casts this back to g's dtype, as it does for every input.
        return out_grad, None


def cast_like(g: Tensor, ref: Tensor) -> Tensor:
    """``g`` cast to ``ref``'s float dtype (differentiable; ``ref`` gets no gradient)."""
    return CastLike()(g, ref)
