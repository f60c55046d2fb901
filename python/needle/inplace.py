"""In-place ops and their autograd bookkeeping: version counters, rebasing, backward checks.

An in-place op ``x.add_(y)`` runs the out-of-place op (``x + y``), copies the result into
``x``'s storage (views sharing that storage see it) and, when the op recorded a graph,
*rebases* ``x``: the user's object becomes the new node, whose input is a fresh Value
holding ``x``'s previous node (op, inputs, data). Nodes that used ``x`` before keep ``x``
in their ``inputs``; before ``backward`` the engine redirects them to the state ``x`` had
when they were created (every Value remembers the write clock at its creation, ``_epoch``;
a rebased tensor keeps its past states in ``_history``).

Views (PyTorch's semantics, for views made by basic indexing, reshape, transpose and
permute): a write through a view also rebases the tensor it views (``base`` becomes
``set_item(base, index, view)``), and a view whose memory was changed through its base or
another view gets its graph regenerated from the base before it is used.

Every write bumps the version of the storage it hits (one counter per buffer, shared by
all its views) and records the bytes it wrote. Before an op's gradient is built, the engine
looks for writes, made after the node was created, that hit an input or the output; if
there are any, the gradient is built with those values replaced by stand-ins that refuse to
be read. So the check is exact (only what a gradient really reads, and only the bytes
written, count) and a read raises :class:`GraphError` naming the op that saved the value
and the op that overwrote it. A value changed through an alias that is not a view
(``detach()``, ``Tensor(x)``, split parts) is refused when a graph uses it. Until the first
in-place op runs, the engine does none of this.

Graph mode: in-place ops are not supported on placeholders (``needle.graph.Variable``
and nodes built from them) and raise :class:`GraphError`; use the out-of-place ops.
"""

from __future__ import annotations

import array
import bisect
import weakref
from typing import Any

import numpy

from . import core, grad_mode
from .anomaly import user_site as _user_site
from .backend_selection import from_boundary
from .core import Value
from .errors import DeviceError, DTypeError, GraphError, ShapeError
from .ops import GetItem, Permute, Reshape, SetItem, SetItemScalar, Transpose, set_item
from .ops.ops_inplace import assign_into
from .ops.ops_mathematic import _normalize_index, _ViewOp
from .ops.tensor_methods import attach
from .tensor import Tensor

__all__ = ["add_", "sub_", "mul_", "div_", "fill_", "zero_", "copy_", "setitem", "version"]


# ----------------------------------------------------------------------------------------------
# Version counters: one write log per storage buffer


def _region(arr: numpy.ndarray) -> tuple:
    """(first byte, end byte, (address, shape, strides)) of the memory ``arr`` covers."""
    ptr = arr.__array_interface__["data"][0]
    lo = hi = ptr
    if arr.size == 0:
        return lo, hi, (ptr, arr.shape, arr.strides)
    for n, st in zip(arr.shape, arr.strides):
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + arr.itemsize, (ptr, arr.shape, arr.strides)


class _Write:
    __slots__ = ("epoch", "op", "site", "lo", "hi", "layout")

    def __init__(self, epoch: int, op: str, site: str, region: tuple) -> None:
        self.epoch = epoch
        self.op = op
        self.site = site
        self.lo, self.hi, self.layout = region

    def hits(self, lo: int, hi: int) -> bool:
        return self.lo < hi and lo < self.hi

    def __str__(self) -> str:
        return f"{self.op} (at {self.site})"


