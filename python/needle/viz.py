"""See the graph: Graphviz pictures of the recorded graph and of its backward.

:func:`to_dot` turns the graph behind some tensors into Graphviz DOT text with no
dependency; :func:`render` writes it as SVG, PNG or PDF through Graphviz's ``dot``
program (``pip install 'needle[viz]'`` for the ``graphviz`` package, plus the ``dot``
program itself, e.g. ``apt-get install graphviz`` or ``brew install graphviz``).

Every node is one box: an op's name and arguments (``Summation(axes=(1,))``), then its
shape and dtype. Leaves are coloured by kind: a parameter (green), an input that
requires grad (yellow), a constant (grey), a graph-mode placeholder (orange, by name).
Edges run from an input to the op that uses it; a node used twice is drawn once.

``backward=True`` adds the gradient graph that ``backward()`` recorded (needle records
it whenever grad mode is on: gradients are graphs built with needle ops, so they can be
differentiated again), in red, with a dashed ``grad`` edge from each gradient to the
node it belongs to. By default those are the leaves' ``.grad``; inside
:class:`record_backward` every node's gradient is kept and shown. A gradient that
depends on nothing requiring grad is computed as a detached constant, so it appears as
one box with no graph behind it. Gradients of gradients get a third colour (purple).

>>> from needle import viz
>>> with viz.record_backward():                  # keep every node's gradient
...     loss.backward()
>>> text = viz.to_dot(loss, backward=True)       # DOT text, no dependency
>>> viz.render(loss, backward=True, path="loss.svg")

:class:`record_modules` remembers which ``nn.Module`` created each node, so that
``to_dot(..., group_by_module=True)`` draws one box around each module's nodes.
Graphs larger than ``max_nodes`` are drawn collapsed (runs of one op become one box).
"""

from __future__ import annotations

import gc
import inspect
import os
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy

from . import autograd
from ._array import as_numpy
from .autograd import Value
from .errors import DTypeError, GraphError, NeedleError

__all__ = [
    "to_dot", "render", "record_backward", "record_modules", "VizError", "GraphvizNotFound",
]


class VizError(NeedleError, ValueError):
    """A bad argument to :func:`to_dot` or :func:`render` (e.g. an unknown file type)."""


class GraphvizNotFound(NeedleError, RuntimeError):
    """Graphviz (the ``dot`` program or the ``graphviz`` package) is not installed."""


# ----------------------------------------------------------------------------------------------
# Recording: gradients of every node, and the module that created each node

_ADJOINTS_KEY = "_viz_adjoints"


class record_backward:
    """Inside this block, ``backward()`` keeps the gradient of *every* node for :func:`to_dot`.

    Without it, ``to_dot(y, backward=True)`` can only link the leaves to their ``.grad``.
    The gradients are stored on the tensor ``backward()`` was called on (the latest pass
    wins), so they live as long as it does. The engine pays one lookup per
    ``backward()`` call when this is off.

    Examples
    --------
    >>> with viz.record_backward():
    ...     loss.backward()
    >>> print(viz.to_dot(loss, backward=True))
    """

    def __enter__(self) -> record_backward:
        self._previous = autograd._BACKWARD_RECORD.sink
        autograd._BACKWARD_RECORD.sink = _store_adjoints
        return self

    def __exit__(self, *exc: Any) -> None:
        autograd._BACKWARD_RECORD.sink = self._previous


def _store_adjoints(output: Value, adjoints: dict) -> None:
    output.__dict__[_ADJOINTS_KEY] = dict(adjoints)


class _ModuleTag:
    """One recorded module: its dotted name, class name and enclosing module's tag."""

    __slots__ = ("name", "type_name", "parent")

    def __init__(self, name: str, type_name: str, parent: _ModuleTag | None) -> None:
        self.name = name
        self.type_name = type_name
        self.parent = parent

    def label(self) -> str:
        return f"{self.name}: {self.type_name}" if self.name else self.type_name

    def within(self, other: _ModuleTag) -> bool:
        tag: _ModuleTag | None = self
        while tag is not None:
            if tag is other:
                return True
            tag = tag.parent
        return False


