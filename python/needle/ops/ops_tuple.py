"""Tuple-valued ops: make_tuple, tuple_get_item, stack, split, fused_add_scalars."""

from __future__ import annotations

from typing import Any

import numpy

from .._array import as_numpy, contiguous, wrap
from .._dtype import operands
from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp, Value
from ..errors import DTypeError, IndexOutOfRange, ShapeError
from .ops_mathematic import zeros_like


class MakeTensorTuple(TensorTupleOp):
    """Group tensors into one TensorTuple node."""

    def compute(self, *args: Any) -> tuple:
        return tuple(args)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple:
        return tuple(out_grad[i] for i in range(len(out_grad)))


def make_tuple(*args: Tensor) -> TensorTuple:
    """A TensorTuple of ``args`` (its gradient is the tuple of their gradients)."""
    return MakeTensorTuple()(*args)


def _index_error(index: int, n: int) -> IndexOutOfRange:
    return IndexOutOfRange(f"tuple_get_item: index {index} out of range for a tuple of "
                           f"{n} tensors")


class TupleGetItem(TensorOp):
    """Element ``index`` of a TensorTuple."""

    def __init__(self, index: int):
        self.index = index
        # Op.tuple_index tells the engine to pass this gradient on as one tuple slot.
        self.tuple_index = index

    def __call__(self, a: TensorTuple, fold_const: bool = True) -> Value:
        if not isinstance(a, TensorTuple):
            raise DTypeError(f"tuple_get_item: expects a TensorTuple, got {type(a).__name__}")
        # Constant-fold getitem on make_tuple.
        if fold_const and isinstance(a.op, MakeTensorTuple):
            if not -len(a.inputs) <= self.index < len(a.inputs):
                raise _index_error(self.index, len(a.inputs))
            return a.inputs[self.index]
        return Tensor.make_from_op(self, (a,))

    def compute(self, a: tuple) -> Any:
        try:
            return a[self.index]
        except IndexError:
            raise _index_error(self.index, len(a)) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> TensorTuple:
        tup = node.inputs[0]
        index = self.index % len(tup)
        return make_tuple(*[out_grad if i == index else zeros_like(tup[i])
                            for i in range(len(tup))])


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of ``value`` (folded to the input itself for a ``make_tuple``)."""
    return TupleGetItem(index)(value)


class FusedAddScalars(TensorTupleOp):
    """``(x + c0, x + c1)`` as one node."""

    def __init__(self, c0: float, c1: float):
        self.c0 = c0
        self.c1 = c1

    def compute(self, a: Any) -> tuple:
        av = as_numpy(a)
        return wrap(av + self.c0, a), wrap(av + self.c1, a)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> Tensor:
        return out_grad[0] + out_grad[1]


def fused_add_scalars(x: Tensor, c0: float, c1: float) -> TensorTuple:
    """The pair ``(x + c0, x + c1)`` from one op."""
    return FusedAddScalars(c0, c1)(x)


class Stack(TensorOp):
    """Stack equally shaped tensors along a new axis ``axis``."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, args: tuple) -> Any:
        if len(args) == 0:
            raise ShapeError("stack: needs at least one tensor")
        shapes = [tuple(a.shape) for a in args]
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"stack: all tensors must have the same shape, got {shapes}")
        ndim = len(shapes[0]) + 1
        if not -ndim <= self.axis < ndim:
            raise ShapeError(f"stack: axis {self.axis} is out of range for stacking tensors "
                             f"of shape {shapes[0]} (valid: {-ndim} to {ndim - 1})")
        return wrap(numpy.stack(operands(args), axis=self.axis), args[0])

    def gradient(self, out_grad: Tensor, node: Tensor) -> TensorTuple:
        return split(out_grad, self.axis)


def stack(args: list | tuple, axis: int) -> Tensor:
    """Stack equally shaped tensors ``args`` along a new axis ``axis``."""
    return Stack(axis)(make_tuple(*args))


class Split(TensorTupleOp):
    """Split a tensor along ``axis`` into a tuple of tensors with that axis removed."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, A: Any) -> tuple:
        av = as_numpy(A)
        if not -av.ndim <= self.axis < av.ndim:
            raise ShapeError(f"split: axis {self.axis} does not exist in shape "
                             f"{tuple(av.shape)} (valid: {-av.ndim} to {av.ndim - 1})")
        moved = numpy.moveaxis(av, self.axis, 0)
        return tuple(wrap(contiguous(part), A) for part in moved)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> Tensor:
        return stack([out_grad[i] for i in range(len(out_grad))], self.axis)


def split(a: Tensor, axis: int) -> TensorTuple:
    """The slices of ``a`` along ``axis`` (that axis removed), as a TensorTuple."""
    return Split(axis)(a)
