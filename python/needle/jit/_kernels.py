"""Lowering: the numpy call that does what an op's ``compute`` does, able to write into a
preallocated buffer (``out=``).

Kernels are numpy code, so they are used only for values on a device whose array namespace
is numpy (the cpu devices); on any other device every op runs its own ``compute`` through
its device's namespace. Each lowered kernel makes the same numpy calls as the op's
``compute`` in the same order, so its results are the same bits (and the same dtype and
views: tensors hold the namespace arrays that ``compute`` returns, on both backends). The
compiler still checks every kernel against the values the traced call produced and falls
back to the op's own ``compute`` on any difference, so a kernel here can make a program
faster but never change its numbers. Ops without a kernel (convolutions, log-sum-exp, ...)
always run their ``compute``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import ops
from ..core import as_array
from ..ops.ops_mathematic import _blas_layout, _normalize_axes, _row_major
from ._record import TupleMeta


class Kernel:
    """``fn(*data inputs[, out])``: ``args`` are the op's input positions passed to it."""

    __slots__ = ("fn", "args", "out", "view", "buf_meta", "box", "name", "elementwise",
                 "loose", "reshape", "returns_out")

    def __init__(self, fn: Callable, args: tuple, out: bool = False, view: bool = False,
                 buf_meta: tuple | None = None, box: bool = True, name: str = "",
                 elementwise: bool = False, loose: Kernel | None = None,
                 reshape: bool = False) -> None:
        self.fn = fn
        self.args = args
        self.out = out  # accepts an output buffer as its last positional argument
        self.view = view  # the result may share memory with the inputs
        self.buf_meta = buf_meta  # (shape, dtype) of that buffer when not the result's own
        self.box = box  # results made without a buffer get the backend's dtype/layout rule
        self.name = name
        # Each result element depends only on the same element of each input: the layout
        # of the inputs cannot change a bit of the result.
        self.elementwise = elementwise
        # A cheaper variant (a view instead of a copy) that gives the same bits when every
        # reader of the result is elementwise or a reshape (which copies if it must).
        self.loose = loose
        self.reshape = reshape
        # Given a buffer, the result is that buffer itself (not a view of it).
        self.returns_out = out and buf_meta is None


# Inputs that an op reads only for their shape and dtype: a result that depends on nothing
# else is a constant once shapes are fixed.
SHAPE_ONLY: dict = {
    ops.OnesLike: (0,), ops.ZerosLike: (0,), ops.SumLike: (1,), ops.BroadcastLike: (1,),
    ops.ReshapeLike: (1,), ops.MatMulOutGrad: (1, 2), ops.ScatterLike: (1,),
    ops.ScalarLike: (0,),
}
for _name in ("CastLike",):  # ops that other branches add
    if hasattr(ops, _name):
        SHAPE_ONLY[getattr(ops, _name)] = (1,)


def box(v: Any) -> Any:
    """What the engine makes of a result (``core.as_array``): numpy's 0-d scalars become
    arrays."""
    if v.__class__ is tuple:
        return tuple(box(x) for x in v)
    return v if v.__class__ is np.ndarray else np.asarray(v)


def _same_dtype(*metas: Any) -> bool:
    dts = {m[1] for m in metas}
    return len(dts) == 1


def _unary(ufunc: np.ufunc) -> Callable:
    def lower(op: Any, ins: list, out: Any) -> Kernel:
        return Kernel(ufunc, (0,), out=True, name=ufunc.__name__, elementwise=True)
    return lower


def _binary(ufunc: np.ufunc) -> Callable:
    def lower(op: Any, ins: list, out: Any) -> Kernel:
        if ufunc in (np.maximum, np.minimum):  # a positional out is deprecated for these
            def fn(a: Any, b: Any, out: Any = None) -> Any:
                return ufunc(a, b, out=out)
            return Kernel(fn, (0, 1), out=True, name=ufunc.__name__, elementwise=True)
        return Kernel(ufunc, (0, 1), out=True, name=ufunc.__name__, elementwise=True)
    return lower


def _scalar(ufunc: np.ufunc) -> Callable:
    def lower(op: Any, ins: list, out: Any) -> Kernel:
        s = op.scalar

        def fn(a: Any, out: Any = None) -> Any:
            return ufunc(a, s, out)
        return Kernel(fn, (0,), out=True, name=f"{ufunc.__name__}_scalar", elementwise=True)
    return lower