class _Log:
    """The writes to one buffer, in order: all of them since the last one that covered the
    whole buffer (earlier ones no longer matter), and every write that rebased a graph
    (those make other views' graphs stale, see ``checked_gradient``)."""

    __slots__ = ("ref", "version", "last", "writes", "epochs", "los", "his", "dropped",
                 "tracked", "tracked_epochs")

    def __init__(self, ref: weakref.ref) -> None:
        self.ref = ref
        self.version = 0
        self.last = 0
        self.writes: list = []
        # Parallel to ``writes``: their epochs and byte ranges, for bisect and numpy.
        self.epochs = array.array("q")
        self.los = array.array("q")
        self.his = array.array("q")
        self.dropped = 0  # epoch of the newest write left out of ``writes``
        self.tracked: list = []
        self.tracked_epochs: list = []

    def add(self, write: _Write, whole: bool, tracked: bool) -> None:
        self.version += 1
        self.last = write.epoch
        if whole and self.writes:
            self.dropped = self.epochs[-1]
            self.writes.clear()
            for kept in (self.epochs, self.los, self.his):
                del kept[:]
        self.writes.append(write)
        self.epochs.append(write.epoch)
        self.los.append(write.lo)
        self.his.append(write.hi)
        if tracked:
            self.tracked.append(write)
            self.tracked_epochs.append(write.epoch)

    def after(self, epoch: int) -> list:
        """The writes after ``epoch`` (those still kept), oldest first."""
        return self.writes[bisect.bisect_right(self.epochs, epoch):]

    def overwrote(self, epoch: int, lo: int, hi: int) -> bool:
        """Whether a write after ``epoch`` hit bytes [lo, hi) (exact: a write over the
        whole buffer, which ends the kept list, hits everything)."""
        i = bisect.bisect_right(self.epochs, epoch)
        if len(self.epochs) - i < 16:
            return any(w.hits(lo, hi) for w in self.writes[i:])
        los = numpy.frombuffer(self.los, dtype=numpy.int64)[i:]
        his = numpy.frombuffer(self.his, dtype=numpy.int64)[i:]
        hit = bool(numpy.any((los < hi) & (lo < his)))
        del los, his  # release the buffers, so the arrays can grow again
        return hit

    def version_at(self, epoch: int) -> str:
        saved = self.version - (len(self.epochs) - bisect.bisect_right(self.epochs, epoch))
        return str(saved) if epoch >= self.dropped else f"<= {saved}"

    def tracked_between(self, since: int, until: float) -> list:
        """The tracked writes with ``since < epoch <= until``."""
        epochs = self.tracked_epochs
        lo = bisect.bisect_right(epochs, since)
        hi = len(epochs) if until == float("inf") else bisect.bisect_right(epochs, until)
        return self.tracked[lo:hi]


# id(buffer) -> its log; entries leave with their buffer.
_LOGS: dict[int, _Log] = {}
# Tensors that were rebased while alive: the engine redirects their earlier users.
_REBASED: weakref.WeakSet = weakref.WeakSet()


class _WeakRef:
    """A weak reference that pickles (as a dead one): kept in ``Value._view`` once an
    in-place op links a view and its base, which then may reference each other."""

    __slots__ = ("ref",)

    def __init__(self, obj: Any = None) -> None:
        self.ref = None if obj is None else weakref.ref(obj)

    def __call__(self) -> Any:
        return None if self.ref is None else self.ref()

    def __reduce__(self) -> tuple:
        return (_WeakRef, ())


def _buffer(data: Any) -> numpy.ndarray:
    """The numpy array that owns the memory behind ``data`` (shared by all its views)."""
    return _owner(from_boundary(data)[0])


def _owner(arr: numpy.ndarray) -> numpy.ndarray:
    owner = arr
    obj = arr
    while (obj := getattr(obj, "base", None)) is not None:
        if isinstance(obj, numpy.ndarray):
            owner = obj
    return owner


def _log_of(data: Any) -> _Log | None:
    if not _LOGS or data is None:
        return None
    owner = _buffer(data)
    log = _LOGS.get(id(owner))
    return log if log is not None and log.ref() is owner else None


def _drop(key: int, logs: dict = _LOGS) -> None:
    logs.pop(key, None)


class _Clock:
    """Epochs of the latest write and of the latest write that rebased a graph."""

    write = 0
    tracked = 0


def _record_write(written: numpy.ndarray, op: str, tracked: bool) -> int:
    """Bump the version of the buffer behind ``written`` (the numpy view of the elements
    written); return the write's epoch."""
    if core.TRACER is not None:  # [jit hook] a write into memory a replay would not repeat
        core.TRACER.inplace(op)
    if not core.INPLACE_WRITES:
        # From now on every new Value remembers the write clock (core.stamp).
        core.OBSERVERS.append(core.stamp)
    core.INPLACE_WRITES += 1
    epoch = _Clock.write = core.INPLACE_WRITES
    if tracked:
        _Clock.tracked = epoch
    owner = _owner(written)
    key = id(owner)
    log = _LOGS.get(key)
    if log is None or log.ref() is not owner:
        log = _LOGS[key] = _Log(weakref.ref(owner, lambda _, k=key: _drop(k)))
    region = _region(written)
    log.add(_Write(epoch, op, _user_site(), region), region[:2] == _region(owner)[:2], tracked)
    return epoch


