"""More reductions: min (the mirror of max), var and std (PyTorch's ``correction=``).

They take numpy's ``axes=``/``keepdims=`` and PyTorch's ``dim=``/``keepdim=`` (see
``_args``). Gradients are needle ops only; where a gradient needs the number of
reduced elements, which a graph-mode placeholder does not know when the gradient graph is
built, the shape-polymorphic pair ``BroadcastScaled``/``SumScaled`` reads it at compute time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ..autograd import Tensor, TensorOp
from ..errors import DTypeError, ShapeError
from ._args import reduction_args
from .ops_mathematic import Max, Mean, _normalize_axes, broadcast_like, equal
from .ops_trig import float_input

__all__ = ["Min", "min", "Var", "var", "Std", "std", "BroadcastScaled", "SumScaled"]


def _kept_shape(shape: tuple, axes: tuple) -> list:
    return [1 if i in axes else d for i, d in enumerate(shape)]


# ----------------------------------------------------------------------------------------------
# Min


class Min(Max):
    """Minimum over ``axes``; the gradient goes to the arg-min (split evenly among ties),
    by Max's rule: the mask of elements equal to the result."""

    reduce = "min"


def min(a: Tensor, axes: Any = None, keepdims: bool = False, *, dim: Any = None,  # noqa: A001
        keepdim: bool | None = None) -> Tensor:
    """Minimum of ``a`` over ``axes`` (None: all; int or tuple).

    Parameters
    ----------
    a : Tensor
    axes : int, tuple of int or None
        Axes to reduce (``dim`` is PyTorch's name for it).
    keepdims : bool
        Keep the reduced axes with size 1 (``keepdim`` is PyTorch's name).

    Returns
    -------
    Tensor
        The minima; the gradient is split evenly among tied minima, as ``max`` does.
    """
    axes, keepdims = reduction_args("min", axes, dim, keepdims, keepdim)
    return Min(axes, keepdims)(a)


# ----------------------------------------------------------------------------------------------
# Scaled broadcast/sum: the shape-polymorphic pieces of var's and std's gradients


def _divisor(count: int, correction: float, op: str, shape: tuple, axes: tuple) -> float:
    dof = count - correction
    if dof <= 0:
        raise ShapeError(f"{op}: correction={correction} needs more than {correction} "
                         f"element(s) per reduction, got {count} over axes {axes} of shape "
                         f"{tuple(shape)}")
    return dof


class BroadcastScaled(TensorOp):
    """Broadcast ``g`` to ``ref``'s shape over the reduced ``axes``, divided by
    ``N - correction`` (``N``: the number of elements each entry of ``g`` stands for).

    ``g`` may have the reduced axes dropped or kept. ``ref`` only lends its shape.
    """

    def __init__(self, axes: Any, correction: float):
        self.axes = axes
        self.correction = correction

    def compute(self, g: Any, ref: Any) -> Any:
        xp, gv = self.xp, g
        shape = tuple(ref.shape)
        axes = _normalize_axes(self.axes, len(shape), "var", shape)
        count = math.prod([shape[i] for i in axes])
        dof = _divisor(count, self.correction, "var", shape, axes)
        kept = xp.reshape(gv, _kept_shape(shape, axes))
        return xp.divide(xp.broadcast_to(kept, shape), gv.dtype.type(dof))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        g = node.inputs[0]
        return SumScaled(self.axes, self.correction)(out_grad, g), None


class SumScaled(TensorOp):
    """Sum ``h`` over ``axes`` into ``ref``'s shape, divided by ``N - correction``: the
    adjoint of :class:`BroadcastScaled` (``ref`` only lends its shape)."""

    def __init__(self, axes: Any, correction: float):
        self.axes = axes
        self.correction = correction

    def compute(self, h: Any, ref: Any) -> Any:
        xp, hv = self.xp, h
        axes = _normalize_axes(self.axes, hv.ndim, "var", hv.shape)
        count = math.prod([hv.shape[i] for i in axes])
        dof = _divisor(count, self.correction, "var", hv.shape, axes)
        total = xp.reshape(xp.sum(hv, axis=axes, keepdims=True), ref.shape)
        return xp.divide(total, hv.dtype.type(dof))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        h = node.inputs[0]
        return BroadcastScaled(self.axes, self.correction)(out_grad, h), None


# ----------------------------------------------------------------------------------------------
# Var and std


