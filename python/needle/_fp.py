"""Run op computations with numpy's floating-point warnings off, as PyTorch does.

``log(-1)``, ``1 / 0``, ``exp(1000)``, ``0 * inf`` give NaN or Inf silently in an op;
``autograd.detect_anomaly`` is the tool that reports them. Every call of an op's
``compute`` goes through :func:`call_quietly` (the engine's eager and lazy paths and
``graph.Evaluator``; the eager path inlines it), so a new op gets this without doing
anything.

numpy 2 keeps its error state in a context variable. needle keeps a private
``contextvars.Context`` in which that state is "ignore" and runs each compute inside it:
entering a context is one C call (a few hundred instructions, where ``with
numpy.errstate(...)`` costs about 1.5 µs), and the caller's own error state
(``numpy.seterr``, ``numpy.errstate``) is never changed. A context can be entered by one
thread at a time and not re-entered; when it is busy (another thread is computing, or a
compute calls an op) the call runs in a context of its own thread instead.
numpy 1.x keeps the state per thread outside contextvars; there a fresh ``errstate`` per
call does the same job, more slowly.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import numpy

__all__ = ["call_quietly", "run_quietly", "quiet_compute"]

_NUMPY_2 = int(numpy.__version__.split(".")[0]) >= 2


def _quiet_context() -> contextvars.Context:
    context = contextvars.Context()
    context.run(numpy.seterr, all="ignore")
    return context


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.context = _quiet_context()


_PER_THREAD = _PerThread()


def _with_errstate(fn: Callable[..., Any], *args: Any) -> Any:
    with numpy.errstate(all="ignore"):
        return fn(*args)


if _NUMPY_2:
    # The fast path: Context.run of one shared context, bound once.
    run_quietly: Callable[..., Any] = _quiet_context().run
else:  # pragma: no cover - numpy 1.x
    run_quietly = _with_errstate


def quiet_compute(error: RuntimeError, fn: Callable[..., Any], *args: Any) -> Any:
    """The slow path of ``run_quietly(fn, *args)``, after it raised ``error``.

    Call sites do ``try: run_quietly(op.compute, *arrays) except RuntimeError as e:
    quiet_compute(e, op.compute, *arrays)``, which costs nothing until it is needed.
    ``error`` is re-raised unless it says that the shared context was busy.
    """
    if not str(error).startswith("cannot enter context"):
        raise error
    context = _PER_THREAD.context
    try:
        return context.run(fn, *args)
    except RuntimeError as again:
        if not str(again).startswith("cannot enter context"):
            raise
    return _with_errstate(fn, *args)


def call_quietly(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with numpy's floating-point errors ignored, thread-safe and re-entrant."""
    try:
        return run_quietly(fn, *args)
    except RuntimeError as e:
        return quiet_compute(e, fn, *args)
