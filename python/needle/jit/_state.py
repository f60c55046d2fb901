"""The Python state a jitted function reaches: found by a walk, guarded at every replay.

The walk starts at the function (its closure, the globals its code names, its defaults,
``self`` of a bound method, a callable object's attributes and class methods) and goes
through Modules, optimizers, lists, tuples, dicts and objects of user-defined classes. It
records every edge it follows: Python scalars (guarded by value: a learning rate, a
``training`` flag, ``Dropout.p``), tensors (state, read at replay) and the objects in
between (guarded by identity). Library objects (numpy, data loaders, modules, classes)
are not entered.

Walking again after the traced call shows what the call changed: a tensor bound to a new
object (BatchNorm's running statistics, an optimizer's moments) is a write the replay
repeats; any other change of Python state (a counter, a list that grew) cannot be
replayed, so such a trace is not kept.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import sysconfig
import types
from typing import Any

import numpy as np

from ..core import Value
from ..tensor import Tensor

ATTR, ITEM, CELL = range(3)
SCALAR, TENSOR, OBJ, OPAQUE = range(4)
# Guard modes.
G_SCALAR, G_IDENT, G_LEN, G_TSIG, G_GRAD, G_REQ = range(6)

_SCALARS = (bool, int, float, complex, str, bytes, type(None))
# Containers larger than this are guarded by identity and length only.
MAX_ITEMS = 4096
# Stop walking after this many edges (a function that reaches huge Python structures).
MAX_EDGES = 50_000

_NEEDLE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LIBRARY_DIRS = tuple({os.path.realpath(p) + os.sep for p in (
    sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib"),
    sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib"),
) if p})


@functools.lru_cache(maxsize=4096)
def user_file(filename: str) -> bool:
    """Whether code in ``filename`` is the user's (not needle's, not the standard library's
    or an installed package's)."""
    if not filename or filename.startswith("<"):
        return filename.startswith("<stdin") or filename.startswith("<string")
    path = os.path.realpath(filename)
    if path.startswith(os.path.realpath(_NEEDLE_DIR)):
        return False
    return not path.startswith(_LIBRARY_DIRS)


