"""Graph mode in the style of UCSD CSE 234 PA1, on needle's own engine.

``Variable("x")`` is a needle Tensor with no data. Needle ops applied to it build nodes
without computing them (``Value.make_from_op`` defers whenever an input has no data), so an
expression over Variables *is* a static graph. :class:`Evaluator` runs that graph on a feed
into a fresh dict of values, never into the nodes, so one graph serves many feeds (and
threads). :func:`gradients` builds gradient *nodes* with the ops' own ``gradient`` methods
through the engine's ``reverse_pass``: gradients of gradients come for free.

Example
-------
>>> from needle import graph as ad
>>> x1, x2 = ad.Variable("x1"), ad.Variable("x2")
>>> y = x1 * x2 + x1
>>> g1, g2 = ad.gradients(y, [x1, x2])
>>> ad.Evaluator([y, g1, g2]).run({x1: np.array([2.0]), x2: np.array([3.0])})
[array([8.]), array([4.]), array([2.])]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from . import ops
from .backend_selection import default_device, tensor_dtype
from .core import Value, common_device, compute, find_topo_sort, realize, reverse_pass, walk
from .errors import NeedleError
from .grad_mode import enable_grad
from .jit import _graph as jit_graph
from .ops import ops_graph
from .tensor import Tensor, check_device

# Compiled schedules an Evaluator keeps (one per signature of the feeds), oldest out first.
_MAX_SCHEDULES = 8

__all__ = [
    "Variable", "Evaluator", "gradients", "topological_sort", "node_name",
    "add", "sub", "mul", "div", "add_by_const", "mul_by_const", "div_by_const", "matmul",
    "transpose", "relu", "sqrt", "log", "exp", "power", "greater", "zeros_like", "ones_like",
    "sum_op", "mean", "softmax", "logsoftmax", "layernorm", "broadcast", "expand_as",
    "matmul_layernorm", "matmul_softmax",
]


class Variable(Tensor):
    """A placeholder node: a Tensor with a name and no data, fed at ``Evaluator.run``.

    Parameters
    ----------
    name : str
        Shown in the names of the nodes built from it and in error messages.
    """

    __slots__ = ()

    def __init__(self, name: str) -> None:
        self._init(None, (), cached_data=None, requires_grad=True)
        self.name = name


# ----------------------------------------------------------------------------------------------
# Node names: built from the inputs' names by a per-op-class format table


def _num(c: Any) -> str:
    return f"{c:g}" if isinstance(c, float) else str(c)


def _axes(op: Any, attr: str = "axes") -> str:
    axes = getattr(op, attr, None)
    return "" if axes is None else f", dim={axes}"


def _fmt_add(node: Value, n: list) -> str:
    b = node.inputs[1]
    if isinstance(b.op, ops.Negate):
        return f"({n[0]}-{node_name(b.inputs[0])})"
    return f"({n[0]}+{n[1]})"


_FORMATS: dict[type, Callable[[Value, list], str]] = {
    ops.EWiseAdd: _fmt_add,
    ops.EWiseMul: lambda node, n: f"({n[0]}*{n[1]})",
    ops.EWiseDiv: lambda node, n: f"({n[0]}/{n[1]})",
    ops.EWisePow: lambda node, n: f"({n[0]}**{n[1]})",
    ops.MatMul: lambda node, n: f"({n[0]}@{n[1]})",
    ops.AddScalar: lambda node, n: f"({n[0]}+{_num(node.op.scalar)})",
    ops.MulScalar: lambda node, n: f"({n[0]}*{_num(node.op.scalar)})",
    ops.DivScalar: lambda node, n: f"({n[0]}/{_num(node.op.scalar)})",
    ops.PowerScalar: lambda node, n: f"({n[0]}**{_num(node.op.scalar)})",
    ops.Negate: lambda node, n: f"(-{n[0]})",
    ops.Greater: lambda node, n: (f"({n[0]}>{n[1]})" if len(n) == 2
                                  else f"({n[0]}>{_num(node.op.scalar)})"),
    ops.Transpose: lambda node, n: (f"transpose({n[0]})" if node.op.axes is None
                                    else f"transpose({n[0]}, {node.op.axes[0]}, "
                                         f"{node.op.axes[1]})"),
    ops.Summation: lambda node, n: f"sum({n[0]}{_axes(node.op)})",
    ops.Mean: lambda node, n: f"mean({n[0]}{_axes(node.op)})",
    ops.Softmax: lambda node, n: f"softmax({n[0]}, dim={node.op.axis})",
    ops.LogSoftmax: lambda node, n: f"logsoftmax({n[0]}, dim={node.op.axis})",
    # Un-broadcasting only undoes numpy broadcasting; showing it would bury the math.
    ops.SumLike: lambda node, n: n[0] if node.op.axes is None else f"sum({n[0]}{_axes(node.op)})",
    ops.BroadcastLike: lambda node, n: f"expand_as({n[0]}, {n[1]})",
    # The engine's gradient cast (a no-op unless the feeds mix dtypes) is not math either.
    ops.CastLike: lambda node, n: n[0],
    ops.ZerosLike: lambda node, n: f"zeros_like({n[0]})",
    ops.OnesLike: lambda node, n: f"ones_like({n[0]})",
    ops.BroadcastTo: lambda node, n: f"broadcast({n[0]}, {node.op.shape})",
    ops.Reshape: lambda node, n: f"reshape({n[0]}, {node.op.shape})",
    ops_graph.LayerNorm: lambda node, n: f"layernorm({n[0]}, {node.op.normalized_shape})",
    ops.MatMulLayerNorm: lambda node, n: (f"matmul_layernorm({n[0]}, {n[1]}, "
                                          f"{node.op.normalized_shape})"),
    ops.MatMulSoftmax: lambda node, n: f"matmul_softmax({n[0]}, {n[1]}, dim={node.op.axis})",
}

# Shared subgraphs make names of gradient graphs grow fast; beyond this they are elided.
_MAX_NAME = 300


def _snake(op: Any) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(op).__name__).lower()


def _leaf_name(node: Value) -> str:
    data = node._data
    if data is None:
        return "placeholder"
    if isinstance(data, tuple):
        return "const_tuple"
    if data.size == 1:
        return _num(node._device.to_numpy(data).reshape(-1)[0].item())
    return f"const{tuple(data.shape)}"


def _own_name(node: Value, names: list) -> str:
    if node.op is None:
        return _leaf_name(node)
    fmt = _FORMATS.get(type(node.op))
    name = fmt(node, names) if fmt else f"{_snake(node.op)}({', '.join(names)})"
    return name if len(name) <= _MAX_NAME else f"{_snake(node.op)}(...)"


def node_name(node: Value) -> str:
    """The node's readable name, e.g. ``(x1*x2)``: set explicitly or built from its inputs."""
    cache = node.__dict__
    if "_name" in cache:
        return cache["_name"]
    # Post-order over the nodes not yet named, so every node's inputs are named first.
    for current in walk((node,), _unnamed):
        names = [x.__dict__["_name"] for x in current.inputs]
        current.__dict__["_name"] = _own_name(current, names)
    return cache["_name"]


