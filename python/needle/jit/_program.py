"""The compiler: a recorded call becomes a flat schedule of kernel calls over slots.

Passes, in order:

1. **Constant folding** — an op whose inputs are all constants (made inside the function
   from host data, or needed only for their shape: ``ones_like(x)`` once shapes are fixed)
   is computed once, now.
2. **Common subexpressions** — the same op with the same inputs twice is computed once.
3. **Dead code** — work that no output, state write or later op reads is dropped (random
   draws and host scalars still run, in order: they advance the RNG and optimizer state).
4. **Lowering** — each op gets a kernel (``_kernels``) or runs its own ``compute``.
5. **Buffers by liveness** — results that nothing outside the call sees go into buffers
   that live across calls and are reused as soon as their value is dead (``out=``); what
   the caller sees (outputs, state writes) is freshly allocated at every call.
6. **Checking** — the schedule runs once on the traced call's own inputs and every result
   is compared bit for bit with what the eager call produced; a kernel that differs is
   replaced by the op's ``compute`` and the schedule rebuilt.

The schedule is a list of tuples that a small interpreter loop runs: no Value or Tensor
is created per op.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from .._fp import call_quietly
from ._kernels import SHAPE_ONLY, Kernel, box, fallback, is_tuple_meta, lower
from ._record import CONST, OP, Slot, fingerprint

# Whether new state data (parameters, moments) also reuses its array of two calls ago. It
# keeps a spare array per parameter between calls, but not at the peak: eagerly too the
# old and the new value exist together while a parameter is updated.
RECYCLE_STATE = True
# A result this large (bytes) is dropped from the slot table right after its last use, so
# that the schedule's peak memory is no more than the eager call's.
FREE_BYTES = 1 << 16
_NEVER = 1 << 60


class Recycler:
    """The memory of a result that the caller sees (an output, new state, a gradient).

    Each call needs an array the caller can keep: usually a fresh one. But the array this
    step made two calls ago is often free again (the parameter it became was replaced, the
    gradient was reset), and a fresh large array costs page faults. So an array made here
    earlier is reused once nothing else refers to it (its reference count says so: a
    tensor, a view or any other object holding it keeps it out of reach).
    """

    __slots__ = ("shape", "dtype", "order", "ring", "keep")

    def __init__(self, shape: tuple, dtype: Any, order: str, spares: int = 1) -> None:
        self.shape, self.dtype, self.order = shape, dtype, order
        self.ring: list = []
        self.keep = spares + 1

    def __call__(self) -> np.ndarray:
        ring = self.ring
        for a in ring:
            # References: the ring, this loop's variable and getrefcount's argument.
            if sys.getrefcount(a) == 3:
                return a
        a = np.empty(self.shape, dtype=self.dtype, order=self.order)
        if self.keep > 1:
            ring.append(a)
            if len(ring) > self.keep:
                del ring[0]
        return a


class CompileError(Exception):
    """The schedule could not be made to reproduce the traced call (never shown to users:
    the function then runs eagerly)."""


def _nbytes(meta: Any) -> int:
    if is_tuple_meta(meta):
        return sum(_nbytes(m) for m in meta)
    return math.prod(meta[0]) * meta[1].itemsize


def _cse_key(op: Any, ins: tuple) -> Any:
    try:
        state = tuple(sorted(vars(op).items()))
        key = (type(op), state, ins)
        hash(key)
        return key
    except TypeError:
        return None


def _dummy(meta: Any) -> Any:
    if is_tuple_meta(meta):
        return tuple(_dummy(m) for m in meta)
    return np.zeros(meta[0], dtype=meta[1])


class _Find:
    """Union-find over slot indices (which results share memory)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class Compiled:
    """A schedule and the slot table it runs on."""

    def __init__(self) -> None:
        self.steps: list[tuple] = []
        self.template: list = []
        self.canon: list[int] = []
        self.copy_out: set = set()  # root slots whose memory is a constant: copied out
        self.fresh_roots: set = set()  # root slots in memory allocated by this run alone
        self.buffer_bytes = 0
        self.n_kernels = 0
        self.n_fallback = 0
        self.n_folded = 0
        self.n_cse = 0
        self.n_dead = 0
        self.n_static = 0
        self.step_entry: list[int] = []  # entry index of each op step (-1 for others)
        self.step_out: list[int] = []
        self.code: Any = None
        self.code_tried = False
        self.roots: list[int] = []
        self.late: list = []  # (write, slot) of effects whose value no step makes

    def run(self, E: list) -> None:
        code = self.code
        if code is None:
            if self.code_tried or len(self.steps) > CODEGEN_MAX_STEPS:
                run_steps(self.steps, E)
            else:
                code = self.code = generate(self.steps, self.roots)
                self.code_tried = True
        if code is not None:
            code(E)
        for fn, slot in self.late:
            raw = E[slot]
            fn(np.array(raw) if slot in self.copy_out else raw)

    def describe(self) -> str:
        return (f"{len(self.step_entry) - self.step_entry.count(-1)} ops ({self.n_kernels} "
                f"kernels, {self.n_fallback} compute calls), {self.n_folded} folded, "
                f"{self.n_cse} shared, {self.n_dead} dead, {self.n_static} static views; "
                f"buffers "
                f"{self.buffer_bytes / 2**20:.2f} MB")