def version(t: Tensor) -> int:
    """How many in-place writes hit ``t``'s storage (shared by every view of it)."""
    log = _log_of(t._data)
    return 0 if log is None else log.version


# ----------------------------------------------------------------------------------------------
# Rebasing


def _check_target(x: Tensor, op: str) -> None:
    if _REBASED:
        _regenerate(x)  # a view whose base changed: bring its graph up to date first
    if x._data is None:
        raise GraphError(
            f"{op}: in-place ops are not supported on placeholders (graph-mode Variables "
            "and nodes built from them have no storage to write); use the out-of-place op"
        )
    if core.LAZY_MODE:
        raise GraphError(f"{op}: in-place ops are not supported in LAZY_MODE")
    if x.op is None and x.requires_grad and grad_mode.is_grad_enabled():
        raise GraphError(
            f"{op}: a leaf tensor that requires grad (shape {x.shape}) cannot be modified "
            "in place: its gradient would describe a value that no longer exists. Update "
            "parameters inside `with needle.no_grad():` (or through .data), or work on a "
            "copy (x = x + y instead of x += y)"
        )


def _original(t: Value) -> Value:
    """The node that created ``t`` (before any rebase)."""
    history = t.__dict__.get("_history")
    return history[0][1] if history else t


def _shares(data: Any, owner: numpy.ndarray) -> bool:
    if data is None:
        return False
    parts = data if isinstance(data, tuple) else (data,)
    return any(_buffer(p) is owner for p in parts)


def _check_not_view_of_leaf(x: Tensor, op: str) -> None:
    """Refuse (like PyTorch) a recorded in-place op on a view of a leaf that requires grad.

    Follows what each tensor sharing the storage was created from (not the chain of its
    earlier in-place states), so the cost does not grow with the number of writes.
    """
    owner = _buffer(x._data)
    seen: set = set()
    stack: list = [x]
    while stack:
        t = stack.pop()
        if id(t) in seen or not _shares(t._data, owner):
            continue
        seen.add(id(t))
        if t is not x and t.op is None and t.requires_grad:
            raise GraphError(
                f"{op}: this tensor shares its storage with a leaf tensor that requires grad "
                f"(shape {t.shape}); modifying it in place would change the leaf behind "
                "autograd's back. Do it inside `with needle.no_grad():`, or on a copy"
            )
        stack.extend(_original(t).inputs)
        view = _view_relation(t)
        if view is not None and view[0]() is not None:
            stack.append(view[0]())


# Per-node facts kept in a Value's __dict__, which move with the node when a tensor is rebased.
_NODE_KEYS = ("_out_epoch", "_creation_site", "_absorbed")


def _split_off(x: Tensor, data: Any) -> Tensor:
    """Move ``x``'s node (op, inputs, per-node facts) into a fresh Value holding ``data``."""
    old = Tensor.__new__(Tensor)
    old._init(x.op, x.inputs, cached_data=data, requires_grad=x.requires_grad,
              device=x._device)
    extra = x.__dict__
    for key in _NODE_KEYS:
        if key in extra:
            old.__dict__[key] = extra.pop(key)
    old._epoch = getattr(x, "_epoch", 0)
    view = _view_relation(x)
    if view is not None:
        old._view = view  # a past state of a view is the same view of the same base
    return old


def _view_relation(x: Value) -> tuple | None:
    """``(weak reference to base, op)`` if ``x`` was created as a view of ``base``."""
    known = getattr(x, "_view", None)
    if known is None:
        first = _original(x)
        if not isinstance(first.op, _ViewOp):
            return None
        known = (first.inputs[0], first.op)
    if not isinstance(known[0], _WeakRef):
        # From here on x and its base may reference each other (base-rebase): hold weakly.
        known = x._view = (_WeakRef(known[0]), known[1])
    return known


def _attach(x: Tensor, node: Tensor, old: Tensor, epoch: int) -> None:
    """Make ``x`` the node ``node`` (computed from ``x``, now ``old``); its value is current
    as of the write ``epoch``."""
    extra = x.__dict__
    x.op = node.op
    x.inputs = tuple(old if i is x else i for i in node.inputs)
    x.requires_grad = True
    x._epoch = getattr(node, "_epoch", 0)
    extra["_out_epoch"] = epoch
    for key in _NODE_KEYS[1:]:
        if key in node.__dict__:
            extra[key] = node.__dict__[key]
    extra.setdefault("_history", []).append((epoch, old))
    # old is a past state now: only users created before ``epoch`` see it.
    old.__dict__["_until"] = epoch
    _REBASED.add(x)