def _check_correction(correction: Any, op: str) -> float:
    if isinstance(correction, bool) or not isinstance(correction, (int, float, numpy.number)):
        raise DTypeError(f"{op}: correction must be a real number, got {correction!r}")
    value = float(correction)
    return int(value) if value.is_integer() else value


def _var_forward(xp: Any, a: Any, axes_arg: Any, correction: float, keepdims: bool,
                 op: str) -> Any:
    """The variance in two passes: the mean first (corrected once), then the squared
    deviations from it."""
    av = float_input(a, op)
    axes = _normalize_axes(axes_arg, av.ndim, op, av.shape)
    count = math.prod([av.shape[i] for i in axes])
    dof = _divisor(count, correction, op, av.shape, axes)
    centred = xp.subtract(av, xp.mean(av, axis=axes, keepdims=True))
    # A second pass corrects the mean's rounding: a constant group then centres to exactly
    # 0 (variance 0, not a few ulps), as PyTorch's accumulation gives.
    centred = xp.subtract(centred, xp.mean(centred, axis=axes, keepdims=True))
    total = xp.sum(xp.square(centred), axis=axes, keepdims=keepdims)
    return xp.divide(total, av.dtype.type(dof))


def _centred(x: Tensor, axes: Any) -> Tensor:
    """``x - mean(x)`` with the forward's rounding correction of the mean (the same math)."""
    first = x - broadcast_like(Mean(axes, keepdims=True)(x), x)
    return first - broadcast_like(Mean(axes, keepdims=True)(first), first)


class Var(TensorOp):
    """Variance over ``axes``: ``sum((x - mean)**2) / (N - correction)``."""

    def __init__(self, axes: Any = None, correction: float = 1, keepdims: bool = False):
        self.axes = axes
        self.correction = correction
        self.keepdims = keepdims

    def compute(self, a: Any) -> Any:
        return _var_forward(self.xp, a, self.axes, self.correction, self.keepdims, "var")

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        # d var / dx = 2 (x - mean) / (N - correction); the mean's own term vanishes because
        # the deviations sum to zero, so this expression is exact for every x (and its
        # derivative is the exact second derivative).
        x = node.inputs[0]
        scaled = BroadcastScaled(self.axes, self.correction)(out_grad, x)
        return scaled * _centred(x, self.axes) * 2


def var(a: Tensor, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
        dim: Any = None, keepdim: bool | None = None) -> Tensor:
    """Variance of ``a`` over ``axes`` with PyTorch's ``correction`` (default 1: unbiased).

    Parameters
    ----------
    a : Tensor
        Floating-point data.
    axes : int, tuple of int or None
        Axes to reduce (None: all; ``dim`` is PyTorch's name).
    correction : int or float
        The divisor is ``N - correction``; 0 gives the population variance. It must leave a
        positive divisor (a :class:`ShapeError` otherwise, where PyTorch returns NaN/Inf).
    keepdims : bool
        Keep the reduced axes with size 1 (``keepdim`` is PyTorch's name).

    Returns
    -------
    Tensor
        Computed in two passes (mean, then squared deviations), so a large common offset
        does not cancel the result away.
    """
    axes, keepdims = reduction_args("var", axes, dim, keepdims, keepdim)
    return Var(axes, _check_correction(correction, "var"), keepdims)(a)


class Std(TensorOp):
    """Standard deviation over ``axes``: ``sqrt(var(x, axes, correction))``."""

    def __init__(self, axes: Any = None, correction: float = 1, keepdims: bool = False):
        self.axes = axes
        self.correction = correction
        self.keepdims = keepdims

    def compute(self, a: Any) -> Any:
        xp = self.xp
        return xp.sqrt(_var_forward(xp, a, self.axes, self.correction, self.keepdims, "std"))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        # (x - mean) / ((N - correction) * std). Where std is 0 every deviation is 0 too, so
        # dividing by std + 1 there gives PyTorch's zero gradient without a 0/0.
        x = node.inputs[0]
        safe_std = node + equal(node, 0.0)
        scaled = BroadcastScaled(self.axes, self.correction)(out_grad / safe_std, x)
        return scaled * _centred(x, self.axes)


def std(a: Tensor, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
        dim: Any = None, keepdim: bool | None = None) -> Tensor:
    """Standard deviation of ``a`` over ``axes``: the square root of :func:`var`.

    Parameters are those of :func:`var`. Where the deviation is exactly zero the gradient
    is zero (as in PyTorch), not NaN.
    """
    axes, keepdims = reduction_args("std", axes, dim, keepdims, keepdim)
    return Std(axes, _check_correction(correction, "std"), keepdims)(a)
