"""The workloads in needle with the step compiled by ``ndl.jit`` (the ``nd`` backend).

The same code as ``fw_needle`` (the same model, data and optimizer), with each step
wrapped in ``ndl.jit``: the first calls trace, later calls replay the compiled schedule.
The runner's check step and warm-up steps include the traces (W1/W3/W4 trace when built),
so the timed steps replay.
W6 runs ``apps.train_mnist.run_epoch`` with jitted steps (``Steps(..., jit=True)``).
"""

from __future__ import annotations

import numpy as np

import needle as ndl

from . import fw_needle
from .workloads import Case, Unavailable


def digits_epoch(data: dict) -> Case:
    """W6: one epoch of ``make demo`` with its training step compiled by ndl.jit."""
    try:
        from apps import train_mnist
    except ImportError as e:
        raise Unavailable(f"apps.train_mnist cannot be imported ({e})") from None
    np.random.seed(0)
    model = train_mnist.MLPResNet(data["X"].shape[1], hidden_dim=data["hidden_dim"])
    opt = ndl.optim.Adam(model.parameters(), lr=data["lr"], weight_decay=data["weight_decay"])
    dataset = ndl.data.NDArrayDataset(data["X"], data["y"])
    loader = ndl.data.DataLoader(dataset, data["batch_size"], shuffle=True)
    steps = train_mnist.Steps(model, opt, jit=True)
    last: dict = {}

    def step() -> None:
        last["loss"], last["acc"] = train_mnist.run_epoch(loader, model, opt, steps=steps)

    return Case(step, lambda: {"loss": np.float32(last["loss"])})


def build(name: str, data: dict) -> Case:
    """The jitted needle Case of workload ``name``."""
    if name == "W6":
        return digits_epoch(data)
    case = fw_needle.build(name, data)
    step = ndl.jit(case.step)
    if name in ("W1", "W3", "W4"):
        # No state changes from step to step: trace now (the first call makes the step's
        # bookkeeping dict, the second is the trace kept), so the runner's check step and
        # W4's three timed steps already replay.
        step()
        step()
    return Case(step, case.result)