def run_steps(steps: list, E: list) -> None:
    """The interpreter: each step calls one kernel on slots of ``E``."""
    for st in steps:
        k = st[0]
        if k == 4:
            E[st[5]] = st[1](E[st[2]], E[st[3]], st[4])
        elif k == 3:
            E[st[4]] = st[1](E[st[2]], st[3])
        elif k == 2:
            E[st[4]] = st[1](E[st[2]], E[st[3]])
        elif k == 1:
            E[st[3]] = st[1](E[st[2]])
        elif k == 6:
            E[st[4]] = st[1](*[E[i] for i in st[2]], st[3])
        elif k == 5:
            E[st[3]] = st[1](*[E[i] for i in st[2]])
        elif k == 8:
            E[st[4]] = st[1](*[E[i] for i in st[2]], st[3]())
        elif k == 9:
            for i in st[1]:
                E[i] = None
        else:  # 10: a write to state, as soon as its value exists
            st[1](E[st[2]])


# Schedules up to this many steps also become one generated Python function (compiling the
# source costs about 40 µs a step; running it saves the interpreter's dispatch).
CODEGEN_MAX_STEPS = 4_000


def generate(steps: list, roots: list) -> Any:
    """The schedule as straight-line Python: ``E`` slots become local variables."""
    env: dict = {"np": np, "_empty": np.empty}
    used: set = set()
    produced: set = set()
    body: list = []

    def var(i: int) -> str:
        if i not in produced:
            used.add(i)
        return f"v{i}"

    for n, st in enumerate(steps):
        k = st[0]
        if k == 9:
            for i in st[1]:
                if i in produced or i in used:
                    body.append(f"    v{i} = None")
            continue
        fn = f"f{n}"
        env[fn] = st[1]
        if k == 10:
            body.append(f"    {fn}({var(st[2])})")
            continue
        if k in (3, 4, 6):
            buf = f"b{n}"
            env[buf] = st[4] if k == 4 else st[3]
        if k == 1:
            call, out = f"{fn}({var(st[2])})", st[3]
        elif k == 2:
            call, out = f"{fn}({var(st[2])}, {var(st[3])})", st[4]
        elif k == 3:
            call, out = f"{fn}({var(st[2])}, b{n})", st[4]
        elif k == 4:
            call, out = f"{fn}({var(st[2])}, {var(st[3])}, b{n})", st[5]
        elif k == 5:
            call, out = f"{fn}({', '.join(var(i) for i in st[2])})", st[3]
        elif k == 6:
            args = "".join(var(i) + ", " for i in st[2])
            call, out = f"{fn}({args}b{n})", st[4]
        else:  # 8: an output array of this call's own (see Recycler)
            env[f"a{n}"] = st[3]
            args = "".join(var(i) + ", " for i in st[2])
            call, out = f"{fn}({args}a{n}())", st[4]
        body.append(f"    v{out} = {call}")
        produced.add(out)
    head = [f"    v{i} = E[{i}]" for i in sorted(used)]
    tail = [f"    E[{i}] = v{i}" for i in sorted(set(roots) & produced)]
    src = "def run(E):\n" + "\n".join(head + body + tail + ["    return None"]) + "\n"
    exec(compile(src, "<needle.jit schedule>", "exec"), env)  # noqa: S102
    return env["run"]


