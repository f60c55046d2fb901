"""The one place that knows ``NEEDLE_BACKEND``: ``nd`` (default) or ``np``.

Both backends are the same seam: tensors hold arrays of their device's namespace (numpy
arrays on the cpu devices) and every op computes through that namespace. The backend only
decides what the user sees at the boundary:

- ``nd``: ``Tensor.cached_data`` is an ``NDArray`` view of the tensor's memory (the course's
  hw3/hw4 class), ``Tensor(x)`` is float32 unless float64 is asked for, and the devices are
  ``cpu()``, ``cuda()`` and ``cpu_numpy()`` (the default), all distinct.
- ``np``: ``cached_data`` is the ``numpy.ndarray`` itself (hw1/hw2), ``Tensor(x)`` keeps
  ``x``'s dtype, and ``cpu()`` is the one device (``cpu_numpy()`` is the same).
"""

import os
from typing import Any

import numpy

from . import backend_ndarray
from .backend_ndarray import BackendDevice as Device
from .backend_ndarray import cuda
from .backend_ndarray.device import as_float_dtype
from .errors import DTypeError

BACKEND = os.environ.get("NEEDLE_BACKEND", "nd")

_NDArray = backend_ndarray.NDArray
_wrap = _NDArray._wrap
NUMERIC_KINDS = "biuf"


def from_boundary(value: Any) -> tuple[Any, Any]:
    """``(namespace array, device or None)`` of a boundary array (NDArray or numpy array);
    an NDArray gives its memory (no copy) and its device."""
    if isinstance(value, _NDArray):
        return value._np, value._device
    return value, None


def _numeric(dtype: Any, where: str) -> numpy.dtype:
    dt = numpy.dtype(dtype)
    if dt.kind not in NUMERIC_KINDS:
        raise DTypeError(f"{where}: unsupported dtype {dt}; use a bool, int or float dtype")
    return dt


if BACKEND == "nd":
    array_api = backend_ndarray
    NDArray = _NDArray
    from .backend_ndarray import all_devices, cpu, cpu_numpy, default_device

    def to_boundary(data: Any, device: Any) -> Any:
        """The NDArray view of a tensor's array (built on each access, no copy)."""
        return _wrap(data, device)

    def tensor_dtype(requested: Any, data_dtype: numpy.dtype, where: str = "Tensor") -> Any:
        """The dtype of a new tensor: float32 unless ``requested`` is float64."""
        return as_float_dtype(requested)

    def mask_dtype(requested: Any) -> Any:
        """The dtype a 0/1 mask gets when ``requested`` (e.g. "bool") cannot be held."""
        return requested if numpy.dtype(requested).kind == "f" else "float32"

elif BACKEND == "np":
    array_api = numpy
    NDArray = numpy.ndarray
    from .backend_numpy import all_devices, cpu, cpu_numpy, default_device

    def to_boundary(data: Any, device: Any) -> Any:
        """The numpy array itself."""
        return data

    def tensor_dtype(requested: Any, data_dtype: numpy.dtype, where: str = "Tensor") -> Any:
        """The dtype of a new tensor: the input's own unless one is requested (hw1)."""
        return data_dtype if requested is None else _numeric(requested, where)

    def mask_dtype(requested: Any) -> Any:
        """Any dtype can hold a mask."""
        return requested

else:
    raise RuntimeError(
        f"Unknown needle array backend {BACKEND!r}: set NEEDLE_BACKEND to 'nd' or 'np'"
    )

__all__ = [
    "BACKEND", "Device", "NDArray", "all_devices", "array_api", "cpu", "cpu_numpy", "cuda",
    "default_device", "from_boundary", "to_boundary", "tensor_dtype", "mask_dtype",
    "NUMERIC_KINDS",
]
