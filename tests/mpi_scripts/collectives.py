"""Run under ``mpiexec -n 2``: every collective on float32/float64 tensors of many shapes.

Each rank knows every rank's inputs (they are drawn from seeded generators), so it computes
the expected results with numpy and writes the largest error of each case to
``rank<r>.json`` in the folder given as the first argument.
"""

import json
import os
import sys

import numpy as np

import needle as ndl
import needle.distributed as dist
from needle.distributed import ReduceOp

SHAPES = [(), (0,), (1,), (7,), (2, 3), (2, 0, 4), (3, 4, 5)]
DTYPES = ["float32", "float64"]
NUMPY_OPS = {
    ReduceOp.SUM: lambda xs: np.sum(xs, axis=0),
    ReduceOp.AVG: lambda xs: np.sum(xs, axis=0) / len(xs),
    ReduceOp.PRODUCT: lambda xs: np.prod(xs, axis=0),
    ReduceOp.MAX: lambda xs: np.max(xs, axis=0),
    ReduceOp.MIN: lambda xs: np.min(xs, axis=0),
}


def value(rank: int, shape: tuple, dtype: str, salt: int = 0) -> np.ndarray:
    rng = np.random.default_rng([rank, len(shape), int(np.prod(shape)), salt])
    return rng.uniform(-2, 2, shape).astype(dtype)


def err(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape or got.dtype != want.dtype:
        return float("inf")
    return float(np.max(np.abs(got - want))) if got.size else 0.0


def main() -> None:
    out_dir = sys.argv[1]
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    cases = []
    for dtype in DTYPES:
        for shape in SHAPES:
            inputs = [value(r, shape, dtype) for r in range(world)]
            for op, reduce in NUMPY_OPS.items():
                t = ndl.Tensor(inputs[rank], dtype=dtype)
                alias = t.data  # shares the storage: in place means it sees the result
                dist.all_reduce(t, op=op)
                want = reduce(np.stack(inputs)).astype(dtype)
                cases.append({"what": f"all_reduce {op.name}", "dtype": dtype, "shape": shape,
                              "error": max(err(t.numpy(), want), err(alias.numpy(), want)),
                              "result_dtype": str(t.numpy().dtype)})
            for src in range(world):
                t = ndl.Tensor(inputs[rank], dtype=dtype)
                dist.broadcast(t, src=src)
                cases.append({"what": f"broadcast src={src}", "dtype": dtype, "shape": shape,
                              "error": err(t.numpy(), inputs[src])})
            t = ndl.Tensor(inputs[rank], dtype=dtype)
            filled = [ndl.Tensor(np.zeros(shape), dtype=dtype) for _ in range(world)]
            dist.all_gather(filled, t)
            fresh: list = []
            dist.all_gather(fresh, t)
            cases.append({"what": "all_gather", "dtype": dtype, "shape": shape,
                          "error": max(max(err(f.numpy(), x) for f, x in zip(filled, inputs)),
                                       max(err(f.numpy(), x) for f, x in zip(fresh, inputs))),
                          "count": [len(filled), len(fresh)]})
    # A non-contiguous tensor (a transposed view on the nd backend) is reduced correctly.
    base = [value(r, (3, 4), "float64", salt=1) for r in range(world)]
    t = ndl.Tensor(base[rank], dtype="float64").transpose()
    dist.all_reduce(t)
    cases.append({"what": "all_reduce of a transposed tensor", "dtype": "float64",
                  "shape": (4, 3), "error": err(t.numpy(), np.sum(base, axis=0).T)})
    dist.barrier()
    errors = {}
    # Mismatched shapes: the same clear error on every rank, not a hang.
    try:
        dist.all_reduce(ndl.Tensor(np.ones(2 + rank), dtype="float32"))
    except ndl.ShapeError as e:
        errors["all_reduce shapes"] = str(e)
    try:
        dist.broadcast(ndl.Tensor(np.ones((2, 2)), dtype="float32" if rank else "float64"))
    except ndl.ShapeError as e:
        errors["broadcast dtypes"] = str(e)
    try:
        dist.all_reduce(ndl.Tensor(np.arange(3), dtype="float32").numpy())
    except ndl.DTypeError as e:
        errors["not a tensor"] = str(e)
    try:
        dist.all_gather([ndl.Tensor(np.ones(3), dtype="float32")], ndl.Tensor(np.ones(3)))
    except ndl.ShapeError as e:
        errors["all_gather list length"] = str(e)
    dist.barrier()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world": world, "backend": ndl.BACKEND, "cases": cases,
                   "errors": errors}, f)


if __name__ == "__main__":
    main()
