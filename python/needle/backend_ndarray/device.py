"""Devices: a device is a name plus an array namespace ``xp``.

Every op computes with the functions of its operands' device namespace (``xp.add``,
``xp.matmul``, ``xp.sum``, ...): ``numpy`` for ``cpu()`` and ``cpu_numpy()``, CuPy for
``cuda()`` when CuPy imports and finds a GPU. A new device is one ``BackendDevice(name, xp)``;
nothing else in needle changes. Host data enters a device through :meth:`BackendDevice.asarray`
and leaves it through :meth:`BackendDevice.to_numpy`.

A device may also carry a kernel module ``mod`` whose attributes it forwards (the course's
``nd.cpu().matmul_tiled`` and ``__tile_size__``); nothing in needle computes through it.
"""

from __future__ import annotations

from typing import Any

import numpy

from ..errors import DTypeError, device_unavailable
from . import ndarray_backend_numpy

__all__ = ["BackendDevice", "as_float_dtype", "cpu", "cpu_numpy", "cuda", "default_device",
           "all_devices"]


def _host_copy(array: Any) -> numpy.ndarray:
    return numpy.array(array)


class BackendDevice:
    """A device: a name, the array namespace its data and ops live in, and optionally a
    module of extra kernels whose attributes it forwards.

    Parameters
    ----------
    name : str
        e.g. ``"cpu"``; devices compare equal by name.
    xp : module or namespace object, or None
        The array namespace (numpy's functions); None for a device that is not available.
    mod : module, optional
        Kernels the course calls on the device directly (``matmul_tiled``, ``Array``).
    """

    __slots__ = ("name", "xp", "mod", "_to_host")
    # The array type of the course-facing constructors below (randn, full, ...): NDArray,
    # set by ``backend_ndarray.ndarray`` (which imports this module).
    array_type: Any = None

    def __init__(self, name: str, xp: Any, mod: Any = None) -> None:
        self.name = name
        self.xp = xp
        self.mod = mod
        # cupy.asnumpy moves device memory to the host; a numpy-based namespace needs a copy.
        to_host = None if xp is None or xp is numpy else getattr(xp, "asnumpy", None)
        self._to_host = to_host if callable(to_host) else _host_copy

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, BackendDevice) and self.name == other.name)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return self.name + "()"

    def __reduce__(self) -> tuple:
        # Namespaces are modules: rebuild the device from its name.
        return (_device_by_name, (self.name,))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the device does not define: forward to the kernel module.
        if name.startswith("__") and name.endswith("__") and name not in (
                "__tile_size__", "__device_name__"):
            raise AttributeError(name)
        if self.xp is None:
            raise device_unavailable(self, f"{self!r}.{name}")
        if self.mod is None:
            raise AttributeError(f"device {self!r} has no kernel {name!r}")
        return getattr(self.mod, name)

    def enabled(self) -> bool:
        """Whether the device can hold arrays (its namespace is available)."""
        return self.xp is not None

    def require(self, where: str) -> Any:
        """The namespace, or :class:`DeviceError` naming ``where`` for a disabled device."""
        if self.xp is None:
            raise device_unavailable(self, where)
        return self.xp

    # -- the boundary: host data in and out ----------------------------------------------------

    def asarray(self, host: Any, dtype: Any = None) -> Any:
        """A new array on this device holding a copy of ``host`` (numpy data, lists, scalars)."""
        return self.require("asarray").array(host, dtype=dtype)

    def to_numpy(self, array: Any) -> numpy.ndarray:
        """A host (numpy) copy of an array of this device's namespace."""
        return self._to_host(array)

    def draw(self, kind: str, shape: tuple) -> numpy.ndarray:
        """``shape`` float64 samples of ``numpy.random.rand`` or ``randn`` (``kind``), in one
        draw from numpy's global RNG (golden values depend on it), on the host."""
        self.require(kind)
        return numpy.asarray(getattr(numpy.random, kind)(*shape), dtype=numpy.float64)

    # -- the course's array constructors (they return NDArray) ---------------------------------

    def _made(self, array: Any) -> Any:
        return self.array_type._wrap(array, self)

    def randn(self, *shape: int, dtype: str = "float32") -> Any:
        """Standard normal samples, drawn in one call from numpy's global RNG."""
        return self._made(self.asarray(self.draw("randn", _shape_args(shape)), _dtype(dtype)))

    def rand(self, *shape: int, dtype: str = "float32") -> Any:
        """Uniform [0, 1) samples, drawn in one call from numpy's global RNG."""
        return self._made(self.asarray(self.draw("rand", _shape_args(shape)), _dtype(dtype)))

    def one_hot(self, n: int, i: Any, dtype: str = "float32") -> Any:
        """Rows of the ``n x n`` identity selected by the integer indices ``i``."""
        xp = self.require("one_hot")
        dt = _dtype(dtype)
        if isinstance(i, self.array_type):
            idx = xp.asarray(i._np, dtype=numpy.intp)
        else:
            idx = self.asarray(numpy.asarray(i).astype(numpy.intp, copy=False))
        return self._made(xp.take(xp.eye(n, dtype=dt), idx, axis=0))

    def empty(self, shape: Any, dtype: str = "float32") -> Any:
        """Uninitialised array of ``shape``."""
        return self._made(self.require("empty").empty(_as_shape(shape), dtype=_dtype(dtype)))

    def full(self, shape: Any, fill_value: float, dtype: str = "float32") -> Any:
        """Array of ``shape`` filled with ``fill_value``."""
        xp = self.require("full")
        return self._made(xp.full(_as_shape(shape), fill_value, dtype=_dtype(dtype)))

    def zeros(self, *shape: int, dtype: str = "float32") -> Any:
        """Array of zeros."""
        return self.full(_shape_args(shape), 0.0, dtype)

    def ones(self, *shape: int, dtype: str = "float32") -> Any:
        """Array of ones."""
        return self.full(_shape_args(shape), 1.0, dtype)


