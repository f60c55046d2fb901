"""A/B of the engine's dispatch cost in one process: this tree's needle against a git revision.

``python -m bench.ab_engine [--base main] [--rounds 40]`` copies ``python/needle`` of the
revision and of the working tree into a temporary directory under two package names,
imports both, and times interleaved rounds of

- W1's chain (200 ops on (8,): ``+ c``, ``* c``, ``tanh``, ``* 0.5``), forward only and
  forward + backward, per op;
- the same on the working tree after one in-place op whose tensor stays alive (its write
  log exists, so nodes record epochs and backward takes the checked path);
- detached view ops (``x[0]``, ``reshape``, ``transpose`` of a constant), per op.

Interleaving in one process makes the comparison fair on a busy machine; the minimum over
rounds is the number to compare. Nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _export(base: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", base, "python/needle"], cwd=REPO,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into / "export", filter="data")
    shutil.move(into / "export" / "python" / "needle", into / "needle_base")
    for name in ("needle_new", "needle_inuse"):
        shutil.copytree(REPO / "python" / "needle", into / name,
                        ignore=shutil.ignore_patterns("__pycache__"))


def _chain(ndl):
    rng = np.random.default_rng(0)
    x = ndl.Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=True)
    ca = ndl.Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=False)
    cm = ndl.Tensor(rng.standard_normal(8).astype(np.float32), requires_grad=False)

    def fwd():
        y = x
        for i in range(200):
            k = i % 4
            if k == 0:
                y = y + ca
            elif k == 1:
                y = y * cm
            elif k == 2:
                y = ndl.tanh(y)
            else:
                y = y * 0.5
        return y

    def step():
        fwd().sum().backward()

    return fwd, step


def _views(ndl):
    x = ndl.Tensor(np.ones((8, 8), np.float32), requires_grad=False)

    def run():
        for _ in range(100):
            x[0]
            x.reshape((64,))
            x.transpose()

    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(prog="python -m bench.ab_engine",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--base", default="main", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved timing rounds")
    return parser.parse_args(argv)


def main() -> int:
    """Time the working tree's engine against ``--base``'s, interleaved in one process."""
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _export(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        import needle_base
        import needle_inuse
        import needle_new

        has_inplace = hasattr(needle_inuse.Tensor, "add_")
        if has_inplace:
            keep = needle_inuse.Tensor(np.zeros(3, np.float32), requires_grad=False)
            keep += 1.0
        cases = {"base": needle_base, "new": needle_new}
        if has_inplace:
            cases["new, in-place in use"] = needle_inuse
        timers = {name: (*_chain(lib), _views(lib)) for name, lib in cases.items()}
        results: dict = {name: ([], [], []) for name in cases}
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                fwd, step, views = timers[name]
                f, fb, v = results[name]
                f.append(timeit.timeit(fwd, number=5) / 5 / 200 * 1e6)
                fb.append(timeit.timeit(step, number=5) / 5 / 200 * 1e6)
                v.append(timeit.timeit(views, number=3) / 3 / 300 * 1e6)
        print(f"base = {args.base}, new = working tree; us per op, min / median of "
              f"{args.rounds} rounds")
        for name in names:
            f, fb, v = results[name]
            print(f"{name:22s} W1 fwd {min(f):6.2f} / {statistics.median(f):6.2f}   "
                  f"W1 fwd+bwd {min(fb):6.2f} / {statistics.median(fb):6.2f}   "
                  f"view ops {min(v):6.2f} / {statistics.median(v):6.2f}")
        if has_inplace:
            del keep
    return 0


if __name__ == "__main__":
    sys.exit(main())
