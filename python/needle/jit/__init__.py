"""``ndl.jit``: trace a function once per signature, then replay it as a flat schedule.

>>> @ndl.jit
... def train_step(X, y):
...     opt.reset_grad()
...     loss = loss_fn(model(X), y)
...     loss.backward()
...     opt.step()
...     return loss

The first call with a given signature (each Tensor argument's shape, dtype, layout,
device and ``requires_grad``; other arguments by value) runs eagerly while the engine
reports every op to a recorder (``_record``); the recorded ops — forward, the gradient
ops of ``backward()``, the optimizer's updates — are compiled into a schedule of kernel
calls over preallocated buffers (``_program``). Later calls check that the Python state
the function reads is unchanged (``_state``: its guards), read the tensors it reaches
(parameters, buffers, optimizer state) from where they are now, draw its random numbers
afresh, run the schedule, and write back what the eager call would have written.

What cannot be replayed is refused, never replayed wrongly: reading a tensor's value into
Python raises :class:`~needle.errors.JitError`; Python state that the function changes
(other than the optimizers' own step counters) makes the trace one-off (the call simply ran
eagerly); Python values that feed the arithmetic and change between calls (a learning
rate set from outside, a ``training`` flag, a closure variable) make the guards fail and
the function is traced again.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import threading
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import anomaly, core, grad_mode
from .._fp import call_quietly
from ..errors import JitError
from ..tensor import Tensor, TensorTuple
from . import _state
from ._kernels import SHAPE_ONLY
from ._program import CompileError, Compiled, compile_program
from ._record import (
    DISPATCH, HOST, INPUT, RANDOM, STATE, Recorder, fingerprint, raw_of, recording,
)

__all__ = ["jit", "JitFunction", "JitError", "JitWarning", "is_tracing"]

# Consecutive one-off traces (the function changed Python state) before a signature is
# left to run eagerly for good, with a warning.
UNSTABLE_LIMIT = 3


class JitWarning(UserWarning):
    """``ndl.jit`` cannot speed a function up (it retraces, or must run it eagerly)."""


def is_tracing() -> bool:
    """Whether the calling thread is inside a call that ``ndl.jit`` is tracing."""
    return DISPATCH.tracing()


def _new_tensor(cls: type, raw: Any, device: Any, requires_grad: bool) -> Any:
    """A leaf of class ``cls`` over the raw array (or tuple of arrays) ``raw``."""
    return core.leaf(cls, raw, device, requires_grad)


# ----------------------------------------------------------------------------------------------
# Signatures


def _spec(obj: Any, tensors: list, seen: dict, where: str) -> Any:
    if isinstance(obj, Tensor):
        raw = obj._data
        if raw is None:
            raise JitError(f"ndl.jit({where}): a graph-mode placeholder was passed; jit traces "
                           "eager code (use graph.Evaluator for graphs)")
        k = seen.get(id(obj))
        if k is None:
            k = seen[id(obj)] = len(tensors)
            tensors.append(obj)
        return ("T", k, type(obj), raw.shape, raw.dtype.str, raw.strides,
                getattr(obj._device, "name", None), obj.requires_grad)
    t = type(obj)
    if t is tuple or t is list:
        return (t.__name__, tuple(_spec(x, tensors, seen, where) for x in obj))
    if t is dict:
        return ("dict", tuple((k, _spec(v, tensors, seen, where)) for k, v in obj.items()))
    if isinstance(obj, TensorTuple):
        raise JitError(f"ndl.jit({where}): pass the tensors of a TensorTuple as a tuple")
    try:
        hash(obj)
    except TypeError:
        kind = "a numpy array" if isinstance(obj, np.ndarray) else f"a {t.__name__}"
        raise JitError(f"ndl.jit({where}): an argument is {kind}, which is not hashable; pass "
                       "array data as a Tensor (non-tensor arguments are part of the "
                       "signature, compared by value)") from None
    return ("S", t, obj)


def _statics(obj: Any, out: list) -> None:
    """Non-tensor arguments that hold state (a model passed in): roots of the walk."""
    t = type(obj)
    if t in (tuple, list):
        for x in obj:
            _statics(x, out)
    elif t is dict:
        for x in obj.values():
            _statics(x, out)
    elif not isinstance(obj, Tensor) and _state.classify(obj) == _state.OBJ:
        out.append((obj, "argument"))


def _roots(fn: Any) -> list:
    name = getattr(fn, "__qualname__", type(fn).__name__)
    if isinstance(fn, (types.FunctionType, types.MethodType, functools.partial)):
        return [(fn, name)]
    return [(fn, type(fn).__name__)]


# ----------------------------------------------------------------------------------------------
# A compiled trace


class _Stale(Exception):
    """A state tensor's layout changed since the trace: trace again."""


