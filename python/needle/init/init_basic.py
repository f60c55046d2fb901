"""Random and constant tensors.

Every random function draws once, for the whole shape, from numpy's global RNG
(``np.random.rand`` / ``np.random.randn``): results are reproducible with
``np.random.seed`` and match the reference Needle draw for draw.
"""

from typing import Any

import numpy as np

from .. import core
from ..backend_selection import default_device, mask_dtype
from ..errors import ShapeError
from ..tensor import Tensor, check_device


def _device(device: Any, where: str) -> Any:
    if device is None:
        return default_device()
    check_device(device, where)
    return device


def _draw(device: Any, kind: str, shape: tuple) -> np.ndarray:
    """``shape`` samples of numpy's ``rand`` or ``randn`` in float64, in one draw from the
    global RNG (``device.draw``): every random tensor of needle is drawn here."""
    return device.draw(kind, shape)


def _tensor(array: np.ndarray, device: Any, dtype: Any, requires_grad: bool) -> Tensor:
    return Tensor(array, device=device, dtype=dtype, requires_grad=requires_grad)


def _random(tensor: Tensor, redraw: Any, values: Any) -> Tensor:
    """[jit hook] Tell a tracing ndl.jit that ``tensor`` is a fresh random draw: a replay
    calls ``redraw()`` (the same call, drawing from the same generator in the same order),
    or just ``values()``, the same draw as a numpy array before the cast to the tensor's
    dtype, when that gives the same bits (the jit checks it on the traced call)."""
    if core.TRACER is not None:
        redraw.values = values
        core.TRACER.random(tensor, redraw)
    return tensor


def rand(
    *shape: int,
    low: float = 0.0,
    high: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in ``[low, high)``.

    Parameters
    ----------
    *shape : int
        Output shape.
    low, high : float
        Bounds of the interval.
    device, dtype, requires_grad
        Passed to the new Tensor.
    """
    device = _device(device, "init.rand")
    array = _draw(device, "rand", shape) * (high - low) + low
    return _random(_tensor(array, device, dtype, requires_grad),
                   lambda: rand(*shape, low=low, high=high, device=device, dtype=dtype),
                   lambda: _draw(device, "rand", shape) * (high - low) + low)


def randn(
    *shape: int,
    mean: float = 0.0,
    std: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Normal samples with the given ``mean`` and ``std``."""
    device = _device(device, "init.randn")
    array = _draw(device, "randn", shape) * std + mean
    return _random(_tensor(array, device, dtype, requires_grad),
                   lambda: randn(*shape, mean=mean, std=std, device=device, dtype=dtype),
                   lambda: _draw(device, "randn", shape) * std + mean)


def constant(
    *shape: int,
    c: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """A tensor of ``shape`` filled with ``c``."""
    device = _device(device, "init.constant")
    return _tensor(np.full(shape, c, dtype=np.float64), device, dtype, requires_grad)


def ones(
    *shape: int, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """A tensor of ones."""
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(
    *shape: int, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """A tensor of zeros."""
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(
    *shape: int,
    p: float = 0.5,
    device: Any = None,
    dtype: str = "bool",
    requires_grad: bool = False,
) -> Tensor:
    """Bernoulli samples: ``rand(*shape) <= p``.

    The ``nd`` backend has no bool dtype, so there the result is a float32 tensor of
    0.0 and 1.0 (or float64 when asked); under ``NEEDLE_BACKEND=np`` it is bool by default.
    """
    device = _device(device, "init.randb")
    mask = _draw(device, "rand", shape) <= p
    return _random(_tensor(mask, device, mask_dtype(dtype), requires_grad),
                   lambda: randb(*shape, p=p, device=device, dtype=dtype),
                   lambda: _draw(device, "rand", shape) <= p)


def one_hot(
    n: int, i: Any, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """Rows of the ``n x n`` identity matrix selected by the class ids ``i``.

    Parameters
    ----------
    n : int
        Number of classes.
    i : Tensor or array_like
        Integer class ids (any shape; float tensors holding integers are fine).
    """
    device = _device(device, "init.one_hot")
    if isinstance(i, Tensor) and i._data is not None and i.device == device and (
            np.dtype(dtype).kind == "f"):
        # An op on the ids tensor, not host code reading its values: ndl.jit replays it.
        from ..ops import OneHot

        out = OneHot(n, dtype)(i)
        return out.requires_grad_(True) if requires_grad else out
    raw = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
    ids = raw.astype(np.int64)
    if raw.dtype.kind == "f" and ids.size and not (ids == raw).all():
        bad = raw[ids != raw].reshape(-1)[0]
        raise ShapeError(f"one_hot: class ids must be integers, got {bad}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ShapeError(f"one_hot: class ids must be in [0, {n}); got {ids.min()}..{ids.max()}")
    # Scatter into (len(ids), n) rather than indexing an n x n identity: PTB has n = 10,000.
    array = np.zeros(ids.shape + (n,), dtype=np.float64)
    np.put_along_axis(array, ids[..., None], 1.0, axis=-1)
    return _tensor(array, device, dtype, requires_grad)


def zeros_like(array: Tensor, *, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    device = device if device else array.device
    return zeros(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)


def ones_like(array: Tensor, *, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones of ``array``'s shape and dtype (on its device unless ``device`` is given)."""
    device = device if device else array.device
    return ones(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)
