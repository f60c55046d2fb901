"""Run the benchmark suite: ``python -m bench.run [--quick] [--only W1,W3] [--save]``.

Each framework runs in its own worker process (see ``bench.worker``); the runner checks every
framework against numpy by hand, interleaves the timed repeats of all frameworks, and writes
``RESULTS.md`` and ``bench.png`` into ``--out-dir`` (default ``bench/out/``, untracked). Only
``--save`` also rewrites the committed ``bench/RESULTS.md`` and ``docs/bench.png`` (what the
README shows). A result that differs from the baseline, or a framework that fails, makes the
run exit with status 1 after the report is written.

``--profile W1`` instead runs one workload in this process under cProfile (needle, backend
from ``NEEDLE_BACKEND``) and prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where every bench entry point writes unless told otherwise (in .gitignore).
OUT_DIR = os.path.join(ROOT, "bench", "out")
# The committed copies the README shows; written only with --save.
SAVED_MARKDOWN = os.path.join(ROOT, "bench", "RESULTS.md")
SAVED_CHART = os.path.join(ROOT, "docs", "bench.png")
# Benchmark the checkout this file is in (needle in python/, apps/ at the root).
for _path in (ROOT, os.path.join(ROOT, "python")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench import report  # noqa: E402
from bench import workloads as wl  # noqa: E402


class WorkerProcess:
    """A running ``python -m bench.run --worker FRAMEWORK`` and its JSON-lines pipe."""

    def __init__(self, framework: str, threads: int, extra_env: dict | None = None) -> None:
        env = dict(os.environ, **(extra_env or {}))
        env["PYTHONPATH"] = os.pathsep.join(
            [ROOT, os.path.join(ROOT, "python")] + [p for p in [env.get("PYTHONPATH")] if p])
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        if framework.startswith("needle-"):
            backend = framework.split("-", 1)[1]
            env["NEEDLE_BACKEND"] = backend if backend in ("nd", "np") else "nd"
        self.framework = framework
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.run", "--worker", framework, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)

    def ask(self, cmd: str, **kwargs: object) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return {"status": "error", "message": f"worker exited (code {self.proc.wait()})"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_timed(name: str, workers: dict, repeats: int, number: int, results: dict,
              pause: float) -> None:
    """Set up ``name`` everywhere, then time it in rounds: one repeat per framework per round."""
    active = []
    for fw, w in workers.items():
        t0 = time.perf_counter()
        reply = w.ask("setup", workload=name)
        results[name, fw] = reply
        status = reply["status"]
        log(f"  {name} {fw:10s} setup {status} ({time.perf_counter() - t0:.1f} s)"
            + (f": {reply.get('message')}" if status != "ok" else ""))
        if status == "ok":
            reply["times"] = []
            active.append(fw)
    for r in range(repeats if active else 0):
        # Rotate the order so no framework always runs right after the same neighbour.
        shift = r % len(active)
        for fw in active[shift:] + active[:shift]:
            if results[name, fw]["status"] != "ok":
                continue
            # Let the previous worker's BLAS threads stop spinning (OpenBLAS busy-waits
            # about 0.1 s after a call), so that they do not steal this worker's cores.
            time.sleep(pause)
            reply = workers[fw].ask("time", number=number)
            if reply["status"] != "ok":
                results[name, fw].update(reply)
                log(f"  {name} {fw}: {reply['status']}: {reply.get('message')}")
                continue
            results[name, fw]["times"].append(reply["seconds"])
    for fw in active:
        workers[fw].ask("drop")


# W4's 100,000-op chain would take minutes under tracemalloc: its peak is measured shorter.
PEAK_SIZES = {"W4": {"n_ops": 10_000}}


def run_peaks(name: str, workers: dict, results: dict) -> None:
    """Peak memory of one step of ``name`` in every framework (see Worker.peak)."""
    for fw, w in workers.items():
        if results.get((name, fw), {}).get("status") != "ok":
            continue
        reply = w.ask("peak", workload=name, sizes=PEAK_SIZES.get(name, {}))
        results[name, fw]["peak"] = reply
        if reply.get("status") == "ok":
            log(f"  {name} {fw:10s} peak {reply['peak_mb']:.2f} MB "
                f"(at the step's start {reply['base_mb']:.2f} MB)")


def run_memory(frameworks: list[str], threads: int, steps: int, results: dict) -> None:
    """W5: per framework, RSS (and TENSOR_COUNTER) growth over ``steps`` W2 steps.

    Each framework gets a fresh worker with a fixed glibc mmap threshold: large arrays are
    then mapped and unmapped one by one, so RSS follows the live memory instead of the
    allocator's lazily trimmed heap (which showed up as spurious negative growth).
    """
    for fw in frameworks:
        w = WorkerProcess(fw, threads, {"MALLOC_MMAP_THRESHOLD_": "65536"})
        try:
            reply = w.ask("setup", workload="W5")
            if reply["status"] == "ok":
                reply = w.ask("memory", steps=steps)
        finally:
            w.close()
        results["W5", fw] = reply
        log(f"  W5 {fw:10s} {reply['status']}: "
            + (f"RSS {reply['rss_mb']:+.1f} MB, counter {reply.get('counter_growth')}"
               if reply["status"] == "ok" else str(reply.get("message"))))


def profile(name: str, top: int = 15) -> None:
    """Run needle's ``name`` under cProfile in this process and print the top functions."""
    import cProfile
    import pstats

    from bench import fw_needle

    spec = wl.WORKLOADS[name]
    case = fw_needle.build(name, wl.make_data(name))
    for _ in range(max(spec.number, 1)):
        case.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(spec.number * 5):
        case.step()
    profiler.disable()
    print(f"needle ({os.environ.get('NEEDLE_BACKEND', 'nd')}) {name}: "
          f"{spec.number * 5} steps under cProfile")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W1,W3")
    parser.add_argument("--frameworks", default=",".join(wl.FRAMEWORKS),
                        help=f"comma-separated subset of {','.join(wl.FRAMEWORKS)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="BLAS/OpenMP threads for every framework (default: all cores)")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of idle time before each timed repeat (default 0.2)")
    parser.add_argument("--out-dir", default=OUT_DIR,
                        help="where RESULTS.md and bench.png are written (default: bench/out)")
    parser.add_argument("--save", action="store_true",
                        help="also rewrite the committed bench/RESULTS.md and docs/bench.png")
    parser.add_argument("--profile", metavar="W", help="cProfile needle on one workload")
    parser.add_argument("--no-peak", action="store_true",
                        help="skip the peak-memory measurement (tracemalloc) of each workload")
    parser.add_argument("--worker", metavar="FRAMEWORK", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _workload(name: str) -> str:
    """The workload key for a name given on the command line, in any case (``w2c``)."""
    name = name.strip()
    return next((key for key in wl.WORKLOADS if key.lower() == name.lower()), name.upper())


def output_paths(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(markdown, chart) pairs to write: ``--out-dir``'s, and with ``--save`` the committed."""
    paths = [(os.path.join(args.out_dir, "RESULTS.md"), os.path.join(args.out_dir, "bench.png"))]
    if args.save:
        paths.append((SAVED_MARKDOWN, SAVED_CHART))
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        from bench.worker import serve

        serve(args.worker, args.threads)
        return 0
    if args.profile:
        profile(args.profile)
        return 0
    names = [_workload(n) for n in args.only.split(",") if n.strip()] or list(wl.WORKLOADS)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [n for n in names if n not in wl.WORKLOADS] + [
        f for f in frameworks if f not in wl.FRAMEWORKS]
    if unknown:
        log(f"unknown workloads/frameworks: {unknown}")
        return 2
    if wl.BASELINE not in frameworks:
        frameworks.insert(0, wl.BASELINE)

    start = time.perf_counter()
    workers = {fw: WorkerProcess(fw, args.threads) for fw in frameworks}
    hello = {fw: w.ask("hello") for fw, w in workers.items()}
    results: dict = {}
    try:
        for fw, reply in hello.items():
            if reply["status"] != "ok":
                log(f"{fw}: unavailable ({reply.get('message')}); skipped")
                workers.pop(fw).close()
        for name in names:
            spec = wl.WORKLOADS[name]
            log(f"{name}: {spec.title}")
            if name == "W5":
                run_memory(list(workers), args.threads, spec.sizes["steps"], results)
                continue
            repeats = min(spec.repeats, 3) if args.quick else spec.repeats
            number = max(1, spec.number // 4) if args.quick else spec.number
            run_timed(name, workers, repeats, number, results, args.pause)
            if not args.no_peak:
                run_peaks(name, workers, results)
    finally:
        for w in workers.values():
            w.close()

    elapsed = time.perf_counter() - start
    mode = " --quick" if args.quick else ""
    only = f" --only {args.only}" if args.only else ""
    if args.frameworks != ",".join(wl.FRAMEWORKS):
        only += f" --frameworks {args.frameworks}"
    extra = ["", f"Command: `python -m bench.run{mode}{only}`, {elapsed:.0f} s in all; "
             f"load average at the end {os.getloadavg()[0]:.2f}."]
    header = report.machine_lines(hello, args.threads)
    peaks = report.peak_table(results, frameworks)
    if peaks:
        extra += ["", "Peak memory of one step (tracemalloc; everything allocated since the "
                  "workload was built: data, parameters, optimizer state, jit buffers and the "
                  "step's temporaries; not PyTorch, whose memory tracemalloc cannot see):", "",
                  *peaks]
    for markdown, chart in output_paths(args):
        os.makedirs(os.path.dirname(markdown), exist_ok=True)
        text = report.write_markdown(markdown, header, results, frameworks, extra)
        charted = report.write_chart(chart, results, frameworks)
        log(f"wrote {markdown}" + (f" and {chart}" if charted else " (no chart)"))
    print(text)

    failed = {k: r for k, r in results.items()
              if r.get("status") not in ("ok", "unavailable", "recursion")}
    if failed:
        log("\n" + "!" * 78)
        for (name, fw), r in failed.items():
            log(f"FAILED {name} {fw}: {r['status']}: {r.get('message')}")
            if r.get("traceback"):
                log(r["traceback"])
        log("!" * 78)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
