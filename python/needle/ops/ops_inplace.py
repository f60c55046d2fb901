"""Item assignment as out-of-place ops: the forward of ``x[index] = v`` and ``fill_``.

``Tensor.__setitem__``, ``fill_``, ``zero_`` and ``copy_`` (see ``needle.inplace``) build
one of these nodes, then copy its result back into the tensor's storage and rebase the
tensor onto the node, so the gradients below are ordinary differentiable graphs.
"""

from __future__ import annotations

from typing import Any

import numpy

from .._array import as_numpy, wrap
from ..autograd import Tensor, TensorOp
from ..errors import DTypeError, IndexOutOfRange, ShapeError
from .ops_mathematic import GetItem, ZerosLike, _normalize_index, unbroadcast

__all__ = ["SetItem", "SetItemScalar", "LandedGetItem", "set_item", "assign_into"]


def selection_shape(shape: tuple, index: Any, op: str = "setitem") -> tuple:
    """The shape of ``a[index]`` for an array of ``shape``, without touching any data."""
    dummy = numpy.broadcast_to(numpy.zeros((), dtype=numpy.int8), shape)
    try:
        return dummy[index].shape
    except IndexError as e:
        raise IndexOutOfRange(f"{op}: index {index!r} is invalid for shape {tuple(shape)}: "
                              f"{e}") from None


def assign_into(out: numpy.ndarray, index: Any, value: Any, op: str = "setitem") -> None:
    """``out[index] = value`` (numpy broadcasting and casting) with needle errors."""
    try:
        out[index] = value
    except IndexError as e:
        raise IndexOutOfRange(f"{op}: index {index!r} is invalid for shape "
                              f"{tuple(out.shape)}: {e}") from None
    except ValueError as e:
        shape = numpy.shape(value)
        if shape:
            raise ShapeError(
                f"{op}: cannot assign a value of shape {shape} to the selection "
                f"{index!r} of shape {selection_shape(out.shape, index, op)} "
                f"(of a tensor of shape {tuple(out.shape)})"
            ) from None
        raise DTypeError(f"{op}: cannot store {value!r} in a tensor of dtype {out.dtype}: "
                         f"{e}") from None


def _has_index_arrays(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, numpy.ndarray) and p.dtype.kind in "iu" for p in parts)


def _landed_mask(shape: tuple, index: Any) -> numpy.ndarray | None:
    """Which elements of the selection ``a[index]`` end up in ``a`` after ``a[index] = v``.

    With repeated positions in integer index arrays only one write per position lands
    (numpy's assignment decides which, so it decides here too). None when all land.
    """
    sel = selection_shape(shape, index)
    size = int(numpy.prod(sel))
    target = numpy.full(shape, -1, dtype=numpy.int64)
    target[index] = numpy.arange(size).reshape(sel)
    hit = numpy.zeros(size, dtype=bool)
    hit[target[target >= 0]] = True
    return None if hit.all() else hit.reshape(sel)


class LandedGetItem(TensorOp):
    """``g[index]`` with zeros where ``a[index] = v`` would not land (repeated integer
    indices): the gradient of :class:`SetItem` for ``v``. Its adjoint writes back with
    the same assignment, ``zeros[index] = y``, so only landed positions receive."""

    def __init__(self, index: Any):
        self.index = index

    def compute(self, g: Any) -> Any:
        gv = as_numpy(g)
        try:
            out = gv[self.index]
        except IndexError as e:
            raise IndexOutOfRange(f"setitem: index {self.index!r} is invalid for shape "
                                  f"{tuple(gv.shape)}: {e}") from None
        mask = _landed_mask(gv.shape, self.index)
        return wrap(numpy.ascontiguousarray(out if mask is None else out * mask), g)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return SetItem(self.index)(ZerosLike()(node.inputs[0]), out_grad)


class SetItem(TensorOp):
    """A copy of ``a`` with ``a[index] = v`` (``v`` broadcast to the selection, cast to
    ``a``'s dtype).

    The gradient for ``a`` is ``out_grad`` with the overwritten region zeroed; for ``v``
    it is ``out_grad[index]`` un-broadcast to ``v``'s shape (with repeated integer
    indices only the write that landed gets it, see :class:`LandedGetItem`).
    """

    def __init__(self, index: Any):
        self.index = index

    def compute(self, a: Any, v: Any) -> Any:
        av = as_numpy(a)
        if self.index is Ellipsis:
            out = numpy.empty_like(av, order="C")
        else:
            out = numpy.array(av, order="C")
        assign_into(out, self.index, as_numpy(v))
        return wrap(out, a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, v = node.inputs
        grad_a = SetItemScalar(self.index, 0)(out_grad) if a.requires_grad else None
        grad_v = None
        if v.requires_grad:
            gather = LandedGetItem if _has_index_arrays(self.index) else GetItem
            grad_v = unbroadcast(gather(self.index)(out_grad), v)
        return grad_a, grad_v


class SetItemScalar(TensorOp):
    """A copy of ``a`` with ``a[index] = value`` for a scalar ``value`` (``fill_`` is
    ``index=...``). The gradient zeroes the overwritten region."""

    def __init__(self, index: Any, value: Any):
        self.index = index
        self.value = value

    def compute(self, a: Any) -> Any:
        av = as_numpy(a)
        if self.index is Ellipsis:
            out = numpy.empty_like(av, order="C")
        else:
            out = numpy.array(av, order="C")
        assign_into(out, self.index, self.value)
        return wrap(out, a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return SetItemScalar(self.index, 0)(out_grad)


def set_item(a: Tensor, index: Any, value: Any) -> Tensor:
    """``a`` with ``a[index] = value``, out of place (``Tensor.__setitem__`` writes it back).

    Parameters
    ----------
    a : Tensor
    index : int, slice, None, Ellipsis, integer or boolean numpy arrays, or a tuple of them
        As for ``a[index]``.
    value : Tensor or scalar
        Broadcast to the selection and cast to ``a``'s dtype.
    """
    index = _normalize_index(index)
    if not isinstance(value, Tensor):
        return SetItemScalar(index, value)(a)
    if a.cached_data is not None and value.cached_data is not None:
        # numpy accepts extra leading 1s on the value (``x[0] = ones((1, 3))``); drop them
        # so that the gradient un-broadcasts to a shape of at most the selection's rank.
        sel = selection_shape(a.shape, index)
        extra = value.ndim - len(sel)
        if extra > 0 and all(d == 1 for d in value.shape[:extra]):
            value = value.reshape(value.shape[extra:])
    return SetItem(index)(a, value)
