"""The cpu device's buffer type and the one kernel the course calls on a device directly.

An :class:`Array` handle is a flat buffer of a namespace array (numpy on the cpu devices):
the storage an ``NDArray`` views with ``(shape, strides, offset)``. All arithmetic goes
through the device namespace (``backend_ndarray.device``); ``matmul_tiled`` is kept because
the course's hw3 tests call ``nd.cpu().matmul_tiled(a._handle, ...)`` on tiled layouts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__device_name__ = "cpu_numpy"
__tile_size__ = 8

_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


class Array:
    """A flat buffer of ``size`` elements: the storage behind an ``NDArray``.

    Parameters
    ----------
    size : int
        Number of elements.
    dtype : str or numpy.dtype, default "float32"
        Element type, ``float32`` or ``float64``.
    """

    __slots__ = ("array",)

    def __init__(self, size: int, dtype: str | np.dtype = "float32") -> None:
        dt = np.dtype(dtype)
        if dt not in _SUPPORTED:
            raise TypeError(
                f"Array: unsupported dtype {dt}; allowed dtypes are float32 and float64"
            )
        self.array = np.empty(size, dtype=dt)

    @classmethod
    def of(cls, flat: Any) -> Array:
        """The handle of an existing flat (1-D, contiguous) array of any namespace."""
        handle = object.__new__(cls)
        handle.array = flat
        return handle

    @property
    def size(self) -> int:
        """Number of elements in the buffer."""
        return self.array.size

    @property
    def dtype(self) -> np.dtype:
        """numpy dtype of the buffer."""
        return self.array.dtype

    def ptr(self) -> int:
        """Address of the first element (identifies the buffer)."""
        arr = self.array
        iface = getattr(arr, "__array_interface__", None)
        if iface is None:
            iface = arr.__cuda_array_interface__
        return iface["data"][0]


def matmul_tiled(a: Array, b: Array, out: Array, m: int, n: int, p: int) -> None:
    """Matrix product on tiled layouts.

    ``a`` holds an ``(m, n)`` matrix as ``(m/t, n/t, t, t)`` tiles, ``b`` an
    ``(n, p)`` matrix as ``(n/t, p/t, t, t)`` tiles, and ``out`` receives the
    ``(m, p)`` product as ``(m/t, p/t, t, t)`` tiles, with ``t = __tile_size__``.
    """
    t = __tile_size__
    if m % t or n % t or p % t:
        raise ValueError(
            f"matmul_tiled: dimensions ({m}, {n}, {p}) must be multiples of the tile size {t}"
        )
    mt, nt, pt = m // t, n // t, p // t
    a4 = a.array[: m * n].reshape(mt, nt, t, t)
    b4 = b.array[: n * p].reshape(nt, pt, t, t)
    # out[i, j] = sum_k a[i, k] @ b[k, j], tile by tile.
    np.copyto(out.array[: m * p].reshape(mt, pt, t, t),
              np.einsum("ikab,kjbc->ijac", a4, b4), casting="unsafe")
