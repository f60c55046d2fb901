"""Run op computations with numpy's floating-point warnings off, as PyTorch does.

``log(-1)``, ``1 / 0``, ``exp(1000)``, ``0 * inf`` give NaN or Inf silently in an op;
``autograd.detect_anomaly`` is the tool that reports them. Every call of an op's
``compute`` goes through ``QUIET.run(op.compute, *arrays)``: the engine's eager and lazy
paths and ``graph.Evaluator``, so a new op gets this without doing anything.

numpy 2 keeps its error state in a context variable. ``QUIET.run`` runs the call inside a
private ``contextvars.Context`` (one per thread) in which that state is "ignore": entering
it is one C call (about 0.1 µs, where ``with numpy.errstate(...)`` costs about 1.5 µs), and
the caller's own error state (``numpy.seterr``, ``numpy.errstate``) is never changed. A
compute must not call needle ops (the op contract): a context cannot be entered twice.
numpy 1.x keeps the state per thread outside contextvars; there a fresh ``errstate`` per
call does the same job, more slowly.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import numpy

__all__ = ["QUIET"]

_NUMPY_2 = int(numpy.__version__.split(".")[0]) >= 2


if _NUMPY_2:

    class _Quiet(threading.local):
        """Per thread: ``run(fn, *args)`` calls ``fn`` with numpy's FP errors ignored."""

        def __init__(self) -> None:
            context = contextvars.Context()
            context.run(numpy.seterr, all="ignore")
            self.run: Callable[..., Any] = context.run

else:  # pragma: no cover - numpy 1.x

    def _run_quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with numpy.errstate(all="ignore"):
            return fn(*args, **kwargs)

    class _Quiet:
        run = staticmethod(_run_quietly)


QUIET = _Quiet()
