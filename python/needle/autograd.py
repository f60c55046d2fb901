"""Core data structures: Value, Op, Tensor, the reverse-mode engine and grad modes.

The engine is tape-free in the usual sense: every op result remembers its ``op``
and ``inputs``, and ``backward()`` walks that graph in reverse topological order.
Nothing here recurses over the graph, so chains of 100,000 ops work.
"""

from __future__ import annotations

import functools
import operator
import os
import sys
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

import numpy

from . import _array
from ._dtype import scalar as _scalar_operand
from ._fp import call_quietly, quiet_compute, run_quietly
from .backend_selection import BACKEND, Device, NDArray, array_api, cpu, default_device
from .errors import DeviceError, DTypeError, GraphError, ShapeError, device_unavailable
from .hooks import RemovableHandle, add_hook

# When True, ops build nodes and compute only on ``realize_cached_data()``.
LAZY_MODE = False
# Number of live Values: +1 in ``Value._init``, -1 in ``Value.__del__``.
TENSOR_COUNTER = 0
# [jit hook] needle.jit's recorder while some thread traces a call, else None. The engine
# reports ops, new leaves, data writes and data reads to it; one global test when off.
_TRACER: Any = None
# In-place writes so far (needle.inplace): the clock that new Values remember in ``_epoch``;
# while it is 0 the engine skips every in-place check.
_INPLACE_WRITES = 0

__all__ = [
    "LAZY_MODE", "TENSOR_COUNTER", "NDArray", "array_api", "Op", "TensorOp", "TensorTupleOp",
    "Value", "Tensor", "TensorTuple", "find_topo_sort", "topo_sort_dfs",
    "compute_gradient_of_variables", "sum_node_list", "no_grad", "enable_grad",
    "set_grad_enabled", "is_grad_enabled", "detect_anomaly", "cpu", "Device", "queue_callback",
]


# ----------------------------------------------------------------------------------------------
# Grad mode (per thread, like PyTorch)


class _GradMode(threading.local):
    enabled = True


_GRAD_MODE = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops called now record the graph (False inside ``no_grad()``)."""
    return _GRAD_MODE.enabled


class set_grad_enabled:
    """Context manager and decorator that sets grad mode and restores the previous one.

    Parameters
    ----------
    mode : bool
        Whether ops record the graph inside the block.
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._previous: list[bool] = []

    def __enter__(self) -> set_grad_enabled:
        self._previous.append(_GRAD_MODE.enabled)
        _GRAD_MODE.enabled = self.mode
        return self

    def __exit__(self, *exc: Any) -> None:
        _GRAD_MODE.enabled = self._previous.pop()

    def __call__(self, fn: Callable) -> Callable:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


def _bare_decorator(cls: type, fn: Callable | None) -> Any:
    """``cls()(fn)`` when a mode class is used as ``@cls`` (no parentheses), else None."""
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"{cls.__name__}: expected a function to decorate (or no argument), "
                        f"got {type(fn).__name__}")
    return cls()(fn)


class no_grad(set_grad_enabled):
    """Disable graph recording: results are detached leaves.

    Use it as ``with ndl.no_grad():``, ``@ndl.no_grad()`` or ``@ndl.no_grad``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return _bare_decorator(cls, fn) or super().__new__(cls)

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable graph recording inside ``no_grad``.

    Use it as ``with ndl.enable_grad():``, ``@ndl.enable_grad()`` or ``@ndl.enable_grad``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return _bare_decorator(cls, fn) or super().__new__(cls)

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(True)


# ----------------------------------------------------------------------------------------------
# Anomaly detection

# Number of threads inside detect_anomaly(): a plain global so the hot path pays one
# lookup when it is off; the per-thread flag decides when it is on.
_ANOMALY_DEPTH = 0
_ANOMALY = threading.local()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class detect_anomaly:
    """Check every forward result and gradient for NaN/Inf (context manager or decorator).

    Inside the block, nodes remember the line of user code that created them, and the
    first op whose result or gradient holds NaN or Inf raises :class:`GraphError`
    naming the op, that creation site and the shapes. Off by default; free when off.
    Also ``@detect_anomaly`` and ``@detect_anomaly()``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return _bare_decorator(cls, fn) or super().__new__(cls)

    def __enter__(self) -> detect_anomaly:
        global _ANOMALY_DEPTH
        self._previous = getattr(_ANOMALY, "on", False)
        if not self._previous:
            _ANOMALY_DEPTH += 1
        _ANOMALY.on = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _ANOMALY_DEPTH
        _ANOMALY.on = self._previous
        if not self._previous:
            _ANOMALY_DEPTH -= 1

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return fn(*args, **kwargs)

        return wrapper


