"""The ``python -m apps.X`` programs as a user meets them: --help, metrics.json, checkpoints.

Every app's --help names the program as it is run and shows every option's default; every
metrics.json records the configuration the run actually used (all arguments, resolved
values, data source, seed, backend, dtype); every checkpoint is reloaded into a fresh model
and must reproduce the trained model's test result. All on generated or bundled data, small.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import needle as ndl
import needle.nn as nn
from apps import _report, train_cifar10, train_mnist, train_ptb, transformer_mnist
from apps.models import LanguageModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS_DIR = os.path.join(ROOT, "apps")


def _entry_points() -> list[str]:
    """Every module in apps/ that runs as a program."""
    found = []
    for name in os.listdir(APPS_DIR):
        if name.endswith(".py"):
            with open(os.path.join(APPS_DIR, name), encoding="utf-8") as f:
                if '__name__ == "__main__"' in f.read():
                    found.append(name[:-3])
    return sorted(found)


def test_the_entry_points_are_the_four_apps():
    assert _entry_points() == ["train_cifar10", "train_mnist", "train_ptb", "transformer_mnist"]


@pytest.mark.parametrize("app", _entry_points())
def test_help_names_the_program_and_shows_every_default(app):
    env = dict(os.environ, COLUMNS="200")
    out = subprocess.run([sys.executable, "-m", f"apps.{app}", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith(f"usage: python -m apps.{app} ")
    # One entry per option: its line ("  --flag ...") and the indented lines below it.
    options = re.findall(r"^  (--[\w-]+)(.*(?:\n {4,}.*)*)", text, flags=re.M)
    assert len(options) >= 5
    for flag, entry in options:
        assert "(default: " in " ".join(entry.split()), f"{app} {flag}: no default in {entry!r}"


@pytest.mark.parametrize("module", [train_cifar10, train_mnist, train_ptb, transformer_mnist])
def test_default_outputs_go_under_runs(module):
    out_dir = module.parse_args([]).out_dir
    assert out_dir.split(os.sep)[0] == "runs"


def _metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


def _check_common_config(config: dict, args) -> None:
    for key in vars(args):
        assert key in config, key
    assert config["backend"] == ndl.BACKEND
    assert config["dtype"] == "float32"
    assert config["numpy"] == np.__version__


def test_train_mnist_metrics_hold_the_resolved_configuration(tmp_path, monkeypatch):
    # --epochs defaults to "auto": the value actually used must be recorded, not "auto".
    monkeypatch.setattr(train_mnist, "DEFAULT_EPOCHS", {"mnist": 1, "digits": 2})
    argv = ["--hidden-dim", "16", "--seed", "3", "--out-dir", str(tmp_path),
            "--data-dir", str(tmp_path / "none"), "--no-download"]
    train_mnist.main(argv)
    saved = _metrics(tmp_path)
    config = saved["config"]
    _check_common_config(config, train_mnist.parse_args(argv))
    assert config["epochs"] == 2 and len(saved["history"]) == 2
    assert config["source"] == "auto" and config["data_source"] == "digits"
    assert "8x8 digits" in config["data"] and config["seed"] == 3
    assert config["hidden_dim"] == 16 and config["out_dir"] == str(tmp_path)
    check = saved["checkpoint_check"]
    assert check["identical"] and check["reloaded"] == saved["test_acc"]


def test_train_cifar10_metrics_and_checkpoint_check(tmp_path):
    argv = ["--synthetic", "--epochs", "1", "--limit", "64", "--batch-size", "32",
            "--no-progress", "--out-dir", str(tmp_path)]
    table = train_cifar10.main(argv)
    saved = _metrics(tmp_path)
    config = saved["config"]
    _check_common_config(config, train_cifar10.parse_args(argv))
    assert config["data_source"] == "synthetic images"
    assert (config["train_images"], config["test_images"]) == (64, 256)
    assert saved["test_acc"] == table.column("test acc")[-1]
    assert saved["checkpoint_check"] == {"path": str(tmp_path / "resnet9.npz"),
                                         "reloaded": saved["test_acc"], "identical": True}


@pytest.mark.parametrize("kind", ["rnn", "lstm", "transformer"])
def test_train_ptb_checkpoint_is_named_per_model_and_reproduces_the_test_loss(tmp_path, kind):
    argv = ["--synthetic", "--model", kind, "--epochs", "1", "--max-lines", "20",
            "--embedding-size", "16", "--hidden-size", "16", "--no-progress",
            "--out-dir", str(tmp_path)]
    train_ptb.main(argv)
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert files == [f"ptb_{kind}.npz"]
    saved = _metrics(tmp_path)
    config = saved["config"]
    _check_common_config(config, train_ptb.parse_args(argv))
    assert config["lr"] == 4.0 and config["model"] == kind  # --lr resolved from the optimizer
    assert (config["train_tokens"], config["test_tokens"], config["vocabulary"]) == (400, 4000, 50)
    assert saved["checkpoint_check"]["identical"]
    # Reload here too, independently of the app's own check.
    _, test_ids, vocab = train_ptb.synthetic_text(400, 4000, 50, 0)
    test = ndl.data.batchify(test_ids, 16, device=ndl.cpu(), dtype="float32")
    model = LanguageModel(16, vocab, 16, 1, kind, seq_len=20, device=ndl.cpu())
    model.load_state_dict(ndl.load(tmp_path / f"ptb_{kind}.npz"))
    loss, acc = train_ptb.evaluate(test, model, 20)
    assert (loss, acc) == (saved["test_loss"], saved["test_acc"])


def test_transformer_mnist_writes_its_configuration(tmp_path):
    argv = ["--epochs", "1", "--dim", "8", "--max-train", "128", "--out-dir", str(tmp_path)]
    result = transformer_mnist.main(argv)
    saved = _metrics(tmp_path)
    config = saved["config"]
    for key in vars(transformer_mnist.parse_args(argv)):
        assert key in config, key
    assert config["train_sequences"] == 128 and config["d_ff"] == 16
    assert config["data_source"] == "scikit-learn digits"
    assert saved["test_acc"] == result["test_acc"] and len(saved["history"]) == 1


def test_verify_checkpoint_reports_a_model_that_does_not_reproduce(tmp_path, capsys):
    np.random.seed(0)
    trained = nn.Linear(3, 2)
    path = _report.checkpoint(trained, str(tmp_path / "m.npz"))
    x = ndl.Tensor(np.ones((1, 3), dtype=np.float32), requires_grad=False)

    def evaluate(m):
        return float(m(x).numpy().sum())

    good = _report.verify_checkpoint(path, nn.Linear(3, 2), evaluate, evaluate(trained))
    assert good["identical"]
    _report.require_identical(good)
    bad = _report.verify_checkpoint(path, nn.Linear(3, 2), evaluate, evaluate(trained) + 1e-3)
    assert not bad["identical"] and "DIFFERENT" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="does not reproduce"):
        _report.require_identical(bad)
