"""The graph core: Op, Value, the one traversal helper and the reverse pass.

Every op result remembers its ``op`` and ``inputs``; ``reverse_pass`` walks that graph
from an output in reverse topological order and builds the adjoints with the ops' own
``gradient`` methods. Nothing here recurses over the graph, so chains of 100,000 ops work.

This module imports neither ``needle.ops`` nor ``needle.graph``: the few ops the reverse
pass itself needs (summing tuple adjoints, casting a gradient to its input's dtype) are
registered into :data:`ENGINE_OPS` by ``needle.ops`` when it loads.

A value holds its data raw, as an array of its device's namespace (``_data``, a
``numpy.ndarray`` on the cpu devices), and its device (``_device``). ``Value.cached_data``
shows the data as the backend's boundary type (an ``NDArray`` view on the default backend).
"""

from __future__ import annotations

import gc
import operator
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

import numpy

from ._fp import call_quietly, quiet_compute, run_quietly
from .backend_selection import default_device, from_boundary, to_boundary
from .errors import DeviceError, GraphError, ShapeError
from .grad_mode import GRAD_MODE, OFF_THREADS

__all__ = [
    "LAZY_MODE", "Op", "Value", "PENDING", "ENGINE_OPS", "live_values", "make_value",
    "compute", "walk", "find_topo_sort", "topo_sort_dfs", "sum_node_list", "reverse_pass",
    "queue_callback", "compute_gradient_of_variables",
]

# When True, ops build nodes and compute only on ``realize_cached_data()``.
LAZY_MODE = False
# In-place writes so far (needle.inplace): the clock that new Values remember in ``_epoch``
# (:func:`stamp`); while it is 0 the engine makes no in-place check at all.
INPLACE_WRITES = 0
# [jit hook] needle.jit's recorder while some thread traces a call, else None. The engine
# reports new leaves, data writes, data reads and its own copies to it (one global test
# each when off); op results reach it as an observer in OBSERVERS.
TRACER: Any = None


def live_values() -> int:
    """The number of live Values (the course's ``TENSOR_COUNTER``), counted when asked:
    the engine pays nothing per op for it (no ``__del__``). A Value freed by reference
    counting is gone at once; one caught in a reference cycle counts until the cycle
    collector frees it, exactly as a counter decremented in ``__del__`` would."""
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), Value))


class _Pending:
    """The "device" of a value that has no data yet: a graph-mode placeholder, or a node
    built from one (or in lazy mode). An op with such an input builds a node instead of
    computing; the eager path checks this once per op, through the devices it compares
    anyway."""

    name = "pending"
    xp = None

    def __repr__(self) -> str:
        return "pending()"


PENDING = _Pending()


class _EngineOps:
    """Ops the reverse pass needs, registered by ``needle.ops`` (which imports this module).

    ``tuple_adjoint(node, partials)`` sums the partial adjoints of a tuple node and
    ``in_dtype_of(grad, inp)`` casts a gradient to its input's dtype.
    """

    tuple_adjoint: Callable[[Any, list], Any] | None = None
    in_dtype_of: Callable[[Any, Any], Any] | None = None
    # needle.inplace, once an in-place op has run (INPLACE_WRITES > 0): redirect users of
    # rebased tensors, and check a gradient's saved values before it is built.
    inplace_resolve: Callable[[list], None] | None = None
    inplace_prepare: Callable[[Any], bool] | None = None
    inplace_gradient: Callable[[Any, Any, Callable], tuple] | None = None


ENGINE_OPS = _EngineOps()

# Callables ``observer(op, inputs, value)`` run on every op result (anomaly detection adds
# one while it is on, a tracer may add one); the eager path checks this list is empty.
OBSERVERS: list = []
# Callables ``wrapper(node, grad, gradient)`` around every op's gradient in the reverse
# pass (anomaly detection); each calls ``gradient(node, grad)`` to get the tuple.
GRADIENT_WRAPPERS: list = []


