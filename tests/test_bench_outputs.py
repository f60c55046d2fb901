"""The bench entry points write only under bench/out (or --out-dir) unless told --save.

No timing is asserted here: the runs are tiny and only their files are checked. The whole
checkout is snapshotted before and after, so a write anywhere else in it fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import _threads, bench_conv, bench_fused  # noqa: E402
from bench import run as bench_run  # noqa: E402

SKIP_DIRS = {".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache"}


def snapshot(root: str = ROOT) -> dict:
    """path -> (size, mtime) of every file in the checkout outside caches and the venv."""
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in names:
            path = os.path.join(folder, name)
            st = os.stat(path)
            files[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return files


@pytest.fixture
def untouched_checkout():
    before = snapshot()
    yield
    after = snapshot()
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert changed == [], f"the bench wrote into the checkout: {changed}"


def test_run_defaults_to_bench_out_and_saves_only_when_asked():
    args = bench_run.parse_args([])
    assert args.out_dir == os.path.join(ROOT, "bench", "out") and not args.save
    assert bench_run.output_paths(args) == [
        (os.path.join(ROOT, "bench", "out", "RESULTS.md"),
         os.path.join(ROOT, "bench", "out", "bench.png"))]
    saved = bench_run.output_paths(bench_run.parse_args(["--save"]))
    assert saved[1:] == [(os.path.join(ROOT, "bench", "RESULTS.md"),
                          os.path.join(ROOT, "docs", "bench.png"))]
    assert saved[0] == bench_run.output_paths(args)[0]


def test_bench_out_is_ignored_by_git():
    try:
        out = subprocess.run(["git", "check-ignore", "-q", "bench/out/RESULTS.md"], cwd=ROOT,
                             capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if out.returncode == 128:
        pytest.skip("not a git checkout")
    assert out.returncode == 0, "bench/out/ is not in .gitignore"


def test_quick_run_writes_only_into_out_dir(tmp_path, untouched_checkout):
    out = tmp_path / "out"
    code = bench_run.main(["--quick", "--only", "W1", "--frameworks", "numpy,needle-np",
                           "--pause", "0", "--out-dir", str(out)])
    assert code == 0
    text = (out / "RESULTS.md").read_text()
    assert "| **W1**" in text and "needle (np)" in text
    assert "Command: `python -m bench.run --quick --only W1 --frameworks numpy,needle-np`" in text
    assert {p.name for p in out.iterdir()} <= {"RESULTS.md", "bench.png"}


def test_bench_fused_writes_its_table_into_out_dir(tmp_path, untouched_checkout, capsys):
    rows = bench_fused.main(["--small", "--repeat", "1", "--out-dir", str(tmp_path)])
    assert [(r["op"], r["mode"]) for r in rows] == [
        ("matmul_layernorm", "eager"), ("matmul_layernorm", "graph"),
        ("matmul_softmax", "eager"), ("matmul_softmax", "graph")]
    assert os.listdir(tmp_path) == ["bench_fused.md"]
    written = (tmp_path / "bench_fused.md").read_text()
    assert written in capsys.readouterr().out
    assert written.count("| matmul_") == 4


def test_bench_conv_writes_its_table_into_out_dir(tmp_path, untouched_checkout):
    result = bench_conv.main(["--batch", "2", "--repeat", "1", "--out-dir", str(tmp_path)])
    assert os.listdir(tmp_path) == ["bench_conv.md"]
    written = (tmp_path / "bench_conv.md").read_text()
    assert f"| needle | {result['needle'][0]:.1f} |" in written


def test_threads_come_from_the_command_line(monkeypatch):
    assert _threads.threads_from_argv(["--small"], default=1) == 1
    assert _threads.threads_from_argv(["--threads", "3"]) == 3
    assert _threads.threads_from_argv(["--repeat", "2", "--threads=2"]) == 2
    for var in _threads.THREAD_VARS:
        monkeypatch.setenv(var, "7")
    assert _threads.pin_from_argv(argv=["--threads", "2"]) == 2
    assert all(os.environ[var] == "2" for var in _threads.THREAD_VARS)
    assert _threads.pin_from_argv(argv=[]) == 1
    assert all(os.environ[var] == "1" for var in _threads.THREAD_VARS)


def test_bench_fused_pins_blas_before_numpy_whatever_the_environment(tmp_path):
    pytest.importorskip("threadpoolctl")  # reports the pool size; a dependency of scikit-learn
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2")
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "python")])
    code = ("import sys; sys.argv = ['bench_fused', '--threads', '1']\n"
            "from bench._threads import pin_from_argv; pin_from_argv()\n"
            "import numpy, threadpoolctl\n"
            "print([p['num_threads'] for p in threadpoolctl.threadpool_info()"
            " if p['user_api'] == 'blas'])\n")
    # The same prologue the script runs under ``python -m``: its effect on a fresh numpy.
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"
    script = subprocess.run(
        [sys.executable, "-m", "bench.bench_fused", "--small", "--repeat", "1",
         "--out-dir", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300)
    assert script.returncode == 0, script.stderr
    assert "BLAS threads: openblas 1" in script.stdout or "BLAS threads: mkl 1" in script.stdout
