"""An anchor: the PyTorch workloads (``fw_torch``) with each step under ``torch.compile``.

Compiling takes tens of seconds per workload (the runner's setup, not timed); the timed
steps run the compiled code. W4 (a 100,000-op graph) is not compiled: that would take far
longer than the whole suite. Needs a C compiler (inductor's CPU backend); without one the
framework reports itself unavailable.
"""

from __future__ import annotations

import torch

from . import fw_torch
from .workloads import Case, Unavailable


def build(name: str, data: dict) -> Case:
    """The torch.compile Case of workload ``name``."""
    if name == "W4":
        raise Unavailable("torch.compile: a 100,000-op graph takes too long to compile")
    if name == "W6":
        raise Unavailable("torch.compile: the epoch loop (data loader, .item()) is not compiled")
    case = fw_torch.build(name, data)
    return Case(torch.compile(case.step), case.result)