# ----------------------------------------------------------------------------------------------
# Ops


class Op:
    """Operator definition: ``compute`` on arrays, ``gradient`` with needle ops.

    ``compute`` calls the functions of ``self.xp``, the array namespace of its operands'
    device (``xp.add(a, b)``, ``xp.matmul(a, b)``), never numpy directly; the engine sets
    ``xp`` before each call (numpy, the class default, costs nothing to keep).
    """

    # The namespace compute uses; set by :func:`compute` for operands of another device.
    xp: Any = numpy
    # Set by TupleGetItem: the engine then accumulates tuple adjoints element-wise.
    tuple_index: int | None = None
    # Set by MakeTensorTuple: the length of its (tuple) result is the number of inputs.
    builds_tuple_of_inputs = False

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError()

    def compute(self, *args: Any) -> Any:
        """Calculate the forward pass of the operator on backend arrays."""
        raise NotImplementedError()

    def gradient(self, out_grad: Value, node: Value) -> Value | tuple[Value | None, ...]:
        """Vector-Jacobian product for each input, built from needle ops (None: no gradient)."""
        raise NotImplementedError()

    def gradient_as_tuple(self, out_grad: Value, node: Value) -> tuple:
        """Convenience method to always return a tuple from the gradient call."""
        output = self.gradient(out_grad, node)
        if isinstance(output, tuple):
            return output
        if isinstance(output, list):
            return tuple(output)
        return (output,)

    @property
    def name(self) -> str:
        """The op's class name, e.g. ``EWiseAdd`` (shown in errors)."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.name


def compute(op: Op, arrays: Any, device: Any) -> Any:
    """``op.compute(*arrays)`` in ``device``'s namespace, with numpy's FP warnings off.

    The one way an op is computed: eagerly (inlined in :func:`make_value`), on lazy
    realisation, by ``graph.Evaluator``.
    """
    xp = device.xp
    if op.xp is not xp:
        op.xp = xp
    data = call_quietly(op.compute, *arrays)
    if data.__class__ is not _ndarray:
        data = as_array(data, xp)
    return data


_ndarray = numpy.ndarray


def as_array(data: Any, xp: Any) -> Any:
    """An op's result as arrays: numpy returns scalars for 0-d results (``np.add`` of 0-d
    arrays, full reductions), and a tensor's data is always an array."""
    if data.__class__ is tuple:
        return tuple(as_array(d, xp) for d in data)
    if isinstance(data, numpy.generic):
        return xp.asarray(data)
    return data


def common_device(op: Op, inputs: Iterable[Value]) -> Any:
    """The device all ``inputs`` share (PENDING if one has no data yet).

    Raises
    ------
    DeviceError
        Two inputs are on different devices.
    """
    device = None
    for x in inputs:
        dev = x._device
        if dev is PENDING:
            return PENDING
        if device is None:
            device = dev
        elif dev is not device and dev != device:
            raise DeviceError(
                f"{op.name}: operands are on different devices ({device} and {dev}); "
                "move them with Tensor(x, device=...) first"
            )
    return device


# ----------------------------------------------------------------------------------------------
# Values