def _unnamed(node: Value) -> bool:
    return "_name" not in node.__dict__


def _get_name(node: Value) -> str:
    return node_name(node)


def _set_name(node: Value, value: str) -> None:
    node.__dict__["_name"] = str(value)


def _is_symbolic(node: Value) -> bool:
    """True when ``node`` depends on a placeholder, i.e. has no value outside an Evaluator."""
    if node._data is not None:
        return False
    return any(n.op is None for n in walk((node,), _no_data))


def _no_data(node: Value) -> bool:
    return node._data is None


def symbolic_repr(node: Value) -> str | None:
    """How a graph node prints (``needle.graph.Node((x1*x2))``), or None for a tensor with data.

    ``Tensor.__repr__`` asks this only for tensors whose data is not computed.
    """
    if not _is_symbolic(node):
        return None
    kind = "Variable" if isinstance(node, Variable) else "Node"
    return f"needle.graph.{kind}({node_name(node)})"


# ----------------------------------------------------------------------------------------------
# Traversal, evaluation and gradients


def topological_sort(nodes: Value | Iterable[Value]) -> list[Value]:
    """Every node behind ``nodes``, inputs before the nodes that use them.

    Parameters
    ----------
    nodes : node or iterable of nodes
    """
    if isinstance(nodes, Value):
        nodes = [nodes]
    return find_topo_sort(list(nodes))


def _order_until(nodes: list, fed: dict) -> tuple[list, list]:
    """Topological order of what computing ``nodes`` needs (not descending into fed nodes),
    and the placeholders in it that have no feed."""
    order = walk(nodes, stop=fed)
    missing = [n for n in order if n.op is None and n._data is None and n not in fed]
    return order, missing


def _names(nodes: Iterable[Value]) -> str:
    return ", ".join(repr(node_name(n)) for n in nodes)


