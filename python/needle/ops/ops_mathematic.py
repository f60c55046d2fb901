"""Element-wise, scalar, shape, reduction and matmul ops.

Every op is a small class with ``compute`` (on the raw arrays of its operands' device,
through that device's namespace ``self.xp``: ``xp.add(a, b)``, never ``a + b``) and
``gradient`` (needle ops only, so gradients are themselves differentiable and work on
graph-mode placeholders, whose shapes are unknown when the gradient graph is built).
Where a gradient needs an input's shape it uses the shape-polymorphic ops
``SumLike``/``BroadcastLike``/``ReshapeLike``, which read the shape of a reference input
at compute time.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy

from .._dtype import operand_pair, promote_pair
from .._dtype import scalar as _scalar
from ..autograd import Tensor, TensorOp, Value
from ..errors import DTypeError, IndexOutOfRange, ShapeError
from ._args import reduction_args

__all__ = [
    "unbroadcast",
    "SumLike",
    "BroadcastLike",
    "broadcast_like",
    "ReshapeLike",
    "ZerosLike",
    "zeros_like",
    "OnesLike",
    "ones_like",
    "EWiseAdd",
    "add",
    "AddScalar",
    "add_scalar",
    "EWiseMul",
    "multiply",
    "MulScalar",
    "mul_scalar",
    "EWisePow",
    "power",
    "PowerScalar",
    "power_scalar",
    "EWiseDiv",
    "divide",
    "DivScalar",
    "divide_scalar",
    "EWiseSub",
    "subtract",
    "Negate",
    "negate",
    "Log",
    "log",
    "Exp",
    "exp",
    "Sqrt",
    "sqrt",
    "ReLU",
    "relu",
    "ReLUBackward",
    "Tanh",
    "tanh",
    "Sigmoid",
    "SigmoidBackward",
    "TanhBackward",
    "sigmoid",
    "Abs",
    "abs",
    "Sign",
    "sign",
    "Maximum",
    "maximum",
    "Minimum",
    "minimum",
    "Greater",
    "GreaterEqual",
    "Less",
    "LessEqual",
    "Equal",
    "NotEqual",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "equal",
    "not_equal",
    "Transpose",
    "transpose",
    "Permute",
    "permute",
    "Reshape",
    "reshape",
    "BroadcastTo",
    "broadcast_to",
    "GetItem",
    "get_item",
    "ScatterLike",
    "Summation",
    "summation",
    "Mean",
    "mean",
    "Max",
    "max",
    "MatMul",
    "MatMulOperand",
    "MatMulOutGrad",
    "matmul",
]


def _normalize_axes(axes: Any, ndim: int, op: str, shape: tuple) -> tuple:
    """Axes as a sorted tuple of non-negative ints; None means all axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, numpy.integer)):
        axes = (int(axes),)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, numpy.integer)) or not -ndim <= ax < builtins.max(ndim, 1):
            raise ShapeError(
                f"{op}: axis {ax} is out of range for a tensor of shape {tuple(shape)} "
                f"(valid: {-ndim} to {ndim - 1})"
            )
        if ndim == 0:
            raise ShapeError(f"{op}: axis {ax} is out of range for a 0-d tensor")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(axes)} for shape {tuple(shape)}")
    return tuple(sorted(out))


def _row_major(xp: Any, a: Any) -> Any:
    """``a`` as a C-contiguous array (a copy only for a strided view).

    Sums add in an order that depends on the memory layout; reducing the row-major layout
    makes a sum's float bits independent of whether its input is a view (a transposed or
    broadcast operand), as they are in the course's NDArray, whose reductions compact first.
    """
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


def _broadcast_error(op: str, *arrays: Any) -> ShapeError:
    shapes = " and ".join(str(tuple(a.shape)) for a in arrays)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together")


def _realized_same(a: Value, b: Value) -> bool:
    """True when both are computed and already have the same shape (eager fast path).

    The dtype does not matter: the engine casts every gradient to its input's dtype.
    """
    x, y = a._data, b._data
    return (x is not None and y is not None and x.__class__ is not tuple
            and x.shape == y.shape)


def unbroadcast(grad: Tensor, like: Tensor) -> Tensor:
    """Sum ``grad`` down to ``like``'s shape: the one un-broadcast helper of needle.

    Leading axes that broadcasting added and axes where ``like`` has size 1 are
    summed. In eager mode a gradient that already fits is returned as it is.
    """
    if _realized_same(grad, like):
        return grad
    return SumLike(None)(grad, like)


# ----------------------------------------------------------------------------------------------
# Shape-polymorphic helpers used by gradients