def _user_site() -> str:
    """file:line (function) of the innermost caller outside the needle package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _non_finite(data: Any) -> bool:
    parts = data if isinstance(data, tuple) else (data,)
    for part in parts:
        arr = _array.as_numpy(part)
        if arr.dtype.kind == "f" and not numpy.isfinite(arr).all():
            return True
    return False


def _describe(values: Iterable[Value]) -> str:
    return ", ".join(str(_shape_of(v.cached_data)) for v in values)


def _shape_of(data: Any) -> Any:
    if isinstance(data, tuple):
        return tuple(_shape_of(d) for d in data)
    return tuple(data.shape)


def _anomaly_check_forward(op: Op, inputs: tuple, value: Value) -> None:
    if not getattr(_ANOMALY, "on", False):
        return
    backward_of = getattr(_ANOMALY, "backward_of", None)
    if backward_of is None:
        value._creation_site = _user_site()
    if not _non_finite(value.cached_data):
        return
    bad_inputs = [i for i, x in enumerate(inputs) if _non_finite(x.cached_data)]
    how = (f"received NaN/Inf in input(s) {bad_inputs}" if bad_inputs
           else "produced NaN/Inf from finite inputs")
    shapes = (f"input shapes [{_describe(inputs)}], output shape "
              f"{_shape_of(value.cached_data)}")
    if backward_of is not None:
        raise GraphError(
            f"detect_anomaly: backward of {backward_of.op.name} (the node created at "
            f"{_site_of(backward_of)}, input shapes [{_describe(backward_of.inputs)}]): its "
            f"{op.name} step {how}; {shapes}"
        )
    raise GraphError(f"detect_anomaly: forward of {op.name} {how}; created at "
                     f"{value._creation_site}; {shapes}")


def _site_of(node: Value) -> str:
    return node.__dict__.get("_creation_site", "<created outside detect_anomaly>")


def _anomaly_gradient(node: Value, grad: Value) -> tuple:
    """``node.op.gradient_as_tuple`` with every step and result checked for NaN/Inf."""
    if not getattr(_ANOMALY, "on", False):
        return node.op.gradient_as_tuple(grad, node)
    previous = getattr(_ANOMALY, "backward_of", None)
    _ANOMALY.backward_of = node
    try:
        grads = node.op.gradient_as_tuple(grad, node)
    finally:
        _ANOMALY.backward_of = previous
    for i, g in enumerate(grads):
        if g is not None and g.cached_data is not None and _non_finite(g.cached_data):
            source = ("received a NaN/Inf gradient" if _non_finite(grad.cached_data)
                      else "produced NaN/Inf")
            raise GraphError(
                f"detect_anomaly: backward of {node.op.name} {source} for input {i}; the node "
                f"was created at {_site_of(node)}; input shapes [{_describe(node.inputs)}], "
                f"gradient shape {_shape_of(g.cached_data)}"
            )
    return grads


# ----------------------------------------------------------------------------------------------
# Ops


class Op:
    """Operator definition: ``compute`` on arrays, ``gradient`` with needle ops."""

    # Set by TupleGetItem: the engine then accumulates tuple adjoints element-wise.
    tuple_index: int | None = None

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError()

    def compute(self, *args: Any) -> Any:
        """Calculate the forward pass of the operator on backend arrays."""
        raise NotImplementedError()

    def gradient(self, out_grad: Value, node: Value) -> Value | tuple[Value | None, ...]:
        """Vector-Jacobian product for each input, built from needle ops (None: no gradient)."""
        raise NotImplementedError()

    def gradient_as_tuple(self, out_grad: Value, node: Value) -> tuple:
        """Convenience method to always return a tuple from the gradient call."""
        output = self.gradient(out_grad, node)
        if isinstance(output, tuple):
            return output
        if isinstance(output, list):
            return tuple(output)
        return (output,)

    @property
    def name(self) -> str:
        """The op's class name, e.g. ``EWiseAdd`` (shown in errors and pictures)."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.name


class TensorOp(Op):
    """Op class specialized to output tensors."""

    def __call__(self, *args: Any) -> Tensor:
        return Tensor.make_from_op(self, args)


class TensorTupleOp(Op):
    """Op class specialized to output TensorTuple."""

    def __call__(self, *args: Any) -> TensorTuple:
        return TensorTuple.make_from_op(self, args)


# ----------------------------------------------------------------------------------------------
# Values


_CHECK_DEVICES = BACKEND == "nd"  # the numpy backend has a single device


def _check_devices(op: Op, arrays: list) -> None:
    first = arrays[0]
    if isinstance(first, tuple):
        return
    dev = first._device
    for a in arrays[1:]:
        # Devices are shared instances: the identity test settles the common case cheaply.
        if a._device is not dev and not isinstance(a, tuple) and a._device != dev:
            raise DeviceError(
                f"{op.name}: operands are on different devices ({dev} and {a._device}); "
                "move them with Tensor(x, device=...) first"
            )


