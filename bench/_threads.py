"""Thread pinning for the stand-alone bench scripts (``bench_fused``, ``bench_conv``).

OpenBLAS and OpenMP read their thread counts once, when numpy is first imported, so the
scripts call :func:`pin_from_argv` before importing numpy: ``--threads N`` on the command
line (default 1) goes into the same environment variables that ``bench.run`` sets for its
workers. :func:`limit` then applies the count through threadpoolctl as well, which also
covers callers that imported numpy first (the tests call ``main()`` in-process).
"""

from __future__ import annotations

import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def threads_from_argv(argv: list[str], default: int = 1) -> int:
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (``default`` if absent)."""
    for i, arg in enumerate(argv):
        value = None
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return max(1, int(value))
            except ValueError:
                return default  # argparse reports the bad value later
    return default


def pin_from_argv(default: int = 1, argv: list[str] | None = None) -> int:
    """Set the BLAS/OpenMP thread variables from ``--threads``; returns the count."""
    threads = threads_from_argv(sys.argv[1:] if argv is None else argv, default)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    return threads


def limit(threads: int) -> str:
    """Limit numpy's BLAS pools to ``threads`` now; describe the pools afterwards."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return (f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'library default')} "
                "(from the environment; threadpoolctl not installed)")
    threadpool_limits(threads)
    pools = [f"{p.get('internal_api')} {p.get('num_threads')}" for p in threadpool_info()
             if p.get("user_api") == "blas"]
    return "BLAS threads: " + (", ".join(pools) or "no BLAS pool found")
