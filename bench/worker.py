"""The worker process: one framework, driven by the runner through JSON lines on stdin/stdout.

Each framework runs in its own long-lived process (needle's backend is fixed at import), and
the runner sends every worker one timed repeat in turn, so the frameworks' repeats are
interleaved and all see the same machine load. Commands:

- ``hello``: versions and BLAS libraries of this process.
- ``setup``: build a workload, run one step, check it against the numpy baseline, warm up.
- ``time``: time ``number`` steps, reply seconds per step.
- ``memory``: RSS (and needle's ``TENSOR_COUNTER``) growth over ``steps`` steps (W5).
- ``drop``: free the current workload.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
import time
import traceback

from . import workloads as wl


class Worker:
    """Holds the current workload instance of one framework."""

    def __init__(self, framework: str, threads: int) -> None:
        self.framework = framework
        self.threads = threads
        self.case = None
        self.module = None
        self._limits = None

    def _load(self):
        if self.module is None:
            from threadpoolctl import threadpool_limits

            self.module = wl.framework_module(self.framework)
            # After the import: every BLAS/OpenMP pool the framework loaded gets the limit.
            self._limits = threadpool_limits(limits=self.threads)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(self.threads)
        return self.module

    def hello(self) -> dict:
        from threadpoolctl import threadpool_info

        try:
            self._load()
        except ImportError as e:
            return {"status": "unavailable", "message": str(e)}
        info = {"python": platform.python_version(), "numpy": sys.modules["numpy"].__version__}
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            info["torch"] = torch.__version__
            info["torch_threads"] = torch.get_num_threads()
            info["torch_mkl"] = bool(torch.backends.mkl.is_available())
        if self.framework == "autograd":
            from importlib.metadata import version

            info["autograd"] = version("autograd")
        if self.framework.startswith("needle"):
            import needle

            info["needle_backend"] = needle.BACKEND
        info["blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info() if p.get("user_api") == "blas"
        ]
        return {"status": "ok", "info": info}

    def setup(self, name: str, sizes: dict) -> dict:
        spec = wl.WORKLOADS[name]
        data = wl.make_data(name, **sizes)
        self.case = None
        gc.collect()
        try:
            self.case = self._load().build(name, data)
        except wl.Unavailable as e:
            return {"status": "unavailable", "message": str(e)}
        self.case.step()
        got = self.case.result()
        err = None
        if name != "W6":  # W6 has no hand-written baseline (and dropout makes it random)
            reference = wl.framework_module(wl.BASELINE).build(name, data)
            reference.step()
            err = wl.compare(reference.result(), got, spec.tol, f"{name}/{self.framework}")
        warmup = spec.number if spec.warmup < 0 else spec.warmup
        for _ in range(warmup):
            self.case.step()
        loss = got.get("loss")
        return {"status": "ok", "err": err, "loss": None if loss is None else float(loss)}

    def time(self, number: int) -> dict:
        step = self.case.step
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            step()
        return {"status": "ok", "seconds": (time.perf_counter() - start) / number}

    def memory(self, steps: int) -> dict:
        import psutil

        autograd_module = sys.modules.get("needle.autograd")
        process = psutil.Process()
        gc.collect()
        rss0 = process.memory_info().rss
        count0 = autograd_module.TENSOR_COUNTER if autograd_module else None
        for _ in range(steps):
            self.case.step()
        gc.collect()
        out = {"status": "ok", "rss_start_mb": rss0 / 2**20,
               "rss_mb": (process.memory_info().rss - rss0) / 2**20}
        if autograd_module is not None:
            out["counter_start"] = count0
            out["counter_growth"] = autograd_module.TENSOR_COUNTER - count0
        return out

    def peak(self, name: str, sizes: dict) -> dict:
        """Peak traced memory (tracemalloc) during one step of a fresh instance, after the
        check step and two warm-up steps (for ndl.jit: the traces and a replay).

        Everything allocated since the instance was built counts: data, parameters,
        optimizer state, jit buffers and the step's temporaries. PyTorch's tensors are not
        allocated through Python's allocator, so tracemalloc cannot see them.
        """
        import tracemalloc

        if self.framework.startswith("torch"):
            return {"status": "unavailable", "message": "tracemalloc does not see torch memory"}
        data = wl.make_data(name, **sizes)
        self.case = None
        try:
            module = self._load()  # imported outside the traced window
        except ImportError as e:
            return {"status": "unavailable", "message": str(e)}
        gc.collect()
        tracemalloc.start()
        try:
            try:
                case = module.build(name, data)
            except wl.Unavailable as e:
                return {"status": "unavailable", "message": str(e)}
            for _ in range(3):
                case.step()
            gc.collect()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            case.step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return {"status": "ok", "peak_mb": peak / 2**20, "base_mb": base / 2**20,
                "sizes": sizes}

    def drop(self) -> dict:
        self.case = None
        gc.collect()
        return {"status": "ok"}

    def handle(self, cmd: dict) -> dict:
        try:
            if cmd["cmd"] == "hello":
                return self.hello()
            if cmd["cmd"] == "setup":
                return self.setup(cmd["workload"], cmd.get("sizes", {}))
            if cmd["cmd"] == "time":
                return self.time(cmd["number"])
            if cmd["cmd"] == "memory":
                return self.memory(cmd["steps"])
            if cmd["cmd"] == "drop":
                return self.drop()
            if cmd["cmd"] == "peak":
                return self.peak(cmd["workload"], cmd.get("sizes", {}))
            return {"status": "error", "message": f"unknown command {cmd['cmd']!r}"}
        except wl.Mismatch as e:
            return {"status": "mismatch", "message": str(e)}
        except RecursionError as e:
            self.case = None
            return {"status": "recursion", "message": f"RecursionError: {e}"}
        except Exception as e:  # reported by the runner, which fails the run
            return {"status": "error", "message": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()}


def serve(framework: str, threads: int) -> None:
    """Answer commands from stdin until it closes; replies go to the original stdout.

    Anything the frameworks print (progress bars, warnings) is sent to stderr so that it
    cannot corrupt the replies.
    """
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker = Worker(framework, threads)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        replies.write(json.dumps(worker.handle(cmd)) + "\n")
