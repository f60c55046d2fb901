"""Train an MLPResNet on handwritten digits: ``python -m apps.train_mnist`` (``make demo``).

Data, in this order:
  1. the four MNIST idx ``.gz`` files in ``--data-dir`` (default ``data/``);
  2. the same files downloaded from a public mirror into ``~/.cache/needle/mnist``,
     verified by SHA-256 (skipped quickly when there is no network);
  3. scikit-learn's 8x8 digits (1,797 images, shipped inside the package), shuffled with
     ``--seed`` and split 80/20 into train and test.

Prints which source it used, a progress bar per epoch, a table of per-epoch train/test
loss and accuracy, and writes a PNG of the curves, a checkpoint (``needle.save``) and a
``metrics.json`` into ``--out-dir``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # The matrices here are small: one BLAS thread beats several fighting over a shared
    # machine. Only when run as a program (numpy is not imported yet, and importers keep theirs).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
import needle.nn as nn  # noqa: E402
from apps._report import Table, checkpoint, plot, progress, write_metrics  # noqa: E402
from apps.mlp_resnet import MLPResNet  # noqa: E402
from needle.data.datasets._download import cache_dir, fetch  # noqa: E402

# SHA-256 of the original files (the same on every mirror).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
CACHE_DIR = str(cache_dir("mnist"))
# Default epochs per source: the 8x8 digits are tiny, MNIST is 40 times larger.
DEFAULT_EPOCHS = {"mnist": 10, "digits": 30}


@dataclass
class Digits:
    """A train/test pair of datasets and a description of where they came from."""

    name: str
    description: str
    train: ndl.data.Dataset
    test: ndl.data.Dataset
    dim: int


# ----------------------------------------------------------------------------------------------
# Data sources


def _mnist_from(folder: str) -> Digits:
    path = {name: os.path.join(folder, name) for name in MNIST_FILES}
    train = ndl.data.MNISTDataset(path["train-images-idx3-ubyte.gz"],
                                  path["train-labels-idx1-ubyte.gz"])
    test = ndl.data.MNISTDataset(path["t10k-images-idx3-ubyte.gz"],
                                 path["t10k-labels-idx1-ubyte.gz"])
    desc = f"MNIST idx files in {folder} ({len(train)} train / {len(test)} test images, 28x28)"
    return Digits("mnist", desc, train, test, 28 * 28)


def _has_mnist(folder: str) -> bool:
    return all(os.path.isfile(os.path.join(folder, name)) for name in MNIST_FILES)


def _fetch(name: str, sha: str, folder: str, timeout: float) -> None:
    """Download one file from the first mirror that serves it with the right checksum."""
    errors = []
    for mirror in MIRRORS:
        try:
            # A verified file already in ``folder`` is kept without a download.
            fetch(mirror + name, os.path.join(folder, name), f"sha256:{sha}", timeout)
            return
        except OSError as e:
            errors.append(f"{urllib.parse.urlsplit(mirror).netloc}: {e}")
    raise OSError(f"could not download {name}: " + "; ".join(errors))


def download_mnist(folder: str = CACHE_DIR, timeout: float = 5.0) -> str:
    """Make sure the four MNIST files are in ``folder`` (downloading and verifying them).

    Raises ``OSError`` at the first file that no mirror delivers.
    """
    os.makedirs(folder, exist_ok=True)
    for name, sha in MNIST_FILES.items():
        _fetch(name, sha, folder, timeout)
    return folder


def load_sklearn_digits(seed: int, test_fraction: float = 0.2) -> Digits:
    """scikit-learn's 8x8 digits scaled to [0, 1], shuffled with ``seed`` and split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.uint8)
    perm = np.random.RandomState(seed).permutation(len(X))
    n_test = int(round(len(X) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    desc = (f"scikit-learn 8x8 digits ({len(train)} train / {n_test} test images, "
            f"split with seed {seed})")
    return Digits("digits", desc,
                  ndl.data.NDArrayDataset(X[train], y[train]),
                  ndl.data.NDArrayDataset(X[test], y[test]), 64)


def find_data(data_dir: str, seed: int, download: bool = True, source: str = "auto",
              log: Any = print) -> Digits:
    """The first available source: local MNIST, downloaded MNIST, scikit-learn digits."""
    if source == "digits":
        return load_sklearn_digits(seed)
    if _has_mnist(data_dir):
        return _mnist_from(data_dir)
    log(f"data: no MNIST idx files in {data_dir}/")
    if download:
        log(f"data: downloading MNIST into {CACHE_DIR} ...")
        try:
            return _mnist_from(download_mnist(CACHE_DIR))
        except Exception as e:  # noqa: BLE001  (offline is an expected case, not an error)
            log(f"data: download failed ({e}); falling back")
    if source == "mnist":
        raise FileNotFoundError(f"no MNIST files in {data_dir} and the download failed")
    return load_sklearn_digits(seed)


# ----------------------------------------------------------------------------------------------
# Training


class Steps:
    """The training and evaluation steps of :func:`run_epoch`, compiled by ``ndl.jit``
    when ``jit`` (the results are the same bit for bit; the jitted steps keep their traces
    across epochs, so make one ``Steps`` per model and optimizer)."""

    def __init__(self, model: nn.Module, opt: Any = None, jit: bool = False) -> None:
        loss_fn = nn.SoftmaxLoss()

        def train_step(X: ndl.Tensor, y: ndl.Tensor) -> tuple:
            logits = model(X.reshape((X.shape[0], -1)))
            loss = loss_fn(logits, y)
            opt.reset_grad()
            loss.backward()
            opt.step()
            return loss, logits

        def eval_step(X: ndl.Tensor, y: ndl.Tensor) -> tuple:
            logits = model(X.reshape((X.shape[0], -1)))
            return loss_fn(logits, y), logits

        self.train = ndl.jit(train_step, enabled=jit)
        self.eval = ndl.jit(eval_step, enabled=jit)


def run_epoch(loader: ndl.data.DataLoader, model: nn.Module, opt: Any = None,
              desc: str | None = None, steps: Steps | None = None) -> tuple[float, float]:
    """One pass; trains when ``opt`` is given. Returns (mean loss, accuracy) over samples.

    ``steps`` (a :class:`Steps` for this model and optimizer) runs the jitted steps.
    """
    steps = steps if steps is not None else Steps(model, opt)
    step = steps.train if opt is not None else steps.eval
    model.train() if opt is not None else model.eval()
    bar = progress(loader, len(loader), desc or "", enabled=desc is not None)
    total_loss, correct, seen = 0.0, 0, 0
    for X, y in bar:
        loss, logits = step(X, y)
        n = X.shape[0]
        total_loss += float(loss.numpy()) * n
        correct += int(np.sum(logits.numpy().argmax(axis=1) == y.numpy()))
        seen += n
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            refresh=False)
    return total_loss / seen, correct / seen


def train(data: Digits, epochs: int, batch_size: int, lr: float, hidden_dim: int,
          weight_decay: float, seed: int, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None,
          jit: bool = False) -> tuple[nn.Module, list]:
    """Adam with a cosine learning-rate schedule; returns the model and per-epoch metrics.

    ``on_epoch``, if given, is called with each epoch's metrics as soon as they exist.
    ``jit`` compiles the training and evaluation steps with ``ndl.jit`` (same results).
    """
    np.random.seed(seed)
    model = MLPResNet(data.dim, hidden_dim=hidden_dim)
    opt = ndl.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_loader = ndl.data.DataLoader(data.train, batch_size, shuffle=True)
    test_loader = ndl.data.DataLoader(data.test, 256)
    steps = Steps(model, opt, jit)
    history = []
    for e in range(epochs):
        start = time.perf_counter()
        opt.lr = lr * 0.5 * (1 + math.cos(math.pi * e / epochs))
        desc = f"epoch {e + 1:>2}/{epochs}" if progress else None
        train_loss, train_acc = run_epoch(train_loader, model, opt, desc, steps)
        test_loss, test_acc = run_epoch(test_loader, model, steps=steps)
        history.append({"epoch": e + 1, "lr": opt.lr, "train_loss": train_loss,
                        "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc,
                        "seconds": time.perf_counter() - start})
        if on_epoch is not None:
            on_epoch(history[-1])
    return model, history


# ----------------------------------------------------------------------------------------------
# Reporting


def _table_row(table: Table) -> Callable[[dict], None]:
    """An ``on_epoch`` callback that prints an epoch's metrics as a row of ``table``."""
    def add(h: dict) -> None:
        table.add(h["epoch"], f"{h['lr']:.2e}", h["train_loss"], h["train_acc"],
                  h["test_loss"], h["test_acc"], f"{h['seconds']:.1f}")
    return add


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(
        prog="python -m apps.train_mnist",
        description="Train needle's MLPResNet on handwritten digits (MNIST if available, "
                    "else scikit-learn's 8x8 digits) and report test accuracy.",
    )
    def flag(name: str, help: str, **kw: Any) -> None:
        default = "" if kw.get("default") is None else " (default: %(default)s)"
        parser.add_argument(name, help=help + default, **kw)

    flag("--epochs", "epochs (default: 10 on MNIST, 30 on the 8x8 digits)", type=int)
    flag("--batch-size", "training batch size", type=int, default=64)
    flag("--lr", "peak Adam learning rate, cosine decay over the epochs", type=float,
         default=0.002)
    flag("--hidden-dim", "MLPResNet hidden width", type=int, default=256)
    flag("--weight-decay", "Adam L2 weight decay", type=float, default=0.001)
    flag("--seed", "seed of numpy's global RNG (init, dropout, shuffling, digits split)",
         type=int, default=0)
    flag("--data-dir", "folder with the MNIST idx .gz files", default="data")
    flag("--out-dir", "where the plot, checkpoint and metrics go",
         default=os.path.join("runs", "train_mnist"))
    flag("--source", "force a data source instead of the first available one",
         choices=("auto", "mnist", "digits"), default="auto")
    parser.add_argument("--no-download", action="store_true", help="do not try to download MNIST")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="compile the training and evaluation steps with ndl.jit (the "
                        "default: the same numbers bit for bit, faster); --no-jit runs "
                        "them eagerly")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the metrics that it also writes to ``metrics.json``."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    data = find_data(args.data_dir, args.seed, download=not args.no_download, source=args.source)
    print(f"data: {data.description}")
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[data.name]
    print(f"model: MLPResNet(dim={data.dim}, hidden_dim={args.hidden_dim}), Adam lr={args.lr} "
          f"(cosine), weight_decay={args.weight_decay}, batch {args.batch_size}, "
          f"{epochs} epochs, seed {args.seed}, backend {ndl.BACKEND}"
          f"{', ndl.jit' if args.jit else ''}")
    table = Table(["epoch", "lr", "train loss", "train acc", "test loss", "test acc",
                   "seconds"])
    model, history = train(data, epochs, args.batch_size, args.lr, args.hidden_dim,
                           args.weight_decay, args.seed, on_epoch=_table_row(table),
                           jit=args.jit)
    train_seconds = sum(h["seconds"] for h in history)

    ckpt = checkpoint(model, os.path.join(args.out_dir, "mlp_resnet.npz"))
    restored = MLPResNet(data.dim, hidden_dim=args.hidden_dim)
    restored.load_state_dict(ndl.load(ckpt))
    _, restored_acc = run_epoch(ndl.data.DataLoader(data.test, 256), restored)
    final = history[-1]["test_acc"]
    same = "identical" if restored_acc == final else f"DIFFERENT: {restored_acc:.4%}"
    print(f"\ncheckpoint: {ckpt} ({model.num_parameters():,} parameters; reloaded test "
          f"accuracy {restored_acc:.2%}, {same})")

    title = f"needle MLPResNet on {data.name}: test accuracy {final:.2%}"
    figure = plot(table, [("mean cross-entropy", ["train loss", "test loss"]),
                          ("accuracy", ["train acc", "test acc"])],
                  os.path.join(args.out_dir, "curves.png"), title)
    print(f"plot: {figure}" if figure else "plot: skipped (matplotlib is not installed)")
    metrics = {"source": data.name, "description": data.description, "epochs": epochs,
               "config": vars(args), "history": history, "test_acc": final,
               "train_seconds": train_seconds, "total_seconds": time.perf_counter() - t0,
               "checkpoint": ckpt, "plot": figure}
    write_metrics(os.path.join(args.out_dir, "metrics.json"), **metrics)
    print(f"\ntest accuracy {final:.2%} on {data.name} after {epochs} epochs "
          f"({train_seconds:.1f} s training, {metrics['total_seconds']:.1f} s in all)")
    return metrics


if __name__ == "__main__":
    main()