class Value:
    """A node in the computational graph: an op applied to inputs, or a leaf.

    ``_data`` is the raw array (None until computed), ``_device`` its device.
    """

    # _epoch and _view: in-place bookkeeping (needle.inplace), set only when needed.
    __slots__ = ("op", "inputs", "_data", "_device", "requires_grad", "_epoch", "_view",
                 "__weakref__", "__dict__")
    num_outputs = 1
    # Class defaults: an op result sets none of these. Gradient hooks ({handle id: fn}) and
    # retain_grad are stored per tensor only when asked for; ``grad`` likewise.
    _grad_hooks: dict | None = None
    _retains_grad = False
    # True for TensorTuple (the reverse pass sums tuple adjoints element-wise).
    is_tuple = False

    op: Op | None
    inputs: tuple
    requires_grad: bool

    @property
    def grad(self) -> Any:
        """The gradient set by the last ``backward()`` (None before one)."""
        return self.__dict__.get("grad")

    @grad.setter
    def grad(self, value: Any) -> None:
        # The one place a gradient is stored.
        self.__dict__["grad"] = value

    @property
    def cached_data(self) -> Any:
        """The data as the backend's array type (NDArray on ``nd``, numpy on ``np``), a view
        of the tensor's memory: writes through it change the tensor. None if not computed."""
        data = self._data
        if data is None:
            return None
        # The view is kept while the data stays the same, so that it is one object (the
        # course compares ``realize_cached_data()`` results by identity).
        cache = self.__dict__.get("_boundary")
        if cache is not None and cache[0] is data:
            return cache[1]
        if data.__class__ is tuple:
            view: Any = tuple(to_boundary(d, self._device) for d in data)
        else:
            view = to_boundary(data, self._device)
        if view is not data:
            self.__dict__["_boundary"] = (data, view)
        return view

    @cached_data.setter
    def cached_data(self, value: Any) -> None:
        self._set_data(value)

    def _set_data(self, value: Any) -> None:
        """Replace the data by ``value`` (a boundary array, a namespace array or a tuple):
        the one place a value's data is written after it is made."""
        if value is None:
            self._data = None
            return
        if value.__class__ is tuple:
            parts = [from_boundary(v) for v in value]
            self._data = tuple(p[0] for p in parts)
            device = next((p[1] for p in parts if p[1] is not None), None)
        else:
            self._data, device = from_boundary(value)
        if device is not None:
            self._device = device
        elif getattr(self, "_device", PENDING) is PENDING:
            self._device = default_device()

    def realize_cached_data(self) -> Any:
        """The data as the backend's array type, computing it first if needed (lazy mode)."""
        realize(self)
        return self.cached_data

    def is_leaf(self) -> bool:
        """Whether this node was created directly (no op), not computed from inputs."""
        return self.op is None

    def _init(
        self,
        op: Op | None,
        inputs: Iterable[Value],
        *,
        num_outputs: int = 1,
        cached_data: Any = None,
        requires_grad: bool | None = None,
        device: Any = None,
    ) -> None:
        inputs = tuple(inputs)
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        self._data = None
        self._device = PENDING
        if cached_data is not None:
            self._set_data(cached_data)
            if device is not None:
                self._device = device
        self.requires_grad = requires_grad
        if INPLACE_WRITES:
            self._epoch = INPLACE_WRITES
        if TRACER is not None:  # [jit hook] a leaf made inside a traced call
            TRACER.leaf(self)

    @classmethod
    def make_const(cls, data: Any, *, requires_grad: bool = False) -> Value:
        """A leaf holding ``data`` (a backend array), with no op and no inputs."""
        value = cls.__new__(cls)
        value._init(None, (), cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: tuple) -> Value:
        """The node for ``op(*inputs)``, computed at once in eager mode (see make_value)."""
        return make_value(cls, op, tuple(inputs))


def leaf(cls: type, data: Any, device: Any, requires_grad: bool = False) -> Value:
    """A leaf of class ``cls`` over the raw array ``data`` on ``device`` (no copy)."""
    value = object.__new__(cls)
    value.op = None
    value.inputs = ()
    value._data = data
    value._device = device
    value.requires_grad = requires_grad
    if INPLACE_WRITES:
        value._epoch = INPLACE_WRITES
    if TRACER is not None:  # [jit hook] a leaf made inside a traced call
        TRACER.leaf(value)
    return value


def stamp(op: Op, inputs: tuple, value: Value) -> None:
    """The observer needle.inplace registers once it has written: new Values remember the
    write clock (``_epoch``), so that backward can tell what changed after them."""
    value._epoch = INPLACE_WRITES


