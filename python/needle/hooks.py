"""Handles for registered hooks (tensor gradient hooks, module forward hooks)."""

from __future__ import annotations

import itertools
from typing import Any

_NEXT_ID = itertools.count()


class RemovableHandle:
    """What ``register_*hook`` returns: ``handle.remove()`` unregisters the hook.

    Also a context manager: the hook is removed when the block exits.
    """

    __slots__ = ("_registry", "id")

    def __init__(self, registry: dict) -> None:
        self._registry = registry
        self.id = next(_NEXT_ID)

    def remove(self) -> None:
        """Unregister the hook (removing twice is harmless)."""
        self._registry.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def add_hook(registry: dict, fn: Any, where: str) -> RemovableHandle:
    """Store ``fn`` in ``registry`` (kept in registration order) and return its handle."""
    if not callable(fn):
        raise TypeError(f"{where}: the hook must be callable, got {type(fn).__name__}")
    handle = RemovableHandle(registry)
    registry[handle.id] = fn
    return handle
