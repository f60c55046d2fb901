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

Data-parallel on several processes: ``mpiexec -n 2 python -m apps.train_mnist --distributed``
(``--distributed`` is implied when ``mpiexec`` started more than one process). Each global
batch of ``--batch-size`` samples is split evenly across the ranks (``DistributedSampler``),
gradients are averaged by ``DistributedDataParallel``, metrics are summed over the ranks,
and rank 0 alone prints and writes files.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # The matrices here are small: one BLAS thread beats several fighting over a shared
    # machine. Only when run as a program (numpy is not imported yet, and importers keep theirs).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
import needle.distributed as dist  # noqa: E402
import needle.nn as nn  # noqa: E402
from apps._report import (  # noqa: E402
    Table,
    checkpoint,
    make_parser,
    plot,
    progress,
    require_identical,
    run_config,
    verify_checkpoint,
    write_metrics,
)
from apps._steps import ClassifierSteps  # noqa: E402
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


class Steps(ClassifierSteps):
    """The steps of :func:`run_epoch` (see :class:`apps._steps.ClassifierSteps`): batches
    are flattened to (batch, features) for the MLPs."""

    def __init__(self, model: nn.Module, opt: Any = None, jit: bool = False) -> None:
        super().__init__(model, opt, jit, flatten=True)


def run_epoch(loader: ndl.data.DataLoader, model: nn.Module, opt: Any = None,
              desc: str | None = None, counted: int | None = None,
              steps: Steps | None = None) -> tuple[float, float]:
    """One pass; trains when ``opt`` is given. Returns (mean loss, accuracy) over samples.

    In a distributed run the sums behind both are added up over the ranks, so every rank
    returns the figures of the whole data set; ``counted`` is how many of this rank's
    samples count (its first ones: ``DistributedSampler`` pads a rank's share at the end
    with repeats, which take part in training but not in the figures). ``steps`` (a
    :class:`Steps` of this model and optimizer) runs jitted steps.
    """
    loss_fn = nn.SoftmaxLoss()
    steps = steps if steps is not None else Steps(model, opt)
    step = steps.train if opt is not None else steps.eval
    model.train() if opt is not None else model.eval()
    bar = progress(loader, len(loader), desc or "", enabled=desc is not None)
    total_loss, correct, seen, position = 0.0, 0, 0, 0
    for X, y in bar:
        loss, logits = step(X, y)
        n = X.shape[0]
        keep = n if counted is None else max(0, min(n, counted - position))
        position += n
        if keep < n:  # padding at the end of this rank's share
            if keep:
                loss = loss_fn(ndl.Tensor(logits.numpy()[:keep], dtype=logits.dtype,
                                          requires_grad=False),
                               ndl.Tensor(y.numpy()[:keep], dtype=y.dtype, requires_grad=False))
            predicted, labels = logits.numpy()[:keep].argmax(axis=1), y.numpy()[:keep]
        else:
            predicted, labels = logits.numpy().argmax(axis=1), y.numpy()
        if keep:
            total_loss += float(loss.numpy()) * keep
            correct += int(np.sum(predicted == labels))
            seen += keep
        if hasattr(bar, "set_postfix") and seen:
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            refresh=False)
    if dist.is_initialized():
        sums = ndl.Tensor(np.array([total_loss, correct, seen], dtype=np.float64),
                          dtype="float64", requires_grad=False)
        dist.all_reduce(sums)
        total_loss, correct, seen = sums.numpy().tolist()
    return total_loss / seen, correct / seen


def build_model(dim: int, hidden_dim: int, norm: str = "batch", drop_prob: float = 0.1,
                dtype: str = "float32") -> nn.Module:
    """The demo's MLPResNet; ``norm="none"`` replaces BatchNorm by the identity."""
    norm_layer = nn.BatchNorm1d if norm == "batch" else (lambda d, **kw: nn.Identity())
    return MLPResNet(dim, hidden_dim=hidden_dim, norm=norm_layer, drop_prob=drop_prob,
                     dtype=dtype)