# Weak keys: recording must not keep graphs or parameters alive.
_MODULE_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TENSOR_NAME: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensors_in(value: Any) -> list[Value]:
    """The needle Values inside nested tuples, lists and dicts."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Value):
            found.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


def _tag_created(output: Any, inputs: Any, tag: _ModuleTag) -> None:
    """Tag the nodes behind ``output`` that the module's forward created.

    The walk stops at the forward's own inputs and at nodes that another module (not
    one inside this one) created; nodes of inner modules were tagged first (their
    forward returned first) and are walked through, not re-tagged.
    """
    stop = {id(t) for t in _tensors_in(inputs)}
    stack = [t for t in _tensors_in(output) if id(t) not in stop]
    seen = {id(t) for t in stack}
    while stack:
        node = stack.pop()
        current = _MODULE_OF.get(node)
        if current is None:
            _MODULE_OF[node] = tag
        elif not current.within(tag):
            continue
        for inp in node.inputs:
            if id(inp) not in stop and id(inp) not in seen:
                seen.add(id(inp))
                stack.append(inp)


class record_modules:
    """Remember which module of ``model`` created each node, for ``group_by_module=True``.

    Every module inside ``model`` (and ``model`` itself) is wrapped so that, when its
    forward returns, the nodes it created are tagged with its dotted name (``modules.0``,
    as in ``state_dict``). Parameters and buffers are tagged with their owner and named
    in the picture. Use it as a context manager, or call it once and ``remove()`` later::

        with viz.record_modules(model):
            loss = loss_fn(model(X), y)
        viz.render(loss, group_by_module=True, path="model.svg")

    Each wrapped forward walks the nodes it created, so recording slows the forward; it
    is a tool for looking, not for training loops. A node created by a module's forward
    from a tensor that reached it other than as an argument (say, an attribute computed
    in an earlier call) is tagged with that module too.

    Parameters
    ----------
    model : nn.Module
        The model; its sub-modules are found as ``state_dict`` finds them.
    """

    def __init__(self, model: Any) -> None:
        from .nn import Module

        if not isinstance(model, Module):
            raise DTypeError(
                f"record_modules: expected an nn.Module, got {type(model).__name__}"
            )
        self._wrapped: list[tuple[Any, Any]] = []
        tags: dict[str, _ModuleTag] = {}
        done: set[int] = set()
        stack: list[tuple[str, Any, _ModuleTag | None]] = [("", model, None)]
        while stack:
            name, module, parent = stack.pop()
            if id(module) in done:
                continue
            done.add(id(module))
            tag = _ModuleTag(name, type(module).__name__, parent)
            tags[name] = tag
            self._wrap(module, tag)
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child, tag))
        for tensor_name, tensor in model._named_tensors():
            owner = tensor_name
            while owner and owner not in tags:
                owner = owner.rpartition(".")[0]
            _MODULE_OF[tensor] = tags.get(owner, tags[""])
            _TENSOR_NAME[tensor] = tensor_name

    def _wrap(self, module: Any, tag: _ModuleTag) -> None:
        own = module.__dict__.get("forward")
        inner = module.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            _tag_created(out, (args, kwargs), tag)
            return out

        module.__dict__["forward"] = forward
        self._wrapped.append((module, own))

    def remove(self) -> None:
        """Unwrap the modules (the tags already recorded stay)."""
        for module, own in reversed(self._wrapped):
            if own is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = own
        self._wrapped.clear()

    def __enter__(self) -> record_modules:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


# ----------------------------------------------------------------------------------------------
# Labels

_FILL = {
    "op": "#dbe9f6", "parameter": "#c7e9c0", "input (requires grad)": "#fff3b0",
    "constant": "#eeeeee", "placeholder": "#fdd0a2",
}
# Per gradient order (1: gradients, 2: gradients of gradients, ...): (op fill, leaf fill, line).
_GRAD_COLOURS = [("#fcbba1", "#fee0d2", "#cb181d"), ("#dadaeb", "#efedf5", "#6a51a3")]

_INIT_DEFAULTS: dict[type, list[tuple[str, Any]]] = {}


def _init_params(cls: type) -> list[tuple[str, Any]]:
    """(name, default) of the op class's constructor parameters, cached per class."""
    params = _INIT_DEFAULTS.get(cls)
    if params is None:
        params = []
        if cls.__init__ is not object.__init__:
            try:
                signature = inspect.signature(cls.__init__)
            except (TypeError, ValueError):
                signature = None
            if signature is not None:
                for p in list(signature.parameters.values())[1:]:
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                        params.append((p.name, p.default))
        _INIT_DEFAULTS[cls] = params
    return params


