"""The ``cpu`` device module, written with numpy.

Every function here works on :class:`Array` handles, i.e. flat numpy buffers,
and writes its result in place into an ``out`` handle. Strided access is done
with zero-copy numpy views built from ``(shape, strides, offset)`` measured in
elements, so no function loops over elements in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

__device_name__ = "cpu_numpy"
__tile_size__ = 8

_datatype = np.float32
_datatype_size = np.dtype(_datatype).itemsize
_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


class Array:
    """A flat buffer of ``size`` floats: the storage behind an ``NDArray``.

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
        return self.array.ctypes.data


def _view(buf: np.ndarray, shape: Sequence[int], strides: Sequence[int], offset: int) -> np.ndarray:
    """Zero-copy strided view of ``buf`` (strides and offset in elements)."""
    itemsize = buf.itemsize
    shape = tuple(shape)
    byte_strides = tuple(s * itemsize for s in strides)
    try:
        return np.ndarray(shape, buf.dtype, buf, offset * itemsize, byte_strides)
    except (TypeError, ValueError):
        # np.ndarray refuses some legal layouts (e.g. zero-size views past the
        # end of an empty buffer); as_strided does no bounds check.
        return as_strided(buf[offset:], shape, byte_strides)


def _flat(a: Array, size: int) -> np.ndarray:
    return a.array[:size]


def to_numpy(a: Array, shape: Sequence[int], strides: Sequence[int], offset: int) -> np.ndarray:
    """Return a fresh numpy array holding the strided view of ``a``."""
    return _view(a.array, shape, strides, offset).copy()


def from_numpy(a: np.ndarray, out: Array) -> None:
    """Copy the elements of ``a`` (row-major order) into ``out``, casting."""
    a = np.asarray(a)
    np.copyto(out.array[: a.size].reshape(a.shape), a, casting="unsafe")


def fill(out: Array, val: float) -> None:
    """Set every element of ``out`` to ``val``."""
    out.array.fill(val)


def compact(
    a: Array, out: Array, shape: Sequence[int], strides: Sequence[int], offset: int
) -> None:
    """Copy the strided view of ``a`` into the compact buffer ``out``."""
    src = _view(a.array, shape, strides, offset)
    np.copyto(out.array[: src.size].reshape(src.shape), src, casting="unsafe")


def ewise_setitem(
    a: Array, out: Array, shape: Sequence[int], strides: Sequence[int], offset: int
) -> None:
    """Write the compact buffer ``a`` into the strided view of ``out``."""
    dst = _view(out.array, shape, strides, offset)
    np.copyto(dst, a.array[: dst.size].reshape(dst.shape), casting="unsafe")


def scalar_setitem(
    size: int,
    val: float,
    out: Array,
    shape: Sequence[int],
    strides: Sequence[int],
    offset: int,
) -> None:
    """Set the ``size`` elements of the strided view of ``out`` to ``val``."""
    _view(out.array, shape, strides, offset)[...] = val


def ewise_add(a: Array, b: Array, out: Array) -> None:
    """``out = a + b``."""
    np.add(a.array, b.array, out=out.array)


def scalar_add(a: Array, val: float, out: Array) -> None:
    """``out = a + val``."""
    np.add(a.array, val, out=out.array)


def ewise_mul(a: Array, b: Array, out: Array) -> None:
    """``out = a * b``."""
    np.multiply(a.array, b.array, out=out.array)


def scalar_mul(a: Array, val: float, out: Array) -> None:
    """``out = a * val``."""
    np.multiply(a.array, val, out=out.array)


def ewise_div(a: Array, b: Array, out: Array) -> None:
    """``out = a / b``."""
    np.divide(a.array, b.array, out=out.array)


def scalar_div(a: Array, val: float, out: Array) -> None:
    """``out = a / val``."""
    np.divide(a.array, val, out=out.array)


def scalar_power(a: Array, val: float, out: Array) -> None:
    """``out = a ** val``."""
    np.power(a.array, val, out=out.array)


def ewise_maximum(a: Array, b: Array, out: Array) -> None:
    """``out = maximum(a, b)``."""
    np.maximum(a.array, b.array, out=out.array)


def scalar_maximum(a: Array, val: float, out: Array) -> None:
    """``out = maximum(a, val)``."""
    np.maximum(a.array, val, out=out.array)


def ewise_eq(a: Array, b: Array, out: Array) -> None:
    """``out = 1.0 where a == b else 0.0``."""
    np.equal(a.array, b.array, out=out.array)


def scalar_eq(a: Array, val: float, out: Array) -> None:
    """``out = 1.0 where a == val else 0.0``."""
    np.equal(a.array, val, out=out.array)


def ewise_ge(a: Array, b: Array, out: Array) -> None:
    """``out = 1.0 where a >= b else 0.0``."""
    np.greater_equal(a.array, b.array, out=out.array)


def scalar_ge(a: Array, val: float, out: Array) -> None:
    """``out = 1.0 where a >= val else 0.0``."""
    np.greater_equal(a.array, val, out=out.array)


def ewise_log(a: Array, out: Array) -> None:
    """``out = log(a)``."""
    np.log(a.array, out=out.array)


def ewise_exp(a: Array, out: Array) -> None:
    """``out = exp(a)``."""
    np.exp(a.array, out=out.array)


def ewise_tanh(a: Array, out: Array) -> None:
    """``out = tanh(a)``."""
    np.tanh(a.array, out=out.array)


def matmul(a: Array, b: Array, out: Array, m: int, n: int, p: int) -> None:
    """``out (m, p) = a (m, n) @ b (n, p)`` on compact row-major buffers."""
    np.matmul(
        _flat(a, m * n).reshape(m, n),
        _flat(b, n * p).reshape(n, p),
        out=_flat(out, m * p).reshape(m, p),
    )


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
    a2 = _flat(a, m * n).reshape(mt, nt, t, t).transpose(0, 2, 1, 3).reshape(m, n)
    b2 = _flat(b, n * p).reshape(nt, pt, t, t).transpose(0, 2, 1, 3).reshape(n, p)
    prod = a2 @ b2
    dst = _flat(out, m * p).reshape(mt, pt, t, t)
    np.copyto(dst, prod.reshape(mt, t, pt, t).transpose(0, 2, 1, 3), casting="unsafe")


def reduce_max(a: Array, out: Array, reduce_size: int) -> None:
    """``out[i] = max(a[i*reduce_size:(i+1)*reduce_size])``."""
    k = out.array.size
    np.max(_flat(a, k * reduce_size).reshape(k, reduce_size), axis=1, out=out.array)


def reduce_sum(a: Array, out: Array, reduce_size: int) -> None:
    """``out[i] = sum(a[i*reduce_size:(i+1)*reduce_size])``."""
    k = out.array.size
    np.sum(_flat(a, k * reduce_size).reshape(k, reduce_size), axis=1, out=out.array)