def _commit(x: Tensor, result: Tensor, op: str, keep_old: bool = False,
            index: Any = Ellipsis) -> Tensor:
    """Write ``result`` (computed out of place from ``x``) into ``x``'s storage and, if
    ``result`` recorded a graph, make ``x`` that node (and rebase what ``x`` is a view of).

    ``keep_old``: the op's gradient reads ``x``'s previous value, so the previous node
    keeps a copy of it (as PyTorch saves the original ``self`` of ``mul_``). ``index``:
    only ``result[index]`` differs from ``x``, so only that part is written.
    """
    data, new = x._data, result._data
    if new is None:
        raise GraphError(f"{op}: in-place ops are not supported on placeholders (the other "
                         "operand has no data); use the out-of-place op")
    dst, src = data, new
    if dst.shape != src.shape:
        raise ShapeError(
            f"{op}: the result has shape {tuple(src.shape)} but the tensor has shape "
            f"{tuple(dst.shape)}; an in-place op cannot change a tensor's shape (the other "
            "operand must broadcast to it)"
        )
    if not numpy.can_cast(src.dtype, dst.dtype, "same_kind"):
        raise DTypeError(f"{op}: the result has dtype {src.dtype}, which cannot be stored in "
                         f"place in a tensor of dtype {dst.dtype}")
    if not dst.flags.writeable:
        raise GraphError(f"{op}: this tensor's storage is read-only; work on a copy")
    records = result.op is not None
    if records:
        _check_not_view_of_leaf(x, op)
        own = x.__dict__.get("_out_epoch", _epoch(x))
        if keep_old and _shared_write(x, own, float("inf")):
            # x's memory was changed through another alias, so its graph does not describe
            # its value: keep the memory itself, so that backward reports it.
            keep_old = False
        old = _split_off(x, x._device.xp.array(dst) if keep_old else data)
    epoch = _record_write(_write_part(dst, src, index), op, records)
    if records:
        _attach(x, result, old, epoch)
        _rebase_bases(x, old, epoch)
    return x


def _basic(index: Any) -> bool:
    """Whether ``a[index]`` is a view (no integer or boolean arrays in ``index``)."""
    parts = index if isinstance(index, tuple) else (index,)
    return not any(isinstance(p, numpy.ndarray) for p in parts)


def _view_at(arr: numpy.ndarray, index: Any) -> numpy.ndarray:
    """``arr[index]`` for a basic index, as a view even when it selects one element."""
    parts = index if isinstance(index, tuple) else (index,)
    return arr[parts] if any(p is Ellipsis for p in parts) else arr[(*parts, Ellipsis)]


def _write_part(dst: numpy.ndarray, src: Any, index: Any) -> numpy.ndarray:
    """``dst[index] = src[index]`` (all of it for ``...``); returns the view written."""
    if index is Ellipsis:
        numpy.copyto(dst, src, casting="same_kind")
        return dst
    if _basic(index):
        target = _view_at(dst, index)
        numpy.copyto(target, _view_at(src, index), casting="same_kind")
        return target
    dst[index] = src[index]
    return dst


def _view_of(x: Tensor) -> tuple | None:
    """``(base, op)`` when ``x`` was created as a view of ``base`` by ``op`` (GetItem with
    basic indices, Reshape, Transpose, Permute) and its memory is exactly that view."""
    known = _view_relation(x)
    if known is None:
        return None
    ref, op = known
    base = ref()
    if base is None or base._data is None or isinstance(base._data, tuple):
        return None
    if _buffer(x._data) is not _buffer(base._data):
        return None
    view, whole = x._data, base._data
    if isinstance(op, GetItem):
        if not _basic(op.index) or _region(_view_at(whole, op.index))[2] != _region(view)[2]:
            return None
    elif _region(whole)[:2] != _region(view)[:2] or whole.size != view.size:
        return None
    return base, op