class Trace:
    """One signature's compiled call: guards, reads, the schedule, writes, outputs."""

    def __init__(self) -> None:
        self.guards: list = []
        self.guard_fn: Any = None
        self.compiled: Compiled | None = None
        self.inputs: list = []  # (slot, argument position)
        self.states: list = []  # (slot, reader, (shape, dtype, strides))
        self.producers: list = []  # (slot, make)
        self.writes: list = []
        self.clear: list = []  # (grad targets) set to None before the schedule runs
        self.outputs: Any = None
        self.lock = threading.Lock()
        self.replays = 0

    def check(self) -> str | None:
        run = self.guard_fn
        if run is None:
            run = self.guard_fn = _state.compile_guards(self.guards)
        return run()

    def replay(self, tensors: list) -> Any:
        c = self.compiled
        canon = c.canon
        with self.lock:
            E = list(c.template)
            for slot, k in self.inputs:
                E[slot] = tensors[k]._data
            for slot, reader, meta in self.states:
                E[slot] = _read(reader, meta)
            for slot, make in self.producers:
                E[slot] = make.fn() if make.__class__ is _Raw else raw_of(make()._data)
            for target in self.clear:
                (tensors[target[1]] if target[0] == "arg" else target[1]).grad = None
            call_quietly(c.run, E)  # numpy's FP warnings off, as in eager ops (needle._fp)
            made: dict = {}
            for write in self.writes:
                _apply(write, E, canon, tensors, made, c.copy_out)
            out = _build(self.outputs, E, canon, tensors, made, c.copy_out)
            self.replays += 1
        return out


def _setter(tensor: Any, device: Any) -> Callable:
    def write(raw: Any) -> None:
        tensor._data = raw
    return write


def _read(reader: tuple, meta: tuple) -> Any:
    kind = reader[0]
    if kind == "holder":
        t = reader[1]
    elif kind == "grad":
        t = reader[1].grad
    else:
        _, owner, k, key = reader
        t = _state._get(owner, k, key)
    raw = None if t is None else t._data
    if raw is None:
        raise _Stale()
    if meta is None:
        return raw_of(raw)
    if raw.shape != meta[0] or raw.dtype != meta[1] or raw.strides != meta[2]:
        raise _Stale()
    return raw


def _value(spec: tuple, E: list, canon: list, tensors: list, made: dict, copy_out: set) -> Any:
    kind = spec[0]
    if kind == "new":
        _, slot, cls, requires_grad, ident, device = spec
        t = made.get(ident)
        if t is None:
            s = canon[slot]
            raw = E[s]
            if s in copy_out:
                raw = tuple(np.array(r) for r in raw) if raw.__class__ is tuple else np.array(raw)
            t = made[ident] = _new_tensor(cls, raw, device, requires_grad)
        return t
    if kind == "arg":
        return tensors[spec[1]]
    if kind == "obj":
        return spec[1]
    return None


def _apply(write: tuple, E: list, canon: list, tensors: list, made: dict, copy_out: set) -> None:
    kind = write[0]
    if kind == "data":
        _, target, slot, device = write
        t = tensors[target[1]] if target[0] == "arg" else target[1]
        s = canon[slot]
        t._data = np.array(E[s]) if s in copy_out else E[s]
    elif kind == "grad":
        _, target, spec = write
        t = tensors[target[1]] if target[0] == "arg" else target[1]
        t.grad = _value(spec, E, canon, tensors, made, copy_out)
    else:  # bind
        _, owner, k, key, spec = write
        value = _value(spec, E, canon, tensors, made, copy_out)
        if k == _state.ATTR:
            setattr(owner, key, value)
        elif k == _state.CELL:
            owner.cell_contents = value
        else:
            owner[key] = value


