"""The recorder: what the engine reports while ``ndl.jit`` traces a call.

A traced call runs eagerly, exactly as without jit. The engine's hooks (the
``core.TRACER`` tests, and an observer of op results in ``core.OBSERVERS``) tell the
recorder about every op, every new leaf, every ``.data`` write, random draws and
host-computed scalars. The recorder gives each array
a *slot* and writes down the op that made it, so that the whole call becomes a flat list
of ``(op, input slots, output slot)``. Arrays it has not seen before come from outside
the function: they are *state*, read again at every replay from the tensor that held them.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import weakref
import zlib
from typing import Any

import numpy as np

from .. import core
from ..errors import JitError

# Slot kinds.
INPUT, STATE, CONST, RANDOM, HOST, OP = range(6)
KIND_NAMES = ("input", "state", "const", "random", "host", "op")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def raw_of(data: Any) -> Any:
    """A value's raw data (``Value._data``: an array of its device's namespace, or a tuple
    of them), with numpy scalars made 0-d arrays."""
    if data.__class__ is tuple:
        return data if all(d.__class__ is np.ndarray for d in data) else tuple(
            raw_of(d) for d in data)
    return data if data.__class__ is np.ndarray else np.asarray(data)


class TupleMeta(tuple):
    """The metas of the arrays of a tuple value."""


def meta_of(raw: Any) -> Any:
    """(shape, dtype, strides, order) of a raw array; a TupleMeta for a tuple."""
    if raw.__class__ is tuple:
        return TupleMeta(meta_of(r) for r in raw)
    flags = raw.flags
    order = "C" if flags.c_contiguous else ("F" if flags.f_contiguous else None)
    return (raw.shape, raw.dtype, raw.strides, order)


def fingerprint(raw: Any) -> Any:
    """A checksum of the values (bit for bit), shape and dtype of a raw array or tuple."""
    if raw.__class__ is tuple:
        return tuple(fingerprint(r) for r in raw)
    if raw.nbytes <= 256:  # small: the bytes themselves (cheaper than a checksum)
        return (raw.shape, raw.dtype.str, raw.tobytes())
    a = raw if raw.flags.c_contiguous else np.ascontiguousarray(raw)
    return (a.shape, a.dtype.str, zlib.crc32(a.reshape(-1).view(np.uint8)) if a.size else 0)


def user_site() -> tuple[str, str]:
    """(``file:line in function``, the source line) of the innermost frame outside needle."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>", ""
    name = frame.f_code.co_filename
    line = linecache.getline(name, frame.f_lineno).strip()
    return f"{name}:{frame.f_lineno} in {frame.f_code.co_name}", line


class Slot:
    """One array of the trace: where it comes from and what it looked like."""

    __slots__ = ("index", "kind", "meta", "fp", "const", "value", "source", "device")

    def __init__(self, index: int, kind: int, raw: Any, device: Any, const: bool) -> None:
        self.index = index
        self.kind = kind
        self.meta = meta_of(raw)
        self.fp = fingerprint(raw)
        self.const = const
        # The trace-time value: kept for leaves (inputs, state, constants, draws), which
        # the compiler needs to fold constants and to check its program; not for op results.
        self.value = raw if kind != OP else None
        self.source: Any = None
        self.device = device


def _holds(tensor: Any, raw: Any) -> bool:
    data = tensor._data
    return data is not None and data.__class__ is not tuple and data is raw