_F32 = numpy.dtype(numpy.float32)
_F64 = numpy.dtype(numpy.float64)


def as_float_dtype(dtype: Any) -> numpy.dtype:
    """NDArray's dtypes: float32 (also for None) or float64, as a numpy dtype.

    Raises
    ------
    DTypeError
        For any other dtype.
    """
    if dtype is None:
        return _F32
    try:
        dt = numpy.dtype(dtype)
    except TypeError:
        dt = None
    # Checked with ``is None`` first: numpy treats ``dtype == None`` as float64.
    if dt is None or (dt is not _F32 and dt is not _F64 and dt not in (_F32, _F64)):
        raise DTypeError(f"unsupported dtype {dtype!r}: needle arrays are 'float32' or 'float64'")
    return dt


_dtype = as_float_dtype


def _as_shape(shape: Any) -> tuple:
    if isinstance(shape, (int, numpy.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _shape_args(shape: tuple) -> tuple:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and not isinstance(shape[0], (int, numpy.integer)):
        return _as_shape(shape[0])
    return _as_shape(shape)


def _find_cupy() -> Any:
    """CuPy when it imports and sees a GPU, else None (``cuda()`` is then disabled)."""
    try:
        import cupy  # noqa: PLC0415  (optional, and only looked for once)

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:  # noqa: BLE001  (no CuPy, no driver, no GPU: all mean "disabled")
        return None
    return None


_CPU = BackendDevice("cpu", numpy, ndarray_backend_numpy)
_CPU_NUMPY = BackendDevice("cpu_numpy", numpy, ndarray_backend_numpy)
_CUDA = BackendDevice("cuda", _find_cupy())


def cpu() -> BackendDevice:
    """The cpu device (numpy), named ``cpu``."""
    return _CPU


def cpu_numpy() -> BackendDevice:
    """The cpu device backed by numpy too, named ``cpu_numpy`` (distinct from ``cpu()``:
    operands of one op must be on one of them)."""
    return _CPU_NUMPY


def cuda() -> BackendDevice:
    """The cuda device: CuPy on a GPU when available, else present but disabled."""
    return _CUDA


def default_device() -> BackendDevice:
    """The device used when none is given: ``cpu_numpy()`` (as in the course)."""
    return _CPU_NUMPY


def all_devices() -> list[BackendDevice]:
    """All devices: ``[cpu(), cuda(), cpu_numpy()]``."""
    return [cpu(), cuda(), cpu_numpy()]


def _device_by_name(name: str) -> BackendDevice:
    for dev in all_devices():
        if dev.name == name:
            return dev
    raise ValueError(f"unknown device {name!r}")