def make_value(cls: type, op: Op, inputs: tuple) -> Value:
    """Create the node for ``op(*inputs)``: every op result is made here.

    In eager mode the op is computed at once, in its operands' device namespace. A result
    that needs no gradient (nothing requires grad, or grad mode is off) is returned as a
    detached leaf, so no graph is kept alive behind it. An input without data (a graph-mode
    placeholder, or anything in lazy mode) makes a node that computes on demand.
    """
    # This is the hot path of every op: the one- and two-input cases are spelled out, and
    # compute(op, arrays, device) is inlined.
    n = len(inputs)
    if n == 2:
        x, y = inputs
        device = x._device
        if y._device is not device:
            device = common_device(op, inputs)
        if device is PENDING or LAZY_MODE:
            return _make_pending(cls, op, inputs, x.requires_grad or y.requires_grad)
        xp = device.xp
        if op.xp is not xp:
            op.xp = xp
        try:
            data = run_quietly(op.compute, x._data, y._data)
        except RuntimeError as e:
            data = quiet_compute(e, op.compute, x._data, y._data)
        requires_grad = x.requires_grad or y.requires_grad
    elif n == 1:
        x = inputs[0]
        device = x._device
        if device is PENDING or LAZY_MODE:
            return _make_pending(cls, op, inputs, x.requires_grad)
        xp = device.xp
        if op.xp is not xp:
            op.xp = xp
        try:
            data = run_quietly(op.compute, x._data)
        except RuntimeError as e:
            data = quiet_compute(e, op.compute, x._data)
        requires_grad = x.requires_grad
    else:
        device = common_device(op, inputs)
        requires_grad = any(x.requires_grad for x in inputs)
        if device is None:  # no inputs at all
            device = default_device()
        if device is PENDING or LAZY_MODE:
            return _make_pending(cls, op, inputs, requires_grad)
        xp = device.xp
        data = compute(op, [x._data for x in inputs], device)
    if data.__class__ is not _ndarray:
        data = as_array(data, xp)
    value = _new(cls)
    if requires_grad and (not OFF_THREADS[0] or GRAD_MODE.enabled):
        value.op = op
        value.inputs = inputs
        value.requires_grad = True
    else:
        value.op = None
        value.inputs = ()
        value.requires_grad = False
    value._data = data
    value._device = device
    if OBSERVERS:
        for observe in OBSERVERS:
            observe(op, inputs, value)
    return value


_new = object.__new__


def _make_pending(cls: type, op: Op, inputs: tuple, requires_grad: bool) -> Value:
    """A node that is computed on demand (lazy mode, or a placeholder among the inputs)."""
    value = object.__new__(cls)
    value.op = op
    value.inputs = inputs
    value._data = None
    value._device = PENDING
    value.requires_grad = requires_grad and GRAD_MODE.enabled
    if INPLACE_WRITES:
        value._epoch = INPLACE_WRITES
    return value


# ----------------------------------------------------------------------------------------------
# The traversal helper and what is built on it


def walk(roots: Iterable[Value], descend: Callable[[Value], bool] | None = None,
         stop: Collection | None = None, visited: set | None = None) -> list[Value]:
    """Every node behind ``roots``, inputs before the nodes that use them.

    The order is that of a post-order depth-first search that visits inputs left to right,
    with an explicit stack, so deep graphs do not recurse. Every traversal of needle uses
    this: topological sort, lazy realisation, the reverse pass, graph mode.

    Parameters
    ----------
    roots : iterable of Value
        Always visited.
    descend : callable, optional
        ``descend(child)`` decides whether an input is visited (default: all are).
    stop : collection, optional
        Nodes whose inputs are not walked (they are visited themselves).
    visited : set, optional
        Nodes already visited (not visited again); updated in place.
    """
    if visited is None:
        visited = set()
    order: list = []
    add, emit = visited.add, order.append
    for root in roots:
        if root in visited:
            continue
        add(root)
        # The path from the root, and for each node on it the iterator of its inputs.
        nodes = [root]
        pending = [iter(() if stop is not None and root in stop else root.inputs)]
        while pending:
            for child in pending[-1]:
                if child not in visited and (descend is None or descend(child)):
                    add(child)
                    nodes.append(child)
                    pending.append(iter(() if stop is not None and child in stop
                                        else child.inputs))
                    break
            else:
                pending.pop()
                emit(nodes.pop())
    return order


