"""Anomaly detection: ``detect_anomaly()`` checks every forward result and gradient for
NaN/Inf and names the op, the line of user code that created it, and the shapes.

While some thread is inside ``detect_anomaly()`` an observer of every op result and a
wrapper of every gradient are registered with the engine (``core.OBSERVERS``,
``core.GRADIENT_WRAPPERS``); otherwise the engine pays nothing for this module.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import core
from .core import Value
from .errors import GraphError
from .grad_mode import bare_decorator

__all__ = ["detect_anomaly", "user_site"]

_ANOMALY = threading.local()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Threads inside detect_anomaly(); the engine hooks are registered while it is positive.
_DEPTH = 0
_LOCK = threading.Lock()


class detect_anomaly:
    """Check every forward result and gradient for NaN/Inf (context manager or decorator).

    Inside the block, nodes remember the line of user code that created them, and the
    first op whose result or gradient holds NaN or Inf raises :class:`GraphError`
    naming the op, that creation site and the shapes. Off by default; free when off.
    Also ``@detect_anomaly`` and ``@detect_anomaly()``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return bare_decorator(cls, fn) or super().__new__(cls)

    def __enter__(self) -> detect_anomaly:
        global _DEPTH
        self._previous = getattr(_ANOMALY, "on", False)
        if not self._previous:
            with _LOCK:
                _DEPTH += 1
                if _DEPTH == 1:
                    core.OBSERVERS.append(_check_forward)
                    core.GRADIENT_WRAPPERS.append(_checked_gradient)
        _ANOMALY.on = True
        return self

    def __exit__(self, *exc: Any) -> None:
        global _DEPTH
        _ANOMALY.on = self._previous
        if not self._previous:
            with _LOCK:
                _DEPTH -= 1
                if _DEPTH == 0:
                    core.OBSERVERS.remove(_check_forward)
                    core.GRADIENT_WRAPPERS.remove(_checked_gradient)

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return fn(*args, **kwargs)

        return wrapper


def user_site() -> str:
    """file:line (function) of the innermost caller outside the needle package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _non_finite(value: Value) -> bool:
    data = value._data
    if data is None:
        return False
    xp = value._device.xp
    for part in data if data.__class__ is tuple else (data,):
        if part.dtype.kind == "f" and not bool(xp.all(xp.isfinite(part))):
            return True
    return False


def _shape_of(data: Any) -> Any:
    if isinstance(data, tuple):
        return tuple(_shape_of(d) for d in data)
    return tuple(data.shape)


def _describe(values: Iterable[Value]) -> str:
    return ", ".join(str(_shape_of(v._data)) for v in values)


def _site_of(node: Value) -> str:
    return node.__dict__.get("_creation_site", "<created outside detect_anomaly>")


def _check_forward(op: Any, inputs: tuple, value: Value) -> None:
    if not getattr(_ANOMALY, "on", False):
        return
    backward_of = getattr(_ANOMALY, "backward_of", None)
    if backward_of is None:
        value._creation_site = user_site()
    if not _non_finite(value):
        return
    bad_inputs = [i for i, x in enumerate(inputs) if _non_finite(x)]
    how = (f"received NaN/Inf in input(s) {bad_inputs}" if bad_inputs
           else "produced NaN/Inf from finite inputs")
    shapes = f"input shapes [{_describe(inputs)}], output shape {_shape_of(value._data)}"
    if backward_of is not None:
        raise GraphError(
            f"detect_anomaly: backward of {backward_of.op.name} (the node created at "
            f"{_site_of(backward_of)}, input shapes [{_describe(backward_of.inputs)}]): its "
            f"{op.name} step {how}; {shapes}"
        )
    raise GraphError(f"detect_anomaly: forward of {op.name} {how}; created at "
                     f"{value._creation_site}; {shapes}")


def _checked_gradient(node: Value, grad: Value, gradient: Callable) -> tuple:
    """``gradient(node, grad)`` with every step and result checked for NaN/Inf."""
    if not getattr(_ANOMALY, "on", False):
        return gradient(node, grad)
    previous = getattr(_ANOMALY, "backward_of", None)
    _ANOMALY.backward_of = node
    try:
        grads = gradient(node, grad)
    finally:
        _ANOMALY.backward_of = previous
    for i, g in enumerate(grads):
        if g is not None and _non_finite(g):
            source = ("received a NaN/Inf gradient" if _non_finite(grad)
                      else "produced NaN/Inf")
            raise GraphError(
                f"detect_anomaly: backward of {node.op.name} {source} for input {i}; the node "
                f"was created at {_site_of(node)}; input shapes [{_describe(node.inputs)}], "
                f"gradient shape {_shape_of(g._data)}"
            )
    return grads
