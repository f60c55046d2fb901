"""Turn the runner's measurements into bench/RESULTS.md and a small PNG bar chart."""

from __future__ import annotations

import os
import platform
import statistics

from .workloads import BASELINE, WORKLOADS

LABELS = {"numpy": "numpy by hand", "needle-nd": "needle (nd)", "needle-np": "needle (np)",
          "needle-jit": "needle (jit)", "torch": "PyTorch", "torch-compile": "torch.compile",
          "autograd": "HIPS autograd"}
# A max/min spread above this flags a row: another process probably shared the cores.
NOISY = 1.5
COLORS = {"numpy": "#7f7f7f", "needle-nd": "#d62728", "needle-np": "#ff9896",
          "needle-jit": "#9467bd", "torch": "#1f77b4", "torch-compile": "#aec7e8",
          "autograd": "#2ca02c"}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(hello: dict, threads: int) -> list[str]:
    """The header: machine, versions, BLAS libraries and thread counts per framework."""
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:  # a smoke run without the [bench] extras
        cores, memory = "?", "memory unknown (psutil not installed)"
    lines = [
        f"- machine: {cpu_model()}, {cores} cores "
        f"({os.cpu_count()} logical), {memory}; "
        f"load average at start {os.getloadavg()[0]:.2f} (the machine is shared)",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"- BLAS threads: {threads} for every framework (threadpoolctl; torch.set_num_threads)",
    ]
    for fw, reply in hello.items():
        info = reply.get("info")
        if info is None:
            lines.append(f"- {LABELS[fw]}: unavailable ({reply.get('message')})")
            continue
        versions = [f"numpy {info['numpy']}"]
        for key in ("torch", "autograd"):
            if key in info:
                versions.append(f"{key} {info[key]}")
        blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)"
                         for b in info["blas"]) or "none"
        if info.get("torch_mkl"):
            blas += f"; torch: MKL ({info['torch_threads']} threads)"
        lines.append(f"- {LABELS[fw]}: {', '.join(versions)}; BLAS: {blas}")
    return lines


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def summarize(results: dict) -> dict:
    """(workload, framework) -> median, min, max in the workload's unit."""
    out = {}
    for (name, fw), r in results.items():
        if r.get("status") == "ok" and r.get("times"):
            scale = WORKLOADS[name].scale
            times = [t * scale for t in r["times"]]
            out[name, fw] = (statistics.median(times), min(times), max(times))
    return out


def timing_table(results: dict, frameworks: list[str]) -> list[str]:
    """The main table: one row per (workload, framework)."""
    stats = summarize(results)
    rows = ["| workload | framework | median | min–max | × numpy | × PyTorch | check |",
            "|---|---|---:|---:|---:|---:|---|"]
    for name, spec in WORKLOADS.items():
        if name == "W5" or not any(k[0] == name for k in results):
            continue
        for fw in frameworks:
            r = results.get((name, fw))
            if r is None:
                continue
            label = f"**{name}** {spec.title}" if fw == frameworks[0] else ""
            if (name, fw) not in stats:
                status = r.get("status", "?")
                note = "n/a" if status == "unavailable" else f"**{status.upper()}**"
                rows.append(f"| {label} | {LABELS[fw]} | {note} | | | | "
                            f"{_short(r.get('message', ''))} |")
                continue
            med, lo, hi = stats[name, fw]
            ratios = []
            for ref in (BASELINE, "torch"):
                ratios.append(f"{med / stats[name, ref][0]:.2f}" if (name, ref) in stats else "–")
            check = "–" if r.get("err") is None else f"ok ({r['err']:.0e})"
            if hi > NOISY * lo:
                check += f" ⚠ noisy (max/min {hi / lo:.1f})"
            if name == "W6" and r.get("loss") is not None:
                check = f"epoch-1 loss {r['loss']:.3f} (not checked)"
            rows.append(f"| {label} | {LABELS[fw]} | {_fmt(med)} {spec.unit} | "
                        f"{_fmt(lo)}–{_fmt(hi)} | {ratios[0]} | {ratios[1]} | {check} |")
    return rows


