"""The workloads W1-W6: their sizes, their input data, and the result check.

Every framework module (``fw_numpy``, ``fw_needle``, ``fw_torch``, ``fw_autograd``) has a
``build(name, data) -> Case`` for the workloads it implements. ``Case.step()`` does one timed
unit of work (a forward + backward, or a training step, or an epoch); ``Case.result()``
returns the values and gradients of the last step as numpy arrays, so that every framework
can be checked against the numpy baseline before it is timed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

FRAMEWORKS = ["numpy", "needle-nd", "needle-np", "needle-jit", "torch", "torch-compile",
              "autograd"]
BASELINE = "numpy"


@dataclass
class Workload:
    """What a workload measures and how its time is reported."""

    name: str
    title: str
    unit: str          # the unit of the reported number
    scale: float       # seconds per step -> reported unit
    number: int        # steps per timed repeat (timeit's ``number``)
    repeats: int       # timed repeats (median, min-max over these)
    warmup: int = -1   # untimed steps after the check step (-1: ``number``)
    tol: float = 1e-4  # relative tolerance of the check against the baseline
    sizes: dict = field(default_factory=dict)


W1_OPS = 200
W4_OPS = 100_000
W5_STEPS = 300

WORKLOADS = {
    "W1": Workload("W1", f"dispatch: {W1_OPS} element-wise ops on (8,), fwd+bwd", "µs/op",
                   1e6 / W1_OPS, number=20, repeats=15, sizes={"n_ops": W1_OPS, "n": 8}),
    "W2": Workload("W2", "MLP 784-512-256-10 training step, batch 128", "ms/step", 1e3,
                   number=5, repeats=15, tol=2e-4,
                   sizes={"batch": 128, "dims": (784, 512, 256, 10)}),
    "W2c": Workload("W2c", "the W2 step in the course's style: broadcast_to bias, logsumexp "
                    "loss, p.data updates", "ms/step", 1e3, number=5, repeats=15, tol=2e-4,
                    sizes={"batch": 128, "dims": (784, 512, 256, 10)}),
    "W3": Workload("W3", "relu(X@W1)@W2, 1024x1024, fwd+bwd", "ms/step", 1e3,
                   number=1, repeats=10, tol=2e-4, sizes={"n": 1024}),
    "W4": Workload("W4", f"deep graph: {W4_OPS:,}-op chain on (1,), fwd+bwd", "s", 1.0,
                   number=1, repeats=3, warmup=0, tol=1e-3, sizes={"n_ops": W4_OPS, "n": 1}),
    "W5": Workload("W5", f"memory: RSS and TENSOR_COUNTER growth over {W5_STEPS} W2 steps",
                   "MB", 1.0, number=1, repeats=1, warmup=30, sizes={"steps": W5_STEPS}),
    "W6": Workload("W6", "make demo's MLPResNet, one epoch of the 8x8 digits", "s", 1.0,
                   number=1, repeats=5, warmup=0),
}


@dataclass
class Case:
    """One workload instantiated in one framework: ``step()`` is what gets timed."""

    step: Callable[[], object]
    result: Callable[[], dict]


class Unavailable(Exception):
    """A framework does not implement a workload (reported as n/a, not as a failure)."""


class Mismatch(AssertionError):
    """A framework's values or gradients differ from the numpy baseline."""


def framework_module(framework: str):
    """The module that implements ``framework`` (``needle-nd`` and ``needle-np`` share one)."""
    if framework in ("needle-jit", "torch-compile"):
        return importlib.import_module(f"bench.fw_{framework.replace('-', '_')}")
    name = "needle" if framework.startswith("needle") else framework
    return importlib.import_module(f"bench.fw_{name}")


# ----------------------------------------------------------------------------------------------
# Data: the same float32 inputs for every framework, from a fixed seed


def chain_data(n_ops: int, n: int, deep: bool = False) -> dict:
    """Inputs of the element-wise chain (W1, W4): x, the constant vectors and the scalar.

    The chain applies ``x + c_add``, ``x * c_mul``, ``tanh``, ``x * scalar`` in turn; the
    constants keep the values in tanh's active range. For the deep chain (``deep``) they make
    ``x -> scalar * tanh(c_mul * x)`` marginally stable (``c_mul * scalar = 1``, no shift), so
    that after 25,000 rounds the gradient decays only polynomially and is still checkable in
    float32 instead of underflowing to zero.
    """
    rng = np.random.default_rng(1)
    data = {
        "n_ops": n_ops,
        "x": rng.uniform(-1.0, 1.0, n).astype(np.float32),
        "c_add": rng.uniform(-0.1, 0.1, n).astype(np.float32),
        "c_mul": rng.uniform(0.9, 1.3, n).astype(np.float32),
        "scalar": 1.05,
    }
    if deep:
        data.update(c_add=np.zeros(n, np.float32), c_mul=np.full(n, 0.8, np.float32),
                    scalar=1.25)
    return data


