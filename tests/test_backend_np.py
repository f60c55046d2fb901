"""Run the op tests on the numpy backend too, so one ``pytest`` run covers both backends.

``tests/test_ops.py`` itself checks, guarded by ``ndl.BACKEND == "np"``, that the numpy
backend keeps float64 data as float64 (hw1's gradient checks rely on it).
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env_for_np_backend() -> dict:
    env = dict(os.environ, NEEDLE_BACKEND="np")
    probe = subprocess.run([sys.executable, "-c", "import needle"], cwd=REPO, env=env,
                           capture_output=True)
    if probe.returncode != 0:  # needle not installed: use the source tree
        python_dir = str(REPO / "python")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_dir, env.get("PYTHONPATH")]))
    return env


def test_ops_pass_on_numpy_backend():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_ops.py", "tests/test_ops_new.py", "-q",
         "-p", "no:cacheprovider", "-x"],
        cwd=REPO, env=_env_for_np_backend(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        "tests/test_ops.py or tests/test_ops_new.py failed with NEEDLE_BACKEND=np:\n"
        + result.stdout[-6000:] + result.stderr[-2000:]
    )


def test_inplace_ops_pass_on_numpy_backend():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_inplace.py", "-q", "-p",
         "no:cacheprovider", "-x"],
        cwd=REPO, env=_env_for_np_backend(), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        "tests/test_inplace.py failed with NEEDLE_BACKEND=np:\n" + result.stdout[-6000:]
        + result.stderr[-2000:]
    )