def _compare(op: Any, ins: list, out: Any) -> Kernel:
    f = getattr(np, type(op).fn)
    dt = out[1]
    if op.scalar is None:
        def fn2(a: Any, b: Any, out: Any = None) -> Any:
            return f(a, b, out) if out is not None else f(a, b).astype(dt)
        return Kernel(fn2, (0, 1), out=True, name=f.__name__, elementwise=True)
    s = op.scalar

    def fn1(a: Any, out: Any = None) -> Any:
        return f(a, s, out) if out is not None else f(a, s).astype(dt)
    return Kernel(fn1, (0,), out=True, name=f.__name__, elementwise=True)


def _power_scalar(op: Any, ins: list, out: Any) -> Kernel:
    s = op.scalar
    if isinstance(s, int) and s < 0 and ins[0][1].kind in "iu":
        return Kernel(lambda a: a.astype(np.float64) ** s, (0,), name="power_scalar",
                      elementwise=True)
    return Kernel(lambda a: a ** s, (0,), name="power_scalar", elementwise=True)


def _relu(op: Any, ins: list, out: Any) -> Kernel:
    def fn(a: Any, out: Any = None) -> Any:
        return np.maximum(a, 0, out=out, dtype=a.dtype)
    return Kernel(fn, (0,), out=True, name="relu",
                  elementwise=True)


def _relu_backward(op: Any, ins: list, out: Any) -> Kernel:
    def fn(g: Any, x: Any, out: Any = None) -> Any:
        return np.multiply(g, np.greater(x, 0), out)
    return Kernel(fn, (0, 1), out=True, name="relu_backward",
                  elementwise=True)


def _tanh_backward(op: Any, ins: list, out: Any) -> Kernel | None:
    if not _same_dtype(ins[0], ins[1], out):
        return None

    def fn(g: Any, y: Any, out: Any = None) -> Any:  # g * (1 - y * y)
        t = np.multiply(y, y, out)
        np.subtract(1, t, t)
        return np.multiply(g, t, t)
    return Kernel(fn, (0, 1), out=True, name="tanh_backward",
                  elementwise=True)


def _sigmoid(op: Any, ins: list, out: Any) -> Kernel | None:
    if not _same_dtype(ins[0], out) or ins[0][1].kind != "f":
        return None

    def fn(a: Any, out: Any = None) -> Any:  # 0.5 * (1.0 + tanh(0.5 * a))
        t = np.multiply(0.5, a, out)
        np.tanh(t, t)
        np.add(1.0, t, t)
        return np.multiply(0.5, t, t)
    return Kernel(fn, (0,), out=True, name="sigmoid",
                  elementwise=True)


def _sigmoid_backward(op: Any, ins: list, out: Any) -> Kernel | None:
    if not _same_dtype(ins[0], ins[1], out):
        return None

    def fn(g: Any, y: Any, out: Any = None) -> Any:  # g * y * (1 - y)
        t = np.multiply(g, y, out)
        return np.multiply(t, np.subtract(1, y), t)
    return Kernel(fn, (0, 1), out=True, name="sigmoid_backward",
                  elementwise=True)


def _matmul(op: Any, ins: list, out: Any) -> Kernel:
    def fn(a: Any, b: Any, out: Any = None) -> Any:
        return np.matmul(_blas_layout(np, a), _blas_layout(np, b), out=out)
    return Kernel(fn, (0, 1), out=True, name="matmul")


def _reduction(reduce: Callable, name: str, floats_only: bool = False,
               row_major: bool = True) -> Callable:
    def lower(op: Any, ins: list, out: Any) -> Kernel | None:
        shape = ins[0][0]
        if floats_only and (ins[0][1].kind != "f" or 0 in shape):
            return None
        axes = _normalize_axes(op.axes, len(shape), name, shape)
        keep = op.keepdims

        if row_major:  # as the op: the sum of the row-major layout (see _row_major)
            def fn(a: Any, out: Any = None) -> Any:
                return reduce(_row_major(np, a), axis=axes, keepdims=keep, out=out)
        else:
            def fn(a: Any, out: Any = None) -> Any:
                return reduce(a, axis=axes, keepdims=keep, out=out)
        return Kernel(fn, (0,), out=True, name=name)
    return lower