def find_topo_sort(node_list: Iterable[Value]) -> list[Value]:
    """Topological order of the graph behind ``node_list`` (inputs before users).

    The order is that of a post-order depth-first search that visits inputs left to
    right, done with an explicit stack so that deep graphs do not recurse.
    """
    if INPLACE_WRITES:
        node_list = list(node_list)
        ENGINE_OPS.inplace_resolve(node_list)
    return walk(node_list)


def topo_sort_dfs(node: Value, visited: set, topo_order: list) -> None:
    """Post-order DFS from ``node``, appending unvisited nodes to ``topo_order``."""
    topo_order.extend(walk((node,), visited=visited))


def _has_no_data(node: Value) -> bool:
    return node._data is None


def realize(value: Value) -> Any:
    """Compute ``value`` and whatever it needs that has no data yet; return its raw data."""
    if value._data is not None:
        return value._data
    for node in walk((value,), _has_no_data):
        if node._data is not None:
            continue
        if node.op is None:
            raise GraphError(
                "a placeholder has no value: feed it through graph.Evaluator.run(...)"
            )
        device = common_device(node.op, node.inputs)
        node._data = compute(node.op, [x._data for x in node.inputs], device)
        node._device = device
    return value._data


def sum_node_list(node_list: list[Value]) -> Value:
    """Sum the partial adjoints of a node, without a redundant zero node."""
    total = node_list[0]
    for node in node_list[1:]:
        total = total + node
    return total


class TupleSlot:
    """A partial adjoint of a TensorTuple that only concerns element ``index``."""

    __slots__ = ("index", "grad")

    def __init__(self, index: int, grad: Value) -> None:
        self.index = index
        self.grad = grad


def _op_gradient(node: Value, grad: Value) -> tuple:
    grads = node.op.gradient(grad, node)
    if grads.__class__ is not tuple:
        grads = tuple(grads) if isinstance(grads, list) else (grads,)
    return grads


def _wrapped_gradient(node: Value, grad: Value) -> tuple:
    """The gradient through every wrapper in GRADIENT_WRAPPERS (outermost first)."""
    def call(i: int, n: Value, g: Value) -> tuple:
        if i == len(GRADIENT_WRAPPERS):
            return _op_gradient(n, g)
        return GRADIENT_WRAPPERS[i](n, g, lambda n2, g2: call(i + 1, n2, g2))

    return call(0, node, grad)


_requires_grad = operator.attrgetter("requires_grad")


