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

Faults end the job instead of hanging it (README, "Faults", lists what remains):

- a rank that raises an uncaught exception prints its traceback and calls ``MPI_Abort``,
  which ends every rank (otherwise the others would wait forever in their next
  collective); ``init_process_group(abort_on_exception=False)`` opts out. Before
  ``init_process_group`` (from the import of ``needle`` on, when started by ``mpiexec`` for
  several processes) the rank stops itself with SIGTERM instead, which ``mpiexec`` answers
  by stopping the others;
- a rank that leaves the group (its process exits, for any reason and with any status,
  or it calls ``destroy_process_group``) tells the others how many collectives it made;
  one that waits, or starts to wait, for a collective the leaver will never make gets a
  ``DistributedError`` and the job is aborted;
- a rank that waits in one collective (or DDP's wait for its buckets) longer than the
  process group's ``timeout`` (300 s, or ``NEEDLE_DIST_TIMEOUT`` seconds, or
  ``init_process_group(timeout=...)``) gets a ``DistributedError`` naming the collective,
  the rank and the timeout, and the job is aborted. The collectives stay blocking MPI
  calls (the fastest); a watchdog thread does the watching, and prints the error with the
  main thread's stack when the main thread is inside MPI and cannot raise;
- ``init_process_group`` itself (``MPI_Init`` waits for every rank) exits the process
  with status 1 and a stack dump ("Timeout") after ``timeout``, for a rank that exited
  before calling it.
