"""Tuple-valued ops: make_tuple, tuple_get_item, stack, split, fused_add_scalars."""

from __future__ import annotations

from typing import Any

import numpy

from .._array import as_numpy, contiguous, wrap
from .._dtype import operands
from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp, Value
from ..errors import DTypeError, IndexOutOfRange, ShapeError


class MakeTensorTuple(TensorTupleOp):
    """Group tensors into one TensorTuple node."""

    def compute(self, *args: Any) -> tuple:
        return tuple(args)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple:
        # The length comes from the node's inputs: out_grad may have no value yet (graph mode).
        return tuple(tuple_get_item(out_grad, i) for i in range(len(node.inputs)))


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
        return TupleAdjoint((self.index,), 0)(node.inputs[0], out_grad)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of ``value`` (folded to the input itself for a ``make_tuple``)."""
    return TupleGetItem(index)(value)


class TupleAdjoint(TensorTupleOp):
    """The adjoint of a tuple node, built from element gradients and whole-tuple gradients.

    Inputs are ``(ref, *element_grads, *tuple_grads)``: ``ref`` is the tuple node (only its
    length and element shapes are used), ``element_grads[k]`` is a gradient for element
    ``indices[k]``, and ``n_tuples`` whole TensorTuple gradients follow. The result holds,
    per element, the sum of its gradients, or zeros. The length is read at compute time,
    so this works on graph-mode tuples (e.g. ``split`` of a placeholder), whose length is
    not known when the gradient graph is built.
    """

    def __init__(self, indices: tuple, n_tuples: int):
        self.indices = tuple(indices)
        self.n_tuples = n_tuples

    def compute(self, ref: tuple, *args: Any) -> tuple:
        n = len(ref)
        k = len(self.indices)
        parts: list[list] = [[] for _ in range(n)]
        for index, g in zip(self.indices, args[:k]):
            if not -n <= index < n:
                raise _index_error(index, n)
            parts[index % n].append(g)
        for tup in args[k:]:
            for j in range(n):
                parts[j].append(tup[j])
        out = []
        for j, grads in enumerate(parts):
            if not grads:
                out.append(wrap(numpy.zeros(ref[j].shape, dtype=ref[j].dtype), ref[j]))
            elif len(grads) == 1:
                out.append(grads[0])
            else:
                total = as_numpy(grads[0])
                for g in grads[1:]:
                    total = total + as_numpy(g)
                out.append(wrap(total, grads[0]))
        return tuple(out)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple:
        return ((None,) + tuple(tuple_get_item(out_grad, i) for i in self.indices)
                + (out_grad,) * self.n_tuples)


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
        # Stack takes the tuple node itself, so the number of parts need not be known here.
        return Stack(self.axis)(out_grad)


def split(a: Tensor, axis: int) -> TensorTuple:
    """The slices of ``a`` along ``axis`` (that axis removed), as a TensorTuple."""
    return Split(axis)(a)
