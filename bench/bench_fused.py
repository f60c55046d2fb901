"""Fused vs unfused matmul+layernorm and matmul+softmax: time and peak memory.

``python -m bench.bench_fused [--repeat N] [--small] [--threads T] [--out-dir DIR]`` prints
a markdown table and writes it to ``DIR/bench_fused.md`` (default ``bench/out/``, untracked).
Each workload is a forward and backward pass (eager: ``backward()``; graph: one
``Evaluator.run`` of the output and its gradients), float32. Time is the best of
``--repeat`` runs; peak memory is traced by ``tracemalloc`` (numpy reports its buffers to
it) in a separate run, so tracing does not distort the timings. BLAS runs on ``--threads``
threads (default 1: steadier timings on a shared machine), set before numpy is imported.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    from bench._threads import pin_from_argv

    pin_from_argv()

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
from bench._threads import limit  # noqa: E402
from needle import graph as ad  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def unfused_layernorm(a, b, normalized_shape, eps=1e-5):
    """layernorm(a @ b) composed of basic ops (the graph the fused op replaces)."""
    axes = tuple(range(-len(normalized_shape), 0))
    h = a @ b
    centred = h - ndl.ops.mean(h, axes, keepdims=True)
    var = ndl.ops.mean(centred * centred, axes, keepdims=True)
    return centred / ndl.ops.sqrt(var + eps)


def unfused_softmax(a, b, dim=-1):
    h = a @ b
    e = ndl.ops.exp(h - ndl.ops.max(h, dim, keepdims=True))
    return e / ndl.ops.summation(e, dim, keepdims=True)


def _workloads(small: bool) -> list:
    s = 4 if small else 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048 // s, 256 // s)).astype(np.float32)
    w = (rng.standard_normal((256 // s, 512 // s)) / 16).astype(np.float32)
    q = rng.standard_normal((8, 256 // s, 64)).astype(np.float32)
    k_t = (rng.standard_normal((8, 64, 256 // s)) / 8).astype(np.float32)
    n = 512 // s
    return [
        ("matmul_layernorm", (x, w),
         lambda a, b: ndl.matmul_layernorm(a, b, (n,)),
         lambda a, b: unfused_layernorm(a, b, (n,))),
        ("matmul_softmax", (q, k_t),
         lambda a, b: ndl.matmul_softmax(a, b, -1),
         lambda a, b: unfused_softmax(a, b, -1)),
    ]


def _eager_step(fn: Callable, arrays: tuple, proj: np.ndarray) -> Callable[[], None]:
    a, b = (ndl.Tensor(v, dtype="float32") for v in arrays)
    p = ndl.Tensor(proj, dtype="float32", requires_grad=False)

    def step() -> None:
        (fn(a, b) * p).sum().backward()
        a.grad = b.grad = None

    return step


def _graph_step(fn: Callable, arrays: tuple, proj: np.ndarray) -> Callable[[], None]:
    a, b, p = ad.Variable("a"), ad.Variable("b"), ad.Variable("p")
    y = fn(a, b)
    evaluator = ad.Evaluator([y] + ad.gradients(y * p, [a, b]))
    feed = {a: arrays[0], b: arrays[1], p: proj}
    return lambda: evaluator.run(feed)


def _best_time(step: Callable[[], None], repeat: int) -> float:
    step()  # warm up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return best


def _peak_bytes(step: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_fused",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs (best is kept)")
    parser.add_argument("--small", action="store_true", help="4x smaller sizes (quick check)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--out-dir", default=OUT_DIR, help="where bench_fused.md is written")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    threads_note = limit(args.threads)
    rows = []
    for name, arrays, fused, unfused in _workloads(args.small):
        proj = np.random.default_rng(1).standard_normal(
            np.matmul(*arrays).shape).astype(np.float32)
        for mode, make in (("eager", _eager_step), ("graph", _graph_step)):
            row = {"op": name, "mode": mode,
                   "shapes": f"{arrays[0].shape} @ {arrays[1].shape}"}
            for label, fn in (("unfused", unfused), ("fused", fused)):
                step = make(fn, arrays, proj)
                row[f"{label}_ms"] = 1e3 * _best_time(step, args.repeat)
                row[f"{label}_mb"] = _peak_bytes(step) / 2**20
            rows.append(row)
    lines = [f"Fused vs unfused, forward + backward, float32, best of {args.repeat}; "
             f"{threads_note}", "",
             "| op | mode | shapes | unfused ms | fused ms | speed-up | unfused peak MB "
             "| fused peak MB | memory saved |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['mode']} | {r['shapes']} | {r['unfused_ms']:.1f} | "
                     f"{r['fused_ms']:.1f} | {r['unfused_ms'] / r['fused_ms']:.2f}x | "
                     f"{r['unfused_mb']:.1f} | {r['fused_mb']:.1f} | "
                     f"{1 - r['fused_mb'] / r['unfused_mb']:.0%} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "bench_fused.md")
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
