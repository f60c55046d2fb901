"""How long ``needle.viz`` takes on W4's 100,000-op chain (collapsed pictures).

``python -m bench.bench_viz [--n-ops N] [--repeat R]`` prints a markdown table: the best of
``--repeat`` runs of ``viz.to_dot`` on the chain, on the chain with its backward, and
``viz.render`` to SVG (the DOT text plus Graphviz's ``dot``, when it is installed).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import needle as ndl
from bench.workloads import chain_data, chain_forward
from needle import viz


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_viz",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-ops", type=int, default=100_000, help="length of the chain")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats (best is shown)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Time to_dot and render on a long chain."""
    args = parse_args(argv)

    data = chain_data(args.n_ops, 8)
    x = ndl.Tensor(data["x"])
    c_add = ndl.Tensor(data["c_add"], requires_grad=False)
    c_mul = ndl.Tensor(data["c_mul"], requires_grad=False)
    y = chain_forward(x, {**data, "c_add": c_add, "c_mul": c_mul}, ndl.tanh)
    y.sum().backward()

    rows = [
        ("to_dot(y)", lambda: viz.to_dot(y)),
        ("to_dot(y, backward=True)", lambda: viz.to_dot(y, backward=True)),
    ]
    out = Path(tempfile.mkdtemp(prefix="needle-bench-viz-"))
    if shutil.which("dot"):
        rows.append(("render(y, backward=True, path='chain.svg')",
                     lambda: viz.render(y, backward=True, path=out / "chain.svg")))
    print(f"W4 chain of {args.n_ops:,} ops; best of {args.repeat}\n")
    print("| call | boxes drawn | s |")
    print("|---|---:|---:|")
    for name, fn in rows:
        seconds = _best(fn, args.repeat)
        text = viz.to_dot(y, backward="backward" in name)
        boxes = sum(1 for line in text.splitlines() if line.lstrip().startswith("n")
                    and "[label=" in line)
        print(f"| `{name}` | {boxes} | {seconds:.2f} |")
    if not shutil.which("dot"):
        print("\n(render not timed: Graphviz's dot is not installed)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