def _copying(fn: Any) -> Any:
    def call(raw: Any) -> Any:
        return fn(np.array(raw))
    return call


def _boxed(fn: Any, box: Any) -> Any:
    def call(*xs: Any) -> Any:
        return box(fn(*xs))
    return call


def plan(slots: list[Slot], entries: list[tuple], roots: list[int], forced: set,
         effects: dict | None = None) -> Compiled:
    """Build the schedule (passes 1-5); ``forced`` entries run their op's ``compute``.

    ``effects`` maps a slot to writes ``fn(value)`` (new data of state tensors): each runs
    right after the step that makes its value, so the old data can go early as in eager.
    """
    c = Compiled()
    n = len(slots)
    canon = list(range(n))
    const_val: dict = {s.index: s.value for s in slots if s.kind == CONST}
    const_has = const_val.__contains__
    cse: dict = {}
    kept = []
    for j, (op, ins, out) in enumerate(entries):
        ins = tuple(canon[i] for i in ins)
        skip = SHAPE_ONLY.get(type(op), ())
        data_ins = [i for p, i in enumerate(ins) if p not in skip] if skip else ins
        if j not in forced and all(map(const_has, data_ins)):
            value = _fold(op, ins, skip, slots, const_val, out)
            if value is not None and fingerprint(value) == slots[out].fp:
                const_val[out] = value
                c.n_folded += 1
                continue
        key = _cse_key(op, ins)
        if key is not None:
            first = cse.get(key)
            if first is not None and slots[first].fp == slots[out].fp:
                canon[out] = first
                c.n_cse += 1
                continue
            cse.setdefault(key, out)
        kept.append((j, op, ins, out))
    c.canon = canon
    roots = [canon[r] for r in roots]
    pending: dict = {}
    for slot, fns in (effects or {}).items():
        pending.setdefault(canon[slot], []).extend(fns)

    # Lowering, then dead code (a lowered kernel may not read every input).
    chosen = []
    for j, op, ins, out in kept:
        kernel = None
        if j not in forced:
            kernel = lower(op, [slots[i].meta for i in ins], slots[out].meta,
                           slots[out].device)
        if kernel is None:
            kernel = fallback(op, len(ins), slots[out].device)
        chosen.append((j, op, ins, out, kernel))
    # Broadcasts read only by elementwise kernels stay views (no copy, the same bits).
    readers: dict = {}
    for item in chosen:
        for p in item[4].args:
            readers.setdefault(item[2][p], []).append(item[4])
    root_set = set(roots)
    for k, (j, op, ins, out, kernel) in enumerate(chosen):
        if kernel.loose is not None and out not in root_set and all(
                _layout_free(r, slots, chosen) for r in readers.get(out, ())):
            chosen[k] = (j, op, ins, out, kernel.loose)
    needed = set(roots)
    live = []
    for item in reversed(chosen):
        ins, out, kernel = item[2], item[3], item[4]
        if out in needed:
            live.append(item)
            needed.update(ins[p] for p in kernel.args)
        else:
            c.n_dead += 1
    live.reverse()

    # Memory: which results share memory (views), which the caller sees (escaping).
    find = _Find(n)
    for _, _, ins, out, kernel in live:
        if kernel.view:
            for p in kernel.args:
                find.union(out, ins[p])
    escaping = {find.find(r) for r in roots}
    const_groups = {find.find(s) for s in const_val}
    c.copy_out = {r for r in roots if find.find(r) in const_groups}
    foreign = const_groups | {find.find(s.index) for s in slots if s.kind != OP}
    c.fresh_roots = {r for r in roots if find.find(r) not in foreign}
    last: dict = {}
    for t, item in enumerate(live):
        for p in item[4].args:
            last[item[2][p]] = t
    group_last: dict = {}
    for s, t in last.items():
        g = find.find(s)
        group_last[g] = max(group_last.get(g, -1), t)
    members: dict = {}
    for item in live:  # a result nobody reads still ends with its step
        g = find.find(item[3])
        group_last.setdefault(g, -1)
        members.setdefault(g, []).append(item[3])
    for sl in last:  # inputs and state read by the schedule: dropped after their last use
        if slots[sl].kind != OP and sl not in const_val:
            members.setdefault(find.find(sl), []).append(sl)

    pool: dict = {}
    group_bufs: dict = {}
    ends: dict = {}
    for g, t in group_last.items():
        if g not in escaping:
            ends.setdefault(t, []).append(g)
    template: list = [None] * n
    for s, v in const_val.items():
        template[s] = v
    steps = []
    step_entry, step_out = [], []
    # Values known now: constants, buffers (an out kernel returns its buffer), and views of
    # those, which are made once here instead of at every call.
    static: dict = dict(const_val)
    static_has = static.__contains__
    for t, (j, _, ins, out, kernel) in enumerate(live):
        meta = slots[out].meta
        g = find.find(out)
        args = [ins[p] for p in kernel.args]
        fn = kernel.fn
        if kernel.view and args and all(map(static_has, args)) and out not in root_set \
                and kernel.name.endswith(_STATIC_VIEWS):
            value = fn(*[static[a] for a in args])
            boxed = value
            if kernel.box and not is_tuple_meta(meta) and meta[0] == ():
                boxed = box(value)
            if _same_objects(boxed, value) and _is_view(value, [static[a] for a in args]):
                static[out] = template[out] = value
                c.n_static += 1
                if t in ends:
                    _release(t, ends, group_bufs, pool, members, slots, template, steps,
                             step_entry, step_out)
                continue
        order = None if is_tuple_meta(meta) else meta[3]
        buf = fresh = None
        if kernel.out and order is not None:
            shape, dtype = kernel.buf_meta if kernel.buf_meta is not None else meta[:2]
            if kernel.buf_meta is not None:
                order = "C"
            if g in escaping:
                spares = 1 if RECYCLE_STATE or out not in pending else 0
                fresh = Recycler(shape, dtype, order, spares)
            else:
                key = (tuple(shape), dtype, order)
                free = pool.get(key)
                if free:
                    buf = free.pop()
                else:
                    buf = np.empty(shape, dtype=dtype, order=order)
                    c.buffer_bytes += buf.nbytes
                group_bufs.setdefault(g, []).append((key, buf))
        elif kernel.box and not is_tuple_meta(meta) and meta[0] == ():
            fn = _boxed(fn, box)
        if kernel.name.endswith(".compute"):
            c.n_fallback += 1
        else:
            c.n_kernels += 1
        if buf is not None and kernel.returns_out:
            static[out] = buf
        if buf is not None:
            if len(args) == 1:
                steps.append((3, fn, args[0], buf, out))
            elif len(args) == 2:
                steps.append((4, fn, args[0], args[1], buf, out))
            else:
                steps.append((6, fn, tuple(args), buf, out))
        elif fresh is not None:
            steps.append((8, fn, tuple(args), fresh, out))
        elif len(args) == 1:
            steps.append((1, fn, args[0], out))
        elif len(args) == 2:
            steps.append((2, fn, args[0], args[1], out))
        else:
            steps.append((5, fn, tuple(args), out))
        step_entry.append(j)
        step_out.append(out)
        for fn_ in pending.pop(out, ()):
            if out in c.copy_out:
                fn_ = _copying(fn_)
            steps.append((10, fn_, out))
            step_entry.append(-1)
            step_out.append(-1)
        if t in ends:
            _release(t, ends, group_bufs, pool, members, slots, template, steps, step_entry,
                     step_out)
    c.late = [(fn_, slot) for slot, fns in pending.items() for fn_ in fns]
    c.steps = steps
    c.roots = roots
    c.template = template
    c.step_entry = step_entry
    c.step_out = step_out
    return c


