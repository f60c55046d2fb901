"""Host-side facts about numpy-style indices: the shape a selection has, and which
positions of an assignment with repeated integer indices land.

They work on shapes and index arrays (host numpy), never on tensor data, so the ops that
use them (``ops_inplace``) still compute only through their device's namespace.
"""

from __future__ import annotations

from typing import Any

import numpy

from .errors import IndexOutOfRange

__all__ = ["selection_shape", "landed_mask"]


def selection_shape(shape: tuple, index: Any, op: str = "setitem") -> tuple:
    """The shape of ``a[index]`` for an array of ``shape``, without touching any data."""
    dummy = numpy.broadcast_to(numpy.zeros((), dtype=numpy.int8), shape)
    try:
        return dummy[index].shape
    except IndexError as e:
        raise IndexOutOfRange(f"{op}: index {index!r} is invalid for shape {tuple(shape)}: "
                              f"{e}") from None


def landed_mask(shape: tuple, index: Any) -> numpy.ndarray | None:
    """Which elements of the selection ``a[index]`` end up in ``a`` after ``a[index] = v``.

    With repeated positions in integer index arrays only one write per position lands
    (numpy's assignment decides which, so it decides here too). None when all land.
    """
    sel = selection_shape(shape, index)
    size = int(numpy.prod(sel))
    target = numpy.full(shape, -1, dtype=numpy.int64)
    target[index] = numpy.arange(size).reshape(sel)
    hit = numpy.zeros(size, dtype=bool)
    hit[target[target >= 0]] = True
    return None if hit.all() else hit.reshape(sel)
