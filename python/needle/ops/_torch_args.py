"""PyTorch's argument names (``dim=``, ``keepdim=``) beside numpy's (``axes=``/``axis=``,
``keepdims=``) for the reductions and joins of ops_reduce, ops_select and ops_shape.

One helper, so that every op resolves the aliases, and reports passing both, the same way.
"""

from __future__ import annotations

from typing import Any

from ..errors import DTypeError


def pick(op: str, name: str, value: Any, alias: str, alias_value: Any, default: Any) -> Any:
    """The argument given as ``name`` or as its PyTorch ``alias``; ``default`` if neither.

    ``None`` means "not given" for both spellings. Giving both is an error, even when the
    values agree, because one of them is then a leftover that the reader may misread.
    """
    if alias_value is None:
        return default if value is None else value
    if value is not None:
        raise DTypeError(f"{op}: got both {name}={value!r} and {alias}={alias_value!r}; "
                         f"pass one of them")
    return alias_value


def axes_keepdims(op: str, axes: Any, keepdims: bool, dim: Any, keepdim: Any,
                  name: str = "axes") -> tuple:
    """``(axes, keepdims)`` of a reduction from numpy's and PyTorch's spellings.

    ``keepdims=False`` counts as "not given", so ``keepdim=True`` alone turns it on.
    """
    axes = pick(op, name, axes, "dim", dim, None)
    keepdims = pick(op, "keepdims", keepdims or None, "keepdim", keepdim, False)
    return axes, bool(keepdims)
