"""DistributedDataParallel: data-parallel training over MPI, as in PyTorch.

Each rank runs the same model on its own share of every batch; after ``backward()`` each
parameter's ``.grad`` is the average of the ranks' gradients, so an optimizer step is the
same on every rank and the replicas stay identical.

How the gradients travel: the parameters (in reverse order, roughly the order in which
backward produces their gradients) are grouped into flat buckets of about
``bucket_cap_mb``. A gradient hook on each parameter copies its gradient, divided by the
world size, into its bucket; once a bucket is full, and every bucket before it has been
started, it is summed over the ranks with one non-blocking ``MPI_Iallreduce`` while
backward goes on with the earlier layers. Later hooks let MPI progress the pending
reductions; a callback at the end of ``backward()`` waits for all of them. Each
parameter's ``.grad`` is a view into its bucket, so no copy is made after the reduction.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import distributed as dist
from .._array import as_numpy, wrap
from ..autograd import Tensor, is_grad_enabled, queue_callback
from ..errors import GraphError, ShapeError
from .nn_basic import Module, Parameter

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """A flat buffer holding some parameters' gradients, then one 'used' flag per parameter.

    The flags are 1/world_size where the rank produced a gradient and 0 where it did not, so
    after the sum they say whether any rank used the parameter (no extra message needed).
    """

    __slots__ = ("members", "offsets", "numel", "dtype", "buffer", "pending", "size")

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype
        self.members: list[int] = []  # indices into the reducer's parameter list
        self.offsets: list[int] = []
        self.numel = 0
        self.buffer: np.ndarray | None = None
        self.pending = 0

    def add(self, index: int, size: int) -> None:
        self.members.append(index)
        self.offsets.append(self.numel)
        self.numel += size

    def flag(self, k: int) -> int:
        """The position of member ``k``'s flag in the buffer."""
        return self.numel + k

    @property
    def nbytes(self) -> int:
        return (self.numel + len(self.members)) * self.dtype.itemsize


