"""The numpy "device" used when ``NEEDLE_BACKEND=np``: arrays are plain ``numpy.ndarray``."""

from typing import Any

import numpy

from .errors import device_unavailable

__device_name__ = "numpy"
_datatype = numpy.float32
_datetype_size = numpy.dtype(_datatype).itemsize


class Device:
    """Indicates the device supporting an NDArray."""


class CPUDevice(Device):
    """Represents data that sits in CPU memory, as numpy arrays."""

    def __repr__(self) -> str:
        return "needle.cpu()"

    def __hash__(self) -> int:
        return self.__repr__().__hash__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CPUDevice)

    def enabled(self) -> bool:
        """Always True: numpy is always there."""
        return True

    def zeros(self, *shape: int, dtype: Any = "float32") -> numpy.ndarray:
        """A numpy array of zeros of ``shape``."""
        return numpy.zeros(shape, dtype=dtype)

    def ones(self, *shape: int, dtype: Any = "float32") -> numpy.ndarray:
        """A numpy array of ones of ``shape``."""
        return numpy.ones(shape, dtype=dtype)

    def randn(self, *shape: int) -> numpy.ndarray:
        """Standard normal samples of ``shape`` (one draw from numpy's global RNG)."""
        # One draw from the global RNG for the whole shape: golden values depend on it.
        return numpy.random.randn(*shape)

    def rand(self, *shape: int) -> numpy.ndarray:
        """Uniform [0, 1) samples of ``shape`` (one draw from numpy's global RNG)."""
        return numpy.random.rand(*shape)

    def one_hot(self, n: int, i: Any, dtype: Any = "float32") -> numpy.ndarray:
        """One-hot vectors of length ``n`` for the integer labels ``i``: ``i.shape + (n,)``."""
        ids = numpy.asarray(i, dtype=numpy.int64)
        out = numpy.zeros(ids.shape + (n,), dtype=dtype)
        numpy.put_along_axis(out, ids[..., None], 1, axis=-1)
        return out

    def empty(self, shape: tuple, dtype: Any = "float32") -> numpy.ndarray:
        """An uninitialised numpy array of ``shape``."""
        return numpy.empty(shape, dtype=dtype)

    def full(self, shape: tuple, fill_value: float, dtype: Any = "float32") -> numpy.ndarray:
        """A numpy array of ``shape`` filled with ``fill_value``."""
        return numpy.full(shape, fill_value, dtype=dtype)


class _DisabledDevice(Device):
    """A device that is not available on this machine (``cuda()`` without a GPU)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name + "()"

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DisabledDevice) and other.name == self.name

    def enabled(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        # Only reached for what a disabled device lacks (rand, randn, Array, ...).
        if name.startswith("__") or name == "name":
            raise AttributeError(name)
        raise device_unavailable(self, f"{self!r}.{name}")


def cpu() -> CPUDevice:
    """Return cpu device."""
    return CPUDevice()


cpu_numpy = cpu


def cuda() -> Device:
    """No GPU array library backs the numpy backend: a disabled device."""
    return _DisabledDevice("cuda")


def default_device() -> CPUDevice:
    """The device new tensors use: ``cpu()``."""
    return cpu()


def all_devices() -> list:
    """Return a list of all available devices."""
    return [cpu()]