class Recorder:
    """Everything one traced call did, as slots and entries.

    Parameters
    ----------
    name : str
        The traced function's name (for error messages).
    walk_map : dict
        ``id(raw array) -> tensor`` for the tensors the state walk found (parameters,
        buffers, optimizer state, gradients), so that an alias of their data (``p.data``)
        is recognised as state.
    shape_only : dict
        ``op class -> input positions`` that an op reads only for their shape and dtype.
    """

    def __init__(self, name: str, walk_map: dict, shape_only: dict) -> None:
        self.name = name
        self.walk_map = walk_map
        self.shape_only = shape_only
        self.slots: list[Slot] = []
        self.entries: list[tuple] = []  # (op, input slots, output slot)
        self._ids: dict = {}  # id(raw) -> (weakref or the raw itself, slot index)
        self.written: dict = {}  # id(tensor) -> tensor whose .data was assigned (external)
        self.producers: list[int] = []  # RANDOM and HOST slots, in the order they were made
        self.managed: set = set()  # (id(owner), attribute) advanced by host scalars
        self.holders: dict = {}  # id(holder tensor) -> (holder, slot, its grad at first sight)
        self.made: weakref.WeakSet = weakref.WeakSet()  # Values made inside the call

    # -- slots ---------------------------------------------------------------------------------

    def _new(self, kind: int, value: Any, const: bool) -> Slot:
        data = value._data
        raw = raw_of(data)
        slot = Slot(len(self.slots), kind, raw, value._device, const)
        self.slots.append(slot)
        if raw.__class__ is tuple:  # a tuple value is known by the tuple object it is
            self._ids[id(data)] = (data, slot.index)
        else:
            self._ids[id(raw)] = (weakref.ref(raw), slot.index)
        return slot

    def lookup(self, data: Any) -> int | None:
        """The slot of a raw array (or tuple of them) seen before, or None."""
        if data is None:
            return None
        hit = self._ids.get(id(data))
        if hit is None:
            return None
        key, index = hit
        held = key if key.__class__ is tuple else key()
        return index if held is data else None

    def add_input(self, tensor: Any, position: int) -> int:
        index = self.lookup(tensor._data)
        if index is not None:  # the same storage passed twice
            return index
        slot = self._new(INPUT, tensor, False)
        slot.source = position
        return slot.index

    def slot_for(self, value: Any) -> int:
        """The slot of ``value``'s data; data never seen before is state held by ``value``
        (or by the walked tensor whose data it is)."""
        data = value._data
        index = self.lookup(data)
        if index is not None:
            return index
        if value in self.made:
            # Made inside the call, so its data must be known: never guess it is state.
            raise JitError(f"ndl.jit({self.name}): internal error: lost track of the data of "
                           f"a {type(value).__name__} made by the traced call")
        holder = self.walk_map.get(id(data) if data.__class__ is not tuple else None)
        if holder is None or not _holds(holder, data):
            holder = value
        slot = self._new(STATE, value, False)
        slot.source = holder
        if id(holder) not in self.holders:
            self.holders[id(holder)] = (holder, slot.index, getattr(holder, "grad", None))
        return slot.index

    # -- hooks (called by the engine through the dispatcher) -----------------------------------

    def op(self, op: Any, inputs: tuple, value: Any) -> None:
        slot_for = self.slot_for
        ins = tuple([slot_for(x) for x in inputs])
        skip = self.shape_only.get(type(op))
        slots = self.slots
        if skip:
            const = all(slots[s].const for i, s in enumerate(ins) if i not in skip)
        else:
            const = all([slots[s].const for s in ins])
        slot = self._new(OP, value, const)
        slot.source = len(self.entries)
        self.entries.append((op, ins, slot.index))
        self.made.add(value)

    def leaf(self, value: Any) -> None:
        data = value._data
        if value.op is not None or data is None:
            return  # a lazy node or a placeholder
        self.made.add(value)
        if self.lookup(data) is not None:
            return  # an alias of data already seen
        holder = self.walk_map.get(id(data) if data.__class__ is not tuple else None)
        if holder is not None and _holds(holder, data):
            self.slot_for(holder)  # an alias of state, e.g. Tensor.make_const(p.cached_data)
            return
        self._new(CONST, value, True)  # new host data: Tensor(numpy array), ones(...)

    def use(self, value: Any) -> None:
        self.slot_for(value)

    def wrote(self, tensor: Any) -> None:
        """``tensor.data = ...`` is about to run: remember the tensor if it existed before."""
        if id(tensor) in self.written:
            return
        index = self.lookup(tensor._data)
        if index is None or self.slots[index].kind in (INPUT, STATE):
            if index is None:
                self.slot_for(tensor)
            self.written[id(tensor)] = tensor

    def read(self, tensor: Any, what: str) -> None:
        index = self.lookup(tensor._data)
        if index is not None and self.slots[index].const:
            return  # reading a constant made from host data inside the function is harmless
        site, line = user_site()
        code = f" `{line}`" if line else ""
        raise JitError(
            f"ndl.jit({self.name}): at {site}:{code} a tensor (shape {tensor.shape}) {what} "
            "while the function is being traced, so a replay would reuse this one value (or "
            "this one branch). Return the tensor from the jitted function and read it outside, "
            "compute with tensor ops instead (e.g. ops.where, ops.maximum), or run the "
            "function eagerly with ndl.jit(fn, enabled=False)"
        )

    def callback(self, fn: Any) -> None:
        site, _ = user_site()
        raise JitError(
            f"ndl.jit({self.name}): a backward hook queued a callback "
            f"({getattr(fn, '__qualname__', fn)!r}, e.g. DistributedDataParallel's gradient "
            f"allreduce) near {site}; a replay would not run it. Run such a step eagerly "
            "(ndl.jit(fn, enabled=False))")

    def inplace(self, op: str) -> None:
        site, line = user_site()
        code = f" `{line}`" if line else ""
        raise JitError(
            f"ndl.jit({self.name}): at {site}:{code} the in-place op {op} writes into a "
            "tensor's memory, which a replay would not repeat (jit replays ops that make new "
            "values). Use the out-of-place form (x = x + y instead of x += y or x.add_(y))")

    def _producer(self, tensor: Any, kind: int, redo: Any) -> Slot:
        index = self.lookup(tensor._data)
        if index is None:
            index = self.slot_for(tensor)
        slot = self.slots[index]
        slot.kind, slot.const, slot.source = kind, False, redo
        self.producers.append(index)
        return slot

    def random(self, tensor: Any, redraw: Any) -> None:
        self._producer(tensor, RANDOM, redraw)

    def host(self, tensor: Any, make: Any, owner: Any, managed: tuple) -> None:
        self._producer(tensor, HOST, make)
        for name in managed:
            self.managed.add((id(owner), name))