class Evaluator:
    """Evaluate graph nodes on feeds: ``Evaluator([y, g]).run({x: array})``.

    Parameters
    ----------
    eval_nodes : list of nodes
        The nodes whose values ``run`` returns, in this order.
    device : Device, optional
        Where fed arrays are placed; ``default_device()`` when omitted.
    compile : bool
        Run through ``ndl.jit``'s compiler (the default): the first run of each signature
        of the feeds (shapes, dtypes) evaluates node by node and builds a schedule that
        later runs replay, with the same results bit for bit. False always evaluates node
        by node.
    """

    def __init__(self, eval_nodes: Iterable[Value], device: Any = None,
                 compile: bool = True) -> None:  # noqa: A002  (the name users expect)
        self.eval_nodes = list(eval_nodes)
        for n in self.eval_nodes:
            if not isinstance(n, Value):
                raise TypeError(f"Evaluator: eval_nodes must be graph nodes, got "
                                f"{type(n).__name__}")
        if device is not None:
            check_device(device, "Evaluator")
        self.device = device
        self._graph: set | None = None
        self.compile = compile
        self._schedules: dict = {}
        self._fed_order: dict = {}

    def _array(self, node: Value, value: Any) -> tuple:
        """``(array, device)`` of a feed."""
        if isinstance(value, Tensor):
            return realize(value), value.device
        arr = numpy.asarray(value)
        device = self.device or default_device()
        # Float feeds keep their dtype (float64 in, float64 out); ints/bools become floats.
        dtype = arr.dtype if arr.dtype.kind == "f" else tensor_dtype(None, arr.dtype)
        return device.asarray(arr, dtype), device

    def run(self, input_values: dict) -> list[numpy.ndarray]:
        """Compute the eval nodes given ``{Variable: array}``; returns numpy arrays.

        Every run evaluates into a fresh dict: nothing is stored in the graph.

        Raises
        ------
        ValueError
            A Variable the eval nodes need has no feed, or a fed key is not in the graph.
        ShapeError, DTypeError
            From the op that cannot accept the fed shapes or dtypes (its node is named).
        """
        if self._graph is None:
            self._graph = set(find_topo_sort(self.eval_nodes))
        extra = [k for k in input_values if k not in self._graph]
        if extra:
            names = ", ".join(repr(node_name(k)) if isinstance(k, Value) else repr(k)
                              for k in extra)
            raise ValueError(f"Evaluator.run: fed {names}, which is not part of the graph "
                             "of the evaluated nodes")
        fed_key = frozenset(id(k) for k in input_values)
        cached = self._fed_order.get(fed_key) if self.compile else None
        if cached is not None:
            order, fed_order = cached
            arrays = {node: self._array(node, input_values[node]) for node in fed_order}
            key = jit_graph.signature(fed_order, arrays)
            schedule = self._schedules.get(key)
            if schedule is not None:
                out = schedule.run(arrays)
                if out is not None:
                    return out
        else:
            order, missing = _order_until(self.eval_nodes, input_values)
            if missing:
                raise ValueError(f"Evaluator.run: no value fed for Variable "
                                 f"{_names(missing)}; add it to input_values")
            fed_order = [node for node in order if node in input_values]
            arrays = {node: self._array(node, input_values[node]) for node in fed_order}
            if self.compile:
                self._fed_order[fed_key] = (order, fed_order)
        values: dict = {}
        devices: dict = {}
        for node in order:
            if node in arrays:
                values[node], devices[node] = arrays[node]
            elif node.op is None:
                values[node], devices[node] = node._data, node._device
            else:
                try:
                    device = common_device(node.op, [_Fed(devices[x]) for x in node.inputs])
                    values[node] = compute(node.op, [values[x] for x in node.inputs], device)
                    devices[node] = device
                except NeedleError as e:
                    raise type(e)(f"{e} [in graph node {node_name(node)!r}]") from e
        if self.compile:
            schedule = jit_graph.build(order, self.eval_nodes, arrays, values, devices)
            if schedule is not None:
                if len(self._schedules) >= _MAX_SCHEDULES:
                    self._schedules.pop(next(iter(self._schedules)))
                self._schedules[jit_graph.signature(fed_order, arrays)] = schedule
        return [devices[n].to_numpy(values[n]) for n in self.eval_nodes]


class _Fed:
    """A stand-in with the device of a computed value (for ``core.common_device``)."""

    __slots__ = ("_device",)

    def __init__(self, device: Any) -> None:
        self._device = device


def gradients(output_node: Value, nodes: Iterable[Value]) -> list[Tensor]:
    """Gradient nodes of ``output_node`` w.r.t. each of ``nodes``.

    The seed is ``ones_like(output_node)`` (so a non-scalar output is summed); partial
    adjoints from all paths are summed; a node the output does not depend on gets
    ``zeros_like(node)``. The results are ordinary nodes: differentiate them again.
    """
    nodes = list(nodes)
    wanted = set(nodes)
    with enable_grad():
        grads = reverse_pass(output_node, ops.ones_like(output_node), wanted)
        return [grads[n] if n in grads else ops.zeros_like(n) for n in nodes]


