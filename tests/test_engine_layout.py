"""The shape of the house: the engine split by concern with no import cycles, the backend
decided in one module, the ops free of numpy compute calls, and ``needle.autograd`` the
course's face of the engine (``TENSOR_COUNTER`` live, ``LAZY_MODE`` settable)."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import numpy as np

import needle as ndl
from needle import autograd, core

PACKAGE = Path(ndl.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """The needle modules ``name`` imports anywhere in its code (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1])
                target = base + ("." + node.module if node.module else "")
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            found.update(subs)
            if len(subs) < len(node.names) and target in modules:
                found.add(target)
    found.discard(name)
    return found


def test_no_import_cycles_in_needle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict = {}
    cycle: list = []

    def visit(start: str) -> None:
        stack = [(start, iter(sorted(graph[start])))]
        state[start] = "open"
        path = [start]
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == "open":
                    cycle.extend(path[path.index(child):] + [child])
                    return
                if child not in state:
                    state[child] = "open"
                    path.append(child)
                    stack.append((child, iter(sorted(graph[child]))))
                    break
            else:
                stack.pop()
                path.pop()
                state[node] = "done"

    for name in sorted(graph):
        if name not in state and not cycle:
            visit(name)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_engine_modules_import_neither_ops_nor_graph():
    modules = _modules()
    for name in ("needle.core", "needle.tensor", "needle.grad_mode", "needle.anomaly",
                 "needle.autograd"):
        imported = _imports(name, modules[name], modules)
        bad = {m for m in imported if m.startswith(("needle.ops", "needle.graph"))}
        assert not bad, f"{name} imports {bad}"


def test_only_backend_selection_knows_the_backend():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "backend_selection.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id == "BACKEND":
                # needle/__init__ re-exports it; nobody else reads it.
                assert path == PACKAGE / "__init__.py", f"{path} reads BACKEND"
            if isinstance(node, ast.Attribute) and node.attr == "BACKEND":
                raise AssertionError(f"{path} reads .BACKEND")


# numpy functions the ops may call: host-side facts (dtypes, shapes) and the boundary
# (user values entering a Tensor, index lists becoming index arrays).
HOST_SIDE = {"dtype", "result_type", "promote_types", "broadcast_shapes", "asarray"}


def test_ops_make_no_numpy_compute_call():
    for path in sorted((PACKAGE / "ops").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if isinstance(owner, ast.Name) and owner.id in ("numpy", "np"):
                    assert node.func.attr in HOST_SIDE, (
                        f"{path.name}:{node.lineno} calls numpy.{node.func.attr}; compute "
                        "through self.xp instead")


def test_tensor_counter_is_live_and_settable():
    gc.collect()
    start = autograd.TENSOR_COUNTER
    xs = [ndl.Tensor([1.0]) for _ in range(5)]
    y = xs[0] + xs[1]
    assert autograd.TENSOR_COUNTER == start + 6
    from needle.autograd import TENSOR_COUNTER

    assert TENSOR_COUNTER == start + 6
    del xs, y
    assert autograd.TENSOR_COUNTER == start
    autograd.TENSOR_COUNTER = 100
    z = ndl.Tensor([2.0])
    assert autograd.TENSOR_COUNTER == 101
    del z
    autograd.TENSOR_COUNTER = start


def test_lazy_mode_is_switched_through_the_face():
    x = ndl.Tensor([1.0, 2.0])
    assert autograd.LAZY_MODE is False and core.LAZY_MODE is False
    autograd.LAZY_MODE = True
    try:
        assert core.LAZY_MODE is True
        y = x * 3.0
        assert y.cached_data is None
    finally:
        autograd.LAZY_MODE = False
    assert core.LAZY_MODE is False
    np.testing.assert_array_equal(y.numpy(), [3.0, 6.0])


def test_one_traversal_helper_orders_inputs_first():
    a = ndl.Tensor([1.0])
    b = a + a
    c = b * b
    order = autograd.walk([c])
    assert order == autograd.find_topo_sort([c]) and order[-1] is c and order[0] is a
    assert len(order) == 3  # a shared input is visited once
    deep = a
    for _ in range(50_000):
        deep = deep * 1.0
    assert len(autograd.walk([deep])) == 50_001  # no recursion


def test_cached_data_is_a_view_of_the_tensors_memory():
    t = ndl.Tensor(np.zeros((2, 3)), dtype="float64")
    view = t.realize_cached_data()
    assert view is t.realize_cached_data()  # one object while the data stays the same
    view.flat[4] += 1.0  # the course's finite differences write through it
    assert t.numpy()[1, 1] == 1.0
    assert isinstance(t.cached_data, ndl.NDArray)
