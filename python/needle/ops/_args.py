"""Argument spellings shared by the reductions: Needle's ``axes``/``keepdims`` and
PyTorch's ``dim``/``keepdim``."""

from __future__ import annotations

from typing import Any


def reduction_args(
    op: str,
    axes: Any,
    dim: Any = None,
    keepdims: bool = False,
    keepdim: bool | None = None,
    *,
    axes_default: Any = None,
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

    Returns
    -------
    (axes, keepdims)

    Raises
    ------
    TypeError
        Both spellings of the same argument were given.
    """
    if dim is not None:
        if axes is not axes_default and axes != axes_default:
            raise TypeError(f"{op}: got both axes={axes!r} and dim={dim!r}; they are two "
                            "spellings of the same argument, give one")
        axes = dim
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{op}: got both keepdims={keepdims!r} and keepdim={keepdim!r}; "
                            "they are two spellings of the same argument, give one")
        keepdims = bool(keepdim)
    return axes, keepdims