def _sum_like(op: Any, ins: list, out: Any) -> Kernel | None:
    (xs, xd, _, _), (rs, rd, _, _) = ins[0], ins[1]
    if op.mean or xd != rd:
        return None
    if op.axes is not None:
        axes = _normalize_axes(op.axes, len(xs), "sum", xs)
    else:
        lead = len(xs) - len(rs)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, d in enumerate(rs) if d == 1 and xs[i + lead] != 1)
    if not axes:
        return Kernel(lambda x: x.reshape(rs), (0,), view=True, name="sum_like_view")
    reduced = tuple(d for i, d in enumerate(xs) if i not in axes)

    def fn(x: Any, out: Any = None) -> Any:
        return np.sum(_row_major(np, x), axis=axes, out=out).reshape(rs)
    return Kernel(fn, (0,), out=True, buf_meta=(reduced, xd), name="sum_like")


def _broadcast(shape: tuple, kept: tuple | None, ins: list) -> Kernel:
    gs, _, gstrides, gorder = ins[0]
    src_shape = kept if kept is not None else gs
    if tuple(src_shape) == tuple(shape) and gorder == "C":
        return Kernel(lambda g: g.reshape(shape), (0,), view=True, name="broadcast_view")

    def fn(g: Any, out: Any = None) -> Any:
        src = np.broadcast_to(g.reshape(src_shape) if kept is not None else g, shape)
        if out is None:
            return src.copy()
        np.copyto(out, src)
        return out

    def view(g: Any) -> Any:
        return np.broadcast_to(g.reshape(src_shape) if kept is not None else g, shape)
    return Kernel(fn, (0,), out=True, name="broadcast",
                  loose=Kernel(view, (0,), view=True, box=False, name="broadcast_view"))


def _broadcast_to(op: Any, ins: list, out: Any) -> Kernel:
    return _broadcast(op.shape, None, ins)


def _broadcast_like(op: Any, ins: list, out: Any) -> Kernel | None:
    if op.mean:
        return None
    shape = tuple(ins[1][0])
    kept = None
    if op.axes is not None:
        axes = _normalize_axes(op.axes, len(shape), "broadcast", shape)
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return _broadcast(shape, kept, ins)


def _reshape(op: Any, ins: list, out: Any) -> Kernel:
    shape = op.shape
    return Kernel(lambda a: a.reshape(shape), (0,), view=True, name="reshape", reshape=True)


def _reshape_like(op: Any, ins: list, out: Any) -> Kernel:
    shape = tuple(ins[1][0])
    return Kernel(lambda a: a.reshape(shape), (0,), view=True, name="reshape_like",
                  reshape=True)


def _view(fn: Callable, name: str) -> Kernel:
    # Boxed (on nd a copy when the view has odd strides, as eager); loose: the view itself.
    return Kernel(fn, (0,), view=True, name=name,
                  loose=Kernel(fn, (0,), view=True, box=False, name=name + "_view"))


def _transpose(op: Any, ins: list, out: Any) -> Kernel:
    ndim = len(ins[0][0])
    if op.axes is None:
        i, j = ndim - 2, ndim - 1
    else:
        i, j = op.axes[0] % ndim, op.axes[1] % ndim
    return _view(lambda a: np.swapaxes(a, i, j), "transpose")


def _permute(op: Any, ins: list, out: Any) -> Kernel:
    axes = op.axes
    if axes is None:
        return _view(lambda a: a.transpose(), "permute")
    return _view(lambda a: np.transpose(a, axes), "permute")


def _matmul_operand(op: Any, ins: list, out: Any) -> Kernel:
    if len(ins[0][0]) != 1:
        return Kernel(lambda a: a, (0,), view=True, box=False, name="identity")
    if op.side == 0:
        return Kernel(lambda a: a[None, :], (0,), view=True, name="as_row")
    return Kernel(lambda a: a[:, None], (0,), view=True, name="as_column")


def _make_tuple(op: Any, ins: list, out: Any) -> Kernel:
    return Kernel(lambda *xs: xs, tuple(range(len(ins))), view=True, box=False, name="tuple")


def _tuple_get_item(op: Any, ins: list, out: Any) -> Kernel:
    index = op.index
    return Kernel(lambda t: t[index], (0,), view=True, box=False, name="getitem")


def _stack(op: Any, ins: list, out: Any) -> Kernel:
    axis = op.axis

    def fn(t: tuple, out: Any = None) -> Any:
        return np.stack(t, axis=axis, out=out)
    return Kernel(fn, (0,), out=True, name="stack")


def _split(op: Any, ins: list, out: Any) -> Kernel:
    axis = op.axis
    return Kernel(lambda a: tuple(np.moveaxis(a, axis, 0)), (0,), view=True, name="split")


