"""Grad modes: whether ops called now record the graph (per thread, like PyTorch).

``no_grad()``, ``enable_grad()`` and ``set_grad_enabled(mode)`` are context managers and
decorators that restore the previous mode; ``is_grad_enabled()`` reads it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "bare_decorator"]


class _GradMode(threading.local):
    enabled = True


GRAD_MODE = _GradMode()
# How many threads have grad mode off right now: while it is 0 every thread records, and
# the engine reads this plain counter instead of the (slower) thread-local flag.
OFF_THREADS = [0]
_LOCK = threading.Lock()


def _set(mode: bool) -> None:
    previous = GRAD_MODE.enabled
    if previous != mode:
        with _LOCK:
            OFF_THREADS[0] += -1 if mode else 1
        GRAD_MODE.enabled = mode


def is_grad_enabled() -> bool:
    """Whether ops called now record the graph (False inside ``no_grad()``)."""
    return GRAD_MODE.enabled


class set_grad_enabled:
    """Context manager and decorator that sets grad mode and restores the previous one.

    Parameters
    ----------
    mode : bool
        Whether ops record the graph inside the block.
    """

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self._previous: list[bool] = []

    def __enter__(self) -> set_grad_enabled:
        self._previous.append(GRAD_MODE.enabled)
        _set(self.mode)
        return self

    def __exit__(self, *exc: Any) -> None:
        _set(self._previous.pop())

    def __call__(self, fn: Callable) -> Callable:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


def bare_decorator(cls: type, fn: Callable | None) -> Any:
    """``cls()(fn)`` when a mode class is used as ``@cls`` (no parentheses), else None."""
    if fn is None:
        return None
    if not callable(fn):
        raise TypeError(f"{cls.__name__}: expected a function to decorate (or no argument), "
                        f"got {type(fn).__name__}")
    return cls()(fn)


class no_grad(set_grad_enabled):
    """Disable graph recording: results are detached leaves.

    Use it as ``with ndl.no_grad():``, ``@ndl.no_grad()`` or ``@ndl.no_grad``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return bare_decorator(cls, fn) or super().__new__(cls)

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Re-enable graph recording inside ``no_grad``.

    Use it as ``with ndl.enable_grad():``, ``@ndl.enable_grad()`` or ``@ndl.enable_grad``.
    """

    def __new__(cls, fn: Callable | None = None) -> Any:
        return bare_decorator(cls, fn) or super().__new__(cls)

    def __init__(self, fn: Callable | None = None) -> None:
        super().__init__(True)