def _user_class(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    return user_file(getattr(module, "__file__", "") or "") if module is not None else False


def _global_names(code: types.CodeType) -> set:
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _is_state_object(value: Any) -> bool:
    """Objects whose attributes the walk enters."""
    from ..nn import Module
    from ..optim import Optimizer

    if isinstance(value, (Module, Optimizer, types.SimpleNamespace, argparse.Namespace)):
        return True
    return hasattr(value, "__dict__") and _user_class(type(value))


def classify(value: Any) -> int | None:
    """SCALAR, TENSOR, OBJ (entered and guarded by identity), OPAQUE (guarded by identity
    only) or None (ignored)."""
    t = type(value)
    if t in _SCALARS or isinstance(value, np.generic):
        return SCALAR
    if isinstance(value, Tensor):
        return TENSOR
    if t in (list, tuple, dict):
        return OBJ
    if t is types.FunctionType:
        return OBJ if user_file(value.__code__.co_filename) else None
    if t in (types.MethodType, functools.partial, types.CellType):
        return OBJ
    if t in (np.ndarray, set, frozenset) or isinstance(value, Value):
        return OPAQUE
    if isinstance(value, (types.ModuleType, type, types.BuiltinFunctionType, np.ufunc)):
        return None
    return OBJ if _is_state_object(value) else None


def _children(obj: Any) -> list:
    """(owner, kind, key, value) for the edges out of ``obj``, plus objects to enter."""
    t = type(obj)
    out: list = []
    extra: list = []
    if t is types.FunctionType:
        code = obj.__code__
        for name, cell in zip(code.co_freevars, obj.__closure__ or ()):
            try:
                out.append((cell, CELL, name, cell.cell_contents))
            except ValueError:  # an empty cell (a name assigned later)
                continue
        g = obj.__globals__
        for name in sorted(_global_names(code)):
            if name in g:
                out.append((g, ITEM, name, g[name]))
        if obj.__defaults__:
            out.append((obj, ATTR, "__defaults__", obj.__defaults__))
        if obj.__kwdefaults__:
            out.append((obj, ATTR, "__kwdefaults__", obj.__kwdefaults__))
    elif t is types.MethodType:
        out.append((obj, ATTR, "__self__", obj.__self__))
        out.append((obj, ATTR, "__func__", obj.__func__))
    elif t is functools.partial:
        out += [(obj, ATTR, "func", obj.func), (obj, ATTR, "args", obj.args),
                (obj, ATTR, "keywords", obj.keywords)]
    elif t in (list, tuple):
        if len(obj) <= MAX_ITEMS:
            out += [(obj, ITEM, i, v) for i, v in enumerate(obj)]
    elif t is dict:
        if len(obj) <= MAX_ITEMS:
            out += [(obj, ITEM, k, v) for k, v in list(obj.items())]
    elif hasattr(obj, "__dict__"):
        out += [(obj, ATTR, k, v) for k, v in list(vars(obj).items())]
        # The code of a user class's methods runs too: walk the globals it names.
        for cls in type(obj).__mro__:
            if cls is object or not _user_class(cls):
                continue
            for v in vars(cls).values():
                fn = getattr(v, "__func__", v)
                if type(fn) is types.FunctionType:
                    extra.append(fn)
    return out, extra


def _get(owner: Any, kind: int, key: Any) -> Any:
    if kind == ATTR:
        return getattr(owner, key)
    if kind == CELL:
        return owner.cell_contents
    return owner[key]


def _label(owner_name: str, kind: int, key: Any) -> str:
    if kind == ATTR:
        return f"{owner_name}.{key}"
    if kind == CELL or owner_name == "":
        return str(key)
    if isinstance(key, Tensor):
        return f"{owner_name}[<tensor {tuple(key.shape)}>]"
    return f"{owner_name}[{key!r}]"


class Walk:
    """The edges found from some roots, and a snapshot of the tensors among them."""

    def __init__(self, roots: list) -> None:
        # (owner, kind, key, value, cls, length, name)
        self.edges: list[tuple] = []
        self.tensors: dict = {}  # id -> tensor
        self.snap: dict = {}  # id(tensor) -> (_data, grad, requires_grad)
        self.truncated = False
        seen: set = set()
        stack = [(obj, name) for obj, name in reversed(roots)]
        while stack:
            obj, name = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            children, extra = _children(obj)
            pushed = []
            for owner, kind, key, value in children:
                cls = classify(value)
                if cls is None:
                    continue
                if len(self.edges) >= MAX_EDGES:
                    self.truncated = True
                    break
                if type(obj) is types.FunctionType and kind != ATTR:
                    label = str(key)  # a closure variable or a global the code names
                else:
                    label = _label(name, kind, key)
                length = len(value) if type(value) in (list, tuple, dict, set, frozenset) else -1
                self.edges.append((owner, kind, key, value, cls, length, label))
                if cls == TENSOR:
                    if id(value) not in self.tensors:
                        self.tensors[id(value)] = value
                        self.snap[id(value)] = (value._data, value.grad,
                                                value.requires_grad)
                elif cls == OBJ:
                    pushed.append((value, label))
            stack.extend(reversed(pushed))
            stack.extend((fn, name) for fn in reversed(extra))

    def index(self) -> dict:
        return {(id(e[0]), e[1], _key(e[2])): e for e in self.edges}

    def data_map(self) -> dict:
        """``id(raw array) -> tensor`` for the data of every walked tensor and its gradient."""
        out = {}
        for t in self.tensors.values():
            for holder in (t, t.grad):
                if holder is not None and holder._data is not None and (
                        holder._data.__class__ is not tuple):
                    out[id(holder._data)] = holder
        return out


def _key(key: Any) -> Any:
    try:
        hash(key)
        return key
    except TypeError:
        return id(key)


def same_scalar(a: Any, b: Any) -> bool:
    if a.__class__ is not b.__class__:
        return False
    if a is b:
        return True
    try:
        if a == b:
            return True
        return a != a and b != b  # both NaN
    except Exception:  # noqa: BLE001  (numpy scalars that do not compare plainly)
        return False


def diff(entry: Walk, exit_: Walk, managed: set) -> tuple[dict, list[str]]:
    """(tensor edges bound to new objects: key -> exit edge, descriptions of changes that a
    replay cannot repeat)."""
    before, after = entry.index(), exit_.index()
    rebound: dict = {}
    changes: list[str] = []
    for key in list(before.keys() | after.keys()):
        e, x = before.get(key), after.get(key)
        if e is None or x is None:
            edge = x if e is None else e
            changes.append(f"{edge[6]} was {'added' if e is None else 'removed'}")
            continue
        if e[4] == TENSOR and x[4] == TENSOR:
            if e[3] is not x[3]:
                rebound[key] = x
            continue
        if e[4] != x[4]:
            changes.append(f"{e[6]} changed from {_show(e[3])} to {_show(x[3])}")
        elif e[4] == SCALAR:
            if not same_scalar(e[3], x[3]) and (id(e[0]), e[2]) not in managed:
                changes.append(f"{e[6]} changed from {e[3]!r} to {x[3]!r}")
        elif e[3] is not x[3] or e[5] != x[5]:
            changes.append(f"{e[6]} changed ({_show(e[3])}, length {e[5]} -> {x[5]})"
                           if e[3] is x[3] else f"{e[6]} was replaced")
    return rebound, sorted(changes)


def _show(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if value is None or type(value) in _SCALARS:
        return repr(value)
    return type(value).__name__


def _tensor_sig(t: Any) -> tuple:
    data = t._data
    raw = data if data is not None and data.__class__ is not tuple else None
    return (type(t), None if raw is None else raw.shape, None if raw is None else raw.dtype)


def guards_of(entry: Walk, rebound: dict, managed: set) -> list[tuple]:
    """Checks that hold at every replay of the trace made from ``entry``'s state."""
    out = []
    stable = []
    rebound_ids = set(rebound)
    for e in entry.edges:
        owner, kind, key, value, cls, length, name = e
        if cls == SCALAR:
            if (id(owner), key) in managed:
                continue
            out.append((owner, kind, key, G_SCALAR, value, name))
        elif cls == TENSOR:
            if (id(owner), kind, _key(key)) in rebound_ids:
                out.append((owner, kind, key, G_TSIG, _tensor_sig(value), name))
            else:
                out.append((owner, kind, key, G_IDENT, value, name))
                stable.append((value, name))
        elif length >= 0:
            out.append((owner, kind, key, G_LEN, (value, length), name))
        else:
            out.append((owner, kind, key, G_IDENT, value, name))
    seen: set = set()
    for t, name in stable:
        if id(t) in seen:
            continue
        seen.add(id(t))
        g = t.grad
        out.append((t, ATTR, "grad", G_GRAD, None if g is None else _tensor_sig(g), name + ".grad"))
        out.append((t, ATTR, "requires_grad", G_REQ, t.requires_grad, name + ".requires_grad"))
    return out


def check(guards: list[tuple]) -> str | None:
    """None if every guard holds, else the name of the first value that changed."""
    for owner, kind, key, mode, expect, name in guards:
        try:
            if kind == ATTR:
                v = getattr(owner, key)
            elif kind == CELL:
                v = owner.cell_contents
            else:
                v = owner[key]
        except Exception:  # noqa: BLE001  (gone: an attribute deleted, a key removed)
            return name
        if mode == G_IDENT:
            if v is not expect:
                return name
        elif mode == G_SCALAR:
            if v is not expect and not same_scalar(v, expect):
                return name
        elif mode == G_LEN:
            if v is not expect[0] or len(v) != expect[1]:
                return name
        elif mode == G_TSIG or mode == G_GRAD:
            if expect is None:
                if v is not None:
                    return name
            elif v is None or not isinstance(v, Tensor) or _tensor_sig(v) != expect:
                return name
        elif mode == G_REQ:
            if v != expect:
                return name
    return None


def compile_guards(guards: list[tuple]) -> Any:
    """The guards as one generated function (a few attribute loads and ``is`` tests per
    guard); it returns None, or on any failure what :func:`check` says."""
    if not guards:
        return lambda: None
    env: dict = {"_same": same_scalar, "_sig": _tensor_sig, "_Tensor": Tensor,
                 "_slow": lambda: check(guards) or "a value the function reads"}
    lines = ["def run():", "    try:"]
    for i, (owner, kind, key, mode, expect, name) in enumerate(guards):
        env[f"o{i}"], env[f"e{i}"], env[f"n{i}"] = owner, expect, name
        if kind == ATTR and isinstance(key, str) and key.isidentifier() and not (
                key.startswith("__") and key.endswith("__")):
            get = f"o{i}.{key}"
        elif kind == ATTR:
            env[f"k{i}"] = key
            get = f"getattr(o{i}, k{i})"
        elif kind == CELL:
            get = f"o{i}.cell_contents"
        else:
            env[f"k{i}"] = key
            get = f"o{i}[k{i}]"
        lines.append(f"        v = {get}")
        if mode == G_IDENT:
            lines.append(f"        if v is not e{i}: return n{i}")
        elif mode == G_SCALAR:
            lines.append(f"        if v is not e{i} and not _same(v, e{i}): return n{i}")
        elif mode == G_LEN:
            env[f"e{i}"], env[f"l{i}"] = expect
            lines.append(f"        if v is not e{i} or len(v) != l{i}: return n{i}")
        elif mode in (G_TSIG, G_GRAD):
            if expect is None:
                lines.append(f"        if v is not None: return n{i}")
            else:
                lines.append(f"        if v is None or not isinstance(v, _Tensor) or "
                             f"_sig(v) != e{i}: return n{i}")
        else:  # G_REQ
            lines.append(f"        if v != e{i}: return n{i}")
    lines += ["    except Exception:", "        return _slow()", "    return None"]
    exec(compile("\n".join(lines) + "\n", "<needle.jit guards>", "exec"), env)  # noqa: S102
    return env["run"]