def reverse_pass(output: Value, out_grad: Value, wanted: Collection[Value] | None = None) -> dict:
    """Propagate ``out_grad`` from ``output``; return the adjoints of the ``wanted`` nodes.

    ``wanted=None`` means every leaf that requires grad. The nodes that require grad are
    walked once (:func:`walk`) and processed in reverse topological order, so every node's
    partial adjoints (one per use) are all there when it is reached; they are summed once.
    An op may return None for an input that needs no gradient. Every partial adjoint is
    brought to its input's dtype here, for every op (the dtype rule, ``needle._dtype``).
    """
    checked = INPLACE_WRITES and ENGINE_OPS.inplace_prepare(output)
    order = walk((output,), _requires_grad)
    # node -> its partial adjoint, or the list of them once there are several.
    partials: dict = {output: out_grad}
    result: dict = {}
    in_dtype_of = ENGINE_OPS.in_dtype_of
    # Anomaly detection or in-place checks: every gradient goes through them.
    gradient_of = _wrapped_gradient if GRADIENT_WRAPPERS else None
    if checked:
        inplace_gradient, inner = ENGINE_OPS.inplace_gradient, gradient_of or _op_gradient
        gradient_of = lambda n, g: inplace_gradient(n, g, inner)  # noqa: E731
    pop, get = partials.pop, partials.get
    for node in reversed(order):
        grad = pop(node, None)
        if grad is None:
            continue  # every path to it returned None
        if grad.__class__ is list:
            grad = _sum_partials(node, grad)
        elif grad.__class__ is TupleSlot:
            grad = _sum_partials(node, [grad])
        if node._grad_hooks is not None:  # hooks, or retain_grad
            grad = _apply_grad_hooks(node, grad)
        op = node.op
        if op is None:
            if wanted is None or node in wanted:
                result[node] = grad
            continue
        if wanted is not None and node in wanted:
            result[node] = grad
        if op.tuple_index is not None:
            # An element of a tuple: pass the gradient on as (index, grad) and build
            # the tuple's adjoint once, instead of one mostly-zero tuple per element.
            grads: Any = (TupleSlot(op.tuple_index, grad),)
        elif gradient_of is not None:
            grads = gradient_of(node, grad)
        else:
            grads = op.gradient(grad, node)
            if grads.__class__ is not tuple:
                grads = tuple(grads) if isinstance(grads, list) else (grads,)
        for inp, g in zip(node.inputs, grads):
            if g is None or not inp.requires_grad:
                continue
            if g.__class__ is not TupleSlot:
                # The dtype rule: each input's gradient in that input's dtype; the fast
                # path is two attribute reads.
                gd, xd = g._data, inp._data
                if gd is None or xd is None or (
                        gd.__class__ is not tuple and gd.dtype is not xd.dtype):
                    g = in_dtype_of(g, inp)
            known = get(inp)
            if known is None:
                partials[inp] = g
            elif known.__class__ is list:
                known.append(g)
            else:
                partials[inp] = [known, g]
    if INPLACE_WRITES and partials:
        # A partial for a node already processed: only a cycle does that.
        raise GraphError("backward: the graph has a cycle (in-place bookkeeping went wrong); "
                         "please report this with the code that built the graph")
    return result


def _sum_partials(node: Value, partials: list) -> Value:
    """Sum a node's partial adjoints; for a tuple, combine element slots by index."""
    if node.is_tuple:
        return ENGINE_OPS.tuple_adjoint(node, partials)
    return sum_node_list(partials)


def _apply_grad_hooks(node: Value, grad: Value) -> Value:
    """Run ``node``'s gradient hooks on its total gradient; keep it if it retains grad."""
    for hook in list(node._grad_hooks.values()):
        replaced = hook(grad)
        if replaced is None:
            continue
        if not isinstance(replaced, Value) or replaced.is_tuple:
            raise GraphError(
                f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned "
                f"{type(replaced).__name__}; return a Tensor or None"
            )
        if replaced.shape != grad.shape:
            raise ShapeError(
                f"register_hook: the hook {getattr(hook, '__name__', hook)!r} returned shape "
                f"{replaced.shape} for a gradient of shape {grad.shape}"
            )
        grad = replaced
    if node._retains_grad:
        node.grad = grad
    return grad


def _twin(node: Value, data: Any) -> Value:
    """A node computed like ``node`` (same op and inputs, so the same gradient graph)
    holding ``data``, an equal copy of its value."""
    twin = object.__new__(type(node))
    twin.op = node.op
    twin.inputs = node.inputs
    twin.requires_grad = node.requires_grad
    twin._data = data
    twin._device = node._device
    if TRACER is not None:  # [jit hook] the copy is a step a replay must repeat
        _report_copy(node, twin)
    return twin