class _Reducer:
    """The gradient hooks, the buckets and the state of the reduction in flight."""

    def __init__(self, params: list[Parameter], names: list[str], bucket_cap_bytes: int) -> None:
        self.world = dist._world()
        self.params = params
        self.names = names
        self.scale = 1.0 / self.world.size
        self.buckets = self._build_buckets(bucket_cap_bytes)
        self.where: dict[int, tuple[_Bucket, int]] = {}
        for bucket in self.buckets:
            for k, i in enumerate(bucket.members):
                self.where[i] = (bucket, k)
        self.sync = True
        self.accumulated: dict[int, Tensor] = {}  # no_sync(): local sums, by parameter
        self.pass_open = False  # a backward pass has called a hook and not yet ended
        self.pass_sync = True
        self.reported: list[bool] = []
        self.requests: list = []
        self.next_launch = 0
        self.stats = _new_stats()
        self.handles = [p.register_hook(self._hook(i)) for i, p in enumerate(params)]

    def _build_buckets(self, cap: int) -> list[_Bucket]:
        buckets: list[_Bucket] = []
        open_by_dtype: dict = {}
        for i in reversed(range(len(self.params))):
            array = as_numpy(self.params[i].realize_cached_data())
            bucket = open_by_dtype.get(array.dtype)
            if bucket is None or (bucket.members and
                                  (bucket.numel + array.size) * array.itemsize > cap):
                bucket = _Bucket(array.dtype)
                open_by_dtype[array.dtype] = bucket
                buckets.append(bucket)
            bucket.add(i, array.size)
        return buckets

    def _hook(self, i: int) -> Any:
        def ddp_gradient_hook(grad: Tensor) -> Tensor | None:
            return self.on_grad(i, grad)
        return ddp_gradient_hook

    # -- one backward pass ---------------------------------------------------------------------

    def on_grad(self, i: int, grad: Tensor) -> Tensor | None:
        if not self.pass_open:
            try:
                queue_callback(self.end_pass)
            except GraphError:
                # A function transform (needle.functional) runs the reverse pass without
                # backward(): not a training step, nothing to synchronise.
                return None
            self.pass_open = True
            self.pass_sync = self.sync
            if self.pass_sync:
                self._start_round()
        if not self.pass_sync:
            return self._accumulate(i, grad)
        if self.reported[i]:
            raise GraphError(
                f"DistributedDataParallel: parameter {self.names[i]!r} received a second "
                "gradient in one backward pass"
            )
        view = self._fill(i, as_numpy(grad.realize_cached_data()))
        return Tensor.make_const(wrap(view, grad.realize_cached_data()))

    def _accumulate(self, i: int, grad: Tensor) -> Tensor:
        # Needle's backward() sets .grad; under no_sync() DDP keeps the local sum itself,
        # as long as nobody replaced .grad (reset_grad() restarts the sum).
        p = self.params[i]
        previous = self.accumulated.get(i)
        g = as_numpy(grad.realize_cached_data())
        if previous is not None and p.grad is previous:
            total = g + as_numpy(previous.realize_cached_data())
        else:
            total = np.array(g)
        out = Tensor.make_const(wrap(total, grad.realize_cached_data()))
        self.accumulated[i] = out
        return out

    def _start_round(self) -> None:
        self.reported = [False] * len(self.params)
        for bucket in self.buckets:
            bucket.buffer = np.empty(bucket.numel + len(bucket.members), dtype=bucket.dtype)
            bucket.pending = len(bucket.members)
        self.requests = []
        self.next_launch = 0

    def _fill(self, i: int, g: np.ndarray | None) -> np.ndarray:
        """Put parameter ``i``'s gradient (plus its no_sync sum) / world size in its bucket."""
        bucket, k = self.where[i]
        p = self.params[i]
        offset = bucket.offsets[k]
        view = bucket.buffer[offset:offset + p.size].reshape(p.shape)
        previous = self.accumulated.pop(i, None)
        if previous is not None and p.grad is not previous:
            previous = None
        if g is None and previous is None:
            view.fill(0)
            bucket.buffer[bucket.flag(k)] = 0
        else:
            if g is None:
                g = as_numpy(previous.realize_cached_data())
            elif previous is not None:
                g = g + as_numpy(previous.realize_cached_data())
            np.multiply(g, self.scale, out=view)
            bucket.buffer[bucket.flag(k)] = self.scale
        self.reported[i] = True
        bucket.pending -= 1
        start = time.perf_counter()
        if bucket.pending == 0:
            self._launch_ready()
        elif self.requests:
            self.world.testall(self.requests)
        self.stats["comm_seconds"] += time.perf_counter() - start
        return view

    def _launch_ready(self) -> None:
        # Buckets start in index order on every rank: MPI matches collectives by order.
        while self.next_launch < len(self.buckets) and self.buckets[self.next_launch].pending == 0:
            bucket = self.buckets[self.next_launch]
            self.requests.append(self.world.iallreduce_sum(bucket.buffer))
            self.stats["allreduces"] += 1
            self.stats["bytes"] += bucket.nbytes
            self.next_launch += 1

    def end_pass(self) -> None:
        """After backward has set every .grad: finish the reduction (sync passes)."""
        self.pass_open = False
        if not self.pass_sync:
            return
        try:
            missing = [i for i, done in enumerate(self.reported) if not done]
            for i in missing:  # no gradient this pass on this rank: zeros (and flag 0)
                self._fill(i, None)
            start = time.perf_counter()
            self.world.waitall(self.requests)
            waited = time.perf_counter() - start
            self.stats["wait_seconds"] += waited
            self.stats["comm_seconds"] += waited
            self.stats["rounds"] += 1
            for i in missing:
                bucket, k = self.where[i]
                if bucket.buffer[bucket.flag(k)] > 0:  # another rank used it
                    p = self.params[i]
                    offset = bucket.offsets[k]
                    view = bucket.buffer[offset:offset + p.size].reshape(p.shape)
                    p.grad = Tensor.make_const(wrap(view, p.realize_cached_data()))
        finally:
            self.accumulated.clear()
            self.requests = []
            for bucket in self.buckets:
                bucket.buffer = None  # the .grad views keep their own buffers alive

    def check_idle(self) -> None:
        if self.pass_open:
            self.pass_open = False
            raise GraphError(
                "DistributedDataParallel: the previous backward pass did not finish (an "
                "exception inside it?); the ranks are no longer in step"
            )


def _new_stats() -> dict:
    return {"rounds": 0, "allreduces": 0, "bytes": 0, "comm_seconds": 0.0, "wait_seconds": 0.0}


def _model_description(module: Module) -> list[tuple[str, str, tuple, str]]:
    """(kind, name, shape, dtype) of every parameter and buffer, in traversal order."""
    out = []
    for name, t in module._named_tensors():
        kind = "parameter" if isinstance(t, Parameter) else "buffer"
        out.append((kind, name, tuple(t.shape), str(np.dtype(t.dtype))))
    return out