class Value:
    """A node in the computational graph: an op applied to inputs, or a leaf."""

    # _epoch and _view: in-place bookkeeping (needle.inplace), set only when needed.
    __slots__ = ("op", "inputs", "cached_data", "requires_grad", "_epoch", "_view",
                 "__weakref__", "__dict__")
    num_outputs = 1
    # Gradient hooks ({handle id: fn}) and retain_grad; class defaults keep op results lean.
    _grad_hooks: dict | None = None
    _retains_grad = False

    op: Op | None
    inputs: tuple
    cached_data: Any
    requires_grad: bool

    def realize_cached_data(self) -> Any:
        """Run compute to realize the cached data (iteratively, for lazy graphs)."""
        if self.cached_data is not None:
            return self.cached_data
        for node in _unrealized_topo_order(self):
            if node.op is None:
                raise GraphError(
                    "a placeholder has no value: feed it through graph.Evaluator.run(...)"
                )
            node.cached_data = call_quietly(node.op.compute, *[x.cached_data for x in node.inputs])
        return self.cached_data

    def is_leaf(self) -> bool:
        """Whether this node was created directly (no op), not computed from inputs."""
        return self.op is None

    def __del__(self) -> None:
        global TENSOR_COUNTER
        TENSOR_COUNTER -= 1

    def _init(
        self,
        op: Op | None,
        inputs: Iterable[Value],
        *,
        num_outputs: int = 1,
        cached_data: Any = None,
        requires_grad: bool | None = None,
    ) -> None:
        global TENSOR_COUNTER
        TENSOR_COUNTER += 1
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        if num_outputs != 1:
            self.num_outputs = num_outputs
        self.cached_data = cached_data
        self.requires_grad = requires_grad
        if _TRACER is not None:  # [jit hook] a leaf made inside a traced call
            _TRACER.leaf(self)
        if _INPLACE_WRITES:
            self._epoch = _INPLACE_WRITES

    @classmethod
    def make_const(cls, data: Any, *, requires_grad: bool = False) -> Value:
        """A leaf holding ``data`` (a backend array), with no op and no inputs."""
        value = cls.__new__(cls)
        value._init(None, (), cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: tuple) -> Value:
        """Create the node for ``op(*inputs)``; in eager mode compute it at once.

        A result that needs no gradient (nothing requires grad, or grad mode is off) is
        returned as a detached leaf, so no graph is kept alive behind it.
        """
        arrays = []
        requires_grad = False
        for x in inputs:
            data = x.cached_data
            if data is None or LAZY_MODE:
                return cls._make_lazy(op, inputs)
            arrays.append(data)
            if x.requires_grad:
                requires_grad = True
        if _CHECK_DEVICES and len(arrays) > 1:
            _check_devices(op, arrays)
        # numpy's FP warnings off (needle._fp); the except costs nothing until it is taken.
        try:
            data = run_quietly(op.compute, *arrays)
        except RuntimeError as e:
            data = quiet_compute(e, op.compute, *arrays)
        # This is the hot path of every op: set the fields directly instead of _init.
        global TENSOR_COUNTER
        TENSOR_COUNTER += 1
        value = object.__new__(cls)
        if requires_grad and _GRAD_MODE.enabled:
            value.op = op
            value.inputs = inputs
            value.requires_grad = True
        else:
            value.op = None
            value.inputs = ()
            value.requires_grad = False
        value.cached_data = data
        if _INPLACE_WRITES:
            value._epoch = _INPLACE_WRITES
        if _ANOMALY_DEPTH:
            _anomaly_check_forward(op, inputs, value)
        if _TRACER is not None:  # [jit hook] record the op of a traced call
            _TRACER.op(op, inputs, value)
        return value

    @classmethod
    def _make_lazy(cls, op: Op, inputs: tuple) -> Value:
        """Build a node without computing it (lazy mode, or a placeholder among the inputs)."""
        value = object.__new__(cls)
        requires_grad = _GRAD_MODE.enabled and any(x.requires_grad for x in inputs)
        value._init(op, inputs, requires_grad=requires_grad)
        return value


class TensorTuple(Value):
    """A tuple of tensors as one graph node (no nesting)."""

    __slots__ = ()

    def __len__(self) -> int:
        if self.cached_data is None and isinstance(self.op, needle_ops.MakeTensorTuple):
            return len(self.inputs)  # known without a value, also in graph mode
        return len(self.realize_cached_data())

    def __getitem__(self, index: int) -> Tensor:
        from .ops import tuple_get_item

        return tuple_get_item(self, index)

    def __iter__(self) -> Any:
        # Through len(): iterating by __getitem__ alone would never stop on a graph-mode
        # tuple, whose elements are built without being computed.
        return iter(self.tuple())

    def tuple(self) -> tuple:
        """The elements as a Python tuple of Tensors (each a ``TupleGetItem`` node)."""
        return tuple(self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return "needle.TensorTuple" + str(self.tuple())

    def __str__(self) -> str:
        return self.__repr__()

    def __add__(self, other: TensorTuple) -> TensorTuple:
        from .ops import make_tuple

        if not isinstance(other, TensorTuple) or len(self) != len(other):
            raise ShapeError("TensorTuple +: needs another TensorTuple of the same length")
        return make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self) -> TensorTuple:
        """Create a new tensor that shares the data but detaches from the graph."""
        if _TRACER is not None:  # [jit hook] the new leaf aliases this tuple's data
            _TRACER.use(self)
        return TensorTuple.make_const(self.realize_cached_data())


def _check_float_dtype(dtype: Any, where: str) -> None:
    if numpy.dtype(dtype).kind not in _array.NUMERIC_KINDS:
        raise DTypeError(f"{where}: unsupported dtype {dtype}; use a bool, int or float dtype")


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
    if out.dtype.kind not in _array.NUMERIC_KINDS:
        kind = {"U": "strings", "S": "bytes", "O": "Python objects (None or ragged lists?)",
                "c": "complex numbers"}.get(out.dtype.kind, f"dtype {out.dtype}")
        raise DTypeError(f"Tensor: cannot build a tensor from {kind}; needle holds real numbers")
    return out


def _reject_keywords(where: str, kwargs: dict, known: tuple) -> None:
    """A TypeError naming the first unknown keyword (and the known one it resembles)."""
    import difflib

    name = next(iter(kwargs))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise TypeError(f"{where}() got an unexpected keyword argument {name!r}{hint}; "
                    f"it accepts {', '.join(known)}")


