"""Run under ``mpiexec -n 2``: DDP training against the same training in one process.

Writes ``rank<r>.json`` into the folder given as the first argument; the checks are made by
``tests/test_distributed.py``. The reference runs in each process without DDP or MPI: plain
needle on the whole global batch.
"""

import json
import os
import sys

import numpy as np

import needle as ndl
import needle.distributed as dist
import needle.nn as nn

STEPS, GLOBAL_BATCH, FEATURES, CLASSES = 20, 64, 8, 4


def make_data(steps: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps, batch, FEATURES))
    y = rng.integers(0, CLASSES, (steps, batch))
    return X, y


def mlp(dtype: str, seed: int) -> nn.Module:
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16, dtype=dtype), nn.ReLU(),
                         nn.Linear(16, 16, dtype=dtype), nn.Tanh(),
                         nn.Linear(16, CLASSES, dtype=dtype))


def tensor(a: np.ndarray, dtype: str) -> ndl.Tensor:
    return ndl.Tensor(a, dtype=dtype, requires_grad=False)


def optimizer(name: str, params: list) -> ndl.optim.Optimizer:
    if name == "sgd":
        return ndl.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    return ndl.optim.Adam(params, lr=0.01, weight_decay=1e-3)


def train(model: nn.Module, opt: ndl.optim.Optimizer, X: np.ndarray, y: np.ndarray,
          dtype: str) -> None:
    loss_fn = nn.SoftmaxLoss()
    for s in range(len(X)):
        opt.reset_grad()
        loss_fn(model(tensor(X[s], dtype)), tensor(y[s], dtype)).backward()
        opt.step()


def params_of(model: nn.Module) -> list[np.ndarray]:
    return [p.numpy().astype(np.float64) for p in model.parameters()]


def max_diff(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b))


def equivalence(rank: int, world: int) -> list[dict]:
    X, y = make_data(STEPS, GLOBAL_BATCH)
    local = GLOBAL_BATCH // world
    Xl, yl = X[:, rank * local:(rank + 1) * local], y[:, rank * local:(rank + 1) * local]
    out = []
    for dtype in ("float64", "float32"):
        for opt_name in ("sgd", "adam"):
            for cap in (25, 0.0005):
                reference = mlp(dtype, seed=1)
                train(reference, optimizer(opt_name, reference.parameters()), X, y, dtype)
                # Each rank starts from its own random weights: DDP must take rank 0's.
                model = mlp(dtype, seed=1 + rank)
                ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=cap)
                train(ddp, optimizer(opt_name, ddp.parameters()), Xl, yl, dtype)
                mine = params_of(model)
                gathered = dist._allgather_object(mine)
                out.append({
                    "dtype": dtype, "optimizer": opt_name, "bucket_cap_mb": cap,
                    "buckets": ddp.num_buckets, "parameters": len(mine),
                    "max_diff_vs_single_process": max_diff(mine, params_of(reference)),
                    "max_diff_across_ranks": max(max_diff(mine, g) for g in gathered),
                    "stats": ddp.comm_stats(),
                })
    return out


def bucket_events(rank: int, world: int) -> dict:
    """The order of gradient hooks and allreduce launches in one backward."""
    model = mlp("float64", seed=1)
    # 3 buckets of the 6 parameters: (last bias, last weight, middle bias), (middle weight),
    # (first bias, first weight)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.0015)
    events: list[tuple] = []
    for i, p in enumerate(model.parameters()):
        p.register_hook(lambda g, i=i: events.append(("grad", i)))
    reducer_world = dist._world()
    original = reducer_world.iallreduce_sum

    def counting(buf: np.ndarray):
        events.append(("allreduce", int(buf.size)))
        return original(buf)

    reducer_world.iallreduce_sum = counting
    try:
        X, y = make_data(1, GLOBAL_BATCH)
        loss = nn.SoftmaxLoss()(ddp(tensor(X[0], "float64")), tensor(y[0], "float64"))
        loss.backward()
    finally:
        reducer_world.iallreduce_sum = original
    return {"events": events, "buckets": ddp.num_buckets,
            "parameters": len(model.parameters())}