def _build(spec: Any, E: list, canon: list, tensors: list, made: dict, copy_out: set) -> Any:
    kind = spec[0]
    if kind in ("tuple", "list"):
        items = [_build(s, E, canon, tensors, made, copy_out) for s in spec[1]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _build(s, E, canon, tensors, made, copy_out) for k, s in spec[1]}
    if kind == "const":
        return spec[1]
    return _value(spec, E, canon, tensors, made, copy_out)


# ----------------------------------------------------------------------------------------------
# The jitted function


class JitFunction:
    """A function traced once per signature and replayed as a compiled schedule.

    Made by :func:`jit`; call it like the function. ``stats`` counts traces, replays and
    eager calls; :meth:`explain` describes the compiled traces.
    """

    def __init__(self, fn: Callable, *, enabled: bool = True, cache_size: int = 8) -> None:
        if not callable(fn):
            raise TypeError(f"ndl.jit: expected a function, got {type(fn).__name__}")
        if cache_size < 1:
            raise ValueError(f"ndl.jit: cache_size must be at least 1, got {cache_size}")
        functools.update_wrapper(self, fn, updated=())
        self.fn = fn
        self.enabled = enabled
        self.cache_size = int(cache_size)
        self.name = getattr(fn, "__qualname__", type(fn).__name__)
        self._roots = _roots(fn)
        self._by_key: dict = {}
        self._order: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._unstable: dict = {}
        self._eager_keys: set = set()
        self._retraced: dict = {}
        self.stats = {"traces": 0, "replays": 0, "eager": 0, "one_off": 0, "retraces": 0}

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # As a method decorator: one jitted function per instance, bound to it.
        if obj is None:
            return self
        cache = obj.__dict__.setdefault("_jit_methods", {})
        bound = cache.get(id(self))
        if bound is None:
            bound = cache[id(self)] = JitFunction(types.MethodType(self.fn, obj),
                                                  enabled=self.enabled,
                                                  cache_size=self.cache_size)
        return bound

    def __repr__(self) -> str:
        return f"<ndl.jit of {self.name}: {len(self._order)} compiled trace(s)>"

    @property
    def cache_len(self) -> int:
        """How many compiled traces the cache holds now (at most ``cache_size``)."""
        return len(self._order)

    def explain(self) -> str:
        """One line per compiled trace: its schedule and buffers."""
        lines = []
        for _, trace in self._order.values():
            lines.append(f"{trace.compiled.describe()}; replayed {trace.replays} times")
        return "\n".join(lines) or "no compiled traces"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (not self.enabled or os.environ.get("NEEDLE_JIT", "1") == "0" or core.LAZY_MODE
                or anomaly._DEPTH or DISPATCH.tracing()):
            # Disabled, lazy or anomaly mode, or called from inside another traced call
            # (whose recorder sees these ops): just run it.
            return self.fn(*args, **kwargs)
        tensors: list = []
        key = (_spec(args, tensors, {}, self.name), _spec(kwargs, tensors, {}, self.name),
               _aliases(tensors), grad_mode.is_grad_enabled())
        if key in self._eager_keys:
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        failed = None
        for trace in list(self._by_key.get(key, ())):
            reason = trace.check()
            if reason is not None:
                failed = reason
                continue
            try:
                out = trace.replay(tensors)
            except _Stale:
                failed = "the layout of a state tensor"
                continue
            with self._lock:
                if id(trace) in self._order:
                    self._order.move_to_end(id(trace))
            self.stats["replays"] += 1
            return out
        if failed is not None:
            self._note_retrace(key, failed)
        return self._trace(key, args, kwargs, tensors)

    def _note_retrace(self, key: Any, reason: str) -> None:
        self.stats["retraces"] += 1
        n = self._retraced[key] = self._retraced.get(key, 0) + 1
        if n == 4:
            warnings.warn(
                f"ndl.jit({self.name}) traced the same signature again {n} times because "
                f"Python state it reads keeps changing (last: {reason}); pass such values as "
                "Tensor arguments or keep them fixed, or the jit cannot help", JitWarning,
                stacklevel=3)

    # -- tracing -------------------------------------------------------------------------------

    def _trace(self, key: Any, args: tuple, kwargs: dict, tensors: list) -> Any:
        # The recorder and the eager graph of a long trace are many objects: Python's cyclic
        # collector would scan them over and over while they are built (for nothing).
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._trace_call(key, args, kwargs, tensors)
        finally:
            if collecting:
                gc.enable()

    def _trace_call(self, key: Any, args: tuple, kwargs: dict, tensors: list) -> Any:
        roots = list(self._roots)
        _statics((args, kwargs), roots)
        entry = _state.Walk(roots)
        data_map = entry.data_map()
        for t in tensors:
            if t.grad is not None and t.grad._data is not None:
                data_map.setdefault(id(t.grad._data), t.grad)
        rec = Recorder(self.name, data_map, SHAPE_ONLY)
        for k, t in enumerate(tensors):
            rec.add_input(t, k)
        entry_args = [(t._data, t.grad) for t in tensors]
        rng_before = np.random.get_state()
        with recording(rec):
            result = self.fn(*args, **kwargs)
        self.stats["traces"] += 1
        exit_ = _state.Walk(roots)
        rebound, changes = _state.diff(entry, exit_, rec.managed)
        if not changes:
            changes = _check_rng(rec, rng_before)
        if changes:
            self._one_off(key, changes)
            return result
        trace = Trace()
        try:
            outputs = _Finish(rec, entry, exit_, rebound, tensors, entry_args).run(trace, result)
        except CompileError as e:
            self._one_off(key, [str(e)])
            return result
        with self._lock:
            self._by_key.setdefault(key, []).append(trace)
            self._order[id(trace)] = (key, trace)
            while len(self._order) > self.cache_size:
                _, (old_key, old) = self._order.popitem(last=False)
                variants = self._by_key.get(old_key, [])
                if old in variants:
                    variants.remove(old)
                if not variants:
                    self._by_key.pop(old_key, None)
        self._unstable.pop(key, None)
        return outputs

    def _one_off(self, key: Any, changes: list) -> None:
        self.stats["one_off"] += 1
        n = self._unstable[key] = self._unstable.get(key, 0) + 1
        if n >= UNSTABLE_LIMIT:
            self._eager_keys.add(key)
            shown = "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
            warnings.warn(
                f"ndl.jit({self.name}): every call does something a replay cannot repeat "
                f"({shown}), so it now runs eagerly for this signature. Keep "
                "such state outside the jitted function, or make it a Tensor", JitWarning,
                stacklevel=5)