def _check_device(device: Any, where: str) -> None:
    """DeviceError unless ``device`` is a needle device that is enabled on this machine."""
    enabled = getattr(type(device), "enabled", None)
    if enabled is None:
        raise DeviceError(f"{where}: device must be a needle device such as ndl.cpu(), "
                          f"got {device!r} of type {type(device).__name__}")
    if not enabled(device):
        raise device_unavailable(device, where)


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
    # A class default, so op results need not set it; assigning stores it per tensor.
    grad: Tensor | None = None

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
            _check_device(device, "Tensor")
        if isinstance(array, Tensor):
            if device is None:
                device = array.device
            if dtype is None:
                dtype = array.dtype
            data = array.realize_cached_data()
            if device == array.device and numpy.dtype(dtype) == numpy.dtype(array.dtype):
                if _TRACER is not None:  # [jit hook] the new leaf aliases array's data
                    _TRACER.use(array)
                cached_data = data
            else:
                cached_data = Tensor._array_from_numpy(array.numpy(), device=device, dtype=dtype)
        else:
            if device is None:
                device = array.device if isinstance(array, NDArray) and BACKEND == "nd" else None
            device = device if device else default_device()
            cached_data = Tensor._array_from_numpy(array, device=device, dtype=dtype)
        self._init(None, (), cached_data=cached_data, requires_grad=requires_grad)

    @staticmethod
    def _array_from_numpy(numpy_array: Any, device: Any, dtype: Any) -> Any:
        if BACKEND == "nd" and isinstance(numpy_array, NDArray):
            numpy_array = numpy_array.numpy()
        # Casting (float64 1e300 to float32) overflows to Inf quietly, as in the ops.
        if array_api is numpy:
            data = _to_numpy_input(numpy_array)
            if dtype is not None:
                _check_float_dtype(dtype, "Tensor")
            return call_quietly(numpy.array, data, dtype)
        data = _to_numpy_input(numpy_array)
        return call_quietly(functools.partial(array_api.array, device=device, dtype=dtype), data)

    @staticmethod
    def make_const(data: Any, requires_grad: bool = False) -> Tensor:
        """A leaf Tensor holding ``data`` (a backend array or a Tensor's data)."""
        tensor = Tensor.__new__(Tensor)
        if isinstance(data, Tensor):
            if _TRACER is not None:  # [jit hook] the new leaf aliases data's storage
                _TRACER.use(data)
            data = data.realize_cached_data()
        tensor._init(None, (), cached_data=data, requires_grad=requires_grad)
        return tensor

    # -- data access ---------------------------------------------------------------------------

    @property
    def data(self) -> Tensor:
        """A detached tensor sharing this tensor's storage; assigning replaces the storage."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise DTypeError(f"Tensor.data: expected a Tensor, got {type(value).__name__}")
        if numpy.dtype(value.dtype) != numpy.dtype(self.dtype):
            raise DTypeError(
                f"Tensor.data: dtype {value.dtype} differs from the tensor's {self.dtype}"
            )
        old, new = self.realize_cached_data(), value.realize_cached_data()
        if old.size != new.size:
            raise ShapeError(
                f"Tensor.data: cannot assign shape {tuple(new.shape)} to a tensor of shape "
                f"{tuple(old.shape)} (sizes differ)"
            )
        if BACKEND == "nd" and old._device != new._device:
            raise DeviceError(f"Tensor.data: device {new._device} differs from {old._device}")
        if _TRACER is not None:  # [jit hook] a write to state that a replay must repeat
            _TRACER.use(value)
            _TRACER.wrote(self)
        self.cached_data = new

    def detach(self) -> Tensor:
        """Create a new tensor that shares the data but detaches from the graph."""
        if _TRACER is not None:  # [jit hook] the new leaf aliases this tensor's data
            _TRACER.use(self)
        return Tensor.make_const(self.realize_cached_data())

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

    @property
    def retains_grad(self) -> bool:
        """Whether ``retain_grad()`` was called on this non-leaf tensor."""
        return self._retains_grad

    @property
    def shape(self) -> tuple:
        """The shape as a tuple of ints (computes a lazy tensor)."""
        return tuple(self.realize_cached_data().shape)

    @property
    def dtype(self) -> Any:
        """The data's dtype, e.g. ``float32``."""
        return self.realize_cached_data().dtype

    @property
    def device(self) -> Any:
        """The device the data lives on, e.g. ``cpu()``."""
        data = self.realize_cached_data()
        if array_api is numpy:
            return cpu()
        return data.device

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
        if _TRACER is not None:  # [jit hook] reading data into Python while tracing
            _TRACER.read(self, "reads its value")
        data = self.realize_cached_data()
        if array_api is numpy:
            return numpy.array(data)
        return data.numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __bool__(self) -> bool:
        # Python's own rule for objects with __len__ (so 0-d tensors raise TypeError);
        # defined only so that ``if t:`` inside a jitted function is caught.
        if _TRACER is not None:  # [jit hook] a branch on a tensor's value while tracing
            _TRACER.read(self, "is used as a condition (bool)")
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
        if out_grad is None:
            data = self.realize_cached_data()
            out_grad = Tensor.make_const(_array.wrap(numpy.ones(data.shape, data.dtype), data))
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
        compute_gradient_of_variables(self, out_grad)

    # -- printing -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """A readable name built from the graph, e.g. ``(x1*x2)`` (see ``needle.graph``)."""
        from .graph import node_name

        return node_name(self)

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_name"] = str(value)

    def __repr__(self) -> str:
        if self.cached_data is None:
            from .graph import symbolic_repr

            symbolic = symbolic_repr(self)
            if symbolic is not None:
                return symbolic
        body = numpy.array2string(self.numpy(), separator=", ", prefix="needle.Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return (f"needle.Tensor({body}, shape={self.shape}, dtype={self.dtype}, "
                f"device={self.device}{extra})")

    def __str__(self) -> str:
        if self.cached_data is None:
            from .graph import symbolic_repr

            if symbolic_repr(self) is not None:
                return self.name
        return self.numpy().__str__()

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

    def __add__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseAdd()(self, other)
        return needle_ops.AddScalar(other)(self)

    __radd__ = __add__

    def __mul__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseMul()(self, other)
        return needle_ops.MulScalar(other)(self)

    __rmul__ = __mul__

    def __pow__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWisePow()(self, other)
        return needle_ops.PowerScalar(other)(self)

    def __rpow__(self, other: Any) -> Tensor:
        base = self._as_operand(other)
        if not isinstance(base, Tensor):
            # A scalar base keeps the tensor's dtype (a float base of an integer tensor
            # gives numpy's float64, as ``int_tensor * 0.5`` does).
            kind_ok = numpy.dtype(self.dtype).kind == "f" or isinstance(base, int)
            base = Tensor(numpy.asarray(base), device=self.device,
                          dtype=self.dtype if kind_ok else numpy.float64, requires_grad=False)
        return needle_ops.EWisePow()(base, self)

    def __sub__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseAdd()(self, needle_ops.Negate()(other))
        return needle_ops.AddScalar(-other)(self)

    def __rsub__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseAdd()(other, needle_ops.Negate()(self))
        return needle_ops.AddScalar(other)(needle_ops.Negate()(self))

    def __truediv__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseDiv()(self, other)
        return needle_ops.DivScalar(other)(self)

    def __rtruediv__(self, other: Any) -> Tensor:
        other = self._as_operand(other)
        if isinstance(other, Tensor):
            return needle_ops.EWiseDiv()(other, self)
        return needle_ops.MulScalar(other)(needle_ops.PowerScalar(-1)(self))

    def __matmul__(self, other: Any) -> Tensor:
        return needle_ops.MatMul()(self, self._as_operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return needle_ops.MatMul()(self._as_operand(other), self)

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product ``self @ other``."""
        return needle_ops.MatMul()(self, other)

    def __neg__(self) -> Tensor:
        return needle_ops.Negate()(self)

    def __abs__(self) -> Tensor:
        return needle_ops.abs(self)

    def __gt__(self, other: Any) -> Tensor:
        return needle_ops.greater(self, self._as_operand(other))

    def __ge__(self, other: Any) -> Tensor:
        return needle_ops.greater_equal(self, self._as_operand(other))

    def __lt__(self, other: Any) -> Tensor:
        return needle_ops.less(self, self._as_operand(other))

    def __le__(self, other: Any) -> Tensor:
        return needle_ops.less_equal(self, self._as_operand(other))

    def __getitem__(self, index: Any) -> Tensor:
        return needle_ops.get_item(self, index)

    # -- in-place ops (needle.inplace): write into this tensor's storage -----------------------

    def __setitem__(self, index: Any, value: Any) -> None:
        """``x[index] = value`` in place, differentiable w.r.t. ``x`` and ``value``.

        ``index`` is anything ``x[index]`` accepts (ints, slices, None, ``...``, integer or
        boolean numpy arrays); ``value`` (a Tensor, array or scalar) is broadcast to the
        selection and cast to ``x``'s dtype. Views sharing the storage see the change.

        Raises
        ------
        GraphError
            On a leaf that requires grad outside ``no_grad()``, or on a graph-mode
            placeholder (in-place ops are not supported on placeholders).
        """
        _inplace.setitem(self, index, value)

    def add_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        """``self += alpha * other`` in place (``other`` broadcasts to ``self``); returns self.

        Like every in-place op: the result is cast to ``self``'s dtype and written into its
        storage, so views see it; if a tensor saved for a gradient is overwritten this way,
        ``backward()`` raises :class:`GraphError`. A leaf that requires grad may only be
        modified inside ``no_grad()``; placeholders (graph mode) raise GraphError.
        """
        return _inplace.add_(self, other, alpha)

    def sub_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        """``self -= alpha * other`` in place; returns self (see :meth:`add_`)."""
        return _inplace.sub_(self, other, alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; returns self (see :meth:`add_`)."""
        return _inplace.mul_(self, other)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place; returns self (see :meth:`add_`)."""
        return _inplace.div_(self, other)

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value`` (a scalar or 0-d tensor) in place; returns self."""
        return _inplace.fill_(self, value)

    def zero_(self) -> Tensor:
        """Set every element to 0 in place; returns self."""
        return _inplace.zero_(self)

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast to ``self``'s shape, cast to its dtype) in place."""
        return _inplace.copy_(self, src)

    def __iadd__(self, other: Any) -> Tensor:
        return _inplace.add_(self, other)

    def __isub__(self, other: Any) -> Tensor:
        return _inplace.sub_(self, other)

    def __imul__(self, other: Any) -> Tensor:
        return _inplace.mul_(self, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return _inplace.div_(self, other)

    @property
    def _version(self) -> int:
        """Number of in-place writes to this tensor's storage (shared by its views)."""
        return _inplace.version(self)

    # Tensors are dict keys and compare by identity: __eq__/__hash__ stay the defaults.
    __hash__ = Value.__hash__

    # -- methods --------------------------------------------------------------------------------

    # Reductions take Needle's axes/keepdims or PyTorch's dim/keepdim (not both).

    def sum(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """Sum over ``axes`` (None: all); see :func:`needle.ops.summation`."""
        return needle_ops.summation(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
             keepdim: bool | None = None) -> Tensor:
        """Mean over ``axes`` (None: all); see :func:`needle.ops.mean`."""
        return needle_ops.mean(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """The maximum values over ``axes`` (no indices, also with ``dim``: Needle semantics)."""
        return needle_ops.max(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def logsumexp(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
                  keepdim: bool | None = None) -> Tensor:
        """Log-sum-exp over ``axes``; see :func:`needle.ops.logsumexp`."""
        return needle_ops.logsumexp(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """Softmax along ``axis`` (or ``dim``)."""
        return needle_ops.softmax(self, axis, dim=dim)

    def logsoftmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        """Log-softmax along ``axis`` (or ``dim``)."""
        return needle_ops.logsoftmax(self, axis, dim=dim)

    @property
    def T(self) -> Tensor:
        """All axes reversed, like ``numpy.ndarray.T`` (a 0-d or 1-d tensor is unchanged)."""
        return needle_ops.Permute(None)(self)

    @property
    def mT(self) -> Tensor:
        """The last two axes swapped (a batch of matrices, each transposed)."""
        return needle_ops.Transpose(None)(self)

    def broadcast_to(self, shape: tuple) -> Tensor:
        """Broadcast to ``shape`` (numpy rules)."""
        return needle_ops.BroadcastTo(shape)(self)

    def reshape(self, *shape: Any) -> Tensor:
        """The same elements in a new shape: ``x.reshape((2, 3))`` or ``x.reshape(2, 3)``."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return needle_ops.Reshape(shape)(self)

    def transpose(self, axes: tuple | None = None) -> Tensor:
        """Swap two axes (the last two when ``axes`` is None)."""
        return needle_ops.Transpose(axes)(self)

    def permute(self, *axes: Any) -> Tensor:
        """Reorder the axes: ``x.permute(2, 0, 1)`` or ``x.permute((2, 0, 1))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return needle_ops.permute(self, axes)

    def exp(self) -> Tensor:
        """Element-wise ``exp``."""
        return needle_ops.exp(self)

    def log(self) -> Tensor:
        """Element-wise natural logarithm."""
        return needle_ops.log(self)

    def relu(self) -> Tensor:
        """Element-wise ``max(x, 0)``."""
        return needle_ops.relu(self)

    def tanh(self) -> Tensor:
        """Element-wise hyperbolic tangent."""
        return needle_ops.tanh(self)

    def sigmoid(self) -> Tensor:
        """Element-wise logistic function."""
        return needle_ops.sigmoid(self)

    def sqrt(self) -> Tensor:
        """Element-wise square root."""
        return needle_ops.sqrt(self)

    # -- methods of the ops in ops_select, ops_reduce, ops_shape, ops_trig ---------------------

    def sin(self) -> Tensor:
        """Element-wise sine."""
        return needle_ops.sin(self)

    def cos(self) -> Tensor:
        """Element-wise cosine."""
        return needle_ops.cos(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Limit values to ``[min, max]`` (either bound may be None): :func:`ops.clamp`."""
        return needle_ops.clamp(self, min, max)

    clip = clamp

    def min(self, axes: Any = None, keepdims: bool = False, *, dim: Any = None,
            keepdim: bool | None = None) -> Tensor:
        """Minimum over ``axes`` (None: all); ties share the gradient, as in ``max``."""
        return needle_ops.min(self, axes, keepdims, dim=dim, keepdim=keepdim)

    def var(self, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
            dim: Any = None, keepdim: bool | None = None) -> Tensor:
        """Variance over ``axes`` with PyTorch's ``correction`` (1: the unbiased estimate)."""
        return needle_ops.var(self, axes, correction, keepdims, dim=dim, keepdim=keepdim)

    def std(self, axes: Any = None, correction: float = 1, keepdims: bool = False, *,
            dim: Any = None, keepdim: bool | None = None) -> Tensor:
        """Standard deviation over ``axes``: the square root of :meth:`var`."""
        return needle_ops.std(self, axes, correction, keepdims, dim=dim, keepdim=keepdim)

    def argmax(self, axis: int | None = None, keepdims: bool = False, *,
               dim: int | None = None, keepdim: bool | None = None) -> Tensor:
        """Index of the maximum along ``axis`` (None: of the flattened tensor); no gradient."""
        return needle_ops.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmin(self, axis: int | None = None, keepdims: bool = False, *,
               dim: int | None = None, keepdim: bool | None = None) -> Tensor:
        """Index of the minimum along ``axis`` (None: of the flattened tensor); no gradient."""
        return needle_ops.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def squeeze(self, axis: Any = None, *, dim: Any = None) -> Tensor:
        """Drop size-1 axes (``axis`` None: all of them)."""
        return needle_ops.squeeze(self, axis, dim=dim)

    def unsqueeze(self, axis: Any = None, *, dim: Any = None) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return needle_ops.unsqueeze(self, axis, dim=dim)

    def gather(self, axis: int | None = None, index: Any = None, *,
               dim: int | None = None) -> Tensor:
        """Pick values along ``axis`` at ``index``, as PyTorch's ``gather`` does."""
        return needle_ops.gather(self, axis, index, dim=dim)


# ----------------------------------------------------------------------------------------------
# Graph traversal and the reverse pass


def find_topo_sort(node_list: Iterable[Value]) -> list[Value]:
    """Topological order of the graph behind ``node_list`` (inputs before users).

    The order is that of a post-order depth-first search that visits inputs left to
    right, done with an explicit stack so that deep graphs do not recurse.
    """
    visited: set = set()
    topo_order: list = []
    if _INPLACE_WRITES:
        node_list = list(node_list)
        _inplace.resolve_graph(node_list)
    for node in node_list:
        topo_sort_dfs(node, visited, topo_order)
    return topo_order


def topo_sort_dfs(node: Value, visited: set, topo_order: list) -> None:
    """Post-order DFS from ``node``, appending unvisited nodes to ``topo_order``."""
    if node in visited:
        return
    visited.add(node)
    stack = [(node, iter(node.inputs))]
    while stack:
        current, children = stack[-1]
        for child in children:
            if child not in visited:
                visited.add(child)
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            topo_order.append(current)


def _unrealized_topo_order(root: Value) -> list[Value]:
    """Topological order of the nodes behind ``root`` that still need computing."""
    visited: set = {root}
    order: list = []
    stack = [(root, iter(root.inputs))]
    while stack:
        current, children = stack[-1]
        for child in children:
            if child not in visited and child.cached_data is None:
                visited.add(child)
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(current)
    return order


def sum_node_list(node_list: list[Value]) -> Value:
    """Sum the partial adjoints of a node, without a redundant zero node."""
    total = node_list[0]
    for node in node_list[1:]:
        total = total + node
    return total


class _TupleSlot:
    """A partial adjoint of a TensorTuple that only concerns element ``index``."""

    __slots__ = ("index", "grad")

    def __init__(self, index: int, grad: Value) -> None:
        self.index = index
        self.grad = grad


def _sum_partials(node: Value, partials: list) -> Value:
    """Sum a node's partial adjoints; for a tuple, combine element slots by index."""
    if node.cached_data is None and isinstance(node, TensorTuple):
        # Graph mode: the tuple's length is known only at run time, so one op combines
        # the element slots and whole-tuple partials when the graph is evaluated.
        slots = [p for p in partials if isinstance(p, _TupleSlot)]
        whole = [p for p in partials if not isinstance(p, _TupleSlot)]
        return needle_ops.TupleAdjoint(tuple(p.index for p in slots), len(whole))(
            node, *[p.grad for p in slots], *whole)
    if not any(isinstance(p, _TupleSlot) for p in partials):
        return sum_node_list(partials)
    n = len(node)
    by_index: list[list] = [[] for _ in range(n)]
    for p in partials:
        if isinstance(p, _TupleSlot):
            by_index[p.index % n].append(p.grad)
        else:
            for i in range(n):
                by_index[i].append(p[i])
    return needle_ops.make_tuple(*[
        sum_node_list(parts) if parts else needle_ops.zeros_like(node[i])
        for i, parts in enumerate(by_index)
    ])


def _count_users(output: Value) -> dict:
    """For each node behind ``output`` that requires grad, how many edges lead into it."""
    pending: dict = {}
    stack = [output]
    while stack:
        node = stack.pop()
        for inp in node.inputs:
            if inp.requires_grad:
                if inp in pending:
                    pending[inp] += 1
                else:
                    pending[inp] = 1
                    stack.append(inp)
    return pending


# An array's numpy dtype, read in C (NDArray.dtype is a Python property).
_dtype_of = operator.attrgetter("_np.dtype" if BACKEND == "nd" else "dtype")


def _in_dtype_of(grad: Value, inp: Value) -> Value:
    """``grad`` as a gradient of ``inp``: cast to ``inp``'s dtype when that is a float dtype.

    With both computed this is decided now (no node when the dtypes agree); in graph and
    lazy mode a ``CastLike`` node decides when it is computed. Tuples are cast element by
    element, where their elements reach the tensors they were made of; an integer or bool
    input keeps its gradient's (float) dtype.
    """
    gd, xd = grad.cached_data, inp.cached_data
    if gd is None or xd is None:
        if isinstance(inp, TensorTuple) or isinstance(grad, TensorTuple):
            return grad
        return needle_ops.CastLike()(grad, inp)
    if gd.__class__ is tuple or xd.__class__ is tuple:
        return grad
    target = _dtype_of(xd)
    if target.kind != "f" or _dtype_of(gd) == target:
        return grad
    return needle_ops.CastLike()(grad, inp)


def reverse_pass(output: Value, out_grad: Value, wanted: Collection[Value] | None = None) -> dict:
    """Propagate ``out_grad`` from ``output``; return the adjoints of the ``wanted`` nodes.

    ``wanted=None`` means every leaf that requires grad. Partial adjoints from all paths
    are summed once per node. Only nodes that require grad are visited, and an op may
    return None for an input that needs no gradient. Nodes are processed in a reverse
    topological order found by counting, for each node, the users that still have to
    send it their partial adjoint (Kahn's algorithm): cheaper than a depth-first search
    and free of recursion. Every partial adjoint is brought to its input's dtype here,
    for every op (the dtype rule, ``needle._dtype``).
    """
    checked = _INPLACE_WRITES and _inplace.prepare(output)
    pending = _count_users(output)
    partials: dict = {output: [out_grad]}
    result: dict = {}
    ready = [output]
    while ready:
        node = ready.pop()
        node_partials = partials.pop(node, None)
        grads: Any = ()
        if node_partials is not None:
            if len(node_partials) == 1 and node_partials[0].__class__ is not _TupleSlot:
                grad = node_partials[0]
            else:
                grad = _sum_partials(node, node_partials)
            if node._grad_hooks is not None or node._retains_grad:
                grad = _apply_grad_hooks(node, grad)
            op = node.op
            if node in wanted if wanted is not None else op is None:
                result[node] = grad
            if op is None:
                pass
            elif op.tuple_index is not None:
                # An element of a tuple: pass the gradient on as (index, grad) and build
                # the tuple's adjoint once, instead of one mostly-zero tuple per element.
                grads = (_TupleSlot(op.tuple_index, grad),)
            elif checked:
                grads = _inplace.checked_gradient(node, grad, _anomaly_gradient)
            elif _ANOMALY_DEPTH:
                grads = _anomaly_gradient(node, grad)
            else:
                grads = op.gradient(grad, node)
                if grads.__class__ is not tuple:
                    grads = tuple(grads) if isinstance(grads, list) else (grads,)
        for i, inp in enumerate(node.inputs):
            if not inp.requires_grad:
                continue
            g = grads[i] if grads else None
            if g is not None:
                if g.__class__ is not _TupleSlot:
                    # The dtype rule: each input's gradient in that input's dtype (see
                    # _in_dtype_of); the fast path is two C attribute reads.
                    gd, xd = g.cached_data, inp.cached_data
                    if gd is None or xd is None or (
                            gd.__class__ is not tuple and _dtype_of(gd) is not _dtype_of(xd)):
                        g = _in_dtype_of(g, inp)
                if inp in partials:
                    partials[inp].append(g)
                else:
                    partials[inp] = [g]
            pending[inp] -= 1
            if pending[inp] == 0:
                ready.append(inp)
    if _INPLACE_WRITES and any(pending.values()):
        raise GraphError("backward: the graph has a cycle (in-place bookkeeping went wrong); "
                         "please report this with the code that built the graph")
    return result


def _apply_grad_hooks(node: Value, grad: Value) -> Value:
    """Run ``node``'s gradient hooks on its total gradient; keep it if it retains grad."""
    for hook in list((node._grad_hooks or {}).values()):
        replaced = hook(grad)
        if replaced is None:
            continue
        if not isinstance(replaced, Tensor):
            raise GraphError(
                f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned "
                f"{type(replaced).__name__}; return a Tensor or None"
            )
        if replaced.shape != grad.shape:
            raise ShapeError(
                f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned shape "
                f"{replaced.shape} for a gradient of shape {grad.shape}"
            )
        grad = replaced
    if node._retains_grad:
        node.grad = grad
    return grad


class _Callbacks(threading.local):
    stack: list | None = None


_CALLBACKS = _Callbacks()


def queue_callback(fn: Callable[[], Any]) -> None:
    """Run ``fn()`` once the current ``backward()`` has set every ``.grad``.

    Meant for gradient hooks that start work (e.g. a non-blocking allreduce) and must
    finish it before the user sees the gradients. Only valid during ``backward()``.
    """
    stack = _CALLBACKS.stack
    if not stack:
        raise GraphError("queue_callback: only valid inside backward() (e.g. from a hook)")
    if _TRACER is not None:  # [jit hook] a callback is Python that a replay would not run
        _TRACER.callback(fn)
    stack[-1].append(fn)


class _BackwardRecord(threading.local):
    # A callable(output, adjoints) set by ``needle.viz.record_backward()``; None: off.
    sink = None


_BACKWARD_RECORD = _BackwardRecord()


class _EveryNode:
    """A ``wanted`` collection for :func:`reverse_pass` that holds every node."""

    def __contains__(self, node: object) -> bool:
        return True


def compute_gradient_of_variables(output_tensor: Tensor, out_grad: Tensor) -> None:
    """Set ``.grad`` of every leaf under ``output_tensor`` that requires grad.

    ``.grad`` is assigned (not accumulated): each backward pass sets its own total.
    Callbacks queued by hooks (``queue_callback``) run afterwards, in order. Inside
    ``needle.viz.record_backward()`` the adjoint of every node is also handed to the
    recorder (one thread-local lookup per call when off, nothing per node).
    """
    if _CALLBACKS.stack is None:
        _CALLBACKS.stack = []
    callbacks: list = []
    _CALLBACKS.stack.append(callbacks)
    try:
        sink = _BACKWARD_RECORD.sink
        if sink is None:
            grads = reverse_pass(output_tensor, out_grad)
        else:
            adjoints = reverse_pass(output_tensor, out_grad, _EveryNode())
            sink(output_tensor, adjoints)
            grads = {node: grad for node, grad in adjoints.items() if node.op is None}
        regions: set = set()
        for node, grad in grads.items():
            data = grad.cached_data
            if data is not None and not isinstance(data, tuple):
                arr = _array.as_numpy(data)
                region = (arr.__array_interface__["data"][0], arr.shape, arr.strides)
                if region in regions:
                    # Two leaves got the same gradient array (e.g. from a + b): copy it, so
                    # that an in-place op on one .grad does not change the other. Disjoint
                    # views of one buffer (DDP's buckets) are left alone.
                    grad = needle_ops.AddScalar(0)(grad)
                regions.add(region)
            node.grad = grad
    finally:
        _CALLBACKS.stack.pop()
    for fn in callbacks:
        fn()


from . import inplace as _inplace  # noqa: E402
from . import ops as needle_ops  # noqa: E402  (ops need the classes above)
