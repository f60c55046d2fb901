"""A one-layer, one-head transformer encoder written in needle's graph mode.

Each digit image is read row by row as a sequence (8 rows of 8 pixels for scikit-learn's
digits, the default; 28 rows of 28 for MNIST with ``--data-dir``). The model is a static
graph of ``needle.graph`` Variables (data and weights), differentiated once with
``ad.gradients`` and evaluated on every batch; Adam runs by hand in numpy.

    python -m apps.transformer_mnist [--epochs 20] [--seed 0] [--data-dir DIR]
                                     [--out-dir runs/transformer_mnist]

Prints one line per epoch and writes ``<out-dir>/metrics.json`` (the resolved configuration,
the per-epoch history and the test accuracy).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Small matrices: one BLAS thread beats two fighting over a shared machine (as train_mnist).
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from apps._report import make_parser, run_config, write_metrics  # noqa: E402
from needle import graph as ad  # noqa: E402
from needle.data.datasets.mnist_dataset import IMAGES_MAGIC, LABELS_MAGIC, read_idx  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Data


def load_digits_sequences(seed: int, test_fraction: float = 0.2) -> tuple:
    """scikit-learn's 8x8 digits as (N, 8 rows, 8 pixels) in [0, 1], shuffled and split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def _find(data_dir: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"transformer_mnist: no {stem}[.gz] in {data_dir}")


def load_mnist_sequences(data_dir: str) -> tuple:
    """MNIST idx files as (N, 28 rows, 28 pixels) in [0, 1]."""
    parts = []
    for split in ("train", "t10k"):
        images = read_idx(_find(data_dir, f"{split}-images-idx3-ubyte"), IMAGES_MAGIC)
        labels = read_idx(_find(data_dir, f"{split}-labels-idx1-ubyte"), LABELS_MAGIC)
        parts += [(images / 255.0).astype(np.float32), labels.astype(np.int64)]
    return tuple(parts)


# ----------------------------------------------------------------------------------------------
# The model, as a graph


def init_params(seq_len: int, d_in: int, d_model: int, d_ff: int, n_classes: int,
                rng: np.random.Generator) -> dict:
    """Weights as float32 numpy arrays (Glorot-normal matrices, zero biases)."""

    def glorot(n_in: int, n_out: int) -> np.ndarray:
        return (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / (n_in + n_out))).astype(
            np.float32)

    return {
        "W_emb": glorot(d_in, d_model), "b_emb": np.zeros(d_model, np.float32),
        "pos": (0.1 * rng.standard_normal((seq_len, d_model))).astype(np.float32),
        "W_q": glorot(d_model, d_model), "W_k": glorot(d_model, d_model),
        "W_v": glorot(d_model, d_model), "W_o": glorot(d_model, d_model),
        "W_1": glorot(d_model, d_ff), "b_1": np.zeros(d_ff, np.float32),
        "W_2": glorot(d_ff, d_model), "b_2": np.zeros(d_model, np.float32),
        "W_out": glorot(d_model, n_classes), "b_out": np.zeros(n_classes, np.float32),
    }


def build_graph(param_names: list[str], d_model: int) -> tuple:
    """Variables and nodes of the encoder: returns (X, Y, params, logits, loss)."""
    X, Y = ad.Variable("X"), ad.Variable("Y")
    p = {name: ad.Variable(name) for name in param_names}
    h = X @ p["W_emb"] + p["b_emb"] + p["pos"]                      # (B, T, d)
    q, k, v = h @ p["W_q"], h @ p["W_k"], h @ p["W_v"]
    # Single-head scaled dot-product attention; QK^T and softmax as one fused node.
    attn = ad.matmul_softmax(q / float(np.sqrt(d_model)), ad.transpose(k, 1, 2), dim=-1)
    h = ad.layernorm(h + (attn @ v) @ p["W_o"], (d_model,))
    ff = ad.relu(h @ p["W_1"] + p["b_1"]) @ p["W_2"] + p["b_2"]
    h = ad.layernorm(h + ff, (d_model,))
    logits = ad.mean(h, 1) @ p["W_out"] + p["b_out"]                # mean-pool over rows
    loss = -ad.mean(ad.sum_op(Y * ad.logsoftmax(logits, dim=-1), 1), 0)
    return X, Y, p, logits, loss


