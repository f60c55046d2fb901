"""More shape ops: concatenate (cat), squeeze, unsqueeze.

Gradients are shape-polymorphic (they read the inputs' shapes at compute time), so they
build on graph-mode placeholders whose shapes are unknown when the gradient graph is made.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy

from ..autograd import Tensor, TensorOp
from ..errors import DTypeError, ShapeError
from ._args import pick
from .ops_mathematic import ReshapeLike, _normalize_axes, zeros_like

__all__ = ["Concatenate", "ConcatSlice", "concatenate", "cat", "Squeeze", "squeeze",
           "Unsqueeze", "unsqueeze"]


def _axis_int(axis: Any, op: str) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
        raise ShapeError(f"{op}: axis must be an int, got {axis!r}")
    return int(axis)


def _concat_axis(shapes: list, axis: int, op: str) -> int:
    """``axis`` as a non-negative int after checking that ``shapes`` can be joined along it."""
    if not shapes:
        raise ShapeError(f"{op}: needs at least one tensor")
    first = shapes[0]
    ndim = len(first)
    if ndim == 0:
        raise ShapeError(f"{op}: cannot join 0-d tensors (shapes {shapes}); "
                         "use stack, or reshape them to (1,) first")
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for tensors of shape {first} "
                         f"(valid: {-ndim} to {ndim - 1})")
    axis %= ndim
    for i, s in enumerate(shapes):
        if len(s) != ndim or builtins.any(d != e for k, (d, e) in enumerate(zip(s, first))
                                          if k != axis):
            raise ShapeError(f"{op}: tensor {i} has shape {s}, which does not match tensor 0's "
                             f"shape {first} outside axis {axis}; shapes {shapes}")
    return axis


class Concatenate(TensorOp):
    """Join tensors along an existing ``axis``; sizes along it may differ."""

    def __init__(self, axis: int = 0):
        self.axis = _axis_int(axis, "concatenate")

    def compute(self, *arrays: Any) -> Any:
        shapes = [tuple(a.shape) for a in arrays]
        axis = _concat_axis(shapes, self.axis, "concatenate")
        return self.xp.concatenate(arrays, axis=axis)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        inputs = node.inputs
        return tuple(ConcatSlice(self.axis, i)(out_grad, *inputs) if x.requires_grad else None
                     for i, x in enumerate(inputs))


class ConcatSlice(TensorOp):
    """The part of ``g`` that came from input ``index`` of a concatenation of ``refs``.

    Only the refs' shapes are used (they get no gradient); the adjoint pads the part back
    with zeros, as a concatenation.
    """

    def __init__(self, axis: int, index: int):
        self.axis = axis
        self.index = index

    def compute(self, g: Any, *refs: Any) -> Any:
        shapes = [tuple(r.shape) for r in refs]
        axis = _concat_axis(shapes, self.axis, "concatenate")
        start = builtins.sum(s[axis] for s in shapes[: self.index])
        stop = start + shapes[self.index][axis]
        part = g[(slice(None),) * axis + (slice(start, stop),)]
        # Concatenating mixed dtypes promotes; each input's gradient keeps its own dtype.
        dtype = refs[self.index].dtype
        return part if part.dtype == dtype else self.xp.asarray(part, dtype=dtype)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        refs = node.inputs[1:]
        parts = [out_grad if i == self.index else zeros_like(r) for i, r in enumerate(refs)]
        return (Concatenate(self.axis)(*parts),) + (None,) * len(refs)


def _tensor_list(tensors: Any, op: str) -> list:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise DTypeError(f"{op}: expects a list or tuple of Tensors, got "
                         f"{type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise DTypeError(f"{op}: element {i} is a {type(t).__name__}, not a Tensor")
    if not tensors:
        raise ShapeError(f"{op}: needs at least one tensor")
    return list(tensors)


def concatenate(tensors: list | tuple, axis: int | None = None, *,
                dim: int | None = None) -> Tensor:
    """Join ``tensors`` along an existing axis (numpy's ``concatenate``).

    Parameters
    ----------
    tensors : list or tuple of Tensor
        Same number of dims, same sizes except along ``axis``.
    axis : int
        The axis to join along (default 0; ``dim`` is PyTorch's name).

    Returns
    -------
    Tensor
        Its gradient is cut back into one slice per input.
    """
    axis = pick("concatenate", "axis", axis, "dim", dim, 0)
    return Concatenate(axis)(*_tensor_list(tensors, "concatenate"))


def cat(tensors: list | tuple, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """PyTorch's name for :func:`concatenate`: ``cat(tensors, dim=0)``."""
    dim = pick("cat", "dim", dim, "axis", axis, 0)
    return Concatenate(dim)(*_tensor_list(tensors, "cat"))


class Squeeze(TensorOp):
    """Drop size-1 axes: all of them (``axis=None``) or those named (each must be size 1)."""

    def __init__(self, axis: Any = None):
        self.axis = axis

    def compute(self, a: Any) -> Any:
        av = a
        if self.axis is None:
            return self.xp.reshape(av, [d for d in av.shape if d != 1])
        axes = _normalize_axes(self.axis, av.ndim, "squeeze", av.shape)
        wide = [ax for ax in axes if av.shape[ax] != 1]
        if wide:
            raise ShapeError(f"squeeze: axis {wide[0]} of shape {tuple(av.shape)} has size "
                             f"{av.shape[wide[0]]}, not 1")
        return self.xp.reshape(av, [d for i, d in enumerate(av.shape) if i not in axes])

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ReshapeLike()(out_grad, node.inputs[0])


def squeeze(a: Tensor, axis: Any = None, *, dim: Any = None) -> Tensor:
    """Remove size-1 axes of ``a``: all of them, or those in ``axis`` (int or tuple).

    Unlike PyTorch, naming an axis whose size is not 1 is an error (as in numpy), not a
    silent no-op. ``dim`` is PyTorch's name for ``axis``.
    """
    return Squeeze(pick("squeeze", "axis", axis, "dim", dim, None))(a)


class Unsqueeze(TensorOp):
    """Insert size-1 axes at ``axis`` (int or tuple), positions counted in the result."""

    def __init__(self, axis: Any):
        self.axis = axis

    def compute(self, a: Any) -> Any:
        av = a
        axes = (self.axis,) if isinstance(self.axis, (int, numpy.integer)) else tuple(self.axis)
        out_ndim = av.ndim + len(axes)
        for ax in axes:
            if isinstance(ax, bool) or not isinstance(ax, (int, numpy.integer)) or not (
                    -out_ndim <= ax < out_ndim):
                raise ShapeError(f"unsqueeze: axis {ax!r} is out of range for inserting "
                                 f"{len(axes)} axis/axes into shape {tuple(av.shape)} "
                                 f"(valid: {-out_ndim} to {out_ndim - 1})")
        new = {int(ax) % out_ndim for ax in axes}
        if len(new) != len(axes):
            raise ShapeError(f"unsqueeze: repeated axis in {axes} for shape {tuple(av.shape)}")
        dims = iter(av.shape)
        shape = [1 if i in new else next(dims) for i in range(out_ndim)]
        return self.xp.reshape(av, shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ReshapeLike()(out_grad, node.inputs[0])


def unsqueeze(a: Tensor, axis: Any = None, *, dim: Any = None) -> Tensor:
    """Insert a size-1 axis at ``axis`` (numpy's ``expand_dims``; a tuple inserts several).

    ``axis`` counts in the result: ``-1`` appends an axis. ``dim`` is PyTorch's name.
    """
    axis = pick("unsqueeze", "axis", axis, "dim", dim, None)
    if axis is None:
        raise ShapeError("unsqueeze: needs the axis at which to insert the new axis")
    return Unsqueeze(axis)(a)