_SIMPLE = (int, float, bool, str, tuple, type(None))


def _short(value: Any) -> str:
    if isinstance(value, numpy.ndarray):
        return f"array{value.shape}"
    if isinstance(value, Value):
        return "Tensor"
    text = repr(value)
    return text if len(text) <= 32 else text[:31] + "..."


def _op_label(op: autograd.Op) -> str:
    """An op's name with the constructor arguments that differ from their defaults."""
    parts = []
    fields = op.__dict__
    for name, default in _init_params(type(op)):
        if name not in fields:
            continue
        value = fields[name]
        if default is not inspect.Parameter.empty and isinstance(value, _SIMPLE):
            if type(value) is type(default) and value == default:
                continue
        parts.append(f"{name}={_short(value)}")
    return f"{op.name}({', '.join(parts)})" if parts else op.name


def _describe_data(data: Any) -> str:
    if data is None:
        return "not computed"
    if isinstance(data, tuple):
        parts = {_describe_data(d) for d in data}
        return f"tuple of {len(data)} \u00d7 {parts.pop()}" if len(parts) == 1 else (
            f"tuple of {len(data)}")
    try:
        dtype = numpy.dtype(data.dtype).name
    except TypeError:
        dtype = str(data.dtype)
    return f"{tuple(data.shape)} {dtype}"


def _leaf_kind(node: Value) -> str:
    from .nn import Parameter

    if node.cached_data is None:
        return "placeholder"
    if isinstance(node, Parameter):
        return "parameter"
    return "input (requires grad)" if node.requires_grad else "constant"


def _leaf_value(node: Value) -> str:
    """`` = 1.5`` for a one-element constant, else nothing."""
    data = node.cached_data
    if isinstance(data, tuple) or data is None or numpy.prod(data.shape) != 1:
        return ""
    value = as_numpy(data).reshape(-1)[0].item()
    return f" = {value:g}" if isinstance(value, float) else f" = {value}"


def _node_lines(node: Value, show_shapes: bool) -> list[str]:
    if node.op is not None:
        lines = [_op_label(node.op)]
    else:
        kind = _leaf_kind(node)
        name = _TENSOR_NAME.get(node) or node.__dict__.get("_name")
        value = _leaf_value(node) if kind == "constant" else ""
        lines = [name, kind + value] if name else [kind + value]
    if show_shapes and not (node.op is None and node.cached_data is None):
        lines.append(_describe_data(node.cached_data))
    return lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ----------------------------------------------------------------------------------------------
# Collecting the graph


def _collect(roots: Iterable[Value], seen: dict, order: int) -> list[Value]:
    """Nodes behind ``roots`` not in ``seen``, inputs first; each is added to ``seen``."""
    found: list[Value] = []
    for root in roots:
        if root in seen:
            continue
        seen[root] = order
        stack = [(root, iter(root.inputs))]
        while stack:
            current, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen[child] = order
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                found.append(current)
    return found


def _gradients_of(tensor: Value) -> dict:
    """(node -> gradient) of the last recorded backward of ``tensor``, else of its leaves."""
    recorded = tensor.__dict__.get(_ADJOINTS_KEY)
    if recorded is not None:
        return recorded
    return {n: n.grad for n in _collect([tensor], {}, 0)
            if n.op is None and getattr(n, "grad", None) is not None}