def _describe_mismatch(per_rank: list[list]) -> str | None:
    """What differs between rank 0's model and the others' (None when nothing does)."""
    reference = per_rank[0]
    problems = []
    for r, other in enumerate(per_rank[1:], start=1):
        if len(other) != len(reference):
            problems.append(f"rank {r} has {len(other)} parameters and buffers, rank 0 has "
                            f"{len(reference)}")
        for mine, theirs in zip(reference, other):
            if mine != theirs:
                problems.append(f"rank {r} has {theirs[0]} {theirs[1]!r} of shape {theirs[2]} "
                                f"({theirs[3]}), rank 0 has {mine[0]} {mine[1]!r} of shape "
                                f"{mine[2]} ({mine[3]})")
                break
    return "; ".join(problems[:8]) if problems else None


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the ranks of ``needle.distributed``.

    At construction every rank checks that all ranks built the same parameters and buffers
    (names, shapes, dtypes) and then takes rank 0's values, so the replicas start equal.
    Every ``forward`` (except under ``no_grad()`` or inside ``no_sync()``) first copies
    rank 0's buffers (e.g. BatchNorm running statistics) to the other ranks; every
    ``backward()`` leaves in each parameter's ``.grad`` the average of the ranks' gradients.
    A parameter that gets no gradient on some ranks counts as zero there; one that gets none
    on any rank keeps its ``.grad`` as it was.

    Every rank must run the same sequence of forward and backward passes (the same number of
    batches per epoch: ``DistributedSampler`` sees to that); to evaluate on one rank alone,
    do it under ``no_grad()`` or on ``.module``.

    Parameters
    ----------
    module : Module
        The model; its parameters are averaged, its buffers taken from rank 0.
    bucket_cap_mb : float
        The size of a gradient bucket (one allreduce each) in megabytes (2**20 bytes).
    broadcast_buffers : bool
        Copy rank 0's buffers to every rank at each forward (with gradients enabled).
    find_unused_parameters : bool
        Accepted for PyTorch compatibility; unused parameters are always handled.

    Raises
    ------
    ShapeError
        The ranks' models differ (raised on every rank, naming the first differences).
    DistributedError
        ``needle.distributed.init_process_group()`` has not been called.
    """

    def __init__(
        self,
        module: Module,
        bucket_cap_mb: float = 25,
        broadcast_buffers: bool = True,
        find_unused_parameters: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a Module, got "
                            f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got "
                             f"{bucket_cap_mb}")
        world = dist._world()
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = bucket_cap_mb
        self.training = module.training
        problem = _describe_mismatch(dist._allgather_object(_model_description(module)))
        if problem is not None:
            raise ShapeError(
                f"DistributedDataParallel: the model differs across ranks: {problem}. Every "
                "rank must build the same model."
            )
        dist._broadcast_tensors([t for _, t in module._named_tensors()], src=0)
        named: dict[int, tuple[str, Parameter]] = {}
        for name, t in module._named_tensors():
            if isinstance(t, Parameter) and t.requires_grad and id(t) not in named:
                named[id(t)] = (name, t)
        self._reducer = _Reducer([p for _, p in named.values()], [n for n, _ in named.values()],
                                 int(bucket_cap_mb * 2 ** 20))
        self._world_size = world.size

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._reducer.check_idle()
        # As PyTorch: not under no_grad() (so evaluating on one rank alone cannot hang) nor
        # inside no_sync().
        if (self.broadcast_buffers and self._world_size > 1 and is_grad_enabled()
                and self._reducer.sync):
            buffers = [t for _, t in self.module._named_tensors() if not isinstance(t, Parameter)]
            dist._broadcast_tensors(buffers, src=0)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Skip the gradient allreduce in the backward passes inside the block.

        For gradient accumulation: needle's ``backward()`` *sets* ``.grad``, so here DDP
        itself sums each parameter's local gradients over the passes in the block (``.grad``
        holds that local sum) and the first backward after the block averages the whole
        sum over the ranks, as PyTorch's accumulate-then-sync does. Setting ``.grad`` to
        None (``optimizer.reset_grad()``) in between starts the sum afresh.
        """
        previous = self._reducer.sync
        self._reducer.sync = False
        try:
            yield
        finally:
            self._reducer.sync = previous

    def comm_stats(self) -> dict:
        """Communication so far: ``rounds`` (synchronised backward passes), ``allreduces``,
        ``bytes``, ``comm_seconds`` (inside MPI calls) and ``wait_seconds`` (of it, waiting
        at the end of backward)."""
        return dict(self._reducer.stats)

    def reset_comm_stats(self) -> None:
        """Set the :meth:`comm_stats` counters back to zero."""
        self._reducer.stats = _new_stats()

    @property
    def num_buckets(self) -> int:
        """How many gradient buckets (allreduces per backward) there are."""
        return len(self._reducer.buckets)

    # The wrapped module's names, so checkpoints load with or without the wrapper.
    def _named_tensors(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        return self.module._named_tensors(prefix)

    def state_dict(self) -> Any:
        """The wrapped module's state dict (its keys, without a ``module.`` prefix)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> Any:
        """Load into the wrapped module (see ``Module.load_state_dict``)."""
        return self.module.load_state_dict(state_dict, strict)

    def extra_repr(self) -> str:
        return (f"world_size={self._world_size}, buckets={self.num_buckets}, "
                f"bucket_cap_mb={self.bucket_cap_mb}")
