"""Train the course's ResNet9 on CIFAR-10 (or on generated images of the same shape).

    python -m apps.train_cifar10 [--epochs 10] [--batch-size 128] [--lr 0.001]
                                 [--data-dir data/cifar-10-batches-py] [--limit N]
                                 [--synthetic] [--out-dir runs/train_cifar10] [--no-progress]

Shows a progress bar per epoch and a table row after it (train and test loss/accuracy),
then writes a plot (``<out-dir>/cifar10.png``), a checkpoint (``<out-dir>/resnet9.npz``,
reload with ``model.load_state_dict(ndl.load(path))``; the app reloads it into a fresh
model and checks that it reproduces the test accuracy) and ``<out-dir>/metrics.json``
(the resolved configuration and the per-epoch table). The real data is read from
``--data-dir``, else needle's cache (downloaded there when online). ``--synthetic`` trains
on generated (3, 32, 32) images of 10 classes instead, so the app runs offline.
"""

from __future__ import annotations

import os

# Small matrices: one BLAS thread beats two fighting over a shared machine (as train_mnist).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
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
from apps._steps import ClassifierSteps as Steps  # noqa: E402
from apps.models import ResNet9  # noqa: E402


def synthetic_cifar(n_train: int, n_test: int, seed: int) -> tuple:
    """Images of 10 classes: a blocky random colour pattern per class plus uniform noise."""
    rng = np.random.default_rng(seed)
    templates = np.kron(rng.uniform(0, 1, (10, 3, 4, 4)), np.ones((1, 1, 8, 8)))

    def draw(n: int) -> tuple:
        y = rng.integers(0, 10, n)
        x = 0.3 * templates[y] + 0.7 * rng.uniform(0, 1, (n, 3, 32, 32))
        return x.astype(np.float32), y.astype(np.uint8)

    return (*draw(n_train), *draw(n_test))


def load_data(args: argparse.Namespace) -> tuple[ndl.data.Dataset, ndl.data.Dataset]:
    if args.synthetic:
        x, y, xt, yt = synthetic_cifar(args.limit or 1024, max(256, (args.limit or 1024) // 4),
                                       args.seed)
        return ndl.data.NDArrayDataset(x, y), ndl.data.NDArrayDataset(xt, yt)
    train = ndl.data.CIFAR10Dataset(args.data_dir, train=True)
    test = ndl.data.CIFAR10Dataset(args.data_dir, train=False)
    if args.limit:
        train = ndl.data.NDArrayDataset(train.X[:args.limit], train.y[:args.limit])
        test = ndl.data.NDArrayDataset(test.X[:args.limit], test.y[:args.limit])
    return train, test


def run_epoch(loader: ndl.data.DataLoader, model: nn.Module, opt: ndl.optim.Optimizer | None,
              desc: str, show: bool, steps: Steps | None = None) -> tuple[float, float]:
    """One pass (training when ``opt`` is given); returns (mean loss, accuracy).

    ``steps`` (a :class:`Steps` of this model and optimizer) runs jitted steps.
    """
    steps = steps if steps is not None else Steps(model, opt)
    step = steps.train if opt is not None else steps.eval
    model.train() if opt is not None else model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    bar = progress(loader, len(loader), desc, show)
    for X, y in bar:
        loss, logits = step(X, y)
        n = y.shape[0]
        total_loss += float(loss.numpy()) * n
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += n
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}",
                            refresh=False)
    return total_loss / seen, correct / seen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = make_parser("train_cifar10", "Train the course's ResNet9 on CIFAR-10 (or, with "
                         "--synthetic, on generated images of the same shape).")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.001, help="Adam L2 weight decay")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of numpy's global RNG (init, shuffling) and of the "
                             "synthetic images")
    parser.add_argument("--data-dir", default=os.path.join("data", "cifar-10-batches-py"),
                        help="the cifar-10-batches-py folder (else needle's cache)")
    parser.add_argument("--limit", type=int, default=0,
                        help="use only this many images per split, 0: all (synthetic: train "
                             "size, 0: 1024)")
    parser.add_argument("--synthetic", action="store_true",
                        help="train on generated images of CIFAR's shape (no download)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "train_cifar10"),
                        help="where the plot, checkpoint and metrics.json go")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="compile the training and evaluation steps with ndl.jit (the "
                        "default: the same numbers bit for bit, faster); --no-jit runs "
                        "them eagerly")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Table:
    """Train, save, reload-and-check; returns the per-epoch table."""
    args = parse_args(argv)

    try:
        train_set, test_set = load_data(args)
    except FileNotFoundError as exc:
        raise SystemExit(f"train_cifar10: {exc}\nOr run offline with --synthetic.") from None
    device = ndl.cpu()
    np.random.seed(args.seed)
    model = ResNet9(device=device)
    opt = ndl.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    train_loader = ndl.data.DataLoader(train_set, args.batch_size, shuffle=True, device=device)
    test_loader = ndl.data.DataLoader(test_set, args.batch_size, device=device)
    source = "synthetic images" if args.synthetic else "CIFAR-10"
    print(f"ResNet9 ({model.num_parameters():,} parameters) on {source}: "
          f"{len(train_set)} train / {len(test_set)} test images, batch {args.batch_size}")
    table = Table(["epoch", "train loss", "train acc", "test loss", "test acc", "seconds"])
    test_acc = float("nan")
    steps = Steps(model, opt, args.jit)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = run_epoch(train_loader, model, opt, f"epoch {epoch}",
                                          not args.no_progress, steps)
        test_loss, test_acc = run_epoch(test_loader, model, None, "test", not args.no_progress,
                                        steps)
        table.add(epoch, train_loss, train_acc, test_loss, test_acc,
                  f"{time.perf_counter() - start:.1f}")
    figure = plot(table, [("loss", ["train loss", "test loss"]),
                          ("accuracy", ["train acc", "test acc"])],
                  os.path.join(args.out_dir, "cifar10.png"), f"ResNet9 on {source}")
    saved = checkpoint(model, os.path.join(args.out_dir, "resnet9.npz"))
    check = verify_checkpoint(saved, ResNet9(device=device),
                              lambda m: run_epoch(test_loader, m, None, "reloaded", False)[1],
                              test_acc)
    print(f"plot: {figure}" if figure else "plot: skipped (matplotlib is not installed)")
    config = run_config(args, data_source=source, train_images=len(train_set),
                        test_images=len(test_set), device=str(device),
                        dtype=str(model.parameters()[0].dtype),
                        parameters=model.num_parameters())
    write_metrics(os.path.join(args.out_dir, "metrics.json"), source=source,
                  config=config, checkpoint=saved, checkpoint_check=check, plot=figure,
                  test_acc=test_acc, history=table.records())
    require_identical(check)
    return table


if __name__ == "__main__":
    main()