def _rebase_bases(x: Tensor, old: Tensor, epoch: int) -> None:
    """After a recorded write through a view, rebase the tensors it views (as PyTorch does):
    ``base`` becomes ``set_item(base, index, x)`` (or ``x`` reshaped/transposed back).

    The memory already holds the new values, so nothing is written again. A view whose
    own value went stale (another alias wrote into it) is left alone: then using its base
    later raises in backward instead of computing a wrong gradient.
    """
    seen = {id(x)}
    while True:
        found = _view_of(x)
        if found is None or id(found[0]) in seen:
            return
        base, op = found
        seen.add(id(base))
        # x's memory (old may hold a copy of it) must not have been changed through
        # another alias since x's last state: then x's graph would not describe it
        # (unless old is a view whose graph can be regenerated from its own base).
        _regenerate(old)
        own = old.__dict__.get("_out_epoch", _epoch(old))
        if _shared_write(old, own, epoch - 1, data=x._data):
            return
        with grad_mode.enable_grad():
            if isinstance(op, GetItem):
                node = SetItem(op.index)(base, x)
                # set_item's forward overwrote exactly the region this write hit, and its
                # gradient for base is zero there: the write does not make base stale.
                node.__dict__["_absorbed"] = {epoch}
            elif isinstance(op, Reshape):
                node = Reshape(base.shape)(x)
            elif isinstance(op, Transpose):
                node = Transpose(op.axes)(x)
            else:
                n = len(op.axes)
                node = Permute(tuple(int(i) for i in numpy.argsort([a % n for a in op.axes])))(x)
        base_old = _split_off(base, base._data)
        _attach(base, node, base_old, epoch)
        x, old = base, base_old


# ----------------------------------------------------------------------------------------------
# The ops (Tensor's methods call these)


def _operand(x: Tensor, other: Any) -> Any:
    return x._as_operand(other)


def _reads_x(other: Any) -> bool:
    """Whether the gradient of ``x * other`` / ``x / other`` needs ``x``'s old value."""
    return isinstance(other, Tensor) and other.requires_grad and grad_mode.is_grad_enabled()


