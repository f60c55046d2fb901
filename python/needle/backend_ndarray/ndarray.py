"""NDArray: an n-dimensional strided view over a flat device buffer.

An :class:`NDArray` is ``(shape, strides, offset)`` over a handle allocated by
a device module (see ``ndarray_backend_numpy``); strides and offset count
elements. ``reshape``, ``permute``, ``broadcast_to`` and indexing return views
that share the handle; ``compact()`` copies only when the layout requires it.

Fast path for the rest of the library: ``NDArray._np`` is a numpy view of the
array's elements (cached, writes through) and ``NDArray._wrap`` turns a numpy
result into an NDArray without copying.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import DTypeError, ShapeError, device_unavailable
from . import ndarray_backend_numpy
from .ndarray_backend_numpy import Array as _NumpyArray

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


def _as_dtype(dtype: Any) -> np.dtype:
    """Validate ``dtype`` (None means float32) and return it as a numpy dtype."""
    if dtype is None:
        return _F32
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    # Checked with ``is None`` first: numpy treats ``dtype == None`` as float64.
    if dt is None or (dt is not _F32 and dt is not _F64 and dt not in (_F32, _F64)):
        raise DTypeError(f"unsupported dtype {dtype!r}: needle arrays are 'float32' or 'float64'")
    return dt


def _as_shape(shape: Any) -> Shape:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _shape_args(shape: tuple) -> Shape:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return _as_shape(shape[0])
    return _as_shape(shape)


class BackendDevice:
    """A device: a name plus the module that implements its array functions.

    Attribute lookups that the device does not define itself (``Array``,
    ``ewise_add``, ``__tile_size__``, ...) are forwarded to the module.

    Parameters
    ----------
    name : str
        Device name, e.g. ``"cpu"``; devices compare equal by name.
    mod : module or None
        The device module, or None when the device is unavailable.
    """

    def __init__(self, name: str, mod: Any) -> None:
        self.name = name
        self.mod = mod

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, BackendDevice) and self.name == other.name)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return self.name + "()"

    def __reduce__(self) -> tuple:
        # Modules cannot be pickled; rebuild the device from its name.
        return (_device_by_name, (self.name,))

    def __getattr__(self, name: str) -> Any:
        # Guard against recursion while unpickling, before ``mod`` is set.
        if name == "mod" or name == "name":
            raise AttributeError(name)
        mod = self.mod
        if mod is None:
            if name.startswith("__"):
                # Protocol probes (copy, pickle, numpy) must see a plain missing attribute.
                raise AttributeError(name)
            raise device_unavailable(self, f"{self!r}.{name}")
        return getattr(mod, name)

    def enabled(self) -> bool:
        """Whether the device can allocate arrays."""
        return self.mod is not None

    def _require_enabled(self, where: str) -> None:
        if self.mod is None:
            raise device_unavailable(self, where)

    def randn(self, *shape: int, dtype: str = "float32") -> NDArray:
        """Standard normal samples, drawn in one call from numpy's global RNG."""
        self._require_enabled("randn")
        dt = _as_dtype(dtype)
        return NDArray._wrap(np.asarray(np.random.randn(*_shape_args(shape))).astype(dt), self)

    def rand(self, *shape: int, dtype: str = "float32") -> NDArray:
        """Uniform [0, 1) samples, drawn in one call from numpy's global RNG."""
        self._require_enabled("rand")
        dt = _as_dtype(dtype)
        return NDArray._wrap(np.asarray(np.random.rand(*_shape_args(shape))).astype(dt), self)

    def one_hot(self, n: int, i: Any, dtype: str = "float32") -> NDArray:
        """Rows of the ``n x n`` identity selected by the integer indices ``i``."""
        self._require_enabled("one_hot")
        dt = _as_dtype(dtype)
        if isinstance(i, NDArray):
            i = i.numpy()
        idx = np.asarray(i)
        if idx.dtype.kind not in "iu":
            idx = idx.astype(np.intp)
        out = np.zeros(idx.shape + (n,), dtype=dt)
        np.put_along_axis(out, idx[..., None], 1, axis=-1)
        return NDArray._wrap(out, self)

    def empty(self, shape: Any, dtype: str = "float32") -> NDArray:
        """Uninitialised array of ``shape``."""
        self._require_enabled("empty")
        return NDArray.make(_as_shape(shape), device=self, dtype=_as_dtype(dtype))

    def full(self, shape: Any, fill_value: float, dtype: str = "float32") -> NDArray:
        """Array of ``shape`` filled with ``fill_value``."""
        arr = self.empty(shape, dtype)
        arr.fill(fill_value)
        return arr

    def zeros(self, *shape: int, dtype: str = "float32") -> NDArray:
        """Array of zeros."""
        return self.full(_shape_args(shape), 0.0, dtype)

    def ones(self, *shape: int, dtype: str = "float32") -> NDArray:
        """Array of ones."""
        return self.full(_shape_args(shape), 1.0, dtype)


