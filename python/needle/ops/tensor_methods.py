"""The operators and op methods of Tensor and TensorTuple, attached by ``needle.ops``.

``Tensor`` (``needle.tensor``) does not import the ops; this module is written like a class
body, and :func:`attach` copies its methods onto Tensor and TensorTuple when ``needle.ops``
loads. So ``x + y`` builds ``EWiseAdd()(x, y)`` and ``x.sum()`` builds ``Summation``.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import core
from .._dtype import scalar as _scalar_operand
from ..core import make_value
from ..errors import ShapeError
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor, TensorTuple
from . import ops_logarithmic as _log
from . import ops_mathematic as _math
from . import ops_reduce as _reduce
from . import ops_select as _select
from . import ops_shape as _shape
from . import ops_trig as _trig
from . import ops_tuple as _tuple
from .ops_mathematic import (
    AddScalar,
    BroadcastTo,
    DivScalar,
    EWiseAdd,
    EWiseDiv,
    EWiseMul,
    EWisePow,
    EWiseSub,
    MatMul,
    MulScalar,
    Negate,
    Permute,
    PowerScalar,
    Reshape,
    Transpose,
)


class TensorMethods:
    """The methods :func:`attach` puts on :class:`~needle.tensor.Tensor`."""

    # -- operators ------------------------------------------------------------------------------

    def _as_operand(self, other: Any) -> Any:
        """Tensors pass through; Python and numpy scalars and 0-d arrays become Python
        numbers (a scalar keeps the tensor's dtype); other arrays become constant tensors
        of the tensor's dtype, except that a float array meeting an integer or bool tensor
        stays float (its values are not truncated)."""
        cls = other.__class__
        if cls is float or cls is int:
            return other
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float, numpy.generic)):
            return _scalar_operand(other, "operand")
        arr = numpy.asarray(other)
        if arr.ndim == 0:
            return _scalar_operand(arr, "operand")
        dtype = self.dtype
        if arr.dtype.kind == "f" and numpy.dtype(dtype).kind != "f":
            dtype = arr.dtype
        return Tensor(arr, device=self.device, dtype=dtype, requires_grad=False)

    # The arithmetic operators make their node directly (``make_value``, what calling the
    # op object does): they are the hottest path of needle, one Python call less per op.

    def __add__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            cls = other.__class__
            if cls is not float and cls is not int:
                other = self._as_operand(other)
            if not isinstance(other, Tensor):
                return make_value(Tensor, AddScalar(other), (self,))
        return make_value(Tensor, EWiseAdd(), (self, other))

    __radd__ = __add__

    def __mul__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            cls = other.__class__
            if cls is not float and cls is not int:
                other = self._as_operand(other)
            if not isinstance(other, Tensor):
                return make_value(Tensor, MulScalar(other), (self,))
        return make_value(Tensor, EWiseMul(), (self, other))

    __rmul__ = __mul__

    def __pow__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return EWisePow()(self, other)
        return PowerScalar(other)(self)

    def __rpow__(self, other: Any) -> Tensor:
        base = self._as_operand(other)
        if not isinstance(base, Tensor):
            # A scalar base keeps the tensor's dtype (a float base of an integer tensor
            # gives numpy's float64, as ``int_tensor * 0.5`` does).
            kind_ok = numpy.dtype(self.dtype).kind == "f" or isinstance(base, int)
            base = Tensor(numpy.asarray(base), device=self.device,
                          dtype=self.dtype if kind_ok else numpy.float64, requires_grad=False)
        return EWisePow()(base, self)

    def __sub__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            other = self._as_operand(other)
            if not isinstance(other, Tensor):
                return make_value(Tensor, AddScalar(-other), (self,))
        if not (self.requires_grad or other.requires_grad) or not is_grad_enabled():
            if self._data is not None and other._data is not None and not core.LAZY_MODE:
                # Nothing is recorded: one subtraction instead of a negation and an add.
                return make_value(Tensor, EWiseSub(), (self, other))
        return make_value(Tensor, EWiseAdd(), (self, make_value(Tensor, Negate(), (other,))))

    def __rsub__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return EWiseAdd()(other, Negate()(self))
        return AddScalar(other)(Negate()(self))

    def __truediv__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            cls = other.__class__
            if cls is not float and cls is not int:
                other = self._as_operand(other)
            if not isinstance(other, Tensor):
                return make_value(Tensor, DivScalar(other), (self,))
        return make_value(Tensor, EWiseDiv(), (self, other))

    def __rtruediv__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return EWiseDiv()(other, self)
        return MulScalar(other)(PowerScalar(-1)(self))

    def __matmul__(self, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            other = self._as_operand(other)
        return make_value(Tensor, MatMul(), (self, other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return MatMul()(self._as_operand(other), self)

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product ``self @ other``."""
        return MatMul()(self, other)

    def __neg__(self) -> Tensor:
        return make_value(Tensor, Negate(), (self,))

    def __abs__(self) -> Tensor:
        return _math.abs(self)

    def __gt__(self, other: Any) -> Tensor:
        return _math.greater(self, self._as_operand(other))

    def __ge__(self, other: Any) -> Tensor:
        return _math.greater_equal(self, self._as_operand(other))

    def __lt__(self, other: Any) -> Tensor:
        return _math.less(self, self._as_operand(other))

    def __le__(self, other: Any) -> Tensor:
        return _math.less_equal(self, self._as_operand(other))

    def __getitem__(self, index: Any) -> Tensor:
        return _math.get_item(self, index)

    # -- methods --------------------------------------------------------------------------------

    # Reductions take Needle's axes/keepdims or PyTorch's dim/keepdim (not both).

    def sum(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """Sum over ``axes`` (None: all); see :func:`needle._math.summation`."""
        return _math.summation(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: bool | None = None) -> Tensor:
        """Mean over ``axes`` (None: all); see :func:`needle._math.mean`."""
        return _math.mean(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """The maximum values over ``axes`` (no indices, also with ``dim``: Needle semantics)."""
        return _math.max(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def logsumexp(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
                  keepdim: bool | None = None) -> Tensor:
        """Log-sum-exp over ``axes``; see :func:`needle._log.logsumexp`."""
        return _log.logsumexp(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """Softmax along ``axis`` (or ``dim``)."""
        return _log.softmax(self, axis, dim=dim)

    def logsoftmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """Log-softmax along ``axis`` (or ``dim``)."""
        return _log.logsoftmax(self, axis, dim=dim)

    @property
    def T(self) -> Tensor:
        """All axes reversed, like ``numpy.ndarray.T`` (a 0-d or 1-d tensor is unchanged)."""
        return Permute(None)(self)

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped (a batch of matrices, each transposed)."""
        return Transpose(None)(self)

    def broadcast_to(self, shape: tuple) -> Tensor:
        """Broadcast to ``shape`` (numpy rules)."""
        return BroadcastTo(shape)(self)

    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in a new shape: ``x.reshape((2, 3))`` or ``x.reshape(2, 3)``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape(shape)(self)

    def transpose(self, axes: tuple | None = None) -> Tensor:
        """Swap two axes (the last two when ``axes`` is None)."""
        return Transpose(axes)(self)

    def permute(self, *axes: Any) -> Tensor:
        """Reorder the axes: ``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _math.permute(self, axes)

    def exp(self) -> Tensor:
        """Element-wise ``exp``."""
        return _math.exp(self)

    def log(self) -> Tensor:
        """Element-wise natural logarithm."""
        return _math.log(self)

    def relu(self) -> Tensor:
        """Element-wise ``max(x, 0)``."""
        return _math.relu(self)

    def tanh(self) -> Tensor:
        """Element-wise hyperbolic tangent."""
        return _math.tanh(self)

    def sigmoid(self) -> Tensor:
        """Element-wise logistic function."""
        return _math.sigmoid(self)

    def sqrt(self) -> Tensor:
        """Element-wise square root."""
        return _math.sqrt(self)

    # -- methods of the ops in ops_select, ops_reduce, ops_shape, ops_trig ---------------------

    def sin(self) -> Tensor:
        """Element-wise sine."""
        return _trig.sin(self)

    def cos(self) -> Tensor:
        """Element-wise cosine."""
        return _trig.cos(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Limit values to ``[min, max]`` (either bound may be None): :func:`_select.clamp`."""
        return _select.clamp(self, min, max)

    clip = clamp

    def min(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """Minimum over ``axes`` (None: all); ties share the gradient, as in ``max``."""
        return _reduce.min(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def var(self, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
            dim: Any = None, keepdim: bool | None = None) -> Tensor:
        """Variance over ``axes`` with PyTorch's ``correction`` (1: the unbiased estimate)."""
        return _reduce.var(self, axes, correction, keepdims, dim=dim, keepdim=keepdim)

    def std(self, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
            dim: Any = None, keepdim: bool | None = None) -> Tensor:
        """Standard deviation over ``axes``: the square root of :meth:`var`."""
        return _reduce.std(self, axes, correction, keepdims, dim=dim, keepdim=keepdim)

    def argmax(self, axis: int | None = None, keepdims: bool = False, *,
               dim: int | None = None, keepdim: bool | None = None) -> Tensor:
        """Index of the maximum along ``axis`` (None: of the flattened tensor); no gradient."""
        return _select.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis: int | None = None, keepdims: bool = False, *,
               dim: int | None = None, keepdim: bool | None = None) -> Tensor:
        """Index of the minimum along ``axis`` (None: of the flattened tensor); no gradient."""
        return _select.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def squeeze(self, axis: Any = None, *, dim: Any = None) -> Tensor:
        """Drop size-1 axes (``axis`` None: all of them)."""
        return _shape.squeeze(self, axis, dim=dim)

    def unsqueeze(self, axis: Any = None, *, dim: Any = None) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return _shape.unsqueeze(self, axis, dim=dim)

    def gather(self, axis: int | None = None, index: Any = None, *,
               dim: int | None = None) -> Tensor:
        """Pick values along ``axis`` at ``index``, as PyTorch's ``gather`` does."""
        return _select.gather(self, axis, index, dim=dim)



class TensorTupleMethods:
    """The methods :func:`attach` puts on :class:`~needle.tensor.TensorTuple`."""

    def __getitem__(self, index: int) -> Tensor:
        return _tuple.tuple_get_item(self, index)

    def __add__(self, other: TensorTuple) -> TensorTuple:
        if not isinstance(other, TensorTuple) or len(self) != len(other):
            raise ShapeError("TensorTuple +: needs another TensorTuple of the same length")
        return _tuple.make_tuple(*[self[i] + other[i] for i in range(len(self))])


def attach(*extra: tuple) -> None:
    """Put the methods of TensorMethods on Tensor and of TensorTupleMethods on TensorTuple
    (and those of every further ``(source, target)`` pair: needle.inplace's)."""
    pairs = ((TensorMethods, Tensor), (TensorTupleMethods, TensorTuple), *extra)
    for source, target in pairs:
        for name, value in vars(source).items():
            if name in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__"):
                continue
            setattr(target, name, value)
