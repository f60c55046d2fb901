"""Trigonometric element-wise ops: sin, cos (each the other's derivative)."""

from __future__ import annotations

from typing import Any

import numpy

from .._array import as_numpy, wrap
from ..autograd import Tensor, TensorOp
from ..errors import DTypeError

__all__ = ["Sin", "sin", "Cos", "cos"]


def float_input(a: Any, op: str) -> numpy.ndarray:
    """``a`` as numpy, or a DTypeError naming ``op``, the dtype and the shape."""
    v = as_numpy(a)
    if v.dtype.kind != "f":
        raise DTypeError(f"{op}: expects a floating-point tensor, got dtype {v.dtype} "
                         f"(shape {tuple(v.shape)}); convert it with Tensor(x, dtype='float32')")
    return v


class Sin(TensorOp):
    """Element-wise sine; the gradient is ``cos``."""

    def compute(self, a: Any) -> Any:
        return wrap(numpy.sin(float_input(a, "sin")), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * cos(node.inputs[0])


def sin(a: Tensor) -> Tensor:
    """Element-wise sine (radians) of a floating-point tensor."""
    return Sin()(a)


class Cos(TensorOp):
    """Element-wise cosine; the gradient is ``-sin``."""

    def compute(self, a: Any) -> Any:
        return wrap(numpy.cos(float_input(a, "cos")), a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return -(out_grad * sin(node.inputs[0]))


def cos(a: Tensor) -> Tensor:
    """Element-wise cosine (radians) of a floating-point tensor."""
    return Cos()(a)