# Names of the view kernels whose result can be made once at compile time.
_STATIC_VIEWS = ("view", "reshape", "reshape_like", "getitem", "tuple", "identity", "as_row",
                 "as_column", "sum_like_view", "transpose", "permute")


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _is_view(value: Any, inputs: list) -> bool:
    """Whether every array of ``value`` shares the memory of one of ``inputs`` (a view made
    once stays right only if it is not a copy)."""
    roots = set()
    for x in inputs:
        for a in (x if x.__class__ is tuple else (x,)):
            roots.add(id(_root(a)))
    return all(id(_root(a)) in roots
               for a in (value if value.__class__ is tuple else (value,)))


def _same_objects(a: Any, b: Any) -> bool:
    if a.__class__ is tuple and b.__class__ is tuple:
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a is b


def _release(t: int, ends: dict, group_bufs: dict, pool: dict, members: dict, slots: list,
             template: list, steps: list, step_entry: list, step_out: list) -> None:
    """After step ``t``: the buffers of the groups whose last reader it was go back to the
    pool, and their large values leave the slot table."""
    drop = []
    for dg in ends[t]:
        bufs = group_bufs.pop(dg, None)
        if bufs:
            for key, b in bufs:
                pool.setdefault(key, []).append(b)
        ms = members.get(dg, ())
        size = 0
        for m in ms:
            size += _nbytes(slots[m].meta)
        if size >= FREE_BYTES:
            drop.extend(m for m in ms if template[m] is None)
    if drop:
        steps.append((9, tuple(drop)))
        step_entry.append(-1)
        step_out.append(-1)


