"""NDArray: an n-dimensional strided view over a flat device buffer (the course's class).

An :class:`NDArray` is ``(shape, strides, offset)`` over a flat buffer handle
(``ndarray_backend_numpy.Array``); strides and offset count elements. ``reshape``,
``permute``, ``broadcast_to`` and indexing return views that share the handle; ``compact()``
copies only when the layout requires it.

Every computation goes through the device's array namespace (``device.xp``), like the ops
of needle do: ``a + b`` is ``xp.add`` on the arrays' namespace views. ``NDArray._np`` is that
view (for the cpu devices a numpy array; cached, writes through), and ``NDArray._wrap`` turns
a namespace array into an NDArray without copying, whatever its strides: this is how a
tensor's ``cached_data`` is built on demand over the tensor's own memory.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError, device_unavailable
from .device import (
    BackendDevice,
    all_devices,
    as_float_dtype,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
)
from .ndarray_backend_numpy import Array

__all__ = [
    "BackendDevice",
    "NDArray",
    "all_devices",
    "array",
    "broadcast_to",
    "cpu",
    "cpu_numpy",
    "cuda",
    "default_device",
    "empty",
    "exp",
    "flip",
    "full",
    "log",
    "maximum",
    "reshape",
    "sum",
    "tanh",
]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

Shape = tuple[int, ...]


def _as_shape(shape: Any) -> Shape:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


# The course's names of the element-wise ops, for error messages.
_SHORT_NAMES = {"multiply": "mul", "divide": "div", "subtract": "sub", "power": "pow"}

_STRIDES_CACHE: dict[Shape, Shape] = {}


def _compact_strides(shape: Shape) -> Shape:
    strides = _STRIDES_CACHE.get(shape)
    if strides is None:
        acc = 1
        out = []
        for dim in reversed(shape):
            out.append(acc)
            acc *= dim
        strides = tuple(reversed(out))
        if len(_STRIDES_CACHE) > 4096:
            _STRIDES_CACHE.clear()
        _STRIDES_CACHE[shape] = strides
    return strides


def _strided_view(xp: Any, buf: Any, shape: Shape, strides: Shape, offset: int) -> Any:
    """Zero-copy view of the flat ``buf`` (strides and offset in elements)."""
    itemsize = buf.itemsize
    byte_strides = tuple(s * itemsize for s in strides)
    if buf.__class__ is np.ndarray:
        try:
            return np.ndarray(shape, buf.dtype, buf, offset * itemsize, byte_strides)
        except (TypeError, ValueError):
            # np.ndarray refuses some legal layouts (e.g. zero-size views past the end of
            # an empty buffer); as_strided does no bounds check.
            return as_strided(buf[offset:], shape, byte_strides)
    return xp.lib.stride_tricks.as_strided(buf[offset:], shape, byte_strides)


def _flat_extent(xp: Any, arr: Any) -> tuple[Any, int] | None:
    """``(flat, offset)``: a 1-D contiguous view covering every element of ``arr``, and the
    element offset of ``arr[0, ..., 0]`` in it; None if ``arr``'s strides are not whole
    elements (then it cannot be described as an NDArray without a copy)."""
    if arr.flags.c_contiguous:
        return xp.reshape(arr, (-1,)) if arr.ndim != 1 else arr, 0
    itemsize = arr.itemsize
    strides = arr.strides
    if builtins.any(s % itemsize for s in strides):
        return None
    if arr.size == 0:
        return arr.reshape(-1)[:0], 0
    # Reversing the axes with negative strides puts the lowest address first.
    low = arr
    offset = 0
    if builtins.any(s < 0 for s in strides):
        low = arr[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in strides)]
        offset = builtins.sum((n - 1) * -s for n, s in zip(arr.shape, strides) if s < 0)
        offset //= itemsize
    extent = 1 + builtins.sum((n - 1) * abs(s) for n, s in zip(arr.shape, strides)) // itemsize
    lib = np.lib if low.__class__ is np.ndarray else xp.lib
    return lib.stride_tricks.as_strided(low, (extent,), (itemsize,)), offset


class NDArray:
    """An n-dimensional array on a device.

    Parameters
    ----------
    other : NDArray, numpy.ndarray or array-like
        Data to copy.
    device : BackendDevice, optional
        Target device; defaults to ``other``'s device for an NDArray, else
        :func:`default_device`.
    dtype : str or numpy.dtype, optional
        ``float32`` or ``float64``. By default an NDArray or a float32/float64
        numpy array keeps its dtype and anything else becomes float32.
    """

    __slots__ = ("_shape", "_strides", "_offset", "_device", "_handle", "_np")

    # Make numpy defer to our reflected operators (np.float32(2) * x -> x.__rmul__).
    __array_ufunc__ = None

    def __init__(self, other: Any, device: BackendDevice | None = None, dtype: Any = None) -> None:
        if isinstance(other, NDArray):
            if device is None:
                device = other._device
            src = other._np if other._device.xp is device.xp else other.numpy()
            keep = True
        else:
            if device is None:
                device = default_device()
            keep = isinstance(other, np.ndarray)
            src = other if keep else np.asarray(other)
        if not device.enabled():
            raise device_unavailable(device, "NDArray")
        if dtype is not None:
            dt = as_float_dtype(dtype)
        elif keep and src.dtype in (_F32, _F64):
            dt = src.dtype
        else:
            dt = _F32
        self._init(NDArray._wrap(device.xp.array(src, dtype=dt), device))

    def _init(self, other: NDArray) -> None:
        """Make ``self`` share ``other``'s fields (used by the constructor)."""
        for name in NDArray.__slots__:
            try:
                value = object.__getattribute__(other, name)
            except AttributeError:
                try:
                    object.__delattr__(self, name)
                except AttributeError:
                    pass
            else:
                object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ fast path
    def __getattr__(self, name: str) -> Any:
        # Only reached for slots not yet filled: a wrapped namespace array builds its handle,
        # offset and strides on first use, a view made on a handle builds its namespace
        # view; so creating views and wrapping results stay cheap.
        if name == "_handle" or name == "_offset":
            self._build_handle()
            return object.__getattribute__(self, name)
        if name == "_np":
            arr = _strided_view(self._device.xp, self._handle.array, self._shape,
                                self._strides, self._offset)
            self._np = arr
            return arr
        if name == "_strides":
            arr = self._np
            if arr.flags.c_contiguous:
                strides = _compact_strides(self._shape)
            else:
                strides = tuple(s // arr.itemsize for s in arr.strides)
            self._strides = strides
            return strides
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build_handle(self) -> None:
        arr = self._np
        found = _flat_extent(self._device.xp, arr)
        if found is None:
            arr = self._device.xp.array(arr)
            self._np = arr
            found = _flat_extent(self._device.xp, arr)
        flat, offset = found
        self._handle = Array.of(flat)
        self._offset = offset

    @classmethod
    def _wrap(cls, arr: Any, device: BackendDevice) -> NDArray:
        """``arr`` (an array of ``device``'s namespace) as an NDArray, without copying.

        The result views ``arr``'s memory (``result._np is arr``) whatever its strides and
        dtype; numpy scalars become 0-d arrays.
        """
        if not hasattr(arr, "strides"):
            arr = device.xp.asarray(arr)
        out = object.__new__(cls)
        out._shape = arr.shape
        out._device = device
        out._np = arr
        return out

    def __reduce__(self) -> tuple:
        # Default slot pickling would copy ``_np`` and the buffer separately and
        # break their sharing; rebuild from a single copy instead.
        return (_rebuild, (self.numpy(), self._device))

    # -------------------------------------------------------------- construction
    @staticmethod
    def compact_strides(shape: Sequence[int]) -> Shape:
        """Row-major strides (in elements) of a compact array of ``shape``."""
        return _compact_strides(tuple(shape))

    @staticmethod
    def make(
        shape: Sequence[int],
        strides: Sequence[int] | None = None,
        device: BackendDevice | None = None,
        handle: Any = None,
        offset: int = 0,
        dtype: Any = "float32",
    ) -> NDArray:
        """Create an NDArray over ``handle``, allocating a new one if None.

        Parameters
        ----------
        shape, strides : sequence of int
            Layout in elements; ``strides`` defaults to compact strides.
        device : BackendDevice, optional
            Defaults to :func:`default_device`.
        handle : Array, optional
            Existing buffer to view; its dtype wins over ``dtype``.
        offset : int
            Element offset of the first element in ``handle``.
        dtype : str or numpy.dtype
            Element type of a newly allocated buffer.
        """
        arr = object.__new__(NDArray)
        shape = tuple(shape)
        arr._shape = shape
        arr._strides = _compact_strides(shape) if strides is None else tuple(strides)
        arr._offset = offset
        if device is None:
            device = default_device()
        arr._device = device
        if handle is None:
            xp = device.require("NDArray.make")
            dt = dtype if (dtype is _F32 or dtype is _F64) else as_float_dtype(dtype)
            handle = Array.of(xp.empty(math.prod(shape), dtype=dt))
        arr._handle = handle
        return arr

    # ---------------------------------------------------------------- properties
    @property
    def shape(self) -> Shape:
        """Tuple of dimensions."""
        return self._shape

    @property
    def strides(self) -> Shape:
        """Strides in elements."""
        return self._strides

    @property
    def device(self) -> BackendDevice:
        """The device holding the buffer."""
        return self._device

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype (float32 or float64 unless wrapped from another dtype); compares
        equal to its name."""
        return self._np.dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self._shape)

    def __repr__(self) -> str:
        return "NDArray(" + self.numpy().__str__() + f", device={self.device})"

    def __str__(self) -> str:
        return self.numpy().__str__()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    # ------------------------------------------------------------ memory / copy
    @property
    def _xp(self) -> Any:
        return self._device.xp

    def fill(self, value: float) -> None:
        """Set every element of this (possibly strided) array to ``value``."""
        self._xp.copyto(self._np, value)

    def to(self, device: BackendDevice) -> NDArray:
        """This array on ``device`` (``self`` if already there, else a copy)."""
        if device == self._device:
            return self
        if not device.enabled():
            raise device_unavailable(device, "NDArray.to")
        return NDArray(self, device=device)

    def numpy(self) -> np.ndarray:
        """A numpy copy of the array."""
        return self._device.to_numpy(self._np)

    def is_compact(self) -> bool:
        """Whether the array is row-major contiguous and fills its whole buffer."""
        return self._strides == _compact_strides(self._shape) and self.size == self._handle.size

    def compact(self) -> NDArray:
        """``self`` if compact, else a compact copy."""
        if self.is_compact():
            return self
        return NDArray._wrap(self._xp.array(self._np, order="C"), self._device)

    def as_strided(self, shape: Sequence[int], strides: Sequence[int]) -> NDArray:
        """A view with the given shape and strides over the same buffer."""
        shape, strides = tuple(shape), tuple(strides)
        if len(shape) != len(strides):
            raise ShapeError(f"as_strided: shape {shape} and strides {strides} differ in length")
        return NDArray.make(
            shape,
            strides=strides,
            device=self._device,
            handle=self._handle,
            offset=self._offset,
        )

    @property
    def flat(self) -> Any:
        """Writable 1-D view of a contiguous array's elements.

        ``a.flat[j] += eps`` changes element ``j`` (row-major) of ``a``.
        """
        if self._strides != _compact_strides(self._shape):
            raise ShapeError(
                f"flat: array of shape {self._shape} with strides {self._strides} "
                "is not compact; call .compact() first"
            )
        return self._handle.array[self._offset : self._offset + self.size]

    # --------------------------------------------------------------------- views
    def reshape(self, new_shape: Sequence[int]) -> NDArray:
        """A view with a new shape (one entry may be -1).

        Raises
        ------
        ShapeError
            If the sizes differ or the array is not contiguous.
        """
        new_shape = _as_shape(new_shape)
        size = self.size
        if -1 in new_shape:
            if new_shape.count(-1) > 1:
                raise ShapeError(f"reshape: only one -1 allowed in {new_shape}")
            known = math.prod(d for d in new_shape if d != -1)
            if known == 0 or size % known:
                raise ShapeError(
                    f"reshape: cannot reshape array of shape {self._shape} into {new_shape}"
                )
            new_shape = tuple(size // known if d == -1 else d for d in new_shape)
        if math.prod(new_shape) != size or any(d < 0 for d in new_shape):
            raise ShapeError(
                f"reshape: cannot reshape array of shape {self._shape} into {new_shape}"
            )
        if self._strides != _compact_strides(self._shape):
            raise ShapeError(
                f"reshape: array of shape {self._shape} with strides {self._strides} "
                f"is not compact; call .compact() before reshaping to {new_shape}"
            )
        return NDArray.make(
            new_shape, device=self._device, handle=self._handle, offset=self._offset
        )

    def permute(self, new_axes: Sequence[int]) -> NDArray:
        """A view with axes reordered: new axis ``i`` is old axis ``new_axes[i]``."""
        ndim = len(self._shape)
        axes = tuple(operator.index(a) % ndim if ndim else a for a in new_axes)
        if sorted(axes) != list(range(ndim)):
            raise ShapeError(
                f"permute: {tuple(new_axes)} is not a permutation of the axes of "
                f"an array of shape {self._shape}"
            )
        return NDArray.make(
            tuple(self._shape[a] for a in axes),
            strides=tuple(self._strides[a] for a in axes),
            device=self._device,
            handle=self._handle,
            offset=self._offset,
        )

    def broadcast_to(self, new_shape: Sequence[int]) -> NDArray:
        """A view broadcast to ``new_shape`` (stride 0 along repeated axes).

        Leading axes may be added, as in numpy.
        """
        new_shape = _as_shape(new_shape)
        extra = len(new_shape) - len(self._shape)
        ok = extra >= 0
        strides = [0] * max(extra, 0)
        if ok:
            for old, new, st in zip(self._shape, new_shape[extra:], self._strides):
                if old == new:
                    strides.append(st)
                elif old == 1:
                    strides.append(0)
                else:
                    ok = False
                    break
        if not ok:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {self._shape} to {new_shape}")
        return NDArray.make(
            new_shape,
            strides=tuple(strides),
            device=self._device,
            handle=self._handle,
            offset=self._offset,
        )

    def process_slice(self, sl: slice, dim: int) -> slice:
        """Normalise ``sl`` for axis ``dim`` to explicit ``start, stop, step``.

        The result selects the same elements when applied again (a ``stop`` past
        the front for a negative step is ``None``), so it can be passed back to
        ``__getitem__``.
        """
        start, stop, step = sl.indices(self._shape[dim])
        if step < 0:
            if start < 0:
                return slice(0, 0, step)
            if stop < 0:
                stop = None
        return slice(start, stop, step)

    def _normalise_index(self, idxs: Any) -> tuple:
        if not isinstance(idxs, tuple):
            idxs = (idxs,)
        ndim = len(self._shape)
        n_ell = builtins.sum(1 for i in idxs if i is Ellipsis)
        if n_ell > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_ell:
            pos = next(k for k, i in enumerate(idxs) if i is Ellipsis)
            fill = (slice(None),) * (ndim - len(idxs) + 1)
            idxs = idxs[:pos] + fill + idxs[pos + 1 :]
        if len(idxs) > ndim:
            raise IndexError(f"too many indices ({len(idxs)}) for array of shape {self._shape}")
        return idxs + (slice(None),) * (ndim - len(idxs))

    def __getitem__(self, idxs: Any) -> NDArray:
        """A view selected by ints and slices; ints keep their axis (length 1)."""
        idxs = self._normalise_index(idxs)
        shape, strides = [], []
        offset = self._offset
        for axis, (idx, dim, st) in enumerate(zip(idxs, self._shape, self._strides)):
            if isinstance(idx, slice):
                sl = self.process_slice(idx, axis)
                rng = range(*sl.indices(dim))
                start, n, step = rng.start, len(rng), rng.step
            elif isinstance(idx, (int, np.integer)) and not isinstance(idx, bool):
                start = int(idx)
                if start < 0:
                    start += dim
                if not 0 <= start < dim:
                    raise IndexError(
                        f"index {int(idx)} is out of bounds for axis {axis} with size {dim}"
                    )
                n, step = 1, 1
            else:
                raise TypeError(f"NDArray indices must be ints or slices, got {type(idx).__name__}")
            if n:
                offset += start * st
            shape.append(n)
            strides.append(st * step)
        return NDArray.make(
            tuple(shape),
            strides=tuple(strides),
            device=self._device,
            handle=self._handle,
            offset=offset,
        )

    def __setitem__(self, idxs: Any, other: Any) -> None:
        """Assign an NDArray (same size or broadcastable) or a scalar in place."""
        view = NDArray.__getitem__(self, idxs)
        xp = self._xp
        if isinstance(other, np.ndarray) and other.ndim:
            other = NDArray(other, device=self._device, dtype=self.dtype)
        if isinstance(other, NDArray):
            if other.size == view.size:
                src = xp.reshape(other._np, view._shape)
            else:
                try:
                    src = other.broadcast_to(view._shape)._np
                except ShapeError:
                    raise ShapeError(
                        f"setitem: cannot assign array of shape {other.shape} to a "
                        f"selection of shape {view._shape}"
                    ) from None
            xp.copyto(view._np, src, casting="unsafe")
        else:
            xp.copyto(view._np, other, casting="unsafe")

    # ---------------------------------------------------------------- arithmetic
    def ewise_or_scalar(self, other: Any, ewise_func: Callable, scalar_func: Callable) -> NDArray:
        """``ewise_func(a, b)`` with an NDArray ``other`` (same shape), or
        ``scalar_func(a, other)`` with a scalar, on the namespace views.

        The result has ``self``'s shape, device and dtype.
        """
        if isinstance(other, np.ndarray) and other.ndim:
            other = NDArray._wrap(other, self._device)
        if isinstance(other, NDArray):
            if other._shape != self._shape:
                name = getattr(ewise_func, "__name__", "ewise op")
                name = _SHORT_NAMES.get(name, name)
                raise ShapeError(
                    f"{name}: shapes {self._shape} and {other._shape} differ "
                    "(NDArray element-wise ops need equal shapes; broadcast_to first)"
                )
            out = ewise_func(self._np, other._np)
        else:
            out = scalar_func(self._np, other)
        dt = self.dtype
        if out.dtype != dt:
            out = self._xp.asarray(out, dtype=dt)
        return NDArray._wrap(out, self._device)

    def __add__(self, other: Any) -> NDArray:
        add = self._xp.add
        return self.ewise_or_scalar(other, add, add)

    __radd__ = __add__

    def __sub__(self, other: Any) -> NDArray:
        sub = self._xp.subtract
        return self.ewise_or_scalar(other, sub, sub)

    def __rsub__(self, other: Any) -> NDArray:
        sub = self._xp.subtract
        return self.ewise_or_scalar(other, lambda a, b: sub(b, a), lambda a, b: sub(b, a))

    def __mul__(self, other: Any) -> NDArray:
        mul = self._xp.multiply
        return self.ewise_or_scalar(other, mul, mul)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> NDArray:
        div = self._xp.divide
        return self.ewise_or_scalar(other, div, div)

    def __rtruediv__(self, other: Any) -> NDArray:
        div = self._xp.divide
        return self.ewise_or_scalar(other, lambda a, b: div(b, a), lambda a, b: div(b, a))

    def __neg__(self) -> NDArray:
        return NDArray._wrap(self._xp.negative(self._np), self._device)

    def __pow__(self, other: Any) -> NDArray:
        if isinstance(other, NDArray):
            raise TypeError("power: only a scalar exponent is supported for NDArray")
        power = self._xp.power
        return self.ewise_or_scalar(other, power, power)

    def maximum(self, other: Any) -> NDArray:
        """Element-wise maximum with an NDArray or a scalar."""
        maximum = self._xp.maximum
        return self.ewise_or_scalar(other, maximum, maximum)

    def _compare(self, other: Any, name: str) -> NDArray:
        fn = getattr(self._xp, name)
        return self.ewise_or_scalar(other, fn, fn)

    def __eq__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._compare(other, "equal")

    def __ne__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._compare(other, "not_equal")

    def __ge__(self, other: Any) -> NDArray:
        return self._compare(other, "greater_equal")

    def __gt__(self, other: Any) -> NDArray:
        return self._compare(other, "greater")

    def __lt__(self, other: Any) -> NDArray:
        return self._compare(other, "less")

    def __le__(self, other: Any) -> NDArray:
        return self._compare(other, "less_equal")

    __hash__ = None  # type: ignore[assignment]

    def log(self) -> NDArray:
        """Element-wise natural logarithm."""
        return NDArray._wrap(self._xp.log(self._np), self._device)

    def exp(self) -> NDArray:
        """Element-wise exponential."""
        return NDArray._wrap(self._xp.exp(self._np), self._device)

    def tanh(self) -> NDArray:
        """Element-wise hyperbolic tangent."""
        return NDArray._wrap(self._xp.tanh(self._np), self._device)

    def __matmul__(self, other: NDArray) -> NDArray:
        """2-D matrix product."""
        if not isinstance(other, NDArray):
            return NotImplemented
        if self.ndim != 2 or other.ndim != 2:
            raise ShapeError(
                f"matmul: NDArray @ needs 2-D operands, got shapes {self._shape} and {other._shape}"
            )
        n, n2 = self._shape[1], other._shape[0]
        if n != n2:
            raise ShapeError(
                f"matmul: shapes {self._shape} and {other._shape} are not aligned ({n} != {n2})"
            )
        return NDArray._wrap(self._xp.matmul(self._np, other._np), self._device)

    # ---------------------------------------------------------------- reductions
    def _reduce_axes(self, axis: Any) -> tuple[int, ...] | None:
        if axis is None:
            return None
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        ndim = len(self._shape)
        norm = []
        for a in axes:
            a = operator.index(a)
            if not -ndim <= a < ndim:
                raise ShapeError(
                    f"reduce: axis {a} is out of bounds for array of shape {self._shape}"
                )
            norm.append(a % ndim)
        if len(set(norm)) != len(norm):
            raise ShapeError(f"reduce: repeated axis in {axes}")
        return tuple(sorted(norm))

    def reduce_view_out(self, axis: Any, keepdims: bool = False) -> tuple[NDArray, NDArray]:
        """Return ``(view, out)``: ``view``'s last axis is the one to reduce.

        ``axis`` is None (reduce everything into shape ``(1,)``, or
        ``(1,) * ndim`` with ``keepdims``), an int, or a tuple of ints.
        """
        axes = self._reduce_axes(axis)
        dtype = self.dtype
        if axes is None:
            view = self.compact().reshape((1,) * (self.ndim - 1) + (self.size,))
            out_shape = (1,) * self.ndim if keepdims else (1,)
            return view, NDArray.make(out_shape, device=self._device, dtype=dtype)
        kept = tuple(a for a in range(self.ndim) if a not in axes)
        kept_shape = tuple(self._shape[a] for a in kept)
        if len(axes) == 1:
            view = self.permute(kept + axes)
        else:
            red = math.prod(self._shape[a] for a in axes)
            view = self.permute(kept + axes).compact().reshape(kept_shape + (red,))
        if keepdims:
            out_shape = tuple(1 if i in axes else d for i, d in enumerate(self._shape))
        else:
            out_shape = kept_shape
        return view, NDArray.make(out_shape, device=self._device, dtype=dtype)

    def _reduce(self, fn_name: str, axis: Any, keepdims: bool) -> NDArray:
        axes = self._reduce_axes(axis)
        out = getattr(self._xp, fn_name)(self._np, axis=axes, keepdims=keepdims)
        if axes is None and not keepdims:
            out = self._xp.reshape(out, (1,))
        return NDArray._wrap(out, self._device)

    def sum(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Sum over ``axis`` (None: everything, into shape ``(1,)``; an int or a tuple)."""
        return self._reduce("sum", axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Maximum over ``axis`` (None: everything, into shape ``(1,)``; an int or a tuple)."""
        axes = self._reduce_axes(axis)
        if builtins.any(self._shape[a] == 0 for a in (range(self.ndim) if axes is None else axes)):
            raise ShapeError(f"max: cannot reduce an empty axis of array of shape {self._shape}")
        return self._reduce("max", axis, keepdims)

    # ------------------------------------------------------------ flip and pad
    def flip(self, axes: Any = None) -> NDArray:
        """A compact copy reversed along ``axes`` (int, tuple, or None for all)."""
        if axes is None:
            axes = tuple(range(self.ndim))
        elif isinstance(axes, (int, np.integer)):
            axes = (axes,)
        ndim = self.ndim
        offset = self._offset
        strides = list(self._strides)
        for a in {operator.index(a) % ndim for a in axes}:
            if self._shape[a] > 0:
                offset += (self._shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
        view = NDArray.make(self._shape, strides=tuple(strides), device=self._device,
                            handle=self._handle, offset=offset)
        return NDArray._wrap(self._xp.array(view._np, order="C"), self._device)

    def pad(self, axes: Sequence[tuple[int, int]]) -> NDArray:
        """A new array zero-padded by ``axes = ((before, after), ...)`` per axis."""
        axes = tuple(tuple(int(x) for x in ax) for ax in axes)
        if len(axes) != self.ndim or builtins.any(len(ax) != 2 or min(ax) < 0 for ax in axes):
            raise ShapeError(
                f"pad: need one non-negative (before, after) pair per axis of shape "
                f"{self._shape}, got {axes}"
            )
        new_shape = tuple(d + lo + hi for d, (lo, hi) in zip(self._shape, axes))
        out = self._xp.zeros(new_shape, dtype=self.dtype)
        inside = tuple(slice(lo, lo + d) for d, (lo, _) in zip(self._shape, axes))
        self._xp.copyto(out[inside], self._np)
        return NDArray._wrap(out, self._device)


def _rebuild(data: np.ndarray, device: BackendDevice) -> NDArray:
    return NDArray(data, device=device, dtype=data.dtype if data.dtype in (_F32, _F64) else None)


BackendDevice.array_type = NDArray


def array(a: Any, dtype: Any = "float32", device: BackendDevice | None = None) -> NDArray:
    """Copy ``a`` into a new NDArray.

    Parameters
    ----------
    a : array-like or NDArray
    dtype : str or numpy.dtype, default "float32"
        ``"float32"`` or ``"float64"`` (None means float32).
    device : BackendDevice, optional

    Raises
    ------
    TypeError
        For any other dtype.
    """
    return NDArray(a, device=device, dtype=as_float_dtype(dtype))


def empty(shape: Any, dtype: Any = "float32", device: BackendDevice | None = None) -> NDArray:
    """Uninitialised array of ``shape``."""
    device = default_device() if device is None else device
    return device.empty(shape, dtype)


def full(
    shape: Any,
    fill_value: float,
    dtype: Any = "float32",
    device: BackendDevice | None = None,
) -> NDArray:
    """Array of ``shape`` filled with ``fill_value``."""
    device = default_device() if device is None else device
    return device.full(shape, fill_value, dtype)


def broadcast_to(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    """See :meth:`NDArray.broadcast_to`."""
    return array.broadcast_to(new_shape)


def reshape(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    """See :meth:`NDArray.reshape`."""
    return array.reshape(new_shape)


def maximum(a: NDArray, b: Any) -> NDArray:
    """Element-wise maximum of an NDArray with an NDArray or scalar."""
    return a.maximum(b)


def log(a: NDArray) -> NDArray:
    """Element-wise natural logarithm."""
    return a.log()


def exp(a: NDArray) -> NDArray:
    """Element-wise exponential."""
    return a.exp()


def tanh(a: NDArray) -> NDArray:
    """Element-wise hyperbolic tangent."""
    return a.tanh()


def sum(a: NDArray, axis: Any = None, keepdims: bool = False) -> NDArray:  # noqa: A001
    """Sum of ``a`` over ``axis``; see :meth:`NDArray.sum`."""
    return a.sum(axis=axis, keepdims=keepdims)


def flip(a: NDArray, axes: Any) -> NDArray:
    """``a`` reversed along ``axes``; see :meth:`NDArray.flip`."""
    return a.flip(axes)
