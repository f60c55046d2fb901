"""Data parallelism over MPI: collectives with PyTorch's names (``torch.distributed``).

Processes are started by MPI's own launcher, and talk through ``mpi4py``::

    mpiexec -n 4 python train.py            # one machine, 4 processes
    mpiexec -hosts a,b -n 8 python train.py # two machines (MPICH's hydra syntax)

Each process calls :func:`init_process_group` first. Run without ``mpiexec`` (or without
``mpi4py`` installed) the same program is a world of one process, where every collective
leaves its tensor as it is.

Collectives work on float32 and float64 tensors of any shape (0-d and empty included) on
both backends, and change the tensor **in place**: a C-contiguous tensor's own storage is
written (views that share it see the result); another layout is reduced through a
contiguous copy that is written back. Before each collective the ranks compare, with one
tiny extra allreduce, the shapes and dtypes they pass, so a mismatch is a clear error on
every rank instead of a hang (MPICH waits forever when one rank sends fewer elements) or
silently mixed numbers. That costs one more synchronisation per call (a few microseconds
on an idle machine); ``init_process_group(check_collectives=False)`` leaves it out.
``DistributedDataParallel`` never needs it: its buckets match by construction.

A rank that raises an uncaught exception prints its traceback and calls ``MPI_Abort``,
which ends every rank (otherwise the others would wait forever in their next collective);
``init_process_group(abort_on_exception=False)`` opts out.
"""

from __future__ import annotations

import enum
import os
import sys
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import as_numpy, wrap
from .autograd import Tensor
from .errors import DTypeError, NeedleError, ShapeError