# ----------------------------------------------------------------------------------------------
# The CSE 234 op set, as thin functions over needle ops


def add(a: Tensor | float, b: Tensor | float) -> Tensor:
    """``a + b`` (nodes or numbers, numpy broadcasting)."""
    return a + b


def sub(a: Tensor | float, b: Tensor | float) -> Tensor:
    """``a - b``."""
    return a - b


def mul(a: Tensor | float, b: Tensor | float) -> Tensor:
    """``a * b`` element-wise."""
    return a * b


def div(a: Tensor | float, b: Tensor | float) -> Tensor:
    """``a / b`` element-wise."""
    return a / b


def add_by_const(a: Tensor, c: float) -> Tensor:
    """``a + c`` for a number ``c``."""
    return ops.AddScalar(c)(a)


def mul_by_const(a: Tensor, c: float) -> Tensor:
    """``a * c`` for a number ``c``."""
    return ops.MulScalar(c)(a)


def div_by_const(a: Tensor, c: float) -> Tensor:
    """``a / c`` for a number ``c``."""
    return ops.DivScalar(c)(a)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product, 2-D or batched (numpy ``matmul`` broadcasting of batch dims)."""
    return ops.MatMul()(a, b)


def transpose(a: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap dims ``dim0`` and ``dim1`` (negative allowed)."""
    return ops.Transpose((dim0, dim1))(a)


def relu(a: Tensor) -> Tensor:
    """``max(a, 0)``."""
    return ops.relu(a)


def sqrt(a: Tensor) -> Tensor:
    """Element-wise square root."""
    return ops.sqrt(a)


def log(a: Tensor) -> Tensor:
    """Element-wise natural log."""
    return ops.log(a)


def exp(a: Tensor) -> Tensor:
    """Element-wise exponential."""
    return ops.exp(a)


def power(a: Tensor, exponent: float | Tensor) -> Tensor:
    """``a ** exponent`` for a number (or a node) ``exponent``."""
    if isinstance(exponent, Tensor):
        return ops.EWisePow()(a, exponent)
    return ops.PowerScalar(exponent)(a)


def greater(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where ``a > b`` else 0.0; no gradient."""
    return ops.greater(a, b)


def zeros_like(a: Tensor) -> Tensor:
    """Zeros of ``a``'s shape and dtype."""
    return ops.zeros_like(a)


def ones_like(a: Tensor) -> Tensor:
    """Ones of ``a``'s shape and dtype."""
    return ops.ones_like(a)


def sum_op(a: Tensor, dim: int | tuple, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (int or tuple, negative allowed)."""
    return ops.Summation(dim, keepdim)(a)


def mean(a: Tensor, dim: int | tuple, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (int or tuple, negative allowed)."""
    return ops.Mean(dim, keepdim)(a)


def softmax(a: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable softmax along ``dim``."""
    return ops.Softmax(dim)(a)


def logsoftmax(a: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable log-softmax along ``dim`` (for cross-entropy losses)."""
    return ops.LogSoftmax(dim)(a)


def layernorm(a: Tensor, normalized_shape: int | tuple, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims (biased variance, no affine)."""
    return ops_graph.layernorm(a, normalized_shape, eps)


def broadcast(a: Tensor, input_shape: tuple, target_shape: tuple) -> Tensor:
    """Broadcast ``a`` (of ``input_shape``) to ``target_shape``; the gradient sums back."""
    return ops_graph.broadcast(a, input_shape, target_shape)


def expand_as(a: Tensor, b: Tensor) -> Tensor:
    """Broadcast ``a`` to ``b``'s shape (``b`` gets no gradient)."""
    return ops_graph.expand_as(a, b)


def matmul_layernorm(a: Tensor, b: Tensor, normalized_shape: int | tuple,
                     eps: float = 1e-5) -> Tensor:
    """``layernorm(a @ b)`` as one fused node."""
    return ops.matmul_layernorm(a, b, normalized_shape, eps)


def matmul_softmax(a: Tensor, b: Tensor, dim: int = -1) -> Tensor:
    """``softmax(a @ b, dim)`` as one fused node."""
    return ops.matmul_softmax(a, b, dim)


# How a tensor without data prints (``needle.graph.Node((x1*x2))``), and its ``name``.
Tensor._symbolic_repr = symbolic_repr
Tensor.name = property(_get_name, _set_name, doc="A readable name built from the graph, "
                       "e.g. ``(x1*x2)`` (see ``needle.graph``); assignable.")