def _filled(value: float) -> Callable:
    def lower(op: Any, ins: list, out: Any) -> Kernel:
        shape, dtype = ins[0][0], ins[0][1]
        return Kernel(lambda: np.full(shape, value, dtype=dtype), (), name="fill")
    return lower


LOWER: dict = {
    ops.EWiseAdd: _binary(np.add), ops.EWiseMul: _binary(np.multiply),
    ops.EWiseDiv: _binary(np.true_divide), ops.EWiseSub: _binary(np.subtract),
    ops.Maximum: _binary(np.maximum),
    ops.Minimum: _binary(np.minimum),
    ops.AddScalar: _scalar(np.add), ops.MulScalar: _scalar(np.multiply),
    ops.DivScalar: _scalar(np.true_divide),
    ops.Negate: _unary(np.negative), ops.Exp: _unary(np.exp), ops.Log: _unary(np.log),
    ops.Sqrt: _unary(np.sqrt), ops.Tanh: _unary(np.tanh), ops.Abs: _unary(np.abs),
    ops.Sign: _unary(np.sign),
    ops.PowerScalar: _power_scalar, ops.ReLU: _relu, ops.ReLUBackward: _relu_backward,
    ops.TanhBackward: _tanh_backward, ops.Sigmoid: _sigmoid,
    ops.SigmoidBackward: _sigmoid_backward, ops.MatMul: _matmul,
    ops.Summation: _reduction(np.sum, "summation"),
    ops.Mean: _reduction(np.mean, "mean", floats_only=True),
    ops.Max: _reduction(np.max, "max", row_major=False),
    ops.SumLike: _sum_like, ops.BroadcastTo: _broadcast_to, ops.BroadcastLike: _broadcast_like,
    ops.Reshape: _reshape, ops.ReshapeLike: _reshape_like, ops.Transpose: _transpose,
    ops.Permute: _permute, ops.MatMulOperand: _matmul_operand,
    ops.MakeTensorTuple: _make_tuple, ops.TupleGetItem: _tuple_get_item, ops.Stack: _stack,
    ops.Split: _split, ops.OnesLike: _filled(1), ops.ZerosLike: _filled(0),
}
for _cls in (ops.Greater, ops.GreaterEqual, ops.Less, ops.LessEqual, ops.Equal, ops.NotEqual):
    LOWER[_cls] = _compare


def is_tuple_meta(meta: tuple) -> bool:
    """Whether ``meta`` describes a tuple of arrays (not one array)."""
    return meta.__class__ is TupleMeta


def lower(op: Any, in_metas: list, out_meta: Any, device: Any) -> Kernel | None:
    """The kernel of ``op`` for inputs and a result of these metas on ``device``, or None
    (also for any device whose namespace is not numpy)."""
    if getattr(device, "xp", None) is not np:
        return None
    make = LOWER.get(type(op))
    if make is None:
        raw = getattr(op, "_raw", None)
        if raw is None or TupleMeta in map(type, in_metas) or is_tuple_meta(out_meta):
            return None
        # The op's own computation, able to write into a buffer (``out=``).
        op.xp = np
        if getattr(op, "_raw_out", False):
            return Kernel(raw, tuple(range(len(in_metas))), out=True, name=f"{op.name}._raw")
        return Kernel(raw, tuple(range(len(in_metas))), view=True, name=f"{op.name}._raw")
    if TupleMeta in map(type, in_metas) and not isinstance(
            op, (ops.Stack, ops.TupleGetItem)):
        return None
    if is_tuple_meta(out_meta) and not isinstance(op, (ops.MakeTensorTuple, ops.Split)):
        return None
    try:
        return make(op, in_metas, out_meta)
    except Exception:  # noqa: BLE001  (an op configuration the kernel does not cover)
        return None


def fallback(op: Any, nin: int, device: Any) -> Kernel:
    """A kernel that runs the op's own ``compute`` in ``device``'s namespace, as the engine
    does (``core.make_value``: ``op.xp`` set, numpy scalars made arrays)."""
    compute = op.compute
    xp = getattr(device, "xp", None) or np
    ndarray = np.ndarray

    def fn(*xs: Any) -> Any:
        if op.xp is not xp:
            op.xp = xp
        r = compute(*xs)
        return r if r.__class__ is ndarray else as_array(r, xp)
    return Kernel(fn, tuple(range(nin)), view=True, box=False, name=f"{op.name}.compute")


__all__ = ["Kernel", "SHAPE_ONLY", "lower", "fallback", "box", "is_tuple_meta"]
