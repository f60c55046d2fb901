"""needle's dtype rule, in one place (README.md, "Backends and dtypes", has the table).

1. Tensor–tensor ops promote. Two float dtypes give the wider one (float32 with float64
   gives float64): numpy's own promotion, so every op that combines arrays with numpy gets
   it for free. An integer or bool tensor with a float tensor gives that float dtype
   (PyTorch's rule; numpy would widen int64 with float32 to float64): :func:`operands`
   applies it, and ops that combine several tensors read their inputs through it.
2. Tensor–scalar ops keep the tensor's dtype. A scalar is a Python number, a numpy scalar
   of any dtype, or a 0-d (or one-element) array; :func:`scalar` turns it into a Python
   number, which numpy treats as "weak", so float32 data stays float32. (An integer tensor
   with a float scalar cannot stay integer: it gives float64, numpy's float.)
3. Every input's gradient has that input's dtype. The engine's reverse pass casts each
   partial adjoint with the op ``CastLike`` (``autograd.reverse_pass``), for every op, so
   no op's ``gradient`` has to care. An integer or bool input's gradient is left in the
   dtype it was computed in: it is never truncated to integers.
"""

from __future__ import annotations

from typing import Any

import numpy

from ._array import as_numpy
from .errors import DTypeError

__all__ = ["scalar", "operands", "operand_pair", "promote_pair", "promote_types"]


def scalar(value: Any, op: str) -> int | float:
    """A scalar operand as a Python ``int`` or ``float`` (bools become ints).

    Numpy scalars (``numpy.float64`` subclasses ``float`` but is not weak in numpy's
    promotion), 0-d arrays and one-element arrays (hw1 passes a shape-(1,) array to
    ``divide_scalar``) all become Python numbers, so ``x * numpy.float64(2)`` keeps
    ``x``'s dtype exactly as ``x * 2.0`` does.

    Raises
    ------
    DTypeError
        ``value`` is not a single real number; the message names ``op``.
    """
    cls = value.__class__
    if cls is float or cls is int:
        return value
    if cls is bool:
        return int(value)
    arr = numpy.asarray(value)
    if arr.size == 1 and arr.dtype.kind in "biuf":
        number = arr.item()
        return int(number) if isinstance(number, bool) else number
    raise DTypeError(f"{op}: expected a real scalar, got {type(value).__name__} "
                     f"of shape {arr.shape} and dtype {arr.dtype}")


def promote_types(*dtypes: Any) -> numpy.dtype:
    """The dtype of a tensor–tensor op on tensors of ``dtypes`` (rule 1 above)."""
    dts = [numpy.dtype(d) for d in dtypes]
    floats = [d for d in dts if d.kind == "f"]
    return numpy.result_type(*(floats or dts))


def operand_pair(a: Any, b: Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Numpy views of two backend arrays an op combines; an integer or bool operand meeting
    a float one is cast to that float dtype (rule 1). No copy when the dtypes agree.

    Element-wise ops inline the test ``av.dtype is not bv.dtype`` and call
    :func:`promote_pair` only then: it saves a Python call on the hot path.
    """
    av, bv = as_numpy(a), as_numpy(b)
    if av.dtype is bv.dtype:
        return av, bv
    return promote_pair(av, bv)


def promote_pair(av: numpy.ndarray, bv: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """:func:`operand_pair` on numpy arrays whose dtypes may differ."""
    ad, bd = av.dtype, bv.dtype
    if ad.kind == "f":
        if bd.kind != "f":
            bv = bv.astype(ad)
    elif bd.kind == "f":
        av = av.astype(bd)
    return av, bv


def operands(arrays: Any) -> list[numpy.ndarray]:
    """:func:`operand_pair` for any number of backend arrays (stack, concatenation)."""
    views = [as_numpy(a) for a in arrays]
    if not views:
        return views
    first = views[0].dtype
    if all(v.dtype is first for v in views):
        return views
    floats = [v.dtype for v in views if v.dtype.kind == "f"]
    if not floats or len(floats) == len(views):
        return views
    target = numpy.result_type(*floats)
    return [v if v.dtype.kind == "f" else v.astype(target) for v in views]