class Dispatch:
    """The engine's ``core.TRACER``: forwards each hook to the calling thread's recorder."""

    def __init__(self) -> None:
        self.recorders: dict = {}
        self.lock = threading.Lock()

    def current(self) -> Recorder | None:
        return self.recorders.get(threading.get_ident())

    def tracing(self) -> bool:
        return threading.get_ident() in self.recorders

    def op(self, op: Any, inputs: tuple, value: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.op(op, inputs, value)

    def leaf(self, value: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.leaf(value)

    def use(self, value: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.use(value)

    def wrote(self, tensor: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.wrote(tensor)

    def read(self, tensor: Any, what: str) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.read(tensor, what)

    def random(self, tensor: Any, redraw: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.random(tensor, redraw)

    def host(self, tensor: Any, make: Any, owner: Any, managed: tuple) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.host(tensor, make, owner, managed)

    def callback(self, fn: Any) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.callback(fn)

    def inplace(self, op: str) -> None:
        rec = self.recorders.get(threading.get_ident())
        if rec is not None:
            rec.inplace(op)


DISPATCH = Dispatch()


class recording:
    """Context manager: ``rec`` receives the engine's hooks from this thread."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    def __enter__(self) -> Recorder:
        with DISPATCH.lock:
            if not DISPATCH.recorders:
                core.TRACER = DISPATCH
                core.OBSERVERS.append(DISPATCH.op)
            DISPATCH.recorders[threading.get_ident()] = self.rec
        return self.rec

    def __exit__(self, *exc: Any) -> None:
        with DISPATCH.lock:
            DISPATCH.recorders.pop(threading.get_ident(), None)
            if not DISPATCH.recorders:
                core.TRACER = None
                core.OBSERVERS.remove(DISPATCH.op)