class _Graph:
    """The nodes to draw, in topological order, with edges, gradient links and tags."""

    def __init__(self, tensors: list[Value], backward: Any, group_by_module: bool) -> None:
        self.order: dict[Value, int] = {}
        self.nodes: list[Value] = []
        self.links: list[tuple[Value, Value]] = []
        self.roots: list[Value] = list(tensors)
        for tensor in tensors:
            self.nodes.extend(_collect([tensor], self.order, 0))
            if backward and not isinstance(backward, Mapping):
                self._add_gradients(_gradients_of(tensor), self.order[tensor] + 1)
        if isinstance(backward, Mapping):
            self._add_gradients(backward, 1)
        if backward and not self.links:
            raise GraphError(
                "to_dot(backward=True): no gradients to draw: call backward() first (inside "
                "viz.record_backward() to keep every node's gradient, not only the leaves')"
            )
        self.tags: dict[Value, _ModuleTag] = {}
        if group_by_module:
            for node in self.nodes:
                tag = _MODULE_OF.get(node)
                if tag is not None:
                    self.tags[node] = tag
            if not self.tags:
                raise GraphError(
                    "to_dot(group_by_module=True): no node of this graph was created under "
                    "viz.record_modules(model); run the forward inside "
                    "`with viz.record_modules(model):` first"
                )

    def _add_gradients(self, grads: Mapping, level: int) -> None:
        for node, grad in grads.items():
            if not isinstance(grad, Value):
                continue
            if node not in self.order:
                self.nodes.extend(_collect([node], self.order, 0))
            self.nodes.extend(_collect([grad], self.order, level))
            self.links.append((node, grad))
            self.roots.append(grad)


# ----------------------------------------------------------------------------------------------
# Collapsing large graphs