def _aliases(tensors: list) -> tuple:
    first: dict = {}
    out = []
    for k, t in enumerate(tensors):
        out.append(first.setdefault(id(t._data), k))
    return tuple(out)


def _check_rng(rec: Recorder, before: tuple) -> list:
    """Redo the recorded draws from the RNG state before the call: they must end where the
    call ended, or the function drew random numbers some other way (not replayable).

    The draws are redone the cheap way (the values before the cast to the tensor's dtype);
    where those give the same bits as the traced call, a replay draws them that way too.
    """
    after = np.random.get_state()
    randoms = [rec.slots[i] for i in rec.producers if rec.slots[i].kind == RANDOM]
    if not randoms and _same_rng(before, after):
        return []
    np.random.set_state(before)
    try:
        for slot in randoms:
            redraw = slot.source
            dtype = slot.meta[1]
            values = getattr(redraw, "values", None)
            if values is not None:
                fast = _cast(values, dtype)
                if fingerprint(fast()) == slot.fp:
                    slot.source = _Raw(fast)
                continue
            redraw()
        redone = np.random.get_state()
    finally:
        np.random.set_state(after)
    if _same_rng(redone, after):
        return []
    return ["numpy's global random generator was used other than through needle.init "
            "(e.g. np.random.* inside the function): a replay would not redraw those numbers; "
            "use ndl.init.rand/randn/randb"]


