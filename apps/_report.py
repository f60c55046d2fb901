"""What the training apps show and write: the per-epoch table, the plot, the checkpoint."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

import needle as ndl


def make_parser(app: str, description: str) -> argparse.ArgumentParser:
    """The command line of ``python -m apps.<app>``: that program name, defaults in --help."""
    return argparse.ArgumentParser(prog=f"python -m apps.{app}", description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def run_config(args: argparse.Namespace, **resolved: object) -> dict:
    """What a run actually used: every parsed argument, overridden by the values resolved
    from them (``resolved``: e.g. the epochs chosen for the data source), plus needle's
    backend, numpy's version and the BLAS thread setting."""
    config = dict(vars(args))
    config.update(resolved)
    config.setdefault("backend", ndl.BACKEND)
    config["numpy"] = np.__version__
    config["python"] = platform.python_version()
    config["blas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS", "library default")
    return config


def verify_checkpoint(path: str, fresh: ndl.nn.Module, evaluate: Callable[[ndl.nn.Module], Any],
                      expected: Any, what: str = "test accuracy", fmt: str = "{:.4f}") -> dict:
    """Load the checkpoint at ``path`` into ``fresh``, evaluate it, compare with ``expected``.

    Prints one line and returns ``{"path", "reloaded", "identical"}`` for metrics.json.
    The caller raises (after writing its metrics) when the values differ: a checkpoint
    that does not reproduce the trained model is a bug, not a warning.
    """
    fresh.load_state_dict(ndl.load(path))
    reloaded = evaluate(fresh)
    identical = bool(np.array_equal(np.asarray(reloaded), np.asarray(expected)))
    verdict = "identical" if identical else f"DIFFERENT from {fmt.format(expected)}"
    print(f"checkpoint: {path} ({fresh.num_parameters():,} parameters; reloaded {what} "
          f"{fmt.format(reloaded)}, {verdict})")
    return {"path": path, "reloaded": reloaded, "identical": identical}


def require_identical(check: dict) -> None:
    """Raise ``RuntimeError`` if :func:`verify_checkpoint` found a difference."""
    if not check["identical"]:
        raise RuntimeError(f"checkpoint {check['path']} does not reproduce the trained model: "
                           f"reloaded {check['reloaded']}")


def progress(iterable: Iterable, total: int, desc: str, enabled: bool = True,
             leave: bool = False) -> Iterable:
    """A tqdm progress bar over ``iterable`` (plain iteration without tqdm or when disabled).

    Parameters
    ----------
    iterable : Iterable
        What to iterate over.
    total : int
        Its length, for the bar.
    desc : str
        The bar's label.
    enabled : bool
        False: return ``iterable`` itself.
    leave : bool
        Keep the finished bar on screen.
    """
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=leave, unit="batch")


class Table:
    """Prints a markdown table one row at a time (and keeps the rows for the plot)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.rows: list[list] = []
        print("| " + " | ".join(self.columns) + " |")
        print("|" + "---|" * len(self.columns))

    def add(self, *values: object) -> None:
        """Print one row (floats with 4 decimals) and keep it."""
        self.rows.append(list(values))
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values]
        print("| " + " | ".join(cells) + " |", flush=True)

    def column(self, name: str) -> list:
        """The values of column ``name``, one per row."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def records(self) -> list[dict]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row)) for row in self.rows]


def plot(table: Table, panels: Sequence[tuple[str, Sequence[str]]], path: str,
         title: str) -> str | None:
    """One panel per (y label, columns) against the epoch; returns the path (None without
    matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return None
    epochs = table.column("epoch")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5))
    for ax, (label, columns) in zip(list(getattr(axes, "flat", [axes])), panels):
        for name in columns:
            ax.plot(epochs, table.column(name), marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def checkpoint(model: ndl.nn.Module, path: str) -> str:
    """Save ``model``'s state dict with ``ndl.save`` (reload: ``model.load_state_dict(
    ndl.load(path))``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ndl.save(model, path)
    return path


def write_metrics(path: str, **metrics: object) -> str:
    """Write ``metrics`` as JSON to ``path`` (values JSON cannot hold are written as text)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2, default=str)
    return path
