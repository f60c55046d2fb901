"""Run under ``mpiexec -n 2``: what happens when something goes wrong on one rank.

``python faults.py raise``: rank 1 raises while rank 0 waits in an all_reduce; the abort
hook of ``init_process_group`` must end both (mpiexec exits non-zero, traceback printed).
``python faults.py mismatch OUT_DIR``: rank 1 builds a model with another shape; every rank
must get the same ShapeError from DistributedDataParallel (written to ``OUT_DIR``).
``python faults.py mismatch-uncaught``: the same error left uncaught.
"""

import os
import sys

import numpy as np

import needle as ndl
import needle.distributed as dist
import needle.nn as nn


def main() -> None:
    mode = sys.argv[1]
    dist.init_process_group()
    rank = dist.get_rank()
    if mode == "raise":
        if rank == 1:
            raise RuntimeError("rank 1 fails on purpose")
        dist.all_reduce(ndl.Tensor(np.ones(3), dtype="float32"))  # would wait forever
        return
    np.random.seed(0)
    hidden = 5 if rank == 0 else 6
    model = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    if mode == "mismatch-uncaught":
        nn.parallel.DistributedDataParallel(model)
        return
    try:
        nn.parallel.DistributedDataParallel(model)
        message = "no error"
    except ndl.ShapeError as e:
        message = f"ShapeError: {e}"
    with open(os.path.join(sys.argv[2], f"rank{rank}.txt"), "w") as f:
        f.write(message)


if __name__ == "__main__":
    main()