def memory_table(results: dict, frameworks: list[str]) -> list[str]:
    """W5: RSS and TENSOR_COUNTER growth."""
    rows = ["| framework | RSS at start | RSS growth | TENSOR_COUNTER growth |",
            "|---|---:|---:|---:|"]
    for fw in frameworks:
        r = results.get(("W5", fw))
        if r is None:
            continue
        if r.get("status") != "ok":
            rows.append(f"| {LABELS[fw]} | | **{r.get('status', '?').upper()}** | "
                        f"{_short(r.get('message', ''))} |")
            continue
        counter = r.get("counter_growth")
        counter = "–" if counter is None else f"{counter:+d} (from {r['counter_start']})"
        rows.append(f"| {LABELS[fw]} | {r['rss_start_mb']:.0f} MB | {r['rss_mb']:+.1f} MB | "
                    f"{counter} |")
    return rows


def peak_table(results: dict, frameworks: list[str]) -> list[str]:
    """Peak memory of one step per workload and framework (``Worker.peak``), in MB."""
    shown = [fw for fw in frameworks
             if any(r.get("peak", {}).get("status") == "ok"
                    for (_, f), r in results.items() if f == fw)]
    if not shown:
        return []
    rows = ["| workload | " + " | ".join(LABELS[fw] for fw in shown) + " |",
            "|---|" + "---:|" * len(shown)]
    for name in WORKLOADS:
        cells, any_ok = [], False
        for fw in shown:
            peak = results.get((name, fw), {}).get("peak", {})
            if peak.get("status") == "ok":
                any_ok = True
                cells.append(f"{peak['peak_mb']:.2f}")
            else:
                cells.append("–")
        if any_ok:
            sizes = next((r["peak"].get("sizes") for (n, _), r in results.items()
                          if n == name and r.get("peak", {}).get("sizes")), None)
            note = f" ({', '.join(f'{k}={v:,}' for k, v in sizes.items())})" if sizes else ""
            rows.append(f"| {name}{note} | " + " | ".join(cells) + " |")
    return rows


def _short(message: str) -> str:
    return message.replace("|", "/").replace("\n", " ")[:120]


def write_markdown(path: str, header: list[str], results: dict, frameworks: list[str],
                   extra: list[str]) -> str:
    """Write RESULTS.md and return its text."""
    spec_lines = [f"- {name}: {spec.title} ({spec.repeats} repeats × {spec.number} steps)"
                  for name, spec in WORKLOADS.items() if name != "W5"]
    lines = ["# Benchmark results", "", *header, "",
             "Median of the repeats (each repeat times `number` steps and divides), min–max over",
             "the repeats; ratios are medians divided by the numpy-by-hand or PyTorch median",
             "(lower is faster). Every framework's loss and gradients were checked against",
             "numpy by hand (largest relative error in the check column) before timing.", "",
             *timing_table(results, frameworks), "",
             f"W5 memory over {WORKLOADS['W5'].sizes['steps']} W2 steps, after "
             f"{WORKLOADS['W5'].warmup} warm-up steps, each framework in a fresh process "
             "(glibc `MALLOC_MMAP_THRESHOLD_=65536`, so RSS follows live arrays):", "",
             *memory_table(results, frameworks), "", "Workloads:", "", *spec_lines, *extra, ""]
    text = "\n".join(lines)
    with open(path, "w") as f:
        f.write(text)
    return text


def write_chart(path: str, results: dict, frameworks: list[str]) -> bool:
    """Horizontal bars of the medians with min–max whiskers, one panel per workload.

    Returns whether a chart was written (not without matplotlib or results).
    """
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summarize(results)
    names = [n for n in WORKLOADS if any(k[0] == n for k in stats)]
    if not names:
        return False
    fig, axes = plt.subplots(len(names), 1, figsize=(6.4, 1.25 + 1.1 * len(names)),
                             squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        fws = [fw for fw in frameworks if (name, fw) in stats]
        med = [stats[name, fw][0] for fw in fws]
        err = [[m - stats[name, fw][1] for m, fw in zip(med, fws)],
               [stats[name, fw][2] - m for m, fw in zip(med, fws)]]
        ax.barh(range(len(fws)), med, xerr=err, color=[COLORS[fw] for fw in fws],
                error_kw={"lw": 0.8, "capsize": 2})
        ax.set_yticks(range(len(fws)), [LABELS[fw] for fw in fws], fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{name}: {WORKLOADS[name].title} [{WORKLOADS[name].unit}]", fontsize=8,
                     loc="left")
    fig.suptitle("needle vs numpy by hand, PyTorch, HIPS autograd (median, min–max; "
                 "lower is better)", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
