"""Weight initialisers (Glorot/Xavier and He/Kaiming), built on ``rand``/``randn``."""

import math
from typing import Any

from ..autograd import Tensor
from .init_basic import rand, randn


def _check_relu(nonlinearity: str) -> None:
    if nonlinearity != "relu":
        raise ValueError(
            f"kaiming init: only nonlinearity='relu' is supported, got {nonlinearity!r}"
        )


def xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0, **kwargs: Any) -> Tensor:
    """U(-a, a) of shape ``(fan_in, fan_out)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    ``kwargs`` (device, dtype, requires_grad) go to :func:`rand`.
    """
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(fan_in, fan_out, low=-a, high=a, **kwargs)


def xavier_normal(fan_in: int, fan_out: int, gain: float = 1.0, **kwargs: Any) -> Tensor:
    """N(0, std^2) of shape ``(fan_in, fan_out)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(fan_in, fan_out, mean=0.0, std=std, **kwargs)


def kaiming_uniform(
    fan_in: int,
    fan_out: int,
    shape: tuple | None = None,
    nonlinearity: str = "relu",
    **kwargs: Any,
) -> Tensor:
    """U(-b, b) with ``b = sqrt(2) * sqrt(3 / fan_in)`` (He init for ReLU).

    Parameters
    ----------
    fan_in, fan_out : int
        Fans; ``fan_in`` sets the bound, and together they are the shape when
        ``shape`` is None.
    shape : tuple, optional
        Output shape (e.g. a conv kernel ``(k, k, c_in, c_out)``).
    """
    _check_relu(nonlinearity)
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    return rand(*shape, low=-bound, high=bound, **kwargs)


def kaiming_normal(
    fan_in: int,
    fan_out: int,
    shape: tuple | None = None,
    nonlinearity: str = "relu",
    **kwargs: Any,
) -> Tensor:
    """N(0, std^2) with ``std = sqrt(2) / sqrt(fan_in)``; shape ``(fan_in, fan_out)`` by default."""
    _check_relu(nonlinearity)
    std = math.sqrt(2.0) / math.sqrt(fan_in)
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    return randn(*shape, mean=0.0, std=std, **kwargs)
