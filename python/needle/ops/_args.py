"""Argument spellings: Needle's and numpy's (``axes``/``axis``, ``keepdims``) beside
PyTorch's (``dim``, ``keepdim``), resolved the same way by every op that takes them.

Giving both spellings of one argument is an error, even when the values agree, because one
of them is then a leftover that the reader may misread.
"""

from __future__ import annotations

from typing import Any

from ..errors import DTypeError


def pick(op: str, name: str, value: Any, alias: str, alias_value: Any, default: Any) -> Any:
    """The argument given as ``name`` or as its PyTorch ``alias``; ``default`` if neither.

    ``None`` means "not given" for both spellings.

    Raises
    ------
    DTypeError
        Both spellings were given.
    """
    if alias_value is None:
        return default if value is None else value
    if value is not None:
        raise DTypeError(f"{op}: got both {name}={value!r} and {alias}={alias_value!r}; "
                         f"they are two spellings of the same argument, give one")
    return alias_value


def reduction_args(
    op: str,
    axes: Any,
    dim: Any = None,
    keepdims: bool = False,
    keepdim: bool | None = None,
    *,
    axes_default: Any = None,
    name: str = "axes",
) -> tuple[Any, bool]:
    """Resolve ``dim=``/``keepdim=`` (PyTorch) against ``axes=``/``keepdims=`` (Needle).

    Every reduction calls this with the values it received, e.g.
    ``axes, keepdims = reduction_args("sum", axes, dim, keepdims, keepdim)``.

    Parameters
    ----------
    op : str
        The op's name, for the error message.
    axes, dim : int, tuple of int or None
        The Needle and the PyTorch spelling of the reduced axes; ``dim`` is None when not given.
    keepdims, keepdim : bool
        The Needle and the PyTorch spelling; ``keepdim`` is None when not given.
    axes_default : optional
        The op's default for ``axes`` (``-1`` for softmax): ``axes`` equal to it counts as
        not given.
    name : str
        How the op spells ``axes`` (``"axis"`` for argmax), for the error message.

    Returns
    -------
    (axes, keepdims)

    Raises
    ------
    DTypeError
        Both spellings of the same argument were given (a ``TypeError``).
    """
    if dim is not None:
        if axes is not axes_default and axes != axes_default:
            raise DTypeError(f"{op}: got both {name}={axes!r} and dim={dim!r}; they are two "
                             "spellings of the same argument, give one")
        axes = dim
    if keepdim is not None:
        if keepdims:
            raise DTypeError(f"{op}: got both keepdims={keepdims!r} and keepdim={keepdim!r}; "
                            "they are two spellings of the same argument, give one")
        keepdims = bool(keepdim)
    return axes, keepdims