_CUDA = BackendDevice("cuda", None)
_CPU = BackendDevice("cpu", ndarray_backend_numpy)
_CPU_NUMPY = BackendDevice("cpu_numpy", ndarray_backend_numpy)


def cuda() -> BackendDevice:
    """The cuda device (never enabled: needle has no GPU module)."""
    return _CUDA


def cpu_numpy() -> BackendDevice:
    """The cpu device backed by the numpy module, named ``cpu_numpy``."""
    return _CPU_NUMPY


def cpu() -> BackendDevice:
    """The cpu device (backed by the same numpy module), named ``cpu``."""
    return _CPU


def default_device() -> BackendDevice:
    """The device used when none is given: ``cpu_numpy()``."""
    return _CPU_NUMPY


def all_devices() -> list[BackendDevice]:
    """All devices: ``[cpu(), cuda(), cpu_numpy()]``."""
    return [cpu(), cuda(), cpu_numpy()]


def _device_by_name(name: str) -> BackendDevice:
    for dev in all_devices():
        if dev.name == name:
            return dev
    raise ValueError(f"unknown device {name!r}")


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


class NDArray:
    """An n-dimensional float array on a device.

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
        keep = isinstance(other, (NDArray, np.ndarray))
        if isinstance(other, NDArray):
            src = other._np
            if device is None:
                device = other._device
        else:
            src = np.asarray(other)
            if device is None:
                device = default_device()
        if not device.enabled():
            raise device_unavailable(device, "NDArray")
        if dtype is not None:
            dt = _as_dtype(dtype)
        elif keep and src.dtype in (_F32, _F64):
            dt = src.dtype
        else:
            dt = _F32
        arr = NDArray.make(src.shape, device=device, dtype=dt)
        device.from_numpy(src, arr._handle)
        self._init(arr)

    def _init(self, other: NDArray) -> None:
        """Make ``self`` share ``other``'s fields (used by the constructor)."""
        self._shape = other._shape
        self._strides = other._strides
        self._offset = other._offset
        self._device = other._device
        self._handle = other._handle
        try:
            del self._np
        except AttributeError:
            pass

    # ------------------------------------------------------------------ fast path
    def __getattr__(self, name: str) -> Any:
        # Only reached for slots not yet filled: ``_np``, ``_strides`` and (for
        # wrapped results) ``_handle`` are built lazily so that creating views and
        # wrapping results stay cheap.
        if name == "_handle":
            handle = object.__new__(_NumpyArray)
            arr = self._np
            # Wrapped arrays are C- or F-contiguous; either way ravel in memory order is a view.
            handle.array = arr.ravel() if arr.flags.c_contiguous else arr.T.ravel()
            self._handle = handle
            return handle
        if name == "_np":
            arr = self._build_np()
            self._np = arr
            return arr
        if name == "_strides":
            strides = _compact_strides(self._shape)
            self._strides = strides
            return strides
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _build_np(self) -> np.ndarray:
        buf = self._handle.array
        itemsize = buf.itemsize
        byte_strides = tuple(s * itemsize for s in self._strides)
        try:
            return np.ndarray(self._shape, buf.dtype, buf, self._offset * itemsize, byte_strides)
        except (TypeError, ValueError):
            return as_strided(buf[self._offset :], self._shape, byte_strides)

    @classmethod
    def _wrap(cls, arr: np.ndarray, device: BackendDevice) -> NDArray:
        """Wrap a numpy array as an NDArray on ``device``, without copying.

        A C- or F-contiguous float32/float64 ``arr`` becomes the array's memory
        (``result._np is arr``); other layouts are copied into a contiguous
        buffer, other dtypes cast to float32. Numpy scalars become 0-d arrays.
        """
        if type(arr) is not np.ndarray:
            arr = np.asarray(arr)
        dt = arr.dtype
        if dt is not _F32 and dt is not _F64 and dt not in (_F32, _F64):
            arr = np.array(arr, dtype=_F32, order="C")
        elif not arr.flags.c_contiguous:
            if arr.flags.f_contiguous and arr.size:
                # A transposed result (e.g. a matmul operand's .T) is a dense block in
                # reversed axis order: keep it as a strided view instead of copying.
                out = object.__new__(cls)
                out._shape = arr.shape
                out._strides = tuple(st // arr.itemsize for st in arr.strides)
                out._offset = 0
                out._device = device
                out._np = arr
                return out
            arr = np.array(arr, order="C")
        out = object.__new__(cls)
        out._shape = arr.shape
        out._offset = 0
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
        handle : device Array, optional
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
            dt = dtype if (dtype is _F32 or dtype is _F64) else _as_dtype(dtype)
            handle = device.Array(math.prod(shape), dtype=dt)
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
        """numpy dtype (float32 or float64); compares equal to its name."""
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
    def fill(self, value: float) -> None:
        """Set every element of this (possibly strided) array to ``value``."""
        if self.is_compact():
            self._device.fill(self._handle, value)
        else:
            self._device.scalar_setitem(
                self.size, value, self._handle, self._shape, self._strides, self._offset
            )

    def to(self, device: BackendDevice) -> NDArray:
        """This array on ``device`` (``self`` if already there, else a copy)."""
        if device == self._device:
            return self
        if not device.enabled():
            raise device_unavailable(device, "NDArray.to")
        return NDArray(self, device=device)

    def numpy(self) -> np.ndarray:
        """A numpy copy of the array."""
        return self._device.to_numpy(self._handle, self._shape, self._strides, self._offset)

    def is_compact(self) -> bool:
        """Whether the array is row-major contiguous and fills its whole buffer."""
        return self._strides == _compact_strides(self._shape) and self.size == self._handle.size

    def compact(self) -> NDArray:
        """``self`` if compact, else a compact copy."""
        if self.is_compact():
            return self
        out = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        self._device.compact(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

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
    def flat(self) -> np.ndarray:
        """Writable 1-D numpy view of a contiguous array's elements.

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
        if isinstance(other, np.ndarray) and other.ndim:
            other = NDArray(other, device=self._device, dtype=self.dtype)
        if isinstance(other, NDArray):
            if other.size != view.size:
                try:
                    other = other.broadcast_to(view._shape)
                except ShapeError:
                    raise ShapeError(
                        f"setitem: cannot assign array of shape {other.shape} to a "
                        f"selection of shape {view._shape}"
                    ) from None
            self._device.ewise_setitem(
                other.compact()._handle,
                view._handle,
                view._shape,
                view._strides,
                view._offset,
            )
        else:
            self._device.scalar_setitem(
                view.size, other, view._handle, view._shape, view._strides, view._offset
            )

    # ---------------------------------------------------------------- arithmetic
    def ewise_or_scalar(self, other: Any, ewise_func: Callable, scalar_func: Callable) -> NDArray:
        """Apply ``ewise_func`` with an NDArray ``other`` or ``scalar_func`` with a scalar.

        The result has ``self``'s shape, device and dtype.
        """
        out = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        if isinstance(other, np.ndarray) and other.ndim:
            other = NDArray._wrap(other, self._device)
        if isinstance(other, NDArray):
            if other._shape != self._shape:
                name = getattr(ewise_func, "__name__", "ewise op").removeprefix("ewise_")
                raise ShapeError(
                    f"{name}: shapes {self._shape} and {other._shape} differ "
                    "(NDArray element-wise ops need equal shapes; broadcast_to first)"
                )
            ewise_func(self.compact()._handle, other.compact()._handle, out._handle)
        else:
            scalar_func(self.compact()._handle, other, out._handle)
        return out

    def __add__(self, other: Any) -> NDArray:
        return self.ewise_or_scalar(other, self._device.ewise_add, self._device.scalar_add)

    __radd__ = __add__

    def __sub__(self, other: Any) -> NDArray:
        return self + (-other)

    def __rsub__(self, other: Any) -> NDArray:
        return other + (-self)

    def __mul__(self, other: Any) -> NDArray:
        return self.ewise_or_scalar(other, self._device.ewise_mul, self._device.scalar_mul)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> NDArray:
        return self.ewise_or_scalar(other, self._device.ewise_div, self._device.scalar_div)

    def __rtruediv__(self, other: Any) -> NDArray:
        num = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        num.fill(other)
        return num / self

    def __neg__(self) -> NDArray:
        return self * (-1)

    def __pow__(self, other: Any) -> NDArray:
        if isinstance(other, NDArray):
            raise TypeError("power: only a scalar exponent is supported for NDArray")
        out = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        self._device.scalar_power(self.compact()._handle, other, out._handle)
        return out

    def maximum(self, other: Any) -> NDArray:
        """Element-wise maximum with an NDArray or a scalar."""
        return self.ewise_or_scalar(other, self._device.ewise_maximum, self._device.scalar_maximum)

    def __eq__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self.ewise_or_scalar(other, self._device.ewise_eq, self._device.scalar_eq)

    def __ge__(self, other: Any) -> NDArray:
        return self.ewise_or_scalar(other, self._device.ewise_ge, self._device.scalar_ge)

    def __ne__(self, other: Any) -> NDArray:  # type: ignore[override]
        return 1 - (self == other)

    def __gt__(self, other: Any) -> NDArray:
        return (self >= other) - (self == other)

    def __lt__(self, other: Any) -> NDArray:
        return 1 - (self >= other)

    def __le__(self, other: Any) -> NDArray:
        return 1 - (self > other)

    __hash__ = None  # type: ignore[assignment]

    def _unary(self, func: Callable) -> NDArray:
        out = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        func(self.compact()._handle, out._handle)
        return out

    def log(self) -> NDArray:
        """Element-wise natural logarithm."""
        return self._unary(self._device.ewise_log)

    def exp(self) -> NDArray:
        """Element-wise exponential."""
        return self._unary(self._device.ewise_exp)

    def tanh(self) -> NDArray:
        """Element-wise hyperbolic tangent."""
        return self._unary(self._device.ewise_tanh)

    def __matmul__(self, other: NDArray) -> NDArray:
        """2-D matrix product; uses the device's tiled kernel when sizes allow."""
        if not isinstance(other, NDArray):
            return NotImplemented
        if self.ndim != 2 or other.ndim != 2:
            raise ShapeError(
                f"matmul: NDArray @ needs 2-D operands, got shapes {self._shape} and {other._shape}"
            )
        m, n = self._shape
        n2, p = other._shape
        if n != n2:
            raise ShapeError(
                f"matmul: shapes {self._shape} and {other._shape} are not aligned ({n} != {n2})"
            )
        device = self._device
        out_dtype = self.dtype
        mod = device.mod
        t = getattr(mod, "__tile_size__", 0)
        tiled = t and m and n and p and hasattr(mod, "matmul_tiled")
        if tiled and m % t == 0 and n % t == 0 and p % t == 0:
            a = self.compact().as_strided((m // t, n // t, t, t), (n * t, t, n, 1)).compact()
            b = other.compact().as_strided((n // t, p // t, t, t), (p * t, t, p, 1)).compact()
            out = NDArray.make((m // t, p // t, t, t), device=device, dtype=out_dtype)
            device.matmul_tiled(a._handle, b._handle, out._handle, m, n, p)
            return out.permute((0, 2, 1, 3)).compact().reshape((m, p))
        out = NDArray.make((m, p), device=device, dtype=out_dtype)
        device.matmul(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
        return out

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

    def sum(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Sum over ``axis`` (None, an int or a tuple of ints)."""
        view, out = self.reduce_view_out(axis, keepdims=keepdims)
        self._device.reduce_sum(view.compact()._handle, out._handle, view._shape[-1])
        return out

    def max(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Maximum over ``axis`` (None, an int or a tuple of ints)."""
        view, out = self.reduce_view_out(axis, keepdims=keepdims)
        if view._shape[-1] == 0:
            raise ShapeError(f"max: cannot reduce an empty axis of array of shape {self._shape}")
        self._device.reduce_max(view.compact()._handle, out._handle, view._shape[-1])
        return out

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
        out = NDArray.make(self._shape, device=self._device, dtype=self.dtype)
        self._device.compact(self._handle, out._handle, self._shape, tuple(strides), offset)
        return out

    def pad(self, axes: Sequence[tuple[int, int]]) -> NDArray:
        """A new array zero-padded by ``axes = ((before, after), ...)`` per axis."""
        axes = tuple(tuple(int(x) for x in ax) for ax in axes)
        if len(axes) != self.ndim or any(len(ax) != 2 or min(ax) < 0 for ax in axes):
            raise ShapeError(
                f"pad: need one non-negative (before, after) pair per axis of shape "
                f"{self._shape}, got {axes}"
            )
        new_shape = tuple(d + lo + hi for d, (lo, hi) in zip(self._shape, axes))
        out = NDArray.make(new_shape, device=self._device, dtype=self.dtype)
        out.fill(0.0)
        out[tuple(slice(lo, lo + d) for d, (lo, _) in zip(self._shape, axes))] = self
        return out


def _rebuild(data: np.ndarray, device: BackendDevice) -> NDArray:
    return NDArray._wrap(data, device)


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
    return NDArray(a, device=device, dtype=_as_dtype(dtype))


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
