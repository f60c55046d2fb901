"""Allreduce bandwidth by message size: needle against mpi4py on plain numpy buffers.

``python -m bench.bench_allreduce`` (it re-launches itself under the ``mpiexec`` next to this
Python with ``-n 2``; or run ``mpiexec -n N python -m bench.bench_allreduce`` yourself).
For each float32 message size from 1 KB to 64 MB it times, interleaved and with a barrier
before each timed block:

- ``mpi4py Allreduce``: ``comm.Allreduce(MPI.IN_PLACE, [array, MPI.FLOAT])`` on a numpy
  array, the MPI library's own figure;
- ``needle all_reduce``: ``needle.distributed.all_reduce(tensor)`` on a Tensor of that size,
  with the default check that every rank passes the same shape (one more 16-byte
  allreduce, so one more synchronisation);
- ``unchecked``: the same with ``init_process_group(check_collectives=False)``;
- ``DDP bucket``: what ``DistributedDataParallel`` does per bucket, ``Iallreduce`` then
  ``Wait`` on the flat buffer.

Reported: the median and the best time per call over ``--repeat`` blocks (each block the
slowest rank's; the order of the four rotates from one repeat to the next), the algorithm
bandwidth (bytes / time) and the overheads over mpi4py, from the medians. On a machine
shared with other work, waiting for a descheduled rank dominates; the best times show what
the MPI library can do. A markdown table is printed and, with the raw numbers as JSON,
written under ``--out`` (default ``runs/bench_allreduce/``, untracked).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = [2 ** k for k in range(10, 27, 2)]  # 1 KB ... 64 MB


def _relaunch(argv: list[str], n: int) -> int:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        sys.exit(f"bench_allreduce: no mpiexec next to {sys.executable}; "
                 "`pip install -e '.[distributed]'`")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    cmd = [str(mpiexec), "-n", str(n), sys.executable, "-m", "bench.bench_allreduce", *argv]
    return subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL)


def _time_block(comm, fn, calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls, the slowest rank's."""
    from mpi4py import MPI

    comm.Barrier()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = (time.perf_counter() - start) / calls
    return comm.allreduce(elapsed, op=MPI.MAX)


def _candidates(comm, nbytes: int) -> dict:
    """What is timed, as functions of no arguments, on buffers of ``nbytes``."""
    from mpi4py import MPI

    import needle as ndl
    import needle.distributed as dist

    n = nbytes // 4
    array = np.zeros(n, dtype=np.float32)  # zeros: the sums stay finite and equal
    tensor = ndl.Tensor(np.zeros(n, dtype=np.float32), dtype="float32", requires_grad=False)
    bucket = np.zeros(n, dtype=np.float32)
    world = dist._world()

    def unchecked() -> None:
        world.check = False
        try:
            dist.all_reduce(tensor)
        finally:
            world.check = True

    return {
        "mpi4py Allreduce": lambda: comm.Allreduce(MPI.IN_PLACE, [array, MPI.FLOAT],
                                                   op=MPI.SUM),
        "needle all_reduce": lambda: dist.all_reduce(tensor),
        "unchecked": unchecked,
        "DDP bucket": lambda: world.waitall([world.iallreduce_sum(bucket)]),
    }


def _measure(comm, nbytes: int, repeat: int) -> dict:
    candidates = _candidates(comm, nbytes)
    # enough calls per block for about 20 ms of communication (at ~2 GB/s)
    calls = int(min(200, max(1, 0.02 * 2e9 / max(nbytes, 1))))
    for fn in candidates.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    for i in range(repeat):
        for name in order[i % len(order):] + order[:i % len(order)]:  # rotate: no order bias
            times[name].append(_time_block(comm, candidates[name], calls))
    median = {name: float(np.median(t)) for name, t in times.items()}
    best = {name: float(np.min(t)) for name, t in times.items()}
    base = median["mpi4py Allreduce"]
    return {
        "bytes": nbytes, "calls_per_block": calls, "repeat": repeat,
        "seconds": median, "best_seconds": best, "all_seconds": times,
        "GB/s": {name: nbytes / t / 1e9 for name, t in median.items()},
        "overhead": {name: t / base - 1 for name, t in median.items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_allreduce",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="timed blocks per size")
    parser.add_argument("--max-mb", type=float, default=64, help="largest message, MB")
    parser.add_argument("-n", type=int, default=2, help="processes when re-launching")
    parser.add_argument("--out", default=os.path.join("runs", "bench_allreduce"),
                        help="output folder (untracked)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Measure allreduce by message size: needle's collectives against plain mpi4py."""
    args = parse_args(argv)
    from needle.distributed import launched_world_size

    if launched_world_size() is None:
        sys.exit(_relaunch(sys.argv[1:] if argv is None else argv, args.n))

    from mpi4py import MPI

    import needle.distributed as dist

    dist.init_process_group()
    comm, world, rank = MPI.COMM_WORLD, dist.get_world_size(), dist.get_rank()
    rows = [_measure(comm, nbytes, args.repeat)
            for nbytes in SIZES if nbytes <= args.max_mb * 2 ** 20]
    if rank == 0:
        _report(rows, world, MPI.Get_library_version().split("\n")[0], args.out)
    dist.destroy_process_group()


def _size(nbytes: int) -> str:
    return f"{nbytes // 2 ** 20} MB" if nbytes >= 2 ** 20 else f"{nbytes // 2 ** 10} KB"


def _report(rows: list[dict], world: int, library: str, out: str) -> None:
    names = ["mpi4py Allreduce", "needle all_reduce", "unchecked", "DDP bucket"]
    lines = [
        f"Allreduce (sum, float32, in place) on {world} processes, {' '.join(library.split())}."
        " Time per call in µs: median (best) over the blocks; GB/s and overhead from the "
        "medians",
        "",
        "| size | " + " | ".join(names) + " | mpi4py GB/s | needle GB/s | needle overhead "
        "| unchecked overhead | DDP bucket overhead |",
        "|---:|" + "---:|" * (len(names) + 5),
    ]
    for r in rows:
        s, b, g, o = r["seconds"], r["best_seconds"], r["GB/s"], r["overhead"]
        cells = [f"{s[n] * 1e6:.1f} ({b[n] * 1e6:.1f})" for n in names]
        cells += [f"{g['mpi4py Allreduce']:.2f}", f"{g['needle all_reduce']:.2f}"]
        cells += [f"{o[n]:+.1%}" for n in names[1:]]
        lines.append(f"| {_size(r['bytes'])} | " + " | ".join(cells) + " |")
    big = [r for r in rows if r["bytes"] >= 2 ** 20]
    if big:
        lines.append("")
        for n in names[1:]:
            lines.append(f"{n}: overhead for messages >= 1 MB at most "
                         f"{max(r['overhead'][n] for r in big):+.1%}")
    text = "\n".join(lines)
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "allreduce.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "allreduce.json"), "w") as f:
        json.dump({"world": world, "library": library, "rows": rows}, f, indent=2)
    print(f"\nwritten: {os.path.join(out, 'allreduce.md')}, allreduce.json")


if __name__ == "__main__":
    main()