def add_(x: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """``x += alpha * other`` in place; see :meth:`Tensor.add_`."""
    _check_target(x, "add_")
    other = _operand(x, other)
    if alpha != 1:
        other = other * alpha
    return _commit(x, x + other, "add_")


def sub_(x: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """``x -= alpha * other`` in place; see :meth:`Tensor.sub_`."""
    _check_target(x, "sub_")
    other = _operand(x, other)
    if alpha != 1:
        other = other * alpha
    return _commit(x, x - other, "sub_")


def mul_(x: Tensor, other: Any) -> Tensor:
    """``x *= other`` in place; see :meth:`Tensor.mul_`."""
    _check_target(x, "mul_")
    other = _operand(x, other)
    return _commit(x, x * other, "mul_", keep_old=_reads_x(other))


def div_(x: Tensor, other: Any) -> Tensor:
    """``x /= other`` in place; see :meth:`Tensor.div_`."""
    _check_target(x, "div_")
    other = _operand(x, other)
    return _commit(x, x / other, "div_", keep_old=_reads_x(other))


def setitem(x: Tensor, index: Any, value: Any) -> None:
    """``x[index] = value`` in place; see :meth:`Tensor.__setitem__`."""
    _check_target(x, "setitem")
    value = _operand(x, value)
    index = _normalize_index(index)
    is_tensor = isinstance(value, Tensor)
    if grad_mode.is_grad_enabled() and (x.requires_grad or (is_tensor and value.requires_grad)):
        _commit(x, set_item(x, index, value), "setitem", index=index)
        return
    # Nothing to record: assign directly, without the out-of-place copy.
    if is_tensor and value._data is None:
        raise GraphError("setitem: in-place ops are not supported on placeholders (the value "
                         "has no data); use the out-of-place set_item")
    dst = x._data
    if not dst.flags.writeable:
        raise GraphError("setitem: this tensor's storage is read-only; work on a copy")
    if is_tensor and value._device != x._device:
        raise DeviceError(f"setitem: the value is on {value.device} but the tensor is on "
                          f"{x.device}; move it with Tensor(v, device=...) first")
    assign_into(dst, index, value._data if is_tensor else value)
    _record_write(_view_at(dst, index) if _basic(index) else dst, "setitem", False)


def fill_(x: Tensor, value: Any) -> Tensor:
    """Set every element of ``x`` to ``value`` in place; see :meth:`Tensor.fill_`."""
    _check_target(x, "fill_")
    if isinstance(value, Tensor):
        if value.ndim:
            raise ShapeError(f"fill_: the value must be a scalar or a 0-d tensor, got shape "
                             f"{value.shape}")
        return _commit(x, SetItem(Ellipsis)(x, value), "fill_")
    return _commit(x, SetItemScalar(Ellipsis, value)(x), "fill_")


def zero_(x: Tensor) -> Tensor:
    """Set every element of ``x`` to 0 in place; see :meth:`Tensor.zero_`."""
    _check_target(x, "zero_")
    return _commit(x, SetItemScalar(Ellipsis, 0)(x), "zero_")


def copy_(x: Tensor, src: Any) -> Tensor:
    """Copy ``src`` (broadcast, cast) into ``x``; see :meth:`Tensor.copy_`."""
    _check_target(x, "copy_")
    src = _operand(x, src)
    if not isinstance(src, Tensor):
        return fill_(x, src)
    return _commit(x, SetItem(Ellipsis)(x, src), "copy_")


# ----------------------------------------------------------------------------------------------
# What backward does when in-place ops have run


def _epoch(node: Value) -> int:
    return getattr(node, "_epoch", 0)


def _first(entry: tuple) -> int:
    return entry[0]


def _resolve_inputs(node: Value) -> None:
    """Point ``node`` at the state its rebased inputs had when it was created."""
    inputs = node.inputs
    fixed = None
    created = _epoch(node)
    for i, inp in enumerate(inputs):
        history = getattr(inp, "_history", None)
        if history and created < history[-1][0]:
            if fixed is None:
                fixed = list(inputs)
            fixed[i] = _state_at(inp, created)
    if fixed is not None:
        node.inputs = tuple(fixed)


def resolve_graph(roots: Any) -> None:
    """Redirect every node behind ``roots`` that used a tensor before it was rebased, after
    regenerating the graphs of views whose base was modified (see :func:`_regenerate`)."""
    if not _REBASED:
        return
    seen: set = set()
    stack = list(roots)
    for root in stack:
        _regenerate(root)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.op is not None:
            for inp in node.inputs:
                _regenerate(inp)
            _resolve_inputs(node)
            stack.extend(node.inputs)


def _state_at(t: Value, epoch: int) -> Value:
    """The node ``t`` was for a user created at ``epoch``. A past state can have a history
    of its own (a stale view regenerated, see :func:`_regenerate`), hence the loop."""
    while True:
        history = t.__dict__.get("_history")
        if not history or epoch >= history[-1][0]:
            return t
        t = history[bisect.bisect_right(history, epoch, key=_first)][1]


def _regenerate(v: Value) -> None:
    """Rebuild the graph of a view whose memory a recorded write through another alias
    changed (e.g. ``v = h[0]``, then ``h += w``): for each such write, ``v`` becomes its view
    op applied to the base's node as of that write, as PyTorch regenerates a view's
    grad_fn. Users created before a write keep the state they saw (the rebase history).
    A value that is not a known view is left alone; backward then reports it."""
    if v.__dict__.get("_out_epoch", _epoch(v)) >= _Clock.tracked:
        return
    data = v._data
    if data is None or isinstance(data, tuple):
        return
    log = _log_of(data)
    if log is None:
        return
    own = v.__dict__.get("_out_epoch", _epoch(v))
    until = v.__dict__.get("_until", float("inf"))  # a past state: later writes are not its
    lo, hi, _ = _region(data)
    writes = [w for w in log.tracked_between(own, until - 1) if w.hits(lo, hi)]
    if not writes or not isinstance(v, Tensor):
        return
    found = _view_of(v)
    if found is None:
        return
    base, op = found
    _regenerate(base)  # the base may be a stale view itself (views are acyclic)
    for write in writes:
        source = _state_at(base, write.epoch)
        node = Tensor.__new__(Tensor)
        node._init(op, (source,), cached_data=data, requires_grad=source.requires_grad,
                   device=v._device)
        node._epoch = write.epoch
        _attach(v, node, _split_off(v, data), write.epoch)


def _site(node: Value) -> str:
    site = node.__dict__.get("_creation_site")
    return f" (created at {site})" if site else ""


def _hint(node: Value) -> str:
    if "_creation_site" in node.__dict__:
        return ""
    return (f" (run under needle.autograd.detect_anomaly() to see where the {node.op.name} "
            "was created)")


def _shared_write(value: Value, since: int, until: float, absorbed: Any = (),
                  data: Any = None) -> _Write | None:
    """A write in (since, until] that rebased another tensor and hit ``value``'s memory
    (or the memory of ``data``, when given)."""
    if data is None:
        data = value._data
    for part in data if isinstance(data, tuple) else (data,):
        log = _log_of(part)
        if log is None or not log.tracked or log.tracked[-1].epoch <= since:
            continue
        lo, hi, _ = _region(part)
        for w in log.tracked_between(since, until):
            if w.hits(lo, hi) and w.epoch not in absorbed:
                return w
    return None


def _stale_error(what: str, write: _Write, hint: str = "") -> GraphError:
    return GraphError(
        f"backward: {what} shares its storage with a tensor that {write} modified in place "
        "after it was computed; its graph does not include that change, so its gradient "
        "would be wrong (needle follows in-place changes through views made by indexing, "
        "reshape, transpose and permute, not through other aliases: detach(), .data, "
        f"Tensor(x), split parts). Modify a copy, or compute it after the in-place op{hint}"
    )


def prepare(output: Value) -> bool:
    """Before a reverse pass: redirect users of rebased tensors, refuse a stale output.

    Returns whether the per-node checks of :func:`checked_gradient` are needed.
    """
    resolve_graph([output])
    if output.op is not None:
        own = output.__dict__.get("_out_epoch", _epoch(output))
        write = _shared_write(output, own, float("inf"))
        if write is not None:
            raise _stale_error(f"the tensor of shape {output.shape} (output of "
                               f"{output.op.name})", write)
    return bool(_LOGS)


class _StaleRead(Exception):
    def __init__(self, stand_in: _StandIn) -> None:
        super().__init__()
        self.stand_in = stand_in


def _refuse(self: _StandIn, *args: Any, **kwargs: Any) -> Any:
    raise _StaleRead(self)


class _StandIn:
    """Takes the place of an overwritten array while a gradient is built: its shape,
    dtype and device can be read, its values cannot (any other use raises _StaleRead)."""

    __slots__ = ("shape", "dtype", "ndim", "size", "device", "_device", "label", "log",
                 "saved_epoch", "lo", "hi")

    def __init__(self, arr: Any, label: str, log: _Log, saved_epoch: int, lo: int,
                 hi: int) -> None:
        self.shape = arr.shape
        self.dtype = arr.dtype
        self.ndim = len(arr.shape)
        self.size = arr.size
        self.device = getattr(arr, "device", None)
        self._device = getattr(arr, "_device", None)
        self.label = label
        self.log = log
        self.saved_epoch = saved_epoch
        self.lo, self.hi = lo, hi

    def __getattr__(self, name: str) -> Any:
        raise _StaleRead(self)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise _StaleRead(self)


for _name in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "pow",
              "rpow", "matmul", "rmatmul", "neg", "abs", "getitem", "setitem", "len", "iter",
              "float", "int", "bool", "eq", "ne", "lt", "le", "gt", "ge"):
    setattr(_StandIn, f"__{_name}__", _refuse)


def checked_gradient(node: Value, grad: Value, run: Any) -> tuple:
    """``run(node, grad)`` (the gradient as a tuple), refusing reads of overwritten values
    and inputs whose graph misses an in-place change made through another view."""
    created = getattr(node, "_epoch", 0)
    inputs = node.inputs
    # Fast path: nothing was written after this node was created, and no recorded write
    # happened after any of its inputs was created.
    if created >= _Clock.write:
        tracked = _Clock.tracked
        for v in inputs:
            if getattr(v, "_epoch", 0) < tracked:
                break
        else:
            return run(node, grad)
    swaps: dict = {}
    for i, value in enumerate((node, *inputs)):
        data = value._data
        if data is None or id(value) in swaps:
            continue
        parts = data if isinstance(data, tuple) else (data,)
        logs = [_log_of(part) for part in parts]
        if not any(logs):
            continue
        if i == 0:
            label = f"the output of {node.op.name}"
            since = node.__dict__.get("_out_epoch", created)
        else:
            label, since = f"input {i - 1} of {node.op.name}", created
            if value.requires_grad or value.op is None:
                own = value.__dict__.get("_out_epoch", _epoch(value))
                absorbed = node.__dict__.get("_absorbed", ()) if i == 1 else ()
                write = _shared_write(value, own, created, absorbed)
                if write is not None:
                    raise _stale_error(f"{label}{_site(node)}", write, _hint(node))
        stand_ins = []
        for part, log in zip(parts, logs):
            if log is not None and log.last > since:
                lo, hi, _ = _region(part)
                if log.overwrote(since, lo, hi):
                    part = _StandIn(part, label, log, since, lo, hi)
            stand_ins.append(part)
        if any(s is not p for s, p in zip(stand_ins, parts)):
            swaps[id(value)] = (value, data,
                                tuple(stand_ins) if isinstance(data, tuple) else stand_ins[0])
    if not swaps:
        return run(node, grad)
    if core.LAZY_MODE:
        stand_in = next(iter(swaps.values()))[2]
        _raise_stale(node, stand_in if isinstance(stand_in, _StandIn) else next(
            s for s in stand_in if isinstance(s, _StandIn)))
    for value, _, stand_in in swaps.values():
        value._data = stand_in
    try:
        return run(node, grad)
    except _StaleRead as e:
        _raise_stale(node, e.stand_in)
    finally:
        for value, data, _ in swaps.values():
            value._data = data


def _raise_stale(node: Value, stand_in: _StandIn) -> None:
    log = stand_in.log
    hits = [w for w in log.after(stand_in.saved_epoch) if w.hits(stand_in.lo, stand_in.hi)]
    write = hits[0]
    more = f" and {len(hits) - 1} more in-place write(s)" if len(hits) > 1 else ""
    raise GraphError(
        f"backward: {stand_in.label}{_site(node)} was modified in place by "
        f"{write}{more} after it was saved for the gradient (version "
        f"{log.version_at(stand_in.saved_epoch)} \u2192 {log.version}). Clone it before the "
        "in-place op (x = x + y instead of x += y), or do the in-place op before using it"
        f"{_hint(node)}"
    ) from None


# ----------------------------------------------------------------------------------------------
# Tensor's in-place methods, and the engine's hooks (needle.core imports nothing of this)


class TensorInPlaceMethods:
    """The in-place methods :func:`needle.ops.tensor_methods.attach` puts on Tensor."""

    def __setitem__(self, index: Any, value: Any) -> None:
        """``x[index] = value`` in place, differentiable w.r.t. ``x`` and ``value``.

        ``index`` is anything ``x[index]`` accepts (ints, slices, None, ``...``, integer or
        boolean numpy arrays); ``value`` (a Tensor, array or scalar) is broadcast to the
        selection and cast to ``x``'s dtype. Views sharing the storage see the change.

        Raises
        ------
        GraphError
            On a leaf that requires grad outside ``no_grad()``, or on a graph-mode
            placeholder (in-place ops are not supported on placeholders).
        """
        setitem(self, index, value)

    def add_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        """``self += alpha * other`` in place (``other`` broadcasts to ``self``); returns self.

        Like every in-place op: the result is cast to ``self``'s dtype and written into its
        storage, so views see it; if a tensor saved for a gradient is overwritten this way,
        ``backward()`` raises :class:`GraphError`. A leaf that requires grad may only be
        modified inside ``no_grad()``; placeholders (graph mode) raise GraphError.
        """
        return add_(self, other, alpha)

    def sub_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        """``self -= alpha * other`` in place; returns self (see :meth:`add_`)."""
        return sub_(self, other, alpha)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; returns self (see :meth:`add_`)."""
        return mul_(self, other)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place; returns self (see :meth:`add_`)."""
        return div_(self, other)

    def fill_(self, value: Any) -> Tensor:
        """Set every element to ``value`` (a scalar or 0-d tensor) in place; returns self."""
        return fill_(self, value)

    def zero_(self) -> Tensor:
        """Set every element to 0 in place; returns self."""
        return zero_(self)

    def copy_(self, src: Any) -> Tensor:
        """Copy ``src`` (broadcast to ``self``'s shape, cast to its dtype) in place."""
        return copy_(self, src)

    def __iadd__(self, other: Any) -> Tensor:
        return add_(self, other)

    def __isub__(self, other: Any) -> Tensor:
        return sub_(self, other)

    def __imul__(self, other: Any) -> Tensor:
        return mul_(self, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return div_(self, other)

    @property
    def _version(self) -> int:
        """Number of in-place writes to this tensor's storage (shared by its views)."""
        return version(self)


attach((TensorInPlaceMethods, Tensor))
core.ENGINE_OPS.inplace_resolve = resolve_graph
core.ENGINE_OPS.inplace_prepare = prepare
core.ENGINE_OPS.inplace_gradient = checked_gradient