class _Group:
    """A box in the picture: one node, or a run of nodes drawn as one."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: list[Value] = []


def _group_nodes(graph: _Graph, rule: str) -> dict[Value, _Group]:
    """Merge each node into the box of its only user where ``rule`` allows; a box is a path.

    ``rule`` is ``"op"`` (runs of the same op class) or ``"chain"`` (any run of ops).
    Only users of the node's own colour count (a forward node that a gradient also
    reads still continues its forward run), so a long chain and its backward become
    two boxes; gradients never feed forward nodes, so merging makes no cycle.
    """
    order, tags = graph.order, graph.tags
    users: dict[Value, int] = {}
    only_user: dict[Value, Value] = {}
    for node in graph.nodes:
        level = order[node]
        for inp in node.inputs:
            if order[inp] == level:
                users[inp] = users.get(inp, 0) + 1
                only_user[inp] = node
    same_op = rule == "op"
    group: dict[Value, _Group] = {}
    took_one: set = set()
    for node in graph.nodes:
        box = group.get(node)
        if box is None:
            box = group[node] = _Group()
        box.members.append(node)
        if node.op is None or users.get(node) != 1:
            continue
        user = only_user[node]
        if (user.op is None or user in took_one or tags.get(user) is not tags.get(node)
                or (same_op and type(user.op) is not type(node.op))):
            continue
        took_one.add(user)
        group[user] = box
    return group


# ----------------------------------------------------------------------------------------------
# DOT text


def _box_attrs(box: _Group, order: int, show_shapes: bool) -> str:
    members = box.members
    last = members[-1]
    if len(members) == 1:
        lines = _node_lines(last, show_shapes)
        kind = "op" if last.op is not None else _leaf_kind(last)
    else:
        ops = Counter(m.op.name for m in members)
        if len(ops) == 1:
            lines = [f"{last.op.name} \u00d7{len(members)}"]
        else:
            common = ", ".join(f"{name} \u00d7{n}" for name, n in ops.most_common(3))
            more = ", ..." if len(ops) > 3 else ""
            lines = [f"chain of {len(members)} ops", common + more]
        if show_shapes:
            lines.append(_describe_data(last.cached_data))
        kind = "op"
    attrs = [f"label={_quote(chr(10).join(lines))}"]
    if order == 0:
        attrs.append(f'fillcolor="{_FILL[kind]}"')
    else:
        op_fill, leaf_fill, line = _GRAD_COLOURS[min(order, len(_GRAD_COLOURS)) - 1]
        attrs.append(f'fillcolor="{op_fill if kind == "op" else leaf_fill}"')
        attrs.append(f'color="{line}"')
    if len(members) > 1:
        attrs.append("peripheries=2")
    return ", ".join(attrs)


def to_dot(
    *tensors: Value,
    backward: bool | Mapping = False,
    show_shapes: bool = True,
    max_nodes: int | None = 500,
    group_by_module: bool = False,
    title: str | None = None,
    rankdir: str = "TB",
) -> str:
    """Graphviz DOT text of the graph behind ``tensors`` (no dependency needed).

    Parameters
    ----------
    *tensors : Tensor
        The outputs to draw from (a list or tuple of them works too). Their graphs are
        drawn together; shared nodes appear once.
    backward : bool or mapping of Tensor to Tensor
        True: also draw the gradient graph of the last ``backward()`` call on each of
        ``tensors``, each gradient linked to its node by a dashed ``grad`` edge (every
        node's gradient inside :class:`record_backward`, else the leaves' ``.grad``).
        Outputs are handled in the order given, so list ``y`` before ``x.grad`` to show
        the gradient of a gradient in the third colour. A mapping ``{node: gradient}``
        draws exactly those (e.g. graph mode's ``dict(zip(xs, gradients(y, xs)))``).
    show_shapes : bool
        Put each node's shape and dtype under its op.
    max_nodes : int or None
        Beyond this many boxes, runs of the same op are drawn as one box labelled with
        the count; if that is not enough, any run of ops where each feeds only the next;
        then the nodes furthest from the outputs are left out. The title says which.
        None: never collapse.
    group_by_module : bool
        Draw a box around the nodes of each ``nn.Module`` (needs :class:`record_modules`
        around the forward), labelled with the module's dotted name.
    title : str, optional
        The picture's title (the collapsing note is added to it).
    rankdir : str
        Graphviz layout direction: ``"TB"`` (inputs on top) or ``"LR"`` (inputs left).

    Returns
    -------
    str
        A ``digraph``; nodes are ``n0, n1, ...`` in topological order.

    Raises
    ------
    DTypeError
        An argument that is not a needle Tensor.
    GraphError
        ``backward=True`` but no gradients were recorded, or ``group_by_module=True``
        without :class:`record_modules`.
    VizError
        ``max_nodes`` below 2 or an unknown ``rankdir``.
    """
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise VizError("to_dot: give at least one tensor to draw")
    for t in tensors:
        if not isinstance(t, Value):
            raise DTypeError(f"to_dot: expected needle Tensors, got {type(t).__name__}")
    if max_nodes is not None and max_nodes < 2:
        raise VizError(f"to_dot: max_nodes must be at least 2 (or None), got {max_nodes}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise VizError(f"to_dot: rankdir must be TB, LR, BT or RL, got {rankdir!r}")

    # The cyclic collector would rescan the whole graph many times while the boxes and
    # dicts below are allocated (most of the time on a 100,000-node chain); nothing here
    # makes cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _to_dot(list(tensors), backward, show_shapes, max_nodes, group_by_module,
                       title, rankdir)
    finally:
        if collecting:
            gc.enable()


# Edge segments (an edge crossing k ranks costs k - 1, as estimated by _layout_cost) beyond
# which Graphviz's dot takes minutes, so the picture is collapsed further. Measured on a
# busy 2-core machine, pictures of a chain or a model and its backward: 75 boxes (a 40-op
# chain) ~540, 0.2 s; MLPResNet with 2 blocks, 312 boxes ~2,800, 1.3 s; with 3 blocks, 447
# boxes ~5,200, 17 s; a 240-op chain whose two constants feed 120 ops, 425 boxes ~21,000,
# over 5 minutes.
_LAYOUT_BUDGET = 6_000


def _to_dot(tensors: list[Value], backward: Any, show_shapes: bool, max_nodes: int | None,
            group_by_module: bool, title: str | None, rankdir: str) -> str:
    graph = _Graph(tensors, backward, group_by_module)
    notes = []
    boxes = len(graph.nodes)
    group: dict | None = None
    if max_nodes is None or boxes <= max_nodes:
        group = {node: _Group() for node in graph.nodes}
        for node, box in group.items():
            box.members.append(node)
    kept = None
    if max_nodes is not None and (
            group is None or _layout_cost(graph, group, None) > _LAYOUT_BUDGET):
        rules = {"op": "runs of the same op", "chain": "runs of ops"}
        for rule in rules:
            group = _group_nodes(graph, rule)
            boxes = len({id(g) for g in group.values()})
            fits = boxes <= max_nodes and _layout_cost(graph, group, None) <= _LAYOUT_BUDGET
            if fits:
                break
        notes.append(f"{len(graph.nodes)} nodes drawn as {boxes} boxes: {rules[rule]} collapsed")
        if not fits:
            limit = min(max_nodes, boxes)
            while True:
                kept = _keep_nearest(graph, group, limit)
                if limit <= 2 or _layout_cost(graph, group, kept) <= _LAYOUT_BUDGET:
                    break
                limit //= 2
            why = "" if limit == max_nodes else (
                " (more would take Graphviz too long to lay out)")
            notes.append(f"only the {len(kept)} boxes nearest the outputs are drawn{why}")
    return _emit(graph, group, kept, show_shapes, title, notes, rankdir)


def _box_edges(graph: _Graph, group: dict, kept: set | None):
    """(source box, user box, level, free) of each edge between boxes, in drawing order;
    a box left out is the source ``None``. ``free``: a gradient reading a forward leaf."""
    for node in graph.nodes:
        box = group[node]
        if kept is not None and id(box) not in kept:
            continue
        level = graph.order[node]
        for inp in node.inputs:
            src = group[inp]
            if src is box:
                continue
            if kept is not None and id(src) not in kept:
                src = None
            # A gradient reading a forward leaf (a weight, a shared constant) is not ranked
            # against it: one leaf feeds ops all along the picture.
            free = bool(level) and inp.op is None and graph.order[inp] < level
            yield src, box, level, free


def _layout_cost(graph: _Graph, group: dict, kept: set | None) -> int:
    """Roughly how many edge segments dot will route: ranks by longest path over the edges
    that constrain ranks (as drawn: gradient edges upwards), sources just above their
    first user, then the ranks each edge crosses."""
    succ: dict[int, set[int]] = {}
    indegree: Counter = Counter()
    pairs: set[tuple[int, int]] = set()
    for src, box, level, free in _box_edges(graph, group, kept):
        a, b = id(src), id(box)
        pairs.add((a, b))
        if free:
            continue
        if level:
            a, b = b, a
        if b not in succ.setdefault(a, set()):
            succ[a].add(b)
            indegree[b] += 1
    rank: dict[int, int] = {}
    ready = [v for v in succ if indegree[v] == 0]
    for v in ready:
        rank[v] = 0
    while ready:
        v = ready.pop()
        for w in succ.get(v, ()):
            rank[w] = max(rank.get(w, 0), rank[v] + 1)
            indegree[w] -= 1
            if indegree[w] == 0:
                ready.append(w)
    for v, users in succ.items():
        if v not in indegree and users:   # a source: dot puts it just above its first user
            rank[v] = min(rank.get(w, 0) for w in users) - 1
    return sum(max(0, abs(rank.get(a, 0) - rank.get(b, 0)) - 1) for a, b in pairs)


def _keep_nearest(graph: _Graph, group: dict, max_nodes: int) -> set:
    """The ``max_nodes - 1`` boxes nearest the outputs (breadth first along inputs)."""
    inputs_of: dict[_Group, list[_Group]] = {}
    for node in graph.nodes:
        box = group[node]
        for inp in node.inputs:
            if group[inp] is not box:
                inputs_of.setdefault(box, []).append(group[inp])
    kept: dict[int, _Group] = {}
    queue = [group[r] for r in graph.roots]
    head = 0
    while head < len(queue) and len(kept) < max_nodes - 1:
        box = queue[head]
        head += 1
        if id(box) in kept:
            continue
        kept[id(box)] = box
        queue.extend(inputs_of.get(box, ()))
    return set(kept)


def _emit(graph: _Graph, group: dict, kept: set | None, show_shapes: bool,
          title: str | None, notes: list[str], rankdir: str) -> str:
    boxes: list[_Group] = []
    seen: set[int] = set()
    for node in graph.nodes:
        box = group[node]
        if id(box) not in seen and (kept is None or id(box) in kept):
            seen.add(id(box))
            boxes.append(box)
    names = {id(box): f"n{i}" for i, box in enumerate(boxes)}

    label = "\n".join(part for part in [title, *notes] if part)
    label_attr = f", labelloc=t, label={_quote(label)}" if label else ""
    out = ["digraph needle {",
           f'  graph [rankdir={rankdir}, fontname="Helvetica", fontsize=12{label_attr}];',
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
           'margin="0.1,0.04", height=0.3];',
           '  edge [fontname="Helvetica", fontsize=9, arrowsize=0.6];']

    clusters: dict[_ModuleTag, list[str]] = {}
    for box in boxes:
        line = f"  {names[id(box)]} [{_box_attrs(box, graph.order[box.members[0]], show_shapes)}];"
        tag = graph.tags.get(box.members[0])
        if tag is None:
            out.append(line)
        else:
            clusters.setdefault(tag, []).append(line)
    if clusters:
        out.extend(_emit_clusters(clusters))

    dropped = "dropped"
    dropped_used = False
    edges: Counter = Counter()
    order: list[tuple[str, str, int, bool]] = []
    for src, box, level, free in _box_edges(graph, group, kept):
        if src is None:
            key = (dropped, names[id(box)])
            dropped_used = True
        else:
            key = (names[id(src)], names[id(box)])
        if src is None or len(src.members) > 1 or len(box.members) > 1:
            if edges[key] == 0:
                order.append((key[0], key[1], level, free))
            edges[key] += 1
        else:
            order.append((key[0], key[1], level, free))
    # Gradients flow from the output back to the leaves, so edges into gradient nodes are
    # ranked upwards (written head first with dir=back): each gradient op sits next to the
    # forward nodes it reads, edges stay short, and dot lays large backward graphs out fast.
    for src, dst, level, free in order:
        attrs = []
        n = edges.get((src, dst), 0)
        if n > 1:
            attrs.append(f'label="\u00d7{n}"')
        if level:
            attrs.append(f'color="{_GRAD_COLOURS[min(level, len(_GRAD_COLOURS)) - 1][2]}"')
        if level and free:
            attrs.append("constraint=false")
        elif level:
            src, dst = dst, src
            attrs.append("dir=back")
        out.append(f"  {src} -> {dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    linked: set[tuple[str, str]] = set()
    for node, grad in graph.links:
        a, b = group[grad], group[node]
        if id(a) not in names or id(b) not in names:
            continue
        key = (names[id(a)], names[id(b)])
        if key in linked:
            continue
        linked.add(key)
        line = _GRAD_COLOURS[min(graph.order[grad], len(_GRAD_COLOURS)) - 1][2] if (
            graph.order[grad]) else "#555555"
        out.append(f'  {key[0]} -> {key[1]} [style=dashed, color="{line}99", fontcolor="{line}", '
                   'label="grad", penwidth=0.8, constraint=false];')
    if dropped_used:
        hidden = len(graph.nodes) - sum(len(b.members) for b in boxes)
        out.insert(4, f'  {dropped} [label="{hidden} more nodes not drawn", shape=note, '
                      'style=dashed];')
    out.append("}")
    return "\n".join(out) + "\n"


def _emit_clusters(clusters: dict[_ModuleTag, list[str]]) -> list[str]:
    """Nested ``subgraph cluster_*`` blocks, one per module, following the module tree."""
    children: dict[_ModuleTag | None, list[_ModuleTag]] = {}
    every: list[_ModuleTag] = []
    for tag in clusters:
        while tag is not None and tag not in every:
            every.append(tag)
            children.setdefault(tag.parent, []).append(tag)
            tag = tag.parent
    for kids in children.values():
        kids.sort(key=lambda t: t.name)
    ids = {tag: i for i, tag in enumerate(every)}
    out: list[str] = []
    # Depth-first over the module tree with an explicit stack of (tag, depth, entering).
    stack = [(t, 1, True) for t in reversed(children.get(None, []))]
    while stack:
        tag, depth, entering = stack.pop()
        pad = "  " * depth
        if not entering:
            out.append(pad + "}")
            continue
        out.append(f"{pad}subgraph cluster_{ids[tag]} {{")
        out.append(f'{pad}  label={_quote(tag.label())}; style="rounded,dashed"; '
                   'color="#888888"; fontsize=10;')
        out.extend(pad + "  " + line.lstrip() for line in clusters.get(tag, []))
        stack.append((tag, depth, False))
        stack.extend((t, depth + 1, True) for t in reversed(children.get(tag, [])))
    return out


# ----------------------------------------------------------------------------------------------
# Rendering

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def render(*tensors: Value, path: str | os.PathLike = "graph.svg", **kw: Any) -> str:
    """Draw the graph behind ``tensors`` into an SVG, PNG or PDF file (by the extension).

    Uses Graphviz's ``dot`` program through the ``graphviz`` Python package
    (``pip install 'needle[viz]'``). A ``.dot`` or ``.gv`` path writes the DOT text
    itself and needs neither.

    Parameters
    ----------
    *tensors : Tensor
        As for :func:`to_dot`.
    path : str or path-like
        The file to write; its extension picks the format.
    **kw
        Passed to :func:`to_dot` (``backward``, ``max_nodes``, ``group_by_module``, ...).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    GraphvizNotFound
        ``dot`` or the ``graphviz`` package is missing; the message says how to install
        it, and the DOT text has been written next to ``path`` (same name, ``.dot``).
    VizError
        An extension other than .svg, .png, .pdf, .dot, .gv.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS and suffix not in (".dot", ".gv"):
        raise VizError(
            f"render: cannot tell the format of {str(path)!r}: use .svg, .png, .pdf, or .dot"
        )
    text = to_dot(*tensors, **kw)
    if suffix in (".dot", ".gv"):
        path.write_text(text)
        return str(path)
    fallback = path.with_suffix(".dot")
    try:
        import graphviz
    except ImportError:
        fallback.write_text(text)
        raise GraphvizNotFound(
            "render: the Python package 'graphviz' is not installed: pip install 'needle[viz]' "
            "(or pip install graphviz; Graphviz's dot program is needed too: apt-get install "
            f"graphviz, or brew install graphviz); the DOT text was written to {fallback} "
            "instead"
        ) from None
    try:
        data = graphviz.Source(text).pipe(format=_FORMATS[suffix])
    except graphviz.ExecutableNotFound:
        fallback.write_text(text)
        raise GraphvizNotFound(
            "render: Graphviz's 'dot' program was not found on PATH. Install it: "
            "apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS), or "
            f"conda install graphviz. The DOT text was written to {fallback} instead; "
            f"render it later with: dot -T{_FORMATS[suffix]} {fallback} -o {path}"
        ) from None
    except graphviz.CalledProcessError as e:
        fallback.write_text(text)
        raise VizError(f"render: dot failed ({e}); the DOT text is in {fallback}") from None
    path.write_bytes(data)
    return str(path)
