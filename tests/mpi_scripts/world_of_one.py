"""Run with plain ``python`` (no mpiexec): a world of one process.

``python world_of_one.py mpi OUT.json`` uses mpi4py (MPI's singleton mode);
``python world_of_one.py nompi OUT.json`` hides mpi4py, as when it is not installed.
"""

import json
import sys

import numpy as np

if sys.argv[1] == "nompi":
    sys.modules["mpi4py"] = None  # `from mpi4py import MPI` now raises ImportError

import needle as ndl  # noqa: E402
import needle.distributed as dist  # noqa: E402
import needle.nn as nn  # noqa: E402


def mlp() -> nn.Module:
    np.random.seed(0)
    return nn.Sequential(nn.Linear(5, 8, dtype="float64"), nn.ReLU(),
                         nn.Linear(8, 3, dtype="float64"))


def train(model: nn.Module, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    for s in range(len(X)):
        opt.reset_grad()
        loss = nn.SoftmaxLoss()(model(ndl.Tensor(X[s], dtype="float64")),
                                ndl.Tensor(y[s], dtype="float64"))
        loss.backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


def main() -> None:
    dist.init_process_group("mpi")
    out = {"initialized": dist.is_initialized(), "rank": dist.get_rank(),
           "world": dist.get_world_size(), "backend": dist.get_backend(),
           "mpi4py_loaded": sys.modules.get("mpi4py.MPI") is not None}
    x = np.arange(6.0).reshape(2, 3)
    changed = []
    for op in dist.ReduceOp:
        t = ndl.Tensor(x, dtype="float64")
        dist.all_reduce(t, op)
        changed.append(float(np.max(np.abs(t.numpy() - x))))
    t = ndl.Tensor(x, dtype="float32")
    dist.broadcast(t, 0)
    changed.append(float(np.max(np.abs(t.numpy() - x))))
    gathered: list = []
    dist.all_gather(gathered, t)
    out["all_gather"] = [g.numpy().tolist() for g in gathered]
    dist.barrier()
    out["collectives_change"] = max(changed)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 16, 5)), rng.integers(0, 3, (5, 16))
    plain = train(mlp(), X, y)
    ddp = train(nn.parallel.DistributedDataParallel(mlp()), X, y)
    out["ddp_vs_plain"] = max(float(np.max(np.abs(a - b))) for a, b in zip(plain, ddp))
    sampler = ndl.data.DistributedSampler(list(range(10)))
    out["sampler"] = [sampler.num_replicas, sampler.rank, len(sampler)]
    dist.destroy_process_group()
    out["after_destroy"] = dist.is_initialized()
    try:
        dist.get_rank()
    except dist.DistributedError as e:
        out["get_rank_after_destroy"] = str(e)
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