def _loader(dataset: ndl.data.Dataset, batch_size: int, shuffle: bool, seed: int,
            dtype: str = "float32") -> tuple[ndl.data.DataLoader, Any, int | None]:
    """The loader of this process: the whole data set, or in a distributed run this rank's
    share of each global batch. Returns (loader, sampler or None, samples that count)."""
    dtype = None if dtype == "float32" else dtype  # the default: as before (float32 data)
    if not dist.is_initialized():
        loader = ndl.data.DataLoader(dataset, batch_size, shuffle=shuffle, dtype=dtype)
        return loader, None, None
    world, rank = dist.get_world_size(), dist.get_rank()
    if batch_size % world:
        raise ValueError(f"train_mnist: the global batch size {batch_size} is not a multiple "
                         f"of the {world} processes")
    sampler = ndl.data.DistributedSampler(dataset, world, rank, shuffle=shuffle, seed=seed)
    counted = len(range(rank, len(dataset), world))  # the rest is padding
    loader = ndl.data.DataLoader(dataset, batch_size // world, sampler=sampler, dtype=dtype)
    return loader, sampler, counted


def train(data: Digits, epochs: int, batch_size: int, lr: float, hidden_dim: int,
          weight_decay: float, seed: int, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, norm: str = "batch",
          drop_prob: float = 0.1, dtype: str = "float32",
          jit: bool = False) -> tuple[nn.Module, list]:
    """Adam with a cosine learning-rate schedule; returns the model and per-epoch metrics.

    ``on_epoch``, if given, is called with each epoch's metrics as soon as they exist.
    Inside an initialised ``needle.distributed`` process group the model is wrapped in
    ``DistributedDataParallel`` and each rank takes its share of every global batch of
    ``batch_size``; the returned model is the wrapped one. ``jit`` compiles the steps with
    ``ndl.jit`` (the same results; not in a distributed run, whose gradient allreduce a
    replay could not repeat).
    """
    np.random.seed(seed)
    model = build_model(data.dim, hidden_dim, norm, drop_prob, dtype)
    distributed = dist.is_initialized()
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    opt = ndl.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_loader, sampler, train_counted = _loader(data.train, batch_size, True, seed, dtype)
    test_loader, _, test_counted = _loader(data.test, 256, False, seed, dtype)
    steps = Steps(model, opt, jit and not distributed)
    history = []
    for e in range(epochs):
        start = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(e)
        if distributed:
            model.reset_comm_stats()
        opt.lr = lr * 0.5 * (1 + math.cos(math.pi * e / epochs))
        desc = f"epoch {e + 1:>2}/{epochs}" if progress else None
        train_loss, train_acc = run_epoch(train_loader, model, opt, desc, train_counted, steps)
        record = {"epoch": e + 1, "lr": opt.lr, "train_loss": train_loss,
                  "train_acc": train_acc}
        if distributed:
            stats = model.comm_stats()
            rounds = max(stats["rounds"], 1)
            record["allreduce_ms_per_step"] = 1e3 * stats["comm_seconds"] / rounds
            record["allreduce_wait_ms_per_step"] = 1e3 * stats["wait_seconds"] / rounds
        test_loss, test_acc = run_epoch(test_loader, model, counted=test_counted, steps=steps)
        record.update(test_loss=test_loss, test_acc=test_acc,
                      seconds=time.perf_counter() - start)
        history.append(record)
        if on_epoch is not None:
            on_epoch(history[-1])
    return model, history


# ----------------------------------------------------------------------------------------------
# Reporting


COLUMNS = ["epoch", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"]


def _table_row(table: Table) -> Callable[[dict], None]:
    """An ``on_epoch`` callback that prints an epoch's metrics as a row of ``table``."""
    def add(h: dict) -> None:
        row = [h["epoch"], f"{h['lr']:.2e}", h["train_loss"], h["train_acc"],
               h["test_loss"], h["test_acc"], f"{h['seconds']:.1f}"]
        if "allreduce_ms_per_step" in h:
            row.append(f"{h['allreduce_ms_per_step']:.2f}")
        table.add(*row)
    return add


def _epochs(text: str) -> int | str:
    """``--epochs``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = make_parser(
        "train_mnist",
        "Train needle's MLPResNet on handwritten digits (MNIST if available, else "
        "scikit-learn's 8x8 digits) and report test accuracy.")
    parser.add_argument("--epochs", type=_epochs, default="auto",
                        help="epochs, or auto: 10 on MNIST, 30 on the 8x8 digits")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="training batch size (the global batch in a distributed run)")
    parser.add_argument("--lr", type=float, default=0.002,
                        help="peak Adam learning rate, cosine decay over the epochs")
    parser.add_argument("--hidden-dim", type=int, default=256, help="MLPResNet hidden width")
    parser.add_argument("--weight-decay", type=float, default=0.001, help="Adam L2 weight decay")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of numpy's global RNG (init, dropout, shuffling, digits split)")
    parser.add_argument("--data-dir", default="data", help="folder with the MNIST idx .gz files")
    parser.add_argument("--out-dir", default=os.path.join("runs", "train_mnist"),
                        help="where the plot, checkpoint and metrics go")
    parser.add_argument("--source", choices=("auto", "mnist", "digits"), default="auto",
                        help="force a data source instead of the first available one")
    parser.add_argument("--norm", choices=("batch", "none"), default="batch",
                        help="normalisation in the residual blocks ('none': no BatchNorm, so "
                             "that runs on different numbers of processes compute the same thing)")
    parser.add_argument("--drop-prob", type=float, default=0.1,
                        help="dropout probability in the residual blocks")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="of the parameters and batches (float64: runs on different numbers "
                             "of processes then agree to rounding)")
    parser.add_argument("--no-download", action="store_true",
                        help="do not try to download MNIST")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="compile the training and evaluation steps with ndl.jit (the "
                        "default: the same numbers bit for bit, faster; not in a distributed "
                        "run); --no-jit runs them eagerly")
    parser.add_argument(
        "--distributed", action="store_true",
        help="data-parallel over the processes that mpiexec started (implied when it started "
             "more than one): --batch-size is the global batch, split across the ranks")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; returns the metrics that it also writes to ``metrics.json``.

    In a distributed run every rank trains and returns the same metrics; only rank 0
    prints and writes files.
    """
    args = parse_args(argv)
    args.distributed = args.distributed or (dist.launched_world_size() or 1) > 1
    started = args.distributed and not dist.is_initialized()
    if started:
        dist.init_process_group("mpi")
    try:
        if args.distributed and dist.get_rank() != 0:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                return _run(args)
        return _run(args)
    finally:
        if started:
            dist.destroy_process_group()


def _find_data(args: argparse.Namespace) -> Digits:
    """The data source; in a distributed run rank 0 chooses and the others follow."""
    if not args.distributed:
        return find_data(args.data_dir, args.seed, download=not args.no_download,
                         source=args.source)
    rank = dist.get_rank()
    data = None
    if rank == 0:
        data = find_data(args.data_dir, args.seed, download=not args.no_download,
                         source=args.source)
    choice = ndl.Tensor([float(data is not None and data.name == "mnist")], dtype="float64",
                        requires_grad=False)
    dist.broadcast(choice, src=0)
    if rank != 0:
        data = find_data(args.data_dir, args.seed, download=not args.no_download,
                         source="mnist" if choice.numpy()[0] else "digits",
                         log=lambda *a: None)
    return data


def _run(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    rank = dist.get_rank() if args.distributed else 0
    data = _find_data(args)
    print(f"data: {data.description}")
    epochs = DEFAULT_EPOCHS[data.name] if args.epochs == "auto" else args.epochs
    norm = "BatchNorm" if args.norm == "batch" else "no norm"
    print(f"model: MLPResNet(dim={data.dim}, hidden_dim={args.hidden_dim}, {norm}, dropout "
          f"{args.drop_prob}), Adam lr={args.lr} (cosine), weight_decay={args.weight_decay}, "
          f"batch {args.batch_size}, {epochs} epochs, seed {args.seed}, {args.dtype}, "
          f"backend {ndl.BACKEND}{', ndl.jit' if args.jit and not args.distributed else ''}")
    columns = list(COLUMNS)
    if args.distributed:
        world = dist.get_world_size()
        print(f"distributed: {world} process{'es' if world > 1 else ''} over MPI, each global "
              f"batch of {args.batch_size} split into {world} x {args.batch_size // world}; "
              "gradients averaged by DistributedDataParallel")
        columns.append("allreduce ms/step")
    table = Table(columns)
    model, history = train(data, epochs, args.batch_size, args.lr, args.hidden_dim,
                           args.weight_decay, args.seed, progress=rank == 0,
                           on_epoch=_table_row(table), norm=args.norm,
                           drop_prob=args.drop_prob, dtype=args.dtype, jit=args.jit)
    train_seconds = sum(h["seconds"] for h in history)
    final = history[-1]["test_acc"]

    # Rank 0 writes the checkpoint (atomically); every rank then loads and checks it.
    ckpt = os.path.join(args.out_dir, "mlp_resnet.npz")
    if rank == 0:
        checkpoint(model, ckpt)
    if args.distributed:
        dist.barrier()
    test_loader, _, counted = _loader(data.test, 256, False, args.seed, args.dtype)
    check = verify_checkpoint(
        ckpt, build_model(data.dim, args.hidden_dim, args.norm, args.drop_prob, args.dtype),
        lambda m: run_epoch(test_loader, m, counted=counted)[1], final, fmt="{:.2%}")

    figure = None
    if rank == 0:
        title = f"needle MLPResNet on {data.name}: test accuracy {final:.2%}"
        figure = plot(table, [("mean cross-entropy", ["train loss", "test loss"]),
                              ("accuracy", ["train acc", "test acc"])],
                      os.path.join(args.out_dir, "curves.png"), title)
        print(f"plot: {figure}" if figure else "plot: skipped (matplotlib is not installed)")
    world = dist.get_world_size() if args.distributed else 1
    config = run_config(args, epochs=epochs, data_source=data.name, data=data.description,
                        dtype=str(model.parameters()[0].dtype),
                        parameters=model.num_parameters(), world_size=world)
    metrics = {"source": data.name, "description": data.description, "epochs": epochs,
               "config": config, "history": history, "test_acc": final,
               "restored_test_acc": check["reloaded"], "train_seconds": train_seconds,
               "total_seconds": time.perf_counter() - t0, "checkpoint": ckpt,
               "checkpoint_check": check, "plot": figure, "world_size": world}
    if rank == 0:
        write_metrics(os.path.join(args.out_dir, "metrics.json"), **metrics)
    require_identical(check)
    comm = ""
    if args.distributed:
        per_step = np.mean([h["allreduce_ms_per_step"] for h in history])
        comm = f"; allreduce {per_step:.2f} ms per step"
    print(f"\ntest accuracy {final:.2%} on {data.name} after {epochs} epochs "
          f"({train_seconds:.1f} s training, {metrics['total_seconds']:.1f} s in all{comm})")
    return metrics


if __name__ == "__main__":
    main()
