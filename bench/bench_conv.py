"""ResNet9 forward + backward on 32 CIFAR-sized images: needle vs PyTorch CPU.

``python -m bench.bench_conv [--repeat N] [--batch B] [--threads T] [--out-dir DIR]`` builds the
course's ResNet9 (``apps.models``) in needle and the same network in PyTorch with the weights
copied across, checks that both give the same loss and gradients, then times one step
(forward, softmax loss, backward) of each, alternating the two so that load on a shared
machine hits both alike. It prints the median and best times and their ratio, and writes the
same lines to ``DIR/bench_conv.md`` (default ``bench/out/``, untracked). PyTorch is optional
(``pip install torch==2.13.0``); without it only needle is timed. Both use ``--threads``
threads (default 1): numpy's BLAS through the environment, set before numpy is imported, and
threadpoolctl; PyTorch through ``torch.set_num_threads``.
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    from bench._threads import pin_from_argv

    pin_from_argv()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
import needle.nn as nn  # noqa: E402
from apps.models import ResNet9  # noqa: E402
from bench._threads import limit  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def needle_step(model: ResNet9, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    dev = ndl.cpu()
    X = ndl.Tensor(x, device=dev, requires_grad=False)
    Y = ndl.Tensor(y, device=dev, requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    def step() -> float:
        loss = loss_fn(model(X), Y)
        loss.backward()
        return float(loss.numpy())

    return step


def needle_jit_step(model: ResNet9, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    """The same step compiled by ``ndl.jit`` (it returns the loss; the float is read outside)."""
    dev = ndl.cpu()
    X = ndl.Tensor(x, device=dev, requires_grad=False)
    Y = ndl.Tensor(y, device=dev, requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    @ndl.jit
    def traced(X: ndl.Tensor, Y: ndl.Tensor) -> ndl.Tensor:
        loss = loss_fn(model(X), Y)
        loss.backward()
        return loss

    def step() -> float:
        return float(traced(X, Y).numpy())

    return step


def torch_resnet9(torch, model: ResNet9):
    """The same network in PyTorch, with ``model``'s parameters copied in."""
    tnn = torch.nn

    def conv_bn(block) -> object:
        c = block.conv
        conv = tnn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride,
                          padding=c.padding)
        conv.weight.data = torch.tensor(c.weight.numpy().transpose(3, 2, 0, 1).copy())
        conv.bias.data = torch.tensor(c.bias.numpy())
        return tnn.Sequential(conv, tnn.BatchNorm2d(c.out_channels), tnn.ReLU())

    class Residual(tnn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    def linear(lin) -> object:
        out = tnn.Linear(lin.in_features, lin.out_features)
        out.weight.data = torch.tensor(lin.weight.numpy().T.copy())
        out.bias.data = torch.tensor(lin.bias.numpy().reshape(-1))
        return out

    layers = []
    for m in model.model.modules:
        if isinstance(m, nn.Residual):
            layers.append(Residual(tnn.Sequential(*[conv_bn(b) for b in m.fn.modules])))
        elif isinstance(m, nn.Linear):
            layers.append(linear(m))
        elif isinstance(m, nn.Flatten):
            layers.append(tnn.Flatten())
        elif isinstance(m, nn.ReLU):
            layers.append(tnn.ReLU())
        else:
            layers.append(conv_bn(m))
    return tnn.Sequential(*layers)


def torch_step(torch, net, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    X, Y = torch.tensor(x), torch.tensor(y, dtype=torch.long)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        net.zero_grad(set_to_none=True)
        loss = loss_fn(net(X), Y)
        loss.backward()
        return float(loss.detach())

    return step


def _check(model: ResNet9, net, loss_needle: float, loss_torch: float) -> str:
    first = model.model.modules[0].conv.weight.grad.numpy()
    ref = net[0][0].weight.grad.numpy().transpose(2, 3, 1, 0)
    err = float(np.abs(first - ref).max() / (np.abs(ref).max() + 1e-12))
    if abs(loss_needle - loss_torch) > 1e-3 or err > 1e-2:
        raise AssertionError(f"needle and PyTorch disagree: loss {loss_needle} vs {loss_torch}, "
                             f"first-layer gradient relative error {err:.2e}")
    return f"loss {loss_needle:.5f} (torch {loss_torch:.5f}), first conv grad rel. err {err:.1e}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, default ``sys.argv[1:]``) as a Namespace."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_conv",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="timed steps per framework")
    parser.add_argument("--batch", type=int, default=32, help="images per batch")
    # One thread by default: on a shared machine two-thread BLAS timings swing tenfold.
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numpy's BLAS and for PyTorch")
    parser.add_argument("--out-dir", default=OUT_DIR, help="where bench_conv.md is written")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)

    threads_note = limit(args.threads)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (args.batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    np.random.seed(0)
    model = ResNet9(device=ndl.cpu())
    steps = {"needle": needle_step(model, x, y), "needle (jit)": needle_jit_step(model, x, y)}
    try:
        import torch
    except ImportError:
        torch = None
    check = "PyTorch not installed: needle only"
    if torch is not None:
        torch.set_num_threads(args.threads)
        net = torch_resnet9(torch, model)
        steps["torch"] = torch_step(torch, net, x, y)
        check = _check(model, net, steps["needle"](), steps["torch"]())
    for _ in range(3):  # warm up (jit: its traces)
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeat):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    lines = [f"ResNet9 forward + backward, batch {args.batch} x 3 x 32 x 32, float32, "
             f"{args.repeat} steps each",
             f"{threads_note}; torch threads: {args.threads if torch else '-'}",
             check, "", "| framework | median ms | best ms |", "|---|---|---|"]
    result = {}
    for name, ts in times.items():
        result[name] = (statistics.median(ts) * 1e3, min(ts) * 1e3)
        lines.append(f"| {name} | {result[name][0]:.1f} | {result[name][1]:.1f} |")
    if "torch" in result:
        ratio = result["needle"][0] / result["torch"][0]
        best_ratio = result["needle"][1] / result["torch"][1]
        result["ratio"] = (ratio, best_ratio)
        lines += ["", f"needle / torch: {ratio:.2f}x (median), {best_ratio:.2f}x (best)"]
        jit_ratio = result["needle (jit)"][0] / result["torch"][0]
        jit_best = result["needle (jit)"][1] / result["torch"][1]
        result["jit_ratio"] = (jit_ratio, jit_best)
        lines += [f"needle (jit) / torch: {jit_ratio:.2f}x (median), {jit_best:.2f}x (best)"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "bench_conv.md")
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
