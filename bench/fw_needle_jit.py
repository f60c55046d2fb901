"""The workloads in needle with the step compiled by ``ndl.jit`` (the ``nd`` backend).

The same code as ``fw_needle`` (the same model, data and optimizer), with each step
wrapped in ``ndl.jit``: the first calls trace, later calls replay the compiled schedule.
The runner's check step and warm-up steps include the traces (W1/W3/W4 trace when built),
so the timed steps replay.
W6 runs ``apps.train_mnist.run_epoch`` with jitted steps (``Steps(..., jit=True)``).
"""

from __future__ import annotations

import needle as ndl

from . import fw_needle
from .workloads import Case


def build(name: str, data: dict) -> Case:
    """The jitted needle Case of workload ``name``."""
    if name == "W6":
        return fw_needle.digits_epoch(data, jit=True)
    case = fw_needle.build(name, data)
    step = ndl.jit(case.step)
    if name in ("W1", "W3", "W4"):
        # No state changes from step to step: trace now (the first call makes the step's
        # bookkeeping dict, the second is the trace kept), so the runner's check step and
        # W4's three timed steps already replay.
        step()
        step()
    return Case(step, case.result)