def chain_forward(y, data: dict, tanh: Callable):
    """W1/W4's op chain: ``+ c_add``, ``* c_mul``, ``tanh``, ``* scalar`` in turn.

    ``y``, ``data["c_add"]`` and ``data["c_mul"]`` are the framework's own arrays or tensors;
    ``tanh`` is its tanh. Shared so that every autodiff framework runs the same chain.
    """
    c_add, c_mul, scalar = data["c_add"], data["c_mul"], data["scalar"]
    for i in range(data["n_ops"]):
        k = i % 4
        if k == 0:
            y = y + c_add
        elif k == 1:
            y = y * c_mul
        elif k == 2:
            y = tanh(y)
        else:
            y = y * scalar
    return y


def mlp_data(batch: int, dims: tuple) -> dict:
    """Inputs of the MLP step (W2, W5): a batch, labels, and weights (in, out), bias (1, out)."""
    rng = np.random.default_rng(2)
    params = {}
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
        bound = np.sqrt(6.0 / d_in)
        params[f"W{i}"] = rng.uniform(-bound, bound, (d_in, d_out)).astype(np.float32)
        params[f"b{i}"] = rng.uniform(-0.1, 0.1, (1, d_out)).astype(np.float32)
    return {
        "X": rng.uniform(0.0, 1.0, (batch, dims[0])).astype(np.float32),
        "y": rng.integers(0, dims[-1], batch).astype(np.int64),
        "params": params,
        "lr": 0.05,
    }


def matmul_data(n: int) -> dict:
    """Inputs of W3: X, W1, W2 of shape (n, n), scaled so activations stay O(1)."""
    rng = np.random.default_rng(3)
    scale = np.float32(1.0 / np.sqrt(n))
    return {
        "X": rng.standard_normal((n, n), dtype=np.float32),
        "W1": rng.standard_normal((n, n), dtype=np.float32) * scale,
        "W2": rng.standard_normal((n, n), dtype=np.float32) * scale,
    }


def digits_data(seed: int = 0, test_fraction: float = 0.2) -> dict:
    """The training split of ``make demo``'s offline data: scikit-learn's 8x8 digits in [0, 1].

    Split as ``apps.train_mnist.load_sklearn_digits(seed=0)`` does (its default seed), plus
    the demo's default hyperparameters: MLPResNet(64, hidden_dim=256), Adam(lr=0.002,
    weight_decay=0.001), batch 64.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    perm = np.random.RandomState(seed).permutation(len(digits.data))
    train = perm[int(round(len(perm) * test_fraction)):]
    return {"X": (digits.data[train] / 16.0).astype(np.float32),
            "y": digits.target[train].astype(np.uint8),
            "hidden_dim": 256, "batch_size": 64, "lr": 0.002, "weight_decay": 0.001}


def make_data(name: str, **sizes: object) -> dict:
    """The input data of workload ``name``; ``sizes`` overrides its default sizes."""
    sizes = {**WORKLOADS[name].sizes, **sizes}
    if name in ("W1", "W4"):
        return chain_data(sizes["n_ops"], sizes["n"], deep=name == "W4")
    if name in ("W2", "W2c", "W5"):
        return mlp_data(sizes["batch"] if "batch" in sizes else 128,
                        sizes["dims"] if "dims" in sizes else (784, 512, 256, 10))
    if name == "W3":
        return matmul_data(sizes["n"])
    if name == "W6":
        return digits_data()
    raise KeyError(f"unknown workload {name!r}")


# ----------------------------------------------------------------------------------------------
# The check


def compare(reference: dict, got: dict, tol: float, label: str = "") -> float:
    """Largest relative error of ``got`` against ``reference``; raise Mismatch above ``tol``.

    Each entry's error is ``max|a - b| / max(max|b|, 1e-30)``: relative to the entry's scale,
    so sums of many float32 terms computed in different orders still compare.
    """
    if set(reference) != set(got):
        raise Mismatch(f"{label}: result keys {sorted(got)} != baseline keys {sorted(reference)}")
    worst = 0.0
    for key, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        val = np.asarray(got[key], dtype=np.float64)
        if val.shape != ref.shape:
            raise Mismatch(f"{label}: {key} has shape {val.shape}, baseline {ref.shape}")
        if not np.all(np.isfinite(val)):
            raise Mismatch(f"{label}: {key} has non-finite values")
        err = float(np.max(np.abs(val - ref), initial=0.0) / max(np.max(np.abs(ref),
                                                                         initial=0.0), 1e-30))
        if err > tol:
            raise Mismatch(f"{label}: {key} differs from the numpy baseline: relative error "
                           f"{err:.2e} > {tol:.0e}")
        worst = max(worst, err)
    return worst