__all__ = [
    "DistributedError", "ReduceOp", "init_process_group", "is_initialized", "is_available",
    "launched_world_size", "get_backend", "get_rank", "get_world_size", "all_reduce",
    "broadcast", "all_gather", "barrier", "destroy_process_group",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# str(dtype) takes microseconds; these are per call.
_NAMES = {_FLOATS[0]: "float32", _FLOATS[1]: "float64"}

# What MPI launchers put in each process's environment: MPICH/Intel MPI (hydra), Open MPI.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


class DistributedError(NeedleError, RuntimeError):
    """Misuse of ``needle.distributed``: not initialised, initialised twice, no MPI..."""


class ReduceOp(enum.Enum):
    """How :func:`all_reduce` combines the ranks' tensors."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MAX = "max"
    MIN = "min"


# ----------------------------------------------------------------------------------------------
# The world: an mpi4py communicator, or a stand-in for a single process without MPI


class _DoneRequest:
    """A finished request, as returned by the single-process world's ``Iallreduce``."""

    def Test(self) -> bool:  # noqa: N802  (mpi4py's names)
        return True

    def Wait(self) -> None:  # noqa: N802
        return None


class _SelfComm:
    """What a one-process world needs of a communicator, for when mpi4py is not installed.

    The collectives return before calling MPI in a world of one; only these remain.
    """

    rank = 0
    size = 1

    def Iallreduce(self, send: Any, recv: Any, op: Any = None) -> _DoneRequest:  # noqa: N802
        return _DoneRequest()  # a sum over one rank is the buffer itself

    def Barrier(self) -> None:  # noqa: N802
        return None

    def allgather(self, obj: Any) -> list:
        return [obj]

    def Abort(self, code: int = 1) -> None:  # noqa: N802
        os._exit(code)


# Marks an in-place reduction for the single-process world (MPI.IN_PLACE under MPI).
_IN_PLACE = object()


class _World:
    """The process group: communicator, rank, size, and what init_process_group changed."""

    def __init__(self, comm: Any, mpi: Any) -> None:
        self.comm = comm
        self.mpi = mpi  # the mpi4py.MPI module, or None for the single-process stand-in
        self.rank = int(comm.rank)
        self.size = int(comm.size)
        self.in_place = mpi.IN_PLACE if mpi is not None else _IN_PLACE
        self.check = True
        self.previous_excepthook: Any = None
        self.excepthook: Any = None
        if mpi is not None:
            self.types = {_FLOATS[0]: mpi.FLOAT, _FLOATS[1]: mpi.DOUBLE}
            self.ops = {ReduceOp.SUM: mpi.SUM, ReduceOp.AVG: mpi.SUM,
                        ReduceOp.PRODUCT: mpi.PROD, ReduceOp.MAX: mpi.MAX,
                        ReduceOp.MIN: mpi.MIN}
            self.int64 = mpi.INT64_T
        else:
            self.types = {_FLOATS[0]: None, _FLOATS[1]: None}
            self.ops = dict.fromkeys(ReduceOp)
            self.int64 = None

    def buf(self, array: np.ndarray) -> list:
        """An mpi4py buffer specification for a contiguous float array."""
        return [array, self.types[array.dtype]]

    def iallreduce_sum(self, array: np.ndarray) -> Any:
        """Start an in-place sum of ``array`` over the ranks; returns the request."""
        return self.comm.Iallreduce(self.in_place, self.buf(array), op=self.ops[ReduceOp.SUM])

    def testall(self, requests: list) -> None:
        """Let MPI progress pending requests (MPICH advances them only inside MPI calls)."""
        if self.mpi is not None and requests:
            self.mpi.Request.Testall(requests)

    def waitall(self, requests: list) -> None:
        if self.mpi is not None and requests:
            self.mpi.Request.Waitall(requests)
        else:
            for request in requests:
                request.Wait()


_WORLD: _World | None = None


def launched_world_size() -> int | None:
    """The number of processes an MPI launcher (``mpiexec``) started, from the environment.

    Returns None when this process was not started by a launcher that says so (MPICH's
    and Intel MPI's hydra, Open MPI). Needs no MPI library; apps use it to switch to
    distributed training when run under ``mpiexec``.
    """
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def _load_mpi() -> Any:
    """mpi4py's MPI module (importing it initialises MPI), or None when not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    except RuntimeError as e:  # mpi4py is installed but finds no MPI library
        launched = launched_world_size()
        if launched is not None and launched > 1:
            raise DistributedError(
                f"init_process_group: mpi4py cannot load an MPI library ({e}); install one "
                "with `pip install mpich` (or `pip install needle[distributed]`)"
            ) from e
        return None
    return MPI


def is_available() -> bool:
    """Whether ``mpi4py`` can be imported (without initialising MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def init_process_group(backend: str = "mpi", *, abort_on_exception: bool = True,
                       check_collectives: bool = True) -> None:
    """Join the process group: every process started by ``mpiexec`` calls this first.

    Parameters
    ----------
    backend : str
        ``"mpi"``, the only backend (through ``mpi4py``).
    abort_on_exception : bool
        When the world has more than one process, install a ``sys.excepthook`` that prints
        the traceback of an uncaught exception and then calls ``MPI_Abort``, so that the
        other ranks do not wait forever for this one. ``destroy_process_group`` removes it.
    check_collectives : bool
        Before each collective, check (one 16-byte allreduce) that every rank passes the
        same shape and dtype, and raise a ``ShapeError`` on every rank if not.

    Raises
    ------
    DistributedError
        Already initialised; an unknown backend; started by ``mpiexec`` for several
        processes but ``mpi4py`` is missing, or MPI sees a world of one (an ``mpiexec``
        from another MPI library than the one ``mpi4py`` uses).
    """
    global _WORLD
    if backend != "mpi":
        raise DistributedError(
            f"init_process_group: unknown backend {backend!r}; needle supports 'mpi' only"
        )
    if _WORLD is not None:
        raise DistributedError(
            "init_process_group: the process group is already initialised "
            "(call destroy_process_group() first)"
        )
    launched = launched_world_size()
    mpi = _load_mpi()
    if mpi is None:
        if launched is not None and launched > 1:
            raise DistributedError(
                f"init_process_group: started by mpiexec as one of {launched} processes, "
                "but mpi4py is not installed: `pip install needle[distributed]` "
                "(mpi4py and mpich)"
            )
        world = _World(_SelfComm(), None)
    else:
        world = _World(mpi.COMM_WORLD, mpi)
        if launched is not None and launched != world.size:
            raise DistributedError(
                f"init_process_group: mpiexec started {launched} processes but MPI reports "
                f"a world of {world.size}: the mpiexec belongs to another MPI library than "
                f"the one mpi4py loaded ({' '.join(mpi.Get_library_version().split()[:3])}); "
                "run the mpiexec installed next to this Python (e.g. .venv/bin/mpiexec)"
            )
    world.check = bool(check_collectives)
    if abort_on_exception and world.size > 1:
        _install_abort_hook(world)
    _WORLD = world


def _install_abort_hook(world: _World) -> None:
    previous = sys.excepthook

    def abort_on_uncaught(exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            previous(exc_type, exc, tb)
            print(f"needle.distributed: rank {world.rank} of {world.size} raised "
                  f"{exc_type.__name__}; calling MPI_Abort to end every rank",
                  file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            world.comm.Abort(1)

    world.previous_excepthook = previous
    world.excepthook = abort_on_uncaught
    sys.excepthook = abort_on_uncaught


def destroy_process_group() -> None:
    """Leave the process group (MPI itself is finalised when the process exits).

    Removes the abort-on-exception hook; afterwards :func:`is_initialized` is False and
    :func:`init_process_group` may be called again.
    """
    global _WORLD
    world = _require("destroy_process_group")
    if world.excepthook is not None and sys.excepthook is world.excepthook:
        sys.excepthook = world.previous_excepthook
    _WORLD = None


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has been called (and not undone)."""
    return _WORLD is not None


def _require(where: str) -> _World:
    if _WORLD is None:
        raise DistributedError(
            f"{where}: the process group is not initialised; call "
            "needle.distributed.init_process_group() first"
        )
    return _WORLD


def get_backend() -> str:
    """The backend's name: ``"mpi"``."""
    _require("get_backend")
    return "mpi"


def get_rank() -> int:
    """This process's rank, 0 to ``get_world_size() - 1``."""
    return _require("get_rank").rank


def get_world_size() -> int:
    """The number of processes in the group."""
    return _require("get_world_size").size


# ----------------------------------------------------------------------------------------------
# Collectives


def _float_array(where: str, tensor: Any) -> np.ndarray:
    """The numpy view of a float32/float64 tensor's data."""
    if not isinstance(tensor, Tensor):
        raise DTypeError(f"{where}: expected a needle Tensor, got {type(tensor).__name__}")
    array = as_numpy(tensor.realize_cached_data())
    if array.dtype not in _FLOATS:
        raise DTypeError(f"{where}: tensors must be float32 or float64, got {array.dtype}")
    return array


def _check_same(world: _World, where: str, what: str, value: tuple) -> None:
    """Raise the same clear error on every rank unless all ranks pass an equal ``value``.

    One allreduce of two integers: the maximum of a digest and of its negation agree only
    when every rank has the same digest. Only on a mismatch are the values gathered, to
    name them in the message.
    """
    if world.size == 1 or not world.check:
        return
    digest = zlib.crc32(repr(value).encode())
    probe = np.array([digest, -digest], dtype=np.int64)
    world.comm.Allreduce(world.in_place, [probe, world.int64], op=world.mpi.MAX)
    if probe[0] == -probe[1]:
        return
    values = world.comm.allgather(value)
    listed = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
    raise ShapeError(f"{where}: every rank must pass the same {what}, got {listed}")


def _in_place(tensor: Tensor, array: np.ndarray, run: Any) -> None:
    """Run the MPI call ``run(contiguous)`` so that its result ends up in ``tensor``."""
    if array.flags.c_contiguous and array.flags.writeable:
        run(array)  # MPI reads and writes the tensor's own storage
        return
    work = np.array(array, order="C")
    run(work)
    if array.flags.writeable:
        array[...] = work
    else:  # e.g. a read-only broadcast view: the tensor gets new storage
        tensor.cached_data = wrap(work, tensor.realize_cached_data())


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM) -> None:
    """Combine ``tensor`` over all ranks, in place: afterwards every rank holds the result.

    Parameters
    ----------
    tensor : Tensor
        float32 or float64, any shape; the same shape and dtype on every rank.
    op : ReduceOp
        ``SUM`` (default), ``AVG`` (the sum divided by the world size), ``PRODUCT``,
        ``MAX`` or ``MIN``, element-wise.

    Raises
    ------
    ShapeError
        The ranks passed different shapes or dtypes (raised on every rank).
    DTypeError
        Not a Tensor, or not float32/float64.
    """
    world = _require("all_reduce")
    if not isinstance(op, ReduceOp):
        raise DistributedError(f"all_reduce: op must be a ReduceOp, got {op!r}")
    array = _float_array("all_reduce", tensor)
    _check_same(world, "all_reduce", "shape, dtype and op",
                (tuple(array.shape), _NAMES[array.dtype], op.name))
    if world.size == 1:
        return

    def run(buf: np.ndarray) -> None:
        world.comm.Allreduce(world.in_place, world.buf(buf), op=world.ops[op])
        if op is ReduceOp.AVG:
            np.divide(buf, world.size, out=buf)

    _in_place(tensor, array, run)


def broadcast(tensor: Tensor, src: int = 0) -> None:
    """Copy rank ``src``'s ``tensor`` into ``tensor`` on every other rank, in place.

    Parameters
    ----------
    tensor : Tensor
        float32 or float64; the same shape and dtype on every rank.
    src : int
        The rank whose values are sent (the same on every rank).
    """
    world = _require("broadcast")
    if not isinstance(src, (int, np.integer)) or not 0 <= int(src) < world.size:
        raise DistributedError(
            f"broadcast: src must be a rank in [0, {world.size}), got {src!r}"
        )
    array = _float_array("broadcast", tensor)
    _check_same(world, "broadcast", "shape, dtype and src",
                (tuple(array.shape), _NAMES[array.dtype], int(src)))
    if world.size == 1:
        return
    _in_place(tensor, array, lambda buf: world.comm.Bcast(world.buf(buf), root=int(src)))


def all_gather(tensor_list: list, tensor: Tensor) -> None:
    """Gather every rank's ``tensor`` into ``tensor_list``, ordered by rank, on every rank.

    Parameters
    ----------
    tensor_list : list
        Either ``get_world_size()`` tensors of ``tensor``'s shape and dtype, filled in place
        (PyTorch's convention), or an empty list, which is extended with new tensors.
    tensor : Tensor
        float32 or float64; the same shape and dtype on every rank.
    """
    world = _require("all_gather")
    if not isinstance(tensor_list, list):
        raise DistributedError(
            f"all_gather: tensor_list must be a list, got {type(tensor_list).__name__}"
        )
    array = _float_array("all_gather", tensor)
    targets = [_float_array("all_gather", t) for t in tensor_list]
    if targets:
        if len(targets) != world.size:
            raise ShapeError(
                f"all_gather: tensor_list has {len(targets)} tensors, expected one per rank "
                f"({world.size}) or an empty list"
            )
        for i, target in enumerate(targets):
            if target.shape != array.shape or target.dtype != array.dtype:
                raise ShapeError(
                    f"all_gather: tensor_list[{i}] has shape {target.shape} and dtype "
                    f"{target.dtype}, but the tensor has {array.shape} {array.dtype}"
                )
    _check_same(world, "all_gather", "shape and dtype", (tuple(array.shape), _NAMES[array.dtype]))
    send = np.ascontiguousarray(array)
    gathered = np.empty((world.size,) + array.shape, dtype=array.dtype)
    if world.size == 1:
        gathered[0] = send
    else:
        world.comm.Allgather(world.buf(send), world.buf(gathered))
    like = tensor.realize_cached_data()
    if not targets:
        for r in range(world.size):
            tensor_list.append(Tensor.make_const(wrap(np.array(gathered[r]), like)))
        return
    for r, (target_tensor, target) in enumerate(zip(tensor_list, targets)):
        if target.flags.writeable:
            target[...] = gathered[r]
        else:
            target_tensor.cached_data = wrap(np.array(gathered[r]), like)


def barrier() -> None:
    """Wait until every rank has called ``barrier()``."""
    _require("barrier").comm.Barrier()


# ----------------------------------------------------------------------------------------------
# Helpers for nn.parallel (coalesced broadcasts and object exchange)


def _world() -> _World:
    return _require("DistributedDataParallel")


def _allgather_object(obj: Any) -> list:
    """Every rank's (picklable) ``obj``, by rank."""
    return _world().comm.allgather(obj)


def _broadcast_tensors(tensors: Sequence[Tensor], src: int = 0) -> None:
    """Broadcast many tensors from ``src`` with one message per dtype, in place."""
    world = _world()
    if world.size == 1 or not tensors:
        return
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(_float_array("broadcast", t).dtype, []).append(t)
    for dtype in sorted(by_dtype, key=str):
        group = by_dtype[dtype]
        arrays = [_float_array("broadcast", t) for t in group]
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.empty(0, dtype)
        world.comm.Bcast(world.buf(flat), root=src)
        offset = 0
        for t, a in zip(group, arrays):
            part = flat[offset:offset + a.size].reshape(a.shape)
            offset += a.size
            _in_place(t, a, lambda buf, part=part: np.copyto(buf, part))