class Adam:
    """Adam on a dict of numpy arrays (bias-corrected, by hand)."""

    def __init__(self, params: dict, lr: float, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            step = self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
            params[k] = (params[k] - step).astype(np.float32)


def accuracy(evaluator: ad.Evaluator, X_var: ad.Variable, p_vars: dict, params: dict,
             X: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Fraction of ``X`` whose predicted class is ``y``, evaluated ``batch`` rows at a time."""
    correct = 0
    for i in range(0, len(y), batch):
        feed = {X_var: X[i:i + batch], **{p_vars[k]: params[k] for k in p_vars}}
        (logits,) = evaluator.run(feed)
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    return correct / len(y)


def train(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
          *, epochs: int = 20, batch_size: int = 32, lr: float = 3e-3, d_model: int = 32,
          d_ff: int = 64, seed: int = 0, log: bool = True, jit: bool = True) -> dict:
    """Train the encoder; returns test accuracy, mean seconds per epoch and the history.

    ``jit`` runs the graph through ``ndl.jit``'s compiler (``Evaluator(compile=True)``:
    the same numbers bit for bit); False evaluates it node by node.
    """
    rng = np.random.default_rng(seed)
    seq_len, d_in = X_train.shape[1:]
    params = init_params(seq_len, d_in, d_model, d_ff, 10, rng)
    X, Y, p, logits, loss = build_graph(list(params), d_model)
    names = list(params)
    train_step = ad.Evaluator([loss] + ad.gradients(loss, [p[k] for k in names]),
                              compile=jit)
    predict = ad.Evaluator([logits], compile=jit)
    opt = Adam(params, lr)
    onehot = np.eye(10, dtype=np.float32)
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(y_train))
        losses = []
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            feed = {X: X_train[idx], Y: onehot[y_train[idx]], **{p[k]: params[k] for k in names}}
            loss_value, *grads = train_step.run(feed)
            opt.step(params, dict(zip(names, grads)))
            losses.append(float(loss_value))
        seconds = time.perf_counter() - start
        test_acc = accuracy(predict, X, p, params, X_test, y_test)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "test_acc": test_acc,
                        "seconds": seconds})
        if log:
            print(f"epoch {epoch:3d}  loss {np.mean(losses):.4f}  test acc {test_acc:.4f}  "
                  f"{seconds:.2f} s")
    return {"test_acc": history[-1]["test_acc"],
            "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])),
            "history": history}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = make_parser("transformer_mnist",
                         "One-layer transformer on digit rows (needle graph mode)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights, the shuffling and the digits split")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--dim", type=int, default=32,
                        help="model width (the feed-forward layer is twice as wide)")
    parser.add_argument("--data-dir", default=None,
                        help="directory with MNIST idx files (None: scikit-learn digits)")
    parser.add_argument("--max-train", type=int, default=None,
                        help="use only the first N training images (None: all)")
    parser.add_argument("--out-dir", default=os.path.join("runs", "transformer_mnist"),
                        help="where metrics.json goes")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=True,
                        help="run the graph through ndl.jit's compiler (the default: the "
                        "same numbers bit for bit, faster); --no-jit evaluates it node by node")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train and report; returns the result that is also written to metrics.json."""
    args = parse_args(argv)
    np.random.seed(args.seed)
    if args.data_dir:
        X_train, y_train, X_test, y_test = load_mnist_sequences(args.data_dir)
        source = f"MNIST from {args.data_dir}"
    else:
        X_train, y_train, X_test, y_test = load_digits_sequences(args.seed)
        source = "scikit-learn digits"
    if args.max_train:
        X_train, y_train = X_train[:args.max_train], y_train[:args.max_train]
    print(f"{source}: {len(y_train)} train / {len(y_test)} test sequences of "
          f"{X_train.shape[1]} rows x {X_train.shape[2]} pixels")
    result = train(X_train, y_train, X_test, y_test, epochs=args.epochs,
                   batch_size=args.batch_size, lr=args.lr, d_model=args.dim,
                   d_ff=2 * args.dim, seed=args.seed, jit=args.jit)
    print(f"test accuracy {result['test_acc']:.4f}, "
          f"{result['seconds_per_epoch']:.2f} s per epoch")
    config = run_config(args, data_source=source, train_sequences=len(y_train),
                        test_sequences=len(y_test), d_ff=2 * args.dim, dtype="float32",
                        backend="graph mode (needle.graph, numpy values)")
    path = write_metrics(os.path.join(args.out_dir, "metrics.json"), config=config, **result)
    print(f"metrics: {path}")
    return result


if __name__ == "__main__":
    main()