def _layout_free(reader: Kernel, slots: list, chosen: list) -> bool:
    """Whether ``reader`` gives the same bits whatever the layout of its inputs: elementwise
    kernels (their result goes into a buffer of the eager layout) and reshapes."""
    return reader.elementwise or reader.reshape


def _fold(op: Any, ins: tuple, skip: tuple, slots: list, const_val: dict, out: int) -> Any:
    """The value of an op whose data inputs are all constants, computed now (or None)."""
    metas = [slots[i].meta for i in ins]
    device = slots[out].device
    try:
        kernel = lower(op, metas, slots[out].meta, device)
        if kernel is not None:
            value = kernel.fn(*[const_val[ins[p]] for p in kernel.args])
            if kernel.box:
                value = box(value)
            return value
        args = [const_val[i] if i in const_val else _dummy(slots[i].meta) for i in ins]
        return fallback(op, len(ins), device).fn(*args)
    except Exception:  # noqa: BLE001  (folding is an optimisation; the op then runs each call)
        return None


def check(c: Compiled, slots: list[Slot], fill: dict) -> int | None:
    """Run the schedule on the traced call's values; the entry of the first result that
    differs from the eager one (None when all agree)."""
    E = list(c.template)
    for s, v in fill.items():
        E[s] = v
    one = [None]
    step_out = c.step_out
    for t, st in enumerate(c.steps):
        if st[0] == 10:
            continue  # a write to state: not while checking
        one[0] = st
        run_steps(one, E)
        out = step_out[t]
        if out >= 0 and fingerprint(E[out]) != slots[out].fp:
            return c.step_entry[t]
    return None


def compile_program(slots: list[Slot], entries: list[tuple], roots: list[int],
                    effects: dict | None = None) -> Compiled:
    """Passes 1-6: a checked schedule that reproduces the traced call bit for bit."""
    fill = {s.index: s.value for s in slots if s.kind != OP and s.kind != CONST}
    forced: set = set()
    everything = set(range(len(entries)))
    for _ in range(8):
        c = call_quietly(plan, slots, entries, roots, forced, effects)
        bad = call_quietly(check, c, slots, fill)
        if bad is None:
            return c
        if bad in forced:
            if forced == everything:
                break
            forced = everything  # a compute call itself differs: trust no kernel
        else:
            forced.add(bad)
    raise CompileError("the compiled schedule does not reproduce the traced call")


__all__ = ["Compiled", "CompileError", "compile_program", "run_steps", "Kernel"]