def no_sync_accumulation(rank: int, world: int) -> dict:
    """Two passes under no_sync() then one synchronised pass, against one process."""
    micro, steps = 16, 4
    X, y = make_data(steps, micro * 3 * world)
    loss_fn = nn.SoftmaxLoss()
    reference = mlp("float64", seed=2)
    opt = ndl.optim.SGD(reference.parameters(), lr=0.1)
    for s in range(steps):
        opt.reset_grad()
        # sum over micro-batches of the mean loss, averaged over the ranks
        total = None
        for r in range(world):
            for m in range(3):
                rows = slice((r * 3 + m) * micro, (r * 3 + m + 1) * micro)
                loss = loss_fn(reference(tensor(X[s, rows], "float64")),
                               tensor(y[s, rows], "float64"))
                total = loss if total is None else total + loss
        (total / world).backward()
        opt.step()
    model = mlp("float64", seed=2)
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=0.001)
    opt = ndl.optim.SGD(ddp.parameters(), lr=0.1)
    inside = []  # .grad inside no_sync() against the local sums from a plain copy
    for s in range(steps):
        plain = mlp("float64", seed=0)
        for p, q in zip(plain.parameters(), model.parameters()):
            p.data = ndl.Tensor(q.numpy(), dtype="float64", requires_grad=False)
        local_sum = None
        opt.reset_grad()
        for m in range(3):
            rows = slice((rank * 3 + m) * micro, (rank * 3 + m + 1) * micro)
            xs, ys = tensor(X[s, rows], "float64"), tensor(y[s, rows], "float64")
            if m < 2:
                loss_fn(plain(xs), ys).backward()
                grads = [p.grad.numpy() for p in plain.parameters()]
                local_sum = grads if local_sum is None else [a + b for a, b in
                                                              zip(local_sum, grads)]
                with ddp.no_sync():
                    loss_fn(ddp(xs), ys).backward()
                inside.append(max_diff([p.grad.numpy() for p in model.parameters()],
                                       local_sum))
            else:
                loss_fn(ddp(xs), ys).backward()
        opt.step()
    # reset_grad() inside no_sync restarts the local sum
    opt.reset_grad()
    rows = slice(0, micro)
    with ddp.no_sync():
        loss_fn(ddp(tensor(X[0, rows], "float64")), tensor(y[0, rows], "float64")).backward()
        opt.reset_grad()
        loss_fn(ddp(tensor(X[0, rows], "float64")), tensor(y[0, rows], "float64")).backward()
    after_reset = [p.grad.numpy() for p in model.parameters()]
    plain = mlp("float64", seed=0)
    for p, q in zip(plain.parameters(), model.parameters()):
        p.data = q.data
    loss_fn(plain(tensor(X[0, rows], "float64")), tensor(y[0, rows], "float64")).backward()
    single = [p.grad.numpy() for p in plain.parameters()]
    return {
        "max_diff_vs_single_process": max_diff(params_of(model), params_of(reference)),
        "inside_no_sync_vs_local_sum": max(inside),
        "after_reset_vs_one_pass": max_diff(after_reset, single),
    }


class Branchy(nn.Module):
    """``used_by_rank0`` only enters the loss on rank 0; ``never`` never does."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        np.random.seed(3)
        self.body = nn.Linear(FEATURES, CLASSES, dtype="float64")
        self.used_by_rank0 = nn.Linear(FEATURES, CLASSES, dtype="float64")
        self.never = nn.Linear(FEATURES, CLASSES, dtype="float64")
        self.rank = rank

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        out = self.body(x)
        if self.rank == 0:
            out = out + self.used_by_rank0(x)
        return out


def unused_parameters(rank: int, world: int) -> dict:
    X, y = make_data(1, GLOBAL_BATCH)
    local = GLOBAL_BATCH // world
    loss_fn = nn.SoftmaxLoss()
    # reference: the average over ranks of each rank's loss, in one process
    reference = [Branchy(r) for r in range(world)]
    shared = reference[0]
    for other in reference[1:]:
        other.body, other.used_by_rank0, other.never = (shared.body, shared.used_by_rank0,
                                                        shared.never)
    total = None
    for r, m in enumerate(reference):
        rows = slice(r * local, (r + 1) * local)
        loss = loss_fn(m(tensor(X[0, rows], "float64")), tensor(y[0, rows], "float64"))
        total = loss if total is None else total + loss
    (total / world).backward()
    model = Branchy(rank)
    ddp = nn.parallel.DistributedDataParallel(model)
    rows = slice(rank * local, (rank + 1) * local)
    loss_fn(ddp(tensor(X[0, rows], "float64")), tensor(y[0, rows], "float64")).backward()
    return {
        "body": max_diff([model.body.weight.grad.numpy()], [shared.body.weight.grad.numpy()]),
        "used_by_rank0": max_diff([model.used_by_rank0.weight.grad.numpy()],
                                  [shared.used_by_rank0.weight.grad.numpy()]),
        "never_grad_is_none": model.never.weight.grad is None,
        "state_dict_keys": list(ddp.state_dict().keys()),
        "module_keys": list(model.state_dict().keys()),
    }


def buffers(rank: int, world: int) -> dict:
    """Forwards with gradients copy rank 0's buffers first; under no_grad() they do not."""
    np.random.seed(4)
    bn = nn.BatchNorm1d(FEATURES, dtype="float64")
    ddp = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(FEATURES, FEATURES,
                                                                      dtype="float64"), bn))
    bn.running_mean = ndl.Tensor(np.full(FEATURES, float(rank + 1)), dtype="float64",
                                 requires_grad=False)  # differs across ranks now
    x = make_data(1, 8)[0][0] + rank
    hidden = ddp.module.modules[0](tensor(x, "float64")).numpy()
    ddp(tensor(x, "float64"))
    # rank 0's value (1.0) was copied in, then updated with this rank's batch
    expected = 0.9 * 1.0 + 0.1 * hidden.mean(axis=0)
    out = {"after_training_forward": float(np.max(np.abs(bn.running_mean.numpy() - expected)))}
    if rank == 0:  # alone, under no_grad(): must not wait for the others
        with ndl.no_grad():
            ddp.eval()
            ddp(tensor(x, "float64"))
            ddp.train()
    dist.barrier()
    return out


def main() -> None:
    out_dir = sys.argv[1]
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {
        "rank": rank, "world": world, "backend": ndl.BACKEND,
        "equivalence": equivalence(rank, world),
        "bucket_events": bucket_events(rank, world),
        "no_sync": no_sync_accumulation(rank, world),
        "unused": unused_parameters(rank, world),
        "buffers": buffers(rank, world),
    }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