class Copy(Op):
    """A copy of an array in memory of its own: the engine's copies of gradients, as a
    tracer records them (never differentiated)."""

    def compute(self, a: Any) -> Any:
        return self.xp.array(a)


def _report_copy(source: Value, value: Value) -> None:
    """Tell the tracer that ``value``'s data is a copy of ``source``'s."""
    op = Copy()
    op.xp = value._device.xp
    TRACER.op(op, (source,), value)


def _region_key(data: Any) -> tuple:
    """(address, shape, strides) of an array: equal for two names of one array."""
    iface = getattr(data, "__array_interface__", None) or data.__cuda_array_interface__
    return (iface["data"][0], data.shape, data.strides)


def _own_memory(grad: Value) -> None:
    """Give a gradient that is a read-only view (e.g. the stride-0 broadcast that a sum's
    gradient is) memory of its own, so that ``.grad`` can be written in place like any
    tensor. The node keeps its op: only the storage of its (equal) value changes."""
    data = grad._data
    if data is not None and data.__class__ is not tuple:
        flags = getattr(data, "flags", None)
        if flags is not None and not flags.writeable:
            grad._data = grad._device.xp.array(data)
            if TRACER is not None:  # [jit hook] the old data, as a leaf the tracer knows
                _report_copy(leaf(type(grad), data, grad._device), grad)


class _Callbacks(threading.local):
    stack: list | None = None


_CALLBACKS = _Callbacks()


def queue_callback(fn: Callable[[], Any]) -> None:
    """Run ``fn()`` once the current ``backward()`` has set every ``.grad``.

    Meant for gradient hooks that start work (e.g. a non-blocking allreduce) and must
    finish it before the user sees the gradients. Only valid during ``backward()``.
    """
    stack = _CALLBACKS.stack
    if not stack:
        raise GraphError("queue_callback: only valid inside backward() (e.g. from a hook)")
    if TRACER is not None:  # [jit hook] a callback is Python that a replay would not run
        TRACER.callback(fn)
    stack[-1].append(fn)


class _BackwardRecord(threading.local):
    # A callable(output, adjoints) set by ``needle.viz.record_backward()``; None: off.
    sink = None


BACKWARD_RECORD = _BackwardRecord()


class _EveryNode:
    """A ``wanted`` collection for :func:`reverse_pass` that holds every node."""

    def __contains__(self, node: object) -> bool:
        return True


def compute_gradient_of_variables(output_tensor: Value, out_grad: Value) -> None:
    """Set ``.grad`` of every leaf under ``output_tensor`` that requires grad.

    ``.grad`` is assigned (not accumulated): each backward pass sets its own total.
    Callbacks queued by hooks (``queue_callback``) run afterwards, in order. Inside
    ``needle.viz.record_backward()`` the adjoint of every node is also handed to the
    recorder (one thread-local lookup per call when off, nothing per node).
    """
    if _CALLBACKS.stack is None:
        _CALLBACKS.stack = []
    callbacks: list = []
    _CALLBACKS.stack.append(callbacks)
    try:
        sink = BACKWARD_RECORD.sink
        if sink is None:
            grads = reverse_pass(output_tensor, out_grad)
        else:
            adjoints = reverse_pass(output_tensor, out_grad, _EveryNode())
            sink(output_tensor, adjoints)
            grads = {node: grad for node, grad in adjoints.items() if node.op is None}
        regions: set = set()
        for node, grad in grads.items():
            _own_memory(grad)
            data = grad._data
            if data is not None and data.__class__ is not tuple:
                region = _region_key(data)
                if region in regions:
                    # Two leaves got the same gradient array (e.g. from a + b): copy it, so
                    # that an in-place op on one .grad does not change the other. Disjoint
                    # views of one buffer (DDP's buckets) are left alone.
                    grad = _twin(grad, grad._device.xp.array(data))
                regions.add(region)
            node.grad = grad
    finally:
        _CALLBACKS.stack.pop()
    for fn in callbacks:
        fn()