"""

from __future__ import annotations

import atexit
import datetime
import enum
import faulthandler
import os
import signal
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DTypeError, NeedleError, ShapeError
from .tensor import Tensor, raw_tensor, realize

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
_LAUNCHER_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")

DEFAULT_TIMEOUT = 300.0  # seconds; PyTorch's `timeout=` of init_process_group
_TIMEOUT_VAR = "NEEDLE_DIST_TIMEOUT"

# How often the watchdog thread looks at the main thread's wait (at most).
_WATCH_PERIOD = 0.25
# How often a collective call looks for "I leave" messages first (at most): an MPI_Test
# before each call made 1-16 MB allreduces a median 6% (0-20%) slower, measured.
_POLL_EVERY = 0.1
_LEAVE_TAG = 7
_LEFT_BY = {1: "its process exited", 2: "it called destroy_process_group()"}


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
    """The process group: communicator, rank, size, and what init_process_group changed.

    Every collective goes through :meth:`call` (a blocking MPI call) or :meth:`start` and
    :meth:`waitall` (non-blocking ones); with several ranks a :class:`_Watchdog` thread
    watches them (see there).
    """

    def __init__(self, comm: Any, mpi: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.comm = comm
        self.mpi = mpi  # the mpi4py.MPI module, or None for the single-process stand-in
        self.rank = int(comm.rank)
        self.size = int(comm.size)
        self.timeout = timeout
        self.in_place = mpi.IN_PLACE if mpi is not None else _IN_PLACE
        self.check = True
        self.previous_excepthook: Any = None
        self.excepthook: Any = None
        self.seq = 0  # collectives started on comm, in the same order on every rank
        self.waiting: tuple | None = None  # (seq, where, since, thread) while inside MPI
        self.broken: str | None = None  # why the group can no longer be used
        self.ctl: Any = None  # a duplicate of comm, for "I leave" messages
        self.left: dict[int, tuple[int, int]] = {}  # rank -> (collectives made, how)
        self.notice: Any = None  # the pending receive of the next "I leave" message
        self.notice_buf = np.zeros(3, dtype=np.int64)
        self.notice_lock = threading.Lock()  # the main thread and the watchdog test it
        self.polled = 0.0  # when the notice was last tested
        self.sent: list = []  # our own "I leave" messages (kept alive while in flight)
        self.watchdog: _Watchdog | None = None
        if mpi is not None:
            self.types = {_FLOATS[0]: mpi.FLOAT, _FLOATS[1]: mpi.DOUBLE}
            self.ops = {ReduceOp.SUM: mpi.SUM, ReduceOp.AVG: mpi.SUM,
                        ReduceOp.PRODUCT: mpi.PROD, ReduceOp.MAX: mpi.MAX,
                        ReduceOp.MIN: mpi.MIN}
            self.int64 = mpi.INT64_T
            # Whether another thread may call MPI while this one waits inside MPI
            # (mpi4py asks for MPI_THREAD_MULTIPLE unless told otherwise).
            self.threaded = mpi.Query_thread() == mpi.THREAD_MULTIPLE
        else:
            self.types = {_FLOATS[0]: None, _FLOATS[1]: None}
            self.ops = dict.fromkeys(ReduceOp)
            self.int64 = None
            self.threaded = False

    def buf(self, array: np.ndarray) -> list:
        """An mpi4py buffer specification for a contiguous float array."""
        return [array, self.types[array.dtype]]

    def start(self, where: str) -> None:
        """Count one more collective on ``comm``; raise if it can never complete."""
        if self.broken is not None:
            raise DistributedError(
                f"{where}: the process group can no longer be used: {self.broken}"
            )
        self.seq += 1
        if self.notice is not None and time.monotonic() - self.polled > _POLL_EVERY:
            with self.notice_lock:
                self.poll_notices()
        if self.left:
            with self.notice_lock:
                problem = self.left_problem(where)
            if problem is not None:
                self.broken = problem
                raise DistributedError(problem)

    def iallreduce_sum(self, array: np.ndarray) -> Any:
        """Start an in-place sum of ``array`` over the ranks; returns the request."""
        self.start("DistributedDataParallel")
        return self.comm.Iallreduce(self.in_place, self.buf(array), op=self.ops[ReduceOp.SUM])

    def testall(self, requests: list) -> None:
        """Let MPI progress pending requests (MPICH advances them only inside MPI calls)."""
        if self.mpi is not None and requests:
            self.mpi.Request.Testall(requests)

    def call(self, where: str, mpi_call: Any, *args: Any, **kwargs: Any) -> Any:
        """Make one (blocking) collective MPI call, watched by the watchdog.

        The call itself blocks: MPICH's own wait moves a large collective forward faster
        than a Python loop of MPI_Test calls (which took 1.3-1.7x as long at 1-16 MB)
        or MPI_Waitany, so the timeout and the ranks that leave are watched by another
        thread.
        """
        self.start(where)
        self.waiting = (self.seq, where, time.monotonic(), threading.get_ident())
        try:
            return mpi_call(*args, **kwargs)
        finally:
            self.waiting = None

    def waitall(self, requests: list, where: str = "DistributedDataParallel") -> None:
        """Wait in MPI_Waitall for requests already started, watched as :meth:`call`."""
        if not requests:
            return
        if self.mpi is None:
            for request in requests:
                request.Wait()
            return
        self.waiting = (self.seq, where, time.monotonic(), threading.get_ident())
        try:
            self.mpi.Request.Waitall(requests)
        finally:
            self.waiting = None

    def poll_until(self, requests: list, where: str) -> None:
        """Wait for ``requests`` by polling, raising on timeout (for init: no watchdog yet)."""
        begin = time.monotonic()
        while not self.mpi.Request.Testall(requests):
            if time.monotonic() - begin > self.timeout:
                self.broken = self.timeout_message(where)
                raise DistributedError(self.broken)
            time.sleep(1e-3)

    def timeout_message(self, where: str) -> str:
        return (f"{where}: rank {self.rank} of {self.size} waited more than the process "
                f"group's timeout of {self.timeout:g} s for the other ranks: a rank is stuck, "
                "skipped this collective, or is that much slower (raise the timeout with "
                f"init_process_group(timeout=...) or {_TIMEOUT_VAR})")

    # -- ranks that leave ----------------------------------------------------------------------

    def open_control(self, ctl: Any) -> None:
        """Listen on ``ctl`` (a duplicate of comm) for ranks that leave; start the watchdog."""
        self.ctl = ctl
        self._post_notice()
        self.watchdog = _Watchdog(self)
        self.watchdog.start()

    def _post_notice(self) -> None:
        self.notice_buf = np.zeros(3, dtype=np.int64)
        self.notice = self.ctl.Irecv([self.notice_buf, self.int64],
                                     source=self.mpi.ANY_SOURCE, tag=_LEAVE_TAG)

    def poll_notices(self) -> None:
        """Record the "I leave" messages that have arrived (holding notice_lock)."""
        self.polled = time.monotonic()
        while self.notice is not None and self.notice.Test():
            rank, made, how = (int(v) for v in self.notice_buf)
            self.left[rank] = (made, how)
            self.notice = None
            if len(self.left) < self.size - 1:
                self._post_notice()

    def left_problem(self, where: str) -> str | None:
        """Why collective ``self.seq`` can never complete, if a rank left before it."""
        for rank, (made, how) in sorted(self.left.items()):
            if made < self.seq:
                return (f"{where}: rank {rank} left the process group "
                        f"({_LEFT_BY.get(how, how)}) after {made} collective calls, so it "
                        f"will never join call #{self.seq}, which rank {self.rank} of "
                        f"{self.size} is making")
        return None

    def leave(self, how: int) -> None:
        """Tell every other rank that this one takes part in no more collectives."""
        if self.ctl is None:
            return
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        message = np.array([self.rank, self.seq, how], dtype=np.int64)
        requests = [self.ctl.Isend([message, self.int64], dest=r, tag=_LEAVE_TAG)
                    for r in range(self.size) if r != self.rank]
        self.sent.append((message, requests))
        # Small messages go out at once (eager); never let leaving wait on a peer for long.
        deadline = time.monotonic() + 1.0
        while not self.mpi.Request.Testall(requests) and time.monotonic() < deadline:
            time.sleep(1e-4)
        with self.notice_lock:
            if self.notice is not None and not self.notice.Test():
                self.notice.Cancel()
                self.notice.Wait()
            self.notice = None
        self.ctl = None


class _Watchdog(threading.Thread):
    """Ends the job when the main thread waits in a collective that cannot complete.

    Every ``period`` seconds it records the ranks that left (their "I leave" messages, when
    MPI allows a second thread) and looks at what the main thread waits for: past the
    timeout, or for a collective a rank that left will never make, it prints the error
    (with the main thread's stack) and aborts the job. The main thread, blocked inside an
    MPI call, cannot be made to raise; a collective *started* after the problem is
    known raises the ``DistributedError`` itself (see _World.start).
    """

    def __init__(self, world: _World) -> None:
        super().__init__(name="needle.distributed watchdog", daemon=True)
        self.world = world
        self.period = max(0.01, min(_WATCH_PERIOD, world.timeout / 10))
        self.stopping = threading.Event()
        self.idle = threading.Lock()  # held while checking, so stop() waits for a check

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            with self.idle:
                if self.stopping.is_set():
                    return
                self.check()

    def stop(self) -> None:
        self.stopping.set()
        with self.idle:
            pass

    def check(self) -> None:
        world = self.world
        with world.notice_lock:
            if world.threaded:  # else only the main thread may call MPI
                world.poll_notices()
            waiting = world.waiting
            if waiting is None:
                return
            seq, where, since, thread = waiting
            problem = world.left_problem(where) if world.left and seq == world.seq else None
        if problem is None and time.monotonic() - since > world.timeout:
            problem = world.timeout_message(where)
        if problem is None or world.waiting is not waiting:
            return
        world.broken = problem
        frame = sys._current_frames().get(thread)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        which = "main thread" if thread == threading.main_thread().ident else "thread"
        print(f"Stack of rank {world.rank}'s {which}, waiting in {where}:\n{stack}"
              f"needle.distributed.DistributedError: {problem}", file=sys.stderr)
        if world.threaded:
            _abort(world, "cannot complete a collective")
        print(f"needle.distributed: rank {world.rank} of {world.size} cannot complete a "
              "collective; exiting (without MPI_Finalize, so mpiexec ends every rank)",
              file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)


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


def _timeout_seconds(timeout: Any) -> float:
    """The process group's timeout in seconds, from the argument or the environment."""
    if timeout is None:
        raw = os.environ.get(_TIMEOUT_VAR)
        if raw is None:
            return DEFAULT_TIMEOUT
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        given = f"{_TIMEOUT_VAR}={raw!r}"
    elif isinstance(timeout, datetime.timedelta):
        value, given = timeout.total_seconds(), f"timeout={timeout!r}"
    elif isinstance(timeout, (int, float, np.integer, np.floating)) and not isinstance(
            timeout, bool):
        value, given = float(timeout), f"timeout={timeout!r}"
    else:
        raise DistributedError(
            "init_process_group: timeout must be a datetime.timedelta or a number of "
            f"seconds, got {type(timeout).__name__}"
        )
    if not value > 0:  # also NaN
        raise DistributedError(
            f"init_process_group: {given} must be a positive number of seconds (inf: no limit)"
        )
    return value


def _start_mpi(timeout: float) -> Any:
    """_load_mpi(), under a watchdog when this is where MPI_Init waits for every rank."""
    launched = launched_world_size()
    if (launched is None or launched < 2 or "mpi4py.MPI" in sys.modules
            or timeout == float("inf")):
        return _load_mpi()
    # MPI_Init waits for every rank and holds the GIL meanwhile, so no Python thread or
    # signal handler can stop it; faulthandler's watchdog is a C thread. It prints
    # "Timeout", then this stack (whose frames say what was waited for), then exits(1).
    try:  # (this replaces a dump_traceback_later of the program's own, if any)
        faulthandler.dump_traceback_later(timeout, exit=True)
    except OverflowError:  # more seconds than it can count: no limit then
        return _load_mpi()
    try:
        return _mpi_init_waits_for_every_rank_to_call_init_process_group()
    finally:
        faulthandler.cancel_dump_traceback_later()


def _mpi_init_waits_for_every_rank_to_call_init_process_group() -> Any:
    return _load_mpi()


def is_available() -> bool:
    """Whether ``mpi4py`` can be imported (without initialising MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def init_process_group(backend: str = "mpi", *, timeout: Any = None,
                       abort_on_exception: bool = True, check_collectives: bool = True) -> None:
    """Join the process group: every process started by ``mpiexec`` calls this first.

    Parameters
    ----------
    backend : str
        ``"mpi"``, the only backend (through ``mpi4py``).
    timeout : datetime.timedelta or float, optional
        How long (seconds) a rank waits in a collective, or here for the others to start,
        before it gives up: a ``DistributedError`` naming the collective, then the job is
        aborted. Default: the environment variable ``NEEDLE_DIST_TIMEOUT``, else 300 s.
    abort_on_exception : bool
        When the world has more than one process, install a ``sys.excepthook`` that prints
        the traceback of an uncaught exception and then calls ``MPI_Abort``, so that the
        other ranks do not wait for this one. ``destroy_process_group`` removes it. Without
        it the others still end: the exiting rank tells them it left (see the module's
        docstring).
    check_collectives : bool
        Before each collective, check (one 16-byte allreduce) that every rank passes the
        same shape and dtype, and raise a ``ShapeError`` on every rank if not.

    Raises
    ------
    DistributedError
        Already initialised; an unknown backend; a bad timeout; another rank did not
        reach ``init_process_group`` within the timeout; started by ``mpiexec`` for several
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
    seconds = _timeout_seconds(timeout)
    launched = launched_world_size()
    mpi = _start_mpi(seconds)
    if mpi is None:
        if launched is not None and launched > 1:
            raise DistributedError(
                f"init_process_group: started by mpiexec as one of {launched} processes, "
                "but mpi4py is not installed: `pip install needle[distributed]` "
                "(mpi4py and mpich)"
            )
        world = _World(_SelfComm(), None, seconds)
    else:
        world = _World(mpi.COMM_WORLD, mpi, seconds)
        if launched is not None and launched != world.size:
            raise DistributedError(
                f"init_process_group: mpiexec started {launched} processes but MPI reports "
                f"a world of {world.size}: the mpiexec belongs to another MPI library than "
                f"the one mpi4py loaded ({' '.join(mpi.Get_library_version().split()[:3])}); "
                "run the mpiexec installed next to this Python (e.g. .venv/bin/mpiexec)"
            )
    world.check = bool(check_collectives)
    if world.size > 1:
        ctl, request = world.comm.Idup()  # non-blocking, so under the timeout too
        world.poll_until([request], "init_process_group")
        _CONTROL_COMMS.append(ctl)
        world.open_control(ctl)
        if abort_on_exception:
            _install_abort_hook(world)
        _register_exit_handler()
    global _EVER_INITIALISED
    _EVER_INITIALISED = True
    _WORLD = world


_CONTROL_COMMS: list = []  # kept alive until the process ends
_EVER_INITIALISED = False
_EXIT_HANDLER_REGISTERED = False


def _register_exit_handler() -> None:
    # Registered after mpi4py's import: atexit runs it before mpi4py finalises MPI.
    global _EXIT_HANDLER_REGISTERED
    if not _EXIT_HANDLER_REGISTERED:
        atexit.register(_at_exit)
        _EXIT_HANDLER_REGISTERED = True


def _at_exit() -> None:
    """The process exits with the group initialised: tell the others, or abort the job.

    CPython does not tell atexit handlers the exit status, so a normal end and
    ``sys.exit(1)`` look the same here: the others learn how many collectives this rank
    made, and only those waiting for one more give up (see _World._check_left).
    """
    world = _WORLD
    if world is None or world.mpi is None or world.size == 1:
        return
    if world.broken is not None:
        _abort(world, f"exits after the process group failed ({world.broken})")
    world.leave(1)


def _abort(world: _World, what: str) -> None:
    print(f"needle.distributed: rank {world.rank} of {world.size} {what}; calling MPI_Abort "
          "to end every rank", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    _abort_now(world.comm)


# Seconds between the last words of an aborting rank and MPI_Abort (see _abort_now).
_ABORT_GRACE = 0.5


def _abort_now(comm: Any) -> None:
    """MPI_Abort, then end this process: MPICH's MPI_Abort only asks mpiexec to kill the
    job and returns, and the program must not go on meanwhile (into MPI_Finalize, which
    would wait for the others)."""
    # mpiexec forwards each rank's output asynchronously and drops what it has not yet
    # forwarded when the job is aborted: give it a moment, so that the lines saying why
    # (printed and flushed just before) reach the user.
    time.sleep(_ABORT_GRACE)
    try:
        comm.Abort(1)
    finally:
        os._exit(1)


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
            _abort_now(world.comm)

    world.previous_excepthook = previous
    world.excepthook = abort_on_uncaught
    sys.excepthook = abort_on_uncaught


def destroy_process_group() -> None:
    """Leave the process group (MPI itself is finalised when the process exits).

    Removes the abort-on-exception hook and tells the other ranks that this one makes no
    more collectives (one still waiting for it raises ``DistributedError``); afterwards
    :func:`is_initialized` is False and :func:`init_process_group` may be called again.
    After a ``DistributedError`` from a collective (a timeout, a rank that left) it aborts
    the job instead: the others may be waiting inside that collective.
    """
    global _WORLD
    world = _require("destroy_process_group")
    if world.excepthook is not None and sys.excepthook is world.excepthook:
        sys.excepthook = world.previous_excepthook
    if world.broken is not None:
        # The others may be inside the collective that failed here, waiting for this rank.
        _abort(world, f"destroys a process group that failed ({world.broken})")
    if world.mpi is not None and world.size > 1:
        world.leave(2)
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
    array = realize(tensor)
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
    world.call(where, world.comm.Allreduce, world.in_place, [probe, world.int64],
               op=world.mpi.MAX)
    if probe[0] == -probe[1]:
        return
    values = _allgather_object(value, world, where)
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
        tensor._set_data(work)


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
        world.call("all_reduce", world.comm.Allreduce, world.in_place, world.buf(buf),
                   op=world.ops[op])
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
    _in_place(tensor, array, lambda buf: _bcast(world, buf, int(src), "broadcast"))


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
        world.call("all_gather", world.comm.Allgather, world.buf(send), world.buf(gathered))
    if not targets:
        for r in range(world.size):
            tensor_list.append(raw_tensor(np.array(gathered[r]), tensor._device))
        return
    for r, (target_tensor, target) in enumerate(zip(tensor_list, targets)):
        if target.flags.writeable:
            target[...] = gathered[r]
        else:
            target_tensor._set_data(np.array(gathered[r]))


def barrier() -> None:
    """Wait until every rank has called ``barrier()`` (at most the group's timeout)."""
    world = _require("barrier")
    if world.size == 1:
        return
    world.call("barrier", world.comm.Barrier)


# ----------------------------------------------------------------------------------------------
# Helpers for nn.parallel (coalesced broadcasts and object exchange)


def _world() -> _World:
    return _require("DistributedDataParallel")


def _bcast(world: _World, buf: np.ndarray, src: int, where: str) -> None:
    world.call(where, world.comm.Bcast, world.buf(buf), root=src)


def _allgather_object(obj: Any, world: _World | None = None,
                      where: str = "DistributedDataParallel") -> list:
    """Every rank's (picklable) ``obj``, by rank."""
    world = world or _world()
    if world.size == 1:
        return [obj]
    return world.call(where, world.comm.allgather, obj)


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
        _bcast(world, flat, src, "DistributedDataParallel")
        offset = 0
        for t, a in zip(group, arrays):
            part = flat[offset:offset + a.size].reshape(a.shape)
            offset += a.size
            _in_place(t, a, lambda buf, part=part: np.copyto(buf, part))


# ----------------------------------------------------------------------------------------------
# Before init_process_group


def _launched_rank() -> str:
    for var in _LAUNCHER_RANK_VARS:
        if os.environ.get(var, "").strip().isdigit():
            return os.environ[var].strip()
    return "?"


def _install_pre_init_hook() -> None:
    """Under ``mpiexec`` with several processes: an uncaught exception before
    ``init_process_group`` stops this process with SIGTERM.

    A rank that exits with an error status before MPI_Init leaves the others waiting in
    MPI_Init forever: MPICH's mpiexec (hydra) ends the job only when a process dies of a
    signal, or exits after MPI_Init without MPI_Finalize. (Open MPI's ends it either way.)
    """
    launched = launched_world_size()
    if launched is None or launched < 2:
        return
    previous = sys.excepthook

    def stop_job_on_uncaught(exc_type: Any, exc: Any, tb: Any) -> None:
        if _EVER_INITIALISED:  # init_process_group's own hook has taken over, or is gone
            previous(exc_type, exc, tb)
            return
        try:
            previous(exc_type, exc, tb)
            print(f"needle.distributed: rank {_launched_rank()} of {launched} raised "
                  f"{exc_type.__name__} before init_process_group; stopping this process with "
                  "SIGTERM so that mpiexec ends every rank", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            mpi = sys.modules.get("mpi4py.MPI")
            if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
                _abort_now(mpi.COMM_WORLD)  # the program initialised MPI itself
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    sys.excepthook = stop_job_on_uncaught


_install_pre_init_hook()