class SumLike(TensorOp):
    """Sum ``x`` over ``axes`` (dropping them), or, with ``axes=None``, un-broadcast it to
    ``ref``'s shape. ``mean=True`` divides by the number of summed elements.

    Only ``ref``'s shape is used, so it gets no gradient; the result keeps ``x``'s dtype.
    """

    def __init__(self, axes: Any = None, mean: bool = False):
        self.axes = axes
        self.mean = mean

    def compute(self, x: Any, ref: Any) -> Any:
        xp = self.xp
        if self.axes is not None:
            axes = _normalize_axes(self.axes, x.ndim, "sum", x.shape)
        else:
            lead = x.ndim - len(ref.shape)
            if lead < 0:
                raise ShapeError(f"unbroadcast: {tuple(x.shape)} has fewer dims than "
                                 f"{tuple(ref.shape)}")
            axes = tuple(range(lead)) + tuple(
                i + lead for i, d in enumerate(ref.shape) if d == 1 and x.shape[i + lead] != 1
            )
        out = xp.sum(_row_major(xp, x), axis=axes) if axes else x
        if self.mean and x.size:
            out = xp.multiply(out, out.size / x.size)
        return xp.reshape(out, ref.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        x = node.inputs[0]
        return BroadcastLike(self.axes, self.mean)(out_grad, x), None


class BroadcastLike(TensorOp):
    """Broadcast ``g`` to ``ref``'s shape, first re-inserting reduced ``axes`` (if given).

    The adjoint of :class:`SumLike`; ``mean=True`` divides by the broadcast factor.
    """

    def __init__(self, axes: Any = None, mean: bool = False):
        self.axes = axes
        self.mean = mean

    def compute(self, g: Any, ref: Any) -> Any:
        xp = self.xp
        shape = tuple(ref.shape)
        if self.axes is not None:
            axes = _normalize_axes(self.axes, len(shape), "broadcast", shape)
            g = xp.reshape(g, [1 if i in axes else d for i, d in enumerate(shape)])
        # A stride-0 view: nothing is copied until an op reads it.
        out = xp.broadcast_to(g, shape)
        if self.mean and out.size:
            out = xp.multiply(out, g.size / out.size)
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        g = node.inputs[0]
        return SumLike(self.axes, self.mean)(out_grad, g), None


def broadcast_like(g: Tensor, like: Tensor, axes: Any = None, mean: bool = False) -> Tensor:
    """Broadcast ``g`` to the shape of ``like`` (re-inserting reduced ``axes``)."""
    if axes is None and not mean and _realized_same(g, like):
        return g
    return BroadcastLike(axes, mean)(g, like)


class ReshapeLike(TensorOp):
    """Reshape ``x`` to ``ref``'s shape (used by Reshape's gradient)."""

    def compute(self, x: Any, ref: Any) -> Any:
        return self.xp.reshape(x, ref.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return ReshapeLike()(out_grad, node.inputs[0]), None


class ZerosLike(TensorOp):
    """Zeros with ``a``'s shape and dtype; no gradient flows through it."""

    def compute(self, a: Any) -> Any:
        return self.xp.zeros(a.shape, dtype=a.dtype)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ZerosLike()(node.inputs[0])


def zeros_like(a: Tensor) -> Tensor:
    """Zeros with ``a``'s shape and dtype (no gradient flows)."""
    return ZerosLike()(a)


class OnesLike(TensorOp):
    """Ones with ``a``'s shape and dtype; no gradient flows through it."""

    def compute(self, a: Any) -> Any:
        return self.xp.ones(a.shape, dtype=a.dtype)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ZerosLike()(node.inputs[0])


def ones_like(a: Tensor) -> Tensor:
    """Ones with ``a``'s shape and dtype (no gradient flows)."""
    return OnesLike()(a)


# ----------------------------------------------------------------------------------------------
# Element-wise arithmetic (numpy broadcasting, un-broadcast in the gradient)


class EWiseAdd(TensorOp):
    """``a + b`` element-wise, with numpy broadcasting."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.add(a, b)
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        return (unbroadcast(out_grad, a) if a.requires_grad else None,
                unbroadcast(out_grad, b) if b.requires_grad else None)


def add(a: Tensor, b: Tensor) -> Tensor:
    """``a + b`` element-wise, broadcasting like numpy."""
    return EWiseAdd()(a, b)


class AddScalar(TensorOp):
    """``a + scalar`` element-wise; the scalar keeps the tensor's dtype."""

    def __init__(self, scalar: Any):
        cls = scalar.__class__
        self.scalar = scalar if cls is float or cls is int else _scalar(scalar, "add_scalar")

    def compute(self, a: Any) -> Any:
        return self.xp.add(a, self.scalar)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad


def add_scalar(a: Tensor, scalar: Any) -> Tensor:
    """``a + scalar`` element-wise."""
    return AddScalar(scalar)(a)


class EWiseMul(TensorOp):
    """``a * b`` element-wise, with numpy broadcasting."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.multiply(a, b)
        except ValueError:
            raise _broadcast_error("multiply", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        grad_a = unbroadcast(out_grad * b, a) if a.requires_grad else None
        grad_b = unbroadcast(out_grad * a, b) if b.requires_grad else None
        return grad_a, grad_b


def multiply(a: Tensor, b: Tensor) -> Tensor:
    """``a * b`` element-wise, broadcasting like numpy."""
    return EWiseMul()(a, b)


class MulScalar(TensorOp):
    """``a * scalar`` element-wise; the scalar keeps the tensor's dtype."""

    def __init__(self, scalar: Any):
        cls = scalar.__class__
        self.scalar = scalar if cls is float or cls is int else _scalar(scalar, "mul_scalar")

    def compute(self, a: Any) -> Any:
        return self.xp.multiply(a, self.scalar)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * self.scalar


def mul_scalar(a: Tensor, scalar: Any) -> Tensor:
    """``a * scalar`` element-wise."""
    return MulScalar(scalar)(a)


class EWisePow(TensorOp):
    """Element-wise ``a ** b`` for two tensors (``b`` may hold integers)."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.power(a, b)
        except ValueError:
            raise _broadcast_error("power", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        grad_a = unbroadcast(out_grad * b * power(a, b - 1), a) if a.requires_grad else None
        grad_b = unbroadcast(out_grad * node * log(a), b) if b.requires_grad else None
        return grad_a, grad_b


def power(a: Tensor, b: Tensor) -> Tensor:
    """``a ** b`` element-wise, broadcasting like numpy."""
    return EWisePow()(a, b)


class PowerScalar(TensorOp):
    """Op raise a tensor to an (integer or real) power."""

    def __init__(self, scalar: Any):
        cls = scalar.__class__
        self.scalar = scalar if cls is float or cls is int else _scalar(scalar, "power_scalar")

    def compute(self, a: Any) -> Any:
        xp = self.xp
        if isinstance(self.scalar, int) and self.scalar < 0 and a.dtype.kind in "iu":
            a = xp.asarray(a, dtype=numpy.float64)
        return xp.power(a, self.scalar)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        a = node.inputs[0]
        if self.scalar == 0:
            return out_grad * 0
        if self.scalar == 1:
            return out_grad
        return out_grad * (power_scalar(a, self.scalar - 1) * self.scalar)


def power_scalar(a: Tensor, scalar: Any) -> Tensor:
    """``a ** scalar`` element-wise."""
    return PowerScalar(scalar)(a)


class EWiseDiv(TensorOp):
    """Op to element-wise divide two nodes."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.divide(a, b)
        except ValueError:
            raise _broadcast_error("divide", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        grad_a = unbroadcast(out_grad / b, a) if a.requires_grad else None
        grad_b = unbroadcast(-(out_grad * a) / (b * b), b) if b.requires_grad else None
        return grad_a, grad_b


def divide(a: Tensor, b: Tensor) -> Tensor:
    """``a / b`` element-wise, broadcasting like numpy."""
    return EWiseDiv()(a, b)


class DivScalar(TensorOp):
    """``a / scalar`` element-wise."""

    def __init__(self, scalar: Any):
        cls = scalar.__class__
        self.scalar = scalar if cls is float or cls is int else _scalar(scalar, "divide_scalar")

    def compute(self, a: Any) -> Any:
        return self.xp.divide(a, self.scalar)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / self.scalar


def divide_scalar(a: Tensor, scalar: Any) -> Tensor:
    """``a / scalar`` element-wise."""
    return DivScalar(scalar)(a)


class EWiseSub(TensorOp):
    """``a - b`` element-wise, with numpy broadcasting: one pass where ``a + (-b)`` makes two.

    ``a - b`` builds ``EWiseAdd(a, Negate(b))`` when it records a graph (the course counts
    those two nodes); this op computes it when nothing is recorded (``p.data - lr * g``).
    """

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.subtract(a, b)
        except ValueError:
            raise _broadcast_error("subtract", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        return (unbroadcast(out_grad, a) if a.requires_grad else None,
                unbroadcast(-out_grad, b) if b.requires_grad else None)


def subtract(a: Tensor, b: Tensor) -> Tensor:
    """``a - b`` element-wise (numpy broadcasting), as one op."""
    return EWiseSub()(a, b)


class Negate(TensorOp):
    """``-a`` element-wise."""

    def compute(self, a: Any) -> Any:
        return self.xp.negative(a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return -out_grad


def negate(a: Tensor) -> Tensor:
    """``-a`` element-wise."""
    return Negate()(a)


# ----------------------------------------------------------------------------------------------
# Element-wise functions


def _float_input(a: Any, op: str) -> Any:
    if a.dtype.kind != "f":
        raise DTypeError(f"{op}: expects a floating-point tensor, got dtype {a.dtype}; "
                         "convert it with Tensor(x, dtype='float32')")
    return a


class Log(TensorOp):
    """Element-wise natural logarithm (float inputs)."""

    def compute(self, a: Any) -> Any:
        return self.xp.log(_float_input(a, "log"))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / node.inputs[0]


def log(a: Tensor) -> Tensor:
    """Element-wise natural logarithm."""
    return Log()(a)


class Exp(TensorOp):
    """Element-wise ``exp(a)``; the gradient reuses the result."""

    def compute(self, a: Any) -> Any:
        return self.xp.exp(_float_input(a, "exp"))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * node


def exp(a: Tensor) -> Tensor:
    """Element-wise ``exp(a)``."""
    return Exp()(a)


class Sqrt(TensorOp):
    """Element-wise square root (float inputs)."""

    def compute(self, a: Any) -> Any:
        return self.xp.sqrt(_float_input(a, "sqrt"))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / (node * 2)


def sqrt(a: Tensor) -> Tensor:
    """Element-wise square root."""
    return Sqrt()(a)


class ReLU(TensorOp):
    """Element-wise ``max(a, 0)``; its gradient is one ``ReLUBackward`` node."""

    def compute(self, a: Any) -> Any:
        return self.xp.maximum(a, 0)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ReLUBackward()(out_grad, node.inputs[0])


class ReLUBackward(TensorOp):
    """``g * (x > 0)``: ReLU's gradient as one node (an indicator, not ReLU of itself)."""

    def compute(self, g: Any, x: Any) -> Any:
        xp = self.xp
        return xp.multiply(g, xp.greater(x, 0))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        g, x = node.inputs
        return ReLUBackward()(out_grad, x), zeros_like(x)


def relu(a: Tensor) -> Tensor:
    """Element-wise ``max(a, 0)``."""
    return ReLU()(a)


class Tanh(TensorOp):
    """Element-wise hyperbolic tangent; its gradient is one ``TanhBackward`` node."""

    def compute(self, a: Any) -> Any:
        return self.xp.tanh(_float_input(a, "tanh"))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return TanhBackward()(out_grad, node)


def tanh(a: Tensor) -> Tensor:
    """Element-wise hyperbolic tangent."""
    return Tanh()(a)


class TanhBackward(TensorOp):
    """``g * (1 - y**2)`` for ``y = tanh(x)``: Tanh's gradient as one node."""

    def compute(self, g: Any, y: Any) -> Any:
        xp = self.xp
        return xp.multiply(g, xp.subtract(1, xp.multiply(y, y)))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        g, y = node.inputs
        return TanhBackward()(out_grad, y), out_grad * g * y * -2


class Sigmoid(TensorOp):
    """Element-wise logistic function ``1 / (1 + exp(-a))``."""

    def compute(self, a: Any) -> Any:
        # 0.5 * (1 + tanh(x / 2)) is the logistic function without overflow in exp.
        xp = self.xp
        half = xp.tanh(xp.multiply(_float_input(a, "sigmoid"), 0.5))
        return xp.multiply(xp.add(half, 1.0), 0.5)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return SigmoidBackward()(out_grad, node)


class SigmoidBackward(TensorOp):
    """``g * y * (1 - y)`` for ``y = sigmoid(x)``: Sigmoid's gradient as one node."""

    def compute(self, g: Any, y: Any) -> Any:
        xp = self.xp
        return xp.multiply(xp.multiply(g, y), xp.subtract(1, y))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        g, y = node.inputs
        return SigmoidBackward()(out_grad, y), out_grad * g * (1 - y * 2)


def sigmoid(a: Tensor) -> Tensor:
    """Element-wise logistic function."""
    return Sigmoid()(a)


class Abs(TensorOp):
    """Element-wise absolute value; the gradient is ``sign(a)`` (0 at 0)."""

    def compute(self, a: Any) -> Any:
        return self.xp.abs(a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * sign(node.inputs[0])


def abs(a: Tensor) -> Tensor:  # noqa: A001  (the name users expect)
    """Element-wise ``|a|``."""
    return Abs()(a)


class Sign(TensorOp):
    """-1, 0 or 1 element-wise; its gradient is zero."""

    def compute(self, a: Any) -> Any:
        return self.xp.sign(a)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return zeros_like(node.inputs[0])


def sign(a: Tensor) -> Tensor:
    """Element-wise sign (-1, 0 or 1) in ``a``'s dtype; no gradient flows."""
    return Sign()(a)


class Maximum(TensorOp):
    """Element-wise maximum; at ties the gradient is split evenly (as in PyTorch)."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.maximum(a, b)
        except ValueError:
            raise _broadcast_error("maximum", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        share_a = greater(a, b) + equal(a, b) * 0.5
        return unbroadcast(out_grad * share_a, a), unbroadcast(out_grad * (1 - share_a), b)


def maximum(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise maximum of ``a`` and ``b``, broadcasting like numpy."""
    return Maximum()(a, b)


class Minimum(TensorOp):
    """Element-wise minimum; at ties the gradient is split evenly (as in PyTorch)."""

    def compute(self, a: Any, b: Any) -> Any:
        try:
            if a.dtype is not b.dtype:
                a, b = promote_pair(self.xp, a, b)
            return self.xp.minimum(a, b)
        except ValueError:
            raise _broadcast_error("minimum", a, b) from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        share_a = less(a, b) + equal(a, b) * 0.5
        return unbroadcast(out_grad * share_a, a), unbroadcast(out_grad * (1 - share_a), b)


def minimum(a: Tensor, b: Tensor) -> Tensor:
    """Element-wise minimum of ``a`` and ``b``, broadcasting like numpy."""
    return Minimum()(a, b)


# ----------------------------------------------------------------------------------------------
# Comparisons: 0/1 results in a float dtype, zero gradient


class _Compare(TensorOp):
    """Compare ``a`` with a tensor ``b`` or with ``scalar``; 1.0 where true, else 0.0."""

    fn = ""  # the namespace function, e.g. "greater"
    symbol = "?"

    def __init__(self, scalar: Any = None):
        self.scalar = None if scalar is None else _scalar(scalar, self.name.lower())

    def compute(self, a: Any, b: Any = None) -> Any:
        xp = self.xp
        dtype = a.dtype
        if b is not None and dtype is not b.dtype:
            a, b = promote_pair(xp, a, b)
            dtype = numpy.promote_types(a.dtype, b.dtype)
        if dtype.kind != "f":
            dtype = numpy.dtype("float32")
        try:
            out = getattr(xp, self.fn)(a, self.scalar if b is None else b)
        except ValueError:
            raise _broadcast_error(self.name.lower(), a, b) from None
        return xp.asarray(out, dtype=dtype)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return tuple(zeros_like(x) for x in node.inputs)


def _compare(cls: type, a: Tensor, b: Any) -> Tensor:
    if isinstance(b, Tensor):
        return cls()(a, b)
    return cls(b)(a)


class Greater(_Compare):
    """``a > b`` (or ``a > scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "greater"


class GreaterEqual(_Compare):
    """``a >= b`` (or ``a >= scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "greater_equal"


class Less(_Compare):
    """``a < b`` (or ``a < scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "less"


class LessEqual(_Compare):
    """``a <= b`` (or ``a <= scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "less_equal"


class Equal(_Compare):
    """``a == b`` (or ``a == scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "equal"


class NotEqual(_Compare):
    """``a != b`` (or ``a != scalar``): 1.0 where true, else 0.0; zero gradients."""

    fn = "not_equal"


def greater(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a > b`` else 0.0 (``b`` a tensor or a scalar); no gradient."""
    return _compare(Greater, a, b)


def greater_equal(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a >= b`` else 0.0 (``b`` a tensor or a number); no gradient."""
    return _compare(GreaterEqual, a, b)


def less(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a < b`` else 0.0 (``b`` a tensor or a number); no gradient."""
    return _compare(Less, a, b)


def less_equal(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a <= b`` else 0.0 (``b`` a tensor or a number); no gradient."""
    return _compare(LessEqual, a, b)


def equal(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a == b`` else 0.0 (``b`` a tensor or a number); no gradient."""
    return _compare(Equal, a, b)


def not_equal(a: Tensor, b: Any) -> Tensor:
    """1.0 where ``a != b`` else 0.0 (``b`` a tensor or a number); no gradient."""
    return _compare(NotEqual, a, b)


# ----------------------------------------------------------------------------------------------
# Shape ops


class _ViewOp(TensorOp):
    """An op whose result may be a numpy view of its input's memory. A result that records
    no graph, of a leaf, remembers what it views (``Value._view``), so that an in-place op
    through it can rebase the leaf too (see ``needle.inplace``); a recorded result knows it
    from its op. A view of a non-leaf made under no_grad keeps no link (it would keep the
    base's graph alive): after a recorded write through such a view, a graph that uses the
    base raises GraphError (PyTorch refuses the write itself)."""

    def __call__(self, a: Tensor) -> Tensor:
        out = Tensor.make_from_op(self, (a,))
        if out.op is None and a.op is None:
            data = out._data
            if data is not None and data.base is not None:
                out._view = (a, self)
        return out


class Transpose(_ViewOp):
    """Swap two axes (the last two when ``axes`` is None), like ``numpy.swapaxes``."""

    def __init__(self, axes: tuple | None = None):
        self.axes = None if axes is None else tuple(axes)

    def compute(self, a: Any) -> Any:
        if self.axes is None:
            if a.ndim < 2:
                raise ShapeError(f"transpose: needs at least 2 dims, got shape {a.shape}")
            i, j = a.ndim - 2, a.ndim - 1
        else:
            if len(self.axes) != 2 or builtins.any(
                not -a.ndim <= ax < a.ndim for ax in self.axes
            ):
                raise ShapeError(f"transpose: axes {self.axes} must be two axes of shape "
                                 f"{tuple(a.shape)}")
            i, j = self.axes[0] % a.ndim, self.axes[1] % a.ndim
        return self.xp.swapaxes(a, i, j)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return Transpose(self.axes)(out_grad)


def transpose(a: Tensor, axes: tuple | None = None) -> Tensor:
    """Swap two axes of ``a`` (the last two when ``axes`` is None)."""
    return Transpose(axes)(a)


class Permute(_ViewOp):
    """Reorder all axes: output axis i is input axis ``axes[i]``; None reverses them."""

    def __init__(self, axes: tuple | None):
        self.axes = None if axes is None else tuple(int(x) for x in axes)

    def compute(self, a: Any) -> Any:
        if self.axes is None:
            return self.xp.transpose(a)
        if sorted(x % builtins.max(a.ndim, 1) for x in self.axes) != list(range(a.ndim)) or (
            builtins.any(not -a.ndim <= x < a.ndim for x in self.axes)
        ):
            raise ShapeError(f"permute: axes {self.axes} are not a permutation of the "
                             f"{a.ndim} axes of shape {a.shape}")
        return self.xp.transpose(a, self.axes)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        if self.axes is None:
            return Permute(None)(out_grad)
        n = len(self.axes)
        inverse = tuple(sorted(range(n), key=lambda i: self.axes[i] % n))
        return Permute(inverse)(out_grad)


def permute(a: Tensor, axes: tuple) -> Tensor:
    """Reorder the axes of ``a``: axis ``i`` of the result is axis ``axes[i]`` of ``a``."""
    return Permute(axes)(a)


class Reshape(_ViewOp):
    """Reshape ``a`` to ``shape`` (same number of elements); the gradient reshapes back."""

    def __init__(self, shape: tuple):
        self.shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)

    def compute(self, a: Any) -> Any:
        try:
            return self.xp.reshape(a, self.shape)
        except (ValueError, TypeError):
            raise ShapeError(f"reshape: cannot reshape {a.size} elements of shape "
                             f"{tuple(a.shape)} to {self.shape}") from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ReshapeLike()(out_grad, node.inputs[0])


def reshape(a: Tensor, shape: tuple) -> Tensor:
    """``a`` with the same elements in ``shape``."""
    return Reshape(shape)(a)


class BroadcastTo(TensorOp):
    """Broadcast ``a`` to ``shape`` (numpy rules); the gradient sums back (``unbroadcast``)."""

    def __init__(self, shape: tuple):
        self.shape = tuple(shape)

    def compute(self, a: Any) -> Any:
        try:
            # A stride-0 view, as numpy by hand would have it: nothing is copied.
            return self.xp.broadcast_to(a, self.shape)
        except ValueError:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {tuple(a.shape)} to "
                             f"{self.shape}") from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return unbroadcast(out_grad, node.inputs[0])


def broadcast_to(a: Tensor, shape: tuple) -> Tensor:
    """Broadcast ``a`` to ``shape`` (numpy rules)."""
    return BroadcastTo(shape)(a)


class GetItem(_ViewOp):
    """Basic and integer-array indexing (numpy rules); the gradient scatters back."""

    def __init__(self, index: Any):
        self.index = index

    def compute(self, a: Any) -> Any:
        try:
            # Basic indexing is a view (stride arithmetic); integer arrays gather a copy.
            return a[self.index]
        except IndexError as e:
            raise IndexOutOfRange(f"getitem: index {self.index!r} is invalid for shape "
                             f"{tuple(a.shape)}: {e}") from None

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ScatterLike(self.index)(out_grad, node.inputs[0])


def _normalize_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        arr = index.numpy()
        return arr if arr.dtype == numpy.bool_ else arr.astype(numpy.int64)
    if isinstance(index, list):
        return numpy.asarray(index)
    if isinstance(index, tuple):
        return tuple(_normalize_index(i) for i in index)
    return index


def get_item(a: Tensor, index: Any) -> Tensor:
    """``a[index]`` as a differentiable op (ints, slices, None, ..., integer arrays)."""
    return GetItem(_normalize_index(index))(a)


class ScatterLike(TensorOp):
    """Zeros of ``ref``'s shape with ``g`` added at ``index``: the adjoint of GetItem."""

    def __init__(self, index: Any):
        self.index = index

    def compute(self, g: Any, ref: Any) -> Any:
        xp = self.xp
        out = xp.zeros(ref.shape, dtype=g.dtype)
        xp.add.at(out, self.index, g)
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return GetItem(self.index)(out_grad), None


# ----------------------------------------------------------------------------------------------
# Reductions


class Summation(TensorOp):
    """Sum over ``axes`` (None: all; int or tuple), dropping them unless ``keepdims``."""

    def __init__(self, axes: Any = None, keepdims: bool = False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: Any) -> Any:
        axes = _normalize_axes(self.axes, a.ndim, "summation", a.shape)
        return self.xp.sum(_row_major(self.xp, a), axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        # keepdims results and full reductions (0-d) broadcast back with no axes to re-insert.
        axes = None if self.keepdims else self.axes
        return broadcast_like(out_grad, node.inputs[0], axes)


def summation(a: Tensor, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
              keepdim: bool | None = None) -> Tensor:
    """Sum over ``axes`` (None: all; int or tuple); ``dim``/``keepdim`` are PyTorch's spellings."""
    axes, keepdims = reduction_args("summation", axes, dim, keepdims, keepdim)
    return Summation(axes, keepdims)(a)


class Mean(TensorOp):
    """Mean over ``axes`` (None: all), dropping them unless ``keepdims``."""

    def __init__(self, axes: Any = None, keepdims: bool = False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: Any) -> Any:
        xp = self.xp
        axes = _normalize_axes(self.axes, a.ndim, "mean", a.shape)
        if a.dtype.kind != "f":
            a = xp.asarray(a, dtype=numpy.float32)
        if a.size == 0:
            # numpy.mean warns on an empty slice; 0 / 0 is NaN quietly, as in PyTorch.
            count = math.prod([a.shape[i] for i in axes])
            return xp.divide(xp.sum(a, axis=axes, keepdims=self.keepdims), count)
        return xp.mean(_row_major(xp, a), axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        axes = None if self.keepdims else self.axes
        return BroadcastLike(axes, mean=True)(out_grad, node.inputs[0])


def mean(a: Tensor, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
         keepdim: bool | None = None) -> Tensor:
    """Mean over ``axes`` (None: all); ``dim``/``keepdim`` are PyTorch's spellings."""
    axes, keepdims = reduction_args("mean", axes, dim, keepdims, keepdim)
    return Mean(axes, keepdims)(a)


class Max(TensorOp):
    """Maximum over ``axes``; the gradient goes to the arg-max (split evenly among ties)."""

    # The namespace function that reduces, also the op's name in errors (``Min``: "min").
    reduce = "max"

    def __init__(self, axes: Any = None, keepdims: bool = False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: Any) -> Any:
        name = self.reduce
        axes = _normalize_axes(self.axes, a.ndim, name, a.shape)
        if a.size == 0:
            raise ShapeError(f"{name}: cannot reduce an empty tensor of shape {a.shape}")
        return getattr(self.xp, name)(a, axis=axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        x = node.inputs[0]
        axes = None if self.keepdims else self.axes
        mask = equal(x, BroadcastLike(axes)(node, x))
        ties = BroadcastLike(axes)(Summation(self.axes, self.keepdims)(mask), x)
        return BroadcastLike(axes)(out_grad, x) * mask / ties


def max(a: Tensor, axes: Any = None, keepdims: bool = False, *, dim: Any = None,  # noqa: A001
        keepdim: bool | None = None) -> Tensor:
    """Maximum over ``axes`` (None: all); ``dim``/``keepdim`` are PyTorch's spellings.

    Only the values are returned (Needle semantics), also with ``dim`` given.
    """
    axes, keepdims = reduction_args("max", axes, dim, keepdims, keepdim)
    return Max(axes, keepdims)(a)


# ----------------------------------------------------------------------------------------------
# Matrix product


def matmul_arrays(xp: Any, av: Any, bv: Any, op: str, vectors: bool = False) -> Any:
    """``xp.matmul(av, bv)``, raising ``op``'s ShapeError for operands that do not fit.

    ``vectors=True`` also accepts 1-D operands, by numpy's rules.
    """
    least = 1 if vectors else 2
    if av.ndim < least or bv.ndim < least:
        hint = " (use * to multiply by a scalar)" if vectors else ""
        raise ShapeError(f"{op}: operands need at least {least} dim{'s' if least > 1 else ''}"
                         f"{hint}, got shapes {tuple(av.shape)} and {tuple(bv.shape)}")
    inner_b = bv.shape[-2] if bv.ndim >= 2 else bv.shape[0]
    if av.shape[-1] != inner_b:
        raise ShapeError(f"{op}: shapes {tuple(av.shape)} and {tuple(bv.shape)} are not "
                         f"aligned ({av.shape[-1]} != {inner_b})")
    try:
        return xp.matmul(_blas_layout(xp, av), _blas_layout(xp, bv))
    except ValueError:
        raise ShapeError(f"{op}: batch dims of {tuple(av.shape)} and {tuple(bv.shape)} "
                         "cannot be broadcast together") from None


def _blas_layout(xp: Any, a: Any) -> Any:
    """``a`` itself if each of its matrices is a plain or transposed dense block (what BLAS
    takes), else a contiguous copy. Gradients are often broadcast (stride-0) views, which
    ``matmul`` would multiply in a slow loop of its own."""
    if a.ndim < 2:
        return a if a.strides[0] == a.itemsize else xp.ascontiguousarray(a)
    row, col = a.strides[-2:]
    size = a.itemsize
    if (col == size and row >= size * a.shape[-1]) or (row == size and col >= size * a.shape[-2]):
        return a
    return xp.ascontiguousarray(a)


class MatMul(TensorOp):
    """Matrix product by numpy's ``matmul`` rules: batch broadcasting, and 1-D operands
    (vector @ vector is 0-d, matrix @ vector and vector @ matrix drop the vector's axis)."""

    def compute(self, a: Any, b: Any) -> Any:
        return matmul_arrays(self.xp, *operand_pair(self.xp, a, b), "matmul", vectors=True)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        a, b = node.inputs
        x, y = a._data, b._data
        if x is not None and y is not None and len(x.shape) >= 2 and len(y.shape) >= 2:
            # Skip the product for an input that takes no gradient (e.g. the data batch).
            grad_a = unbroadcast(out_grad @ transpose(b), a) if a.requires_grad else None
            grad_b = unbroadcast(transpose(a) @ out_grad, b) if b.requires_grad else None
            return grad_a, grad_b
        # A vector operand, or shapes not known yet (graph mode): do the matrix case on
        # 1-D operands viewed as (1, n) / (n, 1), then give each gradient its input's shape.
        a2, b2 = MatMulOperand(0)(a), MatMulOperand(1)(b)
        g2 = MatMulOutGrad()(out_grad, a, b)
        grad_a = (ReshapeLike()(unbroadcast(g2 @ transpose(b2), a2), a)
                  if a.requires_grad else None)
        grad_b = (ReshapeLike()(unbroadcast(transpose(a2) @ g2, b2), b)
                  if b.requires_grad else None)
        return grad_a, grad_b


class MatMulOperand(TensorOp):
    """A matmul operand as a matrix: 1-D ``(n,)`` becomes ``(1, n)`` on the left
    (``side=0``) or ``(n, 1)`` on the right (``side=1``); other shapes pass unchanged."""

    def __init__(self, side: int):
        self.side = side

    def compute(self, a: Any) -> Any:
        if a.ndim != 1:
            return a
        return self.xp.expand_dims(a, 0 if self.side == 0 else 1)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ReshapeLike()(out_grad, node.inputs[0])


class MatMulOutGrad(TensorOp):
    """A gradient of ``a @ b`` with the axes that 1-D operands dropped put back (size 1),
    so that it has the shape of the product of the matrix views of ``a`` and ``b``."""

    def compute(self, g: Any, a: Any, b: Any) -> Any:
        xp = self.xp
        if len(b.shape) == 1:
            g = xp.expand_dims(g, -1)
        if len(a.shape) == 1:
            g = xp.expand_dims(g, -2)
        return g

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple:
        return ReshapeLike()(out_grad, node.inputs[0]), None, None


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` by numpy's rules (batched, and 1-D operands as vectors)."""
    return MatMul()(a, b)