class _Raw:
    """A producer that returns its raw array itself (not a Tensor)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self) -> Any:
        return self.fn()


def _cast(values: Callable, dtype: Any) -> Callable:
    def draw() -> np.ndarray:
        return np.asarray(values(), dtype=dtype)
    return draw


def _rawkey(data: Any) -> int | None:
    return None if data is None else id(data)


def _same_rng(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


class _Finish:
    """Turn a recorder and the walks around the call into a compiled Trace."""

    def __init__(self, rec: Recorder, entry: Any, exit_: Any, rebound: dict, tensors: list,
                 entry_args: list) -> None:
        self.rec = rec
        self.entry = entry
        self.exit = exit_
        self.rebound = rebound
        self.tensors = tensors
        self.entry_args = entry_args
        self.arg_pos = {id(t): k for k, t in enumerate(tensors)}
        self.roots: list[int] = []
        # Objects that existed before the call: bound back as themselves, not copied.
        self.external = {id(t) for t in entry.tensors.values()} | set(self.arg_pos)
        self.external |= {i for i in rec.holders}

    def spec(self, t: Any) -> tuple:
        """How a replay recreates the tensor ``t`` that the call left somewhere."""
        if t is None:
            return ("none",)
        if id(t) in self.arg_pos:
            return ("arg", self.arg_pos[id(t)])
        if id(t) in self.external:
            return ("obj", t)
        slot = self.rec.slot_for(t)
        self.roots.append(slot)
        requires_grad = bool(t.requires_grad) and t.op is None
        return ("new", slot, type(t), requires_grad, id(t), self.rec.slots[slot].device)

    def out_spec(self, obj: Any) -> tuple:
        t = type(obj)
        if t in (tuple, list):
            return (t.__name__, [self.out_spec(x) for x in obj])
        if t is dict:
            return ("dict", [(k, self.out_spec(v)) for k, v in obj.items()])
        if isinstance(obj, (Tensor, TensorTuple)):
            s = self.spec(obj)
            if s[0] == "new":  # a replay's outputs are detached: so is the first call's
                s = ("new", s[1], type(obj), False, s[4], s[5])
            return s
        if obj is None or isinstance(obj, str):
            return ("const", obj)
        raise JitError(
            f"ndl.jit({self.rec.name}): the function returned a {type(obj).__name__}; a "
            "replay would return this call's value again. Return Tensors (and containers "
            "of them), or None")

    def run(self, trace: Trace, result: Any) -> Any:
        rec = self.rec
        outputs = self.out_spec(result)
        writes = []
        # Tensors bound to new objects (BatchNorm statistics, optimizer moments, ...).
        rebound_entry = {}
        for key, x in self.rebound.items():
            owner, kind, k = x[0], x[1], x[2]
            writes.append(("bind", owner, kind, k, self.spec(x[3])))
            before = self.entry.index()[key][3]
            rebound_entry[id(before)] = (owner, kind, k)
        # .data writes and .grad changes of tensors that existed before the call.
        known = dict(self.entry.tensors)
        entry_state = {i: (_rawkey(d), g) for i, (d, g, _) in self.entry.snap.items()}
        for i, (holder, slot, grad) in rec.holders.items():
            known.setdefault(i, holder)
            entry_state.setdefault(i, (id(rec.slots[slot].value), grad))
        for t in rec.written.values():
            known.setdefault(id(t), t)
        for k, t in enumerate(self.tensors):
            known[id(t)] = t
            entry_state[id(t)] = (_rawkey(self.entry_args[k][0]), self.entry_args[k][1])
        for i, t in known.items():
            if i in rebound_entry and i not in self.arg_pos:
                continue  # no longer where the function found it
            data0, grad0 = entry_state.get(i, (None, None))
            target = ("arg", self.arg_pos[i]) if i in self.arg_pos else ("holder", t)
            if t._data is not None and _rawkey(t._data) != data0:
                slot = rec.slot_for(t)
                self.roots.append(slot)
                writes.append(("data", target, slot, rec.slots[slot].device))
            if isinstance(t, Tensor) and t.grad is not grad0:
                writes.append(("grad", target, self.spec(t.grad)))
        # Where a replay reads each piece of state: a tensor found at a place the call
        # rebound is read from that place, a gradient from its tensor's .grad, anything else
        # from the tensor object that held it (guarded to still be where it was found).
        grad_of = {}
        for i, t in known.items():
            grad0 = entry_state.get(i, (None, None))[1]
            for g in (grad0, getattr(t, "grad", None)):
                if g is not None:
                    grad_of.setdefault(id(g), t)
        states = []
        for slot in rec.slots:
            if slot.kind != STATE:
                continue
            holder = slot.source
            if id(holder) in rebound_entry:
                owner, kind, k = rebound_entry[id(holder)]
                reader = ("path", owner, kind, k)
            elif id(holder) in grad_of and id(holder) not in self.entry.tensors:
                reader = ("grad", grad_of[id(holder)])
            else:
                reader = ("holder", holder)
            meta = None if slot.value.__class__ is tuple else slot.meta[:3]
            states.append((slot.index, reader, meta))
        # New data of state tensors is written as soon as the schedule makes it (the old
        # data can then be freed as early as eagerly); gradients that the call replaces
        # and does not read are dropped before it runs, as ``reset_grad()`` does eagerly.
        effects: dict = {}
        late = []
        for w in writes:
            if w[0] == "data" and w[1][0] == "holder":
                effects.setdefault(w[2], []).append(_setter(w[1][1], w[3]))
            else:
                late.append(w)
        read_grads = {id(r[1]) for _, r, _ in states if r[0] == "grad"}
        read_grads |= {id(grad_of[id(r[1])]) for _, r, _ in states
                       if r[0] == "holder" and id(r[1]) in grad_of}
        trace.clear = [w[1] for w in late if w[0] == "grad" and id(
            self.tensors[w[1][1]] if w[1][0] == "arg" else w[1][1]) not in read_grads]
        trace.inputs = [(s.index, s.source) for s in rec.slots if s.kind == INPUT]
        trace.states = states
        trace.producers = [(i, rec.slots[i].source) for i in rec.producers]
        trace.writes = late
        trace.outputs = outputs
        trace.guards = _state.guards_of(self.entry, self.rebound, rec.managed)
        trace.compiled = compile_program(rec.slots, rec.entries, self.roots, effects)
        trace.names = {out: op.name for op, _, out in rec.entries}
        # The first call returns what a replay would: detached tensors.
        return _build(outputs, _TraceValues(rec), list(range(len(rec.slots))), self.tensors,
                      {}, set())


class _TraceValues:
    """``E[slot]`` for the traced call itself: the eager arrays (looked up by slot)."""

    def __init__(self, rec: Recorder) -> None:
        self.by_slot: dict = {}
        for ref, slot in rec._ids.values():
            held = raw_of(ref) if ref.__class__ is tuple else ref()
            if held is not None:
                self.by_slot[slot] = held

    def __getitem__(self, slot: int) -> Any:
        return self.by_slot[slot]


def jit(fn: Callable | None = None, *, enabled: bool = True, cache_size: int = 8) -> Any:
    """Trace ``fn`` once per signature and replay it as a compiled schedule.

    Use as ``@ndl.jit``, ``@ndl.jit(cache_size=4)`` or ``ndl.jit(fn)``.

    Parameters
    ----------
    fn : callable
        A function of Tensors (and hashable non-tensor arguments) that returns Tensors,
        containers of them, or None.
    enabled : bool
        False runs ``fn`` eagerly (for debugging); so does the environment variable
        ``NEEDLE_JIT=0``.
    cache_size : int
        How many compiled traces (signatures and guard variants) to keep, least recently
        used first out.

    Returns
    -------
    JitFunction
        Call it like ``fn``. Returned tensors are detached (call ``backward()`` inside).

    Raises
    ------
    JitError
        When ``fn`` reads a tensor's value into Python while being traced (``.item()``,
        ``.numpy()``, ``float(t)``, ``if t:``), returns Python numbers, or takes an
        unhashable non-tensor argument.
    """
    if fn is None:
        return lambda f: JitFunction(f, enabled=enabled, cache_size=cache_size)
    return JitFunction(fn, enabled=enabled, cache_size=cache_size)


class _CallableModule(types.ModuleType):
    """``needle.jit`` is this module and, called, the :func:`jit` decorator."""

    def __call__(self, fn: Callable | None = None, *, enabled: bool = True,
                 cache_size: int = 8) -> Any:
        return jit(fn, enabled=enabled, cache_size=cache_size)


sys.modules[__name__].__class__ = _CallableModule
