"""Tensor and TensorTuple: the user's view of graph values, and the ops that make them.

A tensor holds its data raw (``_data``, an array of its device's namespace) and its device;
``cached_data`` shows it as the backend's boundary type. The operators (``+``, ``@``, ...)
and the op methods (``.sum()``, ``.reshape()``, ...) are attached by ``needle.ops`` when it
loads (``ops/tensor_methods.py``), and graph mode attaches how a placeholder prints
(``needle.graph``): this module imports neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy

from . import core
from ._fp import call_quietly
from .backend_ndarray import NDArray as _NDArray
from .backend_selection import NUMERIC_KINDS as _NUMERIC_KINDS
from .backend_selection import Device, default_device, tensor_dtype
from .core import PENDING, Op, Value, leaf, make_value, realize
from .core import compute_gradient_of_variables as _compute_gradients
from .errors import DeviceError, DTypeError, GraphError, ShapeError, device_unavailable
from .hooks import RemovableHandle, add_hook

__all__ = ["Tensor", "TensorTuple", "TensorOp", "TensorTupleOp", "check_device", "raw_tensor",
           "realize"]


def raw_tensor(data: Any, device: Any, requires_grad: bool = False) -> Tensor:
    """A leaf Tensor over ``data``, an array of ``device``'s namespace (no copy).

    With :func:`realize` (a tensor's raw array, computed if lazy) this is how code outside
    the ops (optimizers, data parallelism) reads and makes tensors without the boundary type.
    """
    return leaf(Tensor, data, device, requires_grad)


class TensorOp(Op):
    """Op class specialized to output tensors."""

    def __call__(self, *args: Any) -> Tensor:
        try:
            return make_value(Tensor, self, args)
        except AttributeError:
            _check_operands(self, args)
            raise


class TensorTupleOp(Op):
    """Op class specialized to output TensorTuple."""

    def __call__(self, *args: Any) -> TensorTuple:
        try:
            return make_value(TensorTuple, self, args)
        except AttributeError:
            _check_operands(self, args)
            raise


def _check_operands(op: Op, args: tuple) -> None:
    """DTypeError naming ``op`` when an operand is not a needle value (a numpy array or a
    list passed where a Tensor belongs). Only called after the fact, when the op failed, so
    the hot path pays nothing for it."""
    for i, arg in enumerate(args):
        if not isinstance(arg, Value):
            shape = getattr(arg, "shape", None)
            what = type(arg).__name__ + (f" of shape {tuple(shape)}" if shape is not None else "")
            raise DTypeError(f"{op.name}: operand {i} is not a needle Tensor (got {what}); wrap "
                             "it with ndl.Tensor(...) first") from None


def check_device(device: Any, where: str) -> None:
    """DeviceError unless ``device`` is a needle device that is enabled on this machine."""
    enabled = getattr(type(device), "enabled", None)
    if enabled is None:
        raise DeviceError(f"{where}: device must be a needle device such as ndl.cpu(), "
                          f"got {device!r} of type {type(device).__name__}")
    if not enabled(device):
        raise device_unavailable(device, where)


def _to_numpy_input(array: Any) -> numpy.ndarray:
    """Turn user input into a numeric numpy array, with a clear error for anything else."""
    if isinstance(array, numpy.ndarray):
        out = array
    else:
        try:
            out = numpy.asarray(array)
        except ValueError as e:
            raise ShapeError(
                f"Tensor: cannot build a tensor from ragged nested sequences ({e})"
            ) from None
    if out.dtype.kind not in _NUMERIC_KINDS:
        kind = {"U": "strings", "S": "bytes", "O": "Python objects (None or ragged lists?)",
                "c": "complex numbers"}.get(out.dtype.kind, f"dtype {out.dtype}")
        raise DTypeError(f"Tensor: cannot build a tensor from {kind}; needle holds real numbers")
    return out


def _reject_keywords(where: str, kwargs: dict, known: tuple) -> None:
    """A TypeError naming the first unknown keyword (and the known one it resembles)."""
    name = next(iter(kwargs))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TypeError(f"{where}() got an unexpected keyword argument {name!r}{hint}; "
                    f"it accepts {', '.join(known)}")


class TensorTuple(Value):
    """A tuple of tensors as one graph node (no nesting).

    ``__getitem__`` and ``__add__`` are attached by ``needle.ops``.
    """

    __slots__ = ()
    is_tuple = True

    def __len__(self) -> int:
        if self._data is None and self.op is not None and self.op.builds_tuple_of_inputs:
            return len(self.inputs)  # known without a value, also in graph mode
        return len(realize(self))

    def __iter__(self) -> Any:
        # Through len(): iterating by __getitem__ alone would never stop on a graph-mode
        # tuple, whose elements are built without being computed.
        return iter(self.tuple())

    def tuple(self) -> tuple:
        """The elements as a Python tuple of Tensors (each a ``TupleGetItem`` node)."""
        return tuple(self[i] for i in range(len(self)))

    @property
    def device(self) -> Any:
        """The device of the elements."""
        if self._device is PENDING:
            realize(self)
        return self._device

    def __repr__(self) -> str:
        return "needle.TensorTuple" + str(self.tuple())

    def __str__(self) -> str:
        return self.__repr__()

    def detach(self) -> TensorTuple:
        """Create a new tensor that shares the data but detaches from the graph."""
        realize(self)
        if core.TRACER is not None:  # [jit hook] the new leaf aliases this tuple's data
            core.TRACER.use(self)
        return leaf(TensorTuple, self._data, self._device)


class Tensor(Value):
    """An n-dimensional array that records the ops applied to it.

    Parameters
    ----------
    array : array_like, Tensor or NDArray
        The data. Nested lists, numpy arrays, Python or numpy scalars, backend arrays.
    device : Device, optional
        Where the data lives; defaults to the array's device or ``default_device()``.
    dtype : str or numpy dtype, optional
        ``None`` keeps the input's dtype on the numpy backend and gives float32 on the
        default ``nd`` backend (which also supports ``"float64"``).
    requires_grad : bool
        Whether ``backward()`` computes a gradient for this tensor.

    Raises
    ------
    TypeError
        For any other keyword argument (a typo such as ``requires_gard`` is not ignored).
    DeviceError
        ``device`` is not a needle device, or is not enabled (``ndl.cuda()`` without a GPU).
    """

    __slots__ = ()

    # Make numpy defer to Tensor's reflected operators (``ndarray + Tensor``).
    __array_ufunc__ = None

    def __init__(
        self,
        array: Any,
        *,
        device: Device | None = None,
        dtype: Any = None,
        requires_grad: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            _reject_keywords("Tensor", kwargs, ("device", "dtype", "requires_grad"))
        if device is not None:
            check_device(device, "Tensor")
        if isinstance(array, Tensor):
            data = realize(array)
            if device is None:
                device = array._device
            if dtype is None:
                dtype = data.dtype
            if device == array._device and numpy.dtype(dtype) == data.dtype:
                if core.TRACER is not None:  # [jit hook] the new leaf aliases array's data
                    core.TRACER.use(array)
                self._fill(data, array._device, requires_grad)
                return
            array = array.numpy()
        elif isinstance(array, _NDArray):
            if device is None:
                device = array.device
            array = array.numpy()
        device = device if device else default_device()
        self._fill(Tensor._array_from_numpy(array, device, dtype), device, requires_grad)

    def _fill(self, data: Any, device: Any, requires_grad: bool) -> None:
        self.op = None
        self.inputs = ()
        self._data = data
        self._device = device
        self.requires_grad = requires_grad
        if core.INPLACE_WRITES:
            self._epoch = core.INPLACE_WRITES
        if core.TRACER is not None:  # [jit hook] a leaf made inside a traced call
            core.TRACER.leaf(self)

    @staticmethod
    def _array_from_numpy(numpy_array: Any, device: Any, dtype: Any) -> Any:
        """A new array on ``device`` holding ``numpy_array`` (checked to be numeric) in the
        backend's dtype for it (see ``backend_selection.tensor_dtype``)."""
        if isinstance(numpy_array, _NDArray):
            numpy_array = numpy_array.numpy()
        data = _to_numpy_input(numpy_array)
        # Casting (float64 1e300 to float32) overflows to Inf quietly, as in the ops.
        return call_quietly(device.asarray, data, tensor_dtype(dtype, data.dtype))

    @staticmethod
    def make_const(data: Any, requires_grad: bool = False) -> Tensor:
        """A leaf Tensor holding ``data`` (a backend array or a Tensor's data), no copy."""
        if isinstance(data, Tensor):
            realize(data)
            if core.TRACER is not None:  # [jit hook] the new leaf aliases data's storage
                core.TRACER.use(data)
            return leaf(Tensor, data._data, data._device, requires_grad)
        tensor = Tensor.__new__(Tensor)
        tensor._init(None, (), cached_data=data, requires_grad=requires_grad)
        return tensor

    @staticmethod
    def make_from_op(op: Op, inputs: tuple) -> Tensor:
        """The node for ``op(*inputs)`` (computed at once in eager mode)."""
        return make_value(Tensor, op, tuple(inputs))

    # -- data access ---------------------------------------------------------------------------

    @property
    def data(self) -> Tensor:
        """A detached tensor sharing this tensor's storage; assigning replaces the storage."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        """A detached tensor sharing this tensor's storage; assigning replaces the storage."""
        if not isinstance(value, Tensor):
            raise DTypeError(f"Tensor.data: expected a Tensor, got {type(value).__name__}")
        old, new = realize(self), realize(value)
        if old.dtype != new.dtype:
            raise DTypeError(
                f"Tensor.data: dtype {new.dtype} differs from the tensor's {old.dtype}"
            )
        if old.size != new.size:
            raise ShapeError(
                f"Tensor.data: cannot assign shape {tuple(new.shape)} to a tensor of shape "
                f"{tuple(old.shape)} (sizes differ)"
            )
        if value._device != self._device:
            raise DeviceError(f"Tensor.data: device {value._device} differs from {self._device}")
        if core.TRACER is not None:  # [jit hook] a write to state that a replay must repeat
            core.TRACER.use(value)
            core.TRACER.wrote(self)
        # The one place ``.data`` is written.
        self._data = new

    def detach(self) -> Tensor:
        """Create a new tensor that shares the data but detaches from the graph."""
        data = realize(self)
        if core.TRACER is not None:  # [jit hook] the new leaf aliases this tensor's data
            core.TRACER.use(self)
        return leaf(Tensor, data, self._device)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self."""
        self.requires_grad = bool(requires_grad)
        return self

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` whenever a backward pass computes this tensor's gradient.

        The hook receives the tensor's total gradient of that pass (the sum over all its
        uses), before it is stored in ``.grad`` (leaves) or sent on to the inputs
        (non-leaves). If it returns a Tensor, that replaces the gradient from then on.
        Hooks run in registration order.

        Parameters
        ----------
        hook : callable
            ``hook(grad) -> Tensor or None``.

        Returns
        -------
        RemovableHandle
            ``handle.remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise GraphError(
                "register_hook: cannot register a hook on a tensor that does not require grad "
                f"(shape {self.shape})"
            )
        if self._grad_hooks is None:
            self._grad_hooks = {}
        return add_hook(self._grad_hooks, hook, "register_hook")

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after ``backward()`` (no-op on leaves)."""
        if not self.requires_grad:
            raise GraphError(
                "retain_grad: the tensor does not require grad, so it never gets a gradient"
            )
        if self.op is not None:
            self._retains_grad = True
            if self._grad_hooks is None:
                self._grad_hooks = {}  # the reverse pass checks this one attribute

    @property
    def retains_grad(self) -> bool:
        """Whether ``retain_grad()`` was called on this non-leaf tensor."""
        return self._retains_grad

    @property
    def shape(self) -> tuple:
        """The shape as a tuple of ints (computes a lazy tensor)."""
        data = self._data
        return tuple((data if data is not None else realize(self)).shape)

    @property
    def dtype(self) -> Any:
        """The data's dtype, e.g. ``float32``."""
        data = self._data
        return (data if data is not None else realize(self)).dtype

    @property
    def device(self) -> Any:
        """The device the data lives on, e.g. ``cpu()``."""
        if self._device is PENDING:
            realize(self)
        return self._device

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of elements."""
        return int(numpy.prod(self.shape))

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d tensor")
        return shape[0]

    def numpy(self) -> numpy.ndarray:
        """A numpy copy of the data."""
        if core.TRACER is not None:  # [jit hook] reading data into Python while tracing
            core.TRACER.read(self, "reads its value")
        data = realize(self)
        return self._device.to_numpy(data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __bool__(self) -> bool:
        # Python's own rule for objects with __len__ (so 0-d tensors raise TypeError);
        # defined only so that ``if t:`` inside a jitted function is caught.
        if core.TRACER is not None:  # [jit hook] a branch on a tensor's value while tracing
            core.TRACER.read(self, "is used as a condition (bool)")
        return len(self) != 0

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        return self.numpy().item()

    def __float__(self) -> float:
        return float(self.item())

    # -- autodiff -----------------------------------------------------------------------------

    def backward(self, out_grad: Tensor | None = None) -> None:
        """Compute gradients of this tensor w.r.t. every leaf that requires grad.

        Each call *sets* ``leaf.grad`` to this pass's gradient (Needle semantics). The
        gradient graph is recorded, so ``x.grad.backward()`` gives second derivatives.

        Parameters
        ----------
        out_grad : Tensor, optional
            The seed, of this tensor's shape; ones when omitted (also for non-scalars).
        """
        if not self.requires_grad:
            raise GraphError(
                "backward: this tensor does not require grad and has no graph "
                f"(shape {self.shape}); create its inputs with requires_grad=True"
            )
        data = realize(self)
        if out_grad is None:
            ones = self._device.xp.ones(data.shape, dtype=data.dtype)
            out_grad = leaf(Tensor, ones, self._device)
        elif not isinstance(out_grad, Tensor):
            out_grad = Tensor(out_grad, device=self.device, dtype=self.dtype, requires_grad=False)
        if out_grad.shape != self.shape:
            raise ShapeError(
                f"backward: out_grad has shape {out_grad.shape} but the tensor has shape "
                f"{self.shape}"
            )
        if numpy.dtype(out_grad.dtype) != numpy.dtype(self.dtype):
            raise DTypeError(
                f"backward: out_grad has dtype {out_grad.dtype} but the tensor has dtype "
                f"{self.dtype}"
            )
        _compute_gradients(self, out_grad)

    # -- printing -------------------------------------------------------------------------------

    # How a tensor without data prints in graph mode (``needle.graph`` sets it): a function
    # ``node -> str or None``; None means "not symbolic" (e.g. a lazy tensor).
    _symbolic_repr: Callable[[Value], str | None] | None = None

    def __repr__(self) -> str:
        if self._data is None and Tensor._symbolic_repr is not None:
            symbolic = Tensor._symbolic_repr(self)
            if symbolic is not None:
                return symbolic
        body = numpy.array2string(self.numpy(), separator=", ", prefix="needle.Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return (f"needle.Tensor({body}, shape={self.shape}, dtype={self.dtype}, "
                f"device={self.device}{extra})")

    def __str__(self) -> str:
        if self._data is None and Tensor._symbolic_repr is not None:
            if Tensor._symbolic_repr(self) is not None:
                return self.name
        return self.numpy().__str__()

    # Tensors are dict keys and compare by identity: __eq__/__hash__ stay the defaults.
    __hash__ = Value.__hash__
