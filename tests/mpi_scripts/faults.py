"""Run under ``mpiexec -n 2``: what happens when something goes wrong on one rank.

In every ``python faults.py MODE`` but ``mismatch``, rank 0 waits in a collective that rank 1
never joins; the job must end (mpiexec exits non-zero) with a message saying why:

- ``raise``: rank 1 raises (the abort hook of ``init_process_group``);
- ``raise-before-init``: rank 1 raises before ``init_process_group``;
- ``exit-before-init``: rank 1 calls ``sys.exit(3)`` before ``init_process_group`` (rank 0
  waits in MPI_Init until the timeout, ``NEEDLE_DIST_TIMEOUT``);
- ``exit``, ``return``, ``destroy``: after init rank 1 calls ``sys.exit(3)``, returns from
  main (exit status 0), or calls ``destroy_process_group()`` and then sleeps;
- ``kill``: rank 1 is killed by SIGKILL;
- ``skip``: rank 1 skips the collective and sleeps: rank 0's timeout (2 s) expires;
- ``late-call``: rank 1 exits, and rank 0 calls the collective only 2 s later: the call
  raises ``DistributedError``, which rank 0 (``abort_on_exception=False``) catches and
  prints before returning normally;
- ``ddp-exit``, ``ddp-skip``: the same as ``exit`` and ``skip`` inside a
  DistributedDataParallel backward (rank 0 waits for its gradient bucket).

``python faults.py uneven-end``: no fault: rank 1 exits right after the last collective,
rank 0 a second later, without destroy_process_group (mpiexec must exit with status 0).

``python faults.py mismatch OUT_DIR``: rank 1 builds a model with another shape; every rank
must get the same ShapeError from DistributedDataParallel (written to ``OUT_DIR``).
``python faults.py mismatch-uncaught``: the same error left uncaught.
"""

import os
import signal
import sys
import time

import numpy as np

import needle as ndl
import needle.distributed as dist
import needle.nn as nn

RANK = int(os.environ.get("PMI_RANK", "0"))


def ddp_step(model: nn.Module) -> None:
    x = ndl.Tensor(np.ones((4, 3)), dtype="float32")
    model(x).sum().backward()


def main() -> None:
    mode = sys.argv[1]
    if mode.endswith("before-init") and RANK == 1:
        if mode == "raise-before-init":
            raise FileNotFoundError("rank 1 fails before init_process_group on purpose")
        sys.exit(3)
    if mode.endswith("skip"):
        # MPI_Init first, so that the 2 s apply to the collectives alone and not to
        # init_process_group's wait for the other rank to start (slow on a busy machine).
        from mpi4py import MPI  # noqa: F401
        dist.init_process_group(timeout=2)
    elif mode == "late-call":
        dist.init_process_group(abort_on_exception=False)
    else:
        dist.init_process_group()
    rank = dist.get_rank()
    if mode == "uneven-end":
        for _ in range(20):
            dist.all_reduce(ndl.Tensor(np.ones(1000), dtype="float32"))
        if rank == 0:
            time.sleep(1)
        return
    if mode in ("raise", "exit", "return", "destroy", "kill", "skip", "late-call"):
        dist.barrier()
        dist.all_reduce(ndl.Tensor(np.ones(3), dtype="float32"))  # collective #2 and #3
        if rank == 1:
            if mode == "raise":
                raise RuntimeError("rank 1 fails on purpose")
            if mode in ("exit", "late-call"):
                sys.exit(3)
            if mode == "return":
                return
            if mode == "destroy":
                dist.destroy_process_group()
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # killed by rank 0's MPI_Abort long before
            return
        if mode != "late-call":
            dist.all_reduce(ndl.Tensor(np.ones(3), dtype="float32"))  # never completes
            return
        time.sleep(2)  # rank 1 is gone by now
        try:
            dist.all_reduce(ndl.Tensor(np.ones(3), dtype="float32"))
        except dist.DistributedError as e:
            print(f"caught: {e}", file=sys.stderr, flush=True)
        return
    if mode.startswith("ddp"):
        np.random.seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(3, 2))
        ddp_step(model)
        if rank == 1:
            if mode == "ddp-exit":
                sys.exit(3)
            time.sleep(60)
        ddp_step(model)  # waits for rank 1's bucket
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
